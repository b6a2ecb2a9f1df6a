/* softmax.c: row-wise log_softmax and L2 normalisation (F.normalize, p=2, dim=1), forward and backward.
 * Not softmax itself (callers exponentiate log_softmax) and not other norms or axes. */
#include <math.h>

#include "kernels/kernels.h"

/* Rows are independent and each is reduced serially, so threads never change the bits. */
#define SM_PAR_MIN 16384

void relate_log_softmax_forward(float *y, const float *x, int n, int c)
{
#pragma omp parallel for schedule(static) if ((size_t)n * c >= SM_PAR_MIN)
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * c;
        float *yr = y + (size_t)i * c;
        float mx = -INFINITY;
        for (int j = 0; j < c; j++)
            mx = xr[j] > mx || isnan(xr[j]) ? xr[j] : mx;
        double s = 0;
        for (int j = 0; j < c; j++)
            s += expf(xr[j] - mx);
        /* PyTorch's order: (x - max) - log(sum exp(x - max)). */
        const float lse = (float)log(s);
#pragma omp simd
        for (int j = 0; j < c; j++)
            yr[j] = (xr[j] - mx) - lse;
    }
}

void relate_log_softmax_backward(float *dx, const float *dy, const float *y, int n, int c)
{
    if (!dx)
        return;
#pragma omp parallel for schedule(static) if ((size_t)n * c >= SM_PAR_MIN)
    for (int i = 0; i < n; i++) {
        const float *gr = dy + (size_t)i * c, *yr = y + (size_t)i * c;
        float *dr = dx + (size_t)i * c;
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < c; j++)
            s += gr[j];
        const float sf = (float)s;
        for (int j = 0; j < c; j++)
            dr[j] += gr[j] - expf(yr[j]) * sf;
    }
}

void relate_l2_normalize_forward(float *y, float *norms, const float *x, int n, int c, float eps)
{
#pragma omp parallel for schedule(static) if ((size_t)n * c >= SM_PAR_MIN)
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * c;
        float *yr = y + (size_t)i * c;
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < c; j++)
            s += (double)xr[j] * xr[j];
        const float nrm = (float)sqrt(s);
        norms[i] = nrm;
        const float den = nrm > eps ? nrm : eps; /* clamp_min(eps) */
#pragma omp simd
        for (int j = 0; j < c; j++)
            yr[j] = xr[j] / den;
    }
}

void relate_l2_normalize_backward(float *dx, const float *dy, const float *x, const float *norms,
                                  int n, int c, float eps)
{
    if (!dx)
        return;
#pragma omp parallel for schedule(static) if ((size_t)n * c >= SM_PAR_MIN)
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * c, *gr = dy + (size_t)i * c;
        float *dr = dx + (size_t)i * c;
        const double nrm = norms[i];
        /* clamp_min passes the gradient only where norm >= eps (PyTorch's clamp_min backward);
         * below it the denominator is the constant eps. */
        if (!(nrm >= eps) || nrm == 0) {
            const float den = nrm > eps ? (float)nrm : eps;
#pragma omp simd
            for (int j = 0; j < c; j++)
                dr[j] += gr[j] / den;
            continue;
        }
        /* y = x / |x|: dx = dy/|x| - x * <dy, x> / |x|^3. */
        double dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int j = 0; j < c; j++)
            dot += (double)gr[j] * xr[j];
        const float inv = (float)(1.0 / nrm), k = (float)(dot / (nrm * nrm * nrm));
#pragma omp simd
        for (int j = 0; j < c; j++)
            dr[j] += gr[j] * inv - xr[j] * k;
    }
}
