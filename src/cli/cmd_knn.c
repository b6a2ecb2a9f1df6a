/* cmd_knn.c: `relate knn`: the weighted kNN accuracy of a checkpoint's frozen features.
 * Not the classifier itself (src/train/knn.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "relate/knn.h"
#include "relate/graph.h"

int relate_cmd_knn(int argc, char **argv)
{
    relate_arg_spec specs[] = {
        {"checkpoint", RELATE_ARG_STR, "", "any checkpoint holding a backbone (stage 1, stage 2, or a bare state "
                                           "dict); required", NULL, 0, 0},
        {"dataset", RELATE_ARG_STR, "cifar10", "dataset whose training split votes and whose test split is "
                                               "classified", NULL, 0, 0},
        {"backbone", RELATE_ARG_STR, "", "default: the one the checkpoint records (conv4 for files that record none)",
         NULL, 0, 0},
        {"k", RELATE_ARG_INT, "200", "neighbours that vote", NULL, 1, 100000},
        {"temperature", RELATE_ARG_STR, "0.1", "a neighbour votes exp(cosine similarity / temperature)", NULL, 0, 0},
        {"data_size", RELATE_ARG_INT, "256", "batch size of the feature pass", NULL, 1, RELATE_MAX_BATCH},
        {"data_root", RELATE_ARG_STR, "./data", "folder that holds the datasets", NULL, 0, 0},
        {"threads", RELATE_ARG_INT, "0", "compute threads (0: OMP_NUM_THREADS or every core)", NULL, 0, 1024},
        RELATE_DATASET_FLAGS,
    };
    const int n = (int)(sizeof specs / sizeof specs[0]);
    bool help;
    int rc = relate_args_parse("knn", specs, n, argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        relate_args_usage("knn",
                          "Weighted kNN accuracy (top-1, top-5) of a checkpoint's frozen features: the protocol of "
                          "InstDisc,\nsolo-learn and lightly (L2-normalised features, cosine similarity, k = 200, "
                          "T = 0.1). Trains nothing.",
                          specs, n);
        return 0;
    }
    relate_knn_stage_options o = {.knn = relate_knn_defaults(), .out = stdout};
    o.checkpoint = relate_args_get(specs, n, "checkpoint");
    if (!*o.checkpoint) {
        fprintf(stderr, "relate knn: --checkpoint is required: the checkpoint whose backbone is evaluated\n");
        return 2;
    }
    const char *t = relate_args_get(specs, n, "temperature");
    char *end;
    o.knn.temperature = strtod(t, &end);
    if (end == t || *end || !isfinite(o.knn.temperature) || o.knn.temperature <= 0 || o.knn.temperature > 1e6) {
        fprintf(stderr, "relate knn: --temperature expects a positive number, got '%s'\n", t);
        return 2;
    }
    o.knn.k = (int)relate_args_get_int(specs, n, "k");
    o.dataset = relate_args_get(specs, n, "dataset");
    o.backbone = relate_args_get(specs, n, "backbone");
    o.data_root = relate_args_get(specs, n, "data_root");
    if (relate_args_dataset_options("knn", specs, n, &o.data))
        return 2;
    o.data_size = (int)relate_args_get_int(specs, n, "data_size");
    if (relate_args_get_int(specs, n, "threads") > 0)
        relate_set_threads((int)relate_args_get_int(specs, n, "threads"));
    relate_error err = {0};
    relate_status st = relate_knn_stage(&o, &err);
    if (st != RELATE_OK) {
        fprintf(stderr, "relate knn: %s\n", err.msg);
        return st == RELATE_ERR_ARG ? 2 : 1;
    }
    return 0;
}
