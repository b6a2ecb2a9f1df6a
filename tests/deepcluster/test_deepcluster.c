/* test_deepcluster.c: deepcluster (spec 3.5) piece by piece: the wrap-around 8-bit conversion
 * against torch/torchvision, PCA whitening against scikit-learn's formulas (numpy), Lloyd's
 * iterations against a numpy transcription of sklearn's, k-means++ by its properties (distinct
 * rows, D^2 sampling statistics, one centre per separated blob), restarts, determinism, the head
 * and weighted cross-entropy against PyTorch, the double augmentation and its loader hook, and the
 * initial loss ~ ln k of a fresh network (spec 6.5).
 * Goldens: tools/golden_deepcluster.py -> tests/golden/deepcluster.safetensors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "methods/deepcluster.h"
#include "methods/kmeans.h"
#include "methods/method_internal.h"
#include "methods/pca.h"
#include "relate/loader.h"
#include "test_util.h"

static const void *raw(const relate_safetensors *st, const char *name, const char *dtype, int64_t numel)
{
    const relate_st_tensor *t = relate_safetensors_find(st, name);
    if (!t || strcmp(t->dtype, dtype) != 0 || (numel >= 0 && t->numel != numel)) {
        CHECK_MSG(0, "golden tensor %s: %s", name, !t ? "missing" : "wrong dtype or size");
        return NULL;
    }
    return t->data;
}

static int64_t golden_numel(const relate_safetensors *st, const char *name)
{
    const relate_st_tensor *t = relate_safetensors_find(st, name);
    return t ? t->numel : 0;
}

/* ------------------------------------------------------------------ wrap-around */
static void test_wrap(const relate_safetensors *st)
{
    const int S = 8;
    const float *x = relate_test_golden(st, "wrap.x", 3 * S * S);
    const uint8_t *img = raw(st, "wrap.img", "U8", 3 * S * S);
    if (x && img) {
        uint8_t got[3 * 8 * 8];
        relate_deepcluster_tensor_to_image(x, S, got);
        int bad = 0;
        for (int i = 0; i < 3 * S * S; i++)
            bad += got[i] != img[i];
        CHECK_MSG(bad == 0, "to_pil_image wrap-around: %d of %d bytes differ", bad, 3 * S * S);
    }
    const int64_t m = golden_numel(st, "wrap.v");
    const float *v = relate_test_golden(st, "wrap.v", m);
    const uint8_t *b = raw(st, "wrap.b", "U8", m);
    for (int64_t i = 0; v && b && i < m; i++)
        CHECK_MSG(relate_deepcluster_to_u8(v[i]) == b[i], "byte(%g * 255): relate %u, torch %u", v[i],
                  relate_deepcluster_to_u8(v[i]), b[i]);
}

/* ------------------------------------------------------------------ PCA */
/* got vs want [n, c] up to the sign of each column; returns the number of flipped columns. */
static int check_up_to_sign(const char *name, const float *got, const float *want, int64_t n, int c, double bound)
{
    float *g = malloc((size_t)n * c * sizeof *g);
    int flips = 0;
    for (int j = 0; j < c; j++) {
        double dot = 0;
        for (int64_t i = 0; i < n; i++)
            dot += (double)got[i * c + j] * want[i * c + j];
        const float s = dot < 0 ? -1.0f : 1.0f;
        flips += dot < 0;
        for (int64_t i = 0; i < n; i++)
            g[i * c + j] = s * got[i * c + j];
    }
    relate_test_check_close(name, g, want, (size_t)n * c, bound);
    free(g);
    return flips;
}

static void test_pca_case(const relate_safetensors *st, const char *pre, int64_t n, int d, int nc)
{
    char key[64];
    snprintf(key, sizeof key, "%s.x", pre);
    const float *x = relate_test_golden(st, key, n * d);
    snprintf(key, sizeof key, "%s.out", pre);
    const float *want = relate_test_golden(st, key, n * nc);
    snprintf(key, sizeof key, "%s.ev", pre);
    const float *want_ev = relate_test_golden(st, key, nc);
    if (!x || !want || !want_ev)
        return;
    float *out = malloc((size_t)n * nc * sizeof *out);
    double ev[64];
    float evf[64];
    relate_error err = {0};
    CHECK_MSG(relate_pca_whiten(x, n, d, nc, out, ev, &err) == RELATE_OK, "%s", err.msg);
    for (int c = 0; c < nc; c++)
        evf[c] = (float)ev[c];
    snprintf(key, sizeof key, "%s explained variance", pre);
    relate_test_check_close(key, evf, want_ev, (size_t)nc, 1e-6);
    snprintf(key, sizeof key, "%s whitened", pre);
    const int flips = check_up_to_sign(key, out, want, n, nc, 2e-5);
    CHECK_MSG(flips == 0, "%s: %d columns have the opposite sign of sklearn's svd_flip", pre, flips);

    /* Row normalisation: unit rows in the same direction. */
    relate_l2_normalize_rows(out, n, nc);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double norm = 0, wn = 0;
        for (int c = 0; c < nc; c++) {
            norm += (double)out[i * nc + c] * out[i * nc + c];
            wn += (double)want[i * nc + c] * want[i * nc + c];
        }
        wn = sqrt(wn);
        worst = fmax(worst, fabs(sqrt(norm) - 1.0));
        for (int c = 0; c < nc; c++)
            worst = fmax(worst, fabs(out[i * nc + c] - want[i * nc + c] / wn));
    }
    CHECK_MSG(worst < 1e-5, "%s: L2-normalised rows off by %g", pre, worst);
    free(out);
}

static void test_pca(const relate_safetensors *st)
{
    test_pca_case(st, "pca", 160, 16, 16);
    test_pca_case(st, "pcar", 160, 24, 12);
    CHECK(relate_pca_components(64) == 64 && relate_pca_components(511) == 511 && relate_pca_components(512) == 256);

    const float *x = relate_test_golden(st, "pca.x", 160 * 16);
    if (!x)
        return;
    const int64_t n = 160;
    const int d = 16;
    float *xd = malloc((size_t)n * d * sizeof *xd), *out = malloc((size_t)n * d * sizeof *out);
    float *out1 = malloc((size_t)n * d * sizeof *out1);
    relate_error err = {0};

    /* A dead feature (constant column): its direction has zero variance and gives a zero column;
     * the others keep unit variance. */
    memcpy(xd, x, (size_t)n * d * sizeof *xd);
    for (int64_t i = 0; i < n; i++)
        xd[i * d + 5] = 3.25f;
    CHECK(relate_pca_whiten(xd, n, d, d, out, NULL, &err) == RELATE_OK);
    int zero_cols = 0, unit_cols = 0;
    for (int c = 0; c < d; c++) {
        double s = 0;
        bool all_zero = true;
        for (int64_t i = 0; i < n; i++) {
            s += (double)out[i * d + c] * out[i * d + c];
            all_zero &= out[i * d + c] == 0.0f;
        }
        zero_cols += all_zero;
        unit_cols += fabs(s / (double)(n - 1) - 1.0) < 1e-5;
    }
    CHECK_MSG(zero_cols == 1 && unit_cols == d - 1, "dead feature: %d zero columns, %d unit-variance columns",
              zero_cols, unit_cols);

    /* Same bits with 1 and 2 threads. */
    relate_set_threads(1);
    CHECK(relate_pca_whiten(x, n, d, d, out1, NULL, &err) == RELATE_OK);
    relate_set_threads(2);
    CHECK(relate_pca_whiten(x, n, d, d, out, NULL, &err) == RELATE_OK);
    CHECK_MSG(memcmp(out, out1, (size_t)n * d * sizeof *out) == 0, "PCA differs between 1 and 2 threads");

    CHECK(relate_pca_whiten(x, 1, d, d, out, NULL, &err) == RELATE_ERR_ARG);
    CHECK(relate_pca_whiten(x, n, d, d + 1, out, NULL, &err) == RELATE_ERR_ARG);
    free(xd);
    free(out);
    free(out1);
}

/* ------------------------------------------------------------------ k-means */
static void test_lloyd(const relate_safetensors *st, const char *pre, int64_t n, int k, int f)
{
    char key[64];
#define G(name, dt, cnt) (snprintf(key, sizeof key, "%s.%s", pre, name), raw(st, key, dt, cnt))
    const float *x = G("x", "F32", n * f);
    const float *init = G("init", "F32", (int64_t)k * f);
    const int32_t *want_labels = G("labels", "I32", n);
    const float *want_centers = G("centers", "F32", (int64_t)k * f);
    const void *inertia_p = G("inertia", "F64", 1);
    const int32_t *want_iter = G("n_iter", "I32", 1);
    const void *tol_p = G("tol", "F64", 1);
#undef G
    if (!x || !init || !want_labels || !want_centers || !inertia_p || !want_iter || !tol_p)
        return;
    double want_inertia[1], want_tol[1]; /* safetensors data need not be 8-byte aligned */
    memcpy(want_inertia, inertia_p, sizeof want_inertia);
    memcpy(want_tol, tol_p, sizeof want_tol);
    const double tol = relate_kmeans_tolerance(x, n, f, 1e-4);
    CHECK_MSG(fabs(tol - want_tol[0]) <= 1e-12 * want_tol[0], "%s: tolerance %.17g, numpy %.17g", pre, tol,
              want_tol[0]);
    float *centers = malloc((size_t)k * f * sizeof *centers);
    int32_t *labels = malloc((size_t)n * sizeof *labels);
    double inertia = 0;
    int iters = 0;
    relate_error err = {0};
    CHECK_MSG(relate_kmeans_lloyd(x, n, f, k, init, 30, tol, centers, labels, &inertia, &iters, &err) == RELATE_OK,
              "%s", err.msg);
    int bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad += labels[i] != want_labels[i];
    CHECK_MSG(bad == 0, "%s: %d of %lld labels differ from numpy's Lloyd", pre, bad, (long long)n);
    CHECK_MSG(iters == want_iter[0], "%s: %d iterations, numpy %d", pre, iters, want_iter[0]);
    snprintf(key, sizeof key, "%s centres", pre);
    relate_test_check_close(key, centers, want_centers, (size_t)k * f, 1e-5);
    CHECK_MSG(fabs(inertia - want_inertia[0]) <= 1e-6 * want_inertia[0], "%s: inertia %.10g, numpy %.10g", pre,
              inertia, want_inertia[0]);
    CHECK(fabs(relate_kmeans_inertia(x, n, f, centers, labels) - inertia) <= 1e-12 * inertia);

    /* Inertia never increases with more iterations from the same centres. */
    double prev = INFINITY;
    for (int m = 1; m <= iters; m++) {
        double in = 0;
        CHECK(relate_kmeans_lloyd(x, n, f, k, init, m, tol, centers, labels, &in, NULL, &err) == RELATE_OK);
        CHECK_MSG(in <= prev * (1 + 1e-9), "%s: inertia went up from %.10g to %.10g at iteration %d", pre, prev, in,
                  m);
        prev = in;
    }
    free(centers);
    free(labels);
}

static void test_plusplus(void)
{
    relate_error err = {0};
    /* (a) distinct rows, and the centres are those rows. */
    {
        const int64_t n = 500;
        const int d = 5, k = 50;
        float *x = malloc((size_t)n * d * sizeof *x), *c = malloc((size_t)k * d * sizeof *c);
        int64_t idx[50];
        relate_test_fill(x, (size_t)n * d, 3);
        relate_rng r;
        relate_rng_init(&r, 1, 2, 3, RELATE_PURPOSE_TEST);
        CHECK_MSG(relate_kmeans_plusplus(x, NULL, n, d, k, 0, &r, c, idx, &err) == RELATE_OK, "%s", err.msg);
        int dup = 0, mism = 0;
        for (int a = 0; a < k; a++) {
            for (int b = a + 1; b < k; b++)
                dup += idx[a] == idx[b];
            mism += memcmp(c + (size_t)a * d, x + (size_t)idx[a] * d, (size_t)d * sizeof *c) != 0;
        }
        CHECK_MSG(dup == 0 && mism == 0, "k-means++: %d repeated rows, %d centres that are not their row", dup, mism);
        CHECK(relate_kmeans_plusplus(x, NULL, 10, d, 11, 0, &r, c, idx, &err) == RELATE_ERR_ARG);
        free(x);
        free(c);
    }
    /* (b) D^2 sampling (one trial per centre: plain k-means++): the first centre is uniform, the
     * second is row s with probability D^2(s) / sum D^2 given the first. */
    {
        const float x[6] = {0, 1, 3, 6, 10, 15};
        const int R = 30000;
        int64_t count[6][6] = {{0}}, first[6] = {0};
        float c[2];
        int64_t idx[2];
        for (int t = 0; t < R; t++) {
            relate_rng r;
            relate_rng_init(&r, 99, 0, (uint32_t)t, RELATE_PURPOSE_TEST);
            relate_kmeans_plusplus(x, NULL, 6, 1, 2, 1, &r, c, idx, &err);
            first[idx[0]]++;
            count[idx[0]][idx[1]]++;
        }
        double chi_first = 0, chi_second = 0;
        for (int f = 0; f < 6; f++) {
            const double e = R / 6.0;
            chi_first += (first[f] - e) * (first[f] - e) / e;
            double z = 0;
            for (int s = 0; s < 6; s++)
                z += (x[s] - x[f]) * (x[s] - x[f]);
            CHECK_MSG(count[f][f] == 0, "k-means++ chose row %d twice", f);
            for (int s = 0; s < 6; s++) {
                if (s == f)
                    continue;
                const double es = (double)first[f] * (x[s] - x[f]) * (x[s] - x[f]) / z;
                chi_second += (count[f][s] - es) * (count[f][s] - es) / es;
            }
        }
        /* df 5 and 24; both bounds are exceeded with probability below 1e-4. */
        CHECK_MSG(chi_first < 25.7, "first centre not uniform: chi2 %.2f (df 5)", chi_first);
        CHECK_MSG(chi_second < 56.0, "second centre not D^2-distributed: chi2 %.2f (df 24)", chi_second);
        printf("k-means++ sampling: chi2 first %.2f (df 5), second %.2f (df 24)\n", chi_first, chi_second);
    }
    /* (c) greedy k-means++ on well separated blobs puts one centre in each blob. */
    {
        const int nb = 8, per = 50, d = 4;
        const int64_t n = (int64_t)nb * per;
        float *x = malloc((size_t)n * d * sizeof *x), *c = malloc((size_t)nb * d * sizeof *c);
        relate_test_fill(x, (size_t)n * d, 5);
        for (int64_t i = 0; i < n; i++)
            x[i * d + (i / per) % d] += 100.0f * (float)(1 + (i / per) / d); /* blob b along axis b mod d */
        int bad = 0;
        for (int s = 0; s < 20; s++) {
            relate_rng r;
            relate_rng_init(&r, 7, 0, (uint32_t)s, RELATE_PURPOSE_TEST);
            int64_t idx[8];
            relate_kmeans_plusplus(x, NULL, n, d, nb, 0, &r, c, idx, &err);
            int seen[8] = {0};
            for (int j = 0; j < nb; j++)
                seen[idx[j] / per]++;
            for (int b = 0; b < nb; b++)
                bad += seen[b] != 1;
        }
        CHECK_MSG(bad == 0, "greedy k-means++ missed a blob %d times", bad);
        free(x);
        free(c);
    }
}

static void test_fit(void)
{
    const int64_t n = 3000;
    const int d = 8, k = 12;
    float *x = malloc((size_t)n * d * sizeof *x), *blobs = malloc((size_t)k * d * sizeof *blobs);
    float *centers = malloc((size_t)k * d * sizeof *centers);
    int32_t *l1 = malloc((size_t)n * sizeof *l1), *l2 = malloc((size_t)n * sizeof *l2);
    relate_rng r;
    relate_rng_init(&r, 4, 0, 0, RELATE_PURPOSE_TEST);
    for (int i = 0; i < k * d; i++)
        blobs[i] = (float)(2.0 * relate_rng_normal(&r));
    for (int64_t i = 0; i < n; i++) {
        const int b = (int)relate_rng_below(&r, (uint32_t)k);
        for (int j = 0; j < d; j++)
            x[i * d + j] = 5.0f + blobs[b * d + j] + (float)relate_rng_normal(&r); /* off-centre data */
    }
    relate_kmeans_options o = relate_kmeans_defaults(k);
    CHECK(o.n_init == 5 && o.max_iter == 30 && o.tol == 1e-4);
    o.seed = 5;
    o.stream = 3;
    relate_kmeans_report rep, rep2;
    relate_error err = {0};
    CHECK_MSG(relate_kmeans_fit(x, n, d, &o, l1, centers, &rep, &err) == RELATE_OK, "%s", err.msg);
    CHECK(rep.restarts == 5 && rep.best_restart >= 0 && rep.best_restart < 5);
    double lo = INFINITY;
    for (int i = 0; i < rep.restarts; i++)
        lo = fmin(lo, rep.restart_inertia[i]);
    CHECK_MSG(rep.inertia == rep.restart_inertia[rep.best_restart] && rep.inertia <= lo * (1 + 1e-12),
              "kept inertia %.10g is not the lowest of the restarts (%.10g)", rep.inertia, lo);
    printf("restarts:");
    for (int i = 0; i < rep.restarts; i++)
        printf(" %.4f", rep.restart_inertia[i]);
    printf(" -> kept %d (%d iterations)\n", rep.best_restart, rep.n_iter);
    /* The centres come back in the data's coordinates. */
    const double in = relate_kmeans_inertia(x, n, d, centers, l1);
    CHECK_MSG(fabs(in - rep.inertia) <= 1e-5 * rep.inertia, "inertia of the returned centres %.10g vs %.10g", in,
              rep.inertia);
    /* Each restart equals k-means++ then Lloyd with that restart's rng on the centred data. */
    {
        double mean[8] = {0};
        for (int64_t i = 0; i < n; i++)
            for (int j = 0; j < d; j++)
                mean[j] += x[i * d + j];
        float *xc = malloc((size_t)n * d * sizeof *xc), *init = malloc((size_t)k * d * sizeof *init);
        for (int64_t i = 0; i < n; i++)
            for (int j = 0; j < d; j++)
                xc[i * d + j] = x[i * d + j] - (float)(mean[j] / (double)n);
        relate_rng kr;
        relate_kmeans_rng(&kr, &o, rep.best_restart);
        double inr = 0;
        relate_kmeans_plusplus(xc, NULL, n, d, k, 0, &kr, init, NULL, &err);
        relate_kmeans_lloyd(xc, n, d, k, init, o.max_iter, relate_kmeans_tolerance(xc, n, d, o.tol), init, l2, &inr,
                            NULL, &err);
        int diff = 0;
        for (int64_t i = 0; i < n; i++)
            diff += l1[i] != l2[i];
        CHECK_MSG(diff == 0 && fabs(inr - rep.inertia) <= 1e-6 * inr,
                  "restart %d replayed by hand: %d labels differ, inertia %.10g vs %.10g", rep.best_restart, diff, inr,
                  rep.inertia);
        free(xc);
        free(init);
    }
    /* Deterministic, also across thread counts; another stream clusters differently. */
    CHECK(relate_kmeans_fit(x, n, d, &o, l2, NULL, &rep2, &err) == RELATE_OK);
    CHECK_MSG(memcmp(l1, l2, (size_t)n * sizeof *l1) == 0 && rep2.inertia == rep.inertia, "k-means not repeatable");
    relate_set_threads(1);
    CHECK(relate_kmeans_fit(x, n, d, &o, l2, NULL, &rep2, &err) == RELATE_OK);
    relate_set_threads(2);
    CHECK_MSG(memcmp(l1, l2, (size_t)n * sizeof *l1) == 0 && rep2.inertia == rep.inertia,
              "k-means differs between 1 and 2 threads");
    o.stream = 4;
    CHECK(relate_kmeans_fit(x, n, d, &o, l2, NULL, &rep2, &err) == RELATE_OK);
    CHECK_MSG(memcmp(rep.restart_inertia, rep2.restart_inertia, sizeof rep.restart_inertia) != 0,
              "another stream gave the same restarts");
    o.k = 0;
    CHECK(relate_kmeans_fit(x, n, d, &o, l2, NULL, NULL, &err) == RELATE_ERR_ARG);
    o.k = (int)n + 1;
    CHECK(relate_kmeans_fit(x, n, d, &o, l2, NULL, NULL, &err) == RELATE_ERR_ARG);
    free(x);
    free(blobs);
    free(centers);
    free(l1);
    free(l2);
}

/* ------------------------------------------------------------------ head and loss */
static relate_method *make_method(int num_classes)
{
    relate_method_config cfg = relate_method_defaults();
    cfg.method = "deepcluster";
    cfg.num_classes = num_classes;
    relate_method *m = NULL;
    relate_error err = {0};
    CHECK_MSG(relate_method_create(&m, &cfg, &err) == RELATE_OK, "%s", err.msg);
    return m;
}

static void test_head(const relate_safetensors *st)
{
    const int B = 12, d = 64, K = 20, N = 50;
    relate_method *m = make_method(2);
    if (!m)
        return;
    CHECK(relate_deepcluster_k(m) == K && relate_method_views(m) == 1 && !relate_method_drop_last(m));
    relate_params *head = relate_deepcluster_head(m);
    static const char *const names[] = {"linear1.weight", "linear1.bias", "bn1.weight",
                                        "bn1.bias",       "linear2.weight", "linear2.bias"};
    static const char *const order[] = {"linear1.weight", "linear1.bias", "bn1.weight", "bn1.bias",
                                        "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
                                        "linear2.weight", "linear2.bias"};
    CHECK(head->count == 9);
    for (int i = 0; i < 9 && i < head->count; i++)
        CHECK_MSG(strcmp(head->items[i]->name, order[i]) == 0, "classifier key %d: %s", i, head->items[i]->name);
    char key[96];
    for (int i = 0; i < 6; i++) {
        relate_param *e = relate_params_find(head, names[i]);
        snprintf(key, sizeof key, "head.%s", names[i]);
        const float *v = relate_test_golden(st, key, e ? e->numel : -1);
        if (e && v)
            memcpy(e->data, v, (size_t)e->numel * sizeof(float));
    }
    const int32_t *pseudo = raw(st, "head.pseudo", "I32", N), *indices = raw(st, "head.indices", "I32", B);
    const float *feats = relate_test_golden(st, "head.features", B * d);
    if (!pseudo || !indices || !feats) {
        relate_method_free(m);
        return;
    }
    relate_error err = {0};
    CHECK(relate_deepcluster_set_clusters(m, pseudo, N, &err) == RELATE_OK);
    const float *want_w = relate_test_golden(st, "head.weights", K);
    if (want_w)
        CHECK_MSG(memcmp(relate_deepcluster_weights(m), want_w, K * sizeof(float)) == 0,
                  "class weights differ from the reference's torch code");
    int32_t targets[12];
    for (int i = 0; i < B; i++)
        targets[i] = pseudo[indices[i]];

    relate_params fp;
    relate_params_init(&fp);
    relate_param *feat = relate_params_add(&fp, "features", RELATE_PARAM, 2, (int64_t[]){B, d});
    CHECK(relate_params_finalize(&fp, &err) == RELATE_OK);
    memcpy(feat->data, feats, (size_t)B * d * sizeof(float));
    relate_graph *g = relate_graph_create();
    relate_params_zero_grad(head);
    relate_tensor *logits = NULL;
    relate_tensor *loss = relate_deepcluster_loss(g, m, relate_param_tensor(g, feat), targets, &logits);
    CHECK_MSG(loss && relate_graph_backward(g, loss) == RELATE_OK, "%s", relate_graph_error(g)->msg);
    if (loss) {
        const float *w;
        if ((w = relate_test_golden(st, "head.loss", 1)))
            relate_test_check_close("head loss", loss->data, w, 1, 1e-6);
        if ((w = relate_test_golden(st, "head.logits", B * K)))
            relate_test_check_close("head logits", logits->data, w, (size_t)B * K, 1e-5);
        if ((w = relate_test_golden(st, "head.grad.features", B * d)))
            relate_test_check_close("grad features", feat->grad, w, (size_t)B * d, 1e-5);
        for (int i = 0; i < 6; i++) {
            relate_param *e = relate_params_find(head, names[i]);
            snprintf(key, sizeof key, "head.grad.%s", names[i]);
            if (!(w = relate_test_golden(st, key, e->numel)))
                continue;
            if (strcmp(names[i], "linear1.bias") == 0) {
                /* Zero in exact arithmetic (a bias right before batch norm): only its size is checked. */
                double mx = 0;
                for (int64_t q = 0; q < e->numel; q++)
                    mx = fmax(mx, fabs(e->grad[q]));
                CHECK_MSG(mx < 1e-6, "grad linear1.bias %g", mx);
                continue;
            }
            snprintf(key, sizeof key, "grad %s", names[i]);
            relate_test_check_close(key, e->grad, w, (size_t)e->numel, 2e-5);
        }
        relate_param *rm = relate_params_find(head, "bn1.running_mean"), *rv = relate_params_find(head, "bn1.running_var");
        if ((w = relate_test_golden(st, "head.bn1.running_mean", 256)))
            relate_test_check_close("bn1 running_mean", rm->data, w, 256, 1e-5);
        if ((w = relate_test_golden(st, "head.bn1.running_var", 256)))
            relate_test_check_close("bn1 running_var", rv->data, w, 256, 1e-5);
    }
    relate_graph_destroy(g);
    relate_params_free(&fp);

    /* Pseudo-labels outside [0, k) are refused. */
    int32_t badl[2] = {0, K};
    CHECK(relate_deepcluster_set_clusters(m, badl, 2, &err) == RELATE_ERR_ARG);

    /* The last layer's re-initialisation: N(0, 0.01), zero bias, from (seed, epoch). */
    relate_param *w2 = relate_params_find(head, "linear2.weight"), *b2 = relate_params_find(head, "linear2.bias");
    relate_deepcluster_reset_last_layer(m, 3);
    double s = 0, s2 = 0, bmax = 0;
    for (int64_t q = 0; q < w2->numel; q++)
        s += w2->data[q], s2 += (double)w2->data[q] * w2->data[q];
    for (int64_t q = 0; q < b2->numel; q++)
        bmax = fmax(bmax, fabs(b2->data[q]));
    const double mean = s / w2->numel, sd = sqrt(s2 / w2->numel - mean * mean);
    CHECK_MSG(fabs(mean) < 0.001 && fabs(sd - 0.01) < 0.0005 && bmax == 0, "linear2 re-init: mean %g sd %g bias %g",
              mean, sd, bmax);
    float first = w2->data[0];
    relate_deepcluster_reset_last_layer(m, 3);
    CHECK(w2->data[0] == first);
    relate_deepcluster_reset_last_layer(m, 4);
    CHECK(w2->data[0] != first);
    relate_method_free(m);
}

/* Spec 6.5: a fresh network's first loss is about ln k (4.61 for k = 100). */
static void test_initial_loss(void)
{
    relate_method *m = make_method(10);
    if (!m)
        return;
    const int B = 64, S = 32;
    float *images = malloc((size_t)B * 3 * S * S * sizeof *images);
    int32_t labels[64], pseudo[64];
    int64_t indices[64];
    relate_test_fill(images, (size_t)B * 3 * S * S, 17);
    relate_rng r;
    relate_rng_init(&r, 3, 0, 0, RELATE_PURPOSE_TEST);
    for (int i = 0; i < B; i++) {
        labels[i] = 0;
        indices[i] = B - 1 - i;
        pseudo[i] = (int32_t)relate_rng_below(&r, 100);
    }
    relate_batch b = {.number = 0, .size = B, .views = 1, .side = S, .images = images, .labels = labels,
                      .indices = indices};
    relate_graph *g = relate_graph_create();
    relate_step_result res;
    relate_error err = {0};
    CHECK(relate_method_step(m, g, &b, &res, &err) == RELATE_ERR_ARG); /* no clustering yet */
    CHECK(relate_deepcluster_set_clusters(m, pseudo, B, &err) == RELATE_OK);
    relate_deepcluster_reset_last_layer(m, 0);
    CHECK_MSG(relate_method_step(m, g, &b, &res, &err) == RELATE_OK, "%s", err.msg);
    printf("initial deepcluster loss %.4f (ln 100 = %.4f), accuracy %.2f%%\n", res.loss, log(100.0), res.score);
    CHECK_MSG(fabs(res.loss - log(100.0)) < 0.05, "initial loss %.4f, expected about ln 100 = 4.605", res.loss);
    CHECK(res.items == B && res.score >= 0 && res.score <= 100);
    CHECK(relate_method_step(m, g, &b, &res, &err) == RELATE_OK && isfinite(res.loss));
    indices[5] = B; /* no pseudo-label for that image */
    CHECK(relate_method_step(m, g, &b, &res, &err) == RELATE_ERR_ARG);
    relate_graph_destroy(g);
    free(images);
    relate_method_free(m);
}

/* ------------------------------------------------------------------ double augmentation */
static void test_double_augment(void)
{
    relate_dataset_info info = {0};
    snprintf(info.name, sizeof info.name, "synthetic");
    info.num_classes = 10;
    info.image_size = 32;
    info.crop_padding = 4;
    for (int c = 0; c < 3; c++)
        info.mean[c] = 0.45f, info.std[c] = 0.2f;
    const int W = 28, N = 10, S = 32;
    uint8_t *pix = malloc((size_t)N * W * W * 3);
    int32_t labels[10] = {0};
    relate_rng r;
    relate_rng_init(&r, 8, 0, 0, RELATE_PURPOSE_TEST);
    for (int i = 0; i < N * W * W * 3; i++)
        pix[i] = (uint8_t)relate_rng_below(&r, 256);
    relate_split split = {.present = true, .count = N, .width = W, .height = W, .pixels = pix, .labels = labels};
    uint8_t *scratch = malloc(relate_transform_scratch_bytes(W, W, S));
    float *t1 = malloc((size_t)3 * S * S * sizeof *t1), *t2 = malloc((size_t)3 * S * S * sizeof *t2);
    float *out = malloc((size_t)3 * S * S * sizeof *out);
    uint8_t *mid = malloc((size_t)3 * S * S);

    /* By hand: T3, wrap-around to 8 bits, T3, on one rng stream. */
    relate_image img = relate_split_image(&split, 3);
    relate_rng ra, rb;
    relate_rng_init(&ra, 1, 2, 3, (uint32_t)RELATE_PURPOSE_AUGMENT << 24);
    rb = ra;
    relate_transform_apply(RELATE_T3, &info, &img, &ra, t1, scratch);
    int wrapped = 0;
    for (int i = 0; i < 3 * S * S; i++)
        wrapped += t1[i] * 255.0f < 0.0f || t1[i] * 255.0f >= 256.0f;
    relate_deepcluster_tensor_to_image(t1, S, mid);
    relate_image mimg = {S, S, mid};
    relate_transform_apply(RELATE_T3, &info, &mimg, &ra, t2, scratch);
    CHECK(relate_deepcluster_double_augment(&info, &img, &rb, out, scratch));
    CHECK_MSG(memcmp(out, t2, (size_t)3 * S * S * sizeof *out) == 0, "double augmentation differs from T3-wrap-T3");
    CHECK_MSG(wrapped > 100, "only %d values wrapped around (the test wants many)", wrapped);

    /* The method's loader hook: every view is the double augmentation with the loader's key. */
    relate_method *m = make_method(10);
    if (m) {
        relate_loader_config lc = relate_loader_defaults(&split, &info, relate_method_pipeline(m, &info));
        lc.batch_size = 4;
        lc.seed = 9;
        lc.threads = 1;
        relate_method_loader_setup(m, &lc);
        relate_loader *ld;
        relate_error err = {0};
        CHECK_MSG(relate_loader_create(&ld, &lc, &err) == RELATE_OK, "%s", err.msg);
        relate_loader_start_epoch(ld, 2);
        relate_batch b;
        int checked = 0, bad = 0;
        while (relate_loader_next(ld, &b) == 1)
            for (int i = 0; i < b.size; i++) {
                relate_image im = relate_split_image(&split, b.indices[i]);
                relate_rng rk;
                relate_rng_init(&rk, 9, 2, (uint32_t)b.indices[i], (uint32_t)RELATE_PURPOSE_AUGMENT << 24);
                relate_deepcluster_double_augment(&info, &im, &rk, out, scratch);
                bad += memcmp(out, b.images + (size_t)i * 3 * S * S, (size_t)3 * S * S * sizeof *out) != 0;
                checked++;
            }
        CHECK_MSG(checked == N && bad == 0, "loader hook: %d of %d samples differ", bad, checked);
        relate_loader_destroy(ld);
        relate_method_free(m);
    }
    free(pix);
    free(scratch);
    free(t1);
    free(t2);
    free(out);
    free(mid);
}

int main(void)
{
    relate_set_threads(2);
    relate_safetensors st;
    relate_test_open_golden(&st, "deepcluster.safetensors");
    test_wrap(&st);
    test_pca(&st);
    test_lloyd(&st, "km1", 400, 6, 8);
    test_lloyd(&st, "km2", 300, 5, 6);
    test_plusplus();
    test_fit();
    test_head(&st);
    test_initial_loss();
    test_double_augment();
    relate_safetensors_close(&st);
    return relate_test_finish();
}
