/*
 * norm.cu - the small per-token kernels of the CUDA forward pass (norm.h).
 *
 * Each is bound by memory, not arithmetic: one block per row for the norms
 * (a block-wide sum in float for RMSNorm, in double for LayerNorm as the
 * reference does, so a shifted mean cannot drift), one thread per element
 * for the rest. RoPE's interleaved layout writes element i from pair i and
 * element i + dim/2 from the same pair, which another thread reads: a block
 * per token stages its heads' rotated slices in shared memory first.
 */
#include "cuda/glm_cuda.h"

#include "cuda/dweight_dev.cuh"
#include "cuda/norm.h"

#define NORM_THREADS 256
#define EW_THREADS 256

static unsigned ew_blocks(size_t n)
{
    size_t b = (n + EW_THREADS - 1) / EW_THREADS;
    return (unsigned)(b < 65535u * 16u ? (b ? b : 1) : 65535u * 16u);
}

/* ---- embedding ---------------------------------------------------------------------- */

__global__ void embed_kernel(glm_dweight table, const int32_t *ids, int vocab0, float *out)
{
    int t = blockIdx.x, H = table.cols, row = ids[t] - vocab0;
    bool mine = row >= 0 && row < table.rows;
    for (int c = threadIdx.x; c < H; c += blockDim.x)
        out[(size_t)t * H + c] = mine ? glm_dw_at(table, row, c) : 0.0f;
}

cudaError_t glm_cu_embed(const glm_cu_embed_params *p, cudaStream_t stream)
{
    if (p->n_tokens <= 0)
        return cudaSuccess;
    return GLM_LAUNCH(embed_kernel, dim3(p->n_tokens), dim3(128), 0, stream, *p->table, p->ids, p->vocab0, p->out);
}

/* ---- norms ---------------------------------------------------------------------------- */

/* The sum of v over the block (blockDim.x a multiple of 32, <= 1024); every thread gets it. */
template <class T> __device__ T block_sum(T v, T *red)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    T s = 0;
    for (int i = 0; i < nw; i++)
        s += red[i];
    __syncthreads(); /* red is reused by the next call */
    return s;
}

/* x += add (when set), then y = rmsnorm(x) * w */
__global__ void rmsnorm_kernel(glm_cu_norm_params p)
{
    __shared__ float red[32];
    int r = blockIdx.x;
    float *x = p.x + (size_t)r * p.ldx;
    float *y = p.y + (size_t)r * p.ldy;
    float ss = 0;
    for (int c = threadIdx.x; c < p.dim; c += blockDim.x) {
        float v = x[c];
        if (p.add) {
            v += p.add[(size_t)r * p.ldadd + c];
            x[c] = v;
        }
        ss += v * v;
    }
    ss = block_sum(ss, red);
    float inv = 1.0f / sqrtf(ss / (float)p.dim + p.eps);
    for (int c = threadIdx.x; c < p.dim; c += blockDim.x) {
        float v = x[c] * inv;
        y[c] = p.w ? p.w[c] * v : v;
    }
}

__global__ void layernorm_kernel(glm_cu_norm_params p)
{
    __shared__ double red[32];
    int r = blockIdx.x;
    float *x = p.x + (size_t)r * p.ldx;
    float *y = p.y + (size_t)r * p.ldy;
    double s = 0;
    for (int c = threadIdx.x; c < p.dim; c += blockDim.x) {
        float v = x[c];
        if (p.add) {
            v += p.add[(size_t)r * p.ldadd + c];
            x[c] = v;
        }
        s += v;
    }
    double mean = block_sum(s, red) / p.dim;
    double q = 0;
    for (int c = threadIdx.x; c < p.dim; c += blockDim.x) {
        double d = x[c] - mean;
        q += d * d;
    }
    double var = block_sum(q, red) / p.dim;
    float inv = (float)(1.0 / sqrt(var + p.eps)), m = (float)mean;
    for (int c = threadIdx.x; c < p.dim; c += blockDim.x) {
        float v = (x[c] - m) * inv;
        if (p.w)
            v *= p.w[c];
        if (p.b)
            v += p.b[c];
        y[c] = v;
    }
}

static unsigned norm_threads(int dim)
{
    unsigned t = 32;
    while (t < NORM_THREADS && (int)t < dim)
        t *= 2;
    return t;
}

cudaError_t glm_cu_rmsnorm(const glm_cu_norm_params *p, cudaStream_t stream)
{
    if (p->n_rows <= 0)
        return cudaSuccess;
    return GLM_LAUNCH(rmsnorm_kernel, dim3(p->n_rows), dim3(norm_threads(p->dim)), 0, stream, *p);
}

cudaError_t glm_cu_layernorm(const glm_cu_norm_params *p, cudaStream_t stream)
{
    if (p->n_rows <= 0)
        return cudaSuccess;
    return GLM_LAUNCH(layernorm_kernel, dim3(p->n_rows), dim3(norm_threads(p->dim)), 0, stream, *p);
}

/* ---- RoPE ------------------------------------------------------------------------------- */

/* cos/sin of (float)pos * (float)theta^(-2i/dim), in double then rounded, as the reference */
__global__ void rope_angles_kernel(glm_cu_rope_angles_params p)
{
    int half = p.dim / 2;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)p.n_tokens * half)
        return;
    int t = (int)(i / half), k = (int)(i % half);
    float inv_freq = (float)(1.0 / pow(p.theta, (double)(2 * k) / (double)p.dim));
    float ang = (float)p.positions[t] * inv_freq;
    p.cos_[i] = (float)cos((double)ang);
    p.sin_[i] = (float)sin((double)ang);
}

cudaError_t glm_cu_rope_angles(const glm_cu_rope_angles_params *p, cudaStream_t stream)
{
    size_t n = (size_t)p->n_tokens * (p->dim / 2);
    if (n == 0)
        return cudaSuccess;
    return GLM_LAUNCH(rope_angles_kernel, dim3(ew_blocks(n)), dim3(EW_THREADS), 0, stream, *p);
}

/* One block per token: every head's rotated slice is read into shared memory,
 * then written rotated (interleaved pairs land de-interleaved). */
__global__ void rope_kernel(glm_cu_rope_params p)
{
    GLM_DYN_SMEM(float, s);
    int t = blockIdx.x, half = p.dim / 2, n = p.n_heads * p.dim;
    float *xt = p.x + (size_t)t * p.n_heads * p.head_stride + p.offset;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        s[i] = xt[(size_t)(i / p.dim) * p.head_stride + i % p.dim];
    __syncthreads();
    const float *cs = p.cos_ + (size_t)t * half, *sn = p.sin_ + (size_t)t * half;
    for (int i = threadIdx.x; i < p.n_heads * half; i += blockDim.x) {
        int h = i / half, k = i % half;
        const float *v = s + h * p.dim;
        float a = p.interleaved ? v[2 * k] : v[k], b = p.interleaved ? v[2 * k + 1] : v[half + k];
        float *o = xt + (size_t)h * p.head_stride;
        o[k] = a * cs[k] - b * sn[k];
        o[half + k] = b * cs[k] + a * sn[k];
    }
}

cudaError_t glm_cu_rope(const glm_cu_rope_params *p, cudaStream_t stream)
{
    if (p->n_tokens <= 0)
        return cudaSuccess;
    size_t smem = sizeof(float) * (size_t)p->n_heads * p->dim;
    if (smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(rope_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess)
            return e;
    }
    return GLM_LAUNCH(rope_kernel, dim3(p->n_tokens), dim3(128), smem, stream, *p);
}

/* ---- elementwise ------------------------------------------------------------------------ */

__global__ void swiglu_kernel(float *g, const float *u, int n_rows, int dim, int ld)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, n = (size_t)n_rows * dim;
    for (; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t j = i / dim * ld + i % dim;
        float x = g[j];
        g[j] = x / (1.0f + expf(-x)) * u[j];
    }
}

cudaError_t glm_cu_swiglu(float *g, const float *u, int n_rows, int dim, int ld, cudaStream_t stream)
{
    size_t n = (size_t)n_rows * dim;
    if (n == 0)
        return cudaSuccess;
    return GLM_LAUNCH(swiglu_kernel, dim3(ew_blocks(n)), dim3(EW_THREADS), 0, stream, g, u, n_rows, dim, ld);
}

__global__ void scale_kernel(float *x, float s, int n_rows, int dim, int ld)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, n = (size_t)n_rows * dim;
    for (; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i / dim * ld + i % dim] *= s;
}

cudaError_t glm_cu_scale(float *x, float s, int n_rows, int dim, int ld, cudaStream_t stream)
{
    size_t n = (size_t)n_rows * dim;
    if (n == 0)
        return cudaSuccess;
    return GLM_LAUNCH(scale_kernel, dim3(ew_blocks(n)), dim3(EW_THREADS), 0, stream, x, s, n_rows, dim, ld);
}

__global__ void gather_kernel(float *out, const float *x, const int32_t *rows, int dim)
{
    int i = blockIdx.x;
    const float *src = x + (size_t)rows[i] * dim;
    for (int c = threadIdx.x; c < dim; c += blockDim.x)
        out[(size_t)i * dim + c] = src[c];
}

cudaError_t glm_cu_gather_rows(float *out, const float *x, const int32_t *rows, int n, int dim, cudaStream_t stream)
{
    if (n <= 0)
        return cudaSuccess;
    return GLM_LAUNCH(gather_kernel, dim3(n), dim3(128), 0, stream, out, x, rows, dim);
}

__global__ void add_kernel(float *y, const float *x, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}

cudaError_t glm_cu_add(float *y, const float *x, size_t n, cudaStream_t stream)
{
    if (n == 0)
        return cudaSuccess;
    return GLM_LAUNCH(add_kernel, dim3(ew_blocks(n)), dim3(EW_THREADS), 0, stream, y, x, n);
}

/* ---- paged cache writes ------------------------------------------------------------------ */

__global__ void cache_write_kernel(glm_cu_cache_write_params p)
{
    int t = blockIdx.x;
    int64_t slot = p.slots[t];
    const float *src = p.src + (size_t)t * p.ld_src;
    for (int c = threadIdx.x; c < p.dim; c += blockDim.x) {
        size_t i = (size_t)slot * p.dim + c;
        if (p.cache_dtype == GLM_DTYPE_BF16)
            static_cast<__nv_bfloat16 *>(p.cache)[i] = __float2bfloat16_rn(src[c]);
        else
            static_cast<float *>(p.cache)[i] = src[c];
    }
}

cudaError_t glm_cu_cache_write(const glm_cu_cache_write_params *p, cudaStream_t stream)
{
    if (p->n_tokens <= 0)
        return cudaSuccess;
    return GLM_LAUNCH(cache_write_kernel, dim3(p->n_tokens), dim3(128), 0, stream, *p);
}
