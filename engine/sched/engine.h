/*
 * engine.h - the serving engine: one thread that owns every sequence, the
 * scheduler, the KV cache and the backend, and runs continuous batching.
 *
 * Requests come in through glm_engine_submit (any thread) and their results
 * leave through a per-request channel of events (new token, finish, error)
 * that the submitting thread reads with glm_request_next, optionally woken by
 * a notify callback (the HTTP layer's connection thread waits in poll() on
 * an eventfd that the callback writes). glm_request_abort may be called at any time from any thread:
 * the engine drops the request's sequences and frees their blocks before its
 * next step. Nothing inside the engine thread takes a lock while computing.
 *
 * Backpressure: a request's undelivered events are bounded. When its reader
 * falls behind (max_unread_events per sample unread), its sequences stop
 * being scheduled: they keep their KV blocks but take no step, and are the
 * first to be preempted when another sequence needs blocks or a seat. They
 * are scheduled again once the reader has drained to half the bound; a
 * request held back for reader_timeout seconds is aborted with an error and
 * its blocks are freed. The engine owns this clock; the caller only reads.
 */
#ifndef GLM_ENGINE_H
#define GLM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "backend/backend.h"
#include "backend/sampler.h"

typedef struct glm_engine glm_engine;
typedef struct glm_request glm_request;

typedef struct {
    int max_num_seqs;            /* running sequences at most (default 256) */
    int max_num_batched_tokens;  /* tokens per forward step at most (default 2048) */
    int max_model_len;           /* prompt + output tokens at most; 0: the model's context */
    int max_queue;               /* waiting requests at most before refusing (default 1024) */
    int block_size;              /* tokens per KV block (default 16) */
    size_t kv_cache_bytes;       /* KV cache memory (default 1 GiB); 0: what remains of
                                    mem_fraction of the memory after weights and workspace */
    double mem_fraction;         /* for kv_cache_bytes 0, in (0, 1] (default 0.9) */
    int enable_prefix_caching;   /* default 1 */
    int n_threads;               /* compute threads; <= 0: one per CPU */
    glm_backend_kind backend;    /* default GLM_BACKEND_CPU */
    glm_compute_dtype dtype;     /* default GLM_COMPUTE_AUTO (backend.h) */
    int device;                  /* CUDA device ordinal (default 0) */
    int cuda_graphs;             /* CUDA: capture decode steps as graphs (default 1) */
    int tensor_parallel_size;    /* ranks sharing the model (default 1) */
    int first_rank, n_local;     /* a world across nodes: this process's ranks (n_local 0: all) */
    const void *world_id;        /* and the world's id from node 0 (backend.h) */
    int max_unread_events;       /* undelivered events per sample at most before its request
                                    stops being scheduled; it resumes at half (default 256);
                                    0: unbounded */
    double reader_timeout;       /* seconds a request may stay held back by its reader before
                                    it is aborted (default 60; the server passes
                                    --stream-write-timeout); <= 0: never */
    int num_speculative_tokens;  /* speculative decoding with the checkpoint's MTP layer: drafts
                                    per sequence and step, 0 (default, off) ..
                                    GLM_ENGINE_MAX_SPEC_TOKENS (see below) */
} glm_engine_params;

/*
 * Speculative decoding (num_speculative_tokens k > 0). After each step the MTP layer runs over
 * the positions the step computed (its own KV cache follows the sequence's blocks) and, for a
 * sequence about to decode, proposes k tokens (greedy; k > 1 chains the layer through itself).
 * The next step computes the last token and the drafts together, as a short prefill chunk, and
 * verifies the drafts in order with the rejection rule (sampler.h: glm_sampler_verify; logits
 * processors and penalties see each accepted draft before the next row): the accepted drafts
 * and one more token (the correction, or a bonus token when all were accepted) are emitted, as
 * if decoded one by one. Greedy requests give exactly the tokens plain decoding gives (the CPU
 * backend's logits do not depend on how a sequence's tokens are batched), sampled ones the same
 * distribution. Drafts never make the scheduler preempt: without blocks or budget they are cut.
 */
#define GLM_ENGINE_MAX_SPEC_TOKENS 8

/* Fills the defaults above. */
void glm_engine_params_default(glm_engine_params *p);

typedef enum {
    GLM_EV_TOKEN = 0,  /* a new token of sample `index` */
    GLM_EV_FINISH,     /* sample `index` is done; usage fields set */
    GLM_EV_ERROR,      /* the request failed; message set; a GLM_FINISH_ABORT finish
                          event follows for each sample still running */
    GLM_EV_PROMPT_TOKEN /* with prompt_logprobs: the next prompt token (positions 1 ..
                          n_prompt - 1, in order, before any GLM_EV_TOKEN; index 0), its
                          raw logprob given the tokens before it, and the top tokens there */
} glm_event_type;

typedef enum {
    GLM_FINISH_STOP = 0, /* eos or a stop token id */
    GLM_FINISH_LENGTH,   /* max_tokens, max_model_len, or the cache is full */
    GLM_FINISH_ABORT     /* aborted */
} glm_finish_reason;

typedef struct {
    glm_event_type type;
    int index;                   /* sample index, 0 .. n-1 */
    /* GLM_EV_TOKEN, GLM_EV_PROMPT_TOKEN */
    int32_t token;
    float logprob;               /* when logprobs (prompt_logprobs) were requested */
    int n_top;
    int32_t top_ids[GLM_SAMPLING_MAX_TOP_LOGPROBS];
    float top_logprobs[GLM_SAMPLING_MAX_TOP_LOGPROBS];
    int rank;                    /* GLM_EV_PROMPT_TOKEN: 1 + the tokens more likely than it */
    /* GLM_EV_FINISH */
    glm_finish_reason finish;
    int32_t stop_token;          /* the eos/stop id that ended the sample, or -1 */
    int prompt_tokens;           /* the request's prompt length */
    int completion_tokens;       /* tokens this sample generated */
    int cached_tokens;           /* prompt tokens served by the prefix cache */
    /* timings, seconds (GLM_EV_FINISH): measured by the engine thread */
    double queue_time;           /* submission -> first scheduled */
    double ttft;                 /* submission -> first token of this sample */
    double prefill_time;         /* first scheduled -> first token */
    double decode_time;          /* first token -> finish */
    double e2e_time;             /* submission -> finish */
    /* GLM_EV_ERROR */
    const char *message;         /* the request's error (stored once per request), valid until
                                    glm_request_release; NULL in other events */
    int invalid_request;         /* 1: caused by what the request asked for (its constraint), a 400 */
} glm_event;

/* Creates the engine and starts its thread. Reports "N tokens of KV cache"
 * through glm_engine_kv_tokens. NULL with a message if the cache cannot be
 * allocated or a parameter is out of range. model must outlive the engine. */
glm_engine *glm_engine_create(const glm_model *m, const glm_engine_params *p, char *err, size_t errlen);
/* Stops the thread and frees everything. Requests still running or queued
 * end with a GLM_FINISH_ABORT finish event per sample; their handles stay
 * readable and must still be released (abort/release are then no-ops on the
 * engine). Do not call it concurrently with glm_request_abort. */
void glm_engine_free(glm_engine *e);

size_t glm_engine_kv_tokens(const glm_engine *e);
int glm_engine_max_model_len(const glm_engine *e);

typedef enum {
    GLM_SUBMIT_OK = 0,
    GLM_SUBMIT_INVALID,          /* bad prompt or parameters: a 400 */
    GLM_SUBMIT_TOO_LONG,         /* prompt does not fit max_model_len or the cache: a 400 */
    GLM_SUBMIT_OVERLOADED        /* waiting queue full: a 503 (as vLLM's admission control) */
} glm_submit_status;

/*
 * Queues a request. The engine copies the prompt and parameters. Returns a
 * handle (release it with glm_request_release) or NULL with *status and a
 * message in err. Thread-safe.
 */
glm_request *glm_engine_submit(glm_engine *e, const int32_t *prompt, int n_prompt,
                               const glm_sampling_params *sp, glm_submit_status *status, char *err,
                               size_t errlen);

/*
 * Takes the next event. timeout_ms < 0 waits forever, 0 polls. Returns 1 with
 * *ev filled, 0 on timeout, -1 when the request is over and every event has
 * been read. Thread-safe for one reader. Reading is what lets a request held
 * back by backpressure go on (see above).
 */
int glm_request_next(glm_request *r, glm_event *ev, int timeout_ms);

/*
 * Events not yet taken by glm_request_next, and in *bytes (may be NULL) the
 * memory the request's queue holds. The queue keeps 16 bytes an event, 8 more
 * per top logprob, 64 per finish event, in rings that double when full; with
 * max_unread_events M and n samples it holds at most (M + 2) * n + 1 events
 * (the step that reaches the bound adds a token and a finish per sample, an
 * error may follow). Any thread.
 */
int glm_request_pending(glm_request *r, size_t *bytes);

/* Called by the engine thread (without locks held) whenever events are
 * added; must be quick and must not call back into the engine (in particular
 * not glm_request_set_notify or glm_request_release: they wait for running
 * callbacks and would wait for themselves). When
 * glm_request_set_notify (or glm_request_release) returns, no call of the
 * previous callback is still running, so its context may be freed. */
void glm_request_set_notify(glm_request *r, void (*fn)(void *ctx), void *ctx);

/* Asks the engine to stop the request; its blocks are freed before the
 * next step, and a GLM_FINISH_ABORT finish event follows for each sample
 * still running. Idempotent, any thread. */
void glm_request_abort(glm_request *r);

/* Drops the caller's handle (aborting the request if it is still running);
 * the notify callback is detached first (see glm_request_set_notify). */
void glm_request_release(glm_request *r);

typedef struct {
    int num_running, num_waiting;         /* sequences */
    int num_paused;                       /* of those, held back by their reader (backpressure) */
    int kv_blocks_used, kv_blocks_total;
    uint64_t num_preemptions;
    uint64_t prefix_query_tokens, prefix_hit_tokens;
    uint64_t prompt_tokens, generation_tokens;
    uint64_t finished[3];                 /* by glm_finish_reason */
    uint64_t steps;
    /* speculative decoding (vLLM's spec_decode_* counters) */
    int num_speculative_tokens;           /* k, 0 when off */
    uint64_t spec_drafts;                 /* verifications of a sequence's drafts */
    uint64_t spec_draft_tokens;           /* draft tokens verified */
    uint64_t spec_accepted_tokens;        /* of them, accepted */
    uint64_t spec_accepted_per_pos[GLM_ENGINE_MAX_SPEC_TOKENS]; /* accepted, by draft position */
} glm_engine_metrics;

/* A consistent snapshot, any thread. */
void glm_engine_metrics_get(glm_engine *e, glm_engine_metrics *m);

/* 1 once the backend can run no more steps (a tensor-parallel rank failed: GLM_BACKEND_DEAD),
 * with the reason in why; every request then running has failed with it, and submissions are
 * refused (GLM_SUBMIT_OVERLOADED, "the engine stopped: ..."). The server stops. Any thread. */
int glm_engine_dead(glm_engine *e, char *why, size_t whylen);

/* A node of a multi-node world without rank 0 serves no requests: its ranks follow rank 0's
 * steps. This waits up to timeout_ms (< 0: for ever) for the world's end: 1 when rank 0 stopped
 * it, -1 when it failed (the reason in why), 0 when the time ran out. */
int glm_engine_wait_world(glm_engine *e, int timeout_ms, char *why, size_t whylen);

/* Stops the engine for good from outside (a node of the world dropped out): a tensor-parallel
 * backend's ranks are stopped (backend.h: glm_tp_backend_stop), the step in flight fails, and
 * the engine is dead with `why`, as above. Any thread. */
void glm_engine_stop_backend(glm_engine *e, const char *why);

#endif
