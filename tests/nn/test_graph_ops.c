/* test_graph_ops.c: every graph op's recorded backward against central finite differences of
 * the whole graph, plus the tape's rules (accumulation when a tensor is reused, frozen
 * parameters, inference mode, shape errors) and relate_graph_on_grad_ready (each parameter
 * reported once, when its gradient is final).
 * Not a kernel test: kernels are checked alone in tests/kernels; this checks their wiring. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "relate/graph.h"
#include "relate/nn.h"
#include "test_util.h"

#define MAXIN 3

typedef struct {
    const char *name;
    int nin;
    int ndim[MAXIN];
    int64_t shape[MAXIN][4];
    float offset[MAXIN]; /* added to the [-1,1) fill, e.g. to keep log's input positive */
    relate_tensor *(*build)(relate_graph *g, relate_tensor **in);
} op_case;

static const int32_t targets[6] = {2, 0, 1, 3, 3, 1};
static const float class_w[4] = {0.5f, 1.0f, 2.0f, 0.25f};
static const float bin_t[12] = {1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0};

/* Projects a tensor to a scalar with fixed pseudo-random weights so every output matters. */
static relate_tensor *project(relate_graph *g, relate_tensor *y)
{
    if (!y)
        return NULL;
    relate_tensor *r = relate_tensor_new(g, y->ndim, y->shape);
    relate_test_fill(r->data, (size_t)r->numel, 99);
    return relate_sum(g, relate_mul(g, y, r));
}

static relate_tensor *b_cat1(relate_graph *g, relate_tensor **in) { return project(g, relate_concat(g, in[0], in[1], 1)); }
static relate_tensor *b_cat0(relate_graph *g, relate_tensor **in) { return project(g, relate_concat(g, in[0], in[1], 0)); }
static relate_tensor *b_slice(relate_graph *g, relate_tensor **in) { return project(g, relate_slice_rows(g, in[0], 2, 3)); }
static relate_tensor *b_roll(relate_graph *g, relate_tensor **in) { return project(g, relate_roll_rows(g, in[0], 2)); }
static relate_tensor *b_roll_neg(relate_graph *g, relate_tensor **in) { return project(g, relate_roll_rows(g, in[0], -6)); }
static relate_tensor *b_reshape_linear(relate_graph *g, relate_tensor **in)
{
    return project(g, relate_linear(g, relate_reshape(g, in[0], 2, (int64_t[]){2, 12}), in[1], in[2]));
}
static relate_tensor *b_mm(relate_graph *g, relate_tensor **in) { return project(g, relate_matmul(g, in[0], in[1], false, false)); }
static relate_tensor *b_mm_tt(relate_graph *g, relate_tensor **in) { return project(g, relate_matmul(g, in[0], in[1], true, true)); }
static relate_tensor *b_mm_nt(relate_graph *g, relate_tensor **in) { return project(g, relate_matmul(g, in[0], in[1], false, true)); }
static relate_tensor *b_max(relate_graph *g, relate_tensor **in) { return project(g, relate_maximum(g, in[0], in[1])); }
static relate_tensor *b_explog(relate_graph *g, relate_tensor **in)
{
    return project(g, relate_add(g, relate_exp(g, relate_scale(g, in[0], 0.5f)), relate_log(g, in[1])));
}
static relate_tensor *b_logsm(relate_graph *g, relate_tensor **in) { return project(g, relate_log_softmax(g, in[0])); }
static relate_tensor *b_norm(relate_graph *g, relate_tensor **in) { return project(g, relate_l2_normalize(g, in[0], 1e-12f)); }
static relate_tensor *b_ce(relate_graph *g, relate_tensor **in) { return relate_cross_entropy(g, in[0], targets, class_w); }
static relate_tensor *b_ce_plain(relate_graph *g, relate_tensor **in) { return relate_cross_entropy(g, in[0], targets, NULL); }
static relate_tensor *b_bce(relate_graph *g, relate_tensor **in) { return relate_bce_with_logits(g, in[0], bin_t); }
static relate_tensor *b_focal(relate_graph *g, relate_tensor **in) { return relate_focal_loss(g, in[0], bin_t, 0.5f, 2.0f); }
static relate_tensor *b_acts(relate_graph *g, relate_tensor **in)
{
    return project(g, relate_add(g, relate_leaky_relu(g, in[0], 0.01f), relate_sigmoid(g, in[0])));
}
static relate_tensor *b_bn1d(relate_graph *g, relate_tensor **in)
{
    return project(g, relate_batch_norm(g, in[0], in[1], in[2], NULL, NULL, NULL, true, 0.1f, 1e-5f));
}
static relate_tensor *b_reuse(relate_graph *g, relate_tensor **in)
{
    /* x used three times: x*x + x; gradients must add up. */
    return project(g, relate_add(g, relate_mul(g, in[0], in[0]), in[0]));
}
static relate_tensor *b_mean(relate_graph *g, relate_tensor **in) { return relate_mean(g, relate_mul(g, in[0], in[0])); }
static relate_tensor *b_conv_pool(relate_graph *g, relate_tensor **in)
{
    relate_tensor *h = relate_conv2d(g, in[0], in[1], 2, 1);
    return project(g, relate_global_avg_pool(g, relate_max_pool2d(g, relate_avg_pool2d(g, h, 2, 2, 0), 3, 2, 1)));
}

static const op_case cases[] = {
    {"concat dim 1", 2, {2, 2}, {{4, 3}, {4, 5}}, {0}, b_cat1},
    {"concat dim 0", 2, {2, 2}, {{2, 3}, {3, 3}}, {0}, b_cat0},
    {"slice rows", 1, {2}, {{6, 4}}, {0}, b_slice},
    {"roll rows", 1, {2}, {{5, 3}}, {0}, b_roll},
    {"roll rows negative", 1, {2}, {{5, 3}}, {0}, b_roll_neg},
    {"reshape + linear", 3, {4, 2, 1}, {{2, 3, 2, 2}, {5, 12}, {5}}, {0}, b_reshape_linear},
    {"matmul", 2, {2, 2}, {{3, 4}, {4, 5}}, {0}, b_mm},
    {"matmul a^T b^T", 2, {2, 2}, {{4, 3}, {5, 4}}, {0}, b_mm_tt},
    {"matmul a b^T", 2, {2, 2}, {{3, 4}, {5, 4}}, {0}, b_mm_nt},
    {"maximum", 2, {2, 2}, {{4, 5}, {4, 5}}, {0}, b_max},
    {"exp, log, scale", 2, {1, 1}, {{7}, {7}}, {0, 2.0f}, b_explog},
    {"log_softmax", 1, {2}, {{3, 6}}, {0}, b_logsm},
    {"l2_normalize", 1, {2}, {{4, 5}}, {0}, b_norm},
    {"cross_entropy weighted", 1, {2}, {{6, 4}}, {0}, b_ce},
    {"cross_entropy", 1, {2}, {{6, 4}}, {0}, b_ce_plain},
    {"bce_with_logits", 1, {1}, {{12}}, {0}, b_bce},
    {"focal loss", 1, {1}, {{12}}, {0}, b_focal},
    {"leaky_relu + sigmoid", 1, {2}, {{4, 6}}, {0}, b_acts},
    {"batch_norm 1d", 3, {2, 1, 1}, {{6, 4}, {4}, {4}}, {0, 1.0f, 0}, b_bn1d},
    {"reuse accumulates", 1, {2}, {{3, 4}}, {0}, b_reuse},
    {"mean", 1, {1}, {{9}}, {0}, b_mean},
    {"conv + pools", 2, {4, 4}, {{2, 2, 9, 9}, {3, 2, 3, 3}}, {0}, b_conv_pool},
};

static void run_case(const op_case *c, int ci)
{
    relate_params store;
    relate_params_init(&store);
    relate_param *p[MAXIN];
    for (int i = 0; i < c->nin; i++) {
        char name[16];
        snprintf(name, sizeof name, "in%d", i);
        p[i] = relate_params_add(&store, name, RELATE_PARAM, c->ndim[i], c->shape[i]);
    }
    relate_error err = {0};
    CHECK(relate_params_finalize(&store, &err) == RELATE_OK);
    for (int i = 0; i < c->nin; i++) {
        relate_test_fill(p[i]->data, (size_t)p[i]->numel, (uint64_t)(ci * 10 + i + 1));
        for (int64_t j = 0; j < p[i]->numel; j++) {
            p[i]->data[j] += c->offset[i];
            /* Keep finite differences off the kinks of ReLU-like ops (|x| < h would straddle 0). */
            if (fabsf(p[i]->data[j]) < 0.05f)
                p[i]->data[j] = p[i]->data[j] < 0 ? -0.05f : 0.05f;
        }
    }
    relate_graph *g = relate_graph_create();
    relate_tensor *in[MAXIN];
    for (int i = 0; i < c->nin; i++)
        in[i] = relate_param_tensor(g, p[i]);
    relate_tensor *loss = c->build(g, in);
    CHECK_MSG(loss && relate_graph_backward(g, loss) == RELATE_OK, "%s: %s", c->name, relate_graph_error(g)->msg);

    /* Central differences in float32 with h = 1e-2 (x values are O(1)): truncation error
     * O(h^2) and rounding error O(eps/h) keep the norm-wise error near 1e-3; bound 1e-2. */
    const float h = 1e-2f;
    relate_graph_set_grad_enabled(g, false);
    for (int i = 0; i < c->nin; i++) {
        float fd[64], an[64];
        int m = p[i]->numel < 64 ? (int)p[i]->numel : 64;
        for (int j = 0; j < m; j++) {
            float keep = p[i]->data[j];
            double l[2];
            for (int s = 0; s < 2; s++) {
                p[i]->data[j] = keep + (s ? -h : h);
                relate_graph_reset(g);
                for (int k = 0; k < c->nin; k++)
                    in[k] = relate_param_tensor(g, p[k]);
                relate_tensor *lv = c->build(g, in);
                l[s] = lv ? lv->data[0] : NAN;
            }
            p[i]->data[j] = keep;
            fd[j] = (float)((l[0] - l[1]) / (2.0 * h));
            an[j] = p[i]->grad[j];
        }
        char name[96];
        snprintf(name, sizeof name, "%s: d/d in%d", c->name, i);
        relate_test_check_close(name, an, fd, (size_t)m, 1e-2);
    }
    relate_graph_destroy(g);
    relate_params_free(&store);
}

static void check_tape_rules(void)
{
    relate_params store;
    relate_params_init(&store);
    relate_param *w = relate_params_add(&store, "w", RELATE_PARAM, 2, (int64_t[]){3, 4});
    relate_param *frozen = relate_params_add(&store, "f", RELATE_PARAM, 2, (int64_t[]){3, 4});
    relate_error err = {0};
    CHECK(relate_params_finalize(&store, &err) == RELATE_OK);
    relate_test_fill(w->data, 12, 1);
    relate_test_fill(frozen->data, 12, 2);
    frozen->frozen = true;
    relate_graph *g = relate_graph_create();
    relate_tensor *loss = relate_sum(g, relate_mul(g, relate_param_tensor(g, w), relate_param_tensor(g, frozen)));
    CHECK(relate_graph_backward(g, loss) == RELATE_OK);
    int frozen_untouched = 1, w_ok = 1;
    for (int i = 0; i < 12; i++) {
        frozen_untouched &= frozen->grad[i] == 0.0f;
        w_ok &= w->grad[i] == frozen->data[i];
    }
    CHECK(frozen_untouched && w_ok);

    /* Inference mode: nothing recorded, the loss does not require a gradient. */
    relate_graph_reset(g);
    relate_graph_set_grad_enabled(g, false);
    loss = relate_sum(g, relate_param_tensor(g, w));
    CHECK(loss && !loss->requires_grad);
    relate_graph_set_grad_enabled(g, true);

    /* Shape errors propagate as NULL and a message; backward refuses. */
    relate_graph_reset(g);
    relate_tensor *bad = relate_add(g, relate_param_tensor(g, w), relate_tensor_zeros(g, 2, (int64_t[]){4, 3}));
    CHECK(bad == NULL && relate_graph_status(g) == RELATE_ERR_SHAPE);
    CHECK(strstr(relate_graph_error(g)->msg, "[3, 4]") && strstr(relate_graph_error(g)->msg, "[4, 3]"));
    CHECK(relate_sum(g, bad) == NULL);
    CHECK(relate_graph_backward(g, NULL) != RELATE_OK);
    relate_graph_reset(g);
    CHECK(relate_conv2d(g, relate_tensor_zeros(g, 4, (int64_t[]){1, 3, 2, 2}),
                        relate_tensor_zeros(g, 4, (int64_t[]){4, 3, 5, 5}), 1, 0) == NULL);
    CHECK(relate_graph_status(g) == RELATE_ERR_SHAPE);
    relate_graph_reset(g);
    CHECK(relate_linear(g, relate_tensor_zeros(g, 2, (int64_t[]){2, 5}), relate_param_tensor(g, w), NULL) == NULL);
    relate_graph_reset(g);
    int32_t bad_t[3] = {0, 7, 1};
    CHECK(relate_cross_entropy(g, relate_tensor_zeros(g, 2, (int64_t[]){3, 4}), bad_t, NULL) == NULL);
    CHECK(relate_graph_status(g) == RELATE_ERR_ARG);

    /* A NaN loss is refused by backward with a numeric error. */
    relate_graph_reset(g);
    relate_tensor *nan_in = relate_tensor_zeros(g, 1, (int64_t[]){2});
    nan_in->data[0] = NAN;
    CHECK(relate_graph_backward(g, relate_sum(g, nan_in)) == RELATE_ERR_NUMERIC);

    /* The arena settles: repeated identical steps reuse one block. */
    relate_graph_reset(g);
    size_t peak = 0;
    for (int step = 0; step < 3; step++) {
        relate_graph_reset(g);
        relate_tensor *big = relate_tensor_zeros(g, 2, (int64_t[]){1000, 1000});
        CHECK(relate_graph_backward(g, relate_sum(g, relate_mul(g, big, big))) == RELATE_OK);
        if (step == 1)
            peak = relate_graph_peak_bytes(g);
    }
    CHECK(peak > 4000000 && relate_graph_peak_bytes(g) == peak);
    relate_graph_destroy(g);
    relate_params_free(&store);
}

/* relate_graph_on_grad_ready on resnet8 applied twice (so every parameter is read by two ops far
 * apart on the tape, and its residual blocks read activations out of order): every trainable
 * parameter is reported exactly once, and when it is, its gradient already holds the final
 * value of a backward pass without the hook, bit for bit. */
typedef struct {
    const relate_backbone *bb;
    const float *final;   /* the grad_block after a plain backward pass */
    int *seen;            /* per parameter of bb */
    int calls, early;     /* reports; reports of a gradient not yet final */
} ready_log;

static void on_ready(void *ctx, relate_param *p)
{
    ready_log *l = ctx;
    l->calls++;
    for (int i = 0; i < l->bb->params.count; i++)
        if (l->bb->params.items[i] == p) {
            l->seen[i]++;
            const float *want = l->final + (p->grad - l->bb->params.grad_block);
            if (memcmp(p->grad, want, (size_t)p->numel * sizeof(float)) != 0)
                l->early++;
        }
}

static relate_tensor *siamese_loss(relate_graph *g, relate_backbone *bb, float *x)
{
    relate_params_zero_grad(&bb->params);
    relate_tensor *a = relate_tensor_wrap(g, 4, (int64_t[]){2, 3, 16, 16}, x);
    relate_tensor *b = relate_tensor_wrap(g, 4, (int64_t[]){2, 3, 16, 16}, x + 2 * 3 * 16 * 16);
    return relate_add(g, project(g, relate_backbone_forward(g, bb, a, true)),
                      project(g, relate_backbone_forward(g, bb, b, true)));
}

static void check_grad_ready(void)
{
    relate_backbone bb;
    relate_error err = {0};
    CHECK(relate_backbone_create(&bb, "resnet8", 3, &err) == RELATE_OK);
    float x[4 * 3 * 16 * 16];
    relate_test_fill(x, sizeof x / sizeof x[0], 5);
    relate_graph *g = relate_graph_create();
    CHECK(relate_graph_backward(g, siamese_loss(g, &bb, x)) == RELATE_OK);
    const size_t n = bb.params.param_floats;
    float *final = malloc(n * sizeof *final);
    int *seen = calloc((size_t)bb.params.count, sizeof *seen);
    memcpy(final, bb.params.grad_block, n * sizeof *final);
    ready_log log = {&bb, final, seen, 0, 0};
    relate_graph_reset(g);
    relate_graph_on_grad_ready(g, on_ready, &log);
    CHECK(relate_graph_backward(g, siamese_loss(g, &bb, x)) == RELATE_OK);
    int trainable = 0;
    for (int i = 0; i < bb.params.count; i++)
        if (bb.params.items[i]->kind == RELATE_PARAM) {
            trainable++;
            CHECK_MSG(seen[i] == 1, "%s reported %d times", bb.params.items[i]->name, seen[i]);
        }
    CHECK_MSG(log.calls == trainable, "%d reports for %d parameters", log.calls, trainable);
    CHECK_MSG(log.early == 0, "%d parameters reported before their gradient was final", log.early);
    CHECK(memcmp(final, bb.params.grad_block, n * sizeof *final) == 0);
    /* Off again: nothing is reported. */
    relate_graph_reset(g);
    relate_graph_on_grad_ready(g, NULL, NULL);
    log.calls = 0;
    CHECK(relate_graph_backward(g, siamese_loss(g, &bb, x)) == RELATE_OK);
    CHECK(log.calls == 0);
    free(final);
    free(seen);
    relate_graph_destroy(g);
    relate_backbone_free(&bb);
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i], (int)i);
    check_tape_rules();
    check_grad_ready();
    return relate_test_finish();
}
