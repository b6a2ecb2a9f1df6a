/* test_trajectory.c: multi-step training against the reference's own PyTorch step (tools/golden_trajectory.py,
 * tests/golden/trajectory.safetensors): every stage-1 method and stage 2 (linear evaluation, finetuning) follow a
 * 20-24 step trajectory on conv4 from the golden's initial state; after every step the loss, the method's accuracy
 * meters, each group's learning rate, Adam's step count and a checksum of every tensor of the reference's checkpoint
 * (parameters, BatchNorm running statistics and num_batches_tracked, SGD momentum buffers, Adam exp_avg /
 * exp_avg_sq) are compared; after the last step every tensor is compared element by element (512 samples of the
 * larger ones).
 * Not a test of one step's gradients (tests/golden_kernels, tests/nn, tests/methods do that) nor of the data
 * pipeline: the batches come from an integer formula that both sides evaluate exactly.
 *
 * Inputs (the same formula as tools/golden_trajectory.py): global step s (0-based over the run), batch array
 * [V * B, 3, S, S] view-major (rows k*B .. k*B+B-1 = view k, as relate's loader gives), flat element i:
 *     u = (uint32)(i * 2654435761 + s * 40503 + SALT),   x = (float)(u >> 8) / 16777216 * 4 - 2
 * (exact in float32). Label of image n: (7 n + s) % C. deepcluster: image n is dataset index (11 n + 8 s) % 40,
 * and epoch e's pseudo-labels are label[j] = (7 j + 3 e) % (k - 3).
 *
 * The state is read the way the reference would save it: after every step relate's checkpoint (relate_method_save,
 * or relate_classifier_model_put in stage 2) is written to a temporary file and read back by checkpoint path
 * ("backbone/layer1.bn.running_var", "optimizer/state/3/exp_avg"), so every tensor is named as in PyTorch and
 * nothing private to a method is needed; learning rates and Adam's step counts come from that file's optimizer
 * state, loaded into a shadow optimizer over the same parameters.
 *
 * Stage 1 runs relate_method_epoch_begin and relate_method_step as src/train/pretrain.c does, except deepcluster,
 * whose epoch_begin clusters a data split: the test calls its per-epoch pieces instead,
 * relate_deepcluster_reset_last_layer and relate_deepcluster_set_clusters with fixed pseudo-labels (the feature
 * pass, PCA and k-means are tested in tests/deepcluster). Stage 2 has no step function of its own (the loop of
 * src/train/lineval.c is static), so the test runs that loop's step (train_loader) from the same pieces: the
 * relate_classifier_model's optimizers (adam_lineval; adam_finetune with relate_step_decay_factor(epoch, 200)),
 * the frozen eval-mode backbone for linear evaluation, train mode for finetuning.
 *
 * Tolerances. Two correct float32 computations of these steps do not stay within rounding of each other: a ReLU
 * input within rounding of zero flips its mask in one and not the other (an "event"; with ~10^6 ReLU inputs per step
 * some run meets one at some step), the first layer's BatchNorm gradients are small sums of large terms, Adam's first
 * moment passes through zero, SGD at lr 0.1 amplifies, and the Adam moments of linear1.bias of the MLP heads hold
 * rounding noise only on both sides (its gradient is exactly zero: BatchNorm1d follows). One tolerance for all would
 * be loose everywhere or fail on those, so the golden carries two measured envelopes (tools/golden_trajectory.py):
 *   rounding envelope, per step (worst so far) and tensor: how far float64, PyTorch's other convolution path, two
 *     threads and initial states perturbed by two roundings are from the golden;
 *   event envelope, per tensor: how far runs from initial states perturbed by 2^-18 (which meet events early) get.
 * The bound of a comparison is max(floor, TOL_FACTOR x rounding envelope) during the run's first strict_steps steps
 * (2; 0 for deepinfomax, whose local discriminator has ~8 million ReLU inputs per step and meets events from the
 * first step), and also EVENT_FACTOR x event envelope after them. Every deliberate mistake tried
 * (tests/golden/README.md) shows in the first two steps or in an exact check (lr, Adam step count,
 * num_batches_tracked, deepcluster's re-initialisation, deepinfomax's prior samples), its most affected check by
 * 120x to 6 x 10^8 x its bound.
 * Measured (README): relate's worst error / bound over all runs, steps and tensors is 0.40 with oneDNN convolutions
 * (the default) and 0.41 with RELATE_CONV=blas. RELATE_TEST_VERBOSE=1 prints, per run, the worst error and the worst
 * error / bound of the loss, the strict steps, the later steps, the final tensors and the noise-only tensors. */
#define _POSIX_C_SOURCE 200809L /* strdup, mkdtemp */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "methods/deepcluster.h"
#include "methods/method_internal.h"
#include "relate/checkpoint.h"
#include "relate/graph.h"
#include "relate/optim.h"
#include "relate/stage2.h"
#include "test_util.h"

/* ---- tolerances (see the file comment) ---- */
#define TOL_FACTOR 8.0        /* times the rounding envelope (per step and tensor) */
#define EVENT_FACTOR 4.0      /* times the event envelope (per tensor), after the strict steps */
#define FLOOR_LOSS 1e-6       /* relative error of a step's loss */
#define FLOOR_SUM 1e-5        /* checksum error (sums_err) */
#define FLOOR_FINAL 1e-5      /* norm-wise relative error of a final tensor */

#define MAX_PATHS 128
#define MAX_EPOCHS 16
#define N_DC 40               /* deepcluster's dataset size in the golden */
#define B_MAX 64

typedef struct worst {
    double err, ratio;        /* worst error; worst error / bound */
    char where[160], ratio_where[160];
} worst;

typedef struct run {
    const char *name;
    const relate_safetensors *st;
    char method[32];
    int B, K, C, S, seed, steps_per_epoch, nepochs, epochs[MAX_EPOCHS];
    int strict_steps;                 /* steps compared against the rounding envelope alone */
    uint32_t salt;
    char *state_buf, *init_buf, *noise_buf;
    const char *state[MAX_PATHS], *init[MAX_PATHS], *noise[MAX_PATHS];
    int nstate, ninit, nnoise;
    bool stage2, finetune;
    relate_method *m;                 /* stage 1 */
    relate_backbone bb;               /* stage 2 */
    relate_classifier_model cm;
    bool bb_made, cm_made;
    worst wloss, wstrict, wsum, wfinal; /* over the tensors that are not rounding noise only; wstrict: checksums of
                                         * the strict steps, wsum: of the others */
    worst wnoise;                     /* over those that are (the golden's <run>.noise list) */
} run;

static char tmpdir[256];

/* Elements of golden tensors, read with memcpy: safetensors packs tensors back to back, so an F64 or I64 tensor
 * after an odd number of F32 elements is not 8-byte aligned. */
static double f64_at(const relate_st_tensor *t, size_t i)
{
    double v;
    memcpy(&v, (const char *)t->data + i * sizeof v, sizeof v);
    return v;
}

static int64_t i64_at(const relate_st_tensor *t, size_t i)
{
    int64_t v;
    memcpy(&v, (const char *)t->data + i * sizeof v, sizeof v);
    return v;
}

static float f32_at(const relate_st_tensor *t, size_t i)
{
    float v;
    memcpy(&v, (const char *)t->data + i * sizeof v, sizeof v);
    return v;
}

/* ------------------------------------------------------------------ golden helpers */

static const relate_st_tensor *find(run *r, const char *name)
{
    char full[1024];
    snprintf(full, sizeof full, "%s.%s", r->name, name);
    return relate_safetensors_find(r->st, full);
}

/* The run's golden tensor <run>.<name>; NULL and a failure when it is missing or of another dtype. */
static const relate_st_tensor *need(run *r, const char *name, const char *dtype)
{
    const relate_st_tensor *t = find(r, name);
    CHECK_MSG(t && strcmp(t->dtype, dtype) == 0, "golden tensor %s.%s missing or not %s", r->name, name, dtype);
    return t && strcmp(t->dtype, dtype) == 0 ? t : NULL;
}

static const char *meta(run *r, const char *key)
{
    char full[1024];
    snprintf(full, sizeof full, "%s.%s", r->name, key);
    const char *v = relate_safetensors_meta(r->st, full);
    CHECK_MSG(v != NULL, "golden metadata %s missing", full);
    return v;
}

static int meta_int(run *r, const char *key)
{
    const char *v = meta(r, key);
    return v ? atoi(v) : 0;
}

static int split_list(char *buf, const char **out, int cap)
{
    int n = 0;
    for (char *p = buf; p && *p && n < cap;) {
        out[n++] = p;
        char *c = strchr(p, ',');
        if (c)
            *c++ = 0;
        p = c;
    }
    return n;
}

/* The bound of one comparison: max(floor, TOL_FACTOR x the rounding envelope so far, and, once the strict steps are
 * over, EVENT_FACTOR x the event envelope). */
static double bound_of(double floor, double noise_env, double event_env, bool strict)
{
    double b = TOL_FACTOR * noise_env;
    if (!strict && EVENT_FACTOR * event_env > b)
        b = EVENT_FACTOR * event_env;
    return b > floor ? b : floor;
}

/* Records err against its bound (worst error, worst error / bound) and returns whether it is within. */
static bool within(worst *w, double err, double bound, const char *where)
{
    if (isnan(err))
        err = INFINITY;
    if (err > w->err || (w->where[0] == 0 && err >= w->err)) {
        w->err = err;
        snprintf(w->where, sizeof w->where, "%s", where);
    }
    if (err / bound > w->ratio) {
        w->ratio = err / bound;
        snprintf(w->ratio_where, sizeof w->ratio_where, "%s", where);
    }
    return err <= bound;
}

/* ------------------------------------------------------------------ inputs (tools/golden_trajectory.py) */

static void fill_images(float *x, int64_t n, int step, uint32_t salt)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)i * 2654435761u + (uint32_t)step * 40503u + salt;
        x[i] = (float)(u >> 8) / 16777216.0f * 4.0f - 2.0f;
    }
}

/* ------------------------------------------------------------------ where a checkpoint path lives in relate */

static relate_param *linear_entry(relate_linear_layer *l, const char *name)
{
    if (strcmp(name, "weight") == 0)
        return l->weight;
    if (strcmp(name, "bias") == 0)
        return l->bias;
    return NULL;
}

/* The relate entry behind a checkpoint path "<key>/<state-dict name>" (parameters and buffers). */
static relate_param *find_entry(run *r, const char *path)
{
    const char *slash = strchr(path, '/');
    if (!slash)
        return NULL;
    char key[32];
    snprintf(key, sizeof key, "%.*s", (int)(slash - path), path);
    const char *name = slash + 1;
    if (r->stage2) {
        if (strcmp(key, "backbone") == 0)
            return relate_params_find(&r->bb.params, name);
        return strcmp(key, "classifier") == 0 ? relate_params_find(&r->cm.params, name) : NULL;
    }
    relate_method *m = r->m;
    if (strcmp(key, "backbone") == 0)
        return relate_params_find(&m->backbone.params, name);
    if (strcmp(r->method, "relationnet") == 0 && strcmp(key, "relation") == 0)
        return relate_params_find(relate_relationnet_head(m), name);
    if (strcmp(r->method, "simclr") == 0 && strcmp(key, "head") == 0)
        return relate_params_find(relate_simclr_head(m), name);
    if (strcmp(r->method, "deepinfomax") == 0 && strcmp(key, "loss_fn") == 0)
        return relate_params_find(relate_deepinfomax_discriminators(m), name);
    if (strcmp(r->method, "deepcluster") == 0 && strcmp(key, "classifier") == 0)
        return relate_params_find(relate_deepcluster_head(m), name);
    if (strcmp(r->method, "rotationnet") == 0 && strcmp(key, "classifier") == 0)
        return linear_entry(relate_rotationnet_classifier(m), name);
    if (strcmp(r->method, "standard") == 0 && strcmp(key, "classifier") == 0)
        return linear_entry(relate_method_classifier(m), name);
    return NULL;
}

/* Head parameters in registration order: the second optimizer group of a stage-1 method. */
static relate_param **head_params(run *r, int *count)
{
    relate_params *store = NULL;
    if (strcmp(r->method, "relationnet") == 0)
        store = relate_relationnet_head(r->m);
    else if (strcmp(r->method, "simclr") == 0)
        store = relate_simclr_head(r->m);
    else if (strcmp(r->method, "deepinfomax") == 0)
        store = relate_deepinfomax_discriminators(r->m);
    else if (strcmp(r->method, "deepcluster") == 0)
        store = relate_deepcluster_head(r->m);
    if (store)
        return relate_collect_params(store, count);
    relate_linear_layer *lin = strcmp(r->method, "rotationnet") == 0 ? relate_rotationnet_classifier(r->m)
                                                                      : relate_method_classifier(r->m);
    relate_param **p = malloc(2 * sizeof *p);
    if (p) {
        p[0] = lin->weight;
        p[1] = lin->bias;
    }
    *count = 2;
    return p;
}

/* ------------------------------------------------------------------ setup */

/* One initial tensor: init.<path> (shared backbone) or <run>.init.<path> F32/I64, initq + initscale (I8 codes
 * times a power of two), or <run>.initfill.<path> = (tag, fan_in) of param_fill. */
static bool load_one(run *r, const char *path, relate_param *p)
{
    char name[320];
    const bool shared = strncmp(path, "backbone/", 9) == 0;
    snprintf(name, sizeof name, "%s%sinit.%s", shared ? "" : r->name, shared ? "" : ".", path);
    const relate_st_tensor *t = relate_safetensors_find(r->st, name);
    if (t) {
        if (t->numel != p->numel)
            return false;
        if (strcmp(t->dtype, "I64") == 0 && p->kind == RELATE_BUFFER_I64)
            memcpy(p->i64, t->data, (size_t)p->numel * sizeof(int64_t));
        else if (strcmp(t->dtype, "F32") == 0 && p->kind != RELATE_BUFFER_I64)
            memcpy(p->data, t->data, (size_t)p->numel * sizeof(float));
        else
            return false;
        return true;
    }
    snprintf(name, sizeof name, "%s%sinitq.%s", shared ? "" : r->name, shared ? "" : ".", path);
    const relate_st_tensor *q = relate_safetensors_find(r->st, name);
    snprintf(name, sizeof name, "%s%sinitscale.%s", shared ? "" : r->name, shared ? "" : ".", path);
    const relate_st_tensor *sc = relate_safetensors_find(r->st, name);
    if (q && sc) {
        if (strcmp(q->dtype, "I8") || strcmp(sc->dtype, "F32") || q->numel != p->numel || p->kind == RELATE_BUFFER_I64)
            return false;
        const int8_t *codes = q->data;
        const float scale = f32_at(sc, 0);
        for (int64_t j = 0; j < p->numel; j++)
            p->data[j] = (float)codes[j] * scale;
        return true;
    }
    snprintf(name, sizeof name, "initfill.%s", path);
    const relate_st_tensor *f = find(r, name);
    if (!f || strcmp(f->dtype, "I64") || f->numel != 2 || p->kind == RELATE_BUFFER_I64)
        return false;
    relate_test_param_fill(p->data, p->numel, (uint32_t)i64_at(f, 0), i64_at(f, 1));
    return true;
}

static bool load_init(run *r)
{
    /* every entry of relate's stores must be initialised: count them against the golden's list */
    int entries = 0;
    for (int i = 0; i < r->ninit; i++) {
        relate_param *p = find_entry(r, r->init[i]);
        CHECK_MSG(p != NULL, "%s: relate has no entry for %s", r->name, r->init[i]);
        if (!p)
            return false;
        const bool ok = load_one(r, r->init[i], p);
        CHECK_MSG(ok, "%s: cannot load the initial value of %s", r->name, r->init[i]);
        if (!ok)
            return false;
        entries++;
    }
    const relate_params *bb = r->stage2 ? &r->bb.params : &r->m->backbone.params;
    for (int i = 0; i < bb->count; i++) {
        char path[256];
        snprintf(path, sizeof path, "backbone/%s", bb->items[i]->name);
        const bool ok = load_one(r, path, bb->items[i]);
        CHECK_MSG(ok, "%s: cannot load the initial value of %s", r->name, path);
        if (!ok)
            return false;
    }
    return true;
}

static bool open_run(run *r, const relate_safetensors *st, const char *name)
{
    memset(r, 0, sizeof *r);
    r->name = name;
    r->st = st;
    const char *method = meta(r, "method");
    snprintf(r->method, sizeof r->method, "%s", method ? method : "");
    const char *b = relate_safetensors_meta(st, "B"), *s = relate_safetensors_meta(st, "S"),
               *seed = relate_safetensors_meta(st, "seed");
    r->B = b ? atoi(b) : 0;
    r->S = s ? atoi(s) : 0;
    r->seed = seed ? atoi(seed) : 0;
    r->K = meta_int(r, "K");
    r->C = meta_int(r, "C");
    r->steps_per_epoch = meta_int(r, "steps_per_epoch");
    r->strict_steps = meta_int(r, "strict_steps");
    const char *salt = meta(r, "salt"), *ep = meta(r, "epochs"), *state = meta(r, "state"), *init = meta(r, "init");
    if (!salt || !ep || !state || !init || r->B < 1 || r->B > B_MAX || r->S < 1)
        return false;
    r->salt = (uint32_t)strtoul(salt, NULL, 10);
    char epbuf[256];
    snprintf(epbuf, sizeof epbuf, "%s", ep);
    const char *eps[MAX_EPOCHS];
    r->nepochs = split_list(epbuf, eps, MAX_EPOCHS);
    for (int i = 0; i < r->nepochs; i++)
        r->epochs[i] = atoi(eps[i]);
    char key[96];
    snprintf(key, sizeof key, "%s.noise", name);
    const char *noise = relate_safetensors_meta(st, key); /* NULL or "" when the run has none */
    r->state_buf = strdup(state);
    r->init_buf = strdup(init);
    r->noise_buf = strdup(noise ? noise : "");
    r->nstate = split_list(r->state_buf, r->state, MAX_PATHS);
    r->ninit = split_list(r->init_buf, r->init, MAX_PATHS);
    r->nnoise = split_list(r->noise_buf, r->noise, MAX_PATHS);
    relate_error err = {0};
    r->stage2 = strcmp(r->method, "lineval") == 0 || strcmp(r->method, "finetune") == 0;
    r->finetune = strcmp(r->method, "finetune") == 0;
    if (r->stage2) {
        r->bb_made = relate_backbone_create(&r->bb, "conv4", (uint64_t)r->seed, &err) == RELATE_OK;
        r->cm_made = r->bb_made &&
                     relate_classifier_model_init(&r->cm, &r->bb, r->C, (uint64_t)r->seed, &err) == RELATE_OK;
        CHECK_MSG(r->cm_made, "%s: %s", name, err.msg);
        if (!r->cm_made)
            return false;
    } else {
        relate_method_config cfg = relate_method_defaults();
        cfg.method = r->method;
        cfg.backbone = "conv4";
        cfg.aggregation = "cat";
        cfg.K = r->K < 2 ? 2 : r->K;
        cfg.num_classes = r->C;
        cfg.epochs = r->nepochs;
        cfg.seed = (uint64_t)r->seed;
        CHECK_MSG(relate_method_create(&r->m, &cfg, &err) == RELATE_OK, "%s: %s", name, err.msg);
        if (!r->m)
            return false;
    }
    return load_init(r);
}

static void close_run(run *r)
{
    if (r->cm_made)
        relate_classifier_model_free(&r->cm);
    if (r->bb_made)
        relate_backbone_free(&r->bb);
    relate_method_free(r->m);
    free(r->state_buf);
    free(r->init_buf);
    free(r->noise_buf);
}

/* Whether a tracked tensor holds rounding noise only (linear1.bias of an MLP head before BatchNorm1d, its Adam
 * moments, bn1.running_mean: tools/golden_trajectory.py noise_tensors). */
static bool is_noise(const run *r, const char *path)
{
    for (int i = 0; i < r->nnoise; i++)
        if (strcmp(r->noise[i], path) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------------ the state, read from relate's checkpoint */

static relate_ckpt *write_and_open(run *r)
{
    relate_error err = {0};
    relate_ckpt_writer *w = relate_ckpt_writer_create();
    relate_status st = !w                                   ? RELATE_ERR_NOMEM
                       : r->stage2 ? relate_classifier_model_put(&r->cm, w, &err)
                                   : relate_method_save(r->m, w, &err);
    char path[512];
    snprintf(path, sizeof path, "%s/%s.tar", tmpdir, r->name);
    if (st == RELATE_OK)
        st = relate_ckpt_write(w, path, &err);
    relate_ckpt_writer_free(w);
    relate_ckpt *c = NULL;
    if (st == RELATE_OK)
        st = relate_ckpt_open(&c, path, &err);
    CHECK_MSG(st == RELATE_OK, "%s: checkpoint round trip: %s", r->name, err.msg);
    return st == RELATE_OK ? c : NULL;
}

static void tensor_sums(const relate_ckpt_tensor *t, double *sum, double *sumsq)
{
    double s = 0, q = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        double v = t->is_int ? (double)t->i64[i] : (double)t->f32[i];
        s += v;
        q += v * v;
    }
    *sum = s;
    *sumsq = q;
}

/* Checksum error, as tools/golden_trajectory.py sums_err: the sum against sqrt(n * S) (the largest the sum can be,
 * by Cauchy-Schwarz), the sum of squares relative to S, where S is the golden sum of squares; for an Adam exp_avg,
 * S is the sum of its parameter's exp_avg_sq (the update divides one by the other's square root, and exp_avg passes
 * through zero where a gradient changes sign); absolute where S is 0. */
static double sums_err(double sum, double sumsq, const double *want, double S, int64_t n)
{
    const double s = sqrt((double)n * S);
    const double e1 = s > 0 ? fabs(sum - want[0]) / s : fabs(sum - want[0]);
    const double e2 = S > 0 ? fabs(sumsq - want[1]) / S : fabs(sumsq - want[1]);
    const double e = e1 > e2 ? e1 : e2;
    return isnan(e) ? INFINITY : e;
}

/* Index of a tracked path, -1 when absent. */
static int state_index(const run *r, const char *path)
{
    for (int i = 0; i < r->nstate; i++)
        if (strcmp(r->state[i], path) == 0)
            return i;
    return -1;
}

static const char *optimizer_key(const run *r)
{
    if (strcmp(r->method, "lineval") == 0)
        return "optimizer_lineval";
    return strcmp(r->method, "finetune") == 0 ? "optimizer_finetune" : "optimizer";
}

/* Learning rates and Adam's step count as saved: the checkpoint's optimizer state loaded into a shadow optimizer
 * over the same parameters (-1: SGD, no step count). */
static void saved_optimizer(run *r, const relate_ckpt *c, int step, double *lr, int ngroups, int64_t *adam_step)
{
    relate_error err = {0};
    *adam_step = -1;
    int nbb = 0, nhead = 0;
    relate_param **bb = NULL, **hd = NULL;
    relate_param_group groups[2];
    int ng;
    if (r->stage2) {
        const relate_adam *a = r->finetune ? &r->cm.adam_finetune : &r->cm.adam_lineval;
        ng = a->ngroups;
        for (int g = 0; g < ng && g < 2; g++)
            groups[g] = a->groups[g];
    } else {
        bb = relate_collect_params(&r->m->backbone.params, &nbb);
        hd = head_params(r, &nhead);
        groups[0] = (relate_param_group){.params = bb, .count = nbb, .lr = 1};
        groups[1] = (relate_param_group){.params = hd, .count = nhead, .lr = 1};
        ng = 2;
    }
    CHECK_MSG(ng == ngroups, "%s: %d parameter groups, reference %d", r->name, ng, ngroups);
    if (strcmp(r->method, "standard") == 0) {
        relate_sgd shadow;
        CHECK_MSG(relate_sgd_init(&shadow, groups, ng, 0.9, 0.0, false, &err) == RELATE_OK, "%s", err.msg);
        CHECK_MSG(relate_ckpt_load_sgd(c, optimizer_key(r), &shadow, &err) == RELATE_OK, "%s step %d: %s", r->name,
                  step, err.msg);
        for (int g = 0; g < ng && g < ngroups; g++)
            lr[g] = shadow.groups[g].lr;
        relate_sgd_free(&shadow);
    } else {
        relate_adam shadow;
        CHECK_MSG(relate_adam_init(&shadow, groups, ng, 0.9, 0.999, 1e-8, &err) == RELATE_OK, "%s", err.msg);
        CHECK_MSG(relate_ckpt_load_adam(c, optimizer_key(r), &shadow, &err) == RELATE_OK, "%s step %d: %s", r->name,
                  step, err.msg);
        for (int g = 0; g < ng && g < ngroups; g++)
            lr[g] = shadow.groups[g].lr;
        *adam_step = shadow.state[0].step;
        for (int i = 1; i < shadow.nparams; i++)
            CHECK_MSG(shadow.state[i].step == *adam_step, "%s step %d: parameter %d stepped %lld times, parameter 0 "
                      "%lld", r->name, step, i, (long long)shadow.state[i].step, (long long)*adam_step);
        relate_adam_free(&shadow);
    }
    free(bb);
    free(hd);
}

/* Everything compared after step n. */
static void compare_step(run *r, int n, double loss, const double *acc, int nacc)
{
    const relate_st_tensor *tl = need(r, "loss", "F64"), *tlr = need(r, "lr", "F64"), *ts = need(r, "sums", "F64"),
                           *nl = need(r, "noise.loss", "F32"), *ns = need(r, "noise.sums", "F32"),
                           *vl = need(r, "event.loss", "F32"), *vs = need(r, "event.sums", "F32");
    if (!tl || !tlr || !ts || !nl || !ns || !vl || !vs)
        return;
    const bool strict = n < r->strict_steps;
    char where[160];
    snprintf(where, sizeof where, "step %d", n);
    const double want_loss = f64_at(tl, (size_t)n);
    const double el = fabs(loss - want_loss) / fabs(want_loss);
    const double bl = bound_of(FLOOR_LOSS, f32_at(nl, (size_t)n), f32_at(vl, 0), strict);
    CHECK_MSG(within(&r->wloss, el, bl, where), "%s step %d: loss %.9g, reference %.9g (rel err %.3g, bound %.3g)",
              r->name, n, loss, want_loss, el, bl);

    const relate_st_tensor *ta = find(r, "acc"), *na = find(r, "noise.acc"), *va = find(r, "event.acc");
    const int want_nacc = ta ? (int)ta->shape[1] : 0;
    CHECK_MSG(want_nacc == nacc, "%s: %d accuracy meters, reference %d", r->name, nacc, want_nacc);
    for (int a = 0; a < nacc && a < want_nacc; a++) {
        const double want = f64_at(ta, (size_t)(n * want_nacc + a));
        double env = na ? f32_at(na, (size_t)(n * want_nacc + a)) : 0.0;
        if (!strict && va && f32_at(va, (size_t)a) > env)
            env = f32_at(va, (size_t)a);
        /* equal, unless the other computations of the golden's steps disagree on predictions too (a whole number of
         * predictions, stored in float32: 1e-6 covers its rounding) */
        CHECK_MSG(fabs(acc[a] - want) <= env + 1e-6, "%s step %d: accuracy meter %d %.17g, reference %.17g (bound %g)",
                  r->name, n, a, acc[a], want, env);
    }

    relate_ckpt *c = write_and_open(r);
    if (!c)
        return;
    const int ngroups = (int)tlr->shape[1];
    double lr[2] = {0};
    int64_t adam_step;
    saved_optimizer(r, c, n, lr, ngroups < 2 ? ngroups : 2, &adam_step);
    for (int g = 0; g < ngroups && g < 2; g++) {
        const double want = f64_at(tlr, (size_t)(n * ngroups + g));
        CHECK_MSG(lr[g] == want, "%s step %d: group %d lr %.17g, reference %.17g", r->name, n, g, lr[g], want);
    }
    const relate_st_tensor *tst = find(r, "adamstep");
    if (tst)
        CHECK_MSG(adam_step == i64_at(tst, (size_t)n), "%s step %d: Adam step %lld, reference %lld", r->name, n,
                  (long long)adam_step, (long long)i64_at(tst, (size_t)n));
    CHECK(ts->shape[1] == r->nstate && ns->shape[1] == r->nstate && vs->numel == r->nstate);
    for (int i = 0; i < r->nstate; i++) {
        relate_ckpt_tensor t;
        relate_error err = {0};
        if (relate_ckpt_get_tensor(c, r->state[i], &t, &err) != RELATE_OK) {
            CHECK_MSG(0, "%s step %d: relate's checkpoint lacks %s: %s", r->name, n, r->state[i], err.msg);
            continue;
        }
        double sum, sumsq;
        tensor_sums(&t, &sum, &sumsq);
        const size_t row = (size_t)n * r->nstate * 2;
        const double want[2] = {f64_at(ts, row + 2 * i), f64_at(ts, row + 2 * i + 1)};
        double scale = want[1];
        const size_t len = strlen(r->state[i]);
        if (len > 8 && strcmp(r->state[i] + len - 8, "/exp_avg") == 0) {
            char sq[256];
            snprintf(sq, sizeof sq, "%s_sq", r->state[i]);
            const int j = state_index(r, sq);
            CHECK_MSG(j >= 0, "%s: %s is tracked without %s", r->name, r->state[i], sq);
            if (j >= 0)
                scale = f64_at(ts, row + 2 * j); /* sum of exp_avg_sq */
        }
        const double b = bound_of(FLOOR_SUM, f32_at(ns, (size_t)n * r->nstate + i), f32_at(vs, i), strict);
        snprintf(where, sizeof where, "step %d %s", n, r->state[i]);
        if (t.is_int) { /* num_batches_tracked: exact */
            CHECK_MSG(sum == want[0] && sumsq == want[1], "%s step %d: %s = %.17g, reference %.17g", r->name, n,
                      r->state[i], sum, want[0]);
        } else {
            const double e = sums_err(sum, sumsq, want, scale, t.numel);
            worst *w = is_noise(r, r->state[i]) ? &r->wnoise : strict ? &r->wstrict : &r->wsum;
            CHECK_MSG(within(w, e, b, where),
                      "%s step %d: %s sum %.9g sumsq %.9g, reference %.9g %.9g (err %.3g, bound %.3g)", r->name, n,
                      r->state[i], sum, sumsq, want[0], want[1], e, b);
        }
        relate_ckpt_tensor_free(&t);
    }
    relate_ckpt_close(c);
}

/* Every tensor after the last step, element by element (sampled above 512 elements, as the golden). */
static void compare_final(run *r)
{
    const relate_st_tensor *nf = need(r, "noise.final", "F32"), *vf = need(r, "event.final", "F32");
    relate_ckpt *c = write_and_open(r);
    if (!c || !nf || !vf) {
        relate_ckpt_close(c);
        return;
    }
    for (int i = 0; i < r->nstate; i++) {
        relate_ckpt_tensor t;
        relate_error err = {0};
        if (relate_ckpt_get_tensor(c, r->state[i], &t, &err) != RELATE_OK) {
            CHECK_MSG(0, "%s: relate's checkpoint lacks %s: %s", r->name, r->state[i], err.msg);
            continue;
        }
        char name[256];
        snprintf(name, sizeof name, "final.%s", r->state[i]);
        const relate_st_tensor *w = find(r, name);
        double e = INFINITY;
        if (w && t.is_int) {
            e = strcmp(w->dtype, "I64") == 0 && w->numel == t.numel &&
                        memcmp(w->data, t.i64, (size_t)t.numel * sizeof(int64_t)) == 0
                    ? 0
                    : INFINITY;
        } else {
            const bool sampled = !w;
            if (sampled) {
                snprintf(name, sizeof name, "finalsample.%s", r->state[i]);
                w = need(r, name, "F32");
            }
            /* the golden's values copied out (not aligned in the file), and relate's at the same flat indices */
            float *want = w && !t.is_int && strcmp(w->dtype, "F32") == 0 && (sampled || w->numel == t.numel)
                              ? malloc((size_t)w->numel * 2 * sizeof *want)
                              : NULL;
            if (want) {
                float *got = want + w->numel;
                memcpy(want, w->data, (size_t)w->numel * sizeof *want);
                for (int64_t j = 0; j < w->numel; j++)
                    got[j] = t.f32[sampled ? (j * t.numel) / w->numel : j];
                e = relate_test_rel_err(got, want, (size_t)w->numel);
                free(want);
            }
        }
        const double b = bound_of(FLOOR_FINAL, f32_at(nf, i), f32_at(vf, i), false);
        CHECK_MSG(within(is_noise(r, r->state[i]) ? &r->wnoise : &r->wfinal, e, b, r->state[i]),
                  "%s: final %s rel err %.3g (bound %.3g)", r->name, r->state[i], e, b);
        relate_ckpt_tensor_free(&t);
    }
    relate_ckpt_close(c);
}

/* ------------------------------------------------------------------ stage 2: src/train/lineval.c's step */

static relate_status stage2_step(run *r, relate_graph *g, const relate_batch *b, double *loss, double *acc,
                                 relate_error *err)
{
    relate_classifier_model *cm = &r->cm;
    relate_adam *opt = r->finetune ? &cm->adam_finetune : &cm->adam_lineval;
    relate_graph_reset(g);
    relate_params_zero_grad(&cm->params);
    if (r->finetune)
        relate_params_zero_grad(&cm->backbone->params);
    relate_tensor *x = relate_tensor_wrap(g, 4, (int64_t[]){b->size, 3, b->side, b->side}, b->images);
    relate_tensor *f = relate_backbone_forward(g, cm->backbone, x, r->finetune);
    relate_tensor *logits = relate_linear_layer_forward(g, &cm->linear, f);
    relate_tensor *l = relate_cross_entropy(g, logits, b->labels, NULL);
    if (!l || relate_graph_backward(g, l) != RELATE_OK) {
        *err = *relate_graph_error(g);
        return err->code;
    }
    relate_adam_step(opt);
    *loss = l->data[0];
    *acc = 100.0 * (double)relate_count_correct(logits->data, b->labels, b->size, cm->linear.out) / b->size;
    return RELATE_OK;
}

/* ------------------------------------------------------------------ one run */

/* deepcluster's epoch_begin without the clustering: linear2 re-initialised (checked against the golden's sums),
 * then the epoch's pseudo-labels. */
static void deepcluster_epoch(run *r, int ei, int epoch)
{
    relate_error err = {0};
    const int k = relate_deepcluster_k(r->m);
    relate_deepcluster_reset_last_layer(r->m, epoch);
    const relate_param *w2 = relate_params_find(relate_deepcluster_head(r->m), "linear2.weight");
    double s = 0, q = 0;
    for (int64_t i = 0; i < w2->numel; i++) {
        s += w2->data[i];
        q += (double)w2->data[i] * w2->data[i];
    }
    const relate_st_tensor *ri = need(r, "dcreinit", "F64");
    if (ri) {
        const double want[2] = {f64_at(ri, 2 * ei), f64_at(ri, 2 * ei + 1)};
        CHECK_MSG(fabs(s - want[0]) <= 1e-12 * sqrt(q * (double)w2->numel) && fabs(q - want[1]) <= 1e-12 * want[1],
                  "%s epoch %d: linear2 re-initialised to sum %.17g sumsq %.17g, reference %.17g %.17g", r->name,
                  epoch, s, q, want[0], want[1]);
    }
    int32_t pseudo[N_DC];
    for (int j = 0; j < N_DC; j++)
        pseudo[j] = (7 * j + 3 * epoch) % (k - 3);
    CHECK_MSG(relate_deepcluster_set_clusters(r->m, pseudo, N_DC, &err) == RELATE_OK, "%s", err.msg);
}

/* deepinfomax: the generator's transcription of relate's prior samples (Philox, keyed by seed, epoch and batch
 * number) against relate_deepinfomax_prior_samples, for every step of the epoch starting at global step `step`. */
static void check_prior_samples(run *r, int epoch, int step)
{
    const relate_st_tensor *ps = need(r, "priorsums", "F64");
    const int64_t count = (int64_t)r->B * r->m->backbone.feature_size;
    float *u = malloc((size_t)count * sizeof *u);
    for (int j = 0; ps && u && j < r->steps_per_epoch && step + j < ps->shape[0]; j++) {
        relate_deepinfomax_prior_samples(u, (uint64_t)r->seed, epoch, j, count);
        double s = 0, q = 0; /* sum u_i and sum (i + 1) u_i: exact in double (u_i = k / 2^24), so compared exactly */
        for (int64_t i = 0; i < count; i++) {
            s += u[i];
            q += (double)(i + 1) * u[i];
        }
        const double want[2] = {f64_at(ps, 2 * (size_t)(step + j)), f64_at(ps, 2 * (size_t)(step + j) + 1)};
        CHECK_MSG(s == want[0] && q == want[1], "%s epoch %d batch %d: prior samples sums %.17g %.17g, the "
                  "generator's %.17g %.17g", r->name, epoch, j, s, q, want[0], want[1]);
    }
    free(u);
}

static void run_trajectory(const relate_safetensors *st, const char *name)
{
    run r;
    const int failed0 = relate_test_failed;
    if (!open_run(&r, st, name)) {
        CHECK_MSG(0, "%s: cannot set the run up", name);
        close_run(&r);
        return;
    }
    const int B = r.B, S = r.S, V = r.stage2 ? 1 : relate_method_views(r.m);
    CHECK_MSG(V == r.K, "%s: relate trains on %d views, the reference on %d", name, V, r.K);
    const int64_t nimg = (int64_t)V * B * 3 * S * S;
    float *images = malloc((size_t)nimg * sizeof *images);
    int32_t labels[B_MAX];
    int64_t indices[B_MAX];
    relate_graph *g = relate_graph_create();
    const bool dc = strcmp(r.method, "deepcluster") == 0;
    const relate_st_tensor *tl = need(&r, "loss", "F64");
    int step = 0;
    if (!images || !g || !tl)
        goto done;
    if (r.stage2)
        relate_params_set_frozen(&r.bb.params, !r.finetune);
    for (int ei = 0; ei < r.nepochs; ei++) {
        const int epoch = r.epochs[ei];
        relate_error err = {0};
        if (r.stage2) {
            if (r.finetune) { /* lineval.c: the reference's model is built with its default 200 epochs */
                const double base[2] = {1e-3, 1e-4};
                relate_groups_set_lr(r.cm.adam_finetune.groups, 2, base, relate_step_decay_factor(epoch, 200));
            }
        } else if (dc) {
            deepcluster_epoch(&r, ei, epoch);
        } else {
            relate_epoch_context ctx = {.epoch = epoch, .out = NULL, .batch_size = B};
            CHECK_MSG(relate_method_epoch_begin(r.m, &ctx, &err) == RELATE_OK, "%s: %s", name, err.msg);
        }
        if (strcmp(r.method, "deepinfomax") == 0)
            check_prior_samples(&r, epoch, step);
        for (int j = 0; j < r.steps_per_epoch && step < tl->numel; j++, step++) {
            fill_images(images, nimg, step, r.salt);
            for (int n = 0; n < B; n++) {
                labels[n] = (n * 7 + step) % r.C;
                indices[n] = dc ? (11 * n + 8 * step) % N_DC : (int64_t)step * B + n;
            }
            relate_batch b = {.number = j, .size = B, .views = V, .side = S, .images = images, .labels = labels,
                              .indices = indices};
            double loss = NAN, acc[3] = {0};
            int nacc = 0;
            relate_status stt;
            if (r.stage2) {
                stt = stage2_step(&r, g, &b, &loss, &acc[0], &err);
                nacc = 1;
            } else {
                relate_step_result res;
                stt = relate_method_step(r.m, g, &b, &res, &err);
                loss = res.loss;
                if (strcmp(r.method, "relationnet") == 0) {
                    acc[0] = res.score, acc[1] = res.acc_first, acc[2] = res.acc_second;
                    nacc = 3;
                } else if (strcmp(r.method, "simclr") == 0 || strcmp(r.method, "deepinfomax") == 0) {
                    CHECK(res.score == -res.loss); /* score = -loss (spec 1.5): no meter */
                } else {
                    acc[0] = res.score;
                    nacc = 1;
                }
            }
            CHECK_MSG(stt == RELATE_OK, "%s step %d: %s", name, step, err.msg);
            if (stt != RELATE_OK)
                goto done;
            compare_step(&r, step, loss, acc, nacc);
        }
    }
    CHECK_MSG(step == tl->numel, "%s: %d steps, reference %lld", name, step, (long long)tl->numel);
    compare_final(&r);
done:
    if (r.stage2)
        relate_params_set_frozen(&r.bb.params, false);
    printf("%-12s %2d steps%s\n", name, step, relate_test_failed > failed0 ? "  FAILED" : "");
    if (getenv("RELATE_TEST_VERBOSE")) {
        const worst *w[5] = {&r.wloss, &r.wstrict, &r.wsum, &r.wfinal, &r.wnoise};
        const char *what[5] = {"loss", "strict", "checksums", "final", "noise"};
        for (int i = 0; i < 5; i++)
            printf("    %-9s worst err %.2e (%s); worst err / bound %.3f (%s)\n", what[i], w[i]->err, w[i]->where,
                   w[i]->ratio, w[i]->ratio_where);
    }
    relate_graph_destroy(g);
    free(images);
    close_run(&r);
}

int main(int argc, char **argv)
{
    relate_safetensors st;
    relate_test_open_golden(&st, "trajectory.safetensors");
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/relate_trajectory_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "mkdtemp %s: %s\n", tmpdir, strerror(errno));
        return 1;
    }
    const char *runs = relate_safetensors_meta(&st, "runs");
    char *list = strdup(runs ? runs : "");
    const char *names[32];
    const int nruns = split_list(list, names, 32);
    CHECK_MSG(nruns == 8, "the golden has %d runs, expected 8 (6 stage-1 methods that train, lineval, finetune)",
              nruns);
    for (int i = 0; i < nruns; i++) {
        bool selected = argc < 2; /* test_trajectory [run ...] runs a subset */
        for (int a = 1; a < argc; a++)
            selected |= strcmp(argv[a], names[i]) == 0;
        if (selected)
            run_trajectory(&st, names[i]);
        char path[512];
        snprintf(path, sizeof path, "%s/%s.tar", tmpdir, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    free(list);
    relate_safetensors_close(&st);
    return relate_test_finish();
}
