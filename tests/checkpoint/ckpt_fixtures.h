/* ckpt_fixtures.h: what the checkpoint tests share: a scratch folder and file helpers, small
 * parameter stores and optimizers, and writers of hand-built torch.save files (zip and legacy
 * formats) from pickles built with relate_pkw; and the themed checks main calls.
 * Not checks of their own (those are in ckpt_roundtrip.c, ckpt_handbuilt.c, ckpt_allow_list.c and
 * ckpt_damaged.c; main is in test_checkpoint.c). */
#ifndef RELATE_TESTS_CKPT_FIXTURES_H
#define RELATE_TESTS_CKPT_FIXTURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/pickle_write.h"
#include "relate/checkpoint.h"

/* The scratch folder: a mkdtemp template until main creates it. */
extern char dir[];
/* dir/name, in one of 8 rotating static buffers. */
const char *path_of(const char *name);
/* A whole file (NULL when it cannot be opened; the caller frees), and a file written whole. */
uint8_t *slurp(const char *path, size_t *size);
void spit(const char *path, const void *data, size_t size);
/* How many atomic_file temporaries (PATH.tmp) the scratch folder holds. */
int count_tmp_files(void);
/* Opens, expecting failure with `code`, a message naming the file and containing `want`. */
void expect_open_error(const char *path, relate_status code, const char *want);

/* ------------------------------------------------------------------ stores */
/* A small module: every kind of entry, 4-D, scalar and empty shapes. `extra` adds one entry. */
void make_store(relate_params *p, uint64_t seed, const char *extra);
bool stores_equal(const relate_params *a, const relate_params *b);
/* The trainable parameters (RELATE_PARAM, not empty) into out; returns their count. */
int trainable(relate_params *p, relate_param **out);
void fake_grads(relate_params *p, uint64_t seed);
/* Two groups; bn.bias is frozen and never steps (no state entry). */
void adam_setup(relate_params *p, relate_param **prm, relate_param_group *g, relate_adam *opt, double lr, uint64_t seed);

/* ------------------------------------------------------------------ hand-built files */
typedef struct blob {
    const char *name;
    const void *data;
    size_t size;
} blob;

void write_zip(const char *path, const blob *b, int n);
/* A torch checkpoint zip from a data.pkl and storages "0", "1", ... */
void write_torch_zip(const char *path, const relate_pkw *pkl, const void *const *data, const size_t *sizes, int n);
/* torch._utils._rebuild_tensor_v2 with a zip (5-tuple) or legacy (6-tuple) persistent id. */
void pk_tensor(relate_pkw *w, const char *storage, const char *key, const char *loc, int64_t storage_numel,
               bool legacy, int64_t offset, int ndim, const int64_t *size, const int64_t *stride);
/* collections.OrderedDict() and a MARK: the start of a state dict's items. */
void pk_odict_begin(relate_pkw *w);
/* The legacy format: magic, protocol, system info, the object, the sorted keys, the data. */
void write_legacy(const char *path, const relate_pkw *obj, const char *const *keys, const void *const *data,
                  const int64_t *counts, const int *elsize, int n);
/* A float storage of 0..11 for hand-built tensors. */
extern float storage12[12];

/* The themed checks, by file; main (test_checkpoint.c) runs them. */
/* ckpt_roundtrip.c */
void test_state_dict_roundtrip(void);
void test_bare_state_dict(void);
void test_adam_roundtrip(void);
void test_sgd_roundtrip(void);
void test_strict_loading(void);
/* ckpt_handbuilt.c */
void test_adam_tensor_step(void);
void test_views_zip_and_legacy(void);
void test_refused_globals(void);
/* ckpt_allow_list.c */
void test_allow_list(void);
/* ckpt_damaged.c */
void test_truncated_and_corrupt_zip(void);
void test_foreign_files(void);
void test_atomic_writes(void);

#endif
