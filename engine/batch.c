/* batch.c - builds the flat per-step batch (batch.h) from per-sequence parts. */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static void grow32(int32_t **p, int *cap, int need)
{
    if (need > *cap) {
        *cap = GLM_MAX(need, 2 * *cap);
        *p = glm_realloc(*p, sizeof(int32_t) * (size_t)*cap);
    }
}

void glm_batch_build(glm_batch_buf *buf, const glm_batch_seq *seqs, int n_seqs, int block_size)
{
    int n_tok = 0, max_blocks = 1;
    for (int i = 0; i < n_seqs; i++) {
        n_tok += seqs[i].n_new;
        max_blocks = GLM_MAX(max_blocks, seqs[i].n_blocks);
    }
    if (n_tok > buf->cap_tok) {
        int cap = GLM_MAX(n_tok, 2 * buf->cap_tok);
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
