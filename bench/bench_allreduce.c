/* bench_allreduce.c: the time to sum each backbone's gradients across the processes of an MPI
 * run (relate_dist_allreduce_sum_f32: a reduction to rank 0, then a broadcast), the
 * communication that data-parallel training adds to every step (issue 12; docs/scaling.md).
 * Run by bench/run_allreduce.sh under mpirun; rank 0 prints one line per backbone:
 *   backbone, floats, bytes, median ms over --reps, effective GB/s (bytes / time).
 * Not a training step: the buffers are the gradients' sizes, filled with constants. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "relate/dist.h"
#include "relate/nn.h"
#include "relate/params.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const int reps = argc > 1 ? atoi(argv[1]) : 30;
    relate_error err = {0};
    if (relate_dist_init(&err) != RELATE_OK) {
        fprintf(stderr, "bench_allreduce: %s\n", err.msg);
        return 1;
    }
    const int rank = relate_dist_rank(), size = relate_dist_size();
    if (rank == 0)
        printf("# %d processes, %d repetitions each (median)\n# backbone floats bytes ms GB/s\n", size, reps);
    const char *const *names = relate_backbone_names();
    double *t = malloc(sizeof(double) * (size_t)(reps > 0 ? reps : 1));
    for (int k = 0; names[k] && reps > 0; k++) {
        relate_backbone bb;
        if (relate_backbone_create(&bb, names[k], 1, &err) != RELATE_OK) {
            fprintf(stderr, "bench_allreduce: %s\n", err.msg);
            return 1;
        }
        const size_t n = (size_t)relate_params_count_trainable(&bb.params);
        relate_backbone_free(&bb);
        float *g = malloc(n * sizeof *g);
        for (size_t i = 0; i < n; i++)
            g[i] = 1e-3f;
        relate_dist_allreduce_sum_f32(g, n, &err); /* warm-up: connections, page faults */
        for (int r = 0; r < reps; r++) {
            relate_dist_barrier(&err);
            double t0 = bench_now();
            if (relate_dist_allreduce_sum_f32(g, n, &err) != RELATE_OK) {
                fprintf(stderr, "bench_allreduce: %s\n", err.msg);
                return 1;
            }
            t[r] = bench_now() - t0;
        }
        /* rank 0's view of the time, the maximum over ranks would need another collective */
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        const double med = t[reps / 2];
        if (rank == 0)
            printf("%-9s %9zu %10zu %8.3f %6.2f\n", names[k], n, n * 4, med * 1e3, (double)n * 4 / med / 1e9);
        free(g);
    }
    free(t);
    relate_dist_finalize();
    return 0;
}
