/* bench_common.h: what the benchmark programs share: a monotonic clock, a comparator for
 * medians, and the synthetic CIFAR-like split that stands in for CIFAR (not downloadable here).
 * Not a benchmark framework: each program times its own work and prints its own line. */
#ifndef RELATE_BENCH_COMMON_H
#define RELATE_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "relate/data.h"

#define BENCH_N_IMAGES 50000
#define BENCH_SIDE 32

/* Seconds on a monotonic clock. */
double bench_now(void);
/* qsort comparator of doubles, ascending. */
int bench_cmp_double(const void *a, const void *b);
/* n uniformly random bytes from a Philox stream of seed (the pixels of the synthetic splits). */
void bench_random_bytes(uint8_t *out, size_t n, uint64_t seed);
/* 50,000 images of 32 x 32 RGB with uniformly random bytes (Philox, seed 1), labels i mod 10,
 * CIFAR-10's normalisation and augmentation constants; the stage-1 split is TRAIN. Returns 0, or
 * -1 when out of memory. bench_synthetic_free releases the pixels and labels. */
int bench_synthetic_cifar(relate_split *split, relate_dataset_info *info);
void bench_synthetic_free(relate_split *split);

#endif
