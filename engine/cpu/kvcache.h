/*
 * kvcache.h - the CPU backend's paged MLA cache memory (float32).
 *
 * Per layer and token it holds what GLM-5 needs to attend later, never the
 * expanded per-head keys and values:
 *   latent:  [kv_lora_rank] normalised latent (after kv_a_layernorm)
 *            + [qk_rope_head_dim] roped shared key
 *   index_k: [index_head_dim] the DSA indexer key, normalised and roped
 *            (only for layers that run their own indexer)
 * Storage is num_blocks blocks of block_size token slots; slot s of layer l
 * is at latent[l] + s * latent_dim. With a draft (MTP) layer, it is layer
 * num_hidden_layers, with its own indexer keys, at the same slots. Which blocks a sequence owns is the block
 * manager's business (block tables in glm_batch); this is only the memory.
 */
#ifndef GLM_CPU_KVCACHE_H
#define GLM_CPU_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "model/config.h"

typedef struct {
    int n_layers;
    int block_size;       /* tokens per block */
    int num_blocks;
    int latent_dim;       /* kv_lora_rank + qk_rope_head_dim */
    int index_dim;        /* index_head_dim */
    float **latent;       /* [n_layers] -> [num_blocks * block_size, latent_dim] */
    float **index_k;      /* [n_layers] -> [num_blocks * block_size, index_dim], NULL on shared layers */
    float *arena;         /* the one allocation behind both */
    size_t bytes;         /* of the arena */
} glm_kv_cache;

/* Bytes of cache per token (the decoder layers), and of a draft (MTP) layer. */
size_t glm_kv_bytes_per_token(const glm_config *c);
size_t glm_kv_draft_bytes_per_token(const glm_config *c);

/* Allocates the cache of the decoder layers and draft_layers (0 or 1) MTP layers; NULL with a
 * message if the size is absurd. */
glm_kv_cache *glm_kv_cache_create(const glm_config *c, int draft_layers, int num_blocks, int block_size, char *err,
                                  size_t errlen);
void glm_kv_cache_free(glm_kv_cache *kv);

#endif
