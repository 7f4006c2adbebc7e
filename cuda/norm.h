/*
 * norm.h - the small per-token kernels of the CUDA forward pass: embedding
 * rows, RMSNorm with the residual add fused in front, LayerNorm, RoPE tables
 * and rotations (interleaved and NeoX), SwiGLU, scaling, and writing new
 * tokens' rows into a paged cache. The math of each is that of the reference
 * op named beside it (engine/cpu/ref_ops.h, engine/cpu/ops.h); activations
 * are float32.
 */
#ifndef GLM_CUDA_NORM_H
#define GLM_CUDA_NORM_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "cuda/dweight.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[t] = table[ids[t] - vocab0] as float32 (glm_weight_rows_f32), or zeros when that row is
 * not in the table (tensor parallelism: another rank's rows of the vocabulary). */
typedef struct {
    int n_tokens;
    const glm_dweight *table;  /* [rows, hidden]: vocabulary rows [vocab0, vocab0 + rows) */
    const int32_t *ids;        /* device [n_tokens], in [0, vocab) */
    float *out;                /* device [n_tokens, hidden] */
    int vocab0;                /* the table's first row's id (0 but for a tensor-parallel shard) */
} glm_cu_embed_params;
cudaError_t glm_cu_embed(const glm_cu_embed_params *p, cudaStream_t stream);

/*
 * Row-wise norm over the first dim elements (glm_ref_rmsnorm / glm_ref_layernorm),
 * with an optional residual add first: when add is not NULL, x += add (written
 * back to x), then y = norm(x). y may be x (same ld).
 */
typedef struct {
    int n_rows, dim;
    float *x;                  /* device [n_rows, ldx]; updated when add is set */
    int ldx;
    const float *add;          /* device [n_rows, ldadd] added to x first, or NULL */
    int ldadd;
    const float *w;            /* device [dim] scale, or NULL */
    const float *b;            /* device [dim] LayerNorm bias, or NULL (always NULL for RMSNorm) */
    float eps;
    float *y;                  /* device [n_rows, ldy] out */
    int ldy;
} glm_cu_norm_params;
cudaError_t glm_cu_rmsnorm(const glm_cu_norm_params *p, cudaStream_t stream);
cudaError_t glm_cu_layernorm(const glm_cu_norm_params *p, cudaStream_t stream);

/* cos/sin tables of glm_ref_rope_angles: inv_freq_i = (float)theta^(-2i/dim),
 * angle = (float)pos * inv_freq_i in float. */
typedef struct {
    int n_tokens, dim;
    double theta;
    const int32_t *positions;  /* device [n_tokens] */
    float *cos_, *sin_;        /* device [n_tokens, dim / 2] out */
} glm_cu_rope_angles_params;
cudaError_t glm_cu_rope_angles(const glm_cu_rope_angles_params *p, cudaStream_t stream);

/* RoPE in place (glm_ref_rope): interleaved pairs written de-interleaved, or NeoX halves. */
typedef struct {
    int n_tokens, n_heads, head_stride, offset, dim, interleaved;
    const float *cos_, *sin_;  /* device [n_tokens, dim / 2] */
    float *x;                  /* device [n_tokens, n_heads, head_stride] in place */
} glm_cu_rope_params;
cudaError_t glm_cu_rope(const glm_cu_rope_params *p, cudaStream_t stream);

/* g = silu(g) * u over n_rows rows of dim (glm_swiglu); g, u: [n_rows, ld]. */
cudaError_t glm_cu_swiglu(float *g, const float *u, int n_rows, int dim, int ld, cudaStream_t stream);

/* x[r, c] *= s for r < n_rows, c < dim; x: [n_rows, ld]. */
cudaError_t glm_cu_scale(float *x, float s, int n_rows, int dim, int ld, cudaStream_t stream);

/* out[i] = x[rows[i]] for i < n (rows of dim floats). */
cudaError_t glm_cu_gather_rows(float *out, const float *x, const int32_t *rows, int n, int dim, cudaStream_t stream);

/* y[i] += x[i] for i < n. */
cudaError_t glm_cu_add(float *y, const float *x, size_t n, cudaStream_t stream);

/* cache[slots[t], :dim] = src[t, :dim] in cache_dtype (BF16 rounded to nearest even, or F32). */
typedef struct {
    int n_tokens, dim;
    const float *src;          /* device [n_tokens, ld_src] */
    int ld_src;
    const int64_t *slots;      /* device [n_tokens] cache slots */
    void *cache;               /* device [n_slots, dim] in cache_dtype */
    glm_dtype cache_dtype;     /* GLM_DTYPE_BF16 or GLM_DTYPE_F32 */
} glm_cu_cache_write_params;
cudaError_t glm_cu_cache_write(const glm_cu_cache_write_params *p, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
