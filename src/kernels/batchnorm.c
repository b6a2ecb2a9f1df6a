/* batchnorm.c: BatchNorm1d/2d forward (train and eval) and backward on x viewed as [n, c, hw].
 * Not the module: momentum/eps policy, parameter storage and the m == 1 check belong to callers. */
#include <math.h>
#include <stdlib.h>

#include "kernels/kernels.h"

/* BatchNorm1d (hw == 1) keeps channels contiguous in a row; walking one channel at a time would
 * stride through memory, so that layout is processed in blocks of channels instead. */
#define BN_BLOCK 64

/* Per-channel work is independent and serial inside a channel, so any thread count gives the
 * same bits. Parallelising pays only once the tensor is not tiny. */
#define BN_PAR_MIN 32768

static float gamma_of(const float *gamma, int ch)
{
    return gamma ? gamma[ch] : 1.0f;
}

static float beta_of(const float *beta, int ch)
{
    return beta ? beta[ch] : 0.0f;
}

/* Shared by both layouts and by the fused relation head (relation_head.c). */
void relate_bn_finish_channel(double mean, double var_sum, double m, int ch, float *saved_mean,
                              float *saved_invstd, float *running_mean, float *running_var, float momentum,
                              float eps)
{
    double var = var_sum / m;
    saved_mean[ch] = (float)mean;
    saved_invstd[ch] = (float)(1.0 / sqrt(var + (double)eps));
    if (running_mean)
        running_mean[ch] = (float)((double)momentum * mean + (1.0 - (double)momentum) * running_mean[ch]);
    if (running_var) {
        double unbiased = m > 1 ? var_sum / (m - 1) : var; /* m == 1 is rejected upstream */
        running_var[ch] =
            (float)((double)momentum * unbiased + (1.0 - (double)momentum) * running_var[ch]);
    }
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

/* As PyTorch's CPU kernel: y = x * alpha + beta', alpha = invstd * gamma, beta' = beta - mean * alpha,
 * all in float; then the optional epilogue while the row is in cache. */
static void affine_channel(float *y, const float *x, int n, int c, int hw, int ch, float alpha,
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

/* BatchNorm1d rows are [n, c]: the epilogue runs as one pass over the whole output. */
static void epilogue_all(float *y, size_t total, const relate_bn_epilogue *ep)
{
    if (!ep)
        return;
#pragma omp parallel for schedule(static) if (total >= BN_PAR_MIN)
    for (size_t r = 0; r < total; r += 4096) {
        const int len = total - r < 4096 ? (int)(total - r) : 4096;
        epilogue_row(y + r, ep->residual ? ep->residual + r : NULL, ep->relu, len);
    }
}

/* Sum of one [N, C, HW] channel over n images, in double. */
static double channel_sum(const float *x, int n, int c, int hw, int ch)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        const float *xr = x + ((size_t)i * c + ch) * hw;
        if (i + 1 < n)
            prefetch_plane(xr + (size_t)c * hw, hw);
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < hw; j++)
            s += xr[j];
    }
    return s;
}

/* Sum of squared deviations of one channel from `mean`, in double. */
static double channel_dev2(const float *x, int n, int c, int hw, int ch, double mean)
{
    double v = 0;
    for (int i = 0; i < n; i++) {
        const float *xr = x + ((size_t)i * c + ch) * hw;
        if (i + 1 < n)
            prefetch_plane(xr + (size_t)c * hw, hw);
#pragma omp simd reduction(+ : v)
        for (int j = 0; j < hw; j++) {
            double dlt = xr[j] - mean;
            v += dlt * dlt;
        }
    }
    return v;
}

/* Mean and sum of squared deviations of one channel. Two passes: the one-pass E[x^2] - E[x]^2
 * cancels badly for large means. The synchronised kernels run the same two passes with a
 * reduction between them, so one replica reproduces these bits. */
static void channel_stats(const float *x, int n, int c, int hw, int ch, double *mean_out, double *var_sum_out)
{
    const double mean = channel_sum(x, n, c, hw, ch) / ((double)n * hw);
    *mean_out = mean;
    *var_sum_out = channel_dev2(x, n, c, hw, ch, mean);
}

void relate_batchnorm_forward_train(float *y, float *saved_mean, float *saved_invstd,
                                    const float *x, const float *gamma, const float *beta,
                                    float *running_mean, float *running_var,
                                    int n, int c, int hw, float momentum, float eps)
{
    relate_batchnorm_forward_train_ep(y, saved_mean, saved_invstd, x, gamma, beta, running_mean, running_var,
                                      n, c, hw, momentum, eps, NULL);
}

void relate_batchnorm_forward_train_ep(float *y, float *saved_mean, float *saved_invstd,
                                       const float *x, const float *gamma, const float *beta,
                                       float *running_mean, float *running_var,
                                       int n, int c, int hw, float momentum, float eps,
                                       const relate_bn_epilogue *ep)
{
    const double m = (double)n * hw;
    const size_t total = (size_t)n * c * hw;
    if (hw == 1) {
        const int nb = (c + BN_BLOCK - 1) / BN_BLOCK;
#pragma omp parallel for schedule(static) if (total >= BN_PAR_MIN)
        for (int b = 0; b < nb; b++) {
            const int c0 = b * BN_BLOCK, cw = c - c0 < BN_BLOCK ? c - c0 : BN_BLOCK;
            double s[BN_BLOCK], v[BN_BLOCK];
            for (int j = 0; j < cw; j++)
                s[j] = v[j] = 0;
            for (int i = 0; i < n; i++) {
                const float *xr = x + (size_t)i * c + c0;
                for (int j = 0; j < cw; j++)
                    s[j] += xr[j];
            }
            for (int j = 0; j < cw; j++)
                s[j] /= m;
            for (int i = 0; i < n; i++) {
                const float *xr = x + (size_t)i * c + c0;
                for (int j = 0; j < cw; j++) {
                    double dlt = xr[j] - s[j];
                    v[j] += dlt * dlt;
                }
            }
            float alpha[BN_BLOCK], shift[BN_BLOCK];
            for (int j = 0; j < cw; j++) {
                relate_bn_finish_channel(s[j], v[j], m, c0 + j, saved_mean, saved_invstd, running_mean,
                             running_var, momentum, eps);
                alpha[j] = saved_invstd[c0 + j] * gamma_of(gamma, c0 + j);
                shift[j] = beta_of(beta, c0 + j) - saved_mean[c0 + j] * alpha[j];
            }
            for (int i = 0; i < n; i++) {
                const float *xr = x + (size_t)i * c + c0;
                float *yr = y + (size_t)i * c + c0;
                for (int j = 0; j < cw; j++)
                    yr[j] = xr[j] * alpha[j] + shift[j];
            }
        }
        epilogue_all(y, total, ep);
        return;
    }
#pragma omp parallel for schedule(static) if (total >= BN_PAR_MIN)
    for (int ch = 0; ch < c; ch++) {
        double mean, v;
        channel_stats(x, n, c, hw, ch, &mean, &v);
        relate_bn_finish_channel(mean, v, m, ch, saved_mean, saved_invstd, running_mean, running_var, momentum,
                     eps);
        float alpha = saved_invstd[ch] * gamma_of(gamma, ch);
        affine_channel(y, x, n, c, hw, ch, alpha, beta_of(beta, ch) - saved_mean[ch] * alpha, ep);
    }
}

void relate_batchnorm_apply_saved(float *y, const float *x, const float *saved_mean, const float *saved_invstd,
                                  const float *gamma, const float *beta, int n, int c, int hw,
                                  const relate_bn_epilogue *ep)
{
#pragma omp parallel for schedule(static) if ((size_t)n * c * hw >= BN_PAR_MIN)
    for (int ch = 0; ch < c; ch++) {
        float alpha = saved_invstd[ch] * gamma_of(gamma, ch);
        affine_channel(y, x, n, c, hw, ch, alpha, beta_of(beta, ch) - saved_mean[ch] * alpha, ep);
    }
}

void relate_batchnorm_forward_eval(float *y, const float *x, const float *gamma, const float *beta,
                                   const float *running_mean, const float *running_var,
                                   int n, int c, int hw, float eps)
{
    relate_batchnorm_forward_eval_ep(y, x, gamma, beta, running_mean, running_var, n, c, hw, eps, NULL);
}

void relate_batchnorm_forward_eval_ep(float *y, const float *x, const float *gamma, const float *beta,
                                      const float *running_mean, const float *running_var,
                                      int n, int c, int hw, float eps, const relate_bn_epilogue *ep)
{
    const size_t total = (size_t)n * c * hw;
    if (hw == 1) {
        /* Row-major sweep; coefficients are recomputed per element but stay float-identical. */
#pragma omp parallel for schedule(static) if (total >= BN_PAR_MIN)
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < c; ch++) {
                float alpha = 1.0f / sqrtf(running_var[ch] + eps) * gamma_of(gamma, ch);
                float shift = beta_of(beta, ch) - running_mean[ch] * alpha;
                y[(size_t)i * c + ch] = x[(size_t)i * c + ch] * alpha + shift;
            }
        epilogue_all(y, total, ep);
        return;
    }
#pragma omp parallel for schedule(static) if (total >= BN_PAR_MIN)
    for (int ch = 0; ch < c; ch++) {
        float alpha = 1.0f / sqrtf(running_var[ch] + eps) * gamma_of(gamma, ch);
        affine_channel(y, x, n, c, hw, ch, alpha, beta_of(beta, ch) - running_mean[ch] * alpha, ep);
    }
}

/* sum(dz) and sum((x - mean) * dz) of one channel, in double, where dz = dy, or dy masked by
 * y > 0 when relu_y is given (the fused epilogue's ReLU, recomputed instead of stored). */
static void channel_sums(const float *dy, const float *relu_y, const float *x, float mean, int n, int c, int hw,
                         int ch, double *sum, double *dotp)
{
    double s = 0, dp = 0;
    for (int i = 0; i < n; i++) {
        const size_t off = ((size_t)i * c + ch) * hw;
        const float *xr = x + off, *gr = dy + off, *yr = relu_y ? relu_y + off : NULL;
        /* The same three prefetches as the dx loop below: a shared helper that tests relu_y made
         * gcc 12 drop all of them (see prefetch_plane). */
        if (i + 1 < n) {
            const size_t next = (size_t)c * hw;
            prefetch_plane(xr + next, hw);
            prefetch_plane(gr + next, hw);
            if (yr)
                prefetch_plane(yr + next, hw);
        }
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
    }
    *sum = s;
    *dotp = dp;
}

void relate_batchnorm_backward_train(float *dx, float *dgamma, float *dbeta, const float *dy,
                                     const float *x, const float *saved_mean,
                                     const float *saved_invstd, const float *gamma,
                                     int n, int c, int hw)
{
    relate_batchnorm_backward_train_ep(dx, dgamma, dbeta, dy, x, saved_mean, saved_invstd, gamma, n, c, hw, NULL,
                                       NULL, 0);
}

void relate_batchnorm_backward_train_ep(float *dx, float *dgamma, float *dbeta, const float *dy,
                                        const float *x, const float *saved_mean,
                                        const float *saved_invstd, const float *gamma,
                                        int n, int c, int hw, const float *relu_y, float *dresidual,
                                        unsigned store)
{
    const bool store_dx = store & RELATE_BN_STORE_DX, store_dres = store & RELATE_BN_STORE_DRESIDUAL;
    if (hw == 1 && (relu_y || dresidual))
        return; /* the op materialises dz for BatchNorm1d and calls the plain version */
    if (!dx && !dgamma && !dbeta && !dresidual)
        return;
    const double m = (double)n * hw;
    const size_t total = (size_t)n * c * hw;
    if (hw == 1) {
        const int nb = (c + BN_BLOCK - 1) / BN_BLOCK;
#pragma omp parallel for schedule(static) if (total >= BN_PAR_MIN)
        for (int b = 0; b < nb; b++) {
            const int c0 = b * BN_BLOCK, cw = c - c0 < BN_BLOCK ? c - c0 : BN_BLOCK;
            double s[BN_BLOCK], dp[BN_BLOCK];
            for (int j = 0; j < cw; j++)
                s[j] = dp[j] = 0;
            for (int i = 0; i < n; i++) {
                const float *xr = x + (size_t)i * c + c0, *gr = dy + (size_t)i * c + c0;
                for (int j = 0; j < cw; j++) {
                    s[j] += gr[j];
                    dp[j] += (double)(xr[j] - saved_mean[c0 + j]) * gr[j];
                }
            }
            float gm[BN_BLOCK], k[BN_BLOCK], sc[BN_BLOCK];
            for (int j = 0; j < cw; j++) {
                const double inv = saved_invstd[c0 + j];
                if (dgamma)
                    dgamma[c0 + j] += (float)(dp[j] * inv);
                if (dbeta)
                    dbeta[c0 + j] += (float)s[j];
                gm[j] = (float)(s[j] / m);
                k[j] = (float)(dp[j] * inv * inv / m);
                sc[j] = saved_invstd[c0 + j] * gamma_of(gamma, c0 + j);
            }
            if (!dx)
                continue;
            for (int i = 0; i < n; i++) {
                const float *xr = x + (size_t)i * c + c0, *gr = dy + (size_t)i * c + c0;
                float *dr = dx + (size_t)i * c + c0;
                for (int j = 0; j < cw; j++)
                    dr[j] = (store_dx ? 0.0f : dr[j]) + ((gr[j] - gm[j]) - (xr[j] - saved_mean[c0 + j]) * k[j]) * sc[j];
            }
        }
        return;
    }
#pragma omp parallel for schedule(static) if (total >= BN_PAR_MIN)
    for (int ch = 0; ch < c; ch++) {
        const float mean = saved_mean[ch];
        const double inv = saved_invstd[ch];
        double s, dp;
        channel_sums(dy, relu_y, x, mean, n, c, hw, ch, &s, &dp);
        if (dgamma)
            dgamma[ch] += (float)(dp * inv);
        if (dbeta)
            dbeta[ch] += (float)s;
        if (dresidual)
            for (int i = 0; i < n; i++) {
                const size_t off = ((size_t)i * c + ch) * hw;
                const float *gr = dy + off, *yr = relu_y ? relu_y + off : NULL;
                float *rr = dresidual + off;
                if (store_dres) {
#pragma omp simd
                    for (int j = 0; j < hw; j++)
                        rr[j] = yr ? (yr[j] > 0.0f ? gr[j] : 0.0f) : gr[j];
                } else {
#pragma omp simd
                    for (int j = 0; j < hw; j++)
                        rr[j] += yr ? (yr[j] > 0.0f ? gr[j] : 0.0f) : gr[j];
                }
            }
        if (!dx)
            continue;
        /* dx = gamma*invstd/m * (m*dy - sum(dy) - xhat*sum(dy*xhat)), regrouped as PyTorch does:
         * ((dy - sum/m) - (x - mean) * dotp*invstd^2/m) * invstd*gamma. */
        const float gm = (float)(s / m), k = (float)(dp * inv * inv / m);
        const float sc = saved_invstd[ch] * gamma_of(gamma, ch);
        for (int i = 0; i < n; i++) {
            const size_t off = ((size_t)i * c + ch) * hw;
            const float *xr = x + off, *gr = dy + off, *yr = relu_y ? relu_y + off : NULL;
            float *dr = dx + off;
            if (i + 1 < n) {
                const size_t next = (size_t)c * hw;
                prefetch_plane(xr + next, hw);
                prefetch_plane(gr + next, hw);
                if (yr)
                    prefetch_plane(yr + next, hw);
            }
            /* Stored without reading dx when the caller's buffer is fresh (relate_grad_to_write). */
            if (yr && store_dx) {
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
            } else if (store_dx) {
#pragma omp simd
                for (int j = 0; j < hw; j++)
                    dr[j] = ((gr[j] - gm) - (xr[j] - mean) * k) * sc;
            } else {
#pragma omp simd
                for (int j = 0; j < hw; j++)
                    dr[j] += ((gr[j] - gm) - (xr[j] - mean) * k) * sc;
            }
        }
    }
}

void relate_batchnorm_backward_eval(float *dx, float *dgamma, float *dbeta, const float *dy,
                                    const float *x, const float *gamma,
                                    const float *running_mean, const float *running_var,
                                    int n, int c, int hw, float eps)
{
    if (!dx && !dgamma && !dbeta)
        return;
    const size_t total = (size_t)n * c * hw;
    /* Per-channel loop for both layouts: eval-mode BatchNorm1d backward is rare and small. */
#pragma omp parallel for schedule(static) if (total >= BN_PAR_MIN)
    for (int ch = 0; ch < c; ch++) {
        const float invstd = 1.0f / sqrtf(running_var[ch] + eps);
        if (dgamma || dbeta) {
            double s, dp;
            channel_sums(dy, NULL, x, running_mean[ch], n, c, hw, ch, &s, &dp);
            if (dgamma)
                dgamma[ch] += (float)(dp * invstd);
            if (dbeta)
                dbeta[ch] += (float)s;
        }
        if (!dx)
            continue;
        const float sc = invstd * gamma_of(gamma, ch);
        for (int i = 0; i < n; i++) {
            const float *gr = dy + ((size_t)i * c + ch) * hw;
            float *dr = dx + ((size_t)i * c + ch) * hw;
#pragma omp simd
            for (int j = 0; j < hw; j++)
                dr[j] += gr[j] * sc;
        }
    }
}

/* ------------------------------------------------------------------ BN + ReLU + AvgPool2d(2, 2)
 * conv4's block tail in one pass (training mode): y = avgpool2x2(relu(bn(x))). The full-size
 * activation is never stored; the backward recomputes the ReLU decision from x and the saved
 * statistics with the forward's own expression (x * alpha + shift > 0), so gradients equal those of
 * the composed ops. Floor mode: a last odd row or column takes part in the statistics only. */

static inline float relu_of(float v)
{
    return v > 0.0f ? v : (v != v ? v : 0.0f);
}

int relate_bn_relu_pool2_forward_train(float *y, float *saved_mean, float *saved_invstd, const float *x,
                                       const float *gamma, const float *beta, float *running_mean,
                                       float *running_var, int n, int c, int h, int w, float momentum, float eps)
{
    const int hw = h * w, ho = h / 2, wo = w / 2;
    const double m = (double)n * hw;
    int failed = 0;
#pragma omp parallel for schedule(static) if ((size_t)n * c * hw >= BN_PAR_MIN) reduction(| : failed)
    for (int ch = 0; ch < c; ch++) {
        double mean, v;
        channel_stats(x, n, c, hw, ch, &mean, &v);
        relate_bn_finish_channel(mean, v, m, ch, saved_mean, saved_invstd, running_mean, running_var, momentum,
                                 eps);
        const float alpha = saved_invstd[ch] * gamma_of(gamma, ch);
        const float shift = beta_of(beta, ch) - saved_mean[ch] * alpha;
        /* Rows are normalised contiguously (vectorised), then pooled from the L1-resident copy. */
        float *t0 = malloc(2 * (size_t)w * sizeof *t0);
        if (!t0) {
            failed = 1;
            continue;
        }
        float *t1 = t0 + w;
        for (int i = 0; i < n; i++) {
            const float *xp = x + ((size_t)i * c + ch) * hw;
            float *yp = y + ((size_t)i * c + ch) * ho * wo;
            if (i + 1 < n)
                prefetch_plane(xp + (size_t)c * hw, hw);
            for (int oy = 0; oy < ho; oy++) {
                const float *r0 = xp + (size_t)(2 * oy) * w, *r1 = r0 + w;
#pragma omp simd
                for (int ix = 0; ix < w; ix++) {
                    t0[ix] = relu_of(r0[ix] * alpha + shift);
                    t1[ix] = relu_of(r1[ix] * alpha + shift);
                }
                float *yr = yp + (size_t)oy * wo;
                for (int ox = 0; ox < wo; ox++)
                    yr[ox] = ((((0.0f + t0[2 * ox]) + t0[2 * ox + 1]) + t1[2 * ox]) + t1[2 * ox + 1]) / 4.0f;
            }
        }
        free(t0);
    }
    return failed ? -1 : 0;
}

/* dz of one plane: the pooled gradient spread over its window (/ 4, as AvgPool2d's backward),
 * where the recomputed batch-norm output is positive; 0 elsewhere and outside the windows.
 * ge [w] is scratch: one pooled row spread to input width, so the mask loop runs contiguously. */
static void pool2_plane_grad(float *dz, float *ge, const float *xp, const float *gp, float alpha, float shift,
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

int relate_bn_relu_pool2_backward_train(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                        const float *saved_mean, const float *saved_invstd, const float *gamma,
                                        const float *beta, int n, int c, int h, int w, bool dx_store)
{
    if (!dx && !dgamma && !dbeta)
        return 0;
    const int hw = h * w, ho = h / 2, wo = w / 2;
    const double m = (double)n * hw;
    int failed = 0;
#pragma omp parallel for schedule(static) if ((size_t)n * c * hw >= BN_PAR_MIN) reduction(| : failed)
    for (int ch = 0; ch < c; ch++) {
        float *dz = malloc(((size_t)hw + (size_t)w) * sizeof *dz);
        if (!dz) {
            failed = 1;
            continue;
        }
        const float mean = saved_mean[ch];
        const double inv = saved_invstd[ch];
        const float alpha = saved_invstd[ch] * gamma_of(gamma, ch);
        const float shift = beta_of(beta, ch) - saved_mean[ch] * alpha;
        double s = 0, dp = 0;
        for (int i = 0; i < n; i++) {
            const float *xr = x + ((size_t)i * c + ch) * hw;
            if (i + 1 < n)
                prefetch_plane(xr + (size_t)c * hw, hw);
            pool2_plane_grad(dz, dz + hw, xr, dy + ((size_t)i * c + ch) * ho * wo, alpha, shift, h, w);
#pragma omp simd reduction(+ : s, dp)
            for (int j = 0; j < hw; j++) {
                s += dz[j];
                dp += (double)(xr[j] - mean) * dz[j];
            }
        }
        if (dgamma)
            dgamma[ch] += (float)(dp * inv);
        if (dbeta)
            dbeta[ch] += (float)s;
        if (dx) {
            const float gm = (float)(s / m), k = (float)(dp * inv * inv / m);
            const float sc = saved_invstd[ch] * gamma_of(gamma, ch);
            for (int i = 0; i < n; i++) {
                const size_t off = ((size_t)i * c + ch) * hw;
                const float *xr = x + off;
                float *dr = dx + off;
                if (i + 1 < n)
                    prefetch_plane(xr + (size_t)c * hw, hw);
                pool2_plane_grad(dz, dz + hw, xr, dy + ((size_t)i * c + ch) * ho * wo, alpha, shift, h, w);
                if (dx_store) { /* a fresh buffer (relate_grad_to_write): not read */
#pragma omp simd
                    for (int j = 0; j < hw; j++)
                        dr[j] = ((dz[j] - gm) - (xr[j] - mean) * k) * sc;
                } else {
#pragma omp simd
                    for (int j = 0; j < hw; j++)
                        dr[j] += ((dz[j] - gm) - (xr[j] - mean) * k) * sc;
                }
            }
        }
        free(dz);
    }
    return failed ? -1 : 0;
}

/* ------------------------------------------------------------------ synchronised (issue 12) */
int relate_batchnorm_forward_train_sync(float *y, float *saved_mean, float *saved_invstd, const float *x,
                                        const float *gamma, const float *beta, float *running_mean,
                                        float *running_var, int n, int c, int hw, float momentum, float eps,
                                        const relate_bn_epilogue *ep, relate_bn_reduce_fn reduce, void *user)
{
    double *buf = malloc(((size_t)c + 1) * sizeof *buf), *mean = malloc(((size_t)c + 1) * sizeof *mean);
    int rc = -1;
    if (!buf || !mean)
        goto out;
    const size_t total = (size_t)n * c * hw;
#pragma omp parallel for schedule(static) if (total >= BN_PAR_MIN)
    for (int ch = 0; ch < c; ch++)
        buf[ch] = channel_sum(x, n, c, hw, ch);
    buf[c] = (double)n * hw;
    if (reduce(buf, (size_t)c + 1, user) != 0)
        goto out;
    const double m = buf[c];
    for (int ch = 0; ch < c; ch++)
        mean[ch] = buf[ch] / m;
#pragma omp parallel for schedule(static) if (total >= BN_PAR_MIN)
    for (int ch = 0; ch < c; ch++)
        buf[ch] = channel_dev2(x, n, c, hw, ch, mean[ch]);
    if (reduce(buf, (size_t)c, user) != 0)
        goto out;
#pragma omp parallel for schedule(static) if (total >= BN_PAR_MIN)
    for (int ch = 0; ch < c; ch++) {
        relate_bn_finish_channel(mean[ch], buf[ch], m, ch, saved_mean, saved_invstd, running_mean, running_var,
                                 momentum, eps);
        const float alpha = saved_invstd[ch] * gamma_of(gamma, ch);
        affine_channel(y, x, n, c, hw, ch, alpha, beta_of(beta, ch) - saved_mean[ch] * alpha, hw > 1 ? ep : NULL);
    }
    if (hw == 1)
        epilogue_all(y, total, ep);
    rc = 0;
out:
    free(buf);
    free(mean);
    return rc;
}

int relate_batchnorm_backward_train_sync(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                         const float *saved_mean, const float *saved_invstd, const float *gamma,
                                         int n, int c, int hw, const float *relu_y, float *dresidual,
                                         relate_bn_reduce_fn reduce, void *user)
{
    double *buf = malloc(((size_t)2 * c + 1) * sizeof *buf);
    if (!buf)
        return -1;
    const size_t total = (size_t)n * c * hw;
#pragma omp parallel for schedule(static) if (total >= BN_PAR_MIN)
    for (int ch = 0; ch < c; ch++) {
        double s, dp;
        channel_sums(dy, relu_y, x, saved_mean[ch], n, c, hw, ch, &s, &dp);
        buf[ch] = s;
        buf[c + ch] = dp;
        /* the parameters' gradients from this replica's images only: summed with the others' */
        if (dgamma)
            dgamma[ch] += (float)(dp * (double)saved_invstd[ch]);
        if (dbeta)
            dbeta[ch] += (float)s;
    }
    buf[2 * c] = (double)n * hw;
    if (reduce(buf, (size_t)2 * c + 1, user) != 0) {
        free(buf);
        return -1;
    }
    const double m = buf[2 * c];
#pragma omp parallel for schedule(static) if (total >= BN_PAR_MIN)
    for (int ch = 0; ch < c; ch++) {
        const float mean = saved_mean[ch];
        const double inv = saved_invstd[ch];
        const float gm = (float)(buf[ch] / m), k = (float)(buf[c + ch] * inv * inv / m);
        const float sc = saved_invstd[ch] * gamma_of(gamma, ch);
        for (int i = 0; i < n; i++) {
            const size_t off = ((size_t)i * c + ch) * hw;
            const float *xr = x + off, *gr = dy + off, *yr = relu_y ? relu_y + off : NULL;
            float *rr = dresidual ? dresidual + off : NULL;
            float *dr = dx ? dx + off : NULL;
            for (int j = 0; j < hw; j++) {
                const float g = yr ? (yr[j] > 0.0f ? gr[j] : 0.0f) : gr[j];
                if (rr)
                    rr[j] += g;
                if (dr)
                    dr[j] += ((g - gm) - (xr[j] - mean) * k) * sc;
            }
        }
    }
    free(buf);
    return 0;
}
