/* suggest.c: the optimal-string-alignment edit distance and the nearest name. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "base/suggest.h"

enum { MAX_LEN = 64 };

/* Optimal string alignment distance (Damerau-Levenshtein without repeated edits of a substring),
 * case-insensitive; words longer than MAX_LEN count as far from everything. */
static int distance(const char *a, const char *b)
{
    const int n = (int)strlen(a), m = (int)strlen(b);
    if (n > MAX_LEN || m > MAX_LEN)
        return MAX_LEN;
    int d[MAX_LEN + 1][MAX_LEN + 1];
    for (int i = 0; i <= n; i++)
        d[i][0] = i;
    for (int j = 0; j <= m; j++)
        d[0][j] = j;
    for (int i = 1; i <= n; i++)
        for (int j = 1; j <= m; j++) {
            const int ai = tolower((unsigned char)a[i - 1]), bj = tolower((unsigned char)b[j - 1]);
            int best = d[i - 1][j - 1] + (ai != bj);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ai == tolower((unsigned char)b[j - 2]) && tolower((unsigned char)a[i - 2]) == bj &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

const char *relate_suggest(const char *word, const char *const *names)
{
    if (!word || !*word || !names)
        return NULL;
    const size_t len = strlen(word);
    const int limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;
    const char *best = NULL;
    int best_d = limit + 1;
    for (const char *const *n = names; *n; n++) {
        const int dd = distance(word, *n);
        if (dd < best_d) {
            best_d = dd;
            best = *n;
        }
    }
    return best;
}

const char *relate_suggest_text(char *buf, size_t size, const char *word, const char *const *names)
{
    const char *s = relate_suggest(word, names);
    if (s)
        snprintf(buf, size, " (did you mean '%s'?)", s);
    else if (size)
        buf[0] = 0;
    return buf;
}
