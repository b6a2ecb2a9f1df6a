/* conv2d_onednn.c: 2-D convolution forward, backward-data and backward-weights through oneDNN,
 * the library PyTorch runs on x86 CPUs; primitives are created once per shape and cached.
 * Not the dispatcher (conv2d.c picks this or the im2col + sgemm path) and not an allocator:
 * oneDNN's scratchpads and the blocked copies of the tensors live in the caller's scratch. */
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/conv2d_internal.h"

/* A training run meets a handful of shapes (a few per backbone, times the last short batch);
 * a full table sends new shapes to the BLAS path instead of evicting, so an entry handed out
 * stays valid for the life of the process without reference counting. */
#define CACHE_SLOTS 256

/* One argument of a primitive: relate's plain layout, the layout the primitive chose, and the
 * reorder between them when they differ (into the primitive for inputs; out of it for outputs,
 * adding into relate's buffer for the backward outputs). */
typedef struct conv_arg {
    dnnl_memory_desc_t user, prim;
    dnnl_primitive_t reorder; /* NULL: the primitive takes the plain layout as is */
    dnnl_primitive_t reorder_store; /* outputs that add (dir 2): the same reorder overwriting */
    dnnl_memory_desc_t reorder_pad_md, store_pad_md;
    size_t prim_bytes, reorder_pad, store_pad;
} conv_arg;

/* A primitive with its three tensor arguments: two inputs then one output. */
typedef struct conv_op {
    dnnl_primitive_t prim;
    dnnl_memory_desc_t pad_md;
    conv_arg arg[3];
    int kinds[3];
    size_t pad; /* the primitive's scratchpad bytes */
} conv_op;

typedef struct conv_entry {
    relate_conv2d_dims d;
    int nthreads; /* oneDNN fixes its work split (and so its rounding) at creation */
    conv_op fwd, bwd_data, bwd_weights;
    /* Backward-data and backward-weights read dy in the same blocked layout: reorder it once. */
    int share_dy;
    size_t fwd_bytes, bwd_bytes, pad_bytes;
    int failed;
} conv_entry;

static struct {
    pthread_mutex_t lock;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    int ready; /* 1 ok, -1 unavailable */
    conv_entry *slots[CACHE_SLOTS]; /* ~21 KB each (memory descriptors), so allocated on demand */
    int count;
} g_dnnl = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

#define ALIGN_BYTES(n) (((n) + 63) & ~(size_t)63)

static int same_dims(const relate_conv2d_dims *a, const relate_conv2d_dims *b)
{
    return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w && a->o == b->o &&
           a->kh == b->kh && a->kw == b->kw && a->stride == b->stride && a->pad == b->pad && a->blocked == b->blocked;
}

static size_t query_pad(const_dnnl_primitive_desc_t pd, dnnl_memory_desc_t *md)
{
    const dnnl_memory_desc_t *q = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    memset(md, 0, sizeof *md);
    if (!q)
        return 0;
    *md = *q;
    return dnnl_memory_desc_get_size(q);
}

static void destroy_op(conv_op *op)
{
    if (op->prim)
        dnnl_primitive_destroy(op->prim);
    for (int i = 0; i < 3; i++) {
        if (op->arg[i].reorder)
            dnnl_primitive_destroy(op->arg[i].reorder);
        if (op->arg[i].reorder_store)
            dnnl_primitive_destroy(op->arg[i].reorder_store);
    }
    memset(op, 0, sizeof *op);
}

static void clear_locked(void)
{
    for (int i = 0; i < g_dnnl.count; i++) {
        destroy_op(&g_dnnl.slots[i]->fwd);
        destroy_op(&g_dnnl.slots[i]->bwd_data);
        destroy_op(&g_dnnl.slots[i]->bwd_weights);
        free(g_dnnl.slots[i]);
        g_dnnl.slots[i] = NULL;
    }
    g_dnnl.count = 0;
}

void relate_conv2d_onednn_clear_cache(void)
{
    pthread_mutex_lock(&g_dnnl.lock);
    clear_locked();
    pthread_mutex_unlock(&g_dnnl.lock);
}

static void release_all(void)
{
    pthread_mutex_lock(&g_dnnl.lock);
    clear_locked();
    if (g_dnnl.stream)
        dnnl_stream_destroy(g_dnnl.stream);
    if (g_dnnl.engine)
        dnnl_engine_destroy(g_dnnl.engine);
    g_dnnl.stream = NULL;
    g_dnnl.engine = NULL;
    g_dnnl.ready = -1;
    pthread_mutex_unlock(&g_dnnl.lock);
}

static void init_once(void)
{
    g_dnnl.ready = -1;
    if (dnnl_engine_create(&g_dnnl.engine, dnnl_cpu, 0) == dnnl_success &&
        dnnl_stream_create(&g_dnnl.stream, g_dnnl.engine, dnnl_stream_default_flags) == dnnl_success) {
        g_dnnl.ready = 1;
        /* Handlers run in reverse order of registration, so this one runs before oneDNN's own
         * statics (created with the engine) are torn down; exit then leaves nothing of ours
         * for a leak checker to report. */
        atexit(release_all);
    }
}

/* Fills arg from the layout the primitive chose. `dir`: 1 input (user -> prim), 0 output
 * overwriting relate's buffer, 2 output adding into it (a sum post-op on the reorder: the
 * addition then costs no extra pass over memory, and rounds exactly like a separate `+=`). */
static int prepare_arg(conv_arg *a, const dnnl_memory_desc_t *user, const dnnl_memory_desc_t *chosen, int dir)
{
    a->user = *user;
    a->prim = *chosen;
    a->prim_bytes = dnnl_memory_desc_get_size(chosen);
    if (dnnl_memory_desc_equal(user, chosen))
        return 0;
    dnnl_primitive_attr_t attr;
    dnnl_post_ops_t po = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success)
        return -1;
    int ok = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success;
    if (ok && dir == 2)
        ok = dnnl_post_ops_create(&po) == dnnl_success && dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    dnnl_primitive_desc_t rpd = NULL;
    const dnnl_memory_desc_t *from = dir == 1 ? user : chosen, *to = dir == 1 ? chosen : user;
    ok = ok && dnnl_reorder_primitive_desc_create(&rpd, from, g_dnnl.engine, to, g_dnnl.engine, attr) == dnnl_success;
    if (ok) {
        a->reorder_pad = query_pad(rpd, &a->reorder_pad_md);
        ok = dnnl_primitive_create(&a->reorder, rpd) == dnnl_success;
    }
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    /* An adding output also gets a plain reorder, for a destination nothing has written yet
     * (relate_conv2d_backward_ex's dx_store): it skips reading the destination. Optional: without
     * it a stored output is zeroed and then added to. */
    dnnl_primitive_attr_t plain = NULL;
    if (ok && dir == 2 && dnnl_primitive_attr_create(&plain) == dnnl_success) {
        dnnl_primitive_desc_t spd = NULL;
        if (dnnl_primitive_attr_set_scratchpad_mode(plain, dnnl_scratchpad_mode_user) == dnnl_success &&
            dnnl_reorder_primitive_desc_create(&spd, from, g_dnnl.engine, to, g_dnnl.engine, plain) == dnnl_success) {
            a->store_pad = query_pad(spd, &a->store_pad_md);
            if (a->store_pad > a->reorder_pad || dnnl_primitive_create(&a->reorder_store, spd) != dnnl_success)
                a->reorder_store = NULL; /* the layout's scratchpad is sized for the adding one */
        }
        if (spd)
            dnnl_primitive_desc_destroy(spd);
        dnnl_primitive_attr_destroy(plain);
    }
    if (po)
        dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    return ok ? 0 : -1;
}

static int finish_op(conv_op *op, const_dnnl_primitive_desc_t pd, const dnnl_memory_desc_t *const user[3],
                     const dnnl_query_t what[3], const int kinds[3], int out_dir)
{
    op->pad = query_pad(pd, &op->pad_md);
    for (int i = 0; i < 3; i++) {
        op->kinds[i] = kinds[i];
        const dnnl_memory_desc_t *chosen = dnnl_primitive_desc_query_md(pd, what[i], 0);
        if (!chosen || prepare_arg(&op->arg[i], user[i], chosen, i < 2 ? 1 : out_dir) != 0)
            return -1;
    }
    return dnnl_primitive_create(&op->prim, pd) == dnnl_success ? 0 : -1;
}

static size_t blk_bytes(const conv_arg *a) { return a->reorder ? ALIGN_BYTES(a->prim_bytes) : 0; }

/* Bytes of an output written by the primitive before it reaches relate's buffer: the blocked
 * copy, or for a plain-layout backward output a plain copy that is then added. */
static size_t out_bytes(const conv_arg *a, int accumulate)
{
    return a->reorder || accumulate ? ALIGN_BYTES(a->prim_bytes) : 0;
}

/* Scratch layouts (all offsets from the caller's scratch, which the arena aligns):
 *   forward:  [x blk][w blk][y blk][pad]
 *   backward: [dy blk][phase area][pad], the phase area holding [w blk][dx out] during
 *             backward-data and then [x blk][dy blk if not shared][dw out] during
 *             backward-weights, so the two phases reuse the same bytes. */
static void layout(conv_entry *e)
{
    size_t pad = 0;
    const conv_op *ops[3] = {&e->fwd, &e->bwd_data, &e->bwd_weights};
    for (int k = 0; k < 3; k++) {
        if (ops[k]->pad > pad)
            pad = ops[k]->pad;
        for (int i = 0; i < 3; i++)
            if (ops[k]->arg[i].reorder_pad > pad)
                pad = ops[k]->arg[i].reorder_pad;
    }
    e->pad_bytes = ALIGN_BYTES(pad);
    e->fwd_bytes = blk_bytes(&e->fwd.arg[0]) + blk_bytes(&e->fwd.arg[1]) + blk_bytes(&e->fwd.arg[2]);
    e->share_dy = e->bwd_data.arg[0].reorder && e->bwd_weights.arg[1].reorder &&
                  dnnl_memory_desc_equal(&e->bwd_data.arg[0].prim, &e->bwd_weights.arg[1].prim);
    size_t dy = blk_bytes(&e->bwd_data.arg[0]);
    size_t data = blk_bytes(&e->bwd_data.arg[1]) + out_bytes(&e->bwd_data.arg[2], 1);
    size_t wts = blk_bytes(&e->bwd_weights.arg[0]) + (e->share_dy ? 0 : blk_bytes(&e->bwd_weights.arg[1])) +
                 out_bytes(&e->bwd_weights.arg[2], 1);
    e->bwd_bytes = dy + (data > wts ? data : wts);
}

static int md_desc(dnnl_memory_desc_t *md, const dnnl_dims_t dims, dnnl_format_tag_t tag)
{
    return dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, tag) == dnnl_success ? 0 : -1;
}

/* The primitives choose their own layouts (format_tag any). With plain nchw/oihw instead,
 * oneDNN 2.6 falls back to its im2col + GEMM kernels: resnet32 at batch 128 took 789 ms/step
 * against 312 ms with the blocked layouts (nChw16c / OIhw16i16o), reorders included. */
static int build(conv_entry *e)
{
    const relate_conv2d_dims *d = &e->d;
    dnnl_memory_desc_t src, wei, dst, p_src, p_wei, p_dst;
    dnnl_dims_t sd = {d->n, d->c, d->h, d->w}, wd = {d->o, d->c, d->kh, d->kw}, dd = {d->n, d->o, d->ho, d->wo};
    dnnl_dims_t strides = {d->stride, d->stride}, pl = {d->pad, d->pad};
    /* oneDNN wants the right padding that makes the output size exact (floor mode may leave
     * input columns unused, which is a smaller, possibly negative, right padding). */
    dnnl_dims_t pr = {(int64_t)(d->ho - 1) * d->stride + d->kh - d->h - d->pad,
                      (int64_t)(d->wo - 1) * d->stride + d->kw - d->w - d->pad};
    /* relate's activations: NCHW, or nChw16c inside ResNet blocks, which is what oneDNN's AVX-512
     * kernels choose, so that no reorder runs (on an AVX2 CPU oneDNN picks nChw8c and reorders). */
    const dnnl_format_tag_t in = d->blocked & RELATE_CONV_BLOCKED_X ? dnnl_nChw16c : dnnl_nchw;
    const dnnl_format_tag_t out = d->blocked & RELATE_CONV_BLOCKED_Y ? dnnl_nChw16c : dnnl_nchw;
    if (md_desc(&src, sd, in) || md_desc(&wei, wd, dnnl_oihw) || md_desc(&dst, dd, out) ||
        md_desc(&p_src, sd, dnnl_format_tag_any) || md_desc(&p_wei, wd, dnnl_format_tag_any) ||
        md_desc(&p_dst, dd, dnnl_format_tag_any))
        return -1;
    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success)
        return -1;
    /* User scratchpad: oneDNN allocates nothing per call; the caller's scratch holds it. */
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_convolution_desc_t fd, bd, wdsc;
    dnnl_primitive_desc_t fpd = NULL, bpd = NULL, wpd = NULL;
    int ok = dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &p_src,
                                                &p_wei, NULL, &p_dst, strides, pl, pr) == dnnl_success &&
             dnnl_primitive_desc_create(&fpd, &fd, attr, g_dnnl.engine, NULL) == dnnl_success &&
             dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &p_src, &p_wei, &p_dst,
                                                      strides, pl, pr) == dnnl_success &&
             dnnl_primitive_desc_create(&bpd, &bd, attr, g_dnnl.engine, fpd) == dnnl_success &&
             dnnl_convolution_backward_weights_desc_init(&wdsc, dnnl_convolution_direct, &p_src, &p_wei, NULL,
                                                         &p_dst, strides, pl, pr) == dnnl_success &&
             dnnl_primitive_desc_create(&wpd, &wdsc, attr, g_dnnl.engine, fpd) == dnnl_success;
    if (ok) {
        const dnnl_memory_desc_t *fu[3] = {&src, &wei, &dst}, *bu[3] = {&dst, &wei, &src}, *wu[3] = {&src, &dst, &wei};
        const dnnl_query_t fq[3] = {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md};
        const dnnl_query_t bq[3] = {dnnl_query_diff_dst_md, dnnl_query_weights_md, dnnl_query_diff_src_md};
        const dnnl_query_t wq[3] = {dnnl_query_src_md, dnnl_query_diff_dst_md, dnnl_query_diff_weights_md};
        const int fk[3] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST};
        const int bk[3] = {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC};
        const int wk[3] = {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS};
        ok = finish_op(&e->fwd, fpd, fu, fq, fk, 0) == 0 && finish_op(&e->bwd_data, bpd, bu, bq, bk, 2) == 0 &&
             finish_op(&e->bwd_weights, wpd, wu, wq, wk, 2) == 0;
    }
    if (fpd)
        dnnl_primitive_desc_destroy(fpd);
    if (bpd)
        dnnl_primitive_desc_destroy(bpd);
    if (wpd)
        dnnl_primitive_desc_destroy(wpd);
    dnnl_primitive_attr_destroy(attr);
    if (ok)
        layout(e);
    return ok ? 0 : -1;
}

/* The cache entry for d at the current thread count, built on first use; NULL when oneDNN
 * cannot run this shape (or the table is full). */
static conv_entry *entry_for(const relate_conv2d_dims *d)
{
    pthread_once(&g_once, init_once);
    const int nthreads = omp_get_max_threads();
    conv_entry *found = NULL;
    pthread_mutex_lock(&g_dnnl.lock);
    if (g_dnnl.ready == 1) {
        for (int i = 0; i < g_dnnl.count && !found; i++)
            if (same_dims(&g_dnnl.slots[i]->d, d) && g_dnnl.slots[i]->nthreads == nthreads)
                found = g_dnnl.slots[i];
        conv_entry *e = !found && g_dnnl.count < CACHE_SLOTS ? calloc(1, sizeof *e) : NULL;
        if (e) {
            g_dnnl.slots[g_dnnl.count++] = e;
            e->d = *d;
            e->nthreads = nthreads;
            if (build(e) != 0) {
                destroy_op(&e->fwd);
                destroy_op(&e->bwd_data);
                destroy_op(&e->bwd_weights);
                e->failed = 1;
            }
            found = e;
        }
        if (found && found->failed)
            found = NULL;
    }
    pthread_mutex_unlock(&g_dnnl.lock);
    return found;
}

size_t relate_conv2d_onednn_scratch_floats(const relate_conv2d_dims *d)
{
    conv_entry *e = entry_for(d);
    if (!e)
        return 0;
    size_t most = e->fwd_bytes > e->bwd_bytes ? e->fwd_bytes : e->bwd_bytes;
    return (most + e->pad_bytes) / sizeof(float) + 16;
}

int relate_conv2d_onednn_activation_reorders(const relate_conv2d_dims *d)
{
    const conv_entry *e = entry_for(d);
    if (!e)
        return -1;
    /* Each op's activation arguments: fwd [src, -, dst], bwd_data [diff_dst, -, diff_src],
     * bwd_weights [src, diff_dst, -]. */
    const conv_arg *acts[6] = {&e->fwd.arg[0],      &e->fwd.arg[2],         &e->bwd_data.arg[0],
                               &e->bwd_data.arg[2], &e->bwd_weights.arg[0], &e->bwd_weights.arg[1]};
    int n = 0;
    for (int i = 0; i < 6; i++)
        n += acts[i]->reorder != 0;
    return n;
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

/* Reorders between relate's buffer and the blocked one; `input` picks the direction. */
static int reorder(const conv_arg *a, int input, const void *user, void *blk, void *pad)
{
    static const int kinds[3] = {DNNL_ARG_FROM, DNNL_ARG_TO, DNNL_ARG_SCRATCHPAD};
    const dnnl_memory_desc_t *mds[3] = {input ? &a->user : &a->prim, input ? &a->prim : &a->user, &a->reorder_pad_md};
    void *ptrs[3] = {input ? (void *)user : blk, input ? blk : (void *)user, pad};
    return exec(a->reorder, a->reorder_pad ? 3 : 2, kinds, mds, ptrs);
}

static int run(const conv_op *op, void *in0, void *in1, void *out, void *pad)
{
    const int kinds[4] = {op->kinds[0], op->kinds[1], op->kinds[2], DNNL_ARG_SCRATCHPAD};
    const dnnl_memory_desc_t *mds[4] = {&op->arg[0].prim, &op->arg[1].prim, &op->arg[2].prim, &op->pad_md};
    void *ptrs[4] = {in0, in1, out, pad};
    return exec(op->prim, op->pad ? 4 : 3, kinds, mds, ptrs);
}

/* The buffer the primitive reads input i from: relate's own, or a blocked copy carved at *cur. */
static void *input_buf(const conv_arg *a, const void *user, unsigned char **cur, void *pad, int *err)
{
    if (!a->reorder)
        return (void *)user;
    void *b = *cur;
    *cur += blk_bytes(a);
    if (reorder(a, 1, user, b, pad) != 0)
        *err = 1;
    return b;
}

int relate_conv2d_onednn_forward(float *y, const float *x, const float *w, const relate_conv2d_dims *d,
                                 float *scratch)
{
    conv_entry *e = entry_for(d);
    if (!e)
        return -1;
    const conv_op *op = &e->fwd;
    unsigned char *cur = (unsigned char *)scratch;
    void *pad = cur + e->fwd_bytes;
    int err = 0;
    void *bx = input_buf(&op->arg[0], x, &cur, pad, &err);
    void *bw = input_buf(&op->arg[1], w, &cur, pad, &err);
    void *by = op->arg[2].reorder ? (void *)cur : (void *)y;
    if (err || run(op, bx, bw, by, pad) != 0)
        return -1;
    if (op->arg[2].reorder && reorder(&op->arg[2], 0, y, by, pad) != 0)
        return -1;
    return dnnl_stream_wait(g_dnnl.stream) == dnnl_success ? 0 : -1;
}

/* Lands the primitive's output `out` (n floats) in relate's buffer: added to it, or stored when
 * `store` (dst is then never read). */
static int accumulate(const conv_arg *a, float *dst, const void *out, size_t n, void *pad, bool store)
{
    if (a->reorder && store && a->reorder_store) {
        static const int kinds[3] = {DNNL_ARG_FROM, DNNL_ARG_TO, DNNL_ARG_SCRATCHPAD};
        const dnnl_memory_desc_t *mds[3] = {&a->prim, &a->user, &a->store_pad_md};
        void *ptrs[3] = {(void *)out, dst, pad};
        return exec(a->reorder_store, a->store_pad ? 3 : 2, kinds, mds, ptrs);
    }
    if (a->reorder) {
        if (store)
            memset(dst, 0, n * sizeof *dst);
        return reorder(a, 0, dst, (void *)out, pad);
    }
    if (dnnl_stream_wait(g_dnnl.stream) != dnnl_success)
        return -1;
    const float *t = out;
    if (store) {
        memcpy(dst, t, n * sizeof *dst);
        return 0;
    }
    /* Fixed static split: the sums do not depend on timing. */
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (size_t i = 0; i < n; i++)
        dst[i] += t[i];
    return 0;
}

/* oneDNN overwrites its outputs; relate's backward accumulates, so each output goes through a
 * summing reorder (or a plain add). Each gradient that has been fully accumulated is cleared
 * from *dx / *dw, so after a failure the caller redoes only what is missing. */
int relate_conv2d_onednn_backward(float **dx, float **dw, const float *dy, const float *x, const float *w,
                                  const relate_conv2d_dims *d, float *scratch, bool dx_store)
{
    conv_entry *e = entry_for(d);
    if (!e)
        return -1;
    unsigned char *base = (unsigned char *)scratch;
    void *pad = base + e->bwd_bytes;
    unsigned char *phase = base + blk_bytes(&e->bwd_data.arg[0]);
    int err = 0;
    void *bdy = NULL; /* dy in the layout both primitives share, once reordered */
    if (*dx) {
        const conv_op *op = &e->bwd_data;
        unsigned char *cur = base;
        bdy = input_buf(&op->arg[0], dy, &cur, pad, &err);
        cur = phase;
        void *bw = input_buf(&op->arg[1], w, &cur, pad, &err);
        /* A fresh dx already in the primitive's layout (nChw16c activations) is written in place. */
        const bool direct = dx_store && !op->arg[2].reorder;
        void *out = direct ? (void *)*dx : cur;
        if (err || run(op, bdy, bw, out, pad) != 0 ||
            (!direct && accumulate(&op->arg[2], *dx, out, (size_t)d->n * d->c * d->h * d->w, pad, dx_store) != 0))
            return -1;
        *dx = NULL;
    }
    if (*dw) {
        const conv_op *op = &e->bwd_weights;
        unsigned char *cur = phase;
        void *bx = input_buf(&op->arg[0], x, &cur, pad, &err);
        void *bd;
        if (e->share_dy) {
            if (!bdy) {
                unsigned char *c0 = base;
                bdy = input_buf(&op->arg[1], dy, &c0, pad, &err);
            }
            bd = bdy;
        } else {
            bd = input_buf(&op->arg[1], dy, &cur, pad, &err);
        }
        void *out = cur;
        if (err || run(op, bx, bd, out, pad) != 0 ||
            accumulate(&op->arg[2], *dw, out, (size_t)d->o * d->c * d->kh * d->kw, pad, false) != 0)
            return -1;
        *dw = NULL;
    }
    return dnnl_stream_wait(g_dnnl.stream) == dnnl_success ? 0 : -1;
}
