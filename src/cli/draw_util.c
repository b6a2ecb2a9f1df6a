/* draw_util.c: the cairo helpers of draw.h shared by the figures (`relate plot`, `relate embed
 * --tsne`, `relate data --preview`): the white page, anchored and shortened text, tick steps and
 * the atomic PNG write.
 * Not any one figure: those are cmd_plot.c, draw_scatter.c and draw_preview.c. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/draw.h"

void relate_draw_text(cairo_t *cr, double x, double y, const char *s, double ax, double ay)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - ax * e.width - e.x_bearing, y + ay * e.height - (e.height + e.y_bearing));
    cairo_show_text(cr, s);
}

const char *relate_draw_fit(cairo_t *cr, const char *s, double room, char *buf, size_t size)
{
    snprintf(buf, size, "%s", s);
    cairo_text_extents_t e;
    cairo_text_extents(cr, buf, &e);
    size_t len = strlen(buf);
    while (e.x_advance > room && len > 1) {
        do /* step back over a whole UTF-8 character */
            len--;
        while (len > 0 && ((unsigned char)buf[len] & 0xC0) == 0x80);
        snprintf(buf + len, size - len, "...");
        cairo_text_extents(cr, buf, &e);
    }
    return buf;
}

cairo_t *relate_draw_page(int width, int height, cairo_surface_t **surf, char *why, size_t why_size)
{
    *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    cairo_t *cr = cairo_create(*surf);
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
        snprintf(why, why_size, "cairo: %s", cairo_status_to_string(cairo_status(cr)));
        cairo_destroy(cr);
        cairo_surface_destroy(*surf);
        *surf = NULL;
        return NULL;
    }
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    return cr;
}

double relate_draw_nice_step(double lo, double hi, int want)
{
    double raw = (hi - lo) / want, p = pow(10.0, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

int relate_draw_png_write(cairo_surface_t *surf, const char *path, char *why, size_t why_size)
{
    cairo_surface_flush(surf);
    /* cairo writes the file itself; a temporary name, then rename, keeps it whole. */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cairo_status_t cs = cairo_surface_write_to_png(surf, tmp);
    if (cs != CAIRO_STATUS_SUCCESS || rename(tmp, path) != 0) {
        snprintf(why, why_size, "cannot write %s: %s", path,
                 cs != CAIRO_STATUS_SUCCESS ? cairo_status_to_string(cs) : strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}
