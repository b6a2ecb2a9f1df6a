/* test_util.c: implementation of the shared test kit.
 * Not linked into librelate: tests only. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "relate/rng.h"

int relate_test_passed, relate_test_failed;

double relate_test_rel_err(const float *got, const float *want, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (isnan(d))
            return INFINITY;
        if (d > num)
            num = d;
        if (fabs(want[i]) > den)
            den = fabs(want[i]);
    }
    if (num == 0)
        return 0;
    return den > 0 ? num / den : INFINITY;
}

double relate_test_rel_err_f64(const double *got, const double *want, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]);
        if (isnan(d))
            return INFINITY;
        if (d > num)
            num = d;
        if (fabs(want[i]) > den)
            den = fabs(want[i]);
    }
    if (num == 0)
        return 0;
    return den > 0 ? num / den : INFINITY;
}

int relate_test_check_close(const char *name, const float *got, const float *want, size_t n,
                            double bound)
{
    double e = relate_test_rel_err(got, want, n);
    int ok = e <= bound;
    if (ok)
        relate_test_passed++;
    else
        relate_test_failed++;
    if (!ok || getenv("RELATE_TEST_VERBOSE"))
        fprintf(ok ? stdout : stderr, "%s %s: rel err %.3g (bound %.1g)\n", ok ? "ok  " : "FAIL",
                name, e, bound);
    return ok;
}

const float *relate_test_golden(const relate_safetensors *st, const char *name, int64_t numel)
{
    const relate_st_tensor *t = relate_safetensors_find(st, name);
    if (!t || strcmp(t->dtype, "F32") != 0 || (numel >= 0 && t->numel != numel)) {
        relate_test_failed++;
        fprintf(stderr, "golden tensor %s: %s\n", name,
                !t ? "missing" : strcmp(t->dtype, "F32") ? "not F32" : "wrong element count");
        return NULL;
    }
    return (const float *)t->data;
}

void relate_test_open_golden(relate_safetensors *st, const char *file)
{
    char path[4096];
    relate_error err = {0};
    snprintf(path, sizeof path, "%s/%s", RELATE_GOLDEN_DIR, file);
    if (relate_safetensors_open(st, path, &err) != RELATE_OK) {
        fprintf(stderr, "cannot open golden file: %s\n", err.msg);
        exit(1);
    }
}

void relate_test_fill(float *x, size_t n, uint64_t seed)
{
    relate_rng r;
    relate_rng_init(&r, seed, 0, 0, RELATE_PURPOSE_TEST);
    for (size_t i = 0; i < n; i++)
        x[i] = 2.0f * relate_rng_uniform(&r) - 1.0f;
}

int relate_test_require_all(void)
{
    const char *v = getenv("RELATE_REQUIRE_ALL");
    return v && strcmp(v, "1") == 0;
}

int relate_test_skip(const char *what, const char *why, const char *how)
{
    if (relate_test_require_all()) {
        relate_test_failed++;
        fprintf(stderr, "FAIL (RELATE_REQUIRE_ALL=1, nothing may be skipped): %s: %s (install: %s)\n", what, why, how);
        return 1;
    }
    printf("SKIP %s: %s (install: %s; RELATE_REQUIRE_ALL=1 makes this a failure)\n", what, why, how);
    return 0;
}

int relate_test_finish(void)
{
    printf("%d passed, %d failed\n", relate_test_passed, relate_test_failed);
    return relate_test_failed ? 1 : 0;
}

void relate_test_param_fill(float *out, int64_t numel, uint32_t tag, int64_t fan_in)
{
    const float scale = (float)((1.0 / sqrt((double)fan_in)) / 8388608.0);
    for (int64_t i = 0; i < numel; i++) {
        uint32_t x = (uint32_t)(i + 1) * 0x9E3779B1u + tag * 0x85EBCA77u;
        x ^= x >> 15;
        x *= 0x2C1B3C6Du;
        x ^= x >> 12;
        x *= 0x297A2D39u;
        x ^= x >> 15;
        const int32_t q = (int32_t)(x >> 8) - (1 << 23);
        out[i] = (float)q * scale;
    }
}
