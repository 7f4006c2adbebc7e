/*
 * paging.h - where a token's earlier positions live in the CUDA backend's
 * paged caches: the device twin of glm_ref_paging (engine/cpu/ref_ops.h).
 * Position p of the sequence in block-table row s is slot
 * block_tables[s * max_blocks + p / block_size] * block_size + p % block_size.
 */
#ifndef GLM_CUDA_PAGING_H
#define GLM_CUDA_PAGING_H

#include <stdint.h>

typedef struct {
    const int32_t *block_tables; /* device [n_seqs, max_blocks] block ids */
    int max_blocks;              /* row stride of block_tables */
    int block_size;              /* tokens per block, >= 1 */
    int64_t n_slots;             /* slots in the cache (blocks * block_size) */
    const int32_t *seq_of;       /* device [n_tokens] block-table row of each token */
    const int32_t *positions;    /* device [n_tokens] position of each token in its sequence */
} glm_cu_paging;

#endif
