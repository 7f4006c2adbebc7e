/*
 * ref_ops.h - the reference ops of GLM-5's forward pass: the CPU backend's own
 * computation of MLA attention, DSA selection, MoE routing and experts, norms
 * and RoPE, one public function per op, so that every other backend (CUDA)
 * can be checked against it one op at a time (tests/backend/).
 *
 * The contract of every op:
 *  - One params struct describes the call. Each pointer field states its
 *    shape and whether it may be NULL; sizes are element counts, row-major.
 *  - `pool` may be NULL (the op runs on the calling thread). The result is
 *    bitwise the same for any pool: work is split so that every output
 *    element is computed by one task in a fixed order.
 *  - Nothing is allocated. An op that needs scratch has
 *    glm_ref_X_workspace(params, n_workers), the bytes it needs for the
 *    sizes in params (fill them with the largest a step may use to size a
 *    workspace once at create), with n_workers = glm_pool_size(pool); the op
 *    takes that memory as `ws` (any alignment; ws_size is checked).
 *  - Inputs are trusted (the batch was validated once): a violated shape or
 *    range stops through GLM_ASSERT, never reads out of bounds.
 *  - Every sum runs in the order cpu_backend.c has always used (glm_dot's
 *    fixed lanes, ascending key position, ascending expert id), so the CPU
 *    backend's logits do not change by a bit when it calls these ops.
 */
#ifndef GLM_REF_OPS_H
#define GLM_REF_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/threadpool.h"
#include "cpu/ops.h"

/* ---- paged caches ---------------------------------------------------------- */

/*
 * Where a token's earlier positions live. Position p of the sequence in
 * row s of block_tables is slot block_tables[s * max_blocks + p / block_size]
 * * block_size + p % block_size of the cache.
 */
typedef struct {
    const int32_t *block_tables; /* [n_seqs, max_blocks] block ids, not NULL */
    int max_blocks;              /* row stride of block_tables */
    int block_size;              /* tokens per block, >= 1 */
    int64_t n_slots;             /* slots in the cache (blocks * block_size): bound checked */
    const int32_t *seq_of;       /* [n_tokens] block-table row of each token, not NULL */
    const int32_t *positions;    /* [n_tokens] position of each token in its sequence, not NULL */
} glm_ref_paging;

/* ---- MLA (absorbed, latent space) ------------------------------------------ */

/*
 * Query absorption. For every token t and head h:
 *   q_lat[t, h, :kv_lora]  = W_uk[h]^T q[t, h, :nope]
 *   q_lat[t, h, kv_lora:]  = q[t, h, nope:]          (q_pe, already roped)
 * where W_uk[h] = kv_b rows [h * (nope + v_dim), h * (nope + v_dim) + nope).
 * Each element is glm_dot over nope in order. One task per head.
 */
typedef struct {
    int n_tokens;
    int n_heads;               /* heads of this rank */
    int nope;                  /* qk_nope_head_dim */
    int rope;                  /* qk_rope_head_dim */
    int kv_lora;               /* kv_lora_rank */
    int v_dim;                 /* v_head_dim */
    const glm_weight *kv_b;    /* [n_heads * (nope + v_dim), kv_lora], not NULL */
    const float *q;            /* [n_tokens, n_heads, nope + rope], q_pe roped, not NULL */
    float *q_lat;              /* [n_tokens, n_heads, kv_lora + rope] out, not NULL */
} glm_ref_mla_absorb_params;

/* 2 * nope * kv_lora floats per worker (a head's W_uk, and transposed). */
size_t glm_ref_mla_absorb_workspace(const glm_ref_mla_absorb_params *p, int n_workers);
void glm_ref_mla_absorb(glm_pool *pool, const glm_ref_mla_absorb_params *p, void *ws, size_t ws_size);

/*
 * Attention in latent space over the paged latent cache. For token t (in
 * sequence seq_of[t] at position pos = positions[t]) and head h, over its
 * keys j (sel's positions in order, or 0..pos when sel is NULL):
 *   s_j = (q_lat[t, h] . cache[slot(j)]) * scale      (glm_dot over kv_lora + rope)
 *   o_lat[t, h] = sum_j softmax(s)_j * cache[slot(j)][:kv_lora]   (ascending j)
 * A row of sel with no position gives o_lat = 0. Slots of positions not
 * selected are never read. One task per (token, head).
 */
typedef struct {
    int n_tokens;
    int n_heads;
    int kv_lora;
    int rope;
    float scale;               /* softmax scale: qk_head_dim^-0.5 (config attn_scale) */
    const float *q_lat;        /* [n_tokens, n_heads, kv_lora + rope], not NULL */
    const float *cache;        /* [pg.n_slots, kv_lora + rope] latent | roped k_pe, not NULL */
    glm_ref_paging pg;
    const int32_t *sel;        /* [n_tokens, sel_width] positions <= pos, ascending, then -1s;
                                  NULL = every position 0..pos */
    int sel_width;             /* index_topk; unused when sel is NULL */
    int max_ctx;               /* bound: positions[t] < max_ctx (sizes the workspace) */
    float *o_lat;              /* [n_tokens, n_heads, kv_lora] out, not NULL */
} glm_ref_mla_attn_params;

/* One float per key per worker: min(sel_width, max_ctx) with a selection, max_ctx
 * without (so a size taken with sel NULL covers both). */
size_t glm_ref_mla_attn_workspace(const glm_ref_mla_attn_params *p, int n_workers);
void glm_ref_mla_attn(glm_pool *pool, const glm_ref_mla_attn_params *p, void *ws, size_t ws_size);

/*
 * Value expansion: out[t, h*v_dim : (h+1)*v_dim] = W_uv[h] o_lat[t, h], where
 * W_uv[h] = kv_b rows [h * (nope + v_dim) + nope, (h + 1) * (nope + v_dim)):
 * one glm_matmul job per head, all in one parallel loop.
 */
typedef struct {
    int n_tokens;
    int n_heads;
    int nope;
    int kv_lora;
    int v_dim;
    const glm_weight *kv_b;    /* [n_heads * (nope + v_dim), kv_lora], not NULL */
    const float *o_lat;        /* [n_tokens, n_heads, kv_lora], not NULL */
    float *out;                /* [n_tokens, n_heads * v_dim] out, not NULL */
} glm_ref_mla_expand_params;

/* The job table: n_heads jobs and n_heads + 1 task starts. */
size_t glm_ref_mla_expand_workspace(const glm_ref_mla_expand_params *p, int n_workers);
void glm_ref_mla_expand(glm_pool *pool, const glm_ref_mla_expand_params *p, void *ws, size_t ws_size);

/* ---- DSA indexer selection --------------------------------------------------- */

/*
 * The lightning indexer's choice for every token t at position pos:
 *  - pos + 1 <= topk: sel[t] = 0, 1, ..., pos, then -1s (no scoring);
 *  - else score(p) = sum_h w[t, h] * relu((q[t, h] . cache[slot(p)]) * scale)
 *    for p in 0..pos (glm_dot, heads in order), and sel[t] = the topk best
 *    (ties: lower position first; NaN ranks last), ascending.
 * One task per token.
 */
typedef struct {
    int n_tokens;
    int n_heads;               /* index_n_heads */
    int head_dim;              /* index_head_dim */
    int topk;                  /* index_topk: the width of sel */
    float scale;               /* inside the ReLU: index_head_dim^-0.5 */
    const float *q;            /* [n_tokens, n_heads, head_dim] roped, not NULL */
    const float *w;            /* [n_tokens, n_heads] head weights, already scaled, not NULL */
    const float *cache;        /* [pg.n_slots, head_dim] normalised, roped index keys, not NULL */
    glm_ref_paging pg;
    int max_ctx;               /* bound: positions[t] < max_ctx (sizes the workspace) */
    int32_t *sel;              /* [n_tokens, topk] out: ascending positions, then -1s, not NULL */
} glm_ref_dsa_params;

/* 3 * max_ctx floats per worker (scores and glm_topk's scratch); almost nothing
 * while max_ctx <= topk. */
size_t glm_ref_dsa_workspace(const glm_ref_dsa_params *p, int n_workers);
void glm_ref_dsa_select(glm_pool *pool, const glm_ref_dsa_params *p, void *ws, size_t ws_size);

/* ---- MoE ------------------------------------------------------------------------ */

/*
 * Router: for each token, score_e = sigmoid(logit_e), choice_e = score_e +
 * bias_e; group score = sum of the two best choices of each of n_group equal
 * groups (the best one when a group has one expert); the topk_group best
 * groups (ties: lower group) are kept; the top_k best experts of those by
 * choice (ties: lower id) are chosen, ids ascending; weight = score_e,
 * divided by (sum of the chosen scores + 1e-20) when norm_topk_prob, times
 * scaling. No workspace (per-token arrays on the stack).
 */
typedef struct {
    int n_tokens;
    int n_experts;             /* E */
    int n_group;               /* divides E */
    int topk_group;            /* 1..n_group */
    int top_k;                 /* num_experts_per_tok, <= topk_group * E / n_group */
    int norm_topk_prob;        /* bool */
    float scaling;             /* routed_scaling_factor */
    const float *logits;       /* [n_tokens, E] router logits, not NULL */
    const float *bias;         /* [E] e_score_correction_bias, not NULL */
    int32_t *ids;              /* [n_tokens, top_k] out: ascending expert ids, not NULL */
    float *weights;            /* [n_tokens, top_k] out, not NULL */
} glm_ref_moe_route_params;

void glm_ref_moe_route(glm_pool *pool, const glm_ref_moe_route_params *p);

/*
 * Routed experts: out[t] = sum_k weights[t, k] * down_e(silu(gate_e x[t]) *
 * up_e x[t]), e = ids[t, k], summed in k order (ascending id). Assignments are
 * grouped by expert so each expert's weights are read once per step: gate and
 * up of every active expert in one parallel loop, then down. The shared
 * expert is not included (the caller adds it). An expert whose gate has no
 * data is another tensor-parallel rank's (glm_model_shard): its terms are left
 * out, so out is this rank's share of the sum.
 */
typedef struct {
    int n_tokens;
    int hidden;                /* H */
    int inter;                 /* moe_intermediate_size */
    int n_experts;             /* E */
    int top_k;                 /* K */
    const glm_weight *gate;    /* [E] of [inter, hidden], not NULL */
    const glm_weight *up;      /* [E] of [inter, hidden], not NULL */
    const glm_weight *down;    /* [E] of [hidden, inter], not NULL */
    const float *x;            /* [n_tokens, hidden], not NULL */
    const int32_t *ids;        /* [n_tokens, K] distinct ascending ids in [0, E), not NULL */
    const float *weights;      /* [n_tokens, K], not NULL */
    float *out;                /* [n_tokens, hidden] out (overwritten), not NULL */
} glm_ref_moe_experts_params;

/* n_tokens * K rows of (2 * inter + hidden) floats, plus index and job tables. */
size_t glm_ref_moe_experts_workspace(const glm_ref_moe_experts_params *p, int n_workers);
void glm_ref_moe_experts(glm_pool *pool, const glm_ref_moe_experts_params *p, void *ws, size_t ws_size);

/* ---- norms and RoPE ---------------------------------------------------------------- */

/*
 * Row-wise norms over the first dim elements of each row:
 *   RMSNorm:   y = x / sqrt(mean(x^2) + eps) * w                 (glm_rmsnorm)
 *   LayerNorm: y = (x - mean) / sqrt(var + eps) * w + b          (glm_layernorm)
 * y may be x (same ld): in place.
 */
typedef struct {
    int n_rows;
    int dim;
    const float *x;            /* [n_rows, ldx], not NULL */
    int ldx;                   /* >= dim */
    const float *w;            /* [dim], may be NULL (no scale) */
    const float *b;            /* [dim] LayerNorm bias, may be NULL; must be NULL for RMSNorm */
    float eps;
    float *y;                  /* [n_rows, ldy] out, may equal x, not NULL */
    int ldy;                   /* >= dim */
} glm_ref_norm_params;

void glm_ref_rmsnorm(glm_pool *pool, const glm_ref_norm_params *p);
void glm_ref_layernorm(glm_pool *pool, const glm_ref_norm_params *p);

/*
 * cos/sin tables: inv_freq[i] = (float)theta^(-2i/dim), angle = (float)pos *
 * inv_freq[i] in float (as transformers computes it), cos/sin of that angle.
 */
typedef struct {
    int n_tokens;
    int dim;                   /* the rotated width (qk_rope_head_dim), even */
    double theta;              /* rope_theta */
    const int32_t *positions;  /* [n_tokens], not NULL */
    float *cos_;               /* [n_tokens, dim / 2] out, not NULL */
    float *sin_;               /* [n_tokens, dim / 2] out, not NULL */
} glm_ref_rope_angles_params;

void glm_ref_rope_angles(const glm_ref_rope_angles_params *p);

/*
 * RoPE in place on x[t, h, offset : offset + dim] for every token and head.
 * interleaved: pairs (x[2i], x[2i+1]) rotate by angle i and are written
 * de-interleaved [x0', x2', ... | x1', x3', ...] (glm_rope_interleaved);
 * otherwise NeoX halves (x[i], x[i + dim/2]) (glm_rope_neox).
 */
typedef struct {
    int n_tokens;
    int n_heads;
    int head_stride;           /* floats per head; a token is n_heads * head_stride */
    int offset;                /* first rotated element inside a head */
    int dim;                   /* rotated width, even, offset + dim <= head_stride */
    int interleaved;           /* bool */
    const float *cos_;         /* [n_tokens, dim / 2], not NULL */
    const float *sin_;         /* [n_tokens, dim / 2], not NULL */
    float *x;                  /* [n_tokens, n_heads, head_stride] in place, not NULL */
} glm_ref_rope_params;

void glm_ref_rope(glm_pool *pool, const glm_ref_rope_params *p);

#endif
