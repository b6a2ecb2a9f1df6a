/* kernels_conv.c: the convolution kernels: the conv2d battery (reference, conventions, finite
 * differences) on small shapes, both backends (oneDNN, im2col + OpenBLAS) against each other on
 * oneDNN's blocked shapes, the direct stem kernel and its ISA versions, the independence of a
 * result from the thread count that first met its shape, and dims validation.
 * Not the harness (kernels_harness.c) nor the order the checks run in (test_kernels.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/conv2d_internal.h"
#include "kernels/kernels.h"
#include "kernels_harness.h"
#include "test_util.h"

/* ------------------------------------------------------------------ conv2d */
typedef struct {
    relate_conv2d_dims d;
    float *scratch;
} conv_aux;

static void conv_fwd(tcase *c, float *y)
{
    conv_aux *a = c->aux;
    relate_conv2d_forward(y, c->in[0], c->in[1], &a->d, a->scratch);
}

static void conv_bwd(tcase *c, float *const *g, const float *dy)
{
    conv_aux *a = c->aux;
    relate_conv2d_backward(g[0], g[1], dy, c->in[0], c->in[1], &a->d, a->scratch);
}

static void conv_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    conv_aux *a = c->aux;
    relate_conv2d_forward_ref(y, c->in[0], c->in[1], &a->d);
    relate_conv2d_backward_ref(g[0], g[1], dy, c->in[0], c->in[1], &a->d);
}

void test_conv(int fd)
{
    static const int shapes[][10] = {
        /* n, c, h, w, o, kh, kw, stride, pad */
        {2, 3, 7, 7, 4, 3, 3, 1, 1},   {1, 3, 9, 11, 5, 3, 3, 2, 1}, {3, 4, 5, 5, 6, 1, 1, 1, 0},
        {2, 3, 15, 13, 4, 7, 7, 2, 3}, {2, 5, 6, 6, 3, 1, 1, 2, 0},  {5, 2, 4, 3, 3, 2, 3, 1, 0},
        {1, 1, 1, 1, 2, 1, 1, 1, 0},   {2, 3, 4, 4, 2, 3, 3, 3, 2},  {2, 2, 3, 3, 2, 1, 1, 1, 1},
        {3, 3, 2, 2, 2, 3, 3, 1, 1},   {4, 8, 12, 12, 8, 3, 3, 1, 1},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *q = shapes[s];
        conv_aux a = {.d = {.n = q[0], .c = q[1], .h = q[2], .w = q[3], .o = q[4], .kh = q[5],
                            .kw = q[6], .stride = q[7], .pad = q[8]}};
        CHECK(relate_conv2d_dims_init(&a.d) == 0);
        const size_t sf = relate_conv2d_scratch_floats(&a.d, relate_get_threads());
        a.scratch = falloc(sf);
        for (size_t i = 0; i < sf; i++)
            a.scratch[i] = NAN; /* kernels must not read scratch they did not write */
        char name[128];
        snprintf(name, sizeof name, "conv2d n%d c%d %dx%d o%d k%dx%d s%d p%d t%d", q[0], q[1], q[2],
                 q[3], q[4], q[5], q[6], q[7], q[8], relate_get_threads());
        tcase c = {.name = name, .nin = 2, .fwd = conv_fwd, .bwd = conv_bwd, .ref = conv_ref,
                   .aux = &a, .h = 1e-2f};
        c.nel[0] = (size_t)a.d.n * a.d.c * a.d.h * a.d.w;
        c.nel[1] = (size_t)a.d.o * a.d.c * a.d.kh * a.d.kw;
        c.ny = (size_t)a.d.n * a.d.o * a.d.ho * a.d.wo;
        c.in[0] = frand(c.nel[0]);
        c.in[1] = frand(c.nel[1]);
        run_case(&c, fd);
        free(c.in[0]);
        free(c.in[1]);
        free(a.scratch);
    }
}

/* Both convolution backends in one process (switched through the setter), against each other and
 * the double reference, on channel counts where oneDNN picks its blocked JIT kernels (16, 32,
 * 64, padded blocks of 8/20/24, a 3-channel stem, stride 2, 1x1) that test_conv's small shapes
 * do not reach. Gradients start non-zero, so oneDNN's summing reorders are checked too. */
void test_conv_backends(void)
{
    static const int shapes[][9] = {
        /* n, c, h, w, o, kh, kw, stride, pad */
        {4, 16, 16, 16, 16, 3, 3, 1, 1}, {3, 16, 12, 12, 32, 3, 3, 2, 1}, {3, 32, 8, 8, 64, 1, 1, 2, 0},
        {2, 3, 16, 16, 8, 3, 3, 1, 1},   {2, 8, 9, 9, 16, 3, 3, 1, 1},    {2, 20, 7, 7, 24, 3, 3, 1, 1},
        {2, 64, 4, 4, 64, 3, 3, 1, 1},
        /* ~34 MB of input + output: oneDNN runs it in 3 batch slices (467, 467, 466 images), the
         * weight gradients of the slices adding up. */
        {1400, 2, 32, 32, 4, 3, 3, 1, 1},
    };
    const relate_conv_backend keep = relate_conv2d_get_backend();
    static const relate_conv_backend backends[2] = {RELATE_CONV_ONEDNN_ONLY, RELATE_CONV_BLAS};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *q = shapes[s];
        relate_conv2d_dims d = {.n = q[0], .c = q[1], .h = q[2], .w = q[3], .o = q[4], .kh = q[5],
                                .kw = q[6], .stride = q[7], .pad = q[8]};
        CHECK(relate_conv2d_dims_init(&d) == 0);
        const size_t nx = (size_t)d.n * d.c * d.h * d.w, nw = (size_t)d.o * d.c * d.kh * d.kw,
                     ny = (size_t)d.n * d.o * d.ho * d.wo;
        float *x = frand(nx), *w = frand(nw), *dy = frand(ny), *gx0 = frand(nx), *gw0 = frand(nw);
        float *y[2], *gx[2], *gw[2];
        for (int b = 0; b < 2; b++) {
            relate_conv2d_set_backend(backends[b]);
            const size_t sf = relate_conv2d_scratch_floats(&d, relate_get_threads());
            float *scratch = falloc(sf);
            for (size_t i = 0; i < sf; i++)
                scratch[i] = NAN;
            y[b] = falloc(ny);
            gx[b] = falloc(nx);
            gw[b] = falloc(nw);
            memcpy(gx[b], gx0, nx * sizeof(float));
            memcpy(gw[b], gw0, nw * sizeof(float));
            relate_conv2d_forward(y[b], x, w, &d, scratch);
            relate_conv2d_backward(gx[b], gw[b], dy, x, w, &d, scratch);
            free(scratch);
        }
        float *yr = falloc(ny), *gxr = falloc(nx), *gwr = falloc(nw);
        memcpy(gxr, gx0, nx * sizeof(float));
        memcpy(gwr, gw0, nw * sizeof(float));
        relate_conv2d_forward_ref(yr, x, w, &d);
        relate_conv2d_backward_ref(gxr, gwr, dy, x, w, &d);
        char name[160];
        for (int b = 0; b < 2; b++) {
            const char *bn = b ? "blas" : "onednn";
            snprintf(name, sizeof name, "conv2d %s c%d o%d %dx%d k%d s%d: forward vs reference", bn, d.c, d.o, d.h,
                     d.w, d.kh, d.stride);
            relate_test_check_close(name, y[b], yr, ny, REF_BOUND);
            snprintf(name, sizeof name, "conv2d %s c%d o%d %dx%d k%d s%d: dx accumulated vs reference", bn, d.c,
                     d.o, d.h, d.w, d.kh, d.stride);
            relate_test_check_close(name, gx[b], gxr, nx, REF_BOUND);
            snprintf(name, sizeof name, "conv2d %s c%d o%d %dx%d k%d s%d: dw accumulated vs reference", bn, d.c,
                     d.o, d.h, d.w, d.kh, d.stride);
            relate_test_check_close(name, gw[b], gwr, nw, REF_BOUND);
        }
        snprintf(name, sizeof name, "conv2d c%d o%d %dx%d: onednn vs blas forward", d.c, d.o, d.h, d.w);
        relate_test_check_close(name, y[0], y[1], ny, REF_BOUND);
        snprintf(name, sizeof name, "conv2d c%d o%d %dx%d: onednn vs blas dw", d.c, d.o, d.h, d.w);
        relate_test_check_close(name, gw[0], gw[1], nw, REF_BOUND);
        for (int b = 0; b < 2; b++) {
            free(y[b]);
            free(gx[b]);
            free(gw[b]);
        }
        free(yr);
        free(gxr);
        free(gwr);
        free(x);
        free(w);
        free(dy);
        free(gx0);
        free(gw0);
    }
    relate_conv2d_set_backend(RELATE_CONV_BLAS);
    CHECK(strcmp(relate_conv2d_backend_name(), "im2col+openblas") == 0);
    relate_conv2d_set_backend(RELATE_CONV_ONEDNN_ONLY);
    CHECK(strcmp(relate_conv2d_backend_name(), "onednn") == 0);
    relate_conv2d_set_backend(RELATE_CONV_ONEDNN);
    CHECK(strcmp(relate_conv2d_backend_name(), "onednn+direct-stem") == 0);
    relate_conv2d_set_backend(keep);
}

/* The direct stem kernel (conv2d_direct.c) through the default backend: forward, and the weight
 * gradient (with no input gradient asked for, as for a stem) added to a non-zero buffer, against
 * the double reference and oneDNN alone. Widths whole and not whole in vectors (32, 28, 9, 1),
 * odd and even vector counts, 1 to 4 input channels, 4 to 16 outputs, 1 to 3 threads; scratch
 * starts as NaN, so a read of scratch the kernel did not write shows. The shapes it must refuse
 * go to oneDNN, and a CPU without AVX2 + FMA would fail the first CHECK (the shipped build
 * needs both anyway). */
void test_conv_direct(void)
{
    static const int shapes[][5] = {
        /* n, c, h, w, o */
        {6, 3, 32, 32, 8}, {5, 1, 28, 28, 8}, {3, 4, 9, 9, 4}, {2, 2, 5, 17, 16}, {4, 3, 1, 1, 4},
        {7, 3, 6, 40, 12},
    };
    const relate_conv_backend keep = relate_conv2d_get_backend();
    const int keep_threads = relate_get_threads();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *q = shapes[s];
        relate_conv2d_dims d = {.n = q[0], .c = q[1], .h = q[2], .w = q[3], .o = q[4], .kh = 3, .kw = 3,
                                .stride = 1, .pad = 1};
        CHECK(relate_conv2d_dims_init(&d) == 0);
        CHECK(relate_conv2d_direct_fits(&d));
        const size_t nx = (size_t)d.n * d.c * d.h * d.w, nw = (size_t)d.o * d.c * 9, ny = (size_t)d.n * d.o * d.h * d.w;
        float *x = frand(nx), *w = frand(nw), *dy = frand(ny), *gw0 = frand(nw);
        float *yr = falloc(ny), *gwr = falloc(nw), *y1 = falloc(ny), *gw1 = falloc(nw);
        memcpy(gwr, gw0, nw * sizeof(float));
        relate_conv2d_forward_ref(yr, x, w, &d);
        relate_conv2d_backward_ref(NULL, gwr, dy, x, w, &d);
        for (int threads = 1; threads <= 3; threads++) {
            relate_set_threads(threads);
            for (int b = 0; b < 2; b++) {
                relate_conv2d_set_backend(b ? RELATE_CONV_ONEDNN_ONLY : RELATE_CONV_ONEDNN);
                const size_t sf = relate_conv2d_scratch_floats(&d, relate_get_threads());
                float *scratch = falloc(sf), *y = falloc(ny), *gw = falloc(nw);
                for (size_t i = 0; i < sf; i++)
                    scratch[i] = NAN;
                memcpy(gw, gw0, nw * sizeof(float));
                relate_conv2d_forward(y, x, w, &d, scratch);
                relate_conv2d_backward(NULL, gw, dy, x, w, &d, scratch);
                char name[160];
                snprintf(name, sizeof name, "conv2d %s n%d c%d %dx%d o%d t%d: forward vs reference",
                         relate_conv2d_backend_name(), d.n, d.c, d.h, d.w, d.o, threads);
                relate_test_check_close(name, y, yr, ny, REF_BOUND);
                snprintf(name, sizeof name, "conv2d %s n%d c%d %dx%d o%d t%d: dw accumulated vs reference",
                         relate_conv2d_backend_name(), d.n, d.c, d.h, d.w, d.o, threads);
                relate_test_check_close(name, gw, gwr, nw, REF_BOUND);
                if (b == 0) {
                    memcpy(y1, y, ny * sizeof(float));
                    memcpy(gw1, gw, nw * sizeof(float));
                } else {
                    snprintf(name, sizeof name, "conv2d n%d c%d %dx%d o%d t%d: direct vs onednn forward", d.n, d.c,
                             d.h, d.w, d.o, threads);
                    relate_test_check_close(name, y1, y, ny, REF_BOUND);
                    snprintf(name, sizeof name, "conv2d n%d c%d %dx%d o%d t%d: direct vs onednn dw", d.n, d.c,
                             d.h, d.w, d.o, threads);
                    relate_test_check_close(name, gw1, gw, nw, REF_BOUND);
                }
                free(scratch);
                free(y);
                free(gw);
            }
        }
        /* The forward's AVX-512 and AVX2 versions give the same bits (one FMA chain per output in
         * the same order); on a CPU without AVX-512 both runs are the AVX2 one. */
        relate_set_threads(2);
        relate_conv2d_set_backend(RELATE_CONV_ONEDNN);
        float *scratch = falloc(relate_conv2d_scratch_floats(&d, relate_get_threads()));
        CHECK(relate_kernels_cap_isa("avx2") == 0 && strcmp(relate_kernels_isa_name(), "avx2") == 0);
        relate_conv2d_forward(y1, x, w, &d, scratch);
        CHECK(relate_kernels_cap_isa("avx512") == 0);
        relate_conv2d_forward(yr, x, w, &d, scratch);
        CHECK_MSG(memcmp(y1, yr, ny * sizeof(float)) == 0, "conv2d direct n%d c%d %dx%d o%d: %s forward differs from avx2",
                  d.n, d.c, d.h, d.w, d.o, relate_kernels_isa_name());
        free(scratch);
        free(x), free(w), free(dy), free(gw0), free(yr), free(gwr), free(y1), free(gw1);
    }
    CHECK(relate_kernels_cap_isa("sse") == -1);
    /* Refused: stride 2, pad 0, 5 input channels, outputs not a multiple of 4, a 5x5 kernel. */
    static const int refused[][9] = {
        {2, 3, 8, 8, 8, 3, 3, 2, 1}, {2, 3, 8, 8, 8, 3, 3, 1, 0}, {2, 5, 8, 8, 8, 3, 3, 1, 1},
        {2, 3, 8, 8, 6, 3, 3, 1, 1}, {2, 3, 8, 8, 8, 5, 5, 1, 2},
    };
    for (size_t s = 0; s < sizeof refused / sizeof refused[0]; s++) {
        const int *q = refused[s];
        relate_conv2d_dims d = {.n = q[0], .c = q[1], .h = q[2], .w = q[3], .o = q[4], .kh = q[5], .kw = q[6],
                                .stride = q[7], .pad = q[8]};
        CHECK(relate_conv2d_dims_init(&d) == 0);
        CHECK(!relate_conv2d_direct_fits(&d));
        CHECK(relate_conv2d_direct_forward(NULL, NULL, NULL, &d, NULL) == -1);
    }
    relate_set_threads(keep_threads);
    relate_conv2d_set_backend(keep);
}

/* oneDNN fixes its work split (and so the summation order of dW) when a primitive is created:
 * a result must depend on the thread count it runs at, not on which count first met the shape. */
void test_conv_thread_history(void)
{
    const relate_conv_backend keep = relate_conv2d_get_backend();
    const int threads = relate_get_threads();
    relate_conv2d_set_backend(RELATE_CONV_ONEDNN);
    relate_conv2d_dims d = {.n = 16, .c = 16, .h = 16, .w = 16, .o = 16, .kh = 3, .kw = 3, .stride = 1, .pad = 1};
    CHECK(relate_conv2d_dims_init(&d) == 0);
    const size_t nx = (size_t)d.n * d.c * d.h * d.w, nw = (size_t)d.o * d.c * d.kh * d.kw,
                 ny = (size_t)d.n * d.o * d.ho * d.wo;
    float *x = frand(nx), *w = frand(nw), *dy = frand(ny), *gw[2], *gx[2];
    for (int k = 0; k < 2; k++) {
        relate_conv2d_onednn_clear_cache();
        if (k == 1) { /* first meeting at 3 threads, then the run at 1 */
            relate_set_threads(3);
            float *scratch = falloc(relate_conv2d_scratch_floats(&d, 3));
            float *t = falloc(nw);
            relate_conv2d_backward(NULL, t, dy, x, w, &d, scratch);
            free(t);
            free(scratch);
        }
        relate_set_threads(1);
        float *scratch = falloc(relate_conv2d_scratch_floats(&d, 1));
        gw[k] = falloc(nw);
        gx[k] = falloc(nx);
        relate_conv2d_backward(gx[k], gw[k], dy, x, w, &d, scratch);
        free(scratch);
    }
    check_bits("dw", "conv2d at 1 thread after 3", gw[0], gw[1], nw * sizeof(float));
    check_bits("dx", "conv2d at 1 thread after 3", gx[0], gx[1], nx * sizeof(float));
    for (int k = 0; k < 2; k++) {
        free(gw[k]);
        free(gx[k]);
    }
    free(x);
    free(w);
    free(dy);
    relate_set_threads(threads);
    relate_conv2d_set_backend(keep);
}

void test_conv_dims(void)
{
    relate_conv2d_dims ok = {.n = 2, .c = 3, .h = 7, .w = 5, .o = 4, .kh = 3, .kw = 3, .stride = 2, .pad = 1};
    CHECK(relate_conv2d_dims_init(&ok) == 0 && ok.ho == 4 && ok.wo == 3);
    relate_conv2d_dims big = {.n = 1, .c = 1, .h = 224, .w = 224, .o = 1, .kh = 7, .kw = 7, .stride = 2, .pad = 3};
    CHECK(relate_conv2d_dims_init(&big) == 0 && big.ho == 112 && big.wo == 112);
    const relate_conv2d_dims bad[] = {
        {.n = 1, .c = 1, .h = 2, .w = 5, .o = 1, .kh = 3, .kw = 3, .stride = 1, .pad = 0}, /* kernel taller */
        {.n = 1, .c = 1, .h = 5, .w = 2, .o = 1, .kh = 3, .kw = 3, .stride = 1, .pad = 0}, /* kernel wider */
        {.n = 1, .c = 1, .h = 5, .w = 5, .o = 1, .kh = 3, .kw = 3, .stride = 0, .pad = 0},
        {.n = 1, .c = 1, .h = 5, .w = 5, .o = 1, .kh = 3, .kw = 3, .stride = 1, .pad = -1},
        {.n = 1, .c = 1, .h = 5, .w = 5, .o = 1, .kh = 0, .kw = 3, .stride = 1, .pad = 0},
        {.n = 1, .c = 1, .h = 5, .w = 5, .o = 1, .kh = 3, .kw = 0, .stride = 1, .pad = 0},
        {.n = 0, .c = 1, .h = 5, .w = 5, .o = 1, .kh = 3, .kw = 3, .stride = 1, .pad = 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        relate_conv2d_dims d = bad[i];
        CHECK_MSG(relate_conv2d_dims_init(&d) == -1, "bad conv dims #%zu accepted", i);
    }
}

/* The direct backward of a convolution from a few NCHW channels into nChw16c outputs (conv4's
 * layer 2 in the blocked layout), through relate_conv2d_backward_ex as the graph calls it: dx
 * stored and added, dw added, at 1 to 3 threads, against the double reference; widths that are
 * one vector, several, and not whole, odd channel counts, odd heights. On a CPU without
 * AVX-512 the shapes go to oneDNN, and the same checks run on it. */
void test_conv_direct_backward(void)
{
    static const int shapes[][5] = {
        /* n, c, h, w, o */
        {5, 8, 16, 16, 16}, {3, 3, 7, 9, 32}, {4, 8, 14, 14, 16}, {2, 5, 1, 1, 16}, {3, 8, 5, 20, 16}, {2, 1, 3, 33, 16},
    };
    const bool avx512 = relate_kernels_isa() == RELATE_ISA_AVX512;
    const int keep_threads = relate_get_threads();
    const relate_conv_backend keep = relate_conv2d_get_backend();
    relate_conv2d_set_backend(RELATE_CONV_ONEDNN);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *q = shapes[s];
        relate_conv2d_dims d = {.n = q[0], .c = q[1], .h = q[2], .w = q[3], .o = q[4], .kh = 3, .kw = 3,
                                .stride = 1, .pad = 1, .blocked = RELATE_CONV_BLOCKED_Y};
        CHECK(relate_conv2d_dims_init(&d) == 0);
        CHECK_MSG(relate_conv2d_direct_backward_fits(&d) == avx512, "direct backward n%d c%d %dx%d o%d: fits %d on %s",
                  d.n, d.c, d.h, d.w, d.o, relate_conv2d_direct_backward_fits(&d), relate_kernels_isa_name());
        const size_t nx = (size_t)d.n * d.c * d.h * d.w, nw = (size_t)d.o * d.c * 9, ny = (size_t)d.n * d.o * d.h * d.w;
        float *x = frand(nx), *w = frand(nw), *dy = frand(ny), *dyb = falloc(ny), *dx0 = frand(nx), *dw0 = frand(nw);
        float *dxr = falloc(nx), *dwr = falloc(nw), *dxa = falloc(nx);
        relate_nchw_to_blocked16(dyb, dy, d.n, d.o, d.h * d.w, false);
        memcpy(dwr, dw0, nw * sizeof(float));
        relate_conv2d_backward_ref(dxr, dwr, dy, x, w, &d);
        for (size_t i = 0; i < nx; i++)
            dxa[i] = dx0[i] + dxr[i];
        for (int threads = 1; threads <= 3; threads++) {
            relate_set_threads(threads);
            const size_t sf = relate_conv2d_scratch_floats(&d, threads);
            float *scratch = falloc(sf), *dx = falloc(nx), *dw = falloc(nw);
            for (size_t i = 0; i < sf; i++)
                scratch[i] = NAN;
            for (int store = 0; store < 2; store++) {
                for (size_t i = 0; i < nx; i++)
                    dx[i] = store ? NAN : dx0[i];
                memcpy(dw, dw0, nw * sizeof(float));
                relate_conv2d_backward_ex(dx, dw, dyb, x, w, &d, scratch, store);
                char name[160];
                snprintf(name, sizeof name, "conv2d backward to nChw16c n%d c%d %dx%d o%d t%d: dx %s vs reference", d.n,
                         d.c, d.h, d.w, d.o, threads, store ? "stored" : "added");
                relate_test_check_close(name, dx, store ? dxr : dxa, nx, REF_BOUND);
                snprintf(name, sizeof name, "conv2d backward to nChw16c n%d c%d %dx%d o%d t%d: dw added vs reference",
                         d.n, d.c, d.h, d.w, d.o, threads);
                relate_test_check_close(name, dw, dwr, nw, REF_BOUND);
            }
            /* Each gradient alone. */
            memcpy(dw, dw0, nw * sizeof(float));
            relate_conv2d_backward_ex(NULL, dw, dyb, x, w, &d, scratch, false);
            relate_test_check_close("conv2d backward to nChw16c: dw alone", dw, dwr, nw, REF_BOUND);
            relate_conv2d_backward_ex(dx, NULL, dyb, x, w, &d, scratch, true);
            relate_test_check_close("conv2d backward to nChw16c: dx alone", dx, dxr, nx, REF_BOUND);
            free(scratch), free(dx), free(dw);
        }
        free(x), free(w), free(dy), free(dyb), free(dx0), free(dw0), free(dxr), free(dwr), free(dxa);
    }
    if (!avx512)
        printf("note: this CPU has no AVX-512; the direct backward was not run (oneDNN computed these)\n");
    /* Refused: 9 input channels, a plain y, a blocked x. */
    relate_conv2d_dims d = {.n = 2, .c = 9, .h = 4, .w = 4, .o = 16, .kh = 3, .kw = 3, .stride = 1, .pad = 1,
                            .blocked = RELATE_CONV_BLOCKED_Y};
    CHECK(relate_conv2d_dims_init(&d) == 0 && !relate_conv2d_direct_backward_fits(&d));
    d.c = 8;
    d.blocked = 0;
    CHECK(!relate_conv2d_direct_backward_fits(&d));
    d.c = 16;
    d.blocked = RELATE_CONV_BLOCKED_X | RELATE_CONV_BLOCKED_Y;
    CHECK(!relate_conv2d_direct_backward_fits(&d));
    CHECK(relate_conv2d_direct_backward(NULL, NULL, NULL, NULL, NULL, &d, NULL, false) == -1);
    relate_set_threads(keep_threads);
    relate_conv2d_set_backend(keep);
}
