// cuBLASLt half of the cuBLAS/cuBLASLt stand-in (test-only; never linked into glm-server): handle,
// matmul descriptor, matrix layout, preference, heuristic (one algorithm) and cublasLtMatmul for
// F32, BF16 and FP8 e4m3 inputs with F32 or BF16 output. cublas_cpu.cpp states the semantics and
// the argument checks common to both halves.
//
// FP8 block scales (cublasLtMatmulMatrixScale_t, cublasLt.h of CUDA 13.1). Our reading of the
// header comments and of the cuBLAS documentation ("Scaling factors layouts"), stated here
// because the backend must write its scale tensors the same way:
//   - Scale factors multiply the *logical* operands: op(A) is M x K, op(B) is K x N, whatever
//     the transposes; the "outer" index is M for A and N for B, the "inner" one is K.
//   - SCALAR_32F: one float for the whole tensor (a null pointer means 1).
//   - OUTER_VEC_32F: one float per outer index (M floats for A, N for B).
//   - VEC128_32F: one float per 128 consecutive K elements of each outer index, the scale tensor
//     stored outer-major: scale(o, k) = s[(k / 128) * outer + o], ceil(K/128) * outer floats.
//   - BLK128x128_32F: one float per 128 x 128 block (outer block ob, K block kb), stored K-major
//     with the K-block count padded to a multiple of 4 (16-byte rows):
//     scale(o, k) = s[(o / 128) * roundup(ceil(K/128), 4) + k / 128].
//   A partial last block (K or the outer size not a multiple of 128) has its own scale.
//   The same layouts are what PyTorch checks before it hands block scales to cuBLASLt
//   (torch/_meta_registrations.py, _check_scaled_mm_sizes_v2: 1x128 scales [outer, K/128] with
//   strides [1, outer]; 128x128 scales [L4, outer/128] with strides [1, L4], L4 = roundup(K/128,
//   4)). Not yet run against the real library on a GPU; PyTorch only uses multiples of 128.
//   Hopper's kernels take VEC128 x VEC128, VEC128 x BLK128x128 and BLK128x128 x VEC128 on
//   E4M3 inputs with COMPUTE_32F; any other mix of a block mode is NOT_SUPPORTED here.
#include "blas_internal.h"

using namespace cublas_cpu;

namespace {

struct LtHandle {
  uint32_t magic;
};

struct Layout {
  cudaDataType type;
  uint64_t rows, cols;
  int64_t ld;
  int32_t order = CUBLASLT_ORDER_COL;
  int32_t batch = 1;
  int64_t batch_stride = 0;  // elements
};

struct Desc {
  cublasComputeType_t compute;
  cudaDataType_t scale_type;
  int32_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
  uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  int32_t bias_type = -1;  // -1: the default, D's type
  int64_t bias_stride = 0;
  const void *a_scale = nullptr, *b_scale = nullptr, *c_scale = nullptr, *d_scale = nullptr;
  int32_t a_mode = CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F;
  int32_t b_mode = CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F;
  int32_t pointer_mode = CUBLASLT_POINTER_MODE_HOST;
  int unmodelled = -1;  // the last attribute set whose effect this stand-in does not model
};

struct Pref {
  uint64_t max_workspace = 0;
};

LtHandle* lt(cublasLtHandle_t h) {
  LtHandle* p = reinterpret_cast<LtHandle*>(h);
  return p && p->magic == kMagicLt ? p : nullptr;
}
Desc* desc_of(cublasLtMatmulDesc_t d) { return reinterpret_cast<Desc*>(d); }
Layout* layout_of(cublasLtMatrixLayout_t l) { return reinterpret_cast<Layout*>(l); }

template <typename T>
bool get_attr(const void* buf, size_t size, T* out) {
  if (!buf || size != sizeof(T)) return false;
  memcpy(out, buf, sizeof(T));
  return true;
}

bool valid_scale_mode(int32_t m) {
  return m >= CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F && m < CUBLASLT_MATMUL_MATRIX_SCALE_END;
}
bool is_block_mode(int32_t m) {
  return m == CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F ||
         m == CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
}

// Everything cublasLtMatmulAlgoGetHeuristic and cublasLtMatmul check before any pointer is
// read; fills g's shapes, operands (without data pointers), epilogue and scale modes.
cublasStatus_t lt_check(const char* fn, cublasLtHandle_t handle, const Desc* dp, const Layout* A,
                        const Layout* B, const Layout* C, const Layout* D, Gemm* g) {
  if (!lt(handle)) return fail(CUBLAS_STATUS_NOT_INITIALIZED, fn, "null or destroyed handle");
  if (!dp || !A || !B || !C || !D)
    return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "a descriptor is NULL");
  const Desc& d = *dp;
  if (d.unmodelled != -1) {
    fprintf(stderr, "cublas_cpu: %s: cublasLtMatmulDescAttributes_t %d\n", fn, d.unmodelled);
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "a descriptor attribute whose effect is not modelled");
  }
  const Layout* ls[4] = {A, B, C, D};
  const char* names[4] = {"A", "B", "C", "D"};
  for (int i = 0; i < 4; i++) {
    const Layout& l = *ls[i];
    if (l.order != CUBLASLT_ORDER_COL && l.order != CUBLASLT_ORDER_ROW) {
      fprintf(stderr, "cublas_cpu: %s: %s\n", fn, names[i]);
      return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "only CUBLASLT_ORDER_COL and _ROW are modelled");
    }
    const uint64_t need = l.order == CUBLASLT_ORDER_COL ? l.rows : l.cols;
    if (l.ld < 1 || static_cast<uint64_t>(l.ld) < need) {
      fprintf(stderr, "cublas_cpu: %s: matrix %s\n", fn, names[i]);
      return fail(CUBLAS_STATUS_INVALID_VALUE, fn,
                  "leading dimension smaller than the rows (column order) or columns (row order)");
    }
  }
  if (d.transa == CUBLAS_OP_C || d.transb == CUBLAS_OP_C)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "CUBLAS_OP_C on real types is not modelled");
  const bool ta = d.transa == CUBLAS_OP_T, tb = d.transb == CUBLAS_OP_T;
  const uint64_t m = ta ? A->cols : A->rows, ka = ta ? A->rows : A->cols;
  const uint64_t kb = tb ? B->cols : B->rows, n = tb ? B->rows : B->cols;
  if (ka != kb || D->rows != m || D->cols != n || C->rows != m || C->cols != n)
    return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "shapes of op(A), op(B), C and D do not agree");
  if (A->batch < 1 || B->batch != A->batch || C->batch != A->batch || D->batch != A->batch)
    return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "batch counts differ");
  if (d.scale_type != CUDA_R_32F)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "scale type other than CUDA_R_32F");
  if (d.pointer_mode != CUBLASLT_POINTER_MODE_HOST)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "only CUBLASLT_POINTER_MODE_HOST is modelled");
  if (C->type != D->type || C->order != D->order)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "C and D differ in type or order");

  // Type table (the subset of the cublasLtMatmul table the backend uses):
  //   F32 x F32 -> F32 with COMPUTE_32F, _PEDANTIC, _FAST_16F, _FAST_16BF, _FAST_TF32;
  //   BF16 x BF16 -> BF16 or F32 with COMPUTE_32F or _PEDANTIC;
  //   E4M3 x E4M3 -> BF16 or F32 with COMPUTE_32F, "TN" only, column order, lda/ldb % 16 == 0.
  const bool fp8 = A->type == CUDA_R_8F_E4M3 && B->type == CUDA_R_8F_E4M3;
  const bool compute32 = d.compute == CUBLAS_COMPUTE_32F || d.compute == CUBLAS_COMPUTE_32F_PEDANTIC;
  const bool fast = d.compute == CUBLAS_COMPUTE_32F_FAST_16F || d.compute == CUBLAS_COMPUTE_32F_FAST_16BF ||
                    d.compute == CUBLAS_COMPUTE_32F_FAST_TF32;
  bool ok = false;
  if (A->type == CUDA_R_32F && B->type == CUDA_R_32F)
    ok = D->type == CUDA_R_32F && (compute32 || fast);
  else if (A->type == CUDA_R_16BF && B->type == CUDA_R_16BF)
    ok = (D->type == CUDA_R_16BF || D->type == CUDA_R_32F) && compute32;
  else if (fp8)
    ok = (D->type == CUDA_R_16BF || D->type == CUDA_R_32F) && d.compute == CUBLAS_COMPUTE_32F;
  if (!ok) return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "A/B/C/D type and compute type combination");
  if (fp8) {
    if (!ta || tb)
      return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "FP8 needs A transposed and B not (\"TN\")");
    if (A->order != CUBLASLT_ORDER_COL || B->order != CUBLASLT_ORDER_COL)
      return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "FP8 A and B must be in column order");
    if (A->ld % 16 || B->ld % 16)
      return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "FP8 lda/ldb must be multiples of 16 (16-byte rows)");
  } else {
    if (d.a_scale || d.b_scale)
      return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "A/B scale pointers are for FP8 inputs only");
    if (d.a_mode != CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F ||
        d.b_mode != CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F)
      return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "scale modes are for FP8 inputs only");
  }
  // C and D scales only apply to FP8 outputs, which this stand-in does not have.
  if (d.c_scale || d.d_scale)
    return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "C/D scale pointer set for a non-FP8 C/D");
  const bool ablk = is_block_mode(d.a_mode), bblk = is_block_mode(d.b_mode);
  if (ablk != bblk)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "a block scale mode on one operand only");
  if (d.a_mode == CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F &&
      d.b_mode == CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "BLK128x128 on both A and B");
  const bool outer_a = d.a_mode == CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
  const bool outer_b = d.b_mode == CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
  if (outer_a != outer_b)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "OUTER_VEC_32F on one operand only");
  for (int32_t mode : {d.a_mode, d.b_mode})
    if (!ablk && !outer_a && mode != CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F)
      return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "VEC16_UE4M3/VEC32_UE8M0 are not modelled");
  if ((ablk || outer_a) && A->batch != 1)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "block or vector scales with batch count > 1");

  Act act = ACT_NONE;
  bool bias = false;
  switch (d.epilogue) {
    case CUBLASLT_EPILOGUE_DEFAULT: break;
    case CUBLASLT_EPILOGUE_RELU: act = ACT_RELU; break;
    case CUBLASLT_EPILOGUE_GELU: act = ACT_GELU; break;
    case CUBLASLT_EPILOGUE_BIAS: bias = true; break;
    case CUBLASLT_EPILOGUE_RELU_BIAS: act = ACT_RELU, bias = true; break;
    case CUBLASLT_EPILOGUE_GELU_BIAS: act = ACT_GELU, bias = true; break;
    default: return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "epilogue is not modelled (aux/grad)");
  }
  if ((ablk || outer_a) && d.epilogue != CUBLASLT_EPILOGUE_DEFAULT &&
      d.epilogue != CUBLASLT_EPILOGUE_BIAS)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "block scaling with an activation epilogue");
  // BIAS_DATA_TYPE's default (-1) is D's type, except for FP8 kernels with F32 output, whose
  // bias is BF16 (cublasLt.h and the cublasLtMatmul FP8 table)
  cudaDataType bias_type = d.bias_type != -1 ? static_cast<cudaDataType>(d.bias_type)
                           : fp8 && D->type == CUDA_R_32F ? CUDA_R_16BF
                                                          : D->type;
  if (bias && !(bias_type == CUDA_R_16BF || bias_type == CUDA_R_32F))
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "bias type must be CUDA_R_16BF or CUDA_R_32F");
  if (bias && !fp8 && bias_type != D->type && bias_type != CUDA_R_32F)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "bias type must be D's type or CUDA_R_32F");

  g->m = static_cast<int64_t>(m), g->n = static_cast<int64_t>(n), g->k = static_cast<int64_t>(ka);
  g->batch = A->batch;
  g->a = {nullptr, A->type, A->ld, A->order == CUBLASLT_ORDER_ROW, ta, A->batch_stride};
  g->b = {nullptr, B->type, B->ld, B->order == CUBLASLT_ORDER_ROW, tb, B->batch_stride};
  g->c = {nullptr, C->type, C->ld, C->order == CUBLASLT_ORDER_ROW, false, C->batch_stride};
  g->d_type = D->type, g->d_ld = D->ld, g->d_stride = D->batch_stride;
  g->d_row_order = D->order == CUBLASLT_ORDER_ROW;
  g->sa.mode = d.a_mode, g->sa.outer = g->m, g->sa.k = g->k;
  g->sb.mode = d.b_mode, g->sb.outer = g->n, g->sb.k = g->k;
  g->act = act;
  g->bias_type = bias_type;
  g->bias_stride = d.bias_stride;
  if (bias) {
    if (!d.bias) return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "bias epilogue without BIAS_POINTER");
    g->bias = d.bias;
  }
  if ((ablk || outer_a) && (!d.a_scale || !d.b_scale))
    return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "block/vector scale mode without a scale pointer");
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

extern "C" {

cublasStatus_t CUBLASWINAPI cublasLtCreate(cublasLtHandle_t* lightHandle) {
  if (!lightHandle) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtCreate", "handle is NULL");
  LtHandle* h = new (std::nothrow) LtHandle{kMagicLt};
  if (!h) return CUBLAS_STATUS_ALLOC_FAILED;
  *lightHandle = reinterpret_cast<cublasLtHandle_t>(h);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtDestroy(cublasLtHandle_t lightHandle) {
  LtHandle* h = lt(lightHandle);
  if (!h) return fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasLtDestroy", "null or destroyed handle");
  h->magic = 0;
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* matmulDesc,
                                                     cublasComputeType_t computeType,
                                                     cudaDataType_t scaleType) {
  if (!matmulDesc) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulDescCreate", "NULL");
  Desc* d = new (std::nothrow) Desc{};
  if (!d) return CUBLAS_STATUS_ALLOC_FAILED;
  d->compute = computeType, d->scale_type = scaleType;
  *matmulDesc = reinterpret_cast<cublasLtMatmulDesc_t>(d);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc) {
  delete desc_of(matmulDesc);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc,
                                                           cublasLtMatmulDescAttributes_t attr,
                                                           const void* buf, size_t sizeInBytes) {
  const char* fn = "cublasLtMatmulDescSetAttribute";
  Desc* d = desc_of(matmulDesc);
  if (!d) return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "descriptor is NULL");
  bool ok = true;
  int32_t i32 = 0;
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB:
      ok = get_attr(buf, sizeInBytes, &i32);
      if (ok && !valid_op(static_cast<cublasOperation_t>(i32)))
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "transpose is not N, T or C");
      if (ok) (attr == CUBLASLT_MATMUL_DESC_TRANSA ? d->transa : d->transb) = i32;
      break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: ok = get_attr(buf, sizeInBytes, &d->epilogue); break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: ok = get_attr(buf, sizeInBytes, &d->bias); break;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: ok = get_attr(buf, sizeInBytes, &d->bias_type); break;
    case CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE: ok = get_attr(buf, sizeInBytes, &d->bias_stride); break;
    case CUBLASLT_MATMUL_DESC_A_SCALE_POINTER: ok = get_attr(buf, sizeInBytes, &d->a_scale); break;
    case CUBLASLT_MATMUL_DESC_B_SCALE_POINTER: ok = get_attr(buf, sizeInBytes, &d->b_scale); break;
    case CUBLASLT_MATMUL_DESC_C_SCALE_POINTER: ok = get_attr(buf, sizeInBytes, &d->c_scale); break;
    case CUBLASLT_MATMUL_DESC_D_SCALE_POINTER: ok = get_attr(buf, sizeInBytes, &d->d_scale); break;
    case CUBLASLT_MATMUL_DESC_A_SCALE_MODE:
    case CUBLASLT_MATMUL_DESC_B_SCALE_MODE:
      ok = get_attr(buf, sizeInBytes, &i32);
      if (ok && !valid_scale_mode(i32))
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "scale mode is not a cublasLtMatmulMatrixScale_t");
      if (ok) (attr == CUBLASLT_MATMUL_DESC_A_SCALE_MODE ? d->a_mode : d->b_mode) = i32;
      break;
    case CUBLASLT_MATMUL_DESC_POINTER_MODE: ok = get_attr(buf, sizeInBytes, &d->pointer_mode); break;
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: ok = get_attr(buf, sizeInBytes, &d->compute); break;
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: ok = get_attr(buf, sizeInBytes, &d->scale_type); break;
    case CUBLASLT_MATMUL_DESC_FAST_ACCUM: {  // int8: a speed hint; the result is exact here anyway
      int8_t v;
      ok = get_attr(buf, sizeInBytes, &v);
      break;
    }
    case CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET: ok = get_attr(buf, sizeInBytes, &i32); break;
    case CUBLASLT_MATMUL_DESC_TRANSC:  // the library supports CUBLAS_OP_N only
      ok = get_attr(buf, sizeInBytes, &i32);
      if (ok && !valid_op(static_cast<cublasOperation_t>(i32)))
        return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "transpose is not N, T or C");
      if (ok && i32 != CUBLAS_OP_N) d->unmodelled = attr;
      break;
    default:
      // accepted as the library does, but cublasLtMatmul then says NOT_SUPPORTED: a result that
      // ignored the attribute would be wrong
      if (!buf || sizeInBytes == 0) return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "buf is NULL");
      d->unmodelled = attr;
      break;
  }
  if (!ok) return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "buf is NULL or sizeInBytes is wrong");
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* matLayout,
                                                       cudaDataType type, uint64_t rows,
                                                       uint64_t cols, int64_t ld) {
  const char* fn = "cublasLtMatrixLayoutCreate";
  if (!matLayout) return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "NULL");
  if (type_size(type) == 0) return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "data type is not modelled");
  Layout* l = new (std::nothrow) Layout{type, rows, cols, ld};
  if (!l) return CUBLAS_STATUS_ALLOC_FAILED;
  *matLayout = reinterpret_cast<cublasLtMatrixLayout_t>(l);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout) {
  delete layout_of(matLayout);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t matLayout,
                                                             cublasLtMatrixLayoutAttribute_t attr,
                                                             const void* buf, size_t sizeInBytes) {
  const char* fn = "cublasLtMatrixLayoutSetAttribute";
  Layout* l = layout_of(matLayout);
  if (!l) return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "layout is NULL");
  bool ok = true;
  switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_ORDER: ok = get_attr(buf, sizeInBytes, &l->order); break;
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: ok = get_attr(buf, sizeInBytes, &l->batch); break;
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET:
      ok = get_attr(buf, sizeInBytes, &l->batch_stride);
      break;
    case CUBLASLT_MATRIX_LAYOUT_ROWS: ok = get_attr(buf, sizeInBytes, &l->rows); break;
    case CUBLASLT_MATRIX_LAYOUT_COLS: ok = get_attr(buf, sizeInBytes, &l->cols); break;
    case CUBLASLT_MATRIX_LAYOUT_LD: ok = get_attr(buf, sizeInBytes, &l->ld); break;
    default: return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "layout attribute is not modelled");
  }
  if (!ok) return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "buf is NULL or sizeInBytes is wrong");
  if (l->order < CUBLASLT_ORDER_COL || l->order > CUBLASLT_ORDER_COL32_2R_4R4)
    return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "order is not a cublasLtOrder_t");
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  if (!pref) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulPreferenceCreate", "NULL");
  Pref* p = new (std::nothrow) Pref{};
  if (!p) return CUBLAS_STATUS_ALLOC_FAILED;
  *pref = reinterpret_cast<cublasLtMatmulPreference_t>(p);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete reinterpret_cast<Pref*>(pref);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceSetAttribute(
    cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
    size_t sizeInBytes) {
  const char* fn = "cublasLtMatmulPreferenceSetAttribute";
  Pref* p = reinterpret_cast<Pref*>(pref);
  if (!p) return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "preference is NULL");
  bool ok = true;
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: ok = get_attr(buf, sizeInBytes, &p->max_workspace); break;
    case CUBLASLT_MATMUL_PREF_SEARCH_MODE: {
      uint32_t v;
      ok = get_attr(buf, sizeInBytes, &v);
      break;
    }
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: {
      uint32_t v;
      ok = get_attr(buf, sizeInBytes, &v);
      break;
    }
    default: return fail(CUBLAS_STATUS_NOT_SUPPORTED, fn, "preference attribute is not modelled");
  }
  if (!ok) return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "buf is NULL or sizeInBytes is wrong");
  return CUBLAS_STATUS_SUCCESS;
}

// One algorithm (the naive loop) when the problem passes every check, NOT_SUPPORTED with a
// count of 0 otherwise, as the library does when no kernel fits.
cublasStatus_t CUBLASWINAPI cublasLtMatmulAlgoGetHeuristic(
    cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc, cublasLtMatrixLayout_t Adesc,
    cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
    cublasLtMatmulPreference_t preference, int requestedAlgoCount,
    cublasLtMatmulHeuristicResult_t heuristicResultsArray[], int* returnAlgoCount) {
  const char* fn = "cublasLtMatmulAlgoGetHeuristic";
  if (!lt(lightHandle)) return fail(CUBLAS_STATUS_NOT_INITIALIZED, fn, "null or destroyed handle");
  if (requestedAlgoCount < 1 || !heuristicResultsArray || !returnAlgoCount || !preference)
    return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "requestedAlgoCount < 1 or a NULL argument");
  *returnAlgoCount = 0;
  Gemm g{};
  cublasStatus_t st = lt_check(fn, lightHandle, desc_of(operationDesc), layout_of(Adesc),
                               layout_of(Bdesc), layout_of(Cdesc), layout_of(Ddesc), &g);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  memset(&heuristicResultsArray[0], 0, sizeof heuristicResultsArray[0]);
  heuristicResultsArray[0].algo.data[0] = 0x6e616976u;  // "naiv": checked by cublasLtMatmul
  heuristicResultsArray[0].workspaceSize = 0;
  heuristicResultsArray[0].state = CUBLAS_STATUS_SUCCESS;
  heuristicResultsArray[0].wavesCount = 1.0f;
  *returnAlgoCount = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmul(cublasLtHandle_t lightHandle,
                                           cublasLtMatmulDesc_t computeDesc, const void* alpha,
                                           const void* A, cublasLtMatrixLayout_t Adesc,
                                           const void* B, cublasLtMatrixLayout_t Bdesc,
                                           const void* beta, const void* C,
                                           cublasLtMatrixLayout_t Cdesc, void* D,
                                           cublasLtMatrixLayout_t Ddesc,
                                           const cublasLtMatmulAlgo_t* algo, void* workspace,
                                           size_t workspaceSizeInBytes, cudaStream_t stream) {
  (void)workspace, (void)workspaceSizeInBytes, (void)stream;
  const char* fn = "cublasLtMatmul";
  Gemm g{};
  const Desc* d = desc_of(computeDesc);
  cublasStatus_t st = lt_check(fn, lightHandle, d, layout_of(Adesc), layout_of(Bdesc),
                               layout_of(Cdesc), layout_of(Ddesc), &g);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (algo && algo->data[0] != 0x6e616976u)
    return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "algo did not come from the heuristic");
  if (!alpha || !beta) return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "alpha or beta is NULL");
  g.alpha = *static_cast<const float*>(alpha), g.beta = *static_cast<const float*>(beta);
  if (g.m * g.n * g.batch > 0 && (!D || (g.k > 0 && (!A || !B)) || (g.beta != 0 && !C)))
    return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "a matrix pointer is NULL");
  if (C == D && C && (layout_of(Cdesc)->ld != layout_of(Ddesc)->ld ||
                      layout_of(Cdesc)->batch_stride != layout_of(Ddesc)->batch_stride))
    return fail(CUBLAS_STATUS_INVALID_VALUE, fn, "in place (C == D) with different C and D layouts");
  g.a.p = A, g.b.p = B, g.c.p = C, g.d = D;
  g.sa.s = static_cast<const float*>(d->a_scale), g.sb.s = static_cast<const float*>(d->b_scale);
  g.run();
  return CUBLAS_STATUS_SUCCESS;
}

const char* CUBLASWINAPI cublasLtGetStatusName(cublasStatus_t status) { return status_name(status); }

const char* CUBLASWINAPI cublasLtGetStatusString(cublasStatus_t status) {
  return cublasGetStatusString(status);
}

}  // extern "C"
