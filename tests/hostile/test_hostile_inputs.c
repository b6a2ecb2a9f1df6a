/* test_hostile_inputs.c: one regression test per defect that fuzzing found in the readers, each
 * built here from its crafted input: a stored zip entry whose declared size exceeds its bytes
 * (checkpoint data.pkl and tensor records), a zero-stride tensor that claims 10^10 elements, the
 * pickle `\x80\x02(t.`, an IDX header whose dimensions overflow when multiplied, a truncated JPEG
 * that declares 32773 x 4349 pixels, and a complete 241-byte one that declares 2048 x 64512. The
 * sanitizer build (CI) turns any over-read or undefined operation into a failure; the checks below
 * hold in every build.
 * Not the formats' functional tests (tests/checkpoint, tests/data, tests/unit). */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data_fixtures.h"
#include "io/image_decode.h"
#include "io/pickle.h"
#include "io/zip_stored.h"
#include "relate/checkpoint.h"
#include "relate/data.h"
#include "test_util.h"

/* ------------------------------------------------------------------ a checkpoint made by hand */
static void pk_global(fx_buf *b, const char *module, const char *name)
{
    fx_put_u8(b, 'c');
    fx_put_str(b, module);
    fx_put_u8(b, '\n');
    fx_put_str(b, name);
    fx_put_u8(b, '\n');
}

static void pk_text(fx_buf *b, const char *s) /* BINUNICODE, as torch.save writes str */
{
    fx_put_u8(b, 'X');
    fx_put_le32(b, (uint32_t)strlen(s));
    fx_put_str(b, s);
}

static void pk_int4(fx_buf *b, int32_t v) /* BININT */
{
    fx_put_u8(b, 'J');
    fx_put_le32(b, (uint32_t)v);
}

/* data.pkl of torch.save({"w": tensor}) for one float storage "0" of `numel` elements, viewed with
 * the given 2-D size and stride. */
static void tensor_pickle(fx_buf *b, int numel, int32_t rows, int32_t cols, int32_t srow, int32_t scol)
{
    fx_put(b, "\x80\x02", 2);
    pk_global(b, "collections", "OrderedDict");
    fx_put(b, ")R(", 3); /* OrderedDict(), MARK */
    pk_text(b, "w");
    pk_global(b, "torch._utils", "_rebuild_tensor_v2");
    fx_put(b, "((", 2); /* MARK of the arguments, MARK of the persistent id */
    pk_text(b, "storage");
    pk_global(b, "torch", "FloatStorage");
    pk_text(b, "0");
    pk_text(b, "cpu");
    pk_int4(b, numel);
    fx_put(b, "tQ", 2); /* the id tuple, BINPERSID */
    pk_int4(b, 0);      /* storage offset */
    fx_put_u8(b, '(');
    pk_int4(b, rows);
    pk_int4(b, cols);
    fx_put(b, "t(", 2);
    pk_int4(b, srow);
    pk_int4(b, scol);
    fx_put(b, "t\x89", 2); /* requires_grad False */
    pk_global(b, "collections", "OrderedDict");
    fx_put(b, ")RtRu.", 6); /* backward hooks, the argument tuple, REDUCE, SETITEMS, STOP */
}

static void write_checkpoint(const char *path, const fx_buf *pkl, const float *data, int numel)
{
    FILE *fp = fopen(path, "wb");
    relate_zip_writer z;
    relate_error err = {0};
    relate_zip_writer_init(&z, fp);
    CHECK(relate_zip_writer_add(&z, "archive/data.pkl", pkl->p, pkl->n, &err) == RELATE_OK);
    CHECK(relate_zip_writer_add(&z, "archive/data/0", data, (size_t)numel * sizeof *data, &err) == RELATE_OK);
    CHECK(relate_zip_writer_add(&z, "archive/version", "3\n", 2, &err) == RELATE_OK);
    CHECK(relate_zip_writer_finish(&z, &err) == RELATE_OK);
    relate_zip_writer_free(&z);
    fclose(fp);
}

/* Sets the uncompressed size that the central directory declares for entry `name`. */
static void declare_size(const char *path, const char *name, uint32_t size)
{
    size_t n;
    uint8_t *buf = fx_read(path, &n);
    size_t len = strlen(name);
    int patched = 0;
    for (size_t p = 0; p + 46 + len <= n; p++)
        if (memcmp(buf + p, "PK\x01\x02", 4) == 0 && buf[p + 28] == len && memcmp(buf + p + 46, name, len) == 0) {
            for (int k = 0; k < 4; k++)
                buf[p + 24 + k] = (uint8_t)(size >> (8 * k));
            patched++;
        }
    CHECK(patched == 1);
    fx_write(path, buf, n);
    free(buf);
}

static void expect_open_refused(const char *path, const char *want)
{
    relate_ckpt *c = NULL;
    relate_error err = {0};
    CHECK(relate_ckpt_open(&c, path, &err) == RELATE_ERR_FORMAT && c == NULL);
    CHECK_MSG(strstr(err.msg, want) != NULL, "'%s' lacks '%s'", err.msg, want);
}

static void test_checkpoints(const char *dir)
{
    const float data[6] = {1, 2, 3, 4, 5, 6};
    fx_buf pkl = {0};
    tensor_pickle(&pkl, 6, 2, 3, 3, 1);
    const char *good = fx_path("%s/good.pt", dir);
    write_checkpoint(good, &pkl, data, 6);

    /* The hand-made file is a valid checkpoint: what follows breaks one thing at a time. */
    relate_ckpt *c = NULL;
    relate_error err = {0};
    CHECK_MSG(relate_ckpt_open(&c, good, &err) == RELATE_OK, "%s", err.msg);
    relate_ckpt_tensor t;
    CHECK_MSG(c && relate_ckpt_get_tensor(c, "w", &t, &err) == RELATE_OK, "%s", err.msg);
    if (c && t.f32) {
        CHECK(t.ndim == 2 && t.shape[0] == 2 && t.shape[1] == 3 && t.f32[5] == 6.0f);
        relate_ckpt_tensor_free(&t);
    }
    relate_ckpt_close(c);

    /* A stored entry that declares more bytes than it holds: data.pkl (the parser read past the
     * file), and a tensor record (gather read 73,728 bytes past the buffer). */
    const char *big_pkl = fx_path("%s/big_pkl.pt", dir);
    write_checkpoint(big_pkl, &pkl, data, 6);
    declare_size(big_pkl, "archive/data.pkl", 200000);
    expect_open_refused(big_pkl, "declares 200000 bytes");
    const char *big_rec = fx_path("%s/big_record.pt", dir);
    write_checkpoint(big_rec, &pkl, data, 6);
    declare_size(big_rec, "archive/data/0", 73728 + 24);
    expect_open_refused(big_rec, "archive/data/0");

    /* Zero strides: one stored float viewed as 100,000 x 100,000 asked for a 40 GB allocation. */
    fx_buf wide = {0};
    tensor_pickle(&wide, 1, 100000, 100000, 0, 0);
    const char *zero = fx_path("%s/zero_stride.pt", dir);
    write_checkpoint(zero, &wide, data, 1);
    c = NULL;
    memset(&err, 0, sizeof err);
    CHECK_MSG(relate_ckpt_open(&c, zero, &err) == RELATE_OK, "%s", err.msg);
    memset(&err, 0, sizeof err);
    CHECK(c && relate_ckpt_get_tensor(c, "w", &t, &err) == RELATE_ERR_FORMAT && !t.f32);
    CHECK_MSG(strstr(err.msg, "10000000000 elements") != NULL, "%s", err.msg);
    relate_ckpt_close(c);
    fx_free(&wide);
    fx_free(&pkl);
}

/* ------------------------------------------------------------------ pickle */
static void test_pickle_empty_tuple(void)
{
    /* MARK then TUPLE on an empty stack: computed NULL + 0 (UBSan). Python gives (). */
    relate_pickle pk;
    relate_error err = {0};
    const uint8_t in[] = {0x80, 0x02, '(', 't', '.'};
    CHECK_MSG(relate_pickle_load(&pk, in, sizeof in, NULL, &err) == RELATE_OK, "%s", err.msg);
    CHECK(pk.root && pk.root->kind == RELATE_PK_TUPLE && pk.root->count == 0);
    relate_pickle_free(&pk);
}

/* ------------------------------------------------------------------ IDX */
static void test_idx_overflow(const char *dir)
{
    /* Three dimensions of 2^32 - 1 were multiplied before any was checked (signed overflow). */
    const uint8_t head[16] = {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    fx_write(fx_path("%s/idx/fashionmnist/train-images-idx3-ubyte", dir), head, sizeof head);
    const uint8_t labels[9] = {0, 0, 8, 1, 0, 0, 0, 1, 3};
    fx_write(fx_path("%s/idx/fashionmnist/train-labels-idx1-ubyte", dir), labels, sizeof labels);
    relate_dataset ds;
    relate_error err = {0};
    CHECK(relate_dataset_open(&ds, "fashionmnist", fx_path("%s/idx", dir), &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "declares 4294967295 items") != NULL, "%s", err.msg);
}

/* ------------------------------------------------------------------ JPEG */
static void test_jpeg_truncated_huge(const char *dir)
{
    /* A real 16 x 16 JPEG whose frame header is rewritten to a larger size and whose scan is cut
     * 4 bytes in. At 32773 x 4349 the decoder noticed the end, went on decoding 142 million grey
     * pixels (6 s and 513 MB under the sanitizers, 0.65 s in Release), and only then failed; such
     * a file is now refused from its header (too small for its blocks). At 512 x 512, which the
     * header allows, decoding stops at the first sign of the end. */
    uint8_t rgb[16 * 16 * 3];
    for (int k = 0; k < (int)sizeof rgb; k++)
        rgb[k] = fx_pix(k, 0, 1, 2);
    const char *path = fx_path("%s/small.jpg", dir);
    fx_write_jpeg(path, rgb, 16, 16, 90);
    size_t n;
    uint8_t *buf = fx_read(path, &n);
    size_t sof = 0, sos = 0;
    for (size_t p = 2; p + 9 < n && !sos; p++) {
        if (buf[p] == 0xff && buf[p + 1] == 0xc0)
            sof = p;
        if (buf[p] == 0xff && buf[p + 1] == 0xda)
            sos = p;
    }
    CHECK(sof && sos);
    if (!sof || !sos) {
        free(buf);
        return;
    }
    const size_t cut = sos + 2 + ((size_t)buf[sos + 2] << 8 | buf[sos + 3]) + 4;
    CHECK(cut < n);
    const int sizes[2][2] = {{4349, 32773}, {512, 512}};
    const char *want[2] = {"32773 x 4349 JPEG cannot fit in", "JPEG data ends early (truncated file)"};
    for (int k = 0; k < 2; k++) {
        buf[sof + 5] = (uint8_t)(sizes[k][0] >> 8), buf[sof + 6] = (uint8_t)(sizes[k][0] & 255); /* height */
        buf[sof + 7] = (uint8_t)(sizes[k][1] >> 8), buf[sof + 8] = (uint8_t)(sizes[k][1] & 255); /* width */
        relate_image img;
        relate_error err = {0};
        clock_t t0 = clock();
        CHECK(relate_image_decode_mem(buf, cut, "hostile.jpg", &img, &err) == RELATE_ERR_FORMAT);
        double cpu = (double)(clock() - t0) / CLOCKS_PER_SEC;
        CHECK_MSG(strstr(err.msg, want[k]) != NULL, "%s", err.msg);
        /* Not a speed test: the old decoder took 0.65 s of CPU on the first (Release); now it is
         * refused from its header, the second within the first row of blocks. */
        CHECK_MSG(cpu < 0.3, "%.2f s of CPU to refuse a %zu-byte file", cpu, cut);
    }
    free(buf);
}

/* A 241-byte progressive grayscale JPEG (found by fuzz/fuzz_image) that declares 2048 x 64512
 * pixels and ends with a proper end marker: it "decoded" in 11 s and 950 MB. A Huffman-coded
 * JPEG needs at least one bit per 8x8 block, so it is refused from its header. */
static const uint8_t k_jpeg_bomb[] = {
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0xc6, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
    0x1c, 0xb7, 0xd0, 0xd1, 0x74, 0xd7, 0xd5, 0x83, 0x6a, 0xcb, 0xce, 0xb2, 0x62, 0x2f, 0x58, 0x68,
    0x8f, 0xb7, 0x84, 0x9e, 0x84, 0x3c, 0xd9, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x51, 0x00, 0x01,
    0x00, 0x00, 0xff, 0xdb, 0x00, 0x43, 0x00, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x7e, 0x19, 0x21, 0x00, 0x10, 0x61, 0x00, 0x00, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x01, 0x01, 0x61, 0x63, 0x54, 0x4c, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0xff, 0xc2, 0x00, 0x0b, 0x08,
    0xfc, 0x00, 0x08, 0x00, 0x01, 0x01, 0x11, 0x00, 0x41, 0xff, 0xc4, 0x00, 0x22, 0x10, 0x00, 0x02,
    0x01, 0x02, 0x05, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x05,
    0x03, 0x13, 0x14, 0x00, 0x01, 0x02, 0x06, 0x95, 0x00, 0x00, 0x00, 0x22, 0x37, 0xff, 0xda, 0x00,
    0x08, 0x01, 0x01, 0x00, 0x06, 0x3f, 0x02, 0xd6, 0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x06,
    0x3f, 0x02, 0x2a, 0xd6, 0x07, 0xcb, 0xed, 0x92, 0x2a, 0xc5, 0xe3, 0xe8, 0x2a, 0x8f, 0x74, 0x1c,
    0xb7, 0xd0, 0xd1, 0x74, 0xd7, 0xd5, 0x83, 0x6a, 0xcb, 0xce, 0xb2, 0x62, 0x2f, 0x58, 0x68, 0x8f,
    0xb7, 0x84, 0x9e, 0xc4, 0x3c, 0xd9, 0x00, 0x00, 0x00, 0xb3, 0x0e, 0x63, 0x7c, 0xa2, 0xbf, 0xff,
    0xd9,
};

static void test_jpeg_small_file_huge_image(void)
{
    relate_image img;
    relate_error err = {0};
    clock_t t0 = clock();
    CHECK(relate_image_decode_mem(k_jpeg_bomb, sizeof k_jpeg_bomb, "bomb.jpg", &img, &err) == RELATE_ERR_FORMAT);
    double cpu = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK_MSG(strstr(err.msg, "2048 x 64512 JPEG cannot fit in 241 bytes"), "%s", err.msg);
    CHECK_MSG(cpu < 0.3, "%.2f s of CPU to refuse a 241-byte file", cpu);
}

int main(void)
{
    const char *dir = fx_tmpdir("hostile");
    test_checkpoints(dir);
    test_pickle_empty_tuple();
    test_idx_overflow(dir);
    test_jpeg_truncated_huge(dir);
    test_jpeg_small_file_huge_image();
    fx_cleanup();
    return relate_test_finish();
}
