/* kvcache.c - see kvcache.h. */
#include "cpu/kvcache.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

static size_t n_indexer_layers(const glm_config *c)
{
    size_t n = 0;
    for (int i = 0; i < c->num_hidden_layers; i++)
        n += c->indexer_types[i] == GLM_INDEXER_FULL;
    return n;
}

size_t glm_kv_bytes_per_token(const glm_config *c)
{
    size_t latent = (size_t)(c->kv_lora_rank + c->qk_rope_head_dim) * (size_t)c->num_hidden_layers;
    size_t index = (size_t)c->index_head_dim * n_indexer_layers(c);
    return (latent + index) * sizeof(float);
}

size_t glm_kv_draft_bytes_per_token(const glm_config *c)
{
    return (size_t)(c->kv_lora_rank + c->qk_rope_head_dim + c->index_head_dim) * sizeof(float);
}

glm_kv_cache *glm_kv_cache_create(const glm_config *c, int draft_layers, int num_blocks, int block_size, char *err,
                                  size_t errlen)
{
    if (num_blocks < 1 || block_size < 1 || block_size > 4096 || draft_layers < 0 || draft_layers > 1) {
        glm_err(err, errlen, "KV cache: invalid geometry (%d blocks of %d tokens)", num_blocks, block_size);
        return NULL;
    }
    size_t slots = (size_t)num_blocks * (size_t)block_size;
    size_t per_token = glm_kv_bytes_per_token(c) + (size_t)draft_layers * glm_kv_draft_bytes_per_token(c);
    size_t total = slots * per_token;
    if (total / per_token != slots || total > ((size_t)1 << 46)) {
        glm_err(err, errlen, "KV cache: %d blocks of %d tokens is too large", num_blocks, block_size);
        return NULL;
    }
    void *arena = NULL;
    if (posix_memalign(&arena, 64, total) != 0) {
        glm_err(err, errlen, "KV cache: cannot allocate %zu bytes (%d blocks of %d tokens)", total, num_blocks,
                block_size);
        return NULL;
    }
    glm_kv_cache *kv = glm_calloc(1, sizeof *kv);
    kv->n_layers = c->num_hidden_layers + draft_layers;
    kv->block_size = block_size;
    kv->num_blocks = num_blocks;
    kv->latent_dim = c->kv_lora_rank + c->qk_rope_head_dim;
    kv->index_dim = c->index_head_dim;
    kv->arena = arena;
    kv->latent = glm_calloc((size_t)kv->n_layers, sizeof(float *));
    kv->index_k = glm_calloc((size_t)kv->n_layers, sizeof(float *));
    float *p = kv->arena;
    for (int l = 0; l < kv->n_layers; l++) {
        kv->latent[l] = p;
        p += slots * (size_t)kv->latent_dim;
        if (l >= c->num_hidden_layers || c->indexer_types[l] == GLM_INDEXER_FULL) {
            kv->index_k[l] = p;
            p += slots * (size_t)kv->index_dim;
        }
    }
    kv->bytes = total;
    return kv;
}

void glm_kv_cache_free(glm_kv_cache *kv)
{
    if (!kv)
        return;
    glm_free_aligned(kv->arena);
    free(kv->latent);
    free(kv->index_k);
    free(kv);
}
