// Internal to the cuBLAS/cuBLASLt stand-in (cublas_cpu.cpp, cublaslt_cpu.cpp): element access by
// cudaDataType, operands as stored, FP8 scale lookup and the one double-precision GEMM loop both
// APIs run. The layout of the scale tensors is stated in cublaslt_cpu.cpp's opening comment.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

namespace cublas_cpu {

const uint32_t kMagicBlas = 0x424c4153u, kMagicLt = 0x4c54484eu;

struct Handle {
  uint32_t magic;
  cudaStream_t stream;
  cublasMath_t math;
};

// The enumerator's name, as cublasGetStatusName returns it.
inline const char* status_name(cublasStatus_t st) {
  switch (st) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

inline cublasStatus_t fail(cublasStatus_t st, const char* fn, const char* why) {
  fprintf(stderr, "cublas_cpu: %s: %s (%s)\n", fn, why, status_name(st));
  return st;
}

inline size_t type_size(cudaDataType t) {
  switch (t) {
    case CUDA_R_32F: return 4;
    case CUDA_R_16BF: return 2;
    case CUDA_R_8F_E4M3: return 1;
    default: return 0;
  }
}

inline double load(cudaDataType t, const void* p, int64_t i) {
  switch (t) {
    case CUDA_R_32F: return static_cast<const float*>(p)[i];
    case CUDA_R_16BF: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case CUDA_R_8F_E4M3: return static_cast<float>(static_cast<const __nv_fp8_e4m3*>(p)[i]);
    default: return NAN;
  }
}

inline void store(cudaDataType t, void* p, int64_t i, double v) {
  switch (t) {
    case CUDA_R_32F: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case CUDA_R_16BF: static_cast<__nv_bfloat16*>(p)[i] = __double2bfloat16(v); break;
    default: break;
  }
}

// One operand of a GEMM as stored: element (r, c) of the stored matrix sits at r + c * ld
// (column order) or r * ld + c (row order); op() swaps r and c.
struct Operand {
  const void* p;
  cudaDataType type;
  int64_t ld;
  bool row_order;
  bool trans;
  int64_t batch_stride;  // elements
  double at(int64_t i, int64_t j, int64_t b) const {  // element (i, j) of op(X), batch b
    const int64_t r = trans ? j : i, c = trans ? i : j;
    return load(type, p, b * batch_stride + (row_order ? r * ld + c : r + c * ld));
  }
};

struct Scale {
  int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F;
  const float* s = nullptr;
  int64_t outer = 0, k = 0;
  double at(int64_t o, int64_t kk) const {
    switch (mode) {
      case CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F: return s ? s[0] : 1.0;
      case CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F: return s[o];
      case CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F: return s[(kk / 128) * outer + o];
      case CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F: {
        const int64_t kb4 = ((k + 127) / 128 + 3) / 4 * 4;
        return s[(o / 128) * kb4 + kk / 128];
      }
      default: return NAN;
    }
  }
};

enum Act { ACT_NONE, ACT_RELU, ACT_GELU };

inline double activate(Act a, double x) {
  switch (a) {
    case ACT_RELU: return x > 0 ? x : 0;
    // cuBLASLt's GELU epilogue is the tanh approximation
    case ACT_GELU: return 0.5 * x * (1 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    default: return x;
  }
}

// The whole computation: D[b](i, j) = act(alpha * sum_k sa * A(i,k) * sb * B(k,j)
//                                         + beta * C[b](i, j) + bias[b](i)) for i < m, j < n.
struct Gemm {
  int64_t m, n, k, batch;
  double alpha, beta;
  Operand a, b, c;
  void* d;
  cudaDataType d_type;
  int64_t d_ld, d_stride;
  bool d_row_order;
  Scale sa, sb;
  const void* bias = nullptr;
  cudaDataType bias_type = CUDA_R_32F;
  int64_t bias_stride = 0;
  Act act = ACT_NONE;
  const void* const* a_array = nullptr;  // cublasGemmBatchedEx: one pointer per batch
  const void* const* b_array = nullptr;
  void* const* c_array = nullptr;

  void run() {
    const bool scalar_scales = sa.mode == CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F &&
                               sb.mode == CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F;
    for (int64_t bt = 0; bt < batch; bt++) {
      Operand A = a, B = b, C = c;
      void* D = d;
      int64_t bi = bt;
      if (a_array) {
        A.p = a_array[bt], B.p = b_array[bt], C.p = c_array[bt], D = c_array[bt];
        bi = 0;
      }
      for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < m; i++) {
          double acc = 0;
          if (scalar_scales) {
            for (int64_t kk = 0; kk < k; kk++) acc += A.at(i, kk, bi) * B.at(kk, j, bi);
            acc *= sa.at(0, 0) * sb.at(0, 0);
          } else {
            for (int64_t kk = 0; kk < k; kk++)
              acc += sa.at(i, kk) * A.at(i, kk, bi) * sb.at(j, kk) * B.at(kk, j, bi);
          }
          double v = alpha * acc;
          if (beta != 0) v += beta * C.at(i, j, bi);
          if (bias) v += load(bias_type, bias, bt * bias_stride + i);
          const int64_t di = d_row_order ? i * d_ld + j : i + j * d_ld;
          store(d_type, D, (a_array ? 0 : bt * d_stride) + di, activate(act, v));
        }
    }
  }
};

inline bool valid_op(cublasOperation_t op) {
  return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C;
}

}  // namespace cublas_cpu
