/* batchnorm_pool.c: BN + ReLU + AvgPool2d(2, 2), conv4's block tail in one pass (training
 * mode): y = avgpool2x2(relu(bn(x))), forward and backward. The full-size
 * activation is never stored; the backward recomputes the ReLU decision from x and the saved
 * statistics with the forward's own expression (x * alpha + shift > 0), so gradients equal those of
 * the composed ops. Floor mode: a last odd row or column takes part in the statistics only. */
#include "kernels/batchnorm_planes.h"

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
#pragma omp parallel if ((size_t)n * c * hw >= BN_PAR_MIN) reduction(| : failed)
    {
        int c0, c1;
        my_channels(c, &c0, &c1);
        const int cw = c1 - c0;
        /* Per channel: mean and sum of squares (double), alpha and shift (float); then two rows
         * normalised contiguously (vectorised) and pooled from that L1-resident copy. */
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
                alpha[k] = saved_invstd[ch] * gamma_of(gamma, ch);
                shift[k] = beta_of(beta, ch) - saved_mean[ch] * alpha[k];
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
#pragma omp parallel if ((size_t)n * c * hw >= BN_PAR_MIN) reduction(| : failed)
    {
        int c0, c1;
        my_channels(c, &c0, &c1);
        const int cw = c1 - c0;
        /* Per channel: sum(dz) and sum((x - mean) dz) (double), then alpha, shift, gm, k and sc
         * (float); dz of one plane and one spread row of the pooled gradient. */
        double *s = malloc((2 * (size_t)cw) * sizeof(double) + (5 * (size_t)cw + (size_t)hw + (size_t)w) * sizeof(float));
        if (!s) {
            failed = cw > 0;
        } else if (cw > 0) {
            double *dp = s + cw;
            float *alpha = (float *)(dp + cw), *shift = alpha + cw, *gm = shift + cw, *kk = gm + cw, *sc = kk + cw,
                  *dz = sc + cw;
            for (int k = 0; k < cw; k++) {
                const int ch = c0 + k;
                s[k] = dp[k] = 0;
                alpha[k] = saved_invstd[ch] * gamma_of(gamma, ch);
                shift[k] = beta_of(beta, ch) - saved_mean[ch] * alpha[k];
            }
            for (int i = 0; i < n; i++) {
                const float *xb = x + ((size_t)i * c + c0) * hw;
                if (i + 1 < n)
                    prefetch_block(xb + (size_t)c * hw, (size_t)cw * hw);
                for (int k = 0; k < cw; k++) {
                    const float *xr = xb + (size_t)k * hw;
                    pool2_plane_grad(dz, dz + hw, xr, dy + ((size_t)i * c + c0 + k) * ho * wo, alpha[k], shift[k], h, w);
                    plane_dz_sums(&s[k], &dp[k], dz, xr, saved_mean[c0 + k], hw);
                }
            }
            for (int k = 0; k < cw; k++) {
                const int ch = c0 + k;
                const double inv = saved_invstd[ch];
                if (dgamma)
                    dgamma[ch] += (float)(dp[k] * inv);
                if (dbeta)
                    dbeta[ch] += (float)s[k];
                gm[k] = (float)(s[k] / m);
                kk[k] = (float)(dp[k] * inv * inv / m);
                sc[k] = saved_invstd[ch] * gamma_of(gamma, ch);
            }
            for (int i = 0; dx && i < n; i++) {
                const size_t boff = ((size_t)i * c + c0) * hw;
                if (i + 1 < n)
                    prefetch_block(x + boff + (size_t)c * hw, (size_t)cw * hw);
                for (int k = 0; k < cw; k++) {
                    const float *xr = x + boff + (size_t)k * hw;
                    float *dr = dx + boff + (size_t)k * hw;
                    const float mean = saved_mean[c0 + k], g_m = gm[k], kq = kk[k], scq = sc[k];
                    pool2_plane_grad(dz, dz + hw, xr, dy + ((size_t)i * c + c0 + k) * ho * wo, alpha[k], shift[k], h, w);
                    if (dx_store) { /* a fresh buffer (relate_grad_to_write): not read */
#pragma omp simd
                        for (int j = 0; j < hw; j++)
                            dr[j] = ((dz[j] - g_m) - (xr[j] - mean) * kq) * scq;
                    } else {
#pragma omp simd
                        for (int j = 0; j < hw; j++)
                            dr[j] += ((dz[j] - g_m) - (xr[j] - mean) * kq) * scq;
                    }
                }
            }
        }
        free(s);
    }
    return failed ? -1 : 0;
}
