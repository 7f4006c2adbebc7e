/*
 * dsa.cu - the DSA lightning indexer's selection on the device (dsa.h), the
 * twin of glm_ref_dsa_select: for each token, all of 0..pos while
 * pos + 1 <= topk, else the topk positions of highest
 * score(p) = sum_h w[t, h] * relu((q[t, h] . k[p]) * scale), ties to the
 * lower position, NaN ranked as -inf (glm_topk), written ascending, -1-padded.
 *
 * Two kernels per chunk of tokens:
 *  - scores: block (tile of 64 positions, token), 256 threads. The token's
 *    queries [heads, dim] and the tile's keys [64, dim] (float32, odd row
 *    stride: no bank conflicts) sit in shared memory; thread (key, head
 *    quarter) computes the ReLU-weighted dots of its heads four at a time,
 *    and the four quarters are summed in a fixed order. Scores go to the
 *    workspace, [chunk tokens, max_ctx] floats. Tokens with pos + 1 <= topk,
 *    and tiles past pos, return at once: no slot past pos is read.
 *  - top-k: block per token, 1024 threads. Scores become order-preserving
 *    32-bit keys (NaN -> -inf, -0 -> +0, so equal values compare equal as in
 *    glm_topk); a radix select (4 passes of 8 bits, shared-memory histograms)
 *    finds the k-th largest key T and how many keys equal to T are taken;
 *    then one ordered pass over 0..pos keeps every key > T and the first
 *    (lowest-position) keys == T, compacted by warp ballots and a prefix over
 *    warps, so the output is ascending with no sort. The choice is exactly
 *    the reference's for equal score values.
 *
 * Workspace: the scores of up to `chunk` tokens, chunk = min(n_tokens,
 * DSA_WS_CAP_FLOATS / max_ctx) (at least 1), chunk * max_ctx floats; a step
 * with more tokens runs chunk by chunk. At GLM-5 (max_ctx 202752, 8192 tokens
 * per step) that is 82 tokens per chunk, 64 MiB. Nothing when max_ctx <= topk
 * (no token is ever scored). The launcher takes as many tokens per chunk as
 * ws_bytes holds, so a smaller workspace (>= one token's max_ctx floats)
 * works too, in more chunks.
 */
#include "cuda/glm_cuda.h"

#include <math.h>
#include <string.h>

#include "cuda/paging_dev.cuh"
#include "cuda/dsa.h"

#define SMEM_DEFAULT_MAX (48 * 1024) /* above this a kernel needs the opt-in attribute */
#define DSA_WS_CAP_FLOATS ((size_t)1 << 24) /* 64 MiB of scores */
#define DSA_MAX_CHUNK 65535                 /* grid y limit */

/* A score as a key whose unsigned order is the score order of glm_topk: NaN as -inf,
 * -0 as +0 (equal scores, equal keys). */
__host__ __device__ __forceinline__ unsigned score_key(float f)
{
    if (f != f)
        f = -INFINITY;
    if (f == 0.0f)
        f = 0.0f;
    unsigned u;
#if defined(__CUDA_ARCH__)
    u = __float_as_uint(f);
#else
    memcpy(&u, &f, sizeof u);
#endif
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* ---- scores ------------------------------------------------------------------------- */

#define SC_TK 64        /* positions per block */
#define SC_THREADS 256  /* (key = tid % 64, head quarter = tid / 64) */
#define SC_HQ (SC_THREADS / SC_TK)
#define SC_HB 4         /* heads per register batch */

static size_t score_smem_bytes(int heads, int dim)
{
    return sizeof(long long) * SC_TK +
           sizeof(float) * ((size_t)heads * dim + (size_t)SC_TK * (dim | 1) + SC_HQ * SC_TK);
}

/* scores[t - t0, p] for p in the block's tile, p <= pos; block (tile, t - t0). */
template <typename CT>
__global__ void __launch_bounds__(SC_THREADS) dsa_score_kernel(glm_cu_dsa_params p, int t0, float *scores)
{
    const int t = t0 + blockIdx.y, pos = p.pg.positions[t], p0 = blockIdx.x * SC_TK;
    if (pos + 1 <= p.topk || p0 > pos)
        return; /* uniform over the block */
    GLM_DYN_SMEM(unsigned char, smem);
    const int IH = p.n_heads, D = p.head_dim, kst = D | 1, seq = p.pg.seq_of[t];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    long long *slot_s = reinterpret_cast<long long *>(smem);
    float *q_s = reinterpret_cast<float *>(smem + sizeof(long long) * SC_TK); /* [IH, D] */
    float *k_s = q_s + IH * D;                                                /* [SC_TK, kst] */
    float *part_s = k_s + SC_TK * kst;                                        /* [SC_HQ, SC_TK] */
    const CT *cache = static_cast<const CT *>(p.cache);

    const float *q = p.q + (size_t)t * IH * D;
    for (int i = tid; i < IH * D; i += SC_THREADS)
        q_s[i] = q[i];
    if (tid < SC_TK)
        slot_s[tid] = p0 + tid <= pos ? page_slot(p.pg, seq, p0 + tid) : -1;
    __syncthreads();
    for (int r = warp; r < SC_TK; r += SC_THREADS / 32) {
        long long s = slot_s[r];
        float *dst = k_s + r * kst;
        if (s >= 0) {
            const CT *src = cache + (size_t)s * D;
            for (int c = lane; c < D; c += 32)
                dst[c] = cache_at(src, c);
        } else {
            for (int c = lane; c < D; c += 32)
                dst[c] = 0.0f;
        }
    }
    __syncthreads();
    const int j = tid % SC_TK, hq = tid / SC_TK;
    const float *kj = k_s + j * kst, *wt = p.w + (size_t)t * IH;
    float sum = 0.0f;
    for (int hb = hq; hb < IH; hb += SC_HQ * SC_HB) { /* heads hb, hb + 4, hb + 8, hb + 12 */
        float acc[SC_HB];
        GLM_UNROLL
        for (int u = 0; u < SC_HB; u++)
            acc[u] = 0.0f;
        for (int d = 0; d < D; d++) {
            float kd = kj[d];
            GLM_UNROLL
            for (int u = 0; u < SC_HB; u++)
                if (hb + u * SC_HQ < IH)
                    acc[u] += q_s[(hb + u * SC_HQ) * D + d] * kd;
        }
        GLM_UNROLL
        for (int u = 0; u < SC_HB; u++)
            if (hb + u * SC_HQ < IH) {
                float dd = acc[u] * p.scale;
                sum += wt[hb + u * SC_HQ] * (dd > 0.0f ? dd : 0.0f);
            }
    }
    part_s[hq * SC_TK + j] = sum;
    __syncthreads();
    if (tid < SC_TK && p0 + tid <= pos) {
        float s = 0.0f;
        for (int i = 0; i < SC_HQ; i++)
            s += part_s[i * SC_TK + tid];
        scores[(size_t)blockIdx.y * p.max_ctx + p0 + tid] = s;
    }
}

/* ---- top-k ---------------------------------------------------------------------------- */

#define TK_THREADS 1024
#define TK_WARPS (TK_THREADS / 32)

/* sel[t] for token t = t0 + blockIdx.x from scores[blockIdx.x, 0..pos]. */
__global__ void __launch_bounds__(TK_THREADS) dsa_topk_kernel(glm_cu_dsa_params p, int t0, const float *scores)
{
    __shared__ unsigned hist_s[256];
    __shared__ unsigned prefix_s, krem_s;
    __shared__ int weq_s[TK_WARPS], wsel_s[TK_WARPS];
    const int t = t0 + blockIdx.x, pos = p.pg.positions[t], K = p.topk;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    int32_t *out = p.sel + (size_t)t * K;
    if (pos + 1 <= K) { /* everything, no scoring */
        for (int j = tid; j < K; j += TK_THREADS)
            out[j] = j <= pos ? j : -1;
        return;
    }
    const int n = pos + 1;
    const float *sc = scores + (size_t)blockIdx.x * p.max_ctx;

    /* radix select of the K-th largest key, most significant byte first */
    if (tid == 0) {
        prefix_s = 0;
        krem_s = (unsigned)K;
    }
    for (int pass = 0; pass < 4; pass++) {
        const int shift = 24 - 8 * pass;
        for (int i = tid; i < 256; i += TK_THREADS)
            hist_s[i] = 0;
        __syncthreads();
        const unsigned prefix = prefix_s;
        for (int i = tid; i < n; i += TK_THREADS) {
            unsigned key = score_key(sc[i]);
            if (pass == 0 || (key >> (shift + 8)) == prefix)
                atomicAdd(&hist_s[(key >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (tid == 0) {
            unsigned kr = krem_s;
            int d = 255;
            while (kr > hist_s[d]) { /* the K-th is below bin d: skip it */
                kr -= hist_s[d];
                d--;
            }
            prefix_s = (prefix << 8) | (unsigned)d;
            krem_s = kr;
        }
        __syncthreads(); /* hist_s is read before the next pass clears it */
    }
    const unsigned thr = prefix_s;      /* the K-th largest key */
    const int need_eq = (int)krem_s;    /* keys == thr to take, lowest positions first */

    /* ordered compaction: > thr, and the first need_eq == thr */
    const unsigned lt = (1u << lane) - 1u;
    int run_eq = 0, run_sel = 0;
    for (int base = 0; base < n && run_sel < K; base += TK_THREADS) {
        const int i = base + tid;
        unsigned key = i < n ? score_key(sc[i]) : 0u;
        bool gt = i < n && key > thr, eq = i < n && key == thr;
        unsigned eqb = __ballot_sync(0xffffffffu, eq);
        if (lane == 0)
            weq_s[warp] = __popc(eqb);
        __syncthreads();
        int eq_before = run_eq + __popc(eqb & lt), tile_eq = 0;
        for (int w = 0; w < TK_WARPS; w++) {
            eq_before += w < warp ? weq_s[w] : 0;
            tile_eq += weq_s[w];
        }
        bool take = gt || (eq && eq_before < need_eq);
        unsigned tb = __ballot_sync(0xffffffffu, take);
        if (lane == 0)
            wsel_s[warp] = __popc(tb);
        __syncthreads();
        int idx = run_sel + __popc(tb & lt), tile_sel = 0;
        for (int w = 0; w < TK_WARPS; w++) {
            idx += w < warp ? wsel_s[w] : 0;
            tile_sel += wsel_s[w];
        }
        if (take)
            out[idx] = i;
        run_eq += tile_eq;
        run_sel += tile_sel;
    }
}

/* ---- launchers --------------------------------------------------------------------------- */

/* Tokens per chunk for the sizes in p: 0 when no token can need scores. */
static int chunk_tokens(const glm_cu_dsa_params *p)
{
    if (p->max_ctx <= p->topk)
        return 0;
    size_t c = DSA_WS_CAP_FLOATS / (size_t)p->max_ctx;
    c = c < 1 ? 1 : c;
    c = c < (size_t)p->n_tokens ? c : (size_t)p->n_tokens;
    return (int)(c < DSA_MAX_CHUNK ? c : DSA_MAX_CHUNK);
}

extern "C" size_t glm_cu_dsa_workspace(const glm_cu_dsa_params *p)
{
    return sizeof(float) * (size_t)chunk_tokens(p) * (size_t)(p->max_ctx > 0 ? p->max_ctx : 0);
}

template <typename CT>
static cudaError_t score_launch(const glm_cu_dsa_params *p, int t0, int nt, float *scores, cudaStream_t stream)
{
    size_t smem = score_smem_bytes(p->n_heads, p->head_dim);
    if (smem > SMEM_DEFAULT_MAX) {
        cudaError_t e = cudaFuncSetAttribute(dsa_score_kernel<CT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e != cudaSuccess)
            return e;
    }
    dim3 grid((p->max_ctx + SC_TK - 1) / SC_TK, nt);
    return GLM_LAUNCH(dsa_score_kernel<CT>, grid, dim3(SC_THREADS), smem, stream, *p, t0, scores);
}

extern "C" cudaError_t glm_cu_dsa_select(const glm_cu_dsa_params *p, void *ws, size_t ws_bytes, cudaStream_t stream)
{
    if (p->n_tokens <= 0)
        return cudaSuccess;
    if (p->topk < 1 || p->n_heads < 1 || p->head_dim < 1 || p->max_ctx < 1)
        return cudaErrorInvalidValue;
    if (p->cache_dtype != GLM_DTYPE_F32 && p->cache_dtype != GLM_DTYPE_BF16)
        return cudaErrorInvalidValue;
    int chunk = p->n_tokens;
    if (chunk_tokens(p) > 0) { /* as many tokens per chunk as ws holds */
        size_t fit = ws ? ws_bytes / (sizeof(float) * (size_t)p->max_ctx) : 0;
        if (fit < 1)
            return cudaErrorInvalidValue;
        chunk = fit < (size_t)chunk ? (int)fit : chunk;
        chunk = chunk < DSA_MAX_CHUNK ? chunk : DSA_MAX_CHUNK;
    }
    float *scores = static_cast<float *>(ws);
    for (int t0 = 0; t0 < p->n_tokens; t0 += chunk) {
        int nt = p->n_tokens - t0 < chunk ? p->n_tokens - t0 : chunk;
        cudaError_t e = cudaSuccess;
        if (chunk_tokens(p) > 0)
            e = p->cache_dtype == GLM_DTYPE_F32 ? score_launch<float>(p, t0, nt, scores, stream)
                                                : score_launch<__nv_bfloat16>(p, t0, nt, scores, stream);
        if (e == cudaSuccess)
            e = GLM_LAUNCH(dsa_topk_kernel, dim3(nt), dim3(TK_THREADS), 0, stream, *p, t0, scores);
        if (e != cudaSuccess)
            return e;
    }
    return cudaSuccess;
}
