/*
 * runner.h - a direct driver for the backend without the scheduler: holds a
 * model's KV cache and backend, and steps explicit sequences. The engine CLI
 * (`glm-server generate`), the parity tests and the engine benchmark use it;
 * the serving path goes through the scheduler instead.
 */
#ifndef GLM_RUNNER_H
#define GLM_RUNNER_H

#include <stddef.h>
#include <stdint.h>

#include "model/backend.h"
#include "cpu/kvcache.h"
#include "model/model.h"

typedef struct {
    int32_t *blocks; /* KV block ids, in position order */
    int n_blocks, cap_blocks;
    int len;         /* tokens already in the cache */
} glm_seq;

typedef struct {
    const glm_model *model;
    glm_kv_cache *kv;
    glm_backend *backend;
    glm_pool *pool;
    glm_batch_buf buf;
} glm_runner;

/* Cache of cache_tokens tokens in blocks of block_size; n_threads <= 0: all CPUs.
 * NULL with a message on failure. */
glm_runner *glm_runner_create(const glm_model *m, int cache_tokens, int block_size, int n_threads,
                              char *err, size_t errlen);
void glm_runner_free(glm_runner *r);

/* Releases a sequence's blocks and resets it to empty. */
void glm_seq_release(glm_runner *r, glm_seq *s);

/*
 * One forward step: appends n_new[i] tokens toks[i] to sequence seqs[i] for
 * i < n_seqs (all in one batch). Logits: if all_logits, one row per new token
 * in batch order; else one row per sequence (its last new token). logits must
 * hold that many rows of vocab_size floats. GLM_ERR if the cache is full or
 * the batch is invalid (nothing is appended then).
 */
int glm_runner_step(glm_runner *r, int n_seqs, glm_seq **seqs, const int32_t *const *toks,
                    const int *n_new, int all_logits, float *logits, char *err, size_t errlen);

/* Index of the largest value (the first one on ties); NaN never wins. */
int glm_argmax(const float *x, int n);

#endif
