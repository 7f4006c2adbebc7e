/*
 * linear.h - y = x W^T against a device weight in its kept dtype: the dense
 * projections of every layer and the LM head.
 *
 *   F32 weight:  cuBLAS GEMM in float32 (CUBLAS_COMPUTE_32F, no TF32).
 *   BF16 weight: x is rounded to BF16 into the workspace, cuBLAS GEMM with
 *                float32 accumulation and a float32 y.
 *   FP8 weight:  x is quantised per 1 x 128 group to e4m3 with one float32
 *                scale per group (amax / 448) into the workspace, and cuBLASLt
 *                multiplies with the weight's 128 x 128 block scales
 *                (CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F) and the
 *                activations' (CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F), for
 *                any token count: the first floor(n/4)*4 rows straight into y,
 *                the last 1-3 padded to 4 rows into a workspace buffer and
 *                copied out. Shapes cuBLASLt's block scaling does not take
 *                (blocks other than 128 x 128, dimensions it refuses, more
 *                than 7 rows into a y whose rows are not 16-byte aligned) run
 *                a plain kernel on the same quantised activations and the
 *                same dequantisation.
 *
 * Results are float32. Nothing is allocated on the device: the workspace is
 * sized once. cuBLASLt's descriptors, layouts and chosen algorithms are kept
 * per GEMM shape in the ctx (a bounded table; its host objects are created
 * when a slot is first filled and reused when it is refilled), so a call with
 * a known shape neither creates anything nor asks the heuristic, nor
 * synchronises: such calls can be captured into a CUDA graph once every
 * shape has run once.
 */
#ifndef GLM_CUDA_LINEAR_H
#define GLM_CUDA_LINEAR_H

#include <stddef.h>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "cuda/dweight.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Slots of a ctx's cuBLASLt table: the distinct FP8 GEMM shapes (weight rows x in x token
 * count) a decode step reuses; a full table replaces its least recently used shape. */
#define GLM_CU_LINEAR_LT_SLOTS 64

/* One cached cuBLASLt GEMM shape (linear.cu's; callers only zero it). */
typedef struct {
    int m, n, k, ldb, ldc;            /* M = weight rows, N = tokens, K; m 0: an empty slot */
    size_t ws_bytes;                  /* the cuBLASLt workspace bound the heuristic was asked with */
    int ok;                           /* 1: algo holds the heuristic's answer; 0: no kernel (fall back) */
    unsigned long last_use;           /* the ctx's tick at the last lookup (replacement order) */
    cublasLtMatrixLayout_t la, lb, lc; /* A = W^T, B = q, C = D = y^T; NULL until the slot's first use */
    cublasLtMatmulAlgo_t algo;
} glm_cu_linear_lt_slot;

/* What the FP8 linears of a ctx did (counted by glm_cu_linear; tests read them). */
typedef struct {
    unsigned long fp8_lt;             /* FP8 linears run wholly by cuBLASLt */
    unsigned long fp8_lt_staged;      /* of those, with rows through the 4-row buffer */
    unsigned long fp8_plain;          /* FP8 linears run by the plain kernel */
    unsigned long lt_heuristic;       /* heuristic queries (a shape not in the table) */
    unsigned long lt_layouts_created; /* matrix layouts created (3 per slot at most) */
} glm_cu_linear_stats;

/* The cuBLASLt state of a ctx (linear.cu's; callers only zero it). */
typedef struct {
    int arch;                            /* 0: not asked yet; 1: the device is sm_90; -1: it is not */
    unsigned long tick;                  /* lookups so far (the slots' replacement order) */
    cublasLtMatmulDesc_t desc;           /* the FP8 "TN" block-scaled matmul, scale pointers set per call */
    cublasLtMatmulPreference_t pref;
    glm_cu_linear_lt_slot slot[GLM_CU_LINEAR_LT_SLOTS];
} glm_cu_linear_lt_cache;

/* The fields after a ctx's first five start zeroed where C++ code sets only those five
 * ({blas, lt, lt_ws, lt_ws_bytes, force_plain_fp8}); C code zeroes the rest itself. */
#ifdef __cplusplus
#define GLM_CU_LINEAR_ZERO = {}
#else
#define GLM_CU_LINEAR_ZERO
#endif

/*
 * The libraries' handles and workspace a linear runs with, and its cuBLASLt cache: one per
 * stream (not shared between threads without a lock). Set the first five fields, the rest
 * zero; glm_cu_linear_ctx_release frees what the cache created (before cublasLtDestroy).
 */
typedef struct {
    cublasHandle_t blas;      /* bound to the stream by the caller */
    cublasLtHandle_t lt;
    void *lt_ws;              /* device scratch cuBLASLt may use, may be NULL */
    size_t lt_ws_bytes;
    int force_plain_fp8;      /* tests: the plain FP8 kernel even where cuBLASLt would run */
    int lt_cache_slots GLM_CU_LINEAR_ZERO;  /* slots of the cache in use: 0 = all; tests set
                                               fewer (>= 2) to exercise replacement */
    glm_cu_linear_stats stats GLM_CU_LINEAR_ZERO;
    glm_cu_linear_lt_cache lt_cache GLM_CU_LINEAR_ZERO;
} glm_cu_linear_ctx;

typedef struct {
    int n;                    /* rows of x (tokens), >= 0 (0: nothing to do) */
    const glm_dweight *w;     /* [out, in] weight, host struct describing device memory, not NULL */
    int row0, n_rows;         /* rows [row0, row0 + n_rows) of w: y's n_rows columns */
    const float *x;           /* device [n, ldx], first w->cols columns read, not NULL */
    int ldx;                  /* >= w->cols */
    float *y;                 /* device [n, ldy] out, columns [0, n_rows) written, not NULL */
    int ldy;                  /* >= n_rows */
} glm_cu_linear_params;

/* Device bytes of workspace a linear of w with up to max_n rows needs. */
size_t glm_cu_linear_workspace(const glm_dweight *w, int max_n);

/*
 * Runs y = x W[row0:row0+n_rows]^T on stream. 0, or -1 with a message in err. A shape new to
 * ctx creates its cuBLASLt layouts (host memory) and asks the heuristic; a known one does
 * neither. Never synchronises the stream, never allocates device memory.
 */
int glm_cu_linear(glm_cu_linear_ctx *ctx, const glm_cu_linear_params *p, void *ws, size_t ws_bytes,
                  cudaStream_t stream, char *err, size_t errlen);

/* Destroys what ctx's cuBLASLt cache created and empties it (a zeroed ctx: nothing). */
void glm_cu_linear_ctx_release(glm_cu_linear_ctx *ctx);

#ifdef __cplusplus
}
#endif

#endif
