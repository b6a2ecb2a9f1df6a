/* activation.c: ReLU, LeakyReLU and sigmoid, forward and backward, element-wise.
 * Not fused with neighbouring ops; every loop is purely element-wise, so y may alias x. */
#include <math.h>

#include "kernels/kernels.h"

/* Element-wise loops split work without changing any result, so threading only has to pay for
 * its start-up: below this many elements it does not. */
#define ACT_PAR_MIN 65536

void relate_relu_forward(float *y, const float *x, size_t count)
{
#pragma omp parallel for simd schedule(static) if (count >= ACT_PAR_MIN)
    for (size_t i = 0; i < count; i++)
        /* x > 0 ? x : 0 rather than fmaxf so NaN propagates as torch.relu does. */
        y[i] = x[i] > 0.0f ? x[i] : (x[i] != x[i] ? x[i] : 0.0f);
}

void relate_relu_backward(float *dx, const float *dy, const float *y, size_t count)
{
    if (!dx)
        return;
#pragma omp parallel for simd schedule(static) if (count >= ACT_PAR_MIN)
    for (size_t i = 0; i < count; i++)
        dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
}

void relate_relu_mask(float *out, const float *dy, const float *y, size_t count)
{
#pragma omp parallel for simd schedule(static) if (count >= ACT_PAR_MIN)
    for (size_t i = 0; i < count; i++)
        out[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void relate_leaky_relu_forward(float *y, const float *x, float slope, size_t count)
{
#pragma omp parallel for simd schedule(static) if (count >= ACT_PAR_MIN)
    for (size_t i = 0; i < count; i++)
        y[i] = x[i] > 0.0f ? x[i] : x[i] * slope;
}

void relate_leaky_relu_backward(float *dx, const float *dy, const float *x, float slope, size_t count)
{
    if (!dx)
        return;
#pragma omp parallel for simd schedule(static) if (count >= ACT_PAR_MIN)
    for (size_t i = 0; i < count; i++)
        dx[i] += x[i] > 0.0f ? dy[i] : dy[i] * slope;
}

void relate_sigmoid_forward(float *y, const float *x, size_t count)
{
    /* No simd pragma: expf has no vector variant without -ffast-math. */
#pragma omp parallel for schedule(static) if (count >= ACT_PAR_MIN / 8)
    for (size_t i = 0; i < count; i++)
        y[i] = 1.0f / (1.0f + expf(-x[i]));
}

void relate_sigmoid_backward(float *dx, const float *dy, const float *y, size_t count)
{
    if (!dx)
        return;
#pragma omp parallel for simd schedule(static) if (count >= ACT_PAR_MIN)
    for (size_t i = 0; i < count; i++)
        dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}
