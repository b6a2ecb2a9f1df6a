/* losses.c: mean cross-entropy (optional class weights), BCE with logits and sigmoid focal loss.
 * Not other reductions ('sum'/'none'), label smoothing, ignore_index or pos_weight. */
#include <math.h>

#include "kernels/kernels.h"

/* Losses are scalars over a batch: summed serially in double, so the result is independent of the
 * thread count and within rounding of PyTorch's float32 value. */

float relate_cross_entropy_forward(float *prob, const float *x, const int32_t *targets,
                                   const float *weights, int n, int c)
{
    double total = 0, wsum = 0;
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * c;
        float *pr = prob + (size_t)i * c;
        float mx = -INFINITY;
        for (int j = 0; j < c; j++)
            mx = xr[j] > mx || isnan(xr[j]) ? xr[j] : mx;
        double s = 0;
        for (int j = 0; j < c; j++)
            s += expf(xr[j] - mx);
        const float lse = (float)log(s);
        /* prob = exp(log_softmax), exactly what PyTorch's log_softmax backward exponentiates. */
        for (int j = 0; j < c; j++)
            pr[j] = expf((xr[j] - mx) - lse);
        const int t = targets[i];
        const double wt = weights ? weights[t] : 1.0;
        total -= wt * (double)((xr[t] - mx) - lse);
        wsum += wt;
    }
    return (float)(total / wsum);
}

void relate_cross_entropy_backward(float *dx, float g, const float *prob, const int32_t *targets,
                                   const float *weights, int n, int c)
{
    if (!dx)
        return;
    double wsum = 0;
    for (int i = 0; i < n; i++)
        wsum += weights ? weights[targets[i]] : 1.0;
    for (int i = 0; i < n; i++) {
        const int t = targets[i];
        const float k = (float)((double)g * (weights ? weights[t] : 1.0) / wsum);
        const float *pr = prob + (size_t)i * c;
        float *dr = dx + (size_t)i * c;
        for (int j = 0; j < c; j++)
            dr[j] += k * (pr[j] - (j == t ? 1.0f : 0.0f));
    }
}

/* max(x,0) - x*t + log1p(exp(-|x|)): never overflows, and keeps its precision for large |x|. */
static double bce_logit(double x, double t)
{
    return (x > 0 ? x : 0) - x * t + log1p(exp(-fabs(x)));
}

/* 1 / (1 + exp(-x)) without overflow for very negative x. */
static double sigmoid_d(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    const double e = exp(x);
    return e / (1.0 + e);
}

float relate_bce_logits_forward(const float *x, const float *t, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += bce_logit(x[i], t[i]);
    return (float)(s / (double)n);
}

void relate_bce_logits_backward(float *dx, float g, const float *x, const float *t, size_t n)
{
    if (!dx)
        return;
    /* PyTorch: (sigmoid(x) - t) * (g / n), the mean's gradient already divided. */
    const float gn = g / (float)n;
    for (size_t i = 0; i < n; i++)
        dx[i] += ((float)sigmoid_d(x[i]) - t[i]) * gn;
}

/* One focal term and its derivative, in double. p = sigmoid(x); q = 1 - p_t is formed from
 * sigmoid(x) and sigmoid(-x) directly so that confident predictions keep their precision.
 *   loss  = a_t * q^gamma * bce,              a_t = t*alpha + (1-t)*(1-alpha)
 *   dq/dx = -(2t - 1) * p * (1 - p)           (p_t = t*p + (1-t)*(1-p))
 *   dbce/dx = p - t
 *   dloss/dx = a_t * (gamma * q^(gamma-1) * dq/dx * bce + q^gamma * (p - t)) */
static double focal_term(double x, double t, double alpha, double gamma, double *grad)
{
    const double p = sigmoid_d(x), pm = sigmoid_d(-x); /* pm = 1 - p */
    const double q = t * pm + (1 - t) * p;
    const double at = t * alpha + (1 - t) * (1 - alpha);
    const double bce = bce_logit(x, t);
    const double qg = gamma == 0 ? 1.0 : pow(q, gamma);
    if (grad) {
        /* gamma * q^(gamma-1) * dq: zero when gamma == 0, and taken as its limit 0 when q == 0
         * (q^(gamma-1) may blow up there while dq/dx vanishes). */
        double mod = 0;
        if (gamma != 0 && q > 0)
            mod = gamma * pow(q, gamma - 1) * (-(2 * t - 1) * p * pm) * bce;
        *grad = at * (mod + qg * (p - t));
    }
    return at * qg * bce;
}

float relate_focal_loss_forward(const float *x, const float *t, size_t n, float alpha, float gamma)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += focal_term(x[i], t[i], alpha, gamma, NULL);
    return (float)(s / (double)n);
}

void relate_focal_loss_backward(float *dx, float g, const float *x, const float *t, size_t n,
                                float alpha, float gamma)
{
    if (!dx)
        return;
    const double gn = (double)g / (double)n;
    for (size_t i = 0; i < n; i++) {
        double gr;
        focal_term(x[i], t[i], alpha, gamma, &gr);
        dx[i] += (float)(gr * gn);
    }
}
