/* test_infomax_ops.c: Deep InfoMax's kernels and graph ops (kernels/infomax.c, autograd/ops_infomax.c):
 * the fused local loss against its naive twin on awkward shapes (one chunk, several chunks with a
 * short last one, a chunk smaller than one image, B = 1, softplus past its threshold), its gradients
 * against central differences of a double-precision evaluation, and every small op's backward
 * against finite differences of the graph.
 * Not the method: tests/deepinfomax/test_deepinfomax.c checks the loss against PyTorch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "relate/graph.h"
#include "test_util.h"

/* ------------------------------------------------------------------ fused kernel vs its twin */
typedef struct {
    float *m, *w_m, *yb, *w1, *b1, *w2, *b2;
} local_inputs;

static size_t sizes(const relate_infomax_dims *d, size_t out[7])
{
    out[0] = (size_t)d->b * d->mc * d->hw;
    out[1] = (size_t)d->c0 * d->mc;
    out[2] = (size_t)d->b * d->c0;
    out[3] = (size_t)d->c1 * d->c0;
    out[4] = (size_t)d->c1;
    out[5] = (size_t)d->c1;
    out[6] = 1;
    size_t t = 0;
    for (int i = 0; i < 7; i++)
        t += out[i];
    return t;
}

/* One block holding the seven inputs (or their gradients) in the order above. */
static float *alloc_block(const relate_infomax_dims *d, local_inputs *v)
{
    size_t n[7];
    float *blk = calloc(sizes(d, n), sizeof(float));
    float **p[7] = {&v->m, &v->w_m, &v->yb, &v->w1, &v->b1, &v->w2, &v->b2};
    float *q = blk;
    for (int i = 0; i < 7; i++) {
        *p[i] = q;
        q += n[i];
    }
    return blk;
}

static void fill_inputs(const relate_infomax_dims *d, local_inputs *v, uint64_t seed, float t_shift)
{
    size_t n[7];
    sizes(d, n);
    float *p[7] = {v->m, v->w_m, v->yb, v->w1, v->b1, v->w2, v->b2};
    for (int i = 0; i < 7; i++)
        relate_test_fill(p[i], n[i], seed * 10 + (uint64_t)i);
    for (size_t i = 0; i < n[0]; i++) /* M is a ReLU output */
        v->m[i] = fmaxf(v->m[i], 0.0f);
    v->b2[0] += t_shift; /* moves T past softplus's threshold when large */
}

static relate_infomax_grads grads_of(local_inputs *g)
{
    return (relate_infomax_grads){g->m, g->w_m, g->yb, g->w1, g->b1, g->w2, g->b2};
}

static void check_fused_vs_ref(int b, int mc, int h, int w, int c0, int c1, float t_shift)
{
    relate_infomax_dims d = {.b = b, .mc = mc, .hw = h * w, .c0 = c0, .c1 = c1};
    relate_infomax_dims_init(&d);
    local_inputs x, gf, gr;
    float *bx = alloc_block(&d, &x), *bf = alloc_block(&d, &gf), *br = alloc_block(&d, &gr);
    fill_inputs(&d, &x, (uint64_t)(b * 1000 + h * w), t_shift);
    float *scratch = malloc(relate_infomax_scratch_floats(&d) * sizeof(float));
    relate_infomax_grads g1 = grads_of(&gf), g2 = grads_of(&gr);
    float lf = relate_infomax_local_forward(x.m, x.w_m, x.yb, x.w1, x.b1, x.w2, x.b2, &d, &g1, scratch);
    double *acc = malloc(relate_infomax_ref_scratch_doubles(&d) * sizeof(double));
    float lr = relate_infomax_local_forward_ref(x.m, x.w_m, x.yb, x.w1, x.b1, x.w2, x.b2, &d, &g2, acc);
    free(acc);
    float l0 = relate_infomax_local_forward(x.m, x.w_m, x.yb, x.w1, x.b1, x.w2, x.b2, &d, NULL, scratch);
    char label[160];
    snprintf(label, sizeof label, "fused vs ref b%d mc%d %dx%d c%d/%d shift %g (chunk %d): loss", b, mc, h, w, c0, c1,
             (double)t_shift, d.chunk);
    relate_test_check_close(label, &lf, &lr, 1, 2e-6);
    CHECK_MSG(lf == l0, "%s: loss without gradients differs (%.9g vs %.9g)", label, (double)lf, (double)l0);
    size_t n[7];
    sizes(&d, n);
    static const char *const names[7] = {"dM", "dW_M", "dyb", "dW1", "db1", "dw2", "db2"};
    float *pf[7] = {gf.m, gf.w_m, gf.yb, gf.w1, gf.b1, gf.w2, gf.b2};
    float *pr[7] = {gr.m, gr.w_m, gr.yb, gr.w1, gr.b1, gr.w2, gr.b2};
    for (int i = 0; i < 7; i++) {
        snprintf(label, sizeof label, "fused vs ref b%d mc%d %dx%d c%d/%d shift %g: %s", b, mc, h, w, c0, c1,
                 (double)t_shift, names[i]);
        relate_test_check_close(label, pf[i], pr[i], n[i], 2e-5);
    }
    /* Accumulation: a second call adds the same gradients again. */
    float keep = gf.w1[0];
    relate_infomax_local_forward(x.m, x.w_m, x.yb, x.w1, x.b1, x.w2, x.b2, &d, &g1, scratch);
    CHECK_MSG(fabsf(gf.w1[0] - 2 * keep) <= 1e-6f * fabsf(keep) + 1e-12f, "gradients accumulate");
    free(scratch);
    free(bx);
    free(bf);
    free(br);
}

/* ------------------------------------------------------------------ double-precision gradient check */
static double relu_d(double v) { return v > 0 ? v : 0; }
static double softplus_d(double v) { return v > 20 ? v : log1p(exp(v)); }

/* The local term in double: the definition of spec 3.4, written once more without any sharing. */
static double local_loss_double(const relate_infomax_dims *d, const local_inputs *x)
{
    const int B = d->b, MC = d->mc, HW = d->hw, C0 = d->c0, C1 = d->c1;
    double h0[64], sum = 0;
    for (int neg = 0; neg < 2; neg++)
        for (int n = 0; n < B; n++)
            for (int p = 0; p < HW; p++) {
                const int src = neg ? (n + 1) % B : n;
                for (int c = 0; c < C0; c++) {
                    double a = x->yb[n * C0 + c];
                    for (int k = 0; k < MC; k++)
                        a += (double)x->w_m[c * MC + k] * x->m[(src * MC + k) * HW + p];
                    h0[c] = relu_d(a);
                }
                double t = x->b2[0];
                for (int o = 0; o < C1; o++) {
                    double a = x->b1[o];
                    for (int c = 0; c < C0; c++)
                        a += (double)x->w1[o * C0 + c] * h0[c];
                    t += x->w2[o] * relu_d(a);
                }
                sum += neg ? softplus_d(t) : softplus_d(-t);
            }
    return sum / ((double)B * HW);
}

static void check_fused_gradcheck(void)
{
    relate_infomax_dims d = {.b = 3, .mc = 3, .hw = 6, .c0 = 8, .c1 = 7};
    relate_infomax_dims_init(&d);
    local_inputs x, gf;
    float *bx = alloc_block(&d, &x), *bf = alloc_block(&d, &gf);
    fill_inputs(&d, &x, 77, 0.0f);
    float *scratch = malloc(relate_infomax_scratch_floats(&d) * sizeof(float));
    relate_infomax_grads g1 = grads_of(&gf);
    float lf = relate_infomax_local_forward(x.m, x.w_m, x.yb, x.w1, x.b1, x.w2, x.b2, &d, &g1, scratch);
    const double ld = local_loss_double(&d, &x);
    CHECK_MSG(fabs(lf - ld) < 1e-6 * fabs(ld), "fused loss %.9g vs double %.9g", (double)lf, ld);
    size_t n[7];
    sizes(&d, n);
    float *px[7] = {x.m, x.w_m, x.yb, x.w1, x.b1, x.w2, x.b2};
    float *pg[7] = {gf.m, gf.w_m, gf.yb, gf.w1, gf.b1, gf.w2, gf.b2};
    static const char *const names[7] = {"dM", "dW_M", "dyb", "dW1", "db1", "dw2", "db2"};
    /* Central differences of the double evaluation with a step far smaller than any ReLU input's
     * distance from 0 (the float inputs are perturbed in a double copy). */
    for (int i = 0; i < 7; i++) {
        float an[64], fd[64];
        const int cnt = n[i] < 64 ? (int)n[i] : 64;
        for (int j = 0; j < cnt; j++) {
            const size_t e = (size_t)j * n[i] / (size_t)cnt;
            const float keep = px[i][e];
            /* Float inputs carry the perturbation exactly: step of 2^-12 relative-free absolute. */
            const float hstep = 1.0f / 4096.0f;
            px[i][e] = keep + hstep;
            double up = local_loss_double(&d, &x);
            px[i][e] = keep - hstep;
            double dn = local_loss_double(&d, &x);
            px[i][e] = keep;
            fd[j] = (float)((up - dn) / (2.0 * hstep));
            an[j] = pg[i][e];
        }
        char label[64];
        snprintf(label, sizeof label, "gradcheck (double) %s", names[i]);
        relate_test_check_close(label, an, fd, (size_t)cnt, 2e-3);
    }
    free(scratch);
    free(bx);
    free(bf);
}

/* ------------------------------------------------------------------ graph ops: finite differences */
#define MAXIN 7
typedef struct {
    const char *name;
    int nin;
    int ndim[MAXIN];
    int64_t shape[MAXIN][4];
    float offset[MAXIN];
    float h;
    relate_tensor *(*build)(relate_graph *g, relate_tensor **in);
} op_case;

static relate_tensor *project(relate_graph *g, relate_tensor *y)
{
    if (!y)
        return NULL;
    relate_tensor *r = relate_tensor_new(g, y->ndim, y->shape);
    relate_test_fill(r->data, (size_t)r->numel, 99);
    return relate_sum(g, relate_mul(g, y, r));
}

static relate_tensor *b_rows(relate_graph *g, relate_tensor **in) { return project(g, relate_nchw_to_rows(g, in[0])); }
static relate_tensor *b_repeat(relate_graph *g, relate_tensor **in) { return project(g, relate_repeat_rows(g, in[0], 3)); }
static relate_tensor *b_softplus(relate_graph *g, relate_tensor **in)
{
    /* beta 2, threshold 3 on inputs in [-1, 1): the log1p branch with beta != 1. */
    return project(g, relate_add(g, relate_softplus(g, in[0], 1.0f, 20.0f), relate_softplus(g, in[1], 2.0f, 3.0f)));
}
static relate_tensor *b_softplus_big(relate_graph *g, relate_tensor **in)
{
    return project(g, relate_softplus(g, in[0], 1.0f, 20.0f)); /* inputs near 25: the identity branch */
}
static relate_tensor *b_scale_shift(relate_graph *g, relate_tensor **in)
{
    return project(g, relate_log(g, relate_scale_shift(g, in[0], -1.0f, 1.0f)));
}
static relate_tensor *b_local(relate_graph *g, relate_tensor **in)
{
    /* Scaled by 3: the backward must scale the gradients the forward computed by the upstream one. */
    return relate_scale(g, relate_infomax_local_loss(g, in[0], in[1], in[2], in[3], in[4], in[5], in[6]), 3.0f);
}

static const op_case cases[] = {
    {"nchw_to_rows", 1, {4}, {{2, 3, 2, 3}}, {0}, 1e-2f, b_rows},
    {"repeat_rows", 1, {2}, {{4, 5}}, {0}, 1e-2f, b_repeat},
    {"softplus", 2, {2, 2}, {{3, 4}, {3, 4}}, {0, 0}, 1e-2f, b_softplus},
    {"softplus past threshold", 1, {1}, {{6}}, {25.0f}, 1e-2f, b_softplus_big},
    {"scale_shift (1 - x)", 1, {1}, {{8}}, {-1.5f}, 1e-2f, b_scale_shift},
    /* yb and b1 shifted up keep the hidden ReLU inputs away from 0, so no mask flips within +-h
     * (check_fused_gradcheck covers mixed signs, in double). */
    {"infomax_local_loss", 7, {4, 2, 2, 2, 1, 2, 1},
     {{2, 3, 2, 2}, {5, 3}, {2, 5}, {4, 5}, {4}, {1, 4}, {1}}, {0, 0, 1.5f, 0, 3.0f, 0, 0}, 2e-3f, b_local},
};

static void run_case(const op_case *c, int ci)
{
    relate_params store;
    relate_params_init(&store);
    relate_param *p[MAXIN];
    for (int i = 0; i < c->nin; i++) {
        char name[16];
        snprintf(name, sizeof name, "in%d", i);
        p[i] = relate_params_add(&store, name, RELATE_PARAM, c->ndim[i], c->shape[i]);
    }
    relate_error err = {0};
    CHECK(relate_params_finalize(&store, &err) == RELATE_OK);
    for (int i = 0; i < c->nin; i++) {
        relate_test_fill(p[i]->data, (size_t)p[i]->numel, (uint64_t)(ci * 10 + i + 1));
        for (int64_t j = 0; j < p[i]->numel; j++)
            p[i]->data[j] = p[i]->data[j] * (c->offset[i] > 20 ? 2.0f : 1.0f) + c->offset[i];
    }
    relate_graph *g = relate_graph_create();
    relate_tensor *in[MAXIN];
    for (int i = 0; i < c->nin; i++)
        in[i] = relate_param_tensor(g, p[i]);
    relate_tensor *loss = c->build(g, in);
    CHECK_MSG(loss && relate_graph_backward(g, loss) == RELATE_OK, "%s: %s", c->name, relate_graph_error(g)->msg);
    const float h = c->h;
    relate_graph_set_grad_enabled(g, false);
    for (int i = 0; i < c->nin; i++) {
        float fd[64], an[64];
        int m = p[i]->numel < 64 ? (int)p[i]->numel : 64;
        for (int j = 0; j < m; j++) {
            float keep = p[i]->data[j];
            double l[2];
            for (int s = 0; s < 2; s++) {
                p[i]->data[j] = keep + (s ? -h : h);
                relate_graph_reset(g);
                for (int k = 0; k < c->nin; k++)
                    in[k] = relate_param_tensor(g, p[k]);
                relate_tensor *lv = c->build(g, in);
                l[s] = lv ? lv->data[0] : NAN;
            }
            p[i]->data[j] = keep;
            fd[j] = (float)((l[0] - l[1]) / (2.0 * h));
            an[j] = p[i]->grad[j];
        }
        char name[96];
        snprintf(name, sizeof name, "%s: d/d in%d", c->name, i);
        relate_test_check_close(name, an, fd, (size_t)m, 1e-2);
    }
    relate_graph_destroy(g);
    relate_params_free(&store);
}

static void check_layouts(void)
{
    /* nchw_to_rows is x.permute(0, 2, 3, 1).reshape(-1, C); repeat_rows repeats each row. */
    float x[2 * 3 * 4], y[2 * 4 * 3];
    for (int i = 0; i < 24; i++)
        x[i] = (float)i;
    relate_nchw_to_rows_forward(y, x, 2, 3, 4);
    int ok = 1;
    for (int n = 0; n < 2; n++)
        for (int p = 0; p < 4; p++)
            for (int c = 0; c < 3; c++)
                ok &= y[(n * 4 + p) * 3 + c] == x[(n * 3 + c) * 4 + p];
    CHECK(ok);
    float r[2 * 3 * 2];
    relate_repeat_rows_forward(r, x, 2, 3, 2);
    CHECK(r[0] == 0 && r[3] == 0 && r[5] == 2 && r[6] == 3 && r[9] == 3 && r[11] == 5);
    /* softplus: PyTorch's threshold switches to the identity strictly above 20. */
    float v[3] = {20.0f, 20.5f, -30.0f}, s[3];
    relate_softplus_forward(s, v, 1.0f, 20.0f, 3);
    CHECK(s[0] == log1pf(expf(20.0f)) && s[1] == 20.5f && s[2] > 0 && s[2] < 1e-12f);
}

static void check_op_modes(void)
{
    /* Inference mode: the same loss, nothing recorded; shape errors are reported. */
    relate_graph *g = relate_graph_create();
    float m[2 * 3 * 4], wm[5 * 3], yb[2 * 5], w1[4 * 5], b1[4], w2[4], b2[1];
    relate_test_fill(m, 24, 1);
    relate_test_fill(wm, 15, 2);
    relate_test_fill(yb, 10, 3);
    relate_test_fill(w1, 20, 4);
    relate_test_fill(b1, 4, 5);
    relate_test_fill(w2, 4, 6);
    relate_test_fill(b2, 1, 7);
    relate_tensor *t[7] = {relate_tensor_wrap(g, 4, (int64_t[]){2, 3, 2, 2}, m), relate_tensor_wrap(g, 2, (int64_t[]){5, 3}, wm),
                           relate_tensor_wrap(g, 2, (int64_t[]){2, 5}, yb), relate_tensor_wrap(g, 2, (int64_t[]){4, 5}, w1),
                           relate_tensor_wrap(g, 1, (int64_t[]){4}, b1), relate_tensor_wrap(g, 2, (int64_t[]){1, 4}, w2),
                           relate_tensor_wrap(g, 1, (int64_t[]){1}, b2)};
    relate_tensor *l = relate_infomax_local_loss(g, t[0], t[1], t[2], t[3], t[4], t[5], t[6]);
    CHECK(l && !l->requires_grad && isfinite(l->data[0]));
    relate_infomax_dims d = {.b = 2, .mc = 3, .hw = 4, .c0 = 5, .c1 = 4};
    relate_infomax_dims_init(&d);
    float want = relate_infomax_local_forward_ref(m, wm, yb, w1, b1, w2, b2, &d, NULL, NULL);
    if (l)
        relate_test_check_close("op loss (no gradients) vs ref", l->data, &want, 1, 2e-6);
    relate_tensor *bad = relate_infomax_local_loss(g, t[0], t[3], t[2], t[3], t[4], t[5], t[6]);
    CHECK(bad == NULL && relate_graph_status(g) == RELATE_ERR_SHAPE);
    relate_graph_destroy(g);
}

int main(void)
{
    check_layouts();
    /* conv4-like widths on the golden's 6x6 (one chunk); 30x30 with B = 5 (chunks of 2, 2, 1 images);
     * 48x48 (one image per chunk); B = 1 (M' = M); tiny widths past the softplus threshold. */
    check_fused_vs_ref(4, 8, 6, 6, 256, 256, 0.0f);
    check_fused_vs_ref(5, 3, 30, 30, 16, 12, 0.0f);
    check_fused_vs_ref(2, 2, 48, 48, 8, 8, 0.0f);
    check_fused_vs_ref(1, 4, 5, 5, 9, 7, 0.0f);
    check_fused_vs_ref(3, 2, 3, 3, 6, 5, 24.0f);
    check_fused_vs_ref(3, 2, 3, 3, 6, 5, -24.0f);
    check_fused_gradcheck();
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++)
        run_case(&cases[i], i);
    check_op_modes();
    return relate_test_finish();
}
