/* seeds.h: valid inputs in the exact on-disk formats, generated in C, from which the harnesses
 * write their seed corpora (`fuzz_<name> --write-seeds DIR`) and the fixed files of their
 * dataset folders: python-2 CIFAR pickles, CIFAR/STL-10/IDX records, JPEG and PNG variants,
 * PyTorch checkpoints (zip through relate's own writer, legacy assembled from the same pickle)
 * and the parameter stores and optimizers the checkpoint harness loads them into.
 * Not checks: nothing here judges what a reader returns. */
#ifndef RELATE_FUZZ_SEEDS_H
#define RELATE_FUZZ_SEEDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fuzz_common.h"
#include "relate/nn.h"
#include "relate/optim.h"
#include "relate/params.h"

/* ------------------------------------------------------------------ pickles (cPickle protocol 2) */
/* {'data': uint8 ndarray [n, 3072], label_key: [..], (label_key2: [..],) 'batch_label', 'filenames'} */
void sd_pk2_cifar_batch(fz_buf *b, const uint8_t *pixels, int n, const char *label_key, const int *labels,
                        const char *label_key2, const int *labels2);
/* {key: [names], (key2: [names2],) 'num_cases_per_batch': 10000} */
void sd_pk2_names(fz_buf *b, const char *key, const char *const *names, int n, const char *key2,
                  const char *const *names2, int n2);
/* A CIFAR-10 (labels < 10) or CIFAR-100 (fine < 100, coarse < 20) batch of n records, file tag f. */
void sd_cifar_pickle(fz_buf *b, int f, int n, bool hundred);
/* CIFAR-10 batches.meta (10 names) or CIFAR-100 meta (100 fine + 20 coarse names). */
void sd_cifar_meta_pickle(fz_buf *b, bool hundred);
/* Hex strings of protocol 2 and 4 pickles (tests/data/test_data_io.c), NULL-terminated. */
extern const char *const sd_pickle_hex[];
size_t sd_unhex(const char *hex, fz_buf *out);

/* ------------------------------------------------------------------ dataset records */
/* n CIFAR binary records: label_bytes 1 (CIFAR-10) or 2 (CIFAR-100: coarse, fine), then 3072. */
void sd_cifar_bin(fz_buf *b, int f, int n, int label_bytes);
/* n STL-10 images (3 x 96 x 96, column-major planes) and their labels 1..10. */
void sd_stl_images(fz_buf *b, int split, int n);
void sd_stl_labels(fz_buf *b, int split, int n);
/* IDX files: images (magic 0x803, n x rows x cols) and labels (magic 0x801). */
void sd_idx_images(fz_buf *b, int n, int seed, int rows, int cols);
void sd_idx_labels(fz_buf *b, int n, int seed);

/* ------------------------------------------------------------------ images */
/* A w x h JPEG of test pattern id: quality, grayscale, progressive, 4:4:4 instead of 4:2:0,
 * a restart interval (in MCU rows; 0 none). */
void sd_jpeg(fz_buf *out, int w, int h, int id, int quality, bool gray, bool progressive, bool s444, int restart);
/* A w x h PNG of test pattern id: libpng color_type (PNG_COLOR_TYPE_*), bit_depth, Adam7
 * interlacing when interlace, a tRNS chunk when trns (palette and gray/RGB without alpha). */
void sd_png(fz_buf *out, int w, int h, int id, int color_type, int bit_depth, bool interlace, bool trns);

/* ------------------------------------------------------------------ checkpoints */
/* A small module with every kind of entry (the checkpoint tests' store): conv.weight [2,1,3,3],
 * bn.{weight,bias,running_mean,running_var,num_batches_tracked}, fc.weight [3,4], empty.buf [0,3]. */
void sd_small_store(relate_params *p);
/* The stores of the hand-built "views" checkpoints: rows [2,3], transposed [3,4] (buffer),
 * expanded [2,3] (buffer), half [2], count (int64 scalar). */
void sd_views_store(relate_params *p);
/* One group of every trainable entry with elements, in store order (the checkpoint writers'
 * ids 0..N-1). params must hold p->count pointers. */
relate_param_group sd_group(relate_params *p, relate_param **params);
/* Adam (0.9, 0.999, 1e-8) and SGD (momentum 0.9) as the harness builds them. */
int sd_adam(relate_adam *o, relate_param_group *g);
int sd_sgd(relate_sgd *o, relate_param_group *g);

/* Writes every checkpoint seed into dir: zip files (legacy false) or the same objects in the
 * legacy format (legacy true). Returns 0 on success. */
int sd_checkpoint_seeds(const char *dir, bool legacy);
/* The zip checkpoints' bytes, for the zip and pickle harnesses: calls fn for each file. */
int sd_checkpoint_files(bool legacy, void (*fn)(const char *name, const uint8_t *data, size_t n, void *ctx),
                        void *ctx);

#endif
