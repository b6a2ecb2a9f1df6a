/* draw.h: the cairo drawing shared by the commands that write figures: the white page, text
 * placed by an anchor or shortened to fit, tick steps, the atomic PNG write (`relate plot`), the
 * class-coloured scatter plot of a 2-D map with its legend (`relate embed --tsne`), and the
 * labelled augmentation preview (`relate data --preview`).
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

/* s, shortened with "..." (whole UTF-8 characters) until it fits in `room` pixels in the current
 * font, into buf; returns buf. */
const char *relate_draw_fit(cairo_t *cr, const char *s, double room, char *buf, size_t size);

/* A width x height RGB page painted white: the context, with the surface in *surf (destroy both).
 * NULL, with *surf NULL and the reason in why, when cairo cannot make it. */
cairo_t *relate_draw_page(int width, int height, cairo_surface_t **surf, char *why, size_t why_size);

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

/* The labelled augmentation preview. Layout, in pixels: the library's grid (relate/preview.h,
 * rendered at zoom 1, grid_w x grid_h) magnified `scale` times with nearest neighbour, its top-left
 * corner at (LEFT, TOP), exactly (every grid pixel becomes a scale x scale block); above it a title
 * (15 px, bold) and a subtitle (12 px) on baselines 24 and 46, and a heading centred over every
 * column; at the left of every row, right-aligned, its label; a light grey frame one pixel outside
 * every cell (in the grid's gaps); MARGIN to the right and below. The page is
 * max(MIN_WIDTH, LEFT + grid_w * scale + MARGIN) x (TOP + grid_h * scale + MARGIN). */
#define RELATE_DRAW_PREVIEW_LEFT 132
#define RELATE_DRAW_PREVIEW_TOP 76
#define RELATE_DRAW_PREVIEW_MARGIN 12
#define RELATE_DRAW_PREVIEW_MIN_WIDTH 560
/* The largest page relate draws: cairo's limit on a side, and 100 million pixels (400 MB). */
#define RELATE_DRAW_MAX_SIDE 32767
#define RELATE_DRAW_MAX_PIXELS 100000000

struct relate_preview;

/* The page size of a labelled preview of a grid_w x grid_h grid magnified `scale` times. */
void relate_draw_preview_size(int grid_w, int grid_h, int scale, int64_t *width, int64_t *height);

/* Draws the labelled preview of p (rendered with zoom 1) and writes it with relate_draw_png_write:
 * headings [p->columns] over the columns, row_index and row_class [p->rows] at the left of every
 * row (on two lines when a magnified cell is at least 34 pixels high, else on one). Text too long
 * for its place is shortened with "..."; headings too wide for their column are drawn smaller
 * (down to 7 px). *width, *height: the page's size. Returns 0, or -1 with the reason in why (also
 * a page over RELATE_DRAW_MAX_SIDE or RELATE_DRAW_MAX_PIXELS). */
int relate_draw_preview_png(const char *path, const struct relate_preview *p, int scale, const char *title,
                            const char *subtitle, const char *const *headings, const char *const *row_index,
                            const char *const *row_class, int *width, int *height, char *why, size_t why_size);

#endif
