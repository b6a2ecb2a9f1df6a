/* relate/checkpoint.h: checkpoints in PyTorch's torch.save formats (spec 8), so that files move
 * freely between relate and PyTorch: relate writes the zip format (what torch.save has written
 * since 1.6) and reads both the zip and the legacy format (what the reference, on PyTorch 1.4,
 * wrote; its released pretrained archives use it).
 * Not a general pickle engine: the reader interprets only dictionaries of state dicts, optimizer
 * state dicts and plain values, through the restricted unpickler (nothing is ever executed).
 *
 *   relate_ckpt_writer *w = relate_ckpt_writer_create();
 *   relate_ckpt_put_state_dict(w, "backbone", &bb.params);
 *   relate_ckpt_put_state_dict(w, "relation", &head.params);
 *   relate_ckpt_put_adam(w, "optimizer", &adam);
 *   relate_ckpt_put_int(w, "epoch", 50);                     // relate's own extra key
 *   if (relate_ckpt_write(w, path, &err) != RELATE_OK) ...;  // temporary file, then rename
 *   relate_ckpt_writer_free(w);
 *
 *   relate_ckpt *c;
 *   if (relate_ckpt_open(&c, path, &err) != RELATE_OK) ...;  // zip or legacy, detected
 *   relate_ckpt_load_state_dict(c, "backbone", &bb.params, &err);   // strict: every name, shape
 *   relate_ckpt_close(c);
 */
#ifndef RELATE_CHECKPOINT_H
#define RELATE_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "relate/optim.h"
#include "relate/params.h"
#include "relate/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- writing ---- */
typedef struct relate_ckpt_writer relate_ckpt_writer;

relate_ckpt_writer *relate_ckpt_writer_create(void);
void relate_ckpt_writer_free(relate_ckpt_writer *w);
/* Top-level dictionary entries, kept in the order they are put. Values are copied at put time,
 * so the sources may change afterwards. A repeated key replaces the earlier value.
 * A state dict becomes a collections.OrderedDict of CPU tensors in the store's registration
 * order (float32 parameters and buffers, int64 scalars for num_batches_tracked). */
relate_status relate_ckpt_put_state_dict(relate_ckpt_writer *w, const char *key, const relate_params *p);
/* torch.optim.Adam / SGD state dicts (spec 8): state {id: {...}} only for parameters that
 * stepped, param_groups with PyTorch's hyper-parameter names and ids 0..N-1 across groups. */
relate_status relate_ckpt_put_adam(relate_ckpt_writer *w, const char *key, const relate_adam *opt);
relate_status relate_ckpt_put_sgd(relate_ckpt_writer *w, const char *key, const relate_sgd *opt);
relate_status relate_ckpt_put_int(relate_ckpt_writer *w, const char *key, int64_t value);
relate_status relate_ckpt_put_str(relate_ckpt_writer *w, const char *key, const char *value);
relate_status relate_ckpt_put_float(relate_ckpt_writer *w, const char *key, double value);
/* Writes the zip container atomically (temporary file in the same folder, fsync, rename). */
relate_status relate_ckpt_write(const relate_ckpt_writer *w, const char *path, relate_error *err);
/* Writes a bare state dict as the top-level object (what the reference's essential script saves,
 * and what torch.save(module.state_dict()) produces). */
relate_status relate_ckpt_write_state_dict(const relate_params *p, const char *path, relate_error *err);

/* ---- reading ---- */
typedef struct relate_ckpt relate_ckpt;

typedef enum relate_ckpt_format {
    RELATE_CKPT_ZIP,
    RELATE_CKPT_LEGACY
} relate_ckpt_format;

/* Opens and parses a file. Errors name the file and say what is wrong: missing, truncated,
 * not a PyTorch checkpoint (e.g. a safetensors or text file), a refused pickle global. */
relate_status relate_ckpt_open(relate_ckpt **out, const char *path, relate_error *err);
void relate_ckpt_close(relate_ckpt *c);
relate_ckpt_format relate_ckpt_get_format(const relate_ckpt *c);
/* True when the top-level object is a dictionary holding `key`. */
bool relate_ckpt_has(const relate_ckpt *c, const char *key);
/* The top-level keys joined by ", " (for error messages); "" for a bare state dict. */
const char *relate_ckpt_key_list(const relate_ckpt *c);
/* Loads the state dict under `key` (NULL: the top-level object is itself a state dict) into p:
 * strict like load_state_dict(strict=True): every entry of p must be present with its exact
 * shape, and no extra tensor may remain; dtypes float32/float64/float16 convert to float32,
 * int64/int32 to int64. The first mismatches are named in the error. p is unchanged on error. */
relate_status relate_ckpt_load_state_dict(const relate_ckpt *c, const char *key, relate_params *p,
                                          relate_error *err);
/* Restores an optimizer state dict into an optimizer built with the same groups: the number of
 * groups and of parameters per group must match, every state tensor must have its parameter's
 * shape; lr and the other hyper-parameters of each group are taken from the file. Refused:
 * amsgrad/maximize, groups whose betas/eps (Adam) or momentum settings (SGD) differ (relate has
 * one setting per optimizer), and SGD momentum where opt was built without it or the reverse.
 * opt is unchanged on error; loaded state tensors are freed by relate_adam_free/relate_sgd_free. */
relate_status relate_ckpt_load_adam(const relate_ckpt *c, const char *key, relate_adam *opt,
                                    relate_error *err);
relate_status relate_ckpt_load_sgd(const relate_ckpt *c, const char *key, relate_sgd *opt,
                                   relate_error *err);
/* Plain values; RELATE_ERR_NOT_FOUND-style error (RELATE_ERR_FORMAT) if absent or of another type. */
relate_status relate_ckpt_get_int(const relate_ckpt *c, const char *key, int64_t *out, relate_error *err);
/* The returned string lives as long as c. */
relate_status relate_ckpt_get_str(const relate_ckpt *c, const char *key, const char **out,
                                  relate_error *err);
/* A Python float (an int is accepted and converted). */
relate_status relate_ckpt_get_float(const relate_ckpt *c, const char *key, double *out, relate_error *err);

/* ---- inspection ---- */
/* One tensor, converted: floating dtypes to float32 (f32), integer and bool dtypes to int64
 * (i64). The file's own dtype is named in `dtype` ("float32", "float16", "int64", ...). */
typedef struct relate_ckpt_tensor {
    char dtype[12];
    bool is_int;    /* values in i64, else in f32 */
    int ndim;
    int64_t shape[8];
    int64_t numel;
    float *f32;
    int64_t *i64;
} relate_ckpt_tensor;
/* Looks up the tensor at a '/'-separated path from the top-level object: dictionary keys (a
 * decimal component also matches an int key) and list/tuple indices, e.g.
 * "backbone/layer1.conv.weight" or "optimizer/state/0/exp_avg"; views with a storage offset and
 * non-contiguous strides are gathered. Free the result with relate_ckpt_tensor_free. */
relate_status relate_ckpt_get_tensor(const relate_ckpt *c, const char *path, relate_ckpt_tensor *out,
                                     relate_error *err);
void relate_ckpt_tensor_free(relate_ckpt_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
