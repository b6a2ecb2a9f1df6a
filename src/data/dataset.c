/* dataset.c: relate_dataset_open and friends: dispatch by --dataset name, the per-dataset
 * constants of spec 4.2, label checks, and the small file helpers the readers share.
 * Not a reader of any format itself (read_cifar.c, read_stl10.c, read_idx.c, read_folder.c) and
 * not the transforms (transforms*.c). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/suggest.h"
#include "data/readers.h"

static const char *const k_dataset_names[] = {"cifar10", "cifar100", "supercifar100", "stl10", "tiny",
                                              "slim",    "fashionmnist", "mnist", NULL};

const char *const *relate_dataset_names(void) { return k_dataset_names; }

/* ------------------------------------------------------------------ helpers */
relate_status relate_path_fmt(char *out, size_t n, relate_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= n)
        return relate_error_set(err, RELATE_ERR_ARG, "path too long: %.200s...", out);
    return RELATE_OK;
}

int64_t relate_file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    return (int64_t)st.st_size;
}

bool relate_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

relate_status relate_file_read_all(const char *path, size_t max, uint8_t **buf, size_t *size, relate_error *err)
{
    *buf = NULL;
    *size = 0;
    int64_t n = relate_file_size(path);
    if (n < 0)
        return relate_error_set(err, RELATE_ERR_IO, "cannot open %s: not a readable file", path);
    if ((uint64_t)n > max)
        return relate_error_set(err, RELATE_ERR_FORMAT, "%s: %lld bytes, more than the %zu this file may have", path,
                                (long long)n, max);
    FILE *f = fopen(path, "rb");
    if (!f)
        return relate_error_set(err, RELATE_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    uint8_t *b = malloc(n ? (size_t)n : 1);
    if (!b) {
        fclose(f);
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory reading %s (%lld bytes)", path, (long long)n);
    }
    size_t got = fread(b, 1, (size_t)n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != (size_t)n) {
        free(b);
        return relate_error_set(err, RELATE_ERR_IO, "cannot read %s (%zu of %lld bytes)", path, got, (long long)n);
    }
    *buf = b;
    *size = (size_t)n;
    return RELATE_OK;
}

void relate_free_names(char **names, int n)
{
    if (!names)
        return;
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

relate_status relate_read_names_file(const char *path, char ***names, int *n, relate_error *err)
{
    *names = NULL;
    *n = 0;
    uint8_t *buf;
    size_t size;
    relate_status s = relate_file_read_all(path, 1 << 20, &buf, &size, err);
    if (s)
        return s;
    char **out = NULL;
    int count = 0, cap = 0;
    size_t pos = 0;
    while (pos < size) {
        size_t end = pos;
        while (end < size && buf[end] != '\n')
            end++;
        size_t len = end - pos;
        while (len && (buf[pos + len - 1] == '\r' || buf[pos + len - 1] == ' ' || buf[pos + len - 1] == '\t'))
            len--;
        if (len) {
            if (count == cap) {
                cap = cap ? cap * 2 : 32;
                char **grown = realloc(out, (size_t)cap * sizeof *grown);
                if (!grown)
                    goto oom;
                out = grown;
            }
            if (!(out[count] = malloc(len + 1)))
                goto oom;
            memcpy(out[count], buf + pos, len);
            out[count++][len] = 0;
        }
        pos = end + 1;
    }
    free(buf);
    *names = out;
    *n = count;
    return RELATE_OK;
oom:
    free(buf);
    relate_free_names(out, count);
    return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory reading %s", path);
}

relate_status relate_info_set_classes(relate_dataset_info *info, const char *const *names, int n, relate_error *err)
{
    relate_free_names(info->class_names, info->num_classes);
    info->class_names = NULL;
    info->num_classes = 0;
    char **out = calloc((size_t)(n > 0 ? n : 1), sizeof *out);
    if (!out)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        if (!(out[i] = strdup(names[i]))) {
            relate_free_names(out, i);
            return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
        }
    info->class_names = out;
    info->num_classes = n;
    return RELATE_OK;
}

relate_status relate_split_resize(relate_split *s, int64_t count, int w, int h, relate_error *err)
{
    size_t per = (size_t)w * (size_t)h * 3;
    if (count < 0 || w <= 0 || h <= 0 || (uint64_t)count > SIZE_MAX / per / 2)
        return relate_error_set(err, RELATE_ERR_FORMAT, "bad split size: %lld images of %d x %d", (long long)count, w, h);
    uint8_t *px = realloc(s->pixels, count ? (size_t)count * per : 1);
    if (!px)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory for %lld images of %d x %d (%.1f GB)",
                                (long long)count, w, h, (double)count * (double)per / 1e9);
    s->pixels = px;
    int32_t *lb = realloc(s->labels, count ? (size_t)count * sizeof *lb : sizeof *lb);
    if (!lb)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory for %lld labels", (long long)count);
    s->labels = lb;
    s->count = count;
    s->width = w;
    s->height = h;
    s->present = true;
    return RELATE_OK;
}

/* ------------------------------------------------------------------ constants (spec 4.2) */
typedef struct ds_consts {
    const char *name;
    int side, padding;
    float mean[3], std[3], cutout;
} ds_consts;

/* Fashion-MNIST: computed once from train-images-idx3-ubyte.gz of Debian's dataset-fashion-mnist
 * (MD5 cf8536b0aa1a6ac5fa3f23001093305c, the upstream file) as numpy's x.mean() and x.std()
 * (population std, ddof = 0) of all 60,000 x 28 x 28 pixels divided by 255: 0.28604060,
 * 0.35302424; grey replicated to RGB, so the three channels are equal. tests/data checks them
 * against the installed file. MNIST: no copy was at hand; 0.1307 / 0.3081 are the values of the
 * same computation that PyTorch's MNIST example uses (0.13066048, 0.30810781). */
static const ds_consts k_consts[] = {
    {"cifar10", 32, 4, {0.491f, 0.482f, 0.447f}, {0.247f, 0.243f, 0.262f}, 0.25f},
    {"cifar100", 32, 4, {0.507f, 0.487f, 0.441f}, {0.267f, 0.256f, 0.276f}, 0.0625f},
    {"supercifar100", 32, 4, {0.507f, 0.487f, 0.441f}, {0.267f, 0.256f, 0.276f}, 0.0625f},
    {"stl10", 96, 12, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}, 0.111f},
    {"tiny", 64, 8, {0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}, 0.0f},
    {"slim", 64, 8, {0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}, 0.0f},
    {"fashionmnist", 28, 4, {0.2860f, 0.2860f, 0.2860f}, {0.3530f, 0.3530f, 0.3530f}, 0.0f},
    {"mnist", 28, 4, {0.1307f, 0.1307f, 0.1307f}, {0.3081f, 0.3081f, 0.3081f}, 0.0f},
};

/* Folder datasets have no published constants: mean and (population) std per channel of the
 * train split, from exact integer sums, so they do not depend on thread count. */
static void folder_stats(const relate_split *s, float mean[3], float std[3])
{
    uint64_t s1[3] = {0, 0, 0}, s2[3] = {0, 0, 0};
    size_t n = (size_t)s->count * (size_t)s->width * (size_t)s->height;
    for (size_t p = 0; p < n; p++)
        for (int c = 0; c < 3; c++) {
            uint64_t v = s->pixels[3 * p + (size_t)c];
            s1[c] += v;
            s2[c] += v * v;
        }
    for (int c = 0; c < 3; c++) {
        double m = n ? (double)s1[c] / (double)n / 255.0 : 0.5;
        double var = n ? (double)s2[c] / (double)n / (255.0 * 255.0) - m * m : 0.0625;
        mean[c] = (float)m;
        std[c] = (float)(var > 1e-12 ? sqrt(var) : 1.0);
    }
}

/* ------------------------------------------------------------------ open / close */
static relate_status check_labels(const relate_dataset *ds, relate_error *err)
{
    static const char *const split_names[] = {"train", "test", "unlabeled"};
    for (int k = 0; k < RELATE_SPLIT_COUNT; k++) {
        const relate_split *s = &ds->splits[k];
        if (!s->present)
            continue;
        for (int64_t i = 0; i < s->count; i++) {
            int32_t l = s->labels[i];
            bool ok = k == RELATE_SPLIT_UNLABELED ? l == -1 : (l >= 0 && l < ds->info.num_classes);
            if (!ok)
                return relate_error_set(err, RELATE_ERR_FORMAT,
                                        "%s: label %d of image %lld of the %s split is outside 0..%d", ds->info.name,
                                        (int)l, (long long)i, split_names[k], ds->info.num_classes - 1);
        }
    }
    return RELATE_OK;
}

static relate_status parse_folder_spec(const char *spec, char *path, size_t n, int *side, relate_error *err)
{
    const char *p = spec + strlen("folder:");
    const char *at = strrchr(p, '@');
    *side = 64;
    size_t len = strlen(p);
    if (at && at[1]) {
        const char *d = at + 1;
        while (*d >= '0' && *d <= '9')
            d++;
        if (!*d) {
            long v = strtol(at + 1, NULL, 10);
            if (v < 4 || v > 1024)
                return relate_error_set(err, RELATE_ERR_ARG, "dataset '%s': image side @%ld is outside 4..1024", spec, v);
            *side = (int)v;
            len = (size_t)(at - p);
        }
    }
    if (!len)
        return relate_error_set(err, RELATE_ERR_ARG, "dataset 'folder:' needs a path: folder:PATH[@S]");
    if (len >= n)
        return relate_error_set(err, RELATE_ERR_ARG, "dataset path too long: %.200s...", p);
    memcpy(path, p, len);
    path[len] = 0;
    return RELATE_OK;
}

relate_status relate_dataset_open_opts(relate_dataset *ds, const char *name, const char *data_root,
                                       const relate_data_opts *opts, relate_error *err)
{
    memset(ds, 0, sizeof *ds);
    relate_data_opts defaults = {0};
    if (!opts)
        opts = &defaults;
    if (!name)
        name = "";
    if (!data_root || !*data_root)
        data_root = ".";
    relate_dataset_info *info = &ds->info;
    snprintf(info->name, sizeof info->name, "%s", name);
    info->unsupervised_split = strcmp(name, "stl10") == 0 ? RELATE_SPLIT_UNLABELED : RELATE_SPLIT_TRAIN;
    relate_status s;
    if (strncmp(name, "folder:", 7) == 0) {
        char path[4096];
        int side;
        if ((s = parse_folder_spec(name, path, sizeof path, &side, err)))
            return s;
        info->image_size = side;
        info->crop_padding = side / 8; /* the rule of every dataset in spec 4.2: S / 8 */
        info->cutout = 0.0f;
        s = relate_read_folder(ds, path, side, &opts->folder, err);
        /* Normalised by the images stage 1 trains on, which every stage opens the same way. */
        if (s == RELATE_OK)
            folder_stats(&ds->splits[info->unsupervised_split], info->mean, info->std);
    } else if (opts->folder.val_fraction != 0 || opts->folder.strict_images) { /* skip_splits: any dataset */
        return relate_error_set(err, RELATE_ERR_ARG, "--%s applies to folder:PATH datasets only, not %s",
                                opts->folder.val_fraction != 0 ? "val_fraction" : "strict_images", name);
    } else {
        const ds_consts *c = NULL;
        for (size_t k = 0; k < sizeof k_consts / sizeof k_consts[0]; k++)
            if (strcmp(k_consts[k].name, name) == 0)
                c = &k_consts[k];
        if (!c) {
            char list[256] = "";
            for (const char *const *n = k_dataset_names; *n; n++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s, ", *n);
            char hint[64];
            return relate_error_set(err, RELATE_ERR_ARG, "unknown dataset '%s'%s; valid names: %sor folder:PATH[@S]",
                                    name, relate_suggest_text(hint, sizeof hint, name, k_dataset_names), list);
        }
        info->image_size = c->side;
        info->crop_padding = c->padding;
        info->cutout = c->cutout;
        memcpy(info->mean, c->mean, sizeof info->mean);
        memcpy(info->std, c->std, sizeof info->std);
        if (strstr(name, "cifar"))
            s = relate_read_cifar(ds, name, data_root, opts, err);
        else if (strcmp(name, "stl10") == 0)
            s = relate_read_stl10(ds, data_root, opts, err);
        else if (strcmp(name, "tiny") == 0)
            s = relate_read_tiny(ds, data_root, err);
        else if (strcmp(name, "slim") == 0)
            s = relate_read_slim(ds, data_root, err);
        else
            s = relate_read_idx_dataset(ds, name, data_root, opts, err);
    }
    if (s == RELATE_OK)
        s = check_labels(ds, err);
    /* After the checks and the folder statistics, which see every split the files hold. */
    for (int k = 0; s == RELATE_OK && k < RELATE_SPLIT_COUNT; k++)
        if (opts->folder.skip_splits & (1u << k))
            relate_dataset_drop_split(ds, (relate_split_kind)k);
    if (s != RELATE_OK)
        relate_dataset_close(ds);
    return s;
}

relate_status relate_dataset_open(relate_dataset *ds, const char *name, const char *data_root, relate_error *err)
{
    return relate_dataset_open_opts(ds, name, data_root, NULL, err);
}

relate_status relate_dataset_open_with(relate_dataset *ds, const char *name, const char *data_root,
                                       const relate_dataset_options *o, relate_error *err)
{
    relate_data_opts opts = {0};
    if (o)
        opts.folder = *o;
    return relate_dataset_open_opts(ds, name, data_root, &opts, err);
}

static bool labelled_split(const relate_dataset *ds, relate_split_kind k)
{
    const relate_split *s = relate_dataset_split(ds, k);
    return s && s->count > 0 && s->labels && ds->info.num_classes > 0;
}

relate_status relate_dataset_need_labels(const relate_dataset *ds, bool train, bool test, const char *what,
                                         relate_error *err)
{
    const bool miss_train = train && !labelled_split(ds, RELATE_SPLIT_TRAIN);
    const bool miss_test = test && !labelled_split(ds, RELATE_SPLIT_TEST);
    if (!miss_train && !miss_test)
        return RELATE_OK;
    const char *which = miss_train && miss_test ? "labelled training and test splits"
                        : miss_train            ? "a labelled training split"
                                                : "a labelled test split";
    if (!*ds->info.folder)
        return relate_error_set(err, RELATE_ERR_ARG, "%s needs %s; dataset %s has none", what, which, ds->info.name);
    const char *p = ds->info.folder;
    if (miss_train)
        return relate_error_set(err, RELATE_ERR_ARG,
                                "%s needs %s, and %s has no class sub-folders: lay the images out as "
                                "%s/train/CLASS/... and %s/test/CLASS/... (docs/usage.md, \"Image folders\")",
                                what, which, p, p, p);
    return relate_error_set(err, RELATE_ERR_ARG,
                            "%s needs a labelled test split: add %s/test/CLASS/... (the training classes then go in "
                            "%s/train/CLASS/...), or "
                            "carve one from the training images with --val_fraction=0.1 (the same flag in every "
                            "stage; docs/usage.md, \"Image folders\")",
                            what, p, p);
}

void relate_dataset_report(const relate_dataset_info *info, FILE *out, FILE *warn)
{
    if (out && *info->note)
        fprintf(out, "[INFO] %s\n", info->note);
    if (warn && *info->warning)
        fprintf(warn, "[WARN] %s\n", info->warning);
}

void relate_dataset_drop_split(relate_dataset *ds, relate_split_kind kind)
{
    if (!ds || kind < 0 || kind >= RELATE_SPLIT_COUNT)
        return;
    free(ds->splits[kind].pixels);
    free(ds->splits[kind].labels);
    memset(&ds->splits[kind], 0, sizeof ds->splits[kind]);
}

void relate_dataset_close(relate_dataset *ds)
{
    if (!ds)
        return;
    for (int k = 0; k < RELATE_SPLIT_COUNT; k++) {
        free(ds->splits[k].pixels);
        free(ds->splits[k].labels);
    }
    relate_free_names(ds->info.class_names, ds->info.num_classes);
    memset(ds, 0, sizeof *ds);
}

const relate_split *relate_dataset_split(const relate_dataset *ds, relate_split_kind kind)
{
    if (!ds || kind < 0 || kind >= RELATE_SPLIT_COUNT || !ds->splits[kind].present)
        return NULL;
    return &ds->splits[kind];
}

relate_image relate_split_image(const relate_split *s, int64_t i)
{
    if (!s || i < 0 || i >= s->count) {
        /* An index past the split is a bug in the caller (a sampler or a loader). */
        fprintf(stderr, "relate: %s:%d: image %lld of a split of %lld\n", __FILE__, __LINE__, (long long)i,
                s ? (long long)s->count : -1LL);
        abort();
    }
    relate_image img = {s->width, s->height, s->pixels + (size_t)i * (size_t)s->width * (size_t)s->height * 3};
    return img;
}

relate_split relate_split_range(const relate_split *s, int64_t first, int64_t count)
{
    if (!s || first < 0 || count < 0 || first > s->count - count) {
        fprintf(stderr, "relate: %s:%d: images [%lld, +%lld) of a split of %lld\n", __FILE__, __LINE__,
                (long long)first, (long long)count, s ? (long long)s->count : -1LL);
        abort();
    }
    relate_split part = *s;
    part.count = count;
    part.pixels = s->pixels + (size_t)first * (size_t)s->width * (size_t)s->height * 3;
    part.labels = s->labels ? s->labels + first : NULL;
    return part;
}
