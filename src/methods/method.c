/* method.c: the method registry and the dispatch of relate/method.h to each method's table.
 * Not a method: each lives in its own file (relationnet.c, simclr.c, rotationnet.c, deepinfomax.c,
 * deepcluster.c, standard.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/suggest.h"
#include "relate/dist.h"
#include "methods/method_internal.h"

static const relate_method_ops *const registry[] = {
    &relate_method_relationnet, &relate_method_simclr,   &relate_method_rotationnet,   &relate_method_deepinfomax,
    &relate_method_deepcluster, &relate_method_standard, &relate_method_randomweights, NULL};

const char *const *relate_method_names(void)
{
    static const char *names[16];
    if (!names[0])
        for (int i = 0; registry[i]; i++)
            names[i] = registry[i]->name;
    return names;
}

relate_method_config relate_method_defaults(void)
{
    return (relate_method_config){.method = "relationnet", .backbone = "conv4", .aggregation = "cat", .K = 32,
                                  .num_classes = 10, .epochs = 200, .seed = 1, .factorised_head = true};
}

relate_status relate_method_create(relate_method **out, const relate_method_config *cfg, relate_error *err)
{
    *out = NULL;
    const relate_method_ops *ops = NULL;
    for (int i = 0; registry[i]; i++)
        if (cfg->method && strcmp(registry[i]->name, cfg->method) == 0)
            ops = registry[i];
    if (!ops) {
        char hint[64];
        return relate_error_set(err, RELATE_ERR_ARG,
                                "unknown method '%s'%s (valid: relationnet, simclr, rotationnet, deepinfomax, "
                                "deepcluster, standard, randomweights)",
                                cfg->method ? cfg->method : "(null)",
                                relate_suggest_text(hint, sizeof hint, cfg->method, relate_method_names()));
    }
    if (cfg->num_classes < 1 || cfg->epochs < 1)
        return relate_error_set(err, RELATE_ERR_ARG, "%s needs at least one class and one epoch", ops->name);
    relate_method *m = calloc(1, sizeof *m);
    if (!m)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory creating method %s", ops->name);
    m->ops = ops;
    m->cfg = *cfg;
    snprintf(m->method_name, sizeof m->method_name, "%s", ops->name);
    snprintf(m->backbone_name, sizeof m->backbone_name, "%s", cfg->backbone ? cfg->backbone : "");
    snprintf(m->aggregation_name, sizeof m->aggregation_name, "%s", cfg->aggregation ? cfg->aggregation : "cat");
    m->cfg.method = m->method_name;
    m->cfg.backbone = m->backbone_name;
    m->cfg.aggregation = m->aggregation_name;
    if (relate_backbone_create(&m->backbone, m->backbone_name, cfg->seed, err) != RELATE_OK) {
        free(m);
        return err->code;
    }
    if (ops->init(m, err) != RELATE_OK) {
        if (ops->destroy)
            ops->destroy(m); /* init may fail half-way: destroy frees what it made */
        relate_backbone_free(&m->backbone);
        free(m);
        return err->code;
    }
    *out = m;
    return RELATE_OK;
}

void relate_method_free(relate_method *m)
{
    if (!m)
        return;
    if (m->ops->destroy)
        m->ops->destroy(m);
    relate_backbone_free(&m->backbone);
    free(m);
}

int relate_method_views(const relate_method *m) { return m->ops->views(m); }
relate_pipeline relate_method_pipeline(const relate_method *m, const relate_dataset_info *info)
{
    return m->ops->pipeline(m, info);
}
relate_split_kind relate_method_split(const relate_method *m, const relate_dataset_info *info)
{
    return m->ops->split(m, info);
}
bool relate_method_drop_last(const relate_method *m) { return m->ops->drop_last; }
bool relate_method_trains(const relate_method *m) { return m->ops->trains; }

relate_status relate_method_epoch_begin(relate_method *m, const relate_epoch_context *ctx, relate_error *err)
{
    return m->ops->epoch_begin ? m->ops->epoch_begin(m, ctx, err) : RELATE_OK;
}

void relate_method_loader_setup(relate_method *m, relate_loader_config *cfg)
{
    if (m->ops->loader_setup)
        m->ops->loader_setup(m, cfg);
}

relate_status relate_method_step(relate_method *m, relate_graph *g, const relate_batch *batch,
                                 relate_step_result *r, relate_error *err)
{
    memset(r, 0, sizeof *r);
    if (!m->ops->step)
        return relate_error_set(err, RELATE_ERR_ARG, "method %s does not train", m->ops->name);
    relate_graph_reset(g);
    /* Across processes the backbone's batch norms see the whole batch (data_parallel.c). */
    relate_graph_set_sync_batch(g, relate_dist_size() > 1);
    relate_batch whole = *batch;
    if (whole.global_size <= 0) { /* a batch made by hand, not by a loader: unsharded */
        whole.global_size = whole.size;
        whole.global_offset = 0;
    }
    return m->ops->step(m, g, &whole, r, err);
}

relate_status relate_method_save(const relate_method *m, relate_ckpt_writer *w, relate_error *err)
{
    return m->ops->save(m, w, err);
}

relate_status relate_method_load(relate_method *m, const relate_ckpt *c, relate_error *err)
{
    return m->ops->load(m, c, err);
}

relate_linear_layer *relate_method_classifier(relate_method *m)
{
    return m->ops->classifier ? m->ops->classifier(m) : NULL;
}

bool relate_is_save_epoch(int epoch, int total)
{
    return epoch == total / 4 - 1 || epoch == total / 2 - 1 || epoch == (3 * total) / 4 - 1 || epoch == total - 1;
}

/* ---- helpers shared by the methods ---- */
relate_param **relate_collect_params(const relate_params *p, int *count)
{
    int n = 0;
    for (int i = 0; i < p->count; i++)
        n += p->items[i]->kind == RELATE_PARAM;
    relate_param **out = malloc((size_t)(n ? n : 1) * sizeof *out);
    if (!out)
        return NULL;
    n = 0;
    for (int i = 0; i < p->count; i++)
        if (p->items[i]->kind == RELATE_PARAM)
            out[n++] = p->items[i];
    *count = n;
    return out;
}

relate_status relate_backbone_head_adam(relate_adam *opt, const relate_params *backbone, const relate_params *head,
                                        double lr, relate_error *err)
{
    int nbb = 0, nhead = 0;
    relate_param **bb = relate_collect_params(backbone, &nbb), **hd = relate_collect_params(head, &nhead);
    relate_status st;
    if (!bb || !hd) {
        st = relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    } else {
        /* The optimizer keeps its own copies of the pointer arrays. */
        relate_param_group groups[2] = {{.params = bb, .count = nbb, .lr = lr}, {.params = hd, .count = nhead, .lr = lr}};
        st = relate_adam_init(opt, groups, 2, 0.9, 0.999, 1e-8, err);
    }
    free(bb);
    free(hd);
    return st;
}

void relate_head_rng(relate_rng *r, uint64_t seed, uint32_t head_index)
{
    relate_rng_init(r, seed, 1 + head_index, 0, RELATE_PURPOSE_INIT);
}

relate_status relate_ckpt_require_keys(const relate_ckpt *c, const char *what, const char *const *keys,
                                       relate_error *err)
{
    char missing[256] = "";
    for (int i = 0; keys[i]; i++)
        if (!relate_ckpt_has(c, keys[i])) {
            size_t len = strlen(missing);
            snprintf(missing + len, sizeof missing - len, "%s'%s'", len ? ", " : "", keys[i]);
        }
    if (!missing[0])
        return RELATE_OK;
    return relate_error_set(err, RELATE_ERR_FORMAT,
                            "this is not a %s checkpoint: it lacks %s (its keys: %s)", what, missing,
                            relate_ckpt_key_list(c));
}

double relate_binary_accuracy(const float *logits, const float *targets, int64_t begin, int64_t end)
{
    if (end <= begin)
        return 0.0;
    int64_t correct = 0;
    for (int64_t p = begin; p < end; p++) {
        /* torch.round(torch.sigmoid(x)) with float32 sigmoid: halves round to even, i.e. to 0. */
        float s = 1.0f / (1.0f + expf(-logits[p]));
        float pred = s > 0.5f ? 1.0f : 0.0f;
        correct += pred == targets[p];
    }
    return 100.0 * (double)correct / (double)(end - begin);
}
