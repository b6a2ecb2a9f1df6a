/* evaluate.c: eval-mode passes over a whole split: the test procedure (spec 5.3) and feature
 * extraction for linear evaluation. Both run the loader in order with a deterministic pipeline. */
#include <stdlib.h>
#include <string.h>

#include "relate/loader.h"
#include "relate/stage2.h"
#include "relate/train.h"

/* A no-gradient graph and an in-order loader over the whole split. */
static relate_status open_pass(relate_loader **ld, relate_graph **g, const relate_split *split,
                               const relate_dataset_info *info, relate_pipeline pipeline, int batch_size,
                               relate_error *err)
{
    relate_loader_config lc = relate_loader_defaults(split, info, pipeline);
    lc.batch_size = batch_size;
    lc.shuffle = false;
    lc.drop_last = false;
    if (relate_loader_create(ld, &lc, err) != RELATE_OK)
        return err->code;
    if (!(*g = relate_graph_create())) {
        relate_loader_destroy(*ld);
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    }
    relate_graph_set_grad_enabled(*g, false);
    relate_loader_start_epoch(*ld, 0);
    return RELATE_OK;
}

relate_status relate_extract_features(relate_backbone *bb, const relate_split *split,
                                      const relate_dataset_info *info, relate_pipeline pipeline, int batch_size,
                                      float *out, relate_error *err)
{
    relate_loader *ld;
    relate_graph *g;
    if (open_pass(&ld, &g, split, info, pipeline, batch_size, err) != RELATE_OK)
        return err->code;
    const int d = bb->feature_size;
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
            memcpy(out + b.indices[i] * d, f->data + (size_t)i * d, (size_t)d * sizeof(float));
    }
    relate_graph_destroy(g);
    relate_loader_destroy(ld);
    return st;
}

relate_status relate_evaluate(relate_backbone *bb, relate_linear_layer *cls, const relate_split *split,
                              const relate_dataset_info *info, int batch_size, double *loss, double *accuracy,
                              relate_error *err)
{
    *loss = *accuracy = 0.0;
    relate_loader *ld;
    relate_graph *g;
    if (open_pass(&ld, &g, split, info, RELATE_T6, batch_size, err) != RELATE_OK)
        return err->code;
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
