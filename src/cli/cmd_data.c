/* cmd_data.c: `relate data`: opens a dataset as training would and prints what it found: sizes,
 * normalisation and augmentation constants, and per-class image counts of every split; with
 * --preview, writes a PNG grid of the originals and the augmented views a method trains on,
 * labelled with cairo (draw_preview.c: title, column headings, each row's index and class).
 * Not a downloader or converter: a missing dataset is reported with where it was looked for. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/draw.h"
#include "relate/data.h"
#include "relate/preview.h"

int relate_cmd_data(int argc, char **argv);

static void print_names(FILE *out)
{
    fprintf(out, "valid datasets:");
    for (const char *const *n = relate_dataset_names(); *n; n++)
        fprintf(out, " %s", *n);
    fprintf(out, " folder:PATH[@S]\n");
}

/* Refuses an output path that cannot be written before the dataset is loaded (which can take
 * a while): its folder must exist and be writable, and the path must not be a folder. */
static int check_writable(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "relate data: --preview %s is a folder; give a file name such as %s/preview.png\n", path, path);
        return 2;
    }
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "relate data: cannot write --preview %s: folder %s does not exist\n", path, dir);
        return 1;
    }
    if (access(dir, W_OK) != 0) {
        fprintf(stderr, "relate data: cannot write --preview %s: folder %s is not writable\n", path, dir);
        return 1;
    }
    return 0;
}

static const char *pipeline_text(relate_pipeline p)
{
    switch (p) {
    case RELATE_T1: return "T1: RandomResizedCrop, flip, ColorJitter p=0.8, grayscale p=0.2";
    case RELATE_T2: return "T2: flip";
    case RELATE_T3: return "T3: RandomCrop with padding, flip";
    case RELATE_T4: return "T4: flip, RandomAffine p=0.5, RandomErasing p=0.5";
    case RELATE_T5: return "T5: no augmentation";
    case RELATE_T6: return "T6: no augmentation";
    }
    return "?";
}

/* The magnification of a labelled preview when --zoom is 0: the smallest that makes a cell at
 * least 64 pixels (28 -> 3, 32 -> 2, 64 and over -> 1), less while the page would be too large. */
static int auto_zoom(const relate_preview *p)
{
    int z = p->side >= 64 ? 1 : (64 + p->side - 1) / p->side;
    z = z > RELATE_PREVIEW_MAX_ZOOM ? RELATE_PREVIEW_MAX_ZOOM : z;
    for (; z > 1; z--) {
        int64_t w, h;
        relate_draw_preview_size(p->image.width, p->image.height, z, &w, &h);
        if (w <= RELATE_DRAW_MAX_SIDE && h <= RELATE_DRAW_MAX_SIDE && w * h <= RELATE_DRAW_MAX_PIXELS)
            break;
    }
    return z;
}

/* --preview: the grid of relate/preview.h, labelled (draw_preview.c) unless `labels` is false.
 * Flags were parsed by relate_cmd_data; zoom 0 = automatic. */
static int run_preview(const relate_dataset *ds, const char *path, const char *method, long views, long rows,
                       long seed, long epoch, long zoom, bool labels)
{
    relate_error err = {0};
    relate_preview_config cfg;
    if (relate_preview_for_method(&cfg, method, &ds->info, &err) != RELATE_OK) {
        fprintf(stderr, "relate data: %s\n", err.msg);
        return 2;
    }
    if (views)
        cfg.views = (int)views;
    cfg.rows = (int)rows;
    cfg.seed = (uint64_t)seed;
    cfg.epoch = (int)epoch;
    /* Labelled: the library draws at zoom 1 and draw_preview.c magnifies; bare: the library zooms. */
    cfg.zoom = labels || zoom == 0 ? 1 : (int)zoom;
    relate_preview p;
    if (relate_preview_render(&p, ds, &cfg, &err) != RELATE_OK) {
        fprintf(stderr, "relate data: %s\n", err.msg);
        return err.code == RELATE_ERR_ARG ? 2 : 1;
    }
    static const char *const split_names[RELATE_SPLIT_COUNT] = {"train", "test", "unlabeled"};
    const relate_split *sp = relate_dataset_split(ds, cfg.split);
    const relate_dataset_info *in = &ds->info;
    /* Row r's class: its label's name, "unlabelled" without one, "class N" for a nameless one. */
    char (*cls_buf)[24] = calloc((size_t)p.rows, sizeof *cls_buf);
    const char **row_class = calloc((size_t)p.rows, sizeof *row_class);
    if (!cls_buf || !row_class) {
        fprintf(stderr, "relate data: out of memory\n");
        free(cls_buf), free(row_class), relate_preview_free(&p);
        return 1;
    }
    for (int r = 0; r < p.rows; r++) {
        const int32_t y = sp->labels ? sp->labels[p.indices[r]] : -1;
        if (y < 0 || y >= in->num_classes) {
            row_class[r] = "unlabelled";
        } else if (in->class_names && in->class_names[y] && *in->class_names[y]) {
            row_class[r] = in->class_names[y];
        } else {
            snprintf(cls_buf[r], sizeof cls_buf[r], "class %d", (int)y);
            row_class[r] = cls_buf[r];
        }
    }
    int width = 0, height = 0, z = (int)zoom;
    int rc = 0;
    if (labels) {
        z = zoom ? (int)zoom : auto_zoom(&p);
        const int per_view = cfg.rotations ? 4 : 1;
        char(*text)[24] = calloc((size_t)p.columns + (size_t)p.rows, sizeof *text);
        const char **heads = calloc((size_t)p.columns + (size_t)p.rows, sizeof *heads);
        if (!text || !heads) {
            fprintf(stderr, "relate data: out of memory\n");
            rc = 1;
        } else {
            /* Short headings over cells under 48 pixels ("orig", "v1", "r90"): the long ones would
             * only fit in a font too small to read. */
            const bool narrow = p.side * z < 48;
            static const char *const rotation[2][4] = {{"", "rot 90", "rot 180", "rot 270"},
                                                       {"", "r90", "r180", "r270"}};
            for (int c = 0; c < p.columns; c++) {
                const int k = (c - 1) / per_view, q = (c - 1) % per_view;
                if (c == 0)
                    snprintf(text[c], sizeof text[c], narrow ? "orig" : "original");
                else if (q == 0)
                    snprintf(text[c], sizeof text[c], narrow ? "v%d" : "view %d", k + 1);
                else
                    snprintf(text[c], sizeof text[c], "%s", rotation[narrow][q]);
                heads[c] = text[c];
            }
            for (int r = 0; r < p.rows; r++) {
                snprintf(text[p.columns + r], sizeof text[0], "#%lld", (long long)p.indices[r]);
                heads[p.columns + r] = text[p.columns + r];
            }
            char title[512], subtitle[512], why[4400];
            snprintf(title, sizeof title, "%s, %s split: %s, seed %lu, epoch %d", in->name, split_names[cfg.split],
                     method, (unsigned long)cfg.seed, cfg.epoch);
            snprintf(subtitle, sizeof subtitle, "%s; %d x %d shown %dx", pipeline_text(cfg.pipeline), p.side, p.side,
                     z);
            int64_t pw, ph;
            relate_draw_preview_size(p.image.width, p.image.height, z, &pw, &ph);
            if (pw > RELATE_DRAW_MAX_SIDE || ph > RELATE_DRAW_MAX_SIDE || pw * ph > RELATE_DRAW_MAX_PIXELS) {
                fprintf(stderr, "relate data: the labelled preview would be %lld x %lld pixels (at most %d a side, %d "
                                "in all); use fewer rows or views, a smaller --zoom, or --labels=False\n",
                        (long long)pw, (long long)ph, RELATE_DRAW_MAX_SIDE, RELATE_DRAW_MAX_PIXELS);
                rc = 2;
            } else if (relate_draw_preview_png(path, &p, z, title, subtitle, heads, heads + p.columns, row_class,
                                               &width, &height, why, sizeof why) != 0) {
                fprintf(stderr, "relate data: %s\n", why);
                rc = 1;
            }
        }
        free(text);
        free(heads);
    } else {
        z = cfg.zoom;
        width = p.image.width;
        height = p.image.height;
        if (relate_preview_write_png(path, &p, &err) != RELATE_OK) {
            fprintf(stderr, "relate data: %s\n", err.msg);
            rc = 1;
        }
    }
    if (rc == 0) {
        printf("wrote %s: %d x %d pixels\n", path, width, height);
        printf("dataset %s, split %s, method %s, pipeline %s\n", in->name, split_names[cfg.split], method,
               pipeline_text(cfg.pipeline));
        printf("%d rows x (original + %d view%s%s), %d x %d cells, seed %lu, epoch %d, zoom %d\n", p.rows, cfg.views,
               cfg.views == 1 ? "" : "s", cfg.rotations ? ", each with its 90/180/270 degree rotations" : "", p.side,
               p.side, (unsigned long)cfg.seed, cfg.epoch, z);
        if (labels)
            printf("labelled: the grid (%d x %d at zoom 1) magnified %dx at (%d, %d), a title, column headings "
                   "and each row's index and class\n",
                   p.image.width, p.image.height, z, RELATE_DRAW_PREVIEW_LEFT, RELATE_DRAW_PREVIEW_TOP);
        printf("rows show images");
        for (int r = 0; r < p.rows; r++)
            printf(" %lld (%s)", (long long)p.indices[r], row_class[r]);
        printf("\n");
    }
    free(cls_buf);
    free(row_class);
    relate_preview_free(&p);
    return rc;
}

int relate_cmd_data(int argc, char **argv)
{
    relate_arg_spec specs[] = {
        {"dataset", RELATE_ARG_STR, "", "dataset: cifar10, cifar100, supercifar100, stl10, tiny, slim, fashionmnist, "
                                        "mnist, or folder:PATH[@S] (class sub-folders; images resized to S x S, "
                                        "default 64)", NULL, 0, 0},
        {"data_root", RELATE_ARG_STR, "./data", "folder that holds the datasets", NULL, 0, 0},
        RELATE_DATASET_FLAGS,
        {"preview", RELATE_ARG_STR, "", "write a PNG grid to this file: per row an image of the method's training "
                                        "split, then its augmented views as epoch --epoch of training with --seed "
                                        "feeds them (Normalize undone)", NULL, 0, 0},
        {"method", RELATE_ARG_STR, "relationnet", "with --preview: relationnet, simclr (T1), deepinfomax (T2), "
                                                  "rotationnet (T3 + rotations), deepcluster, standard (T3; STL-10: "
                                                  "T4), lineval, finetune (T5), test (T6)", NULL, 0, 0},
        {"views", RELATE_ARG_INT, "0", "with --preview: views per row; 0 = the method's default (relationnet 8, "
                                       "simclr 2, rotationnet 1 x 4 rotations, lineval/finetune/test 1, others 4)",
         NULL, 0, RELATE_PREVIEW_MAX_VIEWS},
        {"rows", RELATE_ARG_INT, "8", "with --preview: images (rows), drawn from --seed", NULL, 1, RELATE_PREVIEW_MAX_ROWS},
        {"seed", RELATE_ARG_INT, "1", "with --preview: the training seed (picks the rows, keys the views)", NULL, 0, 2147483647L},
        {"epoch", RELATE_ARG_INT, "0", "with --preview: the epoch whose augmentations are shown", NULL, 0, 2147483647L},
        {"zoom", RELATE_ARG_INT, "0", "with --preview: magnify the grid this many times (nearest neighbour); 0 = "
                                      "automatic: cells of at least 64 pixels with labels (28 -> 3x, 32 -> 2x), "
                                      "1x without", NULL, 0, RELATE_PREVIEW_MAX_ZOOM},
        {"labels", RELATE_ARG_STR, "True", "with --preview: draw a title, column headings and each row's index and "
                                           "class (cairo); False writes the bare grid of relate/preview.h", NULL, 0, 0},
    };
    const int n = (int)(sizeof specs / sizeof specs[0]);
    bool help;
    int rc = relate_args_parse("data", specs, n, argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        relate_args_usage("data",
                          "Opens a dataset and prints its sizes, constants and per-class image counts; with --preview "
                          "writes a PNG of the augmented views a method trains on.",
                          specs, n);
        return 0;
    }
    const char *name = relate_args_get(specs, n, "dataset");
    const char *root = relate_args_get(specs, n, "data_root");
    const char *preview = relate_args_get(specs, n, "preview");
    const char *method = relate_args_get(specs, n, "method");
    if (!*name) {
        fprintf(stderr, "relate data: --dataset is required\n");
        print_names(stderr);
        return 2;
    }
    /* The preview flags (the specs from "method" to "labels") mean nothing without --preview: say
     * so instead of ignoring them. */
    static const char *const preview_only[] = {"method", "views", "rows", "seed", "epoch", "zoom", "labels"};
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < sizeof preview_only / sizeof preview_only[0]; k++)
            if (!*preview && strcmp(specs[i].name, preview_only[k]) == 0 &&
                specs[i].value != specs[i].default_value) {
                fprintf(stderr, "relate data: --%s only applies with --preview FILE.png\n", specs[i].name);
                return 2;
            }
    long views = relate_args_get_int(specs, n, "views"), rows = relate_args_get_int(specs, n, "rows");
    long seed = relate_args_get_int(specs, n, "seed"), epoch = relate_args_get_int(specs, n, "epoch");
    long zoom = relate_args_get_int(specs, n, "zoom");
    bool labels = true;
    if (relate_args_bool(relate_args_get(specs, n, "labels"), &labels) != 0) {
        fprintf(stderr, "relate data: --labels must be True or False, got '%s'\n", relate_args_get(specs, n, "labels"));
        return 2;
    }
    if (*preview) {
        relate_preview_config probe;
        relate_error merr = {0};
        /* Check every flag before loading the dataset, which can take a while. */
        relate_dataset_info none = {0};
        if (relate_preview_for_method(&probe, method, &none, &merr) != RELATE_OK) {
            fprintf(stderr, "relate data: %s\n", merr.msg);
            return 2;
        }
        const struct {
            const char *flag;
            long v, lo, hi;
        } ranges[] = {{"views", views, 0, RELATE_PREVIEW_MAX_VIEWS}, {"rows", rows, 1, RELATE_PREVIEW_MAX_ROWS},
                      {"seed", seed, 0, 2147483647L},    {"epoch", epoch, 0, 2147483647L},
                      {"zoom", zoom, 0, RELATE_PREVIEW_MAX_ZOOM}};
        for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
            if (ranges[i].v < ranges[i].lo || ranges[i].v > ranges[i].hi) {
                fprintf(stderr, "relate data: --%s must be in %ld..%ld, got %ld\n", ranges[i].flag, ranges[i].lo,
                        ranges[i].hi, ranges[i].v);
                return 2;
            }
        int wrc = check_writable(preview);
        if (wrc)
            return wrc;
    }
    relate_dataset ds;
    relate_error err = {0};
    relate_dataset_options data;
    if (relate_args_dataset_options("data", specs, n, &data))
        return 2;
    if (relate_dataset_open_with(&ds, name, root, &data, &err) != RELATE_OK) {
        fprintf(stderr, "relate data: %s\n", err.msg);
        return err.code == RELATE_ERR_ARG ? 2 : 1;
    }
    if (*preview) {
        relate_dataset_report(&ds.info, NULL, stderr);
        int prc = run_preview(&ds, preview, method, views, rows, seed, epoch, zoom, labels);
        relate_dataset_close(&ds);
        return prc;
    }
    const relate_dataset_info *in = &ds.info;
    static const char *const split_names[RELATE_SPLIT_COUNT] = {"train", "test", "unlabeled"};
    printf("dataset          %s\n", in->name);
    printf("data root        %s\n", root);
    if (*in->note)
        printf("note             %s\n", in->note);
    if (*in->warning)
        printf("warning          %s\n", in->warning);
    printf("image size       %d x %d\n", in->image_size, in->image_size);
    printf("normalise mean   %.4f %.4f %.4f\n", in->mean[0], in->mean[1], in->mean[2]);
    printf("normalise std    %.4f %.4f %.4f\n", in->std[0], in->std[1], in->std[2]);
    printf("crop padding     %d\n", in->crop_padding);
    if (in->cutout > 0) {
        int side = (int)lround(in->image_size * sqrt(in->cutout));
        printf("cutout           %.4g of the area (%d x %d square)\n", in->cutout, side, side);
    } else {
        printf("cutout           undefined\n");
    }
    printf("stage-1 split    %s\n", split_names[in->unsupervised_split]);
    int64_t *counts = calloc((size_t)in->num_classes * RELATE_SPLIT_COUNT + 1, sizeof *counts);
    if (!counts) {
        fprintf(stderr, "relate data: out of memory\n");
        relate_dataset_close(&ds);
        return 1;
    }
    for (int k = 0; k < RELATE_SPLIT_COUNT; k++) {
        const relate_split *s = relate_dataset_split(&ds, (relate_split_kind)k);
        if (!s)
            continue;
        printf("split %-10s %lld images of %d x %d%s\n", split_names[k], (long long)s->count, s->width, s->height,
               k == RELATE_SPLIT_UNLABELED ? " (no labels)" : "");
        for (int64_t i = 0; i < s->count; i++)
            if (s->labels[i] >= 0)
                counts[(size_t)s->labels[i] * RELATE_SPLIT_COUNT + (size_t)k]++;
    }
    printf("classes          %d%s\n", in->num_classes,
           in->num_classes ? "" : " (no class sub-folders: stage 1 only; docs/usage.md, \"Image folders\")");
    if (in->num_classes)
        printf("  %5s  %-32s %10s %10s\n", "label", "name", "train", "test");
    for (int c = 0; c < in->num_classes; c++) {
        printf("  %5d  %-32s", c, in->class_names[c]);
        for (int k = RELATE_SPLIT_TRAIN; k <= RELATE_SPLIT_TEST; k++) {
            if (relate_dataset_split(&ds, (relate_split_kind)k))
                printf(" %10lld", (long long)counts[(size_t)c * RELATE_SPLIT_COUNT + (size_t)k]);
            else
                printf(" %10s", "-");
        }
        printf("\n");
    }
    free(counts);
    relate_dataset_close(&ds);
    return 0;
}
