/*
 * carve.h - one allocation split into parts by a table of (pointer, bytes):
 * the backends size their workspaces with it (base NULL: only the total) and
 * then carve the one allocation with the same table, so that the sizes and
 * the carving cannot disagree.
 */
#ifndef GLM_CARVE_H
#define GLM_CARVE_H

#include <stddef.h>

typedef struct {
    void **ptr;   /* where the part's address goes */
    size_t bytes;
} glm_part;

/* Lays parts [n] out from base, each starting at a multiple of align (a power
 * of two) from base; sets each *ptr unless base is NULL. Returns the bytes the
 * whole layout takes. */
static inline size_t glm_carve(const glm_part *parts, int n, char *base, size_t align)
{
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        if (base)
            *parts[i].ptr = base + off;
        off += (parts[i].bytes + align - 1) & ~(align - 1);
    }
    return off;
}

#endif
