/* fuzz_safetensors.c: libFuzzer harness of the safetensors parser (src/io/safetensors.c).
 * relate_safetensors_parse takes ownership of a malloc'd buffer (it frees it on failure too), so
 * each input is copied into an exactly sized allocation first. On success every tensor is looked
 * up by name and its bytes read, and the metadata entries are read back.
 * Seeds: files from relate_safetensors_write (every dtype it is used with, scalars, empty
 * tensors, metadata) and a few hand-written headers. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "relate/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);
    relate_safetensors st;
    relate_error err = {0};
    if (relate_safetensors_parse(&st, buf, size, &err) != RELATE_OK) {
        fz_debug("safetensors: %s", err.msg);
        return 0; /* buf is freed by the parser */
    }
    fz_debug("safetensors: OK, %d tensors, %d metadata", st.count, st.meta_count);
    for (int i = 0; i < st.count; i++) {
        const relate_st_tensor *t = &st.tensors[i];
        const relate_st_tensor *f = relate_safetensors_find(&st, t->name);
        if (!f)
            abort(); /* a parsed tensor must be found by its own name */
        fz_touch(t->dtype, strlen(t->dtype));
        fz_touch(t->data, t->nbytes);
        size_t es = relate_st_dtype_size(t->dtype);
        if (es && t->numel >= 0 && (size_t)t->numel * es != t->nbytes)
            abort(); /* nbytes must be numel elements of the dtype */
    }
    for (int i = 0; i < st.meta_count; i++) {
        const char *v = relate_safetensors_meta(&st, st.meta_keys[i]);
        if (v)
            fz_touch(v, strlen(v) + 1);
    }
    relate_safetensors_find(&st, "conv_a.x");
    relate_safetensors_close(&st);
    return 0;
}

/* ------------------------------------------------------------------ seeds */
static int seed_from_writer(const char *dir, const char *tmp, const char *name, const relate_st_entry *e, int n,
                            const char *const *meta, int nmeta)
{
    const char *path = fz_path("%s/%s", tmp, name);
    relate_error err = {0};
    if (relate_safetensors_write(path, e, n, meta, nmeta, &err) != RELATE_OK) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        return 1;
    }
    size_t len = 0;
    uint8_t *b = fz_read(path, &len);
    if (!b)
        return 1;
    fz_seed(dir, name, b, len);
    free(b);
    remove(path);
    return 0;
}

static void hand_seed(const char *dir, const char *name, const char *json, const void *payload, size_t plen)
{
    fz_buf b = {0};
    size_t hl = strlen(json);
    for (int k = 0; k < 8; k++)
        fz_put_u8(&b, (int)((uint64_t)hl >> (8 * k)));
    fz_put(&b, json, hl);
    fz_put(&b, payload, plen);
    fz_seed(dir, name, b.p, b.n);
    fz_free(&b);
}

static int write_seeds(const char *dir)
{
    const char *tmp = fz_tmpdir("stseeds");
    static const float f32[6] = {1, -2, 3.5f, 0, 1e-3f, -7};
    static const double f64[2] = {0.25, -1e300};
    static const int64_t i64[3] = {1, -1, 1LL << 40};
    static const int32_t i32[2] = {7, -8};
    static const uint8_t u8[5] = {0, 1, 2, 254, 255};
    static const int8_t i8[2] = {-128, 127};
    static const uint16_t f16[2] = {0x3c00, 0xc100};
    int64_t s23[2] = {2, 3}, s2[1] = {2}, s3[1] = {3}, s5[1] = {5}, s0[2] = {0, 4}, s111[3] = {1, 1, 2};
    relate_st_entry all[] = {
        {"conv_a.x", "F32", 2, s23, f32},  {"b.f64", "F64", 1, s2, f64},   {"c.i64", "I64", 1, s3, i64},
        {"d.i32", "I32", 1, s2, i32},      {"e.u8", "U8", 1, s5, u8},      {"f.i8", "I8", 1, s2, i8},
        {"g.f16", "F16", 1, s2, f16},      {"h.scalar", "F32", 0, NULL, f32}, {"i.empty", "F32", 2, s0, f32},
        {"j.rank3", "I32", 3, s111, i32},
    };
    static const char *const meta[4] = {"format", "pt", "relate", "fuzz seed"};
    int rc = seed_from_writer(dir, tmp, "all_dtypes.safetensors", all, (int)(sizeof all / sizeof all[0]), meta, 2);
    rc = rc || seed_from_writer(dir, tmp, "one.safetensors", all, 1, NULL, 0);
    rc = rc || seed_from_writer(dir, tmp, "none.safetensors", all, 0, meta, 1);
    hand_seed(dir, "hand_min.safetensors", "{}", NULL, 0);
    hand_seed(dir, "hand_pad.safetensors",
              "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}       ", f32, 8);
    hand_seed(dir, "hand_meta.safetensors",
              "{\"__metadata__\":{\"a\":\"b\"},\"x\":{\"dtype\":\"U8\",\"shape\":[1,2],\"data_offsets\":[0,2]},"
              "\"y\":{\"dtype\":\"BOOL\",\"shape\":[],\"data_offsets\":[2,3]}}",
              u8, 3);
    return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_maybe_write_seeds(argc, argv, write_seeds);
    return 0;
}
