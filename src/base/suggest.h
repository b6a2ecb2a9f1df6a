/* suggest.h: "did you mean": the nearest of a list of names to a mistyped one, for the messages
 * of unknown flags, methods, backbones, datasets and aggregations. */
#ifndef RELATE_BASE_SUGGEST_H
#define RELATE_BASE_SUGGEST_H

#include <stddef.h>

/* The entry of names (NULL-terminated) nearest to word in edit distance (insertions, deletions,
 * substitutions and swaps of neighbours, ignoring case), or NULL when none is near enough to be a
 * typo: at most 1 edit for words of up to 4 characters, 2 up to 8, 3 beyond. Ties go to the
 * earlier entry. */
const char *relate_suggest(const char *word, const char *const *names);

/* " (did you mean 'X'?)" for relate_suggest's answer, or "" (buf holds the text). */
const char *relate_suggest_text(char *buf, size_t size, const char *word, const char *const *names);

#endif
