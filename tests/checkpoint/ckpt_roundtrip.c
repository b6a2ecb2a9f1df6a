/* ckpt_roundtrip.c: checkpoints relate writes and reads back: state dicts and plain values (the
 * zip container's layout included), a bare state dict, Adam and SGD states (resuming equals not
 * stopping; mismatched optimizers are refused and left unchanged), and strict loading (missing,
 * unexpected and mis-shaped entries, DataParallel's prefix, BatchNorm's num_batches_tracked).
 * Not hand-built or damaged files (those are in ckpt_handbuilt.c and ckpt_damaged.c). */
#include <stdlib.h>
#include <string.h>

#include "ckpt_fixtures.h"
#include "io/zip_stored.h"
#include "relate/checkpoint.h"
#include "test_util.h"

/* ------------------------------------------------------------------ round trips */
void test_state_dict_roundtrip(void)
{
    relate_params a, b, a2, b2;
    make_store(&a, 1, NULL);
    make_store(&b, 2, "head.extra");
    make_store(&a2, 3, NULL);
    make_store(&b2, 4, "head.extra");
    relate_ckpt_writer *w = relate_ckpt_writer_create();
    CHECK(w != NULL);
    CHECK(relate_ckpt_put_state_dict(w, "backbone", &a) == RELATE_OK);
    CHECK(relate_ckpt_put_state_dict(w, "relation", &b) == RELATE_OK);
    CHECK(relate_ckpt_put_int(w, "epoch", 50) == RELATE_OK);
    CHECK(relate_ckpt_put_int(w, "big", -5000000000LL) == RELATE_OK);
    CHECK(relate_ckpt_put_int(w, "huge", INT64_MAX) == RELATE_OK);
    CHECK(relate_ckpt_put_int(w, "m70000", 70000) == RELATE_OK);
    CHECK(relate_ckpt_put_str(w, "method", "relationnet") == RELATE_OK);
    CHECK(relate_ckpt_put_float(w, "lr", 0.1) == RELATE_OK);
    CHECK(relate_ckpt_put_int(w, "epoch", 51) == RELATE_OK); /* replaces, keeps its place */
    /* values are copied at put time */
    float saved = a.items[0]->data[0];
    a.items[0]->data[0] = 99.0f;
    relate_error err = {0};
    const char *p1 = path_of("rt1.tar"), *p2 = path_of("rt2.tar");
    CHECK_MSG(relate_ckpt_write(w, p1, &err) == RELATE_OK, "%s", err.msg);
    CHECK_MSG(relate_ckpt_write(w, p2, &err) == RELATE_OK, "%s", err.msg);
    relate_ckpt_writer_free(w);
    a.items[0]->data[0] = saved;

    size_t n1 = 0, n2 = 0;
    uint8_t *f1 = slurp(p1, &n1), *f2 = slurp(p2, &n2);
    CHECK_MSG(f1 && f2 && n1 == n2 && memcmp(f1, f2, n1) == 0, "equal checkpoints must be equal bytes");
    /* the container: entries under archive/, data at 64-byte offsets, PyTorch's records */
    relate_zip_reader z;
    CHECK(relate_zip_reader_open(&z, f1, n1, &err) == RELATE_OK);
    CHECK(z.count == 2 + 8 + 9 + 1); /* data.pkl, byteorder, 17 tensors, version */
    CHECK(z.count > 0 && strcmp(z.entries[0].name, "archive/data.pkl") == 0);
    CHECK(z.count > 0 && strcmp(z.entries[z.count - 1].name, "archive/version") == 0 &&
          memcmp(f1 + z.entries[z.count - 1].data_offset, "3\n", 2) == 0);
    const relate_zip_entry *bo = relate_zip_reader_find(&z, "archive/byteorder");
    CHECK(bo && bo->size == 6 && memcmp(f1 + bo->data_offset, "little", 6) == 0);
    for (int k = 0; k < z.count; k++) {
        CHECK_MSG(z.entries[k].data_offset % 64 == 0, "%s at %llu", z.entries[k].name,
                  (unsigned long long)z.entries[k].data_offset);
        CHECK(z.entries[k].method == 0 && relate_zip_entry_crc_ok(&z, &z.entries[k]));
    }
    const relate_zip_entry *d0 = relate_zip_reader_find(&z, "archive/data/0");
    CHECK(d0 && d0->size == 18 * 4 && memcmp(f1 + d0->data_offset, a.items[0]->data, 18 * 4) == 0);
    relate_zip_reader_free(&z);
    free(f1);
    free(f2);

    relate_ckpt *c = NULL;
    CHECK_MSG(relate_ckpt_open(&c, p1, &err) == RELATE_OK, "%s", err.msg);
    if (!c)
        return;
    CHECK(relate_ckpt_get_format(c) == RELATE_CKPT_ZIP);
    CHECK_MSG(strcmp(relate_ckpt_key_list(c), "backbone, relation, epoch, big, huge, m70000, method, lr") == 0, "%s",
              relate_ckpt_key_list(c));
    CHECK(relate_ckpt_has(c, "backbone") && relate_ckpt_has(c, "epoch") && !relate_ckpt_has(c, "optimizer"));
    CHECK_MSG(relate_ckpt_load_state_dict(c, "backbone", &a2, &err) == RELATE_OK, "%s", err.msg);
    CHECK_MSG(relate_ckpt_load_state_dict(c, "relation", &b2, &err) == RELATE_OK, "%s", err.msg);
    CHECK(stores_equal(&a, &a2));
    CHECK(stores_equal(&b, &b2));
    int64_t i = 0;
    double f = 0;
    const char *s = NULL;
    CHECK(relate_ckpt_get_int(c, "epoch", &i, &err) == RELATE_OK && i == 51);
    CHECK(relate_ckpt_get_int(c, "big", &i, &err) == RELATE_OK && i == -5000000000LL);
    CHECK(relate_ckpt_get_int(c, "huge", &i, &err) == RELATE_OK && i == INT64_MAX);
    CHECK(relate_ckpt_get_int(c, "m70000", &i, &err) == RELATE_OK && i == 70000);
    CHECK(relate_ckpt_get_float(c, "lr", &f, &err) == RELATE_OK && f == 0.1);
    CHECK(relate_ckpt_get_float(c, "epoch", &f, &err) == RELATE_OK && f == 51.0);
    CHECK(relate_ckpt_get_str(c, "method", &s, &err) == RELATE_OK && strcmp(s, "relationnet") == 0);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_get_int(c, "method", &i, &err) == RELATE_ERR_FORMAT && strstr(err.msg, "not an int"));
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_get_int(c, "optimizer", &i, &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "no entry 'optimizer'") && strstr(err.msg, "backbone, relation") && strstr(err.msg, "rt1.tar"),
              "%s", err.msg);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_load_state_dict(c, "epoch", &a2, &err) == RELATE_ERR_FORMAT && strstr(err.msg, "not a state dict"));
    relate_ckpt_tensor t;
    CHECK(relate_ckpt_get_tensor(c, "backbone/fc.weight", &t, &err) == RELATE_OK && !t.is_int && t.ndim == 2 &&
          t.shape[0] == 3 && t.numel == 12 && strcmp(t.dtype, "float32") == 0 &&
          memcmp(t.f32, relate_params_find(&a, "fc.weight")->data, 48) == 0);
    relate_ckpt_tensor_free(&t);
    CHECK(relate_ckpt_get_tensor(c, "backbone/bn.num_batches_tracked", &t, &err) == RELATE_OK && t.is_int &&
          t.ndim == 0 && t.numel == 1 && t.i64[0] == 1007);
    relate_ckpt_tensor_free(&t);
    relate_ckpt_close(c);
    relate_params_free(&a);
    relate_params_free(&b);
    relate_params_free(&a2);
    relate_params_free(&b2);
}

void test_bare_state_dict(void)
{
    relate_params a, a2;
    make_store(&a, 5, NULL);
    make_store(&a2, 6, NULL);
    relate_error err = {0};
    const char *p = path_of("bare.pt");
    CHECK_MSG(relate_ckpt_write_state_dict(&a, p, &err) == RELATE_OK, "%s", err.msg);
    relate_ckpt *c = NULL;
    CHECK_MSG(relate_ckpt_open(&c, p, &err) == RELATE_OK, "%s", err.msg);
    if (c) {
        CHECK(strcmp(relate_ckpt_key_list(c), "") == 0);
        CHECK(relate_ckpt_load_state_dict(c, "backbone", &a2, &err) == RELATE_ERR_FORMAT &&
              strstr(err.msg, "bare state dict"));
        CHECK(stores_equal(&a2, &a2) && !stores_equal(&a, &a2));
        memset(&err, 0, sizeof err);
        CHECK_MSG(relate_ckpt_load_state_dict(c, NULL, &a2, &err) == RELATE_OK, "%s", err.msg);
        CHECK(stores_equal(&a, &a2));
        relate_ckpt_close(c);
    }
    relate_params_free(&a);
    relate_params_free(&a2);
}

void test_adam_roundtrip(void)
{
    relate_params p1, p2;
    relate_param *r1[8], *r2[8];
    relate_param_group g1[2], g2[2];
    relate_adam o1, o2;
    adam_setup(&p1, r1, g1, &o1, 1e-3, 1);
    relate_params_find(&p1, "bn.bias")->frozen = true;
    for (int s = 0; s < 3; s++) {
        fake_grads(&p1, 10 + (uint64_t)s);
        relate_adam_step(&o1);
    }
    relate_ckpt_writer *w = relate_ckpt_writer_create();
    CHECK(relate_ckpt_put_state_dict(w, "backbone", &p1) == RELATE_OK);
    CHECK(relate_ckpt_put_adam(w, "optimizer", &o1) == RELATE_OK);
    relate_error err = {0};
    const char *path = path_of("adam.tar");
    CHECK_MSG(relate_ckpt_write(w, path, &err) == RELATE_OK, "%s", err.msg);
    relate_ckpt_writer_free(w);

    /* A fresh optimizer whose bn.bias has state that the file does not: it must be dropped. */
    adam_setup(&p2, r2, g2, &o2, 0.5, 2);
    o2.beta1 = 0.5;
    fake_grads(&p2, 99);
    relate_adam_step(&o2);
    relate_ckpt *c = NULL;
    CHECK_MSG(relate_ckpt_open(&c, path, &err) == RELATE_OK, "%s", err.msg);
    if (!c)
        return;
    CHECK_MSG(relate_ckpt_load_state_dict(c, "backbone", &p2, &err) == RELATE_OK, "%s", err.msg);
    CHECK_MSG(relate_ckpt_load_adam(c, "optimizer", &o2, &err) == RELATE_OK, "%s", err.msg);
    CHECK(o2.beta1 == 0.9 && o2.beta2 == 0.999 && o2.eps == 1e-8);
    CHECK(o2.groups[0].lr == 1e-3 && o2.groups[1].lr == 2e-3 && o2.groups[1].weight_decay == 1e-4 &&
          o2.groups[0].weight_decay == 0);
    for (int k = 0; k < 4; k++) {
        CHECK_MSG(o2.state[k].step == o1.state[k].step, "step %d: %lld vs %lld", k, (long long)o2.state[k].step,
                  (long long)o1.state[k].step);
        if (o1.state[k].step) {
            size_t bytes = (size_t)r1[k]->numel * sizeof(float);
            CHECK(o2.state[k].exp_avg && memcmp(o2.state[k].exp_avg, o1.state[k].exp_avg, bytes) == 0);
            CHECK(o2.state[k].exp_avg_sq && memcmp(o2.state[k].exp_avg_sq, o1.state[k].exp_avg_sq, bytes) == 0);
        } else {
            CHECK(o2.state[k].exp_avg == NULL);
        }
    }
    CHECK(o1.state[2].step == 0 && o2.state[2].step == 0);
    /* Resuming equals not stopping: two more identical steps give identical parameters. */
    relate_params_find(&p2, "bn.bias")->frozen = true;
    for (int s = 0; s < 2; s++) {
        fake_grads(&p1, 50 + (uint64_t)s);
        fake_grads(&p2, 50 + (uint64_t)s);
        relate_adam_step(&o1);
        relate_adam_step(&o2);
    }
    CHECK(stores_equal(&p1, &p2));

    /* Mismatches leave the optimizer unchanged. */
    relate_adam o3;
    relate_param_group one = {.params = r2, .count = 4, .lr = 0.7};
    CHECK(relate_adam_init(&o3, &one, 1, 0.9, 0.999, 1e-8, &err) == RELATE_OK);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_load_adam(c, "optimizer", &o3, &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "2 parameter groups") && strstr(err.msg, "adam.tar"), "%s", err.msg);
    CHECK(o3.groups[0].lr == 0.7 && o3.state[0].step == 0);
    relate_adam_free(&o3);
    relate_params q;
    relate_params_init(&q);
    relate_param *qp[4];
    qp[0] = relate_params_add(&q, "x", RELATE_PARAM, 4, (int64_t[]){2, 1, 3, 3});
    qp[1] = relate_params_add(&q, "y", RELATE_PARAM, 1, (int64_t[]){2});
    qp[2] = relate_params_add(&q, "z", RELATE_PARAM, 1, (int64_t[]){2});
    qp[3] = relate_params_add(&q, "w", RELATE_PARAM, 2, (int64_t[]){4, 3}); /* transposed shape */
    CHECK(relate_params_finalize(&q, &err) == RELATE_OK);
    relate_param_group qg[2] = {{.params = qp, .count = 3, .lr = 0.7}, {.params = qp + 3, .count = 1, .lr = 0.7}};
    CHECK(relate_adam_init(&o3, qg, 2, 0.9, 0.999, 1e-8, &err) == RELATE_OK);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_load_adam(c, "optimizer", &o3, &err) == RELATE_ERR_SHAPE);
    CHECK_MSG(strstr(err.msg, "[3, 4]") && strstr(err.msg, "[4, 3]"), "%s", err.msg);
    CHECK(o3.groups[0].lr == 0.7 && o3.state[0].step == 0 && o3.state[0].exp_avg == NULL);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_load_adam(c, "backbone", &o3, &err) == RELATE_ERR_FORMAT && strstr(err.msg, "not an optimizer"));
    relate_adam_free(&o3);
    relate_params_free(&q);
    relate_ckpt_close(c);
    relate_adam_free(&o1);
    relate_adam_free(&o2);
    relate_params_free(&p1);
    relate_params_free(&p2);
}

void test_sgd_roundtrip(void)
{
    relate_params p1, p2;
    relate_param *r1[8], *r2[8];
    relate_error err = {0};
    make_store(&p1, 1, NULL);
    make_store(&p2, 2, NULL);
    trainable(&p1, r1);
    trainable(&p2, r2);
    relate_param_group g1[2] = {{.params = r1, .count = 2, .lr = 0.1}, {.params = r1 + 2, .count = 2, .lr = 0.01, .weight_decay = 5e-4}};
    relate_param_group g2[2] = {{.params = r2, .count = 2, .lr = 9}, {.params = r2 + 2, .count = 2, .lr = 9}};
    relate_sgd o1, o2, o0;
    CHECK(relate_sgd_init(&o1, g1, 2, 0.9, 0.1, false, &err) == RELATE_OK);
    CHECK(relate_sgd_init(&o2, g2, 2, 0.5, 0.0, true, &err) == RELATE_OK);
    CHECK(relate_sgd_init(&o0, g2, 2, 0.0, 0.0, false, &err) == RELATE_OK);
    relate_params_find(&p1, "fc.weight")->frozen = true;
    for (int s = 0; s < 2; s++) {
        fake_grads(&p1, 20 + (uint64_t)s);
        relate_sgd_step(&o1);
    }
    fake_grads(&p2, 7);
    relate_sgd_step(&o2); /* o2 has a buffer for fc.weight; the file does not */
    relate_ckpt_writer *w = relate_ckpt_writer_create();
    CHECK(relate_ckpt_put_state_dict(w, "backbone", &p1) == RELATE_OK && relate_ckpt_put_sgd(w, "optimizer", &o1) == RELATE_OK);
    const char *path = path_of("sgd.tar");
    CHECK_MSG(relate_ckpt_write(w, path, &err) == RELATE_OK, "%s", err.msg);
    relate_ckpt_writer_free(w);
    relate_ckpt *c = NULL;
    CHECK_MSG(relate_ckpt_open(&c, path, &err) == RELATE_OK, "%s", err.msg);
    if (!c)
        return;
    CHECK(relate_ckpt_load_sgd(c, "optimizer", &o0, &err) == RELATE_ERR_ARG && strstr(err.msg, "momentum"));
    memset(&err, 0, sizeof err);
    CHECK_MSG(relate_ckpt_load_state_dict(c, "backbone", &p2, &err) == RELATE_OK, "%s", err.msg);
    CHECK_MSG(relate_ckpt_load_sgd(c, "optimizer", &o2, &err) == RELATE_OK, "%s", err.msg);
    CHECK(o2.momentum == 0.9 && o2.dampening == 0.1 && !o2.nesterov);
    CHECK(o2.groups[0].lr == 0.1 && o2.groups[1].lr == 0.01 && o2.groups[1].weight_decay == 5e-4);
    for (int k = 0; k < 4; k++) {
        if (o1.state[k].momentum_buffer)
            CHECK(o2.state[k].momentum_buffer &&
                  memcmp(o2.state[k].momentum_buffer, o1.state[k].momentum_buffer, (size_t)r1[k]->numel * 4) == 0);
        else
            CHECK(o2.state[k].momentum_buffer == NULL);
    }
    CHECK(o1.state[3].momentum_buffer == NULL);
    relate_params_find(&p2, "fc.weight")->frozen = true;
    for (int s = 0; s < 2; s++) {
        fake_grads(&p1, 60 + (uint64_t)s);
        fake_grads(&p2, 60 + (uint64_t)s);
        relate_sgd_step(&o1);
        relate_sgd_step(&o2);
    }
    CHECK(stores_equal(&p1, &p2));
    relate_ckpt_close(c);
    relate_sgd_free(&o0);
    relate_sgd_free(&o1);
    relate_sgd_free(&o2);
    relate_params_free(&p1);
    relate_params_free(&p2);
}

/* ------------------------------------------------------------------ strict loading */
void test_strict_loading(void)
{
    relate_params a;
    make_store(&a, 1, NULL);
    relate_error err = {0};
    const char *path = path_of("strict.pt");
    relate_ckpt_writer *w = relate_ckpt_writer_create();
    CHECK(relate_ckpt_put_state_dict(w, "backbone", &a) == RELATE_OK);
    CHECK(relate_ckpt_write(w, path, &err) == RELATE_OK);
    relate_ckpt_writer_free(w);
    relate_ckpt *c = NULL;
    CHECK(relate_ckpt_open(&c, path, &err) == RELATE_OK);
    if (!c)
        return;

    relate_params more, copy;
    make_store(&more, 2, "layer5.conv.weight");
    make_store(&copy, 2, "layer5.conv.weight");
    CHECK(relate_ckpt_load_state_dict(c, "backbone", &more, &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "1 missing: layer5.conv.weight") && strstr(err.msg, "strict.pt"), "%s", err.msg);
    CHECK(stores_equal(&more, &copy)); /* unchanged */
    relate_params_free(&more);
    relate_params_free(&copy);

    relate_params fewer;
    relate_params_init(&fewer);
    relate_params_add(&fewer, "conv.weight", RELATE_PARAM, 4, (int64_t[]){2, 1, 3, 3});
    CHECK(relate_params_finalize(&fewer, &err) == RELATE_OK);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_load_state_dict(c, "backbone", &fewer, &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "7 unexpected: bn.weight, bn.bias, bn.running_mean, bn.running_var, ..."), "%s", err.msg);
    relate_params_free(&fewer);

    relate_params wrong;
    relate_params_init(&wrong);
    relate_params_add(&wrong, "conv.weight", RELATE_PARAM, 4, (int64_t[]){2, 3, 3, 3});
    relate_params_add(&wrong, "bn.weight", RELATE_PARAM, 1, (int64_t[]){2});
    relate_params_add(&wrong, "bn.bias", RELATE_PARAM, 1, (int64_t[]){2});
    relate_params_add(&wrong, "bn.running_mean", RELATE_BUFFER_F32, 1, (int64_t[]){2});
    relate_params_add(&wrong, "bn.running_var", RELATE_BUFFER_F32, 1, (int64_t[]){2});
    relate_params_add(&wrong, "bn.num_batches_tracked", RELATE_BUFFER_F32, 0, NULL); /* float, not int64 */
    relate_params_add(&wrong, "fc.weight", RELATE_PARAM, 2, (int64_t[]){3, 4});
    relate_params_add(&wrong, "empty.buf", RELATE_BUFFER_F32, 2, (int64_t[]){0, 3});
    CHECK(relate_params_finalize(&wrong, &err) == RELATE_OK);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_load_state_dict(c, "backbone", &wrong, &err) == RELATE_ERR_SHAPE);
    CHECK_MSG(strstr(err.msg, "conv.weight is [2, 1, 3, 3] in the file but [2, 3, 3, 3] in the model") &&
              strstr(err.msg, "bn.num_batches_tracked is int64 in the file but float32 in the model"),
              "%s", err.msg);
    CHECK(wrong.items[1]->data[0] == 0.0f);
    relate_params_free(&wrong);
    relate_ckpt_close(c);

    /* DataParallel's "module." prefix gets a hint */
    relate_params dp;
    relate_params_init(&dp);
    relate_params_add(&dp, "module.fc.weight", RELATE_PARAM, 2, (int64_t[]){3, 4});
    CHECK(relate_params_finalize(&dp, &err) == RELATE_OK);
    CHECK(relate_ckpt_write_state_dict(&dp, path_of("dp.pt"), &err) == RELATE_OK);
    relate_params plain;
    relate_params_init(&plain);
    relate_params_add(&plain, "fc.weight", RELATE_PARAM, 2, (int64_t[]){3, 4});
    CHECK(relate_params_finalize(&plain, &err) == RELATE_OK);
    CHECK(relate_ckpt_open(&c, path_of("dp.pt"), &err) == RELATE_OK);
    memset(&err, 0, sizeof err);
    CHECK(c && relate_ckpt_load_state_dict(c, NULL, &plain, &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "'module.'") && strstr(err.msg, "1 missing: fc.weight"), "%s", err.msg);
    relate_ckpt_close(c);

    /* BatchNorm's rule: a state dict without num_batches_tracked (and no _metadata) loads, with 0 */
    relate_params old, cur;
    relate_params_init(&old);
    relate_params_add(&old, "bn.weight", RELATE_PARAM, 1, (int64_t[]){2});
    CHECK(relate_params_finalize(&old, &err) == RELATE_OK);
    relate_params_init(&cur);
    relate_params_add(&cur, "bn.weight", RELATE_PARAM, 1, (int64_t[]){2});
    relate_param *nbt = relate_params_add(&cur, "bn.num_batches_tracked", RELATE_BUFFER_I64, 0, NULL);
    CHECK(relate_params_finalize(&cur, &err) == RELATE_OK);
    nbt->i64[0] = 12;
    CHECK(relate_ckpt_write_state_dict(&old, path_of("old_bn.pt"), &err) == RELATE_OK);
    CHECK(relate_ckpt_open(&c, path_of("old_bn.pt"), &err) == RELATE_OK);
    memset(&err, 0, sizeof err);
    CHECK_MSG(c && relate_ckpt_load_state_dict(c, NULL, &cur, &err) == RELATE_OK, "%s", err.msg);
    CHECK(nbt->i64[0] == 0);
    relate_ckpt_close(c);
    relate_params_free(&old);
    relate_params_free(&cur);
    relate_params_free(&dp);
    relate_params_free(&plain);
    relate_params_free(&a);
}
