/* glm_cuda.h - the one header every CUDA source of the project includes first.
 *
 * Under nvcc it is plain CUDA. Compiled by a host C++ compiler (g++ -std=c++17 -x c++ with the
 * toolkit's include directory) it pulls in the test-only CPU execution layer
 * (tests/cuda_cpu/cuda_cpu.h), which runs the same kernels on the CPU.
 *
 * The portable subset (docs/architecture.md, "The CPU execution layer for CUDA code"):
 *   - launch only through GLM_LAUNCH (g++ cannot parse <<<>>>); it yields the launch's cudaError_t;
 *     a template kernel whose arguments hold a comma goes in parentheses: GLM_LAUNCH((k<T, 4>), ...);
 *   - dynamic shared memory only through GLM_DYN_SMEM, never `extern __shared__`;
 *   - only the *_sync warp intrinsics, warp size 32; no inline PTX, mma/wgmma, cp.async/TMA, CUB.
 */
#ifndef GLM_CUDA_H
#define GLM_CUDA_H

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>

/* GLM_LAUNCH(kernel, grid, block, smem_bytes, stream, args...): an expression of type cudaError_t,
 * the launch followed by its error check (cudaGetLastError, which also clears it). */
#define GLM_LAUNCH(kernel, grid, block, smem, stream, ...) \
    ((kernel)<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__), cudaGetLastError())

/* GLM_DYN_SMEM(T, name): `T *name` pointing at the block's dynamic shared memory (16-byte aligned). */
#define GLM_DYN_SMEM(T, name)                                           \
    extern __shared__ __align__(16) unsigned char glm_dyn_smem_[];      \
    T *name = reinterpret_cast<T *>(glm_dyn_smem_)

#define GLM_CUDA_ON_CPU 0
/* GLM_UNROLL before a loop: #pragma unroll under nvcc (g++ has none) */
#define GLM_UNROLL _Pragma("unroll")
#else
#include "tests/cuda_cpu/cuda_cpu.h"
#define GLM_CUDA_ON_CPU 1
#define GLM_UNROLL
#endif

#endif
