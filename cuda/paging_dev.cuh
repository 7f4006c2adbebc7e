/*
 * paging_dev.cuh - reading the paged caches in device code (and on the CPU
 * execution layer): the slot of a position, and a cache element as float32
 * whatever the cache's dtype. Include after cuda/glm_cuda.h.
 */
#ifndef GLM_CUDA_PAGING_DEV_CUH
#define GLM_CUDA_PAGING_DEV_CUH

#include "cuda/paging.h"

/* Element i of a cache in CT (float or __nv_bfloat16) as float32. */
template <typename CT> __device__ __forceinline__ float cache_at(const CT *c, size_t i);
template <> __device__ __forceinline__ float cache_at<float>(const float *c, size_t i) { return c[i]; }
template <> __device__ __forceinline__ float cache_at<__nv_bfloat16>(const __nv_bfloat16 *c, size_t i)
{
    return __bfloat162float(c[i]);
}

/* The cache slot of position pos in block-table row seq. */
__device__ __forceinline__ long long page_slot(const glm_cu_paging &pg, int seq, int pos)
{
    int blk = pg.block_tables[(size_t)seq * pg.max_blocks + pos / pg.block_size];
    return (long long)blk * pg.block_size + pos % pg.block_size;
}

#endif
