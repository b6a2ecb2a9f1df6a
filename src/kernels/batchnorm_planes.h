/* batchnorm_planes.h: the per-plane and per-channel-range loops that batchnorm.c,
 * batchnorm_pool.c and batchnorm_sync.c share, so that every batch-norm kernel computes a
 * channel's statistics and gradients with the same expressions in the same order (one replica of
 * the synchronised kernels reproduces the one-process bits). Internal to src/kernels. */
#ifndef RELATE_BATCHNORM_PLANES_H
#define RELATE_BATCHNORM_PLANES_H

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "kernels/kernels.h"

/* GCC/clang vector extensions (batchnorm_pool.c, batchnorm_blocked.c): loops written with them
 * state their lanes and their order of operations themselves, so every instruction set computes
 * the same bits. */
typedef float bp_v8sf __attribute__((vector_size(32)));
typedef float bp_v4sf __attribute__((vector_size(16)));
typedef int32_t bp_v8si __attribute__((vector_size(32)));
typedef double bp_v4df __attribute__((vector_size(32)));

/* Lanes 0-3 and 4-7 of v widened to double (exact). gcc 12 lowers the generic form of this
 * (convertvector of a shufflevector) to two 2-lane conversions and an insert per half, which made
 * the backward's sums bound by the shuffle port; one vcvtps2pd per half does it on AVX. */
static inline bp_v4df widen_lo(bp_v8sf v)
{
#if defined(__AVX__)
    return (bp_v4df)_mm256_cvtps_pd(_mm256_castps256_ps128((__m256)v));
#else
    return __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3), bp_v4df);
#endif
}

static inline bp_v4df widen_hi(bp_v8sf v)
{
#if defined(__AVX__)
    return (bp_v4df)_mm256_cvtps_pd(_mm256_extractf128_ps((__m256)v, 1));
#else
    return __builtin_convertvector(__builtin_shufflevector(v, v, 4, 5, 6, 7), bp_v4df);
#endif
}

/* BatchNorm1d (hw == 1) keeps channels contiguous in a row; walking one channel at a time would
 * stride through memory, so that layout is processed in blocks of channels instead. */
#define BN_BLOCK 64

/* Per-channel work is independent and serial inside a channel, so any thread count gives the
 * same bits. Parallelising pays only once the tensor is not tiny. */
#define BN_PAR_MIN 32768

static inline float gamma_of(const float *gamma, int ch)
{
    return gamma ? gamma[ch] : 1.0f;
}

static inline float beta_of(const float *beta, int ch)
{
    return beta ? beta[ch] : 0.0f;
}

/* Residual add then ReLU on a normalised row, as relate_add then relate_relu would do them. */
static inline void epilogue_row(float *yr, const float *rr, bool relu, int hw)
{
    if (rr) {
#pragma omp simd
        for (int j = 0; j < hw; j++)
            yr[j] = yr[j] + rr[j];
    }
    if (relu) {
#pragma omp simd
        for (int j = 0; j < hw; j++)
            yr[j] = yr[j] > 0.0f ? yr[j] : (yr[j] != yr[j] ? yr[j] : 0.0f);
    }
}

/* A channel's loop visits one hw-float plane per image, C planes apart: the hardware prefetcher
 * stops at each plane's end (a new 4 KiB page), so each pass asks for the next image's plane
 * while it works on this one. Only loads are added; the arithmetic is untouched. Callers test
 * optional planes for NULL themselves: with the test in here, gcc 12 at -O3 dropped every
 * prefetch of this file (checked with objdump). */
static inline void prefetch_plane(const float *p, int hw)
{
    for (int k = 0; k < hw; k += 16)
        __builtin_prefetch(p + k, 0, 2);
}

/* For a block of consecutive planes (a range of channels of one image), only its first KB: that
 * starts the stream at the jump to the next image, and the hardware prefetcher carries the rest
 * of a contiguous block. Whole blocks prefetched ahead were 15-35% slower on resnet32's batch
 * norms (8 MB inputs), and no prefetch at all made conv4's first block tail (64 MB) slower. */
#define PREFETCH_BLOCK_FLOATS 256
static inline void prefetch_block(const float *p, size_t len)
{
    if (len > PREFETCH_BLOCK_FLOATS)
        len = PREFETCH_BLOCK_FLOATS;
    for (size_t k = 0; k < len; k += 16)
        __builtin_prefetch(p + k, 0, 2);
}

/* One cache line into L1. An asm statement on x86: gcc 12 deletes a loop whose only effect is
 * __builtin_prefetch when it can bound the loop (walk_prefetch's had vanished, objdump). */
static inline void prefetch_line(const float *p)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#else
    __builtin_prefetch(p, 0, 3);
#endif
}

/* A thread's walk over a channel range: n blocks of blk floats (its planes of one image), the
 * blocks `stride` floats apart. A walk of WALK_MIN_BYTES or more asks, at each plane, for the plane
 * WALK_AHEAD floats (4 KiB) further on in the walk, across the jumps between images: the hardware
 * prefetcher stops at each 4 KiB page, and on conv4's first two layers at the headline batch
 * (32 and 16 MB per thread) the statistics pass ran 25% faster and the pooled backward 7% (the
 * step 6%). Smaller walks keep prefetch_block at each jump: there the steady prefetch cost more
 * than it saved (batch norm on resnet32's 8 MB tensors: +8% forward, +40% backward, measured).
 * Only loads; nothing computed depends on them. */
#define WALK_AHEAD 1024
#define WALK_MIN_BYTES ((size_t)16 << 20)

typedef struct bn_walk {
    const float *base;
    size_t blk, stride;
    int n;
    bool ahead;
} bn_walk;

static inline bn_walk walk_of(const float *x, int n, int c, int hw, int c0, int c1)
{
    const size_t blk = (size_t)(c1 - c0) * hw;
    return (bn_walk){x + (size_t)c0 * hw, blk, (size_t)c * hw, n, (size_t)n * blk * sizeof(float) >= WALK_MIN_BYTES};
}

/* The floats [pos, pos + len) of the walk counted from its start; past its end, nothing. */
static inline void walk_prefetch(const bn_walk *wk, size_t pos, int len)
{
    size_t b = pos / wk->blk, off = pos % wk->blk;
    for (int q = 0; q < len; q += 16, off += 16) {
        if (off >= wk->blk) {
            b++;
            off -= wk->blk;
        }
        if (b >= (size_t)wk->n)
            return;
        prefetch_line(wk->base + b * wk->stride + off);
    }
}

/* Before plane k (hw floats) of image i. */
static inline void walk_plane(const bn_walk *wk, int i, int k, int hw)
{
    if (wk->ahead)
        walk_prefetch(wk, (size_t)i * wk->blk + (size_t)k * hw + WALK_AHEAD, hw);
    else if (k == 0 && i + 1 < wk->n)
        prefetch_block(wk->base + (size_t)(i + 1) * wk->stride, wk->blk);
}

/* The channels [*c0, *c1) of the calling thread of an `omp parallel` region: the split that
 * `schedule(static)` makes of a loop over channels. Kernels that walk images in the outer loop
 * and this thread's channels in the inner one read each image's planes of those channels as one
 * contiguous block, where a walk channel by channel reads one plane per image, c planes apart
 * (a 64-byte plane per image on conv4's last layer). Each channel's sums are still made by one
 * thread, image after image, so the order, and so the bits, are those of the channel walk. */
static inline void my_channels(int c, int *c0, int *c1)
{
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int q = c / nt, r = c % nt;
    *c0 = t * q + (t < r ? t : r);
    *c1 = *c0 + q + (t < r ? 1 : 0);
}

/* One plane's share of a channel's sums: s + x[0] + ... in `omp simd` lanes; the running sum
 * goes in and out, so a channel summed plane after plane rounds as one loop over its planes. */
static inline double plane_sum(double s, const float *xr, int hw)
{
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < hw; j++)
        s += xr[j];
    return s;
}

static inline double plane_dev2(double v, const float *xr, int hw, double mean)
{
#pragma omp simd reduction(+ : v)
    for (int j = 0; j < hw; j++) {
        double dlt = xr[j] - mean;
        v += dlt * dlt;
    }
    return v;
}

static inline void plane_dz_sums(double *s_io, double *dp_io, const float *dz, const float *xr, float mean, int hw)
{
    double s = *s_io, dp = *dp_io;
#pragma omp simd reduction(+ : s, dp)
    for (int j = 0; j < hw; j++) {
        s += dz[j];
        dp += (double)(xr[j] - mean) * dz[j];
    }
    *s_io = s;
    *dp_io = dp;
}

/* Mean and sum of squared deviations of channels [c0, c1), images in the outer loop, in one pass
 * over x: each plane's sum, then its squared deviations from its own mean while the plane is in
 * cache, moved to the running mean of the planes before it (Chan, Golub and LeVeque's pairwise
 * update). As accurate as a second pass over x with the final mean, which the one-pass
 * E[x^2] - E[x]^2 is not for large means; the second pass cost a read of the whole activation
 * (67 MB for the headline's stem). */
static inline void range_stats(const float *x, int n, int c, int hw, int c0, int c1, double *mean, double *var_sum)
{
    const int cw = c1 - c0;
    const bn_walk wk = walk_of(x, n, c, hw, c0, c1);
    for (int k = 0; k < cw; k++)
        mean[k] = var_sum[k] = 0;
    for (int i = 0; i < n; i++) {
        const float *xb = x + ((size_t)i * c + c0) * hw;
        const double before = (double)i * hw, merged = before + hw;
        for (int k = 0; k < cw; k++) {
            walk_plane(&wk, i, k, hw);
            const float *plane = xb + (size_t)k * hw;
            const double s = plane_sum(0.0, plane, hw), plane_mean = s / hw;
            const double dev2 = plane_dev2(0.0, plane, hw, plane_mean);
            if (i == 0) {
                var_sum[k] = dev2;
            } else {
                const double d = plane_mean - mean[k] / before;
                var_sum[k] += dev2 + d * d * (before * hw / merged);
            }
            mean[k] += s;
        }
    }
    for (int k = 0; k < cw; k++)
        mean[k] /= (double)n * hw;
}

/* As PyTorch's CPU kernel: y = x * alpha + beta', alpha = invstd * gamma, beta' = beta - mean * alpha,
 * all in float; then the optional epilogue while the row is in cache. */
static inline void affine_channel(float *y, const float *x, int n, int c, int hw, int ch, float alpha,
                                  float shift, const relate_bn_epilogue *ep)
{
    for (int i = 0; i < n; i++) {
        const size_t off = ((size_t)i * c + ch) * hw;
        const float *xr = x + off;
        float *yr = y + off;
        if (i + 1 < n) {
            prefetch_plane(xr + (size_t)c * hw, hw);
            if (ep && ep->residual)
                prefetch_plane(ep->residual + off + (size_t)c * hw, hw);
        }
#pragma omp simd
        for (int j = 0; j < hw; j++)
            yr[j] = xr[j] * alpha + shift;
        if (ep)
            epilogue_row(yr, ep->residual ? ep->residual + off : NULL, ep->relu, hw);
    }
}

/* Where a channel's affine coefficients come from: saved (training) or running (eval) statistics.
 * Recomputed per plane with the expressions the per-channel loops used, so the bits are theirs. */
typedef struct bn_coef {
    const float *mean, *invstd; /* invstd NULL: 1 / sqrtf(var + eps), in float */
    const float *var;
    float eps;
    const float *gamma, *beta;
} bn_coef;

static inline void coef_of(const bn_coef *co, int ch, float *alpha, float *shift)
{
    const float inv = co->invstd ? co->invstd[ch] : 1.0f / sqrtf(co->var[ch] + co->eps);
    *alpha = inv * gamma_of(co->gamma, ch);
    *shift = beta_of(co->beta, ch) - co->mean[ch] * *alpha;
}

/* y = x * alpha + shift for channels [c0, c1), images in the outer loop (see my_channels), then
 * the optional epilogue while the plane is in cache. */
static inline void range_affine(float *y, const float *x, int n, int c, int hw, int c0, int c1,
                                const bn_coef *co, const relate_bn_epilogue *ep)
{
    const size_t blk = (size_t)(c1 - c0) * hw, next = (size_t)c * hw;
    for (int i = 0; i < n; i++) {
        const size_t boff = ((size_t)i * c + c0) * hw;
        if (i + 1 < n) {
            prefetch_block(x + boff + next, blk);
            if (ep && ep->residual)
                prefetch_block(ep->residual + boff + next, blk);
        }
        for (int ch = c0; ch < c1; ch++) {
            const size_t off = boff + (size_t)(ch - c0) * hw;
            const float *xr = x + off;
            float *yr = y + off;
            float alpha, shift;
            coef_of(co, ch, &alpha, &shift);
#pragma omp simd
            for (int j = 0; j < hw; j++)
                yr[j] = xr[j] * alpha + shift;
            if (ep)
                epilogue_row(yr, ep->residual ? ep->residual + off : NULL, ep->relu, hw);
        }
    }
}

/* A channel's backward results from its two sums s = sum(dz), dp = sum((x - mean) dz) over m
 * values: dgamma and dbeta added (either may be NULL), and the float coefficients of
 * dx = ((dz - gm) - (x - mean) * k) * sc, PyTorch's grouping of
 * gamma*invstd/m * (m*dz - sum(dz) - xhat*sum(dz*xhat)). */
static inline void backward_coefficients(double s, double dp, double m, int ch, const float *saved_invstd,
                                         const float *gamma, float *dgamma, float *dbeta, float *gm, float *k,
                                         float *sc)
{
    const double inv = saved_invstd[ch];
    if (dgamma)
        dgamma[ch] += (float)(dp * inv);
    if (dbeta)
        dbeta[ch] += (float)s;
    *gm = (float)(s / m);
    *k = (float)(dp * inv * inv / m);
    *sc = saved_invstd[ch] * gamma_of(gamma, ch);
}

/* One plane's share of sum(dz) and sum((x - mean) * dz), dz = dy, or dy masked by y > 0 when
 * relu_y is given (the fused epilogue's ReLU, recomputed instead of stored). */
static inline void plane_grad_sums(double *s_io, double *dp_io, const float *gr, const float *yr, const float *xr,
                                   float mean, int hw)
{
    double s = *s_io, dp = *dp_io;
    if (yr) {
#pragma omp simd reduction(+ : s, dp)
        for (int j = 0; j < hw; j++) {
            const float g = yr[j] > 0.0f ? gr[j] : 0.0f;
            s += g;
            dp += (double)(xr[j] - mean) * g;
        }
    } else {
#pragma omp simd reduction(+ : s, dp)
        for (int j = 0; j < hw; j++) {
            s += gr[j];
            dp += (double)(xr[j] - mean) * gr[j];
        }
    }
    *s_io = s;
    *dp_io = dp;
}

/* The residual's gradient: dz itself, stored (a fresh buffer, not read) or added. */
static inline void plane_dresidual(float *rr, const float *gr, const float *yr, int hw, bool store)
{
    if (store) {
#pragma omp simd
        for (int j = 0; j < hw; j++)
            rr[j] = yr ? (yr[j] > 0.0f ? gr[j] : 0.0f) : gr[j];
    } else {
#pragma omp simd
        for (int j = 0; j < hw; j++)
            rr[j] += yr ? (yr[j] > 0.0f ? gr[j] : 0.0f) : gr[j];
    }
}

/* dx of one plane: ((dz - gm) - (x - mean) * k) * sc, stored without reading dx when the
 * caller's buffer is fresh (relate_grad_to_write), else added. */
static inline void plane_dx(float *dr, const float *gr, const float *yr, const float *xr, float mean, float gm,
                            float k, float sc, int hw, bool store)
{
    if (yr && store) {
#pragma omp simd
        for (int j = 0; j < hw; j++) {
            const float g = yr[j] > 0.0f ? gr[j] : 0.0f;
            dr[j] = ((g - gm) - (xr[j] - mean) * k) * sc;
        }
    } else if (yr) {
#pragma omp simd
        for (int j = 0; j < hw; j++) {
            const float g = yr[j] > 0.0f ? gr[j] : 0.0f;
            dr[j] += ((g - gm) - (xr[j] - mean) * k) * sc;
        }
    } else if (store) {
#pragma omp simd
        for (int j = 0; j < hw; j++)
            dr[j] = ((gr[j] - gm) - (xr[j] - mean) * k) * sc;
    } else {
#pragma omp simd
        for (int j = 0; j < hw; j++)
            dr[j] += ((gr[j] - gm) - (xr[j] - mean) * k) * sc;
    }
}

/* BatchNorm1d rows are [n, c]: the epilogue runs as one pass over the whole output. */
static inline void epilogue_all(float *y, size_t total, const relate_bn_epilogue *ep)
{
    if (!ep)
        return;
#pragma omp parallel for schedule(static) if (total >= BN_PAR_MIN)
    for (size_t r = 0; r < total; r += 4096) {
        const int len = total - r < 4096 ? (int)(total - r) : 4096;
        epilogue_row(y + r, ep->residual ? ep->residual + r : NULL, ep->relu, len);
    }
}

/* Sum of one [N, C, HW] channel over n images, in double (the synchronised kernels' walk). */
static inline double channel_sum(const float *x, int n, int c, int hw, int ch)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        const float *xr = x + ((size_t)i * c + ch) * hw;
        if (i + 1 < n)
            prefetch_plane(xr + (size_t)c * hw, hw);
        s = plane_sum(s, xr, hw);
    }
    return s;
}

/* Sum of squared deviations of one channel from `mean`, in double. */
static inline double channel_dev2(const float *x, int n, int c, int hw, int ch, double mean)
{
    double v = 0;
    for (int i = 0; i < n; i++) {
        const float *xr = x + ((size_t)i * c + ch) * hw;
        if (i + 1 < n)
            prefetch_plane(xr + (size_t)c * hw, hw);
        v = plane_dev2(v, xr, hw, mean);
    }
    return v;
}

/* sum(dz) and sum((x - mean) * dz) of one channel, in double (see plane_grad_sums). */
static inline void channel_sums(const float *dy, const float *relu_y, const float *x, float mean, int n, int c,
                                int hw, int ch, double *sum, double *dotp)
{
    double s = 0, dp = 0;
    for (int i = 0; i < n; i++) {
        const size_t off = ((size_t)i * c + ch) * hw;
        const float *xr = x + off, *gr = dy + off, *yr = relu_y ? relu_y + off : NULL;
        /* Three prefetches written out: a shared helper that tests relu_y made gcc 12 drop all
         * of them (see prefetch_plane). */
        if (i + 1 < n) {
            const size_t next = (size_t)c * hw;
            prefetch_plane(xr + next, hw);
            prefetch_plane(gr + next, hw);
            if (yr)
                prefetch_plane(yr + next, hw);
        }
        plane_grad_sums(&s, &dp, gr, yr, xr, mean, hw);
    }
    *sum = s;
    *dotp = dp;
}

#endif
