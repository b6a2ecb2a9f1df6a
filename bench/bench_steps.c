/* bench_steps.c: seconds per training step of a stage-1 method (relate_method_step), with the
 * loader feeding augmented batches ("full") or on one fixed batch ("compute"), the work that
 * bench_steps_torch.py times with the reference's PyTorch code.
 * Not a test and not a training run: a synthetic CIFAR-like split (50,000 random 32 x 32 RGB
 * images, CIFAR-10's normalisation) stands in for CIFAR, which cannot be downloaded here.
 *
 * usage: relate_bench_steps METHOD BACKBONE K BATCH STEPS full|compute [LOADER_THREADS]
 * prints one line: relate method backbone K batch mode median_s min_s max_s images_per_s
 * max_rss_mib flops layer_bytes input_bytes backbone_params, where images_per_s counts distinct
 * images (not views) per second, flops and layer_bytes are relate_graph_work of the last step
 * (bench/run_suite.sh's floors), input_bytes the float batch the step reads and
 * backbone_params the backbone's trainable parameters (the heads are not reachable through
 * relate/method.h).
 *
 * Started by mpirun as N processes, it times the data-parallel step (docs/scaling.md): each
 * process loads and computes its share of every batch of BATCH images; rank 0 prints (the step
 * ends in collectives, so its time is the job's), and max_rss_mib is rank 0's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_common.h"
#include "relate/dist.h"
#include "relate/loader.h"
#include "relate/method.h"
#include "relate/rng.h"

#define N_IMAGES BENCH_N_IMAGES
#define SIDE BENCH_SIDE

int main(int argc, char **argv)
{
    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: %s METHOD BACKBONE K BATCH STEPS full|compute [LOADER_THREADS]\n", argv[0]);
        return 2;
    }
    const char *method = argv[1], *backbone = argv[2], *mode = argv[6];
    int K = atoi(argv[3]), B = atoi(argv[4]), steps = atoi(argv[5]);
    int threads = argc == 8 ? atoi(argv[7]) : 2;
    const bool full = strcmp(mode, "full") == 0;
    const int warmup = 2;
    if (steps < 1 || B < 2 || (int64_t)(warmup + steps) * B > N_IMAGES) {
        fprintf(stderr, "steps >= 1, batch >= 2, (steps + 2) * batch <= %d\n", N_IMAGES);
        return 2;
    }
    relate_error err = {0};
    if (relate_dist_init(&err) != RELATE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    relate_split split;
    relate_dataset_info info;
    if (bench_synthetic_cifar(&split, &info) != 0) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }

    relate_method_config mc = relate_method_defaults();
    mc.method = method;
    mc.backbone = backbone;
    mc.K = K;
    mc.num_classes = 10;
    relate_method *m;
    if (relate_method_create(&m, &mc, &err) != RELATE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    relate_loader_config cfg = relate_loader_defaults(&split, &info, relate_method_pipeline(m, &info));
    cfg.views = relate_method_views(m);
    cfg.batch_size = B;
    cfg.seed = 1;
    cfg.threads = threads;
    cfg.drop_last = true;
    cfg.shard_index = relate_dist_rank();
    cfg.shard_count = relate_dist_size();
    relate_method_loader_setup(m, &cfg);
    relate_loader *l;
    if (relate_loader_create(&l, &cfg, &err) != RELATE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    relate_epoch_context ec = {.epoch = 0, .out = stderr, .split = &split, .info = &info, .batch_size = B,
                               .num_workers = threads};
    if (relate_method_epoch_begin(m, &ec, &err) != RELATE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    relate_loader_start_epoch(l, 0);
    relate_batch fixed;
    if (relate_loader_next(l, &fixed) != 1)
        return 1;
    /* compute mode reuses one batch: copy it out of the loader's slot (full mode does not, so its
     * peak RSS is the loader's and the step's alone). */
    const size_t nimg = (size_t)fixed.views * fixed.size * 3 * SIDE * SIDE;
    float *images = NULL;
    int32_t labels[4096];
    int64_t indices[4096];
    if (!full) {
        images = malloc(nimg * sizeof(float));
        if (!images) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        memcpy(images, fixed.images, nimg * sizeof(float));
        memcpy(labels, fixed.labels, sizeof(int32_t) * (size_t)fixed.size);
        memcpy(indices, fixed.indices, sizeof(int64_t) * (size_t)fixed.size);
        fixed.images = images;
        fixed.labels = labels;
        fixed.indices = indices;
    }

    relate_graph *g = relate_graph_create();
    double *t = malloc(sizeof(double) * (size_t)steps);
    for (int it = 0; it < warmup + steps; it++) {
        double t0 = bench_now();
        relate_batch b = fixed;
        if (full && relate_loader_next(l, &b) != 1) {
            fprintf(stderr, "loader ran dry\n");
            return 1;
        }
        relate_step_result r;
        if (relate_method_step(m, g, &b, &r, &err) != RELATE_OK) {
            fprintf(stderr, "step failed: %s\n", err.msg);
            return 1;
        }
        if (it >= warmup)
            t[it - warmup] = bench_now() - t0;
    }
    /* relate_method_step resets the graph when it starts, so the counters hold the last step. */
    double flops, layer_bytes;
    relate_graph_work(g, &flops, &layer_bytes);
    qsort(t, (size_t)steps, sizeof(double), bench_cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double med = t[steps / 2];
    if (relate_dist_rank() == 0)
        printf("relate %s %s %d %d %s %.4f %.4f %.4f %.1f %.0f %.0f %.0f %.0f %lld\n", method, backbone, K, B, mode, med,
           t[0], t[steps - 1], B / med, ru.ru_maxrss / 1024.0, flops, layer_bytes, (double)nimg * sizeof(float),
           (long long)relate_params_count_trainable(&m->backbone.params));
    relate_graph_destroy(g);
    relate_loader_destroy(l);
    relate_method_free(m);
    free(images);
    free(t);
    bench_synthetic_free(&split);
    relate_dist_finalize();
    return 0;
}
