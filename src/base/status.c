/* status.c: formatting of relate_error values.
 * Not a logger: it never prints; the caller decides where a message goes. */
#include "relate/status.h"

#include <stdio.h>

relate_status relate_error_vset(relate_error *err, relate_status code, const char *fmt, va_list ap)
{
    if (err && err->code == RELATE_OK) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

relate_status relate_error_set(relate_error *err, relate_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    relate_error_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

const char *relate_status_name(relate_status code)
{
    switch (code) {
    case RELATE_OK: return "ok";
    case RELATE_ERR_ARG: return "invalid argument";
    case RELATE_ERR_SHAPE: return "shape mismatch";
    case RELATE_ERR_NOMEM: return "out of memory";
    case RELATE_ERR_IO: return "i/o error";
    case RELATE_ERR_FORMAT: return "bad file format";
    case RELATE_ERR_NUMERIC: return "non-finite value";
    case RELATE_ERR_INTERNAL: return "internal error";
    case RELATE_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown error";
}
