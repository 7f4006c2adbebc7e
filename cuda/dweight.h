/*
 * dweight.h - a weight in device memory, in the dtype the CUDA backend keeps
 * it in: F32 or BF16 rows, or FP8 e4m3 rows with their block scales (never a
 * widened copy of an FP8 weight). Every kernel and GEMM that reads a weight
 * takes one of these; dweight.cu uploads them from the mapped checkpoint.
 *
 * C header (the backend's C side and the tests include it); device code reads
 * elements through dweight_dev.cuh.
 */
#ifndef GLM_CUDA_DWEIGHT_H
#define GLM_CUDA_DWEIGHT_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "core/dtype.h"
#include "model/weight.h"

/* A 2-D weight [rows = out features, cols = in features], row-major, in device memory. */
typedef struct {
    const void *data;     /* device [rows, cols] in dtype */
    glm_dtype dtype;      /* GLM_DTYPE_F32, GLM_DTYPE_BF16 or GLM_DTYPE_F8_E4M3 */
    int rows, cols;
    const float *scale;   /* F8_E4M3 only (else NULL): device [ceil(rows/block_r), scale_ld];
                             element (r, c) is q(r, c) * scale[(r/block_r) * scale_ld + c/block_c] */
    int block_r, block_c; /* FP8 block shape (128 x 128 in GLM-5 checkpoints) */
    int scale_ld;         /* >= ceil(cols/block_c); rounded up to a multiple of 4, the row
                             stride cuBLASLt's CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F reads */
} glm_dweight;

/* How a weight is kept on the device. */
typedef enum {
    GLM_DW_NATIVE = 0, /* BF16 as stored, F32 narrowed to BF16, FP8 as stored (--dtype bfloat16) */
    GLM_DW_F32         /* BF16/F32 widened to F32, FP8 as stored (--dtype float32) */
} glm_dw_mode;

/* The dtype w is kept in under mode. */
glm_dtype glm_dweight_dtype(const glm_weight *w, glm_dw_mode mode);

/* Device bytes of w under mode: data, then (FP8) its scales, each 256-byte aligned. */
size_t glm_dweight_bytes(const glm_weight *w, glm_dw_mode mode);

/*
 * Uploads host weight w (the mapped checkpoint) into dst, glm_dweight_bytes(w,
 * mode) bytes of device memory, and describes it in *out. Converted and copied
 * through staging, a pinned host buffer of staging_bytes (>= 1 MiB), a piece at
 * a time on stream, so the host never holds a second copy of the weight.
 * Returns cudaSuccess or the first CUDA error.
 */
cudaError_t glm_dweight_upload(glm_dweight *out, const glm_weight *w, glm_dw_mode mode, void *dst, void *staging,
                               size_t staging_bytes, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
