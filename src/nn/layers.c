/* layers.c: conv, batch-norm and linear layers: registration under state-dict names,
 * PyTorch-equivalent initialisation, and forward through graph ops.
 * Not the backbones (backbones.c) nor the parameter store (params.c). */
#include <math.h>
#include <stdio.h>

#include "relate/nn.h"

static relate_param *add(relate_params *p, const char *prefix, const char *leaf, relate_param_kind kind,
                         int ndim, const int64_t *shape)
{
    char name[256];
    snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", leaf);
    return relate_params_add(p, name, kind, ndim, shape);
}

void relate_conv_register(relate_conv_layer *l, relate_params *p, const char *prefix, int in, int out,
                          int k, int stride, int pad)
{
    *l = (relate_conv_layer){.in = in, .out = out, .k = k, .stride = stride, .pad = pad};
    l->weight = add(p, prefix, "weight", RELATE_PARAM, 4, (int64_t[]){out, in, k, k});
}

void relate_bn_register(relate_bn_layer *l, relate_params *p, const char *prefix, int channels)
{
    const int64_t c[1] = {channels};
    *l = (relate_bn_layer){.channels = channels, .momentum = 0.1f, .eps = 1e-5f};
    /* PyTorch's order: parameters, then buffers. */
    l->weight = add(p, prefix, "weight", RELATE_PARAM, 1, c);
    l->bias = add(p, prefix, "bias", RELATE_PARAM, 1, c);
    l->running_mean = add(p, prefix, "running_mean", RELATE_BUFFER_F32, 1, c);
    l->running_var = add(p, prefix, "running_var", RELATE_BUFFER_F32, 1, c);
    l->num_batches_tracked = add(p, prefix, "num_batches_tracked", RELATE_BUFFER_I64, 0, NULL);
}

void relate_linear_register(relate_linear_layer *l, relate_params *p, const char *prefix, int in,
                            int out, bool bias)
{
    *l = (relate_linear_layer){.in = in, .out = out};
    l->weight = add(p, prefix, "weight", RELATE_PARAM, 2, (int64_t[]){out, in});
    l->bias = bias ? add(p, prefix, "bias", RELATE_PARAM, 1, (int64_t[]){out}) : NULL;
}

void relate_conv_init_he_fanout(relate_conv_layer *l, relate_rng *r)
{
    double std = sqrt(2.0 / (double)(l->k * l->k * l->out));
    for (int64_t i = 0; i < l->weight->numel; i++)
        l->weight->data[i] = (float)(std * relate_rng_normal(r));
}

void relate_bn_init(relate_bn_layer *l)
{
    for (int i = 0; i < l->channels; i++) {
        l->weight->data[i] = 1.0f;
        l->bias->data[i] = 0.0f;
        l->running_mean->data[i] = 0.0f;
        l->running_var->data[i] = 1.0f;
    }
    *l->num_batches_tracked->i64 = 0;
}

void relate_linear_init_default(relate_linear_layer *l, relate_rng *r)
{
    /* kaiming_uniform(a=sqrt(5)) reduces to U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
    double bound = 1.0 / sqrt((double)l->in);
    for (int64_t i = 0; i < l->weight->numel; i++)
        l->weight->data[i] = (float)((2.0 * relate_rng_uniform_f64(r) - 1.0) * bound);
    if (l->bias)
        for (int64_t i = 0; i < l->bias->numel; i++)
            l->bias->data[i] = (float)((2.0 * relate_rng_uniform_f64(r) - 1.0) * bound);
}

relate_tensor *relate_conv_forward(relate_graph *g, relate_conv_layer *l, relate_tensor *x)
{
    return relate_conv2d(g, x, relate_param_tensor(g, l->weight), l->stride, l->pad);
}

relate_tensor *relate_bn_forward(relate_graph *g, relate_bn_layer *l, relate_tensor *x, bool training)
{
    return relate_batch_norm(g, x, relate_param_tensor(g, l->weight), relate_param_tensor(g, l->bias),
                             l->running_mean->data, l->running_var->data, l->num_batches_tracked->i64,
                             training, l->momentum, l->eps);
}

relate_tensor *relate_bn_act_forward(relate_graph *g, relate_bn_layer *l, relate_tensor *x, relate_tensor *residual,
                                     bool relu, bool training)
{
    return relate_batch_norm_act(g, x, relate_param_tensor(g, l->weight), relate_param_tensor(g, l->bias),
                                 l->running_mean->data, l->running_var->data, l->num_batches_tracked->i64,
                                 training, l->momentum, l->eps, residual, relu);
}

relate_tensor *relate_linear_layer_forward(relate_graph *g, relate_linear_layer *l, relate_tensor *x)
{
    return relate_linear(g, x, relate_param_tensor(g, l->weight),
                         l->bias ? relate_param_tensor(g, l->bias) : NULL);
}
