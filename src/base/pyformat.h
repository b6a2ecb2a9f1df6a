/* pyformat.h: numbers printed the way the reference's Python prints them, so logs and console
 * lines compare textually with the reference's.
 * Not printf: only what str(float) and round(x, n) produce. */
#ifndef RELATE_BASE_PYFORMAT_H
#define RELATE_BASE_PYFORMAT_H

#include <stddef.h>

/* Python's repr/str of a float: the shortest digits that round-trip, fixed notation for
 * 1e-4 <= |v| < 1e16 (always with a fractional part, "100.0"), otherwise "1e-05" style; "nan",
 * "inf", "-inf". Returns buf. */
char *relate_pyfloat(char *buf, size_t size, double v);
/* str(round(v, digits)): rounds the exact binary value half-to-even like Python, then prints the
 * shortest repr. */
char *relate_pyround(char *buf, size_t size, double v, int digits);

#endif
