/* args.h: argparse-style long options (--name=value and --name value) for the subcommands.
 * Not a general parser: every subcommand declares its flags in a table; anything else is an
 * error that names the flag and points at --help. */
#ifndef RELATE_CLI_ARGS_H
#define RELATE_CLI_ARGS_H

#include <stdbool.h>

typedef enum { RELATE_ARG_STR, RELATE_ARG_INT } relate_arg_type;

typedef struct relate_arg_spec {
    const char *name;       /* without the leading "--" */
    relate_arg_type type;
    const char *default_value;
    const char *help;
    const char *value;      /* filled by relate_args_parse */
} relate_arg_spec;

/* Returns 0 on success; on error prints a message to stderr and returns 2. Sets *help when
 * -h/--help is present. */
int relate_args_parse(const char *cmd, relate_arg_spec *specs, int nspecs, int argc, char **argv, bool *help);
const char *relate_args_get(const relate_arg_spec *specs, int nspecs, const char *name);
long relate_args_get_int(const relate_arg_spec *specs, int nspecs, const char *name);
void relate_args_usage(const char *cmd, const char *summary, const relate_arg_spec *specs, int nspecs);

#endif
