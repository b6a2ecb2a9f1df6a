/* seeds.c: the valid inputs of seeds.h. The pickle pieces are the exact opcode sequences cPickle
 * wrote for CIFAR's batches (as tests/data/data_fixtures.c emits them); checkpoints come from
 * relate's own writer, and their legacy twins from the same data.pkl with the legacy persistent
 * ids and torch 1.4's record layout (as tests/checkpoint/ckpt_fixtures.c builds them). */
#define _POSIX_C_SOURCE 200809L
#include "seeds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include "io/pickle_write.h"
#include "io/zip_stored.h"
#include "relate/checkpoint.h"

/* ------------------------------------------------------------------ python-2 pickles */
static void pk2_short_binstring(fz_buf *b, const char *s)
{
    fz_put_u8(b, 'U');
    fz_put_u8(b, (int)strlen(s));
    fz_put_str(b, s);
}

static void pk2_binstring(fz_buf *b, const void *data, size_t n)
{
    fz_put_u8(b, 'T');
    fz_put_le32(b, (uint32_t)n);
    fz_put(b, data, n);
}

static void pk2_int(fz_buf *b, int64_t v)
{
    if (v >= 0 && v < 256) {
        fz_put_u8(b, 'K');
        fz_put_u8(b, (int)v);
    } else if (v >= 0 && v < 65536) {
        fz_put_u8(b, 'M');
        fz_put_u8(b, (int)(v & 255));
        fz_put_u8(b, (int)(v >> 8));
    } else {
        fz_put_u8(b, 'J');
        fz_put_le32(b, (uint32_t)(int32_t)v);
    }
}

static void binput(fz_buf *b, int *memo)
{
    fz_put_u8(b, 'q');
    fz_put_u8(b, (*memo)++);
}

static void int_list(fz_buf *b, int *memo, const int *v, int n)
{
    fz_put_u8(b, ']');
    binput(b, memo);
    for (int i = 0; i < n; i += 1000) { /* cPickle batches APPENDS by 1000 */
        fz_put_u8(b, '(');
        for (int k = i; k < n && k < i + 1000; k++)
            pk2_int(b, v[k]);
        fz_put_u8(b, 'e');
    }
}

void sd_pk2_cifar_batch(fz_buf *b, const uint8_t *pixels, int n, const char *label_key, const int *labels,
                        const char *label_key2, const int *labels2)
{
    int memo = 1;
    fz_put(b, "\x80\x02}", 3);
    binput(b, &memo);
    fz_put_u8(b, '(');
    pk2_short_binstring(b, "data");
    binput(b, &memo);
    fz_put_str(b, "cnumpy.core.multiarray\n_reconstruct\n");
    binput(b, &memo);
    fz_put_str(b, "cnumpy\nndarray\n");
    binput(b, &memo);
    fz_put(b, "K\x00\x85", 3);
    pk2_short_binstring(b, "b");
    fz_put(b, "\x87R", 2);
    binput(b, &memo);
    fz_put(b, "(K\x01", 3);
    pk2_int(b, n);
    pk2_int(b, 3072);
    fz_put_u8(b, 0x86);
    fz_put_str(b, "cnumpy\ndtype\n");
    binput(b, &memo);
    pk2_short_binstring(b, "u1");
    fz_put(b, "K\x00K\x01\x87R", 6);
    binput(b, &memo);
    fz_put(b, "(K\x03", 3);
    pk2_short_binstring(b, "|");
    fz_put(b, "NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89", 18);
    pk2_binstring(b, pixels, (size_t)n * 3072);
    fz_put(b, "tb", 2);
    pk2_short_binstring(b, label_key);
    binput(b, &memo);
    int_list(b, &memo, labels, n);
    if (label_key2) {
        pk2_short_binstring(b, label_key2);
        binput(b, &memo);
        int_list(b, &memo, labels2, n);
    }
    pk2_short_binstring(b, "batch_label");
    binput(b, &memo);
    pk2_short_binstring(b, "training batch 1 of 5");
    binput(b, &memo);
    pk2_short_binstring(b, "filenames");
    binput(b, &memo);
    fz_put_u8(b, ']');
    binput(b, &memo);
    fz_put_u8(b, '(');
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "img_%d.png", i);
        pk2_short_binstring(b, name);
    }
    fz_put(b, "eu.", 3);
}

void sd_pk2_names(fz_buf *b, const char *key, const char *const *names, int n, const char *key2,
                  const char *const *names2, int n2)
{
    int memo = 1;
    fz_put(b, "\x80\x02}", 3);
    binput(b, &memo);
    fz_put_u8(b, '(');
    for (int pass = 0; pass < 2; pass++) {
        const char *k = pass ? key2 : key;
        const char *const *v = pass ? names2 : names;
        int m = pass ? n2 : n;
        if (!k)
            continue;
        pk2_short_binstring(b, k);
        binput(b, &memo);
        fz_put_u8(b, ']');
        binput(b, &memo);
        fz_put_u8(b, '(');
        for (int i = 0; i < m; i++)
            pk2_short_binstring(b, v[i]);
        fz_put_u8(b, 'e');
    }
    pk2_short_binstring(b, "num_cases_per_batch");
    pk2_int(b, 10000);
    fz_put(b, "u.", 2);
}

void sd_cifar_pickle(fz_buf *b, int f, int n, bool hundred)
{
    uint8_t *px = malloc((size_t)n * 3072);
    int *fine = malloc(sizeof(int) * (size_t)n), *coarse = malloc(sizeof(int) * (size_t)n);
    if (!px || !fine || !coarse)
        abort();
    for (int r = 0; r < n; r++) {
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 1024; p++)
                px[(size_t)r * 3072 + (size_t)c * 1024 + (size_t)p] = fz_pix(f, r, c, p);
        fine[r] = hundred ? (f * 31 + r * 13) % 100 : (f + r * 7) % 10;
        coarse[r] = (f * 7 + r * 5) % 20;
    }
    if (hundred)
        sd_pk2_cifar_batch(b, px, n, "fine_labels", fine, "coarse_labels", coarse);
    else
        sd_pk2_cifar_batch(b, px, n, "labels", fine, NULL, NULL);
    free(px);
    free(fine);
    free(coarse);
}

void sd_cifar_meta_pickle(fz_buf *b, bool hundred)
{
    static char fbuf[100][16], cbuf[20][16];
    const char *fine[100], *coarse[20];
    for (int i = 0; i < 100; i++) {
        snprintf(fbuf[i], sizeof fbuf[i], "f%d", i);
        fine[i] = fbuf[i];
    }
    for (int i = 0; i < 20; i++) {
        snprintf(cbuf[i], sizeof cbuf[i], "c%d", i);
        coarse[i] = cbuf[i];
    }
    if (hundred)
        sd_pk2_names(b, "fine_label_names", fine, 100, "coarse_label_names", coarse, 20);
    else
        sd_pk2_names(b, "label_names", fine, 10, NULL, NULL, 0);
}

/* pickle.dumps results by Python 3.11 (tests/data/test_data_io.c) and small hand-written ones. */
const char *const sd_pickle_hex[] = {
    /* OrderedDict([('w', 1.5), ('n', [1, -2, 70000, 2**40, -2**40, None, True, False]),
     * ('t', ('x', b'\x00\x01'))]), protocol 4 */
    "80049567000000000000008c0b636f6c6c656374696f6e73948c0b4f72646572656444696374949394295294288c017794473ff8"
    "0000000000008c016e945d94284b014afeffffff4a701101008a060000000000018a060000000000ff4e8889658c0174948c0178"
    "9443020001948694752e",
    /* the same, protocol 2 */
    "800263636f6c6c656374696f6e730a4f726465726564446963740a710029527101285801000000777102473ff800000000000058"
    "010000006e71035d7104284b014afeffffff4a701101008a060000000000018a060000000000ff4e88896558010000007471055801"
    "000000787106635f636f646563730a656e636f64650a710758020000000001710858060000006c6174696e31710986710a52710b86"
    "710c752e",
    /* {'a': persistent_id(('storage', 'key0', 3)), 'b': the same (memoised)}, protocol 2 */
    "80027d7100285801000000617101580700000073746f72616765710258040000006b65793071034b03877104515801000000627105"
    "680451752e",
    /* os.system refused (protocol 2); STACK_GLOBAL builtins.eval (protocol 4) */
    "8002636f730a73797374656d0a710058020000006c7371018571025271032e",
    "80048c086275696c74696e73948c046576616c94932e",
    /* protocol 4: FRAME, EMPTY_LIST, MEMOIZE, MARK, SHORT_BINUNICODE, BINBYTES, APPENDS */
    "8004951000000000000000" "5d94288c0161944201000000629465" "2e",
    NULL};

size_t sd_unhex(const char *hex, fz_buf *out)
{
    size_t n = 0;
    for (; hex[0] && hex[1]; hex += 2, n++) {
        unsigned v;
        if (sscanf(hex, "%2x", &v) != 1)
            break;
        fz_put_u8(out, (int)v);
    }
    return n;
}

/* ------------------------------------------------------------------ dataset records */
void sd_cifar_bin(fz_buf *b, int f, int n, int label_bytes)
{
    for (int r = 0; r < n; r++) {
        if (label_bytes == 1) {
            fz_put_u8(b, (f * 3 + r) % 10);
        } else {
            fz_put_u8(b, (f * 7 + r * 5) % 20);
            fz_put_u8(b, (f * 31 + r * 13) % 100);
        }
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 1024; p++)
                fz_put_u8(b, fz_pix(f, r, c, p));
    }
}

void sd_stl_images(fz_buf *b, int split, int n)
{
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            for (int x = 0; x < 96; x++)
                for (int y = 0; y < 96; y++)
                    fz_put_u8(b, fz_pix(split * 10 + i, c, y, x * 3));
}

void sd_stl_labels(fz_buf *b, int split, int n)
{
    for (int i = 0; i < n; i++)
        fz_put_u8(b, 1 + (split * 4 + i * 3) % 10);
}

void sd_idx_images(fz_buf *b, int n, int seed, int rows, int cols)
{
    fz_put_be32(b, 0x803);
    fz_put_be32(b, (uint32_t)n);
    fz_put_be32(b, (uint32_t)rows);
    fz_put_be32(b, (uint32_t)cols);
    for (int i = 0; i < n; i++)
        for (int p = 0; p < rows * cols; p++)
            fz_put_u8(b, fz_pix(seed, i, p, 1));
}

void sd_idx_labels(fz_buf *b, int n, int seed)
{
    fz_put_be32(b, 0x801);
    fz_put_be32(b, (uint32_t)n);
    for (int i = 0; i < n; i++)
        fz_put_u8(b, (seed + i * 3) % 10);
}

/* ------------------------------------------------------------------ images */
void sd_jpeg(fz_buf *out, int w, int h, int id, int quality, bool gray, bool progressive, bool s444, int restart)
{
    int comps = gray ? 1 : 3;
    uint8_t *px = malloc((size_t)w * (size_t)h * (size_t)comps);
    if (!px)
        abort();
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < comps; c++)
                px[((size_t)y * (size_t)w + (size_t)x) * (size_t)comps + (size_t)c] = fz_pix(id, y, x, c);
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    unsigned char *mem = NULL;
    unsigned long memsize = 0;
    jpeg_mem_dest(&cinfo, &mem, &memsize);
    cinfo.image_width = (JDIMENSION)w;
    cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = comps;
    cinfo.in_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    if (progressive)
        jpeg_simple_progression(&cinfo);
    if (s444 && !gray)
        for (int c = 0; c < 3; c++)
            cinfo.comp_info[c].h_samp_factor = cinfo.comp_info[c].v_samp_factor = 1;
    cinfo.restart_in_rows = restart;
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = px + (size_t)cinfo.next_scanline * (size_t)w * (size_t)comps;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    fz_put(out, mem, memsize);
    jpeg_destroy_compress(&cinfo);
    free(mem);
    free(px);
}

static void png_to_buf(png_structp png, png_bytep data, png_size_t n) { fz_put(png_get_io_ptr(png), data, n); }
static void png_flush_none(png_structp png) { (void)png; }

void sd_png(fz_buf *out, int w, int h, int id, int color_type, int bit_depth, bool interlace, bool trns)
{
    int channels = color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_PALETTE ? 1
                   : color_type == PNG_COLOR_TYPE_GRAY_ALPHA                                 ? 2
                   : color_type == PNG_COLOR_TYPE_RGB                                        ? 3
                                                                                             : 4;
    size_t rowbytes = ((size_t)w * (size_t)channels * (size_t)bit_depth + 7) / 8;
    uint8_t *px = malloc(rowbytes * (size_t)h);
    png_bytep *rows = malloc(sizeof *rows * (size_t)h);
    if (!px || !rows)
        abort();
    for (int y = 0; y < h; y++) {
        rows[y] = px + (size_t)y * rowbytes;
        for (size_t k = 0; k < rowbytes; k++)
            rows[y][k] = fz_pix(id, y, (int)k, color_type);
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info)
        abort();
    if (setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "sd_png: libpng failed\n");
        abort();
    }
    png_set_write_fn(png, out, png_to_buf, png_flush_none);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, bit_depth, color_type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[256];
        png_byte alpha[256];
        int n = 1 << bit_depth;
        for (int i = 0; i < n; i++) {
            pal[i].red = fz_pix(i, 1, 0, 0);
            pal[i].green = fz_pix(i, 2, 0, 0);
            pal[i].blue = fz_pix(i, 3, 0, 0);
            alpha[i] = (png_byte)(255 - i);
        }
        png_set_PLTE(png, info, pal, n);
        if (trns)
            png_set_tRNS(png, info, alpha, n, NULL);
    } else if (trns && (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_RGB)) {
        png_color_16 t = {.gray = 1, .red = 1, .green = 2, .blue = 3};
        png_set_tRNS(png, info, NULL, 0, &t);
    }
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    free(px);
}

/* ------------------------------------------------------------------ stores and optimizers */
void sd_small_store(relate_params *p)
{
    relate_error err = {0};
    relate_params_init(p);
    relate_params_add(p, "conv.weight", RELATE_PARAM, 4, (int64_t[]){2, 1, 3, 3});
    relate_params_add(p, "bn.weight", RELATE_PARAM, 1, (int64_t[]){2});
    relate_params_add(p, "bn.bias", RELATE_PARAM, 1, (int64_t[]){2});
    relate_params_add(p, "bn.running_mean", RELATE_BUFFER_F32, 1, (int64_t[]){2});
    relate_params_add(p, "bn.running_var", RELATE_BUFFER_F32, 1, (int64_t[]){2});
    relate_params_add(p, "bn.num_batches_tracked", RELATE_BUFFER_I64, 0, NULL);
    relate_params_add(p, "fc.weight", RELATE_PARAM, 2, (int64_t[]){3, 4});
    relate_params_add(p, "empty.buf", RELATE_BUFFER_F32, 2, (int64_t[]){0, 3});
    if (relate_params_finalize(p, &err) != RELATE_OK) {
        fprintf(stderr, "sd_small_store: %s\n", err.msg);
        abort();
    }
}

void sd_views_store(relate_params *p)
{
    relate_error err = {0};
    relate_params_init(p);
    relate_params_add(p, "rows", RELATE_PARAM, 2, (int64_t[]){2, 3});
    relate_params_add(p, "transposed", RELATE_BUFFER_F32, 2, (int64_t[]){3, 4});
    relate_params_add(p, "expanded", RELATE_BUFFER_F32, 2, (int64_t[]){2, 3});
    relate_params_add(p, "half", RELATE_PARAM, 1, (int64_t[]){2});
    relate_params_add(p, "count", RELATE_BUFFER_I64, 0, NULL);
    if (relate_params_finalize(p, &err) != RELATE_OK) {
        fprintf(stderr, "sd_views_store: %s\n", err.msg);
        abort();
    }
}

relate_param_group sd_group(relate_params *p, relate_param **params)
{
    int n = 0;
    for (int i = 0; i < p->count; i++)
        if (p->items[i]->kind == RELATE_PARAM && p->items[i]->numel > 0)
            params[n++] = p->items[i];
    return (relate_param_group){.params = params, .count = n, .lr = 1e-3};
}

int sd_adam(relate_adam *o, relate_param_group *g)
{
    relate_error err = {0};
    return relate_adam_init(o, g, 1, 0.9, 0.999, 1e-8, &err) != RELATE_OK;
}

int sd_sgd(relate_sgd *o, relate_param_group *g)
{
    relate_error err = {0};
    return relate_sgd_init(o, g, 1, 0.9, 0.0, false, &err) != RELATE_OK;
}

static float small_value(uint64_t seed, uint64_t i)
{
    uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull ^ (i + 1) * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 31;
    return (float)((int)(x % 2001) - 1000) / 1000.0f;
}

static void fill_store(relate_params *p, uint64_t seed)
{
    for (int i = 0; i < p->count; i++) {
        relate_param *e = p->items[i];
        for (int64_t k = 0; k < e->numel; k++) {
            if (e->kind == RELATE_BUFFER_I64)
                e->i64[k] = (int64_t)seed * 1000 + 7;
            else
                e->data[k] = small_value(seed * 131 + (uint64_t)i, (uint64_t)k);
            if (e->kind == RELATE_PARAM)
                e->grad[k] = small_value(seed * 7 + (uint64_t)i, (uint64_t)k);
        }
    }
}

/* ------------------------------------------------------------------ legacy format */
static const uint8_t LEGACY_HEAD[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a,
                                      0xa8, 0x50, 0x19, 0x2e, 0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e};

/* magic, protocol 1001, system info, the object, the storage keys, then each storage's element
 * count (int64 little-endian) and bytes. */
static void legacy_assemble(fz_buf *out, const uint8_t *obj, size_t n, const char *const *keys,
                            const uint8_t *const *data, const int64_t *counts, const int *elsize, int nkeys)
{
    fz_put(out, LEGACY_HEAD, sizeof LEGACY_HEAD);
    relate_pkw w;
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    relate_pkw_empty_dict(&w);
    relate_pkw_mark(&w);
    relate_pkw_str(&w, "protocol_version");
    relate_pkw_int(&w, 1001);
    relate_pkw_str(&w, "little_endian");
    relate_pkw_bool(&w, true);
    relate_pkw_str(&w, "type_sizes");
    relate_pkw_empty_dict(&w);
    relate_pkw_mark(&w);
    relate_pkw_str(&w, "short");
    relate_pkw_int(&w, 2);
    relate_pkw_str(&w, "int");
    relate_pkw_int(&w, 4);
    relate_pkw_str(&w, "long");
    relate_pkw_int(&w, 4);
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_STOP);
    fz_put(out, w.buf, w.len);
    relate_pkw_free(&w);
    fz_put(out, obj, n);
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    relate_pkw_empty_list(&w);
    if (nkeys) {
        relate_pkw_mark(&w);
        for (int k = 0; k < nkeys; k++)
            relate_pkw_str(&w, keys[k]);
        relate_pkw_op(&w, RELATE_PKW_APPENDS);
    }
    relate_pkw_op(&w, RELATE_PKW_STOP);
    fz_put(out, w.buf, w.len);
    relate_pkw_free(&w);
    for (int k = 0; k < nkeys; k++) {
        uint8_t le[8];
        for (int b = 0; b < 8; b++)
            le[b] = (uint8_t)((uint64_t)counts[k] >> (8 * b));
        fz_put(out, le, 8);
        fz_put(out, data[k], (size_t)counts[k] * (size_t)elsize[k]);
    }
}

static int storage_elsize(const char *type)
{
    static const struct {
        const char *name;
        int size;
    } t[] = {{"FloatStorage", 4}, {"DoubleStorage", 8}, {"HalfStorage", 2}, {"BFloat16Storage", 2},
             {"LongStorage", 8},  {"IntStorage", 4},    {"ShortStorage", 2}, {"CharStorage", 1},
             {"ByteStorage", 1},  {"BoolStorage", 1}};
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
        if (strcmp(t[k].name, type) == 0)
            return t[k].size;
    return 0;
}

#define MAX_STORAGES 256

/* Rewrites a checkpoint that relate's writer made (zip) into the legacy format: the data.pkl
 * opcodes are copied with a None (no view) appended to each 5-tuple persistent id, and the
 * storage records follow the key list. Knows exactly the opcodes pickle_write.c emits. */
static int zip_to_legacy(const uint8_t *zip, size_t zn, fz_buf *out)
{
    relate_zip_reader z;
    relate_error err = {0};
    if (relate_zip_reader_open(&z, zip, zn, &err) != RELATE_OK)
        return 1;
    const relate_zip_entry *pe = relate_zip_reader_find(&z, "archive/data.pkl");
    if (!pe) {
        relate_zip_reader_free(&z);
        return 1;
    }
    const uint8_t *p = zip + pe->data_offset, *end = p + pe->size;
    fz_buf obj = {0};
    char *keys[MAX_STORAGES];
    const uint8_t *data[MAX_STORAGES];
    int64_t counts[MAX_STORAGES];
    int elsize[MAX_STORAGES], nkeys = 0, rc = 0;
    char pending[64] = "";
    size_t last_pos = 0;
    int last_op = 0;
    while (p < end && !rc) {
        int op = *p;
        size_t len = 1;
        switch (op) {
        case 0x80: len = 2; break;
        case 'K': len = 2; break;
        case 'M': len = 3; break;
        case 'J': len = 5; break;
        case 0x8a: len = 2 + (size_t)p[1]; break;
        case 'G': len = 9; break;
        case 'X': {
            uint32_t n = (uint32_t)p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 24;
            len = 5 + n;
            if (pending[0] && nkeys < MAX_STORAGES) {
                keys[nkeys] = malloc(n + 1);
                memcpy(keys[nkeys], p + 5, n);
                keys[nkeys][n] = 0;
                elsize[nkeys] = storage_elsize(pending);
                nkeys++;
                pending[0] = 0;
            }
            break;
        }
        case 'c': {
            const uint8_t *nl1 = memchr(p + 1, '\n', (size_t)(end - p - 1));
            const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
            if (!nl2) {
                rc = 1;
                break;
            }
            len = (size_t)(nl2 + 1 - p);
            size_t mlen = (size_t)(nl1 - p - 1), nlen = (size_t)(nl2 - nl1 - 1);
            if (mlen == 5 && memcmp(p + 1, "torch", 5) == 0 && nlen > 7 && nlen < sizeof pending &&
                memcmp(nl2 - 7, "Storage", 7) == 0) {
                memcpy(pending, nl1 + 1, nlen);
                pending[nlen] = 0;
            }
            break;
        }
        case 'Q':
            if (last_op == 't') { /* ... numel TUPLE -> ... numel None TUPLE */
                fz_put(&obj, "t", 1);
                obj.p[last_pos] = 'N';
            }
            break;
        case '(': case '.': case '}': case ']': case ')': case 't': case 0x85: case 0x86: case 0x87:
        case 'u': case 'e': case 'R': case 'N': case 0x88: case 0x89:
            break;
        default: rc = 1; break;
        }
        if (rc || len > (size_t)(end - p)) {
            rc = 1;
            break;
        }
        last_pos = obj.n;
        last_op = op;
        fz_put(&obj, p, len);
        p += len;
    }
    for (int k = 0; k < nkeys && !rc; k++) {
        char name[128];
        snprintf(name, sizeof name, "archive/data/%s", keys[k]);
        const relate_zip_entry *e = relate_zip_reader_find(&z, name);
        if (!e || !elsize[k]) {
            rc = 1;
            break;
        }
        data[k] = zip + e->data_offset;
        counts[k] = (int64_t)(e->size / (uint64_t)elsize[k]);
    }
    if (!rc)
        legacy_assemble(out, obj.p, obj.n, (const char *const *)keys, data, counts, elsize, nkeys);
    for (int k = 0; k < nkeys; k++)
        free(keys[k]);
    fz_free(&obj);
    relate_zip_reader_free(&z);
    return rc;
}

/* ------------------------------------------------------------------ hand-built checkpoints */
/* torch._utils._rebuild_tensor_v2 with a zip (5-tuple) or legacy (6-tuple) persistent id. */
static void pk_tensor(relate_pkw *w, const char *storage, const char *key, const char *loc, int64_t storage_numel,
                      bool legacy, int64_t offset, int ndim, const int64_t *size, const int64_t *stride)
{
    relate_pkw_global(w, "torch._utils", "_rebuild_tensor_v2");
    relate_pkw_tuple_begin(w, 6);
    relate_pkw_tuple_begin(w, legacy ? 6 : 5);
    relate_pkw_str(w, "storage");
    relate_pkw_global(w, "torch", storage);
    relate_pkw_str(w, key);
    relate_pkw_str(w, loc);
    relate_pkw_int(w, storage_numel);
    if (legacy)
        relate_pkw_none(w);
    relate_pkw_tuple_end(w, legacy ? 6 : 5);
    relate_pkw_op(w, RELATE_PKW_BINPERSID);
    relate_pkw_int(w, offset);
    relate_pkw_tuple_begin(w, ndim);
    for (int d = 0; d < ndim; d++)
        relate_pkw_int(w, size[d]);
    relate_pkw_tuple_end(w, ndim);
    relate_pkw_tuple_begin(w, ndim);
    for (int d = 0; d < ndim; d++)
        relate_pkw_int(w, stride[d]);
    relate_pkw_tuple_end(w, ndim);
    relate_pkw_bool(w, false);
    relate_pkw_global(w, "collections", "OrderedDict");
    relate_pkw_tuple_end(w, 0);
    relate_pkw_op(w, RELATE_PKW_REDUCE);
    relate_pkw_tuple_end(w, 6);
    relate_pkw_op(w, RELATE_PKW_REDUCE);
}

static void pk_odict_begin(relate_pkw *w)
{
    relate_pkw_global(w, "collections", "OrderedDict");
    relate_pkw_tuple_end(w, 0);
    relate_pkw_op(w, RELATE_PKW_REDUCE);
    relate_pkw_mark(w);
}

/* {"sd": OrderedDict(rows, transposed, expanded (stride 0, cuda), half, count), "bytes": uint8}:
 * views into shared storages, strides, offsets and dtypes. */
static void views_pickle(relate_pkw *w, bool legacy, const char *k0, const char *k1, const char *k2, const char *k3)
{
    relate_pkw_init(w);
    relate_pkw_proto(w);
    relate_pkw_empty_dict(w);
    relate_pkw_mark(w);
    relate_pkw_str(w, "sd");
    pk_odict_begin(w);
    relate_pkw_str(w, "rows");
    pk_tensor(w, "FloatStorage", k0, "cpu", 12, legacy, 3, 2, (int64_t[]){2, 3}, (int64_t[]){3, 1});
    relate_pkw_str(w, "transposed");
    pk_tensor(w, "FloatStorage", k0, "cpu", 12, legacy, 0, 2, (int64_t[]){3, 4}, (int64_t[]){1, 3});
    relate_pkw_str(w, "expanded");
    pk_tensor(w, "FloatStorage", k0, "cuda:0", 12, legacy, 6, 2, (int64_t[]){2, 3}, (int64_t[]){0, 1});
    relate_pkw_str(w, "half");
    pk_tensor(w, "HalfStorage", k1, "cpu", 2, legacy, 0, 1, (int64_t[]){2}, (int64_t[]){1});
    relate_pkw_str(w, "count");
    pk_tensor(w, "IntStorage", k2, "cpu", 2, legacy, 1, 0, NULL, NULL);
    relate_pkw_op(w, RELATE_PKW_SETITEMS);
    relate_pkw_str(w, "bytes");
    pk_tensor(w, "ByteStorage", k3, "cpu", 3, legacy, 0, 1, (int64_t[]){3}, (int64_t[]){1});
    relate_pkw_op(w, RELATE_PKW_SETITEMS);
    relate_pkw_op(w, RELATE_PKW_STOP);
}

static const float k_storage12[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static const uint16_t k_halfs[2] = {0x3c00, 0xc100};
static const int32_t k_ints[2] = {-1, 42};
static const uint8_t k_u8s[3] = {1, 2, 3};

/* A torch zip from a data.pkl and storages "0", "1", ...; written through a file because the
 * zip writer takes a FILE. */
static int torch_zip(const char *tmp, const relate_pkw *pkl, const void *const *data, const size_t *sizes, int n,
                     fz_buf *out)
{
    const char *path = fz_path("%s/hand.zip", tmp);
    FILE *f = fopen(path, "wb");
    if (!f)
        return 1;
    relate_zip_writer z;
    relate_zip_writer_init(&z, f);
    relate_error err = {0};
    int rc = relate_zip_writer_add(&z, "archive/data.pkl", pkl->buf, pkl->len, &err) != RELATE_OK;
    for (int i = 0; i < n && !rc; i++) {
        char name[32];
        snprintf(name, sizeof name, "archive/data/%d", i);
        rc = relate_zip_writer_add(&z, name, data[i], sizes[i], &err) != RELATE_OK;
    }
    rc = rc || relate_zip_writer_add(&z, "archive/version", "3\n", 2, &err) != RELATE_OK;
    rc = rc || relate_zip_writer_finish(&z, &err) != RELATE_OK;
    relate_zip_writer_free(&z);
    rc = fclose(f) != 0 || rc;
    size_t len = 0;
    uint8_t *b = rc ? NULL : fz_read(path, &len);
    if (b)
        fz_put(out, b, len);
    free(b);
    remove(path);
    return rc || !b;
}

/* ------------------------------------------------------------------ the checkpoint seeds */
typedef void (*emit_fn)(const char *name, const uint8_t *data, size_t n, void *ctx);

static int emit_file(const char *path, const char *name, bool legacy, emit_fn fn, void *ctx)
{
    size_t n = 0;
    uint8_t *b = fz_read(path, &n);
    if (!b)
        return 1;
    remove(path);
    int rc = 0;
    if (legacy) {
        fz_buf l = {0};
        rc = zip_to_legacy(b, n, &l);
        if (!rc)
            fn(name, l.p, l.n, ctx);
        fz_free(&l);
    } else {
        fn(name, b, n, ctx);
    }
    free(b);
    return rc;
}

/* Stage 1's layout: backbone, an optimizer (stepped or not), relate's extra keys; plus SGD. */
static int write_full(const char *tmp, const char *name, relate_params *p, int adam_steps, bool legacy, emit_fn fn,
                      void *ctx)
{
    relate_param **prm = malloc(sizeof *prm * (size_t)(p->count + 1));
    relate_param_group g = sd_group(p, prm);
    relate_adam adam;
    relate_sgd sgd;
    if (sd_adam(&adam, &g) || sd_sgd(&sgd, &g))
        abort();
    for (int s = 0; s < adam_steps; s++)
        relate_adam_step(&adam);
    if (adam_steps)
        relate_sgd_step(&sgd);
    relate_ckpt_writer *w = relate_ckpt_writer_create();
    int rc = !w || relate_ckpt_put_state_dict(w, "backbone", p) || relate_ckpt_put_adam(w, "optimizer", &adam) ||
             relate_ckpt_put_sgd(w, "optimizer_sgd", &sgd) || relate_ckpt_put_int(w, "epoch", 3 + adam_steps) ||
             relate_ckpt_put_str(w, "method", "relationnet") || relate_ckpt_put_str(w, "backbone_name", "conv4") ||
             relate_ckpt_put_float(w, "lr", 1e-3);
    const char *path = fz_path("%s/%s", tmp, name);
    relate_error err = {0};
    rc = rc || relate_ckpt_write(w, path, &err) != RELATE_OK;
    relate_ckpt_writer_free(w);
    relate_adam_free(&adam);
    relate_sgd_free(&sgd);
    free(prm);
    return rc || emit_file(path, name, legacy, fn, ctx);
}

/* Stage 2's layout (classifier_model.c): classifier, backbone, SGD and two Adams. */
static int write_classifier(const char *tmp, const char *name, relate_params *cls, relate_params *bb, bool legacy,
                            emit_fn fn, void *ctx)
{
    relate_param **pc = malloc(sizeof *pc * (size_t)(cls->count + 1));
    relate_param **pb = malloc(sizeof *pb * (size_t)(bb->count + 1));
    relate_param_group gc = sd_group(cls, pc), gb = sd_group(bb, pb);
    relate_adam lin, fin;
    relate_sgd sgd;
    if (sd_sgd(&sgd, &gc) || sd_adam(&lin, &gc) || sd_adam(&fin, &gb))
        abort();
    relate_sgd_step(&sgd);
    relate_adam_step(&lin);
    relate_ckpt_writer *w = relate_ckpt_writer_create();
    int rc = !w || relate_ckpt_put_state_dict(w, "classifier", cls) || relate_ckpt_put_state_dict(w, "backbone", bb) ||
             relate_ckpt_put_sgd(w, "optimizer", &sgd) || relate_ckpt_put_adam(w, "optimizer_lineval", &lin) ||
             relate_ckpt_put_adam(w, "optimizer_finetune", &fin) || relate_ckpt_put_int(w, "epoch", 7);
    const char *path = fz_path("%s/%s", tmp, name);
    relate_error err = {0};
    rc = rc || relate_ckpt_write(w, path, &err) != RELATE_OK;
    relate_ckpt_writer_free(w);
    relate_sgd_free(&sgd);
    relate_adam_free(&lin);
    relate_adam_free(&fin);
    free(pc);
    free(pb);
    return rc || emit_file(path, name, legacy, fn, ctx);
}

static int write_bare(const char *tmp, const char *name, relate_params *p, bool legacy, emit_fn fn, void *ctx)
{
    const char *path = fz_path("%s/%s", tmp, name);
    relate_error err = {0};
    if (relate_ckpt_write_state_dict(p, path, &err) != RELATE_OK)
        return 1;
    return emit_file(path, name, legacy, fn, ctx);
}

static int write_views(const char *tmp, bool legacy, emit_fn fn, void *ctx)
{
    const void *data[4] = {k_storage12, k_halfs, k_ints, k_u8s};
    relate_pkw w;
    int rc = 0;
    if (!legacy) {
        size_t sizes[4] = {48, 4, 8, 3};
        fz_buf z = {0};
        views_pickle(&w, false, "0", "1", "2", "3");
        rc = torch_zip(tmp, &w, data, sizes, 4, &z);
        relate_pkw_free(&w);
        if (!rc)
            fn("views.pt", z.p, z.n, ctx);
        fz_free(&z);
        return rc;
    }
    /* PyTorch 1.4-style numeric keys */
    const char *keys[4] = {"94160", "94208", "94304", "94400"};
    int64_t counts[4] = {12, 2, 2, 3};
    int elsize[4] = {4, 2, 4, 1};
    views_pickle(&w, true, keys[0], keys[1], keys[2], keys[3]);
    fz_buf l = {0};
    legacy_assemble(&l, w.buf, w.len, keys, (const uint8_t *const *)data, counts, elsize, 4);
    relate_pkw_free(&w);
    fn("views_legacy.pt", l.p, l.n, ctx);
    fz_free(&l);

    /* a legacy storage view: (view_key, offset, size) in the persistent id's last field */
    relate_pkw_init(&w);
    relate_pkw_proto(&w);
    pk_odict_begin(&w);
    relate_pkw_str(&w, "v");
    relate_pkw_global(&w, "torch._utils", "_rebuild_tensor_v2");
    relate_pkw_tuple_begin(&w, 6);
    relate_pkw_tuple_begin(&w, 6);
    relate_pkw_str(&w, "storage");
    relate_pkw_global(&w, "torch", "FloatStorage");
    relate_pkw_str(&w, "500");
    relate_pkw_str(&w, "cpu");
    relate_pkw_int(&w, 12);
    relate_pkw_tuple_begin(&w, 3);
    relate_pkw_str(&w, "501");
    relate_pkw_int(&w, 4);
    relate_pkw_int(&w, 6);
    relate_pkw_tuple_end(&w, 3);
    relate_pkw_tuple_end(&w, 6);
    relate_pkw_op(&w, RELATE_PKW_BINPERSID);
    relate_pkw_int(&w, 1);
    relate_pkw_tuple_begin(&w, 1);
    relate_pkw_int(&w, 3);
    relate_pkw_tuple_end(&w, 1);
    relate_pkw_tuple_begin(&w, 1);
    relate_pkw_int(&w, 1);
    relate_pkw_tuple_end(&w, 1);
    relate_pkw_bool(&w, false);
    relate_pkw_global(&w, "collections", "OrderedDict");
    relate_pkw_tuple_end(&w, 0);
    relate_pkw_op(&w, RELATE_PKW_REDUCE);
    relate_pkw_tuple_end(&w, 6);
    relate_pkw_op(&w, RELATE_PKW_REDUCE);
    relate_pkw_op(&w, RELATE_PKW_SETITEMS);
    relate_pkw_op(&w, RELATE_PKW_STOP);
    const char *vkeys[1] = {"500"};
    legacy_assemble(&l, w.buf, w.len, vkeys, (const uint8_t *const *)data, counts, elsize, 1);
    relate_pkw_free(&w);
    fn("legacy_view.pt", l.p, l.n, ctx);
    fz_free(&l);
    return rc;
}

int sd_checkpoint_files(bool legacy, emit_fn fn, void *ctx)
{
    const char *tmp = fz_tmpdir("ckptseeds");
    relate_params small, small2;
    sd_small_store(&small);
    sd_small_store(&small2);
    fill_store(&small, 1);
    fill_store(&small2, 2);
    relate_backbone bb;
    relate_error err = {0};
    if (relate_backbone_create(&bb, "conv4", 1, &err) != RELATE_OK) {
        fprintf(stderr, "conv4: %s\n", err.msg);
        return 1;
    }
    int rc = write_full(tmp, "full_small.pt", &small, 2, legacy, fn, ctx);
    rc = rc || write_full(tmp, "full_small_fresh.pt", &small2, 0, legacy, fn, ctx);
    rc = rc || write_bare(tmp, "bare_small.pt", &small, legacy, fn, ctx);
    rc = rc || write_classifier(tmp, "classifier_small.pt", &small2, &small, legacy, fn, ctx);
    rc = rc || write_views(tmp, legacy, fn, ctx);
    rc = rc || write_bare(tmp, "bare_conv4.pt", &bb.params, legacy, fn, ctx);
    rc = rc || write_full(tmp, "full_conv4.pt", &bb.params, 1, legacy, fn, ctx);
    relate_backbone_free(&bb);
    relate_params_free(&small);
    relate_params_free(&small2);
    fz_rmtree(tmp);
    return rc;
}

static void emit_seed(const char *name, const uint8_t *data, size_t n, void *ctx) { fz_seed(ctx, name, data, n); }

int sd_checkpoint_seeds(const char *dir, bool legacy) { return sd_checkpoint_files(legacy, emit_seed, (void *)dir); }
