/* cuda_cpu.h - test-only CPU execution layer for the project's CUDA code (never in glm-server).
 *
 * Kernels include cuda/glm_cuda.h, which includes this file when the compiler is not nvcc. The
 * runtime API (cudaMalloc, streams, events, ...) is implemented in cuda_cpu.cpp against the real
 * prototypes of the toolkit's cuda_runtime_api.h, so a wrong call fails to compile.
 *
 * Execution model: every CUDA thread is a fiber with its own stack; the threads of a block run
 * cooperatively on one OS thread (a fiber runs until it reaches a barrier, a warp collective or its
 * end); blocks are spread over a pool of OS threads. __shared__ is thread_local (one copy per OS
 * thread = per block in flight); dynamic shared memory (GLM_DYN_SMEM) is filled with 0xff bytes
 * (NaN in f32/f16/bf16) before each block. Barriers and warp collectives are rendezvous; a barrier
 * reached at different sites, a warp collective that can never complete, or a collective a thread
 * joins without naming itself, is reported on stderr (file:line, every lane's state) and aborts.
 *
 * Environment:
 *   GLM_CUDA_CPU_ORDER    forward (default) | reverse | random: the order runnable threads resume in
 *   GLM_CUDA_CPU_SEED     seed of the random order (default 1)
 *   GLM_CUDA_CPU_THREADS  OS threads that run blocks (default: online CPUs, at most 8)
 */
#ifndef GLM_CUDA_CPU_H
#define GLM_CUDA_CPU_H

#if defined(__CUDACC__)
#error "cuda_cpu.h is the CPU layer: nvcc builds use plain CUDA (cuda/glm_cuda.h)"
#endif

#include <cuda_runtime_api.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

/* CUDA's execution-space keywords: nothing on the CPU. __shared__ is one copy per OS thread. */
#undef __host__
#undef __device__
#undef __global__
#undef __shared__
#undef __constant__
#undef __forceinline__
#undef __noinline__
#undef __launch_bounds__
#define __host__
#define __device__
#define __global__
#define __shared__ static thread_local
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#ifndef __restrict__
#define __restrict__ __restrict
#endif

namespace glm_cpu {

enum order { ORDER_FORWARD, ORDER_REVERSE, ORDER_RANDOM };

/* The running CUDA thread's coordinates (valid inside a kernel only). */
struct coords {
    uint3 thread_idx;
    uint3 block_idx;
    dim3 block_dim;
    dim3 grid_dim;
};
extern thread_local const coords *cur_coords;

/* Override the resume order chosen by GLM_CUDA_CPU_ORDER (tests run several orders in one process). */
void set_order(order o, unsigned seed);
order get_order();
/* Read GLM_CUDA_CPU_ORDER / GLM_CUDA_CPU_SEED again (done once, at the first launch, otherwise). */
void reload_env();

/* Launch: validates like the driver, then runs every block; returns (and records as the last
 * error) cudaSuccess or the launch error. Streams run in order: the launch completes before return. */
cudaError_t launch_erased(const void *func, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                          const std::function<void()> &body, const char *file, int line);

template <class... P, class... A>
cudaError_t launch(const char *file, int line, void (*kernel)(P...), dim3 grid, dim3 block,
                   size_t smem, cudaStream_t stream, A &&...args)
{
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
    std::tuple<std::decay_t<P>...> a(std::forward<A>(args)...);
    std::function<void()> body = [&a, kernel]() { std::apply(kernel, a); };
    return launch_erased(reinterpret_cast<const void *>(kernel), grid, block, smem, stream, body,
                         file, line);
}

unsigned char *dyn_smem();

/* Block barrier: kind 0 plain, 1 count, 2 and, 3 or. Returns the combined predicate. */
int barrier(int kind, int pred, const char *file, int line);

/* Warp collectives: every lane named in mask deposits its value and waits for the others. */
enum warp_op { W_SHFL_IDX, W_SHFL_UP, W_SHFL_DOWN, W_SHFL_XOR, W_BALLOT, W_ANY, W_ALL, W_SYNC,
               W_MATCH_ANY, W_RED_ADD, W_RED_MIN, W_RED_MAX, W_RED_AND, W_RED_OR, W_RED_XOR };
/* in/out: 8 bytes of lane value; arg: source lane, delta or lane mask; returns the op's word result. */
unsigned long long warp(warp_op op, unsigned mask, const void *in, size_t size, int arg, int width,
                        void *out, const char *file, int line);

inline unsigned full_mask(unsigned m = 0xffffffffu) { return m; }

template <class T> inline T shfl(warp_op op, unsigned mask, T v, int arg, int width, const char *f,
                                 int l)
{
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a type > 8 bytes");
    T out;
    warp(op, mask, &v, sizeof(T), arg, width, &out, f, l);
    return out;
}

template <class T> inline T cas_loop_add(T *addr, T v)
{
    static_assert(sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8, "atomic size");
    using U = std::conditional_t<sizeof(T) == 2, unsigned short,
                                 std::conditional_t<sizeof(T) == 4, unsigned, unsigned long long>>;
    U *p = reinterpret_cast<U *>(addr);
    U old = __atomic_load_n(p, __ATOMIC_RELAXED);
    for (;;) {
        T o, n;
        std::memcpy((void *)&o, &old, sizeof o);
        n = T(float(o) + float(v));
        if constexpr (sizeof(T) == 8) n = T(double(o) + double(v));
        U nu;
        std::memcpy(&nu, (const void *)&n, sizeof nu);
        if (__atomic_compare_exchange_n(p, &old, nu, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            return o;
    }
}

} // namespace glm_cpu

#define threadIdx (glm_cpu::cur_coords->thread_idx)
#define blockIdx (glm_cpu::cur_coords->block_idx)
#define blockDim (glm_cpu::cur_coords->block_dim)
#define gridDim (glm_cpu::cur_coords->grid_dim)
static constexpr int warpSize = 32;

/* As under nvcc: the launch, then cudaGetLastError() (which returns and clears the launch's error). */
#define GLM_LAUNCH(kernel, grid, block, smem, stream, ...)                                              \
    ((void)glm_cpu::launch(__FILE__, __LINE__, (kernel), (grid), (block), (smem), (stream), ##__VA_ARGS__), \
     cudaGetLastError())
#define GLM_DYN_SMEM(T, name) T *name = reinterpret_cast<T *>(glm_cpu::dyn_smem())

/* cuda_runtime.h's C++ overload, which host compilers do not see. */
template <class T>
inline cudaError_t cudaFuncSetAttribute(T *entry, cudaFuncAttribute attr, int value)
{
    return ::cudaFuncSetAttribute(reinterpret_cast<const void *>(entry), attr, value);
}
template <class T>
inline cudaError_t cudaMemcpyToSymbol(const T &symbol, const void *src, size_t count, size_t offset = 0,
                                      cudaMemcpyKind kind = cudaMemcpyHostToDevice)
{
    return ::cudaMemcpyToSymbol(static_cast<const void *>(&symbol), src, count, offset, kind);
}
template <class T>
inline cudaError_t cudaMemcpyFromSymbol(void *dst, const T &symbol, size_t count, size_t offset = 0,
                                        cudaMemcpyKind kind = cudaMemcpyDeviceToHost)
{
    return ::cudaMemcpyFromSymbol(dst, static_cast<const void *>(&symbol), count, offset, kind);
}
template <class T> inline cudaError_t cudaMalloc(T **p, size_t size)
{
    return ::cudaMalloc(reinterpret_cast<void **>(p), size);
}

/* ---- barriers and warp collectives ---------------------------------------------------------- */
#define __syncthreads() ((void)glm_cpu::barrier(0, 1, __FILE__, __LINE__))
#define __syncthreads_count(p) glm_cpu::barrier(1, (p) != 0, __FILE__, __LINE__)
#define __syncthreads_and(p) glm_cpu::barrier(2, (p) != 0, __FILE__, __LINE__)
#define __syncthreads_or(p) glm_cpu::barrier(3, (p) != 0, __FILE__, __LINE__)

#define GLM_CPU_W_(op, mask, v, arg, w) glm_cpu::shfl(glm_cpu::op, (mask), (v), (arg), (w), __FILE__, __LINE__)
#define GLM_CPU_W4_(op, mask, v, arg, w, ...) GLM_CPU_W_(op, mask, v, arg, w)
#define __shfl_sync(...) GLM_CPU_W4_(W_SHFL_IDX, __VA_ARGS__, 32, 0)
#define __shfl_up_sync(...) GLM_CPU_W4_(W_SHFL_UP, __VA_ARGS__, 32, 0)
#define __shfl_down_sync(...) GLM_CPU_W4_(W_SHFL_DOWN, __VA_ARGS__, 32, 0)
#define __shfl_xor_sync(...) GLM_CPU_W4_(W_SHFL_XOR, __VA_ARGS__, 32, 0)

#define GLM_CPU_WP_(op, mask, p) \
    ((unsigned)glm_cpu::warp(glm_cpu::op, (mask), nullptr, 0, (p) != 0, 32, nullptr, __FILE__, __LINE__))
#define __ballot_sync(mask, p) GLM_CPU_WP_(W_BALLOT, mask, p)
#define __any_sync(mask, p) ((int)GLM_CPU_WP_(W_ANY, mask, p))
#define __all_sync(mask, p) ((int)GLM_CPU_WP_(W_ALL, mask, p))
#define __syncwarp(...) ((void)GLM_CPU_WP_(W_SYNC, glm_cpu::full_mask(__VA_ARGS__), 1))
#define GLM_CPU_WV_(op, mask, v) \
    [&]() { auto v_ = (v); return (decltype(v_))glm_cpu::warp(glm_cpu::op, (mask), &v_, sizeof v_, std::is_signed<decltype(v_)>::value, 32, nullptr, __FILE__, __LINE__); }()
#define __match_any_sync(mask, v) ((unsigned)GLM_CPU_WV_(W_MATCH_ANY, mask, (v)))
#define __reduce_add_sync(mask, v) GLM_CPU_WV_(W_RED_ADD, mask, (v))
#define __reduce_min_sync(mask, v) GLM_CPU_WV_(W_RED_MIN, mask, (v))
#define __reduce_max_sync(mask, v) GLM_CPU_WV_(W_RED_MAX, mask, (v))
#define __reduce_and_sync(mask, v) GLM_CPU_WV_(W_RED_AND, mask, (v))
#define __reduce_or_sync(mask, v) GLM_CPU_WV_(W_RED_OR, mask, (v))
#define __reduce_xor_sync(mask, v) GLM_CPU_WV_(W_RED_XOR, mask, (v))

/* ---- atomics: real CPU atomics (blocks run concurrently) ----------------------------------- */
#define GLM_CPU_ATOMIC_INT_(T)                                                                  \
    inline T atomicAdd(T *a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }        \
    inline T atomicSub(T *a, T v) { return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST); }        \
    inline T atomicAnd(T *a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST); }        \
    inline T atomicOr(T *a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST); }          \
    inline T atomicXor(T *a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST); }        \
    inline T atomicExch(T *a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); }      \
    inline T atomicCAS(T *a, T cmp, T v)                                                        \
    {                                                                                           \
        __atomic_compare_exchange_n(a, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);     \
        return cmp;                                                                             \
    }                                                                                           \
    inline T atomicMax(T *a, T v)                                                               \
    {                                                                                           \
        T o = __atomic_load_n(a, __ATOMIC_RELAXED);                                             \
        while (o < v && !__atomic_compare_exchange_n(a, &o, v, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {} \
        return o;                                                                               \
    }                                                                                           \
    inline T atomicMin(T *a, T v)                                                               \
    {                                                                                           \
        T o = __atomic_load_n(a, __ATOMIC_RELAXED);                                             \
        while (o > v && !__atomic_compare_exchange_n(a, &o, v, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {} \
        return o;                                                                               \
    }
GLM_CPU_ATOMIC_INT_(int)
GLM_CPU_ATOMIC_INT_(unsigned)
GLM_CPU_ATOMIC_INT_(unsigned long long)
GLM_CPU_ATOMIC_INT_(long long)
inline float atomicAdd(float *a, float v) { return glm_cpu::cas_loop_add(a, v); }
inline double atomicAdd(double *a, double v) { return glm_cpu::cas_loop_add(a, v); }
inline __half atomicAdd(__half *a, __half v) { return glm_cpu::cas_loop_add(a, v); }
inline __nv_bfloat16 atomicAdd(__nv_bfloat16 *a, __nv_bfloat16 v) { return glm_cpu::cas_loop_add(a, v); }
inline float atomicExch(float *a, float v)
{
    unsigned u, o;
    std::memcpy(&u, &v, 4);
    o = __atomic_exchange_n(reinterpret_cast<unsigned *>(a), u, __ATOMIC_SEQ_CST);
    float r;
    std::memcpy(&r, &o, 4);
    return r;
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* ---- the few device-only intrinsics kernels use ------------------------------------------- */
template <class T> inline T __ldg(const T *p) { return *p; }
inline long long clock64()
{
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}
inline void __nanosleep(unsigned) {}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline unsigned __brev(unsigned x)
{
    unsigned r = 0;
    for (int i = 0; i < 32; i++) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }

#endif
