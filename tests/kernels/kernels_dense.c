/* kernels_dense.c: the kernels on row-major matrices: linear (with and without bias), matmul in
 * all four transpose combinations, log_softmax and l2_normalize (eps clamp included), against
 * naive double references and finite differences.
 * Not the losses built on log_softmax (those are in kernels_losses.c). */
#include <math.h>
#include <stdlib.h>

#include "kernels/kernels.h"
#include "kernels_harness.h"
#include "test_util.h"

/* ------------------------------------------------------------------ linear and matmul */
typedef struct {
    int n, in, out;          /* linear */
    int m, nn, k, ta, tb;    /* matmul */
} mm_aux;

static void lin_fwd(tcase *c, float *y)
{
    mm_aux *a = c->aux;
    relate_linear_forward(y, c->in[0], c->in[1], c->nin > 2 ? c->in[2] : NULL, a->n, a->in, a->out);
}

static void lin_bwd(tcase *c, float *const *g, const float *dy)
{
    mm_aux *a = c->aux;
    relate_linear_backward(g[0], g[1], c->nin > 2 ? g[2] : NULL, dy, c->in[0], c->in[1], a->n, a->in, a->out);
}

static void lin_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    mm_aux *a = c->aux;
    const float *x = c->in[0], *w = c->in[1], *b = c->nin > 2 ? c->in[2] : NULL;
    for (int i = 0; i < a->n; i++)
        for (int o = 0; o < a->out; o++) {
            double s = b ? b[o] : 0;
            for (int k = 0; k < a->in; k++)
                s += (double)x[i * a->in + k] * w[o * a->in + k];
            y[i * a->out + o] = (float)s;
        }
    for (int i = 0; i < a->n; i++)
        for (int k = 0; k < a->in; k++) {
            double s = 0;
            for (int o = 0; o < a->out; o++)
                s += (double)dy[i * a->out + o] * w[o * a->in + k];
            g[0][i * a->in + k] = (float)s;
        }
    for (int o = 0; o < a->out; o++) {
        double sb = 0;
        for (int k = 0; k < a->in; k++) {
            double s = 0;
            for (int i = 0; i < a->n; i++)
                s += (double)dy[i * a->out + o] * x[i * a->in + k];
            g[1][o * a->in + k] = (float)s;
        }
        for (int i = 0; i < a->n; i++)
            sb += dy[i * a->out + o];
        if (b)
            g[2][o] = (float)sb;
    }
}

static void mm_fwd(tcase *c, float *y)
{
    mm_aux *a = c->aux;
    relate_matmul_forward(y, c->in[0], c->in[1], a->m, a->nn, a->k, a->ta, a->tb);
}

static void mm_bwd(tcase *c, float *const *g, const float *dy)
{
    mm_aux *a = c->aux;
    relate_matmul_backward(g[0], g[1], dy, c->in[0], c->in[1], a->m, a->nn, a->k, a->ta, a->tb);
}

static void mm_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    mm_aux *a = c->aux;
    const float *A = c->in[0], *B = c->in[1];
    /* Index of op(A)[i][p] and op(B)[p][j] in the stored layouts. */
#define AI(i, p) (a->ta ? (size_t)(p) * a->m + (i) : (size_t)(i) * a->k + (p))
#define BI(p, j) (a->tb ? (size_t)(j) * a->k + (p) : (size_t)(p) * a->nn + (j))
    for (int i = 0; i < a->m; i++)
        for (int j = 0; j < a->nn; j++) {
            double s = 0;
            for (int p = 0; p < a->k; p++)
                s += (double)A[AI(i, p)] * B[BI(p, j)];
            y[(size_t)i * a->nn + j] = (float)s;
        }
    for (int i = 0; i < a->m; i++)
        for (int p = 0; p < a->k; p++) {
            double s = 0;
            for (int j = 0; j < a->nn; j++)
                s += (double)dy[(size_t)i * a->nn + j] * B[BI(p, j)];
            g[0][AI(i, p)] = (float)s;
        }
    for (int p = 0; p < a->k; p++)
        for (int j = 0; j < a->nn; j++) {
            double s = 0;
            for (int i = 0; i < a->m; i++)
                s += (double)A[AI(i, p)] * dy[(size_t)i * a->nn + j];
            g[1][BI(p, j)] = (float)s;
        }
#undef AI
#undef BI
}

void test_linalg(int fd)
{
    static const int lins[][3] = {{4, 5, 3}, {1, 7, 6}, {9, 1, 1}, {33, 17, 300}};
    for (size_t s = 0; s < sizeof lins / sizeof lins[0]; s++)
        for (int bias = 0; bias < 2; bias++) {
            mm_aux a = {.n = lins[s][0], .in = lins[s][1], .out = lins[s][2]};
            char name[96];
            snprintf(name, sizeof name, "linear n%d in%d out%d%s t%d", a.n, a.in, a.out,
                     bias ? " +bias" : "", relate_get_threads());
            const size_t nx = (size_t)a.n * a.in, nw = (size_t)a.out * a.in;
            tcase c = {.name = name, .nin = bias ? 3 : 2, .in = {frand(nx), frand(nw), bias ? frand(a.out) : NULL},
                       .nel = {nx, nw, a.out}, .ny = (size_t)a.n * a.out, .fwd = lin_fwd,
                       .bwd = lin_bwd, .ref = lin_ref, .aux = &a, .h = 1e-2f};
            run_case(&c, fd);
            for (int j = 0; j < 3; j++)
                free(c.in[j]);
        }
    static const int mms[][3] = {{3, 4, 5}, {1, 6, 2}, {7, 1, 3}, {20, 33, 9}};
    for (size_t s = 0; s < sizeof mms / sizeof mms[0]; s++)
        for (int t = 0; t < 4; t++) {
            mm_aux a = {.m = mms[s][0], .nn = mms[s][1], .k = mms[s][2], .ta = t & 1, .tb = t >> 1};
            char name[96];
            snprintf(name, sizeof name, "matmul m%d n%d k%d ta%d tb%d t%d", a.m, a.nn, a.k, a.ta,
                     a.tb, relate_get_threads());
            const size_t na = (size_t)a.m * a.k, nb = (size_t)a.k * a.nn;
            tcase c = {.name = name, .nin = 2, .in = {frand(na), frand(nb)}, .nel = {na, nb},
                       .ny = (size_t)a.m * a.nn, .fwd = mm_fwd, .bwd = mm_bwd, .ref = mm_ref,
                       .aux = &a, .h = 1e-2f};
            run_case(&c, fd);
            free(c.in[0]);
            free(c.in[1]);
        }
}

/* ------------------------------------------------------------------ log_softmax and normalize */
typedef struct {
    int n, c;
    float eps;
    float *tmp; /* log_softmax output / norms */
} row_aux;

static void lsm_fwd(tcase *c, float *y)
{
    row_aux *a = c->aux;
    relate_log_softmax_forward(y, c->in[0], a->n, a->c);
}

static void lsm_bwd(tcase *c, float *const *g, const float *dy)
{
    row_aux *a = c->aux;
    relate_log_softmax_forward(a->tmp, c->in[0], a->n, a->c);
    relate_log_softmax_backward(g[0], dy, a->tmp, a->n, a->c);
}

static void lsm_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    row_aux *a = c->aux;
    for (int i = 0; i < a->n; i++) {
        const float *x = c->in[0] + (size_t)i * a->c;
        double mx = x[0], s = 0, sd = 0;
        for (int j = 1; j < a->c; j++)
            mx = x[j] > mx ? x[j] : mx;
        for (int j = 0; j < a->c; j++)
            s += exp(x[j] - mx), sd += dy[(size_t)i * a->c + j];
        for (int j = 0; j < a->c; j++) {
            y[(size_t)i * a->c + j] = (float)((x[j] - mx) - log(s));
            g[0][(size_t)i * a->c + j] = (float)(dy[(size_t)i * a->c + j] - exp(x[j] - mx) / s * sd);
        }
    }
}

static void l2n_fwd(tcase *c, float *y)
{
    row_aux *a = c->aux;
    relate_l2_normalize_forward(y, a->tmp, c->in[0], a->n, a->c, a->eps);
}

static void l2n_bwd(tcase *c, float *const *g, const float *dy)
{
    row_aux *a = c->aux;
    relate_l2_normalize_backward(g[0], dy, c->in[0], a->tmp, a->n, a->c, a->eps);
}

static void l2n_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    row_aux *a = c->aux;
    for (int i = 0; i < a->n; i++) {
        const float *x = c->in[0] + (size_t)i * a->c, *gy = dy + (size_t)i * a->c;
        double s = 0, dot = 0;
        for (int j = 0; j < a->c; j++)
            s += (double)x[j] * x[j], dot += (double)x[j] * gy[j];
        const double nrm = sqrt(s), den = nrm > a->eps ? nrm : a->eps;
        for (int j = 0; j < a->c; j++) {
            y[(size_t)i * a->c + j] = (float)(x[j] / den);
            g[0][(size_t)i * a->c + j] =
                (float)(nrm >= a->eps ? gy[j] / nrm - x[j] * dot / (nrm * nrm * nrm) : gy[j] / a->eps);
        }
    }
}

void test_rows(int fd)
{
    static const int shapes[][2] = {{3, 5}, {1, 1}, {4, 1}, {7, 33}, {64, 300}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        row_aux a = {.n = shapes[s][0], .c = shapes[s][1], .eps = 1e-12f};
        const size_t tot = (size_t)a.n * a.c;
        a.tmp = falloc(tot);
        char name[96];
        snprintf(name, sizeof name, "log_softmax n%d c%d t%d", a.n, a.c, relate_get_threads());
        tcase c = {.name = name, .nin = 1, .in = {frand(tot)}, .nel = {tot}, .ny = tot,
                   .fwd = lsm_fwd, .bwd = lsm_bwd, .ref = lsm_ref, .aux = &a, .h = 1e-2f};
        for (size_t i = 0; i < tot; i++)
            c.in[0][i] *= 4.0f;
        run_case(&c, fd);
        /* With one column the output is sign(x) and every gradient is rounding noise around 0,
         * which a relative error cannot judge. */
        if (a.c == 1) {
            free(c.in[0]);
            free(a.tmp);
            continue;
        }
        snprintf(name, sizeof name, "l2_normalize n%d c%d t%d", a.n, a.c, relate_get_threads());
        c.fwd = l2n_fwd, c.bwd = l2n_bwd, c.ref = l2n_ref;
        push_from_zero(c.in[0], tot, 0.1f); /* rows of one element stay away from the sign flip */
        run_case(&c, fd);
        /* A row whose norm is under eps is divided by eps (and its gradient is dy/eps). */
        a.eps = 1.0f;
        for (int j = 0; j < a.c; j++)
            c.in[0][j] = 0.01f * (j + 1) / a.c;
        snprintf(name, sizeof name, "l2_normalize eps-clamped n%d c%d t%d", a.n, a.c, relate_get_threads());
        run_case(&c, 0);
        free(c.in[0]);
        free(a.tmp);
    }
}
