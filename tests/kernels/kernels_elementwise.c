/* kernels_elementwise.c: the element-wise kernels and activations (relu, leaky relu, sigmoid,
 * exp, log, scale, sum, add, mul, maximum with its ties and NaN), and the layout kernels roll and
 * concat, against naive references and finite differences.
 * Not row-wise kernels such as log_softmax (those are in kernels_dense.c). */
#include <math.h>
#include <stdlib.h>

#include "kernels/kernels.h"
#include "kernels_harness.h"
#include "test_util.h"

/* ------------------------------------------------------------------ element-wise and activations */
enum { U_RELU, U_LEAKY, U_SIGMOID, U_EXP, U_LOG, U_SCALE, U_SUM, B_ADD, B_MUL, B_MAX };
static const char *const ew_names[] = {"relu", "leaky_relu", "sigmoid", "exp", "log", "scale/axpy",
                                      "sum/fill_add", "add/axpy", "mul", "maximum"};

typedef struct {
    int op;
    float alpha;
    float *tmp;
} ew_aux;

static void ew_fwd(tcase *c, float *y)
{
    ew_aux *a = c->aux;
    const float *x = c->in[0], *b = c->in[1];
    const size_t n = c->nel[0];
    switch (a->op) {
    case U_RELU: relate_relu_forward(y, x, n); break;
    case U_LEAKY: relate_leaky_relu_forward(y, x, a->alpha, n); break;
    case U_SIGMOID: relate_sigmoid_forward(y, x, n); break;
    case U_EXP: relate_exp_forward(y, x, n); break;
    case U_LOG: relate_log_forward(y, x, n); break;
    case U_SCALE: relate_scale_forward(y, x, a->alpha, n); break;
    case U_SUM: y[0] = relate_sum_forward(x, n); break;
    case B_ADD: relate_add_forward(y, x, b, n); break;
    case B_MUL: relate_mul_forward(y, x, b, n); break;
    case B_MAX: relate_maximum_forward(y, x, b, n); break;
    }
}

static void ew_bwd(tcase *c, float *const *g, const float *dy)
{
    ew_aux *a = c->aux;
    const float *x = c->in[0], *b = c->in[1];
    const size_t n = c->nel[0];
    switch (a->op) {
    case U_RELU:
        relate_relu_forward(a->tmp, x, n);
        relate_relu_backward(g[0], dy, a->tmp, n);
        break;
    case U_LEAKY: relate_leaky_relu_backward(g[0], dy, x, a->alpha, n); break;
    case U_SIGMOID:
        relate_sigmoid_forward(a->tmp, x, n);
        relate_sigmoid_backward(g[0], dy, a->tmp, n);
        break;
    case U_EXP:
        relate_exp_forward(a->tmp, x, n);
        relate_exp_backward(g[0], dy, a->tmp, n);
        break;
    case U_LOG: relate_log_backward(g[0], dy, x, n); break;
    case U_SCALE: relate_axpy(g[0], dy, a->alpha, n); break;
    case U_SUM: relate_fill_add(g[0], dy[0], n); break;
    case B_ADD:
        relate_axpy(g[0], dy, 1.0f, n);
        relate_axpy(g[1], dy, 1.0f, n);
        break;
    case B_MUL: relate_mul_backward(g[0], g[1], dy, x, b, n); break;
    case B_MAX: relate_maximum_backward(g[0], g[1], dy, x, b, n); break;
    }
}

static void ew_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    ew_aux *a = c->aux;
    const float *x = c->in[0], *b = c->in[1];
    const size_t n = c->nel[0];
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        const double v = x[i], w = b ? b[i] : 0, gy = a->op == U_SUM ? dy[0] : dy[i];
        double out = 0, gx = 0, gb = 0;
        switch (a->op) {
        case U_RELU: out = v > 0 ? v : 0, gx = v > 0 ? gy : 0; break;
        case U_LEAKY: out = v > 0 ? v : a->alpha * v, gx = v > 0 ? gy : a->alpha * gy; break;
        case U_SIGMOID: out = 1 / (1 + exp(-v)), gx = gy * out * (1 - out); break;
        case U_EXP: out = exp(v), gx = gy * out; break;
        case U_LOG: out = log(v), gx = gy / v; break;
        case U_SCALE: out = a->alpha * v, gx = a->alpha * gy; break;
        case U_SUM: s += v, gx = gy; break;
        case B_ADD: out = v + w, gx = gb = gy; break;
        case B_MUL: out = v * w, gx = gy * w, gb = gy * v; break;
        case B_MAX:
            out = v > w ? v : w;
            gx = v > w ? gy : v == w ? gy / 2 : 0;
            gb = w > v ? gy : v == w ? gy / 2 : 0;
            break;
        }
        if (a->op != U_SUM)
            y[i] = (float)out;
        g[0][i] = (float)gx;
        if (c->nin > 1)
            g[1][i] = (float)gb;
    }
    if (a->op == U_SUM)
        y[0] = (float)s;
}

void test_elementwise(int fd)
{
    static const size_t sizes[] = {1, 37, 70001};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const size_t n = sizes[si];
        for (int op = U_RELU; op <= B_MAX; op++) {
            ew_aux a = {.op = op, .alpha = op == U_LEAKY ? 0.2f : -1.7f, .tmp = falloc(n)};
            char name[128];
            snprintf(name, sizeof name, "%s n%zu t%d", ew_names[op], n, relate_get_threads());
            const int bin = op >= B_ADD;
            tcase c = {.name = name, .nin = bin ? 2 : 1, .in = {frand(n), bin ? frand(n) : NULL},
                       .nel = {n, n}, .ny = op == U_SUM ? 1 : n, .fwd = ew_fwd, .bwd = ew_bwd,
                       .ref = ew_ref, .aux = &a, .h = 1e-2f};
            if (op == U_RELU || op == U_LEAKY)
                push_from_zero(c.in[0], n, 0.05f);
            if (op == U_LOG)
                for (size_t i = 0; i < n; i++)
                    c.in[0][i] = 1.0f + 0.5f * c.in[0][i];
            if (op == B_MAX) /* b sits at least 0.05 above or below a */
                for (size_t i = 0; i < n; i++)
                    c.in[1][i] = c.in[0][i] + (c.in[1][i] >= 0 ? 0.05f + c.in[1][i] : -0.05f + c.in[1][i]);
            run_case(&c, fd);
            if (op == B_MAX && n > 1) {
                /* Exact ties split the gradient in halves (PyTorch 1.13); not an FD case. */
                for (size_t i = 0; i < n; i += 3)
                    c.in[1][i] = c.in[0][i];
                snprintf(name, sizeof name, "maximum with ties n%zu t%d", n, relate_get_threads());
                run_case(&c, 0);
            }
            free(c.in[0]);
            free(c.in[1]);
            free(a.tmp);
        }
    }
    /* NaN propagation of relu and maximum, as torch. */
    float x[2] = {NAN, 1.0f}, y[2], b[2] = {0.0f, NAN};
    relate_relu_forward(y, x, 2);
    CHECK(isnan(y[0]) && y[1] == 1.0f);
    relate_maximum_forward(y, x, b, 2);
    CHECK(isnan(y[0]) && isnan(y[1]));
    /* sum is accumulated in double: 2^24 + 1 + 1 ... stays exact where a float sum would stall. */
    const size_t big = 3000;
    float *ones = falloc(big);
    for (size_t i = 0; i < big; i++)
        ones[i] = i == 0 ? 16777216.0f : 1.0f;
    CHECK(relate_sum_forward(ones, big) == 16777216.0f + 3000.0f - 1.0f);
    free(ones);
}

/* ------------------------------------------------------------------ roll and concat */
typedef struct {
    int n, shift, ca, cb;
    size_t row;
} shape_aux;

static void roll_fwd(tcase *c, float *y)
{
    shape_aux *a = c->aux;
    relate_roll_rows_forward(y, c->in[0], a->n, a->row, a->shift);
}

static void roll_bwd(tcase *c, float *const *g, const float *dy)
{
    shape_aux *a = c->aux;
    relate_roll_rows_backward(g[0], dy, a->n, a->row, a->shift);
}

static int mod(int a, int n)
{
    return ((a % n) + n) % n;
}

static void roll_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    shape_aux *a = c->aux;
    for (int i = 0; i < a->n; i++)
        for (size_t j = 0; j < a->row; j++) {
            y[i * a->row + j] = c->in[0][mod(i - a->shift, a->n) * a->row + j];
            g[0][mod(i - a->shift, a->n) * a->row + j] += dy[i * a->row + j];
        }
}

static void cat_fwd(tcase *c, float *y)
{
    shape_aux *a = c->aux;
    relate_concat_cols_forward(y, c->in[0], c->in[1], a->n, a->ca, a->cb);
}

static void cat_bwd(tcase *c, float *const *g, const float *dy)
{
    shape_aux *a = c->aux;
    relate_concat_cols_backward(g[0], g[1], dy, a->n, a->ca, a->cb);
}

static void cat_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    shape_aux *a = c->aux;
    const int cy = a->ca + a->cb;
    for (int i = 0; i < a->n; i++)
        for (int j = 0; j < cy; j++) {
            const int left = j < a->ca;
            const size_t src = left ? (size_t)i * a->ca + j : (size_t)i * a->cb + (j - a->ca);
            y[(size_t)i * cy + j] = c->in[left ? 0 : 1][src];
            g[left ? 0 : 1][src] = dy[(size_t)i * cy + j];
        }
}

void test_shape_ops(int fd)
{
    static const int rolls[][3] = {{5, 3, 1}, {5, 3, -2}, {4, 2, 9}, {1, 7, 1}, {6, 1, 0}, {3, 4, -7}};
    for (size_t s = 0; s < sizeof rolls / sizeof rolls[0]; s++) {
        shape_aux a = {.n = rolls[s][0], .row = (size_t)rolls[s][1], .shift = rolls[s][2]};
        const size_t tot = a.n * a.row;
        char name[96];
        snprintf(name, sizeof name, "roll n%d row%zu shift%d", a.n, a.row, a.shift);
        tcase c = {.name = name, .nin = 1, .in = {frand(tot)}, .nel = {tot}, .ny = tot,
                   .fwd = roll_fwd, .bwd = roll_bwd, .ref = roll_ref, .aux = &a, .h = 1e-2f};
        run_case(&c, fd);
        free(c.in[0]);
    }
    static const int cats[][3] = {{3, 2, 5}, {1, 1, 1}, {4, 7, 3}};
    for (size_t s = 0; s < sizeof cats / sizeof cats[0]; s++) {
        shape_aux a = {.n = cats[s][0], .ca = cats[s][1], .cb = cats[s][2]};
        char name[96];
        snprintf(name, sizeof name, "concat cols n%d ca%d cb%d", a.n, a.ca, a.cb);
        const size_t na = (size_t)a.n * a.ca, nb = (size_t)a.n * a.cb;
        tcase c = {.name = name, .nin = 2, .in = {frand(na), frand(nb)}, .nel = {na, nb},
                   .ny = na + nb, .fwd = cat_fwd, .bwd = cat_bwd, .ref = cat_ref, .aux = &a, .h = 1e-2f};
        run_case(&c, fd);
        free(c.in[0]);
        free(c.in[1]);
    }
}
