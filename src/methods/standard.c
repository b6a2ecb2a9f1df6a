/* standard.c: the supervised upper bound (spec 3.6) and the random-weights lower bound (3.7).
 * standard trains backbone + Linear(d, C) with cross-entropy and SGD (lr 0.1, momentum 0.9, x0.1
 * at 50 % and 75 % of the epochs); its checkpoint has the five keys every stage-2 file has.
 * randomweights trains nothing: its checkpoint is the initialised backbone. */
#include <stdlib.h>
#include <string.h>

#include "base/pyformat.h"
#include "methods/method_internal.h"
#include "relate/stage2.h"

typedef struct standard {
    relate_classifier_model cls; /* classifier params + the three optimizers of the 5-key file */
} standard;

static standard *impl(const relate_method *m) { return m->impl; }

static relate_status st_init(relate_method *m, relate_error *err)
{
    standard *s = calloc(1, sizeof *s);
    if (!s)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    m->impl = s;
    return relate_classifier_model_init(&s->cls, &m->backbone, m->cfg.num_classes, m->cfg.seed, err);
}

static void st_destroy(relate_method *m)
{
    standard *s = impl(m);
    if (!s)
        return;
    relate_classifier_model_free(&s->cls);
    free(s);
    m->impl = NULL;
}

static int st_views(const relate_method *m)
{
    (void)m;
    return 1;
}

static relate_pipeline st_pipeline(const relate_method *m, const relate_dataset_info *info)
{
    (void)m;
    /* The reference gives STL-10 its "finetune" transform here (spec 7, A17). */
    return strcmp(info->name, "stl10") == 0 ? RELATE_T4 : RELATE_T3;
}

static relate_split_kind st_split(const relate_method *m, const relate_dataset_info *info)
{
    (void)m, (void)info;
    return RELATE_SPLIT_TRAIN;
}

static relate_status st_epoch_begin(relate_method *m, const relate_epoch_context *ctx, relate_error *err)
{
    (void)err;
    const int epoch = ctx->epoch;
    FILE *out = ctx->out;
    standard *s = impl(m);
    relate_sgd *sgd = &s->cls.sgd;
    const int E = m->cfg.epochs;
    const bool milestone = epoch == E / 2 || epoch == (3 * E) / 4;
    double base[2] = {0.1, 0.1};
    relate_groups_set_lr(sgd->groups, sgd->ngroups, base, relate_step_decay_factor(epoch, E));
    if (milestone && out) /* at epoch 0 too: with --epochs=1 both milestones are epoch 0 */
        for (int i = 0; i < sgd->ngroups; i++) {
            char lr[40];
            fprintf(out, "Group[%d] learning rate: %s\n", i, relate_pyfloat(lr, sizeof lr, sgd->groups[i].lr));
        }
    return RELATE_OK;
}

static relate_status st_step(relate_method *m, relate_graph *g, const relate_batch *b, relate_step_result *r,
                             relate_error *err)
{
    standard *s = impl(m);
    relate_params_zero_grad(&m->backbone.params);
    relate_params_zero_grad(&s->cls.params);
    relate_tensor *x = relate_tensor_wrap(g, 4, (int64_t[]){b->size, 3, b->side, b->side}, b->images);
    relate_tensor *f = relate_dp_gather(g, relate_backbone_forward(g, &m->backbone, x, true), b, 1, 1);
    const int B = b->global_size;
    int32_t *labels = relate_graph_alloc(g, (size_t)B * sizeof *labels);
    if (!labels)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    if (relate_dp_gather_per_image(b, b->labels, labels, sizeof *labels, err) != RELATE_OK)
        return err->code;
    relate_tensor *logits = relate_linear_layer_forward(g, &s->cls.linear, f);
    relate_tensor *loss = relate_cross_entropy(g, logits, labels, NULL);
    relate_params *const stores[] = {&m->backbone.params, &s->cls.params};
    if (relate_dp_backward(g, loss, stores, 2, err) != RELATE_OK)
        return err->code;
    relate_sgd_step(&s->cls.sgd);
    r->loss = loss->data[0];
    r->items = B;
    r->score = 100.0 * (double)relate_count_correct(logits->data, labels, B, s->cls.linear.out) / B;
    return RELATE_OK;
}

static relate_status st_save(const relate_method *m, relate_ckpt_writer *w, relate_error *err)
{
    return relate_classifier_model_put(&impl(m)->cls, w, err);
}

static relate_status st_load(relate_method *m, const relate_ckpt *c, relate_error *err)
{
    return relate_classifier_model_load(&impl(m)->cls, c, true, err);
}

static relate_linear_layer *st_classifier(relate_method *m) { return &impl(m)->cls.linear; }

const relate_method_ops relate_method_standard = {
    .name = "standard",
    .trains = true,
    .drop_last = false,
    .init = st_init,
    .destroy = st_destroy,
    .views = st_views,
    .pipeline = st_pipeline,
    .split = st_split,
    .epoch_begin = st_epoch_begin,
    .step = st_step,
    .save = st_save,
    .load = st_load,
    .classifier = st_classifier,
};

/* ---- randomweights ---- */
static relate_status rw_init(relate_method *m, relate_error *err)
{
    (void)m, (void)err;
    return RELATE_OK;
}

static relate_status rw_save(const relate_method *m, relate_ckpt_writer *w, relate_error *err)
{
    if (relate_ckpt_put_state_dict(w, "backbone", &m->backbone.params) != RELATE_OK)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory building the checkpoint");
    return RELATE_OK;
}

static relate_status rw_load(relate_method *m, const relate_ckpt *c, relate_error *err)
{
    static const char *const keys[] = {"backbone", NULL};
    if (relate_ckpt_require_keys(c, "randomweights", keys, err) != RELATE_OK)
        return err->code;
    return relate_ckpt_load_state_dict(c, "backbone", &m->backbone.params, err);
}

const relate_method_ops relate_method_randomweights = {
    .name = "randomweights",
    .trains = false,
    .drop_last = false,
    .init = rw_init,
    .views = st_views,
    .pipeline = st_pipeline,
    .split = st_split,
    .save = rw_save,
    .load = rw_load,
};
