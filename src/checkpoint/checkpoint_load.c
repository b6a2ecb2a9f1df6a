/* checkpoint_load.c: relate/checkpoint.h's reader, the values: decodes the tensors of an open
 * checkpoint (any stored dtype; sizes, strides and offsets checked against their storage) into a
 * model's state dict, Adam's and SGD's state, plain values and single tensors (inspection).
 * Not the file itself: the formats, the unpickling and the storages (that is in checkpoint_open.c). */
#include "relate/checkpoint.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/checkpoint_internal.h"
#include "optim/groups.h"

#define CK_MAX_DIMS 8          /* = relate_ckpt_tensor.shape; RELATE_PK_MAX_DIMS is the same */

static const char *shape_str(int ndim, const int64_t *shape, char *buf, size_t n)
{
    buf[0] = 0;
    sb_add(buf, n, "[");
    for (int d = 0; d < ndim; d++)
        sb_add(buf, n, "%s%lld", d ? ", " : "", (long long)shape[d]);
    sb_add(buf, n, "]");
    return buf;
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
    relate_status st = relate_ckpt_parse_pid(c, a->items[0]->pid, &pid, err);
    if (st)
        return st;
    const ck_storage *s = relate_ckpt_find_storage(c, pid.key);
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
    relate_status st = relate_ckpt_top_entry(c, key, &sd, err);
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
    relate_status st = relate_ckpt_top_entry(c, key, &sd, err);
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
    return relate_ckpt_top_entry(c, key, v, err);
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
