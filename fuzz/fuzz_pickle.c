/* fuzz_pickle.c: libFuzzer harness of the restricted unpickler (src/io/pickle.c).
 * Each input is parsed with the union of the allow-lists the library uses (the checkpoint
 * reader's CK_ALLOW, the CIFAR reader's numpy globals, and _codecs.encode of protocol-2 bytes),
 * then chained pickles after STOP are parsed too (torch's legacy files chain five). Every node of
 * the result is walked and its bytes read; every CALL goes through relate_pk_as_ndarray.
 * Seeds: CIFAR batch and meta pickles, Python's own protocol 2/4 pickles, the data.pkl of
 * relate's checkpoints and whole legacy checkpoints. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "io/pickle.h"
#include "io/zip_stored.h"
#include "seeds.h"

/* checkpoint_open.c's CK_ALLOW (static there), read_cifar.c's numpy list and _codecs.encode */
static const relate_pk_global k_allow[] = {
    {"collections", "OrderedDict"},     {"torch._utils", "_rebuild_tensor_v2"},
    {"torch._utils", "_rebuild_parameter"}, {"torch", "FloatStorage"},
    {"torch", "DoubleStorage"},         {"torch", "HalfStorage"},
    {"torch", "BFloat16Storage"},       {"torch", "LongStorage"},
    {"torch", "IntStorage"},            {"torch", "ShortStorage"},
    {"torch", "CharStorage"},           {"torch", "ByteStorage"},
    {"torch", "BoolStorage"},           {"numpy.core.multiarray", "_reconstruct"},
    {"numpy", "ndarray"},               {"numpy", "dtype"},
    {"_codecs", "encode"},              {NULL, NULL}};

static const char *const k_keys[] = {"data", "labels", "fine_labels", "coarse_labels", "label_names", "state",
                                     "param_groups", "backbone", "little_endian", "a", ""};

static void walk(const relate_pk_value *v, int depth, long *budget)
{
    if (!v || depth > 300 || --*budget < 0)
        return;
    relate_pk_kind_name(v->kind);
    switch (v->kind) {
    case RELATE_PK_STR:
        fz_touch(v->s, v->len + 1); /* NUL-terminated copy */
        break;
    case RELATE_PK_BYTES:
        fz_touch(v->s, v->len);
        break;
    case RELATE_PK_GLOBAL:
        fz_touch(v->s, strlen(v->s));
        fz_touch(v->name, strlen(v->name));
        break;
    case RELATE_PK_LIST:
    case RELATE_PK_TUPLE:
    case RELATE_PK_DICT: {
        int64_t n = v->kind == RELATE_PK_DICT ? 2 * v->count : v->count;
        /* The budget counts work, not visits: memo references (BINGET, DUP) make a container
         * hold itself many times over, and each visit of it would scan all its items again. */
        *budget -= v->kind == RELATE_PK_DICT ? n + (int64_t)(sizeof k_keys / sizeof k_keys[0]) * v->count : n;
        if (*budget < 0)
            return;
        for (int64_t k = 0; k < n; k++)
            walk(v->items[k], depth + 1, budget);
        if (v->kind == RELATE_PK_DICT)
            for (size_t k = 0; k < sizeof k_keys / sizeof k_keys[0]; k++)
                walk(relate_pk_dict_get(v, k_keys[k]), depth + 1, budget);
        break;
    }
    case RELATE_PK_CALL: {
        walk(v->func, depth + 1, budget);
        walk(v->args, depth + 1, budget);
        walk(v->state, depth + 1, budget);
        walk(v->dict_items, depth + 1, budget);
        walk(v->list_items, depth + 1, budget);
        relate_pk_ndarray a;
        relate_error err = {0};
        if (relate_pk_as_ndarray(v, &a, &err) == RELATE_OK) {
            fz_touch(a.data, a.nbytes);
            fz_debug("ndarray: %c%d, %d dims, %zu bytes", a.kind, a.itemsize, a.ndim, a.nbytes);
        }
        relate_pk_is_call_of(v, "collections", "OrderedDict");
        if (v->dict_items)
            relate_pk_dict_get(v, "data");
        break;
    }
    case RELATE_PK_PERSID:
        walk(v->pid, depth + 1, budget);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    for (int round = 0; round < 6 && pos < size; round++) {
        relate_pickle pk;
        relate_error err = {0};
        if (relate_pickle_load(&pk, data + pos, size - pos, k_allow, &err) != RELATE_OK) {
            fz_debug("pickle %d at %zu: %s", round, pos, err.msg);
            break;
        }
        fz_debug("pickle %d at %zu: OK, %s, end %zu", round, pos, relate_pk_kind_name(pk.root->kind), pk.end);
        long budget = 1 << 20;
        walk(pk.root, 0, &budget);
        relate_pk_is_global(pk.root, "numpy", "ndarray");
        size_t end = pk.end;
        relate_pickle_free(&pk);
        if (end == 0 || end > size - pos)
            break;
        pos += end;
    }
    return 0;
}

/* ------------------------------------------------------------------ seeds */
static void ckpt_pickles(const char *name, const uint8_t *bytes, size_t n, void *ctx)
{
    const char *dir = ctx;
    relate_zip_reader z;
    relate_error err = {0};
    if (n >= 4 && memcmp(bytes, "PK", 2) == 0) {
        if (relate_zip_reader_open(&z, bytes, n, &err) != RELATE_OK)
            return;
        const relate_zip_entry *e = relate_zip_reader_find(&z, "archive/data.pkl");
        if (e && e->size < 200000)
            fz_seed(dir, fz_path("data_pkl_%s", name), bytes + e->data_offset, (size_t)e->size);
        relate_zip_reader_free(&z);
    } else if (n > 15 && n < 200000) {
        /* the chain of pickles after the magic number (a LONG1 wider than 64 bits, which the
         * checkpoint reader matches as bytes), then the raw storages */
        fz_seed(dir, fz_path("legacy_%s", name), bytes + 15, n - 15);
    }
}

static int write_seeds(const char *dir)
{
    fz_buf b = {0};
    sd_cifar_pickle(&b, 1, 2, false);
    fz_seed(dir, "cifar10_batch.pkl", b.p, b.n);
    fz_free(&b);
    sd_cifar_pickle(&b, 2, 1, true);
    fz_seed(dir, "cifar100_batch.pkl", b.p, b.n);
    fz_free(&b);
    sd_cifar_meta_pickle(&b, false);
    fz_seed(dir, "cifar10_meta.pkl", b.p, b.n);
    fz_free(&b);
    sd_cifar_meta_pickle(&b, true);
    fz_seed(dir, "cifar100_meta.pkl", b.p, b.n);
    fz_free(&b);
    /* A dict that holds itself 26 times over (memo BINGET, then DUP): the shape of a timeout
     * the harness's own walk once had (2026-12-05), kept as a seed so the corpus starts there. */
    static const char self_dict[] = "80027d7100285801000000616800"
                                    "32323232323232323232323232323232323232323232323232"
                                    "32323232323232323232323232323232323232323232323232"
                                    "752e";
    sd_unhex(self_dict, &b);
    fz_seed(dir, "self_referential_dict.pkl", b.p, b.n);
    fz_free(&b);
    for (int k = 0; sd_pickle_hex[k]; k++) {
        sd_unhex(sd_pickle_hex[k], &b);
        fz_seed(dir, fz_path("python_%d.pkl", k), b.p, b.n);
        fz_free(&b);
    }
    return sd_checkpoint_files(false, ckpt_pickles, (void *)dir) || sd_checkpoint_files(true, ckpt_pickles, (void *)dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_maybe_write_seeds(argc, argv, write_seeds);
    return 0;
}
