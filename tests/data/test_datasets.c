/* test_datasets.c: every dataset reader on small files this test writes itself in the exact
 * on-disk formats (CIFAR binary and python pickles, STL-10, IDX, image folders, tiny-ImageNet,
 * SlimageNet64), broken variants of each, and the real Fashion-MNIST of Debian's package.
 * Not a test of the transforms or of decoding against PIL (test_data_io.c has the goldens).
 *
 * The small files hold fewer records than the real archives, so they are opened with
 * allow_partial (src/data/readers.h). relate_dataset_open itself reads CIFAR subsets (any whole
 * number of records, with a note that says so) and refuses STL-10 files of other sizes. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/readers.h"
#include "data_fixtures.h"
#include "io/image_decode.h"
#include "test_util.h"

/* Image-folder options of the next opens (test_folder_layouts.c tests them; here: strictness). */
static relate_dataset_options g_folder;

static relate_status open_partial(relate_dataset *ds, const char *name, const char *root, relate_error *err)
{
    relate_data_opts o = {.allow_partial = true, .fashion_fallback = "", .folder = g_folder};
    memset(err, 0, sizeof *err);
    return relate_dataset_open_opts(ds, name, root, &o, err);
}

/* Opens, expects failure with code and a message containing `needle`. */
static void expect_fail(const char *name, const char *root, relate_status code, const char *needle, int line)
{
    relate_dataset ds;
    relate_error err;
    relate_status s = open_partial(&ds, name, root, &err);
    CHECK_MSG(s == code && (!needle || strstr(err.msg, needle)), "line %d: status %d (want %d), message: %s", line,
              (int)s, (int)code, err.msg);
    if (s == RELATE_OK)
        relate_dataset_close(&ds);
}
#define EXPECT_FAIL(name, root, code, needle) expect_fail(name, root, code, needle, __LINE__)

/* ------------------------------------------------------------------ CIFAR */
/* Record r of file f: label and the 3072 plane bytes fx_pix(f, r, c, y * 32 + x). */
static void cifar_record(uint8_t *rec, int label_bytes, const int *labels, int f, int r)
{
    for (int k = 0; k < label_bytes; k++)
        rec[k] = (uint8_t)labels[k];
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 1024; p++)
            rec[label_bytes + c * 1024 + p] = fx_pix(f, r, c, p);
}

static int check_cifar_pixels(const relate_split *s, int64_t i, int f, int r)
{
    relate_image img = relate_split_image(s, i);
    int bad = 0;
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++)
            for (int c = 0; c < 3; c++)
                bad += img.pixels[(y * 32 + x) * 3 + c] != fx_pix(f, r, c, y * 32 + x);
    return bad;
}

static void test_cifar10_binary(const char *root)
{
    /* batches 1..5 with 3 records, the test batch with 2 */
    for (int f = 1; f <= 6; f++) {
        int n = f == 6 ? 2 : 3;
        uint8_t buf[3 * 3073];
        for (int r = 0; r < n; r++) {
            int label = (f * 3 + r) % 10;
            cifar_record(buf + r * 3073, 1, &label, f, r);
        }
        const char *name = f == 6 ? "test_batch.bin" : fx_path("data_batch_%d.bin", f);
        fx_write(fx_path("%s/cifar-10-batches-bin/%s", root, name), buf, (size_t)n * 3073);
    }
    relate_dataset ds;
    relate_error err;
    CHECK_MSG(open_partial(&ds, "cifar10", root, &err) == RELATE_OK, "%s", err.msg);
    const relate_split *tr = relate_dataset_split(&ds, RELATE_SPLIT_TRAIN), *te = relate_dataset_split(&ds, RELATE_SPLIT_TEST);
    CHECK(tr && tr->count == 15 && tr->width == 32 && tr->height == 32);
    CHECK(te && te->count == 2);
    CHECK(relate_dataset_split(&ds, RELATE_SPLIT_UNLABELED) == NULL);
    if (tr && te && tr->count == 15) {
        int bad = 0;
        for (int f = 1; f <= 5; f++)
            for (int r = 0; r < 3; r++) {
                bad += tr->labels[(f - 1) * 3 + r] != (f * 3 + r) % 10;
                bad += check_cifar_pixels(tr, (f - 1) * 3 + r, f, r);
            }
        for (int r = 0; r < 2; r++)
            bad += te->labels[r] != (18 + r) % 10 || check_cifar_pixels(te, r, 6, r);
        CHECK_MSG(bad == 0, "%d wrong labels/pixels", bad);
    }
    const relate_dataset_info *in = &ds.info;
    CHECK(strcmp(in->name, "cifar10") == 0 && in->num_classes == 10 && in->image_size == 32);
    CHECK(in->crop_padding == 4 && in->cutout == 0.25f && in->unsupervised_split == RELATE_SPLIT_TRAIN);
    CHECK(in->mean[0] == 0.491f && in->mean[2] == 0.447f && in->std[1] == 0.243f && in->std[2] == 0.262f);
    CHECK(in->class_names && strcmp(in->class_names[0], "airplane") == 0 && strcmp(in->class_names[9], "truck") == 0);
    relate_dataset_close(&ds);

    /* The real open reads a subset too (files of fewer records, as users cut them and torchvision
     * reads them) and says so in one line; the partial-open note is the same. */
    memset(&err, 0, sizeof err);
    CHECK_MSG(relate_dataset_open(&ds, "cifar10", root, &err) == RELATE_OK, "%s", err.msg);
    CHECK(relate_dataset_split(&ds, RELATE_SPLIT_TRAIN)->count == 15 && relate_dataset_split(&ds, RELATE_SPLIT_TEST)->count == 2);
    CHECK_MSG(strstr(ds.info.note, "CIFAR-10 subset: 15 of 50000 training images and 2 of 10000 test images"), "%s",
              ds.info.note);
    relate_dataset_close(&ds);
    /* ... but a file that is not a whole number of records is a truncated one */
    {
        size_t n;
        uint8_t *b1 = fx_read(fx_path("%s/cifar-10-batches-bin/data_batch_1.bin", root), &n);
        fx_write(fx_path("%s/cifar-10-batches-bin/data_batch_1.bin", root), b1, n - 100);
        memset(&err, 0, sizeof err);
        CHECK(relate_dataset_open(&ds, "cifar10", root, &err) == RELATE_ERR_FORMAT);
        CHECK_MSG(strstr(err.msg, "data_batch_1.bin") && strstr(err.msg, "whole number of 3073-byte records") &&
                      strstr(err.msg, "2 and 2973 bytes over"),
                  "%s", err.msg);
        /* a label out of range in a subset is refused too */
        uint8_t label1 = b1[3073];
        b1[3073] = 10;
        fx_write(fx_path("%s/cifar-10-batches-bin/data_batch_1.bin", root), b1, n);
        memset(&err, 0, sizeof err);
        CHECK(relate_dataset_open(&ds, "cifar10", root, &err) == RELATE_ERR_FORMAT);
        CHECK_MSG(strstr(err.msg, "record 1 has label 10"), "%s", err.msg);
        b1[3073] = label1;
        fx_write(fx_path("%s/cifar-10-batches-bin/data_batch_1.bin", root), b1, n);
        free(b1);
    }

    /* names from batches.meta.txt */
    const char names[] = "a0\na1\na2\na3\na4\na5\na6\na7\na8\nlast one\n\n";
    fx_write(fx_path("%s/cifar-10-batches-bin/batches.meta.txt", root), names, sizeof names - 1);
    CHECK(open_partial(&ds, "cifar10", root, &err) == RELATE_OK);
    CHECK(ds.info.num_classes == 10 && strcmp(ds.info.class_names[9], "last one") == 0);
    relate_dataset_close(&ds);
    fx_write(fx_path("%s/cifar-10-batches-bin/batches.meta.txt", root), "x\ny\n", 4);
    EXPECT_FAIL("cifar10", root, RELATE_ERR_FORMAT, "class names");
    unlink(fx_path("%s/cifar-10-batches-bin/batches.meta.txt", root));

    /* broken: not a whole number of records, a label of 10, a missing batch */
    const char *b3 = fx_path("%s/cifar-10-batches-bin/data_batch_3.bin", root);
    size_t n;
    uint8_t *orig = fx_read(b3, &n);
    fx_write(b3, orig, n - 1);
    EXPECT_FAIL("cifar10", root, RELATE_ERR_FORMAT, "data_batch_3.bin");
    orig[3073] = 10;
    fx_write(b3, orig, n);
    EXPECT_FAIL("cifar10", root, RELATE_ERR_FORMAT, "label 10");
    orig[3073] = 1;
    fx_write(b3, orig, n);
    free(orig);
    unlink(fx_path("%s/cifar-10-batches-bin/data_batch_5.bin", root));
    EXPECT_FAIL("cifar10", root, RELATE_ERR_IO, "data_batch_5.bin");
}

static void test_cifar100_binary(const char *root)
{
    for (int f = 0; f < 2; f++) {
        int n = f ? 2 : 4;
        uint8_t buf[4 * 3074];
        for (int r = 0; r < n; r++) {
            int labels[2] = {(f * 7 + r * 5) % 20, (f * 31 + r * 13) % 100};
            cifar_record(buf + r * 3074, 2, labels, f, r);
        }
        fx_write(fx_path("%s/cifar-100-binary/%s", root, f ? "test.bin" : "train.bin"), buf, (size_t)n * 3074);
    }
    relate_dataset ds;
    relate_error err;
    for (int coarse = 0; coarse < 2; coarse++) {
        const char *name = coarse ? "supercifar100" : "cifar100";
        CHECK_MSG(open_partial(&ds, name, root, &err) == RELATE_OK, "%s", err.msg);
        const relate_split *tr = relate_dataset_split(&ds, RELATE_SPLIT_TRAIN), *te = relate_dataset_split(&ds, RELATE_SPLIT_TEST);
        CHECK(tr && te && tr->count == 4 && te->count == 2);
        if (tr && te && tr->count == 4 && te->count == 2) {
            int bad = 0;
            for (int r = 0; r < 4; r++)
                bad += tr->labels[r] != (coarse ? (r * 5) % 20 : (r * 13) % 100) || check_cifar_pixels(tr, r, 0, r);
            for (int r = 0; r < 2; r++)
                bad += te->labels[r] != (coarse ? (7 + r * 5) % 20 : (31 + r * 13) % 100) || check_cifar_pixels(te, r, 1, r);
            CHECK_MSG(bad == 0, "%s: %d wrong", name, bad);
        }
        CHECK(ds.info.num_classes == (coarse ? 20 : 100));
        if (coarse)
            CHECK(strcmp(ds.info.class_names[0], "aquatic_mammals") == 0 && strcmp(ds.info.class_names[19], "vehicles_2") == 0);
        else
            CHECK(strcmp(ds.info.class_names[0], "apple") == 0 && strcmp(ds.info.class_names[99], "worm") == 0 &&
                  strcmp(ds.info.class_names[58], "pickup_truck") == 0);
        CHECK(ds.info.cutout == 0.0625f && ds.info.mean[0] == 0.507f && ds.info.std[2] == 0.276f);
        relate_dataset_close(&ds);
    }
    /* a coarse label of 20 is refused by supercifar100 (and cifar100, which reads the same file) */
    const char *p = fx_path("%s/cifar-100-binary/test.bin", root);
    size_t n;
    uint8_t *orig = fx_read(p, &n);
    orig[3074] = 20;
    fx_write(p, orig, n);
    EXPECT_FAIL("supercifar100", root, RELATE_ERR_FORMAT, "label 20");
    orig[3074] = 1;
    orig[3075] = 100;
    fx_write(p, orig, n);
    EXPECT_FAIL("cifar100", root, RELATE_ERR_FORMAT, "label 100");
    free(orig);
}

static void write_cifar_pickle(const char *path, int f, int n, bool hundred)
{
    uint8_t *px = malloc((size_t)n * 3072);
    int fine[8], coarse[8];
    for (int r = 0; r < n; r++) {
        uint8_t rec[3072];
        int none = 0;
        cifar_record(rec, 0, &none, f, r);
        memcpy(px + (size_t)r * 3072, rec, 3072);
        fine[r] = hundred ? (f * 31 + r * 13) % 100 : (f + r * 7) % 10;
        coarse[r] = (f * 7 + r * 5) % 20;
    }
    fx_buf b = {0};
    if (hundred)
        pk2_cifar_batch(&b, px, n, "fine_labels", fine, "coarse_labels", coarse);
    else
        pk2_cifar_batch(&b, px, n, "labels", fine, NULL, NULL);
    fx_write(path, b.p, b.n);
    fx_free(&b);
    free(px);
}

static void test_cifar_pickles(const char *root)
{
    for (int f = 1; f <= 6; f++)
        write_cifar_pickle(fx_path("%s/cifar-10-batches-py/%s", root, f == 6 ? "test_batch" : fx_path("data_batch_%d", f)),
                           f, f == 6 ? 3 : 2, false);
    static const char *const ten[10] = {"p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"};
    fx_buf b = {0};
    pk2_names(&b, "label_names", ten, 10, NULL, NULL, 0);
    fx_write(fx_path("%s/cifar-10-batches-py/batches.meta", root), b.p, b.n);
    fx_free(&b);

    relate_dataset ds;
    relate_error err;
    CHECK_MSG(open_partial(&ds, "cifar10", root, &err) == RELATE_OK, "%s", err.msg);
    const relate_split *tr = relate_dataset_split(&ds, RELATE_SPLIT_TRAIN), *te = relate_dataset_split(&ds, RELATE_SPLIT_TEST);
    CHECK(tr && te && tr->count == 10 && te->count == 3);
    if (tr && te && tr->count == 10 && te->count == 3) {
        int bad = 0;
        for (int f = 1; f <= 5; f++)
            for (int r = 0; r < 2; r++)
                bad += tr->labels[(f - 1) * 2 + r] != (f + r * 7) % 10 || check_cifar_pixels(tr, (f - 1) * 2 + r, f, r);
        for (int r = 0; r < 3; r++)
            bad += te->labels[r] != (6 + r * 7) % 10 || check_cifar_pixels(te, r, 6, r);
        CHECK_MSG(bad == 0, "%d wrong", bad);
    }
    CHECK(ds.info.num_classes == 10 && strcmp(ds.info.class_names[3], "p3") == 0);
    relate_dataset_close(&ds);
    /* the python layout: a subset of 2 rows per batch opens, and says so */
    memset(&err, 0, sizeof err);
    CHECK_MSG(relate_dataset_open(&ds, "cifar10", root, &err) == RELATE_OK, "%s", err.msg);
    CHECK_MSG(strstr(ds.info.note, "subset: 10 of 50000 training images and 3 of 10000"), "%s", ds.info.note);
    relate_dataset_close(&ds);

    /* a batch that smuggles in os.system is refused, naming the global */
    static const char evil_bytes[] = "\x80\x02" "cos\nsystem\nq\x01U\x02lsq\x02\x85q\x03Rq\x04.";
    fx_buf evil = {0};
    fx_put(&evil, evil_bytes, sizeof evil_bytes - 1);
    const char *b2 = fx_path("%s/cifar-10-batches-py/data_batch_2", root);
    size_t n;
    uint8_t *orig = fx_read(b2, &n);
    fx_write(b2, evil.p, evil.n);
    fx_free(&evil);
    EXPECT_FAIL("cifar10", root, RELATE_ERR_FORMAT, "os.system");
    fx_write(b2, orig, n / 2); /* truncated */
    EXPECT_FAIL("cifar10", root, RELATE_ERR_FORMAT, "data_batch_2");
    fx_write(b2, orig, n);
    free(orig);

    /* CIFAR-100 python: train, test, meta */
    write_cifar_pickle(fx_path("%s/cifar-100-python/train", root), 0, 4, true);
    write_cifar_pickle(fx_path("%s/cifar-100-python/test", root), 1, 2, true);
    static const char *fine[100], *coarse[20];
    static char fbuf[100][16], cbuf[20][16];
    for (int i = 0; i < 100; i++) {
        snprintf(fbuf[i], sizeof fbuf[i], "f%d", i);
        fine[i] = fbuf[i];
    }
    for (int i = 0; i < 20; i++) {
        snprintf(cbuf[i], sizeof cbuf[i], "c%d", i);
        coarse[i] = cbuf[i];
    }
    pk2_names(&b, "fine_label_names", fine, 100, "coarse_label_names", coarse, 20);
    fx_write(fx_path("%s/cifar-100-python/meta", root), b.p, b.n);
    fx_free(&b);
    for (int c = 0; c < 2; c++) {
        CHECK_MSG(open_partial(&ds, c ? "supercifar100" : "cifar100", root, &err) == RELATE_OK, "%s", err.msg);
        tr = relate_dataset_split(&ds, RELATE_SPLIT_TRAIN);
        te = relate_dataset_split(&ds, RELATE_SPLIT_TEST);
        CHECK(tr && te && tr->count == 4 && te->count == 2);
        if (tr && te && tr->count == 4 && te->count == 2) {
            int bad = 0;
            for (int r = 0; r < 4; r++)
                bad += tr->labels[r] != (c ? (r * 5) % 20 : (r * 13) % 100) || check_cifar_pixels(tr, r, 0, r);
            for (int r = 0; r < 2; r++)
                bad += te->labels[r] != (c ? (7 + r * 5) % 20 : (31 + r * 13) % 100) || check_cifar_pixels(te, r, 1, r);
            CHECK_MSG(bad == 0, "%d wrong", bad);
        }
        CHECK(ds.info.class_names && strcmp(ds.info.class_names[c ? 19 : 99], c ? "c19" : "f99") == 0);
        relate_dataset_close(&ds);
    }
}

/* Both layouts present: the binary archive wins. */
static void test_cifar_prefers_binary(const char *bin_root, const char *py_root)
{
    char cmd[16400];
    snprintf(cmd, sizeof cmd, "cp -r %s/cifar-10-batches-py %s/", py_root, bin_root);
    CHECK(system(cmd) == 0);
    for (int f = 1; f <= 5; f++) { /* restore batch 5 removed by the binary test */
        uint8_t buf[3 * 3073];
        for (int r = 0; r < 3; r++) {
            int label = (f * 3 + r) % 10;
            cifar_record(buf + r * 3073, 1, &label, f, r);
        }
        fx_write(fx_path("%s/cifar-10-batches-bin/data_batch_%d.bin", bin_root, f), buf, sizeof buf);
    }
    relate_dataset ds;
    relate_error err;
    CHECK_MSG(open_partial(&ds, "cifar10", bin_root, &err) == RELATE_OK, "%s", err.msg);
    CHECK(ds.splits[RELATE_SPLIT_TRAIN].count == 15); /* binary: 3 per batch; pickles: 2 */
    relate_dataset_close(&ds);
}

/* ------------------------------------------------------------------ STL-10 */
static void stl_image(uint8_t *rec, int split, int i)
{
    for (int c = 0; c < 3; c++)
        for (int x = 0; x < 96; x++)
            for (int y = 0; y < 96; y++)
                rec[c * 9216 + x * 96 + y] = fx_pix(split * 10 + i, c, y, x * 3);
}

static void test_stl10(const char *root)
{
    static const int counts[3] = {3, 2, 2};
    static const char *const xs[3] = {"train_X.bin", "test_X.bin", "unlabeled_X.bin"};
    static const char *const ys[3] = {"train_y.bin", "test_y.bin", NULL};
    uint8_t *rec = malloc(3 * 27648);
    for (int s = 0; s < 3; s++) {
        uint8_t labels[3];
        for (int i = 0; i < counts[s]; i++) {
            stl_image(rec + i * 27648, s, i);
            labels[i] = (uint8_t)(1 + (s * 4 + i * 3) % 10);
        }
        fx_write(fx_path("%s/stl10_binary/%s", root, xs[s]), rec, (size_t)counts[s] * 27648);
        if (ys[s])
            fx_write(fx_path("%s/stl10_binary/%s", root, ys[s]), labels, (size_t)counts[s]);
    }
    free(rec);
    relate_dataset ds;
    relate_error err;
    CHECK_MSG(open_partial(&ds, "stl10", root, &err) == RELATE_OK, "%s", err.msg);
    int bad = 0;
    for (int s = 0; s < 3 && err.code == RELATE_OK; s++) {
        const relate_split *sp = relate_dataset_split(&ds, (relate_split_kind)s);
        CHECK(sp && sp->count == counts[s] && sp->width == 96 && sp->height == 96);
        if (!sp || sp->count != counts[s])
            continue;
        for (int i = 0; i < counts[s]; i++) {
            bad += sp->labels[i] != (s == 2 ? -1 : (s * 4 + i * 3) % 10);
            relate_image img = relate_split_image(sp, i);
            for (int y = 0; y < 96; y++)
                for (int x = 0; x < 96; x++)
                    for (int c = 0; c < 3; c++)
                        bad += img.pixels[(y * 96 + x) * 3 + c] != fx_pix(s * 10 + i, c, y, x * 3);
        }
    }
    CHECK_MSG(bad == 0, "%d wrong", bad);
    CHECK(ds.info.image_size == 96 && ds.info.crop_padding == 12 && ds.info.unsupervised_split == RELATE_SPLIT_UNLABELED);
    CHECK(ds.info.cutout == 0.111f && ds.info.mean[1] == 0.5f && ds.info.std[1] == 0.5f);
    CHECK(ds.info.num_classes == 10 && strcmp(ds.info.class_names[7], "monkey") == 0);
    relate_dataset_close(&ds);
    memset(&err, 0, sizeof err);
    CHECK(relate_dataset_open(&ds, "stl10", root, &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "train_y.bin") != NULL, "%s", err.msg);

    /* labels 0 and 11 are outside 1..10; an image file one byte short; a missing unlabeled file */
    const char *yp = fx_path("%s/stl10_binary/train_y.bin", root);
    uint8_t y0[3] = {1, 0, 2}, y11[3] = {1, 11, 2}, ok[3] = {1, 4, 7};
    fx_write(yp, y0, 3);
    EXPECT_FAIL("stl10", root, RELATE_ERR_FORMAT, "outside 1..10");
    fx_write(yp, y11, 3);
    EXPECT_FAIL("stl10", root, RELATE_ERR_FORMAT, "outside 1..10");
    fx_write(yp, ok, 2); /* 2 labels for 3 images */
    EXPECT_FAIL("stl10", root, RELATE_ERR_FORMAT, "train_X.bin");
    fx_write(yp, ok, 3);
    const char *up = fx_path("%s/stl10_binary/unlabeled_X.bin", root);
    size_t n;
    uint8_t *u = fx_read(up, &n);
    fx_write(up, u, n - 1);
    EXPECT_FAIL("stl10", root, RELATE_ERR_FORMAT, "unlabeled_X.bin");
    /* A caller that skips the unlabelled split never reads that file (2.8 GB in the real set):
     * the truncated one opens; a skipped split is absent, and a dropped one goes too. */
    relate_data_opts skip = {.allow_partial = true, .fashion_fallback = ""};
    skip.folder.skip_splits = 1u << RELATE_SPLIT_UNLABELED | 1u << RELATE_SPLIT_TEST;
    memset(&err, 0, sizeof err);
    CHECK_MSG(relate_dataset_open_opts(&ds, "stl10", root, &skip, &err) == RELATE_OK, "%s", err.msg);
    if (err.code == RELATE_OK) {
        CHECK(!relate_dataset_split(&ds, RELATE_SPLIT_UNLABELED) && !relate_dataset_split(&ds, RELATE_SPLIT_TEST));
        const relate_split *tr = relate_dataset_split(&ds, RELATE_SPLIT_TRAIN);
        CHECK(tr && tr->count == 3 && tr->labels[1] == 4 - 1);
        relate_dataset_drop_split(&ds, RELATE_SPLIT_TRAIN);
        CHECK(!relate_dataset_split(&ds, RELATE_SPLIT_TRAIN) && !ds.splits[RELATE_SPLIT_TRAIN].pixels);
        relate_dataset_close(&ds);
    }
    unlink(up);
    EXPECT_FAIL("stl10", root, RELATE_ERR_IO, "relate download stl10");
    fx_write(up, u, n);
    free(u);
    fx_write(fx_path("%s/stl10_binary/class_names.txt", root), "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n", 20);
    CHECK(open_partial(&ds, "stl10", root, &err) == RELATE_OK && strcmp(ds.info.class_names[9], "j") == 0);
    relate_dataset_close(&ds);
}

/* ------------------------------------------------------------------ IDX */
static void idx_files(const char *dir, const char *prefix, int n, int seed, bool gz)
{
    fx_buf img = {0}, lab = {0};
    fx_put_be32(&img, 0x803);
    fx_put_be32(&img, (uint32_t)n);
    fx_put_be32(&img, 28);
    fx_put_be32(&img, 28);
    fx_put_be32(&lab, 0x801);
    fx_put_be32(&lab, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        for (int p = 0; p < 784; p++)
            fx_put_u8(&img, fx_pix(seed, i, p, 1));
        fx_put_u8(&lab, (seed + i * 3) % 10);
    }
    const char *ip = fx_path("%s/%s-images-idx3-ubyte%s", dir, prefix, gz ? ".gz" : "");
    const char *lp = fx_path("%s/%s-labels-idx1-ubyte%s", dir, prefix, gz ? ".gz" : "");
    if (gz) {
        fx_write_gz(ip, img.p, img.n);
        fx_write_gz(lp, lab.p, lab.n);
    } else {
        fx_write(ip, img.p, img.n);
        fx_write(lp, lab.p, lab.n);
    }
    fx_free(&img);
    fx_free(&lab);
}

static int check_idx_split(const relate_split *s, int n, int seed)
{
    if (!s || s->count != n || s->width != 28)
        return 1000;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        bad += s->labels[i] != (seed + i * 3) % 10;
        relate_image img = relate_split_image(s, i);
        for (int p = 0; p < 784; p++)
            for (int c = 0; c < 3; c++)
                bad += img.pixels[3 * p + c] != fx_pix(seed, i, p, 1);
    }
    return bad;
}

static void test_idx(const char *root)
{
    relate_dataset ds;
    relate_error err;
    /* nothing there (and no system fallback in this test) */
    EXPECT_FAIL("fashionmnist", root, RELATE_ERR_IO, "fashionmnist");
    EXPECT_FAIL("mnist", root, RELATE_ERR_IO, "MNIST/raw");

    idx_files(fx_path("%s/fashionmnist", root), "train", 5, 1, true);
    idx_files(fx_path("%s/fashionmnist", root), "t10k", 3, 2, true);
    CHECK_MSG(open_partial(&ds, "fashionmnist", root, &err) == RELATE_OK, "%s", err.msg);
    CHECK(check_idx_split(relate_dataset_split(&ds, RELATE_SPLIT_TRAIN), 5, 1) == 0);
    CHECK(check_idx_split(relate_dataset_split(&ds, RELATE_SPLIT_TEST), 3, 2) == 0);
    CHECK(ds.info.image_size == 28 && ds.info.crop_padding == 4 && ds.info.cutout <= 0);
    CHECK(strcmp(ds.info.class_names[0], "T-shirt/top") == 0 && strcmp(ds.info.class_names[9], "Ankle boot") == 0);
    relate_dataset_close(&ds);

    /* torchvision's layout, plain files, for MNIST */
    idx_files(fx_path("%s/MNIST/raw", root), "train", 4, 3, false);
    idx_files(fx_path("%s/MNIST/raw", root), "t10k", 2, 4, false);
    CHECK_MSG(open_partial(&ds, "mnist", root, &err) == RELATE_OK, "%s", err.msg);
    CHECK(check_idx_split(relate_dataset_split(&ds, RELATE_SPLIT_TRAIN), 4, 3) == 0);
    CHECK(check_idx_split(relate_dataset_split(&ds, RELATE_SPLIT_TEST), 2, 4) == 0);
    CHECK(ds.info.mean[0] == 0.1307f && ds.info.std[2] == 0.3081f);
    relate_dataset_close(&ds);

    /* broken files in the MNIST folder */
    const char *ip = fx_path("%s/MNIST/raw/train-images-idx3-ubyte", root);
    const char *lp = fx_path("%s/MNIST/raw/train-labels-idx1-ubyte", root);
    size_t ni, nl;
    uint8_t *img = fx_read(ip, &ni), *lab = fx_read(lp, &nl);
    img[3] = 2; /* wrong magic */
    fx_write(ip, img, ni);
    EXPECT_FAIL("mnist", root, RELATE_ERR_FORMAT, "magic");
    img[3] = 3;
    img[4] = 0x7f; /* ~2 billion images declared: refused, nothing allocated */
    fx_write(ip, img, ni);
    EXPECT_FAIL("mnist", root, RELATE_ERR_FORMAT, "declares");
    img[4] = 0;
    img[7] = 200; /* 200 images declared, 4 present: truncated */
    fx_write(ip, img, ni);
    EXPECT_FAIL("mnist", root, RELATE_ERR_FORMAT, "truncated");
    img[7] = 4;
    img[11] = 32; /* 32 x 28 */
    fx_write(ip, img, ni);
    EXPECT_FAIL("mnist", root, RELATE_ERR_FORMAT, "28 x 28");
    img[11] = 28;
    fx_write(ip, img, ni - 1);
    EXPECT_FAIL("mnist", root, RELATE_ERR_FORMAT, "truncated");
    uint8_t *longer = malloc(ni + 1);
    memcpy(longer, img, ni);
    longer[ni] = 0;
    fx_write(ip, longer, ni + 1);
    free(longer);
    EXPECT_FAIL("mnist", root, RELATE_ERR_FORMAT, "longer");
    fx_write(ip, img, ni);
    lab[8 + 2] = 10;
    fx_write(lp, lab, nl);
    EXPECT_FAIL("mnist", root, RELATE_ERR_FORMAT, "outside 0..9");
    lab[8 + 2] = 1;
    lab[7] = 3; /* 3 labels declared for 4 images */
    fx_write(lp, lab, nl - 1);
    EXPECT_FAIL("mnist", root, RELATE_ERR_FORMAT, "labels");
    lab[7] = 4;
    fx_write(lp, lab, nl);
    CHECK(open_partial(&ds, "mnist", root, &err) == RELATE_OK);
    relate_dataset_close(&ds);
    free(img);
    free(lab);

    /* a corrupt gzip stream */
    const char *gp = fx_path("%s/fashionmnist/train-images-idx3-ubyte.gz", root);
    size_t ng;
    uint8_t *gz = fx_read(gp, &ng);
    fx_write(gp, gz, ng / 2);
    EXPECT_FAIL("fashionmnist", root, RELATE_ERR_FORMAT, "train-images");
    free(gz);
}

/* ------------------------------------------------------------------ image folders */
static void folder_image(uint8_t *rgb, int w, int h, int id)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                rgb[(y * w + x) * 3 + c] = fx_pix(id, y, x, c);
}

static void write_png_image(const char *path, int w, int h, int id)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    folder_image(rgb, w, h, id);
    fx_mkdirs(path, 0);
    relate_error err = {0};
    if (relate_png_write(path, rgb, w, h, &err) != RELATE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    free(rgb);
}

/* the ids in the order ImageFolder lists them must come back with these labels */
static int check_folder_split(const relate_split *s, const int *ids, const int *labels, int n, int side)
{
    if (!s || s->count != n || s->width != side)
        return 1000;
    int bad = 0;
    uint8_t *want = malloc((size_t)side * side * 3);
    for (int i = 0; i < n; i++) {
        bad += s->labels[i] != labels[i];
        if (ids[i] < 0)
            continue; /* a JPEG: checked for plausibility elsewhere */
        folder_image(want, side, side, ids[i]);
        bad += memcmp(relate_split_image(s, i).pixels, want, (size_t)side * side * 3) != 0;
    }
    free(want);
    return bad;
}

static void test_folder(const char *root)
{
    const char *base = fx_path("%s/myset", root);
    char b[4096];
    snprintf(b, sizeof b, "%s", base);
    /* train/: classes "bird" and "cat"; inside cat, sorted(os.walk) orders folders by their whole
     * path: cat, cat/a-b, cat/a/x ('-' < '/'), then files by name within each */
    write_png_image(fx_path("%s/train/cat/z.png", b), 16, 16, 1);
    write_png_image(fx_path("%s/train/cat/B.PNG", b), 16, 16, 2); /* upper case sorts first */
    write_png_image(fx_path("%s/train/cat/a/x/deep.png", b), 16, 16, 3);
    write_png_image(fx_path("%s/train/cat/a-b/mid.png", b), 16, 16, 4);
    fx_write(fx_path("%s/train/cat/notes.txt", b), "ignored", 7);
    write_png_image(fx_path("%s/train/bird/1.png", b), 16, 16, 5);
    uint8_t rgb[16 * 16 * 3];
    folder_image(rgb, 16, 16, 6);
    fx_write_jpeg(fx_path("%s/train/bird/0.jpeg", b), rgb, 16, 16, 95);
    write_png_image(fx_path("%s/test/cat/t.png", b), 16, 16, 7);

    relate_dataset ds;
    relate_error err;
    CHECK_MSG(open_partial(&ds, fx_path("folder:%s@16", b), root, &err) == RELATE_OK, "%s", err.msg);
    static const int ids[6] = {-1, 5, 2, 1, 4, 3}, labels[6] = {0, 0, 1, 1, 1, 1};
    const relate_split *tr = relate_dataset_split(&ds, RELATE_SPLIT_TRAIN);
    CHECK_MSG(check_folder_split(tr, ids, labels, 6, 16) == 0, "folder order or pixels");
    if (tr && tr->count == 6) {
        /* the JPEG: decoded, 16 x 16, close to what was encoded */
        relate_image img = relate_split_image(tr, 0);
        double diff = 0;
        for (int k = 0; k < 16 * 16 * 3; k++)
            diff += fabs((double)img.pixels[k] - rgb[k]);
        CHECK_MSG(diff / (16 * 16 * 3) < 12, "JPEG mean abs difference %.2f", diff / (16 * 16 * 3));
    }
    static const int tid[1] = {7}, tlab[1] = {1}; /* test's only class maps to train's index */
    CHECK(check_folder_split(relate_dataset_split(&ds, RELATE_SPLIT_TEST), tid, tlab, 1, 16) == 0);
    CHECK(ds.info.num_classes == 2 && strcmp(ds.info.class_names[0], "bird") == 0);
    CHECK(ds.info.image_size == 16 && ds.info.crop_padding == 2 && ds.info.cutout <= 0);
    if (tr && tr->count == 6) { /* mean/std computed from the train split */
        double s1 = 0, s2 = 0, m = (double)tr->count * 256;
        for (int64_t p = 0; p < tr->count * 256; p++) {
            double v = tr->pixels[p * 3 + 1] / 255.0;
            s1 += v;
            s2 += v * v;
        }
        double mean = s1 / m, sd = sqrt(s2 / m - mean * mean);
        CHECK_MSG(fabs(ds.info.mean[1] - mean) < 1e-5 && fabs(ds.info.std[1] - sd) < 1e-5, "%f %f vs %f %f",
                  ds.info.mean[1], ds.info.std[1], mean, sd);
    }
    CHECK(strncmp(ds.info.name, "folder:", 7) == 0);
    relate_dataset_close(&ds);

    /* a folder without train/ is the train split itself */
    write_png_image(fx_path("%s/flat/k1/a.png", root), 8, 8, 8);
    write_png_image(fx_path("%s/flat/k0/a.png", root), 8, 8, 9);
    CHECK_MSG(open_partial(&ds, fx_path("folder:%s/flat@8", root), root, &err) == RELATE_OK, "%s", err.msg);
    static const int fid[2] = {9, 8}, flab[2] = {0, 1};
    CHECK(check_folder_split(relate_dataset_split(&ds, RELATE_SPLIT_TRAIN), fid, flab, 2, 8) == 0);
    CHECK(relate_dataset_split(&ds, RELATE_SPLIT_TEST) == NULL);
    relate_dataset_close(&ds);

    /* @S other than the files' size: every image is resized to S x S (PIL bilinear, the
     * transforms' relate_resize_bilinear; its pixels are tested there) */
    CHECK_MSG(open_partial(&ds, fx_path("folder:%s/flat@5", root), root, &err) == RELATE_OK, "%s", err.msg);
    const relate_split *rs = relate_dataset_split(&ds, RELATE_SPLIT_TRAIN);
    CHECK(rs && rs->count == 2 && rs->width == 5 && rs->height == 5 && ds.info.image_size == 5);
    relate_dataset_close(&ds);

    /* errors: bad @S, missing folder, a test class unknown to train, an empty class, a BMP, a
     * broken PNG, a wrong size where resizing is not allowed (tiny) */
    EXPECT_FAIL(fx_path("folder:%s@2", b), root, RELATE_ERR_ARG, "@2");
    EXPECT_FAIL("folder:", root, RELATE_ERR_ARG, "folder:PATH");
    EXPECT_FAIL(fx_path("folder:%s/nothing", root), root, RELATE_ERR_IO, "nothing");
    write_png_image(fx_path("%s/test/dog/t.png", b), 16, 16, 7);
    EXPECT_FAIL(fx_path("folder:%s@16", b), root, RELATE_ERR_FORMAT, "dog");
    unlink(fx_path("%s/test/dog/t.png", b));
    rmdir(fx_path("%s/test/dog", b));
    fx_mkdirs(fx_path("%s/train/empty", b), 1);
    EXPECT_FAIL(fx_path("folder:%s@16", b), root, RELATE_ERR_FORMAT, "no image files");
    /* --strict_images: a file that does not decode is the error */
    g_folder.strict_images = true;
    fx_write(fx_path("%s/train/empty/x.bmp", b), "BM\x36\x00\x00\x00\x00\x00", 8);
    EXPECT_FAIL(fx_path("folder:%s@16", b), root, RELATE_ERR_FORMAT, "BMP");
    fx_write(fx_path("%s/train/empty/x.bmp", b), "\x89PNG\r\n\x1a\n\0\0", 10);
    EXPECT_FAIL(fx_path("folder:%s@16", b), root, RELATE_ERR_FORMAT, "x.bmp");
    g_folder.strict_images = false;
    /* by default it is skipped, counted and named in the warning; the others keep their order */
    CHECK_MSG(open_partial(&ds, fx_path("folder:%s@16", b), root, &err) == RELATE_OK, "%s", err.msg);
    CHECK_MSG(check_folder_split(relate_dataset_split(&ds, RELATE_SPLIT_TRAIN), ids, labels, 6, 16) == 0,
              "the split without the broken file");
    CHECK_MSG(strstr(ds.info.warning, "1 of 8 image files were skipped") && strstr(ds.info.warning, "x.bmp") &&
                  strstr(ds.info.warning, "--strict_images=True"),
              "warning: %s", ds.info.warning);
    relate_dataset_close(&ds);
}

/* ------------------------------------------------------------------ tiny-ImageNet, SlimageNet */
static void test_tiny(const char *root)
{
    const char *t = fx_path("%s/tiny-imagenet-200", root);
    char tb[4096];
    snprintf(tb, sizeof tb, "%s", t);
    EXPECT_FAIL("tiny", root, RELATE_ERR_IO, "tiny-imagenet-200.zip");
    /* two classes, images under train/<wnid>/images/, plus the boxes files */
    write_png_image(fx_path("%s/train/n02/images/n02_1.JPEG", tb), 64, 64, 21);
    write_png_image(fx_path("%s/train/n02/images/n02_0.JPEG", tb), 64, 64, 20);
    write_png_image(fx_path("%s/train/n01/images/n01_0.JPEG", tb), 64, 64, 10);
    fx_write(fx_path("%s/train/n01/n01_boxes.txt", tb), "n01_0.JPEG\t0\t0\t10\t10\n", 22);
    fx_write(fx_path("%s/wnids.txt", tb), "n02\nn01\n", 8);
    /* val as shipped: val/images + val_annotations.txt; sorted by class, then file name */
    write_png_image(fx_path("%s/val/images/val_0.JPEG", tb), 64, 64, 30);
    write_png_image(fx_path("%s/val/images/val_1.JPEG", tb), 64, 64, 31);
    write_png_image(fx_path("%s/val/images/val_10.JPEG", tb), 64, 64, 32);
    write_png_image(fx_path("%s/val/images/val_2.JPEG", tb), 64, 64, 33);
    const char ann[] = "val_0.JPEG\tn02\t0\t1\t2\t3\nval_1.JPEG\tn01\t0\t1\t2\t3\r\n"
                       "val_10.JPEG\tn02\t0\t1\t2\t3\nval_2.JPEG\tn02\t4\t5\t6\t7\n";
    fx_write(fx_path("%s/val/val_annotations.txt", tb), ann, sizeof ann - 1);

    relate_dataset ds;
    relate_error err;
    CHECK_MSG(open_partial(&ds, "tiny", root, &err) == RELATE_OK, "%s", err.msg);
    static const int ids[3] = {10, 20, 21}, labels[3] = {0, 1, 1};
    CHECK(check_folder_split(relate_dataset_split(&ds, RELATE_SPLIT_TRAIN), ids, labels, 3, 64) == 0);
    static const int vids[4] = {31, 30, 32, 33}, vlab[4] = {0, 1, 1, 1};
    CHECK(check_folder_split(relate_dataset_split(&ds, RELATE_SPLIT_TEST), vids, vlab, 4, 64) == 0);
    CHECK(ds.info.num_classes == 2 && strcmp(ds.info.class_names[1], "n02") == 0);
    CHECK(ds.info.image_size == 64 && ds.info.crop_padding == 8 && ds.info.std[0] == 0.25f && ds.info.cutout <= 0);
    relate_dataset_close(&ds);

    /* an unknown wnid in the annotations, then a non-64 image */
    const char bad_ann[] = "val_0.JPEG\tn09\t0\t1\t2\t3\n";
    fx_write(fx_path("%s/val/val_annotations.txt", tb), bad_ann, sizeof bad_ann - 1);
    EXPECT_FAIL("tiny", root, RELATE_ERR_FORMAT, "n09");
    fx_write(fx_path("%s/val/val_annotations.txt", tb), ann, sizeof ann - 1);
    write_png_image(fx_path("%s/val/images/val_2.JPEG", tb), 32, 64, 33);
    EXPECT_FAIL("tiny", root, RELATE_ERR_FORMAT, "64 x 64");

    /* the reorganised layout val/<wnid>/images/ (the authors' helper script) */
    char cmd[16400];
    snprintf(cmd, sizeof cmd, "rm -rf %s/val && mkdir -p %s/val/n01/images %s/val/n02/images", tb, tb, tb);
    CHECK(system(cmd) == 0);
    write_png_image(fx_path("%s/val/n02/images/val_5.JPEG", tb), 64, 64, 40);
    write_png_image(fx_path("%s/val/n01/images/val_7.JPEG", tb), 64, 64, 41);
    CHECK_MSG(open_partial(&ds, "tiny", root, &err) == RELATE_OK, "%s", err.msg);
    static const int rids[2] = {41, 40}, rlab[2] = {0, 1};
    CHECK(check_folder_split(relate_dataset_split(&ds, RELATE_SPLIT_TEST), rids, rlab, 2, 64) == 0);
    relate_dataset_close(&ds);
}

static void test_slim(const char *root)
{
    EXPECT_FAIL("slim", root, RELATE_ERR_IO, "Zenodo");
    write_png_image(fx_path("%s/SlimageNet64/train/zebra/0.png", root), 64, 64, 50);
    write_png_image(fx_path("%s/SlimageNet64/train/apple/0.png", root), 64, 64, 51);
    write_png_image(fx_path("%s/SlimageNet64/test/zebra/9.png", root), 64, 64, 52);
    write_png_image(fx_path("%s/SlimageNet64/test/apple/9.png", root), 64, 64, 53);
    relate_dataset ds;
    relate_error err;
    CHECK_MSG(open_partial(&ds, "slim", root, &err) == RELATE_OK, "%s", err.msg);
    static const int ids[2] = {51, 50}, labels[2] = {0, 1}, tids[2] = {53, 52};
    CHECK(check_folder_split(relate_dataset_split(&ds, RELATE_SPLIT_TRAIN), ids, labels, 2, 64) == 0);
    CHECK(check_folder_split(relate_dataset_split(&ds, RELATE_SPLIT_TEST), tids, labels, 2, 64) == 0);
    relate_dataset_close(&ds);
}

/* ------------------------------------------------------------------ names, the real Fashion-MNIST */
static void test_names(const char *root)
{
    const char *const *names = relate_dataset_names();
    int n = 0;
    bool has_fashion = false;
    for (; names[n]; n++)
        has_fashion |= strcmp(names[n], "fashionmnist") == 0;
    CHECK(n == 8 && has_fashion);
    relate_dataset ds;
    relate_error err = {0};
    CHECK(relate_dataset_open(&ds, "imagenet", root, &err) == RELATE_ERR_ARG);
    CHECK_MSG(strstr(err.msg, "cifar10") && strstr(err.msg, "stl10") && strstr(err.msg, "folder:PATH"), "%s", err.msg);
    memset(&err, 0, sizeof err);
    CHECK(relate_dataset_open(&ds, "cifar10", root, &err) == RELATE_ERR_IO);
    CHECK_MSG(strstr(err.msg, "cifar-10-batches-bin") && strstr(err.msg, "relate download cifar10"), "%s", err.msg);
    memset(&err, 0, sizeof err);
    CHECK(relate_dataset_open(&ds, "cifar100", root, &err) == RELATE_ERR_IO);
    CHECK_MSG(strstr(err.msg, "cifar-100-binary"), "%s", err.msg);
    memset(&err, 0, sizeof err);
    CHECK(relate_dataset_open(&ds, "stl10", root, &err) == RELATE_ERR_IO);
}

/* Debian's Fashion-MNIST, found by the reader's fallback to RELATE_FASHION_MNIST_SYSTEM_DIR. The
 * environment variable RELATE_TEST_FASHION_MNIST_DIR names another folder with the same files (read
 * through a data root that links to it); a folder without them makes this part a skip, which is a
 * failure under RELATE_REQUIRE_ALL=1. */
static void test_real_fashion_mnist(const char *empty_root, const char *link_root)
{
    const char *dir = getenv("RELATE_TEST_FASHION_MNIST_DIR");
    bool system_dir = !dir || !*dir || strcmp(dir, RELATE_FASHION_MNIST_SYSTEM_DIR) == 0;
    if (system_dir)
        dir = RELATE_FASHION_MNIST_SYSTEM_DIR;
    char probe[4096], link[4096];
    snprintf(probe, sizeof probe, "%s/train-images-idx3-ubyte.gz", dir);
    if (relate_file_size(probe) < 0) {
        char why[4200];
        snprintf(why, sizeof why, "%s is missing", probe);
        relate_test_skip("real Fashion-MNIST", why,
                         "apt-get install dataset-fashion-mnist (Debian's package, into " RELATE_FASHION_MNIST_SYSTEM_DIR ")");
        return;
    }
    relate_dataset ds;
    relate_error err = {0};
    snprintf(link, sizeof link, "%s/fashionmnist", link_root);
    CHECK_MSG(system_dir || symlink(dir, link) == 0, "cannot link %s to %s", link, dir);
    CHECK_MSG(relate_dataset_open(&ds, "fashionmnist", system_dir ? empty_root : link_root, &err) == RELATE_OK, "%s",
              err.msg);
    if (!system_dir)
        unlink(link);
    if (err.code)
        return;
    const relate_split *tr = relate_dataset_split(&ds, RELATE_SPLIT_TRAIN), *te = relate_dataset_split(&ds, RELATE_SPLIT_TEST);
    CHECK(tr && tr->count == 60000 && tr->width == 28 && tr->height == 28);
    CHECK(te && te->count == 10000);
    if (!tr || !te || tr->count != 60000 || te->count != 10000) {
        relate_dataset_close(&ds);
        return;
    }
    int ctr[10] = {0}, cte[10] = {0};
    for (int i = 0; i < 60000; i++)
        ctr[tr->labels[i]]++;
    for (int i = 0; i < 10000; i++)
        cte[te->labels[i]]++;
    for (int c = 0; c < 10; c++)
        CHECK_MSG(ctr[c] == 6000 && cte[c] == 1000, "class %d: %d / %d", c, ctr[c], cte[c]);
    static const int first_train[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, first_test[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    for (int i = 0; i < 10; i++)
        CHECK(tr->labels[i] == first_train[i] && te->labels[i] == first_test[i]);
    /* row 14 of image 0 and whole-image sums, from numpy on the same file */
    static const uint8_t row14[28] = {0,   0,   1,   4,   6,   7,   2,   0,   0,   0,   0,   0,   237, 226,
                                      217, 223, 222, 219, 222, 221, 216, 223, 229, 215, 218, 255, 77,  0};
    relate_image im0 = relate_split_image(tr, 0), imlast = relate_split_image(tr, 59999);
    int bad = 0;
    long sum0 = 0, sumlast = 0;
    for (int x = 0; x < 28; x++)
        for (int c = 0; c < 3; c++)
            bad += im0.pixels[(14 * 28 + x) * 3 + c] != row14[x];
    for (int p = 0; p < 784; p++) {
        sum0 += im0.pixels[3 * p];
        sumlast += imlast.pixels[3 * p + 2];
    }
    CHECK_MSG(bad == 0 && sum0 == 76247 && sumlast == 16684, "bad %d, sums %ld %ld", bad, sum0, sumlast);
    /* the hard-coded normalisation is what these pixels give (population std, as numpy's) */
    double s1 = 0, s2 = 0;
    for (int64_t p = 0; p < 60000LL * 784; p++) {
        double v = tr->pixels[3 * p] / 255.0;
        s1 += v;
        s2 += v * v;
    }
    double m = s1 / (60000.0 * 784), sd = sqrt(s2 / (60000.0 * 784) - m * m);
    for (int c = 0; c < 3; c++)
        CHECK_MSG(fabs(ds.info.mean[c] - m) < 1e-4 && fabs(ds.info.std[c] - sd) < 1e-4, "mean %.6f std %.6f, info %.4f %.4f",
                  m, sd, ds.info.mean[c], ds.info.std[c]);
    CHECK(strcmp(ds.info.class_names[8], "Bag") == 0);
    relate_dataset_close(&ds);
}

int main(void)
{
    const char *bin = fx_tmpdir("cifarbin"), *py = fx_tmpdir("cifarpy"), *other = fx_tmpdir("data"),
               *empty = fx_tmpdir("empty"), *fashion_link = fx_tmpdir("fashionlink");
    test_names(empty);
    test_cifar10_binary(bin);
    test_cifar100_binary(bin);
    test_cifar_pickles(py);
    test_cifar_prefers_binary(bin, py);
    test_stl10(other);
    test_idx(other);
    test_folder(other);
    test_tiny(other);
    test_slim(other);
    test_real_fashion_mnist(empty, fashion_link);
    fx_cleanup();
    return relate_test_finish();
}
