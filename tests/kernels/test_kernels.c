/* test_kernels.c: checks every kernel of kernels.h against naive double references, float32 finite
 * differences, the accumulate/NULL conventions, shape rejection, thread counts and determinism:
 * main runs the themed checks of kernels_conv.c, kernels_batchnorm.c, kernels_pool.c,
 * kernels_elementwise.c, kernels_dense.c and kernels_losses.c (with the harness of
 * kernels_harness.c) in one fixed order, since every input comes from one shared seed counter.
 * Not a whole-model PyTorch golden test (only a few loss values from PyTorch 1.13 are embedded). */
#include "kernels/kernels.h"
#include "kernels_harness.h"
#include "test_util.h"

/* ------------------------------------------------------------------ threads */
static void test_threads(void)
{
    relate_set_threads(1);
    CHECK(relate_get_threads() == 1);
    relate_set_threads(2);
    CHECK(relate_get_threads() == 2);
    relate_set_threads(0); /* clamped */
    CHECK(relate_get_threads() == 1);
}

int main(void)
{
    test_threads();
    test_conv_dims();
    test_pool_dims();
    /* 3 threads on 2 cores still exercises an odd team size (uneven image split, 3-way dW
     * reduction); finite differences run once, at 2 threads. */
    static const int counts[] = {1, 2, 3};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        relate_set_threads(counts[i]);
        const int fd = counts[i] == 2;
        test_conv(fd);
        test_batchnorm(fd);
        test_pool(fd);
        test_elementwise(fd);
        test_linalg(fd);
        test_rows(fd);
        if (fd) {
            test_shape_ops(fd);
            test_losses(fd);
        }
    }
    relate_set_threads(2);
    test_conv_backends();
    test_conv_direct();
    test_conv_thread_history();
    /* The whole conv battery once more on the other backend than the one the environment chose
     * (ctest also runs this binary with RELATE_CONV=blas), so one run covers both. */
    const relate_conv_backend env_backend = relate_conv2d_get_backend();
    relate_conv2d_set_backend(env_backend == RELATE_CONV_BLAS ? RELATE_CONV_ONEDNN : RELATE_CONV_BLAS);
    test_conv(0);
    relate_conv2d_set_backend(env_backend);
    /* Last: its inputs take the next seeds, so every check above keeps the inputs it had. */
    test_batchnorm_blocked();
    test_batchnorm_large_mean();
    test_conv_direct_backward();
    return relate_test_finish();
}
