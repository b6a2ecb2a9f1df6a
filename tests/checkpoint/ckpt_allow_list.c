/* ckpt_allow_list.c: the pickle global allow-list of spec 8, pinned both ways: every listed global
 * (each storage class, OrderedDict, _rebuild_tensor_v2, _rebuild_parameter) opens, and every other
 * global, near-misses included, is refused by name in four positions.
 * Not the first refused payloads (os.system, a pickled module: those are in ckpt_handbuilt.c). */
#include <string.h>

#include "ckpt_fixtures.h"
#include "relate/checkpoint.h"
#include "test_util.h"

/* ------------------------------------------------------------------ the allow-list, both ways */
/* Spec 8 is the authority: a checkpoint may name collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2 and the storage classes (relate reads these ten; spec 8's layout
 * uses FloatStorage and LongStorage), and relate additionally allows torch._utils._rebuild_parameter
 * (an nn.Parameter pickled directly). Every one of them must open; any other global must be refused,
 * naming it. */
static const struct {
    const char *storage, *dtype;
    int elsize;
    uint8_t one[8]; /* the value 1 in that dtype, little-endian */
} ALLOWED_STORAGES[] = {
    {"FloatStorage", "float32", 4, {0, 0, 0x80, 0x3f}},
    {"DoubleStorage", "float64", 8, {0, 0, 0, 0, 0, 0, 0xf0, 0x3f}},
    {"HalfStorage", "float16", 2, {0, 0x3c}},
    {"BFloat16Storage", "bfloat16", 2, {0x80, 0x3f}},
    {"LongStorage", "int64", 8, {1}},
    {"IntStorage", "int32", 4, {1}},
    {"ShortStorage", "int16", 2, {1}},
    {"CharStorage", "int8", 1, {1}},
    {"ByteStorage", "uint8", 1, {1}},
    {"BoolStorage", "bool", 1, {1}},
};

/* Globals a checkpoint must never get past the unpickler: code execution, whole models, other
 * containers and tensor rebuilders, and near-misses of the allowed names (a longer or shorter
 * name, another module, the allowed module and name swapped across entries, another case). */
static const char *const REFUSED_GLOBALS[][2] = {
    {"os", "system"},
    {"posix", "system"},
    {"nt", "system"},
    {"builtins", "eval"},
    {"builtins", "exec"},
    {"builtins", "getattr"},
    {"builtins", "__import__"},
    {"builtins", "set"},
    {"builtins", "dict"},
    {"__builtin__", "eval"},
    {"subprocess", "Popen"},
    {"subprocess", "check_output"},
    {"_codecs", "encode"},
    {"copyreg", "_reconstructor"},
    {"functools", "partial"},
    {"torch.nn.modules.conv", "Conv2d"},
    {"torch.nn.parameter", "Parameter"},
    {"__main__", "Net"},
    {"collections", "defaultdict"},
    {"collections", "Counter"},
    {"collections", "OrderedDictX"},
    {"collections", "OrderedDic"},
    {"collection", "OrderedDict"},
    {"collectionsX", "OrderedDict"},
    {"Collections", "OrderedDict"},
    {"collections", "ordereddict"},
    {"torch", "OrderedDict"},
    {"collections", "FloatStorage"},
    {"torch._utils", "_rebuild_tensor"},
    {"torch._utils", "_rebuild_tensor_v"},
    {"torch._utils", "_rebuild_tensor_v3"},
    {"torch._utils", "_rebuild_parameter_with_state"},
    {"torch._utils", "_rebuild_qtensor"},
    {"torch._utils", "_rebuild_sparse_tensor"},
    {"torch._utils", "_rebuild_device_tensor_from_numpy"},
    {"torch._utils", "_rebuild_meta_tensor_no_storage"},
    {"torch._utils", "FloatStorage"},
    {"torch._util", "_rebuild_tensor_v2"},
    {"torch", "_rebuild_tensor_v2"},
    {"torch._tensor", "_rebuild_from_type_v2"},
    {"torch", "FloatStorageX"},
    {"torch", "FloatStorag"},
    {"torch", "floatstorage"},
    {"torch", "Storage"},
    {"torch", "UntypedStorage"},
    {"torch", "TypedStorage"},
    {"torch.storage", "_load_from_bytes"},
    {"torch.cuda", "FloatStorage"},
    {"torchX", "FloatStorage"},
    {"torch", "Tensor"},
    {"torch", "Size"},
    {"torch", "device"},
    {"torch", "load"},
    {"numpy.core.multiarray", "_reconstruct"},
    {"numpy.core.multiarray", "scalar"},
    {"numpy", "ndarray"},
    {"numpy", "dtype"},
};

/* True when msg contains `module.name` as a whole dotted name (not inside a longer one, so that
 * "torch._utils._rebuild_tensor" is not found in "torch._utils._rebuild_tensor_v2"). */
static bool names_global(const char *msg, const char *module, const char *name)
{
    char full[256];
    snprintf(full, sizeof full, "%s.%s", module, name);
    size_t n = strlen(full);
    for (const char *p = strstr(msg, full); p; p = strstr(p + 1, full)) {
        char before = p == msg ? ' ' : p[-1], after = p[n];
        bool word_before = before == '.' || before == '_' || (before >= '0' && before <= '9') ||
                           (before >= 'A' && before <= 'Z') || (before >= 'a' && before <= 'z');
        bool word_after = after == '.' || after == '_' || (after >= '0' && after <= '9') || (after >= 'A' && after <= 'Z') ||
                          (after >= 'a' && after <= 'z');
        if (!word_before && !word_after)
            return true;
    }
    return false;
}

/* pickle protocol 4's STACK_GLOBAL: module and name as strings on the stack. */
static void pk_stack_global(relate_pkw *w, const char *module, const char *name)
{
    relate_pkw_str(w, module);
    relate_pkw_str(w, name);
    relate_pkw_op(w, 0x93);
}

static void pk_begin_top(relate_pkw *w)
{
    relate_pkw_init(w);
    relate_pkw_proto(w);
    relate_pkw_empty_dict(w);
    relate_pkw_mark(w);
}

static void pk_end_top(relate_pkw *w)
{
    relate_pkw_op(w, RELATE_PKW_SETITEMS);
    relate_pkw_op(w, RELATE_PKW_STOP);
}

/* Opens `path` expecting success; returns the checkpoint or NULL (a failed check). */
static relate_ckpt *expect_open_ok(const char *path, const char *what)
{
    relate_ckpt *c = NULL;
    relate_error err = {0};
    CHECK_MSG(relate_ckpt_open(&c, path, &err) == RELATE_OK, "%s: refused: %s", what, err.msg);
    return c;
}

/* Opens `path` expecting the refusal of module.name: RELATE_ERR_FORMAT, nothing returned, a
 * message naming the file and the global. */
static void expect_refused(const char *path, const char *module, const char *name, const char *how)
{
    relate_ckpt *c = NULL;
    relate_error err = {0};
    relate_status st = relate_ckpt_open(&c, path, &err);
    const char *base = strrchr(path, '/') + 1;
    CHECK_MSG(st == RELATE_ERR_FORMAT && c == NULL, "%s.%s (%s) was not refused: status %d, %s", module, name, how,
              (int)st, err.msg);
    CHECK_MSG(names_global(err.msg, module, name) && strstr(err.msg, base),
              "refusing %s.%s (%s): the message does not name the global and the file: %s", module, name, how, err.msg);
    relate_ckpt_close(c);
}

void test_allow_list(void)
{
    relate_pkw w;
    relate_error err = {0};
    /* (a) every global of the list opens. Each storage class, in a tensor of three ones. */
    size_t nstorages = sizeof ALLOWED_STORAGES / sizeof *ALLOWED_STORAGES;
    for (size_t k = 0; k < nstorages; k++) {
        uint8_t data[24];
        for (int e = 0; e < 3; e++)
            memcpy(data + e * ALLOWED_STORAGES[k].elsize, ALLOWED_STORAGES[k].one, (size_t)ALLOWED_STORAGES[k].elsize);
        pk_begin_top(&w);
        relate_pkw_str(&w, "t");
        pk_tensor(&w, ALLOWED_STORAGES[k].storage, "0", "cpu", 3, false, 0, 1, (int64_t[]){3}, (int64_t[]){1});
        pk_end_top(&w);
        const void *blobs[1] = {data};
        size_t sizes[1] = {(size_t)(3 * ALLOWED_STORAGES[k].elsize)};
        const char *path = path_of("allowed_storage.pt");
        write_torch_zip(path, &w, blobs, sizes, 1);
        relate_pkw_free(&w);
        relate_ckpt *c = expect_open_ok(path, ALLOWED_STORAGES[k].storage);
        relate_ckpt_tensor t = {0};
        if (c) {
            CHECK_MSG(relate_ckpt_get_tensor(c, "t", &t, &err) == RELATE_OK && t.numel == 3 &&
                          strcmp(t.dtype, ALLOWED_STORAGES[k].dtype) == 0 &&
                          (t.is_int ? t.i64[0] == 1 && t.i64[2] == 1 : t.f32[0] == 1.0f && t.f32[2] == 1.0f),
                      "torch.%s: %s (dtype %s)", ALLOWED_STORAGES[k].storage, err.msg, t.dtype);
            relate_ckpt_tensor_free(&t);
        }
        relate_ckpt_close(c);
    }
    /* collections.OrderedDict alone (an empty state dict), by GLOBAL and by STACK_GLOBAL. */
    for (int stack = 0; stack < 2; stack++) {
        pk_begin_top(&w);
        relate_pkw_str(&w, "sd");
        if (stack)
            pk_stack_global(&w, "collections", "OrderedDict");
        else
            relate_pkw_global(&w, "collections", "OrderedDict");
        relate_pkw_tuple_end(&w, 0);
        relate_pkw_op(&w, RELATE_PKW_REDUCE);
        pk_end_top(&w);
        write_torch_zip(path_of("allowed_odict.pt"), &w, NULL, NULL, 0);
        relate_pkw_free(&w);
        relate_ckpt *c = expect_open_ok(path_of("allowed_odict.pt"), "collections.OrderedDict");
        CHECK(c && relate_ckpt_has(c, "sd"));
        relate_ckpt_close(c);
    }
    /* torch._utils._rebuild_parameter(tensor, requires_grad, backward_hooks), and
     * _rebuild_tensor_v2 named by STACK_GLOBAL. */
    {
        pk_begin_top(&w);
        relate_pkw_str(&w, "p");
        relate_pkw_global(&w, "torch._utils", "_rebuild_parameter");
        relate_pkw_tuple_begin(&w, 3);
        pk_tensor(&w, "FloatStorage", "0", "cpu", 12, false, 2, 1, (int64_t[]){3}, (int64_t[]){1});
        relate_pkw_bool(&w, true);
        relate_pkw_global(&w, "collections", "OrderedDict"); /* backward_hooks: OrderedDict() */
        relate_pkw_tuple_end(&w, 0);
        relate_pkw_op(&w, RELATE_PKW_REDUCE);
        relate_pkw_tuple_end(&w, 3);
        relate_pkw_op(&w, RELATE_PKW_REDUCE);
        relate_pkw_str(&w, "s");
        pk_stack_global(&w, "torch._utils", "_rebuild_tensor_v2");
        relate_pkw_tuple_begin(&w, 6);
        relate_pkw_tuple_begin(&w, 5);
        relate_pkw_str(&w, "storage");
        pk_stack_global(&w, "torch", "FloatStorage");
        relate_pkw_str(&w, "0");
        relate_pkw_str(&w, "cpu");
        relate_pkw_int(&w, 12);
        relate_pkw_tuple_end(&w, 5);
        relate_pkw_op(&w, RELATE_PKW_BINPERSID);
        relate_pkw_int(&w, 5);
        relate_pkw_tuple_begin(&w, 1);
        relate_pkw_int(&w, 2);
        relate_pkw_tuple_end(&w, 1);
        relate_pkw_tuple_begin(&w, 1);
        relate_pkw_int(&w, 1);
        relate_pkw_tuple_end(&w, 1);
        relate_pkw_bool(&w, false);
        pk_stack_global(&w, "collections", "OrderedDict");
        relate_pkw_tuple_end(&w, 0);
        relate_pkw_op(&w, RELATE_PKW_REDUCE);
        relate_pkw_tuple_end(&w, 6);
        relate_pkw_op(&w, RELATE_PKW_REDUCE);
        pk_end_top(&w);
        const void *blobs[1] = {storage12};
        size_t sizes[1] = {48};
        write_torch_zip(path_of("allowed_param.pt"), &w, blobs, sizes, 1);
        relate_pkw_free(&w);
        relate_ckpt *c = expect_open_ok(path_of("allowed_param.pt"), "torch._utils._rebuild_parameter");
        relate_ckpt_tensor t = {0};
        if (c) {
            CHECK_MSG(relate_ckpt_get_tensor(c, "p", &t, &err) == RELATE_OK && t.numel == 3 && t.f32[0] == 2.0f &&
                          t.f32[2] == 4.0f,
                      "a parameter: %s", err.msg);
            relate_ckpt_tensor_free(&t);
            CHECK_MSG(relate_ckpt_get_tensor(c, "s", &t, &err) == RELATE_OK && t.numel == 2 && t.f32[1] == 6.0f,
                      "STACK_GLOBAL names: %s", err.msg);
            relate_ckpt_tensor_free(&t);
        }
        relate_ckpt_close(c);
    }

    /* (b) every other global is refused wherever it appears, naming it: called as a value (GLOBAL
     * and STACK_GLOBAL, zip and legacy files), and as the storage class of a tensor. */
    size_t nrefused = sizeof REFUSED_GLOBALS / sizeof *REFUSED_GLOBALS;
    for (size_t k = 0; k < nrefused; k++) {
        const char *module = REFUSED_GLOBALS[k][0], *name = REFUSED_GLOBALS[k][1];
        for (int how = 0; how < 4; how++) {
            static const char *const hows[4] = {"GLOBAL in a zip", "STACK_GLOBAL in a zip", "GLOBAL in a legacy file",
                                                "storage class of a tensor"};
            pk_begin_top(&w);
            relate_pkw_str(&w, "epoch");
            relate_pkw_int(&w, 3);
            relate_pkw_str(&w, "x");
            if (how == 3) {
                pk_tensor(&w, name, "0", "cpu", 12, false, 0, 1, (int64_t[]){12}, (int64_t[]){1});
                /* pk_tensor names torch.<name>; the storage's module is replaced below. */
            } else {
                if (how == 1)
                    pk_stack_global(&w, module, name);
                else
                    relate_pkw_global(&w, module, name);
                relate_pkw_str(&w, "echo pwned");
                relate_pkw_tuple_end(&w, 1);
                relate_pkw_op(&w, RELATE_PKW_REDUCE);
            }
            pk_end_top(&w);
            if (how == 3) {
                /* Rewrite "ctorch\n<name>\n" into "c<module>\n<name>\n" in the emitted bytes. */
                relate_pkw w2;
                relate_pkw_init(&w2);
                char needle[160];
                snprintf(needle, sizeof needle, "ctorch\n%s\n", name);
                uint8_t *hit = NULL;
                for (size_t i = 0; i + strlen(needle) <= w.len && !hit; i++)
                    if (memcmp(w.buf + i, needle, strlen(needle)) == 0)
                        hit = w.buf + i;
                CHECK(hit != NULL);
                if (hit) {
                    for (const uint8_t *b = w.buf; b < hit; b++)
                        relate_pkw_op(&w2, *b);
                    relate_pkw_global(&w2, module, name);
                    for (const uint8_t *b = hit + strlen(needle); b < w.buf + w.len; b++)
                        relate_pkw_op(&w2, *b);
                }
                relate_pkw_free(&w);
                w = w2;
            }
            const char *path = path_of("refused_global.pt");
            const void *blobs[1] = {storage12};
            size_t sizes[1] = {48};
            if (how == 2)
                write_legacy(path, &w, NULL, NULL, NULL, NULL, 0);
            else
                write_torch_zip(path, &w, blobs, sizes, how == 3 ? 1 : 0);
            relate_pkw_free(&w);
            expect_refused(path, module, name, hows[how]);
        }
    }
    /* A whole model (torch.save(model)) gets the hint to save its state_dict instead. */
    relate_ckpt *c = NULL;
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    relate_pkw_global(&w, "__main__", "Net");
    relate_pkw_tuple_end(&w, 0);
    relate_pkw_op(&w, 0x81); /* NEWOBJ */
    relate_pkw_op(&w, RELATE_PKW_STOP);
    write_torch_zip(path_of("main_net.pt"), &w, NULL, NULL, 0);
    relate_pkw_free(&w);
    memset(&err, 0, sizeof err);
    CHECK(relate_ckpt_open(&c, path_of("main_net.pt"), &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "state_dict()") && names_global(err.msg, "__main__", "Net"), "%s", err.msg);
    relate_ckpt_close(c);
    printf("allow-list: %zu storage classes, OrderedDict, _rebuild_tensor_v2 and _rebuild_parameter open; "
           "%zu other globals refused in 4 positions each\n",
           nstorages, nrefused);
}
