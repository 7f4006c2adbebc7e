/*
 * scheduler.h - iteration-level scheduling of sequences over a paged KV cache.
 *
 * Each step mixes the running sequences' next tokens (one for a decoding
 * sequence, a chunk for one still prefilling) with newly admitted prompts,
 * within max_num_batched_tokens and max_num_seqs. Admission is first come,
 * first served, reusing cached prefix blocks. When a running sequence needs a
 * block and none is free, the most recently admitted running sequence is
 * preempted: its blocks are freed and it goes back to the front of the
 * waiting queue, to be recomputed (prompt and the tokens it has generated)
 * when it is admitted again. Nothing is lost, FCFS keeps anything from
 * starving, and the oldest running sequence can always grow (it can take
 * every block), so there is no deadlock; a sequence that alone outgrows the
 * whole cache is flagged for the engine to finish.
 *
 * A paused sequence (its owner's reader is behind: engine.h, backpressure)
 * takes no step and is not admitted, but keeps its place and its blocks; it
 * is the first victim of a preemption, whether a running sequence needs a
 * block or a waiting one needs blocks or a seat, so a stalled reader never
 * holds what a live one needs (and the oldest sequence that is not paused
 * can still take every block). Unpaused, it goes on (or is recomputed, if it
 * was preempted meanwhile) as any other.
 *
 * Plain host C: no model, no threads; the engine thread owns it.
 */
#ifndef GLM_SCHEDULER_H
#define GLM_SCHEDULER_H

#include <stdint.h>

#include "sched/block_manager.h"

typedef enum { GLM_SEQ_WAITING = 0, GLM_SEQ_RUNNING, GLM_SEQ_FINISHED } glm_seq_status;

typedef struct glm_sequence {
    uint64_t id;
    int32_t *tokens;        /* [cap_tokens]: prompt then generated tokens */
    int n_tokens, cap_tokens;
    int n_prompt;
    int n_computed;         /* leading tokens whose KV is in the cache */
    int n_cached;           /* prompt tokens the prefix cache supplied at the last admission */
    glm_block_table table;
    glm_seq_status status;
    int out_of_cache;       /* set by the scheduler: cannot grow even alone */
    int n_preempted;        /* times this sequence was preempted */
    int paused;             /* set by the owner: no step, no admission (see above) */
    void *owner;            /* the engine's request */
    int index;              /* sample index within its request (n > 1) */
    int prompt_logits;      /* set by the owner: the logits of every prompt position are wanted
                               (prompt logprobs), so admission takes nothing from the prefix
                               cache (a cached block has no logits) and each step's chunk of
                               the prompt fits max_prompt_rows */
    int n_draft;            /* speculative decoding: draft tokens proposed after the last one,
                               held at tokens[n_tokens, n_tokens + n_draft) (glm_seq_set_drafts);
                               only while decoding (n_computed == n_tokens - 1) */
} glm_sequence;

/* Creates a sequence holding a copy of the prompt, with room for max_new
 * more tokens. */
glm_sequence *glm_seq_create(uint64_t id, const int32_t *prompt, int n_prompt, int max_new);
/* Appends a generated token (room was reserved at creation; grows if not). */
void glm_seq_append(glm_sequence *s, int32_t tok);
/* Sets the draft tokens d [n] that follow the last token (speculative decoding: the next
 * step computes the last token and them, and keeps what the model agrees with). */
void glm_seq_set_drafts(glm_sequence *s, const int32_t *d, int n);
/* Frees the sequence (its blocks must have been released). */
void glm_seq_free(glm_sequence *s);

typedef struct {
    int max_num_seqs;            /* running sequences at most */
    int max_num_batched_tokens;  /* new tokens per step at most */
    int max_prompt_rows;         /* new tokens per step at most, all together, of sequences
                                    with prompt_logits still in their prompt (each such token
                                    is a logits row); 0: no limit */
} glm_sched_params;

typedef struct {
    glm_sequence **seqs;         /* [n] scheduled this step, running order */
    int *n_new;                  /* [n] tokens each computes this step (a decoding sequence: its
                                    last token and its n_draft drafts) */
    int n;
    int n_tokens;                /* sum of n_new */
    glm_sequence **full;         /* [n_full] running sequences that cannot grow even alone: */
    int n_full;                  /*   the caller must finish (or abort) them */
} glm_sched_batch;

typedef struct glm_scheduler glm_scheduler;

glm_scheduler *glm_sched_create(const glm_sched_params *p, glm_block_manager *bm);
void glm_sched_free(glm_scheduler *s);

/* Queues a sequence at the tail (new request) or the head (it belongs to an
 * admitted request, e.g. the other samples of n > 1). */
void glm_sched_add(glm_scheduler *s, glm_sequence *seq, int at_front);

/* Removes a waiting or running sequence (abort or finish) and releases its
 * blocks. It is not freed. */
void glm_sched_remove(glm_scheduler *s, glm_sequence *seq);

/* Plans one step into *out (valid until the next call). Returns out->n. */
int glm_sched_step(glm_scheduler *s, glm_sched_batch *out);

/* After the step's forward pass: advances n_computed and registers the
 * completed full blocks for prefix reuse. Drafts are not counted: their KV
 * stands only once the model has accepted them (the owner advances n_computed
 * over the accepted ones and registers with glm_bm_commit). */
void glm_sched_commit(glm_scheduler *s, const glm_sched_batch *b);

int glm_sched_num_waiting(const glm_scheduler *s);
int glm_sched_num_running(const glm_scheduler *s);
uint64_t glm_sched_num_preemptions(const glm_scheduler *s);
glm_block_manager *glm_sched_block_manager(glm_scheduler *s);

#endif
