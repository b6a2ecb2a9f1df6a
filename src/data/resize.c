/* resize.c: Pillow's BILINEAR Image.resize (the separable fixed-point convolution of
 * ImagingResample: triangle filter widened by the scale when shrinking, 22-bit coefficients,
 * 8-bit result after each pass), on 8-bit RGB images or a box of one (spec 4.4).
 * Not a general resampler: bilinear only, no other filters, no Pillow reducing_gap. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "data/transforms_internal.h"

#define PRECISION_BITS 22 /* 32 - 8 - 2, as Pillow for 8-bit images */

/* Window size of one output sample for in -> out (Pillow's ksize). */
static int window_size(int in, int out)
{
    double scale = (double)in / out, support = scale > 1.0 ? scale : 1.0;
    return (int)ceil(support) * 2 + 1;
}

static size_t pass_bytes(int in, int out)
{
    return (size_t)out * ((size_t)window_size(in, out) * sizeof(int32_t) + 2 * sizeof(int32_t));
}

/* Every term grows with src_w and src_h, so the size for a whole image also bounds the size for
 * any box inside it (relate_transform_apply relies on that). */
static size_t align4(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

/* Coefficients of both passes, the 8-bit intermediate (dst_w x src_h) and one int32 row of
 * vertical sums. */
size_t relate_resize_scratch_bytes(int src_w, int src_h, int dst_w, int dst_h)
{
    return pass_bytes(src_w, dst_w) + pass_bytes(src_h, dst_h) + align4((size_t)dst_w * src_h * 3) +
           (size_t)dst_w * 3 * sizeof(int32_t) + 64;
}

static double bilinear(double x)
{
    x = x < 0 ? -x : x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc: output o reads inputs bounds[2o] ...
 * bounds[2o] + bounds[2o+1] - 1 with fixed-point weights k[o * ksize + i]. The filter is
 * evaluated twice (for the sum, then for the weight) instead of being kept in a temporary
 * array: the values are identical and no variable-length buffer is needed. */
static void coefficients(int in, int out, int32_t *bounds, int32_t *k)
{
    double scale = (double)in / out, filterscale = scale > 1.0 ? scale : 1.0, support = filterscale;
    double ss = 1.0 / filterscale;
    int ksize = window_size(in, out);
    for (int o = 0; o < out; o++) {
        double center = (o + 0.5) * scale, total = 0;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0)
            xmin = 0;
        if (xmax > in)
            xmax = in;
        xmax -= xmin;
        int32_t *ko = k + (size_t)o * ksize;
        for (int x = 0; x < xmax; x++)
            total += bilinear((x + xmin - center + 0.5) * ss);
        for (int x = 0; x < xmax; x++) {
            double v = bilinear((x + xmin - center + 0.5) * ss);
            if (total != 0.0)
                v /= total;
            ko[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS)) : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        for (int x = xmax; x < ksize; x++)
            ko[x] = 0;
        bounds[2 * o] = xmin;
        bounds[2 * o + 1] = xmax;
    }
}

static inline uint8_t clip8(int32_t v)
{
    v >>= PRECISION_BITS; /* arithmetic shift, as Pillow */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Gives every window exactly ks taps inside [0, in) (needs in >= ks) by moving the windows at the
 * right edge left and padding with zero weights: the sums stay the same integers, and the
 * horizontal loop gets a constant trip count. */
static void fix_window_length(int in, int out, int32_t *bounds, int32_t *k, int ks)
{
    for (int o = 0; o < out; o++) {
        int32_t *ko = k + (size_t)o * ks;
        int xmin = bounds[2 * o], shift = xmin + ks - in;
        if (shift > 0) {
            for (int t = ks - 1; t >= shift; t--)
                ko[t] = ko[t - shift];
            for (int t = 0; t < shift; t++)
                ko[t] = 0;
            bounds[2 * o] = xmin - shift;
        }
        bounds[2 * o + 1] = ks;
    }
}

static inline __attribute__((always_inline)) void horizontal_row(const uint8_t *in, uint8_t *out, int dw,
                                                                 const int32_t *hb, const int32_t *hk, int ks,
                                                                 int fixed)
{
    for (int x = 0; x < dw; x++) {
        const int32_t *k = hk + (size_t)x * ks;
        const uint8_t *p = in + (size_t)hb[2 * x] * 3;
        const int n = fixed ? ks : hb[2 * x + 1];
        int32_t a0 = 1 << (PRECISION_BITS - 1), a1 = a0, a2 = a0;
        for (int i = 0; i < n; i++) {
            a0 += p[3 * i] * k[i];
            a1 += p[3 * i + 1] * k[i];
            a2 += p[3 * i + 2] * k[i];
        }
        out[3 * x] = clip8(a0);
        out[3 * x + 1] = clip8(a1);
        out[3 * x + 2] = clip8(a2);
    }
}

void relate_resize_box(const relate_image *src, int top, int left, int bw, int bh, relate_image *dst,
                       uint8_t *scratch)
{
    const int dw = dst->width, dh = dst->height;
    const size_t sstride = (size_t)src->width * 3;
    const uint8_t *box = src->pixels + (size_t)top * sstride + (size_t)left * 3;
    if (bw == dw && bh == dh) {
        for (int y = 0; y < bh; y++)
            memcpy(dst->pixels + (size_t)y * dw * 3, box + (size_t)y * sstride, (size_t)bw * 3);
        return;
    }
    const int need_h = bw != dw, need_v = bh != dh;
    const int hks = window_size(bw, dw), vks = window_size(bh, dh);
    int32_t *hb = (int32_t *)scratch, *hk = hb + 2 * (size_t)dw;
    int32_t *vb = hk + (size_t)dw * hks, *vk = vb + 2 * (size_t)dh;
    uint8_t *mid = (uint8_t *)(vk + (size_t)dh * vks);

    /* As Pillow, the horizontal pass only visits the rows the vertical pass reads. */
    int y_first = 0, y_last = bh;
    if (need_v) {
        coefficients(bh, dh, vb, vk);
        y_first = vb[0];
        y_last = vb[2 * (dh - 1)] + vb[2 * (dh - 1) + 1];
    }
    const uint8_t *rows = box;
    size_t rstride = sstride;
    int row0 = 0; /* the box row that rows[0] holds */
    if (need_h) {
        coefficients(bw, dw, hb, hk);
        const int fixed = bw >= hks;
        if (fixed)
            fix_window_length(bw, dw, hb, hk, hks);
        uint8_t *hout = need_v ? mid : dst->pixels;
        for (int y = y_first; y < y_last; y++) {
            const uint8_t *in = box + (size_t)y * sstride;
            uint8_t *out = hout + (size_t)(need_v ? y - y_first : y) * dw * 3;
            if (fixed && hks == 3) /* every up-sampling: a constant trip count the compiler unrolls */
                horizontal_row(in, out, dw, hb, hk, 3, 1);
            else
                horizontal_row(in, out, dw, hb, hk, hks, fixed);
        }
        if (!need_v)
            return;
        rows = mid;
        rstride = (size_t)dw * 3;
        row0 = y_first;
    }
    /* Taps outermost, so that the loops over a row vectorise; the sums are the same integers
     * as Pillow's (integer addition is associative). */
    const int row_len = dw * 3;
    int32_t *acc = (int32_t *)(mid + align4((size_t)dw * bh * 3));
    for (int y = 0; y < dh; y++) {
        const int32_t *k = vk + (size_t)y * vks;
        int ymin = vb[2 * y] - row0, n = vb[2 * y + 1];
        uint8_t *out = dst->pixels + (size_t)y * row_len;
        for (int x = 0; x < row_len; x++)
            acc[x] = 1 << (PRECISION_BITS - 1);
        for (int i = 0; i < n; i++) {
            const uint8_t *in = rows + (size_t)(ymin + i) * rstride;
            const int32_t ki = k[i];
            for (int x = 0; x < row_len; x++)
                acc[x] += in[x] * ki;
        }
        for (int x = 0; x < row_len; x++)
            out[x] = clip8(acc[x]);
    }
}

void relate_resize_bilinear(const relate_image *src, relate_image *dst, uint8_t *scratch)
{
    relate_resize_box(src, 0, 0, src->width, src->height, dst, scratch);
}
