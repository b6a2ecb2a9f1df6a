/* relate/preview.h: a PNG grid of what a method's training loader feeds the network: one row per
 * image, the original first, then V augmented views drawn exactly as epoch E of training draws
 * them (same seed, same (seed, epoch, image, view) keying as relate/loader.h).
 * Not a training component and not an image library: it only renders and writes the grid.
 *
 *   relate_preview_config cfg;
 *   if (relate_preview_for_method(&cfg, "relationnet", &ds.info, &err) != RELATE_OK) ...;
 *   cfg.seed = 1; cfg.epoch = 0;                 // the training run's --seed, the epoch to show
 *   relate_preview p;
 *   if (relate_preview_render(&p, &ds, &cfg, &err) != RELATE_OK) ...;
 *   relate_preview_write_png("preview.png", &p, &err);  // temporary name + fsync + rename
 *   relate_preview_free(&p);
 *
 * Layout: a grid of S x S cells (S = info->image_size) separated and framed by
 * RELATE_PREVIEW_GAP pixels of RELATE_PREVIEW_BACKGROUND; cell (r, c) has its top-left pixel at
 * (GAP + r * (S + GAP), GAP + c * (S + GAP)) before the zoom. Column 0 is the original image
 * (resized to S x S with Pillow's bilinear filter when the split's images are not S x S); then,
 * for each view k = 0..V-1, the view (and, with `rotations`, its rotations R1, R2, R3 of spec 3.3:
 * 90, 180, 270 degrees counter-clockwise). A view is the pipeline's normalised tensor with
 * Normalize undone for display: byte = clamp(round((x * std + mean) * 255), 0, 255), which gives
 * back exactly the pipeline's 8-bit pixels (erased squares of T4 show as the mean colour, i.e. the
 * zeros the network sees). The whole grid is then magnified `zoom` times (nearest neighbour).
 */
#ifndef RELATE_PREVIEW_H
#define RELATE_PREVIEW_H

#include <stdbool.h>
#include <stdint.h>

#include "relate/data.h"
#include "relate/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RELATE_PREVIEW_GAP 2          /* pixels between and around cells (before the zoom) */
#define RELATE_PREVIEW_BACKGROUND 255 /* grey level of the gaps */
#define RELATE_PREVIEW_MAX_VIEWS 64
#define RELATE_PREVIEW_MAX_ROWS 256
#define RELATE_PREVIEW_MAX_ZOOM 16

typedef struct relate_preview_config {
    relate_pipeline pipeline;
    relate_split_kind split; /* the split the method trains on */
    int views;               /* augmented views per row, 1..RELATE_PREVIEW_MAX_VIEWS */
    int rows;                /* images, 1..RELATE_PREVIEW_MAX_ROWS (capped at the split's size) */
    bool rotations;          /* rotationnet: every view followed by R1, R2, R3 */
    uint64_t seed;           /* the training seed: keys the views, and picks the rows */
    int epoch;               /* the epoch whose augmentations are shown (0 = the first) */
    int zoom;                /* whole-grid nearest-neighbour magnification, 1..RELATE_PREVIEW_MAX_ZOOM */
} relate_preview_config;

typedef struct relate_preview {
    relate_image image; /* the grid, HWC RGB, malloc'd */
    int rows, columns;  /* cells; columns = 1 + views * (rotations ? 4 : 1) */
    int side;           /* S, the cell side before the zoom */
    int64_t *indices;   /* [rows]: the dataset index of each row, top to bottom */
} relate_preview;

/* The method names relate_preview_for_method accepts, NULL-terminated. */
const char *const *relate_preview_methods(void);

/* Fills cfg for a method's stage-1 (or stage-2) training loader, per spec 4.3:
 *   relationnet, simclr            T1 on the stage-1 split, 8 / 2 views
 *   deepinfomax                    T2 on the stage-1 split, 4 views
 *   rotationnet                    T3 on the stage-1 split, 1 view shown with its 3 rotations
 *   deepcluster                    T3 on the stage-1 split, 4 views (the first augmentation only)
 *   standard                       T3 on the train split (STL-10: T4), 4 views
 *   lineval, finetune              T5 on the train split, 1 view
 *   test                           T6 on the test split, 1 view
 * The stage-1 split is info->unsupervised_split (STL-10: unlabeled). Also sets rows 8, seed 1,
 * epoch 0, zoom 1. RELATE_ERR_ARG names the valid methods when `method` is not one of them. */
relate_status relate_preview_for_method(relate_preview_config *cfg, const char *method,
                                        const relate_dataset_info *info, relate_error *err);

/* Renders the grid. Rows: `rows` distinct indices of the split drawn from the seed alone (a
 * partial Fisher-Yates shuffle on a stream the loader never uses), so the same images appear
 * for every epoch. Views: relate_transform_apply with the rng the loader gives view k of image
 * n at epoch E, so they are exactly the pixels that training with this seed feeds at epoch E.
 * Deterministic: the same inputs give the same bytes. *out is zeroed on failure. */
relate_status relate_preview_render(relate_preview *out, const relate_dataset *ds, const relate_preview_config *cfg,
                                    relate_error *err);
void relate_preview_free(relate_preview *p);

/* Writes p->image as a PNG through a temporary file, fsync and rename. */
relate_status relate_preview_write_png(const char *path, const relate_preview *p, relate_error *err);

#ifdef __cplusplus
}
#endif
#endif
