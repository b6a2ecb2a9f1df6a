/* kernels_losses.c: cross-entropy (with and without class weights), BCE with logits and focal
 * loss against naive double references and finite differences, plus a few loss values and
 * gradients from PyTorch 1.13 on closed-form inputs.
 * Not the kernels against autograd's outputs (that is tests/golden_kernels/test_golden_kernels.c). */
#include <math.h>
#include <stdlib.h>

#include "kernels/kernels.h"
#include "kernels_harness.h"
#include "test_util.h"

/* ------------------------------------------------------------------ losses */
typedef struct {
    int kind; /* 0 CE, 1 BCE, 2 focal */
    int n, c;
    int32_t *targets;
    float *weights, *prob, *t;
    float alpha, gamma;
} loss_aux;

static void loss_fwd(tcase *c, float *y)
{
    loss_aux *a = c->aux;
    if (a->kind == 0)
        y[0] = relate_cross_entropy_forward(a->prob, c->in[0], a->targets, a->weights, a->n, a->c);
    else if (a->kind == 1)
        y[0] = relate_bce_logits_forward(c->in[0], a->t, (size_t)a->n);
    else
        y[0] = relate_focal_loss_forward(c->in[0], a->t, (size_t)a->n, a->alpha, a->gamma);
}

static void loss_bwd(tcase *c, float *const *g, const float *dy)
{
    loss_aux *a = c->aux;
    if (a->kind == 0)
        relate_cross_entropy_backward(g[0], dy[0], a->prob, a->targets, a->weights, a->n, a->c);
    else if (a->kind == 1)
        relate_bce_logits_backward(g[0], dy[0], c->in[0], a->t, (size_t)a->n);
    else
        relate_focal_loss_backward(g[0], dy[0], c->in[0], a->t, (size_t)a->n, a->alpha, a->gamma);
}

/* PyTorch's own BCE-with-logits formula (a different but equivalent form from the kernel's). */
static double bce_torch(double x, double t)
{
    const double m = -x > 0 ? -x : 0;
    return (1 - t) * x + m + log(exp(-m) + exp(-x - m));
}

/* torchvision.ops.sigmoid_focal_loss, element-wise, in double. */
static double focal_naive(double x, double t, double alpha, double gamma)
{
    const double p = 1 / (1 + exp(-x)), pt = p * t + (1 - p) * (1 - t);
    return (alpha * t + (1 - alpha) * (1 - t)) * pow(1 - pt, gamma) * bce_torch(x, t);
}

static void loss_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    loss_aux *a = c->aux;
    const float *x = c->in[0];
    double tot = 0, wsum = 0;
    if (a->kind == 0) {
        for (int i = 0; i < a->n; i++)
            wsum += a->weights ? a->weights[a->targets[i]] : 1;
        for (int i = 0; i < a->n; i++) {
            const float *xr = x + (size_t)i * a->c;
            const int t = a->targets[i];
            const double w = a->weights ? a->weights[t] : 1;
            double mx = xr[0], s = 0;
            for (int j = 1; j < a->c; j++)
                mx = xr[j] > mx ? xr[j] : mx;
            for (int j = 0; j < a->c; j++)
                s += exp(xr[j] - mx);
            tot += w * (log(s) - (xr[t] - mx));
            for (int j = 0; j < a->c; j++)
                g[0][(size_t)i * a->c + j] = (float)(dy[0] * w / wsum * (exp(xr[j] - mx) / s - (j == t)));
        }
        y[0] = (float)(tot / wsum);
        return;
    }
    for (int i = 0; i < a->n; i++) {
        const double xi = x[i], ti = a->t[i];
        if (a->kind == 1) {
            tot += bce_torch(xi, ti);
            g[0][i] = (float)(dy[0] * (1 / (1 + exp(-xi)) - ti) / a->n);
        } else {
            /* The analytic backward is checked against double-precision central differences of
             * the naive formula (h = 1e-5: error ~1e-10, far below the 1e-5 bound). */
            const double h = 1e-5;
            tot += focal_naive(xi, ti, a->alpha, a->gamma);
            g[0][i] = (float)(dy[0] *
                              (focal_naive(xi + h, ti, a->alpha, a->gamma) - focal_naive(xi - h, ti, a->alpha, a->gamma)) /
                              (2 * h) / a->n);
        }
    }
    y[0] = (float)(tot / a->n);
}

void test_losses(int fd)
{
    /* Cross-entropy, with and without class weights. */
    static const int ces[][2] = {{6, 5}, {1, 3}, {13, 1}, {16, 40}};
    for (size_t s = 0; s < sizeof ces / sizeof ces[0]; s++)
        for (int wtd = 0; wtd < 2; wtd++) {
            loss_aux a = {.kind = 0, .n = ces[s][0], .c = ces[s][1]};
            const size_t tot = (size_t)a.n * a.c;
            a.targets = malloc(a.n * sizeof(int32_t));
            for (int i = 0; i < a.n; i++)
                a.targets[i] = (i * 7 + 3) % a.c;
            a.weights = wtd ? frand(a.c) : NULL;
            for (int j = 0; wtd && j < a.c; j++)
                a.weights[j] = 1.0f + 0.9f * a.weights[j];
            a.prob = falloc(tot);
            char name[96];
            snprintf(name, sizeof name, "cross_entropy n%d c%d%s", a.n, a.c, wtd ? " weighted" : "");
            tcase c = {.name = name, .nin = 1, .in = {frand(tot)}, .nel = {tot}, .ny = 1,
                       .fwd = loss_fwd, .bwd = loss_bwd, .ref = loss_ref, .aux = &a, .h = 5e-2f};
            for (size_t i = 0; i < tot; i++)
                c.in[0][i] *= 3.0f;
            run_case(&c, fd);
            free(c.in[0]), free(a.targets), free(a.weights), free(a.prob);
        }
    /* BCE and focal with hard and soft targets; gamma 0 (plain weighted BCE), 0.5, 1, 2. */
    static const float gammas[] = {-1, 0.0f, 0.5f, 1.0f, 2.0f}; /* -1: BCE */
    static const int ns[] = {1, 7, 200};
    for (size_t s = 0; s < sizeof ns / sizeof ns[0]; s++)
        for (size_t gi = 0; gi < sizeof gammas / sizeof gammas[0]; gi++) {
            loss_aux a = {.kind = gammas[gi] < 0 ? 1 : 2, .n = ns[s], .alpha = 0.25f, .gamma = gammas[gi]};
            a.t = falloc(a.n);
            for (int i = 0; i < a.n; i++)
                a.t[i] = i % 3 == 0 ? 1.0f : i % 3 == 1 ? 0.0f : 0.3f;
            char name[96];
            if (a.kind == 1)
                snprintf(name, sizeof name, "bce_logits n%d", a.n);
            else
                snprintf(name, sizeof name, "focal n%d gamma %.1f", a.n, a.gamma);
            tcase c = {.name = name, .nin = 1, .in = {frand(a.n)}, .nel = {(size_t)a.n}, .ny = 1,
                       .fwd = loss_fwd, .bwd = loss_bwd, .ref = loss_ref, .aux = &a, .h = 5e-2f};
            for (int i = 0; i < a.n; i++)
                c.in[0][i] *= 5.0f;
            run_case(&c, fd);
            free(c.in[0]), free(a.t);
        }
    /* Values from PyTorch 1.13 (F.cross_entropy, F.binary_cross_entropy_with_logits and the
     * torchvision focal formula with autograd) on closed-form inputs. */
    {
        enum { N = 6, C = 5, M = 12 };
        float x[N * C], prob[N * C], w[C], xb[M], tb[M], g[M] = {0};
        int32_t t[N];
        for (int i = 0; i < N * C; i++)
            x[i] = (float)(3 * sin(0.37 * i + 0.1));
        for (int i = 0; i < N; i++)
            t[i] = (i * 3) % C;
        for (int j = 0; j < C; j++)
            w[j] = 0.5f + 0.25f * j;
        for (int i = 0; i < M; i++) {
            xb[i] = (float)(4 * sin(0.9 * i + 0.3));
            tb[i] = i % 3 == 0 ? 1.0f : i % 3 == 1 ? 0.0f : 0.25f;
        }
        const float ce = 1.8087873458862305f, cew = 1.7135677337646484f, bce = 1.3812060356140137f;
        const float f2 = 0.5050642490386963f, f05 = 0.7090204358100891f;
        static const float g2[M] = {-0.000738979899f, 0.0686991215f, 0.0232029706f, -0.00256403699f,
                                    3.97255862e-05f, -0.000565003953f, -0.022970533f, 0.0545206144f,
                                    0.023099795f, -1.9743984e-06f, 0.0328172483f, -0.00018370559f};
        float got = relate_cross_entropy_forward(prob, x, t, NULL, N, C);
        relate_test_check_close("cross_entropy vs PyTorch", &got, &ce, 1, 1e-6);
        got = relate_cross_entropy_forward(prob, x, t, w, N, C);
        relate_test_check_close("weighted cross_entropy vs PyTorch", &got, &cew, 1, 1e-6);
        got = relate_bce_logits_forward(xb, tb, M);
        relate_test_check_close("bce_logits vs PyTorch", &got, &bce, 1, 1e-6);
        got = relate_focal_loss_forward(xb, tb, M, 0.25f, 2.0f);
        relate_test_check_close("focal gamma 2 vs PyTorch", &got, &f2, 1, 1e-6);
        got = relate_focal_loss_forward(xb, tb, M, 0.25f, 0.5f);
        relate_test_check_close("focal gamma 0.5 vs PyTorch", &got, &f05, 1, 1e-6);
        relate_focal_loss_backward(g, 1.0f, xb, tb, M, 0.25f, 2.0f);
        relate_test_check_close("focal gamma 2 grad vs PyTorch autograd", g, g2, M, 1e-5);
    }
}
