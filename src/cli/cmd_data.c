/* cmd_data.c: `relate data`: opens a dataset as training would and prints what it found: sizes,
 * normalisation and augmentation constants, and per-class image counts of every split; with
 * --preview, writes a PNG grid of the originals and the augmented views a method trains on.
 * Not a downloader or converter: a missing dataset is reported with where it was looked for. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/args.h"
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

/* --preview: the grid of relate/preview.h. Flags were parsed by relate_cmd_data. */
static int run_preview(const relate_dataset *ds, const char *path, const char *method, long views, long rows,
                       long seed, long epoch, long zoom)
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
    cfg.zoom = (int)zoom;
    relate_preview p;
    if (relate_preview_render(&p, ds, &cfg, &err) != RELATE_OK) {
        fprintf(stderr, "relate data: %s\n", err.msg);
        return err.code == RELATE_ERR_ARG ? 2 : 1;
    }
    if (relate_preview_write_png(path, &p, &err) != RELATE_OK) {
        fprintf(stderr, "relate data: %s\n", err.msg);
        relate_preview_free(&p);
        return 1;
    }
    static const char *const split_names[RELATE_SPLIT_COUNT] = {"train", "test", "unlabeled"};
    printf("wrote %s: %d x %d pixels\n", path, p.image.width, p.image.height);
    printf("dataset %s, split %s, method %s, pipeline %s\n", ds->info.name, split_names[cfg.split], method,
           pipeline_text(cfg.pipeline));
    printf("%d rows x (original + %d view%s%s), %d x %d cells, seed %lu, epoch %d, zoom %d\n", p.rows, cfg.views,
           cfg.views == 1 ? "" : "s", cfg.rotations ? ", each with its 90/180/270 degree rotations" : "", p.side,
           p.side, (unsigned long)cfg.seed, cfg.epoch, cfg.zoom);
    printf("rows show images");
    for (int r = 0; r < p.rows; r++)
        printf(" %lld", (long long)p.indices[r]);
    printf("\n");
    relate_preview_free(&p);
    return 0;
}

int relate_cmd_data(int argc, char **argv)
{
    relate_arg_spec specs[] = {
        {"dataset", RELATE_ARG_STR, "", "dataset: cifar10, cifar100, supercifar100, stl10, tiny, slim, fashionmnist, "
                                        "mnist, or folder:PATH[@S] (class sub-folders; images resized to S x S, "
                                        "default 64)", NULL, 0, 0},
        {"data_root", RELATE_ARG_STR, "./data", "folder that holds the datasets", NULL, 0, 0},
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
        {"zoom", RELATE_ARG_INT, "1", "with --preview: magnify the grid this many times (nearest neighbour)", NULL, 1, RELATE_PREVIEW_MAX_ZOOM},
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
    /* The preview flags (every spec after "preview") mean nothing without --preview: say so
     * instead of ignoring them. */
    for (int i = 3; i < n; i++)
        if (!*preview && specs[i].value != specs[i].default_value) {
            fprintf(stderr, "relate data: --%s only applies with --preview FILE.png\n", specs[i].name);
            return 2;
        }
    long views = relate_args_get_int(specs, n, "views"), rows = relate_args_get_int(specs, n, "rows");
    long seed = relate_args_get_int(specs, n, "seed"), epoch = relate_args_get_int(specs, n, "epoch");
    long zoom = relate_args_get_int(specs, n, "zoom");
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
                      {"zoom", zoom, 1, RELATE_PREVIEW_MAX_ZOOM}};
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
    if (relate_dataset_open(&ds, name, root, &err) != RELATE_OK) {
        fprintf(stderr, "relate data: %s\n", err.msg);
        return err.code == RELATE_ERR_ARG ? 2 : 1;
    }
    if (*preview) {
        int prc = run_preview(&ds, preview, method, views, rows, seed, epoch, zoom);
        relate_dataset_close(&ds);
        return prc;
    }
    const relate_dataset_info *in = &ds.info;
    static const char *const split_names[RELATE_SPLIT_COUNT] = {"train", "test", "unlabeled"};
    printf("dataset          %s\n", in->name);
    printf("data root        %s\n", root);
    if (*in->note)
        printf("note             %s\n", in->note);
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
    printf("classes          %d\n", in->num_classes);
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
