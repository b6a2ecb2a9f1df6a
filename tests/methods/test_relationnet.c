/* test_relationnet.c: relationnet's pairs, head, focal loss and metrics against PyTorch goldens
 * (tools/golden_relationnet.py: the reference's block-by-block torch.cat/torch.roll), for every
 * aggregation, with the factorised head and with the literal one; and a full training step of
 * both heads side by side. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "methods/method_internal.h"
#include "relate/method.h"
#include "test_util.h"

static void set_param(relate_params *p, const relate_safetensors *st, const char *prefix, const char *name)
{
    relate_param *e = relate_params_find(p, name);
    char key[128];
    snprintf(key, sizeof key, "%s.%s", prefix, name);
    const float *v = relate_test_golden(st, key, e ? e->numel : -1);
    CHECK_MSG(e != NULL, "%s", name);
    if (e && v)
        memcpy(e->data, v, (size_t)e->numel * sizeof(float));
}

static void check_golden(const relate_safetensors *st, const char *agg, bool factorised)
{
    const int K = 4, B = 5, d = 64;
    relate_method_config cfg = relate_method_defaults();
    cfg.K = K;
    cfg.aggregation = agg;
    cfg.factorised_head = factorised;
    relate_method *m;
    relate_error err = {0};
    CHECK_MSG(relate_method_create(&m, &cfg, &err) == RELATE_OK, "%s", err.msg);
    relate_params *head = relate_relationnet_head(m);
    static const char *const names[] = {"linear1.weight", "linear1.bias", "bn1.weight", "bn1.bias",
                                        "linear2.weight", "linear2.bias"};
    for (int i = 0; i < 6; i++)
        set_param(head, st, agg, names[i]);

    relate_params fp;
    relate_params_init(&fp);
    relate_param *feat = relate_params_add(&fp, "features", RELATE_PARAM, 2, (int64_t[]){K * B, d});
    CHECK(relate_params_finalize(&fp, &err) == RELATE_OK);
    char key[128];
    snprintf(key, sizeof key, "%s.features", agg);
    memcpy(feat->data, relate_test_golden(st, key, K * B * d), (size_t)K * B * d * sizeof(float));

    relate_graph *g = relate_graph_create();
    relate_params_zero_grad(head);
    relate_tensor *logits = NULL;
    relate_tensor *loss = relate_relationnet_loss(g, m, relate_param_tensor(g, feat), B, &logits, &err);
    CHECK_MSG(loss && relate_graph_backward(g, loss) == RELATE_OK, "%s", relate_graph_error(g)->msg);
    if (!loss) {
        relate_graph_destroy(g);
        relate_params_free(&fp);
        relate_method_free(m);
        return;
    }
    const int64_t P = (int64_t)B * K * (K - 1);
    char label[160];
    const char *mode = factorised ? "factorised" : "literal";
#define CLOSE(gotp, n, gname, bound)                                                                               \
    do {                                                                                                           \
        snprintf(key, sizeof key, "%s.%s", agg, gname);                                                            \
        snprintf(label, sizeof label, "%s %s %s", agg, mode, gname);                                               \
        const float *want = relate_test_golden(st, key, n);                                                        \
        if (want)                                                                                                  \
            relate_test_check_close(label, gotp, want, (size_t)(n), bound);                                        \
    } while (0)
    CLOSE(loss->data, 1, "loss", 1e-6);
    CLOSE(logits->data, P, "logits", 1e-5);
    CLOSE(relate_relationnet_targets(m), P, "targets", 0);
    CLOSE(feat->grad, K * B * d, "grad.features", 1e-5);
    for (int i = 0; i < 6; i++) {
        relate_param *e = relate_params_find(head, names[i]);
        char gname[64];
        snprintf(gname, sizeof gname, "grad.%s", names[i]);
        if (strcmp(names[i], "linear1.bias") == 0) {
            /* A bias right before batch norm has an exactly zero gradient in exact arithmetic; both
             * sides hold rounding noise, so only its size is checked. */
            float worst = 0;
            for (int64_t j = 0; j < e->numel; j++)
                worst = fmaxf(worst, fabsf(e->grad[j]));
            CHECK_MSG(worst < 1e-6f, "%s %s linear1.bias grad %g", agg, mode, worst);
            continue;
        }
        CLOSE(e->grad, e->numel, gname, 1e-5);
    }
    CLOSE(relate_params_find(head, "bn1.running_mean")->data, 256, "bn1.running_mean", 1e-6);
    CLOSE(relate_params_find(head, "bn1.running_var")->data, 256, "bn1.running_var", 1e-6);
    snprintf(key, sizeof key, "%s.acc", agg);
    const relate_st_tensor *acc = relate_safetensors_find(st, key);
    CHECK(acc && acc->numel == 3);
    if (acc) {
        double a[3]; /* golden F64 data need not be 8-byte aligned */
        memcpy(a, acc->data, sizeof a);
        const float *t = relate_relationnet_targets(m);
        CHECK_MSG(fabs(relate_binary_accuracy(logits->data, t, 0, P) - a[0]) < 1e-9, "%s acc", agg);
        CHECK_MSG(fabs(relate_binary_accuracy(logits->data, t, 0, P / 2) - a[1]) < 1e-9, "%s acc+", agg);
        CHECK_MSG(fabs(relate_binary_accuracy(logits->data, t, P / 2, P) - a[2]) < 1e-9, "%s acc-", agg);
    }
    CHECK(relate_params_find(head, "bn1.num_batches_tracked")->i64[0] == 1);
    relate_graph_destroy(g);
    relate_params_free(&fp);
    relate_method_free(m);
}

/* One relate_method_step per head on the same synthetic batch: same loss, same update. */
static void check_step_equivalence(void)
{
    const int K = 3, B = 4, S = 32;
    float *images = malloc((size_t)K * B * 3 * S * S * sizeof *images);
    relate_test_fill(images, (size_t)K * B * 3 * S * S, 5);
    relate_batch batch = {.number = 0, .size = B, .views = K, .side = S, .images = images};
    relate_method *m[2];
    relate_step_result r[2];
    relate_error err = {0};
    for (int i = 0; i < 2; i++) {
        relate_method_config cfg = relate_method_defaults();
        cfg.K = K;
        cfg.factorised_head = i == 0;
        CHECK_MSG(relate_method_create(&m[i], &cfg, &err) == RELATE_OK, "%s", err.msg);
        relate_graph *g = relate_graph_create();
        CHECK_MSG(relate_method_step(m[i], g, &batch, &r[i], &err) == RELATE_OK, "%s", err.msg);
        relate_graph_destroy(g);
    }
    CHECK(r[0].items == (int64_t)B * K * (K - 1) && r[1].items == r[0].items);
    CHECK_MSG(fabs(r[0].loss - r[1].loss) <= 1e-6 * fabs(r[1].loss), "loss %.9g vs %.9g", r[0].loss, r[1].loss);
    CHECK(fabs(r[0].loss - 0.0866) < 0.03); /* spec 6.5: about 0.5 * 0.25 * ln 2 at initialisation */
    relate_params *p0 = &m[0]->backbone.params, *p1 = &m[1]->backbone.params;
    for (int i = 0; i < p0->count; i++)
        if (p0->items[i]->kind != RELATE_BUFFER_I64)
            relate_test_check_close(p0->items[i]->name, p0->items[i]->data, p1->items[i]->data,
                                    (size_t)p0->items[i]->numel, 5e-3);
    relate_method_free(m[0]);
    relate_method_free(m[1]);
    free(images);
}

/* A NaN input reaches the loss: the step refuses it (RELATE_ERR_NUMERIC) and no weight moves. */
static void check_nan_step(void)
{
    const int K = 2, B = 3, S = 32;
    const size_t n = (size_t)K * B * 3 * S * S;
    float *images = malloc(n * sizeof *images);
    relate_test_fill(images, n, 9);
    images[17] = NAN;
    relate_batch batch = {.number = 0, .size = B, .views = K, .side = S, .images = images};
    relate_method_config cfg = relate_method_defaults();
    cfg.K = K;
    relate_method *m;
    relate_error err = {0};
    CHECK(relate_method_create(&m, &cfg, &err) == RELATE_OK);
    relate_param *w = m->backbone.params.items[0];
    float before = w->data[0];
    relate_graph *g = relate_graph_create();
    relate_step_result r;
    CHECK(relate_method_step(m, g, &batch, &r, &err) == RELATE_ERR_NUMERIC);
    CHECK_MSG(strstr(err.msg, "NaN") != NULL, "%s", err.msg);
    CHECK(w->data[0] == before);
    relate_graph_destroy(g);
    relate_method_free(m);
    free(images);
}

static void check_errors(void)
{
    relate_method *m;
    relate_error err = {0};
    relate_method_config cfg = relate_method_defaults();
    cfg.aggregation = "concat";
    CHECK(relate_method_create(&m, &cfg, &err) == RELATE_ERR_ARG && strstr(err.msg, "cat, sum, mean, max"));
    cfg = relate_method_defaults();
    cfg.K = 1;
    err = (relate_error){0};
    CHECK(relate_method_create(&m, &cfg, &err) == RELATE_ERR_ARG && strstr(err.msg, "--K"));
    cfg = relate_method_defaults();
    cfg.method = "bogus";
    err = (relate_error){0};
    CHECK(relate_method_create(&m, &cfg, &err) == RELATE_ERR_ARG && strstr(err.msg, "unknown method"));
    CHECK(relate_is_save_epoch(49, 200) && relate_is_save_epoch(99, 200) && relate_is_save_epoch(149, 200) &&
          relate_is_save_epoch(199, 200) && !relate_is_save_epoch(50, 200));
    CHECK(relate_is_save_epoch(74, 300) && relate_is_save_epoch(224, 300));
}

int main(void)
{
    relate_safetensors st;
    relate_test_open_golden(&st, "relationnet.safetensors");
    static const char *const aggs[] = {"cat", "sum", "mean", "max"};
    for (int a = 0; a < 4; a++) {
        check_golden(&st, aggs[a], true);
        check_golden(&st, aggs[a], false);
    }
    relate_test_check_close("bce essential loss present", relate_test_golden(&st, "bce.loss", 1),
                            relate_test_golden(&st, "bce.loss", 1), 1, 0);
    relate_safetensors_close(&st);
    check_step_equivalence();
    check_nan_step();
    check_errors();
    return relate_test_finish();
}
