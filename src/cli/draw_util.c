/* draw_util.c: the cairo helpers of draw.h shared by `relate plot` and `relate embed --tsne`:
 * anchored text, tick steps and the atomic PNG write.
 * Not any one figure: those are cmd_plot.c and draw_scatter.c. */
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
