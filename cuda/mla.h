/*
 * mla.h - Multi-head Latent Attention on the device, in latent space over the
 * paged latent cache: the CUDA twins of glm_ref_mla_absorb, glm_ref_mla_attn
 * and glm_ref_mla_expand (engine/cpu/ref_ops.h states the math; the same
 * shapes and meanings here, with device pointers).
 *
 * The cache row of a token is [kv_lora latent | rope roped k_pe] in
 * cache_dtype: BF16 by default, F32 under --dtype float32. Queries, outputs
 * and every accumulation are float32.
 */
#ifndef GLM_CUDA_MLA_H
#define GLM_CUDA_MLA_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "cuda/dweight.h"
#include "cuda/paging.h"

#ifdef __cplusplus
extern "C" {
#endif

/* q_lat[t, h, :kv_lora] = W_uk[h]^T q[t, h, :nope]; q_lat[t, h, kv_lora:] = q[t, h, nope:]. */
typedef struct {
    int n_tokens, n_heads, nope, rope, kv_lora, v_dim;
    const glm_dweight *kv_b;   /* [n_heads * (nope + v_dim), kv_lora] (host struct, device data) */
    const float *q;            /* device [n_tokens, n_heads, nope + rope], q_pe roped */
    float *q_lat;              /* device [n_tokens, n_heads, kv_lora + rope] out */
} glm_cu_mla_absorb_params;

cudaError_t glm_cu_mla_absorb(const glm_cu_mla_absorb_params *p, cudaStream_t stream);

/* Latent attention of every (token, head) over its keys (sel's positions, or
 * 0..pos when sel is NULL); a row of sel with no position gives o_lat = 0. */
typedef struct {
    int n_tokens, n_heads, kv_lora, rope;
    float scale;
    const float *q_lat;        /* device [n_tokens, n_heads, kv_lora + rope] */
    const void *cache;         /* device [pg.n_slots, kv_lora + rope] in cache_dtype */
    glm_dtype cache_dtype;     /* GLM_DTYPE_BF16 or GLM_DTYPE_F32 */
    glm_cu_paging pg;
    const int32_t *sel;        /* device [n_tokens, sel_width] ascending positions then -1s, or NULL */
    int sel_width;
    int max_ctx;               /* positions < max_ctx (sizes the workspace) */
    float *o_lat;              /* device [n_tokens, n_heads, kv_lora] out */
} glm_cu_mla_attn_params;

/* Device bytes of workspace for the sizes in p (the largest step: n_tokens,
 * max_ctx, sel NULL covers a selection too). */
size_t glm_cu_mla_attn_workspace(const glm_cu_mla_attn_params *p);
cudaError_t glm_cu_mla_attn(const glm_cu_mla_attn_params *p, void *ws, size_t ws_bytes, cudaStream_t stream);

/* out[t, h*v_dim:(h+1)*v_dim] = W_uv[h] o_lat[t, h]. */
typedef struct {
    int n_tokens, n_heads, nope, kv_lora, v_dim;
    const glm_dweight *kv_b;   /* [n_heads * (nope + v_dim), kv_lora] */
    const float *o_lat;        /* device [n_tokens, n_heads, kv_lora] */
    float *out;                /* device [n_tokens, n_heads * v_dim] out */
} glm_cu_mla_expand_params;

cudaError_t glm_cu_mla_expand(const glm_cu_mla_expand_params *p, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
