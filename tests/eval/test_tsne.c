/* test_tsne.c: t-SNE of relate/tsne.h. The input affinities (dense and k-nearest-neighbour) against
 * numpy (tools/golden_tsne.py); the exact gradient against central differences of the KL
 * divergence; Barnes-Hut's gradient, Z and KL against the exact ones at theta = 0 (rounding only)
 * and theta = 0.5 (a stated bound); exact and Barnes-Hut maps of five separated Gaussian clusters
 * (every point's nearest neighbour in the map from its own cluster, KL below a bound); the same map
 * with 1 and 2 threads, bit for bit; argument checks. */
/* clock_gettime is POSIX. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "relate/graph.h"
#include "relate/rng.h"
#include "relate/tsne.h"
#include "test_util.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The dense [n, n] form of a sparse P, to compare with goldens and to feed the exact gradient. */
static float *densify(const relate_tsne_sparse *p)
{
    float *d = calloc((size_t)(p->n * p->n), sizeof *d);
    for (int64_t i = 0; i < p->n; i++)
        for (int64_t e = p->row[i]; e < p->row[i + 1]; e++)
            d[i * p->n + p->col[e]] = p->val[e];
    return d;
}

/* (a) P against numpy: values (norm-wise relative error), the sparse pattern exactly, symmetry, sum 1. */
static void check_affinities(const relate_safetensors *st, const char *name)
{
    char key[96];
    snprintf(key, sizeof key, "%s/x", name);
    const relate_st_tensor *t = relate_safetensors_find(st, key);
    CHECK(t != NULL);
    if (!t)
        return;
    const int64_t n = t->shape[0];
    const int d = (int)t->shape[1];
    const float *x = relate_test_golden(st, key, n * d);
    snprintf(key, sizeof key, "%s/params", name);
    const float *prm = relate_test_golden(st, key, 2);
    snprintf(key, sizeof key, "%s/p_dense", name);
    const float *want_dense = relate_test_golden(st, key, n * n);
    snprintf(key, sizeof key, "%s/p_sparse", name);
    const float *want_sparse = relate_test_golden(st, key, n * n);

    relate_error err = {0};
    float *p = malloc((size_t)(n * n) * sizeof *p);
    CHECK_MSG(relate_tsne_affinities(x, n, d, prm[0], p, &err) == RELATE_OK, "%s", err.msg);
    const double e_dense = relate_test_rel_err(p, want_dense, (size_t)(n * n));
    double sum = 0.0, asym = 0.0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            sum += p[i * n + j];
            asym = fmax(asym, fabs(p[i * n + j] - p[j * n + i]));
        }
    CHECK_MSG(e_dense < 1e-6, "%s: dense P rel err %.3g (bound 1e-6)", name, e_dense);
    CHECK_MSG(asym == 0.0 && fabs(sum - 1.0) < 1e-5, "%s: P asymmetry %g, sum %.8f", name, asym, sum);

    relate_tsne_sparse sp;
    CHECK_MSG(relate_tsne_affinities_sparse(x, n, d, prm[0], (int)prm[1], &sp, &err) == RELATE_OK, "%s", err.msg);
    float *dense = densify(&sp);
    int64_t pattern = 0;
    for (int64_t i = 0; i < n * n; i++)
        pattern += (dense[i] != 0) != (want_sparse[i] != 0);
    const double e_sparse = relate_test_rel_err(dense, want_sparse, (size_t)(n * n));
    CHECK_MSG(pattern == 0, "%s: %lld entries of the sparse pattern differ from numpy's", name, (long long)pattern);
    CHECK_MSG(e_sparse < 1e-6, "%s: sparse P rel err %.3g (bound 1e-6)", name, e_sparse);
    printf("(a) %s (%lld x %d, perplexity %g, k %d): P rel err vs numpy: dense %.2e, sparse %.2e (bound 1e-6); "
           "sparse pattern identical (%lld non-zeros)\n",
           name, (long long)n, d, prm[0], (int)prm[1], e_dense, e_sparse, (long long)sp.row[n]);
    relate_tsne_sparse_free(&sp);
    free(dense);
    free(p);
}

static void gaussian(double *v, int64_t n, double scale, uint32_t stream)
{
    relate_rng r;
    relate_rng_init(&r, 14, stream, 0, RELATE_PURPOSE_TEST);
    for (int64_t i = 0; i < n; i++)
        v[i] = scale * relate_rng_normal(&r);
}

/* Points of `clusters` Gaussian clusters (unit spread, centres N(0, sep^2) per coordinate), point i
 * in cluster i % clusters. */
static float *clustered(int64_t n, int d, int clusters, double sep, uint32_t stream)
{
    double *c = malloc((size_t)clusters * (size_t)d * sizeof *c), *e = malloc((size_t)n * (size_t)d * sizeof *e);
    gaussian(c, (int64_t)clusters * d, sep, stream);
    gaussian(e, n * d, 1.0, stream + 1);
    float *x = malloc((size_t)n * (size_t)d * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            x[i * d + j] = (float)(c[(i % clusters) * d + j] + e[i * d + j]);
    free(c);
    free(e);
    return x;
}

/* (b) the exact gradient against central differences of KL(P || Q). */
static void check_gradient_fd(void)
{
    const int64_t n = 40;
    const int d = 6;
    float *x = clustered(n, d, 3, 2.0, 10);
    float *p = malloc((size_t)(n * n) * sizeof *p);
    relate_error err = {0};
    CHECK(relate_tsne_affinities(x, n, d, 8.0, p, &err) == RELATE_OK);
    double *y = malloc((size_t)n * 2 * sizeof *y), *g = malloc((size_t)n * 2 * sizeof *g);
    double *fd = malloc((size_t)n * 2 * sizeof *fd);
    gaussian(y, 2 * n, 2.0, 20);
    CHECK(relate_tsne_gradient_exact(p, y, n, 1.0, g, &err) == RELATE_OK);
    const double h = 1e-5;
    for (int64_t i = 0; i < 2 * n; i++) {
        const double keep = y[i];
        y[i] = keep + h;
        const double up = relate_tsne_kl_exact(p, y, n);
        y[i] = keep - h;
        const double down = relate_tsne_kl_exact(p, y, n);
        y[i] = keep;
        fd[i] = (up - down) / (2 * h);
    }
    const double e = relate_test_rel_err_f64(g, fd, (size_t)(2 * n));
    CHECK_MSG(e < 1e-6, "exact gradient vs finite differences: rel err %.3g (bound 1e-6)", e);
    printf("(b) exact gradient vs central differences of KL (h = 1e-5, %lld points): rel err %.2e (bound 1e-6)\n",
           (long long)n, e);
    free(x);
    free(p);
    free(y);
    free(g);
    free(fd);
}

/* (c) Barnes-Hut against the exact gradient on the same (sparse) P, exaggerated as in the first
 * phase, with two coincident points (one quadtree leaf holds both). */
static void check_barnes_hut(void)
{
    const int64_t n = 600;
    const int d = 10;
    float *x = clustered(n, d, 4, 3.0, 30);
    relate_tsne_sparse sp;
    relate_error err = {0};
    CHECK(relate_tsne_affinities_sparse(x, n, d, 10.0, 30, &sp, &err) == RELATE_OK);
    float *pd = densify(&sp);
    double *y = malloc((size_t)n * 2 * sizeof *y), *ge = malloc((size_t)n * 2 * sizeof *ge);
    double *gb = malloc((size_t)n * 2 * sizeof *gb);
    gaussian(y, 2 * n, 5.0, 40);
    y[2 * 5] = y[2 * 17];
    y[2 * 5 + 1] = y[2 * 17 + 1];
    CHECK(relate_tsne_gradient_exact(pd, y, n, 12.0, ge, &err) == RELATE_OK);
    const double kl_exact = relate_tsne_kl_exact(pd, y, n);
    /* Z of the exact gradient, for the comparison */
    double z_exact = 0.0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            if (j != i) {
                const double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
                z_exact += 1.0 / (1.0 + dx * dx + dy * dy);
            }
    /* theta = 0: rounding only. theta = 0.5: measured 1.1e-3 (gradient), 9.4e-3 (Z and KL) here. */
    const double thetas[2] = {0.0, 0.5}, grad_bound[2] = {1e-12, 5e-3}, z_bound[2] = {1e-12, 2e-2};
    for (int t = 0; t < 2; t++) {
        double z;
        CHECK(relate_tsne_gradient_bh(&sp, y, thetas[t], 12.0, gb, &z, &err) == RELATE_OK);
        const double e = relate_test_rel_err_f64(gb, ge, (size_t)(2 * n)), ez = fabs(z - z_exact) / z_exact;
        const double kl = relate_tsne_kl_sparse(&sp, y, z), ekl = fabs(kl - kl_exact);
        CHECK_MSG(e < grad_bound[t] && ez < z_bound[t] && ekl < z_bound[t],
                  "Barnes-Hut theta %g: gradient rel err %.3g (bound %g), Z rel err %.3g and KL abs err %.3g (bound "
                  "%g)",
                  thetas[t], e, grad_bound[t], ez, ekl, z_bound[t]);
        printf("(c) Barnes-Hut theta %.1f vs exact (%lld points): gradient rel err %.2e (bound %g), Z rel err %.2e, "
               "KL abs err %.2e (bound %g)\n",
               thetas[t], (long long)n, e, grad_bound[t], ez, ekl, z_bound[t]);
    }
    relate_tsne_sparse_free(&sp);
    free(pd);
    free(x);
    free(y);
    free(ge);
    free(gb);
}

/* The share of points whose nearest other point in the map is of their own cluster, in percent. */
static double map_knn(const float *y, int64_t n, int clusters)
{
    int64_t hit = 0;
    for (int64_t i = 0; i < n; i++) {
        double best = INFINITY;
        int64_t bj = -1;
        for (int64_t j = 0; j < n; j++) {
            const double dx = (double)y[2 * i] - y[2 * j], dy = (double)y[2 * i + 1] - y[2 * j + 1];
            if (j != i && dx * dx + dy * dy < best) {
                best = dx * dx + dy * dy;
                bj = j;
            }
        }
        hit += bj % clusters == i % clusters;
    }
    return 100.0 * (double)hit / (double)n;
}

/* (d) maps of 5 separated clusters x 100 points in 50-D, and (e) their thread independence. */
static void check_maps(void)
{
    const int64_t n = 500;
    const int d = 50, clusters = 5;
    const double kl_bound = 1.0;
    float *x = clustered(n, d, clusters, 3.0, 50);
    float *y1 = malloc((size_t)n * 2 * sizeof *y1), *y2 = malloc((size_t)n * 2 * sizeof *y2);
    for (int bh = 0; bh < 2; bh++) {
        relate_tsne_options o = relate_tsne_defaults();
        o.seed = 7;
        if (bh)
            o.exact_max = 0;
        relate_tsne_result r1, r2;
        relate_error err = {0};
        relate_set_threads(1);
        double t0 = now();
        CHECK_MSG(relate_tsne_run(x, n, d, &o, y1, &r1, &err) == RELATE_OK, "%s", err.msg);
        const double t1 = now() - t0;
        relate_set_threads(2);
        t0 = now();
        CHECK_MSG(relate_tsne_run(x, n, d, &o, y2, &r2, &err) == RELATE_OK, "%s", err.msg);
        const double t2 = now() - t0;
        CHECK(r1.barnes_hut == (bh == 1) && r1.neighbours == (bh ? 90 : 499) && r1.learning_rate == 50.0);
        const double acc = map_knn(y2, n, clusters);
        CHECK_MSG(acc == 100.0, "%s map: nearest neighbour in the own cluster for %.2f%% of points",
                  bh ? "Barnes-Hut" : "exact", acc);
        CHECK_MSG(r2.kl < kl_bound, "%s map: KL %.4f (bound %g)", bh ? "Barnes-Hut" : "exact", r2.kl, kl_bound);
        printf("(d) %s map of 5 x 100 points in 50-D: 2-D nearest neighbour in its own cluster for %.1f%%, KL %.4f "
               "(bound %g); %.2f s on 1 thread, %.2f s on 2\n",
               bh ? "Barnes-Hut" : "exact", acc, r2.kl, kl_bound, t1, t2);
        const bool same = memcmp(y1, y2, (size_t)n * 2 * sizeof *y1) == 0 && r1.kl == r2.kl;
        CHECK_MSG(same, "%s: 1 and 2 threads give different maps", bh ? "Barnes-Hut" : "exact");
        printf("(e) %s: 1 and 2 threads give the same map bit for bit: %s\n", bh ? "Barnes-Hut" : "exact",
               same ? "yes" : "NO");
        /* Another seed gives another map (the seed is used). */
        o.seed = 8;
        o.iterations = 10;
        CHECK(relate_tsne(x, n, d, &o, y2, &err) == RELATE_OK);
        o.seed = 7;
        CHECK(relate_tsne(x, n, d, &o, y1, &err) == RELATE_OK);
        CHECK(memcmp(y1, y2, (size_t)n * 2 * sizeof *y1) != 0);
    }
    free(x);
    free(y1);
    free(y2);
}

static void check_arguments(void)
{
    float x[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, y[8];
    relate_tsne_options o = relate_tsne_defaults();
    relate_error err = {0};
    CHECK(relate_tsne(x, 4, 3, &o, y, &err) == RELATE_ERR_ARG); /* perplexity 30 with 4 points */
    CHECK(strstr(err.msg, "perplexity must lie in (0, 4)") != NULL);
    o.perplexity = 2;
    memset(&err, 0, sizeof err);
    CHECK(relate_tsne(x, 1, 3, &o, y, &err) == RELATE_ERR_ARG);
    x[7] = NAN;
    memset(&err, 0, sizeof err);
    CHECK(relate_tsne(x, 4, 3, &o, y, &err) == RELATE_ERR_ARG);
    CHECK(strstr(err.msg, "feature 1 of point 2 is not finite") != NULL);
    x[7] = 7;
    /* Identical points: a uniform P, a finite map. */
    float same[20] = {0};
    float ys[20];
    memset(&err, 0, sizeof err);
    CHECK_MSG(relate_tsne(same, 10, 2, &o, ys, &err) == RELATE_OK, "%s", err.msg);
    bool finite = true;
    for (int i = 0; i < 20; i++)
        finite &= isfinite(ys[i]) != 0;
    CHECK(finite);
    o.exact_max = 0;
    CHECK_MSG(relate_tsne(same, 10, 2, &o, ys, &err) == RELATE_OK, "%s", err.msg);
    /* A perplexity under 1/3 still keeps one neighbour in Barnes-Hut's P. */
    o.perplexity = 0.2;
    relate_tsne_result r;
    CHECK_MSG(relate_tsne_run(x, 4, 3, &o, y, &r, &err) == RELATE_OK && r.neighbours == 1, "%s", err.msg);
}

int main(void)
{
    relate_safetensors st;
    relate_test_open_golden(&st, "tsne.safetensors");
    check_affinities(&st, "clusters");
    check_affinities(&st, "small_perp");
    relate_safetensors_close(&st);
    check_gradient_fd();
    check_barnes_hut();
    check_maps();
    check_arguments();
    return relate_test_finish();
}
