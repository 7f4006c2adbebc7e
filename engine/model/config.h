/*
 * config.h - the hyperparameters of a glm_moe_dsa (GLM-5) checkpoint, read from
 * its config.json and generation_config.json.
 *
 * Every field the architecture uses is required unless it has a documented
 * default in the reference (transformers' GlmMoeDsaConfig); derived fields
 * (indexer_types, mlp_layer_types, head dims) are computed the same way the
 * reference computes them. Any unknown model_type, missing field, wrong JSON
 * type or contradiction is one error line naming the file and the field.
 */
#ifndef GLM_CONFIG_H
#define GLM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define GLM_MAX_EOS 16
#define GLM_MAX_LAYERS 512

typedef enum { GLM_INDEXER_FULL = 0, GLM_INDEXER_SHARED = 1 } glm_indexer_type;

typedef struct {
    int vocab_size;              /* V: 154880 for GLM-5 */
    int hidden_size;             /* H: 6144 */
    int intermediate_size;       /* dense SwiGLU width: 12288 */
    int moe_intermediate_size;   /* per routed expert: 2048 */
    int num_hidden_layers;       /* L (the MTP layers come after, at index L..) */
    int num_attention_heads;     /* 64 */
    int num_key_value_heads;     /* must equal num_attention_heads (MLA) */
    int q_lora_rank;             /* 2048 */
    int kv_lora_rank;            /* 512: the cached latent */
    int qk_nope_head_dim;        /* 192 */
    int qk_rope_head_dim;        /* 64 (also the RoPE dimension) */
    int v_head_dim;              /* 256 */
    int qk_head_dim;             /* nope + rope */

    int n_routed_experts;        /* 256 */
    int n_shared_experts;        /* 1 */
    int num_experts_per_tok;     /* 8 */
    int n_group, topk_group;     /* group-limited routing */
    int norm_topk_prob;          /* bool */
    float routed_scaling_factor; /* 2.5 */
    int first_k_dense_replace;   /* 3 */
    uint8_t *mlp_sparse;         /* [L]: 1 for MoE layers, 0 for dense */

    int index_topk;              /* 2048 */
    int index_n_heads;           /* 32 */
    int index_head_dim;          /* 128 */
    uint8_t *indexer_types;      /* [L]: glm_indexer_type per layer */

    float rms_norm_eps;          /* 1e-5 */
    double rope_theta;           /* 1e6 */
    int max_position_embeddings; /* 202752 */
    int rope_interleave;         /* main attention RoPE on interleaved pairs (GLM-5: true) */
    int indexer_rope_interleave; /* the same for the DSA indexer (GLM-5: true; NeoX halves if false) */
    float attn_scale;            /* softmax scale: qk_head_dim^-0.5 (x mscale^2 under YaRN) */
    int num_nextn_predict_layers;/* MTP layers stored after the main ones */
    int tie_word_embeddings;     /* bool: lm_head shares embed_tokens */

    /* FP8 block quantisation (quantization_config); 0 when not quantised. */
    int fp8;
    int fp8_block[2];            /* [out, in] block size, 128x128 */

    /* generation_config.json (falls back to config.json's eos_token_id). */
    int n_eos;
    int eos_token_ids[GLM_MAX_EOS];
    int pad_token_id;            /* -1 if none */
    int bos_token_id;            /* -1 if none */
    /* generation defaults (vLLM's --generation-config auto); < 0 when not given */
    float default_temperature, default_top_p, default_min_p, default_repetition_penalty;
    int default_top_k;
    int default_max_new_tokens;  /* max_new_tokens: a request's default max_tokens */
} glm_config;

/* Reads DIR/config.json and, when present, DIR/generation_config.json into *c.
 * Returns GLM_OK, or GLM_ERR with "FILE: field 'X': problem" in err.
 * On success the caller owns c and frees it with glm_config_free. */
int glm_config_load(const char *dir, glm_config *c, char *err, size_t errlen);

/* Parses a config.json text (path is used only in messages). Same contract. */
int glm_config_parse(const char *json, size_t len, const char *path, glm_config *c,
                     char *err, size_t errlen);

/* Parses generation_config.json text into an already loaded config. */
int glm_config_parse_generation(const char *json, size_t len, const char *path, glm_config *c,
                                char *err, size_t errlen);

void glm_config_free(glm_config *c);

#endif
