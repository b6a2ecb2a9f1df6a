/* pool.c: 2-D average and max pooling (square window, floor mode) and global average pooling.
 * Not adaptive pooling in general, nor ceil mode or count_include_pad=False. */
#include <math.h>

#include "kernels/kernels.h"

/* Planes are independent and each is handled serially, so results never depend on the thread
 * count; the threshold keeps tiny tensors out of the thread team. */
#define POOL_PAR_MIN 32768

int relate_pool2d_dims_init(relate_pool2d_dims *d)
{
    if (!d || d->n < 1 || d->c < 1 || d->h < 1 || d->w < 1 || d->k < 1 || d->stride < 1 ||
        d->pad < 0 || d->pad > d->k / 2)
        return -1;
    int64_t eh = (int64_t)d->h + 2 * (int64_t)d->pad - d->k;
    int64_t ew = (int64_t)d->w + 2 * (int64_t)d->pad - d->k;
    if (eh < 0 || ew < 0)
        return -1;
    d->ho = (int)(eh / d->stride + 1);
    d->wo = (int)(ew / d->stride + 1);
    return 0;
}

static int imin(int a, int b)
{
    return a < b ? a : b;
}

static int imax(int a, int b)
{
    return a > b ? a : b;
}

/* conv4's AvgPool2d(2, 2): no clipping, so the window loops unroll and the output row vectorises.
 * Same order as the general loop: ((0 + a) + b) + c) + d over the two input rows, then / 4. */
static bool is_2x2(const relate_pool2d_dims *d)
{
    return d->k == 2 && d->stride == 2 && d->pad == 0;
}

static void avgpool2x2_forward(float *y, const float *x, const relate_pool2d_dims *d)
{
    const int planes = d->n * d->c, wo = d->wo, w = d->w;
    const size_t in_sz = (size_t)d->h * d->w, out_sz = (size_t)d->ho * d->wo;
#pragma omp parallel for schedule(static) if ((size_t)planes * in_sz >= POOL_PAR_MIN)
    for (int p = 0; p < planes; p++)
        for (int oy = 0; oy < d->ho; oy++) {
            const float *r0 = x + (size_t)p * in_sz + (size_t)(2 * oy) * w, *r1 = r0 + w;
            float *yr = y + (size_t)p * out_sz + (size_t)oy * wo;
#pragma omp simd
            for (int ox = 0; ox < wo; ox++)
                yr[ox] = (((0.0f + r0[2 * ox]) + r0[2 * ox + 1]) + r1[2 * ox]) + r1[2 * ox + 1];
#pragma omp simd
            for (int ox = 0; ox < wo; ox++)
                yr[ox] = yr[ox] / 4.0f;
        }
}

static void avgpool2x2_backward(float *dx, const float *dy, const relate_pool2d_dims *d)
{
    const int planes = d->n * d->c, wo = d->wo, w = d->w;
    const size_t in_sz = (size_t)d->h * d->w, out_sz = (size_t)d->ho * d->wo;
#pragma omp parallel for schedule(static) if ((size_t)planes * in_sz >= POOL_PAR_MIN)
    for (int p = 0; p < planes; p++)
        for (int oy = 0; oy < d->ho; oy++) {
            float *r0 = dx + (size_t)p * in_sz + (size_t)(2 * oy) * w, *r1 = r0 + w;
            const float *gr = dy + (size_t)p * out_sz + (size_t)oy * wo;
#pragma omp simd
            for (int ox = 0; ox < wo; ox++) {
                const float g = gr[ox] / 4.0f;
                r0[2 * ox] += g;
                r0[2 * ox + 1] += g;
                r1[2 * ox] += g;
                r1[2 * ox + 1] += g;
            }
        }
}

void relate_avgpool2d_forward(float *y, const float *x, const relate_pool2d_dims *d)
{
    if (is_2x2(d)) {
        avgpool2x2_forward(y, x, d);
        return;
    }
    const int planes = d->n * d->c;
    const size_t in_sz = (size_t)d->h * d->w, out_sz = (size_t)d->ho * d->wo;
    /* count_include_pad=True with pad <= k/2 in floor mode: every window lies inside the padded
     * input, so the divisor is always k*k. */
    const float div = (float)(d->k * d->k);
#pragma omp parallel for schedule(static) if ((size_t)planes * in_sz >= POOL_PAR_MIN)
    for (int p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * in_sz;
        float *yp = y + (size_t)p * out_sz;
        for (int oy = 0; oy < d->ho; oy++) {
            const int y0 = oy * d->stride - d->pad;
            const int ya = imax(y0, 0), yb = imin(y0 + d->k, d->h);
            for (int ox = 0; ox < d->wo; ox++) {
                const int x0 = ox * d->stride - d->pad;
                const int xa = imax(x0, 0), xb = imin(x0 + d->k, d->w);
                /* float sum in row-major window order, then one division: PyTorch's CPU order. */
                float s = 0.0f;
                for (int iy = ya; iy < yb; iy++)
                    for (int ix = xa; ix < xb; ix++)
                        s += xp[(size_t)iy * d->w + ix];
                yp[(size_t)oy * d->wo + ox] = s / div;
            }
        }
    }
}

void relate_avgpool2d_backward(float *dx, const float *dy, const relate_pool2d_dims *d)
{
    if (!dx)
        return;
    if (is_2x2(d)) {
        avgpool2x2_backward(dx, dy, d);
        return;
    }
    const int planes = d->n * d->c;
    const size_t in_sz = (size_t)d->h * d->w, out_sz = (size_t)d->ho * d->wo;
    const float div = (float)(d->k * d->k);
#pragma omp parallel for schedule(static) if ((size_t)planes * in_sz >= POOL_PAR_MIN)
    for (int p = 0; p < planes; p++) {
        float *xp = dx + (size_t)p * in_sz;
        const float *yp = dy + (size_t)p * out_sz;
        for (int oy = 0; oy < d->ho; oy++) {
            const int y0 = oy * d->stride - d->pad;
            const int ya = imax(y0, 0), yb = imin(y0 + d->k, d->h);
            for (int ox = 0; ox < d->wo; ox++) {
                const int x0 = ox * d->stride - d->pad;
                const int xa = imax(x0, 0), xb = imin(x0 + d->k, d->w);
                const float g = yp[(size_t)oy * d->wo + ox] / div;
                for (int iy = ya; iy < yb; iy++)
                    for (int ix = xa; ix < xb; ix++)
                        xp[(size_t)iy * d->w + ix] += g;
            }
        }
    }
}

void relate_maxpool2d_forward(float *y, int32_t *argmax, const float *x, const relate_pool2d_dims *d)
{
    const int planes = d->n * d->c;
    const size_t in_sz = (size_t)d->h * d->w, out_sz = (size_t)d->ho * d->wo;
#pragma omp parallel for schedule(static) if ((size_t)planes * in_sz >= POOL_PAR_MIN)
    for (int p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * in_sz;
        float *yp = y + (size_t)p * out_sz;
        int32_t *ap = argmax + (size_t)p * out_sz;
        for (int oy = 0; oy < d->ho; oy++) {
            const int y0 = oy * d->stride - d->pad;
            const int ya = imax(y0, 0), yb = imin(y0 + d->k, d->h);
            for (int ox = 0; ox < d->wo; ox++) {
                const int x0 = ox * d->stride - d->pad;
                const int xa = imax(x0, 0), xb = imin(x0 + d->k, d->w);
                /* Same scan as PyTorch: strict > keeps the first of ties, and a NaN always
                 * takes over; the start index is the first in-range cell even if all are -inf. */
                int32_t best = ya * d->w + xa;
                float m = -INFINITY;
                for (int iy = ya; iy < yb; iy++)
                    for (int ix = xa; ix < xb; ix++) {
                        const float v = xp[(size_t)iy * d->w + ix];
                        if (v > m || isnan(v)) {
                            m = v;
                            best = iy * d->w + ix;
                        }
                    }
                yp[(size_t)oy * d->wo + ox] = m;
                ap[(size_t)oy * d->wo + ox] = best;
            }
        }
    }
}

void relate_maxpool2d_backward(float *dx, const float *dy, const int32_t *argmax,
                               const relate_pool2d_dims *d)
{
    if (!dx)
        return;
    const int planes = d->n * d->c;
    const size_t in_sz = (size_t)d->h * d->w, out_sz = (size_t)d->ho * d->wo;
#pragma omp parallel for schedule(static) if ((size_t)planes * in_sz >= POOL_PAR_MIN)
    for (int p = 0; p < planes; p++) {
        float *xp = dx + (size_t)p * in_sz;
        const float *yp = dy + (size_t)p * out_sz;
        const int32_t *ap = argmax + (size_t)p * out_sz;
        for (size_t j = 0; j < out_sz; j++)
            xp[ap[j]] += yp[j];
    }
}

void relate_global_avgpool_forward(float *y, const float *x, int n, int c, int hw)
{
    const int rows = n * c;
#pragma omp parallel for schedule(static) if ((size_t)rows * hw >= POOL_PAR_MIN)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * hw;
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < hw; j++)
            s += xr[j];
        y[r] = (float)(s / hw);
    }
}

void relate_global_avgpool_backward(float *dx, const float *dy, int n, int c, int hw)
{
    if (!dx)
        return;
    const int rows = n * c;
#pragma omp parallel for schedule(static) if ((size_t)rows * hw >= POOL_PAR_MIN)
    for (int r = 0; r < rows; r++) {
        float *xr = dx + (size_t)r * hw;
        const float g = dy[r] / (float)hw;
#pragma omp simd
        for (int j = 0; j < hw; j++)
            xr[j] += g;
    }
}
