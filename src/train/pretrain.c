/* pretrain.c: stage 1 (spec 1.3): build the method, refuse to overwrite another run's files,
 * resume if asked (at an epoch or at a step inside one), train epoch by epoch with the reference's
 * console line and log, save checkpoints at 25/50/75/100 % of the epochs, HEADER_last.tar every
 * --save_every epochs and, when stopped by a signal, at the step reached.
 * Not a method: the step itself is relate_method_step. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/readers.h"
#include "base/pyformat.h"
#include "relate/checkpoint.h"
#include "relate/dist.h"
#include "relate/knn.h"
#include "relate/loader.h"
#include "relate/train.h"
#include "train/run_files.h"
#include "train/stage_common.h"

relate_pretrain_options relate_pretrain_defaults(void)
{
    return (relate_pretrain_options){.method = relate_method_defaults(),
                                     .seed_text = "1",
                                     .dataset = "cifar10",
                                     .data_root = "./data",
                                     .id = "",
                                     .checkpoint = "",
                                     .out_root = "./checkpoint",
                                     .epoch_start = -1,
                                     .epochs = 200,
                                     .data_size = 128,
                                     .num_workers = 8,
                                     .save_every = 1,
                                     .out = stdout};
}

typedef struct epoch_stats {
    double loss_sum, score_sum, acc_first_sum, acc_second_sum;
    int64_t items, batches, images;
    int first_size;
    int64_t first_items;
} epoch_stats;

/* The reference's per-epoch console line of each method (spec 1.5). */
static void print_epoch(FILE *out, const relate_method *m, int epoch, double elapsed, const epoch_stats *s)
{
    char t[32], l[40], a[40], a1[40], a2[40];
    relate_format_hms(t, sizeof t, elapsed);
    double loss = s->items ? s->loss_sum / (double)s->items : 0.0;
    double score = s->items ? s->score_sum / (double)s->items : 0.0;
    relate_pyfloat(l, sizeof l, loss);
    relate_pyfloat(a, sizeof a, score);
    const char *name = m->cfg.method;
    if (strcmp(name, "relationnet") == 0) {
        double n = s->batches ? (double)s->batches : 1.0;
        fprintf(out, "Epoch [%d][%s] loss: %s; acc: %s%%; acc+: %s%%; acc-: %s%%; batch-size: %d; tot-pairs: %lld\n",
                epoch, t, l, a, relate_pyround(a1, sizeof a1, s->acc_first_sum / n, 2),
                relate_pyround(a2, sizeof a2, s->acc_second_sum / n, 2), s->first_size, (long long)s->first_items);
    } else if (strcmp(name, "simclr") == 0) {
        fprintf(out, "Epoch [%d][%s] loss: %s; batch-size: %d; tot-pairs: %lld\n", epoch, t, l, s->first_size,
                (long long)(2 * s->first_size) * (2 * s->first_size));
    } else if (strcmp(name, "rotationnet") == 0) {
        fprintf(out, "Epoch [%d][%s] loss: %s; acc.: %s\n", epoch, t, l, a);
    } else if (strcmp(name, "deepinfomax") == 0) {
        fprintf(out, "Epoch [%d][%s] loss: %s\n", epoch, t, l);
    } else {
        fprintf(out, "Epoch [%d][%s] loss: %s; acc: %s%%\n", epoch, t, l, a);
    }
    fflush(out);
}

/* The partial sums of an epoch stopped after `step` batches, under the keys below, so that the
 * resumed epoch prints and logs what the uninterrupted one would. */
static const char *const stat_float_keys[] = {"step_loss_sum", "step_score_sum", "step_acc_first_sum",
                                              "step_acc_second_sum"};
static const char *const stat_int_keys[] = {"step_items", "step_batches", "step_images", "step_first_size",
                                            "step_first_items"};

/* The checkpoint of a run at epoch `epoch` after `step` of its batches (0: the epoch has not
 * started; the reference's files are all of that kind). */
static relate_status build_checkpoint(relate_ckpt_writer **out, const relate_method *m, const char *args, int epoch,
                                      int64_t step, const epoch_stats *s, relate_error *err)
{
    relate_ckpt_writer *w = relate_ckpt_writer_create();
    if (!w)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory building the checkpoint");
    relate_status st = relate_method_save(m, w, err);
    /* relate's own extra keys (torch.load and the reference ignore them): where to resume, and
     * what produced the file, for clear errors when it is used with other flags. */
    if (st == RELATE_OK && relate_method_trains(m)) {
        st = relate_ckpt_put_int(w, "epoch", epoch);
        if (st == RELATE_OK)
            st = relate_ckpt_put_int(w, "step", step);
        if (step > 0) {
            const double f[] = {s->loss_sum, s->score_sum, s->acc_first_sum, s->acc_second_sum};
            const int64_t i[] = {s->items, s->batches, s->images, s->first_size, s->first_items};
            for (int k = 0; st == RELATE_OK && k < 4; k++)
                st = relate_ckpt_put_float(w, stat_float_keys[k], f[k]);
            for (int k = 0; st == RELATE_OK && k < 5; k++)
                st = relate_ckpt_put_int(w, stat_int_keys[k], i[k]);
        }
    }
    if (st == RELATE_OK)
        st = relate_ckpt_put_str(w, "method", m->cfg.method);
    if (st == RELATE_OK)
        st = relate_ckpt_put_str(w, "backbone_name", m->cfg.backbone);
    if (st == RELATE_OK)
        st = relate_ckpt_put_str(w, "args", args);
    if (st != RELATE_OK) {
        if (err->code == RELATE_OK)
            relate_error_set(err, RELATE_ERR_NOMEM, "out of memory building the checkpoint");
        relate_ckpt_writer_free(w);
        return err->code;
    }
    *out = w;
    return RELATE_OK;
}

static relate_status save_checkpoint(const relate_method *m, const char *args, const char *path, int epoch,
                                     relate_error *err)
{
    relate_ckpt_writer *w;
    if (build_checkpoint(&w, m, args, epoch, 0, NULL, err) != RELATE_OK)
        return err->code;
    relate_status st = relate_ckpt_write(w, path, err);
    relate_ckpt_writer_free(w);
    return st;
}

/* Where a resumed run continues: epoch, the batches of it already done (step) and their sums. */
typedef struct resume_point {
    int epoch; /* -1: the file records none */
    int64_t step;
    epoch_stats stats;
} resume_point;

/* The step inside the epoch and its partial sums; a file without "step" starts the epoch. */
static relate_status read_step(const relate_ckpt *c, const char *path, resume_point *rp, relate_error *err)
{
    rp->step = 0;
    if (!relate_ckpt_has(c, "step"))
        return RELATE_OK;
    relate_error e = {0};
    if (relate_ckpt_get_int(c, "step", &rp->step, &e) != RELATE_OK || rp->step < 0)
        return relate_error_set(err, RELATE_ERR_FORMAT, "%s: its 'step' entry is not a number of batches: corrupt",
                                path);
    if (rp->step == 0)
        return RELATE_OK;
    double f[4];
    int64_t i[5];
    for (int k = 0; k < 4; k++)
        if (relate_ckpt_get_float(c, stat_float_keys[k], &f[k], &e) != RELATE_OK)
            return relate_error_set(err, RELATE_ERR_FORMAT, "%s stops inside an epoch but lacks '%s': corrupt", path,
                                    stat_float_keys[k]);
    for (int k = 0; k < 5; k++)
        if (relate_ckpt_get_int(c, stat_int_keys[k], &i[k], &e) != RELATE_OK || i[k] < 0)
            return relate_error_set(err, RELATE_ERR_FORMAT, "%s stops inside an epoch but its '%s' is missing or "
                                                            "negative: corrupt",
                                    path, stat_int_keys[k]);
    if (i[1] != rp->step || i[3] > INT32_MAX)
        return relate_error_set(err, RELATE_ERR_FORMAT, "%s: step %lld but %lld batches summed: corrupt", path,
                                (long long)rp->step, (long long)i[1]);
    rp->stats = (epoch_stats){.loss_sum = f[0], .score_sum = f[1], .acc_first_sum = f[2], .acc_second_sum = f[3],
                              .items = i[0], .batches = i[1], .images = i[2], .first_size = (int)i[3],
                              .first_items = i[4]};
    return RELATE_OK;
}

/* Loads the method's state from path and where it stopped. A malformed epoch is an error unless
 * the caller has its own (explicit_start). */
static relate_status resume(relate_method *m, const char *path, bool explicit_start, resume_point *rp, FILE *out,
                            relate_error *err)
{
    memset(rp, 0, sizeof *rp);
    rp->epoch = -1;
    fprintf(out, "Loading checkpoint: %s\n", path);
    relate_ckpt *c;
    if (relate_ckpt_open(&c, path, err) != RELATE_OK)
        return err->code;
    const char *method = NULL;
    relate_error ignore = {0};
    if (relate_ckpt_get_str(c, "method", &method, &ignore) == RELATE_OK && strcmp(method, m->cfg.method) != 0) {
        relate_error_set(err, RELATE_ERR_ARG, "%s was written by method %s, but --method=%s: pass --method=%s or "
                                              "another checkpoint",
                         path, method, m->cfg.method, method);
        relate_ckpt_close(c);
        return err->code;
    }
    const char *bbname = NULL;
    if (relate_ckpt_get_str(c, "backbone_name", &bbname, &ignore) == RELATE_OK &&
        strcmp(bbname, m->cfg.backbone) != 0) {
        relate_error_set(err, RELATE_ERR_ARG, "%s holds a %s backbone, but --backbone=%s", path, bbname,
                         m->cfg.backbone);
        relate_ckpt_close(c);
        return err->code;
    }
    relate_error e = {0};
    if (relate_method_load(m, c, &e) != RELATE_OK) {
        relate_error_set(err, e.code, "cannot resume from %s: %s", path, e.msg);
        relate_ckpt_close(c);
        return err->code;
    }
    /* The epoch to continue from: relate writes it; the reference's own files have none. A value
     * that is there but not a count of epochs is refused rather than read as 0 or truncated. */
    int64_t ep = -1;
    if (relate_ckpt_has(c, "epoch")) {
        relate_error ee = {0};
        bool valid = relate_ckpt_get_int(c, "epoch", &ep, &ee) == RELATE_OK && ep >= 0 && ep <= INT32_MAX;
        if (!valid && !explicit_start) {
            if (ee.code == RELATE_OK)
                relate_error_set(err, RELATE_ERR_FORMAT,
                                 "%s: its 'epoch' entry is %lld, not a number of finished epochs: corrupt (pass "
                                 "--epoch_start to resume anyway)",
                                 path, (long long)ep);
            else
                relate_error_set(err, RELATE_ERR_FORMAT, "%s (pass --epoch_start to resume anyway)", ee.msg);
            relate_ckpt_close(c);
            return err->code;
        }
        rp->epoch = valid ? (int)ep : -1;
    } else if (!explicit_start) {
        fprintf(out, "[INFO] %s records no epoch (a file of the reference?): starting at epoch 0\n", path);
    }
    relate_status st = explicit_start ? RELATE_OK : read_step(c, path, rp, err);
    relate_ckpt_close(c);
    if (st != RELATE_OK)
        return st;
    fprintf(out, "Loading checkpoint: Done!\n");
    return RELATE_OK;
}

/* deepcluster clusters the whole split at the start of each epoch; its pseudo-labels are not in
 * the checkpoint, so it stops and resumes at epoch boundaries only. */
static bool resumes_mid_epoch(const relate_method *m) { return strcmp(m->cfg.method, "deepcluster") != 0; }

/* True when path is a file of run `header` in `folder` (a checkpoint relate wrote there before
 * runs recorded their arguments). */
static bool is_own_file(const char *path, const char *folder, const char *header)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const size_t dl = slash ? (size_t)(slash - path) : 0;
    const size_t h = strlen(header);
    return slash && strlen(folder) == dl && strncmp(path, folder, dl) == 0 && strncmp(base, header, h) == 0 &&
           base[h] == '_';
}

/* Refuses to start when the folder holds files of another run named `header`: a fresh run may
 * write no file that exists; a resumed run may rewrite only the files of a run with the same
 * arguments, which it computes again byte for byte. */
static relate_status check_not_overwriting(const char *folder, const char *header, const char *args,
                                           const char *resume_from, bool resume_auto, relate_error *err)
{
    char first[512];
    const int n = relate_run_files_find(folder, header, first, sizeof first);
    if (n == 0)
        return RELATE_OK;
    char more[48] = "";
    if (n > 1)
        snprintf(more, sizeof more, " and %d more", n - 1);
    /* --resume=auto without a last.tar: a run that died before its first save (its log and
     * args.json are there) starts again, if its arguments are this run's. */
    const bool resuming = (resume_from && *resume_from) || resume_auto;
    if (!resuming)
        return relate_error_set(err, RELATE_ERR_ARG,
                                "%s already holds a run named %s (%s%s): relate does not overwrite another run's "
                                "files. Resume it with --resume=auto, give this run its own --id, or move those "
                                "files away",
                                folder, header, first, more);
    char *theirs = relate_run_args_read(folder, header);
    bool same = theirs ? strcmp(theirs, args) == 0
                       : resume_from && *resume_from && is_own_file(resume_from, folder, header);
    if (!same) {
        if (theirs)
            relate_error_set(err, RELATE_ERR_ARG,
                             "resuming into %s would overwrite run %s, whose arguments differ (%s/%s_args.json has "
                             "%s; this run's are %s): give this run its own --id, or move those files away",
                             folder, header, folder, header, theirs, args);
        else
            relate_error_set(err, RELATE_ERR_ARG,
                             "%s already holds a run named %s (%s%s) that %s does not belong to: relate does not "
                             "overwrite another run's files. Give this run its own --id, or move those files away",
                             folder, header, first, more, *resume_from ? resume_from : "this run");
    }
    free(theirs);
    return same ? RELATE_OK : err->code;
}

/* True on every process when any asked to stop (a signal reaches each process of mpirun's job at
 * its own time; they must all stop after the same step). */
static bool stop_agreed(bool mine)
{
    if (relate_dist_size() == 1)
        return mine;
    double any = mine ? 1.0 : 0.0;
    relate_error e = {0};
    return relate_dist_allreduce_sum_f64(&any, 1, &e) != RELATE_OK || any > 0.0;
}

relate_status relate_pretrain(const relate_pretrain_options *o, relate_error *err)
{
    /* Across processes, rank 0 alone writes files (the others compute the same state). */
    const bool writer = relate_dist_rank() == 0;
    FILE *out = o->out ? o->out : stdout;
    relate_status st = RELATE_OK;
    relate_dataset ds;
    relate_method *m = NULL;
    relate_loader *ld = NULL;
    relate_graph *g = NULL;
    relate_epoch_log log = {0};
    bool ds_open = false;
    char *args = NULL;

    fprintf(out, "[INFO] Setting SEED: %s\n", o->seed_text);
    if (relate_dataset_open_with(&ds, o->dataset, o->data_root, &o->data, err) != RELATE_OK)
        return err->code;
    ds_open = true;
    relate_dataset_report(&ds.info, out, stderr);
    relate_method_config mc = o->method;
    mc.epochs = o->epochs;
    mc.num_classes = ds.info.num_classes;
    if (ds.info.num_classes == 0) { /* an unlabelled folder */
        const bool needs = mc.method && (strcmp(mc.method, "standard") == 0 || strcmp(mc.method, "deepcluster") == 0);
        if (needs) {
            st = relate_error_set(err, RELATE_ERR_ARG, "%s needs labelled images (%s), and %s has no class sub-folders",
                                  mc.method,
                                  strcmp(mc.method, "standard") == 0 ? "it is the supervised baseline"
                                                                     : "it makes 10 clusters per class",
                                  ds.info.folder);
            goto done;
        }
        mc.num_classes = 1; /* the self-supervised methods never read it */
    }
    if (o->knn_every > 0 && (st = relate_dataset_need_labels(&ds, true, true, "--knn_every", err)) != RELATE_OK)
        goto done;
    if ((st = relate_method_create(&m, &mc, err)) != RELATE_OK)
        goto done;
    fprintf(out, "[INFO] %s loaded in memory.\n", m->cfg.backbone);
    fprintf(out, "[INFO] Feature size: %d\n", m->backbone.feature_size);
    fprintf(out, "[INFO] Feature extractor TOT trainable params: %lld\n",
            (long long)relate_params_count_trainable(&m->backbone.params));
    fprintf(out, "[INFO] Found 0 GPU(s) available.\n[INFO] Device type: cpu (%d threads)\n", relate_get_threads());
    if (strcmp(m->cfg.method, "relationnet") == 0) {
        fprintf(out, "[INFO][RelationNet] TOT augmentations (K): %d\n", m->cfg.K);
        fprintf(out, "[INFO][RelationNet] Aggregation function: %s\n", m->cfg.aggregation);
    }

    char dsdir[256], header[512], folder[1024], path[2048], last_path[2048];
    relate_stage_dataset_dir(dsdir, sizeof dsdir, o->dataset);
    relate_stage_header(header, sizeof header, m->cfg.method, o->id, o->dataset, m->cfg.backbone, o->seed_text);
    snprintf(folder, sizeof folder, "%s/%s/%s", o->out_root, m->cfg.method, dsdir);
    snprintf(last_path, sizeof last_path, "%s/%s_last.tar", folder, header);
    const relate_split_kind sk = relate_method_split(m, &ds.info);
    /* Splits this run never reads are freed (CIFAR-10's test images, 30 MB; STL-10's, 221 MB):
     * the test split serves the supervised baseline's final test and --knn_every only. */
    const bool test_used = relate_method_classifier(m) || o->knn_every > 0;
    for (int k = 0; k < RELATE_SPLIT_COUNT; k++)
        if (k != (int)sk && !(k == RELATE_SPLIT_TEST && test_used) && !(k == RELATE_SPLIT_TRAIN && o->knn_every > 0))
            relate_dataset_drop_split(&ds, (relate_split_kind)k);
    const relate_split *split = relate_dataset_split(&ds, sk);
    const bool have_split = split && split->present && split->count > 0;
    if (!(args = relate_run_args_json(o, &m->cfg, have_split ? split : NULL))) {
        st = relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
        goto done;
    }

    /* Where to resume from: --checkpoint, or with --resume=auto the run's own last.tar. */
    const char *from = o->checkpoint ? o->checkpoint : "";
    if (o->resume_auto) {
        if (*from) {
            st = relate_error_set(err, RELATE_ERR_ARG, "--resume=auto and --checkpoint=%s both say where to resume "
                                                       "from: pass one of them",
                                  from);
            goto done;
        }
        if (relate_file_size(last_path) >= 0) {
            from = last_path;
            fprintf(out, "[INFO] --resume=auto: resuming from %s\n", last_path);
        } else {
            fprintf(out, "[INFO] --resume=auto: no %s yet: starting the run\n", last_path);
        }
    }
    if (writer && (st = relate_mkdirs(folder, err)) != RELATE_OK)
        goto done;
    if ((st = check_not_overwriting(folder, header, args, from, o->resume_auto, err)) != RELATE_OK)
        goto done;

    if (!relate_method_trains(m)) { /* randomweights: the initialised backbone is the result */
        snprintf(path, sizeof path, "%s/%s.tar", folder, header);
        if (writer && (st = relate_run_args_write(folder, header, args, o->command_line, from, err)) == RELATE_OK &&
            (st = save_checkpoint(m, args, path, 0, err)) == RELATE_OK)
            fprintf(out, "Saving in: %s\n", path);
        goto done;
    }

    int epoch_start = o->epoch_start > 0 ? o->epoch_start : 0;
    resume_point rp = {.epoch = -1};
    if (*from) {
        if ((st = resume(m, from, o->epoch_start >= 0, &rp, out, err)) != RELATE_OK)
            goto done;
        if (o->epoch_start < 0 && rp.epoch >= 0)
            epoch_start = rp.epoch;
        if (rp.step > 0 && !resumes_mid_epoch(m)) {
            st = relate_error_set(err, RELATE_ERR_FORMAT, "%s stops inside epoch %d, but %s resumes only at the "
                                                          "start of an epoch",
                                  from, epoch_start, m->cfg.method);
            goto done;
        }
    }
    if (epoch_start >= o->epochs) {
        fprintf(out, "[INFO] Nothing to do: epoch_start %d >= epochs %d.\n", epoch_start, o->epochs);
        goto done;
    }

    if (!have_split) {
        st = relate_error_set(err, RELATE_ERR_ARG, "dataset %s has no split for %s to train on", o->dataset,
                              m->cfg.method);
        goto done;
    }
    relate_loader_config lc = relate_loader_defaults(split, &ds.info, relate_method_pipeline(m, &ds.info));
    lc.views = relate_method_views(m);
    lc.batch_size = o->data_size;
    lc.shuffle = true;
    lc.drop_last = relate_method_drop_last(m);
    lc.seed = m->cfg.seed;
    lc.threads = o->num_workers;
    lc.limit_batches = o->limit_train_batches;
    lc.shard_index = relate_dist_rank();
    lc.shard_count = relate_dist_size();
    if ((st = relate_stage_check_shares(split, o->data_size, lc.drop_last, lc.shard_count, err)) != RELATE_OK)
        goto done;
    relate_method_loader_setup(m, &lc);
    if ((st = relate_loader_create(&ld, &lc, err)) != RELATE_OK)
        goto done;
    if (!(g = relate_graph_create())) {
        st = relate_error_set(err, RELATE_ERR_NOMEM, "out of memory creating the graph");
        goto done;
    }
    int64_t nbatches = relate_loader_batches_per_epoch(ld);
    if (rp.step > nbatches) {
        st = relate_error_set(err, RELATE_ERR_ARG, "%s stopped after step %lld of epoch %d, but this run's epochs "
                                                   "have %lld steps: resume with the --data_size and "
                                                   "--limit_train_batches of that run",
                              from, (long long)rp.step, epoch_start, (long long)nbatches);
        goto done;
    }
    /* The run's first files, once everything that can refuse it has passed: a run that fails
     * before training leaves none. Every process has checked the folder before rank 0 writes. */
    if ((st = relate_dist_barrier(err)) != RELATE_OK)
        goto done;
    if (writer && (st = relate_run_args_write(folder, header, args, o->command_line, from, err)) != RELATE_OK)
        goto done;
    snprintf(path, sizeof path, "%s/log_%s.csv", folder, header);
    if (writer && (st = relate_epoch_log_open(&log, path, o->knn_every > 0 ? "epoch,loss,score,knn_top1" : "epoch,loss,score",
                                    epoch_start, err)) != RELATE_OK)
        goto done;
    if (rp.step > 0)
        fprintf(out, "[INFO] Resuming epoch %d after step %lld of %lld\n", epoch_start, (long long)rp.step,
                (long long)nbatches);
    if (o->limit_train_batches > 0) {
        const int64_t full = lc.drop_last ? split->count / o->data_size
                                          : (split->count + o->data_size - 1) / o->data_size;
        if (o->limit_train_batches < full)
            fprintf(out, "[INFO] --limit_train_batches=%lld: each epoch runs %lld of its %lld batches\n",
                    (long long)o->limit_train_batches, (long long)nbatches, (long long)full);
    }

    /* RELATE_STOP_AFTER_STEPS=N stops the run after N steps of this process exactly as Ctrl-C
     * would: how the tests kill a run at a chosen step. */
    const char *stop_env = getenv("RELATE_STOP_AFTER_STEPS");
    const long long stop_after = stop_env ? atoll(stop_env) : 0;
    long long steps_here = 0;
    const double t0 = relate_now();
    for (int epoch = epoch_start; epoch < o->epochs; epoch++) {
        const bool mid = epoch == epoch_start && rp.step > 0;
        relate_epoch_context ec = {.epoch = epoch, .out = out, .split = split, .info = &ds.info,
                                   .batch_size = o->data_size, .num_workers = o->num_workers};
        if ((st = relate_method_epoch_begin(m, &ec, err)) != RELATE_OK)
            goto done;
        relate_loader_start_epoch_at(ld, epoch, mid ? rp.step : 0);
        epoch_stats s = mid ? rp.stats : (epoch_stats){0};
        relate_progress bar;
        char label[48];
        snprintf(label, sizeof label, "Epoch [%d/%d]", epoch, o->epochs);
        relate_progress_begin(&bar, o->progress, relate_progress_mode_for(o->progress, o->log_every), o->log_every,
                              label, nbatches, mid ? rp.step : 0, (int64_t)(o->epochs - epoch - 1) * nbatches);
        int64_t images_here = 0; /* images (not views) since the epoch (re)started, for img/s */
        relate_batch b;
        while (relate_loader_next(ld, &b) == 1) {
            relate_step_result r;
            relate_error e = {0};
            if (relate_method_step(m, g, &b, &r, &e) != RELATE_OK) {
                relate_progress_clear(&bar);
                if (e.code == RELATE_ERR_NUMERIC)
                    st = relate_error_set(err, e.code,
                                          "training diverged at epoch %d, step %lld: %s. Nothing was saved for this "
                                          "epoch; try another --seed or a smaller batch, or resume from the last "
                                          "checkpoint (%s)",
                                          epoch, (long long)b.number, e.msg, last_path);
                else
                    st = relate_error_set(err, e.code, "epoch %d, step %lld: %s", epoch, (long long)b.number, e.msg);
                goto done;
            }
            if (s.batches == 0) {
                s.first_size = b.global_size; /* across processes too: the whole batch */
                s.first_items = r.items;
            }
            s.loss_sum += r.loss * (double)r.items;
            s.score_sum += r.score * (double)r.items;
            s.acc_first_sum += r.acc_first;
            s.acc_second_sum += r.acc_second;
            s.items += r.items;
            s.batches++;
            s.images += (int64_t)b.global_size * b.views;
            char extra[64];
            snprintf(extra, sizeof extra, "loss %.4f", s.loss_sum / (double)s.items);
            images_here += b.global_size;
            relate_progress_update(&bar, s.batches, images_here, extra);
            if (stop_after > 0 && ++steps_here == stop_after)
                relate_request_stop();
            if (stop_agreed(relate_stop_requested())) {
                relate_progress_clear(&bar);
                if (!resumes_mid_epoch(m)) {
                    st = relate_error_set(err, RELATE_ERR_INTERRUPTED,
                                          "interrupted during epoch %d after step %lld; %s resumes at epoch starts "
                                          "only: nothing of this epoch was saved (%s holds the last finished save)",
                                          epoch, (long long)b.number, m->cfg.method, last_path);
                    goto done;
                }
                relate_ckpt_writer *w;
                relate_error we = {0};
                if (writer && build_checkpoint(&w, m, args, epoch, s.batches, &s, &we) == RELATE_OK) {
                    relate_ckpt_write(w, last_path, &we);
                    relate_ckpt_writer_free(w);
                }
                /* The others wait for the save: their non-zero exit ends mpirun's job. */
                relate_error be = {0};
                relate_dist_barrier(&be);
                if (we.code != RELATE_OK)
                    st = relate_error_set(err, RELATE_ERR_INTERRUPTED,
                                          "interrupted during epoch %d after step %lld, and saving that step failed: "
                                          "%s",
                                          epoch, (long long)b.number, we.msg);
                else
                    st = relate_error_set(err, RELATE_ERR_INTERRUPTED,
                                          "interrupted during epoch %d after step %lld of %lld: saved in %s; the same "
                                          "command with --resume=auto continues from there, bit for bit",
                                          epoch, (long long)s.batches, (long long)nbatches, last_path);
                goto done;
            }
        }
        relate_progress_clear(&bar);
        print_epoch(out, m, epoch, relate_now() - t0, &s);
        double loss = s.items ? s.loss_sum / (double)s.items : 0.0;
        double score = s.items ? s.score_sum / (double)s.items : 0.0;
        char knn_col[48] = "";
        if (o->knn_every > 0) {
            strcpy(knn_col, ",");
            if ((epoch + 1) % o->knn_every == 0 || epoch + 1 == o->epochs) {
                /* Eval-mode features only: the weights, running statistics and every random
                 * stream are untouched, so the run computes what it would without it. */
                double top1, top5;
                const relate_knn_options ko = relate_knn_defaults();
                if ((st = relate_knn_backbone(&m->backbone, &ds, o->data_size, &ko, &top1, &top5, err)) != RELATE_OK)
                    goto done;
                fprintf(out, "[INFO] kNN (k=%d, T=%g) after epoch %d: top-1 %.2f%%; top-5 %.2f%%\n", ko.k,
                        ko.temperature, epoch, top1, top5);
                snprintf(knn_col, sizeof knn_col, ",%.2f", top1);
            }
        }
        if (writer && (st = relate_epoch_log_append_extra(&log, epoch, loss, score, knn_col, err)) != RELATE_OK)
            goto done;
        const bool quarter = relate_is_save_epoch(epoch, o->epochs);
        const bool periodic = o->save_every > 0 && ((epoch + 1) % o->save_every == 0 || epoch + 1 == o->epochs);
        if (writer && (quarter || periodic)) {
            relate_ckpt_writer *w;
            if ((st = build_checkpoint(&w, m, args, epoch + 1, 0, NULL, err)) != RELATE_OK)
                goto done;
            if (quarter) {
                snprintf(path, sizeof path, "%s/%s_epoch_%d.tar", folder, header, epoch + 1);
                st = relate_ckpt_write(w, path, err);
                if (st == RELATE_OK)
                    fprintf(out, "[INFO] Saving in: %s\n", path);
            }
            if (st == RELATE_OK)
                st = relate_ckpt_write(w, last_path, err);
            relate_ckpt_writer_free(w);
            if (st == RELATE_OK) /* on stderr: stdout keeps the reference's lines */
                fprintf(stderr, "[relate] epoch %d saved in %s\n", epoch + 1, last_path);
            if (st != RELATE_OK)
                goto done;
        }
    }
    relate_linear_layer *cls = relate_method_classifier(m);
    if (cls) { /* standard: the supervised upper bound reports its own test accuracy (spec 3.6) */
        const relate_split *test = relate_dataset_split(&ds, RELATE_SPLIT_TEST);
        double loss, acc;
        if (test && test->present) {
            if ((st = relate_evaluate(&m->backbone, cls, test, &ds.info, o->data_size, &loss, &acc, err)) != RELATE_OK)
                goto done;
            char a[40], b2[40];
            fprintf(out, "Test loss: %s\nTest accuracy: %s%%\n", relate_pyfloat(a, sizeof a, loss),
                    relate_pyfloat(b2, sizeof b2, acc));
        }
    }
done:
    free(args);
    relate_epoch_log_close(&log);
    relate_graph_destroy(g);
    relate_loader_destroy(ld);
    relate_method_free(m);
    if (ds_open)
        relate_dataset_close(&ds);
    return st;
}
