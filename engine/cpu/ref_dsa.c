/*
 * ref_dsa.c - the reference DSA (lightning indexer) selection (ref_ops.h):
 * scores of every earlier position over the paged index-key cache and the
 * top-k of them, as a fixed-width, -1-padded, ascending selection.
 *
 * A query with no more than topk earlier tokens (itself included) selects all
 * of them without scoring: the top-k of pos + 1 <= topk scores is all of them
 * whatever the scores, and attention over 0..pos in order is what the dense
 * path computes, bit for bit.
 *
 * One task per token, or, with fewer tokens than threads (decoding), the keys
 * of each token scored in ranges on every thread and then its top-k: the same
 * scores either way, so the same selection.
 */
#include <math.h>

#include "cpu/ref_ops.h"
#include "cpu/ref_ws.h"

typedef struct {
    const glm_ref_dsa_params *p;
    float **scratch; /* [workers] -> [3, max_ctx]: scores, then glm_topk's scratch; with the keys
                        split (few tokens), token t's is scratch[t] */
    int chunk;       /* keys a scoring task (split keys) */
    int n_chunks;    /* scoring tasks a token (split keys) */
} dsa_ctx;

static size_t dsa_carve(const glm_ref_dsa_params *p, int n_workers, void *ws, size_t size, float **scratch)
{
    glm_ref_ws w = glm_ref_ws_begin(ws);
    /* only queries with more than topk earlier tokens score anything */
    size_t per = p->max_ctx > p->topk ? (size_t)3 * p->max_ctx : 1;
    for (int i = 0; i < n_workers; i++) {
        float *s = glm_ref_ws_take(&w, sizeof(float) * per);
        if (scratch)
            scratch[i] = s;
    }
    return glm_ref_ws_end(&w, size);
}

size_t glm_ref_dsa_workspace(const glm_ref_dsa_params *p, int n_workers)
{
    return dsa_carve(p, n_workers, NULL, 0, NULL);
}

/* Scores of token t's keys [k0, k1) into sc[k0, k1). */
static void score_keys(const glm_ref_dsa_params *p, int t, int k0, int k1, float *sc)
{
    const glm_ref_paging *pg = &p->pg;
    int ih = p->n_heads, id = p->head_dim, bs = pg->block_size;
    const float *q = p->q + (size_t)t * ih * id;
    const float *w = p->w + (size_t)t * ih;
    const int32_t *bt = pg->block_tables + (size_t)pg->seq_of[t] * pg->max_blocks;
    for (int kp = k0; kp < k1; kp++) {
        int64_t slot = (int64_t)bt[kp / bs] * bs + kp % bs;
        GLM_ASSERT(bt[kp / bs] >= 0 && slot < pg->n_slots);
        const float *k = p->cache + (size_t)slot * id;
        float acc = 0;
        int hh = 0;
        for (; hh + 4 <= ih; hh += 4) { /* four heads' dot products at once, summed in order */
            const float *qs[4] = {q + (size_t)hh * id, q + (size_t)(hh + 1) * id, q + (size_t)(hh + 2) * id,
                                  q + (size_t)(hh + 3) * id};
            float d4[4];
            glm_dot4(qs, k, id, d4);
            for (int i = 0; i < 4; i++) {
                float dd = d4[i] * p->scale;
                acc += w[hh + i] * (dd > 0 ? dd : 0);
            }
        }
        for (; hh < ih; hh++) {
            float dd = glm_dot(q + (size_t)hh * id, k, id) * p->scale;
            acc += w[hh] * (dd > 0 ? dd : 0);
        }
        sc[kp] = acc;
    }
}

/* Token t's selection from its scores sc [pos + 1] (scored unless pos + 1 <= topk). */
static void select_token(const glm_ref_dsa_params *p, int t, float *sc, int scored)
{
    int pos = p->pg.positions[t], K = p->topk;
    int32_t *sel = p->sel + (size_t)t * K;
    if (pos + 1 <= K) {
        for (int j = 0; j < K; j++)
            sel[j] = j <= pos ? j : -1;
        return;
    }
    if (!scored)
        score_keys(p, t, 0, pos + 1, sc);
    glm_topk(sc, pos + 1, K, sel, sc + pos + 1);
}

/* The selection of token t (one task per token). */
static void dsa_task(void *ctx, int t, int worker)
{
    const dsa_ctx *d = ctx;
    GLM_ASSERT(d->p->pg.positions[t] >= 0 && d->p->pg.positions[t] < d->p->max_ctx);
    select_token(d->p, t, d->scratch[worker], 0);
}

/* Split keys: scoring task i is token i / n_chunks, keys of chunk i % n_chunks. */
static void score_task(void *ctx, int i, int worker)
{
    (void)worker;
    const dsa_ctx *d = ctx;
    int t = i / d->n_chunks, k0 = (i % d->n_chunks) * d->chunk, n = d->p->pg.positions[t] + 1;
    if (n > d->p->topk && k0 < n)
        score_keys(d->p, t, k0, GLM_MIN(n, k0 + d->chunk), d->scratch[t]);
}

static void select_task(void *ctx, int t, int worker)
{
    (void)worker;
    const dsa_ctx *d = ctx;
    select_token(d->p, t, d->scratch[t], 1);
}

void glm_ref_dsa_select(glm_pool *pool, const glm_ref_dsa_params *p, void *ws, size_t ws_size)
{
    GLM_ASSERT(p->topk >= 1);
    int workers = glm_pool_size(pool);
    float *scratch[GLM_POOL_MAX_THREADS];
    dsa_carve(p, workers, ws, ws_size, scratch);
    dsa_ctx d = {p, scratch, 0, 0};
    if (p->n_tokens >= workers || p->max_ctx <= p->topk) {
        glm_pool_for(pool, p->n_tokens, dsa_task, &d);
        return;
    }
    /* fewer tokens than threads: every thread scores a range of each token's keys */
    int longest = 0;
    for (int t = 0; t < p->n_tokens; t++) {
        GLM_ASSERT(p->pg.positions[t] >= 0 && p->pg.positions[t] < p->max_ctx);
        longest = GLM_MAX(longest, p->pg.positions[t] + 1);
    }
    d.n_chunks = 2 * workers;
    d.chunk = GLM_MAX(64, (longest + d.n_chunks - 1) / d.n_chunks);
    glm_pool_for(pool, p->n_tokens * d.n_chunks, score_task, &d);
    glm_pool_for(pool, p->n_tokens, select_task, &d);
}
