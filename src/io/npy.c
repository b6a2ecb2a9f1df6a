/* npy.c: the .npy format 1.0 writer: magic, version, a little-endian uint16 header length, a
 * Python-literal dict padded with spaces to a multiple of 64 bytes and ended by a newline, then
 * the raw little-endian data. */
#include <stdio.h>
#include <string.h>

#include "io/atomic_file.h"
#include "relate/npy.h"

static relate_status write_npy(const char *path, const char *descr, size_t item, const void *data, int ndim,
                               const int64_t *shape, relate_error *err)
{
    if (ndim < 1 || ndim > 2)
        return relate_error_set(err, RELATE_ERR_ARG, "npy: %d dimensions (1 or 2 are written)", ndim);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return relate_error_set(err, RELATE_ERR_ARG, "npy: negative dimension");
        count *= (size_t)shape[i];
    }
    char dims[64], dict[160];
    if (ndim == 1)
        snprintf(dims, sizeof dims, "(%lld,)", (long long)shape[0]);
    else
        snprintf(dims, sizeof dims, "(%lld, %lld)", (long long)shape[0], (long long)shape[1]);
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, dims);
    /* magic (6) + version (2) + length (2) + dict + padding + '\n': a multiple of 64 */
    const size_t total = ((size_t)(10 + n + 1) + 63) / 64 * 64;
    const size_t hlen = total - 10;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    relate_atomic_file f;
    if (relate_atomic_open(&f, path, err) != RELATE_OK)
        return err->code;
    fwrite(pre, 1, sizeof pre, f.fp);
    fwrite(dict, 1, (size_t)n, f.fp);
    for (size_t i = (size_t)n; i + 1 < hlen; i++)
        fputc(' ', f.fp);
    fputc('\n', f.fp);
    /* x86-64 is little-endian, as the descriptors say. */
    fwrite(data, item, count, f.fp);
    return relate_atomic_commit(&f, err);
}

relate_status relate_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape,
                                   relate_error *err)
{
    return write_npy(path, "<f4", sizeof(float), data, ndim, shape, err);
}

relate_status relate_npy_write_i64(const char *path, const int64_t *data, int ndim, const int64_t *shape,
                                   relate_error *err)
{
    return write_npy(path, "<i8", sizeof(int64_t), data, ndim, shape, err);
}
