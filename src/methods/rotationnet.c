/* rotationnet.c: the rotation-prediction baseline (spec 3.3, A11): each T3 batch X becomes
 * [X; R1 X; R2 X; R3 X] (0/90/180/270 degrees counter-clockwise, on the normalised tensors) in one
 * backbone pass over 4B, Linear(d, 4) `classifier`, mean cross-entropy against the rotation index,
 * Adam on two groups. Not label-aware: the dataset's labels are discarded. */
#include <stdlib.h>
#include <string.h>

#include "data/transforms_internal.h"
#include "methods/method_internal.h"

#define ROTATIONS 4

typedef struct rotationnet {
    relate_params head; /* the `classifier` state dict */
    relate_linear_layer linear;
    relate_adam adam;
} rotationnet;

static rotationnet *impl(const relate_method *m) { return m->impl; }

static relate_status rot_init(relate_method *m, relate_error *err)
{
    rotationnet *r = calloc(1, sizeof *r);
    if (!r)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    m->impl = r;
    relate_params_init(&r->head);
    /* The classifier is its own module: its state dict is `weight`, `bias` at the top level. */
    relate_linear_register(&r->linear, &r->head, "", m->backbone.feature_size, ROTATIONS, true);
    if (relate_params_finalize(&r->head, err) != RELATE_OK)
        return err->code;
    relate_rng rng;
    relate_head_rng(&rng, m->cfg.seed, 0);
    relate_linear_init_default(&r->linear, &rng);
    return relate_backbone_head_adam(&r->adam, &m->backbone.params, &r->head, 1e-3, err);
}

static void rot_destroy(relate_method *m)
{
    rotationnet *r = impl(m);
    if (!r)
        return;
    relate_adam_free(&r->adam);
    relate_params_free(&r->head);
    free(r);
    m->impl = NULL;
}

static int rot_views(const relate_method *m)
{
    (void)m;
    return 1;
}
static relate_pipeline rot_pipeline(const relate_method *m, const relate_dataset_info *info)
{
    (void)m, (void)info;
    return RELATE_T3;
}
static relate_split_kind rot_split(const relate_method *m, const relate_dataset_info *info)
{
    (void)m;
    return info->unsupervised_split;
}

/* out [4B, C, S, S] = [X; R1 X; R2 X; R3 X] from x [B, C, S, S], per (row i, column j) of each
 * plane: R1[i][j] = X[j][S-1-i], R2[i][j] = X[S-1-i][S-1-j], R3[i][j] = X[S-1-j][i] (the
 * reference's transpose(2,3).flip(2), flip(2).flip(3), flip(2).transpose(2,3); the data layer's
 * relate_rotate90, which `relate data --preview --method=rotationnet` shows, does each turn). */
void relate_rotation_batch(float *out, const float *x, int B, int C, int S)
{
    const size_t image = (size_t)C * S * S;
    /* Images are independent copies: split over the step's threads (the same bytes for any count). */
#pragma omp parallel for collapse(2) schedule(static) num_threads(relate_get_threads()) \
    if ((size_t)ROTATIONS * B * image >= ((size_t)1 << 16))
    for (int k = 0; k < ROTATIONS; k++)
        for (int n = 0; n < B; n++)
            relate_rotate90(x + (size_t)n * image, out + ((size_t)k * B + n) * image, C, S, k);
}

relate_tensor *relate_rotationnet_loss(relate_graph *g, relate_method *m, relate_tensor *f, int B,
                                       relate_tensor **logits_out)
{
    rotationnet *r = impl(m);
    int32_t *targets = relate_graph_alloc(g, (size_t)ROTATIONS * B * sizeof *targets);
    if (!targets)
        return NULL;
    for (int k = 0; k < ROTATIONS; k++)
        for (int n = 0; n < B; n++)
            targets[k * B + n] = k;
    relate_tensor *logits = relate_linear_layer_forward(g, &r->linear, f);
    if (logits_out)
        *logits_out = logits;
    if (logits && logits->shape[0] != (int64_t)ROTATIONS * B)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "rotationnet: %lld feature rows for 4 x %d rotated images",
                                 (long long)logits->shape[0], B);
    return relate_cross_entropy(g, logits, targets, NULL);
}

relate_linear_layer *relate_rotationnet_classifier(relate_method *m) { return &impl(m)->linear; }

static relate_status rot_step(relate_method *m, relate_graph *g, const relate_batch *b, relate_step_result *res,
                              relate_error *err)
{
    rotationnet *r = impl(m);
    const int Bl = b->size, B = b->global_size, S = b->side;
    if (b->views != 1)
        return relate_error_set(err, RELATE_ERR_ARG, "rotationnet: batch has %d views, expected 1", b->views);
    relate_params_zero_grad(&m->backbone.params);
    relate_params_zero_grad(&r->head);
    float *rotated = relate_graph_alloc(g, (size_t)ROTATIONS * Bl * 3 * S * S * sizeof(float));
    if (!rotated) {
        *err = *relate_graph_error(g);
        return err->code;
    }
    relate_rotation_batch(rotated, b->images, Bl, 3, S);
    relate_tensor *x = relate_tensor_wrap(g, 4, (int64_t[]){(int64_t)ROTATIONS * Bl, 3, S, S}, rotated);
    relate_tensor *f = relate_dp_gather(g, relate_backbone_forward(g, &m->backbone, x, true), b, ROTATIONS, 1);
    relate_tensor *logits = NULL;
    relate_tensor *loss = relate_rotationnet_loss(g, m, f, B, &logits);
    relate_params *const stores[] = {&m->backbone.params, &r->head};
    if (relate_dp_backward(g, loss, stores, 2, err) != RELATE_OK)
        return err->code;
    relate_adam_step(&r->adam);
    const int64_t n = (int64_t)ROTATIONS * B;
    int64_t correct = 0; /* argmax (first maximum, as torch.argmax) against the rotation index */
    for (int64_t i = 0; i < n; i++) {
        const float *row = logits->data + i * ROTATIONS;
        int best = 0;
        for (int c = 1; c < ROTATIONS; c++)
            if (row[c] > row[best])
                best = c;
        correct += best == (int)(i / B);
    }
    res->loss = loss->data[0];
    res->items = n;
    res->score = 100.0 * (double)correct / (double)n;
    return RELATE_OK;
}

static relate_status rot_save(const relate_method *m, relate_ckpt_writer *w, relate_error *err)
{
    rotationnet *r = impl(m);
    if (relate_ckpt_put_state_dict(w, "classifier", &r->head) != RELATE_OK ||
        relate_ckpt_put_state_dict(w, "backbone", &m->backbone.params) != RELATE_OK ||
        relate_ckpt_put_adam(w, "optimizer", &r->adam) != RELATE_OK)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory building the checkpoint");
    return RELATE_OK;
}

static relate_status rot_load(relate_method *m, const relate_ckpt *c, relate_error *err)
{
    rotationnet *r = impl(m);
    static const char *const keys[] = {"classifier", "backbone", "optimizer", NULL};
    if (relate_ckpt_require_keys(c, "rotationnet", keys, err) != RELATE_OK ||
        relate_ckpt_load_state_dict(c, "classifier", &r->head, err) != RELATE_OK ||
        relate_ckpt_load_state_dict(c, "backbone", &m->backbone.params, err) != RELATE_OK ||
        relate_ckpt_load_adam(c, "optimizer", &r->adam, err) != RELATE_OK)
        return err->code;
    return RELATE_OK;
}

const relate_method_ops relate_method_rotationnet = {
    .name = "rotationnet",
    .trains = true,
    .drop_last = false,
    .init = rot_init,
    .destroy = rot_destroy,
    .views = rot_views,
    .pipeline = rot_pipeline,
    .split = rot_split,
    .step = rot_step,
    .save = rot_save,
    .load = rot_load,
};
