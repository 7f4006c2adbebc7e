/*
 * backend.h - the interface between the scheduler and whatever computes the
 * model (the CPU implementation here, CUDA in cuda/). The scheduler never
 * knows which one it drives.
 */
#ifndef GLM_BACKEND_H
#define GLM_BACKEND_H

#include <stddef.h>

#include "model/batch.h"
#include "cpu/kvcache.h"
#include "model/model.h"
#include "core/threadpool.h"

typedef struct glm_backend glm_backend;

typedef struct {
    const char *name;
    /* Runs one step: writes the new tokens' cache entries and the logits of
     * the rows in batch->logits_index into logits [n_logits, vocab_size].
     * Returns GLM_OK, or GLM_ERR with a message for a malformed batch (a
     * token id outside the vocabulary, a slot outside the cache, ...). */
    int (*forward)(glm_backend *b, const glm_batch *batch, float *logits, char *err, size_t errlen);
    void (*destroy)(glm_backend *b);
} glm_backend_ops;

struct glm_backend {
    const glm_backend_ops *ops;
};

static inline int glm_backend_forward(glm_backend *b, const glm_batch *batch, float *logits, char *err,
                                      size_t errlen)
{
    return b->ops->forward(b, batch, logits, err, errlen);
}

static inline void glm_backend_destroy(glm_backend *b)
{
    if (b)
        b->ops->destroy(b);
}

/* The CPU backend over `model` and `kv`, computing on `pool` (all three
 * outlive it; the pool is free between forward calls for other work of the
 * same thread). */
glm_backend *glm_cpu_backend_create(const glm_model *model, glm_kv_cache *kv, glm_pool *pool);

#endif
