/* test_dist.c: the collectives of relate/dist.h, run by ctest under `mpirun --oversubscribe -np N`
 * for N = 1, 2, 3 (and once without a launcher). Sums of integers are exact, so they are checked
 * against their closed forms; sums of random floats must come back bit-identical on every rank
 * (each rank compares its result with rank 0's after a gather). Also the gather order and a
 * broadcast from the last rank. Every rank checks; the exit status is the launcher's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relate/dist.h"
#include "relate/rng.h"
#include "test_util.h"

int main(int argc, char **argv)
{
    const int want_size = argc > 1 ? atoi(argv[1]) : 1;
    relate_error err = {0};
    CHECK_MSG(relate_dist_init(&err) == RELATE_OK, "%s", err.msg);
    const int rank = relate_dist_rank(), size = relate_dist_size();
    CHECK_MSG(size == want_size && rank >= 0 && rank < size, "rank %d of %d, want %d ranks", rank, size, want_size);
    CHECK(relate_dist_launcher_size() == want_size);
    CHECK(relate_dist_init(&err) == RELATE_OK && relate_dist_size() == size); /* idempotent */

    /* integers: exact */
    enum { N = 1000 };
    float f[N];
    double d[N];
    for (int i = 0; i < N; i++) {
        f[i] = (float)(rank + 1) * (float)i;
        d[i] = (double)(rank + 1) * 0.5 * (double)i;
    }
    CHECK(relate_dist_allreduce_sum_f32(f, N, &err) == RELATE_OK);
    CHECK(relate_dist_allreduce_sum_f64(d, N, &err) == RELATE_OK);
    const double tri = (double)size * (size + 1) / 2; /* 1 + 2 + ... + size */
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += f[i] != (float)(tri * i) || d[i] != tri * 0.5 * i;
    CHECK_MSG(bad == 0, "rank %d: %d wrong sums", rank, bad);

    /* random floats: the same bits everywhere */
    relate_rng r;
    relate_rng_init(&r, 7, (uint32_t)rank, 0, RELATE_PURPOSE_TEST);
    for (int i = 0; i < N; i++)
        f[i] = (float)relate_rng_normal(&r) * 1e3f;
    CHECK(relate_dist_allreduce_sum_f32(f, N, &err) == RELATE_OK);
    float *all = malloc(sizeof(float) * N * (size_t)size);
    CHECK(relate_dist_allgather_f32(f, N, all, &err) == RELATE_OK);
    for (int k = 0; k < size; k++)
        CHECK_MSG(memcmp(all + (size_t)k * N, f, sizeof f) == 0, "rank %d's sums differ from rank %d's", rank, k);
    free(all);

    /* gather order: rank k's rows come k-th */
    float mine[3] = {(float)rank, (float)rank + 0.25f, -1.0f}, got[3 * 8];
    if (size <= 8) {
        CHECK(relate_dist_allgather_f32(mine, 3, got, &err) == RELATE_OK);
        for (int k = 0; k < size; k++)
            CHECK(got[3 * k] == (float)k && got[3 * k + 1] == (float)k + 0.25f && got[3 * k + 2] == -1.0f);
    }

    /* broadcast from the last rank; an out-of-range root is an error, not a hang */
    char text[32];
    snprintf(text, sizeof text, "from rank %d", rank);
    CHECK(relate_dist_broadcast(text, sizeof text, size - 1, &err) == RELATE_OK);
    char want[32];
    snprintf(want, sizeof want, "from rank %d", size - 1);
    CHECK_MSG(strcmp(text, want) == 0, "rank %d got '%s'", rank, text);
    CHECK(relate_dist_broadcast(text, 1, size, &err) == RELATE_ERR_ARG && strstr(err.msg, "broadcast from rank"));
    CHECK(relate_dist_barrier(&err) == RELATE_OK);
    relate_dist_finalize();
    CHECK(relate_dist_size() == 1 && relate_dist_rank() == 0);
    return relate_test_finish();
}
