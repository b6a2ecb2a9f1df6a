/* zip_stored.h: the zip container of torch.save files: stored (uncompressed) entries, written
 * with each record's data at a 64-byte file offset (as PyTorch pads them), read through the
 * central directory.
 * Not a general zip library: no compression, encryption or multi-disk archives. ZIP64 records are
 * read (PyTorch writes them) but never written: relate's checkpoints stay below 4 GiB.
 *
 *   relate_zip_writer z;  relate_zip_writer_init(&z, fp);
 *   relate_zip_writer_add(&z, "archive/data.pkl", pkl, n, &err);
 *   relate_zip_writer_finish(&z, &err);            // central directory + end record
 *   relate_zip_writer_free(&z);
 *
 *   relate_zip_reader r;
 *   relate_zip_reader_open(&r, buf, size, &err);   // buf: the whole file, outlives r
 *   const relate_zip_entry *e = relate_zip_reader_find(&r, "archive/data.pkl");
 *   const uint8_t *data = buf + e->data_offset;   // e->size bytes when e->method == 0
 *   relate_zip_reader_free(&r);
 */
#ifndef RELATE_IO_ZIP_STORED_H
#define RELATE_IO_ZIP_STORED_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "relate/status.h"

#define RELATE_ZIP_ALIGN 64

/* ---- writing ---- */
typedef struct relate_zip_written {
    char *name;
    uint32_t crc;
    uint64_t size, header_offset;
} relate_zip_written;

typedef struct relate_zip_writer {
    FILE *fp;
    uint64_t offset; /* bytes written so far */
    relate_zip_written *entries;
    int count, cap;
} relate_zip_writer;

void relate_zip_writer_init(relate_zip_writer *z, FILE *fp);
/* Writes one stored entry: local header (CRC and sizes filled in, data aligned to 64 bytes by
 * an extra field "FB" of 'Z' bytes, as PyTorch does), then the data. RELATE_ERR_ARG when the
 * archive would pass 4 GiB or 65,535 entries. Write errors surface at the file's commit. */
relate_status relate_zip_writer_add(relate_zip_writer *z, const char *name, const void *data, size_t size,
                                    relate_error *err);
/* Writes the central directory and the end-of-central-directory record. */
relate_status relate_zip_writer_finish(relate_zip_writer *z, relate_error *err);
void relate_zip_writer_free(relate_zip_writer *z);

/* ---- reading ---- */
typedef struct relate_zip_entry {
    char *name;            /* NUL-terminated copy */
    uint16_t method;       /* 0 = stored */
    uint16_t flags;
    uint32_t crc;
    uint64_t size;         /* uncompressed */
    uint64_t csize;        /* compressed (= size when stored) */
    uint64_t data_offset;  /* where the entry's bytes start in the buffer */
} relate_zip_entry;

typedef struct relate_zip_reader {
    const uint8_t *buf;
    size_t size;
    relate_zip_entry *entries;
    int count;
} relate_zip_reader;

/* Parses the end record (ZIP64 too) and the central directory, and checks that every entry's
 * local header and data lie inside the buffer. Messages do not name the file: callers prefix. */
relate_status relate_zip_reader_open(relate_zip_reader *z, const uint8_t *buf, size_t size, relate_error *err);
const relate_zip_entry *relate_zip_reader_find(const relate_zip_reader *z, const char *name);
/* True when the stored bytes of e match its CRC-32. */
int relate_zip_entry_crc_ok(const relate_zip_reader *z, const relate_zip_entry *e);
void relate_zip_reader_free(relate_zip_reader *z);

#endif
