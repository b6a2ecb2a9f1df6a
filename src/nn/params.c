/* params.c: the parameter store: named entries in registration order, backed by one block each
 * for values, gradients, float buffers and int64 buffers.
 * Not an initialiser: layers fill the values after relate_params_finalize. */
#define _POSIX_C_SOURCE 200809L
#include "relate/params.h"

#include <stdlib.h>
#include <string.h>

/* Cache-line alignment lets the kernels and optimizers use aligned vector loads on every block. */
#define BLOCK_ALIGN 64

/* Before finalize the size fields are unused, so a registration that could not even be recorded
 * (out of memory) poisons param_floats; finalize then reports it instead of a silent gap. */
#define ADD_FAILED SIZE_MAX

void relate_params_init(relate_params *p) { memset(p, 0, sizeof *p); }

void relate_params_free(relate_params *p)
{
    for (int i = 0; i < p->count; i++) {
        free(p->items[i]->name);
        free(p->items[i]);
    }
    free(p->items);
    free(p->param_block);
    free(p->grad_block);
    free(p->buffer_block);
    free(p->i64_block);
    memset(p, 0, sizeof *p);
}

relate_param *relate_params_add(relate_params *p, const char *name, relate_param_kind kind, int ndim,
                                const int64_t *shape)
{
    /* Misuse is remembered as an entry with ndim -1 and reported by finalize, so registration
     * code stays free of error plumbing. */
    bool bad = p->finalized || !name || ndim < 0 || ndim > RELATE_MAX_DIMS || (ndim > 0 && !shape) ||
               (kind != RELATE_PARAM && kind != RELATE_BUFFER_F32 && kind != RELATE_BUFFER_I64) ||
               relate_params_find(p, name);
    for (int d = 0; !bad && d < ndim; d++)
        bad = shape[d] < 0;
    if (p->count == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        relate_param **items = realloc(p->items, (size_t)cap * sizeof *items);
        if (!items) {
            p->param_floats = ADD_FAILED;
            return NULL;
        }
        p->items = items;
        p->cap = cap;
    }
    relate_param *e = calloc(1, sizeof *e);
    if (!e) {
        p->param_floats = ADD_FAILED;
        return NULL;
    }
    e->name = name ? strdup(name) : NULL;
    e->kind = kind;
    e->ndim = bad ? -1 : ndim;
    e->numel = 1;
    for (int d = 0; !bad && d < ndim; d++) {
        e->shape[d] = shape[d];
        e->numel *= shape[d];
    }
    p->items[p->count++] = e;
    return bad ? NULL : e;
}

static void *block(size_t count, size_t elem)
{
    /* Never zero bytes: every entry then has a valid (if empty) address and free() is uniform. */
    size_t bytes = ((count ? count : 1) * elem + BLOCK_ALIGN - 1) / BLOCK_ALIGN * BLOCK_ALIGN;
    void *b = aligned_alloc(BLOCK_ALIGN, bytes);
    if (b)
        memset(b, 0, bytes);
    return b;
}

relate_status relate_params_finalize(relate_params *p, relate_error *err)
{
    if (p->finalized)
        return relate_error_set(err, RELATE_ERR_INTERNAL, "parameter store finalized twice");
    if (p->param_floats == ADD_FAILED)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory registering parameters");
    size_t np = 0, nb = 0, ni = 0;
    for (int i = 0; i < p->count; i++) {
        relate_param *e = p->items[i];
        if (!e->name)
            return relate_error_set(err, RELATE_ERR_INTERNAL, "parameter %d has no name", i);
        if (e->ndim < 0)
            return relate_error_set(err, RELATE_ERR_INTERNAL,
                                    "bad or duplicate parameter '%s' (or registered after finalize)",
                                    e->name);
        if (e->kind == RELATE_PARAM)
            np += (size_t)e->numel;
        else if (e->kind == RELATE_BUFFER_F32)
            nb += (size_t)e->numel;
        else
            ni += (size_t)e->numel;
    }
    p->param_block = block(np, sizeof(float));
    p->grad_block = block(np, sizeof(float));
    p->buffer_block = block(nb, sizeof(float));
    p->i64_block = block(ni, sizeof(int64_t));
    if (!p->param_block || !p->grad_block || !p->buffer_block || !p->i64_block)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory for %zu parameters", np);
    p->param_floats = np;
    p->buffer_floats = nb;
    p->i64_count = ni;
    size_t op = 0, ob = 0, oi = 0;
    for (int i = 0; i < p->count; i++) {
        relate_param *e = p->items[i];
        if (e->kind == RELATE_PARAM) {
            e->data = p->param_block + op;
            e->grad = p->grad_block + op;
            op += (size_t)e->numel;
        } else if (e->kind == RELATE_BUFFER_F32) {
            e->data = p->buffer_block + ob;
            ob += (size_t)e->numel;
        } else {
            e->i64 = p->i64_block + oi;
            oi += (size_t)e->numel;
        }
    }
    p->finalized = true;
    return RELATE_OK;
}

relate_param *relate_params_find(const relate_params *p, const char *name)
{
    if (!name)
        return NULL;
    for (int i = 0; i < p->count; i++)
        if (p->items[i]->name && strcmp(p->items[i]->name, name) == 0)
            return p->items[i];
    return NULL;
}

void relate_params_zero_grad(relate_params *p)
{
    if (p->finalized)
        memset(p->grad_block, 0, p->param_floats * sizeof(float));
}

int64_t relate_params_count_trainable(const relate_params *p)
{
    int64_t n = 0;
    for (int i = 0; i < p->count; i++)
        if (p->items[i]->kind == RELATE_PARAM && p->items[i]->ndim >= 0)
            n += p->items[i]->numel;
    return n;
}

void relate_params_set_frozen(relate_params *p, bool frozen)
{
    for (int i = 0; i < p->count; i++)
        p->items[i]->frozen = frozen;
}

relate_status relate_params_copy(relate_params *dst, const relate_params *src, relate_error *err)
{
    if (!dst->finalized || !src->finalized)
        return relate_error_set(err, RELATE_ERR_INTERNAL, "parameter store copied before finalize");
    if (dst == src)
        return RELATE_OK; /* memcpy onto itself would be undefined */
    if (dst->count != src->count)
        return relate_error_set(err, RELATE_ERR_ARG, "parameter stores differ: %d vs %d entries",
                                dst->count, src->count);
    /* Check everything before touching dst, so a mismatch leaves it intact. */
    for (int i = 0; i < src->count; i++) {
        const relate_param *s = src->items[i];
        const relate_param *d = dst->items[i];
        bool same = strcmp(s->name, d->name) == 0 && s->kind == d->kind && s->ndim == d->ndim;
        for (int k = 0; same && k < s->ndim; k++)
            same = s->shape[k] == d->shape[k];
        if (!same)
            return relate_error_set(err, RELATE_ERR_ARG, "parameter %d differs: %s vs %s", i,
                                    d->name, s->name);
    }
    /* Identical entry lists give identical block layouts, so whole-block copies are exact. */
    memcpy(dst->param_block, src->param_block, src->param_floats * sizeof(float));
    memcpy(dst->buffer_block, src->buffer_block, src->buffer_floats * sizeof(float));
    memcpy(dst->i64_block, src->i64_block, src->i64_count * sizeof(int64_t));
    return RELATE_OK;
}
