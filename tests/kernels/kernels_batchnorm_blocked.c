/* kernels_batchnorm_blocked.c: batch norm on nChw16c activations (batchnorm_blocked.c) against the
 * NCHW kernels on the same values: the layout moves element by element, the forward with each
 * epilogue, the forward again from saved statistics, the backward with its ReLU mask, residual
 * gradient and store flags, conv4's block tail with its 2x2 pooling, bits that do not depend on
 * the thread count, and the refusal of a
 * channel count that is not a multiple of 16. Not the NCHW kernels' own checks (kernels_batchnorm.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels_harness.h"
#include "test_util.h"

/* The NCHW kernels and the blocked ones sum in different orders; float results of sums of a few
 * hundred terms agree far below this. */
#define LAYOUT_BOUND 1e-5

static size_t blocked_at(int c, int hw, int i, int ch, int p)
{
    return (((size_t)i * (c / 16) + ch / 16) * hw + p) * 16 + ch % 16;
}

static void check_layout(void)
{
    const int n = 3, c = 32, hw = 7;
    const size_t len = (size_t)n * c * hw;
    float *x = frand(len), *b = falloc(len), *back = falloc(len), *acc = frand(len), *acc0 = falloc(len);
    relate_nchw_to_blocked16(b, x, n, c, hw, false);
    int wrong = 0;
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int p = 0; p < hw; p++)
                wrong += b[blocked_at(c, hw, i, ch, p)] != x[((size_t)i * c + ch) * hw + p];
    CHECK_MSG(wrong == 0, "nchw_to_blocked16: %d elements out of place", wrong);
    relate_blocked16_to_nchw(back, b, n, c, hw, false);
    CHECK_MSG(memcmp(back, x, len * sizeof(float)) == 0, "blocked16_to_nchw does not undo nchw_to_blocked16");
    /* add: acc + the moved values */
    memcpy(acc0, acc, len * sizeof(float));
    relate_blocked16_to_nchw(acc, b, n, c, hw, true);
    wrong = 0;
    for (size_t k = 0; k < len; k++)
        wrong += acc[k] != acc0[k] + x[k];
    CHECK_MSG(wrong == 0, "blocked16_to_nchw(add): %d elements are not the sum", wrong);
    free(x), free(b), free(back), free(acc), free(acc0);
}

typedef struct {
    int n, c, hw;
    float *x, *gamma, *beta, *res, *dy;
} bn_in;

typedef struct {
    float *y, *mean, *invstd, *rm, *rv, *dx, *dg, *db, *dres;
} bn_out;

static void out_alloc(bn_out *o, const bn_in *in)
{
    const size_t len = (size_t)in->n * in->c * in->hw;
    o->y = falloc(len), o->dx = falloc(len), o->dres = falloc(len);
    o->mean = falloc(in->c), o->invstd = falloc(in->c), o->dg = falloc(in->c), o->db = falloc(in->c);
    o->rm = falloc(in->c), o->rv = falloc(in->c);
    for (int k = 0; k < in->c; k++)
        o->rv[k] = 1.0f;
}

static void out_free(bn_out *o)
{
    free(o->y), free(o->dx), free(o->dres), free(o->mean), free(o->invstd), free(o->dg), free(o->db);
    free(o->rm), free(o->rv);
}

/* One forward + backward through the blocked kernels on blocked copies of in (results moved
 * back to NCHW), or through the NCHW kernels. */
static void run_bn(bn_out *o, const bn_in *in, bool blocked, bool relu, bool residual, unsigned store)
{
    const int n = in->n, c = in->c, hw = in->hw;
    const size_t len = (size_t)n * c * hw;
    const relate_bn_epilogue ep = {residual ? in->res : NULL, relu};
    if (!blocked) {
        relate_batchnorm_forward_train_ep(o->y, o->mean, o->invstd, in->x, in->gamma, in->beta, o->rm, o->rv, n, c, hw,
                                          0.1f, 1e-5f, &ep);
        relate_batchnorm_backward_train_ep(o->dx, o->dg, o->db, in->dy, in->x, o->mean, o->invstd, in->gamma, n, c,
                                           hw, relu ? o->y : NULL, residual ? o->dres : NULL, store);
        return;
    }
    float *x = falloc(len), *res = falloc(len), *dy = falloc(len), *y = falloc(len), *y2 = falloc(len);
    float *dx = falloc(len), *dres = falloc(len);
    relate_nchw_to_blocked16(x, in->x, n, c, hw, false);
    relate_nchw_to_blocked16(res, in->res, n, c, hw, false);
    relate_nchw_to_blocked16(dy, in->dy, n, c, hw, false);
    relate_nchw_to_blocked16(dx, o->dx, n, c, hw, false);
    relate_nchw_to_blocked16(dres, o->dres, n, c, hw, false);
    const relate_bn_epilogue bep = {residual ? res : NULL, relu};
    CHECK(relate_bn16_forward_train(y, o->mean, o->invstd, x, in->gamma, in->beta, o->rm, o->rv, n, c, hw, 0.1f,
                                    1e-5f, &bep) == 0);
    /* The forward again from the saved statistics: the same expressions, so the same bits. */
    CHECK(relate_bn16_apply_saved(y2, x, o->mean, o->invstd, in->gamma, in->beta, n, c, hw, &bep) == 0);
    check_bits("output", "bn16_apply_saved", y, y2, len * sizeof(float));
    CHECK(relate_bn16_backward_train(dx, o->dg, o->db, dy, x, o->mean, o->invstd, in->gamma, n, c, hw,
                                     relu ? y : NULL, residual ? dres : NULL, store) == 0);
    relate_blocked16_to_nchw(o->y, y, n, c, hw, false);
    relate_blocked16_to_nchw(o->dx, dx, n, c, hw, false);
    relate_blocked16_to_nchw(o->dres, dres, n, c, hw, false);
    free(x), free(res), free(dy), free(y), free(y2), free(dx), free(dres);
}

static void compare(const char *what, const bn_out *a, const bn_out *b, const bn_in *in)
{
    const size_t len = (size_t)in->n * in->c * in->hw;
    char nm[128];
    const struct {
        const char *name;
        const float *x, *y;
        size_t n;
    } parts[] = {{"y", a->y, b->y, len},          {"dx", a->dx, b->dx, len},     {"dresidual", a->dres, b->dres, len},
                 {"mean", a->mean, b->mean, in->c}, {"invstd", a->invstd, b->invstd, in->c},
                 {"running_mean", a->rm, b->rm, in->c}, {"running_var", a->rv, b->rv, in->c},
                 {"dgamma", a->dg, b->dg, in->c}, {"dbeta", a->db, b->db, in->c}};
    for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
        snprintf(nm, sizeof nm, "bn16 %s (%s) vs NCHW", parts[k].name, what);
        relate_test_check_close(nm, parts[k].x, parts[k].y, parts[k].n, LAYOUT_BOUND);
    }
}

static void check_against_nchw(int n, int c, int hw)
{
    const size_t len = (size_t)n * c * hw;
    bn_in in = {n, c, hw, frand(len), frand(c), frand(c), frand(len), frand(len)};
    for (size_t k = 0; k < len; k++)
        in.x[k] = 3.0f + 2.0f * in.x[k]; /* a mean far from 0, as after a convolution */
    static const struct {
        bool relu, residual;
        unsigned store;
        const char *name;
    } variants[] = {{false, false, 0, "plain"},
                    {true, false, RELATE_BN_STORE_DX, "relu, dx stored"},
                    {true, true, RELATE_BN_STORE_DX | RELATE_BN_STORE_DRESIDUAL, "residual + relu, both stored"},
                    {true, true, 0, "residual + relu, both added"}};
    /* The NCHW kernel leaves hw == 1 with an epilogue to its callers (they mask first). */
    const size_t nv = hw == 1 ? 1 : sizeof variants / sizeof variants[0];
    for (size_t v = 0; v < nv; v++) {
        bn_out a, b;
        out_alloc(&a, &in);
        out_alloc(&b, &in);
        if (!(variants[v].store & RELATE_BN_STORE_DX)) /* added gradients land on what is there */
            for (size_t k = 0; k < len; k++)
                a.dx[k] = b.dx[k] = a.dres[k] = b.dres[k] = 0.25f;
        run_bn(&a, &in, true, variants[v].relu, variants[v].residual, variants[v].store);
        run_bn(&b, &in, false, variants[v].relu, variants[v].residual, variants[v].store);
        compare(variants[v].name, &a, &b, &in);
        out_free(&a);
        out_free(&b);
    }
    free(in.x), free(in.gamma), free(in.beta), free(in.res), free(in.dy);
}

/* The per-chunk sums make the bits independent of the thread count. */
static void check_threads(void)
{
    const int n = 37, c = 32, hw = 25;
    const size_t len = (size_t)n * c * hw;
    bn_in in = {n, c, hw, frand(len), frand(c), frand(c), frand(len), frand(len)};
    bn_out o[2];
    const int threads[2] = {1, 3};
    for (int t = 0; t < 2; t++) {
        relate_set_threads(threads[t]);
        out_alloc(&o[t], &in);
        run_bn(&o[t], &in, true, true, true, RELATE_BN_STORE_DX | RELATE_BN_STORE_DRESIDUAL);
    }
    relate_set_threads(2);
    check_bits("y with 1 and 3 threads", "bn16_forward_train", o[0].y, o[1].y, len * sizeof(float));
    check_bits("dx with 1 and 3 threads", "bn16_backward_train", o[0].dx, o[1].dx, len * sizeof(float));
    check_bits("dgamma with 1 and 3 threads", "bn16_backward_train", o[0].dg, o[1].dg, c * sizeof(float));
    check_bits("running_var with 1 and 3 threads", "bn16_forward_train", o[0].rv, o[1].rv, c * sizeof(float));
    out_free(&o[0]);
    out_free(&o[1]);
    free(in.x), free(in.gamma), free(in.beta), free(in.res), free(in.dy);
}

/* conv4's block tail (bn + relu + 2x2 avg pool) on blocked activations against the NCHW kernel,
 * even and odd sizes (floor mode), dx stored and added. */
static void check_pool(int n, int c, int h, int w, bool store)
{
    const int hw = h * w, ho = h / 2, wo = w / 2;
    const size_t len = (size_t)n * c * hw, plen = (size_t)n * c * ho * wo;
    float *x = frand(len), *gamma = frand(c), *beta = frand(c), *dy = frand(plen);
    for (size_t k = 0; k < len; k++)
        x[k] = 0.5f + x[k];
    float *y[2] = {falloc(plen), falloc(plen)}, *dx[2] = {frand(len), falloc(len)};
    memcpy(dx[1], dx[0], len * sizeof(float));
    float *mean[2] = {falloc(c), falloc(c)}, *inv[2] = {falloc(c), falloc(c)}, *rm[2] = {falloc(c), falloc(c)},
          *rv[2] = {falloc(c), falloc(c)}, *dg[2] = {falloc(c), falloc(c)}, *db[2] = {falloc(c), falloc(c)};
    CHECK(relate_bn_relu_pool2_forward_train(y[0], mean[0], inv[0], x, gamma, beta, rm[0], rv[0], n, c, h, w, 0.1f,
                                             1e-5f) == 0);
    CHECK(relate_bn_relu_pool2_backward_train(dx[0], dg[0], db[0], dy, x, mean[0], inv[0], gamma, beta, n, c, h, w,
                                              store) == 0);
    float *xb = falloc(len), *yb = falloc(plen), *dyb = falloc(plen), *dxb = falloc(len);
    relate_nchw_to_blocked16(xb, x, n, c, hw, false);
    relate_nchw_to_blocked16(dyb, dy, n, c, ho * wo, false);
    relate_nchw_to_blocked16(dxb, dx[1], n, c, hw, false);
    CHECK(relate_bn16_relu_pool2_forward_train(yb, mean[1], inv[1], xb, gamma, beta, rm[1], rv[1], n, c, h, w, 0.1f,
                                               1e-5f) == 0);
    CHECK(relate_bn16_relu_pool2_backward_train(dxb, dg[1], db[1], dyb, xb, mean[1], inv[1], gamma, beta, n, c, h, w,
                                                store) == 0);
    relate_blocked16_to_nchw(y[1], yb, n, c, ho * wo, false);
    relate_blocked16_to_nchw(dx[1], dxb, n, c, hw, false);
    char nm[128];
    const char *parts[6] = {"y", "dx", "mean", "running_var", "dgamma", "dbeta"};
    float *const *vals[6] = {y, dx, mean, rv, dg, db};
    const size_t lens[6] = {plen, len, (size_t)c, (size_t)c, (size_t)c, (size_t)c};
    for (int k = 0; k < 6; k++) {
        snprintf(nm, sizeof nm, "bn16 + relu + pool2 %s [%d,%d,%d,%d]%s vs NCHW", parts[k], n, c, h, w,
                 store ? " (dx stored)" : "");
        relate_test_check_close(nm, vals[k][1], vals[k][0], lens[k], LAYOUT_BOUND);
    }
    CHECK(relate_bn16_relu_pool2_forward_train(yb, mean[1], inv[1], xb, gamma, beta, NULL, NULL, 1, 24, 2, 2, 0.1f,
                                               1e-5f) == -1);
    free(x), free(gamma), free(beta), free(dy), free(xb), free(yb), free(dyb), free(dxb);
    for (int k = 0; k < 2; k++)
        free(y[k]), free(dx[k]), free(mean[k]), free(inv[k]), free(rm[k]), free(rv[k]), free(dg[k]), free(db[k]);
}

static void check_refusals(void)
{
    float buf[24 * 4] = {0}, stat[24] = {0};
    CHECK_MSG(relate_bn16_forward_train(buf, stat, stat, buf, NULL, NULL, NULL, NULL, 1, 24, 4, 0.1f, 1e-5f, NULL) ==
                  -1,
              "bn16_forward_train accepted 24 channels (not a multiple of 16)");
    CHECK(relate_bn16_backward_train(buf, NULL, NULL, buf, buf, stat, stat, NULL, 1, 24, 4, NULL, NULL, 0) == -1);
    CHECK(relate_bn16_apply_saved(buf, buf, stat, stat, NULL, NULL, 1, 24, 4, NULL) == -1);
}

void test_batchnorm_blocked(void)
{
    check_layout();
    check_against_nchw(5, 16, 9);
    check_against_nchw(70, 48, 64); /* more images than sum chunks, 3 channel blocks */
    check_against_nchw(3, 32, 1);   /* one position per image; fewer images than chunks */
    check_threads();
    check_pool(6, 16, 8, 8, true);
    check_pool(37, 32, 7, 5, false);
    check_refusals();
}
