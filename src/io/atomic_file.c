/* atomic_file.c: temporary-name writes with fsync + rename (POSIX).
 * Not portable to systems without atomic rename within a directory. */
#define _POSIX_C_SOURCE 200809L
#include "io/atomic_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

relate_status relate_atomic_open(relate_atomic_file *f, const char *path, relate_error *err)
{
    memset(f, 0, sizeof *f);
    if (strlen(path) >= sizeof f->path)
        return relate_error_set(err, RELATE_ERR_ARG, "path too long: %s", path);
    strcpy(f->path, path);
    /* One temporary name per target, not per process: a run killed mid-save leaves PATH.tmp,
     * and the next save of PATH truncates and replaces it instead of adding another. */
    snprintf(f->tmp_path, sizeof f->tmp_path, "%s.tmp", path);
    f->fp = fopen(f->tmp_path, "wb");
    if (!f->fp)
        return relate_error_set(err, RELATE_ERR_IO, "cannot create %s: %s (is the folder writable?)",
                                f->tmp_path, strerror(errno));
    return RELATE_OK;
}

relate_status relate_atomic_commit(relate_atomic_file *f, relate_error *err)
{
    int failed = ferror(f->fp) || fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0;
    int saved = errno;
    if (fclose(f->fp) != 0 && !failed) {
        failed = 1;
        saved = errno;
    }
    f->fp = NULL;
    if (failed) {
        remove(f->tmp_path);
        return relate_error_set(err, RELATE_ERR_IO, "writing %s failed: %s%s", f->path, strerror(saved),
                                saved == ENOSPC  ? " (the disk is full)"
                                : saved == EFBIG ? " (over the file-size limit: see ulimit -f)"
                                                 : "");
    }
    if (rename(f->tmp_path, f->path) != 0) {
        saved = errno;
        remove(f->tmp_path);
        return relate_error_set(err, RELATE_ERR_IO, "cannot rename %s to %s: %s", f->tmp_path,
                                f->path, strerror(saved));
    }
    return RELATE_OK;
}

void relate_atomic_abort(relate_atomic_file *f)
{
    if (f->fp) {
        fclose(f->fp);
        f->fp = NULL;
    }
    remove(f->tmp_path);
}
