/* stage_common.h: what the three stages share: file names of spec 1.4, folders, elapsed time,
 * the progress bar, the stop flag, the log file.
 * Not public: relate/train.h is the contract. */
#ifndef RELATE_TRAIN_STAGE_COMMON_H
#define RELATE_TRAIN_STAGE_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "relate/status.h"

/* {method}_{dataset}_{backbone}_seed_{seed}, or {method}_{id}_{dataset}_... with an id (spec 1.3).
 * The dataset part is made safe for a file name (folder:PATH has slashes). */
void relate_stage_header(char *buf, size_t size, const char *method, const char *id, const char *dataset,
                         const char *backbone, const char *seed_text);
/* A dataset name usable as one path component. */
void relate_stage_dataset_dir(char *buf, size_t size, const char *dataset);
struct relate_ckpt;
/* The backbone to build for checkpoint c (read from path): `backbone` when given, else the
 * file's backbone_name, else conv4 (the reference's default); *from_file (may be NULL) says
 * whether the file named it. A `backbone` the file contradicts is RELATE_ERR_ARG naming both,
 * rather than a list of missing and unexpected keys later. *name lives as long as c. */
relate_status relate_stage_backbone_name(const struct relate_ckpt *c, const char *path, const char *backbone,
                                         const char **name, bool *from_file, relate_error *err);
/* mkdir -p. */
relate_status relate_mkdirs(const char *path, relate_error *err);
/* "HH:MM:SS" of a number of seconds. */
void relate_format_hms(char *buf, size_t size, double seconds);
double relate_now(void);

/* Progress of an epoch, on stderr so that stdout keeps the reference's lines: a one-line bar
 * redrawn in place on a terminal, or else (a batch log: nohup, Slurm) a plain line every `every`
 * seconds. Both show images per second (images, not views), seconds per step and the time left
 * in the epoch and in the whole run. */
typedef enum relate_progress_mode {
    RELATE_PROGRESS_OFF,
    RELATE_PROGRESS_BAR,
    RELATE_PROGRESS_LINES
} relate_progress_mode;

typedef struct relate_progress {
    FILE *out;
    relate_progress_mode mode;
    double every;          /* LINES: seconds between lines */
    double start, last;    /* when the epoch (re)started; when a line was last printed */
    int64_t total;         /* steps of the epoch */
    int64_t first;         /* steps already done when it (re)started (a resumed epoch) */
    int64_t later_steps;   /* steps of the run after this epoch */
    char label[64];
} relate_progress;

/* The mode for a stage: a bar when stderr is a terminal, else lines every log_every seconds
 * (0: none). */
relate_progress_mode relate_progress_mode_for(FILE *out, double log_every);
void relate_progress_begin(relate_progress *p, FILE *out, relate_progress_mode mode, double every, const char *label,
                           int64_t total, int64_t first, int64_t later_steps);
/* done: steps of the epoch finished (first included); images: images they held since the
 * (re)start; extra: e.g. the running loss. */
void relate_progress_update(relate_progress *p, int64_t done, int64_t images, const char *extra);
void relate_progress_clear(relate_progress *p);

/* The epoch log (spec 1.5) kept in memory and rewritten atomically after every epoch, so a crash
 * never leaves a torn line. */
typedef struct relate_epoch_log {
    char path[1024];
    char *text;
    size_t len, cap;
} relate_epoch_log;
/* Starts the log with its header line ("epoch,loss,score" for stage 1, spec 1.5; "epoch,loss,accuracy" for
 * stage 2); `keep_before` > 0 keeps the lines of epochs below it from an existing file (a resumed
 * run), otherwise the file starts afresh. */
relate_status relate_epoch_log_open(relate_epoch_log *log, const char *path, const char *columns, int keep_before,
                                    relate_error *err);
relate_status relate_epoch_log_append(relate_epoch_log *log, int epoch, double loss, double score, relate_error *err);
/* The same with more columns: `extra` is appended as it is (e.g. ",63.2", or "," for an empty
 * field). */
relate_status relate_epoch_log_append_extra(relate_epoch_log *log, int epoch, double loss, double score,
                                            const char *extra, relate_error *err);
void relate_epoch_log_close(relate_epoch_log *log);

struct relate_split;
/* Across processes (relate/dist.h) each takes a share of every batch of data_size images of split:
 * an error that says what to change when a share would be empty. RELATE_OK in one process. */
relate_status relate_stage_check_shares(const struct relate_split *split, int data_size, bool drop_last, int nranks,
                                        relate_error *err);

#endif
