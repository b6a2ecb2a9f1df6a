/* bench_backbones.c: forward+backward throughput of one backbone in training mode, the work
 * that bench_backbones_torch.py times in PyTorch.
 * Not a test and not a training run: the loss is sum(features * r) for a fixed random r.
 *
 * usage: relate_bench_backbones BACKBONE BATCH IMAGE_SIZE STEPS
 * prints one line: relate name batch size median_ms min_ms max_ms images_per_s peak_arena_mib
 * max_rss_mib (MiB = 2^20 bytes; the arena figure includes the per-graph workspace) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_common.h"
#include "relate/graph.h"
#include "relate/nn.h"
#include "relate/rng.h"

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s BACKBONE BATCH IMAGE_SIZE STEPS\n", argv[0]);
        return 2;
    }
    const char *name = argv[1];
    int n = atoi(argv[2]), s = atoi(argv[3]), steps = atoi(argv[4]);
    if (n < 2 || s < 1 || steps < 1) {
        fprintf(stderr, "batch must be >= 2, image size >= 1, steps >= 1\n");
        return 2;
    }
    relate_error err = {0};
    relate_backbone bb;
    if (relate_backbone_create(&bb, name, 1, &err) != RELATE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    size_t nx = (size_t)n * 3 * s * s, nr = (size_t)n * bb.feature_size;
    float *x = malloc(nx * sizeof(float)), *r = malloc(nr * sizeof(float));
    relate_rng rng;
    relate_rng_init(&rng, 1, 0, 0, RELATE_PURPOSE_TEST);
    for (size_t i = 0; i < nx; i++)
        x[i] = (float)relate_rng_normal(&rng);
    for (size_t i = 0; i < nr; i++)
        r[i] = relate_rng_uniform(&rng);
    relate_graph *g = relate_graph_create();
    const int warmup = 2;
    double *t = malloc(sizeof(double) * (size_t)steps);
    for (int it = 0; it < warmup + steps; it++) {
        double t0 = bench_now();
        relate_tensor *y = relate_backbone_forward(g, &bb, relate_tensor_wrap(g, 4, (int64_t[]){n, 3, s, s}, x), true);
        relate_tensor *loss = relate_sum(g, relate_mul(g, y, relate_tensor_wrap(g, 2, (int64_t[]){n, bb.feature_size}, r)));
        if (!loss || relate_graph_backward(g, loss) != RELATE_OK) {
            fprintf(stderr, "step failed: %s\n", relate_graph_error(g)->msg);
            return 1;
        }
        relate_params_zero_grad(&bb.params);
        relate_graph_reset(g);
        if (it >= warmup)
            t[it - warmup] = bench_now() - t0;
    }
    qsort(t, (size_t)steps, sizeof(double), bench_cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double med = t[steps / 2];
    printf("relate %s %d %d %.2f %.2f %.2f %.1f %.0f %.0f\n", name, n, s, med * 1e3, t[0] * 1e3,
           t[steps - 1] * 1e3, n / med, relate_graph_peak_bytes(g) / 1048576.0, ru.ru_maxrss / 1024.0);
    relate_graph_destroy(g);
    relate_backbone_free(&bb);
    free(x);
    free(r);
    free(t);
    return 0;
}
