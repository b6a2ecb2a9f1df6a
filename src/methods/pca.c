/* pca.c: PCA whitening (scikit-learn's PCA(whiten=True).fit_transform) and row L2 normalisation
 * for deepcluster. Sums in double over fixed blocks of rows; the eigen-decomposition is LAPACK's
 * dsyevd on the d x d covariance.
 * Not an SVD of the data matrix: the covariance route costs n*d^2 instead of n*d*min(n, d) memory
 * traffic and gives the same axes (the eigenvalues of C are s^2 / (n - 1)). */
#include "methods/pca.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK (shipped inside OpenBLAS), Fortran calling convention with gfortran's hidden string
 * lengths at the end. */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                    double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t jobz_len,
                    size_t uplo_len);

enum {
    PCA_BLOCK = 512, /* rows per block */
    PCA_GROUPS = 8   /* fixed number of partial sums, whatever the thread count */
};

/* Relative size below which an eigenvalue is rounding noise of a zero-variance direction. */
#define PCA_ZERO_VARIANCE 1e-12

int relate_pca_components(int d) { return d < 512 ? d : d / 2; }

static int64_t block_rows(int64_t n, int64_t b)
{
    const int64_t first = b * PCA_BLOCK;
    return n - first < PCA_BLOCK ? n - first : PCA_BLOCK;
}

/* buf [rows, d] = x rows of block b minus the mean, in double. */
static void centred_block(double *buf, const float *x, const double *mean, int64_t n, int d, int64_t b)
{
    const int64_t rows = block_rows(n, b);
    const float *src = x + (size_t)(b * PCA_BLOCK) * d;
    for (int64_t i = 0; i < rows; i++)
        for (int j = 0; j < d; j++)
            buf[i * d + j] = (double)src[i * d + j] - mean[j];
}

/* The eigenvectors of the symmetric cov [d, d] (overwritten) in decreasing eigenvalue order:
 * w [d, n_comp] row-major with column c the c-th axis; lambda [d] descending. */
static relate_status eigen_top(double *cov, int d, int n_comp, double *w, double *lambda, relate_error *err)
{
    int n = d, lda = d, info = 0, lwork = -1, liwork = -1, iwork_q = 0;
    double work_q = 0;
    double *ev = malloc((size_t)d * sizeof *ev);
    if (!ev)
        return relate_error_set(err, RELATE_ERR_NOMEM, "pca: out of memory");
    dsyevd_("V", "L", &n, cov, &lda, ev, &work_q, &lwork, &iwork_q, &liwork, &info, 1, 1);
    lwork = (int)work_q;
    liwork = iwork_q;
    double *work = malloc((size_t)(lwork > 1 ? lwork : 1) * sizeof *work);
    int *iwork = malloc((size_t)(liwork > 1 ? liwork : 1) * sizeof *iwork);
    if (info == 0 && work && iwork)
        dsyevd_("V", "L", &n, cov, &lda, ev, work, &lwork, iwork, &liwork, &info, 1, 1);
    relate_status st = RELATE_OK;
    if (!work || !iwork)
        st = relate_error_set(err, RELATE_ERR_NOMEM, "pca: out of memory");
    else if (info != 0)
        st = relate_error_set(err, RELATE_ERR_NUMERIC, "pca: the eigen-decomposition failed (LAPACK dsyevd info %d)",
                              info);
    if (st == RELATE_OK) {
        /* dsyevd: ascending eigenvalues, eigenvector i in column i of the column-major result,
         * i.e. contiguous at cov + i * d. */
        for (int c = 0; c < d; c++)
            lambda[c] = ev[d - 1 - c];
        for (int c = 0; c < n_comp; c++)
            for (int j = 0; j < d; j++)
                w[(size_t)j * n_comp + c] = cov[(size_t)(d - 1 - c) * d + j];
    }
    free(ev);
    free(work);
    free(iwork);
    return st;
}

relate_status relate_pca_whiten(const float *x, int64_t n, int d, int n_comp, float *out, double *explained_variance,
                                relate_error *err)
{
    if (n < 2 || d < 1 || n_comp < 1 || n_comp > d)
        return relate_error_set(err, RELATE_ERR_ARG, "pca: needs at least 2 rows and 1 <= n_components (%d) <= d (%d)",
                                n_comp, d);
    const int64_t nblocks = (n + PCA_BLOCK - 1) / PCA_BLOCK;
    const int nthreads = omp_get_max_threads();
    const size_t dd = (size_t)d * d;
    double *mean = calloc((size_t)d, sizeof *mean);
    double *part = calloc((size_t)PCA_GROUPS * dd, sizeof *part); /* mean partials, then covariance partials */
    const int nbufs = nthreads > PCA_GROUPS ? nthreads : PCA_GROUPS;
    double *bufs = malloc((size_t)nbufs * PCA_BLOCK * d * sizeof *bufs);
    double *cov = calloc(dd, sizeof *cov);
    double *w = malloc((size_t)d * n_comp * sizeof *w);
    double *lambda = malloc((size_t)d * sizeof *lambda);
    double *proj = malloc((size_t)nbufs * PCA_BLOCK * n_comp * sizeof *proj);
    double *colsq = calloc((size_t)nblocks * n_comp, sizeof *colsq);
    double *scale = malloc((size_t)n_comp * sizeof *scale);
    relate_status st = RELATE_OK;
    if (!mean || !part || !bufs || !cov || !w || !lambda || !proj || !colsq || !scale) {
        st = relate_error_set(err, RELATE_ERR_NOMEM, "pca: out of memory for %lld x %d features", (long long)n, d);
        goto done;
    }

    /* Mean: group g sums blocks g, g + G, ... in row order; groups are added in order. */
#pragma omp parallel for schedule(static)
    for (int g = 0; g < PCA_GROUPS; g++) {
        double *acc = part + (size_t)g * d;
        for (int64_t b = g; b < nblocks; b += PCA_GROUPS) {
            const int64_t rows = block_rows(n, b);
            const float *src = x + (size_t)(b * PCA_BLOCK) * d;
            for (int64_t i = 0; i < rows; i++)
                for (int j = 0; j < d; j++)
                    acc[j] += (double)src[i * d + j];
        }
    }
    for (int g = 0; g < PCA_GROUPS; g++)
        for (int j = 0; j < d; j++)
            mean[j] += part[(size_t)g * d + j];
    for (int j = 0; j < d; j++)
        mean[j] /= (double)n;

    /* Covariance: the same groups, each a running Xc^T Xc of its blocks (upper triangle). */
    memset(part, 0, (size_t)PCA_GROUPS * dd * sizeof *part);
#pragma omp parallel for schedule(static)
    for (int g = 0; g < PCA_GROUPS; g++) {
        double *buf = bufs + (size_t)g * PCA_BLOCK * d;
        for (int64_t b = g; b < nblocks; b += PCA_GROUPS) {
            centred_block(buf, x, mean, n, d, b);
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, (int)block_rows(n, b), 1.0, buf, d, 1.0,
                        part + (size_t)g * dd, d);
        }
    }
    for (int g = 0; g < PCA_GROUPS; g++)
        for (int i = 0; i < d; i++)
            for (int j = i; j < d; j++)
                cov[(size_t)i * d + j] += part[(size_t)g * dd + (size_t)i * d + j];
    for (int i = 0; i < d; i++)
        for (int j = i; j < d; j++) {
            cov[(size_t)i * d + j] /= (double)(n - 1);
            cov[(size_t)j * d + i] = cov[(size_t)i * d + j];
        }
    for (size_t i = 0; i < dd; i++)
        if (!isfinite(cov[i])) {
            st = relate_error_set(err, RELATE_ERR_NUMERIC, "pca: the features contain NaN or infinite values");
            goto done;
        }
    if ((st = eigen_top(cov, d, n_comp, w, lambda, err)) != RELATE_OK)
        goto done;
    if (explained_variance)
        for (int c = 0; c < n_comp; c++)
            explained_variance[c] = lambda[c];

    /* Projection block by block; each block's column sums of squares are kept apart. */
#pragma omp parallel
    {
        const int t = omp_get_thread_num();
        double *buf = bufs + (size_t)t * PCA_BLOCK * d;
        double *p = proj + (size_t)t * PCA_BLOCK * n_comp;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < nblocks; b++) {
            const int64_t rows = block_rows(n, b);
            centred_block(buf, x, mean, n, d, b);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, n_comp, d, 1.0, buf, d, w, n_comp, 0.0,
                        p, n_comp);
            float *o = out + (size_t)(b * PCA_BLOCK) * n_comp;
            double *sq = colsq + (size_t)b * n_comp;
            for (int64_t i = 0; i < rows; i++)
                for (int c = 0; c < n_comp; c++) {
                    const double v = p[i * n_comp + c];
                    o[i * n_comp + c] = (float)v;
                    sq[c] += v * v;
                }
        }
    }

    /* Whitening factors, zero-variance directions, and sklearn's svd_flip signs. */
    for (int c = 0; c < n_comp; c++) {
        double norm2 = 0;
        for (int64_t b = 0; b < nblocks; b++)
            norm2 += colsq[(size_t)b * n_comp + c];
        const bool dead = !(norm2 > 0) || lambda[c] <= PCA_ZERO_VARIANCE * lambda[0];
        scale[c] = dead ? 0.0 : sqrt((double)(n - 1) / norm2);
        int64_t arg = 0;
        float best = -1.0f;
        for (int64_t i = 0; i < n; i++) {
            const float a = fabsf(out[(size_t)i * n_comp + c]);
            if (a > best) {
                best = a;
                arg = i;
            }
        }
        if (out[(size_t)arg * n_comp + c] < 0)
            scale[c] = -scale[c];
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < n_comp; c++)
            out[(size_t)i * n_comp + c] = (float)((double)out[(size_t)i * n_comp + c] * scale[c]);

done:
    free(mean);
    free(part);
    free(bufs);
    free(cov);
    free(w);
    free(lambda);
    free(proj);
    free(colsq);
    free(scale);
    return st;
}

void relate_l2_normalize_rows(float *x, int64_t n, int d)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float *r = x + (size_t)i * d;
        double s = 0;
        for (int j = 0; j < d; j++)
            s += (double)r[j] * r[j];
        const float norm = (float)sqrt(s);
        if (norm > 0)
            for (int j = 0; j < d; j++)
                r[j] /= norm;
    }
}
