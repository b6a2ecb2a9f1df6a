/* bench_norm.c: the normalisation kernels that the step benchmarks time together, one at a time:
 * relationnet's fused relation head, conv4's BN + ReLU + AvgPool2d(2, 2) block tail, and batch
 * norm with a residual add and ReLU (the ResNet blocks'). Each line ends with an FNV-1a hash of
 * every output, so two builds (or RELATE_ISA=avx2 against the default) can be checked for the
 * same bits as well as timed. Not a PyTorch comparison.
 *
 * usage: relate_bench_norm head K B C        pairs of K views of B images (relationnet's list:
 *                                             positives, then negatives), C channels
 *        relate_bench_norm pool N C H        N images of C x H x H
 *        relate_bench_norm bn N C HW         N images of C planes of HW floats
 * prints: norm KIND SHAPE fwd_ms bwd_ms [apply_ms] hash (the fastest of 10 calls; threads from
 *         OMP_NUM_THREADS; buffers reused, so page faults are not timed) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "kernels/kernels.h"

#define REPS 10

static uint64_t fnv(uint64_t h, const void *p, size_t bytes)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < bytes; i++) {
        h ^= c[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Uniform floats in [lo, lo + 1) from a fixed seed. */
static float *uniform(size_t n, float lo, uint64_t seed)
{
    float *p = malloc(n * sizeof *p);
    uint32_t *r = malloc(n * sizeof *r);
    if (!p || !r) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    bench_random_bytes((uint8_t *)r, n * sizeof *r, seed);
    for (size_t i = 0; i < n; i++)
        p[i] = lo + (float)(r[i] >> 8) / 16777216.0f;
    free(r);
    return p;
}

static float *zeros(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static void keep_min(double *best, double t) { *best = t < *best ? t : *best; }

static int bench_head(int K, int B, int C)
{
    const int views = K * B;
    const int64_t rows = (int64_t)B * K * (K - 1); /* K(K-1)/2 view pairs, positive and negative */
    float *a = uniform((size_t)views * C, -0.5f, 1), *b = uniform((size_t)views * C, -0.5f, 2);
    float *bias = zeros(C), *gamma = uniform(C, 0.5f, 3), *beta = zeros(C), *w2 = uniform(C, -0.5f, 4);
    float *dl = uniform((size_t)rows, -0.5f, 5);
    int32_t *ia = malloc((size_t)rows * sizeof *ia), *ib = malloc((size_t)rows * sizeof *ib);
    float *h = malloc((size_t)rows * C * sizeof *h), *logits = malloc((size_t)rows * sizeof *logits);
    double *scratch = malloc(relate_relation_head_scratch_doubles(rows, C) * sizeof *scratch);
    if (!ia || !ib || !h || !logits || !scratch) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    int64_t r = 0;
    for (int k1 = 0; k1 < K; k1++)
        for (int k2 = k1 + 1; k2 < K; k2++)
            for (int neg = 0; neg < 2; neg++)
                for (int i = 0; i < B; i++, r++) {
                    ia[r] = k1 * B + i;
                    ib[r] = k2 * B + (neg ? (i + 1) % B : i);
                }
    float *mean = zeros(C), *invstd = zeros(C), *rm = zeros(C), *rv = zeros(C);
    float *da = zeros((size_t)views * C), *db = zeros((size_t)views * C), *dbias = zeros(C), *dg = zeros(C),
          *dbe = zeros(C), *dw2 = zeros(C), db2 = 0;
    relate_relation_head_params p = {a, b, bias, gamma, beta, w2, ia, ib, 0.1f, 0.01f, 0.1f, 1e-5f};
    relate_relation_head_grads g = {da, db, dbias, dg, dbe, dw2, &db2};
    double tf = 1e30, tb = 1e30;
    uint64_t hash = 1469598103934665603ULL;
    for (int it = 0; it < REPS; it++) {
        /* Gradients accumulate; zeroed each call so the hash is of one call's. */
        memset(da, 0, (size_t)views * C * sizeof *da);
        memset(db, 0, (size_t)views * C * sizeof *db);
        memset(dbias, 0, C * sizeof *dbias), memset(dg, 0, C * sizeof *dg), memset(dbe, 0, C * sizeof *dbe);
        memset(dw2, 0, C * sizeof *dw2), db2 = 0;
        double t0 = bench_now();
        relate_relation_head_forward(h, logits, mean, invstd, rm, rv, &p, rows, C, scratch);
        double t1 = bench_now();
        relate_relation_head_backward(&g, dl, h, mean, invstd, &p, rows, C, scratch);
        double t2 = bench_now();
        keep_min(&tf, t1 - t0);
        keep_min(&tb, t2 - t1);
    }
    hash = fnv(hash, logits, (size_t)rows * sizeof *logits);
    hash = fnv(hash, h, (size_t)rows * C * sizeof *h);
    hash = fnv(hash, da, (size_t)views * C * sizeof *da);
    hash = fnv(hash, db, (size_t)views * C * sizeof *db);
    const float *small[] = {dbias, dg, dbe, dw2, mean, invstd, rm, rv};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
        hash = fnv(hash, small[i], C * sizeof(float));
    hash = fnv(hash, &db2, sizeof db2);
    printf("norm head K%d B%d C%d rows %lld %s %.2f %.2f %016llx\n", K, B, C, (long long)rows,
           relate_kernels_isa_name(), tf * 1e3, tb * 1e3, (unsigned long long)hash);
    return 0;
}

static int bench_pool(int n, int c, int hw_side)
{
    const int h = hw_side, w = hw_side;
    const size_t total = (size_t)n * c * h * w, pooled = (size_t)n * c * (h / 2) * (w / 2);
    float *x = uniform(total, -0.4f, 6), *dy = uniform(pooled, -0.5f, 7), *y = zeros(pooled), *dx = zeros(total);
    float *gamma = uniform(c, 0.5f, 8), *beta = uniform(c, -0.5f, 9), *mean = zeros(c), *invstd = zeros(c),
          *rm = zeros(c), *rv = zeros(c), *dg = zeros(c), *db = zeros(c);
    double tf = 1e30, tb = 1e30;
    for (int it = 0; it < REPS; it++) {
        memset(dg, 0, c * sizeof *dg), memset(db, 0, c * sizeof *db);
        double t0 = bench_now();
        int rc = relate_bn_relu_pool2_forward_train(y, mean, invstd, x, gamma, beta, rm, rv, n, c, h, w, 0.1f, 1e-5f);
        double t1 = bench_now();
        rc |= relate_bn_relu_pool2_backward_train(dx, dg, db, dy, x, mean, invstd, gamma, beta, n, c, h, w, true);
        double t2 = bench_now();
        if (rc != 0) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        keep_min(&tf, t1 - t0);
        keep_min(&tb, t2 - t1);
    }
    uint64_t hash = fnv(1469598103934665603ULL, y, pooled * sizeof *y);
    hash = fnv(hash, dx, total * sizeof *dx);
    hash = fnv(hash, dg, c * sizeof *dg);
    hash = fnv(hash, db, c * sizeof *db);
    hash = fnv(hash, invstd, c * sizeof *invstd);
    printf("norm pool N%d C%d %dx%d %.2f %.2f %016llx\n", n, c, h, w, tf * 1e3, tb * 1e3, (unsigned long long)hash);
    return 0;
}

static int bench_bn(int n, int c, int hw)
{
    const size_t total = (size_t)n * c * hw;
    float *x = uniform(total, -0.4f, 10), *res = uniform(total, -0.5f, 11), *dy = uniform(total, -0.5f, 12);
    float *y = zeros(total), *dx = zeros(total), *dres = zeros(total), *ya = zeros(total);
    float *gamma = uniform(c, 0.5f, 13), *beta = uniform(c, -0.5f, 14), *mean = zeros(c), *invstd = zeros(c),
          *rm = zeros(c), *rv = zeros(c), *dg = zeros(c), *db = zeros(c);
    const relate_bn_epilogue ep = {res, true};
    double tf = 1e30, tb = 1e30, ta = 1e30;
    for (int it = 0; it < REPS; it++) {
        memset(dg, 0, c * sizeof *dg), memset(db, 0, c * sizeof *db);
        double t0 = bench_now();
        relate_batchnorm_forward_train_ep(y, mean, invstd, x, gamma, beta, rm, rv, n, c, hw, 0.1f, 1e-5f, &ep);
        double t1 = bench_now();
        relate_batchnorm_backward_train_ep(dx, dg, db, dy, x, mean, invstd, gamma, n, c, hw, y, dres,
                                           RELATE_BN_STORE_DX | RELATE_BN_STORE_DRESIDUAL);
        double t2 = bench_now();
        relate_batchnorm_apply_saved(ya, x, mean, invstd, gamma, beta, n, c, hw, NULL);
        double t3 = bench_now();
        keep_min(&tf, t1 - t0);
        keep_min(&tb, t2 - t1);
        keep_min(&ta, t3 - t2);
    }
    uint64_t hash = fnv(1469598103934665603ULL, y, total * sizeof *y);
    hash = fnv(hash, dx, total * sizeof *dx);
    hash = fnv(hash, dres, total * sizeof *dres);
    hash = fnv(hash, ya, total * sizeof *ya);
    hash = fnv(hash, dg, c * sizeof *dg);
    hash = fnv(hash, db, c * sizeof *db);
    printf("norm bn N%d C%d HW%d %.2f %.2f %.2f %016llx\n", n, c, hw, tf * 1e3, tb * 1e3, ta * 1e3,
           (unsigned long long)hash);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5) {
        const int a = atoi(argv[2]), b = atoi(argv[3]), c = atoi(argv[4]);
        if (a > 0 && b > 0 && c > 0) {
            if (strcmp(argv[1], "head") == 0 && a >= 2)
                return bench_head(a, b, c);
            if (strcmp(argv[1], "pool") == 0 && c >= 2)
                return bench_pool(a, b, c);
            if (strcmp(argv[1], "bn") == 0 && c >= 2)
                return bench_bn(a, b, c);
        }
    }
    fprintf(stderr, "usage: %s head K B C | pool N C H | bn N C HW\n", argv[0]);
    return 2;
}
