/* transforms_internal.h: the augmentation primitives with their random parameters passed in,
 * so that tests can feed the same parameters to relate and to PIL/torchvision.
 * Not the pipelines (relate_transform_apply in relate/data.h draws the parameters). All images
 * are 8-bit RGB HWC (relate_image); semantics and rounding are spec section 4.4's. */
#ifndef RELATE_DATA_TRANSFORMS_INTERNAL_H
#define RELATE_DATA_TRANSFORMS_INTERNAL_H

#include <stdint.h>

#include "relate/data.h"

/* PIL Image.resize(size, BILINEAR) (Pillow's separable fixed-point convolution, 8-bit
 * intermediate), for up- and down-sampling. dst->pixels must hold dst->width*dst->height*3;
 * scratch must hold relate_resize_scratch_bytes(src, dst) bytes. */
size_t relate_resize_scratch_bytes(int src_w, int src_h, int dst_w, int dst_h);
void relate_resize_bilinear(const relate_image *src, relate_image *dst, uint8_t *scratch);
/* The same for the bw x bh box at (top, left) of src, without copying the box first (equal to
 * PIL's img.crop(box).resize(...)); scratch: relate_resize_scratch_bytes(bw, bh, dst w, dst h),
 * 4-byte aligned. */
void relate_resize_box(const relate_image *src, int top, int left, int bw, int bh, relate_image *dst,
                       uint8_t *scratch);

/* Crop the w x h box at (top i, left j) (fully inside src) into dst (w x h). */
void relate_crop(const relate_image *src, int i, int j, int h, int w, relate_image *dst);
void relate_hflip(relate_image *img);

/* RandomResizedCrop's parameter sampler (10 attempts + fallback of spec 4.4). */
void relate_rrc_sample(relate_rng *r, int width, int height, int *i, int *j, int *h, int *w);

/* ColorJitter parts; factors as in torchvision (1 = identity). */
void relate_adjust_brightness(relate_image *img, float factor);
void relate_adjust_contrast(relate_image *img, float factor);
void relate_adjust_saturation(relate_image *img, float factor);
void relate_adjust_hue(relate_image *img, float hue_factor); /* in [-0.5, 0.5] */
/* The hue shift byte of a factor: trunc(h * 255) mod 256 (spec A24), h*255 in double as Python. */
uint8_t relate_hue_delta(double hue_factor);
void relate_adjust_hue_delta(relate_image *img, uint8_t delta);
/* Pillow's 8-bit RGB<->HSV of one pixel (Convert.c rgb2hsv/hsv2rgb, float32 variables kept). */
void relate_rgb_to_hsv(const uint8_t rgb[3], uint8_t hsv[3]);
void relate_hsv_to_rgb(const uint8_t hsv[3], uint8_t rgb[3]);
/* The same for n pixels (HWC bytes in and out), written to vectorise; the two above are their
 * oracle. */
void relate_rgb_to_hsv_n(const uint8_t *rgb, uint8_t *hsv, size_t n);
void relate_hsv_to_rgb_n(const uint8_t *hsv, uint8_t *rgb, size_t n);
void relate_to_grayscale(relate_image *img);                 /* L replicated to 3 channels */

/* RandomCrop(S, padding P) at (top i, left j) of the zero-padded image. */
void relate_pad_crop(const relate_image *src, int pad, int i, int j, int s, relate_image *dst);

/* RandomAffine with drawn parameters (degrees, pixels, scale), bilinear, fill 0. */
void relate_affine(const relate_image *src, float angle, int tx, int ty, float scale, float shear_x,
                   relate_image *dst);
/* The same with the parameters in double, as the pipeline draws them (Python floats). */
void relate_affine_f64(const relate_image *src, double angle, int tx, int ty, double scale,
                       double shear_x, relate_image *dst);

/* RandomErasing's sampler on an h x w tensor (p = 0.5, scale (c, c), ratio (1, 1)): returns 1
 * and the box when it erases, 0 when it does not. */
int relate_erase_sample(relate_rng *r, int h, int w, double c, int *i, int *j, int *bh, int *bw);

/* ToTensor + Normalize: HWC bytes -> CHW float32 (x/255 - mean)/std. */
void relate_to_tensor_normalize(const relate_image *img, const float mean[3], const float std[3], float *out);

/* RandomErasing's box on a [3, h, w] tensor: zero the bh x bw block at (i, j). */
void relate_erase(float *chw, int h, int w, int i, int j, int bh, int bw);

/* The random parameters one relate_transform_apply drew, for the tests that compare their
 * distributions with torchvision's (tests/transforms/test_augment_stats.c). Fields a pipeline
 * does not draw stay 0. */
typedef struct relate_transform_trace {
    int crop_i, crop_j, crop_h, crop_w; /* T1: RandomResizedCrop's box; T3: RandomCrop's window */
    int flipped;                        /* RandomHorizontalFlip (T1-T4) */
    int jittered;                       /* T1: RandomApply chose ColorJitter */
    double jitter[4];                   /*   brightness, contrast, saturation, hue factors */
    int jitter_order[4];                /*   the order applied: 0 b, 1 c, 2 s, 3 h */
    int grayscale;                      /* T1: RandomGrayscale */
    int affine;                         /* T4: RandomApply chose RandomAffine */
    double angle, scale, shear;         /*   degrees, factor, degrees */
    int tx, ty;                         /*   pixels */
    int erased;                         /* T4: RandomErasing */
    int erase_i, erase_j, erase_h, erase_w;
} relate_transform_trace;

/* relate_transform_apply that also records what it drew (trace may be NULL). */
void relate_transform_apply_traced(relate_pipeline p, const relate_dataset_info *info, const relate_image *img,
                                   relate_rng *r, float *out, uint8_t *scratch, relate_transform_trace *trace);

/* Rotations of rotationnet on a normalised [c, s, s] tensor (k quarter turns counter-clockwise,
 * spec 3.3). */
void relate_rotate90(const float *src, float *dst, int c, int s, int k);

#endif
