/* examples/embed.c: relate as a library. Loads the backbone of any relate (or reference)
 * checkpoint and prints the eval-mode features of the first few test images of a dataset, one
 * line per image: its index, its label, then the features. Uses only the public headers and
 * librelate.so; build it against an installed relate with
 *
 *   cc embed.c $(pkg-config --cflags --libs relate) -o embed
 *   ./embed checkpoint.tar fashionmnist ./data 4
 *
 * The features are those `relate embed` writes: the same pipeline (T5: resize, normalise, no
 * augmentation) and batch norm with its running statistics. */
#include <stdio.h>
#include <stdlib.h>

#include "relate/data.h"
#include "relate/graph.h"
#include "relate/nn.h"
#include "relate/train.h"

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: %s CHECKPOINT DATASET [DATA_ROOT] [IMAGES]\n"
                        "  e.g. %s run/relationnet_fashionmnist_conv4_seed_1_epoch_1.tar fashionmnist ./data 4\n",
                argv[0], argv[0]);
        return 2;
    }
    const char *data_root = argc > 3 ? argv[3] : "./data";
    const long want = argc > 4 ? strtol(argv[4], NULL, 10) : 4;
    if (want < 1) {
        fprintf(stderr, "%s: IMAGES must be a positive number\n", argv[0]);
        return 2;
    }

    relate_error err = {0};
    relate_dataset ds;
    if (relate_dataset_open(&ds, argv[2], data_root, &err) != RELATE_OK) {
        fprintf(stderr, "%s: %s\n", argv[0], err.msg);
        return 1;
    }
    relate_backbone bb;
    if (relate_backbone_from_file(&bb, argv[1], NULL, &err) != RELATE_OK) {
        fprintf(stderr, "%s: %s\n", argv[0], err.msg);
        relate_dataset_close(&ds);
        return 1;
    }

    /* A split is a plain view of decoded HWC RGB pixels: the first `want` test images are the
     * test split with a smaller count. Pixels of one's own come in the same way. */
    const relate_split *test = relate_dataset_split(&ds, RELATE_SPLIT_TEST);
    int rc = 1;
    if (!test) {
        fprintf(stderr, "%s: %s has no test split\n", argv[0], ds.info.name);
        goto out;
    }
    relate_split first = *test;
    first.count = want < test->count ? want : test->count;

    float *feats = malloc((size_t)first.count * (size_t)bb.feature_size * sizeof *feats);
    if (!feats) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        goto out;
    }
    if (relate_extract_features(&bb, &first, &ds.info, RELATE_T5, 64, feats, &err) != RELATE_OK) {
        fprintf(stderr, "%s: %s\n", argv[0], err.msg);
        free(feats);
        goto out;
    }
    printf("# %s backbone, %d features per image, %s test images 0..%lld\n", bb.name, bb.feature_size, ds.info.name,
           (long long)first.count - 1);
    for (int64_t i = 0; i < first.count; i++) {
        printf("%lld %d", (long long)i, (int)first.labels[i]);
        for (int j = 0; j < bb.feature_size; j++)
            printf(" %.9g", feats[(size_t)i * (size_t)bb.feature_size + (size_t)j]);
        printf("\n");
    }
    free(feats);
    rc = 0;
out:
    relate_backbone_free(&bb);
    relate_dataset_close(&ds);
    return rc;
}
