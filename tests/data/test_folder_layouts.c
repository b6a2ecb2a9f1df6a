/* test_folder_layouts.c: the layouts of folder:PATH beyond torchvision's ImageFolder, through the
 * public relate_dataset_open_with: a folder of unlabelled images, PATH/unlabeled/ beside a
 * labelled train/, the validation split of --val_fraction, undecodable files skipped or fatal
 * (--strict_images), and the one-line messages of relate_dataset_need_labels.
 * Not ImageFolder's own order and pixels (test_datasets.c checks those). */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "data_fixtures.h"
#include "io/image_decode.h"
#include "relate/data.h"
#include "test_util.h"

/* An 8 x 8 PNG whose pixels encode id, so an image can be recognised wherever it lands. */
static void write_image(const char *path, int id)
{
    uint8_t rgb[8 * 8 * 3];
    for (int k = 0; k < 8 * 8 * 3; k++)
        rgb[k] = fx_pix(id, k / 24, (k / 3) % 8, k % 3);
    fx_mkdirs(path, 0);
    relate_error err = {0};
    if (relate_png_write(path, rgb, 8, 8, &err) != RELATE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
}

static int image_id(const relate_split *s, int64_t i)
{
    const uint8_t *p = relate_split_image(s, i).pixels;
    for (int id = 0; id < 1000; id++)
        if (p[0] == fx_pix(id, 0, 0, 0) && p[1] == fx_pix(id, 0, 0, 1) && p[5] == fx_pix(id, 0, 1, 2))
            return id;
    return -1;
}

static relate_status open_with(relate_dataset *ds, const char *spec, double val_fraction, bool strict,
                               relate_error *err)
{
    relate_dataset_options o = {.val_fraction = val_fraction, .strict_images = strict};
    memset(err, 0, sizeof *err);
    return relate_dataset_open_with(ds, spec, ".", &o, err);
}

static void expect_open_fail(const char *spec, double val_fraction, relate_status code, const char *needle, int line)
{
    relate_dataset ds;
    relate_error err;
    relate_status s = open_with(&ds, spec, val_fraction, false, &err);
    CHECK_MSG(s == code && strstr(err.msg, needle), "line %d: status %d (want %d), message: %s", line, (int)s,
              (int)code, err.msg);
    if (s == RELATE_OK)
        relate_dataset_close(&ds);
}
#define EXPECT_OPEN_FAIL(spec, f, code, needle) expect_open_fail(spec, f, code, needle, __LINE__)

/* PATH/IMAGE: the unlabeled split, which stage 1 trains on; no class, no train or test split. */
static void test_unlabelled(const char *root)
{
    for (int i = 0; i < 5; i++)
        write_image(fx_path("%s/flat/img%d.png", root, i), 100 + i);
    fx_write(fx_path("%s/flat/readme.txt", root), "not an image", 12);
    relate_dataset ds;
    relate_error err;
    CHECK_MSG(open_with(&ds, fx_path("folder:%s/flat@8", root), 0, false, &err) == RELATE_OK, "%s", err.msg);
    const relate_split *u = relate_dataset_split(&ds, RELATE_SPLIT_UNLABELED);
    CHECK(u && u->count == 5 && ds.info.num_classes == 0);
    CHECK(ds.info.unsupervised_split == RELATE_SPLIT_UNLABELED);
    CHECK(!relate_dataset_split(&ds, RELATE_SPLIT_TRAIN) && !relate_dataset_split(&ds, RELATE_SPLIT_TEST));
    for (int64_t i = 0; u && i < u->count; i++)
        CHECK_MSG(u->labels[i] == -1 && image_id(u, i) == 100 + i, "image %lld: label %d id %d", (long long)i,
                  u->labels[i], image_id(u, i));
    CHECK(!*ds.info.warning);
    /* normalised by the images stage 1 trains on */
    CHECK(ds.info.std[0] > 0.01f && ds.info.std[0] < 1);
    /* stages 2 and 3 say what layout they need */
    relate_error e = {0};
    CHECK(relate_dataset_need_labels(&ds, true, false, "Linear evaluation", &e) == RELATE_ERR_ARG);
    CHECK_MSG(strstr(e.msg, "Linear evaluation needs a labelled training split") && strstr(e.msg, "/train/CLASS/") &&
                  strstr(e.msg, "/test/CLASS/"),
              "%s", e.msg);
    CHECK(relate_dataset_need_labels(&ds, false, false, "nothing", &e) == RELATE_OK);
    relate_dataset_close(&ds);
    /* --val_fraction needs labels */
    EXPECT_OPEN_FAIL(fx_path("folder:%s/flat@8", root), 0.2, RELATE_ERR_ARG, "needs labelled images");
    /* an empty folder */
    fx_mkdirs(fx_path("%s/void", root), 1);
    EXPECT_OPEN_FAIL(fx_path("folder:%s/void@8", root), 0, RELATE_ERR_FORMAT, "has no image files");
}

/* PATH/train/CLASS/ + PATH/test/CLASS/ + PATH/unlabeled/ (any depth): STL-10's layout. */
static void test_partly_labelled(const char *root)
{
    const char *b = fx_path("%s/part", root);
    char base[4096];
    snprintf(base, sizeof base, "%s", b);
    write_image(fx_path("%s/train/a/0.png", base), 1);
    write_image(fx_path("%s/train/b/0.png", base), 2);
    write_image(fx_path("%s/test/b/0.png", base), 3);
    write_image(fx_path("%s/unlabeled/x/deep.png", base), 4);
    write_image(fx_path("%s/unlabeled/top.png", base), 5);
    relate_dataset ds;
    relate_error err;
    CHECK_MSG(open_with(&ds, fx_path("folder:%s@8", base), 0, false, &err) == RELATE_OK, "%s", err.msg);
    const relate_split *tr = relate_dataset_split(&ds, RELATE_SPLIT_TRAIN), *te = relate_dataset_split(&ds, RELATE_SPLIT_TEST),
                       *u = relate_dataset_split(&ds, RELATE_SPLIT_UNLABELED);
    CHECK(tr && tr->count == 2 && te && te->count == 1 && te->labels[0] == 1 && ds.info.num_classes == 2);
    /* ImageFolder's walk order: the folder itself first (top.png), then x/ */
    CHECK_MSG(u && u->count == 2 && image_id(u, 0) == 5 && image_id(u, 1) == 4 && u->labels[0] == -1,
              "unlabeled split");
    CHECK(ds.info.unsupervised_split == RELATE_SPLIT_UNLABELED);
    CHECK(relate_dataset_need_labels(&ds, true, true, "kNN", &err) == RELATE_OK);
    relate_dataset_close(&ds);
    /* with test/, --val_fraction is refused rather than ignored */
    EXPECT_OPEN_FAIL(fx_path("folder:%s@8", base), 0.1, RELATE_ERR_ARG, "/test exists");
}

/* --val_fraction: per class round(f * n) (at least 1, never all) go to the test split, always
 * the same ones; train keeps the rest, both in file order. */
static void test_val_fraction(const char *root)
{
    static const int sizes[3] = {10, 3, 1}; /* the one-image class keeps its image */
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < sizes[c]; i++)
            write_image(fx_path("%s/lab/class%d/%02d.png", root, c, i), c * 20 + i);
    relate_dataset ds, again;
    relate_error err;
    const char *spec = fx_path("folder:%s/lab@8", root);
    char sp[4096];
    snprintf(sp, sizeof sp, "%s", spec);
    /* without it: all training, and the test-split message names --val_fraction */
    CHECK_MSG(open_with(&ds, sp, 0, false, &err) == RELATE_OK, "%s", err.msg);
    CHECK(relate_dataset_split(&ds, RELATE_SPLIT_TRAIN)->count == 14 && !relate_dataset_split(&ds, RELATE_SPLIT_TEST));
    relate_error e = {0};
    CHECK(relate_dataset_need_labels(&ds, true, true, "kNN", &e) == RELATE_ERR_ARG);
    CHECK_MSG(strstr(e.msg, "needs a labelled test split") && strstr(e.msg, "--val_fraction"), "%s", e.msg);
    relate_dataset_close(&ds);

    CHECK_MSG(open_with(&ds, sp, 0.25, false, &err) == RELATE_OK, "%s", err.msg);
    CHECK_MSG(open_with(&again, sp, 0.25, false, &err) == RELATE_OK, "%s", err.msg);
    const relate_split *tr = relate_dataset_split(&ds, RELATE_SPLIT_TRAIN), *te = relate_dataset_split(&ds, RELATE_SPLIT_TEST);
    /* class 0: round(2.5) = 3 of 10; class 1: round(0.75) = 1 of 3; class 2: 0 of 1 */
    CHECK_MSG(tr && te && tr->count == 10 && te->count == 4, "train %lld test %lld", tr ? (long long)tr->count : -1LL,
              te ? (long long)te->count : -1LL);
    int seen[60] = {0}, per_class_test[3] = {0}, last = -1;
    bool ordered = true;
    for (int64_t i = 0; tr && i < tr->count; i++) {
        int id = image_id(tr, i);
        CHECK(id >= 0 && tr->labels[i] == id / 20);
        ordered &= id > last;
        last = id;
        if (id >= 0)
            seen[id]++;
    }
    last = -1;
    for (int64_t i = 0; te && i < te->count; i++) {
        int id = image_id(te, i);
        CHECK(id >= 0 && te->labels[i] == id / 20);
        ordered &= id > last;
        last = id;
        if (id >= 0) {
            seen[id]++;
            per_class_test[id / 20]++;
        }
    }
    CHECK_MSG(ordered, "both splits keep the files' order");
    CHECK(per_class_test[0] == 3 && per_class_test[1] == 1 && per_class_test[2] == 0);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < sizes[c]; i++)
            CHECK_MSG(seen[c * 20 + i] == 1, "image %d/%d is in %d splits", c, i, seen[c * 20 + i]);
    /* the same choice on every open (every stage, every --seed) */
    const relate_split *te2 = relate_dataset_split(&again, RELATE_SPLIT_TEST);
    CHECK(te && te2 && te2->count == te->count &&
          memcmp(te->pixels, te2->pixels, (size_t)te->count * 8 * 8 * 3) == 0);
    CHECK_MSG(strstr(ds.info.note, "Validation split: 4 of 14 labelled images"), "note: %s", ds.info.note);
    /* the normalisation comes from the training part only */
    CHECK(relate_dataset_need_labels(&ds, true, true, "kNN", &e) == RELATE_OK);
    relate_dataset_close(&ds);
    relate_dataset_close(&again);

    EXPECT_OPEN_FAIL(sp, 1.0, RELATE_ERR_ARG, "between 0 and 1");
    EXPECT_OPEN_FAIL(sp, -0.5, RELATE_ERR_ARG, "between 0 and 1");
    /* only folders have it */
    EXPECT_OPEN_FAIL("cifar10", 0.1, RELATE_ERR_ARG, "folder:PATH datasets only");
}

/* Undecodable files: skipped, counted, the first named; fatal with strict_images; a split with
 * nothing left is an error either way. */
static void test_corrupt(const char *root)
{
    write_image(fx_path("%s/bad/a/0.png", root), 1);
    fx_write(fx_path("%s/bad/a/1.jpg", root), "\xff\xd8\xff\xe0 truncated", 14);
    write_image(fx_path("%s/bad/b/0.png", root), 2);
    fx_write(fx_path("%s/bad/b/1.png", root), "\x89PNG\r\n\x1a\n", 8);
    relate_dataset ds;
    relate_error err;
    const char *spec = fx_path("folder:%s/bad@8", root);
    char sp[4096];
    snprintf(sp, sizeof sp, "%s", spec);
    CHECK_MSG(open_with(&ds, sp, 0, false, &err) == RELATE_OK, "%s", err.msg);
    const relate_split *tr = relate_dataset_split(&ds, RELATE_SPLIT_TRAIN);
    CHECK(tr && tr->count == 2 && image_id(tr, 0) == 1 && image_id(tr, 1) == 2 && tr->labels[1] == 1);
    CHECK_MSG(strstr(ds.info.warning, "2 of 4 image files were skipped") && strstr(ds.info.warning, "a/1.jpg"),
              "warning: %s", ds.info.warning);
    relate_dataset_close(&ds);
    CHECK(open_with(&ds, sp, 0, true, &err) == RELATE_ERR_FORMAT && strstr(err.msg, "a/1.jpg"));
    /* nothing decodes */
    fx_write(fx_path("%s/allbad/x.png", root), "junk", 4);
    CHECK(open_with(&ds, fx_path("folder:%s/allbad@8", root), 0, false, &err) == RELATE_ERR_FORMAT &&
          strstr(err.msg, "x.png"));
}

int main(void)
{
    const char *root = fx_tmpdir("folders");
    char r[4096];
    snprintf(r, sizeof r, "%s", root);
    test_unlabelled(r);
    test_partly_labelled(r);
    test_val_fraction(r);
    test_corrupt(r);
    fx_cleanup();
    return relate_test_finish();
}
