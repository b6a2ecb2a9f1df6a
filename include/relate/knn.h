/* relate/knn.h: the weighted k-nearest-neighbour classifier that judges frozen self-supervised
 * features without training anything (InstDisc, Wu et al. 2018; the protocol of solo-learn and
 * lightly), and its command-line stage.
 * Not linear evaluation (relate/train.h): no classifier is trained here.
 *
 *   relate_knn_options o = relate_knn_defaults();            // k = 200, T = 0.1
 *   double top1, top5;
 *   relate_knn_classify(train, train_labels, ntrain, test, test_labels, ntest, d, classes, &o,
 *                       NULL, &top1, &top5, &err);
 */
#ifndef RELATE_KNN_H
#define RELATE_KNN_H

#include <stdint.h>
#include <stdio.h>

#include "relate/data.h"
#include "relate/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct relate_knn_options {
    int k;              /* neighbours that vote (min(k, ntrain) are used) */
    double temperature; /* a neighbour's vote is exp(cosine similarity / temperature) */
} relate_knn_options;

relate_knn_options relate_knn_defaults(void);

/* Classifies every test row by its k most similar training rows: rows are L2-normalised,
 * similarity is their dot product, each neighbour adds exp(sim / T) to its label's score, and
 * classes are ranked by score. top1/top5: the percentage of test rows whose label ranks first /
 * among the first five. pred (may be NULL): each test row's first-ranked class. Labels must lie
 * in [0, classes). Features are [n, d] row-major and are not modified. */
relate_status relate_knn_classify(const float *train, const int32_t *train_labels, int64_t ntrain, const float *test,
                                  const int32_t *test_labels, int64_t ntest, int d, int classes,
                                  const relate_knn_options *o, int32_t *pred, double *top1, double *top5,
                                  relate_error *err);

/* Retrieval (the paper's image-retrieval figure, measured): for each query row, the k most
 * similar database rows by cosine similarity, most similar first (ties: the lower index).
 * top (may be NULL): [nq, k] their indices. precision: the mean over queries of the fraction of
 * the k that share the query's label, in percent; map: the mean over queries of the average
 * precision over the k (the precision at each rank that holds a same-label row, averaged over
 * those ranks; 0 when none does), in percent, i.e. mAP@k. k <= ndb. */
relate_status relate_retrieve(const float *db, const int32_t *db_labels, int64_t ndb, const float *queries,
                              const int32_t *query_labels, int64_t nq, int d, int k, int64_t *top, double *precision,
                              double *map, relate_error *err);

/* The kNN accuracy of a backbone on a dataset: eval-mode features (no augmentation, batch norm
 * with its running statistics, nothing in the backbone changes) of the labelled training split
 * vote for the test split's images. Needs both splits labelled (RELATE_ERR_ARG otherwise). */
struct relate_backbone;
struct relate_dataset;
relate_status relate_knn_backbone(struct relate_backbone *bb, const struct relate_dataset *ds, int data_size,
                                  const relate_knn_options *o, double *top1, double *top5, relate_error *err);

/* `relate knn`: the eval-mode features of a checkpoint's backbone on a dataset's training split
 * (the neighbours) and test split (the queries), then relate_knn_classify. */
typedef struct relate_knn_stage_options {
    const char *checkpoint;  /* any relate or reference checkpoint holding a backbone */
    const char *backbone;    /* "" or NULL: the one the checkpoint records, else conv4 */
    const char *dataset, *data_root;
    relate_dataset_options data; /* folder datasets: --val_fraction, --strict_images */
    int data_size;           /* batch size of the feature pass */
    relate_knn_options knn;
    FILE *out;
    double top1, top5;       /* out */
} relate_knn_stage_options;

relate_status relate_knn_stage(relate_knn_stage_options *o, relate_error *err);

#ifdef __cplusplus
}
#endif
#endif
