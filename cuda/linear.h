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
 *                activations' (CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F).
 *                Shapes cuBLASLt's block scaling does not take (blocks other
 *                than 128 x 128, dimensions it refuses) run a plain kernel on
 *                the same quantised activations and the same dequantisation.
 *
 * Results are float32. Nothing is allocated: the workspace is sized once.
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

/* The libraries' handles and workspace a linear runs with (one per stream). */
typedef struct {
    cublasHandle_t blas;      /* bound to the stream by the caller */
    cublasLtHandle_t lt;
    void *lt_ws;              /* device scratch cuBLASLt may use, may be NULL */
    size_t lt_ws_bytes;
    int force_plain_fp8;      /* tests: the plain FP8 kernel even where cuBLASLt would run */
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

/* Runs y = x W[row0:row0+n_rows]^T on stream. 0, or -1 with a message in err. */
int glm_cu_linear(const glm_cu_linear_ctx *ctx, const glm_cu_linear_params *p, void *ws, size_t ws_bytes,
                  cudaStream_t stream, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
