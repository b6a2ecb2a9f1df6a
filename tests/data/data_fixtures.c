/* data_fixtures.c: scratch folders, file writers and hand-built python-2 pickles for the dataset
 * tests (see data_fixtures.h).
 * Not a pickler: it emits the exact opcode sequence cPickle wrote for CIFAR's batches. */
#define _XOPEN_SOURCE 700
#include "data_fixtures.h"

#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <zlib.h>

static char g_dirs[8][256];
static int g_ndirs;

const char *fx_tmpdir(const char *tag)
{
    char *d = g_dirs[g_ndirs++];
    snprintf(d, sizeof g_dirs[0], "/tmp/relate_%s_XXXXXX", tag);
    if (!mkdtemp(d)) {
        perror("mkdtemp");
        exit(1);
    }
    return d;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

void fx_cleanup(void)
{
    if (getenv("RELATE_TEST_KEEP")) {
        for (int i = 0; i < g_ndirs; i++)
            fprintf(stderr, "kept %s\n", g_dirs[i]);
        return;
    }
    for (int i = 0; i < g_ndirs; i++)
        nftw(g_dirs[i], rm_one, 16, FTW_DEPTH | FTW_PHYS);
    g_ndirs = 0;
}

void fx_mkdirs(const char *path, int is_dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    if (!is_dir) {
        char *slash = strrchr(p, '/');
        if (!slash)
            return;
        *slash = 0;
    }
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    mkdir(p, 0755);
}

void fx_write(const char *path, const void *data, size_t n)
{
    fx_mkdirs(path, 0);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n)) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

void fx_write_gz(const char *path, const void *data, size_t n)
{
    fx_mkdirs(path, 0);
    gzFile g = gzopen(path, "wb");
    if (!g || (n && gzwrite(g, data, (unsigned)n) != (int)n)) {
        perror(path);
        exit(1);
    }
    gzclose(g);
}

const char *fx_path(const char *fmt, ...)
{
    static char bufs[8][4096];
    static int next;
    char *b = bufs[next++ & 7];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof bufs[0], fmt, ap);
    va_end(ap);
    return b;
}

uint8_t *fx_read(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)size + 1);
    *n = fread(b, 1, (size_t)size, f);
    fclose(f);
    return b;
}

void fx_write_jpeg(const char *path, const uint8_t *rgb, int w, int h, int quality)
{
    fx_mkdirs(path, 0);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)c.next_scanline * (size_t)w * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

void fx_put(fx_buf *b, const void *data, size_t n)
{
    if (!n)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

void fx_put_u8(fx_buf *b, int v)
{
    uint8_t x = (uint8_t)v;
    fx_put(b, &x, 1);
}

void fx_put_le32(fx_buf *b, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        fx_put_u8(b, (int)(v >> (8 * k)));
}

void fx_put_be32(fx_buf *b, uint32_t v)
{
    for (int k = 3; k >= 0; k--)
        fx_put_u8(b, (int)(v >> (8 * k)));
}

void fx_put_str(fx_buf *b, const char *s) { fx_put(b, s, strlen(s)); }

void fx_free(fx_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------ python-2 pickles */
void pk2_short_binstring(fx_buf *b, const char *s)
{
    fx_put_u8(b, 'U');
    fx_put_u8(b, (int)strlen(s));
    fx_put_str(b, s);
}

void pk2_binstring(fx_buf *b, const void *data, size_t n)
{
    fx_put_u8(b, 'T');
    fx_put_le32(b, (uint32_t)n);
    fx_put(b, data, n);
}

void pk2_int(fx_buf *b, int64_t v)
{
    if (v >= 0 && v < 256) {
        fx_put_u8(b, 'K');
        fx_put_u8(b, (int)v);
    } else if (v >= 0 && v < 65536) {
        fx_put_u8(b, 'M');
        fx_put_u8(b, (int)(v & 255));
        fx_put_u8(b, (int)(v >> 8));
    } else {
        fx_put_u8(b, 'J');
        fx_put_le32(b, (uint32_t)(int32_t)v);
    }
}

static void binput(fx_buf *b, int *memo)
{
    fx_put_u8(b, 'q');
    fx_put_u8(b, (*memo)++);
}

static void int_list(fx_buf *b, int *memo, const int *v, int n)
{
    fx_put_u8(b, ']');
    binput(b, memo);
    /* cPickle batches APPENDS by 1000 */
    for (int i = 0; i < n; i += 1000) {
        fx_put_u8(b, '(');
        for (int k = i; k < n && k < i + 1000; k++)
            pk2_int(b, v[k]);
        fx_put_u8(b, 'e');
    }
}

void pk2_cifar_batch(fx_buf *b, const uint8_t *pixels, int n, const char *label_key, const int *labels,
                     const char *label_key2, const int *labels2)
{
    int memo = 1;
    fx_put(b, "\x80\x02}", 3);
    binput(b, &memo);
    fx_put_u8(b, '(');
    pk2_short_binstring(b, "data");
    binput(b, &memo);
    fx_put_str(b, "cnumpy.core.multiarray\n_reconstruct\n");
    binput(b, &memo);
    fx_put_str(b, "cnumpy\nndarray\n");
    binput(b, &memo);
    fx_put(b, "K\x00\x85", 3);
    pk2_short_binstring(b, "b");
    fx_put(b, "\x87R", 2);
    binput(b, &memo);
    fx_put(b, "(K\x01", 3);
    pk2_int(b, n);
    pk2_int(b, 3072);
    fx_put_u8(b, 0x86);
    fx_put_str(b, "cnumpy\ndtype\n");
    binput(b, &memo);
    pk2_short_binstring(b, "u1");
    fx_put(b, "K\x00K\x01\x87R", 6);
    binput(b, &memo);
    fx_put(b, "(K\x03", 3);
    pk2_short_binstring(b, "|");
    fx_put(b, "NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89", 18);
    pk2_binstring(b, pixels, (size_t)n * 3072);
    fx_put(b, "tb", 2);
    pk2_short_binstring(b, label_key);
    binput(b, &memo);
    int_list(b, &memo, labels, n);
    if (label_key2) {
        pk2_short_binstring(b, label_key2);
        binput(b, &memo);
        int_list(b, &memo, labels2, n);
    }
    pk2_short_binstring(b, "batch_label");
    binput(b, &memo);
    pk2_short_binstring(b, "training batch 1 of 5");
    binput(b, &memo);
    pk2_short_binstring(b, "filenames");
    binput(b, &memo);
    fx_put_u8(b, ']');
    binput(b, &memo);
    fx_put_u8(b, '(');
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "img_%d.png", i);
        pk2_short_binstring(b, name);
    }
    fx_put(b, "eu.", 3);
}

void pk2_names(fx_buf *b, const char *key, const char *const *names, int n, const char *key2,
               const char *const *names2, int n2)
{
    int memo = 1;
    fx_put(b, "\x80\x02}", 3);
    binput(b, &memo);
    fx_put_u8(b, '(');
    for (int pass = 0; pass < 2; pass++) {
        const char *k = pass ? key2 : key;
        const char *const *v = pass ? names2 : names;
        int m = pass ? n2 : n;
        if (!k)
            continue;
        pk2_short_binstring(b, k);
        binput(b, &memo);
        fx_put_u8(b, ']');
        binput(b, &memo);
        fx_put_u8(b, '(');
        for (int i = 0; i < m; i++)
            pk2_short_binstring(b, v[i]);
        fx_put_u8(b, 'e');
    }
    pk2_short_binstring(b, "num_cases_per_batch");
    pk2_int(b, 10000);
    fx_put(b, "u.", 2);
}
