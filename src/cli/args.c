/* args.c: the long-option parser shared by relate's subcommands.
 * Not responsible for meaning: it checks names and integer syntax only. */
#include "cli/args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/suggest.h"

static relate_arg_spec *find(relate_arg_spec *specs, int n, const char *name, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(specs[i].name) == len && strncmp(specs[i].name, name, len) == 0)
            return &specs[i];
    return NULL;
}

int relate_args_parse(const char *cmd, relate_arg_spec *specs, int nspecs, int argc, char **argv, bool *help)
{
    *help = false;
    for (int i = 0; i < nspecs; i++) {
        specs[i].value = specs[i].default_value;
        if (specs[i].type == RELATE_ARG_INT) { /* a table mistake, caught by every test that runs the command */
            long d = strtol(specs[i].default_value, NULL, 10);
            if (d < specs[i].min || d > specs[i].max) {
                fprintf(stderr, "relate %s: internal error: --%s's default %ld is outside %ld..%ld\n", cmd,
                        specs[i].name, d, specs[i].min, specs[i].max);
                return 2;
            }
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            *help = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "relate %s: unexpected argument '%s' (flags look like --name=value; see relate %s --help)\n",
                    cmd, a, cmd);
            return 2;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        relate_arg_spec *s = find(specs, nspecs, name, len);
        if (!s) {
            char word[80], hint[96];
            snprintf(word, sizeof word, "%.*s", (int)(len < 79 ? len : 79), name);
            const char *names[128];
            int k = 0;
            for (; k < nspecs && k < 127; k++)
                names[k] = specs[k].name;
            names[k] = NULL;
            const char *near = relate_suggest(word, names);
            if (near)
                snprintf(hint, sizeof hint, " (did you mean '--%s'?)", near);
            else
                hint[0] = 0;
            fprintf(stderr, "relate %s: unknown flag '--%.*s'%s (see relate %s --help)\n", cmd, (int)len, name, hint,
                    cmd);
            return 2;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "relate %s: flag --%s needs a value\n", cmd, s->name);
                return 2;
            }
            value = argv[++i];
        }
        if (s->type == RELATE_ARG_INT) {
            char *end;
            errno = 0;
            long v = strtol(value, &end, 10);
            if (errno || end == value || *end || v < -2147483647L || v > 2147483647L) {
                fprintf(stderr, "relate %s: --%s expects an integer, got '%s'\n", cmd, s->name, value);
                return 2;
            }
            if (v < s->min || v > s->max) {
                fprintf(stderr, "relate %s: --%s must be between %ld and %ld, got %ld\n", cmd, s->name, s->min, s->max,
                        v);
                return 2;
            }
        }
        s->value = value;
    }
    return 0;
}

int relate_args_bool(const char *value, bool *out)
{
    static const char *const yes[] = {"True", "true", "1", "yes"}, *const no[] = {"False", "false", "0", "no"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcmp(value, yes[i]) == 0)
            return *out = true, 0;
        if (strcmp(value, no[i]) == 0)
            return *out = false, 0;
    }
    return -1;
}

const char *relate_args_get(const relate_arg_spec *specs, int nspecs, const char *name)
{
    for (int i = 0; i < nspecs; i++)
        if (strcmp(specs[i].name, name) == 0)
            return specs[i].value;
    return NULL;
}

long relate_args_get_int(const relate_arg_spec *specs, int nspecs, const char *name)
{
    const char *v = relate_args_get(specs, nspecs, name);
    return v ? strtol(v, NULL, 10) : 0;
}

void relate_args_usage(const char *cmd, const char *summary, const relate_arg_spec *specs, int nspecs)
{
    printf("usage: relate %s [flags]\n\n%s\n\nflags:\n", cmd, summary);
    for (int i = 0; i < nspecs; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s=%s", specs[i].name, specs[i].type == RELATE_ARG_INT ? "INT" : "STR");
        printf("  %-26s %s", left, specs[i].help);
        if (specs[i].default_value)
            printf(" (default: %s)", *specs[i].default_value ? specs[i].default_value : "\"\"");
        printf("\n");
    }
}

int relate_args_dataset_options(const char *cmd, const relate_arg_spec *specs, int nspecs, relate_dataset_options *o)
{
    memset(o, 0, sizeof *o);
    const char *v = relate_args_get(specs, nspecs, "val_fraction");
    char *end = NULL;
    errno = 0;
    double f = v ? strtod(v, &end) : 0.0;
    if (!v || end == v || *end || errno || !(f >= 0 && f < 1)) {
        fprintf(stderr, "relate %s: --val_fraction expects a fraction in [0, 1), e.g. 0.1; got '%s'\n", cmd,
                v ? v : "");
        return 2;
    }
    o->val_fraction = f;
    v = relate_args_get(specs, nspecs, "strict_images");
    if (!v || relate_args_bool(v, &o->strict_images) != 0) {
        fprintf(stderr, "relate %s: --strict_images expects True or False, got '%s'\n", cmd, v ? v : "");
        return 2;
    }
    return 0;
}
