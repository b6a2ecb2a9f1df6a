/* ckpt_fixtures.c: the scratch folder, file helpers, stores and hand-built file writers of the
 * checkpoint tests (see ckpt_fixtures.h).
 * Not test logic: its CHECKs are the helpers' own (a store that finalizes, a zip that writes,
 * expect_open_error's refusal); the themed checks are in ckpt_*.c. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_fixtures.h"
#include "io/zip_stored.h"
#include "test_util.h"

char dir[] = "/tmp/relate_ckpt_XXXXXX";

const char *path_of(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

uint8_t *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    *size = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

void spit(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (size)
        fwrite(data, 1, size, f);
    fclose(f);
}

int count_tmp_files(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strstr(e->d_name, ".tmp") != NULL; /* atomic_file's PATH.tmp */
    if (d)
        closedir(d);
    return n;
}

void expect_open_error(const char *path, relate_status code, const char *want)
{
    relate_ckpt *c = NULL;
    relate_error err = {0};
    relate_status s = relate_ckpt_open(&c, path, &err);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    CHECK_MSG(s == code && c == NULL, "%s: status %d (want %d): %s", path, s, code, err.msg);
    CHECK_MSG(strstr(err.msg, base) != NULL, "message does not name the file: %s", err.msg);
    CHECK_MSG(!want || strstr(err.msg, want) != NULL, "message lacks \"%s\": %s", want, err.msg);
    relate_ckpt_close(c);
}

/* ------------------------------------------------------------------ stores */
void make_store(relate_params *p, uint64_t seed, const char *extra)
{
    relate_error err = {0};
    relate_params_init(p);
    relate_params_add(p, "conv.weight", RELATE_PARAM, 4, (int64_t[]){2, 1, 3, 3});
    relate_params_add(p, "bn.weight", RELATE_PARAM, 1, (int64_t[]){2});
    relate_params_add(p, "bn.bias", RELATE_PARAM, 1, (int64_t[]){2});
    relate_params_add(p, "bn.running_mean", RELATE_BUFFER_F32, 1, (int64_t[]){2});
    relate_params_add(p, "bn.running_var", RELATE_BUFFER_F32, 1, (int64_t[]){2});
    relate_params_add(p, "bn.num_batches_tracked", RELATE_BUFFER_I64, 0, NULL);
    relate_params_add(p, "fc.weight", RELATE_PARAM, 2, (int64_t[]){3, 4});
    relate_params_add(p, "empty.buf", RELATE_BUFFER_F32, 2, (int64_t[]){0, 3});
    if (extra)
        relate_params_add(p, extra, RELATE_PARAM, 1, (int64_t[]){5});
    CHECK(relate_params_finalize(p, &err) == RELATE_OK);
    for (int i = 0; i < p->count; i++) {
        relate_param *e = p->items[i];
        if (e->kind == RELATE_BUFFER_I64)
            e->i64[0] = (int64_t)seed * 1000 + 7;
        else
            relate_test_fill(e->data, (size_t)e->numel, seed * 31 + (uint64_t)i);
    }
}

bool stores_equal(const relate_params *a, const relate_params *b)
{
    if (a->count != b->count)
        return false;
    for (int i = 0; i < a->count; i++) {
        const relate_param *x = a->items[i], *y = b->items[i];
        if (strcmp(x->name, y->name) || x->numel != y->numel)
            return false;
        size_t bytes = (size_t)x->numel * (x->kind == RELATE_BUFFER_I64 ? 8 : 4);
        const void *px = x->kind == RELATE_BUFFER_I64 ? (const void *)x->i64 : (const void *)x->data;
        const void *py = y->kind == RELATE_BUFFER_I64 ? (const void *)y->i64 : (const void *)y->data;
        if (bytes && memcmp(px, py, bytes))
            return false;
    }
    return true;
}

int trainable(relate_params *p, relate_param **out)
{
    int n = 0;
    for (int i = 0; i < p->count; i++)
        if (p->items[i]->kind == RELATE_PARAM && p->items[i]->numel > 0)
            out[n++] = p->items[i];
    return n;
}

void fake_grads(relate_params *p, uint64_t seed)
{
    for (int i = 0; i < p->count; i++)
        if (p->items[i]->kind == RELATE_PARAM)
            relate_test_fill(p->items[i]->grad, (size_t)p->items[i]->numel, seed + (uint64_t)i);
}

void adam_setup(relate_params *p, relate_param **prm, relate_param_group *g, relate_adam *opt, double lr, uint64_t seed)
{
    relate_error err = {0};
    make_store(p, seed, NULL);
    int n = trainable(p, prm); /* conv.weight, bn.weight, bn.bias, fc.weight */
    CHECK(n == 4);
    g[0] = (relate_param_group){.params = prm, .count = 3, .lr = lr};
    g[1] = (relate_param_group){.params = prm + 3, .count = 1, .lr = 2 * lr, .weight_decay = 1e-4};
    CHECK(relate_adam_init(opt, g, 2, 0.9, 0.999, 1e-8, &err) == RELATE_OK);
}

/* ------------------------------------------------------------------ hand-built files */
void write_zip(const char *path, const blob *b, int n)
{
    FILE *f = fopen(path, "wb");
    relate_zip_writer z;
    relate_zip_writer_init(&z, f);
    relate_error err = {0};
    for (int k = 0; k < n; k++)
        CHECK(relate_zip_writer_add(&z, b[k].name, b[k].data, b[k].size, &err) == RELATE_OK);
    CHECK(relate_zip_writer_finish(&z, &err) == RELATE_OK);
    relate_zip_writer_free(&z);
    fclose(f);
}

void write_torch_zip(const char *path, const relate_pkw *pkl, const void *const *data, const size_t *sizes, int n)
{
    blob b[16];
    char names[16][32];
    int k = 0;
    b[k++] = (blob){"archive/data.pkl", pkl->buf, pkl->len};
    for (int i = 0; i < n && i < 12; i++) {
        snprintf(names[i], sizeof names[i], "archive/data/%d", i);
        b[k++] = (blob){names[i], data[i], sizes[i]};
    }
    b[k++] = (blob){"archive/version", "3\n", 2};
    write_zip(path, b, k);
}

void pk_tensor(relate_pkw *w, const char *storage, const char *key, const char *loc, int64_t storage_numel,
               bool legacy, int64_t offset, int ndim, const int64_t *size, const int64_t *stride)
{
    relate_pkw_global(w, "torch._utils", "_rebuild_tensor_v2");
    relate_pkw_tuple_begin(w, 6);
    relate_pkw_tuple_begin(w, legacy ? 6 : 5);
    relate_pkw_str(w, "storage");
    relate_pkw_global(w, "torch", storage);
    relate_pkw_str(w, key);
    relate_pkw_str(w, loc);
    relate_pkw_int(w, storage_numel);
    if (legacy)
        relate_pkw_none(w);
    relate_pkw_tuple_end(w, legacy ? 6 : 5);
    relate_pkw_op(w, RELATE_PKW_BINPERSID);
    relate_pkw_int(w, offset);
    relate_pkw_tuple_begin(w, ndim);
    for (int d = 0; d < ndim; d++)
        relate_pkw_int(w, size[d]);
    relate_pkw_tuple_end(w, ndim);
    relate_pkw_tuple_begin(w, ndim);
    for (int d = 0; d < ndim; d++)
        relate_pkw_int(w, stride[d]);
    relate_pkw_tuple_end(w, ndim);
    relate_pkw_bool(w, false);
    relate_pkw_global(w, "collections", "OrderedDict");
    relate_pkw_tuple_end(w, 0);
    relate_pkw_op(w, RELATE_PKW_REDUCE);
    relate_pkw_tuple_end(w, 6);
    relate_pkw_op(w, RELATE_PKW_REDUCE);
}

void pk_odict_begin(relate_pkw *w)
{
    relate_pkw_global(w, "collections", "OrderedDict");
    relate_pkw_tuple_end(w, 0);
    relate_pkw_op(w, RELATE_PKW_REDUCE);
    relate_pkw_mark(w);
}

void write_legacy(const char *path, const relate_pkw *obj, const char *const *keys, const void *const *data,
                  const int64_t *counts, const int *elsize, int n)
{
    static const uint8_t magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20,
                                    0x6a, 0xa8, 0x50, 0x19, 0x2e, 0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e};
    FILE *f = fopen(path, "wb");
    fwrite(magic, 1, sizeof magic, f);
    relate_pkw w;
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    relate_pkw_empty_dict(&w);
    relate_pkw_mark(&w);
    relate_pkw_str(&w, "protocol_version");
    relate_pkw_int(&w, 1001);
    relate_pkw_str(&w, "little_endian");
    relate_pkw_bool(&w, true);
    relate_pkw_str(&w, "type_sizes");
    relate_pkw_empty_dict(&w);
    relate_pkw_mark(&w);
    relate_pkw_str(&w, "short");
    relate_pkw_int(&w, 2);
    relate_pkw_str(&w, "int");
    relate_pkw_int(&w, 4);
    relate_pkw_str(&w, "long");
    relate_pkw_int(&w, 4);
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_STOP);
    fwrite(w.buf, 1, w.len, f);
    fwrite(obj->buf, 1, obj->len, f);
    relate_pkw_free(&w);
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    relate_pkw_empty_list(&w);
    relate_pkw_mark(&w);
    for (int k = 0; k < n; k++)
        relate_pkw_str(&w, keys[k]);
    relate_pkw_op(&w, RELATE_PKW_APPENDS);
    relate_pkw_op(&w, RELATE_PKW_STOP);
    fwrite(w.buf, 1, w.len, f);
    relate_pkw_free(&w);
    for (int k = 0; k < n; k++) {
        uint8_t le[8];
        for (int b = 0; b < 8; b++)
            le[b] = (uint8_t)((uint64_t)counts[k] >> (8 * b));
        fwrite(le, 1, 8, f);
        fwrite(data[k], (size_t)elsize[k], (size_t)counts[k], f);
    }
    fclose(f);
}

float storage12[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
