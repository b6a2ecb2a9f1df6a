/* conv2d_onednn.c: 2-D convolution forward, backward-data and backward-weights through oneDNN,
 * the library PyTorch runs on x86 CPUs; primitives are created once per shape and cached.
 * Not the dispatcher (conv2d.c picks this or the im2col + sgemm path) and not an allocator:
 * oneDNN's scratchpad and the accumulation buffers live in the caller's scratch. */
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/conv2d_internal.h"

#define CACHE_SLOTS 256

/* One argument of a primitive: relate's plain layout and the (possibly blocked) layout the
 * primitive prefers, with the reorder between them when they differ. */
typedef struct conv_arg {
    dnnl_memory_desc_t user, prim;
    dnnl_primitive_t reorder; /* NULL: the primitive takes the plain layout as is */
    size_t prim_bytes, reorder_pad;
} conv_arg;

/* A primitive with its three tensor arguments: two inputs then one output. */
typedef struct conv_op {
    dnnl_primitive_t prim;
    conv_arg arg[3];
    int kinds[3];
    size_t pad; /* the primitive's scratchpad bytes */
} conv_op;

typedef struct conv_entry {
    relate_conv2d_dims d;
    conv_op fwd, bwd_data, bwd_weights;
    int failed;
} conv_entry;

static struct {
    pthread_mutex_t lock;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    int ready; /* 1 ok, -1 unavailable */
    conv_entry slots[CACHE_SLOTS];
    int count;
} g_dnnl = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int same_dims(const relate_conv2d_dims *a, const relate_conv2d_dims *b)
{
    return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w && a->o == b->o &&
           a->kh == b->kh && a->kw == b->kw && a->stride == b->stride && a->pad == b->pad;
}

static size_t pad_bytes(const_dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

static void destroy_op(conv_op *op)
{
    if (op->prim)
        dnnl_primitive_destroy(op->prim);
    for (int i = 0; i < 3; i++)
        if (op->arg[i].reorder)
            dnnl_primitive_destroy(op->arg[i].reorder);
    memset(op, 0, sizeof *op);
}

/* Fills arg from the layout the primitive chose; `input` picks the reorder's direction. */
static int prepare_arg(conv_arg *a, const dnnl_memory_desc_t *user, const dnnl_memory_desc_t *chosen, int input,
                       const_dnnl_primitive_attr_t attr)
{
    a->user = *user;
    a->prim = *chosen;
    a->prim_bytes = dnnl_memory_desc_get_size(chosen);
    if (dnnl_memory_desc_equal(user, chosen))
        return 0;
    dnnl_primitive_desc_t rpd;
    const dnnl_memory_desc_t *from = input ? user : chosen, *to = input ? chosen : user;
    if (dnnl_reorder_primitive_desc_create(&rpd, from, g_dnnl.engine, to, g_dnnl.engine, attr) != dnnl_success)
        return -1;
    a->reorder_pad = pad_bytes(rpd);
    int ok = dnnl_primitive_create(&a->reorder, rpd) == dnnl_success;
    dnnl_primitive_desc_destroy(rpd);
    return ok ? 0 : -1;
}

static int finish_op(conv_op *op, const_dnnl_primitive_desc_t pd, const dnnl_memory_desc_t *const user[3],
                     const dnnl_query_t what[3], const int kinds[3], const_dnnl_primitive_attr_t attr)
{
    op->pad = pad_bytes(pd);
    for (int i = 0; i < 3; i++) {
        op->kinds[i] = kinds[i];
        const dnnl_memory_desc_t *chosen = dnnl_primitive_desc_query_md(pd, what[i], 0);
        if (!chosen || prepare_arg(&op->arg[i], user[i], chosen, i < 2, attr) != 0)
            return -1;
    }
    return dnnl_primitive_create(&op->prim, pd) == dnnl_success ? 0 : -1;
}

/* The primitives choose their own (blocked) layouts: oneDNN's direct JIT kernels need them,
 * and measured on the backbones' shapes they beat the plain-layout (im2col-like) kernels by
 * far more than the reorders cost. */
static int build(conv_entry *e)
{
    const relate_conv2d_dims *d = &e->d;
    dnnl_memory_desc_t src, wei, dst, any_src, any_wei, any_dst;
    dnnl_dims_t sd = {d->n, d->c, d->h, d->w}, wd = {d->o, d->c, d->kh, d->kw}, dd = {d->n, d->o, d->ho, d->wo};
    dnnl_dims_t strides = {d->stride, d->stride}, pl = {d->pad, d->pad};
    /* oneDNN wants the right padding that makes the output size exact (floor mode may leave
     * input columns unused, which is a smaller, possibly negative, right padding). */
    dnnl_dims_t pr = {(int64_t)(d->ho - 1) * d->stride + d->kh - d->h - d->pad,
                      (int64_t)(d->wo - 1) * d->stride + d->kw - d->w - d->pad};
    if (dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, dnnl_nchw) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&wei, 4, wd, dnnl_f32, dnnl_oihw) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, dnnl_nchw) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&any_src, 4, sd, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&any_wei, 4, wd, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&any_dst, 4, dd, dnnl_f32, dnnl_format_tag_any) != dnnl_success)
        return -1;
    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success)
        return -1;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_convolution_desc_t fd, bd, wdsc;
    dnnl_primitive_desc_t fpd = NULL, bpd = NULL, wpd = NULL;
    int ok = dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &any_src,
                                                &any_wei, NULL, &any_dst, strides, pl, pr) == dnnl_success &&
             dnnl_primitive_desc_create(&fpd, &fd, attr, g_dnnl.engine, NULL) == dnnl_success &&
             dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &any_src, &any_wei, &any_dst,
                                                      strides, pl, pr) == dnnl_success &&
             dnnl_primitive_desc_create(&bpd, &bd, attr, g_dnnl.engine, fpd) == dnnl_success &&
             dnnl_convolution_backward_weights_desc_init(&wdsc, dnnl_convolution_direct, &any_src, &any_wei, NULL,
                                                         &any_dst, strides, pl, pr) == dnnl_success &&
             dnnl_primitive_desc_create(&wpd, &wdsc, attr, g_dnnl.engine, fpd) == dnnl_success;
    if (ok) {
        const dnnl_memory_desc_t *fu[3] = {&src, &wei, &dst}, *bu[3] = {&dst, &wei, &src}, *wu[3] = {&src, &dst, &wei};
        const dnnl_query_t fq[3] = {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md};
        const dnnl_query_t bq[3] = {dnnl_query_diff_dst_md, dnnl_query_weights_md, dnnl_query_diff_src_md};
        const dnnl_query_t wq[3] = {dnnl_query_src_md, dnnl_query_diff_dst_md, dnnl_query_diff_weights_md};
        const int fk[3] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST};
        const int bk[3] = {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC};
        const int wk[3] = {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS};
        ok = finish_op(&e->fwd, fpd, fu, fq, fk, attr) == 0 && finish_op(&e->bwd_data, bpd, bu, bq, bk, attr) == 0 &&
             finish_op(&e->bwd_weights, wpd, wu, wq, wk, attr) == 0;
    }
    if (fpd)
        dnnl_primitive_desc_destroy(fpd);
    if (bpd)
        dnnl_primitive_desc_destroy(bpd);
    if (wpd)
        dnnl_primitive_desc_destroy(wpd);
    dnnl_primitive_attr_destroy(attr);
    return ok ? 0 : -1;
}

static void release_all(void)
{
    for (int i = 0; i < g_dnnl.count; i++) {
        destroy_op(&g_dnnl.slots[i].fwd);
        destroy_op(&g_dnnl.slots[i].bwd_data);
        destroy_op(&g_dnnl.slots[i].bwd_weights);
    }
    g_dnnl.count = 0;
    if (g_dnnl.stream)
        dnnl_stream_destroy(g_dnnl.stream);
    if (g_dnnl.engine)
        dnnl_engine_destroy(g_dnnl.engine);
    g_dnnl.stream = NULL;
    g_dnnl.engine = NULL;
}

/* The cache entry for d, built on first use; NULL when oneDNN cannot run this shape. */
static conv_entry *entry_for(const relate_conv2d_dims *d)
{
    conv_entry *found = NULL;
    pthread_mutex_lock(&g_dnnl.lock);
    if (!g_dnnl.ready) {
        g_dnnl.ready = -1;
        if (dnnl_engine_create(&g_dnnl.engine, dnnl_cpu, 0) == dnnl_success &&
            dnnl_stream_create(&g_dnnl.stream, g_dnnl.engine, dnnl_stream_default_flags) == dnnl_success) {
            g_dnnl.ready = 1;
            atexit(release_all);
        }
    }
    if (g_dnnl.ready == 1) {
        for (int i = 0; i < g_dnnl.count && !found; i++)
            if (same_dims(&g_dnnl.slots[i].d, d))
                found = &g_dnnl.slots[i];
        if (!found) {
            /* A full cache recycles the oldest slot; runs use a handful of shapes. */
            int slot = g_dnnl.count < CACHE_SLOTS ? g_dnnl.count++ : 0;
            conv_entry *e = &g_dnnl.slots[slot];
            destroy_op(&e->fwd);
            destroy_op(&e->bwd_data);
            destroy_op(&e->bwd_weights);
            memset(e, 0, sizeof *e);
            e->d = *d;
            e->failed = build(e) != 0;
            found = e;
        }
        if (found->failed)
            found = NULL;
    }
    pthread_mutex_unlock(&g_dnnl.lock);
    return found;
}

#define ALIGN_BYTES(n) (((n) + 63) & ~(size_t)63)

/* Scratch of one op: a blocked buffer per reordered argument, a plain buffer for the output
 * (which is added into relate's gradient, or IS the output for the forward), and one shared
 * scratchpad for the primitive and its reorders. */
static size_t op_bytes(const conv_op *op)
{
    size_t total = 0, pad = op->pad;
    for (int i = 0; i < 3; i++) {
        if (op->arg[i].reorder)
            total += ALIGN_BYTES(op->arg[i].prim_bytes);
        if (op->arg[i].reorder_pad > pad)
            pad = op->arg[i].reorder_pad;
    }
    total += ALIGN_BYTES(dnnl_memory_desc_get_size(&op->arg[2].user));
    return total + ALIGN_BYTES(pad);
}

size_t relate_conv2d_onednn_scratch_floats(const relate_conv2d_dims *d)
{
    conv_entry *e = entry_for(d);
    if (!e)
        return 0;
    size_t most = op_bytes(&e->fwd);
    if (op_bytes(&e->bwd_data) > most)
        most = op_bytes(&e->bwd_data);
    if (op_bytes(&e->bwd_weights) > most)
        most = op_bytes(&e->bwd_weights);
    return most / sizeof(float) + 16;
}

static int exec(dnnl_primitive_t p, int n, const int *kinds, const dnnl_memory_desc_t *const *mds, void *const *ptrs)
{
    dnnl_memory_t mem[4] = {0};
    dnnl_exec_arg_t args[4];
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        ok = dnnl_memory_create(&mem[i], mds[i], g_dnnl.engine, ptrs[i]) == dnnl_success;
        args[i].arg = kinds[i];
        args[i].memory = mem[i];
    }
    if (ok)
        ok = dnnl_primitive_execute(p, g_dnnl.stream, n, args) == dnnl_success;
    for (int i = 0; i < n; i++)
        if (mem[i])
            dnnl_memory_destroy(mem[i]);
    return ok ? 0 : -1;
}

static int reorder(const conv_arg *a, int input, void *from, void *to, void *pad)
{
    static const int kinds[3] = {DNNL_ARG_FROM, DNNL_ARG_TO, DNNL_ARG_SCRATCHPAD};
    const dnnl_memory_desc_t *pad_md = NULL;
    const_dnnl_primitive_desc_t pd;
    if (dnnl_primitive_get_primitive_desc(a->reorder, &pd) != dnnl_success)
        return -1;
    pad_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    const dnnl_memory_desc_t *mds[3] = {input ? &a->user : &a->prim, input ? &a->prim : &a->user, pad_md};
    void *ptrs[3] = {from, to, pad};
    return exec(a->reorder, pad_md && a->reorder_pad ? 3 : 2, kinds, mds, ptrs);
}

/* Runs op on plain inputs in0, in1; its plain output lands in out (NULL: in scratch, returned
 * through *plain_out). */
static int run_op(const conv_op *op, const void *in0, const void *in1, void *out, float *scratch, float **plain_out)
{
    unsigned char *cur = (unsigned char *)scratch;
    void *bufs[3];
    const void *ins[2] = {in0, in1};
    for (int i = 0; i < 3; i++) {
        if (op->arg[i].reorder) {
            bufs[i] = cur;
            cur += ALIGN_BYTES(op->arg[i].prim_bytes);
        }
    }
    void *plain = out;
    if (!plain) {
        plain = cur;
        cur += ALIGN_BYTES(dnnl_memory_desc_get_size(&op->arg[2].user));
    }
    void *pad = cur;
    for (int i = 0; i < 2; i++) {
        if (op->arg[i].reorder) {
            if (reorder(&op->arg[i], 1, (void *)ins[i], bufs[i], pad) != 0)
                return -1;
        } else {
            bufs[i] = (void *)ins[i];
        }
    }
    if (!op->arg[2].reorder)
        bufs[2] = plain;
    const_dnnl_primitive_desc_t pd;
    if (dnnl_primitive_get_primitive_desc(op->prim, &pd) != dnnl_success)
        return -1;
    const dnnl_memory_desc_t *pad_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    const int kinds[4] = {op->kinds[0], op->kinds[1], op->kinds[2], DNNL_ARG_SCRATCHPAD};
    const dnnl_memory_desc_t *mds[4] = {&op->arg[0].prim, &op->arg[1].prim, &op->arg[2].prim, pad_md};
    void *ptrs[4] = {bufs[0], bufs[1], bufs[2], pad};
    if (exec(op->prim, pad_md && op->pad ? 4 : 3, kinds, mds, ptrs) != 0)
        return -1;
    if (op->arg[2].reorder && reorder(&op->arg[2], 0, bufs[2], plain, pad) != 0)
        return -1;
    if (dnnl_stream_wait(g_dnnl.stream) != dnnl_success)
        return -1;
    if (plain_out)
        *plain_out = plain;
    return 0;
}

int relate_conv2d_onednn_forward(float *y, const float *x, const float *w, const relate_conv2d_dims *d,
                                 float *scratch)
{
    conv_entry *e = entry_for(d);
    return e ? run_op(&e->fwd, x, w, y, scratch, NULL) : -1;
}

/* oneDNN overwrites its outputs; relate's backward accumulates, so results land in scratch
 * first and are added (in a fixed order, so results stay deterministic). */
int relate_conv2d_onednn_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                                  const relate_conv2d_dims *d, float *scratch)
{
    conv_entry *e = entry_for(d);
    if (!e)
        return -1;
    float *tmp;
    if (dx) {
        size_t xs = (size_t)d->n * d->c * d->h * d->w;
        if (run_op(&e->bwd_data, dy, w, NULL, scratch, &tmp) != 0)
            return -1;
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < xs; i++)
            dx[i] += tmp[i];
    }
    if (dw) {
        size_t ws = (size_t)d->o * d->c * d->kh * d->kw;
        if (run_op(&e->bwd_weights, x, dy, NULL, scratch, &tmp) != 0)
            return -1;
        for (size_t i = 0; i < ws; i++)
            dw[i] += tmp[i];
    }
    return 0;
}
