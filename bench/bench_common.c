/* bench_common.c: clock, median comparator and synthetic split of the benchmarks (bench_common.h). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "bench_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "relate/rng.h"

double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void bench_random_bytes(uint8_t *out, size_t n, uint64_t seed)
{
    relate_rng rng;
    relate_rng_init(&rng, seed, 0, 0, RELATE_PURPOSE_TEST);
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = relate_rng_u32(&rng);
        memcpy(out + i, &v, n - i < 4 ? n - i : 4);
    }
}

int bench_synthetic_cifar(relate_split *split, relate_dataset_info *info)
{
    memset(split, 0, sizeof *split);
    split->present = true;
    split->count = BENCH_N_IMAGES;
    split->width = split->height = BENCH_SIDE;
    size_t nbytes = (size_t)BENCH_N_IMAGES * BENCH_SIDE * BENCH_SIDE * 3;
    split->pixels = malloc(nbytes);
    split->labels = malloc(sizeof(int32_t) * BENCH_N_IMAGES);
    if (!split->pixels || !split->labels) {
        bench_synthetic_free(split);
        return -1;
    }
    bench_random_bytes(split->pixels, nbytes, 1);
    for (int i = 0; i < BENCH_N_IMAGES; i++)
        split->labels[i] = i % 10;
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "synthetic-cifar");
    info->num_classes = 10;
    info->image_size = BENCH_SIDE;
    const float mean[3] = {0.491f, 0.482f, 0.447f}, std[3] = {0.247f, 0.243f, 0.262f};
    memcpy(info->mean, mean, sizeof mean);
    memcpy(info->std, std, sizeof std);
    info->crop_padding = 4;
    info->cutout = 0.25f;
    info->unsupervised_split = RELATE_SPLIT_TRAIN;
    return 0;
}

void bench_synthetic_free(relate_split *split)
{
    free(split->pixels);
    free(split->labels);
    split->pixels = NULL;
    split->labels = NULL;
}
