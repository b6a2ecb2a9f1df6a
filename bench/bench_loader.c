/* bench_loader.c: throughput of relate's data loader on the paper's headline relationnet setting
 * (pipeline T1, K views of each of B images of 32 x 32), the work bench_loader_torch.py times
 * with torchvision and a PyTorch DataLoader.
 * Not a test and not a training run: the consumer only takes the batches.
 *
 * The data are a synthetic CIFAR-like split held in memory: 50,000 images of 32 x 32 RGB with
 * uniformly random bytes (Philox, seed 1) and CIFAR-10's normalisation constants, so the
 * benchmark needs no download and both sides see images of the same size and statistics (the
 * transforms' cost hardly depends on the pixel values). No CIFAR copy was on the machine.
 *
 * usage: relate_bench_loader THREADS BATCHES [VIEWS BATCH_SIZE]   (defaults K = 32, B = 64)
 * prints one line: relate threads views batch batches seconds ms_per_batch images_per_s
 * views_per_s max_rss_mib (MiB = 2^20 bytes). The clock starts when the 2nd warm-up batch has
 * arrived and stops when the BATCHES-th timed one has; the epoch holds THREADS more batches, so
 * the workers are as busy at the end of the window as at its start (no drained tail). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_common.h"
#include "relate/loader.h"
#include "relate/rng.h"

#define N_IMAGES BENCH_N_IMAGES

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 5) {
        fprintf(stderr, "usage: %s THREADS BATCHES [VIEWS BATCH_SIZE]\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[1]), batches = atoi(argv[2]);
    int views = argc == 5 ? atoi(argv[3]) : 32, bs = argc == 5 ? atoi(argv[4]) : 64;
    const int warmup = 2;
    if (threads < 0 || batches < 1 || views < 1 || bs < 1 || (int64_t)(warmup + batches) * bs > N_IMAGES) {
        fprintf(stderr, "threads >= 0, batches >= 1, views >= 1, batch size >= 1, (batches + 2) * batch <= %d\n",
                N_IMAGES);
        return 2;
    }
    relate_split split;
    relate_dataset_info info;
    if (bench_synthetic_cifar(&split, &info) != 0) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }

    relate_loader_config cfg = relate_loader_defaults(&split, &info, RELATE_T1);
    cfg.views = views;
    cfg.batch_size = bs;
    cfg.seed = 1;
    cfg.threads = threads;
    cfg.limit_batches = warmup + batches + threads;
    relate_loader *l = NULL;
    relate_error err = {0};
    if (relate_loader_create(&l, &cfg, &err) != RELATE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    relate_loader_start_epoch(l, 0);
    relate_batch b;
    double sink = 0.0, t0 = 0.0;
    int got = 0;
    double secs = 0.0;
    while (relate_loader_next(l, &b) == 1) {
        sink += b.images[0]; /* touch the batch, as a consumer would */
        if (++got == warmup)
            t0 = bench_now();
        if (got == warmup + batches) {
            secs = bench_now() - t0;
            break;
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double ips = (double)batches * bs / secs;
    printf("relate %d %d %d %d %.3f %.2f %.1f %.1f %.0f\n", threads, views, bs, batches, secs, secs / batches * 1e3,
           ips, ips * views, ru.ru_maxrss / 1024.0);
    if (sink == 12345.678) /* keeps the touch from being optimised away */
        fputc(' ', stderr);
    relate_loader_destroy(l);
    bench_synthetic_free(&split);
    return 0;
}
