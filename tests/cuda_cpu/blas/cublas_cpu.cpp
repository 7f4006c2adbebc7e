// cuBLAS / cuBLASLt stand-in for the CPU execution layer (test-only; never linked into glm-server).
// This file: the cuBLAS half; cublaslt_cpu.cpp: the cuBLASLt half; blas_internal.h: what they share.
//
// Implements, against the real CUDA 13 prototypes of cublas_v2.h and cublasLt.h (so a call site
// with a wrong argument fails to compile), exactly the functions the CUDA backend calls:
//   cuBLAS:   cublasCreate/Destroy, cublasSetStream, cublasSetMathMode, cublasGemmEx,
//             cublasGemmStridedBatchedEx, cublasGemmBatchedEx, cublasGetStatusName/String;
//   cuBLASLt: cublasLtCreate/Destroy, cublasLtMatmulDesc{Create,Destroy,SetAttribute},
//             cublasLtMatrixLayout{Create,Destroy,SetAttribute},
//             cublasLtMatmulPreference{Create,Destroy,SetAttribute},
//             cublasLtMatmulAlgoGetHeuristic (one algo), cublasLtMatmul,
//             cublasLtGetStatusName/String.
// Every result is D = act(alpha * op(A) op(B) + beta * C + bias), summed in double and rounded
// once to the output type with the toolkit's own round-to-nearest-even conversions. "Device"
// pointers are host pointers (the CPU layer's cudaMalloc returns host memory); streams are
// ignored because the work is done before the call returns. When beta == 0, C is not read (as in
// BLAS), so NaN in an unused C cannot leak into D.
//
// Argument checks follow the cuBLAS documentation: a null handle is NOT_INITIALIZED; negative
// sizes, a transpose that is not N/T/C, a leading dimension smaller than the stored rows, a null
// alpha/beta, a wrong attribute size or enum value are INVALID_VALUE; a valid combination that
// the library has no kernel for (types, compute type, FP8 not in "TN" form, epilogues and scale
// modes this stand-in does not model) is NOT_SUPPORTED. A message on stderr names the check.
#include "blas_internal.h"

using namespace cublas_cpu;

namespace {

Handle* blas(cublasHandle_t h) {
  Handle* p = reinterpret_cast<Handle*>(h);
  return p && p->magic == kMagicBlas ? p : nullptr;
}

// The checks of cublasGemmEx and its batched forms, in the documented order.
cublasStatus_t gemm_ex_check(const char* fn, cublasHandle_t handle, cublasOperation_t transa,
                             cublasOperation_t transb, int m, int n, int k, const void* alpha,
                             cudaDataType Atype, int lda, cudaDataType Btype, int ldb,
                             const void* beta, cudaDataType Ctype, int ldc, int batch,
                             cublasComputeType_t compute, cublasGemmAlgo_t algo) {
  if (!blas(handle)) return fail(CUBLAS_STATUS_NOT_INITIALIZED, fn, "null or destroyed handle");
  if (m < 0 || n < 0 || k < 0 || batch < 0)
    return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "negative m, n, k or batch count");
  if (!valid_op(transa) || !valid_op(transb))
    return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "transa/transb is not N, T or C");
  const int a_rows = transa == CUBLAS_OP_N ? m : k, b_rows = transb == CUBLAS_OP_N ? k : n;
  if (lda < (a_rows > 1 ? a_rows : 1))
    return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "lda < max(1, rows of A as stored)");
  if (ldb < (b_rows > 1 ? b_rows : 1))
    return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "ldb < max(1, rows of B as stored)");
  if (ldc < (m > 1 ? m : 1)) return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "ldc < max(1, m)");
  if (!alpha || !beta) return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "alpha or beta is NULL");
  if (!(algo == CUBLAS_GEMM_DEFAULT || algo == CUBLAS_GEMM_DEFAULT_TENSOR_OP ||
        (algo >= CUBLAS_GEMM_ALGO0 && algo <= CUBLAS_GEMM_ALGO23) ||
        (algo >= CUBLAS_GEMM_ALGO0_TENSOR_OP && algo <= CUBLAS_GEMM_ALGO15_TENSOR_OP)))
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "algo is not supported");
  // The combinations of the cublasGemmEx table this stand-in has (scale type CUDA_R_32F):
  // COMPUTE_32F(_PEDANTIC): F32 x F32 -> F32, BF16 x BF16 -> BF16 or F32;
  // COMPUTE_32F_FAST_16F/_16BF/_TF32: F32 x F32 -> F32 only.
  const bool f32 = Atype == CUDA_R_32F && Btype == CUDA_R_32F && Ctype == CUDA_R_32F;
  const bool bf16 = Atype == CUDA_R_16BF && Btype == CUDA_R_16BF &&
                    (Ctype == CUDA_R_16BF || Ctype == CUDA_R_32F);
  switch (compute) {
    case CUBLAS_COMPUTE_32F:
    case CUBLAS_COMPUTE_32F_PEDANTIC:
      if (f32 || bf16) return CUBLAS_STATUS_SUCCESS;
      break;
    case CUBLAS_COMPUTE_32F_FAST_16F:
    case CUBLAS_COMPUTE_32F_FAST_16BF:
    case CUBLAS_COMPUTE_32F_FAST_TF32:
      if (f32) return CUBLAS_STATUS_SUCCESS;
      break;
    default: break;
  }
  return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "Atype/Btype/Ctype/computeType combination");
}

Gemm gemm_ex_setup(cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                   const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                   cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype,
                   int ldc) {
  // alpha and beta are host floats: the scale type of every supported combination is CUDA_R_32F
  Gemm g{};
  g.m = m, g.n = n, g.k = k, g.batch = 1;
  g.alpha = *static_cast<const float*>(alpha), g.beta = *static_cast<const float*>(beta);
  g.a = {A, Atype, lda, false, transa != CUBLAS_OP_N, 0};
  g.b = {B, Btype, ldb, false, transb != CUBLAS_OP_N, 0};
  g.c = {C, Ctype, ldc, false, false, 0};
  g.d = C, g.d_type = Ctype, g.d_ld = ldc, g.d_row_order = false;
  return g;
}

}  // namespace

extern "C" {

cublasStatus_t CUBLASWINAPI cublasCreate_v2(cublasHandle_t* handle) {
  if (!handle) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasCreate", "handle is NULL");
  Handle* h = new (std::nothrow) Handle{kMagicBlas, nullptr, CUBLAS_DEFAULT_MATH};
  if (!h) return CUBLAS_STATUS_ALLOC_FAILED;
  *handle = reinterpret_cast<cublasHandle_t>(h);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasDestroy_v2(cublasHandle_t handle) {
  Handle* h = blas(handle);
  if (!h) return fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasDestroy", "null or destroyed handle");
  h->magic = 0;
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId) {
  Handle* h = blas(handle);
  if (!h) return fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetStream", "null or destroyed handle");
  h->stream = streamId;  // work is done at once; kept only so the call site is exercised
  return CUBLAS_STATUS_SUCCESS;
}

// The documented requirement: a workspace of size bytes aligned to 256 bytes (a null pointer only
// with size 0, which makes cuBLAS run without one).
cublasStatus_t CUBLASWINAPI cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace,
                                                  size_t workspaceSizeInBytes) {
  Handle* h = blas(handle);
  if (!h) return fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetWorkspace", "null or destroyed handle");
  if (workspaceSizeInBytes > 0 && (!workspace || reinterpret_cast<uintptr_t>(workspace) % 256 != 0))
    return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasSetWorkspace", "workspace null or not 256-byte aligned");
  return CUBLAS_STATUS_SUCCESS;  // the stand-in needs no scratch
}

cublasStatus_t CUBLASWINAPI cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  Handle* h = blas(handle);
  if (!h) return fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetMathMode", "null or destroyed handle");
  const int base = mode & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
  if (base != CUBLAS_DEFAULT_MATH && base != CUBLAS_TENSOR_OP_MATH && base != CUBLAS_PEDANTIC_MATH &&
      base != CUBLAS_TF32_TENSOR_OP_MATH)
    return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasSetMathMode", "unknown math mode");
  h->math = mode;  // results are computed in double whatever the mode
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const void* alpha, const void* A, cudaDataType Atype,
                                         int lda, const void* B, cudaDataType Btype, int ldb,
                                         const void* beta, void* C, cudaDataType Ctype, int ldc,
                                         cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  cublasStatus_t st = gemm_ex_check("cublasGemmEx", handle, transa, transb, m, n, k, alpha, Atype,
                                    lda, Btype, ldb, beta, Ctype, ldc, 1, computeType, algo);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  Gemm g = gemm_ex_setup(transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C,
                         Ctype, ldc);
  g.run();
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasGemmStridedBatchedEx(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
    const void* alpha, const void* A, cudaDataType Atype, int lda, long long int strideA,
    const void* B, cudaDataType Btype, int ldb, long long int strideB, const void* beta, void* C,
    cudaDataType Ctype, int ldc, long long int strideC, int batchCount,
    cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  cublasStatus_t st =
      gemm_ex_check("cublasGemmStridedBatchedEx", handle, transa, transb, m, n, k, alpha, Atype,
                    lda, Btype, ldb, beta, Ctype, ldc, batchCount, computeType, algo);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  Gemm g = gemm_ex_setup(transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C,
                         Ctype, ldc);
  g.batch = batchCount;
  g.a.batch_stride = strideA, g.b.batch_stride = strideB, g.c.batch_stride = strideC;
  g.d_stride = strideC;
  g.run();
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasGemmBatchedEx(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
    const void* alpha, const void* const Aarray[], cudaDataType Atype, int lda,
    const void* const Barray[], cudaDataType Btype, int ldb, const void* beta,
    void* const Carray[], cudaDataType Ctype, int ldc, int batchCount,
    cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  cublasStatus_t st = gemm_ex_check("cublasGemmBatchedEx", handle, transa, transb, m, n, k, alpha,
                                    Atype, lda, Btype, ldb, beta, Ctype, ldc, batchCount,
                                    computeType, algo);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (batchCount > 0 && (!Aarray || !Barray || !Carray))
    return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasGemmBatchedEx", "pointer array is NULL");
  Gemm g = gemm_ex_setup(transa, transb, m, n, k, alpha, nullptr, Atype, lda, nullptr, Btype, ldb,
                         beta, nullptr, Ctype, ldc);
  g.batch = batchCount;
  g.a_array = Aarray, g.b_array = Barray, g.c_array = Carray;
  g.run();
  return CUBLAS_STATUS_SUCCESS;
}

const char* CUBLASWINAPI cublasGetStatusName(cublasStatus_t status) { return status_name(status); }

const char* CUBLASWINAPI cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    default: return "an error occurred in the cuBLAS stand-in";
  }
}

}  // extern "C"
