/* fuzz_idx.c: libFuzzer harness of the IDX reader (src/data/read_idx.c), opened as mnist
 * (torchvision's MNIST/raw, plain files) and fashionmnist (relate's folder, gzip files).
 * Slots (fuzz_data.h): 0 MNIST train-images (plain), 1 MNIST train-labels (plain),
 * 2 Fashion-MNIST train-images.gz (the input is gzip-compressed by the harness, so the IDX
 * parser sees the fuzzed bytes), 3 Fashion-MNIST t10k-labels.gz written as is (corrupt gzip
 * streams, and plain bytes that zlib passes through). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_data.h"
#include "seeds.h"

static fd_slots g_slots;
static char g_root[4096];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int sel = data[0] % g_slots.n;
    fd_apply(&g_slots, sel, data + 1, size - 1);
    fd_open_touch(sel < 2 ? "mnist" : "fashionmnist", g_root);
    return 0;
}

/* The gzip bytes of b (through a file: zlib's gz* API is file based). */
static void gz_bytes(const fz_buf *b, fz_buf *out)
{
    const char *p = fz_path("%s/tmp.gz", g_root);
    fz_write_gz(p, b->p, b->n);
    size_t n = 0;
    uint8_t *g = fz_read(p, &n);
    if (!g)
        abort();
    fz_put(out, g, n);
    free(g);
    remove(p);
}

static void setup(void)
{
    snprintf(g_root, sizeof g_root, "%s", fz_tmpdir("idx"));
    fz_buf b = {0}, g = {0};
    sd_idx_images(&b, 1, 4, 28, 28);
    fd_fixed(g_root, "MNIST/raw/t10k-images-idx3-ubyte", b.p, b.n);
    fz_free(&b);
    sd_idx_labels(&b, 1, 4);
    fd_fixed(g_root, "MNIST/raw/t10k-labels-idx1-ubyte", b.p, b.n);
    fz_free(&b);
    sd_idx_images(&b, 2, 3, 28, 28);
    fd_add(&g_slots, g_root, "MNIST/raw/train-images-idx3-ubyte", b.p, b.n, false);
    fz_free(&b);
    sd_idx_labels(&b, 2, 3);
    fd_add(&g_slots, g_root, "MNIST/raw/train-labels-idx1-ubyte", b.p, b.n, false);
    fz_free(&b);

    sd_idx_images(&b, 1, 2, 28, 28);
    fz_write_gz(fz_path("%s/fashionmnist/t10k-images-idx3-ubyte.gz", g_root), b.p, b.n);
    fz_free(&b);
    sd_idx_labels(&b, 2, 1);
    fz_write_gz(fz_path("%s/fashionmnist/train-labels-idx1-ubyte.gz", g_root), b.p, b.n);
    fz_free(&b);
    sd_idx_images(&b, 2, 1, 28, 28);
    fd_add(&g_slots, g_root, "fashionmnist/train-images-idx3-ubyte.gz", b.p, b.n, true);
    fz_free(&b);
    sd_idx_labels(&b, 1, 2);
    gz_bytes(&b, &g);
    fd_add(&g_slots, g_root, "fashionmnist/t10k-labels-idx1-ubyte.gz", g.p, g.n, false);
    fz_free(&b);
    fz_free(&g);
}

static int write_seeds(const char *dir)
{
    setup();
    fd_seed_defaults(dir, &g_slots, "idx");
    fz_buf b = {0};
    sd_idx_labels(&b, 1, 2); /* plain bytes in the .gz slot: zlib reads them transparently */
    fd_seed_sel(dir, "plain_in_gz_slot", 3, b.p, b.n);
    fz_free(&b);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_maybe_write_seeds(argc, argv, write_seeds);
    setup();
    return 0;
}
