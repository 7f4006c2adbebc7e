/*
 * dsa.h - the DSA lightning indexer's selection on the device: the CUDA twin
 * of glm_ref_dsa_select (engine/cpu/ref_ops.h states the math): for a token at
 * position pos, all of 0..pos while pos + 1 <= topk, else the topk positions
 * of highest score(p) = sum_h w[t, h] * relu((q[t, h] . k[p]) * scale), ties
 * to the lower position, NaN last, written ascending and -1-padded.
 */
#ifndef GLM_CUDA_DSA_H
#define GLM_CUDA_DSA_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "cuda/paging.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "core/dtype.h"

typedef struct {
    int n_tokens, n_heads, head_dim, topk;
    float scale;
    const float *q;            /* device [n_tokens, n_heads, head_dim] roped */
    const float *w;            /* device [n_tokens, n_heads] head weights, already scaled */
    const void *cache;         /* device [pg.n_slots, head_dim] index keys in cache_dtype */
    glm_dtype cache_dtype;     /* GLM_DTYPE_BF16 or GLM_DTYPE_F32 */
    glm_cu_paging pg;
    int max_ctx;               /* positions < max_ctx (sizes the workspace) */
    int32_t *sel;              /* device [n_tokens, topk] out */
} glm_cu_dsa_params;

/* Device bytes of workspace for the sizes in p (the largest step). */
size_t glm_cu_dsa_workspace(const glm_cu_dsa_params *p);
cudaError_t glm_cu_dsa_select(const glm_cu_dsa_params *p, void *ws, size_t ws_bytes, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
