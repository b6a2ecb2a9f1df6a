/* ckpt_handbuilt.c: hand-built torch.save files, zip and legacy: Adam's step as a 0-d tensor and
 * as an int, views into shared storages (offsets, strides, zero strides, dtypes, legacy storage
 * views, every truncation and corrupted byte of a legacy file), storages too short, out of bounds
 * or missing, and pickled code or whole modules refused.
 * Not the full allow-list (that is in ckpt_allow_list.c) nor damaged zips (ckpt_damaged.c). */
#include <stdlib.h>
#include <string.h>

#include "ckpt_fixtures.h"
#include "relate/checkpoint.h"
#include "test_util.h"

/* ------------------------------------------------------------------ hand-built files */
/* PyTorch 1.12+ Adam: a 0-d float tensor step; 1.4: an int. Both in one file. */
void test_adam_tensor_step(void)
{
    float m0[3] = {1, 2, 3}, v0[3] = {4, 5, 6}, step = 4.0f, m1[2] = {7, 8}, v1[2] = {9, 10};
    relate_pkw w;
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    relate_pkw_empty_dict(&w);
    relate_pkw_mark(&w);
    relate_pkw_str(&w, "optimizer");
    relate_pkw_empty_dict(&w);
    relate_pkw_mark(&w);
    relate_pkw_str(&w, "state");
    relate_pkw_empty_dict(&w);
    relate_pkw_mark(&w);
    relate_pkw_int(&w, 140000000001LL); /* PyTorch 1.4 used Python object ids; position decides */
    relate_pkw_empty_dict(&w);
    relate_pkw_mark(&w);
    relate_pkw_str(&w, "step");
    pk_tensor(&w, "FloatStorage", "0", "cpu", 1, false, 0, 0, NULL, NULL);
    relate_pkw_str(&w, "exp_avg");
    pk_tensor(&w, "FloatStorage", "1", "cuda:0", 3, false, 0, 1, (int64_t[]){3}, (int64_t[]){1});
    relate_pkw_str(&w, "exp_avg_sq");
    pk_tensor(&w, "DoubleStorage", "2", "cpu", 3, false, 0, 1, (int64_t[]){3}, (int64_t[]){1});
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_int(&w, 77);
    relate_pkw_empty_dict(&w);
    relate_pkw_mark(&w);
    relate_pkw_str(&w, "step");
    relate_pkw_int(&w, 9);
    relate_pkw_str(&w, "exp_avg");
    pk_tensor(&w, "FloatStorage", "3", "cpu", 4, false, 2, 1, (int64_t[]){2}, (int64_t[]){1});
    relate_pkw_str(&w, "exp_avg_sq");
    pk_tensor(&w, "FloatStorage", "4", "cpu", 2, false, 0, 1, (int64_t[]){2}, (int64_t[]){1});
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_str(&w, "param_groups");
    relate_pkw_empty_list(&w);
    relate_pkw_mark(&w);
    relate_pkw_empty_dict(&w);
    relate_pkw_mark(&w);
    relate_pkw_str(&w, "lr");
    relate_pkw_float(&w, 0.01);
    relate_pkw_str(&w, "betas");
    relate_pkw_tuple_begin(&w, 2);
    relate_pkw_float(&w, 0.8);
    relate_pkw_float(&w, 0.9);
    relate_pkw_tuple_end(&w, 2);
    relate_pkw_str(&w, "eps");
    relate_pkw_float(&w, 1e-6);
    relate_pkw_str(&w, "weight_decay");
    relate_pkw_int(&w, 0);
    relate_pkw_str(&w, "amsgrad");
    relate_pkw_bool(&w, false);
    relate_pkw_str(&w, "params");
    relate_pkw_empty_list(&w);
    relate_pkw_mark(&w);
    relate_pkw_int(&w, 140000000001LL);
    relate_pkw_int(&w, 77);
    relate_pkw_op(&w, RELATE_PKW_APPENDS);
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_APPENDS);
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_STOP);
    double v0d[3] = {4, 5, 6};
    float m1s[4] = {0, 0, 7, 8}; /* exp_avg of parameter 1 is a view at offset 2 */
    (void)v0;
    const void *data[5] = {&step, m0, v0d, m1s, v1};
    size_t sizes[5] = {4, 12, 24, 16, 8};
    const char *path = path_of("adam_steps.pt");
    write_torch_zip(path, &w, data, sizes, 5);
    relate_pkw_free(&w);

    relate_params p;
    relate_params_init(&p);
    relate_param *prm[2];
    relate_error err = {0};
    prm[0] = relate_params_add(&p, "a", RELATE_PARAM, 1, (int64_t[]){3});
    prm[1] = relate_params_add(&p, "b", RELATE_PARAM, 1, (int64_t[]){2});
    CHECK(relate_params_finalize(&p, &err) == RELATE_OK);
    relate_param_group g = {.params = prm, .count = 2, .lr = 1};
    relate_adam o;
    CHECK(relate_adam_init(&o, &g, 1, 0.9, 0.999, 1e-8, &err) == RELATE_OK);
    relate_ckpt *c = NULL;
    CHECK_MSG(relate_ckpt_open(&c, path, &err) == RELATE_OK, "%s", err.msg);
    if (c) {
        CHECK_MSG(relate_ckpt_load_adam(c, "optimizer", &o, &err) == RELATE_OK, "%s", err.msg);
        CHECK(o.state[0].step == 4 && o.state[1].step == 9);
        CHECK(o.state[0].exp_avg && memcmp(o.state[0].exp_avg, m0, 12) == 0);
        CHECK(o.state[0].exp_avg_sq && o.state[0].exp_avg_sq[2] == 6.0f);
        CHECK(o.state[1].exp_avg && memcmp(o.state[1].exp_avg, m1, 8) == 0);
        CHECK(o.state[1].exp_avg_sq && memcmp(o.state[1].exp_avg_sq, v1, 8) == 0);
        CHECK(o.groups[0].lr == 0.01 && o.beta1 == 0.8 && o.beta2 == 0.9 && o.eps == 1e-6);
        relate_adam_step(&o); /* loaded (malloc'd) state is stepped and freed like the optimizer's own */
        CHECK(o.state[0].step == 5);
        relate_ckpt_close(c);
    }
    relate_adam_free(&o);
    relate_params_free(&p);
}

/* Views into shared storages, strides, offsets, dtypes, in both formats:
 * {"sd": OrderedDict(rows, transposed, expanded, half, count), "bytes": uint8 tensor}. */
static void build_views_pickle(relate_pkw *w, bool legacy, const char *k0, const char *k1, const char *k2, const char *k3)
{
    relate_pkw_init(w);
    relate_pkw_proto(w);
    relate_pkw_empty_dict(w);
    relate_pkw_mark(w);
    relate_pkw_str(w, "sd");
    pk_odict_begin(w);
    /* storage k0: 12 floats 0..11 */
    relate_pkw_str(w, "rows");           /* [2,3] at offset 3 */
    pk_tensor(w, "FloatStorage", k0, "cpu", 12, legacy, 3, 2, (int64_t[]){2, 3}, (int64_t[]){3, 1});
    relate_pkw_str(w, "transposed");     /* the [4,3] storage seen as [3,4] */
    pk_tensor(w, "FloatStorage", k0, "cpu", 12, legacy, 0, 2, (int64_t[]){3, 4}, (int64_t[]){1, 3});
    relate_pkw_str(w, "expanded");       /* [2,3] with stride 0, saved from a GPU */
    pk_tensor(w, "FloatStorage", k0, "cuda:0", 12, legacy, 6, 2, (int64_t[]){2, 3}, (int64_t[]){0, 1});
    relate_pkw_str(w, "half");           /* float16 [2] */
    pk_tensor(w, "HalfStorage", k1, "cpu", 2, legacy, 0, 1, (int64_t[]){2}, (int64_t[]){1});
    relate_pkw_str(w, "count");          /* int32 scalar at offset 1 */
    pk_tensor(w, "IntStorage", k2, "cpu", 2, legacy, 1, 0, NULL, NULL);
    relate_pkw_op(w, RELATE_PKW_SETITEMS);
    relate_pkw_str(w, "bytes");          /* uint8 [3]: not loadable into a parameter */
    pk_tensor(w, "ByteStorage", k3, "cpu", 3, legacy, 0, 1, (int64_t[]){3}, (int64_t[]){1});
    relate_pkw_op(w, RELATE_PKW_SETITEMS);
    relate_pkw_op(w, RELATE_PKW_STOP);
}

static uint16_t halfs[2] = {0x3c00, 0xc100}; /* 1.0, -2.5 */
static int32_t ints[2] = {-1, 42};
static uint8_t u8s[3] = {1, 2, 3};

static void add_view_entries(relate_params *p, relate_param_kind rows_kind)
{
    relate_error err = {0};
    relate_params_init(p);
    relate_params_add(p, "rows", rows_kind, 2, (int64_t[]){2, 3});
    relate_params_add(p, "transposed", RELATE_BUFFER_F32, 2, (int64_t[]){3, 4});
    relate_params_add(p, "expanded", RELATE_BUFFER_F32, 2, (int64_t[]){2, 3});
    relate_params_add(p, "half", RELATE_PARAM, 1, (int64_t[]){2});
    relate_params_add(p, "count", RELATE_BUFFER_I64, 0, NULL);
    CHECK(relate_params_finalize(p, &err) == RELATE_OK);
}

static void check_views(const char *path, relate_ckpt_format want_format)
{
    relate_error err = {0};
    relate_ckpt *c = NULL;
    CHECK_MSG(relate_ckpt_open(&c, path, &err) == RELATE_OK, "%s", err.msg);
    if (!c)
        return;
    CHECK(relate_ckpt_get_format(c) == want_format);
    CHECK(strcmp(relate_ckpt_key_list(c), "sd, bytes") == 0);
    relate_params p;
    add_view_entries(&p, RELATE_PARAM);
    CHECK_MSG(relate_ckpt_load_state_dict(c, "sd", &p, &err) == RELATE_OK, "%s", err.msg);
    static const float want_rows[6] = {3, 4, 5, 6, 7, 8};
    static const float want_tr[12] = {0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11};
    static const float want_ex[6] = {6, 7, 8, 6, 7, 8};
    CHECK(memcmp(relate_params_find(&p, "rows")->data, want_rows, sizeof want_rows) == 0);
    CHECK(memcmp(relate_params_find(&p, "transposed")->data, want_tr, sizeof want_tr) == 0);
    CHECK(memcmp(relate_params_find(&p, "expanded")->data, want_ex, sizeof want_ex) == 0);
    CHECK(relate_params_find(&p, "half")->data[0] == 1.0f && relate_params_find(&p, "half")->data[1] == -2.5f);
    CHECK(relate_params_find(&p, "count")->i64[0] == 42);
    relate_params_free(&p);
    /* a float tensor into an int64 buffer is refused, and the store stays as it was */
    add_view_entries(&p, RELATE_BUFFER_I64);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_load_state_dict(c, "sd", &p, &err) == RELATE_ERR_SHAPE);
    CHECK_MSG(strstr(err.msg, "rows is float32 in the file but int64 in the model"), "%s", err.msg);
    CHECK(relate_params_find(&p, "count")->i64[0] == 0);
    relate_params_free(&p);
    relate_ckpt_tensor t;
    CHECK(relate_ckpt_get_tensor(c, "bytes", &t, &err) == RELATE_OK && t.is_int && t.i64[2] == 3 &&
          strcmp(t.dtype, "uint8") == 0);
    relate_ckpt_tensor_free(&t);
    CHECK(relate_ckpt_get_tensor(c, "sd/transposed", &t, &err) == RELATE_OK && t.ndim == 2 && t.shape[1] == 4 &&
          memcmp(t.f32, want_tr, sizeof want_tr) == 0);
    relate_ckpt_tensor_free(&t);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_get_tensor(c, "sd/nothing", &t, &err) == RELATE_ERR_FORMAT && strstr(err.msg, "nothing at"));
    relate_ckpt_close(c);
}

void test_views_zip_and_legacy(void)
{
    relate_pkw w;
    build_views_pickle(&w, false, "0", "1", "2", "3");
    const void *data[4] = {storage12, halfs, ints, u8s};
    size_t sizes[4] = {48, 4, 8, 3};
    write_torch_zip(path_of("views.pt"), &w, data, sizes, 4);
    relate_pkw_free(&w);
    check_views(path_of("views.pt"), RELATE_CKPT_ZIP);

    /* the same object in the legacy format, with PyTorch 1.4-style numeric keys */
    build_views_pickle(&w, true, "94160", "94208", "94304", "94400");
    const char *keys[4] = {"94160", "94208", "94304", "94400"};
    int64_t counts[4] = {12, 2, 2, 3};
    int elsize[4] = {4, 2, 4, 1};
    const char *lp = path_of("views_legacy.pt");
    write_legacy(lp, &w, keys, data, counts, elsize, 4);
    relate_pkw_free(&w);
    check_views(lp, RELATE_CKPT_LEGACY);

    /* every truncation of the legacy file fails cleanly, naming the file */
    size_t n = 0;
    uint8_t *full = slurp(lp, &n);
    const char *cut = path_of("views_cut.pt");
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        spit(cut, full, k);
        relate_ckpt *c = NULL;
        relate_error err = {0};
        if (relate_ckpt_open(&c, cut, &err) == RELATE_OK || !strstr(err.msg, "views_cut.pt")) {
            if (bad++ < 3)
                fprintf(stderr, "legacy cut at %zu: %s\n", k, err.msg);
        }
        relate_ckpt_close(c);
    }
    CHECK_MSG(bad == 0, "%d legacy truncations were accepted or unnamed", bad);
    spit(cut, full, n - 1);
    expect_open_error(cut, RELATE_ERR_FORMAT, "truncated");
    /* any single corrupted byte: an error or a load, never a crash (ASan builds check) */
    for (size_t k = 0; k < n; k++) {
        uint8_t keep = full[k];
        full[k] ^= 0x5a;
        spit(cut, full, n);
        full[k] = keep;
        relate_ckpt *c = NULL;
        relate_error err = {0};
        if (relate_ckpt_open(&c, cut, &err) == RELATE_OK) {
            relate_ckpt_tensor t;
            if (relate_ckpt_get_tensor(c, "transposed", &t, &err) == RELATE_OK)
                relate_ckpt_tensor_free(&t);
            relate_ckpt_close(c);
        }
    }
    free(full);

    /* a legacy storage view: (view_key, offset, size) in the persistent id's last field */
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    pk_odict_begin(&w);
    relate_pkw_str(&w, "v");
    relate_pkw_global(&w, "torch._utils", "_rebuild_tensor_v2");
    relate_pkw_tuple_begin(&w, 6);
    relate_pkw_tuple_begin(&w, 6);
    relate_pkw_str(&w, "storage");
    relate_pkw_global(&w, "torch", "FloatStorage");
    relate_pkw_str(&w, "500");
    relate_pkw_str(&w, "cpu");
    relate_pkw_int(&w, 12);
    relate_pkw_tuple_begin(&w, 3);
    relate_pkw_str(&w, "501");
    relate_pkw_int(&w, 4);
    relate_pkw_int(&w, 6);
    relate_pkw_tuple_end(&w, 3);
    relate_pkw_tuple_end(&w, 6);
    relate_pkw_op(&w, RELATE_PKW_BINPERSID);
    relate_pkw_int(&w, 1); /* offset 1 within the view: elements 5..7 */
    relate_pkw_tuple_begin(&w, 1);
    relate_pkw_int(&w, 3);
    relate_pkw_tuple_end(&w, 1);
    relate_pkw_tuple_begin(&w, 1);
    relate_pkw_int(&w, 1);
    relate_pkw_tuple_end(&w, 1);
    relate_pkw_bool(&w, false);
    relate_pkw_global(&w, "collections", "OrderedDict");
    relate_pkw_tuple_end(&w, 0);
    relate_pkw_op(&w, RELATE_PKW_REDUCE);
    relate_pkw_tuple_end(&w, 6);
    relate_pkw_op(&w, RELATE_PKW_REDUCE);
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_STOP);
    const char *vkeys[1] = {"500"};
    write_legacy(path_of("legacy_view.pt"), &w, vkeys, data, counts, elsize, 1);
    relate_pkw_free(&w);
    {
        relate_ckpt *c = NULL;
        relate_error err = {0};
        relate_ckpt_tensor t;
        CHECK_MSG(relate_ckpt_open(&c, path_of("legacy_view.pt"), &err) == RELATE_OK, "%s", err.msg);
        CHECK(c && relate_ckpt_get_tensor(c, "v", &t, &err) == RELATE_OK && t.numel == 3 && t.f32[0] == 5.0f &&
              t.f32[2] == 7.0f);
        relate_ckpt_tensor_free(&t);
        relate_ckpt_close(c);
    }

    /* a view that reaches past its storage */
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    pk_odict_begin(&w);
    relate_pkw_str(&w, "w");
    pk_tensor(&w, "FloatStorage", "0", "cpu", 12, false, 8, 2, (int64_t[]){2, 3}, (int64_t[]){3, 1});
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_STOP);
    write_torch_zip(path_of("oob.pt"), &w, data, sizes, 1);
    relate_pkw_free(&w);
    relate_ckpt *c = NULL;
    relate_error err = {0};
    CHECK(relate_ckpt_open(&c, path_of("oob.pt"), &err) == RELATE_OK);
    relate_ckpt_tensor t;
    CHECK(c && relate_ckpt_get_tensor(c, "w", &t, &err) == RELATE_ERR_FORMAT && strstr(err.msg, "past the end"));
    relate_ckpt_close(c);
    /* a storage record shorter than the pickle says */
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    pk_odict_begin(&w);
    relate_pkw_str(&w, "w");
    pk_tensor(&w, "FloatStorage", "0", "cpu", 13, false, 0, 1, (int64_t[]){13}, (int64_t[]){1});
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_STOP);
    write_torch_zip(path_of("short.pt"), &w, data, sizes, 1);
    relate_pkw_free(&w);
    expect_open_error(path_of("short.pt"), RELATE_ERR_FORMAT, "holds 48 bytes");
    /* a storage record that is missing */
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    pk_odict_begin(&w);
    relate_pkw_str(&w, "w");
    pk_tensor(&w, "FloatStorage", "7", "cpu", 1, false, 0, 0, NULL, NULL);
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_STOP);
    write_torch_zip(path_of("missing.pt"), &w, data, sizes, 1);
    relate_pkw_free(&w);
    expect_open_error(path_of("missing.pt"), RELATE_ERR_FORMAT, "archive/data/7 is missing");
}

void test_refused_globals(void)
{
    /* what pickle.dumps(os.system("echo hi")) style payloads look like */
    relate_pkw w;
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    relate_pkw_global(&w, "os", "system");
    relate_pkw_str(&w, "echo pwned");
    relate_pkw_tuple_end(&w, 1);
    relate_pkw_op(&w, RELATE_PKW_REDUCE);
    relate_pkw_op(&w, RELATE_PKW_STOP);
    write_torch_zip(path_of("evil.pt"), &w, NULL, NULL, 0);
    expect_open_error(path_of("evil.pt"), RELATE_ERR_FORMAT, "os.system");
    relate_ckpt *c = NULL;
    relate_error err = {0};
    relate_ckpt_open(&c, path_of("evil.pt"), &err);
    CHECK_MSG(strstr(err.msg, "Nothing was executed"), "%s", err.msg);
    /* the same in a legacy file */
    write_legacy(path_of("evil_legacy.pt"), &w, NULL, NULL, NULL, NULL, 0);
    expect_open_error(path_of("evil_legacy.pt"), RELATE_ERR_FORMAT, "os.system");
    relate_pkw_free(&w);
    /* torch.save(model): the module's class is a global too */
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    relate_pkw_global(&w, "torch.nn.modules.conv", "Conv2d");
    relate_pkw_tuple_end(&w, 0);
    relate_pkw_op(&w, 0x81); /* NEWOBJ */
    relate_pkw_op(&w, RELATE_PKW_STOP);
    write_torch_zip(path_of("module.pt"), &w, NULL, NULL, 0);
    relate_pkw_free(&w);
    expect_open_error(path_of("module.pt"), RELATE_ERR_FORMAT, "torch.nn.modules.conv.Conv2d");
}
