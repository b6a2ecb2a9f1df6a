/* cmd_train.c: the three stages as the reference's programs: `relate train_unsupervised`
 * (pretrain), `relate train_linear_evaluation` (lineval) and `relate test`, with the reference's
 * flags and defaults (spec 1.2) plus --data_root, --threads and --limit_train_batches.
 * Not where training happens: each command fills a relate/train.h options struct. */
#define _POSIX_C_SOURCE 200809L /* sigaction */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/suggest.h"
#include "cli/args.h"
#include "relate/graph.h"
#include "relate/train.h"

int relate_cmd_pretrain(int argc, char **argv);
int relate_cmd_lineval(int argc, char **argv);
int relate_cmd_test(int argc, char **argv);

static volatile sig_atomic_t stop_signal;

/* Ctrl-C (SIGINT) and Slurm's preemption notice (SIGTERM) both ask the stage to finish its step,
 * save it and exit. A second Ctrl-C ends the process at once (the default action); SIGTERM stays
 * handled, because senders repeat it (timeout(1) signals the child and then its process group,
 * Slurm every process of the step) and SIGKILL is how they insist. */
static void on_stop_signal(int sig)
{
    stop_signal = sig;
    relate_request_stop();
    if (sig == SIGINT)
        signal(sig, SIG_DFL);
}

static void install_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* The shell's convention for a process ended by a signal: 128 + its number (130 for Ctrl-C,
 * 143 for SIGTERM), which batch systems read as "stopped", not "failed". */
static int exit_code(relate_status st)
{
    switch (st) {
    case RELATE_OK: return 0;
    case RELATE_ERR_ARG: return 2;
    case RELATE_ERR_INTERRUPTED: return 128 + (stop_signal ? (int)stop_signal : SIGINT);
    default: return 1;
    }
}

/* The command (its flags joined by spaces), for HEADER_args.json. */
static char *join_command(int argc, char **argv)
{
    size_t n = strlen("relate train_unsupervised") + 1;
    for (int i = 0; i < argc; i++)
        n += strlen(argv[i]) + 1;
    char *s = malloc(n);
    if (!s)
        return NULL;
    strcpy(s, "relate train_unsupervised");
    for (int i = 0; i < argc; i++) {
        strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}

/* The reference's --seed: -1 means "not seeded"; relate then draws a seed from the clock and
 * prints it, so even such a run can be repeated. */
static uint64_t resolve_seed(long seed, FILE *out)
{
    if (seed >= 0)
        return (uint64_t)seed;
    uint64_t s = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    fprintf(out, "[INFO] --seed=-1: using seed %llu drawn from the clock\n", (unsigned long long)s);
    return s;
}

/* A name flag checked before any data is read, so a typo is named as such (with the nearest valid
 * name) and not reported as, say, a missing dataset. "" passes: the stage picks a default. */
static bool known_name(const char *cmd, const char *flag, const char *value, const char *const *names)
{
    if (!*value)
        return true;
    for (const char *const *n = names; *n; n++)
        if (strcmp(*n, value) == 0)
            return true;
    char hint[64], list[256] = "";
    for (const char *const *n = names; *n; n++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", n == names ? "" : ", ", *n);
    fprintf(stderr, "relate %s: unknown --%s '%s'%s; valid: %s\n", cmd, flag, value,
            relate_suggest_text(hint, sizeof hint, value, names), list);
    return false;
}

static void apply_threads(long threads)
{
    if (threads > 0)
        relate_set_threads((int)threads);
}

/* Progress goes to stderr: a bar on a terminal, else (nohup, Slurm) a line every N seconds. */
#define LOG_EVERY_FLAG                                                                                               \
    {"log_every", RELATE_ARG_INT, "30", "seconds between progress lines on stderr when it is not a terminal (0: "    \
                                        "none; a terminal gets a bar)", NULL, 0, 86400}

#define COMMON_FLAGS                                                                                                 \
    {"data_root", RELATE_ARG_STR, "./data", "folder that holds the datasets (relate download puts them there)", NULL, 0, 0}, \
        {"threads", RELATE_ARG_INT, "0", "compute threads (0: OMP_NUM_THREADS or every core)", NULL, 0, 1024},                \
        {"gpu", RELATE_ARG_STR, "0", "accepted for compatibility with the reference; relate runs on the CPU", NULL, 0, 0}, \
        RELATE_DATASET_FLAGS

int relate_cmd_pretrain(int argc, char **argv)
{
    relate_arg_spec specs[] = {
        {"seed", RELATE_ARG_INT, "1", "seed of every random draw; relate's default is 1 (the reference's -1 "
                                      "crashes; here -1 draws a seed from the clock and prints it)", NULL, -1, 2147483647L},
        {"epoch_start", RELATE_ARG_INT, "-1", "first epoch (0-based); default: the epoch stored in --checkpoint, "
                                              "else 0", NULL, -1, RELATE_MAX_EPOCHS},
        {"epochs", RELATE_ARG_INT, "200", "total number of epochs E", NULL, 1, RELATE_MAX_EPOCHS},
        {"dataset", RELATE_ARG_STR, "cifar10", "cifar10, cifar100, supercifar100, stl10, tiny, slim, fashionmnist, "
                                               "mnist, folder:PATH[@S]", NULL, 0, 0},
        {"backbone", RELATE_ARG_STR, "conv4", "conv4, resnet8, resnet32, resnet56, resnet34", NULL, 0, 0},
        {"method", RELATE_ARG_STR, "relationnet", "relationnet, simclr, rotationnet, deepinfomax, "
                                                  "deepcluster, standard, randomweights", NULL, 0, 0},
        {"data_size", RELATE_ARG_INT, "128", "mini-batch size B (the paper uses 64 for relationnet, 128 for the "
                                             "other methods)", NULL, 1, RELATE_MAX_BATCH},
        {"K", RELATE_ARG_INT, "32", "augmentations per image (relationnet)", NULL, 1, RELATE_MAX_K},
        {"aggregation", RELATE_ARG_STR, "cat", "relationnet pair aggregation: cat, sum, mean, max", NULL, 0, 0},
        {"id", RELATE_ARG_STR, "", "extra tag inserted in the file names", NULL, 0, 0},
        {"checkpoint", RELATE_ARG_STR, "", "resume from this stage-1 checkpoint (model, optimizer, epoch and step)", NULL, 0, 0},
        {"resume", RELATE_ARG_STR, "", "auto: resume from the run's own HEADER_last.tar if there is one, else start it", NULL, 0, 0},
        {"save_every", RELATE_ARG_INT, "1", "write HEADER_last.tar every this many epochs (0: only at 25/50/75/100 % and "
                                            "when stopped by Ctrl-C or SIGTERM)", NULL, 0, RELATE_MAX_EPOCHS},
        {"num_workers", RELATE_ARG_INT, "8", "data-loading threads (results do not depend on it)", NULL, 0, 256},
        {"limit_train_batches", RELATE_ARG_INT, "0", "stop every epoch after this many batches (0: all)", NULL, 0, 2147483647L},
        LOG_EVERY_FLAG,
        {"knn_every", RELATE_ARG_INT, "0", "kNN accuracy (k=200, T=0.1) of the backbone every this many epochs, on the "
                                           "console and in the log (0: never); training is unchanged", NULL, 0,
         RELATE_MAX_EPOCHS},
        COMMON_FLAGS,
    };
    const int n = (int)(sizeof specs / sizeof specs[0]);
    bool help;
    int rc = relate_args_parse("train_unsupervised", specs, n, argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        relate_args_usage("train_unsupervised",
                          "Stage 1: self-supervised pretraining. Writes ./checkpoint/METHOD/DATASET/"
                          "HEADER_epoch_E.tar at 25/50/75/100 % of the epochs, HEADER_last.tar every --save_every "
                          "epochs and when stopped (Ctrl-C, SIGTERM), log_HEADER.csv and HEADER_args.json; never "
                          "overwrites another run's files.",
                          specs, n);
        return 0;
    }
    if (!known_name("train_unsupervised", "method", relate_args_get(specs, n, "method"), relate_method_names()) ||
        !known_name("train_unsupervised", "backbone", relate_args_get(specs, n, "backbone"), relate_backbone_names()))
        return 2;
    apply_threads(relate_args_get_int(specs, n, "threads"));
    relate_pretrain_options o = relate_pretrain_defaults();
    const char *seed_text = relate_args_get(specs, n, "seed");
    o.seed_text = seed_text;
    o.method.seed = resolve_seed(relate_args_get_int(specs, n, "seed"), stdout);
    o.method.method = relate_args_get(specs, n, "method");
    o.method.backbone = relate_args_get(specs, n, "backbone");
    o.method.K = (int)relate_args_get_int(specs, n, "K");
    o.method.aggregation = relate_args_get(specs, n, "aggregation");
    o.dataset = relate_args_get(specs, n, "dataset");
    o.data_root = relate_args_get(specs, n, "data_root");
    if (relate_args_dataset_options("train_unsupervised", specs, n, &o.data))
        return 2;
    o.id = relate_args_get(specs, n, "id");
    o.checkpoint = relate_args_get(specs, n, "checkpoint");
    o.epoch_start = (int)relate_args_get_int(specs, n, "epoch_start");
    o.epochs = (int)relate_args_get_int(specs, n, "epochs");
    o.data_size = (int)relate_args_get_int(specs, n, "data_size");
    o.num_workers = (int)relate_args_get_int(specs, n, "num_workers");
    o.limit_train_batches = relate_args_get_int(specs, n, "limit_train_batches");
    o.save_every = (int)relate_args_get_int(specs, n, "save_every");
    o.knn_every = (int)relate_args_get_int(specs, n, "knn_every");
    const char *resume = relate_args_get(specs, n, "resume");
    if (*resume && strcmp(resume, "auto") != 0) {
        fprintf(stderr, "relate train_unsupervised: --resume takes 'auto' (the run's own HEADER_last.tar); to resume "
                        "from a file, pass --checkpoint=%s\n",
                resume);
        return 2;
    }
    o.resume_auto = *resume != 0;
    o.progress = stderr;
    o.log_every = (double)relate_args_get_int(specs, n, "log_every");
    if (strcmp(o.method.method, "relationnet") == 0 && (long)o.method.K * o.data_size > RELATE_MAX_VIEWS_PER_STEP) {
        fprintf(stderr,
                "relate train_unsupervised: --K=%d x --data_size=%d = %ld views per step; at most %ld fit in memory "
                "(the paper uses K=32 x 64)\n",
                o.method.K, o.data_size, (long)o.method.K * o.data_size, RELATE_MAX_VIEWS_PER_STEP);
        return 2;
    }
    char *command = join_command(argc, argv);
    o.command_line = command;
    install_stop_signals();
    relate_error err = {0};
    relate_status st = relate_pretrain(&o, &err);
    free(command);
    if (st != RELATE_OK)
        fprintf(stderr, "relate train_unsupervised: %s\n", err.msg);
    return exit_code(st);
}

int relate_cmd_lineval(int argc, char **argv)
{
    relate_arg_spec specs[] = {
        {"seed", RELATE_ARG_INT, "1", "seed (relate's default 1; -1 draws one from the clock)", NULL, -1, 2147483647L},
        {"epochs", RELATE_ARG_INT, "100", "number of epochs", NULL, 1, RELATE_MAX_EPOCHS},
        {"dataset", RELATE_ARG_STR, "cifar10", "dataset to train the linear layer on and to test", NULL, 0, 0},
        {"backbone", RELATE_ARG_STR, "", "the checkpoint's backbone; default: the one it records (conv4 for files "
                                         "that record none)", NULL, 0, 0},
        {"method", RELATE_ARG_STR, "standard", "only names the output folder and file (as in the reference)", NULL, 0, 0},
        {"data_size", RELATE_ARG_INT, "128", "mini-batch size", NULL, 1, RELATE_MAX_BATCH},
        {"checkpoint", RELATE_ARG_STR, "", "stage-1 checkpoint (its 'backbone' entry is used); required", NULL, 0, 0},
        {"finetune", RELATE_ARG_STR, "False", "True: finetune the whole network instead (True/False, true/false, 1/0, yes/no)", NULL, 0, 0},
        {"num_workers", RELATE_ARG_INT, "8", "data-loading threads", NULL, 0, 256},
        {"id", RELATE_ARG_STR, "", "extra tag inserted in the file names", NULL, 0, 0},
        {"limit_train_batches", RELATE_ARG_INT, "0", "stop every epoch after this many batches (0: all)", NULL, 0, 2147483647L},
        {"feature_cache", RELATE_ARG_STR, "True", "linear evaluation: extract the frozen features once (False: run "
                                                  "the backbone on every batch; same result, slower)", NULL, 0, 0},
        LOG_EVERY_FLAG,
        COMMON_FLAGS,
    };
    const int n = (int)(sizeof specs / sizeof specs[0]);
    bool help;
    int rc = relate_args_parse("train_linear_evaluation", specs, n, argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        relate_args_usage("train_linear_evaluation",
                          "Stage 2: a linear layer on a frozen stage-1 backbone (or --finetune=True), then the test "
                          "accuracy. Writes ./checkpoint/METHOD/DATASET/HEADER_epoch_E_linear_evaluation.tar.",
                          specs, n);
        return 0;
    }
    if (!known_name("train_linear_evaluation", "backbone", relate_args_get(specs, n, "backbone"),
                    relate_backbone_names()))
        return 2;
    apply_threads(relate_args_get_int(specs, n, "threads"));
    relate_lineval_options o = relate_lineval_defaults();
    o.seed_text = relate_args_get(specs, n, "seed");
    o.seed = resolve_seed(relate_args_get_int(specs, n, "seed"), stdout);
    o.epochs = (int)relate_args_get_int(specs, n, "epochs");
    o.dataset = relate_args_get(specs, n, "dataset");
    o.backbone = relate_args_get(specs, n, "backbone");
    o.method = relate_args_get(specs, n, "method");
    o.data_size = (int)relate_args_get_int(specs, n, "data_size");
    o.checkpoint = relate_args_get(specs, n, "checkpoint");
    const char *bool_flags[] = {"finetune", "feature_cache"};
    bool *bool_values[] = {&o.finetune, &o.cache_features};
    for (int k = 0; k < 2; k++)
        if (relate_args_bool(relate_args_get(specs, n, bool_flags[k]), bool_values[k]) != 0) {
            fprintf(stderr, "relate train_linear_evaluation: --%s expects True or False (also true/false, 1/0, "
                            "yes/no), got '%s'\n",
                    bool_flags[k], relate_args_get(specs, n, bool_flags[k]));
            return 2;
        }
    if (!*o.checkpoint) {
        fprintf(stderr, "relate train_linear_evaluation: --checkpoint is required: the stage-1 checkpoint whose "
                        "backbone is evaluated (e.g. ./checkpoint/relationnet/cifar10/"
                        "relationnet_cifar10_conv4_seed_1_epoch_200.tar)\n");
        return 2;
    }
    o.num_workers = (int)relate_args_get_int(specs, n, "num_workers");
    o.id = relate_args_get(specs, n, "id");
    o.data_root = relate_args_get(specs, n, "data_root");
    if (relate_args_dataset_options("train_linear_evaluation", specs, n, &o.data))
        return 2;
    o.limit_train_batches = relate_args_get_int(specs, n, "limit_train_batches");
    o.progress = stderr;
    o.log_every = (double)relate_args_get_int(specs, n, "log_every");
    install_stop_signals();
    relate_error err = {0};
    relate_status st = relate_lineval(&o, &err);
    if (st != RELATE_OK)
        fprintf(stderr, "relate train_linear_evaluation: %s\n", err.msg);
    return exit_code(st);
}

int relate_cmd_test(int argc, char **argv)
{
    relate_arg_spec specs[] = {
        {"seed", RELATE_ARG_INT, "1", "printed in the result block (the test itself draws nothing)", NULL, -1, 2147483647L},
        {"dataset", RELATE_ARG_STR, "cifar10", "dataset whose test split is evaluated (as in stage 2)", NULL, 0, 0},
        {"backbone", RELATE_ARG_STR, "", "the checkpoint's backbone; default: the one it records (conv4 for files "
                                         "that record none)", NULL, 0, 0},
        {"data_size", RELATE_ARG_INT, "256", "test mini-batch size", NULL, 1, RELATE_MAX_BATCH},
        {"checkpoint", RELATE_ARG_STR, "", "stage-2 checkpoint (five keys); required", NULL, 0, 0},
        COMMON_FLAGS,
    };
    const int n = (int)(sizeof specs / sizeof specs[0]);
    bool help;
    int rc = relate_args_parse("test", specs, n, argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        relate_args_usage("test", "Stage 3: loss and accuracy of a stage-2 checkpoint on the test split.", specs, n);
        return 0;
    }
    if (!known_name("test", "backbone", relate_args_get(specs, n, "backbone"), relate_backbone_names()))
        return 2;
    apply_threads(relate_args_get_int(specs, n, "threads"));
    relate_test_options o = relate_test_defaults();
    o.seed_text = relate_args_get(specs, n, "seed");
    o.dataset = relate_args_get(specs, n, "dataset");
    o.backbone = relate_args_get(specs, n, "backbone");
    o.data_size = (int)relate_args_get_int(specs, n, "data_size");
    o.checkpoint = relate_args_get(specs, n, "checkpoint");
    o.data_root = relate_args_get(specs, n, "data_root");
    if (relate_args_dataset_options("test", specs, n, &o.data))
        return 2;
    if (!*o.checkpoint) {
        fprintf(stderr, "relate test: --checkpoint is required: the stage-2 checkpoint that "
                        "train_linear_evaluation wrote (HEADER_epoch_E_linear_evaluation.tar)\n");
        return 2;
    }
    relate_error err = {0};
    relate_status st = relate_test(&o, &err);
    if (st != RELATE_OK)
        fprintf(stderr, "relate test: %s\n", err.msg);
    return exit_code(st);
}
