/* draw_scatter.c: the class-coloured scatter plot of a 2-D map (`relate embed --tsne`): points in
 * a square frame with equal scales on both axes, a title and subtitle, and a legend that names
 * every class with its colour and count.
 * Not the map itself (relate/tsne.h) and not a general plot: a t-SNE map's axes have no units,
 * so there are no ticks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/draw.h"

/* The layout in pixels: the plot square, the margins around it and one legend column. */
enum { MARGIN = 40, TOP = 64, BOTTOM = 26, SIDE = 720, GAP = 40, COLUMN = 200, ROW = 18 };
static const double PI = 3.14159265358979323846;

/* matplotlib's tab10, the palette readers know from t-SNE figures. */
static const double TAB10[10][3] = {{0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173},
                                    {0.839, 0.153, 0.157}, {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294},
                                    {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498}, {0.737, 0.741, 0.133},
                                    {0.090, 0.745, 0.812}};

/* Class c of `classes`: tab10 up to ten classes; beyond, hues spread by the golden ratio (so that
 * neighbouring class numbers differ most) at two brightnesses. */
static void class_colour(int c, int classes, double rgb[3])
{
    if (classes <= 10) {
        memcpy(rgb, TAB10[c], 3 * sizeof *rgb);
        return;
    }
    const double h = fmod(c * 0.618033988749895, 1.0) * 6.0, s = 0.75, v = c % 2 ? 0.70 : 0.95;
    const int i = (int)h;
    const double f = h - i, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    const double tab[6][3] = {{v, t, p}, {q, v, p}, {p, v, t}, {p, q, v}, {t, p, v}, {v, p, q}};
    memcpy(rgb, tab[i % 6], 3 * sizeof *rgb);
}

int relate_draw_scatter_png(const char *path, const float *xy, const int32_t *labels, int64_t n,
                            char *const *class_names, int classes, const char *title, const char *subtitle,
                            const char *footnote, int *width, int *height, char *why, size_t why_size)
{
    int64_t *count = calloc((size_t)classes + 1, sizeof *count); /* [classes]: the unlabelled */
    if (!count) {
        snprintf(why, why_size, "out of memory");
        return -1;
    }
    for (int64_t i = 0; i < n; i++)
        count[labels && labels[i] >= 0 && labels[i] < classes ? labels[i] : classes]++;
    const int entries = classes + (count[classes] > 0);
    const int per_column = SIDE / ROW, columns = entries > 0 ? (entries + per_column - 1) / per_column : 1;
    const int W = MARGIN + SIDE + GAP + COLUMN * columns, H = TOP + SIDE + BOTTOM;
    *width = W;
    *height = H;
    cairo_surface_t *surf;
    cairo_t *cr = relate_draw_page(W, H, &surf, why, why_size);
    if (!cr) {
        free(count);
        return -1;
    }
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    char buf[600];
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    cairo_set_font_size(cr, 16);
    relate_draw_text(cr, MARGIN, 14, relate_draw_fit(cr, title, W - 2 * MARGIN, buf, sizeof buf), 0.0, 1.0);
    cairo_set_font_size(cr, 12);
    cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
    relate_draw_text(cr, MARGIN, 40, relate_draw_fit(cr, subtitle, W - 2 * MARGIN, buf, sizeof buf), 0.0, 1.0);
    if (footnote) {
        cairo_set_font_size(cr, 11);
        relate_draw_text(cr, MARGIN, TOP + SIDE + 8, relate_draw_fit(cr, footnote, W - 2 * MARGIN, buf, sizeof buf),
                         0.0, 1.0);
    }

    /* Equal scales: the larger extent fills the square (less 4 % a side), the other is centred. */
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        x0 = fmin(x0, xy[2 * i]);
        x1 = fmax(x1, xy[2 * i]);
        y0 = fmin(y0, xy[2 * i + 1]);
        y1 = fmax(y1, xy[2 * i + 1]);
    }
    const double extent = fmax(fmax(x1 - x0, y1 - y0), 1e-12), scale = SIDE * 0.92 / extent;
    const double ox = MARGIN + SIDE / 2.0 - scale * 0.5 * (x0 + x1), oy = TOP + SIDE / 2.0 + scale * 0.5 * (y0 + y1);
    cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
    cairo_set_line_width(cr, 1.0);
    cairo_rectangle(cr, MARGIN + 0.5, TOP + 0.5, SIDE - 1, SIDE - 1);
    cairo_stroke(cr);
    /* Smaller dots for more points, so that clusters stay visible rather than one blot. */
    const double r = fmin(3.5, fmax(1.2, 3.0 * sqrt(1000.0 / (double)(n > 0 ? n : 1))));
    for (int64_t i = 0; i < n; i++) {
        double rgb[3] = {0.6, 0.6, 0.6};
        if (labels && labels[i] >= 0 && labels[i] < classes)
            class_colour(labels[i], classes, rgb);
        cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], 0.8);
        cairo_arc(cr, ox + scale * xy[2 * i], oy - scale * xy[2 * i + 1], r, 0, 2 * PI); /* y grows upwards */
        cairo_fill(cr);
    }

    cairo_set_font_size(cr, 12);
    char name[160], line[200];
    for (int e = 0; e < entries; e++) {
        const double lx = MARGIN + SIDE + GAP + COLUMN * (e / per_column), ly = TOP + 8 + ROW * (e % per_column);
        double rgb[3] = {0.6, 0.6, 0.6};
        if (e < classes)
            class_colour(e, classes, rgb);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_arc(cr, lx + 5, ly, 5, 0, 2 * PI);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        const char *label = e < classes ? (class_names && class_names[e] ? class_names[e] : "") : "unlabelled";
        char number[24];
        if (e < classes && !*label) {
            snprintf(number, sizeof number, "class %d", e);
            label = number;
        }
        snprintf(line, sizeof line, " (%lld)", (long long)count[e < classes ? e : classes]);
        cairo_text_extents_t ext;
        cairo_text_extents(cr, line, &ext);
        relate_draw_fit(cr, label, COLUMN - 22 - ext.x_advance - 6, name, sizeof name);
        snprintf(line, sizeof line, "%s (%lld)", name, (long long)count[e < classes ? e : classes]);
        relate_draw_text(cr, lx + 16, ly, line, 0.0, 0.5);
    }
    const int rc = relate_draw_png_write(surf, path, why, why_size);
    cairo_destroy(cr);
    cairo_surface_destroy(surf);
    free(count);
    return rc;
}
