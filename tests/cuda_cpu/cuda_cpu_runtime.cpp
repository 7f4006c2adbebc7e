/* cuda_cpu_runtime.cpp - the CUDA runtime API subset of the CPU execution layer, defined against the
 * toolkit's cuda_runtime_api.h prototypes (a wrong call does not compile): memory, copies, streams
 * and events (run in order), errors, an H200-like device, function attributes. Test-only. */
#include "cuda_cpu.h"
#include "cuda_cpu_internal.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

namespace glm_cpu {

static thread_local cudaError_t g_last_error = cudaSuccess;
static std::mutex g_attr_lock;
static std::map<const void *, int> g_max_dyn_smem;

cudaError_t set_error(cudaError_t e)
{
    if (e != cudaSuccess) g_last_error = e;
    return e;
}

int dyn_smem_limit(const void *func)
{
    std::lock_guard<std::mutex> g(g_attr_lock);
    auto it = g_max_dyn_smem.find(func);
    return it != g_max_dyn_smem.end() ? std::max(48 * 1024, it->second) : 48 * 1024;
}

} // namespace glm_cpu

using namespace glm_cpu;

/* ---- the runtime API subset ------------------------------------------------------------------ */
/* Device memory is host memory of the exact size asked for, so ASan sees overruns, aligned to
 * 256 bytes as cudaMalloc's is (cuBLAS workspaces and vectorised loads rely on it). */
cudaError_t cudaMalloc(void **p, size_t size)
{
    if (!p) return set_error(cudaErrorInvalidValue);
    if (posix_memalign(p, 256, size ? size : 1) != 0) {
        *p = nullptr;
        return set_error(cudaErrorMemoryAllocation);
    }
    return cudaSuccess;
}
cudaError_t cudaFree(void *p)
{
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t size) { return cudaMalloc(p, size); }
cudaError_t cudaFreeHost(void *p) { return cudaFree(p); }
cudaError_t cudaHostAlloc(void **p, size_t size, unsigned int) { return cudaMalloc(p, size); }

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind)
{
    if ((unsigned)kind > cudaMemcpyDefault) return set_error(cudaErrorInvalidMemcpyDirection);
    if (n) memmove(dst, src, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t)
{
    return cudaMemcpy(dst, src, n, kind);
}
cudaError_t cudaMemset(void *p, int v, size_t n)
{
    if (n) memset(p, v, n);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t) { return cudaMemset(p, v, n); }
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total)
{
    size_t t = (size_t)141 << 30;
    if (free_b) *free_b = t - ((size_t)1 << 30);
    if (total) *total = t;
    return cudaSuccess;
}

/* Streams run one after another: every call completes before it returns. */
cudaError_t cudaStreamCreate(cudaStream_t *s)
{
    *s = reinterpret_cast<cudaStream_t>(new char(1));
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int) { return cudaStreamCreate(s); }
cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    delete reinterpret_cast<char *>(s);
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t e, unsigned int)
{
    return e ? cudaSuccess : set_error(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaStreamQuery(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

struct glm_cpu_event {
    int recorded;
    std::chrono::steady_clock::time_point t; /* when recorded: work before it has completed */
};
cudaError_t cudaEventCreate(cudaEvent_t *e)
{
    *e = reinterpret_cast<cudaEvent_t>(new glm_cpu_event{0, {}});
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    delete reinterpret_cast<glm_cpu_event *>(e);
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t)
{
    if (!e) return set_error(cudaErrorInvalidResourceHandle);
    reinterpret_cast<glm_cpu_event *>(e)->recorded = 1;
    reinterpret_cast<glm_cpu_event *>(e)->t = std::chrono::steady_clock::now();
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) { return e ? cudaSuccess : set_error(cudaErrorInvalidResourceHandle); }
cudaError_t cudaEventQuery(cudaEvent_t e) { return e ? cudaSuccess : set_error(cudaErrorInvalidResourceHandle); }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
    if (!a || !b || !ms) return set_error(cudaErrorInvalidValue);
    glm_cpu_event *ea = reinterpret_cast<glm_cpu_event *>(a), *eb = reinterpret_cast<glm_cpu_event *>(b);
    if (!ea->recorded || !eb->recorded) return set_error(cudaErrorInvalidResourceHandle);
    *ms = (float)std::chrono::duration<double, std::milli>(eb->t - ea->t).count();
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = g_last_error;
    g_last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return g_last_error; }
const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorInvalidPitchValue: return "invalid pitch argument";
    default: return "unknown error";
    }
}
const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    default: return "cudaErrorUnknown";
    }
}

/* Devices: one, or GLM_CUDA_CPU_DEVICES (1..64) of them, to run tensor-parallel ranks one
 * device each. They are all the same host memory and threads; the current device is per host
 * thread, as CUDA's is, so a rank that sets another rank's device or none is still told. */
static int device_count()
{
    static const int n = [] {
        const char *e = getenv("GLM_CUDA_CPU_DEVICES");
        int v = e ? atoi(e) : 1;
        return v >= 1 && v <= 64 ? v : 1;
    }();
    return n;
}
static thread_local int g_device = 0;

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = device_count();
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d)
{
    if (d < 0 || d >= device_count()) return set_error(cudaErrorInvalidDevice);
    g_device = d;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *d)
{
    *d = g_device;
    return cudaSuccess;
}

/* An H200-like device: the numbers launch checks and memory plans read. */
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d)
{
    if (d < 0 || d >= device_count()) return set_error(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CPU execution layer (H200-like)");
    p->totalGlobalMem = (size_t)141 << 30;
    p->sharedMemPerBlock = 48 * 1024;
    p->sharedMemPerBlockOptin = SMEM_OPTIN_MAX;
    p->sharedMemPerMultiprocessor = 233472;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024;
    p->maxThreadsDim[1] = 1024;
    p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 0x7fffffff;
    p->maxGridSize[1] = 65535;
    p->maxGridSize[2] = 65535;
    p->totalConstMem = 65536;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 132;
    p->maxThreadsPerMultiProcessor = 2048;
    p->l2CacheSize = 50 * 1024 * 1024;
    p->memoryBusWidth = 6144;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int d)
{
    if (d < 0 || d >= device_count()) return set_error(cudaErrorInvalidDevice);
    cudaDeviceProp p;
    cudaGetDeviceProperties(&p, 0);
    switch (a) {
    case cudaDevAttrMaxThreadsPerBlock: *v = p.maxThreadsPerBlock; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = (int)p.sharedMemPerBlock; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = (int)p.sharedMemPerBlockOptin; break;
    case cudaDevAttrMultiProcessorCount: *v = p.multiProcessorCount; break;
    case cudaDevAttrWarpSize: *v = 32; break;
    case cudaDevAttrComputeCapabilityMajor: *v = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *v = p.minor; break;
    default: return set_error(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value)
{
    if (!func) return set_error(cudaErrorInvalidDeviceFunction);
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || value > SMEM_OPTIN_MAX) return set_error(cudaErrorInvalidValue);
        std::lock_guard<std::mutex> g(g_attr_lock);
        g_max_dyn_smem[func] = value;
        return cudaSuccess;
    }
    if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) return cudaSuccess;
    return set_error(cudaErrorInvalidValue);
}

cudaError_t cudaMallocAsync(void **p, size_t size, cudaStream_t) { return cudaMalloc(p, size); }
cudaError_t cudaFreeAsync(void *p, cudaStream_t) { return cudaFree(p); }
cudaError_t cudaDeviceReset(void) { return cudaSuccess; }

cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind)
{
    if (width > dpitch || width > spitch) return set_error(cudaErrorInvalidPitchValue);
    for (size_t r = 0; r < height; r++)
        cudaMemcpy(static_cast<char *>(dst) + r * dpitch, static_cast<const char *>(src) + r * spitch, width, kind);
    return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                              size_t height, cudaMemcpyKind kind, cudaStream_t)
{
    return cudaMemcpy2D(dst, dpitch, src, spitch, width, height, kind);
}

/* __constant__ and __device__ variables are host globals: a symbol is its own address. */
cudaError_t cudaMemcpyToSymbol(const void *symbol, const void *src, size_t count, size_t offset, cudaMemcpyKind)
{
    memcpy(static_cast<char *>(const_cast<void *>(symbol)) + offset, src, count);
    return cudaSuccess;
}
cudaError_t cudaMemcpyToSymbolAsync(const void *symbol, const void *src, size_t count, size_t offset,
                                    cudaMemcpyKind kind, cudaStream_t)
{
    return cudaMemcpyToSymbol(symbol, src, count, offset, kind);
}
cudaError_t cudaMemcpyFromSymbol(void *dst, const void *symbol, size_t count, size_t offset, cudaMemcpyKind)
{
    memcpy(dst, static_cast<const char *>(symbol) + offset, count);
    return cudaSuccess;
}

/* CUDA graphs are not emulated: capture reports cudaErrorNotSupported (keep graphs behind a switch
 * the CPU tests turn off). */
cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode) { return set_error(cudaErrorNotSupported); }
cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t *g)
{
    if (g) *g = nullptr;
    return set_error(cudaErrorNotSupported);
}
cudaError_t cudaStreamIsCapturing(cudaStream_t, cudaStreamCaptureStatus *st)
{
    *st = cudaStreamCaptureStatusNone;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *, cudaGraph_t, unsigned long long) { return set_error(cudaErrorNotSupported); }
cudaError_t cudaGraphLaunch(cudaGraphExec_t, cudaStream_t) { return set_error(cudaErrorNotSupported); }
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t) { return cudaSuccess; }
cudaError_t cudaGraphDestroy(cudaGraph_t) { return cudaSuccess; }
