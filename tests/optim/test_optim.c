/* test_optim.c: Adam, SGD and the step decay against torch.optim goldens
 * (tests/golden/optim.safetensors), plus the parameter store they run on.
 * Not a training test: gradients come from the golden file, not from a graph. */
#define _POSIX_C_SOURCE 200809L /* strtok_r */
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "relate/optim.h"
#include "relate/params.h"
#include "test_util.h"

#define BOUND 1e-6
#define NP 4
#define STEPS 5

static const char *const PNAMES[NP] = {"w0", "b0", "w1", "w2"};
static const int PGROUP[NP] = {0, 0, 1, 1};

/* Elements that differ in any bit: informative only (the check is the 1e-6 bound), but a
 * non-zero count means an operation's rounding drifted from PyTorch's. */
static long bit_diffs;

static void check_tensor(const relate_safetensors *st, const char *name, const float *got, int64_t n)
{
    const float *want = relate_test_golden(st, name, n);
    if (!want)
        return;
    relate_test_check_close(name, got, want, (size_t)n, BOUND);
    bit_diffs += memcmp(got, want, (size_t)n * sizeof(float)) != 0;
}

/* The golden parameters in a fresh store; p[i] are the entries in PNAMES order. */
static void make_store(const relate_safetensors *st, relate_params *store, relate_param **p)
{
    relate_error err = {0};
    relate_params_init(store);
    for (int i = 0; i < NP; i++) {
        char key[64];
        snprintf(key, sizeof key, "init.%s", PNAMES[i]);
        const relate_st_tensor *t = relate_safetensors_find(st, key);
        if (!t) {
            fprintf(stderr, "golden tensor %s missing\n", key);
            exit(1);
        }
        p[i] = relate_params_add(store, PNAMES[i], RELATE_PARAM, t->ndim, t->shape);
    }
    CHECK(relate_params_finalize(store, &err) == RELATE_OK);
    for (int i = 0; i < NP; i++) {
        char key[64];
        snprintf(key, sizeof key, "init.%s", PNAMES[i]);
        memcpy(p[i]->data, relate_test_golden(st, key, p[i]->numel), (size_t)p[i]->numel * sizeof(float));
    }
}

/* Copies grads.<k>.<p> into the gradients; an absent one is PyTorch's grad None, which relate
 * expresses as a frozen parameter. */
static void load_grads(const relate_safetensors *st, const char *prefix, int k, relate_param **p)
{
    for (int i = 0; i < NP; i++) {
        char key[96];
        snprintf(key, sizeof key, "%s.%d.%s", prefix, k, PNAMES[i]);
        const relate_st_tensor *t = relate_safetensors_find(st, key);
        p[i]->frozen = t == NULL;
        if (t)
            memcpy(p[i]->grad, t->data, (size_t)p[i]->numel * sizeof(float));
        else
            memset(p[i]->grad, 0x7f, (size_t)p[i]->numel * sizeof(float)); /* must stay unused */
    }
}

static void make_groups(relate_param **p, relate_param **g0, relate_param **g1, json_t *cfg,
                        relate_param_group *groups)
{
    int n0 = 0, n1 = 0;
    for (int i = 0; i < NP; i++) {
        if (PGROUP[i] == 0)
            g0[n0++] = p[i];
        else
            g1[n1++] = p[i];
    }
    json_t *lr = json_object_get(cfg, "lr"), *wd = json_object_get(cfg, "weight_decay");
    groups[0] = (relate_param_group){.params = g0, .count = n0,
                                     .lr = json_real_value(json_array_get(lr, 0)),
                                     .weight_decay = json_number_value(json_array_get(wd, 0))};
    groups[1] = (relate_param_group){.params = g1, .count = n1,
                                     .lr = json_real_value(json_array_get(lr, 1)),
                                     .weight_decay = json_number_value(json_array_get(wd, 1))};
}

static void run_case(const relate_safetensors *st, const char *cname)
{
    relate_error err = {0};
    const char *text = relate_safetensors_meta(st, cname);
    json_error_t jerr;
    json_t *cfg = text ? json_loads(text, 0, &jerr) : NULL;
    CHECK_MSG(cfg != NULL, "case %s has no settings", cname);
    if (!cfg)
        return;
    relate_params store;
    relate_param *p[NP], *g0[NP], *g1[NP];
    relate_param_group groups[2];
    make_store(st, &store, p);
    make_groups(p, g0, g1, cfg, groups);
    bool adam = strcmp(json_string_value(json_object_get(cfg, "optimizer")), "adam") == 0;
    relate_adam a;
    relate_sgd s;
    double momentum = json_number_value(json_object_get(cfg, "momentum"));
    if (adam) {
        json_t *betas = json_object_get(cfg, "betas");
        CHECK(relate_adam_init(&a, groups, 2, json_real_value(json_array_get(betas, 0)),
                               json_real_value(json_array_get(betas, 1)),
                               json_real_value(json_object_get(cfg, "eps")), &err) == RELATE_OK);
    } else {
        CHECK(relate_sgd_init(&s, groups, 2, momentum,
                              json_number_value(json_object_get(cfg, "dampening")),
                              json_is_true(json_object_get(cfg, "nesterov")), &err) == RELATE_OK);
    }
    for (int k = 1; k <= STEPS; k++) {
        load_grads(st, "grads", k, p);
        if (adam)
            relate_adam_step(&a);
        else
            relate_sgd_step(&s);
        for (int i = 0; i < NP; i++) {
            char key[96];
            snprintf(key, sizeof key, "%s.step%d.%s", cname, k, PNAMES[i]);
            check_tensor(st, key, p[i]->data, p[i]->numel);
        }
    }
    /* State is stored in group order, which here is PNAMES order. */
    for (int i = 0; i < NP; i++) {
        char key[96];
        if (adam) {
            snprintf(key, sizeof key, "%s.exp_avg.%s", cname, PNAMES[i]);
            check_tensor(st, key, a.state[i].exp_avg, p[i]->numel);
            snprintf(key, sizeof key, "%s.exp_avg_sq.%s", cname, PNAMES[i]);
            check_tensor(st, key, a.state[i].exp_avg_sq, p[i]->numel);
            snprintf(key, sizeof key, "%s.step.%s", cname, PNAMES[i]);
            const relate_st_tensor *t = relate_safetensors_find(st, key);
            int64_t want = -1;
            if (t && strcmp(t->dtype, "I64") == 0) /* odd F32 counts leave it 4-byte aligned */
                memcpy(&want, t->data, sizeof want);
            CHECK_MSG(a.state[i].step == want, "%s: %lld, want %lld", key, (long long)a.state[i].step,
                      (long long)want);
        } else if (momentum != 0) {
            snprintf(key, sizeof key, "%s.momentum_buffer.%s", cname, PNAMES[i]);
            check_tensor(st, key, s.state[i].momentum_buffer, p[i]->numel);
        } else {
            CHECK(s.state[i].momentum_buffer == NULL);
        }
    }
    if (adam)
        relate_adam_free(&a);
    else
        relate_sgd_free(&s);
    relate_params_free(&store);
    json_decref(cfg);
}

/* The reference's `standard` run: SGD lr 0.1 decayed by hand at epochs int(0.5E), int(0.75E). */
static void run_standard(const relate_safetensors *st)
{
    relate_error err = {0};
    json_error_t jerr;
    const char *text = relate_safetensors_meta(st, "standard");
    json_t *cfg = text ? json_loads(text, 0, &jerr) : NULL;
    CHECK(cfg != NULL);
    if (!cfg)
        return;
    int epochs = (int)json_integer_value(json_object_get(cfg, "epochs"));
    int steps = (int)json_integer_value(json_object_get(cfg, "steps_per_epoch"));
    double lr = json_real_value(json_object_get(cfg, "lr"));
    const relate_st_tensor *lrs = relate_safetensors_find(st, "standard.lr");
    CHECK(lrs && strcmp(lrs->dtype, "F64") == 0 && lrs->numel == 2 * epochs);
    relate_params store;
    relate_param *p[NP], *g0[NP], *g1[NP];
    relate_param_group groups[2];
    make_store(st, &store, p);
    json_t *fake = json_pack("{s:[f,f],s:[f,f]}", "lr", lr, lr, "weight_decay", 0.0, 0.0);
    make_groups(p, g0, g1, fake, groups);
    relate_sgd s;
    CHECK(relate_sgd_init(&s, groups, 2, json_real_value(json_object_get(cfg, "momentum")), 0.0, false,
                          &err) == RELATE_OK);
    const double base[2] = {lr, lr};
    for (int e = 0; e < epochs && lrs; e++) {
        relate_groups_set_lr(s.groups, s.ngroups, base, relate_step_decay_factor(e, epochs));
        double want[2]; /* possibly misaligned in the file */
        memcpy(want, (const char *)lrs->data + 2 * (size_t)e * sizeof(double), sizeof want);
        /* Exact: the lr is printed with Python's repr when it decays. */
        CHECK_MSG(s.groups[0].lr == want[0] && s.groups[1].lr == want[1],
                  "epoch %d lr %.17g %.17g, want %.17g %.17g", e, s.groups[0].lr, s.groups[1].lr,
                  want[0], want[1]);
        for (int i = 0; i < steps; i++) {
            load_grads(st, "standard.grads", e * steps + i, p);
            relate_sgd_step(&s);
        }
        for (int i = 0; i < NP; i++) {
            char key[96];
            snprintf(key, sizeof key, "standard.epoch%d.%s", e, PNAMES[i]);
            check_tensor(st, key, p[i]->data, p[i]->numel);
        }
    }
    relate_sgd_free(&s);
    relate_params_free(&store);
    json_decref(fake);
    json_decref(cfg);
}

static void test_decay_factor(void)
{
    CHECK(relate_step_decay_factor(0, 200) == 1.0);
    CHECK(relate_step_decay_factor(99, 200) == 1.0);
    CHECK(relate_step_decay_factor(100, 200) == 0.1);
    CHECK(relate_step_decay_factor(149, 200) == 0.1);
    CHECK(fabs(relate_step_decay_factor(150, 200) - 0.01) < 1e-17);
    CHECK(fabs(relate_step_decay_factor(199, 200) - 0.01) < 1e-17);
    /* finetuning: the hard-coded 200 never decays within 100 epochs */
    CHECK(relate_step_decay_factor(99, 200) == 1.0);
    /* odd totals floor: E = 9 -> milestones 4 and 6 */
    CHECK(relate_step_decay_factor(3, 9) == 1.0 && relate_step_decay_factor(4, 9) == 0.1);
    CHECK(relate_step_decay_factor(5, 9) == 0.1 && relate_step_decay_factor(6, 9) < 0.1);
    /* equal milestones (E = 1: both 0) decay once, as the reference's `or` does */
    CHECK(relate_step_decay_factor(0, 1) == 0.1);
    CHECK(relate_step_decay_factor(1, 2) == 0.1);

    relate_param_group g[2] = {{.lr = 0}, {.lr = 0}};
    const double base[2] = {1e-3, 0.3};
    relate_groups_set_lr(g, 2, base, relate_step_decay_factor(150, 200));
    CHECK(g[0].lr == 1e-3 * 0.1 * 0.1 && g[1].lr == 0.3 * 0.1 * 0.1);
    relate_groups_set_lr(g, 2, base, 1.0);
    CHECK(g[0].lr == 1e-3 && g[1].lr == 0.3);
    relate_groups_set_lr(g, 2, base, 0.5);
    CHECK(g[0].lr == 0.5e-3 && g[1].lr == 0.15);
}

static void test_params_store(void)
{
    relate_error err = {0};
    relate_params p;
    relate_params_init(&p);
    relate_param *w = relate_params_add(&p, "l.weight", RELATE_PARAM, 2, (int64_t[]){3, 5});
    relate_param *rm = relate_params_add(&p, "bn.running_mean", RELATE_BUFFER_F32, 1, (int64_t[]){7});
    relate_param *b = relate_params_add(&p, "l.bias", RELATE_PARAM, 1, (int64_t[]){3});
    relate_param *nbt = relate_params_add(&p, "bn.num_batches_tracked", RELATE_BUFFER_I64, 0, NULL);
    relate_param *rv = relate_params_add(&p, "bn.running_var", RELATE_BUFFER_F32, 1, (int64_t[]){7});
    CHECK(w && rm && b && nbt && rv);
    CHECK(relate_params_find(&p, "l.bias") == b && relate_params_find(&p, "nope") == NULL);
    CHECK(relate_params_finalize(&p, &err) == RELATE_OK);
    /* one block per kind, in registration order, 64-byte aligned */
    CHECK(w->data == p.param_block && b->data == w->data + 15);
    CHECK(w->grad == p.grad_block && b->grad == w->grad + 15);
    CHECK(rm->data == p.buffer_block && rv->data == rm->data + 7 && !rm->grad);
    CHECK(nbt->i64 == p.i64_block && nbt->numel == 1 && nbt->ndim == 0 && nbt->i64[0] == 0);
    CHECK(((uintptr_t)p.param_block | (uintptr_t)p.grad_block | (uintptr_t)p.buffer_block |
           (uintptr_t)p.i64_block) % 64 == 0);
    CHECK(p.param_floats == 18 && p.buffer_floats == 14 && p.i64_count == 1);
    CHECK(relate_params_count_trainable(&p) == 18);
    int zeros = 1;
    for (int i = 0; i < 18; i++)
        zeros &= p.param_block[i] == 0 && p.grad_block[i] == 0;
    CHECK(zeros);
    for (int i = 0; i < 18; i++)
        p.grad_block[i] = 1.0f + (float)i;
    relate_params_zero_grad(&p);
    zeros = 1;
    for (int i = 0; i < 18; i++)
        zeros &= p.grad_block[i] == 0;
    CHECK(zeros);
    relate_params_set_frozen(&p, true);
    CHECK(w->frozen && b->frozen);
    relate_params_set_frozen(&p, false);
    CHECK(!w->frozen && !b->frozen);

    /* copy: values and buffers, never gradients; refuses a different layout */
    relate_params q;
    relate_params_init(&q);
    relate_params_add(&q, "l.weight", RELATE_PARAM, 2, (int64_t[]){3, 5});
    relate_params_add(&q, "bn.running_mean", RELATE_BUFFER_F32, 1, (int64_t[]){7});
    relate_params_add(&q, "l.bias", RELATE_PARAM, 1, (int64_t[]){3});
    relate_params_add(&q, "bn.num_batches_tracked", RELATE_BUFFER_I64, 0, NULL);
    relate_params_add(&q, "bn.running_var", RELATE_BUFFER_F32, 1, (int64_t[]){7});
    CHECK(relate_params_finalize(&q, &err) == RELATE_OK);
    for (int i = 0; i < 18; i++) {
        p.param_block[i] = (float)i;
        p.grad_block[i] = 5.0f;
    }
    rv->data[6] = 2.5f;
    nbt->i64[0] = 42;
    CHECK(relate_params_copy(&q, &p, &err) == RELATE_OK);
    CHECK(q.param_block[17] == 17.0f && q.grad_block[0] == 0.0f);
    CHECK(relate_params_find(&q, "bn.running_var")->data[6] == 2.5f);
    CHECK(relate_params_find(&q, "bn.num_batches_tracked")->i64[0] == 42);
    relate_params r;
    relate_params_init(&r);
    relate_params_add(&r, "l.weight", RELATE_PARAM, 2, (int64_t[]){5, 3}); /* same numel */
    relate_params_add(&r, "bn.running_mean", RELATE_BUFFER_F32, 1, (int64_t[]){7});
    relate_params_add(&r, "l.bias", RELATE_PARAM, 1, (int64_t[]){3});
    relate_params_add(&r, "bn.num_batches_tracked", RELATE_BUFFER_I64, 0, NULL);
    relate_params_add(&r, "bn.running_var", RELATE_BUFFER_F32, 1, (int64_t[]){7});
    CHECK(relate_params_finalize(&r, &err) == RELATE_OK);
    relate_error err2 = {0};
    CHECK(relate_params_copy(&r, &p, &err2) == RELATE_ERR_ARG);
    relate_params_free(&r);
    relate_params_free(&q);

    /* misuse is reported by finalize: adding after finalize, finalizing twice */
    CHECK(relate_params_add(&p, "late", RELATE_PARAM, 1, (int64_t[]){2}) == NULL);
    err2 = (relate_error){0};
    CHECK(relate_params_finalize(&p, &err2) != RELATE_OK);
    relate_params_free(&p);

    /* duplicate names are rejected (first entry stays findable) */
    relate_params d;
    relate_params_init(&d);
    relate_param *first = relate_params_add(&d, "x", RELATE_PARAM, 1, (int64_t[]){4});
    CHECK(first != NULL);
    CHECK(relate_params_add(&d, "x", RELATE_BUFFER_F32, 1, (int64_t[]){4}) == NULL);
    CHECK(relate_params_find(&d, "x") == first);
    err2 = (relate_error){0};
    CHECK(relate_params_finalize(&d, &err2) == RELATE_ERR_INTERNAL && strstr(err2.msg, "x"));
    relate_params_free(&d);

    /* bad shapes */
    relate_params_init(&d);
    CHECK(relate_params_add(&d, "neg", RELATE_PARAM, 1, (int64_t[]){-1}) == NULL);
    CHECK(relate_params_add(&d, "deep", RELATE_PARAM, RELATE_MAX_DIMS + 1,
                            (int64_t[]){1, 1, 1, 1, 1}) == NULL);
    CHECK(relate_params_add(&d, NULL, RELATE_PARAM, 0, NULL) == NULL);
    err2 = (relate_error){0};
    CHECK(relate_params_finalize(&d, &err2) != RELATE_OK);
    relate_params_free(&d);

    /* an empty store finalizes (a head without parameters still saves an empty state dict) */
    relate_params_init(&d);
    CHECK(relate_params_finalize(&d, &err) == RELATE_OK && relate_params_count_trainable(&d) == 0);
    relate_params_zero_grad(&d);
    relate_params_free(&d);
}

/* Frozen parameters and buffers in a group are skipped; state stays absent until a step. */
static void test_skips_and_lazy_state(void)
{
    relate_error err = {0};
    relate_params p;
    relate_params_init(&p);
    relate_param *a = relate_params_add(&p, "a", RELATE_PARAM, 1, (int64_t[]){5});
    relate_param *f = relate_params_add(&p, "f", RELATE_PARAM, 1, (int64_t[]){5});
    relate_param *buf = relate_params_add(&p, "buf", RELATE_BUFFER_F32, 1, (int64_t[]){5});
    CHECK(relate_params_finalize(&p, &err) == RELATE_OK);
    for (int i = 0; i < 5; i++) {
        a->data[i] = f->data[i] = buf->data[i] = 1.0f;
        a->grad[i] = f->grad[i] = 0.5f;
    }
    f->frozen = true;
    relate_param *list[3] = {a, f, buf};
    relate_param_group g = {.params = list, .count = 3, .lr = 0.1};
    relate_adam adam;
    CHECK(relate_adam_init(&adam, &g, 1, 0.9, 0.999, 1e-8, &err) == RELATE_OK);
    CHECK(adam.nparams == 3);
    for (int k = 0; k < 3; k++)
        CHECK(adam.state[k].step == 0 && !adam.state[k].exp_avg && !adam.state[k].exp_avg_sq);
    relate_adam_step(&adam);
    relate_adam_step(&adam);
    CHECK(adam.state[0].step == 2 && adam.state[0].exp_avg && adam.state[0].exp_avg_sq);
    CHECK(adam.state[1].step == 0 && !adam.state[1].exp_avg);
    CHECK(adam.state[2].step == 0 && !adam.state[2].exp_avg);
    CHECK(a->data[0] < 1.0f && f->data[0] == 1.0f && buf->data[0] == 1.0f);
    CHECK(((uintptr_t)adam.state[0].exp_avg | (uintptr_t)adam.state[0].exp_avg_sq) % 64 == 0);
    /* unfreezing later starts that parameter's own count at 1 */
    f->frozen = false;
    relate_adam_step(&adam);
    CHECK(adam.state[0].step == 3 && adam.state[1].step == 1);
    /* first Adam step moves by lr*sign(g) (up to eps): 1 - 0.1 */
    CHECK(fabsf(f->data[0] - 0.9f) < 1e-6f);
    relate_adam_free(&adam);

    f->frozen = true;
    relate_sgd sgd;
    CHECK(relate_sgd_init(&sgd, &g, 1, 0.9, 0.0, false, &err) == RELATE_OK);
    float before_f = f->data[0], before_a = a->data[0];
    relate_sgd_step(&sgd);
    CHECK(sgd.state[0].momentum_buffer && !sgd.state[1].momentum_buffer && !sgd.state[2].momentum_buffer);
    CHECK(f->data[0] == before_f && a->data[0] == fmaf(0.5f, -0.1f, before_a) && buf->data[0] == 1.0f);
    /* a checkpoint loader may install its own malloc'd buffer; the optimizer then treats the
     * parameter as already stepped and frees the buffer (ASan checks both) */
    f->frozen = false;
    sgd.state[1].momentum_buffer = malloc(5 * sizeof(float));
    for (int i = 0; i < 5; i++)
        sgd.state[1].momentum_buffer[i] = 1.0f;
    before_f = f->data[0];
    relate_sgd_step(&sgd);
    /* buf = 0.9*1 + 0.5; param -= 0.1*buf */
    CHECK(sgd.state[1].momentum_buffer[0] == 0.9f * 1.0f + 0.5f);
    CHECK(f->data[0] == fmaf(0.9f * 1.0f + 0.5f, -0.1f, before_f));
    relate_sgd_free(&sgd);

    /* no momentum: no state at all */
    CHECK(relate_sgd_init(&sgd, &g, 1, 0.0, 0.0, false, &err) == RELATE_OK);
    relate_sgd_step(&sgd);
    CHECK(!sgd.state[0].momentum_buffer && !sgd.state[1].momentum_buffer);
    relate_sgd_free(&sgd);
    relate_params_free(&p);
}

static void test_init_errors(void)
{
    relate_params p;
    relate_error err = {0};
    relate_params_init(&p);
    relate_param *a = relate_params_add(&p, "a", RELATE_PARAM, 1, (int64_t[]){5});
    relate_param *b = relate_params_add(&p, "b", RELATE_PARAM, 1, (int64_t[]){5});
    CHECK(relate_params_finalize(&p, &err) == RELATE_OK);
    relate_param *l1[2] = {a, b}, *l2[1] = {a};
    relate_param_group ok = {.params = l1, .count = 2, .lr = 1e-3};
    relate_param_group dup[2] = {{.params = l1, .count = 2, .lr = 1e-3}, {.params = l2, .count = 1, .lr = 1e-3}};
    relate_param_group neg = {.params = l1, .count = 2, .lr = -1};
    relate_param_group negwd = {.params = l1, .count = 2, .lr = 1, .weight_decay = -1};
    relate_param_group empty = {.params = NULL, .count = 0, .lr = 1};
    relate_adam adam;
    relate_sgd sgd;
    {
        relate_error e_ = {0};
        CHECK(relate_adam_init(&adam, dup, 2, 0.9, 0.999, 1e-8, &e_) == RELATE_ERR_ARG);
        CHECK(strstr(e_.msg, "more than once") != NULL);
    }
    {
        relate_error e_ = {0};
        CHECK(relate_adam_init(&adam, &neg, 1, 0.9, 0.999, 1e-8, &e_) == RELATE_ERR_ARG);
        CHECK(relate_adam_init(&adam, &negwd, 1, 0.9, 0.999, 1e-8, &e_) == RELATE_ERR_ARG);
        CHECK(relate_adam_init(&adam, &empty, 1, 0.9, 0.999, 1e-8, &e_) == RELATE_ERR_ARG);
        CHECK(relate_adam_init(&adam, &ok, 0, 0.9, 0.999, 1e-8, &e_) == RELATE_ERR_ARG);
        CHECK(relate_adam_init(&adam, &ok, 1, 1.0, 0.999, 1e-8, &e_) == RELATE_ERR_ARG);
        CHECK(relate_adam_init(&adam, &ok, 1, 0.9, NAN, 1e-8, &e_) == RELATE_ERR_ARG);
        CHECK(relate_adam_init(&adam, &ok, 1, 0.9, 0.999, -1, &e_) == RELATE_ERR_ARG);
        CHECK(relate_sgd_init(&sgd, dup, 2, 0.9, 0, false, &e_) == RELATE_ERR_ARG);
        CHECK(relate_sgd_init(&sgd, &ok, 1, -0.1, 0, false, &e_) == RELATE_ERR_ARG);
        CHECK(relate_sgd_init(&sgd, &ok, 1, 0.9, 0.1, true, &e_) == RELATE_ERR_ARG);
        CHECK(relate_sgd_init(&sgd, &ok, 1, 0.0, 0.0, true, &e_) == RELATE_ERR_ARG);
        CHECK(e_.msg[0] != 0);
    }
    /* a failed init leaves nothing to free, and free is safe on it */
    relate_adam_free(&adam);
    relate_sgd_free(&sgd);
    relate_params_free(&p);
}

/* Element-wise updates: one thread and two must give identical bits on a tensor large enough
 * for the parallel path. */
static void test_thread_independence(void)
{
    enum { N = 100003 };
    relate_error err = {0};
    float *result[2][2];
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        relate_params p;
        relate_params_init(&p);
        relate_param *w = relate_params_add(&p, "w", RELATE_PARAM, 1, (int64_t[]){N});
        CHECK(relate_params_finalize(&p, &err) == RELATE_OK);
        relate_test_fill(w->data, N, 1);
        relate_param *list[1] = {w};
        relate_param_group g = {.params = list, .count = 1, .lr = 0.01, .weight_decay = 1e-4};
        relate_adam adam;
        relate_sgd sgd;
        CHECK(relate_adam_init(&adam, &g, 1, 0.9, 0.999, 1e-8, &err) == RELATE_OK);
        CHECK(relate_sgd_init(&sgd, &g, 1, 0.9, 0.0, true, &err) == RELATE_OK);
        for (int k = 0; k < 3; k++) {
            relate_test_fill(w->grad, N, 10 + (uint64_t)k);
            relate_adam_step(&adam);
            relate_test_fill(w->grad, N, 20 + (uint64_t)k);
            relate_sgd_step(&sgd);
        }
        result[t][0] = malloc(N * sizeof(float));
        result[t][1] = malloc(N * sizeof(float));
        memcpy(result[t][0], w->data, N * sizeof(float));
        memcpy(result[t][1], adam.state[0].exp_avg_sq, N * sizeof(float));
        relate_adam_free(&adam);
        relate_sgd_free(&sgd);
        relate_params_free(&p);
    }
    CHECK(memcmp(result[0][0], result[1][0], N * sizeof(float)) == 0);
    CHECK(memcmp(result[0][1], result[1][1], N * sizeof(float)) == 0);
    for (int t = 0; t < 2; t++) {
        free(result[t][0]);
        free(result[t][1]);
    }
    omp_set_num_threads(2);
}

int main(void)
{
    test_params_store();
    test_decay_factor();
    test_skips_and_lazy_state();
    test_init_errors();
    test_thread_independence();

    relate_safetensors st;
    relate_test_open_golden(&st, "optim.safetensors");
    const char *cases = relate_safetensors_meta(&st, "__cases__");
    CHECK(cases != NULL);
    if (cases) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", cases);
        int ncases = 0;
        for (char *save = NULL, *c = strtok_r(buf, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
            run_case(&st, c);
            ncases++;
        }
        CHECK(ncases >= 11);
    }
    run_standard(&st);
    printf("optim goldens: %ld compared tensors differ from PyTorch in some bit\n", bit_diffs);
    relate_safetensors_close(&st);
    return relate_test_finish();
}
