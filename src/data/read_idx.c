/* read_idx.c: Fashion-MNIST and MNIST from IDX ubyte files (gzip-compressed or plain, both read
 * through zlib), grey replicated to RGB as PIL's convert("RGB") does.
 * Not a general IDX reader: unsigned-byte images of 28 x 28 and their 0..9 labels only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "data/readers.h"

static const char *const k_fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
static const char *const k_mnist_names[10] = {"0 - zero", "1 - one", "2 - two",   "3 - three", "4 - four",
                                              "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"};

#define IDX_MAX_ITEMS 10000000 /* far above any dataset of 28 x 28 digits or clothes */

/* Reads an IDX ubyte file of ndims dimensions: dims[] from the header, then exactly the declared
 * bytes and nothing more. Memory grows with the data actually read, so a header that declares
 * billions of items in a small file fails as truncated instead of allocating. */
static relate_status idx_read(const char *path, int ndims, int64_t dims[3], uint8_t **out, relate_error *err)
{
    *out = NULL;
    gzFile g = gzopen(path, "rb"); /* zlib reads plain files transparently */
    if (!g)
        return relate_error_set(err, RELATE_ERR_IO, "cannot open %s", path);
    gzbuffer(g, 1 << 17);
    uint8_t head[16];
    int hn = 4 + 4 * ndims;
    relate_status s = RELATE_OK;
    uint8_t *buf = NULL;
    if (gzread(g, head, (unsigned)hn) != hn) {
        s = relate_error_set(err, RELATE_ERR_FORMAT, "%s: shorter than an IDX header (truncated?)", path);
        goto done;
    }
    if (head[0] || head[1] || head[2] != 0x08 || head[3] != ndims) {
        s = relate_error_set(err, RELATE_ERR_FORMAT,
                             "%s: magic %02x %02x %02x %02x, expected 00 00 08 %02x (IDX unsigned bytes, %d dims): "
                             "not the %s file",
                             path, head[0], head[1], head[2], head[3], ndims, ndims, ndims == 3 ? "images" : "labels");
        goto done;
    }
    for (int d = 0; d < ndims; d++) {
        const uint8_t *p = head + 4 + 4 * d;
        dims[d] = (int64_t)p[0] << 24 | (int64_t)p[1] << 16 | (int64_t)p[2] << 8 | p[3];
    }
    /* Every dimension is checked before any is multiplied: three 32-bit dimensions overflow. */
    if (dims[0] < 1 || dims[0] > IDX_MAX_ITEMS || (ndims == 3 && (dims[1] != 28 || dims[2] != 28))) {
        s = relate_error_set(err, RELATE_ERR_FORMAT, "%s: declares %lld items%s; expected 1..%d items%s", path,
                             (long long)dims[0], ndims == 3 ? " of an unexpected size" : "", IDX_MAX_ITEMS,
                             ndims == 3 ? " of 28 x 28" : "");
        goto done;
    }
    int64_t total = ndims == 3 ? dims[0] * 28 * 28 : dims[0];
    size_t cap = (size_t)(total < (1 << 24) ? total : (1 << 24)), have = 0;
    buf = malloc(cap);
    while (buf && have < (size_t)total) {
        if (have == cap) {
            size_t grown = cap * 2 < (size_t)total ? cap * 2 : (size_t)total;
            uint8_t *b = realloc(buf, grown);
            if (!b)
                break;
            buf = b;
            cap = grown;
        }
        unsigned want = (unsigned)((cap - have) < (1u << 30) ? (cap - have) : (1u << 30));
        int got = gzread(g, buf + have, want);
        if (got <= 0) {
            int zerr;
            const char *zmsg = gzerror(g, &zerr);
            s = relate_error_set(err, RELATE_ERR_FORMAT,
                                 "%s: the header declares %lld bytes of data but %s after %zu (truncated download?)",
                                 path, (long long)total, got < 0 || zerr ? zmsg : "the file ends", have);
            goto done;
        }
        have += (size_t)got;
    }
    if (!buf || have < (size_t)total) {
        s = relate_error_set(err, RELATE_ERR_NOMEM, "out of memory reading %s", path);
        goto done;
    }
    uint8_t extra;
    if (gzread(g, &extra, 1) != 0) {
        s = relate_error_set(err, RELATE_ERR_FORMAT, "%s: longer than its header declares (%lld bytes of data)", path,
                             (long long)total);
        goto done;
    }
    *out = buf;
    buf = NULL;
done:
    free(buf);
    gzclose(g);
    return s;
}

/* The file itself or its .gz; plain first, as torchvision's raw/ folder holds both. */
static bool find_file(char *out, size_t n, const char *dir, const char *base)
{
    if (snprintf(out, n, "%s/%s", dir, base) < (int)n && relate_file_size(out) >= 0)
        return true;
    return snprintf(out, n, "%s/%s.gz", dir, base) < (int)n && relate_file_size(out) >= 0;
}

static relate_status read_split(relate_split *sp, const char *dir, const char *prefix, relate_error *err)
{
    char ip[4096], lp[4096], base[64];
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", prefix);
    if (!find_file(ip, sizeof ip, dir, base))
        return relate_error_set(err, RELATE_ERR_IO, "%s/%s(.gz) is missing", dir, base);
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", prefix);
    if (!find_file(lp, sizeof lp, dir, base))
        return relate_error_set(err, RELATE_ERR_IO, "%s/%s(.gz) is missing", dir, base);
    int64_t idims[3] = {0, 0, 0}, ldims[3] = {0, 0, 0};
    uint8_t *images = NULL, *labels = NULL;
    relate_status s = idx_read(ip, 3, idims, &images, err);
    if (s == RELATE_OK)
        s = idx_read(lp, 1, ldims, &labels, err);
    if (s == RELATE_OK && ldims[0] != idims[0])
        s = relate_error_set(err, RELATE_ERR_FORMAT, "%s holds %lld images but %s %lld labels", ip,
                             (long long)idims[0], lp, (long long)ldims[0]);
    if (s == RELATE_OK)
        s = relate_split_resize(sp, idims[0], 28, 28, err);
    for (int64_t i = 0; s == RELATE_OK && i < idims[0]; i++) {
        if (labels[i] > 9) {
            s = relate_error_set(err, RELATE_ERR_FORMAT, "%s: label %lld is %d, outside 0..9", lp, (long long)i,
                                 labels[i]);
            break;
        }
        sp->labels[i] = labels[i];
        const uint8_t *src = images + (size_t)i * 784;
        uint8_t *dst = sp->pixels + (size_t)i * 784 * 3;
        for (int p = 0; p < 784; p++)
            dst[3 * p] = dst[3 * p + 1] = dst[3 * p + 2] = src[p];
    }
    free(images);
    free(labels);
    return s;
}

relate_status relate_read_idx_dataset(relate_dataset *ds, const char *name, const char *root,
                                      const relate_data_opts *o, relate_error *err)
{
    bool fashion = strcmp(name, "fashionmnist") == 0;
    /* relate's own folder, torchvision's (what the reference's datasets.FashionMNIST downloads),
     * and for Fashion-MNIST the folder of Debian's dataset-fashion-mnist package. */
    const char *subdirs_fashion[] = {"fashionmnist", "fashion-mnist", "FashionMNIST/raw"};
    const char *subdirs_mnist[] = {"mnist", "MNIST/raw"};
    const char *const *subdirs = fashion ? subdirs_fashion : subdirs_mnist;
    int nsub = fashion ? 3 : 2;
    const char *fallback = fashion ? (o->fashion_fallback ? o->fashion_fallback : RELATE_FASHION_MNIST_SYSTEM_DIR) : "";
    char dir[4096], probe[4096], looked[3 * 4096 + 8] = "";
    bool found = false;
    for (int k = 0; k <= nsub && !found; k++) {
        relate_status s;
        if (k < nsub)
            s = relate_path_fmt(dir, sizeof dir, err, "%s/%s", root, subdirs[k]);
        else if (*fallback)
            s = relate_path_fmt(dir, sizeof dir, err, "%s", fallback);
        else
            break;
        if (s)
            return s;
        found = find_file(probe, sizeof probe, dir, "train-images-idx3-ubyte");
        snprintf(looked + strlen(looked), sizeof looked - strlen(looked), "%s%s", *looked ? ", " : "", dir);
    }
    if (!found) {
        if (fashion)
            return relate_error_set(err, RELATE_ERR_IO,
                                    "Fashion-MNIST not found: looked for train-images-idx3-ubyte(.gz) in %s. Install "
                                    "Debian's package (apt-get install dataset-fashion-mnist), or put the four "
                                    "*-ubyte.gz files of https://github.com/zalandoresearch/fashion-mnist in %s/fashionmnist/",
                                    looked, root);
        return relate_error_set(err, RELATE_ERR_IO,
                                "MNIST not found: looked for train-images-idx3-ubyte(.gz) in %s. Put the four "
                                "*-ubyte.gz files of MNIST in %s/mnist/",
                                looked, root);
    }
    relate_status s = read_split(&ds->splits[RELATE_SPLIT_TRAIN], dir, "train", err);
    if (s == RELATE_OK)
        s = read_split(&ds->splits[RELATE_SPLIT_TEST], dir, "t10k", err);
    if (s == RELATE_OK)
        s = relate_info_set_classes(&ds->info, fashion ? k_fashion_names : k_mnist_names, 10, err);
    return s;
}
