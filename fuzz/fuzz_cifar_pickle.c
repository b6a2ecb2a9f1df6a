/* fuzz_cifar_pickle.c: libFuzzer harness of the CIFAR python-pickle readers
 * (src/data/read_cifar.c with the restricted unpickler): cifar-10-batches-py opened as cifar10,
 * cifar-100-python as cifar100 and supercifar100.
 * Slots (fuzz_data.h): 0 data_batch_1, 1 batches.meta, 2 cifar-100 train, 3 cifar-100 meta. */
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
    const char *root = fz_tmpdir("cifar_pickle");
    snprintf(g_root10, sizeof g_root10, "%s/c10", root);
    snprintf(g_root100, sizeof g_root100, "%s/c100", root);
    fz_buf b = {0};
    for (int f = 2; f <= 6; f++) {
        sd_cifar_pickle(&b, f, 1, false);
        fd_fixed(g_root10, f == 6 ? "cifar-10-batches-py/test_batch" : fz_path("cifar-10-batches-py/data_batch_%d", f),
                 b.p, b.n);
        fz_free(&b);
    }
    sd_cifar_pickle(&b, 1, 2, false);
    fd_add(&g_slots, g_root10, "cifar-10-batches-py/data_batch_1", b.p, b.n, false);
    fz_free(&b);
    sd_cifar_meta_pickle(&b, false);
    fd_add(&g_slots, g_root10, "cifar-10-batches-py/batches.meta", b.p, b.n, false);
    fz_free(&b);
    sd_cifar_pickle(&b, 7, 1, true);
    fd_fixed(g_root100, "cifar-100-python/test", b.p, b.n);
    fz_free(&b);
    sd_cifar_pickle(&b, 8, 2, true);
    fd_add(&g_slots, g_root100, "cifar-100-python/train", b.p, b.n, false);
    fz_free(&b);
    sd_cifar_meta_pickle(&b, true);
    fd_add(&g_slots, g_root100, "cifar-100-python/meta", b.p, b.n, false);
    fz_free(&b);
}

static int write_seeds(const char *dir)
{
    setup();
    fd_seed_defaults(dir, &g_slots, "cifar_pickle");
    fz_buf b = {0};
    sd_cifar_pickle(&b, 3, 3, false);
    fd_seed_sel(dir, "batch1_three", 0, b.p, b.n);
    fz_free(&b);
    sd_cifar_pickle(&b, 4, 1, true);
    fd_seed_sel(dir, "train100_one", 2, b.p, b.n);
    fz_free(&b);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_maybe_write_seeds(argc, argv, write_seeds);
    setup();
    return 0;
}
