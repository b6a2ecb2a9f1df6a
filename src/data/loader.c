/* loader.c: the mini-batch loader: epoch order, batch assembly in view-major layout, and a
 * pool of worker threads that prepares up to `prefetch` batches ahead of the consumer. The
 * workers share each batch (one part of its images each), so one batch ahead keeps them all
 * busy and a batch is ready sooner than if one thread built it.
 * Not an augmentation library (transforms.c) and not a dataset reader (dataset.c). */
#include "relate/loader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/pages.h"

enum { SLOT_FREE = 0, SLOT_FILLING = 1, SLOT_READY = 2 };

typedef struct slot {
    float *images;
    int32_t *labels;
    int64_t *indices;
    int64_t batch;
    int size;
    int state;
    int parts_busy, parts_done; /* parts being filled / finished (SLOT_FILLING) */
} slot;

struct relate_loader {
    relate_loader_config cfg;
    int side;
    size_t sample_floats, scratch_bytes;
    int64_t n, nbatches;
    int64_t *order;
    int epoch;

    pthread_mutex_t mu;
    pthread_cond_t work, ready;
    pthread_t *workers;
    int nworkers;
    uint8_t **scratch; /* one per worker, plus one for the caller's thread */
    slot *slots;
    int nslots;
    int parts;        /* jobs per batch: one per worker */
    int64_t next_job; /* counts parts: batch next_job / parts, part next_job % parts */
    int64_t next_out, released;
    unsigned generation;
    int stop;
};

relate_loader_config relate_loader_defaults(const relate_split *split, const relate_dataset_info *info,
                                            relate_pipeline pipeline)
{
    relate_loader_config c = {0};
    c.split = split;
    c.info = info;
    c.pipeline = pipeline;
    c.views = 1;
    c.batch_size = 128;
    c.shuffle = true;
    c.threads = 2;
    c.prefetch = 1;
    c.shard_count = 1;
    return c;
}

static void default_sample(void *user, const relate_image *img, int64_t index, int view, relate_rng *rng,
                           float *out, uint8_t *scratch)
{
    const relate_loader_config *cfg = user;
    (void)index, (void)view;
    relate_transform_apply(cfg->pipeline, cfg->info, img, rng, out, scratch);
}

static int batch_size_of(const relate_loader *l, int64_t j)
{
    const int64_t first = j * l->cfg.batch_size;
    return (int)(l->n - first < l->cfg.batch_size ? l->n - first : l->cfg.batch_size);
}

/* This shard's rows [*g0, *g1) of global batch j. */
static void shard_rows(const relate_loader *l, int64_t j, int *g0, int *g1)
{
    const int64_t size = batch_size_of(l, j), r = l->cfg.shard_index, n = l->cfg.shard_count;
    *g0 = (int)(size * r / n);
    *g1 = (int)(size * (r + 1) / n);
}

static int shard_size_of(const relate_loader *l, int64_t j)
{
    int g0, g1;
    shard_rows(l, j, &g0, &g1);
    return g1 - g0;
}

/* Fills part `part` of `parts` (a contiguous range of its images) of slot s with batch j of the
 * current epoch; pure given (seed, epoch, order). */
static void fill(relate_loader *l, slot *s, int64_t j, int part, int parts, uint8_t *scratch)
{
    const relate_loader_config *c = &l->cfg;
    int g0, g1;
    shard_rows(l, j, &g0, &g1);
    const int64_t first = j * c->batch_size + g0; /* this shard's first image in the order */
    const int size = g1 - g0;
    int i0 = (int)((int64_t)size * part / parts), i1 = (int)((int64_t)size * (part + 1) / parts);
    relate_sample_fn fn = c->sample ? c->sample : default_sample;
    void *user = c->sample ? c->sample_user : (void *)&l->cfg;
    for (int i = i0; i < i1; i++) {
        int64_t idx = l->order[first + i];
        relate_image img = relate_split_image(c->split, idx);
        s->indices[i] = idx;
        s->labels[i] = c->split->labels[idx];
        for (int k = 0; k < c->views; k++) {
            relate_rng r;
            /* Keyed by the image, not its position in the batch: the same (epoch, image, view)
             * always gets the same augmentation, whatever thread or batch builds it. */
            relate_rng_init(&r, c->seed, (uint32_t)l->epoch, (uint32_t)idx,
                            (uint32_t)RELATE_PURPOSE_AUGMENT << 24 | (uint32_t)k);
            fn(user, &img, idx, k, &r, s->images + ((size_t)k * size + i) * l->sample_floats, scratch);
        }
    }
}

static void *worker_main(void *arg)
{
    relate_loader *l = ((void **)arg)[0];
    uint8_t *scratch = ((void **)arg)[1];
    free(arg);
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        const int64_t j = l->next_job / l->parts;
        if (j < l->nbatches && j < l->released + l->nslots) {
            const int part = (int)(l->next_job++ % l->parts);
            slot *s = &l->slots[j % l->nslots];
            unsigned gen = l->generation;
            if (part == 0) {
                s->state = SLOT_FILLING;
                s->parts_done = 0;
                s->batch = j;
                s->size = shard_size_of(l, j);
            }
            s->parts_busy++;
            pthread_mutex_unlock(&l->mu);
            fill(l, s, j, part, l->parts, scratch);
            pthread_mutex_lock(&l->mu);
            s->parts_busy--;
            if (gen != l->generation)
                s->state = s->parts_busy ? SLOT_FILLING : SLOT_FREE; /* a restarted epoch drops it */
            else if (++s->parts_done == l->parts)
                s->state = SLOT_READY;
            pthread_cond_broadcast(&l->ready);
        } else {
            pthread_cond_wait(&l->work, &l->mu);
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

relate_status relate_loader_create(relate_loader **out, const relate_loader_config *cfg, relate_error *err)
{
    *out = NULL;
    if (!cfg->split || !cfg->split->present || !cfg->info)
        return relate_error_set(err, RELATE_ERR_ARG, "loader: the dataset has no such split");
    if (cfg->views < 1 || cfg->batch_size < 1 || cfg->threads < 0 || cfg->threads > 256)
        return relate_error_set(err, RELATE_ERR_ARG, "loader: views (%d) and batch size (%d) must be >= 1, threads (%d) in [0, 256]",
                                cfg->views, cfg->batch_size, cfg->threads);
    /* shard_count 0: a config made without relate_loader_defaults, unsharded */
    const int shards = cfg->shard_count ? cfg->shard_count : 1;
    if (shards < 0 || cfg->shard_index < 0 || cfg->shard_index >= shards)
        return relate_error_set(err, RELATE_ERR_ARG, "loader: shard %d of %d", cfg->shard_index, cfg->shard_count);
    relate_loader *l = calloc(1, sizeof *l);
    if (!l)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    l->cfg = *cfg;
    l->cfg.shard_count = shards;
    l->side = cfg->info->image_size;
    l->sample_floats = (size_t)3 * l->side * l->side;
    l->scratch_bytes = relate_transform_scratch_bytes(cfg->split->width, cfg->split->height, l->side);
    l->n = cfg->split->count;
    l->nbatches = cfg->drop_last ? l->n / cfg->batch_size : (l->n + cfg->batch_size - 1) / cfg->batch_size;
    if (cfg->limit_batches > 0 && cfg->limit_batches < l->nbatches)
        l->nbatches = cfg->limit_batches;
    l->order = malloc((size_t)l->n * sizeof(int64_t));
    l->nworkers = cfg->threads;
    l->nslots = cfg->threads > 0 ? (cfg->prefetch > 0 ? cfg->prefetch : 1) + 1 : 1;
    l->parts = cfg->threads > 0 ? cfg->threads : 1;
    l->slots = calloc((size_t)l->nslots, sizeof(slot));
    l->scratch = calloc((size_t)l->nworkers + 1, sizeof(uint8_t *));
    int ok = l->order && l->slots && l->scratch;
    size_t batch_floats = (size_t)cfg->views * cfg->batch_size * l->sample_floats;
    for (int i = 0; ok && i < l->nslots; i++) {
        l->slots[i].images = malloc(batch_floats * sizeof(float));
        l->slots[i].labels = malloc((size_t)cfg->batch_size * sizeof(int32_t));
        l->slots[i].indices = malloc((size_t)cfg->batch_size * sizeof(int64_t));
        ok = l->slots[i].images && l->slots[i].labels && l->slots[i].indices;
        /* A batch is tens of MB at K=32, written by the workers and read by the step every
         * step: huge pages (base/pages.h) measured 3-4% of the full headline step. */
        if (ok)
            relate_pages_advise(l->slots[i].images, batch_floats * sizeof(float));
    }
    for (int i = 0; ok && i <= l->nworkers; i++)
        ok = (l->scratch[i] = malloc(l->scratch_bytes ? l->scratch_bytes : 1)) != NULL;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->ready, NULL);
    if (ok && l->nworkers > 0) {
        l->workers = calloc((size_t)l->nworkers, sizeof(pthread_t));
        ok = l->workers != NULL;
        /* No batch is available to workers until the first start_epoch. */
        l->next_job = l->nbatches * l->parts;
        for (int i = 0; ok && i < l->nworkers; i++) {
            void **arg = malloc(2 * sizeof(void *));
            ok = arg != NULL;
            if (ok) {
                arg[0] = l;
                arg[1] = l->scratch[i];
                if (pthread_create(&l->workers[i], NULL, worker_main, arg) != 0) {
                    free(arg);
                    ok = 0;
                    l->nworkers = i;
                }
            }
        }
    }
    if (!ok) {
        relate_loader_destroy(l);
        return relate_error_set(err, RELATE_ERR_NOMEM, "loader: out of memory (or threads) for %d views x %d images",
                                cfg->views, cfg->batch_size);
    }
    *out = l;
    return RELATE_OK;
}

void relate_loader_start_epoch(relate_loader *l, int epoch) { relate_loader_start_epoch_at(l, epoch, 0); }

void relate_loader_start_epoch_at(relate_loader *l, int epoch, int64_t first_batch)
{
    if (first_batch < 0)
        first_batch = 0;
    if (first_batch > l->nbatches)
        first_batch = l->nbatches;
    pthread_mutex_lock(&l->mu);
    l->generation++;
    /* A worker still filling a slot for the old epoch must finish before slots are reused. */
    for (;;) {
        int busy = 0;
        for (int i = 0; i < l->nslots; i++)
            busy |= l->slots[i].parts_busy > 0;
        if (!busy)
            break;
        pthread_cond_wait(&l->ready, &l->mu);
    }
    for (int i = 0; i < l->nslots; i++)
        l->slots[i].state = SLOT_FREE;
    l->epoch = epoch;
    if (l->cfg.shuffle) {
        relate_shuffle_order(l->order, l->n, l->cfg.seed, epoch);
    } else {
        for (int64_t i = 0; i < l->n; i++)
            l->order[i] = i;
    }
    /* Batch j's images, order and augmentation draws depend on (seed, epoch, j) only, so starting
     * at first_batch gives exactly the batches an uninterrupted epoch gives from there on. */
    l->next_out = l->released = first_batch;
    l->next_job = first_batch * l->parts;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
}

void relate_shuffle_order(int64_t *order, int64_t n, uint64_t seed, int epoch)
{
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    relate_rng r;
    relate_rng_init(&r, seed, (uint32_t)epoch, 0, (uint32_t)RELATE_PURPOSE_SHUFFLE << 24);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t k = (int64_t)relate_rng_below(&r, (uint32_t)(i + 1));
        int64_t t = order[i];
        order[i] = order[k];
        order[k] = t;
    }
}

int relate_loader_next(relate_loader *l, relate_batch *b)
{
    pthread_mutex_lock(&l->mu);
    l->released = l->next_out; /* the batch returned last time is no longer in use */
    pthread_cond_broadcast(&l->work);
    if (l->next_out >= l->nbatches) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    int64_t j = l->next_out;
    slot *s = &l->slots[j % l->nslots];
    if (l->nworkers == 0) {
        pthread_mutex_unlock(&l->mu);
        s->batch = j;
        s->size = shard_size_of(l, j);
        fill(l, s, j, 0, 1, l->scratch[0]);
        pthread_mutex_lock(&l->mu);
    } else {
        while (!(s->state == SLOT_READY && s->batch == j))
            pthread_cond_wait(&l->ready, &l->mu);
    }
    l->next_out++;
    pthread_mutex_unlock(&l->mu);
    b->number = j;
    b->size = s->size;
    b->global_size = batch_size_of(l, j);
    b->global_offset = (int)((int64_t)b->global_size * l->cfg.shard_index / l->cfg.shard_count);
    b->views = l->cfg.views;
    b->side = l->side;
    b->images = s->images;
    b->labels = s->labels;
    b->indices = s->indices;
    return 1;
}

int64_t relate_loader_batches_per_epoch(const relate_loader *l) { return l->nbatches; }

void relate_loader_destroy(relate_loader *l)
{
    if (!l)
        return;
    if (l->workers) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->work);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->nworkers; i++)
            pthread_join(l->workers[i], NULL);
        free(l->workers);
    }
    for (int i = 0; l->slots && i < l->nslots; i++) {
        free(l->slots[i].images);
        free(l->slots[i].labels);
        free(l->slots[i].indices);
    }
    for (int i = 0; l->scratch && i <= l->cfg.threads; i++)
        free(l->scratch[i]);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->ready);
    free(l->scratch);
    free(l->slots);
    free(l->order);
    free(l);
}
