/* backbones.c: conv4, the CIFAR ResNets (8/32/56) and ResNet-34 of spec section 2, built under
 * the reference's state-dict names, initialised as spec 2.5, and run forward as graph ops.
 * Not the heads of the methods, and not a generic model zoo. */
#include <stdlib.h>
#include <string.h>

#include "base/suggest.h"
#include "kernels/kernels.h"
#include "relate/nn.h"

static const char *const backbone_names[] = {"conv4", "resnet8", "resnet32", "resnet56", "resnet34", NULL};

const char *const *relate_backbone_names(void) { return backbone_names; }

/* ------------------------------------------------------------------ tracing for `relate info` */
static void trace(relate_backbone *bb, const char *module, const char *op, const relate_tensor *y, int64_t params)
{
    if (!bb->trace || !y)
        return;
    char shape[64];
    snprintf(shape, sizeof shape, "[%lld", (long long)y->shape[0]);
    for (int d = 1; d < y->ndim; d++)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), ", %lld", (long long)y->shape[d]);
    strncat(shape, "]", sizeof shape - strlen(shape) - 1);
    if (params)
        fprintf(bb->trace, "  %-26s %-34s %-20s %10lld\n", module, op, shape, (long long)params);
    else
        fprintf(bb->trace, "  %-26s %-34s %-20s %10s\n", module, op, shape, "");
}

static relate_tensor *conv_traced(relate_graph *g, relate_backbone *bb, relate_conv_layer *l, relate_tensor *x)
{
    relate_tensor *y = relate_conv_forward(g, l, x);
    if (bb->trace && y) {
        char module[128], op[64];
        snprintf(module, sizeof module, "%.*s", (int)(strlen(l->weight->name) - strlen(".weight")), l->weight->name);
        snprintf(op, sizeof op, "Conv2d(%d, %d, %dx%d, s%d, p%d)", l->in, l->out, l->k, l->k, l->stride, l->pad);
        trace(bb, module, op, y, l->weight->numel);
    }
    return y;
}

/* Batch norm, then optionally the residual add and the ReLU, as one op. */
static relate_tensor *bn_traced(relate_graph *g, relate_backbone *bb, relate_bn_layer *l, relate_tensor *x,
                                relate_tensor *residual, bool relu, bool training)
{
    relate_tensor *y = relate_bn_act_forward(g, l, x, residual, relu, training);
    if (bb->trace && y) {
        char module[128], op[64];
        snprintf(module, sizeof module, "%.*s", (int)(strlen(l->weight->name) - strlen(".weight")), l->weight->name);
        snprintf(op, sizeof op, "BatchNorm2d(%d)%s%s", l->channels, residual ? " + add" : "", relu ? " + ReLU" : "");
        trace(bb, module, op, y, 2 * (int64_t)l->channels);
    }
    return y;
}

/* ------------------------------------------------------------------ construction */
static relate_status build_conv4(relate_backbone *bb)
{
    static const int ch[5] = {3, 8, 16, 32, 64};
    for (int i = 0; i < 4; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "layer%d.conv", i + 1);
        relate_conv_register(&bb->conv4_conv[i], &bb->params, prefix, ch[i], ch[i + 1], 3, 1, 1);
        snprintf(prefix, sizeof prefix, "layer%d.bn", i + 1);
        relate_bn_register(&bb->conv4_bn[i], &bb->params, prefix, ch[i + 1]);
    }
    bb->feature_size = 64;
    bb->local_channels = 8;
    return RELATE_OK;
}

static void register_block(relate_basic_block *b, relate_params *p, const char *prefix, int in, int out, int stride)
{
    char name[96];
    snprintf(name, sizeof name, "%s.conv1", prefix);
    relate_conv_register(&b->conv1, p, name, in, out, 3, stride, 1);
    snprintf(name, sizeof name, "%s.bn1", prefix);
    relate_bn_register(&b->bn1, p, name, out);
    snprintf(name, sizeof name, "%s.conv2", prefix);
    relate_conv_register(&b->conv2, p, name, out, out, 3, 1, 1);
    snprintf(name, sizeof name, "%s.bn2", prefix);
    relate_bn_register(&b->bn2, p, name, out);
    b->has_downsample = stride != 1 || in != out;
    if (b->has_downsample) {
        snprintf(name, sizeof name, "%s.downsample.0", prefix);
        relate_conv_register(&b->down_conv, p, name, in, out, 1, stride, 0);
        snprintf(name, sizeof name, "%s.downsample.1", prefix);
        relate_bn_register(&b->down_bn, p, name, out);
    }
}

static relate_status build_resnet(relate_backbone *bb, int nstages, const int *channels, const int *blocks,
                                  bool imagenet_stem, relate_error *err)
{
    int in = imagenet_stem ? 64 : 16;
    if (imagenet_stem)
        relate_conv_register(&bb->stem_conv, &bb->params, "conv1", 3, 64, 7, 2, 3);
    else
        relate_conv_register(&bb->stem_conv, &bb->params, "conv1", 3, 16, 3, 1, 1);
    relate_bn_register(&bb->stem_bn, &bb->params, "bn1", in);
    bb->local_channels = in;
    bb->nstages = nstages;
    for (int s = 0; s < nstages; s++) {
        bb->blocks_per_stage[s] = blocks[s];
        bb->blocks[s] = calloc((size_t)blocks[s], sizeof(relate_basic_block));
        if (!bb->blocks[s])
            return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory building %s", bb->name);
        for (int b = 0; b < blocks[s]; b++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", s + 1, b);
            int stride = (b == 0 && s > 0) ? 2 : 1;
            register_block(&bb->blocks[s][b], &bb->params, prefix, b == 0 ? in : channels[s], channels[s], stride);
        }
        in = channels[s];
    }
    bb->feature_size = in;
    return RELATE_OK;
}

static void init_block(relate_basic_block *b, relate_rng *r)
{
    relate_conv_init_he_fanout(&b->conv1, r);
    relate_bn_init(&b->bn1);
    relate_conv_init_he_fanout(&b->conv2, r);
    relate_bn_init(&b->bn2);
    if (b->has_downsample) {
        relate_conv_init_he_fanout(&b->down_conv, r);
        relate_bn_init(&b->down_bn);
    }
}

relate_status relate_backbone_create(relate_backbone *bb, const char *name, uint64_t seed, relate_error *err)
{
    memset(bb, 0, sizeof *bb);
    relate_params_init(&bb->params);
    relate_status s;
    static const int small_ch[3] = {16, 32, 64}, r34_ch[4] = {64, 128, 256, 512}, r34_blocks[4] = {3, 4, 6, 3};
    if (strcmp(name, "conv4") == 0) {
        bb->kind = RELATE_BACKBONE_CONV4;
        bb->name = "conv4";
        s = build_conv4(bb);
    } else if (strcmp(name, "resnet8") == 0 || strcmp(name, "resnet32") == 0 || strcmp(name, "resnet56") == 0) {
        int n = name[6] == '8' ? 1 : name[6] == '3' ? 5 : 9;
        bb->kind = n == 1 ? RELATE_BACKBONE_RESNET8 : n == 5 ? RELATE_BACKBONE_RESNET32 : RELATE_BACKBONE_RESNET56;
        bb->name = n == 1 ? "resnet8" : n == 5 ? "resnet32" : "resnet56";
        int blocks[3] = {n, n, n};
        s = build_resnet(bb, 3, small_ch, blocks, false, err);
    } else if (strcmp(name, "resnet34") == 0) {
        bb->kind = RELATE_BACKBONE_RESNET34;
        bb->name = "resnet34";
        s = build_resnet(bb, 4, r34_ch, r34_blocks, true, err);
    } else {
        char hint[64];
        return relate_error_set(err, RELATE_ERR_ARG,
                                "unknown backbone '%s'%s; choose one of conv4, resnet8, resnet32, resnet56, resnet34",
                                name, relate_suggest_text(hint, sizeof hint, name, relate_backbone_names()));
    }
    if (s == RELATE_OK)
        s = relate_params_finalize(&bb->params, err);
    if (s != RELATE_OK) {
        relate_backbone_free(bb);
        return s;
    }
    relate_rng r;
    relate_rng_init(&r, seed, 0, 0, RELATE_PURPOSE_INIT);
    if (bb->kind == RELATE_BACKBONE_CONV4) {
        for (int i = 0; i < 4; i++) {
            relate_conv_init_he_fanout(&bb->conv4_conv[i], &r);
            relate_bn_init(&bb->conv4_bn[i]);
        }
    } else {
        relate_conv_init_he_fanout(&bb->stem_conv, &r);
        relate_bn_init(&bb->stem_bn);
        for (int st = 0; st < bb->nstages; st++)
            for (int b = 0; b < bb->blocks_per_stage[st]; b++)
                init_block(&bb->blocks[st][b], &r);
    }
    return RELATE_OK;
}

void relate_backbone_free(relate_backbone *bb)
{
    for (int s = 0; s < 4; s++)
        free(bb->blocks[s]);
    relate_params_free(&bb->params);
    memset(bb, 0, sizeof *bb);
}

/* ------------------------------------------------------------------ forward */
static relate_tensor *block_forward(relate_graph *g, relate_backbone *bb, relate_basic_block *b,
                                    relate_tensor *x, bool training)
{
    relate_tensor *h1 = conv_traced(g, bb, &b->conv1, x);
    if (!training) {
        relate_tensor *h = bn_traced(g, bb, &b->bn1, h1, NULL, true, training);
        relate_tensor *shortcut = x;
        if (b->has_downsample)
            shortcut = bn_traced(g, bb, &b->down_bn, conv_traced(g, bb, &b->down_conv, x), NULL, false, training);
        return bn_traced(g, bb, &b->bn2, conv_traced(g, bb, &b->conv2, h), shortcut, true, training);
    }
    /* Training: bn1 + ReLU + conv2 as one op, whose activation between them is recomputed in the
     * backward pass instead of kept (one activation less per block; the same bits). The shortcut
     * is computed before it, so x's gradient still receives the shortcut's share before conv1's,
     * as with the separate ops; the summary lists the layers in their usual order. */
    relate_bn_layer *l = &b->bn1;
    char module[128], op[64];
    if (bb->trace && h1) {
        snprintf(module, sizeof module, "%.*s", (int)(strlen(l->weight->name) - strlen(".weight")), l->weight->name);
        snprintf(op, sizeof op, "BatchNorm2d(%d) + ReLU", l->channels);
        trace(bb, module, op, h1, 2 * (int64_t)l->channels);
    }
    relate_tensor *shortcut = x;
    if (b->has_downsample)
        shortcut = bn_traced(g, bb, &b->down_bn, conv_traced(g, bb, &b->down_conv, x), NULL, false, training);
    relate_tensor *h2 = relate_bn_relu_conv2d(g, h1, relate_param_tensor(g, l->weight), relate_param_tensor(g, l->bias),
                                              l->running_mean->data, l->running_var->data,
                                              l->num_batches_tracked->i64, l->momentum, l->eps,
                                              relate_param_tensor(g, b->conv2.weight), b->conv2.stride, b->conv2.pad);
    if (bb->trace && h2) {
        const relate_conv_layer *c2 = &b->conv2;
        snprintf(module, sizeof module, "%.*s", (int)(strlen(c2->weight->name) - strlen(".weight")), c2->weight->name);
        snprintf(op, sizeof op, "Conv2d(%d, %d, %dx%d, s%d, p%d)", c2->in, c2->out, c2->k, c2->k, c2->stride, c2->pad);
        trace(bb, module, op, h2, c2->weight->numel);
    }
    return bn_traced(g, bb, &b->bn2, h2, shortcut, true, training);
}

/* Whether the blocks of this forward keep their activations in nChw16c (relate_to_blocked16):
 * in training, untraced, without synchronised statistics (the blocked batch norm has neither an
 * eval nor a synchronised kernel), and where oneDNN runs every convolution of every block in
 * that layout, for an input like h. */
static bool blocks_in_blocked_layout(relate_graph *g, const relate_backbone *bb, const relate_tensor *h, bool training)
{
    if (!h || !training || bb->trace || relate_blocked_layout_mode() == RELATE_BLOCKED_OFF || relate_graph_sync_batch(g))
        return false;
    int c = (int)h->shape[1], hh = (int)h->shape[2], ww = (int)h->shape[3];
    for (int s = 0; s < bb->nstages; s++)
        for (int b = 0; b < bb->blocks_per_stage[s]; b++) {
            const relate_basic_block *k = &bb->blocks[s][b];
            const relate_conv_layer *cl[3] = {&k->conv1, &k->conv2, k->has_downsample ? &k->down_conv : NULL};
            relate_conv2d_dims d[3];
            for (int i = 0; i < 3; i++) {
                if (!cl[i])
                    continue;
                const bool second = i == 1;
                d[i] = (relate_conv2d_dims){.n = (int)h->shape[0], .c = second ? d[0].o : c,
                                            .h = second ? d[0].ho : hh, .w = second ? d[0].wo : ww,
                                            .o = cl[i]->out, .kh = cl[i]->k, .kw = cl[i]->k,
                                            .stride = cl[i]->stride, .pad = cl[i]->pad,
                                            .blocked = RELATE_CONV_BLOCKED_X | RELATE_CONV_BLOCKED_Y};
                if (relate_conv2d_dims_init(&d[i]) != 0 || !relate_conv2d_blocked_preferred(&d[i]))
                    return false;
            }
            c = d[1].o;
            hh = d[1].ho;
            ww = d[1].wo;
        }
    return true;
}

/* Whether conv4's layers 2-4 keep their activations in nChw16c: as for a ResNet's blocks. Layer 2
 * reads the stem's 8 NCHW channels (Deep InfoMax's local map, which stays NCHW) and writes
 * blocked ones (relate_conv2d_to_blocked16). */
static bool conv4_in_blocked_layout(relate_graph *g, const relate_backbone *bb, const relate_tensor *x, bool training)
{
    if (!training || bb->trace || relate_blocked_layout_mode() == RELATE_BLOCKED_OFF || relate_graph_sync_batch(g))
        return false;
    int c = bb->conv4_conv[0].out, hh = (int)x->shape[2] / 2, ww = (int)x->shape[3] / 2;
    for (int i = 1; i < 4; i++) {
        const relate_conv_layer *cl = &bb->conv4_conv[i];
        relate_conv2d_dims d = {.n = (int)x->shape[0], .c = c, .h = hh, .w = ww, .o = cl->out, .kh = cl->k,
                                .kw = cl->k, .stride = cl->stride, .pad = cl->pad,
                                .blocked = (i > 1 ? RELATE_CONV_BLOCKED_X : 0) | RELATE_CONV_BLOCKED_Y};
        if (relate_conv2d_dims_init(&d) != 0 || !relate_conv2d_blocked_preferred(&d) || (i < 3 && (d.ho < 2 || d.wo < 2)))
            return false;
        c = d.o;
        hh = d.ho / 2;
        ww = d.wo / 2;
    }
    return true;
}

relate_tensor *relate_backbone_forward_ex(relate_graph *g, relate_backbone *bb, relate_tensor *x,
                                          bool training, relate_tensor **local_map)
{
    if (!x)
        return NULL;
    if (x->ndim != 4 || x->shape[1] != 3) {
        char s[64];
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "%s expects images [N, 3, H, W], got %s", bb->name,
                                 relate_shape_str(x, s, sizeof s));
    }
    relate_tensor *h;
    if (bb->kind == RELATE_BACKBONE_CONV4) {
        h = x;
        /* Layers 2-4 in nChw16c: oneDNN's convolutions then read and write them without reorders. */
        const bool blocked = conv4_in_blocked_layout(g, bb, x, training);
        for (int i = 0; i < 4; i++) {
            if (i == 0 && training && !local_map && !bb->trace) {
                /* The stem and its block tail in one op: the stem's output gradient is never
                 * stored (a traced forward keeps the ops apart, one line each). */
                relate_conv_layer *cl = &bb->conv4_conv[0];
                relate_bn_layer *l = &bb->conv4_bn[0];
                h = relate_conv2d_bn_relu_pool2(g, h, relate_param_tensor(g, cl->weight), cl->stride, cl->pad,
                                                relate_param_tensor(g, l->weight), relate_param_tensor(g, l->bias),
                                                l->running_mean->data, l->running_var->data,
                                                l->num_batches_tracked->i64, l->momentum, l->eps);
                continue;
            }
            if (blocked && i > 0) /* untraced */
                h = (i == 1 ? relate_conv2d_to_blocked16 : relate_conv2d)(
                    g, h, relate_param_tensor(g, bb->conv4_conv[i].weight), bb->conv4_conv[i].stride,
                    bb->conv4_conv[i].pad);
            else
                h = conv_traced(g, bb, &bb->conv4_conv[i], h);
            if (i < 3 && training && !(i == 0 && local_map)) {
                /* The block tail in one op; the full-size activation is never stored. */
                relate_bn_layer *l = &bb->conv4_bn[i];
                h = relate_batch_norm_relu_pool2(g, h, relate_param_tensor(g, l->weight), relate_param_tensor(g, l->bias),
                                                 l->running_mean->data, l->running_var->data,
                                                 l->num_batches_tracked->i64, l->momentum, l->eps);
                trace(bb, "", "BatchNorm2d + ReLU + AvgPool2d(2, 2)", h, 2 * (int64_t)l->channels);
                continue;
            }
            h = bn_traced(g, bb, &bb->conv4_bn[i], h, NULL, true, training);
            if (blocked && i == 3)
                h = relate_from_blocked16(g, h);
            if (i == 0 && local_map)
                *local_map = h;
            if (i < 3) {
                h = relate_avg_pool2d(g, h, 2, 2, 0);
                trace(bb, "", "AvgPool2d(2, 2)", h, 0);
            }
        }
    } else {
        h = bn_traced(g, bb, &bb->stem_bn, conv_traced(g, bb, &bb->stem_conv, x), NULL, true, training);
        if (local_map)
            *local_map = h;
        if (bb->kind == RELATE_BACKBONE_RESNET34) {
            h = relate_max_pool2d(g, h, 3, 2, 1);
            trace(bb, "", "MaxPool2d(3, 2, 1)", h, 0);
        }
        /* The blocks in nChw16c: oneDNN's convolutions then read and write their activations
         * as they lie, where NCHW cost a reorder into and out of every convolution. */
        const bool blocked = blocks_in_blocked_layout(g, bb, h, training);
        if (blocked)
            h = relate_to_blocked16(g, h);
        for (int s = 0; s < bb->nstages; s++)
            for (int b = 0; b < bb->blocks_per_stage[s]; b++)
                h = block_forward(g, bb, &bb->blocks[s][b], h, training);
        if (blocked)
            h = relate_from_blocked16(g, h);
    }
    h = relate_global_avg_pool(g, h);
    trace(bb, "", "AdaptiveAvgPool2d(1) + flatten", h, 0);
    return h;
}

relate_tensor *relate_backbone_forward(relate_graph *g, relate_backbone *bb, relate_tensor *x, bool training)
{
    return relate_backbone_forward_ex(g, bb, x, training, NULL);
}

relate_status relate_backbone_print_summary(FILE *out, relate_backbone *bb, int image_size, relate_error *err)
{
    if (image_size < 1 || image_size > 4096)
        return relate_error_set(err, RELATE_ERR_ARG, "image size %d is out of range [1, 4096]", image_size);
    relate_graph *g = relate_graph_create();
    float *img = calloc((size_t)3 * image_size * image_size, sizeof(float));
    if (!g || !img) {
        relate_graph_destroy(g);
        free(img);
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    }
    relate_graph_set_grad_enabled(g, false);
    fprintf(out, "backbone %s, input [1, 3, %d, %d]\n", bb->name, image_size, image_size);
    fprintf(out, "  %-26s %-34s %-20s %10s\n", "module", "op", "output", "params");
    bb->trace = out;
    relate_tensor *y = relate_backbone_forward(g, bb, relate_tensor_wrap(g, 4, (int64_t[]){1, 3, image_size, image_size}, img), false);
    bb->trace = NULL;
    relate_status s = RELATE_OK;
    if (!y)
        s = relate_error_set(err, relate_graph_status(g), "%s (input %dx%d)", relate_graph_error(g)->msg, image_size, image_size);
    relate_graph_destroy(g);
    free(img);
    if (s != RELATE_OK)
        return s;
    fprintf(out, "Feature size: %d\n", bb->feature_size);
    fprintf(out, "TOT trainable params: %lld\n", (long long)relate_params_count_trainable(&bb->params));
    return RELATE_OK;
}
