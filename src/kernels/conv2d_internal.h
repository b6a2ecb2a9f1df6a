/* conv2d_internal.h: the convolution backends behind relate_conv2d_* (kernels.h).
 * Not public: callers use kernels.h, which dispatches to oneDNN or to im2col + sgemm. */
#ifndef RELATE_KERNELS_CONV2D_INTERNAL_H
#define RELATE_KERNELS_CONV2D_INTERNAL_H

#include <stddef.h>

#include "kernels/kernels.h"

/* oneDNN path: each returns -1 when oneDNN cannot run the shape, so the caller falls back to
 * the BLAS path; scratch_floats is 0 in that case. The backward clears *dx / *dw once that
 * gradient has been accumulated, so a fallback after a late failure adds nothing twice. */
size_t relate_conv2d_onednn_scratch_floats(const relate_conv2d_dims *d);
/* How many of the six activation arguments of d's primitives (forward x and y, backward-data dy
 * and dx, backward-weights x and dy) oneDNN reorders between the layouts of d->blocked and its
 * own; -1 when oneDNN cannot run d. */
int relate_conv2d_onednn_activation_reorders(const relate_conv2d_dims *d);
int relate_conv2d_onednn_forward(float *y, const float *x, const float *w, const relate_conv2d_dims *d,
                                 float *scratch);
int relate_conv2d_onednn_backward(float **dx, float **dw, const float *dy, const float *x, const float *w,
                                  const relate_conv2d_dims *d, float *scratch, bool dx_store);
/* Drops every cached primitive (tests: to show a result does not depend on which thread count
 * first met a shape). No convolution may be running, and no scratch size taken before the call
 * may be used after it. */
void relate_conv2d_onednn_clear_cache(void);

/* Direct path for image stems (conv2d_direct.c): 3x3, stride 1, pad 1, 1 to 4 input channels and
 * a multiple of 4 output channels, on a CPU with AVX2 and FMA. The scratch is per thread, for
 * relate_get_threads() threads at the call. Each call returns -1, doing nothing, when the shape
 * or the CPU does not fit. The weight gradient adds into dw; there is no input gradient. */
int relate_conv2d_direct_fits(const relate_conv2d_dims *d);
/* It runs with relate_kernels_isa(); only the forward has an AVX-512 version, which gives the
 * same bits as the AVX2 one. */
size_t relate_conv2d_direct_scratch_floats(const relate_conv2d_dims *d, int nthreads);
int relate_conv2d_direct_forward(float *y, const float *x, const float *w, const relate_conv2d_dims *d,
                                 float *scratch);
int relate_conv2d_direct_weight_grad(float *dw, const float *dy, const float *x, const relate_conv2d_dims *d,
                                     float *scratch);
/* The weight gradient with dy made one image at a time by dy_of (relate_conv2d_weight_grad_fn). */
size_t relate_conv2d_direct_weight_grad_fn_scratch_floats(const relate_conv2d_dims *d, int nthreads,
                                                          size_t tmp_floats);
int relate_conv2d_direct_weight_grad_fn(float *dw, relate_conv2d_dy_fn dy_of, void *ctx, size_t tmp_floats,
                                        const float *x, const relate_conv2d_dims *d, float *scratch);
/* Both gradients of a 3x3, stride-1, pad-1 convolution from 1 to 8 NCHW input channels to
 * nChw16c outputs (d->blocked == RELATE_CONV_BLOCKED_Y; conv4's layer 2), on a CPU with AVX-512:
 * dx (either may be NULL) stored or added as dx_store says, dw added to. The scratch is per
 * thread, for relate_get_threads() threads at the call. -1, doing nothing, where it does not fit. */
int relate_conv2d_direct_backward_fits(const relate_conv2d_dims *d);
size_t relate_conv2d_direct_backward_scratch_floats(const relate_conv2d_dims *d, int nthreads);
int relate_conv2d_direct_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                                  const relate_conv2d_dims *d, float *scratch, bool dx_store);

#endif
