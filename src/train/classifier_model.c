/* classifier_model.c: backbone + Linear(d, C) and the three optimizers of the five-key
 * checkpoint (see relate/stage2.h). */
#include <stdlib.h>
#include <string.h>

#include "methods/method_internal.h"
#include "relate/stage2.h"

relate_status relate_classifier_model_init(relate_classifier_model *cm, relate_backbone *bb, int num_classes,
                                           uint64_t seed, relate_error *err)
{
    memset(cm, 0, sizeof *cm);
    cm->backbone = bb;
    relate_params_init(&cm->params);
    relate_linear_register(&cm->linear, &cm->params, "", bb->feature_size, num_classes, true);
    if (relate_params_finalize(&cm->params, err) != RELATE_OK)
        return err->code;
    relate_rng rng;
    relate_head_rng(&rng, seed, 0);
    relate_linear_init_default(&cm->linear, &rng);
    cm->bb_params = relate_collect_params(&bb->params, &cm->nbb);
    cm->cls_params = relate_collect_params(&cm->params, &cm->ncls);
    if (!cm->bb_params || !cm->cls_params)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    relate_param_group sgd_groups[2] = {{.params = cm->bb_params, .count = cm->nbb, .lr = 0.1},
                                        {.params = cm->cls_params, .count = cm->ncls, .lr = 0.1}};
    relate_param_group lin_groups[1] = {{.params = cm->cls_params, .count = cm->ncls, .lr = 1e-3}};
    relate_param_group ft_groups[2] = {{.params = cm->bb_params, .count = cm->nbb, .lr = 1e-3, .weight_decay = 1e-5},
                                       {.params = cm->cls_params, .count = cm->ncls, .lr = 1e-4, .weight_decay = 1e-5}};
    if (relate_sgd_init(&cm->sgd, sgd_groups, 2, 0.9, 0.0, false, err) != RELATE_OK ||
        relate_adam_init(&cm->adam_lineval, lin_groups, 1, 0.9, 0.999, 1e-8, err) != RELATE_OK ||
        relate_adam_init(&cm->adam_finetune, ft_groups, 2, 0.9, 0.999, 1e-8, err) != RELATE_OK)
        return err->code;
    return RELATE_OK;
}

void relate_classifier_model_free(relate_classifier_model *cm)
{
    relate_sgd_free(&cm->sgd);
    relate_adam_free(&cm->adam_lineval);
    relate_adam_free(&cm->adam_finetune);
    relate_params_free(&cm->params);
    free(cm->bb_params);
    free(cm->cls_params);
    memset(cm, 0, sizeof *cm);
}

relate_status relate_classifier_model_put(const relate_classifier_model *cm, relate_ckpt_writer *w,
                                          relate_error *err)
{
    if (relate_ckpt_put_state_dict(w, "classifier", &cm->params) != RELATE_OK ||
        relate_ckpt_put_state_dict(w, "backbone", &cm->backbone->params) != RELATE_OK ||
        relate_ckpt_put_sgd(w, "optimizer", &cm->sgd) != RELATE_OK ||
        relate_ckpt_put_adam(w, "optimizer_lineval", &cm->adam_lineval) != RELATE_OK ||
        relate_ckpt_put_adam(w, "optimizer_finetune", &cm->adam_finetune) != RELATE_OK)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory building the checkpoint");
    return RELATE_OK;
}

relate_status relate_classifier_model_load(relate_classifier_model *cm, const relate_ckpt *c, bool optimizers,
                                           relate_error *err)
{
    static const char *const keys[] = {"classifier", "backbone", "optimizer", "optimizer_lineval",
                                       "optimizer_finetune", NULL};
    if (relate_ckpt_require_keys(c, "stage-2 (linear evaluation) or standard", keys, err) != RELATE_OK)
        return err->code;
    if (relate_ckpt_load_state_dict(c, "classifier", &cm->params, err) != RELATE_OK) {
        relate_error e = {0};
        relate_error_set(&e, err->code, "%s (this run expects Linear(%d, %d): a checkpoint of another dataset or "
                                        "backbone?)",
                         err->msg, cm->linear.in, cm->linear.out);
        *err = e;
        return err->code;
    }
    if (relate_ckpt_load_state_dict(c, "backbone", &cm->backbone->params, err) != RELATE_OK)
        return err->code;
    if (optimizers && (relate_ckpt_load_sgd(c, "optimizer", &cm->sgd, err) != RELATE_OK ||
                       relate_ckpt_load_adam(c, "optimizer_lineval", &cm->adam_lineval, err) != RELATE_OK ||
                       relate_ckpt_load_adam(c, "optimizer_finetune", &cm->adam_finetune, err) != RELATE_OK))
        return err->code;
    return RELATE_OK;
}

int64_t relate_count_correct(const float *logits, const int32_t *labels, int64_t n, int classes)
{
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *row = logits + i * classes;
        int best = 0;
        for (int c = 1; c < classes; c++)
            if (row[c] > row[best])
                best = c;
        correct += best == labels[i];
    }
    return correct;
}
