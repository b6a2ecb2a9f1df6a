/* conv2d.c: 2-D convolution (no bias) forward and backward as im2col + OpenBLAS sgemm, plus naive references.
 * Not a general convolution engine: square stride/padding, zero padding, no groups or dilation. */
#include <cblas.h>
#include <omp.h>
#include <stddef.h>
#include <string.h>

#include "kernels/kernels.h"

int relate_conv2d_dims_init(relate_conv2d_dims *d)
{
    if (!d || d->n < 1 || d->c < 1 || d->h < 1 || d->w < 1 || d->o < 1 || d->kh < 1 || d->kw < 1 ||
        d->stride < 1 || d->pad < 0)
        return -1;
    /* 64-bit so that a huge pad cannot overflow before the fit test. */
    int64_t eh = (int64_t)d->h + 2 * (int64_t)d->pad - d->kh;
    int64_t ew = (int64_t)d->w + 2 * (int64_t)d->pad - d->kw;
    if (eh < 0 || ew < 0)
        return -1;
    int64_t ho = eh / d->stride + 1, wo = ew / d->stride + 1;
    if (ho > INT32_MAX || wo > INT32_MAX)
        return -1;
    d->ho = (int)ho;
    d->wo = (int)wo;
    return 0;
}

/* A 1x1, stride-1, unpadded conv reads the image itself as its column matrix. */
static int is_pointwise(const relate_conv2d_dims *d)
{
    return d->kh == 1 && d->kw == 1 && d->stride == 1 && d->pad == 0;
}

static size_t col_floats(const relate_conv2d_dims *d)
{
    if (is_pointwise(d))
        return 0;
    return (size_t)d->c * d->kh * d->kw * (size_t)d->ho * d->wo;
}

/* Per thread: one column matrix (reused as dcol in the backward) and one private dW. */
static size_t thread_floats(const relate_conv2d_dims *d)
{
    return col_floats(d) + (size_t)d->o * d->c * d->kh * d->kw;
}

size_t relate_conv2d_scratch_floats(const relate_conv2d_dims *d, int nthreads)
{
    if (nthreads < 1)
        nthreads = 1;
    return (size_t)nthreads * thread_floats(d);
}

/* Range [*lo, *hi) of output positions whose input coordinate o*s - pad + k lies in [0, len). */
static void valid_range(int len, int out, int s, int pad, int k, int *lo, int *hi)
{
    int off = pad - k; /* need o*s >= off and o*s <= len - 1 + off */
    int a = off <= 0 ? 0 : (off + s - 1) / s;
    int lim = len - 1 + off;
    int b = lim < 0 ? 0 : lim / s + 1;
    if (a > out)
        a = out;
    if (b > out)
        b = out;
    if (b < a)
        b = a;
    *lo = a;
    *hi = b;
}

/* col [c*kh*kw, ho*wo] from one image x [c, h, w]. */
static void im2col(float *col, const float *x, const relate_conv2d_dims *d)
{
    const int s = d->stride, ho = d->ho, wo = d->wo;
    for (int ci = 0; ci < d->c; ci++) {
        const float *xc = x + (size_t)ci * d->h * d->w;
        for (int ky = 0; ky < d->kh; ky++) {
            int y0, y1;
            valid_range(d->h, ho, s, d->pad, ky, &y0, &y1);
            for (int kx = 0; kx < d->kw; kx++) {
                int x0, x1;
                valid_range(d->w, wo, s, d->pad, kx, &x0, &x1);
                float *row = col + (((size_t)ci * d->kh + ky) * d->kw + kx) * ho * wo;
                for (int oy = 0; oy < ho; oy++) {
                    float *out = row + (size_t)oy * wo;
                    if (oy < y0 || oy >= y1) {
                        memset(out, 0, sizeof(float) * (size_t)wo);
                        continue;
                    }
                    /* Offsets stay signed: the window origin may sit left of the row; only
                     * in-range positions [x0, x1) are ever dereferenced. */
                    const ptrdiff_t base = (ptrdiff_t)(oy * s - d->pad + ky) * d->w + (kx - d->pad);
                    for (int ox = 0; ox < x0; ox++)
                        out[ox] = 0.0f;
                    if (s == 1) {
                        if (x1 > x0)
                            memcpy(out + x0, xc + base + x0, sizeof(float) * (size_t)(x1 - x0));
                    } else {
                        for (int ox = x0; ox < x1; ox++)
                            out[ox] = xc[base + (ptrdiff_t)ox * s];
                    }
                    for (int ox = x1; ox < wo; ox++)
                        out[ox] = 0.0f;
                }
            }
        }
    }
}

/* dx [c, h, w] += scatter of col [c*kh*kw, ho*wo]; serial within the image, so deterministic. */
static void col2im_add(float *dx, const float *col, const relate_conv2d_dims *d)
{
    const int s = d->stride, ho = d->ho, wo = d->wo;
    for (int ci = 0; ci < d->c; ci++) {
        float *dc = dx + (size_t)ci * d->h * d->w;
        for (int ky = 0; ky < d->kh; ky++) {
            int y0, y1;
            valid_range(d->h, ho, s, d->pad, ky, &y0, &y1);
            for (int kx = 0; kx < d->kw; kx++) {
                int x0, x1;
                valid_range(d->w, wo, s, d->pad, kx, &x0, &x1);
                const float *row = col + (((size_t)ci * d->kh + ky) * d->kw + kx) * ho * wo;
                for (int oy = y0; oy < y1; oy++) {
                    const float *src = row + (size_t)oy * wo;
                    const ptrdiff_t base = (ptrdiff_t)(oy * s - d->pad + ky) * d->w + (kx - d->pad);
                    if (s == 1) {
                        for (int ox = x0; ox < x1; ox++)
                            dc[base + ox] += src[ox];
                    } else {
                        for (int ox = x0; ox < x1; ox++)
                            dc[base + (ptrdiff_t)ox * s] += src[ox];
                    }
                }
            }
        }
    }
}

/* Team size: one image per thread at least; a single image runs outside any parallel region so
 * that OpenBLAS may use its own threads on the one big product.
 * Pointwise convs also stay out of our region: with no im2col to share out, per-image products
 * are small (e.g. 256x196x256) and concurrent single-threaded OpenBLAS calls barely scale, while
 * one threaded call per image does. Measured on 2 cores, n=32: 1024->256 at 7x7, forward 11.6 vs
 * 10.0 ms and backward 53 vs 17 ms; 64->256 at 56x56, 35 vs 25 ms and 115 vs 53 ms. */
static int team_size(const relate_conv2d_dims *d)
{
    if (is_pointwise(d))
        return 1;
    int nt = omp_get_max_threads();
    if (nt > d->n)
        nt = d->n;
    return nt < 1 ? 1 : nt;
}

void relate_conv2d_forward(float *y, const float *x, const float *w, const relate_conv2d_dims *d,
                           float *scratch)
{
    const int K = d->c * d->kh * d->kw, P = d->ho * d->wo;
    const size_t xs = (size_t)d->c * d->h * d->w, ys = (size_t)d->o * P;
    const int nt = team_size(d), pw = is_pointwise(d);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float *col = scratch + (size_t)omp_get_thread_num() * thread_floats(d);
#pragma omp for schedule(static)
        for (int i = 0; i < d->n; i++) {
            const float *src = x + (size_t)i * xs;
            if (!pw) {
                im2col(col, src, d);
                src = col;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->o, P, K, 1.0f, w, K, src, P,
                        0.0f, y + (size_t)i * ys, P);
        }
    }
}

void relate_conv2d_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                            const relate_conv2d_dims *d, float *scratch)
{
    if (!dx && !dw)
        return;
    const int K = d->c * d->kh * d->kw, P = d->ho * d->wo;
    const size_t xs = (size_t)d->c * d->h * d->w, ys = (size_t)d->o * P, wsz = (size_t)d->o * K;
    const int nt = team_size(d), pw = is_pointwise(d);
    const size_t cf = col_floats(d);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        /* The team the runtime granted (never more than nt), which the reduction must match. */
        const int team = omp_get_num_threads();
        float *col = scratch + (size_t)omp_get_thread_num() * thread_floats(d);
        /* One thread accumulates straight into dw; several keep private partial sums that are
         * reduced below in thread order, so the result depends only on the thread count. */
        float *dwt = team > 1 ? col + cf : dw;
        if (dw && team > 1)
            memset(dwt, 0, sizeof(float) * wsz);
#pragma omp for schedule(static)
        for (int i = 0; i < d->n; i++) {
            const float *xi = x + (size_t)i * xs, *dyi = dy + (size_t)i * ys;
            if (dw) {
                const float *src = xi;
                if (!pw) {
                    im2col(col, xi, d);
                    src = col;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d->o, K, P, 1.0f, dyi, P, src,
                            P, 1.0f, dwt, K);
            }
            if (dx) {
                float *dxi = dx + (size_t)i * xs;
                if (pw) {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, d->o, 1.0f, w, K, dyi,
                                P, 1.0f, dxi, P);
                } else {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, d->o, 1.0f, w, K, dyi,
                                P, 0.0f, col, P);
                    col2im_add(dxi, col, d);
                }
            }
        }
        /* The implicit barrier of the loop above makes every partial dW complete. */
        if (dw && team > 1) {
            const size_t stride = thread_floats(d);
#pragma omp for schedule(static)
            for (size_t j = 0; j < wsz; j++) {
                float s = scratch[cf + j];
                for (int u = 1; u < team; u++)
                    s += scratch[(size_t)u * stride + cf + j];
                dw[j] += s;
            }
        }
    }
}

void relate_conv2d_forward_ref(float *y, const float *x, const float *w, const relate_conv2d_dims *d)
{
    for (int i = 0; i < d->n; i++)
        for (int o = 0; o < d->o; o++)
            for (int oy = 0; oy < d->ho; oy++)
                for (int ox = 0; ox < d->wo; ox++) {
                    double acc = 0;
                    for (int c = 0; c < d->c; c++)
                        for (int ky = 0; ky < d->kh; ky++)
                            for (int kx = 0; kx < d->kw; kx++) {
                                int iy = oy * d->stride - d->pad + ky, ix = ox * d->stride - d->pad + kx;
                                if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w)
                                    continue;
                                acc += (double)x[(((size_t)i * d->c + c) * d->h + iy) * d->w + ix] *
                                       w[(((size_t)o * d->c + c) * d->kh + ky) * d->kw + kx];
                            }
                    y[(((size_t)i * d->o + o) * d->ho + oy) * d->wo + ox] = (float)acc;
                }
}

void relate_conv2d_backward_ref(float *dx, float *dw, const float *dy, const float *x,
                                const float *w, const relate_conv2d_dims *d)
{
    if (dw) {
        for (int o = 0; o < d->o; o++)
            for (int c = 0; c < d->c; c++)
                for (int ky = 0; ky < d->kh; ky++)
                    for (int kx = 0; kx < d->kw; kx++) {
                        double acc = 0;
                        for (int i = 0; i < d->n; i++)
                            for (int oy = 0; oy < d->ho; oy++)
                                for (int ox = 0; ox < d->wo; ox++) {
                                    int iy = oy * d->stride - d->pad + ky, ix = ox * d->stride - d->pad + kx;
                                    if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w)
                                        continue;
                                    acc += (double)dy[(((size_t)i * d->o + o) * d->ho + oy) * d->wo + ox] *
                                           x[(((size_t)i * d->c + c) * d->h + iy) * d->w + ix];
                                }
                        dw[(((size_t)o * d->c + c) * d->kh + ky) * d->kw + kx] += (float)acc;
                    }
    }
    if (dx) {
        for (int i = 0; i < d->n; i++)
            for (int c = 0; c < d->c; c++)
                for (int iy = 0; iy < d->h; iy++)
                    for (int ix = 0; ix < d->w; ix++) {
                        double acc = 0;
                        for (int o = 0; o < d->o; o++)
                            for (int ky = 0; ky < d->kh; ky++)
                                for (int kx = 0; kx < d->kw; kx++) {
                                    int ty = iy + d->pad - ky, tx = ix + d->pad - kx;
                                    if (ty < 0 || tx < 0 || ty % d->stride || tx % d->stride)
                                        continue;
                                    int oy = ty / d->stride, ox = tx / d->stride;
                                    if (oy >= d->ho || ox >= d->wo)
                                        continue;
                                    acc += (double)dy[(((size_t)i * d->o + o) * d->ho + oy) * d->wo + ox] *
                                           w[(((size_t)o * d->c + c) * d->kh + ky) * d->kw + kx];
                                }
                        dx[(((size_t)i * d->c + c) * d->h + iy) * d->w + ix] += (float)acc;
                    }
    }
}
