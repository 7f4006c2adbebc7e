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
 *         saturated to +-448 (__NV_SATFINITE). The scales are stored as
 *         cuBLASLt's CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F reads them for B
 *         (outer index = token): xs[(k / 128) * n + t]. Then either
 *           - cuBLASLt (the fast path): "TN", A = W e4m3 with the weight's
 *             CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F scales (w->scale
 *             from block row row0 / 128, row stride scale_ld), B = q with the
 *             VEC128 scales, float32 C = D = y; or
 *           - lin_fp8_plain (the fallback, correctness first): a shared-memory
 *             tiled kernel over the same q and s and the dequantised weight
 *             q_w * block scale (glm_dw_at), float32 accumulation. It takes
 *             any block shape (the tests' 4 x 8 blocks) and any alignment.
 *
 * When cuBLASLt's block-scaled FP8 GEMM is used (lt_fp8_fits), and why:
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
 *   n_rows % 128 == 0 (the scale pointer starts at a block row), n % 4 == 0,
 *   ldy % 4 == 0, 16-byte aligned pointers, scale_ld == roundup(in/128, 4).
 *   Inside the gate a heuristic answer of NOT_SUPPORTED (another cuBLAS build)
 *   still falls back to the plain kernel; any other failure is an error.
 *   Not yet run on a GPU: tests/backend checks this call site against the
 *   cuBLASLt stand-in (tests/cuda_cpu/blas/cublaslt_cpu.cpp), which states the
 *   same layouts, and against the plain kernel.
 *
 * Workspace (glm_cu_linear_workspace), each piece 256-byte aligned:
 *   BF16: xb [max_n, roundup(in, 8)] bf16.
 *   FP8:  q [max_n, roundup(in, 16)] e4m3, then xs [ceil(in/128), max_n] float.
 */
#include "cuda/glm_cuda.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

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

/* One 1 x 128 group per block: grid (n, ceil(K / 128)), block 128.
 * q[t, k] = e4m3(x[t, k] / s), xs[g * n + t] = s. */
__global__ void lin_quant_fp8(const float *x, int ldx, int K, int n, __nv_fp8_e4m3 *q, int ldq, float *xs)
{
    __shared__ float warp_max[LIN_GROUP / 32];
    int t = blockIdx.x, g = blockIdx.y, k = g * LIN_GROUP + threadIdx.x;
    float v = k < K ? x[(size_t)t * ldx + k] : 0.0f;
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
        xs[(size_t)g * n + t] = s;
}

/* The fallback FP8 GEMM: y[t, r] = sum_k (q[t, k] * xs[k/128, t]) * W(row0 + r, k), float32.
 * grid (ceil(n_rows / 16), ceil(n / 16)), block (16, 16): threadIdx.x is the row within
 * the tile (and k while loading), threadIdx.y the token. */
__global__ void lin_fp8_plain(glm_dweight w, int row0, int n_rows, int n, const __nv_fp8_e4m3 *q, int ldq,
                              const float *xs, float *y, int ldy)
{
    __shared__ float xt[LIN_TILE][LIN_TILE + 1]; /* [token][k] dequantised activations */
    __shared__ float wt[LIN_TILE][LIN_TILE + 1]; /* [row][k] dequantised weight */
    int tx = threadIdx.x, ty = threadIdx.y;
    int r0 = blockIdx.x * LIN_TILE, t0 = blockIdx.y * LIN_TILE, K = w.cols;
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += LIN_TILE) {
        int k = k0 + tx, t = t0 + ty, r = r0 + ty;
        xt[ty][tx] = t < n && k < K ? static_cast<float>(q[(size_t)t * ldq + k]) * xs[(size_t)(k / LIN_GROUP) * n + t]
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

/* ---- host ------------------------------------------------------------------------- */

typedef struct {
    int ld;          /* elements per row of the BF16 copy / the e4m3 activations */
    size_t xs_off;   /* FP8: byte offset of the scales */
    size_t bytes;    /* the whole workspace */
} lin_ws;

static lin_ws ws_layout(const glm_dweight *w, int max_n)
{
    lin_ws l = {0, 0, 0};
    size_t n = max_n > 0 ? (size_t)max_n : 0;
    if (w->dtype == GLM_DTYPE_BF16) {
        l.ld = LIN_ALIGN_UP(w->cols, 8);
        l.bytes = LIN_ALIGN_UP(n * l.ld * sizeof(__nv_bfloat16), 256);
    } else if (w->dtype == GLM_DTYPE_F8_E4M3) {
        size_t groups = (size_t)(w->cols + LIN_GROUP - 1) / LIN_GROUP;
        l.ld = LIN_ALIGN_UP(w->cols, 16);
        l.xs_off = LIN_ALIGN_UP(n * l.ld, 256);
        l.bytes = l.xs_off + LIN_ALIGN_UP(groups * n * sizeof(float), 256);
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

/* Whether the shape and the device are ones cuBLASLt's block-scaled FP8 GEMM is known to
 * take (the opening comment says where each condition comes from). */
static int lt_fp8_fits(const glm_cu_linear_params *p, const void *q, const float *xs)
{
    const glm_dweight *w = p->w;
    if (w->block_r != 128 || w->block_c != 128 || w->cols % 128 || p->row0 % 128 || p->n_rows % 128 ||
        p->n % 4 || p->ldy % 4 || w->scale_ld != LIN_ALIGN_UP(w->cols / 128, 4))
        return 0;
    const void *a = (const char *)w->data + (size_t)p->row0 * w->cols;
    const float *as = w->scale + (size_t)(p->row0 / 128) * w->scale_ld;
    if (!aligned16(a) || !aligned16(as) || !aligned16(q) || !aligned16(xs) || !aligned16(p->y))
        return 0;
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess)
        return 0;
    return major == 9 && minor == 0;
}

/* The block-scaled FP8 GEMM through cuBLASLt. 1: done; 0: the library has no kernel for
 * it (fall back); -1: an error (in err). */
static int lt_fp8(const glm_cu_linear_ctx *ctx, const glm_cu_linear_params *p, const __nv_fp8_e4m3 *q, int ldq,
                  const float *xs, cudaStream_t stream, char *err, size_t errlen)
{
    const glm_dweight *w = p->w;
    const void *a = (const char *)w->data + (size_t)p->row0 * w->cols;
    const float *as = w->scale + (size_t)(p->row0 / 128) * w->scale_ld;
    const int32_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    const int32_t amode = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
    const int32_t bmode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
    const uint64_t ws_max = ctx->lt_ws ? ctx->lt_ws_bytes : 0;
    const float one = 1.0f, zero = 0.0f;
    cublasLtMatmulDesc_t desc = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0, rc = -1;
    cublasStatus_t st;
    const char *what = "";
#define LT_STEP(call)                                                                               \
    do {                                                                                            \
        what = #call;                                                                               \
        if ((st = (call)) != CUBLAS_STATUS_SUCCESS)                                                 \
            goto out;                                                                               \
    } while (0)
    LT_STEP(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT_STEP(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_STEP(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LT_STEP(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &amode, sizeof amode));
    LT_STEP(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &bmode, sizeof bmode));
    LT_STEP(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &as, sizeof as));
    LT_STEP(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &xs, sizeof xs));
    /* A: W rows [row0, row0 + n_rows) as stored = column-major [in, n_rows]; B: q as
     * column-major [in, n]; C = D: y^T column-major [n_rows, n] */
    LT_STEP(cublasLtMatrixLayoutCreate(&la, CUDA_R_8F_E4M3, (uint64_t)w->cols, (uint64_t)p->n_rows, w->cols));
    LT_STEP(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8F_E4M3, (uint64_t)w->cols, (uint64_t)p->n, ldq));
    LT_STEP(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, (uint64_t)p->n_rows, (uint64_t)p->n, p->ldy));
    LT_STEP(cublasLtMatmulPreferenceCreate(&pref));
    LT_STEP(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_max,
                                                 sizeof ws_max));
    what = "cublasLtMatmulAlgoGetHeuristic";
    st = cublasLtMatmulAlgoGetHeuristic(ctx->lt, desc, la, lb, lc, lc, pref, 1, &heur, &found);
    if (st == CUBLAS_STATUS_NOT_SUPPORTED || (st == CUBLAS_STATUS_SUCCESS && found < 1)) {
        rc = 0;
        st = CUBLAS_STATUS_SUCCESS;
        goto out;
    }
    if (st != CUBLAS_STATUS_SUCCESS)
        goto out;
    LT_STEP(cublasLtMatmul(ctx->lt, desc, &one, a, la, q, lb, &zero, p->y, lc, p->y, lc, &heur.algo,
                           ws_max ? ctx->lt_ws : NULL, ws_max, stream));
    rc = 1;
#undef LT_STEP
out:
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    if (lc)
        cublasLtMatrixLayoutDestroy(lc);
    if (lb)
        cublasLtMatrixLayoutDestroy(lb);
    if (la)
        cublasLtMatrixLayoutDestroy(la);
    if (desc)
        cublasLtMatmulDescDestroy(desc);
    if (st != CUBLAS_STATUS_SUCCESS)
        return lin_fail(err, errlen, "linear: %s: %s", what, cublasGetStatusName(st));
    return rc;
}

int glm_cu_linear(const glm_cu_linear_ctx *ctx, const glm_cu_linear_params *p, void *ws, size_t ws_bytes,
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
        dim3 qgrid(p->n, (K + LIN_GROUP - 1) / LIN_GROUP);
        LIN_CUDA(GLM_LAUNCH(lin_quant_fp8, qgrid, LIN_GROUP, 0, stream, p->x, p->ldx, K, p->n, q, l.ld, xs));
        if (!ctx->force_plain_fp8 && lt_fp8_fits(p, q, xs)) {
            int rc = lt_fp8(ctx, p, q, l.ld, xs, stream, err, errlen);
            if (rc != 0)
                return rc < 0 ? -1 : 0;
        }
        dim3 grid((p->n_rows + LIN_TILE - 1) / LIN_TILE, (p->n + LIN_TILE - 1) / LIN_TILE), block(LIN_TILE, LIN_TILE);
        LIN_CUDA(GLM_LAUNCH(lin_fp8_plain, grid, block, 0, stream, *w, p->row0, p->n_rows, p->n, q, l.ld, xs, p->y,
                            p->ldy));
        return 0;
    }
    default:
        return lin_fail(err, errlen, "linear: weight dtype %d is not F32, BF16 or F8_E4M3", (int)w->dtype);
    }
}
