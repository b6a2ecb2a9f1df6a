/* relate/npy.h: NumPy .npy files (format version 1.0), what numpy.load reads: features and labels
 * for other tools (t-SNE, UMAP, scikit-learn).
 * Not a reader: relate writes these files and never reads them back. */
#ifndef RELATE_NPY_H
#define RELATE_NPY_H

#include <stdint.h>

#include "relate/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes a C-order float32 array of `ndim` dimensions (1 or 2) atomically (temporary name, then
 * rename). */
relate_status relate_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape,
                                   relate_error *err);
/* The same for int64 (labels, as numpy.int64). */
relate_status relate_npy_write_i64(const char *path, const int64_t *data, int ndim, const int64_t *shape,
                                   relate_error *err);

#ifdef __cplusplus
}
#endif
#endif
