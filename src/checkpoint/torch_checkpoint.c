/* torch_checkpoint.c: relate/checkpoint.h: writes torch.save's zip format by hand (spec 8) and
 * reads the zip and the legacy (PyTorch <= 1.5) formats through the restricted unpickler.
 * Not torch.load: only dicts, lists, tuples, plain values and tensors; nothing in a file is ever
 * executed, and a global beyond the allow-list below is refused. */
#define _POSIX_C_SOURCE 200809L
#include "relate/checkpoint.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/atomic_file.h"
#include "io/pickle.h"
#include "io/pickle_write.h"
#include "io/zip_stored.h"
#include "optim/groups.h"

#define CK_MAX_DIMS 8          /* = relate_ckpt_tensor.shape; RELATE_PK_MAX_DIMS is the same */
#define CK_ARCHIVE "archive/"  /* the folder PyTorch uses for in-memory buffers */
#define CK_ZIP_VERSION "3\n"   /* what torch.save (1.6 - 2.x) writes into <folder>/version */
#define CK_BATCH 1000          /* items per MARK ... SETITEMS/APPENDS, as Python's pickler */

/* ================================================================== dtypes */
typedef enum ck_dtype { DT_F32, DT_F64, DT_F16, DT_BF16, DT_I64, DT_I32, DT_I16, DT_I8, DT_U8, DT_BOOL, DT_COUNT } ck_dtype;

static const struct {
    const char *storage, *name;
    int size;
    bool is_int;
} DTYPES[DT_COUNT] = {
    [DT_F32] = {"FloatStorage", "float32", 4, false},   [DT_F64] = {"DoubleStorage", "float64", 8, false},
    [DT_F16] = {"HalfStorage", "float16", 2, false},    [DT_BF16] = {"BFloat16Storage", "bfloat16", 2, false},
    [DT_I64] = {"LongStorage", "int64", 8, true},       [DT_I32] = {"IntStorage", "int32", 4, true},
    [DT_I16] = {"ShortStorage", "int16", 2, true},      [DT_I8] = {"CharStorage", "int8", 1, true},
    [DT_U8] = {"ByteStorage", "uint8", 1, true},        [DT_BOOL] = {"BoolStorage", "bool", 1, true},
};

/* Everything a checkpoint may name: spec 8's list plus torch._utils._rebuild_parameter (an
 * nn.Parameter pickled directly; its data tensor is used). */
static const relate_pk_global CK_ALLOW[] = {
    {"collections", "OrderedDict"},     {"torch._utils", "_rebuild_tensor_v2"},
    {"torch._utils", "_rebuild_parameter"}, {"torch", "FloatStorage"},
    {"torch", "DoubleStorage"},         {"torch", "HalfStorage"},
    {"torch", "BFloat16Storage"},       {"torch", "LongStorage"},
    {"torch", "IntStorage"},            {"torch", "ShortStorage"},
    {"torch", "CharStorage"},           {"torch", "ByteStorage"},
    {"torch", "BoolStorage"},           {NULL, NULL}};

/* A path in messages: at most its last 100 characters. */
#define PATH_FMT "'%s%s'"
#define PATH_ARG(p) (strlen(p) > 100 ? "..." : ""), (strlen(p) > 100 ? (p) + strlen(p) - 97 : (p))

static void sb_add(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sb_add(char *buf, size_t cap, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, cap - used, fmt, ap);
    va_end(ap);
}

static const char *shape_str(int ndim, const int64_t *shape, char *buf, size_t n)
{
    buf[0] = 0;
    sb_add(buf, n, "[");
    for (int d = 0; d < ndim; d++)
        sb_add(buf, n, "%s%lld", d ? ", " : "", (long long)shape[d]);
    sb_add(buf, n, "]");
    return buf;
}

/* ================================================================== writer: a value tree */
typedef enum wv_kind { WV_NONE, WV_BOOL, WV_INT, WV_FLOAT, WV_STR, WV_TUPLE, WV_LIST, WV_DICT, WV_ODICT, WV_TENSOR } wv_kind;

typedef struct wv wv;
struct wv {
    wv_kind kind;
    int64_t i;
    double f;
    char *s;
    wv **items; /* TUPLE/LIST: count items; DICT/ODICT: 2*count (key, value) */
    int count, cap;
    ck_dtype dtype; /* TENSOR: DT_F32 or DT_I64 */
    int ndim;
    int64_t shape[RELATE_MAX_DIMS];
    int64_t numel;
    void *data;
    bool owned;
};

struct relate_ckpt_writer {
    wv *root; /* DICT */
};

static void wv_free(wv *v)
{
    if (!v)
        return;
    int n = (v->kind == WV_DICT || v->kind == WV_ODICT) ? 2 * v->count : v->count;
    for (int k = 0; k < n; k++)
        wv_free(v->items[k]);
    free(v->items);
    free(v->s);
    if (v->owned)
        free(v->data);
    free(v);
}

static wv *wv_new(wv_kind kind)
{
    wv *v = calloc(1, sizeof *v);
    if (v)
        v->kind = kind;
    return v;
}

static wv *wv_int(int64_t i)
{
    wv *v = wv_new(WV_INT);
    if (v)
        v->i = i;
    return v;
}

static wv *wv_float(double f)
{
    wv *v = wv_new(WV_FLOAT);
    if (v)
        v->f = f;
    return v;
}

static wv *wv_bool(bool b)
{
    wv *v = wv_new(WV_BOOL);
    if (v)
        v->i = b;
    return v;
}

static wv *wv_str(const char *s)
{
    wv *v = wv_new(WV_STR);
    if (v && !(v->s = malloc(strlen(s) + 1))) {
        free(v);
        return NULL;
    }
    if (v)
        strcpy(v->s, s);
    return v;
}

/* Appends items (a NULL item, i.e. a failed allocation, fails the call and frees the others). */
static int wv_push(wv *parent, int n, wv *a, wv *b)
{
    wv *it[2] = {a, b};
    bool ok = parent != NULL;
    for (int k = 0; k < n; k++)
        ok = ok && it[k];
    if (ok && parent->count * (n == 2 ? 2 : 1) + n > parent->cap) {
        int cap = parent->cap ? 2 * parent->cap : 8;
        wv **items = realloc(parent->items, (size_t)cap * sizeof *items);
        if (items) {
            parent->items = items;
            parent->cap = cap;
        } else {
            ok = false;
        }
    }
    if (!ok) {
        for (int k = 0; k < n; k++)
            wv_free(it[k]);
        return -1;
    }
    int base = parent->count * (n == 2 ? 2 : 1);
    for (int k = 0; k < n; k++)
        parent->items[base + k] = it[k];
    parent->count++;
    return 0;
}

static int wv_append(wv *list, wv *item) { return wv_push(list, 1, item, NULL); }
static int wv_set(wv *dict, wv *key, wv *value) { return wv_push(dict, 2, key, value); }

/* A float32/int64 tensor; copies the values unless `borrow` (the writer outlives nothing). */
static wv *wv_tensor(ck_dtype dtype, int ndim, const int64_t *shape, const void *src, bool borrow)
{
    wv *v = wv_new(WV_TENSOR);
    if (!v)
        return NULL;
    v->dtype = dtype;
    v->ndim = ndim;
    v->numel = 1;
    for (int d = 0; d < ndim; d++) {
        v->shape[d] = shape[d];
        v->numel *= shape[d];
    }
    size_t bytes = (size_t)v->numel * (size_t)DTYPES[dtype].size;
    if (borrow) {
        v->data = (void *)src;
        return v;
    }
    v->owned = true;
    if (!(v->data = malloc(bytes ? bytes : 1))) {
        free(v);
        return NULL;
    }
    if (bytes)
        memcpy(v->data, src, bytes);
    return v;
}

static wv *state_dict_value(const relate_params *p, bool borrow)
{
    wv *d = wv_new(WV_ODICT);
    for (int i = 0; d && i < p->count; i++) {
        const relate_param *e = p->items[i];
        bool is_int = e->kind == RELATE_BUFFER_I64;
        const void *src = is_int ? (const void *)e->i64 : (const void *)e->data;
        if (wv_set(d, wv_str(e->name), wv_tensor(is_int ? DT_I64 : DT_F32, e->ndim, e->shape, src, borrow))) {
            wv_free(d);
            return NULL;
        }
    }
    return d;
}

static relate_status check_params(const relate_params *p)
{
    if (!p || !p->finalized)
        return RELATE_ERR_ARG;
    for (int i = 0; i < p->count; i++) {
        const relate_param *e = p->items[i];
        if (e->numel > 0 && !(e->kind == RELATE_BUFFER_I64 ? (const void *)e->i64 : (const void *)e->data))
            return RELATE_ERR_ARG;
    }
    return RELATE_OK;
}

static wv *ids_value(int first, int count)
{
    wv *l = wv_new(WV_LIST);
    for (int k = 0; l && k < count; k++)
        if (wv_append(l, wv_int(first + k)))
            return wv_free(l), NULL;
    return l;
}

static wv *wv_pair(double a, double b)
{
    wv *t = wv_new(WV_TUPLE);
    if (t && (wv_append(t, wv_float(a)) || wv_append(t, wv_float(b)))) {
        wv_free(t);
        return NULL;
    }
    return t;
}

/* {"state": state, "param_groups": groups}: the shape both optimizers' state dicts share. Takes
 * ownership of all three; NULL (everything freed) when ok is false or memory runs out. */
static wv *optimizer_dict(wv *root, wv *state, wv *groups, bool ok)
{
    if (ok) {
        ok = !wv_set(root, wv_str("state"), state);
        state = NULL;
        ok = ok && !wv_set(root, wv_str("param_groups"), groups);
        groups = NULL;
    }
    if (!ok) {
        wv_free(root);
        wv_free(state);
        wv_free(groups);
        return NULL;
    }
    return root;
}

static wv *adam_value(const relate_adam *opt)
{
    wv *root = wv_new(WV_DICT), *state = wv_new(WV_DICT), *groups = wv_new(WV_LIST);
    bool ok = root && state && groups;
    int k = 0;
    for (int g = 0; ok && g < opt->ngroups; g++) {
        const relate_param_group *grp = &opt->groups[g];
        for (int j = 0; ok && j < grp->count; j++, k++) {
            const relate_param *prm = grp->params[j];
            const relate_adam_state *st = &opt->state[k];
            if (st->step <= 0 || !st->exp_avg || !st->exp_avg_sq)
                continue;
            wv *e = wv_new(WV_DICT);
            ok = !wv_set(e, wv_str("step"), wv_int(st->step)) &&
                 !wv_set(e, wv_str("exp_avg"), wv_tensor(DT_F32, prm->ndim, prm->shape, st->exp_avg, false)) &&
                 !wv_set(e, wv_str("exp_avg_sq"), wv_tensor(DT_F32, prm->ndim, prm->shape, st->exp_avg_sq, false));
            if (!ok)
                wv_free(e);
            else
                ok = !wv_set(state, wv_int(k), e);
        }
    }
    for (int g = 0, first = 0; ok && g < opt->ngroups; first += opt->groups[g].count, g++) {
        const relate_param_group *grp = &opt->groups[g];
        wv *d = wv_new(WV_DICT);
        /* The keys and order of PyTorch 1.13's Adam.state_dict(); 1.4 reads the first six. */
        ok = !wv_set(d, wv_str("lr"), wv_float(grp->lr)) && !wv_set(d, wv_str("betas"), wv_pair(opt->beta1, opt->beta2)) &&
             !wv_set(d, wv_str("eps"), wv_float(opt->eps)) &&
             !wv_set(d, wv_str("weight_decay"), wv_float(grp->weight_decay)) &&
             !wv_set(d, wv_str("amsgrad"), wv_bool(false)) && !wv_set(d, wv_str("maximize"), wv_bool(false)) &&
             !wv_set(d, wv_str("foreach"), wv_new(WV_NONE)) && !wv_set(d, wv_str("capturable"), wv_bool(false)) &&
             !wv_set(d, wv_str("differentiable"), wv_bool(false)) && !wv_set(d, wv_str("fused"), wv_bool(false)) &&
             !wv_set(d, wv_str("params"), ids_value(first, grp->count));
        if (!ok)
            wv_free(d);
        else
            ok = !wv_append(groups, d);
    }
    return optimizer_dict(root, state, groups, ok);
}

static wv *sgd_value(const relate_sgd *opt)
{
    wv *root = wv_new(WV_DICT), *state = wv_new(WV_DICT), *groups = wv_new(WV_LIST);
    bool ok = root && state && groups;
    int k = 0;
    for (int g = 0; ok && g < opt->ngroups; g++) {
        const relate_param_group *grp = &opt->groups[g];
        for (int j = 0; ok && j < grp->count; j++, k++) {
            const relate_param *prm = grp->params[j];
            const float *buf = opt->state ? opt->state[k].momentum_buffer : NULL;
            if (!buf)
                continue;
            wv *e = wv_new(WV_DICT);
            ok = !wv_set(e, wv_str("momentum_buffer"), wv_tensor(DT_F32, prm->ndim, prm->shape, buf, false));
            if (!ok)
                wv_free(e);
            else
                ok = !wv_set(state, wv_int(k), e);
        }
    }
    for (int g = 0, first = 0; ok && g < opt->ngroups; first += opt->groups[g].count, g++) {
        const relate_param_group *grp = &opt->groups[g];
        wv *d = wv_new(WV_DICT);
        ok = !wv_set(d, wv_str("lr"), wv_float(grp->lr)) && !wv_set(d, wv_str("momentum"), wv_float(opt->momentum)) &&
             !wv_set(d, wv_str("dampening"), wv_float(opt->dampening)) &&
             !wv_set(d, wv_str("weight_decay"), wv_float(grp->weight_decay)) &&
             !wv_set(d, wv_str("nesterov"), wv_bool(opt->nesterov)) && !wv_set(d, wv_str("maximize"), wv_bool(false)) &&
             !wv_set(d, wv_str("foreach"), wv_new(WV_NONE)) &&
             !wv_set(d, wv_str("differentiable"), wv_bool(false)) &&
             !wv_set(d, wv_str("params"), ids_value(first, grp->count));
        if (!ok)
            wv_free(d);
        else
            ok = !wv_append(groups, d);
    }
    return optimizer_dict(root, state, groups, ok);
}

relate_ckpt_writer *relate_ckpt_writer_create(void)
{
    relate_ckpt_writer *w = calloc(1, sizeof *w);
    if (w && !(w->root = wv_new(WV_DICT))) {
        free(w);
        return NULL;
    }
    return w;
}

void relate_ckpt_writer_free(relate_ckpt_writer *w)
{
    if (!w)
        return;
    wv_free(w->root);
    free(w);
}

/* Puts value under key (a dict assignment: an existing key keeps its place). Takes value. */
static relate_status put(relate_ckpt_writer *w, const char *key, wv *value)
{
    if (!w || !key) {
        wv_free(value);
        return RELATE_ERR_ARG;
    }
    if (!value)
        return RELATE_ERR_NOMEM;
    for (int k = 0; k < w->root->count; k++)
        if (strcmp(w->root->items[2 * k]->s, key) == 0) {
            wv_free(w->root->items[2 * k + 1]);
            w->root->items[2 * k + 1] = value;
            return RELATE_OK;
        }
    return wv_set(w->root, wv_str(key), value) ? RELATE_ERR_NOMEM : RELATE_OK;
}

relate_status relate_ckpt_put_state_dict(relate_ckpt_writer *w, const char *key, const relate_params *p)
{
    if (check_params(p) != RELATE_OK)
        return RELATE_ERR_ARG;
    return put(w, key, state_dict_value(p, false));
}

relate_status relate_ckpt_put_adam(relate_ckpt_writer *w, const char *key, const relate_adam *opt)
{
    if (!opt || !opt->state || !opt->groups)
        return RELATE_ERR_ARG;
    return put(w, key, adam_value(opt));
}

relate_status relate_ckpt_put_sgd(relate_ckpt_writer *w, const char *key, const relate_sgd *opt)
{
    if (!opt || !opt->groups)
        return RELATE_ERR_ARG;
    return put(w, key, sgd_value(opt));
}

relate_status relate_ckpt_put_int(relate_ckpt_writer *w, const char *key, int64_t value)
{
    return put(w, key, wv_int(value));
}

relate_status relate_ckpt_put_float(relate_ckpt_writer *w, const char *key, double value)
{
    return put(w, key, wv_float(value));
}

relate_status relate_ckpt_put_str(relate_ckpt_writer *w, const char *key, const char *value)
{
    if (!value)
        return RELATE_ERR_ARG;
    return put(w, key, wv_str(value));
}

/* ------------------------------------------------------------------ serialization */
typedef struct ser {
    relate_pkw pk;
    const wv **storages; /* tensors in order of first appearance: storage keys "0", "1", ... */
    int nstorages, cap;
    bool oom;
} ser;

static void ser_value(ser *s, const wv *v);

/* MARK k v ... SETITEMS (or MARK x ... APPENDS) in batches, as Python's pickler writes them. */
static void ser_items(ser *s, const wv *v, bool pairs)
{
    for (int start = 0; start < v->count; start += CK_BATCH) {
        int end = v->count - start > CK_BATCH ? start + CK_BATCH : v->count;
        relate_pkw_mark(&s->pk);
        for (int k = start; k < end; k++) {
            if (pairs) {
                ser_value(s, v->items[2 * k]);
                ser_value(s, v->items[2 * k + 1]);
            } else {
                ser_value(s, v->items[k]);
            }
        }
        relate_pkw_op(&s->pk, pairs ? RELATE_PKW_SETITEMS : RELATE_PKW_APPENDS);
    }
}

static void ser_tensor(ser *s, const wv *v)
{
    if (s->nstorages == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        const wv **st = realloc(s->storages, (size_t)cap * sizeof *st);
        if (!st) {
            s->oom = true;
            return;
        }
        s->storages = st;
        s->cap = cap;
    }
    char key[24];
    snprintf(key, sizeof key, "%d", s->nstorages);
    s->storages[s->nstorages++] = v;
    /* torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks) */
    relate_pkw *pk = &s->pk;
    relate_pkw_global(pk, "torch._utils", "_rebuild_tensor_v2");
    relate_pkw_tuple_begin(pk, 6);
    relate_pkw_tuple_begin(pk, 5);
    relate_pkw_str(pk, "storage");
    relate_pkw_global(pk, "torch", DTYPES[v->dtype].storage);
    relate_pkw_str(pk, key);
    relate_pkw_str(pk, "cpu");
    relate_pkw_int(pk, v->numel);
    relate_pkw_tuple_end(pk, 5);
    relate_pkw_op(pk, RELATE_PKW_BINPERSID);
    relate_pkw_int(pk, 0);
    relate_pkw_tuple_begin(pk, v->ndim);
    for (int d = 0; d < v->ndim; d++)
        relate_pkw_int(pk, v->shape[d]);
    relate_pkw_tuple_end(pk, v->ndim);
    /* Contiguous strides as PyTorch computes them (a size-0 dimension counts as 1). */
    int64_t stride[RELATE_MAX_DIMS], run = 1;
    for (int d = v->ndim - 1; d >= 0; d--) {
        stride[d] = run;
        run *= v->shape[d] > 1 ? v->shape[d] : 1;
    }
    relate_pkw_tuple_begin(pk, v->ndim);
    for (int d = 0; d < v->ndim; d++)
        relate_pkw_int(pk, stride[d]);
    relate_pkw_tuple_end(pk, v->ndim);
    relate_pkw_bool(pk, false);
    relate_pkw_global(pk, "collections", "OrderedDict");
    relate_pkw_tuple_end(pk, 0);
    relate_pkw_op(pk, RELATE_PKW_REDUCE);
    relate_pkw_tuple_end(pk, 6);
    relate_pkw_op(pk, RELATE_PKW_REDUCE);
}

static void ser_value(ser *s, const wv *v)
{
    relate_pkw *pk = &s->pk;
    switch (v->kind) {
    case WV_NONE: relate_pkw_none(pk); break;
    case WV_BOOL: relate_pkw_bool(pk, v->i != 0); break;
    case WV_INT: relate_pkw_int(pk, v->i); break;
    case WV_FLOAT: relate_pkw_float(pk, v->f); break;
    case WV_STR: relate_pkw_str(pk, v->s); break;
    case WV_TUPLE:
        relate_pkw_tuple_begin(pk, v->count);
        for (int k = 0; k < v->count; k++)
            ser_value(s, v->items[k]);
        relate_pkw_tuple_end(pk, v->count);
        break;
    case WV_LIST:
        relate_pkw_empty_list(pk);
        ser_items(s, v, false);
        break;
    case WV_DICT:
        relate_pkw_empty_dict(pk);
        ser_items(s, v, true);
        break;
    case WV_ODICT:
        relate_pkw_global(pk, "collections", "OrderedDict");
        relate_pkw_tuple_end(pk, 0);
        relate_pkw_op(pk, RELATE_PKW_REDUCE);
        ser_items(s, v, true);
        break;
    case WV_TENSOR: ser_tensor(s, v); break;
    }
}

static relate_status write_root(const wv *root, const char *path, relate_error *err)
{
    if (!path)
        return relate_error_set(err, RELATE_ERR_ARG, "checkpoint: no path given");
    ser s;
    memset(&s, 0, sizeof s);
    relate_pkw_init(&s.pk);
    relate_pkw_proto(&s.pk);
    ser_value(&s, root);
    relate_pkw_op(&s.pk, RELATE_PKW_STOP);
    relate_status st = RELATE_OK;
    relate_error lerr = {0};
    if (s.oom || s.pk.oom) {
        st = relate_error_set(err, RELATE_ERR_NOMEM, "cannot write checkpoint " PATH_FMT ": out of memory",
                              PATH_ARG(path));
        goto done;
    }
    relate_atomic_file f;
    if ((st = relate_atomic_open(&f, path, &lerr)) != RELATE_OK) {
        relate_error_set(err, st, "cannot write checkpoint: %s", lerr.msg);
        goto done;
    }
    relate_zip_writer z;
    relate_zip_writer_init(&z, f.fp);
    st = relate_zip_writer_add(&z, CK_ARCHIVE "data.pkl", s.pk.buf, s.pk.len, &lerr);
    if (!st)
        st = relate_zip_writer_add(&z, CK_ARCHIVE "byteorder", "little", 6, &lerr);
    for (int k = 0; !st && k < s.nstorages; k++) {
        char name[64];
        snprintf(name, sizeof name, CK_ARCHIVE "data/%d", k);
        const wv *t = s.storages[k];
        st = relate_zip_writer_add(&z, name, t->data, (size_t)t->numel * (size_t)DTYPES[t->dtype].size, &lerr);
    }
    if (!st)
        st = relate_zip_writer_add(&z, CK_ARCHIVE "version", CK_ZIP_VERSION, strlen(CK_ZIP_VERSION), &lerr);
    if (!st)
        st = relate_zip_writer_finish(&z, &lerr);
    relate_zip_writer_free(&z);
    if (st) {
        relate_atomic_abort(&f);
        relate_error_set(err, st, "cannot write checkpoint " PATH_FMT ": %s", PATH_ARG(path), lerr.msg);
        goto done;
    }
    if ((st = relate_atomic_commit(&f, &lerr)) != RELATE_OK)
        relate_error_set(err, st, "cannot write checkpoint: %s; the previous file (if any) is unchanged", lerr.msg);
done:
    relate_pkw_free(&s.pk);
    free(s.storages);
    return st;
}

relate_status relate_ckpt_write(const relate_ckpt_writer *w, const char *path, relate_error *err)
{
    if (!w)
        return relate_error_set(err, RELATE_ERR_ARG, "checkpoint: no writer");
    return write_root(w->root, path, err);
}

relate_status relate_ckpt_write_state_dict(const relate_params *p, const char *path, relate_error *err)
{
    if (check_params(p) != RELATE_OK)
        return relate_error_set(err, RELATE_ERR_ARG, "checkpoint: the parameter store is not finalized");
    wv *root = state_dict_value(p, true);
    if (!root)
        return relate_error_set(err, RELATE_ERR_NOMEM, "cannot write checkpoint: out of memory");
    relate_status st = write_root(root, path, err);
    wv_free(root);
    return st;
}

/* ================================================================== reader */
typedef struct ck_storage {
    const char *key;     /* the persistent id's key (lives in the pickle) */
    ck_dtype dtype;
    int64_t numel;       /* elements, from the persistent id */
    const uint8_t *data; /* numel elements in the file buffer; NULL until located */
} ck_storage;

struct relate_ckpt {
    char *path;
    relate_ckpt_format format;
    uint8_t *buf;
    size_t size;
    relate_pickle pk;
    ck_storage *storages;
    int nstorages, cap;
    char *key_list;
    bool bare;
};

static relate_status ck_fail(const relate_ckpt *c, relate_error *err, relate_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static relate_status ck_fail(const relate_ckpt *c, relate_error *err, relate_status code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return relate_error_set(err, code, "checkpoint " PATH_FMT ": %s", PATH_ARG(c->path), msg);
}

static const relate_pk_value EMPTY_DICT = {.kind = RELATE_PK_DICT};

static bool is_odict(const relate_pk_value *v) { return relate_pk_is_call_of(v, "collections", "OrderedDict"); }

/* The entries of a dict or an OrderedDict, or NULL for anything else. */
static const relate_pk_value *as_dict(const relate_pk_value *v)
{
    if (v && v->kind == RELATE_PK_DICT)
        return v;
    if (is_odict(v) && v->args->count == 0)
        return v->dict_items ? v->dict_items : &EMPTY_DICT;
    return NULL;
}

static bool is_tensor(const relate_pk_value *v)
{
    return relate_pk_is_call_of(v, "torch._utils", "_rebuild_tensor_v2") ||
           relate_pk_is_call_of(v, "torch._utils", "_rebuild_parameter");
}

static bool is_text(const relate_pk_value *v) { return v && (v->kind == RELATE_PK_STR || v->kind == RELATE_PK_BYTES); }

static bool text_eq(const relate_pk_value *v, const char *s)
{
    return is_text(v) && v->len == strlen(s) && memcmp(v->s, s, v->len) == 0;
}

static const char *kind_of(const relate_pk_value *v)
{
    if (!v)
        return "missing value";
    if (is_tensor(v))
        return "tensor";
    if (is_odict(v))
        return "OrderedDict";
    return relate_pk_kind_name(v->kind);
}

static bool as_number(const relate_pk_value *v, double *out)
{
    if (v && v->kind == RELATE_PK_FLOAT) {
        *out = v->f;
        return true;
    }
    if (v && v->kind == RELATE_PK_INT) {
        *out = (double)v->i;
        return true;
    }
    return false;
}

static bool as_flag(const relate_pk_value *v, bool *out)
{
    if (v && (v->kind == RELATE_PK_BOOL || v->kind == RELATE_PK_INT)) {
        *out = v->i != 0;
        return true;
    }
    return false;
}

/* ------------------------------------------------------------------ persistent ids, storages */
typedef struct ck_pid {
    const char *key;
    ck_dtype dtype;
    int64_t numel;
    bool view; /* legacy storage views: (view_key, offset, size) */
    int64_t view_offset, view_numel;
} ck_pid;

static relate_status parse_pid(const relate_ckpt *c, const relate_pk_value *pid, ck_pid *out, relate_error *err)
{
    memset(out, 0, sizeof *out);
    if (pid && pid->kind == RELATE_PK_TUPLE && pid->count >= 1 && text_eq(pid->items[0], "module"))
        return ck_fail(c, err, RELATE_ERR_FORMAT,
                       "holds a pickled module class (torch.save(model)); relate reads state dicts only: "
                       "save model.state_dict() instead");
    if (!pid || pid->kind != RELATE_PK_TUPLE || (pid->count != 5 && pid->count != 6) ||
        !text_eq(pid->items[0], "storage"))
        return ck_fail(c, err, RELATE_ERR_FORMAT,
                       "a persistent id is not a ('storage', type, key, location, size) tuple: corrupt or "
                       "not written by torch.save");
    const relate_pk_value *type = pid->items[1], *key = pid->items[2], *loc = pid->items[3], *n = pid->items[4];
    int dt = -1;
    for (int k = 0; k < DT_COUNT && type && type->kind == RELATE_PK_GLOBAL; k++)
        if (strcmp(type->s, "torch") == 0 && strcmp(type->name, DTYPES[k].storage) == 0)
            dt = k;
    if (dt < 0 || key->kind != RELATE_PK_STR || !is_text(loc) || n->kind != RELATE_PK_INT || n->i < 0 ||
        n->i > INT64_MAX / 8)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "a storage persistent id is malformed (type, key, location or size)");
    out->key = key->s;
    out->dtype = (ck_dtype)dt;
    out->numel = n->i;
    if (pid->count == 6 && pid->items[5]->kind != RELATE_PK_NONE) {
        const relate_pk_value *vm = pid->items[5];
        if (vm->kind != RELATE_PK_TUPLE || vm->count != 3 || vm->items[1]->kind != RELATE_PK_INT ||
            vm->items[2]->kind != RELATE_PK_INT || vm->items[1]->i < 0 || vm->items[2]->i < 0 ||
            vm->items[1]->i > out->numel || vm->items[2]->i > out->numel - vm->items[1]->i)
            return ck_fail(c, err, RELATE_ERR_FORMAT, "a storage view (legacy format) lies outside its storage");
        out->view = true;
        out->view_offset = vm->items[1]->i;
        out->view_numel = vm->items[2]->i;
    }
    return RELATE_OK;
}

static ck_storage *find_storage(const relate_ckpt *c, const char *key)
{
    for (int k = 0; k < c->nstorages; k++)
        if (strcmp(c->storages[k].key, key) == 0)
            return &c->storages[k];
    return NULL;
}

static relate_status add_storage(relate_ckpt *c, const ck_pid *pid, relate_error *err)
{
    ck_storage *s = find_storage(c, pid->key);
    if (s) {
        if (s->dtype != pid->dtype || s->numel != pid->numel)
            return ck_fail(c, err, RELATE_ERR_FORMAT, "storage '%.40s' is described twice with different types or sizes",
                           pid->key);
        return RELATE_OK;
    }
    if (c->nstorages == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        ck_storage *st = realloc(c->storages, (size_t)cap * sizeof *st);
        if (!st)
            return ck_fail(c, err, RELATE_ERR_NOMEM, "out of memory");
        c->storages = st;
        c->cap = cap;
    }
    c->storages[c->nstorages++] = (ck_storage){.key = pid->key, .dtype = pid->dtype, .numel = pid->numel};
    return RELATE_OK;
}

/* Collects every storage the object refers to. The tree may share nodes (memo references), so
 * the walk has a visit budget: a pickle built to explode (a "billion laughs") is refused. */
typedef struct ck_walk {
    relate_ckpt *c;
    int64_t budget;
    relate_error *err;
} ck_walk;

static relate_status walk(ck_walk *w, const relate_pk_value *v, int depth)
{
    if (!v)
        return RELATE_OK;
    if (--w->budget < 0)
        return ck_fail(w->c, w->err, RELATE_ERR_FORMAT,
                       "the pickled object refers to its parts too many times (shared references); refused");
    if (depth > 200)
        return ck_fail(w->c, w->err, RELATE_ERR_FORMAT, "the pickled object is nested more than 200 levels deep");
    relate_status s = RELATE_OK;
    switch (v->kind) {
    case RELATE_PK_LIST:
    case RELATE_PK_TUPLE:
    case RELATE_PK_DICT: {
        int64_t n = v->kind == RELATE_PK_DICT ? 2 * v->count : v->count;
        for (int64_t k = 0; k < n && !s; k++)
            s = walk(w, v->items[k], depth + 1);
        return s;
    }
    case RELATE_PK_CALL:
        if (!(s = walk(w, v->args, depth + 1)) && !(s = walk(w, v->state, depth + 1)) &&
            !(s = walk(w, v->dict_items, depth + 1)))
            s = walk(w, v->list_items, depth + 1);
        return s;
    case RELATE_PK_PERSID: {
        ck_pid pid;
        if ((s = parse_pid(w->c, v->pid, &pid, w->err)))
            return s;
        return add_storage(w->c, &pid, w->err);
    }
    default: return RELATE_OK;
    }
}

static relate_status collect_storages(relate_ckpt *c, relate_error *err)
{
    ck_walk w = {.c = c, .budget = 8 * (int64_t)c->size + 100000, .err = err};
    return walk(&w, c->pk.root, 0);
}

static relate_status load_pickle(relate_ckpt *c, const uint8_t *data, size_t size, const char *what,
                                 relate_error *err)
{
    relate_error perr = {0};
    if (relate_pickle_load(&c->pk, data, size, CK_ALLOW, &perr) != RELATE_OK) {
        bool model = strstr(perr.msg, "the global torch.nn.") || strstr(perr.msg, "the global __main__.");
        return ck_fail(c, err, perr.code, "%s%s: %s",
                       model ? "a whole model saved with torch.save(model)? relate reads state dicts: save "
                               "model.state_dict(). "
                             : "",
                       what, perr.msg);
    }
    return RELATE_OK;
}

/* ------------------------------------------------------------------ zip format */
static relate_status open_zip(relate_ckpt *c, relate_error *err)
{
    relate_zip_reader z;
    relate_error zerr = {0};
    if (relate_zip_reader_open(&z, c->buf, c->size, &zerr) != RELATE_OK)
        return ck_fail(c, err, zerr.code, "%s", zerr.msg);
    relate_status st = RELATE_OK;
    char prefix[256], name[512];
    if (z.count == 0) {
        st = ck_fail(c, err, RELATE_ERR_FORMAT, "an empty zip archive, not a PyTorch checkpoint");
        goto done;
    }
    const char *slash = strchr(z.entries[0].name, '/');
    if (!slash || (size_t)(slash - z.entries[0].name) + 2 > sizeof prefix) {
        st = ck_fail(c, err, RELATE_ERR_FORMAT,
                     "a zip archive but not a PyTorch checkpoint: its first entry '%.60s' is not inside a folder "
                     "(torch.save puts everything under one, e.g. archive/data.pkl)",
                     z.entries[0].name);
        goto done;
    }
    memcpy(prefix, z.entries[0].name, (size_t)(slash - z.entries[0].name) + 1);
    prefix[slash - z.entries[0].name + 1] = 0;
    snprintf(name, sizeof name, "%sdata.pkl", prefix);
    const relate_zip_entry *pkl = relate_zip_reader_find(&z, name);
    if (!pkl) {
        char list[200] = "";
        for (int k = 0; k < z.count && k < 5; k++)
            sb_add(list, sizeof list, "%s%.40s", k ? ", " : "", z.entries[k].name);
        st = ck_fail(c, err, RELATE_ERR_FORMAT,
                     "a zip archive but not a PyTorch checkpoint: no entry %.100s (entries: %s%s)", name, list,
                     z.count > 5 ? ", ..." : "");
        goto done;
    }
    for (int k = 0; k < z.count; k++)
        if (z.entries[k].method != 0 && strncmp(z.entries[k].name, prefix, strlen(prefix)) == 0) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT,
                         "entry '%.100s' is compressed (zip method %u); torch.save stores entries uncompressed: was "
                         "the file re-zipped? Use the file torch.save wrote",
                         z.entries[k].name, z.entries[k].method);
            goto done;
        }
    if (!relate_zip_entry_crc_ok(&z, pkl)) {
        st = ck_fail(c, err, RELATE_ERR_FORMAT, "the CRC of %.100s does not match: the file is corrupt", name);
        goto done;
    }
    snprintf(name, sizeof name, "%sbyteorder", prefix);
    const relate_zip_entry *bo = relate_zip_reader_find(&z, name);
    if (bo && !(bo->size == 6 && memcmp(c->buf + bo->data_offset, "little", 6) == 0)) {
        st = ck_fail(c, err, RELATE_ERR_FORMAT, "saved on a big-endian machine, which relate does not read");
        goto done;
    }
    snprintf(name, sizeof name, "%sversion", prefix);
    const relate_zip_entry *ver = relate_zip_reader_find(&z, name);
    if (!ver) {
        snprintf(name, sizeof name, "%s.data/version", prefix);
        ver = relate_zip_reader_find(&z, name);
    }
    if (ver) {
        const uint8_t *v = c->buf + ver->data_offset;
        bool digits = ver->size > 0 && ver->size < 20;
        for (uint64_t k = 0; digits && k < ver->size; k++)
            digits = (v[k] >= '0' && v[k] <= '9') || ((v[k] == '\n' || v[k] == '\r') && k > 0);
        if (!digits) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT, "its version record is not a number: corrupt");
            goto done;
        }
    }
    if ((st = load_pickle(c, c->buf + pkl->data_offset, (size_t)pkl->size, "data.pkl", err)))
        goto done;
    if ((st = collect_storages(c, err)))
        goto done;
    for (int k = 0; k < c->nstorages; k++) {
        ck_storage *s = &c->storages[k];
        snprintf(name, sizeof name, "%sdata/%.200s", prefix, s->key);
        const relate_zip_entry *e = relate_zip_reader_find(&z, name);
        uint64_t need = (uint64_t)s->numel * (uint64_t)DTYPES[s->dtype].size;
        if (!e) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT, "the tensor data record %.200s is missing: the archive is incomplete",
                         name);
            goto done;
        }
        if (e->size < need) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT,
                         "the tensor data record %.200s holds %llu bytes, its tensors need %llu: corrupt", name,
                         (unsigned long long)e->size, (unsigned long long)need);
            goto done;
        }
        if (!relate_zip_entry_crc_ok(&z, e)) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT, "the CRC of %.200s does not match: the file is corrupt", name);
            goto done;
        }
        s->data = c->buf + e->data_offset;
    }
    c->format = RELATE_CKPT_ZIP;
done:
    relate_zip_reader_free(&z);
    return st;
}

/* ------------------------------------------------------------------ legacy format */
static const uint8_t LEGACY_MAGIC[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

/* Length of the pickled magic number 0x1950a86a20f9469cfc6c at buf[0], or 0. It is wider than
 * 64 bits, so it is matched as bytes (PROTO, optional FRAME, LONG1 of 10 bytes, STOP). */
static size_t legacy_magic_len(const uint8_t *buf, size_t size)
{
    size_t p = 0;
    if (size >= 2 && buf[0] == 0x80)
        p = 2;
    if (p + 9 <= size && buf[p] == 0x95)
        p += 9;
    if (p + 13 > size || buf[p] != 0x8a || buf[p + 1] != 10 || memcmp(buf + p + 2, LEGACY_MAGIC, 10) != 0)
        return 0;
    p += 12;
    return buf[p] == '.' ? p + 1 : 0;
}

static relate_status open_legacy(relate_ckpt *c, size_t pos, relate_error *err)
{
    relate_pickle small;
    relate_error perr = {0};
    /* the protocol version, then the system information */
    if (relate_pickle_load(&small, c->buf + pos, c->size - pos, NULL, &perr) != RELATE_OK)
        return ck_fail(c, err, perr.code, "legacy format, protocol record: %s", perr.msg);
    bool ok = small.root->kind == RELATE_PK_INT && small.root->i == 1001;
    int64_t proto = small.root->kind == RELATE_PK_INT ? small.root->i : -1;
    pos += small.end;
    relate_pickle_free(&small);
    if (!ok)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "legacy format with protocol version %lld; relate reads 1001",
                       (long long)proto);
    if (relate_pickle_load(&small, c->buf + pos, c->size - pos, NULL, &perr) != RELATE_OK)
        return ck_fail(c, err, perr.code, "legacy format, system-information record: %s", perr.msg);
    bool little = true;
    const relate_pk_value *le = relate_pk_dict_get(small.root, "little_endian");
    if (le && le->kind == RELATE_PK_BOOL)
        little = le->i != 0;
    pos += small.end;
    relate_pickle_free(&small);
    if (!little)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "saved on a big-endian machine, which relate does not read");

    relate_status st = load_pickle(c, c->buf + pos, c->size - pos, "legacy format, object record", err);
    if (st)
        return st;
    pos += c->pk.end;
    if ((st = collect_storages(c, err)))
        return st;
    relate_pickle keys;
    if (relate_pickle_load(&keys, c->buf + pos, c->size - pos, NULL, &perr) != RELATE_OK)
        return ck_fail(c, err, perr.code, "legacy format, storage key list: %s", perr.msg);
    pos += keys.end;
    if (keys.root->kind != RELATE_PK_LIST) {
        relate_pickle_free(&keys);
        return ck_fail(c, err, RELATE_ERR_FORMAT, "legacy format: the storage key list is a %s", kind_of(keys.root));
    }
    for (int64_t k = 0; k < keys.root->count && !st; k++) {
        const relate_pk_value *key = keys.root->items[k];
        ck_storage *s = key->kind == RELATE_PK_STR ? find_storage(c, key->s) : NULL;
        if (!s) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT, "legacy format: the key list names a storage no tensor uses: corrupt");
            break;
        }
        if (c->size - pos < 8) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT,
                         "legacy format: the file ends before the data of storage %lld of %lld: truncated",
                         (long long)k + 1, (long long)keys.root->count);
            break;
        }
        uint64_t n = 0;
        for (int b = 7; b >= 0; b--)
            n = (n << 8) | c->buf[pos + (size_t)b];
        pos += 8;
        uint64_t bytes = n * (uint64_t)DTYPES[s->dtype].size;
        if (n != (uint64_t)s->numel) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT,
                         "legacy format: storage '%.40s' holds %llu elements, the pickle says %lld: corrupt", s->key,
                         (unsigned long long)n, (long long)s->numel);
            break;
        }
        if (bytes > c->size - pos) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT,
                         "legacy format: the data of storage %lld of %lld (%llu bytes) runs past the end of the "
                         "file: truncated",
                         (long long)k + 1, (long long)keys.root->count, (unsigned long long)bytes);
            break;
        }
        s->data = c->buf + pos;
        pos += (size_t)bytes;
    }
    relate_pickle_free(&keys);
    for (int k = 0; k < c->nstorages && !st; k++)
        if (!c->storages[k].data)
            st = ck_fail(c, err, RELATE_ERR_FORMAT, "legacy format: the data of storage '%.40s' is missing: truncated or corrupt",
                         c->storages[k].key);
    if (!st)
        c->format = RELATE_CKPT_LEGACY;
    return st;
}

/* ------------------------------------------------------------------ foreign files */
static relate_status foreign(const relate_ckpt *c, relate_error *err)
{
    const uint8_t *b = c->buf;
    size_t n = c->size;
    if (n >= 8 && memcmp(b, "PYTORCH1", 8) == 0)
        return ck_fail(c, err, RELATE_ERR_FORMAT,
                       "an archive of PyTorch's preview release (PYTORCH1), which relate cannot read: re-save it "
                       "with a current PyTorch");
    if (n >= 10 && b[8] == '{') {
        uint64_t hl = 0;
        for (int k = 7; k >= 0; k--)
            hl = (hl << 8) | b[k];
        if (hl >= 2 && hl <= n - 8)
            return ck_fail(c, err, RELATE_ERR_FORMAT,
                           "a safetensors file, not a PyTorch checkpoint: it holds tensors only (relate writes "
                           "those with `relate export`); give the torch.save checkpoint instead");
    }
    if (n >= 262 && memcmp(b + 257, "ustar", 5) == 0)
        return ck_fail(c, err, RELATE_ERR_FORMAT,
                       "a tar archive: PyTorch < 0.4 wrote tar checkpoints, which relate cannot read; extract it "
                       "if it wraps a checkpoint, or re-save with torch.save in PyTorch >= 1.0");
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "gzip-compressed, not a checkpoint itself: decompress it first");
    if (b[0] == 0x80)
        return ck_fail(c, err, RELATE_ERR_FORMAT,
                       "a Python pickle without PyTorch's magic number, not a torch.save checkpoint");
    size_t probe = n < 512 ? n : 512;
    bool text = true;
    for (size_t k = 0; k < probe && text; k++)
        text = b[k] >= 0x20 || b[k] == '\n' || b[k] == '\r' || b[k] == '\t';
    if (text) {
        char head[41];
        size_t m = 0;
        for (size_t k = 0; k < probe && m < 40; k++)
            head[m++] = (b[k] >= 0x20 && b[k] < 0x7f) ? (char)b[k] : ' ';
        head[m] = 0;
        return ck_fail(c, err, RELATE_ERR_FORMAT, "a text file, not a PyTorch checkpoint (it starts \"%s\")%s", head,
                       b[0] == '<' ? ": an HTML page from a failed download?" : "");
    }
    char hex[40] = "";
    for (size_t k = 0; k < n && k < 8; k++)
        sb_add(hex, sizeof hex, "%s%02x", k ? " " : "", b[k]);
    return ck_fail(c, err, RELATE_ERR_FORMAT,
                   "not a PyTorch checkpoint (it starts with bytes %s); relate reads torch.save files, zip or legacy "
                   "format",
                   hex);
}

/* ------------------------------------------------------------------ open / close */
static relate_status read_file(relate_ckpt *c, relate_error *err)
{
    FILE *fp = fopen(c->path, "rb");
    if (!fp)
        return ck_fail(c, err, RELATE_ERR_IO, "cannot open: %s", strerror(errno));
    struct stat sb;
    relate_status st = RELATE_OK;
    if (fstat(fileno(fp), &sb) != 0)
        st = ck_fail(c, err, RELATE_ERR_IO, "cannot stat: %s", strerror(errno));
    else if (S_ISDIR(sb.st_mode))
        st = ck_fail(c, err, RELATE_ERR_IO, "is a folder, not a checkpoint file");
    else if (sb.st_size == 0)
        st = ck_fail(c, err, RELATE_ERR_FORMAT, "the file is empty (0 bytes): an interrupted write or copy?");
    else if (!(c->buf = malloc((size_t)sb.st_size)))
        st = ck_fail(c, err, RELATE_ERR_NOMEM, "out of memory for %lld bytes", (long long)sb.st_size);
    else if (fread(c->buf, 1, (size_t)sb.st_size, fp) != (size_t)sb.st_size)
        st = ck_fail(c, err, RELATE_ERR_IO, "reading failed: %s", ferror(fp) ? strerror(errno) : "the file shrank");
    else
        c->size = (size_t)sb.st_size;
    fclose(fp);
    return st;
}

/* Top-level keys for messages, and whether the object is itself a state dict (an OrderedDict,
 * or a dict whose values are all tensors). */
static relate_status describe(relate_ckpt *c)
{
    const relate_pk_value *root = c->pk.root, *d = as_dict(root);
    c->bare = false;
    if (d) {
        bool all_tensors = true;
        for (int64_t k = 0; k < d->count && all_tensors; k++)
            all_tensors = is_tensor(d->items[2 * k + 1]);
        c->bare = d->count > 0 ? all_tensors : is_odict(root);
    }
    char list[400] = "";
    for (int64_t k = 0; d && !c->bare && k < d->count; k++) {
        const relate_pk_value *key = d->items[2 * k];
        if (strlen(list) > 300) {
            sb_add(list, sizeof list, ", ...");
            break;
        }
        if (is_text(key))
            sb_add(list, sizeof list, "%s%.*s", k ? ", " : "", (int)(key->len > 60 ? 60 : key->len), key->s);
        else if (key->kind == RELATE_PK_INT)
            sb_add(list, sizeof list, "%s%lld", k ? ", " : "", (long long)key->i);
        else
            sb_add(list, sizeof list, "%s<%s>", k ? ", " : "", kind_of(key));
    }
    c->key_list = malloc(strlen(list) + 1);
    if (!c->key_list)
        return RELATE_ERR_NOMEM;
    strcpy(c->key_list, list);
    return RELATE_OK;
}

relate_status relate_ckpt_open(relate_ckpt **out, const char *path, relate_error *err)
{
    *out = NULL;
    if (!path)
        return relate_error_set(err, RELATE_ERR_ARG, "checkpoint: no path given");
    relate_ckpt *c = calloc(1, sizeof *c);
    if (!c || !(c->path = malloc(strlen(path) + 1))) {
        free(c);
        return relate_error_set(err, RELATE_ERR_NOMEM, "checkpoint: out of memory");
    }
    strcpy(c->path, path);
    relate_status st = read_file(c, err);
    if (!st) {
        size_t magic = legacy_magic_len(c->buf, c->size);
        if (c->size >= 4 && (memcmp(c->buf, "PK\3\4", 4) == 0 || memcmp(c->buf, "PK\5\6", 4) == 0))
            st = open_zip(c, err);
        else if (magic)
            st = open_legacy(c, magic, err);
        else
            st = foreign(c, err);
    }
    if (!st && describe(c))
        st = ck_fail(c, err, RELATE_ERR_NOMEM, "out of memory");
    if (st) {
        relate_ckpt_close(c);
        return st;
    }
    *out = c;
    return RELATE_OK;
}

void relate_ckpt_close(relate_ckpt *c)
{
    if (!c)
        return;
    relate_pickle_free(&c->pk);
    free(c->storages);
    free(c->key_list);
    free(c->buf);
    free(c->path);
    free(c);
}

relate_ckpt_format relate_ckpt_get_format(const relate_ckpt *c) { return c->format; }

bool relate_ckpt_has(const relate_ckpt *c, const char *key)
{
    return c && key && relate_pk_dict_get(as_dict(c->pk.root), key) != NULL;
}

const char *relate_ckpt_key_list(const relate_ckpt *c) { return c && c->key_list ? c->key_list : ""; }

/* The value under a top-level key (NULL key: the whole object). */
static relate_status top_entry(const relate_ckpt *c, const char *key, const relate_pk_value **out, relate_error *err)
{
    *out = NULL;
    if (!key) {
        *out = c->pk.root;
        return RELATE_OK;
    }
    const relate_pk_value *d = as_dict(c->pk.root);
    if (!d)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "holds a %s, not a dictionary with an entry '%.60s'",
                       kind_of(c->pk.root), key);
    *out = relate_pk_dict_get(d, key);
    if (*out)
        return RELATE_OK;
    if (c->bare)
        return ck_fail(c, err, RELATE_ERR_FORMAT,
                       "holds a bare state dict (as torch.save(model.state_dict()) writes), not a dictionary with "
                       "an entry '%.60s'",
                       key);
    return ck_fail(c, err, RELATE_ERR_FORMAT, "has no entry '%.60s' (its entries: %.300s)", key, c->key_list);
}

/* ------------------------------------------------------------------ tensors */
typedef struct ck_tensor {
    ck_dtype dtype;
    int ndim;
    int64_t shape[CK_MAX_DIMS], stride[CK_MAX_DIMS];
    int64_t offset, numel;
    const uint8_t *data; /* the storage (or legacy view) */
} ck_tensor;

static relate_status decode_tensor(const relate_ckpt *c, const relate_pk_value *v, const char *what, ck_tensor *t,
                                   relate_error *err)
{
    memset(t, 0, sizeof *t);
    if (relate_pk_is_call_of(v, "torch._utils", "_rebuild_parameter")) {
        if (v->args->count < 1)
            return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.80s': a parameter without its data", what);
        v = v->args->items[0];
    }
    if (!relate_pk_is_call_of(v, "torch._utils", "_rebuild_tensor_v2"))
        return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.80s' is a %s, not a tensor", what, kind_of(v));
    const relate_pk_value *a = v->args;
    if (a->count < 4 || a->items[0]->kind != RELATE_PK_PERSID || a->items[1]->kind != RELATE_PK_INT ||
        a->items[2]->kind != RELATE_PK_TUPLE || a->items[3]->kind != RELATE_PK_TUPLE ||
        a->items[2]->count != a->items[3]->count)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.80s': malformed tensor record (storage, offset, size, stride)",
                       what);
    ck_pid pid;
    relate_status st = parse_pid(c, a->items[0]->pid, &pid, err);
    if (st)
        return st;
    const ck_storage *s = find_storage(c, pid.key);
    if (!s || !s->data)
        return ck_fail(c, err, RELATE_ERR_INTERNAL, "'%.80s': storage not located", what);
    int64_t avail = s->numel;
    t->dtype = s->dtype;
    t->data = s->data;
    if (pid.view) {
        t->data += pid.view_offset * DTYPES[s->dtype].size;
        avail = pid.view_numel;
    }
    const relate_pk_value *size = a->items[2], *stride = a->items[3];
    if (size->count > CK_MAX_DIMS)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.80s' has %lld dimensions; at most %d are supported", what,
                       (long long)size->count, CK_MAX_DIMS);
    t->ndim = (int)size->count;
    t->offset = a->items[1]->i;
    t->numel = 1;
    bool bad = t->offset < 0;
    for (int d = 0; d < t->ndim && !bad; d++) {
        const relate_pk_value *n = size->items[d], *sd = stride->items[d];
        /* every (size - 1) * stride stays below INT64_MAX / 8, so the sums below cannot overflow */
        bad = n->kind != RELATE_PK_INT || sd->kind != RELATE_PK_INT || n->i < 0 || sd->i < 0 ||
              n->i > INT32_MAX || sd->i > INT64_MAX / 8 / (n->i > 0 ? n->i : 1) ||
              (n->i > 0 && t->numel > INT64_MAX / 8 / n->i);
        if (bad)
            break;
        t->shape[d] = n->i;
        t->stride[d] = sd->i;
        t->numel *= n->i;
    }
    if (bad)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.80s': malformed tensor sizes or strides", what);
    /* Zero strides repeat stored elements, so a tiny file can describe a tensor of any size and
     * make relate_ckpt_get_tensor allocate it. A stored tensor has at least one byte of the file
     * per element; state dicts hold no broadcast views, so 16 Mi elements beyond that is slack. */
    if ((uint64_t)t->numel > (uint64_t)c->size + (1u << 24))
        return ck_fail(c, err, RELATE_ERR_FORMAT,
                       "'%.80s' claims %lld elements, more than its %zu-byte file can hold (zero strides): corrupt "
                       "or hostile",
                       what, (long long)t->numel, c->size);
    if (t->numel == 0)
        return RELATE_OK;
    int64_t last = t->offset; /* the highest element index the view touches */
    for (int d = 0; d < t->ndim && last < avail; d++)
        last += (t->shape[d] - 1) * t->stride[d];
    if (last >= avail)
        return ck_fail(c, err, RELATE_ERR_FORMAT,
                       "'%.80s' reaches past the end of its storage of %lld elements (offset %lld): corrupt", what,
                       (long long)avail, (long long)t->offset);
    return RELATE_OK;
}

static bool is_contiguous(const ck_tensor *t)
{
    int64_t run = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != run)
            return false;
        run *= t->shape[d];
    }
    return true;
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: renormalise */
        exp = 113;
        while (!(man & 0x400)) {
            man <<= 1;
            exp--;
        }
        bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static double elem_f(const uint8_t *p, ck_dtype dt)
{
    switch (dt) {
    case DT_F32: { float f; memcpy(&f, p, 4); return f; }
    case DT_F64: { double f; memcpy(&f, p, 8); return f; }
    case DT_F16: return half_to_float((uint16_t)(p[0] | p[1] << 8));
    case DT_BF16: {
        uint32_t bits = (uint32_t)(p[0] | p[1] << 8) << 16;
        float f;
        memcpy(&f, &bits, 4);
        return f;
    }
    default: return 0;
    }
}

static int64_t elem_i(const uint8_t *p, ck_dtype dt)
{
    switch (dt) {
    case DT_I64: { int64_t v; memcpy(&v, p, 8); return v; }
    case DT_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case DT_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case DT_I8: return (int8_t)p[0];
    case DT_U8: case DT_BOOL: return p[0];
    default: return 0;
    }
}

/* Copies a (validated) tensor into dst as float32 or int64, gathering views element by element. */
static void gather(const ck_tensor *t, void *dst, bool to_int)
{
    int es = DTYPES[t->dtype].size;
    if (t->numel == 0)
        return;
    if (is_contiguous(t) && t->dtype == (to_int ? DT_I64 : DT_F32)) {
        memcpy(dst, t->data + t->offset * es, (size_t)t->numel * (size_t)es);
        return;
    }
    int64_t idx[CK_MAX_DIMS] = {0}, off = t->offset;
    for (int64_t n = 0; n < t->numel; n++) {
        const uint8_t *p = t->data + off * es;
        if (to_int)
            ((int64_t *)dst)[n] = DTYPES[t->dtype].is_int ? elem_i(p, t->dtype) : (int64_t)elem_f(p, t->dtype);
        else
            ((float *)dst)[n] = DTYPES[t->dtype].is_int ? (float)elem_i(p, t->dtype) : (float)elem_f(p, t->dtype);
        for (int d = t->ndim - 1; d >= 0; d--) {
            off += t->stride[d];
            if (++idx[d] < t->shape[d])
                break;
            off -= t->stride[d] * t->shape[d];
            idx[d] = 0;
        }
    }
}

/* The conversions loading accepts: float32/float64/float16 to float32, int64/int32 to int64. */
static bool loadable(ck_dtype dt, bool to_int)
{
    return to_int ? (dt == DT_I64 || dt == DT_I32) : (dt == DT_F32 || dt == DT_F64 || dt == DT_F16);
}

static bool same_shape(const ck_tensor *t, int ndim, const int64_t *shape)
{
    if (t->ndim != ndim)
        return false;
    for (int d = 0; d < ndim; d++)
        if (t->shape[d] != shape[d])
            return false;
    return true;
}

/* ------------------------------------------------------------------ state dicts */
/* BatchNorm's rule (version < 2 or no _metadata): a missing num_batches_tracked becomes 0. */
static bool tolerate_missing(const relate_pk_value *sd, const relate_param *e)
{
    size_t n = strlen(e->name);
    const char *suffix = "num_batches_tracked";
    size_t sn = strlen(suffix);
    if (e->kind != RELATE_BUFFER_I64 || n < sn || strcmp(e->name + n - sn, suffix) != 0)
        return false;
    const relate_pk_value *meta = sd && sd->kind == RELATE_PK_CALL ? relate_pk_dict_get(sd->state, "_metadata") : NULL;
    char prefix[256];
    size_t pn = n - sn > 0 ? n - sn - 1 : 0; /* without the dot */
    if (pn >= sizeof prefix)
        return false;
    memcpy(prefix, e->name, pn);
    prefix[pn] = 0;
    const relate_pk_value *mod = meta ? relate_pk_dict_get(meta, prefix) : NULL;
    const relate_pk_value *ver = mod ? relate_pk_dict_get(mod, "version") : NULL;
    return !ver || ver->kind != RELATE_PK_INT || ver->i < 2;
}

relate_status relate_ckpt_load_state_dict(const relate_ckpt *c, const char *key, relate_params *p, relate_error *err)
{
    if (!c || !p || !p->finalized)
        return relate_error_set(err, RELATE_ERR_ARG, "checkpoint: load_state_dict needs an open file and a finalized store");
    const relate_pk_value *sd;
    relate_status st = top_entry(c, key, &sd, err);
    if (st)
        return st;
    const char *label = key ? key : "state dict";
    const relate_pk_value *d = as_dict(sd);
    if (!d)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.60s' is a %s, not a state dict", label, kind_of(sd));
    const relate_pk_value **found = calloc((size_t)(p->count ? p->count : 1), sizeof *found);
    ck_tensor *tensors = calloc((size_t)(p->count ? p->count : 1), sizeof *tensors);
    if (!found || !tensors) {
        free(found);
        free(tensors);
        return ck_fail(c, err, RELATE_ERR_NOMEM, "out of memory");
    }
    char missing[200] = "", unexpected[200] = "", shapes[300] = "";
    int nmissing = 0, nunexpected = 0, nshapes = 0;
    bool module_prefix = d->count > 0;
    for (int i = 0; i < p->count && !st; i++) {
        relate_param *e = p->items[i];
        found[i] = relate_pk_dict_get(d, e->name);
        if (!found[i]) {
            if (!tolerate_missing(sd, e) && nmissing++ < 4)
                sb_add(missing, sizeof missing, "%s%.60s", nmissing > 1 ? ", " : "", e->name);
            continue;
        }
        char what[160];
        snprintf(what, sizeof what, "%s/%s", label, e->name);
        if ((st = decode_tensor(c, found[i], what, &tensors[i], err)))
            break;
        bool to_int = e->kind == RELATE_BUFFER_I64;
        char a[64], b[64];
        if (!loadable(tensors[i].dtype, to_int)) {
            if (nshapes++ < 3)
                sb_add(shapes, sizeof shapes, "%s%.60s is %s in the file but %s in the model", nshapes > 1 ? "; " : "",
                       e->name, DTYPES[tensors[i].dtype].name, to_int ? "int64" : "float32");
        } else if (!same_shape(&tensors[i], e->ndim, e->shape)) {
            if (nshapes++ < 3)
                sb_add(shapes, sizeof shapes, "%s%.60s is %s in the file but %s in the model", nshapes > 1 ? "; " : "",
                       e->name, shape_str(tensors[i].ndim, tensors[i].shape, a, sizeof a),
                       shape_str(e->ndim, e->shape, b, sizeof b));
        }
    }
    for (int64_t k = 0; k < d->count && !st; k++) {
        const relate_pk_value *kv = d->items[2 * k];
        char name[128];
        if (kv->kind == RELATE_PK_STR)
            snprintf(name, sizeof name, "%s", kv->s);
        else
            snprintf(name, sizeof name, "<%s key>", kind_of(kv));
        module_prefix = module_prefix && strncmp(name, "module.", 7) == 0;
        if (kv->kind == RELATE_PK_STR && relate_params_find(p, kv->s))
            continue;
        if (nunexpected++ < 4)
            sb_add(unexpected, sizeof unexpected, "%s%.60s", nunexpected > 1 ? ", " : "", name);
    }
    if (!st && (nmissing || nunexpected || nshapes)) {
        char msg[512] = "";
        sb_add(msg, sizeof msg, "'%.40s' does not fit the model", label);
        if (nmissing)
            sb_add(msg, sizeof msg, "; %d missing: %s%s", nmissing, missing, nmissing > 4 ? ", ..." : "");
        if (nunexpected)
            sb_add(msg, sizeof msg, "; %d unexpected: %s%s", nunexpected, unexpected, nunexpected > 4 ? ", ..." : "");
        if (nshapes)
            sb_add(msg, sizeof msg, "; %s%s", shapes, nshapes > 3 ? "; ..." : "");
        sb_add(msg, sizeof msg, "%s", module_prefix ? ". Its keys start with 'module.' (saved from nn.DataParallel): strip that prefix"
                                                   : ". Was it saved for another backbone or method?");
        st = ck_fail(c, err, (nmissing || nunexpected) ? RELATE_ERR_FORMAT : RELATE_ERR_SHAPE, "%s", msg);
    }
    if (!st) {
        for (int i = 0; i < p->count; i++) {
            relate_param *e = p->items[i];
            bool to_int = e->kind == RELATE_BUFFER_I64;
            if (found[i])
                gather(&tensors[i], to_int ? (void *)e->i64 : (void *)e->data, to_int);
            else if (to_int)
                memset(e->i64, 0, (size_t)e->numel * sizeof *e->i64);
        }
    }
    free(found);
    free(tensors);
    return st;
}

/* ------------------------------------------------------------------ optimizers */
typedef struct ck_optim {
    const relate_pk_value *state;  /* dict {id: {...}} */
    const relate_pk_value *groups; /* list of dicts */
    int64_t *ids;                  /* saved ids, flattened across groups: position = relate's index */
    const relate_pk_value **entry; /* per parameter: its state dict, or NULL */
} ck_optim;

static void optim_free(ck_optim *o)
{
    free(o->ids);
    free(o->entry);
}

static relate_status optim_parse(const relate_ckpt *c, const char *key, const char *kind, const relate_param_group *groups,
                                 int ngroups, int nparams, ck_optim *o, relate_error *err)
{
    memset(o, 0, sizeof *o);
    const relate_pk_value *sd;
    relate_status st = top_entry(c, key, &sd, err);
    if (st)
        return st;
    const char *label = key ? key : "optimizer";
    o->state = as_dict(relate_pk_dict_get(as_dict(sd), "state"));
    o->groups = relate_pk_dict_get(as_dict(sd), "param_groups");
    if (!o->state || !o->groups || (o->groups->kind != RELATE_PK_LIST && o->groups->kind != RELATE_PK_TUPLE))
        return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.60s' is not an optimizer state dict ({'state', 'param_groups'})",
                       label);
    if (o->groups->count != ngroups)
        return ck_fail(c, err, RELATE_ERR_FORMAT,
                       "'%.60s' has %lld parameter groups, this %s has %d: was it saved by another method or stage?",
                       label, (long long)o->groups->count, kind, ngroups);
    o->ids = calloc((size_t)nparams, sizeof *o->ids);
    o->entry = calloc((size_t)nparams, sizeof *o->entry);
    if (!o->ids || !o->entry)
        return ck_fail(c, err, RELATE_ERR_NOMEM, "out of memory");
    int k = 0;
    for (int g = 0; g < ngroups; g++) {
        const relate_pk_value *grp = as_dict(o->groups->items[g]);
        const relate_pk_value *ids = relate_pk_dict_get(grp, "params");
        if (!ids || (ids->kind != RELATE_PK_LIST && ids->kind != RELATE_PK_TUPLE))
            return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.60s': parameter group %d has no 'params' list", label, g);
        if (ids->count != groups[g].count)
            return ck_fail(c, err, RELATE_ERR_FORMAT,
                           "'%.60s': parameter group %d has %lld parameters, this %s's has %d: saved for another "
                           "backbone or method?",
                           label, g, (long long)ids->count, kind, groups[g].count);
        for (int64_t j = 0; j < ids->count; j++, k++) {
            if (ids->items[j]->kind != RELATE_PK_INT)
                return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.60s': a parameter id is a %s, not an int", label,
                               kind_of(ids->items[j]));
            o->ids[k] = ids->items[j]->i;
            for (int q = 0; q < k; q++)
                if (o->ids[q] == o->ids[k])
                    return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.60s': parameter id %lld is listed twice", label,
                                   (long long)o->ids[k]);
        }
    }
    for (int64_t s = 0; s < o->state->count; s++) {
        const relate_pk_value *id = o->state->items[2 * s], *val = o->state->items[2 * s + 1];
        int q = -1;
        for (int j = 0; id->kind == RELATE_PK_INT && j < nparams && q < 0; j++)
            if (o->ids[j] == id->i)
                q = j;
        if (q < 0)
            return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.60s': state for a parameter id that no group lists", label);
        if (!as_dict(val))
            return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.60s': the state of parameter %d is a %s, not a dict", label, q,
                           kind_of(val));
        o->entry[q] = as_dict(val);
    }
    return RELATE_OK;
}

/* One group's number, required. */
static relate_status group_number(const relate_ckpt *c, const char *label, const ck_optim *o, int g, const char *name,
                                  double *out, relate_error *err)
{
    if (!as_number(relate_pk_dict_get(as_dict(o->groups->items[g]), name), out) || !isfinite(*out))
        return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.60s': parameter group %d has no number '%s'", label, g, name);
    return RELATE_OK;
}

/* An optional flag that relate supports only as False (amsgrad, maximize). */
static relate_status group_false(const relate_ckpt *c, const char *label, const ck_optim *o, int g, const char *name,
                                 relate_error *err)
{
    bool on = false;
    const relate_pk_value *v = relate_pk_dict_get(as_dict(o->groups->items[g]), name);
    if (v && v->kind != RELATE_PK_NONE && as_flag(v, &on) && on)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.60s': parameter group %d sets %s=True, which relate does not implement",
                       label, g, name);
    return RELATE_OK;
}

/* A state tensor with the parameter's shape, as float. */
static relate_status state_tensor(const relate_ckpt *c, const char *label, const relate_pk_value *entry, const char *name,
                                  int q, const relate_param *prm, ck_tensor *t, relate_error *err)
{
    char what[160];
    snprintf(what, sizeof what, "%s/state/%d/%s", label, q, name);
    const relate_pk_value *v = relate_pk_dict_get(entry, name);
    if (!v)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.100s' is missing", what);
    relate_status st = decode_tensor(c, v, what, t, err);
    if (st)
        return st;
    char a[64], b[64];
    if (!loadable(t->dtype, false))
        return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.100s' is %s, not a floating-point tensor", what,
                       DTYPES[t->dtype].name);
    if (!same_shape(t, prm->ndim, prm->shape))
        return ck_fail(c, err, RELATE_ERR_SHAPE, "'%.100s' is %s but parameter '%.60s' is %s: saved for another model?",
                       what, shape_str(t->ndim, t->shape, a, sizeof a), prm->name,
                       shape_str(prm->ndim, prm->shape, b, sizeof b));
    return RELATE_OK;
}

static relate_param *param_at(const relate_param_group *groups, int ngroups, int k)
{
    for (int g = 0; g < ngroups; g++) {
        if (k < groups[g].count)
            return groups[g].params[k];
        k -= groups[g].count;
    }
    return NULL;
}

/* Adam's step: an int (PyTorch <= 1.11) or a one-element tensor (1.12+). */
static relate_status read_step(const relate_ckpt *c, const char *label, const relate_pk_value *entry, int q, int64_t *out,
                               relate_error *err)
{
    const relate_pk_value *v = relate_pk_dict_get(entry, "step");
    double x = -1;
    if (v && v->kind == RELATE_PK_INT) {
        x = (double)v->i;
    } else if (v && v->kind == RELATE_PK_FLOAT) {
        x = v->f;
    } else if (v && is_tensor(v)) {
        char what[120];
        snprintf(what, sizeof what, "%s/state/%d/step", label, q);
        ck_tensor t;
        relate_status st = decode_tensor(c, v, what, &t, err);
        if (st)
            return st;
        if (t.numel != 1)
            return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.100s' has %lld elements, not one", what, (long long)t.numel);
        const uint8_t *p = t.data + t.offset * DTYPES[t.dtype].size;
        x = DTYPES[t.dtype].is_int ? (double)elem_i(p, t.dtype) : elem_f(p, t.dtype);
    } else {
        return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.60s': the state of parameter %d has no 'step'", label, q);
    }
    if (!(x >= 0 && x <= 9007199254740992.0) || x != floor(x))
        return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.60s': the step of parameter %d is %g, not a count", label, q, x);
    *out = (int64_t)x;
    return RELATE_OK;
}

relate_status relate_ckpt_load_adam(const relate_ckpt *c, const char *key, relate_adam *opt, relate_error *err)
{
    if (!c || !opt || !opt->state)
        return relate_error_set(err, RELATE_ERR_ARG, "checkpoint: load_adam needs an open file and an initialised Adam");
    const char *label = key ? key : "optimizer";
    ck_optim o;
    int n = opt->nparams;
    relate_status st = optim_parse(c, key, "Adam", opt->groups, opt->ngroups, n, &o, err);
    double *lr = calloc((size_t)opt->ngroups, sizeof *lr), *wd = calloc((size_t)opt->ngroups, sizeof *wd);
    int64_t *steps = calloc((size_t)n, sizeof *steps);
    ck_tensor *m = calloc((size_t)n, sizeof *m), *v = calloc((size_t)n, sizeof *v);
    float **new_m = calloc((size_t)n, sizeof *new_m), **new_v = calloc((size_t)n, sizeof *new_v);
    if (!st && (!lr || !wd || !steps || !m || !v || !new_m || !new_v))
        st = ck_fail(c, err, RELATE_ERR_NOMEM, "out of memory");
    double b1 = 0, b2 = 0, eps = 0;
    for (int g = 0; !st && g < opt->ngroups; g++) {
        double gb1 = 0, gb2 = 0, geps = 0;
        const relate_pk_value *betas = relate_pk_dict_get(as_dict(o.groups->items[g]), "betas");
        if ((st = group_number(c, label, &o, g, "lr", &lr[g], err)) ||
            (st = group_number(c, label, &o, g, "weight_decay", &wd[g], err)) ||
            (st = group_number(c, label, &o, g, "eps", &geps, err)) || (st = group_false(c, label, &o, g, "amsgrad", err)) ||
            (st = group_false(c, label, &o, g, "maximize", err)))
            break;
        if (!betas || (betas->kind != RELATE_PK_TUPLE && betas->kind != RELATE_PK_LIST) || betas->count != 2 ||
            !as_number(betas->items[0], &gb1) || !as_number(betas->items[1], &gb2)) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT, "'%.60s': parameter group %d has no 'betas' pair: not an Adam state dict?",
                         label, g);
            break;
        }
        if (!(lr[g] >= 0 && wd[g] >= 0 && geps >= 0 && gb1 >= 0 && gb1 < 1 && gb2 >= 0 && gb2 < 1)) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT, "'%.60s': parameter group %d has invalid hyper-parameters", label, g);
            break;
        }
        if (g == 0) {
            b1 = gb1, b2 = gb2, eps = geps;
        } else if (gb1 != b1 || gb2 != b2 || geps != eps) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT,
                         "'%.60s': its groups use different betas or eps; relate's Adam has one setting for all", label);
        }
    }
    for (int q = 0; !st && q < n; q++) {
        const relate_pk_value *e = o.entry[q];
        if (!e)
            continue;
        relate_param *prm = param_at(opt->groups, opt->ngroups, q);
        if ((st = read_step(c, label, e, q, &steps[q], err)) ||
            (st = state_tensor(c, label, e, "exp_avg", q, prm, &m[q], err)) ||
            (st = state_tensor(c, label, e, "exp_avg_sq", q, prm, &v[q], err)))
            break;
        if (steps[q] > 0 && !opt->state[q].exp_avg) {
            size_t bytes = (size_t)(prm->numel ? prm->numel : 1) * sizeof(float);
            if (!(new_m[q] = malloc(bytes)) || !(new_v[q] = malloc(bytes)))
                st = ck_fail(c, err, RELATE_ERR_NOMEM, "out of memory for the Adam state");
        }
    }
    if (!st) {
        float *reserve = relate_optim_reserve(opt->state, opt->nparams, sizeof *opt->state);
        size_t floats = relate_optim_reserve_floats(opt->groups, opt->ngroups, 2);
        for (int q = 0; q < n; q++) {
            relate_adam_state *s = &opt->state[q];
            if (o.entry[q] && steps[q] > 0) {
                if (!s->exp_avg) {
                    s->exp_avg = new_m[q];
                    s->exp_avg_sq = new_v[q];
                    new_m[q] = new_v[q] = NULL;
                }
                gather(&m[q], s->exp_avg, false);
                gather(&v[q], s->exp_avg_sq, false);
                s->step = steps[q];
            } else {
                relate_optim_free_tensor(s->exp_avg, reserve, floats);
                relate_optim_free_tensor(s->exp_avg_sq, reserve, floats);
                s->exp_avg = s->exp_avg_sq = NULL;
                s->step = 0;
            }
        }
        for (int g = 0; g < opt->ngroups; g++) {
            opt->groups[g].lr = lr[g];
            opt->groups[g].weight_decay = wd[g];
        }
        opt->beta1 = b1;
        opt->beta2 = b2;
        opt->eps = eps;
    }
    for (int q = 0; new_m && q < n; q++) {
        free(new_m[q]);
        free(new_v[q]);
    }
    free(new_m);
    free(new_v);
    free(m);
    free(v);
    free(steps);
    free(lr);
    free(wd);
    optim_free(&o);
    return st;
}

relate_status relate_ckpt_load_sgd(const relate_ckpt *c, const char *key, relate_sgd *opt, relate_error *err)
{
    if (!c || !opt || !opt->groups)
        return relate_error_set(err, RELATE_ERR_ARG, "checkpoint: load_sgd needs an open file and an initialised SGD");
    const char *label = key ? key : "optimizer";
    ck_optim o;
    int n = opt->nparams;
    relate_status st = optim_parse(c, key, "SGD", opt->groups, opt->ngroups, n, &o, err);
    double *lr = calloc((size_t)opt->ngroups, sizeof *lr), *wd = calloc((size_t)opt->ngroups, sizeof *wd);
    ck_tensor *buf = calloc((size_t)n, sizeof *buf);
    bool *has = calloc((size_t)n, sizeof *has);
    float **fresh = calloc((size_t)n, sizeof *fresh);
    if (!st && (!lr || !wd || !buf || !has || !fresh))
        st = ck_fail(c, err, RELATE_ERR_NOMEM, "out of memory");
    double mom = 0, damp = 0;
    bool nesterov = false;
    for (int g = 0; !st && g < opt->ngroups; g++) {
        double gm = 0, gd = 0;
        bool gn = false;
        if ((st = group_number(c, label, &o, g, "lr", &lr[g], err)) ||
            (st = group_number(c, label, &o, g, "weight_decay", &wd[g], err)) ||
            (st = group_number(c, label, &o, g, "momentum", &gm, err)) ||
            (st = group_number(c, label, &o, g, "dampening", &gd, err)) || (st = group_false(c, label, &o, g, "maximize", err)))
            break;
        if (!as_flag(relate_pk_dict_get(as_dict(o.groups->items[g]), "nesterov"), &gn)) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT, "'%.60s': parameter group %d has no 'nesterov' flag: not an SGD state dict?",
                         label, g);
            break;
        }
        if (!(lr[g] >= 0 && wd[g] >= 0 && gm >= 0) || (gn && (gm <= 0 || gd != 0))) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT, "'%.60s': parameter group %d has invalid hyper-parameters", label, g);
            break;
        }
        if (g == 0) {
            mom = gm, damp = gd, nesterov = gn;
        } else if (gm != mom || gd != damp || gn != nesterov) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT,
                         "'%.60s': its groups use different momentum settings; relate's SGD has one for all", label);
        }
    }
    if (!st && (mom != 0) != (opt->momentum != 0))
        st = ck_fail(c, err, RELATE_ERR_ARG,
                     "'%.60s' was saved with momentum %g but this SGD was built with momentum %g: build it with the "
                     "file's momentum",
                     label, mom, opt->momentum);
    for (int q = 0; !st && q < n; q++) {
        const relate_pk_value *e = o.entry[q];
        const relate_pk_value *mb = e ? relate_pk_dict_get(e, "momentum_buffer") : NULL;
        if (!mb || mb->kind == RELATE_PK_NONE)
            continue;
        relate_param *prm = param_at(opt->groups, opt->ngroups, q);
        if ((st = state_tensor(c, label, e, "momentum_buffer", q, prm, &buf[q], err)))
            break;
        has[q] = true;
        if (!opt->state[q].momentum_buffer &&
            !(fresh[q] = malloc((size_t)(prm->numel ? prm->numel : 1) * sizeof(float))))
            st = ck_fail(c, err, RELATE_ERR_NOMEM, "out of memory for the SGD state");
    }
    if (!st) {
        float *reserve = relate_optim_reserve(opt->state, opt->nparams, sizeof *opt->state);
        size_t floats = relate_optim_reserve_floats(opt->groups, opt->ngroups, opt->momentum != 0.0);
        for (int q = 0; q < n; q++) {
            relate_sgd_state *s = &opt->state[q];
            if (has[q]) {
                if (!s->momentum_buffer) {
                    s->momentum_buffer = fresh[q];
                    fresh[q] = NULL;
                }
                gather(&buf[q], s->momentum_buffer, false);
            } else {
                relate_optim_free_tensor(s->momentum_buffer, reserve, floats);
                s->momentum_buffer = NULL;
            }
        }
        for (int g = 0; g < opt->ngroups; g++) {
            opt->groups[g].lr = lr[g];
            opt->groups[g].weight_decay = wd[g];
        }
        opt->momentum = mom;
        opt->dampening = damp;
        opt->nesterov = nesterov;
    }
    for (int q = 0; fresh && q < n; q++)
        free(fresh[q]);
    free(fresh);
    free(has);
    free(buf);
    free(lr);
    free(wd);
    optim_free(&o);
    return st;
}

/* ------------------------------------------------------------------ plain values */
static relate_status plain(const relate_ckpt *c, const char *key, const relate_pk_value **v, relate_error *err)
{
    if (!c || !key)
        return relate_error_set(err, RELATE_ERR_ARG, "checkpoint: no file or key");
    return top_entry(c, key, v, err);
}

relate_status relate_ckpt_get_int(const relate_ckpt *c, const char *key, int64_t *out, relate_error *err)
{
    const relate_pk_value *v = NULL;
    relate_status st = plain(c, key, &v, err);
    if (st)
        return st;
    if (v->kind != RELATE_PK_INT)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.60s' is a %s, not an int", key, kind_of(v));
    *out = v->i;
    return RELATE_OK;
}

relate_status relate_ckpt_get_float(const relate_ckpt *c, const char *key, double *out, relate_error *err)
{
    const relate_pk_value *v = NULL;
    relate_status st = plain(c, key, &v, err);
    if (st)
        return st;
    if (!as_number(v, out))
        return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.60s' is a %s, not a number", key, kind_of(v));
    return RELATE_OK;
}

relate_status relate_ckpt_get_str(const relate_ckpt *c, const char *key, const char **out, relate_error *err)
{
    const relate_pk_value *v = NULL;
    relate_status st = plain(c, key, &v, err);
    if (st)
        return st;
    if (v->kind != RELATE_PK_STR)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "'%.60s' is a %s, not a str", key, kind_of(v));
    *out = v->s;
    return RELATE_OK;
}

/* ------------------------------------------------------------------ inspection */
static const relate_pk_value *child(const relate_pk_value *v, const char *comp, size_t len)
{
    const relate_pk_value *d = as_dict(v);
    char *end = NULL;
    char num[24];
    bool numeric = len > 0 && len < sizeof num;
    if (numeric) {
        memcpy(num, comp, len);
        num[len] = 0;
        errno = 0;
        long long x = strtoll(num, &end, 10);
        numeric = errno == 0 && *end == 0;
        if (numeric && !d && v && (v->kind == RELATE_PK_LIST || v->kind == RELATE_PK_TUPLE))
            return x >= 0 && x < v->count ? v->items[x] : NULL;
        for (int64_t k = 0; numeric && d && k < d->count; k++)
            if (d->items[2 * k]->kind == RELATE_PK_INT && d->items[2 * k]->i == x)
                return d->items[2 * k + 1];
    }
    for (int64_t k = 0; d && k < d->count; k++) {
        const relate_pk_value *kv = d->items[2 * k];
        if (is_text(kv) && kv->len == len && memcmp(kv->s, comp, len) == 0)
            return d->items[2 * k + 1];
    }
    return NULL;
}

relate_status relate_ckpt_get_tensor(const relate_ckpt *c, const char *path, relate_ckpt_tensor *out, relate_error *err)
{
    memset(out, 0, sizeof *out);
    if (!c)
        return relate_error_set(err, RELATE_ERR_ARG, "checkpoint: no file");
    const relate_pk_value *v = c->pk.root;
    const char *p = path ? path : "";
    while (*p && v) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        v = child(v, p, len);
        p += len + (slash ? 1 : 0);
    }
    if (!v)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "has nothing at '%.100s'", path);
    ck_tensor t;
    relate_status st = decode_tensor(c, v, path ? path : "", &t, err);
    if (st)
        return st;
    snprintf(out->dtype, sizeof out->dtype, "%s", DTYPES[t.dtype].name);
    out->is_int = DTYPES[t.dtype].is_int;
    out->ndim = t.ndim;
    memcpy(out->shape, t.shape, sizeof out->shape);
    out->numel = t.numel;
    size_t bytes = (size_t)(t.numel ? t.numel : 1) * (out->is_int ? sizeof(int64_t) : sizeof(float));
    void *dst = malloc(bytes);
    if (!dst)
        return ck_fail(c, err, RELATE_ERR_NOMEM, "out of memory for '%.100s'", path);
    gather(&t, dst, out->is_int);
    if (out->is_int)
        out->i64 = dst;
    else
        out->f32 = dst;
    return RELATE_OK;
}

void relate_ckpt_tensor_free(relate_ckpt_tensor *t)
{
    if (!t)
        return;
    free(t->f32);
    free(t->i64);
    memset(t, 0, sizeof *t);
}
