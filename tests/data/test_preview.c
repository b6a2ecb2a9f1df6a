/* test_preview.c: the `relate data --preview` grid on a small synthetic dataset: layout, first
 * column = the original pixels, every view = what the loader feeds at that epoch (de-normalised),
 * rotations, zoom, determinism of the PNG bytes, decoding of the PNG, and the error cases.
 * Not a test of the transforms themselves (tests/transforms) or of the loader (tests/loader). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/transforms_internal.h"
#include "io/image_decode.h"
#include "relate/loader.h"
#include "relate/preview.h"
#include "test_util.h"

#define S 12
#define N 37
#define GAP RELATE_PREVIEW_GAP

static relate_dataset ds;
static char tmpdir[64];

static void fill_split(relate_split *sp, int64_t count, int w, int h, uint64_t seed)
{
    sp->present = true;
    sp->count = count;
    sp->width = w;
    sp->height = h;
    sp->pixels = malloc((size_t)count * w * h * 3);
    sp->labels = malloc(sizeof(int32_t) * (size_t)count);
    relate_rng r;
    relate_rng_init(&r, seed, 0, 0, RELATE_PURPOSE_TEST);
    for (size_t i = 0; i < (size_t)count * w * h * 3; i++)
        sp->pixels[i] = (uint8_t)relate_rng_below(&r, 256);
    for (int64_t i = 0; i < count; i++)
        sp->labels[i] = (int32_t)(i % 5);
}

static void free_split(relate_split *sp)
{
    free(sp->pixels);
    free(sp->labels);
    memset(sp, 0, sizeof *sp);
}

static void setup(void)
{
    memset(&ds, 0, sizeof ds);
    snprintf(ds.info.name, sizeof ds.info.name, "synthetic");
    ds.info.num_classes = 5;
    ds.info.image_size = S;
    const float mean[3] = {0.491f, 0.482f, 0.447f}, std[3] = {0.247f, 0.243f, 0.262f};
    memcpy(ds.info.mean, mean, sizeof mean);
    memcpy(ds.info.std, std, sizeof std);
    ds.info.crop_padding = 2;
    ds.info.cutout = 0.25f;
    ds.info.unsupervised_split = RELATE_SPLIT_TRAIN;
    fill_split(&ds.splits[RELATE_SPLIT_TRAIN], N, S, S, 11);
    fill_split(&ds.splits[RELATE_SPLIT_TEST], 9, S, S, 12);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/relate_preview_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
}

/* Pointer to pixel (y, x) of cell (r, c) of an un-zoomed grid. */
static const uint8_t *cell_px(const relate_preview *p, int r, int c, int y, int x)
{
    int y0 = GAP + r * (p->side + GAP), x0 = GAP + c * (p->side + GAP);
    return p->image.pixels + ((size_t)(y0 + y) * p->image.width + (size_t)(x0 + x)) * 3;
}

/* Whether cell (r, c) equals the S x S HWC image px. */
static int cell_equals(const relate_preview *p, int r, int c, const uint8_t *px)
{
    for (int y = 0; y < p->side; y++)
        if (memcmp(cell_px(p, r, c, y, 0), px + (size_t)y * p->side * 3, (size_t)p->side * 3) != 0)
            return 0;
    return 1;
}

/* Whether cell (r, c) equals the normalised CHW tensor t with Normalize undone. */
static int cell_equals_tensor(const relate_preview *p, int r, int c, const float *t)
{
    const size_t plane = (size_t)S * S;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            for (int ch = 0; ch < 3; ch++) {
                float v = (t[ch * plane + (size_t)y * S + x] * ds.info.std[ch] + ds.info.mean[ch]) * 255.0f;
                long b = lrintf(v);
                b = b < 0 ? 0 : b > 255 ? 255 : b;
                if (cell_px(p, r, c, y, x)[ch] != (uint8_t)b)
                    return 0;
            }
    return 1;
}

static relate_preview_config config(const char *method, int views, int rows, uint64_t seed, int epoch)
{
    relate_preview_config c;
    relate_error err = {0};
    CHECK_MSG(relate_preview_for_method(&c, method, &ds.info, &err) == RELATE_OK, "%s", err.msg);
    if (views)
        c.views = views;
    c.rows = rows;
    c.seed = seed;
    c.epoch = epoch;
    return c;
}

static int render(relate_preview *p, const relate_preview_config *c)
{
    relate_error err = {0};
    relate_status st = relate_preview_render(p, &ds, c, &err);
    CHECK_MSG(st == RELATE_OK, "%s", err.msg);
    return st == RELATE_OK;
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

/* Layout, originals, and every view equal to the loader's tensor for (seed, epoch, image, view). */
static void check_t1_against_loader(void)
{
    const int views = 3, rows = 5, epoch = 1;
    const uint64_t seed = 7;
    relate_preview_config c = config("relationnet", views, rows, seed, epoch);
    CHECK(c.pipeline == RELATE_T1 && c.split == RELATE_SPLIT_TRAIN && !c.rotations && c.zoom == 1);
    relate_preview p;
    if (!render(&p, &c))
        return;
    CHECK(p.rows == rows && p.columns == 1 + views && p.side == S);
    CHECK(p.image.width == GAP + (1 + views) * (S + GAP) && p.image.height == GAP + rows * (S + GAP));
    /* Distinct indices in range; column 0 is the original image. */
    for (int r = 0; r < rows; r++) {
        CHECK(p.indices[r] >= 0 && p.indices[r] < N);
        for (int q = 0; q < r; q++)
            CHECK(p.indices[q] != p.indices[r]);
        CHECK_MSG(cell_equals(&p, r, 0, relate_split_image(&ds.splits[0], p.indices[r]).pixels),
                  "row %d: first column is not image %lld", r, (long long)p.indices[r]);
    }
    /* The gaps are background. */
    CHECK(p.image.pixels[0] == RELATE_PREVIEW_BACKGROUND && cell_px(&p, 0, 0, 0, S)[1] == RELATE_PREVIEW_BACKGROUND);

    /* The loader at this seed and epoch, with worker threads, feeds exactly these views. */
    relate_loader_config lc = relate_loader_defaults(&ds.splits[0], &ds.info, RELATE_T1);
    lc.views = views;
    lc.batch_size = 8;
    lc.seed = seed;
    lc.threads = 2;
    relate_loader *l = NULL;
    relate_error err = {0};
    CHECK_MSG(relate_loader_create(&l, &lc, &err) == RELATE_OK, "%s", err.msg);
    int matched = 0;
    if (l) {
        relate_loader_start_epoch(l, epoch);
        relate_batch b;
        while (relate_loader_next(l, &b) == 1)
            for (int i = 0; i < b.size; i++)
                for (int r = 0; r < rows; r++)
                    if (b.indices[i] == p.indices[r])
                        for (int k = 0; k < views; k++) {
                            const float *t = b.images + ((size_t)k * b.size + i) * 3 * S * S;
                            int ok = cell_equals_tensor(&p, r, 1 + k, t);
                            CHECK_MSG(ok, "row %d view %d differs from the loader's epoch-%d tensor", r, k, epoch);
                            matched += ok;
                        }
        relate_loader_destroy(l);
    }
    CHECK(matched == rows * views);

    /* T1 really augments: some view differs from its original (all 15 equal would be absurd). */
    int differ = 0;
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < views; k++)
            differ += !cell_equals(&p, r, 1 + k, relate_split_image(&ds.splits[0], p.indices[r]).pixels);
    CHECK(differ > 0);

    /* Another epoch: the same rows (drawn from the seed alone), other views. */
    relate_preview_config c0 = c;
    c0.epoch = 0;
    relate_preview p0;
    if (render(&p0, &c0)) {
        CHECK(memcmp(p0.indices, p.indices, sizeof(int64_t) * rows) == 0);
        CHECK(memcmp(p0.image.pixels, p.image.pixels, (size_t)p.image.width * p.image.height * 3) != 0);
        relate_preview_free(&p0);
    }
    /* Another seed: other rows. */
    relate_preview_config c2 = c;
    c2.seed = 8;
    relate_preview p2;
    if (render(&p2, &c2)) {
        CHECK(memcmp(p2.indices, p.indices, sizeof(int64_t) * rows) != 0);
        relate_preview_free(&p2);
    }
    relate_preview_free(&p);
}

/* The PNG decodes (relate's decoder) to the rendered grid; two calls give identical bytes. */
static void check_png(void)
{
    relate_preview_config c = config("simclr", 0, 8, 1, 0);
    CHECK(c.views == 2);
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/a.png", tmpdir);
    snprintf(b, sizeof b, "%s/b.png", tmpdir);
    relate_error err = {0};
    relate_preview p, q;
    if (!render(&p, &c))
        return;
    CHECK_MSG(relate_preview_write_png(a, &p, &err) == RELATE_OK, "%s", err.msg);
    if (render(&q, &c)) {
        CHECK(relate_preview_write_png(b, &q, &err) == RELATE_OK);
        relate_preview_free(&q);
    }
    size_t na = 0, nb = 0;
    uint8_t *ba = read_all(a, &na), *bb = read_all(b, &nb);
    CHECK(ba && bb && na > 8 && na == nb && memcmp(ba, bb, na) == 0);
    free(ba);
    free(bb);

    relate_image img = {0};
    CHECK_MSG(relate_image_decode_file(a, &img, &err) == RELATE_OK, "%s", err.msg);
    CHECK(img.width == GAP + 3 * (S + GAP) && img.height == GAP + 8 * (S + GAP));
    CHECK(img.width == p.image.width && img.height == p.image.height && img.pixels &&
          memcmp(img.pixels, p.image.pixels, (size_t)img.width * img.height * 3) == 0);
    /* First column of the decoded file = the original pixels. */
    int first_ok = 1;
    for (int r = 0; r < p.rows; r++) {
        const uint8_t *orig = relate_split_image(&ds.splits[0], p.indices[r]).pixels;
        for (int y = 0; y < S; y++)
            first_ok &= memcmp(img.pixels + ((size_t)(GAP + r * (S + GAP) + y) * img.width + GAP) * 3,
                               orig + (size_t)y * S * 3, S * 3) == 0;
    }
    CHECK(first_ok);
    relate_image_free(&img);
    relate_preview_free(&p);
}

/* T5 (lineval): every view is the original exactly, so undoing Normalize loses nothing. */
static void check_identity_and_splits(void)
{
    relate_preview_config c = config("lineval", 4, 6, 3, 0);
    CHECK(c.pipeline == RELATE_T5 && c.split == RELATE_SPLIT_TRAIN);
    relate_preview p;
    if (render(&p, &c)) {
        int same = 1;
        for (int r = 0; r < p.rows; r++)
            for (int k = 0; k < 4; k++)
                same &= cell_equals(&p, r, 1 + k, relate_split_image(&ds.splits[0], p.indices[r]).pixels);
        CHECK_MSG(same, "T5 views are not the original pixels");
        relate_preview_free(&p);
    }
    /* test: T6 on the test split (9 images), rows capped at the split's size. */
    c = config("test", 0, 20, 1, 0);
    CHECK(c.pipeline == RELATE_T6 && c.split == RELATE_SPLIT_TEST && c.views == 1);
    if (render(&p, &c)) {
        CHECK(p.rows == 9 && p.image.height == GAP + 9 * (S + GAP));
        int all[9] = {0};
        for (int r = 0; r < 9; r++)
            all[p.indices[r]]++;
        int perm = 1;
        for (int r = 0; r < 9; r++)
            perm &= all[r] == 1;
        CHECK(perm);
        relate_preview_free(&p);
    }
    /* Method table: STL-10 trains standard with T4 and stage 1 on the unlabeled split. */
    relate_dataset_info stl = ds.info;
    snprintf(stl.name, sizeof stl.name, "stl10");
    stl.unsupervised_split = RELATE_SPLIT_UNLABELED;
    relate_preview_config m;
    relate_error err = {0};
    CHECK(relate_preview_for_method(&m, "standard", &stl, &err) == RELATE_OK && m.pipeline == RELATE_T4 &&
          m.split == RELATE_SPLIT_TRAIN);
    CHECK(relate_preview_for_method(&m, "standard", &ds.info, &err) == RELATE_OK && m.pipeline == RELATE_T3);
    CHECK(relate_preview_for_method(&m, "relationnet", &stl, &err) == RELATE_OK && m.pipeline == RELATE_T1 &&
          m.split == RELATE_SPLIT_UNLABELED && m.views == 8);
    CHECK(relate_preview_for_method(&m, "deepinfomax", &stl, &err) == RELATE_OK && m.pipeline == RELATE_T2);
    CHECK(relate_preview_for_method(&m, "deepcluster", &stl, &err) == RELATE_OK && m.pipeline == RELATE_T3 &&
          m.split == RELATE_SPLIT_UNLABELED);
    CHECK(relate_preview_for_method(&m, "finetune", &stl, &err) == RELATE_OK && m.pipeline == RELATE_T5);
    int nm = 0;
    for (const char *const *s = relate_preview_methods(); *s; s++)
        nm++;
    CHECK(nm == 9);
}

/* rotationnet: each T3 view followed by R1, R2, R3 of spec 3.3; zoom replicates pixels. */
static void check_rotations_and_zoom(void)
{
    relate_preview_config c = config("rotationnet", 2, 3, 5, 2);
    CHECK(c.pipeline == RELATE_T3 && c.rotations && c.views == 2);
    relate_preview p;
    if (!render(&p, &c))
        return;
    CHECK(p.columns == 1 + 2 * 4 && p.image.width == GAP + 9 * (S + GAP));
    int ok = 1;
    for (int r = 0; r < p.rows; r++)
        for (int k = 0; k < 2; k++) {
            int c0 = 1 + 4 * k;
            for (int i = 0; i < S; i++)
                for (int j = 0; j < S; j++) {
                    ok &= memcmp(cell_px(&p, r, c0 + 1, i, j), cell_px(&p, r, c0, j, S - 1 - i), 3) == 0;
                    ok &= memcmp(cell_px(&p, r, c0 + 2, i, j), cell_px(&p, r, c0, S - 1 - i, S - 1 - j), 3) == 0;
                    ok &= memcmp(cell_px(&p, r, c0 + 3, i, j), cell_px(&p, r, c0, S - 1 - j, i), 3) == 0;
                }
        }
    CHECK_MSG(ok, "rotations are not R1, R2, R3 of spec 3.3");

    relate_preview_config cz = c;
    cz.zoom = 3;
    relate_preview z;
    if (render(&z, &cz)) {
        CHECK(z.image.width == 3 * p.image.width && z.image.height == 3 * p.image.height);
        int zok = 1;
        for (int y = 0; y < z.image.height; y++)
            for (int x = 0; x < z.image.width; x++)
                zok &= memcmp(z.image.pixels + ((size_t)y * z.image.width + x) * 3,
                              p.image.pixels + ((size_t)(y / 3) * p.image.width + x / 3) * 3, 3) == 0;
        CHECK(zok);
        relate_preview_free(&z);
    }
    relate_preview_free(&p);
}

/* A split whose images are not S x S: the first column is Pillow's bilinear resize. */
static void check_resized_originals(void)
{
    relate_dataset saved = ds;
    relate_split small = {0};
    fill_split(&small, 6, 10, 9, 21);
    ds.splits[RELATE_SPLIT_TRAIN] = small;
    relate_preview_config c = config("relationnet", 2, 4, 1, 0);
    relate_preview p;
    if (render(&p, &c)) {
        uint8_t buf[S * S * 3];
        uint8_t *scratch = malloc(relate_resize_scratch_bytes(10, 9, S, S));
        int ok = 1;
        for (int r = 0; r < p.rows; r++) {
            relate_image src = relate_split_image(&small, p.indices[r]), dst = {S, S, buf};
            relate_resize_bilinear(&src, &dst, scratch);
            ok &= cell_equals(&p, r, 0, buf);
        }
        CHECK_MSG(ok, "resized originals differ from relate_resize_bilinear");
        free(scratch);
        relate_preview_free(&p);
    }
    /* T2 cannot take a 10 x 9 image: an error, not an abort. */
    c = config("deepinfomax", 0, 4, 1, 0);
    relate_error err = {0};
    CHECK(relate_preview_render(&p, &ds, &c, &err) == RELATE_ERR_ARG && p.image.pixels == NULL);
    free_split(&small);
    ds = saved;
}

static void check_errors(void)
{
    relate_preview_config c;
    relate_error err = {0};
    CHECK(relate_preview_for_method(&c, "moco", &ds.info, &err) == RELATE_ERR_ARG);
    CHECK_MSG(strstr(err.msg, "moco") && strstr(err.msg, "relationnet") && strstr(err.msg, "rotationnet"), "%s",
              err.msg);

    c = config("relationnet", 0, 2, 1, 0);
    relate_preview p;
    if (render(&p, &c)) {
        err = (relate_error){0};
        const char *bad = "/nonexistent_relate_dir/sub/preview.png";
        CHECK(relate_preview_write_png(bad, &p, &err) == RELATE_ERR_IO);
        CHECK_MSG(strstr(err.msg, "/nonexistent_relate_dir/sub/preview.png") != NULL, "%s", err.msg);
        CHECK(access(bad, F_OK) != 0);
        relate_preview_free(&p);
    }
    const struct {
        int views, rows, zoom, epoch, split;
    } bad[] = {{0, 2, 1, 0, 0}, {65, 2, 1, 0, 0}, {2, 0, 1, 0, 0}, {2, 257, 1, 0, 0},
               {2, 2, 0, 0, 0}, {2, 2, 17, 0, 0}, {2, 2, 1, -1, 0}, {2, 2, 1, 0, RELATE_SPLIT_UNLABELED}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        relate_preview_config b = c;
        b.views = bad[i].views;
        b.rows = bad[i].rows;
        b.zoom = bad[i].zoom;
        b.epoch = bad[i].epoch;
        b.split = (relate_split_kind)bad[i].split;
        err = (relate_error){0};
        CHECK_MSG(relate_preview_render(&p, &ds, &b, &err) == RELATE_ERR_ARG && p.image.pixels == NULL && p.indices == NULL,
                  "case %zu", i);
    }
}

int main(void)
{
    setup();
    check_t1_against_loader();
    check_png();
    check_identity_and_splits();
    check_rotations_and_zoom();
    check_resized_originals();
    check_errors();
    char path[128];
    snprintf(path, sizeof path, "%s/a.png", tmpdir);
    remove(path);
    snprintf(path, sizeof path, "%s/b.png", tmpdir);
    remove(path);
    rmdir(tmpdir);
    free_split(&ds.splits[RELATE_SPLIT_TRAIN]);
    free_split(&ds.splits[RELATE_SPLIT_TEST]);
    return relate_test_finish();
}
