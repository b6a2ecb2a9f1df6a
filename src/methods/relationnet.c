/* relationnet.c: self-supervised relational reasoning (spec 3.1): K views per image in one
 * backbone pass, view pairs k1 < k2 in the reference's order with its shifting negatives, the
 * relation head, the focal loss, Adam on two groups.
 *
 * The cat head's first layer is factorised: Linear([a || b]) = W_a a + W_b b + bias, so W_a F and
 * W_b F are computed once per view row and each pair only adds two rows (about 2K times fewer
 * head FLOPs than multiplying every pair; sum and mean factorise the same way). max has no such
 * identity and builds its pairs explicitly. `factorised_head = false` runs the reference's
 * concatenation literally; tests compare the two. */
#include <stdlib.h>
#include <string.h>

#include "base/suggest.h"
#include "methods/method_internal.h"

enum { AGG_CAT, AGG_SUM, AGG_MEAN, AGG_MAX };
static const char *const agg_names[] = {"cat", "sum", "mean", "max", NULL};

#define LEAKY_SLOPE 0.01f
#define FOCAL_ALPHA 0.5f
#define FOCAL_GAMMA 2.0f
#define HEAD_HIDDEN 256

typedef struct relationnet {
    int agg;
    relate_params head; /* the `relation` state dict */
    relate_linear_layer linear1, linear2;
    relate_bn_layer bn1;
    relate_adam adam;
    /* Pair lists of the last batch size seen (the last batch of an epoch may be smaller). */
    int32_t *ia, *ib;
    float *targets;
    int64_t npairs;
    int pairs_for_b;
} relationnet;

static relationnet *impl(const relate_method *m) { return m->impl; }

/* Spec 3.1.3: blocks (k1 < k2) in order, each B positives (same image) then B negatives (image
 * (n - s) mod B of view k2), s = 1, 2, ... wrapping from B-1 back to 1, restarting per batch. */
static void build_pairs(int32_t *ia, int32_t *ib, float *t, int K, int B)
{
    int64_t p = 0;
    int s = 1;
    for (int k1 = 0; k1 < K; k1++)
        for (int k2 = k1 + 1; k2 < K; k2++) {
            for (int n = 0; n < B; n++, p++) {
                ia[p] = k1 * B + n;
                ib[p] = k2 * B + n;
                t[p] = 1.0f;
            }
            for (int n = 0; n < B; n++, p++) {
                ia[p] = k1 * B + n;
                ib[p] = k2 * B + (((n - s) % B) + B) % B;
                t[p] = 0.0f;
            }
            if (++s >= B)
                s = 1;
        }
}

static relate_status ensure_pairs(relationnet *r, int K, int B, relate_error *err)
{
    if (r->pairs_for_b == B)
        return RELATE_OK;
    int64_t P = (int64_t)B * K * (K - 1);
    free(r->ia);
    free(r->ib);
    free(r->targets);
    r->ia = malloc((size_t)P * sizeof *r->ia);
    r->ib = malloc((size_t)P * sizeof *r->ib);
    r->targets = malloc((size_t)P * sizeof *r->targets);
    r->pairs_for_b = 0;
    if (!r->ia || !r->ib || !r->targets)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory for %lld relation pairs", (long long)P);
    build_pairs(r->ia, r->ib, r->targets, K, B);
    r->npairs = P;
    r->pairs_for_b = B;
    return RELATE_OK;
}

static relate_status rn_init(relate_method *m, relate_error *err)
{
    if (m->cfg.K < 2)
        return relate_error_set(err, RELATE_ERR_ARG, "relationnet needs --K >= 2 views per image (got %d)", m->cfg.K);
    relationnet *r = calloc(1, sizeof *r);
    if (!r)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    m->impl = r;
    r->agg = -1;
    for (int i = 0; agg_names[i]; i++)
        if (strcmp(agg_names[i], m->cfg.aggregation) == 0)
            r->agg = i;
    if (r->agg < 0) {
        char hint[64];
        return relate_error_set(err, RELATE_ERR_ARG, "unknown --aggregation '%s'%s (valid: cat, sum, mean, max)",
                                m->cfg.aggregation, relate_suggest_text(hint, sizeof hint, m->cfg.aggregation, agg_names));
    }
    const int d = m->backbone.feature_size;
    relate_params_init(&r->head);
    relate_linear_register(&r->linear1, &r->head, "linear1", r->agg == AGG_CAT ? 2 * d : d, HEAD_HIDDEN, true);
    relate_bn_register(&r->bn1, &r->head, "bn1", HEAD_HIDDEN);
    relate_linear_register(&r->linear2, &r->head, "linear2", HEAD_HIDDEN, 1, true);
    if (relate_params_finalize(&r->head, err) != RELATE_OK)
        return err->code;
    relate_rng rng;
    relate_head_rng(&rng, m->cfg.seed, 0);
    relate_linear_init_default(&r->linear1, &rng);
    relate_bn_init(&r->bn1);
    relate_linear_init_default(&r->linear2, &rng);
    return relate_backbone_head_adam(&r->adam, &m->backbone.params, &r->head, 1e-3, err);
}

static void rn_destroy(relate_method *m)
{
    relationnet *r = impl(m);
    if (!r)
        return;
    relate_adam_free(&r->adam);
    relate_params_free(&r->head);
    free(r->ia);
    free(r->ib);
    free(r->targets);
    free(r);
    m->impl = NULL;
}

static int rn_views(const relate_method *m) { return m->cfg.K; }
static relate_pipeline rn_pipeline(const relate_method *m, const relate_dataset_info *info)
{
    (void)m, (void)info;
    return RELATE_T1;
}
static relate_split_kind rn_split(const relate_method *m, const relate_dataset_info *info)
{
    (void)m;
    return info->unsupervised_split;
}

/* The reference's literal head input: pairs concatenated block by block. */
static relate_tensor *pairs_literal(relate_graph *g, relationnet *r, relate_tensor *f, int K, int B)
{
    relate_tensor *all = NULL;
    int s = 1;
    for (int k1 = 0; k1 < K; k1++)
        for (int k2 = k1 + 1; k2 < K; k2++) {
            relate_tensor *a = relate_slice_rows(g, f, (int64_t)k1 * B, B);
            relate_tensor *b = relate_slice_rows(g, f, (int64_t)k2 * B, B);
            relate_tensor *bn = relate_roll_rows(g, b, s);
            relate_tensor *pos, *neg;
            switch (r->agg) {
            case AGG_CAT:
                pos = relate_concat(g, a, b, 1), neg = relate_concat(g, a, bn, 1);
                break;
            case AGG_SUM:
                pos = relate_add(g, a, b), neg = relate_add(g, a, bn);
                break;
            case AGG_MEAN:
                pos = relate_scale(g, relate_add(g, a, b), 0.5f), neg = relate_scale(g, relate_add(g, a, bn), 0.5f);
                break;
            default:
                pos = relate_maximum(g, a, b), neg = relate_maximum(g, a, bn);
                break;
            }
            relate_tensor *block = relate_concat(g, pos, neg, 0);
            all = all ? relate_concat(g, all, block, 0) : block;
            if (++s >= B)
                s = 1;
        }
    return relate_linear(g, all, relate_param_tensor(g, r->linear1.weight), relate_param_tensor(g, r->linear1.bias));
}

/* linear1 over every pair without materialising the pairs (see the file comment). */
static relate_tensor *pairs_factorised(relate_graph *g, relationnet *r, relate_tensor *f)
{
    relate_tensor *w = relate_param_tensor(g, r->linear1.weight);
    relate_tensor *bias = relate_param_tensor(g, r->linear1.bias);
    const int64_t d = f ? f->shape[1] : 0;
    switch (r->agg) {
    case AGG_CAT: {
        relate_tensor *wa = relate_slice_cols(g, w, 0, d), *wb = relate_slice_cols(g, w, d, d);
        relate_tensor *fa = relate_matmul(g, f, wa, false, true), *fb = relate_matmul(g, f, wb, false, true);
        return relate_pair_rows(g, fa, r->ia, fb, r->ib, r->npairs, bias, false);
    }
    case AGG_SUM: {
        relate_tensor *fw = relate_matmul(g, f, w, false, true);
        return relate_pair_rows(g, fw, r->ia, fw, r->ib, r->npairs, bias, false);
    }
    case AGG_MEAN: {
        relate_tensor *fw = relate_scale(g, relate_matmul(g, f, w, false, true), 0.5f);
        return relate_pair_rows(g, fw, r->ia, fw, r->ib, r->npairs, bias, false);
    }
    default: {
        relate_tensor *pairs = relate_pair_rows(g, f, r->ia, f, r->ib, r->npairs, NULL, true);
        return relate_linear(g, pairs, w, bias);
    }
    }
}

/* The whole head in one op (ops_pairs.c) on the per-view products of linear1: the same function
 * as pairs_factorised + bn1 + LeakyReLU + linear2, with one stored [pairs, 256] tensor instead of
 * six. Not for max, whose pairs do not factorise. */
static relate_tensor *head_fused(relate_graph *g, relationnet *r, relate_tensor *f)
{
    relate_tensor *w = relate_param_tensor(g, r->linear1.weight);
    const int64_t d = f ? f->shape[1] : 0;
    relate_tensor *a, *b;
    if (r->agg == AGG_CAT) {
        a = relate_matmul(g, f, relate_slice_cols(g, w, 0, d), false, true);
        b = relate_matmul(g, f, relate_slice_cols(g, w, d, d), false, true);
    } else {
        a = b = relate_matmul(g, f, w, false, true);
        if (r->agg == AGG_MEAN)
            a = b = relate_scale(g, a, 0.5f);
    }
    relate_relation_head_layers l = {
        .bias1 = relate_param_tensor(g, r->linear1.bias),
        .gamma = relate_param_tensor(g, r->bn1.weight),
        .beta = relate_param_tensor(g, r->bn1.bias),
        .running_mean = r->bn1.running_mean->data,
        .running_var = r->bn1.running_var->data,
        .num_batches_tracked = r->bn1.num_batches_tracked->i64,
        .w2 = relate_param_tensor(g, r->linear2.weight),
        .b2 = relate_param_tensor(g, r->linear2.bias),
        .momentum = r->bn1.momentum,
        .eps = r->bn1.eps,
        .slope = LEAKY_SLOPE};
    return relate_relation_head(g, a, r->ia, b, r->ib, r->npairs, &l);
}

relate_tensor *relate_relationnet_loss(relate_graph *g, relate_method *m, relate_tensor *f, int B,
                                       relate_tensor **logits_out, relate_error *err)
{
    relationnet *r = impl(m);
    const int K = m->cfg.K;
    if (ensure_pairs(r, K, B, err) != RELATE_OK)
        return NULL;
    relate_tensor *logits;
    if (m->cfg.factorised_head && r->agg != AGG_MAX) {
        logits = head_fused(g, r, f);
    } else {
        relate_tensor *h = m->cfg.factorised_head ? pairs_factorised(g, r, f) : pairs_literal(g, r, f, K, B);
        h = relate_leaky_relu(g, relate_bn_forward(g, &r->bn1, h, true), LEAKY_SLOPE);
        logits = relate_linear_layer_forward(g, &r->linear2, h);
    }
    logits = relate_reshape(g, logits, 1, (int64_t[]){r->npairs});
    *logits_out = logits;
    return relate_focal_loss(g, logits, r->targets, FOCAL_ALPHA, FOCAL_GAMMA);
}

relate_params *relate_relationnet_head(relate_method *m) { return &impl(m)->head; }
const float *relate_relationnet_targets(const relate_method *m) { return impl(m)->targets; }

static relate_status rn_step(relate_method *m, relate_graph *g, const relate_batch *b, relate_step_result *res,
                             relate_error *err)
{
    relationnet *r = impl(m);
    const int K = m->cfg.K, B = b->global_size;
    if (b->views != K)
        return relate_error_set(err, RELATE_ERR_ARG, "relationnet: batch has %d views, expected K = %d", b->views, K);
    relate_params_zero_grad(&m->backbone.params);
    relate_params_zero_grad(&r->head);
    relate_tensor *x = relate_tensor_wrap(g, 4, (int64_t[]){(int64_t)K * b->size, 3, b->side, b->side}, b->images);
    relate_tensor *f = relate_dp_gather(g, relate_backbone_forward(g, &m->backbone, x, true), b, K, 1);
    relate_tensor *logits = NULL;
    relate_tensor *loss = relate_relationnet_loss(g, m, f, B, &logits, err);
    if (err->code != RELATE_OK)
        return err->code;
    relate_params *const stores[] = {&m->backbone.params, &r->head};
    if (relate_dp_backward(g, loss, stores, 2, err) != RELATE_OK)
        return err->code;
    relate_adam_step(&r->adam);
    const int64_t P = r->npairs;
    res->loss = loss->data[0];
    res->items = P;
    res->score = relate_binary_accuracy(logits->data, r->targets, 0, P);
    res->acc_first = relate_binary_accuracy(logits->data, r->targets, 0, P / 2);
    res->acc_second = relate_binary_accuracy(logits->data, r->targets, P / 2, P);
    return RELATE_OK;
}

static relate_status rn_save(const relate_method *m, relate_ckpt_writer *w, relate_error *err)
{
    relationnet *r = impl(m);
    if (relate_ckpt_put_state_dict(w, "backbone", &m->backbone.params) != RELATE_OK ||
        relate_ckpt_put_state_dict(w, "relation", &r->head) != RELATE_OK ||
        relate_ckpt_put_adam(w, "optimizer", &r->adam) != RELATE_OK)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory building the checkpoint");
    return RELATE_OK;
}

static relate_status rn_load(relate_method *m, const relate_ckpt *c, relate_error *err)
{
    relationnet *r = impl(m);
    static const char *const keys[] = {"backbone", "relation", "optimizer", NULL};
    if (relate_ckpt_require_keys(c, "relationnet", keys, err) != RELATE_OK ||
        relate_ckpt_load_state_dict(c, "backbone", &m->backbone.params, err) != RELATE_OK ||
        relate_ckpt_load_state_dict(c, "relation", &r->head, err) != RELATE_OK ||
        relate_ckpt_load_adam(c, "optimizer", &r->adam, err) != RELATE_OK)
        return err->code;
    return RELATE_OK;
}

const relate_method_ops relate_method_relationnet = {
    .name = "relationnet",
    .trains = true,
    .drop_last = false,
    .init = rn_init,
    .destroy = rn_destroy,
    .views = rn_views,
    .pipeline = rn_pipeline,
    .split = rn_split,
    .step = rn_step,
    .save = rn_save,
    .load = rn_load,
};
