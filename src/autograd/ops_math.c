/* ops_math.c: element-wise, reduction, shape and matrix ops of the graph.
 * Not the layer ops (ops_nn.c) or the losses (ops_loss.c). */
#include <string.h>

#include "autograd/graph_internal.h"
#include "kernels/kernels.h"

#define SHAPE(t, buf) relate_shape_str((t), (buf), sizeof(buf))

static bool same_shape(const relate_tensor *a, const relate_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return false;
    return true;
}

/* ------------------------------------------------------------------ binary element-wise */
typedef struct {
    relate_tensor *a, *b, *y;
} bin_ctx;

static void add_backward(relate_graph *g, void *p)
{
    bin_ctx *c = p;
    if (!c->y->grad)
        return;
    float *da = relate_grad_of(g, c->a), *db = relate_grad_of(g, c->b);
    if (da)
        relate_axpy(da, c->y->grad, 1.0f, (size_t)c->y->numel);
    if (db)
        relate_axpy(db, c->y->grad, 1.0f, (size_t)c->y->numel);
}

static void mul_backward(relate_graph *g, void *p)
{
    bin_ctx *c = p;
    if (c->y->grad)
        relate_mul_backward(relate_grad_of(g, c->a), relate_grad_of(g, c->b), c->y->grad, c->a->data,
                            c->b->data, (size_t)c->y->numel);
}

static void maximum_backward(relate_graph *g, void *p)
{
    bin_ctx *c = p;
    if (c->y->grad)
        relate_maximum_backward(relate_grad_of(g, c->a), relate_grad_of(g, c->b), c->y->grad,
                                c->a->data, c->b->data, (size_t)c->y->numel);
}

static relate_tensor *binary(relate_graph *g, relate_tensor *a, relate_tensor *b, int kind, const char *name)
{
    if (!a || !b)
        return NULL;
    char s1[64], s2[64];
    if (!same_shape(a, b))
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "%s: shapes %s and %s differ", name, SHAPE(a, s1), SHAPE(b, s2));
    relate_tensor *y = relate_op_output(g, a->ndim, a->shape, a, b);
    if (!y)
        return NULL;
    size_t n = (size_t)a->numel;
    relate_backward_fn fn;
    if (kind == 0) {
        relate_add_forward(y->data, a->data, b->data, n);
        fn = add_backward;
    } else if (kind == 1) {
        relate_mul_forward(y->data, a->data, b->data, n);
        fn = mul_backward;
    } else {
        relate_maximum_forward(y->data, a->data, b->data, n);
        fn = maximum_backward;
    }
    if (y->requires_grad && !relate_op_save(g, fn, &(bin_ctx){a, b, y}, sizeof(bin_ctx)))
        return NULL;
    return y;
}

relate_tensor *relate_add(relate_graph *g, relate_tensor *a, relate_tensor *b) { return binary(g, a, b, 0, "add"); }
relate_tensor *relate_mul(relate_graph *g, relate_tensor *a, relate_tensor *b) { return binary(g, a, b, 1, "mul"); }
relate_tensor *relate_maximum(relate_graph *g, relate_tensor *a, relate_tensor *b) { return binary(g, a, b, 2, "maximum"); }

/* ------------------------------------------------------------------ reductions */
typedef struct {
    relate_tensor *a, *y;
    float alpha;
} sum_ctx;

static void sum_backward(relate_graph *g, void *p)
{
    sum_ctx *c = p;
    float *dx = c->y->grad ? relate_grad_of(g, c->a) : NULL;
    if (dx)
        relate_fill_add(dx, c->y->grad[0] * c->alpha, (size_t)c->a->numel);
}

static relate_tensor *reduce(relate_graph *g, relate_tensor *x, bool mean)
{
    if (!x)
        return NULL;
    if (x->numel == 0 && mean)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "mean of an empty tensor");
    relate_tensor *y = relate_op_output(g, 0, NULL, x, NULL);
    if (!y)
        return NULL;
    float s = relate_sum_forward(x->data, (size_t)x->numel);
    /* torch.mean divides the float32 sum by the count in float32. */
    y->data[0] = mean ? s / (float)x->numel : s;
    sum_ctx c = {x, y, mean ? 1.0f / (float)x->numel : 1.0f};
    if (y->requires_grad && !relate_op_save(g, sum_backward, &c, sizeof c))
        return NULL;
    return y;
}

relate_tensor *relate_sum(relate_graph *g, relate_tensor *x) { return reduce(g, x, false); }
relate_tensor *relate_mean(relate_graph *g, relate_tensor *x) { return reduce(g, x, true); }

/* ------------------------------------------------------------------ shape ops */
typedef struct {
    relate_tensor *a, *b, *y;
    int64_t start, shift;
    int dim;
} move_ctx;

static void concat_backward(relate_graph *g, void *p)
{
    move_ctx *c = p;
    if (!c->y->grad)
        return;
    float *da = relate_grad_of(g, c->a), *db = relate_grad_of(g, c->b);
    if (c->dim == 0) {
        if (da)
            relate_axpy(da, c->y->grad, 1.0f, (size_t)c->a->numel);
        if (db)
            relate_axpy(db, c->y->grad + c->a->numel, 1.0f, (size_t)c->b->numel);
    } else {
        relate_concat_cols_backward(da, db, c->y->grad, (int)c->a->shape[0], (int)c->a->shape[1],
                                    (int)c->b->shape[1]);
    }
}

relate_tensor *relate_concat(relate_graph *g, relate_tensor *a, relate_tensor *b, int dim)
{
    if (!a || !b)
        return NULL;
    char s1[64], s2[64];
    bool ok = a->ndim == b->ndim && (dim == 0 || (dim == 1 && a->ndim == 2));
    for (int d = 0; ok && d < a->ndim; d++)
        if (d != dim && a->shape[d] != b->shape[d])
            ok = false;
    if (!ok)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "concat along dim %d: shapes %s and %s do not fit",
                                 dim, SHAPE(a, s1), SHAPE(b, s2));
    int64_t shape[RELATE_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[dim] = a->shape[dim] + b->shape[dim];
    relate_tensor *y = relate_op_output(g, a->ndim, shape, a, b);
    if (!y)
        return NULL;
    if (dim == 0) {
        memcpy(y->data, a->data, (size_t)a->numel * sizeof(float));
        memcpy(y->data + a->numel, b->data, (size_t)b->numel * sizeof(float));
    } else {
        relate_concat_cols_forward(y->data, a->data, b->data, (int)a->shape[0], (int)a->shape[1],
                                   (int)b->shape[1]);
    }
    if (y->requires_grad && !relate_op_save(g, concat_backward, &(move_ctx){a, b, y, 0, 0, dim}, sizeof(move_ctx)))
        return NULL;
    return y;
}

static void slice_backward(relate_graph *g, void *p)
{
    move_ctx *c = p;
    float *dx = c->y->grad ? relate_grad_of(g, c->a) : NULL;
    if (dx) {
        size_t row = (size_t)(c->a->numel / c->a->shape[0]);
        relate_axpy(dx + (size_t)c->start * row, c->y->grad, 1.0f, (size_t)c->y->numel);
    }
}

relate_tensor *relate_slice_rows(relate_graph *g, relate_tensor *x, int64_t start, int64_t count)
{
    if (!x)
        return NULL;
    char s1[64];
    if (x->ndim < 1 || start < 0 || count < 0 || start + count > x->shape[0])
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "slice rows [%lld, %lld) out of range for %s",
                                 (long long)start, (long long)(start + count), SHAPE(x, s1));
    int64_t shape[RELATE_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[0] = count;
    relate_tensor *y = relate_op_output(g, x->ndim, shape, x, NULL);
    if (!y)
        return NULL;
    size_t row = x->shape[0] ? (size_t)(x->numel / x->shape[0]) : 0;
    memcpy(y->data, x->data + (size_t)start * row, (size_t)y->numel * sizeof(float));
    if (y->requires_grad && !relate_op_save(g, slice_backward, &(move_ctx){x, NULL, y, start, 0, 0}, sizeof(move_ctx)))
        return NULL;
    return y;
}

static void slice_cols_backward(relate_graph *g, void *p)
{
    move_ctx *c = p;
    float *dx = c->y->grad ? relate_grad_of(g, c->a) : NULL;
    if (!dx)
        return;
    const int64_t rows = c->a->shape[0], cols = c->a->shape[1], count = c->y->shape[1];
    for (int64_t r = 0; r < rows; r++)
        relate_axpy(dx + r * cols + c->start, c->y->grad + r * count, 1.0f, (size_t)count);
}

relate_tensor *relate_slice_cols(relate_graph *g, relate_tensor *x, int64_t start, int64_t count)
{
    if (!x)
        return NULL;
    char s1[64];
    if (x->ndim != 2 || start < 0 || count < 0 || start + count > x->shape[1])
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "slice columns [%lld, %lld) out of range for %s",
                                 (long long)start, (long long)(start + count), SHAPE(x, s1));
    relate_tensor *y = relate_op_output(g, 2, (int64_t[]){x->shape[0], count}, x, NULL);
    if (!y)
        return NULL;
    for (int64_t r = 0; r < x->shape[0]; r++)
        memcpy(y->data + r * count, x->data + r * x->shape[1] + start, (size_t)count * sizeof(float));
    if (y->requires_grad && !relate_op_save(g, slice_cols_backward, &(move_ctx){x, NULL, y, start, 0, 1}, sizeof(move_ctx)))
        return NULL;
    return y;
}

static void roll_backward(relate_graph *g, void *p)
{
    move_ctx *c = p;
    float *dx = c->y->grad ? relate_grad_of(g, c->a) : NULL;
    if (dx)
        relate_roll_rows_backward(dx, c->y->grad, (int)c->a->shape[0],
                                  (size_t)(c->a->numel / c->a->shape[0]), (int)c->shift);
}

relate_tensor *relate_roll_rows(relate_graph *g, relate_tensor *x, int64_t shift)
{
    if (!x)
        return NULL;
    if (x->ndim < 1 || x->shape[0] == 0)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "roll of an empty tensor");
    int64_t n = x->shape[0];
    shift = ((shift % n) + n) % n;
    relate_tensor *y = relate_op_output(g, x->ndim, x->shape, x, NULL);
    if (!y)
        return NULL;
    relate_roll_rows_forward(y->data, x->data, (int)n, (size_t)(x->numel / n), (int)shift);
    if (y->requires_grad && !relate_op_save(g, roll_backward, &(move_ctx){x, NULL, y, 0, shift, 0}, sizeof(move_ctx)))
        return NULL;
    return y;
}

static void reshape_backward(relate_graph *g, void *p)
{
    move_ctx *c = p;
    float *dx = c->y->grad ? relate_grad_of(g, c->a) : NULL;
    if (dx)
        relate_axpy(dx, c->y->grad, 1.0f, (size_t)c->y->numel);
}

relate_tensor *relate_reshape(relate_graph *g, relate_tensor *x, int ndim, const int64_t *shape)
{
    if (!x)
        return NULL;
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++)
        numel *= shape[d];
    char s1[64];
    if (ndim < 0 || ndim > RELATE_MAX_DIMS || numel != x->numel)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "reshape: %s has %lld elements, the new shape %lld",
                                 SHAPE(x, s1), (long long)x->numel, (long long)numel);
    /* A view: the data is shared; the gradient gets its own buffer and is added back. */
    relate_tensor *y = relate_tensor_wrap(g, ndim, shape, x->data);
    if (!y)
        return NULL;
    y->requires_grad = x->requires_grad && g->grad_enabled;
    if (y->requires_grad && !relate_op_save(g, reshape_backward, &(move_ctx){x, NULL, y, 0, 0, 0}, sizeof(move_ctx)))
        return NULL;
    return y;
}

/* ------------------------------------------------------------------ matmul */
typedef struct {
    relate_tensor *a, *b, *y;
    int m, n, k;
    bool ta, tb;
} mm_ctx;

static void matmul_backward(relate_graph *g, void *p)
{
    mm_ctx *c = p;
    if (!c->y->grad)
        return;
    float *da = relate_grad_of(g, c->a), *db = relate_grad_of(g, c->b);
    relate_graph_count(g, 2.0 * c->m * c->n * c->k * ((da != NULL) + (db != NULL)), 0);
    relate_matmul_backward(da, db, c->y->grad, c->a->data, c->b->data, c->m, c->n, c->k, c->ta, c->tb);
}

relate_tensor *relate_matmul(relate_graph *g, relate_tensor *a, relate_tensor *b, bool trans_a, bool trans_b)
{
    if (!a || !b)
        return NULL;
    char s1[64], s2[64];
    if (a->ndim != 2 || b->ndim != 2)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "matmul needs 2-D tensors, got %s and %s", SHAPE(a, s1), SHAPE(b, s2));
    int64_t m = trans_a ? a->shape[1] : a->shape[0], ka = trans_a ? a->shape[0] : a->shape[1];
    int64_t kb = trans_b ? b->shape[1] : b->shape[0], n = trans_b ? b->shape[0] : b->shape[1];
    if (ka != kb)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "matmul: inner dimensions differ (%s%s x %s%s)",
                                 SHAPE(a, s1), trans_a ? "^T" : "", SHAPE(b, s2), trans_b ? "^T" : "");
    relate_tensor *y = relate_op_output(g, 2, (int64_t[]){m, n}, a, b);
    if (!y)
        return NULL;
    relate_matmul_forward(y->data, a->data, b->data, (int)m, (int)n, (int)ka, trans_a, trans_b);
    relate_graph_count(g, 2.0 * m * n * ka, (double)y->numel * sizeof(float));
    if (y->requires_grad && !relate_op_save(g, matmul_backward, &(mm_ctx){a, b, y, (int)m, (int)n, (int)ka, trans_a, trans_b}, sizeof(mm_ctx)))
        return NULL;
    return y;
}

/* ------------------------------------------------------------------ softmax family */
typedef struct {
    relate_tensor *x, *y;
    float *norms;
    float eps;
} row_ctx;

static void log_softmax_backward(relate_graph *g, void *p)
{
    row_ctx *c = p;
    float *dx = c->y->grad ? relate_grad_of(g, c->x) : NULL;
    if (dx)
        relate_log_softmax_backward(dx, c->y->grad, c->y->data, (int)c->x->shape[0], (int)c->x->shape[1]);
}

relate_tensor *relate_log_softmax(relate_graph *g, relate_tensor *x)
{
    if (!x)
        return NULL;
    char s1[64];
    if (x->ndim != 2)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "log_softmax expects [N,C], got %s", SHAPE(x, s1));
    relate_tensor *y = relate_op_output(g, 2, x->shape, x, NULL);
    if (!y)
        return NULL;
    relate_log_softmax_forward(y->data, x->data, (int)x->shape[0], (int)x->shape[1]);
    if (y->requires_grad && !relate_op_save(g, log_softmax_backward, &(row_ctx){x, y, NULL, 0}, sizeof(row_ctx)))
        return NULL;
    return y;
}

static void normalize_backward(relate_graph *g, void *p)
{
    row_ctx *c = p;
    float *dx = c->y->grad ? relate_grad_of(g, c->x) : NULL;
    if (dx)
        relate_l2_normalize_backward(dx, c->y->grad, c->x->data, c->norms, (int)c->x->shape[0],
                                     (int)c->x->shape[1], c->eps);
}

relate_tensor *relate_l2_normalize(relate_graph *g, relate_tensor *x, float eps)
{
    if (!x)
        return NULL;
    char s1[64];
    if (x->ndim != 2)
        return relate_graph_fail(g, RELATE_ERR_SHAPE, "l2_normalize expects [N,C], got %s", SHAPE(x, s1));
    relate_tensor *y = relate_op_output(g, 2, x->shape, x, NULL);
    float *norms = y ? relate_graph_scratch(g, (size_t)x->shape[0] * sizeof(float)) : NULL;
    if (!norms)
        return NULL;
    relate_l2_normalize_forward(y->data, norms, x->data, (int)x->shape[0], (int)x->shape[1], eps);
    if (y->requires_grad && !relate_op_save(g, normalize_backward, &(row_ctx){x, y, norms, eps}, sizeof(row_ctx)))
        return NULL;
    return y;
}
