/* dist.c: relate/dist.h on Open MPI, or as one process when relate is built without MPI
 * (RELATE_WITH_MPI undefined). MPI counts are int: the collectives send large buffers in chunks
 * of at most CHUNK elements. */
#define _POSIX_C_SOURCE 200809L
#include "relate/dist.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef RELATE_WITH_MPI
#include <mpi.h>
#endif

#define CHUNK ((size_t)1 << 26)

/* Launchers' variables for the job's size: Open MPI's mpirun, MPICH / Intel MPI (PMI), PMIx
 * (srun --mpi=pmix) and Slurm's own count of tasks for srun. */
int relate_dist_launcher_size(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS",
                                       NULL};
    for (int k = 0; vars[k]; k++) {
        const char *v = getenv(vars[k]);
        if (v && *v) {
            long n = strtol(v, NULL, 10);
            if (n > 1 && n < INT32_MAX)
                return (int)n;
        }
    }
    return 1;
}

#ifndef RELATE_WITH_MPI
bool relate_dist_built_with_mpi(void) { return false; }
relate_status relate_dist_init(relate_error *err)
{
    (void)err;
    return RELATE_OK;
}
void relate_dist_finalize(void) {}
int relate_dist_rank(void) { return 0; }
int relate_dist_size(void) { return 1; }
/* One process: the sums and gathers of one contribution are the contribution. */
relate_status relate_dist_allreduce_sum_f32(float *buf, size_t n, relate_error *err)
{
    (void)buf, (void)n, (void)err;
    return RELATE_OK;
}
relate_status relate_dist_allreduce_sum_f64(double *buf, size_t n, relate_error *err)
{
    (void)buf, (void)n, (void)err;
    return RELATE_OK;
}
relate_status relate_dist_allgather_f32(const float *send, size_t n, float *recv, relate_error *err)
{
    (void)err;
    if (n && send != recv)
        memmove(recv, send, n * sizeof *recv);
    return RELATE_OK;
}
relate_status relate_dist_allgatherv(const void *send, void *recv, const size_t *bytes, relate_error *err)
{
    (void)err;
    if (bytes[0] && send != recv)
        memmove(recv, send, bytes[0]);
    return RELATE_OK;
}
void relate_dist_abort(int code) { (void)code; }
struct relate_dist_sums {
    int unused;
};
relate_status relate_dist_sums_create(relate_dist_sums **out, int capacity, relate_error *err)
{
    (void)capacity;
    *out = calloc(1, sizeof **out);
    return *out ? RELATE_OK : relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
}
relate_status relate_dist_sums_start(relate_dist_sums *s, float *buf, size_t n, relate_error *err)
{
    (void)s, (void)buf, (void)n, (void)err;
    return RELATE_OK;
}
void relate_dist_sums_poll(relate_dist_sums *s) { (void)s; }
relate_status relate_dist_sums_finish(relate_dist_sums *s, relate_error *err)
{
    (void)s, (void)err;
    return RELATE_OK;
}
void relate_dist_sums_free(relate_dist_sums *s) { free(s); }
relate_status relate_dist_broadcast(void *buf, size_t bytes, int root, relate_error *err)
{
    (void)buf, (void)bytes;
    return root == 0 ? RELATE_OK : relate_error_set(err, RELATE_ERR_ARG, "broadcast from rank %d of 1", root);
}
relate_status relate_dist_barrier(relate_error *err)
{
    (void)err;
    return RELATE_OK;
}
#else
static bool g_started; /* relate_dist_init called MPI_Init_thread */
static int g_rank, g_size = 1;

bool relate_dist_built_with_mpi(void) { return true; }

static relate_status mpi_fail(int rc, const char *what, relate_error *err)
{
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, text, &len);
    return relate_error_set(err, RELATE_ERR_IO, "MPI %s failed on rank %d of %d: %s", what, g_rank, g_size, text);
}

relate_status relate_dist_init(relate_error *err)
{
    if (g_started || relate_dist_launcher_size() <= 1)
        return RELATE_OK;
    int provided = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS)
        return relate_error_set(err, RELATE_ERR_IO, "MPI_Init_thread failed (error %d)", rc);
    g_started = true;
    /* Errors come back as codes, so a failing collective gets relate's message, not an abort
     * without one; a rank that dies is still reported by the launcher, which stops the job. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (provided < MPI_THREAD_FUNNELED)
        return relate_error_set(err, RELATE_ERR_IO, "this MPI gives thread level %d, below FUNNELED", provided);
    /* srun without a PMI plugin starts N singletons, each of which would train alone. */
    if (g_size != relate_dist_launcher_size())
        return relate_error_set(err, RELATE_ERR_ARG,
                                "the launcher started %d processes, but MPI sees %d: with srun, pass --mpi=pmix (or "
                                "the PMI your cluster's Open MPI uses); mpirun -np N always works",
                                relate_dist_launcher_size(), g_size);
    return RELATE_OK;
}

void relate_dist_finalize(void)
{
    int done = 0;
    if (g_started && MPI_Finalized(&done) == MPI_SUCCESS && !done)
        MPI_Finalize();
    g_started = false;
    g_rank = 0;
    g_size = 1;
}

int relate_dist_rank(void) { return g_rank; }
int relate_dist_size(void) { return g_size; }

/* MPI_Allreduce may combine the contributions in a different order on each rank (recursive
 * doubling does), which would let parameter replicas drift apart by rounding. A reduction at
 * rank 0 followed by a broadcast gives every rank the same bits. */
static relate_status allreduce(void *buf, size_t n, MPI_Datatype type, size_t elem, relate_error *err)
{
    if (!g_started || g_size == 1)
        return RELATE_OK;
    char *p = buf;
    for (size_t off = 0; off < n; off += CHUNK) {
        int count = (int)(n - off < CHUNK ? n - off : CHUNK);
        void *at = p + off * elem;
        int rc = MPI_Reduce(g_rank == 0 ? MPI_IN_PLACE : at, g_rank == 0 ? at : NULL, count, type, MPI_SUM, 0,
                            MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_fail(rc, "reduce", err);
        if ((rc = MPI_Bcast(at, count, type, 0, MPI_COMM_WORLD)) != MPI_SUCCESS)
            return mpi_fail(rc, "broadcast", err);
    }
    return RELATE_OK;
}

relate_status relate_dist_allreduce_sum_f32(float *buf, size_t n, relate_error *err)
{
    return allreduce(buf, n, MPI_FLOAT, sizeof(float), err);
}

relate_status relate_dist_allreduce_sum_f64(double *buf, size_t n, relate_error *err)
{
    return allreduce(buf, n, MPI_DOUBLE, sizeof(double), err);
}

relate_status relate_dist_allgather_f32(const float *send, size_t n, float *recv, relate_error *err)
{
    if (!g_started || g_size == 1) {
        if (n && send != recv)
            memmove(recv, send, n * sizeof *recv);
        return RELATE_OK;
    }
    if (n > (size_t)INT32_MAX)
        return relate_error_set(err, RELATE_ERR_ARG, "allgather of %zu floats per rank: too many", n);
    int rc = MPI_Allgather(send, (int)n, MPI_FLOAT, recv, (int)n, MPI_FLOAT, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? RELATE_OK : mpi_fail(rc, "allgather", err);
}

relate_status relate_dist_allgatherv(const void *send, void *recv, const size_t *bytes, relate_error *err)
{
    if (!g_started || g_size == 1) {
        if (bytes[0] && send != recv)
            memmove(recv, send, bytes[0]);
        return RELATE_OK;
    }
    int *cnt = malloc(2 * (size_t)g_size * sizeof *cnt);
    if (!cnt)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory for an allgather");
    int *displ = cnt + g_size;
    size_t total = 0;
    for (int r = 0; r < g_size; r++) {
        if (bytes[r] > (size_t)INT32_MAX - total) { /* displacements are int too */
            free(cnt);
            return relate_error_set(err, RELATE_ERR_ARG, "allgather of %zu bytes from rank %d: over 2 GiB in all",
                                    bytes[r], r);
        }
        cnt[r] = (int)bytes[r];
        displ[r] = (int)total;
        total += bytes[r];
    }
    int rc = MPI_Allgatherv(send, cnt[g_rank], MPI_BYTE, recv, cnt, displ, MPI_BYTE, MPI_COMM_WORLD);
    free(cnt);
    return rc == MPI_SUCCESS ? RELATE_OK : mpi_fail(rc, "allgatherv", err);
}

void relate_dist_abort(int code)
{
    int done = 0;
    if (g_started && g_size > 1 && MPI_Finalized(&done) == MPI_SUCCESS && !done)
        MPI_Abort(MPI_COMM_WORLD, code);
}

relate_status relate_dist_broadcast(void *buf, size_t bytes, int root, relate_error *err)
{
    if (root < 0 || root >= g_size)
        return relate_error_set(err, RELATE_ERR_ARG, "broadcast from rank %d of %d", root, g_size);
    if (!g_started || g_size == 1)
        return RELATE_OK;
    char *p = buf;
    for (size_t off = 0; off < bytes; off += CHUNK) {
        int count = (int)(bytes - off < CHUNK ? bytes - off : CHUNK);
        int rc = MPI_Bcast(p + off, count, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_fail(rc, "broadcast", err);
    }
    return RELATE_OK;
}

struct relate_dist_sums {
    int cap, count;
    float **buf;
    int *n;
    MPI_Request *reduce, *bcast; /* MPI_REQUEST_NULL when not in flight */
};

relate_status relate_dist_sums_create(relate_dist_sums **out, int capacity, relate_error *err)
{
    relate_dist_sums *s = calloc(1, sizeof *s);
    const size_t cap = capacity > 0 ? (size_t)capacity : 1;
    if (s) {
        s->cap = (int)cap;
        s->buf = calloc(cap, sizeof *s->buf);
        s->n = calloc(cap, sizeof *s->n);
        s->reduce = malloc(cap * sizeof *s->reduce);
        s->bcast = malloc(cap * sizeof *s->bcast);
    }
    if (!s || !s->buf || !s->n || !s->reduce || !s->bcast) {
        relate_dist_sums_free(s);
        *out = NULL;
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < cap; i++)
        s->reduce[i] = s->bcast[i] = MPI_REQUEST_NULL;
    *out = s;
    return RELATE_OK;
}

/* The newest sum's reduction is complete at rank 0: its broadcast can go. */
static relate_status sums_broadcast_last(relate_dist_sums *s, relate_error *err)
{
    const int k = s->count - 1;
    int rc = MPI_Wait(&s->reduce[k], MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS)
        return mpi_fail(rc, "reduce", err);
    rc = MPI_Ibcast(s->buf[k], s->n[k], MPI_FLOAT, 0, MPI_COMM_WORLD, &s->bcast[k]);
    return rc == MPI_SUCCESS ? RELATE_OK : mpi_fail(rc, "broadcast", err);
}

relate_status relate_dist_sums_start(relate_dist_sums *s, float *buf, size_t n, relate_error *err)
{
    if (!g_started || g_size == 1 || n == 0)
        return RELATE_OK;
    if (s->count == s->cap)
        return relate_error_set(err, RELATE_ERR_INTERNAL, "more than %d sums in flight", s->cap);
    if (n > (size_t)INT32_MAX)
        return relate_error_set(err, RELATE_ERR_ARG, "a sum of %zu floats: too many for one message", n);
    if (s->count > 0 && sums_broadcast_last(s, err) != RELATE_OK)
        return err->code;
    const int k = s->count++;
    s->buf[k] = buf;
    s->n[k] = (int)n;
    int rc = MPI_Ireduce(g_rank == 0 ? MPI_IN_PLACE : buf, g_rank == 0 ? buf : NULL, (int)n, MPI_FLOAT, MPI_SUM, 0,
                         MPI_COMM_WORLD, &s->reduce[k]);
    return rc == MPI_SUCCESS ? RELATE_OK : mpi_fail(rc, "reduce", err);
}

void relate_dist_sums_poll(relate_dist_sums *s)
{
    int flag;
    if (s->count > 0) {
        MPI_Testall(s->count, s->reduce, &flag, MPI_STATUSES_IGNORE);
        MPI_Testall(s->count, s->bcast, &flag, MPI_STATUSES_IGNORE);
    }
}

relate_status relate_dist_sums_finish(relate_dist_sums *s, relate_error *err)
{
    relate_status st = RELATE_OK;
    if (s->count > 0) {
        st = sums_broadcast_last(s, err);
        int rc = MPI_Waitall(s->count, s->bcast, MPI_STATUSES_IGNORE);
        if (st == RELATE_OK && rc != MPI_SUCCESS)
            st = mpi_fail(rc, "broadcast", err);
    }
    s->count = 0;
    return st;
}

void relate_dist_sums_free(relate_dist_sums *s)
{
    if (!s)
        return;
    free(s->buf);
    free(s->n);
    free(s->reduce);
    free(s->bcast);
    free(s);
}

relate_status relate_dist_barrier(relate_error *err)
{
    if (!g_started || g_size == 1)
        return RELATE_OK;
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? RELATE_OK : mpi_fail(rc, "barrier", err);
}
#endif
