/* test_data_io.c: the restricted unpickler (valid protocol 2 and 4 pickles, refused globals,
 * truncation at every byte, random corruption) and the image decoder (PIL goldens for every
 * JPEG / PNG variant, broken files, the PNG writer).
 * Not a dataset test: test_datasets.c opens whole datasets. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "data_fixtures.h"
#include "io/image_decode.h"
#include "io/pickle.h"
#include "relate/safetensors.h"
#include "test_util.h"

static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = 0;
    for (; hex[0] && hex[1]; hex += 2) {
        unsigned v;
        sscanf(hex, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

/* pickle.dumps(OrderedDict([('w', 1.5), ('n', [1, -2, 70000, 2**40, -2**40, None, True, False]),
 *                           ('t', ('x', b'\x00\x01'))]), protocol=4), by Python 3.11 */
static const char k_od_p4[] =
    "80049567000000000000008c0b636f6c6c656374696f6e73948c0b4f72646572656444696374949394295294288c017794473ff8"
    "0000000000008c016e945d94284b014afeffffff4a701101008a060000000000018a060000000000ff4e8889658c0174948c0178"
    "9443020001948694752e";
/* the same with protocol=2 (bytes go through _codecs.encode) */
static const char k_od_p2[] =
    "800263636f6c6c656374696f6e730a4f726465726564446963740a710029527101285801000000777102473ff800000000000058"
    "010000006e71035d7104284b014afeffffff4a701101008a060000000000018a060000000000ff4e88896558010000007471055801"
    "000000787106635f636f646563730a656e636f64650a710758020000000001710858060000006c6174696e31710986710a52710b86"
    "710c752e";
/* {'a': persistent_id(('storage', 'key0', 3)), 'b': the same id (memoised)}, protocol=2 */
static const char k_persid_p2[] =
    "80027d7100285801000000617101580700000073746f72616765710258040000006b65793071034b03877104515801000000627105"
    "680451752e";

static const relate_pk_global k_od_allow[] = {{"collections", "OrderedDict"}, {"_codecs", "encode"}, {NULL, NULL}};
static const relate_pk_global k_np_allow[] = {
    {"numpy.core.multiarray", "_reconstruct"}, {"numpy", "ndarray"}, {"numpy", "dtype"}, {NULL, NULL}};

static void check_od(const relate_pk_value *root, int protocol)
{
    CHECK(relate_pk_is_call_of(root, "collections", "OrderedDict"));
    CHECK(root->args && root->args->kind == RELATE_PK_TUPLE && root->args->count == 0);
    const relate_pk_value *w = relate_pk_dict_get(root, "w"), *n = relate_pk_dict_get(root, "n"),
                          *t = relate_pk_dict_get(root, "t");
    CHECK(w && w->kind == RELATE_PK_FLOAT && w->f == 1.5);
    CHECK(n && n->kind == RELATE_PK_LIST && n->count == 8);
    if (n && n->count == 8) {
        static const int64_t want[5] = {1, -2, 70000, 1LL << 40, -(1LL << 40)};
        for (int i = 0; i < 5; i++)
            CHECK_MSG(n->items[i]->kind == RELATE_PK_INT && n->items[i]->i == want[i], "item %d", i);
        CHECK(n->items[5]->kind == RELATE_PK_NONE);
        CHECK(n->items[6]->kind == RELATE_PK_BOOL && n->items[6]->i == 1);
        CHECK(n->items[7]->kind == RELATE_PK_BOOL && n->items[7]->i == 0);
    }
    CHECK(t && t->kind == RELATE_PK_TUPLE && t->count == 2);
    if (t && t->count == 2) {
        CHECK(t->items[0]->kind == RELATE_PK_STR && strcmp(t->items[0]->s, "x") == 0);
        if (protocol == 4)
            CHECK(t->items[1]->kind == RELATE_PK_BYTES && t->items[1]->len == 2 && memcmp(t->items[1]->s, "\0\1", 2) == 0);
        else
            CHECK(relate_pk_is_call_of(t->items[1], "_codecs", "encode"));
    }
    CHECK(relate_pk_dict_get(root, "missing") == NULL);
}

static void test_pickle_valid(void)
{
    uint8_t buf[512];
    relate_error err = {0};
    relate_pickle pk;
    size_t n = unhex(k_od_p4, buf);
    CHECK(relate_pickle_load(&pk, buf, n, k_od_allow, &err) == RELATE_OK);
    if (pk.root) {
        check_od(pk.root, 4);
        CHECK(pk.end == n);
    }
    relate_pickle_free(&pk);

    n = unhex(k_od_p2, buf);
    memset(&err, 0, sizeof err);
    CHECK(relate_pickle_load(&pk, buf, n, k_od_allow, &err) == RELATE_OK);
    if (pk.root)
        check_od(pk.root, 2);
    relate_pickle_free(&pk);

    /* bytes after STOP are left for the caller (torch's legacy format chains pickles) */
    buf[n] = 0x80;
    memset(&err, 0, sizeof err);
    CHECK(relate_pickle_load(&pk, buf, n + 1, k_od_allow, &err) == RELATE_OK && pk.end == n);
    relate_pickle_free(&pk);

    n = unhex(k_persid_p2, buf);
    memset(&err, 0, sizeof err);
    CHECK(relate_pickle_load(&pk, buf, n, NULL, &err) == RELATE_OK);
    const relate_pk_value *a = relate_pk_dict_get(pk.root, "a"), *b = relate_pk_dict_get(pk.root, "b");
    CHECK(a && a->kind == RELATE_PK_PERSID && a->pid && a->pid->kind == RELATE_PK_TUPLE && a->pid->count == 3);
    if (a && a->pid && a->pid->count == 3) {
        CHECK(strcmp(a->pid->items[0]->s, "storage") == 0 && strcmp(a->pid->items[1]->s, "key0") == 0);
        CHECK(a->pid->items[2]->i == 3);
    }
    CHECK(b && b->kind == RELATE_PK_PERSID && b->pid == (a ? a->pid : NULL)); /* BINGET shares the node */
    relate_pickle_free(&pk);
}

static relate_status load_hex(const char *hex, const relate_pk_global *allow, relate_error *err)
{
    uint8_t buf[256];
    size_t n = unhex(hex, buf);
    relate_pickle pk;
    memset(err, 0, sizeof *err);
    relate_status s = relate_pickle_load(&pk, buf, n, allow, err);
    if (s == RELATE_OK)
        relate_pickle_free(&pk);
    return s;
}

static void test_pickle_refused(void)
{
    relate_error err;
    /* pickle.dumps of os.system('ls') as a REDUCE: "cos\nsystem\n(X\x02\x00\x00\x00lstR." */
    static const uint8_t evil[] = "\x80\x02" "cos\nsystem\n" "q\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.";
    relate_pickle pk;
    memset(&err, 0, sizeof err);
    CHECK(relate_pickle_load(&pk, evil, sizeof evil - 1, k_np_allow, &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "os.system") && strstr(err.msg, "Nothing was executed"), "%s", err.msg);
    /* STACK_GLOBAL builtins.eval (protocol 4) */
    CHECK(load_hex("80048c086275696c74696e73948c046576616c94932e", k_np_allow, &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "builtins.eval") != NULL, "%s", err.msg);
    /* no allow-list at all refuses every global */
    CHECK(load_hex("8002636e756d70790a6e6461727261790a2e", NULL, &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "numpy.ndarray") != NULL, "%s", err.msg);
    /* allowed global, but only a prefix match of the name must not pass */
    CHECK(load_hex("8002636e756d70790a6e64617272617958580a2e", k_np_allow, &err) == RELATE_ERR_FORMAT);
    /* huge declared lengths: BINUNICODE 2 GB, BINBYTES8 2^63, SHORT_BINSTRING past the end */
    CHECK(load_hex("800258ffffff7f2e", NULL, &err) == RELATE_ERR_FORMAT);
    CHECK(load_hex("80028e00000000000000802e", NULL, &err) == RELATE_ERR_FORMAT);
    CHECK(load_hex("800255052e", NULL, &err) == RELATE_ERR_FORMAT);
    /* memo: LONG_BINPUT 0xffffffff, BINGET of nothing */
    CHECK(load_hex("80024e72ffffffff2e", NULL, &err) == RELATE_ERR_FORMAT);
    CHECK(load_hex("800268052e", NULL, &err) == RELATE_ERR_FORMAT);
    /* LONG1 of 9 bytes, unsupported text opcode INT ('I'), stack underflow, odd SETITEMS */
    CHECK(load_hex("80028a09010000000000000000012e", NULL, &err) == RELATE_ERR_FORMAT);
    CHECK(load_hex("800249310a2e", NULL, &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "0x49") != NULL, "%s", err.msg);
    CHECK(load_hex("8002742e", NULL, &err) == RELATE_ERR_FORMAT);
    CHECK(load_hex("8002284b01752e", NULL, &err) == RELATE_ERR_FORMAT); /* MARK K1 SETITEMS without dict */
    CHECK(load_hex("80027d284b01752e", NULL, &err) == RELATE_ERR_FORMAT);
    /* REDUCE of a non-global, BUILD on a list, empty input, no STOP, STOP on an empty stack */
    CHECK(load_hex("80024e2952", NULL, &err) == RELATE_ERR_FORMAT);
    CHECK(load_hex("80025d7d622e", NULL, &err) == RELATE_ERR_FORMAT);
    CHECK(load_hex("", NULL, &err) == RELATE_ERR_FORMAT);
    CHECK(load_hex("80024b01", NULL, &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "STOP") != NULL, "%s", err.msg);
    CHECK(load_hex("80022e", NULL, &err) == RELATE_ERR_FORMAT);
}

static void make_cifar_pickle(fx_buf *b, int n)
{
    uint8_t *px = malloc((size_t)n * 3072);
    int *labels = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) {
        labels[i] = (i * 3) % 10;
        for (int k = 0; k < 3072; k++)
            px[(size_t)i * 3072 + (size_t)k] = fx_pix(i, k, 0, 0);
    }
    pk2_cifar_batch(b, px, n, "labels", labels, NULL, NULL);
    free(px);
    free(labels);
}

static void test_pickle_ndarray_and_corruption(void)
{
    fx_buf b = {0};
    make_cifar_pickle(&b, 2);
    relate_error err = {0};
    relate_pickle pk;
    CHECK(relate_pickle_load(&pk, b.p, b.n, k_np_allow, &err) == RELATE_OK);
    relate_pk_ndarray a;
    CHECK(relate_pk_as_ndarray(relate_pk_dict_get(pk.root, "data"), &a, &err) == RELATE_OK);
    CHECK(a.kind == 'u' && a.itemsize == 1 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3072 && !a.fortran_order);
    CHECK(a.nbytes == 6144 && a.data && a.data[3072 + 5] == fx_pix(1, 5, 0, 0));
    const relate_pk_value *l = relate_pk_dict_get(pk.root, "labels");
    CHECK(l && l->kind == RELATE_PK_LIST && l->count == 2 && l->items[1]->i == 3);
    /* something that is not an array */
    memset(&err, 0, sizeof err);
    CHECK(relate_pk_as_ndarray(l, &a, &err) == RELATE_ERR_FORMAT);
    relate_pickle_free(&pk);

    /* every truncation fails cleanly */
    int ok_prefix = 0;
    for (size_t cut = 0; cut < b.n; cut++) {
        memset(&err, 0, sizeof err);
        relate_status s = relate_pickle_load(&pk, b.p, cut, k_np_allow, &err);
        if (s == RELATE_OK) {
            ok_prefix++;
            relate_pickle_free(&pk);
        } else if (err.msg[0] == 0) {
            ok_prefix += 1000; /* a failure without a message */
        }
    }
    CHECK_MSG(ok_prefix == 0, "%d truncated pickles were accepted or failed silently", ok_prefix);

    /* random single-byte corruption: any outcome but a crash or a wrong-size array */
    uint64_t st = 12345;
    uint8_t *copy = malloc(b.n);
    int bad_arrays = 0;
    for (int trial = 0; trial < 3000; trial++) {
        memcpy(copy, b.p, b.n);
        for (int k = 0; k < 1 + trial % 3; k++) {
            st = st * 6364136223846793005ULL + 1442695040888963407ULL;
            /* corrupt the opcode region (the first 400 bytes) most of the time */
            size_t pos = (size_t)(st >> 33) % (trial % 4 ? 400 : b.n);
            copy[pos] = (uint8_t)(st >> 20);
        }
        memset(&err, 0, sizeof err);
        if (relate_pickle_load(&pk, copy, b.n, k_np_allow, &err) == RELATE_OK) {
            if (relate_pk_as_ndarray(relate_pk_dict_get(pk.root, "data"), &a, &err) == RELATE_OK &&
                (a.data < copy || a.data + a.nbytes > copy + b.n || (size_t)a.numel * (size_t)a.itemsize != a.nbytes))
                bad_arrays++;
            relate_pickle_free(&pk);
        }
    }
    CHECK(bad_arrays == 0);
    free(copy);

    /* the data string one byte short of the declared shape */
    fx_buf c = {0};
    make_cifar_pickle(&c, 2);
    uint8_t *t = memchr(c.p + 100, 'T', c.n - 100); /* the BINSTRING of the pixels */
    CHECK(t != NULL);
    if (t) {
        t[1] = (uint8_t)(6143 & 255), t[2] = (uint8_t)(6143 >> 8);
        /* the stolen byte becomes an opcode: 0x?? is pixel data; it must not crash */
        memset(&err, 0, sizeof err);
        if (relate_pickle_load(&pk, c.p, c.n, k_np_allow, &err) == RELATE_OK) {
            CHECK(relate_pk_as_ndarray(relate_pk_dict_get(pk.root, "data"), &a, &err) != RELATE_OK);
            relate_pickle_free(&pk);
        }
    }
    fx_free(&c);
    fx_free(&b);
}

/* ------------------------------------------------------------------ images */
static void test_golden_images(void)
{
    relate_safetensors st;
    relate_error err = {0};
    const char *path = RELATE_GOLDEN_DIR "/images.safetensors";
    CHECK_MSG(relate_safetensors_open(&st, path, &err) == RELATE_OK, "%s (regenerate: /usr/bin/python3 "
              "tools/make_golden.py --only images)", err.msg);
    if (err.code)
        return;
    CHECK(st.count >= 20);
    for (int i = 0; i < st.count; i++) {
        const relate_st_tensor *t = &st.tensors[i];
        relate_image img;
        memset(&err, 0, sizeof err);
        relate_status s = relate_image_decode_file(fx_path("%s/images/%s", RELATE_GOLDEN_DIR, t->name), &img, &err);
        CHECK_MSG(s == RELATE_OK, "%s: %s", t->name, err.msg);
        if (s)
            continue;
        CHECK_MSG(t->ndim == 3 && t->shape[0] == img.height && t->shape[1] == img.width && t->shape[2] == 3,
                  "%s: %d x %d", t->name, img.width, img.height);
        if (t->shape[0] == img.height && t->shape[1] == img.width) {
            int maxdiff = 0;
            size_t ndiff = 0;
            const uint8_t *want = t->data;
            for (size_t k = 0; k < t->nbytes; k++) {
                int d = abs((int)img.pixels[k] - (int)want[k]);
                maxdiff = d > maxdiff ? d : maxdiff;
                ndiff += d != 0;
            }
            CHECK_MSG(maxdiff == 0, "%s: %zu bytes differ from PIL, max difference %d", t->name, ndiff, maxdiff);
        }
        relate_image_free(&img);
    }
    relate_safetensors_close(&st);
}

static relate_status decode_bytes(const uint8_t *p, size_t n, relate_error *err)
{
    relate_image img;
    memset(err, 0, sizeof *err);
    relate_status s = relate_image_decode_mem(p, n, "test", &img, err);
    if (s == RELATE_OK)
        relate_image_free(&img);
    return s;
}

static void put_chunk(fx_buf *b, const char *type, const uint8_t *data, uint32_t n)
{
    fx_put_be32(b, n);
    fx_put(b, type, 4);
    fx_put(b, data, n);
    uLong crc = crc32(0, (const Bytef *)type, 4);
    crc = crc32(crc, data, n);
    fx_put_be32(b, (uint32_t)crc);
}

static void test_broken_images(const char *dir)
{
    relate_error err;
    size_t n;
    uint8_t *jpg = fx_read(RELATE_GOLDEN_DIR "/images/rgb_420.jpg", &n);
    CHECK(jpg != NULL);
    if (jpg) {
        CHECK(decode_bytes(jpg, n, &err) == RELATE_OK);
        CHECK(decode_bytes(jpg, n - 40, &err) == RELATE_ERR_FORMAT); /* inside the scan data */
        CHECK_MSG(strstr(err.msg, "truncated") != NULL, "%s", err.msg);
        CHECK(decode_bytes(jpg, 40, &err) == RELATE_ERR_FORMAT);
        /* SOF0 declaring 60000 x 60000: refused before any allocation */
        for (size_t k = 0; k + 9 < n; k++)
            if (jpg[k] == 0xff && jpg[k + 1] == 0xc0) {
                jpg[k + 5] = 0xea, jpg[k + 6] = 0x60, jpg[k + 7] = 0xea, jpg[k + 8] = 0x60;
                break;
            }
        CHECK(decode_bytes(jpg, n, &err) == RELATE_ERR_FORMAT);
        CHECK_MSG(strstr(err.msg, "too large") != NULL, "%s", err.msg);
        free(jpg);
    }
    uint8_t *png = fx_read(RELATE_GOLDEN_DIR "/images/rgb8.png", &n);
    CHECK(png != NULL);
    if (png) {
        CHECK(decode_bytes(png, n, &err) == RELATE_OK);
        CHECK(decode_bytes(png, n - 20, &err) == RELATE_ERR_FORMAT);
        CHECK(decode_bytes(png, 30, &err) == RELATE_ERR_FORMAT);
        png[40] ^= 0x55; /* inside IDAT: CRC mismatch */
        CHECK(decode_bytes(png, n, &err) == RELATE_ERR_FORMAT);
        free(png);
    }
    /* a PNG whose IHDR declares 60000 x 60000 */
    fx_buf b = {0};
    fx_put(&b, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13] = {0, 0, 0xea, 0x60, 0, 0, 0xea, 0x60, 8, 2, 0, 0, 0};
    put_chunk(&b, "IHDR", ihdr, 13);
    put_chunk(&b, "IEND", NULL, 0);
    CHECK(decode_bytes(b.p, b.n, &err) == RELATE_ERR_FORMAT);
    fx_free(&b);
    CHECK(decode_bytes((const uint8_t *)"BM\x36\x00\x00\x00", 6, &err) == RELATE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "BMP") != NULL, "%s", err.msg);
    CHECK(decode_bytes((const uint8_t *)"hello world", 11, &err) == RELATE_ERR_FORMAT);
    CHECK(decode_bytes((const uint8_t *)"", 0, &err) == RELATE_ERR_FORMAT);
    relate_image img;
    memset(&err, 0, sizeof err);
    CHECK(relate_image_decode_file(fx_path("%s/missing.png", dir), &img, &err) == RELATE_ERR_IO);
}

static void test_png_write(const char *dir)
{
    enum { W = 13, H = 7 };
    uint8_t rgb[W * H * 3];
    for (int k = 0; k < W * H * 3; k++)
        rgb[k] = fx_pix(k, 1, 2, 3);
    relate_error err = {0};
    const char *p = fx_path("%s/out.png", dir);
    CHECK(relate_png_write(p, rgb, W, H, &err) == RELATE_OK);
    relate_image img;
    CHECK(relate_image_decode_file(p, &img, &err) == RELATE_OK);
    CHECK(img.width == W && img.height == H && img.pixels && memcmp(img.pixels, rgb, sizeof rgb) == 0);
    relate_image_free(&img);
    /* no temporary file is left behind; an unwritable place is an error */
    CHECK(access(fx_path("%s/out.png.tmp", dir), F_OK) != 0);
    memset(&err, 0, sizeof err);
    CHECK(relate_png_write(fx_path("%s/no/such/dir/x.png", dir), rgb, W, H, &err) == RELATE_ERR_IO);
    memset(&err, 0, sizeof err);
    CHECK(relate_png_write(p, rgb, 0, H, &err) == RELATE_ERR_ARG);
}

int main(void)
{
    const char *dir = fx_tmpdir("io");
    test_pickle_valid();
    test_pickle_refused();
    test_pickle_ndarray_and_corruption();
    test_golden_images();
    test_broken_images(dir);
    test_png_write(dir);
    fx_cleanup();
    return relate_test_finish();
}
