/* ops_nn.c: graph ops for the layers of the backbones and heads (conv, batch norm, pooling,
 * linear), each a shape check + a kernel call + a recorded backward.
 * Not the arithmetic: that lives in src/kernels/. */
#include <string.h>

#include "autograd/graph_internal.h"
#include "kernels/kernels.h"
#include "relate/dist.h"

#define SHAPE(t, buf) relate_shape_str((t), (buf), sizeof(buf))

/* ------------------------------------------------------------------ conv2d */
typedef struct {
    relate_tensor *x, *w, *y;
    relate_conv2d_dims d;
} conv_ctx;

static double conv_flops(const relate_conv2d_dims *d)
{
    return 2.0 * d->n * d->o * d->ho * d->wo * d->c * d->kh * d->kw;
}

static void conv2d_backward(relate_graph *g, void *p)
{
    conv_ctx *c = p;
    if (!c->y->grad)
        return;
    bool store_dx;
    float *dx = relate_grad_to_write(g, c->x, &store_dx), *dw = relate_grad_of(g, c->w);
    if (!dx && !dw)
        return;
    float *scratch = relate_graph_workspace(g, relate_conv2d_scratch_floats(&c->d, relate_get_threads()) * sizeof(float));
    relate_graph_count(g, conv_flops(&c->d) * ((dx != NULL) + (dw != NULL)), 0);
    if (scratch)
        relate_conv2d_backward_ex(dx, dw, c->y->grad, c->x->data, c->w->data, &c->d, scratch, store_dx);
    else if (store_dx) /* the step has failed; leave no uninitialised gradient behind */
        memset(dx, 0, (size_t)c->x->numel * sizeof *dx);
}

/* The convolution's dims for input x and weight w, or false with the step failed on a mismatch. */
static bool conv_dims_of(relate_graph *g, const relate_tensor *x, const relate_tensor *w, int stride, int pad,
                         relate_conv2d_dims *d)
{
    char a[64], b[64];
    if (x->ndim != 4 || w->ndim != 4 || x->shape[1] != w->shape[1]) {
        relate_graph_fail(g, RELATE_ERR_SHAPE, "conv2d: input %s does not fit weight %s (need [N,C,H,W] and [O,C,KH,KW])",
                          SHAPE(x, a), SHAPE(w, b));
        return false;
    }
    *d = (relate_conv2d_dims){.n = (int)x->shape[0], .c = (int)x->shape[1], .h = (int)x->shape[2],
                              .w = (int)x->shape[3], .o = (int)w->shape[0], .kh = (int)w->shape[2],
                              .kw = (int)w->shape[3], .stride = stride, .pad = pad};
    if (relate_conv2d_dims_init(d) != 0) {
        relate_graph_fail(g, RELATE_ERR_SHAPE, "conv2d: a %dx%d kernel with stride %d and padding %d does not fit input %s",
                          d->kh, d->kw, stride, pad, SHAPE(x, a));
        return false;
    }
    return true;
}

/* y blocked when x is, or when out_blocked (an NCHW x with any channel count: conv4's second layer). */
static relate_tensor *conv2d_op(relate_graph *g, relate_tensor *x, relate_tensor *w, int stride, int pad,
                                bool out_blocked)
{
    if (!x || !w)
        return NULL;
    relate_conv2d_dims d;
    if (!conv_dims_of(g, x, w, stride, pad, &d))
        return NULL;
    d.blocked = (x->blocked16 ? RELATE_CONV_BLOCKED_X : 0) | (x->blocked16 || out_blocked ? RELATE_CONV_BLOCKED_Y : 0);
    if (d.blocked && !relate_conv2d_blocked_fits(&d))
        return relate_graph_fail(g, RELATE_ERR_SHAPE,
                                 "conv2d: %d -> %d channels on %dx%d cannot run in the nChw16c layout (oneDNN's, with "
                                 "channel counts that are multiples of 16)", d.c, d.o, d.h, d.w);
    relate_tensor *y = relate_op_output_layout(g, 4, (int64_t[]){d.n, d.o, d.ho, d.wo}, x, w,
                                               (d.blocked & RELATE_CONV_BLOCKED_Y) != 0);
    float *scratch = y ? relate_graph_workspace(g, relate_conv2d_scratch_floats(&d, relate_get_threads()) * sizeof(float)) : NULL;
    if (!scratch)
        return NULL;
    relate_conv2d_forward(y->data, x->data, w->data, &d, scratch);
    relate_graph_count(g, conv_flops(&d), (double)y->numel * sizeof(float));
    if (y->requires_grad && !relate_op_save(g, conv2d_backward, &(conv_ctx){x, w, y, d}, sizeof(conv_ctx)))
        return NULL;
    return y;
}

relate_tensor *relate_conv2d(relate_graph *g, relate_tensor *x, relate_tensor *w, int stride, int pad)
{
    return conv2d_op(g, x, w, stride, pad, false);
}

relate_tensor *relate_conv2d_to_blocked16(relate_graph *g, relate_tensor *x, relate_tensor *w, int stride, int pad)
{
    if (x && x->blocked16)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "conv2d_to_blocked16: the input is already in nChw16c");
    return conv2d_op(g, x, w, stride, pad, true);
}

/* ------------------------------------------------------------------ batch norm */
typedef struct {
    relate_tensor *x, *gamma, *beta, *y;
    relate_tensor *residual;       /* fused epilogue: y = relu?(bn(x) + residual) */
    bool relu;
    float *mean, *invstd;          /* training */
    const float *rmean, *rvar;     /* eval */
    int n, c, hw;
    bool training;
    bool sync;                     /* statistics over every process (relate_graph_set_sync_batch) */
    bool blocked;                  /* x, y, residual in nChw16c (relate_bn16_*) */
    float eps;
} bn_ctx;

/* The synchronised kernels' reduction: sums over the processes, the same bits on each. */
static int bn_reduce_dist(double *buf, size_t len, void *user)
{
    relate_error *err = user;
    return relate_dist_allreduce_sum_f64(buf, len, err) == RELATE_OK ? 0 : -1;
}

static void bn_sync_failed(relate_graph *g, const relate_error *e, const char *where)
{
    if (e->code != RELATE_OK)
        relate_graph_fail(g, e->code, "synchronised batch norm (%s): %s", where, e->msg);
    else
        relate_graph_fail(g, RELATE_ERR_NOMEM, "out of memory in synchronised batch norm (%s)", where);
}

static void bn_backward(relate_graph *g, void *p)
{
    bn_ctx *b = p;
    if (!b->y->grad)
        return;
    if (b->blocked) {
        bool store_dx, store_dres;
        float *dres = relate_grad_to_write(g, b->residual, &store_dres);
        float *dx = relate_grad_to_write(g, b->x, &store_dx);
        float *dg = relate_grad_of(g, b->gamma), *db = relate_grad_of(g, b->beta);
        if (relate_bn16_backward_train(dx, dg, db, b->y->grad, b->x->data, b->mean, b->invstd, b->gamma->data, b->n,
                                       b->c, b->hw, b->relu ? b->y->data : NULL, dres,
                                       (store_dx ? RELATE_BN_STORE_DX : 0u) |
                                           (store_dres ? RELATE_BN_STORE_DRESIDUAL : 0u)) != 0)
            relate_graph_fail(g, RELATE_ERR_NOMEM, "out of memory in batch_norm's backward (nChw16c)");
        return;
    }
    if (!b->sync && b->training && b->hw > 1) {
        /* The ReLU mask and the residual's gradient are applied inside the kernel's passes, which
         * store dx and dresidual outright when nothing has added to them yet. */
        bool store_dx, store_dres;
        float *dres = relate_grad_to_write(g, b->residual, &store_dres);
        float *dx = relate_grad_to_write(g, b->x, &store_dx);
        float *dg = relate_grad_of(g, b->gamma), *db = relate_grad_of(g, b->beta);
        relate_batchnorm_backward_train_ep(dx, dg, db, b->y->grad, b->x->data, b->mean, b->invstd, b->gamma->data,
                                           b->n, b->c, b->hw, b->relu ? b->y->data : NULL, dres,
                                           (store_dx ? RELATE_BN_STORE_DX : 0u) |
                                               (store_dres ? RELATE_BN_STORE_DRESIDUAL : 0u));
        return;
    }
    float *dres = relate_grad_of(g, b->residual);
    float *dx = relate_grad_of(g, b->x), *dg = relate_grad_of(g, b->gamma), *db = relate_grad_of(g, b->beta);
    const size_t count = (size_t)b->y->numel;
    if (b->sync) {
        relate_error e = {0};
        if (relate_batchnorm_backward_train_sync(dx, dg, db, b->y->grad, b->x->data, b->mean, b->invstd,
                                                 b->gamma->data, b->n, b->c, b->hw, b->relu ? b->y->data : NULL, dres,
                                                 bn_reduce_dist, &e) != 0)
            bn_sync_failed(g, &e, "backward");
        return;
    }
    /* Otherwise the epilogue's gradient first: dz = dy where y > 0 (torch.relu's rule), which is
     * also the residual's gradient; it lives in the workspace while the kernels run. */
    const float *dz = b->y->grad;
    if (b->relu) {
        float *mask = relate_graph_workspace(g, count * sizeof(float));
        if (!mask)
            return;
        relate_relu_mask(mask, b->y->grad, b->y->data, count);
        dz = mask;
    }
    if (dres)
        relate_axpy(dres, dz, 1.0f, count);
    if (b->training)
        relate_batchnorm_backward_train(dx, dg, db, dz, b->x->data, b->mean, b->invstd,
                                        b->gamma->data, b->n, b->c, b->hw);
    else
        relate_batchnorm_backward_eval(dx, dg, db, dz, b->x->data, b->gamma->data, b->rmean,
                                       b->rvar, b->n, b->c, b->hw, b->eps);
}

relate_tensor *relate_batch_norm(relate_graph *g, relate_tensor *x, relate_tensor *gamma,
                                 relate_tensor *beta, float *running_mean, float *running_var,
                                 int64_t *num_batches_tracked, bool training, float momentum, float eps)
{
    return relate_batch_norm_act(g, x, gamma, beta, running_mean, running_var, num_batches_tracked, training,
                                 momentum, eps, NULL, false);
}

relate_tensor *relate_batch_norm_act(relate_graph *g, relate_tensor *x, relate_tensor *gamma,
                                     relate_tensor *beta, float *running_mean, float *running_var,
                                     int64_t *num_batches_tracked, bool training, float momentum, float eps,
                                     relate_tensor *residual, bool relu)
{
    if (!x || !gamma || !beta)
        return NULL;
    char a[64];
    if (x->ndim != 2 && x->ndim != 4)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "batch_norm: expected [N,C] or [N,C,H,W], got %s", SHAPE(x, a));
    int n = (int)x->shape[0], c = (int)x->shape[1];
    int hw = x->ndim == 4 ? (int)(x->shape[2] * x->shape[3]) : 1;
    if (gamma->numel != c || beta->numel != c)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "batch_norm: %d channels but %lld affine weights",
                                 c, (long long)gamma->numel);
    if (training && (int64_t)n * hw <= 1)
        return relate_graph_fail(g, RELATE_ERR_SHAPE,
                                 "batch_norm: expected more than 1 value per channel when training, got input %s "
                                 "(use a batch of at least 2)", SHAPE(x, a));
    if (!training && (!running_mean || !running_var))
        return relate_graph_fail(g, RELATE_ERR_INTERNAL, "batch_norm: eval mode needs running statistics");
    if (residual && (residual->ndim != x->ndim || residual->numel != x->numel))
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "batch_norm: residual %s does not match input",
                                 SHAPE(residual, a));
    if (x->blocked16 && (!training || g->sync_batch || x->ndim != 4 || c % 16))
        return relate_graph_fail(g, RELATE_ERR_INTERNAL, "batch_norm: the nChw16c layout is built for training "
                                 "without synchronised statistics, on [N,C,H,W] with C a multiple of 16");
    if (residual && residual->blocked16 != x->blocked16)
        return relate_graph_fail(g, RELATE_ERR_INTERNAL, "batch_norm: the residual's layout is not the input's");
    relate_tensor *y = relate_op_output_layout(g, x->ndim, x->shape, x, gamma, x->blocked16);
    if (!y)
        return NULL;
    if (g->grad_enabled && (beta->requires_grad || (residual && residual->requires_grad)))
        y->requires_grad = true;
    bn_ctx b = {x, gamma, beta, y, residual, relu, NULL, NULL, running_mean, running_var, n, c, hw, training,
                training && g->sync_batch, x->blocked16, eps};
    const relate_bn_epilogue ep = {residual ? residual->data : NULL, relu};
    const relate_bn_epilogue *epp = residual || relu ? &ep : NULL;
    if (training) {
        b.mean = relate_graph_scratch(g, 2 * (size_t)c * sizeof(float));
        if (!b.mean)
            return NULL;
        b.invstd = b.mean + c;
        if (b.blocked) {
            if (relate_bn16_forward_train(y->data, b.mean, b.invstd, x->data, gamma->data, beta->data, running_mean,
                                          running_var, n, c, hw, momentum, eps, epp) != 0)
                return relate_graph_fail(g, RELATE_ERR_NOMEM, "out of memory in batch_norm (nChw16c)");
        } else if (b.sync) {
            relate_error e = {0};
            if (relate_batchnorm_forward_train_sync(y->data, b.mean, b.invstd, x->data, gamma->data, beta->data,
                                                    running_mean, running_var, n, c, hw, momentum, eps, epp,
                                                    bn_reduce_dist, &e) != 0) {
                bn_sync_failed(g, &e, "forward");
                return NULL;
            }
        } else {
            relate_batchnorm_forward_train_ep(y->data, b.mean, b.invstd, x->data, gamma->data, beta->data,
                                              running_mean, running_var, n, c, hw, momentum, eps, epp);
        }
        if (num_batches_tracked)
            (*num_batches_tracked)++;
    } else {
        relate_batchnorm_forward_eval_ep(y->data, x->data, gamma->data, beta->data, running_mean,
                                         running_var, n, c, hw, eps, epp);
    }
    if (y->requires_grad && !relate_op_save(g, bn_backward, &b, sizeof b))
        return NULL;
    return y;
}

/* ------------------------------------------------------------------ batch norm + ReLU + 2x2 pool */
typedef struct {
    relate_tensor *x, *gamma, *beta, *y;
    float *mean, *invstd;
    bool blocked; /* x and y in nChw16c */
} bnpool_ctx;

static void bnpool_backward(relate_graph *g, void *p)
{
    bnpool_ctx *b = p;
    if (!b->y->grad)
        return;
    bool store_dx;
    float *dx = relate_grad_to_write(g, b->x, &store_dx);
    float *dg = relate_grad_of(g, b->gamma), *db = relate_grad_of(g, b->beta);
    const int n = (int)b->x->shape[0], c = (int)b->x->shape[1], h = (int)b->x->shape[2], w = (int)b->x->shape[3];
    if ((b->blocked ? relate_bn16_relu_pool2_backward_train
                    : relate_bn_relu_pool2_backward_train)(dx, dg, db, b->y->grad, b->x->data, b->mean, b->invstd,
                                                           b->gamma->data, b->beta->data, n, c, h, w, store_dx) != 0)
        relate_graph_fail(g, RELATE_ERR_NOMEM, "out of memory in batch_norm_relu_pool2's backward");
}

relate_tensor *relate_batch_norm_relu_pool2(relate_graph *g, relate_tensor *x, relate_tensor *gamma,
                                            relate_tensor *beta, float *running_mean, float *running_var,
                                            int64_t *num_batches_tracked, float momentum, float eps)
{
    if (!x || !gamma || !beta)
        return NULL;
    char a[64];
    if (x->ndim != 4 || x->shape[2] < 2 || x->shape[3] < 2)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "batch_norm_relu_pool2: expected [N,C,H,W] with H, W >= 2, got %s",
                                 SHAPE(x, a));
    const int n = (int)x->shape[0], c = (int)x->shape[1], h = (int)x->shape[2], w = (int)x->shape[3];
    if (gamma->numel != c || beta->numel != c)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "batch_norm: %d channels but %lld affine weights",
                                 c, (long long)gamma->numel);
    /* Across processes, the three ops it fuses: the synchronised batch norm needs the whole
     * batch's statistics before any output, which the fused kernel's single pass does not wait for.
     * Same function; only rounding order differs. */
    if (g->sync_batch && x->blocked16)
        return relate_graph_fail(g, RELATE_ERR_INTERNAL, "batch_norm_relu_pool2: no synchronised statistics in nChw16c");
    if (x->blocked16 && c % 16)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "batch_norm_relu_pool2: nChw16c needs a multiple of 16 channels");
    if (g->sync_batch)
        return relate_avg_pool2d(g, relate_batch_norm_act(g, x, gamma, beta, running_mean, running_var,
                                                          num_batches_tracked, true, momentum, eps, NULL, true),
                                 2, 2, 0);
    relate_tensor *y = relate_op_output_layout(g, 4, (int64_t[]){n, c, h / 2, w / 2}, x, gamma, x->blocked16);
    if (!y)
        return NULL;
    if (beta->requires_grad)
        y->requires_grad = true;
    bnpool_ctx b = {x, gamma, beta, y, relate_graph_scratch(g, 2 * (size_t)c * sizeof(float)), NULL, x->blocked16};
    if (!b.mean)
        return NULL;
    b.invstd = b.mean + c;
    if ((b.blocked ? relate_bn16_relu_pool2_forward_train
                   : relate_bn_relu_pool2_forward_train)(y->data, b.mean, b.invstd, x->data, gamma->data, beta->data,
                                                         running_mean, running_var, n, c, h, w, momentum, eps) != 0)
        return relate_graph_fail(g, RELATE_ERR_NOMEM, "out of memory in batch_norm_relu_pool2");
    if (num_batches_tracked)
        (*num_batches_tracked)++;
    if (y->requires_grad && !relate_op_save(g, bnpool_backward, &b, sizeof b))
        return NULL;
    return y;
}

/* ------------------------------------------------------------------ batch norm + ReLU + conv */
typedef struct {
    relate_tensor *x, *gamma, *beta, *w, *z;
    relate_conv2d_dims d; /* d.blocked: x and z in nChw16c */
    float *mean, *invstd;
} bnconv_ctx;

/* Workspace of the fused op: [the batch norm's output y][the gradient of y][the convolution's
 * scratch], each region starting on a 64-byte line (the convolution's scratch needs it). */
static size_t bnconv_region(size_t floats) { return (floats + 15) & ~(size_t)15; }

static void bnconv_backward(relate_graph *g, void *p)
{
    bnconv_ctx *b = p;
    if (!b->z->grad)
        return;
    const relate_conv2d_dims *d = &b->d;
    const size_t ny = bnconv_region((size_t)d->n * d->c * d->h * d->w);
    float *dw = relate_grad_of(g, b->w), *dg = relate_grad_of(g, b->gamma), *db = relate_grad_of(g, b->beta);
    bool store_dx;
    float *dx = relate_grad_to_write(g, b->x, &store_dx);
    const bool bn_grads = dx || dg || db;
    const size_t conv = relate_conv2d_scratch_floats(d, relate_get_threads());
    float *y = relate_graph_workspace(g, (2 * ny + conv) * sizeof(float));
    if (!y) {
        if (store_dx) /* the step has failed; leave no uninitialised gradient behind */
            memset(dx, 0, (size_t)b->x->numel * sizeof *dx);
        return;
    }
    float *dy = y + ny, *scratch = dy + ny;
    const relate_bn_epilogue relu = {NULL, true};
    if (d->blocked) {
        if (relate_bn16_apply_saved(y, b->x->data, b->mean, b->invstd, b->gamma->data, b->beta->data, d->n, d->c,
                                    d->h * d->w, &relu) != 0) {
            relate_graph_fail(g, RELATE_ERR_NOMEM, "out of memory in bn_relu_conv2d's backward (nChw16c)");
            if (store_dx)
                memset(dx, 0, (size_t)b->x->numel * sizeof *dx);
            return;
        }
    } else {
        relate_batchnorm_apply_saved(y, b->x->data, b->mean, b->invstd, b->gamma->data, b->beta->data, d->n, d->c,
                                     d->h * d->w, &relu);
    }
    relate_graph_count(g, conv_flops(d) * (bn_grads + (dw != NULL)), 0);
    relate_conv2d_backward_ex(bn_grads ? dy : NULL, dw, b->z->grad, y, b->w->data, d, scratch, true);
    if (bn_grads && d->blocked) {
        if (relate_bn16_backward_train(dx, dg, db, dy, b->x->data, b->mean, b->invstd, b->gamma->data, d->n, d->c,
                                       d->h * d->w, y, NULL, store_dx ? RELATE_BN_STORE_DX : 0u) != 0) {
            relate_graph_fail(g, RELATE_ERR_NOMEM, "out of memory in bn_relu_conv2d's backward (nChw16c)");
            if (store_dx)
                memset(dx, 0, (size_t)b->x->numel * sizeof *dx);
        }
    } else if (bn_grads) {
        relate_batchnorm_backward_train_ep(dx, dg, db, dy, b->x->data, b->mean, b->invstd, b->gamma->data, d->n,
                                           d->c, d->h * d->w, y, NULL, store_dx ? RELATE_BN_STORE_DX : 0u);
    }
}

relate_tensor *relate_bn_relu_conv2d(relate_graph *g, relate_tensor *x, relate_tensor *gamma, relate_tensor *beta,
                                     float *running_mean, float *running_var, int64_t *num_batches_tracked,
                                     float momentum, float eps, relate_tensor *w, int stride, int pad)
{
    if (!x || !gamma || !beta || !w)
        return NULL;
    const bool grads = g->grad_enabled && (x->requires_grad || gamma->requires_grad || beta->requires_grad ||
                                           w->requires_grad);
    /* Without a backward pass there is nothing to recompute; synchronised statistics need the
     * other processes between their two passes, which the composed ops already arrange; and
     * hw == 1 takes batch norm's other layout. */
    if (!grads || g->sync_batch || x->ndim != 4 || x->shape[2] * x->shape[3] == 1)
        return relate_conv2d(g, relate_batch_norm_act(g, x, gamma, beta, running_mean, running_var,
                                                      num_batches_tracked, true, momentum, eps, NULL, true),
                             w, stride, pad);
    const int n = (int)x->shape[0], c = (int)x->shape[1], hw = (int)(x->shape[2] * x->shape[3]);
    if (gamma->numel != c || beta->numel != c)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "batch_norm: %d channels but %lld affine weights", c,
                                 (long long)gamma->numel);
    /* n * hw > 1 holds: hw > 1 here. */
    bnconv_ctx b = {.x = x, .gamma = gamma, .beta = beta, .w = w};
    if (!conv_dims_of(g, x, w, stride, pad, &b.d))
        return NULL;
    if (x->blocked16)
        b.d.blocked = RELATE_CONV_BLOCKED_X | RELATE_CONV_BLOCKED_Y;
    if (x->blocked16 && (c % 16 || !relate_conv2d_blocked_fits(&b.d)))
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "bn_relu_conv2d: %d -> %d channels on %dx%d cannot run in the "
                                 "nChw16c layout", b.d.c, b.d.o, b.d.h, b.d.w);
    b.mean = relate_graph_scratch(g, 2 * (size_t)c * sizeof(float));
    if (!b.mean)
        return NULL;
    b.invstd = b.mean + c;
    b.z = relate_op_output_layout(g, 4, (int64_t[]){n, b.d.o, b.d.ho, b.d.wo}, x, w, x->blocked16);
    if (!b.z)
        return NULL;
    b.z->requires_grad = true;
    const size_t ny = bnconv_region((size_t)x->numel);
    float *y = relate_graph_workspace(g, (ny + relate_conv2d_scratch_floats(&b.d, relate_get_threads())) *
                                             sizeof(float));
    if (!y)
        return NULL;
    const relate_bn_epilogue relu = {NULL, true};
    if (!b.d.blocked)
        relate_batchnorm_forward_train_ep(y, b.mean, b.invstd, x->data, gamma->data, beta->data, running_mean,
                                          running_var, n, c, hw, momentum, eps, &relu);
    else if (relate_bn16_forward_train(y, b.mean, b.invstd, x->data, gamma->data, beta->data, running_mean,
                                       running_var, n, c, hw, momentum, eps, &relu) != 0)
        return relate_graph_fail(g, RELATE_ERR_NOMEM, "out of memory in bn_relu_conv2d (nChw16c)");
    if (num_batches_tracked)
        (*num_batches_tracked)++;
    relate_conv2d_forward(b.z->data, y, w->data, &b.d, y + ny);
    relate_graph_count(g, conv_flops(&b.d), (double)b.z->numel * sizeof(float)); /* as relate_conv2d */
    if (!relate_op_save(g, bnconv_backward, &b, sizeof b))
        return NULL;
    return b.z;
}

/* ------------------------------------------------------------------ stem conv + batch norm + ReLU + 2x2 pool */
typedef struct {
    relate_tensor *x, *w, *gamma, *beta, *y;
    float *z; /* the convolution's output [n, o, h, w]: batch norm's input, kept for the backward */
    relate_conv2d_dims d;
    float *mean, *invstd;
} convpool_ctx;

/* What the stem's weight gradient asks for, image by image: dz, batch norm's input gradient. */
typedef struct {
    const float *z, *dy, *coef, *mean;
    int c, h, w;
} convpool_dz_ctx;

static void convpool_dz_image(float *dz_image, float *tmp, int i, void *p)
{
    const convpool_dz_ctx *k = p;
    const size_t img = (size_t)k->c * k->h * k->w, pooled = (size_t)k->c * (k->h / 2) * (k->w / 2);
    relate_bn_relu_pool2_dx_image(dz_image, tmp, k->z + (size_t)i * img, k->dy + (size_t)i * pooled, k->coef,
                                  k->mean, k->c, k->h, k->w);
}

static size_t convpool_tmp(const relate_conv2d_dims *d) { return (size_t)d->ho * d->wo + (size_t)d->wo; }

static void convpool_backward(relate_graph *g, void *p)
{
    convpool_ctx *b = p;
    if (!b->y->grad)
        return;
    const relate_conv2d_dims *d = &b->d;
    float *dw = relate_grad_of(g, b->w), *dg = relate_grad_of(g, b->gamma), *db = relate_grad_of(g, b->beta);
    if (!dw && !dg && !db)
        return;
    const size_t ncoef = bnconv_region(5 * (size_t)d->o), tmp = convpool_tmp(d);
    const size_t conv = relate_conv2d_weight_grad_fn_scratch_floats(d, relate_get_threads(), tmp);
    if (conv == 0) {
        /* The direct kernel does not run here any more (the backend changed since the forward):
         * the composed ops' backward, dz materialised in the workspace. */
        const size_t nz = bnconv_region((size_t)d->n * d->o * d->ho * d->wo);
        float *dz = relate_graph_workspace(g, (nz + relate_conv2d_scratch_floats(d, relate_get_threads())) *
                                                  sizeof(float));
        if (!dz)
            return;
        if (relate_bn_relu_pool2_backward_train(dz, dg, db, b->y->grad, b->z, b->mean, b->invstd, b->gamma->data,
                                                b->beta->data, d->n, d->o, d->ho, d->wo, true) != 0) {
            relate_graph_fail(g, RELATE_ERR_NOMEM, "out of memory in conv2d_bn_relu_pool2's backward");
            return;
        }
        if (dw) {
            relate_graph_count(g, conv_flops(d), 0);
            relate_conv2d_backward(NULL, dw, dz, b->x->data, b->w->data, d, dz + nz);
        }
        return;
    }
    float *coef = relate_graph_workspace(g, (ncoef + conv) * sizeof(float));
    if (!coef)
        return;
    if (relate_bn_relu_pool2_backward_coefs(coef, dg, db, b->y->grad, b->z, b->mean, b->invstd, b->gamma->data,
                                            b->beta->data, d->n, d->o, d->ho, d->wo) != 0) {
        relate_graph_fail(g, RELATE_ERR_NOMEM, "out of memory in conv2d_bn_relu_pool2's backward");
        return;
    }
    if (!dw)
        return;
    relate_graph_count(g, conv_flops(d), 0);
    convpool_dz_ctx k = {b->z, b->y->grad, coef, b->mean, d->o, d->ho, d->wo};
    if (relate_conv2d_weight_grad_fn(dw, convpool_dz_image, &k, tmp, b->x->data, d, coef + ncoef) != 0)
        relate_graph_fail(g, RELATE_ERR_INTERNAL, "conv2d_bn_relu_pool2: the stem kernel refused its weight gradient");
}

relate_tensor *relate_conv2d_bn_relu_pool2(relate_graph *g, relate_tensor *x, relate_tensor *w, int stride, int pad,
                                           relate_tensor *gamma, relate_tensor *beta, float *running_mean,
                                           float *running_var, int64_t *num_batches_tracked, float momentum,
                                           float eps)
{
    if (!x || !w || !gamma || !beta)
        return NULL;
    convpool_ctx b = {.x = x, .w = w, .gamma = gamma, .beta = beta};
    if (!conv_dims_of(g, x, w, stride, pad, &b.d))
        return NULL;
    const relate_conv2d_dims *d = &b.d;
    const bool grads = g->grad_enabled && (w->requires_grad || gamma->requires_grad || beta->requires_grad);
    /* Fused only where it pays and its pieces exist: a backward pass whose input needs no
     * gradient (a stem's input is data), statistics of this process alone, and the direct stem
     * kernel for the shape. Otherwise the composed ops, which compute the same bits. */
    if (!grads || x->requires_grad || g->sync_batch || d->ho < 2 || d->wo < 2 ||
        relate_conv2d_weight_grad_fn_scratch_floats(d, relate_get_threads(), convpool_tmp(d)) == 0)
        return relate_batch_norm_relu_pool2(g, relate_conv2d(g, x, w, stride, pad), gamma, beta, running_mean,
                                            running_var, num_batches_tracked, momentum, eps);
    const int n = d->n, c = d->o, h = d->ho, wd = d->wo;
    if (gamma->numel != c || beta->numel != c)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "batch_norm: %d channels but %lld affine weights", c,
                                 (long long)gamma->numel);
    const size_t nz = (size_t)n * c * h * wd;
    b.z = relate_graph_scratch(g, nz * sizeof(float));
    b.mean = b.z ? relate_graph_scratch(g, 2 * (size_t)c * sizeof(float)) : NULL;
    float *scratch = b.mean ? relate_graph_workspace(g, relate_conv2d_scratch_floats(d, relate_get_threads()) *
                                                            sizeof(float))
                            : NULL;
    if (!scratch)
        return NULL;
    b.invstd = b.mean + c;
    relate_conv2d_forward(b.z, x->data, w->data, d, scratch);
    relate_graph_count(g, conv_flops(d), (double)nz * sizeof(float)); /* as relate_conv2d */
    b.y = relate_op_output(g, 4, (int64_t[]){n, c, h / 2, wd / 2}, x, w);
    if (!b.y)
        return NULL;
    b.y->requires_grad = true;
    if (relate_bn_relu_pool2_forward_train(b.y->data, b.mean, b.invstd, b.z, gamma->data, beta->data, running_mean,
                                           running_var, n, c, h, wd, momentum, eps) != 0)
        return relate_graph_fail(g, RELATE_ERR_NOMEM, "out of memory in conv2d_bn_relu_pool2");
    if (num_batches_tracked)
        (*num_batches_tracked)++;
    if (!relate_op_save(g, convpool_backward, &b, sizeof b))
        return NULL;
    return b.y;
}

/* ------------------------------------------------------------------ global pool context */
typedef struct {
    relate_tensor *x, *y;
} gap_ctx;

/* ------------------------------------------------------------------ pooling */
typedef struct {
    relate_tensor *x, *y;
    relate_pool2d_dims d;
    int32_t *argmax;
} pool_ctx;

static void avgpool_backward(relate_graph *g, void *p)
{
    pool_ctx *c = p;
    float *dx = c->y->grad ? relate_grad_of(g, c->x) : NULL;
    if (dx)
        relate_avgpool2d_backward(dx, c->y->grad, &c->d);
}

static void maxpool_backward(relate_graph *g, void *p)
{
    pool_ctx *c = p;
    float *dx = c->y->grad ? relate_grad_of(g, c->x) : NULL;
    if (dx)
        relate_maxpool2d_backward(dx, c->y->grad, c->argmax, &c->d);
}

static relate_tensor *pool2d(relate_graph *g, relate_tensor *x, int k, int stride, int pad, bool is_max)
{
    if (!x)
        return NULL;
    char a[64];
    if (x->ndim != 4)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "%s: expected [N,C,H,W], got %s",
                                 is_max ? "max_pool2d" : "avg_pool2d", SHAPE(x, a));
    relate_pool2d_dims d = {.n = (int)x->shape[0], .c = (int)x->shape[1], .h = (int)x->shape[2],
                            .w = (int)x->shape[3], .k = k, .stride = stride, .pad = pad};
    if (relate_pool2d_dims_init(&d) != 0)
        return relate_graph_fail(g, RELATE_ERR_SHAPE,
                                 "%s: window %d, stride %d, padding %d does not fit input %s",
                                 is_max ? "max_pool2d" : "avg_pool2d", k, stride, pad, SHAPE(x, a));
    relate_tensor *y = relate_op_output(g, 4, (int64_t[]){d.n, d.c, d.ho, d.wo}, x, NULL);
    if (!y)
        return NULL;
    int32_t *argmax = NULL;
    if (is_max) {
        argmax = relate_graph_scratch(g, (size_t)y->numel * sizeof(int32_t));
        if (!argmax)
            return NULL;
        relate_maxpool2d_forward(y->data, argmax, x->data, &d);
    } else {
        relate_avgpool2d_forward(y->data, x->data, &d);
    }
    if (y->requires_grad && !relate_op_save(g, is_max ? maxpool_backward : avgpool_backward, &(pool_ctx){x, y, d, argmax}, sizeof(pool_ctx)))
        return NULL;
    return y;
}

relate_tensor *relate_avg_pool2d(relate_graph *g, relate_tensor *x, int k, int stride, int pad)
{
    return pool2d(g, x, k, stride, pad, false);
}

relate_tensor *relate_max_pool2d(relate_graph *g, relate_tensor *x, int k, int stride, int pad)
{
    return pool2d(g, x, k, stride, pad, true);
}

static void gap_backward(relate_graph *g, void *p)
{
    gap_ctx *c = p;
    float *dx = c->y->grad ? relate_grad_of(g, c->x) : NULL;
    if (dx)
        relate_global_avgpool_backward(dx, c->y->grad, (int)c->x->shape[0], (int)c->x->shape[1],
                                       (int)(c->x->shape[2] * c->x->shape[3]));
}

relate_tensor *relate_global_avg_pool(relate_graph *g, relate_tensor *x)
{
    if (!x)
        return NULL;
    char a[64];
    if (x->ndim != 4 || x->shape[2] * x->shape[3] == 0)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "global_avg_pool: expected [N,C,H,W], got %s", SHAPE(x, a));
    relate_tensor *y = relate_op_output(g, 2, x->shape, x, NULL);
    if (!y)
        return NULL;
    relate_global_avgpool_forward(y->data, x->data, (int)x->shape[0], (int)x->shape[1],
                                  (int)(x->shape[2] * x->shape[3]));
    if (y->requires_grad && !relate_op_save(g, gap_backward, &(gap_ctx){x, y}, sizeof(gap_ctx)))
        return NULL;
    return y;
}

/* ------------------------------------------------------------------ linear */
typedef struct {
    relate_tensor *x, *w, *b, *y;
} linear_ctx;

static void linear_backward(relate_graph *g, void *p)
{
    linear_ctx *c = p;
    if (!c->y->grad)
        return;
    float *dx = relate_grad_of(g, c->x), *dw = relate_grad_of(g, c->w);
    relate_graph_count(g, 2.0 * (double)c->x->numel * c->w->shape[0] * ((dx != NULL) + (dw != NULL)), 0);
    relate_linear_backward(dx, dw, relate_grad_of(g, c->b), c->y->grad, c->x->data, c->w->data, (int)c->x->shape[0],
                           (int)c->x->shape[1], (int)c->w->shape[0]);
}

relate_tensor *relate_linear(relate_graph *g, relate_tensor *x, relate_tensor *w, relate_tensor *b)
{
    if (!x || !w)
        return NULL;
    char a[64], s[64];
    if (x->ndim != 2 || w->ndim != 2 || x->shape[1] != w->shape[1])
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "linear: input %s does not fit weight %s (need [N,in] and [out,in])",
                                 SHAPE(x, a), SHAPE(w, s));
    if (b && b->numel != w->shape[0])
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "linear: bias has %lld elements for %lld outputs",
                                 (long long)b->numel, (long long)w->shape[0]);
    relate_tensor *y = relate_op_output(g, 2, (int64_t[]){x->shape[0], w->shape[0]}, x, w);
    if (!y)
        return NULL;
    if (b && b->requires_grad)
        y->requires_grad = true;
    relate_linear_forward(y->data, x->data, w->data, b ? b->data : NULL, (int)x->shape[0],
                          (int)x->shape[1], (int)w->shape[0]);
    relate_graph_count(g, 2.0 * (double)x->numel * w->shape[0], (double)y->numel * sizeof(float));
    if (y->requires_grad && !relate_op_save(g, linear_backward, &(linear_ctx){x, w, b, y}, sizeof(linear_ctx)))
        return NULL;
    return y;
}
