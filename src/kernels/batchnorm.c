/* batchnorm.c: BatchNorm1d/2d forward (train and eval) and backward on x viewed as [n, c, hw].
 * Not the module: momentum/eps policy, parameter storage and the m == 1 check belong to callers.
 * The fusion with ReLU and 2x2 average pooling is batchnorm_pool.c; the synchronised (multi-
 * process) kernels are batchnorm_sync.c; the loops all three share, batchnorm_planes.h. */
#include "kernels/batchnorm_planes.h"

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
    const bn_coef co = {saved_mean, saved_invstd, NULL, 0.0f, gamma, beta};
#pragma omp parallel if (total >= BN_PAR_MIN)
    {
        int c0, c1;
        my_channels(c, &c0, &c1);
        for (int b0 = c0; b0 < c1; b0 += BN_BLOCK) {
            const int b1 = b0 + BN_BLOCK < c1 ? b0 + BN_BLOCK : c1;
            double mean[BN_BLOCK], v[BN_BLOCK];
            range_stats(x, n, c, hw, b0, b1, mean, v);
            for (int ch = b0; ch < b1; ch++)
                relate_bn_finish_channel(mean[ch - b0], v[ch - b0], m, ch, saved_mean, saved_invstd, running_mean,
                                         running_var, momentum, eps);
            range_affine(y, x, n, c, hw, b0, b1, &co, ep);
        }
    }
}

void relate_batchnorm_apply_saved(float *y, const float *x, const float *saved_mean, const float *saved_invstd,
                                  const float *gamma, const float *beta, int n, int c, int hw,
                                  const relate_bn_epilogue *ep)
{
    const bn_coef co = {saved_mean, saved_invstd, NULL, 0.0f, gamma, beta};
#pragma omp parallel if ((size_t)n * c * hw >= BN_PAR_MIN)
    {
        int c0, c1;
        my_channels(c, &c0, &c1);
        range_affine(y, x, n, c, hw, c0, c1, &co, ep);
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
    const bn_coef co = {running_mean, NULL, running_var, eps, gamma, beta};
#pragma omp parallel if (total >= BN_PAR_MIN)
    {
        int c0, c1;
        my_channels(c, &c0, &c1);
        range_affine(y, x, n, c, hw, c0, c1, &co, ep);
    }
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
#pragma omp parallel if (total >= BN_PAR_MIN)
    {
        int c0, c1;
        my_channels(c, &c0, &c1);
        for (int b0 = c0; b0 < c1; b0 += BN_BLOCK) {
            const int b1 = b0 + BN_BLOCK < c1 ? b0 + BN_BLOCK : c1, bw = b1 - b0;
            const size_t blk = (size_t)bw * hw, next = (size_t)c * hw;
            double s[BN_BLOCK], dp[BN_BLOCK];
            for (int k = 0; k < bw; k++)
                s[k] = dp[k] = 0;
            for (int i = 0; i < n; i++) {
                const size_t boff = ((size_t)i * c + b0) * hw;
                /* Written out: through a helper that tests its pointers for NULL, gcc 12 dropped
                 * every prefetch of this loop (objdump; see prefetch_plane). */
                if (i + 1 < n) {
                    prefetch_block(x + boff + next, blk);
                    prefetch_block(dy + boff + next, blk);
                    if (relu_y)
                        prefetch_block(relu_y + boff + next, blk);
                }
                for (int k = 0; k < bw; k++) {
                    const size_t off = boff + (size_t)k * hw;
                    plane_grad_sums(&s[k], &dp[k], dy + off, relu_y ? relu_y + off : NULL, x + off,
                                    saved_mean[b0 + k], hw);
                }
            }
            float gm[BN_BLOCK], k2[BN_BLOCK], sc[BN_BLOCK];
            for (int k = 0; k < bw; k++)
                backward_coefficients(s[k], dp[k], m, b0 + k, saved_invstd, gamma, dgamma, dbeta, &gm[k], &k2[k],
                                      &sc[k]);
            if (!dx && !dresidual)
                continue;
            for (int i = 0; i < n; i++) {
                const size_t boff = ((size_t)i * c + b0) * hw;
                if (i + 1 < n) {
                    if (dx)
                        prefetch_block(x + boff + next, blk);
                    prefetch_block(dy + boff + next, blk);
                    if (relu_y)
                        prefetch_block(relu_y + boff + next, blk);
                }
                for (int k = 0; k < bw; k++) {
                    const size_t off = boff + (size_t)k * hw;
                    const float *gr = dy + off, *yr = relu_y ? relu_y + off : NULL;
                    if (dresidual)
                        plane_dresidual(dresidual + off, gr, yr, hw, store_dres);
                    if (dx)
                        plane_dx(dx + off, gr, yr, x + off, saved_mean[b0 + k], gm[k], k2[k], sc[k], hw, store_dx);
                }
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
