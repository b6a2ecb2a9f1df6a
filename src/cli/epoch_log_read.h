/* epoch_log_read.h: reads back the epoch logs the stages write (stage 1: epoch,loss,score
 * [,knn_top1]; stage 2: epoch,loss,accuracy) for `relate plot`. Untrusted input: any file a user
 * names; fuzz/fuzz_plot_log.c fuzzes it. Not the writer (src/train/stage_common.c). */
#ifndef RELATE_CLI_EPOCH_LOG_READ_H
#define RELATE_CLI_EPOCH_LOG_READ_H

#include "relate/status.h"

enum { RELATE_SERIES_MAX_COLS = 4, RELATE_SERIES_MAX_ROWS = 1000000 };

typedef struct series_log {
    char name[128];                       /* the file name without log_ and .csv */
    char cols[RELATE_SERIES_MAX_COLS][32]; /* column names after "epoch" (more are ignored) */
    int ncols;
    double *x, *y[RELATE_SERIES_MAX_COLS]; /* y: NAN where the field is empty */
    int n, cap;
} series_log;

/* RELATE_OK and l filled, or RELATE_ERR_IO (unreadable), RELATE_ERR_FORMAT (not a log of
 * relate, a line that is not numbers, no epoch line yet) or RELATE_ERR_NOMEM, with the file and
 * line in err; l then holds nothing to free. */
relate_status relate_series_log_read(const char *path, series_log *l, relate_error *err);
void relate_series_log_free(series_log *l);

#endif
