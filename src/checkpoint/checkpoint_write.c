/* checkpoint_write.c: relate/checkpoint.h's writer: writes torch.save's zip format by hand (spec 8):
 * the values to save as a tree (state dicts, Adam and SGD state dicts, plain values), pickled as
 * Python's pickler writes them, in a zip written under a temporary name and renamed into place.
 * Not the reader (that is in checkpoint_open.c and checkpoint_load.c). */
#include "relate/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/checkpoint_internal.h"
#include "io/atomic_file.h"
#include "io/pickle_write.h"
#include "io/zip_stored.h"

#define CK_ARCHIVE "archive/"  /* the folder PyTorch uses for in-memory buffers */
#define CK_ZIP_VERSION "3\n"   /* what torch.save (1.6 - 2.x) writes into <folder>/version */
#define CK_BATCH 1000          /* items per MARK ... SETITEMS/APPENDS, as Python's pickler */

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
