/* ops_loss.c: the loss ops (cross-entropy, BCE with logits, focal), each producing a scalar.
 * Not the metrics (accuracy and friends belong to the methods). */
#include <string.h>

#include "autograd/graph_internal.h"
#include "kernels/kernels.h"

typedef struct {
    relate_tensor *x, *y;
    float *prob;
    const int32_t *targets;
    const float *weights, *t;
    float alpha, gamma;
    int kind;
} loss_ctx;

static void loss_backward(relate_graph *g, void *p)
{
    loss_ctx *c = p;
    float *dx = c->y->grad ? relate_grad_of(g, c->x) : NULL;
    if (!dx)
        return;
    float gy = c->y->grad[0];
    if (c->kind == 0)
        relate_cross_entropy_backward(dx, gy, c->prob, c->targets, c->weights, (int)c->x->shape[0],
                                      (int)c->x->shape[1]);
    else if (c->kind == 1)
        relate_bce_logits_backward(dx, gy, c->x->data, c->t, (size_t)c->x->numel);
    else
        relate_focal_loss_backward(dx, gy, c->x->data, c->t, (size_t)c->x->numel, c->alpha, c->gamma);
}

static relate_tensor *record(relate_graph *g, relate_tensor *x, relate_tensor *y, loss_ctx proto)
{
    proto.x = x;
    proto.y = y;
    if (y->requires_grad && !relate_op_save(g, loss_backward, &proto, sizeof proto))
        return NULL;
    return y;
}

relate_tensor *relate_cross_entropy(relate_graph *g, relate_tensor *logits, const int32_t *targets,
                                    const float *weights)
{
    if (!logits)
        return NULL;
    char s1[64];
    if (logits->ndim != 2 || logits->shape[0] == 0)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "cross_entropy expects logits [N,C] with N > 0, got %s",
                                 relate_shape_str(logits, s1, sizeof s1));
    int n = (int)logits->shape[0], c = (int)logits->shape[1];
    for (int i = 0; i < n; i++)
        if (targets[i] < 0 || targets[i] >= c)
            return relate_graph_fail(g, RELATE_ERR_ARG, "cross_entropy: target %d of row %d is outside [0, %d)",
                                     targets[i], i, c);
    relate_tensor *y = relate_op_output(g, 0, NULL, logits, NULL);
    float *prob = y ? relate_graph_scratch(g, (size_t)logits->numel * sizeof(float)) : NULL;
    if (!prob)
        return NULL;
    y->data[0] = relate_cross_entropy_forward(prob, logits->data, targets, weights, n, c);
    return record(g, logits, y, (loss_ctx){.prob = prob, .targets = targets, .weights = weights, .kind = 0});
}

relate_tensor *relate_bce_with_logits(relate_graph *g, relate_tensor *x, const float *targets)
{
    if (!x)
        return NULL;
    if (x->numel == 0)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "bce_with_logits of an empty tensor");
    relate_tensor *y = relate_op_output(g, 0, NULL, x, NULL);
    if (!y)
        return NULL;
    y->data[0] = relate_bce_logits_forward(x->data, targets, (size_t)x->numel);
    return record(g, x, y, (loss_ctx){.t = targets, .kind = 1});
}

relate_tensor *relate_focal_loss(relate_graph *g, relate_tensor *x, const float *targets, float alpha, float gamma)
{
    if (!x)
        return NULL;
    if (x->numel == 0)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "focal loss of an empty tensor");
    relate_tensor *y = relate_op_output(g, 0, NULL, x, NULL);
    if (!y)
        return NULL;
    y->data[0] = relate_focal_loss_forward(x->data, targets, (size_t)x->numel, alpha, gamma);
    return record(g, x, y, (loss_ctx){.t = targets, .alpha = alpha, .gamma = gamma, .kind = 2});
}
