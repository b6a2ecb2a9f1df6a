/* cmd_embed.c: `relate embed`: a checkpoint's frozen features of a dataset split as NumPy files
 * (features [N, d] float32, and labels [N] int64 when the split has them), for UMAP or
 * scikit-learn, and/or (--tsne) a t-SNE map of up to --max_points of them drawn as a PNG,
 * coloured by class. Not the features' computation (relate_extract_features), not t-SNE itself
 * (relate/tsne.h) and not the drawing (draw_scatter.c). */
/* clock_gettime is POSIX. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/draw.h"
#include "data/readers.h"
#include "relate/graph.h"
#include "relate/npy.h"
#include "relate/train.h"
#include "relate/tsne.h"

static double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The t-SNE map of m evenly spaced images of the split (index k * count / m: every class of a
 * split stored class by class is represented), drawn to `path`. feats: the whole split's features
 * when --out computed them, else NULL (only the m images are then run through the backbone). */
static relate_status tsne_map(const char *path, relate_backbone *bb, const relate_dataset *ds, const relate_split *sp,
                              const char *split_name, const float *feats, int64_t m, const relate_tsne_options *o,
                              int data_size, const char *ckpt, relate_error *err)
{
    const int d = bb->feature_size;
    const int64_t count = sp->count;
    float *x = malloc((size_t)m * (size_t)d * sizeof *x), *y = malloc((size_t)m * 2 * sizeof *y);
    int32_t *labels = malloc((size_t)m * sizeof *labels);
    relate_split sub = {.present = true, .count = m, .width = sp->width, .height = sp->height};
    const size_t image_bytes = (size_t)sp->width * (size_t)sp->height * 3;
    if (!feats)
        sub.pixels = malloc((size_t)m * image_bytes);
    relate_status st = RELATE_OK;
    if (!x || !y || !labels || (!feats && !sub.pixels)) {
        st = relate_error_set(err, RELATE_ERR_NOMEM, "out of memory for the t-SNE of %lld images", (long long)m);
        goto done;
    }
    for (int64_t k = 0; k < m; k++) {
        const int64_t i = k * count / m;
        labels[k] = sp->labels ? sp->labels[i] : -1;
        if (feats)
            memcpy(x + k * d, feats + i * d, (size_t)d * sizeof *x);
        else
            memcpy(sub.pixels + (size_t)k * image_bytes, sp->pixels + (size_t)i * image_bytes, image_bytes);
    }
    sub.labels = labels;
    if (!feats && (st = relate_extract_features(bb, &sub, &ds->info, RELATE_T5, data_size, x, err)) != RELATE_OK)
        goto done;
    relate_tsne_result r;
    const double t0 = seconds_now();
    if ((st = relate_tsne_run(x, m, d, o, y, &r, err)) != RELATE_OK)
        goto done;
    const double secs = seconds_now() - t0;
    const char *method = r.barnes_hut ? "Barnes-Hut" : "exact";
    char every[80] = "", title[256], subtitle[512], footnote[4200], why[4400];
    if (m < count)
        snprintf(every, sizeof every, "; %lld of the %lld images, evenly spaced", (long long)m, (long long)count);
    snprintf(title, sizeof title, "t-SNE of the %s features of %lld %s %s images", bb->name, (long long)m,
             ds->info.name, split_name);
    snprintf(subtitle, sizeof subtitle, "%s t-SNE, perplexity %g, %d iterations, seed %llu: KL divergence %.4f%s",
             method, o->perplexity, o->iterations, (unsigned long long)o->seed, r.kl, every);
    snprintf(footnote, sizeof footnote, "checkpoint: %s", ckpt);
    int w, h;
    if (relate_draw_scatter_png(path, y, labels, m, ds->info.class_names, ds->info.num_classes, title, subtitle,
                                footnote, &w, &h, why, sizeof why) != 0) {
        st = relate_error_set(err, RELATE_ERR_IO, "%s", why);
        goto done;
    }
    printf("%s: t-SNE of %lld points (%s%s), perplexity %g, %d iterations, %.2f s: KL divergence %.4f; %d x %d "
           "pixels\n",
           path, (long long)m, method, m < count ? ", evenly spaced over the split" : "", o->perplexity, o->iterations,
           secs, r.kl, w, h);
done:
    free(x);
    free(y);
    free(labels);
    free(sub.pixels);
    return st;
}

int relate_cmd_embed(int argc, char **argv)
{
    relate_arg_spec specs[] = {
        {"checkpoint", RELATE_ARG_STR, "", "any checkpoint holding a backbone; required", NULL, 0, 0},
        {"dataset", RELATE_ARG_STR, "cifar10", "dataset to embed", NULL, 0, 0},
        {"split", RELATE_ARG_STR, "test", "train, test, or unlabeled (STL-10, image folders)", NULL, 0, 0},
        {"out", RELATE_ARG_STR, "", "the features' .npy file (never overwritten); --out or --tsne is required",
         NULL, 0, 0},
        {"labels", RELATE_ARG_STR, "", "the labels' .npy file (default: OUT with _labels.npy)", NULL, 0, 0},
        {"backbone", RELATE_ARG_STR, "", "default: the one the checkpoint records (conv4 for files that record none)",
         NULL, 0, 0},
        {"data_size", RELATE_ARG_INT, "256", "batch size of the feature pass", NULL, 1, RELATE_MAX_BATCH},
        {"data_root", RELATE_ARG_STR, "./data", "folder that holds the datasets", NULL, 0, 0},
        {"threads", RELATE_ARG_INT, "0", "compute threads (0: OMP_NUM_THREADS or every core)", NULL, 0, 1024},
        RELATE_DATASET_FLAGS,
        {"tsne", RELATE_ARG_STR, "", "a PNG of the t-SNE map of the split's features, by class (never overwritten)",
         NULL, 0, 0},
        {"max_points", RELATE_ARG_INT, "2000", "--tsne: at most this many images, evenly spaced over the split",
         NULL, 2, 1000000},
        {"perplexity", RELATE_ARG_STR, "30", "--tsne: effective neighbours per point; below the number of points",
         NULL, 0, 0},
        {"seed", RELATE_ARG_INT, "0", "--tsne: the initial layout's seed", NULL, 0, 2147483647},
    };
    const int n = (int)(sizeof specs / sizeof specs[0]);
    bool help;
    int rc = relate_args_parse("embed", specs, n, argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        relate_args_usage("embed",
                          "Writes a checkpoint's eval-mode features of a dataset split as NumPy .npy files (features "
                          "[N, d] float32;\nlabels [N] int64 when the split has them), as numpy.load reads them, "
                          "and/or draws their t-SNE map\n(--tsne map.png; exact up to 5000 points, Barnes-Hut above) "
                          "coloured by class.",
                          specs, n);
        return 0;
    }
    const char *ckpt = relate_args_get(specs, n, "checkpoint"), *out = relate_args_get(specs, n, "out");
    const char *split_name = relate_args_get(specs, n, "split"), *tsne = relate_args_get(specs, n, "tsne");
    if (!*ckpt || (!*out && !*tsne)) {
        fprintf(stderr, "relate embed: --checkpoint and --out or --tsne are required (e.g. --checkpoint=FILE.tar "
                        "--out=feats.npy or --tsne=map.png)\n");
        return 2;
    }
    relate_tsne_options tsne_opt = relate_tsne_defaults();
    const char *perp = relate_args_get(specs, n, "perplexity");
    char *end;
    tsne_opt.perplexity = strtod(perp, &end);
    if (end == perp || *end || !isfinite(tsne_opt.perplexity) || tsne_opt.perplexity <= 0) {
        fprintf(stderr, "relate embed: --perplexity expects a positive number, got '%s'\n", perp);
        return 2;
    }
    tsne_opt.seed = (uint64_t)relate_args_get_int(specs, n, "seed");
    static const char *const split_names[] = {"train", "test", "unlabeled", NULL};
    relate_split_kind kind = RELATE_SPLIT_COUNT;
    for (int k = 0; split_names[k]; k++)
        if (strcmp(split_name, split_names[k]) == 0)
            kind = (relate_split_kind)k; /* in relate_split_kind's order */
    if (kind == RELATE_SPLIT_COUNT) {
        fprintf(stderr, "relate embed: --split is train, test or unlabeled (STL-10, image folders), got '%s'\n",
                split_name);
        return 2;
    }
    char labels_path[4096];
    const char *lp = relate_args_get(specs, n, "labels");
    if (*lp) {
        snprintf(labels_path, sizeof labels_path, "%s", lp);
    } else {
        size_t len = strlen(out);
        const size_t stem = len > 4 && strcmp(out + len - 4, ".npy") == 0 ? len - 4 : len;
        snprintf(labels_path, sizeof labels_path, "%.*s_labels.npy", (int)stem, out);
    }
    if (*tsne && *out && (strcmp(tsne, out) == 0 || strcmp(tsne, labels_path) == 0)) {
        fprintf(stderr, "relate embed: --tsne names the same file as --out / --labels: %s\n", tsne);
        return 2;
    }
    const char *check[3] = {*out ? out : NULL, *out ? labels_path : NULL, *tsne ? tsne : NULL};
    for (int c = 0; c < 3; c++)
        if (check[c] && relate_file_size(check[c]) >= 0) {
            fprintf(stderr, "relate embed: %s exists: relate does not overwrite it; remove it or choose another "
                            "%s\n",
                    check[c], c == 2 ? "--tsne" : "--out / --labels");
            return 2;
        }
    if (relate_args_get_int(specs, n, "threads") > 0)
        relate_set_threads((int)relate_args_get_int(specs, n, "threads"));

    relate_error err = {0};
    relate_dataset ds;
    relate_dataset_options data;
    if (relate_args_dataset_options("embed", specs, n, &data))
        return 2;
    data.skip_splits |= ~(1u << kind) & ((1u << RELATE_SPLIT_COUNT) - 1); /* only the split it embeds */
    if (relate_dataset_open_with(&ds, relate_args_get(specs, n, "dataset"), relate_args_get(specs, n, "data_root"), &data,
                            &err) != RELATE_OK) {
        fprintf(stderr, "relate embed: %s\n", err.msg);
        return err.code == RELATE_ERR_ARG ? 2 : 1;
    }
    relate_dataset_report(&ds.info, stdout, stderr);
    const relate_split *sp = relate_dataset_split(&ds, kind);
    relate_backbone bb;
    bool made = false;
    float *feats = NULL;
    int64_t *labels = NULL;
    relate_status st = RELATE_OK;
    if (!sp || !sp->present || sp->count == 0)
        st = relate_error_set(&err, RELATE_ERR_ARG, "dataset %s has no %s split", ds.info.name, split_name);
    const int64_t max_points = relate_args_get_int(specs, n, "max_points");
    const int64_t points = st != RELATE_OK ? 0 : sp->count < max_points ? sp->count : max_points;
    if (st == RELATE_OK && *tsne && !(tsne_opt.perplexity < (double)points))
        st = relate_error_set(&err, RELATE_ERR_ARG, "--perplexity %g needs more points than that: --tsne would map "
                                                    "%lld (--max_points %lld, %lld images in the %s split)",
                              tsne_opt.perplexity, (long long)points, (long long)max_points, (long long)sp->count,
                              split_name);
    if (st == RELATE_OK && (st = relate_backbone_from_file(&bb, ckpt, relate_args_get(specs, n, "backbone"), &err)) ==
                               RELATE_OK)
        made = true;
    const int data_size = (int)relate_args_get_int(specs, n, "data_size");
    if (st == RELATE_OK && *out && !(feats = malloc((size_t)sp->count * bb.feature_size * sizeof *feats)))
        st = relate_error_set(&err, RELATE_ERR_NOMEM, "out of memory for %lld features", (long long)sp->count);
    if (st == RELATE_OK && *out)
        st = relate_extract_features(&bb, sp, &ds.info, RELATE_T5, data_size, feats, &err);
    if (st == RELATE_OK && *out)
        st = relate_npy_write_f32(out, feats, 2, (int64_t[]){sp->count, bb.feature_size}, &err);
    bool with_labels = false;
    if (st == RELATE_OK && *out && sp->labels) {
        with_labels = true;
        for (int64_t i = 0; i < sp->count; i++)
            with_labels &= sp->labels[i] >= 0;
    }
    if (st == RELATE_OK && with_labels) {
        if (!(labels = malloc((size_t)sp->count * sizeof *labels)))
            st = relate_error_set(&err, RELATE_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; st == RELATE_OK && i < sp->count; i++)
            labels[i] = sp->labels[i];
        if (st == RELATE_OK)
            st = relate_npy_write_i64(labels_path, labels, 1, (int64_t[]){sp->count}, &err);
    }
    if (st == RELATE_OK && *out)
        printf("%s: %lld x %d float32 features of %s's %s split (%s backbone)%s%s\n", out, (long long)sp->count,
               bb.feature_size, ds.info.name, split_name, bb.name, with_labels ? "; labels: " : "; no labels",
               with_labels ? labels_path : "");
    if (st == RELATE_OK && *tsne)
        st = tsne_map(tsne, &bb, &ds, sp, split_name, feats, points, &tsne_opt, data_size, ckpt, &err);
    free(feats);
    free(labels);
    if (made)
        relate_backbone_free(&bb);
    relate_dataset_close(&ds);
    if (st != RELATE_OK) {
        fprintf(stderr, "relate embed: %s\n", err.msg);
        return st == RELATE_ERR_ARG ? 2 : 1;
    }
    return 0;
}
