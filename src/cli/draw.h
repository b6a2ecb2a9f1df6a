/* draw.h: the cairo drawing shared by the commands that write figures: text placed by an anchor,
 * tick steps, the atomic PNG write (`relate plot`), and the class-coloured scatter plot of a 2-D
 * map with its legend (`relate embed --tsne`).
 * Not a plotting library: only what those figures need. */
#ifndef RELATE_CLI_DRAW_H
#define RELATE_CLI_DRAW_H

#include <cairo.h>
#include <stddef.h>
#include <stdint.h>

/* Draws s so that the point (ax, ay) of its ink box lies at (x, y): ax 0 / 0.5 / 1 puts the left
 * edge / centre / right edge there, ay 0 / 0.5 / 1 the bottom / middle / top. In the current font,
 * size and colour. */
void relate_draw_text(cairo_t *cr, double x, double y, const char *s, double ax, double ay);

/* A tick step of 1, 2 or 5 x 10^k giving about `want` ticks over [lo, hi]. */
double relate_draw_nice_step(double lo, double hi, int want);

/* Writes surf as a PNG to a temporary name and renames it to path, so that path is either absent
 * or whole. Returns 0, or -1 with the reason in why. */
int relate_draw_png_write(cairo_surface_t *surf, const char *path, char *why, size_t why_size);

/* A scatter plot of n points xy [n, 2] coloured by label (labels outside [0, classes) in grey as
 * "unlabelled"), equal scales on both axes, with a title, a subtitle, a footnote under the plot
 * (may be NULL) and a legend naming each class and its count, written with relate_draw_png_write.
 * Text too long for the image is shortened with "...". *width, *height: the image's size (1000 x
 * 810 up to 40 legend entries; 200 pixels wider per 40 more). Returns 0, or -1 with why. */
int relate_draw_scatter_png(const char *path, const float *xy, const int32_t *labels, int64_t n,
                            char *const *class_names, int classes, const char *title, const char *subtitle,
                            const char *footnote, int *width, int *height, char *why, size_t why_size);

#endif
