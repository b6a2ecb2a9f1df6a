/* fuzz_checkpoint.c: libFuzzer harness of the PyTorch checkpoint reader
 * (src/checkpoint/checkpoint_open.c and checkpoint_load.c, through include/relate/checkpoint.h). Built twice:
 * fuzz_checkpoint_zip (seeds in the zip format) and fuzz_checkpoint_legacy (-DFUZZ_CKPT_LEGACY:
 * the same objects in torch 1.4's legacy format); the code under test is the same, the reader
 * detects the format by content.
 * relate_ckpt_open takes a path: each input is written to one file of a per-process folder in
 * /dev/shm (the same name every run). A zip input that fails to open is opened a second time
 * with the CRC-32 of every entry recomputed, or mutated pickles would never get past the CRC
 * check. On success the harness reads the plain values of stage 1 (epoch, method,
 * backbone_name, lr), loads every state dict key the file has into a conv4 backbone, a small
 * store with every kind of entry and the views store of the hand-built seeds, restores Adam and
 * SGD built over the first two, and fetches tensors by path (each top key, and the paths the
 * seeds hold); every tensor returned is read in full. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "fuzz_common.h"
#include "relate/checkpoint.h"
#include "relate/nn.h"
#include "seeds.h"

#ifdef FUZZ_CKPT_LEGACY
#define FORMAT_LEGACY true
#define TAG "ckpt_legacy"
#else
#define FORMAT_LEGACY false
#define TAG "ckpt_zip"
#endif

static char g_path[4096];
static relate_backbone g_conv4;
static relate_params g_small, g_views;
static relate_param *g_conv4_prm[64], *g_small_prm[16];
static relate_param_group g_conv4_group, g_small_group;

static const char *const k_sd_keys[] = {"backbone", "classifier", "sd", "relation", "model", "state_dict"};
static const char *const k_adam_keys[] = {"optimizer", "optimizer_lineval", "optimizer_finetune"};
static const char *const k_sgd_keys[] = {"optimizer_sgd", "optimizer"};
static const char *const k_tensor_paths[] = {
    "backbone/layer1.conv.weight", "backbone/conv.weight", "backbone/bn.num_batches_tracked",
    "optimizer/state/0/exp_avg", "optimizer/state/1/exp_avg_sq", "optimizer/state/0/step",
    "optimizer_sgd/state/0/momentum_buffer", "optimizer/param_groups/0/params/0", "sd/rows", "sd/transposed",
    "sd/expanded", "sd/half", "sd/count", "bytes", "v", "conv.weight", "fc.weight", "0", "a/b/c/d/e/f/g/h"};

static void get_tensor(const relate_ckpt *c, const char *path)
{
    relate_ckpt_tensor t;
    relate_error err = {0};
    if (relate_ckpt_get_tensor(c, path, &t, &err) != RELATE_OK) {
        fz_debug("get_tensor %s: %s", path, err.msg);
        return;
    }
    fz_debug("get_tensor %s: OK %s, %lld elements", path, t.dtype, (long long)t.numel);
    fz_touch(t.dtype, sizeof t.dtype);
    if (t.numel > 0)
        fz_touch(t.is_int ? (const void *)t.i64 : (const void *)t.f32, (size_t)t.numel * (t.is_int ? 8 : 4));
    relate_ckpt_tensor_free(&t);
}

static void load_state_dicts(const relate_ckpt *c, relate_params *p)
{
    relate_error err = {0};
    relate_status st = relate_ckpt_load_state_dict(c, NULL, p, &err);
    fz_debug("load_state_dict(NULL) into %d entries: %s", p->count, st ? err.msg : "OK");
    for (size_t k = 0; k < sizeof k_sd_keys / sizeof k_sd_keys[0]; k++)
        if (relate_ckpt_has(c, k_sd_keys[k])) {
            memset(&err, 0, sizeof err);
            st = relate_ckpt_load_state_dict(c, k_sd_keys[k], p, &err);
            fz_debug("load_state_dict(%s) into %d entries: %s", k_sd_keys[k], p->count, st ? err.msg : "OK");
        }
}

static void load_optimizers(const relate_ckpt *c, relate_param_group *g)
{
    for (size_t k = 0; k < sizeof k_adam_keys / sizeof k_adam_keys[0]; k++) {
        if (!relate_ckpt_has(c, k_adam_keys[k]))
            continue;
        relate_adam o;
        relate_error err = {0};
        if (sd_adam(&o, g))
            abort();
        relate_status st = relate_ckpt_load_adam(c, k_adam_keys[k], &o, &err);
        fz_debug("load_adam(%s) over %d params: %s", k_adam_keys[k], g->count, st ? err.msg : "OK");
        if (st == RELATE_OK)
            for (int i = 0; i < o.nparams; i++)
                if (o.state[i].exp_avg) {
                    const relate_param *prm = g->params[i];
                    fz_touch(o.state[i].exp_avg, (size_t)prm->numel * 4);
                    fz_touch(o.state[i].exp_avg_sq, (size_t)prm->numel * 4);
                }
        relate_adam_free(&o);
    }
    for (size_t k = 0; k < sizeof k_sgd_keys / sizeof k_sgd_keys[0]; k++) {
        if (!relate_ckpt_has(c, k_sgd_keys[k]))
            continue;
        relate_sgd o;
        relate_error err = {0};
        if (sd_sgd(&o, g))
            abort();
        relate_status st = relate_ckpt_load_sgd(c, k_sgd_keys[k], &o, &err);
        fz_debug("load_sgd(%s) over %d params: %s", k_sgd_keys[k], g->count, st ? err.msg : "OK");
        if (st == RELATE_OK)
            for (int i = 0; i < o.nparams; i++)
                if (o.state[i].momentum_buffer)
                    fz_touch(o.state[i].momentum_buffer, (size_t)g->params[i]->numel * 4);
        relate_sgd_free(&o);
    }
}

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }
static void put_le32(uint8_t *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

/* Mutations of a zip checkpoint's data.pkl or storages almost never keep the CRC-32 right, so
 * the reader would refuse them before the unpickler sees them. This rewrites, in a copy, the
 * CRC of every entry of a plain (non-ZIP64) archive in its central and local headers. Returns
 * whether anything changed. Every offset comes from the input: all are bounds-checked. */
static bool fix_zip_crcs(uint8_t *b, size_t n)
{
    if (n < 22)
        return false;
    size_t end = n - 22, lowest = n > 22 + 0xffff ? n - 22 - 0xffff : 0;
    for (;; end--) {
        if (le32(b + end) == 0x06054b50u)
            break;
        if (end == lowest)
            return false;
    }
    uint32_t count = le16(b + end + 10), cd_size = le32(b + end + 12), cd_off = le32(b + end + 16);
    if (cd_off > n || cd_size > n - cd_off)
        return false;
    bool changed = false;
    size_t p = cd_off, cd_end = (size_t)cd_off + cd_size;
    for (uint32_t i = 0; i < count; i++) {
        if (cd_end - p < 46 || le32(b + p) != 0x02014b50u)
            break;
        uint32_t nlen = le16(b + p + 28), elen = le16(b + p + 30), clen = le16(b + p + 32);
        uint32_t csize = le32(b + p + 20), lho = le32(b + p + 42);
        if (lho > n || n - lho < 30 || le32(b + lho) != 0x04034b50u)
            break;
        size_t data = (size_t)lho + 30 + le16(b + lho + 26) + le16(b + lho + 28);
        if (data > n || csize > n - data)
            break;
        uint32_t crc = (uint32_t)crc32(0, b + data, csize);
        if (le32(b + p + 16) != crc || le32(b + lho + 14) != crc) {
            put_le32(b + p + 16, crc);
            put_le32(b + lho + 14, crc);
            changed = true;
        }
        if (cd_end - p < 46ull + nlen + elen + clen)
            break;
        p += 46 + nlen + elen + clen;
    }
    return changed;
}

/* Opens the file written at g_path; NULL on error. */
static relate_ckpt *open_input(void)
{
    relate_ckpt *c = NULL;
    relate_error err = {0};
    if (relate_ckpt_open(&c, g_path, &err) != RELATE_OK) {
        fz_debug("open: %s", err.msg);
        if (c)
            abort(); /* documented: *out is NULL on error */
        return NULL;
    }
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_write(g_path, data, size);
    relate_ckpt *c = open_input();
    if (!c && size >= 4 && memcmp(data, "PK", 2) == 0) {
        /* the same file with its CRCs right, so that mutations reach what lies beyond them */
        uint8_t *copy = malloc(size);
        if (!copy)
            return 0;
        memcpy(copy, data, size);
        if (fix_zip_crcs(copy, size)) {
            fz_debug("open: again with the CRCs fixed");
            fz_write(g_path, copy, size);
            c = open_input();
        }
        free(copy);
    }
    if (!c)
        return 0;
    relate_error err = {0};
    relate_ckpt_get_format(c);
    const char *keys = relate_ckpt_key_list(c);
    fz_debug("open: OK, format %d, keys: %s", (int)relate_ckpt_get_format(c), keys);
    size_t klen = strlen(keys);
    fz_touch(keys, klen);

    int64_t i64;
    double f64;
    const char *s;
    memset(&err, 0, sizeof err);
    relate_ckpt_get_int(c, "epoch", &i64, &err);
    memset(&err, 0, sizeof err);
    relate_ckpt_get_float(c, "lr", &f64, &err);
    memset(&err, 0, sizeof err);
    relate_ckpt_get_float(c, "epoch", &f64, &err);
    static const char *const strs[] = {"method", "backbone_name"};
    for (int k = 0; k < 2; k++) {
        memset(&err, 0, sizeof err);
        if (relate_ckpt_get_str(c, strs[k], &s, &err) == RELATE_OK) {
            fz_touch(s, strlen(s) + 1);
            fz_debug("get_str %s: %s", strs[k], s);
        }
    }

    load_state_dicts(c, &g_conv4.params);
    load_state_dicts(c, &g_small);
    load_state_dicts(c, &g_views);
    load_optimizers(c, &g_conv4_group);
    load_optimizers(c, &g_small_group);

    /* every top-level key as a path (the key list joins them with ", ") */
    char *copy = malloc(klen + 1);
    if (copy) {
        memcpy(copy, keys, klen + 1);
        int n = 0;
        for (char *p = copy; p && *p && n < 16; n++) {
            char *sep = strstr(p, ", ");
            if (sep)
                *sep = 0;
            get_tensor(c, p);
            get_tensor(c, fz_path("%s/0", p));
            p = sep ? sep + 2 : NULL;
        }
        free(copy);
    }
    for (size_t k = 0; k < sizeof k_tensor_paths / sizeof k_tensor_paths[0]; k++)
        get_tensor(c, k_tensor_paths[k]);
    relate_ckpt_close(c);
    return 0;
}

static int write_seeds(const char *dir) { return sd_checkpoint_seeds(dir, FORMAT_LEGACY); }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_maybe_write_seeds(argc, argv, write_seeds);
    snprintf(g_path, sizeof g_path, "%s/input.pt", fz_tmpdir(TAG));
    relate_error err = {0};
    if (relate_backbone_create(&g_conv4, "conv4", 1, &err) != RELATE_OK) {
        fprintf(stderr, "conv4: %s\n", err.msg);
        abort();
    }
    if (g_conv4.params.count > (int)(sizeof g_conv4_prm / sizeof g_conv4_prm[0]))
        abort();
    sd_small_store(&g_small);
    sd_views_store(&g_views);
    g_conv4_group = sd_group(&g_conv4.params, g_conv4_prm);
    g_small_group = sd_group(&g_small, g_small_prm);
    return 0;
}
