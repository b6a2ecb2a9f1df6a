/* test_util.h: the tiny assertion and comparison kit shared by relate's C tests.
 * Not a framework: each test is a plain executable that ctest runs; it prints every failed
 * check and one closing line "N passed, M failed", and exits non-zero on any failure. */
#ifndef RELATE_TEST_UTIL_H
#define RELATE_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "relate/safetensors.h"

extern int relate_test_passed, relate_test_failed;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (cond) {                                                                        \
            relate_test_passed++;                                                          \
        } else {                                                                           \
            relate_test_failed++;                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);       \
        }                                                                                  \
    } while (0)

#define CHECK_MSG(cond, ...)                                                               \
    do {                                                                                   \
        if (cond) {                                                                        \
            relate_test_passed++;                                                          \
        } else {                                                                           \
            relate_test_failed++;                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
        }                                                                                  \
    } while (0)

/* Norm-wise relative error: max_i |got_i - want_i| / max_i |want_i| (infinity norms), the
 * measure every "relative error at most ..." bound of relate's tests refers to. 0 when both are
 * all zeros. */
double relate_test_rel_err(const float *got, const float *want, size_t n);
double relate_test_rel_err_f64(const double *got, const double *want, size_t n);

/* Compares and reports: prints "name: rel err E (bound B)" when verbose or failing. */
int relate_test_check_close(const char *name, const float *got, const float *want, size_t n,
                            double bound);

/* Loads a golden F32 tensor by name and checks its element count (pass -1 to skip the check).
 * Fails the test (and returns NULL) when it is missing. */
const float *relate_test_golden(const relate_safetensors *st, const char *name, int64_t numel);
/* Opens tests/golden/<file> relative to RELATE_GOLDEN_DIR (set by CMake). Aborts on failure. */
void relate_test_open_golden(relate_safetensors *st, const char *file);

/* Deterministic fill in [-1, 1) for test inputs. */
void relate_test_fill(float *x, size_t n, uint64_t seed);

/* tools/golden_deepinfomax.py param_fill, bit for bit: head parameters the goldens set by an integer
 * hash (uniform in about +-1/sqrt(fan_in), PyTorch's default Linear range) instead of storing them. */
void relate_test_param_fill(float *out, int64_t numel, uint32_t tag, int64_t fan_in);

/* A part of a test that cannot run because a dependency is missing (a dataset, a package):
 * prints "SKIP what: why (install: how)" and, when the environment has RELATE_REQUIRE_ALL=1 (CI
 * sets it, so that a machine without the dependency cannot pass by skipping), counts a failure
 * instead. Returns 1 when it was a failure. */
int relate_test_skip(const char *what, const char *why, const char *how);
/* True when RELATE_REQUIRE_ALL=1: every dependency must be present and nothing may be skipped. */
int relate_test_require_all(void);

/* Prints the closing line and returns the process exit status. */
int relate_test_finish(void);

#endif
