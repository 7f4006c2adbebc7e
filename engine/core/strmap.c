/* strmap.c - see strmap.h. */
#include "core/strmap.h"

#include <stdlib.h>

#include "core/util.h"

void glm_strmap_init(glm_strmap *m, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n + 2)
        cap *= 2;
    GLM_ASSERT(cap <= ((size_t)1 << 31));
    m->slot = glm_calloc(cap, sizeof *m->slot);
    m->mask = (uint32_t)(cap - 1);
    m->n = 0;
}

void glm_strmap_free(glm_strmap *m)
{
    free(m->slot);
    memset(m, 0, sizeof *m);
}

static void insert(glm_strmap *m, uint64_t h, uint32_t v)
{
    uint32_t i = (uint32_t)h & m->mask;
    while (m->slot[i])
        i = (i + 1) & m->mask;
    m->slot[i] = (h >> 32 << 32) | ((uint64_t)v + 1);
}

uint32_t glm_strmap_put(glm_strmap *m, const char *s, size_t n, uint32_t v, glm_strmap_key_fn key, const void *ctx)
{
    GLM_ASSERT(v < UINT32_MAX);
    int64_t old = glm_strmap_get(m, s, n, key, ctx);
    if (old >= 0)
        return (uint32_t)old;
    if (!m->slot)
        glm_strmap_init(m, 8);
    if (2 * ((size_t)m->n + 1) > (size_t)m->mask + 1) {
        glm_strmap big;
        glm_strmap_init(&big, 2 * ((size_t)m->n + 1));
        for (size_t i = 0; i <= m->mask; i++) {
            if (!m->slot[i])
                continue;
            uint32_t w = (uint32_t)m->slot[i] - 1;
            size_t kn;
            const char *k = key(ctx, w, &kn);
            insert(&big, glm_hash_bytes(k, kn), w);
        }
        big.n = m->n;
        free(m->slot);
        *m = big;
    }
    insert(m, glm_hash_bytes(s, n), v);
    m->n++;
    return v;
}
