/* pickle_write.h: a minimal protocol-2 pickle emitter (the opcodes torch.save's data.pkl uses),
 * appending to a growing byte buffer.
 * Not a serializer of values: the caller walks its own data and emits opcodes in order; no memo
 * is kept (every object is written once, which any unpickler accepts).
 *
 *   relate_pkw w; relate_pkw_init(&w);
 *   relate_pkw_proto(&w);                     // \x80\x02
 *   relate_pkw_empty_dict(&w);  relate_pkw_mark(&w);
 *   relate_pkw_str(&w, "epoch");  relate_pkw_int(&w, 50);
 *   relate_pkw_op(&w, RELATE_PKW_SETITEMS);
 *   relate_pkw_op(&w, RELATE_PKW_STOP);
 *   if (w.oom) ...;  use w.buf[0 .. w.len);  relate_pkw_free(&w);
 */
#ifndef RELATE_IO_PICKLE_WRITE_H
#define RELATE_IO_PICKLE_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    RELATE_PKW_MARK = '(',
    RELATE_PKW_STOP = '.',
    RELATE_PKW_EMPTY_DICT = '}',
    RELATE_PKW_EMPTY_LIST = ']',
    RELATE_PKW_EMPTY_TUPLE = ')',
    RELATE_PKW_TUPLE = 't',
    RELATE_PKW_SETITEMS = 'u',
    RELATE_PKW_APPENDS = 'e',
    RELATE_PKW_REDUCE = 'R',
    RELATE_PKW_BINPERSID = 'Q'
};

typedef struct relate_pkw {
    uint8_t *buf;
    size_t len, cap;
    bool oom; /* set by the first failed allocation; later calls do nothing */
} relate_pkw;

void relate_pkw_init(relate_pkw *w);
void relate_pkw_free(relate_pkw *w);
void relate_pkw_op(relate_pkw *w, uint8_t op);
void relate_pkw_proto(relate_pkw *w); /* PROTO 2 */
void relate_pkw_mark(relate_pkw *w);
void relate_pkw_none(relate_pkw *w);
void relate_pkw_bool(relate_pkw *w, bool v);
/* BININT1/BININT2/BININT as Python picks them, else LONG1 with the fewest bytes. */
void relate_pkw_int(relate_pkw *w, int64_t v);
void relate_pkw_float(relate_pkw *w, double v); /* BINFLOAT */
void relate_pkw_str(relate_pkw *w, const char *s); /* BINUNICODE (UTF-8 text) */
void relate_pkw_global(relate_pkw *w, const char *module, const char *name); /* GLOBAL */
void relate_pkw_empty_dict(relate_pkw *w);
void relate_pkw_empty_list(relate_pkw *w);
/* A tuple of n items: call _begin, emit the n items, call _end (TUPLE1-3 for n <= 3, else
 * MARK ... TUPLE; EMPTY_TUPLE for n = 0). */
void relate_pkw_tuple_begin(relate_pkw *w, int n);
void relate_pkw_tuple_end(relate_pkw *w, int n);

#endif
