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
 * With a draft layer (speculative decoding, model.h: glm_mtp), forward keeps
 * every row's final hidden state, and draft runs the MTP layer:
 *   x = eh_proj([enorm(embed(next tokens)) | hnorm(final hidden)])
 *   the decoder layer above on x (cache layer num_hidden_layers)
 *   h = rmsnorm(x, shared_head.norm), kept for a chained draft
 *   logits = lm_head(h) for the rows asked for.
 *
 * Memory: the backend owns its KV cache (kvcache.h) and one workspace arena,
 * carved at create by a table of sizes for the largest step its parameters
 * allow (max_num_batched_tokens, max context, max_logits_rows): forward,
 * logits and sample allocate nothing.
 *
 * The MLA, DSA, MoE, norm and RoPE steps are the reference ops (ref_ops.h),
 * the same functions every other backend is checked against op by op.
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
#include "comm/comm.h"
#include "cpu/kvcache.h"
#include "cpu/ops.h"
#include "cpu/ref_ops.h"
#include "core/carve.h"
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
    int32_t *topk;            /* [T, index_topk] chosen positions, ascending, -1 padded */
    /* FFN */
    float *ffn_g, *ffn_u;     /* [T, max(intermediate, moe_intermediate * n_shared)] */
    float *shared;            /* [T, H] shared expert output */
    float *router;            /* [T, E] router logits */
    int32_t *exp_ids;         /* [T, K] chosen experts, ascending */
    float *exp_w;             /* [T, K] their weights */
    /* logits */
    float *final_h;           /* [max_logits_rows, H] */
    float *logits;            /* [max_logits_rows, vocab] of the last forward */
    float *logits_part;       /* tensor parallelism: [world, max_logits_rows, vocab_stride], every
                                 rank's rows of the vocabulary (all-gathered); unused at world 1 */
    int n_logits;             /* rows held */
    void *op_ws;              /* the reference ops' scratch (one op at a time) */
    size_t op_ws_size;
    int max_ctx;              /* positions < max_ctx */
    void **sampler_ws;        /* [workers] -> glm_sampler_workspace_size(vocab) bytes */
    float *trace;             /* [L + 1, n, H] hidden states, or NULL */
    /* draft (MTP) layer only, else NULL */
    float *fin_h;             /* [T, H] final hidden state of every row of the last forward */
    float *draft_h;           /* [T, H] the MTP output (after shared_head.norm) of the last draft */
    float *eh_in;             /* [T, 2H] eh_proj's input */
    int fin_n, draft_n;       /* rows of fin_h and draft_h that hold the last forward's / draft's */
    float *xr[3];             /* [max(T, max_logits_rows), widest input]: GEMM inputs rounded as the
                                 CUDA backend rounds them (emulation only, else NULL) */
} step;

typedef struct cpu_backend {
    glm_backend base;
    const glm_model *m;
    const glm_config *c;
    glm_kv_cache *kv;
    glm_pool *pool;
    glm_comm *comm;           /* tensor parallelism: the world's communicator; NULL at world 1 */
    step s;                   /* the workspace */
    void *arena;              /* the one allocation behind it */
    size_t sampler_ws_size;
    int emul;                 /* GLM_COMPUTE_BF16: round where the CUDA backend's bfloat16 mode does */
    int draft;                /* holds the MTP layer (draft_layers 1) */
} cpu_backend;

/* ---- the CUDA backend's rounding points (GLM_COMPUTE_BF16) ---------------------------------
 *
 * With dtype GLM_COMPUTE_BF16 the CPU backend rounds exactly where the CUDA backend's default
 * mode does, and nowhere else, so that the two can be compared tightly (tests/cuda): the input
 * rows of a GEMM against a BF16 weight are rounded to BF16; against an FP8 weight they are
 * quantised per 1 x 128 group to e4m3 with the scale amax / 448 (1 for an all-zero group) and
 * used as q * scale; F32 weights (the router) take float32 inputs; the KV cache rows (latent and
 * index keys) are stored rounded to BF16. The MoE experts and the MLA absorption/expansion read
 * float32 activations on both backends. An F32 checkpoint's weights are not narrowed here (the
 * CUDA backend narrows them), so the emulation is exact for BF16 and FP8 checkpoints only. The
 * server never asks for it: its flags give the CPU backend float32. */

static float bf16_round(float v) { return glm_bf16_to_f32(glm_f32_to_bf16(v)); }

static void quant_row_e4m3(float *dst, const float *x, int cols)
{
    for (int g = 0; g < cols; g += 128) {
        int e = GLM_MIN(cols, g + 128);
        float amax = 0;
        for (int k = g; k < e; k++)
            amax = fmaxf(amax, fabsf(x[k]));
        float sc = amax / 448.0f;
        if (!(sc > 0))
            sc = 1.0f;
        for (int k = g; k < e; k++)
            dst[k] = glm_e4m3_to_f32(glm_f32_to_e4m3(x[k] / sc)) * sc;
    }
}

/* x [n, ldx] (first cols) as the CUDA backend feeds it to a GEMM against w: x itself, or a
 * rounded copy in s->xr[slot] (row stride cols). */
static const float *gemm_input(struct cpu_backend *be, int slot, const glm_weight *w, const float *x, int ldx,
                               int n, int *ld_out);


static glm_ref_paging paging(const step *s)
{
    const glm_kv_cache *kv = s->be->kv;
    return (glm_ref_paging){s->b->block_tables, s->b->max_blocks_per_seq, kv->block_size,
                            (int64_t)kv->num_blocks * kv->block_size, s->seq_of, s->b->positions};
}

static const float *gemm_input(cpu_backend *be, int slot, const glm_weight *w, const float *x, int ldx, int n,
                               int *ld_out)
{
    *ld_out = ldx;
    if (!be->emul || w->dtype == GLM_DTYPE_F32)
        return x;
    int cols = w->cols;
    float *dst = be->s.xr[slot];
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * ldx;
        float *d = dst + (size_t)t * cols;
        if (w->dtype == GLM_DTYPE_F8_E4M3)
            quant_row_e4m3(d, xt, cols);
        else
            for (int k = 0; k < cols; k++)
                d[k] = bf16_round(xt[k]);
    }
    *ld_out = cols;
    return dst;
}

/* A job's input through gemm_input (slot: which rounding buffer it may use). */
static void job_input(cpu_backend *be, int slot, glm_matmul_job *j)
{
    j->x = gemm_input(be, slot, j->w, j->x, j->ldx, j->n_tok, &j->ldx);
}

static void matmul_emul(cpu_backend *be, const glm_weight *w, const float *x, int ldx, int n, float *y, int ldy)
{
    int ld;
    const float *xi = gemm_input(be, 0, w, x, ldx, n, &ld);
    glm_matmul(be->pool, w, xi, ld, n, y, ldy);
}

/* Rows [n] of a cache written this step, rounded to BF16 in place (emulation). */
static void round_cache_rows(cpu_backend *be, float *cache, const int64_t *slots, int n, int dim)
{
    if (!be->emul)
        return;
    for (int t = 0; t < n; t++)
        for (int k = 0; k < dim; k++) {
            float *v = cache + (size_t)slots[t] * dim + k;
            *v = bf16_round(*v);
        }
}

/* ---- DSA indexer ---------------------------------------------------------- */

/* The layer's indexer: its keys go to the cache, and each new token's top
 * index_topk earlier positions to s->topk. */
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
    for (int j = 0; j < 3; j++)
        job_input(s->be, j, &jobs[j]);
    glm_matmul_jobs(pool, jobs, 3);
    int il = c->indexer_rope_interleave;
    glm_ref_rope(pool, &(glm_ref_rope_params){n, ih, id, 0, rope, il, s->rope_cos, s->rope_sin, s->iq});
    glm_ref_layernorm(pool, &(glm_ref_norm_params){n, id, s->ik, id, L->idx_k_norm_w, L->idx_k_norm_b, 1e-6f,
                                                  s->ik, id});
    glm_ref_rope(pool, &(glm_ref_rope_params){n, 1, id, 0, rope, il, s->rope_cos, s->rope_sin, s->ik});
    float *icache = s->be->kv->index_k[s->li];
    float wscale = 1.0f / sqrtf((float)ih);
    for (int t = 0; t < n; t++) {
        memcpy(icache + (size_t)s->b->slot_mapping[t] * id, s->ik + (size_t)t * id, sizeof(float) * (size_t)id);
        for (int hh = 0; hh < ih; hh++)
            s->iw[(size_t)t * ih + hh] *= wscale;
    }
    round_cache_rows(s->be, icache, s->b->slot_mapping, n, id);
    glm_ref_dsa_params dp = {n, ih, id, c->index_topk, 1.0f / sqrtf((float)id), s->iq, s->iw, icache,
                             paging(s), s->max_ctx, s->topk};
    glm_ref_dsa_select(pool, &dp, s->op_ws, s->op_ws_size);
}

/* ---- attention ------------------------------------------------------------ */

static void attention(step *s)
{
    const glm_config *c = s->be->c;
    const glm_layer *L = s->layer;
    glm_pool *pool = s->be->pool;
    int n = s->n, H = c->hidden_size, heads = c->num_attention_heads, ql = c->q_lora_rank;
    int R = c->kv_lora_rank, rope = c->qk_rope_head_dim, nope = c->qk_nope_head_dim, qd = c->qk_head_dim;
    int ld = R + rope, V = c->v_head_dim, il = c->rope_interleave;

    /* q_a and kv_a read the same input: one parallel loop */
    float *qa = s->q_resid;
    glm_matmul_job j1[2] = {
        {&L->q_a, 0, ql, s->h, H, NULL, n, qa, ql, 0},
        {&L->kv_a, 0, ld, s->h, H, NULL, n, s->kv_a, ld, 0},
    };
    job_input(s->be, 0, &j1[0]);
    job_input(s->be, 1, &j1[1]);
    glm_matmul_jobs(pool, j1, 2);
    glm_ref_rmsnorm(pool, &(glm_ref_norm_params){n, ql, qa, ql, L->q_a_norm, NULL, 1e-6f, qa, ql});
    matmul_emul(s->be, &L->q_b, qa, ql, n, s->q, heads * qd);

    /* latent | roped k_pe of every new token into its cache slot, before attention */
    glm_ref_rmsnorm(pool, &(glm_ref_norm_params){n, R, s->kv_a, ld, L->kv_a_norm, NULL, 1e-6f, s->kv_a, ld});
    glm_ref_rope(pool, &(glm_ref_rope_params){n, 1, ld, R, rope, il, s->rope_cos, s->rope_sin, s->kv_a});
    glm_ref_rope(pool, &(glm_ref_rope_params){n, heads, qd, nope, rope, il, s->rope_cos, s->rope_sin, s->q});
    float *cache = s->be->kv->latent[s->li];
    for (int t = 0; t < n; t++)
        memcpy(cache + (size_t)s->b->slot_mapping[t] * ld, s->kv_a + (size_t)t * ld, sizeof(float) * (size_t)ld);
    round_cache_rows(s->be, cache, s->b->slot_mapping, n, ld);

    glm_ref_mla_absorb_params ap = {n, heads, nope, rope, R, V, &L->kv_b, s->q, s->q_lat};
    glm_ref_mla_absorb(pool, &ap, s->op_ws, s->op_ws_size);
    if (L->has_indexer)
        run_indexer(s);
    /* else: a "shared" layer keeps the previous layer's selection in s->topk */
    glm_ref_mla_attn_params mp = {n, heads, R, rope, c->attn_scale, s->q_lat, cache, paging(s), s->topk,
                                  c->index_topk, s->max_ctx, s->o_lat};
    glm_ref_mla_attn(pool, &mp, s->op_ws, s->op_ws_size);
    glm_ref_mla_expand_params ep = {n, heads, nope, R, V, &L->kv_b, s->o_lat, s->attn};
    glm_ref_mla_expand(pool, &ep, s->op_ws, s->op_ws_size);

    /* this rank's heads' share of o_proj (all of it at world 1) */
    matmul_emul(s->be, &L->o, s->attn, heads * V, n, s->tmp_h, H);
}

/* ---- FFN ------------------------------------------------------------------ */

static void dense_ffn(step *s, const glm_weight *g, const glm_weight *u, const glm_weight *d, float *out)
{
    int n = s->n, H = s->be->c->hidden_size, I = g->rows;
    float *gb = s->ffn_g, *ub = s->ffn_u;
    glm_matmul_job j[2] = {{g, 0, I, s->h, H, NULL, n, gb, I, 0}, {u, 0, I, s->h, H, NULL, n, ub, I, 0}};
    job_input(s->be, 0, &j[0]);
    job_input(s->be, 1, &j[1]);
    glm_matmul_jobs(s->be->pool, j, 2);
    glm_swiglu(gb, ub, (size_t)n * I);
    matmul_emul(s->be, d, gb, I, n, out, H);
}

static glm_ref_moe_experts_params experts_params(const glm_config *c, const glm_layer *L, int n, const float *x,
                                                 const int32_t *ids, const float *wts, float *out)
{
    return (glm_ref_moe_experts_params){n, c->hidden_size, c->moe_intermediate_size, c->n_routed_experts,
                                        c->num_experts_per_tok, L ? L->exp_gate : NULL, L ? L->exp_up : NULL,
                                        L ? L->exp_down : NULL, x, ids, wts, out};
}

/* Routed experts (sum in ascending expert id), then the shared expert. */
static void moe_ffn(step *s, float *out)
{
    const glm_config *c = s->be->c;
    const glm_layer *L = s->layer;
    glm_pool *pool = s->be->pool;
    int n = s->n, H = c->hidden_size, E = c->n_routed_experts, K = c->num_experts_per_tok;

    glm_matmul(pool, &L->router, s->h, H, n, s->router, E);
    glm_ref_moe_route_params rp = {n, E, c->n_group, c->topk_group, K, c->norm_topk_prob, c->routed_scaling_factor,
                                   s->router, L->router_bias, s->exp_ids, s->exp_w};
    glm_ref_moe_route(pool, &rp);
    glm_ref_moe_experts_params xp = experts_params(c, L, n, s->h, s->exp_ids, s->exp_w, out);
    glm_ref_moe_experts(pool, &xp, s->op_ws, s->op_ws_size);
    if (c->n_shared_experts > 0) {
        dense_ffn(s, &L->sh_gate, &L->sh_up, &L->sh_down, s->shared);
        for (size_t i = 0; i < (size_t)n * H; i++)
            out[i] += s->shared[i];
    }
}

/* ---- the step ------------------------------------------------------------- */

static void trace(step *s, int entry)
{
    int H = s->be->c->hidden_size;
    if (s->trace)
        memcpy(s->trace + (size_t)entry * s->n * H, s->x, sizeof(float) * (size_t)s->n * H);
}

/* Tensor parallelism: buf [n] becomes the sum of every rank's buf (rank order, comm.h). */
static int reduce(cpu_backend *be, float *buf, size_t n, char *err, size_t errlen)
{
    if (!be->comm)
        return GLM_OK;
    return glm_comm_all_reduce_sum(be->comm, buf, buf, n, NULL, err, errlen) == GLM_OK ? GLM_OK
                                                                                      : GLM_BACKEND_FAILURE;
}

/* The LM head over the rows in s->final_h: s->logits [n_rows, vocab]. A rank
 * computes its rows of the vocabulary; the ranks' blocks are gathered. */
static int lm_head(cpu_backend *be, int n_rows, char *err, size_t errlen)
{
    step *s = &be->s;
    const glm_shard *sh = &be->m->shard;
    int H = be->c->hidden_size, V = be->c->vocab_size;
    if (!be->comm) {
        matmul_emul(be, &be->m->lm_head, s->final_h, H, n_rows, s->logits, V);
        return GLM_OK;
    }
    size_t block = (size_t)n_rows * sh->vocab_stride; /* floats of one rank's block */
    float *mine = s->logits_part + (size_t)sh->rank * block;
    matmul_emul(be, &be->m->lm_head, s->final_h, H, n_rows, mine, sh->vocab_stride);
    if (glm_comm_all_gather(be->comm, mine, s->logits_part, block * sizeof(float), NULL, err, errlen) != GLM_OK)
        return GLM_BACKEND_FAILURE;
    for (int r = 0; r < sh->world; r++) {
        int v0 = r * sh->vocab_stride, nv = GLM_MIN(V, v0 + sh->vocab_stride) - v0;
        for (int i = 0; i < n_rows; i++)
            memcpy(s->logits + (size_t)i * V + v0, s->logits_part + r * block + (size_t)i * sh->vocab_stride,
                   sizeof(float) * (size_t)nv);
    }
    return GLM_OK;
}

/* The step's per-token state from the batch: sequences and RoPE angles. */
static void begin_step(cpu_backend *be, const glm_batch *b)
{
    step *s = &be->s;
    int n = b->n_tokens;
    s->b = b;
    s->n = n;
    s->n_logits = 0;
    for (int q = 0; q < b->n_seqs; q++)
        for (int t = b->cu_seqlens_q[q]; t < b->cu_seqlens_q[q + 1]; t++)
            s->seq_of[t] = q;
    glm_ref_rope_angles(&(glm_ref_rope_angles_params){n, be->c->qk_rope_head_dim, be->c->rope_theta, b->positions,
                                                      s->rope_cos, s->rope_sin});
}

/* The embedding rows of ids [n] into out [n, H]: a rank holds rows [vocab0, vocab0 + n_vocab),
 * the others are 0 here and the sum over ranks is the token's row (exactly: x + 0 = x). */
static int embed(cpu_backend *be, const int32_t *ids, int n, float *out, char *err, size_t errlen)
{
    const glm_model *m = be->m;
    int H = be->c->hidden_size;
    for (int t = 0; t < n; t++) {
        int row = ids[t] - m->shard.vocab0;
        if (row >= 0 && row < m->shard.n_vocab)
            glm_weight_rows_f32(&m->embed, row, 1, out + (size_t)t * H);
        else
            memset(out + (size_t)t * H, 0, sizeof(float) * (size_t)H);
    }
    return reduce(be, out, (size_t)n * H, err, errlen);
}

/* One decoder layer over the step's rows: s->x += attention, then += FFN/MoE; its KV goes to
 * cache layer li. */
static int decoder_layer(cpu_backend *be, int li, const glm_layer *layer, char *err, size_t errlen)
{
    const glm_config *c = be->c;
    step *s = &be->s;
    int n = s->n, H = c->hidden_size, rc;
    s->li = li;
    s->layer = layer;
    for (int t = 0; t < n; t++)
        glm_rmsnorm(s->h + (size_t)t * H, s->x + (size_t)t * H, layer->input_norm, H, c->rms_norm_eps);
    attention(s);
    if ((rc = reduce(be, s->tmp_h, (size_t)n * H, err, errlen)) != GLM_OK)
        return rc;
    for (size_t i = 0; i < (size_t)n * H; i++)
        s->x[i] += s->tmp_h[i];
    for (int t = 0; t < n; t++)
        glm_rmsnorm(s->h + (size_t)t * H, s->x + (size_t)t * H, layer->post_norm, H, c->rms_norm_eps);
    if (layer->sparse)
        moe_ffn(s, s->tmp_h);
    else
        dense_ffn(s, &layer->gate, &layer->up, &layer->down, s->tmp_h);
    if ((rc = reduce(be, s->tmp_h, (size_t)n * H, err, errlen)) != GLM_OK)
        return rc;
    for (size_t i = 0; i < (size_t)n * H; i++)
        s->x[i] += s->tmp_h[i];
    return GLM_OK;
}

/* rows [n] of src (row stride H) through the LM head into s->logits, kept for logits/sample. */
static int logits_of(cpu_backend *be, const float *src, const int32_t *rows, int n, char *err, size_t errlen)
{
    step *s = &be->s;
    int H = be->c->hidden_size;
    for (int i = 0; i < n; i++)
        memcpy(s->final_h + (size_t)i * H, src + (size_t)rows[i] * H, sizeof(float) * (size_t)H);
    int rc = n > 0 ? lm_head(be, n, err, errlen) : GLM_OK;
    s->n_logits = rc == GLM_OK ? n : 0;
    return rc;
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

    int n = b->n_tokens, H = c->hidden_size;
    begin_step(be, b);
    int rc = embed(be, b->token_ids, n, s->x, err, errlen);
    if (rc != GLM_OK)
        return rc;
    trace(s, 0);
    for (int li = 0; li < c->num_hidden_layers; li++) {
        if ((rc = decoder_layer(be, li, &m->layers[li], err, errlen)) != GLM_OK)
            return rc;
        trace(s, li + 1);
    }
    if (be->draft) { /* every row's final hidden state, for the draft */
        for (int t = 0; t < n; t++)
            glm_rmsnorm(s->fin_h + (size_t)t * H, s->x + (size_t)t * H, m->final_norm, H, c->rms_norm_eps);
        s->fin_n = n;
        s->draft_n = 0;
        return logits_of(be, s->fin_h, b->logits_index, b->n_logits, err, errlen);
    }
    for (int i = 0; i < b->n_logits; i++)
        glm_rmsnorm(s->final_h + (size_t)i * H, s->x + (size_t)b->logits_index[i] * H, m->final_norm, H,
                    c->rms_norm_eps);
    if (b->n_logits > 0 && (rc = lm_head(be, b->n_logits, err, errlen)) != GLM_OK)
        return rc;
    s->n_logits = b->n_logits;
    return GLM_OK;
}

static int cpu_draft(glm_backend *base, const glm_batch *b, glm_draft_source from, const int32_t *rows, char *err,
                     size_t errlen)
{
    cpu_backend *be = (cpu_backend *)base;
    const glm_config *c = be->c;
    const glm_mtp *mtp = be->m->mtp;
    step *s = &be->s;
    GLM_ASSERT(be->draft && b->n_tokens >= 1 && b->n_tokens <= base->info.limits.max_tokens);
    GLM_ASSERT(b->n_logits <= base->info.limits.max_logits);
    int n = b->n_tokens, H = c->hidden_size;
    const float *src = from == GLM_DRAFT_FROM_DRAFT ? s->draft_h : s->fin_h;
    int have = from == GLM_DRAFT_FROM_DRAFT ? s->draft_n : s->fin_n;
    for (int t = 0; t < n; t++)
        if (rows[t] < 0 || rows[t] >= have) {
            glm_err(err, errlen, "draft: token %d reads hidden row %d of the last %s, which has %d", t, rows[t],
                    from == GLM_DRAFT_FROM_DRAFT ? "draft" : "forward", have);
            return GLM_BAD_BATCH;
        }
    /* eh_proj's input [enorm(embedding) | hnorm(hidden)] first: a chained draft reads the rows
     * this one overwrites */
    begin_step(be, b);
    int rc = embed(be, b->token_ids, n, s->x, err, errlen);
    if (rc != GLM_OK)
        return rc;
    for (int t = 0; t < n; t++) {
        float *in = s->eh_in + (size_t)t * 2 * H;
        glm_rmsnorm(in, s->x + (size_t)t * H, mtp->enorm, H, c->rms_norm_eps);
        glm_rmsnorm(in + H, src + (size_t)rows[t] * H, mtp->hnorm, H, c->rms_norm_eps);
    }
    matmul_emul(be, &mtp->eh_proj, s->eh_in, 2 * H, n, s->x, H);
    if ((rc = decoder_layer(be, c->num_hidden_layers, &mtp->layer, err, errlen)) != GLM_OK)
        return rc;
    for (int t = 0; t < n; t++)
        glm_rmsnorm(s->draft_h + (size_t)t * H, s->x + (size_t)t * H, mtp->head_norm, H, c->rms_norm_eps);
    s->draft_n = n;
    return logits_of(be, s->draft_h, b->logits_index, b->n_logits, err, errlen);
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

static const glm_backend_ops cpu_ops = {cpu_forward, cpu_logits, cpu_sample, cpu_draft, cpu_trace_hidden,
                                        cpu_destroy};

/* One number from a file (a /proc/meminfo line given by fmt, or a cgroup
 * file); 0 when it cannot be read or says "max". */
static unsigned long long read_number(const char *path, const char *fmt)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long long v = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, fmt, &v) == 1)
            break;
    fclose(f);
    return v;
}

/* The machine's memory as this process may use it: the total and what is
 * available now (MemTotal / MemAvailable, bounded by a cgroup v2 limit and
 * what the cgroup already uses). 0 when unknown. */
static void machine_memory(size_t *total, size_t *avail)
{
    *total = (size_t)read_number("/proc/meminfo", "MemTotal: %llu kB") * 1024;
    *avail = (size_t)read_number("/proc/meminfo", "MemAvailable: %llu kB") * 1024;
    size_t limit = (size_t)read_number("/sys/fs/cgroup/memory.max", "%llu");
    if (limit > 0) {
        size_t used = (size_t)read_number("/sys/fs/cgroup/memory.current", "%llu");
        *total = GLM_MIN(*total, limit);
        *avail = GLM_MIN(*avail, limit > used ? limit - used : 0);
    }
}

glm_backend *glm_cpu_backend_create(const glm_model *m, const glm_backend_params *p, char *err, size_t errlen)
{
    const glm_config *c = &m->cfg;
    if (!p->pool || p->block_size < 1 || p->max_num_batched_tokens < 1 || p->max_num_seqs < 1 ||
        p->max_blocks_per_seq < 1 || p->max_logits_rows < 0) {
        glm_err(err, errlen, "cpu backend: invalid parameters");
        return NULL;
    }
    if (p->world != m->shard.world || p->rank != m->shard.rank || (p->world > 1) != (p->comm != NULL)) {
        glm_err(err, errlen, "cpu backend: rank %d of %d needs that rank's shard of the model and, past one rank, "
                "a communicator", p->rank, p->world);
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
    be->comm = p->world > 1 ? p->comm : NULL;
    be->emul = p->dtype == GLM_COMPUTE_BF16;
    be->draft = p->draft_layers == 1 && m->mtp;
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
    s->max_ctx = (int)max_ctx;

    /* the reference ops run one at a time: one scratch of the largest size */
    int T_ = p->max_num_batched_tokens, heads_ = c->num_attention_heads;
    glm_ref_paging pg0 = {0};
    glm_ref_mla_absorb_params ap = {T_, heads_, c->qk_nope_head_dim, c->qk_rope_head_dim, c->kv_lora_rank,
                                    c->v_head_dim, NULL, NULL, NULL};
    glm_ref_mla_attn_params mp = {T_, heads_, c->kv_lora_rank, c->qk_rope_head_dim, 1, NULL, NULL, pg0,
                                  NULL /* no selection: the most keys */, c->index_topk, s->max_ctx, NULL};
    glm_ref_mla_expand_params ep = {T_, heads_, c->qk_nope_head_dim, c->kv_lora_rank, c->v_head_dim, NULL, NULL,
                                    NULL};
    glm_ref_dsa_params dp = {T_, c->index_n_heads, c->index_head_dim, c->index_topk, 1, NULL, NULL, NULL, pg0,
                             s->max_ctx, NULL};
    glm_ref_moe_experts_params xp = experts_params(c, NULL, T_, NULL, NULL, NULL, NULL);
    size_t op_ws = glm_ref_mla_absorb_workspace(&ap, workers);
    op_ws = GLM_MAX(op_ws, glm_ref_mla_attn_workspace(&mp, workers));
    op_ws = GLM_MAX(op_ws, glm_ref_mla_expand_workspace(&ep, workers));
    op_ws = GLM_MAX(op_ws, glm_ref_dsa_workspace(&dp, workers));
    if (c->n_routed_experts > 0)
        op_ws = GLM_MAX(op_ws, glm_ref_moe_experts_workspace(&xp, workers));
    s->op_ws_size = op_ws;

    void *sws[GLM_POOL_MAX_THREADS];
    void *stab = NULL;
    glm_part parts[64];
    int np = 0;
#define PART(field, bytes) (parts[np++] = (glm_part){(void **)&(field), (bytes)})
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
    PART(s->ffn_g, sizeof(float) * T * ffnI);
    PART(s->ffn_u, sizeof(float) * T * ffnI);
    PART(s->shared, sizeof(float) * T * H);
    PART(s->router, sizeof(float) * T * E);
    PART(s->exp_ids, sizeof(int32_t) * T * K);
    PART(s->exp_w, sizeof(float) * T * K);
    PART(s->final_h, sizeof(float) * Lr * H);
    PART(s->logits, sizeof(float) * Lr * V);
    PART(s->logits_part, p->world > 1 ? sizeof(float) * (size_t)p->world * Lr * m->shard.vocab_stride : 0);
    PART(s->op_ws, op_ws);
    PART(s->fin_h, be->draft ? sizeof(float) * T * H : 0);
    PART(s->draft_h, be->draft ? sizeof(float) * T * H : 0);
    PART(s->eh_in, be->draft ? sizeof(float) * T * 2 * H : 0);
    /* the rounded GEMM inputs of the emulation: rows of the widest input */
    size_t widest_in = GLM_MAX(GLM_MAX(H, (size_t)c->q_lora_rank), GLM_MAX(heads * c->v_head_dim, ffnI));
    if (be->draft)
        widest_in = GLM_MAX(widest_in, 2 * H); /* eh_proj's */
    for (int i = 0; i < 3; i++)
        PART(s->xr[i], be->emul ? sizeof(float) * GLM_MAX(T, Lr) * widest_in : 0);
    PART(stab, sizeof(void *) * (size_t)workers);
    for (int w = 0; w < workers; w++)
        PART(sws[w], be->sampler_ws_size);
#undef PART
    /* the matmuls' per-worker scratch: rows of the widest weight */
    int widest = GLM_MAX(GLM_MAX(c->hidden_size, c->q_lora_rank), GLM_MAX(c->kv_lora_rank, c->intermediate_size));
    widest = GLM_MAX(widest, GLM_MAX(c->moe_intermediate_size * GLM_MAX(c->n_shared_experts, 1),
                                     c->num_attention_heads * c->v_head_dim));
    if (be->draft)
        widest = GLM_MAX(widest, 2 * c->hidden_size);
    glm_pool_reserve(p->pool, glm_matmul_scratch_bytes(widest));
    /* element counts are int in the kernels' loops */
    for (int i = 0; i < np; i++)
        if (parts[i].bytes / sizeof(float) > (size_t)INT32_MAX) {
            glm_err(err, errlen, "cpu backend: %d batched tokens need a buffer of %zu elements; at most %d",
                    p->max_num_batched_tokens, parts[i].bytes / sizeof(float), INT32_MAX);
            cpu_destroy(&be->base);
            return NULL;
        }
    size_t ws_bytes = glm_carve(parts, np, NULL, 64);
    if (posix_memalign(&be->arena, 64, ws_bytes) != 0) {
        be->arena = NULL;
        glm_err(err, errlen, "cpu backend: cannot allocate a workspace of %zu bytes", ws_bytes);
        cpu_destroy(&be->base);
        return NULL;
    }
    glm_carve(parts, np, be->arena, 64);
    s->sampler_ws = stab;
    for (int w = 0; w < workers; w++)
        s->sampler_ws[w] = sws[w];

    /* the KV cache: the budget given, or (as vLLM's gpu_memory_utilization) what
     * remains of mem_fraction of the machine's memory once the weights and the
     * workspace are counted, within what is available now */
    size_t per_block = (glm_kv_bytes_per_token(c) + (be->draft ? glm_kv_draft_bytes_per_token(c) : 0)) *
                       (size_t)p->block_size;
    size_t budget = p->kv_bytes;
    if (budget == 0 && p->kv_blocks <= 0) {
        double frac = p->mem_fraction > 0 && p->mem_fraction <= 1 ? p->mem_fraction : 0.9;
        size_t total, avail;
        machine_memory(&total, &avail);
        size_t share = GLM_MIN((size_t)((double)total * frac), avail);
        size_t used = m->weight_bytes + (be->draft ? m->mtp_bytes : 0) + ws_bytes;
        budget = share > used ? share - used : 0;
    }
    size_t nb = p->kv_blocks > 0 ? (size_t)p->kv_blocks : budget / per_block;
    if (nb < 1 || nb > (size_t)INT32_MAX / (size_t)p->block_size) {
        glm_err(err, errlen, "cpu backend: a KV budget of %zu bytes holds %zu blocks of %d tokens (%zu bytes each)",
                budget, nb, p->block_size, per_block);
        cpu_destroy(&be->base);
        return NULL;
    }
    be->kv = glm_kv_cache_create(c, be->draft, (int)nb, p->block_size, err, errlen);
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
