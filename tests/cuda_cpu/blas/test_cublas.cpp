// Tests of the cuBLAS/cuBLASLt stand-in (cublas_cpu.cpp) against a naive double reference
// written here: every function, column- and row-major, all transposes, odd shapes, leading
// dimensions larger than the rows, strided and pointer-array batches, epilogues, FP8 with 128x128
// and 1x128 block scales dequantised by hand, and the argument checks' status codes.
//
// Matrices are generated as logical op(X) in double (values already rounded to the storage
// type), then packed into storage by (order, transpose, ld, batch stride) with NaN in every
// element that must not be read (padding rows, gaps between batches, C when beta == 0).
// A result must equal the reference rounded to the output type within 1 ulp of that type
// (the stand-in and the reference sum in double in possibly different orders).
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

namespace {

int g_failures = 0, g_checks = 0;
std::mt19937 g_rng(12345);

#define CHECK(cond, ...)                                                  \
  do {                                                                    \
    g_checks++;                                                           \
    if (!(cond)) {                                                        \
      g_failures++;                                                       \
      printf("FAIL  %s:%d: %s: ", __FILE__, __LINE__, #cond);             \
      printf(__VA_ARGS__);                                                \
      printf("\n");                                                       \
    }                                                                     \
  } while (0)

size_t tsize(cudaDataType t) { return t == CUDA_R_32F ? 4 : t == CUDA_R_16BF ? 2 : 1; }

// Rounds v to type t (round-to-nearest-even, the toolkit's conversions) and back.
double round_to(cudaDataType t, double v) {
  switch (t) {
    case CUDA_R_32F: return static_cast<float>(v);
    case CUDA_R_16BF: return __bfloat162float(__double2bfloat16(v));
    default: return static_cast<float>(__nv_fp8_e4m3(v));
  }
}

void put(cudaDataType t, uint8_t* p, int64_t i, double v) {
  switch (t) {
    case CUDA_R_32F: { float f = static_cast<float>(v); memcpy(p + 4 * i, &f, 4); break; }
    case CUDA_R_16BF: { __nv_bfloat16 b = __double2bfloat16(v); memcpy(p + 2 * i, &b, 2); break; }
    default: { __nv_fp8_e4m3 e(v); memcpy(p + i, &e, 1); break; }
  }
}

double get(cudaDataType t, const uint8_t* p, int64_t i) {
  switch (t) {
    case CUDA_R_32F: { float f; memcpy(&f, p + 4 * i, 4); return f; }
    case CUDA_R_16BF: { __nv_bfloat16 b; memcpy(&b, p + 2 * i, 2); return __bfloat162float(b); }
    default: { __nv_fp8_e4m3 e; memcpy(&e, p + i, 1); return static_cast<float>(e); }
  }
}

// A logical matrix (row-major doubles), batch-major.
struct Mat {
  int64_t rows, cols, batch;
  std::vector<double> v;
  double& at(int64_t b, int64_t i, int64_t j) { return v[(b * rows + i) * cols + j]; }
};

Mat random_mat(int64_t rows, int64_t cols, int64_t batch, cudaDataType t, double scale = 1.0) {
  std::uniform_real_distribution<double> u(-scale, scale);
  Mat m{rows, cols, batch, std::vector<double>(rows * cols * batch)};
  for (double& x : m.v) x = round_to(t, u(g_rng));
  return m;
}

// Storage of op(X) = m: stored matrix is m^T when trans; element (r, c) at r + c * ld (column
// order) or r * ld + c (row order); batch b starts at b * stride. Everything else is NaN.
struct Stored {
  std::vector<uint8_t> bytes;
  cudaDataType type;
  int64_t ld, stride, srows, scols;
  bool row;
};

Stored pack(Mat& m, cudaDataType t, bool trans, bool row, int64_t ld_extra, int64_t gap = 0) {
  Stored s;
  s.type = t, s.row = row;
  s.srows = trans ? m.cols : m.rows, s.scols = trans ? m.rows : m.cols;
  s.ld = (row ? s.scols : s.srows) + ld_extra;
  const int64_t extent = (row ? s.srows : s.scols) * s.ld;
  s.stride = extent + gap;
  s.bytes.resize(static_cast<size_t>(s.stride * m.batch) * tsize(t) + 16);
  memset(s.bytes.data(), t == CUDA_R_8F_E4M3 ? 0x7f : 0xff, s.bytes.size());  // NaN everywhere
  for (int64_t b = 0; b < m.batch; b++)
    for (int64_t i = 0; i < m.rows; i++)
      for (int64_t j = 0; j < m.cols; j++) {
        const int64_t r = trans ? j : i, c = trans ? i : j;
        put(t, s.bytes.data(), b * s.stride + (row ? r * s.ld + c : r + c * s.ld), m.at(b, i, j));
      }
  return s;
}

double unpack(const Stored& s, int64_t b, int64_t i, int64_t j) {
  return get(s.type, s.bytes.data(), b * s.stride + (s.row ? i * s.ld + j : i + j * s.ld));
}

double ulp(cudaDataType t, double ref) {
  const double a = std::fabs(ref) > 1e-30 ? std::fabs(ref) : 1e-30;
  const int e = std::ilogb(a);
  return std::ldexp(1.0, e - (t == CUDA_R_32F ? 23 : 7));
}

enum Act { NONE, RELU, GELU };

// ref(b, i, j) = act(alpha * sum_k A(i,k) B(k,j) + beta * C(i,j) + bias(i)), then compares D.
// Returns the largest error in ulps of the output type; counts a failure above 1 ulp or on a
// NaN anywhere in D's elements.
double compare(const char* name, Mat& A, Mat& B, Mat* C, const std::vector<double>* bias,
               double alpha, double beta, Act act, const Stored& D) {
  double worst = 0;
  for (int64_t b = 0; b < A.batch; b++)
    for (int64_t i = 0; i < A.rows; i++)
      for (int64_t j = 0; j < B.cols; j++) {
        double acc = 0;
        for (int64_t k = 0; k < A.cols; k++) acc += A.at(b, i, k) * B.at(b, k, j);
        double r = alpha * acc;
        if (beta != 0) r += beta * C->at(b, i, j);
        if (bias) r += (*bias)[b * A.rows + i];
        if (act == RELU) r = r > 0 ? r : 0;
        if (act == GELU) r = 0.5 * r * (1 + std::tanh(0.7978845608028654 * (r + 0.044715 * r * r * r)));
        const double want = round_to(D.type, r), got = unpack(D, b, i, j);
        const double err = std::fabs(got - want) / ulp(D.type, want);
        if (!(err <= 1.0)) {
          CHECK(err <= 1.0, "%s: D[%lld](%lld,%lld) = %.9g, reference %.9g", name, (long long)b,
                (long long)i, (long long)j, got, want);
          return INFINITY;
        }
        if (err > worst) worst = err;
      }
  g_checks++;
  return worst;
}

const char* opname(cublasOperation_t o) { return o == CUBLAS_OP_N ? "N" : o == CUBLAS_OP_T ? "T" : "C"; }

// ---- cuBLAS ---------------------------------------------------------------------------------

void test_gemm_ex(cublasHandle_t h) {
  struct Shape { int m, n, k, extra; } shapes[] = {{17, 5, 33, 3}, {1, 1, 1, 0}, {64, 3, 7, 1}, {5, 17, 128, 0}};
  struct Types { cudaDataType ab, c; cublasComputeType_t ct; } types[] = {
      {CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F},
      {CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32},
      {CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F},
      {CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F}};
  const cublasOperation_t ops[] = {CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_OP_C};
  double worst = 0;
  int cases = 0;
  for (const Types& ty : types)
    for (const Shape& s : shapes)
      for (cublasOperation_t ta : ops)
        for (cublasOperation_t tb : ops)
          for (double beta : {0.0, -0.5}) {
            Mat A = random_mat(s.m, s.k, 1, ty.ab), B = random_mat(s.k, s.n, 1, ty.ab);
            Mat C = random_mat(s.m, s.n, 1, ty.c);
            Stored sa = pack(A, ty.ab, ta != CUBLAS_OP_N, false, s.extra);
            Stored sb = pack(B, ty.ab, tb != CUBLAS_OP_N, false, s.extra + 2);
            Stored sc = pack(C, ty.c, false, false, s.extra + 1);
            if (beta == 0) memset(sc.bytes.data(), 0xff, sc.bytes.size());  // NaN C: not read
            const float alpha = 0.75f, fb = static_cast<float>(beta);
            cublasStatus_t st = cublasGemmEx(h, ta, tb, s.m, s.n, s.k, &alpha, sa.bytes.data(), ty.ab,
                                             (int)sa.ld, sb.bytes.data(), ty.ab, (int)sb.ld, &fb,
                                             sc.bytes.data(), ty.c, (int)sc.ld, ty.ct, CUBLAS_GEMM_DEFAULT);
            CHECK(st == CUBLAS_STATUS_SUCCESS, "cublasGemmEx status %d", st);
            char name[96];
            snprintf(name, sizeof name, "gemm_ex %dx%dx%d %s%s", s.m, s.n, s.k, opname(ta), opname(tb));
            double w = compare(name, A, B, &C, nullptr, 0.75, beta, NONE, sc);
            if (w > worst) worst = w;
            cases++;
          }
  printf("cublasGemmEx: %d cases (F32, F32 fast-TF32, BF16->BF16, BF16->F32; N/T/C x N/T/C; "
         "beta 0 with NaN C and -0.5), max error %.2f ulp\n", cases, worst);
}

// The backend's row-major linear layer Y[T,N] = X[T,K] W[N,K]^T, all row-major: read as
// column-major, the buffers hold X^T (K x T), W^T (K x N) and Y^T (N x T), and Y^T = W X^T is
// cublasGemmEx(OP_T, OP_N, N, T, K, W, ldw = K, X, ldx = K, Y, ldy = N).
void test_row_major_linear(cublasHandle_t h) {
  const int T = 9, N = 13, K = 40;
  Mat X = random_mat(T, K, 1, CUDA_R_16BF), W = random_mat(N, K, 1, CUDA_R_16BF);
  Mat Wt{K, N, 1, std::vector<double>(K * N)};
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++) Wt.at(0, k, n) = W.at(0, n, k);
  Stored sx = pack(X, CUDA_R_16BF, false, true, 0), sw = pack(W, CUDA_R_16BF, false, true, 0);
  Mat Y = random_mat(T, N, 1, CUDA_R_16BF);
  Stored sy = pack(Y, CUDA_R_16BF, false, true, 0);
  const float one = 1, zero = 0;
  cublasStatus_t st = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &one, sw.bytes.data(),
                                   CUDA_R_16BF, K, sx.bytes.data(), CUDA_R_16BF, K, &zero,
                                   sy.bytes.data(), CUDA_R_16BF, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  CHECK(st == CUBLAS_STATUS_SUCCESS, "status %d", st);
  double w = compare("row-major linear", X, Wt, nullptr, nullptr, 1, 0, NONE, sy);
  printf("row-major Y = X W^T through column-major cublasGemmEx(T, N): %dx%dx%d, max error %.2f ulp\n",
         T, N, K, w);
}

void test_batched(cublasHandle_t h) {
  const int m = 17, n = 5, k = 33, batch = 3;
  double worst = 0;
  for (cublasOperation_t ta : {CUBLAS_OP_N, CUBLAS_OP_T})
    for (cublasOperation_t tb : {CUBLAS_OP_N, CUBLAS_OP_T}) {
      Mat A = random_mat(m, k, batch, CUDA_R_16BF), B = random_mat(k, n, batch, CUDA_R_16BF);
      Mat C = random_mat(m, n, batch, CUDA_R_16BF);
      Stored sa = pack(A, CUDA_R_16BF, ta == CUBLAS_OP_T, false, 2, 7);  // NaN gaps between batches
      Stored sb = pack(B, CUDA_R_16BF, tb == CUBLAS_OP_T, false, 1, 5);
      Stored sc = pack(C, CUDA_R_16BF, false, false, 3, 11);
      const float alpha = -1.25f, beta = 0.5f;
      cublasStatus_t st = cublasGemmStridedBatchedEx(
          h, ta, tb, m, n, k, &alpha, sa.bytes.data(), CUDA_R_16BF, (int)sa.ld, sa.stride,
          sb.bytes.data(), CUDA_R_16BF, (int)sb.ld, sb.stride, &beta, sc.bytes.data(), CUDA_R_16BF,
          (int)sc.ld, sc.stride, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT_TENSOR_OP);
      CHECK(st == CUBLAS_STATUS_SUCCESS, "status %d", st);
      double w = compare("strided batched", A, B, &C, nullptr, -1.25, 0.5, NONE, sc);
      if (w > worst) worst = w;
    }
  // pointer arrays: each batch in its own buffer
  Mat A = random_mat(m, k, batch, CUDA_R_32F), B = random_mat(k, n, batch, CUDA_R_32F);
  Mat C = random_mat(m, n, batch, CUDA_R_32F);
  std::vector<Stored> as, bs, cs;
  const void *ap[batch], *bp[batch];
  void* cp[batch];
  for (int b = 0; b < batch; b++) {
    Mat a1{m, k, 1, std::vector<double>(A.v.begin() + b * m * k, A.v.begin() + (b + 1) * m * k)};
    Mat b1{k, n, 1, std::vector<double>(B.v.begin() + b * k * n, B.v.begin() + (b + 1) * k * n)};
    Mat c1{m, n, 1, std::vector<double>(C.v.begin() + b * m * n, C.v.begin() + (b + 1) * m * n)};
    as.push_back(pack(a1, CUDA_R_32F, false, false, 1));
    bs.push_back(pack(b1, CUDA_R_32F, true, false, 0));
    cs.push_back(pack(c1, CUDA_R_32F, false, false, 2));
  }
  for (int b = 0; b < batch; b++) ap[b] = as[b].bytes.data(), bp[b] = bs[b].bytes.data(), cp[b] = cs[b].bytes.data();
  const float alpha = 2, beta = 1;
  cublasStatus_t st = cublasGemmBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_T, m, n, k, &alpha, ap, CUDA_R_32F,
                                          (int)as[0].ld, bp, CUDA_R_32F, (int)bs[0].ld, &beta, cp,
                                          CUDA_R_32F, (int)cs[0].ld, batch, CUBLAS_COMPUTE_32F,
                                          CUBLAS_GEMM_DEFAULT);
  CHECK(st == CUBLAS_STATUS_SUCCESS, "status %d", st);
  double wp = 0;
  for (int b = 0; b < batch; b++) {
    Mat a1{m, k, 1, std::vector<double>(A.v.begin() + b * m * k, A.v.begin() + (b + 1) * m * k)};
    Mat b1{k, n, 1, std::vector<double>(B.v.begin() + b * k * n, B.v.begin() + (b + 1) * k * n)};
    Mat c1{m, n, 1, std::vector<double>(C.v.begin() + b * m * n, C.v.begin() + (b + 1) * m * n)};
    double w = compare("batched (pointer arrays)", a1, b1, &c1, nullptr, 2, 1, NONE, cs[b]);
    if (w > wp) wp = w;
  }
  printf("cublasGemmStridedBatchedEx: 3 batches x 4 transposes with NaN gaps, max error %.2f ulp; "
         "cublasGemmBatchedEx: max error %.2f ulp\n", worst, wp);
}

// ---- cuBLASLt -------------------------------------------------------------------------------

struct LtCall {
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
  uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  int32_t bias_type = -1;  // -1: not set
  int64_t bias_stride = 0;
  const float *a_scale = nullptr, *b_scale = nullptr;
  int32_t a_mode = -1, b_mode = -1;  // -1: not set
  int batch = 1;
  float alpha = 1, beta = 0;
};

cublasLtMatrixLayout_t make_layout(const Stored& s, int batch) {
  cublasLtMatrixLayout_t l;
  CHECK(cublasLtMatrixLayoutCreate(&l, s.type, s.srows, s.scols, s.ld) == CUBLAS_STATUS_SUCCESS, "layout");
  int32_t order = s.row ? CUBLASLT_ORDER_ROW : CUBLASLT_ORDER_COL;
  CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_ORDER, &order, sizeof order) == 0, "order");
  if (batch > 1) {
    int32_t b = batch;
    int64_t stride = s.stride;
    CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &b, sizeof b) == 0, "batch");
    CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                           sizeof stride) == 0, "stride");
  }
  return l;
}

// Heuristic then matmul, as the backend will; returns the first status that is not SUCCESS.
cublasStatus_t lt_matmul(cublasLtHandle_t lt, const LtCall& c, Stored& A, Stored& B, Stored* C,
                         Stored& D) {
  cublasLtMatmulDesc_t desc;
  CHECK(cublasLtMatmulDescCreate(&desc, c.compute, CUDA_R_32F) == 0, "desc");
  int32_t ta = c.ta, tb = c.tb;
  CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) == 0, "transa");
  CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb) == 0, "transb");
  CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &c.epilogue,
                                       sizeof c.epilogue) == 0, "epilogue");
  if (c.bias)
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &c.bias, sizeof c.bias) == 0, "bias");
  if (c.bias_type != -1)
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &c.bias_type,
                                         sizeof c.bias_type) == 0, "bias type");
  if (c.bias_stride)
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, &c.bias_stride,
                                         sizeof c.bias_stride) == 0, "bias stride");
  if (c.a_scale)
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &c.a_scale,
                                         sizeof c.a_scale) == 0, "a scale");
  if (c.b_scale)
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &c.b_scale,
                                         sizeof c.b_scale) == 0, "b scale");
  if (c.a_mode != -1)
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &c.a_mode, sizeof c.a_mode) == 0, "a mode");
  if (c.b_mode != -1)
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &c.b_mode, sizeof c.b_mode) == 0, "b mode");
  cublasLtMatrixLayout_t la = make_layout(A, c.batch), lb = make_layout(B, c.batch);
  cublasLtMatrixLayout_t lc = make_layout(C ? *C : D, c.batch), ld = make_layout(D, c.batch);
  cublasLtMatmulPreference_t pref;
  CHECK(cublasLtMatmulPreferenceCreate(&pref) == 0, "pref");
  uint64_t ws = 32 << 20;
  CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws) == 0, "ws");
  cublasLtMatmulHeuristicResult_t res[4];
  int count = -1;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, ld, pref, 4, res, &count);
  if (st == CUBLAS_STATUS_SUCCESS) {
    CHECK(count == 1, "heuristic returned %d algos", count);
    st = cublasLtMatmul(lt, desc, &c.alpha, A.bytes.data(), la, B.bytes.data(), lb, &c.beta,
                        C ? C->bytes.data() : D.bytes.data(), lc, D.bytes.data(), ld, &res[0].algo,
                        nullptr, 0, nullptr);
  } else {
    CHECK(count == 0, "a failed heuristic returned %d algos", count);
  }
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(lc), cublasLtMatrixLayoutDestroy(ld);
  cublasLtMatmulDescDestroy(desc);
  return st;
}

void test_lt() {
  cublasLtHandle_t lt;
  CHECK(cublasLtCreate(&lt) == CUBLAS_STATUS_SUCCESS, "cublasLtCreate");
  struct Types { cudaDataType ab, d; cublasComputeType_t ct; } types[] = {
      {CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F},
      {CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_16BF},
      {CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F},
      {CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F}};
  const int m = 17, n = 5, k = 33;
  double worst = 0;
  int cases = 0;
  // every order of A, B and C/D, every transpose, out of place and in place
  for (const Types& ty : types)
    for (int orders = 0; orders < 8; orders++)
      for (cublasOperation_t ta : {CUBLAS_OP_N, CUBLAS_OP_T})
        for (cublasOperation_t tb : {CUBLAS_OP_N, CUBLAS_OP_T}) {
          const bool ra = orders & 1, rb = orders & 2, rd = orders & 4, in_place = orders & 1;
          Mat A = random_mat(m, k, 1, ty.ab), B = random_mat(k, n, 1, ty.ab), C = random_mat(m, n, 1, ty.d);
          Stored sa = pack(A, ty.ab, ta == CUBLAS_OP_T, ra, 3), sb = pack(B, ty.ab, tb == CUBLAS_OP_T, rb, 1);
          Stored sc = pack(C, ty.d, false, rd, 2);
          Stored sd = sc;
          memset(sd.bytes.data(), 0xff, sd.bytes.size());
          LtCall c;
          c.compute = ty.ct, c.ta = ta, c.tb = tb, c.alpha = 1.5f, c.beta = -0.25f;
          cublasStatus_t st = lt_matmul(lt, c, sa, sb, in_place ? nullptr : &sc, in_place ? sc : sd);
          CHECK(st == CUBLAS_STATUS_SUCCESS, "cublasLtMatmul status %d", st);
          char name[96];
          snprintf(name, sizeof name, "lt %s%s order %d", opname(ta), opname(tb), orders);
          double w = compare(name, A, B, &C, nullptr, 1.5, -0.25, NONE, in_place ? sc : sd);
          if (w > worst) worst = w;
          cases++;
        }
  printf("cublasLtMatmul: %d cases (F32, F32 fast-16BF, BF16->BF16, BF16->F32; column/row order "
         "of A, B, C/D; N/T x N/T; in place and not), max error %.2f ulp\n", cases, worst);

  // strided batches with a bias per batch, and the activation epilogues
  const int batch = 3;
  struct Epi { uint32_t e; Act act; bool bias; const char* name; } epis[] = {
      {CUBLASLT_EPILOGUE_BIAS, NONE, true, "BIAS"}, {CUBLASLT_EPILOGUE_RELU_BIAS, RELU, true, "RELU_BIAS"},
      {CUBLASLT_EPILOGUE_GELU_BIAS, GELU, true, "GELU_BIAS"}, {CUBLASLT_EPILOGUE_RELU, RELU, false, "RELU"},
      {CUBLASLT_EPILOGUE_GELU, GELU, false, "GELU"}};
  worst = 0;
  for (const Epi& e : epis)
    for (cudaDataType bias_t : {CUDA_R_16BF, CUDA_R_32F}) {
      Mat A = random_mat(m, k, batch, CUDA_R_16BF), B = random_mat(k, n, batch, CUDA_R_16BF);
      Mat C = random_mat(m, n, batch, CUDA_R_16BF);
      Stored sa = pack(A, CUDA_R_16BF, true, false, 0, 9), sb = pack(B, CUDA_R_16BF, false, false, 4, 3);
      Stored sc = pack(C, CUDA_R_16BF, false, false, 1, 5);
      Stored sd = sc;
      memset(sd.bytes.data(), 0xff, sd.bytes.size());
      const int64_t bstride = m + 4;
      std::vector<double> bias(batch * m);
      std::vector<uint8_t> bbytes(batch * bstride * 4, 0xff);
      for (int b = 0; b < batch; b++)
        for (int i = 0; i < m; i++) {
          bias[b * m + i] = round_to(bias_t, std::uniform_real_distribution<double>(-2, 2)(g_rng));
          put(bias_t, bbytes.data(), b * bstride + i, bias[b * m + i]);
        }
      LtCall c;
      c.ta = CUBLAS_OP_T, c.epilogue = e.e, c.batch = batch, c.alpha = 0.5f, c.beta = 1;
      if (e.bias) c.bias = bbytes.data(), c.bias_type = bias_t, c.bias_stride = bstride;
      cublasStatus_t st = lt_matmul(lt, c, sa, sb, &sc, sd);
      CHECK(st == CUBLAS_STATUS_SUCCESS, "epilogue %s status %d", e.name, st);
      double w = compare(e.name, A, B, &C, e.bias ? &bias : nullptr, 0.5, 1, e.act, sd);
      if (w > worst) worst = w;
    }
  printf("cublasLtMatmul BF16, 3 strided batches with NaN gaps, epilogues BIAS/RELU_BIAS/GELU_BIAS "
         "(BF16 and F32 bias, per-batch stride)/RELU/GELU: max error %.2f ulp\n", worst);
  CHECK(cublasLtDestroy(lt) == CUBLAS_STATUS_SUCCESS, "cublasLtDestroy");
}

// Scale tensors written as the stand-in documents them (cublas_cpu.cpp's header comment):
// VEC128_32F: s[(k / 128) * outer + o]; BLK128x128_32F: s[(o / 128) * roundup(ceil(K/128), 4)
// + k / 128]. Unused padding entries are NaN.
struct BlockScales {
  int64_t ob, kb;  // blocks along the outer dimension (1 per index for VEC128) and along K
  std::vector<double> v;  // [ob][kb]
  std::vector<float> tensor;
};

BlockScales make_scales(int32_t mode, int64_t outer, int64_t K) {
  BlockScales s;
  s.kb = (K + 127) / 128;
  s.ob = mode == CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F ? outer : (outer + 127) / 128;
  std::uniform_real_distribution<double> u(0.5, 1.5);
  s.v.resize(s.ob * s.kb);
  for (double& x : s.v) x = static_cast<float>(u(g_rng) * std::ldexp(1.0, (int)(g_rng() % 9) - 4));
  if (mode == CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F) {
    s.tensor.assign(s.kb * outer, NAN);
    for (int64_t o = 0; o < outer; o++)
      for (int64_t b = 0; b < s.kb; b++) s.tensor[b * outer + o] = static_cast<float>(s.v[o * s.kb + b]);
  } else {
    const int64_t kb4 = (s.kb + 3) / 4 * 4;
    s.tensor.assign(s.ob * kb4, NAN);
    for (int64_t o = 0; o < s.ob; o++)
      for (int64_t b = 0; b < s.kb; b++) s.tensor[o * kb4 + b] = static_cast<float>(s.v[o * s.kb + b]);
  }
  return s;
}

// The scale of logical element (o, k) of an operand, from the [ob][kb] table.
double scale_of(const BlockScales& s, int32_t mode, int64_t o, int64_t k) {
  const int64_t ob = mode == CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F ? o : o / 128;
  return s.v[ob * s.kb + k / 128];
}

void test_lt_fp8() {
  cublasLtHandle_t lt;
  CHECK(cublasLtCreate(&lt) == CUBLAS_STATUS_SUCCESS, "cublasLtCreate");
  const int32_t VEC = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F, BLK = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
  struct Case { int m, n, k; int32_t amode, bmode; cudaDataType d; bool bias; } cases[] = {
      {200, 40, 272, BLK, VEC, CUDA_R_16BF, false},  // weights as A (M = out features), tokens as B
      {200, 40, 272, BLK, VEC, CUDA_R_32F, true},
      {40, 200, 300, VEC, BLK, CUDA_R_16BF, true},   // tokens as A, weights as B (NVIDIA's sample)
      {256, 16, 384, BLK, VEC, CUDA_R_16BF, false},  // multiples of 128
      {7, 130, 129, VEC, BLK, CUDA_R_32F, false},
      {3, 5, 100, VEC, VEC, CUDA_R_32F, false}};
  double worst = 0;
  for (const Case& cs : cases) {
    Mat Aq = random_mat(cs.m, cs.k, 1, CUDA_R_8F_E4M3, 8), Bq = random_mat(cs.k, cs.n, 1, CUDA_R_8F_E4M3, 8);
    BlockScales sa = make_scales(cs.amode, cs.m, cs.k), sb = make_scales(cs.bmode, cs.n, cs.k);
    // dequantise by hand: the reference sees the scaled values
    Mat A = Aq, B = Bq;
    for (int i = 0; i < cs.m; i++)
      for (int kk = 0; kk < cs.k; kk++) A.at(0, i, kk) *= scale_of(sa, cs.amode, i, kk);
    for (int kk = 0; kk < cs.k; kk++)
      for (int j = 0; j < cs.n; j++) B.at(0, kk, j) *= scale_of(sb, cs.bmode, j, kk);
    // "TN": A stored K x M (each output row's K values contiguous), B stored K x N; ld % 16 == 0
    const int64_t pad = (16 - cs.k % 16) % 16 + 16;
    Stored sta = pack(Aq, CUDA_R_8F_E4M3, true, false, pad), stb = pack(Bq, CUDA_R_8F_E4M3, false, false, pad);
    Mat C = random_mat(cs.m, cs.n, 1, cs.d);
    Stored sc = pack(C, cs.d, false, false, 1);
    Stored sd = sc;
    memset(sd.bytes.data(), 0xff, sd.bytes.size());
    // BIAS_DATA_TYPE left at its default: D's type, but BF16 for FP8 with F32 output
    std::vector<double> bias(cs.m);
    std::vector<uint8_t> bbytes(cs.m * 4);
    for (int i = 0; i < cs.m; i++) {
      bias[i] = round_to(CUDA_R_16BF, std::uniform_real_distribution<double>(-4, 4)(g_rng));
      put(CUDA_R_16BF, bbytes.data(), i, bias[i]);
    }
    LtCall c;
    c.ta = CUBLAS_OP_T, c.tb = CUBLAS_OP_N, c.alpha = 0.5f, c.beta = cs.bias ? 0.0f : 2.0f;
    c.a_mode = cs.amode, c.b_mode = cs.bmode, c.a_scale = sa.tensor.data(), c.b_scale = sb.tensor.data();
    if (cs.bias) c.epilogue = CUBLASLT_EPILOGUE_BIAS, c.bias = bbytes.data();
    cublasStatus_t st = lt_matmul(lt, c, sta, stb, &sc, sd);
    CHECK(st == CUBLAS_STATUS_SUCCESS, "fp8 %dx%dx%d status %d", cs.m, cs.n, cs.k, st);
    char name[96];
    snprintf(name, sizeof name, "fp8 %dx%dx%d %s x %s", cs.m, cs.n, cs.k, cs.amode == BLK ? "BLK" : "VEC",
             cs.bmode == BLK ? "BLK" : "VEC");
    double w = compare(name, A, B, &C, cs.bias ? &bias : nullptr, 0.5, c.beta, NONE, sd);
    if (w > worst) worst = w;
  }
  // per-tensor scalar scales
  {
    Mat Aq = random_mat(33, 17, 1, CUDA_R_8F_E4M3, 100), Bq = random_mat(17, 9, 1, CUDA_R_8F_E4M3, 100);
    const float as = 0.03125f, bs = 3.0f;
    Mat A = Aq, B = Bq;
    for (double& x : A.v) x *= as;
    for (double& x : B.v) x *= bs;
    Stored sta = pack(Aq, CUDA_R_8F_E4M3, true, false, 15), stb = pack(Bq, CUDA_R_8F_E4M3, false, false, 15);
    Mat C = random_mat(33, 9, 1, CUDA_R_16BF);
    Stored sd = pack(C, CUDA_R_16BF, false, false, 0);
    LtCall c;
    c.ta = CUBLAS_OP_T, c.a_scale = &as, c.b_scale = &bs;
    cublasStatus_t st = lt_matmul(lt, c, sta, stb, nullptr, sd);
    CHECK(st == CUBLAS_STATUS_SUCCESS, "fp8 scalar status %d", st);
    double w = compare("fp8 scalar", A, B, nullptr, nullptr, 1, 0, NONE, sd);
    if (w > worst) worst = w;
  }
  printf("cublasLtMatmul FP8 e4m3 (TN): BLK128x128 x VEC128 and VEC128 x BLK128x128 and VEC128 x VEC128 "
         "on 200x40x272, 40x200x300, 256x16x384, 7x130x129, 3x5x100 (BF16/F32 out, bias, NaN in scale "
         "padding), per-tensor scalars: max error %.2f ulp vs hand dequantisation\n", worst);
  CHECK(cublasLtDestroy(lt) == CUBLAS_STATUS_SUCCESS, "cublasLtDestroy");
}

// ---- argument checks ------------------------------------------------------------------------

void test_checks(cublasHandle_t h) {
  int n_checks = 0;
#define EXPECT(call, status)                                                             \
  do {                                                                                   \
    cublasStatus_t st_ = (call);                                                         \
    CHECK(st_ == (status), "%s returned %d, want %s", #call, st_, #status);             \
    n_checks++;                                                                          \
  } while (0)
  std::vector<float> buf(4096, 0.0f);
  float* p = buf.data();
  const float one = 1, zero = 0;
  const cublasComputeType_t C32 = CUBLAS_COMPUTE_32F;
  const cudaDataType F = CUDA_R_32F, BF = CUDA_R_16BF;
  const cublasGemmAlgo_t DEF = CUBLAS_GEMM_DEFAULT;
  // cuBLAS
  EXPECT(cublasGemmEx(nullptr, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, p, F, 4, p, F, 4, &zero, p, F, 4, C32, DEF),
         CUBLAS_STATUS_NOT_INITIALIZED);
  EXPECT(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, -1, 4, 4, &one, p, F, 4, p, F, 4, &zero, p, F, 4, C32, DEF),
         CUBLAS_STATUS_INVALID_VALUE);
  EXPECT(cublasGemmEx(h, CUBLAS_OP_CONJG, CUBLAS_OP_N, 4, 4, 4, &one, p, F, 4, p, F, 4, &zero, p, F, 4, C32, DEF),
         CUBLAS_STATUS_INVALID_VALUE);
  EXPECT(cublasGemmEx(h, CUBLAS_OP_N, (cublasOperation_t)7, 4, 4, 4, &one, p, F, 4, p, F, 4, &zero, p, F, 4, C32, DEF),
         CUBLAS_STATUS_INVALID_VALUE);
  EXPECT(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 8, 4, 4, &one, p, F, 7, p, F, 4, &zero, p, F, 8, C32, DEF),
         CUBLAS_STATUS_INVALID_VALUE);  // lda < m
  EXPECT(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, 4, 4, 8, &one, p, F, 4, p, F, 8, &zero, p, F, 4, C32, DEF),
         CUBLAS_STATUS_INVALID_VALUE);  // transposed A: lda < k
  EXPECT(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 8, &one, p, F, 4, p, F, 7, &zero, p, F, 4, C32, DEF),
         CUBLAS_STATUS_INVALID_VALUE);  // ldb < k
  EXPECT(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_T, 4, 8, 4, &one, p, F, 4, p, F, 7, &zero, p, F, 4, C32, DEF),
         CUBLAS_STATUS_INVALID_VALUE);  // transposed B: ldb < n
  EXPECT(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 8, 4, 4, &one, p, F, 8, p, F, 4, &zero, p, F, 7, C32, DEF),
         CUBLAS_STATUS_INVALID_VALUE);  // ldc < m
  EXPECT(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, nullptr, p, F, 4, p, F, 4, &zero, p, F, 4, C32, DEF),
         CUBLAS_STATUS_INVALID_VALUE);
  EXPECT(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, p, CUDA_R_16F, 4, p, CUDA_R_16F, 4, &zero, p,
                      CUDA_R_16F, 4, C32, DEF), CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, p, BF, 4, p, BF, 4, &zero, p, F, 4,
                      CUBLAS_COMPUTE_32F_FAST_TF32, DEF), CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, p, F, 4, p, BF, 4, &zero, p, F, 4, C32, DEF),
         CUBLAS_STATUS_NOT_SUPPORTED);  // mixed A/B types
  EXPECT(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, p, F, 4, p, F, 4, &zero, p, F, 4,
                      CUBLAS_COMPUTE_16F, DEF), CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, p, F, 4, 16, p, F, 4, 16, &zero, p,
                                    F, 4, 16, -1, C32, DEF), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, p, F, 3, 16, p, F, 4, 16, &zero, p,
                                    F, 4, 16, 2, C32, DEF), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT(cublasSetMathMode(h, (cublasMath_t)9), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT(cublasSetMathMode(nullptr, CUBLAS_DEFAULT_MATH), CUBLAS_STATUS_NOT_INITIALIZED);
  EXPECT(cublasSetStream(nullptr, nullptr), CUBLAS_STATUS_NOT_INITIALIZED);
  {
    void* ws = aligned_alloc(256, 1024);
    EXPECT(cublasSetWorkspace(h, ws, 1024), CUBLAS_STATUS_SUCCESS);
    EXPECT(cublasSetWorkspace(h, static_cast<char*>(ws) + 16, 512), CUBLAS_STATUS_INVALID_VALUE);  // not 256-aligned
    EXPECT(cublasSetWorkspace(h, nullptr, 512), CUBLAS_STATUS_INVALID_VALUE);
    EXPECT(cublasSetWorkspace(h, nullptr, 0), CUBLAS_STATUS_SUCCESS);
    EXPECT(cublasSetWorkspace(nullptr, ws, 1024), CUBLAS_STATUS_NOT_INITIALIZED);
    free(ws);
  }
  EXPECT(cublasDestroy(nullptr), CUBLAS_STATUS_NOT_INITIALIZED);

  // cuBLASLt: attribute values and sizes
  cublasLtHandle_t lt;
  CHECK(cublasLtCreate(&lt) == 0, "create");
  cublasLtMatmulDesc_t desc;
  CHECK(cublasLtMatmulDescCreate(&desc, C32, CUDA_R_32F) == 0, "desc");
  int32_t op = CUBLAS_OP_CONJG, mode = 99;
  int64_t wrong = CUBLAS_OP_T;
  EXPECT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op, sizeof op), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &wrong, sizeof wrong), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, nullptr, 4), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof mode), CUBLAS_STATUS_INVALID_VALUE);
  cublasLtMatmulDescDestroy(desc);
  cublasLtMatmulPreference_t pref;
  CHECK(cublasLtMatmulPreferenceCreate(&pref) == 0, "pref");
  uint32_t small = 0;
  EXPECT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &small, sizeof small),
         CUBLAS_STATUS_INVALID_VALUE);
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayout_t lay;
  CHECK(cublasLtMatrixLayoutCreate(&lay, F, 4, 4, 4) == 0, "layout");
  int32_t bad_order = 42;
  EXPECT(cublasLtMatrixLayoutSetAttribute(lay, CUBLASLT_MATRIX_LAYOUT_ORDER, &bad_order, sizeof bad_order),
         CUBLAS_STATUS_INVALID_VALUE);
  int64_t bad_count = 3;
  EXPECT(cublasLtMatrixLayoutSetAttribute(lay, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bad_count, sizeof bad_count),
         CUBLAS_STATUS_INVALID_VALUE);
  cublasLtMatrixLayoutDestroy(lay);

  // cuBLASLt: problems, through heuristic + matmul
  auto run = [&](cudaDataType ab, cudaDataType d, int m, int n, int k, int64_t lda_extra, bool ta, bool tb,
                 bool row_a, LtCall c) {
    Mat A = random_mat(m, k, 1, ab), B = random_mat(k, n, 1, ab), C = random_mat(m, n, 1, d);
    Stored sa = pack(A, ab, ta, row_a, 0), sb = pack(B, ab, tb, false, 0), sc = pack(C, d, false, false, 0);
    sa.ld += lda_extra;  // a negative extra makes ld smaller than the rows (or columns)
    c.ta = ta ? CUBLAS_OP_T : CUBLAS_OP_N, c.tb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    return lt_matmul(lt, c, sa, sb, nullptr, sc);
  };
  LtCall plain;
  EXPECT(run(F, F, 8, 4, 6, -1, false, false, false, plain), CUBLAS_STATUS_INVALID_VALUE);  // lda < rows
  EXPECT(run(F, F, 8, 4, 6, -1, true, false, false, plain), CUBLAS_STATUS_INVALID_VALUE);   // lda < rows (= k)
  EXPECT(run(F, F, 8, 4, 6, -1, false, false, true, plain), CUBLAS_STATUS_INVALID_VALUE);   // row order: lda < cols
  EXPECT(run(F, BF, 8, 4, 6, 0, false, false, false, plain), CUBLAS_STATUS_NOT_SUPPORTED);  // F32 x F32 -> BF16
  LtCall fast16bf = plain;
  fast16bf.compute = CUBLAS_COMPUTE_32F_FAST_TF32;
  EXPECT(run(BF, BF, 8, 4, 6, 0, false, false, false, fast16bf), CUBLAS_STATUS_NOT_SUPPORTED);
  const float s1 = 1;
  LtCall scaled = plain;
  scaled.a_scale = &s1;
  EXPECT(run(BF, BF, 8, 4, 6, 0, false, false, false, scaled), CUBLAS_STATUS_INVALID_VALUE);  // scale on BF16
  LtCall drelu = plain;
  drelu.epilogue = CUBLASLT_EPILOGUE_DRELU;
  EXPECT(run(F, F, 8, 4, 6, 0, false, false, false, drelu), CUBLAS_STATUS_NOT_SUPPORTED);
  LtCall nobias = plain;
  nobias.epilogue = CUBLASLT_EPILOGUE_BIAS;
  EXPECT(run(F, F, 8, 4, 6, 0, false, false, false, nobias), CUBLAS_STATUS_INVALID_VALUE);
  // FP8: "TN" only, 16-byte leading dimensions, block modes paired
  std::vector<float> sc(64, 1.0f);
  LtCall f8 = plain;
  EXPECT(run(CUDA_R_8F_E4M3, BF, 16, 16, 32, 0, false, false, false, f8), CUBLAS_STATUS_NOT_SUPPORTED);  // NN
  EXPECT(run(CUDA_R_8F_E4M3, BF, 16, 16, 32, 0, true, true, false, f8), CUBLAS_STATUS_NOT_SUPPORTED);   // TT
  EXPECT(run(CUDA_R_8F_E4M3, BF, 16, 16, 24, 0, true, false, false, f8), CUBLAS_STATUS_NOT_SUPPORTED);  // ld 24
  EXPECT(run(CUDA_R_8F_E4M3, BF, 16, 16, 32, 0, true, false, false, f8), CUBLAS_STATUS_SUCCESS);
  LtCall blk2 = f8;
  blk2.a_mode = blk2.b_mode = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
  blk2.a_scale = blk2.b_scale = sc.data();
  EXPECT(run(CUDA_R_8F_E4M3, BF, 16, 16, 32, 0, true, false, false, blk2), CUBLAS_STATUS_NOT_SUPPORTED);
  LtCall vec1 = f8;
  vec1.a_mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
  vec1.a_scale = sc.data();
  EXPECT(run(CUDA_R_8F_E4M3, BF, 16, 16, 32, 0, true, false, false, vec1), CUBLAS_STATUS_NOT_SUPPORTED);
  LtCall noptr = f8;
  noptr.a_mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F, noptr.b_mode = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
  EXPECT(run(CUDA_R_8F_E4M3, BF, 16, 16, 32, 0, true, false, false, noptr), CUBLAS_STATUS_INVALID_VALUE);
  LtCall mx = f8;
  mx.a_mode = mx.b_mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0;
  mx.a_scale = mx.b_scale = sc.data();
  EXPECT(run(CUDA_R_8F_E4M3, BF, 16, 16, 32, 0, true, false, false, mx), CUBLAS_STATUS_NOT_SUPPORTED);
  // shapes and batch counts that disagree, and attributes the stand-in does not model, straight
  // through cublasLtMatmul (no heuristic first; a NULL algo lets the library choose)
  {
    cublasLtMatmulDesc_t dd;
    CHECK(cublasLtMatmulDescCreate(&dd, C32, CUDA_R_32F) == 0, "desc");
    cublasLtMatrixLayout_t la, lb, lc, lb_bad;
    CHECK(cublasLtMatrixLayoutCreate(&la, F, 8, 6, 8) == 0 && cublasLtMatrixLayoutCreate(&lb, F, 6, 4, 6) == 0 &&
          cublasLtMatrixLayoutCreate(&lc, F, 8, 4, 8) == 0 && cublasLtMatrixLayoutCreate(&lb_bad, F, 7, 4, 7) == 0,
          "layouts");
    EXPECT(cublasLtMatmul(lt, dd, &one, p, la, p, lb, &zero, p, lc, p, lc, nullptr, nullptr, 0, nullptr),
           CUBLAS_STATUS_SUCCESS);
    EXPECT(cublasLtMatmul(lt, dd, &one, p, la, p, lb_bad, &zero, p, lc, p, lc, nullptr, nullptr, 0, nullptr),
           CUBLAS_STATUS_INVALID_VALUE);  // K of A (6) != K of B (7)
    EXPECT(cublasLtMatmul(lt, dd, &one, p, la, p, lb, &zero, p, lb, p, lc, nullptr, nullptr, 0, nullptr),
           CUBLAS_STATUS_INVALID_VALUE);  // C is not M x N
    EXPECT(cublasLtMatmul(lt, dd, nullptr, p, la, p, lb, &zero, p, lc, p, lc, nullptr, nullptr, 0, nullptr),
           CUBLAS_STATUS_INVALID_VALUE);  // alpha NULL
    int32_t two = 2;
    CHECK(cublasLtMatrixLayoutSetAttribute(la, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &two, sizeof two) == 0, "batch");
    EXPECT(cublasLtMatmul(lt, dd, &one, p, la, p, lb, &zero, p, lc, p, lc, nullptr, nullptr, 0, nullptr),
           CUBLAS_STATUS_INVALID_VALUE);  // batch counts differ
    int32_t one_batch = 1;
    CHECK(cublasLtMatrixLayoutSetAttribute(la, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &one_batch, sizeof one_batch) == 0,
          "batch");
    int32_t vec = CUBLASLT_POINTER_MODE_DEVICE_VECTOR;
    CHECK(cublasLtMatmulDescSetAttribute(dd, CUBLASLT_MATMUL_DESC_POINTER_MODE, &vec, sizeof vec) == 0, "mode");
    EXPECT(cublasLtMatmul(lt, dd, &one, p, la, p, lb, &zero, p, lc, p, lc, nullptr, nullptr, 0, nullptr),
           CUBLAS_STATUS_NOT_SUPPORTED);  // alpha vectors are not modelled
    cublasLtMatmulDesc_t da;
    CHECK(cublasLtMatmulDescCreate(&da, C32, CUDA_R_32F) == 0, "desc");
    float* amax = p;
    CHECK(cublasLtMatmulDescSetAttribute(da, CUBLASLT_MATMUL_DESC_AMAX_D_POINTER, &amax, sizeof amax) == 0, "amax");
    EXPECT(cublasLtMatmul(lt, da, &one, p, la, p, lb, &zero, p, lc, p, lc, nullptr, nullptr, 0, nullptr),
           CUBLAS_STATUS_NOT_SUPPORTED);  // an attribute whose effect is not modelled
    cublasLtMatmulDescDestroy(da), cublasLtMatmulDescDestroy(dd);
    cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lc), cublasLtMatrixLayoutDestroy(lb_bad);
  }
  // handles
  cublasLtMatmulHeuristicResult_t res;
  int count = 7;
  EXPECT(cublasLtMatmulAlgoGetHeuristic(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, &res,
                                        &count), CUBLAS_STATUS_NOT_INITIALIZED);
  EXPECT(cublasLtMatmul(nullptr, nullptr, &one, p, nullptr, p, nullptr, &zero, p, nullptr, p, nullptr, nullptr,
                        nullptr, 0, nullptr), CUBLAS_STATUS_NOT_INITIALIZED);
  CHECK(cublasLtDestroy(lt) == 0, "destroy");
  EXPECT(cublasLtDestroy(nullptr), CUBLAS_STATUS_NOT_INITIALIZED);
  CHECK(strcmp(cublasGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED), "CUBLAS_STATUS_NOT_SUPPORTED") == 0, "name");
  CHECK(strcmp(cublasLtGetStatusName(CUBLAS_STATUS_INVALID_VALUE), "CUBLAS_STATUS_INVALID_VALUE") == 0, "name");
  CHECK(cublasGetStatusString(CUBLAS_STATUS_SUCCESS) && cublasLtGetStatusString(CUBLAS_STATUS_ALLOC_FAILED), "string");
  printf("argument checks: %d calls returned the documented status\n", n_checks);
#undef EXPECT
}
}  // namespace

int main() {
  cublasHandle_t h;
  CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS, "cublasCreate");
  CHECK(cublasSetStream(h, nullptr) == CUBLAS_STATUS_SUCCESS, "cublasSetStream");
  CHECK(cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH) == CUBLAS_STATUS_SUCCESS, "cublasSetMathMode");
  test_gemm_ex(h);
  test_row_major_linear(h);
  test_batched(h);
  test_lt();
  test_lt_fp8();
  test_checks(h);
  CHECK(cublasDestroy(h) == CUBLAS_STATUS_SUCCESS, "cublasDestroy");
  printf("%d checks, %d failed\n", g_checks, g_failures);
  return g_failures ? 1 : 0;
}
