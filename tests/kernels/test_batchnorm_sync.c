/* test_batchnorm_sync.c: synchronised batch norm (src/kernels/batchnorm.c, issue 12) against the
 * one-process kernels on the concatenated batch. R replicas (R = 1..4, uneven shares) run as
 * threads of this process; their reduction sums every replica's buffer in replica order behind
 * a barrier, as relate_dist_allreduce_sum_f64 does across processes (test_dist runs that under
 * mpirun). Checked, forward and backward, for [N, C, H, W] with the fused residual + ReLU and
 * for BatchNorm1d: outputs and input gradients equal the one-process ones up to summation order
 * (stated bounds, measured errors printed), saved and running statistics bit-identical on every
 * replica, dgamma and dbeta summed over replicas equal to the one-process ones, and one replica
 * bit-identical to the one-process kernels. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "relate/rng.h"
#include "test_util.h"

enum { MAXR = 4, MAXLEN = 1024 };

typedef struct group {
    int replicas;
    pthread_barrier_t bar;
    double slot[MAXR][MAXLEN];
} group;

typedef struct replica {
    group *g;
    int r;
} replica;

/* Every replica's buffer summed in replica order, written back to each. */
static int reduce(double *buf, size_t len, void *user)
{
    replica *me = user;
    group *g = me->g;
    if (len > MAXLEN)
        return -1;
    memcpy(g->slot[me->r], buf, len * sizeof *buf);
    pthread_barrier_wait(&g->bar);
    for (size_t i = 0; i < len; i++) {
        double s = 0;
        for (int k = 0; k < g->replicas; k++)
            s += g->slot[k][i];
        buf[i] = s;
    }
    pthread_barrier_wait(&g->bar); /* nobody overwrites a slot before all have read it */
    return 0;
}

typedef struct job {
    replica rep;
    int n0, n, c, hw;
    bool relu, residual;
    const float *x, *res, *gamma, *beta, *dy;
    /* outputs of this replica: rows n0..n0+n of the whole batch's arrays, and its own stats */
    float *y, *dx, *dres, mean[64], invstd[64], rmean[64], rvar[64], dgamma[64], dbeta[64];
    int rc;
} job;

static void *run(void *arg)
{
    job *j = arg;
    const size_t off = (size_t)j->n0 * j->c * j->hw;
    for (int ch = 0; ch < j->c; ch++) {
        j->rmean[ch] = 0.1f * ch;
        j->rvar[ch] = 1.0f + 0.01f * ch;
        j->dgamma[ch] = j->dbeta[ch] = 0;
    }
    relate_bn_epilogue ep = {j->residual ? j->res + off : NULL, j->relu};
    j->rc = relate_batchnorm_forward_train_sync(j->y + off, j->mean, j->invstd, j->x + off, j->gamma, j->beta, j->rmean,
                                                j->rvar, j->n, j->c, j->hw, 0.1f, 1e-5f,
                                                j->relu || j->residual ? &ep : NULL, reduce, &j->rep);
    if (!j->rc)
        j->rc = relate_batchnorm_backward_train_sync(j->dx + off, j->dgamma, j->dbeta, j->dy + off, j->x + off,
                                                     j->mean, j->invstd, j->gamma, j->n, j->c, j->hw,
                                                     j->relu ? j->y + off : NULL, j->residual ? j->dres + off : NULL,
                                                     reduce, &j->rep);
    return NULL;
}

static double max_rel(const float *a, const float *b, size_t n)
{
    double scale = 1e-30, d = 0;
    for (size_t i = 0; i < n; i++) {
        scale = fmax(scale, fabs((double)b[i]));
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
    }
    return d / scale;
}

static void check_case(int N, int c, int hw, bool relu, bool residual, int R)
{
    const size_t total = (size_t)N * c * hw;
    float *x = malloc(total * 4), *res = malloc(total * 4), *dy = malloc(total * 4), gamma[64], beta[64];
    relate_rng g;
    relate_rng_init(&g, 11, (uint32_t)(N * 100 + c), (uint32_t)hw, RELATE_PURPOSE_TEST);
    for (size_t i = 0; i < total; i++) {
        x[i] = (float)relate_rng_normal(&g) * 2.0f + 3.0f; /* a large mean: the two-pass variance matters */
        res[i] = (float)relate_rng_normal(&g);
        dy[i] = (float)relate_rng_normal(&g);
    }
    for (int ch = 0; ch < c; ch++) {
        gamma[ch] = 0.5f + 0.1f * ch;
        beta[ch] = -0.2f * ch;
    }
    /* the one-process reference on the whole batch */
    float *y1 = calloc(total, 4), *dx1 = calloc(total, 4), *dres1 = calloc(total, 4), m1[64], s1[64], rm1[64], rv1[64],
          dg1[64] = {0}, db1[64] = {0};
    for (int ch = 0; ch < c; ch++) {
        rm1[ch] = 0.1f * ch;
        rv1[ch] = 1.0f + 0.01f * ch;
    }
    relate_bn_epilogue ep = {residual ? res : NULL, relu};
    const relate_bn_epilogue *epp = relu || residual ? &ep : NULL;
    relate_batchnorm_forward_train_ep(y1, m1, s1, x, gamma, beta, rm1, rv1, N, c, hw, 0.1f, 1e-5f, epp);
    if (hw > 1 || (!relu && !residual)) {
        relate_batchnorm_backward_train_ep(dx1, dg1, db1, dy, x, m1, s1, gamma, N, c, hw, relu ? y1 : NULL,
                                           residual ? dres1 : NULL, 0);
    } else { /* BatchNorm1d's fused op masks first and calls the plain backward */
        float *dz = malloc(total * 4);
        for (size_t i = 0; i < total; i++)
            dz[i] = relu && !(y1[i] > 0.0f) ? 0.0f : dy[i];
        if (residual)
            memcpy(dres1, dz, total * 4);
        relate_batchnorm_backward_train(dx1, dg1, db1, dz, x, m1, s1, gamma, N, c, hw);
        free(dz);
    }

    group grp;
    grp.replicas = R;
    pthread_barrier_init(&grp.bar, NULL, (unsigned)R);
    job jobs[MAXR];
    float *y = calloc(total, 4), *dx = calloc(total, 4), *dres = calloc(total, 4);
    pthread_t th[MAXR];
    for (int r = 0; r < R; r++) {
        const int a = N * r / R, b = N * (r + 1) / R;
        jobs[r] = (job){.rep = {&grp, r}, .n0 = a, .n = b - a, .c = c, .hw = hw, .relu = relu, .residual = residual,
                        .x = x, .res = res, .gamma = gamma, .beta = beta, .dy = dy, .y = y, .dx = dx, .dres = dres};
        pthread_create(&th[r], NULL, run, &jobs[r]);
    }
    for (int r = 0; r < R; r++)
        pthread_join(th[r], NULL);
    pthread_barrier_destroy(&grp.bar);

    int diff_stats = 0, rcs = 0;
    float dg[64] = {0}, db[64] = {0};
    for (int r = 0; r < R; r++) {
        rcs += jobs[r].rc != 0;
        diff_stats += memcmp(jobs[r].mean, jobs[0].mean, (size_t)c * 4) || memcmp(jobs[r].invstd, jobs[0].invstd, (size_t)c * 4) ||
                      memcmp(jobs[r].rmean, jobs[0].rmean, (size_t)c * 4) || memcmp(jobs[r].rvar, jobs[0].rvar, (size_t)c * 4);
        for (int ch = 0; ch < c; ch++) {
            dg[ch] += jobs[r].dgamma[ch];
            db[ch] += jobs[r].dbeta[ch];
        }
    }
    CHECK(rcs == 0);
    CHECK_MSG(diff_stats == 0, "N %d C %d HW %d, %d replicas: statistics differ between replicas", N, c, hw, R);
    const double ey = max_rel(y, y1, total), edx = max_rel(dx, dx1, total), edr = max_rel(dres, dres1, total);
    const double est = fmax(fmax(max_rel(jobs[0].mean, m1, (size_t)c), max_rel(jobs[0].invstd, s1, (size_t)c)),
                            fmax(max_rel(jobs[0].rmean, rm1, (size_t)c), max_rel(jobs[0].rvar, rv1, (size_t)c)));
    const double eg = fmax(max_rel(dg, dg1, (size_t)c), max_rel(db, db1, (size_t)c));
    printf("N %3d C %2d HW %3d relu %d residual %d, %d replicas: y %.1e dx %.1e dres %.1e stats %.1e dgamma/dbeta %.1e\n",
           N, c, hw, relu, residual, R, ey, edx, edr, est, eg);
    /* summation order only: a few float ulps of the largest value */
    CHECK_MSG(ey <= 4e-7 && est <= 4e-7 && edr == 0, "forward: y %.2e stats %.2e dres %.2e", ey, est, edr);
    CHECK_MSG(edx <= 2e-6 && eg <= 2e-6, "backward: dx %.2e dgamma/dbeta %.2e", edx, eg);
    if (R == 1)
        CHECK_MSG(ey == 0 && est == 0 && edx == 0 && eg == 0, "one replica is not the one-process kernel bit for bit");
    free(x), free(res), free(dy), free(y1), free(dx1), free(dres1), free(y), free(dx), free(dres);
}

int main(void)
{
    for (int R = 1; R <= MAXR; R++) {
        check_case(7, 5, 36, true, true, R);     /* BatchNorm2d + residual + ReLU; 7 images, uneven */
        check_case(9, 3, 16, false, false, R);   /* plain BatchNorm2d */
        check_case(13, 64, 1, false, false, R);  /* BatchNorm1d (relationnet's head) */
        check_case(10, 64, 1, true, false, R);   /* BatchNorm1d + ReLU */
    }
    return relate_test_finish();
}
