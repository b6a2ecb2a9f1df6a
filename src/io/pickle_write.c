/* pickle_write.c: the protocol-2 opcode emitter of pickle_write.h.
 * Not a pickler: no memo, no object model; the reader's side is pickle.c. */
#include "io/pickle_write.h"

#include <stdlib.h>
#include <string.h>

void relate_pkw_init(relate_pkw *w) { memset(w, 0, sizeof *w); }

void relate_pkw_free(relate_pkw *w)
{
    free(w->buf);
    memset(w, 0, sizeof *w);
}

static void put(relate_pkw *w, const void *p, size_t n)
{
    if (w->oom)
        return;
    if (n > w->cap - w->len) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap - w->len < n)
            cap *= 2;
        uint8_t *b = realloc(w->buf, cap);
        if (!b) {
            w->oom = true;
            return;
        }
        w->buf = b;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put_le(relate_pkw *w, uint64_t v, int n)
{
    uint8_t b[8];
    for (int k = 0; k < n; k++)
        b[k] = (uint8_t)(v >> (8 * k));
    put(w, b, (size_t)n);
}

void relate_pkw_op(relate_pkw *w, uint8_t op) { put(w, &op, 1); }

void relate_pkw_proto(relate_pkw *w)
{
    static const uint8_t proto[2] = {0x80, 2};
    put(w, proto, 2);
}

void relate_pkw_mark(relate_pkw *w) { relate_pkw_op(w, RELATE_PKW_MARK); }
void relate_pkw_none(relate_pkw *w) { relate_pkw_op(w, 'N'); }
void relate_pkw_bool(relate_pkw *w, bool v) { relate_pkw_op(w, v ? 0x88 : 0x89); }
void relate_pkw_empty_dict(relate_pkw *w) { relate_pkw_op(w, RELATE_PKW_EMPTY_DICT); }
void relate_pkw_empty_list(relate_pkw *w) { relate_pkw_op(w, RELATE_PKW_EMPTY_LIST); }

void relate_pkw_int(relate_pkw *w, int64_t v)
{
    if (v >= 0 && v <= 0xff) {
        relate_pkw_op(w, 'K');
        put_le(w, (uint64_t)v, 1);
    } else if (v >= 0 && v <= 0xffff) {
        relate_pkw_op(w, 'M');
        put_le(w, (uint64_t)v, 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        relate_pkw_op(w, 'J');
        put_le(w, (uint64_t)(uint32_t)(int32_t)v, 4);
    } else {
        /* LONG1: little-endian two's complement, as few bytes as keep the sign bit right. */
        int n = 8;
        while (n > 1) {
            int64_t shifted = v >> (8 * (n - 1) - 1); /* the bits that byte n-1 and the sign need */
            if (shifted != 0 && shifted != -1)
                break;
            n--;
        }
        relate_pkw_op(w, 0x8a);
        uint8_t len = (uint8_t)n;
        put(w, &len, 1);
        put_le(w, (uint64_t)v, n);
    }
}

void relate_pkw_float(relate_pkw *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    uint8_t b[9] = {'G'};
    for (int k = 0; k < 8; k++)
        b[1 + k] = (uint8_t)(u >> (56 - 8 * k)); /* big-endian */
    put(w, b, sizeof b);
}

void relate_pkw_str(relate_pkw *w, const char *s)
{
    size_t n = strlen(s);
    relate_pkw_op(w, 'X');
    put_le(w, (uint64_t)n, 4);
    put(w, s, n);
}

void relate_pkw_global(relate_pkw *w, const char *module, const char *name)
{
    relate_pkw_op(w, 'c');
    put(w, module, strlen(module));
    relate_pkw_op(w, '\n');
    put(w, name, strlen(name));
    relate_pkw_op(w, '\n');
}

void relate_pkw_tuple_begin(relate_pkw *w, int n)
{
    if (n > 3)
        relate_pkw_mark(w);
}

void relate_pkw_tuple_end(relate_pkw *w, int n)
{
    if (n == 0)
        relate_pkw_op(w, RELATE_PKW_EMPTY_TUPLE);
    else if (n <= 3)
        relate_pkw_op(w, (uint8_t)(0x84 + n)); /* TUPLE1..3 */
    else
        relate_pkw_op(w, RELATE_PKW_TUPLE);
}
