/* kmeans.c: scikit-learn's KMeans (greedy k-means++, Lloyd iterations with its empty-cluster
 * relocation and convergence tests, restarts) on float32 rows, for deepcluster.
 * Not a general clustering library: dense rows, unit sample weights, squared Euclidean distance.
 *
 * Work is split into fixed chunks of KM_CHUNK rows; OpenMP threads take whole chunks and call
 * sgemm single-threaded inside the parallel region (OpenBLAS's OpenMP build does that by itself).
 * Sums are kept per chunk (or per cluster, rows in index order) and combined in a fixed order. */
#include "methods/kmeans.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum { KM_CHUNK = 256 }; /* sklearn's CHUNK_SIZE */
#define KM_TAG 0x4B4Du    /* 'KM' */

relate_kmeans_options relate_kmeans_defaults(int k)
{
    return (relate_kmeans_options){.k = k, .n_init = 5, .max_iter = 30, .tol = 1e-4};
}

void relate_kmeans_rng(relate_rng *rng, const relate_kmeans_options *o, int restart)
{
    relate_rng_init(rng, o->seed, o->stream, (uint32_t)restart, (uint32_t)RELATE_PURPOSE_METHOD << 24 | KM_TAG);
}

static int64_t num_chunks(int64_t n) { return (n + KM_CHUNK - 1) / KM_CHUNK; }
static int chunk_rows(int64_t n, int64_t ch)
{
    const int64_t left = n - ch * KM_CHUNK;
    return (int)(left < KM_CHUNK ? left : KM_CHUNK);
}

/* out[j] = sum_i f(x[i, j]) with f(v) = v - sub[j] squared when sub is given, else v; in double,
 * chunk partials added in chunk order. */
static relate_status column_sums(const float *x, int64_t n, int d, const double *sub, double *out)
{
    const int64_t nc = num_chunks(n);
    double *part = calloc((size_t)nc * d, sizeof *part);
    if (!part)
        return RELATE_ERR_NOMEM;
#pragma omp parallel for schedule(static) if (nc > 1)
    for (int64_t ch = 0; ch < nc; ch++) {
        double *acc = part + (size_t)ch * d;
        const int rows = chunk_rows(n, ch);
        const float *xr = x + (size_t)ch * KM_CHUNK * d;
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < d; j++) {
                const double v = sub ? (double)xr[(size_t)r * d + j] - sub[j] : (double)xr[(size_t)r * d + j];
                acc[j] += sub ? v * v : v;
            }
    }
    memset(out, 0, (size_t)d * sizeof *out);
    for (int64_t ch = 0; ch < nc; ch++)
        for (int j = 0; j < d; j++)
            out[j] += part[(size_t)ch * d + j];
    free(part);
    return RELATE_OK;
}

double relate_kmeans_tolerance(const float *x, int64_t n, int d, double tol)
{
    if (tol == 0 || n < 1 || d < 1)
        return 0;
    double *mean = malloc((size_t)d * sizeof *mean), *var = malloc((size_t)d * sizeof *var);
    double r = NAN;
    if (mean && var && column_sums(x, n, d, NULL, mean) == RELATE_OK) {
        for (int j = 0; j < d; j++)
            mean[j] /= (double)n;
        if (column_sums(x, n, d, mean, var) == RELATE_OK) {
            double s = 0;
            for (int j = 0; j < d; j++)
                s += var[j] / (double)n;
            r = s / d * tol;
        }
    }
    free(mean);
    free(var);
    return r;
}

static void row_sq_norms(const float *x, int64_t n, int d, float *out)
{
#pragma omp parallel for schedule(static) if (n > KM_CHUNK)
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++)
            s += (double)x[(size_t)i * d + j] * x[(size_t)i * d + j];
        out[i] = (float)s;
    }
}

double relate_kmeans_inertia(const float *x, int64_t n, int d, const float *centers, const int32_t *labels)
{
    const int64_t nc = num_chunks(n);
    double *part = calloc((size_t)nc, sizeof *part);
    if (!part)
        return NAN;
#pragma omp parallel for schedule(static) if (nc > 1)
    for (int64_t ch = 0; ch < nc; ch++) {
        const int rows = chunk_rows(n, ch);
        double acc = 0;
        for (int r = 0; r < rows; r++) {
            const int64_t i = ch * KM_CHUNK + r;
            const float *xi = x + (size_t)i * d, *c = centers + (size_t)labels[i] * d;
            for (int j = 0; j < d; j++) {
                const double v = (double)xi[j] - c[j];
                acc += v * v;
            }
        }
        part[ch] = acc;
    }
    double s = 0;
    for (int64_t ch = 0; ch < nc; ch++)
        s += part[ch];
    free(part);
    return s;
}

/* ------------------------------------------------------------------ k-means++ */

/* For T candidate rows cand [T, d]: out[t, i] = max(-2 x_i.cand_t + cand_sq[t] + x_sq[i], 0)
 * (sklearn's euclidean_distances, squared), lowered to closest[i] when closest is given, and
 * pot[t] = sum_i out[t, i]. ws: KM_CHUNK * T floats per thread; part: num_chunks * T doubles. */
static void candidate_distances(const float *x, const float *x_sq, int64_t n, int d, const float *cand,
                                const float *cand_sq, int T, const float *closest, float *out, double *pot, float *ws,
                                double *part)
{
    const int64_t nc = num_chunks(n);
#pragma omp parallel if (nc > 1)
    {
        float *buf = ws + (size_t)omp_get_thread_num() * KM_CHUNK * T;
#pragma omp for schedule(static)
        for (int64_t ch = 0; ch < nc; ch++) {
            const int rows = chunk_rows(n, ch);
            const int64_t i0 = ch * KM_CHUNK;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, T, d, -2.0f, x + (size_t)i0 * d, d, cand, d,
                        0.0f, buf, T);
            for (int t = 0; t < T; t++) {
                double acc = 0;
                for (int r = 0; r < rows; r++) {
                    float v = buf[(size_t)r * T + t] + cand_sq[t] + x_sq[i0 + r];
                    v = v > 0.0f ? v : 0.0f;
                    if (closest && closest[i0 + r] < v)
                        v = closest[i0 + r];
                    out[(size_t)t * n + i0 + r] = v;
                    acc += v;
                }
                part[(size_t)ch * T + t] = acc;
            }
        }
    }
    for (int t = 0; t < T; t++) {
        double s = 0;
        for (int64_t ch = 0; ch < nc; ch++)
            s += part[(size_t)ch * T + t];
        pot[t] = s;
    }
}

/* numpy.searchsorted(cum, v, side="left"): the first i with cum[i] >= v (n if none). */
static int64_t lower_bound(const double *cum, int64_t n, double v)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (cum[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

relate_status relate_kmeans_plusplus(const float *x, const float *x_sq, int64_t n, int d, int k, int n_local_trials,
                                     relate_rng *rng, float *centers, int64_t *indices, relate_error *err)
{
    if (k < 1 || d < 1 || n < k || n > (int64_t)UINT32_MAX)
        return relate_error_set(err, RELATE_ERR_ARG, "k-means++: needs 1 <= k (%d) <= n (%lld) < 2^32 and d >= 1", k,
                                (long long)n);
    const int T = n_local_trials > 0 ? n_local_trials : 2 + (int)log((double)k);
    const int64_t nc = num_chunks(n);
    const int nthreads = omp_get_max_threads();
    float *own_sq = x_sq ? NULL : malloc((size_t)n * sizeof *own_sq);
    float *closest = malloc((size_t)n * sizeof *closest);
    float *dist = malloc((size_t)T * n * sizeof *dist);
    double *cum = malloc((size_t)n * sizeof *cum);
    double *part = malloc((size_t)nc * T * sizeof *part);
    float *ws = malloc((size_t)nthreads * KM_CHUNK * T * sizeof *ws);
    float *cand = malloc((size_t)T * d * sizeof *cand);
    float cand_sq[64];
    double pot[64], rnd[64];
    int64_t cand_id[64];
    relate_status st = RELATE_OK;
    if (T > 64) {
        st = relate_error_set(err, RELATE_ERR_ARG, "k-means++: at most 64 local trials (got %d)", T);
        goto done;
    }
    if ((!x_sq && !own_sq) || !closest || !dist || !cum || !part || !ws || !cand) {
        st = relate_error_set(err, RELATE_ERR_NOMEM, "k-means++: out of memory for %lld rows", (long long)n);
        goto done;
    }
    if (!x_sq) {
        row_sq_norms(x, n, d, own_sq);
        x_sq = own_sq;
    }

    int64_t first = (int64_t)relate_rng_below(rng, (uint32_t)n);
    memcpy(centers, x + (size_t)first * d, (size_t)d * sizeof *centers);
    if (indices)
        indices[0] = first;
    candidate_distances(x, x_sq, n, d, centers, &x_sq[first], 1, NULL, closest, pot, ws, part);
    closest[first] = 0.0f; /* a chosen row is at distance 0 from itself, whatever the rounding above */

    for (int c = 1; c < k; c++) {
        double s = 0;
        for (int64_t i = 0; i < n; i++)
            cum[i] = s += (double)closest[i];
        /* sklearn scales the uniforms by the potential summed separately and clips an index that
         * rounding pushes past the end; scaling by the running sum's own total never overshoots, so
         * a row at distance 0 (a chosen centre) cannot be drawn. */
        for (int t = 0; t < T; t++)
            rnd[t] = relate_rng_uniform_f64(rng) * cum[n - 1];
        for (int t = 0; t < T; t++) {
            int64_t id = lower_bound(cum, n, rnd[t]);
            cand_id[t] = id < n - 1 ? id : n - 1;
            memcpy(cand + (size_t)t * d, x + (size_t)cand_id[t] * d, (size_t)d * sizeof *cand);
            cand_sq[t] = x_sq[cand_id[t]];
        }
        candidate_distances(x, x_sq, n, d, cand, cand_sq, T, closest, dist, pot, ws, part);
        int best = 0;
        for (int t = 1; t < T; t++)
            if (pot[t] < pot[best])
                best = t;
        memcpy(closest, dist + (size_t)best * n, (size_t)n * sizeof *closest);
        closest[cand_id[best]] = 0.0f;
        memcpy(centers + (size_t)c * d, x + (size_t)cand_id[best] * d, (size_t)d * sizeof *centers);
        if (indices)
            indices[c] = cand_id[best];
    }
done:
    free(own_sq);
    free(closest);
    free(dist);
    free(cum);
    free(part);
    free(ws);
    free(cand);
    return st;
}

/* ------------------------------------------------------------------ Lloyd */

typedef struct far_row {
    double dist;
    int64_t row;
} far_row;

typedef struct lloyd_ws {
    float *dist;     /* nthreads * KM_CHUNK * k: one chunk of distances per thread */
    float *c_sq;     /* k */
    double *sums;    /* k * d */
    double *weight;  /* k */
    int64_t *order;  /* n: rows sorted by label (stable) */
    int64_t *offs;   /* k + 1 */
    int64_t *pos;    /* k: next free slot per label while sorting */
    far_row *far;    /* n: rows by distance to their centre, for the relocation of empty clusters */
} lloyd_ws;

/* E-step: labels[i] = the first j minimising ||c_j||^2 - 2 x_i.c_j (sklearn's _update_chunk_dense:
 * the distance matrix starts as ||c||^2 and sgemm adds -2 x.c). */
static void assign_labels(const float *x, int64_t n, int d, const float *c, int k, lloyd_ws *w, int32_t *labels)
{
    for (int j = 0; j < k; j++) {
        double s = 0;
        for (int q = 0; q < d; q++)
            s += (double)c[(size_t)j * d + q] * c[(size_t)j * d + q];
        w->c_sq[j] = (float)s;
    }
    const int64_t nc = num_chunks(n);
#pragma omp parallel if (nc > 1)
    {
        float *dist = w->dist + (size_t)omp_get_thread_num() * KM_CHUNK * k;
#pragma omp for schedule(static)
        for (int64_t ch = 0; ch < nc; ch++) {
            const int rows = chunk_rows(n, ch);
            const int64_t i0 = ch * KM_CHUNK;
            for (int r = 0; r < rows; r++)
                memcpy(dist + (size_t)r * k, w->c_sq, (size_t)k * sizeof *dist);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, k, d, -2.0f, x + (size_t)i0 * d, d, c, d, 1.0f,
                        dist, k);
            for (int r = 0; r < rows; r++) {
                const float *dr = dist + (size_t)r * k;
                float best = dr[0];
                int bj = 0;
                for (int j = 1; j < k; j++)
                    if (dr[j] < best) {
                        best = dr[j];
                        bj = j;
                    }
                labels[i0 + r] = bj;
            }
        }
    }
}

/* Larger distance first; equal distances by row index. */
static int cmp_far(const void *a, const void *b)
{
    const far_row *x = a, *y = b;
    if (x->dist != y->dist)
        return x->dist > y->dist ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* M-step into c_new from the rows of each label (sums in double, rows in index order), with
 * sklearn's _relocate_empty_clusters_dense and _average_centers. */
static void update_centers(const float *x, int64_t n, int d, int k, const int32_t *labels, const float *c_old,
                           float *c_new, lloyd_ws *w)
{
    int64_t *offs = w->offs;
    memset(offs, 0, (size_t)(k + 1) * sizeof *offs);
    for (int64_t i = 0; i < n; i++)
        offs[labels[i] + 1]++;
    for (int j = 0; j < k; j++)
        offs[j + 1] += offs[j];
    memcpy(w->pos, offs, (size_t)k * sizeof *w->pos);
    for (int64_t i = 0; i < n; i++)
        w->order[w->pos[labels[i]]++] = i;
#pragma omp parallel for schedule(static) if (n > KM_CHUNK)
    for (int j = 0; j < k; j++) {
        double *s = w->sums + (size_t)j * d;
        memset(s, 0, (size_t)d * sizeof *s);
        for (int64_t p = offs[j]; p < offs[j + 1]; p++) {
            const float *xi = x + (size_t)w->order[p] * d;
            for (int q = 0; q < d; q++)
                s[q] += xi[q];
        }
        w->weight[j] = (double)(offs[j + 1] - offs[j]);
    }

    int n_empty = 0;
    for (int j = 0; j < k; j++)
        n_empty += w->weight[j] == 0;
    if (n_empty > 0) {
        double maxd = 0;
#pragma omp parallel for schedule(static) reduction(max : maxd) if (n > KM_CHUNK)
        for (int64_t i = 0; i < n; i++) {
            const float *xi = x + (size_t)i * d, *c = c_old + (size_t)labels[i] * d;
            double s = 0;
            for (int q = 0; q < d; q++) {
                const double v = (double)xi[q] - c[q];
                s += v * v;
            }
            w->far[i] = (far_row){s, i};
            maxd = s > maxd ? s : maxd;
        }
        if (maxd > 0) { /* else more clusters than distinct rows: sklearn leaves them */
            qsort(w->far, (size_t)n, sizeof *w->far, cmp_far);
            int64_t e = 0;
            for (int j = 0; j < k && e < n; j++) {
                if (w->weight[j] != 0)
                    continue;
                const int64_t fi = w->far[e++].row;
                const int old = labels[fi];
                const float *xf = x + (size_t)fi * d;
                for (int q = 0; q < d; q++) {
                    w->sums[(size_t)old * d + q] -= xf[q];
                    w->sums[(size_t)j * d + q] = xf[q];
                }
                w->weight[j] = 1.0;
                w->weight[old] -= 1.0;
            }
        }
    }

    int argmax = 0;
    for (int j = 1; j < k; j++)
        if (w->weight[j] > w->weight[argmax])
            argmax = j;
    for (int j = 0; j < k; j++)
        if (w->weight[j] > 0) {
            const double alpha = 1.0 / w->weight[j];
            for (int q = 0; q < d; q++)
                c_new[(size_t)j * d + q] = (float)(w->sums[(size_t)j * d + q] * alpha);
        }
    for (int j = 0; j < k; j++) /* still empty: at the largest cluster's centre, as sklearn */
        if (!(w->weight[j] > 0))
            memcpy(c_new + (size_t)j * d, c_new + (size_t)argmax * d, (size_t)d * sizeof *c_new);
}

static void lloyd_ws_free(lloyd_ws *w)
{
    free(w->dist);
    free(w->c_sq);
    free(w->sums);
    free(w->weight);
    free(w->order);
    free(w->offs);
    free(w->pos);
    free(w->far);
}

static bool lloyd_ws_init(lloyd_ws *w, int64_t n, int d, int k)
{
    memset(w, 0, sizeof *w);
    w->dist = malloc((size_t)omp_get_max_threads() * KM_CHUNK * k * sizeof *w->dist);
    w->c_sq = malloc((size_t)k * sizeof *w->c_sq);
    w->sums = malloc((size_t)k * d * sizeof *w->sums);
    w->weight = malloc((size_t)k * sizeof *w->weight);
    w->order = malloc((size_t)n * sizeof *w->order);
    w->offs = malloc((size_t)(k + 1) * sizeof *w->offs);
    w->pos = malloc((size_t)k * sizeof *w->pos);
    w->far = malloc((size_t)n * sizeof *w->far);
    if (w->dist && w->c_sq && w->sums && w->weight && w->order && w->offs && w->pos && w->far)
        return true;
    lloyd_ws_free(w);
    return false;
}

static relate_status lloyd_run(const float *x, int64_t n, int d, int k, const float *init, int max_iter,
                               double tol_abs, float *centers, int32_t *labels, double *inertia, int *n_iter,
                               lloyd_ws *w, relate_error *err)
{
    float *ca = malloc((size_t)k * d * sizeof *ca), *cb = malloc((size_t)k * d * sizeof *cb);
    int32_t *old = malloc((size_t)n * sizeof *old);
    if (!ca || !cb || !old) {
        free(ca);
        free(cb);
        free(old);
        return relate_error_set(err, RELATE_ERR_NOMEM, "k-means: out of memory");
    }
    memcpy(ca, init, (size_t)k * d * sizeof *ca);
    for (int64_t i = 0; i < n; i++)
        old[i] = -1;
    bool strict = false;
    int it = 0;
    while (it < max_iter) {
        assign_labels(x, n, d, ca, k, w, labels);
        update_centers(x, n, d, k, labels, ca, cb, w);
        double shift = 0;
        for (size_t q = 0; q < (size_t)k * d; q++) {
            const double v = (double)cb[q] - ca[q];
            shift += v * v;
        }
        float *t = ca;
        ca = cb;
        cb = t;
        it++;
        if (memcmp(labels, old, (size_t)n * sizeof *labels) == 0) {
            strict = true;
            break;
        }
        if (shift <= tol_abs)
            break;
        memcpy(old, labels, (size_t)n * sizeof *old);
    }
    if (!strict) /* labels that match the final centres */
        assign_labels(x, n, d, ca, k, w, labels);
    if (inertia)
        *inertia = relate_kmeans_inertia(x, n, d, ca, labels);
    if (n_iter)
        *n_iter = it;
    memcpy(centers, ca, (size_t)k * d * sizeof *centers);
    free(ca);
    free(cb);
    free(old);
    return RELATE_OK;
}

relate_status relate_kmeans_lloyd(const float *x, int64_t n, int d, int k, const float *init, int max_iter,
                                  double tol_abs, float *centers, int32_t *labels, double *inertia, int *n_iter,
                                  relate_error *err)
{
    if (k < 1 || d < 1 || n < k || max_iter < 1)
        return relate_error_set(err, RELATE_ERR_ARG, "k-means: needs 1 <= k (%d) <= n (%lld), d >= 1, max_iter >= 1",
                                k, (long long)n);
    lloyd_ws w;
    if (!lloyd_ws_init(&w, n, d, k))
        return relate_error_set(err, RELATE_ERR_NOMEM, "k-means: out of memory for %lld rows x %d clusters",
                                (long long)n, k);
    relate_status st = lloyd_run(x, n, d, k, init, max_iter, tol_abs, centers, labels, inertia, n_iter, &w, err);
    lloyd_ws_free(&w);
    return st;
}

/* sklearn's _is_same_clustering: equal up to a permutation of the labels. */
static bool same_clustering(const int32_t *a, const int32_t *b, int64_t n, int k, int32_t *map)
{
    for (int j = 0; j < k; j++)
        map[j] = -1;
    for (int64_t i = 0; i < n; i++) {
        if (map[a[i]] == -1)
            map[a[i]] = b[i];
        else if (map[a[i]] != b[i])
            return false;
    }
    return true;
}

relate_status relate_kmeans_fit(const float *x, int64_t n, int d, const relate_kmeans_options *o, int32_t *labels,
                                float *centers_out, relate_kmeans_report *rep, relate_error *err)
{
    const int k = o->k;
    if (k < 1 || d < 1 || n < k || o->n_init < 1 || o->max_iter < 1)
        return relate_error_set(err, RELATE_ERR_ARG,
                                "k-means: needs 1 <= k (%d) <= n (%lld), d >= 1, n_init >= 1 and max_iter >= 1", k,
                                (long long)n);
    const double tol_abs = relate_kmeans_tolerance(x, n, d, o->tol);
    double *mean = malloc((size_t)d * sizeof *mean);
    float *xc = malloc((size_t)n * d * sizeof *xc), *x_sq = malloc((size_t)n * sizeof *x_sq);
    float *init = malloc((size_t)k * d * sizeof *init);
    float *cen[2] = {malloc((size_t)k * d * sizeof(float)), malloc((size_t)k * d * sizeof(float))};
    int32_t *lab[2] = {malloc((size_t)n * sizeof(int32_t)), malloc((size_t)n * sizeof(int32_t))};
    int32_t *map = malloc((size_t)k * sizeof *map);
    lloyd_ws w;
    bool have_ws = lloyd_ws_init(&w, n, d, k);
    relate_status st = RELATE_OK;
    if (!mean || !xc || !x_sq || !init || !cen[0] || !cen[1] || !lab[0] || !lab[1] || !map || !have_ws ||
        column_sums(x, n, d, NULL, mean) != RELATE_OK) {
        st = relate_error_set(err, RELATE_ERR_NOMEM, "k-means: out of memory for %lld rows x %d clusters",
                              (long long)n, k);
        goto done;
    }
    if (!isfinite(tol_abs)) {
        st = relate_error_set(err, RELATE_ERR_NUMERIC, "k-means: the data contain NaN or infinite values");
        goto done;
    }
    /* sklearn subtracts the mean (in the data's precision) for more accurate distances. */
    for (int j = 0; j < d; j++)
        mean[j] /= (double)n;
#pragma omp parallel for schedule(static) if (n > KM_CHUNK)
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            xc[(size_t)i * d + j] = x[(size_t)i * d + j] - (float)mean[j];
    row_sq_norms(xc, n, d, x_sq);

    int best = -1; /* index into cen/lab of the best run so far */
    double best_inertia = 0;
    if (rep)
        memset(rep, 0, sizeof *rep);
    for (int r = 0; r < o->n_init; r++) {
        const int slot = best == 0 ? 1 : 0;
        relate_rng rng;
        relate_kmeans_rng(&rng, o, r);
        double inertia = 0;
        int iters = 0;
        if ((st = relate_kmeans_plusplus(xc, x_sq, n, d, k, o->n_local_trials, &rng, init, NULL, err)) != RELATE_OK ||
            (st = lloyd_run(xc, n, d, k, init, o->max_iter, tol_abs, cen[slot], lab[slot], &inertia, &iters, &w,
                            err)) != RELATE_OK)
            goto done;
        if (rep && r < (int)(sizeof rep->restart_inertia / sizeof rep->restart_inertia[0]))
            rep->restart_inertia[rep->restarts++] = inertia;
        if (best < 0 || (inertia < best_inertia && !same_clustering(lab[slot], lab[best], n, k, map))) {
            best = slot;
            best_inertia = inertia;
            if (rep) {
                rep->inertia = inertia;
                rep->n_iter = iters;
                rep->best_restart = r;
            }
        }
    }
    memcpy(labels, lab[best], (size_t)n * sizeof *labels);
    if (centers_out)
        for (int j = 0; j < k; j++)
            for (int q = 0; q < d; q++)
                centers_out[(size_t)j * d + q] = cen[best][(size_t)j * d + q] + (float)mean[q];
done:
    if (have_ws)
        lloyd_ws_free(&w);
    free(mean);
    free(xc);
    free(x_sq);
    free(init);
    free(cen[0]);
    free(cen[1]);
    free(lab[0]);
    free(lab[1]);
    free(map);
    return st;
}
