/* draw_preview.c: the labelled augmentation preview of `relate data --preview`: the library's grid
 * (relate/preview.h, rendered at zoom 1) magnified by an integer factor with nearest neighbour and
 * copied pixel for pixel onto a white page, under a title, a subtitle and a heading over every
 * column, with each row's label (dataset index, class) at its left and a light frame around every
 * cell; text drawn with cairo.
 * Not the grid itself (src/data/preview.c) and not a resampler: the magnification is integral. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/draw.h"
#include "relate/preview.h"

/* Draws s with its baseline at y and the point ax (0 left, 0.5 centre, 1 right) of its advance at
 * x, so that neighbouring texts line up whatever their ascenders and descenders. */
static void text_at(cairo_t *cr, double x, double y, const char *s, double ax)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - ax * e.x_advance, y);
    cairo_show_text(cr, s);
}

void relate_draw_preview_size(int grid_w, int grid_h, int scale, int64_t *width, int64_t *height)
{
    const int64_t w = RELATE_DRAW_PREVIEW_LEFT + (int64_t)grid_w * scale + RELATE_DRAW_PREVIEW_MARGIN;
    *width = w > RELATE_DRAW_PREVIEW_MIN_WIDTH ? w : RELATE_DRAW_PREVIEW_MIN_WIDTH;
    *height = RELATE_DRAW_PREVIEW_TOP + (int64_t)grid_h * scale + RELATE_DRAW_PREVIEW_MARGIN;
}

int relate_draw_preview_png(const char *path, const struct relate_preview *p, int scale, const char *title,
                            const char *subtitle, const char *const *headings, const char *const *row_index,
                            const char *const *row_class, int *width, int *height, char *why, size_t why_size)
{
    int64_t w64, h64;
    relate_draw_preview_size(p->image.width, p->image.height, scale, &w64, &h64);
    if (w64 > RELATE_DRAW_MAX_SIDE || h64 > RELATE_DRAW_MAX_SIDE || w64 * h64 > RELATE_DRAW_MAX_PIXELS) {
        snprintf(why, why_size, "the labelled preview would be %lld x %lld pixels (at most %d a side, %d in all)",
                 (long long)w64, (long long)h64, RELATE_DRAW_MAX_SIDE, RELATE_DRAW_MAX_PIXELS);
        return -1;
    }
    const int W = (int)w64, H = (int)h64, z = scale, gap = RELATE_PREVIEW_GAP * z;
    const int gx = RELATE_DRAW_PREVIEW_LEFT, gy = RELATE_DRAW_PREVIEW_TOP, side = p->side * z;
    const int pitch = side + gap; /* from one cell to the next, magnified */
    *width = W;
    *height = H;
    cairo_surface_t *surf;
    cairo_t *cr = relate_draw_page(W, H, &surf, why, why_size);
    if (!cr)
        return -1;
    char buf[600];
    const double M = RELATE_DRAW_PREVIEW_MARGIN;
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    cairo_set_font_size(cr, 15);
    text_at(cr, M, 24, relate_draw_fit(cr, title, W - 2 * M, buf, sizeof buf), 0.0);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 12);
    cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
    text_at(cr, M, 46, relate_draw_fit(cr, subtitle, W - 2 * M, buf, sizeof buf), 0.0);

    /* Column headings, centred over their cells, baseline 7 pixels above the grid: 12 pixels high,
     * or smaller (down to 7) when the widest would not fit its column. */
    double size = 12;
    cairo_set_font_size(cr, size);
    double widest = 0;
    for (int c = 0; c < p->columns; c++) {
        cairo_text_extents_t e;
        cairo_text_extents(cr, headings[c], &e);
        widest = e.x_advance > widest ? e.x_advance : widest;
    }
    if (widest > pitch - 4)
        size = size * (pitch - 4) / widest < 7 ? 7 : size * (pitch - 4) / widest;
    cairo_set_font_size(cr, size);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    for (int c = 0; c < p->columns; c++)
        text_at(cr, gx + gap + c * pitch + side / 2.0, gy - 7,
                relate_draw_fit(cr, headings[c], pitch - 2, buf, sizeof buf), 0.5);
    /* A rule under the headings, from the first cell to the last. */
    cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
    cairo_set_line_width(cr, 1.0);
    cairo_move_to(cr, gx + gap, gy - 0.5);
    cairo_line_to(cr, gx + p->columns * pitch, gy - 0.5);
    cairo_stroke(cr);

    /* Row labels, right-aligned 10 pixels left of the first cell: the index over the class when the cell
     * is tall enough for two lines, else both on one line. */
    const double right = gx + gap - 10, room = right - M;
    cairo_set_font_size(cr, 12);
    for (int r = 0; r < p->rows; r++) {
        const double mid = gy + gap + r * pitch + side / 2.0;
        if (side >= 34) {
            cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
            text_at(cr, right, mid - 3, relate_draw_fit(cr, row_index[r], room, buf, sizeof buf), 1.0);
            cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
            text_at(cr, right, mid + 12, relate_draw_fit(cr, row_class[r], room, buf, sizeof buf), 1.0);
        } else {
            char line[400];
            snprintf(line, sizeof line, "%s %s", row_index[r], row_class[r]);
            cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
            text_at(cr, right, mid + 4, relate_draw_fit(cr, line, room, buf, sizeof buf), 1.0);
        }
    }

    /* The grid: every pixel of the library's image becomes a z x z block. */
    cairo_surface_flush(surf);
    unsigned char *data = cairo_image_surface_get_data(surf);
    const int stride = cairo_image_surface_get_stride(surf);
    for (int y = 0; y < p->image.height * z; y++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)(gy + y) * (size_t)stride) + gx;
        const uint8_t *src = p->image.pixels + (size_t)(y / z) * (size_t)p->image.width * 3;
        for (int x = 0; x < p->image.width * z; x++) {
            const uint8_t *px = src + (size_t)(x / z) * 3;
            row[x] = (uint32_t)px[0] << 16 | (uint32_t)px[1] << 8 | px[2];
        }
    }
    cairo_surface_mark_dirty(surf);
    /* A light frame one pixel outside every cell, in the grid's gaps, so that images with a white
     * background keep their edges; the cells themselves stay the library's pixels. */
    cairo_set_source_rgb(cr, 0.8, 0.8, 0.8);
    cairo_set_line_width(cr, 1.0);
    for (int r = 0; r < p->rows; r++)
        for (int c = 0; c < p->columns; c++)
            cairo_rectangle(cr, gx + gap + c * pitch - 0.5, gy + gap + r * pitch - 0.5, side + 1, side + 1);
    cairo_stroke(cr);
    const int rc = relate_draw_png_write(surf, path, why, why_size);
    cairo_destroy(cr);
    cairo_surface_destroy(surf);
    return rc;
}
