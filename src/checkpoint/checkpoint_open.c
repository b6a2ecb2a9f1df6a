/* checkpoint_open.c: relate/checkpoint.h's reader, the file: reads the zip and the legacy (PyTorch
 * <= 1.5) formats through the restricted unpickler, locates every storage its tensors use, names
 * what a file is when it is not a checkpoint, and answers questions about the top-level keys.
 * Not torch.load: only dicts, lists, tuples, plain values and tensors; nothing in a file is ever
 * executed, and a global beyond the allow-list below is refused. Not the decoding of tensors,
 * state dicts, optimizers and plain values (that is in checkpoint_load.c). */
#define _POSIX_C_SOURCE 200809L
#include "relate/checkpoint.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint/checkpoint_internal.h"
#include "io/pickle.h"
#include "io/zip_stored.h"

/* Everything a checkpoint may name: spec 8's list plus torch._utils._rebuild_parameter (an
 * nn.Parameter pickled directly; its data tensor is used). */
static const relate_pk_global CK_ALLOW[] = {
    {"collections", "OrderedDict"},     {"torch._utils", "_rebuild_tensor_v2"},
    {"torch._utils", "_rebuild_parameter"}, {"torch", "FloatStorage"},
    {"torch", "DoubleStorage"},         {"torch", "HalfStorage"},
    {"torch", "BFloat16Storage"},       {"torch", "LongStorage"},
    {"torch", "IntStorage"},            {"torch", "ShortStorage"},
    {"torch", "CharStorage"},           {"torch", "ByteStorage"},
    {"torch", "BoolStorage"},           {NULL, NULL}};

/* ------------------------------------------------------------------ persistent ids, storages */
relate_status relate_ckpt_parse_pid(const relate_ckpt *c, const relate_pk_value *pid, ck_pid *out, relate_error *err)
{
    memset(out, 0, sizeof *out);
    if (pid && pid->kind == RELATE_PK_TUPLE && pid->count >= 1 && text_eq(pid->items[0], "module"))
        return ck_fail(c, err, RELATE_ERR_FORMAT,
                       "holds a pickled module class (torch.save(model)); relate reads state dicts only: "
                       "save model.state_dict() instead");
    if (!pid || pid->kind != RELATE_PK_TUPLE || (pid->count != 5 && pid->count != 6) ||
        !text_eq(pid->items[0], "storage"))
        return ck_fail(c, err, RELATE_ERR_FORMAT,
                       "a persistent id is not a ('storage', type, key, location, size) tuple: corrupt or "
                       "not written by torch.save");
    const relate_pk_value *type = pid->items[1], *key = pid->items[2], *loc = pid->items[3], *n = pid->items[4];
    int dt = -1;
    for (int k = 0; k < DT_COUNT && type && type->kind == RELATE_PK_GLOBAL; k++)
        if (strcmp(type->s, "torch") == 0 && strcmp(type->name, DTYPES[k].storage) == 0)
            dt = k;
    if (dt < 0 || key->kind != RELATE_PK_STR || !is_text(loc) || n->kind != RELATE_PK_INT || n->i < 0 ||
        n->i > INT64_MAX / 8)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "a storage persistent id is malformed (type, key, location or size)");
    out->key = key->s;
    out->dtype = (ck_dtype)dt;
    out->numel = n->i;
    if (pid->count == 6 && pid->items[5]->kind != RELATE_PK_NONE) {
        const relate_pk_value *vm = pid->items[5];
        if (vm->kind != RELATE_PK_TUPLE || vm->count != 3 || vm->items[1]->kind != RELATE_PK_INT ||
            vm->items[2]->kind != RELATE_PK_INT || vm->items[1]->i < 0 || vm->items[2]->i < 0 ||
            vm->items[1]->i > out->numel || vm->items[2]->i > out->numel - vm->items[1]->i)
            return ck_fail(c, err, RELATE_ERR_FORMAT, "a storage view (legacy format) lies outside its storage");
        out->view = true;
        out->view_offset = vm->items[1]->i;
        out->view_numel = vm->items[2]->i;
    }
    return RELATE_OK;
}

ck_storage *relate_ckpt_find_storage(const relate_ckpt *c, const char *key)
{
    for (int k = 0; k < c->nstorages; k++)
        if (strcmp(c->storages[k].key, key) == 0)
            return &c->storages[k];
    return NULL;
}

static relate_status add_storage(relate_ckpt *c, const ck_pid *pid, relate_error *err)
{
    ck_storage *s = relate_ckpt_find_storage(c, pid->key);
    if (s) {
        if (s->dtype != pid->dtype || s->numel != pid->numel)
            return ck_fail(c, err, RELATE_ERR_FORMAT, "storage '%.40s' is described twice with different types or sizes",
                           pid->key);
        return RELATE_OK;
    }
    if (c->nstorages == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        ck_storage *st = realloc(c->storages, (size_t)cap * sizeof *st);
        if (!st)
            return ck_fail(c, err, RELATE_ERR_NOMEM, "out of memory");
        c->storages = st;
        c->cap = cap;
    }
    c->storages[c->nstorages++] = (ck_storage){.key = pid->key, .dtype = pid->dtype, .numel = pid->numel};
    return RELATE_OK;
}

/* Collects every storage the object refers to. The tree may share nodes (memo references), so
 * the walk has a visit budget: a pickle built to explode (a "billion laughs") is refused. */
typedef struct ck_walk {
    relate_ckpt *c;
    int64_t budget;
    relate_error *err;
} ck_walk;

static relate_status walk(ck_walk *w, const relate_pk_value *v, int depth)
{
    if (!v)
        return RELATE_OK;
    if (--w->budget < 0)
        return ck_fail(w->c, w->err, RELATE_ERR_FORMAT,
                       "the pickled object refers to its parts too many times (shared references); refused");
    if (depth > 200)
        return ck_fail(w->c, w->err, RELATE_ERR_FORMAT, "the pickled object is nested more than 200 levels deep");
    relate_status s = RELATE_OK;
    switch (v->kind) {
    case RELATE_PK_LIST:
    case RELATE_PK_TUPLE:
    case RELATE_PK_DICT: {
        int64_t n = v->kind == RELATE_PK_DICT ? 2 * v->count : v->count;
        for (int64_t k = 0; k < n && !s; k++)
            s = walk(w, v->items[k], depth + 1);
        return s;
    }
    case RELATE_PK_CALL:
        if (!(s = walk(w, v->args, depth + 1)) && !(s = walk(w, v->state, depth + 1)) &&
            !(s = walk(w, v->dict_items, depth + 1)))
            s = walk(w, v->list_items, depth + 1);
        return s;
    case RELATE_PK_PERSID: {
        ck_pid pid;
        if ((s = relate_ckpt_parse_pid(w->c, v->pid, &pid, w->err)))
            return s;
        return add_storage(w->c, &pid, w->err);
    }
    default: return RELATE_OK;
    }
}

static relate_status collect_storages(relate_ckpt *c, relate_error *err)
{
    ck_walk w = {.c = c, .budget = 8 * (int64_t)c->size + 100000, .err = err};
    return walk(&w, c->pk.root, 0);
}

static relate_status load_pickle(relate_ckpt *c, const uint8_t *data, size_t size, const char *what,
                                 relate_error *err)
{
    relate_error perr = {0};
    if (relate_pickle_load(&c->pk, data, size, CK_ALLOW, &perr) != RELATE_OK) {
        bool model = strstr(perr.msg, "the global torch.nn.") || strstr(perr.msg, "the global __main__.");
        return ck_fail(c, err, perr.code, "%s%s: %s",
                       model ? "a whole model saved with torch.save(model)? relate reads state dicts: save "
                               "model.state_dict(). "
                             : "",
                       what, perr.msg);
    }
    return RELATE_OK;
}

/* ------------------------------------------------------------------ zip format */
static relate_status open_zip(relate_ckpt *c, relate_error *err)
{
    relate_zip_reader z;
    relate_error zerr = {0};
    if (relate_zip_reader_open(&z, c->buf, c->size, &zerr) != RELATE_OK)
        return ck_fail(c, err, zerr.code, "%s", zerr.msg);
    relate_status st = RELATE_OK;
    char prefix[256], name[512];
    if (z.count == 0) {
        st = ck_fail(c, err, RELATE_ERR_FORMAT, "an empty zip archive, not a PyTorch checkpoint");
        goto done;
    }
    const char *slash = strchr(z.entries[0].name, '/');
    if (!slash || (size_t)(slash - z.entries[0].name) + 2 > sizeof prefix) {
        st = ck_fail(c, err, RELATE_ERR_FORMAT,
                     "a zip archive but not a PyTorch checkpoint: its first entry '%.60s' is not inside a folder "
                     "(torch.save puts everything under one, e.g. archive/data.pkl)",
                     z.entries[0].name);
        goto done;
    }
    memcpy(prefix, z.entries[0].name, (size_t)(slash - z.entries[0].name) + 1);
    prefix[slash - z.entries[0].name + 1] = 0;
    snprintf(name, sizeof name, "%sdata.pkl", prefix);
    const relate_zip_entry *pkl = relate_zip_reader_find(&z, name);
    if (!pkl) {
        char list[200] = "";
        for (int k = 0; k < z.count && k < 5; k++)
            sb_add(list, sizeof list, "%s%.40s", k ? ", " : "", z.entries[k].name);
        st = ck_fail(c, err, RELATE_ERR_FORMAT,
                     "a zip archive but not a PyTorch checkpoint: no entry %.100s (entries: %s%s)", name, list,
                     z.count > 5 ? ", ..." : "");
        goto done;
    }
    for (int k = 0; k < z.count; k++)
        if (z.entries[k].method != 0 && strncmp(z.entries[k].name, prefix, strlen(prefix)) == 0) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT,
                         "entry '%.100s' is compressed (zip method %u); torch.save stores entries uncompressed: was "
                         "the file re-zipped? Use the file torch.save wrote",
                         z.entries[k].name, z.entries[k].method);
            goto done;
        }
    if (!relate_zip_entry_crc_ok(&z, pkl)) {
        st = ck_fail(c, err, RELATE_ERR_FORMAT, "the CRC of %.100s does not match: the file is corrupt", name);
        goto done;
    }
    snprintf(name, sizeof name, "%sbyteorder", prefix);
    const relate_zip_entry *bo = relate_zip_reader_find(&z, name);
    if (bo && !(bo->size == 6 && memcmp(c->buf + bo->data_offset, "little", 6) == 0)) {
        st = ck_fail(c, err, RELATE_ERR_FORMAT, "saved on a big-endian machine, which relate does not read");
        goto done;
    }
    snprintf(name, sizeof name, "%sversion", prefix);
    const relate_zip_entry *ver = relate_zip_reader_find(&z, name);
    if (!ver) {
        snprintf(name, sizeof name, "%s.data/version", prefix);
        ver = relate_zip_reader_find(&z, name);
    }
    if (ver) {
        const uint8_t *v = c->buf + ver->data_offset;
        bool digits = ver->size > 0 && ver->size < 20;
        for (uint64_t k = 0; digits && k < ver->size; k++)
            digits = (v[k] >= '0' && v[k] <= '9') || ((v[k] == '\n' || v[k] == '\r') && k > 0);
        if (!digits) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT, "its version record is not a number: corrupt");
            goto done;
        }
    }
    if ((st = load_pickle(c, c->buf + pkl->data_offset, (size_t)pkl->size, "data.pkl", err)))
        goto done;
    if ((st = collect_storages(c, err)))
        goto done;
    for (int k = 0; k < c->nstorages; k++) {
        ck_storage *s = &c->storages[k];
        snprintf(name, sizeof name, "%sdata/%.200s", prefix, s->key);
        const relate_zip_entry *e = relate_zip_reader_find(&z, name);
        uint64_t need = (uint64_t)s->numel * (uint64_t)DTYPES[s->dtype].size;
        if (!e) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT, "the tensor data record %.200s is missing: the archive is incomplete",
                         name);
            goto done;
        }
        if (e->size < need) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT,
                         "the tensor data record %.200s holds %llu bytes, its tensors need %llu: corrupt", name,
                         (unsigned long long)e->size, (unsigned long long)need);
            goto done;
        }
        if (!relate_zip_entry_crc_ok(&z, e)) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT, "the CRC of %.200s does not match: the file is corrupt", name);
            goto done;
        }
        s->data = c->buf + e->data_offset;
    }
    c->format = RELATE_CKPT_ZIP;
done:
    relate_zip_reader_free(&z);
    return st;
}

/* ------------------------------------------------------------------ legacy format */
static const uint8_t LEGACY_MAGIC[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

/* Length of the pickled magic number 0x1950a86a20f9469cfc6c at buf[0], or 0. It is wider than
 * 64 bits, so it is matched as bytes (PROTO, optional FRAME, LONG1 of 10 bytes, STOP). */
static size_t legacy_magic_len(const uint8_t *buf, size_t size)
{
    size_t p = 0;
    if (size >= 2 && buf[0] == 0x80)
        p = 2;
    if (p + 9 <= size && buf[p] == 0x95)
        p += 9;
    if (p + 13 > size || buf[p] != 0x8a || buf[p + 1] != 10 || memcmp(buf + p + 2, LEGACY_MAGIC, 10) != 0)
        return 0;
    p += 12;
    return buf[p] == '.' ? p + 1 : 0;
}

static relate_status open_legacy(relate_ckpt *c, size_t pos, relate_error *err)
{
    relate_pickle small;
    relate_error perr = {0};
    /* the protocol version, then the system information */
    if (relate_pickle_load(&small, c->buf + pos, c->size - pos, NULL, &perr) != RELATE_OK)
        return ck_fail(c, err, perr.code, "legacy format, protocol record: %s", perr.msg);
    bool ok = small.root->kind == RELATE_PK_INT && small.root->i == 1001;
    int64_t proto = small.root->kind == RELATE_PK_INT ? small.root->i : -1;
    pos += small.end;
    relate_pickle_free(&small);
    if (!ok)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "legacy format with protocol version %lld; relate reads 1001",
                       (long long)proto);
    if (relate_pickle_load(&small, c->buf + pos, c->size - pos, NULL, &perr) != RELATE_OK)
        return ck_fail(c, err, perr.code, "legacy format, system-information record: %s", perr.msg);
    bool little = true;
    const relate_pk_value *le = relate_pk_dict_get(small.root, "little_endian");
    if (le && le->kind == RELATE_PK_BOOL)
        little = le->i != 0;
    pos += small.end;
    relate_pickle_free(&small);
    if (!little)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "saved on a big-endian machine, which relate does not read");

    relate_status st = load_pickle(c, c->buf + pos, c->size - pos, "legacy format, object record", err);
    if (st)
        return st;
    pos += c->pk.end;
    if ((st = collect_storages(c, err)))
        return st;
    relate_pickle keys;
    if (relate_pickle_load(&keys, c->buf + pos, c->size - pos, NULL, &perr) != RELATE_OK)
        return ck_fail(c, err, perr.code, "legacy format, storage key list: %s", perr.msg);
    pos += keys.end;
    if (keys.root->kind != RELATE_PK_LIST) {
        relate_pickle_free(&keys);
        return ck_fail(c, err, RELATE_ERR_FORMAT, "legacy format: the storage key list is a %s", kind_of(keys.root));
    }
    for (int64_t k = 0; k < keys.root->count && !st; k++) {
        const relate_pk_value *key = keys.root->items[k];
        ck_storage *s = key->kind == RELATE_PK_STR ? relate_ckpt_find_storage(c, key->s) : NULL;
        if (!s) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT, "legacy format: the key list names a storage no tensor uses: corrupt");
            break;
        }
        if (c->size - pos < 8) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT,
                         "legacy format: the file ends before the data of storage %lld of %lld: truncated",
                         (long long)k + 1, (long long)keys.root->count);
            break;
        }
        uint64_t n = 0;
        for (int b = 7; b >= 0; b--)
            n = (n << 8) | c->buf[pos + (size_t)b];
        pos += 8;
        uint64_t bytes = n * (uint64_t)DTYPES[s->dtype].size;
        if (n != (uint64_t)s->numel) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT,
                         "legacy format: storage '%.40s' holds %llu elements, the pickle says %lld: corrupt", s->key,
                         (unsigned long long)n, (long long)s->numel);
            break;
        }
        if (bytes > c->size - pos) {
            st = ck_fail(c, err, RELATE_ERR_FORMAT,
                         "legacy format: the data of storage %lld of %lld (%llu bytes) runs past the end of the "
                         "file: truncated",
                         (long long)k + 1, (long long)keys.root->count, (unsigned long long)bytes);
            break;
        }
        s->data = c->buf + pos;
        pos += (size_t)bytes;
    }
    relate_pickle_free(&keys);
    for (int k = 0; k < c->nstorages && !st; k++)
        if (!c->storages[k].data)
            st = ck_fail(c, err, RELATE_ERR_FORMAT, "legacy format: the data of storage '%.40s' is missing: truncated or corrupt",
                         c->storages[k].key);
    if (!st)
        c->format = RELATE_CKPT_LEGACY;
    return st;
}

/* ------------------------------------------------------------------ foreign files */
static relate_status foreign(const relate_ckpt *c, relate_error *err)
{
    const uint8_t *b = c->buf;
    size_t n = c->size;
    if (n >= 8 && memcmp(b, "PYTORCH1", 8) == 0)
        return ck_fail(c, err, RELATE_ERR_FORMAT,
                       "an archive of PyTorch's preview release (PYTORCH1), which relate cannot read: re-save it "
                       "with a current PyTorch");
    if (n >= 10 && b[8] == '{') {
        uint64_t hl = 0;
        for (int k = 7; k >= 0; k--)
            hl = (hl << 8) | b[k];
        if (hl >= 2 && hl <= n - 8)
            return ck_fail(c, err, RELATE_ERR_FORMAT,
                           "a safetensors file, not a PyTorch checkpoint: it holds tensors only (relate writes "
                           "those with `relate export`); give the torch.save checkpoint instead");
    }
    if (n >= 262 && memcmp(b + 257, "ustar", 5) == 0)
        return ck_fail(c, err, RELATE_ERR_FORMAT,
                       "a tar archive: PyTorch < 0.4 wrote tar checkpoints, which relate cannot read; extract it "
                       "if it wraps a checkpoint, or re-save with torch.save in PyTorch >= 1.0");
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "gzip-compressed, not a checkpoint itself: decompress it first");
    if (b[0] == 0x80)
        return ck_fail(c, err, RELATE_ERR_FORMAT,
                       "a Python pickle without PyTorch's magic number, not a torch.save checkpoint");
    size_t probe = n < 512 ? n : 512;
    bool text = true;
    for (size_t k = 0; k < probe && text; k++)
        text = b[k] >= 0x20 || b[k] == '\n' || b[k] == '\r' || b[k] == '\t';
    if (text) {
        char head[41];
        size_t m = 0;
        for (size_t k = 0; k < probe && m < 40; k++)
            head[m++] = (b[k] >= 0x20 && b[k] < 0x7f) ? (char)b[k] : ' ';
        head[m] = 0;
        return ck_fail(c, err, RELATE_ERR_FORMAT, "a text file, not a PyTorch checkpoint (it starts \"%s\")%s", head,
                       b[0] == '<' ? ": an HTML page from a failed download?" : "");
    }
    char hex[40] = "";
    for (size_t k = 0; k < n && k < 8; k++)
        sb_add(hex, sizeof hex, "%s%02x", k ? " " : "", b[k]);
    return ck_fail(c, err, RELATE_ERR_FORMAT,
                   "not a PyTorch checkpoint (it starts with bytes %s); relate reads torch.save files, zip or legacy "
                   "format",
                   hex);
}

/* ------------------------------------------------------------------ open / close */
static relate_status read_file(relate_ckpt *c, relate_error *err)
{
    FILE *fp = fopen(c->path, "rb");
    if (!fp)
        return ck_fail(c, err, RELATE_ERR_IO, "cannot open: %s", strerror(errno));
    struct stat sb;
    relate_status st = RELATE_OK;
    if (fstat(fileno(fp), &sb) != 0)
        st = ck_fail(c, err, RELATE_ERR_IO, "cannot stat: %s", strerror(errno));
    else if (S_ISDIR(sb.st_mode))
        st = ck_fail(c, err, RELATE_ERR_IO, "is a folder, not a checkpoint file");
    else if (sb.st_size == 0)
        st = ck_fail(c, err, RELATE_ERR_FORMAT, "the file is empty (0 bytes): an interrupted write or copy?");
    else if (!(c->buf = malloc((size_t)sb.st_size)))
        st = ck_fail(c, err, RELATE_ERR_NOMEM, "out of memory for %lld bytes", (long long)sb.st_size);
    else if (fread(c->buf, 1, (size_t)sb.st_size, fp) != (size_t)sb.st_size)
        st = ck_fail(c, err, RELATE_ERR_IO, "reading failed: %s", ferror(fp) ? strerror(errno) : "the file shrank");
    else
        c->size = (size_t)sb.st_size;
    fclose(fp);
    return st;
}

/* Top-level keys for messages, and whether the object is itself a state dict (an OrderedDict,
 * or a dict whose values are all tensors). */
static relate_status describe(relate_ckpt *c)
{
    const relate_pk_value *root = c->pk.root, *d = as_dict(root);
    c->bare = false;
    if (d) {
        bool all_tensors = true;
        for (int64_t k = 0; k < d->count && all_tensors; k++)
            all_tensors = is_tensor(d->items[2 * k + 1]);
        c->bare = d->count > 0 ? all_tensors : is_odict(root);
    }
    char list[400] = "";
    for (int64_t k = 0; d && !c->bare && k < d->count; k++) {
        const relate_pk_value *key = d->items[2 * k];
        if (strlen(list) > 300) {
            sb_add(list, sizeof list, ", ...");
            break;
        }
        if (is_text(key))
            sb_add(list, sizeof list, "%s%.*s", k ? ", " : "", (int)(key->len > 60 ? 60 : key->len), key->s);
        else if (key->kind == RELATE_PK_INT)
            sb_add(list, sizeof list, "%s%lld", k ? ", " : "", (long long)key->i);
        else
            sb_add(list, sizeof list, "%s<%s>", k ? ", " : "", kind_of(key));
    }
    c->key_list = malloc(strlen(list) + 1);
    if (!c->key_list)
        return RELATE_ERR_NOMEM;
    strcpy(c->key_list, list);
    return RELATE_OK;
}

relate_status relate_ckpt_open(relate_ckpt **out, const char *path, relate_error *err)
{
    *out = NULL;
    if (!path)
        return relate_error_set(err, RELATE_ERR_ARG, "checkpoint: no path given");
    relate_ckpt *c = calloc(1, sizeof *c);
    if (!c || !(c->path = malloc(strlen(path) + 1))) {
        free(c);
        return relate_error_set(err, RELATE_ERR_NOMEM, "checkpoint: out of memory");
    }
    strcpy(c->path, path);
    relate_status st = read_file(c, err);
    if (!st) {
        size_t magic = legacy_magic_len(c->buf, c->size);
        if (c->size >= 4 && (memcmp(c->buf, "PK\3\4", 4) == 0 || memcmp(c->buf, "PK\5\6", 4) == 0))
            st = open_zip(c, err);
        else if (magic)
            st = open_legacy(c, magic, err);
        else
            st = foreign(c, err);
    }
    if (!st && describe(c))
        st = ck_fail(c, err, RELATE_ERR_NOMEM, "out of memory");
    if (st) {
        relate_ckpt_close(c);
        return st;
    }
    *out = c;
    return RELATE_OK;
}

void relate_ckpt_close(relate_ckpt *c)
{
    if (!c)
        return;
    relate_pickle_free(&c->pk);
    free(c->storages);
    free(c->key_list);
    free(c->buf);
    free(c->path);
    free(c);
}

relate_ckpt_format relate_ckpt_get_format(const relate_ckpt *c) { return c->format; }

bool relate_ckpt_has(const relate_ckpt *c, const char *key)
{
    return c && key && relate_pk_dict_get(as_dict(c->pk.root), key) != NULL;
}

const char *relate_ckpt_key_list(const relate_ckpt *c) { return c && c->key_list ? c->key_list : ""; }

/* The value under a top-level key (NULL key: the whole object). */
relate_status relate_ckpt_top_entry(const relate_ckpt *c, const char *key, const relate_pk_value **out,
                                    relate_error *err)
{
    *out = NULL;
    if (!key) {
        *out = c->pk.root;
        return RELATE_OK;
    }
    const relate_pk_value *d = as_dict(c->pk.root);
    if (!d)
        return ck_fail(c, err, RELATE_ERR_FORMAT, "holds a %s, not a dictionary with an entry '%.60s'",
                       kind_of(c->pk.root), key);
    *out = relate_pk_dict_get(d, key);
    if (*out)
        return RELATE_OK;
    if (c->bare)
        return ck_fail(c, err, RELATE_ERR_FORMAT,
                       "holds a bare state dict (as torch.save(model.state_dict()) writes), not a dictionary with "
                       "an entry '%.60s'",
                       key);
    return ck_fail(c, err, RELATE_ERR_FORMAT, "has no entry '%.60s' (its entries: %.300s)", key, c->key_list);
}
