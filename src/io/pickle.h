/* pickle.h: a restricted unpickler that turns Python pickle bytes (protocols 2-4, the opcodes
 * that CIFAR's python-2 pickles and torch.save files use) into a tree of plain values.
 * Not Python: nothing is ever imported or called. A global is accepted only when the caller's
 * allow-list names it, and REDUCE / NEWOBJ / BUILD are recorded as RELATE_PK_CALL nodes for the
 * caller to interpret (numpy arrays: relate_pk_as_ndarray; torch tensors: the checkpoint reader).
 *
 *   static const relate_pk_global allow[] = {{"numpy.core.multiarray", "_reconstruct"},
 *                                             {"numpy", "ndarray"}, {"numpy", "dtype"}, {0, 0}};
 *   relate_pickle pk;
 *   if (relate_pickle_load(&pk, buf, size, allow, &err) != RELATE_OK) ...;
 *   const relate_pk_value *data = relate_pk_dict_get(pk.root, "data");   // str or bytes key
 *   relate_pk_ndarray a;
 *   if (relate_pk_as_ndarray(data, &a, &err) != RELATE_OK) ...;       // a.data points into buf
 *   relate_pickle_free(&pk);                                            // buf must outlive pk
 */
#ifndef RELATE_IO_PICKLE_H
#define RELATE_IO_PICKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relate/status.h"

typedef enum relate_pk_kind {
    RELATE_PK_NONE = 0,
    RELATE_PK_BOOL,    /* i = 0 or 1 */
    RELATE_PK_INT,     /* i (LONG1 values beyond 64 bits are refused) */
    RELATE_PK_FLOAT,   /* f */
    RELATE_PK_STR,     /* s, len: NUL-terminated copy of the UTF-8 text (unvalidated) */
    RELATE_PK_BYTES,   /* s, len: points into the input buffer (BINBYTES, and python-2 BINSTRING,
                        * which CIFAR's pickles use for every str; not NUL-terminated) */
    RELATE_PK_LIST,    /* items[0..count) */
    RELATE_PK_TUPLE,   /* items[0..count) */
    RELATE_PK_DICT,    /* items[2k] = key k, items[2k+1] = its value; count = number of pairs;
                        * insertion order, a repeated str/bytes/int key replaces the value */
    RELATE_PK_GLOBAL,  /* s = module, name = attribute (always one on the caller's allow-list) */
    RELATE_PK_CALL,    /* func(*args) (REDUCE) or func.__new__(func, *args) (NEWOBJ, newobj set),
                        * plus what later opcodes did to the object: state (BUILD) and the
                        * entries SETITEM(S) / APPEND(S) added (an OrderedDict's items) */
    RELATE_PK_PERSID   /* a persistent id (BINPERSID): pid, e.g. torch's storage tuple */
} relate_pk_kind;

typedef struct relate_pk_value relate_pk_value;
struct relate_pk_value {
    relate_pk_kind kind;
    int64_t i;
    double f;
    const char *s;
    size_t len;
    const char *name;
    relate_pk_value **items;
    int64_t count, cap;
    relate_pk_value *func, *args, *state; /* CALL */
    relate_pk_value *dict_items;          /* CALL: a DICT node, or NULL */
    relate_pk_value *list_items;          /* CALL: a LIST node, or NULL */
    bool newobj;                          /* CALL made by NEWOBJ */
    relate_pk_value *pid;                 /* PERSID */
};

/* One allowed global; lists end with {NULL, NULL}. */
typedef struct relate_pk_global {
    const char *module, *name;
} relate_pk_global;

typedef struct relate_pk_pool relate_pk_pool;
typedef struct relate_pickle {
    relate_pk_value *root; /* the value STOP returned */
    size_t end;            /* offset just past the STOP opcode (torch's legacy files chain pickles) */
    relate_pk_pool *pool;  /* owns every node and string copy */
} relate_pickle;

/* Parses one pickle starting at data[0]; bytes after STOP are ignored (see pk->end). Byte
 * strings of the result point into data, which must outlive pk. On failure pk owns nothing and
 * err names the opcode and offset (or the refused global). */
relate_status relate_pickle_load(relate_pickle *pk, const uint8_t *data, size_t size,
                                 const relate_pk_global *allow, relate_error *err);
void relate_pickle_free(relate_pickle *pk);

/* Dict lookup by a text key, matching str and bytes keys alike (python-2 pickles have bytes
 * keys). Works on DICT nodes and on the dict_items of CALL nodes. NULL if absent. */
const relate_pk_value *relate_pk_dict_get(const relate_pk_value *dict, const char *key);
/* True when v is the global module.name. */
bool relate_pk_is_global(const relate_pk_value *v, const char *module, const char *name);
/* True when v is a CALL of the global module.name. */
bool relate_pk_is_call_of(const relate_pk_value *v, const char *module, const char *name);
/* A short name of a kind ("int", "dict", ...) for error messages. */
const char *relate_pk_kind_name(relate_pk_kind k);

/* A numpy array pickled by ndarray.__reduce__ (numpy.core.multiarray._reconstruct + BUILD with
 * (version, shape, dtype, fortran_order, raw bytes)). Plain numeric dtypes only. */
#define RELATE_PK_MAX_DIMS 8
typedef struct relate_pk_ndarray {
    char kind;            /* numpy's kind letter: 'u', 'i', 'f' or 'b' */
    int itemsize;         /* 1, 2, 4 or 8 */
    char byteorder;       /* '|' (not applicable), '<' or '>' */
    bool fortran_order;
    int ndim;
    int64_t shape[RELATE_PK_MAX_DIMS];
    int64_t numel;
    const uint8_t *data;  /* points into the pickle's input buffer */
    size_t nbytes;        /* = numel * itemsize, checked */
} relate_pk_ndarray;
relate_status relate_pk_as_ndarray(const relate_pk_value *v, relate_pk_ndarray *out, relate_error *err);

#endif
