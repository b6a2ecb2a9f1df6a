/* kernels_batchnorm_blocked.c: batch norm on nChw16c activations (batchnorm_blocked.c) against the
 * NCHW kernels on the same values: the layout moves element by element, the forward with each
 * epilogue, the forward again from saved statistics, the backward with its ReLU mask, residual
 * gradient and store flags, bits that do not depend on the thread count, and the refusal of a
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
    check_refusals();
}
