/* cmd_retrieve.c: `relate retrieve`: image retrieval with a checkpoint's frozen features, the
 * paper's retrieval figure made by one command: precision@k and mAP@k of every test image
 * against the training split, and a PNG grid of some queries with their top-k neighbours framed
 * green (same label) or red. Not the ranking itself (relate_retrieve). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "data/readers.h"
#include "io/image_decode.h"
#include "relate/graph.h"
#include "relate/knn.h"
#include "relate/train.h"

enum { BORDER = 2, GAP = 4 };

/* Copies image `index` of split sp, upscaled by `scale` (nearest), into the grid at (x0, y0)
 * inside a frame of colour rgb. */
static void put_cell(uint8_t *grid, int gw, const relate_split *sp, int64_t index, int scale, int x0, int y0,
                     const uint8_t rgb[3])
{
    const int w = sp->width * scale, h = sp->height * scale;
    for (int y = 0; y < h + 2 * BORDER; y++)
        for (int x = 0; x < w + 2 * BORDER; x++) {
            uint8_t *o = grid + ((size_t)(y0 + y) * gw + (size_t)(x0 + x)) * 3;
            const bool inside = x >= BORDER && x < w + BORDER && y >= BORDER && y < h + BORDER;
            if (inside) {
                const uint8_t *px = sp->pixels + (size_t)index * sp->width * sp->height * 3 +
                                    ((size_t)((y - BORDER) / scale) * sp->width + (size_t)((x - BORDER) / scale)) * 3;
                memcpy(o, px, 3);
            } else {
                memcpy(o, rgb, 3);
            }
        }
}

int relate_cmd_retrieve(int argc, char **argv)
{
    relate_arg_spec specs[] = {
        {"checkpoint", RELATE_ARG_STR, "", "any checkpoint holding a backbone; required", NULL, 0, 0},
        {"dataset", RELATE_ARG_STR, "cifar10", "the training split is searched, the test split queries", NULL, 0, 0},
        {"top", RELATE_ARG_INT, "10", "neighbours per query (k of precision@k and mAP@k)", NULL, 1, 1000},
        {"queries", RELATE_ARG_INT, "8", "test images drawn in the grid (evenly spaced over the split)", NULL, 1, 256},
        {"out", RELATE_ARG_STR, "", "the grid's PNG file (never overwritten); empty: metrics only", NULL, 0, 0},
        {"backbone", RELATE_ARG_STR, "", "default: the one the checkpoint records (conv4 for files that record none)",
         NULL, 0, 0},
        {"data_size", RELATE_ARG_INT, "256", "batch size of the feature pass", NULL, 1, RELATE_MAX_BATCH},
        {"data_root", RELATE_ARG_STR, "./data", "folder that holds the datasets", NULL, 0, 0},
        {"threads", RELATE_ARG_INT, "0", "compute threads (0: OMP_NUM_THREADS or every core)", NULL, 0, 1024},
        RELATE_DATASET_FLAGS,
    };
    const int n = (int)(sizeof specs / sizeof specs[0]);
    bool help;
    int rc = relate_args_parse("retrieve", specs, n, argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        relate_args_usage("retrieve",
                          "Image retrieval with a checkpoint's frozen features: precision@k and mAP@k of every test "
                          "image\nagainst the training split (cosine similarity), and a PNG grid of queries and their "
                          "neighbours\n(green frame: same label; red: another).",
                          specs, n);
        return 0;
    }
    const char *ckpt = relate_args_get(specs, n, "checkpoint"), *out = relate_args_get(specs, n, "out");
    if (!*ckpt) {
        fprintf(stderr, "relate retrieve: --checkpoint is required\n");
        return 2;
    }
    if (*out && relate_file_size(out) >= 0) {
        fprintf(stderr, "relate retrieve: %s exists: relate does not overwrite it; remove it or choose another --out\n",
                out);
        return 2;
    }
    const int k = (int)relate_args_get_int(specs, n, "top");
    if (relate_args_get_int(specs, n, "threads") > 0)
        relate_set_threads((int)relate_args_get_int(specs, n, "threads"));
    relate_error err = {0};
    relate_dataset ds;
    relate_dataset_options data;
    if (relate_args_dataset_options("retrieve", specs, n, &data))
        return 2;
    data.skip_splits |= 1u << RELATE_SPLIT_UNLABELED; /* the database is train, the queries test */
    if (relate_dataset_open_with(&ds, relate_args_get(specs, n, "dataset"), relate_args_get(specs, n, "data_root"), &data,
                            &err) != RELATE_OK) {
        fprintf(stderr, "relate retrieve: %s\n", err.msg);
        return err.code == RELATE_ERR_ARG ? 2 : 1;
    }
    const relate_split *db = relate_dataset_split(&ds, RELATE_SPLIT_TRAIN), *q = relate_dataset_split(&ds, RELATE_SPLIT_TEST);
    relate_backbone bb;
    bool made = false;
    float *fdb = NULL, *fq = NULL;
    int64_t *top = NULL;
    uint8_t *grid = NULL;
    relate_dataset_report(&ds.info, stdout, stderr);
    relate_status st = relate_dataset_need_labels(&ds, true, true, "Retrieval", &err);
    if (st == RELATE_OK && k > db->count)
        st = relate_error_set(&err, RELATE_ERR_ARG, "--top=%d, but the training split holds %lld images", k,
                              (long long)db->count);
    if (st == RELATE_OK && (st = relate_backbone_from_file(&bb, ckpt, relate_args_get(specs, n, "backbone"), &err)) ==
                               RELATE_OK)
        made = true;
    const int d = made ? bb.feature_size : 0, bs = (int)relate_args_get_int(specs, n, "data_size");
    if (st == RELATE_OK && (!(fdb = malloc((size_t)db->count * d * sizeof *fdb)) ||
                            !(fq = malloc((size_t)q->count * d * sizeof *fq)) ||
                            !(top = malloc((size_t)q->count * k * sizeof *top))))
        st = relate_error_set(&err, RELATE_ERR_NOMEM, "out of memory for the features");
    if (st == RELATE_OK)
        st = relate_extract_features(&bb, db, &ds.info, RELATE_T5, bs, fdb, &err);
    if (st == RELATE_OK)
        st = relate_extract_features(&bb, q, &ds.info, RELATE_T5, bs, fq, &err);
    double prec = 0, map = 0;
    if (st == RELATE_OK)
        st = relate_retrieve(fdb, db->labels, db->count, fq, q->labels, q->count, d, k, top, &prec, &map, &err);
    if (st == RELATE_OK)
        printf("retrieval over %lld test queries in %lld training images (%s backbone): precision@%d %.2f%%; "
               "mAP@%d %.2f%%\n",
               (long long)q->count, (long long)db->count, bb.name, k, prec, k, map);
    if (st == RELATE_OK && *out) {
        /* Rows: a query (grey frame), a gap, then its neighbours, most similar first. */
        int nrows = (int)relate_args_get_int(specs, n, "queries");
        if (nrows > q->count)
            nrows = (int)q->count;
        const int side = db->width > q->width ? db->width : q->width;
        const int scale = side < 64 ? 2 : 1;
        const int cw = db->width * scale + 2 * BORDER, ch = db->height * scale + 2 * BORDER;
        const int gw = GAP + (cw + GAP) * (k + 1) + GAP, gh = GAP + (ch + GAP) * nrows;
        if (q->width != db->width || q->height != db->height)
            st = relate_error_set(&err, RELATE_ERR_FORMAT, "the splits' image sizes differ");
        else if (!(grid = malloc((size_t)gw * gh * 3)))
            st = relate_error_set(&err, RELATE_ERR_NOMEM, "out of memory for the grid");
        if (st == RELATE_OK) {
            memset(grid, 24, (size_t)gw * gh * 3);
            static const uint8_t grey[3] = {160, 160, 160}, green[3] = {0, 200, 0}, red[3] = {230, 0, 0};
            for (int r = 0; r < nrows; r++) {
                const int64_t qi = (int64_t)r * q->count / nrows;
                const int y0 = GAP + r * (ch + GAP);
                put_cell(grid, gw, q, qi, scale, GAP, y0, grey);
                for (int j = 0; j < k; j++) {
                    const int64_t ni = top[qi * k + j];
                    put_cell(grid, gw, db, ni, scale, 2 * GAP + (j + 1) * (cw + GAP), y0,
                             db->labels[ni] == q->labels[qi] ? green : red);
                }
            }
            st = relate_png_write(out, grid, gw, gh, &err);
        }
        if (st == RELATE_OK)
            printf("%s: %d queries (grey frames) with their %d nearest training images (green: same label, red: "
                   "another), %d x %d pixels\n",
                   out, nrows, k, gw, gh);
    }
    free(fdb);
    free(fq);
    free(top);
    free(grid);
    if (made)
        relate_backbone_free(&bb);
    relate_dataset_close(&ds);
    if (st != RELATE_OK) {
        fprintf(stderr, "relate retrieve: %s\n", err.msg);
        return st == RELATE_ERR_ARG ? 2 : 1;
    }
    return 0;
}
