/* run_files.c: the files of a stage-1 run, its arguments and HEADER_args.json. */
#define _POSIX_C_SOURCE 200809L /* gmtime_r */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "io/atomic_file.h"
#include "train/run_files.h"

#ifndef RELATE_VERSION_STRING
#define RELATE_VERSION_STRING "unknown"
#endif

static const size_t canonical_flags = JSON_COMPACT | JSON_SORT_KEYS;

/* CRC-32 (zlib's) of a split's pixels, then its labels: 0.05 s for CIFAR-10's 150 MB, and it
 * tells a run on other data from a run on the same, whatever the folder is called. */
static unsigned long split_crc32(const relate_split *sp)
{
    uLong c = crc32_z(0L, Z_NULL, 0);
    if (!sp)
        return c;
    const size_t npix = (size_t)sp->count * (size_t)sp->width * (size_t)sp->height * 3;
    if (sp->pixels)
        c = crc32_z(c, sp->pixels, npix);
    if (sp->labels)
        c = crc32_z(c, (const Bytef *)sp->labels, (size_t)sp->count * sizeof *sp->labels);
    return c;
}

char *relate_run_args_json(const relate_pretrain_options *o, const relate_method_config *mc, const relate_split *split)
{
    const bool have = split && split->present && split->count > 0;
    char crc[16];
    snprintf(crc, sizeof crc, "%08lx", have ? split_crc32(split) : 0UL);
    json_t *a = json_object();
    if (!a)
        return NULL;
    const bool relationnet = strcmp(mc->method, "relationnet") == 0;
    /* json_object_set_new steals the value and tolerates NULL (out of memory): the dump below
     * then fails and the caller reports it. */
    json_object_set_new(a, "method", json_string(mc->method));
    json_object_set_new(a, "backbone", json_string(mc->backbone));
    json_object_set_new(a, "aggregation", relationnet ? json_string(mc->aggregation) : json_null());
    json_object_set_new(a, "K", relationnet ? json_integer(mc->K) : json_null());
    json_object_set_new(a, "dataset", json_string(o->dataset));
    json_object_set_new(a, "train_images", json_integer(have ? split->count : 0));
    json_object_set_new(a, "train_data_crc32", json_string(crc));
    json_object_set_new(a, "seed", json_integer((json_int_t)mc->seed));
    json_object_set_new(a, "epochs", json_integer(o->epochs));
    json_object_set_new(a, "data_size", json_integer(o->data_size));
    json_object_set_new(a, "limit_train_batches", json_integer(o->limit_train_batches));
    json_object_set_new(a, "relate_version", json_string(RELATE_VERSION_STRING));
    char *s = json_dumps(a, canonical_flags);
    json_decref(a);
    return s;
}

/* file is one of the run's: log_HEADER.csv, HEADER.tar, HEADER_args.json, HEADER_last.tar,
 * HEADER_epoch_<digits>.tar (not HEADER_epoch_E_linear_evaluation.tar: stage 2's). */
static bool is_run_file(const char *name, const char *header)
{
    const size_t h = strlen(header);
    if (strncmp(name, "log_", 4) == 0 && strncmp(name + 4, header, h) == 0 && strcmp(name + 4 + h, ".csv") == 0)
        return true;
    if (strncmp(name, header, h) != 0)
        return false;
    const char *rest = name + h;
    if (strcmp(rest, ".tar") == 0 || strcmp(rest, "_args.json") == 0 || strcmp(rest, "_last.tar") == 0)
        return true;
    if (strncmp(rest, "_epoch_", 7) != 0)
        return false;
    const char *d = rest + 7, *e = d;
    while (*e >= '0' && *e <= '9')
        e++;
    return e > d && strcmp(e, ".tar") == 0;
}

int relate_run_files_find(const char *folder, const char *header, char *first, size_t size)
{
    if (size)
        first[0] = 0;
    DIR *dir = opendir(folder);
    if (!dir)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL)
        if (is_run_file(e->d_name, header)) {
            if (n++ == 0 && size)
                snprintf(first, size, "%s", e->d_name);
        }
    closedir(dir);
    return n;
}

char *relate_run_args_read(const char *folder, const char *header)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s_args.json", folder, header);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        return NULL;
    json_t *args = json_object_get(root, "args");
    char *s = json_is_object(args) ? json_dumps(args, canonical_flags) : NULL;
    json_decref(root);
    return s;
}

relate_status relate_run_args_write(const char *folder, const char *header, const char *args_json,
                                    const char *command_line, const char *resumed_from, relate_error *err)
{
    char path[2048], started[32];
    snprintf(path, sizeof path, "%s/%s_args.json", folder, header);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_error_t je;
    json_t *root = json_object();
    json_t *args = json_loads(args_json, 0, &je);
    if (!root || !args) {
        json_decref(root);
        json_decref(args);
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory writing %s", path);
    }
    json_object_set_new(root, "args", args);
    json_object_set_new(root, "relate_version", json_string(RELATE_VERSION_STRING));
    json_object_set_new(root, "command", command_line ? json_string(command_line) : json_null());
    json_object_set_new(root, "resumed_from", resumed_from && *resumed_from ? json_string(resumed_from) : json_null());
    json_object_set_new(root, "started", json_string(started));
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    if (!text)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory writing %s", path);
    relate_atomic_file f;
    relate_status st = relate_atomic_open(&f, path, err);
    if (st == RELATE_OK) {
        fputs(text, f.fp);
        fputc('\n', f.fp);
        st = relate_atomic_commit(&f, err);
    }
    free(text);
    return st;
}
