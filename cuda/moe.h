/*
 * moe.h - GLM-5's MoE on the device: the router and the routed experts, the
 * CUDA twins of glm_ref_moe_route and glm_ref_moe_experts
 * (engine/cpu/ref_ops.h states the math and the tie rules; the same shapes
 * here, with device pointers). Expert weights are read in their kept dtype
 * (F32, BF16, or FP8 with block scales applied exactly), activations and
 * accumulation in float32. The shared expert is not included.
 */
#ifndef GLM_CUDA_MOE_H
#define GLM_CUDA_MOE_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "cuda/dweight.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int n_tokens, n_experts, n_group, topk_group, top_k, norm_topk_prob;
    float scaling;
    const float *logits;       /* device [n_tokens, E] router logits */
    const float *bias;         /* device [E] e_score_correction_bias */
    int32_t *ids;              /* device [n_tokens, top_k] out, ascending */
    float *weights;            /* device [n_tokens, top_k] out */
} glm_cu_moe_route_params;

cudaError_t glm_cu_moe_route(const glm_cu_moe_route_params *p, cudaStream_t stream);

typedef struct {
    int n_tokens, hidden, inter, n_experts, top_k;
    const glm_dweight *gate;   /* DEVICE array [E] of weights [inter, hidden], written once at
                                  load by the caller (so a step copies nothing from the host) */
    const glm_dweight *up;     /* device array [E] of [inter, hidden] */
    const glm_dweight *down;   /* device array [E] of [hidden, inter] */
    const float *x;            /* device [n_tokens, hidden] */
    const int32_t *ids;        /* device [n_tokens, K] distinct ascending ids */
    const float *weights;      /* device [n_tokens, K] */
    float *out;                /* device [n_tokens, hidden] out (overwritten) */
    int expert0, n_local;      /* tensor parallelism: this rank holds experts [expert0, expert0 +
                                  n_local) and out is their share of the sum (the others' table
                                  entries are never read); n_local 0: all E */
} glm_cu_moe_experts_params;

/* Device bytes of workspace for the sizes in p (the largest step). */
size_t glm_cu_moe_experts_workspace(const glm_cu_moe_experts_params *p);
cudaError_t glm_cu_moe_experts(const glm_cu_moe_experts_params *p, void *ws, size_t ws_bytes, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
