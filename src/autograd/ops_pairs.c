/* ops_pairs.c: the graph op behind relationnet's pair aggregation (kernels/pairs.c).
 * Not the relation head itself: src/methods/relationnet.c builds the index lists and composes
 * this op with the head's layers. */
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
