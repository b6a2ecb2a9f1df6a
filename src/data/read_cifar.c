/* read_cifar.c: CIFAR-10 / CIFAR-100 / super-CIFAR-100 from the binary archives
 * (cifar-10-batches-bin/, cifar-100-binary/) or the python-pickle ones (cifar-10-batches-py/,
 * cifar-100-python/, what torchvision downloads); binary wins when both are there.
 * Not a downloader: a missing archive is an error that says which command or archive provides it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/readers.h"
#include "io/pickle.h"

static const char *const k_cifar10_names[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                "dog",      "frog",       "horse", "ship", "truck"};

static const char *const k_cifar100_fine[100] = {
    "apple",      "aquarium_fish", "baby",         "bear",       "beaver",      "bed",         "bee",
    "beetle",     "bicycle",       "bottle",       "bowl",       "boy",         "bridge",      "bus",
    "butterfly",  "camel",         "can",          "castle",     "caterpillar", "cattle",      "chair",
    "chimpanzee", "clock",         "cloud",        "cockroach",  "couch",       "crab",        "crocodile",
    "cup",        "dinosaur",      "dolphin",      "elephant",   "flatfish",    "forest",      "fox",
    "girl",       "hamster",       "house",        "kangaroo",   "keyboard",    "lamp",        "lawn_mower",
    "leopard",    "lion",          "lizard",       "lobster",    "man",         "maple_tree",  "motorcycle",
    "mountain",   "mouse",         "mushroom",     "oak_tree",   "orange",      "orchid",      "otter",
    "palm_tree",  "pear",          "pickup_truck", "pine_tree",  "plain",       "plate",       "poppy",
    "porcupine",  "possum",        "rabbit",       "raccoon",    "ray",         "road",        "rocket",
    "rose",       "sea",           "seal",         "shark",      "shrew",       "skunk",       "skyscraper",
    "snail",      "snake",         "spider",       "squirrel",   "streetcar",   "sunflower",   "sweet_pepper",
    "table",      "tank",          "telephone",    "television", "tiger",       "tractor",     "train",
    "trout",      "tulip",         "turtle",       "wardrobe",   "whale",       "willow_tree", "wolf",
    "woman",      "worm"};

static const char *const k_cifar100_coarse[20] = {"aquatic_mammals",
                                                  "fish",
                                                  "flowers",
                                                  "food_containers",
                                                  "fruit_and_vegetables",
                                                  "household_electrical_devices",
                                                  "household_furniture",
                                                  "insects",
                                                  "large_carnivores",
                                                  "large_man-made_outdoor_things",
                                                  "large_natural_outdoor_scenes",
                                                  "large_omnivores_and_herbivores",
                                                  "medium_mammals",
                                                  "non-insect_invertebrates",
                                                  "people",
                                                  "reptiles",
                                                  "small_mammals",
                                                  "trees",
                                                  "vehicles_1",
                                                  "vehicles_2"};

#define CIFAR_PIXELS 3072 /* 3 planes of 32 x 32 */

static const relate_pk_global k_numpy_globals[] = {
    {"numpy.core.multiarray", "_reconstruct"}, {"numpy", "ndarray"}, {"numpy", "dtype"}, {NULL, NULL}};

/* One CIFAR record's R, G, B planes (row-major 32 x 32 each) to HWC. */
static void planes_to_hwc(const uint8_t *src, uint8_t *dst)
{
    for (int p = 0; p < 1024; p++) {
        dst[3 * p] = src[p];
        dst[3 * p + 1] = src[1024 + p];
        dst[3 * p + 2] = src[2048 + p];
    }
}

typedef struct cifar_kind {
    const char *title;    /* "CIFAR-10" */
    const char *download; /* the `relate download` argument */
    int num_classes;
    /* binary layout */
    int record;           /* bytes per record */
    int label_offset;     /* which label byte */
    /* python layout */
    const char *label_key;
} cifar_kind;

/* Appends a binary batch file: any positive whole number of records (a subset, as torchvision
 * reads it); a size that is not one is a truncated or foreign file. */
static relate_status append_binary(relate_split *sp, const char *path, const cifar_kind *k, relate_error *err)
{
    int64_t size = relate_file_size(path);
    if (size < 0)
        return relate_error_set(err, RELATE_ERR_IO, "%s is missing: the %s binary archive is incomplete; extract it "
                                "again (or run `relate download %s`)", path, k->title, k->download);
    if (size == 0 || size % k->record) {
        return relate_error_set(err, RELATE_ERR_FORMAT,
                                "%s: %lld bytes, but a %s batch file holds a whole number of %d-byte records (%lld "
                                "and %lld bytes over); it is truncated or not from the binary archive: extract it "
                                "again (or run `relate download %s`)",
                                path, (long long)size, k->title, k->record, (long long)(size / k->record),
                                (long long)(size % k->record), k->download);
    }
    int64_t n = size / k->record, base = sp->count;
    uint8_t *buf;
    size_t got;
    relate_status s = relate_file_read_all(path, (size_t)size, &buf, &got, err);
    if (s)
        return s;
    if ((s = relate_split_resize(sp, base + n, 32, 32, err))) {
        free(buf);
        return s;
    }
    for (int64_t r = 0; r < n; r++) {
        const uint8_t *rec = buf + (size_t)r * (size_t)k->record;
        int label = rec[k->label_offset];
        if (label >= k->num_classes) {
            free(buf);
            return relate_error_set(err, RELATE_ERR_FORMAT, "%s: record %lld has label %d, outside 0..%d: not a %s file",
                                    path, (long long)r, label, k->num_classes - 1, k->title);
        }
        sp->labels[base + r] = label;
        planes_to_hwc(rec + (k->record - CIFAR_PIXELS), sp->pixels + (size_t)(base + r) * CIFAR_PIXELS);
    }
    free(buf);
    return RELATE_OK;
}

/* The pickle's messages name the opcode and offset; this says which file it was. */
static void prefix_error(relate_error *err, const char *path)
{
    if (!err)
        return;
    relate_error inner = *err;
    err->code = RELATE_OK;
    relate_error_set(err, inner.code, "%s: %s", path, inner.msg);
}

/* Appends a python-layout batch: any positive number of rows, as many labels as rows. */
static relate_status append_pickle(relate_split *sp, const char *path, const cifar_kind *k, relate_error *err)
{
    uint8_t *buf;
    size_t size;
    relate_status s;
    if (relate_file_size(path) < 0)
        return relate_error_set(err, RELATE_ERR_IO, "%s is missing: the %s python archive is incomplete; extract it "
                                "again (or run `relate download %s`)", path, k->title, k->download);
    if ((s = relate_file_read_all(path, (size_t)1 << 30, &buf, &size, err)))
        return s;
    relate_pickle pk;
    if ((s = relate_pickle_load(&pk, buf, size, k_numpy_globals, err))) {
        prefix_error(err, path);
        free(buf);
        return s;
    }
    relate_pk_ndarray a;
    const relate_pk_value *data = relate_pk_dict_get(pk.root, "data");
    const relate_pk_value *labels = relate_pk_dict_get(pk.root, k->label_key);
    if (!data || !labels || labels->kind != RELATE_PK_LIST) {
        s = relate_error_set(err, RELATE_ERR_FORMAT, "%s: not a %s batch: no 'data' array and '%s' list", path,
                             k->title, k->label_key);
        goto done;
    }
    if ((s = relate_pk_as_ndarray(data, &a, err))) {
        prefix_error(err, path);
        goto done;
    }
    if (a.kind != 'u' || a.itemsize != 1 || a.ndim != 2 || a.shape[1] != CIFAR_PIXELS || a.fortran_order ||
        a.shape[0] < 1) {
        s = relate_error_set(err, RELATE_ERR_FORMAT,
                             "%s: 'data' is a %c%d array of %d dims (%lld x %lld), not N x 3072 uint8 (N >= 1) as in "
                             "the %s archive; extract it again (or run `relate download %s`)",
                             path, a.kind, a.itemsize, a.ndim, (long long)a.shape[0], (long long)(a.ndim > 1 ? a.shape[1] : 0),
                             k->title, k->download);
        goto done;
    }
    int64_t n = a.shape[0], base = sp->count;
    if (labels->count != n) {
        s = relate_error_set(err, RELATE_ERR_FORMAT, "%s: %lld images but %lld labels", path, (long long)n,
                             (long long)labels->count);
        goto done;
    }
    if ((s = relate_split_resize(sp, base + n, 32, 32, err)))
        goto done;
    for (int64_t r = 0; r < n; r++) {
        const relate_pk_value *l = labels->items[r];
        if (l->kind != RELATE_PK_INT || l->i < 0 || l->i >= k->num_classes) {
            s = relate_error_set(err, RELATE_ERR_FORMAT, "%s: label %lld is %s%lld, not an int in 0..%d", path,
                                 (long long)r, l->kind == RELATE_PK_INT ? "" : "not an int: ",
                                 l->kind == RELATE_PK_INT ? (long long)l->i : 0LL, k->num_classes - 1);
            goto done;
        }
        sp->labels[base + r] = (int32_t)l->i;
        planes_to_hwc(a.data + (size_t)r * CIFAR_PIXELS, sp->pixels + (size_t)(base + r) * CIFAR_PIXELS);
    }
done:
    relate_pickle_free(&pk);
    free(buf);
    return s;
}

/* Class names from the archive when it has them (they must match the class count), else the
 * standard names. */
static relate_status names_from_text(relate_dataset_info *info, const char *path, int want, relate_error *err)
{
    char **names;
    int n;
    relate_status s = relate_read_names_file(path, &names, &n, err);
    if (s)
        return s;
    if (n != want) {
        relate_free_names(names, n);
        return relate_error_set(err, RELATE_ERR_FORMAT, "%s: %d class names, expected %d", path, n, want);
    }
    s = relate_info_set_classes(info, (const char *const *)names, n, err);
    relate_free_names(names, n);
    return s;
}

static relate_status names_from_pickle(relate_dataset_info *info, const char *path, const char *key, int want,
                                       relate_error *err)
{
    uint8_t *buf;
    size_t size;
    relate_status s = relate_file_read_all(path, 1 << 20, &buf, &size, err);
    if (s)
        return s;
    relate_pickle pk;
    if ((s = relate_pickle_load(&pk, buf, size, NULL, err))) {
        prefix_error(err, path);
        free(buf);
        return s;
    }
    const relate_pk_value *l = relate_pk_dict_get(pk.root, key);
    char **names = calloc((size_t)want, sizeof *names);
    if (!l || l->kind != RELATE_PK_LIST || l->count != want)
        s = relate_error_set(err, RELATE_ERR_FORMAT, "%s: no list '%s' of %d class names", path, key, want);
    for (int i = 0; s == RELATE_OK && i < want; i++) {
        const relate_pk_value *v = l->items[i];
        if ((v->kind != RELATE_PK_STR && v->kind != RELATE_PK_BYTES) || v->len == 0 || v->len > 200)
            s = relate_error_set(err, RELATE_ERR_FORMAT, "%s: class name %d is not a short string", path, i);
        else if (!names || !(names[i] = malloc(v->len + 1)))
            s = relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
        else {
            memcpy(names[i], v->s, v->len);
            names[i][v->len] = 0;
        }
    }
    if (s == RELATE_OK)
        s = relate_info_set_classes(info, (const char *const *)names, want, err);
    relate_free_names(names, want);
    relate_pickle_free(&pk);
    free(buf);
    return s;
}

relate_status relate_read_cifar(relate_dataset *ds, const char *name, const char *root, const relate_data_opts *o,
                                relate_error *err)
{
    (void)o; /* CIFAR files may always hold a subset (see readers.h) */
    bool ten = strcmp(name, "cifar10") == 0, coarse = strcmp(name, "supercifar100") == 0;
    cifar_kind k;
    if (ten)
        k = (cifar_kind){"CIFAR-10", "cifar10", 10, 3073, 0, "labels"};
    else
        k = (cifar_kind){"CIFAR-100", "cifar100", coarse ? 20 : 100, 3074, coarse ? 0 : 1,
                         coarse ? "coarse_labels" : "fine_labels"};
    const char *bin_dir = ten ? "cifar-10-batches-bin" : "cifar-100-binary";
    const char *py_dir = ten ? "cifar-10-batches-py" : "cifar-100-python";
    const char *bin_first = ten ? "data_batch_1.bin" : "train.bin";
    const char *py_first = ten ? "data_batch_1" : "train";
    char bin_probe[4096], py_probe[4096], path[4096];
    relate_status s;
    if ((s = relate_path_fmt(bin_probe, sizeof bin_probe, err, "%s/%s/%s", root, bin_dir, bin_first)) ||
        (s = relate_path_fmt(py_probe, sizeof py_probe, err, "%s/%s/%s", root, py_dir, py_first)))
        return s;
    bool binary = relate_file_size(bin_probe) >= 0;
    if (!binary && relate_file_size(py_probe) < 0)
        return relate_error_set(err, RELATE_ERR_IO,
                                "%s not found: looked for %s (binary archive) and %s (python archive). Run `relate "
                                "download %s`, or extract %s (https://www.cs.toronto.edu/~kriz/%s) into %s",
                                k.title, bin_probe, py_probe, k.download,
                                ten ? "cifar-10-binary.tar.gz" : "cifar-100-binary.tar.gz",
                                ten ? "cifar-10-binary.tar.gz" : "cifar-100-binary.tar.gz", root);
    const char *dir = binary ? bin_dir : py_dir;
    relate_split *train = &ds->splits[RELATE_SPLIT_TRAIN], *test = &ds->splits[RELATE_SPLIT_TEST];
    /* Train order is the reference's index order: batches 1..5 (CIFAR-10), one file (CIFAR-100). */
    static const char *const bin10[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                        "data_batch_4.bin", "data_batch_5.bin", NULL};
    static const char *const py10[] = {"data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                                       "data_batch_5", NULL};
    static const char *const bin100[] = {"train.bin", NULL}, *const py100[] = {"train", NULL};
    const char *const *files = ten ? (binary ? bin10 : py10) : (binary ? bin100 : py100);
    for (int f = 0; files[f]; f++) {
        if ((s = relate_path_fmt(path, sizeof path, err, "%s/%s/%s", root, dir, files[f])))
            return s;
        s = binary ? append_binary(train, path, &k, err) : append_pickle(train, path, &k, err);
        if (s)
            return s;
    }
    const char *test_file = binary ? (ten ? "test_batch.bin" : "test.bin") : (ten ? "test_batch" : "test");
    if ((s = relate_path_fmt(path, sizeof path, err, "%s/%s/%s", root, dir, test_file)))
        return s;
    s = binary ? append_binary(test, path, &k, err) : append_pickle(test, path, &k, err);
    if (s)
        return s;
    if (train->count != 50000 || test->count != 10000)
        snprintf(ds->info.note, sizeof ds->info.note,
                 "%s subset: %lld of 50000 training images and %lld of 10000 test images (the files in %.60s/%s "
                 "hold fewer records than the archive's)",
                 k.title, (long long)train->count, (long long)test->count, root, dir);

    const char *const *std_names = ten ? k_cifar10_names : coarse ? k_cifar100_coarse : k_cifar100_fine;
    if (binary) {
        const char *meta = ten ? "batches.meta.txt" : coarse ? "coarse_label_names.txt" : "fine_label_names.txt";
        if ((s = relate_path_fmt(path, sizeof path, err, "%s/%s/%s", root, dir, meta)))
            return s;
        if (relate_file_size(path) >= 0)
            return names_from_text(&ds->info, path, k.num_classes, err);
    } else {
        const char *key = ten ? "label_names" : coarse ? "coarse_label_names" : "fine_label_names";
        if ((s = relate_path_fmt(path, sizeof path, err, "%s/%s/%s", root, dir, ten ? "batches.meta" : "meta")))
            return s;
        if (relate_file_size(path) >= 0)
            return names_from_pickle(&ds->info, path, key, k.num_classes, err);
    }
    return relate_info_set_classes(&ds->info, std_names, k.num_classes, err);
}
