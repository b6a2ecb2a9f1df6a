/* test_backbone_golden.c: each backbone against PyTorch: training and eval outputs, updated
 * running statistics, the input gradient and every parameter gradient of a scalar loss, with
 * the golden file's weights loaded by their state-dict names.
 * Not a kernel test (tests/kernels) and not a training test. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "relate/graph.h"
#include "relate/nn.h"
#include "test_util.h"

/* Norm-wise bound for float32 through up to 36 batch-norm layers: summation order differs from
 * PyTorch's (we accumulate statistics in double), so errors grow with depth. */
static double bound_for(const char *name) { (void)name; return 1e-4; }

static int load_weights(relate_backbone *bb, const relate_safetensors *st)
{
    const char *keys = relate_safetensors_meta(st, "keys");
    CHECK_MSG(keys != NULL, "golden file lacks the key list");
    /* Registration order must be the state-dict order of the reference. */
    char *list = strdup(keys ? keys : ""), *save = NULL;
    int i = 0;
    for (char *k = strtok_r(list, ",", &save); k; k = strtok_r(NULL, ",", &save), i++)
        CHECK_MSG(i < bb->params.count && strcmp(bb->params.items[i]->name, k) == 0, "entry %d: ours %s, reference %s", i,
                  i < bb->params.count ? bb->params.items[i]->name : "(none)", k);
    CHECK_MSG(i == bb->params.count, "%d entries, reference %d", bb->params.count, i);
    free(list);

    for (int p = 0; p < bb->params.count; p++) {
        relate_param *e = bb->params.items[p];
        char name[256];
        snprintf(name, sizeof name, "weight.%s", e->name);
        const relate_st_tensor *t = relate_safetensors_find(st, name);
        if (e->kind == RELATE_BUFFER_I64) {
            CHECK_MSG(t && strcmp(t->dtype, "I64") == 0 && t->numel == 1, "%s", name);
            if (t)
                memcpy(e->i64, t->data, sizeof(int64_t));
            continue;
        }
        if (t) {
            CHECK_MSG(strcmp(t->dtype, "F32") == 0 && t->numel == e->numel, "%s: dtype/shape", name);
            if (t->numel == e->numel)
                memcpy(e->data, t->data, (size_t)e->numel * sizeof(float));
            continue;
        }
        /* resnet34's conv weights are stored as int8 times a scale to keep the file small. */
        char qname[256], sname[256];
        snprintf(qname, sizeof qname, "weightq.%s", e->name);
        snprintf(sname, sizeof sname, "scale.%s", e->name);
        const relate_st_tensor *q = relate_safetensors_find(st, qname), *s = relate_safetensors_find(st, sname);
        CHECK_MSG(q && s && q->numel == e->numel && strcmp(q->dtype, "I8") == 0, "%s missing", e->name);
        if (!q || !s || q->numel != e->numel)
            return 0;
        const int8_t *qv = q->data;
        float scale = *(const float *)s->data;
        for (int64_t j = 0; j < e->numel; j++)
            e->data[j] = (float)qv[j] * scale;
    }
    return 1;
}

static void check_grad(const relate_safetensors *st, const relate_param *e, double bound)
{
    char name[256];
    snprintf(name, sizeof name, "grad.%s", e->name);
    const relate_st_tensor *full = relate_safetensors_find(st, name);
    if (full) {
        relate_test_check_close(name, e->grad, full->data, (size_t)e->numel, bound);
        return;
    }
    /* Large resnet34 tensors: a strided sample plus the sum and norm of the whole gradient. */
    char sname[256], tname[256];
    snprintf(sname, sizeof sname, "gradsample.%s", e->name);
    snprintf(tname, sizeof tname, "gradstats.%s", e->name);
    const float *sample = relate_test_golden(st, sname, 4096);
    const relate_st_tensor *stats = relate_safetensors_find(st, tname);
    CHECK_MSG(stats && stats->numel == 2, "%s", tname);
    if (!sample || !stats)
        return;
    float got[4096];
    for (int j = 0; j < 4096; j++)
        got[j] = e->grad[(int64_t)j * e->numel / 4096];
    relate_test_check_close(sname, got, sample, 4096, bound);
    double sum = 0, sq = 0;
    for (int64_t j = 0; j < e->numel; j++) {
        sum += e->grad[j];
        sq += (double)e->grad[j] * e->grad[j];
    }
    const double *want = stats->data;
    CHECK_MSG(fabs(sqrt(sq) - want[1]) <= bound * want[1], "%s norm %g vs %g", tname, sqrt(sq), want[1]);
    /* The sum cancels heavily; compare it on the scale of the norm. */
    CHECK_MSG(fabs(sum - want[0]) <= bound * want[1] * 10, "%s sum %g vs %g", tname, sum, want[0]);
}

static void run(const char *backbone)
{
    char file[64];
    snprintf(file, sizeof file, "backbone_%s.safetensors", backbone);
    relate_safetensors st;
    relate_test_open_golden(&st, file);
    relate_error err = {0};
    relate_backbone bb;
    CHECK(relate_backbone_create(&bb, backbone, 1, &err) == RELATE_OK);
    if (!load_weights(&bb, &st)) {
        relate_backbone_free(&bb);
        relate_safetensors_close(&st);
        return;
    }
    const relate_st_tensor *in = relate_safetensors_find(&st, "input");
    const float *target = relate_test_golden(&st, "target", -1);
    if (!in || !target)
        return;
    int64_t n = in->shape[0], d = bb.feature_size;
    double bound = bound_for(backbone);

    relate_graph *g = relate_graph_create();
    relate_tensor *x = relate_tensor_new(g, 4, in->shape);
    memcpy(x->data, in->data, (size_t)in->numel * sizeof(float));
    x->requires_grad = true; /* so the input gradient is computed too */
    relate_params_zero_grad(&bb.params);
    relate_tensor *y = relate_backbone_forward(g, &bb, x, true);
    relate_tensor *loss = relate_sum(g, relate_mul(g, y, relate_tensor_wrap(g, 2, (int64_t[]){n, d}, (float *)target)));
    CHECK_MSG(loss != NULL, "%s", relate_graph_error(g)->msg);
    CHECK(relate_graph_backward(g, loss) == RELATE_OK);
    char name[256];
    snprintf(name, sizeof name, "%s out_train", backbone);
    relate_test_check_close(name, y->data, relate_test_golden(&st, "out_train", n * d), (size_t)(n * d), bound);
    snprintf(name, sizeof name, "%s grad_input", backbone);
    relate_test_check_close(name, x->grad, relate_test_golden(&st, "grad_input", in->numel), (size_t)in->numel, bound);
    for (int p = 0; p < bb.params.count; p++) {
        relate_param *e = bb.params.items[p];
        if (e->kind == RELATE_PARAM) {
            check_grad(&st, e, bound);
        } else if (e->kind == RELATE_BUFFER_F32) {
            snprintf(name, sizeof name, "running.%s", e->name);
            relate_test_check_close(name, e->data, relate_test_golden(&st, name, e->numel), (size_t)e->numel, 1e-5);
        } else {
            CHECK_MSG(*e->i64 == 1, "%s = %lld after one training forward", e->name, (long long)*e->i64);
        }
    }
    relate_graph_reset(g);
    relate_graph_set_grad_enabled(g, false);
    relate_tensor *ye = relate_backbone_forward(g, &bb, relate_tensor_wrap(g, 4, in->shape, (float *)in->data), false);
    CHECK(ye != NULL);
    snprintf(name, sizeof name, "%s out_eval", backbone);
    if (ye)
        relate_test_check_close(name, ye->data, relate_test_golden(&st, "out_eval", n * d), (size_t)(n * d), bound);
    relate_graph_destroy(g);
    relate_backbone_free(&bb);
    relate_safetensors_close(&st);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    static const char *const names[] = {"conv4", "resnet8", "resnet32", "resnet34"};
    for (int i = 0; i < 4; i++)
        if (!only || strcmp(only, names[i]) == 0)
            run(names[i]);
    return relate_test_finish();
}
