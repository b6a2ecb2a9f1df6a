/* run_files.h: a stage-1 run's own files, and what makes them its own.
 * A run named HEADER (spec 1.3's header) owns these files of its folder: log_HEADER.csv,
 * HEADER_args.json, HEADER_last.tar, HEADER_epoch_E.tar and, for randomweights, HEADER.tar.
 * Its identity is its hyperparameters (relate_run_args_json): relate's training is a function of
 * them, so a resumed run may rewrite the files of a run with equal arguments, which it would
 * write again byte for byte, and never the files of any other run.
 * Not public: relate/train.h is the contract. */
#ifndef RELATE_TRAIN_RUN_FILES_H
#define RELATE_TRAIN_RUN_FILES_H

#include <stddef.h>

#include "relate/train.h"

/* The hyperparameters that decide a stage-1 run's numbers, as canonical JSON (sorted keys, no
 * spaces): method, backbone, aggregation, K, dataset, seed, epochs, data_size,
 * limit_train_batches, relate's version, and the data's fingerprint: the training split's size
 * and the CRC-32 of its pixels and labels (split may be NULL: no data). Every checkpoint stores
 * it under "args"; HEADER_args.json holds it too. NULL when out of memory; free() it. */
char *relate_run_args_json(const relate_pretrain_options *o, const relate_method_config *mc, const relate_split *split);

/* How many files of run HEADER are in folder; the name of the first one found goes to first. */
int relate_run_files_find(const char *folder, const char *header, char *first, size_t size);

/* The canonical "args" of folder/HEADER_args.json (malloc'd), or NULL when there is no such
 * file or it holds no "args" object. */
char *relate_run_args_read(const char *folder, const char *header);

/* Writes folder/HEADER_args.json atomically: the run's args, relate's version, the command line,
 * the checkpoint it resumed from (or null) and the time it started. */
relate_status relate_run_args_write(const char *folder, const char *header, const char *args_json,
                                    const char *command_line, const char *resumed_from, relate_error *err);

#endif
