/* test_cuda_cpu.cu - tests of the CPU execution layer (tests/cuda_cpu/) with realistic kernels.
 *
 * Part 1: kernels (block reduction with __shared__ and __syncthreads, warp-shuffle reductions and
 * scans with width, softmax in dynamic shared memory, atomics across blocks, two streams and an
 * event, ballot/match/reduce) against double-precision references under the forward, reverse and
 * random resume orders. Part 2: the layer catches a missing __syncthreads, a divergent barrier, a
 * warp deadlock, a launch of 2048 threads and dynamic shared memory over 48 KiB without the
 * attribute; the faulty kernels that abort run in a child process. Built with g++ (-x c++) against
 * the toolkit headers; the same file builds with nvcc (Part 2's reports are CPU-only). */
#include "cuda/glm_cuda.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

static int g_fail;
#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
            g_fail++;                                                           \
        }                                                                       \
    } while (0)
#define CUDA_OK(x) CHECK((x) == cudaSuccess, "%s", cudaGetErrorString(x))

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static double rel_err(double got, double want) { return fabs(got - want) / fmax(1.0, fabs(want)); }

/* ---- kernels ---------------------------------------------------------------------------------- */

/* out[block] = sum of x[block * n .. + n), 256 threads, tree reduction in static shared memory. */
__global__ void block_sum(const float *x, int n, float *out)
{
    __shared__ float s[256];
    float acc = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) acc += x[blockIdx.x * n + i];
    s[threadIdx.x] = acc;
    __syncthreads();
    for (int st = blockDim.x / 2; st > 0; st /= 2) {
        if ((int)threadIdx.x < st) s[threadIdx.x] += s[threadIdx.x + st];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

/* The same without the barriers inside the tree, in dynamic shared memory: a race. */
__global__ void block_sum_racy(const float *x, int n, float *out)
{
    GLM_DYN_SMEM(float, s);
    float acc = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) acc += x[blockIdx.x * n + i];
    s[threadIdx.x] = acc;
    for (int st = blockDim.x / 2; st > 0; st /= 2)
        if ((int)threadIdx.x < st) s[threadIdx.x] += s[threadIdx.x + st];
    if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

/* Per group of `W` lanes: sum (xor butterfly), max (down + broadcast from the group's first lane),
 * inclusive prefix sum (up). Warps loop different trip counts: warp w handles w + 1 rows. */
template <int W>
__global__ void subwarp(const float *x, float *sum, float *mx, float *scan, int rows_per_warp_max)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int r = 0; r <= warp && r < rows_per_warp_max; r++) {
        int row = blockIdx.x * 8 * rows_per_warp_max + warp * rows_per_warp_max + r;
        float v = x[row * 32 + lane];
        float s = v;
        for (int o = W / 2; o > 0; o /= 2) s += __shfl_xor_sync(0xffffffffu, s, o, W);
        float m = v;
        for (int o = W / 2; o > 0; o /= 2) m = fmaxf(m, __shfl_down_sync(0xffffffffu, m, o, W));
        m = __shfl_sync(0xffffffffu, m, 0, W);
        float c = v;
        for (int o = 1; o < W; o *= 2) {
            float t = __shfl_up_sync(0xffffffffu, c, o, W);
            if (lane % W >= o) c += t;
        }
        sum[row * 32 + lane] = s;
        mx[row * 32 + lane] = m;
        scan[row * 32 + lane] = c;
    }
}

/* Row softmax of n floats staged in dynamic shared memory; 128 threads; warp + block reductions. */
__device__ void softmax_body(const float *x, int n, float *y)
{
    GLM_DYN_SMEM(float, row);
    __shared__ float red[4];
    const float *xr = x + (size_t)blockIdx.x * n;
    float m = -INFINITY;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        row[i] = xr[i];
        m = fmaxf(m, row[i]);
    }
    for (int o = 16; o > 0; o /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = m;
    __syncthreads();
    m = fmaxf(fmaxf(red[0], red[1]), fmaxf(red[2], red[3]));
    __syncthreads();
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        row[i] = expf(row[i] - m);
        s += row[i];
    }
    for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = s;
    __syncthreads();
    s = red[0] + red[1] + red[2] + red[3];
    for (int i = threadIdx.x; i < n; i += blockDim.x) y[(size_t)blockIdx.x * n + i] = row[i] / s;
}

__global__ void softmax_rows(const float *x, int n, float *y) { softmax_body(x, n, y); }
/* Same body, a distinct kernel: launched without cudaFuncAttributeMaxDynamicSharedMemorySize. */
__global__ void softmax_rows_noattr(const float *x, int n, float *y) { softmax_body(x, n, y); }

/* Histogram (int atomics), total (float atomics), max (int atomicMax), across all blocks. */
__global__ void atomics(const int *ids, const float *w, int n, int *hist, float *total, int *maxid,
                        __nv_bfloat16 *bsum)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    atomicAdd(&hist[ids[i]], 1);
    atomicAdd(total, w[i]);
    atomicMax(maxid, ids[i]);
    atomicAdd(bsum, __float2bfloat16(1.0f));
}

__constant__ float c_offset[4];
__device__ int g_counter;

/* A kernel without arguments, counting its threads in a __device__ variable. */
__global__ void count_threads() { atomicAdd(&g_counter, 1); }

/* y[i] = x[i] + c_offset[i % 4], on a pitched 2-D layout: rows of w floats, pitch p floats */
__global__ void add_const(const float *x, int w, int h, int p, float *y)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x, r = blockIdx.y;
    if (c < w && r < h) y[r * p + c] = x[r * p + c] + c_offset[c % 4];
}

__global__ void scale(const float *x, float a, int n, float *y)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i];
}

/* ballot / any / all / match / reduce / __syncthreads_count, _and, _or on a block of 64 (two warps). */
__global__ void votes(const int *x, unsigned *out)
{
    int t = threadIdx.x, v = x[t];
    unsigned b = __ballot_sync(0xffffffffu, v > 0);
    int an = __any_sync(0xffffffffu, v > 5);
    int al = __all_sync(0xffffffffu, v >= 0);
    unsigned mt = __match_any_sync(0xffffffffu, v % 3);
    unsigned ra = __reduce_add_sync(0xffffffffu, (unsigned)v);
    int rm = __reduce_min_sync(t % 32 < 16 ? 0x0000ffffu : 0xffff0000u, v - 4);
    int cnt = __syncthreads_count(v > 2);
    int band = __syncthreads_and(v > -2), ball = __syncthreads_and(v >= -2);
    int bor = __syncthreads_or(v > 7), bnone = __syncthreads_or(v > 100);
    __syncwarp();
    if (t == 0) out[64 * 7] = (unsigned)(ball * 1000 + band * 100 + bor * 10 + bnone);
    out[t * 7 + 0] = b;
    out[t * 7 + 1] = (unsigned)an;
    out[t * 7 + 2] = (unsigned)al;
    out[t * 7 + 3] = mt;
    out[t * 7 + 4] = ra;
    out[t * 7 + 5] = (unsigned)rm;
    out[t * 7 + 6] = (unsigned)cnt;
}

/* Coordinates on a 2-D grid of 3-D blocks. */
__global__ void coords(int *out)
{
    int b = blockIdx.x + blockIdx.y * gridDim.x;
    int nt = blockDim.x * blockDim.y * blockDim.z;
    int t = threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y;
    out[b * nt + t] = (int)((blockIdx.y * 10 + blockIdx.x) * 100000 + threadIdx.z * 10000 + threadIdx.y * 100 + threadIdx.x);
}

/* bf16 through a shuffle: lane l receives lane 31 - l's value, bit for bit. */
__global__ void bf16_reverse(const __nv_bfloat16 *x, __nv_bfloat16 *y)
{
    int l = threadIdx.x % 32;
    y[threadIdx.x] = __shfl_sync(0xffffffffu, x[threadIdx.x], 31 - l);
}

/* ---- faulty kernels (Part 2) ------------------------------------------------------------------ */
enum { DIVERGENT_LINE = __LINE__ + 5 }; /* the first __syncthreads below */
__global__ void divergent_barrier(float *x)
{
    if (threadIdx.x < 16) {
        x[threadIdx.x] = 1.0f;
        __syncthreads();
    } else {
        __syncthreads();
    }
}

enum { WARP_DEADLOCK_LINE = __LINE__ + 5 };
__global__ void warp_deadlock(float *x)
{
    if (threadIdx.x % 32 >= 16) return; /* lanes 16..31 exit; the mask names them */
    static_assert(__LINE__ == WARP_DEADLOCK_LINE - 1, "keep WARP_DEADLOCK_LINE on the shuffle");
    x[threadIdx.x] = __shfl_xor_sync(0xffffffffu, x[threadIdx.x], 1);
}

__global__ void trivial(float *x) { x[threadIdx.x] = 0.0f; }

/* ---- Part 1 --------------------------------------------------------------------------------- */
static void test_block_sum(const char *order)
{
    const int B = 37, N = 1000;
    std::vector<float> x((size_t)B * N), out(B);
    unsigned s = 7;
    for (auto &v : x) v = frand(&s);
    float *dx, *dout;
    CUDA_OK(cudaMalloc(&dx, x.size() * 4));
    CUDA_OK(cudaMalloc(&dout, B * 4));
    CUDA_OK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    auto t0 = std::chrono::steady_clock::now();
    CUDA_OK(GLM_LAUNCH(block_sum, dim3(B), dim3(256), 0, (cudaStream_t)0, dx, N, dout));
    double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    CUDA_OK(cudaMemcpy(out.data(), dout, B * 4, cudaMemcpyDeviceToHost));
    double worst = 0;
    for (int b = 0; b < B; b++) {
        double ref = 0;
        for (int i = 0; i < N; i++) ref += x[(size_t)b * N + i];
        worst = fmax(worst, rel_err(out[b], ref));
    }
    CHECK(worst <= 1e-5, "block_sum max rel err %.3g", worst);
    printf("block_sum        order=%-7s 37 blocks x 256 threads, max rel err %.2e (%.0f ns per thread, 9 barriers)\n",
           order, worst, ns / (B * 256));
    cudaFree(dx);
    cudaFree(dout);
}

template <int W> static void test_subwarp(const char *order)
{
    const int B = 3, R = 8, rows = B * 8 * R;
    std::vector<float> x((size_t)rows * 32), sum(x.size(), NAN), mx(x.size(), NAN), scan(x.size(), NAN);
    unsigned s = 11 + W;
    for (auto &v : x) v = frand(&s);
    float *dx, *ds, *dm, *dc;
    size_t bytes = x.size() * 4;
    CUDA_OK(cudaMalloc(&dx, bytes));
    CUDA_OK(cudaMalloc(&ds, bytes));
    CUDA_OK(cudaMalloc(&dm, bytes));
    CUDA_OK(cudaMalloc(&dc, bytes));
    CUDA_OK(cudaMemcpy(dx, x.data(), bytes, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemset(ds, 0xff, bytes));
    CUDA_OK(cudaMemset(dm, 0xff, bytes));
    CUDA_OK(cudaMemset(dc, 0xff, bytes));
    CUDA_OK(GLM_LAUNCH(subwarp<W>, dim3(B), dim3(256), 0, (cudaStream_t)0, dx, ds, dm, dc, R));
    CUDA_OK(cudaMemcpy(sum.data(), ds, bytes, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(mx.data(), dm, bytes, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(scan.data(), dc, bytes, cudaMemcpyDeviceToHost));
    double worst = 0;
    int checked = 0, untouched_ok = 1;
    for (int row = 0; row < rows; row++) {
        int warp = row % (8 * R) / R, r = row % R;
        bool written = r <= warp;
        for (int l = 0; l < 32; l++) {
            size_t i = (size_t)row * 32 + l;
            if (!written) {
                untouched_ok &= std::isnan(sum[i]) && std::isnan(mx[i]) && std::isnan(scan[i]);
                continue;
            }
            int g0 = l / W * W;
            double rs = 0, rm = -INFINITY, rc = 0;
            for (int k = g0; k < g0 + W; k++) {
                rs += x[(size_t)row * 32 + k];
                rm = fmax(rm, (double)x[(size_t)row * 32 + k]);
                if (k <= l) rc += x[(size_t)row * 32 + k];
            }
            worst = fmax(worst, fmax(rel_err(sum[i], rs), fmax(rel_err(mx[i], rm), rel_err(scan[i], rc))));
            checked++;
        }
    }
    CHECK(worst <= 1e-5, "subwarp<%d> max rel err %.3g", W, worst);
    CHECK(untouched_ok, "subwarp<%d> wrote rows its warp does not own", W);
    printf("subwarp width=%-2d order=%-7s %d lanes checked (sum, max, scan), max rel err %.2e\n", W, order,
           checked, worst);
    cudaFree(dx);
    cudaFree(ds);
    cudaFree(dm);
    cudaFree(dc);
}

static void test_softmax(const char *order)
{
    const int B = 5, N = 16384; /* 64 KiB of dynamic shared memory: needs the attribute */
    std::vector<float> x((size_t)B * N), y(x.size());
    unsigned s = 3;
    for (auto &v : x) v = 4.0f * frand(&s);
    float *dx, *dy;
    CUDA_OK(cudaMalloc(&dx, x.size() * 4));
    CUDA_OK(cudaMalloc(&dy, x.size() * 4));
    CUDA_OK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    CUDA_OK(cudaFuncSetAttribute(softmax_rows, cudaFuncAttributeMaxDynamicSharedMemorySize, N * 4));
    CUDA_OK(GLM_LAUNCH(softmax_rows, dim3(B), dim3(128), N * 4, (cudaStream_t)0, dx, N, dy));
    CUDA_OK(cudaMemcpy(y.data(), dy, y.size() * 4, cudaMemcpyDeviceToHost));
    double worst = 0;
    for (int b = 0; b < B; b++) {
        double m = -INFINITY, z = 0;
        for (int i = 0; i < N; i++) m = fmax(m, (double)x[(size_t)b * N + i]);
        for (int i = 0; i < N; i++) z += exp(x[(size_t)b * N + i] - m);
        for (int i = 0; i < N; i++) {
            double ref = exp(x[(size_t)b * N + i] - m) / z;
            worst = fmax(worst, fabs(y[(size_t)b * N + i] - ref) / ref);
        }
    }
    CHECK(worst <= 1e-4, "softmax max rel err %.3g", worst);
    printf("softmax          order=%-7s 5 rows x 16384, 64 KiB dynamic smem, max rel err %.2e\n", order, worst);
    cudaFree(dx);
    cudaFree(dy);
}

static void test_atomics(const char *order)
{
    const int n = 5000, K = 17;
    std::vector<int> ids(n);
    std::vector<float> w(n);
    unsigned s = 5;
    for (int i = 0; i < n; i++) {
        ids[i] = (int)((s = s * 1664525u + 1013904223u) >> 16) % K;
        w[i] = frand(&s);
    }
    int *dids, *dhist, *dmax;
    float *dw, *dtot;
    __nv_bfloat16 *dbs;
    CUDA_OK(cudaMalloc(&dids, n * 4));
    CUDA_OK(cudaMalloc(&dw, n * 4));
    CUDA_OK(cudaMalloc(&dhist, K * 4));
    CUDA_OK(cudaMalloc(&dtot, 4));
    CUDA_OK(cudaMalloc(&dmax, 4));
    CUDA_OK(cudaMalloc(&dbs, 2));
    CUDA_OK(cudaMemcpy(dids, ids.data(), n * 4, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dw, w.data(), n * 4, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemset(dhist, 0, K * 4));
    CUDA_OK(cudaMemset(dtot, 0, 4));
    CUDA_OK(cudaMemset(dmax, 0, 4));
    CUDA_OK(cudaMemset(dbs, 0, 2));
    CUDA_OK(GLM_LAUNCH(atomics, dim3((n + 127) / 128), dim3(128), 0, (cudaStream_t)0, dids, dw, n, dhist,
                       dtot, dmax, dbs));
    std::vector<int> hist(K);
    float tot;
    int mx;
    __nv_bfloat16 bs;
    CUDA_OK(cudaMemcpy(hist.data(), dhist, K * 4, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(&tot, dtot, 4, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(&mx, dmax, 4, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(&bs, dbs, 2, cudaMemcpyDeviceToHost));
    std::vector<int> rh(K, 0);
    double rt = 0, ra = 0;
    int rmx = 0;
    for (int i = 0; i < n; i++) {
        rh[ids[i]]++;
        rt += w[i];
        ra += fabs(w[i]);
        rmx = rmx > ids[i] ? rmx : ids[i];
    }
    int hist_ok = hist == rh;
    double terr = fabs(tot - rt) / ra; /* float atomics sum in any order: error relative to sum|w| */
    CHECK(hist_ok, "histogram differs");
    CHECK(terr <= 1e-5, "float atomicAdd total %g vs %g", tot, rt);
    CHECK(mx == rmx, "atomicMax %d vs %d", mx, rmx);
    /* bf16 counts exactly to 256, then steps of 2, ...: 5000 ones round to a value near 256 */
    float bsf = __bfloat162float(bs);
    CHECK(bsf >= 256.0f && bsf <= 5000.0f, "bf16 atomicAdd %g", bsf);
    printf("atomics          order=%-7s %d items over %d blocks: histogram exact, f32 sum err %.2e, max %d\n",
           order, n, (n + 127) / 128, terr, mx);
    cudaFree(dids);
    cudaFree(dw);
    cudaFree(dhist);
    cudaFree(dtot);
    cudaFree(dmax);
    cudaFree(dbs);
}

static void test_streams(const char *order)
{
    const int n = 3000;
    std::vector<float> x(n), y(n);
    unsigned s = 9;
    for (auto &v : x) v = frand(&s);
    cudaStream_t a, b;
    cudaEvent_t ev;
    CUDA_OK(cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking));
    CUDA_OK(cudaStreamCreate(&b));
    CUDA_OK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    float *dx, *dt, *dy;
    CUDA_OK(cudaMalloc(&dx, n * 4));
    CUDA_OK(cudaMalloc(&dt, n * 4));
    CUDA_OK(cudaMalloc(&dy, n * 4));
    CUDA_OK(cudaMemcpyAsync(dx, x.data(), n * 4, cudaMemcpyHostToDevice, a));
    CUDA_OK(GLM_LAUNCH(scale, dim3((n + 255) / 256), dim3(256), 0, a, dx, 2.0f, n, dt));
    CUDA_OK(cudaEventRecord(ev, a));
    CUDA_OK(cudaStreamWaitEvent(b, ev, 0));
    CUDA_OK(GLM_LAUNCH(scale, dim3((n + 255) / 256), dim3(256), 0, b, dt, -0.5f, n, dy));
    CUDA_OK(cudaMemcpyAsync(y.data(), dy, n * 4, cudaMemcpyDeviceToHost, b));
    CUDA_OK(cudaStreamSynchronize(b));
    double worst = 0;
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs(y[i] + (double)x[i]));
    CHECK(worst == 0, "two streams: max err %g", worst);
    printf("streams          order=%-7s stream a: x*2, event, stream b waits: *-0.5, max err %.1e\n", order, worst);
    cudaFree(dx);
    cudaFree(dt);
    cudaFree(dy);
    cudaEventDestroy(ev);
    cudaStreamDestroy(a);
    cudaStreamDestroy(b);
}

/* __constant__ through cudaMemcpyToSymbol, pitched copies, events with times, graphs refused. */
static void test_api(const char *order)
{
    const int w = 37, h = 5, p = 40;
    float off[4] = {1.0f, -2.0f, 0.5f, 8.0f};
    std::vector<float> x((size_t)w * h), y(x.size(), 0.0f);
    unsigned s = 21;
    for (auto &v : x) v = frand(&s);
    float *dx, *dy;
    CUDA_OK(cudaMalloc(&dx, (size_t)p * h * 4));
    CUDA_OK(cudaMalloc(&dy, (size_t)p * h * 4));
    CUDA_OK(cudaMemcpyToSymbol(c_offset, off, sizeof off));
    CUDA_OK(cudaMemcpy2D(dx, p * 4, x.data(), w * 4, w * 4, h, cudaMemcpyHostToDevice));
    cudaEvent_t e0, e1;
    CUDA_OK(cudaEventCreate(&e0));
    CUDA_OK(cudaEventCreate(&e1));
    CUDA_OK(cudaEventRecord(e0, 0));
    CUDA_OK(GLM_LAUNCH(add_const, dim3((w + 31) / 32, h), dim3(32), 0, (cudaStream_t)0, dx, w, h, p, dy));
    CUDA_OK(cudaEventRecord(e1, 0));
    CUDA_OK(cudaEventSynchronize(e1));
    float ms = -1.0f;
    CUDA_OK(cudaEventElapsedTime(&ms, e0, e1));
    CUDA_OK(cudaMemcpy2D(y.data(), w * 4, dy, p * 4, w * 4, h, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) bad += y[(size_t)r * w + c] != x[(size_t)r * w + c] + off[c % 4];
    CHECK(bad == 0 && ms >= 0.0f, "%d wrong, %g ms", bad, ms);
    int zero = 0, counted = -1;
    CUDA_OK(cudaMemcpyToSymbol(g_counter, &zero, sizeof zero));
    CUDA_OK(GLM_LAUNCH(count_threads, dim3(7), dim3(96), 0, (cudaStream_t)0));
    CUDA_OK(cudaMemcpyFromSymbol(&counted, g_counter, sizeof counted));
    CHECK(counted == 7 * 96, "count_threads counted %d", counted);
    float back[4];
    CUDA_OK(cudaMemcpyFromSymbol(back, c_offset, sizeof back));
    CHECK(!memcmp(back, off, sizeof off), "cudaMemcpyFromSymbol");
#if GLM_CUDA_ON_CPU
    cudaStream_t st;
    CUDA_OK(cudaStreamCreate(&st));
    CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal) == cudaErrorNotSupported, "graph capture");
    CHECK(cudaGetLastError() == cudaErrorNotSupported, "graph capture error not recorded");
    CUDA_OK(cudaStreamDestroy(st));
#endif
    printf("api              order=%-7s __constant__ + 2-D pitched copies: %d wrong; event time %.3f ms\n", order,
           bad, ms);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaFree(dx);
    cudaFree(dy);
}

static void test_votes(const char *order)
{
    int x[64];
    unsigned out[64 * 7 + 1];
    for (int t = 0; t < 64; t++) x[t] = (t * 7 + 3) % 11 - 2;
    int *dx;
    unsigned *dout;
    CUDA_OK(cudaMalloc(&dx, sizeof x));
    CUDA_OK(cudaMalloc(&dout, sizeof out));
    CUDA_OK(cudaMemcpy(dx, x, sizeof x, cudaMemcpyHostToDevice));
    CUDA_OK(GLM_LAUNCH(votes, dim3(1), dim3(64), 0, (cudaStream_t)0, dx, dout));
    CUDA_OK(cudaMemcpy(out, dout, sizeof out, cudaMemcpyDeviceToHost));
    int bad = 0, cnt = 0;
    for (int t = 0; t < 64; t++) cnt += x[t] > 2;
    for (int t = 0; t < 64; t++) {
        int w = t / 32 * 32, l = t % 32;
        unsigned b = 0, mt = 0, ra = 0;
        int an = 0, al = 1, rm = 1 << 30;
        for (int k = 0; k < 32; k++) {
            int v = x[w + k];
            b |= (unsigned)(v > 0) << k;
            an |= v > 5;
            al &= v >= 0;
            if ((v % 3) == (x[t] % 3)) mt |= 1u << k;
            ra += (unsigned)v;
            if ((k < 16) == (l < 16)) rm = rm < v - 4 ? rm : v - 4;
        }
        unsigned want[7] = {b, (unsigned)an, (unsigned)al, mt, ra, (unsigned)rm, (unsigned)cnt};
        for (int j = 0; j < 7; j++) bad += out[t * 7 + j] != want[j];
    }
    int band = 1, bor = 0;
    for (int t = 0; t < 64; t++) {
        band &= x[t] > -2;
        bor |= x[t] > 7;
    }
    bad += out[64 * 7] != (unsigned)(1000 + band * 100 + bor * 10);
    CHECK(bad == 0, "%d vote results differ", bad);
    printf("votes            order=%-7s ballot/any/all/match_any/reduce_add/reduce_min/syncthreads_count/and/or: %d wrong\n",
           order, bad);
    cudaFree(dx);
    cudaFree(dout);
}

static void test_coords_bf16(const char *order)
{
    const int n = 6 * 64;
    std::vector<int> out(n);
    int *d;
    CUDA_OK(cudaMalloc(&d, n * 4));
    CUDA_OK(GLM_LAUNCH(coords, dim3(3, 2), dim3(8, 4, 2), 0, (cudaStream_t)0, d));
    CUDA_OK(cudaMemcpy(out.data(), d, n * 4, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int by = 0; by < 2; by++)
        for (int bx = 0; bx < 3; bx++)
            for (int tz = 0; tz < 2; tz++)
                for (int ty = 0; ty < 4; ty++)
                    for (int tx = 0; tx < 8; tx++)
                        bad += out[(by * 3 + bx) * 64 + tz * 32 + ty * 8 + tx] !=
                               (by * 10 + bx) * 100000 + tz * 10000 + ty * 100 + tx;
    cudaFree(d);
    std::vector<__nv_bfloat16> x(64), y(64);
    for (int i = 0; i < 64; i++) x[i] = __float2bfloat16(0.37f * (float)i - 5.0f);
    __nv_bfloat16 *dx, *dy;
    CUDA_OK(cudaMalloc(&dx, 128));
    CUDA_OK(cudaMalloc(&dy, 128));
    CUDA_OK(cudaMemcpy(dx, x.data(), 128, cudaMemcpyHostToDevice));
    CUDA_OK(GLM_LAUNCH(bf16_reverse, dim3(1), dim3(64), 0, (cudaStream_t)0, dx, dy));
    CUDA_OK(cudaMemcpy(y.data(), dy, 128, cudaMemcpyDeviceToHost));
    int badb = 0;
    for (int i = 0; i < 64; i++) badb += memcmp(&y[i], &x[i / 32 * 32 + 31 - i % 32], 2) != 0;
    CHECK(bad == 0 && badb == 0, "%d coordinates, %d bf16 shuffles wrong", bad, badb);
    printf("coords/bf16      order=%-7s grid 3x2 of 8x4x2 blocks: %d wrong; bf16 __shfl_sync: %d wrong\n", order, bad,
           badb);
    cudaFree(dx);
    cudaFree(dy);
}

/* Launch checks, the same on a GPU: the driver's error codes. */
static void test_launch_checks()
{
    float *d;
    CUDA_OK(cudaMalloc(&d, 4096 * 4));
    cudaError_t e = GLM_LAUNCH(trivial, dim3(1), dim3(2048), 0, (cudaStream_t)0, d);
    CHECK(e == cudaErrorInvalidConfiguration, "2048 threads: %s", cudaGetErrorString(e));
    CHECK(cudaGetLastError() == cudaSuccess, "the launch error was not cleared");
    printf("2048 threads per block: %s\n", cudaGetErrorName(e));
    e = GLM_LAUNCH(trivial, dim3(1), dim3(32, 32, 2), 0, (cudaStream_t)0, d);
    CHECK(e == cudaErrorInvalidConfiguration, "32x32x2 threads: %s", cudaGetErrorString(e));
    e = GLM_LAUNCH(softmax_rows_noattr, dim3(1), dim3(128), 49 * 1024, (cudaStream_t)0, d, 8, d);
    CHECK(e == cudaErrorInvalidValue, "49 KiB dynamic smem without the attribute: %s", cudaGetErrorString(e));
    printf("49 KiB dynamic shared memory without the attribute: %s\n", cudaGetErrorName(e));
    e = GLM_LAUNCH(softmax_rows_noattr, dim3(1), dim3(128), 48 * 1024, (cudaStream_t)0, d, 8, d);
    CHECK(e == cudaSuccess, "48 KiB dynamic smem: %s", cudaGetErrorString(e));
    e = cudaFuncSetAttribute(softmax_rows_noattr, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024);
    CHECK(e == cudaErrorInvalidValue, "300 KiB attribute: %s", cudaGetErrorString(e));
    (void)cudaGetLastError();
    cudaFree(d);
}

#if GLM_CUDA_ON_CPU
/* ---- Part 2 --------------------------------------------------------------------------------- */
/* Runs fn in a child; returns its stderr, sets *aborted if it died by a signal or exited non-zero. */
static std::string in_child(void (*fn)(), int *aborted)
{
    int p[2];
    if (pipe(p) != 0) abort();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 2);
        fn();
        _exit(0);
    }
    close(p[1]);
    std::string out;
    char buf[4096];
    ssize_t k;
    while ((k = read(p[0], buf, sizeof buf)) > 0) out.append(buf, (size_t)k);
    close(p[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    *aborted = WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) != 0);
    return out;
}

static void run_divergent()
{
    float *d;
    cudaMalloc(&d, 64 * 4);
    (void)GLM_LAUNCH(divergent_barrier, dim3(1), dim3(64), 0, (cudaStream_t)0, d);
}

static void run_warp_deadlock()
{
    float *d;
    cudaMalloc(&d, 64 * 4);
    cudaMemset(d, 0, 64 * 4);
    (void)GLM_LAUNCH(warp_deadlock, dim3(1), dim3(64), 0, (cudaStream_t)0, d);
}

static void run_env_order()
{
    setenv("GLM_CUDA_CPU_ORDER", "reverse", 1);
    glm_cpu::reload_env();
    _exit(glm_cpu::get_order() == glm_cpu::ORDER_REVERSE ? 0 : 3);
}

__global__ void overrun(float *x, int n) { x[threadIdx.x] = (float)n; }

static void run_overrun()
{
    float *d;
    cudaMalloc(&d, 31 * 4); /* 32 threads write 32 floats */
    (void)GLM_LAUNCH(overrun, dim3(1), dim3(32), 0, (cudaStream_t)0, d, 31);
}

static void test_catches()
{
    int env_bad = 0;
    (void)in_child(run_env_order, &env_bad);
    CHECK(!env_bad, "GLM_CUDA_CPU_ORDER=reverse was not read");
#if defined(__SANITIZE_ADDRESS__)
    int ov = 0;
    std::string ro = in_child(run_overrun, &ov);
    CHECK(ov && ro.find("heap-buffer-overflow") != std::string::npos, "overrun not seen by ASan: %s", ro.c_str());
    printf("ASan: a kernel writing one float past a cudaMalloc buffer: %s\n",
           ro.find("heap-buffer-overflow") != std::string::npos ? "heap-buffer-overflow reported" : "NOT reported");
#else
    (void)run_overrun;
#endif

    /* a missing __syncthreads: a wrong (or NaN) result under at least one resume order */
    const int B = 4, N = 512;
    std::vector<float> x((size_t)B * N, 1.0f), out(B);
    float *dx, *dout;
    CUDA_OK(cudaMalloc(&dx, x.size() * 4));
    CUDA_OK(cudaMalloc(&dout, B * 4));
    CUDA_OK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    const glm_cpu::order orders[3] = {glm_cpu::ORDER_FORWARD, glm_cpu::ORDER_REVERSE, glm_cpu::ORDER_RANDOM};
    const char *names[3] = {"forward", "reverse", "random"};
    int caught = 0;
    for (int o = 0; o < 3; o++) {
        glm_cpu::set_order(orders[o], 1);
        CUDA_OK(GLM_LAUNCH(block_sum_racy, dim3(B), dim3(256), 256 * 4, (cudaStream_t)0, dx, N, dout));
        CUDA_OK(cudaMemcpy(out.data(), dout, B * 4, cudaMemcpyDeviceToHost));
        int wrong = 0;
        for (int b = 0; b < B; b++) wrong += !(out[b] == (float)N);
        printf("missing __syncthreads, order=%-7s: %d of %d block sums wrong (block 0: %g, want %d)\n", names[o],
               wrong, B, out[0], N);
        caught += wrong > 0;
    }
    glm_cpu::set_order(glm_cpu::ORDER_FORWARD, 1);
    CHECK(caught >= 1, "a missing __syncthreads went unnoticed under every order");
    cudaFree(dx);
    cudaFree(dout);

    int ab = 0;
    std::string r = in_child(run_divergent, &ab);
    std::string site = "at __syncthreads " + std::string(__FILE__) + ":" + std::to_string(DIVERGENT_LINE) + "\n";
    std::string site2 = "at __syncthreads " + std::string(__FILE__) + ":" + std::to_string(DIVERGENT_LINE + 2) + "\n";
    CHECK(ab && r.find("divergent barrier") != std::string::npos && r.find("lanes 0-15 threads (0,0,0)..: waiting " + site) != std::string::npos &&
              r.find("lanes 16-31 threads (16,0,0)..: waiting " + site2) != std::string::npos,
          "divergent barrier not reported: %s", r.c_str());
    printf("divergent barrier: child aborted=%d, report:\n%s", ab, r.c_str());

    r = in_child(run_warp_deadlock, &ab);
    CHECK(ab && r.find("deadlock in a warp collective") != std::string::npos &&
              r.find("lanes 16-31 threads (16,0,0)..: exited") != std::string::npos &&
              r.find("lanes 0-15 threads (0,0,0)..: waiting at __shfl_xor_sync(mask 0xffffffff) " + std::string(__FILE__) + ":" +
                     std::to_string(WARP_DEADLOCK_LINE)) != std::string::npos && r.find("warp 1:") != std::string::npos,
          "warp deadlock not reported: %s", r.c_str());
    printf("warp deadlock: child aborted=%d, report:\n%s", ab, r.c_str());

}
#endif


int main()
{
#if GLM_CUDA_ON_CPU
    const glm_cpu::order orders[3] = {glm_cpu::ORDER_FORWARD, glm_cpu::ORDER_REVERSE, glm_cpu::ORDER_RANDOM};
    const char *names[3] = {"forward", "reverse", "random"};
    for (int o = 0; o < 3; o++) {
        glm_cpu::set_order(orders[o], 12345u + (unsigned)o);
#else
    const char *names[1] = {"gpu"};
    for (int o = 0; o < 1; o++) {
#endif
        test_block_sum(names[o]);
        test_subwarp<8>(names[o]);
        test_subwarp<16>(names[o]);
        test_subwarp<32>(names[o]);
        test_softmax(names[o]);
        test_atomics(names[o]);
        test_streams(names[o]);
        test_votes(names[o]);
        test_coords_bf16(names[o]);
        test_api(names[o]);
    }
    test_launch_checks();
#if GLM_CUDA_ON_CPU
    test_catches();
#endif
    printf("%s: %d failure(s)\n", g_fail ? "FAIL" : "ok", g_fail);
    return g_fail ? 1 : 0;
}
