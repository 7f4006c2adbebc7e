/*
 * batch.h - the flat description of one forward step, built by the scheduler
 * (or the generate CLI) and consumed by every backend unchanged.
 *
 * The new tokens of all sequences lie back to back; sequence s owns rows
 * [cu_seqlens_q[s], cu_seqlens_q[s+1]). Its tokens occupy the positions
 * context_lens[s] - n_new .. context_lens[s] - 1, i.e. the new tokens are
 * always the tail of the sequence's context. Prefill chunks and single
 * decode tokens mix freely.
 */
#ifndef GLM_BATCH_H
#define GLM_BATCH_H

#include <stddef.h>
#include <stdint.h>


typedef struct {
    int n_tokens;                  /* new tokens in this step, all sequences */
    int n_seqs;
    const int32_t *token_ids;      /* [n_tokens] */
    const int32_t *positions;      /* [n_tokens] position of each token in its sequence */
    const int32_t *cu_seqlens_q;   /* [n_seqs + 1] row where each sequence starts; [n_seqs] = n_tokens */
    const int32_t *context_lens;   /* [n_seqs] tokens already cached + new ones */
    const int32_t *block_tables;   /* [n_seqs, max_blocks_per_seq] KV block ids, row-major */
    int max_blocks_per_seq;
    const int64_t *slot_mapping;   /* [n_tokens] cache slot (block * block_size + offset) of each new token */
    const int32_t *logits_index;   /* [n_logits] batch rows whose logits are wanted */
    int n_logits;
} glm_batch;

/* One sequence's part of a step, as glm_batch_build takes it. */
typedef struct {
    const int32_t *tokens;   /* [n_new] the new tokens */
    int start;               /* position of the first: tokens already in the cache */
    int n_new;
    const int32_t *blocks;   /* [n_blocks] KV blocks covering start + n_new tokens */
    int n_blocks;
    int logits;              /* 0: none, 1: of the last new token, 2: of every new token */
} glm_batch_seq;

/* A glm_batch with the arrays behind it, reused (grown) from step to step. */
typedef struct {
    glm_batch b;
    int32_t *tok, *pos, *cu, *ctx, *bt, *li;
    int64_t *slot;
    int cap_tok, cap_seq, cap_bt;
} glm_batch_buf;

/* Fills buf->b for the given sequences (in order), with slots derived from
 * each sequence's blocks of block_size tokens. Logits rows come in sequence
 * order. */
void glm_batch_build(glm_batch_buf *buf, const glm_batch_seq *seqs, int n_seqs, int block_size);
/* Grows the arrays to hold a step of n_tokens tokens in n_seqs sequences with
 * tables of max_blocks blocks, so that building such steps allocates nothing. */
void glm_batch_reserve(glm_batch_buf *buf, int n_tokens, int n_seqs, int max_blocks);
void glm_batch_buf_free(glm_batch_buf *buf);

/* What a batch may hold: the limits a backend was created with. */
typedef struct {
    int vocab_size;
    int max_position;            /* positions < max_position (the model's context) */
    int num_blocks, block_size;  /* the KV blocks the backend holds */
    int max_tokens, max_seqs;    /* n_tokens, n_seqs at most */
    int max_blocks_per_seq;
    int max_logits;              /* n_logits at most */
} glm_batch_limits;

/* Checks a batch against the limits: shapes, ranges, positions consistent
 * with context lengths, block ids and slots inside the cache. The model
 * runner calls it once per step, before any backend sees the batch. GLM_OK or
 * GLM_ERR with a message. */
int glm_batch_validate(const glm_batch *b, const glm_batch_limits *lim, char *err, size_t errlen);

#endif
