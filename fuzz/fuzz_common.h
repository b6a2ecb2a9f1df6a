/* fuzz_common.h: what every libFuzzer harness in fuzz/ shares: the `--write-seeds DIR` switch,
 * a per-process scratch folder (in /dev/shm when it exists) for the readers that take paths,
 * file writers, a growable byte buffer and a "touch" that reads every byte of a result so that
 * AddressSanitizer checks it.
 * Not test logic: each fuzz_<name>.c holds its own LLVMFuzzerTestOneInput; seeds.h the valid
 * inputs the seed corpora are made of. */
#ifndef RELATE_FUZZ_COMMON_H
#define RELATE_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* When argv holds `--write-seeds DIR` (or `--write-seeds=DIR`): creates DIR, calls write(DIR),
 * prints how many files it wrote and exits (0, or 1 when write failed). Otherwise returns.
 * Call it first thing in LLVMFuzzerInitialize. */
void fz_maybe_write_seeds(int *argc, char ***argv, int (*write)(const char *dir));

/* A fresh folder for this process: $RELATE_FUZZ_TMP (run.sh sets it), else /dev/shm, else /tmp,
 * named relate_fuzz_<tag>_XXXXXX; removed with everything in it at exit. Aborts on failure. */
const char *fz_tmpdir(const char *tag);

/* snprintf into one of 8 rotating static buffers. */
const char *fz_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* mkdir -p of path itself (is_dir) or of its parent folder. */
void fz_mkdirs(const char *path, int is_dir);
/* Writes a whole file (creating its folders); aborts on failure: the harness's own setup. */
void fz_write(const char *path, const void *data, size_t n);
/* The same through zlib's gzip writer. */
void fz_write_gz(const char *path, const void *data, size_t n);
/* Reads a whole file; NULL when it cannot. */
uint8_t *fz_read(const char *path, size_t *n);
/* Removes a file or a folder tree (nftw, no shell). */
void fz_rmtree(const char *path);
/* Writes seed DIR/name; counts it for fz_maybe_write_seeds's message. */
void fz_seed(const char *dir, const char *name, const void *data, size_t n);

/* With RELATE_FUZZ_DEBUG set in the environment, prints a line to stderr (what each reader call
 * returned: to check that the seeds get where they should). */
void fz_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads every byte of p[0..n) into a sink the optimiser cannot drop. */
void fz_touch(const void *p, size_t n);

typedef struct fz_buf {
    uint8_t *p;
    size_t n, cap;
} fz_buf;
void fz_put(fz_buf *b, const void *data, size_t n);
void fz_put_u8(fz_buf *b, int v);
void fz_put_le32(fz_buf *b, uint32_t v);
void fz_put_be32(fz_buf *b, uint32_t v);
void fz_put_str(fz_buf *b, const char *s);
void fz_free(fz_buf *b);

/* A deterministic test pixel value (the tests' fx_pix). */
static inline uint8_t fz_pix(int a, int b, int c, int d) { return (uint8_t)((a * 131 + b * 31 + c * 17 + d * 7 + 3) & 255); }

/* The two libFuzzer entry points every harness defines. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
