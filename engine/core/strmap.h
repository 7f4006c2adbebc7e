/*
 * strmap.h - a hash index from byte strings to uint32 values whose strings
 * stay with the caller: the symbol tables of the grammar and template
 * parsers, the tokenizer's spelling -> id map.
 *
 * The map stores, per slot, a value and 32 bits of its key's hash; the key
 * itself is asked of the caller through a glm_strmap_key_fn when a slot's
 * hash bits match (and when the table grows). So a value is typically an
 * index into the caller's own array of entries, and a 154,880-entry
 * vocabulary costs 8 bytes a slot. Open addressing, linear probing, at most
 * half full; nothing is ever removed.
 *
 * A map is plain data: `glm_strmap m = {0}` is empty, glm_strmap_free
 * releases it. Lookups only read it, so a finished map is shared by threads.
 * Lookup is inline, so that a key function known at the call site inlines too.
 */
#ifndef GLM_CORE_STRMAP_H
#define GLM_CORE_STRMAP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/hash.h"

/* The key of value v: its bytes, length in *len. ctx is the caller's. */
typedef const char *(*glm_strmap_key_fn)(const void *ctx, uint32_t v, size_t *len);

typedef struct {
    uint64_t *slot; /* [mask + 1]: 0 empty, else (hash >> 32) << 32 | (value + 1) */
    uint32_t mask;
    uint32_t n;     /* values stored */
} glm_strmap;

/* Makes m an empty map with room for n values before it grows. */
void glm_strmap_init(glm_strmap *m, size_t n);

/* Frees the slots; m is {0} afterwards. */
void glm_strmap_free(glm_strmap *m);

/* The value whose key is s[0..n), or -1. */
static inline int64_t glm_strmap_get(const glm_strmap *m, const char *s, size_t n, glm_strmap_key_fn key,
                                     const void *ctx)
{
    if (!m->slot)
        return -1;
    uint64_t h = glm_hash_bytes(s, n);
    uint64_t tag = h >> 32 << 32;
    for (uint32_t i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
        uint64_t e = m->slot[i];
        if (!e)
            return -1;
        if ((e & 0xFFFFFFFF00000000ull) == tag) {
            uint32_t v = (uint32_t)e - 1;
            size_t kn;
            const char *k = key(ctx, v, &kn);
            if (kn == n && memcmp(k, s, n) == 0)
                return v;
        }
    }
}

/* Stores v (below UINT32_MAX) for the key s[0..n) unless the map has a value
 * for it already. Returns the value stored for the key: v when it was new,
 * else the earlier one (which stays). key is not asked for v itself. */
uint32_t glm_strmap_put(glm_strmap *m, const char *s, size_t n, uint32_t v, glm_strmap_key_fn key,
                        const void *ctx);

#endif
