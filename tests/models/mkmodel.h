/*
 * mkmodel.h - what glm-mkmodel's two halves share: the checkpoint writer of
 * mkmodel.c (presets, tensor plan, config / generation_config / safetensors
 * files) and the scripted preset of mkscript.c, which supplies its own
 * embedding and lm_head values and its own tokenizer.
 */
#ifndef GLM_MKMODEL_H
#define GLM_MKMODEL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define MK_PATH_LEN 4096

typedef struct {
    const char *name;
    uint64_t seed;
    int vocab_size, hidden_size, intermediate_size, moe_intermediate_size;
    int num_hidden_layers, first_k_dense_replace;
    int num_attention_heads, q_lora_rank, kv_lora_rank;
    int qk_nope_head_dim, qk_rope_head_dim, v_head_dim;
    int n_routed_experts, n_shared_experts, num_experts_per_tok;
    int n_group, topk_group, norm_topk_prob;
    double routed_scaling_factor;
    int index_topk, index_n_heads, index_head_dim;
    const char *indexer_types; /* one letter per layer: 'F' full, 'S' shared */
    int max_position_embeddings;
    double rope_theta;
    int nextn;    /* 1: write the MTP layer (num_nextn_predict_layers 1); 0: none */
    int scripted; /* 1: o_proj and every down_proj are zero, model.norm is 1, and
                     embed_tokens / lm_head come from the fill callback */
    int residual_log2; /* < 0: the weights that write the residual stream and the inputs
                          of q_a_layernorm / kv_a_layernorm are scaled by 2^residual_log2
                          (see mkmodel.c); 0: no scaling */
    int wide_margins;  /* 1: routing and greedy choices far from ties (see mkmodel.c) */
} mk_preset;

typedef enum { STORE_F32, STORE_BF16, STORE_FP8 } mk_store_mode;

/* Fills the float32 values of tensor `name` (n elements, row-major) for the
 * tensors a scripted preset leaves to its caller. */
typedef void (*mk_fill_fn)(void *ctx, const char *name, float *dst, size_t n);

/* Prints "glm-mkmodel: <message>" and exits 1. */
void mk_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* dst = dir/name (MK_PATH_LEN bytes); dies when too long. */
void mk_path_join(char *dst, const char *dir, const char *name);

/* Creates dir (mkdir -p) and removes the checkpoint files an earlier run may
 * have left there (safetensors of any sharding, the index, config.json). */
void mk_prepare_dir(const char *dir);

/* Writes json (with a trailing newline) to dir/name through a .tmp file. */
void mk_write_json(const char *dir, const char *name, json_t *json, size_t flags);

/*
 * Writes the weights (one file, or `shards` files and an index), then
 * generation_config.json with eos ids eos[0..2] (pad = eos[0]), then
 * config.json last (its presence marks a complete checkpoint), and prints a
 * one-line summary. fill / ctx: used for scripted presets, else NULL.
 * dir must have been through mk_prepare_dir.
 */
void mk_write_checkpoint(const char *dir, const mk_preset *p, mk_store_mode mode, int shards,
                         const int eos[3], mk_fill_fn fill, void *ctx);

/* The scripted preset (mkscript.c): reads the chains of script_path and the
 * tokenizer.json in tok_dir, and writes the scripted checkpoint to out. layers > 1:
 * that many decoder layers, each with a dense MLP of width 2048 whose down_proj is 0
 * like the rest (the same outputs, a main model that costs what a deep one costs
 * against its one MTP layer: speculative decoding's benchmark); 0 or 1: one layer. */
void mk_script_build(const char *script_path, const char *tok_dir, const char *out,
                     mk_store_mode mode, int shards, int layers);

#endif
