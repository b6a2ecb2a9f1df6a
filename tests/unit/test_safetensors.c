/* test_safetensors.c: the safetensors reader and writer on valid, truncated and corrupt files.
 * Not a test of any tensor's meaning: only of the container. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relate/safetensors.h"
#include "test_util.h"

static char dir[] = "/tmp/relate_st_XXXXXX";

static void path_of(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

static void write_raw(const char *path, const char *header, const void *data, size_t nbytes)
{
    FILE *f = fopen(path, "wb");
    uint64_t len = strlen(header);
    unsigned char l8[8];
    for (int i = 0; i < 8; i++)
        l8[i] = (unsigned char)(len >> (8 * i));
    fwrite(l8, 1, 8, f);
    fwrite(header, 1, len, f);
    if (nbytes)
        fwrite(data, 1, nbytes, f);
    fclose(f);
}

static relate_status open_status(const char *name, relate_error *err)
{
    char p[512];
    path_of(p, sizeof p, name);
    relate_safetensors st;
    memset(err, 0, sizeof *err);
    relate_status s = relate_safetensors_open(&st, p, err);
    if (s == RELATE_OK)
        relate_safetensors_close(&st);
    return s;
}

static void check_roundtrip(void)
{
    float a[6] = {1, 2, 3, 4, 5, 6};
    int64_t b[1] = {42};
    int64_t sa[2] = {2, 3};
    relate_st_entry entries[] = {{"layer1.conv.weight", "F32", 2, sa, a}, {"bn.num_batches_tracked", "I64", 0, NULL, b}};
    const char *meta[] = {"format", "pt"};
    char p[512];
    path_of(p, sizeof p, "ok.safetensors");
    relate_error err = {0};
    CHECK(relate_safetensors_write(p, entries, 2, meta, 1, &err) == RELATE_OK);
    CHECK(access(p, F_OK) == 0);
    relate_safetensors st;
    CHECK(relate_safetensors_open(&st, p, &err) == RELATE_OK);
    const relate_st_tensor *t = relate_safetensors_find(&st, "layer1.conv.weight");
    CHECK(t && t->ndim == 2 && t->shape[1] == 3 && memcmp(t->data, a, sizeof a) == 0 && ((uintptr_t)t->data % 8) == 0);
    t = relate_safetensors_find(&st, "bn.num_batches_tracked");
    CHECK(t && t->ndim == 0 && t->numel == 1 && *(const int64_t *)t->data == 42);
    CHECK(relate_safetensors_find(&st, "missing") == NULL);
    CHECK(relate_safetensors_meta(&st, "format") && strcmp(relate_safetensors_meta(&st, "format"), "pt") == 0);
    relate_safetensors_close(&st);
}

static void check_broken(void)
{
    char p[512];
    relate_error err;
    float data[4] = {0};
    path_of(p, sizeof p, "tiny");
    FILE *f = fopen(p, "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    CHECK(open_status("tiny", &err) == RELATE_ERR_FORMAT);

    path_of(p, sizeof p, "hugelen");
    f = fopen(p, "wb");
    unsigned char l8[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    fwrite(l8, 1, 8, f);
    fwrite("{}", 1, 2, f);
    fclose(f);
    CHECK(open_status("hugelen", &err) == RELATE_ERR_FORMAT);
    CHECK(strstr(err.msg, "hugelen") != NULL);

    path_of(p, sizeof p, "badjson");
    write_raw(p, "{\"a\": [", NULL, 0);
    CHECK(open_status("badjson", &err) == RELATE_ERR_FORMAT);

    path_of(p, sizeof p, "outside");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", data, 8);
    CHECK(open_status("outside", &err) == RELATE_ERR_FORMAT);
    CHECK(strstr(err.msg, "truncated") != NULL);

    path_of(p, sizeof p, "mismatch");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", data, 16);
    CHECK(open_status("mismatch", &err) == RELATE_ERR_FORMAT);

    path_of(p, sizeof p, "dtype");
    write_raw(p, "{\"a\":{\"dtype\":\"Q7\",\"shape\":[4],\"data_offsets\":[0,16]}}", data, 16);
    CHECK(open_status("dtype", &err) == RELATE_ERR_FORMAT);

    path_of(p, sizeof p, "negshape");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", data, 16);
    CHECK(open_status("negshape", &err) == RELATE_ERR_FORMAT);

    path_of(p, sizeof p, "notobj");
    write_raw(p, "[1,2]", NULL, 0);
    CHECK(open_status("notobj", &err) == RELATE_ERR_FORMAT);

    CHECK(open_status("does_not_exist", &err) == RELATE_ERR_IO);

    /* Writing into a missing folder fails cleanly and leaves nothing behind. */
    relate_error werr = {0};
    int64_t s1[1] = {4};
    relate_st_entry e = {"a", "F32", 1, s1, data};
    CHECK(relate_safetensors_write("/nonexistent_dir_relate/x.safetensors", &e, 1, NULL, 0, &werr) == RELATE_ERR_IO);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    check_roundtrip();
    check_broken();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return relate_test_finish();
}
