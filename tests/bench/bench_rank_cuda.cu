/*
 * bench_rank_cuda.cu - glm-bench-rank's reference measurements on the device:
 * the copy bandwidth (cudaMemcpy device to device) and the FP8 matrix rate
 * through the backend's own linear (cuda/linear.h). Contract in
 * bench_rank_cuda.h. Host code only: it launches no kernel of its own.
 */
#include "cuda/glm_cuda.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/linear.h"
#include "tests/bench/bench_rank_cuda.h"

extern "C" {
#include "core/util.h"
}

#define TRY(call)                                                                                   \
    do {                                                                                            \
        cudaError_t e_ = (call);                                                                    \
        if (e_ != cudaSuccess) {                                                                    \
            glm_err(err, errlen, "cuda: %s: %s", #call, cudaGetErrorString(e_));                    \
            goto out;                                                                               \
        }                                                                                           \
    } while (0)

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

extern "C" int glm_bench_cuda_on_cpu(void) { return GLM_CUDA_ON_CPU; }

extern "C" int glm_bench_device(int device, char *name, size_t namelen, double *mem_gib, char *err, size_t errlen)
{
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, device);
    if (e != cudaSuccess)
        return glm_err(err, errlen, "cuda: device %d: %s", device, cudaGetErrorString(e)), -1;
    snprintf(name, namelen, "%s", p.name);
    *mem_gib = (double)p.totalGlobalMem / 1073741824.0;
    return 0;
}

extern "C" int glm_bench_sync(char *err, size_t errlen)
{
    cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess)
        return glm_err(err, errlen, "cuda: cudaDeviceSynchronize: %s", cudaGetErrorString(e)), -1;
    return 0;
}

extern "C" int glm_bench_copy(size_t bytes, int reps, double *ms, double *gbps, char *err, size_t errlen)
{
    int rc = -1;
    void *a = NULL, *b = NULL;
    cudaEvent_t t0 = NULL, t1 = NULL;
    double *times = (double *)glm_calloc((size_t)reps, sizeof(double));
    TRY(cudaMalloc(&a, bytes));
    TRY(cudaMalloc(&b, bytes));
    TRY(cudaMemset(a, 0, bytes));
    TRY(cudaMemset(b, 0, bytes));
    TRY(cudaEventCreate(&t0));
    TRY(cudaEventCreate(&t1));
    TRY(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));
    for (int r = 0; r < reps; r++) {
        float t;
        TRY(cudaEventRecord(t0, 0));
        TRY(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));
        TRY(cudaEventRecord(t1, 0));
        TRY(cudaEventSynchronize(t1));
        TRY(cudaEventElapsedTime(&t, t0, t1));
        times[r] = t;
    }
    *ms = median(times, reps);
    *gbps = 2.0 * (double)bytes / (*ms * 1e-3) / 1e9;
    TRY(cudaDeviceSynchronize());
    rc = 0;
out:
    if (t0)
        cudaEventDestroy(t0);
    if (t1)
        cudaEventDestroy(t1);
    cudaFree(a);
    cudaFree(b);
    free(times);
    return rc;
}

extern "C" int glm_bench_fp8_linear(int m, int n, int k, int reps, double *ms, double *tflops, char *err,
                                    size_t errlen)
{
    int rc = -1;
    size_t wb = (size_t)n * k, nbr = (size_t)(n + 127) / 128, nbc = (size_t)(k + 127) / 128;
    size_t scale_ld = (nbc + 3) / 4 * 4, xs = (size_t)m * k;
    void *wdata = NULL, *lt_ws = NULL, *ws = NULL;
    float *scale = NULL, *x = NULL, *y = NULL;
    cudaStream_t st = NULL;
    cudaEvent_t t0 = NULL, t1 = NULL;
    cublasHandle_t blas = NULL;
    cublasLtHandle_t lt = NULL;
    glm_dweight w;
    glm_cu_linear_ctx ctx;
    glm_cu_linear_params lp;
    size_t lt_bytes = (size_t)32 << 20, ws_bytes = 0;
    double *times = (double *)glm_calloc((size_t)reps, sizeof(double));
    /* host values: e4m3 codes of magnitude 1/8 .. 1 with both signs (no NaN code), block
     * scales 1/64, activations in [-1, 1) */
    uint8_t *hw = (uint8_t *)glm_malloc(wb);
    float *hs = (float *)glm_malloc(sizeof(float) * nbr * scale_ld), *hx = (float *)glm_malloc(sizeof(float) * xs);
    for (size_t i = 0; i < wb; i++)
        hw[i] = (uint8_t)((((i * 2654435761u) >> 13) & 0x80) | (0x20 + ((i * 40503u) >> 7) % 0x18));
    for (size_t i = 0; i < nbr * scale_ld; i++)
        hs[i] = 1.0f / 64.0f;
    for (size_t i = 0; i < xs; i++)
        hx[i] = (float)(int)((i * 2246822519u) >> 20 & 0x7ff) / 1024.0f - 1.0f;

    TRY(cudaMalloc(&wdata, wb));
    TRY(cudaMalloc((void **)&scale, sizeof(float) * nbr * scale_ld));
    TRY(cudaMalloc((void **)&x, sizeof(float) * xs));
    TRY(cudaMalloc((void **)&y, sizeof(float) * (size_t)m * n));
    TRY(cudaMalloc(&lt_ws, lt_bytes));
    TRY(cudaMemcpy(wdata, hw, wb, cudaMemcpyHostToDevice));
    TRY(cudaMemcpy(scale, hs, sizeof(float) * nbr * scale_ld, cudaMemcpyHostToDevice));
    TRY(cudaMemcpy(x, hx, sizeof(float) * xs, cudaMemcpyHostToDevice));
    TRY(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    TRY(cudaEventCreate(&t0));
    TRY(cudaEventCreate(&t1));
    if (cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS || cublasLtCreate(&lt) != CUBLAS_STATUS_SUCCESS ||
        cublasSetStream(blas, st) != CUBLAS_STATUS_SUCCESS) {
        glm_err(err, errlen, "cuda: cannot create the cuBLAS handles");
        goto out;
    }
    w = (glm_dweight){wdata, GLM_DTYPE_F8_E4M3, n, k, scale, 128, 128, (int)scale_ld};
    ws_bytes = glm_cu_linear_workspace(&w, m);
    TRY(cudaMalloc(&ws, ws_bytes ? ws_bytes : 1));
    ctx = (glm_cu_linear_ctx){blas, lt, lt_ws, lt_bytes, 0};
    lp = (glm_cu_linear_params){m, &w, 0, n, x, k, y, n};
    for (int r = -2; r < reps; r++) {
        float t;
        TRY(cudaEventRecord(t0, st));
        if (glm_cu_linear(&ctx, &lp, ws, ws_bytes, st, err, errlen) != 0)
            goto out;
        TRY(cudaEventRecord(t1, st));
        TRY(cudaEventSynchronize(t1));
        TRY(cudaEventElapsedTime(&t, t0, t1));
        if (r >= 0)
            times[r] = t;
    }
    *ms = median(times, reps);
    *tflops = 2.0 * m * (double)n * k / (*ms * 1e-3) / 1e12;
    rc = 0;
out:
    if (st)
        cudaStreamSynchronize(st);
    cudaDeviceSynchronize();
    if (lt)
        cublasLtDestroy(lt);
    if (blas)
        cublasDestroy(blas);
    if (t0)
        cudaEventDestroy(t0);
    if (t1)
        cudaEventDestroy(t1);
    if (st)
        cudaStreamDestroy(st);
    cudaFree(wdata);
    cudaFree(scale);
    cudaFree(x);
    cudaFree(y);
    cudaFree(lt_ws);
    cudaFree(ws);
    free(hw);
    free(hs);
    free(hx);
    free(times);
    return rc;
}
