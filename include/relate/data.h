/* relate/data.h: datasets (every dataset of the paper, Fashion-MNIST/MNIST and image folders)
 * as 8-bit RGB images in memory, and the augmentation pipelines T1-T6 of spec 4.3 that turn
 * one image into a normalised float tensor.
 * Not the loader (batching, shuffling, worker threads) and not downloads: those build on this.
 *
 *   relate_dataset ds;
 *   if (relate_dataset_open(&ds, "cifar10", "./data", &err) != RELATE_OK) ...;
 *   const relate_split *train = relate_dataset_split(&ds, RELATE_SPLIT_TRAIN);
 *   relate_image img = relate_split_image(train, 17);        // view, not a copy
 *   relate_rng r; relate_rng_init(&r, seed, epoch, 17, RELATE_PURPOSE_AUGMENT);
 *   float out[3 * 32 * 32];
 *   relate_transform_apply(RELATE_T1, &ds.info, &img, &r, out, scratch);
 *   relate_dataset_close(&ds);
 */
#ifndef RELATE_DATA_H
#define RELATE_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "relate/rng.h"
#include "relate/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ images */
/* An 8-bit RGB image, row-major, channels interleaved (HWC), as PIL's "RGB" mode. */
typedef struct relate_image {
    int width, height;
    uint8_t *pixels; /* width * height * 3 bytes */
} relate_image;

/* ------------------------------------------------------------------ datasets */
typedef enum relate_split_kind {
    RELATE_SPLIT_TRAIN = 0,     /* labelled training split (stage 2, standard) */
    RELATE_SPLIT_TEST = 1,      /* test split (tiny: val, slim: test) */
    RELATE_SPLIT_UNLABELED = 2, /* STL-10's 100,000 unlabelled images (labels -1) */
    RELATE_SPLIT_COUNT = 3
} relate_split_kind;

/* One split, fully decoded in memory: `count` images of width x height, back to back. */
typedef struct relate_split {
    bool present;
    int64_t count;
    int width, height;
    uint8_t *pixels;   /* count * height * width * 3 bytes, HWC RGB */
    int32_t *labels;   /* count entries; -1 = no label */
} relate_split;

/* Constants of spec 4.2 (computed and documented for datasets the spec does not list). */
typedef struct relate_dataset_info {
    char name[64];          /* "cifar10", ..., "fashionmnist", "folder:PATH" (truncated) */
    int num_classes;
    char **class_names;     /* num_classes strings */
    int image_size;         /* S: the side every pipeline outputs */
    float mean[3], std[3];  /* Normalize */
    int crop_padding;       /* RandomCrop padding P of T3 */
    float cutout;           /* RandomErasing area fraction of T4; <= 0: undefined (spec A15) */
    relate_split_kind unsupervised_split; /* the split stage 1 trains on (STL-10: unlabeled) */
    char note[512];         /* one line the stages print when non-empty, e.g. that the files hold a
                             * subset of the archive ("CIFAR-10 subset: 10,000 of 50,000 ...") */
    char warning[512];      /* one line the stages print on stderr as [WARN] when non-empty, e.g.
                             * that undecodable files of a folder were skipped */
    char folder[4096];      /* folder:PATH datasets: PATH, for the messages that describe its layout */
} relate_dataset_info;

typedef struct relate_dataset {
    relate_dataset_info info;
    relate_split splits[RELATE_SPLIT_COUNT];
} relate_dataset;

/* Opens a dataset by the reference's --dataset name under data_root:
 *   cifar10, cifar100, supercifar100 (binary or python-pickle layouts), stl10, tiny, slim,
 *   fashionmnist, mnist (IDX, gzip or not; fashionmnist falls back to the folder of Debian's
 *   dataset-fashion-mnist package), folder:PATH[@S] (a class-per-subfolder JPEG/PNG tree like
 *   torchvision's ImageFolder, with PATH/train and PATH/test when present, else PATH as the
 *   train split; every image is resized to S x S with PIL's bilinear filter, S = 64 by default).
 * Every file is validated (sizes, magic numbers, label ranges) before use; a missing dataset
 * gives RELATE_ERR_IO with a message that says where it was looked for and how to get it. */
relate_status relate_dataset_open(relate_dataset *ds, const char *name, const char *data_root,
                                  relate_error *err);

/* Options of opening a dataset; the zero value is the default. val_fraction and strict_images are
 * for image-folder datasets (folder:PATH): every stage that opens the same folder must pass the
 * same values to see the same splits. */
typedef struct relate_dataset_options {
    /* In (0, 1): PATH has no test/ folder, so this fraction of each class of the labelled
     * training images (rounded, at least one where a class has two or more) becomes the test
     * split, chosen by a fixed shuffle that depends on nothing else: stage 1 never trains on
     * them, and stages 2 and 3 see the same split. 0: no validation split. */
    double val_fraction;
    /* A file with an image extension that does not decode: an error naming it (true), or
     * skipped, counted and reported in info.warning (false, the default). */
    bool strict_images;
    /* Splits the caller will not use, as bits (1u << RELATE_SPLIT_...): they are not kept after
     * the dataset is checked, and STL-10's 100,000 unlabelled images (2.8 GB) are not even read.
     * Any dataset. */
    unsigned skip_splits;
} relate_dataset_options;

/* relate_dataset_open with options (NULL: the defaults). Options that name folder features are
 * RELATE_ERR_ARG for the other datasets. */
relate_status relate_dataset_open_with(relate_dataset *ds, const char *name, const char *data_root,
                                       const relate_dataset_options *o, relate_error *err);

/* RELATE_OK when the dataset has the labelled splits `what` needs (train and/or test), else
 * RELATE_ERR_ARG with one line that says which is missing and, for a folder, the layout that
 * provides it. */
relate_status relate_dataset_need_labels(const relate_dataset *ds, bool train, bool test, const char *what,
                                         relate_error *err);

/* Prints info.note as an [INFO] line on out and info.warning as a [WARN] line on warn (either
 * may be NULL), when they are set. */
void relate_dataset_report(const relate_dataset_info *info, FILE *out, FILE *warn);
void relate_dataset_close(relate_dataset *ds);
/* Frees a split the caller no longer needs (its pixels and labels); relate_dataset_split then
 * returns NULL for it. Pointers to it from relate_dataset_split become invalid. */
void relate_dataset_drop_split(relate_dataset *ds, relate_split_kind kind);
/* NULL if the dataset has no such split. */
const relate_split *relate_dataset_split(const relate_dataset *ds, relate_split_kind kind);
/* A view of image i of a split. */
relate_image relate_split_image(const relate_split *s, int64_t i);
/* A view of images [first, first + count) of a split, numbered from 0 (no copy; aborts on a
 * range outside the split, a bug in the caller). */
relate_split relate_split_range(const relate_split *s, int64_t first, int64_t count);
/* The names relate_dataset_open accepts (without folder:PATH), NULL-terminated. */
const char *const *relate_dataset_names(void);

/* ------------------------------------------------------------------ transforms */
typedef enum relate_pipeline {
    RELATE_T1 = 1, /* relationnet / simclr: RandomResizedCrop, flip, ColorJitter p=.8, gray p=.2 */
    RELATE_T2 = 2, /* deepinfomax: flip */
    RELATE_T3 = 3, /* standard, rotationnet, deepcluster: RandomCrop(S, P), flip */
    RELATE_T4 = 4, /* finetune (standard on STL-10): flip, RandomAffine p=.5, erasing p=.5 */
    RELATE_T5 = 5, /* linear evaluation: no augmentation */
    RELATE_T6 = 6  /* test: no augmentation */
} relate_pipeline;

/* Bytes of scratch relate_transform_apply needs for a source image of w x h and output side S. */
size_t relate_transform_scratch_bytes(int w, int h, int s);
/* Applies pipeline p to img, drawing every random parameter from r in the order of spec 4.4,
 * and writes the normalised CHW float tensor [3, S, S] to out. Deterministic given r's state. */
void relate_transform_apply(relate_pipeline p, const relate_dataset_info *info, const relate_image *img,
                            relate_rng *r, float *out, uint8_t *scratch);

#ifdef __cplusplus
}
#endif
#endif
