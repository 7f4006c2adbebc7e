/*
 * bench_rank_cuda.h - the device measurements of glm-bench-rank (bench_rank.c)
 * that need the CUDA runtime, in C: bench_rank_cuda.cu is built with nvcc for
 * glm-bench-rank and with g++ on the CPU execution layer for
 * glm-bench-rank-cuda-cpu. Each returns 0, or -1 with a message in err.
 */
#ifndef GLM_BENCH_RANK_CUDA_H
#define GLM_BENCH_RANK_CUDA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when this binary runs its CUDA code on the CPU execution layer (tests/cuda_cpu/),
 * whose times say nothing about a GPU; 0 under nvcc. */
int glm_bench_cuda_on_cpu(void);

/* The name and memory (GiB) of device `device`. */
int glm_bench_device(int device, char *name, size_t namelen, double *mem_gib, char *err, size_t errlen);

/* cudaDeviceSynchronize. */
int glm_bench_sync(char *err, size_t errlen);

/* The median over `reps` cudaMemcpy device-to-device copies of `bytes` (after one
 * untimed copy), timed with events: *ms, and *gbps = 2 x bytes / time (every byte
 * is read once and written once). Both buffers are zeroed before they are freed. */
int glm_bench_copy(size_t bytes, int reps, double *ms, double *gbps, char *err, size_t errlen);

/* The median over `reps` (after two untimed runs) of glm_cu_linear (cuda/linear.h)
 * computing y [m, n] = x [m, k] W^T with W an FP8 e4m3 weight [n, k] with 128 x 128
 * block scales, x and y float32 (the call quantises x to FP8 per 1 x 128 group, as
 * every FP8 projection of the backend does): *ms and *tflops = 2 m n k / time. Its
 * buffers are zeroed before they are freed. */
int glm_bench_fp8_linear(int m, int n, int k, int reps, double *ms, double *tflops, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
