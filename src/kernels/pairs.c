/* pairs.c: rows built from two gathered rows (relationnet's pair aggregation, spec 3.1.3).
 * Not a general gather: the output row p combines a[ia[p]] and b[ib[p]] element-wise, which is
 * all the relation head needs, and lets it run on per-view products instead of per-pair copies. */
#include <string.h>

#include "kernels/kernels.h"

void relate_pair_rows_forward(float *y, const float *a, const int32_t *ia, const float *b, const int32_t *ib,
                              const float *bias, int64_t rows, int64_t cols, relate_pair_mode mode)
{
#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 16))
    for (int64_t p = 0; p < rows; p++) {
        const float *ra = a + (size_t)ia[p] * (size_t)cols;
        const float *rb = b + (size_t)ib[p] * (size_t)cols;
        float *ry = y + (size_t)p * (size_t)cols;
        if (mode == RELATE_PAIR_MAX) {
            for (int64_t j = 0; j < cols; j++) {
                /* torch.maximum propagates NaN from either side. */
                float u = ra[j], v = rb[j];
                ry[j] = (u != u || v != v) ? u + v : (u > v ? u : v);
            }
        } else if (bias) {
            for (int64_t j = 0; j < cols; j++)
                ry[j] = ra[j] + rb[j] + bias[j];
        } else {
            for (int64_t j = 0; j < cols; j++)
                ry[j] = ra[j] + rb[j];
        }
        if (mode == RELATE_PAIR_MAX && bias)
            for (int64_t j = 0; j < cols; j++)
                ry[j] += bias[j];
    }
}

/* Scatter-add: several output rows feed one input row, so threads split the columns, never the
 * rows, and every destination element is written by one thread in row order (deterministic). */
void relate_pair_rows_backward(float *da, float *db, float *dbias, const float *dy, const float *a,
                               const int32_t *ia, const float *b, const int32_t *ib, int64_t rows, int64_t cols,
                               relate_pair_mode mode)
{
    const int64_t chunk = 16;
    const int64_t nchunks = (cols + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 16))
    for (int64_t c = 0; c < nchunks; c++) {
        const int64_t j0 = c * chunk, j1 = j0 + chunk < cols ? j0 + chunk : cols;
        for (int64_t p = 0; p < rows; p++) {
            const float *g = dy + (size_t)p * (size_t)cols;
            float *ga = da ? da + (size_t)ia[p] * (size_t)cols : NULL;
            float *gb = db ? db + (size_t)ib[p] * (size_t)cols : NULL;
            if (mode == RELATE_PAIR_MAX) {
                const float *ra = a + (size_t)ia[p] * (size_t)cols;
                const float *rb = b + (size_t)ib[p] * (size_t)cols;
                for (int64_t j = j0; j < j1; j++) {
                    /* PyTorch 1.13: ties split the gradient in half. */
                    const float h = ra[j] == rb[j] ? g[j] * 0.5f : g[j];
                    if (ga)
                        ga[j] += ra[j] < rb[j] ? 0.0f : h;
                    if (gb)
                        gb[j] += ra[j] > rb[j] ? 0.0f : h;
                }
            } else {
                if (ga)
                    for (int64_t j = j0; j < j1; j++)
                        ga[j] += g[j];
                if (gb)
                    for (int64_t j = j0; j < j1; j++)
                        gb[j] += g[j];
            }
            if (dbias)
                for (int64_t j = j0; j < j1; j++)
                    dbias[j] += g[j];
        }
    }
}
