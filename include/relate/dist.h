/* relate/dist.h: the processes of a run launched by mpirun or srun, and the collectives that
 * data-parallel training is built on (issue 12): summing gradients and batch-norm statistics,
 * gathering feature rows, broadcasting parameters. Built on Open MPI when relate is built with it
 * (CMake finds libopenmpi-dev; RELATE_MPI=OFF leaves it out); without it a run is one process.
 * Not the sharding of data or the training step itself.
 *
 *   relate_dist_init(&err);                       // MPI only when a launcher started this process
 *   float g[n] = ...;                             // this rank's partial sums
 *   relate_dist_allreduce_sum_f32(g, n, &err);    // the same bits on every rank
 *   relate_dist_finalize();
 *
 * Every collective must be called by every rank in the same order. Sums are reduced in one fixed
 * order and then broadcast, so every rank holds bit-identical results (replicas of the parameters
 * never drift apart); their rounding differs from one process's sum only by summation order. */
#ifndef RELATE_DIST_H
#define RELATE_DIST_H

#include <stdbool.h>
#include <stddef.h>

#include "relate/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* True when this build can run across processes (linked with MPI). */
bool relate_dist_built_with_mpi(void);

/* The number of processes a launcher (mpirun / mpiexec / srun with PMI) says this run has, read
 * from its environment without MPI; 1 when none did. Lets a build without MPI refuse, rather
 * than run N copies of a single-process job that write the same files. */
int relate_dist_launcher_size(void);

/* Initialises MPI (thread level FUNNELED: only the main thread calls MPI) when this build has it
 * and a launcher started the process; otherwise the run is rank 0 of 1 and nothing is started.
 * Idempotent. */
relate_status relate_dist_init(relate_error *err);
/* Finalises MPI if relate_dist_init started it. */
void relate_dist_finalize(void);

int relate_dist_rank(void);
int relate_dist_size(void);

/* buf[i] = the sum over ranks of every rank's buf[i], identical on every rank. */
relate_status relate_dist_allreduce_sum_f32(float *buf, size_t n, relate_error *err);
relate_status relate_dist_allreduce_sum_f64(double *buf, size_t n, relate_error *err);
/* recv = the n floats of rank 0, then rank 1's, ... (size * n floats). */
relate_status relate_dist_allgather_f32(const float *send, size_t n, float *recv, relate_error *err);
/* recv = rank 0's bytes[0] bytes, then rank 1's bytes[1], ... (uneven shares of any type); send
 * holds this rank's bytes[rank] bytes. */
relate_status relate_dist_allgatherv(const void *send, void *recv, const size_t *bytes, relate_error *err);
/* buf (bytes long) of rank root on every rank. */
relate_status relate_dist_broadcast(void *buf, size_t bytes, int root, relate_error *err);
relate_status relate_dist_barrier(relate_error *err);
/* Sums that overlap with computation: float buffers summed over the ranks as by
 * relate_dist_allreduce_sum_f32 (the same bits on every rank), each started as soon as it is ready
 * while the caller goes on computing (the gradients of the last layers while the backward pass
 * works on the first), and finished together. A sum is reduced to rank 0 and then broadcast; each
 * broadcast is issued when the next sum starts, or at the finish, so every rank issues the
 * collectives in the same order. Every rank must start the same buffers, of the same lengths, in
 * the same order, and leave a started buffer alone until the finish.
 *
 *   relate_dist_sums *s;  relate_dist_sums_create(&s, 16, &err);
 *   relate_dist_sums_start(s, grad_of_last_layers, n1, &err);  ... compute ...  relate_dist_sums_poll(s);
 *   relate_dist_sums_start(s, grad_of_first_layers, n2, &err);
 *   relate_dist_sums_finish(s, &err);                          // both buffers hold the sums
 */
typedef struct relate_dist_sums relate_dist_sums;
/* Room for up to `capacity` sums between finishes. */
relate_status relate_dist_sums_create(relate_dist_sums **out, int capacity, relate_error *err);
relate_status relate_dist_sums_start(relate_dist_sums *s, float *buf, size_t n, relate_error *err);
/* Lets the started sums progress (MPI moves nonblocking collectives on inside its calls). */
void relate_dist_sums_poll(relate_dist_sums *s);
/* Waits until every started sum is complete; s can then start a new series. */
relate_status relate_dist_sums_finish(relate_dist_sums *s, relate_error *err);
void relate_dist_sums_free(relate_dist_sums *s);
/* Ends every process of the job with exit status `code` (MPI_Abort): what a rank that fails calls,
 * so the others never wait in a collective it will not join. Returns only without MPI running. */
void relate_dist_abort(int code);

#ifdef __cplusplus
}
#endif
#endif
