/* batchnorm_pool.c: BN + ReLU + AvgPool2d(2, 2), conv4's block tail in one pass (training
 * mode): y = avgpool2x2(relu(bn(x))), forward and backward. The full-size
 * activation is never stored; the backward recomputes the ReLU decision from x and the saved
 * statistics with the forward's own expression (x * alpha + shift > 0), so gradients equal those of
 * the composed ops. Floor mode: a last odd row or column takes part in the statistics only. */
#include <stdatomic.h>
#include <string.h>

#include "kernels/batchnorm_planes.h"

/* Off: every shape through the general loops (relate_bn_relu_pool2_use_blocks, for tests). */
static atomic_bool g_blocks_off;

void relate_bn_relu_pool2_use_blocks(bool on) { atomic_store(&g_blocks_off, !on); }

static inline float relu_of(float v)
{
    return v > 0.0f ? v : (v != v ? v : 0.0f);
}

/* relu_of on 8 lanes: v where v > 0 or v is NaN, else +0. */
static inline bp_v8sf relu8(bp_v8sf v)
{
    const bp_v8si keep = (v > 0.0f) | (v != v);
    return (bp_v8sf)(keep & (bp_v8si)v);
}

/* Four pooled outputs from 8 columns of an input row pair, with the scalar loop's expression:
 * ((((0 + a[2o]) + a[2o + 1]) + b[2o]) + b[2o + 1]) / 4. */
static inline void pool8(float *yr, const float *r0, const float *r1, float al, float sh)
{
    bp_v8sf a, b;
    memcpy(&a, r0, sizeof a);
    memcpy(&b, r1, sizeof b);
    a = relu8(a * al + sh);
    b = relu8(b * al + sh);
    const bp_v4sf a_even = __builtin_shufflevector(a, a, 0, 2, 4, 6), a_odd = __builtin_shufflevector(a, a, 1, 3, 5, 7);
    const bp_v4sf b_even = __builtin_shufflevector(b, b, 0, 2, 4, 6), b_odd = __builtin_shufflevector(b, b, 1, 3, 5, 7);
    const bp_v4sf out = ((((0.0f + a_even) + a_odd) + b_even) + b_odd) / 4.0f;
    memcpy(yr, &out, sizeof out);
}

int relate_bn_relu_pool2_forward_train(float *y, float *saved_mean, float *saved_invstd, const float *x,
                                       const float *gamma, const float *beta, float *running_mean,
                                       float *running_var, int n, int c, int h, int w, float momentum, float eps)
{
    const int hw = h * w, ho = h / 2, wo = w / 2;
    const double m = (double)n * hw;
    const bn_coef co = {saved_mean, saved_invstd, NULL, 0.0f, gamma, beta};
    /* Widths that are a multiple of 8 pool 8 columns at a time (pool8); others normalise two
     * rows into an L1-resident copy and pool from it. The same bits either way. */
    const bool blocks = w % 8 == 0 && !atomic_load_explicit(&g_blocks_off, memory_order_relaxed);
    int failed = 0;
#pragma omp parallel if ((size_t)n * c * hw >= BN_PAR_MIN) reduction(| : failed)
    {
        int c0, c1;
        my_channels(c, &c0, &c1);
        const int cw = c1 - c0;
        /* Per channel: mean and sum of squares (double), alpha and shift (float); two rows of
         * normalised values for the general path. */
        double *mean = malloc((2 * (size_t)cw + (size_t)cw + 2 * (size_t)w) * sizeof(double));
        if (!mean) {
            failed = cw > 0;
        } else if (cw > 0) {
            double *var = mean + cw;
            float *alpha = (float *)(var + cw), *shift = alpha + cw, *t0 = (float *)(mean + 3 * (size_t)cw),
                  *t1 = t0 + w;
            range_stats(x, n, c, hw, c0, c1, mean, var);
            for (int k = 0; k < cw; k++) {
                const int ch = c0 + k;
                relate_bn_finish_channel(mean[k], var[k], m, ch, saved_mean, saved_invstd, running_mean, running_var,
                                         momentum, eps);
                coef_of(&co, ch, &alpha[k], &shift[k]);
            }
            for (int i = 0; i < n; i++) {
                const float *xb = x + ((size_t)i * c + c0) * hw;
                if (i + 1 < n)
                    prefetch_block(xb + (size_t)c * hw, (size_t)cw * hw);
                for (int k = 0; k < cw; k++) {
                    const float *xp = xb + (size_t)k * hw;
                    float *yp = y + ((size_t)i * c + c0 + k) * ho * wo;
                    const float al = alpha[k], sh = shift[k];
                    for (int oy = 0; oy < ho; oy++) {
                        const float *r0 = xp + (size_t)(2 * oy) * w, *r1 = r0 + w;
                        if (blocks) {
                            for (int ix = 0; ix < w; ix += 8)
                                pool8(yp + (size_t)oy * wo + ix / 2, r0 + ix, r1 + ix, al, sh);
                            continue;
                        }
#pragma omp simd
                        for (int ix = 0; ix < w; ix++) {
                            t0[ix] = relu_of(r0[ix] * al + sh);
                            t1[ix] = relu_of(r1[ix] * al + sh);
                        }
                        float *yr = yp + (size_t)oy * wo;
                        for (int ox = 0; ox < wo; ox++)
                            yr[ox] = ((((0.0f + t0[2 * ox]) + t0[2 * ox + 1]) + t1[2 * ox]) + t1[2 * ox + 1]) / 4.0f;
                    }
                }
            }
        }
        free(mean);
    }
    return failed ? -1 : 0;
}

/* dz of one plane: the pooled gradient spread over its window (/ 4, as AvgPool2d's backward),
 * where the recomputed batch-norm output is positive; 0 elsewhere and outside the windows.
 * ge [w] is scratch: one pooled row spread to input width, so the mask loop runs contiguously. */
static void pool2_plane_grad(float *restrict dz, float *restrict ge, const float *restrict xp,
                             const float *restrict gp, float alpha, float shift,
                             int h, int w)
{
    const int ho = h / 2, wo = w / 2;
    for (int oy = 0; oy < ho; oy++) {
        const float *gr = gp + (size_t)oy * wo;
        for (int ox = 0; ox < wo; ox++) {
            const float g = 0.0f + gr[ox] / 4.0f;
            ge[2 * ox] = g;
            ge[2 * ox + 1] = g;
        }
        for (int ix = 2 * wo; ix < w; ix++)
            ge[ix] = 0.0f;
        for (int r = 2 * oy; r < 2 * oy + 2; r++) {
            const float *xr = xp + (size_t)r * w;
            float *dr = dz + (size_t)r * w;
#pragma omp simd
            for (int ix = 0; ix < w; ix++)
                dr[ix] = xr[ix] * alpha + shift > 0.0f ? ge[ix] : 0.0f;
        }
    }
    for (int iy = 2 * ho; iy < h; iy++)
        for (int ix = 0; ix < w; ix++)
            dz[(size_t)iy * w + ix] = 0.0f;
}

/* ---- The backward's block path: dz made and consumed 8 floats at a time, never stored.
 * It applies where the plane splits into whole 8-float blocks that each lie in one window row
 * pair: w a multiple of 8, or w == 4 (a block is then two rows of one window row); h even. Its
 * sums use the order gcc 12 gave plane_dz_sums' `omp simd` loop over a materialised dz, which the
 * relate figures were recorded with (objdump): lane l of 8 adds the floats at j = l mod 8, in
 * order, and the running sum then adds lanes 0 to 7 from the left. So both paths give the same
 * bits (test_grad_store compares them), and the vector width does not enter. */

static inline bool blocks_fit(int h, int w)
{
    return h % 2 == 0 && (w % 8 == 0 || w == 4) && !atomic_load_explicit(&g_blocks_off, memory_order_relaxed);
}

/* dz at the 8 input floats xb[0..7], whose pooled gradients start at gq (4 of them for a
 * multiple-of-8 width, 2 for width 4): g / 4 where the forward's ReLU passed, else 0. The 8 inputs
 * are left in *xv for the caller. */
static inline __attribute__((always_inline)) bp_v8sf dz8(const float *xb, const float *gq, int w, float alpha,
                                                         float shift, bp_v8sf *xv)
{
    bp_v4sf q;
    if (w == 4) {
        q = (bp_v4sf){gq[0], gq[1], 0.0f, 0.0f};
    } else {
        memcpy(&q, gq, sizeof q);
    }
    q = 0.0f + q / 4.0f;
    const bp_v8sf g = w == 4 ? __builtin_shufflevector(q, q, 0, 0, 1, 1, 0, 0, 1, 1)
                             : __builtin_shufflevector(q, q, 0, 0, 1, 1, 2, 2, 3, 3);
    memcpy(xv, xb, sizeof *xv);
    const bp_v8si pos = *xv * alpha + shift > 0.0f;
    return (bp_v8sf)(pos & (bp_v8si)g);
}

/* The 8-float blocks of a plane in order (at j), with the pooled gradients each one uses (gq):
 * two rows per block at width 4, else w / 8 blocks per row and two rows per pooled row. */
#define FOR_EACH_BLOCK(h, w, gp, j, gq)                                                               \
    for (int j = 0, j##_row = 0; j < (h) * (w); j##_row++)                                            \
        for (const float *gq = (gp) + (size_t)((w) == 4 ? 2 * j##_row : j##_row / 2 * ((w) / 2)),     \
                         *gq##_end = gq + ((w) == 4 ? 2 : (w) / 2);                                   \
             gq < gq##_end; gq += 4, j += 8)

static inline __attribute__((always_inline)) void blocks_sums_w(double *s_io, double *dp_io, const float *xp,
                                                                  const float *gp, float alpha, float shift,
                                                                  float mean, int h, int w)
{
    /* Lanes 0-3 and 4-7 as two 4-double vectors: what gcc keeps in registers on AVX2 too. */
    bp_v4df s_lo = {0}, s_hi = {0}, d_lo = {0}, d_hi = {0};
    FOR_EACH_BLOCK(h, w, gp, j, gq) {
        bp_v8sf xv;
        const bp_v8sf dz = dz8(xp + j, gq, w, alpha, shift, &xv), xm = xv - mean;
        const bp_v4df z_lo = widen_lo(dz), z_hi = widen_hi(dz);
        s_lo += z_lo;
        s_hi += z_hi;
        d_lo += widen_lo(xm) * z_lo;
        d_hi += widen_hi(xm) * z_hi;
    }
    double s = *s_io, dp = *dp_io;
    for (int l = 0; l < 4; l++) {
        s += s_lo[l];
        dp += d_lo[l];
    }
    for (int l = 0; l < 4; l++) {
        s += s_hi[l];
        dp += d_hi[l];
    }
    *s_io = s;
    *dp_io = dp;
}

static inline __attribute__((always_inline)) void blocks_dx_w(float *dr, const float *xp, const float *gp,
                                                                float alpha, float shift, float mean, float gm,
                                                                float k, float sc, int h, int w, bool store)
{
    FOR_EACH_BLOCK(h, w, gp, j, gq) {
        bp_v8sf xv, d;
        const bp_v8sf dz = dz8(xp + j, gq, w, alpha, shift, &xv);
        const bp_v8sf v = ((dz - gm) - (xv - mean) * k) * sc;
        if (store) {
            d = v;
        } else {
            memcpy(&d, dr + j, sizeof d);
            d += v;
        }
        memcpy(dr + j, &d, sizeof d);
    }
}

/* Width 4 and the multiples of 8 get their own copies of the loops (w == 4 is then a constant). */
static void blocks_sums(double *s_io, double *dp_io, const float *xp, const float *gp, float alpha, float shift,
                        float mean, int h, int w)
{
    if (w == 4)
        blocks_sums_w(s_io, dp_io, xp, gp, alpha, shift, mean, h, 4);
    else
        blocks_sums_w(s_io, dp_io, xp, gp, alpha, shift, mean, h, w);
}

static void blocks_dx(float *dr, const float *xp, const float *gp, float alpha, float shift, float mean, float gm,
                      float k, float sc, int h, int w, bool store)
{
    if (w == 4)
        blocks_dx_w(dr, xp, gp, alpha, shift, mean, gm, k, sc, h, 4, store);
    else if (store)
        blocks_dx_w(dr, xp, gp, alpha, shift, mean, gm, k, sc, h, w, true);
    else
        blocks_dx_w(dr, xp, gp, alpha, shift, mean, gm, k, sc, h, w, false);
}

/* One plane of dx from its coefficients (coef_ptrs order, channel ch): the block path, or dz
 * materialised in tmp (hw + w floats) for the general one. Stored (not read) when store. */
static void plane_dx_pool(float *dr, float *tmp, const float *xr, const float *gp, const float *coef, int c, int ch,
                          float mean, int h, int w, bool blocks, bool store)
{
    const int hw = h * w;
    const float alpha = coef[ch], shift = coef[c + ch], g_m = coef[2 * c + ch], kq = coef[3 * c + ch],
                scq = coef[4 * c + ch];
    if (blocks) {
        blocks_dx(dr, xr, gp, alpha, shift, mean, g_m, kq, scq, h, w, store);
        return;
    }
    pool2_plane_grad(tmp, tmp + hw, xr, gp, alpha, shift, h, w);
    plane_dx(dr, tmp, NULL, xr, mean, g_m, kq, scq, hw, store); /* batch norm's own dx expression */
}

int relate_bn_relu_pool2_backward_coefs(float *coef, float *dgamma, float *dbeta, const float *dy, const float *x,
                                        const float *saved_mean, const float *saved_invstd, const float *gamma,
                                        const float *beta, int n, int c, int h, int w)
{
    const int hw = h * w, ho = h / 2, wo = w / 2;
    const double m = (double)n * hw;
    const bn_coef co = {saved_mean, saved_invstd, NULL, 0.0f, gamma, beta};
    const bool blocks = blocks_fit(h, w);
    float *alpha = coef, *shift = coef + c, *gm = coef + 2 * (size_t)c, *kk = coef + 3 * (size_t)c,
          *sc = coef + 4 * (size_t)c;
    int failed = 0;
#pragma omp parallel if ((size_t)n * c * hw >= BN_PAR_MIN) reduction(| : failed)
    {
        int c0, c1;
        my_channels(c, &c0, &c1);
        const int cw = c1 - c0;
        /* Per channel: sum(dz) and sum((x - mean) dz) (double); dz of one plane and one spread
         * row of the pooled gradient for the general path. */
        double *s = malloc(2 * (size_t)cw * sizeof(double) + ((size_t)hw + (size_t)w) * sizeof(float));
        if (!s) {
            failed = cw > 0;
        } else if (cw > 0) {
            double *dp = s + cw;
            float *dz = (float *)(dp + cw);
            for (int k = 0; k < cw; k++) {
                s[k] = dp[k] = 0;
                coef_of(&co, c0 + k, &alpha[c0 + k], &shift[c0 + k]);
            }
            const bn_walk wk = walk_of(x, n, c, hw, c0, c1);
            for (int i = 0; i < n; i++) {
                const float *xb = x + ((size_t)i * c + c0) * hw;
                for (int k = 0; k < cw; k++) {
                    const int ch = c0 + k;
                    walk_plane(&wk, i, k, hw);
                    const float *xr = xb + (size_t)k * hw, *gp = dy + ((size_t)i * c + ch) * ho * wo;
                    if (blocks) {
                        blocks_sums(&s[k], &dp[k], xr, gp, alpha[ch], shift[ch], saved_mean[ch], h, w);
                        continue;
                    }
                    pool2_plane_grad(dz, dz + hw, xr, gp, alpha[ch], shift[ch], h, w);
                    plane_dz_sums(&s[k], &dp[k], dz, xr, saved_mean[ch], hw);
                }
            }
            for (int k = 0; k < cw; k++)
                backward_coefficients(s[k], dp[k], m, c0 + k, saved_invstd, gamma, dgamma, dbeta, &gm[c0 + k],
                                      &kk[c0 + k], &sc[c0 + k]);
        }
        free(s);
    }
    return failed ? -1 : 0;
}

void relate_bn_relu_pool2_dx_image(float *dxi, float *tmp, const float *xi, const float *dyi, const float *coef,
                                   const float *saved_mean, int c, int h, int w)
{
    const int hw = h * w, pooled = (h / 2) * (w / 2);
    const bool blocks = blocks_fit(h, w);
    for (int ch = 0; ch < c; ch++)
        plane_dx_pool(dxi + (size_t)ch * hw, tmp, xi + (size_t)ch * hw, dyi + (size_t)ch * pooled, coef, c, ch,
                      saved_mean[ch], h, w, blocks, true);
}

int relate_bn_relu_pool2_backward_train(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                        const float *saved_mean, const float *saved_invstd, const float *gamma,
                                        const float *beta, int n, int c, int h, int w, bool dx_store)
{
    if (!dx && !dgamma && !dbeta)
        return 0;
    const int hw = h * w, ho = h / 2, wo = w / 2;
    const bool blocks = blocks_fit(h, w);
    float *coef = malloc(5 * (size_t)c * sizeof(float));
    if (!coef || relate_bn_relu_pool2_backward_coefs(coef, dgamma, dbeta, dy, x, saved_mean, saved_invstd, gamma,
                                                     beta, n, c, h, w) != 0) {
        free(coef);
        return -1;
    }
    int failed = 0;
#pragma omp parallel if (dx && (size_t)n * c * hw >= BN_PAR_MIN) reduction(| : failed)
    {
        int c0, c1;
        my_channels(c, &c0, &c1);
        float *tmp = dx && c1 > c0 && !blocks ? malloc(((size_t)hw + (size_t)w) * sizeof(float)) : NULL;
        if (dx && c1 > c0 && !blocks && !tmp) {
            failed = 1;
        } else if (dx && c1 > c0) {
            const bn_walk wk = walk_of(x, n, c, hw, c0, c1);
            for (int i = 0; i < n; i++) {
                const size_t boff = ((size_t)i * c + c0) * hw;
                for (int k = 0; k < c1 - c0; k++) {
                    walk_plane(&wk, i, k, hw);
                    plane_dx_pool(dx + boff + (size_t)k * hw, tmp, x + boff + (size_t)k * hw,
                                  dy + ((size_t)i * c + c0 + k) * ho * wo, coef, c, c0 + k, saved_mean[c0 + k], h, w,
                                  blocks, dx_store);
                }
            }
        }
        free(tmp);
    }
    free(coef);
    return failed ? -1 : 0;
}
