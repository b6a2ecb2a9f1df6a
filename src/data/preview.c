/* preview.c: the grid behind `relate data --preview`: originals and the augmented views a method's
 * loader would feed at a given epoch, de-normalised to 8-bit and written as a PNG.
 * Not the loader (loader.c) and not the transforms (transforms.c): it calls them the same way. */
#include "relate/preview.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/transforms_internal.h"
#include "io/image_decode.h"
#include "relate/rng.h"

typedef struct method_row {
    const char *name;
    relate_pipeline pipeline;
    int split;  /* -1: the dataset's stage-1 split */
    int views;
    bool rotations;
} method_row;

static const method_row k_methods[] = {
    {"relationnet", RELATE_T1, -1, 8, false},
    {"simclr", RELATE_T1, -1, 2, false},
    {"deepinfomax", RELATE_T2, -1, 4, false},
    {"rotationnet", RELATE_T3, -1, 1, true},
    {"deepcluster", RELATE_T3, -1, 4, false},
    {"standard", RELATE_T3, RELATE_SPLIT_TRAIN, 4, false},
    {"lineval", RELATE_T5, RELATE_SPLIT_TRAIN, 1, false},
    {"finetune", RELATE_T5, RELATE_SPLIT_TRAIN, 1, false},
    {"test", RELATE_T6, RELATE_SPLIT_TEST, 1, false},
};
#define NMETHODS ((int)(sizeof k_methods / sizeof k_methods[0]))

const char *const *relate_preview_methods(void)
{
    static const char *names[NMETHODS + 1];
    for (int i = 0; i < NMETHODS; i++)
        names[i] = k_methods[i].name;
    names[NMETHODS] = NULL;
    return names;
}

relate_status relate_preview_for_method(relate_preview_config *cfg, const char *method,
                                        const relate_dataset_info *info, relate_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    const method_row *m = NULL;
    for (int i = 0; i < NMETHODS; i++)
        if (method && strcmp(method, k_methods[i].name) == 0)
            m = &k_methods[i];
    if (!m) {
        char list[256] = "";
        for (int i = 0; i < NMETHODS; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", k_methods[i].name);
        return relate_error_set(err, RELATE_ERR_ARG, "unknown method '%s'; valid methods: %s", method ? method : "",
                                list);
    }
    cfg->pipeline = m->pipeline;
    /* The reference's `standard` trains STL-10 with the "finetune" transform (spec 3.6). */
    if (m->pipeline == RELATE_T3 && m->split == RELATE_SPLIT_TRAIN && strcmp(info->name, "stl10") == 0)
        cfg->pipeline = RELATE_T4;
    cfg->split = m->split < 0 ? info->unsupervised_split : (relate_split_kind)m->split;
    cfg->views = m->views;
    cfg->rotations = m->rotations;
    cfg->rows = 8;
    cfg->seed = 1;
    cfg->epoch = 0;
    cfg->zoom = 1;
    return RELATE_OK;
}

void relate_preview_free(relate_preview *p)
{
    if (!p)
        return;
    free(p->image.pixels);
    free(p->indices);
    memset(p, 0, sizeof *p);
}

/* `rows` distinct indices of [0, n), uniformly without replacement, from a stream of the seed
 * that no loader epoch uses (the loader shuffles on (seed, epoch, 0, SHUFFLE << 24)). */
static void pick_rows(uint64_t seed, int64_t n, int rows, int64_t *idx)
{
    relate_rng r;
    relate_rng_init(&r, seed, 0xFFFFFFFFu, 0, (uint32_t)RELATE_PURPOSE_SHUFFLE << 24 | 1u);
    for (int k = 0; k < rows; k++) {
        int64_t v;
        int seen;
        do {
            v = (int64_t)relate_rng_below(&r, (uint32_t)n);
            seen = 0;
            for (int q = 0; q < k && !seen; q++)
                seen = idx[q] == v;
        } while (seen);
        idx[k] = v;
    }
}

static uint8_t denormalise(float x, float mean, float std)
{
    float v = (x * std + mean) * 255.0f;
    if (!(v > 0.0f)) /* also NaN */
        return 0;
    if (v >= 255.0f)
        return 255;
    return (uint8_t)lrintf(v);
}

/* Copies the S x S cell (row r, column c) into the un-zoomed grid from a CHW tensor. */
static void put_tensor(uint8_t *grid, int gw, int s, int r, int c, const float *chw, const relate_dataset_info *info)
{
    const int y0 = RELATE_PREVIEW_GAP + r * (s + RELATE_PREVIEW_GAP);
    const int x0 = RELATE_PREVIEW_GAP + c * (s + RELATE_PREVIEW_GAP);
    const size_t plane = (size_t)s * s;
    for (int y = 0; y < s; y++)
        for (int x = 0; x < s; x++) {
            uint8_t *px = grid + ((size_t)(y0 + y) * gw + (size_t)(x0 + x)) * 3;
            for (int ch = 0; ch < 3; ch++)
                px[ch] = denormalise(chw[ch * plane + (size_t)y * s + x], info->mean[ch], info->std[ch]);
        }
}

static void put_image(uint8_t *grid, int gw, int s, int r, int c, const relate_image *img)
{
    const int y0 = RELATE_PREVIEW_GAP + r * (s + RELATE_PREVIEW_GAP);
    const int x0 = RELATE_PREVIEW_GAP + c * (s + RELATE_PREVIEW_GAP);
    for (int y = 0; y < s; y++)
        memcpy(grid + ((size_t)(y0 + y) * gw + (size_t)x0) * 3, img->pixels + (size_t)y * s * 3, (size_t)s * 3);
}

relate_status relate_preview_render(relate_preview *out, const relate_dataset *ds, const relate_preview_config *cfg,
                                    relate_error *err)
{
    memset(out, 0, sizeof *out);
    const relate_dataset_info *info = &ds->info;
    static const char *const split_names[RELATE_SPLIT_COUNT] = {"train", "test", "unlabeled"};
    if (cfg->split < 0 || cfg->split >= RELATE_SPLIT_COUNT)
        return relate_error_set(err, RELATE_ERR_ARG, "preview: bad split %d", (int)cfg->split);
    const relate_split *sp = relate_dataset_split(ds, cfg->split);
    if (!sp || sp->count < 1)
        return relate_error_set(err, RELATE_ERR_ARG, "preview: dataset %s has no %s split (or it is empty)", info->name,
                                split_names[cfg->split]);
    if (cfg->pipeline < RELATE_T1 || cfg->pipeline > RELATE_T6)
        return relate_error_set(err, RELATE_ERR_ARG, "preview: unknown pipeline %d", (int)cfg->pipeline);
    if (cfg->views < 1 || cfg->views > RELATE_PREVIEW_MAX_VIEWS)
        return relate_error_set(err, RELATE_ERR_ARG, "preview: --views must be in 1..%d, got %d", RELATE_PREVIEW_MAX_VIEWS,
                                cfg->views);
    if (cfg->rows < 1 || cfg->rows > RELATE_PREVIEW_MAX_ROWS)
        return relate_error_set(err, RELATE_ERR_ARG, "preview: --rows must be in 1..%d, got %d", RELATE_PREVIEW_MAX_ROWS,
                                cfg->rows);
    if (cfg->zoom < 1 || cfg->zoom > RELATE_PREVIEW_MAX_ZOOM)
        return relate_error_set(err, RELATE_ERR_ARG, "preview: --zoom must be in 1..%d, got %d", RELATE_PREVIEW_MAX_ZOOM,
                                cfg->zoom);
    if (cfg->epoch < 0)
        return relate_error_set(err, RELATE_ERR_ARG, "preview: --epoch must be >= 0, got %d", cfg->epoch);
    const int S = info->image_size, W = sp->width, H = sp->height;
    if (S < 1 || S > 4096)
        return relate_error_set(err, RELATE_ERR_ARG, "preview: bad image size %d", S);
    /* Only the cropping pipelines accept an image that is not S x S (relate_transform_apply
     * aborts otherwise); datasets always deliver S x S, so this guards hand-built ones. */
    if ((W != S || H != S) && cfg->pipeline != RELATE_T1 && cfg->pipeline != RELATE_T3)
        return relate_error_set(err, RELATE_ERR_ARG, "preview: pipeline T%d needs %dx%d images, the split has %dx%d",
                                (int)cfg->pipeline, S, S, W, H);
    if (cfg->pipeline == RELATE_T3 && (W + 2 * info->crop_padding < S || H + 2 * info->crop_padding < S))
        return relate_error_set(err, RELATE_ERR_ARG, "preview: T3 cannot crop %dx%d from %dx%d images padded by %d", S, S,
                                W, H, info->crop_padding);

    const int rows = (int)(sp->count < cfg->rows ? sp->count : cfg->rows);
    const int per_view = cfg->rotations ? 4 : 1;
    const int cols = 1 + cfg->views * per_view;
    const int gw = RELATE_PREVIEW_GAP + cols * (S + RELATE_PREVIEW_GAP);
    const int gh = RELATE_PREVIEW_GAP + rows * (S + RELATE_PREVIEW_GAP);
    const int z = cfg->zoom;
    if ((int64_t)gw * z * gh * z > 100000000LL)
        return relate_error_set(err, RELATE_ERR_ARG, "preview: a %d x %d grid is too large; use fewer rows, views or zoom",
                                gw * z, gh * z);

    const size_t plane = (size_t)3 * S * S;
    const size_t tbytes = relate_transform_scratch_bytes(W, H, S);
    const size_t rbytes = relate_resize_scratch_bytes(W, H, S, S);
    uint8_t *grid = malloc((size_t)gw * gh * 3);
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)rows);
    float *view = malloc(sizeof(float) * plane * 2);
    uint8_t *scratch = malloc(tbytes > rbytes ? tbytes : rbytes);
    uint8_t *resized = malloc(plane);
    uint8_t *zoomed = z > 1 ? malloc((size_t)gw * z * gh * z * 3) : NULL;
    if (!grid || !idx || !view || !scratch || !resized || (z > 1 && !zoomed)) {
        free(grid), free(idx), free(view), free(scratch), free(resized), free(zoomed);
        return relate_error_set(err, RELATE_ERR_NOMEM, "preview: out of memory for a %d x %d grid", gw * z, gh * z);
    }
    memset(grid, RELATE_PREVIEW_BACKGROUND, (size_t)gw * gh * 3);
    pick_rows(cfg->seed, sp->count, rows, idx);

    for (int r = 0; r < rows; r++) {
        relate_image img = relate_split_image(sp, idx[r]);
        if (W == S && H == S) {
            put_image(grid, gw, S, r, 0, &img);
        } else {
            relate_image dst = {S, S, resized};
            relate_resize_bilinear(&img, &dst, scratch);
            put_image(grid, gw, S, r, 0, &dst);
        }
        for (int k = 0; k < cfg->views; k++) {
            relate_rng rng;
            /* The key of loader.c's fill(): (seed, epoch, dataset index, AUGMENT << 24 | view).
             * tests/data/test_preview.c checks that the loader produces the same tensors. */
            relate_rng_init(&rng, cfg->seed, (uint32_t)cfg->epoch, (uint32_t)idx[r],
                            (uint32_t)RELATE_PURPOSE_AUGMENT << 24 | (uint32_t)k);
            relate_transform_apply(cfg->pipeline, info, &img, &rng, view, scratch);
            const int c0 = 1 + k * per_view;
            put_tensor(grid, gw, S, r, c0, view, info);
            for (int q = 1; q < per_view; q++) {
                relate_rotate90(view, view + plane, 3, S, q);
                put_tensor(grid, gw, S, r, c0 + q, view + plane, info);
            }
        }
    }
    free(view);
    free(scratch);
    free(resized);

    if (z > 1) {
        const int zw = gw * z;
        for (int y = 0; y < gh * z; y++)
            for (int x = 0; x < zw; x++)
                memcpy(zoomed + ((size_t)y * zw + x) * 3, grid + ((size_t)(y / z) * gw + x / z) * 3, 3);
        free(grid);
        grid = zoomed;
    }
    out->image.width = gw * z;
    out->image.height = gh * z;
    out->image.pixels = grid;
    out->rows = rows;
    out->columns = cols;
    out->side = S;
    out->indices = idx;
    return RELATE_OK;
}

relate_status relate_preview_write_png(const char *path, const relate_preview *p, relate_error *err)
{
    if (!p->image.pixels)
        return relate_error_set(err, RELATE_ERR_ARG, "preview: nothing rendered to write to %s", path);
    return relate_png_write(path, p->image.pixels, p->image.width, p->image.height, err);
}
