/* test_transforms.c: the augmentation primitives against PIL/torchvision with fixed parameters
 * (tests/golden/transforms.safetensors, pixel for pixel), Pillow's HSV over all 2^24 inputs, the
 * samplers' distributions, and the pipelines T1-T6 against a replay of spec 4.4's draw order.
 * Not a test of the loader or of the datasets: images here are synthetic. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/transforms_internal.h"
#include "relate/rng.h"
#include "test_util.h"

/* ------------------------------------------------------------------ helpers */

static relate_image image_alloc(int w, int h)
{
    relate_image im = {w, h, malloc((size_t)w * h * 3)};
    return im;
}

static relate_image image_copy(const relate_image *src)
{
    relate_image im = image_alloc(src->width, src->height);
    memcpy(im.pixels, src->pixels, (size_t)src->width * src->height * 3);
    return im;
}

static relate_image golden_image(const relate_safetensors *st, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "img.%s", name);
    const relate_st_tensor *t = relate_safetensors_find(st, key);
    relate_image im = {0, 0, NULL};
    if (!t || strcmp(t->dtype, "U8") != 0 || t->ndim != 3 || t->shape[2] != 3) {
        CHECK_MSG(0, "golden image %s missing or not U8 [H, W, 3]", key);
        return im;
    }
    im.width = (int)t->shape[1];
    im.height = (int)t->shape[0];
    im.pixels = (uint8_t *)t->data;
    return im;
}

/* Reports the number of differing bytes and the largest difference. */
static void check_bytes(const char *what, const uint8_t *got, const uint8_t *want, size_t n)
{
    size_t diff = 0;
    int worst = 0;
    for (size_t k = 0; k < n; k++)
        if (got[k] != want[k]) {
            diff++;
            int d = abs((int)got[k] - (int)want[k]);
            worst = d > worst ? d : worst;
        }
    CHECK_MSG(diff == 0, "%s: %zu of %zu bytes differ (max %d)", what, diff, n, worst);
}

static void check_floats(const char *what, const float *got, const float *want, size_t n, double bound)
{
    double worst = 0;
    for (size_t k = 0; k < n; k++) {
        double d = fabs((double)got[k] - (double)want[k]);
        worst = d > worst || isnan(d) ? d : worst;
    }
    CHECK_MSG(worst <= bound, "%s: max abs diff %.3g > %.1g", what, worst, bound);
}

static int parse_numbers(const char *s, double *v, int max)
{
    int n = 0;
    char *end;
    while (n < max) {
        double x = strtod(s, &end);
        if (end == s)
            break;
        v[n++] = x;
        s = end;
    }
    return n;
}

static void jitter_op(relate_image *im, int k, double f)
{
    switch (k) {
    case 0: relate_adjust_brightness(im, (float)f); break;
    case 1: relate_adjust_contrast(im, (float)f); break;
    case 2: relate_adjust_saturation(im, (float)f); break;
    default: relate_adjust_hue_delta(im, relate_hue_delta(f)); break;
    }
}

/* ------------------------------------------------------------------ golden cases */

static void run_case(const relate_safetensors *st, int n)
{
    char key[32], op[32], input[32], desc[512];
    snprintf(key, sizeof key, "case%d", n);
    const char *m = relate_safetensors_meta(st, key);
    int used = 0;
    if (!m || sscanf(m, "%31s %31s %n", op, input, &used) < 2) {
        CHECK_MSG(0, "%s: no metadata", key);
        return;
    }
    snprintf(desc, sizeof desc, "%s (%s)", key, m);
    double p[32];
    int np = parse_numbers(m + used, p, 32);
    snprintf(key, sizeof key, "case%d.out", n);
    const relate_st_tensor *want = relate_safetensors_find(st, key);
    CHECK_MSG(want != NULL, "%s: no output", desc);
    if (!want)
        return;

    if (!strcmp(op, "rot90")) {
        const relate_st_tensor *in = relate_safetensors_find(st, "rot.in");
        CHECK(in && in->numel == 3 * 8 * 8 && want->numel == in->numel);
        if (!in)
            return;
        float got[3 * 8 * 8];
        relate_rotate90(in->data, got, 3, 8, (int)p[0]);
        check_floats(desc, got, want->data, 3 * 8 * 8, 0.0);
        return;
    }
    relate_image src = golden_image(st, input);
    if (!src.pixels)
        return;
    const int W = src.width, H = src.height;
    relate_image out = {0, 0, NULL};

    if (!strcmp(op, "resize_box") && np == 5) {
        int i = (int)p[0], j = (int)p[1], h = (int)p[2], w = (int)p[3], s = (int)p[4];
        out = image_alloc(s, s);
        uint8_t *scratch = malloc(relate_resize_scratch_bytes(w, h, s, s));
        relate_resize_box(&src, i, j, w, h, &out, scratch);
        /* The crop-then-resize path (the one image folders use) must agree. */
        relate_image crop = image_alloc(w, h), out2 = image_alloc(s, s);
        relate_crop(&src, i, j, h, w, &crop);
        relate_resize_bilinear(&crop, &out2, scratch);
        check_bytes("resize_box vs crop+resize", out.pixels, out2.pixels, (size_t)s * s * 3);
        free(scratch);
        free(crop.pixels);
        free(out2.pixels);
    } else if (!strcmp(op, "crop") && np == 4) {
        out = image_alloc((int)p[3], (int)p[2]);
        relate_crop(&src, (int)p[0], (int)p[1], (int)p[2], (int)p[3], &out);
    } else if (!strcmp(op, "hflip")) {
        out = image_copy(&src);
        relate_hflip(&out);
    } else if (!strcmp(op, "brightness") || !strcmp(op, "contrast") || !strcmp(op, "saturation") ||
               !strcmp(op, "hue")) {
        out = image_copy(&src);
        if (!strcmp(op, "brightness"))
            relate_adjust_brightness(&out, (float)p[0]);
        else if (!strcmp(op, "contrast"))
            relate_adjust_contrast(&out, (float)p[0]);
        else if (!strcmp(op, "saturation"))
            relate_adjust_saturation(&out, (float)p[0]);
        else
            relate_adjust_hue(&out, (float)p[0]);
    } else if (!strcmp(op, "rgb2hsv") || !strcmp(op, "hsv2rgb")) {
        out = image_alloc(W, H);
        for (size_t k = 0; k < (size_t)W * H; k++) {
            if (op[0] == 'r')
                relate_rgb_to_hsv(src.pixels + 3 * k, out.pixels + 3 * k);
            else
                relate_hsv_to_rgb(src.pixels + 3 * k, out.pixels + 3 * k);
        }
    } else if (!strcmp(op, "gray")) {
        out = image_copy(&src);
        relate_to_grayscale(&out);
    } else if (!strcmp(op, "padcrop") && np == 4) {
        int s = (int)p[3];
        out = image_alloc(s, s);
        relate_pad_crop(&src, (int)p[0], (int)p[1], (int)p[2], s, &out);
    } else if (!strcmp(op, "affine") && np == 5) {
        out = image_alloc(W, H);
        relate_affine(&src, (float)p[0], (int)p[1], (int)p[2], (float)p[3], (float)p[4], &out);
    } else if ((!strcmp(op, "tensor") && np == 6) || (!strcmp(op, "erase") && np == 10)) {
        float mean[3] = {(float)p[0], (float)p[1], (float)p[2]}, sd[3] = {(float)p[3], (float)p[4], (float)p[5]};
        size_t n3 = (size_t)3 * W * H;
        float *t = malloc(n3 * sizeof(float));
        relate_to_tensor_normalize(&src, mean, sd, t);
        if (op[0] == 'e')
            relate_erase(t, H, W, (int)p[6], (int)p[7], (int)p[8], (int)p[9]);
        CHECK_MSG(want->numel == (int64_t)n3 && !strcmp(want->dtype, "F32"), "%s: shape", desc);
        /* float32 ops in torch's order: expected exact; the spec allows 1e-6 */
        if (want->numel == (int64_t)n3)
            check_floats(desc, t, want->data, n3, 1e-6);
        double worst = 0;
        for (size_t k = 0; k < n3 && want->numel == (int64_t)n3; k++)
            worst = fmax(worst, fabs(t[k] - ((const float *)want->data)[k]));
        if (worst != 0)
            printf("note: %s differs from torch by %.3g (within 1e-6)\n", desc, worst);
        free(t);
        return;
    } else if (!strcmp(op, "t1") && np == 16) {
        int i = (int)p[0], j = (int)p[1], h = (int)p[2], w = (int)p[3], s = (int)p[4];
        out = image_alloc(s, s);
        uint8_t *scratch = malloc(relate_resize_scratch_bytes(w, h, s, s));
        relate_resize_box(&src, i, j, w, h, &out, scratch);
        free(scratch);
        if (p[5] != 0)
            relate_hflip(&out);
        if (p[6] != 0)
            for (int k = 0; k < 4; k++) {
                int o = (int)p[11 + k];
                jitter_op(&out, o, p[7 + o]);
            }
        if (p[15] != 0)
            relate_to_grayscale(&out);
    } else if (!strcmp(op, "t3") && np == 5) {
        int s = (int)p[3];
        out = image_alloc(s, s);
        relate_pad_crop(&src, (int)p[0], (int)p[1], (int)p[2], s, &out);
        if (p[4] != 0)
            relate_hflip(&out);
    } else if (!strcmp(op, "t4") && np == 7) {
        relate_image a = image_copy(&src);
        if (p[0] != 0)
            relate_hflip(&a);
        if (p[1] != 0) {
            out = image_alloc(W, H);
            relate_affine(&a, (float)p[2], (int)p[3], (int)p[4], (float)p[5], (float)p[6], &out);
            free(a.pixels);
        } else {
            out = a;
        }
    } else {
        CHECK_MSG(0, "%s: unknown op or parameter count %d", desc, np);
        return;
    }
    size_t nb = (size_t)out.width * out.height * 3;
    CHECK_MSG(!strcmp(want->dtype, "U8") && want->numel == (int64_t)nb, "%s: output shape", desc);
    if (want->numel == (int64_t)nb)
        check_bytes(desc, out.pixels, want->data, nb);
    free(out.pixels);
}

/* The generator's checksum, sum_k byte_k * (k * 2654435761 + 1) mod 2^64, of the vectorised
 * conversions over all 2^24 inputs (k >> 16, k >> 8 & 255, k & 255); then the scalar oracles
 * against them on a million random inputs. */
static void test_hsv_exhaustive(const relate_safetensors *st)
{
    enum { CHUNK = 4096 };
    static uint8_t in[3 * CHUNK], a[3 * CHUNK], b[3 * CHUNK];
    uint64_t fwd = 0, inv = 0;
    for (uint32_t c0 = 0; c0 < (1u << 24); c0 += CHUNK) {
        for (uint32_t k = 0; k < CHUNK; k++) {
            uint32_t c = c0 + k;
            in[3 * k] = (uint8_t)(c >> 16), in[3 * k + 1] = (uint8_t)(c >> 8), in[3 * k + 2] = (uint8_t)c;
        }
        relate_rgb_to_hsv_n(in, a, CHUNK);
        relate_hsv_to_rgb_n(in, b, CHUNK);
        for (uint32_t k = 0; k < 3 * CHUNK; k++) {
            uint64_t w = (uint64_t)(3 * c0 + k) * 2654435761u + 1;
            fwd += a[k] * w;
            inv += b[k] * w;
        }
    }
    const char *want_fwd = relate_safetensors_meta(st, "rgb2hsv_all"), *want_inv = relate_safetensors_meta(st, "hsv2rgb_all");
    CHECK(want_fwd && want_inv);
    if (want_fwd && want_inv) {
        CHECK_MSG(fwd == strtoull(want_fwd, NULL, 10), "rgb2hsv over all 2^24 colours differs from Pillow");
        CHECK_MSG(inv == strtoull(want_inv, NULL, 10), "hsv2rgb over all 2^24 triples differs from Pillow");
    }
    relate_rng r;
    relate_rng_init(&r, 3, 0, 0, RELATE_PURPOSE_TEST);
    long bad = 0;
    for (int n = 0; n < (1 << 20); n++) {
        uint32_t c = relate_rng_u32(&r);
        uint8_t x[3] = {(uint8_t)c, (uint8_t)(c >> 8), (uint8_t)(c >> 16)}, s1[3], s2[3];
        relate_rgb_to_hsv(x, s1);
        relate_rgb_to_hsv_n(x, s2, 1);
        bad += memcmp(s1, s2, 3) != 0;
        relate_hsv_to_rgb(x, s1);
        relate_hsv_to_rgb_n(x, s2, 1);
        bad += memcmp(s1, s2, 3) != 0;
    }
    CHECK_MSG(bad == 0, "scalar and vectorised HSV conversions differ on %ld inputs", bad);
}

static void test_hue_delta(void)
{
    /* trunc toward zero, then wrap (spec A24) */
    CHECK(relate_hue_delta(0.2) == 51);
    CHECK(relate_hue_delta(-0.2) == 205);
    CHECK(relate_hue_delta(-0.5) == 129);
    CHECK(relate_hue_delta(0.5) == 127);
    CHECK(relate_hue_delta(-0.0039) == 0);
    CHECK(relate_hue_delta(0.0) == 0);
    CHECK(relate_hue_delta(-0.004) == 255);
}

/* Spec 3.3's formulas, directly. */
static void test_rotate90_formulas(void)
{
    enum { S = 5, C = 2 };
    float x[C * S * S], r[4][C * S * S], back[C * S * S];
    relate_test_fill(x, C * S * S, 11);
    for (int k = 0; k < 4; k++)
        relate_rotate90(x, r[k], C, S, k);
    int bad = 0;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < S; i++)
            for (int j = 0; j < S; j++) {
                const float *X = x + c * S * S;
                bad += r[0][(c * S + i) * S + j] != X[i * S + j];
                bad += r[1][(c * S + i) * S + j] != X[j * S + (S - 1 - i)];
                bad += r[2][(c * S + i) * S + j] != X[(S - 1 - i) * S + (S - 1 - j)];
                bad += r[3][(c * S + i) * S + j] != X[(S - 1 - j) * S + i];
            }
    CHECK_MSG(bad == 0, "rotate90: %d elements off spec 3.3", bad);
    relate_rotate90(r[1], back, C, S, 3);
    CHECK(memcmp(back, x, sizeof x) == 0);
    relate_rotate90(x, back, C, S, -1); /* k taken mod 4 */
    CHECK(memcmp(back, r[3], sizeof x) == 0);
}

/* ------------------------------------------------------------------ samplers */

/* Chi-square statistic of observed counts against expected probabilities. */
static double chi2(const long *obs, const double *prob, int k, long n)
{
    double x = 0;
    for (int b = 0; b < k; b++) {
        double e = prob[b] * n;
        x += (obs[b] - e) * (obs[b] - e) / e;
    }
    return x;
}

/* Chi-square below its 0.1 % critical value (given for the degrees of freedom). */
static void check_chi2(const char *what, double x, double critical, int dof)
{
    CHECK_MSG(x < critical, "%s: chi2 %.1f >= %.1f (%d dof)", what, x, critical, dof);
    if (getenv("RELATE_TEST_VERBOSE"))
        printf("%s: chi2 %.1f (critical %.1f, %d dof)\n", what, x, critical, dof);
}

/* |observed rate - p| within 4.5 standard deviations (a fixed seed keeps it deterministic; the
 * bound is a real statistical one, not tuned to the seed). */
static void check_rate(const char *what, long hits, long n, double p)
{
    double rate = (double)hits / n, sd = sqrt(p * (1 - p) / n);
    CHECK_MSG(fabs(rate - p) <= 4.5 * sd, "%s: rate %.4f, expected %.4f +- %.4f", what, rate, p, 4.5 * sd);
    if (getenv("RELATE_TEST_VERBOSE"))
        printf("%s: rate %.4f (expected %.4f, sd %.4f)\n", what, rate, p, sd);
}

static void test_rrc_distribution(void)
{
    /* On a large square image rounding is negligible and an attempt is accepted iff
     * a*r <= 1 and a/r <= 1 (a = area fraction, r = ratio). Since attempts are independent,
     * the accepted (a, t = ln r) are uniform on {0.08 <= a <= exp(-|t|), |t| <= L}, L = ln(4/3):
     * density of a ~ min(2L, -2 ln a), density of t ~ exp(-|t|) - 0.08. */
    enum { KA = 10, KT = 8 };
    const int N = 100000, W = 10000, H = 10000;
    const double L = log(4.0 / 3.0);
    long ca[KA] = {0}, ct[KT] = {0};
    relate_rng r;
    relate_rng_init(&r, 7, 1, 2, RELATE_PURPOSE_TEST);
    int outside = 0;
    for (int n = 0; n < N; n++) {
        int i, j, h, w;
        relate_rrc_sample(&r, W, H, &i, &j, &h, &w);
        outside += i < 0 || j < 0 || i + h > H || j + w > W;
        double a = (double)w * h / ((double)W * H), t = log((double)w / h);
        int ba = (int)((a - 0.08) / 0.92 * KA), bt = (int)((t + L) / (2 * L) * KT);
        ca[ba < 0 ? 0 : ba >= KA ? KA - 1 : ba]++;
        ct[bt < 0 ? 0 : bt >= KT ? KT - 1 : bt]++;
    }
    CHECK(outside == 0);
    /* integral of the density of a over [x0, x1] */
    double pa[KA], pt[KT], za = 0, zt = 0;
    for (int b = 0; b < KA; b++) {
        double x0 = 0.08 + 0.92 * b / KA, x1 = 0.08 + 0.92 * (b + 1) / KA, m = 0.75, s = 0;
        if (x0 < m)
            s += 2 * L * (fmin(x1, m) - x0);
        if (x1 > m) {
            double lo = fmax(x0, m);
            s += -2 * (x1 * log(x1) - x1) + 2 * (lo * log(lo) - lo);
        }
        pa[b] = s;
        za += s;
    }
    for (int b = 0; b < KT; b++) {
        double x0 = -L + 2 * L * b / KT, x1 = -L + 2 * L * (b + 1) / KT;
        /* integral of exp(-|t|) - 0.08 */
        double e = 0;
        if (x1 <= 0)
            e = exp(x1) - exp(x0);
        else if (x0 >= 0)
            e = exp(-x0) - exp(-x1);
        else
            e = (1 - exp(x0)) + (1 - exp(-x1));
        pt[b] = e - 0.08 * (x1 - x0);
        zt += pt[b];
    }
    for (int b = 0; b < KA; b++)
        pa[b] /= za;
    for (int b = 0; b < KT; b++)
        pt[b] /= zt;
    double xa = chi2(ca, pa, KA, N), xt = chi2(ct, pt, KT, N);
    check_chi2("RandomResizedCrop area fraction", xa, 27.9, 9);
    check_chi2("RandomResizedCrop log ratio", xt, 24.3, 7);

    /* Offsets: uniform over the free range, i drawn before j. Replay the first attempt. */
    int order_ok = 1;
    for (int n = 0; n < 2000; n++) {
        relate_rng a = r, b = r;
        int i, j, h, w;
        relate_rrc_sample(&a, 37, 29, &i, &j, &h, &w);
        double tgt = (0.08 + (1.0 - 0.08) * relate_rng_uniform_f64(&b)) * (37.0 * 29.0);
        double lr = log(3.0 / 4.0) + (log(4.0 / 3.0) - log(3.0 / 4.0)) * relate_rng_uniform_f64(&b);
        int ww = (int)rint(sqrt(tgt * exp(lr))), hh = (int)rint(sqrt(tgt / exp(lr)));
        if (ww >= 1 && ww <= 37 && hh >= 1 && hh <= 29) {
            int ii = (int)relate_rng_below(&b, (uint32_t)(29 - hh + 1));
            int jj = (int)relate_rng_below(&b, (uint32_t)(37 - ww + 1));
            order_ok &= ii == i && jj == j && hh == h && ww == w;
        }
        r = a;
    }
    CHECK_MSG(order_ok, "RandomResizedCrop: draw order differs from area, ratio, i, j");
}

static void test_rrc_fallback(void)
{
    /* A 2 x 20 image rejects an attempt with probability p, integrated here on a midpoint grid;
     * the fallback (10 rejections) consumes exactly 40 words, any success more. */
    const int G = 2000;
    const double lo = log(3.0 / 4.0), hi = log(4.0 / 3.0);
    long rej = 0;
    for (int a = 0; a < G; a++)
        for (int b = 0; b < G; b++) {
            double tgt = (0.08 + 0.92 * (a + 0.5) / G) * 40.0, rr = exp(lo + (hi - lo) * (b + 0.5) / G);
            int w = (int)rint(sqrt(tgt * rr)), h = (int)rint(sqrt(tgt / rr));
            rej += !(w > 0 && w <= 2 && h > 0 && h <= 20);
        }
    double p = pow((double)rej / ((double)G * G), 10);
    const int N = 20000;
    long fb[2] = {0, 0}, badbox = 0;
    relate_rng r;
    relate_rng_init(&r, 8, 0, 0, RELATE_PURPOSE_TEST);
    for (int n = 0; n < N; n++)
        for (int t = 0; t < 2; t++) {
            int W = t ? 20 : 2, H = t ? 2 : 20;
            relate_rng probe = r;
            for (int k = 0; k < 40; k++)
                relate_rng_u32(&probe);
            int i, j, h, w;
            relate_rrc_sample(&r, W, H, &i, &j, &h, &w);
            relate_rng after = r;
            if (relate_rng_u32(&after) == relate_rng_u32(&probe)) {
                fb[t]++;
                /* q < 3/4: w = W, h = round(W / (3/4)) = 3; q > 4/3: h = H, w = round(H * 4/3) = 3 */
                badbox += t ? !(h == 2 && w == 3 && i == 0 && j == 8) : !(w == 2 && h == 3 && i == 8 && j == 0);
            }
        }
    check_rate("RandomResizedCrop fallback on 2x20", fb[0], N, p);
    check_rate("RandomResizedCrop fallback on 20x2", fb[1], N, p);
    CHECK_MSG(badbox == 0, "RandomResizedCrop fallback box wrong %ld times", badbox);
    CHECK(p > 0.3 && p < 0.5); /* the case the test was designed for */

    /* Square and near-square images fall back to the whole image. */
    relate_rng_init(&r, 9, 0, 0, RELATE_PURPOSE_TEST);
    int i, j, h, w, whole = 1;
    for (int n = 0; n < 200; n++) {
        relate_rng probe = r;
        for (int k = 0; k < 40; k++)
            relate_rng_u32(&probe);
        relate_rrc_sample(&r, 1, 1, &i, &j, &h, &w);
        relate_rng after = r;
        if (relate_rng_u32(&after) == relate_rng_u32(&probe))
            whole &= i == 0 && j == 0 && h == 1 && w == 1;
    }
    CHECK(whole);
}

static void test_erase_sampler(void)
{
    relate_rng r;
    relate_rng_init(&r, 10, 0, 0, RELATE_PURPOSE_TEST);
    const int N = 20000;
    long hits = 0, bad = 0, ci[17] = {0};
    for (int n = 0; n < N; n++) {
        int i, j, bh, bw;
        if (relate_erase_sample(&r, 32, 32, 0.25, &i, &j, &bh, &bw)) {
            hits++;
            bad += bh != 16 || bw != 16 || i < 0 || j < 0 || i > 16 || j > 16;
            ci[i]++;
        }
    }
    check_rate("RandomErasing p", hits, N, 0.5);
    CHECK(bad == 0);
    double pr[17];
    for (int k = 0; k < 17; k++)
        pr[k] = 1.0 / 17;
    double x = chi2(ci, pr, 17, hits);
    check_chi2("RandomErasing offsets", x, 39.3, 16);
    /* the spec's three fractions give 16x16, 8x8 and 32x32 on their sides */
    int i, j, bh, bw, got = 0;
    while (!relate_erase_sample(&r, 32, 32, 0.0625, &i, &j, &bh, &bw))
        ;
    got += bh == 8 && bw == 8;
    while (!relate_erase_sample(&r, 96, 96, (double)0.111f, &i, &j, &bh, &bw))
        ;
    got += bh == 32 && bw == 32;
    CHECK(got == 2);
    /* a box as large as the image never fits: no erasing */
    int never = 1;
    for (int n = 0; n < 100; n++)
        never &= !relate_erase_sample(&r, 8, 8, 1.0, &i, &j, &bh, &bw);
    CHECK(never);
}

/* ------------------------------------------------------------------ pipelines */

typedef struct decisions {
    int flip, jitter, order[4], gray, affine, erase, ci, cj;
} decisions;

static double U(relate_rng *r, double a, double b)
{
    return a + (b - a) * relate_rng_uniform_f64(r);
}

static int randint(relate_rng *r, int a, int b)
{
    return a + (int)relate_rng_below(r, (uint32_t)(b - a + 1));
}

/* Spec 4.3/4.4 transcribed independently of transforms.c's pipeline code, with the primitives
 * applied one by one (crop copy + resize instead of the box resize, separate flip copies). */
static void replay(relate_pipeline p, const relate_dataset_info *info, const relate_image *img, relate_rng *r,
                   float *out, decisions *d)
{
    const int W = img->width, H = img->height, S = info->image_size;
    memset(d, 0, sizeof *d);
    relate_image a = image_alloc(S, S);
    if (p == RELATE_T1) {
        int i = -1, j = -1, h = 0, w = 0;
        for (int t = 0; t < 10 && i < 0; t++) {
            double target = U(r, 0.08, 1.0) * W * H, ratio = exp(U(r, log(0.75), log(4.0 / 3.0)));
            w = (int)rint(sqrt(target * ratio));
            h = (int)rint(sqrt(target / ratio));
            if (w > 0 && w <= W && h > 0 && h <= H) {
                i = randint(r, 0, H - h);
                j = randint(r, 0, W - w);
            }
        }
        if (i < 0) {
            double q = (double)W / H;
            w = W, h = H;
            if (q < 0.75)
                h = (int)rint(W / 0.75);
            else if (q > 4.0 / 3.0)
                w = (int)rint(H * (4.0 / 3.0));
            i = (H - h) / 2, j = (W - w) / 2;
        }
        relate_image crop = image_alloc(w, h);
        relate_crop(img, i, j, h, w, &crop);
        uint8_t *scratch = malloc(relate_resize_scratch_bytes(w, h, S, S));
        relate_resize_bilinear(&crop, &a, scratch);
        free(scratch);
        free(crop.pixels);
        if ((d->flip = U(r, 0, 1) < 0.5))
            relate_hflip(&a);
        if ((d->jitter = !(0.8 < U(r, 0, 1)))) {
            double f[4] = {U(r, 0.2, 1.8), U(r, 0.2, 1.8), U(r, 0.2, 1.8), U(r, -0.2, 0.2)};
            int o[4] = {0, 1, 2, 3};
            for (int k = 3; k >= 1; k--) {
                int m = (int)relate_rng_below(r, (uint32_t)k + 1), t = o[k];
                o[k] = o[m], o[m] = t;
            }
            for (int k = 0; k < 4; k++) {
                d->order[k] = o[k];
                jitter_op(&a, o[k], f[o[k]]);
            }
        }
        if ((d->gray = U(r, 0, 1) < 0.2))
            relate_to_grayscale(&a);
    } else if (p == RELATE_T3) {
        int P = info->crop_padding;
        d->ci = randint(r, 0, H + 2 * P - S);
        d->cj = randint(r, 0, W + 2 * P - S);
        relate_pad_crop(img, P, d->ci, d->cj, S, &a);
        if ((d->flip = U(r, 0, 1) < 0.5))
            relate_hflip(&a);
    } else {
        memcpy(a.pixels, img->pixels, (size_t)S * S * 3);
        if (p == RELATE_T2 || p == RELATE_T4)
            if ((d->flip = U(r, 0, 1) < 0.5))
                relate_hflip(&a);
        if (p == RELATE_T4 && (d->affine = !(0.5 < U(r, 0, 1)))) {
            double angle = U(r, -18, 18);
            int tx = (int)rint(U(r, -0.1 * S, 0.1 * S)), ty = (int)rint(U(r, -0.1 * S, 0.1 * S));
            double scale = U(r, 0.9, 1.1), shear = U(r, -10, 10);
            relate_image b = image_alloc(S, S);
            relate_affine_f64(&a, angle, tx, ty, scale, shear, &b);
            free(a.pixels);
            a = b;
        }
    }
    relate_to_tensor_normalize(&a, info->mean, info->std, out);
    if (p == RELATE_T4 && U(r, 0, 1) < 0.5) {
        double area = (double)S * S;
        for (int t = 0; t < 10; t++) {
            double ea = U(r, info->cutout, info->cutout) * area, asp = U(r, 1, 1);
            int h = (int)rint(sqrt(ea * asp)), w = (int)rint(sqrt(ea / asp));
            if (h < S && w < S) {
                int i = randint(r, 0, S - h), j = randint(r, 0, S - w);
                relate_erase(out, S, S, i, j, h, w);
                d->erase = 1;
                break;
            }
        }
    }
    free(a.pixels);
}

static relate_dataset_info make_info(int s, int pad, float cutout)
{
    relate_dataset_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.name, sizeof info.name, "test");
    info.image_size = s;
    info.mean[0] = 0.491f, info.mean[1] = 0.482f, info.mean[2] = 0.447f;
    info.std[0] = 0.247f, info.std[1] = 0.243f, info.std[2] = 0.262f;
    info.crop_padding = pad;
    info.cutout = cutout;
    return info;
}

static relate_image noise_image(int w, int h, uint64_t seed)
{
    relate_image im = image_alloc(w, h);
    relate_rng r;
    relate_rng_init(&r, seed, 0, 0, RELATE_PURPOSE_TEST);
    for (size_t k = 0; k < (size_t)w * h * 3; k++)
        im.pixels[k] = (uint8_t)relate_rng_below(&r, 256);
    return im;
}

/* Runs apply with an exact-size scratch placed at an odd address and canaries behind the
 * output and the scratch. Returns 0 when a canary was overwritten. */
static int apply_checked(relate_pipeline p, const relate_dataset_info *info, const relate_image *img, relate_rng *r,
                         float *out)
{
    const int S = info->image_size;
    size_t sb = relate_transform_scratch_bytes(img->width, img->height, S);
    uint8_t *raw = malloc(sb + 1 + 16);
    uint8_t *scratch = raw + 1;
    memset(scratch + sb, 0xA5, 16);
    out[3 * S * S] = 12345.0f;
    relate_transform_apply(p, info, img, r, out, scratch);
    int ok = out[3 * S * S] == 12345.0f;
    for (int k = 0; k < 16; k++)
        ok &= scratch[sb + k] == 0xA5;
    free(raw);
    return ok;
}

static void test_pipelines_replay(void)
{
    const relate_pipeline ps[] = {RELATE_T1, RELATE_T2, RELATE_T3, RELATE_T4, RELATE_T5, RELATE_T6};
    const int N = 3000;
    relate_dataset_info info = make_info(32, 4, 0.25f);
    relate_image sq = noise_image(32, 32, 21);
    float *got = malloc((3 * 32 * 32 + 1) * sizeof(float)), *want = malloc(3 * 32 * 32 * sizeof(float));
    for (size_t q = 0; q < sizeof ps / sizeof ps[0]; q++) {
        relate_pipeline p = ps[q];
        long mismatch = 0, rng_off = 0, canary = 0, flips = 0, jit = 0, gray = 0, aff = 0, er = 0, perm[24] = {0};
        long offs[9 * 9] = {0};
        int n_run = (p == RELATE_T5 || p == RELATE_T6) ? 10 : N;
        for (int n = 0; n < n_run; n++) {
            relate_rng r1, r2;
            relate_rng_init(&r1, 100 + p, (uint32_t)n, 0, RELATE_PURPOSE_AUGMENT);
            r2 = r1;
            canary += !apply_checked(p, &info, &sq, &r1, got);
            decisions d;
            replay(p, &info, &sq, &r2, want, &d);
            mismatch += memcmp(got, want, 3 * 32 * 32 * sizeof(float)) != 0;
            rng_off += relate_rng_u32(&r1) != relate_rng_u32(&r2);
            flips += d.flip, jit += d.jitter, gray += d.gray, aff += d.affine, er += d.erase;
            if (d.jitter) {
                /* Lehmer code of the permutation */
                int code = 0, f[4] = {6, 2, 1, 0};
                for (int k = 0; k < 3; k++) {
                    int smaller = 0;
                    for (int l = k + 1; l < 4; l++)
                        smaller += d.order[l] < d.order[k];
                    code += smaller * f[k];
                }
                perm[code]++;
            }
            if (p == RELATE_T3)
                offs[d.ci * 9 + d.cj]++;
        }
        CHECK_MSG(mismatch == 0, "T%d: %ld of %d outputs differ from the spec replay", (int)p, mismatch, n_run);
        CHECK_MSG(rng_off == 0, "T%d: %ld times a different number of draws than the replay", (int)p, rng_off);
        CHECK_MSG(canary == 0, "T%d: wrote past the output or the scratch %ld times", (int)p, canary);
        if (p == RELATE_T1 || p == RELATE_T2 || p == RELATE_T3 || p == RELATE_T4) {
            char what[64];
            snprintf(what, sizeof what, "T%d flip", (int)p);
            check_rate(what, flips, N, 0.5);
        }
        if (p == RELATE_T1) {
            check_rate("T1 RandomApply(ColorJitter)", jit, N, 0.8);
            check_rate("T1 RandomGrayscale", gray, N, 0.2);
            double pr[24];
            for (int k = 0; k < 24; k++)
                pr[k] = 1.0 / 24;
            double x = chi2(perm, pr, 24, jit);
            check_chi2("T1 ColorJitter order over 24 permutations", x, 49.7, 23);
        }
        if (p == RELATE_T3) {
            double pr[81];
            for (int k = 0; k < 81; k++)
                pr[k] = 1.0 / 81;
            double x = chi2(offs, pr, 81, N);
            check_chi2("T3 RandomCrop offsets over 81 cells", x, 124.8, 80);
        }
        if (p == RELATE_T4) {
            check_rate("T4 RandomApply(RandomAffine)", aff, N, 0.5);
            check_rate("T4 RandomErasing", er, N, 0.5);
        }
    }
    free(got);
    free(want);
    free(sq.pixels);
}

/* Determinism, output shape on non-square inputs, and direct measurements on the outputs. */
static void test_pipelines_outputs(void)
{
    relate_dataset_info info = make_info(32, 4, 0.25f);
    relate_image ns = noise_image(37, 29, 31), tall = noise_image(20, 45, 32), big = noise_image(200, 150, 33);
    relate_image tiny = noise_image(3, 2, 34);
    float *a = malloc((3 * 32 * 32 + 1) * sizeof(float)), *b = malloc((3 * 32 * 32 + 1) * sizeof(float));
    const relate_image *imgs[] = {&ns, &tall, &big, &tiny};
    for (int m = 0; m < 4; m++)
        for (int q = 0; q < 2; q++) {
            relate_pipeline p = q ? RELATE_T3 : RELATE_T1;
            if (p == RELATE_T3 && (imgs[m]->width + 8 < 32 || imgs[m]->height + 8 < 32))
                continue; /* RandomCrop cannot cut 32 x 32 from it (torchvision raises) */
            int det = 1, canary = 0, finite = 1;
            for (int n = 0; n < 50; n++) {
                relate_rng r1, r2;
                relate_rng_init(&r1, 5, (uint32_t)n, (uint32_t)m, RELATE_PURPOSE_AUGMENT);
                r2 = r1;
                canary += !apply_checked(p, &info, imgs[m], &r1, a);
                canary += !apply_checked(p, &info, imgs[m], &r2, b);
                det &= memcmp(a, b, 3 * 32 * 32 * sizeof(float)) == 0 && relate_rng_u32(&r1) == relate_rng_u32(&r2);
                for (int k = 0; k < 3 * 32 * 32; k++) {
                    int c = k / 1024;
                    float lo = (0.0f - info.mean[c]) / info.std[c], hi = (1.0f - info.mean[c]) / info.std[c];
                    finite &= isfinite(a[k]) && a[k] >= lo && a[k] <= hi;
                }
            }
            CHECK_MSG(det, "T%d on %dx%d: not deterministic for a given rng state", (int)p, imgs[m]->width, imgs[m]->height);
            CHECK_MSG(canary == 0, "T%d on %dx%d: wrote past its buffers", (int)p, imgs[m]->width, imgs[m]->height);
            CHECK_MSG(finite, "T%d on %dx%d: values outside the normalised byte range", (int)p, imgs[m]->width,
                      imgs[m]->height);
        }

    /* T5/T6 are ToTensor + Normalize and draw nothing. */
    relate_image sq = noise_image(32, 32, 35);
    relate_rng r1, r2;
    relate_rng_init(&r1, 1, 2, 3, RELATE_PURPOSE_AUGMENT);
    r2 = r1;
    apply_checked(RELATE_T6, &info, &sq, &r1, a);
    relate_to_tensor_normalize(&sq, info.mean, info.std, b);
    CHECK(memcmp(a, b, 3 * 32 * 32 * sizeof(float)) == 0);
    CHECK(relate_rng_u32(&r1) == relate_rng_u32(&r2));

    /* T1's grayscale rate measured on the outputs: equal denormalised channels. */
    long gray = 0;
    const int N = 4000;
    for (int n = 0; n < N; n++) {
        relate_rng r;
        relate_rng_init(&r, 77, (uint32_t)n, 0, RELATE_PURPOSE_AUGMENT);
        apply_checked(RELATE_T1, &info, &sq, &r, a);
        int same = 1;
        for (int k = 0; k < 32 * 32 && same; k++) {
            long v[3];
            for (int c = 0; c < 3; c++)
                v[c] = lrint((a[c * 1024 + k] * info.std[c] + info.mean[c]) * 255.0f);
            same = v[0] == v[1] && v[1] == v[2];
        }
        gray += same;
    }
    check_rate("T1 grayscale (measured on outputs)", gray, N, 0.2);

    /* T3's crop offsets measured on the outputs: pixels encode their source position. */
    relate_image pos = image_alloc(32, 32);
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
            uint8_t *px = pos.pixels + (y * 32 + x) * 3;
            px[0] = (uint8_t)(x + 1), px[1] = (uint8_t)(y + 1), px[2] = 200;
        }
    long offs[81] = {0}, flips = 0, bad = 0;
    for (int n = 0; n < 8100; n++) {
        relate_rng r;
        relate_rng_init(&r, 78, (uint32_t)n, 0, RELATE_PURPOSE_AUGMENT);
        apply_checked(RELATE_T3, &info, &pos, &r, a);
        /* the centre pixel (16, 16) always comes from the source for offsets 0..8 */
        int xs[2];
        for (int k = 0; k < 2; k++)
            xs[k] = (int)lrint((a[16 * 32 + 16 + k] * info.std[0] + info.mean[0]) * 255.0f) - 1;
        int ys = (int)lrint((a[1024 + 16 * 32 + 16] * info.std[1] + info.mean[1]) * 255.0f) - 1;
        int flipped = xs[1] < xs[0];
        int ci = ys + 4 - 16, cj = flipped ? xs[0] + 4 - (31 - 16) : xs[0] + 4 - 16;
        if (ci < 0 || ci > 8 || cj < 0 || cj > 8) {
            bad++;
            continue;
        }
        offs[ci * 9 + cj]++;
        flips += flipped;
    }
    CHECK(bad == 0);
    double pr[81];
    for (int k = 0; k < 81; k++)
        pr[k] = 1.0 / 81;
    double x = chi2(offs, pr, 81, 8100);
    check_chi2("T3 offsets measured on outputs", x, 124.8, 80);
    check_rate("T3 flip (measured on outputs)", flips, 8100, 0.5);

    /* T4 on an image without cutout (tiny/slim, spec A15): never erases. */
    relate_dataset_info nocut = make_info(32, 4, 0.0f);
    int zeros_all = 0;
    relate_image white = image_alloc(32, 32);
    memset(white.pixels, 255, 32 * 32 * 3);
    for (int n = 0; n < 200; n++) {
        relate_rng r;
        relate_rng_init(&r, 79, (uint32_t)n, 0, RELATE_PURPOSE_AUGMENT);
        apply_checked(RELATE_T4, &nocut, &white, &r, a);
        /* erased values are exactly 0, which no normalised byte is (mean / std are not 0) */
        for (int k = 0; k < 32 * 32; k++)
            zeros_all += a[k] == 0.0f;
    }
    CHECK(zeros_all == 0);

    /* Threads: the same draws from two threads give the serial results. */
    enum { NT = 64 };
    float *serial = malloc((size_t)NT * (3 * 1024 + 1) * sizeof(float)), *par = malloc((size_t)NT * (3 * 1024 + 1) * sizeof(float));
    for (int n = 0; n < NT; n++) {
        relate_rng r;
        relate_rng_init(&r, 80, (uint32_t)n, 0, RELATE_PURPOSE_AUGMENT);
        apply_checked(RELATE_T1, &info, &ns, &r, serial + (size_t)n * (3 * 1024 + 1));
    }
#pragma omp parallel for num_threads(2) schedule(static, 1)
    for (int n = 0; n < NT; n++) {
        relate_rng r;
        relate_rng_init(&r, 80, (uint32_t)n, 0, RELATE_PURPOSE_AUGMENT);
        apply_checked(RELATE_T1, &info, &ns, &r, par + (size_t)n * (3 * 1024 + 1));
    }
    CHECK(memcmp(serial, par, (size_t)NT * (3 * 1024 + 1) * sizeof(float)) == 0);
    free(serial);
    free(par);
    free(white.pixels);
    free(pos.pixels);
    free(sq.pixels);
    free(ns.pixels);
    free(tall.pixels);
    free(big.pixels);
    free(tiny.pixels);
    free(a);
    free(b);
}

int main(void)
{
    relate_safetensors st;
    relate_test_open_golden(&st, "transforms.safetensors");
    const char *nc = relate_safetensors_meta(&st, "cases");
    int n = nc ? atoi(nc) : 0;
    CHECK_MSG(n >= 90, "transforms golden: %d cases", n);
    for (int k = 0; k < n; k++)
        run_case(&st, k);
    test_hsv_exhaustive(&st);
    relate_safetensors_close(&st);
    test_hue_delta();
    test_rotate90_formulas();
    test_rrc_distribution();
    test_rrc_fallback();
    test_erase_sampler();
    test_pipelines_replay();
    test_pipelines_outputs();
    return relate_test_finish();
}
