/* test_dist.c: the collectives of relate/dist.h, run by ctest under `mpirun --oversubscribe -np N`
 * for N = 1, 2, 3 (and once without a launcher). Sums of integers are exact, so they are checked
 * against their closed forms; sums of random floats must come back bit-identical on every rank
 * (each rank compares its result with rank 0's after a gather). Also the gather order and a
 * broadcast from the last rank; and synchronised batch norm over the processes, whose every rank's
 * rows and statistics equal the one-process kernel's on the whole batch (test_batchnorm_sync
 * tests it with threads). Every rank checks; the exit status is the launcher's. */
#define _POSIX_C_SOURCE 200809L /* _exit */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "relate/dist.h"
#include "relate/graph.h"
#include "relate/nn.h"
#include "relate/train.h"
#include "relate/rng.h"
#include "test_util.h"

static int dist_reduce(double *buf, size_t len, void *user)
{
    return relate_dist_allreduce_sum_f64(buf, len, user) == RELATE_OK ? 0 : -1;
}

/* BatchNorm2d + ReLU over 7 images shared unevenly by the ranks, forward and backward. */
static void check_sync_batchnorm(int rank, int size)
{
    enum { NI = 7, C = 4, HW = 25, T = NI * C * HW };
    float x[T], dy[T], y1[T], dx1[T] = {0}, m1[C], s1[C], rm1[C] = {0}, rv1[C] = {1, 1, 1, 1}, dg1[C] = {0},
                                  db1[C] = {0}, gamma[C] = {1, 0.5f, 2, -1}, beta[C] = {0, 1, -1, 0.5f};
    relate_rng r;
    relate_rng_init(&r, 3, 0, 0, RELATE_PURPOSE_TEST); /* the same batch on every rank */
    for (int i = 0; i < T; i++) {
        x[i] = (float)relate_rng_normal(&r) + 1.0f;
        dy[i] = (float)relate_rng_normal(&r);
    }
    relate_bn_epilogue ep = {NULL, true};
    relate_batchnorm_forward_train_ep(y1, m1, s1, x, gamma, beta, rm1, rv1, NI, C, HW, 0.1f, 1e-5f, &ep);
    relate_batchnorm_backward_train_ep(dx1, dg1, db1, dy, x, m1, s1, gamma, NI, C, HW, y1, NULL, 0);
    const int a = NI * rank / size, b = NI * (rank + 1) / size;
    const size_t off = (size_t)a * C * HW, cnt = (size_t)(b - a) * C * HW;
    float y[T], dx[T] = {0}, m[C], s[C], rm[C] = {0}, rv[C] = {1, 1, 1, 1}, dg[C] = {0}, db[C] = {0};
    relate_error err = {0};
    CHECK(relate_batchnorm_forward_train_sync(y + off, m, s, x + off, gamma, beta, rm, rv, b - a, C, HW, 0.1f, 1e-5f,
                                              &ep, dist_reduce, &err) == 0);
    CHECK(relate_batchnorm_backward_train_sync(dx + off, dg, db, dy + off, x + off, m, s, gamma, b - a, C, HW, y + off,
                                               NULL, dist_reduce, &err) == 0);
    CHECK_MSG(memcmp(y + off, y1 + off, cnt * 4) == 0 && memcmp(m, m1, sizeof m) == 0 && memcmp(s, s1, sizeof s) == 0 &&
                  memcmp(rm, rm1, sizeof rm) == 0 && memcmp(rv, rv1, sizeof rv) == 0,
              "rank %d: synchronised forward differs from the one-process kernel", rank);
    double ddx = 0;
    for (size_t i = off; i < off + cnt; i++)
        ddx = fmax(ddx, fabs((double)dx[i] - dx1[i]));
    CHECK_MSG(ddx <= 1e-6, "rank %d: dx differs by %.2e", rank, ddx);
    /* the parameters' gradients: this rank's share, which the gradients' all-reduce adds up */
    CHECK(relate_dist_allreduce_sum_f32(dg, C, &err) == RELATE_OK && relate_dist_allreduce_sum_f32(db, C, &err) == RELATE_OK);
    for (int ch = 0; ch < C; ch++)
        CHECK_MSG(fabs(dg[ch] - dg1[ch]) <= 1e-5 * (1 + fabs(dg1[ch])) && fabs(db[ch] - db1[ch]) <= 1e-5 * (1 + fabs(db1[ch])),
                  "rank %d channel %d: dgamma %g vs %g, dbeta %g vs %g", rank, ch, dg[ch], dg1[ch], db[ch], db1[ch]);
}

/* relate_extract_features shares the split out by rank and gathers the rows: every rank ends
 * with the features of all 37 images, equal to one forward pass over them. */
static void check_sharded_features(int rank)
{
    enum { NI = 37, SIDE = 16 };
    relate_split sp = {.present = true, .count = NI, .width = SIDE, .height = SIDE};
    sp.pixels = malloc((size_t)NI * SIDE * SIDE * 3);
    sp.labels = malloc(NI * sizeof *sp.labels);
    for (int i = 0; i < NI * SIDE * SIDE * 3; i++)
        sp.pixels[i] = (uint8_t)(i * 37 + i / 7);
    for (int i = 0; i < NI; i++)
        sp.labels[i] = i % 3;
    relate_dataset_info info = {.image_size = SIDE, .num_classes = 3, .mean = {0.5f, 0.5f, 0.5f}, .std = {0.25f, 0.25f, 0.25f}};
    relate_backbone bb;
    relate_error err = {0};
    CHECK_MSG(relate_backbone_create(&bb, "conv4", 5, &err) == RELATE_OK, "%s", err.msg);
    float *got = calloc((size_t)NI * bb.feature_size, sizeof *got);
    CHECK_MSG(relate_extract_features(&bb, &sp, &info, RELATE_T5, 8, got, &err) == RELATE_OK, "%s", err.msg);
    /* the one-pass reference: T5 on a 16 x 16 image is ToTensor + Normalize */
    relate_graph *g = relate_graph_create();
    relate_graph_set_grad_enabled(g, false);
    float *x = malloc(sizeof(float) * NI * 3 * SIDE * SIDE);
    for (int i = 0; i < NI; i++)
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < SIDE * SIDE; p++)
                x[((size_t)i * 3 + c) * SIDE * SIDE + p] =
                    ((float)sp.pixels[((size_t)i * SIDE * SIDE + p) * 3 + c] / 255.0f - 0.5f) / 0.25f;
    relate_tensor *f = relate_backbone_forward(g, &bb, relate_tensor_wrap(g, 4, (int64_t[]){NI, 3, SIDE, SIDE}, x), false);
    double d = 0, scale = 1e-30;
    for (size_t i = 0; f && i < (size_t)NI * bb.feature_size; i++) {
        d = fmax(d, fabs((double)got[i] - f->data[i]));
        scale = fmax(scale, fabs((double)f->data[i]));
    }
    CHECK_MSG(f && d / scale <= 1e-6, "rank %d: sharded features differ from one pass by %.2e (relative)", rank, d / scale);
    relate_graph_destroy(g);
    relate_backbone_free(&bb);
    free(x), free(got), free(sp.pixels), free(sp.labels);
}

int main(int argc, char **argv)
{
    const int want_size = argc > 1 ? atoi(argv[1]) : 1;
    relate_error err = {0};
    CHECK_MSG(relate_dist_init(&err) == RELATE_OK, "%s", err.msg);
    const int rank = relate_dist_rank(), size = relate_dist_size();
    CHECK_MSG(size == want_size && rank >= 0 && rank < size, "rank %d of %d, want %d ranks", rank, size, want_size);
    CHECK(relate_dist_launcher_size() == want_size);
    CHECK(relate_dist_init(&err) == RELATE_OK && relate_dist_size() == size); /* idempotent */
    if (argc > 2 && strcmp(argv[2], "die") == 0) {
        /* dist_rank_dies: the last rank dies; the others wait in a sum that can never complete,
         * and the launcher must end the job with an error rather than let them hang */
        if (rank == size - 1) {
            fprintf(stderr, "rank %d: dying on purpose\n", rank);
            _exit(3);
        }
        float v = 1;
        relate_dist_allreduce_sum_f32(&v, 1, &err);
        fprintf(stderr, "rank %d: the sum returned: %s\n", rank, err.msg);
        return 4;
    }

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
    check_sync_batchnorm(rank, size);
    check_sharded_features(rank);
    CHECK(relate_dist_barrier(&err) == RELATE_OK);
    relate_dist_finalize();
    CHECK(relate_dist_size() == 1 && relate_dist_rank() == 0);
    return relate_test_finish();
}
