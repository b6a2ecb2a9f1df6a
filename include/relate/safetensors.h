/* relate/safetensors.h: read and write the safetensors format (8-byte little-endian header
 * length, a JSON header of {name: {dtype, shape, data_offsets}} plus optional "__metadata__",
 * then raw little-endian bytes).
 * Not a checkpoint format: relate's checkpoints are PyTorch zip files; safetensors serves
 * goldens and `relate export`.
 *
 *   relate_safetensors st;
 *   if (relate_safetensors_open(&st, "tests/golden/kernels.safetensors", &err)) ...;
 *   const relate_st_tensor *t = relate_safetensors_find(&st, "conv_a.x");
 *   float *x = (float *)t->data;   // dtype "F32"
 *   relate_safetensors_close(&st);
 */
#ifndef RELATE_SAFETENSORS_H
#define RELATE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "relate/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RELATE_ST_MAX_DIMS 8

typedef struct relate_st_tensor {
    char *name;
    char dtype[8];         /* "F32", "F64", "I64", "I32", "I8", "U8", ... as in the format */
    int ndim;
    int64_t shape[RELATE_ST_MAX_DIMS];
    int64_t numel;
    const void *data;      /* points into the loaded file; aligned to 8 bytes when offsets are */
    size_t nbytes;
} relate_st_tensor;

typedef struct relate_safetensors {
    unsigned char *buf;    /* the whole file */
    size_t size;
    relate_st_tensor *tensors;
    int count;
    char **meta_keys, **meta_values;
    int meta_count;
} relate_safetensors;

/* Validates header length, JSON, dtypes, shapes and that every tensor lies inside the file. */
relate_status relate_safetensors_open(relate_safetensors *st, const char *path, relate_error *err);
relate_status relate_safetensors_parse(relate_safetensors *st, unsigned char *buf, size_t size,
                                       relate_error *err); /* takes ownership of malloc'd buf */
void relate_safetensors_close(relate_safetensors *st);
const relate_st_tensor *relate_safetensors_find(const relate_safetensors *st, const char *name);
/* Value of a "__metadata__" entry, or NULL. */
const char *relate_safetensors_meta(const relate_safetensors *st, const char *key);
/* Bytes per element of a dtype string, or 0 if unknown. */
size_t relate_st_dtype_size(const char *dtype);

/* Writing: collect entries, then write atomically (temporary file + rename). */
typedef struct relate_st_entry {
    const char *name;
    const char *dtype;
    int ndim;
    const int64_t *shape;
    const void *data;
} relate_st_entry;
relate_status relate_safetensors_write(const char *path, const relate_st_entry *entries, int count,
                                       const char *const *meta_kv, int meta_count,
                                       relate_error *err);

#ifdef __cplusplus
}
#endif
#endif
