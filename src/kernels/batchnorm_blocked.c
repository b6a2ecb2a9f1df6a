/* batchnorm_blocked.c: batch norm (training forward with its epilogue, the forward again from saved
 * statistics, training backward) on activations in oneDNN's nChw16c layout, and the reorders
 * between that layout and relate's NCHW.
 *
 * Why: a ResNet step spends a sixth of its time in oneDNN reorders when every convolution's input
 * and output travel between relate's NCHW and the blocked layout oneDNN computes in (resnet32,
 * bench/profile_step.sh). A ResNet's blocks keep their activations blocked instead, so the
 * convolutions read and write them as they are, and batch norm works on them here.
 *
 * The layout: element (i, ch, p) of an [n, c, hw] tensor (c a multiple of 16) lies at
 * ((i * c/16 + ch/16) * hw + p) * 16 + ch % 16: for each image, each block of 16 channels holds
 * its positions one after another, 16 channels each. A vector of 16 floats is 16 channels.
 *
 * Sums: each channel's sums run in double over fixed chunks of images (SUM_CHUNKS of them,
 * whatever the thread count), which are then added in chunk order; so the bits depend on the
 * inputs alone. The per-element expressions are those of batchnorm.c (batchnorm_planes.h); only
 * the order of the sums differs from the NCHW kernels. Also conv4's block tail (batch norm, ReLU
 * and 2x2 average pooling in one op, as batchnorm_pool.c in NCHW). Not the NCHW kernels
 * (batchnorm.c, batchnorm_pool.c) nor the graph ops (src/autograd/ops_nn.c). */
#include <stdlib.h>
#include <string.h>

#include "kernels/batchnorm_planes.h"

#define LANES 16
/* Chunks of images per channel block whose sums are kept apart: the unit of parallel work for
 * the sums, fixed so that the bits do not depend on the thread count. */
#define SUM_CHUNKS 32

static int chunk_begin(int n, int j) { return (int)((int64_t)n * j / SUM_CHUNKS); }

/* The 16 channels of block cb of image i. */
static inline const float *block_of(const float *x, int i, int nb, int cb, int hw)
{
    return x + (((size_t)i * nb + cb) * hw) * LANES;
}

/* ------------------------------------------------------------------ 16-lane double sums */
/* A channel block's running sums in double: lanes 0-3, 4-7, 8-11, 12-15. Written with vector
 * types because gcc 12 left the equivalent `omp simd` loops over double[16] arrays scalar (one
 * vcvtss2sd + vaddsd per float, the sums in memory; perf annotate). Each lane still adds its
 * values one after another, so the bits are those of the scalar loops. */
typedef struct sum16 {
    bp_v4df q[4];
} sum16;

static inline void load16(bp_v8sf v[2], const float *p)
{
    memcpy(&v[0], p, sizeof v[0]);
    memcpy(&v[1], p + 8, sizeof v[1]);
}

/* s += v (widened) */
static inline void add16(sum16 *s, const bp_v8sf v[2])
{
    s->q[0] += widen_lo(v[0]);
    s->q[1] += widen_hi(v[0]);
    s->q[2] += widen_lo(v[1]);
    s->q[3] += widen_hi(v[1]);
}

/* s += (double)a * (double)b */
static inline void mul_add16(sum16 *s, const bp_v8sf a[2], const bp_v8sf b[2])
{
    s->q[0] += widen_lo(a[0]) * widen_lo(b[0]);
    s->q[1] += widen_hi(a[0]) * widen_hi(b[0]);
    s->q[2] += widen_lo(a[1]) * widen_lo(b[1]);
    s->q[3] += widen_hi(a[1]) * widen_hi(b[1]);
}

/* s += ((double)v - dev)^2, dev per lane */
static inline void dev2_add16(sum16 *s, const bp_v8sf v[2], const sum16 *dev)
{
    const bp_v4df d0 = widen_lo(v[0]) - dev->q[0], d1 = widen_hi(v[0]) - dev->q[1];
    const bp_v4df d2 = widen_lo(v[1]) - dev->q[2], d3 = widen_hi(v[1]) - dev->q[3];
    s->q[0] += d0 * d0;
    s->q[1] += d1 * d1;
    s->q[2] += d2 * d2;
    s->q[3] += d3 * d3;
}

/* ------------------------------------------------------------------ layout */
void relate_nchw_to_blocked16(float *dst, const float *src, int n, int c, int hw, bool add)
{
    const int nb = c / LANES;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)n * c * hw >= BN_PAR_MIN)
    for (int i = 0; i < n; i++)
        for (int cb = 0; cb < nb; cb++) {
            float *d = dst + (((size_t)i * nb + cb) * hw) * LANES;
            const float *s = src + ((size_t)i * c + (size_t)cb * LANES) * hw;
            for (int p = 0; p < hw; p++)
                for (int l = 0; l < LANES; l++)
                    d[(size_t)p * LANES + l] = add ? d[(size_t)p * LANES + l] + s[(size_t)l * hw + p] : s[(size_t)l * hw + p];
        }
}

void relate_blocked16_to_nchw(float *dst, const float *src, int n, int c, int hw, bool add)
{
    const int nb = c / LANES;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)n * c * hw >= BN_PAR_MIN)
    for (int i = 0; i < n; i++)
        for (int cb = 0; cb < nb; cb++) {
            const float *s = src + (((size_t)i * nb + cb) * hw) * LANES;
            float *d = dst + ((size_t)i * c + (size_t)cb * LANES) * hw;
            for (int l = 0; l < LANES; l++)
                for (int p = 0; p < hw; p++)
                    d[(size_t)l * hw + p] = add ? d[(size_t)l * hw + p] + s[(size_t)p * LANES + l] : s[(size_t)p * LANES + l];
        }
}

/* ------------------------------------------------------------------ forward */
/* Chunk j of block cb: the sum of its values into sums[j * c + ch] and their squared deviations
 * from the chunk's own mean into dev2[j * c + ch]. Two passes over the chunk, the second while it
 * is still in cache (a chunk of conv4's layer 2 at 2,048 views is 1 MB; the statistics took two
 * passes over the whole activation from memory before). */
static void chunk_moments(double *sums, double *dev2, const float *x, int n, int c, int hw, int cb, int j)
{
    const int nb = c / LANES, i0 = chunk_begin(n, j), i1 = chunk_begin(n, j + 1);
    sum16 acc = {{{0}}}, sq = {{{0}}}, mean;
    for (int i = i0; i < i1; i++) {
        const float *xb = block_of(x, i, nb, cb, hw);
        for (int p = 0; p < hw; p++) {
            bp_v8sf v[2];
            load16(v, xb + (size_t)p * LANES);
            add16(&acc, v);
        }
    }
    if (i1 > i0) {
        const double cnt = (double)(i1 - i0) * hw;
        for (int q = 0; q < 4; q++)
            mean.q[q] = acc.q[q] / cnt;
        for (int i = i0; i < i1; i++) {
            const float *xb = block_of(x, i, nb, cb, hw);
            for (int p = 0; p < hw; p++) {
                bp_v8sf v[2];
                load16(v, xb + (size_t)p * LANES);
                dev2_add16(&sq, v, &mean);
            }
        }
    }
    memcpy(sums + (size_t)j * c + (size_t)cb * LANES, acc.q, sizeof acc.q);
    memcpy(dev2 + (size_t)j * c + (size_t)cb * LANES, sq.q, sizeof sq.q);
}

/* Each channel's mean and sum of squared deviations from it, from every chunk's moments (in
 * parallel) combined in chunk order: the sum of the chunks' sums as before, and the chunks' squared
 * deviations moved to the overall mean (Chan, Golub and LeVeque's pairwise update), which is as
 * accurate as a second pass over all of x and needs none. */
static void channel_moments(double *mean, double *var_sum, double *part, const float *x, int n, int c, int hw)
{
    const int nb = c / LANES;
    double *sums = part, *dev2 = part + (size_t)SUM_CHUNKS * c;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)n * c * hw >= BN_PAR_MIN)
    for (int cb = 0; cb < nb; cb++)
        for (int j = 0; j < SUM_CHUNKS; j++)
            chunk_moments(sums, dev2, x, n, c, hw, cb, j);
    const double m = (double)n * hw;
    for (int ch = 0; ch < c; ch++) {
        double s = 0;
        for (int j = 0; j < SUM_CHUNKS; j++)
            s += sums[(size_t)j * c + ch];
        mean[ch] = s / m;
        double v = 0;
        for (int j = 0; j < SUM_CHUNKS; j++) {
            const double cnt = (double)(chunk_begin(n, j + 1) - chunk_begin(n, j)) * hw;
            if (cnt > 0) {
                const double d = sums[(size_t)j * c + ch] / cnt - mean[ch];
                v += dev2[(size_t)j * c + ch] + cnt * d * d;
            }
        }
        var_sum[ch] = v;
    }
}

/* y = x * alpha + shift per channel, then + residual, then ReLU: the expressions of
 * range_affine and epilogue_row. */
static void affine16(float *y, const float *x, const float *alpha, const float *shift, int n, int c, int hw,
                     const relate_bn_epilogue *ep)
{
    const int nb = c / LANES;
    const float *res = ep ? ep->residual : NULL;
    const bool relu = ep && ep->relu;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)n * c * hw >= BN_PAR_MIN)
    for (int i = 0; i < n; i++)
        for (int cb = 0; cb < nb; cb++) {
            const size_t off = (((size_t)i * nb + cb) * hw) * LANES;
            const float *a = alpha + (size_t)cb * LANES, *s = shift + (size_t)cb * LANES;
            for (int p = 0; p < hw; p++) {
                const size_t q = off + (size_t)p * LANES;
#pragma omp simd
                for (int l = 0; l < LANES; l++) {
                    float v = x[q + l] * a[l] + s[l];
                    if (res)
                        v = v + res[q + l];
                    if (relu)
                        v = v > 0.0f ? v : (v != v ? v : 0.0f);
                    y[q + l] = v;
                }
            }
        }
}

static void coefficients(float *alpha, float *shift, const float *mean, const float *invstd, const float *gamma,
                         const float *beta, int c)
{
    for (int ch = 0; ch < c; ch++) {
        alpha[ch] = invstd[ch] * gamma_of(gamma, ch);
        shift[ch] = beta_of(beta, ch) - mean[ch] * alpha[ch];
    }
}

/* The training forward's statistics (two passes: the mean, then the squared deviations from it),
 * saved and running, and the affine coefficients they give: alpha [c] then shift [c], in memory
 * the caller frees; NULL when memory is short. */
static float *train_coefficients(const float *x, int n, int c, int hw, const float *gamma, const float *beta,
                                 float *saved_mean, float *saved_invstd, float *running_mean, float *running_var,
                                 float momentum, float eps)
{
    double *part = malloc(sizeof(double) * (2 * (size_t)SUM_CHUNKS * c + 2 * (size_t)c));
    float *coef = malloc(sizeof(float) * 2 * (size_t)c);
    if (!part || !coef) {
        free(part);
        free(coef);
        return NULL;
    }
    double *mean = part + 2 * (size_t)SUM_CHUNKS * c, *var = mean + c;
    const double m = (double)n * hw;
    channel_moments(mean, var, part, x, n, c, hw);
    for (int ch = 0; ch < c; ch++)
        relate_bn_finish_channel(mean[ch], var[ch], m, ch, saved_mean, saved_invstd, running_mean, running_var,
                                 momentum, eps);
    coefficients(coef, coef + c, saved_mean, saved_invstd, gamma, beta, c);
    free(part);
    return coef;
}

int relate_bn16_forward_train(float *y, float *saved_mean, float *saved_invstd, const float *x, const float *gamma,
                              const float *beta, float *running_mean, float *running_var, int n, int c, int hw,
                              float momentum, float eps, const relate_bn_epilogue *ep)
{
    if (c % LANES)
        return -1;
    float *coef = train_coefficients(x, n, c, hw, gamma, beta, saved_mean, saved_invstd, running_mean, running_var,
                                     momentum, eps);
    if (!coef)
        return -1;
    affine16(y, x, coef, coef + c, n, c, hw, ep);
    free(coef);
    return 0;
}

int relate_bn16_apply_saved(float *y, const float *x, const float *saved_mean, const float *saved_invstd,
                            const float *gamma, const float *beta, int n, int c, int hw, const relate_bn_epilogue *ep)
{
    if (c % LANES)
        return -1;
    float *coef = malloc(sizeof(float) * 2 * (size_t)c);
    if (!coef)
        return -1;
    coefficients(coef, coef + c, saved_mean, saved_invstd, gamma, beta, c);
    affine16(y, x, coef, coef + c, n, c, hw, ep);
    free(coef);
    return 0;
}

/* ------------------------------------------------------------------ backward */
/* dz = dy, or dy where y > 0 (the epilogue's ReLU, recomputed instead of stored). */
static inline float masked(const float *dy, const float *relu_y, size_t q)
{
    return relu_y ? (relu_y[q] > 0.0f ? dy[q] : 0.0f) : dy[q];
}

/* The backward's scratch: per chunk and channel, sum(dz) then sum((x - mean) dz) ([2][SUM_CHUNKS][c]
 * doubles), and ncoef per-channel float coefficients. 0, or -1 with nothing left allocated. */
static int backward_scratch(int c, int ncoef, double **part, float **coef)
{
    *part = malloc(sizeof(double) * 2 * (size_t)SUM_CHUNKS * c);
    *coef = malloc(sizeof(float) * (size_t)ncoef * c);
    if (*part && *coef)
        return 0;
    free(*part);
    free(*coef);
    return -1;
}

/* Each channel's two chunk sums added in chunk order, then its input-gradient coefficients gm, k
 * and sc (dgamma and dbeta added to where given). */
static void grad_coefficients(const double *part, int n, int c, int hw, const float *saved_invstd,
                              const float *gamma, float *dgamma, float *dbeta, float *gm, float *k, float *sc)
{
    const double *part2 = part + (size_t)SUM_CHUNKS * c, m = (double)n * hw;
    for (int ch = 0; ch < c; ch++) {
        double s = 0, dp = 0;
        for (int j = 0; j < SUM_CHUNKS; j++) {
            s += part[(size_t)j * c + ch];
            dp += part2[(size_t)j * c + ch];
        }
        backward_coefficients(s, dp, m, ch, saved_invstd, gamma, dgamma, dbeta, &gm[ch], &k[ch], &sc[ch]);
    }
}

/* Chunk j of block cb: sum(dz) into part[...] and sum((x - mean) dz) into part2[...]. */
/* dz_out (or NULL): dz stored there as well, where the caller's second pass reads it instead of
 * dy and relu_y (the residual's fresh gradient is dz itself). */
static void chunk_grad_sums(double *part, double *part2, const float *dy, const float *relu_y, const float *x,
                            const float *mean, float *dz_out, int n, int c, int hw, int cb, int j)
{
    const int nb = c / LANES;
    sum16 s = {{{0}}}, dp = {{{0}}};
    bp_v8sf mu[2];
    load16(mu, mean + (size_t)cb * LANES);
    for (int i = chunk_begin(n, j); i < chunk_begin(n, j + 1); i++) {
        const size_t off = (((size_t)i * nb + cb) * hw) * LANES;
        for (int p = 0; p < hw; p++) {
            const size_t q = off + (size_t)p * LANES;
            bp_v8sf g[2], xv[2], xm[2];
            load16(g, dy + q);
            load16(xv, x + q);
            if (relu_y) {
                bp_v8sf yv[2];
                load16(yv, relu_y + q);
                for (int h = 0; h < 2; h++)
                    g[h] = (bp_v8sf)((bp_v8si)(yv[h] > 0.0f) & (bp_v8si)g[h]);
            }
            for (int h = 0; h < 2; h++)
                xm[h] = xv[h] - mu[h];
            if (dz_out) {
                memcpy(dz_out + q, &g[0], sizeof g[0]);
                memcpy(dz_out + q + 8, &g[1], sizeof g[1]);
            }
            add16(&s, g);
            mul_add16(&dp, xm, g);
        }
    }
    memcpy(part + (size_t)j * c + (size_t)cb * LANES, s.q, sizeof s.q);
    memcpy(part2 + (size_t)j * c + (size_t)cb * LANES, dp.q, sizeof dp.q);
}

int relate_bn16_backward_train(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                               const float *saved_mean, const float *saved_invstd, const float *gamma, int n, int c,
                               int hw, const float *relu_y, float *dresidual, unsigned store)
{
    if (c % LANES)
        return -1;
    if (!dx && !dgamma && !dbeta && !dresidual)
        return 0;
    const bool store_dx = store & RELATE_BN_STORE_DX, store_dres = store & RELATE_BN_STORE_DRESIDUAL;
    const int nb = c / LANES;
    const size_t total = (size_t)n * c * hw;
    double *part;
    float *coef;
    if (backward_scratch(c, 3, &part, &coef) != 0)
        return -1;
    double *part2 = part + (size_t)SUM_CHUNKS * c;
    float *gm = coef, *k = coef + c, *sc = coef + 2 * (size_t)c;
    /* A fresh residual gradient is dz itself: written in the sums' pass, it is what the second
     * pass reads, one stream instead of dy and relu_y (the same floats, so the same bits). */
    float *dz_first = dresidual && store_dres ? dresidual : NULL;
#pragma omp parallel for collapse(2) schedule(static) if (total >= BN_PAR_MIN)
    for (int cb = 0; cb < nb; cb++)
        for (int j = 0; j < SUM_CHUNKS; j++)
            chunk_grad_sums(part, part2, dy, relu_y, x, saved_mean, dz_first, n, c, hw, cb, j);
    grad_coefficients(part, n, c, hw, saved_invstd, gamma, dgamma, dbeta, gm, k, sc);
    if (dx || (dresidual && !dz_first)) {
#pragma omp parallel for collapse(2) schedule(static) if (total >= BN_PAR_MIN)
        for (int i = 0; i < n; i++)
            for (int cb = 0; cb < nb; cb++) {
                const size_t off = (((size_t)i * nb + cb) * hw) * LANES;
                const float *mu = saved_mean + (size_t)cb * LANES, *g0 = gm + (size_t)cb * LANES,
                            *k0 = k + (size_t)cb * LANES, *s0 = sc + (size_t)cb * LANES;
                for (int p = 0; p < hw; p++) {
                    const size_t q = off + (size_t)p * LANES;
                    if (dz_first) { /* dx from the stored dz; dresidual is complete */
#pragma omp simd
                        for (int l = 0; l < LANES; l++) {
                            const float g = dz_first[q + l];
                            const float v = ((g - g0[l]) - (x[q + l] - mu[l]) * k0[l]) * s0[l];
                            dx[q + l] = store_dx ? v : dx[q + l] + v;
                        }
                        continue;
                    }
#pragma omp simd
                    for (int l = 0; l < LANES; l++) {
                        const float g = masked(dy, relu_y, q + l);
                        if (dresidual)
                            dresidual[q + l] = store_dres ? g : dresidual[q + l] + g;
                        if (dx) {
                            const float v = ((g - g0[l]) - (x[q + l] - mu[l]) * k0[l]) * s0[l];
                            dx[q + l] = store_dx ? v : dx[q + l] + v;
                        }
                    }
                }
            }
    }
    free(part);
    free(coef);
    return 0;
}

/* ------------------------------------------------------------------ + ReLU + 2x2 average pooling */
/* conv4's block tail on blocked activations: y = avgpool2x2(relu(bn(x))), [n, c, h, w] ->
 * [n, c, h/2, w/2] (floor mode: a last odd row or column joins the statistics only), with the
 * expressions of batchnorm_pool.c's loops, so given the same statistics the same bits. */
int relate_bn16_relu_pool2_forward_train(float *y, float *saved_mean, float *saved_invstd, const float *x,
                                         const float *gamma, const float *beta, float *running_mean,
                                         float *running_var, int n, int c, int h, int w, float momentum, float eps)
{
    if (c % LANES)
        return -1;
    const int hw = h * w, ho = h / 2, wo = w / 2, nb = c / LANES;
    float *coef = train_coefficients(x, n, c, hw, gamma, beta, saved_mean, saved_invstd, running_mean, running_var,
                                     momentum, eps);
    if (!coef)
        return -1;
    const float *alpha = coef, *shift = coef + c;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)n * c * hw >= BN_PAR_MIN)
    for (int i = 0; i < n; i++)
        for (int cb = 0; cb < nb; cb++) {
            const float *xb = block_of(x, i, nb, cb, hw), *a = alpha + (size_t)cb * LANES,
                        *sh = shift + (size_t)cb * LANES;
            float *yb = y + (((size_t)i * nb + cb) * ho * wo) * LANES;
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++) {
                    const float *p00 = xb + ((size_t)(2 * oy) * w + 2 * ox) * LANES, *p01 = p00 + LANES,
                                *p10 = p00 + (size_t)w * LANES, *p11 = p10 + LANES;
                    float *out = yb + ((size_t)oy * wo + ox) * LANES;
#pragma omp simd
                    for (int l = 0; l < LANES; l++) {
                        float v00 = p00[l] * a[l] + sh[l], v01 = p01[l] * a[l] + sh[l];
                        float v10 = p10[l] * a[l] + sh[l], v11 = p11[l] * a[l] + sh[l];
                        v00 = v00 > 0.0f ? v00 : (v00 != v00 ? v00 : 0.0f);
                        v01 = v01 > 0.0f ? v01 : (v01 != v01 ? v01 : 0.0f);
                        v10 = v10 > 0.0f ? v10 : (v10 != v10 ? v10 : 0.0f);
                        v11 = v11 > 0.0f ? v11 : (v11 != v11 ? v11 : 0.0f);
                        out[l] = ((((0.0f + v00) + v01) + v10) + v11) / 4.0f;
                    }
                }
        }
    free(coef);
    return 0;
}

/* The backward walks the 2x2 windows: each window's 16 pooled gradients are read once, and each of
 * its 4 positions gets dz = g / 4 where the recomputed batch-norm output is positive, else 0
 * (positions outside every window, a last odd row or column, have dz = 0). */
static inline void window_dz(float dz[4][LANES], const float *const px[4], const float *gq, const float *a,
                             const float *sh)
{
#pragma omp simd
    for (int l = 0; l < LANES; l++) {
        const float g = 0.0f + gq[l] / 4.0f;
        for (int q = 0; q < 4; q++)
            dz[q][l] = px[q][l] * a[l] + sh[l] > 0.0f ? g : 0.0f;
    }
}

static inline void window_ptrs(const float *px[4], const float *xb, int oy, int ox, int w)
{
    px[0] = xb + ((size_t)(2 * oy) * w + 2 * ox) * LANES;
    px[1] = px[0] + LANES;
    px[2] = px[0] + (size_t)w * LANES;
    px[3] = px[2] + LANES;
}

int relate_bn16_relu_pool2_backward_train(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                          const float *saved_mean, const float *saved_invstd, const float *gamma,
                                          const float *beta, int n, int c, int h, int w, bool dx_store)
{
    if (c % LANES)
        return -1;
    if (!dx && !dgamma && !dbeta)
        return 0;
    const int hw = h * w, ho = h / 2, wo = w / 2, nb = c / LANES;
    double *part;
    float *coef;
    if (backward_scratch(c, 5, &part, &coef) != 0)
        return -1;
    double *part2 = part + (size_t)SUM_CHUNKS * c;
    float *alpha = coef, *shift = coef + c, *gm = coef + 2 * (size_t)c, *k = coef + 3 * (size_t)c,
          *sc = coef + 4 * (size_t)c;
    coefficients(alpha, shift, saved_mean, saved_invstd, gamma, beta, c);
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)n * c * hw >= BN_PAR_MIN)
    for (int cb = 0; cb < nb; cb++)
        for (int j = 0; j < SUM_CHUNKS; j++) {
            sum16 s = {{{0}}}, dp = {{{0}}};
            const float *a = alpha + (size_t)cb * LANES, *sh = shift + (size_t)cb * LANES;
            bp_v8sf mu[2];
            load16(mu, saved_mean + (size_t)cb * LANES);
            for (int i = chunk_begin(n, j); i < chunk_begin(n, j + 1); i++) {
                const float *xb = block_of(x, i, nb, cb, hw), *gb = dy + (((size_t)i * nb + cb) * ho * wo) * LANES;
                for (int oy = 0; oy < ho; oy++)
                    for (int ox = 0; ox < wo; ox++) {
                        const float *px[4];
                        float dz[4][LANES];
                        window_ptrs(px, xb, oy, ox, w);
                        window_dz(dz, px, gb + ((size_t)oy * wo + ox) * LANES, a, sh);
                        for (int q = 0; q < 4; q++) {
                            bp_v8sf g[2], xv[2], xm[2];
                            load16(g, dz[q]);
                            load16(xv, px[q]);
                            for (int e = 0; e < 2; e++)
                                xm[e] = xv[e] - mu[e];
                            add16(&s, g);
                            mul_add16(&dp, xm, g);
                        }
                    }
            }
            memcpy(part + (size_t)j * c + (size_t)cb * LANES, s.q, sizeof s.q);
            memcpy(part2 + (size_t)j * c + (size_t)cb * LANES, dp.q, sizeof dp.q);
        }
    grad_coefficients(part, n, c, hw, saved_invstd, gamma, dgamma, dbeta, gm, k, sc);
    if (dx) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)n * c * hw >= BN_PAR_MIN)
        for (int i = 0; i < n; i++)
            for (int cb = 0; cb < nb; cb++) {
                const float *xb = block_of(x, i, nb, cb, hw), *gb = dy + (((size_t)i * nb + cb) * ho * wo) * LANES;
                const float *a = alpha + (size_t)cb * LANES, *sh = shift + (size_t)cb * LANES,
                            *mu = saved_mean + (size_t)cb * LANES, *g0 = gm + (size_t)cb * LANES,
                            *k0 = k + (size_t)cb * LANES, *s0 = sc + (size_t)cb * LANES;
                float *db = dx + (((size_t)i * nb + cb) * hw) * LANES;
                for (int oy = 0; oy < ho; oy++)
                    for (int ox = 0; ox < wo; ox++) {
                        const float *px[4];
                        float dz[4][LANES];
                        window_ptrs(px, xb, oy, ox, w);
                        window_dz(dz, px, gb + ((size_t)oy * wo + ox) * LANES, a, sh);
                        for (int q = 0; q < 4; q++) {
                            float *dq = db + (px[q] - xb);
#pragma omp simd
                            for (int l = 0; l < LANES; l++) {
                                const float v = ((dz[q][l] - g0[l]) - (px[q][l] - mu[l]) * k0[l]) * s0[l];
                                dq[l] = dx_store ? v : dq[l] + v;
                            }
                        }
                    }
                /* A last odd row or column lies outside every window: dz = 0 there. */
                for (int iy = 0; iy < h; iy++)
                    for (int ix = iy < 2 * ho ? 2 * wo : 0; ix < w; ix++) {
                        const size_t q = ((size_t)iy * w + ix) * LANES;
#pragma omp simd
                        for (int l = 0; l < LANES; l++) {
                            const float v = ((0.0f - g0[l]) - (xb[q + l] - mu[l]) * k0[l]) * s0[l];
                            db[q + l] = dx_store ? v : db[q + l] + v;
                        }
                    }
            }
    }
    free(part);
    free(coef);
    return 0;
}
