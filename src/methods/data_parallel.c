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

/* The gradients are summed in buckets, each as soon as the backward pass has finished every
 * parameter in it, so the sums of the last layers travel while the first layers' gradients are
 * computed. About eight buckets a step, of 8,192 to 1,048,576 floats (32 KiB to 4 MiB): conv4's
 * 25,000 gradients make four (and its head one), resnet32's 466,000 eight, resnet34's 21 million
 * twenty-one, so the count of messages, and with it their latency, stays small. */
#define DP_BUCKETS 8
#define DP_BUCKET_MIN 8192
#define DP_BUCKET_MAX 1048576

typedef struct dp_bucket {
    float *lo, *hi; /* a contiguous range of one store's grad_block */
    int waiting;    /* its parameters whose gradients are not final yet */
} dp_bucket;

typedef struct dp_sync {
    dp_bucket *buckets; /* in the order they start: the last store's last parameters first */
    int count, next;    /* buckets[0..next) started */
    relate_dist_sums *sums;
    relate_error err; /* the first failure, reported when the backward pass ends */
} dp_sync;

/* Buckets of the stores' parameters in reverse order, the order in which the backward pass
 * finishes them (it runs the last layers first). The same on every process. */
static relate_status make_buckets(relate_graph *g, dp_sync *d, relate_params *const *stores, int nstores,
                                  relate_error *err)
{
    int max = 0;
    size_t total = 0;
    for (int i = 0; i < nstores; i++) {
        max += stores[i]->count;
        total += stores[i]->param_floats;
    }
    size_t target = total / DP_BUCKETS;
    target = target < DP_BUCKET_MIN ? DP_BUCKET_MIN : target > DP_BUCKET_MAX ? DP_BUCKET_MAX : target;
    d->buckets = relate_graph_alloc(g, (size_t)(max > 0 ? max : 1) * sizeof *d->buckets);
    if (!d->buckets)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory for the gradient buckets");
    d->count = 0;
    for (int i = nstores - 1; i >= 0; i--) {
        dp_bucket *open = NULL;
        for (int j = stores[i]->count - 1; j >= 0; j--) {
            relate_param *p = stores[i]->items[j];
            if (p->kind != RELATE_PARAM || !p->grad || p->numel == 0)
                continue;
            if (!open || (size_t)(open->hi - open->lo) >= target) {
                open = &d->buckets[d->count++];
                *open = (dp_bucket){p->grad, p->grad + p->numel, 0};
            }
            if (p->grad < open->lo)
                open->lo = p->grad;
            if (p->grad + p->numel > open->hi)
                open->hi = p->grad + p->numel;
            open->waiting++;
        }
    }
    return RELATE_OK;
}

static void start_ready_buckets(dp_sync *d)
{
    while (d->next < d->count && d->buckets[d->next].waiting == 0 && d->err.code == RELATE_OK) {
        const dp_bucket *b = &d->buckets[d->next++];
        relate_dist_sums_start(d->sums, b->lo, (size_t)(b->hi - b->lo), &d->err);
    }
}

/* relate_graph_on_grad_ready: p's gradient is final. Buckets start in their fixed order only, so
 * every process issues the same collectives in the same order. */
static void on_grad_ready(void *ctx, relate_param *p)
{
    dp_sync *d = ctx;
    for (int i = d->next; i < d->count; i++)
        if (p->grad >= d->buckets[i].lo && p->grad < d->buckets[i].hi) {
            d->buckets[i].waiting--;
            break;
        }
    start_ready_buckets(d);
    relate_dist_sums_poll(d->sums);
}

relate_status relate_dp_backward(relate_graph *g, relate_tensor *loss, relate_params *const *stores, int nstores,
                                 relate_error *err)
{
    const int n = relate_dist_size();
    dp_sync d = {0};
    if (n > 1) {
        if (make_buckets(g, &d, stores, nstores, err) != RELATE_OK ||
            relate_dist_sums_create(&d.sums, d.count, err) != RELATE_OK)
            return err->code;
        relate_graph_on_grad_ready(g, on_grad_ready, &d);
    }
    relate_status st = RELATE_OK;
    if (!loss || relate_graph_backward_scaled(g, loss, 1.0f / (float)n) != RELATE_OK) {
        *err = *relate_graph_error(g);
        if (err->code == RELATE_OK)
            relate_error_set(err, RELATE_ERR_INTERNAL, "the step built no loss");
        st = err->code;
    }
    if (n == 1)
        return st;
    relate_graph_on_grad_ready(g, NULL, NULL);
    /* Buckets whose parameters the step did not use (their gradients are zero) start now. */
    for (int i = d.next; i < d.count; i++)
        d.buckets[i].waiting = 0;
    start_ready_buckets(&d);
    relate_error e = {0};
    relate_dist_sums_finish(d.sums, &e);
    relate_dist_sums_free(d.sums);
    if (st != RELATE_OK)
        return st;
    if (d.err.code != RELATE_OK || e.code != RELATE_OK)
        return relate_error_set(err, d.err.code != RELATE_OK ? d.err.code : e.code,
                                "summing the gradients over the processes: %s",
                                d.err.code != RELATE_OK ? d.err.msg : e.msg);
    return RELATE_OK;
}
