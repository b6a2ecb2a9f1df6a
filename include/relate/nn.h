/* relate/nn.h: layers with the reference's state-dict names, and the five backbones of spec 2.
 * Not an autograd engine (see graph.h) and not a training loop (see the methods): a module
 * registers its parameters in a relate_params store and composes graph ops in its forward.
 *
 *   relate_backbone bb;
 *   if (relate_backbone_create(&bb, "resnet32", seed, &err) != RELATE_OK) ...;
 *   printf("%d features, %lld params\n", bb.feature_size,
 *          (long long)relate_params_count_trainable(&bb.params));
 *   relate_tensor *f = relate_backbone_forward(g, &bb, x, true);   // [N, 64]
 *   relate_backbone_free(&bb);
 */
#ifndef RELATE_NN_H
#define RELATE_NN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "relate/graph.h"
#include "relate/params.h"
#include "relate/rng.h"
#include "relate/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- layers ---- */
typedef struct relate_conv_layer {
    relate_param *weight; /* [out, in, k, k], no bias (every backbone conv) */
    int in, out, k, stride, pad;
} relate_conv_layer;

typedef struct relate_bn_layer {
    relate_param *weight, *bias, *running_mean, *running_var, *num_batches_tracked;
    int channels;
    float momentum, eps; /* 0.1 and 1e-5, as nn.BatchNorm */
} relate_bn_layer;

typedef struct relate_linear_layer {
    relate_param *weight, *bias; /* [out, in], [out] (bias may be NULL) */
    int in, out;
} relate_linear_layer;

/* Registration (before relate_params_finalize); `prefix` is the module's state-dict path. */
void relate_conv_register(relate_conv_layer *l, relate_params *p, const char *prefix, int in, int out,
                          int k, int stride, int pad);
void relate_bn_register(relate_bn_layer *l, relate_params *p, const char *prefix, int channels);
void relate_linear_register(relate_linear_layer *l, relate_params *p, const char *prefix, int in,
                            int out, bool bias);

/* Initialisation (after finalize). */
/* N(0, sqrt(2 / (k*k*out))): the backbones' fan-out He init (spec 2.5). */
void relate_conv_init_he_fanout(relate_conv_layer *l, relate_rng *r);
/* gamma 1, beta 0, running mean 0, running var 1, num_batches_tracked 0. */
void relate_bn_init(relate_bn_layer *l);
/* PyTorch's default nn.Linear init: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias. */
void relate_linear_init_default(relate_linear_layer *l, relate_rng *r);

relate_tensor *relate_conv_forward(relate_graph *g, relate_conv_layer *l, relate_tensor *x);
relate_tensor *relate_bn_forward(relate_graph *g, relate_bn_layer *l, relate_tensor *x, bool training);
/* relu?(bn(x) + residual) as one op (relate_batch_norm_act); residual may be NULL. */
relate_tensor *relate_bn_act_forward(relate_graph *g, relate_bn_layer *l, relate_tensor *x, relate_tensor *residual,
                                     bool relu, bool training);
relate_tensor *relate_linear_layer_forward(relate_graph *g, relate_linear_layer *l, relate_tensor *x);

/* ---- backbones ---- */
typedef enum relate_backbone_kind {
    RELATE_BACKBONE_CONV4,
    RELATE_BACKBONE_RESNET8,
    RELATE_BACKBONE_RESNET32,
    RELATE_BACKBONE_RESNET56,
    RELATE_BACKBONE_RESNET34
} relate_backbone_kind;

/* BasicBlock of spec 2.3/2.4: conv1-bn1-relu-conv2-bn2 (+ downsample) -relu. */
typedef struct relate_basic_block {
    relate_conv_layer conv1, conv2, down_conv;
    relate_bn_layer bn1, bn2, down_bn;
    bool has_downsample;
} relate_basic_block;

typedef struct relate_backbone {
    relate_backbone_kind kind;
    const char *name;       /* "conv4", "resnet8", ... */
    int feature_size;       /* d: 64, or 512 for resnet34 */
    int local_channels;     /* channels of the first conv-bn-relu map (Deep InfoMax's M) */
    relate_params params;   /* the `backbone` state dict */
    /* conv4: stem_conv/stem_bn unused; conv4 layers in conv4_conv/conv4_bn. */
    relate_conv_layer conv4_conv[4];
    relate_bn_layer conv4_bn[4];
    /* ResNets: conv1/bn1 stem and blocks[stage][i]. */
    relate_conv_layer stem_conv;
    relate_bn_layer stem_bn;
    int nstages;
    int blocks_per_stage[4];
    relate_basic_block *blocks[4];
    FILE *trace;            /* set only by relate_backbone_print_summary: one row per layer */
} relate_backbone;

/* Builds and initialises (spec 2.5) a backbone by name; an unknown name is RELATE_ERR_ARG with
 * the list of valid names in the message. */
relate_status relate_backbone_create(relate_backbone *bb, const char *name, uint64_t seed,
                                     relate_error *err);
void relate_backbone_free(relate_backbone *bb);
/* x [N,3,S,S] -> features [N, feature_size]. training selects BatchNorm's mode. When local_map
 * is non-NULL it receives the first conv-bn-relu output (before any pooling). */
relate_tensor *relate_backbone_forward(relate_graph *g, relate_backbone *bb, relate_tensor *x,
                                       bool training);
relate_tensor *relate_backbone_forward_ex(relate_graph *g, relate_backbone *bb, relate_tensor *x,
                                          bool training, relate_tensor **local_map);
/* The valid backbone names, NULL-terminated. */
const char *const *relate_backbone_names(void);
/* Prints a layer table (module name, op, output shape, parameters) for an S x S input, the
 * feature size and the trainable parameter count. */
relate_status relate_backbone_print_summary(FILE *out, relate_backbone *bb, int image_size,
                                            relate_error *err);

#ifdef __cplusplus
}
#endif
#endif
