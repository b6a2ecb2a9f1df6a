/* arena.h: a bump allocator for everything one training step creates.
 * Not a general allocator: nothing is freed alone; relate_arena_reset releases a whole step.
 * After a reset the arena holds one block as large as the step's high-water mark, so a run that
 * repeats the same step never allocates again after its first step. */
#ifndef RELATE_BASE_ARENA_H
#define RELATE_BASE_ARENA_H

#include <stddef.h>

typedef struct relate_arena_block relate_arena_block;

typedef struct relate_arena {
    relate_arena_block *head; /* newest block; older ones follow */
    size_t used;              /* bytes handed out since the last reset */
    size_t high_water;        /* largest `used` ever seen */
    size_t reserved;          /* bytes held in blocks */
} relate_arena;

void relate_arena_init(relate_arena *a, size_t initial_bytes);
void relate_arena_free(relate_arena *a);
/* 64-byte aligned; NULL only when the system is out of memory. */
void *relate_arena_alloc(relate_arena *a, size_t bytes);
void *relate_arena_calloc(relate_arena *a, size_t bytes);
void relate_arena_reset(relate_arena *a);

#endif
