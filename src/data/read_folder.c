/* read_folder.c: image-folder datasets with torchvision ImageFolder's semantics (spec 4.1):
 * tiny-ImageNet-200 (train/ and val/, either with val_annotations.txt or already sorted into
 * val/<wnid>/), SlimageNet64, and folder:PATH[@S]; files are decoded in parallel with OpenMP.
 * Not a streaming loader: every image is decoded once, at open, into the split's memory. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/readers.h"
#include "data/transforms_internal.h"
#include "io/image_decode.h"

#define WALK_MAX_DEPTH 32

/* ------------------------------------------------------------------ string lists */
typedef struct str_list {
    char **s;
    int32_t *label;
    int64_t n, cap;
} str_list;

static void list_free(str_list *l)
{
    for (int64_t i = 0; i < l->n; i++)
        free(l->s[i]);
    free(l->s);
    free(l->label);
    memset(l, 0, sizeof *l);
}

static relate_status list_add(str_list *l, const char *s, int32_t label, relate_error *err)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? l->cap * 2 : 64;
        char **ns = realloc(l->s, (size_t)cap * sizeof *ns);
        if (ns)
            l->s = ns;
        int32_t *nl = realloc(l->label, (size_t)cap * sizeof *nl);
        if (nl)
            l->label = nl;
        if (!ns || !nl)
            return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory listing files");
        l->cap = cap;
    }
    if (!(l->s[l->n] = strdup(s)))
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory listing files");
    l->label[l->n++] = label;
    return RELATE_OK;
}

/* Python's sorted() on str compares code points, which strcmp on UTF-8 reproduces. */
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Entries of dir (not . and ..), sorted; want_dirs selects directories (symlinks followed, as
 * os.scandir's is_dir() and os.walk(followlinks=True) do) or everything else. */
static relate_status list_dir(const char *dir, bool want_dirs, str_list *out, relate_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return relate_error_set(err, RELATE_ERR_IO, "cannot list the folder %s", dir);
    relate_status s = RELATE_OK;
    struct dirent *e;
    char path[4096];
    while (s == RELATE_OK && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if ((s = relate_path_fmt(path, sizeof path, err, "%s/%s", dir, e->d_name)))
            break;
        if (relate_is_dir(path) == want_dirs)
            s = list_add(out, e->d_name, 0, err);
    }
    closedir(d);
    if (s == RELATE_OK && out->n > 1)
        qsort(out->s, (size_t)out->n, sizeof *out->s, cmp_str);
    return s;
}

static bool has_image_extension(const char *name)
{
    static const char *const exts[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", NULL};
    size_t n = strlen(name);
    for (int k = 0; exts[k]; k++) {
        size_t m = strlen(exts[k]);
        if (n >= m && strcasecmp(name + n - m, exts[k]) == 0)
            return true;
    }
    return false;
}

static relate_status collect_dirs(const char *dir, int depth, str_list *dirs, relate_error *err)
{
    if (depth > WALK_MAX_DEPTH)
        return relate_error_set(err, RELATE_ERR_FORMAT, "%s: folders nested deeper than %d (a symlink loop?)", dir,
                                WALK_MAX_DEPTH);
    relate_status s = list_add(dirs, dir, 0, err);
    str_list subs = {0};
    if (s == RELATE_OK)
        s = list_dir(dir, true, &subs, err);
    char path[4096];
    for (int64_t i = 0; s == RELATE_OK && i < subs.n; i++)
        if ((s = relate_path_fmt(path, sizeof path, err, "%s/%s", dir, subs.s[i])) == RELATE_OK)
            s = collect_dirs(path, depth + 1, dirs, err);
    list_free(&subs);
    return s;
}

/* make_dataset of torchvision: for root, _, fnames in sorted(os.walk(class_dir)): for fname
 * in sorted(fnames) -- folders ordered by their whole path, not depth-first. */
static relate_status collect_class_files(const char *class_dir, int32_t label, str_list *files, relate_error *err)
{
    str_list dirs = {0};
    relate_status s = collect_dirs(class_dir, 0, &dirs, err);
    if (s == RELATE_OK)
        qsort(dirs.s, (size_t)dirs.n, sizeof *dirs.s, cmp_str);
    char path[4096];
    for (int64_t i = 0; s == RELATE_OK && i < dirs.n; i++) {
        str_list names = {0};
        s = list_dir(dirs.s[i], false, &names, err);
        for (int64_t k = 0; s == RELATE_OK && k < names.n; k++)
            if (has_image_extension(names.s[k]) &&
                (s = relate_path_fmt(path, sizeof path, err, "%s/%s", dirs.s[i], names.s[k])) == RELATE_OK)
                s = list_add(files, path, label, err);
        list_free(&names);
    }
    list_free(&dirs);
    return s;
}

/* ------------------------------------------------------------------ decoding */
/* Files that did not decode, when they are skipped rather than fatal (folder:PATH without
 * --strict_images): how many, and the first in list order with its reason. */
typedef struct skip_report {
    int64_t count, total;
    relate_error first;
} skip_report;

/* Decodes files into split, side x side each. Images of another size are resized with PIL's
 * bilinear filter when resize is set, refused otherwise (tiny and slim are 64 x 64 by
 * definition; the reference would fail to batch anything else). With skip NULL, the first
 * failing file in list order is the error, whatever the thread timing. With skip set, files
 * that do not decode (corrupt, truncated, not an image) are dropped from the split, which keeps
 * the others' order, and counted in skip; running out of memory is still an error, and so is a
 * split left with no image. */
static relate_status decode_files(const str_list *files, relate_split *sp, int side, bool resize, const char *title,
                                  skip_report *skip, relate_error *err)
{
    relate_status s = relate_split_resize(sp, files->n, side, side, err);
    if (s)
        return s;
    uint8_t *bad = skip ? calloc((size_t)files->n + 1, 1) : NULL;
    if (skip && !bad)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory decoding %s", title);
    int64_t first_bad = INT64_MAX, first_skip = INT64_MAX;
    relate_error first = {0}, first_skipped = {0};
    const size_t per = (size_t)side * (size_t)side * 3;
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = 0; i < files->n; i++) {
        int64_t stop;
#pragma omp atomic read
        stop = first_bad;
        if (i > stop)
            continue;
        relate_error e = {0};
        relate_image img;
        sp->labels[i] = files->label[i];
        if (relate_image_decode_file(files->s[i], &img, &e) == RELATE_OK) {
            relate_image dst = {side, side, sp->pixels + (size_t)i * per};
            if (img.width == side && img.height == side) {
                memcpy(dst.pixels, img.pixels, per);
            } else if (resize) {
                uint8_t *scratch = malloc(relate_resize_scratch_bytes(img.width, img.height, side, side) + 1);
                if (scratch)
                    relate_resize_bilinear(&img, &dst, scratch);
                else
                    relate_error_set(&e, RELATE_ERR_NOMEM, "out of memory resizing %s", files->s[i]);
                free(scratch);
            } else {
                relate_error_set(&e, RELATE_ERR_FORMAT, "%s: %d x %d pixels, but every %s image is %d x %d",
                                 files->s[i], img.width, img.height, title, side, side);
            }
            relate_image_free(&img);
        }
        if (e.code != RELATE_OK && skip && e.code != RELATE_ERR_NOMEM) {
            bad[i] = 1;
#pragma omp critical(relate_read_folder_error)
            if (i < first_skip) {
                first_skipped = e;
                first_skip = i;
            }
        } else if (e.code != RELATE_OK) {
#pragma omp critical(relate_read_folder_error)
            if (i < first_bad) {
                first = e;
#pragma omp atomic write
                first_bad = i;
            }
        }
    }
    if (first_bad != INT64_MAX) {
        free(bad);
        if (err && err->code == RELATE_OK)
            *err = first;
        return first.code;
    }
    if (!skip)
        return RELATE_OK;
    int64_t kept = 0;
    for (int64_t i = 0; i < files->n; i++) {
        if (bad[i])
            continue;
        if (kept != i) {
            memmove(sp->pixels + (size_t)kept * per, sp->pixels + (size_t)i * per, per);
            sp->labels[kept] = sp->labels[i];
        }
        kept++;
    }
    free(bad);
    if (kept < files->n && skip->count == 0)
        skip->first = first_skipped;
    skip->count += files->n - kept;
    skip->total += files->n;
    if (kept == 0) {
        if (err && err->code == RELATE_OK)
            *err = first_skipped;
        return first_skipped.code;
    }
    return relate_split_resize(sp, kept, side, side, err);
}

/* ------------------------------------------------------------------ image folders */
static int find_name(char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

/* Reads root as an ImageFolder into split. With train_classes NULL the class list is root's own
 * sorted sub-folders (and becomes ds->info's); otherwise each sub-folder is labelled by its index
 * in train_classes, so that train and test agree even when test lacks a class. */
static relate_status read_image_folder(relate_dataset *ds, relate_split *sp, const char *root, bool is_train, int side,
                                       bool resize, const char *title, skip_report *skip, relate_error *err)
{
    str_list classes = {0}, files = {0};
    relate_status s = list_dir(root, true, &classes, err);
    if (s == RELATE_OK && classes.n == 0)
        s = relate_error_set(err, RELATE_ERR_FORMAT, "%s has no class sub-folders (expected %s/<class>/<images>)", root,
                             root);
    if (s == RELATE_OK && is_train)
        s = relate_info_set_classes(&ds->info, (const char *const *)classes.s, (int)classes.n, err);
    char path[4096];
    for (int64_t c = 0; s == RELATE_OK && c < classes.n; c++) {
        int label = (int)c;
        if (!is_train && (label = find_name(ds->info.class_names, ds->info.num_classes, classes.s[c])) < 0) {
            s = relate_error_set(err, RELATE_ERR_FORMAT, "%s/%s: a class that the train split does not have", root,
                                 classes.s[c]);
            break;
        }
        int64_t before = files.n;
        if ((s = relate_path_fmt(path, sizeof path, err, "%s/%s", root, classes.s[c])) == RELATE_OK)
            s = collect_class_files(path, label, &files, err);
        if (s == RELATE_OK && files.n == before)
            s = relate_error_set(err, RELATE_ERR_FORMAT,
                                 "%s has no image files (.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp)", path);
    }
    if (s == RELATE_OK)
        s = decode_files(&files, sp, side, resize, title, skip, err);
    list_free(&classes);
    list_free(&files);
    return s;
}

/* ------------------------------------------------------------------ tiny-ImageNet-200 */
typedef struct val_entry {
    int32_t label;
    char *file;
} val_entry;

static int cmp_val(const void *a, const void *b)
{
    const val_entry *x = a, *y = b;
    return x->label != y->label ? (x->label < y->label ? -1 : 1) : strcmp(x->file, y->file);
}

/* val/images/<file> labelled by val/val_annotations.txt, in the order ImageFolder would give
 * once the files sit in val/<wnid>/: by class, then by file name. */
static relate_status read_tiny_val_annotations(relate_dataset *ds, const char *val_dir, relate_error *err)
{
    char path[4096];
    relate_status s = relate_path_fmt(path, sizeof path, err, "%s/val_annotations.txt", val_dir);
    uint8_t *buf = NULL;
    size_t size = 0;
    if (s == RELATE_OK)
        s = relate_file_read_all(path, 64 << 20, &buf, &size, err);
    if (s)
        return s;
    val_entry *ents = NULL;
    int64_t n = 0, cap = 0, line = 0;
    for (size_t pos = 0; s == RELATE_OK && pos < size; line++) {
        size_t end = pos;
        while (end < size && buf[end] != '\n')
            end++;
        char text[1024];
        size_t len = end - pos < sizeof text - 1 ? end - pos : sizeof text - 1;
        memcpy(text, buf + pos, len);
        text[len] = 0;
        pos = end + 1;
        if (len && text[len - 1] == '\r')
            text[--len] = 0;
        if (!len)
            continue;
        char *tab1 = strchr(text, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        if (tab2)
            *tab2 = 0;
        if (!tab1 || tab1 == text || !tab1[1]) {
            s = relate_error_set(err, RELATE_ERR_FORMAT, "%s line %lld: expected <file>\\t<wnid>\\t<box>", path,
                                 (long long)line + 1);
            break;
        }
        *tab1 = 0;
        if (strchr(text, '/') || strcmp(text, "..") == 0) {
            s = relate_error_set(err, RELATE_ERR_FORMAT, "%s line %lld: '%s' is not a plain file name", path,
                                 (long long)line + 1, text);
            break;
        }
        int label = find_name(ds->info.class_names, ds->info.num_classes, tab1 + 1);
        if (label < 0) {
            s = relate_error_set(err, RELATE_ERR_FORMAT, "%s line %lld: class %s is not a folder of train/", path,
                                 (long long)line + 1, tab1 + 1);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            val_entry *g = realloc(ents, (size_t)cap * sizeof *g);
            if (!g) {
                s = relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
                break;
            }
            ents = g;
        }
        ents[n].label = label;
        if (!(ents[n].file = strdup(text))) {
            s = relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
            break;
        }
        n++;
    }
    free(buf);
    if (s == RELATE_OK && n == 0)
        s = relate_error_set(err, RELATE_ERR_FORMAT, "%s lists no images", path);
    if (s == RELATE_OK && n > 1)
        qsort(ents, (size_t)n, sizeof *ents, cmp_val);
    str_list files = {0};
    for (int64_t i = 0; s == RELATE_OK && i < n; i++)
        if ((s = relate_path_fmt(path, sizeof path, err, "%s/images/%s", val_dir, ents[i].file)) == RELATE_OK)
            s = list_add(&files, path, ents[i].label, err);
    for (int64_t i = 0; i < n; i++)
        free(ents[i].file);
    free(ents);
    if (s == RELATE_OK)
        s = decode_files(&files, &ds->splits[RELATE_SPLIT_TEST], 64, false, "tiny-ImageNet-200", NULL, err);
    list_free(&files);
    return s;
}

static bool dir_has_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    struct dirent *e;
    bool any = false;
    while (!any && (e = readdir(d)))
        any = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return any;
}

relate_status relate_read_tiny(relate_dataset *ds, const char *root, relate_error *err)
{
    char train[4096], val[4096], probe[4096];
    relate_status s;
    if ((s = relate_path_fmt(train, sizeof train, err, "%s/tiny-imagenet-200/train", root)) ||
        (s = relate_path_fmt(val, sizeof val, err, "%s/tiny-imagenet-200/val", root)))
        return s;
    if (!relate_is_dir(train) || !relate_is_dir(val))
        return relate_error_set(err, RELATE_ERR_IO,
                                "tiny-ImageNet-200 not found: %s is missing. Run `relate download tiny`, or unzip "
                                "tiny-imagenet-200.zip (http://cs231n.stanford.edu/tiny-imagenet-200.zip) into %s; "
                                "val/ may stay as shipped",
                                relate_is_dir(train) ? val : train, root);
    if ((s = read_image_folder(ds, &ds->splits[RELATE_SPLIT_TRAIN], train, true, 64, false, "tiny-ImageNet-200", NULL, err)))
        return s;
    /* As shipped, val/ holds images/ and val_annotations.txt; the authors' helper script moves
     * the files into val/<wnid>/, which is then an ordinary image folder. */
    if ((s = relate_path_fmt(probe, sizeof probe, err, "%s/images", val)))
        return s;
    bool shipped = dir_has_entries(probe);
    if ((s = relate_path_fmt(probe, sizeof probe, err, "%s/val_annotations.txt", val)))
        return s;
    if (shipped && relate_file_size(probe) >= 0)
        return read_tiny_val_annotations(ds, val, err);
    return read_image_folder(ds, &ds->splits[RELATE_SPLIT_TEST], val, false, 64, false, "tiny-ImageNet-200", NULL, err);
}

relate_status relate_read_slim(relate_dataset *ds, const char *root, relate_error *err)
{
    char train[4096], test[4096];
    relate_status s;
    if ((s = relate_path_fmt(train, sizeof train, err, "%s/SlimageNet64/train", root)) ||
        (s = relate_path_fmt(test, sizeof test, err, "%s/SlimageNet64/test", root)))
        return s;
    if (!relate_is_dir(train) || !relate_is_dir(test))
        return relate_error_set(err, RELATE_ERR_IO,
                                "SlimageNet64 not found: %s is missing. Download it from Zenodo record 3672132 "
                                "(https://zenodo.org/record/3672132) and lay it out as %s/SlimageNet64/train/<class>/ "
                                "and %s/SlimageNet64/test/<class>/ image folders",
                                relate_is_dir(train) ? test : train, root, root);
    if ((s = read_image_folder(ds, &ds->splits[RELATE_SPLIT_TRAIN], train, true, 64, false, "SlimageNet64", NULL, err)))
        return s;
    return read_image_folder(ds, &ds->splits[RELATE_SPLIT_TEST], test, false, 64, false, "SlimageNet64", NULL, err);
}

/* --val_fraction: moves round(f * n) of each class's training images (at least one where the
 * class has two or more, never all) into the test split. The choice is a Fisher-Yates shuffle
 * under a fixed seed, per class, so it depends only on the files: every stage, and every
 * --seed, sees the same split. Both splits keep the files' order. */
static relate_status carve_validation(relate_dataset *ds, double fraction, relate_error *err)
{
    relate_split *tr = &ds->splits[RELATE_SPLIT_TRAIN], *te = &ds->splits[RELATE_SPLIT_TEST];
    const int64_t n = tr->count;
    const size_t per = (size_t)tr->width * (size_t)tr->height * 3;
    uint8_t *to_val = calloc((size_t)n + 1, 1);
    int64_t *members = malloc(((size_t)n + 1) * sizeof *members);
    relate_status s = RELATE_OK;
    if (!to_val || !members)
        s = relate_error_set(err, RELATE_ERR_NOMEM, "out of memory carving the validation split");
    int64_t nval = 0;
    for (int c = 0; s == RELATE_OK && c < ds->info.num_classes; c++) {
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++)
            if (tr->labels[i] == c)
                members[m++] = i;
        int64_t take = (int64_t)(fraction * (double)m + 0.5);
        if (take < 1 && m >= 2)
            take = 1;
        if (take > m - 1)
            take = m - 1 > 0 ? m - 1 : 0;
        relate_rng r;
        relate_rng_init(&r, 0x76616c69ULL /* "vali" */, (uint32_t)c, 0, RELATE_PURPOSE_SHUFFLE);
        for (int64_t k = 0; k < take; k++) { /* the first `take` of a shuffle: a uniform subset */
            int64_t j = k + (int64_t)relate_rng_below(&r, (uint32_t)(m - k));
            int64_t t = members[k];
            members[k] = members[j];
            members[j] = t;
            to_val[members[k]] = 1;
        }
        nval += take;
    }
    if (s == RELATE_OK && nval == 0)
        s = relate_error_set(err, RELATE_ERR_ARG,
                             "--val_fraction=%g leaves no validation image: every class has a single image", fraction);
    if (s == RELATE_OK)
        s = relate_split_resize(te, nval, tr->width, tr->height, err);
    if (s == RELATE_OK) {
        int64_t kept = 0, v = 0;
        for (int64_t i = 0; i < n; i++) {
            const uint8_t *src = tr->pixels + (size_t)i * per;
            if (to_val[i]) {
                memcpy(te->pixels + (size_t)v * per, src, per);
                te->labels[v++] = tr->labels[i];
            } else {
                if (kept != i)
                    memmove(tr->pixels + (size_t)kept * per, src, per);
                tr->labels[kept++] = tr->labels[i];
            }
        }
        s = relate_split_resize(tr, kept, tr->width, tr->height, err);
        if (s == RELATE_OK)
            snprintf(ds->info.note + strlen(ds->info.note), sizeof ds->info.note - strlen(ds->info.note),
                     "%sValidation split: %lld of %lld labelled images (--val_fraction=%g of each class) are the "
                     "test split; the other %lld train",
                     *ds->info.note ? "; " : "", (long long)nval, (long long)n, fraction, (long long)kept);
    }
    free(to_val);
    free(members);
    return s;
}

/* Image files directly in dir (no sub-folders), as an unlabelled list. */
static relate_status collect_flat_files(const char *dir, str_list *files, relate_error *err)
{
    str_list names = {0};
    relate_status s = list_dir(dir, false, &names, err);
    char path[4096];
    for (int64_t k = 0; s == RELATE_OK && k < names.n; k++)
        if (has_image_extension(names.s[k]) &&
            (s = relate_path_fmt(path, sizeof path, err, "%s/%s", dir, names.s[k])) == RELATE_OK)
            s = list_add(files, path, -1, err);
    list_free(&names);
    return s;
}

/* The images of an unlabelled folder (files directly in dir, or every image under dir when
 * walk is set) become the unlabeled split, which stage 1 trains on. */
static relate_status read_unlabelled(relate_dataset *ds, const char *dir, bool walk, int side, skip_report *skip,
                                     relate_error *err)
{
    str_list files = {0};
    relate_status s = walk ? collect_class_files(dir, -1, &files, err) : collect_flat_files(dir, &files, err);
    if (s == RELATE_OK && files.n == 0)
        s = relate_error_set(err, RELATE_ERR_FORMAT,
                             "%s has no image files (.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp)", dir);
    if (s == RELATE_OK)
        s = decode_files(&files, &ds->splits[RELATE_SPLIT_UNLABELED], side, true, "folder", skip, err);
    if (s == RELATE_OK)
        ds->info.unsupervised_split = RELATE_SPLIT_UNLABELED;
    list_free(&files);
    return s;
}

static bool has_subfolders(const char *dir)
{
    str_list subs = {0};
    relate_error ignore = {0};
    bool any = list_dir(dir, true, &subs, &ignore) == RELATE_OK && subs.n > 0;
    list_free(&subs);
    return any;
}

/* folder:PATH. The layouts, in the order they are recognised:
 *   PATH/train/CLASS/..., optionally PATH/test/CLASS/... and PATH/unlabeled/... (any depth);
 *   PATH/train/IMAGE     (images without class folders: unlabelled);
 *   PATH/CLASS/...       (the training split only; --val_fraction makes a test split);
 *   PATH/IMAGE           (unlabelled: stage 1 only). */
relate_status relate_read_folder(relate_dataset *ds, const char *path, int side, const relate_dataset_options *o,
                                 relate_error *err)
{
    static const relate_dataset_options defaults = {0};
    if (!o)
        o = &defaults;
    char train[4096], test[4096], unl[4096];
    relate_status s;
    if (!relate_is_dir(path))
        return relate_error_set(err, RELATE_ERR_IO,
                                "image folder %s not found: expected %s/<class>/<images>, %s/train/<class>/... "
                                "(and optionally %s/test/<class>/...), or a folder of unlabelled images",
                                path, path, path, path);
    snprintf(ds->info.folder, sizeof ds->info.folder, "%s", path);
    if ((s = relate_path_fmt(train, sizeof train, err, "%s/train", path)) ||
        (s = relate_path_fmt(test, sizeof test, err, "%s/test", path)) ||
        (s = relate_path_fmt(unl, sizeof unl, err, "%s/unlabeled", path)))
        return s;
    if (!relate_is_dir(unl) && (s = relate_path_fmt(unl, sizeof unl, err, "%s/unlabelled", path)))
        return s;
    const bool split = relate_is_dir(train), has_test = split && relate_is_dir(test);
    const bool has_unl = split && relate_is_dir(unl);
    const char *root = split ? train : path;
    const bool labelled = has_subfolders(root);
    skip_report skip = {0}, *sk = o->strict_images ? NULL : &skip;

    if (o->val_fraction != 0 && !(o->val_fraction > 0 && o->val_fraction < 1))
        return relate_error_set(err, RELATE_ERR_ARG, "--val_fraction=%g: expected a fraction between 0 and 1",
                                o->val_fraction);
    if (o->val_fraction > 0 && has_test)
        return relate_error_set(err, RELATE_ERR_ARG,
                                "--val_fraction=%g, but %s exists: the test split is that folder (leave "
                                "--val_fraction out, or remove %s)",
                                o->val_fraction, test, test);
    if (o->val_fraction > 0 && !labelled)
        return relate_error_set(err, RELATE_ERR_ARG,
                                "--val_fraction needs labelled images, %s/<class>/<images>; %s has no class "
                                "sub-folders",
                                root, root);
    if (labelled) {
        s = read_image_folder(ds, &ds->splits[RELATE_SPLIT_TRAIN], root, true, side, true, "folder", sk, err);
        if (s == RELATE_OK && has_test)
            s = read_image_folder(ds, &ds->splits[RELATE_SPLIT_TEST], test, false, side, true, "folder", sk, err);
        if (s == RELATE_OK && o->val_fraction > 0)
            s = carve_validation(ds, o->val_fraction, err);
    } else {
        if (has_test)
            return relate_error_set(err, RELATE_ERR_FORMAT,
                                    "%s has class sub-folders but %s has none: label both (train/<class>/..., "
                                    "test/<class>/...), or move the test images out for unlabelled pretraining",
                                    test, train);
        s = read_unlabelled(ds, root, false, side, sk, err);
    }
    if (s == RELATE_OK && has_unl && labelled)
        s = read_unlabelled(ds, unl, true, side, sk, err);
    else if (s == RELATE_OK && has_unl)
        return relate_error_set(err, RELATE_ERR_FORMAT,
                                "%s holds unlabelled images and so does %s: put them in one of the two", train, unl);
    if (s == RELATE_OK && skip.count > 0)
        snprintf(ds->info.warning, sizeof ds->info.warning,
                 "%lld of %lld image files were skipped because they do not decode (the first: %.300s); "
                 "--strict_images=True makes this an error",
                 (long long)skip.count, (long long)skip.total, skip.first.msg);
    return s;
}
