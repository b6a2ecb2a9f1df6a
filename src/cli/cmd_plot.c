/* cmd_plot.c: `relate plot LOG.csv [LOG.csv ...] --out curves.png`: the epoch logs of stage 1
 * (epoch,loss,score[,knn_top1]) and stage 2 (epoch,loss,accuracy) drawn with cairo: loss on the
 * left, score / accuracy (and kNN top-1, dashed) on the right, one colour per log, with axes,
 * ticks, labels and a legend. Several logs overlay, to compare runs. */
#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/draw.h"
#include "cli/epoch_log_read.h"
#include "data/readers.h"

enum { MAX_LOGS = 8 };
static const double PI = 3.14159265358979323846;

typedef struct panel {
    double x0, y0, w, h;       /* plot area in pixels */
    double xmin, xmax, ymin, ymax;
} panel;

static double px(const panel *p, double x) { return p->x0 + (x - p->xmin) / (p->xmax - p->xmin) * p->w; }
static double py(const panel *p, double y) { return p->y0 + p->h - (y - p->ymin) / (p->ymax - p->ymin) * p->h; }

static void axes(cairo_t *cr, const panel *p, const char *title, const char *ylabel)
{
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 1.0);
    cairo_rectangle(cr, p->x0, p->y0, p->w, p->h);
    cairo_stroke(cr);
    cairo_set_font_size(cr, 12);
    char buf[32];
    const double xstep = relate_draw_nice_step(p->xmin, p->xmax, 6), xs = xstep < 1 ? 1 : xstep;
    for (double t = ceil(p->xmin / xs) * xs; t <= p->xmax + 1e-9; t += xs) {
        cairo_move_to(cr, px(p, t), p->y0 + p->h);
        cairo_line_to(cr, px(p, t), p->y0 + p->h + 5);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%g", t);
        relate_draw_text(cr, px(p, t), p->y0 + p->h + 8, buf, 0.5, 1.0);
    }
    const double ys = relate_draw_nice_step(p->ymin, p->ymax, 5);
    for (double t = ceil(p->ymin / ys) * ys; t <= p->ymax + 1e-12; t += ys) {
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, p->x0, py(p, t));
        cairo_line_to(cr, p->x0 + p->w, py(p, t));
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        cairo_move_to(cr, p->x0 - 5, py(p, t));
        cairo_line_to(cr, p->x0, py(p, t));
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%.4g", fabs(t) < ys * 1e-6 ? 0.0 : t);
        relate_draw_text(cr, p->x0 - 8, py(p, t), buf, 1.0, 0.5);
    }
    relate_draw_text(cr, p->x0 + p->w / 2, p->y0 + p->h + 26, "epoch", 0.5, 1.0);
    cairo_save(cr);
    cairo_translate(cr, p->x0 - 52, p->y0 + p->h / 2);
    cairo_rotate(cr, -PI / 2);
    relate_draw_text(cr, 0, 0, ylabel, 0.5, 0.5);
    cairo_restore(cr);
    cairo_set_font_size(cr, 14);
    relate_draw_text(cr, p->x0 + p->w / 2, p->y0 - 10, title, 0.5, 0.0);
}

static void curve(cairo_t *cr, const panel *p, const series_log *l, int col, const double rgb[3], bool dashed)
{
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
    cairo_set_line_width(cr, 2.0);
    const double dash[] = {6.0, 4.0};
    cairo_set_dash(cr, dashed ? dash : NULL, dashed ? 2 : 0, 0);
    bool pen = false;
    for (int i = 0; i < l->n; i++) {
        double v = l->y[col][i];
        if (isnan(v))
            continue;
        if (pen)
            cairo_line_to(cr, px(p, l->x[i]), py(p, v));
        else
            cairo_move_to(cr, px(p, l->x[i]), py(p, v));
        pen = true;
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    /* A dot per epoch, so that a log of one epoch (or the sparse kNN column) still shows. */
    for (int i = 0; i < l->n; i++)
        if (!isnan(l->y[col][i])) {
            cairo_arc(cr, px(p, l->x[i]), py(p, l->y[col][i]), dashed ? 3.0 : 2.5, 0, 2 * PI);
            cairo_fill(cr);
        }
}

static void range(const series_log *logs, int nlogs, int which, double *lo, double *hi, bool score)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int k = 0; k < nlogs; k++)
        for (int c = 0; c < logs[k].ncols; c++) {
            const bool is_loss = strcmp(logs[k].cols[c], "loss") == 0;
            if (which >= 0 ? c != which : is_loss == score)
                continue;
            for (int i = 0; i < logs[k].n; i++)
                if (!isnan(logs[k].y[c][i])) {
                    *lo = fmin(*lo, logs[k].y[c][i]);
                    *hi = fmax(*hi, logs[k].y[c][i]);
                }
        }
    if (!isfinite(*lo)) {
        *lo = 0;
        *hi = 1;
    }
    const double pad = (*hi - *lo) * 0.06 + (*hi == *lo ? fabs(*hi) * 0.1 + 1e-3 : 0);
    *lo -= pad;
    *hi += pad;
}

int relate_cmd_plot(int argc, char **argv)
{
    relate_arg_spec specs[] = {
        {"out", RELATE_ARG_STR, "", "the PNG file to write (never overwritten); required", NULL, 0, 0},
        {"width", RELATE_ARG_INT, "1000", "image width in pixels", NULL, 400, 8000},
        {"height", RELATE_ARG_INT, "420", "image height in pixels", NULL, 240, 8000},
    };
    const int n = (int)(sizeof specs / sizeof specs[0]);
    char *files[MAX_LOGS], *rest[32];
    int nfiles = 0, nrest = 0;
    for (int i = 0; i < argc && nrest < 32; i++) {
        if (strncmp(argv[i], "--", 2) == 0 || strcmp(argv[i], "-h") == 0) {
            rest[nrest++] = argv[i];
            if (!strchr(argv[i], '=') && strcmp(argv[i], "--help") != 0 && strcmp(argv[i], "-h") != 0 && i + 1 < argc)
                rest[nrest++] = argv[++i];
        } else if (nfiles < MAX_LOGS) {
            files[nfiles++] = argv[i];
        } else {
            fprintf(stderr, "relate plot: at most %d logs\n", MAX_LOGS);
            return 2;
        }
    }
    bool help;
    int rc = relate_args_parse("plot", specs, n, nrest, rest, &help);
    if (rc)
        return rc;
    const char *out = relate_args_get(specs, n, "out");
    if (help || !nfiles || !*out) {
        relate_args_usage("plot LOG.csv [LOG.csv ...]",
                          "Draws epoch logs (stage 1: loss, score and kNN top-1; stage 2: loss and accuracy) as a "
                          "PNG with cairo:\nloss on the left, score / accuracy on the right, one colour per log.",
                          specs, n);
        return help ? 0 : 2;
    }
    if (relate_file_size(out) >= 0) {
        fprintf(stderr, "relate plot: %s exists: relate does not overwrite it; remove it or choose another --out\n",
                out);
        return 2;
    }
    series_log logs[MAX_LOGS];
    int nlogs = 0;
    rc = 0;
    for (int i = 0; i < nfiles && !rc; i++) {
        relate_error err = {0};
        if (relate_series_log_read(files[i], &logs[i], &err) == RELATE_OK) {
            nlogs++;
        } else {
            fprintf(stderr, "relate plot: %s\n", err.msg);
            rc = 1;
        }
    }
    const int W = (int)relate_args_get_int(specs, n, "width"), H = (int)relate_args_get_int(specs, n, "height");
    const int legend_h = 18 * nlogs + 10;
    cairo_surface_t *surf = NULL;
    cairo_t *cr = NULL;
    if (!rc) {
        char why[256];
        cr = relate_draw_page(W, H + legend_h, &surf, why, sizeof why);
        rc = cr == NULL;
        if (rc)
            fprintf(stderr, "relate plot: %s\n", why);
    }
    if (!rc) {
        static const double palette[MAX_LOGS][3] = {{0.12, 0.47, 0.71}, {0.84, 0.15, 0.16}, {0.17, 0.63, 0.17},
                                                    {1.0, 0.5, 0.05},   {0.58, 0.4, 0.74},  {0.55, 0.34, 0.29},
                                                    {0.89, 0.47, 0.76}, {0.5, 0.5, 0.5}};
        cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
        double xmin = INFINITY, xmax = -INFINITY;
        for (int k = 0; k < nlogs; k++) {
            xmin = fmin(xmin, logs[k].x[0]);
            xmax = fmax(xmax, logs[k].x[logs[k].n - 1]);
        }
        if (xmax <= xmin)
            xmax = xmin + 1;
        const double pw = (W - 3 * 80) / 2.0, ph = H - 90;
        panel left = {80, 40, pw, ph, xmin, xmax, 0, 1}, right = {2 * 80 + pw + 40, 40, pw - 40, ph, xmin, xmax, 0, 1};
        range(logs, nlogs, -1, &left.ymin, &left.ymax, false);
        range(logs, nlogs, -1, &right.ymin, &right.ymax, true);
        const bool stage2 = strcmp(logs[0].cols[logs[0].ncols > 1 ? 1 : 0], "accuracy") == 0;
        axes(cr, &left, "loss (epoch mean)", "loss");
        axes(cr, &right, stage2 ? "training accuracy" : "score (accuracy %; kNN top-1 dashed)", "%");
        for (int k = 0; k < nlogs; k++)
            for (int c = 0; c < logs[k].ncols; c++) {
                const bool is_loss = strcmp(logs[k].cols[c], "loss") == 0;
                curve(cr, is_loss ? &left : &right, &logs[k], c, palette[k], strcmp(logs[k].cols[c], "knn_top1") == 0);
            }
        cairo_set_font_size(cr, 12);
        for (int k = 0; k < nlogs; k++) {
            const double y = H + 6 + 18 * k;
            cairo_set_source_rgb(cr, palette[k][0], palette[k][1], palette[k][2]);
            cairo_rectangle(cr, 80, y + 3, 24, 4);
            cairo_fill(cr);
            cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
            relate_draw_text(cr, 112, y + 5, logs[k].name, 0.0, 0.5);
        }
        char why[4400];
        if (relate_draw_png_write(surf, out, why, sizeof why) != 0) {
            fprintf(stderr, "relate plot: %s\n", why);
            rc = 1;
        } else {
            printf("%s: %d log(s), %d x %d pixels\n", out, nlogs, W, H + legend_h);
        }
    }
    if (cr)
        cairo_destroy(cr);
    if (surf)
        cairo_surface_destroy(surf);
    for (int k = 0; k < nlogs; k++)
        relate_series_log_free(&logs[k]);
    return rc;
}
