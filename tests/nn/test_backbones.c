/* test_backbones.c: structure of the five backbones (spec 2.6 counts and names), their
 * initialisation (spec 2.5), the shapes they accept and the errors for those they do not.
 * and that a training step computes the same with activations in the nChw16c layout as in NCHW.
 * Not a numerical comparison with PyTorch: test_backbone_golden.c does that. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "relate/graph.h"
#include "relate/nn.h"
#include "test_util.h"

static void check_counts(void)
{
    static const struct {
        const char *name;
        int64_t trainable, running_floats;
        int bn_layers, entries, d;
    } want[] = {
        {"conv4", 24648, 240, 4, 24, 64},          {"resnet8", 77392, 672, 9, 54, 64},
        {"resnet32", 466256, 2464, 33, 198, 64},   {"resnet56", 855120, 4256, 57, 342, 64},
        {"resnet34", 21284672, 17024, 36, 216, 512},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        relate_backbone bb;
        relate_error err = {0};
        CHECK(relate_backbone_create(&bb, want[i].name, 7, &err) == RELATE_OK);
        int64_t running = 0;
        int bn = 0;
        for (int p = 0; p < bb.params.count; p++) {
            if (bb.params.items[p]->kind == RELATE_BUFFER_F32)
                running += bb.params.items[p]->numel;
            if (bb.params.items[p]->kind == RELATE_BUFFER_I64)
                bn++;
        }
        CHECK_MSG(relate_params_count_trainable(&bb.params) == want[i].trainable, "%s: %lld trainable", want[i].name,
                  (long long)relate_params_count_trainable(&bb.params));
        CHECK_MSG(running == want[i].running_floats, "%s: %lld running floats", want[i].name, (long long)running);
        CHECK_MSG(bn == want[i].bn_layers, "%s: %d BN layers", want[i].name, bn);
        CHECK_MSG(bb.params.count == want[i].entries, "%s: %d entries", want[i].name, bb.params.count);
        CHECK(bb.feature_size == want[i].d);
        relate_backbone_free(&bb);
    }
}

static void check_names(void)
{
    relate_backbone bb;
    relate_error err = {0};
    CHECK(relate_backbone_create(&bb, "resnet32", 1, &err) == RELATE_OK);
    static const char *const first[] = {"conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                        "bn1.running_var", "bn1.num_batches_tracked", "layer1.0.conv1.weight"};
    for (int i = 0; i < 7; i++)
        CHECK_MSG(strcmp(bb.params.items[i]->name, first[i]) == 0, "entry %d is %s", i, bb.params.items[i]->name);
    relate_param *ds = relate_params_find(&bb.params, "layer2.0.downsample.0.weight");
    CHECK(ds && ds->ndim == 4 && ds->shape[0] == 32 && ds->shape[1] == 16 && ds->shape[2] == 1);
    CHECK(relate_params_find(&bb.params, "layer1.0.downsample.0.weight") == NULL);
    CHECK(relate_params_find(&bb.params, "layer3.4.bn2.num_batches_tracked") != NULL);
    relate_backbone_free(&bb);
}

static void check_init(void)
{
    relate_backbone a, b, c;
    relate_error err = {0};
    CHECK(relate_backbone_create(&a, "resnet34", 3, &err) == RELATE_OK);
    CHECK(relate_backbone_create(&b, "resnet34", 3, &err) == RELATE_OK);
    CHECK(relate_backbone_create(&c, "resnet34", 4, &err) == RELATE_OK);
    CHECK(memcmp(a.params.param_block, b.params.param_block, a.params.param_floats * sizeof(float)) == 0);
    CHECK(memcmp(a.params.param_block, c.params.param_block, a.params.param_floats * sizeof(float)) != 0);
    /* layer4.0.conv2 has 2.36M weights ~ N(0, 2/(9*512)): the sample moments are tight. */
    relate_param *w = relate_params_find(&a.params, "layer4.0.conv2.weight");
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < w->numel; i++) {
        s += w->data[i];
        s2 += (double)w->data[i] * w->data[i];
    }
    double mean = s / (double)w->numel, var = s2 / (double)w->numel - mean * mean, want = 2.0 / (9 * 512);
    CHECK_MSG(fabs(mean) < 5 * sqrt(want / (double)w->numel), "mean %g", mean);
    CHECK_MSG(fabs(var / want - 1) < 0.01, "variance %g, want %g", var, want);
    relate_param *ds = relate_params_find(&a.params, "layer2.0.downsample.0.weight");
    s2 = 0;
    for (int64_t i = 0; i < ds->numel; i++)
        s2 += (double)ds->data[i] * ds->data[i];
    CHECK_MSG(fabs(s2 / (double)ds->numel / (2.0 / 128) - 1) < 0.1, "1x1 projection uses n = out channels");
    relate_param *g = relate_params_find(&a.params, "bn1.weight"), *rv = relate_params_find(&a.params, "bn1.running_var");
    CHECK(g->data[0] == 1.0f && g->data[63] == 1.0f && rv->data[5] == 1.0f);
    CHECK(relate_params_find(&a.params, "bn1.bias")->data[3] == 0.0f);
    relate_backbone_free(&a);
    relate_backbone_free(&b);
    relate_backbone_free(&c);
}

static void check_shapes(void)
{
    static const struct {
        const char *name;
        int size;
    } cases[] = {{"conv4", 32}, {"conv4", 96}, {"conv4", 64}, {"resnet8", 96}, {"resnet34", 32}, {"resnet34", 96}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        relate_backbone bb;
        relate_error err = {0};
        CHECK(relate_backbone_create(&bb, cases[i].name, 1, &err) == RELATE_OK);
        relate_graph *g = relate_graph_create();
        int s = cases[i].size;
        relate_tensor *x = relate_tensor_zeros(g, 4, (int64_t[]){2, 3, s, s});
        relate_test_fill(x->data, (size_t)x->numel, 11);
        relate_tensor *y = relate_backbone_forward(g, &bb, x, true);
        CHECK_MSG(y && y->ndim == 2 && y->shape[0] == 2 && y->shape[1] == bb.feature_size, "%s at %d: %s",
                  cases[i].name, s, relate_graph_error(g)->msg);
        relate_graph_destroy(g);
        relate_backbone_free(&bb);
    }
}

static void check_errors(void)
{
    relate_backbone bb;
    relate_error err = {0};
    CHECK(relate_backbone_create(&bb, "resnet18", 1, &err) == RELATE_ERR_ARG);
    CHECK(strstr(err.msg, "resnet18") && strstr(err.msg, "conv4"));

    CHECK(relate_backbone_create(&bb, "conv4", 1, &err) == RELATE_OK);
    relate_graph *g = relate_graph_create();
    /* One channel instead of three. */
    relate_tensor *y = relate_backbone_forward(g, &bb, relate_tensor_zeros(g, 4, (int64_t[]){2, 1, 32, 32}), true);
    CHECK(y == NULL && relate_graph_status(g) == RELATE_ERR_SHAPE);
    relate_graph_reset(g);
    CHECK(relate_graph_status(g) == RELATE_OK);
    /* 4x4 images shrink below one pixel after three 2x2 poolings. */
    y = relate_backbone_forward(g, &bb, relate_tensor_zeros(g, 4, (int64_t[]){2, 3, 4, 4}), true);
    CHECK(y == NULL && relate_graph_status(g) == RELATE_ERR_SHAPE);
    relate_graph_reset(g);
    /* Training-mode batch norm needs more than one value per channel. */
    relate_tensor *one = relate_tensor_zeros(g, 4, (int64_t[]){1, 3, 8, 8});
    y = relate_backbone_forward(g, &bb, one, true);
    CHECK(y == NULL && relate_graph_status(g) == RELATE_ERR_SHAPE);
    CHECK(strstr(relate_graph_error(g)->msg, "more than 1 value"));
    relate_graph_reset(g);
    /* Eval mode accepts it. */
    relate_graph_set_grad_enabled(g, false);
    y = relate_backbone_forward(g, &bb, relate_tensor_zeros(g, 4, (int64_t[]){1, 3, 8, 8}), false);
    CHECK(y != NULL && y->shape[1] == 64);
    relate_graph_destroy(g);
    relate_backbone_free(&bb);
}

/* A ResNet's blocks, and conv4's layers 2-4, keep their activations in nChw16c in training
 * (relate_to_blocked16) where oneDNN runs their convolutions so; the step must compute what NCHW computes, up to the order of
 * batch norm's double sums: the features, every parameter's gradient, the running statistics. */
static void check_blocked_layout(const char *name)
{
    /* A convolution of the backbone's, in the layouts the blocked forward gives it. */
    const bool conv4 = strcmp(name, "conv4") == 0;
    relate_conv2d_dims d = conv4 ? (relate_conv2d_dims){.n = 4, .c = 8, .h = 8, .w = 8, .o = 16, .kh = 3, .kw = 3,
                                                        .stride = 1, .pad = 1, .blocked = RELATE_CONV_BLOCKED_Y}
                                 : (relate_conv2d_dims){.n = 4, .c = 16, .h = 16, .w = 16, .o = 32, .kh = 3, .kw = 3,
                                                        .stride = 2, .pad = 1,
                                                        .blocked = RELATE_CONV_BLOCKED_X | RELATE_CONV_BLOCKED_Y};
    CHECK_MSG(relate_conv2d_dims_init(&d) == 0 && relate_conv2d_blocked_fits(&d),
              "oneDNN does not run %s's convolutions in nChw16c: the comparison below would not test it", name);
    float *feat[2] = {0}, *grad[2] = {0}, *run[2] = {0};
    size_t nf = 0, ng = 0, nr = 0;
    for (int blocked = 0; blocked < 2; blocked++) {
        /* ALWAYS: the blocked path on any CPU, also where AUTO keeps NCHW (oneDNN's AVX2 kernels). */
        relate_set_blocked_layout(blocked ? RELATE_BLOCKED_ALWAYS : RELATE_BLOCKED_OFF);
        relate_backbone bb;
        relate_error err = {0};
        CHECK(relate_backbone_create(&bb, name, 3, &err) == RELATE_OK);
        relate_graph *g = relate_graph_create();
        relate_tensor *x = relate_tensor_new(g, 4, (int64_t[]){4, 3, 16, 16});
        relate_test_fill(x->data, (size_t)x->numel, 77);
        relate_params_zero_grad(&bb.params);
        relate_tensor *y = relate_backbone_forward(g, &bb, x, true);
        relate_tensor *r = y ? relate_tensor_new(g, 2, y->shape) : NULL;
        if (r)
            relate_test_fill(r->data, (size_t)r->numel, 78);
        relate_tensor *loss = relate_sum(g, relate_mul(g, y, r));
        CHECK_MSG(loss && relate_graph_backward(g, loss) == RELATE_OK, "%s", relate_graph_error(g)->msg);
        if (loss) {
            nf = (size_t)y->numel;
            feat[blocked] = malloc(nf * sizeof(float));
            memcpy(feat[blocked], y->data, nf * sizeof(float));
            ng = nr = 0;
            for (int p = 0; p < bb.params.count; p++) {
                const relate_param *e = bb.params.items[p];
                ng += e->kind == RELATE_PARAM ? (size_t)e->numel : 0;
                nr += e->kind == RELATE_BUFFER_F32 ? (size_t)e->numel : 0;
            }
            grad[blocked] = malloc(ng * sizeof(float));
            run[blocked] = malloc(nr * sizeof(float));
            size_t gi = 0, ri = 0;
            for (int p = 0; p < bb.params.count; p++) {
                const relate_param *e = bb.params.items[p];
                if (e->kind == RELATE_PARAM) {
                    memcpy(grad[blocked] + gi, e->grad, (size_t)e->numel * sizeof(float));
                    gi += (size_t)e->numel;
                } else if (e->kind == RELATE_BUFFER_F32) {
                    memcpy(run[blocked] + ri, e->data, (size_t)e->numel * sizeof(float));
                    ri += (size_t)e->numel;
                }
            }
        }
        relate_graph_destroy(g);
        relate_backbone_free(&bb);
    }
    relate_set_blocked_layout(RELATE_BLOCKED_AUTO);
    if (feat[0] && feat[1]) {
        char what[96];
        snprintf(what, sizeof what, "%s training, nChw16c vs NCHW: features", name);
        relate_test_check_close(what, feat[1], feat[0], nf, 1e-5);
        snprintf(what, sizeof what, "%s training, nChw16c vs NCHW: gradients", name);
        relate_test_check_close(what, grad[1], grad[0], ng, 1e-4);
        snprintf(what, sizeof what, "%s training, nChw16c vs NCHW: running statistics", name);
        relate_test_check_close(what, run[1], run[0], nr, 1e-5);
    }
    for (int k = 0; k < 2; k++)
        free(feat[k]), free(grad[k]), free(run[k]);
}

/* The default (AUTO) choice of layout. Where a ResNet block's convolution is worth the blocked
 * layout (oneDNN computes in nChw16c), so are conv4's layers 2 and 3: layer 2 reads 8 NCHW
 * channels, which oneDNN reorders in either layout, so only its blocked output counts. (An
 * earlier rule asked for no reorder at all and kept conv4 in NCHW, 7% slower, unnoticed.) */
static void check_blocked_auto(void)
{
    relate_conv2d_dims block = {.n = 64, .c = 16, .h = 16, .w = 16, .o = 16, .kh = 3, .kw = 3, .stride = 1, .pad = 1,
                                .blocked = RELATE_CONV_BLOCKED_X | RELATE_CONV_BLOCKED_Y};
    relate_conv2d_dims layer2 = {.n = 64, .c = 8, .h = 16, .w = 16, .o = 16, .kh = 3, .kw = 3, .stride = 1, .pad = 1,
                                 .blocked = RELATE_CONV_BLOCKED_Y};
    relate_conv2d_dims layer3 = {.n = 64, .c = 16, .h = 8, .w = 8, .o = 32, .kh = 3, .kw = 3, .stride = 1, .pad = 1,
                                 .blocked = RELATE_CONV_BLOCKED_X | RELATE_CONV_BLOCKED_Y};
    CHECK(relate_conv2d_dims_init(&block) == 0 && relate_conv2d_dims_init(&layer2) == 0 &&
          relate_conv2d_dims_init(&layer3) == 0);
    relate_set_blocked_layout(RELATE_BLOCKED_AUTO);
    const bool resnet = relate_conv2d_blocked_preferred(&block);
    CHECK_MSG(!resnet || relate_conv2d_blocked_preferred(&layer2), "conv4's layer 2 kept in NCHW where a ResNet block is not");
    CHECK_MSG(!resnet || relate_conv2d_blocked_preferred(&layer3), "conv4's layer 3 kept in NCHW where a ResNet block is not");
    relate_set_blocked_layout(RELATE_BLOCKED_ALWAYS);
    CHECK(relate_conv2d_blocked_preferred(&layer2) && relate_conv2d_blocked_preferred(&block));
    relate_set_blocked_layout(RELATE_BLOCKED_OFF);
    CHECK(!relate_conv2d_blocked_preferred(&layer2) && !relate_conv2d_blocked_preferred(&block));
    relate_set_blocked_layout(RELATE_BLOCKED_AUTO);
}

int main(void)
{
    check_counts();
    check_names();
    check_blocked_layout("resnet8");
    check_blocked_layout("conv4");
    check_blocked_auto();
    check_init();
    check_shapes();
    check_errors();
    return relate_test_finish();
}
