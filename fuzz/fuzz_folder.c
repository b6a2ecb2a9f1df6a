/* fuzz_folder.c: libFuzzer harness of folder:PATH[@S] (src/data/read_folder.c: an ImageFolder
 * tree with train/ and test/, every image decoded and resized to S x S with Pillow's bilinear
 * filter). The selector byte picks the slot (byte % 3: 0 train/cat/a.png, 1 train/bird/b.jpg,
 * 2 test/cat/t.png) and the side S ((byte / 3) % 4: 16, the files' own size, or 5, 32, 4). */
#include <stdio.h>
#include <string.h>

#include <png.h>

#include "fuzz_data.h"
#include "seeds.h"

static fd_slots g_slots;
static char g_root[4096];
static const int k_sides[4] = {16, 5, 32, 4};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    fd_apply(&g_slots, data[0] % 3, data + 1, size - 1);
    fd_open_touch(fz_path("folder:%s/myset@%d", g_root, k_sides[(data[0] / 3) % 4]), g_root);
    return 0;
}

static void setup(void)
{
    snprintf(g_root, sizeof g_root, "%s", fz_tmpdir("folder"));
    fz_buf b = {0};
    sd_png(&b, 16, 16, 30, PNG_COLOR_TYPE_RGB, 8, false, false);
    fd_add(&g_slots, g_root, "myset/train/cat/a.png", b.p, b.n, false);
    fz_free(&b);
    sd_jpeg(&b, 16, 16, 31, 90, false, false, false, 0);
    fd_add(&g_slots, g_root, "myset/train/bird/b.jpg", b.p, b.n, false);
    fz_free(&b);
    sd_png(&b, 16, 16, 32, PNG_COLOR_TYPE_GRAY, 8, false, false);
    fd_add(&g_slots, g_root, "myset/test/cat/t.png", b.p, b.n, false);
    fz_free(&b);
    sd_png(&b, 16, 16, 33, PNG_COLOR_TYPE_RGBA, 8, false, false);
    fd_fixed(g_root, "myset/train/cat/sub/c.PNG", b.p, b.n);
    fz_free(&b);
}

static int write_seeds(const char *dir)
{
    setup();
    fd_seed_defaults(dir, &g_slots, "folder");
    fz_buf b = {0};
    sd_png(&b, 40, 24, 34, PNG_COLOR_TYPE_RGB, 16, true, false);
    fd_seed_sel(dir, "big_png_resized_to_5", 3, b.p, b.n); /* slot 0, S = 5 */
    fz_free(&b);
    sd_jpeg(&b, 7, 19, 35, 80, true, false, false, 0);
    fd_seed_sel(dir, "small_jpeg_resized_to_32", 7, b.p, b.n); /* slot 1, S = 32 */
    fz_free(&b);
    sd_png(&b, 9, 9, 36, PNG_COLOR_TYPE_PALETTE, 2, false, false);
    fd_seed_sel(dir, "palette_resized_to_4", 11, b.p, b.n); /* slot 2, S = 4 */
    fz_free(&b);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_maybe_write_seeds(argc, argv, write_seeds);
    setup();
    return 0;
}
