/* cmd_embed.c: `relate embed`: a checkpoint's frozen features of a dataset split as NumPy files
 * (features [N, d] float32, and labels [N] int64 when the split has them), for t-SNE, UMAP or
 * scikit-learn. Not the features' computation (relate_extract_features). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "data/readers.h"
#include "relate/graph.h"
#include "relate/npy.h"
#include "relate/train.h"

int relate_cmd_embed(int argc, char **argv)
{
    relate_arg_spec specs[] = {
        {"checkpoint", RELATE_ARG_STR, "", "any checkpoint holding a backbone; required", NULL, 0, 0},
        {"dataset", RELATE_ARG_STR, "cifar10", "dataset to embed", NULL, 0, 0},
        {"split", RELATE_ARG_STR, "test", "train or test", NULL, 0, 0},
        {"out", RELATE_ARG_STR, "", "the features' .npy file; required (never overwritten)", NULL, 0, 0},
        {"labels", RELATE_ARG_STR, "", "the labels' .npy file (default: OUT with _labels.npy)", NULL, 0, 0},
        {"backbone", RELATE_ARG_STR, "", "default: the one the checkpoint records (conv4 for files that record none)",
         NULL, 0, 0},
        {"data_size", RELATE_ARG_INT, "256", "batch size of the feature pass", NULL, 1, RELATE_MAX_BATCH},
        {"data_root", RELATE_ARG_STR, "./data", "folder that holds the datasets", NULL, 0, 0},
        {"threads", RELATE_ARG_INT, "0", "compute threads (0: OMP_NUM_THREADS or every core)", NULL, 0, 1024},
    };
    const int n = (int)(sizeof specs / sizeof specs[0]);
    bool help;
    int rc = relate_args_parse("embed", specs, n, argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        relate_args_usage("embed",
                          "Writes a checkpoint's eval-mode features of a dataset split as NumPy .npy files (features "
                          "[N, d] float32;\nlabels [N] int64 when the split has them), as numpy.load reads them.",
                          specs, n);
        return 0;
    }
    const char *ckpt = relate_args_get(specs, n, "checkpoint"), *out = relate_args_get(specs, n, "out");
    const char *split_name = relate_args_get(specs, n, "split");
    if (!*ckpt || !*out) {
        fprintf(stderr, "relate embed: --checkpoint and --out are required (e.g. --checkpoint=FILE.tar "
                        "--out=feats.npy)\n");
        return 2;
    }
    const bool test = strcmp(split_name, "test") == 0;
    if (!test && strcmp(split_name, "train") != 0) {
        fprintf(stderr, "relate embed: --split is train or test, got '%s'\n", split_name);
        return 2;
    }
    char labels_path[4096];
    const char *lp = relate_args_get(specs, n, "labels");
    if (*lp) {
        snprintf(labels_path, sizeof labels_path, "%s", lp);
    } else {
        size_t len = strlen(out);
        const size_t stem = len > 4 && strcmp(out + len - 4, ".npy") == 0 ? len - 4 : len;
        snprintf(labels_path, sizeof labels_path, "%.*s_labels.npy", (int)stem, out);
    }
    for (const char *p = out; p; p = p == out ? labels_path : NULL)
        if (relate_file_size(p) >= 0) {
            fprintf(stderr, "relate embed: %s exists: relate does not overwrite it; remove it or choose another "
                            "--out / --labels\n",
                    p);
            return 2;
        }
    if (relate_args_get_int(specs, n, "threads") > 0)
        relate_set_threads((int)relate_args_get_int(specs, n, "threads"));

    relate_error err = {0};
    relate_dataset ds;
    if (relate_dataset_open(&ds, relate_args_get(specs, n, "dataset"), relate_args_get(specs, n, "data_root"),
                            &err) != RELATE_OK) {
        fprintf(stderr, "relate embed: %s\n", err.msg);
        return err.code == RELATE_ERR_ARG ? 2 : 1;
    }
    const relate_split *sp = relate_dataset_split(&ds, test ? RELATE_SPLIT_TEST : RELATE_SPLIT_TRAIN);
    relate_backbone bb;
    bool made = false;
    float *feats = NULL;
    int64_t *labels = NULL;
    relate_status st = RELATE_OK;
    if (!sp || !sp->present || sp->count == 0)
        st = relate_error_set(&err, RELATE_ERR_ARG, "dataset %s has no %s split", ds.info.name, split_name);
    if (st == RELATE_OK && (st = relate_backbone_from_file(&bb, ckpt, relate_args_get(specs, n, "backbone"), &err)) ==
                               RELATE_OK)
        made = true;
    if (st == RELATE_OK && !(feats = malloc((size_t)sp->count * bb.feature_size * sizeof *feats)))
        st = relate_error_set(&err, RELATE_ERR_NOMEM, "out of memory for %lld features", (long long)sp->count);
    if (st == RELATE_OK)
        st = relate_extract_features(&bb, sp, &ds.info, RELATE_T5, (int)relate_args_get_int(specs, n, "data_size"),
                                     feats, &err);
    if (st == RELATE_OK)
        st = relate_npy_write_f32(out, feats, 2, (int64_t[]){sp->count, bb.feature_size}, &err);
    bool with_labels = false;
    if (st == RELATE_OK && sp->labels) {
        with_labels = true;
        for (int64_t i = 0; i < sp->count; i++)
            with_labels &= sp->labels[i] >= 0;
    }
    if (st == RELATE_OK && with_labels) {
        if (!(labels = malloc((size_t)sp->count * sizeof *labels)))
            st = relate_error_set(&err, RELATE_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; st == RELATE_OK && i < sp->count; i++)
            labels[i] = sp->labels[i];
        if (st == RELATE_OK)
            st = relate_npy_write_i64(labels_path, labels, 1, (int64_t[]){sp->count}, &err);
    }
    if (st == RELATE_OK)
        printf("%s: %lld x %d float32 features of %s's %s split (%s backbone)%s%s\n", out, (long long)sp->count,
               bb.feature_size, ds.info.name, split_name, bb.name, with_labels ? "; labels: " : "; no labels",
               with_labels ? labels_path : "");
    free(feats);
    free(labels);
    if (made)
        relate_backbone_free(&bb);
    relate_dataset_close(&ds);
    if (st != RELATE_OK) {
        fprintf(stderr, "relate embed: %s\n", err.msg);
        return st == RELATE_ERR_ARG ? 2 : 1;
    }
    return 0;
}
