/* knn.c: the weighted kNN classifier of relate/knn.h and the `relate knn` stage.
 * Similarities come from OpenBLAS in blocks of test rows, so a 10,000 x 60,000 comparison never
 * holds more than one block's row of scores per test feature. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "relate/checkpoint.h"
#include "relate/knn.h"
#include "relate/train.h"

relate_knn_options relate_knn_defaults(void) { return (relate_knn_options){.k = 200, .temperature = 0.1}; }

enum { KNN_BLOCK = 256 }; /* test rows per similarity block */

/* Rows scaled to unit length (a zero row stays zero), into a new buffer. */
static float *normalised(const float *x, int64_t n, int d)
{
    float *y = malloc((size_t)(n > 0 ? n : 1) * (size_t)d * sizeof *y);
    if (!y)
        return NULL;
    for (int64_t i = 0; i < n; i++) {
        const float *r = x + i * d;
        double ss = 0.0;
        for (int j = 0; j < d; j++)
            ss += (double)r[j] * r[j];
        /* F.normalize's eps: rows shorter than 1e-12 are divided by 1e-12. */
        const double inv = 1.0 / (sqrt(ss) > 1e-12 ? sqrt(ss) : 1e-12);
        for (int j = 0; j < d; j++)
            y[i * d + j] = (float)(r[j] * inv);
    }
    return y;
}

/* A min-heap of the k largest (similarity, index) pairs seen so far. */
typedef struct neighbour {
    float sim;
    int64_t index;
} neighbour;

static void sift_down(neighbour *h, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l].sim < h[m].sim)
            m = l;
        if (r < n && h[r].sim < h[m].sim)
            m = r;
        if (m == i)
            return;
        neighbour t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void top_k(const float *sims, int64_t n, int k, neighbour *h)
{
    for (int i = 0; i < k; i++)
        h[i] = (neighbour){sims[i], i};
    for (int i = k / 2 - 1; i >= 0; i--)
        sift_down(h, k, i);
    for (int64_t j = k; j < n; j++)
        if (sims[j] > h[0].sim) {
            h[0] = (neighbour){sims[j], j};
            sift_down(h, k, 0);
        }
}

relate_status relate_knn_classify(const float *train, const int32_t *train_labels, int64_t ntrain, const float *test,
                                  const int32_t *test_labels, int64_t ntest, int d, int classes,
                                  const relate_knn_options *o, int32_t *pred, double *top1, double *top5,
                                  relate_error *err)
{
    const relate_knn_options opt = o ? *o : relate_knn_defaults();
    if (ntrain < 1 || ntest < 1 || d < 1 || classes < 1 || opt.k < 1 || !(opt.temperature > 0))
        return relate_error_set(err, RELATE_ERR_ARG, "kNN: needs training and test rows, d >= 1, classes >= 1, k >= 1 "
                                                     "and a positive temperature");
    for (int64_t i = 0; i < ntrain; i++)
        if (train_labels[i] < 0 || train_labels[i] >= classes)
            return relate_error_set(err, RELATE_ERR_ARG, "kNN: training label %d of row %lld is outside [0, %d)",
                                    train_labels[i], (long long)i, classes);
    for (int64_t i = 0; i < ntest; i++)
        if (test_labels[i] < 0 || test_labels[i] >= classes)
            return relate_error_set(err, RELATE_ERR_ARG, "kNN: test label %d of row %lld is outside [0, %d)",
                                    test_labels[i], (long long)i, classes);
    const int k = opt.k < ntrain ? opt.k : (int)ntrain;
    float *tr = normalised(train, ntrain, d), *te = normalised(test, ntest, d);
    float *sims = malloc((size_t)KNN_BLOCK * (size_t)ntrain * sizeof *sims);
    neighbour *heap = malloc((size_t)k * sizeof *heap);
    double *votes = malloc((size_t)classes * sizeof *votes);
    relate_status st = RELATE_OK;
    if (!tr || !te || !sims || !heap || !votes) {
        st = relate_error_set(err, RELATE_ERR_NOMEM, "kNN: out of memory for %lld x %lld similarities",
                              (long long)KNN_BLOCK, (long long)ntrain);
        goto done;
    }
    int64_t hit1 = 0, hit5 = 0;
    for (int64_t b0 = 0; b0 < ntest; b0 += KNN_BLOCK) {
        const int nb = (int)(ntest - b0 < KNN_BLOCK ? ntest - b0 : KNN_BLOCK);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, (int)ntrain, d, 1.0f, te + b0 * d, d, tr, d, 0.0f,
                    sims, (int)ntrain);
        for (int r = 0; r < nb; r++) {
            top_k(sims + (size_t)r * ntrain, ntrain, k, heap);
            memset(votes, 0, (size_t)classes * sizeof *votes);
            /* float32 weights, summed in double: the ranking of a float32 scatter_add, up to ties */
            for (int i = 0; i < k; i++)
                votes[train_labels[heap[i].index]] += (double)expf((float)(heap[i].sim / opt.temperature));
            int best = 0;
            for (int c = 1; c < classes; c++)
                if (votes[c] > votes[best])
                    best = c;
            const int32_t y = test_labels[b0 + r];
            int above = 0; /* classes ranked before the true one */
            for (int c = 0; c < classes; c++)
                above += votes[c] > votes[y];
            hit1 += best == y;
            hit5 += above < 5;
            if (pred)
                pred[b0 + r] = best;
        }
    }
    *top1 = 100.0 * (double)hit1 / (double)ntest;
    *top5 = 100.0 * (double)hit5 / (double)ntest;
done:
    free(tr);
    free(te);
    free(sims);
    free(heap);
    free(votes);
    return st;
}

/* Most similar first; equal similarities by index, as a stable ranking would list them. */
static int by_similarity(const void *a, const void *b)
{
    const neighbour *x = a, *y = b;
    if (x->sim != y->sim)
        return x->sim > y->sim ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

relate_status relate_retrieve(const float *db, const int32_t *db_labels, int64_t ndb, const float *queries,
                              const int32_t *query_labels, int64_t nq, int d, int k, int64_t *top, double *precision,
                              double *map, relate_error *err)
{
    if (ndb < 1 || nq < 1 || d < 1 || k < 1 || k > ndb)
        return relate_error_set(err, RELATE_ERR_ARG, "retrieval: needs database and query rows, d >= 1 and "
                                                     "1 <= k <= %lld database rows, got k = %d",
                                (long long)ndb, k);
    float *nd = normalised(db, ndb, d), *nqr = normalised(queries, nq, d);
    float *sims = malloc((size_t)KNN_BLOCK * (size_t)ndb * sizeof *sims);
    neighbour *heap = malloc((size_t)k * sizeof *heap);
    relate_status st = RELATE_OK;
    if (!nd || !nqr || !sims || !heap) {
        st = relate_error_set(err, RELATE_ERR_NOMEM, "retrieval: out of memory");
        goto done;
    }
    double psum = 0.0, apsum = 0.0;
    for (int64_t b0 = 0; b0 < nq; b0 += KNN_BLOCK) {
        const int nb = (int)(nq - b0 < KNN_BLOCK ? nq - b0 : KNN_BLOCK);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, (int)ndb, d, 1.0f, nqr + b0 * d, d, nd, d, 0.0f,
                    sims, (int)ndb);
        for (int r = 0; r < nb; r++) {
            top_k(sims + (size_t)r * ndb, ndb, k, heap);
            qsort(heap, (size_t)k, sizeof *heap, by_similarity);
            const int32_t y = query_labels[b0 + r];
            int hits = 0;
            double ap = 0.0;
            for (int i = 0; i < k; i++) {
                if (top)
                    top[(b0 + r) * k + i] = heap[i].index;
                if (db_labels[heap[i].index] == y) {
                    hits++;
                    ap += (double)hits / (double)(i + 1);
                }
            }
            psum += (double)hits / (double)k;
            apsum += hits ? ap / hits : 0.0;
        }
    }
    *precision = 100.0 * psum / (double)nq;
    *map = 100.0 * apsum / (double)nq;
done:
    free(nd);
    free(nqr);
    free(sims);
    free(heap);
    return st;
}

relate_status relate_knn_backbone(relate_backbone *bb, const relate_dataset *ds, int data_size,
                                  const relate_knn_options *o, double *top1, double *top5, relate_error *err)
{
    const relate_split *tr = relate_dataset_split(ds, RELATE_SPLIT_TRAIN);
    const relate_split *te = relate_dataset_split(ds, RELATE_SPLIT_TEST);
    relate_status need = relate_dataset_need_labels(ds, true, true, "kNN", err);
    if (need != RELATE_OK)
        return need;
    const int d = bb->feature_size;
    float *ftr = malloc((size_t)tr->count * d * sizeof *ftr);
    float *fte = malloc((size_t)te->count * d * sizeof *fte);
    relate_status st = RELATE_OK;
    if (!ftr || !fte)
        st = relate_error_set(err, RELATE_ERR_NOMEM, "kNN: out of memory for the features");
    if (st == RELATE_OK)
        st = relate_extract_features(bb, tr, &ds->info, RELATE_T5, data_size, ftr, err);
    if (st == RELATE_OK)
        st = relate_extract_features(bb, te, &ds->info, RELATE_T5, data_size, fte, err);
    if (st == RELATE_OK)
        st = relate_knn_classify(ftr, tr->labels, tr->count, fte, te->labels, te->count, d, ds->info.num_classes, o,
                                 NULL, top1, top5, err);
    free(ftr);
    free(fte);
    return st;
}

relate_status relate_knn_stage(relate_knn_stage_options *o, relate_error *err)
{
    FILE *out = o->out ? o->out : stdout;
    relate_dataset ds;
    relate_dataset_options dopts = o->data; /* the labelled splits only */
    dopts.skip_splits |= 1u << RELATE_SPLIT_UNLABELED;
    if (relate_dataset_open_with(&ds, o->dataset, o->data_root, &dopts, err) != RELATE_OK)
        return err->code;
    relate_dataset_report(&ds.info, out, stderr);
    relate_backbone bb;
    relate_status st = relate_backbone_from_file(&bb, o->checkpoint, o->backbone, err);
    const bool bb_made = st == RELATE_OK;
    if (st == RELATE_OK) {
        fprintf(out, "[INFO] %s features (eval mode) of the training and test splits\n", bb.name);
        st = relate_knn_backbone(&bb, &ds, o->data_size, &o->knn, &o->top1, &o->top5, err);
    }
    if (st == RELATE_OK)
        fprintf(out, "kNN (k=%d, T=%g) top-1: %.2f%%; top-5: %.2f%%\n", o->knn.k, o->knn.temperature, o->top1,
                o->top5);
    if (bb_made)
        relate_backbone_free(&bb);
    relate_dataset_close(&ds);
    return st;
}
