/*
 * moe.cu - GLM-5's router and routed experts on the device (moe.h), the twins
 * of glm_ref_moe_route and glm_ref_moe_experts (engine/cpu/ref_moe.c).
 *
 * Router: one warp per token (4 tokens per block), per-warp scratch in dynamic
 * shared memory: choice[E] = sigmoid(logit) + bias, group scores (sum of the
 * two best choices of a group, merged across lanes as top-2 pairs), then
 * topk_group rounds of a warp argmax over groups and top_k rounds over the
 * kept groups' experts, the order (value descending, index ascending) in every
 * round, which picks exactly the set the reference's sorts pick. The chosen
 * ids are compacted in ascending order with a ballot; lane 0 sums their scores
 * in that order, as the reference does.
 *
 * Experts: four launches whose shapes depend only on the sizes (n_tokens, E,
 * hidden, inter), never on the routing, so a CUDA graph can capture them:
 *  1. index (one block of 32 warps): every warp counts the experts of a
 *     contiguous slice of the (token, k) assignments (__match_any_sync per 32),
 *     the per-warp counts become per-warp bases, a block scan gives each
 *     expert's first row and its row tiles (TM rows each); a second walk gives
 *     each assignment its row: rows of an expert in ascending assignment (so
 *     token) order, as the reference. Integers only: deterministic.
 *  2. gate/up: grid (max row tiles, inter / TN). A block takes one row tile of
 *     one expert (blocks past the tile count exit), gathers its tokens' x rows
 *     and reads a TN x TK tile of gate and of up per step (each expert's weights
 *     read once per row tile), accumulates TM x TN dot products of each in
 *     ascending k, and writes h = silu(g) * u.
 *  3. down: the same tiles over h and the down weights, writes y[row, hidden].
 *  4. combine: out[t, c] = sum_k weights[t, k] * y[row(t, k), c] in k order
 *     (ascending id): one thread per output element, no atomics.
 * Tiles: TM = 64 rows x TN = 64 features, TK = 32 deep, 256 threads of 4 x 4
 * outputs (x2 for gate and up); the row-tile grid is rows / TM + min(E, rows),
 * the most that sum_e ceil(rows_e / TM) can be. Weights are read element by
 * element through glm_dw_at (F32, BF16, or FP8 with its block scale) into
 * float shared tiles: never a widened copy of a weight.
 *
 * Workspace (moe_ws): index tables (E + 1 first rows and tile starts, 32 x E
 * per-warp counts, the tile list, row <-> assignment maps) and the float
 * activations h [n_tokens * K, inter] and y [n_tokens * K, hidden].
 */
#include "cuda/glm_cuda.h"

#include "cuda/dweight_dev.cuh"
#include "cuda/moe.h"

#define FULL_MASK 0xffffffffu

/* ---- router ---------------------------------------------------------------------- */

#define ROUTE_WARPS 4 /* tokens per block */

/* a better than b: value descending, then index ascending */
__device__ __forceinline__ bool route_better(float va, int ia, float vb, int ib)
{
    return va > vb || (va == vb && ia < ib);
}

/* The warp's best (value, index) over the entries for which want(i) holds; all lanes get it.
 * NaN counts as -inf, so a row of NaN router logits (broken numerics upstream) still yields
 * wanted entries (the lowest ids) and never an index outside [0, n). */
template <class Want>
__device__ __forceinline__ int warp_argmax(const float *v, int n, Want want)
{
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = (int)(threadIdx.x % 32); i < n; i += 32) {
        float vi = v[i] == v[i] ? v[i] : -INFINITY;
        if (want(i) && route_better(vi, i, bv, bi)) {
            bv = vi;
            bi = i;
        }
    }
    for (int d = 16; d >= 1; d >>= 1) {
        float ov = __shfl_xor_sync(FULL_MASK, bv, d);
        int oi = __shfl_xor_sync(FULL_MASK, bi, d);
        if (route_better(ov, oi, bv, bi)) {
            bv = ov;
            bi = oi;
        }
    }
    return bi;
}

__device__ __forceinline__ float route_score(float logit) { return 1.0f / (1.0f + expf(-logit)); }

/* Per-warp scratch: choice[E], group score[G], chosen[K] (4-byte), then state[E], gsel[G] (bytes). */
static size_t route_warp_bytes(int E, int G, int K)
{
    size_t b = sizeof(float) * ((size_t)E + G + K) + (size_t)E + G;
    return (b + 15) / 16 * 16;
}

__global__ void moe_route_kernel(glm_cu_moe_route_params p, size_t warp_bytes)
{
    GLM_DYN_SMEM(unsigned char, smem);
    const int E = p.n_experts, G = p.n_group, per = E / G, K = p.top_k;
    const int warp = (int)(threadIdx.x / 32), lane = (int)(threadIdx.x % 32);
    const int t = (int)blockIdx.x * (int)(blockDim.x / 32) + warp;
    if (t >= p.n_tokens)
        return; /* the whole warp: only warp collectives below */

    unsigned char *mine = smem + (size_t)warp * warp_bytes;
    float *choice = reinterpret_cast<float *>(mine);
    float *gscore = choice + E;
    int *chosen = reinterpret_cast<int *>(gscore + G);
    unsigned char *state = reinterpret_cast<unsigned char *>(chosen + K); /* 0 out, 1 candidate, 2 chosen */
    unsigned char *gsel = state + E;
    const float *logit = p.logits + (size_t)t * E;

    for (int e = lane; e < E; e += 32) {
        choice[e] = route_score(logit[e]) + p.bias[e];
        state[e] = 0;
    }
    __syncwarp();

    /* group scores: the top two of each group as a pair, merged across lanes */
    for (int g = 0; g < G; g++) {
        float a = -INFINITY, b = -INFINITY;
        for (int e = g * per + lane; e < (g + 1) * per; e += 32) {
            float v = choice[e];
            if (v > a) {
                b = a;
                a = v;
            } else if (v > b) {
                b = v;
            }
        }
        for (int d = 16; d >= 1; d >>= 1) {
            float oa = __shfl_xor_sync(FULL_MASK, a, d), ob = __shfl_xor_sync(FULL_MASK, b, d);
            float na = fmaxf(a, oa), nb = fmaxf(fminf(a, oa), fmaxf(b, ob));
            a = na;
            b = nb;
        }
        if (lane == 0) {
            gscore[g] = per >= 2 ? a + b : a;
            gsel[g] = 0;
        }
    }
    __syncwarp();

    for (int r = 0; r < p.topk_group; r++) {
        int g = warp_argmax(gscore, G, [&](int i) { return gsel[i] == 0; });
        if (lane == 0)
            gsel[g] = 1;
        __syncwarp();
    }
    for (int e = lane; e < E; e += 32)
        state[e] = gsel[e / per];
    __syncwarp();

    for (int r = 0; r < K; r++) {
        int e = warp_argmax(choice, E, [&](int i) { return state[i] == 1; });
        if (lane == 0)
            state[e] = 2;
        __syncwarp();
    }

    /* chosen ids, ascending */
    int base = 0;
    for (int e0 = 0; e0 < E; e0 += 32) {
        int e = e0 + lane;
        bool on = e < E && state[e] == 2;
        unsigned m = __ballot_sync(FULL_MASK, on);
        if (on)
            chosen[base + __popc(m & ((1u << lane) - 1u))] = e;
        base += __popc(m);
    }
    __syncwarp();

    float sum = 0.0f;
    if (lane == 0)
        for (int k = 0; k < K; k++)
            sum += route_score(logit[chosen[k]]);
    sum = __shfl_sync(FULL_MASK, sum, 0);
    float den = p.norm_topk_prob ? sum + 1e-20f : 1.0f;
    for (int k = lane; k < K; k += 32) {
        int e = chosen[k];
        p.ids[(size_t)t * K + k] = e;
        p.weights[(size_t)t * K + k] = route_score(logit[e]) / den * p.scaling;
    }
}

extern "C" cudaError_t glm_cu_moe_route(const glm_cu_moe_route_params *p, cudaStream_t stream)
{
    if (p->n_tokens <= 0)
        return cudaSuccess;
    if (p->n_group < 1 || p->n_experts % p->n_group || p->topk_group < 1 || p->topk_group > p->n_group ||
        p->top_k < 1 || p->top_k > p->topk_group * (p->n_experts / p->n_group))
        return cudaErrorInvalidValue;
    size_t wb = route_warp_bytes(p->n_experts, p->n_group, p->top_k);
    int warps = ROUTE_WARPS;
    while (warps > 1 && (size_t)warps * wb > 48 * 1024)
        warps /= 2;
    size_t smem = (size_t)warps * wb;
    if (smem > 48 * 1024) {
        cudaError_t err = cudaFuncSetAttribute(moe_route_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               (int)smem);
        if (err != cudaSuccess)
            return err;
    }
    dim3 grid((unsigned)((p->n_tokens + warps - 1) / warps));
    return GLM_LAUNCH(moe_route_kernel, grid, dim3(32 * warps), smem, stream, *p, wb);
}

/* ---- experts: workspace ---------------------------------------------------------- */

#define TM 64          /* rows (assignments of one expert) per tile */
#define TN 64          /* output features per tile */
#define TK 32          /* reduction step */
#define GEMM_THREADS 256 /* 16 x 16, each 4 rows x 4 features (rows ty + 16 i, features tx + 16 j) */
#define INDEX_WARPS 32
#define COMBINE_THREADS 256

typedef struct {
    int32_t *first;   /* [E + 1] first row of each expert; first[E] = rows */
    int32_t *tstart;  /* [E + 1] first tile of each expert; tstart[E] = tiles in use */
    int32_t *wbase;   /* [INDEX_WARPS, E] per-warp counts, then next row per (warp, expert) */
    int32_t *tile_e;  /* [max_tiles] expert of each tile */
    int32_t *tile_r0; /* [max_tiles] first row of each tile */
    int32_t *row_of;  /* [rows] assignment (t, k) -> row */
    int32_t *tok;     /* [rows] row -> token */
    float *h;         /* [rows, inter] silu(gate x) * up x */
    float *y;         /* [rows, hidden] down h */
} moe_ws;

/* Row tiles needed at most: sum_e ceil(n_e / TM) <= rows / TM + (active experts). */
static size_t max_tiles(size_t rows, int E)
{
    return (rows + TM - 1) / TM + (rows < (size_t)E ? rows : (size_t)E);
}

static size_t ws_take(size_t *off, size_t bytes)
{
    size_t at = *off;
    *off += (bytes + 255) / 256 * 256;
    return at;
}

/* Carves ws (NULL: sizes only); returns the bytes needed. */
static size_t ws_carve(const glm_cu_moe_experts_params *p, void *ws, moe_ws *w)
{
    size_t E = (size_t)p->n_experts, rows = (size_t)p->n_tokens * p->top_k, mt = max_tiles(rows, p->n_experts);
    size_t off = 0, o[9];
    o[0] = ws_take(&off, sizeof(int32_t) * (E + 1));
    o[1] = ws_take(&off, sizeof(int32_t) * (E + 1));
    o[2] = ws_take(&off, sizeof(int32_t) * INDEX_WARPS * E);
    o[3] = ws_take(&off, sizeof(int32_t) * mt);
    o[4] = ws_take(&off, sizeof(int32_t) * mt);
    o[5] = ws_take(&off, sizeof(int32_t) * rows);
    o[6] = ws_take(&off, sizeof(int32_t) * rows);
    o[7] = ws_take(&off, sizeof(float) * rows * p->inter);
    o[8] = ws_take(&off, sizeof(float) * rows * p->hidden);
    if (w) {
        char *b = static_cast<char *>(ws);
        w->first = reinterpret_cast<int32_t *>(b + o[0]);
        w->tstart = reinterpret_cast<int32_t *>(b + o[1]);
        w->wbase = reinterpret_cast<int32_t *>(b + o[2]);
        w->tile_e = reinterpret_cast<int32_t *>(b + o[3]);
        w->tile_r0 = reinterpret_cast<int32_t *>(b + o[4]);
        w->row_of = reinterpret_cast<int32_t *>(b + o[5]);
        w->tok = reinterpret_cast<int32_t *>(b + o[6]);
        w->h = reinterpret_cast<float *>(b + o[7]);
        w->y = reinterpret_cast<float *>(b + o[8]);
    }
    return off;
}

extern "C" size_t glm_cu_moe_experts_workspace(const glm_cu_moe_experts_params *p)
{
    return ws_carve(p, NULL, NULL) + 256; /* room to align a misaligned ws */
}

/* ---- experts: index ---------------------------------------------------------------- */

/* In-place exclusive scan of a[0, n) by the whole block (blockDim a multiple of 32); returns the total. */
__device__ int block_exclusive_scan(int32_t *a, int n)
{
    __shared__ int wsum[32];
    const int lane = (int)(threadIdx.x % 32), warp = (int)(threadIdx.x / 32), nw = (int)(blockDim.x / 32);
    int carry = 0;
    for (int base = 0; base < n; base += (int)blockDim.x) {
        int i = base + (int)threadIdx.x, v = i < n ? a[i] : 0, x = v;
        for (int d = 1; d < 32; d <<= 1) {
            int y = __shfl_up_sync(FULL_MASK, x, d);
            if (lane >= d)
                x += y;
        }
        if (lane == 31)
            wsum[warp] = x;
        __syncthreads();
        if (warp == 0) {
            int s = lane < nw ? wsum[lane] : 0;
            for (int d = 1; d < 32; d <<= 1) {
                int y = __shfl_up_sync(FULL_MASK, s, d);
                if (lane >= d)
                    s += y;
            }
            wsum[lane] = s; /* inclusive over warps */
        }
        __syncthreads();
        if (i < n)
            a[i] = carry + (warp ? wsum[warp - 1] : 0) + x - v;
        carry += wsum[nw - 1];
        __syncthreads(); /* wsum is rewritten by the next chunk */
    }
    return carry;
}

/* One block of INDEX_WARPS warps. Warp w owns assignments [w * span, (w + 1) * span). */
__global__ void __launch_bounds__(INDEX_WARPS * 32)
    moe_index_kernel(const int32_t *ids, int rows, int K, int E, int e0, int e1, moe_ws w)
{
    const int lane = (int)(threadIdx.x % 32), warp = (int)(threadIdx.x / 32);
    const int span = (rows + INDEX_WARPS * 32 - 1) / (INDEX_WARPS * 32) * 32;
    const int lo = warp * span, hi = min(rows, lo + span);
    int32_t *mine = w.wbase + (size_t)warp * E;

    for (int i = (int)threadIdx.x; i < INDEX_WARPS * E; i += (int)blockDim.x)
        w.wbase[i] = 0;
    __syncthreads();

    /* per-warp counts (another rank's expert counts as none: -1) */
    for (int i0 = lo; i0 < hi; i0 += 32) {
        int i = i0 + lane, e = i < hi ? ids[i] : -1;
        if (e < e0 || e >= e1)
            e = -1;
        unsigned peers = __match_any_sync(FULL_MASK, e);
        if (e >= 0 && lane == __ffs((int)peers) - 1)
            mine[e] += __popc(peers);
        __syncwarp();
    }
    __syncthreads();

    /* per-warp bases within each expert; expert totals and tile counts */
    for (int e = (int)threadIdx.x; e < E; e += (int)blockDim.x) {
        int run = 0;
        for (int v = 0; v < INDEX_WARPS; v++) {
            int c = w.wbase[(size_t)v * E + e];
            w.wbase[(size_t)v * E + e] = run;
            run += c;
        }
        w.first[e] = run;
        w.tstart[e] = (run + TM - 1) / TM;
    }
    __syncthreads();
    int total = block_exclusive_scan(w.first, E);
    int tiles = block_exclusive_scan(w.tstart, E);
    if (threadIdx.x == 0) {
        w.first[E] = total;
        w.tstart[E] = tiles;
    }
    for (int e = (int)threadIdx.x; e < E; e += (int)blockDim.x) {
        int r0 = w.first[e], n = (e + 1 < E ? w.first[e + 1] : total) - r0, t0 = w.tstart[e];
        for (int j = 0; j * TM < n; j++) {
            w.tile_e[t0 + j] = e;
            w.tile_r0[t0 + j] = r0 + j * TM;
        }
        for (int v = 0; v < INDEX_WARPS; v++)
            w.wbase[(size_t)v * E + e] += r0;
    }
    __syncthreads();

    /* rows: the warp's slice again, in order */
    for (int i0 = lo; i0 < hi; i0 += 32) {
        int i = i0 + lane, e = i < hi ? ids[i] : -1;
        if (e < e0 || e >= e1)
            e = -1;
        unsigned peers = __match_any_sync(FULL_MASK, e);
        if (i < hi && e < 0)
            w.row_of[i] = -1; /* another rank's */
        if (e >= 0) {
            int r = mine[e] + __popc(peers & ((1u << lane) - 1u));
            w.row_of[i] = r;
            w.tok[r] = i / K;
        }
        __syncwarp();
        if (e >= 0 && lane == __ffs((int)peers) - 1)
            mine[e] += __popc(peers);
        __syncwarp();
    }
}

/* ---- experts: grouped GEMMs -------------------------------------------------------------- */

__device__ __forceinline__ float silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

/* Loads the TN x TK tile of w at (n0, k0) into s[TN][TK + 1], zeros outside w. */
__device__ __forceinline__ void load_weight_tile(float (*s)[TK + 1], const glm_dweight &w, int n0, int k0)
{
    for (int idx = (int)threadIdx.x; idx < TN * TK; idx += GEMM_THREADS) {
        int n = idx / TK, kk = idx % TK;
        s[n][kk] = (n0 + n < w.rows && k0 + kk < w.cols) ? glm_dw_at(w, n0 + n, k0 + kk) : 0.0f;
    }
}

/*
 * GATE_UP: h[r, n] = silu(x[tok[r]] . gate_e[n]) * (x[tok[r]] . up_e[n]) for the tile's rows r,
 * features n in [n0, n0 + TN) of inter. Otherwise y[r, c] = h[r] . down_e[c], c in [n0, n0 + TN).
 * Every dot product runs over the reduction index in ascending order.
 */
template <bool GATE_UP>
__global__ void __launch_bounds__(GEMM_THREADS)
    moe_gemm_kernel(const glm_dweight *wa_tab, const glm_dweight *wb_tab, const float *x, int E, int hidden,
                    int inter, moe_ws w)
{
    __shared__ float sa[TM][TK + 1];
    __shared__ float sw[TN][TK + 1];
    __shared__ float su[GATE_UP ? TN : 1][TK + 1];
    __shared__ int srow[TM]; /* the input row of each tile row: a token (gate/up) or a row of h (down) */

    const int tile = (int)blockIdx.x;
    if (tile >= w.tstart[E])
        return; /* the whole block: fewer tiles in use than the grid allows */
    const int e = w.tile_e[tile], r0 = w.tile_r0[tile], nr = min(TM, w.first[e + 1] - r0);
    const int n0 = (int)blockIdx.y * TN, tx = (int)threadIdx.x % 16, ty = (int)threadIdx.x / 16;
    const int N = GATE_UP ? inter : hidden, KD = GATE_UP ? hidden : inter;
    const float *in = GATE_UP ? x : w.h;
    const glm_dweight wa = wa_tab[e];
    const glm_dweight wb = GATE_UP ? wb_tab[e] : wa;

    for (int r = (int)threadIdx.x; r < TM; r += GEMM_THREADS)
        srow[r] = r < nr ? (GATE_UP ? w.tok[r0 + r] : r0 + r) : -1;
    __syncthreads();

    float acc[4][4] = {}, acu[4][4] = {};
    for (int k0 = 0; k0 < KD; k0 += TK) {
        for (int idx = (int)threadIdx.x; idx < TM * TK; idx += GEMM_THREADS) {
            int r = idx / TK, kk = idx % TK, src = srow[r];
            sa[r][kk] = (src >= 0 && k0 + kk < KD) ? in[(size_t)src * KD + k0 + kk] : 0.0f;
        }
        load_weight_tile(sw, wa, n0, k0);
        if (GATE_UP)
            load_weight_tile(su, wb, n0, k0);
        __syncthreads();
        for (int kk = 0; kk < TK; kk++) {
            float a[4], b[4];
            for (int i = 0; i < 4; i++)
                a[i] = sa[ty + 16 * i][kk];
            for (int j = 0; j < 4; j++)
                b[j] = sw[tx + 16 * j][kk];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    acc[i][j] += a[i] * b[j];
            if (GATE_UP) {
                for (int j = 0; j < 4; j++)
                    b[j] = su[tx + 16 * j][kk];
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++)
                        acu[i][j] += a[i] * b[j];
            }
        }
        __syncthreads();
    }

    for (int i = 0; i < 4; i++) {
        int r = ty + 16 * i;
        if (r >= nr)
            continue;
        for (int j = 0; j < 4; j++) {
            int n = n0 + tx + 16 * j;
            if (n >= N)
                continue;
            if (GATE_UP)
                w.h[(size_t)(r0 + r) * inter + n] = silu_mul(acc[i][j], acu[i][j]);
            else
                w.y[(size_t)(r0 + r) * hidden + n] = acc[i][j];
        }
    }
}

/* ---- experts: combine ------------------------------------------------------------------ */

/* out[t, c] = sum_k weights[t, k] * y[row_of[t, k], c], k ascending; one thread per element. */
__global__ void __launch_bounds__(COMBINE_THREADS)
    moe_combine_kernel(const float *weights, int n_tokens, int K, int hidden, moe_ws w, float *out)
{
    size_t i = (size_t)blockIdx.x * COMBINE_THREADS + threadIdx.x;
    if (i >= (size_t)n_tokens * hidden)
        return;
    size_t t = i / hidden, c = i % hidden;
    float o = 0.0f;
    for (int k = 0; k < K; k++) {
        int r = w.row_of[t * K + k];
        if (r >= 0) /* else another rank's expert */
            o += w.y[(size_t)r * hidden + c] * weights[t * K + k];
    }
    out[i] = o;
}

/* ---- experts: launcher -------------------------------------------------------------------- */

extern "C" cudaError_t glm_cu_moe_experts(const glm_cu_moe_experts_params *p, void *ws, size_t ws_bytes,
                                          cudaStream_t stream)
{
    if (p->n_tokens <= 0)
        return cudaSuccess;
    if (p->n_experts < 1 || p->top_k < 1 || p->hidden < 1 || p->inter < 1)
        return cudaErrorInvalidValue;
    uintptr_t a = reinterpret_cast<uintptr_t>(ws), aligned = (a + 255) / 256 * 256;
    size_t need = ws_carve(p, NULL, NULL);
    if (!ws || ws_bytes < need + (aligned - a))
        return cudaErrorInvalidValue;
    moe_ws w;
    ws_carve(p, reinterpret_cast<void *>(aligned), &w);

    size_t rows = (size_t)p->n_tokens * p->top_k, mt = max_tiles(rows, p->n_experts);
    int e0 = p->n_local > 0 ? p->expert0 : 0, e1 = p->n_local > 0 ? p->expert0 + p->n_local : p->n_experts;
    if (e0 < 0 || e1 > p->n_experts)
        return cudaErrorInvalidValue;
    cudaError_t err = GLM_LAUNCH(moe_index_kernel, dim3(1), dim3(INDEX_WARPS * 32), 0, stream, p->ids, (int)rows,
                                 p->top_k, p->n_experts, e0, e1, w);
    if (err != cudaSuccess)
        return err;
    dim3 g1((unsigned)mt, (unsigned)((p->inter + TN - 1) / TN));
    err = GLM_LAUNCH(moe_gemm_kernel<true>, g1, dim3(GEMM_THREADS), 0, stream, p->gate, p->up, p->x,
                     p->n_experts, p->hidden, p->inter, w);
    if (err != cudaSuccess)
        return err;
    dim3 g2((unsigned)mt, (unsigned)((p->hidden + TN - 1) / TN));
    err = GLM_LAUNCH(moe_gemm_kernel<false>, g2, dim3(GEMM_THREADS), 0, stream, p->down, p->down, p->x,
                     p->n_experts, p->hidden, p->inter, w);
    if (err != cudaSuccess)
        return err;
    size_t n_out = (size_t)p->n_tokens * p->hidden;
    dim3 g3((unsigned)((n_out + COMBINE_THREADS - 1) / COMBINE_THREADS));
    return GLM_LAUNCH(moe_combine_kernel, g3, dim3(COMBINE_THREADS), 0, stream, p->weights, p->n_tokens,
                      p->top_k, p->hidden, w, p->out);
}
