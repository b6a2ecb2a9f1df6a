/* checkpoint_internal.h: what the checkpoint writer (checkpoint_write.c) and the two halves of
 * the reader (checkpoint_open.c: the file; checkpoint_load.c: its values) share: the dtype table,
 * the open file's layout, and the helpers that look at pickled values.
 * Not public: callers use relate/checkpoint.h. */
#ifndef RELATE_CHECKPOINT_CHECKPOINT_INTERNAL_H
#define RELATE_CHECKPOINT_CHECKPOINT_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "io/pickle.h"
#include "relate/checkpoint.h"

/* ================================================================== dtypes */
typedef enum ck_dtype { DT_F32, DT_F64, DT_F16, DT_BF16, DT_I64, DT_I32, DT_I16, DT_I8, DT_U8, DT_BOOL, DT_COUNT } ck_dtype;

static const struct {
    const char *storage, *name;
    int size;
    bool is_int;
} DTYPES[DT_COUNT] = {
    [DT_F32] = {"FloatStorage", "float32", 4, false},   [DT_F64] = {"DoubleStorage", "float64", 8, false},
    [DT_F16] = {"HalfStorage", "float16", 2, false},    [DT_BF16] = {"BFloat16Storage", "bfloat16", 2, false},
    [DT_I64] = {"LongStorage", "int64", 8, true},       [DT_I32] = {"IntStorage", "int32", 4, true},
    [DT_I16] = {"ShortStorage", "int16", 2, true},      [DT_I8] = {"CharStorage", "int8", 1, true},
    [DT_U8] = {"ByteStorage", "uint8", 1, true},        [DT_BOOL] = {"BoolStorage", "bool", 1, true},
};

/* A path in messages: at most its last 100 characters. */
#define PATH_FMT "'%s%s'"
#define PATH_ARG(p) (strlen(p) > 100 ? "..." : ""), (strlen(p) > 100 ? (p) + strlen(p) - 97 : (p))

static inline void sb_add(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline void sb_add(char *buf, size_t cap, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, cap - used, fmt, ap);
    va_end(ap);
}

/* ================================================================== reader */
typedef struct ck_storage {
    const char *key;     /* the persistent id's key (lives in the pickle) */
    ck_dtype dtype;
    int64_t numel;       /* elements, from the persistent id */
    const uint8_t *data; /* numel elements in the file buffer; NULL until located */
} ck_storage;

struct relate_ckpt {
    char *path;
    relate_ckpt_format format;
    uint8_t *buf;
    size_t size;
    relate_pickle pk;
    ck_storage *storages;
    int nstorages, cap;
    char *key_list;
    bool bare;
};

typedef struct ck_pid {
    const char *key;
    ck_dtype dtype;
    int64_t numel;
    bool view; /* legacy storage views: (view_key, offset, size) */
    int64_t view_offset, view_numel;
} ck_pid;

/* Every reader error: "checkpoint '<path>': <message>" in err; returns code. */
static inline relate_status ck_fail(const relate_ckpt *c, relate_error *err, relate_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline relate_status ck_fail(const relate_ckpt *c, relate_error *err, relate_status code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return relate_error_set(err, code, "checkpoint " PATH_FMT ": %s", PATH_ARG(c->path), msg);
}

/* ------------------------------------------------------------------ pickled values */
static const relate_pk_value EMPTY_DICT = {.kind = RELATE_PK_DICT};

static inline bool is_odict(const relate_pk_value *v) { return relate_pk_is_call_of(v, "collections", "OrderedDict"); }

/* The entries of a dict or an OrderedDict, or NULL for anything else. */
static inline const relate_pk_value *as_dict(const relate_pk_value *v)
{
    if (v && v->kind == RELATE_PK_DICT)
        return v;
    if (is_odict(v) && v->args->count == 0)
        return v->dict_items ? v->dict_items : &EMPTY_DICT;
    return NULL;
}

static inline bool is_tensor(const relate_pk_value *v)
{
    return relate_pk_is_call_of(v, "torch._utils", "_rebuild_tensor_v2") ||
           relate_pk_is_call_of(v, "torch._utils", "_rebuild_parameter");
}

static inline bool is_text(const relate_pk_value *v)
{
    return v && (v->kind == RELATE_PK_STR || v->kind == RELATE_PK_BYTES);
}

static inline bool text_eq(const relate_pk_value *v, const char *s)
{
    return is_text(v) && v->len == strlen(s) && memcmp(v->s, s, v->len) == 0;
}

static inline const char *kind_of(const relate_pk_value *v)
{
    if (!v)
        return "missing value";
    if (is_tensor(v))
        return "tensor";
    if (is_odict(v))
        return "OrderedDict";
    return relate_pk_kind_name(v->kind);
}

static inline bool as_number(const relate_pk_value *v, double *out)
{
    if (v && v->kind == RELATE_PK_FLOAT) {
        *out = v->f;
        return true;
    }
    if (v && v->kind == RELATE_PK_INT) {
        *out = (double)v->i;
        return true;
    }
    return false;
}

static inline bool as_flag(const relate_pk_value *v, bool *out)
{
    if (v && (v->kind == RELATE_PK_BOOL || v->kind == RELATE_PK_INT)) {
        *out = v->i != 0;
        return true;
    }
    return false;
}

/* The storage a persistent id names: ('storage', type, key, location, size[, view]). */
relate_status relate_ckpt_parse_pid(const relate_ckpt *c, const relate_pk_value *pid, ck_pid *out, relate_error *err);
/* The storage with that key, or NULL. */
ck_storage *relate_ckpt_find_storage(const relate_ckpt *c, const char *key);
/* The value under a top-level key (NULL key: the whole object). */
relate_status relate_ckpt_top_entry(const relate_ckpt *c, const char *key, const relate_pk_value **out,
                                    relate_error *err);

#endif
