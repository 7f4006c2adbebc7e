/* batch.c - builds the flat per-step batch (batch.h) from per-sequence parts. */
#include "backend/batch.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

static void grow32(int32_t **p, int *cap, int need)
{
    if (need > *cap) {
        *cap = GLM_MAX(need, 2 * *cap);
        *p = glm_realloc(*p, sizeof(int32_t) * (size_t)*cap);
    }
}

void glm_batch_reserve(glm_batch_buf *buf, int n_tokens, int n_seqs, int max_blocks)
{
    if (n_tokens > buf->cap_tok) {
        int cap = GLM_MAX(n_tokens, 2 * buf->cap_tok);
        buf->tok = glm_realloc(buf->tok, sizeof(int32_t) * (size_t)cap);
        buf->pos = glm_realloc(buf->pos, sizeof(int32_t) * (size_t)cap);
        buf->li = glm_realloc(buf->li, sizeof(int32_t) * (size_t)cap);
        buf->slot = glm_realloc(buf->slot, sizeof(int64_t) * (size_t)cap);
        buf->cap_tok = cap;
    }
    if (n_seqs + 1 > buf->cap_seq) {
        int cap = GLM_MAX(n_seqs + 1, 2 * buf->cap_seq);
        buf->cu = glm_realloc(buf->cu, sizeof(int32_t) * (size_t)cap);
        buf->ctx = glm_realloc(buf->ctx, sizeof(int32_t) * (size_t)cap);
        buf->cap_seq = cap;
    }
    grow32(&buf->bt, &buf->cap_bt, n_seqs * max_blocks);
}

void glm_batch_build(glm_batch_buf *buf, const glm_batch_seq *seqs, int n_seqs, int block_size)
{
    int n_tok = 0, max_blocks = 1;
    for (int i = 0; i < n_seqs; i++) {
        n_tok += seqs[i].n_new;
        max_blocks = GLM_MAX(max_blocks, seqs[i].n_blocks);
    }
    glm_batch_reserve(buf, n_tok, n_seqs, max_blocks);
    memset(buf->bt, 0, sizeof(int32_t) * (size_t)n_seqs * (size_t)max_blocks);

    int t = 0, nl = 0;
    for (int i = 0; i < n_seqs; i++) {
        const glm_batch_seq *q = &seqs[i];
        buf->cu[i] = t;
        buf->ctx[i] = q->start + q->n_new;
        memcpy(buf->bt + (size_t)i * max_blocks, q->blocks, sizeof(int32_t) * (size_t)q->n_blocks);
        for (int j = 0; j < q->n_new; j++, t++) {
            int p = q->start + j;
            buf->tok[t] = q->tokens[j];
            buf->pos[t] = p;
            buf->slot[t] = (int64_t)q->blocks[p / block_size] * block_size + p % block_size;
            if (q->logits == 2 || (q->logits == 1 && j == q->n_new - 1))
                buf->li[nl++] = t;
        }
    }
    buf->cu[n_seqs] = t;
    buf->b = (glm_batch){n_tok, n_seqs, buf->tok, buf->pos, buf->cu, buf->ctx, buf->bt, max_blocks,
                         buf->slot, buf->li, nl};
}

void glm_batch_buf_free(glm_batch_buf *buf)
{
    free(buf->tok);
    free(buf->pos);
    free(buf->cu);
    free(buf->ctx);
    free(buf->bt);
    free(buf->li);
    free(buf->slot);
    memset(buf, 0, sizeof *buf);
}

int glm_batch_validate(const glm_batch *b, const glm_batch_limits *lim, char *err, size_t errlen)
{
    if (b->n_tokens < 1 || b->n_seqs < 1 || b->n_seqs > b->n_tokens)
        return glm_err(err, errlen, "batch: %d tokens in %d sequences", b->n_tokens, b->n_seqs);
    if (b->n_tokens > lim->max_tokens || b->n_seqs > lim->max_seqs)
        return glm_err(err, errlen, "batch: %d tokens in %d sequences, the backend takes %d in %d at most",
                       b->n_tokens, b->n_seqs, lim->max_tokens, lim->max_seqs);
    if (b->max_blocks_per_seq < 1 || b->max_blocks_per_seq > lim->max_blocks_per_seq)
        return glm_err(err, errlen, "batch: block tables of %d blocks, at most %d", b->max_blocks_per_seq,
                       lim->max_blocks_per_seq);
    if (b->n_logits < 0 || b->n_logits > lim->max_logits)
        return glm_err(err, errlen, "batch: %d logits rows, the backend keeps %d at most", b->n_logits,
                       lim->max_logits);
    if (b->cu_seqlens_q[0] != 0 || b->cu_seqlens_q[b->n_seqs] != b->n_tokens)
        return glm_err(err, errlen, "batch: cu_seqlens_q must run from 0 to n_tokens");
    int bs = lim->block_size;
    int64_t slots = (int64_t)lim->num_blocks * bs;
    for (int s = 0; s < b->n_seqs; s++) {
        int q0 = b->cu_seqlens_q[s], q1 = b->cu_seqlens_q[s + 1], ctx = b->context_lens[s];
        if (q1 <= q0)
            return glm_err(err, errlen, "batch: sequence %d has no new tokens", s);
        if (ctx < q1 - q0 || ctx > lim->max_position)
            return glm_err(err, errlen, "batch: sequence %d: context length %d invalid", s, ctx);
        if ((ctx + bs - 1) / bs > b->max_blocks_per_seq)
            return glm_err(err, errlen, "batch: sequence %d: block table too short", s);
        for (int i = 0; i < (ctx + bs - 1) / bs; i++) {
            int32_t blk = b->block_tables[(size_t)s * b->max_blocks_per_seq + i];
            if (blk < 0 || blk >= lim->num_blocks)
                return glm_err(err, errlen, "batch: sequence %d: block id %d outside the cache", s, blk);
        }
        for (int t = q0; t < q1; t++) {
            if (b->positions[t] != ctx - (q1 - t))
                return glm_err(err, errlen, "batch: token %d: position %d, expected %d", t, b->positions[t],
                               ctx - (q1 - t));
            if (b->token_ids[t] < 0 || b->token_ids[t] >= lim->vocab_size)
                return glm_err(err, errlen, "token id %d is outside the vocabulary (0..%d)", b->token_ids[t],
                               lim->vocab_size - 1);
            /* the slot must be the one the block table gives this position */
            int p = b->positions[t];
            int64_t want = (int64_t)b->block_tables[(size_t)s * b->max_blocks_per_seq + p / bs] * bs + p % bs;
            if (b->slot_mapping[t] < 0 || b->slot_mapping[t] >= slots || b->slot_mapping[t] != want)
                return glm_err(err, errlen, "batch: token %d: slot %lld, its block table gives %lld", t,
                               (long long)b->slot_mapping[t], (long long)want);
        }
    }
    for (int i = 0; i < b->n_logits; i++)
        if (b->logits_index[i] < 0 || b->logits_index[i] >= b->n_tokens)
            return glm_err(err, errlen, "batch: logits row %d out of range", b->logits_index[i]);
    return GLM_OK;
}
