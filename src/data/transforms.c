/* transforms.c: the augmentation primitives of spec 4.4 (crop, flip, ColorJitter's four parts with
 * Pillow's 8-bit arithmetic, grayscale, padded crop, affine, ToTensor+Normalize, erasing, the
 * rotations of rotationnet) and the pipelines T1-T6 of spec 4.3 that draw their parameters.
 * Not the resize (resize.c), not the loader: no allocation, no threads, no global state, so
 * loader threads may call it concurrently with their own rng and scratch. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/transforms_internal.h"

/* Python's math.pi; math.radians multiplies by pi/180 (one rounded constant). */
#define RELATE_PI 3.14159265358979323846

/* A broken caller contract is a bug in relate (datasets always deliver S x S images). */
#define TF_REQUIRE(cond, ...)                                                              \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: relate_transform_apply: ", __FILE__, __LINE__);        \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

static inline uint8_t clip8(int v)
{
    return (uint8_t)(v <= 0 ? 0 : v < 256 ? v : 255);
}

/* Pillow's RGB -> L (rgb2l: L24 >> 16). */
static inline int luma(const uint8_t *p)
{
    return (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16;
}

/* ------------------------------------------------------------------ geometry */

void relate_crop(const relate_image *src, int i, int j, int h, int w, relate_image *dst)
{
    for (int y = 0; y < h; y++)
        memcpy(dst->pixels + (size_t)y * w * 3, src->pixels + ((size_t)(i + y) * src->width + j) * 3,
               (size_t)w * 3);
}

void relate_hflip(relate_image *img)
{
    const int w = img->width;
    for (int y = 0; y < img->height; y++) {
        uint8_t *row = img->pixels + (size_t)y * w * 3;
        for (int a = 0, b = w - 1; a < b; a++, b--)
            for (int c = 0; c < 3; c++) {
                uint8_t t = row[3 * a + c];
                row[3 * a + c] = row[3 * b + c];
                row[3 * b + c] = t;
            }
    }
}

void relate_pad_crop(const relate_image *src, int pad, int i, int j, int s, relate_image *dst)
{
    const int W = src->width, H = src->height;
    /* The window's columns that fall on the source: [x0, x1) of the output row. */
    int x0 = pad - j, x1 = pad - j + W;
    x0 = x0 < 0 ? 0 : x0 > s ? s : x0;
    x1 = x1 < 0 ? 0 : x1 > s ? s : x1;
    for (int y = 0; y < s; y++) {
        uint8_t *out = dst->pixels + (size_t)y * s * 3;
        int sy = i + y - pad;
        if (sy < 0 || sy >= H || x1 <= x0) {
            memset(out, 0, (size_t)s * 3);
            continue;
        }
        memset(out, 0, (size_t)x0 * 3);
        memcpy(out + (size_t)x0 * 3, src->pixels + ((size_t)sy * W + (x0 + j - pad)) * 3,
               (size_t)(x1 - x0) * 3);
        memset(out + (size_t)x1 * 3, 0, (size_t)(s - x1) * 3);
    }
}

void relate_affine_f64(const relate_image *src, double angle, int tx, int ty, double scale,
                       double shear_x, relate_image *dst)
{
    const int W = src->width, H = src->height;
    /* torchvision 0.5's _get_inverse_affine_matrix, operation for operation (the y-shear is 0
     * but kept so the doubles round exactly as in Python), with its PIL centre (W/2+.5, H/2+.5). */
    const double deg = RELATE_PI / 180.0;
    double rot = angle * deg, sx = shear_x * deg, sy = 0.0 * deg;
    double cx = W * 0.5 + 0.5, cy = H * 0.5 + 0.5;
    double a = cos(rot - sy) / cos(sy);
    double b = -cos(rot - sy) * tan(sx) / cos(sy) - sin(rot);
    double c = sin(rot - sy) / cos(sy);
    double d = -sin(rot - sy) * tan(sx) / cos(sy) + cos(rot);
    double m0 = d / scale, m1 = -b / scale, m3 = -c / scale, m4 = a / scale;
    double m2 = 0.0 / scale, m5 = 0.0 / scale;
    m2 += m0 * (-cx - tx) + m1 * (-cy - ty);
    m5 += m3 * (-cx - tx) + m4 * (-cy - ty);
    m2 += cx;
    m5 += cy;
    const size_t stride = (size_t)W * 3;
    /* Pillow's ImagingGenericTransform + affine_transform + bilinear_filter32RGB. */
    for (int y = 0; y < dst->height; y++) {
        uint8_t *out = dst->pixels + (size_t)y * dst->width * 3;
        double yin = y + 0.5;
        for (int x = 0; x < dst->width; x++, out += 3) {
            double xin = x + 0.5;
            double xs = m0 * xin + m1 * yin + m2;
            double ys = m3 * xin + m4 * yin + m5;
            if (xs < 0.0 || xs >= W || ys < 0.0 || ys >= H) {
                out[0] = out[1] = out[2] = 0;
                continue;
            }
            xs -= 0.5;
            ys -= 0.5;
            int x0 = xs < 0.0 ? (int)floor(xs) : (int)xs;
            int y0 = ys < 0.0 ? (int)floor(ys) : (int)ys;
            double dx = xs - x0, dy = ys - y0;
            int xa = x0 < 0 ? 0 : x0 >= W ? W - 1 : x0;
            int xb = x0 + 1 < 0 ? 0 : x0 + 1 >= W ? W - 1 : x0 + 1;
            int ya = y0 < 0 ? 0 : y0 >= H ? H - 1 : y0;
            const uint8_t *ra = src->pixels + (size_t)ya * stride;
            const uint8_t *rb = (y0 + 1 >= 0 && y0 + 1 < H) ? src->pixels + (size_t)(y0 + 1) * stride : NULL;
            for (int ch = 0; ch < 3; ch++) {
                int pa = ra[3 * xa + ch], pb = ra[3 * xb + ch];
                double v1 = pa + (pb - pa) * dx, v2 = v1;
                if (rb) {
                    int qa = rb[3 * xa + ch], qb = rb[3 * xb + ch];
                    v2 = qa + (qb - qa) * dx;
                }
                v1 = v1 + (v2 - v1) * dy;
                out[ch] = (uint8_t)(int)v1; /* Pillow truncates, never rounds */
            }
        }
    }
}

void relate_affine(const relate_image *src, float angle, int tx, int ty, float scale, float shear_x,
                   relate_image *dst)
{
    relate_affine_f64(src, angle, tx, ty, scale, shear_x, dst);
}

/* ------------------------------------------------------------------ colour */

/* Pillow's ImagingBlend of one byte: alpha is a C float and the expression is evaluated in
 * float; inside [0, 1] the result is truncated without clipping, outside it is clipped. */
static inline uint8_t blend(int d, int i, float alpha)
{
    float v = (float)d + alpha * (float)(i - d);
    if (alpha >= 0.0f && alpha <= 1.0f)
        return (uint8_t)(int)v;
    return v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t)(int)v;
}

/* Blend with a constant degenerate value d, through a 256-entry table (same values, fewer
 * float operations). */
static void blend_constant(relate_image *img, int d, float alpha)
{
    uint8_t lut[256];
    for (int v = 0; v < 256; v++)
        lut[v] = alpha == 0.0f ? (uint8_t)d : alpha == 1.0f ? (uint8_t)v : blend(d, v, alpha);
    size_t n = (size_t)img->width * img->height * 3;
    for (size_t k = 0; k < n; k++)
        img->pixels[k] = lut[img->pixels[k]];
}

void relate_adjust_brightness(relate_image *img, float factor)
{
    blend_constant(img, 0, factor);
}

void relate_adjust_contrast(relate_image *img, float factor)
{
    /* ImageStat's mean of the L image (an exact integer sum, divided in double), rounded by
     * int(mean + 0.5). */
    size_t n = (size_t)img->width * img->height;
    int64_t sum = 0;
    for (size_t p = 0; p < n; p++)
        sum += luma(img->pixels + 3 * p);
    double mean = (double)sum / (double)n;
    blend_constant(img, (int)(mean + 0.5), factor);
}

void relate_adjust_saturation(relate_image *img, float factor)
{
    if (factor == 1.0f)
        return;
    if (factor == 0.0f) { /* blend returns the degenerate image, L replicated */
        relate_to_grayscale(img);
        return;
    }
    /* Per block: the degenerate image's bytes, then one branch-free blend loop over bytes (the
     * [0, 1] test is loop-invariant), which vectorises. */
    enum { BLK = 64 };
    const int inside = factor >= 0.0f && factor <= 1.0f;
    const size_t n = (size_t)img->width * img->height;
    int32_t d[3 * BLK];
    for (size_t p0 = 0; p0 < n; p0 += BLK) {
        const int m = (int)(n - p0 < BLK ? n - p0 : BLK);
        uint8_t *px = img->pixels + 3 * p0;
        for (int k = 0; k < m; k++)
            d[3 * k] = d[3 * k + 1] = d[3 * k + 2] = luma(px + 3 * k);
        for (int k = 0; k < 3 * m; k++) {
            float v = (float)d[k] + factor * (float)(px[k] - d[k]);
            if (!inside)
                v = v <= 0.0f ? 0.0f : v >= 255.0f ? 255.0f : v;
            px[k] = (uint8_t)(int)v;
        }
    }
}

void relate_rgb_to_hsv(const uint8_t rgb[3], uint8_t hsv[3])
{
    /* Pillow's Convert.c rgb2hsv: the float variables round to float32 on every assignment,
     * the double constants make the rest double. */
    int r = rgb[0], g = rgb[1], b = rgb[2];
    int mx = r > g ? r : g, mn = r < g ? r : g;
    mx = b > mx ? b : mx;
    mn = b < mn ? b : mn;
    hsv[2] = (uint8_t)mx;
    if (mx == mn) {
        hsv[0] = hsv[1] = 0;
        return;
    }
    float cr = (float)(mx - mn);
    float s = cr / (float)mx;
    float rc = (float)(mx - r) / cr;
    float gc = (float)(mx - g) / cr;
    float bc = (float)(mx - b) / cr;
    float h;
    if (r == mx)
        h = bc - gc;
    else if (g == mx)
        h = (float)(2.0 + rc - bc);
    else
        h = (float)(4.0 + gc - rc);
    h = (float)fmod(h / 6.0 + 1.0, 1.0);
    hsv[0] = clip8((int)(h * 255.0));
    hsv[1] = clip8((int)(s * 255.0));
}

void relate_hsv_to_rgb(const uint8_t hsv[3], uint8_t rgb[3])
{
    int h = hsv[0], s = hsv[1], v = hsv[2];
    if (s == 0) {
        rgb[0] = rgb[1] = rgb[2] = (uint8_t)v;
        return;
    }
    /* Pillow's hsv2rgb: f and fs are float32, fs * f is a float32 product. */
    int i = (int)floor((float)h * 6.0 / 255.0);
    float f = (float)((float)h * 6.0 / 255.0 - (float)i);
    float fs = (float)((float)s / 255.0);
    float fsf = fs * f;
    uint8_t p = clip8((int)round((float)v * (1.0 - fs)));
    uint8_t q = clip8((int)round((float)v * (1.0 - fsf)));
    uint8_t t = clip8((int)round((float)v * (1.0 - fs * (1.0 - f))));
    uint8_t V = (uint8_t)v;
    switch (i % 6) {
    case 0: rgb[0] = V, rgb[1] = t, rgb[2] = p; break;
    case 1: rgb[0] = q, rgb[1] = V, rgb[2] = p; break;
    case 2: rgb[0] = p, rgb[1] = V, rgb[2] = t; break;
    case 3: rgb[0] = p, rgb[1] = q, rgb[2] = V; break;
    case 4: rgb[0] = t, rgb[1] = p, rgb[2] = V; break;
    default: rgb[0] = V, rgb[1] = p, rgb[2] = q; break;
    }
}

uint8_t relate_hue_delta(double hue_factor)
{
    /* NumPy's float -> uint8 cast wraps on x86 (spec A24); the wrap is made explicit here. */
    int d = (int)(hue_factor * 255);
    return (uint8_t)(((d % 256) + 256) % 256);
}

/* The block versions below compute exactly what the scalar pair above computes (the scalar pair
 * stays as their oracle), branch-free over a block of pixels so that the compiler vectorises
 * them: the hue shift was ~90 ns a pixel through the scalar functions. Exact rewrites used:
 * fmod(x, 1) = x - (x >= 1) for x in [0.83, 1.84] (x - 1 is exact there), floor = truncation
 * for x >= 0, and C's round(x) = t + (x - t >= 0.5) with t = (int)x (x - t is exact). */
#define HSV_BLOCK 64

static void rgb_to_hsv_block(const uint8_t *rgb, uint8_t *hsv, int m)
{
    int32_t R[HSV_BLOCK], G[HSV_BLOCK], B[HSV_BLOCK], Ho[HSV_BLOCK], So[HSV_BLOCK], Vo[HSV_BLOCK];
    for (int k = 0; k < m; k++) {
        R[k] = rgb[3 * k];
        G[k] = rgb[3 * k + 1];
        B[k] = rgb[3 * k + 2];
    }
    for (int k = 0; k < m; k++) {
        int r = R[k], g = G[k], b = B[k];
        int mx = r > g ? r : g, mn = r < g ? r : g;
        mx = b > mx ? b : mx;
        mn = b < mn ? b : mn;
        int cri = mx - mn, grey = cri == 0;
        float cr = (float)(cri + grey); /* grey lanes are discarded; this avoids 0/0 */
        float s = cr / (float)(mx + grey);
        float rc = (float)(mx - r) / cr, gc = (float)(mx - g) / cr, bc = (float)(mx - b) / cr;
        float h0 = bc - gc;
        float h1 = (float)(2.0 + (double)rc - (double)bc);
        float h2 = (float)(4.0 + (double)gc - (double)rc);
        /* selections by exact 0/1 arithmetic: no branch, so the loop vectorises */
        int c0 = r == mx, c1 = !c0 & (g == mx), c2 = !c0 & !c1;
        float h = h0 * (float)c0 + h1 * (float)c1 + h2 * (float)c2;
        double x = (double)h / 6.0 + 1.0;
        x -= (double)(int)x; /* subtracts 0 or 1 */
        float hh = (float)x;
        /* hh and s lie in [0, 1], so Pillow's CLIP8 never acts */
        int H = (int)((double)hh * 255.0), S = (int)((double)s * 255.0);
        Ho[k] = H * (1 - grey);
        So[k] = S * (1 - grey);
        Vo[k] = mx;
    }
    for (int k = 0; k < m; k++) {
        hsv[3 * k] = (uint8_t)Ho[k];
        hsv[3 * k + 1] = (uint8_t)So[k];
        hsv[3 * k + 2] = (uint8_t)Vo[k];
    }
}

/* x is in [0, 255] here (v * a factor in [0, 1]), so no clamp is needed. */
static inline int round_nonneg(double x)
{
    int t = (int)x;
    return t + (x - (double)t >= 0.5);
}

static void hsv_to_rgb_block(const uint8_t *hsv, uint8_t *rgb, int m)
{
    int32_t Hi[HSV_BLOCK], Si[HSV_BLOCK], Vi[HSV_BLOCK], Ro[HSV_BLOCK], Go[HSV_BLOCK], Bo[HSV_BLOCK];
    for (int k = 0; k < m; k++) {
        Hi[k] = hsv[3 * k];
        Si[k] = hsv[3 * k + 1];
        Vi[k] = hsv[3 * k + 2];
    }
    for (int k = 0; k < m; k++) {
        int h = Hi[k], s = Si[k], v = Vi[k];
        double x = (double)(float)h * 6.0 / 255.0;
        int i = (int)x;
        float f = (float)(x - (double)(float)i);
        float fs = (float)((double)(float)s / 255.0);
        float fsf = fs * f;
        double vv = (double)(float)v;
        int p = round_nonneg(vv * (1.0 - (double)fs));
        int q = round_nonneg(vv * (1.0 - (double)fsf));
        int t = round_nonneg(vv * (1.0 - (double)fs * (1.0 - (double)f)));
        /* h = 255 gives exactly 6, which Pillow's i % 6 maps to 0 */
        int e0 = (i == 0) | (i == 6), e1 = i == 1, e2 = i == 2, e3 = i == 3, e4 = i == 4, e5 = i == 5;
        int R = v * (e0 | e5) + q * e1 + p * (e2 | e3) + t * e4;
        int G = t * e0 + v * (e1 | e2) + q * e3 + p * (e4 | e5);
        int B = p * (e0 | e1) + t * e2 + v * (e3 | e4) + q * e5;
        int z = s == 0;
        Ro[k] = R * (1 - z) + v * z;
        Go[k] = G * (1 - z) + v * z;
        Bo[k] = B * (1 - z) + v * z;
    }
    for (int k = 0; k < m; k++) {
        rgb[3 * k] = (uint8_t)Ro[k];
        rgb[3 * k + 1] = (uint8_t)Go[k];
        rgb[3 * k + 2] = (uint8_t)Bo[k];
    }
}

void relate_rgb_to_hsv_n(const uint8_t *rgb, uint8_t *hsv, size_t n)
{
    for (size_t p = 0; p < n; p += HSV_BLOCK)
        rgb_to_hsv_block(rgb + 3 * p, hsv + 3 * p, (int)(n - p < HSV_BLOCK ? n - p : HSV_BLOCK));
}

void relate_hsv_to_rgb_n(const uint8_t *hsv, uint8_t *rgb, size_t n)
{
    for (size_t p = 0; p < n; p += HSV_BLOCK)
        hsv_to_rgb_block(hsv + 3 * p, rgb + 3 * p, (int)(n - p < HSV_BLOCK ? n - p : HSV_BLOCK));
}

void relate_adjust_hue_delta(relate_image *img, uint8_t delta)
{
    /* The round trip through HSV runs even for delta 0: it is lossy, as in torchvision. */
    size_t n = (size_t)img->width * img->height;
    uint8_t hsv[3 * HSV_BLOCK];
    for (size_t p = 0; p < n; p += HSV_BLOCK) {
        int m = (int)(n - p < HSV_BLOCK ? n - p : HSV_BLOCK);
        uint8_t *px = img->pixels + 3 * p;
        rgb_to_hsv_block(px, hsv, m);
        for (int k = 0; k < m; k++)
            hsv[3 * k] = (uint8_t)(hsv[3 * k] + delta);
        hsv_to_rgb_block(hsv, px, m);
    }
}

void relate_adjust_hue(relate_image *img, float hue_factor)
{
    relate_adjust_hue_delta(img, relate_hue_delta(hue_factor));
}

void relate_to_grayscale(relate_image *img)
{
    size_t n = (size_t)img->width * img->height;
    for (size_t p = 0; p < n; p++) {
        uint8_t *px = img->pixels + 3 * p;
        px[0] = px[1] = px[2] = (uint8_t)luma(px);
    }
}

/* ------------------------------------------------------------------ tensors */

void relate_to_tensor_normalize(const relate_image *img, const float mean[3], const float std[3], float *out)
{
    /* torch: x.float().div(255), then sub_(mean).div_(std), all float32 (no reciprocal
     * multiply, no fused multiply-add: the build does not contract). */
    const size_t n = (size_t)img->width * img->height;
    for (int c = 0; c < 3; c++) {
        float *o = out + c * n;
        const uint8_t *in = img->pixels + c;
        const float m = mean[c], s = std[c];
        for (size_t p = 0; p < n; p++)
            o[p] = ((float)in[3 * p] / 255.0f - m) / s;
    }
}

void relate_erase(float *chw, int h, int w, int i, int j, int bh, int bw)
{
    for (int c = 0; c < 3; c++)
        for (int y = i; y < i + bh; y++)
            memset(chw + ((size_t)c * h + y) * w + j, 0, (size_t)bw * sizeof(float));
}

/* The turn is chosen once per call, not per pixel: rotationnet turns 3 of every 4 images of its
 * batch each step, and the per-pixel switch made that a serial 5% of the step. Each output row
 * reads one input column (turns 1 and 3) or row (turn 2); values are copied, never computed. */
void relate_rotate90(const float *src, float *dst, int c, int s, int k)
{
    k = ((k % 4) + 4) % 4;
    const size_t plane = (size_t)s * s;
    for (int ch = 0; ch < c; ch++) {
        const float *x = src + ch * plane;
        float *o = dst + ch * plane;
        if (k == 0) {
            memcpy(o, x, plane * sizeof *o);
            continue;
        }
        for (int i = 0; i < s; i++) {
            float *orow = o + (size_t)i * s;
            if (k == 1) { /* o[i][j] = x[j][s-1-i] */
                const float *col = x + (s - 1 - i);
                for (int j = 0; j < s; j++)
                    orow[j] = col[(size_t)j * s];
            } else if (k == 2) { /* o[i][j] = x[s-1-i][s-1-j] */
                const float *row = x + (size_t)(s - 1 - i) * s + (s - 1);
                for (int j = 0; j < s; j++)
                    orow[j] = row[-j];
            } else { /* o[i][j] = x[s-1-j][i] */
                const float *col = x + (size_t)(s - 1) * s + i;
                for (int j = 0; j < s; j++)
                    orow[j] = col[-(ptrdiff_t)j * s];
            }
        }
    }
}

/* ------------------------------------------------------------------ samplers */

/* Python's random.uniform(a, b) and random.randint(a, b). */
static double uniform(relate_rng *r, double a, double b)
{
    return a + (b - a) * relate_rng_uniform_f64(r);
}

static int randint(relate_rng *r, int a, int b)
{
    return a + (int)relate_rng_below(r, (uint32_t)(b - a + 1));
}

void relate_rrc_sample(relate_rng *r, int width, int height, int *i, int *j, int *h, int *w)
{
    const double area = (double)width * height;
    const double lo = log(3.0 / 4.0), hi = log(4.0 / 3.0);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = uniform(r, 0.08, 1.0) * area;
        double ratio = exp(uniform(r, lo, hi));
        int cw = (int)rint(sqrt(target * ratio)), ch = (int)rint(sqrt(target / ratio));
        if (0 < cw && cw <= width && 0 < ch && ch <= height) {
            *i = randint(r, 0, height - ch);
            *j = randint(r, 0, width - cw);
            *h = ch;
            *w = cw;
            return;
        }
    }
    double q = (double)width / (double)height;
    int cw = width, ch = height;
    if (q < 3.0 / 4.0)
        ch = (int)rint(cw / (3.0 / 4.0));
    else if (q > 4.0 / 3.0)
        cw = (int)rint(ch * (4.0 / 3.0));
    *i = (height - ch) / 2;
    *j = (width - cw) / 2;
    *h = ch;
    *w = cw;
}

int relate_erase_sample(relate_rng *r, int h, int w, double c, int *i, int *j, int *bh, int *bw)
{
    if (!(relate_rng_uniform_f64(r) < 0.5))
        return 0;
    const double area = (double)h * w;
    for (int attempt = 0; attempt < 10; attempt++) {
        /* U(c, c) and U(1, 1) are constants but still consume their draws, as in torchvision. */
        double erase_area = uniform(r, c, c) * area;
        double aspect = uniform(r, 1.0, 1.0);
        int eh = (int)rint(sqrt(erase_area * aspect)), ew = (int)rint(sqrt(erase_area / aspect));
        if (eh < h && ew < w) {
            *i = randint(r, 0, h - eh);
            *j = randint(r, 0, w - ew);
            *bh = eh;
            *bw = ew;
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ pipelines */

#define SCRATCH_ALIGN 64

static size_t align_up(size_t n)
{
    return (n + SCRATCH_ALIGN - 1) & ~(size_t)(SCRATCH_ALIGN - 1);
}

static size_t image_bytes(int w, int h, int s)
{
    size_t a = (size_t)w * h, b = (size_t)s * s;
    return align_up((a > b ? a : b) * 3);
}

/* Two image buffers (the source copy and the affine output of T4) plus the resize's scratch;
 * the resize size for the whole image bounds the size for every crop inside it. */
size_t relate_transform_scratch_bytes(int w, int h, int s)
{
    return SCRATCH_ALIGN + 2 * image_bytes(w, h, s) + align_up(relate_resize_scratch_bytes(w, h, s, s));
}

static void copy_maybe_flipped(const relate_image *src, relate_image *dst, int flip)
{
    relate_crop(src, 0, 0, src->height, src->width, dst);
    if (flip)
        relate_hflip(dst);
}

/* ColorJitter(0.8, 0.8, 0.8, 0.2): factors b, c, s, h first, then Python's random.shuffle of
 * the four operations (Fisher-Yates from the end), then the operations in that order. */
static void color_jitter(relate_image *img, relate_rng *r, relate_transform_trace *t)
{
    double f[4];
    f[0] = uniform(r, 0.2, 1.8);
    f[1] = uniform(r, 0.2, 1.8);
    f[2] = uniform(r, 0.2, 1.8);
    f[3] = uniform(r, -0.2, 0.2);
    int order[4] = {0, 1, 2, 3};
    for (int k = 3; k > 0; k--) {
        int m = (int)relate_rng_below(r, (uint32_t)k + 1);
        int tmp = order[k];
        order[k] = order[m];
        order[m] = tmp;
    }
    if (t) {
        t->jittered = 1;
        memcpy(t->jitter, f, sizeof f);
        memcpy(t->jitter_order, order, sizeof order);
    }
    for (int k = 0; k < 4; k++) {
        switch (order[k]) {
        case 0: relate_adjust_brightness(img, (float)f[0]); break;
        case 1: relate_adjust_contrast(img, (float)f[1]); break;
        case 2: relate_adjust_saturation(img, (float)f[2]); break;
        default: relate_adjust_hue_delta(img, relate_hue_delta(f[3])); break;
        }
    }
}

void relate_transform_apply(relate_pipeline p, const relate_dataset_info *info, const relate_image *img,
                            relate_rng *r, float *out, uint8_t *scratch)
{
    relate_transform_apply_traced(p, info, img, r, out, scratch, NULL);
}

void relate_transform_apply_traced(relate_pipeline p, const relate_dataset_info *info, const relate_image *img,
                                   relate_rng *r, float *out, uint8_t *scratch, relate_transform_trace *t)
{
    const int W = img->width, H = img->height, S = info->image_size;
    uint8_t *base = scratch + (SCRATCH_ALIGN - (uintptr_t)scratch % SCRATCH_ALIGN) % SCRATCH_ALIGN;
    const size_t ib = image_bytes(W, H, S);
    uint8_t *buf_a = base, *buf_b = base + ib, *rs = base + 2 * ib;
    relate_image a = {S, S, buf_a}, b = {S, S, buf_b};
    const relate_image *cur = img;
    relate_transform_trace ignored;
    if (!t)
        t = &ignored;
    memset(t, 0, sizeof *t);

    switch (p) {
    case RELATE_T1: {
        int i, j, h, w;
        relate_rrc_sample(r, W, H, &i, &j, &h, &w);
        t->crop_i = i, t->crop_j = j, t->crop_h = h, t->crop_w = w;
        relate_resize_box(img, i, j, w, h, &a, rs);
        if ((t->flipped = relate_rng_uniform_f64(r) < 0.5))
            relate_hflip(&a);
        if (relate_rng_uniform_f64(r) <= 0.8) /* RandomApply: skipped only when p < u */
            color_jitter(&a, r, t);
        if ((t->grayscale = relate_rng_uniform_f64(r) < 0.2))
            relate_to_grayscale(&a);
        cur = &a;
        break;
    }
    case RELATE_T3: {
        const int P = info->crop_padding, wp = W + 2 * P, hp = H + 2 * P;
        TF_REQUIRE(wp >= S && hp >= S, "T3: %dx%d image padded by %d is smaller than %d", W, H, P, S);
        int i = 0, j = 0;
        if (!(wp == S && hp == S)) { /* torchvision draws nothing when the sizes already match */
            i = randint(r, 0, hp - S);
            j = randint(r, 0, wp - S);
        }
        t->crop_i = i, t->crop_j = j, t->crop_h = S, t->crop_w = S;
        relate_pad_crop(img, P, i, j, S, &a);
        if ((t->flipped = relate_rng_uniform_f64(r) < 0.5))
            relate_hflip(&a);
        cur = &a;
        break;
    }
    case RELATE_T2:
    case RELATE_T4: {
        TF_REQUIRE(W == S && H == S, "T%d needs an %dx%d image, got %dx%d", (int)p, S, S, W, H);
        copy_maybe_flipped(img, &a, t->flipped = relate_rng_uniform_f64(r) < 0.5);
        cur = &a;
        if (p == RELATE_T4 && relate_rng_uniform_f64(r) <= 0.5) {
            double angle = uniform(r, -18.0, 18.0);
            double max_dx = 0.1 * W, max_dy = 0.1 * H;
            int tx = (int)rint(uniform(r, -max_dx, max_dx));
            int ty = (int)rint(uniform(r, -max_dy, max_dy));
            double scale = uniform(r, 0.9, 1.1);
            double shear = uniform(r, -10.0, 10.0);
            t->affine = 1, t->angle = angle, t->tx = tx, t->ty = ty, t->scale = scale, t->shear = shear;
            relate_affine_f64(&a, angle, tx, ty, scale, shear, &b);
            cur = &b;
        }
        break;
    }
    case RELATE_T5:
    case RELATE_T6:
        TF_REQUIRE(W == S && H == S, "T%d needs an %dx%d image, got %dx%d", (int)p, S, S, W, H);
        break;
    default:
        TF_REQUIRE(0, "unknown pipeline %d", (int)p);
    }
    relate_to_tensor_normalize(cur, info->mean, info->std, out);
    /* Undefined cutout (tiny, slim: spec A15) means no erasing; the reference could not even
     * build T4 there, so callers should not ask for it. */
    int i, j, bh, bw;
    if (p == RELATE_T4 && info->cutout > 0.0f && relate_erase_sample(r, S, S, info->cutout, &i, &j, &bh, &bw)) {
        t->erased = 1, t->erase_i = i, t->erase_j = j, t->erase_h = bh, t->erase_w = bw;
        relate_erase(out, S, S, i, j, bh, bw);
    }
}
