/* infomax.c: Deep InfoMax's kernels (spec 3.4): the local discriminator's loss computed without ever
 * building [M || y expanded], plus the small layout and element-wise kernels of its literal form
 * (NCHW -> position rows, row repetition, softplus, a*x + b).
 * Not the discriminator's parameters or the prior term: src/methods/deepinfomax.c composes graph ops.
 *
 * Why the fused local loss is fast (and exact). The reference runs 1x1 convolutions over
 * X = [M || y expanded] (M_ch + d channels at every one of the H*W positions), twice: on M and on M'
 * = M rolled by one image. For conv4 on 32x32 that is c0: 72 -> 256 and c1: 256 -> 256 on
 * 2 * B * 1024 positions: about 130 GFLOP per step of 128 images with the backward (c0 29, c1 103),
 * and PyTorch materialises every intermediate ([B, 256, 32, 32] = 134 MB each, a dozen of them, each
 * freshly page-faulted), so a CPU step is dominated by memory traffic as much as by arithmetic. Here
 * (about 105 GFLOP, nearly all of it c1 in cache-sized sgemms):
 *  - c0 is split exactly: W0 [M || y] + b0 = W_M M + (W_y y + b0). The y part is constant over the
 *    positions of an image, so it is computed once per image (yb [B, 256], by the caller); the M part
 *    has M_ch = 8 inputs instead of 72. M' needs no product of its own: W_M M' is W_M M of the next
 *    image, so each chunk multiplies its images (plus one) once and reads the rolled rows from there.
 *  - Everything runs on chunks of about 2048 positions (x2 for M and M'), so the 256-wide
 *    activations stay in cache; c1 is one sgemm per chunk of [2R, 256] x [256, 256].
 *  - The output is the scalar loss, so the backward is known during the forward up to the upstream
 *    scalar: each chunk computes its gradients right after its forward (dT = softplus' / N) while its
 *    activations are still in cache, and nothing of size B*H*W*256 is ever stored.
 *  - One OpenMP region per call: each thread takes whole chunks (single-threaded BLAS inside the
 *    region) and sums its gradients privately; the sums are added in thread order, so the result is
 *    deterministic for a thread count, and there is no fork/join per product (which, with the cores
 *    shared with other processes, made two threads ten times slower than one).
 * What remains is the c1 work itself (three [2R,256]x[256,256] products per chunk: forward, dW1, dH0),
 * which no exact rewriting removes, because c1 acts on ReLU outputs. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <string.h>

#include "kernels/kernels.h"

#define PAR_MIN 65536
#define CHUNK_ROWS 2048 /* positions per chunk (each for M and M'): [4096, 256] floats = 4 MB */
#define MAX_THREADS 64

/* ------------------------------------------------------------------ layout and element-wise */
void relate_nchw_to_rows_forward(float *y, const float *x, int n, int c, int hw)
{
#pragma omp parallel for schedule(static) if ((size_t)n * c * hw >= PAR_MIN)
    for (int i = 0; i < n; i++)
        for (int p = 0; p < hw; p++)
            for (int k = 0; k < c; k++)
                y[((size_t)i * hw + p) * c + k] = x[((size_t)i * c + k) * hw + p];
}

void relate_nchw_to_rows_backward(float *dx, const float *dy, int n, int c, int hw)
{
#pragma omp parallel for schedule(static) if ((size_t)n * c * hw >= PAR_MIN)
    for (int i = 0; i < n; i++)
        for (int k = 0; k < c; k++)
            for (int p = 0; p < hw; p++)
                dx[((size_t)i * c + k) * hw + p] += dy[((size_t)i * hw + p) * c + k];
}

void relate_repeat_rows_forward(float *y, const float *x, int n, int c, int reps)
{
#pragma omp parallel for schedule(static) if ((size_t)n * c * reps >= PAR_MIN)
    for (int i = 0; i < n; i++)
        for (int r = 0; r < reps; r++)
            memcpy(y + ((size_t)i * reps + r) * c, x + (size_t)i * c, (size_t)c * sizeof(float));
}

void relate_repeat_rows_backward(float *dx, const float *dy, int n, int c, int reps)
{
#pragma omp parallel for schedule(static) if ((size_t)n * c * reps >= PAR_MIN)
    for (int i = 0; i < n; i++)
        for (int k = 0; k < c; k++) {
            double acc = 0; /* each output summed in row order by one thread */
            for (int r = 0; r < reps; r++)
                acc += dy[((size_t)i * reps + r) * c + k];
            dx[(size_t)i * c + k] += (float)acc;
        }
}

/* F.softplus: x*beta > threshold ? x : log1p(exp(x*beta)) / beta. */
static inline float softplus1(float x, float beta, float threshold)
{
    const float xb = x * beta;
    return xb > threshold ? x : log1pf(expf(xb)) / beta;
}

/* PyTorch's softplus_backward: z = exp(x*beta); x*beta > threshold ? dy : dy * z / (z + 1). */
static inline float softplus1_grad(float dy, float x, float beta, float threshold)
{
    const float xb = x * beta;
    if (xb > threshold)
        return dy;
    const float z = expf(xb);
    return dy * z / (z + 1.0f);
}

void relate_softplus_forward(float *y, const float *x, float beta, float threshold, size_t count)
{
#pragma omp parallel for schedule(static) if (count >= PAR_MIN / 8)
    for (size_t i = 0; i < count; i++)
        y[i] = softplus1(x[i], beta, threshold);
}

void relate_softplus_backward(float *dx, const float *dy, const float *x, float beta, float threshold,
                              size_t count)
{
#pragma omp parallel for schedule(static) if (count >= PAR_MIN / 8)
    for (size_t i = 0; i < count; i++)
        dx[i] += softplus1_grad(dy[i], x[i], beta, threshold);
}

void relate_scale_shift_forward(float *y, const float *x, float alpha, float beta, size_t count)
{
#pragma omp parallel for simd schedule(static) if (count >= PAR_MIN)
    for (size_t i = 0; i < count; i++)
        y[i] = alpha * x[i] + beta;
}

/* ------------------------------------------------------------------ the fused local loss */
/* torch.relu: NaN propagates. */
static inline float relu1(float v) { return v > 0.0f ? v : (v != v ? v : 0.0f); }

void relate_infomax_dims_init(relate_infomax_dims *d)
{
    int k = d->hw >= CHUNK_ROWS ? 1 : CHUNK_ROWS / d->hw;
    d->chunk = k < d->b ? k : d->b;
    const int nchunks = (d->b + d->chunk - 1) / d->chunk;
    int t = relate_get_threads();
    t = t < MAX_THREADS ? t : MAX_THREADS;
    d->threads = t < nchunks ? t : nchunks;
    if (d->threads < 1)
        d->threads = 1;
}

/* Per thread: the chunk's buffers, then (with several threads) private gradient sums. */
static size_t chunk_floats(const relate_infomax_dims *d)
{
    const size_t R = (size_t)d->chunk * d->hw;
    return (size_t)(d->chunk + 1) * d->hw * d->c0 /* A, then dA */ + 2 * R * d->c0 /* H0 */ +
           2 * R * d->c1 /* H1, then dH1 */ + 2 * R * d->c0 /* dH0 */ + 2 * R /* T, then dT */;
}
static size_t private_floats(const relate_infomax_dims *d)
{
    return (size_t)d->b * d->mc * d->hw + (size_t)d->c0 * d->mc + (size_t)d->c1 * d->c0 + 2 * (size_t)d->c1 + 1;
}

size_t relate_infomax_scratch_floats(const relate_infomax_dims *d)
{
    return (size_t)d->threads * (chunk_floats(d) + (d->threads > 1 ? private_floats(d) : 0));
}

typedef struct {
    const float *m, *w_m, *yb, *w1, *b1, *w2, *b2;
} local_in;

/* Images n0 .. n0+k-1 (and their M' rows): adds the softplus sums to sums[0] (M) and sums[1] (M'),
 * and, when g is non-NULL, the gradients to g (dyb rows n0.. are this chunk's alone). One thread;
 * the BLAS calls run single-threaded inside the caller's parallel region. */
static void local_chunk(const local_in *x, const relate_infomax_dims *d, int n0, int k, float gN,
                        const relate_infomax_grads *g, bool below_h0, float *buf, double sums[2])
{
    const int B = d->b, MC = d->mc, HW = d->hw, C0 = d->c0, C1 = d->c1, K = d->chunk;
    const int R = k * HW, R2 = 2 * R;
    const size_t Rmax = (size_t)K * HW;
    float *A = buf;                            /* [(K+1)*HW, C0]: W_M M of images n0..n0+k */
    float *H0 = A + (size_t)(K + 1) * HW * C0; /* [2R, C0]: rows 0..R-1 for M, R..2R-1 for M' */
    float *H1 = H0 + 2 * Rmax * C0;            /* [2R, C1] */
    float *D0 = H1 + 2 * Rmax * C1;            /* [2R, C0] */
    float *T = D0 + 2 * Rmax * C0;             /* [2R] */
    /* A rows j*HW + p = (W_M M[(n0+j) mod B])[:, p], j = 0..k: M' of image n is M of image n+1. */
    for (int j = 0; j <= k; j++)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, HW, C0, MC, 1.0f, x->m + (size_t)((n0 + j) % B) * MC * HW,
                    HW, x->w_m, MC, 0.0f, A + (size_t)j * HW * C0, C0);
    /* H0 = relu(A[row (+HW for M')] + yb[image]). */
    for (int r = 0; r < R2; r++) {
        const int rr = r < R ? r : r - R + HW; /* M' rows read A one image further on */
        const float *a = A + (size_t)rr * C0;
        const float *yy = x->yb + (size_t)(n0 + (r < R ? r : r - R) / HW) * C0;
        float *h = H0 + (size_t)r * C0;
        for (int c = 0; c < C0; c++)
            h[c] = relu1(a[c] + yy[c]);
    }
    /* H1 = relu(H0 W1^T + b1): the bias added to the finished product, one rounding, as sgemm with
     * beta = 1 on a broadcast bias would (without writing the bias rows first). */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R2, C1, C0, 1.0f, H0, C0, x->w1, C0, 0.0f, H1, C1);
    const float *restrict b1 = x->b1;
    for (int r = 0; r < R2; r++) {
        float *restrict h = H1 + (size_t)r * C1;
        for (int c = 0; c < C1; c++)
            h[c] = relu1(h[c] + b1[c]);
    }
    /* T = H1 w2 + b2; Ej uses softplus(-T) on M's rows, Em softplus(T) on M''s rows. */
    for (int r = 0; r < R2; r++)
        T[r] = x->b2[0];
    cblas_sgemv(CblasRowMajor, CblasNoTrans, R2, C1, 1.0f, H1, C1, x->w2, 1, 1.0f, T, 1);
    for (int r = 0; r < R; r++)
        sums[0] += softplus1(-T[r], 1.0f, 20.0f);
    for (int r = R; r < R2; r++)
        sums[1] += softplus1(T[r], 1.0f, 20.0f);
    if (!g)
        return;

    /* dLOCAL/dT, LOCAL = mean(softplus(T')) + mean(softplus(-T)), as PyTorch chains it: T now holds dT. */
    for (int r = 0; r < R2; r++)
        T[r] = r < R ? -softplus1_grad(gN, -T[r], 1.0f, 20.0f) : softplus1_grad(gN, T[r], 1.0f, 20.0f);
    if (g->db2) {
        double acc = 0;
        for (int r = 0; r < R2; r++)
            acc += T[r];
        g->db2[0] += (float)acc;
    }
    if (g->dw2) /* dw2 [C1] += H1^T dT */
        cblas_sgemv(CblasRowMajor, CblasTrans, R2, C1, 1.0f, H1, C1, T, 1, 1.0f, g->dw2, 1);
    /* dH1 = dT w2 where H1 > 0, in place over H1. */
    const float *restrict w2 = x->w2;
    for (int r = 0; r < R2; r++) {
        float *restrict h = H1 + (size_t)r * C1;
        const float t = T[r];
        /* Select, then multiply: a multiply inside the select would keep it scalar (trapping math). A
         * masked entry becomes +-0 (t's sign), which no later sum or product can tell from 0. */
        for (int c = 0; c < C1; c++)
            h[c] = (h[c] > 0.0f ? w2[c] : 0.0f) * t;
    }
    if (g->db1) {
        double acc[1024]; /* C1 <= 1024 (checked by the caller) */
        for (int c = 0; c < C1; c++)
            acc[c] = 0;
        for (int r = 0; r < R2; r++)
            for (int c = 0; c < C1; c++)
                acc[c] += H1[(size_t)r * C1 + c];
        for (int c = 0; c < C1; c++)
            g->db1[c] += (float)acc[c];
    }
    if (g->dw1) /* dW1 [C1, C0] += dH1^T H0 */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C1, C0, R2, 1.0f, H1, C1, H0, C0, 1.0f, g->dw1, C0);
    if (!below_h0)
        return;
    /* dH0 = dH1 W1 where H0 > 0. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R2, C0, C1, 1.0f, H1, C1, x->w1, C0, 0.0f, D0, C0);
    for (size_t i = 0; i < (size_t)R2 * C0; i++)
        D0[i] = H0[i] > 0.0f ? D0[i] : 0.0f;
    /* dyb[image] += its positions' rows, M's then M''s. */
    if (g->dyb)
        for (int j = 0; j < k; j++) {
            double acc[1024]; /* C0 <= 1024 (checked by the caller); each column in row order */
            for (int c = 0; c < C0; c++)
                acc[c] = 0;
            for (int half = 0; half < 2; half++)
                for (int p = 0; p < HW; p++) {
                    const float *restrict row = D0 + ((size_t)half * R + (size_t)j * HW + p) * C0;
                    for (int c = 0; c < C0; c++)
                        acc[c] += row[c];
                }
            for (int c = 0; c < C0; c++)
                g->dyb[(size_t)(n0 + j) * C0 + c] += (float)acc[c];
        }
    if (!g->dm && !g->dw_m)
        return;
    /* dA over A: row j*HW + p gets M's row (j < k) and M''s row of image j - 1 (j >= 1). */
    for (int r = 0; r < (k + 1) * HW; r++) {
        float *a = A + (size_t)r * C0;
        const float *dp = r < R ? D0 + (size_t)r * C0 : NULL;
        const float *dn = r >= HW ? D0 + ((size_t)R + r - HW) * C0 : NULL;
        for (int c = 0; c < C0; c++)
            a[c] = (dp ? dp[c] : 0.0f) + (dn ? dn[c] : 0.0f);
    }
    for (int j = 0; j <= k; j++) {
        const size_t img = (size_t)((n0 + j) % B);
        const float *da = A + (size_t)j * HW * C0; /* [HW, C0] */
        if (g->dw_m) /* dW_M [C0, MC] += dA^T M_img^T */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, C0, MC, HW, 1.0f, da, C0, x->m + img * MC * HW, HW, 1.0f,
                        g->dw_m, MC);
        if (g->dm) /* dM_img [MC, HW] += W_M^T dA^T */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, MC, HW, C0, 1.0f, x->w_m, MC, da, C0, 1.0f,
                        g->dm + img * MC * HW, HW);
    }
}

float relate_infomax_local_forward(const float *m, const float *w_m, const float *yb, const float *w1,
                                   const float *b1, const float *w2, const float *b2,
                                   const relate_infomax_dims *d, const relate_infomax_grads *gr, float *scratch)
{
    const int B = d->b, K = d->chunk, NT = d->threads;
    const size_t N = (size_t)B * d->hw;
    const float gN = 1.0f / (float)N; /* mean's backward, as PyTorch: grad / numel in float */
    if (d->c0 > 1024 || d->c1 > 1024)
        return NAN;
    const bool grads = gr && (gr->dm || gr->dw_m || gr->dyb || gr->dw1 || gr->db1 || gr->dw2 || gr->db2);
    const bool below_h0 = grads && (gr->dm || gr->dw_m || gr->dyb);
    const local_in x = {m, w_m, yb, w1, b1, w2, b2};
    const int nchunks = (B + K - 1) / K;
    const size_t per_thread = chunk_floats(d) + (NT > 1 ? private_floats(d) : 0);
    const size_t nm = (size_t)B * d->mc * d->hw, nwm = (size_t)d->c0 * d->mc, nw1 = (size_t)d->c1 * d->c0;
    double sums[MAX_THREADS][2];
    if (NT > MAX_THREADS)
        return NAN;
    /* One region for the whole loss: thread t takes chunks t, t+NT, ... with single-threaded BLAS and
     * sums its gradients privately; the sums are added in thread order (deterministic for a thread
     * count, and no fork/join per product, which matters when the cores are shared). */
    for (int t = 0; t < NT; t++) {
        sums[t][0] = sums[t][1] = 0;
        if (grads && NT > 1)
            memset(scratch + (size_t)t * per_thread + chunk_floats(d), 0, private_floats(d) * sizeof(float));
    }
#pragma omp parallel num_threads(NT)
    {
        /* The team may be smaller than asked (e.g. nested): stride by its real size. */
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        float *buf = scratch + (size_t)t * per_thread;
        relate_infomax_grads mine = {0}, *gp = NULL;
        if (grads && NT == 1) {
            mine = *gr;
            gp = &mine;
        } else if (grads) {
            float *q = buf + chunk_floats(d);
            mine = (relate_infomax_grads){.dm = gr->dm ? q : NULL,
                                          .dw_m = gr->dw_m ? q + nm : NULL,
                                          .dyb = gr->dyb, /* rows of disjoint chunks: shared */
                                          .dw1 = gr->dw1 ? q + nm + nwm : NULL,
                                          .db1 = gr->db1 ? q + nm + nwm + nw1 : NULL,
                                          .dw2 = gr->dw2 ? q + nm + nwm + nw1 + d->c1 : NULL,
                                          .db2 = gr->db2 ? q + nm + nwm + nw1 + 2 * d->c1 : NULL};
            gp = &mine;
        }
        for (int c = t; c < nchunks; c += nt) {
            const int n0 = c * K, k = B - n0 < K ? B - n0 : K;
            local_chunk(&x, d, n0, k, gN, gp, below_h0, buf, sums[t]);
        }
    }
    double sum_pos = 0, sum_neg = 0;
    for (int t = 0; t < NT; t++) {
        sum_pos += sums[t][0];
        sum_neg += sums[t][1];
        if (!grads || NT == 1)
            continue;
        const float *q = scratch + (size_t)t * per_thread + chunk_floats(d);
        float *dst[6] = {gr->dm, gr->dw_m, gr->dw1, gr->db1, gr->dw2, gr->db2};
        const size_t off[6] = {0, nm, nm + nwm, nm + nwm + nw1, nm + nwm + nw1 + d->c1, nm + nwm + nw1 + 2 * d->c1};
        const size_t cnt[6] = {nm, nwm, nw1, (size_t)d->c1, (size_t)d->c1, 1};
        for (int i = 0; i < 6; i++)
            if (dst[i])
                for (size_t j = 0; j < cnt[i]; j++)
                    dst[i][j] += q[off[i] + j];
    }
    /* As torch.mean: the float sum divided by the count in float. */
    const float ej = -((float)sum_pos / (float)N), em = (float)sum_neg / (float)N;
    return em - ej;
}

/* The oracle: one position at a time, the reference's formula with the concatenation spelled out
 * as two sums; double accumulators everywhere (the gradients in `acc`, then added to gr). */
size_t relate_infomax_ref_scratch_doubles(const relate_infomax_dims *d)
{
    return (size_t)d->b * d->mc * d->hw + (size_t)d->c0 * d->mc + (size_t)d->b * d->c0 + (size_t)d->c1 * d->c0 +
           2 * (size_t)d->c1 + 1;
}

float relate_infomax_local_forward_ref(const float *m, const float *w_m, const float *yb, const float *w1,
                                       const float *b1, const float *w2, const float *b2,
                                       const relate_infomax_dims *d, const relate_infomax_grads *gr, double *acc)
{
    const int B = d->b, MC = d->mc, HW = d->hw, C0 = d->c0, C1 = d->c1;
    const size_t N = (size_t)B * HW;
    const float gN = 1.0f / (float)N;
    float h0[1024], h1[1024], d1[1024], d0[1024];
    if (C0 > 1024 || C1 > 1024)
        return NAN;
    const size_t nm = (size_t)B * MC * HW, nwm = (size_t)C0 * MC, nyb = (size_t)B * C0, nw1 = (size_t)C1 * C0;
    /* Without gradients acc may be NULL, and offsets from a null pointer are undefined (clang's
     * UBSan stops there): the accumulators are carved only from a real buffer. */
    double *am = NULL, *awm = NULL, *ayb = NULL, *aw1 = NULL, *ab1 = NULL, *aw2 = NULL, *ab2 = NULL;
    if (acc) {
        am = acc, awm = am + nm, ayb = awm + nwm, aw1 = ayb + nyb, ab1 = aw1 + nw1, aw2 = ab1 + C1, ab2 = aw2 + C1;
    }
    if (gr)
        memset(acc, 0, relate_infomax_ref_scratch_doubles(d) * sizeof(double));
    double sum_pos = 0, sum_neg = 0;
    for (int neg = 0; neg < 2; neg++)
        for (int n = 0; n < B; n++)
            for (int p = 0; p < HW; p++) {
                const int src = neg ? (n + 1) % B : n;
                const float *mi = m + (size_t)src * MC * HW;
                for (int c = 0; c < C0; c++) {
                    double a = 0;
                    for (int k = 0; k < MC; k++)
                        a += (double)w_m[(size_t)c * MC + k] * mi[(size_t)k * HW + p];
                    h0[c] = relu1((float)a + yb[(size_t)n * C0 + c]);
                }
                double t = b2[0];
                for (int o = 0; o < C1; o++) {
                    double a = b1[o];
                    for (int c = 0; c < C0; c++)
                        a += (double)w1[(size_t)o * C0 + c] * h0[c];
                    h1[o] = relu1((float)a);
                    t += (double)w2[o] * h1[o];
                }
                const float tf = (float)t;
                if (neg)
                    sum_neg += softplus1(tf, 1.0f, 20.0f);
                else
                    sum_pos += softplus1(-tf, 1.0f, 20.0f);
                if (!gr)
                    continue;
                const float dt = neg ? softplus1_grad(gN, tf, 1.0f, 20.0f) : -softplus1_grad(gN, -tf, 1.0f, 20.0f);
                ab2[0] += dt;
                for (int o = 0; o < C1; o++) {
                    aw2[o] += (double)dt * h1[o];
                    d1[o] = h1[o] > 0.0f ? dt * w2[o] : 0.0f;
                    ab1[o] += d1[o];
                }
                for (int c = 0; c < C0; c++) {
                    double a = 0;
                    for (int o = 0; o < C1; o++) {
                        a += (double)d1[o] * w1[(size_t)o * C0 + c];
                        aw1[(size_t)o * C0 + c] += (double)d1[o] * h0[c];
                    }
                    d0[c] = h0[c] > 0.0f ? (float)a : 0.0f;
                    ayb[(size_t)n * C0 + c] += d0[c];
                }
                for (int k = 0; k < MC; k++) {
                    double a = 0;
                    for (int c = 0; c < C0; c++) {
                        a += (double)w_m[(size_t)c * MC + k] * d0[c];
                        awm[(size_t)c * MC + k] += (double)d0[c] * mi[(size_t)k * HW + p];
                    }
                    am[(size_t)src * MC * HW + (size_t)k * HW + p] += a;
                }
            }
    if (gr) {
        float *dst[7] = {gr->dm, gr->dw_m, gr->dyb, gr->dw1, gr->db1, gr->dw2, gr->db2};
        const double *src[7] = {am, awm, ayb, aw1, ab1, aw2, ab2};
        const size_t cnt[7] = {nm, nwm, nyb, nw1, (size_t)C1, (size_t)C1, 1};
        for (int i = 0; i < 7; i++)
            if (dst[i])
                for (size_t j = 0; j < cnt[i]; j++)
                    dst[i][j] += (float)src[i][j];
    }
    /* As torch.mean: the float sum divided by the count in float. */
    const float ej = -((float)sum_pos / (float)N), em = (float)sum_neg / (float)N;
    return em - ej;
}
