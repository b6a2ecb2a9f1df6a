/* test_kernels.c: checks every kernel of kernels.h against naive double references, float32 finite
 * differences, the accumulate/NULL conventions, shape rejection, thread counts and determinism.
 * Not a whole-model PyTorch golden test (only a few loss values from PyTorch 1.13 are embedded). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/conv2d_internal.h"
#include "kernels/kernels.h"
#include "test_util.h"

#define MAXIN 4
#define FD_PROBES 40
/* Fast kernels against their double-precision references: float32 rounding of sums of at most a
 * few thousand terms stays far below this. */
#define REF_BOUND 1e-5
/* Finite differences are taken in float32 (the kernels' precision) with central steps h of
 * 1e-2..1e-3: for ops linear in the perturbed input the truncation term vanishes and only float
 * rounding of the touched outputs divided by 2h remains (~1e-5 relative); for curved ops
 * (batch norm, softmax, losses) the O(h^2) truncation adds ~1e-4. 1e-2 leaves a wide margin while
 * still catching any wrong term (those show up as O(1) errors). Kinks (relu, leaky relu, max,
 * maximum) are kept out of reach by constructing inputs at least 2h away from them. */
#define FD_BOUND 1e-2

static uint64_t seed_ctr = 1;

static float *falloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p)
        abort();
    return p;
}

static float *frand(size_t n)
{
    float *p = falloc(n);
    relate_test_fill(p, n, seed_ctr++);
    return p;
}

static double dotd(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* Moves every value at least `gap` away from 0, keeping its sign. */
static void push_from_zero(float *x, size_t n, float gap)
{
    for (size_t i = 0; i < n; i++)
        x[i] += x[i] >= 0 ? gap : -gap;
}

/* Distinct values spaced `gap` apart in a scrambled order: no ties anywhere for max pooling. */
static void distinct_fill(float *x, size_t n, float gap)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)((i * 7919u + 13u) % n) - 0.5 * (double)n) * gap;
}

/* ------------------------------------------------------------------ generic harness */
/* One differentiable op instance: inputs, its forward (y = f(inputs), state into aux), its
 * backward (accumulating into g[j], NULL skipped) and an optional naive reference that writes the
 * forward and the gradients into zeroed buffers. */
typedef struct tcase tcase;
struct tcase {
    const char *name;
    int nin;
    float *in[MAXIN];
    size_t nel[MAXIN];
    size_t ny;
    void (*fwd)(tcase *c, float *y);
    void (*bwd)(tcase *c, float *const *g, const float *dy);
    void (*ref)(tcase *c, float *y, float *const *g, const float *dy);
    void *aux;
    float h;
};

static void check_bits(const char *what, const char *name, const void *a, const void *b, size_t bytes)
{
    CHECK_MSG(memcmp(a, b, bytes) == 0, "%s: %s not bit-identical across two runs", name, what);
}

/* Runs the whole battery on one op; `fd` enables the finite-difference part. */
static void run_case(tcase *c, int fd)
{
    char nm[256];
    float *r = frand(c->ny), *y = falloc(c->ny), *y2 = falloc(c->ny);
    float *g[MAXIN] = {0}, *g2[MAXIN] = {0}, *acc[MAXIN] = {0}, *want[MAXIN] = {0},
          *nul[MAXIN] = {0};
    c->fwd(c, y);
    c->fwd(c, y2);
    check_bits("forward", c->name, y, y2, c->ny * sizeof(float));
    for (int j = 0; j < c->nin; j++) {
        g[j] = falloc(c->nel[j]);
        g2[j] = falloc(c->nel[j]);
    }
    c->bwd(c, g, r);
    c->bwd(c, g2, r);
    for (int j = 0; j < c->nin; j++)
        check_bits("backward", c->name, g[j], g2[j], c->nel[j] * sizeof(float));

    if (c->ref) {
        float *yr = falloc(c->ny), *gr[MAXIN] = {0};
        for (int j = 0; j < c->nin; j++)
            gr[j] = falloc(c->nel[j]);
        c->ref(c, yr, gr, r);
        snprintf(nm, sizeof nm, "%s: forward vs reference", c->name);
        relate_test_check_close(nm, y, yr, c->ny, REF_BOUND);
        for (int j = 0; j < c->nin; j++) {
            snprintf(nm, sizeof nm, "%s: grad of input %d vs reference", c->name, j);
            relate_test_check_close(nm, g[j], gr[j], c->nel[j], REF_BOUND);
            free(gr[j]);
        }
        free(yr);
    }

    /* Accumulate: a second backward onto arbitrary existing gradients must add to them. */
    for (int j = 0; j < c->nin; j++) {
        acc[j] = frand(c->nel[j]);
        want[j] = falloc(c->nel[j]);
        for (size_t i = 0; i < c->nel[j]; i++)
            want[j][i] = acc[j][i] + g[j][i];
    }
    c->bwd(c, acc, r);
    for (int j = 0; j < c->nin; j++) {
        snprintf(nm, sizeof nm, "%s: backward accumulates into input %d", c->name, j);
        relate_test_check_close(nm, acc[j], want[j], c->nel[j], 1e-6);
    }
    /* NULL skip: each gradient alone equals its share of the full backward; none at all must
     * neither crash nor touch anything (ASan builds watch the writes). */
    if (c->nin > 1) {
        for (int j = 0; j < c->nin; j++) {
            float *only[MAXIN] = {0};
            only[j] = falloc(c->nel[j]);
            c->bwd(c, only, r);
            snprintf(nm, sizeof nm, "%s: backward with only input %d", c->name, j);
            relate_test_check_close(nm, only[j], g[j], c->nel[j], 1e-6);
            free(only[j]);
        }
    }
    c->bwd(c, nul, r);

    if (fd) {
        double num[FD_PROBES], ana[FD_PROBES];
        for (int j = 0; j < c->nin; j++) {
            const size_t n = c->nel[j], probes = n < FD_PROBES ? n : FD_PROBES;
            for (size_t k = 0; k < probes; k++) {
                const size_t i = k * n / probes;
                const float s = c->in[j][i], up = s + c->h, dn = s - c->h;
                c->in[j][i] = up;
                c->fwd(c, y2);
                const double lp = dotd(y2, r, c->ny);
                c->in[j][i] = dn;
                c->fwd(c, y2);
                const double lm = dotd(y2, r, c->ny);
                c->in[j][i] = s;
                num[k] = (lp - lm) / ((double)up - (double)dn);
                ana[k] = g[j][i];
            }
            const double e = relate_test_rel_err_f64(ana, num, probes);
            CHECK_MSG(e <= FD_BOUND, "%s: finite differences of input %d: rel err %.3g", c->name, j, e);
            if (getenv("RELATE_TEST_VERBOSE"))
                printf("%s: FD input %d rel err %.3g\n", c->name, j, e);
        }
        c->fwd(c, y2); /* leave aux state (saved stats, argmax) as of the true inputs */
    }
    for (int j = 0; j < c->nin; j++) {
        free(g[j]);
        free(g2[j]);
        free(acc[j]);
        free(want[j]);
    }
    free(r);
    free(y);
    free(y2);
}

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

static void test_conv(int fd)
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
static void test_conv_backends(void)
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
static void test_conv_direct(void)
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
static void test_conv_thread_history(void)
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

static void test_conv_dims(void)
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

/* ------------------------------------------------------------------ batch norm */
typedef struct {
    int n, c, hw;
    float momentum, eps;
    float *mean, *invstd, *rm, *rv;
} bn_aux;

static void bn_train_fwd(tcase *c, float *y)
{
    bn_aux *a = c->aux;
    relate_batchnorm_forward_train(y, a->mean, a->invstd, c->in[0], c->in[1], c->in[2], a->rm, a->rv,
                                   a->n, a->c, a->hw, a->momentum, a->eps);
}

static void bn_train_bwd(tcase *c, float *const *g, const float *dy)
{
    bn_aux *a = c->aux;
    relate_batchnorm_backward_train(g[0], g[1], g[2], dy, c->in[0], a->mean, a->invstd, c->in[1],
                                    a->n, a->c, a->hw);
}

#define BN_AT(i, ch, j) (((size_t)(i) * a->c + (ch)) * a->hw + (j))

static void bn_train_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    bn_aux *a = c->aux;
    const float *x = c->in[0], *gamma = c->in[1], *beta = c->in[2];
    const double m = (double)a->n * a->hw;
    for (int ch = 0; ch < a->c; ch++) {
        double s = 0, v = 0, sdy = 0, sdyx = 0;
        for (int i = 0; i < a->n; i++)
            for (int j = 0; j < a->hw; j++)
                s += x[BN_AT(i, ch, j)];
        const double mean = s / m;
        for (int i = 0; i < a->n; i++)
            for (int j = 0; j < a->hw; j++)
                v += (x[BN_AT(i, ch, j)] - mean) * (x[BN_AT(i, ch, j)] - mean);
        const double inv = 1 / sqrt(v / m + a->eps);
        for (int i = 0; i < a->n; i++)
            for (int j = 0; j < a->hw; j++) {
                const double xh = (x[BN_AT(i, ch, j)] - mean) * inv;
                y[BN_AT(i, ch, j)] = (float)(xh * gamma[ch] + beta[ch]);
                sdy += dy[BN_AT(i, ch, j)];
                sdyx += dy[BN_AT(i, ch, j)] * xh;
            }
        for (int i = 0; i < a->n; i++)
            for (int j = 0; j < a->hw; j++) {
                const double xh = (x[BN_AT(i, ch, j)] - mean) * inv;
                g[0][BN_AT(i, ch, j)] =
                    (float)(gamma[ch] * inv / m * (m * dy[BN_AT(i, ch, j)] - sdy - xh * sdyx));
            }
        g[1][ch] = (float)sdyx;
        g[2][ch] = (float)sdy;
    }
}

static void bn_eval_fwd(tcase *c, float *y)
{
    bn_aux *a = c->aux;
    relate_batchnorm_forward_eval(y, c->in[0], c->in[1], c->in[2], a->rm, a->rv, a->n, a->c, a->hw, a->eps);
}

static void bn_eval_bwd(tcase *c, float *const *g, const float *dy)
{
    bn_aux *a = c->aux;
    relate_batchnorm_backward_eval(g[0], g[1], g[2], dy, c->in[0], c->in[1], a->rm, a->rv, a->n,
                                   a->c, a->hw, a->eps);
}

static void bn_eval_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    bn_aux *a = c->aux;
    const float *x = c->in[0], *gamma = c->in[1], *beta = c->in[2];
    for (int ch = 0; ch < a->c; ch++) {
        const double inv = 1 / sqrt((double)a->rv[ch] + a->eps);
        double sdy = 0, sdyx = 0;
        for (int i = 0; i < a->n; i++)
            for (int j = 0; j < a->hw; j++) {
                const size_t k = BN_AT(i, ch, j);
                const double xh = (x[k] - (double)a->rm[ch]) * inv;
                y[k] = (float)(xh * gamma[ch] + beta[ch]);
                g[0][k] = (float)(dy[k] * gamma[ch] * inv);
                sdy += dy[k];
                sdyx += dy[k] * xh;
            }
        g[1][ch] = (float)sdyx;
        g[2][ch] = (float)sdy;
    }
}

static void test_batchnorm(int fd)
{
    static const int shapes[][3] = {{2, 3, 5}, {4, 2, 1}, {3, 70, 1}, {1, 3, 6}, {5, 4, 9}, {4, 16, 1024}, {300, 130, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int n = shapes[s][0], c = shapes[s][1], hw = shapes[s][2];
        const size_t tot = (size_t)n * c * hw;
        bn_aux a = {.n = n, .c = c, .hw = hw, .momentum = 0.1f, .eps = 1e-5f, .mean = falloc(c),
                    .invstd = falloc(c), .rm = frand(c), .rv = frand(c)};
        for (int i = 0; i < c; i++)
            a.rv[i] = 0.5f + fabsf(a.rv[i]);
        float *x = frand(tot), *gamma = frand(c), *beta = frand(c);
        for (size_t i = 0; i < tot; i++)
            x[i] = 2.0f * x[i] + 0.5f; /* a nonzero mean and non-unit variance */
        char name[128];

        /* Running statistics: one training step from known values, against the documented rule. */
        {
            float *rm0 = malloc(c * sizeof(float)), *rv0 = malloc(c * sizeof(float));
            float *y = falloc(tot), *y2 = falloc(tot), *mean2 = falloc(c), *inv2 = falloc(c);
            float *wrm = falloc(c), *wrv = falloc(c), *wmean = falloc(c), *winv = falloc(c);
            memcpy(rm0, a.rm, c * sizeof(float));
            memcpy(rv0, a.rv, c * sizeof(float));
            relate_batchnorm_forward_train(y, a.mean, a.invstd, x, gamma, beta, a.rm, a.rv, n, c, hw,
                                           a.momentum, a.eps);
            const double m = (double)n * hw;
            for (int ch = 0; ch < c; ch++) {
                double su = 0, v = 0;
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < hw; j++)
                        su += x[((size_t)i * c + ch) * hw + j];
                const double mu = su / m;
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < hw; j++) {
                        const double d = x[((size_t)i * c + ch) * hw + j] - mu;
                        v += d * d;
                    }
                wmean[ch] = (float)mu;
                winv[ch] = (float)(1 / sqrt(v / m + a.eps));
                wrm[ch] = (float)(0.9 * rm0[ch] + 0.1 * mu);
                wrv[ch] = (float)(0.9 * rv0[ch] + 0.1 * (m > 1 ? v / (m - 1) : 0));
            }
            snprintf(name, sizeof name, "batchnorm n%d c%d hw%d: saved mean", n, c, hw);
            relate_test_check_close(name, a.mean, wmean, c, REF_BOUND);
            snprintf(name, sizeof name, "batchnorm n%d c%d hw%d: saved invstd", n, c, hw);
            relate_test_check_close(name, a.invstd, winv, c, REF_BOUND);
            if (m > 1) {
                snprintf(name, sizeof name, "batchnorm n%d c%d hw%d: running mean", n, c, hw);
                relate_test_check_close(name, a.rm, wrm, c, REF_BOUND);
                snprintf(name, sizeof name, "batchnorm n%d c%d hw%d: running var (unbiased)", n, c, hw);
                relate_test_check_close(name, a.rv, wrv, c, REF_BOUND);
            }
            /* No tracking: same output and saved statistics. */
            relate_batchnorm_forward_train(y2, mean2, inv2, x, gamma, beta, NULL, NULL, n, c, hw,
                                           a.momentum, a.eps);
            CHECK(memcmp(y, y2, tot * sizeof(float)) == 0);
            CHECK(memcmp(a.mean, mean2, c * sizeof(float)) == 0 && memcmp(a.invstd, inv2, c * sizeof(float)) == 0);
            free(rm0), free(rv0), free(y), free(y2), free(mean2), free(inv2);
            free(wrm), free(wrv), free(wmean), free(winv);
        }

        if (n * hw > 1) { /* PyTorch refuses training mode with one value per channel */
            snprintf(name, sizeof name, "batchnorm train n%d c%d hw%d t%d", n, c, hw, relate_get_threads());
            tcase t = {.name = name, .nin = 3, .in = {x, gamma, beta}, .nel = {tot, c, c}, .ny = tot,
                       .fwd = bn_train_fwd, .bwd = bn_train_bwd, .ref = bn_train_ref, .aux = &a,
                       .h = 1e-2f};
            run_case(&t, fd && tot < 100000);
        }
        snprintf(name, sizeof name, "batchnorm eval n%d c%d hw%d t%d", n, c, hw, relate_get_threads());
        tcase e = {.name = name, .nin = 3, .in = {x, gamma, beta}, .nel = {tot, c, c}, .ny = tot,
                   .fwd = bn_eval_fwd, .bwd = bn_eval_bwd, .ref = bn_eval_ref, .aux = &a, .h = 1e-2f};
        run_case(&e, fd && tot < 100000);
        free(x), free(gamma), free(beta), free(a.mean), free(a.invstd), free(a.rm), free(a.rv);
    }
}

/* ------------------------------------------------------------------ pooling */
typedef struct {
    relate_pool2d_dims d;
    int32_t *argmax;
    int hw; /* global pool */
} pool_aux;

static void avg_fwd(tcase *c, float *y)
{
    pool_aux *a = c->aux;
    relate_avgpool2d_forward(y, c->in[0], &a->d);
}

static void avg_bwd(tcase *c, float *const *g, const float *dy)
{
    pool_aux *a = c->aux;
    relate_avgpool2d_backward(g[0], dy, &a->d);
}

/* Output (oy, ox) covers input (iy, ix) iff the window start is within k-1 before it. */
static int covers(const relate_pool2d_dims *d, int oy, int ox, int iy, int ix)
{
    const int y0 = oy * d->stride - d->pad, x0 = ox * d->stride - d->pad;
    return iy >= y0 && iy < y0 + d->k && ix >= x0 && ix < x0 + d->k;
}

static void avg_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    pool_aux *a = c->aux;
    const relate_pool2d_dims *d = &a->d;
    for (int p = 0; p < d->n * d->c; p++) {
        const float *xp = c->in[0] + (size_t)p * d->h * d->w;
        for (int oy = 0; oy < d->ho; oy++)
            for (int ox = 0; ox < d->wo; ox++) {
                double s = 0;
                for (int iy = 0; iy < d->h; iy++)
                    for (int ix = 0; ix < d->w; ix++)
                        if (covers(d, oy, ox, iy, ix))
                            s += xp[iy * d->w + ix];
                y[((size_t)p * d->ho + oy) * d->wo + ox] = (float)(s / (d->k * d->k));
            }
        for (int iy = 0; iy < d->h; iy++)
            for (int ix = 0; ix < d->w; ix++) {
                double s = 0;
                for (int oy = 0; oy < d->ho; oy++)
                    for (int ox = 0; ox < d->wo; ox++)
                        if (covers(d, oy, ox, iy, ix))
                            s += dy[((size_t)p * d->ho + oy) * d->wo + ox];
                g[0][((size_t)p * d->h + iy) * d->w + ix] = (float)(s / (d->k * d->k));
            }
    }
}

static void max_fwd(tcase *c, float *y)
{
    pool_aux *a = c->aux;
    relate_maxpool2d_forward(y, a->argmax, c->in[0], &a->d);
}

static void max_bwd(tcase *c, float *const *g, const float *dy)
{
    pool_aux *a = c->aux;
    relate_maxpool2d_backward(g[0], dy, a->argmax, &a->d);
}

static void max_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    pool_aux *a = c->aux;
    const relate_pool2d_dims *d = &a->d;
    for (int p = 0; p < d->n * d->c; p++) {
        const float *xp = c->in[0] + (size_t)p * d->h * d->w;
        for (int oy = 0; oy < d->ho; oy++)
            for (int ox = 0; ox < d->wo; ox++) {
                int best = -1;
                for (int iy = 0; iy < d->h; iy++)
                    for (int ix = 0; ix < d->w; ix++)
                        if (covers(d, oy, ox, iy, ix) && (best < 0 || xp[iy * d->w + ix] > xp[best]))
                            best = iy * d->w + ix;
                const size_t o = ((size_t)p * d->ho + oy) * d->wo + ox;
                y[o] = xp[best];
                CHECK_MSG(a->argmax[o] == best, "%s: argmax %d, want %d", c->name, a->argmax[o], best);
                g[0][(size_t)p * d->h * d->w + best] += dy[o];
            }
    }
}

static void gap_fwd(tcase *c, float *y)
{
    pool_aux *a = c->aux;
    relate_global_avgpool_forward(y, c->in[0], a->d.n, a->d.c, a->hw);
}

static void gap_bwd(tcase *c, float *const *g, const float *dy)
{
    pool_aux *a = c->aux;
    relate_global_avgpool_backward(g[0], dy, a->d.n, a->d.c, a->hw);
}

static void gap_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    pool_aux *a = c->aux;
    for (int r = 0; r < a->d.n * a->d.c; r++) {
        double s = 0;
        for (int j = 0; j < a->hw; j++)
            s += c->in[0][(size_t)r * a->hw + j];
        y[r] = (float)(s / a->hw);
        for (int j = 0; j < a->hw; j++)
            g[0][(size_t)r * a->hw + j] = (float)((double)dy[r] / a->hw);
    }
}

static void test_pool(int fd)
{
    static const int shapes[][7] = {
        /* n, c, h, w, k, stride, pad */
        {2, 3, 7, 7, 3, 2, 1}, {1, 3, 8, 9, 2, 2, 0}, {2, 2, 5, 5, 3, 1, 1}, {1, 1, 1, 1, 1, 1, 0},
        {2, 3, 11, 10, 3, 3, 1}, {1, 2, 6, 6, 5, 1, 2}, {2, 8, 48, 48, 3, 2, 1},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *q = shapes[s];
        pool_aux a = {.d = {.n = q[0], .c = q[1], .h = q[2], .w = q[3], .k = q[4], .stride = q[5], .pad = q[6]}};
        CHECK(relate_pool2d_dims_init(&a.d) == 0);
        const size_t nin = (size_t)a.d.n * a.d.c * a.d.h * a.d.w;
        const size_t nout = (size_t)a.d.n * a.d.c * a.d.ho * a.d.wo;
        a.argmax = malloc((nout ? nout : 1) * sizeof(int32_t));
        char name[128];
        snprintf(name, sizeof name, "avgpool n%d c%d %dx%d k%d s%d p%d t%d", q[0], q[1], q[2], q[3],
                 q[4], q[5], q[6], relate_get_threads());
        tcase t = {.name = name, .nin = 1, .in = {frand(nin)}, .nel = {nin}, .ny = nout,
                   .fwd = avg_fwd, .bwd = avg_bwd, .ref = avg_ref, .aux = &a, .h = 1e-2f};
        run_case(&t, fd);
        /* Distinct values 1e-2 apart, probed with h = 1e-3: the winner never changes. */
        distinct_fill(t.in[0], nin, 1e-2f);
        t.name = name;
        snprintf(name, sizeof name, "maxpool n%d c%d %dx%d k%d s%d p%d t%d", q[0], q[1], q[2], q[3],
                 q[4], q[5], q[6], relate_get_threads());
        t.fwd = max_fwd, t.bwd = max_bwd, t.ref = max_ref, t.h = 1e-3f;
        run_case(&t, fd);
        free(t.in[0]);
        free(a.argmax);

        a.hw = q[2] * q[3];
        snprintf(name, sizeof name, "global avgpool n%d c%d hw%d t%d", q[0], q[1], a.hw, relate_get_threads());
        tcase gp = {.name = name, .nin = 1, .in = {frand(nin)}, .nel = {nin},
                    .ny = (size_t)a.d.n * a.d.c, .fwd = gap_fwd, .bwd = gap_bwd, .ref = gap_ref,
                    .aux = &a, .h = 1e-2f};
        run_case(&gp, fd);
        free(gp.in[0]);
    }

    /* Ties keep the first in scan order; NaN wins; padding never wins over real -inf inputs. */
    relate_pool2d_dims d = {.n = 1, .c = 1, .h = 3, .w = 3, .k = 3, .stride = 1, .pad = 1};
    CHECK(relate_pool2d_dims_init(&d) == 0 && d.ho == 3 && d.wo == 3);
    float x[9] = {1, 5, 5, 5, 2, 0, 0, 0, 0}, y[9];
    int32_t am[9];
    relate_maxpool2d_forward(y, am, x, &d);
    CHECK(y[4] == 5 && am[4] == 1 && am[0] == 1 && am[3] == 1);
    x[8] = NAN;
    relate_maxpool2d_forward(y, am, x, &d);
    CHECK(isnan(y[4]) && am[4] == 8 && isnan(y[8]) && !isnan(y[0]));
    for (int i = 0; i < 9; i++)
        x[i] = -INFINITY;
    relate_maxpool2d_forward(y, am, x, &d);
    CHECK(y[0] == -INFINITY && am[0] == 0 && am[8] == 4);
}

static void test_pool_dims(void)
{
    relate_pool2d_dims ok = {.n = 1, .c = 1, .h = 112, .w = 112, .k = 3, .stride = 2, .pad = 1};
    CHECK(relate_pool2d_dims_init(&ok) == 0 && ok.ho == 56 && ok.wo == 56);
    relate_pool2d_dims fl = {.n = 1, .c = 1, .h = 8, .w = 9, .k = 2, .stride = 2, .pad = 0};
    CHECK(relate_pool2d_dims_init(&fl) == 0 && fl.ho == 4 && fl.wo == 4); /* floor mode */
    const relate_pool2d_dims bad[] = {
        {.n = 1, .c = 1, .h = 5, .w = 5, .k = 3, .stride = 1, .pad = 2}, /* pad > k/2 */
        {.n = 1, .c = 1, .h = 2, .w = 5, .k = 3, .stride = 1, .pad = 0}, /* window taller */
        {.n = 1, .c = 1, .h = 5, .w = 2, .k = 3, .stride = 1, .pad = 0},
        {.n = 1, .c = 1, .h = 5, .w = 5, .k = 3, .stride = 0, .pad = 0},
        {.n = 1, .c = 1, .h = 5, .w = 5, .k = 0, .stride = 1, .pad = 0},
        {.n = 1, .c = 1, .h = 5, .w = 5, .k = 3, .stride = 1, .pad = -1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        relate_pool2d_dims d = bad[i];
        CHECK_MSG(relate_pool2d_dims_init(&d) == -1, "bad pool dims #%zu accepted", i);
    }
}

/* ------------------------------------------------------------------ element-wise and activations */
enum { U_RELU, U_LEAKY, U_SIGMOID, U_EXP, U_LOG, U_SCALE, U_SUM, B_ADD, B_MUL, B_MAX };
static const char *const ew_names[] = {"relu", "leaky_relu", "sigmoid", "exp", "log", "scale/axpy",
                                      "sum/fill_add", "add/axpy", "mul", "maximum"};

typedef struct {
    int op;
    float alpha;
    float *tmp;
} ew_aux;

static void ew_fwd(tcase *c, float *y)
{
    ew_aux *a = c->aux;
    const float *x = c->in[0], *b = c->in[1];
    const size_t n = c->nel[0];
    switch (a->op) {
    case U_RELU: relate_relu_forward(y, x, n); break;
    case U_LEAKY: relate_leaky_relu_forward(y, x, a->alpha, n); break;
    case U_SIGMOID: relate_sigmoid_forward(y, x, n); break;
    case U_EXP: relate_exp_forward(y, x, n); break;
    case U_LOG: relate_log_forward(y, x, n); break;
    case U_SCALE: relate_scale_forward(y, x, a->alpha, n); break;
    case U_SUM: y[0] = relate_sum_forward(x, n); break;
    case B_ADD: relate_add_forward(y, x, b, n); break;
    case B_MUL: relate_mul_forward(y, x, b, n); break;
    case B_MAX: relate_maximum_forward(y, x, b, n); break;
    }
}

static void ew_bwd(tcase *c, float *const *g, const float *dy)
{
    ew_aux *a = c->aux;
    const float *x = c->in[0], *b = c->in[1];
    const size_t n = c->nel[0];
    switch (a->op) {
    case U_RELU:
        relate_relu_forward(a->tmp, x, n);
        relate_relu_backward(g[0], dy, a->tmp, n);
        break;
    case U_LEAKY: relate_leaky_relu_backward(g[0], dy, x, a->alpha, n); break;
    case U_SIGMOID:
        relate_sigmoid_forward(a->tmp, x, n);
        relate_sigmoid_backward(g[0], dy, a->tmp, n);
        break;
    case U_EXP:
        relate_exp_forward(a->tmp, x, n);
        relate_exp_backward(g[0], dy, a->tmp, n);
        break;
    case U_LOG: relate_log_backward(g[0], dy, x, n); break;
    case U_SCALE: relate_axpy(g[0], dy, a->alpha, n); break;
    case U_SUM: relate_fill_add(g[0], dy[0], n); break;
    case B_ADD:
        relate_axpy(g[0], dy, 1.0f, n);
        relate_axpy(g[1], dy, 1.0f, n);
        break;
    case B_MUL: relate_mul_backward(g[0], g[1], dy, x, b, n); break;
    case B_MAX: relate_maximum_backward(g[0], g[1], dy, x, b, n); break;
    }
}

static void ew_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    ew_aux *a = c->aux;
    const float *x = c->in[0], *b = c->in[1];
    const size_t n = c->nel[0];
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        const double v = x[i], w = b ? b[i] : 0, gy = a->op == U_SUM ? dy[0] : dy[i];
        double out = 0, gx = 0, gb = 0;
        switch (a->op) {
        case U_RELU: out = v > 0 ? v : 0, gx = v > 0 ? gy : 0; break;
        case U_LEAKY: out = v > 0 ? v : a->alpha * v, gx = v > 0 ? gy : a->alpha * gy; break;
        case U_SIGMOID: out = 1 / (1 + exp(-v)), gx = gy * out * (1 - out); break;
        case U_EXP: out = exp(v), gx = gy * out; break;
        case U_LOG: out = log(v), gx = gy / v; break;
        case U_SCALE: out = a->alpha * v, gx = a->alpha * gy; break;
        case U_SUM: s += v, gx = gy; break;
        case B_ADD: out = v + w, gx = gb = gy; break;
        case B_MUL: out = v * w, gx = gy * w, gb = gy * v; break;
        case B_MAX:
            out = v > w ? v : w;
            gx = v > w ? gy : v == w ? gy / 2 : 0;
            gb = w > v ? gy : v == w ? gy / 2 : 0;
            break;
        }
        if (a->op != U_SUM)
            y[i] = (float)out;
        g[0][i] = (float)gx;
        if (c->nin > 1)
            g[1][i] = (float)gb;
    }
    if (a->op == U_SUM)
        y[0] = (float)s;
}

static void test_elementwise(int fd)
{
    static const size_t sizes[] = {1, 37, 70001};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const size_t n = sizes[si];
        for (int op = U_RELU; op <= B_MAX; op++) {
            ew_aux a = {.op = op, .alpha = op == U_LEAKY ? 0.2f : -1.7f, .tmp = falloc(n)};
            char name[128];
            snprintf(name, sizeof name, "%s n%zu t%d", ew_names[op], n, relate_get_threads());
            const int bin = op >= B_ADD;
            tcase c = {.name = name, .nin = bin ? 2 : 1, .in = {frand(n), bin ? frand(n) : NULL},
                       .nel = {n, n}, .ny = op == U_SUM ? 1 : n, .fwd = ew_fwd, .bwd = ew_bwd,
                       .ref = ew_ref, .aux = &a, .h = 1e-2f};
            if (op == U_RELU || op == U_LEAKY)
                push_from_zero(c.in[0], n, 0.05f);
            if (op == U_LOG)
                for (size_t i = 0; i < n; i++)
                    c.in[0][i] = 1.0f + 0.5f * c.in[0][i];
            if (op == B_MAX) /* b sits at least 0.05 above or below a */
                for (size_t i = 0; i < n; i++)
                    c.in[1][i] = c.in[0][i] + (c.in[1][i] >= 0 ? 0.05f + c.in[1][i] : -0.05f + c.in[1][i]);
            run_case(&c, fd);
            if (op == B_MAX && n > 1) {
                /* Exact ties split the gradient in halves (PyTorch 1.13); not an FD case. */
                for (size_t i = 0; i < n; i += 3)
                    c.in[1][i] = c.in[0][i];
                snprintf(name, sizeof name, "maximum with ties n%zu t%d", n, relate_get_threads());
                run_case(&c, 0);
            }
            free(c.in[0]);
            free(c.in[1]);
            free(a.tmp);
        }
    }
    /* NaN propagation of relu and maximum, as torch. */
    float x[2] = {NAN, 1.0f}, y[2], b[2] = {0.0f, NAN};
    relate_relu_forward(y, x, 2);
    CHECK(isnan(y[0]) && y[1] == 1.0f);
    relate_maximum_forward(y, x, b, 2);
    CHECK(isnan(y[0]) && isnan(y[1]));
    /* sum is accumulated in double: 2^24 + 1 + 1 ... stays exact where a float sum would stall. */
    const size_t big = 3000;
    float *ones = falloc(big);
    for (size_t i = 0; i < big; i++)
        ones[i] = i == 0 ? 16777216.0f : 1.0f;
    CHECK(relate_sum_forward(ones, big) == 16777216.0f + 3000.0f - 1.0f);
    free(ones);
}

/* ------------------------------------------------------------------ roll and concat */
typedef struct {
    int n, shift, ca, cb;
    size_t row;
} shape_aux;

static void roll_fwd(tcase *c, float *y)
{
    shape_aux *a = c->aux;
    relate_roll_rows_forward(y, c->in[0], a->n, a->row, a->shift);
}

static void roll_bwd(tcase *c, float *const *g, const float *dy)
{
    shape_aux *a = c->aux;
    relate_roll_rows_backward(g[0], dy, a->n, a->row, a->shift);
}

static int mod(int a, int n)
{
    return ((a % n) + n) % n;
}

static void roll_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    shape_aux *a = c->aux;
    for (int i = 0; i < a->n; i++)
        for (size_t j = 0; j < a->row; j++) {
            y[i * a->row + j] = c->in[0][mod(i - a->shift, a->n) * a->row + j];
            g[0][mod(i - a->shift, a->n) * a->row + j] += dy[i * a->row + j];
        }
}

static void cat_fwd(tcase *c, float *y)
{
    shape_aux *a = c->aux;
    relate_concat_cols_forward(y, c->in[0], c->in[1], a->n, a->ca, a->cb);
}

static void cat_bwd(tcase *c, float *const *g, const float *dy)
{
    shape_aux *a = c->aux;
    relate_concat_cols_backward(g[0], g[1], dy, a->n, a->ca, a->cb);
}

static void cat_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    shape_aux *a = c->aux;
    const int cy = a->ca + a->cb;
    for (int i = 0; i < a->n; i++)
        for (int j = 0; j < cy; j++) {
            const int left = j < a->ca;
            const size_t src = left ? (size_t)i * a->ca + j : (size_t)i * a->cb + (j - a->ca);
            y[(size_t)i * cy + j] = c->in[left ? 0 : 1][src];
            g[left ? 0 : 1][src] = dy[(size_t)i * cy + j];
        }
}

static void test_shape_ops(int fd)
{
    static const int rolls[][3] = {{5, 3, 1}, {5, 3, -2}, {4, 2, 9}, {1, 7, 1}, {6, 1, 0}, {3, 4, -7}};
    for (size_t s = 0; s < sizeof rolls / sizeof rolls[0]; s++) {
        shape_aux a = {.n = rolls[s][0], .row = (size_t)rolls[s][1], .shift = rolls[s][2]};
        const size_t tot = a.n * a.row;
        char name[96];
        snprintf(name, sizeof name, "roll n%d row%zu shift%d", a.n, a.row, a.shift);
        tcase c = {.name = name, .nin = 1, .in = {frand(tot)}, .nel = {tot}, .ny = tot,
                   .fwd = roll_fwd, .bwd = roll_bwd, .ref = roll_ref, .aux = &a, .h = 1e-2f};
        run_case(&c, fd);
        free(c.in[0]);
    }
    static const int cats[][3] = {{3, 2, 5}, {1, 1, 1}, {4, 7, 3}};
    for (size_t s = 0; s < sizeof cats / sizeof cats[0]; s++) {
        shape_aux a = {.n = cats[s][0], .ca = cats[s][1], .cb = cats[s][2]};
        char name[96];
        snprintf(name, sizeof name, "concat cols n%d ca%d cb%d", a.n, a.ca, a.cb);
        const size_t na = (size_t)a.n * a.ca, nb = (size_t)a.n * a.cb;
        tcase c = {.name = name, .nin = 2, .in = {frand(na), frand(nb)}, .nel = {na, nb},
                   .ny = na + nb, .fwd = cat_fwd, .bwd = cat_bwd, .ref = cat_ref, .aux = &a, .h = 1e-2f};
        run_case(&c, fd);
        free(c.in[0]);
        free(c.in[1]);
    }
}

/* ------------------------------------------------------------------ linear and matmul */
typedef struct {
    int n, in, out;          /* linear */
    int m, nn, k, ta, tb;    /* matmul */
} mm_aux;

static void lin_fwd(tcase *c, float *y)
{
    mm_aux *a = c->aux;
    relate_linear_forward(y, c->in[0], c->in[1], c->nin > 2 ? c->in[2] : NULL, a->n, a->in, a->out);
}

static void lin_bwd(tcase *c, float *const *g, const float *dy)
{
    mm_aux *a = c->aux;
    relate_linear_backward(g[0], g[1], c->nin > 2 ? g[2] : NULL, dy, c->in[0], c->in[1], a->n, a->in, a->out);
}

static void lin_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    mm_aux *a = c->aux;
    const float *x = c->in[0], *w = c->in[1], *b = c->nin > 2 ? c->in[2] : NULL;
    for (int i = 0; i < a->n; i++)
        for (int o = 0; o < a->out; o++) {
            double s = b ? b[o] : 0;
            for (int k = 0; k < a->in; k++)
                s += (double)x[i * a->in + k] * w[o * a->in + k];
            y[i * a->out + o] = (float)s;
        }
    for (int i = 0; i < a->n; i++)
        for (int k = 0; k < a->in; k++) {
            double s = 0;
            for (int o = 0; o < a->out; o++)
                s += (double)dy[i * a->out + o] * w[o * a->in + k];
            g[0][i * a->in + k] = (float)s;
        }
    for (int o = 0; o < a->out; o++) {
        double sb = 0;
        for (int k = 0; k < a->in; k++) {
            double s = 0;
            for (int i = 0; i < a->n; i++)
                s += (double)dy[i * a->out + o] * x[i * a->in + k];
            g[1][o * a->in + k] = (float)s;
        }
        for (int i = 0; i < a->n; i++)
            sb += dy[i * a->out + o];
        if (b)
            g[2][o] = (float)sb;
    }
}

static void mm_fwd(tcase *c, float *y)
{
    mm_aux *a = c->aux;
    relate_matmul_forward(y, c->in[0], c->in[1], a->m, a->nn, a->k, a->ta, a->tb);
}

static void mm_bwd(tcase *c, float *const *g, const float *dy)
{
    mm_aux *a = c->aux;
    relate_matmul_backward(g[0], g[1], dy, c->in[0], c->in[1], a->m, a->nn, a->k, a->ta, a->tb);
}

static void mm_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    mm_aux *a = c->aux;
    const float *A = c->in[0], *B = c->in[1];
    /* Index of op(A)[i][p] and op(B)[p][j] in the stored layouts. */
#define AI(i, p) (a->ta ? (size_t)(p) * a->m + (i) : (size_t)(i) * a->k + (p))
#define BI(p, j) (a->tb ? (size_t)(j) * a->k + (p) : (size_t)(p) * a->nn + (j))
    for (int i = 0; i < a->m; i++)
        for (int j = 0; j < a->nn; j++) {
            double s = 0;
            for (int p = 0; p < a->k; p++)
                s += (double)A[AI(i, p)] * B[BI(p, j)];
            y[(size_t)i * a->nn + j] = (float)s;
        }
    for (int i = 0; i < a->m; i++)
        for (int p = 0; p < a->k; p++) {
            double s = 0;
            for (int j = 0; j < a->nn; j++)
                s += (double)dy[(size_t)i * a->nn + j] * B[BI(p, j)];
            g[0][AI(i, p)] = (float)s;
        }
    for (int p = 0; p < a->k; p++)
        for (int j = 0; j < a->nn; j++) {
            double s = 0;
            for (int i = 0; i < a->m; i++)
                s += (double)A[AI(i, p)] * dy[(size_t)i * a->nn + j];
            g[1][BI(p, j)] = (float)s;
        }
#undef AI
#undef BI
}

static void test_linalg(int fd)
{
    static const int lins[][3] = {{4, 5, 3}, {1, 7, 6}, {9, 1, 1}, {33, 17, 300}};
    for (size_t s = 0; s < sizeof lins / sizeof lins[0]; s++)
        for (int bias = 0; bias < 2; bias++) {
            mm_aux a = {.n = lins[s][0], .in = lins[s][1], .out = lins[s][2]};
            char name[96];
            snprintf(name, sizeof name, "linear n%d in%d out%d%s t%d", a.n, a.in, a.out,
                     bias ? " +bias" : "", relate_get_threads());
            const size_t nx = (size_t)a.n * a.in, nw = (size_t)a.out * a.in;
            tcase c = {.name = name, .nin = bias ? 3 : 2, .in = {frand(nx), frand(nw), bias ? frand(a.out) : NULL},
                       .nel = {nx, nw, a.out}, .ny = (size_t)a.n * a.out, .fwd = lin_fwd,
                       .bwd = lin_bwd, .ref = lin_ref, .aux = &a, .h = 1e-2f};
            run_case(&c, fd);
            for (int j = 0; j < 3; j++)
                free(c.in[j]);
        }
    static const int mms[][3] = {{3, 4, 5}, {1, 6, 2}, {7, 1, 3}, {20, 33, 9}};
    for (size_t s = 0; s < sizeof mms / sizeof mms[0]; s++)
        for (int t = 0; t < 4; t++) {
            mm_aux a = {.m = mms[s][0], .nn = mms[s][1], .k = mms[s][2], .ta = t & 1, .tb = t >> 1};
            char name[96];
            snprintf(name, sizeof name, "matmul m%d n%d k%d ta%d tb%d t%d", a.m, a.nn, a.k, a.ta,
                     a.tb, relate_get_threads());
            const size_t na = (size_t)a.m * a.k, nb = (size_t)a.k * a.nn;
            tcase c = {.name = name, .nin = 2, .in = {frand(na), frand(nb)}, .nel = {na, nb},
                       .ny = (size_t)a.m * a.nn, .fwd = mm_fwd, .bwd = mm_bwd, .ref = mm_ref,
                       .aux = &a, .h = 1e-2f};
            run_case(&c, fd);
            free(c.in[0]);
            free(c.in[1]);
        }
}

/* ------------------------------------------------------------------ log_softmax and normalize */
typedef struct {
    int n, c;
    float eps;
    float *tmp; /* log_softmax output / norms */
} row_aux;

static void lsm_fwd(tcase *c, float *y)
{
    row_aux *a = c->aux;
    relate_log_softmax_forward(y, c->in[0], a->n, a->c);
}

static void lsm_bwd(tcase *c, float *const *g, const float *dy)
{
    row_aux *a = c->aux;
    relate_log_softmax_forward(a->tmp, c->in[0], a->n, a->c);
    relate_log_softmax_backward(g[0], dy, a->tmp, a->n, a->c);
}

static void lsm_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    row_aux *a = c->aux;
    for (int i = 0; i < a->n; i++) {
        const float *x = c->in[0] + (size_t)i * a->c;
        double mx = x[0], s = 0, sd = 0;
        for (int j = 1; j < a->c; j++)
            mx = x[j] > mx ? x[j] : mx;
        for (int j = 0; j < a->c; j++)
            s += exp(x[j] - mx), sd += dy[(size_t)i * a->c + j];
        for (int j = 0; j < a->c; j++) {
            y[(size_t)i * a->c + j] = (float)((x[j] - mx) - log(s));
            g[0][(size_t)i * a->c + j] = (float)(dy[(size_t)i * a->c + j] - exp(x[j] - mx) / s * sd);
        }
    }
}

static void l2n_fwd(tcase *c, float *y)
{
    row_aux *a = c->aux;
    relate_l2_normalize_forward(y, a->tmp, c->in[0], a->n, a->c, a->eps);
}

static void l2n_bwd(tcase *c, float *const *g, const float *dy)
{
    row_aux *a = c->aux;
    relate_l2_normalize_backward(g[0], dy, c->in[0], a->tmp, a->n, a->c, a->eps);
}

static void l2n_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    row_aux *a = c->aux;
    for (int i = 0; i < a->n; i++) {
        const float *x = c->in[0] + (size_t)i * a->c, *gy = dy + (size_t)i * a->c;
        double s = 0, dot = 0;
        for (int j = 0; j < a->c; j++)
            s += (double)x[j] * x[j], dot += (double)x[j] * gy[j];
        const double nrm = sqrt(s), den = nrm > a->eps ? nrm : a->eps;
        for (int j = 0; j < a->c; j++) {
            y[(size_t)i * a->c + j] = (float)(x[j] / den);
            g[0][(size_t)i * a->c + j] =
                (float)(nrm >= a->eps ? gy[j] / nrm - x[j] * dot / (nrm * nrm * nrm) : gy[j] / a->eps);
        }
    }
}

static void test_rows(int fd)
{
    static const int shapes[][2] = {{3, 5}, {1, 1}, {4, 1}, {7, 33}, {64, 300}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        row_aux a = {.n = shapes[s][0], .c = shapes[s][1], .eps = 1e-12f};
        const size_t tot = (size_t)a.n * a.c;
        a.tmp = falloc(tot);
        char name[96];
        snprintf(name, sizeof name, "log_softmax n%d c%d t%d", a.n, a.c, relate_get_threads());
        tcase c = {.name = name, .nin = 1, .in = {frand(tot)}, .nel = {tot}, .ny = tot,
                   .fwd = lsm_fwd, .bwd = lsm_bwd, .ref = lsm_ref, .aux = &a, .h = 1e-2f};
        for (size_t i = 0; i < tot; i++)
            c.in[0][i] *= 4.0f;
        run_case(&c, fd);
        /* With one column the output is sign(x) and every gradient is rounding noise around 0,
         * which a relative error cannot judge. */
        if (a.c == 1) {
            free(c.in[0]);
            free(a.tmp);
            continue;
        }
        snprintf(name, sizeof name, "l2_normalize n%d c%d t%d", a.n, a.c, relate_get_threads());
        c.fwd = l2n_fwd, c.bwd = l2n_bwd, c.ref = l2n_ref;
        push_from_zero(c.in[0], tot, 0.1f); /* rows of one element stay away from the sign flip */
        run_case(&c, fd);
        /* A row whose norm is under eps is divided by eps (and its gradient is dy/eps). */
        a.eps = 1.0f;
        for (int j = 0; j < a.c; j++)
            c.in[0][j] = 0.01f * (j + 1) / a.c;
        snprintf(name, sizeof name, "l2_normalize eps-clamped n%d c%d t%d", a.n, a.c, relate_get_threads());
        run_case(&c, 0);
        free(c.in[0]);
        free(a.tmp);
    }
}

/* ------------------------------------------------------------------ losses */
typedef struct {
    int kind; /* 0 CE, 1 BCE, 2 focal */
    int n, c;
    int32_t *targets;
    float *weights, *prob, *t;
    float alpha, gamma;
} loss_aux;

static void loss_fwd(tcase *c, float *y)
{
    loss_aux *a = c->aux;
    if (a->kind == 0)
        y[0] = relate_cross_entropy_forward(a->prob, c->in[0], a->targets, a->weights, a->n, a->c);
    else if (a->kind == 1)
        y[0] = relate_bce_logits_forward(c->in[0], a->t, (size_t)a->n);
    else
        y[0] = relate_focal_loss_forward(c->in[0], a->t, (size_t)a->n, a->alpha, a->gamma);
}

static void loss_bwd(tcase *c, float *const *g, const float *dy)
{
    loss_aux *a = c->aux;
    if (a->kind == 0)
        relate_cross_entropy_backward(g[0], dy[0], a->prob, a->targets, a->weights, a->n, a->c);
    else if (a->kind == 1)
        relate_bce_logits_backward(g[0], dy[0], c->in[0], a->t, (size_t)a->n);
    else
        relate_focal_loss_backward(g[0], dy[0], c->in[0], a->t, (size_t)a->n, a->alpha, a->gamma);
}

/* PyTorch's own BCE-with-logits formula (a different but equivalent form from the kernel's). */
static double bce_torch(double x, double t)
{
    const double m = -x > 0 ? -x : 0;
    return (1 - t) * x + m + log(exp(-m) + exp(-x - m));
}

/* torchvision.ops.sigmoid_focal_loss, element-wise, in double. */
static double focal_naive(double x, double t, double alpha, double gamma)
{
    const double p = 1 / (1 + exp(-x)), pt = p * t + (1 - p) * (1 - t);
    return (alpha * t + (1 - alpha) * (1 - t)) * pow(1 - pt, gamma) * bce_torch(x, t);
}

static void loss_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    loss_aux *a = c->aux;
    const float *x = c->in[0];
    double tot = 0, wsum = 0;
    if (a->kind == 0) {
        for (int i = 0; i < a->n; i++)
            wsum += a->weights ? a->weights[a->targets[i]] : 1;
        for (int i = 0; i < a->n; i++) {
            const float *xr = x + (size_t)i * a->c;
            const int t = a->targets[i];
            const double w = a->weights ? a->weights[t] : 1;
            double mx = xr[0], s = 0;
            for (int j = 1; j < a->c; j++)
                mx = xr[j] > mx ? xr[j] : mx;
            for (int j = 0; j < a->c; j++)
                s += exp(xr[j] - mx);
            tot += w * (log(s) - (xr[t] - mx));
            for (int j = 0; j < a->c; j++)
                g[0][(size_t)i * a->c + j] = (float)(dy[0] * w / wsum * (exp(xr[j] - mx) / s - (j == t)));
        }
        y[0] = (float)(tot / wsum);
        return;
    }
    for (int i = 0; i < a->n; i++) {
        const double xi = x[i], ti = a->t[i];
        if (a->kind == 1) {
            tot += bce_torch(xi, ti);
            g[0][i] = (float)(dy[0] * (1 / (1 + exp(-xi)) - ti) / a->n);
        } else {
            /* The analytic backward is checked against double-precision central differences of
             * the naive formula (h = 1e-5: error ~1e-10, far below the 1e-5 bound). */
            const double h = 1e-5;
            tot += focal_naive(xi, ti, a->alpha, a->gamma);
            g[0][i] = (float)(dy[0] *
                              (focal_naive(xi + h, ti, a->alpha, a->gamma) - focal_naive(xi - h, ti, a->alpha, a->gamma)) /
                              (2 * h) / a->n);
        }
    }
    y[0] = (float)(tot / a->n);
}

static void test_losses(int fd)
{
    /* Cross-entropy, with and without class weights. */
    static const int ces[][2] = {{6, 5}, {1, 3}, {13, 1}, {16, 40}};
    for (size_t s = 0; s < sizeof ces / sizeof ces[0]; s++)
        for (int wtd = 0; wtd < 2; wtd++) {
            loss_aux a = {.kind = 0, .n = ces[s][0], .c = ces[s][1]};
            const size_t tot = (size_t)a.n * a.c;
            a.targets = malloc(a.n * sizeof(int32_t));
            for (int i = 0; i < a.n; i++)
                a.targets[i] = (i * 7 + 3) % a.c;
            a.weights = wtd ? frand(a.c) : NULL;
            for (int j = 0; wtd && j < a.c; j++)
                a.weights[j] = 1.0f + 0.9f * a.weights[j];
            a.prob = falloc(tot);
            char name[96];
            snprintf(name, sizeof name, "cross_entropy n%d c%d%s", a.n, a.c, wtd ? " weighted" : "");
            tcase c = {.name = name, .nin = 1, .in = {frand(tot)}, .nel = {tot}, .ny = 1,
                       .fwd = loss_fwd, .bwd = loss_bwd, .ref = loss_ref, .aux = &a, .h = 5e-2f};
            for (size_t i = 0; i < tot; i++)
                c.in[0][i] *= 3.0f;
            run_case(&c, fd);
            free(c.in[0]), free(a.targets), free(a.weights), free(a.prob);
        }
    /* BCE and focal with hard and soft targets; gamma 0 (plain weighted BCE), 0.5, 1, 2. */
    static const float gammas[] = {-1, 0.0f, 0.5f, 1.0f, 2.0f}; /* -1: BCE */
    static const int ns[] = {1, 7, 200};
    for (size_t s = 0; s < sizeof ns / sizeof ns[0]; s++)
        for (size_t gi = 0; gi < sizeof gammas / sizeof gammas[0]; gi++) {
            loss_aux a = {.kind = gammas[gi] < 0 ? 1 : 2, .n = ns[s], .alpha = 0.25f, .gamma = gammas[gi]};
            a.t = falloc(a.n);
            for (int i = 0; i < a.n; i++)
                a.t[i] = i % 3 == 0 ? 1.0f : i % 3 == 1 ? 0.0f : 0.3f;
            char name[96];
            if (a.kind == 1)
                snprintf(name, sizeof name, "bce_logits n%d", a.n);
            else
                snprintf(name, sizeof name, "focal n%d gamma %.1f", a.n, a.gamma);
            tcase c = {.name = name, .nin = 1, .in = {frand(a.n)}, .nel = {(size_t)a.n}, .ny = 1,
                       .fwd = loss_fwd, .bwd = loss_bwd, .ref = loss_ref, .aux = &a, .h = 5e-2f};
            for (int i = 0; i < a.n; i++)
                c.in[0][i] *= 5.0f;
            run_case(&c, fd);
            free(c.in[0]), free(a.t);
        }
    /* Values from PyTorch 1.13 (F.cross_entropy, F.binary_cross_entropy_with_logits and the
     * torchvision focal formula with autograd) on closed-form inputs. */
    {
        enum { N = 6, C = 5, M = 12 };
        float x[N * C], prob[N * C], w[C], xb[M], tb[M], g[M] = {0};
        int32_t t[N];
        for (int i = 0; i < N * C; i++)
            x[i] = (float)(3 * sin(0.37 * i + 0.1));
        for (int i = 0; i < N; i++)
            t[i] = (i * 3) % C;
        for (int j = 0; j < C; j++)
            w[j] = 0.5f + 0.25f * j;
        for (int i = 0; i < M; i++) {
            xb[i] = (float)(4 * sin(0.9 * i + 0.3));
            tb[i] = i % 3 == 0 ? 1.0f : i % 3 == 1 ? 0.0f : 0.25f;
        }
        const float ce = 1.8087873458862305f, cew = 1.7135677337646484f, bce = 1.3812060356140137f;
        const float f2 = 0.5050642490386963f, f05 = 0.7090204358100891f;
        static const float g2[M] = {-0.000738979899f, 0.0686991215f, 0.0232029706f, -0.00256403699f,
                                    3.97255862e-05f, -0.000565003953f, -0.022970533f, 0.0545206144f,
                                    0.023099795f, -1.9743984e-06f, 0.0328172483f, -0.00018370559f};
        float got = relate_cross_entropy_forward(prob, x, t, NULL, N, C);
        relate_test_check_close("cross_entropy vs PyTorch", &got, &ce, 1, 1e-6);
        got = relate_cross_entropy_forward(prob, x, t, w, N, C);
        relate_test_check_close("weighted cross_entropy vs PyTorch", &got, &cew, 1, 1e-6);
        got = relate_bce_logits_forward(xb, tb, M);
        relate_test_check_close("bce_logits vs PyTorch", &got, &bce, 1, 1e-6);
        got = relate_focal_loss_forward(xb, tb, M, 0.25f, 2.0f);
        relate_test_check_close("focal gamma 2 vs PyTorch", &got, &f2, 1, 1e-6);
        got = relate_focal_loss_forward(xb, tb, M, 0.25f, 0.5f);
        relate_test_check_close("focal gamma 0.5 vs PyTorch", &got, &f05, 1, 1e-6);
        relate_focal_loss_backward(g, 1.0f, xb, tb, M, 0.25f, 2.0f);
        relate_test_check_close("focal gamma 2 grad vs PyTorch autograd", g, g2, M, 1e-5);
    }
}

/* ------------------------------------------------------------------ threads */
static void test_threads(void)
{
    relate_set_threads(1);
    CHECK(relate_get_threads() == 1);
    relate_set_threads(2);
    CHECK(relate_get_threads() == 2);
    relate_set_threads(0); /* clamped */
    CHECK(relate_get_threads() == 1);
}

int main(void)
{
    test_threads();
    test_conv_dims();
    test_pool_dims();
    /* 3 threads on 2 cores still exercises an odd team size (uneven image split, 3-way dW
     * reduction); finite differences run once, at 2 threads. */
    static const int counts[] = {1, 2, 3};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        relate_set_threads(counts[i]);
        const int fd = counts[i] == 2;
        test_conv(fd);
        test_batchnorm(fd);
        test_pool(fd);
        test_elementwise(fd);
        test_linalg(fd);
        test_rows(fd);
        if (fd) {
            test_shape_ops(fd);
            test_losses(fd);
        }
    }
    relate_set_threads(2);
    test_conv_backends();
    test_conv_direct();
    test_conv_thread_history();
    /* The whole conv battery once more on the other backend than the one the environment chose
     * (ctest also runs this binary with RELATE_CONV=blas), so one run covers both. */
    const relate_conv_backend env_backend = relate_conv2d_get_backend();
    relate_conv2d_set_backend(env_backend == RELATE_CONV_BLAS ? RELATE_CONV_ONEDNN : RELATE_CONV_BLAS);
    test_conv(0);
    relate_conv2d_set_backend(env_backend);
    return relate_test_finish();
}
