/* pickle.c: the restricted unpickler of pickle.h: a stack machine over a byte buffer that builds
 * value nodes in a pool, checking every length against the bytes that remain.
 * Not a full unpickler: text-protocol opcodes (INT, STRING, ...), sets, NEWOBJ_EX, EXT* and
 * protocol 5 buffers are refused with an error naming the opcode. */
#include "io/pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ pool */
#define PK_CHUNK_NODES 512

typedef struct pk_chunk {
    struct pk_chunk *next;
    int used;
    relate_pk_value nodes[PK_CHUNK_NODES];
} pk_chunk;

typedef struct pk_blob {
    struct pk_blob *next;
    char data[]; /* a string copy */
} pk_blob;

struct relate_pk_pool {
    pk_chunk *chunks;
    pk_blob *blobs;
};

static void pool_free(relate_pk_pool *p)
{
    if (!p)
        return;
    for (pk_chunk *c = p->chunks; c;) {
        for (int i = 0; i < c->used; i++)
            free(c->nodes[i].items);
        pk_chunk *n = c->next;
        free(c);
        c = n;
    }
    for (pk_blob *b = p->blobs; b;) {
        pk_blob *n = b->next;
        free(b);
        b = n;
    }
    free(p);
}

static relate_pk_value *pool_node(relate_pk_pool *p, relate_pk_kind kind)
{
    if (!p->chunks || p->chunks->used == PK_CHUNK_NODES) {
        pk_chunk *c = malloc(sizeof *c);
        if (!c)
            return NULL;
        c->next = p->chunks;
        c->used = 0;
        p->chunks = c;
    }
    relate_pk_value *v = &p->chunks->nodes[p->chunks->used++];
    memset(v, 0, sizeof *v);
    v->kind = kind;
    return v;
}

static char *pool_strdup(relate_pk_pool *p, const char *s, size_t len)
{
    pk_blob *b = malloc(sizeof *b + len + 1);
    if (!b)
        return NULL;
    memcpy(b->data, s, len);
    b->data[len] = 0;
    b->next = p->blobs;
    p->blobs = b;
    return b->data;
}

/* Room for `used + extra` item pointers (cap counts pointers, not dict pairs). */
static int node_reserve(relate_pk_value *v, int64_t used, int64_t extra)
{
    if (used + extra > v->cap) {
        int64_t cap = v->cap ? v->cap * 2 : 4;
        while (cap < used + extra)
            cap *= 2;
        relate_pk_value **items = realloc(v->items, (size_t)cap * sizeof *items);
        if (!items)
            return -1;
        v->items = items;
        v->cap = cap;
    }
    return 0;
}

static int node_push(relate_pk_value *v, relate_pk_value *item)
{
    if (node_reserve(v, v->count, 1))
        return -1;
    v->items[v->count++] = item;
    return 0;
}

/* ------------------------------------------------------------------ parser state */
typedef struct pk_parser {
    const uint8_t *data;
    size_t size, pos, op_pos;
    int op;
    relate_pk_pool *pool;
    relate_pk_value **stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t nmarks, marks_cap;
    relate_pk_value **memo;
    size_t memo_cap, memo_count;
    const relate_pk_global *allow;
    relate_error *err;
} pk_parser;

static relate_status fail(pk_parser *ps, relate_status code, const char *what)
{
    return relate_error_set(ps->err, code, "pickle: %s (opcode 0x%02x at offset %zu of %zu bytes)", what,
                            ps->op, ps->op_pos, ps->size);
}

static relate_status nomem(pk_parser *ps) { return fail(ps, RELATE_ERR_NOMEM, "out of memory"); }

static relate_status need(pk_parser *ps, size_t n)
{
    if (n > ps->size - ps->pos)
        return fail(ps, RELATE_ERR_FORMAT, "truncated: the opcode's argument runs past the end of the data");
    return RELATE_OK;
}

static uint64_t read_le(pk_parser *ps, int n)
{
    uint64_t v = 0;
    for (int k = 0; k < n; k++)
        v |= (uint64_t)ps->data[ps->pos + (size_t)k] << (8 * k);
    ps->pos += (size_t)n;
    return v;
}

static relate_status push(pk_parser *ps, relate_pk_value *v)
{
    if (!v)
        return nomem(ps);
    if (ps->sp == ps->stack_cap) {
        size_t cap = ps->stack_cap ? ps->stack_cap * 2 : 64;
        relate_pk_value **s = realloc(ps->stack, cap * sizeof *s);
        if (!s)
            return nomem(ps);
        ps->stack = s;
        ps->stack_cap = cap;
    }
    ps->stack[ps->sp++] = v;
    return RELATE_OK;
}

static relate_pk_value *pop(pk_parser *ps)
{
    size_t floor = ps->nmarks ? ps->marks[ps->nmarks - 1] : 0;
    if (ps->sp <= floor) {
        fail(ps, RELATE_ERR_FORMAT, "stack underflow");
        return NULL;
    }
    return ps->stack[--ps->sp];
}

static relate_pk_value *top(pk_parser *ps)
{
    size_t floor = ps->nmarks ? ps->marks[ps->nmarks - 1] : 0;
    if (ps->sp <= floor) {
        fail(ps, RELATE_ERR_FORMAT, "stack underflow");
        return NULL;
    }
    return ps->stack[ps->sp - 1];
}

/* Pops to the last MARK; the popped items are stack[*first .. sp_before). */
static relate_status pop_mark(pk_parser *ps, size_t *first)
{
    if (!ps->nmarks)
        return fail(ps, RELATE_ERR_FORMAT, "no MARK on the stack");
    *first = ps->marks[--ps->nmarks];
    return RELATE_OK;
}

/* The object a just-popped MARK sat on (the dict of SETITEMS, the list of APPENDS). */
static relate_pk_value *below_mark(pk_parser *ps, size_t first)
{
    size_t floor = ps->nmarks ? ps->marks[ps->nmarks - 1] : 0;
    if (first <= floor) {
        fail(ps, RELATE_ERR_FORMAT, "stack underflow");
        return NULL;
    }
    return ps->stack[first - 1];
}

static relate_status make_tuple(pk_parser *ps, relate_pk_value **items, size_t n, relate_pk_value **out)
{
    relate_pk_value *t = pool_node(ps->pool, RELATE_PK_TUPLE);
    if (!t)
        return nomem(ps);
    for (size_t k = 0; k < n; k++)
        if (node_push(t, items[k]))
            return nomem(ps);
    *out = t;
    return RELATE_OK;
}

static bool keys_equal(const relate_pk_value *a, const relate_pk_value *b)
{
    bool text_a = a->kind == RELATE_PK_STR || a->kind == RELATE_PK_BYTES;
    bool text_b = b->kind == RELATE_PK_STR || b->kind == RELATE_PK_BYTES;
    if (text_a || text_b)
        return a->kind == b->kind && a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
    if ((a->kind == RELATE_PK_INT || a->kind == RELATE_PK_BOOL) && (b->kind == RELATE_PK_INT || b->kind == RELATE_PK_BOOL))
        return a->i == b->i;
    return a->kind == RELATE_PK_NONE && b->kind == RELATE_PK_NONE;
}

static relate_status dict_set(pk_parser *ps, relate_pk_value *d, relate_pk_value *k, relate_pk_value *v)
{
    /* Python replaces the value of an equal key; tuples and other keys are kept apart here. */
    bool simple = k->kind == RELATE_PK_STR || k->kind == RELATE_PK_BYTES || k->kind == RELATE_PK_INT ||
                  k->kind == RELATE_PK_BOOL || k->kind == RELATE_PK_NONE;
    if (simple)
        for (int64_t q = 0; q < d->count; q++)
            if (keys_equal(d->items[2 * q], k)) {
                d->items[2 * q + 1] = v;
                return RELATE_OK;
            }
    if (node_reserve(d, 2 * d->count, 2))
        return nomem(ps);
    d->items[2 * d->count] = k;
    d->items[2 * d->count + 1] = v;
    d->count++;
    return RELATE_OK;
}

/* The object SETITEM(S) / APPEND(S) add to: a dict / list, or the entries of a CALL node. */
static relate_status target(pk_parser *ps, relate_pk_value *obj, relate_pk_kind want, relate_pk_value **out)
{
    if (obj->kind == want) {
        *out = obj;
        return RELATE_OK;
    }
    if (obj->kind == RELATE_PK_CALL) {
        relate_pk_value **slot = want == RELATE_PK_DICT ? &obj->dict_items : &obj->list_items;
        if (!*slot && !(*slot = pool_node(ps->pool, want)))
            return nomem(ps);
        *out = *slot;
        return RELATE_OK;
    }
    return fail(ps, RELATE_ERR_FORMAT, want == RELATE_PK_DICT ? "SETITEM(S) on something that is not a dict"
                                                               : "APPEND(S) on something that is not a list");
}

static relate_status memo_put(pk_parser *ps, uint64_t idx)
{
    relate_pk_value *v = top(ps);
    if (!v)
        return RELATE_ERR_FORMAT;
    /* Picklers number memo entries 0, 1, 2, ...; an index beyond the input length is hostile. */
    if (idx > ps->size)
        return fail(ps, RELATE_ERR_FORMAT, "memo index larger than the pickle itself");
    if (idx >= ps->memo_cap) {
        size_t cap = ps->memo_cap ? ps->memo_cap : 64;
        while (cap <= idx)
            cap *= 2;
        relate_pk_value **m = realloc(ps->memo, cap * sizeof *m);
        if (!m)
            return nomem(ps);
        memset(m + ps->memo_cap, 0, (cap - ps->memo_cap) * sizeof *m);
        ps->memo = m;
        ps->memo_cap = cap;
    }
    if (!ps->memo[idx])
        ps->memo_count++;
    ps->memo[idx] = v;
    return RELATE_OK;
}

static relate_status memo_get(pk_parser *ps, uint64_t idx)
{
    if (idx >= ps->memo_cap || !ps->memo[idx])
        return fail(ps, RELATE_ERR_FORMAT, "memo lookup of an index that was never stored");
    return push(ps, ps->memo[idx]);
}

static relate_status push_text(pk_parser *ps, relate_pk_kind kind, size_t len)
{
    relate_status s = need(ps, len);
    if (s)
        return s;
    relate_pk_value *v = pool_node(ps->pool, kind);
    if (!v)
        return nomem(ps);
    const char *src = (const char *)ps->data + ps->pos;
    v->len = len;
    if (kind == RELATE_PK_STR) {
        if (!(v->s = pool_strdup(ps->pool, src, len)))
            return nomem(ps);
    } else {
        v->s = src;
    }
    ps->pos += len;
    return push(ps, v);
}

static relate_status push_int(pk_parser *ps, relate_pk_kind kind, int64_t i)
{
    relate_pk_value *v = pool_node(ps->pool, kind);
    if (!v)
        return nomem(ps);
    v->i = i;
    return push(ps, v);
}

static relate_status push_global(pk_parser *ps, const char *module, size_t mlen, const char *name, size_t nlen)
{
    const relate_pk_global *g = ps->allow;
    for (; g && g->module; g++)
        if (strlen(g->module) == mlen && strlen(g->name) == nlen && memcmp(g->module, module, mlen) == 0 &&
            memcmp(g->name, name, nlen) == 0)
            break;
    if (!g || !g->module) {
        char allowed[256] = "";
        size_t used = 0;
        for (const relate_pk_global *a = ps->allow; a && a->module && used < sizeof allowed - 1; a++) {
            int w = snprintf(allowed + used, sizeof allowed - used, "%s%s.%s", used ? ", " : "", a->module, a->name);
            used = w < 0 ? used : used + (size_t)w;
        }
        return relate_error_set(ps->err, RELATE_ERR_FORMAT,
                                "pickle: refers to the global %.*s.%.*s (offset %zu), which relate never loads. "
                                "Nothing was executed; the file is not the expected data (allowed here: %s)",
                                (int)(mlen > 100 ? 100 : mlen), module, (int)(nlen > 100 ? 100 : nlen), name,
                                ps->op_pos, *allowed ? allowed : "none");
    }
    relate_pk_value *v = pool_node(ps->pool, RELATE_PK_GLOBAL);
    if (!v)
        return nomem(ps);
    v->s = g->module;
    v->name = g->name;
    return push(ps, v);
}

static relate_status read_line(pk_parser *ps, const char **line, size_t *len)
{
    const uint8_t *start = ps->data + ps->pos;
    size_t rest = ps->size - ps->pos;
    const uint8_t *nl = memchr(start, '\n', rest > 512 ? 512 : rest);
    if (!nl)
        return fail(ps, RELATE_ERR_FORMAT, "GLOBAL name without a newline within 512 bytes");
    *line = (const char *)start;
    *len = (size_t)(nl - start);
    ps->pos += *len + 1;
    return RELATE_OK;
}

static relate_status step(pk_parser *ps, bool *stop)
{
    relate_status s = RELATE_OK;
    relate_pk_value *a, *b, *c;
    size_t first = 0;
    ps->op_pos = ps->pos;
    ps->op = ps->data[ps->pos++];
    switch (ps->op) {
    case 0x80: /* PROTO */
        if ((s = need(ps, 1)))
            return s;
        if (ps->data[ps->pos] > 5)
            return fail(ps, RELATE_ERR_FORMAT, "protocol newer than 5");
        ps->pos++;
        return RELATE_OK;
    case 0x95: /* FRAME: framing is only a read-ahead hint */
        if ((s = need(ps, 8)))
            return s;
        if (read_le(ps, 8) > ps->size - ps->pos)
            return fail(ps, RELATE_ERR_FORMAT, "truncated: FRAME longer than the remaining data");
        return RELATE_OK;
    case '}': return push(ps, pool_node(ps->pool, RELATE_PK_DICT));
    case ']': return push(ps, pool_node(ps->pool, RELATE_PK_LIST));
    case ')': return push(ps, pool_node(ps->pool, RELATE_PK_TUPLE));
    case 'N': return push(ps, pool_node(ps->pool, RELATE_PK_NONE));
    case 0x88: return push_int(ps, RELATE_PK_BOOL, 1);
    case 0x89: return push_int(ps, RELATE_PK_BOOL, 0);
    case '(': /* MARK */
        if (ps->nmarks == ps->marks_cap) {
            size_t cap = ps->marks_cap ? ps->marks_cap * 2 : 16;
            size_t *m = realloc(ps->marks, cap * sizeof *m);
            if (!m)
                return nomem(ps);
            ps->marks = m;
            ps->marks_cap = cap;
        }
        ps->marks[ps->nmarks++] = ps->sp;
        return RELATE_OK;
    case 'J':
        if ((s = need(ps, 4)))
            return s;
        return push_int(ps, RELATE_PK_INT, (int32_t)(uint32_t)read_le(ps, 4));
    case 'K':
        if ((s = need(ps, 1)))
            return s;
        return push_int(ps, RELATE_PK_INT, (int64_t)read_le(ps, 1));
    case 'M':
        if ((s = need(ps, 2)))
            return s;
        return push_int(ps, RELATE_PK_INT, (int64_t)read_le(ps, 2));
    case 0x8a: { /* LONG1: n-byte little-endian two's complement */
        if ((s = need(ps, 1)))
            return s;
        int n = ps->data[ps->pos++];
        if (n > 8)
            return fail(ps, RELATE_ERR_FORMAT, "integer wider than 64 bits");
        if ((s = need(ps, (size_t)n)))
            return s;
        uint64_t u = read_le(ps, n);
        if (n > 0 && n < 8 && (u >> (8 * n - 1)) & 1)
            u |= ~(uint64_t)0 << (8 * n);
        return push_int(ps, RELATE_PK_INT, (int64_t)u);
    }
    case 'G': { /* BINFLOAT: big-endian IEEE double */
        if ((s = need(ps, 8)))
            return s;
        uint64_t u = 0;
        for (int k = 0; k < 8; k++)
            u = (u << 8) | ps->data[ps->pos++];
        relate_pk_value *v = pool_node(ps->pool, RELATE_PK_FLOAT);
        if (!v)
            return nomem(ps);
        memcpy(&v->f, &u, sizeof v->f);
        return push(ps, v);
    }
    case 'X': case 'B': case 'T': { /* BINUNICODE, BINBYTES, BINSTRING: 4-byte length */
        if ((s = need(ps, 4)))
            return s;
        uint64_t len = read_le(ps, 4);
        if (ps->op == 'T' && len > 0x7fffffffu)
            return fail(ps, RELATE_ERR_FORMAT, "negative BINSTRING length");
        return push_text(ps, ps->op == 'X' ? RELATE_PK_STR : RELATE_PK_BYTES, (size_t)len);
    }
    case 0x8c: case 'C': case 'U': /* SHORT_BINUNICODE, SHORT_BINBYTES, SHORT_BINSTRING */
        if ((s = need(ps, 1)))
            return s;
        return push_text(ps, ps->op == 0x8c ? RELATE_PK_STR : RELATE_PK_BYTES, ps->data[ps->pos++]);
    case 0x8d: case 0x8e: { /* BINUNICODE8, BINBYTES8 */
        if ((s = need(ps, 8)))
            return s;
        uint64_t len = read_le(ps, 8);
        if (len > ps->size - ps->pos)
            return fail(ps, RELATE_ERR_FORMAT, "truncated: the opcode's argument runs past the end of the data");
        return push_text(ps, ps->op == 0x8d ? RELATE_PK_STR : RELATE_PK_BYTES, (size_t)len);
    }
    case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
        size_t n = (size_t)(ps->op - 0x84);
        size_t floor = ps->nmarks ? ps->marks[ps->nmarks - 1] : 0;
        if (ps->sp - floor < n)
            return fail(ps, RELATE_ERR_FORMAT, "stack underflow");
        relate_pk_value *t;
        if ((s = make_tuple(ps, ps->stack + ps->sp - n, n, &t)))
            return s;
        ps->sp -= n;
        return push(ps, t);
    }
    case 't': { /* TUPLE */
        if ((s = pop_mark(ps, &first)))
            return s;
        relate_pk_value *t;
        /* `(t` on an empty pickle: the stack is still unallocated, and NULL + 0 is undefined. */
        relate_pk_value **items = ps->sp > first ? ps->stack + first : NULL;
        if ((s = make_tuple(ps, items, ps->sp - first, &t)))
            return s;
        ps->sp = first;
        return push(ps, t);
    }
    case 's': /* SETITEM */
        if (!(b = pop(ps)) || !(a = pop(ps)) || !(c = top(ps)))
            return RELATE_ERR_FORMAT;
        if ((s = target(ps, c, RELATE_PK_DICT, &c)))
            return s;
        return dict_set(ps, c, a, b);
    case 'u': /* SETITEMS */
        if ((s = pop_mark(ps, &first)))
            return s;
        if ((ps->sp - first) % 2)
            return fail(ps, RELATE_ERR_FORMAT, "SETITEMS with an odd number of items");
        if (!(c = below_mark(ps, first)))
            return RELATE_ERR_FORMAT;
        if ((s = target(ps, c, RELATE_PK_DICT, &c)))
            return s;
        for (size_t k = first; k < ps->sp; k += 2)
            if ((s = dict_set(ps, c, ps->stack[k], ps->stack[k + 1])))
                return s;
        ps->sp = first;
        return RELATE_OK;
    case 'a': /* APPEND */
        if (!(b = pop(ps)) || !(c = top(ps)))
            return RELATE_ERR_FORMAT;
        if ((s = target(ps, c, RELATE_PK_LIST, &c)))
            return s;
        return node_push(c, b) ? nomem(ps) : RELATE_OK;
    case 'e': /* APPENDS */
        if ((s = pop_mark(ps, &first)))
            return s;
        if (!(c = below_mark(ps, first)))
            return RELATE_ERR_FORMAT;
        if ((s = target(ps, c, RELATE_PK_LIST, &c)))
            return s;
        for (size_t k = first; k < ps->sp; k++)
            if (node_push(c, ps->stack[k]))
                return nomem(ps);
        ps->sp = first;
        return RELATE_OK;
    case 'q':
        if ((s = need(ps, 1)))
            return s;
        return memo_put(ps, read_le(ps, 1));
    case 'r':
        if ((s = need(ps, 4)))
            return s;
        return memo_put(ps, read_le(ps, 4));
    case 0x94: /* MEMOIZE */
        return memo_put(ps, ps->memo_count);
    case 'h':
        if ((s = need(ps, 1)))
            return s;
        return memo_get(ps, read_le(ps, 1));
    case 'j':
        if ((s = need(ps, 4)))
            return s;
        return memo_get(ps, read_le(ps, 4));
    case 'c': { /* GLOBAL "module\nname\n" */
        const char *m = NULL, *n = NULL;
        size_t ml = 0, nl = 0;
        if ((s = read_line(ps, &m, &ml)) || (s = read_line(ps, &n, &nl)))
            return s;
        return push_global(ps, m, ml, n, nl);
    }
    case 0x93: /* STACK_GLOBAL */
        if (!(b = pop(ps)) || !(a = pop(ps)))
            return RELATE_ERR_FORMAT;
        if (a->kind != RELATE_PK_STR || b->kind != RELATE_PK_STR)
            return fail(ps, RELATE_ERR_FORMAT, "STACK_GLOBAL without two str operands");
        return push_global(ps, a->s, a->len, b->s, b->len);
    case 'R': case 0x81: { /* REDUCE, NEWOBJ: recorded, never called */
        if (!(b = pop(ps)) || !(a = pop(ps)))
            return RELATE_ERR_FORMAT;
        if (b->kind != RELATE_PK_TUPLE)
            return fail(ps, RELATE_ERR_FORMAT, "call arguments that are not a tuple");
        if (a->kind != RELATE_PK_GLOBAL)
            return fail(ps, RELATE_ERR_FORMAT, "call of something that is not an allowed global");
        relate_pk_value *v = pool_node(ps->pool, RELATE_PK_CALL);
        if (!v)
            return nomem(ps);
        v->func = a;
        v->args = b;
        v->newobj = ps->op == 0x81;
        return push(ps, v);
    }
    case 'b': /* BUILD: obj.__setstate__(state), recorded on the object */
        if (!(b = pop(ps)) || !(a = top(ps)))
            return RELATE_ERR_FORMAT;
        if (a->kind != RELATE_PK_CALL)
            return fail(ps, RELATE_ERR_FORMAT, "BUILD on something that is not an object");
        if (a->state)
            return fail(ps, RELATE_ERR_FORMAT, "BUILD applied twice to one object");
        a->state = b;
        return RELATE_OK;
    case 'Q': { /* BINPERSID */
        if (!(a = pop(ps)))
            return RELATE_ERR_FORMAT;
        relate_pk_value *v = pool_node(ps->pool, RELATE_PK_PERSID);
        if (!v)
            return nomem(ps);
        v->pid = a;
        return push(ps, v);
    }
    case '0': /* POP */
        if (ps->nmarks && ps->marks[ps->nmarks - 1] == ps->sp) {
            ps->nmarks--; /* Python's POP of a MARK */
            return RELATE_OK;
        }
        return pop(ps) ? RELATE_OK : RELATE_ERR_FORMAT;
    case '1': /* POP_MARK */
        if ((s = pop_mark(ps, &first)))
            return s;
        ps->sp = first;
        return RELATE_OK;
    case '2': /* DUP */
        if (!(a = top(ps)))
            return RELATE_ERR_FORMAT;
        return push(ps, a);
    case '.': /* STOP */
        *stop = true;
        return RELATE_OK;
    default: {
        char what[96];
        snprintf(what, sizeof what, "unsupported opcode 0x%02x ('%c'); not a pickle relate reads", ps->op,
                 ps->op >= 32 && ps->op < 127 ? ps->op : '?');
        return fail(ps, RELATE_ERR_FORMAT, what);
    }
    }
}

relate_status relate_pickle_load(relate_pickle *pk, const uint8_t *data, size_t size,
                                 const relate_pk_global *allow, relate_error *err)
{
    memset(pk, 0, sizeof *pk);
    pk_parser ps = {.data = data, .size = size, .allow = allow, .err = err};
    ps.pool = calloc(1, sizeof *ps.pool);
    if (!ps.pool)
        return relate_error_set(err, RELATE_ERR_NOMEM, "pickle: out of memory");
    relate_status s = RELATE_OK;
    bool stop = false;
    while (!stop && s == RELATE_OK) {
        if (ps.pos >= size) {
            s = relate_error_set(err, RELATE_ERR_FORMAT,
                                 "pickle: truncated: %zu bytes end without the STOP opcode", size);
            break;
        }
        s = step(&ps, &stop);
    }
    if (s == RELATE_OK && ps.sp == 0)
        s = fail(&ps, RELATE_ERR_FORMAT, "STOP with an empty stack");
    if (s == RELATE_OK) {
        pk->root = ps.stack[ps.sp - 1];
        pk->end = ps.pos;
        pk->pool = ps.pool;
    } else {
        if (err && err->code == RELATE_OK) /* a path that returned a code without a message */
            relate_error_set(err, s, "pickle: malformed data at offset %zu", ps.op_pos);
        pool_free(ps.pool);
    }
    free(ps.stack);
    free(ps.marks);
    free(ps.memo);
    return s;
}

void relate_pickle_free(relate_pickle *pk)
{
    pool_free(pk->pool);
    memset(pk, 0, sizeof *pk);
}

/* ------------------------------------------------------------------ queries */
const relate_pk_value *relate_pk_dict_get(const relate_pk_value *dict, const char *key)
{
    if (dict && dict->kind == RELATE_PK_CALL)
        dict = dict->dict_items;
    if (!dict || dict->kind != RELATE_PK_DICT)
        return NULL;
    size_t len = strlen(key);
    for (int64_t q = 0; q < dict->count; q++) {
        const relate_pk_value *k = dict->items[2 * q];
        if ((k->kind == RELATE_PK_STR || k->kind == RELATE_PK_BYTES) && k->len == len && memcmp(k->s, key, len) == 0)
            return dict->items[2 * q + 1];
    }
    return NULL;
}

bool relate_pk_is_global(const relate_pk_value *v, const char *module, const char *name)
{
    return v && v->kind == RELATE_PK_GLOBAL && strcmp(v->s, module) == 0 && strcmp(v->name, name) == 0;
}

bool relate_pk_is_call_of(const relate_pk_value *v, const char *module, const char *name)
{
    return v && v->kind == RELATE_PK_CALL && relate_pk_is_global(v->func, module, name);
}

const char *relate_pk_kind_name(relate_pk_kind k)
{
    static const char *const names[] = {"None", "bool", "int", "float", "str", "bytes", "list",
                                        "tuple", "dict", "global", "object", "persistent id"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static bool is_text(const relate_pk_value *v)
{
    return v && (v->kind == RELATE_PK_STR || v->kind == RELATE_PK_BYTES);
}

relate_status relate_pk_as_ndarray(const relate_pk_value *v, relate_pk_ndarray *out, relate_error *err)
{
    memset(out, 0, sizeof *out);
    if (!relate_pk_is_call_of(v, "numpy.core.multiarray", "_reconstruct") || v->args->count < 1 ||
        !relate_pk_is_global(v->args->items[0], "numpy", "ndarray"))
        return relate_error_set(err, RELATE_ERR_FORMAT, "pickle: expected a numpy array, found a %s",
                                v ? relate_pk_kind_name(v->kind) : "missing value");
    const relate_pk_value *st = v->state;
    if (!st || st->kind != RELATE_PK_TUPLE || (st->count != 4 && st->count != 5))
        return relate_error_set(err, RELATE_ERR_FORMAT, "pickle: numpy array without its (shape, dtype, order, data) state");
    relate_pk_value *const *f = st->items + (st->count == 5); /* the optional version comes first */
    const relate_pk_value *shape = f[0], *dtype = f[1], *fort = f[2], *data = f[3];
    if (shape->kind != RELATE_PK_TUPLE || shape->count > RELATE_PK_MAX_DIMS)
        return relate_error_set(err, RELATE_ERR_FORMAT, "pickle: numpy array shape is not a tuple of at most %d ints",
                                RELATE_PK_MAX_DIMS);
    if (!relate_pk_is_call_of(dtype, "numpy", "dtype") || dtype->args->count < 1 || !is_text(dtype->args->items[0]))
        return relate_error_set(err, RELATE_ERR_FORMAT, "pickle: numpy array without a numpy.dtype");
    const relate_pk_value *code = dtype->args->items[0];
    char kind = code->len >= 2 ? code->s[0] : 0;
    int itemsize = code->len == 2 ? code->s[1] - '0' : 0;
    if (!strchr("uifb", kind) || !kind || (itemsize != 1 && itemsize != 2 && itemsize != 4 && itemsize != 8))
        return relate_error_set(err, RELATE_ERR_FORMAT, "pickle: numpy dtype '%.*s' is not a plain number type",
                                (int)(code->len > 16 ? 16 : code->len), code->s);
    out->kind = kind;
    out->itemsize = itemsize;
    out->byteorder = '|';
    const relate_pk_value *dst = dtype->state;
    if (dst && dst->kind == RELATE_PK_TUPLE && dst->count >= 2 && is_text(dst->items[1]) && dst->items[1]->len == 1)
        out->byteorder = dst->items[1]->s[0];
    if (fort->kind != RELATE_PK_BOOL && fort->kind != RELATE_PK_INT)
        return relate_error_set(err, RELATE_ERR_FORMAT, "pickle: numpy array order flag is not a bool");
    out->fortran_order = fort->i != 0;
    out->ndim = (int)shape->count;
    int64_t numel = 1;
    for (int d = 0; d < out->ndim; d++) {
        const relate_pk_value *n = shape->items[d];
        if (n->kind != RELATE_PK_INT || n->i < 0 || (n->i > 0 && numel > INT64_MAX / 8 / n->i))
            return relate_error_set(err, RELATE_ERR_FORMAT, "pickle: numpy array dimension %d is not a sane size", d);
        out->shape[d] = n->i;
        numel *= n->i;
    }
    out->numel = numel;
    if (data->kind != RELATE_PK_BYTES)
        return relate_error_set(err, RELATE_ERR_FORMAT, "pickle: numpy array data is a %s, not raw bytes",
                                relate_pk_kind_name(data->kind));
    if ((uint64_t)numel * (uint64_t)itemsize != data->len)
        return relate_error_set(err, RELATE_ERR_FORMAT,
                                "pickle: numpy array of %lld elements of %d bytes holds %zu bytes of data",
                                (long long)numel, itemsize, data->len);
    out->data = (const uint8_t *)data->s;
    out->nbytes = data->len;
    return RELATE_OK;
}
