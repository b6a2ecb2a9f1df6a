/* graph.c: the step arena, the tape and the backward walk.
 * Not the ops themselves (ops_*.c): this file only creates tensors and runs recorded steps. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/graph_internal.h"
#include "base/pages.h"

relate_graph *relate_graph_create(void)
{
    relate_graph *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    relate_arena_init(&g->arena, 0);
    g->grad_enabled = true;
    return g;
}

void relate_graph_destroy(relate_graph *g)
{
    if (!g)
        return;
    relate_arena_free(&g->arena);
    free(g->workspace);
    free(g->tape);
    free(g->free_grads);
    free(g->uses);
    free(g);
}

void relate_graph_reset(relate_graph *g)
{
    relate_arena_reset(&g->arena);
    g->tape_count = 0;
    g->free_count = 0;
    g->use_count = 0;
    g->last_out = NULL;
    g->flops = g->layer_bytes = 0;
    memset(&g->err, 0, sizeof g->err);
}

relate_status relate_graph_status(const relate_graph *g) { return g->err.code; }
const relate_error *relate_graph_error(const relate_graph *g) { return &g->err; }
void relate_graph_set_grad_enabled(relate_graph *g, bool enabled) { g->grad_enabled = enabled; }
void relate_graph_keep_grads(relate_graph *g, bool keep) { g->keep_grads = keep; }
void relate_graph_set_sync_batch(relate_graph *g, bool on) { g->sync_batch = on; }
bool relate_graph_sync_batch(const relate_graph *g) { return g->sync_batch; }
void relate_graph_on_grad_ready(relate_graph *g, relate_grad_ready_fn fn, void *ctx)
{
    g->grad_ready = fn;
    g->grad_ready_ctx = ctx;
}
size_t relate_graph_peak_bytes(const relate_graph *g) { return g->arena.high_water + g->workspace_size; }

void relate_graph_work(const relate_graph *g, double *flops, double *layer_bytes)
{
    if (flops)
        *flops = g->flops;
    if (layer_bytes)
        *layer_bytes = g->layer_bytes;
}

void *relate_graph_fail(relate_graph *g, relate_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    relate_error_vset(&g->err, code, fmt, ap);
    va_end(ap);
    return NULL;
}

void *relate_graph_scratch(relate_graph *g, size_t bytes)
{
    void *p = relate_arena_alloc(&g->arena, bytes);
    if (!p)
        relate_graph_fail(g, RELATE_ERR_NOMEM, "out of memory allocating %zu bytes for a step", bytes);
    return p;
}

void *relate_graph_alloc(relate_graph *g, size_t bytes) { return relate_graph_scratch(g, bytes); }

void *relate_graph_workspace(relate_graph *g, size_t bytes)
{
    if (bytes > g->workspace_size) {
        size_t size = bytes;
        void *p = relate_pages_alloc(&size);
        if (!p)
            return relate_graph_fail(g, RELATE_ERR_NOMEM, "out of memory for %zu bytes of workspace", bytes);
        free(g->workspace);
        g->workspace = p;
        g->workspace_size = size;
    }
    return g->workspace;
}

const char *relate_shape_str(const relate_tensor *t, char *buf, size_t size)
{
    size_t off = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < t->ndim && off < size; d++)
        off += (size_t)snprintf(buf + off, size - off, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (off < size)
        snprintf(buf + off, size - off, "]");
    return buf;
}

static relate_tensor *tensor_header(relate_graph *g, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > RELATE_MAX_DIMS)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "tensors have at most %d dimensions, got %d",
                                 RELATE_MAX_DIMS, ndim);
    relate_tensor *t = relate_graph_scratch(g, sizeof *t);
    if (!t)
        return NULL;
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return relate_graph_fail(g, RELATE_ERR_SHAPE, "negative dimension %lld", (long long)shape[d]);
        t->shape[d] = shape[d];
        t->numel *= shape[d];
    }
    return t;
}

relate_tensor *relate_tensor_new(relate_graph *g, int ndim, const int64_t *shape)
{
    relate_tensor *t = tensor_header(g, ndim, shape);
    if (!t)
        return NULL;
    t->data = relate_graph_scratch(g, (size_t)t->numel * sizeof(float));
    return t->data ? t : NULL;
}

relate_tensor *relate_tensor_zeros(relate_graph *g, int ndim, const int64_t *shape)
{
    relate_tensor *t = relate_tensor_new(g, ndim, shape);
    if (t)
        memset(t->data, 0, (size_t)t->numel * sizeof(float));
    return t;
}

relate_tensor *relate_tensor_wrap(relate_graph *g, int ndim, const int64_t *shape, float *data)
{
    relate_tensor *t = tensor_header(g, ndim, shape);
    if (t)
        t->data = data;
    return t;
}

relate_tensor *relate_param_tensor(relate_graph *g, relate_param *p)
{
    if (!p)
        return relate_graph_fail(g, RELATE_ERR_INTERNAL, "missing parameter");
    if (p->kind != RELATE_PARAM && p->kind != RELATE_BUFFER_F32)
        return relate_graph_fail(g, RELATE_ERR_INTERNAL, "%s is not a float tensor", p->name);
    relate_tensor *t = tensor_header(g, p->ndim, p->shape);
    if (!t)
        return NULL;
    t->data = p->data;
    t->param = p;
    if (p->kind == RELATE_PARAM && !p->frozen && g->grad_enabled && p->grad) {
        t->requires_grad = true;
        t->grad = p->grad;
        if (g->use_count == g->use_cap) {
            int cap = g->use_cap ? 2 * g->use_cap : 64;
            struct relate_param_use *u = realloc(g->uses, (size_t)cap * sizeof *u);
            if (!u)
                return relate_graph_fail(g, RELATE_ERR_NOMEM, "out of memory");
            g->uses = u;
            g->use_cap = cap;
        }
        g->uses[g->use_count++] = (struct relate_param_use){p, g->tape_count};
    }
    return t;
}

relate_tensor *relate_op_output_layout(relate_graph *g, int ndim, const int64_t *shape, relate_tensor *in0,
                                       relate_tensor *in1, bool blocked16)
{
    relate_tensor *t = relate_tensor_new(g, ndim, shape);
    if (t && g->grad_enabled)
        t->requires_grad = (in0 && in0->requires_grad) || (in1 && in1->requires_grad);
    if (t)
        t->blocked16 = blocked16;
    g->last_out = t;
    return t;
}

relate_tensor *relate_op_output(relate_graph *g, int ndim, const int64_t *shape, relate_tensor *in0,
                                relate_tensor *in1)
{
    /* An op that reads NCHW would read a blocked tensor's channels in the wrong places. */
    if ((in0 && in0->blocked16) || (in1 && in1->blocked16))
        return relate_graph_fail(g, RELATE_ERR_INTERNAL,
                                 "an op that reads NCHW got a tensor in the nChw16c layout (convert it with "
                                 "relate_from_blocked16 first)");
    return relate_op_output_layout(g, ndim, shape, in0, in1, false);
}

void relate_op_record(relate_graph *g, relate_backward_fn fn, void *ctx)
{
    if (!ctx)
        return;
    if (g->tape_count == g->tape_cap) {
        int cap = g->tape_cap ? 2 * g->tape_cap : 256;
        relate_tape_node *nt = realloc(g->tape, (size_t)cap * sizeof *nt);
        if (!nt) {
            relate_graph_fail(g, RELATE_ERR_NOMEM, "out of memory growing the tape");
            return;
        }
        g->tape = nt;
        g->tape_cap = cap;
    }
    g->tape[g->tape_count].fn = fn;
    g->tape[g->tape_count].ctx = ctx;
    g->tape[g->tape_count].out = g->last_out;
    g->last_out = NULL;
    g->tape_count++;
}

void *relate_op_save(relate_graph *g, relate_backward_fn fn, const void *ctx, size_t size)
{
    void *copy = relate_graph_scratch(g, size);
    if (copy) {
        memcpy(copy, ctx, size);
        relate_op_record(g, fn, copy);
    }
    return copy;
}

/* Released gradient buffers, sorted by address, neighbours merged. Gradients are allocated one
 * after another during the backward pass and die in nearly the same order, so merged runs of
 * small dead buffers hold the larger gradients of earlier layers (a CNN's gradients grow toward
 * its input). Sizes are rounded as the arena rounds them (64 bytes), which makes buffers that were
 * allocated back to back adjacent. */
#define GRAD_ALIGN 64

static size_t grad_bytes(const relate_tensor *t)
{
    return ((size_t)t->numel * sizeof(float) + GRAD_ALIGN - 1) & ~(size_t)(GRAD_ALIGN - 1);
}

/* A gradient buffer, zeroed when `zero`: the front of the smallest released run that fits, else
 * arena memory. */
static float *grad_buffer(relate_graph *g, size_t bytes, bool zero)
{
    int best = -1;
    for (int i = 0; i < g->free_count; i++)
        if (g->free_grads[i].bytes >= bytes && (best < 0 || g->free_grads[i].bytes < g->free_grads[best].bytes))
            best = i;
    if (best < 0)
        return zero ? relate_arena_calloc(&g->arena, bytes) : relate_arena_alloc(&g->arena, bytes);
    relate_free_grad *f = &g->free_grads[best];
    float *buf = f->buf;
    if (f->bytes > bytes) {
        f->buf = (float *)((char *)f->buf + bytes);
        f->bytes -= bytes;
    } else {
        memmove(f, f + 1, (size_t)(g->free_count - best - 1) * sizeof *f);
        g->free_count--;
    }
    if (zero)
        memset(buf, 0, bytes);
    return buf;
}

float *relate_grad_of(relate_graph *g, relate_tensor *t)
{
    if (!t || !t->requires_grad)
        return NULL;
    if (!t->grad)
        t->grad = grad_buffer(g, grad_bytes(t), true);
    if (!t->grad)
        relate_graph_fail(g, RELATE_ERR_NOMEM, "out of memory for a gradient");
    return t->grad;
}

float *relate_grad_to_write(relate_graph *g, relate_tensor *t, bool *store)
{
    *store = false;
    if (!t || !t->requires_grad)
        return NULL;
    if (t->grad)
        return t->grad;
    if (!(t->grad = grad_buffer(g, grad_bytes(t), false)))
        relate_graph_fail(g, RELATE_ERR_NOMEM, "out of memory for a gradient");
    *store = t->grad != NULL;
    return t->grad;
}

/* After out's backward step: its gradient has been read for the last time. Parameter views never
 * come here (they are not op outputs), and their buffers are not the arena's. */
static void release_grad(relate_graph *g, relate_tensor *out)
{
    if (!out || !out->grad || out->param || g->keep_grads)
        return;
    if (g->free_count == g->free_cap) {
        int cap = g->free_cap ? 2 * g->free_cap : 64;
        relate_free_grad *nf = realloc(g->free_grads, (size_t)cap * sizeof *nf);
        if (!nf)
            return; /* not reusing a buffer is always correct */
        g->free_grads = nf;
        g->free_cap = cap;
    }
    char *p = (char *)out->grad;
    size_t bytes = grad_bytes(out);
    out->grad = NULL;
    int i = 0;
    while (i < g->free_count && (char *)g->free_grads[i].buf < p)
        i++;
    relate_free_grad *fl = g->free_grads;
    bool join_prev = i > 0 && (char *)fl[i - 1].buf + fl[i - 1].bytes == p;
    bool join_next = i < g->free_count && p + bytes == (char *)fl[i].buf;
    if (join_prev && join_next) {
        fl[i - 1].bytes += bytes + fl[i].bytes;
        memmove(fl + i, fl + i + 1, (size_t)(g->free_count - i - 1) * sizeof *fl);
        g->free_count--;
    } else if (join_prev) {
        fl[i - 1].bytes += bytes;
    } else if (join_next) {
        fl[i].buf = (float *)p;
        fl[i].bytes += bytes;
    } else {
        memmove(fl + i + 1, fl + i, (size_t)(g->free_count - i) * sizeof *fl);
        fl[i] = (relate_free_grad){(float *)p, bytes};
        g->free_count++;
    }
}

/* Keeps each parameter's first use only (the uses are in tape order, so the first is the earliest):
 * a parameter read twice is final only when the backward pass has gone past its first reader.
 * Returns the number kept. A step holds tens to hundreds of parameters, so the quadratic scan
 * costs microseconds. */
static int first_uses(relate_graph *g)
{
    int n = 0;
    for (int i = 0; i < g->use_count; i++) {
        bool seen = false;
        for (int j = 0; j < n && !seen; j++)
            seen = g->uses[j].param == g->uses[i].param;
        if (!seen)
            g->uses[n++] = g->uses[i];
    }
    g->use_count = n;
    return n;
}

relate_status relate_graph_backward(relate_graph *g, relate_tensor *loss)
{
    return relate_graph_backward_scaled(g, loss, 1.0f);
}

relate_status relate_graph_backward_scaled(relate_graph *g, relate_tensor *loss, float scale)
{
    if (g->err.code != RELATE_OK)
        return g->err.code;
    if (!loss)
        return relate_error_set(&g->err, RELATE_ERR_INTERNAL, "backward from a missing tensor");
    if (loss->numel != 1)
        return relate_error_set(&g->err, RELATE_ERR_SHAPE,
                                "backward needs a scalar loss, got %lld elements", (long long)loss->numel);
    if (!isfinite(loss->data[0]))
        return relate_error_set(&g->err, RELATE_ERR_NUMERIC, "the loss is %s", isnan(loss->data[0]) ? "NaN" : "infinite");
    if (!loss->requires_grad)
        return RELATE_OK; /* nothing to differentiate: everything is frozen */
    float *seed = relate_grad_of(g, loss);
    if (!seed)
        return g->err.code;
    seed[0] += scale;
    /* uses[0..u] are the parameters whose gradients are not yet final, by their first use. */
    int u = g->grad_ready ? first_uses(g) - 1 : -1;
    for (; u >= 0 && g->uses[u].tape_pos >= g->tape_count; u--)
        g->grad_ready(g->grad_ready_ctx, g->uses[u].param);
    for (int i = g->tape_count - 1; i >= 0 && g->err.code == RELATE_OK; i--) {
        g->tape[i].fn(g, g->tape[i].ctx);
        if (g->tape[i].out != loss)
            release_grad(g, g->tape[i].out);
        for (; u >= 0 && g->uses[u].tape_pos >= i; u--)
            g->grad_ready(g->grad_ready_ctx, g->uses[u].param);
    }
    return g->err.code;
}
