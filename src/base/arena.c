/* arena.c: bump allocation in 64-byte-aligned blocks, coalesced on reset.
 * Not thread-safe: one arena belongs to one graph, used by one thread at a time. */
#include "base/arena.h"
#include "base/pages.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 64

struct relate_arena_block {
    relate_arena_block *next;
    size_t size, used;
    unsigned char *mem;
};

static size_t align_up(size_t n) { return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

static relate_arena_block *block_new(size_t size)
{
    relate_arena_block *b = malloc(sizeof *b);
    if (!b)
        return NULL;
    size_t bytes = size; /* large blocks land on huge pages: a step walks all of them */
    b->mem = relate_pages_alloc(&bytes);
    if (!b->mem) {
        free(b);
        return NULL;
    }
    b->size = bytes;
    b->used = 0;
    b->next = NULL;
    return b;
}

void relate_arena_init(relate_arena *a, size_t initial_bytes)
{
    memset(a, 0, sizeof *a);
    if (initial_bytes) {
        a->head = block_new(initial_bytes);
        if (a->head)
            a->reserved = a->head->size;
    }
}

static void free_blocks(relate_arena_block *b)
{
    while (b) {
        relate_arena_block *next = b->next;
        free(b->mem);
        free(b);
        b = next;
    }
}

void relate_arena_free(relate_arena *a)
{
    free_blocks(a->head);
    memset(a, 0, sizeof *a);
}

#ifdef RELATE_ARENA_MALLOC
/* Sanitizer builds: every allocation is its own malloc block, chained for the reset, so
 * AddressSanitizer sees an overflow from one tensor into the next. */
void *relate_arena_alloc(relate_arena *a, size_t bytes)
{
    size_t n = align_up(bytes ? bytes : 1);
    relate_arena_block *b = block_new(n);
    if (!b)
        return NULL;
    b->size = bytes ? bytes : 1;
    free(b->mem);
    b->mem = aligned_alloc(ARENA_ALIGN, n);
    if (!b->mem) {
        free(b);
        return NULL;
    }
    b->used = b->size;
    b->next = a->head;
    a->head = b;
    a->used += n;
    if (a->used > a->high_water)
        a->high_water = a->used;
    return b->mem;
}

void relate_arena_reset(relate_arena *a)
{
    free_blocks(a->head);
    a->head = NULL;
    a->reserved = 0;
    a->used = 0;
}
#else
void *relate_arena_alloc(relate_arena *a, size_t bytes)
{
    size_t n = align_up(bytes ? bytes : 1);
    if (!a->head || a->head->size - a->head->used < n) {
        /* Grow geometrically so a first step needs few blocks. */
        size_t want = n > a->reserved ? n : a->reserved;
        if (want < ((size_t)1 << 20))
            want = (size_t)1 << 20;
        relate_arena_block *b = block_new(want);
        if (!b)
            return NULL;
        b->next = a->head;
        a->head = b;
        a->reserved += b->size;
    }
    void *p = a->head->mem + a->head->used;
    a->head->used += n;
    a->used += n;
    if (a->used > a->high_water)
        a->high_water = a->used;
    return p;
}

void relate_arena_reset(relate_arena *a)
{
    if (a->head && a->head->next) {
        /* Several blocks: replace them with one that fits the high-water mark. */
        free_blocks(a->head);
        a->head = block_new(a->high_water);
        a->reserved = a->head ? a->head->size : 0;
    } else if (a->head) {
        a->head->used = 0;
    }
    a->used = 0;
}
#endif

void *relate_arena_calloc(relate_arena *a, size_t bytes)
{
    void *p = relate_arena_alloc(a, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}
