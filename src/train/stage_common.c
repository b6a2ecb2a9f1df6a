/* stage_common.c: file names, folders, timing, progress bar, stop flag and log of the stages. */
/* clock_gettime and CLOCK_MONOTONIC are POSIX: -std=c17 alone does not declare them (gcc did only
 * because -fopenmp defines _POSIX_C_SOURCE). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/pyformat.h"
#include "io/atomic_file.h"
#include "relate/train.h"
#include "train/stage_common.h"

static volatile sig_atomic_t stop_flag;

void relate_request_stop(void) { stop_flag = 1; }
bool relate_stop_requested(void) { return stop_flag != 0; }

void relate_stage_dataset_dir(char *buf, size_t size, const char *dataset)
{
    snprintf(buf, size, "%s", dataset);
    for (char *c = buf; *c; c++)
        if (*c == '/' || *c == ':' || *c == '@' || *c == ' ')
            *c = '_';
}

void relate_stage_header(char *buf, size_t size, const char *method, const char *id, const char *dataset,
                         const char *backbone, const char *seed_text)
{
    char ds[256];
    relate_stage_dataset_dir(ds, sizeof ds, dataset);
    if (id && *id)
        snprintf(buf, size, "%s_%s_%s_%s_seed_%s", method, id, ds, backbone, seed_text);
    else
        snprintf(buf, size, "%s_%s_%s_seed_%s", method, ds, backbone, seed_text);
}

relate_status relate_mkdirs(const char *path, relate_error *err)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1;; p++) {
        char c = *p;
        if (c == '/' || c == 0) {
            *p = 0;
            if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
                return relate_error_set(err, RELATE_ERR_IO, "cannot create folder %s: %s", tmp, strerror(errno));
            *p = c;
        }
        if (!c)
            break;
    }
    return RELATE_OK;
}

void relate_format_hms(char *buf, size_t size, double seconds)
{
    int s = seconds > 0 ? (seconds < 3.6e8 ? (int)seconds : 359999999) : 0;
    snprintf(buf, size, "%02d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
}

double relate_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

relate_progress_mode relate_progress_mode_for(FILE *out, double log_every)
{
    if (out && isatty(fileno(out)))
        return RELATE_PROGRESS_BAR;
    return log_every > 0 ? RELATE_PROGRESS_LINES : RELATE_PROGRESS_OFF;
}

void relate_progress_begin(relate_progress *p, FILE *out, relate_progress_mode mode, double every, const char *label,
                           int64_t total, int64_t first, int64_t later_steps)
{
    p->out = out;
    p->mode = out ? mode : RELATE_PROGRESS_OFF;
    p->every = every;
    p->start = p->last = relate_now();
    p->total = total;
    p->first = first;
    p->later_steps = later_steps;
    snprintf(p->label, sizeof p->label, "%s", label);
}

void relate_progress_update(relate_progress *p, int64_t done, int64_t images, const char *extra)
{
    if (p->mode == RELATE_PROGRESS_OFF)
        return;
    const double now = relate_now();
    if (p->mode == RELATE_PROGRESS_LINES && now - p->last < p->every && done < p->total)
        return;
    p->last = now;
    const double el = now - p->start;
    const int64_t here = done - p->first; /* steps timed in this process */
    const double per_step = here > 0 ? el / (double)here : 0.0;
    const double rate = el > 0 ? (double)images / el : 0.0;
    char eta[32], run_eta[32];
    relate_format_hms(eta, sizeof eta, per_step * (double)(p->total - done));
    relate_format_hms(run_eta, sizeof run_eta, per_step * (double)(p->total - done + p->later_steps));
    if (p->mode == RELATE_PROGRESS_BAR) {
        const int width = 24;
        int fill = p->total > 0 ? (int)(width * done / p->total) : 0;
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(p->out, "\r%s %lld/%lld [%s] %.0f img/s %.3f s/step ETA %s (run %s) %s\033[K", p->label,
                (long long)done, (long long)p->total, bar, rate, per_step, eta, run_eta, extra ? extra : "");
    } else {
        fprintf(p->out, "[relate] %s step %lld/%lld | %.0f img/s | %.3f s/step | %s | epoch ETA %s | run ETA %s\n",
                p->label, (long long)done, (long long)p->total, rate, per_step, extra ? extra : "", eta, run_eta);
    }
    fflush(p->out);
}

void relate_progress_clear(relate_progress *p)
{
    if (p->mode != RELATE_PROGRESS_BAR)
        return;
    fprintf(p->out, "\r\033[K");
    fflush(p->out);
}

static relate_status log_add(relate_epoch_log *log, const char *line, relate_error *err)
{
    size_t n = strlen(line);
    if (log->len + n + 1 > log->cap) {
        size_t cap = (log->cap ? 2 * log->cap : 4096) + n;
        char *t = realloc(log->text, cap);
        if (!t)
            return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory for the log");
        log->text = t;
        log->cap = cap;
    }
    memcpy(log->text + log->len, line, n + 1);
    log->len += n;
    return RELATE_OK;
}

static relate_status log_flush(relate_epoch_log *log, relate_error *err)
{
    relate_atomic_file f;
    if (relate_atomic_open(&f, log->path, err) != RELATE_OK)
        return err->code;
    fwrite(log->text, 1, log->len, f.fp);
    return relate_atomic_commit(&f, err);
}

relate_status relate_epoch_log_open(relate_epoch_log *log, const char *path, const char *columns, int keep_before,
                                    relate_error *err)
{
    memset(log, 0, sizeof *log);
    snprintf(log->path, sizeof log->path, "%s", path);
    if (log_add(log, columns, err) != RELATE_OK || log_add(log, "\n", err) != RELATE_OK)
        return err->code;
    FILE *old = keep_before > 0 ? fopen(path, "r") : NULL;
    if (old) {
        char line[512];
        bool first = true;
        while (fgets(line, sizeof line, old)) {
            if (first) {
                first = false;
                continue;
            }
            char *end;
            long e = strtol(line, &end, 10);
            if (end != line && *end == ',' && e >= 0 && e < keep_before && strchr(line, '\n'))
                if (log_add(log, line, err) != RELATE_OK) {
                    fclose(old);
                    return err->code;
                }
        }
        fclose(old);
    }
    return log_flush(log, err);
}

relate_status relate_epoch_log_append(relate_epoch_log *log, int epoch, double loss, double score, relate_error *err)
{
    return relate_epoch_log_append_extra(log, epoch, loss, score, "", err);
}

relate_status relate_epoch_log_append_extra(relate_epoch_log *log, int epoch, double loss, double score,
                                            const char *extra, relate_error *err)
{
    char a[40], b[40], line[256];
    snprintf(line, sizeof line, "%d,%s,%s%.100s\n", epoch, relate_pyfloat(a, sizeof a, loss),
             relate_pyfloat(b, sizeof b, score), extra ? extra : "");
    if (log_add(log, line, err) != RELATE_OK)
        return err->code;
    return log_flush(log, err);
}

void relate_epoch_log_close(relate_epoch_log *log)
{
    free(log->text);
    memset(log, 0, sizeof *log);
}

/* A share must hold at least one image, the last partial batch's included. */
relate_status relate_stage_check_shares(const relate_split *split, int data_size, bool drop_last, int nranks,
                                        relate_error *err)
{
    if (nranks == 1)
        return RELATE_OK;
    if (data_size < nranks)
        return relate_error_set(err, RELATE_ERR_ARG,
                                "--data_size=%d is the whole batch, shared by %d processes: it needs at least one image "
                                "per process",
                                data_size, nranks);
    const int64_t rest = split->count % data_size;
    if (!drop_last && rest > 0 && rest < nranks)
        return relate_error_set(err, RELATE_ERR_ARG,
                                "the last batch of each epoch holds %lld images (%lld %% --data_size=%d), fewer than "
                                "the %d processes sharing it: choose a --data_size that leaves at least %d, or run %lld "
                                "processes",
                                (long long)rest, (long long)split->count, data_size, nranks, nranks, (long long)rest);
    return RELATE_OK;
}
