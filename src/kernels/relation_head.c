/* relation_head.c: relationnet's relation head over every pair in three streaming passes:
 * h = a[ia] + b[ib] + bias1 -> BatchNorm1d (training) -> LeakyReLU -> Linear(C, 1).
 * Not the factorisation (relationnet.c computes a = F W_a^T and b = F W_b^T once per view) and
 * not the max aggregation, which needs the pairs themselves.
 *
 * Why fused: with K = 32 and B = 64 there are 63,488 pairs of 256 channels, 65 MB per tensor.
 * Composed ops write h, the normalised h, the activation and three gradients of that size and read
 * each two or three times (~1.2 GB of traffic and ~400 MB of arena per step). Here only h is
 * stored; the normalised value and the activation are recomputed from h and the channel
 * statistics wherever they are needed, so h is written once and read from memory three times
 * (its variance is summed per chunk of rows while the chunk is in cache).
 *
 * Arithmetic follows the composed ops (spec 3.1.3): h summed left to right in float, statistics in
 * double (the variance from each chunk's squared deviations about its own mean, combined with
 * Chan's update: as accurate as a second pass), y = h * alpha + shift in float, PyTorch's LeakyReLU gradient
 * convention (x > 0 ? dy : slope * dy) and its batch-norm backward grouping. Only summation order
 * differs (per-chunk partial sums), so results agree with the composed ops to float rounding.
 * Chunks are fixed-size row ranges reduced in chunk order, so results do not depend on the
 * number of threads.
 *
 * The passes themselves are in relation_head_body.h, built for AVX2 here and for AVX-512 in
 * relation_head_avx512.c; this file sizes the scratch and picks the build (relate_kernels_isa).
 * Both give the same bits. The AVX-512 one exists for the double sums: converting floats to
 * doubles halves the vector width, and the backward's first pass ran 2.5x faster at 16 lanes. */
#define RH_FN(name) relate_relation_head_##name##_avx2
#include "kernels/relation_head_body.h"

void relate_relation_head_forward_avx512(float *h, float *logits, float *mean, float *invstd, float *running_mean,
                                         float *running_var, const relate_relation_head_params *p, int64_t rows,
                                         int cols, double *scratch);
void relate_relation_head_backward_avx512(const relate_relation_head_grads *gr, const float *dlogits,
                                          const float *h, const float *mean, const float *invstd,
                                          const relate_relation_head_params *p, int64_t rows, int cols,
                                          double *scratch);

size_t relate_relation_head_scratch_doubles(int64_t rows, int cols)
{
    /* Backward: three partial rows per chunk plus one scalar, their total, and five per-column
     * float coefficients (stored in double slots). Forward: three partial rows per chunk, two
     * totals and two float coefficients, which is less. */
    return (size_t)(chunk_count(rows) + 1) * (3 * (size_t)cols + 1) + 5 * (size_t)cols;
}

void relate_relation_head_forward(float *h, float *logits, float *mean, float *invstd, float *running_mean,
                                  float *running_var, const relate_relation_head_params *p, int64_t rows,
                                  int cols, double *scratch)
{
    if (relate_kernels_isa() == RELATE_ISA_AVX512)
        relate_relation_head_forward_avx512(h, logits, mean, invstd, running_mean, running_var, p, rows, cols,
                                            scratch);
    else
        relate_relation_head_forward_avx2(h, logits, mean, invstd, running_mean, running_var, p, rows, cols,
                                          scratch);
}

void relate_relation_head_backward(const relate_relation_head_grads *gr, const float *dlogits, const float *h,
                                   const float *mean, const float *invstd, const relate_relation_head_params *p,
                                   int64_t rows, int cols, double *scratch)
{
    if (relate_kernels_isa() == RELATE_ISA_AVX512)
        relate_relation_head_backward_avx512(gr, dlogits, h, mean, invstd, p, rows, cols, scratch);
    else
        relate_relation_head_backward_avx2(gr, dlogits, h, mean, invstd, p, rows, cols, scratch);
}
