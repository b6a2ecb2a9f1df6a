/* kmeans.h: k-means with scikit-learn's semantics (KMeans(init="k-means++", n_init, max_iter,
 * tol), Lloyd iterations): deepcluster's clustering (spec 3.5 step 4).
 * Not mini-batch k-means and not Elkan's variant (the reference's sklearn picked Elkan for dense
 * data; it computes the same iterations, only faster on some data).
 *
 *   relate_kmeans_options o = relate_kmeans_defaults(100);   // 5 restarts, 30 iterations, tol 1e-4
 *   o.seed = seed; o.stream = epoch;
 *   int32_t *labels = malloc(n * sizeof *labels);
 *   relate_kmeans_report rep;
 *   if (relate_kmeans_fit(x, n, d, &o, labels, NULL, &rep, &err) != RELATE_OK) ...;
 *
 * Distances are ||c||^2 - 2 x.c (+ ||x||^2) with x.c from OpenBLAS sgemm over chunks of rows;
 * every sum is over fixed chunks combined in a fixed order, so results do not depend on the
 * thread count beyond what sgemm itself does (deterministic for a given count, tested). Random
 * draws come from relate_rng keyed by (seed, stream, restart), never from the clock. */
#ifndef RELATE_METHODS_KMEANS_H
#define RELATE_METHODS_KMEANS_H

#include <stdint.h>

#include "relate/rng.h"
#include "relate/status.h"

typedef struct relate_kmeans_options {
    int k;              /* clusters */
    int n_init;         /* restarts; the lowest inertia wins (sklearn's n_init) */
    int max_iter;       /* Lloyd iterations per restart */
    double tol;         /* relative: the run stops when sum_j ||c_j' - c_j||^2 <= tol * mean_j var(x[:, j]) */
    int n_local_trials; /* k-means++ candidates per centre; <= 0: 2 + floor(ln k) (sklearn's greedy variant) */
    uint64_t seed;
    uint32_t stream;    /* separates independent clusterings of one seed (deepcluster: the epoch) */
} relate_kmeans_options;

/* k clusters, 5 restarts, 30 iterations, tol 1e-4 (the reference's KMeans arguments), default
 * trials, seed 0, stream 0. */
relate_kmeans_options relate_kmeans_defaults(int k);

/* What relate_kmeans_fit reports beside the labels. */
typedef struct relate_kmeans_report {
    double inertia;     /* of the kept restart: sum_i ||x_i - c_{label_i}||^2 */
    int n_iter;         /* its Lloyd iterations */
    int best_restart;
    int restarts;       /* entries filled in restart_inertia */
    double restart_inertia[16]; /* the first 16 restarts' final inertias */
} relate_kmeans_report;

/* The rng of restart r: relate_rng keyed (seed, stream, r, RELATE_PURPOSE_METHOD << 24 | 'KM'). */
void relate_kmeans_rng(relate_rng *rng, const relate_kmeans_options *o, int restart);

/* sklearn's _tolerance: tol * mean_j var(x[:, j]) (population variance, in double). */
double relate_kmeans_tolerance(const float *x, int64_t n, int d, double tol);

/* sklearn's greedy k-means++ (_kmeans_plusplus): the first centre uniformly, then for each next
 * one n_local_trials candidates drawn with probability proportional to D^2 (the squared distance
 * to the closest centre so far; inverse CDF over the running sum, `searchsorted` side left), and
 * the candidate that leaves the smallest total D^2 is kept. centers [k, d]; indices [k] (may be
 * NULL) receive the chosen rows. x_sq [n] holds ||x_i||^2 (NULL: computed). */
relate_status relate_kmeans_plusplus(const float *x, const float *x_sq, int64_t n, int d, int k, int n_local_trials,
                                     relate_rng *rng, float *centers, int64_t *indices, relate_error *err);

/* One k-means run from init [k, d] (sklearn's _kmeans_single_lloyd): each iteration assigns every
 * row to its nearest centre (first minimum of ||c||^2 - 2 x.c), moves each centre to its rows'
 * mean (an empty cluster takes the row farthest from its centre, as sklearn relocates), and stops
 * when the labels repeat (strict convergence) or sum_j ||shift_j||^2 <= tol_abs, after max_iter at
 * most; without strict convergence the labels are recomputed for the final centres.
 * centers [k, d] receives the result (may alias init); labels [n]; *inertia and *n_iter (may be
 * NULL) the final inertia and the iterations run. */
relate_status relate_kmeans_lloyd(const float *x, int64_t n, int d, int k, const float *init, int max_iter,
                                  double tol_abs, float *centers, int32_t *labels, double *inertia, int *n_iter,
                                  relate_error *err);

/* sum_i ||x_i - centers[labels_i]||^2 in double. */
double relate_kmeans_inertia(const float *x, int64_t n, int d, const float *centers, const int32_t *labels);

/* sklearn's KMeans.fit: centre the data, tol_abs = relate_kmeans_tolerance, n_init restarts of
 * k-means++ then Lloyd, keep a restart when its inertia is strictly lower than the best so far and
 * its clustering differs (up to a permutation of labels) from the best one. labels [n]; centers
 * [k, d] may be NULL; rep may be NULL. Needs n >= k >= 1. */
relate_status relate_kmeans_fit(const float *x, int64_t n, int d, const relate_kmeans_options *o, int32_t *labels,
                                float *centers, relate_kmeans_report *rep, relate_error *err);

#endif
