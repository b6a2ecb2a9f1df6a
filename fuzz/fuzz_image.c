/* fuzz_image.c: libFuzzer harness of the JPEG / PNG decoder (src/io/image_decode.c,
 * relate_image_decode_mem). On success every pixel of the width x height x 3 result is read.
 * Seeds: JPEGs from libjpeg (baseline 4:2:0 and 4:4:4, grayscale, progressive, restart
 * markers, odd sizes) and PNGs from libpng (gray 1/8/16-bit, gray+alpha, RGB, RGBA, palette with
 * and without tRNS, 16-bit, Adam7 interlacing) plus one from relate_png_write. */
#define _POSIX_C_SOURCE 200809L
#include <png.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "io/image_decode.h"
#include "seeds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    relate_image img = {0};
    relate_error err = {0};
    if (relate_image_decode_mem(data, size, "fuzz input", &img, &err) != RELATE_OK) {
        fz_debug("image: %s", err.msg);
        return 0;
    }
    fz_debug("image: OK, %d x %d", img.width, img.height);
    if (img.width <= 0 || img.height <= 0 || !img.pixels)
        abort(); /* success must mean a non-empty image */
    fz_touch(img.pixels, (size_t)img.width * (size_t)img.height * 3);
    relate_image_free(&img);
    return 0;
}

/* ------------------------------------------------------------------ seeds */
static int write_seeds(const char *dir)
{
    static const struct {
        int w, h, q;
        bool gray, prog, s444;
        int restart;
    } jpegs[] = {
        {16, 16, 90, false, false, false, 0}, {17, 13, 75, true, false, false, 0}, {24, 8, 85, false, true, false, 0},
        {16, 16, 95, false, false, true, 1},  {33, 9, 50, false, false, false, 1}, {8, 8, 100, true, true, false, 0},
        {1, 1, 80, false, false, false, 0},   {64, 64, 60, false, false, false, 0},
    };
    for (size_t k = 0; k < sizeof jpegs / sizeof jpegs[0]; k++) {
        fz_buf b = {0};
        sd_jpeg(&b, jpegs[k].w, jpegs[k].h, (int)k, jpegs[k].q, jpegs[k].gray, jpegs[k].prog, jpegs[k].s444,
                jpegs[k].restart);
        fz_seed(dir, fz_path("img_%zu.jpg", k), b.p, b.n);
        fz_free(&b);
    }
    static const struct {
        int w, h, type, depth;
        bool interlace, trns;
    } pngs[] = {
        {16, 16, PNG_COLOR_TYPE_RGB, 8, false, false},       {9, 7, PNG_COLOR_TYPE_RGBA, 8, false, false},
        {8, 8, PNG_COLOR_TYPE_GRAY, 8, false, false},        {5, 5, PNG_COLOR_TYPE_GRAY, 1, false, false},
        {10, 10, PNG_COLOR_TYPE_PALETTE, 8, false, true},    {7, 7, PNG_COLOR_TYPE_RGB, 16, true, false},
        {6, 6, PNG_COLOR_TYPE_GRAY_ALPHA, 8, false, false},  {11, 3, PNG_COLOR_TYPE_PALETTE, 4, true, false},
        {4, 9, PNG_COLOR_TYPE_GRAY, 16, false, true},        {3, 3, PNG_COLOR_TYPE_RGB, 8, false, true},
        {12, 5, PNG_COLOR_TYPE_GRAY_ALPHA, 16, true, false}, {2, 2, PNG_COLOR_TYPE_RGBA, 16, false, false},
    };
    for (size_t k = 0; k < sizeof pngs / sizeof pngs[0]; k++) {
        fz_buf b = {0};
        sd_png(&b, pngs[k].w, pngs[k].h, (int)k, pngs[k].type, pngs[k].depth, pngs[k].interlace, pngs[k].trns);
        fz_seed(dir, fz_path("img_%zu.png", k), b.p, b.n);
        fz_free(&b);
    }
    const char *tmp = fz_tmpdir("imgseeds");
    uint8_t rgb[5 * 4 * 3];
    for (int k = 0; k < 60; k++)
        rgb[k] = fz_pix(k, 1, 2, 3);
    relate_error err = {0};
    const char *path = fz_path("%s/w.png", tmp);
    if (relate_png_write(path, rgb, 5, 4, &err) != RELATE_OK)
        return 1;
    size_t n = 0;
    uint8_t *b = fz_read(path, &n);
    if (!b)
        return 1;
    fz_seed(dir, "relate_png_write.png", b, n);
    free(b);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_maybe_write_seeds(argc, argv, write_seeds);
    return 0;
}
