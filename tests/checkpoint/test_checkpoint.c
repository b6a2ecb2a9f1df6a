/* test_checkpoint.c: relate's torch.save checkpoints without PyTorch: round trips of state dicts,
 * Adam, SGD and plain values; hand-built zip and legacy files (views, dtypes, tensor steps,
 * refused globals); the pickle global allow-list of spec 8, pinned both ways (every listed global
 * accepted, every other refused by name); truncated, corrupted and foreign files; strict loading;
 * atomic writes.
 * Not the PyTorch interop check (torch_interop.py does that with real torch.save files). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/pickle_write.h"
#include "io/zip_stored.h"
#include "relate/checkpoint.h"
#include "relate/safetensors.h"
#include "test_util.h"

static char dir[] = "/tmp/relate_ckpt_XXXXXX";

static const char *path_of(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static uint8_t *slurp(const char *path, size_t *size)
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

static void spit(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (size)
        fwrite(data, 1, size, f);
    fclose(f);
}

static int count_tmp_files(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strstr(e->d_name, ".tmp") != NULL; /* atomic_file's PATH.tmp */
    if (d)
        closedir(d);
    return n;
}

/* Opens, expecting failure with `code`, a message naming the file and containing `want`. */
static void expect_open_error(const char *path, relate_status code, const char *want)
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
/* A small module: every kind of entry, 4-D, scalar and empty shapes. `extra` adds one entry. */
static void make_store(relate_params *p, uint64_t seed, const char *extra)
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

static bool stores_equal(const relate_params *a, const relate_params *b)
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

static int trainable(relate_params *p, relate_param **out)
{
    int n = 0;
    for (int i = 0; i < p->count; i++)
        if (p->items[i]->kind == RELATE_PARAM && p->items[i]->numel > 0)
            out[n++] = p->items[i];
    return n;
}

static void fake_grads(relate_params *p, uint64_t seed)
{
    for (int i = 0; i < p->count; i++)
        if (p->items[i]->kind == RELATE_PARAM)
            relate_test_fill(p->items[i]->grad, (size_t)p->items[i]->numel, seed + (uint64_t)i);
}

/* ------------------------------------------------------------------ hand-built files */
typedef struct blob {
    const char *name;
    const void *data;
    size_t size;
} blob;

static void write_zip(const char *path, const blob *b, int n)
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

/* A torch checkpoint zip from a data.pkl and storages "0", "1", ... */
static void write_torch_zip(const char *path, const relate_pkw *pkl, const void *const *data, const size_t *sizes, int n)
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

/* torch._utils._rebuild_tensor_v2 with a zip (5-tuple) or legacy (6-tuple) persistent id. */
static void pk_tensor(relate_pkw *w, const char *storage, const char *key, const char *loc, int64_t storage_numel,
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

static void pk_odict_begin(relate_pkw *w)
{
    relate_pkw_global(w, "collections", "OrderedDict");
    relate_pkw_tuple_end(w, 0);
    relate_pkw_op(w, RELATE_PKW_REDUCE);
    relate_pkw_mark(w);
}

/* The legacy format: magic, protocol, system info, the object, the sorted keys, the data. */
static void write_legacy(const char *path, const relate_pkw *obj, const char *const *keys, const void *const *data,
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

/* ------------------------------------------------------------------ round trips */
static void test_state_dict_roundtrip(void)
{
    relate_params a, b, a2, b2;
    make_store(&a, 1, NULL);
    make_store(&b, 2, "head.extra");
    make_store(&a2, 3, NULL);
    make_store(&b2, 4, "head.extra");
    relate_ckpt_writer *w = relate_ckpt_writer_create();
    CHECK(w != NULL);
    CHECK(relate_ckpt_put_state_dict(w, "backbone", &a) == RELATE_OK);
    CHECK(relate_ckpt_put_state_dict(w, "relation", &b) == RELATE_OK);
    CHECK(relate_ckpt_put_int(w, "epoch", 50) == RELATE_OK);
    CHECK(relate_ckpt_put_int(w, "big", -5000000000LL) == RELATE_OK);
    CHECK(relate_ckpt_put_int(w, "huge", INT64_MAX) == RELATE_OK);
    CHECK(relate_ckpt_put_int(w, "m70000", 70000) == RELATE_OK);
    CHECK(relate_ckpt_put_str(w, "method", "relationnet") == RELATE_OK);
    CHECK(relate_ckpt_put_float(w, "lr", 0.1) == RELATE_OK);
    CHECK(relate_ckpt_put_int(w, "epoch", 51) == RELATE_OK); /* replaces, keeps its place */
    /* values are copied at put time */
    float saved = a.items[0]->data[0];
    a.items[0]->data[0] = 99.0f;
    relate_error err = {0};
    const char *p1 = path_of("rt1.tar"), *p2 = path_of("rt2.tar");
    CHECK_MSG(relate_ckpt_write(w, p1, &err) == RELATE_OK, "%s", err.msg);
    CHECK_MSG(relate_ckpt_write(w, p2, &err) == RELATE_OK, "%s", err.msg);
    relate_ckpt_writer_free(w);
    a.items[0]->data[0] = saved;

    size_t n1 = 0, n2 = 0;
    uint8_t *f1 = slurp(p1, &n1), *f2 = slurp(p2, &n2);
    CHECK_MSG(f1 && f2 && n1 == n2 && memcmp(f1, f2, n1) == 0, "equal checkpoints must be equal bytes");
    /* the container: entries under archive/, data at 64-byte offsets, PyTorch's records */
    relate_zip_reader z;
    CHECK(relate_zip_reader_open(&z, f1, n1, &err) == RELATE_OK);
    CHECK(z.count == 2 + 8 + 9 + 1); /* data.pkl, byteorder, 17 tensors, version */
    CHECK(z.count > 0 && strcmp(z.entries[0].name, "archive/data.pkl") == 0);
    CHECK(z.count > 0 && strcmp(z.entries[z.count - 1].name, "archive/version") == 0 &&
          memcmp(f1 + z.entries[z.count - 1].data_offset, "3\n", 2) == 0);
    const relate_zip_entry *bo = relate_zip_reader_find(&z, "archive/byteorder");
    CHECK(bo && bo->size == 6 && memcmp(f1 + bo->data_offset, "little", 6) == 0);
    for (int k = 0; k < z.count; k++) {
        CHECK_MSG(z.entries[k].data_offset % 64 == 0, "%s at %llu", z.entries[k].name,
                  (unsigned long long)z.entries[k].data_offset);
        CHECK(z.entries[k].method == 0 && relate_zip_entry_crc_ok(&z, &z.entries[k]));
    }
    const relate_zip_entry *d0 = relate_zip_reader_find(&z, "archive/data/0");
    CHECK(d0 && d0->size == 18 * 4 && memcmp(f1 + d0->data_offset, a.items[0]->data, 18 * 4) == 0);
    relate_zip_reader_free(&z);
    free(f1);
    free(f2);

    relate_ckpt *c = NULL;
    CHECK_MSG(relate_ckpt_open(&c, p1, &err) == RELATE_OK, "%s", err.msg);
    if (!c)
        return;
    CHECK(relate_ckpt_get_format(c) == RELATE_CKPT_ZIP);
    CHECK_MSG(strcmp(relate_ckpt_key_list(c), "backbone, relation, epoch, big, huge, m70000, method, lr") == 0, "%s",
              relate_ckpt_key_list(c));
    CHECK(relate_ckpt_has(c, "backbone") && relate_ckpt_has(c, "epoch") && !relate_ckpt_has(c, "optimizer"));
    CHECK_MSG(relate_ckpt_load_state_dict(c, "backbone", &a2, &err) == RELATE_OK, "%s", err.msg);
    CHECK_MSG(relate_ckpt_load_state_dict(c, "relation", &b2, &err) == RELATE_OK, "%s", err.msg);
    CHECK(stores_equal(&a, &a2));
    CHECK(stores_equal(&b, &b2));
    int64_t i = 0;
    double f = 0;
    const char *s = NULL;
    CHECK(relate_ckpt_get_int(c, "epoch", &i, &err) == RELATE_OK && i == 51);
    CHECK(relate_ckpt_get_int(c, "big", &i, &err) == RELATE_OK && i == -5000000000LL);
    CHECK(relate_ckpt_get_int(c, "huge", &i, &err) == RELATE_OK && i == INT64_MAX);
    CHECK(relate_ckpt_get_int(c, "m70000", &i, &err) == RELATE_OK && i == 70000);
    CHECK(relate_ckpt_get_float(c, "lr", &f, &err) == RELATE_OK && f == 0.1);
    CHECK(relate_ckpt_get_float(c, "epoch", &f, &err) == RELATE_OK && f == 51.0);
    CHECK(relate_ckpt_get_str(c, "method", &s, &err) == RELATE_OK && strcmp(s, "relationnet") == 0);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_get_int(c, "method", &i, &err) == RELATE_ERR_FORMAT && strstr(err.msg, "not an int"));
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_get_int(c, "optimizer", &i, &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "no entry 'optimizer'") && strstr(err.msg, "backbone, relation") && strstr(err.msg, "rt1.tar"),
              "%s", err.msg);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_load_state_dict(c, "epoch", &a2, &err) == RELATE_ERR_FORMAT && strstr(err.msg, "not a state dict"));
    relate_ckpt_tensor t;
    CHECK(relate_ckpt_get_tensor(c, "backbone/fc.weight", &t, &err) == RELATE_OK && !t.is_int && t.ndim == 2 &&
          t.shape[0] == 3 && t.numel == 12 && strcmp(t.dtype, "float32") == 0 &&
          memcmp(t.f32, relate_params_find(&a, "fc.weight")->data, 48) == 0);
    relate_ckpt_tensor_free(&t);
    CHECK(relate_ckpt_get_tensor(c, "backbone/bn.num_batches_tracked", &t, &err) == RELATE_OK && t.is_int &&
          t.ndim == 0 && t.numel == 1 && t.i64[0] == 1007);
    relate_ckpt_tensor_free(&t);
    relate_ckpt_close(c);
    relate_params_free(&a);
    relate_params_free(&b);
    relate_params_free(&a2);
    relate_params_free(&b2);
}

static void test_bare_state_dict(void)
{
    relate_params a, a2;
    make_store(&a, 5, NULL);
    make_store(&a2, 6, NULL);
    relate_error err = {0};
    const char *p = path_of("bare.pt");
    CHECK_MSG(relate_ckpt_write_state_dict(&a, p, &err) == RELATE_OK, "%s", err.msg);
    relate_ckpt *c = NULL;
    CHECK_MSG(relate_ckpt_open(&c, p, &err) == RELATE_OK, "%s", err.msg);
    if (c) {
        CHECK(strcmp(relate_ckpt_key_list(c), "") == 0);
        CHECK(relate_ckpt_load_state_dict(c, "backbone", &a2, &err) == RELATE_ERR_FORMAT &&
              strstr(err.msg, "bare state dict"));
        CHECK(stores_equal(&a2, &a2) && !stores_equal(&a, &a2));
        memset(&err, 0, sizeof err);
        CHECK_MSG(relate_ckpt_load_state_dict(c, NULL, &a2, &err) == RELATE_OK, "%s", err.msg);
        CHECK(stores_equal(&a, &a2));
        relate_ckpt_close(c);
    }
    relate_params_free(&a);
    relate_params_free(&a2);
}

/* Two groups; bn.bias is frozen and never steps (no state entry). */
static void adam_setup(relate_params *p, relate_param **prm, relate_param_group *g, relate_adam *opt, double lr, uint64_t seed)
{
    relate_error err = {0};
    make_store(p, seed, NULL);
    int n = trainable(p, prm); /* conv.weight, bn.weight, bn.bias, fc.weight */
    CHECK(n == 4);
    g[0] = (relate_param_group){.params = prm, .count = 3, .lr = lr};
    g[1] = (relate_param_group){.params = prm + 3, .count = 1, .lr = 2 * lr, .weight_decay = 1e-4};
    CHECK(relate_adam_init(opt, g, 2, 0.9, 0.999, 1e-8, &err) == RELATE_OK);
}

static void test_adam_roundtrip(void)
{
    relate_params p1, p2;
    relate_param *r1[8], *r2[8];
    relate_param_group g1[2], g2[2];
    relate_adam o1, o2;
    adam_setup(&p1, r1, g1, &o1, 1e-3, 1);
    relate_params_find(&p1, "bn.bias")->frozen = true;
    for (int s = 0; s < 3; s++) {
        fake_grads(&p1, 10 + (uint64_t)s);
        relate_adam_step(&o1);
    }
    relate_ckpt_writer *w = relate_ckpt_writer_create();
    CHECK(relate_ckpt_put_state_dict(w, "backbone", &p1) == RELATE_OK);
    CHECK(relate_ckpt_put_adam(w, "optimizer", &o1) == RELATE_OK);
    relate_error err = {0};
    const char *path = path_of("adam.tar");
    CHECK_MSG(relate_ckpt_write(w, path, &err) == RELATE_OK, "%s", err.msg);
    relate_ckpt_writer_free(w);

    /* A fresh optimizer whose bn.bias has state that the file does not: it must be dropped. */
    adam_setup(&p2, r2, g2, &o2, 0.5, 2);
    o2.beta1 = 0.5;
    fake_grads(&p2, 99);
    relate_adam_step(&o2);
    relate_ckpt *c = NULL;
    CHECK_MSG(relate_ckpt_open(&c, path, &err) == RELATE_OK, "%s", err.msg);
    if (!c)
        return;
    CHECK_MSG(relate_ckpt_load_state_dict(c, "backbone", &p2, &err) == RELATE_OK, "%s", err.msg);
    CHECK_MSG(relate_ckpt_load_adam(c, "optimizer", &o2, &err) == RELATE_OK, "%s", err.msg);
    CHECK(o2.beta1 == 0.9 && o2.beta2 == 0.999 && o2.eps == 1e-8);
    CHECK(o2.groups[0].lr == 1e-3 && o2.groups[1].lr == 2e-3 && o2.groups[1].weight_decay == 1e-4 &&
          o2.groups[0].weight_decay == 0);
    for (int k = 0; k < 4; k++) {
        CHECK_MSG(o2.state[k].step == o1.state[k].step, "step %d: %lld vs %lld", k, (long long)o2.state[k].step,
                  (long long)o1.state[k].step);
        if (o1.state[k].step) {
            size_t bytes = (size_t)r1[k]->numel * sizeof(float);
            CHECK(o2.state[k].exp_avg && memcmp(o2.state[k].exp_avg, o1.state[k].exp_avg, bytes) == 0);
            CHECK(o2.state[k].exp_avg_sq && memcmp(o2.state[k].exp_avg_sq, o1.state[k].exp_avg_sq, bytes) == 0);
        } else {
            CHECK(o2.state[k].exp_avg == NULL);
        }
    }
    CHECK(o1.state[2].step == 0 && o2.state[2].step == 0);
    /* Resuming equals not stopping: two more identical steps give identical parameters. */
    relate_params_find(&p2, "bn.bias")->frozen = true;
    for (int s = 0; s < 2; s++) {
        fake_grads(&p1, 50 + (uint64_t)s);
        fake_grads(&p2, 50 + (uint64_t)s);
        relate_adam_step(&o1);
        relate_adam_step(&o2);
    }
    CHECK(stores_equal(&p1, &p2));

    /* Mismatches leave the optimizer unchanged. */
    relate_adam o3;
    relate_param_group one = {.params = r2, .count = 4, .lr = 0.7};
    CHECK(relate_adam_init(&o3, &one, 1, 0.9, 0.999, 1e-8, &err) == RELATE_OK);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_load_adam(c, "optimizer", &o3, &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "2 parameter groups") && strstr(err.msg, "adam.tar"), "%s", err.msg);
    CHECK(o3.groups[0].lr == 0.7 && o3.state[0].step == 0);
    relate_adam_free(&o3);
    relate_params q;
    relate_params_init(&q);
    relate_param *qp[4];
    qp[0] = relate_params_add(&q, "x", RELATE_PARAM, 4, (int64_t[]){2, 1, 3, 3});
    qp[1] = relate_params_add(&q, "y", RELATE_PARAM, 1, (int64_t[]){2});
    qp[2] = relate_params_add(&q, "z", RELATE_PARAM, 1, (int64_t[]){2});
    qp[3] = relate_params_add(&q, "w", RELATE_PARAM, 2, (int64_t[]){4, 3}); /* transposed shape */
    CHECK(relate_params_finalize(&q, &err) == RELATE_OK);
    relate_param_group qg[2] = {{.params = qp, .count = 3, .lr = 0.7}, {.params = qp + 3, .count = 1, .lr = 0.7}};
    CHECK(relate_adam_init(&o3, qg, 2, 0.9, 0.999, 1e-8, &err) == RELATE_OK);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_load_adam(c, "optimizer", &o3, &err) == RELATE_ERR_SHAPE);
    CHECK_MSG(strstr(err.msg, "[3, 4]") && strstr(err.msg, "[4, 3]"), "%s", err.msg);
    CHECK(o3.groups[0].lr == 0.7 && o3.state[0].step == 0 && o3.state[0].exp_avg == NULL);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_load_adam(c, "backbone", &o3, &err) == RELATE_ERR_FORMAT && strstr(err.msg, "not an optimizer"));
    relate_adam_free(&o3);
    relate_params_free(&q);
    relate_ckpt_close(c);
    relate_adam_free(&o1);
    relate_adam_free(&o2);
    relate_params_free(&p1);
    relate_params_free(&p2);
}

static void test_sgd_roundtrip(void)
{
    relate_params p1, p2;
    relate_param *r1[8], *r2[8];
    relate_error err = {0};
    make_store(&p1, 1, NULL);
    make_store(&p2, 2, NULL);
    trainable(&p1, r1);
    trainable(&p2, r2);
    relate_param_group g1[2] = {{.params = r1, .count = 2, .lr = 0.1}, {.params = r1 + 2, .count = 2, .lr = 0.01, .weight_decay = 5e-4}};
    relate_param_group g2[2] = {{.params = r2, .count = 2, .lr = 9}, {.params = r2 + 2, .count = 2, .lr = 9}};
    relate_sgd o1, o2, o0;
    CHECK(relate_sgd_init(&o1, g1, 2, 0.9, 0.1, false, &err) == RELATE_OK);
    CHECK(relate_sgd_init(&o2, g2, 2, 0.5, 0.0, true, &err) == RELATE_OK);
    CHECK(relate_sgd_init(&o0, g2, 2, 0.0, 0.0, false, &err) == RELATE_OK);
    relate_params_find(&p1, "fc.weight")->frozen = true;
    for (int s = 0; s < 2; s++) {
        fake_grads(&p1, 20 + (uint64_t)s);
        relate_sgd_step(&o1);
    }
    fake_grads(&p2, 7);
    relate_sgd_step(&o2); /* o2 has a buffer for fc.weight; the file does not */
    relate_ckpt_writer *w = relate_ckpt_writer_create();
    CHECK(relate_ckpt_put_state_dict(w, "backbone", &p1) == RELATE_OK && relate_ckpt_put_sgd(w, "optimizer", &o1) == RELATE_OK);
    const char *path = path_of("sgd.tar");
    CHECK_MSG(relate_ckpt_write(w, path, &err) == RELATE_OK, "%s", err.msg);
    relate_ckpt_writer_free(w);
    relate_ckpt *c = NULL;
    CHECK_MSG(relate_ckpt_open(&c, path, &err) == RELATE_OK, "%s", err.msg);
    if (!c)
        return;
    CHECK(relate_ckpt_load_sgd(c, "optimizer", &o0, &err) == RELATE_ERR_ARG && strstr(err.msg, "momentum"));
    memset(&err, 0, sizeof err);
    CHECK_MSG(relate_ckpt_load_state_dict(c, "backbone", &p2, &err) == RELATE_OK, "%s", err.msg);
    CHECK_MSG(relate_ckpt_load_sgd(c, "optimizer", &o2, &err) == RELATE_OK, "%s", err.msg);
    CHECK(o2.momentum == 0.9 && o2.dampening == 0.1 && !o2.nesterov);
    CHECK(o2.groups[0].lr == 0.1 && o2.groups[1].lr == 0.01 && o2.groups[1].weight_decay == 5e-4);
    for (int k = 0; k < 4; k++) {
        if (o1.state[k].momentum_buffer)
            CHECK(o2.state[k].momentum_buffer &&
                  memcmp(o2.state[k].momentum_buffer, o1.state[k].momentum_buffer, (size_t)r1[k]->numel * 4) == 0);
        else
            CHECK(o2.state[k].momentum_buffer == NULL);
    }
    CHECK(o1.state[3].momentum_buffer == NULL);
    relate_params_find(&p2, "fc.weight")->frozen = true;
    for (int s = 0; s < 2; s++) {
        fake_grads(&p1, 60 + (uint64_t)s);
        fake_grads(&p2, 60 + (uint64_t)s);
        relate_sgd_step(&o1);
        relate_sgd_step(&o2);
    }
    CHECK(stores_equal(&p1, &p2));
    relate_ckpt_close(c);
    relate_sgd_free(&o0);
    relate_sgd_free(&o1);
    relate_sgd_free(&o2);
    relate_params_free(&p1);
    relate_params_free(&p2);
}

/* ------------------------------------------------------------------ hand-built files */
/* PyTorch 1.12+ Adam: a 0-d float tensor step; 1.4: an int. Both in one file. */
static void test_adam_tensor_step(void)
{
    float m0[3] = {1, 2, 3}, v0[3] = {4, 5, 6}, step = 4.0f, m1[2] = {7, 8}, v1[2] = {9, 10};
    relate_pkw w;
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    relate_pkw_empty_dict(&w);
    relate_pkw_mark(&w);
    relate_pkw_str(&w, "optimizer");
    relate_pkw_empty_dict(&w);
    relate_pkw_mark(&w);
    relate_pkw_str(&w, "state");
    relate_pkw_empty_dict(&w);
    relate_pkw_mark(&w);
    relate_pkw_int(&w, 140000000001LL); /* PyTorch 1.4 used Python object ids; position decides */
    relate_pkw_empty_dict(&w);
    relate_pkw_mark(&w);
    relate_pkw_str(&w, "step");
    pk_tensor(&w, "FloatStorage", "0", "cpu", 1, false, 0, 0, NULL, NULL);
    relate_pkw_str(&w, "exp_avg");
    pk_tensor(&w, "FloatStorage", "1", "cuda:0", 3, false, 0, 1, (int64_t[]){3}, (int64_t[]){1});
    relate_pkw_str(&w, "exp_avg_sq");
    pk_tensor(&w, "DoubleStorage", "2", "cpu", 3, false, 0, 1, (int64_t[]){3}, (int64_t[]){1});
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_int(&w, 77);
    relate_pkw_empty_dict(&w);
    relate_pkw_mark(&w);
    relate_pkw_str(&w, "step");
    relate_pkw_int(&w, 9);
    relate_pkw_str(&w, "exp_avg");
    pk_tensor(&w, "FloatStorage", "3", "cpu", 4, false, 2, 1, (int64_t[]){2}, (int64_t[]){1});
    relate_pkw_str(&w, "exp_avg_sq");
    pk_tensor(&w, "FloatStorage", "4", "cpu", 2, false, 0, 1, (int64_t[]){2}, (int64_t[]){1});
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_str(&w, "param_groups");
    relate_pkw_empty_list(&w);
    relate_pkw_mark(&w);
    relate_pkw_empty_dict(&w);
    relate_pkw_mark(&w);
    relate_pkw_str(&w, "lr");
    relate_pkw_float(&w, 0.01);
    relate_pkw_str(&w, "betas");
    relate_pkw_tuple_begin(&w, 2);
    relate_pkw_float(&w, 0.8);
    relate_pkw_float(&w, 0.9);
    relate_pkw_tuple_end(&w, 2);
    relate_pkw_str(&w, "eps");
    relate_pkw_float(&w, 1e-6);
    relate_pkw_str(&w, "weight_decay");
    relate_pkw_int(&w, 0);
    relate_pkw_str(&w, "amsgrad");
    relate_pkw_bool(&w, false);
    relate_pkw_str(&w, "params");
    relate_pkw_empty_list(&w);
    relate_pkw_mark(&w);
    relate_pkw_int(&w, 140000000001LL);
    relate_pkw_int(&w, 77);
    relate_pkw_op(&w, RELATE_PKW_APPENDS);
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_APPENDS);
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_STOP);
    double v0d[3] = {4, 5, 6};
    float m1s[4] = {0, 0, 7, 8}; /* exp_avg of parameter 1 is a view at offset 2 */
    (void)v0;
    const void *data[5] = {&step, m0, v0d, m1s, v1};
    size_t sizes[5] = {4, 12, 24, 16, 8};
    const char *path = path_of("adam_steps.pt");
    write_torch_zip(path, &w, data, sizes, 5);
    relate_pkw_free(&w);

    relate_params p;
    relate_params_init(&p);
    relate_param *prm[2];
    relate_error err = {0};
    prm[0] = relate_params_add(&p, "a", RELATE_PARAM, 1, (int64_t[]){3});
    prm[1] = relate_params_add(&p, "b", RELATE_PARAM, 1, (int64_t[]){2});
    CHECK(relate_params_finalize(&p, &err) == RELATE_OK);
    relate_param_group g = {.params = prm, .count = 2, .lr = 1};
    relate_adam o;
    CHECK(relate_adam_init(&o, &g, 1, 0.9, 0.999, 1e-8, &err) == RELATE_OK);
    relate_ckpt *c = NULL;
    CHECK_MSG(relate_ckpt_open(&c, path, &err) == RELATE_OK, "%s", err.msg);
    if (c) {
        CHECK_MSG(relate_ckpt_load_adam(c, "optimizer", &o, &err) == RELATE_OK, "%s", err.msg);
        CHECK(o.state[0].step == 4 && o.state[1].step == 9);
        CHECK(o.state[0].exp_avg && memcmp(o.state[0].exp_avg, m0, 12) == 0);
        CHECK(o.state[0].exp_avg_sq && o.state[0].exp_avg_sq[2] == 6.0f);
        CHECK(o.state[1].exp_avg && memcmp(o.state[1].exp_avg, m1, 8) == 0);
        CHECK(o.state[1].exp_avg_sq && memcmp(o.state[1].exp_avg_sq, v1, 8) == 0);
        CHECK(o.groups[0].lr == 0.01 && o.beta1 == 0.8 && o.beta2 == 0.9 && o.eps == 1e-6);
        relate_adam_step(&o); /* loaded (malloc'd) state is stepped and freed like the optimizer's own */
        CHECK(o.state[0].step == 5);
        relate_ckpt_close(c);
    }
    relate_adam_free(&o);
    relate_params_free(&p);
}

/* Views into shared storages, strides, offsets, dtypes, in both formats:
 * {"sd": OrderedDict(rows, transposed, expanded, half, count), "bytes": uint8 tensor}. */
static void build_views_pickle(relate_pkw *w, bool legacy, const char *k0, const char *k1, const char *k2, const char *k3)
{
    relate_pkw_init(w);
    relate_pkw_proto(w);
    relate_pkw_empty_dict(w);
    relate_pkw_mark(w);
    relate_pkw_str(w, "sd");
    pk_odict_begin(w);
    /* storage k0: 12 floats 0..11 */
    relate_pkw_str(w, "rows");           /* [2,3] at offset 3 */
    pk_tensor(w, "FloatStorage", k0, "cpu", 12, legacy, 3, 2, (int64_t[]){2, 3}, (int64_t[]){3, 1});
    relate_pkw_str(w, "transposed");     /* the [4,3] storage seen as [3,4] */
    pk_tensor(w, "FloatStorage", k0, "cpu", 12, legacy, 0, 2, (int64_t[]){3, 4}, (int64_t[]){1, 3});
    relate_pkw_str(w, "expanded");       /* [2,3] with stride 0, saved from a GPU */
    pk_tensor(w, "FloatStorage", k0, "cuda:0", 12, legacy, 6, 2, (int64_t[]){2, 3}, (int64_t[]){0, 1});
    relate_pkw_str(w, "half");           /* float16 [2] */
    pk_tensor(w, "HalfStorage", k1, "cpu", 2, legacy, 0, 1, (int64_t[]){2}, (int64_t[]){1});
    relate_pkw_str(w, "count");          /* int32 scalar at offset 1 */
    pk_tensor(w, "IntStorage", k2, "cpu", 2, legacy, 1, 0, NULL, NULL);
    relate_pkw_op(w, RELATE_PKW_SETITEMS);
    relate_pkw_str(w, "bytes");          /* uint8 [3]: not loadable into a parameter */
    pk_tensor(w, "ByteStorage", k3, "cpu", 3, legacy, 0, 1, (int64_t[]){3}, (int64_t[]){1});
    relate_pkw_op(w, RELATE_PKW_SETITEMS);
    relate_pkw_op(w, RELATE_PKW_STOP);
}

static float storage12[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static uint16_t halfs[2] = {0x3c00, 0xc100}; /* 1.0, -2.5 */
static int32_t ints[2] = {-1, 42};
static uint8_t u8s[3] = {1, 2, 3};

static void add_view_entries(relate_params *p, relate_param_kind rows_kind)
{
    relate_error err = {0};
    relate_params_init(p);
    relate_params_add(p, "rows", rows_kind, 2, (int64_t[]){2, 3});
    relate_params_add(p, "transposed", RELATE_BUFFER_F32, 2, (int64_t[]){3, 4});
    relate_params_add(p, "expanded", RELATE_BUFFER_F32, 2, (int64_t[]){2, 3});
    relate_params_add(p, "half", RELATE_PARAM, 1, (int64_t[]){2});
    relate_params_add(p, "count", RELATE_BUFFER_I64, 0, NULL);
    CHECK(relate_params_finalize(p, &err) == RELATE_OK);
}

static void check_views(const char *path, relate_ckpt_format want_format)
{
    relate_error err = {0};
    relate_ckpt *c = NULL;
    CHECK_MSG(relate_ckpt_open(&c, path, &err) == RELATE_OK, "%s", err.msg);
    if (!c)
        return;
    CHECK(relate_ckpt_get_format(c) == want_format);
    CHECK(strcmp(relate_ckpt_key_list(c), "sd, bytes") == 0);
    relate_params p;
    add_view_entries(&p, RELATE_PARAM);
    CHECK_MSG(relate_ckpt_load_state_dict(c, "sd", &p, &err) == RELATE_OK, "%s", err.msg);
    static const float want_rows[6] = {3, 4, 5, 6, 7, 8};
    static const float want_tr[12] = {0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11};
    static const float want_ex[6] = {6, 7, 8, 6, 7, 8};
    CHECK(memcmp(relate_params_find(&p, "rows")->data, want_rows, sizeof want_rows) == 0);
    CHECK(memcmp(relate_params_find(&p, "transposed")->data, want_tr, sizeof want_tr) == 0);
    CHECK(memcmp(relate_params_find(&p, "expanded")->data, want_ex, sizeof want_ex) == 0);
    CHECK(relate_params_find(&p, "half")->data[0] == 1.0f && relate_params_find(&p, "half")->data[1] == -2.5f);
    CHECK(relate_params_find(&p, "count")->i64[0] == 42);
    relate_params_free(&p);
    /* a float tensor into an int64 buffer is refused, and the store stays as it was */
    add_view_entries(&p, RELATE_BUFFER_I64);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_load_state_dict(c, "sd", &p, &err) == RELATE_ERR_SHAPE);
    CHECK_MSG(strstr(err.msg, "rows is float32 in the file but int64 in the model"), "%s", err.msg);
    CHECK(relate_params_find(&p, "count")->i64[0] == 0);
    relate_params_free(&p);
    relate_ckpt_tensor t;
    CHECK(relate_ckpt_get_tensor(c, "bytes", &t, &err) == RELATE_OK && t.is_int && t.i64[2] == 3 &&
          strcmp(t.dtype, "uint8") == 0);
    relate_ckpt_tensor_free(&t);
    CHECK(relate_ckpt_get_tensor(c, "sd/transposed", &t, &err) == RELATE_OK && t.ndim == 2 && t.shape[1] == 4 &&
          memcmp(t.f32, want_tr, sizeof want_tr) == 0);
    relate_ckpt_tensor_free(&t);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_get_tensor(c, "sd/nothing", &t, &err) == RELATE_ERR_FORMAT && strstr(err.msg, "nothing at"));
    relate_ckpt_close(c);
}

static void test_views_zip_and_legacy(void)
{
    relate_pkw w;
    build_views_pickle(&w, false, "0", "1", "2", "3");
    const void *data[4] = {storage12, halfs, ints, u8s};
    size_t sizes[4] = {48, 4, 8, 3};
    write_torch_zip(path_of("views.pt"), &w, data, sizes, 4);
    relate_pkw_free(&w);
    check_views(path_of("views.pt"), RELATE_CKPT_ZIP);

    /* the same object in the legacy format, with PyTorch 1.4-style numeric keys */
    build_views_pickle(&w, true, "94160", "94208", "94304", "94400");
    const char *keys[4] = {"94160", "94208", "94304", "94400"};
    int64_t counts[4] = {12, 2, 2, 3};
    int elsize[4] = {4, 2, 4, 1};
    const char *lp = path_of("views_legacy.pt");
    write_legacy(lp, &w, keys, data, counts, elsize, 4);
    relate_pkw_free(&w);
    check_views(lp, RELATE_CKPT_LEGACY);

    /* every truncation of the legacy file fails cleanly, naming the file */
    size_t n = 0;
    uint8_t *full = slurp(lp, &n);
    const char *cut = path_of("views_cut.pt");
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        spit(cut, full, k);
        relate_ckpt *c = NULL;
        relate_error err = {0};
        if (relate_ckpt_open(&c, cut, &err) == RELATE_OK || !strstr(err.msg, "views_cut.pt")) {
            if (bad++ < 3)
                fprintf(stderr, "legacy cut at %zu: %s\n", k, err.msg);
        }
        relate_ckpt_close(c);
    }
    CHECK_MSG(bad == 0, "%d legacy truncations were accepted or unnamed", bad);
    spit(cut, full, n - 1);
    expect_open_error(cut, RELATE_ERR_FORMAT, "truncated");
    /* any single corrupted byte: an error or a load, never a crash (ASan builds check) */
    for (size_t k = 0; k < n; k++) {
        uint8_t keep = full[k];
        full[k] ^= 0x5a;
        spit(cut, full, n);
        full[k] = keep;
        relate_ckpt *c = NULL;
        relate_error err = {0};
        if (relate_ckpt_open(&c, cut, &err) == RELATE_OK) {
            relate_ckpt_tensor t;
            if (relate_ckpt_get_tensor(c, "transposed", &t, &err) == RELATE_OK)
                relate_ckpt_tensor_free(&t);
            relate_ckpt_close(c);
        }
    }
    free(full);

    /* a legacy storage view: (view_key, offset, size) in the persistent id's last field */
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    pk_odict_begin(&w);
    relate_pkw_str(&w, "v");
    relate_pkw_global(&w, "torch._utils", "_rebuild_tensor_v2");
    relate_pkw_tuple_begin(&w, 6);
    relate_pkw_tuple_begin(&w, 6);
    relate_pkw_str(&w, "storage");
    relate_pkw_global(&w, "torch", "FloatStorage");
    relate_pkw_str(&w, "500");
    relate_pkw_str(&w, "cpu");
    relate_pkw_int(&w, 12);
    relate_pkw_tuple_begin(&w, 3);
    relate_pkw_str(&w, "501");
    relate_pkw_int(&w, 4);
    relate_pkw_int(&w, 6);
    relate_pkw_tuple_end(&w, 3);
    relate_pkw_tuple_end(&w, 6);
    relate_pkw_op(&w, RELATE_PKW_BINPERSID);
    relate_pkw_int(&w, 1); /* offset 1 within the view: elements 5..7 */
    relate_pkw_tuple_begin(&w, 1);
    relate_pkw_int(&w, 3);
    relate_pkw_tuple_end(&w, 1);
    relate_pkw_tuple_begin(&w, 1);
    relate_pkw_int(&w, 1);
    relate_pkw_tuple_end(&w, 1);
    relate_pkw_bool(&w, false);
    relate_pkw_global(&w, "collections", "OrderedDict");
    relate_pkw_tuple_end(&w, 0);
    relate_pkw_op(&w, RELATE_PKW_REDUCE);
    relate_pkw_tuple_end(&w, 6);
    relate_pkw_op(&w, RELATE_PKW_REDUCE);
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_STOP);
    const char *vkeys[1] = {"500"};
    write_legacy(path_of("legacy_view.pt"), &w, vkeys, data, counts, elsize, 1);
    relate_pkw_free(&w);
    {
        relate_ckpt *c = NULL;
        relate_error err = {0};
        relate_ckpt_tensor t;
        CHECK_MSG(relate_ckpt_open(&c, path_of("legacy_view.pt"), &err) == RELATE_OK, "%s", err.msg);
        CHECK(c && relate_ckpt_get_tensor(c, "v", &t, &err) == RELATE_OK && t.numel == 3 && t.f32[0] == 5.0f &&
              t.f32[2] == 7.0f);
        relate_ckpt_tensor_free(&t);
        relate_ckpt_close(c);
    }

    /* a view that reaches past its storage */
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    pk_odict_begin(&w);
    relate_pkw_str(&w, "w");
    pk_tensor(&w, "FloatStorage", "0", "cpu", 12, false, 8, 2, (int64_t[]){2, 3}, (int64_t[]){3, 1});
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_STOP);
    write_torch_zip(path_of("oob.pt"), &w, data, sizes, 1);
    relate_pkw_free(&w);
    relate_ckpt *c = NULL;
    relate_error err = {0};
    CHECK(relate_ckpt_open(&c, path_of("oob.pt"), &err) == RELATE_OK);
    relate_ckpt_tensor t;
    CHECK(c && relate_ckpt_get_tensor(c, "w", &t, &err) == RELATE_ERR_FORMAT && strstr(err.msg, "past the end"));
    relate_ckpt_close(c);
    /* a storage record shorter than the pickle says */
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    pk_odict_begin(&w);
    relate_pkw_str(&w, "w");
    pk_tensor(&w, "FloatStorage", "0", "cpu", 13, false, 0, 1, (int64_t[]){13}, (int64_t[]){1});
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_STOP);
    write_torch_zip(path_of("short.pt"), &w, data, sizes, 1);
    relate_pkw_free(&w);
    expect_open_error(path_of("short.pt"), RELATE_ERR_FORMAT, "holds 48 bytes");
    /* a storage record that is missing */
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    pk_odict_begin(&w);
    relate_pkw_str(&w, "w");
    pk_tensor(&w, "FloatStorage", "7", "cpu", 1, false, 0, 0, NULL, NULL);
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_STOP);
    write_torch_zip(path_of("missing.pt"), &w, data, sizes, 1);
    relate_pkw_free(&w);
    expect_open_error(path_of("missing.pt"), RELATE_ERR_FORMAT, "archive/data/7 is missing");
}

static void test_refused_globals(void)
{
    /* what pickle.dumps(os.system("echo hi")) style payloads look like */
    relate_pkw w;
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    relate_pkw_global(&w, "os", "system");
    relate_pkw_str(&w, "echo pwned");
    relate_pkw_tuple_end(&w, 1);
    relate_pkw_op(&w, RELATE_PKW_REDUCE);
    relate_pkw_op(&w, RELATE_PKW_STOP);
    write_torch_zip(path_of("evil.pt"), &w, NULL, NULL, 0);
    expect_open_error(path_of("evil.pt"), RELATE_ERR_FORMAT, "os.system");
    relate_ckpt *c = NULL;
    relate_error err = {0};
    relate_ckpt_open(&c, path_of("evil.pt"), &err);
    CHECK_MSG(strstr(err.msg, "Nothing was executed"), "%s", err.msg);
    /* the same in a legacy file */
    write_legacy(path_of("evil_legacy.pt"), &w, NULL, NULL, NULL, NULL, 0);
    expect_open_error(path_of("evil_legacy.pt"), RELATE_ERR_FORMAT, "os.system");
    relate_pkw_free(&w);
    /* torch.save(model): the module's class is a global too */
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    relate_pkw_global(&w, "torch.nn.modules.conv", "Conv2d");
    relate_pkw_tuple_end(&w, 0);
    relate_pkw_op(&w, 0x81); /* NEWOBJ */
    relate_pkw_op(&w, RELATE_PKW_STOP);
    write_torch_zip(path_of("module.pt"), &w, NULL, NULL, 0);
    relate_pkw_free(&w);
    expect_open_error(path_of("module.pt"), RELATE_ERR_FORMAT, "torch.nn.modules.conv.Conv2d");
}

/* ------------------------------------------------------------------ the allow-list, both ways */
/* Spec 8 is the authority: a checkpoint may name collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2 and the storage classes (relate reads these ten; spec 8's layout
 * uses FloatStorage and LongStorage), and relate additionally allows torch._utils._rebuild_parameter
 * (an nn.Parameter pickled directly). Every one of them must open; any other global must be refused,
 * naming it. */
static const struct {
    const char *storage, *dtype;
    int elsize;
    uint8_t one[8]; /* the value 1 in that dtype, little-endian */
} ALLOWED_STORAGES[] = {
    {"FloatStorage", "float32", 4, {0, 0, 0x80, 0x3f}},
    {"DoubleStorage", "float64", 8, {0, 0, 0, 0, 0, 0, 0xf0, 0x3f}},
    {"HalfStorage", "float16", 2, {0, 0x3c}},
    {"BFloat16Storage", "bfloat16", 2, {0x80, 0x3f}},
    {"LongStorage", "int64", 8, {1}},
    {"IntStorage", "int32", 4, {1}},
    {"ShortStorage", "int16", 2, {1}},
    {"CharStorage", "int8", 1, {1}},
    {"ByteStorage", "uint8", 1, {1}},
    {"BoolStorage", "bool", 1, {1}},
};

/* Globals a checkpoint must never get past the unpickler: code execution, whole models, other
 * containers and tensor rebuilders, and near-misses of the allowed names (a longer or shorter
 * name, another module, the allowed module and name swapped across entries, another case). */
static const char *const REFUSED_GLOBALS[][2] = {
    {"os", "system"},
    {"posix", "system"},
    {"nt", "system"},
    {"builtins", "eval"},
    {"builtins", "exec"},
    {"builtins", "getattr"},
    {"builtins", "__import__"},
    {"builtins", "set"},
    {"builtins", "dict"},
    {"__builtin__", "eval"},
    {"subprocess", "Popen"},
    {"subprocess", "check_output"},
    {"_codecs", "encode"},
    {"copyreg", "_reconstructor"},
    {"functools", "partial"},
    {"torch.nn.modules.conv", "Conv2d"},
    {"torch.nn.parameter", "Parameter"},
    {"__main__", "Net"},
    {"collections", "defaultdict"},
    {"collections", "Counter"},
    {"collections", "OrderedDictX"},
    {"collections", "OrderedDic"},
    {"collection", "OrderedDict"},
    {"collectionsX", "OrderedDict"},
    {"Collections", "OrderedDict"},
    {"collections", "ordereddict"},
    {"torch", "OrderedDict"},
    {"collections", "FloatStorage"},
    {"torch._utils", "_rebuild_tensor"},
    {"torch._utils", "_rebuild_tensor_v"},
    {"torch._utils", "_rebuild_tensor_v3"},
    {"torch._utils", "_rebuild_parameter_with_state"},
    {"torch._utils", "_rebuild_qtensor"},
    {"torch._utils", "_rebuild_sparse_tensor"},
    {"torch._utils", "_rebuild_device_tensor_from_numpy"},
    {"torch._utils", "_rebuild_meta_tensor_no_storage"},
    {"torch._utils", "FloatStorage"},
    {"torch._util", "_rebuild_tensor_v2"},
    {"torch", "_rebuild_tensor_v2"},
    {"torch._tensor", "_rebuild_from_type_v2"},
    {"torch", "FloatStorageX"},
    {"torch", "FloatStorag"},
    {"torch", "floatstorage"},
    {"torch", "Storage"},
    {"torch", "UntypedStorage"},
    {"torch", "TypedStorage"},
    {"torch.storage", "_load_from_bytes"},
    {"torch.cuda", "FloatStorage"},
    {"torchX", "FloatStorage"},
    {"torch", "Tensor"},
    {"torch", "Size"},
    {"torch", "device"},
    {"torch", "load"},
    {"numpy.core.multiarray", "_reconstruct"},
    {"numpy.core.multiarray", "scalar"},
    {"numpy", "ndarray"},
    {"numpy", "dtype"},
};

/* True when msg contains `module.name` as a whole dotted name (not inside a longer one, so that
 * "torch._utils._rebuild_tensor" is not found in "torch._utils._rebuild_tensor_v2"). */
static bool names_global(const char *msg, const char *module, const char *name)
{
    char full[256];
    snprintf(full, sizeof full, "%s.%s", module, name);
    size_t n = strlen(full);
    for (const char *p = strstr(msg, full); p; p = strstr(p + 1, full)) {
        char before = p == msg ? ' ' : p[-1], after = p[n];
        bool word_before = before == '.' || before == '_' || (before >= '0' && before <= '9') ||
                           (before >= 'A' && before <= 'Z') || (before >= 'a' && before <= 'z');
        bool word_after = after == '.' || after == '_' || (after >= '0' && after <= '9') || (after >= 'A' && after <= 'Z') ||
                          (after >= 'a' && after <= 'z');
        if (!word_before && !word_after)
            return true;
    }
    return false;
}

/* pickle protocol 4's STACK_GLOBAL: module and name as strings on the stack. */
static void pk_stack_global(relate_pkw *w, const char *module, const char *name)
{
    relate_pkw_str(w, module);
    relate_pkw_str(w, name);
    relate_pkw_op(w, 0x93);
}

static void pk_begin_top(relate_pkw *w)
{
    relate_pkw_init(w);
    relate_pkw_proto(w);
    relate_pkw_empty_dict(w);
    relate_pkw_mark(w);
}

static void pk_end_top(relate_pkw *w)
{
    relate_pkw_op(w, RELATE_PKW_SETITEMS);
    relate_pkw_op(w, RELATE_PKW_STOP);
}

/* Opens `path` expecting success; returns the checkpoint or NULL (a failed check). */
static relate_ckpt *expect_open_ok(const char *path, const char *what)
{
    relate_ckpt *c = NULL;
    relate_error err = {0};
    CHECK_MSG(relate_ckpt_open(&c, path, &err) == RELATE_OK, "%s: refused: %s", what, err.msg);
    return c;
}

/* Opens `path` expecting the refusal of module.name: RELATE_ERR_FORMAT, nothing returned, a
 * message naming the file and the global. */
static void expect_refused(const char *path, const char *module, const char *name, const char *how)
{
    relate_ckpt *c = NULL;
    relate_error err = {0};
    relate_status st = relate_ckpt_open(&c, path, &err);
    const char *base = strrchr(path, '/') + 1;
    CHECK_MSG(st == RELATE_ERR_FORMAT && c == NULL, "%s.%s (%s) was not refused: status %d, %s", module, name, how,
              (int)st, err.msg);
    CHECK_MSG(names_global(err.msg, module, name) && strstr(err.msg, base),
              "refusing %s.%s (%s): the message does not name the global and the file: %s", module, name, how, err.msg);
    relate_ckpt_close(c);
}

static void test_allow_list(void)
{
    relate_pkw w;
    relate_error err = {0};
    /* (a) every global of the list opens. Each storage class, in a tensor of three ones. */
    size_t nstorages = sizeof ALLOWED_STORAGES / sizeof *ALLOWED_STORAGES;
    for (size_t k = 0; k < nstorages; k++) {
        uint8_t data[24];
        for (int e = 0; e < 3; e++)
            memcpy(data + e * ALLOWED_STORAGES[k].elsize, ALLOWED_STORAGES[k].one, (size_t)ALLOWED_STORAGES[k].elsize);
        pk_begin_top(&w);
        relate_pkw_str(&w, "t");
        pk_tensor(&w, ALLOWED_STORAGES[k].storage, "0", "cpu", 3, false, 0, 1, (int64_t[]){3}, (int64_t[]){1});
        pk_end_top(&w);
        const void *blobs[1] = {data};
        size_t sizes[1] = {(size_t)(3 * ALLOWED_STORAGES[k].elsize)};
        const char *path = path_of("allowed_storage.pt");
        write_torch_zip(path, &w, blobs, sizes, 1);
        relate_pkw_free(&w);
        relate_ckpt *c = expect_open_ok(path, ALLOWED_STORAGES[k].storage);
        relate_ckpt_tensor t = {0};
        if (c) {
            CHECK_MSG(relate_ckpt_get_tensor(c, "t", &t, &err) == RELATE_OK && t.numel == 3 &&
                          strcmp(t.dtype, ALLOWED_STORAGES[k].dtype) == 0 &&
                          (t.is_int ? t.i64[0] == 1 && t.i64[2] == 1 : t.f32[0] == 1.0f && t.f32[2] == 1.0f),
                      "torch.%s: %s (dtype %s)", ALLOWED_STORAGES[k].storage, err.msg, t.dtype);
            relate_ckpt_tensor_free(&t);
        }
        relate_ckpt_close(c);
    }
    /* collections.OrderedDict alone (an empty state dict), by GLOBAL and by STACK_GLOBAL. */
    for (int stack = 0; stack < 2; stack++) {
        pk_begin_top(&w);
        relate_pkw_str(&w, "sd");
        if (stack)
            pk_stack_global(&w, "collections", "OrderedDict");
        else
            relate_pkw_global(&w, "collections", "OrderedDict");
        relate_pkw_tuple_end(&w, 0);
        relate_pkw_op(&w, RELATE_PKW_REDUCE);
        pk_end_top(&w);
        write_torch_zip(path_of("allowed_odict.pt"), &w, NULL, NULL, 0);
        relate_pkw_free(&w);
        relate_ckpt *c = expect_open_ok(path_of("allowed_odict.pt"), "collections.OrderedDict");
        CHECK(c && relate_ckpt_has(c, "sd"));
        relate_ckpt_close(c);
    }
    /* torch._utils._rebuild_parameter(tensor, requires_grad, backward_hooks), and
     * _rebuild_tensor_v2 named by STACK_GLOBAL. */
    {
        pk_begin_top(&w);
        relate_pkw_str(&w, "p");
        relate_pkw_global(&w, "torch._utils", "_rebuild_parameter");
        relate_pkw_tuple_begin(&w, 3);
        pk_tensor(&w, "FloatStorage", "0", "cpu", 12, false, 2, 1, (int64_t[]){3}, (int64_t[]){1});
        relate_pkw_bool(&w, true);
        relate_pkw_global(&w, "collections", "OrderedDict"); /* backward_hooks: OrderedDict() */
        relate_pkw_tuple_end(&w, 0);
        relate_pkw_op(&w, RELATE_PKW_REDUCE);
        relate_pkw_tuple_end(&w, 3);
        relate_pkw_op(&w, RELATE_PKW_REDUCE);
        relate_pkw_str(&w, "s");
        pk_stack_global(&w, "torch._utils", "_rebuild_tensor_v2");
        relate_pkw_tuple_begin(&w, 6);
        relate_pkw_tuple_begin(&w, 5);
        relate_pkw_str(&w, "storage");
        pk_stack_global(&w, "torch", "FloatStorage");
        relate_pkw_str(&w, "0");
        relate_pkw_str(&w, "cpu");
        relate_pkw_int(&w, 12);
        relate_pkw_tuple_end(&w, 5);
        relate_pkw_op(&w, RELATE_PKW_BINPERSID);
        relate_pkw_int(&w, 5);
        relate_pkw_tuple_begin(&w, 1);
        relate_pkw_int(&w, 2);
        relate_pkw_tuple_end(&w, 1);
        relate_pkw_tuple_begin(&w, 1);
        relate_pkw_int(&w, 1);
        relate_pkw_tuple_end(&w, 1);
        relate_pkw_bool(&w, false);
        pk_stack_global(&w, "collections", "OrderedDict");
        relate_pkw_tuple_end(&w, 0);
        relate_pkw_op(&w, RELATE_PKW_REDUCE);
        relate_pkw_tuple_end(&w, 6);
        relate_pkw_op(&w, RELATE_PKW_REDUCE);
        pk_end_top(&w);
        const void *blobs[1] = {storage12};
        size_t sizes[1] = {48};
        write_torch_zip(path_of("allowed_param.pt"), &w, blobs, sizes, 1);
        relate_pkw_free(&w);
        relate_ckpt *c = expect_open_ok(path_of("allowed_param.pt"), "torch._utils._rebuild_parameter");
        relate_ckpt_tensor t = {0};
        if (c) {
            CHECK_MSG(relate_ckpt_get_tensor(c, "p", &t, &err) == RELATE_OK && t.numel == 3 && t.f32[0] == 2.0f &&
                          t.f32[2] == 4.0f,
                      "a parameter: %s", err.msg);
            relate_ckpt_tensor_free(&t);
            CHECK_MSG(relate_ckpt_get_tensor(c, "s", &t, &err) == RELATE_OK && t.numel == 2 && t.f32[1] == 6.0f,
                      "STACK_GLOBAL names: %s", err.msg);
            relate_ckpt_tensor_free(&t);
        }
        relate_ckpt_close(c);
    }

    /* (b) every other global is refused wherever it appears, naming it: called as a value (GLOBAL
     * and STACK_GLOBAL, zip and legacy files), and as the storage class of a tensor. */
    size_t nrefused = sizeof REFUSED_GLOBALS / sizeof *REFUSED_GLOBALS;
    for (size_t k = 0; k < nrefused; k++) {
        const char *module = REFUSED_GLOBALS[k][0], *name = REFUSED_GLOBALS[k][1];
        for (int how = 0; how < 4; how++) {
            static const char *const hows[4] = {"GLOBAL in a zip", "STACK_GLOBAL in a zip", "GLOBAL in a legacy file",
                                                "storage class of a tensor"};
            pk_begin_top(&w);
            relate_pkw_str(&w, "epoch");
            relate_pkw_int(&w, 3);
            relate_pkw_str(&w, "x");
            if (how == 3) {
                pk_tensor(&w, name, "0", "cpu", 12, false, 0, 1, (int64_t[]){12}, (int64_t[]){1});
                /* pk_tensor names torch.<name>; the storage's module is replaced below. */
            } else {
                if (how == 1)
                    pk_stack_global(&w, module, name);
                else
                    relate_pkw_global(&w, module, name);
                relate_pkw_str(&w, "echo pwned");
                relate_pkw_tuple_end(&w, 1);
                relate_pkw_op(&w, RELATE_PKW_REDUCE);
            }
            pk_end_top(&w);
            if (how == 3) {
                /* Rewrite "ctorch\n<name>\n" into "c<module>\n<name>\n" in the emitted bytes. */
                relate_pkw w2;
                relate_pkw_init(&w2);
                char needle[160];
                snprintf(needle, sizeof needle, "ctorch\n%s\n", name);
                uint8_t *hit = NULL;
                for (size_t i = 0; i + strlen(needle) <= w.len && !hit; i++)
                    if (memcmp(w.buf + i, needle, strlen(needle)) == 0)
                        hit = w.buf + i;
                CHECK(hit != NULL);
                if (hit) {
                    for (const uint8_t *b = w.buf; b < hit; b++)
                        relate_pkw_op(&w2, *b);
                    relate_pkw_global(&w2, module, name);
                    for (const uint8_t *b = hit + strlen(needle); b < w.buf + w.len; b++)
                        relate_pkw_op(&w2, *b);
                }
                relate_pkw_free(&w);
                w = w2;
            }
            const char *path = path_of("refused_global.pt");
            const void *blobs[1] = {storage12};
            size_t sizes[1] = {48};
            if (how == 2)
                write_legacy(path, &w, NULL, NULL, NULL, NULL, 0);
            else
                write_torch_zip(path, &w, blobs, sizes, how == 3 ? 1 : 0);
            relate_pkw_free(&w);
            expect_refused(path, module, name, hows[how]);
        }
    }
    /* A whole model (torch.save(model)) gets the hint to save its state_dict instead. */
    relate_ckpt *c = NULL;
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    relate_pkw_global(&w, "__main__", "Net");
    relate_pkw_tuple_end(&w, 0);
    relate_pkw_op(&w, 0x81); /* NEWOBJ */
    relate_pkw_op(&w, RELATE_PKW_STOP);
    write_torch_zip(path_of("main_net.pt"), &w, NULL, NULL, 0);
    relate_pkw_free(&w);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_open(&c, path_of("main_net.pt"), &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "state_dict()") && names_global(err.msg, "__main__", "Net"), "%s", err.msg);
    relate_ckpt_close(c);
    printf("allow-list: %zu storage classes, OrderedDict, _rebuild_tensor_v2 and _rebuild_parameter open; "
           "%zu other globals refused in 4 positions each\n",
           nstorages, nrefused);
}

/* ------------------------------------------------------------------ damaged and foreign files */
static void test_truncated_and_corrupt_zip(void)
{
    relate_params p;
    relate_param *r[8];
    relate_param_group g[2];
    relate_adam o;
    adam_setup(&p, r, g, &o, 1e-3, 9);
    fake_grads(&p, 3);
    relate_adam_step(&o);
    relate_ckpt_writer *w = relate_ckpt_writer_create();
    CHECK(relate_ckpt_put_state_dict(w, "backbone", &p) == RELATE_OK && relate_ckpt_put_adam(w, "optimizer", &o) == RELATE_OK &&
          relate_ckpt_put_int(w, "epoch", 3) == RELATE_OK);
    relate_error err = {0};
    const char *path = path_of("full.tar");
    CHECK_MSG(relate_ckpt_write(w, path, &err) == RELATE_OK, "%s", err.msg);
    relate_ckpt_writer_free(w);
    size_t n = 0;
    uint8_t *full = slurp(path, &n);
    const char *cut = path_of("cut.tar");
    int accepted = 0, unexplained = 0;
    for (size_t k = 0; k < n; k += (k < 64 || k > n - 64) ? 1 : 7) {
        spit(cut, full, k);
        relate_ckpt *c = NULL;
        relate_error e = {0};
        relate_status s = relate_ckpt_open(&c, cut, &e);
        accepted += s == RELATE_OK;
        /* after the zip signature every cut loses the end record: "truncated" */
        if (s != RELATE_OK && (!strstr(e.msg, "cut.tar") || (k >= 4 && !strstr(e.msg, "truncated")) ||
                               (k == 0 && !strstr(e.msg, "empty")))) {
            if (unexplained++ < 3)
                fprintf(stderr, "cut at %zu of %zu: %s\n", k, n, e.msg);
        }
        relate_ckpt_close(c);
    }
    CHECK_MSG(accepted == 0 && unexplained == 0, "%d truncations accepted, %d badly explained", accepted, unexplained);

    /* a flipped byte in a tensor record or in data.pkl: the CRC says so */
    relate_zip_reader z;
    CHECK(relate_zip_reader_open(&z, full, n, &err) == RELATE_OK);
    const relate_zip_entry *d = relate_zip_reader_find(&z, "archive/data/3");
    const relate_zip_entry *pk = relate_zip_reader_find(&z, "archive/data.pkl");
    size_t at_data = d ? (size_t)d->data_offset + 1 : 0, at_pkl = pk ? (size_t)pk->data_offset + 40 : 0;
    relate_zip_reader_free(&z);
    full[at_data] ^= 1;
    spit(cut, full, n);
    expect_open_error(cut, RELATE_ERR_FORMAT, "CRC of archive/data/3");
    full[at_data] ^= 1;
    full[at_pkl] ^= 0x10;
    spit(cut, full, n);
    expect_open_error(cut, RELATE_ERR_FORMAT, "CRC of archive/data.pkl");
    full[at_pkl] ^= 0x10;
    /* every single corrupted byte: an error or a successful open, never a crash */
    relate_params q;
    make_store(&q, 1, NULL);
    for (size_t k = 0; k < n; k += 3) {
        full[k] ^= 0xa5;
        spit(cut, full, n);
        full[k] ^= 0xa5;
        relate_ckpt *c = NULL;
        relate_error e = {0};
        if (relate_ckpt_open(&c, cut, &e) == RELATE_OK) {
            relate_ckpt_load_state_dict(c, "backbone", &q, &e);
            relate_ckpt_close(c);
        }
    }
    relate_params_free(&q);
    free(full);
    relate_adam_free(&o);
    relate_params_free(&p);
}

static void test_foreign_files(void)
{
    const char *t = path_of("notes.txt");
    const char *text = "epoch 50: loss 0.08\nacc 71.2\n";
    spit(t, text, strlen(text));
    expect_open_error(t, RELATE_ERR_FORMAT, "a text file");
    const char *h = path_of("page.tar");
    const char *html = "<!DOCTYPE html><html><body>404</body></html>\n";
    spit(h, html, strlen(html));
    expect_open_error(h, RELATE_ERR_FORMAT, "HTML");
    float x[4] = {1, 2, 3, 4};
    relate_st_entry e = {"w", "F32", 1, (int64_t[]){4}, x};
    relate_error err = {0};
    const char *s = path_of("model.safetensors");
    CHECK(relate_safetensors_write(s, &e, 1, NULL, 0, &err) == RELATE_OK);
    expect_open_error(s, RELATE_ERR_FORMAT, "safetensors");
    uint8_t rnd[300];
    uint64_t state = 88172645463325252ull;
    for (size_t k = 0; k < sizeof rnd; k++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        rnd[k] = (uint8_t)(state >> 24);
    }
    rnd[0] = 0x07;
    const char *r = path_of("random.bin");
    spit(r, rnd, sizeof rnd);
    expect_open_error(r, RELATE_ERR_FORMAT, "not a PyTorch checkpoint");
    const char *z = path_of("empty.tar");
    spit(z, "", 0);
    expect_open_error(z, RELATE_ERR_FORMAT, "empty");
    const char *gz = path_of("ckpt.tar.gz");
    spit(gz, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10);
    expect_open_error(gz, RELATE_ERR_FORMAT, "gzip");
    const char *pk = path_of("plain.pkl");
    spit(pk, "\x80\x02K\x01.", 5);
    expect_open_error(pk, RELATE_ERR_FORMAT, "pickle without PyTorch's magic");
    const char *pt1 = path_of("preview.pt");
    spit(pt1, "PYTORCH1........", 16);
    expect_open_error(pt1, RELATE_ERR_FORMAT, "PYTORCH1");
    blob top[1] = {{"hello.txt", "hi\n", 3}};
    write_zip(path_of("plain.zip"), top, 1);
    expect_open_error(path_of("plain.zip"), RELATE_ERR_FORMAT, "not inside a folder");
    blob nested[2] = {{"docs/hello.txt", "hi\n", 3}, {"docs/readme.md", "#\n", 2}};
    write_zip(path_of("docs.zip"), nested, 2);
    expect_open_error(path_of("docs.zip"), RELATE_ERR_FORMAT, "no entry docs/data.pkl (entries: docs/hello.txt, docs/readme.md)");
    char tar[1024];
    memset(tar, 0, sizeof tar);
    strcpy(tar, "checkpoint.tar");
    memcpy(tar + 257, "ustar", 5);
    spit(path_of("old.tar"), tar, sizeof tar);
    expect_open_error(path_of("old.tar"), RELATE_ERR_FORMAT, "tar archive");
    expect_open_error(dir, RELATE_ERR_IO, "folder");
    expect_open_error(path_of("does_not_exist.tar"), RELATE_ERR_IO, "No such file");
}

/* ------------------------------------------------------------------ strict loading */
static void test_strict_loading(void)
{
    relate_params a;
    make_store(&a, 1, NULL);
    relate_error err = {0};
    const char *path = path_of("strict.pt");
    relate_ckpt_writer *w = relate_ckpt_writer_create();
    CHECK(relate_ckpt_put_state_dict(w, "backbone", &a) == RELATE_OK);
    CHECK(relate_ckpt_write(w, path, &err) == RELATE_OK);
    relate_ckpt_writer_free(w);
    relate_ckpt *c = NULL;
    CHECK(relate_ckpt_open(&c, path, &err) == RELATE_OK);
    if (!c)
        return;

    relate_params more, copy;
    make_store(&more, 2, "layer5.conv.weight");
    make_store(&copy, 2, "layer5.conv.weight");
    CHECK(relate_ckpt_load_state_dict(c, "backbone", &more, &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "1 missing: layer5.conv.weight") && strstr(err.msg, "strict.pt"), "%s", err.msg);
    CHECK(stores_equal(&more, &copy)); /* unchanged */
    relate_params_free(&more);
    relate_params_free(&copy);

    relate_params fewer;
    relate_params_init(&fewer);
    relate_params_add(&fewer, "conv.weight", RELATE_PARAM, 4, (int64_t[]){2, 1, 3, 3});
    CHECK(relate_params_finalize(&fewer, &err) == RELATE_OK);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_load_state_dict(c, "backbone", &fewer, &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "7 unexpected: bn.weight, bn.bias, bn.running_mean, bn.running_var, ..."), "%s", err.msg);
    relate_params_free(&fewer);

    relate_params wrong;
    relate_params_init(&wrong);
    relate_params_add(&wrong, "conv.weight", RELATE_PARAM, 4, (int64_t[]){2, 3, 3, 3});
    relate_params_add(&wrong, "bn.weight", RELATE_PARAM, 1, (int64_t[]){2});
    relate_params_add(&wrong, "bn.bias", RELATE_PARAM, 1, (int64_t[]){2});
    relate_params_add(&wrong, "bn.running_mean", RELATE_BUFFER_F32, 1, (int64_t[]){2});
    relate_params_add(&wrong, "bn.running_var", RELATE_BUFFER_F32, 1, (int64_t[]){2});
    relate_params_add(&wrong, "bn.num_batches_tracked", RELATE_BUFFER_F32, 0, NULL); /* float, not int64 */
    relate_params_add(&wrong, "fc.weight", RELATE_PARAM, 2, (int64_t[]){3, 4});
    relate_params_add(&wrong, "empty.buf", RELATE_BUFFER_F32, 2, (int64_t[]){0, 3});
    CHECK(relate_params_finalize(&wrong, &err) == RELATE_OK);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_load_state_dict(c, "backbone", &wrong, &err) == RELATE_ERR_SHAPE);
    CHECK_MSG(strstr(err.msg, "conv.weight is [2, 1, 3, 3] in the file but [2, 3, 3, 3] in the model") &&
              strstr(err.msg, "bn.num_batches_tracked is int64 in the file but float32 in the model"),
              "%s", err.msg);
    CHECK(wrong.items[1]->data[0] == 0.0f);
    relate_params_free(&wrong);
    relate_ckpt_close(c);

    /* DataParallel's "module." prefix gets a hint */
    relate_params dp;
    relate_params_init(&dp);
    relate_params_add(&dp, "module.fc.weight", RELATE_PARAM, 2, (int64_t[]){3, 4});
    CHECK(relate_params_finalize(&dp, &err) == RELATE_OK);
    CHECK(relate_ckpt_write_state_dict(&dp, path_of("dp.pt"), &err) == RELATE_OK);
    relate_params plain;
    relate_params_init(&plain);
    relate_params_add(&plain, "fc.weight", RELATE_PARAM, 2, (int64_t[]){3, 4});
    CHECK(relate_params_finalize(&plain, &err) == RELATE_OK);
    CHECK(relate_ckpt_open(&c, path_of("dp.pt"), &err) == RELATE_OK);
    memset(&err, 0, sizeof err);
    CHECK(c && relate_ckpt_load_state_dict(c, NULL, &plain, &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "'module.'") && strstr(err.msg, "1 missing: fc.weight"), "%s", err.msg);
    relate_ckpt_close(c);

    /* BatchNorm's rule: a state dict without num_batches_tracked (and no _metadata) loads, with 0 */
    relate_params old, cur;
    relate_params_init(&old);
    relate_params_add(&old, "bn.weight", RELATE_PARAM, 1, (int64_t[]){2});
    CHECK(relate_params_finalize(&old, &err) == RELATE_OK);
    relate_params_init(&cur);
    relate_params_add(&cur, "bn.weight", RELATE_PARAM, 1, (int64_t[]){2});
    relate_param *nbt = relate_params_add(&cur, "bn.num_batches_tracked", RELATE_BUFFER_I64, 0, NULL);
    CHECK(relate_params_finalize(&cur, &err) == RELATE_OK);
    nbt->i64[0] = 12;
    CHECK(relate_ckpt_write_state_dict(&old, path_of("old_bn.pt"), &err) == RELATE_OK);
    CHECK(relate_ckpt_open(&c, path_of("old_bn.pt"), &err) == RELATE_OK);
    memset(&err, 0, sizeof err);
    CHECK_MSG(c && relate_ckpt_load_state_dict(c, NULL, &cur, &err) == RELATE_OK, "%s", err.msg);
    CHECK(nbt->i64[0] == 0);
    relate_ckpt_close(c);
    relate_params_free(&old);
    relate_params_free(&cur);
    relate_params_free(&dp);
    relate_params_free(&plain);
    relate_params_free(&a);
}

/* ------------------------------------------------------------------ atomic writes */
static void test_atomic_writes(void)
{
    relate_params a;
    relate_params_init(&a);
    relate_params_add(&a, "big", RELATE_PARAM, 1, (int64_t[]){100000});
    relate_error err = {0};
    CHECK(relate_params_finalize(&a, &err) == RELATE_OK);
    relate_test_fill(a.items[0]->data, 100000, 1);
    CHECK(relate_ckpt_write_state_dict(&a, "/nonexistent_relate_dir/x.tar", &err) == RELATE_ERR_IO);
    CHECK_MSG(strstr(err.msg, "cannot write checkpoint") && strstr(err.msg, "writable"), "%s", err.msg);

    const char *path = path_of("keep.tar");
    spit(path, "previous checkpoint", 19);
    CHECK(count_tmp_files() == 0);
    /* a write that fails half-way (file size limit) leaves the old file and no temporary */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {.rlim_cur = 50000, .rlim_max = RLIM_INFINITY};
        setrlimit(RLIMIT_FSIZE, &rl);
        relate_error e = {0};
        relate_status s = relate_ckpt_write_state_dict(&a, path, &e);
        _exit(s == RELATE_ERR_IO && strstr(e.msg, "unchanged") ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the failing write did not report an i/o error");
    size_t n = 0;
    uint8_t *kept = slurp(path, &n);
    CHECK(kept && n == 19 && memcmp(kept, "previous checkpoint", 19) == 0);
    free(kept);
    CHECK(count_tmp_files() == 0);
    /* a successful write replaces it and leaves no temporary */
    CHECK(relate_ckpt_write_state_dict(&a, path, &err) == RELATE_OK);
    CHECK(count_tmp_files() == 0);
    relate_ckpt *c = NULL;
    CHECK(relate_ckpt_open(&c, path, &err) == RELATE_OK);
    relate_ckpt_close(c);
    relate_params_free(&a);
}

static void remove_dir(void)
{
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            remove(path_of(e->d_name));
    if (d)
        closedir(d);
    rmdir(dir);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_state_dict_roundtrip();
    test_bare_state_dict();
    test_adam_roundtrip();
    test_sgd_roundtrip();
    test_adam_tensor_step();
    test_views_zip_and_legacy();
    test_refused_globals();
    test_allow_list();
    test_truncated_and_corrupt_zip();
    test_foreign_files();
    test_strict_loading();
    test_atomic_writes();
    remove_dir();
    return relate_test_finish();
}
