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
 * Also both gradients of a layer from a few NCHW channels into nChw16c outputs (conv4's layer 2
 * in the blocked layout, AVX-512; see "backward, dy in nChw16c" below).
 *
 * Not a general convolution: conv2d.c sends every other shape, and the input gradient of an
 * NCHW layer (a stem's input is data, which needs none), to oneDNN or to im2col + sgemm. */
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

/* ------------------------------------------------------------------ backward, dy in nChw16c */
/* conv4's layer 2 in the blocked layout: x in NCHW with few channels (the stem's 8), y in
 * nChw16c. oneDNN computes its input gradient with 8 channels padded to 16 and reordered out
 * again, and its weight gradient with an AVX2 kernel that blocks by 8 and needs x and dy
 * reordered first. Here, image by image and in cache: the weight gradient with a vector of 16
 * output channels as dy lies (dw_image_avx512), and the input gradient from dy transposed to
 * zero-bordered NCHW planes, as a correlation with the flipped kernel (dx_image_avx512). AVX-512 only
 * (the blocked layout is chosen where oneDNN computes in it, which is AVX-512; elsewhere oneDNN
 * runs as before). */
#define BWD_C 8 /* input channels whose gradient rows are computed together (the most this path takes) */

typedef struct bwd_geom {
    direct_geom x;  /* the padded image: rows of nv * 16 + 16 floats, so dw_image_avx512's 18
                     * columns from any 16-column start stay in the row */
    int nv;         /* 16-float vectors per input-gradient row */
    size_t dwp;     /* floats per padded dy row: >= nv * 16 + 2 */
    size_t dyplane; /* floats per padded dy plane: (h + 2) * dwp */
    size_t dy_off, wpk_off, sums_off, per_thread;
} bwd_geom;

static bwd_geom bwd_geometry(const relate_conv2d_dims *d)
{
    bwd_geom b;
    b.x = geometry(d, 16, 0);
    b.nv = (d->w + 15) / 16;
    b.dwp = (size_t)b.nv * 16 + 16;
    b.dyplane = (size_t)(d->h + 2) * b.dwp;
    b.dy_off = (size_t)d->c * b.x.xplane;
    b.wpk_off = b.dy_off + (size_t)d->o * b.dyplane;
    b.sums_off = (b.wpk_off + (size_t)BWD_C * d->o * 9 + 1) & ~(size_t)1;
    b.per_thread = (b.sums_off + 2 * (size_t)d->o * d->c * 9 + 15) & ~(size_t)15;
    return b;
}

int relate_conv2d_direct_backward_fits(const relate_conv2d_dims *d)
{
    return d->kh == 3 && d->kw == 3 && d->stride == 1 && d->pad == 1 && d->c >= 1 && d->c <= BWD_C &&
           d->o % 16 == 0 && d->blocked == RELATE_CONV_BLOCKED_Y && d->w <= 4096 && active_isa() == RELATE_ISA_AVX512;
}

size_t relate_conv2d_direct_backward_scratch_floats(const relate_conv2d_dims *d, int nthreads)
{
    if (!relate_conv2d_direct_backward_fits(d))
        return 0;
    return bwd_geometry(d).per_thread * (size_t)(nthreads < 1 ? 1 : nthreads);
}

#if DIRECT_X86
/* The 16 x 16 block r (16 pixels' 16 channels each) transposed: out[l] holds channel l of the
 * 16 pixels. */
__attribute__((target("avx512f"))) static inline void transpose16(__m512 out[16], const __m512 r[16])
{
    __m512 a[16], b[16];
    for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        const __m512d a0 = _mm512_castps_pd(a[4 * i]), a1 = _mm512_castps_pd(a[4 * i + 1]);
        const __m512d a2 = _mm512_castps_pd(a[4 * i + 2]), a3 = _mm512_castps_pd(a[4 * i + 3]);
        b[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    /* b[4i + j], 128-bit lane k: channel 4k + j of pixels 4i..4i+3. */
    for (int j = 0; j < 4; j++) {
        const __m512 c0 = _mm512_shuffle_f32x4(b[j], b[4 + j], 0x88), c1 = _mm512_shuffle_f32x4(b[j], b[4 + j], 0xDD);
        const __m512 d0 = _mm512_shuffle_f32x4(b[8 + j], b[12 + j], 0x88),
                     d1 = _mm512_shuffle_f32x4(b[8 + j], b[12 + j], 0xDD);
        out[j] = _mm512_shuffle_f32x4(c0, d0, 0x88);
        out[8 + j] = _mm512_shuffle_f32x4(c0, d0, 0xDD);
        out[4 + j] = _mm512_shuffle_f32x4(c1, d1, 0x88);
        out[12 + j] = _mm512_shuffle_f32x4(c1, d1, 0xDD);
    }
}

/* One image's dy (nChw16c) into the interiors of its zero-bordered NCHW planes. */
__attribute__((target("avx512f"))) static void unblock_dy(float *dyp, const float *dyi, const relate_conv2d_dims *d,
                                                          const bwd_geom *b)
{
    const size_t hw = (size_t)d->h * d->w;
    for (int ob = 0; ob < d->o / 16; ob++)
        for (int r = 0; r < d->h; r++)
            for (int q0 = 0; q0 < d->w; q0 += 16) {
                const int valid = d->w - q0 < 16 ? d->w - q0 : 16;
                const float *src = dyi + ((size_t)ob * hw + (size_t)r * d->w + (size_t)q0) * 16;
                __m512 rows[16], cols[16];
                for (int i = 0; i < 16; i++)
                    rows[i] = i < valid ? _mm512_loadu_ps(src + (size_t)i * 16) : _mm512_setzero_ps();
                transpose16(cols, rows);
                const __mmask16 m = (__mmask16)((1u << valid) - 1);
                for (int l = 0; l < 16; l++)
                    _mm512_mask_storeu_ps(dyp + (size_t)(ob * 16 + l) * b->dyplane + (size_t)(r + 1) * b->dwp + 1 + q0,
                                          m, cols[l]);
            }
}

/* Rows s .. s + nr - 1 (nr = 1 or 2) of one image's input gradient, every channel: each element
 * the sum over (o, ky, kx), in that order, of w * dy, one FMA per term from zero. wpk holds the
 * weights as [o][3][3][BWD_C], zeros past c. */
__attribute__((target("avx512f"))) static inline void dx_rows(float *dxi, const float *dyp, const float *wpk, int s,
                                                              int nr, int v, const relate_conv2d_dims *d,
                                                              const bwd_geom *b, bool store)
{
    __m512 acc[2][BWD_C];
    for (int j = 0; j < BWD_C; j++)
        acc[0][j] = acc[1][j] = _mm512_setzero_ps();
    for (int o = 0; o < d->o; o++)
        for (int ky = 0; ky < 3; ky++) {
            /* dx[s][t] takes dy[s + 1 - ky][t + 1 - kx]: padded row s + 2 - ky, column t + 2 - kx. */
            const float *row = dyp + (size_t)o * b->dyplane + (size_t)(s + 2 - ky) * b->dwp + (size_t)v * 16;
            const float *wk = wpk + ((size_t)o * 9 + (size_t)ky * 3) * BWD_C;
#pragma GCC unroll 3
            for (int kx = 0; kx < 3; kx++) {
                const __m512 d0 = _mm512_loadu_ps(row + 2 - kx);
                const __m512 d1 = nr > 1 ? _mm512_loadu_ps(row + b->dwp + 2 - kx) : d0;
#pragma GCC unroll 8
                for (int j = 0; j < BWD_C; j++) {
                    const __m512 wv = _mm512_set1_ps(wk[kx * BWD_C + j]);
                    acc[0][j] = _mm512_fmadd_ps(wv, d0, acc[0][j]);
                    if (nr > 1)
                        acc[1][j] = _mm512_fmadd_ps(wv, d1, acc[1][j]);
                }
            }
        }
    const int valid = d->w - v * 16 < 16 ? d->w - v * 16 : 16;
    const __mmask16 m = (__mmask16)((1u << valid) - 1);
    const size_t plane = (size_t)d->h * d->w;
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < d->c; j++) {
            float *out = dxi + (size_t)j * plane + (size_t)(s + r) * d->w + (size_t)v * 16;
            const __m512 val = store ? acc[r][j] : _mm512_add_ps(_mm512_maskz_loadu_ps(m, out), acc[r][j]);
            _mm512_mask_storeu_ps(out, m, val);
        }
}

__attribute__((target("avx512f"))) static void dx_image_avx512(float *dxi, const float *dyp, const float *wpk,
                                                               const relate_conv2d_dims *d, const bwd_geom *b,
                                                               bool store)
{
    for (int v = 0; v < b->nv; v++) {
        int s = 0;
        for (; s + 2 <= d->h; s += 2)
            dx_rows(dxi, dyp, wpk, s, 2, v, d, b, store);
        if (s < d->h)
            dx_rows(dxi, dyp, wpk, s, 1, v, d, b, store);
    }
}

/* One image's weight gradient, added to sums [o/16][c][3][3][16] (double). With dy in nChw16c a
 * vector is 16 output channels at one pixel, so no transposes and no horizontal sums are needed.
 * For one kernel row ky and 16 output columns, dy's 16 vectors of an output row stay in
 * registers, and each padded x value of the matching input row is broadcast once and multiplied
 * into the up to 3 running vectors (kx) whose tap it is: 12 running vectors for 4 input channels,
 * 3 FMAs per load. (Broadcasting each tap separately, 1 load per FMA, ran at about half the
 * speed: the loads were the limit.) Each running vector sums the image's rows in order, in
 * float; the image's sums are added in double. */
__attribute__((target("avx512f"))) static void dw_image_avx512(double *sums, const float *dyi, const float *xp,
                                                              const relate_conv2d_dims *d, const direct_geom *g)
{
    const size_t hw = (size_t)d->h * d->w;
    for (int ob = 0; ob < d->o / 16; ob++)
        for (int c0 = 0; c0 < d->c; c0 += 4) {
            /* Channels past c run as copies of c0, and their sums are dropped. */
            const float *xc[4];
            for (int cc = 0; cc < 4; cc++)
                xc[cc] = xp + (size_t)(c0 + cc < d->c ? c0 + cc : c0) * g->xplane;
            for (int ky = 0; ky < 3; ky++) {
                __m512 acc[4][3];
                for (int cc = 0; cc < 4; cc++)
                    acc[cc][0] = acc[cc][1] = acc[cc][2] = _mm512_setzero_ps();
                for (int q0 = 0; q0 < d->w; q0 += 16) {
                    const int valid = d->w - q0 < 16 ? d->w - q0 : 16;
                    for (int y = 0; y < d->h; y++) {
                        const float *dr = dyi + ((size_t)ob * hw + (size_t)y * d->w + (size_t)q0) * 16;
                        __m512 dv[16];
#pragma GCC unroll 16
                        for (int t = 0; t < 16; t++)
                            dv[t] = t < valid ? _mm512_loadu_ps(dr + (size_t)t * 16) : _mm512_setzero_ps();
#pragma GCC unroll 4
                        for (int cc = 0; cc < 4; cc++) {
                            /* Padded column q0 + j is x's column q0 + j - 1: the tap kx = j - q
                             * of output column q0 + q. */
                            const float *row = xc[cc] + (size_t)(y + ky) * g->wp + (size_t)q0;
#pragma GCC unroll 18
                            for (int j = 0; j < 18; j++) {
                                const __m512 xv = _mm512_set1_ps(row[j]);
#pragma GCC unroll 3
                                for (int kx = 0; kx < 3; kx++)
                                    if (j - kx >= 0 && j - kx < 16)
                                        acc[cc][kx] = _mm512_fmadd_ps(dv[j - kx], xv, acc[cc][kx]);
                            }
                        }
                    }
                }
                for (int cc = 0; cc < 4 && c0 + cc < d->c; cc++)
                    for (int kx = 0; kx < 3; kx++) {
                        double *sk = sums + ((((size_t)ob * d->c + (size_t)(c0 + cc)) * 9 + (size_t)(ky * 3 + kx)) * 16);
                        const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(acc[cc][kx]));
                        const __m512d hi =
                            _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[cc][kx]), 1)));
                        _mm512_storeu_pd(sk, _mm512_add_pd(_mm512_loadu_pd(sk), lo));
                        _mm512_storeu_pd(sk + 8, _mm512_add_pd(_mm512_loadu_pd(sk + 8), hi));
                    }
            }
        }
}
#endif

int relate_conv2d_direct_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                                  const relate_conv2d_dims *d, float *scratch, bool dx_store)
{
    if (!relate_conv2d_direct_backward_fits(d))
        return -1;
#if DIRECT_X86
    const bwd_geom b = bwd_geometry(d);
    const size_t in_img = (size_t)d->c * d->h * d->w, out_img = (size_t)d->o * d->h * d->w;
    const size_t nw = (size_t)d->o * d->c * 9;
    int team = 1;
#pragma omp parallel num_threads(relate_get_threads())
    {
        float *xp = scratch + (size_t)omp_get_thread_num() * b.per_thread;
        float *dyp = xp + b.dy_off, *wpk = xp + b.wpk_off;
        double *sums = (double *)(xp + b.sums_off);
        memset(xp, 0, sizeof(float) * b.wpk_off); /* the zero borders of x and dy */
        memset(sums, 0, sizeof(double) * nw);
        for (int o = 0; o < d->o; o++)
            for (int k = 0; k < 9; k++)
                for (int j = 0; j < BWD_C; j++)
                    wpk[((size_t)o * 9 + k) * BWD_C + j] = j < d->c ? w[((size_t)o * d->c + j) * 9 + k] : 0.0f;
#pragma omp single
        team = omp_get_num_threads();
#pragma omp for schedule(static)
        for (int i = 0; i < d->n; i++) {
            const float *dyi = dy + (size_t)i * out_img;
            if (dx) {
                unblock_dy(dyp, dyi, d, &b);
                dx_image_avx512(dx + (size_t)i * in_img, dyp, wpk, d, &b, dx_store);
            }
            if (dw) {
                pad_image(xp, x + (size_t)i * in_img, d, &b.x);
                dw_image_avx512(sums, dyi, xp, d, &b.x);
            }
        }
    }
    if (dw) /* the sums are [o/16][c][3][3][16]; dw is [o][c][3][3] */
        for (int o = 0; o < d->o; o++)
            for (int c = 0; c < d->c; c++)
                for (int k = 0; k < 9; k++) {
                    const size_t at = ((((size_t)(o / 16) * d->c + (size_t)c) * 9 + (size_t)k) * 16) + (size_t)(o % 16);
                    double total = 0;
                    for (int t = 0; t < team; t++)
                        total += ((const double *)(scratch + (size_t)t * b.per_thread + b.sums_off))[at];
                    dw[((size_t)o * d->c + c) * 9 + k] += (float)total;
                }
    return 0;
#else
    (void)dx, (void)dw, (void)dy, (void)x, (void)w, (void)scratch, (void)dx_store;
    return -1;
#endif
}
