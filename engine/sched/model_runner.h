/*
 * model_runner.h - the one driver of backends. Serving (the engine thread),
 * `glm-server generate`, the parity tests and the benchmarks all compute
 * through it.
 *
 * It creates the backend (by kind, sized from the serving limits), turns a
 * planned step (the scheduler's glm_sched_batch: sequences and how many new
 * tokens each computes) into the flat glm_batch, validates it once against
 * what the backend holds, and runs the backend; then it hands out the logits
 * rows a logits processor needs and samples. The KV blocks the backend
 * reports are what the block manager is sized from; the block manager is the
 * only owner of block ids.
 *
 * Logits rows of a step, in plan order: with all_logits, one per new token;
 * otherwise one per new token of a sequence with prompt_logits whose step
 * starts inside its prompt or with drafts (n_draft: its last token and the
 * drafts, each row verifying the next draft), and one per other sequence
 * whose step reaches its last token (n_computed + n_new == n_tokens: it gets
 * a next token).
 * glm_runner_rows says which plan entry each row belongs to.
 *
 * Owned by one thread (the engine thread, or the test/CLI driving it).
 */
#ifndef GLM_MODEL_RUNNER_H
#define GLM_MODEL_RUNNER_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "model/model.h"
#include "sched/block_manager.h"
#include "sched/scheduler.h"

typedef struct {
    glm_backend_kind backend;    /* default GLM_BACKEND_CPU */
    int block_size;              /* tokens per KV block (default 16) */
    size_t kv_cache_bytes;       /* KV memory (default 1 GiB); 0: what remains of mem_fraction of
                                    the memory after weights and workspace (backend.h) */
    double mem_fraction;         /* that share when kv_cache_bytes is 0 (default 0.9) */
    int kv_cache_tokens;         /* > 0: room for exactly this many tokens instead (in blocks;
                                    drivers that know their sequences: CLI, tests) */
    int max_num_batched_tokens;  /* new tokens per step at most (default 2048) */
    int max_num_seqs;            /* sequences per step at most (default 256) */
    int max_model_len;           /* tokens per sequence at most; 0: the model's context */
    int max_logits_rows;         /* logits rows per step at most; 0: max_num_seqs (one per
                                    sequence; drivers that want every position's logits set
                                    max_num_batched_tokens) */
    int n_threads;               /* host compute threads; <= 0: one per CPU */
    glm_compute_dtype dtype;     /* default GLM_COMPUTE_AUTO (backend.h) */
    int device;                  /* CUDA device ordinal (default 0) */
    int cuda_graphs;             /* CUDA: capture decode steps as graphs (default 1) */
    int tensor_parallel_size;    /* ranks sharing the model (default 1; backend.h) */
    int first_rank, n_local;     /* a world across nodes: this process's ranks (n_local 0: all) */
    const void *world_id;        /* and the world's id from node 0 (backend.h) */
    int draft_layers;            /* 1: the backend holds the MTP layer (glm_runner_draft); default 0 */
} glm_runner_params;

/* Fills the defaults above. */
void glm_runner_params_default(glm_runner_params *p);

typedef struct glm_runner glm_runner;

/* Stops a tensor-parallel backend from outside (backend.h: glm_tp_backend_stop). Any thread. */
void glm_runner_stop(glm_runner *r, const char *why);

/* A node without rank 0: glm_tp_backend_wait on its backend (1, 0 or -1). */
int glm_runner_wait_world(glm_runner *r, int timeout_ms, char *err, size_t errlen);

/* Creates the backend and the pool. NULL with a message (bad parameter, a
 * backend kind not built, memory). m outlives the runner. */
glm_runner *glm_runner_create(const glm_model *m, const glm_runner_params *p, char *err, size_t errlen);
void glm_runner_free(glm_runner *r);

/* What the backend holds (info->limits.num_blocks KV blocks of block_size). */
const glm_backend_info *glm_runner_info(const glm_runner *r);
/* max_model_len as resolved at create. */
int glm_runner_max_model_len(const glm_runner *r);
/* The host thread pool: the CPU backend computes on it; between steps the
 * engine runs logits processors on it. */
glm_pool *glm_runner_pool(glm_runner *r);

/*
 * Runs the forward pass of a planned step: sequence sb->seqs[i] computes
 * tokens[n_computed, n_computed + n_new[i]) over the blocks of its table,
 * which must already cover them (the scheduler grows tables). Nothing about
 * the sequences changes (the scheduler commits). Returns GLM_OK,
 * GLM_BAD_BATCH (the plan breaks a limit of the backend: a token outside the
 * vocabulary, too many tokens, a block outside the cache...) or
 * GLM_BACKEND_FAILURE, with a message.
 */
int glm_runner_forward(glm_runner *r, const glm_sched_batch *sb, int all_logits, char *err, size_t errlen);

/* Logits rows of the last forward: *n_rows rows; returns [n_rows] plan
 * indices (valid until the next forward). */
const int32_t *glm_runner_rows(const glm_runner *r, int *n_rows);

/* Host copies of logits rows [n] of the last forward into out [n, vocab]. */
int glm_runner_logits(glm_runner *r, const int32_t *rows, int n, float *out, char *err, size_t errlen);

/* Samples reqs [n] (rows of the last forward) into out [n]. */
int glm_runner_sample(glm_runner *r, const glm_sample_req *reqs, int n, glm_sampler_result *out, char *err,
                      size_t errlen);

/* Tests: record hidden states of the following forwards (see
 * glm_backend_ops.trace_hidden); GLM_ERR when the backend has no trace. */
int glm_runner_trace_hidden(glm_runner *r, float *out);

/*
 * For drivers without a scheduler (the generate CLI, tests, benchmarks): grows
 * each sequence's table through bm to cover n_new[i] more tokens (the tokens
 * are already in the sequence), runs the forward, and on success commits
 * (n_computed advances, full blocks are registered for prefix reuse). When
 * blocks run out or the forward fails nothing is committed (tables may keep
 * the blocks they grew) and GLM_ERR/GLM_BAD_BATCH/GLM_BACKEND_FAILURE is
 * returned with a message.
 */
int glm_runner_step_seqs(glm_runner *r, glm_block_manager *bm, glm_sequence **seqs, const int *n_new, int n,
                         int all_logits, char *err, size_t errlen);

/*
 * Speculative decoding's draft step (a runner created with draft_layers 1): entry i runs the
 * MTP layer (model.h: glm_mtp) for sequence seq over positions [pos, pos + n), row k taking
 * tokens[k] (the token at position pos + k + 1) and hidden state rows[k] of `from` (backend.h:
 * glm_draft_source: a row of the last forward, or of the last draft), its KV going to the MTP
 * layer's cache in seq's blocks, which must cover the positions. Logits rows as in
 * glm_runner_forward: with all_logits one per row, else one per entry with `logits` set, for
 * its last row; they replace the last forward's (glm_runner_rows, logits, sample, greedy).
 */
typedef struct {
    const glm_sequence *seq;
    int pos, n;
    const int32_t *tokens;       /* [n] */
    const int32_t *rows;         /* [n] */
    int logits;
} glm_draft_seq;
int glm_runner_draft(glm_runner *r, const glm_draft_seq *d, int n, glm_draft_source from, int all_logits, char *err,
                     size_t errlen);

/* Greedy next tokens of logits rows [n] of the last forward (the sampler at
 * temperature 0: lowest id on ties, NaN never wins) into ids [n]. */
int glm_runner_greedy(glm_runner *r, const int32_t *rows, int n, int32_t *ids, char *err, size_t errlen);

#endif
