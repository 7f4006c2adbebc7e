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

#endif
