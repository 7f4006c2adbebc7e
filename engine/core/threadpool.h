/*
 * threadpool.h - a fixed pool of worker threads for data-parallel loops.
 *
 * glm_pool_for(pool, n, fn, ctx) calls fn(ctx, i, worker) for every i in
 * [0, n) spread over the workers and the calling thread, and returns when all
 * calls are done. Items are claimed one at a time from an atomic counter, so
 * callers choose n to be a count of reasonably sized chunks. `worker` is in
 * [0, glm_pool_size) and identifies per-thread scratch. One loop runs at a
 * time: the pool is driven by one thread (the engine thread or a rank's
 * worker), never re-entered from inside fn.
 */
#ifndef GLM_THREADPOOL_H
#define GLM_THREADPOOL_H

#include <stddef.h>

#define GLM_POOL_MAX_THREADS 1024

typedef struct glm_pool glm_pool;
typedef void (*glm_pool_fn)(void *ctx, int i, int worker);

/* n_threads <= 0 means one per online CPU; at most GLM_POOL_MAX_THREADS, and
 * fewer if the system refuses to start more. The calling thread counts as one. */
glm_pool *glm_pool_create(int n_threads);
void glm_pool_free(glm_pool *p);
int glm_pool_size(const glm_pool *p);
void glm_pool_for(glm_pool *p, int n, glm_pool_fn fn, void *ctx);

/* Scratch memory owned by the pool, one buffer per worker: worker's buffer
 * of at least `bytes` (64-byte aligned; contents not kept when it grows).
 * It allocates only when the buffer is smaller than asked, so a caller that
 * reserves the largest size it will need up front (glm_pool_reserve, from the
 * driving thread between loops) makes its loops allocation-free. */
void *glm_pool_scratch(glm_pool *p, int worker, size_t bytes);
void glm_pool_reserve(glm_pool *p, size_t bytes);

#endif
