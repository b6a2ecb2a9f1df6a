/* deepcluster.c: the DeepCluster baseline as the reference runs it (spec 3.5, A8): every epoch
 * re-initialises the last layer, extracts features of the whole split (backbone in eval mode,
 * T3 active), PCA-whitens and L2-normalises them, clusters them with k-means (k = 10 x classes)
 * and trains backbone + MLP head on the pseudo-labels with a class-weighted cross-entropy.
 * Training samples are augmented twice with the reference's 8-bit wrap-around in between.
 * Not the original DeepCluster (SGD, uniform sampling over clusters, PCA to 256): see A8.
 *
 * Random draws, all from --seed (the reference's k-means used the wall clock):
 *   training views      the loader's key (seed, epoch, image, AUGMENT << 24 | 0), both T3 passes
 *   feature pass views  (seed, epoch, image, METHOD << 24 | DC_TAG_FEATURES)
 *   linear2 re-init     (seed, epoch, 0, METHOD << 24 | DC_TAG_LINEAR2)
 *   k-means restart r   (seed, epoch, r, METHOD << 24 | 'KM') (kmeans.h)
 * so an epoch depends only on the weights and optimizer state at its start: resume is exact. */
#include "methods/deepcluster.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "methods/method_internal.h"
#include "methods/pca.h"
#include "relate/dist.h"
#include "relate/loader.h"
#include "relate/stage2.h"
#include "relate/train.h"

#define HEAD_HIDDEN 256
#define DC_TAG_FEATURES 1u
#define DC_TAG_LINEAR2 2u
enum { DC_STACK_IMAGE = 3 * 128 * 128 }; /* intermediate 8-bit image on the stack up to S = 128 */

typedef struct deepcluster {
    int k;
    relate_params head; /* the `classifier` state dict */
    relate_linear_layer linear1, linear2;
    relate_bn_layer bn1;
    relate_adam adam;
    int32_t *pseudo; /* [n] pseudo-label of each dataset index, from the epoch's clustering */
    int64_t n;
    float *weights;  /* [k] */
    int32_t *targets; /* [cap] the current batch's pseudo-labels (the loss keeps a pointer) */
    int targets_cap;
    const relate_dataset_info *info; /* the training loader's, set by loader_setup */
    atomic_int sample_failed;
} deepcluster;

static deepcluster *impl(const relate_method *m) { return m->impl; }

/* ------------------------------------------------------------------ pieces */

uint8_t relate_deepcluster_to_u8(float v)
{
    const float t = v * 255.0f;
    if (!(fabsf(t) < 2147483648.0f))
        return 0;
    return (uint8_t)((uint32_t)(int32_t)t & 0xFFu);
}

void relate_deepcluster_tensor_to_image(const float *chw, int S, uint8_t *hwc)
{
    const size_t plane = (size_t)S * S;
    for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < 3; c++)
            hwc[p * 3 + c] = relate_deepcluster_to_u8(chw[c * plane + p]);
}

bool relate_deepcluster_double_augment(const relate_dataset_info *info, const relate_image *img, relate_rng *rng,
                                       float *out, uint8_t *scratch)
{
    const int S = info->image_size;
    const size_t bytes = (size_t)3 * S * S;
    uint8_t stack[DC_STACK_IMAGE];
    uint8_t *px = bytes <= sizeof stack ? stack : malloc(bytes);
    if (!px) {
        memset(out, 0, bytes * sizeof *out);
        return false;
    }
    relate_transform_apply(RELATE_T3, info, img, rng, out, scratch);
    relate_deepcluster_tensor_to_image(out, S, px);
    relate_image mid = {S, S, px};
    relate_transform_apply(RELATE_T3, info, &mid, rng, out, scratch);
    if (px != stack)
        free(px);
    return true;
}

relate_status relate_deepcluster_cluster(const float *features, int64_t n, int d, int k, uint64_t seed,
                                         uint32_t stream, int32_t *labels, relate_kmeans_report *rep,
                                         relate_error *err)
{
    const int nc = relate_pca_components(d);
    float *z = malloc((size_t)n * nc * sizeof *z);
    if (!z)
        return relate_error_set(err, RELATE_ERR_NOMEM, "deepcluster: out of memory for %lld x %d features",
                                (long long)n, nc);
    relate_status st = relate_pca_whiten(features, n, d, nc, z, NULL, err);
    if (st == RELATE_OK) {
        relate_l2_normalize_rows(z, n, nc);
        relate_kmeans_options o = relate_kmeans_defaults(k);
        o.seed = seed;
        o.stream = stream;
        st = relate_kmeans_fit(z, n, nc, &o, labels, NULL, rep, err);
    }
    free(z);
    return st;
}

void relate_deepcluster_class_weights(const int32_t *labels, int64_t n, int k, float *w)
{
    for (int c = 0; c < k; c++)
        w[c] = 0.0f;
    for (int64_t i = 0; i < n; i++)
        w[labels[i]] += 1.0f; /* float32 counts, as the reference's torch.zeros(k) */
    for (int c = 0; c < k; c++)
        w[c] = 1.0f - w[c] / (float)n;
}

relate_status relate_deepcluster_set_clusters(relate_method *m, const int32_t *labels, int64_t n, relate_error *err)
{
    deepcluster *dc = impl(m);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= dc->k)
            return relate_error_set(err, RELATE_ERR_ARG, "deepcluster: pseudo-label %d of image %lld is outside [0, %d)",
                                    labels[i], (long long)i, dc->k);
    int32_t *p = realloc(dc->pseudo, (size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p)
        return relate_error_set(err, RELATE_ERR_NOMEM, "deepcluster: out of memory for %lld pseudo-labels",
                                (long long)n);
    dc->pseudo = p;
    memcpy(p, labels, (size_t)n * sizeof *p);
    dc->n = n;
    relate_deepcluster_class_weights(labels, n, dc->k, dc->weights);
    return RELATE_OK;
}

void relate_deepcluster_reset_last_layer(relate_method *m, int epoch)
{
    deepcluster *dc = impl(m);
    relate_rng r;
    relate_rng_init(&r, m->cfg.seed, (uint32_t)epoch, 0, (uint32_t)RELATE_PURPOSE_METHOD << 24 | DC_TAG_LINEAR2);
    relate_param *w = dc->linear2.weight, *b = dc->linear2.bias;
    for (int64_t i = 0; i < w->numel; i++)
        w->data[i] = (float)(0.01 * relate_rng_normal(&r));
    memset(b->data, 0, (size_t)b->numel * sizeof *b->data);
}

relate_tensor *relate_deepcluster_loss(relate_graph *g, relate_method *m, relate_tensor *f, const int32_t *targets,
                                       relate_tensor **logits_out)
{
    deepcluster *dc = impl(m);
    relate_tensor *h = relate_linear_layer_forward(g, &dc->linear1, f);
    h = relate_leaky_relu(g, relate_bn_forward(g, &dc->bn1, h, true), 0.01f);
    relate_tensor *logits = relate_linear_layer_forward(g, &dc->linear2, h);
    if (logits_out)
        *logits_out = logits;
    return relate_cross_entropy(g, logits, targets, dc->weights);
}

relate_params *relate_deepcluster_head(relate_method *m) { return &impl(m)->head; }
int relate_deepcluster_k(const relate_method *m) { return impl(m)->k; }
float *relate_deepcluster_weights(relate_method *m) { return impl(m)->weights; }

/* ------------------------------------------------------------------ method table */

static relate_status dc_init(relate_method *m, relate_error *err)
{
    deepcluster *dc = calloc(1, sizeof *dc);
    if (!dc)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    m->impl = dc;
    atomic_init(&dc->sample_failed, 0);
    if (m->cfg.num_classes > 100000)
        return relate_error_set(err, RELATE_ERR_ARG, "deepcluster: %d classes is too many", m->cfg.num_classes);
    dc->k = 10 * m->cfg.num_classes;
    const int d = m->backbone.feature_size;
    relate_params_init(&dc->head);
    relate_linear_register(&dc->linear1, &dc->head, "linear1", d, HEAD_HIDDEN, true);
    relate_bn_register(&dc->bn1, &dc->head, "bn1", HEAD_HIDDEN);
    relate_linear_register(&dc->linear2, &dc->head, "linear2", HEAD_HIDDEN, dc->k, true);
    if (relate_params_finalize(&dc->head, err) != RELATE_OK)
        return err->code;
    relate_rng rng;
    relate_head_rng(&rng, m->cfg.seed, 0);
    relate_linear_init_default(&dc->linear1, &rng);
    relate_bn_init(&dc->bn1);
    relate_linear_init_default(&dc->linear2, &rng);
    dc->weights = malloc((size_t)dc->k * sizeof *dc->weights);
    if (!dc->weights)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    for (int c = 0; c < dc->k; c++)
        dc->weights[c] = 1.0f;
    return relate_backbone_head_adam(&dc->adam, &m->backbone.params, &dc->head, 1e-3, err);
}

static void dc_destroy(relate_method *m)
{
    deepcluster *dc = impl(m);
    if (!dc)
        return;
    relate_adam_free(&dc->adam);
    relate_params_free(&dc->head);
    free(dc->pseudo);
    free(dc->weights);
    free(dc->targets);
    free(dc);
    m->impl = NULL;
}

static int dc_views(const relate_method *m)
{
    (void)m;
    return 1;
}

static relate_pipeline dc_pipeline(const relate_method *m, const relate_dataset_info *info)
{
    (void)m, (void)info;
    return RELATE_T3;
}

static relate_split_kind dc_split(const relate_method *m, const relate_dataset_info *info)
{
    (void)m;
    return info->unsupervised_split;
}

/* The feature pass: T3 with its own key, so the training pass's draws of the same epoch differ.
 * first is the split's number of the loader's image 0 (a process's share starts there). */
typedef struct feature_pass {
    const relate_dataset_info *info;
    uint64_t seed;
    int epoch;
    int64_t first;
} feature_pass;

static void feature_sample(void *user, const relate_image *img, int64_t index, int view, relate_rng *rng, float *out,
                           uint8_t *scratch)
{
    const feature_pass *fp = user;
    (void)view, (void)rng;
    relate_rng r;
    relate_rng_init(&r, fp->seed, (uint32_t)fp->epoch, (uint32_t)(fp->first + index),
                    (uint32_t)RELATE_PURPOSE_METHOD << 24 | DC_TAG_FEATURES);
    relate_transform_apply(RELATE_T3, fp->info, img, &r, out, scratch);
}

/* Features of the split's images [first, first + count) into out's rows of the same numbers,
 * backbone in eval mode, in batches of batch_size images counted from `first`. */
static relate_status extract_range(relate_method *m, const relate_epoch_context *ctx, int batch_size, int64_t first,
                                   int64_t count, float *out, relate_error *err)
{
    if (count == 0)
        return RELATE_OK;
    const relate_split part = relate_split_range(ctx->split, first, count);
    feature_pass fp = {.info = ctx->info, .seed = m->cfg.seed, .epoch = ctx->epoch, .first = first};
    relate_loader_config lc = relate_loader_defaults(&part, ctx->info, RELATE_T3);
    lc.batch_size = batch_size;
    lc.shuffle = false;
    lc.drop_last = false;
    lc.seed = m->cfg.seed;
    /* T3 is a crop and a flip, far cheaper than the forward pass: building batches in this thread
     * keeps loader threads from competing with the OpenMP team of the forward pass (on 2 cores,
     * 2 loader threads made this pass 3-10x slower, measured). */
    lc.threads = 0;
    lc.sample = feature_sample;
    lc.sample_user = &fp;
    relate_loader *ld;
    if (relate_loader_create(&ld, &lc, err) != RELATE_OK)
        return err->code;
    relate_loader_start_epoch(ld, ctx->epoch);
    const relate_status st = relate_loader_features(&m->backbone, ld, first, out, err);
    relate_loader_destroy(ld);
    return st;
}

/* Step 2: features [N, d] of the whole split in order. Across MPI processes each computes a
 * contiguous share of whole batches, the very batches one process runs, so every feature is one
 * process's to the bit (a share of each batch would be a smaller GEMM, which rounds otherwise, and
 * k-means on 60 points with 30 clusters already assigned points otherwise after such rounding).
 * The rows meet in a sum over the processes of buffers that are zero outside each one's share,
 * which adds nothing but zeros. */
static relate_status extract_features(relate_method *m, const relate_epoch_context *ctx, float *out,
                                      relate_error *err)
{
    const int procs = relate_dist_size(), rank = relate_dist_rank();
    const int batch = ctx->batch_size > 0 ? ctx->batch_size : 128;
    const int64_t n = ctx->split->count;
    if (procs == 1)
        return extract_range(m, ctx, batch, 0, n, out, err);
    const int64_t batches = (n + batch - 1) / batch;
    const int64_t first = batches * rank / procs * batch;
    const int64_t end = batches * (rank + 1) / procs * batch;
    const size_t floats = (size_t)n * (size_t)m->backbone.feature_size;
    memset(out, 0, floats * sizeof *out);
    relate_status st = extract_range(m, ctx, batch, first, (end < n ? end : n) - first, out, err);
    /* Every process learns whether any failed before the sum, so none waits in it for ever. */
    double failed = st != RELATE_OK;
    relate_error e = {0};
    if (relate_dist_allreduce_sum_f64(&failed, 1, &e) != RELATE_OK ||
        (failed == 0 && relate_dist_allreduce_sum_f32(out, floats, &e) != RELATE_OK))
        return relate_error_set(err, e.code, "deepcluster: sharing the features: %s", e.msg);
    if (failed > 0 && st == RELATE_OK)
        return relate_error_set(err, RELATE_ERR_IO, "deepcluster: the feature pass failed on another process");
    return st;
}

static relate_status dc_epoch_begin(relate_method *m, const relate_epoch_context *ctx, relate_error *err)
{
    deepcluster *dc = impl(m);
    if (!ctx || !ctx->split || !ctx->info)
        return relate_error_set(err, RELATE_ERR_ARG, "deepcluster: epoch_begin needs the training split");
    const int64_t n = ctx->split->count;
    const int d = m->backbone.feature_size;
    if (n < dc->k || n < 2)
        return relate_error_set(err, RELATE_ERR_ARG,
                                "deepcluster: %lld images cannot be split into k = %d clusters (10 x %d classes)",
                                (long long)n, dc->k, m->cfg.num_classes);
    relate_deepcluster_reset_last_layer(m, ctx->epoch);
    float *features = malloc((size_t)n * d * sizeof *features);
    int32_t *labels = malloc((size_t)n * sizeof *labels);
    relate_status st = RELATE_OK;
    if (!features || !labels)
        st = relate_error_set(err, RELATE_ERR_NOMEM, "deepcluster: out of memory for %lld x %d features",
                              (long long)n, d);
    if (st == RELATE_OK)
        st = extract_features(m, ctx, features, err);
    if (st == RELATE_OK) {
        relate_error e = {0};
        st = relate_deepcluster_cluster(features, n, d, dc->k, m->cfg.seed, (uint32_t)ctx->epoch, labels, NULL, &e);
        if (st != RELATE_OK)
            relate_error_set(err, e.code, "deepcluster: clustering the features of epoch %d failed: %s", ctx->epoch,
                             e.msg);
    }
    /* Across processes each clustered the same features; rank 0's labels are everyone's, so a
     * difference in rounding could never give the processes different targets. */
    if (st == RELATE_OK && relate_dist_size() > 1)
        st = relate_dist_broadcast(labels, (size_t)n * sizeof *labels, 0, err);
    if (st == RELATE_OK)
        st = relate_deepcluster_set_clusters(m, labels, n, err);
    free(features);
    free(labels);
    return st;
}

static void train_sample(void *user, const relate_image *img, int64_t index, int view, relate_rng *rng, float *out,
                         uint8_t *scratch)
{
    deepcluster *dc = user;
    (void)index, (void)view;
    if (!relate_deepcluster_double_augment(dc->info, img, rng, out, scratch))
        atomic_store(&dc->sample_failed, 1);
}

static void dc_loader_setup(relate_method *m, relate_loader_config *cfg)
{
    deepcluster *dc = impl(m);
    dc->info = cfg->info;
    cfg->sample = train_sample;
    cfg->sample_user = dc;
}

static relate_status dc_step(relate_method *m, relate_graph *g, const relate_batch *b, relate_step_result *res,
                             relate_error *err)
{
    deepcluster *dc = impl(m);
    const int B = b->global_size;
    if (!dc->pseudo)
        return relate_error_set(err, RELATE_ERR_ARG, "deepcluster: no pseudo-labels yet (the epoch's clustering "
                                                     "runs in epoch_begin)");
    if (atomic_load(&dc->sample_failed))
        return relate_error_set(err, RELATE_ERR_NOMEM, "deepcluster: out of memory preparing a training image");
    if (b->views != 1)
        return relate_error_set(err, RELATE_ERR_ARG, "deepcluster: batch has %d views, expected 1", b->views);
    if (B > dc->targets_cap) {
        int32_t *t = realloc(dc->targets, (size_t)B * sizeof *t);
        if (!t)
            return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
        dc->targets = t;
        dc->targets_cap = B;
    }
    int64_t *indices = relate_graph_alloc(g, (size_t)B * sizeof *indices); /* the whole batch's */
    if (!indices)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    if (relate_dp_gather_per_image(b, b->indices, indices, sizeof *indices, err) != RELATE_OK)
        return err->code;
    for (int i = 0; i < B; i++) {
        if (indices[i] < 0 || indices[i] >= dc->n)
            return relate_error_set(err, RELATE_ERR_ARG, "deepcluster: image %lld has no pseudo-label (%lld clustered)",
                                    (long long)indices[i], (long long)dc->n);
        dc->targets[i] = dc->pseudo[indices[i]];
    }
    relate_params_zero_grad(&m->backbone.params);
    relate_params_zero_grad(&dc->head);
    relate_tensor *x = relate_tensor_wrap(g, 4, (int64_t[]){b->size, 3, b->side, b->side}, b->images);
    relate_tensor *f = relate_dp_gather(g, relate_backbone_forward(g, &m->backbone, x, true), b, 1, 1);
    relate_tensor *logits = NULL;
    relate_tensor *loss = relate_deepcluster_loss(g, m, f, dc->targets, &logits);
    relate_params *const stores[] = {&m->backbone.params, &dc->head};
    if (relate_dp_backward(g, loss, stores, 2, err) != RELATE_OK)
        return err->code;
    relate_adam_step(&dc->adam);
    res->loss = loss->data[0];
    res->items = B;
    res->score = 100.0 * (double)relate_count_correct(logits->data, dc->targets, B, dc->k) / B;
    return RELATE_OK;
}

static relate_status dc_save(const relate_method *m, relate_ckpt_writer *w, relate_error *err)
{
    deepcluster *dc = impl(m);
    if (relate_ckpt_put_state_dict(w, "classifier", &dc->head) != RELATE_OK ||
        relate_ckpt_put_state_dict(w, "backbone", &m->backbone.params) != RELATE_OK ||
        relate_ckpt_put_adam(w, "optimizer", &dc->adam) != RELATE_OK)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory building the checkpoint");
    return RELATE_OK;
}

static relate_status dc_load(relate_method *m, const relate_ckpt *c, relate_error *err)
{
    deepcluster *dc = impl(m);
    static const char *const keys[] = {"classifier", "backbone", "optimizer", NULL};
    if (relate_ckpt_require_keys(c, "deepcluster", keys, err) != RELATE_OK ||
        relate_ckpt_load_state_dict(c, "classifier", &dc->head, err) != RELATE_OK ||
        relate_ckpt_load_state_dict(c, "backbone", &m->backbone.params, err) != RELATE_OK ||
        relate_ckpt_load_adam(c, "optimizer", &dc->adam, err) != RELATE_OK)
        return err->code;
    return RELATE_OK;
}

const relate_method_ops relate_method_deepcluster = {
    .name = "deepcluster",
    .trains = true,
    .drop_last = false,
    .init = dc_init,
    .destroy = dc_destroy,
    .views = dc_views,
    .pipeline = dc_pipeline,
    .split = dc_split,
    .epoch_begin = dc_epoch_begin,
    .loader_setup = dc_loader_setup,
    .step = dc_step,
    .save = dc_save,
    .load = dc_load,
};
