/* conv2d.c: 2-D convolution (no bias) forward and backward as im2col + OpenBLAS sgemm, plus naive references.
 * Not a general convolution engine: square stride/padding, zero padding, no groups or dilation. */
#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/conv2d_internal.h"
#include "kernels/kernels.h"

int relate_conv2d_dims_init(relate_conv2d_dims *d)
{
    if (!d || d->n < 1 || d->c < 1 || d->h < 1 || d->w < 1 || d->o < 1 || d->kh < 1 || d->kw < 1 ||
        d->stride < 1 || d->pad < 0)
        return -1;
    /* 64-bit so that a huge pad cannot overflow before the fit test. */
    int64_t eh = (int64_t)d->h + 2 * (int64_t)d->pad - d->kh;
    int64_t ew = (int64_t)d->w + 2 * (int64_t)d->pad - d->kw;
    if (eh < 0 || ew < 0)
        return -1;
    int64_t ho = eh / d->stride + 1, wo = ew / d->stride + 1;
    if (ho > INT32_MAX || wo > INT32_MAX)
        return -1;
    d->ho = (int)ho;
    d->wo = (int)wo;
    return 0;
}

/* Images are processed in chunks: the columns of a whole chunk form one matrix, so each layer
 * is a few large sgemm calls (OpenBLAS threads them over our OpenMP team) instead of one small
 * product per image. Per-image products of the small-channel layers (16 x 144 x 1024 in a
 * CIFAR ResNet) keep sgemm far from its peak and pay a barrier per image.
 * The chunk depends on the shapes only, so results depend only on the thread count. */
#define CONV_CHUNK_FLOATS ((size_t)6 << 20) /* columns + output of one chunk: ~24 MB */

static int chunk_images(const relate_conv2d_dims *d)
{
    size_t per_image = ((size_t)d->c * d->kh * d->kw + (size_t)d->o) * (size_t)d->ho * d->wo;
    size_t c = CONV_CHUNK_FLOATS / (per_image ? per_image : 1);
    if (c < 1)
        c = 1;
    if (c > (size_t)d->n)
        c = (size_t)d->n;
    return (int)c;
}

static size_t blas_scratch_floats(const relate_conv2d_dims *d)
{
    size_t per_image = ((size_t)d->c * d->kh * d->kw + (size_t)d->o) * (size_t)d->ho * d->wo;
    return per_image * (size_t)chunk_images(d);
}

/* Range [*lo, *hi) of output positions whose input coordinate o*s - pad + k lies in [0, len). */
static void valid_range(int len, int out, int s, int pad, int k, int *lo, int *hi)
{
    int off = pad - k; /* need o*s >= off and o*s <= len - 1 + off */
    int a = off <= 0 ? 0 : (off + s - 1) / s;
    int lim = len - 1 + off;
    int b = lim < 0 ? 0 : lim / s + 1;
    if (a > out)
        a = out;
    if (b > out)
        b = out;
    if (b < a)
        b = a;
    *lo = a;
    *hi = b;
}

/* col [c*kh*kw, ho*wo] (rows `ld` floats apart) from one image x [c, h, w]. */
static void im2col(float *col, size_t ld, const float *x, const relate_conv2d_dims *d)
{
    const int s = d->stride, ho = d->ho, wo = d->wo;
    for (int ci = 0; ci < d->c; ci++) {
        const float *xc = x + (size_t)ci * d->h * d->w;
        for (int ky = 0; ky < d->kh; ky++) {
            int y0, y1;
            valid_range(d->h, ho, s, d->pad, ky, &y0, &y1);
            for (int kx = 0; kx < d->kw; kx++) {
                int x0, x1;
                valid_range(d->w, wo, s, d->pad, kx, &x0, &x1);
                float *row = col + (((size_t)ci * d->kh + ky) * d->kw + kx) * ld;
                for (int oy = 0; oy < ho; oy++) {
                    float *out = row + (size_t)oy * wo;
                    if (oy < y0 || oy >= y1) {
                        memset(out, 0, sizeof(float) * (size_t)wo);
                        continue;
                    }
                    /* Offsets stay signed: the window origin may sit left of the row; only
                     * in-range positions [x0, x1) are ever dereferenced. */
                    const ptrdiff_t base = (ptrdiff_t)(oy * s - d->pad + ky) * d->w + (kx - d->pad);
                    for (int ox = 0; ox < x0; ox++)
                        out[ox] = 0.0f;
                    if (s == 1) {
                        if (x1 > x0)
                            memcpy(out + x0, xc + base + x0, sizeof(float) * (size_t)(x1 - x0));
                    } else {
                        for (int ox = x0; ox < x1; ox++)
                            out[ox] = xc[base + (ptrdiff_t)ox * s];
                    }
                    for (int ox = x1; ox < wo; ox++)
                        out[ox] = 0.0f;
                }
            }
        }
    }
}

/* dx [c, h, w] += scatter of col [c*kh*kw, ho*wo] (rows `ld` apart); serial within the image,
 * so deterministic. */
static void col2im_add(float *dx, const float *col, size_t ld, const relate_conv2d_dims *d)
{
    const int s = d->stride, ho = d->ho, wo = d->wo;
    for (int ci = 0; ci < d->c; ci++) {
        float *dc = dx + (size_t)ci * d->h * d->w;
        for (int ky = 0; ky < d->kh; ky++) {
            int y0, y1;
            valid_range(d->h, ho, s, d->pad, ky, &y0, &y1);
            for (int kx = 0; kx < d->kw; kx++) {
                int x0, x1;
                valid_range(d->w, wo, s, d->pad, kx, &x0, &x1);
                const float *row = col + (((size_t)ci * d->kh + ky) * d->kw + kx) * ld;
                for (int oy = y0; oy < y1; oy++) {
                    const float *src = row + (size_t)oy * wo;
                    const ptrdiff_t base = (ptrdiff_t)(oy * s - d->pad + ky) * d->w + (kx - d->pad);
                    if (s == 1) {
                        for (int ox = x0; ox < x1; ox++)
                            dc[base + ox] += src[ox];
                    } else {
                        for (int ox = x0; ox < x1; ox++)
                            dc[base + (ptrdiff_t)ox * s] += src[ox];
                    }
                }
            }
        }
    }
}

static void blas_forward(float *y, const float *x, const float *w, const relate_conv2d_dims *d,
                         float *scratch)
{
    const int K = d->c * d->kh * d->kw, P = d->ho * d->wo, chunk = chunk_images(d);
    const size_t xs = (size_t)d->c * d->h * d->w, ys = (size_t)d->o * P;
    for (int i0 = 0; i0 < d->n; i0 += chunk) {
        const int cn = d->n - i0 < chunk ? d->n - i0 : chunk;
        const size_t ld = (size_t)cn * P;
        float *col = scratch, *out = scratch + (size_t)K * ld;
#pragma omp parallel for schedule(static)
        for (int i = 0; i < cn; i++)
            im2col(col + (size_t)i * P, ld, x + (size_t)(i0 + i) * xs, d);
        /* out [o, cn*P] = W [o, K] * col [K, cn*P] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->o, (int)ld, K, 1.0f, w, K, col,
                    (int)ld, 0.0f, out, (int)ld);
#pragma omp parallel for collapse(2) schedule(static)
        for (int i = 0; i < cn; i++)
            for (int o = 0; o < d->o; o++)
                memcpy(y + (size_t)(i0 + i) * ys + (size_t)o * P, out + (size_t)o * ld + (size_t)i * P,
                       sizeof(float) * (size_t)P);
    }
}

static void blas_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                          const relate_conv2d_dims *d, float *scratch)
{
    const int K = d->c * d->kh * d->kw, P = d->ho * d->wo, chunk = chunk_images(d);
    const size_t xs = (size_t)d->c * d->h * d->w, ys = (size_t)d->o * P;
    for (int i0 = 0; i0 < d->n; i0 += chunk) {
        const int cn = d->n - i0 < chunk ? d->n - i0 : chunk;
        const size_t ld = (size_t)cn * P;
        float *col = scratch, *g = scratch + (size_t)K * ld;
        /* g [o, cn*P]: the chunk's output gradient with images side by side. */
#pragma omp parallel for collapse(2) schedule(static)
        for (int i = 0; i < cn; i++)
            for (int o = 0; o < d->o; o++)
                memcpy(g + (size_t)o * ld + (size_t)i * P, dy + (size_t)(i0 + i) * ys + (size_t)o * P,
                       sizeof(float) * (size_t)P);
        if (dw) {
#pragma omp parallel for schedule(static)
            for (int i = 0; i < cn; i++)
                im2col(col + (size_t)i * P, ld, x + (size_t)(i0 + i) * xs, d);
            /* dW [o, K] += g [o, cn*P] * col^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d->o, K, (int)ld, 1.0f, g, (int)ld,
                        col, (int)ld, 1.0f, dw, K);
        }
        if (dx) {
            /* dcol [K, cn*P] = W^T * g, then scattered back image by image. */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, (int)ld, d->o, 1.0f, w, K, g,
                        (int)ld, 0.0f, col, (int)ld);
#pragma omp parallel for schedule(static)
            for (int i = 0; i < cn; i++)
                col2im_add(dx + (size_t)(i0 + i) * xs, col + (size_t)i * P, ld, d);
        }
    }
}

/* ------------------------------------------------------------------ dispatch */
/* RELATE_CONV=blas in the environment selects the im2col path, RELATE_CONV=onednn oneDNN without
 * the direct kernels; read once, so a step never mixes backends between a scratch size and
 * the call it was sized for. The setter (tests) overrides it; atomic because nothing stops two
 * threads from asking at once. */
static pthread_once_t g_backend_once = PTHREAD_ONCE_INIT;
static atomic_int g_backend = RELATE_CONV_ONEDNN;

static void read_backend_env(void)
{
    const char *v = getenv("RELATE_CONV");
    if (v && strcmp(v, "blas") == 0)
        atomic_store(&g_backend, RELATE_CONV_BLAS);
    else if (v && strcmp(v, "onednn") == 0)
        atomic_store(&g_backend, RELATE_CONV_ONEDNN_ONLY);
}

relate_conv_backend relate_conv2d_get_backend(void)
{
    pthread_once(&g_backend_once, read_backend_env);
    return (relate_conv_backend)atomic_load(&g_backend);
}

void relate_conv2d_set_backend(relate_conv_backend b)
{
    pthread_once(&g_backend_once, read_backend_env);
    atomic_store(&g_backend, (int)b);
}

/* RELATE_BLOCKED_LAYOUT=0 in the environment keeps every activation in NCHW (A/B timing),
 * =always uses nChw16c wherever oneDNN runs it; read once, like RELATE_CONV. */
static pthread_once_t g_blocked_once = PTHREAD_ONCE_INIT;
static atomic_int g_blocked = RELATE_BLOCKED_AUTO;

static void read_blocked_env(void)
{
    const char *v = getenv("RELATE_BLOCKED_LAYOUT");
    if (v && strcmp(v, "0") == 0)
        atomic_store(&g_blocked, RELATE_BLOCKED_OFF);
    else if (v && strcmp(v, "always") == 0)
        atomic_store(&g_blocked, RELATE_BLOCKED_ALWAYS);
}

relate_blocked_mode relate_blocked_layout_mode(void)
{
    pthread_once(&g_blocked_once, read_blocked_env);
    return (relate_blocked_mode)atomic_load(&g_blocked);
}

void relate_set_blocked_layout(relate_blocked_mode mode)
{
    pthread_once(&g_blocked_once, read_blocked_env);
    atomic_store(&g_blocked, (int)mode);
}

const char *relate_conv2d_backend_name(void)
{
    switch (relate_conv2d_get_backend()) {
    case RELATE_CONV_BLAS:
        return "im2col+openblas";
    case RELATE_CONV_ONEDNN_ONLY:
        return "onednn";
    default:
        return "onednn+direct-stem";
    }
}

/* oneDNN runs a large batch in slices of about this many bytes of input + output. Its blocked
 * copies of input, output and gradient live in the step's workspace and scale with the images
 * per call: relationnet's 2,048-view conv4 batch would otherwise need ~200 MB of copies; a slice
 * also stays closer to the caches. Slices have equal size but for the last. */
#define ONEDNN_SLICE_BYTES ((size_t)16 << 20)

static int onednn_slice(const relate_conv2d_dims *d)
{
    const size_t per_image = ((size_t)d->c * d->h * d->w + (size_t)d->o * d->ho * d->wo) * sizeof(float);
    size_t most = ONEDNN_SLICE_BYTES / per_image;
    if (most < 1)
        most = 1;
    if (most >= (size_t)d->n)
        return d->n;
    const size_t slices = ((size_t)d->n + most - 1) / most;
    return (int)(((size_t)d->n + slices - 1) / slices);
}

static relate_conv2d_dims slice_dims(const relate_conv2d_dims *d, int n)
{
    relate_conv2d_dims s = *d;
    s.n = n;
    return s;
}

/* The backend's oneDNN (1) or im2col (0) path, and whether a direct kernel may run: the stem's,
 * or the blocked layer-2 backward's. Only the default backend runs them; RELATE_CONV_ONEDNN_ONLY
 * is oneDNN alone. */
static int uses_onednn(relate_conv_backend b) { return b != RELATE_CONV_BLAS; }

static int uses_direct(relate_conv_backend b, const relate_conv2d_dims *d)
{
    return b == RELATE_CONV_ONEDNN && !d->blocked && relate_conv2d_direct_fits(d);
}

static int uses_direct_backward(relate_conv_backend b, const relate_conv2d_dims *d)
{
    return b == RELATE_CONV_ONEDNN && relate_conv2d_direct_backward_fits(d);
}

size_t relate_conv2d_scratch_floats(const relate_conv2d_dims *d, int nthreads)
{
    /* oneDNN and im2col share one buffer across the team; the direct kernel has a block per
     * thread, and runs the forward and the weight gradient while oneDNN may run an input
     * gradient, so the buffer holds the larger. */
    const relate_conv_backend b = relate_conv2d_get_backend();
    size_t direct = uses_direct(b, d) ? relate_conv2d_direct_scratch_floats(d, nthreads) : 0;
    if (uses_direct_backward(b, d)) {
        const size_t bwd = relate_conv2d_direct_backward_scratch_floats(d, nthreads);
        direct = bwd > direct ? bwd : direct;
    }
    if (uses_onednn(b) || d->blocked) {
        /* Enough for either path on one slice, since oneDNN may refuse a shape at run time. */
        size_t most = 0;
        const int slice = onednn_slice(d);
        const int sizes[2] = {slice, d->n % slice};
        for (int i = 0; i < 2; i++) {
            if (sizes[i] == 0)
                continue;
            relate_conv2d_dims s = slice_dims(d, sizes[i]);
            /* A blocked shape's fallback (blocked_fallback) allocates its own memory. */
            size_t dnn = relate_conv2d_onednn_scratch_floats(&s), blas = d->blocked ? 0 : blas_scratch_floats(&s);
            most = dnn > most ? dnn : most;
            most = blas > most ? blas : most;
        }
        return most > direct ? most : direct;
    }
    return blas_scratch_floats(d);
}

size_t relate_conv2d_weight_grad_fn_scratch_floats(const relate_conv2d_dims *d, int nthreads, size_t tmp_floats)
{
    if (!uses_direct(relate_conv2d_get_backend(), d))
        return 0;
    return relate_conv2d_direct_weight_grad_fn_scratch_floats(d, nthreads, tmp_floats);
}

int relate_conv2d_weight_grad_fn(float *dw, relate_conv2d_dy_fn dy_of, void *ctx, size_t tmp_floats, const float *x,
                                 const relate_conv2d_dims *d, float *scratch)
{
    if (!uses_direct(relate_conv2d_get_backend(), d))
        return -1;
    return relate_conv2d_direct_weight_grad_fn(dw, dy_of, ctx, tmp_floats, x, d, scratch);
}

bool relate_conv2d_blocked_fits(const relate_conv2d_dims *d)
{
    if (!uses_onednn(relate_conv2d_get_backend()) || !d->blocked ||
        ((d->blocked & RELATE_CONV_BLOCKED_X) && d->c % 16) || ((d->blocked & RELATE_CONV_BLOCKED_Y) && d->o % 16))
        return false;
    const int slice = onednn_slice(d);
    const int sizes[2] = {slice, d->n % slice};
    for (int i = 0; i < 2; i++) {
        relate_conv2d_dims s = slice_dims(d, sizes[i]);
        if (sizes[i] && relate_conv2d_onednn_scratch_floats(&s) == 0)
            return false;
    }
    return true;
}

bool relate_conv2d_blocked_preferred(const relate_conv2d_dims *d)
{
    const relate_blocked_mode mode = relate_blocked_layout_mode();
    if (mode == RELATE_BLOCKED_OFF || !relate_conv2d_blocked_fits(d))
        return false;
    if (mode == RELATE_BLOCKED_ALWAYS)
        return true;
    /* Only where the layout saves reorders: oneDNN's AVX-512 kernels compute in nChw16c, its AVX2
     * ones block by 8, and there the layout would only move the reorders and add batch norm's
     * blocked kernels. Counted against the same convolution in NCHW, so a layer whose other side
     * is reordered anyway (conv4's layer 2, 8 input channels) still gains from the blocked one. */
    const int slice = onednn_slice(d);
    const int sizes[2] = {slice, d->n % slice};
    for (int i = 0; i < 2; i++) {
        relate_conv2d_dims s = slice_dims(d, sizes[i]), plain = s;
        plain.blocked = 0;
        if (sizes[i] && relate_conv2d_onednn_activation_reorders(&s) >= relate_conv2d_onednn_activation_reorders(&plain))
            return false;
    }
    return true;
}

/* Where oneDNN fails on a blocked slice at run time (it accepted the shape when the graph was
 * built, so only for want of memory): the slice in NCHW through im2col + sgemm, in memory of its
 * own. y (or dx, dw) is left as NaN when even that memory is missing, so the step's loss shows it. */
static void blocked_fallback(float *y, float *dx, float *dw, const float *dy, const float *x, const float *w,
                             const relate_conv2d_dims *d, bool dx_store)
{
    relate_conv2d_dims p = *d;
    p.blocked = 0;
    const bool bx = d->blocked & RELATE_CONV_BLOCKED_X, by = d->blocked & RELATE_CONV_BLOCKED_Y;
    const size_t nx = (size_t)p.n * p.c * p.h * p.w, ny = (size_t)p.n * p.o * p.ho * p.wo;
    float *px = malloc(nx * sizeof(float)), *py = malloc(ny * sizeof(float));
    float *pdx = dx ? calloc(nx, sizeof(float)) : NULL, *scr = malloc(blas_scratch_floats(&p) * sizeof(float) + 64);
    if (!px || !py || !scr || (dx && !pdx)) {
        float *outs[3] = {y, dx, dw};
        size_t lens[3] = {ny, nx, (size_t)p.o * p.c * p.kh * p.kw};
        for (int k = 0; k < 3; k++)
            for (size_t i = 0; outs[k] && i < lens[k]; i++)
                outs[k][i] = __builtin_nanf("");
    } else {
        if (bx)
            relate_blocked16_to_nchw(px, x, p.n, p.c, p.h * p.w, false);
        else
            memcpy(px, x, nx * sizeof(float));
        if (y) {
            blas_forward(py, px, w, &p, scr);
            if (by)
                relate_nchw_to_blocked16(y, py, p.n, p.o, p.ho * p.wo, false);
            else
                memcpy(y, py, ny * sizeof(float));
        } else {
            if (by)
                relate_blocked16_to_nchw(py, dy, p.n, p.o, p.ho * p.wo, false);
            else
                memcpy(py, dy, ny * sizeof(float));
            blas_backward(pdx, dw, py, px, w, &p, scr);
            if (dx && bx) {
                relate_nchw_to_blocked16(dx, pdx, p.n, p.c, p.h * p.w, !dx_store);
            } else if (dx) {
                for (size_t i = 0; i < nx; i++)
                    dx[i] = dx_store ? pdx[i] : dx[i] + pdx[i];
            }
        }
    }
    free(px);
    free(py);
    free(pdx);
    free(scr);
}

void relate_conv2d_forward(float *y, const float *x, const float *w, const relate_conv2d_dims *d,
                           float *scratch)
{
    const relate_conv_backend b = relate_conv2d_get_backend();
    if (!uses_onednn(b) && d->blocked) { /* the backend changed since the graph chose the layout */
        blocked_fallback(y, NULL, NULL, NULL, x, w, d, false);
        return;
    }
    if (!uses_onednn(b)) {
        blas_forward(y, x, w, d, scratch);
        return;
    }
    if (uses_direct(b, d) && relate_conv2d_direct_forward(y, x, w, d, scratch) == 0)
        return;
    const int slice = onednn_slice(d);
    const size_t in_img = (size_t)d->c * d->h * d->w, out_img = (size_t)d->o * d->ho * d->wo;
    for (int i0 = 0; i0 < d->n; i0 += slice) {
        relate_conv2d_dims s = slice_dims(d, d->n - i0 < slice ? d->n - i0 : slice);
        float *ys = y + (size_t)i0 * out_img;
        const float *xs = x + (size_t)i0 * in_img;
        if (relate_conv2d_onednn_forward(ys, xs, w, &s, scratch) != 0) {
            if (s.blocked)
                blocked_fallback(ys, NULL, NULL, NULL, xs, w, &s, false);
            else
                blas_forward(ys, xs, w, &s, scratch);
        }
    }
}

void relate_conv2d_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                            const relate_conv2d_dims *d, float *scratch)
{
    relate_conv2d_backward_ex(dx, dw, dy, x, w, d, scratch, false);
}

void relate_conv2d_backward_ex(float *dx, float *dw, const float *dy, const float *x, const float *w,
                               const relate_conv2d_dims *d, float *scratch, bool dx_store)
{
    if (!dx && !dw)
        return;
    const size_t in_img = (size_t)d->c * d->h * d->w, out_img = (size_t)d->o * d->ho * d->wo;
    const relate_conv_backend b = relate_conv2d_get_backend();
    if (!uses_onednn(b) && d->blocked) {
        blocked_fallback(NULL, dx, dw, dy, x, w, d, dx_store);
        return;
    }
    if (!uses_onednn(b)) {
        /* col2im scatters by adding, so a stored dx starts from zeros. */
        if (dx && dx_store)
            memset(dx, 0, (size_t)d->n * in_img * sizeof *dx);
        blas_backward(dx, dw, dy, x, w, d, scratch);
        return;
    }
    /* The direct kernel has no input gradient (a stem's input is data): with one asked for, the
     * weight gradient goes to oneDNN as well, which computes both from one copy of dy. */
    if (!dx && uses_direct(b, d) && relate_conv2d_direct_weight_grad(dw, dy, x, d, scratch) == 0)
        return;
    /* conv4's layer 2 in the blocked layout: both gradients without oneDNN's reorders. */
    if (uses_direct_backward(b, d) && relate_conv2d_direct_backward(dx, dw, dy, x, w, d, scratch, dx_store) == 0)
        return;
    /* Slices add their weight gradients one after another, in image order. */
    const int slice = onednn_slice(d);
    for (int i0 = 0; i0 < d->n; i0 += slice) {
        relate_conv2d_dims s = slice_dims(d, d->n - i0 < slice ? d->n - i0 : slice);
        float *dxs = dx ? dx + (size_t)i0 * in_img : NULL, *dws = dw;
        const float *dys = dy + (size_t)i0 * out_img, *xs = x + (size_t)i0 * in_img;
        if (relate_conv2d_onednn_backward(&dxs, &dws, dys, xs, w, &s, scratch, dx_store) == 0 || (!dxs && !dws))
            continue;
        if (s.blocked) {
            blocked_fallback(NULL, dxs, dws, dys, xs, w, &s, dx_store);
        } else {
            if (dxs && dx_store) /* the fallback adds: from zeros, whatever oneDNN left there */
                memset(dxs, 0, (size_t)s.n * in_img * sizeof *dxs);
            blas_backward(dxs, dws, dys, xs, w, &s, scratch);
        }
    }
}

void relate_conv2d_forward_ref(float *y, const float *x, const float *w, const relate_conv2d_dims *d)
{
    for (int i = 0; i < d->n; i++)
        for (int o = 0; o < d->o; o++)
            for (int oy = 0; oy < d->ho; oy++)
                for (int ox = 0; ox < d->wo; ox++) {
                    double acc = 0;
                    for (int c = 0; c < d->c; c++)
                        for (int ky = 0; ky < d->kh; ky++)
                            for (int kx = 0; kx < d->kw; kx++) {
                                int iy = oy * d->stride - d->pad + ky, ix = ox * d->stride - d->pad + kx;
                                if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w)
                                    continue;
                                acc += (double)x[(((size_t)i * d->c + c) * d->h + iy) * d->w + ix] *
                                       w[(((size_t)o * d->c + c) * d->kh + ky) * d->kw + kx];
                            }
                    y[(((size_t)i * d->o + o) * d->ho + oy) * d->wo + ox] = (float)acc;
                }
}

void relate_conv2d_backward_ref(float *dx, float *dw, const float *dy, const float *x,
                                const float *w, const relate_conv2d_dims *d)
{
    if (dw) {
        for (int o = 0; o < d->o; o++)
            for (int c = 0; c < d->c; c++)
                for (int ky = 0; ky < d->kh; ky++)
                    for (int kx = 0; kx < d->kw; kx++) {
                        double acc = 0;
                        for (int i = 0; i < d->n; i++)
                            for (int oy = 0; oy < d->ho; oy++)
                                for (int ox = 0; ox < d->wo; ox++) {
                                    int iy = oy * d->stride - d->pad + ky, ix = ox * d->stride - d->pad + kx;
                                    if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w)
                                        continue;
                                    acc += (double)dy[(((size_t)i * d->o + o) * d->ho + oy) * d->wo + ox] *
                                           x[(((size_t)i * d->c + c) * d->h + iy) * d->w + ix];
                                }
                        dw[(((size_t)o * d->c + c) * d->kh + ky) * d->kw + kx] += (float)acc;
                    }
    }
    if (dx) {
        for (int i = 0; i < d->n; i++)
            for (int c = 0; c < d->c; c++)
                for (int iy = 0; iy < d->h; iy++)
                    for (int ix = 0; ix < d->w; ix++) {
                        double acc = 0;
                        for (int o = 0; o < d->o; o++)
                            for (int ky = 0; ky < d->kh; ky++)
                                for (int kx = 0; kx < d->kw; kx++) {
                                    int ty = iy + d->pad - ky, tx = ix + d->pad - kx;
                                    if (ty < 0 || tx < 0 || ty % d->stride || tx % d->stride)
                                        continue;
                                    int oy = ty / d->stride, ox = tx / d->stride;
                                    if (oy >= d->ho || ox >= d->wo)
                                        continue;
                                    acc += (double)dy[(((size_t)i * d->o + o) * d->ho + oy) * d->wo + ox] *
                                           w[(((size_t)o * d->c + c) * d->kh + ky) * d->kw + kx];
                                }
                        dx[(((size_t)i * d->c + c) * d->h + iy) * d->w + ix] += (float)acc;
                    }
    }
}
