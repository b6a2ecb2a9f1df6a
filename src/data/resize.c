/* resize.c: Pillow's BILINEAR Image.resize (the separable fixed-point convolution of
 * ImagingResample: triangle filter widened by the scale when shrinking, 22-bit coefficients,
 * 8-bit result after each pass), on 8-bit RGB images.
 * Not a general resampler: bilinear only, whole-image boxes only (spec 4.4). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "data/transforms_internal.h"

#define PRECISION_BITS 22 /* 32 - 8 - 2, as Pillow for 8-bit images */

/* Window size of one output sample for in -> out. */
static int window_size(int in, int out)
{
    double scale = (double)in / out, support = scale > 1.0 ? scale : 1.0;
    return (int)ceil(support) * 2 + 1;
}

static size_t pass_bytes(int in, int out)
{
    return (size_t)out * ((size_t)window_size(in, out) * sizeof(int32_t) + 2 * sizeof(int32_t));
}

size_t relate_resize_scratch_bytes(int src_w, int src_h, int dst_w, int dst_h)
{
    return pass_bytes(src_w, dst_w) + pass_bytes(src_h, dst_h) + (size_t)dst_w * src_h * 3 + 64;
}

static double bilinear(double x)
{
    x = x < 0 ? -x : x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc: for output o, inputs bounds[2o] ...
 * bounds[2o] + bounds[2o+1] - 1 with fixed-point weights k[o * ksize + i]. */
static int coefficients(int in, int out, int32_t *bounds, int32_t *k)
{
    double scale = (double)in / out, filterscale = scale > 1.0 ? scale : 1.0, support = filterscale;
    int ksize = window_size(in, out);
    for (int o = 0; o < out; o++) {
        double center = (o + 0.5) * scale, total = 0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0)
            xmin = 0;
        if (xmax > in)
            xmax = in;
        xmax -= xmin;
        int32_t *ko = k + (size_t)o * ksize;
        double kd[ksize];
        for (int x = 0; x < xmax; x++) {
            kd[x] = bilinear((x + xmin - center + 0.5) * ss);
            total += kd[x];
        }
        for (int x = 0; x < xmax; x++) {
            double v = total != 0.0 ? kd[x] / total : kd[x];
            ko[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS)) : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        for (int x = xmax; x < ksize; x++)
            ko[x] = 0;
        bounds[2 * o] = xmin;
        bounds[2 * o + 1] = xmax;
    }
    return ksize;
}

static uint8_t clip8(int32_t v)
{
    v >>= PRECISION_BITS; /* arithmetic shift, as Pillow */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

void relate_resize_bilinear(const relate_image *src, relate_image *dst, uint8_t *scratch)
{
    const int sw = src->width, sh = src->height, dw = dst->width, dh = dst->height;
    if (sw == dw && sh == dh) {
        memcpy(dst->pixels, src->pixels, (size_t)sw * sh * 3);
        return;
    }
    int32_t *hb = (int32_t *)scratch, *hk = hb + 2 * (size_t)dw;
    int hks = window_size(sw, dw);
    int32_t *vb = hk + (size_t)dw * hks, *vk = vb + 2 * (size_t)dh;
    int vks = window_size(sh, dh);
    uint8_t *mid = (uint8_t *)(vk + (size_t)dh * vks);
    const uint8_t *rows = src->pixels;
    int mid_w = sw;
    /* A pass runs only when its dimension changes, as in Pillow. */
    if (dw != sw) {
        coefficients(sw, dw, hb, hk);
        for (int y = 0; y < sh; y++) {
            const uint8_t *in = src->pixels + (size_t)y * sw * 3;
            uint8_t *out = (dh == sh ? dst->pixels : mid) + (size_t)y * dw * 3;
            for (int x = 0; x < dw; x++) {
                const int32_t *k = hk + (size_t)x * hks;
                int xmin = hb[2 * x], n = hb[2 * x + 1];
                for (int c = 0; c < 3; c++) {
                    int32_t acc = 1 << (PRECISION_BITS - 1);
                    for (int i = 0; i < n; i++)
                        acc += in[(xmin + i) * 3 + c] * k[i];
                    out[x * 3 + c] = clip8(acc);
                }
            }
        }
        if (dh == sh)
            return;
        rows = mid;
        mid_w = dw;
    }
    coefficients(sh, dh, vb, vk);
    for (int y = 0; y < dh; y++) {
        const int32_t *k = vk + (size_t)y * vks;
        int ymin = vb[2 * y], n = vb[2 * y + 1];
        uint8_t *out = dst->pixels + (size_t)y * mid_w * 3;
        for (int x = 0; x < mid_w * 3; x++) {
            int32_t acc = 1 << (PRECISION_BITS - 1);
            for (int i = 0; i < n; i++)
                acc += rows[(size_t)(ymin + i) * mid_w * 3 + x] * k[i];
            out[x] = clip8(acc);
        }
    }
}
