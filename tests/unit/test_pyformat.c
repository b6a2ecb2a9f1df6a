/* test_pyformat.c: floats printed as Python's str(float) and str(round(x, n)), which the log and
 * console lines use (expected strings are what CPython 3 prints). */
#include <math.h>
#include <string.h>

#include "base/pyformat.h"
#include "test_util.h"

static void expect(double v, const char *want)
{
    char buf[64];
    relate_pyfloat(buf, sizeof buf, v);
    CHECK_MSG(strcmp(buf, want) == 0, "repr(%.17g) gave %s, want %s", v, buf, want);
}

static void expect_round(double v, int digits, const char *want)
{
    char buf[64];
    relate_pyround(buf, sizeof buf, v, digits);
    CHECK_MSG(strcmp(buf, want) == 0, "round(%.17g, %d) gave %s, want %s", v, digits, buf, want);
}

int main(void)
{
    expect(0.1, "0.1");
    expect(100.0, "100.0");
    expect(-2.5, "-2.5");
    expect(0.0, "0.0");
    expect(-0.0, "-0.0");
    expect(1e-05, "1e-05");
    expect(0.0001, "0.0001");
    expect(0.00012345, "0.00012345");
    expect(1e16, "1e+16");
    expect(1e15, "1000000000000000.0");
    expect(123456789012345678.0, "1.2345678901234568e+17");
    expect(0.1 * 0.1, "0.010000000000000002");
    expect(0.08794878609478474, "0.08794878609478474");
    expect(57.37847222222222, "57.37847222222222");
    expect(1.0 / 3.0, "0.3333333333333333");
    expect(2.5e-300, "2.5e-300");
    expect(NAN, "nan");
    expect(INFINITY, "inf");
    expect(-INFINITY, "-inf");
    expect_round(57.546875, 2, "57.55");
    expect_round(57.2, 2, "57.2");
    expect_round(2.675, 2, "2.67"); /* 2.675 is 2.67499999... in binary, as Python rounds it */
    expect_round(0.125, 2, "0.12"); /* an exact tie goes to even */
    expect_round(100.0, 2, "100.0");
    return relate_test_finish();
}
