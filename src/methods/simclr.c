/* simclr.c: the SimCLR baseline (spec 3.2, A10): two T1 views per image interleaved into one
 * backbone pass over 2B, the projection head `head` (Linear(d,256), BatchNorm1d, LeakyReLU(0.01),
 * Linear(256,64)), the reference's loss -log(mean ratio) with tau 0.5, Adam on two groups.
 * Not NT-Xent as in the SimCLR paper (mean of logs): the reference's variant, on purpose. */
#include <stdlib.h>
#include <string.h>

#include "methods/method_internal.h"

#define HEAD_HIDDEN 256
#define HEAD_OUT 64
#define TEMPERATURE 0.5f
#define COS_EPS 1e-8f

typedef struct simclr {
    relate_params head; /* the `head` state dict */
    relate_linear_layer linear1, linear2;
    relate_bn_layer bn1;
    relate_adam adam;
} simclr;

static simclr *impl(const relate_method *m) { return m->impl; }

static relate_status sc_init(relate_method *m, relate_error *err)
{
    simclr *s = calloc(1, sizeof *s);
    if (!s)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    m->impl = s;
    const int d = m->backbone.feature_size;
    relate_params_init(&s->head);
    relate_linear_register(&s->linear1, &s->head, "linear1", d, HEAD_HIDDEN, true);
    relate_bn_register(&s->bn1, &s->head, "bn1", HEAD_HIDDEN);
    relate_linear_register(&s->linear2, &s->head, "linear2", HEAD_HIDDEN, HEAD_OUT, true);
    if (relate_params_finalize(&s->head, err) != RELATE_OK)
        return err->code;
    relate_rng rng;
    relate_head_rng(&rng, m->cfg.seed, 0);
    relate_linear_init_default(&s->linear1, &rng);
    relate_bn_init(&s->bn1);
    relate_linear_init_default(&s->linear2, &rng);
    return relate_backbone_head_adam(&s->adam, &m->backbone.params, &s->head, 1e-3, err);
}

static void sc_destroy(relate_method *m)
{
    simclr *s = impl(m);
    if (!s)
        return;
    relate_adam_free(&s->adam);
    relate_params_free(&s->head);
    free(s);
    m->impl = NULL;
}

static int sc_views(const relate_method *m)
{
    (void)m;
    return 2;
}
static relate_pipeline sc_pipeline(const relate_method *m, const relate_dataset_info *info)
{
    (void)m, (void)info;
    return RELATE_T1;
}
static relate_split_kind sc_split(const relate_method *m, const relate_dataset_info *info)
{
    (void)m;
    return info->unsupervised_split;
}

void relate_simclr_interleave(float *out, const float *views, int B, size_t image_floats)
{
    const size_t bytes = image_floats * sizeof(float);
    for (int n = 0; n < B; n++) {
        memcpy(out + (size_t)(2 * n) * image_floats, views + (size_t)n * image_floats, bytes);
        memcpy(out + (size_t)(2 * n + 1) * image_floats, views + (size_t)(B + n) * image_floats, bytes);
    }
}

relate_tensor *relate_simclr_head_loss(relate_graph *g, relate_method *m, relate_tensor *f, relate_tensor **z_out)
{
    simclr *s = impl(m);
    relate_tensor *h = relate_linear_layer_forward(g, &s->linear1, f);
    h = relate_leaky_relu(g, relate_bn_forward(g, &s->bn1, h, true), 0.01f);
    relate_tensor *z = relate_linear_layer_forward(g, &s->linear2, h);
    if (z_out)
        *z_out = z;
    return relate_simclr_loss(g, z, TEMPERATURE, COS_EPS);
}

relate_params *relate_simclr_head(relate_method *m) { return &impl(m)->head; }

static relate_status sc_step(relate_method *m, relate_graph *g, const relate_batch *b, relate_step_result *res,
                             relate_error *err)
{
    simclr *s = impl(m);
    const int B = b->size;
    if (b->views != 2)
        return relate_error_set(err, RELATE_ERR_ARG, "simclr: batch has %d views, expected 2", b->views);
    relate_params_zero_grad(&m->backbone.params);
    relate_params_zero_grad(&s->head);
    /* The loader gives [V0; V1]; the reference's rows 2n, 2n+1 are views 0, 1 of image n. */
    const size_t image_floats = (size_t)3 * b->side * b->side;
    float *inter = relate_graph_alloc(g, (size_t)2 * B * image_floats * sizeof(float));
    if (!inter) {
        *err = *relate_graph_error(g);
        return err->code;
    }
    relate_simclr_interleave(inter, b->images, B, image_floats);
    relate_tensor *x = relate_tensor_wrap(g, 4, (int64_t[]){2 * (int64_t)B, 3, b->side, b->side}, inter);
    relate_tensor *f = relate_dp_gather(g, relate_backbone_forward(g, &m->backbone, x, true), b, 1, 2);
    relate_tensor *loss = relate_simclr_head_loss(g, m, f, NULL);
    relate_params *const stores[] = {&m->backbone.params, &s->head};
    if (relate_dp_backward(g, loss, stores, 2, err) != RELATE_OK)
        return err->code;
    relate_adam_step(&s->adam);
    res->loss = loss->data[0];
    res->score = -res->loss;
    res->items = 2 * (int64_t)b->global_size;
    return RELATE_OK;
}

static relate_status sc_save(const relate_method *m, relate_ckpt_writer *w, relate_error *err)
{
    simclr *s = impl(m);
    if (relate_ckpt_put_state_dict(w, "backbone", &m->backbone.params) != RELATE_OK ||
        relate_ckpt_put_state_dict(w, "head", &s->head) != RELATE_OK ||
        relate_ckpt_put_adam(w, "optimizer", &s->adam) != RELATE_OK)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory building the checkpoint");
    return RELATE_OK;
}

static relate_status sc_load(relate_method *m, const relate_ckpt *c, relate_error *err)
{
    simclr *s = impl(m);
    static const char *const keys[] = {"backbone", "head", "optimizer", NULL};
    if (relate_ckpt_require_keys(c, "simclr", keys, err) != RELATE_OK ||
        relate_ckpt_load_state_dict(c, "backbone", &m->backbone.params, err) != RELATE_OK ||
        relate_ckpt_load_state_dict(c, "head", &s->head, err) != RELATE_OK ||
        relate_ckpt_load_adam(c, "optimizer", &s->adam, err) != RELATE_OK)
        return err->code;
    return RELATE_OK;
}

const relate_method_ops relate_method_simclr = {
    .name = "simclr",
    .trains = true,
    .drop_last = false,
    .init = sc_init,
    .destroy = sc_destroy,
    .views = sc_views,
    .pipeline = sc_pipeline,
    .split = sc_split,
    .step = sc_step,
    .save = sc_save,
    .load = sc_load,
};
