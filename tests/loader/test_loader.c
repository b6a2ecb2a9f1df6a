/* test_loader.c: the loader's contract: batch counts (drop_last, limit), the view-major layout,
 * per-epoch orders equal to an independent replay of the shuffle's draws (Fisher-Yates on the
 * seed's SHUFFLE stream), each view's augmentation stream keyed by (seed, epoch, image, view),
 * labels, bit-identical batches for any number of worker threads, and data-parallel shards whose
 * rows, concatenated in rank order, are the unsharded batch bit for bit.
 * Not a test of the augmentations: a stand-in sample function records what it was asked for. */
#include <stdlib.h>
#include <string.h>

#include "relate/loader.h"
#include "test_util.h"

#define N 103
#define S 4
#define SEED 42

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

/* ------------------------------------------------------------------ the replay
 * An independent transcription of the draws (src/data/loader.c relate_shuffle_order, src/base/rng.c),
 * built on the bare Philox4x32-10 block function (pinned by test_base's known-answer vectors):
 * the stream of (seed, a, b, c) is the blocks of counter (0, a, b, c), (1, a, b, c), ... under
 * key (low, high 32 bits of seed), their four words in order. The shuffle stream is
 * (seed, epoch, 0, SHUFFLE << 24); a view's augmentation stream is
 * (seed, epoch, image, AUGMENT << 24 | view). Not relate_rng: a change of keying, word order,
 * bounded-draw method or shuffle algorithm in the library makes the two disagree. */
typedef struct replay_stream {
    uint32_t key[2], ctr[4], words[4];
    int used;
} replay_stream;

static replay_stream replay_open(uint64_t seed, uint32_t a, uint32_t b, uint32_t c)
{
    replay_stream s = {.key = {(uint32_t)(seed & 0xffffffffu), (uint32_t)(seed >> 32)}, .ctr = {0, a, b, c}, .used = 4};
    return s;
}

static uint32_t replay_word(replay_stream *s)
{
    if (s->used == 4) {
        relate_philox4x32(s->words, s->ctr, s->key);
        s->ctr[0] += 1;
        s->used = 0;
    }
    return s->words[s->used++];
}

/* Uniform in [0, bound): the high half of word * bound, redrawn while the low half falls in the
 * 2^32 mod bound values that would bias it (Lemire). */
static uint32_t replay_below(replay_stream *s, uint32_t bound)
{
    const uint32_t biased = (uint32_t)((0x100000000ULL - bound) % bound);
    for (;;) {
        uint64_t product = (uint64_t)replay_word(s) * bound;
        if ((uint32_t)product >= biased)
            return (uint32_t)(product >> 32);
    }
}

/* The order of epoch `epoch`: the identity, then for i = n-1 down to 1 swap i with j uniform in
 * [0, i] (Fisher-Yates; Sattolo's j in [0, i) would give other orders). */
static void replay_order(int64_t *order, int64_t n, uint64_t seed, int epoch)
{
    replay_stream s = replay_open(seed, (uint32_t)epoch, 0, 2u << 24);
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    for (int64_t i = n - 1; i >= 1; i--) {
        int64_t j = replay_below(&s, (uint32_t)(i + 1));
        int64_t t = order[j];
        order[j] = order[i];
        order[i] = t;
    }
}

/* The probe's first draw for (seed, epoch, image, view): 24 bits of the stream's first word. */
static float replay_first_uniform(uint64_t seed, int epoch, int64_t image, int view)
{
    replay_stream s = replay_open(seed, (uint32_t)epoch, (uint32_t)image, (3u << 24) | (uint32_t)view);
    return (float)(replay_word(&s) >> 8) / 16777216.0f;
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
    c.seed = SEED;
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
        /* View-major: row k*B + i is view k of image i, drawn from that (epoch, image, view)'s stream. */
        int wrong_stream = 0;
        for (int k = 0; k < b.views; k++)
            for (int i = 0; i < b.size; i++) {
                const float *row = b.images + ((size_t)k * b.size + i) * 3 * S * S;
                CHECK(row[0] == (float)b.indices[i] && row[1] == (float)k);
                wrong_stream += row[2] != replay_first_uniform(SEED, epoch, b.indices[i], k);
            }
        CHECK_MSG(wrong_stream == 0, "epoch %d batch %lld: %d views not drawn from (seed, epoch, image, view)'s stream",
                  epoch, (long long)b.number, wrong_stream);
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
    /* Exactly the replayed order (which is a permutation of all indices). */
    int64_t want_idx[N];
    replay_order(want_idx, N, SEED, 0);
    CHECK_MSG(memcmp(ref_idx, want_idx, sizeof want_idx) == 0, "epoch 0: the loader's order is not the replayed shuffle");
    int seen[N] = {0};
    for (int i = 0; i < N; i++)
        seen[ref_idx[i]]++;
    int perm = 1;
    for (int i = 0; i < N; i++)
        perm &= seen[i] == 1;
    CHECK(perm);
    /* The next epoch has another order (the replayed one) and other augmentation draws. */
    run_epoch(l, 1, got, got_idx);
    CHECK(memcmp(ref_idx, got_idx, sizeof ref_idx) != 0);
    replay_order(want_idx, N, SEED, 1);
    CHECK_MSG(memcmp(got_idx, want_idx, sizeof want_idx) == 0, "epoch 1: the loader's order is not the replayed shuffle");
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

/* relate_shuffle_order itself, against the replay, for other seeds (one with high key bits), epochs
 * and sizes; and the replay against orders written down from it, so that the replay cannot drift
 * along with the library unnoticed. */
static void check_shuffle_replay(void)
{
    static const uint64_t seeds[] = {0, 1, 42, 0x100000007ULL, 0xfedcba9876543210ULL};
    static const int epochs[] = {0, 1, 2, 199, 65537};
    static const int64_t sizes[] = {1, 2, 3, 10, 103, 1000, 60000};
    int64_t *got = malloc(sizeof(int64_t) * 60000), *want = malloc(sizeof(int64_t) * 60000);
    int bad = 0, cases = 0, fixed_points = 0;
    for (size_t a = 0; a < sizeof seeds / sizeof *seeds; a++)
        for (size_t e = 0; e < sizeof epochs / sizeof *epochs; e++)
            for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
                const int64_t n = sizes[z];
                relate_shuffle_order(got, n, seeds[a], epochs[e]);
                replay_order(want, n, seeds[a], epochs[e]);
                cases++;
                if (memcmp(got, want, sizeof(int64_t) * (size_t)n) != 0 && bad++ < 3)
                    fprintf(stderr, "seed %llu epoch %d n %lld: the order differs from the replay (first: %lld vs %lld)\n",
                            (unsigned long long)seeds[a], epochs[e], (long long)n, (long long)got[0], (long long)want[0]);
                for (int64_t i = 0; n >= 2 && i < n; i++)
                    fixed_points += got[i] == i;
            }
    CHECK_MSG(bad == 0, "%d of %d shuffles differ from the replayed Fisher-Yates", bad, cases);
    /* A uniform shuffle leaves about one fixed point per order (Sattolo's leaves none). */
    CHECK_MSG(fixed_points > 0, "no shuffle left any element in place: not a uniform shuffle");
    /* Pinned values (seed 42, epoch 0; n 10, and the first twelve of n 103), computed by a Python
     * Philox4x32-10 written from Salmon et al. and checked against Random123's known answers. */
    static const int64_t pin10[10] = {4, 6, 7, 0, 8, 2, 3, 9, 1, 5},
                         pin103[12] = {71, 22, 85, 90, 46, 53, 62, 78, 30, 2, 14, 69};
    replay_order(want, 10, 42, 0);
    CHECK_MSG(memcmp(want, pin10, sizeof pin10) == 0, "the replay itself changed");
    replay_order(want, 103, 42, 0);
    CHECK_MSG(memcmp(want, pin103, sizeof pin103) == 0, "the replay itself changed");
    free(got);
    free(want);
}

/* Shards r of n (n = 2, 3, 4; worker threads 0 and 2): for every batch of two epochs, with and
 * without drop_last, the shards' rows concatenated in rank order equal the unsharded batch's
 * rows (images, per view, labels and indices), each shard's size and offset are the split of
 * the global size, and an epoch has the same number of batches. 103 images in batches of 10:
 * the last batch of 3 leaves one of 4 shards empty. */
static void check_shards(void)
{
    const size_t sf = 3 * S * S;
    for (int drop = 0; drop <= 1; drop++)
        for (int n = 2; n <= 4; n++) {
            relate_loader *whole = make(3, 10, true, drop, 2, 0), *sh[4] = {0};
            for (int r = 0; r < n; r++) {
                relate_loader_config c = relate_loader_defaults(&split, &info, RELATE_T5);
                c.views = 3;
                c.batch_size = 10;
                c.drop_last = drop;
                c.threads = r % 2 ? 2 : 0;
                c.seed = SEED;
                c.sample = probe;
                c.shard_index = r;
                c.shard_count = n;
                relate_error err = {0};
                CHECK_MSG(relate_loader_create(&sh[r], &c, &err) == RELATE_OK, "%s", err.msg);
            }
            int bad = 0, empty = 0;
            for (int epoch = 0; epoch < 2; epoch++) {
                relate_loader_start_epoch(whole, epoch);
                for (int r = 0; r < n; r++)
                    relate_loader_start_epoch(sh[r], epoch);
                relate_batch w;
                while (relate_loader_next(whole, &w) == 1) {
                    int row = 0;
                    for (int r = 0; r < n; r++) {
                        relate_batch b;
                        if (relate_loader_next(sh[r], &b) != 1) {
                            bad++;
                            continue;
                        }
                        bad += b.number != w.number || b.global_size != w.size || b.global_offset != row ||
                               b.size != (int)((int64_t)w.size * (r + 1) / n - (int64_t)w.size * r / n);
                        empty += b.size == 0;
                        for (int i = 0; i < b.size; i++) {
                            bad += b.indices[i] != w.indices[row + i] || b.labels[i] != w.labels[row + i];
                            for (int k = 0; k < 3; k++)
                                bad += memcmp(b.images + ((size_t)k * b.size + i) * sf,
                                              w.images + ((size_t)k * w.size + row + i) * sf, sf * sizeof(float)) != 0;
                        }
                        row += b.size;
                    }
                    bad += row != w.size;
                }
                for (int r = 0; r < n; r++) {
                    relate_batch b;
                    bad += relate_loader_next(sh[r], &b) != 0; /* the same number of batches */
                }
            }
            CHECK_MSG(bad == 0, "drop_last %d, %d shards: %d differences from the unsharded batches", drop, n, bad);
            if (!drop && n == 4)
                CHECK_MSG(empty == 2, "the last batch (3 images) leaves one of 4 shards empty, each epoch: %d", empty);
            relate_loader_destroy(whole);
            for (int r = 0; r < n; r++)
                relate_loader_destroy(sh[r]);
        }
    /* a shard outside 0..count-1 is refused */
    relate_loader_config c = relate_loader_defaults(&split, &info, RELATE_T5);
    c.shard_index = 2;
    c.shard_count = 2;
    relate_loader *l = NULL;
    relate_error err = {0};
    CHECK(relate_loader_create(&l, &c, &err) == RELATE_ERR_ARG && !l && strstr(err.msg, "shard 2 of 2"));
}

int main(void)
{
    setup();
    check_shuffle_replay();
    check_counts();
    check_order_and_threads();
    check_shards();
    free(split.pixels);
    free(split.labels);
    return relate_test_finish();
}
