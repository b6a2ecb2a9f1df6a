/* args.h: argparse-style long options (--name=value and --name value) for the subcommands.
 * Not a general parser: every subcommand declares its flags in a table; anything else is an
 * error that names the flag and points at --help. */
#ifndef RELATE_CLI_ARGS_H
#define RELATE_CLI_ARGS_H

#include <stdbool.h>

#include "relate/data.h"

typedef enum { RELATE_ARG_STR, RELATE_ARG_INT } relate_arg_type;

typedef struct relate_arg_spec {
    const char *name;       /* without the leading "--" */
    relate_arg_type type;
    const char *default_value;
    const char *help;
    const char *value;      /* filled by relate_args_parse */
    long min, max;          /* RELATE_ARG_INT: the accepted range, both ends included */
} relate_arg_spec;

/* Ranges shared by the stages' flags. They keep every size the flags multiply together far from
 * overflow and from allocations no machine has, so a typo gets a message, not a crash. */
#define RELATE_MAX_EPOCHS 1000000
#define RELATE_MAX_BATCH 65536
#define RELATE_MAX_K 1024
/* K x data_size: the views of one step (32 x 64 in the paper; 2^18 32x32 views are 3 GiB). */
#define RELATE_MAX_VIEWS_PER_STEP (1L << 18)

/* A boolean flag's value as argparse-era scripts write it: True/False, true/false, 1/0, yes/no.
 * Returns 0 and sets *out, or -1 for anything else. */
int relate_args_bool(const char *value, bool *out);

/* Returns 0 on success; on error (unknown flag, missing value, an integer that is not one or is
 * outside its spec's range) prints a message to stderr and returns 2. Sets *help when
 * -h/--help is present. */
int relate_args_parse(const char *cmd, relate_arg_spec *specs, int nspecs, int argc, char **argv, bool *help);
const char *relate_args_get(const relate_arg_spec *specs, int nspecs, const char *name);
long relate_args_get_int(const relate_arg_spec *specs, int nspecs, const char *name);
void relate_args_usage(const char *cmd, const char *summary, const relate_arg_spec *specs, int nspecs);

/* The flags of image-folder datasets, in every command that opens a dataset; the same values
 * must go to every stage of a run (relate/data.h, relate_dataset_options). */
#define RELATE_DATASET_FLAGS                                                                                         \
    {"val_fraction", RELATE_ARG_STR, "0", "folder:PATH without test/: this fraction of each class is the test split " \
                                          "(fixed choice; pass it to every stage)", NULL, 0, 0},                     \
        {"strict_images", RELATE_ARG_STR, "False", "folder:PATH: stop at a file that does not decode (default: skip " \
                                                   "and count it)", NULL, 0, 0}

/* Reads RELATE_DATASET_FLAGS into o. Returns 0, or prints what is wrong and returns 2. */
int relate_args_dataset_options(const char *cmd, const relate_arg_spec *specs, int nspecs,
                                relate_dataset_options *o);

#endif
