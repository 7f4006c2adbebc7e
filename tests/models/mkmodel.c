/*
 * mkmodel.c - glm-mkmodel: writes small random GLM-5 (glm_moe_dsa) checkpoints
 * in Hugging Face format, for the tests (tiny) and benchmarks (small).
 *
 *   glm-mkmodel --preset tiny|tiny-tp|small|glm5-rank|glm5-rank-mini --dtype f32|bf16|fp8
 *               [--shards N] [--layers N] --out DIR
 *   glm-mkmodel --preset script --script CHAINS.json --tokenizer DIR [--dtype ..] [--layers N] --out DIR
 *
 * --layers N overrides the preset's layer count (indexer_types keeps the
 * preset's letters and continues with 'F'). glm5-rank is GLM-5 at its true
 * widths as one rank of 8-way tensor parallelism holds it (several GB in
 * fp8), for the CUDA benchmark tests/bench/bench_rank.c; glm5-rank-mini is the
 * same structure at test widths. Tensors are made in parallel, one per
 * worker, on every CPU.
 *
 * The script preset is the scripted test checkpoint of mkscript.c (greedy
 * decoding follows given token chains); it shares this file's writer. With
 * --layers N it has N layers that cost real work and change nothing (speculative
 * decoding's benchmark checkpoint, models/script-deep).
 *
 * DIR gets config.json, generation_config.json and model.safetensors, or
 * model-0000K-of-0000N.safetensors shards plus model.safetensors.index.json.
 * Tensor names, shapes and dtypes follow the real GLM-5 checkpoints (including
 * the MTP layer at index num_hidden_layers and, for fp8, F8_E4M3 weights with
 * 128x128-block `weight_scale_inv` tensors), so the same loader code paths run
 * on these as on the real model, and transformers can load them as a reference.
 *
 * The output is bit-identical on every machine. Each tensor's float32 values
 * come from its own xoshiro256** stream, seeded with splitmix64 from
 * preset_seed ^ FNV-1a-64(tensor name), so they do not depend on tensor order
 * or on the dtype. A draw x gives u = ((int32_t)(x >> 40) - 2^23) / 2^23, exact
 * in [-1, 1); values use only float32 +, *, / and sqrtf (all correctly
 * rounded), each rounded separately:
 *   linear weight [out, in]       u * sqrtf(3.0f / in)
 *   embeddings                    u
 *   RMSNorm weights, k_norm.weight 1.0f + 0.1f * u
 *   k_norm.bias                   0.1f * u
 *   mlp.gate.weight (router)      u * sqrtf(3.0f / hidden) * 2.0f
 *   e_score_correction_bias       0.05f * u
 * then, in presets with residual_log2 < 0 (tiny), some of them are multiplied
 * by 2^residual_log2 (exact in float32, see "Residual scale" below).
 * bf16 rounds these to nearest even; fp8 quantises the same float32 values.
 *
 * Residual scale. tiny's residual stream and the inputs of q_a_layernorm and
 * kv_a_layernorm are made small, so that every RMSNorm's epsilon matters and
 * the goldens catch an engine that uses a wrong one (GLM-5 uses rms_norm_eps,
 * 1e-5, for input_layernorm, post_attention_layernorm and model.norm, but 1e-6
 * for q_a_layernorm and kv_a_layernorm). With the plain values every norm's
 * input has a mean square of 0.3 to 5, so an epsilon off by 9e-6 moves the
 * hidden states by 3e-6 to 2e-5 relative, hardly above float32 rounding
 * (~1e-6), and no tolerance tells the bug from a correct engine. Multiplying
 * by S = 2^residual_log2 (tiny: 2^-4)
 *   model.embed_tokens and the MTP layer's embed_tokens and eh_proj,
 *   every layer's o_proj and down_proj (dense MLP, routed and shared experts),
 *   q_a_proj, and the first kv_lora_rank rows of kv_a_proj_with_mqa (the
 *   latent that kv_a_layernorm normalises; the rope rows are left alone)
 * scales the residual stream and those norm inputs by S, their mean squares by
 * S^2 (to 1e-3 .. 3e-2), and changes nothing else: every norm's output, hence
 * every other activation and the logits, keeps its scale. A wrong epsilon in
 * any of the five kinds of RMSNorm then moves some hidden state by 3e-4
 * (model.norm) to 0.23 (q_a_layernorm) relative, 300 to 2e5 times float32
 * rounding (the table: tests/golden/eps_sensitivity.py). 2^-4 rather than 2^-5
 * or 2^-6 (more sensitive still) because its greedy continuations are the
 * clearest: the smallest top-2 logit gap of the goldens' 32 steps is >= 1.8e-3
 * of the row's largest |logit| in all three dtypes. A power of two keeps the products exact, and
 * bf16 rounding and fp8 block quantisation commute with it (except in
 * kv_a_proj_with_mqa's fp8 block, whose scale is set by the unscaled rope rows).
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "core/dtype.h"
#include "core/hash.h"
#include "mkmodel.h"
#include "model/safetensors.h"
#include "backend/sampler.h"
#include "core/threadpool.h"
#include "core/util.h"

#define FP8_BLOCK 128
#define NAME_MAX_LEN 160
#define PATH_LEN MK_PATH_LEN
#define MAX_LAYERS 1000

/* ------------------------------------------------------------------------ */
/* Presets                                                                   */

typedef mk_preset preset;

static const preset presets[] = {
    {
        .name = "tiny", .seed = 0x7469e7f1a5c3b001ull,
        .vocab_size = 4096, .hidden_size = 128, .intermediate_size = 256,
        .moe_intermediate_size = 64, .num_hidden_layers = 4, .first_k_dense_replace = 1,
        .num_attention_heads = 4, .q_lora_rank = 96, .kv_lora_rank = 64,
        .qk_nope_head_dim = 32, .qk_rope_head_dim = 16, .v_head_dim = 32,
        .n_routed_experts = 16, .n_shared_experts = 1, .num_experts_per_tok = 4,
        .n_group = 4, .topk_group = 2, .norm_topk_prob = 1, .routed_scaling_factor = 2.5,
        .index_topk = 16, .index_n_heads = 8, .index_head_dim = 32,
        .indexer_types = "FFSF", .max_position_embeddings = 4096, .rope_theta = 10000.0,
        .nextn = 1,
        .residual_log2 = -4, /* the norms' epsilons must matter: see "Residual scale" */
    },
    /*
     * tiny's shapes with every choice far from a tie, for the CUDA backend's default dtype
     * (BF16/FP8 rounding) against the CPU (tests/cuda/test_cuda_backend.c): no residual scale
     * (nothing amplifies rounding); expert e's e_score_correction_bias is e, so every token
     * routes to the same top experts by a margin of 1 that sigmoid scores (in (0, 1)) cannot
     * overturn, while the weights still come from the scores; index_topk 128, past the tests'
     * contexts, so the indexer keeps every position (no selection to tip); and lm_head's row v is
     * embed_tokens' row (7 v + 3) mod 4096, so the logit of the token whose embedding the
     * final hidden state still carries stands far above the rest: greedy decoding walks a
     * fixed permutation of the vocabulary.
     */
    {
        .name = "tiny-wide", .seed = 0x74696e7977696465ull,
        .vocab_size = 4096, .hidden_size = 128, .intermediate_size = 256,
        .moe_intermediate_size = 64, .num_hidden_layers = 4, .first_k_dense_replace = 1,
        .num_attention_heads = 4, .q_lora_rank = 96, .kv_lora_rank = 64,
        .qk_nope_head_dim = 32, .qk_rope_head_dim = 16, .v_head_dim = 32,
        .n_routed_experts = 16, .n_shared_experts = 1, .num_experts_per_tok = 4,
        .n_group = 4, .topk_group = 2, .norm_topk_prob = 1, .routed_scaling_factor = 2.5,
        .index_topk = 128, .index_n_heads = 8, .index_head_dim = 32,
        .indexer_types = "FFSF", .max_position_embeddings = 4096, .rope_theta = 10000.0,
        .nextn = 1, .wide_margins = 1,
    },
    {
        .name = "small", .seed = 0x736d616c6c5eed02ull,
        .vocab_size = 16384, .hidden_size = 512, .intermediate_size = 1536,
        .moe_intermediate_size = 256, .num_hidden_layers = 8, .first_k_dense_replace = 2,
        .num_attention_heads = 8, .q_lora_rank = 256, .kv_lora_rank = 128,
        .qk_nope_head_dim = 64, .qk_rope_head_dim = 32, .v_head_dim = 64,
        .n_routed_experts = 32, .n_shared_experts = 1, .num_experts_per_tok = 4,
        .n_group = 4, .topk_group = 2, .norm_topk_prob = 1, .routed_scaling_factor = 2.5,
        .index_topk = 256, .index_n_heads = 8, .index_head_dim = 64,
        .indexer_types = "FFFFFFFF", .max_position_embeddings = 8192, .rope_theta = 1000000.0,
        .nextn = 1,
    },
    /*
     * tiny's kind at widths that split 8 ways, for the tensor-parallel tests
     * (tests/cli/tensor_parallel.sh): 16 heads, 16 routed experts, a dense MLP and shared
     * experts 1024 wide, and in fp8 every cut on a 128 x 128 scale block at 2, 4 and 8
     * ranks: a head is 128 rows of q_b_proj (nope 64 + rope 64) and of kv_b_proj (nope 64
     * + v 64), two heads are 128 columns of o_proj, 1024 / 8 = 128, and the vocabulary
     * (4096 / 8 = 512 rows) is BF16 in fp8 checkpoints anyway. The shared expert is
     * 8 x moe_intermediate_size (n_shared_experts 8) so that the routed experts stay
     * small. Its tokenizer is tiny's.
     */
    {
        .name = "tiny-tp", .seed = 0x74696e7974703031ull,
        .vocab_size = 4096, .hidden_size = 128, .intermediate_size = 1024,
        .moe_intermediate_size = 128, .num_hidden_layers = 3, .first_k_dense_replace = 1,
        .num_attention_heads = 16, .q_lora_rank = 96, .kv_lora_rank = 64,
        .qk_nope_head_dim = 64, .qk_rope_head_dim = 64, .v_head_dim = 64,
        .n_routed_experts = 16, .n_shared_experts = 8, .num_experts_per_tok = 4,
        .n_group = 4, .topk_group = 2, .norm_topk_prob = 1, .routed_scaling_factor = 2.5,
        .index_topk = 16, .index_n_heads = 8, .index_head_dim = 128,
        .indexer_types = "FSF", .max_position_embeddings = 4096, .rope_theta = 10000.0,
        .nextn = 1,
        .residual_log2 = -4,
    },
    /*
     * GLM-5 as one rank of 8-way tensor parallelism sees it (docs/architecture.md,
     * "Tensor parallelism"; the benchmark tests/bench/bench_rank.c). GLM-5's values, from
     * transformers' GlmMoeDsaConfig (models/glm_moe_dsa/configuration_glm_moe_dsa.py, whose
     * defaults are zai-org/GLM-5's): vocab_size 154880, hidden_size 6144, intermediate_size
     * 12288, moe_intermediate_size 2048, num_hidden_layers 78, first_k_dense_replace 3,
     * num_attention_heads 64, q_lora_rank 2048, kv_lora_rank 512, qk_nope_head_dim 192,
     * qk_rope_head_dim 64, v_head_dim 256, n_routed_experts 256, n_shared_experts 1,
     * num_experts_per_tok 8, n_group 1, topk_group 1, norm_topk_prob true,
     * routed_scaling_factor 2.5, index_topk 2048, index_n_heads 32, index_head_dim 128,
     * max_position_embeddings 202752, rms_norm_eps 1e-5; rope_theta 1e6 (GLM-5's
     * config.json, docs/architecture.md). The rank's share:
     *   - 8 of the 64 heads (q_b_proj, kv_b_proj column-parallel, o_proj row-parallel);
     *     q_a_proj, kv_a_proj_with_mqa and the whole indexer (32 x 128) replicated;
     *   - 32 of the 256 routed experts (expert parallelism), still top-8: GLM-5 routes with
     *     n_group 1 / topk_group 1 (no group limit), which stays valid for 32 experts, so
     *     every token picks 8 of this rank's 32 (on a real rank it picks 8 of 256 and this
     *     rank computes the ones it holds: here every token's experts are local, the most
     *     work a rank can get);
     *   - the shared expert whole (2048), as the benchmark's brief asks (a column/row split
     *     would give each rank 256 of it);
     *   - the dense MLP split 8 ways: 12288 / 8 = 1536;
     *   - the vocabulary shard of the embedding and the LM head: 154880 / 8 = 19360.
     * 4 layers by default (--layers N), the first dense (first_k_dense_replace 1, GLM-5
     * has 3 of 78) so that both kinds of FFN are measured; every layer runs its own indexer
     * (GLM-5's indexer_types are all "full"); no MTP layer (decoding does not run it).
     * In fp8 (128 x 128 blocks) that is about 4.4 G parameters, 5 GB.
     */
    {
        .name = "glm5-rank", .seed = 0x676c6d3572616e6bull,
        .vocab_size = 154880 / 8, .hidden_size = 6144, .intermediate_size = 12288 / 8,
        .moe_intermediate_size = 2048, .num_hidden_layers = 4, .first_k_dense_replace = 1,
        .num_attention_heads = 64 / 8, .q_lora_rank = 2048, .kv_lora_rank = 512,
        .qk_nope_head_dim = 192, .qk_rope_head_dim = 64, .v_head_dim = 256,
        .n_routed_experts = 256 / 8, .n_shared_experts = 1, .num_experts_per_tok = 8,
        .n_group = 1, .topk_group = 1, .norm_topk_prob = 1, .routed_scaling_factor = 2.5,
        .index_topk = 2048, .index_n_heads = 32, .index_head_dim = 128,
        .indexer_types = "FFFF", .max_position_embeddings = 202752, .rope_theta = 1000000.0,
        .nextn = 0,
    },
    /* glm5-rank's structure (a dense first layer, 32 experts top-8 without groups, a full
     * indexer on every layer, a vocabulary shard, no MTP layer) at widths the CPU execution
     * layer runs in seconds: the benchmark's smoke test (tests/cli/bench_rank.sh). */
    {
        .name = "glm5-rank-mini", .seed = 0x676c6d356d696e69ull,
        .vocab_size = 2048, .hidden_size = 256, .intermediate_size = 192,
        .moe_intermediate_size = 64, .num_hidden_layers = 2, .first_k_dense_replace = 1,
        .num_attention_heads = 8, .q_lora_rank = 128, .kv_lora_rank = 64,
        .qk_nope_head_dim = 32, .qk_rope_head_dim = 16, .v_head_dim = 32,
        .n_routed_experts = 32, .n_shared_experts = 1, .num_experts_per_tok = 8,
        .n_group = 1, .topk_group = 1, .norm_topk_prob = 1, .routed_scaling_factor = 2.5,
        .index_topk = 64, .index_n_heads = 8, .index_head_dim = 32,
        .indexer_types = "FF", .max_position_embeddings = 16384, .rope_theta = 1000000.0,
        .nextn = 0,
    },
};

/* GLM-5's special tokens sit at fixed offsets from the top of its vocabulary. */
#define EOS_OFFSET 60 /* <|endoftext|>, also the pad token */
#define EOS2_OFFSET 53
#define EOS3_OFFSET 51

typedef mk_store_mode store_mode;

static const struct { const char *flag; store_mode mode; } dtype_flags[] = {
    {"f32", STORE_F32}, {"bf16", STORE_BF16}, {"fp8", STORE_FP8},
};

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

void mk_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("glm-mkmodel: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ------------------------------------------------------------------------ */
/* Deterministic values                                                      */

/* The engine's generator (xoshiro256** seeded by splitmix64), one stream per tensor. */
static glm_rng rng_for(uint64_t preset_seed, const char *tensor)
{
    glm_rng r;
    glm_rng_seed(&r, preset_seed ^ glm_fnv1a64(GLM_FNV64_INIT, tensor, strlen(tensor)));
    return r;
}

/* Uniform in [-1, 1), exact: a 24-bit integer over 2^23. */
static float rng_uniform(glm_rng *r)
{
    uint64_t x = glm_rng_next(r);
    return (float)((int32_t)(x >> 40) - (1 << 23)) / 8388608.0f;
}

/* b + a*u with the product rounded on its own (no fused multiply-add), so the
 * value is the same whatever the compiler's contraction settings. */
static float affine(float b, float a, float u)
{
    volatile float t = a * u;
    return b + t;
}

typedef enum {
    INIT_LINEAR,      /* u * sqrtf(3 / in) */
    INIT_EMBED,       /* u */
    INIT_NORM,        /* 1 + 0.1 u */
    INIT_NORM_BIAS,   /* 0.1 u */
    INIT_ROUTER,      /* u * sqrtf(3 / hidden) * 2 */
    INIT_ROUTER_BIAS, /* 0.05 u */
    INIT_ZERO,        /* 0 (scripted presets: o_proj, down_proj) */
    INIT_ONE,         /* 1 (scripted presets: model.norm) */
    INIT_CUSTOM,      /* the plan's fill callback (scripted presets: embed_tokens, lm_head) */
    INIT_ROUTER_RANK, /* e (wide_margins: expert e's bias is its rank) */
    INIT_HEAD_PERM,   /* row v = embed_tokens' row (7 v + 3) mod vocab (wide_margins) */
} init_kind;

/* The float32 values of tensor `name` (n elements; `in` is the input width of
 * a linear weight). */
static void gen_values(const preset *p, const char *name, init_kind init, int64_t in,
                       float *dst, size_t n)
{
    if (init == INIT_HEAD_PERM) { /* embed_tokens' values, rows permuted */
        size_t V = (size_t)p->vocab_size, H = (size_t)p->hidden_size;
        GLM_ASSERT(n == V * H);
        float *e = glm_malloc(sizeof(float) * n);
        gen_values(p, "model.embed_tokens.weight", INIT_EMBED, 0, e, n);
        for (size_t v = 0; v < V; v++)
            memcpy(dst + v * H, e + ((7 * v + 3) % V) * H, sizeof(float) * H);
        free(e);
        return;
    }
    glm_rng r = rng_for(p->seed, name);
    float scale = 1.0f;
    if (init == INIT_LINEAR)
        scale = sqrtf(3.0f / (float)in);
    else if (init == INIT_ROUTER)
        scale = sqrtf(3.0f / (float)p->hidden_size);
    for (size_t i = 0; i < n; i++) {
        float u = rng_uniform(&r);
        switch (init) {
        case INIT_LINEAR: dst[i] = u * scale; break;
        case INIT_EMBED: dst[i] = u; break;
        case INIT_NORM: dst[i] = affine(1.0f, 0.1f, u); break;
        case INIT_NORM_BIAS: dst[i] = 0.1f * u; break;
        case INIT_ROUTER: dst[i] = (u * scale) * 2.0f; break;
        case INIT_ROUTER_BIAS: dst[i] = 0.05f * u; break;
        case INIT_ZERO: dst[i] = 0.0f; break;
        case INIT_ONE: dst[i] = 1.0f; break;
        case INIT_ROUTER_RANK: dst[i] = (float)i; break;
        case INIT_CUSTOM:
        case INIT_HEAD_PERM: GLM_ASSERT(!"no generated values"); break;
        }
    }
}

/*
 * FP8 block quantisation of W [out, in]: per 128x128 block (partial at the
 * edges) s = amax|block| / 448 (1 if the block is all zero), q = e4m3(w / s).
 * Either output may be NULL. scales is [ceil(out/128), ceil(in/128)].
 */
static void quantize_fp8(const float *w, int64_t out, int64_t in, uint8_t *q, float *scales)
{
    int64_t nbi = (in + FP8_BLOCK - 1) / FP8_BLOCK;
    for (int64_t r0 = 0; r0 < out; r0 += FP8_BLOCK) {
        int64_t r1 = GLM_MIN(r0 + FP8_BLOCK, out);
        for (int64_t c0 = 0; c0 < in; c0 += FP8_BLOCK) {
            int64_t c1 = GLM_MIN(c0 + FP8_BLOCK, in);
            float amax = 0.0f;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++)
                    amax = GLM_MAX(amax, fabsf(w[r * in + c]));
            float s = amax > 0.0f ? amax / 448.0f : 1.0f;
            if (scales)
                scales[(r0 / FP8_BLOCK) * nbi + c0 / FP8_BLOCK] = s;
            if (q)
                for (int64_t r = r0; r < r1; r++)
                    for (int64_t c = c0; c < c1; c++)
                        q[r * in + c] = glm_f32_to_e4m3(w[r * in + c] / s);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The tensor plan: every tensor's name, shape, dtype and source values,    */
/* decided before any data is made so shards can be balanced by bytes.      */

typedef enum {
    ROLE_PLAIN,     /* values stored as dtype (F32 or BF16) */
    ROLE_FP8,       /* values quantised to F8_E4M3 */
    ROLE_FP8_SCALE, /* the F32 block scales of the ROLE_FP8 tensor `src` */
} role_kind;

typedef struct {
    char name[NAME_MAX_LEN];
    char src[NAME_MAX_LEN]; /* tensor whose values this is made from */
    role_kind role;
    init_kind init;
    glm_dtype dtype;
    int scale_log2;     /* < 0: the values are multiplied by 2^scale_log2 ... */
    int64_t scale_rows; /* ... in rows [0, scale_rows) ([out, in] weights; 0: all rows) */
    int ndim;
    int64_t shape[2];  /* as stored */
    int64_t vshape[2]; /* of the source values ([out, in] for weights) */
    size_t nbytes;
    int shard;
} plan_entry;

typedef struct {
    const preset *p;
    store_mode mode;
    plan_entry *e;
    size_t n, cap;
    mk_fill_fn fill; /* values of INIT_CUSTOM tensors */
    void *fill_ctx;
} plan;

static plan_entry *plan_push(plan *pl)
{
    if (pl->n == pl->cap) {
        pl->cap = pl->cap ? pl->cap * 2 : 256;
        pl->e = glm_realloc(pl->e, pl->cap * sizeof(plan_entry));
    }
    plan_entry *e = &pl->e[pl->n++];
    memset(e, 0, sizeof(*e));
    return e;
}

static void set_name(char *dst, const char *s)
{
    GLM_ASSERT(strlen(s) < NAME_MAX_LEN);
    strcpy(dst, s);
}

static int64_t numel2(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    return n;
}

/* Adds tensor `name` (1-D [d0] when d1 == 0, else 2-D [d0, d1]). fp8_ok marks
 * the linear weights that fp8 checkpoints store as F8_E4M3. Returns the index
 * of its first plan entry (an fp8 weight's scales follow it). */
static size_t plan_add(plan *pl, const char *name, init_kind init, int64_t d0, int64_t d1, int fp8_ok)
{
    size_t first = pl->n;
    plan_entry *e = plan_push(pl);
    set_name(e->name, name);
    set_name(e->src, name);
    e->init = init;
    e->ndim = d1 ? 2 : 1;
    e->shape[0] = e->vshape[0] = d0;
    e->shape[1] = e->vshape[1] = d1;

    int router = init == INIT_ROUTER || init == INIT_ROUTER_BIAS || init == INIT_ROUTER_RANK;
    if (pl->mode == STORE_F32 || router)
        e->dtype = GLM_DTYPE_F32;
    else if (pl->mode == STORE_FP8 && fp8_ok)
        e->dtype = GLM_DTYPE_F8_E4M3;
    else
        e->dtype = GLM_DTYPE_BF16;
    e->role = e->dtype == GLM_DTYPE_F8_E4M3 ? ROLE_FP8 : ROLE_PLAIN;
    e->nbytes = (size_t)numel2(e->ndim, e->shape) * glm_dtype_size(e->dtype);

    if (e->role == ROLE_FP8) {
        GLM_ASSERT(e->ndim == 2);
        char sname[NAME_MAX_LEN + 16];
        snprintf(sname, sizeof sname, "%s_scale_inv", name);
        plan_entry *s = plan_push(pl); /* may move pl->e: e is not used after this */
        set_name(s->name, sname);
        set_name(s->src, name);
        s->role = ROLE_FP8_SCALE;
        s->init = init;
        s->dtype = GLM_DTYPE_F32;
        s->ndim = 2;
        s->vshape[0] = d0;
        s->vshape[1] = d1;
        s->shape[0] = (d0 + FP8_BLOCK - 1) / FP8_BLOCK;
        s->shape[1] = (d1 + FP8_BLOCK - 1) / FP8_BLOCK;
        s->nbytes = (size_t)numel2(2, s->shape) * 4;
    }
    return first;
}

/* Scales rows [0, rows) (0: all) of the tensor whose plan entries start at
 * `first` by the preset's residual scale (see "Residual scale" at the top);
 * nothing for presets without one. */
static void plan_residual_scale(plan *pl, size_t first, int64_t rows)
{
    if (pl->p->residual_log2 >= 0 || pl->p->scripted)
        return;
    for (size_t i = first; i < pl->n; i++) {
        GLM_ASSERT(strcmp(pl->e[i].src, pl->e[first].name) == 0);
        pl->e[i].scale_log2 = pl->p->residual_log2;
        pl->e[i].scale_rows = rows;
    }
}

/* plan_add with the name built from a printf format. */
static size_t plan_addf(plan *pl, init_kind init, int64_t d0, int64_t d1, int fp8_ok,
                        const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static size_t plan_addf(plan *pl, init_kind init, int64_t d0, int64_t d1, int fp8_ok,
                        const char *fmt, ...)
{
    char name[NAME_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    GLM_ASSERT(k > 0 && k < (int)sizeof name);
    return plan_add(pl, name, init, d0, d1, fp8_ok);
}

/* A SwiGLU MLP under prefix `pre` (e.g. "model.layers.0.mlp"); scripted
 * presets zero its down projection, so it adds nothing to the residual. */
static void plan_mlp(plan *pl, const char *pre, int64_t hidden, int64_t inter)
{
    plan_addf(pl, INIT_LINEAR, inter, hidden, 1, "%s.gate_proj.weight", pre);
    plan_addf(pl, INIT_LINEAR, inter, hidden, 1, "%s.up_proj.weight", pre);
    plan_residual_scale(pl,
                        plan_addf(pl, pl->p->scripted ? INIT_ZERO : INIT_LINEAR, hidden, inter, 1,
                                  "%s.down_proj.weight", pre),
                        0);
}

/* Decoder layer i; i == num_hidden_layers is the MTP (next-n) layer. */
static void plan_layer(plan *pl, int i)
{
    const preset *p = pl->p;
    const int64_t H = p->hidden_size, heads = p->num_attention_heads;
    const int64_t qk = p->qk_nope_head_dim + p->qk_rope_head_dim;
    const int mtp = i == p->num_hidden_layers;
    const int full_indexer = mtp || p->indexer_types[i] == 'F';
    const int dense = !mtp && i < p->first_k_dense_replace;
    char pre[NAME_MAX_LEN];
    snprintf(pre, sizeof pre, "model.layers.%d", i);

    plan_addf(pl, INIT_NORM, H, 0, 0, "%s.input_layernorm.weight", pre);

    plan_residual_scale(pl, plan_addf(pl, INIT_LINEAR, p->q_lora_rank, H, 1, "%s.self_attn.q_a_proj.weight", pre),
                        0);
    plan_addf(pl, INIT_NORM, p->q_lora_rank, 0, 0, "%s.self_attn.q_a_layernorm.weight", pre);
    plan_addf(pl, INIT_LINEAR, heads * qk, p->q_lora_rank, 1, "%s.self_attn.q_b_proj.weight", pre);
    plan_residual_scale(pl,
                        plan_addf(pl, INIT_LINEAR, p->kv_lora_rank + p->qk_rope_head_dim, H, 1,
                                  "%s.self_attn.kv_a_proj_with_mqa.weight", pre),
                        p->kv_lora_rank);
    plan_addf(pl, INIT_NORM, p->kv_lora_rank, 0, 0, "%s.self_attn.kv_a_layernorm.weight", pre);
    plan_addf(pl, INIT_LINEAR, heads * (p->qk_nope_head_dim + p->v_head_dim), p->kv_lora_rank, 1,
              "%s.self_attn.kv_b_proj.weight", pre);
    plan_residual_scale(pl,
                        plan_addf(pl, p->scripted ? INIT_ZERO : INIT_LINEAR, H, heads * p->v_head_dim, 1,
                                  "%s.self_attn.o_proj.weight", pre),
                        0);
    if (full_indexer) {
        const int64_t ih = p->index_n_heads, id = p->index_head_dim;
        plan_addf(pl, INIT_LINEAR, ih * id, p->q_lora_rank, 1, "%s.self_attn.indexer.wq_b.weight", pre);
        plan_addf(pl, INIT_LINEAR, id, H, 1, "%s.self_attn.indexer.wk.weight", pre);
        plan_addf(pl, INIT_NORM, id, 0, 0, "%s.self_attn.indexer.k_norm.weight", pre);
        plan_addf(pl, INIT_NORM_BIAS, id, 0, 0, "%s.self_attn.indexer.k_norm.bias", pre);
        plan_addf(pl, INIT_LINEAR, ih, H, 0, "%s.self_attn.indexer.weights_proj.weight", pre);
    }

    plan_addf(pl, INIT_NORM, H, 0, 0, "%s.post_attention_layernorm.weight", pre);

    char mlp[NAME_MAX_LEN + 32];
    if (dense) {
        snprintf(mlp, sizeof mlp, "%s.mlp", pre);
        plan_mlp(pl, mlp, H, p->intermediate_size);
    } else {
        const int64_t E = p->n_routed_experts;
        plan_addf(pl, INIT_ROUTER, E, H, 0, "%s.mlp.gate.weight", pre);
        plan_addf(pl, p->wide_margins ? INIT_ROUTER_RANK : INIT_ROUTER_BIAS, E, 0, 0,
                  "%s.mlp.gate.e_score_correction_bias", pre);
        for (int e = 0; e < E; e++) {
            snprintf(mlp, sizeof mlp, "%s.mlp.experts.%d", pre, e);
            plan_mlp(pl, mlp, H, p->moe_intermediate_size);
        }
        snprintf(mlp, sizeof mlp, "%s.mlp.shared_experts", pre);
        plan_mlp(pl, mlp, H, (int64_t)p->moe_intermediate_size * p->n_shared_experts);
    }

    if (mtp) { /* scripted presets: eh_proj and the head/embedding copies are the fill callback's */
        const int s = p->scripted;
        plan_addf(pl, s ? INIT_ONE : INIT_NORM, H, 0, 0, "%s.enorm.weight", pre);
        plan_addf(pl, s ? INIT_ONE : INIT_NORM, H, 0, 0, "%s.hnorm.weight", pre);
        plan_residual_scale(pl, plan_addf(pl, s ? INIT_CUSTOM : INIT_LINEAR, H, 2 * H, 1, "%s.eh_proj.weight", pre),
                            0);
        plan_addf(pl, s ? INIT_ONE : INIT_NORM, H, 0, 0, "%s.shared_head.norm.weight", pre);
        plan_addf(pl, s ? INIT_CUSTOM : INIT_LINEAR, p->vocab_size, H, 0, "%s.shared_head.head.weight", pre);
        plan_residual_scale(pl, plan_addf(pl, s ? INIT_CUSTOM : INIT_EMBED, p->vocab_size, H, 0,
                                          "%s.embed_tokens.weight", pre),
                            0);
    }
}

/* Every tensor, in file order: embeddings, decoder layers, final norm and
 * head, then the MTP layer (as GLM-5's own shards put it last). */
static void plan_build(plan *pl)
{
    const preset *p = pl->p;
    const int s = p->scripted;
    plan_residual_scale(pl,
                        plan_add(pl, "model.embed_tokens.weight", s ? INIT_CUSTOM : INIT_EMBED, p->vocab_size,
                                 p->hidden_size, 0),
                        0);
    for (int i = 0; i < p->num_hidden_layers; i++)
        plan_layer(pl, i);
    plan_add(pl, "model.norm.weight", s ? INIT_ONE : INIT_NORM, p->hidden_size, 0, 0);
    plan_add(pl, "lm_head.weight", s ? INIT_CUSTOM : p->wide_margins ? INIT_HEAD_PERM : INIT_LINEAR, p->vocab_size,
             p->hidden_size, 0);
    if (p->nextn)
        plan_layer(pl, p->num_hidden_layers);
}

/* Splits the tensors, in order, into `shards` runs of about equal bytes: a
 * tensor goes to the shard its byte midpoint falls in. */
static void plan_shard(plan *pl, int shards)
{
    uint64_t total = 0, cum = 0;
    for (size_t i = 0; i < pl->n; i++)
        total += pl->e[i].nbytes;
    int *count = glm_calloc((size_t)shards, sizeof(int));
    for (size_t i = 0; i < pl->n; i++) {
        uint64_t mid = cum + pl->e[i].nbytes / 2;
        uint64_t s = total ? mid * (uint64_t)shards / total : 0;
        pl->e[i].shard = (int)GLM_MIN(s, (uint64_t)shards - 1);
        count[pl->e[i].shard]++;
        cum += pl->e[i].nbytes;
    }
    for (int s = 0; s < shards; s++)
        if (count[s] == 0)
            mk_die("--shards %d: too many shards for %zu tensors of this size", shards, pl->n);
    free(count);
}

/* Makes entry e's stored bytes (nbytes of them) into out; for a ROLE_FP8 entry
 * also its block scales into scales_out when not NULL (one generation for both). */
static void make_tensor(const plan *pl, const plan_entry *e, void *out, void *scales_out)
{
    size_t n = (size_t)numel2(e->ndim, e->vshape);
    float *v = e->dtype == GLM_DTYPE_F32 && e->role == ROLE_PLAIN ? out : glm_malloc(n * sizeof(float));
    if (e->init == INIT_CUSTOM) {
        GLM_ASSERT(pl->fill);
        pl->fill(pl->fill_ctx, e->src, v, n);
    } else {
        gen_values(pl->p, e->src, e->init, e->ndim == 2 ? e->vshape[1] : 0, v, n);
    }
    if (e->scale_log2 < 0) { /* exact: a power of two, far from the subnormals */
        size_t end = e->scale_rows ? (size_t)e->scale_rows * (size_t)e->vshape[1] : n;
        GLM_ASSERT(end <= n);
        for (size_t i = 0; i < end; i++)
            v[i] = ldexpf(v[i], e->scale_log2);
    }
    switch (e->role) {
    case ROLE_PLAIN:
        if (e->dtype == GLM_DTYPE_BF16) {
            uint16_t *b = out;
            for (size_t i = 0; i < n; i++)
                b[i] = glm_f32_to_bf16(v[i]);
        }
        break;
    case ROLE_FP8:
        quantize_fp8(v, e->vshape[0], e->vshape[1], out, scales_out);
        break;
    case ROLE_FP8_SCALE:
        quantize_fp8(v, e->vshape[0], e->vshape[1], NULL, out);
        break;
    }
    if (v != out)
        free(v);
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

void mk_path_join(char *dst, const char *dir, const char *name)
{
    int k = snprintf(dst, PATH_LEN, "%s/%s", dir, name);
    if (k < 0 || k >= PATH_LEN)
        mk_die("%s/%s: path too long", dir, name);
}

/* mkdir -p */
static void make_dirs(const char *dir)
{
    char buf[PATH_LEN];
    if (strlen(dir) >= sizeof buf)
        mk_die("%s: path too long", dir);
    strcpy(buf, dir);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        struct stat st;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            mk_die("cannot create directory %s: %s", buf, strerror(errno));
        if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
            mk_die("cannot create directory %s: not a directory", buf);
        *p = c;
        if (c == '\0')
            break;
    }
}

/* Removes what an earlier run may have left in dir: checkpoint files of any
 * sharding, and config.json (written last, so its presence marks a complete
 * checkpoint). */
static void remove_old_outputs(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        mk_die("cannot read directory %s: %s", dir, strerror(errno));
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        int a, b, end = 0;
        int shard = strlen(n) == 32 &&
                    sscanf(n, "model-%5d-of-%5d.safetensors%n", &a, &b, &end) == 2 && end == 32;
        if (shard || strcmp(n, "model.safetensors") == 0 ||
            strcmp(n, "model.safetensors.index.json") == 0 || strcmp(n, "config.json") == 0) {
            char path[PATH_LEN];
            mk_path_join(path, dir, n);
            if (unlink(path) != 0 && errno != ENOENT)
                mk_die("cannot remove %s: %s", path, strerror(errno));
        }
    }
    closedir(d);
}

void mk_write_json(const char *dir, const char *name, json_t *json, size_t flags)
{
    char path[PATH_LEN], tmp[PATH_LEN + 8];
    mk_path_join(path, dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    char *text = json_dumps(json, flags);
    if (!text)
        mk_die("%s: cannot encode JSON", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        mk_die("cannot create %s: %s", tmp, strerror(errno));
    size_t len = strlen(text);
    int ok = fwrite(text, 1, len, f) == len && fputc('\n', f) != EOF;
    ok = (fclose(f) == 0) && ok;
    free(text);
    if (!ok) {
        unlink(tmp);
        mk_die("write failed on %s: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        mk_die("cannot rename %s to %s: %s", tmp, path, strerror(errno));
    }
}

static json_t *int_array(const int *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

#define JSON_FLOAT_FLAGS JSON_REAL_PRECISION(15) /* 0.95 -> 0.95, 10000.0 -> 10000.0 */

static void write_config(const char *dir, const preset *p, store_mode mode, const int eos[3])
{
    const int V = p->vocab_size;
    json_t *c = json_object();
    json_t *arch = json_array();
    json_array_append_new(arch, json_string("GlmMoeDsaForCausalLM"));
    json_object_set_new(c, "architectures", arch);
    json_object_set_new(c, "model_type", json_string("glm_moe_dsa"));
    json_object_set_new(c, "dtype", json_string(mode == STORE_F32 ? "float32" : "bfloat16"));
    json_object_set_new(c, "vocab_size", json_integer(V));
    json_object_set_new(c, "hidden_size", json_integer(p->hidden_size));
    json_object_set_new(c, "intermediate_size", json_integer(p->intermediate_size));
    json_object_set_new(c, "moe_intermediate_size", json_integer(p->moe_intermediate_size));
    json_object_set_new(c, "num_hidden_layers", json_integer(p->num_hidden_layers));
    json_object_set_new(c, "first_k_dense_replace", json_integer(p->first_k_dense_replace));
    json_object_set_new(c, "num_nextn_predict_layers", json_integer(p->nextn));
    json_object_set_new(c, "num_attention_heads", json_integer(p->num_attention_heads));
    json_object_set_new(c, "num_key_value_heads", json_integer(p->num_attention_heads));
    json_object_set_new(c, "q_lora_rank", json_integer(p->q_lora_rank));
    json_object_set_new(c, "kv_lora_rank", json_integer(p->kv_lora_rank));
    json_object_set_new(c, "qk_nope_head_dim", json_integer(p->qk_nope_head_dim));
    json_object_set_new(c, "qk_rope_head_dim", json_integer(p->qk_rope_head_dim));
    json_object_set_new(c, "qk_head_dim", json_integer(p->qk_nope_head_dim + p->qk_rope_head_dim));
    json_object_set_new(c, "head_dim", json_integer(p->qk_rope_head_dim));
    json_object_set_new(c, "v_head_dim", json_integer(p->v_head_dim));
    json_object_set_new(c, "attention_bias", json_false());
    json_object_set_new(c, "attention_dropout", json_real(0.0));
    json_object_set_new(c, "n_routed_experts", json_integer(p->n_routed_experts));
    json_object_set_new(c, "n_shared_experts", json_integer(p->n_shared_experts));
    json_object_set_new(c, "num_experts_per_tok", json_integer(p->num_experts_per_tok));
    json_object_set_new(c, "n_group", json_integer(p->n_group));
    json_object_set_new(c, "topk_group", json_integer(p->topk_group));
    json_object_set_new(c, "norm_topk_prob", json_boolean(p->norm_topk_prob));
    json_object_set_new(c, "routed_scaling_factor", json_real(p->routed_scaling_factor));
    json_object_set_new(c, "scoring_func", json_string("sigmoid"));
    json_object_set_new(c, "topk_method", json_string("noaux_tc"));
    json_object_set_new(c, "index_topk", json_integer(p->index_topk));
    json_object_set_new(c, "index_n_heads", json_integer(p->index_n_heads));
    json_object_set_new(c, "index_head_dim", json_integer(p->index_head_dim));
    json_t *types = json_array();
    for (int i = 0; i < p->num_hidden_layers; i++)
        json_array_append_new(types, json_string(p->indexer_types[i] == 'F' ? "full" : "shared"));
    json_object_set_new(c, "indexer_types", types);
    json_object_set_new(c, "hidden_act", json_string("silu"));
    json_object_set_new(c, "rms_norm_eps", json_real(1e-05));
    json_object_set_new(c, "max_position_embeddings", json_integer(p->max_position_embeddings));
    json_t *rope = json_object();
    json_object_set_new(rope, "rope_theta", json_real(p->rope_theta));
    json_object_set_new(rope, "rope_type", json_string("default"));
    json_object_set_new(c, "rope_parameters", rope);
    json_object_set_new(c, "initializer_range", json_real(0.02));
    json_object_set_new(c, "tie_word_embeddings", json_false());
    json_object_set_new(c, "use_cache", json_true());
    json_object_set_new(c, "bos_token_id", json_null());
    json_object_set_new(c, "eos_token_id", int_array(eos, 3));
    json_object_set_new(c, "pad_token_id", json_integer(eos[0]));
    if (mode == STORE_FP8) {
        json_t *q = json_object();
        json_object_set_new(q, "quant_method", json_string("fp8"));
        json_object_set_new(q, "fmt", json_string("e4m3"));
        json_object_set_new(q, "activation_scheme", json_string("dynamic"));
        const int block[2] = {FP8_BLOCK, FP8_BLOCK};
        json_object_set_new(q, "weight_block_size", int_array(block, 2));
        json_object_set_new(c, "quantization_config", q);
    }
    mk_write_json(dir, "config.json", c, JSON_PRESERVE_ORDER | JSON_INDENT(2) | JSON_FLOAT_FLAGS);
    json_decref(c);
}

static void write_generation_config(const char *dir, const int eos[3])
{
    json_t *g = json_object();
    json_object_set_new(g, "_from_model_config", json_false());
    json_object_set_new(g, "eos_token_id", int_array(eos, 3));
    json_object_set_new(g, "pad_token_id", json_integer(eos[0]));
    json_object_set_new(g, "do_sample", json_true());
    json_object_set_new(g, "temperature", json_real(1.0));
    json_object_set_new(g, "top_p", json_real(0.95));
    mk_write_json(dir, "generation_config.json", g,
               JSON_PRESERVE_ORDER | JSON_INDENT(2) | JSON_FLOAT_FLAGS);
    json_decref(g);
}

#define WAVE_BYTES ((size_t)1 << 30)

/* Tensors [first, end) of the plan being made, the ones of shard `shard` into buf. */
typedef struct {
    const plan *pl;
    int shard;
    size_t first, end;
    void **buf; /* [end - first], NULL for entries of other shards */
} make_wave;

/* One entry of a wave (glm_pool_for's item). An FP8 weight whose scales are the
 * next entry of the same wave and shard makes both; that scale entry then does
 * nothing. Each tensor's values depend only on its name, so the order and the
 * threads change no byte. */
static void make_wave_one(void *ctx, int i, int worker)
{
    (void)worker;
    const make_wave *wv = ctx;
    size_t k = wv->first + (size_t)i;
    const plan_entry *e = &wv->pl->e[k];
    if (e->shard != wv->shard)
        return;
    int paired_next = e->role == ROLE_FP8 && k + 1 < wv->end && wv->pl->e[k + 1].role == ROLE_FP8_SCALE &&
                      wv->pl->e[k + 1].shard == wv->shard;
    int paired_prev = e->role == ROLE_FP8_SCALE && k > wv->first && wv->pl->e[k - 1].role == ROLE_FP8 &&
                      wv->pl->e[k - 1].shard == wv->shard;
    if (paired_prev)
        return; /* made with its weight */
    make_tensor(wv->pl, e, wv->buf[i], paired_next ? wv->buf[i + 1] : NULL);
}

/* Writes the safetensors file(s) and, when sharded, the index. */
static void write_weights(const char *dir, const plan *pl, int shards)
{
    glm_pool *pool = glm_pool_create(0);
    json_t *map = json_object();
    uint64_t total = 0;
    char file[64], path[PATH_LEN], err[GLM_ERRLEN];
    for (int s = 0; s < shards; s++) {
        if (shards == 1)
            snprintf(file, sizeof file, "model.safetensors");
        else
            snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", s + 1, shards);
        mk_path_join(path, dir, file);
        st_writer *w = st_writer_new();
        size_t i = 0;
        while (i < pl->n) {
            /* a wave of this shard's next tensors (WAVE_BYTES of data at most, unless one
             * tensor is larger), made in parallel, then added in order */
            size_t end = i, bytes = 0;
            while (end < pl->n) {
                size_t b = pl->e[end].shard == s ? pl->e[end].nbytes : 0;
                if (bytes > 0 && bytes + b > WAVE_BYTES)
                    break;
                bytes += b;
                end++;
            }
            /* an FP8 weight and its scales (the next entry) stay in one wave */
            if (end < pl->n && pl->e[end].role == ROLE_FP8_SCALE && pl->e[end - 1].role == ROLE_FP8)
                end++;
            make_wave wv = {pl, s, i, end, glm_calloc(end - i, sizeof(void *))};
            for (size_t k = i; k < end; k++)
                if (pl->e[k].shard == s)
                    wv.buf[k - i] = glm_malloc(pl->e[k].nbytes);
            glm_pool_for(pool, (int)(end - i), make_wave_one, &wv);
            for (size_t k = i; k < end; k++) {
                const plan_entry *e = &pl->e[k];
                if (e->shard != s)
                    continue;
                st_writer_add(w, e->name, e->dtype, e->ndim, e->shape, wv.buf[k - i]);
                free(wv.buf[k - i]);
                json_object_set_new(map, e->name, json_string(file));
            }
            free(wv.buf);
            i = end;
        }
        total += st_writer_bytes(w);
        if (st_writer_save(w, path, err, sizeof err) != GLM_OK)
            mk_die("%s", err);
        st_writer_free(w);
    }
    glm_pool_free(pool);
    if (shards > 1) {
        json_t *idx = json_object();
        json_t *meta = json_object();
        json_object_set_new(meta, "total_size", json_integer((json_int_t)total));
        json_object_set_new(idx, "metadata", meta);
        json_object_set_new(idx, "weight_map", map);
        mk_write_json(dir, "model.safetensors.index.json", idx, JSON_SORT_KEYS | JSON_INDENT(2));
        json_decref(idx);
    } else {
        json_decref(map);
    }
}

void mk_prepare_dir(const char *dir)
{
    make_dirs(dir);
    remove_old_outputs(dir);
}

void mk_write_checkpoint(const char *dir, const preset *p, store_mode mode, int shards,
                         const int eos[3], mk_fill_fn fill, void *ctx)
{
    GLM_ASSERT((int)strlen(p->indexer_types) == p->num_hidden_layers);
    GLM_ASSERT(!p->scripted || fill);
    plan pl = {.p = p, .mode = mode, .fill = fill, .fill_ctx = ctx};
    plan_build(&pl);
    plan_shard(&pl, shards);

    write_weights(dir, &pl, shards);
    write_generation_config(dir, eos);
    write_config(dir, p, mode, eos); /* last: marks the checkpoint complete */

    uint64_t params = 0, bytes = 0;
    for (size_t i = 0; i < pl.n; i++) {
        if (pl.e[i].role != ROLE_FP8_SCALE)
            params += (uint64_t)numel2(pl.e[i].ndim, pl.e[i].vshape);
        bytes += pl.e[i].nbytes;
    }
    printf("glm-mkmodel: wrote %s: %s %s, %zu tensors, %llu parameters, %llu bytes in %d file%s\n",
           dir, p->name, dtype_flags[mode].flag, pl.n, (unsigned long long)params,
           (unsigned long long)bytes, shards, shards == 1 ? "" : "s");
    free(pl.e);
}

/* ------------------------------------------------------------------------ */
/* Command line                                                              */

static const char usage[] =
    "usage: glm-mkmodel --preset tiny|tiny-tp|small|glm5-rank|glm5-rank-mini --dtype f32|bf16|fp8 [--shards N]\n"
    "                   [--layers N] --out DIR\n"
    "       glm-mkmodel --preset script --script CHAINS.json --tokenizer DIR [--dtype f32|bf16]\n"
    "                   [--shards N] --out DIR\n";

int main(int argc, char **argv)
{
    const preset *p = NULL;
    int have_mode = 0, script_preset = 0;
    store_mode mode = STORE_F32;
    int shards = 1, layers = 0;
    const char *out = NULL, *script = NULL, *tok_dir = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(a, "--preset") && strcmp(a, "--dtype") && strcmp(a, "--shards") &&
            strcmp(a, "--out") && strcmp(a, "--script") && strcmp(a, "--tokenizer") && strcmp(a, "--layers"))
            mk_die("unknown argument '%s' (try --help)", a);
        if (i + 1 >= argc)
            mk_die("%s needs a value", a);
        const char *v = argv[++i];
        if (strcmp(a, "--preset") == 0) {
            p = NULL;
            script_preset = strcmp(v, "script") == 0;
            for (size_t k = 0; k < sizeof presets / sizeof presets[0]; k++)
                if (strcmp(v, presets[k].name) == 0)
                    p = &presets[k];
            if (!p && !script_preset)
                mk_die("--preset: unknown preset '%s' (tiny, tiny-tp, small, glm5-rank, glm5-rank-mini or script)", v);
        } else if (strcmp(a, "--dtype") == 0) {
            have_mode = 0;
            for (size_t k = 0; k < sizeof dtype_flags / sizeof dtype_flags[0]; k++)
                if (strcmp(v, dtype_flags[k].flag) == 0) {
                    mode = dtype_flags[k].mode;
                    have_mode = 1;
                }
            if (!have_mode)
                mk_die("--dtype: unknown dtype '%s' (f32, bf16 or fp8)", v);
        } else if (strcmp(a, "--shards") == 0) {
            char *end;
            errno = 0;
            long n = strtol(v, &end, 10);
            if (errno || end == v || *end || n < 1 || n > 99999)
                mk_die("--shards: '%s' is not a number from 1 to 99999", v);
            shards = (int)n;
        } else if (strcmp(a, "--layers") == 0) {
            char *end;
            errno = 0;
            long n = strtol(v, &end, 10);
            if (errno || end == v || *end || n < 1 || n > MAX_LAYERS)
                mk_die("--layers: '%s' is not a number from 1 to %d", v, MAX_LAYERS);
            layers = (int)n;
        } else if (strcmp(a, "--script") == 0) {
            script = v;
        } else if (strcmp(a, "--tokenizer") == 0) {
            tok_dir = v;
        } else {
            if (!v[0])
                mk_die("--out: empty directory name");
            out = v;
        }
    }
    if (script_preset) {
        /* float32 by default: the scripted logits are exact in it */
        if (!script || !tok_dir || !out)
            mk_die("--preset script needs --script, --tokenizer and --out (try --help)");
        if (mode == STORE_FP8)
            mk_die("--preset script: --dtype must be f32 or bf16");
        mk_script_build(script, tok_dir, out, mode, shards, layers);
        return 0;
    }
    if (!p || !have_mode || !out)
        mk_die("--preset, --dtype and --out are required (try --help)");
    if (script || tok_dir)
        mk_die("--script and --tokenizer go with --preset script");
    preset custom;
    char types[MAX_LAYERS + 1];
    if (layers > 0) {
        /* the preset with N layers: its indexer letters, then 'F' */
        custom = *p;
        int have = (int)strlen(p->indexer_types);
        for (int i = 0; i < layers; i++)
            types[i] = i < have ? p->indexer_types[i] : 'F';
        types[layers] = '\0';
        custom.num_hidden_layers = layers;
        custom.indexer_types = types;
        if (custom.first_k_dense_replace > layers)
            custom.first_k_dense_replace = layers;
        p = &custom;
    }

    const int V = p->vocab_size;
    const int eos[3] = {V - EOS_OFFSET, V - EOS2_OFFSET, V - EOS3_OFFSET};
    mk_prepare_dir(out);
    mk_write_checkpoint(out, p, mode, shards, eos, NULL, NULL);
    return 0;
}
