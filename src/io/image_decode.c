/* image_decode.c: JPEG and PNG decoding with PIL's conversion rules to RGB, and a PNG writer.
 * Not faster than libjpeg/libpng themselves and not colour-managed: gamma, sBIT, ICC profiles and
 * EXIF orientation are ignored, as PIL's open + convert("RGB") ignores them. */
#define _POSIX_C_SOURCE 200809L
#include "io/image_decode.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "io/atomic_file.h"

void relate_image_free(relate_image *img)
{
    if (img) {
        free(img->pixels);
        memset(img, 0, sizeof *img);
    }
}

static relate_status check_dims(const char *what, long long w, long long h, relate_error *err)
{
    if (w <= 0 || h <= 0 || w > 65535 || h > 65535 || w * h > RELATE_IMAGE_MAX_PIXELS)
        return relate_error_set(err, RELATE_ERR_FORMAT, "%s: image size %lld x %lld is empty or too large", what, w, h);
    return RELATE_OK;
}

/* ------------------------------------------------------------------ JPEG */
typedef struct jpeg_fail {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    int truncated;
} jpeg_fail;

static void jpeg_on_error(j_common_ptr c)
{
    jpeg_fail *f = (jpeg_fail *)c->err;
    (*c->err->format_message)(c, f->msg);
    longjmp(f->jb, 1);
}

static void jpeg_on_message(j_common_ptr c, int level)
{
    /* libjpeg pads a truncated stream with grey and only warns; PIL raises "image file is
     * truncated", so a premature end is an error here too. Other warnings pass as in PIL. */
    if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF)
        ((jpeg_fail *)c->err)->truncated = 1;
}

static relate_status decode_jpeg(const uint8_t *data, size_t size, const char *what, relate_image *out,
                                 relate_error *err)
{
    struct jpeg_decompress_struct ci;
    jpeg_fail jf;
    uint8_t *volatile buf = NULL;
    memset(&ci, 0, sizeof ci);
    ci.err = jpeg_std_error(&jf.pub);
    jf.pub.error_exit = jpeg_on_error;
    jf.pub.emit_message = jpeg_on_message;
    jf.truncated = 0;
    if (setjmp(jf.jb)) {
        jpeg_destroy_decompress(&ci);
        free(buf);
        return relate_error_set(err, RELATE_ERR_FORMAT, "%s: broken JPEG: %s", what, jf.msg);
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, data, (unsigned long)size);
    jpeg_read_header(&ci, TRUE);
    /* PIL's modes: 1 component "L", 3 "RGB", 4 "CMYK" (libjpeg turns YCCK into CMYK). The
     * decompression parameters stay at libjpeg's defaults (islow IDCT, fancy upsampling), which
     * is what PIL uses when no draft mode is requested. */
    int comps = ci.num_components;
    if (comps == 1)
        ci.out_color_space = JCS_GRAYSCALE;
    else if (comps == 3)
        ci.out_color_space = JCS_RGB;
    else if (comps == 4)
        ci.out_color_space = JCS_CMYK;
    else {
        jpeg_destroy_decompress(&ci);
        return relate_error_set(err, RELATE_ERR_FORMAT, "%s: JPEG with %d colour components", what, comps);
    }
    if (check_dims(what, ci.image_width, ci.image_height, err)) {
        jpeg_destroy_decompress(&ci);
        return RELATE_ERR_FORMAT;
    }
    /* A Huffman-coded JPEG spends at least one bit on every 8x8 block of its first component
     * (the shortest Huffman code is one bit, and every block has a DC code), so its size bounds
     * the image it can hold. A few hundred bytes that declare a 2048 x 64512 progressive image
     * would otherwise take seconds and a gigabyte to "decode" (found by fuzz/fuzz_image).
     * Arithmetic-coded files have no such floor and are left to the pixel limit. */
    const double blocks = floor(ci.image_width / 8.0) * floor(ci.image_height / 8.0);
    if (!ci.arith_code && blocks > 8.0 * (double)size) {
        jpeg_destroy_decompress(&ci);
        return relate_error_set(err, RELATE_ERR_FORMAT,
                                "%s: a %u x %u JPEG cannot fit in %zu bytes (at least one bit per 8x8 block): "
                                "corrupt or truncated",
                                what, (unsigned)ci.image_width, (unsigned)ci.image_height, size);
    }
    jpeg_start_decompress(&ci);
    /* Stop at the first sign of truncation (progressive files read every scan in
     * jpeg_start_decompress): a few bytes that declare a huge image would otherwise make libjpeg
     * decode all of its grey padding (seconds and hundreds of MB for a 136-byte file). */
    if (jf.truncated) {
        jpeg_destroy_decompress(&ci);
        return relate_error_set(err, RELATE_ERR_FORMAT, "%s: JPEG data ends early (truncated file)", what);
    }
    int w = (int)ci.output_width, h = (int)ci.output_height, oc = ci.output_components;
    buf = malloc((size_t)w * (size_t)h * 4);
    if (!buf) {
        jpeg_destroy_decompress(&ci);
        return relate_error_set(err, RELATE_ERR_NOMEM, "%s: out of memory for a %d x %d image", what, w, h);
    }
    while (ci.output_scanline < ci.output_height && !jf.truncated) {
        JSAMPROW row = buf + (size_t)ci.output_scanline * (size_t)w * (size_t)oc;
        jpeg_read_scanlines(&ci, &row, 1);
    }
    if (jf.truncated) {
        jpeg_destroy_decompress(&ci); /* aborts: jpeg_finish_decompress would want every scanline */
        free(buf);
        return relate_error_set(err, RELATE_ERR_FORMAT, "%s: JPEG data ends early (truncated file)", what);
    }
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    if (jf.truncated) {
        free(buf);
        return relate_error_set(err, RELATE_ERR_FORMAT, "%s: JPEG data ends early (truncated file)", what);
    }
    uint8_t *rgb = buf; /* converted in place: every output pixel lies at or before its source */
    size_t n = (size_t)w * (size_t)h;
    if (oc == 1) {
        for (size_t p = n; p-- > 0;) {
            uint8_t g = buf[p];
            rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = g;
        }
    } else if (oc == 4) {
        /* PIL reads CMYK JPEGs as "CMYK;I" (Adobe's inverted convention), then convert("RGB")
         * does cmyk2rgb: out = clip(nk - nk * c / 255) with nk = 255 - k, rounded as MULDIV255. */
        for (size_t p = 0; p < n; p++) {
            int nk = buf[4 * p + 3]; /* 255 - K, with K = 255 - stored (inverted) */
            for (int ch = 0; ch < 3; ch++) {
                int c = 255 - buf[4 * p + (size_t)ch];
                int t = c * nk + 128;
                int v = nk - (((t >> 8) + t) >> 8);
                rgb[3 * p + (size_t)ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    out->width = w;
    out->height = h;
    out->pixels = rgb;
    return RELATE_OK;
}

/* ------------------------------------------------------------------ PNG */
typedef struct png_src {
    const uint8_t *data;
    size_t size, pos;
    char msg[256];
} png_src;

static void png_on_read(png_structp png, png_bytep dst, png_size_t n)
{
    png_src *s = png_get_io_ptr(png);
    if (n > s->size - s->pos)
        png_error(png, "PNG data ends early (truncated file)");
    memcpy(dst, s->data + s->pos, n);
    s->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_src *s = png_get_error_ptr(png);
    if (s)
        snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static relate_status decode_png(const uint8_t *data, size_t size, const char *what, relate_image *out,
                                relate_error *err)
{
    png_src src = {data, size, 0, ""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile raw = NULL;
    uint8_t *volatile rgb = NULL;
    png_bytep *volatile rows = NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return relate_error_set(err, RELATE_ERR_NOMEM, "%s: out of memory", what);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(raw);
        free(rgb);
        free(rows);
        return relate_error_set(err, RELATE_ERR_FORMAT, "%s: broken PNG: %s", what, src.msg);
    }
    png_set_read_fn(png, &src, png_on_read);
    png_set_user_limits(png, 65535, 65535);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), ctype = png_get_color_type(png, info);
    if (check_dims(what, w, h, err)) {
        png_destroy_read_struct(&png, &info, NULL);
        return RELATE_ERR_FORMAT;
    }
    /* Samples are read raw (only unpacked to a byte each) and converted below with PIL's rules;
     * libpng's own expansions would turn tRNS into alpha and round 16-bit values. */
    if (depth < 8)
        png_set_packing(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    raw = malloc(rowbytes * h);
    rows = malloc(sizeof(png_bytep) * h);
    rgb = malloc((size_t)w * h * 3);
    if (!raw || !rows || !rgb) {
        png_destroy_read_struct(&png, &info, NULL);
        free(raw);
        free(rows);
        free(rgb);
        return relate_error_set(err, RELATE_ERR_NOMEM, "%s: out of memory for a %u x %u image", what, w, h);
    }
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = raw + y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);

    png_colorp pal = NULL;
    int npal = 0;
    if (ctype == PNG_COLOR_TYPE_PALETTE)
        png_get_PLTE(png, info, &pal, &npal);
    int chans = ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_PALETTE ? 1
                : ctype == PNG_COLOR_TYPE_GRAY_ALPHA                          ? 2
                : ctype == PNG_COLOR_TYPE_RGB                                 ? 3
                                                                              : 4;
    int bps = depth == 16 ? 2 : 1;
    for (png_uint_32 y = 0; y < h; y++) {
        const uint8_t *r = rows[y];
        uint8_t *o = rgb + (size_t)y * w * 3;
        for (png_uint_32 x = 0; x < w; x++, o += 3) {
            const uint8_t *px = r + (size_t)x * (size_t)(chans * bps);
            if (ctype == PNG_COLOR_TYPE_PALETTE) {
                /* Pillow's palette starts as a grey ramp; PLTE overwrites its first entries. */
                int i = px[0];
                if (i < npal) {
                    o[0] = pal[i].red, o[1] = pal[i].green, o[2] = pal[i].blue;
                } else {
                    o[0] = o[1] = o[2] = (uint8_t)i;
                }
            } else if (chans <= 2) {
                int g;
                if (depth == 16 && chans == 1)
                    g = (px[0] << 8 | px[1]) > 255 ? 255 : px[1]; /* PIL mode "I", clipped by convert */
                else if (depth < 8)
                    g = px[0] * 255 / ((1 << depth) - 1); /* "1", "L;2", "L;4": bit replication */
                else
                    g = px[0]; /* 8 bits, or the high byte of "LA;16B" */
                o[0] = o[1] = o[2] = (uint8_t)g;
            } else {
                for (int ch = 0; ch < 3; ch++)
                    o[ch] = px[ch * bps]; /* 16 bits: "RGB;16B" / "RGBA;16B" keep the high byte */
            }
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(raw);
    free(rows);
    out->width = (int)w;
    out->height = (int)h;
    out->pixels = rgb;
    return RELATE_OK;
}

relate_status relate_image_decode_mem(const uint8_t *data, size_t size, const char *what, relate_image *out,
                                      relate_error *err)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memset(out, 0, sizeof *out);
    if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
        return decode_jpeg(data, size, what, out, err);
    if (size >= 8 && memcmp(data, png_sig, 8) == 0)
        return decode_png(data, size, what, out, err);
    const char *kind = size >= 2 && data[0] == 'B' && data[1] == 'M'                               ? "BMP"
                       : size >= 4 && (memcmp(data, "II*", 3) == 0 || memcmp(data, "MM\0*", 4) == 0) ? "TIFF"
                       : size >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0 ? "WebP"
                       : size >= 2 && data[0] == 'P' && data[1] >= '1' && data[1] <= '7'             ? "PPM/PGM"
                       : size >= 3 && memcmp(data, "GIF", 3) == 0                                     ? "GIF"
                                                                                                      : NULL;
    if (kind)
        return relate_error_set(err, RELATE_ERR_FORMAT,
                                "%s: a %s image; relate decodes JPEG and PNG only (convert it, e.g. with "
                                "ImageMagick's `mogrify -format png`)",
                                what, kind);
    return relate_error_set(err, RELATE_ERR_FORMAT, "%s: neither a JPEG nor a PNG file (%zu bytes)", what, size);
}

relate_status relate_image_decode_file(const char *path, relate_image *out, relate_error *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return relate_error_set(err, RELATE_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return relate_error_set(err, RELATE_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    }
    if (size > (1L << 30)) {
        fclose(f);
        return relate_error_set(err, RELATE_ERR_FORMAT, "%s: %ld bytes is too large for an image file", path, size);
    }
    uint8_t *buf = malloc(size ? (size_t)size : 1);
    if (!buf) {
        fclose(f);
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory reading %s", path);
    }
    size_t got = fread(buf, 1, (size_t)size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != (size_t)size) {
        free(buf);
        return relate_error_set(err, RELATE_ERR_IO, "cannot read %s", path);
    }
    relate_status s = relate_image_decode_mem(buf, (size_t)size, path, out, err);
    free(buf);
    return s;
}

/* ------------------------------------------------------------------ PNG writer */
relate_status relate_png_write(const char *path, const uint8_t *rgb, int w, int h, relate_error *err)
{
    if (w <= 0 || h <= 0 || (long long)w * h > RELATE_IMAGE_MAX_PIXELS)
        return relate_error_set(err, RELATE_ERR_ARG, "png: bad image size %d x %d for %s", w, h, path);
    relate_atomic_file af;
    relate_status s = relate_atomic_open(&af, path, err);
    if (s)
        return s;
    png_src msg = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &msg, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        relate_atomic_abort(&af);
        return relate_error_set(err, RELATE_ERR_NOMEM, "png: out of memory writing %s", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        relate_atomic_abort(&af);
        return relate_error_set(err, RELATE_ERR_IO, "png: writing %s failed: %s", path, msg.msg);
    }
    png_init_io(png, af.fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_const_bytep)(rgb + (size_t)y * (size_t)w * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return relate_atomic_commit(&af, err);
}
