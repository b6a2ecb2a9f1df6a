/* pca.h: PCA whitening as scikit-learn's PCA(n_components, whiten=True).fit_transform computes it,
 * and row L2 normalisation: deepcluster's feature pre-processing (spec 3.5 step 3).
 * Not a linear-algebra library: one eigen-decomposition of a d x d covariance (LAPACK dsyevd from
 * OpenBLAS) and blocked BLAS products; d is small (64, or 512 for resnet34).
 *
 *   float *z = malloc(n * relate_pca_components(d) * sizeof *z);
 *   if (relate_pca_whiten(feats, n, d, relate_pca_components(d), z, NULL, &err) != RELATE_OK) ...;
 *   relate_l2_normalize_rows(z, n, relate_pca_components(d));
 *
 * Deterministic, and independent of the thread count: every sum runs over fixed blocks of rows
 * combined in a fixed order. */
#ifndef RELATE_METHODS_PCA_H
#define RELATE_METHODS_PCA_H

#include <stdint.h>

#include "relate/status.h"

/* The reference's number of components: d below 512, else d/2 (spec 3.5, A8 d). */
int relate_pca_components(int d);

/* out [n, n_comp] = the whitened projection of x [n, d] on its top n_comp principal axes:
 *   centre (mean in double), covariance C = Xc^T Xc / (n - 1) (double), eigenvectors v_c of C in
 *   decreasing eigenvalue order, out[:, c] = Xc v_c / sqrt(lambda_c).
 * sklearn's fit_transform returns U[:, c] * sqrt(n - 1) of the SVD Xc = U S V^T, the same thing;
 * relate divides each projected column by its own norm * 1/sqrt(n - 1), i.e. by the sqrt of the
 * variance it actually has, which equals sqrt(lambda_c) in exact arithmetic and keeps the
 * identity U^T U = I in floating point. Signs follow sklearn's svd_flip (u-based: the entry of
 * largest magnitude of each output column is positive). A direction of zero variance (a dead
 * feature; numerically: lambda_c <= 1e-12 lambda_max) gives a zero column where sklearn would
 * return rounding noise scaled to unit variance.
 * explained_variance [n_comp] (may be NULL) receives lambda_c = s_c^2 / (n - 1).
 * Needs n >= 2 and 1 <= n_comp <= d. */
relate_status relate_pca_whiten(const float *x, int64_t n, int d, int n_comp, float *out, double *explained_variance,
                                relate_error *err);

/* x[i] /= ||x[i]||_2 for every row (numpy's `x / np.linalg.norm(x, axis=1)[:, None]`); an all-zero
 * row stays zero (numpy would give NaN). */
void relate_l2_normalize_rows(float *x, int64_t n, int d);

#endif
