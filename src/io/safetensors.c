/* safetensors.c: the safetensors reader and writer (JSON header through jansson).
 * Not lenient: any header that does not describe exactly the bytes in the file is refused. */
#define _POSIX_C_SOURCE 200809L
#include "relate/safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "io/atomic_file.h"

/* A sanity bound on header size: real headers are kilobytes; a huge value means corruption. */
#define ST_MAX_HEADER (100u << 20)

size_t relate_st_dtype_size(const char *dtype)
{
    static const struct { const char *name; size_t size; } table[] = {
        {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
        {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"U16", 2}, {"U32", 4}, {"U64", 8}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(dtype, table[i].name) == 0)
            return table[i].size;
    return 0;
}

static uint64_t read_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void relate_safetensors_close(relate_safetensors *st)
{
    for (int i = 0; i < st->count; i++)
        free(st->tensors[i].name);
    for (int i = 0; i < st->meta_count; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    free(st->tensors);
    free(st->buf);
    memset(st, 0, sizeof *st);
}

static relate_status parse_meta(relate_safetensors *st, json_t *meta, relate_error *err)
{
    if (!json_is_object(meta))
        return relate_error_set(err, RELATE_ERR_FORMAT, "safetensors: __metadata__ is not an object");
    size_t n = json_object_size(meta);
    st->meta_keys = calloc(n ? n : 1, sizeof(char *));
    st->meta_values = calloc(n ? n : 1, sizeof(char *));
    if (!st->meta_keys || !st->meta_values)
        return relate_error_set(err, RELATE_ERR_NOMEM, "safetensors: out of memory");
    const char *key;
    json_t *value;
    json_object_foreach(meta, key, value) {
        if (!json_is_string(value))
            return relate_error_set(err, RELATE_ERR_FORMAT,
                                    "safetensors: metadata value of '%s' is not a string", key);
        st->meta_keys[st->meta_count] = strdup(key);
        st->meta_values[st->meta_count] = strdup(json_string_value(value));
        st->meta_count++;
    }
    return RELATE_OK;
}

static relate_status parse_tensor(relate_st_tensor *t, const char *name, json_t *desc,
                                  size_t data_size, relate_error *err)
{
    json_t *dtype = json_object_get(desc, "dtype");
    json_t *shape = json_object_get(desc, "shape");
    json_t *offsets = json_object_get(desc, "data_offsets");
    if (!json_is_string(dtype) || !json_is_array(shape) || !json_is_array(offsets) ||
        json_array_size(offsets) != 2)
        return relate_error_set(err, RELATE_ERR_FORMAT,
                                "safetensors: tensor '%s' lacks dtype, shape or data_offsets", name);
    size_t esize = relate_st_dtype_size(json_string_value(dtype));
    if (!esize || strlen(json_string_value(dtype)) >= sizeof t->dtype)
        return relate_error_set(err, RELATE_ERR_FORMAT, "safetensors: tensor '%s' has unknown dtype %s",
                                name, json_string_value(dtype));
    strcpy(t->dtype, json_string_value(dtype));
    if (json_array_size(shape) > RELATE_ST_MAX_DIMS)
        return relate_error_set(err, RELATE_ERR_FORMAT, "safetensors: tensor '%s' has too many dims", name);
    t->ndim = (int)json_array_size(shape);
    t->numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        json_t *dim = json_array_get(shape, (size_t)d);
        if (!json_is_integer(dim) || json_integer_value(dim) < 0 ||
            json_integer_value(dim) > ((int64_t)1 << 40))
            return relate_error_set(err, RELATE_ERR_FORMAT, "safetensors: tensor '%s' has a bad shape", name);
        t->shape[d] = json_integer_value(dim);
        t->numel *= t->shape[d];
        if (t->numel > ((int64_t)1 << 40))
            return relate_error_set(err, RELATE_ERR_FORMAT, "safetensors: tensor '%s' is too large", name);
    }
    json_t *b = json_array_get(offsets, 0), *e = json_array_get(offsets, 1);
    if (!json_is_integer(b) || !json_is_integer(e))
        return relate_error_set(err, RELATE_ERR_FORMAT, "safetensors: tensor '%s' has bad offsets", name);
    json_int_t begin = json_integer_value(b), end = json_integer_value(e);
    if (begin < 0 || end < begin || (size_t)end > data_size)
        return relate_error_set(err, RELATE_ERR_FORMAT,
                                "safetensors: tensor '%s' lies outside the file (truncated?)", name);
    if ((uint64_t)(end - begin) != (uint64_t)t->numel * esize)
        return relate_error_set(err, RELATE_ERR_FORMAT,
                                "safetensors: tensor '%s' has %lld bytes but its shape needs %lld", name,
                                (long long)(end - begin), (long long)(t->numel * (int64_t)esize));
    t->nbytes = (size_t)(end - begin);
    t->name = strdup(name);
    return t->name ? RELATE_OK : relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
}

relate_status relate_safetensors_parse(relate_safetensors *st, unsigned char *buf, size_t size,
                                       relate_error *err)
{
    memset(st, 0, sizeof *st);
    st->buf = buf;
    st->size = size;
    if (size < 8) {
        relate_safetensors_close(st);
        return relate_error_set(err, RELATE_ERR_FORMAT, "safetensors: file shorter than its 8-byte header");
    }
    uint64_t hlen = read_le64(buf);
    if (hlen > ST_MAX_HEADER || hlen > size - 8) {
        relate_safetensors_close(st);
        return relate_error_set(err, RELATE_ERR_FORMAT,
                                "safetensors: header length %llu does not fit the file (truncated or not safetensors)",
                                (unsigned long long)hlen);
    }
    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)hlen, 0, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        relate_safetensors_close(st);
        return relate_error_set(err, RELATE_ERR_FORMAT, "safetensors: header is not a JSON object (%s)",
                                jerr.text);
    }
    size_t data_start = 8 + (size_t)hlen, data_size = size - data_start;
    st->tensors = calloc(json_object_size(root) + 1, sizeof *st->tensors);
    relate_status s = st->tensors ? RELATE_OK : relate_error_set(err, RELATE_ERR_NOMEM, "out of memory");
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (s != RELATE_OK)
            break;
        if (strcmp(key, "__metadata__") == 0) {
            s = parse_meta(st, value, err);
            continue;
        }
        relate_st_tensor *t = &st->tensors[st->count];
        s = parse_tensor(t, key, value, data_size, err);
        if (s == RELATE_OK) {
            size_t begin = (size_t)json_integer_value(json_array_get(json_object_get(value, "data_offsets"), 0));
            t->data = buf + data_start + begin;
            st->count++;
        } else {
            free(t->name);
            t->name = NULL;
        }
    }
    json_decref(root);
    if (s != RELATE_OK)
        relate_safetensors_close(st);
    return s;
}

relate_status relate_safetensors_open(relate_safetensors *st, const char *path, relate_error *err)
{
    memset(st, 0, sizeof *st);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return relate_error_set(err, RELATE_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    unsigned char *buf = NULL;
    long len = -1;
    if (fseek(fp, 0, SEEK_END) == 0)
        len = ftell(fp);
    if (len < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return relate_error_set(err, RELATE_ERR_IO, "cannot determine the size of %s", path);
    }
    /* Round up so the data that follows an 8-aligned header stays readable as doubles. */
    buf = malloc((size_t)len + 8);
    if (!buf) {
        fclose(fp);
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory reading %s", path);
    }
    size_t got = fread(buf, 1, (size_t)len, fp);
    fclose(fp);
    if (got != (size_t)len) {
        free(buf);
        return relate_error_set(err, RELATE_ERR_IO, "short read on %s", path);
    }
    relate_status s = relate_safetensors_parse(st, buf, (size_t)len, err);
    if (s != RELATE_OK && err) {
        char tmp[sizeof err->msg];
        snprintf(tmp, sizeof tmp, "%.200s: %.300s", path, err->msg);
        strcpy(err->msg, tmp);
    }
    return s;
}

const relate_st_tensor *relate_safetensors_find(const relate_safetensors *st, const char *name)
{
    for (int i = 0; i < st->count; i++)
        if (strcmp(st->tensors[i].name, name) == 0)
            return &st->tensors[i];
    return NULL;
}

const char *relate_safetensors_meta(const relate_safetensors *st, const char *key)
{
    for (int i = 0; i < st->meta_count; i++)
        if (strcmp(st->meta_keys[i], key) == 0)
            return st->meta_values[i];
    return NULL;
}

relate_status relate_safetensors_write(const char *path, const relate_st_entry *entries, int count,
                                       const char *const *meta_kv, int meta_count,
                                       relate_error *err)
{
    json_t *root = json_object();
    size_t offset = 0;
    if (meta_count > 0) {
        json_t *meta = json_object();
        for (int i = 0; i < meta_count; i++)
            json_object_set_new(meta, meta_kv[2 * i], json_string(meta_kv[2 * i + 1]));
        json_object_set_new(root, "__metadata__", meta);
    }
    for (int i = 0; i < count; i++) {
        const relate_st_entry *e = &entries[i];
        size_t esize = relate_st_dtype_size(e->dtype);
        if (!esize) {
            json_decref(root);
            return relate_error_set(err, RELATE_ERR_ARG, "safetensors: unknown dtype %s", e->dtype);
        }
        json_t *shape = json_array();
        size_t numel = 1;
        for (int d = 0; d < e->ndim; d++) {
            json_array_append_new(shape, json_integer(e->shape[d]));
            numel *= (size_t)e->shape[d];
        }
        json_t *desc = json_object();
        json_object_set_new(desc, "dtype", json_string(e->dtype));
        json_object_set_new(desc, "shape", shape);
        json_t *offs = json_array();
        json_array_append_new(offs, json_integer((json_int_t)offset));
        json_array_append_new(offs, json_integer((json_int_t)(offset + numel * esize)));
        json_object_set_new(desc, "data_offsets", offs);
        json_object_set_new(root, e->name, desc);
        offset += numel * esize;
    }
    char *header = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!header)
        return relate_error_set(err, RELATE_ERR_NOMEM, "safetensors: cannot encode header");
    size_t hlen = strlen(header), padded = (hlen + 7) & ~(size_t)7; /* keep data 8-aligned */
    relate_atomic_file f;
    if (relate_atomic_open(&f, path, err) != RELATE_OK) {
        free(header);
        return err ? err->code : RELATE_ERR_IO;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    fwrite(len8, 1, 8, f.fp);
    fwrite(header, 1, hlen, f.fp);
    for (size_t i = hlen; i < padded; i++)
        fputc(' ', f.fp);
    free(header);
    for (int i = 0; i < count; i++) {
        size_t numel = 1;
        for (int d = 0; d < entries[i].ndim; d++)
            numel *= (size_t)entries[i].shape[d];
        fwrite(entries[i].data, relate_st_dtype_size(entries[i].dtype), numel, f.fp);
    }
    return relate_atomic_commit(&f, err);
}
