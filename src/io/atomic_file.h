/* atomic_file.h: write a file under a temporary name, then fsync and rename it into place.
 * Not buffered I/O of its own: it hands out a stdio FILE. An interrupted writer leaves the old
 * file (or none) and never a half-written one. */
#ifndef RELATE_IO_ATOMIC_FILE_H
#define RELATE_IO_ATOMIC_FILE_H

#include <stdio.h>

#include "relate/status.h"

typedef struct relate_atomic_file {
    FILE *fp;
    char path[4096];
    char tmp_path[4096 + 32];
} relate_atomic_file;

relate_status relate_atomic_open(relate_atomic_file *f, const char *path, relate_error *err);
/* Flushes, fsyncs and renames; on any failure removes the temporary file. */
relate_status relate_atomic_commit(relate_atomic_file *f, relate_error *err);
void relate_atomic_abort(relate_atomic_file *f);

#endif
