/* relation_head_body.h: the relation head's passes (see relation_head.c), compiled once per
 * instruction set: relation_head.c includes this file for AVX2 and relation_head_avx512.c for
 * AVX-512, each defining RH_FN to name its pair of functions. Every loop is elementwise across
 * columns or sums in an order written out here, so the two builds give the same bits; only the
 * vector width, and with it the cost of the double sums, differs. */
#include <string.h>

#include "kernels/kernels.h"

#ifndef RH_FN
#error "define RH_FN(name) before including relation_head_body.h"
#endif

/* Rows per partial sum: large enough that the partials (chunks x C doubles) stay small, small
 * enough that 2 threads get many chunks. */
#define CHUNK_ROWS 512
/* The scatter pass splits columns between threads in multiples of this (one cache line). */
#define COL_CHUNK 16
/* Each pass walks h (rows of cols floats, 1 KB at relationnet's 256) in order and asks for the row
 * this many rows ahead, one page at 1 KB rows: the hardware prefetcher stops at each 4 KiB page,
 * and without these loads the passes read h at about half the machine's bandwidth. */
#define RH_PF_ROWS 4

/* Prefetch floats [q0, q1) of row r + RH_PF_ROWS of h when that row is before `end` (also before
 * the forward writes it: x86-64-v3 has no write prefetch, so it is the same instruction). Only
 * loads; nothing computed depends on them. */
static inline void rh_prefetch_row(const float *h, int64_t r, int64_t end, int cols, int q0, int q1)
{
    if (r + RH_PF_ROWS >= end)
        return;
    const float *row = h + (size_t)(r + RH_PF_ROWS) * (size_t)cols;
    for (int q = q0; q < q1; q += 16)
        __builtin_prefetch(row + q, 0, 3);
}

static int64_t chunk_count(int64_t rows) { return (rows + CHUNK_ROWS - 1) / CHUNK_ROWS; }
static int64_t chunk_end(int64_t k, int64_t rows) { return (k + 1) * CHUNK_ROWS < rows ? (k + 1) * CHUNK_ROWS : rows; }

/* Per-chunk partials summed in chunk order into out[cols]. */
static void reduce_chunks(double *out, const double *partial, int64_t nchunks, int cols, size_t stride)
{
    for (int j = 0; j < cols; j++)
        out[j] = 0;
    for (int64_t k = 0; k < nchunks; k++)
        for (int j = 0; j < cols; j++)
            out[j] += partial[(size_t)k * stride + (size_t)j];
}

/* One logit's dot product: act . w2 in eight lanes (lane l sums columns l, l + 8, ...; columns
 * past the last whole eight go into lane 0, in order), then 0 + l0 + l1 + ... + l7 from the left.
 * Written out so that the AVX2 and AVX-512 builds give the same bits: an `omp simd` reduction
 * uses as many lanes as the vector has. This is the order gcc 12 gave the AVX2 build's `omp simd`
 * reduction before (objdump), so relate's figures did not move. */
typedef float rh_v8sf __attribute__((vector_size(32)));
typedef int32_t rh_v8si __attribute__((vector_size(32)));

static inline rh_v8sf rh_load8(const float *p)
{
    rh_v8sf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline float head_logit(const float *hr, const float *alpha, const float *shift, const float *w2,
                               float slope, int cols)
{
    rh_v8sf acc = {0};
    int j = 0;
    for (; j + 8 <= cols; j += 8) {
        const rh_v8sf z = rh_load8(hr + j) * rh_load8(alpha + j) + rh_load8(shift + j);
        const rh_v8si pos = z > 0.0f; /* all ones where z > 0; NaN gives 0, hence z * slope = NaN */
        const rh_v8sf act = (rh_v8sf)((pos & (rh_v8si)z) | (~pos & (rh_v8si)(z * slope)));
        acc += act * rh_load8(w2 + j);
    }
    float lane0 = acc[0];
    for (; j < cols; j++) {
        const float z = hr[j] * alpha[j] + shift[j];
        lane0 += (z > 0.0f ? z : z * slope) * w2[j];
    }
    float dot = 0.0f + lane0;
    for (int l = 1; l < 8; l++)
        dot += acc[l];
    return dot;
}

/* One element of dh in the backward pass: the batch-norm backward of the LeakyReLU's gradient. */
static inline float head_dh(float hv, float dl, int j, const float *alpha, const float *shift, const float *w2,
                            const float *gm, const float *mean, const float *kk, const float *sc, float slope)
{
    const float z = hv * alpha[j] + shift[j];
    const float da = dl * w2[j];
    const float dz = z > 0.0f ? da : da * slope;
    return ((dz - gm[j]) - (hv - mean[j]) * kk[j]) * sc[j];
}


#ifdef RH_SPAN_REGS
/* The scatter of 128 columns from s0 (relationnet's 256 columns: one span per thread at 2
 * threads) in the AVX-512 build, where dbias1's sixteen 8-double sums stay in registers over all
 * rows; the general loop loads and stores them for every pair, and its pass took 1.7x as long
 * (relate_bench_norm head 32 64 256). Element by element the operations of head_dh and of the
 * general loop, in the same order, so the same bits. */
typedef float rh_v16sf __attribute__((vector_size(64)));
typedef double rh_v8df __attribute__((vector_size(64)));
typedef int32_t rh_v16si __attribute__((vector_size(64)));

static inline rh_v16sf rh_load16(const float *p)
{
    rh_v16sf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void scatter_span128(const relate_relation_head_grads *gr, double *dbias, const float *dlogits,
                            const float *h, const relate_relation_head_params *p, int64_t rows, int cols, int s0,
                            const float *alpha, const float *shift, const float *gm, const float *mean,
                            const float *kk, const float *sc)
{
    rh_v8df acc[16];
    for (int v = 0; v < 16; v++)
        acc[v] = (rh_v8df){0};
    const float slope = p->slope;
    for (int64_t r = 0; r < rows; r++) {
        const float *hr = h + (size_t)r * (size_t)cols + s0;
        rh_prefetch_row(h, r, rows, cols, s0, s0 + 128);
        const rh_v16sf dl = (rh_v16sf){0} + dlogits[r];
        float *ga = gr->da + (size_t)p->ia[r] * (size_t)cols + s0;
        float *gb = gr->db + (size_t)p->ib[r] * (size_t)cols + s0;
#pragma GCC unroll 8
        for (int v = 0; v < 8; v++) {
            const int j = s0 + 16 * v;
            const rh_v16sf hv = rh_load16(hr + 16 * v);
            const rh_v16sf z = hv * rh_load16(alpha + j) + rh_load16(shift + j);
            const rh_v16sf da = dl * rh_load16(p->w2 + j);
            const rh_v16si pos = z > 0.0f;
            const rh_v16sf dz = (rh_v16sf)((pos & (rh_v16si)da) | (~pos & (rh_v16si)(da * slope)));
            const rh_v16sf dh =
                ((dz - rh_load16(gm + j)) - (hv - rh_load16(mean + j)) * rh_load16(kk + j)) * rh_load16(sc + j);
            rh_v16sf t = rh_load16(ga + 16 * v) + dh;
            memcpy(ga + 16 * v, &t, sizeof t);
            t = rh_load16(gb + 16 * v) + dh;
            memcpy(gb + 16 * v, &t, sizeof t);
            acc[2 * v] += __builtin_convertvector(__builtin_shufflevector(dh, dh, 0, 1, 2, 3, 4, 5, 6, 7), rh_v8df);
            acc[2 * v + 1] +=
                __builtin_convertvector(__builtin_shufflevector(dh, dh, 8, 9, 10, 11, 12, 13, 14, 15), rh_v8df);
        }
    }
    for (int v = 0; v < 16; v++)
        memcpy(dbias + s0 + 8 * v, &acc[v], sizeof acc[v]);
}
#endif

void RH_FN(forward)(float *h, float *logits, float *mean, float *invstd, float *running_mean,
                                  float *running_var, const relate_relation_head_params *p, int64_t rows,
                                  int cols, double *scratch)
{
    const int64_t nchunks = chunk_count(rows);
    const double m = (double)rows;
    /* Per chunk: the sums of its rows, their squared deviations from the chunk's mean (taken
     * while the chunk's 512 rows are still in cache, so h is read from memory by the logits' pass
     * alone), and that mean; combined below with Chan's pairwise update. */
    double *part = scratch, *dev = part + (size_t)nchunks * (size_t)cols, *cmean = dev + (size_t)nchunks * (size_t)cols;
    double *acc = cmean + (size_t)nchunks * (size_t)cols, *dmean = acc + cols;
    float *alpha = (float *)(dmean + cols), *shift = alpha + cols;

#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < nchunks; k++) {
        double *s = part + (size_t)k * (size_t)cols, *v = dev + (size_t)k * (size_t)cols,
               *cm = cmean + (size_t)k * (size_t)cols;
        for (int j = 0; j < cols; j++)
            s[j] = v[j] = 0;
        const int64_t r0 = k * CHUNK_ROWS, r1 = chunk_end(k, rows);
        for (int64_t r = r0; r < r1; r++) {
            const float *ra = p->a + (size_t)p->ia[r] * (size_t)cols, *rb = p->b + (size_t)p->ib[r] * (size_t)cols;
            float *hr = h + (size_t)r * (size_t)cols;
            rh_prefetch_row(h, r, r1, cols, 0, cols);
#pragma omp simd
            for (int j = 0; j < cols; j++) {
                hr[j] = ra[j] + rb[j] + p->bias1[j];
                s[j] += hr[j];
            }
        }
        for (int j = 0; j < cols; j++)
            cm[j] = s[j] / (double)(r1 - r0);
        for (int64_t r = r0; r < r1; r++) {
            const float *hr = h + (size_t)r * (size_t)cols;
#pragma omp simd
            for (int j = 0; j < cols; j++) {
                double dlt = hr[j] - cm[j];
                v[j] += dlt * dlt;
            }
        }
    }
    reduce_chunks(dmean, part, nchunks, cols, (size_t)cols);
    for (int j = 0; j < cols; j++) {
        dmean[j] /= m;
        acc[j] = 0;
    }
    for (int64_t k = 0; k < nchunks; k++) {
        const double cnt = (double)(chunk_end(k, rows) - k * CHUNK_ROWS);
        for (int j = 0; j < cols; j++) {
            const double d = cmean[(size_t)k * (size_t)cols + (size_t)j] - dmean[j];
            acc[j] += dev[(size_t)k * (size_t)cols + (size_t)j] + cnt * d * d;
        }
    }
    for (int j = 0; j < cols; j++) {
        relate_bn_finish_channel(dmean[j], acc[j], m, j, mean, invstd, running_mean, running_var, p->momentum, p->eps);
        alpha[j] = invstd[j] * p->gamma[j];
        shift[j] = p->beta[j] - mean[j] * alpha[j];
    }

#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        rh_prefetch_row(h, r, rows, cols, 0, cols);
        logits[r] = head_logit(h + (size_t)r * (size_t)cols, alpha, shift, p->w2, p->slope, cols) + p->b2;
    }
}

void RH_FN(backward)(const relate_relation_head_grads *gr, const float *dlogits, const float *h,
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
            rh_prefetch_row(h, r, r1, cols, 0, cols);
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
     * behind and the pass took 4-5% more of the headline step). Spans are whole 16-column
     * chunks, so two threads never write one cache line. dbias1's double sums live in the
     * partials' space, free since pass 1 was reduced. */
    const int threads = relate_get_threads() > 0 ? relate_get_threads() : 1;
    const int span = ((cols + threads - 1) / threads + COL_CHUNK - 1) / COL_CHUNK * COL_CHUNK;
    const int64_t nspan = (cols + span - 1) / span;
    double *dbias = scratch;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < nspan; t++) {
        const int s0 = (int)(t * span), s1 = s0 + span < cols ? s0 + span : cols;
        for (int j = s0; j < s1; j++)
            dbias[j] = 0;
#ifdef RH_SPAN_REGS
        if ((s1 - s0) % 128 == 0 && gr->da && gr->db) {
            for (int q = s0; q < s1; q += 128)
                scatter_span128(gr, dbias, dlogits, h, p, rows, cols, q, alpha, shift, gm, mean, kk, sc);
            if (gr->dbias1)
                for (int j = s0; j < s1; j++)
                    gr->dbias1[j] += (float)dbias[j];
            continue;
        }
#endif
        for (int64_t r = 0; r < rows; r++) {
            const float *hr = h + (size_t)r * (size_t)cols;
            const float dl = dlogits[r];
            rh_prefetch_row(h, r, rows, cols, s0, s1);
            float *ga = gr->da ? gr->da + (size_t)p->ia[r] * (size_t)cols : NULL;
            float *gb = gr->db ? gr->db + (size_t)p->ib[r] * (size_t)cols : NULL;
            /* One loop over the span: dh is consumed where it is made. Element by element
             * this is what the composed ops add, in pair order (ga and gb may be one row). */
            if (ga && gb) {
#pragma omp simd
                for (int j = s0; j < s1; j++) {
                    const float dh = head_dh(hr[j], dl, j, alpha, shift, w2, gm, mean, kk, sc, slope);
                    ga[j] += dh;
                    gb[j] += dh;
                    dbias[j] += dh;
                }
            } else if (ga || gb) {
                float *g1 = ga ? ga : gb;
#pragma omp simd
                for (int j = s0; j < s1; j++) {
                    const float dh = head_dh(hr[j], dl, j, alpha, shift, w2, gm, mean, kk, sc, slope);
                    g1[j] += dh;
                    dbias[j] += dh;
                }
            } else {
#pragma omp simd
                for (int j = s0; j < s1; j++)
                    dbias[j] += head_dh(hr[j], dl, j, alpha, shift, w2, gm, mean, kk, sc, slope);
            }
        }
        if (gr->dbias1)
            for (int j = s0; j < s1; j++)
                gr->dbias1[j] += (float)dbias[j];
    }
}
