/* relate/method.h: the stage-1 methods of spec 3 behind one interface: a backbone plus the
 * method's heads, its loss, its optimizer and its checkpoint keys.
 * Not the training loop (relate/train.h drives epochs, logs and checkpoint files) and not data
 * loading: a method says which split, pipeline and number of views it wants, then consumes
 * batches.
 *
 *   relate_method_config cfg = relate_method_defaults();
 *   cfg.method = "relationnet"; cfg.backbone = "conv4"; cfg.K = 4; cfg.seed = 1;
 *   cfg.num_classes = ds.info.num_classes; cfg.epochs = 200;
 *   relate_method *m;
 *   if (relate_method_create(&m, &cfg, &err) != RELATE_OK) ...;
 *   relate_step_result r;
 *   relate_method_step(m, g, &batch, &r, &err);     // forward, backward, optimizer step
 *   relate_method_free(m);
 */
#ifndef RELATE_METHOD_H
#define RELATE_METHOD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "relate/checkpoint.h"
#include "relate/data.h"
#include "relate/graph.h"
#include "relate/loader.h"
#include "relate/nn.h"
#include "relate/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct relate_method_config {
    const char *method;      /* relationnet, simclr, rotationnet, deepinfomax, deepcluster, standard, randomweights */
    const char *backbone;    /* conv4, resnet8, resnet32, resnet56, resnet34 */
    const char *aggregation; /* relationnet: cat, sum, mean, max */
    int K;                   /* relationnet: views per image */
    int num_classes;         /* classes of the training dataset (standard's classifier) */
    int epochs;              /* total epochs E (learning-rate schedules) */
    uint64_t seed;
    bool factorised_head;    /* the exact factorised heads (default true): relationnet W_a F + W_b F,
                              * deepinfomax per-image y term; false runs the literal computation */
} relate_method_config;

/* relationnet, conv4, cat, K = 32, 10 classes, 200 epochs, seed 1, factorised head. */
relate_method_config relate_method_defaults(void);

/* What one optimizer step reports. */
typedef struct relate_step_result {
    double loss;        /* the mini-batch loss */
    double score;       /* the mini-batch score of spec 1.5 (accuracy in %, or -loss) */
    int64_t items;      /* its weight in the epoch means (pairs, views or images) */
    double acc_first;   /* relationnet: accuracy on the first / second half of the pair list */
    double acc_second;
} relate_step_result;

typedef struct relate_method relate_method;
typedef struct relate_method_ops relate_method_ops;

struct relate_method {
    const relate_method_ops *ops;
    relate_method_config cfg;
    char method_name[32], backbone_name[32], aggregation_name[8];
    relate_backbone backbone;
    void *impl; /* the method's own state */
};

/* Builds the backbone (seeded from cfg.seed, spec 2.5), the heads (from a second stream of the
 * seed, like the reference's re-seeding, spec 1.3 step 4) and the optimizer. Unknown names are
 * RELATE_ERR_ARG with the valid list. */
relate_status relate_method_create(relate_method **out, const relate_method_config *cfg, relate_error *err);
void relate_method_free(relate_method *m);
/* The names relate_method_create accepts, NULL-terminated. */
const char *const *relate_method_names(void);

/* Data the method trains on. */
int relate_method_views(const relate_method *m);
relate_pipeline relate_method_pipeline(const relate_method *m, const relate_dataset_info *info);
relate_split_kind relate_method_split(const relate_method *m, const relate_dataset_info *info);
bool relate_method_drop_last(const relate_method *m);
/* false for randomweights, which only saves its initial backbone. */
bool relate_method_trains(const relate_method *m);

/* What a method may need at the start of an epoch: the data it trains on (deepcluster clusters
 * the whole split) and where to print. */
typedef struct relate_epoch_context {
    int epoch;
    FILE *out;                       /* console; the reference's per-epoch prints go here */
    const relate_split *split;       /* the split the method trains on */
    const relate_dataset_info *info;
    int batch_size;                  /* --data_size */
    int num_workers;                 /* loader threads */
} relate_epoch_context;

/* Called at the start of every epoch: learning-rate decays (standard prints "Group[i] learning
 * rate: ..." when the rate changes), per-epoch work such as deepcluster's clustering. */
relate_status relate_method_epoch_begin(relate_method *m, const relate_epoch_context *ctx, relate_error *err);
/* Lets a method adjust its training loader (e.g. its own per-sample function); called once after
 * the loader's configuration is filled from the accessors above. */
void relate_method_loader_setup(relate_method *m, relate_loader_config *cfg);
/* One optimizer step on a batch: zero gradients, forward, loss, backward, update. g is reset by
 * the call. A NaN or infinite loss is RELATE_ERR_NUMERIC and leaves the weights unchanged. */
relate_status relate_method_step(relate_method *m, relate_graph *g, const relate_batch *batch,
                                 relate_step_result *r, relate_error *err);

/* The method's checkpoint dictionary (spec 1.4 keys) and its restore; the restore checks that
 * the file holds this method's keys and this backbone's state dict. */
relate_status relate_method_save(const relate_method *m, relate_ckpt_writer *w, relate_error *err);
relate_status relate_method_load(relate_method *m, const relate_ckpt *c, relate_error *err);

/* standard's classifier Linear(d, C) (its end-of-training test, spec 3.6); NULL otherwise. */
relate_linear_layer *relate_method_classifier(relate_method *m);

/* ---- shared by the stages ---- */
/* The checkpoint epochs of spec 1.3 step 8: true for 0-based epoch e in
 * {floor(E/4)-1, floor(E/2)-1, floor(3E/4)-1, E-1}. */
bool relate_is_save_epoch(int epoch, int total_epochs);

#ifdef __cplusplus
}
#endif
#endif
