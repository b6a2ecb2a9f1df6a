/* fuzz_data.h: the frame of the dataset-reader harnesses (fuzz_cifar_bin, fuzz_cifar_pickle,
 * fuzz_stl10, fuzz_idx, fuzz_tiny, fuzz_folder). A harness lays out a small valid dataset in a
 * per-process data root once, and names the files the input may replace ("slots"). An input is
 * one selector byte (slot = byte % number of slots) and the bytes of that file; every other slot
 * holds its valid default, so each run sees exactly "valid dataset + this one file".
 * The datasets are opened with allow_partial (src/data/readers.h), as the tests do: the
 * canonical record counts of relate_dataset_open would need 30 MB batches. On success every
 * image, label and class name of every split is read.
 * Not a reader: the checks are the sanitizers'. */
#ifndef RELATE_FUZZ_DATA_H
#define RELATE_FUZZ_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fuzz_common.h"

typedef struct fd_slot {
    char path[4096];  /* absolute */
    fz_buf def;       /* the valid content */
    bool absent;      /* by default the file does not exist (def unused) */
    bool gzip;        /* the input is gzip-compressed before it is written */
    bool dirty;       /* holds a fuzz input, not its default */
} fd_slot;

#define FD_MAX_SLOTS 8

typedef struct fd_slots {
    fd_slot slot[FD_MAX_SLOTS];
    int n;
} fd_slots;

/* Adds a slot at root/rel with a copy of def (NULL: absent by default); writes the default. */
fd_slot *fd_add(fd_slots *s, const char *root, const char *rel, const void *def, size_t n, bool gzip);
/* Puts input into slot `sel` and every other dirty slot back to its default. */
void fd_apply(fd_slots *s, int sel, const uint8_t *data, size_t size);
/* Opens `name` under root (allow_partial, no Fashion-MNIST fallback); on success reads every
 * image of every split, labels and class names, then closes. Returns whether it opened. */
bool fd_open_touch(const char *name, const char *root);
/* Writes one seed per slot that has a default: selector byte k, then the default. */
void fd_seed_defaults(const char *dir, const fd_slots *s, const char *prefix);
/* Writes a seed of selector sel and the given bytes. */
void fd_seed_sel(const char *dir, const char *name, int sel, const void *data, size_t n);
/* Writes a file of valid bytes under root (not a slot). */
void fd_fixed(const char *root, const char *rel, const void *data, size_t n);

#endif
