/* lineval.c: stage 2 (spec 5.1, 5.2): a fresh Linear(d, C) on a stage-1 backbone, trained on the
 * labelled split without augmentation; or, with finetune, the whole network. Then the five-key
 * checkpoint and the test accuracy.
 *
 * Linear evaluation runs the frozen backbone in eval mode on deterministic inputs (T5), so its
 * features are a fixed function of the image: they are computed once and the linear layer trains
 * on them, in the same shuffled batches the loader would give (cache_features = false runs the
 * backbone on every batch instead; a test compares the two).
 *
 * Across MPI processes (issue 12) every process computes what one process computes: the features
 * are extracted in shares (relate_extract_features) and the linear layer, which is cheap, trains
 * on all of them on every process alike; the backbone passes of finetuning and of
 * --feature_cache=False are data-parallel as in stage 1 (each process its share of the batch,
 * synchronised batch norm, the classifier on the gathered batch, summed gradients). Rank 0 alone
 * writes. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "data/readers.h"
#include "base/pyformat.h"
#include "methods/data_parallel.h"
#include "relate/checkpoint.h"
#include "relate/dist.h"
#include "relate/loader.h"
#include "relate/stage2.h"
#include "relate/train.h"
#include "train/stage_common.h"

relate_lineval_options relate_lineval_defaults(void)
{
    return (relate_lineval_options){.backbone = "",
                                    .dataset = "cifar10",
                                    .data_root = "./data",
                                    .method = "standard",
                                    .id = "",
                                    .checkpoint = "./",
                                    .out_root = "./checkpoint",
                                    .seed = 1,
                                    .seed_text = "1",
                                    .epochs = 100,
                                    .data_size = 128,
                                    .num_workers = 8,
                                    .cache_features = true,
                                    .out = stdout};
}

/* The stage-1 backbone: the `backbone` entry of any method's checkpoint, or a bare state dict
 * (what the reference's essential script saves). */
static relate_status load_backbone(relate_backbone *bb, const relate_ckpt *c, const char *path, relate_error *err)
{
    relate_error e = {0};
    relate_status st;
    if (relate_ckpt_has(c, "backbone"))
        st = relate_ckpt_load_state_dict(c, "backbone", &bb->params, &e);
    else if ((st = relate_ckpt_load_state_dict(c, NULL, &bb->params, &e)) != RELATE_OK)
        relate_error_set(&e, RELATE_ERR_FORMAT, "it has no 'backbone' entry (its keys: %s)", relate_ckpt_key_list(c));
    if (st != RELATE_OK)
        return relate_error_set(err, e.code, "cannot use %s as a %s backbone: %s", path, bb->name, e.msg);
    return RELATE_OK;
}

/* The dataset a stage-1 checkpoint was trained on (its "args"), or NULL (malloc'd). */
static char *pretrained_dataset(const relate_ckpt *c)
{
    const char *args = NULL;
    relate_error ignore = {0};
    if (relate_ckpt_get_str(c, "args", &args, &ignore) != RELATE_OK)
        return NULL;
    json_error_t je;
    json_t *root = json_loads(args, 0, &je);
    const char *ds = json_string_value(json_object_get(root, "dataset"));
    char *out = ds ? strdup(ds) : NULL;
    json_decref(root);
    return out;
}

/* The stage-1 checkpoint a stage-2 file was made from (its "stage1_checkpoint"), or NULL. */
static char *stage1_of(const char *stage2_path)
{
    relate_ckpt *c;
    relate_error ignore = {0};
    if (relate_ckpt_open(&c, stage2_path, &ignore) != RELATE_OK)
        return NULL;
    const char *v = NULL;
    char *out = relate_ckpt_get_str(c, "stage1_checkpoint", &v, &ignore) == RELATE_OK ? strdup(v) : NULL;
    relate_ckpt_close(c);
    return out;
}

/* A stage-1 file's name without its folder and ".tar", made safe for a file name. */
static void stage1_stem(char *buf, size_t size, const char *path)
{
    const char *slash = strrchr(path, '/');
    snprintf(buf, size, "%s", slash ? slash + 1 : path);
    size_t n = strlen(buf);
    if (n > 4 && strcmp(buf + n - 4, ".tar") == 0)
        buf[n - 4] = 0;
    for (char *c = buf; *c; c++)
        if (*c == ' ' || *c == ':' || *c == '@')
            *c = '_';
}

typedef struct run_stats {
    double loss_sum;
    int64_t correct, count;
} run_stats;

/* The epoch's mean training loss and accuracy, on the console and in the stage-2 log. The
 * reference shows them only in its progress bar, labelled "Minibatch". */
static relate_status epoch_line(relate_lineval_options *o, relate_epoch_log *log, relate_progress *bar, int epoch,
                                const run_stats *s, relate_error *err)
{
    relate_progress_clear(bar);
    char l[40], a[40];
    double loss = s->count ? s->loss_sum / (double)s->count : 0.0;
    double acc = s->count ? 100.0 * (double)s->correct / (double)s->count : 0.0;
    fprintf(o->out, "(Epoch %d) training loss (epoch mean): %s; training accuracy: %s%%\n", epoch,
            relate_pyfloat(l, sizeof l, loss), relate_pyfloat(a, sizeof a, acc));
    fflush(o->out);
    return log ? relate_epoch_log_append(log, epoch, loss, acc, err) : RELATE_OK;
}

/* One classifier step on the batch's features, already in the graph. A sharded batch holds this
 * process's rows: they are gathered, and the gradients summed over the processes, as in stage 1;
 * otherwise every process holds the whole batch and steps on it alike. */
static relate_status classifier_step(relate_graph *g, relate_classifier_model *cm, relate_tensor *features,
                                     const relate_batch *b, bool sharded, bool finetune, relate_adam *opt,
                                     run_stats *s, relate_error *err)
{
    const int n = b->global_size;
    const int32_t *labels = b->labels;
    relate_tensor *logits, *loss;
    if (sharded) {
        int32_t *all = relate_graph_alloc(g, (size_t)n * sizeof *all);
        if (!all)
            return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
        if (relate_dp_gather_per_image(b, b->labels, all, sizeof *all, err) != RELATE_OK)
            return err->code;
        labels = all;
        logits = relate_linear_layer_forward(g, &cm->linear, relate_dp_gather(g, features, b, 1, 1));
        loss = relate_cross_entropy(g, logits, labels, NULL);
        relate_params *const stores[] = {&cm->params, &cm->backbone->params};
        if (relate_dp_backward(g, loss, stores, finetune ? 2 : 1, err) != RELATE_OK)
            return err->code;
    } else {
        logits = relate_linear_layer_forward(g, &cm->linear, features);
        loss = relate_cross_entropy(g, logits, labels, NULL);
        if (!loss || relate_graph_backward(g, loss) != RELATE_OK) {
            *err = *relate_graph_error(g);
            return err->code;
        }
    }
    relate_adam_step(opt);
    s->loss_sum += (double)loss->data[0] * n;
    s->correct += relate_count_correct(logits->data, labels, n, cm->linear.out);
    s->count += n;
    return RELATE_OK;
}

static relate_status train_cached(relate_lineval_options *o, relate_classifier_model *cm, const relate_split *train,
                                  const relate_dataset_info *info, relate_epoch_log *log, relate_error *err)
{
    const int d = cm->backbone->feature_size;
    const int64_t n = train->count;
    float *feats = malloc((size_t)n * d * sizeof *feats);
    float *batch = malloc((size_t)o->data_size * d * sizeof *batch);
    int32_t *labels = malloc((size_t)o->data_size * sizeof *labels);
    int64_t *order = malloc((size_t)n * sizeof *order);
    relate_graph *g = relate_graph_create();
    relate_status st = RELATE_OK;
    if (!feats || !batch || !labels || !order || !g) {
        st = relate_error_set(err, RELATE_ERR_NOMEM, "out of memory for %lld x %d features", (long long)n, d);
        goto done;
    }
    fprintf(o->out, "[INFO] Extracting features of %lld training images once (frozen backbone, eval mode)\n",
            (long long)n);
    if ((st = relate_extract_features(cm->backbone, train, info, RELATE_T5, o->data_size, feats, err)) != RELATE_OK)
        goto done;
    relate_params_set_frozen(&cm->backbone->params, true);
    int64_t nb = (n + o->data_size - 1) / o->data_size;
    if (o->limit_train_batches > 0 && o->limit_train_batches < nb)
        nb = o->limit_train_batches;
    for (int epoch = 0; epoch < o->epochs; epoch++) {
        relate_shuffle_order(order, n, o->seed, epoch);
        run_stats s = {0};
        relate_progress bar;
        char label[48];
        snprintf(label, sizeof label, "(Epoch %d/%d)", epoch, o->epochs);
        relate_progress_begin(&bar, o->progress, relate_progress_mode_for(o->progress, o->log_every), o->log_every,
                              label, nb, 0, (int64_t)(o->epochs - epoch - 1) * nb);
        for (int64_t bi = 0; bi < nb; bi++) {
            const int64_t start = bi * o->data_size;
            const int bs = (int)(n - start < o->data_size ? n - start : o->data_size);
            for (int i = 0; i < bs; i++) {
                int64_t idx = order[start + i];
                memcpy(batch + (size_t)i * d, feats + idx * d, (size_t)d * sizeof(float));
                labels[i] = train->labels[idx];
            }
            relate_graph_reset(g);
            relate_params_zero_grad(&cm->params);
            relate_tensor *x = relate_tensor_wrap(g, 2, (int64_t[]){bs, d}, batch);
            /* Every process holds all the features and steps on the whole batch alike. */
            const relate_batch whole = {.size = bs, .global_size = bs, .labels = labels};
            if ((st = classifier_step(g, cm, x, &whole, false, false, &cm->adam_lineval, &s, err)) != RELATE_OK)
                goto done;
            relate_progress_update(&bar, bi + 1, s.count, NULL);
            if (relate_stop_requested()) {
                st = relate_error_set(err, RELATE_ERR_INTERRUPTED, "interrupted during epoch %d; nothing was saved",
                                      epoch);
                goto done;
            }
        }
        if ((st = epoch_line(o, log, &bar, epoch, &s, err)) != RELATE_OK)
            goto done;
    }
done:
    relate_params_set_frozen(&cm->backbone->params, false);
    relate_graph_destroy(g);
    free(feats);
    free(batch);
    free(labels);
    free(order);
    return st;
}

/* Batches from the loader: the backbone runs on each (frozen in eval mode, or finetuned). */
static relate_status train_loader(relate_lineval_options *o, relate_classifier_model *cm, const relate_split *train,
                                  const relate_dataset_info *info, relate_epoch_log *log, relate_error *err)
{
    relate_loader_config lc = relate_loader_defaults(train, info, RELATE_T5);
    lc.batch_size = o->data_size;
    lc.shuffle = true;
    lc.seed = o->seed;
    lc.threads = o->num_workers;
    lc.limit_batches = o->limit_train_batches;
    lc.shard_index = relate_dist_rank();
    lc.shard_count = relate_dist_size();
    relate_loader *ld;
    if (relate_stage_check_shares(train, o->data_size, lc.drop_last, lc.shard_count, err) != RELATE_OK ||
        relate_loader_create(&ld, &lc, err) != RELATE_OK)
        return err->code;
    relate_graph *g = relate_graph_create();
    if (!g) {
        relate_loader_destroy(ld);
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    }
    relate_params_set_frozen(&cm->backbone->params, !o->finetune);
    relate_adam *opt = o->finetune ? &cm->adam_finetune : &cm->adam_lineval;
    relate_status st = RELATE_OK;
    for (int epoch = 0; epoch < o->epochs && st == RELATE_OK; epoch++) {
        if (o->finetune) {
            /* The reference's model is built with its default 200 epochs, so with 100 epochs its
             * decays never fire (spec 5.2, 7 A6). */
            const double base[2] = {1e-3, 1e-4};
            relate_groups_set_lr(cm->adam_finetune.groups, 2, base, relate_step_decay_factor(epoch, 200));
        }
        relate_loader_start_epoch(ld, epoch);
        run_stats s = {0};
        relate_progress bar;
        char label[48];
        snprintf(label, sizeof label, "(Epoch %d/%d)", epoch, o->epochs);
        const int64_t nb = relate_loader_batches_per_epoch(ld);
        relate_progress_begin(&bar, o->progress, relate_progress_mode_for(o->progress, o->log_every), o->log_every,
                              label, nb, 0, (int64_t)(o->epochs - epoch - 1) * nb);
        relate_batch b;
        while (relate_loader_next(ld, &b) == 1) {
            relate_graph_reset(g);
            /* Finetuning's batch norms train: across processes they see the whole batch. */
            relate_graph_set_sync_batch(g, o->finetune && relate_dist_size() > 1);
            relate_params_zero_grad(&cm->params);
            if (o->finetune)
                relate_params_zero_grad(&cm->backbone->params);
            relate_tensor *x = relate_tensor_wrap(g, 4, (int64_t[]){b.size, 3, b.side, b.side}, b.images);
            relate_tensor *f = relate_backbone_forward(g, cm->backbone, x, o->finetune);
            if ((st = classifier_step(g, cm, f, &b, true, o->finetune, opt, &s, err)) != RELATE_OK)
                break;
            relate_progress_update(&bar, b.number + 1, s.count, NULL);
            if (relate_stop_requested()) {
                st = relate_error_set(err, RELATE_ERR_INTERRUPTED, "interrupted during epoch %d; nothing was saved",
                                      epoch);
                break;
            }
        }
        if (st == RELATE_OK)
            st = epoch_line(o, log, &bar, epoch, &s, err);
    }
    relate_params_set_frozen(&cm->backbone->params, false);
    relate_graph_destroy(g);
    relate_loader_destroy(ld);
    return st;
}

relate_status relate_lineval(relate_lineval_options *o, relate_error *err)
{
    if (!o->out)
        o->out = stdout;
    FILE *out = o->out;
    relate_dataset ds;
    relate_backbone bb;
    relate_classifier_model cm;
    memset(&cm, 0, sizeof cm);
    relate_epoch_log log = {0};
    bool bb_made = false;
    relate_ckpt *c = NULL;
    char *pre_dataset = NULL;
    relate_status st;
    const bool writer = relate_dist_rank() == 0;
    fprintf(out, "[INFO] Setting SEED: %s\n", o->seed_text);
    if (o->epochs < 1 || o->data_size < 1)
        return relate_error_set(err, RELATE_ERR_ARG, "--epochs and --data_size must be at least 1");
    relate_dataset_options dopts = o->data; /* stage 2 reads the labelled splits only */
    dopts.skip_splits |= 1u << RELATE_SPLIT_UNLABELED;
    if (relate_dataset_open_with(&ds, o->dataset, o->data_root, &dopts, err) != RELATE_OK)
        return err->code;
    relate_dataset_report(&ds.info, out, stderr);
    const relate_split *train = relate_dataset_split(&ds, RELATE_SPLIT_TRAIN);
    const relate_split *test = relate_dataset_split(&ds, RELATE_SPLIT_TEST);
    if ((st = relate_dataset_need_labels(&ds, true, false,
                                         o->finetune ? "Finetuning" : "Linear evaluation", err)) != RELATE_OK)
        goto done;
    if ((st = relate_ckpt_open(&c, o->checkpoint, err)) != RELATE_OK)
        goto done;
    const char *backbone = NULL;
    bool from_file;
    if ((st = relate_stage_backbone_name(c, o->checkpoint, o->backbone, &backbone, &from_file, err)) != RELATE_OK)
        goto done;
    if ((st = relate_backbone_create(&bb, backbone, o->seed, err)) != RELATE_OK)
        goto done;
    bb_made = true;
    fprintf(out, "[INFO] %s loaded in memory.\n[INFO] Feature size: %d\n", bb.name, bb.feature_size);
    if (from_file)
        fprintf(out, "[INFO] Backbone %s, as %s records\n", bb.name, o->checkpoint);
    /* Cross-domain evaluation is legitimate (the paper does it), but often a slip: say so. */
    pre_dataset = pretrained_dataset(c);
    if (pre_dataset && strcmp(pre_dataset, o->dataset) != 0)
        fprintf(stderr, "[WARN] %s was pretrained on %s; this evaluation uses %s (cross-domain)\n", o->checkpoint,
                pre_dataset, o->dataset);

    /* The files this run writes; another run's checkpoint is never overwritten (a log without its
     * checkpoint is what a stopped or failed stage 2 leaves, and is replaced). */
    char dsdir[256], header[512], folder[1024], log_path[2048];
    relate_stage_dataset_dir(dsdir, sizeof dsdir, o->dataset);
    relate_stage_header(header, sizeof header, o->method, o->id, o->dataset, bb.name, o->seed_text);
    snprintf(folder, sizeof folder, "%s/%s/%s", o->out_root, o->method, dsdir);
    snprintf(o->saved_path, sizeof o->saved_path, "%s/%s_epoch_%d_linear_evaluation.tar", folder, header, o->epochs);
    snprintf(log_path, sizeof log_path, "%s/log_%s_epoch_%d_linear_evaluation.csv", folder, header, o->epochs);
    if (relate_file_size(o->saved_path) >= 0) {
        /* The reference's name is taken. By a stage 2 of another stage-1 checkpoint (epoch 100 and
         * epoch 200 of one run share it): this one gets a name that carries its stage-1 file, and
         * says so. By one of the same checkpoint: refused. */
        char *earlier = stage1_of(o->saved_path);
        const bool other = earlier && strcmp(earlier, o->checkpoint) != 0;
        char alt[2048], stem[512];
        if (other) {
            stage1_stem(stem, sizeof stem, o->checkpoint);
            snprintf(alt, sizeof alt, "%s/%s_epoch_%d_linear_evaluation_of_%s.tar", folder, header, o->epochs, stem);
        }
        if (other && relate_file_size(alt) < 0) {
            fprintf(out, "[INFO] %s holds the stage 2 of %s; this one goes to %s\n", o->saved_path, earlier, alt);
            snprintf(o->saved_path, sizeof o->saved_path, "%s", alt);
            snprintf(log_path, sizeof log_path, "%s/log_%s_epoch_%d_linear_evaluation_of_%s.csv", folder, header,
                     o->epochs, stem);
        } else {
            st = relate_error_set(err, RELATE_ERR_ARG, "%s exists (a stage 2 of %s): relate does not overwrite another "
                                                       "run's files. Give this run its own --id, or move it away",
                                  other ? alt : o->saved_path,
                                  other ? o->checkpoint : earlier ? earlier : "another checkpoint");
        }
        free(earlier);
        if (st != RELATE_OK)
            goto done;
    }

    fprintf(out, "[INFO] Loading checkpoint...\n");
    if ((st = load_backbone(&bb, c, o->checkpoint, err)) != RELATE_OK)
        goto done;
    relate_ckpt_close(c);
    c = NULL;
    if ((st = relate_classifier_model_init(&cm, &bb, ds.info.num_classes, o->seed, err)) != RELATE_OK)
        goto done;
    if (o->finetune)
        fprintf(out, "[INFO] Finetune set to True, the backbone will be finetuned.\n");
    /* Every process has looked for the files before rank 0 writes the first. */
    if ((st = relate_dist_barrier(err)) != RELATE_OK)
        goto done;
    if (writer && (st = relate_mkdirs(folder, err)) != RELATE_OK)
        goto done;
    if (writer && (st = relate_epoch_log_open(&log, log_path, "epoch,loss,accuracy", 0, err)) != RELATE_OK)
        goto done;
    if (!o->finetune && o->cache_features)
        st = train_cached(o, &cm, train, &ds.info, writer ? &log : NULL, err);
    else
        st = train_loader(o, &cm, train, &ds.info, writer ? &log : NULL, err);
    if (st != RELATE_OK)
        goto done;
    /* The training images are done with: the test pass below needs only the test split, so the
     * run's peak memory is not the two splits plus the test pass's buffers. */
    relate_dataset_drop_split(&ds, RELATE_SPLIT_TRAIN);
    train = NULL;

    relate_ckpt_writer *w = relate_ckpt_writer_create();
    if (!w) {
        st = relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* The reference's five keys, then relate's own (ignored by torch.load users and the
     * reference's test.py): what was evaluated, so stage 3 needs no --backbone and can warn about
     * another dataset. */
    st = relate_classifier_model_put(&cm, w, err);
    if (st == RELATE_OK &&
        (relate_ckpt_put_str(w, "backbone_name", bb.name) != RELATE_OK ||
         relate_ckpt_put_str(w, "dataset", o->dataset) != RELATE_OK ||
         relate_ckpt_put_str(w, "stage1_checkpoint", o->checkpoint) != RELATE_OK ||
         relate_ckpt_put_str(w, "stage2", o->finetune ? "finetune" : "linear_evaluation") != RELATE_OK))
        st = relate_error_set(err, RELATE_ERR_NOMEM, "out of memory building the checkpoint");
    if (st == RELATE_OK && writer)
        st = relate_ckpt_write(w, o->saved_path, err);
    relate_ckpt_writer_free(w);
    if (st != RELATE_OK)
        goto done;
    fprintf(out, "[INFO] Saving in: %s\n", o->saved_path);
    if (test && test->present) {
        double loss;
        if ((st = relate_evaluate(&bb, &cm.linear, test, &ds.info, o->data_size, &loss, &o->test_accuracy, err)) !=
            RELATE_OK)
            goto done;
        char a[40];
        fprintf(out, "Test accuracy: %s%%\n", relate_pyfloat(a, sizeof a, o->test_accuracy));
    }
done:
    free(pre_dataset);
    relate_ckpt_close(c);
    relate_epoch_log_close(&log);
    relate_classifier_model_free(&cm);
    if (bb_made)
        relate_backbone_free(&bb);
    relate_dataset_close(&ds);
    return st;
}
