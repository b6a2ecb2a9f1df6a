/* relate/tsne.h: t-SNE (van der Maaten & Hinton 2008), a 2-D map of feature vectors in which
 * neighbours stay neighbours: exact O(N^2) gradients for small N, Barnes-Hut (van der Maaten 2014:
 * sparse P over the 3 x perplexity nearest neighbours, a quadtree for the repulsion) above.
 * Not a drawing: `relate embed --tsne` draws the map (src/cli/draw_scatter.c); not a general
 * manifold-learning library (no other dimension than 2, no other kernel than Student-t).
 *
 *   relate_tsne_options o = relate_tsne_defaults();   // perplexity 30, 1000 iterations, seed 0
 *   float *y = malloc(n * 2 * sizeof *y);
 *   relate_tsne_result r;
 *   if (relate_tsne_run(features, n, d, &o, y, &r, &err) != RELATE_OK) puts(err.msg);
 *   printf("%s, KL %.4f\n", r.barnes_hut ? "Barnes-Hut" : "exact", r.kl);
 *
 * The result depends only on the inputs and the options (the seed included), never on the
 * number of threads: every parallel loop computes each point's sums alone, in a fixed order. */
#ifndef RELATE_TSNE_H
#define RELATE_TSNE_H

#include <stdbool.h>
#include <stdint.h>

#include "relate/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Up to this many points t-SNE is exact (dense P, O(N^2) per iteration, N^2 floats of P:
 * 100 MB at 5000); above it Barnes-Hut. */
#define RELATE_TSNE_EXACT_MAX 5000

typedef struct relate_tsne_options {
    double perplexity;            /* 30: each point's Gaussian has this effective number of neighbours
                                   * (entropy log(perplexity) nats); must be below N */
    int iterations;               /* 1000 gradient steps in all, early exaggeration included */
    double learning_rate;         /* <= 0 (default): "auto", max(N / early_exaggeration / 4, 50), as
                                   * scikit-learn >= 1.2 (Belkina et al. 2019's N / 12 for a gradient
                                   * without the factor 4 that this one, like sklearn's, has) */
    double early_exaggeration;    /* 12: P is multiplied by it during the first ... */
    int exaggeration_iterations;  /* ... 250 iterations */
    double momentum;              /* 0.5 during early exaggeration */
    double final_momentum;        /* 0.8 after it */
    double theta;                 /* 0.5: Barnes-Hut's accuracy (0: every point visited, exact) */
    int64_t exact_max;            /* RELATE_TSNE_EXACT_MAX: N <= exact_max is exact, else Barnes-Hut
                                   * (0 forces Barnes-Hut) */
    uint64_t seed;                /* the initial layout: N(0, (1e-4)^2) per coordinate, relate's RNG */
} relate_tsne_options;

relate_tsne_options relate_tsne_defaults(void);

typedef struct relate_tsne_result {
    bool barnes_hut;      /* which gradient ran */
    int neighbours;       /* Barnes-Hut: nearest neighbours per point in P (floor(3 perplexity), at
                           * most N - 1); exact: N - 1 */
    double learning_rate; /* the one used ("auto" resolved) */
    double kl;            /* KL(P || Q) of the final map (exact: every pair; Barnes-Hut: P's
                           * non-zeros, Q's normaliser from the quadtree at the options' theta) */
} relate_tsne_result;

/* x: [n, d] row-major (not modified); y: [n, 2] out. result may be NULL. Fails with
 * RELATE_ERR_ARG (n < 2, d < 1, perplexity not in (0, n), non-finite x, bad options),
 * RELATE_ERR_NOMEM, or RELATE_ERR_NUMERIC (the map diverged: a learning rate far too large). */
relate_status relate_tsne_run(const float *x, int64_t n, int d, const relate_tsne_options *o, float *y,
                              relate_tsne_result *result, relate_error *err);
/* relate_tsne_run without the result. o may be NULL (the defaults). */
relate_status relate_tsne(const float *x, int64_t n, int d, const relate_tsne_options *o, float *y,
                          relate_error *err);

/* ---- the building blocks, public so that tests can check each one ---- */

/* Input affinities, dense (the exact method): p [n, n] = (P + P^T) / 2n, where row i of P is
 * p_j|i = exp(-beta_i |x_i - x_j|^2) / sum_k!=i exp(-beta_i |x_i - x_k|^2), p_i|i = 0, and beta_i
 * is found by bisection so that row i's entropy is log(perplexity) nats (to 1e-10). */
relate_status relate_tsne_affinities(const float *x, int64_t n, int d, double perplexity, float *p,
                                     relate_error *err);

/* The sparse P of Barnes-Hut, CSR, columns ascending in each row, symmetric. */
typedef struct relate_tsne_sparse {
    int64_t n;
    int64_t *row; /* [n + 1]: row i holds entries row[i] .. row[i + 1] - 1 */
    int32_t *col; /* [nnz] */
    float *val;   /* [nnz] */
} relate_tsne_sparse;

/* As relate_tsne_affinities, but row i of the conditional P is over its k nearest neighbours
 * only (squared Euclidean distance; ties: the lower index), then symmetrised. k in [1, n - 1]
 * and perplexity < k + 1. Free with relate_tsne_sparse_free. */
relate_status relate_tsne_affinities_sparse(const float *x, int64_t n, int d, double perplexity, int k,
                                            relate_tsne_sparse *p, relate_error *err);
void relate_tsne_sparse_free(relate_tsne_sparse *p);

/* The exact gradient of KL(P || Q) with respect to y [n, 2] (interleaved x, y), P multiplied by
 * `exaggeration`: grad_i = 4 sum_j (exaggeration p_ij - q_ij) w_ij (y_i - y_j), w_ij =
 * 1 / (1 + |y_i - y_j|^2), q_ij = w_ij / sum_k!=l w_kl. p: [n, n]. Fails only for lack of
 * memory. */
relate_status relate_tsne_gradient_exact(const float *p, const double *y, int64_t n, double exaggeration,
                                         double *grad, relate_error *err);
/* KL(P || Q) = sum_i!=j p_ij log(p_ij / q_ij) over the non-zero p_ij; NaN when out of memory. */
double relate_tsne_kl_exact(const float *p, const double *y, int64_t n);

/* The Barnes-Hut gradient: the attraction over P's non-zeros exactly, the repulsion and Q's
 * normaliser Z from a quadtree whose cells of side s at distance r from the point count as one
 * body at their centre of mass when s / r < theta (theta = 0: every point, exact up to rounding).
 * z (may be NULL): that Z. Fails only for lack of memory. */
relate_status relate_tsne_gradient_bh(const relate_tsne_sparse *p, const double *y, double theta,
                                      double exaggeration, double *grad, double *z, relate_error *err);
/* KL(P || Q) over P's non-zeros, with Q's normaliser z (from relate_tsne_gradient_bh). */
double relate_tsne_kl_sparse(const relate_tsne_sparse *p, const double *y, double z);

#ifdef __cplusplus
}
#endif
#endif
