/*
 * cpu_backend.c - the GLM-5 (glm_moe_dsa) forward pass on the CPU, in float32,
 * over the paged latent cache. This is the reference every other backend is
 * checked against.
 *
 * One step, for the flat batch of new tokens (batch.h):
 *   x = embed(tokens)
 *   per layer:
 *     h = rmsnorm(x)
 *     MLA:  q_resid = rmsnorm(q_a(h)); q = q_b(q_resid) -> per head [nope | rope]
 *           kv = kv_a(h) -> latent = rmsnorm(kv[:kv_lora]), k_pe = rope(kv[kv_lora:])
 *           (latent | k_pe) of every new token goes to its cache slot first.
 *           Attention runs in latent space: q_nope is absorbed into the
 *           latent through kv_b's key half (q_lat = W_uk^T q_nope), scores are
 *           (q_lat . latent + q_pe . k_pe) * scale over the keys the indexer
 *           chose, the weighted sum of latents is expanded by kv_b's value half.
 *     DSA:  indexer q = rope(wq_b(q_resid)), k = rope(layernorm(wk(h))) (cached),
 *           w = weights_proj(h) / sqrt(index_heads); score(t) =
 *           sum_h w_h relu(q_h . k_t / sqrt(index_dim)); each query keeps the
 *           index_topk best earlier tokens (all of them while it has fewer);
 *           "shared" layers reuse the previous layer's choice.
 *     x += o_proj(attention)
 *     h = rmsnorm(x); x += dense SwiGLU(h) or MoE(h)
 *   logits = lm_head(rmsnorm(x)) for the rows asked for.
 *
 * Memory: the backend owns its KV cache (kvcache.h) and one workspace arena,
 * carved at create by a table of sizes for the largest step its parameters
 * allow (max_num_batched_tokens, max context, max_logits_rows): forward,
 * logits and sample allocate nothing.
 *
 * Parallelism: matmuls over weight-row chunks, attention over (token, head),
 * the indexer over tokens, all on one thread pool. Results never depend on the
 * batch composition (see ops.h), and attention and MoE sums run in a fixed
 * order (ascending key position, ascending expert id).
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "cpu/kvcache.h"
#include "cpu/ops.h"
#include "core/util.h"

/* The workspace and per-step state shared by the parallel tasks. Buffers are
 * sized for T = max_num_batched_tokens rows (or as stated). */
typedef struct {
    struct cpu_backend *be;
    const glm_batch *b;
    const glm_layer *layer;
    int li;                   /* layer index */
    int n;                    /* tokens of this step */
    int32_t *seq_of;          /* [T] sequence of each token */
    float *rope_cos, *rope_sin; /* [T, rope/2] */
    float *x, *h;             /* [T, H] */
    float *q_resid;           /* [T, q_lora] */
    float *q;                 /* [T, heads * qk_head] */
    float *kv_a;              /* [T, kv_lora + rope] */
    float *q_lat;             /* [T, heads, kv_lora + rope]: absorbed nope part | roped q_pe */
    float *o_lat;             /* [T, heads, kv_lora] */
    float *attn;              /* [T, heads * v] */
    float *tmp_h;             /* [T, H] */
    /* indexer */
    float *iq;                /* [T, index_heads * index_dim] */
    float *ik;                /* [T, index_dim] */
    float *iw;                /* [T, index_heads] */
    int32_t *topk;            /* [T, index_topk] chosen positions, ascending */
    int32_t *topk_n;          /* [T] count; -1 = every earlier position */
    /* FFN */
    float *ffn_g, *ffn_u;     /* [T, max(intermediate, moe_intermediate * n_shared)] */
    float *shared;            /* [T, H] shared expert output */
    float *router;            /* [T, E] router logits */
    int32_t *exp_ids;         /* [T, K] chosen experts, ascending */
    float *exp_w;             /* [T, K] their weights */
    int32_t *exp_first;       /* [E + 1] first row of each expert */
    int32_t *exp_fill;        /* [E] */
    int32_t *exp_tok;         /* [T * K] token of each expert row */
    int32_t *exp_row;         /* [T * K] assignment (t, k) -> expert row */
    float *exp_g, *exp_u;     /* [T * K, moe_intermediate] */
    float *exp_y;             /* [T * K, H] */
    glm_matmul_job *jobs;     /* [max(2E, heads)] */
    /* logits */
    float *final_h;           /* [max_logits_rows, H] */
    float *logits;            /* [max_logits_rows, vocab] of the last forward */
    int n_logits;             /* rows held */
    /* per-worker scratch */
    float **wscratch;         /* [workers] -> attention scores, top-k scratch, kv_b rows */
    void **sampler_ws;        /* [workers] -> glm_sampler_workspace_size(vocab) bytes */
    float *trace;             /* [L + 1, n, H] hidden states, or NULL */
} step;

typedef struct cpu_backend {
    glm_backend base;
    const glm_model *m;
    const glm_config *c;
    glm_kv_cache *kv;
    glm_pool *pool;
    step s;                   /* the workspace */
    void *arena;              /* the one allocation behind it */
    size_t sampler_ws_size;
} cpu_backend;

static inline int64_t slot_of(const step *s, int seq, int pos)
{
    const glm_batch *b = s->b;
    int bs = s->be->kv->block_size;
    int32_t blk = b->block_tables[(size_t)seq * b->max_blocks_per_seq + pos / bs];
    return (int64_t)blk * bs + pos % bs;
}

/* ---- attention ------------------------------------------------------------ */

/* q_lat[t, h, :kv_lora] = W_uk[h]^T q_nope[t, h] for every token; one task per head. */
static void absorb_task(void *ctx, int h, int worker)
{
    step *s = ctx;
    const glm_config *c = s->be->c;
    int nope = c->qk_nope_head_dim, R = c->kv_lora_rank, qd = c->qk_head_dim;
    int ld = R + c->qk_rope_head_dim;
    float *w = s->wscratch[worker];          /* [nope, R] then transposed [R, nope] */
    float *wt = w + (size_t)nope * R;
    glm_weight_rows_f32(&s->layer->kv_b, h * (nope + c->v_head_dim), nope, w);
    for (int d = 0; d < nope; d++)
        for (int r = 0; r < R; r++)
            wt[(size_t)r * nope + d] = w[(size_t)d * R + r];
    for (int t = 0; t < s->n; t++) {
        const float *qn = s->q + (size_t)t * c->num_attention_heads * qd + (size_t)h * qd;
        float *out = s->q_lat + ((size_t)t * c->num_attention_heads + h) * ld;
        for (int r = 0; r < R; r++)
            out[r] = glm_dot(wt + (size_t)r * nope, qn, nope);
    }
}

/* Attention of one (token, head) over the chosen earlier positions. */
static void attn_task(void *ctx, int i, int worker)
{
    step *s = ctx;
    const glm_config *c = s->be->c;
    int heads = c->num_attention_heads;
    int t = i / heads, h = i % heads;
    int seq = s->seq_of[t];
    int pos = s->b->positions[t];
    int R = c->kv_lora_rank, ld = R + c->qk_rope_head_dim;
    const float *ql = s->q_lat + ((size_t)t * heads + h) * ld;
    const float *cache = s->be->kv->latent[s->li];
    float *scores = s->wscratch[worker];
    int nk = s->topk_n[t] < 0 ? pos + 1 : s->topk_n[t];
    const int32_t *sel = s->topk + (size_t)t * c->index_topk;

    float mx = -INFINITY;
    for (int j = 0; j < nk; j++) {
        int p = s->topk_n[t] < 0 ? j : sel[j];
        const float *kv = cache + (size_t)slot_of(s, seq, p) * ld;
        float sc = glm_dot(ql, kv, ld) * c->attn_scale;
        scores[j] = sc;
        if (sc > mx)
            mx = sc;
    }
    float sum = 0;
    for (int j = 0; j < nk; j++) {
        scores[j] = expf(scores[j] - mx);
        sum += scores[j];
    }
    float inv = 1.0f / sum;
    float *o = s->o_lat + ((size_t)t * heads + h) * R;
    memset(o, 0, sizeof(float) * (size_t)R);
    for (int j = 0; j < nk; j++) {
        int p = s->topk_n[t] < 0 ? j : sel[j];
        const float *kv = cache + (size_t)slot_of(s, seq, p) * ld;
        float pj = scores[j] * inv;
        for (int r = 0; r < R; r++)
            o[r] += pj * kv[r];
    }
}

/* ---- DSA indexer ---------------------------------------------------------- */

static int int_cmp(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Chooses the top-k earlier positions of token t (one task per token). */
static void index_task(void *ctx, int t, int worker)
{
    step *s = ctx;
    const glm_config *c = s->be->c;
    int pos = s->b->positions[t];
    int K = c->index_topk;
    if (pos + 1 <= K) {
        s->topk_n[t] = -1;
        return;
    }
    int ih = c->index_n_heads, id = c->index_head_dim, seq = s->seq_of[t];
    const float *q = s->iq + (size_t)t * ih * id;
    const float *w = s->iw + (size_t)t * ih;
    const float *cache = s->be->kv->index_k[s->li];
    float scale = 1.0f / sqrtf((float)id);
    float *sc = s->wscratch[worker];
    for (int p = 0; p <= pos; p++) {
        const float *k = cache + (size_t)slot_of(s, seq, p) * id;
        float acc = 0;
        for (int hh = 0; hh < ih; hh++) {
            float d = glm_dot(q + (size_t)hh * id, k, id) * scale;
            acc += w[hh] * (d > 0 ? d : 0);
        }
        sc[p] = acc;
    }
    glm_topk(sc, pos + 1, K, s->topk + (size_t)t * K, sc + pos + 1);
    s->topk_n[t] = K;
}

typedef void (*rope_fn)(float *x, const float *cos_, const float *sin_, int dim);

static void run_indexer(step *s)
{
    const glm_config *c = s->be->c;
    const glm_layer *L = s->layer;
    glm_pool *pool = s->be->pool;
    int n = s->n, ih = c->index_n_heads, id = c->index_head_dim, rope = c->qk_rope_head_dim;
    glm_matmul_job jobs[3] = {
        {&L->idx_wq_b, 0, ih * id, s->q_resid, c->q_lora_rank, NULL, n, s->iq, ih * id, 0},
        {&L->idx_wk, 0, id, s->h, c->hidden_size, NULL, n, s->ik, id, 0},
        {&L->idx_weights_proj, 0, ih, s->h, c->hidden_size, NULL, n, s->iw, ih, 0},
    };
    glm_matmul_jobs(pool, jobs, 3);
    float wscale = 1.0f / sqrtf((float)ih);
    rope_fn rope_apply = c->indexer_rope_interleave ? glm_rope_interleaved : glm_rope_neox;
    float *icache = s->be->kv->index_k[s->li];
    for (int t = 0; t < n; t++) {
        const float *cs = s->rope_cos + (size_t)t * rope / 2, *sn = s->rope_sin + (size_t)t * rope / 2;
        for (int hh = 0; hh < ih; hh++)
            rope_apply(s->iq + ((size_t)t * ih + hh) * id, cs, sn, rope);
        float *k = s->ik + (size_t)t * id;
        glm_layernorm(k, k, L->idx_k_norm_w, L->idx_k_norm_b, id, 1e-6f);
        rope_apply(k, cs, sn, rope);
        memcpy(icache + (size_t)s->b->slot_mapping[t] * id, k, sizeof(float) * (size_t)id);
        for (int hh = 0; hh < ih; hh++)
            s->iw[(size_t)t * ih + hh] *= wscale;
    }
    glm_pool_for(pool, n, index_task, s);
}

static void attention(step *s)
{
    const glm_config *c = s->be->c;
    const glm_layer *L = s->layer;
    glm_pool *pool = s->be->pool;
    int n = s->n, H = c->hidden_size, heads = c->num_attention_heads;
    int R = c->kv_lora_rank, rope = c->qk_rope_head_dim, nope = c->qk_nope_head_dim, qd = c->qk_head_dim;
    int ld = R + rope, V = c->v_head_dim;

    /* q_a and kv_a read the same input: one parallel loop */
    float *qa = s->q_resid;
    glm_matmul_job j1[2] = {
        {&L->q_a, 0, c->q_lora_rank, s->h, H, NULL, n, qa, c->q_lora_rank, 0},
        {&L->kv_a, 0, ld, s->h, H, NULL, n, s->kv_a, ld, 0},
    };
    glm_matmul_jobs(pool, j1, 2);
    for (int t = 0; t < n; t++)
        glm_rmsnorm(qa + (size_t)t * c->q_lora_rank, qa + (size_t)t * c->q_lora_rank, L->q_a_norm,
                    c->q_lora_rank, 1e-6f);
    glm_matmul(pool, &L->q_b, qa, c->q_lora_rank, n, s->q, heads * qd);

    float *cache = s->be->kv->latent[s->li];
    rope_fn rope_apply = c->rope_interleave ? glm_rope_interleaved : glm_rope_neox;
    for (int t = 0; t < n; t++) {
        const float *cs = s->rope_cos + (size_t)t * rope / 2, *sn = s->rope_sin + (size_t)t * rope / 2;
        float *kv = s->kv_a + (size_t)t * ld;
        glm_rmsnorm(kv, kv, L->kv_a_norm, R, 1e-6f);
        rope_apply(kv + R, cs, sn, rope);
        memcpy(cache + (size_t)s->b->slot_mapping[t] * ld, kv, sizeof(float) * (size_t)ld);
        for (int h = 0; h < heads; h++) {
            float *qpe = s->q + ((size_t)t * heads + h) * qd + nope;
            rope_apply(qpe, cs, sn, rope);
            memcpy(s->q_lat + ((size_t)t * heads + h) * ld + R, qpe, sizeof(float) * (size_t)rope);
        }
    }
    glm_pool_for(pool, heads, absorb_task, s);

    if (L->has_indexer)
        run_indexer(s);
    /* else: a "shared" layer keeps topk/topk_n from the previous layer */

    glm_pool_for(pool, n * heads, attn_task, s);

    /* expand by kv_b's value half, one job per head */
    glm_matmul_job *vj = s->jobs;
    for (int h = 0; h < heads; h++)
        vj[h] = (glm_matmul_job){&L->kv_b, h * (nope + V) + nope, V, s->o_lat + (size_t)h * R, heads * R,
                                 NULL, n, s->attn + (size_t)h * V, heads * V, 0};
    glm_matmul_jobs(pool, vj, heads);
    glm_matmul(pool, &L->o, s->attn, heads * V, n, s->tmp_h, H);
    for (size_t i = 0; i < (size_t)n * H; i++)
        s->x[i] += s->tmp_h[i];
}

/* ---- FFN ------------------------------------------------------------------ */

static void dense_ffn(step *s, const glm_weight *g, const glm_weight *u, const glm_weight *d, float *out)
{
    int n = s->n, H = s->be->c->hidden_size, I = g->rows;
    float *gb = s->ffn_g, *ub = s->ffn_u;
    glm_matmul_job j[2] = {{g, 0, I, s->h, H, NULL, n, gb, I, 0}, {u, 0, I, s->h, H, NULL, n, ub, I, 0}};
    glm_matmul_jobs(s->be->pool, j, 2);
    glm_swiglu(gb, ub, n * I);
    glm_matmul(s->be->pool, d, gb, I, n, out, H);
}

typedef struct {
    float v;
    int e;
} ev;

static int ev_cmp(const void *a, const void *b)
{
    const ev *x = a, *y = b;
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return (x->e > y->e) - (x->e < y->e);
}

/* Sigmoid router with correction bias for the choice, group-limited top-k,
 * renormalised weights times routed_scaling_factor. ids come out ascending. */
static void route(const glm_config *c, const float *logits, const float *bias, int32_t *ids, float *wts)
{
    int E = c->n_routed_experts, G = c->n_group, per = E / G, K = c->num_experts_per_tok;
    float score[E], choice[E];
    ev gs[G], cand[E];
    for (int e = 0; e < E; e++) {
        score[e] = 1.0f / (1.0f + expf(-logits[e]));
        choice[e] = score[e] + bias[e];
    }
    for (int g = 0; g < G; g++) {
        float a = -INFINITY, b = -INFINITY; /* top two of the group */
        for (int e = g * per; e < (g + 1) * per; e++) {
            float v = choice[e];
            if (v > a) {
                b = a;
                a = v;
            } else if (v > b) {
                b = v;
            }
        }
        gs[g].v = per >= 2 ? a + b : a;
        gs[g].e = g;
    }
    qsort(gs, (size_t)G, sizeof *gs, ev_cmp);
    int nc = 0;
    for (int k = 0; k < c->topk_group; k++)
        for (int e = gs[k].e * per; e < (gs[k].e + 1) * per; e++)
            cand[nc++] = (ev){choice[e], e};
    qsort(cand, (size_t)nc, sizeof *cand, ev_cmp);
    for (int k = 0; k < K; k++)
        ids[k] = cand[k].e;
    qsort(ids, (size_t)K, sizeof *ids, int_cmp);
    float sum = 0;
    for (int k = 0; k < K; k++) {
        wts[k] = score[ids[k]];
        sum += wts[k];
    }
    float den = c->norm_topk_prob ? sum + 1e-20f : 1.0f;
    for (int k = 0; k < K; k++)
        wts[k] = wts[k] / den * c->routed_scaling_factor;
}

static void moe_ffn(step *s, float *out)
{
    const glm_config *c = s->be->c;
    const glm_layer *L = s->layer;
    glm_pool *pool = s->be->pool;
    int n = s->n, H = c->hidden_size, E = c->n_routed_experts, K = c->num_experts_per_tok;
    int I = c->moe_intermediate_size;

    float *rl = s->router;
    glm_matmul(pool, &L->router, s->h, H, n, rl, E);
    int32_t *ids = s->exp_ids;
    float *wts = s->exp_w;
    for (int t = 0; t < n; t++)
        route(c, rl + (size_t)t * E, L->router_bias, ids + (size_t)t * K, wts + (size_t)t * K);

    /* group assignments by expert: tok lists and output rows */
    int32_t *count = s->exp_first, *fill = s->exp_fill, *tok = s->exp_tok, *row_of = s->exp_row;
    memset(count, 0, sizeof(int32_t) * ((size_t)E + 1));
    memset(fill, 0, sizeof(int32_t) * (size_t)E);
    for (int i = 0; i < n * K; i++)
        count[ids[i] + 1]++;
    for (int e = 0; e < E; e++)
        count[e + 1] += count[e];                  /* count[e] = first row of expert e */
    for (int t = 0; t < n; t++)
        for (int k = 0; k < K; k++) {
            int e = ids[t * K + k], r = count[e] + fill[e]++;
            tok[r] = t;
            row_of[t * K + k] = r;
        }
    size_t rows = (size_t)n * K;
    float *gb = s->exp_g, *ub = s->exp_u, *yb = s->exp_y;
    glm_matmul_job *jobs = s->jobs;
    int nj = 0;
    for (int e = 0; e < E; e++) {
        int ne = count[e + 1] - count[e];
        if (!ne)
            continue;
        jobs[nj++] = (glm_matmul_job){&L->exp_gate[e], 0, I, s->h, H, tok + count[e], ne,
                                      gb + (size_t)count[e] * I, I, 0};
        jobs[nj++] = (glm_matmul_job){&L->exp_up[e], 0, I, s->h, H, tok + count[e], ne,
                                      ub + (size_t)count[e] * I, I, 0};
    }
    glm_matmul_jobs(pool, jobs, nj);
    glm_swiglu(gb, ub, (int)(rows * I));
    nj = 0;
    for (int e = 0; e < E; e++) {
        int ne = count[e + 1] - count[e];
        if (ne)
            jobs[nj++] = (glm_matmul_job){&L->exp_down[e], 0, H, gb + (size_t)count[e] * I, I, NULL, ne,
                                          yb + (size_t)count[e] * H, H, 0};
    }
    glm_matmul_jobs(pool, jobs, nj);

    /* routed sum in ascending expert id (ids are sorted), then the shared expert */
    for (int t = 0; t < n; t++) {
        float *o = out + (size_t)t * H;
        memset(o, 0, sizeof(float) * (size_t)H);
        for (int k = 0; k < K; k++) {
            const float *y = yb + (size_t)row_of[t * K + k] * H;
            float w = wts[t * K + k];
            for (int i = 0; i < H; i++)
                o[i] += y[i] * w;
        }
    }
    if (c->n_shared_experts > 0) {
        float *sh = s->shared;
        dense_ffn(s, &L->sh_gate, &L->sh_up, &L->sh_down, sh);
        for (size_t i = 0; i < (size_t)n * H; i++)
            out[i] += sh[i];
    }
}

/* ---- the step ------------------------------------------------------------- */

static void trace(step *s, int entry)
{
    int H = s->be->c->hidden_size;
    if (s->trace)
        memcpy(s->trace + (size_t)entry * s->n * H, s->x, sizeof(float) * (size_t)s->n * H);
}

static int cpu_forward(glm_backend *base, const glm_batch *b, char *err, size_t errlen)
{
    cpu_backend *be = (cpu_backend *)base;
    const glm_config *c = be->c;
    const glm_model *m = be->m;
    step *s = &be->s;
    /* validated by the model runner (glm_batch_validate against base->info) */
    GLM_ASSERT(b->n_tokens >= 1 && b->n_tokens <= base->info.limits.max_tokens);
    GLM_ASSERT(b->n_logits <= base->info.limits.max_logits);
    GLM_ASSERT(b->max_blocks_per_seq <= base->info.limits.max_blocks_per_seq);

    int n = b->n_tokens, H = c->hidden_size, rope = c->qk_rope_head_dim;
    s->b = b;
    s->n = n;
    s->n_logits = 0;
    for (int q = 0; q < b->n_seqs; q++)
        for (int t = b->cu_seqlens_q[q]; t < b->cu_seqlens_q[q + 1]; t++)
            s->seq_of[t] = q;
    for (int t = 0; t < n; t++)
        glm_rope_angles(b->positions[t], c->rope_theta, rope, s->rope_cos + (size_t)t * rope / 2,
                        s->rope_sin + (size_t)t * rope / 2);
    for (int t = 0; t < n; t++)
        glm_weight_rows_f32(&m->embed, b->token_ids[t], 1, s->x + (size_t)t * H);
    trace(s, 0);

    for (int li = 0; li < c->num_hidden_layers; li++) {
        s->li = li;
        s->layer = &m->layers[li];
        for (int t = 0; t < n; t++)
            glm_rmsnorm(s->h + (size_t)t * H, s->x + (size_t)t * H, s->layer->input_norm, H, c->rms_norm_eps);
        attention(s);
        for (int t = 0; t < n; t++)
            glm_rmsnorm(s->h + (size_t)t * H, s->x + (size_t)t * H, s->layer->post_norm, H, c->rms_norm_eps);
        if (s->layer->sparse)
            moe_ffn(s, s->tmp_h);
        else
            dense_ffn(s, &s->layer->gate, &s->layer->up, &s->layer->down, s->tmp_h);
        for (size_t i = 0; i < (size_t)n * H; i++)
            s->x[i] += s->tmp_h[i];
        trace(s, li + 1);
    }

    if (b->n_logits > 0) {
        for (int i = 0; i < b->n_logits; i++)
            glm_rmsnorm(s->final_h + (size_t)i * H, s->x + (size_t)b->logits_index[i] * H, m->final_norm, H,
                        c->rms_norm_eps);
        glm_matmul(be->pool, &m->lm_head, s->final_h, H, b->n_logits, s->logits, c->vocab_size);
    }
    s->n_logits = b->n_logits;
    (void)err;
    (void)errlen;
    return GLM_OK;
}

static int cpu_logits(glm_backend *base, const int32_t *rows, int n, float *out, char *err, size_t errlen)
{
    cpu_backend *be = (cpu_backend *)base;
    size_t V = (size_t)be->c->vocab_size;
    for (int i = 0; i < n; i++) {
        if (rows[i] < 0 || rows[i] >= be->s.n_logits)
            return glm_err(err, errlen, "logits row %d: the last step kept %d", rows[i], be->s.n_logits);
        memcpy(out + (size_t)i * V, be->s.logits + (size_t)rows[i] * V, sizeof(float) * V);
    }
    return GLM_OK;
}

typedef struct {
    cpu_backend *be;
    const glm_sample_req *reqs;
    glm_sampler_result *out;
} sample_job;

static void sample_task(void *ctx, int i, int worker)
{
    sample_job *j = ctx;
    cpu_backend *be = j->be;
    const glm_sample_req *r = &j->reqs[i];
    int V = be->c->vocab_size;
    const float *row = r->logits ? r->logits : be->s.logits + (size_t)r->row * V;
    glm_sampler_sample(r->params, r->rng, row, V, &r->hist, be->s.sampler_ws[worker], be->sampler_ws_size,
                       &j->out[i]);
}

static int cpu_sample(glm_backend *base, const glm_sample_req *reqs, int n, glm_sampler_result *out, char *err,
                      size_t errlen)
{
    cpu_backend *be = (cpu_backend *)base;
    for (int i = 0; i < n; i++)
        if (reqs[i].row < 0 || reqs[i].row >= be->s.n_logits)
            return glm_err(err, errlen, "sample: logits row %d, the last step kept %d", reqs[i].row,
                           be->s.n_logits);
    sample_job j = {be, reqs, out};
    if (n > 1)
        glm_pool_for(be->pool, n, sample_task, &j);
    else if (n == 1)
        sample_task(&j, 0, 0);
    return GLM_OK;
}

static void cpu_trace_hidden(glm_backend *base, float *out)
{
    ((cpu_backend *)base)->s.trace = out;
}

static void cpu_destroy(glm_backend *base)
{
    cpu_backend *be = (cpu_backend *)base;
    glm_kv_cache_free(be->kv);
    glm_free_aligned(be->arena);
    free(be); /* the pool is the caller's */
}

static const glm_backend_ops cpu_ops = {cpu_forward, cpu_logits, cpu_sample, cpu_trace_hidden, cpu_destroy};

/* The workspace as a table of (pointer, bytes): laid out once, so that the
 * sizes and the carving cannot disagree. */
typedef struct {
    void **ptr;
    size_t bytes;
} ws_part;

static size_t carve(ws_part *parts, int n, char *base)
{
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        if (base)
            *parts[i].ptr = base + off;
        off += (parts[i].bytes + 63) & ~(size_t)63;
    }
    return off;
}

/* Memory the system can still give (MemAvailable), in bytes; 0 if unknown. */
static size_t available_memory(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            break;
    fclose(f);
    return (size_t)kb * 1024;
}

glm_backend *glm_cpu_backend_create(const glm_model *m, const glm_backend_params *p, char *err, size_t errlen)
{
    const glm_config *c = &m->cfg;
    if (!p->pool || p->block_size < 1 || p->max_num_batched_tokens < 1 || p->max_num_seqs < 1 ||
        p->max_blocks_per_seq < 1 || p->max_logits_rows < 0 || p->world != 1 || p->rank != 0) {
        glm_err(err, errlen, "cpu backend: invalid parameters");
        return NULL;
    }
    if ((int64_t)p->max_blocks_per_seq * p->block_size > (int64_t)INT32_MAX / 4) {
        glm_err(err, errlen, "cpu backend: a context of %d blocks of %d tokens is too long", p->max_blocks_per_seq,
                p->block_size);
        return NULL;
    }
    cpu_backend *be = glm_calloc(1, sizeof *be);
    be->base.ops = &cpu_ops;
    be->m = m;
    be->c = c;
    be->pool = p->pool;
    step *s = &be->s;
    s->be = be;

    size_t T = (size_t)p->max_num_batched_tokens, Lr = (size_t)GLM_MAX(p->max_logits_rows, 1);
    size_t H = (size_t)c->hidden_size, heads = (size_t)c->num_attention_heads, R = (size_t)c->kv_lora_rank;
    size_t rope = (size_t)c->qk_rope_head_dim, ld = R + rope, V = (size_t)c->vocab_size;
    size_t E = (size_t)GLM_MAX(c->n_routed_experts, 1), K = (size_t)GLM_MAX(c->num_experts_per_tok, 1);
    size_t moeI = (size_t)c->moe_intermediate_size;
    size_t ffnI = GLM_MAX((size_t)c->intermediate_size, moeI * (size_t)GLM_MAX(c->n_shared_experts, 1));
    size_t max_ctx = (size_t)p->max_blocks_per_seq * (size_t)p->block_size;
    int workers = glm_pool_size(p->pool);
    be->sampler_ws_size = glm_sampler_workspace_size(c->vocab_size);
    size_t wlen = GLM_MAX((size_t)2 * c->qk_nope_head_dim * R, 3 * max_ctx) + 16;
    void *wscratch[GLM_POOL_MAX_THREADS], *sws[GLM_POOL_MAX_THREADS];
    void *wtab = NULL, *stab = NULL;
    ws_part parts[64];
    int np = 0;
#define PART(field, bytes) (parts[np++] = (ws_part){(void **)&(field), (bytes)})
    PART(s->seq_of, sizeof(int32_t) * T);
    PART(s->rope_cos, sizeof(float) * T * rope / 2);
    PART(s->rope_sin, sizeof(float) * T * rope / 2);
    PART(s->x, sizeof(float) * T * H);
    PART(s->h, sizeof(float) * T * H);
    PART(s->tmp_h, sizeof(float) * T * H);
    PART(s->q_resid, sizeof(float) * T * c->q_lora_rank);
    PART(s->q, sizeof(float) * T * heads * c->qk_head_dim);
    PART(s->kv_a, sizeof(float) * T * ld);
    PART(s->q_lat, sizeof(float) * T * heads * ld);
    PART(s->o_lat, sizeof(float) * T * heads * R);
    PART(s->attn, sizeof(float) * T * heads * c->v_head_dim);
    PART(s->iq, sizeof(float) * T * c->index_n_heads * c->index_head_dim);
    PART(s->ik, sizeof(float) * T * c->index_head_dim);
    PART(s->iw, sizeof(float) * T * c->index_n_heads);
    PART(s->topk, sizeof(int32_t) * T * c->index_topk);
    PART(s->topk_n, sizeof(int32_t) * T);
    PART(s->ffn_g, sizeof(float) * T * ffnI);
    PART(s->ffn_u, sizeof(float) * T * ffnI);
    PART(s->shared, sizeof(float) * T * H);
    PART(s->router, sizeof(float) * T * E);
    PART(s->exp_ids, sizeof(int32_t) * T * K);
    PART(s->exp_w, sizeof(float) * T * K);
    PART(s->exp_first, sizeof(int32_t) * (E + 1));
    PART(s->exp_fill, sizeof(int32_t) * E);
    PART(s->exp_tok, sizeof(int32_t) * T * K);
    PART(s->exp_row, sizeof(int32_t) * T * K);
    PART(s->exp_g, sizeof(float) * T * K * moeI);
    PART(s->exp_u, sizeof(float) * T * K * moeI);
    PART(s->exp_y, sizeof(float) * T * K * H);
    PART(s->jobs, sizeof(glm_matmul_job) * GLM_MAX(2 * E, heads));
    PART(s->final_h, sizeof(float) * Lr * H);
    PART(s->logits, sizeof(float) * Lr * V);
    PART(wtab, sizeof(float *) * (size_t)workers);
    PART(stab, sizeof(void *) * (size_t)workers);
    for (int w = 0; w < workers; w++) {
        PART(wscratch[w], sizeof(float) * wlen);
        PART(sws[w], be->sampler_ws_size);
    }
#undef PART
    /* the matmuls' per-worker scratch: rows of the widest weight */
    int widest = GLM_MAX(GLM_MAX(c->hidden_size, c->q_lora_rank), GLM_MAX(c->kv_lora_rank, c->intermediate_size));
    widest = GLM_MAX(widest, GLM_MAX(c->moe_intermediate_size * GLM_MAX(c->n_shared_experts, 1),
                                     c->num_attention_heads * c->v_head_dim));
    glm_pool_reserve(p->pool, glm_matmul_scratch_bytes(widest));
    size_t ws_bytes = carve(parts, np, NULL);
    be->arena = glm_malloc_aligned(ws_bytes);
    carve(parts, np, be->arena);
    s->wscratch = wtab;
    s->sampler_ws = stab;
    for (int w = 0; w < workers; w++) {
        s->wscratch[w] = wscratch[w];
        s->sampler_ws[w] = sws[w];
    }

    /* the KV cache: the budget given, or a share of what memory remains */
    size_t per_block = glm_kv_bytes_per_token(c) * (size_t)p->block_size;
    size_t budget = p->kv_bytes;
    if (budget == 0) {
        double frac = p->mem_fraction > 0 && p->mem_fraction <= 1 ? p->mem_fraction : 0.9;
        size_t avail = available_memory();
        budget = (size_t)((double)avail * frac);
    }
    size_t nb = p->kv_blocks > 0 ? (size_t)p->kv_blocks : budget / per_block;
    if (nb < 1 || nb > (size_t)INT32_MAX / (size_t)p->block_size) {
        glm_err(err, errlen, "cpu backend: a KV budget of %zu bytes holds %zu blocks of %d tokens (%zu bytes each)",
                budget, nb, p->block_size, per_block);
        cpu_destroy(&be->base);
        return NULL;
    }
    be->kv = glm_kv_cache_create(c, (int)nb, p->block_size, err, errlen);
    if (!be->kv) {
        cpu_destroy(&be->base);
        return NULL;
    }
    be->base.info = (glm_backend_info){
        .name = "cpu",
        .limits = {.vocab_size = c->vocab_size,
                   .max_position = c->max_position_embeddings,
                   .num_blocks = (int)nb,
                   .block_size = p->block_size,
                   .max_tokens = p->max_num_batched_tokens,
                   .max_seqs = p->max_num_seqs,
                   .max_blocks_per_seq = p->max_blocks_per_seq,
                   .max_logits = p->max_logits_rows},
        .kv_bytes = be->kv->bytes,
        .workspace_bytes = ws_bytes,
    };
    return &be->base;
}
