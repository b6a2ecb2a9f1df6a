/* kernels_batchnorm.c: batch norm in training mode (saved statistics, running mean and unbiased
 * variance, no tracking) and in eval mode, against naive double references and finite differences.
 * Not synchronised batch norm across replicas (that is test_batchnorm_sync.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels_harness.h"
#include "test_util.h"

/* ------------------------------------------------------------------ batch norm */
typedef struct {
    int n, c, hw;
    float momentum, eps;
    float *mean, *invstd, *rm, *rv;
} bn_aux;

static void bn_train_fwd(tcase *c, float *y)
{
    bn_aux *a = c->aux;
    relate_batchnorm_forward_train(y, a->mean, a->invstd, c->in[0], c->in[1], c->in[2], a->rm, a->rv,
                                   a->n, a->c, a->hw, a->momentum, a->eps);
}

static void bn_train_bwd(tcase *c, float *const *g, const float *dy)
{
    bn_aux *a = c->aux;
    relate_batchnorm_backward_train(g[0], g[1], g[2], dy, c->in[0], a->mean, a->invstd, c->in[1],
                                    a->n, a->c, a->hw);
}

#define BN_AT(i, ch, j) (((size_t)(i) * a->c + (ch)) * a->hw + (j))

static void bn_train_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    bn_aux *a = c->aux;
    const float *x = c->in[0], *gamma = c->in[1], *beta = c->in[2];
    const double m = (double)a->n * a->hw;
    for (int ch = 0; ch < a->c; ch++) {
        double s = 0, v = 0, sdy = 0, sdyx = 0;
        for (int i = 0; i < a->n; i++)
            for (int j = 0; j < a->hw; j++)
                s += x[BN_AT(i, ch, j)];
        const double mean = s / m;
        for (int i = 0; i < a->n; i++)
            for (int j = 0; j < a->hw; j++)
                v += (x[BN_AT(i, ch, j)] - mean) * (x[BN_AT(i, ch, j)] - mean);
        const double inv = 1 / sqrt(v / m + a->eps);
        for (int i = 0; i < a->n; i++)
            for (int j = 0; j < a->hw; j++) {
                const double xh = (x[BN_AT(i, ch, j)] - mean) * inv;
                y[BN_AT(i, ch, j)] = (float)(xh * gamma[ch] + beta[ch]);
                sdy += dy[BN_AT(i, ch, j)];
                sdyx += dy[BN_AT(i, ch, j)] * xh;
            }
        for (int i = 0; i < a->n; i++)
            for (int j = 0; j < a->hw; j++) {
                const double xh = (x[BN_AT(i, ch, j)] - mean) * inv;
                g[0][BN_AT(i, ch, j)] =
                    (float)(gamma[ch] * inv / m * (m * dy[BN_AT(i, ch, j)] - sdy - xh * sdyx));
            }
        g[1][ch] = (float)sdyx;
        g[2][ch] = (float)sdy;
    }
}

static void bn_eval_fwd(tcase *c, float *y)
{
    bn_aux *a = c->aux;
    relate_batchnorm_forward_eval(y, c->in[0], c->in[1], c->in[2], a->rm, a->rv, a->n, a->c, a->hw, a->eps);
}

static void bn_eval_bwd(tcase *c, float *const *g, const float *dy)
{
    bn_aux *a = c->aux;
    relate_batchnorm_backward_eval(g[0], g[1], g[2], dy, c->in[0], c->in[1], a->rm, a->rv, a->n,
                                   a->c, a->hw, a->eps);
}

static void bn_eval_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    bn_aux *a = c->aux;
    const float *x = c->in[0], *gamma = c->in[1], *beta = c->in[2];
    for (int ch = 0; ch < a->c; ch++) {
        const double inv = 1 / sqrt((double)a->rv[ch] + a->eps);
        double sdy = 0, sdyx = 0;
        for (int i = 0; i < a->n; i++)
            for (int j = 0; j < a->hw; j++) {
                const size_t k = BN_AT(i, ch, j);
                const double xh = (x[k] - (double)a->rm[ch]) * inv;
                y[k] = (float)(xh * gamma[ch] + beta[ch]);
                g[0][k] = (float)(dy[k] * gamma[ch] * inv);
                sdy += dy[k];
                sdyx += dy[k] * xh;
            }
        g[1][ch] = (float)sdyx;
        g[2][ch] = (float)sdy;
    }
}

void test_batchnorm(int fd)
{
    static const int shapes[][3] = {{2, 3, 5}, {4, 2, 1}, {3, 70, 1}, {1, 3, 6}, {5, 4, 9}, {4, 16, 1024}, {300, 130, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int n = shapes[s][0], c = shapes[s][1], hw = shapes[s][2];
        const size_t tot = (size_t)n * c * hw;
        bn_aux a = {.n = n, .c = c, .hw = hw, .momentum = 0.1f, .eps = 1e-5f, .mean = falloc(c),
                    .invstd = falloc(c), .rm = frand(c), .rv = frand(c)};
        for (int i = 0; i < c; i++)
            a.rv[i] = 0.5f + fabsf(a.rv[i]);
        float *x = frand(tot), *gamma = frand(c), *beta = frand(c);
        for (size_t i = 0; i < tot; i++)
            x[i] = 2.0f * x[i] + 0.5f; /* a nonzero mean and non-unit variance */
        char name[128];

        /* Running statistics: one training step from known values, against the documented rule. */
        {
            float *rm0 = malloc(c * sizeof(float)), *rv0 = malloc(c * sizeof(float));
            float *y = falloc(tot), *y2 = falloc(tot), *mean2 = falloc(c), *inv2 = falloc(c);
            float *wrm = falloc(c), *wrv = falloc(c), *wmean = falloc(c), *winv = falloc(c);
            memcpy(rm0, a.rm, c * sizeof(float));
            memcpy(rv0, a.rv, c * sizeof(float));
            relate_batchnorm_forward_train(y, a.mean, a.invstd, x, gamma, beta, a.rm, a.rv, n, c, hw,
                                           a.momentum, a.eps);
            const double m = (double)n * hw;
            for (int ch = 0; ch < c; ch++) {
                double su = 0, v = 0;
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < hw; j++)
                        su += x[((size_t)i * c + ch) * hw + j];
                const double mu = su / m;
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < hw; j++) {
                        const double d = x[((size_t)i * c + ch) * hw + j] - mu;
                        v += d * d;
                    }
                wmean[ch] = (float)mu;
                winv[ch] = (float)(1 / sqrt(v / m + a.eps));
                wrm[ch] = (float)(0.9 * rm0[ch] + 0.1 * mu);
                wrv[ch] = (float)(0.9 * rv0[ch] + 0.1 * (m > 1 ? v / (m - 1) : 0));
            }
            snprintf(name, sizeof name, "batchnorm n%d c%d hw%d: saved mean", n, c, hw);
            relate_test_check_close(name, a.mean, wmean, c, REF_BOUND);
            snprintf(name, sizeof name, "batchnorm n%d c%d hw%d: saved invstd", n, c, hw);
            relate_test_check_close(name, a.invstd, winv, c, REF_BOUND);
            if (m > 1) {
                snprintf(name, sizeof name, "batchnorm n%d c%d hw%d: running mean", n, c, hw);
                relate_test_check_close(name, a.rm, wrm, c, REF_BOUND);
                snprintf(name, sizeof name, "batchnorm n%d c%d hw%d: running var (unbiased)", n, c, hw);
                relate_test_check_close(name, a.rv, wrv, c, REF_BOUND);
            }
            /* No tracking: same output and saved statistics. */
            relate_batchnorm_forward_train(y2, mean2, inv2, x, gamma, beta, NULL, NULL, n, c, hw,
                                           a.momentum, a.eps);
            CHECK(memcmp(y, y2, tot * sizeof(float)) == 0);
            CHECK(memcmp(a.mean, mean2, c * sizeof(float)) == 0 && memcmp(a.invstd, inv2, c * sizeof(float)) == 0);
            free(rm0), free(rv0), free(y), free(y2), free(mean2), free(inv2);
            free(wrm), free(wrv), free(wmean), free(winv);
        }

        if (n * hw > 1) { /* PyTorch refuses training mode with one value per channel */
            snprintf(name, sizeof name, "batchnorm train n%d c%d hw%d t%d", n, c, hw, relate_get_threads());
            tcase t = {.name = name, .nin = 3, .in = {x, gamma, beta}, .nel = {tot, c, c}, .ny = tot,
                       .fwd = bn_train_fwd, .bwd = bn_train_bwd, .ref = bn_train_ref, .aux = &a,
                       .h = 1e-2f};
            run_case(&t, fd && tot < 100000);
        }
        snprintf(name, sizeof name, "batchnorm eval n%d c%d hw%d t%d", n, c, hw, relate_get_threads());
        tcase e = {.name = name, .nin = 3, .in = {x, gamma, beta}, .nel = {tot, c, c}, .ny = tot,
                   .fwd = bn_eval_fwd, .bwd = bn_eval_bwd, .ref = bn_eval_ref, .aux = &a, .h = 1e-2f};
        run_case(&e, fd && tot < 100000);
        free(x), free(gamma), free(beta), free(a.mean), free(a.invstd), free(a.rm), free(a.rv);
    }
}

/* The variance of values with a large mean and a small spread (1e5 + ~0.01): the one-pass
 * E[x^2] - E[x]^2 loses it entirely in double (x^2 ~ 1e10, the variance ~1e-4). The kernels sum
 * each plane's (or chunk's) deviations from its own mean and combine them; here against a
 * two-pass reference in long double, for the NCHW kernel, its pooling tail and the blocked one.
 * Its own values, so the harness's random sequence is left as it is. */
void test_batchnorm_large_mean(void)
{
    enum { N = 37, C = 16, H = 6, W = 8, HW = H * W };
    const size_t tot = (size_t)N * C * HW;
    float *x = falloc(tot), *xb = falloc(tot), *y = falloc(tot), *ones = falloc(C), *zeros = falloc(C);
    float mean[C], inv[C], rm[C], rv[C];
    uint32_t state = 12345;
    for (size_t i = 0; i < tot; i++) {
        state = state * 1664525u + 1013904223u;
        x[i] = 1e5f + (float)((state >> 8) % 1000u) * 4e-5f * (float)(1 + (i / HW) % C);
    }
    for (int ch = 0; ch < C; ch++)
        ones[ch] = 1.0f, zeros[ch] = 0.0f;
    relate_nchw_to_blocked16(xb, x, N, C, HW, false);
    const float eps = 1e-12f;
    double want[C];
    for (int ch = 0; ch < C; ch++) {
        long double s = 0, v = 0;
        for (int i = 0; i < N; i++)
            for (int j = 0; j < HW; j++)
                s += x[((size_t)i * C + ch) * HW + j];
        const long double mu = s / ((long double)N * HW);
        for (int i = 0; i < N; i++)
            for (int j = 0; j < HW; j++) {
                const long double d = x[((size_t)i * C + ch) * HW + j] - mu;
                v += d * d;
            }
        want[ch] = (double)(1.0L / sqrtl(v / ((long double)N * HW) + eps));
    }
    for (int kernel = 0; kernel < 3; kernel++) {
        static const char *names[3] = {"NCHW", "NCHW + ReLU + pool", "nChw16c"};
        for (int ch = 0; ch < C; ch++)
            rm[ch] = 0.0f, rv[ch] = 1.0f;
        int rc = 0;
        if (kernel == 0)
            relate_batchnorm_forward_train(y, mean, inv, x, ones, zeros, rm, rv, N, C, HW, 0.1f, eps);
        else if (kernel == 1)
            rc = relate_bn_relu_pool2_forward_train(y, mean, inv, x, ones, zeros, rm, rv, N, C, H, W, 0.1f, eps);
        else
            rc = relate_bn16_forward_train(y, mean, inv, xb, ones, zeros, rm, rv, N, C, HW, 0.1f, eps, NULL);
        CHECK(rc == 0);
        double worst = 0;
        for (int ch = 0; ch < C; ch++)
            worst = fmax(worst, fabs(inv[ch] - want[ch]) / want[ch]);
        CHECK_MSG(worst < 1e-5, "batch norm (%s): inverse std of a large-mean channel off by %.3g (relative)",
                  names[kernel], worst);
    }
    free(x), free(xb), free(y), free(ones), free(zeros);

    /* The relation head's BatchNorm1d over pair rows: 1,300 rows, three chunks of 512 (the last
     * one short), whose statistics are combined the same way. */
    enum { ROWS = 1300, VIEWS = 50, COLS = 20 };
    float *a = falloc((size_t)VIEWS * COLS), *h = falloc((size_t)ROWS * COLS), *logits = falloc(ROWS);
    float bias1[COLS], gamma[COLS], beta[COLS], w2[COLS], hmean[COLS], hinv[COLS], hrm[COLS], hrv[COLS];
    int32_t ia[ROWS], ib[ROWS];
    for (size_t i = 0; i < (size_t)VIEWS * COLS; i++) {
        state = state * 1664525u + 1013904223u;
        a[i] = 5e4f + (float)((state >> 8) % 1000u) * 4e-5f;
    }
    for (int j = 0; j < COLS; j++)
        bias1[j] = 0.0f, gamma[j] = 1.0f, beta[j] = 0.0f, w2[j] = 1.0f, hrm[j] = 0.0f, hrv[j] = 1.0f;
    for (int r = 0; r < ROWS; r++)
        ia[r] = r % VIEWS, ib[r] = (r * 7 + 3) % VIEWS;
    const relate_relation_head_params hp = {.a = a, .b = a, .bias1 = bias1, .gamma = gamma, .beta = beta, .w2 = w2,
                                            .ia = ia, .ib = ib, .b2 = 0.0f, .slope = 0.01f, .momentum = 0.1f,
                                            .eps = eps};
    double *scratch = malloc(relate_relation_head_scratch_doubles(ROWS, COLS) * sizeof(double));
    relate_relation_head_forward(h, logits, hmean, hinv, hrm, hrv, &hp, ROWS, COLS, scratch);
    double worst = 0;
    for (int j = 0; j < COLS; j++) {
        long double su = 0, v = 0;
        for (int r = 0; r < ROWS; r++)
            su += (a[(size_t)ia[r] * COLS + j] + a[(size_t)ib[r] * COLS + j]) + 0.0f;
        const long double mu = su / ROWS;
        for (int r = 0; r < ROWS; r++) {
            const long double d = (long double)((a[(size_t)ia[r] * COLS + j] + a[(size_t)ib[r] * COLS + j]) + 0.0f) - mu;
            v += d * d;
        }
        const double ref = (double)(1.0L / sqrtl(v / ROWS + eps));
        worst = fmax(worst, fabs(hinv[j] - ref) / ref);
    }
    CHECK_MSG(worst < 1e-5, "relation head: inverse std of a large-mean column off by %.3g (relative)", worst);
    free(a), free(h), free(logits), free(scratch);
}
