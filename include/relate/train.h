/* relate/train.h: the three stages of spec 1.1 as library calls, with the reference's console
 * lines, log file and checkpoint layout (spec 1.3-1.5, 5).
 * Not argument parsing (src/cli does that) and not the methods (relate/method.h).
 *
 *   relate_pretrain_options o = relate_pretrain_defaults();
 *   o.method.method = "relationnet"; o.method.K = 4; o.dataset = "fashionmnist"; o.epochs = 2;
 *   if (relate_pretrain(&o, &err) != RELATE_OK) fprintf(stderr, "%s\n", err.msg);
 */
#ifndef RELATE_TRAIN_H
#define RELATE_TRAIN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "relate/data.h"
#include "relate/method.h"
#include "relate/nn.h"
#include "relate/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct relate_pretrain_options {
    relate_method_config method; /* method, backbone, K, aggregation, seed; epochs and classes are filled in */
    const char *seed_text;       /* the seed as the user wrote it, for file names ("1"; "-1") */
    const char *dataset, *data_root;
    relate_dataset_options data; /* folder datasets: --val_fraction, --strict_images */
    const char *id;              /* "" or a tag inserted in file names */
    const char *checkpoint;      /* "" or a stage-1 checkpoint to resume from (at its epoch and step) */
    bool resume_auto;            /* resume from the run's own HEADER_last.tar when there is one */
    const char *out_root;        /* "./checkpoint" */
    const char *command_line;    /* NULL or the command, recorded in HEADER_args.json */
    int save_every;              /* HEADER_last.tar every this many epochs (0: only at the quarter
                                  * points and when stopped); default 1 */
    int epoch_start;             /* -1: from the checkpoint's "epoch" key, else 0 */
    int epochs;
    int data_size;               /* B */
    int num_workers;             /* loader threads */
    int64_t limit_train_batches; /* > 0: stop each epoch after this many batches */
    FILE *out;                   /* console (stdout): the reference's lines */
    FILE *progress;              /* NULL or where progress goes (the CLI: stderr): a bar on a
                                  * terminal, else a line every log_every seconds */
    double log_every;            /* seconds between progress lines off a terminal (0: none) */
    int knn_every;               /* > 0: the kNN accuracy (relate/knn.h, k = 200, T = 0.1) of the
                                  * backbone every this many epochs, on the console and in the
                                  * log's knn_top1 column; the training is unchanged */
} relate_pretrain_options;

relate_pretrain_options relate_pretrain_defaults(void);
relate_status relate_pretrain(const relate_pretrain_options *o, relate_error *err);

typedef struct relate_lineval_options {
    const char *backbone, *dataset, *data_root, *method, *id, *checkpoint, *out_root;
    relate_dataset_options data; /* as in relate_pretrain_options: the same as stage 1's */
    uint64_t seed;
    const char *seed_text;
    int epochs, data_size, num_workers;
    bool finetune;
    bool cache_features;         /* linear evaluation: extract features once (default true) */
    int64_t limit_train_batches;
    FILE *out;
    FILE *progress;              /* as in relate_pretrain_options */
    double log_every;
    char saved_path[2048];       /* out: the checkpoint written */
    double test_accuracy;        /* out */
} relate_lineval_options;

relate_lineval_options relate_lineval_defaults(void);
relate_status relate_lineval(relate_lineval_options *o, relate_error *err);

typedef struct relate_test_options {
    const char *backbone, *dataset, *data_root, *checkpoint, *seed_text;
    relate_dataset_options data;
    int data_size;
    FILE *out;
    double loss, accuracy;       /* out */
} relate_test_options;

relate_test_options relate_test_defaults(void);
relate_status relate_test(relate_test_options *o, relate_error *err);

/* Test procedure of spec 5.3: eval mode, no gradients, batches in order; loss and accuracy are
 * weighted by batch size. */
relate_status relate_evaluate(relate_backbone *bb, relate_linear_layer *cls, const relate_split *split,
                              const relate_dataset_info *info, int batch_size, double *loss, double *accuracy,
                              relate_error *err);
/* Eval-mode features of every image of a split under a deterministic pipeline (T5/T6):
 * out [count, d] in index order. */
relate_status relate_extract_features(relate_backbone *bb, const relate_split *split,
                                      const relate_dataset_info *info, relate_pipeline pipeline, int batch_size,
                                      float *out, relate_error *err);
/* The pass behind it, for a caller with its own loader (deepcluster's feature pass draws its own
 * crops): eval-mode features of every batch `ld` yields from now on (its epoch started), image i
 * of a batch into out's row first + its index (d = bb->feature_size floats per row). */
struct relate_loader;
relate_status relate_loader_features(relate_backbone *bb, struct relate_loader *ld, int64_t first, float *out,
                                     relate_error *err);

/* The backbone of any checkpoint that holds one (a stage-1 or stage-2 file of relate or of the
 * reference, or a bare state dict): named by `backbone`, else by the file's backbone_name, else
 * conv4 (the reference's default). A `backbone` the file contradicts is RELATE_ERR_ARG naming
 * both. On success bb is built and loaded (free it with relate_backbone_free). */
relate_status relate_backbone_from_file(relate_backbone *bb, const char *path, const char *backbone,
                                        relate_error *err);

/* SIGINT/SIGTERM handling: the CLI's handler calls relate_request_stop(); the stages finish the
 * current step, write nothing half-made and return RELATE_ERR_INTERRUPTED. Stage 1 first saves
 * the step it reached in HEADER_last.tar, from which a run resumes bit for bit. */
void relate_request_stop(void);
bool relate_stop_requested(void);

#ifdef __cplusplus
}
#endif
#endif
