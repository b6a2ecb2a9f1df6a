/* relate/stage2.h: backbone + Linear(d, C) with the optimizers of the reference's five-key
 * checkpoint (spec 1.4: classifier, backbone, optimizer, optimizer_lineval, optimizer_finetune),
 * shared by `standard`, linear evaluation, finetuning and test.
 * Not a training loop: relate/train.h drives the stages.
 *
 *   relate_classifier_model cm;
 *   relate_classifier_model_init(&cm, &backbone, 10, seed, &err);   // backbone stays the caller's
 *   ... relate_adam_step(&cm.adam_lineval) ...
 *   relate_classifier_model_put(&cm, writer, &err);
 *   relate_classifier_model_free(&cm);
 */
#ifndef RELATE_STAGE2_H
#define RELATE_STAGE2_H

#include <stdbool.h>
#include <stdint.h>

#include "relate/checkpoint.h"
#include "relate/nn.h"
#include "relate/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct relate_classifier_model {
    relate_backbone *backbone;   /* not owned */
    relate_params params;        /* the `classifier` state dict: weight [C, d], bias [C] */
    relate_linear_layer linear;
    relate_param **bb_params, **cls_params;
    int nbb, ncls;
    relate_sgd sgd;              /* `optimizer`: backbone and classifier groups, lr 0.1, momentum 0.9 */
    relate_adam adam_lineval;    /* `optimizer_lineval`: the classifier only, lr 1e-3 */
    relate_adam adam_finetune;   /* `optimizer_finetune`: backbone lr 1e-3, classifier lr 1e-4, decay 1e-5 */
} relate_classifier_model;

/* The classifier gets PyTorch's default Linear init from the seed's head stream. */
relate_status relate_classifier_model_init(relate_classifier_model *cm, relate_backbone *bb, int num_classes,
                                           uint64_t seed, relate_error *err);
void relate_classifier_model_free(relate_classifier_model *cm);
/* The five keys, in the reference's order. */
relate_status relate_classifier_model_put(const relate_classifier_model *cm, relate_ckpt_writer *w,
                                          relate_error *err);
/* Requires all five keys; loads classifier and backbone strictly, and the optimizer states when
 * `optimizers` is true. A class-count mismatch is reported as such. */
relate_status relate_classifier_model_load(relate_classifier_model *cm, const relate_ckpt *c, bool optimizers,
                                           relate_error *err);
/* Rows whose first maximal logit is the label. */
int64_t relate_count_correct(const float *logits, const int32_t *labels, int64_t n, int classes);

#ifdef __cplusplus
}
#endif
#endif
