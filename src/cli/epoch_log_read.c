/* epoch_log_read.c: the epoch-log reader of `relate plot` (epoch_log_read.h). Lines are parsed
 * with strtod, each field checked to be a finite number or empty; over-long lines, more than
 * RELATE_SERIES_MAX_ROWS lines and anything else are refused with the line's number. */
#define _POSIX_C_SOURCE 200809L /* strtok_r */
#include "cli/epoch_log_read.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void relate_series_log_free(series_log *l)
{
    free(l->x);
    for (int c = 0; c < RELATE_SERIES_MAX_COLS; c++)
        free(l->y[c]);
    memset(l, 0, sizeof *l);
}

static relate_status grow(series_log *l)
{
    int cap = l->cap ? 2 * l->cap : 64;
    double *x = realloc(l->x, (size_t)cap * sizeof *x);
    if (!x)
        return RELATE_ERR_NOMEM;
    l->x = x;
    for (int c = 0; c < l->ncols; c++) {
        double *y = realloc(l->y[c], (size_t)cap * sizeof *y);
        if (!y)
            return RELATE_ERR_NOMEM;
        l->y[c] = y;
    }
    l->cap = cap;
    return RELATE_OK;
}

/* One data line into row l->n; false when it is not "number,[number],..." with finite numbers. */
static bool parse_line(series_log *l, const char *line)
{
    const char *p = line;
    char *end;
    l->x[l->n] = strtod(p, &end);
    if (end == p || *end != ',' || !isfinite(l->x[l->n]))
        return false;
    p = end + 1;
    for (int c = 0; c < l->ncols; c++) {
        double v = NAN;
        if (*p != ',' && *p != '\n' && *p != '\r' && *p) {
            v = strtod(p, &end);
            if (end == p || !isfinite(v))
                return false;
            p = end;
        }
        l->y[c][l->n] = v;
        if (*p == ',')
            p++;
    }
    return true;
}

relate_status relate_series_log_read(const char *path, series_log *l, relate_error *err)
{
    memset(l, 0, sizeof *l);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(l->name, sizeof l->name, "%s", strncmp(base, "log_", 4) == 0 ? base + 4 : base);
    char *dot = strstr(l->name, ".csv");
    if (dot)
        *dot = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return relate_error_set(err, RELATE_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    char line[1024];
    if (!fgets(line, sizeof line, f) || strncmp(line, "epoch,", 6) != 0) {
        fclose(f);
        return relate_error_set(err, RELATE_ERR_FORMAT,
                                "%s is not an epoch log of relate (its first line must start with 'epoch,')", path);
    }
    char *save = NULL;
    for (char *tok = strtok_r(line + 6, ",\r\n", &save); tok && l->ncols < RELATE_SERIES_MAX_COLS;
         tok = strtok_r(NULL, ",\r\n", &save))
        snprintf(l->cols[l->ncols++], sizeof l->cols[0], "%s", tok);
    relate_status s = RELATE_OK;
    int lineno = 1;
    while (s == RELATE_OK && fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '\n' || line[0] == 0)
            continue;
        if (l->n == RELATE_SERIES_MAX_ROWS || (!strchr(line, '\n') && !feof(f)) ||
            (l->n == l->cap && (s = grow(l)) != RELATE_OK) || !parse_line(l, line)) {
            if (s == RELATE_OK)
                s = relate_error_set(err, RELATE_ERR_FORMAT, "%s line %d is not a line of numbers: %.60s", path,
                                     lineno, line);
            else
                relate_error_set(err, s, "out of memory reading %s", path);
            break;
        }
        l->n++;
    }
    fclose(f);
    if (s == RELATE_OK && l->n == 0)
        s = relate_error_set(err, RELATE_ERR_FORMAT, "%s has no epoch lines yet", path);
    if (s != RELATE_OK)
        relate_series_log_free(l);
    return s;
}
