/* zip_stored.c: the stored-entry zip writer and central-directory reader of zip_stored.h.
 * Not a general zip library: compressed entries are listed (method != 0) but never inflated. */
#include "io/zip_stored.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_END 0x06054b50u
#define SIG_END64 0x06064b50u
#define SIG_LOCATOR64 0x07064b50u
#define ZIP_VERSION 20      /* 2.0: stored entries, no ZIP64 */
#define ZIP_DOS_DATE 0x0021 /* 1980-01-01, fixed: equal checkpoints give equal bytes */
#define ZIP_LIMIT 0xffffffffu

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

/* ------------------------------------------------------------------ writer */
void relate_zip_writer_init(relate_zip_writer *z, FILE *fp)
{
    memset(z, 0, sizeof *z);
    z->fp = fp;
}

void relate_zip_writer_free(relate_zip_writer *z)
{
    for (int i = 0; i < z->count; i++)
        free(z->entries[i].name);
    free(z->entries);
    memset(z, 0, sizeof *z);
}

static void emit(relate_zip_writer *z, const void *p, size_t n)
{
    if (n)
        fwrite(p, 1, n, z->fp); /* errors are sticky in the FILE; the commit checks ferror */
    z->offset += n;
}

static uint32_t crc_of(const void *data, size_t size)
{
    return (uint32_t)crc32_z(crc32_z(0, Z_NULL, 0), (const Bytef *)data, (z_size_t)size);
}

relate_status relate_zip_writer_add(relate_zip_writer *z, const char *name, const void *data, size_t size,
                                    relate_error *err)
{
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > 0xffff)
        return relate_error_set(err, RELATE_ERR_ARG, "zip: entry name of %zu bytes", nlen);
    /* The data starts at offset + 30 + name + extra; the extra field ("FB", its length, padding)
     * is at least 4 bytes and makes that a multiple of 64. */
    uint64_t head = z->offset + 30 + nlen + 4;
    size_t pad = (size_t)((RELATE_ZIP_ALIGN - head % RELATE_ZIP_ALIGN) % RELATE_ZIP_ALIGN);
    uint64_t end = head + pad + size;
    if (z->count >= 0xfffe || size > ZIP_LIMIT || end > ZIP_LIMIT)
        return relate_error_set(err, RELATE_ERR_ARG,
                                "zip: the checkpoint would pass 4 GiB or 65,535 entries (ZIP64), "
                                "which relate does not write");
    if (z->count == z->cap) {
        int cap = z->cap ? 2 * z->cap : 16;
        relate_zip_written *e = realloc(z->entries, (size_t)cap * sizeof *e);
        if (!e)
            return relate_error_set(err, RELATE_ERR_NOMEM, "zip: out of memory");
        z->entries = e;
        z->cap = cap;
    }
    relate_zip_written *e = &z->entries[z->count];
    if (!(e->name = malloc(nlen + 1)))
        return relate_error_set(err, RELATE_ERR_NOMEM, "zip: out of memory");
    memcpy(e->name, name, nlen + 1);
    e->crc = crc_of(data, size);
    e->size = size;
    e->header_offset = z->offset;
    z->count++;

    uint8_t h[30];
    put32(h, SIG_LOCAL);
    put16(h + 4, ZIP_VERSION);
    put16(h + 6, 0);            /* flags: sizes are in the header, no data descriptor */
    put16(h + 8, 0);            /* stored */
    put16(h + 10, 0);           /* time */
    put16(h + 12, ZIP_DOS_DATE);
    put32(h + 14, e->crc);
    put32(h + 18, (uint32_t)size);
    put32(h + 22, (uint32_t)size);
    put16(h + 26, (uint32_t)nlen);
    put16(h + 28, (uint32_t)(4 + pad));
    emit(z, h, sizeof h);
    emit(z, name, nlen);
    uint8_t extra[4 + RELATE_ZIP_ALIGN];
    extra[0] = 'F';
    extra[1] = 'B';
    put16(extra + 2, (uint32_t)pad);
    memset(extra + 4, 'Z', pad);
    emit(z, extra, 4 + pad);
    emit(z, data, size);
    return RELATE_OK;
}

relate_status relate_zip_writer_finish(relate_zip_writer *z, relate_error *err)
{
    uint64_t cd_start = z->offset;
    for (int i = 0; i < z->count; i++) {
        const relate_zip_written *e = &z->entries[i];
        size_t nlen = strlen(e->name);
        uint8_t h[46];
        put32(h, SIG_CENTRAL);
        put16(h + 4, ZIP_VERSION); /* made by: MS-DOS, 2.0 */
        put16(h + 6, ZIP_VERSION);
        put16(h + 8, 0);
        put16(h + 10, 0);
        put16(h + 12, 0);
        put16(h + 14, ZIP_DOS_DATE);
        put32(h + 16, e->crc);
        put32(h + 20, (uint32_t)e->size);
        put32(h + 24, (uint32_t)e->size);
        put16(h + 28, (uint32_t)nlen);
        put16(h + 30, 0); /* extra */
        put16(h + 32, 0); /* comment */
        put16(h + 34, 0); /* disk */
        put16(h + 36, 0); /* internal attributes */
        put32(h + 38, 0); /* external attributes */
        put32(h + 42, (uint32_t)e->header_offset);
        emit(z, h, sizeof h);
        emit(z, e->name, nlen);
    }
    uint64_t cd_size = z->offset - cd_start;
    if (z->offset > ZIP_LIMIT)
        return relate_error_set(err, RELATE_ERR_ARG,
                                "zip: the checkpoint would pass 4 GiB (ZIP64), which relate does not write");
    uint8_t h[22];
    put32(h, SIG_END);
    put16(h + 4, 0);
    put16(h + 6, 0);
    put16(h + 8, (uint32_t)z->count);
    put16(h + 10, (uint32_t)z->count);
    put32(h + 12, (uint32_t)cd_size);
    put32(h + 16, (uint32_t)cd_start);
    put16(h + 20, 0);
    emit(z, h, sizeof h);
    return RELATE_OK;
}

/* ------------------------------------------------------------------ reader */
void relate_zip_reader_free(relate_zip_reader *z)
{
    for (int i = 0; i < z->count; i++)
        free(z->entries[i].name);
    free(z->entries);
    memset(z, 0, sizeof *z);
}

/* The end-of-central-directory record: the last signature that leaves room for its comment. */
static long find_end(const uint8_t *buf, size_t size)
{
    if (size < 22)
        return -1;
    size_t lowest = size > 22 + 0xffff ? size - 22 - 0xffff : 0;
    for (size_t p = size - 22 + 1; p-- > lowest;)
        if (get32(buf + p) == SIG_END && p + 22 + get16(buf + p + 20) == size)
            return (long)p;
    return -1;
}

/* Reads 64-bit values from a ZIP64 extended-information extra field for the fields that hold
 * 0xffffffff, in the order the format fixes (size, compressed size, local header offset). */
static int zip64_extra(const uint8_t *extra, uint32_t elen, uint64_t *size, uint64_t *csize, uint64_t *lho)
{
    uint32_t p = 0;
    while (p + 4 <= elen) {
        uint32_t id = get16(extra + p), len = get16(extra + p + 2);
        if (p + 4 + len > elen)
            return -1;
        if (id == 0x0001) {
            const uint8_t *f = extra + p + 4;
            uint32_t used = 0;
            uint64_t *fields[3] = {size, csize, lho};
            for (int k = 0; k < 3; k++) {
                if (*fields[k] != ZIP_LIMIT)
                    continue;
                if (used + 8 > len)
                    return -1;
                *fields[k] = get64(f + used);
                used += 8;
            }
            return 0;
        }
        p += 4 + len;
    }
    return (*size == ZIP_LIMIT || *csize == ZIP_LIMIT || *lho == ZIP_LIMIT) ? -1 : 0;
}

relate_status relate_zip_reader_open(relate_zip_reader *z, const uint8_t *buf, size_t size, relate_error *err)
{
    memset(z, 0, sizeof *z);
    z->buf = buf;
    z->size = size;
    long endp = find_end(buf, size);
    if (endp < 0)
        return relate_error_set(err, RELATE_ERR_FORMAT,
                                "zip: no end-of-central-directory record: the file is truncated "
                                "(an interrupted write, copy or download)");
    const uint8_t *end = buf + endp;
    uint64_t count = get16(end + 10), cd_size = get32(end + 12), cd_off = get32(end + 16);
    if (get16(end + 4) != 0 || get16(end + 6) != 0 || get16(end + 8) != get16(end + 10))
        return relate_error_set(err, RELATE_ERR_FORMAT, "zip: multi-disk archives are not supported");
    if (count == 0xffff || cd_size == ZIP_LIMIT || cd_off == ZIP_LIMIT) {
        /* ZIP64: a locator just before the end record points to the ZIP64 end record. */
        if (endp < 20 || get32(end - 20) != SIG_LOCATOR64)
            return relate_error_set(err, RELATE_ERR_FORMAT, "zip: ZIP64 end record locator missing");
        uint64_t e64 = get64(end - 20 + 8);
        if (e64 > (uint64_t)endp - 20 || (uint64_t)endp - 20 - e64 < 56 || get32(buf + e64) != SIG_END64)
            return relate_error_set(err, RELATE_ERR_FORMAT, "zip: ZIP64 end record missing or misplaced");
        count = get64(buf + e64 + 32);
        cd_size = get64(buf + e64 + 40);
        cd_off = get64(buf + e64 + 48);
    }
    if (cd_off > size || cd_size > size - cd_off)
        return relate_error_set(err, RELATE_ERR_FORMAT,
                                "zip: the central directory (%llu bytes at offset %llu) lies outside the "
                                "%zu-byte file: truncated or corrupt",
                                (unsigned long long)cd_size, (unsigned long long)cd_off, size);
    if (count > cd_size / 46)
        return relate_error_set(err, RELATE_ERR_FORMAT, "zip: %llu entries cannot fit a %llu-byte central directory",
                                (unsigned long long)count, (unsigned long long)cd_size);
    z->entries = calloc(count ? (size_t)count : 1, sizeof *z->entries);
    if (!z->entries)
        return relate_error_set(err, RELATE_ERR_NOMEM, "zip: out of memory");
    const uint8_t *p = buf + cd_off, *cd_end = buf + cd_off + cd_size;
    relate_status st = RELATE_OK;
    for (uint64_t i = 0; i < count; i++) {
        if (cd_end - p < 46 || get32(p) != SIG_CENTRAL) {
            st = relate_error_set(err, RELATE_ERR_FORMAT, "zip: central directory entry %llu is corrupt",
                             (unsigned long long)i);
            goto fail;
        }
        uint32_t nlen = get16(p + 28), elen = get16(p + 30), clen = get16(p + 32);
        if ((uint64_t)(cd_end - p) < 46ull + nlen + elen + clen) {
            st = relate_error_set(err, RELATE_ERR_FORMAT, "zip: central directory entry %llu runs past the directory",
                             (unsigned long long)i);
            goto fail;
        }
        relate_zip_entry *e = &z->entries[z->count];
        if (memchr(p + 46, 0, nlen)) {
            st = relate_error_set(err, RELATE_ERR_FORMAT, "zip: central directory entry %llu has a NUL in its name",
                                  (unsigned long long)i);
            goto fail;
        }
        if (!(e->name = malloc(nlen + 1))) {
            st = relate_error_set(err, RELATE_ERR_NOMEM, "zip: out of memory");
            goto fail;
        }
        z->count++;
        memcpy(e->name, p + 46, nlen);
        e->name[nlen] = 0;
        e->flags = (uint16_t)get16(p + 8);
        e->method = (uint16_t)get16(p + 10);
        e->crc = get32(p + 16);
        e->csize = get32(p + 20);
        e->size = get32(p + 24);
        uint64_t lho = get32(p + 42);
        if (zip64_extra(p + 46 + nlen, elen, &e->size, &e->csize, &lho)) {
            st = relate_error_set(err, RELATE_ERR_FORMAT, "zip: entry '%.200s' has a corrupt ZIP64 field", e->name);
            goto fail;
        }
        if (lho > size || size - lho < 30 || get32(buf + lho) != SIG_LOCAL) {
            st = relate_error_set(err, RELATE_ERR_FORMAT,
                             "zip: the local header of entry '%.200s' is missing: truncated or corrupt", e->name);
            goto fail;
        }
        uint64_t data = lho + 30 + get16(buf + lho + 26) + get16(buf + lho + 28);
        if (data > size || e->csize > size - data) {
            st = relate_error_set(err, RELATE_ERR_FORMAT,
                             "zip: the data of entry '%.200s' (%llu bytes) runs past the end of the file: "
                             "truncated",
                             e->name, (unsigned long long)e->csize);
            goto fail;
        }
        /* A stored entry's two sizes are one number. Readers use `size`, the bounds check above
         * `csize`: a file declaring them different would be read past its end. */
        if (e->method == 0 && e->size != e->csize) {
            st = relate_error_set(err, RELATE_ERR_FORMAT,
                                  "zip: stored entry '%.200s' declares %llu bytes but holds %llu: corrupt", e->name,
                                  (unsigned long long)e->size, (unsigned long long)e->csize);
            goto fail;
        }
        e->data_offset = data;
        p += 46 + nlen + elen + clen;
    }
    return RELATE_OK;
fail:
    relate_zip_reader_free(z);
    return st;
}

const relate_zip_entry *relate_zip_reader_find(const relate_zip_reader *z, const char *name)
{
    for (int i = 0; i < z->count; i++)
        if (strcmp(z->entries[i].name, name) == 0)
            return &z->entries[i];
    return NULL;
}

int relate_zip_entry_crc_ok(const relate_zip_reader *z, const relate_zip_entry *e)
{
    return crc_of(z->buf + e->data_offset, (size_t)e->csize) == e->crc;
}
