/* fuzz_tiny.c: libFuzzer harness of the tiny-ImageNet-200 reader (src/data/read_folder.c:
 * train/<wnid>/images/, val/images/ labelled by val/val_annotations.txt, 64 x 64 images).
 * Slots (fuzz_data.h): 0 val/val_annotations.txt, 1 a train image (JPEG), 2 a val image (JPEG),
 * 3 a train image (PNG). */
#include <stdio.h>
#include <string.h>

#include "fuzz_data.h"
#include "seeds.h"

#include <png.h>

static fd_slots g_slots;
static char g_root[4096];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    fd_apply(&g_slots, data[0] % g_slots.n, data + 1, size - 1);
    fd_open_touch("tiny", g_root);
    return 0;
}

static const char k_ann[] = "val_0.JPEG\tn02\t0\t1\t2\t3\nval_1.JPEG\tn01\t0\t1\t2\t3\r\n";

static void setup(void)
{
    snprintf(g_root, sizeof g_root, "%s", fz_tmpdir("tiny"));
    fz_buf b = {0};
    fd_fixed(g_root, "tiny-imagenet-200/wnids.txt", "n02\nn01\n", 8);
    fd_fixed(g_root, "tiny-imagenet-200/train/n01/n01_boxes.txt", "n01_0.JPEG\t0\t0\t10\t10\n", 22);
    sd_png(&b, 64, 64, 20, PNG_COLOR_TYPE_RGB, 8, false, false);
    fd_fixed(g_root, "tiny-imagenet-200/val/images/val_1.JPEG", b.p, b.n);
    fz_free(&b);
    fd_add(&g_slots, g_root, "tiny-imagenet-200/val/val_annotations.txt", k_ann, sizeof k_ann - 1, false);
    sd_jpeg(&b, 64, 64, 21, 90, false, false, false, 0);
    fd_add(&g_slots, g_root, "tiny-imagenet-200/train/n01/images/n01_0.JPEG", b.p, b.n, false);
    fz_free(&b);
    sd_jpeg(&b, 64, 64, 22, 75, true, true, false, 0);
    fd_add(&g_slots, g_root, "tiny-imagenet-200/val/images/val_0.JPEG", b.p, b.n, false);
    fz_free(&b);
    sd_png(&b, 64, 64, 23, PNG_COLOR_TYPE_PALETTE, 8, false, true);
    fd_add(&g_slots, g_root, "tiny-imagenet-200/train/n02/images/n02_0.JPEG", b.p, b.n, false);
    fz_free(&b);
}

static int write_seeds(const char *dir)
{
    setup();
    fd_seed_defaults(dir, &g_slots, "tiny");
    static const char ann2[] = "val_1.JPEG\tn02\t4\t5\t6\t7\nval_0.JPEG\tn01\nval_1.JPEG\tn01\t0\n";
    fd_seed_sel(dir, "annotations2", 0, ann2, sizeof ann2 - 1);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_maybe_write_seeds(argc, argv, write_seeds);
    setup();
    return 0;
}
