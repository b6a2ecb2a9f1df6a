/* ops_contrastive.c: the graph op of simclr's contrastive loss (kernels/contrastive.c), one fused
 * op so the [2B, 2B] cosine matrix and its exponentials are built once and reused by the backward.
 * Not the projection head: src/methods/simclr.c composes the head's layers with this op. */
#include "autograd/graph_internal.h"
#include "kernels/kernels.h"

#define SHAPE(t, buf) relate_shape_str((t), (buf), sizeof(buf))

typedef struct {
    relate_tensor *z, *y;
    float *s, *e, *norms, *den;
    float tau, eps;
} simclr_ctx;

static void simclr_backward(relate_graph *g, void *p)
{
    simclr_ctx *c = p;
    float *dz = c->y->grad ? relate_grad_of(g, c->z) : NULL;
    if (!dz)
        return;
    const int n = (int)c->z->shape[0], cols = (int)c->z->shape[1];
    float *scratch = relate_graph_workspace(g, 2 * (size_t)n * n * sizeof(float));
    if (!scratch)
        return;
    relate_graph_count(g, 4.0 * n * n * cols, 0); /* both sides of the cosine products */
    relate_simclr_loss_backward(dz, c->y->grad[0], c->s, c->e, c->norms, c->den, c->z->data, n, cols, c->tau,
                                c->eps, scratch);
}

relate_tensor *relate_simclr_loss(relate_graph *g, relate_tensor *z, float tau, float eps)
{
    if (!z)
        return NULL;
    char s1[64];
    if (z->ndim != 2 || z->shape[0] < 2 || z->shape[0] % 2 != 0 || z->shape[1] < 1)
        return relate_graph_fail(g, RELATE_ERR_SHAPE,
                                 "simclr_loss expects z [N,C] with N even and >= 2 (two views per image), got %s",
                                 SHAPE(z, s1));
    if (!(tau > 0))
        return relate_graph_fail(g, RELATE_ERR_ARG, "simclr_loss: temperature %g must be positive", (double)tau);
    const int64_t n = z->shape[0];
    relate_tensor *y = relate_op_output(g, 0, NULL, z, NULL);
    float *s = y ? relate_graph_scratch(g, (size_t)(n * n) * sizeof(float)) : NULL;
    float *e = s ? relate_graph_scratch(g, (size_t)(n * n) * sizeof(float)) : NULL;
    float *norms = e ? relate_graph_scratch(g, (size_t)n * sizeof(float)) : NULL;
    float *den = norms ? relate_graph_scratch(g, (size_t)n * sizeof(float)) : NULL;
    if (!den)
        return NULL;
    y->data[0] = relate_simclr_loss_forward(s, e, norms, den, z->data, (int)n, (int)z->shape[1], tau, eps);
    relate_graph_count(g, 2.0 * (double)n * n * z->shape[1], (double)n * n * sizeof(float));
    if (y->requires_grad &&
        !relate_op_save(g, simclr_backward, &(simclr_ctx){z, y, s, e, norms, den, tau, eps}, sizeof(simclr_ctx)))
        return NULL;
    return y;
}
