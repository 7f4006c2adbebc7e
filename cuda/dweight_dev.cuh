/*
 * dweight_dev.cuh - reading a glm_dweight's elements in device code (and on
 * the CPU execution layer): the exact float32 value of element (r, c), the
 * FP8 block scale applied. Include after cuda/glm_cuda.h.
 */
#ifndef GLM_CUDA_DWEIGHT_DEV_CUH
#define GLM_CUDA_DWEIGHT_DEV_CUH

#include "cuda/dweight.h"

__device__ __forceinline__ float glm_dw_scale(const glm_dweight &w, int r, int c)
{
    return w.scale[(size_t)(r / w.block_r) * w.scale_ld + c / w.block_c];
}

/* Element (r, c) of w as float32. */
__device__ __forceinline__ float glm_dw_at(const glm_dweight &w, int r, int c)
{
    size_t i = (size_t)r * w.cols + c;
    switch (w.dtype) {
    case GLM_DTYPE_F32:
        return static_cast<const float *>(w.data)[i];
    case GLM_DTYPE_BF16:
        return __bfloat162float(static_cast<const __nv_bfloat16 *>(w.data)[i]);
    default: /* GLM_DTYPE_F8_E4M3 */
        return static_cast<float>(static_cast<const __nv_fp8_e4m3 *>(w.data)[i]) * glm_dw_scale(w, r, c);
    }
}

#endif
