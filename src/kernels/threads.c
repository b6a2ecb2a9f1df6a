/* threads.c: the one knob for how many threads kernels (OpenMP) and OpenBLAS use.
 * Not a thread pool: OpenMP owns the team; this only sets and reports its size. */
#include <cblas.h>
#include <omp.h>

#include "kernels/kernels.h"

int relate_get_threads(void)
{
    return omp_get_max_threads();
}

void relate_set_threads(int n)
{
    if (n < 1)
        n = 1;
    omp_set_num_threads(n);
    /* Sets BLAS's own count for calls made outside our parallel regions. */
    openblas_set_num_threads(n);
}
