/*
 * cuda_row.h - the "cuda" row of test-backend-ops: adapters that take the
 * reference ops' params over host memory, copy the inputs to the device
 * (weights through glm_dweight_upload in float32 mode, the caches in float32),
 * run the CUDA launcher, and copy the outputs back. On machines without a GPU
 * the device is the CPU execution layer (tests/cuda_cpu/).
 */
#ifndef GLM_TEST_CUDA_ROW_H
#define GLM_TEST_CUDA_ROW_H

#ifdef __cplusplus
extern "C" {
#endif

#include "cpu/ref_ops.h"

/* The adapters (ctx unused). cuda_row_init sets each pointer to its adapter, or
 * to NULL where the launcher is not built (the op is then skipped). */
typedef struct {
    void (*mla_absorb)(void *ctx, const glm_ref_mla_absorb_params *p);
    void (*mla_attn)(void *ctx, const glm_ref_mla_attn_params *p);
    void (*mla_expand)(void *ctx, const glm_ref_mla_expand_params *p);
    void (*dsa_select)(void *ctx, const glm_ref_dsa_params *p);
    void (*moe_route)(void *ctx, const glm_ref_moe_route_params *p);
    void (*moe_experts)(void *ctx, const glm_ref_moe_experts_params *p);
    void (*rmsnorm)(void *ctx, const glm_ref_norm_params *p);
    void (*layernorm)(void *ctx, const glm_ref_norm_params *p);
    void (*rope_angles)(void *ctx, const glm_ref_rope_angles_params *p);
    void (*rope)(void *ctx, const glm_ref_rope_params *p);
    /* y[n, rows] = x[n, ldx] w^T through glm_cu_linear; force_plain: the plain FP8 kernel */
    void (*linear)(void *ctx, const glm_weight *w, const float *x, int ldx, int n, float *y, int ldy,
                   int force_plain);
} cuda_row_ops;

void cuda_row_init(cuda_row_ops *ops);
/* The name of the resume order the CPU layer runs in ("forward", ...), or "gpu". */
const char *cuda_row_order(void);

#ifdef __cplusplus
}
#endif

#endif
