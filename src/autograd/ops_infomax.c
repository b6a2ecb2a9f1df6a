/* ops_infomax.c: the graph ops behind Deep InfoMax (spec 3.4; kernels/infomax.c): its fused local loss,
 * and the layout/element-wise ops its literal form needs (NCHW -> rows, row repetition, softplus, a*x + b).
 * Not the method: src/methods/deepinfomax.c composes these with the discriminators' parameters. */
#include <string.h>

#include "autograd/graph_internal.h"
#include "kernels/kernels.h"

#define SHAPE(t, buf) relate_shape_str((t), (buf), sizeof(buf))

/* ------------------------------------------------------------------ NCHW -> rows, repeat rows */
typedef struct {
    relate_tensor *x, *y;
    int n, c, k; /* k: hw (to rows) or reps (repeat) */
} rows_ctx;

static void to_rows_backward(relate_graph *g, void *p)
{
    rows_ctx *c = p;
    float *dx = c->y->grad ? relate_grad_of(g, c->x) : NULL;
    if (dx)
        relate_nchw_to_rows_backward(dx, c->y->grad, c->n, c->c, c->k);
}

relate_tensor *relate_nchw_to_rows(relate_graph *g, relate_tensor *x)
{
    if (!x)
        return NULL;
    char s1[64];
    if (x->ndim != 4)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "nchw_to_rows: %s is not [N,C,H,W]", SHAPE(x, s1));
    const int n = (int)x->shape[0], c = (int)x->shape[1], hw = (int)(x->shape[2] * x->shape[3]);
    relate_tensor *y = relate_op_output(g, 2, (int64_t[]){(int64_t)n * hw, c}, x, NULL);
    if (!y)
        return NULL;
    relate_nchw_to_rows_forward(y->data, x->data, n, c, hw);
    if (y->requires_grad && !relate_op_save(g, to_rows_backward, &(rows_ctx){x, y, n, c, hw}, sizeof(rows_ctx)))
        return NULL;
    return y;
}

static void repeat_backward(relate_graph *g, void *p)
{
    rows_ctx *c = p;
    float *dx = c->y->grad ? relate_grad_of(g, c->x) : NULL;
    if (dx)
        relate_repeat_rows_backward(dx, c->y->grad, c->n, c->c, c->k);
}

relate_tensor *relate_repeat_rows(relate_graph *g, relate_tensor *x, int64_t reps)
{
    if (!x)
        return NULL;
    char s1[64];
    if (x->ndim != 2 || reps < 1)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "repeat_rows: %s must be [N,C] and reps %lld >= 1",
                                 SHAPE(x, s1), (long long)reps);
    const int n = (int)x->shape[0], c = (int)x->shape[1];
    relate_tensor *y = relate_op_output(g, 2, (int64_t[]){n * reps, c}, x, NULL);
    if (!y)
        return NULL;
    relate_repeat_rows_forward(y->data, x->data, n, c, (int)reps);
    if (y->requires_grad &&
        !relate_op_save(g, repeat_backward, &(rows_ctx){x, y, n, c, (int)reps}, sizeof(rows_ctx)))
        return NULL;
    return y;
}

/* ------------------------------------------------------------------ softplus, scale_shift */
typedef struct {
    relate_tensor *x, *y;
    float a, b;
} unary_ctx;

static void softplus_backward(relate_graph *g, void *p)
{
    unary_ctx *c = p;
    float *dx = c->y->grad ? relate_grad_of(g, c->x) : NULL;
    if (dx)
        relate_softplus_backward(dx, c->y->grad, c->x->data, c->a, c->b, (size_t)c->x->numel);
}

relate_tensor *relate_softplus(relate_graph *g, relate_tensor *x, float beta, float threshold)
{
    if (!x)
        return NULL;
    relate_tensor *y = relate_op_output(g, x->ndim, x->shape, x, NULL);
    if (!y)
        return NULL;
    relate_softplus_forward(y->data, x->data, beta, threshold, (size_t)x->numel);
    if (y->requires_grad &&
        !relate_op_save(g, softplus_backward, &(unary_ctx){x, y, beta, threshold}, sizeof(unary_ctx)))
        return NULL;
    return y;
}

static void scale_shift_backward(relate_graph *g, void *p)
{
    unary_ctx *c = p;
    float *dx = c->y->grad ? relate_grad_of(g, c->x) : NULL;
    if (dx)
        relate_axpy(dx, c->y->grad, c->a, (size_t)c->x->numel);
}

relate_tensor *relate_scale_shift(relate_graph *g, relate_tensor *x, float alpha, float beta)
{
    if (!x)
        return NULL;
    relate_tensor *y = relate_op_output(g, x->ndim, x->shape, x, NULL);
    if (!y)
        return NULL;
    relate_scale_shift_forward(y->data, x->data, alpha, beta, (size_t)x->numel);
    if (y->requires_grad && !relate_op_save(g, scale_shift_backward, &(unary_ctx){x, y, alpha, beta}, sizeof(unary_ctx)))
        return NULL;
    return y;
}

/* ------------------------------------------------------------------ fused local loss */
enum { IN_M, IN_WM, IN_YB, IN_W1, IN_B1, IN_W2, IN_B2, NIN };

typedef struct {
    relate_tensor *in[NIN], *y;
    float *grad[NIN]; /* d(loss)/d(input), computed by the forward (NULL: not needed) */
} local_ctx;

/* The forward already holds every input's gradient of the scalar output; the backward scales it by
 * the upstream gradient and adds it. */
static void local_backward(relate_graph *g, void *p)
{
    local_ctx *c = p;
    if (!c->y->grad)
        return;
    const float up = c->y->grad[0];
    for (int i = 0; i < NIN; i++) {
        float *dx = c->grad[i] ? relate_grad_of(g, c->in[i]) : NULL;
        if (dx)
            relate_axpy(dx, c->grad[i], up, (size_t)c->in[i]->numel);
    }
}

relate_tensor *relate_infomax_local_loss(relate_graph *g, relate_tensor *m, relate_tensor *w_m, relate_tensor *yb,
                                         relate_tensor *w1, relate_tensor *b1, relate_tensor *w2, relate_tensor *b2)
{
    relate_tensor *in[NIN] = {m, w_m, yb, w1, b1, w2, b2};
    for (int i = 0; i < NIN; i++)
        if (!in[i])
            return NULL;
    char s1[64], s2[64], s3[64];
    if (m->ndim != 4 || w_m->ndim != 2 || yb->ndim != 2 || w1->ndim != 2 || w_m->shape[1] != m->shape[1] ||
        yb->shape[0] != m->shape[0] || yb->shape[1] != w_m->shape[0] || w1->shape[1] != w_m->shape[0] ||
        b1->numel != w1->shape[0] || w2->numel != w1->shape[0] || b2->numel != 1)
        return relate_graph_fail(g, RELATE_ERR_SHAPE,
                                 "infomax_local_loss: M %s, W_M %s, yb %s do not fit (need M [B,C,H,W], W_M [C0,C], "
                                 "yb [B,C0], W1 [C1,C0], b1 [C1], w2 [C1], b2 [1])",
                                 SHAPE(m, s1), SHAPE(w_m, s2), SHAPE(yb, s3));
    relate_infomax_dims d = {.b = (int)m->shape[0], .mc = (int)m->shape[1], .hw = (int)(m->shape[2] * m->shape[3]),
                             .c0 = (int)w_m->shape[0], .c1 = (int)w1->shape[0]};
    relate_infomax_dims_init(&d);
    relate_tensor *y = relate_op_output(g, 0, NULL, NULL, NULL); /* a scalar, as relate_mean */
    if (!y)
        return NULL;
    local_ctx c = {.y = y};
    for (int i = 0; i < NIN; i++) {
        c.in[i] = in[i];
        if (g->grad_enabled && in[i]->requires_grad) {
            y->requires_grad = true;
            if (!(c.grad[i] = relate_graph_scratch(g, (size_t)in[i]->numel * sizeof(float))))
                return NULL;
            memset(c.grad[i], 0, (size_t)in[i]->numel * sizeof(float));
        }
    }
    float *scratch = relate_graph_workspace(g, relate_infomax_scratch_floats(&d) * sizeof(float));
    if (!scratch)
        return NULL;
    relate_infomax_grads gr = {c.grad[IN_M], c.grad[IN_WM], c.grad[IN_YB], c.grad[IN_W1],
                               c.grad[IN_B1], c.grad[IN_W2], c.grad[IN_B2]};
    y->data[0] = relate_infomax_local_forward(m->data, w_m->data, yb->data, w1->data, b1->data, w2->data, b2->data,
                                              &d, y->requires_grad ? &gr : NULL, scratch);
    /* Positions of M and of the shifted M': the per-position 1x1 layers (the per-image y term is
     * negligible). The forward computes the gradients too: about twice the forward's products. */
    const double pos = 2.0 * d.b * d.hw;
    const double fwd = 2.0 * pos * ((double)d.mc * d.c0 + (double)d.c0 * d.c1 + d.c1);
    relate_graph_count(g, y->requires_grad ? 3.0 * fwd : fwd, pos * (d.c0 + d.c1) * sizeof(float));
    if (y->requires_grad && !relate_op_save(g, local_backward, &c, sizeof c))
        return NULL;
    return y;
}
