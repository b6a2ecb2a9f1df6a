/* ops_dist.c: the graph op that joins the processes' shares of a batch (data-parallel training,
 * relate/dist.h). After it, every process holds the whole batch's rows and computes the rest of
 * the step (heads, pairs, negatives, the loss) on them, identically.
 * Not the sharding itself (the loader) or the gradients' all-reduce (methods/data_parallel.c). */
#include <string.h>

#include "autograd/graph_internal.h"
#include "kernels/kernels.h"
#include "relate/dist.h"

typedef struct {
    relate_tensor *x, *y;
    int blocks, nranks, rank;
    const int *rows;  /* [nranks]: rows of each block on each process */
    int64_t inner;    /* floats per row */
} gather_ctx;

/* Global row of process r's first row within a block. */
static int64_t first_row(const gather_ctx *c, int r)
{
    int64_t at = 0;
    for (int q = 0; q < r; q++)
        at += c->rows[q];
    return at;
}

/* Every process ran the same ops on the same gathered rows, so each holds the same dL/dy as a
 * share (the caller scales its loss by 1/N). The gradient of its own rows is the sum of those
 * shares: a sum over the processes, of which it keeps its rows. */
static void gather_backward(relate_graph *g, void *p)
{
    gather_ctx *c = p;
    if (!c->y->grad)
        return;
    float *dx = relate_grad_of(g, c->x);
    relate_error e = {0};
    if (relate_dist_allreduce_sum_f32(c->y->grad, (size_t)c->y->numel, &e) != RELATE_OK) {
        relate_graph_fail(g, e.code, "gathering the batch's gradient: %s", e.msg);
        return;
    }
    if (!dx)
        return;
    const int64_t total = c->y->shape[0] / c->blocks, mine = c->rows[c->rank], at = first_row(c, c->rank);
    for (int k = 0; k < c->blocks; k++)
        relate_axpy(dx + (size_t)(k * mine) * c->inner, c->y->grad + (size_t)(k * total + at) * c->inner, 1.0f,
                    (size_t)(mine * c->inner));
}

relate_tensor *relate_gather_shards(relate_graph *g, relate_tensor *x, int blocks, const int *rows, int nranks,
                                    int rank)
{
    if (!x)
        return NULL;
    char s1[64];
    if (x->ndim < 1 || blocks < 1 || nranks < 1 || rank < 0 || rank >= nranks || x->shape[0] != (int64_t)blocks * rows[rank])
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "gather_shards: %s is not %d blocks of %d rows",
                                 relate_shape_str(x, s1, sizeof s1), blocks, rank >= 0 && rank < nranks ? rows[rank] : -1);
    int64_t total = 0;
    for (int r = 0; r < nranks; r++)
        total += rows[r];
    int64_t shape[RELATE_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[0] = total * blocks;
    relate_tensor *y = relate_op_output(g, x->ndim, shape, x, NULL);
    int *rows_copy = relate_graph_scratch(g, (size_t)nranks * sizeof *rows_copy);
    size_t *bytes = relate_graph_scratch(g, (size_t)nranks * sizeof *bytes);
    if (!y || !rows_copy || !bytes)
        return NULL;
    memcpy(rows_copy, rows, (size_t)nranks * sizeof *rows);
    const int64_t inner = x->shape[0] ? x->numel / x->shape[0] : 0;
    gather_ctx c = {x, y, blocks, nranks, rank, rows_copy, inner};
    /* The processes' tensors arrive one after another (rank-major); the batch is block-major. */
    for (int r = 0; r < nranks; r++)
        bytes[r] = (size_t)blocks * rows[r] * inner * sizeof(float);
    float *recv = relate_graph_workspace(g, (size_t)y->numel * sizeof(float));
    if (!recv)
        return NULL;
    relate_error e = {0};
    if (relate_dist_allgatherv(x->data, recv, bytes, &e) != RELATE_OK)
        return relate_graph_fail(g, e.code, "gathering the batch: %s", e.msg);
    const float *from = recv;
    for (int r = 0; r < nranks; r++) {
        const int64_t at = first_row(&c, r);
        for (int k = 0; k < blocks; k++, from += (size_t)rows[r] * inner)
            memcpy(y->data + (size_t)(k * total + at) * inner, from, (size_t)(rows[r] * inner) * sizeof(float));
    }
    if (y->requires_grad && !relate_op_save(g, gather_backward, &c, sizeof c))
        return NULL;
    return y;
}
