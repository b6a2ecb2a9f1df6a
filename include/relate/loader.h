/* relate/loader.h: mini-batches of augmented views from a dataset split: per-epoch shuffle,
 * drop_last, K views per image laid out view-major (spec 3.1.2), worker threads that prepare
 * batches ahead of the training step.
 * Not a dataset reader and not the augmentations themselves (relate/data.h).
 *
 * Every random draw is keyed by (seed, epoch, dataset index, view, purpose), so a seed gives
 * bit-identical batches whatever the number of worker threads.
 *
 *   relate_loader_config cfg = relate_loader_defaults(train_split, &ds.info, RELATE_T1);
 *   cfg.views = 32; cfg.batch_size = 64; cfg.seed = 1; cfg.threads = 2;
 *   relate_loader *ld;
 *   relate_loader_create(&ld, &cfg, &err);
 *   relate_loader_start_epoch(ld, epoch);
 *   relate_batch b;
 *   while (relate_loader_next(ld, &b) == 1)
 *       step(b.images, b.views * b.size);      // [K*B, 3, S, S]
 *   relate_loader_destroy(ld);
 */
#ifndef RELATE_LOADER_H
#define RELATE_LOADER_H

#include <stdbool.h>
#include <stdint.h>

#include "relate/data.h"
#include "relate/rng.h"
#include "relate/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Produces the [3, S, S] tensor of one view of one image. The default applies the config's
 * pipeline with relate_transform_apply; tests and methods may substitute their own. */
typedef void (*relate_sample_fn)(void *user, const relate_image *img, int64_t index, int view,
                                 relate_rng *rng, float *out, uint8_t *scratch);

typedef struct relate_loader_config {
    const relate_split *split;
    const relate_dataset_info *info;
    relate_pipeline pipeline;
    int views;          /* K >= 1 */
    int batch_size;     /* B >= 1 */
    bool shuffle;
    bool drop_last;
    uint64_t seed;
    int threads;        /* worker threads; 0 = prepare batches in the caller's thread */
    int prefetch;       /* batches prepared ahead (>= 1) when threads > 0 */
    relate_sample_fn sample; /* NULL: the pipeline */
    void *sample_user;
    int64_t limit_batches; /* > 0: stop each epoch after this many batches */
    /* Data-parallel sharding (issue 12): this loader is shard shard_index of shard_count and
     * yields only its rows of every global batch of batch_size images, rows
     * [size * r / n, size * (r + 1) / n) for r = shard_index, n = shard_count. Everything else
     * (order, augmentation draws, drop_last, the last partial batch) is the unsharded loader's,
     * so the shards of a batch, concatenated in rank order, are bit for bit its rows. A shard
     * may be empty when a last partial batch has fewer images than shards. Default 0 of 1. */
    int shard_index, shard_count;
} relate_loader_config;

typedef struct relate_batch {
    int64_t number;      /* 0-based batch number within the epoch */
    int size;            /* B of this batch (the last one may be smaller); sharded: this shard's rows */
    int global_size;     /* the whole batch's B (= size unless sharded) */
    int global_offset;   /* sharded: the global row of this shard's first row (0 unless sharded) */
    int views;
    int side;            /* S: images are S x S */
    float *images;       /* [views * size, 3, S, S]: rows k*size .. k*size+size-1 hold view k */
    int32_t *labels;     /* [size] */
    int64_t *indices;    /* [size]: dataset indices */
} relate_batch;

typedef struct relate_loader relate_loader;

/* Shuffle on, drop_last off, one view, batch 128, seed 0, 2 worker threads, prefetch 1 (the
 * workers share each batch, so one batch ahead keeps them all busy). */
relate_loader_config relate_loader_defaults(const relate_split *split, const relate_dataset_info *info,
                                            relate_pipeline pipeline);
relate_status relate_loader_create(relate_loader **out, const relate_loader_config *cfg, relate_error *err);
/* Starts (or restarts) an epoch: a new order when shuffling, new augmentation draws. */
void relate_loader_start_epoch(relate_loader *l, int epoch);
/* The same epoch from batch first_batch on (a run resumed mid-epoch): the batches returned are
 * exactly batches first_batch.. of relate_loader_start_epoch's, with their numbers. */
void relate_loader_start_epoch_at(relate_loader *l, int epoch, int64_t first_batch);
/* 1 and a batch (valid until the next call), or 0 at the end of the epoch. */
int relate_loader_next(relate_loader *l, relate_batch *b);
int64_t relate_loader_batches_per_epoch(const relate_loader *l);
void relate_loader_destroy(relate_loader *l);
/* The order a shuffling loader visits n items in epoch `epoch` (a Fisher-Yates permutation keyed
 * by seed and epoch), for code that batches precomputed rows the same way. */
void relate_shuffle_order(int64_t *order, int64_t n, uint64_t seed, int epoch);

#ifdef __cplusplus
}
#endif
#endif
