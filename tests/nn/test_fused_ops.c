/* test_fused_ops.c: each fused op against the composed ops it replaces, on the same inputs:
 * outputs, every input's gradient and the running statistics. The composed ops are checked by
 * finite differences (test_graph_ops) and PyTorch goldens, so agreement here carries those
 * checks over. Shapes include odd sizes (floor-mode pooling), a batch of 2 and, for the relation
 * head, pairs that share view rows (the scatter of the backward pass); the stem's fused op, bit for
 * bit at several thread counts; and each op that takes the nChw16c layout against itself in NCHW.
 * Not a speed test: bench/run_suite.sh measures what the fusion buys. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "relate/graph.h"
#include "test_util.h"

#define MAXP 8
#define MAXC 256 /* channels of any batch norm here (the relation head's 256) */

/* Parameters of one comparison: filled once, then both graphs read the same values. */
typedef struct {
    relate_params store;
    relate_param *p[MAXP];
    int np;
    float rm[2][MAXC], rv[2][MAXC]; /* running stats: [0] composed, [1] fused */
} inputs;

static void add_input(inputs *in, const char *name, int ndim, const int64_t *shape)
{
    in->p[in->np++] = relate_params_add(&in->store, name, RELATE_PARAM, ndim, shape);
}

static void finalize(inputs *in, uint64_t seed, const float *offsets)
{
    relate_error err = {0};
    CHECK(relate_params_finalize(&in->store, &err) == RELATE_OK);
    for (int i = 0; i < in->np; i++) {
        relate_test_fill(in->p[i]->data, (size_t)in->p[i]->numel, seed + (uint64_t)i);
        for (int64_t j = 0; j < in->p[i]->numel; j++)
            in->p[i]->data[j] += offsets ? offsets[i] : 0.0f;
    }
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < MAXC; c++)
            in->rm[k][c] = 0.0f, in->rv[k][c] = 1.0f;
}

/* The loss both graphs differentiate: sum(y * r) for fixed pseudo-random r. */
static relate_tensor *project(relate_graph *g, relate_tensor *y)
{
    if (!y)
        return NULL;
    relate_tensor *r = relate_tensor_new(g, y->ndim, y->shape);
    relate_test_fill(r->data, (size_t)r->numel, 4242);
    return relate_sum(g, relate_mul(g, y, r));
}

typedef relate_tensor *(*build_fn)(relate_graph *g, relate_tensor **t, inputs *in, int fused);

/* Runs both builds, compares outputs (through the loss and the output itself), gradients and
 * running statistics; bound is relative (norm-wise). */
static void compare(const char *name, inputs *in, build_fn build, double bound)
{
    float *grads[2][MAXP];
    float *outs[2] = {NULL, NULL};
    int64_t out_numel = 0;
    double loss[2];
    for (int fused = 0; fused < 2; fused++) {
        relate_params_zero_grad(&in->store);
        relate_graph *g = relate_graph_create();
        relate_tensor *t[MAXP];
        for (int i = 0; i < in->np; i++)
            t[i] = relate_param_tensor(g, in->p[i]);
        relate_tensor *y = build(g, t, in, fused);
        relate_tensor *l = project(g, y);
        CHECK_MSG(l && relate_graph_backward(g, l) == RELATE_OK, "%s (%s): %s", name, fused ? "fused" : "composed",
                  relate_graph_error(g)->msg);
        if (!l) {
            relate_graph_destroy(g);
            return;
        }
        loss[fused] = l->data[0];
        out_numel = y->numel;
        outs[fused] = malloc((size_t)y->numel * sizeof(float));
        memcpy(outs[fused], y->data, (size_t)y->numel * sizeof(float));
        for (int i = 0; i < in->np; i++) {
            grads[fused][i] = malloc((size_t)in->p[i]->numel * sizeof(float));
            memcpy(grads[fused][i], in->p[i]->grad, (size_t)in->p[i]->numel * sizeof(float));
        }
        relate_graph_destroy(g);
    }
    char what[128];
    snprintf(what, sizeof what, "%s: output", name);
    relate_test_check_close(what, outs[1], outs[0], (size_t)out_numel, bound);
    CHECK_MSG(fabs(loss[1] - loss[0]) <= bound * (1.0 + fabs(loss[0])), "%s: loss %.9g vs %.9g", name, loss[1], loss[0]);
    for (int i = 0; i < in->np; i++) {
        snprintf(what, sizeof what, "%s: d/d %s", name, in->p[i]->name);
        if (strcmp(in->p[i]->name, "bias1") == 0) {
            /* A bias before batch norm has gradient 0 exactly (the mean removes it): both sides
             * hold the rounding noise of a sum of 40 O(1) terms that cancel, so compare
             * magnitudes, not relative error. */
            float most = 0;
            for (int64_t j = 0; j < in->p[i]->numel; j++)
                most = fmaxf(most, fmaxf(fabsf(grads[0][i][j]), fabsf(grads[1][i][j])));
            CHECK_MSG(most < 1e-4f, "%s: |gradient| up to %g, expected ~0", what, most);
        } else {
            relate_test_check_close(what, grads[1][i], grads[0][i], (size_t)in->p[i]->numel, bound);
        }
        free(grads[0][i]);
        free(grads[1][i]);
    }
    snprintf(what, sizeof what, "%s: running mean", name);
    relate_test_check_close(what, in->rm[1], in->rm[0], MAXC, bound);
    snprintf(what, sizeof what, "%s: running var", name);
    relate_test_check_close(what, in->rv[1], in->rv[0], MAXC, bound);
    free(outs[0]);
    free(outs[1]);
}

/* ---- batch norm + residual add + ReLU (x, gamma, beta, residual) */
static relate_tensor *build_bn_act(relate_graph *g, relate_tensor **t, inputs *in, int fused)
{
    if (fused)
        return relate_batch_norm_act(g, t[0], t[1], t[2], in->rm[1], in->rv[1], NULL, true, 0.1f, 1e-5f, t[3], true);
    relate_tensor *y = relate_batch_norm(g, t[0], t[1], t[2], in->rm[0], in->rv[0], NULL, true, 0.1f, 1e-5f);
    return relate_relu(g, relate_add(g, y, t[3]));
}

static relate_tensor *build_bn_relu(relate_graph *g, relate_tensor **t, inputs *in, int fused)
{
    if (fused)
        return relate_batch_norm_act(g, t[0], t[1], t[2], in->rm[1], in->rv[1], NULL, true, 0.1f, 1e-5f, NULL, true);
    return relate_relu(g, relate_batch_norm(g, t[0], t[1], t[2], in->rm[0], in->rv[0], NULL, true, 0.1f, 1e-5f));
}

static relate_tensor *build_bn_relu_pool(relate_graph *g, relate_tensor **t, inputs *in, int fused)
{
    if (fused)
        return relate_batch_norm_relu_pool2(g, t[0], t[1], t[2], in->rm[1], in->rv[1], NULL, 0.1f, 1e-5f);
    relate_tensor *y = relate_batch_norm(g, t[0], t[1], t[2], in->rm[0], in->rv[0], NULL, true, 0.1f, 1e-5f);
    return relate_avg_pool2d(g, relate_relu(g, y), 2, 2, 0);
}

static void check_batch_norm_fusions(void)
{
    static const int64_t shapes[][4] = {{2, 3, 4, 4}, {3, 5, 7, 6}, {4, 2, 5, 5}};
    for (int s = 0; s < 3; s++) {
        const int64_t *x = shapes[s], c[1] = {x[1]};
        char name[96];
        for (int kind = 0; kind < 3; kind++) {
            inputs in = {0};
            relate_params_init(&in.store);
            add_input(&in, "x", 4, x);
            add_input(&in, "gamma", 1, c);
            add_input(&in, "beta", 1, c);
            if (kind == 0)
                add_input(&in, "residual", 4, x);
            finalize(&in, (uint64_t)(100 * s + 10 * kind + 1), (const float[]){0.3f, 1.0f, 0.1f, -0.2f});
            static const char *kinds[3] = {"bn + add + relu", "bn + relu", "bn + relu + avgpool2"};
            snprintf(name, sizeof name, "%s [%lld,%lld,%lld,%lld]", kinds[kind], (long long)x[0], (long long)x[1],
                     (long long)x[2], (long long)x[3]);
            build_fn b = kind == 0 ? build_bn_act : kind == 1 ? build_bn_relu : build_bn_relu_pool;
            /* Same float expressions throughout; only the double sums' order may differ. */
            compare(name, &in, b, 1e-6);
            relate_params_free(&in.store);
        }
    }
}

/* ---- batch norm + ReLU + convolution (x, gamma, beta, w): the activation between them is
 * recomputed in the backward pass from the same float expressions, so every value must be the
 * composed ops' to the bit (bound 0), on both convolution paths. */
static int g_stride;

static relate_tensor *build_bn_relu_conv(relate_graph *g, relate_tensor **t, inputs *in, int fused)
{
    if (fused)
        return relate_bn_relu_conv2d(g, t[0], t[1], t[2], in->rm[1], in->rv[1], NULL, 0.1f, 1e-5f, t[3], g_stride, 1);
    relate_tensor *y = relate_batch_norm_act(g, t[0], t[1], t[2], in->rm[0], in->rv[0], NULL, true, 0.1f, 1e-5f,
                                             NULL, true);
    return relate_conv2d(g, y, t[3], g_stride, 1);
}

static void check_bn_relu_conv(void)
{
    static const int64_t shapes[][5] = {{2, 3, 6, 6, 4}, {3, 16, 8, 8, 16}, {2, 5, 7, 5, 8}};
    for (int s = 0; s < 3; s++)
        for (g_stride = 1; g_stride <= 2; g_stride++) {
            const int64_t *q = shapes[s];
            inputs in = {0};
            relate_params_init(&in.store);
            add_input(&in, "x", 4, q);
            add_input(&in, "gamma", 1, (int64_t[]){q[1]});
            add_input(&in, "beta", 1, (int64_t[]){q[1]});
            add_input(&in, "w", 4, (int64_t[]){q[4], q[1], 3, 3});
            finalize(&in, (uint64_t)(500 + 10 * s + g_stride), (const float[]){0.3f, 1.0f, 0.1f, 0.0f});
            char name[96];
            snprintf(name, sizeof name, "bn + relu + conv [%lld,%lld,%lld,%lld] -> %lld, stride %d", (long long)q[0],
                     (long long)q[1], (long long)q[2], (long long)q[3], (long long)q[4], g_stride);
            compare(name, &in, build_bn_relu_conv, 0.0);
            relate_params_free(&in.store);
        }
}

/* ---- the nChw16c layout (relate_to_blocked16): each op that takes a blocked tensor, between the
 * two conversions, against the same op in NCHW. The convolutions are oneDNN's own kernels either
 * way and the conversions move bits, so they agree to the bit; batch norm sums in another order. */
/* 0 conv, 1 bn + add + relu, 2 bn + relu + conv, 3 conv 1x1 stride 2, 4 bn + relu + pool2,
 * 5 conv from NCHW into nChw16c (x keeps NCHW) */
static int g_blocked_op;

static relate_tensor *build_blocked(relate_graph *g, relate_tensor **t, inputs *in, int blocked)
{
    const int k = blocked;
    relate_tensor *x = blocked && g_blocked_op != 5 ? relate_to_blocked16(g, t[0]) : t[0], *y = NULL;
    switch (g_blocked_op) {
    case 4:
        y = relate_batch_norm_relu_pool2(g, x, t[1], t[2], in->rm[k], in->rv[k], NULL, 0.1f, 1e-5f);
        break;
    case 5:
        y = blocked ? relate_conv2d_to_blocked16(g, x, t[1], 1, 1) : relate_conv2d(g, x, t[1], 1, 1);
        break;
    case 0:
        y = relate_conv2d(g, x, t[1], 1, 1);
        break;
    case 1:
        y = relate_batch_norm_act(g, x, t[1], t[2], in->rm[k], in->rv[k], NULL, true, 0.1f, 1e-5f,
                                  blocked ? relate_to_blocked16(g, t[3]) : t[3], true);
        break;
    case 2:
        y = relate_bn_relu_conv2d(g, x, t[1], t[2], in->rm[k], in->rv[k], NULL, 0.1f, 1e-5f, t[3], 1, 1);
        break;
    default:
        y = relate_conv2d(g, x, t[1], 2, 0);
        break;
    }
    return blocked ? relate_from_blocked16(g, y) : y;
}

static void check_blocked_layout(void)
{
    static const char *names[6] = {"conv 3x3", "bn + add + relu", "bn + relu + conv 3x3", "conv 1x1 stride 2",
                                   "bn + relu + avgpool2", "conv 3x3 from 8 NCHW channels"};
    const int64_t x[4] = {3, 32, 6, 5}, c[1] = {32};
    for (g_blocked_op = 0; g_blocked_op < 6; g_blocked_op++) {
        inputs in = {0};
        relate_params_init(&in.store);
        add_input(&in, "x", 4, g_blocked_op == 5 ? (int64_t[]){3, 8, 6, 5} : x);
        if (g_blocked_op == 5) {
            add_input(&in, "w", 4, (int64_t[]){16, 8, 3, 3});
        } else if (g_blocked_op == 0 || g_blocked_op == 3) {
            const int kk = g_blocked_op == 0 ? 3 : 1;
            add_input(&in, "w", 4, (int64_t[]){48, 32, kk, kk});
        } else {
            add_input(&in, "gamma", 1, c);
            add_input(&in, "beta", 1, c);
            if (g_blocked_op == 1)
                add_input(&in, "residual", 4, x);
            else if (g_blocked_op == 2)
                add_input(&in, "w", 4, (int64_t[]){16, 32, 3, 3});
        }
        finalize(&in, (uint64_t)(900 + g_blocked_op), (const float[]){0.3f, 1.0f, 0.1f, -0.2f});
        char name[96];
        snprintf(name, sizeof name, "nChw16c vs NCHW: %s", names[g_blocked_op]);
        /* The convolutions run oneDNN's same kernels in both layouts, so the same bits; but from 8
         * NCHW channels the blocked one's gradients are relate's direct kernel (AVX-512), which
         * sums in its own order. */
        const bool same_kernels = g_blocked_op == 0 || g_blocked_op == 3;
        compare(name, &in, build_blocked, same_kernels ? 0.0 : 1e-6);
        relate_params_free(&in.store);
    }
    /* An op that reads NCHW refuses a blocked tensor, and the conversions check their input. */
    relate_graph *g = relate_graph_create();
    relate_tensor *t = relate_tensor_zeros(g, 4, (int64_t[]){2, 16, 3, 3});
    relate_tensor *b = relate_to_blocked16(g, t);
    CHECK(b && b->blocked16);
    CHECK_MSG(relate_global_avg_pool(g, b) == NULL && strstr(relate_graph_error(g)->msg, "nChw16c"),
              "global_avg_pool took a blocked tensor: %s", relate_graph_error(g)->msg);
    relate_graph_reset(g);
    CHECK(relate_to_blocked16(g, relate_tensor_zeros(g, 4, (int64_t[]){2, 8, 3, 3})) == NULL);
    relate_graph_reset(g);
    CHECK(relate_from_blocked16(g, relate_tensor_zeros(g, 4, (int64_t[]){2, 16, 3, 3})) == NULL);
    relate_graph_destroy(g);
}

/* ---- relation head (a, b, bias1, gamma, beta, w2, b2) */
static int32_t g_ia[64], g_ib[64];
static int g_rows;

static relate_tensor *build_head(relate_graph *g, relate_tensor **t, inputs *in, int fused)
{
    if (fused) {
        relate_relation_head_layers l = {.bias1 = t[2], .gamma = t[3], .beta = t[4], .running_mean = in->rm[1],
                                         .running_var = in->rv[1], .w2 = t[5], .b2 = t[6],
                                         .momentum = 0.1f, .eps = 1e-5f, .slope = 0.01f};
        return relate_relation_head(g, t[0], g_ia, t[1], g_ib, g_rows, &l);
    }
    relate_tensor *h = relate_pair_rows(g, t[0], g_ia, t[1], g_ib, g_rows, t[2], false);
    h = relate_leaky_relu(g, relate_batch_norm(g, h, t[3], t[4], in->rm[0], in->rv[0], NULL, true, 0.1f, 1e-5f), 0.01f);
    return relate_linear(g, h, t[5], t[6]);
}

static void check_relation_head(void)
{
    /* 6 view rows, 40 pairs (each row in several pairs, some pairs repeated), 21 channels (not a
     * multiple of the scatter's 16-column chunks); also a and b as one tensor (sum aggregation). */
    g_rows = 40;
    for (int r = 0; r < g_rows; r++) {
        g_ia[r] = r % 6;
        g_ib[r] = (r * 5 + 1) % 6;
    }
    for (int same = 0; same < 2; same++) {
        inputs in = {0};
        relate_params_init(&in.store);
        const int64_t C = 21;
        add_input(&in, "a", 2, (int64_t[]){6, C});
        add_input(&in, "b", 2, (int64_t[]){6, C});
        add_input(&in, "bias1", 1, (int64_t[]){C});
        add_input(&in, "gamma", 1, (int64_t[]){C});
        add_input(&in, "beta", 1, (int64_t[]){C});
        add_input(&in, "w2", 2, (int64_t[]){1, C});
        add_input(&in, "b2", 1, (int64_t[]){1});
        finalize(&in, 77 + (uint64_t)same, (const float[]){0.5f, -0.2f, 0.1f, 1.0f, 0.0f, 0.0f, 0.0f});
        if (same)
            memcpy(in.p[1]->data, in.p[0]->data, (size_t)in.p[0]->numel * sizeof(float));
        /* Summation orders differ (chunked statistics, a dot product instead of sgemm). */
        compare(same ? "relation head, a and b equal" : "relation head", &in, build_head, 2e-6);
        relate_params_free(&in.store);
    }
}

/* The fused head's results depend neither on the thread count nor on the instruction set: its
 * statistics are reduced over fixed chunks in chunk order, its scatter gives each thread a span
 * of columns whose every element is updated in pair order, and its AVX2 and AVX-512 builds
 * (relation_head_body.h) sum in the same order. The logits and every gradient, bit for bit, at
 * 1, 2, 3 and 5 threads with each instruction set: 43 columns (five whole eights and a tail for
 * the logits' lanes) make one span at 1 thread, spans of 32 + 11 at 2, and 16 + 16 + 11 at 3 and
 * 5. On a CPU without AVX-512 both sets run the AVX2 build, and the test says so. */
/* C = 43 takes the general scatter at every thread count; C = 256 (relationnet's) at 2 threads
 * the AVX-512 build's 128-column spans, against the AVX2 build's general loop. */
static void check_relation_head_threads_c(int64_t C)
{
    g_rows = 40;
    for (int r = 0; r < g_rows; r++) {
        g_ia[r] = (r * 7) % 9;
        g_ib[r] = (r * 3 + 2) % 9;
    }
    inputs in = {0};
    relate_params_init(&in.store);
    add_input(&in, "a", 2, (int64_t[]){9, C});
    add_input(&in, "b", 2, (int64_t[]){9, C});
    add_input(&in, "bias1", 1, (int64_t[]){C});
    add_input(&in, "gamma", 1, (int64_t[]){C});
    add_input(&in, "beta", 1, (int64_t[]){C});
    add_input(&in, "w2", 2, (int64_t[]){1, C});
    add_input(&in, "b2", 1, (int64_t[]){1});
    finalize(&in, 91, (const float[]){0.5f, -0.2f, 0.1f, 1.0f, 0.0f, 0.0f, 0.0f});
    static const int counts[] = {1, 2, 3, 5};
    static const char *const isas[] = {"avx2", "avx512"};
    float *first[MAXP] = {0}, first_logits[40];
    for (size_t k = 0; k < 2 * sizeof counts / sizeof counts[0]; k++) {
        const int threads = counts[k % 4];
        const char *isa = isas[k / 4];
        CHECK(relate_kernels_cap_isa(isa) == 0);
        relate_set_threads(threads);
        relate_params_zero_grad(&in.store);
        relate_graph *g = relate_graph_create();
        relate_tensor *t[MAXP];
        for (int i = 0; i < in.np; i++)
            t[i] = relate_param_tensor(g, in.p[i]);
        relate_tensor *y = build_head(g, t, &in, 1);
        relate_tensor *l = project(g, y);
        CHECK(l && relate_graph_backward(g, l) == RELATE_OK);
        if (k == 0)
            memcpy(first_logits, y->data, sizeof first_logits);
        else
            CHECK_MSG(memcmp(first_logits, y->data, sizeof first_logits) == 0,
                      "relation head: logits differ at %d threads, %s", threads, relate_kernels_isa_name());
        for (int i = 0; i < in.np; i++) {
            const size_t bytes = (size_t)in.p[i]->numel * sizeof(float);
            if (!first[i]) {
                first[i] = malloc(bytes);
                memcpy(first[i], in.p[i]->grad, bytes);
            } else {
                CHECK_MSG(memcmp(first[i], in.p[i]->grad, bytes) == 0,
                          "relation head: d/d %s differs at %d threads, %s", in.p[i]->name, threads,
                          relate_kernels_isa_name());
            }
        }
        relate_graph_destroy(g);
    }
    if (strcmp(relate_kernels_isa_name(), "avx512") != 0)
        printf("note: this CPU has no AVX-512; the relation head's AVX-512 build was not compared\n");
    relate_set_threads(2);
    for (int i = 0; i < in.np; i++)
        free(first[i]);
    relate_params_free(&in.store);
}

static void check_relation_head_threads(void)
{
    check_relation_head_threads_c(43);
    check_relation_head_threads_c(256);
}

/* ---- stem conv + batch norm + ReLU + 2x2 pool: the image input needs no gradient, so it is data
 * here, not a parameter. Bit for bit against the composed ops (whose direct stem kernel the
 * fused op feeds image by image), at 1-3 threads and on both instruction sets. */
static void run_conv_pool(relate_params *store, relate_param **p, const float *xdata, const int64_t *xs, int fused,
                          float *rm, float *rv, float **out, int64_t *out_numel, bool switch_backend)
{
    relate_params_zero_grad(store);
    relate_graph *g = relate_graph_create();
    relate_tensor *x = relate_tensor_new(g, 4, xs);
    memcpy(x->data, xdata, (size_t)x->numel * sizeof(float));
    relate_tensor *w = relate_param_tensor(g, p[0]), *gamma = relate_param_tensor(g, p[1]),
                  *beta = relate_param_tensor(g, p[2]);
    relate_tensor *y = fused ? relate_conv2d_bn_relu_pool2(g, x, w, 1, 1, gamma, beta, rm, rv, NULL, 0.1f, 1e-5f)
                             : relate_batch_norm_relu_pool2(g, relate_conv2d(g, x, w, 1, 1), gamma, beta, rm, rv, NULL,
                                                            0.1f, 1e-5f);
    relate_tensor *l = project(g, y);
    /* Between the passes: the direct kernel no longer runs, so the fused op's backward takes the
     * composed ops' route (dz materialised, then the convolution's own backward). */
    if (switch_backend)
        relate_conv2d_set_backend(RELATE_CONV_BLAS);
    CHECK_MSG(l && relate_graph_backward(g, l) == RELATE_OK, "conv + bn + relu + pool (%s): %s",
              fused ? "fused" : "composed", relate_graph_error(g)->msg);
    relate_conv2d_set_backend(RELATE_CONV_ONEDNN);
    if (l) {
        *out_numel = y->numel;
        *out = malloc((size_t)y->numel * sizeof(float));
        memcpy(*out, y->data, (size_t)y->numel * sizeof(float));
    }
    relate_graph_destroy(g);
}

static void check_conv_bn_relu_pool(void)
{
    /* [n, c, h, w] -> o: the block path (32 wide), Fashion-MNIST's 28 x 28 x 1 (the general
     * path), odd sizes (floor-mode pooling), width 4 (the two-row blocks). */
    static const int64_t shapes[][5] = {{5, 3, 32, 32, 8}, {4, 1, 28, 28, 8}, {3, 3, 9, 11, 4}, {2, 2, 6, 4, 12}};
    static const int counts[] = {1, 2, 3};
    static const char *const isas[] = {"avx2", "avx512"};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t *q = shapes[s];
        relate_params store;
        relate_params_init(&store);
        relate_param *p[3] = {relate_params_add(&store, "w", RELATE_PARAM, 4, (int64_t[]){q[4], q[1], 3, 3}),
                              relate_params_add(&store, "gamma", RELATE_PARAM, 1, (int64_t[]){q[4]}),
                              relate_params_add(&store, "beta", RELATE_PARAM, 1, (int64_t[]){q[4]})};
        relate_error err = {0};
        CHECK(relate_params_finalize(&store, &err) == RELATE_OK);
        for (int i = 0; i < 3; i++) {
            relate_test_fill(p[i]->data, (size_t)p[i]->numel, 700 + 10 * s + (uint64_t)i);
            for (int64_t j = 0; i == 1 && j < p[i]->numel; j++)
                p[i]->data[j] += 1.0f;
        }
        const size_t nx = (size_t)(q[0] * q[1] * q[2] * q[3]);
        float *xdata = malloc(nx * sizeof(float));
        relate_test_fill(xdata, nx, 790 + s);
        const relate_conv2d_dims d0 = {.n = (int)q[0], .c = (int)q[1], .h = (int)q[2], .w = (int)q[3], .o = (int)q[4],
                                       .kh = 3, .kw = 3, .stride = 1, .pad = 1};
        for (size_t k = 0; k < 2 * sizeof counts / sizeof counts[0]; k++) {
            const int threads = counts[k % 3];
            CHECK(relate_kernels_cap_isa(isas[k / 3]) == 0);
            relate_set_threads(threads);
            relate_conv2d_dims d = d0;
            CHECK(relate_conv2d_dims_init(&d) == 0);
            /* The fused path must be the one taken: the direct kernel runs the shape. */
            CHECK_MSG(relate_conv2d_weight_grad_fn_scratch_floats(&d, threads, 64) > 0,
                      "conv + bn + relu + pool: the direct stem kernel does not take [%lld,%lld,%lld,%lld]",
                      (long long)q[0], (long long)q[1], (long long)q[2], (long long)q[3]);
            float rm[2][16], rv[2][16], *out[2] = {NULL, NULL}, *grad[2][3];
            int64_t numel[2] = {0, 0};
            for (int fused = 0; fused < 2; fused++) {
                for (int c = 0; c < 16; c++)
                    rm[fused][c] = 0.0f, rv[fused][c] = 1.0f;
                run_conv_pool(&store, p, xdata, q, fused, rm[fused], rv[fused], &out[fused], &numel[fused], false);
                for (int i = 0; i < 3; i++) {
                    grad[fused][i] = malloc((size_t)p[i]->numel * sizeof(float));
                    memcpy(grad[fused][i], p[i]->grad, (size_t)p[i]->numel * sizeof(float));
                }
            }
            CHECK_MSG(out[0] && out[1] && numel[0] == numel[1] &&
                          memcmp(out[0], out[1], (size_t)numel[0] * sizeof(float)) == 0,
                      "conv + bn + relu + pool %zu, %d threads, %s: outputs differ", s, threads,
                      relate_kernels_isa_name());
            for (int i = 0; i < 3; i++) {
                CHECK_MSG(memcmp(grad[0][i], grad[1][i], (size_t)p[i]->numel * sizeof(float)) == 0,
                          "conv + bn + relu + pool %zu, %d threads, %s: d/d %s differs", s, threads,
                          relate_kernels_isa_name(), p[i]->name);
                free(grad[0][i]);
                free(grad[1][i]);
            }
            CHECK_MSG(memcmp(rm[0], rm[1], sizeof rm[0]) == 0 && memcmp(rv[0], rv[1], sizeof rv[0]) == 0,
                      "conv + bn + relu + pool %zu, %d threads: running statistics differ", s, threads);
            free(out[0]);
            free(out[1]);
        }
        /* The backend switched between forward and backward: batch norm's gradients are the same
         * bits, the weight gradient im2col + sgemm's (another summation order). */
        relate_set_threads(2);
        float rm2[2][16], rv2[2][16], *o2[2] = {NULL, NULL}, *g2[2][3];
        int64_t n2[2] = {0, 0};
        for (int fused = 0; fused < 2; fused++) {
            for (int c = 0; c < 16; c++)
                rm2[fused][c] = 0.0f, rv2[fused][c] = 1.0f;
            run_conv_pool(&store, p, xdata, q, fused, rm2[fused], rv2[fused], &o2[fused], &n2[fused], fused == 1);
            for (int i = 0; i < 3; i++) {
                g2[fused][i] = malloc((size_t)p[i]->numel * sizeof(float));
                memcpy(g2[fused][i], p[i]->grad, (size_t)p[i]->numel * sizeof(float));
            }
        }
        char what[96];
        snprintf(what, sizeof what, "conv + bn + relu + pool %zu, backend switched: d/d w", s);
        relate_test_check_close(what, g2[1][0], g2[0][0], (size_t)p[0]->numel, 1e-5);
        CHECK_MSG(memcmp(g2[0][1], g2[1][1], (size_t)p[1]->numel * sizeof(float)) == 0 &&
                      memcmp(g2[0][2], g2[1][2], (size_t)p[2]->numel * sizeof(float)) == 0,
                  "conv + bn + relu + pool %zu, backend switched: d/d gamma or beta differs", s);
        for (int fused = 0; fused < 2; fused++) {
            free(o2[fused]);
            for (int i = 0; i < 3; i++)
                free(g2[fused][i]);
        }
        free(xdata);
        relate_params_free(&store);
    }
    relate_set_threads(2);
}

/* relate_graph_keep_grads: with it, an intermediate output keeps its gradient after backward;
 * without it, the buffer has been handed back. */
static void check_gradient_release(void)
{
    relate_params store;
    relate_params_init(&store);
    relate_param *w = relate_params_add(&store, "w", RELATE_PARAM, 2, (int64_t[]){4, 4});
    relate_error err = {0};
    CHECK(relate_params_finalize(&store, &err) == RELATE_OK);
    relate_test_fill(w->data, 16, 5);
    for (int keep = 0; keep < 2; keep++) {
        relate_graph *g = relate_graph_create();
        relate_graph_keep_grads(g, keep);
        relate_tensor *h = relate_matmul(g, relate_param_tensor(g, w), relate_param_tensor(g, w), false, false);
        relate_tensor *loss = project(g, relate_relu(g, h));
        CHECK(relate_graph_backward(g, loss) == RELATE_OK);
        CHECK_MSG((h->grad != NULL) == keep, "keep_grads %d: intermediate gradient %s", keep,
                  h->grad ? "kept" : "released");
        relate_graph_destroy(g);
    }
    relate_params_free(&store);
}

int main(void)
{
    check_batch_norm_fusions();
    check_bn_relu_conv();
    check_conv_bn_relu_pool();
    check_blocked_layout();
    check_relation_head();
    check_relation_head_threads();
    check_gradient_release();
    return relate_test_finish();
}
