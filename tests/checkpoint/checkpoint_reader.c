/* checkpoint_reader.c: the C half of the PyTorch interop test: reads files torch.save wrote (zip
 * and legacy) and compares every value with expected.safetensors from torch_interop.py.
 * Not run directly by ctest (torch_interop.py runs it); values must match bit for bit.
 *
 *   test_checkpoint_reader EXPECTED.safetensors full:FILE... bare:FILE...
 * full: a dict {backbone, relation (relation head), optimizer (Adam), optimizer_sgd, epoch, name,
 *       lr, nested: {views: {...}, list: [...]}}; bare: a conv4 state dict. */
#include <stdlib.h>
#include <string.h>

#include "relate/checkpoint.h"
#include "relate/nn.h"
#include "relate/safetensors.h"
#include "test_util.h"

static relate_safetensors expect;

/* Element k of a tensor that may be unaligned (golden_common does not align each tensor). */
static int64_t i64_at(const relate_st_tensor *t, int k)
{
    int64_t v;
    memcpy(&v, (const char *)t->data + 8 * k, 8);
    return v;
}

static double f64_at(const relate_st_tensor *t, int k)
{
    double v;
    memcpy(&v, (const char *)t->data + 8 * k, 8);
    return v;
}

/* Bitwise equality of n values with the expected tensor `name` (F32 or I64). */
static void check_values(const char *file, const char *name, const void *got, int64_t numel, bool is_int)
{
    const relate_st_tensor *t = relate_safetensors_find(&expect, name);
    CHECK_MSG(t != NULL, "%s: no expected tensor %s", file, name);
    if (!t)
        return;
    CHECK_MSG(t->numel == numel && strcmp(t->dtype, is_int ? "I64" : "F32") == 0, "%s: %s has %lld %s values, want %lld %s",
              file, name, (long long)numel, is_int ? "I64" : "F32", (long long)t->numel, t->dtype);
    if (t->numel == numel && numel > 0)
        CHECK_MSG(memcmp(t->data, got, (size_t)numel * (is_int ? 8 : 4)) == 0, "%s: values of %s differ", file, name);
}

static void check_store(const char *file, const char *prefix, const relate_params *p)
{
    for (int i = 0; i < p->count; i++) {
        const relate_param *e = p->items[i];
        char name[256];
        snprintf(name, sizeof name, "%s.%s", prefix, e->name);
        bool is_int = e->kind == RELATE_BUFFER_I64;
        check_values(file, name, is_int ? (const void *)e->i64 : (const void *)e->data, e->numel, is_int);
    }
}

static void build_head(relate_params *rel)
{
    relate_linear_layer l1, l2;
    relate_bn_layer bn1;
    relate_error err = {0};
    relate_params_init(rel);
    relate_linear_register(&l1, rel, "linear1", 128, 256, true);
    relate_bn_register(&bn1, rel, "bn1", 256);
    relate_linear_register(&l2, rel, "linear2", 256, 1, true);
    CHECK(relate_params_finalize(rel, &err) == RELATE_OK);
}

static int collect(relate_params *p, relate_param **out)
{
    int n = 0;
    for (int i = 0; i < p->count; i++)
        if (p->items[i]->kind == RELATE_PARAM)
            out[n++] = p->items[i];
    return n;
}

static void check_full(const char *file)
{
    relate_error err = {0};
    relate_ckpt *c;
    CHECK_MSG(relate_ckpt_open(&c, file, &err) == RELATE_OK, "%s", err.msg);
    if (!c)
        return;
    printf("%s: %s format, keys: %s\n", file, relate_ckpt_get_format(c) == RELATE_CKPT_ZIP ? "zip" : "legacy",
           relate_ckpt_key_list(c));
    relate_backbone bb;
    relate_params rel;
    CHECK(relate_backbone_create(&bb, "conv4", 99, &err) == RELATE_OK);
    build_head(&rel);
    CHECK_MSG(relate_ckpt_load_state_dict(c, "backbone", &bb.params, &err) == RELATE_OK, "%s", err.msg);
    CHECK_MSG(relate_ckpt_load_state_dict(c, "relation", &rel, &err) == RELATE_OK, "%s", err.msg);
    check_store(file, "backbone", &bb.params);
    check_store(file, "relation", &rel);

    relate_param *pb[64], *ph[16], *all[80];
    int nb = collect(&bb.params, pb), nh = collect(&rel, ph);
    memcpy(all, pb, (size_t)nb * sizeof *all);
    memcpy(all + nb, ph, (size_t)nh * sizeof *all);
    relate_param_group groups[2] = {{.params = pb, .count = nb, .lr = 0.5}, {.params = ph, .count = nh, .lr = 0.5}};
    relate_adam adam;
    relate_sgd sgd;
    CHECK(relate_adam_init(&adam, groups, 2, 0.5, 0.5, 1e-3, &err) == RELATE_OK);
    CHECK(relate_sgd_init(&sgd, groups, 2, 0.9, 0.0, false, &err) == RELATE_OK);
    CHECK_MSG(relate_ckpt_load_adam(c, "optimizer", &adam, &err) == RELATE_OK, "%s", err.msg);
    CHECK_MSG(relate_ckpt_load_sgd(c, "optimizer_sgd", &sgd, &err) == RELATE_OK, "%s", err.msg);
    const relate_st_tensor *steps = relate_safetensors_find(&expect, "adam.step");
    const relate_st_tensor *alr = relate_safetensors_find(&expect, "adam.lr"), *slr = relate_safetensors_find(&expect, "sgd.lr");
    CHECK(steps && steps->numel == nb + nh && alr && slr);
    if (steps && steps->numel == nb + nh && alr && slr) {
        for (int k = 0; k < nb + nh; k++) {
            int64_t want = i64_at(steps, k);
            CHECK_MSG(adam.state[k].step == want, "%s: Adam step of %d is %lld, want %lld", file, k,
                      (long long)adam.state[k].step, (long long)want);
            char name[64];
            if (want > 0) {
                snprintf(name, sizeof name, "adam.%d.exp_avg", k);
                check_values(file, name, adam.state[k].exp_avg, all[k]->numel, false);
                snprintf(name, sizeof name, "adam.%d.exp_avg_sq", k);
                check_values(file, name, adam.state[k].exp_avg_sq, all[k]->numel, false);
            }
            snprintf(name, sizeof name, "sgd.%d.momentum_buffer", k);
            if (relate_safetensors_find(&expect, name))
                check_values(file, name, sgd.state[k].momentum_buffer, all[k]->numel, false);
            else
                CHECK_MSG(sgd.state[k].momentum_buffer == NULL, "%s: SGD state for %d", file, k);
        }
        for (int g = 0; g < 2; g++) {
            CHECK(adam.groups[g].lr == f64_at(alr, g));
            CHECK(sgd.groups[g].lr == f64_at(slr, g));
        }
        CHECK(adam.beta1 == 0.9 && adam.beta2 == 0.999 && adam.eps == 1e-8 && adam.groups[0].weight_decay == 1e-5);
        CHECK(sgd.momentum == 0.9 && sgd.dampening == 0 && !sgd.nesterov);
    }

    int64_t epoch = 0;
    const char *name = NULL;
    double lr = 0;
    CHECK(relate_ckpt_get_int(c, "epoch", &epoch, &err) == RELATE_OK && epoch == 7);
    CHECK(relate_ckpt_get_str(c, "name", &name, &err) == RELATE_OK && strcmp(name, "conv4 ckpt") == 0);
    CHECK(relate_ckpt_get_float(c, "lr", &lr, &err) == RELATE_OK && lr == 0.25);

    const char *views = relate_safetensors_meta(&expect, "views");
    char list[1024];
    snprintf(list, sizeof list, "%s", views ? views : "");
    int nviews = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ","), nviews++) {
        char path[256], ename[256];
        snprintf(path, sizeof path, "nested/views/%s", tok);
        snprintf(ename, sizeof ename, "view.%s", tok);
        relate_ckpt_tensor t;
        relate_error terr = {0};
        CHECK_MSG(relate_ckpt_get_tensor(c, path, &t, &terr) == RELATE_OK, "%s", terr.msg);
        const relate_st_tensor *e = relate_safetensors_find(&expect, ename);
        CHECK(e && e->ndim == t.ndim);
        for (int d = 0; e && d < e->ndim && d < t.ndim; d++)
            CHECK_MSG(e->shape[d] == t.shape[d], "%s: %s dim %d", file, path, d);
        check_values(file, ename, t.is_int ? (const void *)t.i64 : (const void *)t.f32, t.numel, t.is_int);
        relate_ckpt_tensor_free(&t);
    }
    CHECK(nviews >= 10);
    relate_ckpt_tensor t;
    relate_error terr = {0};
    CHECK(relate_ckpt_get_tensor(c, "nested/list/2", &t, &terr) == RELATE_ERR_FORMAT && strstr(terr.msg, "not a tensor"));

    relate_adam_free(&adam);
    relate_sgd_free(&sgd);
    relate_params_free(&rel);
    relate_backbone_free(&bb);
    relate_ckpt_close(c);
}

static void check_bare(const char *file)
{
    relate_error err = {0};
    relate_ckpt *c;
    CHECK_MSG(relate_ckpt_open(&c, file, &err) == RELATE_OK, "%s", err.msg);
    if (!c)
        return;
    CHECK(strcmp(relate_ckpt_key_list(c), "") == 0);
    relate_backbone bb;
    CHECK(relate_backbone_create(&bb, "conv4", 99, &err) == RELATE_OK);
    CHECK_MSG(relate_ckpt_load_state_dict(c, NULL, &bb.params, &err) == RELATE_OK, "%s", err.msg);
    check_store(file, "backbone", &bb.params);
    relate_backbone_free(&bb);
    relate_ckpt_close(c);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s EXPECTED.safetensors full:FILE|bare:FILE ...\n", argv[0]);
        return 2;
    }
    relate_error err = {0};
    if (relate_safetensors_open(&expect, argv[1], &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    for (int i = 2; i < argc; i++) {
        if (strncmp(argv[i], "full:", 5) == 0)
            check_full(argv[i] + 5);
        else if (strncmp(argv[i], "bare:", 5) == 0)
            check_bare(argv[i] + 5);
        else
            CHECK_MSG(0, "unknown argument %s", argv[i]);
    }
    relate_safetensors_close(&expect);
    return relate_test_finish();
}
