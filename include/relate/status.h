/* relate/status.h: error values shared by every library call.
 * Not an exception mechanism: library code returns a status and fills a message; only the CLI
 * decides exit codes.
 *
 *   relate_error err = {0};
 *   if (relate_backbone_create(&bb, "conv4", 1, &err) != RELATE_OK)
 *       fprintf(stderr, "relate: %s\n", err.msg);
 */
#ifndef RELATE_STATUS_H
#define RELATE_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum relate_status {
    RELATE_OK = 0,
    RELATE_ERR_ARG,     /* a wrong argument or flag value */
    RELATE_ERR_SHAPE,   /* tensor shapes that do not fit an op */
    RELATE_ERR_NOMEM,   /* allocation failed */
    RELATE_ERR_IO,      /* a file could not be read or written */
    RELATE_ERR_FORMAT,  /* a file is truncated, corrupt or foreign */
    RELATE_ERR_NUMERIC, /* NaN or infinite values */
    RELATE_ERR_INTERNAL, /* a broken invariant: a bug in relate */
    RELATE_ERR_INTERRUPTED /* the user asked to stop (SIGINT) */
} relate_status;

typedef struct relate_error {
    relate_status code;
    char msg[512];
} relate_error;

/* Records the first error only: later failures are usually consequences of it. Returns code. */
relate_status relate_error_set(relate_error *err, relate_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
relate_status relate_error_vset(relate_error *err, relate_status code, const char *fmt, va_list ap);
const char *relate_status_name(relate_status code);

#ifdef __cplusplus
}
#endif
#endif
