/* evaluate.c: eval-mode passes over a whole split: the test procedure (spec 5.3) and feature
 * extraction for linear evaluation. Both run the loader in order with a deterministic pipeline. */
#include <stdlib.h>
#include <string.h>

#include "relate/dist.h"
#include "relate/loader.h"
#include "relate/stage2.h"
#include "relate/train.h"

/* An in-order loader over the whole split, its epoch started. */
static relate_status open_in_order(relate_loader **ld, const relate_split *split, const relate_dataset_info *info,
                                   relate_pipeline pipeline, int batch_size, relate_error *err)
{
    relate_loader_config lc = relate_loader_defaults(split, info, pipeline);
    lc.batch_size = batch_size;
    lc.shuffle = false;
    lc.drop_last = false;
    if (relate_loader_create(ld, &lc, err) != RELATE_OK)
        return err->code;
    relate_loader_start_epoch(*ld, 0);
    return RELATE_OK;
}

relate_status relate_loader_features(relate_backbone *bb, relate_loader *ld, int64_t first, float *out,
                                     relate_error *err)
{
    relate_graph *g = relate_graph_create();
    if (!g)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    relate_graph_set_grad_enabled(g, false);
    const size_t d = (size_t)bb->feature_size;
    relate_status st = RELATE_OK;
    relate_batch b;
    while (relate_loader_next(ld, &b) == 1) {
        relate_graph_reset(g);
        relate_tensor *x = relate_tensor_wrap(g, 4, (int64_t[]){b.size, 3, b.side, b.side}, b.images);
        relate_tensor *f = relate_backbone_forward(g, bb, x, false);
        if (!f) {
            *err = *relate_graph_error(g);
            st = err->code;
            break;
        }
        for (int i = 0; i < b.size; i++)
            memcpy(out + (size_t)(first + b.indices[i]) * d, f->data + (size_t)i * d, d * sizeof *out);
    }
    relate_graph_destroy(g);
    return st;
}

/* Features of split's images [first, first + count) into out's rows of the same numbers. */
static relate_status extract_range(relate_backbone *bb, const relate_split *split, int64_t first, int64_t count,
                                   const relate_dataset_info *info, relate_pipeline pipeline, int batch_size,
                                   float *out, relate_error *err)
{
    if (count == 0)
        return RELATE_OK;
    const relate_split part = relate_split_range(split, first, count);
    relate_loader *ld;
    if (open_in_order(&ld, &part, info, pipeline, batch_size, err) != RELATE_OK)
        return err->code;
    const relate_status st = relate_loader_features(bb, ld, first, out, err);
    relate_loader_destroy(ld);
    return st;
}

/* In an MPI run each rank extracts a contiguous share of the split, and every rank then receives
 * the others' rows: eval-mode features depend on each image alone, so the result is the one
 * process's (dist_cli compares them). A rank whose pass fails still takes part in the broadcasts,
 * so the others do not wait for it forever; the error is then every rank's. */
relate_status relate_extract_features(relate_backbone *bb, const relate_split *split,
                                      const relate_dataset_info *info, relate_pipeline pipeline, int batch_size,
                                      float *out, relate_error *err)
{
    const int size = relate_dist_size(), rank = relate_dist_rank();
    const int64_t n = split->count;
    if (size == 1)
        return extract_range(bb, split, 0, n, info, pipeline, batch_size, out, err);
    const int64_t a = n * rank / size, b = n * (rank + 1) / size;
    relate_status st = extract_range(bb, split, a, b - a, info, pipeline, batch_size, out, err);
    double failed = st != RELATE_OK;
    relate_error e = {0};
    if (relate_dist_allreduce_sum_f64(&failed, 1, &e) != RELATE_OK)
        return relate_error_set(err, e.code, "%s", e.msg);
    if (failed > 0)
        return st != RELATE_OK ? st : relate_error_set(err, RELATE_ERR_IO, "feature extraction failed on another rank");
    const size_t d = (size_t)bb->feature_size;
    for (int r = 0; r < size; r++) {
        const int64_t ra = n * r / size, rb = n * (r + 1) / size;
        if (relate_dist_broadcast(out + (size_t)ra * d, (size_t)(rb - ra) * d * sizeof(float), r, &e) != RELATE_OK)
            return relate_error_set(err, e.code, "%s", e.msg);
    }
    return RELATE_OK;
}

/* relate_evaluate across MPI processes: the features are extracted in shares and every process
 * holds them all (relate_extract_features); each then runs the classifier on them in the batches
 * one process uses, so all print the one process's figures. */
static relate_status evaluate_shared(relate_backbone *bb, relate_linear_layer *cls, const relate_split *split,
                                     const relate_dataset_info *info, int batch_size, double *loss,
                                     double *accuracy, relate_error *err)
{
    const int d = bb->feature_size;
    const int64_t n = split->count;
    float *feats = malloc((size_t)(n > 0 ? n : 1) * d * sizeof *feats);
    relate_graph *g = relate_graph_create();
    relate_status st = feats && g ? RELATE_OK : relate_error_set(err, RELATE_ERR_NOMEM, "out of memory for %lld x %d "
                                                                 "features", (long long)n, d);
    if (st == RELATE_OK)
        st = relate_extract_features(bb, split, info, RELATE_T6, batch_size, feats, err);
    double loss_sum = 0.0;
    int64_t correct = 0;
    if (st == RELATE_OK)
        relate_graph_set_grad_enabled(g, false);
    for (int64_t at = 0; st == RELATE_OK && at < n; at += batch_size) {
        const int bs = (int)(n - at < batch_size ? n - at : batch_size);
        relate_graph_reset(g);
        relate_tensor *x = relate_tensor_wrap(g, 2, (int64_t[]){bs, d}, feats + (size_t)at * d);
        relate_tensor *logits = relate_linear_layer_forward(g, cls, x);
        relate_tensor *l = relate_cross_entropy(g, logits, split->labels + at, NULL);
        if (!l) {
            *err = *relate_graph_error(g);
            st = err->code;
            break;
        }
        loss_sum += (double)l->data[0] * bs;
        correct += relate_count_correct(logits->data, split->labels + at, bs, cls->out);
    }
    if (st == RELATE_OK && n > 0) {
        *loss = loss_sum / (double)n;
        *accuracy = 100.0 * (double)correct / (double)n;
    }
    relate_graph_destroy(g);
    free(feats);
    return st;
}

relate_status relate_evaluate(relate_backbone *bb, relate_linear_layer *cls, const relate_split *split,
                              const relate_dataset_info *info, int batch_size, double *loss, double *accuracy,
                              relate_error *err)
{
    *loss = *accuracy = 0.0;
    if (relate_dist_size() > 1)
        return evaluate_shared(bb, cls, split, info, batch_size, loss, accuracy, err);
    relate_loader *ld;
    if (open_in_order(&ld, split, info, RELATE_T6, batch_size, err) != RELATE_OK)
        return err->code;
    relate_graph *g = relate_graph_create();
    if (!g) {
        relate_loader_destroy(ld);
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    }
    relate_graph_set_grad_enabled(g, false);
    relate_status st = RELATE_OK;
    double loss_sum = 0.0;
    int64_t correct = 0, total = 0;
    relate_batch b;
    while (relate_loader_next(ld, &b) == 1) {
        relate_graph_reset(g);
        relate_tensor *x = relate_tensor_wrap(g, 4, (int64_t[]){b.size, 3, b.side, b.side}, b.images);
        relate_tensor *logits = relate_linear_layer_forward(g, cls, relate_backbone_forward(g, bb, x, false));
        relate_tensor *l = relate_cross_entropy(g, logits, b.labels, NULL);
        if (!l) {
            *err = *relate_graph_error(g);
            st = err->code;
            break;
        }
        loss_sum += (double)l->data[0] * b.size;
        correct += relate_count_correct(logits->data, b.labels, b.size, cls->out);
        total += b.size;
    }
    if (st == RELATE_OK && total > 0) {
        *loss = loss_sum / (double)total;
        *accuracy = 100.0 * (double)correct / (double)total;
    }
    relate_graph_destroy(g);
    relate_loader_destroy(ld);
    return st;
}
