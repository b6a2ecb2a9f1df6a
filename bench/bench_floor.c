/* bench_floor.c: what this machine can do at best, for the floors of bench/run_suite.sh: the
 * sgemm rate of OpenBLAS (the library relate links) and the memory bandwidth of a STREAM-like
 * pass; and the linear-evaluation case's setup and work (its data as CIFAR-10 binary files, its
 * FLOPs and minimum bytes). Not a benchmark of relate itself.
 *
 * usage: relate_bench_floor peak
 *          prints: peak avx2_1t avx2_2t avx512_1t avx512_2t (GFLOP/s of fused multiply-adds in
 *          registers, 1 and 2 threads; "-" where the CPU lacks AVX-512): the machine's FLOP
 *          ceiling, which no kernel exceeds
 *        relate_bench_floor rates [N]
 *          prints: floor sgemm_gflops copy_gbs triad_gbs bandwidth_gbs
 *          (sgemm: best of 3 N x N products, N = 4096 by default; bandwidth_gbs = the larger
 *          of copy and triad over ~1 GiB of arrays; threads from OMP_NUM_THREADS)
 *        relate_bench_floor lineval DIR [EPOCHS]
 *          writes DIR/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin: the synthetic
 *          CIFAR-like split of bench_common (50,000 images) and 10,000 test images, then prints:
 *          lineval train_images test_images feature_size classes backbone_flops_per_image
 *          flops bytes epochs
 *          for a conv4 linear evaluation of EPOCHS epochs (100 by default). */
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cblas.h>
#include <immintrin.h>

#include "bench_common.h"
#include "relate/graph.h"
#include "relate/nn.h"

#define CIFAR_RECORD 3073 /* 1 label byte + 3 planes of 32 x 32 */
#define TEST_IMAGES 10000
#define PER_FILE 10000
#define CLASSES 10

/* ------------------------------------------------------------------ rates */

static double sgemm_gflops(int n)
{
    size_t nn = (size_t)n * (size_t)n;
    float *a = malloc(nn * sizeof(float)), *b = malloc(nn * sizeof(float)), *c = malloc(nn * sizeof(float));
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return -1;
    }
    /* Values do not change sgemm's speed; small ones keep the products finite. */
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)(i % 7) * 0.01f;
        b[i] = (float)(i % 5) * 0.01f;
    }
    double best = 0;
    /* The first call is a warm-up (page faults, OpenBLAS's buffers); best of the next three. */
    for (int r = 0; r < 4; r++) {
        double t0 = bench_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double rate = 2.0 * n * (double)n * n / (bench_now() - t0) * 1e-9;
        if (r > 0 && rate > best)
            best = rate;
    }
    fprintf(stderr, "sgemm check %g\n", (double)c[nn / 2]); /* keeps the products observable */
    free(a);
    free(b);
    free(c);
    return best;
}

/* STREAM's convention: count the bytes the loop reads and writes (not the write-allocate
 * reads), best of 5 passes, arrays first touched by the threads that use them. */
static void bandwidth_gbs(double *copy, double *triad)
{
    const size_t n = ((size_t)1 << 30) / 3 / sizeof(float); /* three arrays, ~1 GiB together */
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)), *c = malloc(n * sizeof(float));
    *copy = *triad = -1;
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return;
    }
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        a[i] = 0.0f;
        b[i] = 1.0f;
        c[i] = 2.0f;
    }
    *copy = *triad = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = bench_now();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            a[i] = b[i];
        double t1 = bench_now();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            a[i] = b[i] + 3.0f * c[i];
        double t2 = bench_now();
        double cp = 2.0 * n * sizeof(float) / (t1 - t0) * 1e-9, tr = 3.0 * n * sizeof(float) / (t2 - t1) * 1e-9;
        if (cp > *copy)
            *copy = cp;
        if (tr > *triad)
            *triad = tr;
    }
    fprintf(stderr, "bandwidth check %g\n", (double)a[n / 2]);
    free(a);
    free(b);
    free(c);
}

static int rates(int n)
{
    double gf = sgemm_gflops(n), copy, triad;
    bandwidth_gbs(&copy, &triad);
    if (gf < 0 || copy < 0) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    fprintf(stderr, "rates with %d OpenMP threads, sgemm N = %d\n", omp_get_max_threads(), n);
    printf("floor %.1f %.2f %.2f %.2f\n", gf, copy, triad, copy > triad ? copy : triad);
    return 0;
}

/* ------------------------------------------------------------------ linear evaluation */

/* Writes count HWC images of pixels as CIFAR-10 binary records (the label byte, then the R, G, B
 * planes: read_cifar.c's layout), PER_FILE records to each file of names[]. */
static int write_cifar(const char *dir, const char *const *names, const uint8_t *pixels, const int32_t *labels,
                       int count)
{
    uint8_t *rec = malloc((size_t)PER_FILE * CIFAR_RECORD);
    if (!rec)
        return -1;
    for (int f = 0; f * PER_FILE < count; f++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[f]);
        for (int r = 0; r < PER_FILE; r++) {
            int i = f * PER_FILE + r;
            const uint8_t *src = pixels + (size_t)i * 3072;
            uint8_t *dst = rec + (size_t)r * CIFAR_RECORD;
            dst[0] = (uint8_t)labels[i];
            for (int p = 0; p < 1024; p++)
                for (int ch = 0; ch < 3; ch++)
                    dst[1 + ch * 1024 + p] = src[3 * p + ch];
        }
        FILE *fp = fopen(path, "wb");
        bool ok = fp && fwrite(rec, CIFAR_RECORD, PER_FILE, fp) == PER_FILE;
        if (fp && fclose(fp) != 0)
            ok = false;
        if (!ok) {
            fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
            free(rec);
            return -1;
        }
    }
    free(rec);
    return 0;
}

/* FLOPs of conv4's forward pass per 32 x 32 image, as relate's graph counts them (eval mode, no
 * gradient: what linear evaluation's feature extraction runs). */
static double conv4_forward_flops(int *feature_size)
{
    enum { N = 64 };
    relate_error err = {0};
    relate_backbone bb;
    if (relate_backbone_create(&bb, "conv4", 1, &err) != RELATE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    float *x = calloc((size_t)N * 3 * BENCH_SIDE * BENCH_SIDE, sizeof(float));
    if (!x) {
        relate_backbone_free(&bb);
        return -1;
    }
    relate_graph *g = relate_graph_create();
    relate_graph_set_grad_enabled(g, false);
    relate_tensor *in = relate_tensor_wrap(g, 4, (int64_t[]){N, 3, BENCH_SIDE, BENCH_SIDE}, x);
    relate_tensor *f = relate_backbone_forward(g, &bb, in, false);
    double flops = -1, bytes;
    if (f)
        relate_graph_work(g, &flops, &bytes);
    else
        fprintf(stderr, "conv4 forward: %s\n", relate_graph_error(g)->msg);
    *feature_size = bb.feature_size;
    relate_graph_destroy(g);
    free(x);
    relate_backbone_free(&bb);
    return flops / N;
}

static int lineval(const char *root, int epochs)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/cifar-10-batches-bin", root);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    relate_split train;
    relate_dataset_info info;
    uint8_t *test = malloc((size_t)TEST_IMAGES * 3072);
    int32_t *test_labels = malloc(sizeof(int32_t) * TEST_IMAGES);
    if (!test || !test_labels || bench_synthetic_cifar(&train, &info) != 0) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    /* Another seed than the training split's, so the test images are not its first 10,000. */
    bench_random_bytes(test, (size_t)TEST_IMAGES * 3072, 2);
    for (int i = 0; i < TEST_IMAGES; i++)
        test_labels[i] = i % CLASSES;
    static const char *const train_names[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                              "data_batch_4.bin", "data_batch_5.bin"};
    static const char *const test_names[] = {"test_batch.bin"};
    int rc = write_cifar(dir, train_names, train.pixels, train.labels, (int)train.count) ||
             write_cifar(dir, test_names, test, test_labels, TEST_IMAGES);
    int64_t n_train = train.count;
    bench_synthetic_free(&train);
    free(test);
    free(test_labels);
    if (rc)
        return 1;

    int d;
    double per_image = conv4_forward_flops(&d);
    if (per_image < 0)
        return 1;
    /* The least work of the task: the backbone once over every image (train and test); per
     * epoch the classifier's forward product and its weight-gradient product (the frozen
     * features need no input gradient); the test pass's classifier forward. */
    double linear = 2.0 * d * CLASSES;
    double flops = per_image * (double)(n_train + TEST_IMAGES) + epochs * 2.0 * linear * (double)n_train +
                   linear * TEST_IMAGES;
    /* Bytes: the 8-bit images read once, the features written once. Re-reading the 12.8 MB of
     * training features every epoch is not counted: they can stay in the last-level cache. */
    double bytes = (double)(n_train + TEST_IMAGES) * (3072 + d * sizeof(float));
    printf("lineval %lld %d %d %d %.0f %.0f %.0f %d\n", (long long)n_train, TEST_IMAGES, d, CLASSES, per_image, flops,
           bytes, epochs);
    return 0;
}

/* ------------------------------------------------------------------ FMA peak */

/* Twelve independent chains of fused multiply-adds: enough to cover FMA latency (4 cycles) on
 * two pipes, so the loop runs at the units' throughput. Each returns its chains' sum so that
 * nothing is optimised away; the values stay finite (x * 0.9999999 + 1e-7). */
#define FMA_CHAINS 12

__attribute__((target("avx2,fma"))) static float fma_avx2(long iters, float seed)
{
    const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
    __m256 a[FMA_CHAINS];
    for (int j = 0; j < FMA_CHAINS; j++)
        a[j] = _mm256_set1_ps(seed + (float)j);
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < FMA_CHAINS; j++)
            a[j] = _mm256_fmadd_ps(a[j], m, c);
    __m256 t = a[0];
    for (int j = 1; j < FMA_CHAINS; j++)
        t = _mm256_add_ps(t, a[j]);
    float out[8];
    _mm256_storeu_ps(out, t);
    return out[0] + out[7];
}

__attribute__((target("avx512f"))) static float fma_avx512(long iters, float seed)
{
    const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
    __m512 a[FMA_CHAINS];
    for (int j = 0; j < FMA_CHAINS; j++)
        a[j] = _mm512_set1_ps(seed + (float)j);
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < FMA_CHAINS; j++)
            a[j] = _mm512_fmadd_ps(a[j], m, c);
    __m512 t = a[0];
    for (int j = 1; j < FMA_CHAINS; j++)
        t = _mm512_add_ps(t, a[j]);
    return _mm512_reduce_add_ps(t);
}

/* GFLOP/s of `threads` threads each running the kernel (best of 5 runs of ~0.2 s). */
static double fma_gflops(int width, int threads)
{
    const long iters = 40L * 1000 * 1000;
    double best = 0.0;
    volatile float sink = 0.0f;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = 0.0, t1 = 0.0;
        float acc = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : acc)
        {
#pragma omp barrier
#pragma omp master
            t0 = omp_get_wtime();
            acc += width == 16 ? fma_avx512(iters, (float)omp_get_thread_num()) : fma_avx2(iters, 1.0f);
#pragma omp barrier
#pragma omp master
            t1 = omp_get_wtime();
        }
        sink += acc;
        const double gf = (double)threads * (double)iters * FMA_CHAINS * width * 2.0 / (t1 - t0) * 1e-9;
        if (gf > best)
            best = gf;
    }
    (void)sink;
    return best;
}

static int peak(void)
{
    __builtin_cpu_init();
    const bool avx512 = __builtin_cpu_supports("avx512f");
    printf("peak %.1f %.1f", fma_gflops(8, 1), fma_gflops(8, 2));
    if (avx512)
        printf(" %.1f %.1f\n", fma_gflops(16, 1), fma_gflops(16, 2));
    else
        printf(" - -\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "peak") == 0)
        return peak();
    if (argc >= 2 && strcmp(argv[1], "rates") == 0 && argc <= 3)
        return rates(argc == 3 ? atoi(argv[2]) : 4096);
    if (argc >= 3 && strcmp(argv[1], "lineval") == 0 && argc <= 4)
        return lineval(argv[2], argc == 4 ? atoi(argv[3]) : 100);
    fprintf(stderr, "usage: %s peak | rates [N] | lineval DIR [EPOCHS]\n", argv[0]);
    return 2;
}
