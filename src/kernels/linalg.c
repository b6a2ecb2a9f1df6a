/* linalg.c: nn.Linear and 2-D matmul forward/backward through OpenBLAS sgemm/sgemv.
 * Not batched matmul, and no own GEMM: OpenBLAS owns blocking and threading. */
#include <cblas.h>
#include <string.h>

#include "kernels/kernels.h"

/* Column sums of dy [n, out] are done over a strip of columns at a time so that a row-major
 * sweep can accumulate in double without any allocation. */
#define COLSUM_STRIP 256

void relate_linear_forward(float *y, const float *x, const float *w, const float *b,
                           int n, int in, int out)
{
    /* As torch.addmm: start from the broadcast bias and let the product accumulate onto it. */
    float beta = 0.0f;
    if (b) {
        for (int i = 0; i < n; i++)
            memcpy(y + (size_t)i * out, b, (size_t)out * sizeof(float));
        beta = 1.0f;
    }
    if (n == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w, in, x, 1, beta, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in, beta,
                    y, out);
}

void relate_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                            const float *w, int n, int in, int out)
{
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f, dy, out, w, in,
                    1.0f, dx, in);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, dy, out, x, in, 1.0f,
                    dw, in);
    if (db) {
        const int strips = (out + COLSUM_STRIP - 1) / COLSUM_STRIP;
        /* Each column is summed serially in row order, so threads never change the bits. */
#pragma omp parallel for schedule(static) if ((size_t)n * out >= 65536)
        for (int s = 0; s < strips; s++) {
            const int j0 = s * COLSUM_STRIP;
            const int cw = out - j0 < COLSUM_STRIP ? out - j0 : COLSUM_STRIP;
            double acc[COLSUM_STRIP];
            for (int j = 0; j < cw; j++)
                acc[j] = 0;
            for (int i = 0; i < n; i++) {
                const float *r = dy + (size_t)i * out + j0;
                for (int j = 0; j < cw; j++)
                    acc[j] += r[j];
            }
            for (int j = 0; j < cw; j++)
                db[j0 + j] += (float)acc[j];
        }
    }
}

static CBLAS_TRANSPOSE tr(int t)
{
    return t ? CblasTrans : CblasNoTrans;
}

void relate_matmul_forward(float *c, const float *a, const float *b, int m, int n, int k,
                           int trans_a, int trans_b)
{
    const int lda = trans_a ? m : k, ldb = trans_b ? k : n;
    cblas_sgemm(CblasRowMajor, tr(trans_a), tr(trans_b), m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, n);
}

void relate_matmul_backward(float *da, float *db, const float *dc, const float *a, const float *b,
                            int m, int n, int k, int trans_a, int trans_b)
{
    const int lda = trans_a ? m : k, ldb = trans_b ? k : n;
    if (da) {
        if (!trans_a) /* dA [m,k] += dC [m,n] * op(b)^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, tr(!trans_b), m, k, n, 1.0f, dc, n, b, ldb,
                        1.0f, da, lda);
        else /* stored A [k,m]: dA += op(b) [k,n] * dC^T */
            cblas_sgemm(CblasRowMajor, tr(trans_b), CblasTrans, k, m, n, 1.0f, b, ldb, dc, n, 1.0f,
                        da, lda);
    }
    if (db) {
        if (!trans_b) /* dB [k,n] += op(a)^T [k,m] * dC */
            cblas_sgemm(CblasRowMajor, tr(!trans_a), CblasNoTrans, k, n, m, 1.0f, a, lda, dc, n,
                        1.0f, db, ldb);
        else /* stored B [n,k]: dB += dC^T [n,m] * op(a) */
            cblas_sgemm(CblasRowMajor, CblasTrans, tr(trans_a), n, k, m, 1.0f, dc, n, a, lda, 1.0f,
                        db, ldb);
    }
}
