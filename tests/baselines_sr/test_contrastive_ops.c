/* test_contrastive_ops.c: the simclr loss op (autograd/ops_contrastive.c, kernels/contrastive.c)
 * against a naive double-precision oracle of spec 3.2's formula: the forward value, and the
 * backward against central finite differences of the oracle in double (h = 1e-6), plus float
 * finite differences of the graph op itself (its wiring), several shapes, repeatability and
 * thread counts. PyTorch goldens are in test_simclr_rotationnet.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "relate/graph.h"
#include "test_util.h"

/* The formula of spec 3.2 written out in double, loops only. */
static double oracle(const double *z, int n, int c, double tau, double eps)
{
    double *e = malloc((size_t)n * n * sizeof *e), *nr = malloc((size_t)n * sizeof *nr);
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < c; j++)
            s += z[i * c + j] * z[i * c + j];
        nr[i] = sqrt(s);
    }
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++) {
            double dot = 0;
            for (int j = 0; j < c; j++)
                dot += z[a * c + j] * z[b * c + j];
            e[a * n + b] = exp(dot / fmax(nr[a] * nr[b], eps) / tau);
        }
    double mean = 0;
    for (int r = 0; r < n; r++) {
        double col = 0;
        for (int a = 0; a < n; a++)
            col += e[a * n + r];
        int p = r % 2 == 0 ? r + 1 : r - 1;
        mean += e[p * n + r] / (col - exp(1.0 / tau)) / n;
    }
    free(e);
    free(nr);
    return -log(mean);
}

static void check_shape(int n, int c, float tau, float scale, uint64_t seed)
{
    relate_params store;
    relate_params_init(&store);
    relate_param *p = relate_params_add(&store, "z", RELATE_PARAM, 2, (int64_t[]){n, c});
    relate_error err = {0};
    CHECK(relate_params_finalize(&store, &err) == RELATE_OK);
    relate_test_fill(p->data, (size_t)n * c, seed);
    /* Correlated partners, as after a backbone, so positives and negatives differ. */
    for (int i = 1; i < n; i += 2)
        for (int j = 0; j < c; j++)
            p->data[i * c + j] = 0.7f * p->data[(i - 1) * c + j] + 0.3f * p->data[i * c + j];
    for (int i = 0; i < n * c; i++)
        p->data[i] *= scale;
    double *zd = malloc((size_t)n * c * sizeof *zd);
    for (int i = 0; i < n * c; i++)
        zd[i] = p->data[i];

    relate_graph *g = relate_graph_create();
    relate_params_zero_grad(&store);
    relate_tensor *loss = relate_simclr_loss(g, relate_param_tensor(g, p), tau, 1e-8f);
    CHECK_MSG(loss && relate_graph_backward(g, loss) == RELATE_OK, "%s", relate_graph_error(g)->msg);
    char label[96];
    if (loss) {
        float want = (float)oracle(zd, n, c, tau, 1e-8);
        snprintf(label, sizeof label, "simclr_loss [%d,%d] tau %g: value vs double oracle", n, c, (double)tau);
        relate_test_check_close(label, loss->data, &want, 1, 2e-6);

        /* Gradient against double-precision central differences of the oracle. */
        float *fd = malloc((size_t)n * c * sizeof *fd);
        const double h = 1e-6;
        for (int i = 0; i < n * c; i++) {
            double keep = zd[i];
            zd[i] = keep + h;
            double lp = oracle(zd, n, c, tau, 1e-8);
            zd[i] = keep - h;
            double lm = oracle(zd, n, c, tau, 1e-8);
            zd[i] = keep;
            fd[i] = (float)((lp - lm) / (2 * h));
        }
        snprintf(label, sizeof label, "simclr_loss [%d,%d] tau %g: grad vs double finite differences", n, c,
                 (double)tau);
        relate_test_check_close(label, p->grad, fd, (size_t)n * c, 1e-5);

        /* The graph op's own float finite differences (h = 1e-2), as tests/nn/test_graph_ops.c. */
        const float hf = 1e-2f;
        int m = n * c < 64 ? n * c : 64;
        float an[64], fdf[64];
        relate_graph_set_grad_enabled(g, false);
        for (int i = 0; i < m; i++) {
            float keep = p->data[i];
            double l[2];
            for (int s = 0; s < 2; s++) {
                p->data[i] = keep + (s ? -hf : hf);
                relate_graph_reset(g);
                relate_tensor *lv = relate_simclr_loss(g, relate_param_tensor(g, p), tau, 1e-8f);
                l[s] = lv ? lv->data[0] : NAN;
            }
            p->data[i] = keep;
            fdf[i] = (float)((l[0] - l[1]) / (2.0 * hf));
            an[i] = p->grad[i];
        }
        relate_graph_set_grad_enabled(g, true);
        snprintf(label, sizeof label, "simclr_loss [%d,%d] tau %g: grad vs float finite differences of the op", n,
                 c, (double)tau);
        relate_test_check_close(label, an, fdf, (size_t)m, 1e-2);
        free(fd);
    }
    relate_graph_destroy(g);
    relate_params_free(&store);
    free(zd);
}

/* Repeated calls give the same bits; 1 and 2 threads agree closely; the backward accumulates. */
static void check_threads(void)
{
    const int n = 256, c = 64;
    float *z = malloc((size_t)n * c * sizeof *z), *dz[3];
    float *s = malloc((size_t)n * n * sizeof *s), *e = malloc((size_t)n * n * sizeof *e);
    float *scratch = malloc(2 * (size_t)n * n * sizeof *scratch), norms[256], den[256], loss[3];
    relate_test_fill(z, (size_t)n * c, 77);
    const int keep = relate_get_threads();
    for (int t = 0; t < 3; t++) {
        relate_set_threads(t == 0 ? 1 : 2);
        dz[t] = calloc((size_t)n * c, sizeof *dz[t]);
        loss[t] = relate_simclr_loss_forward(s, e, norms, den, z, n, c, 0.5f, 1e-8f);
        relate_simclr_loss_backward(dz[t], 1.0f, s, e, norms, den, z, n, c, 0.5f, 1e-8f, scratch);
    }
    CHECK(loss[1] == loss[2] && memcmp(dz[1], dz[2], (size_t)n * c * sizeof(float)) == 0);
    relate_test_check_close("simclr_loss 1 vs 2 threads: loss", &loss[0], &loss[1], 1, 1e-6);
    relate_test_check_close("simclr_loss 1 vs 2 threads: grad", dz[0], dz[1], (size_t)n * c, 1e-5);
    relate_simclr_loss_backward(dz[2], 1.0f, s, e, norms, den, z, n, c, 0.5f, 1e-8f, scratch);
    for (int i = 0; i < n * c; i++)
        dz[0][i] = 2.0f * dz[1][i];
    relate_test_check_close("simclr_loss backward accumulates", dz[2], dz[0], (size_t)n * c, 1e-6);
    relate_set_threads(keep);
    free(z), free(dz[0]), free(dz[1]), free(dz[2]), free(s), free(e), free(scratch);
}

int main(void)
{
    check_shape(6, 5, 0.5f, 1.0f, 1);
    check_shape(4, 3, 0.5f, 1.0f, 2);  /* B = 2 */
    check_shape(10, 8, 0.5f, 3.0f, 3); /* larger norms: sharper exponentials */
    check_shape(8, 4, 1.0f, 1.0f, 4);  /* another temperature */
    check_threads();
    return relate_test_finish();
}
