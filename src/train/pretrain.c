/* pretrain.c: stage 1 (spec 1.3): build the method, resume if asked, train epoch by epoch with
 * the reference's console line and log, save checkpoints at 25/50/75/100 % of the epochs.
 * Not a method: the step itself is relate_method_step. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/pyformat.h"
#include "relate/checkpoint.h"
#include "relate/loader.h"
#include "relate/train.h"
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

static relate_status save_checkpoint(const relate_method *m, const char *path, int epochs_done, relate_error *err)
{
    relate_ckpt_writer *w = relate_ckpt_writer_create();
    if (!w)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory building the checkpoint");
    relate_status st = relate_method_save(m, w, err);
    /* relate's own extra keys (torch.load and the reference ignore them): where to resume, and
     * what produced the file, for clear errors when it is used with other flags. */
    if (st == RELATE_OK && relate_method_trains(m))
        st = relate_ckpt_put_int(w, "epoch", epochs_done);
    if (st == RELATE_OK)
        st = relate_ckpt_put_str(w, "method", m->cfg.method);
    if (st == RELATE_OK)
        st = relate_ckpt_put_str(w, "backbone_name", m->cfg.backbone);
    if (st != RELATE_OK && err->code == RELATE_OK)
        relate_error_set(err, RELATE_ERR_NOMEM, "out of memory building the checkpoint");
    if (st == RELATE_OK)
        st = relate_ckpt_write(w, path, err);
    relate_ckpt_writer_free(w);
    return st;
}

/* Loads a stage-1 checkpoint for resuming; returns the epoch to start from (or -1 if unknown). */
/* Loads the method's state from path. *saved_epoch: the checkpoint's epoch, or -1 when it records
 * none; a malformed one is an error unless the caller has its own (explicit_start). */
static relate_status resume(relate_method *m, const char *path, bool explicit_start, int *saved_epoch, FILE *out,
                            relate_error *err)
{
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
    *saved_epoch = -1;
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
        *saved_epoch = valid ? (int)ep : -1;
    } else if (!explicit_start) {
        fprintf(out, "[INFO] %s records no epoch (a file of the reference?): starting at epoch 0\n", path);
    }
    relate_ckpt_close(c);
    fprintf(out, "Loading checkpoint: Done!\n");
    return RELATE_OK;
}

relate_status relate_pretrain(const relate_pretrain_options *o, relate_error *err)
{
    FILE *out = o->out ? o->out : stdout;
    relate_status st = RELATE_OK;
    relate_dataset ds;
    relate_method *m = NULL;
    relate_loader *ld = NULL;
    relate_graph *g = NULL;
    relate_epoch_log log = {0};
    bool ds_open = false;

    fprintf(out, "[INFO] Setting SEED: %s\n", o->seed_text);
    if (relate_dataset_open(&ds, o->dataset, o->data_root, err) != RELATE_OK)
        return err->code;
    ds_open = true;
    if (*ds.info.note)
        fprintf(out, "[INFO] %s\n", ds.info.note);
    relate_method_config mc = o->method;
    mc.epochs = o->epochs;
    mc.num_classes = ds.info.num_classes;
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

    char dsdir[256], header[512], folder[1024], path[2048];
    relate_stage_dataset_dir(dsdir, sizeof dsdir, o->dataset);
    relate_stage_header(header, sizeof header, m->cfg.method, o->id, o->dataset, m->cfg.backbone, o->seed_text);
    snprintf(folder, sizeof folder, "%s/%s/%s", o->out_root, m->cfg.method, dsdir);
    if ((st = relate_mkdirs(folder, err)) != RELATE_OK)
        goto done;

    if (!relate_method_trains(m)) { /* randomweights: the initialised backbone is the result */
        snprintf(path, sizeof path, "%s/%s.tar", folder, header);
        if ((st = save_checkpoint(m, path, 0, err)) == RELATE_OK)
            fprintf(out, "Saving in: %s\n", path);
        goto done;
    }

    int epoch_start = o->epoch_start > 0 ? o->epoch_start : 0;
    if (o->checkpoint && *o->checkpoint) {
        int saved = -1;
        if ((st = resume(m, o->checkpoint, o->epoch_start >= 0, &saved, out, err)) != RELATE_OK)
            goto done;
        if (o->epoch_start < 0 && saved >= 0)
            epoch_start = saved;
    }
    if (epoch_start >= o->epochs) {
        fprintf(out, "[INFO] Nothing to do: epoch_start %d >= epochs %d.\n", epoch_start, o->epochs);
        goto done;
    }

    const relate_split_kind sk = relate_method_split(m, &ds.info);
    const relate_split *split = relate_dataset_split(&ds, sk);
    if (!split || !split->present || split->count == 0) {
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
    relate_method_loader_setup(m, &lc);
    if ((st = relate_loader_create(&ld, &lc, err)) != RELATE_OK)
        goto done;
    if (!(g = relate_graph_create())) {
        st = relate_error_set(err, RELATE_ERR_NOMEM, "out of memory creating the graph");
        goto done;
    }
    snprintf(path, sizeof path, "%s/log_%s.csv", folder, header);
    if ((st = relate_epoch_log_open(&log, path, epoch_start, err)) != RELATE_OK)
        goto done;

    const double t0 = relate_now();
    int64_t nbatches = relate_loader_batches_per_epoch(ld);
    for (int epoch = epoch_start; epoch < o->epochs; epoch++) {
        relate_epoch_context ec = {.epoch = epoch, .out = out, .split = split, .info = &ds.info,
                                   .batch_size = o->data_size, .num_workers = o->num_workers};
        if ((st = relate_method_epoch_begin(m, &ec, err)) != RELATE_OK)
            goto done;
        relate_loader_start_epoch(ld, epoch);
        epoch_stats s = {0};
        relate_progress bar;
        char label[32];
        snprintf(label, sizeof label, "Epoch [%d]", epoch);
        relate_progress_begin(&bar, out, o->progress, label, nbatches);
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
                                          "checkpoint",
                                          epoch, (long long)b.number, e.msg);
                else
                    st = relate_error_set(err, e.code, "epoch %d, step %lld: %s", epoch, (long long)b.number, e.msg);
                goto done;
            }
            if (s.batches == 0) {
                s.first_size = b.size;
                s.first_items = r.items;
            }
            s.loss_sum += r.loss * (double)r.items;
            s.score_sum += r.score * (double)r.items;
            s.acc_first_sum += r.acc_first;
            s.acc_second_sum += r.acc_second;
            s.items += r.items;
            s.batches++;
            s.images += (int64_t)b.size * b.views;
            char extra[64];
            snprintf(extra, sizeof extra, "loss %.4f", s.loss_sum / (double)s.items);
            relate_progress_update(&bar, s.batches, s.images, extra);
            if (relate_stop_requested()) {
                relate_progress_clear(&bar);
                st = relate_error_set(err, RELATE_ERR_INTERRUPTED,
                                      "interrupted during epoch %d after step %lld; nothing of this epoch was saved "
                                      "(completed checkpoints are intact under %s)",
                                      epoch, (long long)b.number, folder);
                goto done;
            }
        }
        relate_progress_clear(&bar);
        print_epoch(out, m, epoch, relate_now() - t0, &s);
        double loss = s.items ? s.loss_sum / (double)s.items : 0.0;
        double score = s.items ? s.score_sum / (double)s.items : 0.0;
        if ((st = relate_epoch_log_append(&log, epoch, loss, score, err)) != RELATE_OK)
            goto done;
        if (relate_is_save_epoch(epoch, o->epochs)) {
            snprintf(path, sizeof path, "%s/%s_epoch_%d.tar", folder, header, epoch + 1);
            if ((st = save_checkpoint(m, path, epoch + 1, err)) != RELATE_OK)
                goto done;
            fprintf(out, "[INFO] Saving in: %s\n", path);
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
    relate_epoch_log_close(&log);
    relate_graph_destroy(g);
    relate_loader_destroy(ld);
    relate_method_free(m);
    if (ds_open)
        relate_dataset_close(&ds);
    return st;
}
