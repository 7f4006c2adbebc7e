/*
 * linear.cu - y[n, n_rows] = x[n, in] W[row0:row0+n_rows]^T against a device
 * weight in its kept dtype (linear.h). Row-major x, W and y are cuBLAS's
 * column-major y^T = W x^T: W is op(A) = A^T with A = W as stored (lda = in),
 * x is B untransposed (ldb = ldx), y^T is C (ldc = ldy).
 *
 *   F32:  cublasGemmEx, float32 operands, CUBLAS_COMPUTE_32F (no TF32 unless
 *         the caller put the handle in CUBLAS_TF32_TENSOR_OP_MATH; it must not).
 *   BF16: lin_to_bf16 rounds x to BF16 (nearest even) into the workspace, then
 *         cublasGemmEx BF16 x BF16 -> float32 C with CUBLAS_COMPUTE_32F.
 *   FP8:  lin_quant_fp8 quantises x per 1 x 128 group along K: amax over the
 *         group (a last group shorter than 128 where in % 128 != 0), scale
 *         s = amax / 448 in float32 (1 where that is 0: an all-zero group),
 *         q = e4m3(x / s) with x / s in float32, rounded to nearest even and
 *         saturated to +-448 (__NV_SATFINITE). Rows are quantised up to
 *         n_pad = roundup(n, 4), the rows past n as zeros with scale 1. The
 *         scales are stored as cuBLASLt's CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F
 *         reads them for B (outer index = token), in two tensors: the first
 *         n4 = floor(n/4)*4 tokens at xs[(k / 128) * n4 + t], the last 4
 *         (1-3 real, then padding) after them at xs[G * n4 + (k / 128) * 4 +
 *         t - n4], G = ceil(K / 128) (lin_xs_at). Then either
 *           - cuBLASLt (the fast path): "TN", A = W e4m3 with the weight's
 *             CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F scales (w->scale
 *             from block row row0 / 128, row stride scale_ld), B = q with the
 *             VEC128 scales, float32 C = D. The n4 rows go straight into y
 *             (N = n4, ldc = ldy); the last 1-3 rows as a 4-row GEMM (N = 4)
 *             into yb, a float32 [4, n_rows] workspace buffer, then
 *             lin_copy_rows writes the real rows into y. Where y's rows are not
 *             16-byte aligned (ldy % 4 != 0 or y itself) and n <= 7, the first
 *             4 rows go through yb as well; a longer n there would need a
 *             staging buffer of n x n_rows floats or a 4-row GEMM per 4 rows,
 *             and no caller has such a y (GLM-5's widths are multiples of
 *             128), so it runs the plain kernel. Or
 *           - lin_fp8_plain (the fallback, correctness first): a shared-memory
 *             tiled kernel over the same q and s and the dequantised weight
 *             q_w * block scale (glm_dw_at), float32 accumulation. It takes
 *             any block shape (the tests' 4 x 8 blocks) and any alignment.
 *
 * When cuBLASLt's block-scaled FP8 GEMM is used (lt_weight_fits, lt_fp8), and why:
 *   - Hopper only: the VEC128_32F / BLK128x128_32F modes exist from cuBLAS
 *     12.9 and run on compute capability 9.0 only (NVIDIA's answer in
 *     NVIDIA/CUDALibrarySamples#310; PyTorch's _check_deepseek_support in
 *     aten/src/ATen/native/cuda/ScaledBlas.cpp refuses anything but SM90; a
 *     measured NOT_SUPPORTED on sm_120 in the issues corpus). So: device major
 *     9, minor 0.
 *   - FP8 in general (cuBLAS docs, cublasLtMatmul, quoted in
 *     CUDALibrarySamples#172): A transposed and B not ("TN"), compute
 *     CUBLAS_COMPUTE_32F, scale type CUDA_R_32F, every matrix pointer 16-byte
 *     aligned; the leading dimensions then have to keep 16-byte rows (lda, ldb
 *     multiples of 16 e4m3, ldc a multiple of 4 floats). cuBLASLt's log says
 *     "M must be divisible by 16" for FP8 (vllm-project/vllm#4691).
 *   - The block layouts (cuBLAS docs "Scaling factors layouts"; PyTorch
 *     #166752 "Fix DeepSeek scaling tensor handling"): 1x128 scales [K/128]
 *     rows of outer-many floats, 128x128 scales K-major with the K-block count
 *     padded to a multiple of 4 (silently wrong results otherwise). The
 *     weight's scale_ld is exactly that padding (dweight.h).
 *   - PyTorch, vLLM (torch._scaled_mm block path, vllm#49932) and torchao only
 *     hand cuBLASLt K and N that are multiples of 128, and vLLM pads the token
 *     count to a multiple of 4 for it ("cuBLASLt requirement"); vLLM's CUTLASS
 *     block kernel likewise refuses N % 128 != 0 (vllm#48586). Partial blocks
 *     are not known to work, so they are not tried here.
 *   So the gate: 128 x 128 weight blocks, in % 128 == 0, row0 % 128 == 0 and
 *   n_rows % 128 == 0 (the scale pointer starts at a block row), 16-byte
 *   aligned pointers, scale_ld == roundup(in/128, 4); every N handed to
 *   cuBLASLt is a multiple of 4 (n4, or 4 padded rows) and every ldc too (ldy
 *   where y's rows are aligned, else the buffer's n_rows).
 *   Inside the gate a heuristic answer of NOT_SUPPORTED (another cuBLAS build)
 *   still falls back to the plain kernel; any other failure is an error.
 *   Not yet run on a GPU: tests/backend checks this call site against the
 *   cuBLASLt stand-in (tests/cuda_cpu/blas/cublaslt_cpu.cpp), which states the
 *   same layouts, and against the plain kernel.
 *
 * The cuBLASLt cache (glm_cu_linear_ctx): one matmul descriptor and one
 * heuristic preference per ctx (the descriptor's scale pointers are set before
 * each cublasLtMatmul, which reads them when it is called), and a table of
 * GEMM shapes (M, N, K, ldb, ldc, workspace bound) each with its three matrix
 * layouts and the heuristic's algorithm (or its "no kernel" answer, so that
 * is not asked again either). A lookup scans the table; a miss takes an empty
 * slot or the least recently used one, whose layouts are re-shaped in place
 * (cublasLtMatrixLayoutSetAttribute ROWS / COLS / LD), so after the first
 * GLM_CU_LINEAR_LT_SLOTS shapes nothing is created any more. The heuristic is
 * asked for algorithms that take 16-byte aligned pointers (its default
 * assumes 256), since q, y and the slices of W are only that.
 *
 * Workspace (glm_cu_linear_workspace), each piece 256-byte aligned:
 *   BF16: xb [max_n, roundup(in, 8)] bf16.
 *   FP8:  q [roundup(max_n, 4), roundup(in, 16)] e4m3, then
 *         xs [ceil(in/128) * roundup(max_n, 4)] float, then, for a weight
 *         cuBLASLt can take (128 x 128 blocks, in % 128 == 0), yb [4, rows]
 *         float. Against q and xs for exactly max_n rows that is at most
 *         3 * roundup(in, 16) + 12 * ceil(in/128) bytes more for the padding
 *         rows, plus 16 * rows bytes for yb (each piece rounded to 256).
 */
#include "cuda/glm_cuda.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cuda/dweight_dev.cuh"
#include "cuda/linear.h"

#define LIN_GROUP 128          /* activation quantisation group along K */
#define LIN_E4M3_MAX 448.0f
#define LIN_TILE 16            /* plain FP8 kernel: 16 tokens x 16 rows per block, K step 16 */
#define LIN_CVT_THREADS 256
#define LIN_ALIGN_UP(x, a) (((x) + (a) - 1) / (a) * (a))

/* ---- kernels ---------------------------------------------------------------------- */

/* xb[t, k] = bf16(x[t, k]) for k < K. grid (n, ceil(K / 256)), block 256. */
__global__ void lin_to_bf16(const float *x, int ldx, int K, __nv_bfloat16 *xb, int ldb)
{
    int t = blockIdx.x, k = blockIdx.y * blockDim.x + threadIdx.x;
    if (k < K)
        xb[(size_t)t * ldb + k] = __float2bfloat16_rn(x[(size_t)t * ldx + k]);
}

/* The float32 scale of a group whose largest magnitude is amax. */
__device__ __forceinline__ float lin_group_scale(float amax)
{
    float s = amax / LIN_E4M3_MAX;
    return s > 0.0f ? s : 1.0f;
}

/* Where the scale of group g of token t lies in xs (the opening comment): the first n4
 * tokens as one VEC128 tensor of n4 outer entries, the 4 after them as another of 4. */
__host__ __device__ __forceinline__ size_t lin_xs_at(int g, int t, int n4, int G)
{
    return t < n4 ? (size_t)g * n4 + t : (size_t)G * n4 + (size_t)g * 4 + (t - n4);
}

/* One 1 x 128 group per block: grid (n_pad, G = ceil(K / 128)), block 128.
 * q[t, k] = e4m3(x[t, k] / s), s at lin_xs_at(g, t); rows t >= n: q 0, s 1. */
__global__ void lin_quant_fp8(const float *x, int ldx, int K, int n, int n4, __nv_fp8_e4m3 *q, int ldq, float *xs)
{
    __shared__ float warp_max[LIN_GROUP / 32];
    int t = blockIdx.x, g = blockIdx.y, k = g * LIN_GROUP + threadIdx.x;
    float v = t < n && k < K ? x[(size_t)t * ldx + k] : 0.0f;
    float a = fabsf(v);
    for (int o = 16; o > 0; o >>= 1)
        a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
    if ((threadIdx.x & 31) == 0)
        warp_max[threadIdx.x >> 5] = a;
    __syncthreads();
    float amax = warp_max[0];
    for (int i = 1; i < LIN_GROUP / 32; i++)
        amax = fmaxf(amax, warp_max[i]);
    float s = lin_group_scale(amax);
    if (k < K)
        q[(size_t)t * ldq + k].__x = __nv_cvt_float_to_fp8(v / s, __NV_SATFINITE, __NV_E4M3);
    if (threadIdx.x == 0)
        xs[lin_xs_at(g, t, n4, gridDim.y)] = s;
}

/* The fallback FP8 GEMM: y[t, r] = sum_k (q[t, k] * s(k/128, t)) * W(row0 + r, k), float32.
 * grid (ceil(n_rows / 16), ceil(n / 16)), block (16, 16): threadIdx.x is the row within
 * the tile (and k while loading), threadIdx.y the token. */
__global__ void lin_fp8_plain(glm_dweight w, int row0, int n_rows, int n, int n4, const __nv_fp8_e4m3 *q, int ldq,
                              const float *xs, float *y, int ldy)
{
    __shared__ float xt[LIN_TILE][LIN_TILE + 1]; /* [token][k] dequantised activations */
    __shared__ float wt[LIN_TILE][LIN_TILE + 1]; /* [row][k] dequantised weight */
    int tx = threadIdx.x, ty = threadIdx.y;
    int r0 = blockIdx.x * LIN_TILE, t0 = blockIdx.y * LIN_TILE, K = w.cols, G = (K + LIN_GROUP - 1) / LIN_GROUP;
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += LIN_TILE) {
        int k = k0 + tx, t = t0 + ty, r = r0 + ty;
        xt[ty][tx] = t < n && k < K
                         ? static_cast<float>(q[(size_t)t * ldq + k]) * xs[lin_xs_at(k / LIN_GROUP, t, n4, G)]
                         : 0.0f;
        wt[ty][tx] = r < n_rows && k < K ? glm_dw_at(w, row0 + r, k) : 0.0f;
        __syncthreads();
        for (int i = 0; i < LIN_TILE; i++)
            acc += xt[ty][i] * wt[tx][i];
        __syncthreads();
    }
    int t = t0 + ty, r = r0 + tx;
    if (t < n && r < n_rows)
        y[(size_t)t * ldy + r] = acc;
}

/* y[t, c] = src[t, c] for t < rows, c < cols: the rows cuBLASLt wrote into the 4-row buffer.
 * grid (ceil(cols / 256), rows), block 256. */
__global__ void lin_copy_rows(const float *src, int lds, int cols, float *y, int ldy)
{
    int t = blockIdx.y, c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c < cols)
        y[(size_t)t * ldy + c] = src[(size_t)t * lds + c];
}

/* ---- host ------------------------------------------------------------------------- */

typedef struct {
    int ld;          /* elements per row of the BF16 copy / the e4m3 activations */
    size_t xs_off;   /* FP8: byte offset of the scales */
    size_t yb_off;   /* FP8 that cuBLASLt can take: byte offset of the [4, rows] float buffer, else 0 */
    size_t bytes;    /* the whole workspace */
} lin_ws;

/* Whether cuBLASLt's block-scaled GEMM can take w at all (rows and pointers are checked per
 * call in lt_fp8). */
static int lt_weight_fits(const glm_dweight *w)
{
    return w->dtype == GLM_DTYPE_F8_E4M3 && w->block_r == 128 && w->block_c == 128 && w->cols % 128 == 0 &&
           w->scale_ld == LIN_ALIGN_UP(w->cols / 128, 4);
}

static lin_ws ws_layout(const glm_dweight *w, int max_n)
{
    lin_ws l = {0, 0, 0, 0};
    size_t n = max_n > 0 ? (size_t)max_n : 0;
    if (w->dtype == GLM_DTYPE_BF16) {
        l.ld = LIN_ALIGN_UP(w->cols, 8);
        l.bytes = LIN_ALIGN_UP(n * l.ld * sizeof(__nv_bfloat16), 256);
    } else if (w->dtype == GLM_DTYPE_F8_E4M3) {
        size_t groups = (size_t)(w->cols + LIN_GROUP - 1) / LIN_GROUP, n_pad = LIN_ALIGN_UP(n, 4);
        l.ld = LIN_ALIGN_UP(w->cols, 16);
        l.xs_off = LIN_ALIGN_UP(n_pad * l.ld, 256);
        l.bytes = l.xs_off + LIN_ALIGN_UP(groups * n_pad * sizeof(float), 256);
        if (n && lt_weight_fits(w)) {
            l.yb_off = l.bytes;
            l.bytes += LIN_ALIGN_UP((size_t)4 * w->rows * sizeof(float), 256);
        }
    }
    return l;
}

size_t glm_cu_linear_workspace(const glm_dweight *w, int max_n)
{
    return ws_layout(w, max_n).bytes;
}

static int lin_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

#define LIN_CUDA(call)                                                                              \
    do {                                                                                            \
        cudaError_t e_ = (call);                                                                    \
        if (e_ != cudaSuccess)                                                                      \
            return lin_fail(err, errlen, "linear: %s: %s", #call, cudaGetErrorString(e_));          \
    } while (0)

#define LIN_BLAS(call)                                                                              \
    do {                                                                                            \
        cublasStatus_t s_ = (call);                                                                 \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                            \
            return lin_fail(err, errlen, "linear: %s: %s", #call, cublasGetStatusName(s_));         \
    } while (0)

static int aligned16(const void *p)
{
    return ((uintptr_t)p & 15) == 0;
}

/* ---- the cuBLASLt cache (the opening comment) ---- */

/* The per-ctx descriptor and preference, made at the first FP8 GEMM (kept only when complete). */
static int lt_setup(glm_cu_linear_ctx *ctx, char *err, size_t errlen)
{
    if (ctx->lt_cache.desc)
        return 0;
    const int32_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    const int32_t amode = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
    const int32_t bmode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
    const uint32_t align = 16;
    const cublasLtMatmulPreferenceAttributes_t al[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    cublasLtMatmulDesc_t d = NULL;
    cublasLtMatmulPreference_t pr = NULL;
    const char *what = "cublasLtMatmulDescCreate";
    cublasStatus_t st = cublasLtMatmulDescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F);
#define LT_SET(call)                                                                                \
    do {                                                                                            \
        if (st == CUBLAS_STATUS_SUCCESS) {                                                          \
            what = #call;                                                                           \
            st = (call);                                                                            \
        }                                                                                           \
    } while (0)
    LT_SET(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_SET(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LT_SET(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &amode, sizeof amode));
    LT_SET(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &bmode, sizeof bmode));
    LT_SET(cublasLtMatmulPreferenceCreate(&pr));
    for (int i = 0; i < 4; i++)
        LT_SET(cublasLtMatmulPreferenceSetAttribute(pr, al[i], &align, sizeof align));
#undef LT_SET
    if (st != CUBLAS_STATUS_SUCCESS) {
        if (pr)
            cublasLtMatmulPreferenceDestroy(pr);
        if (d)
            cublasLtMatmulDescDestroy(d);
        return lin_fail(err, errlen, "linear: %s: %s", what, cublasGetStatusName(st));
    }
    ctx->lt_cache.desc = d;
    ctx->lt_cache.pref = pr;
    return 0;
}

/* Sets a layout's shape in place (a refilled slot). */
static cublasStatus_t lt_reshape(cublasLtMatrixLayout_t l, uint64_t rows, uint64_t cols, int64_t ld)
{
    cublasStatus_t st = cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_ROWS, &rows, sizeof rows);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_COLS, &cols, sizeof cols);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_LD, &ld, sizeof ld);
    return st;
}

/* The slot of the GEMM D[m, n] = A^T (A: W's rows as stored, K x m, lda K) x B (K x n, ldb)
 * with ldc, filled on a miss (the descriptor has its scale pointers set: the heuristic checks
 * that they are there). 1: *out is ready to run; 0: the library has no kernel for it (fall
 * back); -1: an error (in err). */
static int lt_lookup(glm_cu_linear_ctx *ctx, int m, int n, int k, int ldb, int ldc, glm_cu_linear_lt_slot **out,
                     char *err, size_t errlen)
{
    const size_t ws = ctx->lt_ws ? ctx->lt_ws_bytes : 0;
    int slots = ctx->lt_cache_slots;
    slots = slots <= 0 || slots > GLM_CU_LINEAR_LT_SLOTS ? GLM_CU_LINEAR_LT_SLOTS : slots < 2 ? 2 : slots;
    glm_cu_linear_lt_slot *e = NULL, *victim = NULL;
    unsigned long tick = ++ctx->lt_cache.tick;
    for (int i = 0; i < slots; i++) {
        e = &ctx->lt_cache.slot[i];
        if (e->m == m && e->n == n && e->k == k && e->ldb == ldb && e->ldc == ldc && e->ws_bytes == ws) {
            e->last_use = tick;
            *out = e;
            return e->ok;
        }
        /* an empty slot first, else the least recently used (never the one a caller just
         * looked up: it holds the newest tick and there are >= 2 slots) */
        if (!victim || (victim->m && (!e->m || e->last_use < victim->last_use)))
            victim = e;
    }
    e = victim;
    e->m = 0; /* empty until it is complete */
    const uint64_t rows[3] = {(uint64_t)k, (uint64_t)k, (uint64_t)m}, cols[3] = {(uint64_t)m, (uint64_t)n, (uint64_t)n};
    const int64_t lds[3] = {k, ldb, ldc};
    const cudaDataType types[3] = {CUDA_R_8F_E4M3, CUDA_R_8F_E4M3, CUDA_R_32F};
    cublasLtMatrixLayout_t *ls[3] = {&e->la, &e->lb, &e->lc};
    for (int i = 0; i < 3; i++) {
        if (*ls[i]) {
            LIN_BLAS(lt_reshape(*ls[i], rows[i], cols[i], lds[i]));
        } else {
            LIN_BLAS(cublasLtMatrixLayoutCreate(ls[i], types[i], rows[i], cols[i], lds[i]));
            ctx->stats.lt_layouts_created++;
        }
    }
    const uint64_t ws64 = ws;
    LIN_BLAS(cublasLtMatmulPreferenceSetAttribute(ctx->lt_cache.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws64,
                                                  sizeof ws64));
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    ctx->stats.lt_heuristic++;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(ctx->lt, ctx->lt_cache.desc, e->la, e->lb, e->lc, e->lc,
                                                       ctx->lt_cache.pref, 1, &heur, &found);
    if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED)
        return lin_fail(err, errlen, "linear: cublasLtMatmulAlgoGetHeuristic: %s", cublasGetStatusName(st));
    e->ok = st == CUBLAS_STATUS_SUCCESS && found >= 1;
    if (e->ok)
        e->algo = heur.algo;
    e->m = m, e->n = n, e->k = k, e->ldb = ldb, e->ldc = ldc, e->ws_bytes = ws;
    e->last_use = tick;
    *out = e;
    return e->ok;
}

/* Points ctx's descriptor at A's block scales as and B's VEC128 scales bs. */
static int lt_scales(glm_cu_linear_ctx *ctx, const float *as, const float *bs, char *err, size_t errlen)
{
    LIN_BLAS(cublasLtMatmulDescSetAttribute(ctx->lt_cache.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &as, sizeof as));
    LIN_BLAS(cublasLtMatmulDescSetAttribute(ctx->lt_cache.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &bs, sizeof bs));
    return 0;
}

/* One cached GEMM: D = A^T B with A's block scales (already set) and B's VEC128 scales bs. */
static int lt_run(glm_cu_linear_ctx *ctx, const glm_cu_linear_lt_slot *e, const void *a, const void *b,
                  const float *bs, float *d, cudaStream_t stream, char *err, size_t errlen)
{
    const float one = 1.0f, zero = 0.0f;
    const size_t ws = ctx->lt_ws ? ctx->lt_ws_bytes : 0;
    LIN_BLAS(cublasLtMatmulDescSetAttribute(ctx->lt_cache.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &bs, sizeof bs));
    LIN_BLAS(cublasLtMatmul(ctx->lt, ctx->lt_cache.desc, &one, a, e->la, b, e->lb, &zero, d, e->lc, d, e->lc, &e->algo,
                            ws ? ctx->lt_ws : NULL, ws, stream));
    return 0;
}

void glm_cu_linear_ctx_release(glm_cu_linear_ctx *ctx)
{
    for (int i = 0; i < GLM_CU_LINEAR_LT_SLOTS; i++) {
        glm_cu_linear_lt_slot *e = &ctx->lt_cache.slot[i];
        if (e->la)
            cublasLtMatrixLayoutDestroy(e->la);
        if (e->lb)
            cublasLtMatrixLayoutDestroy(e->lb);
        if (e->lc)
            cublasLtMatrixLayoutDestroy(e->lc);
        memset(e, 0, sizeof *e);
    }
    if (ctx->lt_cache.pref)
        cublasLtMatmulPreferenceDestroy(ctx->lt_cache.pref);
    if (ctx->lt_cache.desc)
        cublasLtMatmulDescDestroy(ctx->lt_cache.desc);
    ctx->lt_cache.pref = NULL;
    ctx->lt_cache.desc = NULL;
    ctx->lt_cache.tick = 0;
}

/* Whether the device is one cuBLASLt's block scaling runs on (sm_90), asked once per ctx. */
static int lt_arch_ok(glm_cu_linear_ctx *ctx)
{
    if (!ctx->lt_cache.arch) {
        int dev = 0, major = 0, minor = 0;
        int ok = cudaGetDevice(&dev) == cudaSuccess &&
                 cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
                 cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) == cudaSuccess;
        ctx->lt_cache.arch = ok && major == 9 && minor == 0 ? 1 : -1;
    }
    return ctx->lt_cache.arch > 0;
}

/* The block-scaled FP8 GEMM through cuBLASLt (the opening comment gives the gate and the
 * split into n4 rows and 4 padded ones). 1: done; 0: not for cuBLASLt (run the plain
 * kernel; nothing was launched); -1: an error (in err). */
static int lt_fp8(glm_cu_linear_ctx *ctx, const glm_cu_linear_params *p, const __nv_fp8_e4m3 *q, int ldq,
                  const float *xs, float *yb, cudaStream_t stream, char *err, size_t errlen)
{
    const glm_dweight *w = p->w;
    if (!yb || !lt_weight_fits(w) || p->row0 % 128 || p->n_rows % 128)
        return 0;
    const void *a = (const char *)w->data + (size_t)p->row0 * w->cols;
    const float *as = w->scale + (size_t)(p->row0 / 128) * w->scale_ld;
    if (!aligned16(a) || !aligned16(as) || !aligned16(q) || !aligned16(xs) || !aligned16(yb) || !lt_arch_ok(ctx))
        return 0;
    const int M = p->n_rows, K = w->cols, G = K / LIN_GROUP, n4 = p->n / 4 * 4, tail = p->n - n4;
    const int direct = p->ldy % 4 == 0 && aligned16(p->y); /* y's rows are 16-byte aligned */
    if (!direct && n4 > 4)
        return 0;
    if (lt_setup(ctx, err, errlen) || lt_scales(ctx, as, xs, err, errlen))
        return -1;
    glm_cu_linear_lt_slot *em = NULL, *et = NULL;
    int rc;
    if (n4 && (rc = lt_lookup(ctx, M, direct ? n4 : 4, K, ldq, direct ? p->ldy : M, &em, err, errlen)) <= 0)
        return rc;
    if (tail && (rc = lt_lookup(ctx, M, 4, K, ldq, M, &et, err, errlen)) <= 0)
        return rc;
    if (n4) {
        if (lt_run(ctx, em, a, q, xs, direct ? p->y : yb, stream, err, errlen))
            return -1;
        if (!direct)
            LIN_CUDA(GLM_LAUNCH(lin_copy_rows, dim3((M + LIN_CVT_THREADS - 1) / LIN_CVT_THREADS, 4), LIN_CVT_THREADS,
                                0, stream, yb, M, M, p->y, p->ldy));
    }
    if (tail) {
        if (lt_run(ctx, et, a, q + (size_t)n4 * ldq, xs + (size_t)G * n4, yb, stream, err, errlen))
            return -1;
        LIN_CUDA(GLM_LAUNCH(lin_copy_rows, dim3((M + LIN_CVT_THREADS - 1) / LIN_CVT_THREADS, tail), LIN_CVT_THREADS,
                            0, stream, yb, M, M, p->y + (size_t)n4 * p->ldy, p->ldy));
    }
    ctx->stats.fp8_lt++;
    if (tail || !direct)
        ctx->stats.fp8_lt_staged++;
    return 1;
}

int glm_cu_linear(glm_cu_linear_ctx *ctx, const glm_cu_linear_params *p, void *ws, size_t ws_bytes,
                  cudaStream_t stream, char *err, size_t errlen)
{
    const glm_dweight *w = p->w;
    if (!w || p->n < 0 || p->row0 < 0 || p->n_rows < 0 || p->row0 + p->n_rows > w->rows)
        return lin_fail(err, errlen, "linear: bad shape (n %d, rows [%d, %d) of %d)", p->n, p->row0,
                        p->row0 + p->n_rows, w ? w->rows : 0);
    if (p->n == 0 || p->n_rows == 0)
        return 0;
    if (!p->x || !p->y || p->ldx < w->cols || p->ldy < p->n_rows)
        return lin_fail(err, errlen, "linear: x/y NULL or ldx %d < %d or ldy %d < %d", p->ldx, w->cols, p->ldy,
                        p->n_rows);
    lin_ws l = ws_layout(w, p->n);
    if (ws_bytes < l.bytes || (l.bytes && (!ws || !aligned16(ws))))
        return lin_fail(err, errlen, "linear: workspace of %zu bytes at %p, need %zu, 16-byte aligned", ws_bytes,
                        ws, l.bytes);
    const float one = 1.0f, zero = 0.0f;
    const int K = w->cols;
    switch (w->dtype) {
    case GLM_DTYPE_F32: {
        const float *a = (const float *)w->data + (size_t)p->row0 * K;
        LIN_BLAS(cublasGemmEx(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, p->n_rows, p->n, K, &one, a, CUDA_R_32F, K,
                              p->x, CUDA_R_32F, p->ldx, &zero, p->y, CUDA_R_32F, p->ldy, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
        return 0;
    }
    case GLM_DTYPE_BF16: {
        const __nv_bfloat16 *a = (const __nv_bfloat16 *)w->data + (size_t)p->row0 * K;
        __nv_bfloat16 *xb = (__nv_bfloat16 *)ws;
        dim3 grid(p->n, (K + LIN_CVT_THREADS - 1) / LIN_CVT_THREADS);
        LIN_CUDA(GLM_LAUNCH(lin_to_bf16, grid, LIN_CVT_THREADS, 0, stream, p->x, p->ldx, K, xb, l.ld));
        LIN_BLAS(cublasGemmEx(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, p->n_rows, p->n, K, &one, a, CUDA_R_16BF, K, xb,
                              CUDA_R_16BF, l.ld, &zero, p->y, CUDA_R_32F, p->ldy, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
        return 0;
    }
    case GLM_DTYPE_F8_E4M3: {
        if (!w->scale || w->block_r < 1 || w->block_c < 1)
            return lin_fail(err, errlen, "linear: FP8 weight without block scales");
        __nv_fp8_e4m3 *q = (__nv_fp8_e4m3 *)ws;
        float *xs = (float *)((char *)ws + l.xs_off);
        float *yb = l.yb_off ? (float *)((char *)ws + l.yb_off) : NULL;
        const int n4 = p->n / 4 * 4, n_pad = LIN_ALIGN_UP(p->n, 4);
        dim3 qgrid(n_pad, (K + LIN_GROUP - 1) / LIN_GROUP);
        LIN_CUDA(GLM_LAUNCH(lin_quant_fp8, qgrid, LIN_GROUP, 0, stream, p->x, p->ldx, K, p->n, n4, q, l.ld, xs));
        if (!ctx->force_plain_fp8) {
            int rc = lt_fp8(ctx, p, q, l.ld, xs, yb, stream, err, errlen);
            if (rc != 0)
                return rc < 0 ? -1 : 0;
        }
        dim3 grid((p->n_rows + LIN_TILE - 1) / LIN_TILE, (p->n + LIN_TILE - 1) / LIN_TILE), block(LIN_TILE, LIN_TILE);
        LIN_CUDA(GLM_LAUNCH(lin_fp8_plain, grid, block, 0, stream, *w, p->row0, p->n_rows, p->n, n4, q, l.ld, xs,
                            p->y, p->ldy));
        ctx->stats.fp8_plain++;
        return 0;
    }
    default:
        return lin_fail(err, errlen, "linear: weight dtype %d is not F32, BF16 or F8_E4M3", (int)w->dtype);
    }
}
