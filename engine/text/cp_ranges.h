/*
 * cp_ranges.h - sets of Unicode code points as sorted, disjoint, inclusive
 * ranges (the form of the generated tables: jinja_printable.c,
 * uniclass_table.c), and membership by binary search.
 */
#ifndef GLM_CP_RANGES_H
#define GLM_CP_RANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t lo, hi; /* inclusive */
} glm_cp_range;

/* 1 when c lies in one of the n ranges (sorted, disjoint). O(log n). */
static inline bool glm_cp_in_ranges(uint32_t c, const glm_cp_range *r, size_t n)
{
    size_t a = 0, b = n;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (c < r[m].lo)
            b = m;
        else if (c > r[m].hi)
            a = m + 1;
        else
            return true;
    }
    return false;
}

#endif
