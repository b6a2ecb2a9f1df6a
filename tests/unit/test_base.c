/* test_base.c: the base layer: Philox against its published known-answer vectors, the derived
 * distributions, the arena's alignment/reset/high-water rules, huge-page buffers, and error values.
 * Not a statistical test suite: the distribution checks are coarse moment checks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "base/arena.h"
#include "base/pages.h"
#include "relate/rng.h"
#include "relate/status.h"
#include "test_util.h"

static void check_philox_kat(void)
{
    /* Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors). */
    static const struct {
        uint32_t ctr[4], key[2], out[4];
    } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        uint32_t out[4];
        relate_philox4x32(out, kat[i].ctr, kat[i].key);
        CHECK_MSG(memcmp(out, kat[i].out, sizeof out) == 0, "vector %zu: %08x %08x %08x %08x", i, out[0], out[1],
                  out[2], out[3]);
    }
}

static void check_streams(void)
{
    relate_rng a, b, c;
    relate_rng_init(&a, 42, 1, 2, 3);
    relate_rng_init(&b, 42, 1, 2, 3);
    relate_rng_init(&c, 42, 1, 2, 4);
    int same = 1, differ = 0;
    for (int i = 0; i < 100; i++) {
        uint32_t x = relate_rng_u32(&a), y = relate_rng_u32(&b), z = relate_rng_u32(&c);
        same &= x == y;
        differ += x != z;
    }
    CHECK(same);
    CHECK(differ > 95);
}

static void check_distributions(void)
{
    relate_rng r;
    relate_rng_init(&r, 7, 0, 0, RELATE_PURPOSE_TEST);
    const int n = 200000;
    double s = 0, s2 = 0, us = 0, umin = 1, umax = 0;
    long below[10] = {0};
    for (int i = 0; i < n; i++) {
        double z = relate_rng_normal(&r);
        s += z;
        s2 += z * z;
        float u = relate_rng_uniform(&r);
        us += u;
        umin = fmin(umin, u);
        umax = fmax(umax, u);
        below[relate_rng_below(&r, 10)]++;
    }
    CHECK_MSG(fabs(s / n) < 0.01 && fabs(s2 / n - 1) < 0.02, "normal moments %g %g", s / n, s2 / n);
    CHECK_MSG(fabs(us / n - 0.5) < 0.005 && umin >= 0 && umax < 1, "uniform mean %g", us / n);
    for (int k = 0; k < 10; k++)
        CHECK_MSG(labs(below[k] - n / 10) < 800, "bucket %d: %ld", k, below[k]);
}

static void check_arena(void)
{
    relate_arena a;
    relate_arena_init(&a, 0);
    char *p1 = relate_arena_alloc(&a, 3);
    char *p2 = relate_arena_alloc(&a, 100);
    CHECK(((uintptr_t)p1 % 64) == 0 && ((uintptr_t)p2 % 64) == 0 && p2 >= p1 + 64);
    /* Force several blocks, then reset: one block of the high-water size remains. */
    for (int i = 0; i < 5; i++)
        CHECK(relate_arena_alloc(&a, 3u << 20) != NULL);
    size_t hw = a.high_water;
    CHECK(hw >= 15u << 20);
    relate_arena_reset(&a);
    CHECK(a.used == 0);
    size_t kept = a.reserved;
    (void)kept;
    void *q = relate_arena_alloc(&a, 15u << 20);
    CHECK(q != NULL);
#ifndef RELATE_ARENA_MALLOC
    /* Pooled mode (every build but the sanitizer one): the reset kept one block that fits the
     * high-water mark, so the same step allocates nothing new. */
    CHECK(kept >= hw && a.reserved == kept);
#endif
    relate_arena_reset(&a);
    unsigned char *z = relate_arena_calloc(&a, 4096);
    int zero = 1;
    for (int i = 0; i < 4096; i++)
        zero &= z[i] == 0;
    CHECK(zero);
    relate_arena_free(&a);
}

/* The kernel's THP mode: 1 when madvise(MADV_HUGEPAGE) makes a region eligible ("always" or
 * "madvise"), 0 for "never", -1 without the file (no THP in this kernel). */
static int thp_mode(void)
{
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f)
        return -1;
    char line[128] = {0};
    int mode = fgets(line, sizeof line, f) ? !strstr(line, "[never]") : -1;
    fclose(f);
    return mode;
}

/* The THPeligible field of the mapping of /proc/self/smaps that holds p, or -1. */
static int thp_eligible(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return -1;
    char line[512];
    int in = 0, found = -1;
    while (found < 0 && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (in && strncmp(line, "THPeligible:", 12) == 0)
            found = atoi(line + 12);
    }
    fclose(f);
    return found;
}

static void check_pages(void)
{
    size_t n = 100;
    void *small = relate_pages_alloc(&n);
    CHECK(small && n == 128 && (uintptr_t)small % 64 == 0);
    free(small);
    n = ((size_t)5 << 20) + 3;
    unsigned char *big = relate_pages_alloc(&n);
    CHECK_MSG(big && n == (size_t)6 << 20 && (uintptr_t)big % ((size_t)2 << 20) == 0, "%zu bytes at %p", n,
              (void *)big);
    if (big) {
        memset(big, 7, n); /* every byte is usable */
        int mode = thp_mode();
        if (mode >= 0) /* the advice reached the kernel exactly when the kernel can take it */
            CHECK_MSG(thp_eligible(big) == mode, "THPeligible %d with THP mode %d", thp_eligible(big), mode);
    }
    free(big);
}

static void check_errors(void)
{
    relate_error e = {0};
    CHECK(relate_error_set(&e, RELATE_ERR_IO, "first %d", 1) == RELATE_ERR_IO);
    relate_error_set(&e, RELATE_ERR_ARG, "second");
    CHECK(e.code == RELATE_ERR_IO && strcmp(e.msg, "first 1") == 0);
    CHECK(strcmp(relate_status_name(RELATE_ERR_SHAPE), "shape mismatch") == 0);
    CHECK(relate_error_set(NULL, RELATE_ERR_ARG, "ignored") == RELATE_ERR_ARG);
}

int main(void)
{
    check_philox_kat();
    check_streams();
    check_distributions();
    check_arena();
    check_pages();
    check_errors();
    return relate_test_finish();
}
