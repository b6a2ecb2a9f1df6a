/* fuzz_stl10.c: libFuzzer harness of the STL-10 binary reader (src/data/read_stl10.c).
 * Slots (fuzz_data.h): 0 train_X.bin, 1 train_y.bin, 2 unlabeled_X.bin, 3 test_y.bin,
 * 4 class_names.txt (absent by default). One image per file keeps each run small. */
#include <stdio.h>
#include <string.h>

#include "fuzz_data.h"
#include "seeds.h"

static fd_slots g_slots;
static char g_root[4096];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    fd_apply(&g_slots, data[0] % g_slots.n, data + 1, size - 1);
    fd_open_touch("stl10", g_root);
    return 0;
}

static void setup(void)
{
    snprintf(g_root, sizeof g_root, "%s", fz_tmpdir("stl10"));
    fz_buf b = {0};
    sd_stl_images(&b, 1, 1);
    fd_fixed(g_root, "stl10_binary/test_X.bin", b.p, b.n);
    fz_free(&b);
    sd_stl_images(&b, 0, 1);
    fd_add(&g_slots, g_root, "stl10_binary/train_X.bin", b.p, b.n, false);
    fz_free(&b);
    sd_stl_labels(&b, 0, 1);
    fd_add(&g_slots, g_root, "stl10_binary/train_y.bin", b.p, b.n, false);
    fz_free(&b);
    sd_stl_images(&b, 2, 1);
    fd_add(&g_slots, g_root, "stl10_binary/unlabeled_X.bin", b.p, b.n, false);
    fz_free(&b);
    sd_stl_labels(&b, 1, 1);
    fd_add(&g_slots, g_root, "stl10_binary/test_y.bin", b.p, b.n, false);
    fz_free(&b);
    fd_add(&g_slots, g_root, "stl10_binary/class_names.txt", NULL, 0, false);
}

static int write_seeds(const char *dir)
{
    setup();
    fd_seed_defaults(dir, &g_slots, "stl10");
    static const char names[] = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
    fd_seed_sel(dir, "class_names.txt", 4, names, sizeof names - 1);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_maybe_write_seeds(argc, argv, write_seeds);
    setup();
    return 0;
}
