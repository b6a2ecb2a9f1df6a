/* read_stl10.c: STL-10 from stl10_binary/ (train, test and the 100,000 unlabelled images), with
 * each image's column-major channel planes turned into row-major HWC.
 * Not a lazy reader: the unlabelled split alone is 2.8 GB of pixels, held in memory as
 * relate/data.h promises; the files are streamed in chunks so no second copy is ever needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/readers.h"

#define STL_SIDE 96
#define STL_PLANE (STL_SIDE * STL_SIDE)
#define STL_IMAGE (3 * STL_PLANE) /* 27,648 bytes */
#define STL_CHUNK 512             /* images per read */

static const char *const k_stl10_names[10] = {"airplane", "bird",  "car",    "cat",  "deer",
                                              "dog",      "horse", "monkey", "ship", "truck"};

static relate_status missing(const char *path, const char *root, relate_error *err)
{
    return relate_error_set(err, RELATE_ERR_IO,
                            "STL-10 not found: %s is missing. Run `relate download stl10`, or extract "
                            "stl10_binary.tar.gz (http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz) into %s",
                            path, root);
}

static relate_status read_images(relate_split *sp, const char *path, int64_t count, relate_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return relate_error_set(err, RELATE_ERR_IO, "cannot open %s", path);
    uint8_t *chunk = malloc((size_t)STL_CHUNK * STL_IMAGE);
    if (!chunk) {
        fclose(f);
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory reading %s", path);
    }
    relate_status s = RELATE_OK;
    for (int64_t first = 0; first < count && s == RELATE_OK; first += STL_CHUNK) {
        int64_t n = count - first < STL_CHUNK ? count - first : STL_CHUNK;
        if (fread(chunk, STL_IMAGE, (size_t)n, f) != (size_t)n) {
            s = relate_error_set(err, RELATE_ERR_IO, "%s: read failed at image %lld", path, (long long)first);
            break;
        }
        /* pixel (y, x) of channel c is byte c * 9216 + x * 96 + y of the record */
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            const uint8_t *src = chunk + (size_t)i * STL_IMAGE;
            uint8_t *dst = sp->pixels + (size_t)(first + i) * STL_IMAGE;
            for (int c = 0; c < 3; c++)
                for (int x = 0; x < STL_SIDE; x++)
                    for (int y = 0; y < STL_SIDE; y++)
                        dst[(y * STL_SIDE + x) * 3 + c] = src[c * STL_PLANE + x * STL_SIDE + y];
        }
    }
    free(chunk);
    fclose(f);
    return s;
}

/* count = canonical count, or (allow_partial) derived: from the label file, else the image file */
static relate_status read_split(relate_split *sp, const char *root, const char *x_name, const char *y_name,
                                int64_t canonical, const relate_data_opts *o, relate_error *err)
{
    char xp[4096], yp[4096];
    relate_status s;
    if ((s = relate_path_fmt(xp, sizeof xp, err, "%s/stl10_binary/%s", root, x_name)))
        return s;
    int64_t xs = relate_file_size(xp);
    if (xs < 0)
        return missing(xp, root, err);
    int64_t count = canonical;
    uint8_t *labels = NULL;
    size_t ls = 0;
    if (y_name) {
        if ((s = relate_path_fmt(yp, sizeof yp, err, "%s/stl10_binary/%s", root, y_name)))
            return s;
        int64_t size = relate_file_size(yp);
        if (size < 0)
            return missing(yp, root, err);
        if (o->allow_partial ? size < 1 : size != canonical)
            return relate_error_set(err, RELATE_ERR_FORMAT,
                                    "%s: %lld bytes, but it holds one label byte per image (%lld images); the file "
                                    "is truncated: extract stl10_binary.tar.gz again",
                                    yp, (long long)size, (long long)canonical);
        count = size;
        if ((s = relate_file_read_all(yp, (size_t)size, &labels, &ls, err)))
            return s;
    } else if (o->allow_partial) {
        if (xs < 1 || xs % STL_IMAGE) {
            return relate_error_set(err, RELATE_ERR_FORMAT, "%s: %lld bytes is not a whole number of %d-byte images",
                                    xp, (long long)xs, STL_IMAGE);
        }
        count = xs / STL_IMAGE;
    }
    if (xs != count * STL_IMAGE) {
        free(labels);
        return relate_error_set(err, RELATE_ERR_FORMAT,
                                "%s: %lld bytes, but %lld images of 96 x 96 x 3 take %lld bytes; the file is "
                                "truncated: extract stl10_binary.tar.gz again",
                                xp, (long long)xs, (long long)count, (long long)count * STL_IMAGE);
    }
    if ((s = relate_split_resize(sp, count, STL_SIDE, STL_SIDE, err))) {
        free(labels);
        return s;
    }
    for (int64_t i = 0; i < count; i++) {
        if (labels && (labels[i] < 1 || labels[i] > 10)) {
            s = relate_error_set(err, RELATE_ERR_FORMAT, "%s: label %lld is %d, outside 1..10", yp, (long long)i,
                                 labels[i]);
            free(labels);
            return s;
        }
        sp->labels[i] = labels ? labels[i] - 1 : -1; /* files count classes from 1 */
    }
    free(labels);
    return read_images(sp, xp, count, err);
}

relate_status relate_read_stl10(relate_dataset *ds, const char *root, const relate_data_opts *o, relate_error *err)
{
    char path[4096];
    relate_status s;
    if ((s = relate_path_fmt(path, sizeof path, err, "%s/stl10_binary", root)))
        return s;
    if (!relate_is_dir(path))
        return missing(path, root, err);
    if ((s = read_split(&ds->splits[RELATE_SPLIT_TRAIN], root, "train_X.bin", "train_y.bin", 5000, o, err)) ||
        (s = read_split(&ds->splits[RELATE_SPLIT_TEST], root, "test_X.bin", "test_y.bin", 8000, o, err)) ||
        (!(o->folder.skip_splits & (1u << RELATE_SPLIT_UNLABELED)) &&
         (s = read_split(&ds->splits[RELATE_SPLIT_UNLABELED], root, "unlabeled_X.bin", NULL, 100000, o, err))))
        return s;
    if ((s = relate_path_fmt(path, sizeof path, err, "%s/stl10_binary/class_names.txt", root)))
        return s;
    if (relate_file_size(path) < 0)
        return relate_info_set_classes(&ds->info, k_stl10_names, 10, err);
    char **names;
    int n;
    if ((s = relate_read_names_file(path, &names, &n, err)))
        return s;
    if (n != 10)
        s = relate_error_set(err, RELATE_ERR_FORMAT, "%s: %d class names, expected 10", path, n);
    else
        s = relate_info_set_classes(&ds->info, (const char *const *)names, n, err);
    relate_free_names(names, n);
    return s;
}
