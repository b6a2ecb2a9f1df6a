/* pages.c: large buffers on transparent huge pages (see pages.h for why). */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include "base/pages.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SMALL_ALIGN ((size_t)64)
#define HUGE_PAGE ((size_t)2 << 20)

static int advice_wanted(void)
{
    static int wanted = -1; /* read once: the environment does not change during a run */
    if (wanted < 0) {
        const char *v = getenv("RELATE_HUGE_PAGES");
        wanted = !(v && strcmp(v, "0") == 0);
    }
    return wanted;
}

void relate_pages_advise(void *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    if (!p || bytes < RELATE_PAGES_HUGE_MIN || !advice_wanted())
        return;
    uintptr_t lo = ((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
    uintptr_t hi = ((uintptr_t)p + bytes) & ~(uintptr_t)(HUGE_PAGE - 1);
    /* Advice only: a kernel without THP answers EINVAL and the buffer keeps 4 KiB pages. */
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
#endif
}

void *relate_pages_alloc(size_t *bytes)
{
    size_t n = *bytes ? *bytes : 1;
    size_t align = n >= RELATE_PAGES_HUGE_MIN ? HUGE_PAGE : SMALL_ALIGN;
    if (n > SIZE_MAX - align)
        return NULL;
    n = (n + align - 1) & ~(align - 1);
    void *p = aligned_alloc(align, n);
    if (p && align == HUGE_PAGE)
        relate_pages_advise(p, n);
    if (p)
        *bytes = n;
    return p;
}
