/* checkpoint_writer.c: the C half of the PyTorch interop test: writes relate checkpoints and the
 * backbone outputs that torch_interop.py checks after torch.load.
 * Not a test by itself (it checks nothing); run by tests/checkpoint/torch_interop.py.
 *
 *   test_checkpoint_writer OUT_DIR [--resnet34]
 * writes OUT_DIR/relate_conv4.tar ({backbone, relation, optimizer (Adam), optimizer_sgd, epoch,
 * method}), OUT_DIR/relate_conv4_forward.safetensors (input, eval-mode output) and, with
 * --resnet34, OUT_DIR/relate_resnet34.pt (a bare state dict) and its forward file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relate/checkpoint.h"
#include "relate/nn.h"
#include "relate/safetensors.h"
#include "test_util.h"

static int die(const char *what, const relate_error *err)
{
    fprintf(stderr, "checkpoint_writer: %s: %s\n", what, err->msg);
    return 1;
}

/* Non-trivial running statistics, so an eval-mode forward depends on them. */
static void perturb_buffers(relate_params *p, uint64_t seed)
{
    for (int i = 0; i < p->count; i++) {
        relate_param *e = p->items[i];
        if (e->kind == RELATE_BUFFER_F32) {
            relate_test_fill(e->data, (size_t)e->numel, seed + (uint64_t)i);
            bool var = strstr(e->name, "running_var") != NULL;
            for (int64_t k = 0; k < e->numel; k++)
                e->data[k] = var ? 1.0f + 0.5f * e->data[k] : 0.2f * e->data[k];
        } else if (e->kind == RELATE_BUFFER_I64) {
            e->i64[0] = 5;
        } else if (strstr(e->name, "bn") && strstr(e->name, "bias")) {
            relate_test_fill(e->data, (size_t)e->numel, seed + 100 + (uint64_t)i);
        }
    }
}

static int collect(relate_params *p, relate_param **out)
{
    int n = 0;
    for (int i = 0; i < p->count; i++)
        if (p->items[i]->kind == RELATE_PARAM)
            out[n++] = p->items[i];
    return n;
}

static void fake_grads(relate_params *p, uint64_t seed)
{
    for (int i = 0; i < p->count; i++)
        if (p->items[i]->kind == RELATE_PARAM)
            relate_test_fill(p->items[i]->grad, (size_t)p->items[i]->numel, seed + (uint64_t)i);
}

static int write_forward(const char *path, relate_backbone *bb, int n, int size, relate_error *err)
{
    int64_t in_shape[4] = {n, 3, size, size};
    size_t in_n = (size_t)n * 3 * (size_t)size * (size_t)size;
    float *x = malloc(in_n * sizeof *x);
    relate_test_fill(x, in_n, 1234);
    relate_graph *g = relate_graph_create();
    relate_graph_set_grad_enabled(g, false);
    relate_tensor *y = relate_backbone_forward(g, bb, relate_tensor_wrap(g, 4, in_shape, x), false);
    if (!y) {
        fprintf(stderr, "forward failed: %s\n", relate_graph_error(g)->msg);
        relate_graph_destroy(g);
        free(x);
        return 1;
    }
    relate_st_entry e[2] = {{"input", "F32", 4, in_shape, x}, {"output", "F32", y->ndim, y->shape, y->data}};
    relate_status s = relate_safetensors_write(path, e, 2, NULL, 0, err);
    relate_graph_destroy(g);
    free(x);
    return s != RELATE_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s OUT_DIR [--resnet34]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    bool r34 = argc > 2 && strcmp(argv[2], "--resnet34") == 0;
    char path[1024];
    relate_error err = {0};

    relate_backbone bb;
    if (relate_backbone_create(&bb, "conv4", 7, &err))
        return die("conv4", &err);
    perturb_buffers(&bb.params, 11);
    /* The relation head of spec 3.1.4 (d = 64, cat aggregation). */
    relate_params rel;
    relate_params_init(&rel);
    relate_linear_layer l1, l2;
    relate_bn_layer bn1;
    relate_linear_register(&l1, &rel, "linear1", 128, 256, true);
    relate_bn_register(&bn1, &rel, "bn1", 256);
    relate_linear_register(&l2, &rel, "linear2", 256, 1, true);
    if (relate_params_finalize(&rel, &err))
        return die("relation head", &err);
    relate_rng rng;
    relate_rng_init(&rng, 5, 0, 0, 0);
    relate_linear_init_default(&l1, &rng);
    relate_linear_init_default(&l2, &rng);
    relate_bn_init(&bn1);
    perturb_buffers(&rel, 21);

    /* Adam over (backbone, head); linear2.bias is frozen, so it never steps and has no state. */
    relate_param *pb[64], *ph[16];
    int nb = collect(&bb.params, pb), nh = collect(&rel, ph);
    l2.bias->frozen = true;
    relate_param_group groups[2] = {{.params = pb, .count = nb, .lr = 1e-3}, {.params = ph, .count = nh, .lr = 2e-3, .weight_decay = 1e-5}};
    relate_adam adam;
    relate_sgd sgd;
    if (relate_adam_init(&adam, groups, 2, 0.9, 0.999, 1e-8, &err) ||
        relate_sgd_init(&sgd, groups, 2, 0.9, 0.0, false, &err))
        return die("optimizers", &err);
    for (int step = 0; step < 2; step++) {
        fake_grads(&bb.params, 100 + (uint64_t)step);
        fake_grads(&rel, 200 + (uint64_t)step);
        relate_adam_step(&adam);
        relate_sgd_step(&sgd);
    }

    relate_ckpt_writer *w = relate_ckpt_writer_create();
    if (!w || relate_ckpt_put_state_dict(w, "backbone", &bb.params) || relate_ckpt_put_state_dict(w, "relation", &rel) ||
        relate_ckpt_put_adam(w, "optimizer", &adam) || relate_ckpt_put_sgd(w, "optimizer_sgd", &sgd) ||
        relate_ckpt_put_int(w, "epoch", 2) || relate_ckpt_put_str(w, "method", "relationnet"))
        return fprintf(stderr, "checkpoint_writer: put failed\n"), 1;
    snprintf(path, sizeof path, "%s/relate_conv4.tar", dir);
    if (relate_ckpt_write(w, path, &err))
        return die("write", &err);
    relate_ckpt_writer_free(w);
    snprintf(path, sizeof path, "%s/relate_conv4_forward.safetensors", dir);
    if (write_forward(path, &bb, 4, 32, &err))
        return die("forward", &err);
    relate_adam_free(&adam);
    relate_sgd_free(&sgd);
    relate_params_free(&rel);
    relate_backbone_free(&bb);

    if (r34) {
        if (relate_backbone_create(&bb, "resnet34", 3, &err))
            return die("resnet34", &err);
        perturb_buffers(&bb.params, 31);
        snprintf(path, sizeof path, "%s/relate_resnet34.pt", dir);
        if (relate_ckpt_write_state_dict(&bb.params, path, &err))
            return die("write resnet34", &err);
        snprintf(path, sizeof path, "%s/relate_resnet34_forward.safetensors", dir);
        if (write_forward(path, &bb, 1, 32, &err))
            return die("forward resnet34", &err);
        relate_backbone_free(&bb);
    }
    printf("checkpoint_writer: wrote %s\n", dir);
    return 0;
}
