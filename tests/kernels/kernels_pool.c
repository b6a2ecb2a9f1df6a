/* kernels_pool.c: average, max and global average pooling against naive references and finite
 * differences; max pooling's argmax, ties, NaN and -inf; pooling dims validation.
 * Not convolution (that is in kernels_conv.c). */
#include <math.h>
#include <stdlib.h>

#include "kernels/kernels.h"
#include "kernels_harness.h"
#include "test_util.h"

/* ------------------------------------------------------------------ pooling */
typedef struct {
    relate_pool2d_dims d;
    int32_t *argmax;
    int hw; /* global pool */
} pool_aux;

static void avg_fwd(tcase *c, float *y)
{
    pool_aux *a = c->aux;
    relate_avgpool2d_forward(y, c->in[0], &a->d);
}

static void avg_bwd(tcase *c, float *const *g, const float *dy)
{
    pool_aux *a = c->aux;
    relate_avgpool2d_backward(g[0], dy, &a->d);
}

/* Output (oy, ox) covers input (iy, ix) iff the window start is within k-1 before it. */
static int covers(const relate_pool2d_dims *d, int oy, int ox, int iy, int ix)
{
    const int y0 = oy * d->stride - d->pad, x0 = ox * d->stride - d->pad;
    return iy >= y0 && iy < y0 + d->k && ix >= x0 && ix < x0 + d->k;
}

static void avg_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    pool_aux *a = c->aux;
    const relate_pool2d_dims *d = &a->d;
    for (int p = 0; p < d->n * d->c; p++) {
        const float *xp = c->in[0] + (size_t)p * d->h * d->w;
        for (int oy = 0; oy < d->ho; oy++)
            for (int ox = 0; ox < d->wo; ox++) {
                double s = 0;
                for (int iy = 0; iy < d->h; iy++)
                    for (int ix = 0; ix < d->w; ix++)
                        if (covers(d, oy, ox, iy, ix))
                            s += xp[iy * d->w + ix];
                y[((size_t)p * d->ho + oy) * d->wo + ox] = (float)(s / (d->k * d->k));
            }
        for (int iy = 0; iy < d->h; iy++)
            for (int ix = 0; ix < d->w; ix++) {
                double s = 0;
                for (int oy = 0; oy < d->ho; oy++)
                    for (int ox = 0; ox < d->wo; ox++)
                        if (covers(d, oy, ox, iy, ix))
                            s += dy[((size_t)p * d->ho + oy) * d->wo + ox];
                g[0][((size_t)p * d->h + iy) * d->w + ix] = (float)(s / (d->k * d->k));
            }
    }
}

static void max_fwd(tcase *c, float *y)
{
    pool_aux *a = c->aux;
    relate_maxpool2d_forward(y, a->argmax, c->in[0], &a->d);
}

static void max_bwd(tcase *c, float *const *g, const float *dy)
{
    pool_aux *a = c->aux;
    relate_maxpool2d_backward(g[0], dy, a->argmax, &a->d);
}

static void max_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    pool_aux *a = c->aux;
    const relate_pool2d_dims *d = &a->d;
    for (int p = 0; p < d->n * d->c; p++) {
        const float *xp = c->in[0] + (size_t)p * d->h * d->w;
        for (int oy = 0; oy < d->ho; oy++)
            for (int ox = 0; ox < d->wo; ox++) {
                int best = -1;
                for (int iy = 0; iy < d->h; iy++)
                    for (int ix = 0; ix < d->w; ix++)
                        if (covers(d, oy, ox, iy, ix) && (best < 0 || xp[iy * d->w + ix] > xp[best]))
                            best = iy * d->w + ix;
                const size_t o = ((size_t)p * d->ho + oy) * d->wo + ox;
                y[o] = xp[best];
                CHECK_MSG(a->argmax[o] == best, "%s: argmax %d, want %d", c->name, a->argmax[o], best);
                g[0][(size_t)p * d->h * d->w + best] += dy[o];
            }
    }
}

static void gap_fwd(tcase *c, float *y)
{
    pool_aux *a = c->aux;
    relate_global_avgpool_forward(y, c->in[0], a->d.n, a->d.c, a->hw);
}

static void gap_bwd(tcase *c, float *const *g, const float *dy)
{
    pool_aux *a = c->aux;
    relate_global_avgpool_backward(g[0], dy, a->d.n, a->d.c, a->hw);
}

static void gap_ref(tcase *c, float *y, float *const *g, const float *dy)
{
    pool_aux *a = c->aux;
    for (int r = 0; r < a->d.n * a->d.c; r++) {
        double s = 0;
        for (int j = 0; j < a->hw; j++)
            s += c->in[0][(size_t)r * a->hw + j];
        y[r] = (float)(s / a->hw);
        for (int j = 0; j < a->hw; j++)
            g[0][(size_t)r * a->hw + j] = (float)((double)dy[r] / a->hw);
    }
}

void test_pool(int fd)
{
    static const int shapes[][7] = {
        /* n, c, h, w, k, stride, pad */
        {2, 3, 7, 7, 3, 2, 1}, {1, 3, 8, 9, 2, 2, 0}, {2, 2, 5, 5, 3, 1, 1}, {1, 1, 1, 1, 1, 1, 0},
        {2, 3, 11, 10, 3, 3, 1}, {1, 2, 6, 6, 5, 1, 2}, {2, 8, 48, 48, 3, 2, 1},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *q = shapes[s];
        pool_aux a = {.d = {.n = q[0], .c = q[1], .h = q[2], .w = q[3], .k = q[4], .stride = q[5], .pad = q[6]}};
        CHECK(relate_pool2d_dims_init(&a.d) == 0);
        const size_t nin = (size_t)a.d.n * a.d.c * a.d.h * a.d.w;
        const size_t nout = (size_t)a.d.n * a.d.c * a.d.ho * a.d.wo;
        a.argmax = malloc((nout ? nout : 1) * sizeof(int32_t));
        char name[128];
        snprintf(name, sizeof name, "avgpool n%d c%d %dx%d k%d s%d p%d t%d", q[0], q[1], q[2], q[3],
                 q[4], q[5], q[6], relate_get_threads());
        tcase t = {.name = name, .nin = 1, .in = {frand(nin)}, .nel = {nin}, .ny = nout,
                   .fwd = avg_fwd, .bwd = avg_bwd, .ref = avg_ref, .aux = &a, .h = 1e-2f};
        run_case(&t, fd);
        /* Distinct values 1e-2 apart, probed with h = 1e-3: the winner never changes. */
        distinct_fill(t.in[0], nin, 1e-2f);
        t.name = name;
        snprintf(name, sizeof name, "maxpool n%d c%d %dx%d k%d s%d p%d t%d", q[0], q[1], q[2], q[3],
                 q[4], q[5], q[6], relate_get_threads());
        t.fwd = max_fwd, t.bwd = max_bwd, t.ref = max_ref, t.h = 1e-3f;
        run_case(&t, fd);
        free(t.in[0]);
        free(a.argmax);

        a.hw = q[2] * q[3];
        snprintf(name, sizeof name, "global avgpool n%d c%d hw%d t%d", q[0], q[1], a.hw, relate_get_threads());
        tcase gp = {.name = name, .nin = 1, .in = {frand(nin)}, .nel = {nin},
                    .ny = (size_t)a.d.n * a.d.c, .fwd = gap_fwd, .bwd = gap_bwd, .ref = gap_ref,
                    .aux = &a, .h = 1e-2f};
        run_case(&gp, fd);
        free(gp.in[0]);
    }

    /* Ties keep the first in scan order; NaN wins; padding never wins over real -inf inputs. */
    relate_pool2d_dims d = {.n = 1, .c = 1, .h = 3, .w = 3, .k = 3, .stride = 1, .pad = 1};
    CHECK(relate_pool2d_dims_init(&d) == 0 && d.ho == 3 && d.wo == 3);
    float x[9] = {1, 5, 5, 5, 2, 0, 0, 0, 0}, y[9];
    int32_t am[9];
    relate_maxpool2d_forward(y, am, x, &d);
    CHECK(y[4] == 5 && am[4] == 1 && am[0] == 1 && am[3] == 1);
    x[8] = NAN;
    relate_maxpool2d_forward(y, am, x, &d);
    CHECK(isnan(y[4]) && am[4] == 8 && isnan(y[8]) && !isnan(y[0]));
    for (int i = 0; i < 9; i++)
        x[i] = -INFINITY;
    relate_maxpool2d_forward(y, am, x, &d);
    CHECK(y[0] == -INFINITY && am[0] == 0 && am[8] == 4);
}

void test_pool_dims(void)
{
    relate_pool2d_dims ok = {.n = 1, .c = 1, .h = 112, .w = 112, .k = 3, .stride = 2, .pad = 1};
    CHECK(relate_pool2d_dims_init(&ok) == 0 && ok.ho == 56 && ok.wo == 56);
    relate_pool2d_dims fl = {.n = 1, .c = 1, .h = 8, .w = 9, .k = 2, .stride = 2, .pad = 0};
    CHECK(relate_pool2d_dims_init(&fl) == 0 && fl.ho == 4 && fl.wo == 4); /* floor mode */
    const relate_pool2d_dims bad[] = {
        {.n = 1, .c = 1, .h = 5, .w = 5, .k = 3, .stride = 1, .pad = 2}, /* pad > k/2 */
        {.n = 1, .c = 1, .h = 2, .w = 5, .k = 3, .stride = 1, .pad = 0}, /* window taller */
        {.n = 1, .c = 1, .h = 5, .w = 2, .k = 3, .stride = 1, .pad = 0},
        {.n = 1, .c = 1, .h = 5, .w = 5, .k = 3, .stride = 0, .pad = 0},
        {.n = 1, .c = 1, .h = 5, .w = 5, .k = 0, .stride = 1, .pad = 0},
        {.n = 1, .c = 1, .h = 5, .w = 5, .k = 3, .stride = 1, .pad = -1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        relate_pool2d_dims d = bad[i];
        CHECK_MSG(relate_pool2d_dims_init(&d) == -1, "bad pool dims #%zu accepted", i);
    }
}
