/* ops_pairs.c: the graph ops behind relationnet's pair aggregation (kernels/pairs.c) and its
 * fused relation head (kernels/relation_head.c).
 * Not the method: src/methods/relationnet.c builds the index lists and chooses the ops. */
#include <string.h>

#include "autograd/graph_internal.h"
#include "kernels/kernels.h"

#define SHAPE(t, buf) relate_shape_str((t), (buf), sizeof(buf))

typedef struct {
    relate_tensor *a, *b, *bias, *y;
    int32_t *ia, *ib;
    bool max;
} pair_ctx;

static void pair_backward(relate_graph *g, void *p)
{
    pair_ctx *c = p;
    if (!c->y->grad)
        return;
    relate_pair_rows_backward(relate_grad_of(g, c->a), relate_grad_of(g, c->b), relate_grad_of(g, c->bias),
                              c->y->grad, c->a->data, c->ia, c->b->data, c->ib, c->y->shape[0], c->y->shape[1],
                              c->max ? RELATE_PAIR_MAX : RELATE_PAIR_SUM);
}

relate_tensor *relate_pair_rows(relate_graph *g, relate_tensor *a, const int32_t *ia, relate_tensor *b,
                                const int32_t *ib, int64_t rows, relate_tensor *bias, bool max)
{
    if (!a || !b)
        return NULL;
    char s1[64], s2[64];
    if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[1])
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "pair_rows: %s and %s must be [N,C] with equal C", SHAPE(a, s1),
                                 SHAPE(b, s2));
    const int64_t cols = a->shape[1];
    if (bias && bias->numel != cols)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "pair_rows: bias has %lld elements for %lld columns",
                                 (long long)bias->numel, (long long)cols);
    if (rows < 1)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "pair_rows: no rows");
    for (int64_t p = 0; p < rows; p++)
        if (ia[p] < 0 || ia[p] >= a->shape[0] || ib[p] < 0 || ib[p] >= b->shape[0])
            return relate_graph_fail(g, RELATE_ERR_SHAPE, "pair_rows: index pair %lld (%d, %d) outside %s / %s",
                                     (long long)p, ia[p], ib[p], SHAPE(a, s1), SHAPE(b, s2));
    relate_tensor *y = relate_op_output(g, 2, (int64_t[]){rows, cols}, a, b);
    if (!y)
        return NULL;
    if (bias && bias->requires_grad && g->grad_enabled)
        y->requires_grad = true;
    relate_pair_rows_forward(y->data, a->data, ia, b->data, ib, bias ? bias->data : NULL, rows, cols,
                             max ? RELATE_PAIR_MAX : RELATE_PAIR_SUM);
    if (!y->requires_grad)
        return y;
    /* The caller's index lists need not outlive the call: the tape keeps its own copies. */
    int32_t *ia_copy = relate_graph_scratch(g, (size_t)rows * sizeof *ia_copy);
    int32_t *ib_copy = relate_graph_scratch(g, (size_t)rows * sizeof *ib_copy);
    if (!ia_copy || !ib_copy)
        return NULL;
    memcpy(ia_copy, ia, (size_t)rows * sizeof *ia);
    memcpy(ib_copy, ib, (size_t)rows * sizeof *ib);
    if (!relate_op_save(g, pair_backward, &(pair_ctx){a, b, bias, y, ia_copy, ib_copy, max}, sizeof(pair_ctx)))
        return NULL;
    return y;
}

/* ------------------------------------------------------------------ fused relation head */
typedef struct {
    relate_tensor *a, *b, *y;
    relate_relation_head_layers l;
    int32_t *ia, *ib;
    float *h, *mean, *invstd;
} head_ctx;

static relate_relation_head_params head_params(const head_ctx *c)
{
    return (relate_relation_head_params){
        .a = c->a->data, .b = c->b->data, .bias1 = c->l.bias1->data, .gamma = c->l.gamma->data,
        .beta = c->l.beta->data, .w2 = c->l.w2->data, .ia = c->ia, .ib = c->ib, .b2 = c->l.b2->data[0],
        .slope = c->l.slope, .momentum = c->l.momentum, .eps = c->l.eps};
}

static void head_backward(relate_graph *g, void *p)
{
    head_ctx *c = p;
    if (!c->y->grad)
        return;
    const int64_t rows = c->y->shape[0];
    const int cols = (int)c->a->shape[1];
    relate_relation_head_grads gr = {
        .da = relate_grad_of(g, c->a), .db = relate_grad_of(g, c->b), .dbias1 = relate_grad_of(g, c->l.bias1),
        .dgamma = relate_grad_of(g, c->l.gamma), .dbeta = relate_grad_of(g, c->l.beta),
        .dw2 = relate_grad_of(g, c->l.w2), .db2 = relate_grad_of(g, c->l.b2)};
    double *scratch = relate_graph_workspace(g, relate_relation_head_scratch_doubles(rows, cols) * sizeof(double));
    if (!scratch)
        return;
    relate_graph_count(g, 4.0 * (double)rows * cols, 0); /* linear2's weight and input gradients */
    relate_relation_head_params hp = head_params(c);
    relate_relation_head_backward(&gr, c->y->grad, c->h, c->mean, c->invstd, &hp, rows, cols, scratch);
}

relate_tensor *relate_relation_head(relate_graph *g, relate_tensor *a, const int32_t *ia, relate_tensor *b,
                                    const int32_t *ib, int64_t rows, const relate_relation_head_layers *l)
{
    if (!a || !b || !l->bias1 || !l->gamma || !l->beta || !l->w2 || !l->b2)
        return NULL;
    char s1[64], s2[64];
    if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[1])
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "relation_head: %s and %s must be [N,C] with equal C",
                                 SHAPE(a, s1), SHAPE(b, s2));
    const int64_t cols = a->shape[1];
    if (l->bias1->numel != cols || l->gamma->numel != cols || l->beta->numel != cols || l->w2->numel != cols ||
        l->b2->numel != 1)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "relation_head: layer sizes do not fit %lld channels",
                                 (long long)cols);
    if (rows < 2)
        return relate_graph_fail(g, RELATE_ERR_SHAPE,
                                 "relation_head: batch norm in training mode needs at least 2 pairs, got %lld",
                                 (long long)rows);
    if (!l->running_mean || !l->running_var)
        return relate_graph_fail(g, RELATE_ERR_INTERNAL, "relation_head: missing running statistics");
    for (int64_t p = 0; p < rows; p++)
        if (ia[p] < 0 || ia[p] >= a->shape[0] || ib[p] < 0 || ib[p] >= b->shape[0])
            return relate_graph_fail(g, RELATE_ERR_SHAPE, "relation_head: index pair %lld (%d, %d) outside %s / %s",
                                     (long long)p, ia[p], ib[p], SHAPE(a, s1), SHAPE(b, s2));
    relate_tensor *y = relate_op_output(g, 2, (int64_t[]){rows, 1}, a, b);
    if (!y)
        return NULL;
    relate_tensor *params[] = {l->bias1, l->gamma, l->beta, l->w2, l->b2};
    for (int i = 0; i < 5; i++)
        if (params[i]->requires_grad && g->grad_enabled)
            y->requires_grad = true;
    head_ctx c = {.a = a, .b = b, .y = y, .l = *l};
    c.h = relate_graph_scratch(g, (size_t)rows * (size_t)cols * sizeof(float));
    c.mean = relate_graph_scratch(g, 2 * (size_t)cols * sizeof(float));
    double *scratch = relate_graph_workspace(g, relate_relation_head_scratch_doubles(rows, (int)cols) * sizeof(double));
    if (!c.h || !c.mean || !scratch)
        return NULL;
    c.invstd = c.mean + cols;
    c.ia = (int32_t *)ia; /* read only until copied below */
    c.ib = (int32_t *)ib;
    relate_relation_head_params hp = head_params(&c);
    relate_relation_head_forward(c.h, y->data, c.mean, c.invstd, l->running_mean, l->running_var, &hp, rows,
                                 (int)cols, scratch);
    if (l->num_batches_tracked)
        (*l->num_batches_tracked)++;
    /* linear2's product; h is the layer output any implementation writes. */
    relate_graph_count(g, 2.0 * (double)rows * (double)cols, (double)rows * (double)cols * sizeof(float));
    if (!y->requires_grad)
        return y;
    c.ia = relate_graph_scratch(g, (size_t)rows * sizeof *c.ia);
    c.ib = relate_graph_scratch(g, (size_t)rows * sizeof *c.ib);
    if (!c.ia || !c.ib)
        return NULL;
    memcpy(c.ia, ia, (size_t)rows * sizeof *ia);
    memcpy(c.ib, ib, (size_t)rows * sizeof *ib);
    if (!relate_op_save(g, head_backward, &c, sizeof c))
        return NULL;
    return y;
}
