/* ops_pointwise.c: the one-input element-wise graph ops (ReLU, LeakyReLU, sigmoid, scale, exp,
 * log), all recorded the same way from a table of forward/backward kernel adapters.
 * Not the two-input ops (ops_math.c) and not the arithmetic (src/kernels/). */
#include "autograd/graph_internal.h"
#include "kernels/kernels.h"

typedef struct pointwise_kind pointwise_kind;

typedef struct {
    relate_tensor *x, *y;
    float param;
    const pointwise_kind *kind;
} pointwise_ctx;

struct pointwise_kind {
    void (*forward)(float *y, const float *x, float param, size_t n);
    /* dx += f'(x) * dy, given the input x and the output y. */
    void (*backward)(float *dx, const float *dy, const float *x, const float *y, float param, size_t n);
};

static void relu_f(float *y, const float *x, float p, size_t n) { (void)p; relate_relu_forward(y, x, n); }
static void relu_b(float *dx, const float *dy, const float *x, const float *y, float p, size_t n)
{
    (void)x, (void)p;
    relate_relu_backward(dx, dy, y, n);
}
static void leaky_f(float *y, const float *x, float p, size_t n) { relate_leaky_relu_forward(y, x, p, n); }
static void leaky_b(float *dx, const float *dy, const float *x, const float *y, float p, size_t n)
{
    (void)y;
    relate_leaky_relu_backward(dx, dy, x, p, n);
}
static void sigmoid_f(float *y, const float *x, float p, size_t n) { (void)p; relate_sigmoid_forward(y, x, n); }
static void sigmoid_b(float *dx, const float *dy, const float *x, const float *y, float p, size_t n)
{
    (void)x, (void)p;
    relate_sigmoid_backward(dx, dy, y, n);
}
static void scale_f(float *y, const float *x, float p, size_t n) { relate_scale_forward(y, x, p, n); }
static void scale_b(float *dx, const float *dy, const float *x, const float *y, float p, size_t n)
{
    (void)x, (void)y;
    relate_axpy(dx, dy, p, n);
}
static void exp_f(float *y, const float *x, float p, size_t n) { (void)p; relate_exp_forward(y, x, n); }
static void exp_b(float *dx, const float *dy, const float *x, const float *y, float p, size_t n)
{
    (void)x, (void)p;
    relate_exp_backward(dx, dy, y, n);
}
static void log_f(float *y, const float *x, float p, size_t n) { (void)p; relate_log_forward(y, x, n); }
static void log_b(float *dx, const float *dy, const float *x, const float *y, float p, size_t n)
{
    (void)y, (void)p;
    relate_log_backward(dx, dy, x, n);
}

static const pointwise_kind RELU = {relu_f, relu_b}, LEAKY = {leaky_f, leaky_b}, SIGMOID = {sigmoid_f, sigmoid_b},
                            SCALE = {scale_f, scale_b}, EXP = {exp_f, exp_b}, LOG = {log_f, log_b};

static void pointwise_backward(relate_graph *g, void *p)
{
    pointwise_ctx *c = p;
    float *dx = c->y->grad ? relate_grad_of(g, c->x) : NULL;
    if (dx)
        c->kind->backward(dx, c->y->grad, c->x->data, c->y->data, c->param, (size_t)c->x->numel);
}

static relate_tensor *pointwise(relate_graph *g, relate_tensor *x, const pointwise_kind *kind, float param)
{
    if (!x)
        return NULL;
    relate_tensor *y = relate_op_output(g, x->ndim, x->shape, x, NULL);
    if (!y)
        return NULL;
    kind->forward(y->data, x->data, param, (size_t)x->numel);
    pointwise_ctx c = {x, y, param, kind};
    if (y->requires_grad && !relate_op_save(g, pointwise_backward, &c, sizeof c))
        return NULL;
    return y;
}

relate_tensor *relate_relu(relate_graph *g, relate_tensor *x) { return pointwise(g, x, &RELU, 0); }
relate_tensor *relate_leaky_relu(relate_graph *g, relate_tensor *x, float slope) { return pointwise(g, x, &LEAKY, slope); }
relate_tensor *relate_sigmoid(relate_graph *g, relate_tensor *x) { return pointwise(g, x, &SIGMOID, 0); }
relate_tensor *relate_scale(relate_graph *g, relate_tensor *x, float alpha) { return pointwise(g, x, &SCALE, alpha); }
relate_tensor *relate_exp(relate_graph *g, relate_tensor *x) { return pointwise(g, x, &EXP, 0); }
relate_tensor *relate_log(relate_graph *g, relate_tensor *x) { return pointwise(g, x, &LOG, 0); }
