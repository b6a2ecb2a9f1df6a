/* tsne.c: t-SNE of relate/tsne.h: the input affinities (dense and k-nearest-neighbour sparse),
 * the exact O(N^2) gradient and KL divergence, and the optimiser (early exaggeration, momentum,
 * per-coordinate gains) that drives either gradient.
 * Not the Barnes-Hut quadtree (tsne_bh.c) and not the drawing (src/cli/draw_util.c). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "relate/rng.h"
#include "relate/tsne.h"

relate_tsne_options relate_tsne_defaults(void)
{
    return (relate_tsne_options){.perplexity = 30.0,
                                 .iterations = 1000,
                                 .learning_rate = 0.0,
                                 .early_exaggeration = 12.0,
                                 .exaggeration_iterations = 250,
                                 .momentum = 0.5,
                                 .final_momentum = 0.8,
                                 .theta = 0.5,
                                 .exact_max = RELATE_TSNE_EXACT_MAX,
                                 .seed = 0};
}

/* Rows of squared distances computed per BLAS call: one block per thread at a time, so memory
 * is threads x DIST_BLOCK x n doubles whatever n is. */
enum { DIST_BLOCK = 32 };

/* The bisection stops when a row's entropy is this close to log(perplexity), in nats. */
static const double ENTROPY_TOL = 1e-10;
enum { BISECTION_STEPS = 200 };

static relate_status check_input(const float *x, int64_t n, int d, double perplexity, relate_error *err)
{
    if (n < 2 || d < 1)
        return relate_error_set(err, RELATE_ERR_ARG, "t-SNE needs at least 2 points of dimension >= 1, got %lld x %d",
                                (long long)n, d);
    if (n > INT32_MAX)
        return relate_error_set(err, RELATE_ERR_ARG, "t-SNE: %lld points are more than this implementation indexes "
                                                     "(2^31 - 1)",
                                (long long)n);
    if (!(perplexity > 0) || !(perplexity < (double)n))
        return relate_error_set(err, RELATE_ERR_ARG, "t-SNE: perplexity must lie in (0, %lld), the number of points; "
                                                     "got %g",
                                (long long)n, perplexity);
    for (int64_t i = 0; i < n * d; i++)
        if (!isfinite(x[i]))
            return relate_error_set(err, RELATE_ERR_ARG, "t-SNE: feature %d of point %lld is not finite",
                                    (int)(i % d), (long long)(i / d));
    return RELATE_OK;
}

/* x as doubles, and each row's squared norm, for the |a|^2 + |b|^2 - 2 a.b distances. */
static double *to_double(const float *x, int64_t n, int d, double **norms)
{
    double *xd = malloc((size_t)n * (size_t)d * sizeof *xd);
    *norms = malloc((size_t)n * sizeof **norms);
    if (!xd || !*norms) {
        free(xd);
        free(*norms);
        *norms = NULL;
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < d; j++) {
            xd[i * d + j] = x[i * d + j];
            s += xd[i * d + j] * xd[i * d + j];
        }
        (*norms)[i] = s;
    }
    return xd;
}

/* Squared distances of rows [i0, i0 + nb) to every row, out [nb, n]. Called inside a parallel
 * region, where the OpenMP build of OpenBLAS runs single-threaded: each block is computed the
 * same way however many threads there are. */
static void distance_block(const double *xd, const double *norms, int64_t n, int d, int64_t i0, int nb, double *out)
{
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, (int)n, d, -2.0, xd + i0 * d, d, xd, d, 0.0, out,
                (int)n);
    for (int r = 0; r < nb; r++)
        for (int64_t j = 0; j < n; j++) {
            const double v = out[r * n + j] + norms[i0 + r] + norms[j];
            out[r * n + j] = v > 0.0 ? v : 0.0; /* rounding can make a tiny distance negative */
        }
}

/* One row of the conditional P: p[j] = exp(-beta dist[j]) / sum, beta chosen by bisection so that
 * the entropy -sum p log p is `target` nats. Distances are shifted by their minimum first: the
 * entropy and p do not change, and the nearest neighbour's term is exp(0) = 1, so the sum can
 * neither underflow to 0 nor overflow, whatever the features' scale. */
static void conditional_row(const double *dist, int64_t m, double target, double *p)
{
    double dmin = INFINITY, mean = 0.0;
    for (int64_t j = 0; j < m; j++)
        dmin = dist[j] < dmin ? dist[j] : dmin;
    for (int64_t j = 0; j < m; j++)
        mean += dist[j] - dmin;
    mean /= (double)m;
    /* Start where the typical term is exp(-1): a scale-free guess that saves the first doublings. */
    double beta = mean > 0.0 ? 1.0 / mean : 1.0, lo = 0.0, hi = INFINITY, sum = 1.0;
    for (int step = 0; step < BISECTION_STEPS; step++) {
        double sd = 0.0;
        sum = 0.0;
        for (int64_t j = 0; j < m; j++) {
            p[j] = exp(-beta * (dist[j] - dmin));
            sum += p[j];
            sd += p[j] * (dist[j] - dmin);
        }
        const double h = log(sum) + beta * sd / sum;
        if (fabs(h - target) < ENTROPY_TOL)
            break;
        if (step == BISECTION_STEPS - 1)
            break; /* keep p of the beta just evaluated (targets out of reach end here) */
        if (h > target) { /* too flat: a narrower Gaussian */
            lo = beta;
            beta = isinf(hi) ? 2.0 * beta : 0.5 * (beta + hi);
        } else {
            hi = beta;
            beta = 0.5 * (beta + lo);
        }
    }
    for (int64_t j = 0; j < m; j++)
        p[j] /= sum;
}

relate_status relate_tsne_affinities(const float *x, int64_t n, int d, double perplexity, float *p, relate_error *err)
{
    if (check_input(x, n, d, perplexity, err) != RELATE_OK)
        return err->code;
    double *norms, *xd = to_double(x, n, d, &norms);
    if (!xd)
        return relate_error_set(err, RELATE_ERR_NOMEM, "t-SNE: out of memory for %lld x %d features", (long long)n, d);
    const double target = log(perplexity);
    int failed = 0;
#pragma omp parallel
    {
        double *dist = malloc((size_t)DIST_BLOCK * (size_t)n * sizeof *dist);
        double *row = malloc((size_t)n * 2 * sizeof *row); /* others' distances, then their p */
        if (!dist || !row) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (int64_t b = 0; b < (n + DIST_BLOCK - 1) / DIST_BLOCK; b++) {
            if (!dist || !row)
                continue;
            const int64_t i0 = b * DIST_BLOCK;
            const int nb = (int)(n - i0 < DIST_BLOCK ? n - i0 : DIST_BLOCK);
            distance_block(xd, norms, n, d, i0, nb, dist);
            for (int r = 0; r < nb; r++) {
                const int64_t i = i0 + r;
                int64_t m = 0;
                for (int64_t j = 0; j < n; j++)
                    if (j != i)
                        row[m++] = dist[r * n + j];
                conditional_row(row, n - 1, target, row + n);
                m = 0;
                for (int64_t j = 0; j < n; j++)
                    p[i * n + j] = j == i ? 0.0f : (float)row[n + m++];
            }
        }
        free(dist);
        free(row);
    }
    free(xd);
    free(norms);
    if (failed)
        return relate_error_set(err, RELATE_ERR_NOMEM, "t-SNE: out of memory for the distances");
    /* Symmetrise: p_ij = (p_j|i + p_i|j) / 2n; each pair is written by one iteration only. */
    const double scale = 1.0 / (2.0 * (double)n);
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) {
            const float v = (float)(((double)p[i * n + j] + (double)p[j * n + i]) * scale);
            p[i * n + j] = v;
            p[j * n + i] = v;
        }
    return RELATE_OK;
}

/* ---- sparse affinities (Barnes-Hut) ---- */

typedef struct near {
    double dist;
    int32_t index;
} near;

/* (dist, index) order: ties go to the lower index, so the neighbours never depend on scan order. */
static int near_less(near a, near b) { return a.dist < b.dist || (a.dist == b.dist && a.index < b.index); }

/* A max-heap of the k nearest so far: the farthest on top, replaced by anything nearer. */
static void heap_down(near *h, int k, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < k && near_less(h[m], h[l]))
            m = l;
        if (r < k && near_less(h[m], h[r]))
            m = r;
        if (m == i)
            return;
        near t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static int near_cmp(const void *a, const void *b)
{
    const near *x = a, *y = b;
    return near_less(*x, *y) ? -1 : near_less(*y, *x) ? 1 : 0;
}

typedef struct entry {
    int32_t col;
    double val;
} entry;

static int entry_cmp(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    return (x->col > y->col) - (x->col < y->col);
}

void relate_tsne_sparse_free(relate_tsne_sparse *p)
{
    free(p->row);
    free(p->col);
    free(p->val);
    memset(p, 0, sizeof *p);
}

relate_status relate_tsne_affinities_sparse(const float *x, int64_t n, int d, double perplexity, int k,
                                            relate_tsne_sparse *p, relate_error *err)
{
    memset(p, 0, sizeof *p);
    if (check_input(x, n, d, perplexity, err) != RELATE_OK)
        return err->code;
    if (k < 1 || k > n - 1 || !(perplexity < k + 1.0))
        return relate_error_set(err, RELATE_ERR_ARG, "t-SNE: k = %d neighbours must lie in [1, %lld] and exceed "
                                                     "perplexity - 1 (perplexity %g)",
                                k, (long long)(n - 1), perplexity);
    double *norms, *xd = to_double(x, n, d, &norms);
    int32_t *nbr = malloc((size_t)n * (size_t)k * sizeof *nbr);
    double *cond = malloc((size_t)n * (size_t)k * sizeof *cond);
    int64_t *count = calloc((size_t)n + 1, sizeof *count);
    entry *ent = NULL;
    relate_status st = RELATE_OK;
    if (!xd || !nbr || !cond || !count) {
        st = relate_error_set(err, RELATE_ERR_NOMEM, "t-SNE: out of memory for %lld x %d neighbours", (long long)n, k);
        goto done;
    }
    const double target = log(perplexity);
    int failed = 0;
#pragma omp parallel
    {
        double *dist = malloc((size_t)DIST_BLOCK * (size_t)n * sizeof *dist);
        near *heap = malloc((size_t)k * sizeof *heap);
        double *row = malloc((size_t)k * 2 * sizeof *row);
        if (!dist || !heap || !row) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (int64_t b = 0; b < (n + DIST_BLOCK - 1) / DIST_BLOCK; b++) {
            if (!dist || !heap || !row)
                continue;
            const int64_t i0 = b * DIST_BLOCK;
            const int nb = (int)(n - i0 < DIST_BLOCK ? n - i0 : DIST_BLOCK);
            distance_block(xd, norms, n, d, i0, nb, dist);
            for (int r = 0; r < nb; r++) {
                const int64_t i = i0 + r;
                const double *di = dist + r * n;
                int h = 0;
                for (int64_t j = 0; j < n; j++) {
                    if (j == i)
                        continue;
                    const near c = {di[j], (int32_t)j};
                    if (h < k) {
                        heap[h++] = c;
                        if (h == k)
                            for (int s = k / 2 - 1; s >= 0; s--)
                                heap_down(heap, k, s);
                    } else if (near_less(c, heap[0])) {
                        heap[0] = c;
                        heap_down(heap, k, 0);
                    }
                }
                qsort(heap, (size_t)k, sizeof *heap, near_cmp);
                /* The neighbours' distances again, as differences: the BLAS form served to rank
                 * them, this one has no cancellation for P. */
                for (int m = 0; m < k; m++) {
                    const double *a = xd + i * d, *bb = xd + (int64_t)heap[m].index * d;
                    double s = 0.0;
                    for (int c = 0; c < d; c++)
                        s += (a[c] - bb[c]) * (a[c] - bb[c]);
                    row[m] = s;
                    nbr[i * k + m] = heap[m].index;
                }
                conditional_row(row, k, target, cond + i * k);
            }
        }
        free(dist);
        free(heap);
        free(row);
    }
    if (failed) {
        st = relate_error_set(err, RELATE_ERR_NOMEM, "t-SNE: out of memory for the distances");
        goto done;
    }
    /* Symmetrise: row i gets its own k entries and one for every j that has i as a neighbour;
     * the pair (i, j) present both ways is summed, p_ij = (p_j|i + p_i|j) / 2n. */
    for (int64_t i = 0; i < n; i++) {
        count[i + 1] += k;
        for (int m = 0; m < k; m++)
            count[nbr[i * k + m] + 1]++;
    }
    for (int64_t i = 0; i < n; i++)
        count[i + 1] += count[i];
    ent = malloc((size_t)count[n] * sizeof *ent);
    p->row = malloc(((size_t)n + 1) * sizeof *p->row);
    int64_t *fill = malloc((size_t)n * sizeof *fill);
    if (!ent || !p->row || !fill) {
        free(fill);
        st = relate_error_set(err, RELATE_ERR_NOMEM, "t-SNE: out of memory for P");
        goto done;
    }
    memcpy(fill, count, (size_t)n * sizeof *fill);
    for (int64_t i = 0; i < n; i++)
        for (int m = 0; m < k; m++) {
            const int32_t j = nbr[i * k + m];
            const double v = cond[i * k + m];
            ent[fill[i]++] = (entry){j, v};
            ent[fill[j]++] = (entry){(int32_t)i, v};
        }
    free(fill);
    int64_t nnz = 0;
    const double scale = 1.0 / (2.0 * (double)n);
    for (int64_t i = 0; i < n; i++) {
        entry *e = ent + count[i];
        const int64_t len = count[i + 1] - count[i];
        qsort(e, (size_t)len, sizeof *e, entry_cmp);
        p->row[i] = nnz;
        for (int64_t a = 0; a < len; a++) {
            double v = e[a].val;
            if (a + 1 < len && e[a + 1].col == e[a].col)
                v += e[++a].val; /* at most two: i's and j's conditional, and + commutes exactly */
            ent[nnz++] = (entry){e[a].col, v * scale};
        }
    }
    p->row[n] = nnz;
    p->n = n;
    p->col = malloc((size_t)(nnz ? nnz : 1) * sizeof *p->col);
    p->val = malloc((size_t)(nnz ? nnz : 1) * sizeof *p->val);
    if (!p->col || !p->val) {
        st = relate_error_set(err, RELATE_ERR_NOMEM, "t-SNE: out of memory for P");
        goto done;
    }
    for (int64_t a = 0; a < nnz; a++) {
        p->col[a] = ent[a].col;
        p->val[a] = (float)ent[a].val;
    }
done:
    if (st != RELATE_OK)
        relate_tsne_sparse_free(p);
    free(xd);
    free(norms);
    free(nbr);
    free(cond);
    free(count);
    free(ent);
    return st;
}

/* ---- the exact gradient ---- */

/* Independent partial sums per point: each lane adds every LANES-th pair in order, so the compiler
 * can vectorise across lanes without reassociating anything, and the result is the same on any
 * number of threads. */
enum { LANES = 8 };

relate_status relate_tsne_gradient_exact(const float *p, const double *y, int64_t n, double exaggeration,
                                         double *grad, relate_error *err)
{
    double *part = malloc((size_t)n * 5 * sizeof *part); /* per point: attraction x, y, repulsion x, y, z */
    if (!part)
        return relate_error_set(err, RELATE_ERR_NOMEM, "t-SNE: out of memory for the gradient of %lld points",
                                (long long)n);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float *pi = p + i * n;
        const double xi = y[2 * i], yi = y[2 * i + 1];
        double ax[LANES] = {0}, ay[LANES] = {0}, rx[LANES] = {0}, ry[LANES] = {0}, zz[LANES] = {0};
        int64_t j = 0;
        for (; j + LANES <= n; j += LANES)
            for (int l = 0; l < LANES; l++) {
                const double dx = xi - y[2 * (j + l)], dy = yi - y[2 * (j + l) + 1];
                const double w = 1.0 / (1.0 + dx * dx + dy * dy), pw = (double)pi[j + l] * w, w2 = w * w;
                ax[l] += pw * dx;
                ay[l] += pw * dy;
                rx[l] += w2 * dx;
                ry[l] += w2 * dy;
                zz[l] += w;
            }
        for (; j < n; j++) {
            const double dx = xi - y[2 * j], dy = yi - y[2 * j + 1];
            const double w = 1.0 / (1.0 + dx * dx + dy * dy), pw = (double)pi[j] * w, w2 = w * w;
            ax[0] += pw * dx;
            ay[0] += pw * dy;
            rx[0] += w2 * dx;
            ry[0] += w2 * dy;
            zz[0] += w;
        }
        double s[5] = {0};
        for (int l = 0; l < LANES; l++) {
            s[0] += ax[l];
            s[1] += ay[l];
            s[2] += rx[l];
            s[3] += ry[l];
            s[4] += zz[l];
        }
        s[4] -= 1.0; /* the pair (i, i): w = 1 and no force; it is not part of Z */
        memcpy(part + 5 * i, s, sizeof s);
    }
    double z = 0.0;
    for (int64_t i = 0; i < n; i++)
        z += part[5 * i + 4];
    for (int64_t i = 0; i < n; i++) {
        grad[2 * i] = 4.0 * (exaggeration * part[5 * i] - part[5 * i + 2] / z);
        grad[2 * i + 1] = 4.0 * (exaggeration * part[5 * i + 1] - part[5 * i + 3] / z);
    }
    free(part);
    return RELATE_OK;
}

double relate_tsne_kl_exact(const float *p, const double *y, int64_t n)
{
    double *row = malloc((size_t)n * 2 * sizeof *row); /* per point: its part of Z, of sum p log(p (1 + d^2)) */
    if (!row)
        return NAN;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double z = 0.0, s = 0.0;
        for (int64_t j = 0; j < n; j++) {
            if (j == i)
                continue;
            const double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1], q = 1.0 + dx * dx + dy * dy;
            z += 1.0 / q;
            const double pij = p[i * n + j];
            if (pij > 0)
                s += pij * log(pij * q);
        }
        row[2 * i] = z;
        row[2 * i + 1] = s;
    }
    /* KL = sum p log(p / (w / Z)) = sum p log(p (1 + d^2)) + log Z sum p */
    double z = 0.0, s = 0.0, psum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        z += row[2 * i];
        s += row[2 * i + 1];
    }
    for (int64_t i = 0; i < n * n; i++)
        psum += p[i];
    free(row);
    return s + log(z) * psum;
}

/* ---- the optimiser ---- */

static const double MIN_GAIN = 0.01, INIT_STD = 1e-4;

relate_status relate_tsne_run(const float *x, int64_t n, int d, const relate_tsne_options *o, float *y,
                              relate_tsne_result *result, relate_error *err)
{
    const relate_tsne_options opt = o ? *o : relate_tsne_defaults();
    if (opt.iterations < 0 || opt.exaggeration_iterations < 0 || !(opt.early_exaggeration > 0) ||
        !(opt.theta >= 0) || !(opt.momentum >= 0 && opt.momentum < 1) ||
        !(opt.final_momentum >= 0 && opt.final_momentum < 1) || !isfinite(opt.learning_rate))
        return relate_error_set(err, RELATE_ERR_ARG, "t-SNE: iterations >= 0, early exaggeration > 0, theta >= 0 "
                                                     "and momenta in [0, 1) are required");
    if (check_input(x, n, d, opt.perplexity, err) != RELATE_OK)
        return err->code;
    const bool bh = n > opt.exact_max;
    /* floor(3 perplexity) neighbours (van der Maaten 2014), at least 1 and at most n - 1 */
    const double k3 = floor(3.0 * opt.perplexity);
    const int k = k3 < 1.0 ? 1 : k3 < (double)(n - 1) ? (int)k3 : (int)(n - 1);
    if (bh && !(opt.perplexity < k + 1.0))
        return relate_error_set(err, RELATE_ERR_ARG, "t-SNE: perplexity %g is too large for %lld points "
                                                     "(Barnes-Hut keeps %d neighbours)",
                                opt.perplexity, (long long)n, k);
    double lr = opt.learning_rate;
    if (lr <= 0) {
        lr = (double)n / opt.early_exaggeration / 4.0;
        lr = lr > 50.0 ? lr : 50.0;
    }
    float *pd = NULL;
    relate_tsne_sparse ps = {0};
    double *yd = malloc((size_t)n * 2 * sizeof *yd), *grad = malloc((size_t)n * 2 * sizeof *grad);
    double *upd = calloc((size_t)n * 2, sizeof *upd), *gain = malloc((size_t)n * 2 * sizeof *gain);
    relate_status st = RELATE_OK;
    if (!yd || !grad || !upd || !gain || (!bh && !(pd = malloc((size_t)n * (size_t)n * sizeof *pd)))) {
        st = relate_error_set(err, RELATE_ERR_NOMEM, "t-SNE: out of memory for %lld points%s", (long long)n,
                              bh ? "" : " (exact: N^2 floats of P; a smaller exact_max uses Barnes-Hut)");
        goto done;
    }
    st = bh ? relate_tsne_affinities_sparse(x, n, d, opt.perplexity, k, &ps, err)
            : relate_tsne_affinities(x, n, d, opt.perplexity, pd, err);
    if (st != RELATE_OK)
        goto done;
    relate_rng rng;
    relate_rng_init(&rng, opt.seed, 0x74736e65u /* "tsne" */, 0, RELATE_PURPOSE_INIT);
    for (int64_t i = 0; i < 2 * n; i++) {
        yd[i] = INIT_STD * relate_rng_normal(&rng);
        gain[i] = 1.0;
    }
    double z = 0.0;
    for (int it = 0; it < opt.iterations && st == RELATE_OK; it++) {
        const bool early = it < opt.exaggeration_iterations;
        const double ex = early ? opt.early_exaggeration : 1.0, mom = early ? opt.momentum : opt.final_momentum;
        st = bh ? relate_tsne_gradient_bh(&ps, yd, opt.theta, ex, grad, &z, err)
                : relate_tsne_gradient_exact(pd, yd, n, ex, grad, err);
        if (st != RELATE_OK)
            break;
        /* Delta-bar-delta gains (Jacobs 1988, as van der Maaten's code and sklearn): a coordinate
         * whose gradient keeps its sign speeds up, one that flips slows down. */
        double mx = 0.0, my = 0.0;
        for (int64_t i = 0; i < 2 * n; i++) {
            gain[i] = (upd[i] * grad[i] < 0.0) ? gain[i] + 0.2 : gain[i] * 0.8;
            gain[i] = gain[i] > MIN_GAIN ? gain[i] : MIN_GAIN;
            upd[i] = mom * upd[i] - lr * gain[i] * grad[i];
            yd[i] += upd[i];
        }
        /* Recentre: Q ignores translation, and a centred map keeps the quadtree's box small. */
        for (int64_t i = 0; i < n; i++) {
            mx += yd[2 * i];
            my += yd[2 * i + 1];
        }
        mx /= (double)n;
        my /= (double)n;
        for (int64_t i = 0; i < n; i++) {
            yd[2 * i] -= mx;
            yd[2 * i + 1] -= my;
        }
        if (!isfinite(mx) || !isfinite(my))
            st = relate_error_set(err, RELATE_ERR_NUMERIC, "t-SNE diverged at iteration %d (learning rate %g)", it,
                                  lr);
    }
    if (st != RELATE_OK)
        goto done;
    double kl;
    if (bh) {
        /* Z of the final map (the loop's last one belongs to the map before the last step). */
        if ((st = relate_tsne_gradient_bh(&ps, yd, opt.theta, 1.0, grad, &z, err)) != RELATE_OK)
            goto done;
        kl = relate_tsne_kl_sparse(&ps, yd, z);
    } else {
        kl = relate_tsne_kl_exact(pd, yd, n);
    }
    if (!isfinite(kl)) {
        st = relate_error_set(err, RELATE_ERR_NUMERIC, "t-SNE: the final KL divergence is %g", kl);
        goto done;
    }
    for (int64_t i = 0; i < 2 * n; i++)
        y[i] = (float)yd[i];
    if (result)
        *result = (relate_tsne_result){.barnes_hut = bh, .neighbours = bh ? k : (int)(n - 1), .learning_rate = lr,
                                       .kl = kl};
done:
    free(pd);
    relate_tsne_sparse_free(&ps);
    free(yd);
    free(grad);
    free(upd);
    free(gain);
    return st;
}

relate_status relate_tsne(const float *x, int64_t n, int d, const relate_tsne_options *o, float *y, relate_error *err)
{
    return relate_tsne_run(x, n, d, o, y, NULL, err);
}
