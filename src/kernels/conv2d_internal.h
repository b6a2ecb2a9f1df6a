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
int relate_conv2d_onednn_forward(float *y, const float *x, const float *w, const relate_conv2d_dims *d,
                                 float *scratch);
int relate_conv2d_onednn_backward(float **dx, float **dw, const float *dy, const float *x, const float *w,
                                  const relate_conv2d_dims *d, float *scratch, bool dx_store);
/* Drops every cached primitive (tests: to show a result does not depend on which thread count
 * first met a shape). No convolution may be running, and no scratch size taken before the call
 * may be used after it. */
void relate_conv2d_onednn_clear_cache(void);

#endif
