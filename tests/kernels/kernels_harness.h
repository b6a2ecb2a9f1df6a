/* kernels_harness.h: what the kernel tests share: the op-instance record (tcase), the battery
 * run_case runs on it, the input helpers and the bounds, and the themed checks main calls.
 * Not any kernel's own checks (those are in kernels_conv.c, kernels_batchnorm.c, kernels_pool.c,
 * kernels_elementwise.c, kernels_dense.c and kernels_losses.c). */
#ifndef RELATE_TESTS_KERNELS_HARNESS_H
#define RELATE_TESTS_KERNELS_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#define MAXIN 4
#define FD_PROBES 40
/* Fast kernels against their double-precision references: float32 rounding of sums of at most a
 * few thousand terms stays far below this. */
#define REF_BOUND 1e-5
/* Finite differences are taken in float32 (the kernels' precision) with central steps h of
 * 1e-2..1e-3: for ops linear in the perturbed input the truncation term vanishes and only float
 * rounding of the touched outputs divided by 2h remains (~1e-5 relative); for curved ops
 * (batch norm, softmax, losses) the O(h^2) truncation adds ~1e-4. 1e-2 leaves a wide margin while
 * still catching any wrong term (those show up as O(1) errors). Kinks (relu, leaky relu, max,
 * maximum) are kept out of reach by constructing inputs at least 2h away from them. */
#define FD_BOUND 1e-2

/* One differentiable op instance: inputs, its forward (y = f(inputs), state into aux), its
 * backward (accumulating into g[j], NULL skipped) and an optional naive reference that writes the
 * forward and the gradients into zeroed buffers. */
typedef struct tcase tcase;
struct tcase {
    const char *name;
    int nin;
    float *in[MAXIN];
    size_t nel[MAXIN];
    size_t ny;
    void (*fwd)(tcase *c, float *y);
    void (*bwd)(tcase *c, float *const *g, const float *dy);
    void (*ref)(tcase *c, float *y, float *const *g, const float *dy);
    void *aux;
    float h;
};

/* Zeroed floats (at least one allocated); aborts when out of memory. */
float *falloc(size_t n);
/* Inputs in [-1, 1), each call with the next seed of one counter that every file shares: the
 * inputs a check gets depend on the order main runs the checks in. */
float *frand(size_t n);
/* Moves every value at least `gap` away from 0, keeping its sign. */
void push_from_zero(float *x, size_t n, float gap);
/* Distinct values spaced `gap` apart in a scrambled order: no ties anywhere for max pooling. */
void distinct_fill(float *x, size_t n, float gap);
void check_bits(const char *what, const char *name, const void *a, const void *b, size_t bytes);
/* Runs the whole battery on one op; `fd` enables the finite-difference part. */
void run_case(tcase *c, int fd);

/* The themed checks, run by main (test_kernels.c); `fd` enables finite differences. */
/* kernels_conv.c */
void test_conv(int fd);
void test_conv_backends(void);
void test_conv_direct(void);
void test_conv_direct_backward(void);
void test_conv_thread_history(void);
void test_conv_dims(void);
/* kernels_batchnorm.c */
void test_batchnorm(int fd);
/* kernels_batchnorm_blocked.c */
void test_batchnorm_blocked(void);
void test_batchnorm_large_mean(void);
/* kernels_pool.c */
void test_pool(int fd);
void test_pool_dims(void);
/* kernels_elementwise.c */
void test_elementwise(int fd);
void test_shape_ops(int fd);
/* kernels_dense.c */
void test_linalg(int fd);
void test_rows(int fd);
/* kernels_losses.c */
void test_losses(int fd);

#endif
