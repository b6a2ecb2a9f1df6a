/* main.c: the `relate` command: dispatches subcommands to the library.
 * Not where any training logic lives: every subcommand is a thin client of librelate. */
/* SIGXFSZ is POSIX. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* The commands, and whether each runs as one job across the processes of mpirun or srun
 * (issue 12): train_unsupervised and train_linear_evaluation train data-parallel; test and knn
 * extract a share of the features on each process. The others would run N times over and write
 * the same files, so they refuse. */
typedef struct command {
    const char *name, *alias;
    int (*run)(int argc, char **argv);
    bool multiprocess;
} command;

static const command commands[] = {
    {"data", NULL, relate_cmd_data, false},
    {"download", NULL, relate_cmd_download, false},
    {"train_unsupervised", "pretrain", relate_cmd_pretrain, true},
    {"train_linear_evaluation", "lineval", relate_cmd_lineval, true},
    {"test", NULL, relate_cmd_test, true},
    {"export", NULL, relate_cmd_export, false},
    {"knn", NULL, relate_cmd_knn, true},
    {"embed", NULL, relate_cmd_embed, false},
    {"retrieve", NULL, relate_cmd_retrieve, false},
    {"plot", NULL, relate_cmd_plot, false},
    {NULL, NULL, NULL, false},
};

static const command *find_command(const char *name)
{
    for (const command *c = commands; c->name; c++)
        if (strcmp(c->name, name) == 0 || (c->alias && strcmp(c->alias, name) == 0))
            return c;
    return NULL;
}

/* A process other than rank 0 computes in silence: rank 0 says everything once. Its stderr goes
 * to a temporary file, shown (prefixed with its rank) only if it fails, so an error that happens
 * on it alone (a file it cannot read, memory) is not lost. */
static FILE *g_rank_stderr;   /* the real stderr of a rank other than 0 */
static FILE *g_rank_captured; /* what it wrote to stderr */

static int quiet_rank(void)
{
    int fd = dup(STDERR_FILENO);
    g_rank_captured = tmpfile();
    if (fd < 0 || !g_rank_captured || !(g_rank_stderr = fdopen(fd, "w")))
        return -1;
    fflush(stderr);
    if (dup2(fileno(g_rank_captured), STDERR_FILENO) < 0 || !freopen("/dev/null", "w", stdout))
        return -1;
    return 0;
}

/* The last lines a failed rank wrote to stderr, on the real stderr. */
static void show_rank_error(void)
{
    if (!g_rank_stderr || !g_rank_captured)
        return;
    fflush(stderr);
    char tail[2048];
    long end = ftell(g_rank_captured), from = end > (long)sizeof tail - 1 ? end - (long)sizeof tail + 1 : 0;
    if (end <= 0 || fseek(g_rank_captured, from, SEEK_SET) != 0)
        return;
    size_t n = fread(tail, 1, sizeof tail - 1, g_rank_captured);
    tail[n] = 0;
    for (char *line = strtok(tail, "\n"); line; line = strtok(NULL, "\n"))
        fprintf(g_rank_stderr, "[rank %d of %d] %s\n", relate_dist_rank(), relate_dist_size(), line);
    fflush(g_rank_stderr);
}

/* Started as several processes: 0 to go on, else the exit status (after saying why, once). */
static int enter_multiprocess(const char *cmd)
{
    const int n = relate_dist_launcher_size();
    if (n <= 1 || strcmp(cmd, "info") == 0 || strcmp(cmd, "--version") == 0 || strcmp(cmd, "--help") == 0 ||
        strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
        return 0;
    const command *c = find_command(cmd);
    if (!c) /* dispatch says it is unknown */
        return 0;
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
    if (c->multiprocess)
        return relate_dist_rank() != 0 && quiet_rank() != 0 ? 1 : 0;
    if (relate_dist_rank() == 0)
        fprintf(stderr,
                "relate %s: started as %d MPI processes, but this command runs in one process (only "
                "train_unsupervised, train_linear_evaluation, test and knn run across processes; "
                "docs/scaling.md): run it without mpirun\n",
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
        int rc = enter_multiprocess(argv[1]);
        if (rc)
            return rc;
    }
    const int rc = dispatch(argc, argv);
    if (rc != 0 && relate_dist_size() > 1) {
        /* The other processes may be waiting for this one in a collective: end the job. */
        show_rank_error();
        relate_dist_abort(rc);
    }
    relate_dist_finalize(); /* when enter_multiprocess started MPI */
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
    const command *c = find_command(cmd);
    if (c)
        return c->run(argc - 2, argv + 2);
    fprintf(stderr, "relate: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
