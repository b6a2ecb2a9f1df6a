/* test_checkpoint.c: relate's torch.save checkpoints without PyTorch: round trips of state dicts,
 * Adam, SGD and plain values; hand-built zip and legacy files (views, dtypes, tensor steps,
 * refused globals); the pickle global allow-list of spec 8, pinned both ways (every listed global
 * accepted, every other refused by name); truncated, corrupted and foreign files; strict loading;
 * atomic writes.
 * main runs the themed checks of ckpt_roundtrip.c, ckpt_handbuilt.c, ckpt_allow_list.c and
 * ckpt_damaged.c in one scratch folder (helpers and file writers: ckpt_fixtures.c).
 * Not the PyTorch interop check (torch_interop.py does that with real torch.save files). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt_fixtures.h"
#include "test_util.h"

static void remove_dir(void)
{
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            remove(path_of(e->d_name));
    if (d)
        closedir(d);
    rmdir(dir);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_state_dict_roundtrip();
    test_bare_state_dict();
    test_adam_roundtrip();
    test_sgd_roundtrip();
    test_adam_tensor_step();
    test_views_zip_and_legacy();
    test_refused_globals();
    test_allow_list();
    test_truncated_and_corrupt_zip();
    test_foreign_files();
    test_strict_loading();
    test_atomic_writes();
    remove_dir();
    return relate_test_finish();
}
