/* fuzz_plot_log.c: libFuzzer harness of the epoch-log reader of `relate plot`
 * (src/cli/epoch_log_read.c), which reads any CSV file a user names. The input is written to a
 * file and read back; on success every parsed value is read. Seeds: stage-1 and stage-2 logs as
 * the stages write them, a kNN column with empty fields, CRLF line ends, and broken variants. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/epoch_log_read.h"
#include "fuzz_common.h"

static char g_path[4096];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_write(g_path, data, size);
    series_log l;
    relate_error err = {0};
    if (relate_series_log_read(g_path, &l, &err) != RELATE_OK) {
        fz_debug("plot log: %s", err.msg);
        return 0;
    }
    if (l.n <= 0 || l.ncols < 0 || l.ncols > RELATE_SERIES_MAX_COLS)
        abort(); /* success must mean at least one row */
    double sum = 0;
    for (int i = 0; i < l.n; i++) {
        if (!isfinite(l.x[i]))
            abort(); /* epochs are finite numbers */
        sum += l.x[i];
        for (int c = 0; c < l.ncols; c++)
            sum += isnan(l.y[c][i]) ? 0 : l.y[c][i];
    }
    fz_debug("plot log: OK, %d rows x %d columns, sum %g", l.n, l.ncols, sum);
    relate_series_log_free(&l);
    return 0;
}

static int write_seeds(const char *dir)
{
    static const char *const seeds[] = {
        "epoch,loss,score\n1,0.0812,63.2\n2,0.0711,66.5\n",
        "epoch,loss,score,knn_top1\n1,0.09,60.1,\n2,0.08,61.0,71.25\n",
        "epoch,loss,accuracy\r\n1,1.10,33.3\r\n2,0.9,41.7\r\n",
        "epoch,loss,score\n1,nan,3\n",
        "epoch,loss\n1e308,1e-320\n\n3,-0\n",
        "epoch,a,b,c,d,e,f\n1,2,3,4,5,6,7\n",
        "not a log\n",
        "epoch,loss,score\n",
    };
    for (size_t k = 0; k < sizeof seeds / sizeof seeds[0]; k++)
        fz_seed(dir, fz_path("log_%zu.csv", k), seeds[k], strlen(seeds[k]));
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_maybe_write_seeds(argc, argv, write_seeds);
    snprintf(g_path, sizeof g_path, "%s/log.csv", fz_tmpdir("plotlog"));
    return 0;
}
