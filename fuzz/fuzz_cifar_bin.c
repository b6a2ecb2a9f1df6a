/* fuzz_cifar_bin.c: libFuzzer harness of the CIFAR binary readers (src/data/read_cifar.c):
 * cifar-10-batches-bin and cifar-100-binary, opened as cifar10, cifar100 and supercifar100.
 * Slots (fuzz_data.h): 0 data_batch_1.bin, 1 batches.meta.txt (absent by default),
 * 2 cifar-100 train.bin, 3 fine_label_names.txt, 4 coarse_label_names.txt (both absent). */
#include <stdio.h>
#include <string.h>

#include "fuzz_data.h"
#include "seeds.h"

static fd_slots g_slots;
static char g_root10[4096], g_root100[4096];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int sel = data[0] % g_slots.n;
    fd_apply(&g_slots, sel, data + 1, size - 1);
    if (sel < 2) {
        fd_open_touch("cifar10", g_root10);
    } else {
        fd_open_touch("cifar100", g_root100);
        fd_open_touch("supercifar100", g_root100);
    }
    return 0;
}

static void setup(void)
{
    const char *root = fz_tmpdir("cifar_bin");
    snprintf(g_root10, sizeof g_root10, "%s/c10", root);
    snprintf(g_root100, sizeof g_root100, "%s/c100", root);
    fz_buf b = {0};
    for (int f = 2; f <= 6; f++) {
        sd_cifar_bin(&b, f, f == 6 ? 1 : 2, 1);
        fd_fixed(g_root10, f == 6 ? "cifar-10-batches-bin/test_batch.bin" : fz_path("cifar-10-batches-bin/data_batch_%d.bin", f),
                 b.p, b.n);
        fz_free(&b);
    }
    sd_cifar_bin(&b, 1, 2, 1);
    fd_add(&g_slots, g_root10, "cifar-10-batches-bin/data_batch_1.bin", b.p, b.n, false);
    fz_free(&b);
    fd_add(&g_slots, g_root10, "cifar-10-batches-bin/batches.meta.txt", NULL, 0, false);
    sd_cifar_bin(&b, 7, 1, 2);
    fd_fixed(g_root100, "cifar-100-binary/test.bin", b.p, b.n);
    fz_free(&b);
    sd_cifar_bin(&b, 8, 3, 2);
    fd_add(&g_slots, g_root100, "cifar-100-binary/train.bin", b.p, b.n, false);
    fz_free(&b);
    fd_add(&g_slots, g_root100, "cifar-100-binary/fine_label_names.txt", NULL, 0, false);
    fd_add(&g_slots, g_root100, "cifar-100-binary/coarse_label_names.txt", NULL, 0, false);
}

static int write_seeds(const char *dir)
{
    setup();
    fd_seed_defaults(dir, &g_slots, "cifar_bin");
    static const char names10[] = "a0\na1\na2\na3\na4\na5\na6\na7\na8\nlast one\n\n";
    fd_seed_sel(dir, "meta10.txt", 1, names10, sizeof names10 - 1);
    fz_buf b = {0};
    for (int i = 0; i < 100; i++)
        fz_put_str(&b, fz_path("fine_%d\r\n", i));
    fd_seed_sel(dir, "fine100.txt", 3, b.p, b.n);
    fz_free(&b);
    for (int i = 0; i < 20; i++)
        fz_put_str(&b, fz_path("coarse %d  \n", i));
    fd_seed_sel(dir, "coarse20.txt", 4, b.p, b.n);
    fz_free(&b);
    sd_cifar_bin(&b, 9, 1, 1);
    fd_seed_sel(dir, "batch1_one_record", 0, b.p, b.n);
    fz_free(&b);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_maybe_write_seeds(argc, argv, write_seeds);
    setup();
    return 0;
}
