/*
 * ref_dsa.c - the reference DSA (lightning indexer) selection (ref_ops.h):
 * scores of every earlier position over the paged index-key cache and the
 * top-k of them, as a fixed-width, -1-padded, ascending selection.
 *
 * A query with no more than topk earlier tokens (itself included) selects all
 * of them without scoring: the top-k of pos + 1 <= topk scores is all of them
 * whatever the scores, and attention over 0..pos in order is what the dense
 * path computes, bit for bit.
 */
#include <math.h>

#include "cpu/ref_ops.h"
#include "cpu/ref_ws.h"

typedef struct {
    const glm_ref_dsa_params *p;
    float **scratch; /* [workers] -> [3, max_ctx]: scores, then glm_topk's scratch */
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

/* The selection of token t (one task per token). */
static void dsa_task(void *ctx, int t, int worker)
{
    const dsa_ctx *d = ctx;
    const glm_ref_dsa_params *p = d->p;
    const glm_ref_paging *pg = &p->pg;
    int pos = pg->positions[t];
    int K = p->topk;
    int32_t *sel = p->sel + (size_t)t * K;
    GLM_ASSERT(pos >= 0 && pos < p->max_ctx);
    if (pos + 1 <= K) {
        for (int j = 0; j < K; j++)
            sel[j] = j <= pos ? j : -1;
        return;
    }
    int ih = p->n_heads, id = p->head_dim, bs = pg->block_size;
    const float *q = p->q + (size_t)t * ih * id;
    const float *w = p->w + (size_t)t * ih;
    const int32_t *bt = pg->block_tables + (size_t)pg->seq_of[t] * pg->max_blocks;
    float *sc = d->scratch[worker];
    for (int kp = 0; kp <= pos; kp++) {
        int64_t slot = (int64_t)bt[kp / bs] * bs + kp % bs;
        GLM_ASSERT(bt[kp / bs] >= 0 && slot < pg->n_slots);
        const float *k = p->cache + (size_t)slot * id;
        float acc = 0;
        for (int hh = 0; hh < ih; hh++) {
            float dd = glm_dot(q + (size_t)hh * id, k, id) * p->scale;
            acc += w[hh] * (dd > 0 ? dd : 0);
        }
        sc[kp] = acc;
    }
    glm_topk(sc, pos + 1, K, sel, sc + pos + 1);
}

void glm_ref_dsa_select(glm_pool *pool, const glm_ref_dsa_params *p, void *ws, size_t ws_size)
{
    GLM_ASSERT(p->topk >= 1);
    int workers = glm_pool_size(pool);
    float *scratch[GLM_POOL_MAX_THREADS];
    dsa_carve(p, workers, ws, ws_size, scratch);
    dsa_ctx d = {p, scratch};
    glm_pool_for(pool, p->n_tokens, dsa_task, &d);
}
