/* bench_kmeans.c: seconds for deepcluster's clustering of one epoch (spec 3.5 steps 3-4): PCA
 * whitening + L2 normalisation, then k-means (k-means++, 5 restarts, 30 iterations, tol 1e-4), on
 * a synthetic feature matrix; bench_kmeans_torch.py times a plain torch k-means on the same data.
 * Not a test: the data are 100 overlapping Gaussian blobs (centres N(0, 1), noise N(0, 1)) so that
 * Lloyd runs most of its 30 iterations, as on real features early in training.
 *
 * usage: relate_bench_kmeans [N [D [K [DUMP]]]]   (defaults 50000 64 100; DUMP: write the
 *        normalised features as raw float32 [N, D] for bench_kmeans_torch.py)
 * prints the time of each part, the iterations and inertia of every restart. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "methods/kmeans.h"
#include "methods/pca.h"
#include "relate/rng.h"

int main(int argc, char **argv)
{
    const int64_t n = argc > 1 ? atoll(argv[1]) : 50000;
    const int d = argc > 2 ? atoi(argv[2]) : 64;
    const int k = argc > 3 ? atoi(argv[3]) : 100;
    const char *dump = argc > 4 ? argv[4] : NULL;
    float *x = malloc((size_t)n * d * sizeof *x), *z = malloc((size_t)n * d * sizeof *z);
    float *blobs = malloc((size_t)100 * d * sizeof *blobs), *centers = malloc((size_t)k * d * sizeof *centers);
    int32_t *labels = malloc((size_t)n * sizeof *labels);
    if (!x || !z || !blobs || !centers || !labels)
        return 1;
    relate_rng r;
    relate_rng_init(&r, 7, 0, 0, RELATE_PURPOSE_TEST);
    for (int i = 0; i < 100 * d; i++)
        blobs[i] = (float)relate_rng_normal(&r);
    for (int64_t i = 0; i < n; i++) {
        const int b = (int)relate_rng_below(&r, 100);
        for (int j = 0; j < d; j++)
            x[(size_t)i * d + j] = blobs[(size_t)b * d + j] + (float)relate_rng_normal(&r);
    }
    relate_error err = {0};
    const int nc = relate_pca_components(d);
    printf("relate k-means bench: N=%lld d=%d k=%d, %d threads\n", (long long)n, d, k, omp_get_max_threads());

    double t0 = omp_get_wtime();
    if (relate_pca_whiten(x, n, d, nc, z, NULL, &err) != RELATE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    relate_l2_normalize_rows(z, n, nc);
    double t_pca = omp_get_wtime() - t0;
    printf("pca whitening + L2: %.3f s\n", t_pca);
    if (dump) {
        FILE *f = fopen(dump, "wb");
        if (!f || fwrite(z, sizeof *z, (size_t)n * nc, f) != (size_t)n * nc)
            return 1;
        fclose(f);
    }

    relate_kmeans_options o = relate_kmeans_defaults(k);
    o.seed = 1;
    relate_rng kr;
    relate_kmeans_rng(&kr, &o, 0);
    t0 = omp_get_wtime();
    if (relate_kmeans_plusplus(z, NULL, n, nc, k, 0, &kr, centers, NULL, &err) != RELATE_OK)
        return 1;
    const double t_pp = omp_get_wtime() - t0;
    t0 = omp_get_wtime();
    double inertia;
    int iters;
    const double tol = relate_kmeans_tolerance(z, n, nc, 1e-4);
    if (relate_kmeans_lloyd(z, n, nc, k, centers, 30, tol, centers, labels, &inertia, &iters, &err) != RELATE_OK)
        return 1;
    const double t_lloyd = omp_get_wtime() - t0;
    printf("one restart: k-means++ %.3f s, Lloyd %.3f s for %d iterations (%.1f ms/iteration)\n", t_pp, t_lloyd,
           iters, 1e3 * t_lloyd / iters);

    relate_kmeans_report rep;
    t0 = omp_get_wtime();
    if (relate_kmeans_fit(z, n, nc, &o, labels, NULL, &rep, &err) != RELATE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const double t_fit = omp_get_wtime() - t0;
    printf("k-means fit (5 restarts): %.3f s; kept restart %d, inertia %.4f, %d iterations; restarts:", t_fit,
           rep.best_restart, rep.inertia, rep.n_iter);
    for (int i = 0; i < rep.restarts; i++)
        printf(" %.4f", rep.restart_inertia[i]);
    printf("\ntotal clustering (pca + fit): %.3f s\n", t_pca + t_fit);
    free(x);
    free(z);
    free(blobs);
    free(centers);
    free(labels);
    return 0;
}
