/*
 * model.h - a GLM-5 checkpoint bound to the forward pass: the config, the
 * mapped safetensors files, and one glm_weight view per tensor the
 * architecture uses, checked by name, shape and dtype.
 *
 * Large weights stay in the mapped files in their stored dtype. Only vectors
 * (norm weights, biases, the router's correction bias) are copied to float32.
 * The MTP ("next-n") layer stored at model.layers.<L> is bound when present
 * (glm_mtp): speculative decoding's draft layer; plain decoding does not run it.
 */
#ifndef GLM_MODEL_H
#define GLM_MODEL_H

#include "model/config.h"
#include "model/weight.h"
#include "model/safetensors.h"

typedef struct {
    /* attention (MLA) */
    float *input_norm;            /* [H] */
    glm_weight q_a;               /* [q_lora, H] */
    float *q_a_norm;              /* [q_lora] */
    glm_weight q_b;               /* [heads * (nope + rope), q_lora] */
    glm_weight kv_a;              /* [kv_lora + rope, H] */
    float *kv_a_norm;             /* [kv_lora] */
    glm_weight kv_b;              /* [heads * (nope + v), kv_lora] */
    glm_weight o;                 /* [H, heads * v] */
    /* DSA indexer; absent (has_indexer 0) on "shared" layers */
    int has_indexer;
    glm_weight idx_wq_b;          /* [index_heads * index_dim, q_lora] */
    glm_weight idx_wk;            /* [index_dim, H] */
    float *idx_k_norm_w, *idx_k_norm_b; /* [index_dim] LayerNorm */
    glm_weight idx_weights_proj;  /* [index_heads, H] */
    /* FFN */
    float *post_norm;             /* [H] */
    int sparse;                   /* MoE layer */
    glm_weight gate, up, down;    /* dense: [I, H], [I, H], [H, I] */
    glm_weight router;            /* [E, H] */
    float *router_bias;           /* [E] e_score_correction_bias */
    glm_weight *exp_gate, *exp_up, *exp_down; /* [E] each: [moeI, H], [moeI, H], [H, moeI] */
    glm_weight sh_gate, sh_up, sh_down;       /* shared expert(s): [moeI*n_shared, H] ... */
} glm_layer;

/*
 * The MTP (multi-token prediction, "next-n") layer at model.layers.<L>, L = num_hidden_layers,
 * as DeepSeek-V3 defines it and vLLM and SGLang run it for GLM-5: for the token at position p,
 *   x = eh_proj([enorm(embed(token p+1)) | hnorm(h_p)])
 * where h_p is the main model's final hidden state at p (after model.norm, what the LM head
 * reads), then one decoder layer (attention with its own latent cache and indexer, MoE) at
 * position p, then head_norm (shared_head.norm); its logits are the model's LM head on that
 * (the checkpoint's shared_head.head and embed_tokens copies are not read: vLLM and SGLang use
 * the main model's). The normed output is also what a chained draft feeds back as h.
 */
typedef struct {
    glm_layer layer;              /* sparse, with its own indexer */
    glm_weight eh_proj;           /* [H, 2H]: columns [0, H) take the embedding, [H, 2H) h */
    float *enorm, *hnorm;         /* [H] */
    float *head_norm;             /* [H] shared_head.norm */
} glm_mtp;

/*
 * The part of the model one rank of tensor parallelism holds (glm_model_shard).
 * A whole model is rank 0 of a world of 1 and holds everything.
 */
typedef struct {
    int rank, world;
    int vocab0, n_vocab;          /* embedding and LM head rows [vocab0, vocab0 + n_vocab) */
    int vocab_stride;             /* ceil(vocab_size / world): rank r's rows start at r * stride */
    int expert0, n_experts;       /* routed experts [expert0, expert0 + n_experts) */
    int heads0;                   /* the first of cfg.num_attention_heads heads held */
} glm_shard;

typedef struct glm_model glm_model;

struct glm_model {
    glm_config cfg;               /* a shard's: num_attention_heads and intermediate_size are
                                     the rank's share; everything else is the model's */
    glm_shard shard;
    const glm_model *whole;       /* a shard: the model it views (which outlives it); else NULL */
    st_checkpoint *ck;
    glm_weight embed;             /* [V, H] */
    float *final_norm;            /* [H] */
    glm_weight lm_head;           /* [V, H] */
    glm_layer *layers;            /* [L] */
    glm_mtp *mtp;                 /* the MTP layer, or NULL when the checkpoint has none */
    size_t weight_bytes;          /* bytes of tensor data bound (a shard: of its views), the
                                     MTP layer's not included */
    size_t mtp_bytes;             /* the MTP layer's */
};

/*
 * Loads config.json (+ generation_config.json) and the safetensors of `dir`
 * and binds every tensor. Returns a model or NULL with one line in err naming
 * the file and the tensor (missing, wrong shape, unsupported dtype, missing
 * FP8 scale). Free with glm_model_free.
 */
glm_model *glm_model_load(const char *dir, char *err, size_t errlen);
void glm_model_free(glm_model *m);

/*
 * Rank `rank`'s share of m for tensor parallelism over `world` ranks: views
 * of m's mapped weights (nothing copied, nothing read yet), so each rank
 * touches only its own bytes. Heads split evenly: q_b_proj and kv_b_proj
 * keep the rank's heads' rows (column-parallel), o_proj their columns
 * (row-parallel); the dense MLP and the shared experts split their
 * intermediate dimension (gate/up rows, down columns); routed experts split
 * by expert (the others' entries in exp_* are left empty: data NULL);
 * embedding and LM head split by vocabulary rows (vocab_stride each, the last
 * rank the rest); q_a_proj, kv_a_proj_with_mqa, the indexer, the router and
 * the norms are the whole model's. Partial sums are reduced by the backend
 * (after o_proj and after the FFN; the embedding's rows sum to the token's).
 *
 * world must divide the attention heads, the routed experts, the dense and
 * shared-expert intermediate sizes, and leave every rank some vocabulary; FP8
 * weights must be cut on their scale blocks. Otherwise NULL with a message
 * naming what does not divide. world 1 gives a view of the whole model.
 * Free with glm_model_free (before m).
 */
glm_model *glm_model_shard(const glm_model *m, int rank, int world, char *err, size_t errlen);

#endif
