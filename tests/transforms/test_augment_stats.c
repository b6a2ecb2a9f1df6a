/* test_augment_stats.c: the distributions of every augmentation pipeline's random parameters, and
 * the per-channel statistics of its output tensors, drawn through relate's real loader (its
 * per-(seed, epoch, image, view) streams, worker threads and view keys), against torchvision's own
 * samplers and composed pipelines (tests/golden/augment_stats.safetensors from
 * tools/golden_augment_stats.py). test_transforms.c replays single draws pixel for pixel; a wrong
 * range or probability would pass there and fails here.
 *
 * Comparisons (all draws come from fixed seeds, so the test is deterministic):
 *   - a parameter's distribution: the largest gap between the two empirical CDFs on the golden's
 *     grid (a two-sample Kolmogorov-Smirnov distance) must stay below c * sqrt(1/n + 1/m) with
 *     c = 2.69 (alpha = 1e-6);
 *   - a rate (flip, jitter, grayscale, affine, erasing): within 5 standard errors;
 *   - output channel means within 6 standard errors of the per-view means, channel std within 3 %.
 * Not pixel tests (test_transforms.c) and not the loader's order (test_loader.c). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/transforms_internal.h"
#include "relate/loader.h"
#include "test_util.h"

#define N_PARAMS 20000
#define N_OUT 4000
#define N_IMAGES 64
#define KS_C 2.69

static relate_safetensors golden;

static const double *g64(const char *name, int64_t *n)
{
    const relate_st_tensor *t = relate_safetensors_find(&golden, name);
    CHECK_MSG(t && strcmp(t->dtype, "F64") == 0, "golden %s missing", name);
    if (!t)
        return NULL;
    *n = t->numel;
    return t->data;
}

/* The images of tools/golden_augment_stats.py's image_pixel(): a gradient plus hashed noise. */
static uint8_t image_pixel(uint32_t n, uint32_t y, uint32_t x, uint32_t c, uint32_t side)
{
    uint32_t h = n * 2654435761u + (y * side + x) * 40503u + c * 977u;
    h ^= h >> 13;
    h *= 1274126177u;
    uint32_t noise = (h >> 24) & 63;
    uint32_t base = (x * (4 + n % 5) + y * (2 + c) + n * 11) & 255;
    return (uint8_t)((base * 3 / 4 + noise) & 255);
}

static void make_split(relate_split *s, int64_t count, int side)
{
    memset(s, 0, sizeof *s);
    s->present = true;
    s->count = count;
    s->width = s->height = side;
    s->pixels = malloc((size_t)count * side * side * 3);
    s->labels = calloc((size_t)count, sizeof *s->labels);
    uint8_t *pattern = malloc((size_t)N_IMAGES * side * side * 3);
    for (int n = 0; n < N_IMAGES; n++)
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
                for (int c = 0; c < 3; c++)
                    pattern[(((size_t)n * side + y) * side + x) * 3 + c] =
                        image_pixel((uint32_t)n, (uint32_t)y, (uint32_t)x, (uint32_t)c, (uint32_t)side);
    const size_t bytes = (size_t)side * side * 3;
    for (int64_t i = 0; i < count; i++)
        memcpy(s->pixels + (size_t)i * bytes, pattern + (size_t)(i % N_IMAGES) * bytes, bytes);
    free(pattern);
}

static void free_split(relate_split *s)
{
    free(s->pixels);
    free(s->labels);
}

static relate_dataset_info info_of(int side, int pad, float mean, float std, float cutout, const float *m3,
                                   const float *s3)
{
    relate_dataset_info in;
    memset(&in, 0, sizeof in);
    snprintf(in.name, sizeof in.name, "stats");
    in.num_classes = 10;
    in.image_size = side;
    in.crop_padding = pad;
    in.cutout = cutout;
    for (int c = 0; c < 3; c++) {
        in.mean[c] = m3 ? m3[c] : mean;
        in.std[c] = s3 ? s3[c] : std;
    }
    return in;
}

/* ------------------------------------------------------------------ the loader, traced */
typedef struct traced {
    const relate_loader_config *cfg;
    relate_transform_trace *traces; /* [count * views] */
    int views;
} traced;

static void traced_sample(void *user, const relate_image *img, int64_t index, int view, relate_rng *rng, float *out,
                          uint8_t *scratch)
{
    traced *t = user;
    relate_transform_apply_traced(t->cfg->pipeline, t->cfg->info, img, rng, out, scratch,
                                  &t->traces[index * t->views + view]);
}

/* Draws one epoch of `count` images x `views` through the loader; returns the traces. */
static relate_transform_trace *draw(const relate_split *split, const relate_dataset_info *info, relate_pipeline p,
                                    int views)
{
    relate_loader_config c = relate_loader_defaults(split, info, p);
    c.views = views;
    c.batch_size = 256;
    c.seed = 7;
    c.threads = 2;
    traced t = {&c, calloc((size_t)split->count * views, sizeof(relate_transform_trace)), views};
    c.sample = traced_sample;
    c.sample_user = &t;
    relate_loader *l = NULL;
    relate_error err = {0};
    CHECK_MSG(relate_loader_create(&l, &c, &err) == RELATE_OK, "%s", err.msg);
    if (!l)
        return t.traces;
    relate_loader_start_epoch(l, 3);
    relate_batch b;
    while (relate_loader_next(l, &b))
        ;
    relate_loader_destroy(l);
    return t.traces;
}

/* ------------------------------------------------------------------ comparisons */
static void compare_ecdf(const char *name, const double *values, int64_t n)
{
    char key[96];
    int64_t ng, nc, nn;
    snprintf(key, sizeof key, "%s.grid", name);
    const double *grid = g64(key, &ng);
    snprintf(key, sizeof key, "%s.cdf", name);
    const double *cdf = g64(key, &nc);
    snprintf(key, sizeof key, "%s.n", name);
    const double *m = g64(key, &nn);
    if (!grid || !cdf || !m || ng != nc || n == 0) {
        CHECK_MSG(0, "%s: nothing to compare (%lld draws)", name, (long long)n);
        return;
    }
    double worst = 0.0, at = 0.0;
    for (int64_t k = 0; k < ng; k++) {
        int64_t below = 0;
        for (int64_t i = 0; i < n; i++)
            below += values[i] <= grid[k];
        double gap = fabs((double)below / (double)n - cdf[k]);
        if (gap > worst)
            worst = gap, at = grid[k];
    }
    double bound = KS_C * sqrt(1.0 / (double)n + 1.0 / m[0]);
    printf("%-18s KS distance %.4f at %8.4f (bound %.4f; %lld vs %.0f draws)\n", name, worst, at, bound, (long long)n,
           m[0]);
    CHECK_MSG(worst <= bound, "%s: relate's distribution differs from torchvision's (KS %.4f at %g > %.4f)", name,
              worst, at, bound);
}

static void compare_rate(const char *name, const int *flags, int64_t n)
{
    char key[96];
    int64_t nr;
    snprintf(key, sizeof key, "%s.rate", name);
    const double *r = g64(key, &nr);
    if (!r || n == 0)
        return;
    int64_t hits = 0;
    for (int64_t i = 0; i < n; i++)
        hits += flags[i] != 0;
    double mine = (double)hits / (double)n, p = r[0];
    double se = sqrt(p * (1.0 - p) * (1.0 / (double)n + 1.0 / r[1]));
    printf("%-18s rate %.4f vs torchvision %.4f (bound %.4f)\n", name, mine, p, 5 * se);
    CHECK_MSG(fabs(mine - p) <= 5 * se, "%s: rate %.4f, torchvision's %.4f", name, mine, p);
}

/* Extracts one field of the traces that satisfy `keep` into a fresh array. */
#define COLLECT(out, n, traces, count, keep, expr)                                                                  \
    do {                                                                                                           \
        n = 0;                                                                                                     \
        for (int64_t q = 0; q < (count); q++) {                                                                    \
            const relate_transform_trace *tr = &(traces)[q];                                                       \
            (void)tr;                                                                                              \
            if (keep)                                                                                              \
                (out)[n++] = (expr);                                                                               \
        }                                                                                                          \
    } while (0)

static void test_t1(void)
{
    const int side = 32, views = 2;
    relate_split s;
    make_split(&s, N_PARAMS / views, side);
    relate_dataset_info in = info_of(side, 4, 0.5f, 0.25f, 0.25f, NULL, NULL);
    relate_transform_trace *t = draw(&s, &in, RELATE_T1, views);
    const int64_t n = N_PARAMS;
    double *v = malloc(sizeof(double) * n);
    int *f = malloc(sizeof(int) * n);
    int64_t m;
    COLLECT(v, m, t, n, 1, (double)(tr->crop_h * tr->crop_w) / (double)(side * side));
    compare_ecdf("t1.area", v, m);
    COLLECT(v, m, t, n, 1, (double)tr->crop_w / (double)tr->crop_h);
    compare_ecdf("t1.ratio", v, m);
    COLLECT(v, m, t, n, tr->crop_h < side, (double)tr->crop_i / (double)(side - tr->crop_h));
    compare_ecdf("t1.top", v, m);
    COLLECT(v, m, t, n, tr->crop_w < side, (double)tr->crop_j / (double)(side - tr->crop_w));
    compare_ecdf("t1.left", v, m);
    COLLECT(f, m, t, n, 1, tr->flipped);
    compare_rate("t1.flip", f, m);
    COLLECT(f, m, t, n, 1, tr->jittered);
    compare_rate("t1.jitter", f, m);
    COLLECT(f, m, t, n, 1, tr->grayscale);
    compare_rate("t1.gray", f, m);
    static const char *const names[4] = {"t1.brightness", "t1.contrast", "t1.saturation", "t1.hue"};
    for (int k = 0; k < 4; k++) {
        COLLECT(v, m, t, n, tr->jittered, tr->jitter[k]);
        compare_ecdf(names[k], v, m);
    }
    /* the order of the four adjustments: P(adjustment k at position q), uniform over 4! orders */
    int64_t no;
    const double *order = g64("t1.order", &no);
    double counts[4][4] = {{0}};
    int64_t nj = 0;
    for (int64_t q = 0; q < n; q++)
        if (t[q].jittered) {
            nj++;
            for (int pos = 0; pos < 4; pos++)
                counts[t[q].jitter_order[pos]][pos] += 1;
        }
    double worst = 0;
    for (int k = 0; k < 4 && order && no == 16; k++)
        for (int pos = 0; pos < 4; pos++)
            worst = fmax(worst, fabs(counts[k][pos] / (double)nj - order[k * 4 + pos]));
    double bound = 5 * sqrt(0.25 * 0.75 * 2.0 / (double)nj);
    printf("%-18s largest gap %.4f (bound %.4f)\n", "t1.order", worst, bound);
    CHECK_MSG(order && worst <= bound, "t1.order: the adjustments' order is not uniform like torchvision's (%.4f)",
              worst);
    free(v);
    free(f);
    free(t);
    free_split(&s);
}

static void test_t2_t3(void)
{
    const int side = 32;
    relate_split s;
    make_split(&s, N_PARAMS, side);
    relate_dataset_info in = info_of(side, 4, 0.5f, 0.25f, 0.25f, NULL, NULL);
    relate_transform_trace *t = draw(&s, &in, RELATE_T3, 1);
    double *v = malloc(sizeof(double) * N_PARAMS);
    int *f = malloc(sizeof(int) * N_PARAMS);
    int64_t m;
    COLLECT(v, m, t, N_PARAMS, 1, (double)tr->crop_i);
    compare_ecdf("t3.i", v, m);
    COLLECT(v, m, t, N_PARAMS, 1, (double)tr->crop_j);
    compare_ecdf("t3.j", v, m);
    COLLECT(f, m, t, N_PARAMS, 1, tr->flipped);
    compare_rate("t3.flip", f, m);
    free(t);
    t = draw(&s, &in, RELATE_T2, 1);
    COLLECT(f, m, t, N_PARAMS, 1, tr->flipped);
    compare_rate("t2.flip", f, m);
    free(t);
    free(v);
    free(f);
    free_split(&s);
}

static void test_t4(void)
{
    const int side = 96;
    relate_split s;
    make_split(&s, N_PARAMS / 4, side); /* 96 x 96 images: 4 views each keep the split small */
    relate_dataset_info in = info_of(side, 12, 0.5f, 0.5f, 0.111f, NULL, NULL);
    relate_transform_trace *t = draw(&s, &in, RELATE_T4, 4);
    double *v = malloc(sizeof(double) * N_PARAMS);
    int *f = malloc(sizeof(int) * N_PARAMS);
    int64_t m;
    COLLECT(f, m, t, N_PARAMS, 1, tr->flipped);
    compare_rate("t4.flip", f, m);
    COLLECT(f, m, t, N_PARAMS, 1, tr->affine);
    compare_rate("t4.affine", f, m);
    COLLECT(v, m, t, N_PARAMS, tr->affine, tr->angle);
    compare_ecdf("t4.angle", v, m);
    COLLECT(v, m, t, N_PARAMS, tr->affine, (double)tr->tx);
    compare_ecdf("t4.tx", v, m);
    COLLECT(v, m, t, N_PARAMS, tr->affine, (double)tr->ty);
    compare_ecdf("t4.ty", v, m);
    COLLECT(v, m, t, N_PARAMS, tr->affine, tr->scale);
    compare_ecdf("t4.scale", v, m);
    COLLECT(v, m, t, N_PARAMS, tr->affine, tr->shear);
    compare_ecdf("t4.shear", v, m);
    COLLECT(f, m, t, N_PARAMS, 1, tr->erased);
    compare_rate("t4.erase", f, m);
    COLLECT(v, m, t, N_PARAMS, tr->erased, (double)tr->erase_i / (double)(side - tr->erase_h));
    compare_ecdf("t4.erase_top", v, m);
    COLLECT(v, m, t, N_PARAMS, tr->erased, (double)tr->erase_j / (double)(side - tr->erase_w));
    compare_ecdf("t4.erase_left", v, m);
    /* RandomErasing with scale (c, c) and ratio (1, 1): every box has the same side */
    int64_t ne;
    const double *es = g64("t4.erase_side", &ne);
    int bad = 0;
    for (int64_t q = 0; q < N_PARAMS; q++)
        bad += t[q].erased && (t[q].erase_h != (int)es[0] || t[q].erase_w != (int)es[0]);
    CHECK_MSG(es && es[1] == 0.0 && bad == 0, "t4: %d erased boxes are not %g x %g like torchvision's", bad, es[0],
              es[0]);
    free(t);
    free(v);
    free(f);
    free_split(&s);
}

/* The normalised tensors of the real pipelines (no trace), against torchvision's composed ones. */
static void test_outputs(const char *name, relate_pipeline p)
{
    static const float cm[3] = {0.491f, 0.482f, 0.447f}, cs[3] = {0.247f, 0.243f, 0.262f};
    const int side = 32;
    relate_split s;
    make_split(&s, N_OUT, side);
    relate_dataset_info in = info_of(side, 4, 0, 0, 0.25f, cm, cs);
    relate_loader_config c = relate_loader_defaults(&s, &in, p);
    c.batch_size = 250;
    c.seed = 11;
    c.threads = 2;
    relate_loader *l = NULL;
    relate_error err = {0};
    CHECK_MSG(relate_loader_create(&l, &c, &err) == RELATE_OK, "%s", err.msg);
    if (!l) {
        free_split(&s);
        return;
    }
    relate_loader_start_epoch(l, 0);
    double sum[3] = {0}, sum2[3] = {0}, vm[3] = {0}, vm2[3] = {0};
    const int hw = side * side;
    relate_batch b;
    int64_t views = 0;
    while (relate_loader_next(l, &b))
        for (int i = 0; i < b.size; i++, views++)
            for (int ch = 0; ch < 3; ch++) {
                const float *x = b.images + ((size_t)i * 3 + ch) * hw;
                double vs = 0;
                for (int k = 0; k < hw; k++) {
                    vs += x[k];
                    sum2[ch] += (double)x[k] * x[k];
                }
                sum[ch] += vs;
                vm[ch] += vs / hw;
                vm2[ch] += (vs / hw) * (vs / hw);
            }
    relate_loader_destroy(l);
    char key[64];
    int64_t n;
    snprintf(key, sizeof key, "%s.out.mean", name);
    const double *gm = g64(key, &n);
    snprintf(key, sizeof key, "%s.out.std", name);
    const double *gs = g64(key, &n);
    snprintf(key, sizeof key, "%s.out.view_mean_std", name);
    const double *gv = g64(key, &n);
    CHECK(views == N_OUT);
    for (int ch = 0; ch < 3 && gm && gs && gv; ch++) {
        double npx = (double)views * hw, mean = sum[ch] / npx;
        double std = sqrt(fmax(sum2[ch] / npx - mean * mean, 0.0));
        double se = gv[ch] * sqrt(2.0 / N_OUT);
        printf("%s channel %d: mean %+.4f vs %+.4f (bound %.4f), std %.4f vs %.4f\n", name, ch, mean, gm[ch], 6 * se,
               std, gs[ch]);
        CHECK_MSG(fabs(mean - gm[ch]) <= 6 * se, "%s channel %d: output mean %.4f, torchvision's %.4f", name, ch, mean,
                  gm[ch]);
        CHECK_MSG(fabs(std - gs[ch]) <= 0.03 * gs[ch], "%s channel %d: output std %.4f, torchvision's %.4f", name, ch,
                  std, gs[ch]);
    }
    free_split(&s);
}

int main(void)
{
    relate_test_open_golden(&golden, "augment_stats.safetensors");
    test_t1();
    test_t2_t3();
    test_t4();
    test_outputs("t1", RELATE_T1);
    test_outputs("t3", RELATE_T3);
    relate_safetensors_close(&golden);
    return relate_test_finish();
}
