/* ops_layout.c: the graph ops that move a [N,C,H,W] tensor between relate's NCHW and oneDNN's
 * nChw16c layout (relate_tensor.blocked16), with their gradients (the opposite move, added).
 * A ResNet converts once before its blocks and once after them, so that its convolutions run on
 * blocked activations without reorders (src/nn/backbones.c). Not the kernels
 * (kernels/batchnorm_blocked.c) nor the ops that compute in the layout (ops_nn.c). */
#include "autograd/graph_internal.h"
#include "kernels/kernels.h"

typedef struct {
    relate_tensor *x, *y;
    bool to_blocked; /* the forward's direction; the gradient goes the other way, added */
} layout_ctx;

static void dims_of(const relate_tensor *t, int *n, int *c, int *hw)
{
    *n = (int)t->shape[0];
    *c = (int)t->shape[1];
    *hw = (int)(t->shape[2] * t->shape[3]);
}

static void convert_backward(relate_graph *g, void *p)
{
    layout_ctx *k = p;
    bool store;
    float *dx = k->y->grad ? relate_grad_to_write(g, k->x, &store) : NULL;
    int n, c, hw;
    dims_of(k->x, &n, &c, &hw);
    if (dx)
        (k->to_blocked ? relate_blocked16_to_nchw : relate_nchw_to_blocked16)(dx, k->y->grad, n, c, hw, !store);
}

static relate_tensor *convert(relate_graph *g, relate_tensor *x, bool to_blocked)
{
    if (!x)
        return NULL;
    char s[64];
    if (x->ndim != 4 || x->shape[1] % 16 || x->blocked16 == to_blocked)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "%s: expected an %s [N,C,H,W] tensor with C a multiple of 16, "
                                 "got %s%s", to_blocked ? "to_blocked16" : "from_blocked16",
                                 to_blocked ? "NCHW" : "nChw16c", relate_shape_str(x, s, sizeof s),
                                 x->blocked16 == to_blocked ? " already in that layout" : "");
    relate_tensor *y = relate_op_output_layout(g, 4, x->shape, x, NULL, to_blocked);
    if (!y)
        return NULL;
    int n, c, hw;
    dims_of(x, &n, &c, &hw);
    if (to_blocked)
        relate_nchw_to_blocked16(y->data, x->data, n, c, hw, false);
    else
        relate_blocked16_to_nchw(y->data, x->data, n, c, hw, false);
    if (y->requires_grad && !relate_op_save(g, convert_backward, &(layout_ctx){x, y, to_blocked}, sizeof(layout_ctx)))
        return NULL;
    return y;
}

relate_tensor *relate_to_blocked16(relate_graph *g, relate_tensor *x) { return convert(g, x, true); }

relate_tensor *relate_from_blocked16(relate_graph *g, relate_tensor *x) { return convert(g, x, false); }
