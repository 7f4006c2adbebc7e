/*
 * mla.cu - Multi-head Latent Attention on the device (mla.h): query
 * absorption, attention in latent space over the paged cache, value
 * expansion. The math is glm_ref_mla_* (engine/cpu/ref_ops.h); every sum is
 * float32, in another order than the reference's (tests/backend checks it at
 * the reference's float32 tolerance).
 *
 * Absorb and expand: small GEMMs per head whose weight is kv_b in its kept
 * dtype (F32, BF16, FP8 with block scales, read through glm_dw_at: never a
 * widened copy). One block per (head, chunk of outputs) holds its slice of
 * W_uk / W_uv in shared memory as float32 and runs over all tokens, so each
 * weight element is read once per step; tokens stream through shared memory
 * in tiles, each thread accumulating two outputs.
 *   absorb: block (32 latent columns, head), 256 threads = lane -> column,
 *           warp -> tokens (w, w + 8) of a 16-token tile; W_uk slice [nope, 32].
 *   expand: block (16 value rows, head), 256 threads = (row, token slot) over
 *           a 32-token tile; W_uv slice [16, R] with an odd row stride (no
 *           bank conflicts); R = 512 needs ~98 KiB (opt-in attribute).
 *
 * Attention: one block per (token, group of up to 8 heads, KV split), 256
 * threads. The block walks its keys (sel's positions, or 0..pos) in tiles of
 * 32: the tile's latent rows [32, R + rope] are loaded once into shared
 * memory (float32, zeros for a -1 entry: a slot that is not selected is never
 * read) and serve every head of the group; thread (head, key) computes a
 * score; warp h runs the online softmax of head h over the tile (running max
 * and sum); then every thread updates its columns of o for all heads
 * (o = o * alpha + sum_j p_j row_j) from the same rows. At GLM-5's shapes
 * (8 heads per rank, 512 + 64) the block's shared memory is ~94 KiB.
 *
 * Split KV: with more keys than MLA_SPLIT_MIN_KEYS and too few (token, head
 * group) blocks to fill the GPU (MLA_SPLIT_TARGET_BLOCKS), each token's keys
 * are split into S equal, tile-aligned ranges, one block each; blocks write
 * unnormalised partials (o, max, sum) to the workspace and a combine kernel
 * merges them (exp(m_s - M) weights). S is taken from the params (n_tokens,
 * max_ctx or sel_width), never from device data: pass the step's largest
 * context as max_ctx at launch and the model's limit when sizing the
 * workspace. Since n_tokens * groups * S <= MLA_SPLIT_TARGET_BLOCKS whenever
 * S > 1, the workspace is bounded whatever the context: at most
 * MLA_SPLIT_TARGET_BLOCKS * 8 heads * (kv_lora + 2) floats (~4.2 MB at GLM-5).
 */
#include "cuda/glm_cuda.h"

#include <math.h>

#include "cuda/dweight_dev.cuh"
#include "cuda/paging_dev.cuh"
#include "cuda/mla.h"

#define SMEM_DEFAULT_MAX (48 * 1024) /* above this a kernel needs the opt-in attribute */

/* ---- shared helpers ------------------------------------------------------------------- */

/* An odd row stride >= n: rows read by consecutive lanes fall in distinct banks. */
__host__ __device__ __forceinline__ int odd_stride(int n) { return n | 1; }

/* a . b over n floats in eight interleaved partial sums (the lanes of glm_dot): a long
 * score dot in one running sum loses several bits more than the reference. */
__device__ __forceinline__ float dot8(const float *a, const float *b, int n)
{
    float s[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    int c = 0;
    for (; c + 8 <= n; c += 8) {
        GLM_UNROLL
        for (int u = 0; u < 8; u++)
            s[u] += a[c + u] * b[c + u];
    }
    for (; c < n; c++)
        s[c & 7] += a[c] * b[c];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

template <typename K> static cudaError_t allow_smem(K *kernel, size_t bytes)
{
    if (bytes <= SMEM_DEFAULT_MAX)
        return cudaSuccess;
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

/* ---- absorption -------------------------------------------------------------------------- */

#define AB_CH 32      /* latent columns per block (one per lane) */
#define AB_TT 16      /* tokens per tile (two per warp) */
#define AB_THREADS 256

/* q_lat[t, h, c0:c0+32] = W_uk[h][:, c0:c0+32]^T q_nope[t, h]; block (c0 / 32, h); the
 * blocks of chunk 0 also copy q_pe. Shared: W slice [nope, 32], q tile [16, nope]. */
__global__ void __launch_bounds__(AB_THREADS) mla_absorb_kernel(glm_cu_mla_absorb_params p, glm_dweight w)
{
    GLM_DYN_SMEM(float, smem);
    const int nope = p.nope, R = p.kv_lora, H = p.n_heads, qd = nope + p.rope, ld = R + p.rope;
    const int h = blockIdx.y, c0 = blockIdx.x * AB_CH;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    float *w_s = smem;                 /* [nope, AB_CH] */
    float *q_s = smem + nope * AB_CH;  /* [AB_TT, nope] */
    const int row0 = h * (nope + p.v_dim);

    for (int i = tid; i < nope * AB_CH; i += AB_THREADS) {
        int d = i / AB_CH, c = c0 + i % AB_CH;
        w_s[i] = c < R ? glm_dw_at(w, row0 + d, c) : 0.0f;
    }
    if (blockIdx.x == 0)
        for (int i = tid; i < p.n_tokens * p.rope; i += AB_THREADS) {
            int t = i / p.rope, r = i % p.rope;
            p.q_lat[((size_t)t * H + h) * ld + R + r] = p.q[((size_t)t * H + h) * qd + nope + r];
        }
    const int c = c0 + lane;
    for (int t0 = 0; t0 < p.n_tokens; t0 += AB_TT) {
        __syncthreads(); /* the previous tile's q_s is consumed */
        for (int i = tid; i < AB_TT * nope; i += AB_THREADS) {
            int t = t0 + i / nope, d = i % nope;
            q_s[i] = t < p.n_tokens ? p.q[((size_t)t * H + h) * qd + d] : 0.0f;
        }
        __syncthreads();
        const float *qa = q_s + warp * nope, *qb = q_s + (warp + 8) * nope;
        float a = 0.0f, b = 0.0f;
        for (int d = 0; d < nope; d++) {
            float wv = w_s[d * AB_CH + lane];
            a += wv * qa[d];
            b += wv * qb[d];
        }
        int ta = t0 + warp, tb = t0 + warp + 8;
        if (c < R && ta < p.n_tokens)
            p.q_lat[((size_t)ta * H + h) * ld + c] = a;
        if (c < R && tb < p.n_tokens)
            p.q_lat[((size_t)tb * H + h) * ld + c] = b;
    }
}

static size_t absorb_smem(const glm_cu_mla_absorb_params *p)
{
    return sizeof(float) * ((size_t)p->nope * AB_CH + (size_t)AB_TT * p->nope);
}

extern "C" cudaError_t glm_cu_mla_absorb(const glm_cu_mla_absorb_params *p, cudaStream_t stream)
{
    if (p->n_tokens <= 0 || p->n_heads <= 0)
        return cudaSuccess;
    if (p->nope < 1 || p->kv_b->cols != p->kv_lora || p->kv_b->rows < p->n_heads * (p->nope + p->v_dim))
        return cudaErrorInvalidValue;
    size_t smem = absorb_smem(p);
    cudaError_t e = allow_smem(mla_absorb_kernel, smem);
    if (e != cudaSuccess)
        return e;
    dim3 grid((p->kv_lora + AB_CH - 1) / AB_CH, p->n_heads);
    return GLM_LAUNCH(mla_absorb_kernel, grid, dim3(AB_THREADS), smem, stream, *p, *p->kv_b);
}

/* ---- value expansion ------------------------------------------------------------------------ */

#define EX_CE 16      /* value rows per block */
#define EX_TT 32      /* tokens per tile (two per thread) */
#define EX_THREADS 256

/* out[t, h*V + e0 + e] = W_uv[h][e0 + e, :] . o_lat[t, h]; block (e0 / 16, h). Thread
 * (e = tid % 16, slot = tid / 16) computes tokens slot and slot + 16 of each tile.
 * Shared: W slice [16, rs], o tile [32, rs], rs = odd stride >= R. */
__global__ void __launch_bounds__(EX_THREADS) mla_expand_kernel(glm_cu_mla_expand_params p, glm_dweight w)
{
    GLM_DYN_SMEM(float, smem);
    const int R = p.kv_lora, V = p.v_dim, H = p.n_heads, rs = odd_stride(R);
    const int h = blockIdx.y, e0 = blockIdx.x * EX_CE;
    const int tid = threadIdx.x, e = tid % EX_CE, slot = tid / EX_CE;
    float *w_s = smem;                /* [EX_CE, rs] */
    float *o_s = smem + EX_CE * rs;   /* [EX_TT, rs] */
    const int row0 = h * (p.nope + V) + p.nope;

    for (int i = tid; i < EX_CE * R; i += EX_THREADS) {
        int r = i / R, c = i % R;
        w_s[r * rs + c] = e0 + r < V ? glm_dw_at(w, row0 + e0 + r, c) : 0.0f;
    }
    for (int t0 = 0; t0 < p.n_tokens; t0 += EX_TT) {
        __syncthreads(); /* the previous tile's o_s is consumed */
        for (int i = tid; i < EX_TT * R; i += EX_THREADS) {
            int t = t0 + i / R, c = i % R;
            o_s[(i / R) * rs + c] = t < p.n_tokens ? p.o_lat[((size_t)t * H + h) * R + c] : 0.0f;
        }
        __syncthreads();
        const float *wr = w_s + e * rs, *oa = o_s + slot * rs, *ob = o_s + (slot + EX_TT / 2) * rs;
        float a4[4] = {0.0f, 0.0f, 0.0f, 0.0f}, b4[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        int c = 0;
        for (; c + 4 <= R; c += 4) {
            GLM_UNROLL
            for (int u = 0; u < 4; u++) {
                a4[u] += wr[c + u] * oa[c + u];
                b4[u] += wr[c + u] * ob[c + u];
            }
        }
        for (; c < R; c++) {
            a4[c & 3] += wr[c] * oa[c];
            b4[c & 3] += wr[c] * ob[c];
        }
        float a = (a4[0] + a4[1]) + (a4[2] + a4[3]), b = (b4[0] + b4[1]) + (b4[2] + b4[3]);
        int ta = t0 + slot, tb = t0 + slot + EX_TT / 2;
        if (e0 + e < V && ta < p.n_tokens)
            p.out[(size_t)ta * H * V + (size_t)h * V + e0 + e] = a;
        if (e0 + e < V && tb < p.n_tokens)
            p.out[(size_t)tb * H * V + (size_t)h * V + e0 + e] = b;
    }
}

extern "C" cudaError_t glm_cu_mla_expand(const glm_cu_mla_expand_params *p, cudaStream_t stream)
{
    if (p->n_tokens <= 0 || p->n_heads <= 0 || p->v_dim <= 0)
        return cudaSuccess;
    if (p->kv_lora < 1 || p->kv_b->cols != p->kv_lora || p->kv_b->rows < p->n_heads * (p->nope + p->v_dim))
        return cudaErrorInvalidValue;
    size_t smem = sizeof(float) * (size_t)(EX_CE + EX_TT) * odd_stride(p->kv_lora);
    cudaError_t e = allow_smem(mla_expand_kernel, smem);
    if (e != cudaSuccess)
        return e;
    dim3 grid((p->v_dim + EX_CE - 1) / EX_CE, p->n_heads);
    return GLM_LAUNCH(mla_expand_kernel, grid, dim3(EX_THREADS), smem, stream, *p, *p->kv_b);
}

/* ---- attention ------------------------------------------------------------------------------ */

#define AT_HG 8          /* heads per block: one softmax warp each */
#define AT_KT 32         /* keys per tile: one per lane in the softmax */
#define AT_THREADS 256
#define AT_MAX_CPT 4     /* latent columns per thread: kv_lora <= 1024 */
#define MLA_SPLIT_MIN_KEYS 128       /* no split below this many keys per token */
#define MLA_SPLIT_TARGET_BLOCKS 256  /* split until this many blocks (~2 per H200 SM) */

static_assert(AT_THREADS / 32 == AT_HG, "one softmax warp per head of the group");
static_assert(AT_KT == 32, "one key per lane in the softmax");

/* The block's dynamic shared memory: slots [KT] (int64), q [HG, ld], rows [KT, kst],
 * p [HG, KT], m / l / alpha [3, HG]. */
__host__ __device__ inline size_t attn_smem_bytes(int ld)
{
    return sizeof(long long) * AT_KT +
           sizeof(float) * ((size_t)AT_HG * ld + (size_t)AT_KT * odd_stride(ld) + AT_HG * AT_KT + 3 * AT_HG);
}

/*
 * Block (token t, split s, head group g). Keys of t: index j in [0, nk) of its
 * selection row (or position j when sel is NULL), nk = min(sel_width, pos + 1)
 * (a row is ascending then -1s: at most pos + 1 entries are positions), split
 * into gridDim.y tile-aligned ranges. With one split it writes o_lat; else the
 * unnormalised o and (m, l) of its range go to ws_o / ws_ml.
 */
template <int CPT, typename CT>
__global__ void __launch_bounds__(AT_THREADS)
    mla_attn_kernel(glm_cu_mla_attn_params p, float *ws_o, float *ws_ml)
{
    GLM_DYN_SMEM(unsigned char, smem);
    const int R = p.kv_lora, ld = R + p.rope, kst = odd_stride(ld), H = p.n_heads;
    const int t = blockIdx.x, split = blockIdx.y, S = gridDim.y, h0 = blockIdx.z * AT_HG;
    const int hg = min(AT_HG, H - h0);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    long long *slot_s = reinterpret_cast<long long *>(smem);
    float *q_s = reinterpret_cast<float *>(smem + sizeof(long long) * AT_KT);
    float *k_s = q_s + AT_HG * ld;
    float *p_s = k_s + AT_KT * kst;
    float *m_s = p_s + AT_HG * AT_KT, *l_s = m_s + AT_HG, *a_s = l_s + AT_HG;
    const CT *cache = static_cast<const CT *>(p.cache);

    const int pos = p.pg.positions[t], seq = p.pg.seq_of[t];
    const int nk = p.sel ? min(p.sel_width, pos + 1) : pos + 1;
    const int32_t *sel = p.sel ? p.sel + (size_t)t * p.sel_width : NULL;
    int chunk = (nk + S - 1) / S;
    chunk = (chunk + AT_KT - 1) / AT_KT * AT_KT;
    const int k0 = min(split * chunk, nk), k1 = min(k0 + chunk, nk);

    const float *q = p.q_lat + ((size_t)t * H + h0) * ld;
    for (int i = tid; i < hg * ld; i += AT_THREADS)
        q_s[i] = q[i];
    if (tid < AT_HG) {
        m_s[tid] = -INFINITY;
        l_s[tid] = 0.0f;
    }
    float acc[AT_HG][CPT];
GLM_UNROLL
    for (int h = 0; h < AT_HG; h++)
GLM_UNROLL
        for (int k = 0; k < CPT; k++)
            acc[h][k] = 0.0f;

    for (int j0 = k0; j0 < k1; j0 += AT_KT) {
        __syncthreads(); /* the previous tile is consumed; q_s and the stats are set */
        if (tid < AT_KT) {
            int j = j0 + tid;
            long long s = -1;
            if (j < k1) {
                int kp = sel ? sel[j] : j;
                if (kp >= 0)
                    s = page_slot(p.pg, seq, kp);
            }
            slot_s[tid] = s;
        }
        __syncthreads();
        for (int r = warp; r < AT_KT; r += AT_THREADS / 32) {
            long long s = slot_s[r];
            float *dst = k_s + r * kst;
            if (s >= 0) {
                const CT *src = cache + (size_t)s * ld;
                for (int c = lane; c < ld; c += 32)
                    dst[c] = cache_at(src, c);
            } else {
                for (int c = lane; c < ld; c += 32)
                    dst[c] = 0.0f;
            }
        }
        __syncthreads();
        for (int i = tid; i < hg * AT_KT; i += AT_THREADS) {
            int h = i / AT_KT, j = i % AT_KT;
            float sc = -INFINITY;
            if (slot_s[j] >= 0) {
                sc = dot8(q_s + h * ld, k_s + j * kst, ld) * p.scale;
            }
            p_s[i] = sc;
        }
        __syncthreads();
        if (warp < hg) { /* online softmax of head `warp` over the tile */
            float sc = p_s[warp * AT_KT + lane], mx = sc;
            for (int o = 16; o > 0; o >>= 1)
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            float m_old = m_s[warp], m_new = fmaxf(m_old, mx), alpha = 1.0f, e = 0.0f;
            if (m_new != -INFINITY) {
                alpha = expf(m_old - m_new);
                e = expf(sc - m_new);
            }
            float sum = e;
            for (int o = 16; o > 0; o >>= 1)
                sum += __shfl_xor_sync(0xffffffffu, sum, o);
            p_s[warp * AT_KT + lane] = e;
            if (lane == 0) {
                m_s[warp] = m_new;
                l_s[warp] = l_s[warp] * alpha + sum;
                a_s[warp] = alpha;
            }
        }
        __syncthreads();
GLM_UNROLL
        for (int h = 0; h < AT_HG; h++) {
            if (h >= hg)
                break;
            const float alpha = a_s[h], *ph = p_s + h * AT_KT;
GLM_UNROLL
            for (int k = 0; k < CPT; k++) {
                int c = tid + k * AT_THREADS;
                if (c >= R)
                    break;
                float a = acc[h][k] * alpha;
                for (int j = 0; j < AT_KT; j++)
                    a += ph[j] * k_s[j * kst + c];
                acc[h][k] = a;
            }
        }
    }
    __syncthreads(); /* the stats (set at the start when the range is empty) */

GLM_UNROLL
    for (int h = 0; h < AT_HG; h++) {
        if (h >= hg)
            break;
        size_t th = (size_t)t * H + h0 + h;
        float l = l_s[h], inv = l > 0.0f ? 1.0f / l : 0.0f;
GLM_UNROLL
        for (int k = 0; k < CPT; k++) {
            int c = tid + k * AT_THREADS;
            if (c >= R)
                break;
            if (S == 1)
                p.o_lat[th * R + c] = acc[h][k] * inv;
            else
                ws_o[(th * S + split) * R + c] = acc[h][k];
        }
    }
    if (S > 1 && tid < hg) {
        size_t th = (size_t)t * H + h0 + tid;
        ws_ml[(th * S + split) * 2] = m_s[tid];
        ws_ml[(th * S + split) * 2 + 1] = l_s[tid];
    }
}

#define CB_THREADS 128

/* o_lat[t, h] = sum_s exp(m_s - M) o_s / sum_s exp(m_s - M) l_s over the splits that
 * saw a key (l_s > 0); 0 when none did. Block (t * H + h). */
__global__ void __launch_bounds__(CB_THREADS) mla_combine_kernel(int R, int S, const float *ws_o, const float *ws_ml,
                                                                  float *o_lat)
{
    __shared__ float wt_s[MLA_SPLIT_TARGET_BLOCKS];
    const size_t th = blockIdx.x;
    const float *ml = ws_ml + th * S * 2;
    if (threadIdx.x == 0) {
        float M = -INFINITY, L = 0.0f;
        for (int s = 0; s < S; s++)
            if (ml[2 * s + 1] > 0.0f)
                M = fmaxf(M, ml[2 * s]);
        for (int s = 0; s < S; s++) {
            float w = ml[2 * s + 1] > 0.0f ? expf(ml[2 * s] - M) : 0.0f;
            wt_s[s] = w;
            L += w * ml[2 * s + 1];
        }
        float inv = L > 0.0f ? 1.0f / L : 0.0f;
        for (int s = 0; s < S; s++)
            wt_s[s] *= inv;
    }
    __syncthreads();
    for (int c = threadIdx.x; c < R; c += CB_THREADS) {
        float o = 0.0f;
        for (int s = 0; s < S; s++)
            if (wt_s[s] != 0.0f)
                o += wt_s[s] * ws_o[(th * S + s) * R + c];
        o_lat[th * R + c] = o;
    }
}

/* Splits per token for the sizes in p (see the head comment). */
static int attn_splits(const glm_cu_mla_attn_params *p)
{
    long long max_keys = p->sel ? (p->sel_width < p->max_ctx ? p->sel_width : p->max_ctx) : p->max_ctx;
    long long blocks = (long long)p->n_tokens * ((p->n_heads + AT_HG - 1) / AT_HG);
    long long s = (max_keys + MLA_SPLIT_MIN_KEYS - 1) / MLA_SPLIT_MIN_KEYS;
    long long cap = blocks >= MLA_SPLIT_TARGET_BLOCKS ? 1 : MLA_SPLIT_TARGET_BLOCKS / blocks;
    s = s < cap ? s : cap;
    return s > 1 ? (int)s : 1;
}

/* Workspace bytes of a step of exactly p->n_tokens tokens: o [n, H, S, R], (m, l) [n, H, S, 2]. */
static size_t attn_step_bytes(const glm_cu_mla_attn_params *p)
{
    int S = attn_splits(p);
    return S > 1 ? sizeof(float) * (size_t)p->n_tokens * p->n_heads * S * (p->kv_lora + 2) : 0;
}

extern "C" size_t glm_cu_mla_attn_workspace(const glm_cu_mla_attn_params *p)
{
    /* any step up to n_tokens tokens; splits only while n * groups < MLA_SPLIT_TARGET_BLOCKS */
    glm_cu_mla_attn_params q = *p;
    size_t most = 0;
    for (int n = 1; n <= p->n_tokens && n <= MLA_SPLIT_TARGET_BLOCKS; n++) {
        q.n_tokens = n;
        size_t b = attn_step_bytes(&q);
        most = b > most ? b : most;
    }
    return most;
}

template <int CPT, typename CT>
static cudaError_t attn_launch(const glm_cu_mla_attn_params *p, int S, float *ws_o, float *ws_ml,
                               cudaStream_t stream)
{
    size_t smem = attn_smem_bytes(p->kv_lora + p->rope);
    cudaError_t e = allow_smem(mla_attn_kernel<CPT, CT>, smem);
    if (e != cudaSuccess)
        return e;
    dim3 grid(p->n_tokens, S, (p->n_heads + AT_HG - 1) / AT_HG);
    return GLM_LAUNCH((mla_attn_kernel<CPT, CT>), grid, dim3(AT_THREADS), smem, stream, *p, ws_o, ws_ml);
}

template <typename CT>
static cudaError_t attn_launch_cpt(const glm_cu_mla_attn_params *p, int S, float *ws_o, float *ws_ml,
                                   cudaStream_t stream)
{
    int cpt = (p->kv_lora + AT_THREADS - 1) / AT_THREADS;
    if (cpt <= 1)
        return attn_launch<1, CT>(p, S, ws_o, ws_ml, stream);
    if (cpt <= 2)
        return attn_launch<2, CT>(p, S, ws_o, ws_ml, stream);
    return attn_launch<AT_MAX_CPT, CT>(p, S, ws_o, ws_ml, stream);
}

extern "C" cudaError_t glm_cu_mla_attn(const glm_cu_mla_attn_params *p, void *ws, size_t ws_bytes,
                                       cudaStream_t stream)
{
    if (p->n_tokens <= 0 || p->n_heads <= 0)
        return cudaSuccess;
    if (p->kv_lora < 1 || p->kv_lora > AT_MAX_CPT * AT_THREADS || p->rope < 0 || (p->sel && p->sel_width < 1))
        return cudaErrorInvalidValue;
    if (p->cache_dtype != GLM_DTYPE_F32 && p->cache_dtype != GLM_DTYPE_BF16)
        return cudaErrorInvalidValue;
    int S = attn_splits(p);
    size_t need = attn_step_bytes(p);
    if (ws_bytes < need || (need && !ws))
        return cudaErrorInvalidValue;
    float *ws_o = NULL, *ws_ml = NULL;
    if (S > 1) {
        ws_o = static_cast<float *>(ws);
        ws_ml = ws_o + (size_t)p->n_tokens * p->n_heads * S * p->kv_lora;
    }
    cudaError_t e = p->cache_dtype == GLM_DTYPE_F32 ? attn_launch_cpt<float>(p, S, ws_o, ws_ml, stream)
                                                    : attn_launch_cpt<__nv_bfloat16>(p, S, ws_o, ws_ml, stream);
    if (e != cudaSuccess || S == 1)
        return e;
    return GLM_LAUNCH(mla_combine_kernel, dim3(p->n_tokens * p->n_heads), dim3(CB_THREADS), 0, stream, p->kv_lora,
                      S, ws_o, ws_ml, p->o_lat);
}
