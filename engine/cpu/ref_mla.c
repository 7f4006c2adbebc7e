/*
 * ref_mla.c - the reference MLA ops (ref_ops.h): query absorption through
 * kv_b's key half, attention in latent space over the paged latent cache, and
 * the value expansion through kv_b's value half.
 *
 * Why latent space: the cache holds one [kv_lora | rope] row per token, not
 * per-head keys and values. Absorbing W_uk into the query (q_lat = W_uk^T
 * q_nope) makes a key's score one dot product with its cached row, and the
 * softmax-weighted sum of cached latents expanded once by W_uv equals the sum
 * of the expanded per-head values. This is the computation of transformers'
 * expanded attention up to float rounding (tests/backend checks it against
 * the expanded form in double).
 */
#include <math.h>
#include <string.h>

#include "cpu/ref_ops.h"
#include "cpu/ref_ws.h"

static inline int64_t page_slot(const glm_ref_paging *pg, int t, int pos)
{
    int seq = pg->seq_of[t];
    int32_t blk = pg->block_tables[(size_t)seq * pg->max_blocks + pos / pg->block_size];
    int64_t slot = (int64_t)blk * pg->block_size + pos % pg->block_size;
    GLM_ASSERT(blk >= 0 && slot < pg->n_slots);
    return slot;
}

/* ---- absorption -------------------------------------------------------------- */

typedef struct {
    const glm_ref_mla_absorb_params *p;
    float **scratch; /* [workers] -> [2, nope, kv_lora] */
} absorb_ctx;

static size_t absorb_carve(const glm_ref_mla_absorb_params *p, int n_workers, void *ws, size_t size,
                           float **scratch)
{
    glm_ref_ws w = glm_ref_ws_begin(ws);
    for (int i = 0; i < n_workers; i++) {
        float *s = glm_ref_ws_take(&w, sizeof(float) * 2 * (size_t)p->nope * p->kv_lora);
        if (scratch)
            scratch[i] = s;
    }
    return glm_ref_ws_end(&w, size);
}

size_t glm_ref_mla_absorb_workspace(const glm_ref_mla_absorb_params *p, int n_workers)
{
    return absorb_carve(p, n_workers, NULL, 0, NULL);
}

/* q_lat[t, h, :R] = W_uk[h]^T q_nope[t, h] for every token, and q_pe copied; one task per head. */
static void absorb_task(void *ctx, int h, int worker)
{
    const absorb_ctx *a = ctx;
    const glm_ref_mla_absorb_params *p = a->p;
    int nope = p->nope, R = p->kv_lora, rope = p->rope, heads = p->n_heads;
    int qd = nope + rope, ld = R + rope;
    float *w = a->scratch[worker]; /* [nope, R] then transposed [R, nope] */
    float *wt = w + (size_t)nope * R;
    glm_weight_rows_f32(p->kv_b, h * (nope + p->v_dim), nope, w);
    for (int d = 0; d < nope; d++)
        for (int r = 0; r < R; r++)
            wt[(size_t)r * nope + d] = w[(size_t)d * R + r];
    for (int t = 0; t < p->n_tokens; t++) {
        const float *qn = p->q + ((size_t)t * heads + h) * qd;
        float *out = p->q_lat + ((size_t)t * heads + h) * ld;
        for (int r = 0; r < R; r++)
            out[r] = glm_dot(wt + (size_t)r * nope, qn, nope);
        memcpy(out + R, qn + nope, sizeof(float) * (size_t)rope);
    }
}

void glm_ref_mla_absorb(glm_pool *pool, const glm_ref_mla_absorb_params *p, void *ws, size_t ws_size)
{
    GLM_ASSERT(p->kv_b->cols == p->kv_lora && p->kv_b->rows >= p->n_heads * (p->nope + p->v_dim));
    int workers = glm_pool_size(pool);
    float *scratch[GLM_POOL_MAX_THREADS];
    absorb_carve(p, workers, ws, ws_size, scratch);
    absorb_ctx a = {p, scratch};
    glm_pool_for(pool, p->n_heads, absorb_task, &a);
}

/* ---- attention ----------------------------------------------------------------- */

typedef struct {
    const glm_ref_mla_attn_params *p;
    float **scores;      /* [workers] -> [max keys] */
    const float ***keys; /* [workers] -> [max keys]: the selected keys' cache rows */
} attn_ctx;

static int attn_max_keys(const glm_ref_mla_attn_params *p)
{
    return p->sel ? GLM_MIN(p->sel_width, p->max_ctx) : p->max_ctx;
}

static size_t attn_carve(const glm_ref_mla_attn_params *p, int n_workers, void *ws, size_t size,
                         float **scores, const float ***keys)
{
    glm_ref_ws w = glm_ref_ws_begin(ws);
    size_t n = (size_t)GLM_MAX(attn_max_keys(p), 1);
    for (int i = 0; i < n_workers; i++) {
        float *s = glm_ref_ws_take(&w, sizeof(float) * n);
        const float **k = glm_ref_ws_take(&w, sizeof(const float *) * n);
        if (scores) {
            scores[i] = s;
            keys[i] = k;
        }
    }
    return glm_ref_ws_end(&w, size);
}

size_t glm_ref_mla_attn_workspace(const glm_ref_mla_attn_params *p, int n_workers)
{
    return attn_carve(p, n_workers, NULL, 0, NULL, NULL);
}

typedef float v8f __attribute__((vector_size(32)));

/* o[r0 .. r0 + 8 NV) = sum_j p[j] * kv[j][r], the keys in order, each term a product then a sum
 * (what o[r] += p[j] * kv[j][r] computes), the NV accumulators held in registers. */
static inline __attribute__((always_inline)) void
weighted_sum8(const float *const *kv, const float *pj, int nk, int r0, int NV, float *o)
{
    v8f acc[8] = {{0}};
    for (int j = 0; j < nk; j++) {
        v8f pv = {pj[j], pj[j], pj[j], pj[j], pj[j], pj[j], pj[j], pj[j]};
        for (int i = 0; i < NV; i++) {
            v8f k;
            memcpy(&k, kv[j] + r0 + 8 * i, sizeof k);
            acc[i] = acc[i] + pv * k;
        }
    }
    memcpy(o + r0, acc, sizeof(v8f) * (size_t)NV);
}

/* Attention of one (token, head) over its keys, in ascending position. */
static void attn_task(void *ctx, int i, int worker)
{
    const attn_ctx *a = ctx;
    const glm_ref_mla_attn_params *p = a->p;
    int heads = p->n_heads;
    int t = i / heads, h = i % heads;
    int pos = p->pg.positions[t];
    int R = p->kv_lora, ld = R + p->rope;
    GLM_ASSERT(pos >= 0 && pos < p->max_ctx);
    const float *ql = p->q_lat + ((size_t)t * heads + h) * ld;
    const int32_t *sel = p->sel ? p->sel + (size_t)t * p->sel_width : NULL;
    int n_sel = sel ? p->sel_width : pos + 1;
    float *scores = a->scores[worker];
    const float **keys = a->keys[worker];
    float *o = p->o_lat + ((size_t)t * heads + h) * R;

    float mx = -INFINITY;
    int nk = 0, prev = -1, ng = 0;
    const float *group[4]; /* keys whose scores are computed together (glm_dot4) */
    for (int j = 0; j <= n_sel; j++) {
        int kp = j < n_sel ? (sel ? sel[j] : j) : -1;
        if (kp >= 0) {
            GLM_ASSERT(kp > prev && kp <= pos); /* ascending, causal */
            prev = kp;
            keys[nk + ng] = p->cache + (size_t)page_slot(&p->pg, t, kp) * ld;
            group[ng] = keys[nk + ng];
            ng++;
        }
        if (ng == 4 || (j == n_sel && ng > 0)) {
            float d[4];
            if (ng == 4)
                glm_dot4(group, ql, ld, d);
            else
                for (int g = 0; g < ng; g++)
                    d[g] = glm_dot(ql, group[g], ld);
            for (int g = 0; g < ng; g++) {
                float sc = d[g] * p->scale;
                scores[nk++] = sc;
                if (sc > mx)
                    mx = sc;
            }
            ng = 0;
        }
    }
    memset(o, 0, sizeof(float) * (size_t)R);
    if (nk == 0)
        return;
    float sum = 0;
    for (int j = 0; j < nk; j++) {
        scores[j] = expf(scores[j] - mx);
        sum += scores[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < nk; j++)
        scores[j] *= inv;
    /* o = sum_j p_j kv_j, 64 columns at a time over all keys */
    int r0 = 0;
    for (; r0 + 64 <= R; r0 += 64)
        weighted_sum8(keys, scores, nk, r0, 8, o);
    for (; r0 + 8 <= R; r0 += 8)
        weighted_sum8(keys, scores, nk, r0, 1, o);
    for (; r0 < R; r0++)
        for (int j = 0; j < nk; j++)
            o[r0] += scores[j] * keys[j][r0];
}

void glm_ref_mla_attn(glm_pool *pool, const glm_ref_mla_attn_params *p, void *ws, size_t ws_size)
{
    int workers = glm_pool_size(pool);
    float *scores[GLM_POOL_MAX_THREADS];
    const float **keys[GLM_POOL_MAX_THREADS];
    attn_carve(p, workers, ws, ws_size, scores, keys);
    attn_ctx a = {p, scores, keys};
    glm_pool_for(pool, p->n_tokens * p->n_heads, attn_task, &a);
}

/* ---- value expansion ------------------------------------------------------------ */

static size_t expand_carve(const glm_ref_mla_expand_params *p, void *ws, size_t size,
                           glm_matmul_job **jobs)
{
    glm_ref_ws w = glm_ref_ws_begin(ws);
    glm_matmul_job *j = glm_ref_ws_take(&w, sizeof(glm_matmul_job) * (size_t)p->n_heads);
    if (jobs)
        *jobs = j;
    return glm_ref_ws_end(&w, size);
}

size_t glm_ref_mla_expand_workspace(const glm_ref_mla_expand_params *p, int n_workers)
{
    return expand_carve(p, NULL, 0, NULL);
}

void glm_ref_mla_expand(glm_pool *pool, const glm_ref_mla_expand_params *p, void *ws, size_t ws_size)
{
    int heads = p->n_heads, R = p->kv_lora, V = p->v_dim, nope = p->nope;
    GLM_ASSERT(p->kv_b->cols == R && p->kv_b->rows >= heads * (nope + V));
    glm_matmul_job *jobs;
    expand_carve(p, ws, ws_size, &jobs);
    for (int h = 0; h < heads; h++)
        jobs[h] = (glm_matmul_job){p->kv_b, h * (nope + V) + nope, V, p->o_lat + (size_t)h * R, heads * R,
                                   NULL, p->n_tokens, p->out + (size_t)h * V, heads * V, 0};
    glm_matmul_jobs(pool, jobs, heads);
}
