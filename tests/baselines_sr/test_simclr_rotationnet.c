/* test_simclr_rotationnet.c: the simclr and rotationnet methods against PyTorch goldens
 * (tools/golden_simclr.py: projection head + the reference's loss; tools/golden_rotationnet.py:
 * the rotated batch and Linear(d, 4) + cross-entropy), the interleaving of simclr's views, the
 * initial losses of spec 6.5 through relate_method_step, and the methods' data settings and
 * checkpoint keys. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "methods/method_internal.h"
#include "relate/method.h"
#include "test_util.h"

static relate_method *create(const char *method, int K)
{
    relate_method_config cfg = relate_method_defaults();
    cfg.method = method;
    cfg.K = K;
    relate_method *m = NULL;
    relate_error err = {0};
    CHECK_MSG(relate_method_create(&m, &cfg, &err) == RELATE_OK, "%s: %s", method, err.msg);
    return m;
}

static void set_from(relate_param *e, const float *v)
{
    if (e && v)
        memcpy(e->data, v, (size_t)e->numel * sizeof(float));
}

/* A golden I8 weight of codes * 2^-shift (exact in float32). */
static void set_i8(relate_param *e, const relate_safetensors *st, const char *key, int shift)
{
    const relate_st_tensor *t = relate_safetensors_find(st, key);
    CHECK_MSG(t && e && strcmp(t->dtype, "I8") == 0 && t->numel == e->numel, "%s", key);
    if (!t || !e || t->numel != e->numel)
        return;
    const int8_t *codes = t->data;
    for (int64_t i = 0; i < t->numel; i++)
        e->data[i] = ldexpf((float)codes[i], -shift);
}

/* Largest |x_i| over n values. */
static float max_abs(const float *x, int64_t n)
{
    float m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(x[i]));
    return m;
}

/* ---- simclr: head + loss on fixed interleaved features ---- */
static void check_simclr_head(const relate_safetensors *st)
{
    const int B = 6, d = 64, N = 2 * B;
    relate_method *m = create("simclr", 32);
    if (!m)
        return;
    relate_params *head = relate_simclr_head(m);
    set_i8(relate_params_find(head, "linear1.weight"), st, "head.linear1.weight_i8", 10);
    set_i8(relate_params_find(head, "linear2.weight"), st, "head.linear2.weight_i8", 11);
    static const char *const small[] = {"linear1.bias", "bn1.weight", "bn1.bias", "linear2.bias"};
    for (int i = 0; i < 4; i++) {
        char key[64];
        relate_param *e = relate_params_find(head, small[i]);
        snprintf(key, sizeof key, "head.%s", small[i]);
        set_from(e, relate_test_golden(st, key, e ? e->numel : -1));
    }
    relate_params fp;
    relate_params_init(&fp);
    relate_param *feat = relate_params_add(&fp, "features", RELATE_PARAM, 2, (int64_t[]){N, d});
    relate_error err = {0};
    CHECK(relate_params_finalize(&fp, &err) == RELATE_OK);
    set_from(feat, relate_test_golden(st, "head.features", N * d));

    relate_graph *g = relate_graph_create();
    relate_params_zero_grad(head);
    relate_tensor *z = NULL;
    relate_tensor *loss = relate_simclr_head_loss(g, m, relate_param_tensor(g, feat), &z);
    CHECK_MSG(loss && relate_graph_backward(g, loss) == RELATE_OK, "%s", relate_graph_error(g)->msg);
    if (loss) {
        relate_test_check_close("simclr head: loss", loss->data, relate_test_golden(st, "head.loss", 1), 1, 2e-6);
        relate_test_check_close("simclr head: z", z->data, relate_test_golden(st, "head.z", N * 64), (size_t)N * 64,
                                1e-5);
        relate_test_check_close("simclr head: grad.features", feat->grad,
                                relate_test_golden(st, "head.grad.features", N * d), (size_t)N * d, 1e-5);
        static const char *const names[] = {"linear1.weight", "bn1.weight", "bn1.bias", "linear2.weight",
                                            "linear2.bias"};
        for (int i = 0; i < 5; i++) {
            relate_param *e = relate_params_find(head, names[i]);
            char key[64], label[96];
            snprintf(key, sizeof key, "head.grad.%s", names[i]);
            snprintf(label, sizeof label, "simclr head: %s", key);
            relate_test_check_close(label, e->grad, relate_test_golden(st, key, e->numel), (size_t)e->numel, 1e-5);
        }
        /* A bias right before batch norm has a zero gradient in exact arithmetic: noise only. */
        relate_param *b1 = relate_params_find(head, "linear1.bias");
        const float *gb1 = relate_test_golden(st, "head.grad.linear1.bias", 256);
        CHECK_MSG(max_abs(b1->grad, 256) < 1e-6f && gb1 && max_abs(gb1, 256) < 1e-6f, "linear1.bias grad %g",
                  (double)max_abs(b1->grad, 256));
        relate_test_check_close("simclr head: bn1.running_mean", relate_params_find(head, "bn1.running_mean")->data,
                                relate_test_golden(st, "head.bn1.running_mean", 256), 256, 1e-6);
        relate_test_check_close("simclr head: bn1.running_var", relate_params_find(head, "bn1.running_var")->data,
                                relate_test_golden(st, "head.bn1.running_var", 256), 256, 1e-6);
        CHECK(relate_params_find(head, "bn1.num_batches_tracked")->i64[0] == 1);
    }
    relate_graph_destroy(g);
    relate_params_free(&fp);
    relate_method_free(m);
}

/* The loss op alone on given embeddings, with rows whose norm products fall under eps. */
static void check_simclr_loss_cases(const relate_safetensors *st)
{
    relate_params fp;
    relate_params_init(&fp);
    relate_param *zc = relate_params_add(&fp, "clamp", RELATE_PARAM, 2, (int64_t[]){8, 5});
    relate_param *zp = relate_params_add(&fp, "pair", RELATE_PARAM, 2, (int64_t[]){2, 5});
    relate_error err = {0};
    CHECK(relate_params_finalize(&fp, &err) == RELATE_OK);
    set_from(zc, relate_test_golden(st, "clamp.z", 40));
    set_from(zp, relate_test_golden(st, "pair.z", 10));
    relate_graph *g = relate_graph_create();
    relate_params_zero_grad(&fp);
    relate_tensor *lc = relate_simclr_loss(g, relate_param_tensor(g, zc), 0.5f, 1e-8f);
    relate_tensor *lp = relate_simclr_loss(g, relate_param_tensor(g, zp), 0.5f, 1e-8f);
    relate_tensor *total = relate_add(g, lc, lp);
    CHECK_MSG(total && relate_graph_backward(g, total) == RELATE_OK, "%s", relate_graph_error(g)->msg);
    const float *want = relate_test_golden(st, "clamp.grad.z", 40);
    if (total && want) {
        /* Column 6's denominator is 7.52 - e^2 = 0.133: the cancellation leaves PyTorch's float32
         * loss 1.4e-5 (relative) from the float64 value, which relate meets tightly. */
        relate_test_check_close("simclr loss clamp: loss vs float32", lc->data,
                                relate_test_golden(st, "clamp.loss", 1), 1, 3e-5);
        const relate_st_tensor *l64 = relate_safetensors_find(st, "clamp.loss64");
        CHECK(l64 && strcmp(l64->dtype, "F64") == 0);
        if (l64) {
            double w64;
            memcpy(&w64, l64->data, sizeof w64);
            float w = (float)w64;
            relate_test_check_close("simclr loss clamp: loss vs float64", lc->data, &w, 1, 5e-6);
        }
        /* Rows 3 (zero) and 6 (norm 1e-9) have gradients ~1e9 (divided by eps): compare them and
         * the ordinary rows separately so neither hides the other. */
        float got_rest[30], want_rest[30];
        for (int r = 0, k = 0; r < 8; r++)
            if (r != 3 && r != 6) {
                memcpy(got_rest + 5 * k, zc->grad + 5 * r, 5 * sizeof(float));
                memcpy(want_rest + 5 * k, want + 5 * r, 5 * sizeof(float));
                k++;
            }
        relate_test_check_close("simclr loss clamp: grad rows 3 (zero)", zc->grad + 15, want + 15, 5, 1e-5);
        relate_test_check_close("simclr loss clamp: grad row 6 (tiny)", zc->grad + 30, want + 30, 5, 1e-5);
        relate_test_check_close("simclr loss clamp: grad other rows", got_rest, want_rest, 30, 1e-5);
        /* B = 1: the ratio is exactly 1, the loss 0 and the gradient 0 up to rounding. */
        const float *pl = relate_test_golden(st, "pair.loss", 1), *pg = relate_test_golden(st, "pair.grad.z", 10);
        CHECK_MSG(fabsf(lp->data[0]) < 1e-5f && pl && fabsf(pl[0]) < 1e-5f, "pair loss %g", (double)lp->data[0]);
        CHECK_MSG(max_abs(zp->grad, 10) < 1e-5f && pg && max_abs(pg, 10) < 1e-5f, "pair grad %g",
                  (double)max_abs(zp->grad, 10));
    }
    /* Shapes the op refuses: an odd number of rows. */
    relate_graph_reset(g);
    CHECK(relate_simclr_loss(g, relate_tensor_zeros(g, 2, (int64_t[]){3, 4}), 0.5f, 1e-8f) == NULL &&
          relate_graph_status(g) == RELATE_ERR_SHAPE);
    relate_graph_destroy(g);
    relate_params_free(&fp);
}

static void check_interleave(void)
{
    const int B = 3;
    const size_t img = 4;
    float views[2 * 3 * 4], out[2 * 3 * 4];
    for (int i = 0; i < 2 * B * (int)img; i++)
        views[i] = (float)i;
    relate_simclr_interleave(out, views, B, img);
    int ok = 1;
    for (int n = 0; n < B; n++)
        for (size_t j = 0; j < img; j++) {
            ok &= out[(2 * n) * img + j] == views[n * img + j];
            ok &= out[(2 * n + 1) * img + j] == views[(B + n) * img + j];
        }
    CHECK(ok);
}

/* ---- rotationnet ---- */
static void check_rotations(const relate_safetensors *st)
{
    static const int cases[2][2] = {{5, 2}, {4, 3}}; /* S, B */
    for (int c = 0; c < 2; c++) {
        const int S = cases[c][0], B = cases[c][1];
        char kx[32], ky[32];
        snprintf(kx, sizeof kx, "rot%d.x", S);
        snprintf(ky, sizeof ky, "rot%d.y", S);
        const size_t n = (size_t)B * 3 * S * S;
        const float *x = relate_test_golden(st, kx, (int64_t)n);
        const float *y = relate_test_golden(st, ky, (int64_t)(4 * n));
        if (!x || !y)
            continue;
        float *got = malloc(4 * n * sizeof *got);
        relate_rotation_batch(got, x, B, 3, S);
        CHECK_MSG(memcmp(got, y, 4 * n * sizeof *got) == 0, "rotated batch S = %d differs from the reference", S);
        free(got);
    }
}

static void check_rotation_ce(const relate_safetensors *st)
{
    const int B = 6, d = 64, N = 4 * B;
    relate_method *m = create("rotationnet", 32);
    if (!m)
        return;
    relate_linear_layer *cls = relate_rotationnet_classifier(m);
    set_from(cls->weight, relate_test_golden(st, "ce.weight", 4 * d));
    set_from(cls->bias, relate_test_golden(st, "ce.bias", 4));
    relate_params fp;
    relate_params_init(&fp);
    relate_param *feat = relate_params_add(&fp, "features", RELATE_PARAM, 2, (int64_t[]){N, d});
    relate_error err = {0};
    CHECK(relate_params_finalize(&fp, &err) == RELATE_OK);
    set_from(feat, relate_test_golden(st, "ce.features", N * d));
    relate_graph *g = relate_graph_create();
    memset(cls->weight->grad, 0, (size_t)cls->weight->numel * sizeof(float));
    memset(cls->bias->grad, 0, 4 * sizeof(float));
    relate_tensor *logits = NULL;
    relate_tensor *loss = relate_rotationnet_loss(g, m, relate_param_tensor(g, feat), B, &logits);
    CHECK_MSG(loss && relate_graph_backward(g, loss) == RELATE_OK, "%s", relate_graph_error(g)->msg);
    if (loss) {
        relate_test_check_close("rotationnet: loss", loss->data, relate_test_golden(st, "ce.loss", 1), 1, 1e-6);
        relate_test_check_close("rotationnet: logits", logits->data, relate_test_golden(st, "ce.logits", N * 4),
                                (size_t)N * 4, 1e-6);
        relate_test_check_close("rotationnet: grad.features", feat->grad,
                                relate_test_golden(st, "ce.grad.features", N * d), (size_t)N * d, 1e-5);
        relate_test_check_close("rotationnet: grad.weight", cls->weight->grad,
                                relate_test_golden(st, "ce.grad.weight", 4 * d), (size_t)4 * d, 1e-5);
        relate_test_check_close("rotationnet: grad.bias", cls->bias->grad, relate_test_golden(st, "ce.grad.bias", 4),
                                4, 1e-5);
        const relate_st_tensor *t = relate_safetensors_find(st, "ce.targets");
        const relate_st_tensor *acc = relate_safetensors_find(st, "ce.acc");
        CHECK(t && acc && t->numel == N && acc->numel == 1);
        if (t && acc) {
            const int32_t *tg = t->data;
            int ok = 1, correct = 0;
            for (int i = 0; i < N; i++) {
                ok &= tg[i] == i / B;
                const float *row = logits->data + 4 * i;
                int best = 0;
                for (int k = 1; k < 4; k++)
                    if (row[k] > row[best])
                        best = k;
                correct += best == tg[i];
            }
            double a;
            memcpy(&a, acc->data, sizeof a);
            CHECK_MSG(ok, "rotation targets are [0]*B, [1]*B, [2]*B, [3]*B");
            CHECK_MSG(fabs(100.0 * correct / N - a) < 1e-9, "accuracy %g vs %g", 100.0 * correct / N, a);
        }
    }
    relate_graph_destroy(g);
    relate_params_free(&fp);
    relate_method_free(m);
}

/* ---- relate_method_step on synthetic batches ---- */
static relate_step_result step_once(const char *method, int views, int B, int S, uint64_t fill_seed,
                                    bool same_views)
{
    relate_step_result r = {0};
    const size_t img = (size_t)3 * S * S;
    float *images = malloc((size_t)views * B * img * sizeof *images);
    relate_test_fill(images, (size_t)views * B * img, fill_seed);
    if (same_views)
        memcpy(images + (size_t)B * img, images, (size_t)B * img * sizeof *images);
    relate_batch batch = {.number = 0, .size = B, .views = views, .side = S, .images = images};
    relate_method *m = create(method, 32);
    if (m) {
        relate_graph *g = relate_graph_create();
        relate_error err = {0};
        CHECK_MSG(relate_method_step(m, g, &batch, &r, &err) == RELATE_OK, "%s: %s", method, err.msg);
        relate_graph_destroy(g);
        relate_method_free(m);
    }
    free(images);
    return r;
}

static void check_initial_losses(void)
{
    /* Spec 6.5: simclr ~ ln(2B - 1) (nothing is similar yet); a loss that kept the self term
     * (ln(2B - 1 + e^2)) or used tau = 1 would be well outside the bound. */
    const int B = 16;
    for (int s = 0; s < 3; s++) {
        relate_step_result r = step_once("simclr", 2, B, 32, 100 + s, false);
        printf("simclr initial loss (B = %d, seed %d): %.6f (ln(2B-1) = %.6f)\n", B, s, r.loss, log(2.0 * B - 1));
        CHECK_MSG(fabs(r.loss - log(2.0 * B - 1)) < 0.08, "simclr initial loss %g", r.loss);
        CHECK(r.items == 2 * B && r.score == -r.loss);
    }
    /* Two identical views: with the views interleaved, partners have equal features and the
     * numerator is the largest possible, e^2, so the loss falls far below ln(2B - 1) (to
     * ln((e^2 + sum of the 2B - 2 negatives) / e^2)); without the interleave the partners would
     * be different images and the loss would stay near ln(2B - 1). */
    relate_step_result same = step_once("simclr", 2, B, 32, 100, true);
    printf("simclr loss with identical views: %.6f (ln(2B-1) - 1 = %.6f)\n", same.loss, log(2.0 * B - 1) - 1);
    CHECK_MSG(same.loss > 0 && same.loss < log(2.0 * B - 1) - 1, "simclr identical-view loss %g", same.loss);

    for (int s = 0; s < 3; s++) {
        relate_step_result r = step_once("rotationnet", 1, B, 32, 200 + s, false);
        printf("rotationnet initial loss (B = %d, seed %d): %.6f (ln 4 = %.6f), acc %.2f%%\n", B, s, r.loss,
               log(4.0), r.score);
        CHECK_MSG(fabs(r.loss - log(4.0)) < 0.08, "rotationnet initial loss %g", r.loss);
        CHECK(r.items == 4 * B && r.score >= 0 && r.score <= 100);
    }
}

static void check_settings(void)
{
    relate_dataset_info info = {0};
    info.unsupervised_split = RELATE_SPLIT_UNLABELED;
    relate_method *m = create("simclr", 32);
    if (m) {
        CHECK(relate_method_views(m) == 2 && relate_method_pipeline(m, &info) == RELATE_T1 &&
              relate_method_split(m, &info) == RELATE_SPLIT_UNLABELED && !relate_method_drop_last(m) &&
              relate_method_trains(m) && relate_method_classifier(m) == NULL);
        CHECK(relate_params_count_trainable(relate_simclr_head(m)) == 33600); /* spec 3.2, d = 64 */
        relate_method_free(m);
    }
    m = create("rotationnet", 32);
    if (m) {
        CHECK(relate_method_views(m) == 1 && relate_method_pipeline(m, &info) == RELATE_T3 &&
              relate_method_split(m, &info) == RELATE_SPLIT_UNLABELED && !relate_method_drop_last(m) &&
              relate_method_trains(m) && relate_method_classifier(m) == NULL);
        relate_method_free(m);
    }
    /* resnet34 (d = 512): simclr's head has 148,288 parameters (spec 3.2). */
    relate_method_config cfg = relate_method_defaults();
    cfg.method = "simclr";
    cfg.backbone = "resnet34";
    relate_error err = {0};
    CHECK(relate_method_create(&m, &cfg, &err) == RELATE_OK);
    if (m) {
        CHECK(relate_params_count_trainable(relate_simclr_head(m)) == 148288);
        relate_method_free(m);
    }
}

/* The checkpoint dictionaries: keys in the reference's order, and a round trip that restores
 * the heads and refuses the other method's file. */
static void check_checkpoints(void)
{
    static const char *const methods[2] = {"simclr", "rotationnet"};
    static const char *const keylists[2] = {"backbone, head, optimizer", "classifier, backbone, optimizer"};
    for (int i = 0; i < 2; i++) {
        relate_step_result r = {0};
        relate_method *m = create(methods[i], 32);
        if (!m)
            continue;
        const int views = i == 0 ? 2 : 1, B = 4, S = 32;
        float *images = malloc((size_t)views * B * 3 * S * S * sizeof *images);
        relate_test_fill(images, (size_t)views * B * 3 * S * S, 7);
        relate_batch batch = {.size = B, .views = views, .side = S, .images = images};
        relate_graph *g = relate_graph_create();
        relate_error err = {0};
        CHECK(relate_method_step(m, g, &batch, &r, &err) == RELATE_OK);
        char path[128];
        snprintf(path, sizeof path, "test_sr_%s.tar", methods[i]);
        relate_ckpt_writer *w = relate_ckpt_writer_create();
        CHECK(relate_method_save(m, w, &err) == RELATE_OK && relate_ckpt_write(w, path, &err) == RELATE_OK);
        relate_ckpt_writer_free(w);
        relate_ckpt *c = NULL;
        CHECK_MSG(relate_ckpt_open(&c, path, &err) == RELATE_OK, "%s", err.msg);
        if (c) {
            CHECK_MSG(strcmp(relate_ckpt_key_list(c), keylists[i]) == 0, "%s keys: %s", methods[i],
                      relate_ckpt_key_list(c));
            relate_method *m2 = create(methods[i], 32);
            CHECK_MSG(relate_method_load(m2, c, &err) == RELATE_OK, "%s", err.msg);
            relate_params *h1 = i == 0 ? relate_simclr_head(m) : NULL, *h2 = i == 0 ? relate_simclr_head(m2) : NULL;
            if (h1)
                for (int k = 0; k < h1->count; k++)
                    if (h1->items[k]->kind != RELATE_BUFFER_I64)
                        CHECK(memcmp(h1->items[k]->data, h2->items[k]->data,
                                     (size_t)h1->items[k]->numel * sizeof(float)) == 0);
            if (i == 1)
                CHECK(memcmp(relate_rotationnet_classifier(m)->weight->data,
                             relate_rotationnet_classifier(m2)->weight->data, 4 * 64 * sizeof(float)) == 0);
            /* The steps continue identically after the restore. */
            relate_step_result r1, r2;
            CHECK(relate_method_step(m, g, &batch, &r1, &err) == RELATE_OK);
            CHECK(relate_method_step(m2, g, &batch, &r2, &err) == RELATE_OK);
            CHECK_MSG(r1.loss == r2.loss, "%s resumed loss %.9g vs %.9g", methods[i], r2.loss, r1.loss);
            relate_method_free(m2);
            /* The other method refuses this file, naming what is missing. */
            m2 = create(methods[1 - i], 32);
            err = (relate_error){0};
            CHECK(relate_method_load(m2, c, &err) == RELATE_ERR_FORMAT && strstr(err.msg, "lacks"));
            relate_method_free(m2);
            relate_ckpt_close(c);
        }
        remove(path);
        relate_graph_destroy(g);
        relate_method_free(m);
        free(images);
    }
}

/* Wrong views are refused with a message. */
static void check_errors(void)
{
    relate_step_result r = {0};
    float images[3 * 8 * 8] = {0};
    relate_batch batch = {.size = 1, .views = 1, .side = 8, .images = images};
    relate_method *m = create("simclr", 32);
    relate_graph *g = relate_graph_create();
    relate_error err = {0};
    if (m)
        CHECK(relate_method_step(m, g, &batch, &r, &err) == RELATE_ERR_ARG && strstr(err.msg, "expected 2"));
    relate_method_free(m);
    batch.views = 2;
    m = create("rotationnet", 32);
    err = (relate_error){0};
    if (m)
        CHECK(relate_method_step(m, g, &batch, &r, &err) == RELATE_ERR_ARG && strstr(err.msg, "expected 1"));
    relate_method_free(m);
    relate_graph_destroy(g);
}

int main(void)
{
    relate_safetensors st;
    relate_test_open_golden(&st, "simclr.safetensors");
    check_simclr_head(&st);
    check_simclr_loss_cases(&st);
    relate_safetensors_close(&st);
    check_interleave();
    relate_test_open_golden(&st, "rotationnet.safetensors");
    check_rotations(&st);
    check_rotation_ce(&st);
    relate_safetensors_close(&st);
    check_initial_losses();
    check_settings();
    check_checkpoints();
    check_errors();
    return relate_test_finish();
}
