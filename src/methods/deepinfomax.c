/* deepinfomax.c: the Deep InfoMax baseline as the reference runs it (spec 3.4, 7 A9): alpha = 0 (no global
 * term), the local discriminator on [M || y] against [M' || y] (M = the backbone's first conv-bn-relu map,
 * M'[n] = M[(n+1) mod B]), the prior discriminator against u ~ U[0,1), one Adam (lr 1e-4) over the
 * encoder and both discriminators minimising L = LOCAL + PRIOR (not adversarial: spec 7 A9).
 * Not the global discriminator (alpha = 0 in every reference run, so it is never built).
 *
 * The local term runs fused by default (relate_infomax_local_loss; kernels/infomax.c says why it is
 * fast): c0 split exactly as W_M M + (W_y y + b0) with the y part once per image, W_M M shared between
 * M and M', chunks that never materialise a [B, 256, H, W] tensor. cfg.factorised_head = false runs
 * the reference's concatenation literally (tests compare the two with PyTorch). The prior samples u
 * of a batch are a function of (seed, epoch, batch number), so a resumed run draws the same ones. */
#include <stdlib.h>
#include <string.h>

#include "methods/method_internal.h"

#define LOCAL_HIDDEN 256
#define PRIOR_HIDDEN0 512
#define PRIOR_HIDDEN1 128
#define DIM_BETA 1.0f
#define DIM_GAMMA 0.1f
#define SOFTPLUS_THRESHOLD 20.0f
#define DIM_LR 1e-4

typedef struct deepinfomax {
    relate_params disc; /* the `loss_fn` state dict: local_d.c0..c2 (1x1 convs), prior_d.l0..l2 */
    relate_linear_layer c0, c1, c2, l0, l1, l2; /* c*: weights [out, in, 1, 1] viewed as Linear(in, out) */
    relate_adam adam;
    int epoch;  /* from epoch_begin: keys the prior samples */
    float *u;   /* [B, d] prior samples of the current batch */
    int u_rows;
} deepinfomax;

static deepinfomax *impl(const relate_method *m) { return m->impl; }

/* A 1x1 Conv2d(in, out) with bias under `prefix`: the state dict holds [out, in, 1, 1]. */
static void conv1x1_register(relate_linear_layer *l, relate_params *p, const char *prefix, int in, int out)
{
    char name[64];
    *l = (relate_linear_layer){.in = in, .out = out};
    snprintf(name, sizeof name, "%s.weight", prefix);
    l->weight = relate_params_add(p, name, RELATE_PARAM, 4, (int64_t[]){out, in, 1, 1});
    snprintf(name, sizeof name, "%s.bias", prefix);
    l->bias = relate_params_add(p, name, RELATE_PARAM, 1, (int64_t[]){out});
}

static relate_status dim_init(relate_method *m, relate_error *err)
{
    deepinfomax *s = calloc(1, sizeof *s);
    if (!s)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    m->impl = s;
    const int d = m->backbone.feature_size, mc = m->backbone.local_channels;
    relate_params_init(&s->disc);
    conv1x1_register(&s->c0, &s->disc, "local_d.c0", mc + d, LOCAL_HIDDEN);
    conv1x1_register(&s->c1, &s->disc, "local_d.c1", LOCAL_HIDDEN, LOCAL_HIDDEN);
    conv1x1_register(&s->c2, &s->disc, "local_d.c2", LOCAL_HIDDEN, 1);
    relate_linear_register(&s->l0, &s->disc, "prior_d.l0", d, PRIOR_HIDDEN0, true);
    relate_linear_register(&s->l1, &s->disc, "prior_d.l1", PRIOR_HIDDEN0, PRIOR_HIDDEN1, true);
    relate_linear_register(&s->l2, &s->disc, "prior_d.l2", PRIOR_HIDDEN1, 1, true);
    if (relate_params_finalize(&s->disc, err) != RELATE_OK)
        return err->code;
    /* PyTorch's default Conv2d/Linear init (U(+-1/sqrt(fan_in)), weight then bias) in registration
     * order, from the head stream of the seed. */
    relate_rng rng;
    relate_head_rng(&rng, m->cfg.seed, 0);
    relate_linear_layer *layers[] = {&s->c0, &s->c1, &s->c2, &s->l0, &s->l1, &s->l2};
    for (int i = 0; i < 6; i++)
        relate_linear_init_default(layers[i], &rng);
    return relate_backbone_head_adam(&s->adam, &m->backbone.params, &s->disc, DIM_LR, err);
}

static void dim_destroy(relate_method *m)
{
    deepinfomax *s = impl(m);
    if (!s)
        return;
    relate_adam_free(&s->adam);
    relate_params_free(&s->disc);
    free(s->u);
    free(s);
    m->impl = NULL;
}

static int dim_views(const relate_method *m)
{
    (void)m;
    return 1;
}
static relate_pipeline dim_pipeline(const relate_method *m, const relate_dataset_info *info)
{
    (void)m, (void)info;
    return RELATE_T2;
}
static relate_split_kind dim_split(const relate_method *m, const relate_dataset_info *info)
{
    (void)m;
    return info->unsupervised_split;
}

static relate_status dim_epoch_begin(relate_method *m, const relate_epoch_context *ctx, relate_error *err)
{
    (void)err;
    impl(m)->epoch = ctx->epoch;
    return RELATE_OK;
}

/* A layer's weight as the [out, in] matrix of a Linear (the 1x1 convs store [out, in, 1, 1]). */
static relate_tensor *weight2d(relate_graph *g, const relate_linear_layer *l)
{
    return relate_reshape(g, relate_param_tensor(g, l->weight), 2, (int64_t[]){l->out, l->in});
}

static relate_tensor *dense(relate_graph *g, const relate_linear_layer *l, relate_tensor *x)
{
    return relate_linear(g, x, weight2d(g, l), relate_param_tensor(g, l->bias));
}

/* The reference's local discriminator on rows [N, M_ch + d] (a 1x1 conv is a Linear over channels). */
static relate_tensor *local_d_rows(relate_graph *g, deepinfomax *s, relate_tensor *x)
{
    relate_tensor *h = relate_relu(g, dense(g, &s->c0, x));
    h = relate_relu(g, dense(g, &s->c1, h));
    return dense(g, &s->c2, h);
}

/* Literal: torch.cat((M, y expanded), 1) and torch.cat((M', y expanded), 1) through the discriminator,
 * Ej = -mean(softplus(-T)), Em = mean(softplus(T')), LOCAL = Em - Ej. */
static relate_tensor *local_literal(relate_graph *g, deepinfomax *s, relate_tensor *y, relate_tensor *M)
{
    const int64_t P = M->shape[2] * M->shape[3];
    relate_tensor *yr = relate_repeat_rows(g, y, P);
    relate_tensor *x = relate_concat(g, relate_nchw_to_rows(g, M), yr, 1);
    relate_tensor *xp = relate_concat(g, relate_nchw_to_rows(g, relate_roll_rows(g, M, -1)), yr, 1);
    relate_tensor *t = local_d_rows(g, s, x), *tp = local_d_rows(g, s, xp);
    relate_tensor *ej = relate_scale(g, relate_mean(g, relate_softplus(g, relate_scale(g, t, -1.0f), 1.0f,
                                                                         SOFTPLUS_THRESHOLD)), -1.0f);
    relate_tensor *em = relate_mean(g, relate_softplus(g, tp, 1.0f, SOFTPLUS_THRESHOLD));
    return relate_add(g, em, relate_scale(g, ej, -1.0f));
}

/* Fused: c0 = W_M M + (W_y y + b0), see kernels/infomax.c. */
static relate_tensor *local_fused(relate_graph *g, deepinfomax *s, relate_tensor *y, relate_tensor *M)
{
    const int64_t mc = M->shape[1], d = y->shape[1];
    relate_tensor *w0 = weight2d(g, &s->c0);
    relate_tensor *w_m = relate_slice_cols(g, w0, 0, mc), *w_y = relate_slice_cols(g, w0, mc, d);
    relate_tensor *yb = relate_linear(g, y, w_y, relate_param_tensor(g, s->c0.bias));
    return relate_infomax_local_loss(g, M, w_m, yb, weight2d(g, &s->c1), relate_param_tensor(g, s->c1.bias),
                                     weight2d(g, &s->c2), relate_param_tensor(g, s->c2.bias));
}

static relate_tensor *prior_d(relate_graph *g, deepinfomax *s, relate_tensor *x)
{
    relate_tensor *h = relate_relu(g, relate_linear_layer_forward(g, &s->l0, x));
    h = relate_relu(g, relate_linear_layer_forward(g, &s->l1, h));
    return relate_sigmoid(g, relate_linear_layer_forward(g, &s->l2, h));
}

relate_tensor *relate_deepinfomax_loss(relate_graph *g, relate_method *m, relate_tensor *y, relate_tensor *M,
                                       const float *u, relate_tensor **local_out, relate_tensor **prior_out)
{
    deepinfomax *s = impl(m);
    if (!y || !M)
        return NULL;
    char s1[64], s2[64];
    if (y->ndim != 2 || M->ndim != 4 || y->shape[0] != M->shape[0] || y->shape[1] != m->backbone.feature_size ||
        M->shape[1] != m->backbone.local_channels)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "deepinfomax: y %s and M %s do not fit the %s backbone",
                                 relate_shape_str(y, s1, sizeof s1), relate_shape_str(M, s2, sizeof s2),
                                 m->backbone.name);
    relate_tensor *local = m->cfg.factorised_head ? local_fused(g, s, y, M) : local_literal(g, s, y, M);
    if (DIM_BETA != 1.0f)
        local = relate_scale(g, local, DIM_BETA);
    relate_tensor *ut = relate_tensor_new(g, 2, y->shape);
    if (!ut)
        return NULL;
    memcpy(ut->data, u, (size_t)ut->numel * sizeof(float));
    /* PRIOR = -(mean log D(u) + mean log(1 - D(y))) * gamma */
    relate_tensor *ta = relate_mean(g, relate_log(g, prior_d(g, s, ut)));
    relate_tensor *tb = relate_mean(g, relate_log(g, relate_scale_shift(g, prior_d(g, s, y), -1.0f, 1.0f)));
    relate_tensor *prior = relate_scale(g, relate_add(g, ta, tb), -DIM_GAMMA);
    if (local_out)
        *local_out = local;
    if (prior_out)
        *prior_out = prior;
    return relate_add(g, local, prior);
}

relate_params *relate_deepinfomax_discriminators(relate_method *m) { return &impl(m)->disc; }

void relate_deepinfomax_prior_samples(float *u, uint64_t seed, int epoch, int64_t batch_number, int64_t count)
{
    relate_rng r;
    relate_rng_init(&r, seed, (uint32_t)epoch, (uint32_t)batch_number, RELATE_PURPOSE_METHOD);
    for (int64_t i = 0; i < count; i++)
        u[i] = relate_rng_uniform(&r);
}

static relate_status dim_step(relate_method *m, relate_graph *g, const relate_batch *b, relate_step_result *res,
                              relate_error *err)
{
    deepinfomax *s = impl(m);
    const int B = b->global_size, d = m->backbone.feature_size;
    if (b->views != 1)
        return relate_error_set(err, RELATE_ERR_ARG, "deepinfomax: batch has %d views, expected 1", b->views);
    if (B > s->u_rows) {
        float *u = realloc(s->u, (size_t)B * d * sizeof *u);
        if (!u)
            return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory for %d prior samples", B);
        s->u = u;
        s->u_rows = B;
    }
    /* torch.rand_like(y), fresh every mini-batch. */
    relate_deepinfomax_prior_samples(s->u, m->cfg.seed, s->epoch, b->number, (int64_t)B * d);
    relate_params_zero_grad(&m->backbone.params);
    relate_params_zero_grad(&s->disc);
    relate_tensor *x = relate_tensor_wrap(g, 4, (int64_t[]){b->size, 3, b->side, b->side}, b->images);
    relate_tensor *M = NULL;
    relate_tensor *y = relate_backbone_forward_ex(g, &m->backbone, x, true, &M);
    y = relate_dp_gather(g, y, b, 1, 1);
    M = relate_dp_gather(g, M, b, 1, 1);
    relate_tensor *loss = relate_deepinfomax_loss(g, m, y, M, s->u, NULL, NULL);
    relate_params *const stores[] = {&m->backbone.params, &s->disc};
    if (relate_dp_backward(g, loss, stores, 2, err) != RELATE_OK)
        return err->code;
    relate_adam_step(&s->adam);
    res->loss = loss->data[0];
    res->score = -res->loss;
    res->items = B;
    return RELATE_OK;
}

static relate_status dim_save(const relate_method *m, relate_ckpt_writer *w, relate_error *err)
{
    deepinfomax *s = impl(m);
    if (relate_ckpt_put_state_dict(w, "backbone", &m->backbone.params) != RELATE_OK ||
        relate_ckpt_put_state_dict(w, "loss_fn", &s->disc) != RELATE_OK ||
        relate_ckpt_put_adam(w, "optimizer", &s->adam) != RELATE_OK)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory building the checkpoint");
    return RELATE_OK;
}

static relate_status dim_load(relate_method *m, const relate_ckpt *c, relate_error *err)
{
    deepinfomax *s = impl(m);
    static const char *const keys[] = {"backbone", "loss_fn", "optimizer", NULL};
    if (relate_ckpt_require_keys(c, "deepinfomax", keys, err) != RELATE_OK ||
        relate_ckpt_load_state_dict(c, "backbone", &m->backbone.params, err) != RELATE_OK ||
        relate_ckpt_load_state_dict(c, "loss_fn", &s->disc, err) != RELATE_OK ||
        relate_ckpt_load_adam(c, "optimizer", &s->adam, err) != RELATE_OK)
        return err->code;
    return RELATE_OK;
}

const relate_method_ops relate_method_deepinfomax = {
    .name = "deepinfomax",
    .trains = true,
    .drop_last = true,
    .init = dim_init,
    .destroy = dim_destroy,
    .views = dim_views,
    .pipeline = dim_pipeline,
    .split = dim_split,
    .epoch_begin = dim_epoch_begin,
    .step = dim_step,
    .save = dim_save,
    .load = dim_load,
};
