/* main.c: the `relate` command: dispatches subcommands to the library.
 * Not where any training logic lives: every subcommand is a thin client of librelate. */
/* SIGXFSZ is POSIX. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "relate/dist.h"
#include "relate/nn.h"

#define RELATE_VERSION "0.1.0"

int relate_cmd_data(int argc, char **argv);     /* cmd_data.c */
int relate_cmd_download(int argc, char **argv); /* cmd_download.c */
int relate_cmd_pretrain(int argc, char **argv);  /* cmd_train.c */
int relate_cmd_lineval(int argc, char **argv);   /* cmd_train.c */
int relate_cmd_test(int argc, char **argv);      /* cmd_train.c */
int relate_cmd_export(int argc, char **argv);    /* cmd_export.c */
int relate_cmd_knn(int argc, char **argv);       /* cmd_knn.c */
int relate_cmd_embed(int argc, char **argv);     /* cmd_embed.c */
int relate_cmd_retrieve(int argc, char **argv);  /* cmd_retrieve.c */
int relate_cmd_plot(int argc, char **argv);      /* cmd_plot.c */

static int cmd_info(int argc, char **argv)
{
    relate_arg_spec specs[] = {
        {"backbone", RELATE_ARG_STR, "", "backbone to describe: conv4, resnet8, resnet32, resnet56, resnet34; "
                                         "empty lists all of them", NULL, 0, 0},
        {"image_size", RELATE_ARG_INT, "32", "side of the square input used for the output shapes", NULL, 8, 4096},
    };
    const int n = (int)(sizeof specs / sizeof specs[0]);
    bool help;
    int rc = relate_args_parse("info", specs, n, argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        relate_args_usage("info", "Prints a backbone's layer table, feature size and trainable parameter count.", specs, n);
        return 0;
    }
    const char *name = relate_args_get(specs, n, "backbone");
    relate_error err = {0};
    if (!*name) {
        printf("%-10s %12s %24s\n", "backbone", "feature size", "trainable parameters");
        for (const char *const *b = relate_backbone_names(); *b; b++) {
            relate_backbone bb;
            if (relate_backbone_create(&bb, *b, 0, &err) != RELATE_OK) {
                fprintf(stderr, "relate info: %s\n", err.msg);
                return 1;
            }
            printf("%-10s %12d %24lld\n", bb.name, bb.feature_size, (long long)relate_params_count_trainable(&bb.params));
            relate_backbone_free(&bb);
        }
        return 0;
    }
    relate_backbone bb;
    if (relate_backbone_create(&bb, name, 0, &err) != RELATE_OK) {
        fprintf(stderr, "relate info: %s\n", err.msg);
        return 2;
    }
    rc = relate_backbone_print_summary(stdout, &bb, (int)relate_args_get_int(specs, n, "image_size"), &err) == RELATE_OK ? 0 : 2;
    if (rc)
        fprintf(stderr, "relate info: %s\n", err.msg);
    relate_backbone_free(&bb);
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out,
            "relate %s: self-supervised relational reasoning (Patacchiola & Storkey, NeurIPS 2020) in C\n\n"
            "usage: relate <command> [flags]\n\n"
            "commands:\n"
            "  info                      layer table, feature size and parameter count of a backbone\n"
            "  train_unsupervised        stage 1, self-supervised pretraining (alias: pretrain)\n"
            "  train_linear_evaluation   stage 2, linear evaluation / finetuning (alias: lineval)\n"
            "  test                      stage 3, test accuracy of a stage-2 checkpoint\n"
            "  data                      a dataset's splits, classes, image size and normalisation\n"
            "  download                  fetch, verify (MD5) and extract a dataset archive\n"
            "  export                    a checkpoint's backbone as safetensors\n"
            "  knn                       weighted kNN accuracy of a checkpoint's frozen features\n"
            "  embed                     a checkpoint's features of a split as NumPy .npy files\n"
            "  retrieve                  image retrieval: precision@k, mAP@k and a grid of neighbours\n"
            "  plot                      epoch logs as a PNG (loss, score, kNN), several runs overlaid\n\n"
            "Run `relate <command> --help` for its flags.\n",
            RELATE_VERSION);
}

/* Started by mpirun or srun as several processes. `knn` runs as one job across them (each rank
 * extracts a share of the features; rank 0 alone prints). Every other command would run N times
 * over and write the same files, so it refuses in one line (from rank 0) until it computes as
 * one run across the processes (issue 12); the help and `info` are harmless. */
static int refuse_multiprocess(const char *cmd)
{
    const int n = relate_dist_launcher_size();
    if (n <= 1 || strcmp(cmd, "info") == 0 || strcmp(cmd, "--version") == 0 || strcmp(cmd, "--help") == 0 ||
        strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
        return 0;
    if (strcmp(cmd, "knn") == 0 && relate_dist_built_with_mpi()) {
        relate_error err = {0};
        if (relate_dist_init(&err) != RELATE_OK) {
            fprintf(stderr, "relate: %s\n", err.msg);
            return 1;
        }
        /* the other ranks compute and stay silent: rank 0 says everything once */
        if (relate_dist_rank() != 0 && (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)))
            return 1;
        return 0;
    }
    if (!relate_dist_built_with_mpi()) {
        fprintf(stderr,
                "relate: started as %d processes, but this relate was built without MPI, so each would run the whole "
                "job alone and overwrite the others' files. Install libopenmpi-dev and rebuild (docs/scaling.md), or "
                "run one process (--threads sets its cores)\n",
                n);
        return 2;
    }
    relate_error err = {0};
    if (relate_dist_init(&err) != RELATE_OK) {
        fprintf(stderr, "relate: %s\n", err.msg);
        return 1;
    }
    if (relate_dist_rank() == 0)
        fprintf(stderr,
                "relate %s: started as %d MPI processes, but data-parallel training across processes is not built yet "
                "(issue 12; docs/scaling.md): run one process (--threads sets its cores)\n",
                cmd, relate_dist_size());
    relate_dist_finalize();
    return 2;
}

static int dispatch(int argc, char **argv);

int main(int argc, char **argv)
{
    /* Past a file-size limit (ulimit -f) the kernel would kill the process with SIGXFSZ, silently
     * and mid-save. Ignored, the write fails with EFBIG instead, and the save reports it and
     * removes its temporary file. */
    signal(SIGXFSZ, SIG_IGN);
    if (argc >= 2) {
        int rc = refuse_multiprocess(argv[1]);
        if (rc)
            return rc;
    }
    const int rc = dispatch(argc, argv);
    relate_dist_finalize(); /* when refuse_multiprocess started MPI */
    return rc;
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("relate %s\n", RELATE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "info") == 0)
        return cmd_info(argc - 2, argv + 2);
    if (strcmp(cmd, "data") == 0)
        return relate_cmd_data(argc - 2, argv + 2);
    if (strcmp(cmd, "download") == 0)
        return relate_cmd_download(argc - 2, argv + 2);
    if (strcmp(cmd, "train_unsupervised") == 0 || strcmp(cmd, "pretrain") == 0)
        return relate_cmd_pretrain(argc - 2, argv + 2);
    if (strcmp(cmd, "train_linear_evaluation") == 0 || strcmp(cmd, "lineval") == 0)
        return relate_cmd_lineval(argc - 2, argv + 2);
    if (strcmp(cmd, "test") == 0)
        return relate_cmd_test(argc - 2, argv + 2);
    if (strcmp(cmd, "export") == 0)
        return relate_cmd_export(argc - 2, argv + 2);
    if (strcmp(cmd, "knn") == 0)
        return relate_cmd_knn(argc - 2, argv + 2);
    if (strcmp(cmd, "embed") == 0)
        return relate_cmd_embed(argc - 2, argv + 2);
    if (strcmp(cmd, "retrieve") == 0)
        return relate_cmd_retrieve(argc - 2, argv + 2);
    if (strcmp(cmd, "plot") == 0)
        return relate_cmd_plot(argc - 2, argv + 2);
    fprintf(stderr, "relate: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
