/* data_fixtures.h: helpers for the dataset tests: a scratch folder, file writers, a byte buffer
 * for hand-built pickles and IDX/CIFAR/STL-10 records, and a JPEG writer (libjpeg).
 * Not test logic: the checks live in test_datasets.c and test_data_io.c. */
#ifndef RELATE_TESTS_DATA_FIXTURES_H
#define RELATE_TESTS_DATA_FIXTURES_H

#include <stddef.h>
#include <stdint.h>

/* Creates a fresh folder under /tmp (removed by fx_cleanup unless RELATE_TEST_KEEP is set). */
const char *fx_tmpdir(const char *tag);
void fx_cleanup(void);
/* mkdir -p of the parent folders of path (when it ends in a file) or of path itself (dir). */
void fx_mkdirs(const char *path, int is_dir);
/* Writes bytes to a file, creating its folders. */
void fx_write(const char *path, const void *data, size_t n);
/* Writes a gzip file (zlib gzwrite). */
void fx_write_gz(const char *path, const void *data, size_t n);
/* snprintf into a static rotating buffer: fx_path("%s/a/b", root). */
const char *fx_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reads a whole file; NULL if missing. */
uint8_t *fx_read(const char *path, size_t *n);
/* Writes 8-bit RGB as a baseline JPEG of the given quality (4:2:0). */
void fx_write_jpeg(const char *path, const uint8_t *rgb, int w, int h, int quality);

/* A growable byte buffer. */
typedef struct fx_buf {
    uint8_t *p;
    size_t n, cap;
} fx_buf;
void fx_put(fx_buf *b, const void *data, size_t n);
void fx_put_u8(fx_buf *b, int v);
void fx_put_le32(fx_buf *b, uint32_t v);
void fx_put_be32(fx_buf *b, uint32_t v);
void fx_put_str(fx_buf *b, const char *s);
void fx_free(fx_buf *b);

/* python-2 style (cPickle protocol 2) pieces, as CIFAR's pickles have them */
void pk2_short_binstring(fx_buf *b, const char *s);      /* U len s */
void pk2_binstring(fx_buf *b, const void *data, size_t n); /* T len4 data */
void pk2_int(fx_buf *b, int64_t v);                        /* K / M / J */
/* A whole CIFAR batch pickle: {'data': uint8 array [n, 3072], label_key: [labels...],
 * 'batch_label': ..., 'filenames': [...]}; second_key/second labels optional (CIFAR-100). */
void pk2_cifar_batch(fx_buf *b, const uint8_t *pixels, int n, const char *label_key, const int *labels,
                     const char *label_key2, const int *labels2);
/* {'<key>': ['name0', ...]} (batches.meta / meta) */
void pk2_names(fx_buf *b, const char *key, const char *const *names, int n, const char *key2,
               const char *const *names2, int n2);

/* Deterministic test pixel value. */
static inline uint8_t fx_pix(int a, int b, int c, int d) { return (uint8_t)((a * 131 + b * 31 + c * 17 + d * 7 + 3) & 255); }

#endif
