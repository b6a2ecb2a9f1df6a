/* conv2d_internal.h: the convolution backends behind relate_conv2d_* (kernels.h).
 * Not public: callers use kernels.h, which dispatches to oneDNN or to im2col + sgemm. */
#ifndef RELATE_KERNELS_CONV2D_INTERNAL_H
#define RELATE_KERNELS_CONV2D_INTERNAL_H

#include <stddef.h>

#include "kernels/kernels.h"

/* oneDNN path: each returns -1 (and touches no output) when oneDNN cannot run the shape, so
 * the caller falls back to the BLAS path. scratch_floats is 0 in that case. */
size_t relate_conv2d_onednn_scratch_floats(const relate_conv2d_dims *d);
int relate_conv2d_onednn_forward(float *y, const float *x, const float *w, const relate_conv2d_dims *d,
                                 float *scratch);
int relate_conv2d_onednn_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                                  const relate_conv2d_dims *d, float *scratch);

#endif
