/* test_loader.c: the loader's contract: batch counts (drop_last, limit), the view-major layout,
 * per-epoch shuffles that are permutations, labels, and bit-identical batches for any number of
 * worker threads.
 * Not a test of the augmentations: a stand-in sample function records what it was asked for. */
#include <stdlib.h>
#include <string.h>

#include "relate/loader.h"
#include "test_util.h"

#define N 103
#define S 4

/* Writes (index, view, first random draw, first pixel) into the first four floats. */
static void probe(void *user, const relate_image *img, int64_t index, int view, relate_rng *rng, float *out,
                  uint8_t *scratch)
{
    (void)user, (void)scratch;
    memset(out, 0, sizeof(float) * 3 * S * S);
    out[0] = (float)index;
    out[1] = (float)view;
    out[2] = relate_rng_uniform(rng);
    out[3] = img->pixels[0];
}

static relate_split split;
static relate_dataset_info info;

static void setup(void)
{
    split.present = true;
    split.count = N;
    split.width = split.height = S;
    split.pixels = malloc((size_t)N * S * S * 3);
    split.labels = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) {
        split.labels[i] = i % 7;
        for (int p = 0; p < S * S * 3; p++)
            split.pixels[(size_t)i * S * S * 3 + p] = (uint8_t)(i + p);
    }
    info.image_size = S;
    info.num_classes = 7;
}

static relate_loader *make(int views, int batch, bool shuffle, bool drop_last, int threads, int64_t limit)
{
    relate_loader_config c = relate_loader_defaults(&split, &info, RELATE_T5);
    c.views = views;
    c.batch_size = batch;
    c.shuffle = shuffle;
    c.drop_last = drop_last;
    c.threads = threads;
    c.seed = 42;
    c.sample = probe;
    c.limit_batches = limit;
    relate_loader *l = NULL;
    relate_error err = {0};
    CHECK_MSG(relate_loader_create(&l, &c, &err) == RELATE_OK, "%s", err.msg);
    return l;
}

/* Concatenates an epoch's batches (images, then indices) into one buffer for comparisons. */
static size_t run_epoch(relate_loader *l, int epoch, float *images, int64_t *indices)
{
    relate_loader_start_epoch(l, epoch);
    relate_batch b;
    size_t nf = 0, ni = 0;
    int64_t expect = 0;
    while (relate_loader_next(l, &b) == 1) {
        CHECK(b.number == expect++);
        size_t floats = (size_t)b.views * b.size * 3 * S * S;
        memcpy(images + nf, b.images, floats * sizeof(float));
        memcpy(indices + ni, b.indices, (size_t)b.size * sizeof(int64_t));
        for (int i = 0; i < b.size; i++)
            CHECK(b.labels[i] == split.labels[b.indices[i]]);
        /* View-major: row k*B + i is view k of image i. */
        for (int k = 0; k < b.views; k++)
            for (int i = 0; i < b.size; i++) {
                const float *row = b.images + ((size_t)k * b.size + i) * 3 * S * S;
                CHECK(row[0] == (float)b.indices[i] && row[1] == (float)k);
            }
        nf += floats;
        ni += (size_t)b.size;
    }
    CHECK(expect == relate_loader_batches_per_epoch(l));
    return ni;
}

static void check_counts(void)
{
    relate_loader *l = make(1, 10, true, false, 0, 0);
    CHECK(relate_loader_batches_per_epoch(l) == 11);
    relate_loader_destroy(l);
    l = make(1, 10, true, true, 2, 0);
    CHECK(relate_loader_batches_per_epoch(l) == 10);
    relate_loader_destroy(l);
    l = make(1, 10, true, false, 1, 4);
    CHECK(relate_loader_batches_per_epoch(l) == 4);
    relate_loader_destroy(l);
    relate_loader_config bad = relate_loader_defaults(&split, &info, RELATE_T5);
    bad.views = 0;
    relate_error err = {0};
    relate_loader *none = NULL;
    CHECK(relate_loader_create(&none, &bad, &err) == RELATE_ERR_ARG && none == NULL);
}

static void check_order_and_threads(void)
{
    const int views = 3, batch = 8;
    size_t floats = (size_t)views * N * 3 * S * S;
    float *ref = malloc(floats * sizeof(float)), *got = malloc(floats * sizeof(float));
    int64_t ref_idx[N], got_idx[N];

    relate_loader *l = make(views, batch, true, false, 0, 0);
    CHECK(run_epoch(l, 0, ref, ref_idx) == N);
    /* A permutation of all indices. */
    int seen[N] = {0};
    for (int i = 0; i < N; i++)
        seen[ref_idx[i]]++;
    int perm = 1;
    for (int i = 0; i < N; i++)
        perm &= seen[i] == 1;
    CHECK(perm);
    /* The next epoch has another order and other augmentation draws. */
    run_epoch(l, 1, got, got_idx);
    CHECK(memcmp(ref_idx, got_idx, sizeof ref_idx) != 0);
    /* Restarting epoch 0 reproduces it exactly. */
    run_epoch(l, 0, got, got_idx);
    CHECK(memcmp(ref, got, floats * sizeof(float)) == 0 && memcmp(ref_idx, got_idx, sizeof ref_idx) == 0);
    relate_loader_destroy(l);

    for (int threads = 1; threads <= 3; threads++) {
        l = make(views, batch, true, false, threads, 0);
        run_epoch(l, 0, got, got_idx);
        CHECK_MSG(memcmp(ref, got, floats * sizeof(float)) == 0, "%d worker threads change the batches", threads);
        CHECK(memcmp(ref_idx, got_idx, sizeof ref_idx) == 0);
        /* Abandon an epoch half-way: the next one must still be exact. */
        relate_loader_start_epoch(l, 5);
        relate_batch b;
        CHECK(relate_loader_next(l, &b) == 1);
        run_epoch(l, 0, got, got_idx);
        CHECK(memcmp(ref, got, floats * sizeof(float)) == 0);
        relate_loader_destroy(l);
    }

    /* Without shuffling the order is the dataset's. */
    l = make(1, 16, false, false, 2, 0);
    run_epoch(l, 3, got, got_idx);
    int in_order = 1;
    for (int i = 0; i < N; i++)
        in_order &= got_idx[i] == i;
    CHECK(in_order);
    relate_loader_destroy(l);
    free(ref);
    free(got);
}

int main(void)
{
    setup();
    check_counts();
    check_order_and_threads();
    free(split.pixels);
    free(split.labels);
    return relate_test_finish();
}
