/* pages.h: large buffers on transparent huge pages.
 * A training step walks tensors of tens of megabytes. On 4 KiB pages each walk takes a TLB miss
 * every 4 KiB and, the first time, a page fault (about 11 µs on the VMs we measure on); on 2 MiB
 * pages both happen 512 times less often. Linux gives huge pages to regions that ask for them
 * with madvise(MADV_HUGEPAGE) when /sys/kernel/mm/transparent_hugepage/enabled is "madvise"
 * (Debian's default) or "always"; with "never", or elsewhere, these calls change nothing.
 * RELATE_HUGE_PAGES=0 in the environment turns the advice off, to measure what it buys. */
#ifndef RELATE_BASE_PAGES_H
#define RELATE_BASE_PAGES_H

#include <stddef.h>

/* Buffers smaller than this are left to malloc: huge pages would only round them up. */
#define RELATE_PAGES_HUGE_MIN ((size_t)4 << 20)

/* *bytes rounded up to the alignment the buffer gets (64 bytes, or 2 MiB for large buffers),
 * and the buffer advised for huge pages when large; release with free(). NULL when out of
 * memory. *bytes is updated to the usable size. */
void *relate_pages_alloc(size_t *bytes);

/* Asks for huge pages on the whole 2 MiB pages inside [p, p + bytes), for a buffer that came
 * from malloc or realloc and has not been written yet. Harmless on small buffers. */
void relate_pages_advise(void *p, size_t bytes);

#endif
