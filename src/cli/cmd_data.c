/* cmd_data.c: `relate data`: opens a dataset as training would and prints what it found: sizes,
 * normalisation and augmentation constants, and per-class image counts of every split.
 * Not a downloader or converter: a missing dataset is reported with where it was looked for. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "relate/data.h"

int relate_cmd_data(int argc, char **argv);

static void print_names(FILE *out)
{
    fprintf(out, "valid datasets:");
    for (const char *const *n = relate_dataset_names(); *n; n++)
        fprintf(out, " %s", *n);
    fprintf(out, " folder:PATH[@S]\n");
}

int relate_cmd_data(int argc, char **argv)
{
    relate_arg_spec specs[] = {
        {"dataset", RELATE_ARG_STR, "", "dataset: cifar10, cifar100, supercifar100, stl10, tiny, slim, fashionmnist, "
                                        "mnist, or folder:PATH[@S] (class sub-folders; images resized to S x S, "
                                        "default 64)", NULL},
        {"data_root", RELATE_ARG_STR, "./data", "folder that holds the datasets", NULL},
    };
    const int n = (int)(sizeof specs / sizeof specs[0]);
    bool help;
    int rc = relate_args_parse("data", specs, n, argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        relate_args_usage("data", "Opens a dataset and prints its sizes, constants and per-class image counts.", specs,
                          n);
        return 0;
    }
    const char *name = relate_args_get(specs, n, "dataset");
    const char *root = relate_args_get(specs, n, "data_root");
    if (!*name) {
        fprintf(stderr, "relate data: --dataset is required\n");
        print_names(stderr);
        return 2;
    }
    relate_dataset ds;
    relate_error err = {0};
    if (relate_dataset_open(&ds, name, root, &err) != RELATE_OK) {
        fprintf(stderr, "relate data: %s\n", err.msg);
        return err.code == RELATE_ERR_ARG ? 2 : 1;
    }
    const relate_dataset_info *in = &ds.info;
    static const char *const split_names[RELATE_SPLIT_COUNT] = {"train", "test", "unlabeled"};
    printf("dataset          %s\n", in->name);
    printf("data root        %s\n", root);
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
