/* contrastive.c: the SimCLR loss of the reference (spec 3.2, A10), forward and backward, fused:
 * cosine matrix, exp(./tau), column sums minus exp(1/tau), -log of the mean ratio.
 * Not NT-Xent in its usual mean-of-logs form, and not a general similarity kernel.
 *
 * The two products (z z^T forward, (dG + dG^T) z backward) are OpenBLAS sgemm calls, as PyTorch's;
 * the rest is plain loops over the [2B, 2B] matrix (256 x 256 at B = 128), rows reduced serially,
 * so results are deterministic for a given thread count. The tests' oracle is a double-precision
 * loop version of the formula (tests/baselines_sr/test_contrastive_ops.c). */
#include <math.h>

#include "kernels/kernels.h"

#define CL_PAR_MIN 16384

/* partner(r): r+1 for even r, r-1 for odd r (rows 2n and 2n+1 are the two views of image n). */
static inline int partner(int r) { return r ^ 1; }

/* z [n, c] -> s [n, n] cosine matrix, e [n, n] = exp(s / tau), norms [n], den [n]; returns the
 * loss. As the reference in float32:
 *   n = torch.norm(z, dim=1, keepdim=True); s = (z @ z.t()) / (n * n.t()).clamp(min=eps)
 *   e = torch.exp(s / tau); q = e[partner].diag() / (e.sum(0) - torch.exp(torch.tensor(1 / tau)))
 *   loss = -torch.log(q.mean()) */
float relate_simclr_loss_forward(float *s, float *e, float *norms, float *den, const float *z, int n, int c,
                                 float tau, float eps)
{
    const float self_term = expf((float)(1.0 / (double)tau));
    for (int i = 0; i < n; i++) {
        const float *zr = z + (size_t)i * c;
        double acc = 0;
        for (int j = 0; j < c; j++)
            acc += (double)zr[j] * zr[j];
        norms[i] = (float)sqrt(acc);
    }
    relate_matmul_forward(s, z, z, n, n, c, 0, 1); /* G = z z^T (sgemm, as torch's x @ x.t()) */
#pragma omp parallel for schedule(static) if ((size_t)n * n >= CL_PAR_MIN)
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++) {
            float d = norms[a] * norms[b];
            d = d > eps ? d : eps; /* clamp(min=eps) */
            const float sv = s[(size_t)a * n + b] / d;
            s[(size_t)a * n + b] = sv;
            e[(size_t)a * n + b] = expf(sv / tau);
        }
    double qsum = 0;
    for (int r = 0; r < n; r++) {
        double col = 0;
        for (int a = 0; a < n; a++)
            col += e[(size_t)a * n + r];
        den[r] = (float)col - self_term;
        qsum += (double)(e[(size_t)partner(r) * n + r] / den[r]);
    }
    return (float)-log(qsum / n);
}

/* dz [n, c] += gy * dL/dz. scratch [2 n n] floats. With q_r = E[p(r), r] / den_r and
 * M = mean_r q_r:  dL/dE[a, r] = -(1 / (n M)) ([a == p(r)] - q_r) / den_r;  dS = dE * E / tau;
 * S = G / D with G = z z^T and D = max(|z_a| |z_b|, eps): dG = dS / D, dD = -dS S / D (zero
 * where the clamp holds, as PyTorch's clamp_min backward); dz = (dG + dG^T) z + (dnorm / |z|) z. */
void relate_simclr_loss_backward(float *dz, float gy, const float *s, const float *e, const float *norms,
                                 const float *den, const float *z, int n, int c, float tau, float eps,
                                 float *scratch)
{
    if (!dz)
        return;
    float *gg = scratch, *gd = scratch + (size_t)n * n;
    double qsum = 0;
    for (int r = 0; r < n; r++)
        qsum += (double)(e[(size_t)partner(r) * n + r] / den[r]);
    const double gq = -(double)gy / qsum; /* d(-log(qsum / n)) / dq_r */
#pragma omp parallel for schedule(static) if ((size_t)n * n >= CL_PAR_MIN)
    for (int a = 0; a < n; a++)
        for (int r = 0; r < n; r++) {
            const size_t ar = (size_t)a * n + r;
            const double q = (double)(e[(size_t)partner(r) * n + r] / den[r]);
            const double ge = gq * ((a == partner(r) ? 1.0 : 0.0) - q) / den[r];
            const double gs = ge * e[ar] / tau;
            const float d = norms[a] * norms[r];
            if (d >= eps) {
                gg[ar] = (float)(gs / d);
                gd[ar] = (float)(-gs * s[ar] / d);
            } else {
                gg[ar] = (float)(gs / eps);
                gd[ar] = 0.0f;
            }
        }
    /* dG + dG^T in place (symmetric), then dz += (dG + dG^T) z by sgemm. */
    for (int a = 0; a < n; a++)
        for (int b = a; b < n; b++) {
            const float v = gg[(size_t)a * n + b] + gg[(size_t)b * n + a];
            gg[(size_t)a * n + b] = gg[(size_t)b * n + a] = v;
        }
    relate_matmul_backward(dz, NULL, gg, z, z, n, n, c, 0, 1);
#pragma omp parallel for schedule(static) if ((size_t)n * n >= CL_PAR_MIN)
    for (int a = 0; a < n; a++) {
        float *da = dz + (size_t)a * c;
        const float *za = z + (size_t)a * c;
        double gnorm = 0;
        for (int b = 0; b < n; b++)
            gnorm += ((double)gd[(size_t)a * n + b] + gd[(size_t)b * n + a]) * norms[b];
        /* torch.norm's backward is zero at a zero norm. */
        const float kself = norms[a] > 0 ? (float)(gnorm / norms[a]) : 0.0f;
        for (int j = 0; j < c; j++)
            da[j] += kself * za[j];
    }
}
