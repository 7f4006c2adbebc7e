/*
 * ref_ws.h - internal to the ref_*.c files: carving a caller's workspace into
 * 64-byte aligned pieces. A sizing pass (base NULL) and the carving pass run
 * the same code, so the size a _workspace function reports is exactly what
 * the op takes.
 */
#ifndef GLM_REF_WS_H
#define GLM_REF_WS_H

#include <stddef.h>
#include <stdint.h>

#include "core/threadpool.h"
#include "core/util.h"

/* A loop over n items of about `work` floats each runs on the pool only when
 * there is enough of it: waking the workers costs more than normalising or
 * rotating a few decode rows. Each item is computed the same either way. */
#define GLM_REF_PARALLEL_MIN ((size_t)1 << 16)

static inline void glm_ref_for(glm_pool *pool, int n, size_t work, glm_pool_fn fn, void *ctx)
{
    glm_pool_for((size_t)n * work >= GLM_REF_PARALLEL_MIN ? pool : NULL, n, fn, ctx);
}

#define GLM_REF_WS_ALIGN 64

typedef struct {
    char *base; /* NULL: only count */
    size_t used;
} glm_ref_ws;

/* Starts a carve of ws (NULL to size); the first piece is aligned whatever ws is. */
static inline glm_ref_ws glm_ref_ws_begin(void *ws)
{
    glm_ref_ws w = {(char *)ws, 0};
    if (ws) {
        size_t mis = (uintptr_t)ws % GLM_REF_WS_ALIGN;
        w.used = mis ? GLM_REF_WS_ALIGN - mis : 0;
    } else {
        w.used = GLM_REF_WS_ALIGN - 1; /* room for the worst misalignment */
    }
    return w;
}

/* The next piece of n bytes (NULL while sizing). */
static inline void *glm_ref_ws_take(glm_ref_ws *w, size_t n)
{
    void *p = w->base ? w->base + w->used : NULL;
    w->used += (n + GLM_REF_WS_ALIGN - 1) / GLM_REF_WS_ALIGN * GLM_REF_WS_ALIGN;
    return p;
}

/* Bytes taken so far; when carving, asserts they fit in size. */
static inline size_t glm_ref_ws_end(const glm_ref_ws *w, size_t size)
{
    if (w->base)
        GLM_ASSERT(w->used <= size);
    return w->used;
}

#endif
