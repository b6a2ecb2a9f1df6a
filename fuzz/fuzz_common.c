/* fuzz_common.c: seeds switch, scratch folders, file writers and the byte sink of the fuzz
 * harnesses (see fuzz_common.h). */
#define _XOPEN_SOURCE 700
#include "fuzz_common.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

static int g_seed_count;

void fz_maybe_write_seeds(int *argc, char ***argv, int (*write)(const char *dir))
{
    const char *dir = NULL;
    for (int i = 1; i < *argc; i++) {
        const char *a = (*argv)[i];
        if (strcmp(a, "--write-seeds") == 0 && i + 1 < *argc)
            dir = (*argv)[i + 1];
        else if (strncmp(a, "--write-seeds=", 14) == 0)
            dir = a + 14;
    }
    if (!dir)
        return;
    fz_mkdirs(dir, 1);
    int rc = write(dir);
    fprintf(stderr, "%s: wrote %d seed files to %s\n", (*argv)[0], g_seed_count, dir);
    exit(rc ? 1 : 0);
}

static char g_tmp[8][512];
static int g_ntmp;
static pid_t g_tmp_owner;

static void tmp_cleanup(void)
{
    if (getpid() != g_tmp_owner)
        return; /* a forked child must not remove its parent's folders */
    for (int i = 0; i < g_ntmp; i++)
        fz_rmtree(g_tmp[i]);
    g_ntmp = 0;
}

const char *fz_tmpdir(const char *tag)
{
    if (g_ntmp == 8) {
        fprintf(stderr, "fz_tmpdir: too many folders\n");
        abort();
    }
    const char *base = getenv("RELATE_FUZZ_TMP");
    struct stat sb;
    if (!base || !*base)
        base = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    char *d = g_tmp[g_ntmp];
    snprintf(d, sizeof g_tmp[0], "%s/relate_fuzz_%s_XXXXXX", base, tag);
    if (!mkdtemp(d)) {
        fprintf(stderr, "fz_tmpdir: mkdtemp(%s): %s\n", d, strerror(errno));
        abort();
    }
    if (g_ntmp++ == 0) {
        g_tmp_owner = getpid();
        atexit(tmp_cleanup);
    }
    return d;
}

const char *fz_path(const char *fmt, ...)
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

void fz_mkdirs(const char *path, int is_dir)
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

void fz_write(const char *path, const void *data, size_t n)
{
    fz_mkdirs(path, 0);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "fz_write(%s): %s\n", path, strerror(errno));
        abort();
    }
}

void fz_write_gz(const char *path, const void *data, size_t n)
{
    fz_mkdirs(path, 0);
    gzFile g = gzopen(path, "wb1");
    const uint8_t *p = data;
    size_t done = 0;
    while (g && done < n) {
        unsigned chunk = n - done > (1u << 30) ? 1u << 30 : (unsigned)(n - done);
        if (gzwrite(g, p + done, chunk) != (int)chunk)
            break;
        done += chunk;
    }
    if (!g || done != n || gzclose(g) != Z_OK) {
        fprintf(stderr, "fz_write_gz(%s) failed\n", path);
        abort();
    }
}

uint8_t *fz_read(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *b = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            uint8_t *nb = realloc(b, cap);
            if (!nb) {
                free(b);
                fclose(f);
                return NULL;
            }
            b = nb;
        }
        size_t got = fread(b + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *n = len;
    return b;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

void fz_rmtree(const char *path) { nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

void fz_seed(const char *dir, const char *name, const void *data, size_t n)
{
    fz_write(fz_path("%s/%s", dir, name), data, n);
    g_seed_count++;
}

void fz_debug(const char *fmt, ...)
{
    static int on = -1;
    if (on < 0)
        on = getenv("RELATE_FUZZ_DEBUG") != NULL;
    if (!on)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static volatile uint8_t g_sink;

void fz_touch(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc ^= b[i];
    g_sink ^= acc;
}

void fz_put(fz_buf *b, const void *data, size_t n)
{
    if (!n)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            abort();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

void fz_put_u8(fz_buf *b, int v)
{
    uint8_t x = (uint8_t)v;
    fz_put(b, &x, 1);
}

void fz_put_le32(fz_buf *b, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        fz_put_u8(b, (int)(v >> (8 * k)));
}

void fz_put_be32(fz_buf *b, uint32_t v)
{
    for (int k = 3; k >= 0; k--)
        fz_put_u8(b, (int)(v >> (8 * k)));
}

void fz_put_str(fz_buf *b, const char *s) { fz_put(b, s, strlen(s)); }

void fz_free(fz_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}
