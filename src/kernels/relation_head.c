/* relation_head.c: relationnet's relation head over every pair in three streaming passes:
 * h = a[ia] + b[ib] + bias1 -> BatchNorm1d (training) -> LeakyReLU -> Linear(C, 1).
 * Not the factorisation (relationnet.c computes a = F W_a^T and b = F W_b^T once per view) and
 * not the max aggregation, which needs the pairs themselves.
 *
 * Why fused: with K = 32 and B = 64 there are 63,488 pairs of 256 channels, 65 MB per tensor.
 * Composed ops write h, the normalised h, the activation and three gradients of that size and read
 * each two or three times (~1.2 GB of traffic and ~400 MB of arena per step). Here only h is
 * stored; the normalised value and the activation are recomputed from h and the channel
 * statistics wherever they are needed, so h is written once and read four times.
 *
 * Arithmetic follows the composed ops (spec 3.1.3): h summed left to right in float, statistics in
 * double with the two-pass variance, y = h * alpha + shift in float, PyTorch's LeakyReLU gradient
 * convention (x > 0 ? dy : slope * dy) and its batch-norm backward grouping. Only summation order
 * differs (per-chunk partial sums), so results agree with the composed ops to float rounding.
 * Chunks are fixed-size row ranges reduced in chunk order, so results do not depend on the
 * number of threads. */
#include "kernels/kernels.h"

/* Rows per partial sum: large enough that the partials (chunks x C doubles) stay small, small
 * enough that 2 threads get many chunks. */
#define CHUNK_ROWS 512
/* Columns computed together in the scatter pass: one cache line of h per row. */
#define COL_CHUNK 16

static int64_t chunk_count(int64_t rows) { return (rows + CHUNK_ROWS - 1) / CHUNK_ROWS; }
static int64_t chunk_end(int64_t k, int64_t rows) { return (k + 1) * CHUNK_ROWS < rows ? (k + 1) * CHUNK_ROWS : rows; }

size_t relate_relation_head_scratch_doubles(int64_t rows, int cols)
{
    /* Backward: three partial rows per chunk plus one scalar, their total, and five per-column
     * float coefficients (stored in double slots); forward needs less. */
    return (size_t)(chunk_count(rows) + 1) * (3 * (size_t)cols + 1) + 5 * (size_t)cols;
}

/* Per-chunk partials summed in chunk order into out[cols]. */
static void reduce_chunks(double *out, const double *partial, int64_t nchunks, int cols, size_t stride)
{
    for (int j = 0; j < cols; j++)
        out[j] = 0;
    for (int64_t k = 0; k < nchunks; k++)
        for (int j = 0; j < cols; j++)
            out[j] += partial[(size_t)k * stride + (size_t)j];
}

void relate_relation_head_forward(float *h, float *logits, float *mean, float *invstd, float *running_mean,
                                  float *running_var, const relate_relation_head_params *p, int64_t rows,
                                  int cols, double *scratch)
{
    const int64_t nchunks = chunk_count(rows);
    const double m = (double)rows;
    double *part = scratch, *acc = part + (size_t)nchunks * (size_t)cols, *dmean = acc + cols;
    float *alpha = (float *)(dmean + cols), *shift = alpha + cols;

#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < nchunks; k++) {
        double *s = part + (size_t)k * (size_t)cols;
        for (int j = 0; j < cols; j++)
            s[j] = 0;
        const int64_t r1 = chunk_end(k, rows);
        for (int64_t r = k * CHUNK_ROWS; r < r1; r++) {
            const float *ra = p->a + (size_t)p->ia[r] * (size_t)cols, *rb = p->b + (size_t)p->ib[r] * (size_t)cols;
            float *hr = h + (size_t)r * (size_t)cols;
#pragma omp simd
            for (int j = 0; j < cols; j++) {
                hr[j] = ra[j] + rb[j] + p->bias1[j];
                s[j] += hr[j];
            }
        }
    }
    reduce_chunks(dmean, part, nchunks, cols, (size_t)cols);
    for (int j = 0; j < cols; j++)
        dmean[j] /= m;

#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < nchunks; k++) {
        double *v = part + (size_t)k * (size_t)cols;
        for (int j = 0; j < cols; j++)
            v[j] = 0;
        const int64_t r1 = chunk_end(k, rows);
        for (int64_t r = k * CHUNK_ROWS; r < r1; r++) {
            const float *hr = h + (size_t)r * (size_t)cols;
#pragma omp simd
            for (int j = 0; j < cols; j++) {
                double dlt = hr[j] - dmean[j];
                v[j] += dlt * dlt;
            }
        }
    }
    reduce_chunks(acc, part, nchunks, cols, (size_t)cols);
    for (int j = 0; j < cols; j++) {
        relate_bn_finish_channel(dmean[j], acc[j], m, j, mean, invstd, running_mean, running_var, p->momentum, p->eps);
        alpha[j] = invstd[j] * p->gamma[j];
        shift[j] = p->beta[j] - mean[j] * alpha[j];
    }

    const float slope = p->slope, *w2 = p->w2;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *hr = h + (size_t)r * (size_t)cols;
        float dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int j = 0; j < cols; j++) {
            float z = hr[j] * alpha[j] + shift[j];
            float act = z > 0.0f ? z : z * slope;
            dot += act * w2[j];
        }
        logits[r] = dot + p->b2;
    }
}

void relate_relation_head_backward(const relate_relation_head_grads *gr, const float *dlogits, const float *h,
                                   const float *mean, const float *invstd, const relate_relation_head_params *p,
                                   int64_t rows, int cols, double *scratch)
{
    const int64_t nchunks = chunk_count(rows);
    const double m = (double)rows;
    const size_t stride = 3 * (size_t)cols + 1;
    const float slope = p->slope, *w2 = p->w2;
    double *tot = scratch + (size_t)nchunks * stride;
    float *alpha = (float *)(tot + stride), *shift = alpha + cols, *gm = shift + cols, *kk = gm + cols,
          *sc = kk + cols;
    for (int j = 0; j < cols; j++) {
        alpha[j] = invstd[j] * p->gamma[j];
        shift[j] = p->beta[j] - mean[j] * alpha[j];
    }

    /* Pass 1: per chunk, sum(dz), sum((h - mean) dz), sum(dlogit * act) and sum(dlogit). */
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < nchunks; k++) {
        double *s = scratch + (size_t)k * stride, *dp = s + cols, *dw = dp + cols;
        for (size_t j = 0; j < stride; j++)
            s[j] = 0;
        const int64_t r1 = chunk_end(k, rows);
        for (int64_t r = k * CHUNK_ROWS; r < r1; r++) {
            const float *hr = h + (size_t)r * (size_t)cols;
            const float dl = dlogits[r];
#pragma omp simd
            for (int j = 0; j < cols; j++) {
                float z = hr[j] * alpha[j] + shift[j];
                float act = z > 0.0f ? z : z * slope;
                float da = dl * w2[j];
                float dz = z > 0.0f ? da : da * slope;
                s[j] += dz;
                dp[j] += (double)(hr[j] - mean[j]) * dz;
                dw[j] += (double)dl * act;
            }
            dw[cols] += dl;
        }
    }
    for (size_t j = 0; j < stride; j++)
        tot[j] = 0;
    for (int64_t k = 0; k < nchunks; k++)
        for (size_t j = 0; j < stride; j++)
            tot[j] += scratch[(size_t)k * stride + j];
    for (int j = 0; j < cols; j++) {
        const double s = tot[j], dp = tot[cols + j], inv = invstd[j];
        if (gr->dgamma)
            gr->dgamma[j] += (float)(dp * inv);
        if (gr->dbeta)
            gr->dbeta[j] += (float)s;
        if (gr->dw2)
            gr->dw2[j] += (float)tot[2 * cols + j];
        gm[j] = (float)(s / m);
        kk[j] = (float)(dp * inv * inv / m);
        sc[j] = invstd[j] * p->gamma[j];
    }
    if (gr->db2)
        gr->db2[0] += (float)tot[3 * cols];

    /* Pass 2: dh scattered into the view rows. Several pairs share a row, so threads split the
     * columns and each destination element is updated by one thread, in pair order; any split
     * gives the same bits. One span of columns per thread: each walks every pair once, reading
     * h in runs of cols / threads floats (with one cache line per 1 KB row, the prefetcher fell
     * behind and the pass took 4-5% more of the headline step). dbias1's double sums live in
     * the partials' space, free since pass 1 was reduced. */
    const int threads = relate_get_threads() > 0 ? relate_get_threads() : 1;
    const int span = ((cols + threads - 1) / threads + COL_CHUNK - 1) / COL_CHUNK * COL_CHUNK;
    const int64_t nspan = (cols + span - 1) / span;
    double *dbias = scratch;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < nspan; t++) {
        const int s0 = (int)(t * span), s1 = s0 + span < cols ? s0 + span : cols;
        for (int j = s0; j < s1; j++)
            dbias[j] = 0;
        for (int64_t r = 0; r < rows; r++) {
            const float *hr = h + (size_t)r * (size_t)cols;
            const float dl = dlogits[r];
            float *ga = gr->da ? gr->da + (size_t)p->ia[r] * (size_t)cols : NULL;
            float *gb = gr->db ? gr->db + (size_t)p->ib[r] * (size_t)cols : NULL;
            for (int j0 = s0; j0 < s1; j0 += COL_CHUNK) {
                const int j1 = j0 + COL_CHUNK < s1 ? j0 + COL_CHUNK : s1;
                float dh[COL_CHUNK];
#pragma omp simd
                for (int j = j0; j < j1; j++) {
                    float z = hr[j] * alpha[j] + shift[j];
                    float da = dl * w2[j];
                    float dz = z > 0.0f ? da : da * slope;
                    dh[j - j0] = ((dz - gm[j]) - (hr[j] - mean[j]) * kk[j]) * sc[j];
                }
                if (ga)
                    for (int j = j0; j < j1; j++)
                        ga[j] += dh[j - j0];
                if (gb)
                    for (int j = j0; j < j1; j++)
                        gb[j] += dh[j - j0];
                for (int j = j0; j < j1; j++)
                    dbias[j] += dh[j - j0];
            }
        }
        if (gr->dbias1)
            for (int j = s0; j < s1; j++)
                gr->dbias1[j] += (float)dbias[j];
    }
}
