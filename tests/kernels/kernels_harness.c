/* kernels_harness.c: the generic harness of the kernel tests (see kernels_harness.h): run_case
 * checks one op instance for determinism (two runs, bit for bit), against its naive reference,
 * for accumulating into existing gradients and skipping NULL ones, and by finite differences.
 * Not any kernel's own checks (those are in kernels_*.c; main is in test_kernels.c). */
#include <stdlib.h>
#include <string.h>

#include "kernels_harness.h"
#include "test_util.h"

static uint64_t seed_ctr = 1;

float *falloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p)
        abort();
    return p;
}

float *frand(size_t n)
{
    float *p = falloc(n);
    relate_test_fill(p, n, seed_ctr++);
    return p;
}

static double dotd(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

void push_from_zero(float *x, size_t n, float gap)
{
    for (size_t i = 0; i < n; i++)
        x[i] += x[i] >= 0 ? gap : -gap;
}

void distinct_fill(float *x, size_t n, float gap)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)((i * 7919u + 13u) % n) - 0.5 * (double)n) * gap;
}

/* ------------------------------------------------------------------ generic harness */
void check_bits(const char *what, const char *name, const void *a, const void *b, size_t bytes)
{
    CHECK_MSG(memcmp(a, b, bytes) == 0, "%s: %s not bit-identical across two runs", name, what);
}

void run_case(tcase *c, int fd)
{
    char nm[256];
    float *r = frand(c->ny), *y = falloc(c->ny), *y2 = falloc(c->ny);
    float *g[MAXIN] = {0}, *g2[MAXIN] = {0}, *acc[MAXIN] = {0}, *want[MAXIN] = {0},
          *nul[MAXIN] = {0};
    c->fwd(c, y);
    c->fwd(c, y2);
    check_bits("forward", c->name, y, y2, c->ny * sizeof(float));
    for (int j = 0; j < c->nin; j++) {
        g[j] = falloc(c->nel[j]);
        g2[j] = falloc(c->nel[j]);
    }
    c->bwd(c, g, r);
    c->bwd(c, g2, r);
    for (int j = 0; j < c->nin; j++)
        check_bits("backward", c->name, g[j], g2[j], c->nel[j] * sizeof(float));

    if (c->ref) {
        float *yr = falloc(c->ny), *gr[MAXIN] = {0};
        for (int j = 0; j < c->nin; j++)
            gr[j] = falloc(c->nel[j]);
        c->ref(c, yr, gr, r);
        snprintf(nm, sizeof nm, "%s: forward vs reference", c->name);
        relate_test_check_close(nm, y, yr, c->ny, REF_BOUND);
        for (int j = 0; j < c->nin; j++) {
            snprintf(nm, sizeof nm, "%s: grad of input %d vs reference", c->name, j);
            relate_test_check_close(nm, g[j], gr[j], c->nel[j], REF_BOUND);
            free(gr[j]);
        }
        free(yr);
    }

    /* Accumulate: a second backward onto arbitrary existing gradients must add to them. */
    for (int j = 0; j < c->nin; j++) {
        acc[j] = frand(c->nel[j]);
        want[j] = falloc(c->nel[j]);
        for (size_t i = 0; i < c->nel[j]; i++)
            want[j][i] = acc[j][i] + g[j][i];
    }
    c->bwd(c, acc, r);
    for (int j = 0; j < c->nin; j++) {
        snprintf(nm, sizeof nm, "%s: backward accumulates into input %d", c->name, j);
        relate_test_check_close(nm, acc[j], want[j], c->nel[j], 1e-6);
    }
    /* NULL skip: each gradient alone equals its share of the full backward; none at all must
     * neither crash nor touch anything (ASan builds watch the writes). */
    if (c->nin > 1) {
        for (int j = 0; j < c->nin; j++) {
            float *only[MAXIN] = {0};
            only[j] = falloc(c->nel[j]);
            c->bwd(c, only, r);
            snprintf(nm, sizeof nm, "%s: backward with only input %d", c->name, j);
            relate_test_check_close(nm, only[j], g[j], c->nel[j], 1e-6);
            free(only[j]);
        }
    }
    c->bwd(c, nul, r);

    if (fd) {
        double num[FD_PROBES], ana[FD_PROBES];
        for (int j = 0; j < c->nin; j++) {
            const size_t n = c->nel[j], probes = n < FD_PROBES ? n : FD_PROBES;
            for (size_t k = 0; k < probes; k++) {
                const size_t i = k * n / probes;
                const float s = c->in[j][i], up = s + c->h, dn = s - c->h;
                c->in[j][i] = up;
                c->fwd(c, y2);
                const double lp = dotd(y2, r, c->ny);
                c->in[j][i] = dn;
                c->fwd(c, y2);
                const double lm = dotd(y2, r, c->ny);
                c->in[j][i] = s;
                num[k] = (lp - lm) / ((double)up - (double)dn);
                ana[k] = g[j][i];
            }
            const double e = relate_test_rel_err_f64(ana, num, probes);
            CHECK_MSG(e <= FD_BOUND, "%s: finite differences of input %d: rel err %.3g", c->name, j, e);
            if (getenv("RELATE_TEST_VERBOSE"))
                printf("%s: FD input %d rel err %.3g\n", c->name, j, e);
        }
        c->fwd(c, y2); /* leave aux state (saved stats, argmax) as of the true inputs */
    }
    for (int j = 0; j < c->nin; j++) {
        free(g[j]);
        free(g2[j]);
        free(acc[j]);
        free(want[j]);
    }
    free(r);
    free(y);
    free(y2);
}
