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

/* What a cuda linear ran (the linear adapter's *path). */
enum {
    CUDA_ROW_LIN_OTHER = 0,    /* F32 / BF16: cuBLAS */
    CUDA_ROW_LIN_PLAIN = 1,    /* FP8: the plain kernel */
    CUDA_ROW_LIN_LT = 2,       /* FP8: cuBLASLt, every row straight into y */
    CUDA_ROW_LIN_LT_STAGED = 3 /* FP8: cuBLASLt, some rows through its 4-row buffer */
};

/* The adapters (ctx unused); cuda_row_init fills every one. */
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
    /* y[n, n_rows] = x[n, ldx] w[row0:row0+n_rows]^T through glm_cu_linear; force_plain: the
     * plain FP8 kernel. *path: for FP8, CUDA_ROW_LIN_PLAIN, _LT or _LT_STAGED (what ran), else
     * CUDA_ROW_LIN_OTHER. *repeat_ok: the same call repeated ran from the cuBLASLt cache (no
     * heuristic query, nothing created, the cache's layouts bounded by its slots) and gave
     * the same bits. */
    void (*linear)(void *ctx, const glm_weight *w, int row0, int n_rows, const float *x, int ldx, int n, float *y,
                   int ldy, int force_plain, int *path, int *repeat_ok);
} cuda_row_ops;

void cuda_row_init(cuda_row_ops *ops);
/* The name of the resume order the CPU layer runs in ("forward", ...), or "gpu". */
const char *cuda_row_order(void);

#ifdef __cplusplus
}
#endif

#endif
