/* conv2d_direct.c: the 3x3, stride-1, pad-1 convolution of an image stem (1 to 4 input channels,
 * output channels a multiple of 4) in relate's plain NCHW layout, forward and weight gradient,
 * with the forward's AVX-512 or AVX2 + FMA version chosen at run time (one binary for any
 * x86-64-v3 CPU; both give the same bits).
 *
 * Why: oneDNN's blocked kernels pad such a layer's channels to 16 and reorder every tensor into
 * and out of its layout. On relationnet's conv4 stem (2,048 views of 3 x 32 x 32 into 8
 * channels) the two reorders and the padded work took about 40% of all of oneDNN's time in the
 * step (DNNL_VERBOSE), for a layer with 14% of its multiplications. Here the input is
 * read where it lies, through a zero-padded copy of one image that stays in L1.
 *
 * Not a general convolution: conv2d.c sends every other shape, and the input gradient (a stem's
 * input is data, which needs none), to oneDNN or to im2col + sgemm. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/conv2d_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DIRECT_X86 1
#include <immintrin.h>
#else
#define DIRECT_X86 0
#endif

#define OC_BLOCK 4 /* output channels computed together: each input load feeds 4 FMAs */

/* Geometry of each thread's block of scratch: [padded image][rows or dy copy][sums]. Each input
 * row is padded to `wp` floats (a zero column on the left, zeros after the data up to a whole
 * number of vectors plus the right-hand taps), with a zero row above and below each plane. */
typedef struct direct_geom {
    int nv;            /* vectors per output row: ceil(w / lanes) */
    int whole;         /* w is a whole number of vectors: dy and y are used in place */
    size_t wp;         /* floats per padded input row */
    size_t xplane;     /* floats per padded input plane: (h + 2) * wp */
    size_t dyrow;      /* floats per row of the output block / dy copy: nv * lanes */
    size_t sums_off;   /* floats from the block's start to the weight gradient's double sums */
    size_t per_thread; /* floats of scratch per thread */
} direct_geom;

static direct_geom geometry(const relate_conv2d_dims *d, int lanes, size_t extra)
{
    direct_geom g;
    g.nv = (d->w + lanes - 1) / lanes;
    g.whole = d->w % lanes == 0;
    g.wp = (size_t)g.nv * lanes + lanes; /* >= nv * lanes + 2: the last vector's kx = 2 tap */
    g.xplane = (size_t)(d->h + 2) * g.wp;
    g.dyrow = (size_t)g.nv * lanes;
    /* The forward's OC_BLOCK output rows, or the weight gradient's copy of dy's o planes with
     * zeros past the width; neither is needed when the width is whole. Both are even counts, so
     * the double sums after them stay 8-byte aligned. */
    const size_t copy = g.whole ? 0 : (size_t)d->o * d->h * g.dyrow;
    /* `extra` floats after it: a weight gradient whose dy is made image by image puts that image
     * and its callback's scratch there (relate_conv2d_direct_weight_grad_fn); an even count. */
    g.sums_off = (size_t)d->c * g.xplane + copy + ((extra + 1) & ~(size_t)1);
    g.per_thread = g.sums_off + 2 * (size_t)d->o * d->c * 9;
    g.per_thread = (g.per_thread + 15) & ~(size_t)15; /* each thread's block on its own lines */
    return g;
}

/* The instruction set the kernels run with (cpu_isa.c): only x86 builds have them. */
static int active_isa(void)
{
    return DIRECT_X86 ? (int)relate_kernels_isa() : RELATE_ISA_NONE;
}

static int lanes_of(int isa) { return isa == RELATE_ISA_AVX512 ? 16 : 8; }

int relate_conv2d_direct_fits(const relate_conv2d_dims *d)
{
    return d->kh == 3 && d->kw == 3 && d->stride == 1 && d->pad == 1 && d->c >= 1 && d->c <= 4 &&
           d->o >= OC_BLOCK && d->o % OC_BLOCK == 0 && d->w <= 4096 && active_isa() != RELATE_ISA_NONE;
}

size_t relate_conv2d_direct_scratch_floats(const relate_conv2d_dims *d, int nthreads)
{
    if (!relate_conv2d_direct_fits(d))
        return 0;
    /* Sized for either width, so a cap set between sizing and the call stays within it. */
    const size_t a = geometry(d, 8, 0).per_thread, b = geometry(d, 16, 0).per_thread;
    return (a > b ? a : b) * (size_t)(nthreads < 1 ? 1 : nthreads);
}

static size_t fn_extra(const relate_conv2d_dims *d, size_t tmp_floats)
{
    return (size_t)d->o * d->h * d->w + tmp_floats;
}

size_t relate_conv2d_direct_weight_grad_fn_scratch_floats(const relate_conv2d_dims *d, int nthreads,
                                                          size_t tmp_floats)
{
    if (!relate_conv2d_direct_fits(d))
        return 0;
    return geometry(d, 8, fn_extra(d, tmp_floats)).per_thread * (size_t)(nthreads < 1 ? 1 : nthreads);
}

/* Copies one image's c planes into the interior of the padded copy; its borders stay zero. */
static void pad_image(float *xp, const float *x, const relate_conv2d_dims *d, const direct_geom *g)
{
    for (int ic = 0; ic < d->c; ic++)
        for (int r = 0; r < d->h; r++)
            memcpy(xp + ic * g->xplane + (size_t)(r + 1) * g->wp + 1, x + ((size_t)ic * d->h + r) * d->w,
                   sizeof(float) * (size_t)d->w);
}

#if DIRECT_X86
/* AVX2 + FMA, 8 lanes. */
#define VLANES 8
#define VEC __m256
#define VTARGET "avx2,fma"
#define VZERO() _mm256_setzero_ps()
#define VLOADU(p) _mm256_loadu_ps(p)
#define VBCAST(p) _mm256_broadcast_ss(p)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VSTOREU(p, v) _mm256_storeu_ps(p, v)
#define SUFFIX(name) name##_avx2
#include "kernels/conv2d_direct_body.h" /* undefines the V* macros and SUFFIX */

/* AVX-512F, 16 lanes. */
#define VLANES 16
#define VEC __m512
#define VTARGET "avx512f"
#define VZERO() _mm512_setzero_ps()
#define VLOADU(p) _mm512_loadu_ps(p)
#define VBCAST(p) _mm512_set1_ps(*(p))
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VSTOREU(p, v) _mm512_storeu_ps(p, v)
#define SUFFIX(name) name##_avx512
#include "kernels/conv2d_direct_body.h" /* undefines the V* macros and SUFFIX */

__attribute__((target("avx2,fma"))) static inline float hsum_avx2(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One image's share of the weight gradient, added to sums [o, c, 3, 3] (double): for each output
 * channel block, input channel and kernel row, 12 running vectors (4 channels x 3 columns) over
 * the image's rows, reduced to one float per weight per image. AVX2 on every CPU: an AVX-512
 * version of these loops ran at 0.6x of this speed (its shifted loads of x split cache lines),
 * and one width gives every machine the same bits. dy's rows are `dy_ld` floats
 * apart, with zeros past the width when that is not a whole number of vectors. */
__attribute__((target("avx2,fma"))) static void weight_grad_image_avx2(double *sums, const float *dy, size_t dy_ld, const float *xp,
                                       const relate_conv2d_dims *d, const direct_geom *g)
{
    const size_t plane = (size_t)d->h * dy_ld;
    for (int o0 = 0; o0 < d->o; o0 += OC_BLOCK)
        for (int ic = 0; ic < d->c; ic++)
            for (int ky = 0; ky < 3; ky++) {
                __m256 acc[OC_BLOCK][3];
#pragma GCC unroll 4
                for (int j = 0; j < OC_BLOCK; j++)
                    acc[j][0] = acc[j][1] = acc[j][2] = _mm256_setzero_ps();
                for (int oy = 0; oy < d->h; oy++) {
                    const float *xr = xp + ic * g->xplane + (size_t)(oy + ky) * g->wp;
                    const float *dr = dy + (size_t)o0 * plane + (size_t)oy * dy_ld;
                    for (int v = 0; v < g->nv; v++) {
                        const float *xv = xr + (size_t)v * 8;
                        const __m256 x0 = _mm256_loadu_ps(xv), x1 = _mm256_loadu_ps(xv + 1), x2 = _mm256_loadu_ps(xv + 2);
#pragma GCC unroll 4
                        for (int j = 0; j < OC_BLOCK; j++) {
                            const __m256 dv = _mm256_loadu_ps(dr + j * plane + (size_t)v * 8);
                            acc[j][0] = _mm256_fmadd_ps(dv, x0, acc[j][0]);
                            acc[j][1] = _mm256_fmadd_ps(dv, x1, acc[j][1]);
                            acc[j][2] = _mm256_fmadd_ps(dv, x2, acc[j][2]);
                        }
                    }
                }
                for (int j = 0; j < OC_BLOCK; j++)
                    for (int kx = 0; kx < 3; kx++)
                        sums[(((size_t)(o0 + j) * d->c + ic) * 3 + ky) * 3 + kx] += hsum_avx2(acc[j][kx]);
            }
}

#endif

int relate_conv2d_direct_forward(float *y, const float *x, const float *w, const relate_conv2d_dims *d,
                                 float *scratch)
{
    if (!relate_conv2d_direct_fits(d))
        return -1;
#if DIRECT_X86
    const int isa = active_isa();
    const direct_geom g = geometry(d, lanes_of(isa), 0);
    const size_t in_img = (size_t)d->c * d->h * d->w, out_img = (size_t)d->o * d->h * d->w;
#pragma omp parallel num_threads(relate_get_threads())
    {
        float *xp = scratch + (size_t)omp_get_thread_num() * g.per_thread;
        float *rows = xp + (size_t)d->c * g.xplane;
        memset(xp, 0, sizeof(float) * (size_t)d->c * g.xplane);
#pragma omp for schedule(static)
        for (int i = 0; i < d->n; i++) {
            pad_image(xp, x + (size_t)i * in_img, d, &g);
            if (isa == RELATE_ISA_AVX512)
                forward_image_avx512(y + (size_t)i * out_img, xp, w, d, &g, rows);
            else
                forward_image_avx2(y + (size_t)i * out_img, xp, w, d, &g, rows);
        }
    }
    return 0;
#else
    (void)y, (void)x, (void)w, (void)scratch;
    return -1;
#endif
}

/* Each thread sums a contiguous run of images (the static schedule) in double; the runs are
 * then added in thread order, so the result depends on the inputs and the thread count only.
 * dy is read from memory, or made image by image by dy_of (then never stored whole). */
static int weight_grad(float *dw, const float *dy, relate_conv2d_dy_fn dy_of, void *ctx, size_t tmp_floats,
                       const float *x, const relate_conv2d_dims *d, float *scratch)
{
    if (!relate_conv2d_direct_fits(d))
        return -1;
#if DIRECT_X86
    const direct_geom g = geometry(d, 8, dy_of ? fn_extra(d, tmp_floats) : 0);
    const size_t in_img = (size_t)d->c * d->h * d->w, out_img = (size_t)d->o * d->h * d->w;
    const size_t nw = (size_t)d->o * d->c * 9;
    int team = 1;
#pragma omp parallel num_threads(relate_get_threads())
    {
        float *xp = scratch + (size_t)omp_get_thread_num() * g.per_thread;
        float *dyp = xp + (size_t)d->c * g.xplane;
        float *made = dyp + (g.whole ? 0 : (size_t)d->o * d->h * g.dyrow), *tmp = made + out_img;
        double *sums = (double *)(xp + g.sums_off);
        memset(xp, 0, sizeof(float) * (size_t)d->c * g.xplane);
        if (!g.whole)
            memset(dyp, 0, sizeof(float) * (size_t)d->o * d->h * g.dyrow);
        memset(sums, 0, sizeof(double) * nw);
#pragma omp single
        team = omp_get_num_threads();
#pragma omp for schedule(static)
        for (int i = 0; i < d->n; i++) {
            const float *dyi = dy ? dy + (size_t)i * out_img : made;
            if (dy_of)
                dy_of(made, tmp, i, ctx);
            if (!g.whole) {
                for (size_t r = 0; r < (size_t)d->o * d->h; r++)
                    memcpy(dyp + r * g.dyrow, dyi + r * d->w, sizeof(float) * (size_t)d->w);
                dyi = dyp;
            }
            pad_image(xp, x + (size_t)i * in_img, d, &g);
            const size_t ld = g.whole ? (size_t)d->w : g.dyrow;
            weight_grad_image_avx2(sums, dyi, ld, xp, d, &g);
        }
    }
    for (size_t k = 0; k < nw; k++) {
        double total = 0;
        for (int t = 0; t < team; t++)
            total += ((const double *)(scratch + (size_t)t * g.per_thread + g.sums_off))[k];
        dw[k] += (float)total;
    }
    return 0;
#else
    (void)dw, (void)dy, (void)dy_of, (void)ctx, (void)tmp_floats, (void)x, (void)scratch;
    return -1;
#endif
}

int relate_conv2d_direct_weight_grad(float *dw, const float *dy, const float *x, const relate_conv2d_dims *d,
                                     float *scratch)
{
    return weight_grad(dw, dy, NULL, NULL, 0, x, d, scratch);
}

int relate_conv2d_direct_weight_grad_fn(float *dw, relate_conv2d_dy_fn dy_of, void *ctx, size_t tmp_floats,
                                        const float *x, const relate_conv2d_dims *d, float *scratch)
{
    return weight_grad(dw, NULL, dy_of, ctx, tmp_floats, x, d, scratch);
}
