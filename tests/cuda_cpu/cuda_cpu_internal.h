/* cuda_cpu_internal.h - what the CPU execution layer's scheduler (cuda_cpu.cpp) and runtime API
 * (cuda_cpu_runtime.cpp) share. Not for kernels or tests. */
#ifndef GLM_CUDA_CPU_INTERNAL_H
#define GLM_CUDA_CPU_INTERNAL_H

#include <cuda_runtime_api.h>

namespace glm_cpu {

/* The most dynamic shared memory a block may ask for with the attribute (H100/H200: 227 KiB). */
const int SMEM_OPTIN_MAX = 232448;

/* Records e as this host thread's last error (cudaGetLastError) unless it is cudaSuccess; returns e. */
cudaError_t set_error(cudaError_t e);

/* The dynamic shared memory a launch of func may use: 48 KiB, or what
 * cudaFuncAttributeMaxDynamicSharedMemorySize set. */
int dyn_smem_limit(const void *func);

} // namespace glm_cpu

#endif
