/* test_grad_store.c: the backward kernels that can store a gradient into a fresh buffer instead
 * of adding to it (relate_grad_to_write: the buffer is not zeroed): batch norm's and the
 * convolution's input gradients. Storing must
 * give, bit for bit, what adding to a zeroed buffer gives, must write every element (the buffer
 * starts as NaN, which any element left unwritten would keep), and must not read the buffer
 * (a NaN read would turn up in the result). Adding still adds. Covered: the fused batch norm
 * (plain, with ReLU, with residual + ReLU, storing dx, dresidual or both) and conv4's
 * BN + ReLU + AvgPool2d(2, 2), including odd sizes whose last row and column are outside the
 * pooling windows, and its block path against its general one, bit for bit; the convolution on
 * both backends (oneDNN's blocked layouts, where the output
 * goes through a reorder, and its plain ones; im2col + sgemm), strides 1 and 2, dw alongside. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "test_util.h"

static float *filled(size_t n, uint64_t seed)
{
    float *p = malloc(n * sizeof *p);
    if (p)
        relate_test_fill(p, n, seed);
    return p;
}

static float *constant(size_t n, float v)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; p && i < n; i++)
        p[i] = v;
    return p;
}

static int same_bits(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(a[i] == b[i]) && !(isnan(a[i]) && isnan(b[i])))
            return 0;
    return 1;
}

/* The statistics the forward pass would save: the kernels take them as given. */
static void stats(float *mean, float *invstd, int c)
{
    for (int ch = 0; ch < c; ch++) {
        mean[ch] = 0.05f * (float)(ch % 3) - 0.02f;
        invstd[ch] = 0.8f + 0.1f * (float)ch;
    }
}

static void check_fused_bn(int n, int c, int hw, int relu, int residual, unsigned store)
{
    const size_t total = (size_t)n * c * hw;
    float *x = filled(total, 1), *dy = filled(total, 2), *y = filled(total, 3), *gamma = filled(c, 4);
    float mean[16], invstd[16];
    stats(mean, invstd, c);
    float *dx_add = constant(total, 0.0f), *dr_add = constant(total, 0.0f);
    float *dx_st = constant(total, (store & RELATE_BN_STORE_DX) ? NAN : 0.0f);
    float *dr_st = constant(total, (store & RELATE_BN_STORE_DRESIDUAL) ? NAN : 0.0f);
    float dg_add[16] = {0}, db_add[16] = {0}, dg_st[16] = {0}, db_st[16] = {0};
    CHECK(x && dy && y && gamma && dx_add && dr_add && dx_st && dr_st && c <= 16);
    relate_batchnorm_backward_train_ep(dx_add, dg_add, db_add, dy, x, mean, invstd, gamma, n, c, hw,
                                       relu ? y : NULL, residual ? dr_add : NULL, 0);
    relate_batchnorm_backward_train_ep(dx_st, dg_st, db_st, dy, x, mean, invstd, gamma, n, c, hw, relu ? y : NULL,
                                       residual ? dr_st : NULL, store);
    CHECK_MSG(same_bits(dx_add, dx_st, total), "fused bn n=%d c=%d hw=%d relu=%d residual=%d store=%u: dx", n, c, hw,
              relu, residual, store);
    if (residual)
        CHECK_MSG(same_bits(dr_add, dr_st, total), "fused bn store=%u: dresidual", store);
    CHECK(same_bits(dg_add, dg_st, (size_t)c) && same_bits(db_add, db_st, (size_t)c));
    /* Adding adds: a second call without store doubles the stored gradient exactly. */
    if (store & RELATE_BN_STORE_DX) {
        relate_batchnorm_backward_train_ep(dx_st, NULL, NULL, dy, x, mean, invstd, gamma, n, c, hw, relu ? y : NULL,
                                           NULL, 0);
        int doubled = 1;
        for (size_t i = 0; i < total; i++)
            doubled &= dx_st[i] == 2.0f * dx_add[i];
        CHECK_MSG(doubled, "fused bn: adding after storing");
    }
    free(x), free(dy), free(y), free(gamma), free(dx_add), free(dr_add), free(dx_st), free(dr_st);
}

static void check_bn_relu_pool2(int n, int c, int h, int w)
{
    const size_t total = (size_t)n * c * h * w, pooled = (size_t)n * c * (h / 2) * (w / 2);
    float *x = filled(total, 5), *dy = filled(pooled, 6), *gamma = filled(c, 7), *beta = filled(c, 8);
    float mean[16], invstd[16];
    stats(mean, invstd, c);
    float *dx_add = constant(total, 0.0f), *dx_st = constant(total, NAN);
    float dg_add[16] = {0}, db_add[16] = {0}, dg_st[16] = {0}, db_st[16] = {0};
    CHECK(x && dy && gamma && beta && dx_add && dx_st && c <= 16);
    CHECK(relate_bn_relu_pool2_backward_train(dx_add, dg_add, db_add, dy, x, mean, invstd, gamma, beta, n, c, h, w,
                                              false) == 0);
    CHECK(relate_bn_relu_pool2_backward_train(dx_st, dg_st, db_st, dy, x, mean, invstd, gamma, beta, n, c, h, w,
                                              true) == 0);
    CHECK_MSG(same_bits(dx_add, dx_st, total), "bn_relu_pool2 n=%d c=%d %dx%d: stored dx differs", n, c, h, w);
    CHECK(same_bits(dg_add, dg_st, (size_t)c) && same_bits(db_add, db_st, (size_t)c));
    /* Widths 4 and multiples of 8 (with an even height) take the block path, which never stores
     * dz; the general path must give the same bits. */
    float *dx_gen = constant(total, NAN), dg_gen[16] = {0}, db_gen[16] = {0};
    CHECK(dx_gen != NULL);
    relate_bn_relu_pool2_use_blocks(false);
    CHECK(relate_bn_relu_pool2_backward_train(dx_gen, dg_gen, db_gen, dy, x, mean, invstd, gamma, beta, n, c, h, w,
                                              true) == 0);
    /* The forward too (multiples of 8 pool 8 columns at a time): outputs and statistics. */
    float *y_gen = constant(pooled, NAN), *y_blk = constant(pooled, NAN);
    float st[2][4][16] = {{{0}}};
    CHECK(y_gen && y_blk);
    for (int blk = 0; blk <= 1; blk++) {
        relate_bn_relu_pool2_use_blocks(blk);
        for (int k = 0; k < 16; k++)
            st[blk][2][k] = 0.0f, st[blk][3][k] = 1.0f;
        CHECK(relate_bn_relu_pool2_forward_train(blk ? y_blk : y_gen, st[blk][0], st[blk][1], x, gamma, beta,
                                                 st[blk][2], st[blk][3], n, c, h, w, 0.1f, 1e-5f) == 0);
    }
    CHECK_MSG(same_bits(y_gen, y_blk, pooled) && same_bits(&st[0][0][0], &st[1][0][0], 4 * 16),
              "bn_relu_pool2 forward n=%d c=%d %dx%d: the block and general paths differ", n, c, h, w);
    free(y_gen), free(y_blk);
    relate_bn_relu_pool2_use_blocks(true);
    CHECK_MSG(same_bits(dx_gen, dx_st, total) && same_bits(dg_gen, dg_st, (size_t)c) &&
                  same_bits(db_gen, db_st, (size_t)c),
              "bn_relu_pool2 n=%d c=%d %dx%d: the block and general paths differ", n, c, h, w);
    free(x), free(dy), free(gamma), free(beta), free(dx_add), free(dx_st), free(dx_gen);
}

static void check_conv(relate_conv_backend backend, int n, int c, int h, int o, int k, int stride, int pad)
{
    relate_conv2d_set_backend(backend);
    relate_conv2d_dims d = {.n = n, .c = c, .h = h, .w = h, .o = o, .kh = k, .kw = k, .stride = stride, .pad = pad};
    CHECK(relate_conv2d_dims_init(&d) == 0);
    const size_t xs = (size_t)n * c * h * h, ws = (size_t)o * c * k * k, ys = (size_t)n * o * d.ho * d.wo;
    float *x = filled(xs, 9), *w = filled(ws, 10), *dy = filled(ys, 11);
    float *scratch = malloc((relate_conv2d_scratch_floats(&d, 2) + 1) * sizeof(float));
    float *dx_add = constant(xs, 0.0f), *dx_st = constant(xs, NAN), *dw_add = constant(ws, 0.0f),
          *dw_st = constant(ws, 0.0f);
    CHECK(x && w && dy && scratch && dx_add && dx_st && dw_add && dw_st);
    relate_conv2d_backward_ex(dx_add, dw_add, dy, x, w, &d, scratch, false);
    relate_conv2d_backward_ex(dx_st, dw_st, dy, x, w, &d, scratch, true);
    CHECK_MSG(same_bits(dx_add, dx_st, xs), "conv backend %d n=%d c=%d h=%d o=%d k=%d s=%d: stored dx differs",
              (int)backend, n, c, h, o, k, stride);
    CHECK(same_bits(dw_add, dw_st, ws));
    /* Adding still adds: once more without store doubles dx (to rounding: im2col + sgemm adds
     * each window's term in turn, so v + (a + b) is not (a + b) + (a + b) to the bit). */
    relate_conv2d_backward_ex(dx_st, NULL, dy, x, w, &d, scratch, false);
    float scale = 0;
    for (size_t i = 0; i < xs; i++)
        scale = fabsf(dx_add[i]) > scale ? fabsf(dx_add[i]) : scale;
    int doubled = 1;
    for (size_t i = 0; i < xs; i++)
        doubled &= fabsf(dx_st[i] - 2.0f * dx_add[i]) <= 1e-5f * scale;
    CHECK_MSG(doubled, "conv backend %d: adding after storing", (int)backend);
    free(x), free(w), free(dy), free(scratch), free(dx_add), free(dx_st), free(dw_add), free(dw_st);
}

int main(void)
{
    static const unsigned stores[] = {RELATE_BN_STORE_DX, RELATE_BN_STORE_DRESIDUAL,
                                      RELATE_BN_STORE_DX | RELATE_BN_STORE_DRESIDUAL};
    for (int relu = 0; relu <= 1; relu++)
        for (int residual = 0; residual <= 1; residual++)
            for (size_t s = 0; s < sizeof stores / sizeof stores[0]; s++) {
                check_fused_bn(3, 5, 49, relu, residual, stores[s]);
                check_fused_bn(2, 16, 1024, relu, residual, stores[s]);
            }
    check_bn_relu_pool2(3, 4, 8, 8);
    check_bn_relu_pool2(2, 3, 7, 9);
    check_bn_relu_pool2(4, 16, 32, 32);
    check_bn_relu_pool2(5, 6, 4, 4);
    check_bn_relu_pool2(3, 2, 6, 24);
    check_bn_relu_pool2(2, 9, 16, 16);
    check_bn_relu_pool2(2, 3, 5, 8); /* odd height: the general path */
    const relate_conv_backend env_backend = relate_conv2d_get_backend();
    static const relate_conv_backend backends[] = {RELATE_CONV_ONEDNN, RELATE_CONV_BLAS};
    for (int b = 0; b < 2; b++) {
        check_conv(backends[b], 4, 3, 16, 32, 3, 1, 1);  /* conv4's first layer */
        check_conv(backends[b], 3, 32, 16, 32, 3, 1, 1); /* blocked layouts */
        check_conv(backends[b], 2, 16, 9, 32, 3, 2, 1);  /* stride 2, odd size */
        check_conv(backends[b], 2, 16, 8, 32, 1, 2, 0);  /* a 1x1 shortcut */
        check_conv(backends[b], 2, 1, 8, 4, 3, 1, 1);
        check_conv(backends[b], 2, 4, 8, 4, 1, 1, 0);
        check_conv(backends[b], 2, 3, 9, 5, 5, 1, 2);
        check_conv(backends[b], 2, 8, 8, 8, 3, 1, 1);
        check_conv(backends[b], 2, 64, 4, 64, 3, 1, 1);
    }
    relate_conv2d_set_backend(env_backend);
    return relate_test_finish();
}
