/* data_parallel.c: what a method's step does differently when it runs as one of N processes
 * (relate/dist.h, issue 12), so that the N compute what one process computes on the whole batch.
 *
 * Each process loads its share of the batch (the loader's shard) and runs the backbone on it with
 * synchronised batch norm (relate_method_step turns it on). The backbone's outputs are then
 * gathered: every process holds the whole batch's features and runs the head and the loss on them,
 * identically, so negatives, pairs and rolls cross the shares' boundaries exactly as in one
 * process, and the heads' own batch norms see the whole batch. Each process back-propagates 1/N of
 * that loss; the gather's backward sums the shares of the features' gradient, and the parameters'
 * gradients are summed over the processes before the optimizer steps, the same bits on each.
 * In one process every function here is the plain single-process step.
 * Not the collectives (src/dist) or the gather op (autograd/ops_dist.c). */
#include <stdlib.h>
#include <string.h>

#include "methods/data_parallel.h"
#include "relate/dist.h"

/* rows[r] = images of process r in a batch of `global` images: the loader's split (relate/loader.h). */
static void shard_rows(int *rows, int global, int nranks)
{
    for (int r = 0; r < nranks; r++)
        rows[r] = (int)((int64_t)global * (r + 1) / nranks - (int64_t)global * r / nranks);
}

static relate_status check_share(const relate_batch *b, const int *rows, int rank, relate_error *err)
{
    int64_t at = 0;
    for (int r = 0; r < rank; r++)
        at += rows[r];
    if (rows[rank] != b->size || at != b->global_offset)
        return relate_error_set(err, RELATE_ERR_INTERNAL,
                                "process %d holds images [%d, %d) of a batch of %d, expected [%lld, %lld)", rank,
                                b->global_offset, b->global_offset + b->size, b->global_size, (long long)at,
                                (long long)(at + rows[rank]));
    return RELATE_OK;
}

relate_tensor *relate_dp_gather(relate_graph *g, relate_tensor *x, const relate_batch *b, int blocks, int per_image)
{
    const int n = relate_dist_size(), rank = relate_dist_rank();
    if (n == 1 || !x)
        return x;
    int *rows = relate_graph_alloc(g, (size_t)n * sizeof *rows);
    if (!rows)
        return relate_graph_fail(g, RELATE_ERR_NOMEM, "out of memory gathering the batch");
    shard_rows(rows, b->global_size, n);
    relate_error e = {0};
    if (check_share(b, rows, rank, &e) != RELATE_OK)
        return relate_graph_fail(g, e.code, "%s", e.msg);
    for (int r = 0; r < n; r++)
        rows[r] *= per_image;
    relate_tensor *y = relate_gather_shards(g, x, blocks, rows, n, rank);
    /* From here on every process holds the whole batch: its statistics are already global. */
    relate_graph_set_sync_batch(g, false);
    return y;
}

relate_status relate_dp_gather_per_image(const relate_batch *b, const void *mine, void *all, size_t elem,
                                         relate_error *err)
{
    const int n = relate_dist_size(), rank = relate_dist_rank();
    if (n == 1) {
        if (mine != all)
            memcpy(all, mine, (size_t)b->size * elem);
        return RELATE_OK;
    }
    int *rows = malloc((size_t)n * sizeof *rows);
    size_t *bytes = malloc((size_t)n * sizeof *bytes);
    relate_status st = rows && bytes ? RELATE_OK
                                     : relate_error_set(err, RELATE_ERR_NOMEM, "out of memory gathering the batch");
    if (st == RELATE_OK) {
        shard_rows(rows, b->global_size, n);
        st = check_share(b, rows, rank, err);
    }
    if (st == RELATE_OK) {
        for (int r = 0; r < n; r++)
            bytes[r] = (size_t)rows[r] * elem;
        st = relate_dist_allgatherv(mine, all, bytes, err);
    }
    free(bytes);
    free(rows);
    return st;
}

relate_status relate_dp_backward(relate_graph *g, relate_tensor *loss, relate_params *const *stores, int nstores,
                                 relate_error *err)
{
    const int n = relate_dist_size();
    if (!loss || relate_graph_backward_scaled(g, loss, 1.0f / (float)n) != RELATE_OK) {
        *err = *relate_graph_error(g);
        if (err->code == RELATE_OK)
            relate_error_set(err, RELATE_ERR_INTERNAL, "the step built no loss");
        return err->code;
    }
    if (n == 1)
        return RELATE_OK;
    for (int i = 0; i < nstores; i++) {
        relate_error e = {0};
        if (relate_dist_allreduce_sum_f32(stores[i]->grad_block, stores[i]->param_floats, &e) != RELATE_OK)
            return relate_error_set(err, e.code, "summing the gradients over the processes: %s", e.msg);
    }
    return RELATE_OK;
}
