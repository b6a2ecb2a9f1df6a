/* deepcluster.h: the pieces of deepcluster (spec 3.5) that tests reach directly: the wrap-around
 * float -> 8-bit conversion, the double augmentation, the clustering of a feature matrix, the
 * class weights, and the head + weighted loss on given features.
 * Not public: relate/method.h is the contract; this is for tests/deepcluster. */
#ifndef RELATE_METHODS_DEEPCLUSTER_H
#define RELATE_METHODS_DEEPCLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "methods/kmeans.h"
#include "relate/data.h"
#include "relate/graph.h"
#include "relate/method.h"

/* torch's `tensor.mul(255).byte()` on x86 (what to_pil_image does to a float tensor): the float32
 * product 255 v truncated towards zero to int32 and taken modulo 256; a product outside the
 * int32 range (or NaN) gives 0, as cvttps2dq's 0x80000000 does. */
uint8_t relate_deepcluster_to_u8(float v);
/* A normalised CHW tensor [3, S, S] to the HWC 8-bit image to_pil_image makes of it. */
void relate_deepcluster_tensor_to_image(const float *chw, int S, uint8_t *hwc);

/* Spec 3.5 step 6 on one image: T3 -> normalised tensor -> 8-bit by wrap-around -> T3 again, all
 * draws from rng in that order. scratch: relate_transform_scratch_bytes(img->width, img->height,
 * info->image_size) bytes. false only when the intermediate image could not be allocated (S > 128;
 * out is then zeroed). */
bool relate_deepcluster_double_augment(const relate_dataset_info *info, const relate_image *img, relate_rng *rng,
                                       float *out, uint8_t *scratch);

/* Steps 3-4 on a feature matrix [n, d]: PCA whitening to relate_pca_components(d) components,
 * rows L2-normalised, k-means (5 restarts, 30 iterations, tol 1e-4) seeded by (seed, stream).
 * labels [n]; rep may be NULL. */
relate_status relate_deepcluster_cluster(const float *features, int64_t n, int d, int k, uint64_t seed,
                                         uint32_t stream, int32_t *labels, relate_kmeans_report *rep,
                                         relate_error *err);

/* Step 5: w[c] = 1 - count_c / n in float32, as the reference's torch code computes it. */
void relate_deepcluster_class_weights(const int32_t *labels, int64_t n, int k, float *w);

/* Installs pseudo-labels for dataset indices 0..n-1 (and their class weights), as the epoch's
 * clustering does; lets tests call relate_method_step without clustering a dataset. */
relate_status relate_deepcluster_set_clusters(relate_method *m, const int32_t *labels, int64_t n, relate_error *err);
/* Step 1: linear2's weight ~ N(0, 0.01) from (seed, epoch), bias 0; Adam moments untouched. */
void relate_deepcluster_reset_last_layer(relate_method *m, int epoch);
/* The head and weighted cross-entropy on features f [B, d] against targets [B] with the current
 * class weights; *logits receives [B, k]. targets must outlive the backward pass. */
relate_tensor *relate_deepcluster_loss(relate_graph *g, relate_method *m, relate_tensor *f, const int32_t *targets,
                                       relate_tensor **logits);
/* The `classifier` state dict, the number of clusters k and the current class weights [k]. */
relate_params *relate_deepcluster_head(relate_method *m);
int relate_deepcluster_k(const relate_method *m);
float *relate_deepcluster_weights(relate_method *m);

#endif
