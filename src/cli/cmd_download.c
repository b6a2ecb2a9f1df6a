/* cmd_download.c: `relate download NAME`: fetches, verifies and extracts a dataset archive.
 * Not the transfer code itself (src/data/download.c). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "relate/download.h"

int relate_cmd_download(int argc, char **argv)
{
    relate_arg_spec specs[] = {
        {"data_root", RELATE_ARG_STR, "./data", "folder that holds the datasets", NULL, 0, 0},
        {"url", RELATE_ARG_STR, "", "download from this URL instead (a mirror; the MD5 must still match)", NULL, 0, 0},
        {"keep_partial", RELATE_ARG_STR, "False", "True: keep ARCHIVE.part after a failed transfer and resume it next "
                                                  "time", NULL, 0, 0},
    };
    const int n = (int)(sizeof specs / sizeof specs[0]);
    const char *name = NULL;
    char *rest[16];
    int nrest = 0;
    for (int i = 0; i < argc && nrest < 16; i++) {
        if (argv[i][0] != '-' && !name && (i == 0 || strchr(argv[i - 1], '=') || argv[i - 1][0] != '-'))
            name = argv[i];
        else
            rest[nrest++] = argv[i];
    }
    bool help;
    int rc = relate_args_parse("download", specs, n, nrest, rest, &help);
    if (rc)
        return rc;
    if (help || !name) {
        relate_args_usage("download NAME",
                          "Downloads a dataset archive (cifar10, cifar100, stl10, tiny), checks its MD5 and extracts\n"
                          "it under the data root. A second run, or data already extracted there, does nothing.",
                          specs, n);
        return help ? 0 : 2;
    }
    const relate_download_spec *found = relate_download_find(name);
    if (!found) {
        fprintf(stderr, "relate download: no download for '%s'; choose one of cifar10, cifar100, stl10, tiny "
                        "(fashionmnist comes from Debian's dataset-fashion-mnist package)\n", name);
        return 2;
    }
    relate_download_spec s = *found;
    const char *url = relate_args_get(specs, n, "url");
    if (*url)
        s.url = url;
    relate_download_options o = {.progress = isatty(2) != 0};
    if (relate_args_bool(relate_args_get(specs, n, "keep_partial"), &o.keep_partial) != 0) {
        fprintf(stderr, "relate download: --keep_partial expects True or False, got '%s'\n",
                relate_args_get(specs, n, "keep_partial"));
        return 2;
    }
    relate_error err = {0};
    if (relate_download(&s, relate_args_get(specs, n, "data_root"), &o, &err) != RELATE_OK) {
        fprintf(stderr, "relate download: %s\n", err.msg);
        return 1;
    }
    return 0;
}
