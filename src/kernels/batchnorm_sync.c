/* batchnorm_sync.c: batch norm with its statistics reduced across processes (SyncBatchNorm),
 * through a caller's reduction function (the MPI all-reduce in training). */
#include "kernels/batchnorm_planes.h"

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
