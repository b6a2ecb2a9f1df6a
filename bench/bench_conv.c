/* bench_conv.c: one convolution layer's forward and weight gradient (no input gradient, as for an
 * image stem) on each backend of relate_conv2d_*: the default (oneDNN with relate's direct stem
 * kernel where it fits), oneDNN alone and im2col + OpenBLAS. Not a PyTorch comparison: it
 * isolates the kernels that the step benchmarks time together.
 *
 * usage: relate_bench_conv N C H O [REPS]
 *          a 3x3, stride-1, pad-1 convolution of N images of C x H x H into O channels
 *          prints per backend: conv BACKEND ISA fwd_ms wgrad_ms (the fastest of REPS, 10 by
 *          default; threads from OMP_NUM_THREADS; buffers reused, so page faults are not timed) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "kernels/conv2d_internal.h"

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s N C H O [REPS]\n", argv[0]);
        return 2;
    }
    relate_conv2d_dims d = {.n = atoi(argv[1]), .c = atoi(argv[2]), .h = atoi(argv[3]), .w = atoi(argv[3]),
                            .o = atoi(argv[4]), .kh = 3, .kw = 3, .stride = 1, .pad = 1};
    const int reps = argc > 5 ? atoi(argv[5]) : 10;
    if (relate_conv2d_dims_init(&d) != 0 || reps < 1) {
        fprintf(stderr, "bad shape\n");
        return 2;
    }
    const size_t nx = (size_t)d.n * d.c * d.h * d.w, ny = (size_t)d.n * d.o * d.ho * d.wo,
                 nw = (size_t)d.o * d.c * 9;
    float *x = aligned_alloc(64, (nx + 16) * sizeof(float)), *y = aligned_alloc(64, (ny + 16) * sizeof(float));
    float *dy = aligned_alloc(64, (ny + 16) * sizeof(float)), *w = malloc(nw * sizeof(float)),
          *dw = calloc(nw, sizeof(float));
    if (!x || !y || !dy || !w || !dw)
        return 1;
    bench_random_bytes((uint8_t *)x, nx * sizeof(float), 1);
    for (size_t i = 0; i < nx; i++) /* bytes as floats can be NaN: map them to [-1, 1) */
        x[i] = (float)(((uint32_t *)x)[i] >> 8) / 8388608.0f - 1.0f;
    for (size_t i = 0; i < ny; i++)
        dy[i] = (float)(i % 97) / 97.0f - 0.5f;
    for (size_t i = 0; i < nw; i++)
        w[i] = (float)(i % 13) / 13.0f - 0.5f;
    static const relate_conv_backend backends[] = {RELATE_CONV_ONEDNN, RELATE_CONV_ONEDNN_ONLY, RELATE_CONV_BLAS};
    for (size_t b = 0; b < sizeof backends / sizeof backends[0]; b++) {
        relate_conv2d_set_backend(backends[b]);
        float *scratch = aligned_alloc(64, (relate_conv2d_scratch_floats(&d, relate_get_threads()) + 16) * sizeof(float));
        if (!scratch)
            return 1;
        double tf = 1e30, tw = 1e30;
        for (int r = 0; r < reps; r++) {
            const double t0 = bench_now();
            relate_conv2d_forward(y, x, w, &d, scratch);
            const double t1 = bench_now();
            relate_conv2d_backward(NULL, dw, dy, x, w, &d, scratch);
            const double t2 = bench_now();
            tf = t1 - t0 < tf ? t1 - t0 : tf;
            tw = t2 - t1 < tw ? t2 - t1 : tw;
        }
        const int direct = backends[b] == RELATE_CONV_ONEDNN && relate_conv2d_direct_fits(&d);
        printf("conv %s %s %.3f %.3f\n", relate_conv2d_backend_name(), direct ? relate_kernels_isa_name() : "-",
               tf * 1e3, tw * 1e3);
        free(scratch);
    }
    free(x), free(y), free(dy), free(w), free(dw);
    return 0;
}
