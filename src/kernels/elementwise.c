/* elementwise.c: element-wise arithmetic, sums, and the batch-axis moves (roll rows, concat cols).
 * Not broadcasting: every operand has exactly `count` elements (or the stated 2-D shape). */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"

/* Element-wise loops split work without changing any result, so threading only has to pay for
 * its start-up: below this many elements it does not. */
#define EW_PAR_MIN 65536

void relate_add_forward(float *y, const float *a, const float *b, size_t count)
{
#pragma omp parallel for simd schedule(static) if (count >= EW_PAR_MIN)
    for (size_t i = 0; i < count; i++)
        y[i] = a[i] + b[i];
}

void relate_mul_forward(float *y, const float *a, const float *b, size_t count)
{
#pragma omp parallel for simd schedule(static) if (count >= EW_PAR_MIN)
    for (size_t i = 0; i < count; i++)
        y[i] = a[i] * b[i];
}

void relate_mul_backward(float *da, float *db, const float *dy, const float *a, const float *b,
                         size_t count)
{
    if (da) {
#pragma omp parallel for simd schedule(static) if (count >= EW_PAR_MIN)
        for (size_t i = 0; i < count; i++)
            da[i] += dy[i] * b[i];
    }
    if (db) {
#pragma omp parallel for simd schedule(static) if (count >= EW_PAR_MIN)
        for (size_t i = 0; i < count; i++)
            db[i] += dy[i] * a[i];
    }
}

void relate_scale_forward(float *y, const float *x, float alpha, size_t count)
{
#pragma omp parallel for simd schedule(static) if (count >= EW_PAR_MIN)
    for (size_t i = 0; i < count; i++)
        y[i] = alpha * x[i];
}

void relate_axpy(float *dx, const float *dy, float alpha, size_t count)
{
    if (!dx)
        return;
#pragma omp parallel for simd schedule(static) if (count >= EW_PAR_MIN)
    for (size_t i = 0; i < count; i++)
        dx[i] += alpha * dy[i];
}

void relate_maximum_forward(float *y, const float *a, const float *b, size_t count)
{
#pragma omp parallel for simd schedule(static) if (count >= EW_PAR_MIN)
    for (size_t i = 0; i < count; i++) {
        const float u = a[i], v = b[i];
        /* torch.maximum propagates NaN from either side. */
        y[i] = (u != u || v != v) ? NAN : (u < v ? v : u);
    }
}

void relate_maximum_backward(float *da, float *db, const float *dy, const float *a, const float *b,
                             size_t count)
{
    /* PyTorch 1.13 derivatives.yaml: where(a == b, g/2, g) masked to 0 where the side is smaller;
     * with a NaN neither comparison holds, so both sides receive g. */
    if (da) {
#pragma omp parallel for simd schedule(static) if (count >= EW_PAR_MIN)
        for (size_t i = 0; i < count; i++) {
            const float g = a[i] == b[i] ? dy[i] * 0.5f : dy[i];
            da[i] += a[i] < b[i] ? 0.0f : g;
        }
    }
    if (db) {
#pragma omp parallel for simd schedule(static) if (count >= EW_PAR_MIN)
        for (size_t i = 0; i < count; i++) {
            const float g = a[i] == b[i] ? dy[i] * 0.5f : dy[i];
            db[i] += a[i] > b[i] ? 0.0f : g;
        }
    }
}

void relate_exp_forward(float *y, const float *x, size_t count)
{
#pragma omp parallel for schedule(static) if (count >= EW_PAR_MIN / 8)
    for (size_t i = 0; i < count; i++)
        y[i] = expf(x[i]);
}

void relate_exp_backward(float *dx, const float *dy, const float *y, size_t count)
{
    if (!dx)
        return;
#pragma omp parallel for simd schedule(static) if (count >= EW_PAR_MIN)
    for (size_t i = 0; i < count; i++)
        dx[i] += dy[i] * y[i];
}

void relate_log_forward(float *y, const float *x, size_t count)
{
#pragma omp parallel for schedule(static) if (count >= EW_PAR_MIN / 8)
    for (size_t i = 0; i < count; i++)
        y[i] = logf(x[i]);
}

void relate_log_backward(float *dx, const float *dy, const float *x, size_t count)
{
    if (!dx)
        return;
#pragma omp parallel for simd schedule(static) if (count >= EW_PAR_MIN)
    for (size_t i = 0; i < count; i++)
        dx[i] += dy[i] / x[i];
}

float relate_sum_forward(const float *x, size_t count)
{
    /* Serial so that the order is fixed whatever the thread count; the simd reduction only splits
     * it into a compile-time-fixed number of lanes. */
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < count; i++)
        s += x[i];
    return (float)s;
}

void relate_fill_add(float *dx, float g, size_t count)
{
    if (!dx)
        return;
#pragma omp parallel for simd schedule(static) if (count >= EW_PAR_MIN)
    for (size_t i = 0; i < count; i++)
        dx[i] += g;
}

/* Source row of output row i for torch.roll along dim 0: (i - shift) mod n, always in [0, n). */
static int roll_src(int i, int n, int shift)
{
    int s = shift % n;
    int r = (i - s) % n;
    return r < 0 ? r + n : r;
}

void relate_roll_rows_forward(float *y, const float *x, int n, size_t row, int shift)
{
    if (n < 1)
        return;
    for (int i = 0; i < n; i++)
        memcpy(y + (size_t)i * row, x + (size_t)roll_src(i, n, shift) * row, row * sizeof(float));
}

void relate_roll_rows_backward(float *dx, const float *dy, int n, size_t row, int shift)
{
    if (!dx || n < 1)
        return;
    for (int i = 0; i < n; i++) {
        float *d = dx + (size_t)roll_src(i, n, shift) * row;
        const float *g = dy + (size_t)i * row;
#pragma omp simd
        for (size_t j = 0; j < row; j++)
            d[j] += g[j];
    }
}

void relate_concat_cols_forward(float *y, const float *a, const float *b, int n, int ca, int cb)
{
    const size_t cy = (size_t)ca + cb;
    for (int i = 0; i < n; i++) {
        memcpy(y + (size_t)i * cy, a + (size_t)i * ca, (size_t)ca * sizeof(float));
        memcpy(y + (size_t)i * cy + ca, b + (size_t)i * cb, (size_t)cb * sizeof(float));
    }
}

void relate_concat_cols_backward(float *da, float *db, const float *dy, int n, int ca, int cb)
{
    const size_t cy = (size_t)ca + cb;
    for (int i = 0; i < n; i++) {
        const float *g = dy + (size_t)i * cy;
        if (da) {
            float *d = da + (size_t)i * ca;
#pragma omp simd
            for (int j = 0; j < ca; j++)
                d[j] += g[j];
        }
        if (db) {
            float *d = db + (size_t)i * cb;
#pragma omp simd
            for (int j = 0; j < cb; j++)
                d[j] += g[ca + j];
        }
    }
}
