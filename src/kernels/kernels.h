/* kernels.h: forward and backward compute of every op, on raw float arrays.
 * Not aware of tensors, graphs or allocation: a kernel takes pointers and sizes, may use the
 * OpenMP thread team and pre-sized scratch, and allocates nothing.
 *
 * Conventions (every kernel follows them):
 *  - Layout is NCHW, contiguous, float32. Shapes are written next to each pointer.
 *  - Forward kernels overwrite their output.
 *  - Backward kernels ACCUMULATE (+=) into every gradient they are given, so a tensor used
 *    twice receives the sum of both gradients. A NULL gradient pointer means "not needed":
 *    the kernel skips that work.
 *  - Each optimised kernel has a naive `_ref` twin where the fast one is non-trivial; tests
 *    compare the two, finite differences, and PyTorch goldens.
 *  - Reductions use a fixed order for a given thread count, so results are deterministic.
 */
#ifndef RELATE_KERNELS_H
#define RELATE_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- instruction set (cpu_isa.c) */
/* The vector instruction set of relate's own kernels that have more than one build: the best
 * the CPU has (AVX-512 means F+VL+BW+DQ), capped by RELATE_ISA=avx2 in the environment or by
 * relate_kernels_cap_isa ("avx2" or "avx512"; -1 for another name), which makes an AVX-512
 * machine compute what an AVX2 one does. Each kernel says whether its builds agree to the bit. */
typedef enum relate_isa { RELATE_ISA_NONE = 0, RELATE_ISA_AVX2 = 1, RELATE_ISA_AVX512 = 2 } relate_isa;
relate_isa relate_kernels_isa(void);
const char *relate_kernels_isa_name(void); /* "avx512", "avx2" or "none" */
int relate_kernels_cap_isa(const char *isa);

/* ---------------------------------------------------------------- convolution (no bias) */
/* torch.nn.functional.conv2d(x, w, stride=stride, padding=pad), zero padding. */
typedef struct relate_conv2d_dims {
    int n, c, h, w;      /* input x [n, c, h, w] */
    int o, kh, kw;       /* weight [o, c, kh, kw] */
    int stride, pad;     /* same in both directions */
    int ho, wo;          /* output y [n, o, ho, wo], filled by relate_conv2d_dims_init */
    /* RELATE_CONV_BLOCKED_X: x (and dx) in the nChw16c layout (see relate_bn16_*; c a multiple
     * of 16); RELATE_CONV_BLOCKED_Y: y and dy (o a multiple of 16). Only oneDNN's path runs
     * them (relate_conv2d_blocked_fits). 0: both NCHW. */
    int blocked;
} relate_conv2d_dims;
enum { RELATE_CONV_BLOCKED_X = 1, RELATE_CONV_BLOCKED_Y = 2 };

/* Implementations: oneDNN (the default; what PyTorch uses on x86), with relate's direct kernels
 * where they fit (conv2d_direct.c: image stems, 3x3 convolutions of 1-4 input channels; and the
 * backward of conv4's second convolution in the blocked layout); oneDNN alone (RELATE_CONV=onednn); and chunked im2col + OpenBLAS sgemm (RELATE_CONV=blas in
 * the environment, and the fallback for any shape oneDNN refuses). All are checked against the
 * _ref loops and PyTorch goldens. */
typedef enum relate_conv_backend {
    RELATE_CONV_ONEDNN = 0,
    RELATE_CONV_BLAS = 1,
    RELATE_CONV_ONEDNN_ONLY = 2,
} relate_conv_backend;
relate_conv_backend relate_conv2d_get_backend(void);
/* Whether oneDNN runs this shape with the layouts of d->blocked (non-zero): the backend is
 * oneDNN's, the blocked tensors' channel counts are multiples of 16 and oneDNN accepts the shape
 * (reordering between nChw16c and its own layout where that differs). */
bool relate_conv2d_blocked_fits(const relate_conv2d_dims *d);
/* When the backbones keep activations in nChw16c (ResNet blocks, conv4's layers 2-4, in
 * training): OFF never; AUTO (the default) where every convolution fits and the layout saves
 * oneDNN reorders (its AVX-512 kernels compute in nChw16c; its AVX2 ones block by 8, and the
 * layout would only move the reorders); ALWAYS wherever they fit (tests: the blocked
 * path on any CPU). RELATE_BLOCKED_LAYOUT=0 or =always in the environment; the setter overrides. */
typedef enum relate_blocked_mode {
    RELATE_BLOCKED_OFF = 0,
    RELATE_BLOCKED_AUTO = 1,
    RELATE_BLOCKED_ALWAYS = 2,
} relate_blocked_mode;
relate_blocked_mode relate_blocked_layout_mode(void);
void relate_set_blocked_layout(relate_blocked_mode mode);
/* What a backbone asks of each convolution before it keeps the layout: relate_conv2d_blocked_fits,
 * and in AUTO mode fewer activation reorders than the same convolution in NCHW; false in OFF mode. */
bool relate_conv2d_blocked_preferred(const relate_conv2d_dims *d);
void relate_conv2d_set_backend(relate_conv_backend b);
const char *relate_conv2d_backend_name(void);

/* Fills ho/wo; returns 0, or -1 if the shapes do not fit (output smaller than 1x1, stride < 1,
 * pad < 0, kernel < 1). */
int relate_conv2d_dims_init(relate_conv2d_dims *d);
/* Scratch (floats) that relate_conv2d_forward/backward need for `nthreads` threads. */
size_t relate_conv2d_scratch_floats(const relate_conv2d_dims *d, int nthreads);
/* The weight gradient of a stem convolution whose dy is never stored whole: dy_of writes image
 * i's [o, ho, wo] into dy_image, with tmp_floats of scratch of its own, from inside the kernel's
 * thread team (each image once, on one thread). Only where relate's direct stem kernel runs the
 * shape (the default backend, an AVX2 CPU, 3x3 stride-1 pad-1 with 1-4 input channels): the
 * scratch size is then non-zero and the call returns 0, adding into dw the bits that
 * relate_conv2d_backward would from the same dy. Otherwise 0 floats and -1, nothing done. */
typedef void (*relate_conv2d_dy_fn)(float *dy_image, float *tmp, int image, void *ctx);
size_t relate_conv2d_weight_grad_fn_scratch_floats(const relate_conv2d_dims *d, int nthreads, size_t tmp_floats);
int relate_conv2d_weight_grad_fn(float *dw, relate_conv2d_dy_fn dy_of, void *ctx, size_t tmp_floats, const float *x,
                                 const relate_conv2d_dims *d, float *scratch);

void relate_conv2d_forward(float *y, const float *x, const float *w, const relate_conv2d_dims *d,
                           float *scratch);
/* dx [n,c,h,w] (nullable), dw [o,c,kh,kw] (nullable), dy [n,o,ho,wo]; both gradients are added to. */
void relate_conv2d_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                            const relate_conv2d_dims *d, float *scratch);
/* The same, but with dx_store dx is stored, not added to: its old contents are never read (a
 * fresh gradient buffer, relate_grad_to_write), and the values equal adding to zeros. */
void relate_conv2d_backward_ex(float *dx, float *dw, const float *dy, const float *x, const float *w,
                               const relate_conv2d_dims *d, float *scratch, bool dx_store);
void relate_conv2d_forward_ref(float *y, const float *x, const float *w, const relate_conv2d_dims *d);
void relate_conv2d_backward_ref(float *dx, float *dw, const float *dy, const float *x,
                                const float *w, const relate_conv2d_dims *d);

/* ---------------------------------------------------------------- batch norm (1d and 2d) */
/* x viewed as [n, c, hw] (hw = 1 for BatchNorm1d). torch.nn.BatchNorm{1,2}d semantics.
 * Training: per-channel batch mean and biased variance normalise x; saved_mean and
 * saved_invstd [c] = 1/sqrt(var + eps) are written for the backward; running statistics become
 * (1-momentum)*running + momentum*batch, using the UNBIASED variance var*m/(m-1), m = n*hw
 * (when m == 1 PyTorch refuses training mode; the caller must reject it).
 * Statistics are accumulated in double. running_* may be NULL (no tracking). */
/* The statistics of one channel once its mean and sum of squared deviations over m values are
 * known: saved mean/invstd and PyTorch's running-stat update (unbiased variance, momentum). */
void relate_bn_finish_channel(double mean, double var_sum, double m, int ch, float *saved_mean,
                              float *saved_invstd, float *running_mean, float *running_var, float momentum,
                              float eps);
void relate_batchnorm_forward_train(float *y, float *saved_mean, float *saved_invstd,
                                    const float *x, const float *gamma, const float *beta,
                                    float *running_mean, float *running_var,
                                    int n, int c, int hw, float momentum, float eps);
/* Eval: y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta. */
void relate_batchnorm_forward_eval(float *y, const float *x, const float *gamma, const float *beta,
                                   const float *running_mean, const float *running_var,
                                   int n, int c, int hw, float eps);
/* What the fused batch-norm op does to the normalised output before storing it: y += residual
 * (same shape as y; NULL for none), then ReLU (torch.relu's NaN propagation). */
typedef struct relate_bn_epilogue {
    const float *residual;
    bool relu;
} relate_bn_epilogue;
void relate_batchnorm_forward_train_ep(float *y, float *saved_mean, float *saved_invstd,
                                       const float *x, const float *gamma, const float *beta,
                                       float *running_mean, float *running_var,
                                       int n, int c, int hw, float momentum, float eps,
                                       const relate_bn_epilogue *ep);
/* The training forward's output again from the statistics it saved (hw > 1): y = x * alpha + shift
 * with alpha = saved_invstd * gamma, shift = beta - saved_mean * alpha, then the epilogue; the
 * same float expressions as relate_batchnorm_forward_train_ep, so the same bits. */
void relate_batchnorm_apply_saved(float *y, const float *x, const float *saved_mean, const float *saved_invstd,
                                  const float *gamma, const float *beta, int n, int c, int hw,
                                  const relate_bn_epilogue *ep);
void relate_batchnorm_forward_eval_ep(float *y, const float *x, const float *gamma, const float *beta,
                                      const float *running_mean, const float *running_var,
                                      int n, int c, int hw, float eps, const relate_bn_epilogue *ep);
/* The training-mode backward of the fused op for [N,C,H,W] (hw > 1): dy is the gradient of the
 * epilogue's output; relu_y (the output, or NULL without ReLU) masks it; dresidual (or NULL)
 * accumulates the masked gradient. With hw == 1 it does nothing: callers mask first.
 * dx and dresidual are added to, or stored without being read where `store` has
 * RELATE_BN_STORE_DX or RELATE_BN_STORE_DRESIDUAL (the same values as adding to zeros). */
enum { RELATE_BN_STORE_DX = 1, RELATE_BN_STORE_DRESIDUAL = 2 };
void relate_batchnorm_backward_train_ep(float *dx, float *dgamma, float *dbeta, const float *dy,
                                        const float *x, const float *saved_mean,
                                        const float *saved_invstd, const float *gamma,
                                        int n, int c, int hw, const float *relu_y, float *dresidual,
                                        unsigned store);
/* Batch norm on activations in oneDNN's nChw16c layout (batchnorm_blocked.c; c a multiple of 16):
 * element (i, ch, p) of [n, c, hw] at ((i * c/16 + ch/16) * hw + p) * 16 + ch % 16. The same
 * arguments, expressions and store flags as the NCHW kernels above; the sums run over fixed
 * chunks of images, so the bits do not depend on the thread count (they differ from the NCHW
 * kernels' by summation order). Each returns 0, or -1 (nothing done) when c is not a multiple of
 * 16 or memory for the per-chunk sums is short. */
int relate_bn16_forward_train(float *y, float *saved_mean, float *saved_invstd, const float *x, const float *gamma,
                              const float *beta, float *running_mean, float *running_var, int n, int c, int hw,
                              float momentum, float eps, const relate_bn_epilogue *ep);
int relate_bn16_apply_saved(float *y, const float *x, const float *saved_mean, const float *saved_invstd,
                            const float *gamma, const float *beta, int n, int c, int hw, const relate_bn_epilogue *ep);
int relate_bn16_backward_train(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                               const float *saved_mean, const float *saved_invstd, const float *gamma, int n, int c,
                               int hw, const float *relu_y, float *dresidual, unsigned store);
/* relate_bn_relu_pool2_forward_train / _backward_train on blocked activations: x [n, c, h, w] and
 * y [n, c, h/2, w/2] both nChw16c. */
int relate_bn16_relu_pool2_forward_train(float *y, float *saved_mean, float *saved_invstd, const float *x,
                                         const float *gamma, const float *beta, float *running_mean,
                                         float *running_var, int n, int c, int h, int w, float momentum, float eps);
int relate_bn16_relu_pool2_backward_train(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                          const float *saved_mean, const float *saved_invstd, const float *gamma,
                                          const float *beta, int n, int c, int h, int w, bool dx_store);
/* NCHW <-> nChw16c (c a multiple of 16), dst stored or, with `add`, added to. */
void relate_nchw_to_blocked16(float *dst, const float *src, int n, int c, int hw, bool add);
void relate_blocked16_to_nchw(float *dst, const float *src, int n, int c, int hw, bool add);
/* Synchronised batch norm (data-parallel training, issue 12): each replica holds n of the global
 * batch's images; the statistics are those of the whole batch. `reduce` must replace buf[0..len)
 * by its sum over every replica, the same bits on each (relate_dist_allreduce_sum_f64), and
 * return 0, or nonzero on failure (the kernel then returns -1 with its outputs undefined).
 * Forward: two reductions (the sums and the count, then the squared deviations from the global
 * mean; the one-process kernels combine per-plane deviations instead, in one pass); saved and running statistics come out equal on
 * every replica. Backward: one reduction of sum(dz) and sum((x - mean) dz) for dx; dgamma and
 * dbeta get this replica's own sums, which the gradients' all-reduce then adds up. Both layouts
 * (hw == 1 included, with relu_y and dresidual); results differ from the one-process kernels on
 * the concatenated batch only by summation order. -1 also when out of memory. */
typedef int (*relate_bn_reduce_fn)(double *buf, size_t len, void *user);
int relate_batchnorm_forward_train_sync(float *y, float *saved_mean, float *saved_invstd, const float *x,
                                        const float *gamma, const float *beta, float *running_mean,
                                        float *running_var, int n, int c, int hw, float momentum, float eps,
                                        const relate_bn_epilogue *ep, relate_bn_reduce_fn reduce, void *user);
int relate_batchnorm_backward_train_sync(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                         const float *saved_mean, const float *saved_invstd, const float *gamma,
                                         int n, int c, int hw, const float *relu_y, float *dresidual,
                                         relate_bn_reduce_fn reduce, void *user);
/* conv4's block tail, training mode: y [n, c, h/2, w/2] = AvgPool2d(2, 2)(ReLU(BatchNorm2d(x))),
 * without storing the full-size activation; the backward recomputes the ReLU decision from x.
 * Both return -1 when out of memory for their per-channel row buffers; the step has then failed. */
int relate_bn_relu_pool2_forward_train(float *y, float *saved_mean, float *saved_invstd, const float *x,
                                       const float *gamma, const float *beta, float *running_mean,
                                       float *running_var, int n, int c, int h, int w, float momentum, float eps);
/* dx is added to, or stored without being read when dx_store. Some widths take block paths (8
 * columns at a time; the backward's never stores dz); relate_bn_relu_pool2_use_blocks(false)
 * sends every shape through the general loops (for tests: both give the same bits). */
void relate_bn_relu_pool2_use_blocks(bool on);
int relate_bn_relu_pool2_backward_train(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                        const float *saved_mean, const float *saved_invstd, const float *gamma,
                                        const float *beta, int n, int c, int h, int w, bool dx_store);
/* The same backward in two parts, for a caller that consumes dx image by image (the stem's weight
 * gradient, relate_conv2d_bn_relu_pool2): the first pass over the batch fills coef [5 * c] (each
 * channel's alpha, shift, gm, k, sc) and adds dgamma and dbeta (either may be NULL; -1 when out
 * of memory); then dx of image i [c, h, w] is stored from its x and pooled dy, with tmp of
 * h * w + w floats. The values are relate_bn_relu_pool2_backward_train's, bit for bit. */
int relate_bn_relu_pool2_backward_coefs(float *coef, float *dgamma, float *dbeta, const float *dy, const float *x,
                                        const float *saved_mean, const float *saved_invstd, const float *gamma,
                                        const float *beta, int n, int c, int h, int w);
void relate_bn_relu_pool2_dx_image(float *dxi, float *tmp, const float *xi, const float *dyi, const float *coef,
                                   const float *saved_mean, int c, int h, int w);
/* Gradients of the training-mode forward (statistics depend on x). */
void relate_batchnorm_backward_train(float *dx, float *dgamma, float *dbeta, const float *dy,
                                     const float *x, const float *saved_mean,
                                     const float *saved_invstd, const float *gamma,
                                     int n, int c, int hw);
/* Gradients of the eval-mode forward (statistics are constants). */
void relate_batchnorm_backward_eval(float *dx, float *dgamma, float *dbeta, const float *dy,
                                    const float *x, const float *gamma,
                                    const float *running_mean, const float *running_var,
                                    int n, int c, int hw, float eps);

/* ---------------------------------------------------------------- pooling */
typedef struct relate_pool2d_dims {
    int n, c, h, w;          /* input [n, c, h, w] */
    int k, stride, pad;      /* square window */
    int ho, wo;              /* filled by relate_pool2d_dims_init: floor mode */
} relate_pool2d_dims;
/* Returns 0, or -1 if the window does not fit (PyTorch also requires pad <= k/2). */
int relate_pool2d_dims_init(relate_pool2d_dims *d);

/* nn.AvgPool2d(k, stride, pad) with count_include_pad=True (the default). */
void relate_avgpool2d_forward(float *y, const float *x, const relate_pool2d_dims *d);
void relate_avgpool2d_backward(float *dx, const float *dy, const relate_pool2d_dims *d);
/* nn.MaxPool2d(k, stride, pad): padding acts as -inf. argmax [n,c,ho,wo] receives the flat
 * index h*w-plane offset (iy*w + ix) of the chosen input; ties keep the first in scan order
 * (row-major), as PyTorch's CPU kernel does. NaN propagates (a NaN input wins). */
void relate_maxpool2d_forward(float *y, int32_t *argmax, const float *x, const relate_pool2d_dims *d);
void relate_maxpool2d_backward(float *dx, const float *dy, const int32_t *argmax,
                               const relate_pool2d_dims *d);
/* AdaptiveAvgPool2d(1) + flatten: x [n, c, hw] -> y [n, c]. */
void relate_global_avgpool_forward(float *y, const float *x, int n, int c, int hw);
void relate_global_avgpool_backward(float *dx, const float *dy, int n, int c, int hw);

/* ---------------------------------------------------------------- activations (count = elements) */
void relate_relu_forward(float *y, const float *x, size_t count);
/* Uses the forward OUTPUT: dx += dy where y > 0 (PyTorch's threshold_backward on the result). */
/* out = y > 0 ? dy : 0 (written, not accumulated): ReLU's gradient from its output. */
void relate_relu_mask(float *out, const float *dy, const float *y, size_t count);
void relate_relu_backward(float *dx, const float *dy, const float *y, size_t count);
/* y = x > 0 ? x : slope * x */
void relate_leaky_relu_forward(float *y, const float *x, float slope, size_t count);
/* Uses the INPUT: dx += x > 0 ? dy : slope * dy. */
void relate_leaky_relu_backward(float *dx, const float *dy, const float *x, float slope, size_t count);
void relate_sigmoid_forward(float *y, const float *x, size_t count);
/* Uses the OUTPUT: dx += dy * y * (1 - y). */
void relate_sigmoid_backward(float *dx, const float *dy, const float *y, size_t count);

/* ---------------------------------------------------------------- element-wise (count = elements) */
void relate_add_forward(float *y, const float *a, const float *b, size_t count);
void relate_mul_forward(float *y, const float *a, const float *b, size_t count);
/* dA += dy * b; dB += dy * a (either nullable). */
void relate_mul_backward(float *da, float *db, const float *dy, const float *a, const float *b,
                         size_t count);
/* y = alpha * x */
void relate_scale_forward(float *y, const float *x, float alpha, size_t count);
/* dx += alpha * dy (also the backward of add, with alpha = 1). */
void relate_axpy(float *dx, const float *dy, float alpha, size_t count);
/* Pair rows (relationnet's aggregation): y[p] = a[ia[p]] + b[ib[p]] (+ bias) for SUM, or
 * max(a[ia[p]], b[ib[p]]) (+ bias) for MAX; a, b have `cols` columns. Backward scatters dy back
 * (ties of MAX split as torch.maximum does); da and db may be the same buffer. */
typedef enum relate_pair_mode { RELATE_PAIR_SUM = 0, RELATE_PAIR_MAX = 1 } relate_pair_mode;
void relate_pair_rows_forward(float *y, const float *a, const int32_t *ia, const float *b, const int32_t *ib,
                              const float *bias, int64_t rows, int64_t cols, relate_pair_mode mode);
/* relationnet's head on pairs of view rows, fused (relation_head.c): logits[r] =
 * Linear(C,1)(LeakyReLU(BatchNorm1d_train(a[ia[r]] + b[ib[r]] + bias1))). h [rows, C] is stored for
 * the backward pass; mean/invstd [C] are the batch statistics; running stats are updated. */
typedef struct relate_relation_head_params {
    const float *a, *b, *bias1, *gamma, *beta, *w2;
    const int32_t *ia, *ib;
    float b2, slope, momentum, eps;
} relate_relation_head_params;
typedef struct relate_relation_head_grads {
    float *da, *db, *dbias1, *dgamma, *dbeta, *dw2, *db2; /* accumulated; any may be NULL */
} relate_relation_head_grads;
size_t relate_relation_head_scratch_doubles(int64_t rows, int cols);
void relate_relation_head_forward(float *h, float *logits, float *mean, float *invstd, float *running_mean,
                                  float *running_var, const relate_relation_head_params *p, int64_t rows,
                                  int cols, double *scratch);
void relate_relation_head_backward(const relate_relation_head_grads *gr, const float *dlogits, const float *h,
                                   const float *mean, const float *invstd, const relate_relation_head_params *p,
                                   int64_t rows, int cols, double *scratch);
void relate_pair_rows_backward(float *da, float *db, float *dbias, const float *dy, const float *a,
                               const int32_t *ia, const float *b, const int32_t *ib, int64_t rows, int64_t cols,
                               relate_pair_mode mode);

/* torch.maximum(a, b); backward as PyTorch 1.13: where a == b each side gets dy/2, otherwise the
 * larger side gets dy. */
void relate_maximum_forward(float *y, const float *a, const float *b, size_t count);
void relate_maximum_backward(float *da, float *db, const float *dy, const float *a, const float *b,
                             size_t count);
void relate_exp_forward(float *y, const float *x, size_t count);
void relate_exp_backward(float *dx, const float *dy, const float *y, size_t count);   /* y = exp(x) */
void relate_log_forward(float *y, const float *x, size_t count);
void relate_log_backward(float *dx, const float *dy, const float *x, size_t count);   /* dy / x */
/* Sum of all elements (accumulated in double, returned as float like torch.sum on float32). */
float relate_sum_forward(const float *x, size_t count);
/* dx += g (the same scalar gradient everywhere); for mean pass g = dL/dmean / count. */
void relate_fill_add(float *dx, float g, size_t count);

/* ---------------------------------------------------------------- batch-axis moves */
/* rows of `row` floats each. torch.roll(x, shift, dims=0): y[i] = x[(i - shift) mod n]. */
void relate_roll_rows_forward(float *y, const float *x, int n, size_t row, int shift);
void relate_roll_rows_backward(float *dx, const float *dy, int n, size_t row, int shift);
/* torch.cat([a, b], dim=1) for 2-D a [n, ca], b [n, cb] -> y [n, ca+cb]. (dim 0 is a memcpy.) */
void relate_concat_cols_forward(float *y, const float *a, const float *b, int n, int ca, int cb);
void relate_concat_cols_backward(float *da, float *db, const float *dy, int n, int ca, int cb);

/* ---------------------------------------------------------------- matrix products (OpenBLAS) */
/* y [n, out] = x [n, in] * W^T [in, out] + b [out] (b nullable): nn.Linear. */
void relate_linear_forward(float *y, const float *x, const float *w, const float *b,
                           int n, int in, int out);
/* dx [n,in] += dy * W; dW [out,in] += dy^T * x; db [out] += column sums of dy (all nullable). */
void relate_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                            const float *w, int n, int in, int out);
/* c [m, n] = op(a) * op(b), op = transpose when the flag is set; a is [m,k] (or [k,m]
 * transposed), b is [k,n] (or [n,k]). */
void relate_matmul_forward(float *c, const float *a, const float *b, int m, int n, int k,
                           int trans_a, int trans_b);
/* dA += dC * op(b)^T (in a's stored layout); dB += op(a)^T * dC (in b's stored layout). */
void relate_matmul_backward(float *da, float *db, const float *dc, const float *a, const float *b,
                            int m, int n, int k, int trans_a, int trans_b);

/* ---------------------------------------------------------------- softmax family and norms */
/* Row-wise over x [n, c]. */
void relate_log_softmax_forward(float *y, const float *x, int n, int c);
/* y = log_softmax output: dx += dy - exp(y) * rowsum(dy). */
void relate_log_softmax_backward(float *dx, const float *dy, const float *y, int n, int c);
/* F.normalize(x, p=2, dim=1, eps): y = x / max(||x_row||, eps). norms [n] saved for backward. */
void relate_l2_normalize_forward(float *y, float *norms, const float *x, int n, int c, float eps);
void relate_l2_normalize_backward(float *dx, const float *dy, const float *x, const float *norms,
                                  int n, int c, float eps);

/* ---------------------------------------------------------------- losses (return the scalar) */
/* Mean cross-entropy of logits x [n, c] against int targets [n] (each in [0, c)), optional
 * class weights w [c] (NULL = uniform): sum_i w[t_i]*CE_i / sum_i w[t_i], as
 * F.cross_entropy(x, t, weight=w). Writes the row-wise softmax probabilities into prob [n, c]
 * for the backward. */
float relate_cross_entropy_forward(float *prob, const float *x, const int32_t *targets,
                                   const float *weights, int n, int c);
/* dx [n,c] += g * d(loss)/dx, g = upstream scalar gradient. */
void relate_cross_entropy_backward(float *dx, float g, const float *prob, const int32_t *targets,
                                   const float *weights, int n, int c);
/* F.binary_cross_entropy_with_logits(x, t), mean over n. */
float relate_bce_logits_forward(const float *x, const float *t, size_t n);
void relate_bce_logits_backward(float *dx, float g, const float *x, const float *t, size_t n);
/* Sigmoid focal loss of spec 3.1.5, mean over n: w = alpha_t (1 - p_t)^gamma times the BCE,
 * with gradients through the modulating factor. */
float relate_focal_loss_forward(const float *x, const float *t, size_t n, float alpha, float gamma);
void relate_focal_loss_backward(float *dx, float g, const float *x, const float *t, size_t n,
                                float alpha, float gamma);
/* simclr's loss (spec 3.2) on z [n, c], n even, rows 2i and 2i+1 a positive pair
 * (kernels/contrastive.c): fills s, e [n, n] (cosines, exp(s / tau)), norms [n], den [n] for the
 * backward; the backward needs scratch [2 n n]. */
float relate_simclr_loss_forward(float *s, float *e, float *norms, float *den, const float *z, int n, int c,
                                 float tau, float eps);
void relate_simclr_loss_backward(float *dz, float g, const float *s, const float *e, const float *norms,
                                 const float *den, const float *z, int n, int c, float tau, float eps,
                                 float *scratch);

/* ---------------------------------------------------------------- threads */
/* Number of OpenMP threads kernels will use; relate_set_threads also limits OpenBLAS. */
int relate_get_threads(void);
void relate_set_threads(int n);

/* ---------------------------------------------------------------- Deep InfoMax (kernels/infomax.c) */
/* x [n, c, hw] (NCHW) -> y [n*hw, c] (position rows); backward accumulates. */
void relate_nchw_to_rows_forward(float *y, const float *x, int n, int c, int hw);
void relate_nchw_to_rows_backward(float *dx, const float *dy, int n, int c, int hw);
/* x [n, c] -> y [n*reps, c], row i repeated reps times; backward sums each group. */
void relate_repeat_rows_forward(float *y, const float *x, int n, int c, int reps);
void relate_repeat_rows_backward(float *dx, const float *dy, int n, int c, int reps);
/* F.softplus(x, beta, threshold) and its backward (PyTorch's formulas); y = alpha * x + beta. */
void relate_softplus_forward(float *y, const float *x, float beta, float threshold, size_t count);
void relate_softplus_backward(float *dx, const float *dy, const float *x, float beta, float threshold,
                              size_t count);
void relate_scale_shift_forward(float *y, const float *x, float alpha, float beta, size_t count);
/* The local term of spec 3.4 (beta 1): mean(softplus(T(M'))) + mean(softplus(-T(M))), T(M)[n,p] =
 * w2 . relu(W1 relu(W_M M[n,:,p] + yb[n]) + b1) + b2, M'[n] = M[(n+1) mod b]; yb = W_y y + b0.
 * m [b, mc, hw], w_m [c0, mc], yb [b, c0], w1 [c1, c0], b1 [c1], w2 [c1], b2 [1]. When gr is
 * non-NULL its non-NULL members ACCUMULATE d(loss)/d(input). Returns the loss. */
typedef struct relate_infomax_dims {
    int b, mc, hw, c0, c1;
    int chunk, threads; /* images per chunk and threads (relate_get_threads, at most the chunks):
                         * filled by relate_infomax_dims_init; results depend on threads only */
} relate_infomax_dims;
typedef struct relate_infomax_grads {
    float *dm, *dw_m, *dyb, *dw1, *db1, *dw2, *db2;
} relate_infomax_grads;
void relate_infomax_dims_init(relate_infomax_dims *d);
size_t relate_infomax_scratch_floats(const relate_infomax_dims *d);
float relate_infomax_local_forward(const float *m, const float *w_m, const float *yb, const float *w1,
                                   const float *b1, const float *w2, const float *b2,
                                   const relate_infomax_dims *d, const relate_infomax_grads *gr, float *scratch);
/* Naive twin (one position at a time; c0, c1 <= 1024), accumulating in acc [ref_scratch_doubles]. */
size_t relate_infomax_ref_scratch_doubles(const relate_infomax_dims *d);
float relate_infomax_local_forward_ref(const float *m, const float *w_m, const float *yb, const float *w1,
                                       const float *b1, const float *w2, const float *b2,
                                       const relate_infomax_dims *d, const relate_infomax_grads *gr, double *acc);

#endif
