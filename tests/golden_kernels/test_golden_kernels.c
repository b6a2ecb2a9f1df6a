/* test_golden_kernels.c: every kernel of src/kernels/kernels.h against PyTorch 1.13 goldens
 * (tests/golden/kernels.safetensors, written by tools/golden_kernels.py): forward outputs and
 * the input/parameter gradients of torch autograd for a given upstream gradient.
 * Not a finite-difference or fast-vs-ref test beyond conv's `_ref` twins, and not a graph test.
 *
 * Forward outputs are written into NaN-filled buffers (a forward must overwrite every element).
 * Every backward is called twice on buffers that start at zero: after the first call the
 * gradient must equal torch's, after the second twice torch's (backward kernels accumulate).
 * Bound: 1e-4 norm-wise relative error (max|got-want| / max|want|) everywhere. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "test_util.h"

#define BOUND 1e-4

static relate_safetensors st;
static json_t *meta; /* settings of the current case */
static const char *cur; /* current case name */

/* ------------------------------------------------------------------------------- helpers */
static void *bufs[64];
static int nbufs;

static void *track(void *p)
{
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    if (nbufs == (int)(sizeof bufs / sizeof bufs[0])) {
        fprintf(stderr, "too many buffers in one case\n");
        exit(1);
    }
    bufs[nbufs++] = p;
    return p;
}

/* Output buffer: NaN everywhere, so an element a forward forgets to write fails the check. */
static float *out_buf(size_t n)
{
    float *p = track(malloc((n ? n : 1) * sizeof(float)));
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
    return p;
}

/* Gradient buffer: zeros (backward kernels accumulate). */
static float *grad_buf(size_t n) { return track(calloc(n ? n : 1, sizeof(float))); }

static const char *visited[128];
static int nvisited;

static int begin(const char *name)
{
    cur = name;
    if (nvisited < (int)(sizeof visited / sizeof visited[0]))
        visited[nvisited++] = name;
    nbufs = 0;
    const char *s = relate_safetensors_meta(&st, name);
    CHECK_MSG(s != NULL, "golden case %s has no settings", name);
    if (!s)
        return 0;
    json_error_t jerr;
    meta = json_loads(s, 0, &jerr);
    CHECK_MSG(meta != NULL, "%s: bad settings JSON: %s", name, jerr.text);
    return meta != NULL;
}

static void end(void)
{
    for (int i = 0; i < nbufs; i++)
        free(bufs[i]);
    nbufs = 0;
    json_decref(meta);
    meta = NULL;
}

static int mi(const char *key)
{
    json_t *v = json_object_get(meta, key);
    if (!json_is_integer(v)) {
        CHECK_MSG(0, "%s: setting %s missing or not an integer", cur, key);
        return 0;
    }
    return (int)json_integer_value(v);
}

static double md(const char *key)
{
    json_t *v = json_object_get(meta, key);
    if (!json_is_number(v)) {
        CHECK_MSG(0, "%s: setting %s missing or not a number", cur, key);
        return 0;
    }
    return json_number_value(v);
}

/* Golden F32 tensor `<case>.<tensor>` with `numel` elements; exits the case (NULL) if absent. */
static const float *G(const char *tensor, size_t numel)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", cur, tensor);
    return relate_test_golden(&st, name, (int64_t)numel);
}

static const int32_t *GI(const char *tensor, size_t numel)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", cur, tensor);
    const relate_st_tensor *t = relate_safetensors_find(&st, name);
    CHECK_MSG(t && strcmp(t->dtype, "I32") == 0 && t->numel == (int64_t)numel, "golden %s", name);
    return t && strcmp(t->dtype, "I32") == 0 && t->numel == (int64_t)numel ? t->data : NULL;
}

/* Compares got with times * want ("<case> <what>" in messages). */
static void cmp(const char *what, const float *got, const float *want, size_t n, int times)
{
    char name[160];
    if (!want)
        return;
    const float *w = want;
    float *scaled = NULL;
    if (times != 1) {
        scaled = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++)
            scaled[i] = (float)times * want[i];
        w = scaled;
    }
    snprintf(name, sizeof name, "%s %s%s", cur, what, times == 2 ? " (accumulated twice)" : "");
    relate_test_check_close(name, got, w, n, BOUND);
    free(scaled);
}

static void cmp_scalar(const char *what, float got, const float *want)
{
    cmp(what, &got, want, 1, 1);
}

#define NEED(...)                                                                          \
    do {                                                                                   \
        const void *need_[] = {__VA_ARGS__};                                               \
        for (size_t i_ = 0; i_ < sizeof need_ / sizeof need_[0]; i_++)                     \
            if (!need_[i_]) {                                                              \
                end();                                                                     \
                return;                                                                    \
            }                                                                              \
    } while (0)

/* ------------------------------------------------------------------------------- convolution */
static void test_conv(const char *name)
{
    if (!begin(name))
        return;
    relate_conv2d_dims d = {.n = mi("n"), .c = mi("c"), .h = mi("h"), .w = mi("w"), .o = mi("o"),
                            .kh = mi("kh"), .kw = mi("kw"), .stride = mi("stride"), .pad = mi("pad")};
    CHECK(relate_conv2d_dims_init(&d) == 0);
    CHECK_MSG(d.ho == mi("ho") && d.wo == mi("wo"), "%s: output %dx%d", name, d.ho, d.wo);
    size_t nx = (size_t)d.n * d.c * d.h * d.w, nw = (size_t)d.o * d.c * d.kh * d.kw,
           ny = (size_t)d.n * d.o * d.ho * d.wo;
    const float *x = G("x", nx), *w = G("w", nw), *y = G("y", ny), *dy = G("dy", ny),
                *dx = G("dx", nx), *dw = G("dw", nw);
    NEED(x, w, y, dy, dx, dw);
    float *scratch = track(malloc((relate_conv2d_scratch_floats(&d, relate_get_threads()) + 1) * sizeof(float)));

    float *yo = out_buf(ny);
    relate_conv2d_forward(yo, x, w, &d, scratch);
    cmp("y", yo, y, ny, 1);
    float *gx = grad_buf(nx), *gw = grad_buf(nw);
    for (int t = 1; t <= 2; t++) {
        relate_conv2d_backward(gx, gw, dy, x, w, &d, scratch);
        cmp("dx", gx, dx, nx, t);
        cmp("dw", gw, dw, nw, t);
    }
    /* One gradient at a time (the other pointer NULL). */
    float *gx1 = grad_buf(nx), *gw1 = grad_buf(nw);
    relate_conv2d_backward(gx1, NULL, dy, x, w, &d, scratch);
    relate_conv2d_backward(NULL, gw1, dy, x, w, &d, scratch);
    cmp("dx only", gx1, dx, nx, 1);
    cmp("dw only", gw1, dw, nw, 1);

    /* The naive twins. */
    float *yr = out_buf(ny);
    relate_conv2d_forward_ref(yr, x, w, &d);
    cmp("y ref", yr, y, ny, 1);
    float *gxr = grad_buf(nx), *gwr = grad_buf(nw);
    for (int t = 1; t <= 2; t++) {
        relate_conv2d_backward_ref(gxr, gwr, dy, x, w, &d);
        cmp("dx ref", gxr, dx, nx, t);
        cmp("dw ref", gwr, dw, nw, t);
    }
    end();
}

/* ------------------------------------------------------------------------------- batch norm */
static void test_bn_train(const char *name)
{
    if (!begin(name))
        return;
    int n = mi("n"), c = mi("c"), hw = mi("hw");
    float momentum = (float)md("momentum"), eps = (float)md("eps");
    size_t nx = (size_t)n * c * hw;
    const float *x = G("x", nx), *gamma = G("gamma", c), *beta = G("beta", c),
                *rm0 = G("running_mean0", c), *rv0 = G("running_var0", c), *y = G("y", nx),
                *smean = G("saved_mean", c), *sinv = G("saved_invstd", c),
                *rm = G("running_mean", c), *rv = G("running_var", c), *dy = G("dy", nx),
                *dx = G("dx", nx), *dgamma = G("dgamma", c), *dbeta = G("dbeta", c);
    NEED(x, gamma, beta, rm0, rv0, y, smean, sinv, rm, rv, dy, dx, dgamma, dbeta);
    float *yo = out_buf(nx), *mean = out_buf(c), *invstd = out_buf(c);
    float *run_m = track(malloc(c * sizeof(float))), *run_v = track(malloc(c * sizeof(float)));
    memcpy(run_m, rm0, c * sizeof(float));
    memcpy(run_v, rv0, c * sizeof(float));
    relate_batchnorm_forward_train(yo, mean, invstd, x, gamma, beta, run_m, run_v, n, c, hw, momentum, eps);
    cmp("y", yo, y, nx, 1);
    cmp("saved_mean", mean, smean, c, 1);
    cmp("saved_invstd", invstd, sinv, c, 1);
    cmp("running_mean", run_m, rm, c, 1);
    cmp("running_var", run_v, rv, c, 1);

    /* No running statistics: same output. */
    float *y2 = out_buf(nx), *mean2 = out_buf(c), *invstd2 = out_buf(c);
    relate_batchnorm_forward_train(y2, mean2, invstd2, x, gamma, beta, NULL, NULL, n, c, hw, momentum, eps);
    cmp("y (no running stats)", y2, y, nx, 1);

    float *gx = grad_buf(nx), *gg = grad_buf(c), *gb = grad_buf(c);
    for (int t = 1; t <= 2; t++) {
        relate_batchnorm_backward_train(gx, gg, gb, dy, x, mean, invstd, gamma, n, c, hw);
        cmp("dx", gx, dx, nx, t);
        cmp("dgamma", gg, dgamma, c, t);
        cmp("dbeta", gb, dbeta, c, t);
    }
    float *gx1 = grad_buf(nx);
    relate_batchnorm_backward_train(gx1, NULL, NULL, dy, x, mean, invstd, gamma, n, c, hw);
    cmp("dx only", gx1, dx, nx, 1);
    end();
}

static void test_bn_eval(const char *name)
{
    if (!begin(name))
        return;
    int n = mi("n"), c = mi("c"), hw = mi("hw");
    float eps = (float)md("eps");
    size_t nx = (size_t)n * c * hw;
    const float *x = G("x", nx), *gamma = G("gamma", c), *beta = G("beta", c),
                *rm = G("running_mean", c), *rv = G("running_var", c), *y = G("y", nx),
                *dy = G("dy", nx), *dx = G("dx", nx), *dgamma = G("dgamma", c), *dbeta = G("dbeta", c);
    NEED(x, gamma, beta, rm, rv, y, dy, dx, dgamma, dbeta);
    float *yo = out_buf(nx);
    relate_batchnorm_forward_eval(yo, x, gamma, beta, rm, rv, n, c, hw, eps);
    cmp("y", yo, y, nx, 1);
    float *gx = grad_buf(nx), *gg = grad_buf(c), *gb = grad_buf(c);
    for (int t = 1; t <= 2; t++) {
        relate_batchnorm_backward_eval(gx, gg, gb, dy, x, gamma, rm, rv, n, c, hw, eps);
        cmp("dx", gx, dx, nx, t);
        cmp("dgamma", gg, dgamma, c, t);
        cmp("dbeta", gb, dbeta, c, t);
    }
    end();
}

/* ------------------------------------------------------------------------------- activations */
enum unary_kind { U_RELU, U_LEAKY, U_SIGMOID, U_EXP, U_LOG };

static void test_unary(const char *name, enum unary_kind kind)
{
    if (!begin(name))
        return;
    size_t n = (size_t)mi("count");
    float slope = kind == U_LEAKY ? (float)md("slope") : 0.0f;
    const float *x = G("x", n), *y = G("y", n), *dy = G("dy", n), *dx = G("dx", n);
    NEED(x, y, dy, dx);
    float *yo = out_buf(n), *gx = grad_buf(n);
    switch (kind) {
    case U_RELU: relate_relu_forward(yo, x, n); break;
    case U_LEAKY: relate_leaky_relu_forward(yo, x, slope, n); break;
    case U_SIGMOID: relate_sigmoid_forward(yo, x, n); break;
    case U_EXP: relate_exp_forward(yo, x, n); break;
    case U_LOG: relate_log_forward(yo, x, n); break;
    }
    cmp("y", yo, y, n, 1);
    for (int t = 1; t <= 2; t++) {
        switch (kind) {
        case U_RELU: relate_relu_backward(gx, dy, yo, n); break;
        case U_LEAKY: relate_leaky_relu_backward(gx, dy, x, slope, n); break;
        case U_SIGMOID: relate_sigmoid_backward(gx, dy, yo, n); break;
        case U_EXP: relate_exp_backward(gx, dy, yo, n); break;
        case U_LOG: relate_log_backward(gx, dy, x, n); break;
        }
        cmp("dx", gx, dx, n, t);
    }
    end();
}

/* ------------------------------------------------------------------------------- pooling */
static void test_pool(const char *name, int is_max)
{
    if (!begin(name))
        return;
    relate_pool2d_dims d = {.n = mi("n"), .c = mi("c"), .h = mi("h"), .w = mi("w"), .k = mi("k"),
                            .stride = mi("stride"), .pad = mi("pad")};
    CHECK(relate_pool2d_dims_init(&d) == 0);
    CHECK_MSG(d.ho == mi("ho") && d.wo == mi("wo"), "%s: output %dx%d", name, d.ho, d.wo);
    size_t nx = (size_t)d.n * d.c * d.h * d.w, ny = (size_t)d.n * d.c * d.ho * d.wo;
    const float *x = G("x", nx), *y = G("y", ny), *dy = G("dy", ny), *dx = G("dx", nx);
    NEED(x, y, dy, dx);
    float *yo = out_buf(ny), *gx = grad_buf(nx);
    int32_t *am = NULL;
    if (is_max) {
        const int32_t *want = GI("argmax", ny);
        NEED(want);
        am = track(malloc(ny * sizeof(int32_t)));
        for (size_t i = 0; i < ny; i++)
            am[i] = -1;
        relate_maxpool2d_forward(yo, am, x, &d);
        size_t bad = 0;
        for (size_t i = 0; i < ny; i++)
            bad += am[i] != want[i];
        CHECK_MSG(bad == 0, "%s: %zu argmax entries differ from PyTorch (ties keep the first)", name, bad);
    } else {
        relate_avgpool2d_forward(yo, x, &d);
    }
    cmp("y", yo, y, ny, 1);
    for (int t = 1; t <= 2; t++) {
        if (is_max)
            relate_maxpool2d_backward(gx, dy, am, &d);
        else
            relate_avgpool2d_backward(gx, dy, &d);
        cmp("dx", gx, dx, nx, t);
    }
    end();
}

static void test_global_avgpool(void)
{
    if (!begin("global_avgpool"))
        return;
    int n = mi("n"), c = mi("c"), hw = mi("hw");
    size_t nx = (size_t)n * c * hw, ny = (size_t)n * c;
    const float *x = G("x", nx), *y = G("y", ny), *dy = G("dy", ny), *dx = G("dx", nx);
    NEED(x, y, dy, dx);
    float *yo = out_buf(ny), *gx = grad_buf(nx);
    relate_global_avgpool_forward(yo, x, n, c, hw);
    cmp("y", yo, y, ny, 1);
    for (int t = 1; t <= 2; t++) {
        relate_global_avgpool_backward(gx, dy, n, c, hw);
        cmp("dx", gx, dx, nx, t);
    }
    end();
}

/* ------------------------------------------------------------------------------- element-wise */
enum binary_kind { B_ADD, B_MUL, B_MAX };

static void test_binary(const char *name, enum binary_kind kind)
{
    if (!begin(name))
        return;
    size_t n = (size_t)mi("count");
    const float *a = G("a", n), *b = G("b", n), *y = G("y", n), *dy = G("dy", n),
                *da = G("da", n), *db = G("db", n);
    NEED(a, b, y, dy, da, db);
    float *yo = out_buf(n), *ga = grad_buf(n), *gb = grad_buf(n);
    if (kind == B_ADD)
        relate_add_forward(yo, a, b, n);
    else if (kind == B_MUL)
        relate_mul_forward(yo, a, b, n);
    else
        relate_maximum_forward(yo, a, b, n);
    cmp("y", yo, y, n, 1);
    for (int t = 1; t <= 2; t++) {
        if (kind == B_ADD) {
            relate_axpy(ga, dy, 1.0f, n);
            relate_axpy(gb, dy, 1.0f, n);
        } else if (kind == B_MUL) {
            relate_mul_backward(ga, gb, dy, a, b, n);
        } else {
            relate_maximum_backward(ga, gb, dy, a, b, n);
        }
        cmp("da", ga, da, n, t);
        cmp("db", gb, db, n, t);
    }
    if (kind == B_MAX) {
        /* The ties alone (each side dy/2), so an error there is not hidden by the norm. */
        float *g1 = grad_buf(n), *g2 = grad_buf(n);
        relate_maximum_backward(g1, NULL, dy, a, b, n);
        relate_maximum_backward(NULL, g2, dy, a, b, n);
        int ties = 0, bad = 0;
        for (size_t i = 0; i < n; i++)
            if (a[i] == b[i]) {
                ties++;
                bad += g1[i] != 0.5f * dy[i] || g2[i] != 0.5f * dy[i] || da[i] != 0.5f * dy[i];
            }
        CHECK_MSG(ties == mi("ties") && bad == 0, "maximum: %d ties, %d without the half-half split", ties, bad);
        cmp("da only", g1, da, n, 1);
        cmp("db only", g2, db, n, 1);
    }
    end();
}

static void test_reduce(const char *name, int is_mean)
{
    if (!begin(name))
        return;
    size_t n = (size_t)mi("count");
    const float *x = G("x", n), *y = G("y", 1), *dy = G("dy", 1), *dx = G("dx", n);
    NEED(x, y, dy, dx);
    float s = relate_sum_forward(x, n);
    if (is_mean)
        s /= (float)n;
    cmp_scalar("y", s, y);
    float *gx = grad_buf(n);
    for (int t = 1; t <= 2; t++) {
        relate_fill_add(gx, is_mean ? dy[0] / (float)n : dy[0], n);
        cmp("dx", gx, dx, n, t);
    }
    end();
}

/* ------------------------------------------------------------------------------- batch-axis moves */
static void test_roll(const char *name)
{
    if (!begin(name))
        return;
    int n = mi("n"), shift = mi("shift");
    size_t row = (size_t)mi("row"), cnt = (size_t)n * row;
    const float *x = G("x", cnt), *y = G("y", cnt), *dy = G("dy", cnt), *dx = G("dx", cnt);
    NEED(x, y, dy, dx);
    float *yo = out_buf(cnt), *gx = grad_buf(cnt);
    relate_roll_rows_forward(yo, x, n, row, shift);
    cmp("y", yo, y, cnt, 1);
    for (int t = 1; t <= 2; t++) {
        relate_roll_rows_backward(gx, dy, n, row, shift);
        cmp("dx", gx, dx, cnt, t);
    }
    end();
}

static void test_cat_cols(void)
{
    if (!begin("cat_cols"))
        return;
    int n = mi("n"), ca = mi("ca"), cb = mi("cb");
    size_t na = (size_t)n * ca, nb = (size_t)n * cb, ny = na + nb;
    const float *a = G("a", na), *b = G("b", nb), *y = G("y", ny), *dy = G("dy", ny),
                *da = G("da", na), *db = G("db", nb);
    NEED(a, b, y, dy, da, db);
    float *yo = out_buf(ny), *ga = grad_buf(na), *gb = grad_buf(nb);
    relate_concat_cols_forward(yo, a, b, n, ca, cb);
    cmp("y", yo, y, ny, 1);
    for (int t = 1; t <= 2; t++) {
        relate_concat_cols_backward(ga, gb, dy, n, ca, cb);
        cmp("da", ga, da, na, t);
        cmp("db", gb, db, nb, t);
    }
    end();
}

/* ------------------------------------------------------------------------------- matrix products */
static void test_linear(void)
{
    if (!begin("linear"))
        return;
    int n = mi("n"), in = mi("in"), out = mi("out");
    size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
    const float *x = G("x", nx), *w = G("w", nw), *b = G("b", out), *y = G("y", ny),
                *dy = G("dy", ny), *dx = G("dx", nx), *dw = G("dw", nw), *db = G("db", out);
    NEED(x, w, b, y, dy, dx, dw, db);
    float *yo = out_buf(ny), *gx = grad_buf(nx), *gw = grad_buf(nw), *gb = grad_buf(out);
    relate_linear_forward(yo, x, w, b, n, in, out);
    cmp("y", yo, y, ny, 1);
    for (int t = 1; t <= 2; t++) {
        relate_linear_backward(gx, gw, gb, dy, x, w, n, in, out);
        cmp("dx", gx, dx, nx, t);
        cmp("dw", gw, dw, nw, t);
        cmp("db", gb, db, out, t);
    }
    /* Without bias: y - b. */
    float *ynb = out_buf(ny), *want = track(malloc(ny * sizeof(float)));
    relate_linear_forward(ynb, x, w, NULL, n, in, out);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < out; j++)
            want[(size_t)i * out + j] = yo[(size_t)i * out + j] - b[j];
    cmp("y (no bias)", ynb, want, ny, 1);
    end();
}

static void test_matmul(const char *name)
{
    if (!begin(name))
        return;
    int m = mi("m"), n = mi("n"), k = mi("k"), ta = mi("trans_a"), tb = mi("trans_b");
    size_t na = (size_t)m * k, nb = (size_t)k * n, nc = (size_t)m * n;
    const float *a = G("a", na), *b = G("b", nb), *y = G("y", nc), *dy = G("dy", nc),
                *da = G("da", na), *db = G("db", nb);
    NEED(a, b, y, dy, da, db);
    float *yo = out_buf(nc), *ga = grad_buf(na), *gb = grad_buf(nb);
    relate_matmul_forward(yo, a, b, m, n, k, ta, tb);
    cmp("y", yo, y, nc, 1);
    for (int t = 1; t <= 2; t++) {
        relate_matmul_backward(ga, gb, dy, a, b, m, n, k, ta, tb);
        cmp("da", ga, da, na, t);
        cmp("db", gb, db, nb, t);
    }
    end();
}

/* ------------------------------------------------------------------------------- softmax, norms */
static void test_log_softmax(void)
{
    if (!begin("log_softmax"))
        return;
    int n = mi("n"), c = mi("c");
    size_t cnt = (size_t)n * c;
    const float *x = G("x", cnt), *y = G("y", cnt), *dy = G("dy", cnt), *dx = G("dx", cnt);
    NEED(x, y, dy, dx);
    float *yo = out_buf(cnt), *gx = grad_buf(cnt);
    relate_log_softmax_forward(yo, x, n, c);
    cmp("y", yo, y, cnt, 1);
    for (int t = 1; t <= 2; t++) {
        relate_log_softmax_backward(gx, dy, yo, n, c);
        cmp("dx", gx, dx, cnt, t);
    }
    end();
}

static void test_normalize(const char *name)
{
    if (!begin(name))
        return;
    int n = mi("n"), c = mi("c");
    float eps = (float)md("eps");
    size_t cnt = (size_t)n * c;
    const float *x = G("x", cnt), *y = G("y", cnt), *dy = G("dy", cnt), *dx = G("dx", cnt);
    NEED(x, y, dy, dx);
    float *yo = out_buf(cnt), *norms = out_buf(n), *gx = grad_buf(cnt);
    relate_l2_normalize_forward(yo, norms, x, n, c, eps);
    cmp("y", yo, y, cnt, 1);
    for (int t = 1; t <= 2; t++) {
        relate_l2_normalize_backward(gx, dy, x, norms, n, c, eps);
        cmp("dx", gx, dx, cnt, t);
    }
    end();
}

/* ------------------------------------------------------------------------------- losses */
static void test_cross_entropy(const char *name, int weighted)
{
    if (!begin(name))
        return;
    int n = mi("n"), c = mi("c");
    size_t cnt = (size_t)n * c;
    const float *x = G("x", cnt), *loss = G("loss", 1), *g = G("g", 1), *dx = G("dx", cnt),
                *prob = G("prob", cnt);
    const float *w = weighted ? G("weights", c) : NULL;
    const int32_t *tg = GI("targets", n);
    NEED(x, loss, g, dx, prob, tg, (weighted ? (const void *)w : (const void *)x));
    float *p = out_buf(cnt), *gx = grad_buf(cnt);
    float l = relate_cross_entropy_forward(p, x, tg, w, n, c);
    cmp_scalar("loss", l, loss);
    cmp("prob", p, prob, cnt, 1);
    for (int t = 1; t <= 2; t++) {
        relate_cross_entropy_backward(gx, g[0], p, tg, w, n, c);
        cmp("dx", gx, dx, cnt, t);
    }
    end();
}

static void test_binary_loss(const char *name, int focal)
{
    if (!begin(name))
        return;
    size_t n = (size_t)mi("n");
    float alpha = focal ? (float)md("alpha") : 0.0f, gamma = focal ? (float)md("gamma") : 0.0f;
    const float *x = G("x", n), *tt = G("t", n), *loss = G("loss", 1), *g = G("g", 1), *dx = G("dx", n);
    NEED(x, tt, loss, g, dx);
    float l = focal ? relate_focal_loss_forward(x, tt, n, alpha, gamma) : relate_bce_logits_forward(x, tt, n);
    cmp_scalar("loss", l, loss);
    float *gx = grad_buf(n);
    for (int t = 1; t <= 2; t++) {
        if (focal)
            relate_focal_loss_backward(gx, g[0], x, tt, n, alpha, gamma);
        else
            relate_bce_logits_backward(gx, g[0], x, tt, n);
        cmp("dx", gx, dx, n, t);
    }
    end();
}

int main(void)
{
    relate_test_open_golden(&st, "kernels.safetensors");

    test_conv("conv_s1p1");
    test_conv("conv_s2p1");
    test_conv("conv_1x1s2");
    test_conv("conv_7x7s2p3");

    test_bn_train("bn2d_train");
    test_bn_train("bn1d_train");
    test_bn_eval("bn2d_eval");
    test_bn_eval("bn1d_eval");

    test_unary("relu", U_RELU);
    test_unary("leaky_relu", U_LEAKY);
    test_unary("sigmoid", U_SIGMOID);
    test_unary("exp", U_EXP);
    test_unary("log", U_LOG);

    test_pool("avgpool", 0);
    test_pool("maxpool", 1);
    test_pool("maxpool_ties", 1);
    test_global_avgpool();

    test_binary("add", B_ADD);
    test_binary("mul", B_MUL);
    test_binary("maximum", B_MAX);
    test_reduce("sum", 0);
    test_reduce("mean", 1);

    test_roll("roll_s2");
    test_roll("roll_s6");
    test_roll("roll_sm1");
    test_cat_cols();

    test_linear();
    test_matmul("matmul_t00");
    test_matmul("matmul_t01");
    test_matmul("matmul_t10");
    test_matmul("matmul_t11");

    test_log_softmax();
    test_normalize("normalize");
    test_normalize("normalize_tiny");

    test_cross_entropy("cross_entropy", 0);
    test_cross_entropy("cross_entropy_w", 1);
    test_binary_loss("bce_logits", 0);
    test_binary_loss("focal", 1);
    test_binary_loss("focal_a25", 1);

    /* Every case the generator wrote must have been tested. */
    for (int i = 0; i < st.meta_count; i++) {
        if (st.meta_keys[i][0] == '_')
            continue;
        int seen = 0;
        for (int j = 0; j < nvisited; j++)
            seen |= strcmp(visited[j], st.meta_keys[i]) == 0;
        CHECK_MSG(seen, "golden case %s is not tested", st.meta_keys[i]);
    }
    relate_safetensors_close(&st);
    return relate_test_finish();
}
