/* fuzz_zip.c: libFuzzer harness of the zip reader of torch.save files (src/io/zip_stored.c).
 * Opens the input as an archive; on success looks every entry up by name, checks its CRC and
 * reads all of its bytes (data_offset .. + csize; + size too for stored entries, as the
 * checkpoint reader reads them).
 * Seeds: relate's checkpoints, a multi-entry archive from relate's zip writer, and a ZIP64
 * archive built by hand (relate never writes ZIP64; PyTorch does for large files). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "fuzz_common.h"
#include "io/zip_stored.h"
#include "seeds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    relate_zip_reader z;
    relate_error err = {0};
    if (relate_zip_reader_open(&z, data, size, &err) != RELATE_OK) {
        fz_debug("zip: %s", err.msg);
        return 0;
    }
    fz_debug("zip: OK, %d entries", z.count);
    for (int i = 0; i < z.count; i++) {
        const relate_zip_entry *e = relate_zip_reader_find(&z, z.entries[i].name);
        if (!e)
            abort(); /* an entry the reader listed must be found by its own name */
        int crc = relate_zip_entry_crc_ok(&z, e);
        fz_debug("  %s: %llu bytes, method %u, crc %s", e->name, (unsigned long long)e->size, e->method,
                 crc ? "ok" : "bad");
        /* the bytes in the file; `size` is theirs only for stored entries (the checkpoint
         * reader refuses the others) */
        fz_touch(data + e->data_offset, (size_t)e->csize);
        if (e->method == 0)
            fz_touch(data + e->data_offset, (size_t)e->size);
    }
    relate_zip_reader_find(&z, "archive/data.pkl");
    relate_zip_reader_free(&z);
    return 0;
}

/* ------------------------------------------------------------------ seeds */
static void ckpt_zip(const char *name, const uint8_t *bytes, size_t n, void *ctx)
{
    if (n < 200000)
        fz_seed(ctx, name, bytes, n);
}

static void put_le16(fz_buf *b, unsigned v)
{
    fz_put_u8(b, (int)(v & 255));
    fz_put_u8(b, (int)(v >> 8));
}

static void put_le64(fz_buf *b, uint64_t v)
{
    fz_put_le32(b, (uint32_t)v);
    fz_put_le32(b, (uint32_t)(v >> 32));
}

/* One stored entry with 0xffffffff sizes and offset, resolved through ZIP64 extra fields and a
 * ZIP64 end record + locator, as zipfile / PyTorch write them past 4 GiB. */
static void zip64_archive(fz_buf *b)
{
    static const char name[] = "archive/data.pkl";
    static const uint8_t payload[] = "\x80\x02}q\x00.";
    const size_t plen = sizeof payload - 1, nlen = sizeof name - 1;
    uint32_t crc = (uint32_t)crc32(0, payload, (uInt)plen);
    fz_put_le32(b, 0x04034b50);
    put_le16(b, 45), put_le16(b, 0), put_le16(b, 0), put_le16(b, 0), put_le16(b, 0);
    fz_put_le32(b, crc);
    fz_put_le32(b, 0xffffffffu), fz_put_le32(b, 0xffffffffu);
    put_le16(b, (unsigned)nlen), put_le16(b, 20);
    fz_put(b, name, nlen);
    put_le16(b, 1), put_le16(b, 16), put_le64(b, plen), put_le64(b, plen);
    fz_put(b, payload, plen);
    size_t cd = b->n;
    fz_put_le32(b, 0x02014b50);
    put_le16(b, 45), put_le16(b, 45), put_le16(b, 0), put_le16(b, 0), put_le16(b, 0), put_le16(b, 0);
    fz_put_le32(b, crc);
    fz_put_le32(b, 0xffffffffu), fz_put_le32(b, 0xffffffffu);
    put_le16(b, (unsigned)nlen), put_le16(b, 28), put_le16(b, 0), put_le16(b, 0), put_le16(b, 0);
    fz_put_le32(b, 0), fz_put_le32(b, 0xffffffffu);
    fz_put(b, name, nlen);
    put_le16(b, 1), put_le16(b, 24), put_le64(b, plen), put_le64(b, plen), put_le64(b, 0);
    size_t cd_size = b->n - cd, e64 = b->n;
    fz_put_le32(b, 0x06064b50);
    put_le64(b, 44);
    put_le16(b, 45), put_le16(b, 45);
    fz_put_le32(b, 0), fz_put_le32(b, 0);
    put_le64(b, 1), put_le64(b, 1), put_le64(b, cd_size), put_le64(b, cd);
    fz_put_le32(b, 0x07064b50);
    fz_put_le32(b, 0), put_le64(b, e64), fz_put_le32(b, 1);
    fz_put_le32(b, 0x06054b50);
    put_le16(b, 0), put_le16(b, 0), put_le16(b, 0xffff), put_le16(b, 0xffff);
    fz_put_le32(b, 0xffffffffu), fz_put_le32(b, 0xffffffffu);
    put_le16(b, 0);
}

static int write_seeds(const char *dir)
{
    const char *tmp = fz_tmpdir("zipseeds");
    const char *path = fz_path("%s/multi.zip", tmp);
    FILE *f = fopen(path, "wb");
    if (!f)
        return 1;
    relate_zip_writer z;
    relate_zip_writer_init(&z, f);
    relate_error err = {0};
    int rc = relate_zip_writer_add(&z, "a/one", "hello", 5, &err) || relate_zip_writer_add(&z, "a/empty", "", 0, &err) ||
             relate_zip_writer_add(&z, "a/b/c/deeper/name.bin", "\x00\x01\x02\x03\xff", 5, &err) ||
             relate_zip_writer_finish(&z, &err);
    relate_zip_writer_free(&z);
    rc = fclose(f) || rc;
    size_t n = 0;
    uint8_t *b = rc ? NULL : fz_read(path, &n);
    if (!b)
        return 1;
    fz_seed(dir, "multi.zip", b, n);
    free(b);
    f = fopen(path, "wb");
    relate_zip_writer_init(&z, f);
    rc = relate_zip_writer_finish(&z, &err); /* no entries: only the end record */
    relate_zip_writer_free(&z);
    rc = fclose(f) || rc;
    if (rc || !(b = fz_read(path, &n)))
        return 1;
    fz_seed(dir, "empty.zip", b, n);
    free(b);
    fz_buf z64 = {0};
    zip64_archive(&z64);
    fz_seed(dir, "zip64.zip", z64.p, z64.n);
    fz_free(&z64);
    return sd_checkpoint_files(false, ckpt_zip, (void *)dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_maybe_write_seeds(argc, argv, write_seeds);
    return 0;
}
