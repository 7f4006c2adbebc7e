/*
 * sample.cu - glm_sampler_sample on the device (sample.h), one block per row.
 *
 * A block walks its row of V logits in a few passes, as the CPU sampler does
 * (engine/backend/sampler.c), with the same float images of the logits:
 *   1. raw pass: non-finite flag, raw maximum and +inf count; with logprobs the
 *      log-sum-exp (exp in float, the sum in double as the CPU does) and the
 *      top logprobs: the n-th largest raw key by radix selection, the keys above
 *      it, then the ties at it in id order (a block-wide prefix count);
 *   2. edits: one thread per edited id runs the id's chain (the sampler's order)
 *      on the row in place, keeping the original bits to put back at the end;
 *   3. greedy: the largest (key, -id) pair; otherwise temperature, min_p as a key
 *      floor, top_k as the k-th largest key (radix selection on counts: 11 + 11 +
 *      10 key bits, histograms in shared memory), top_p as the key at which the
 *      descending mass reaches top_p (the same selection on weights, over the
 *      tokens heavy enough to matter, as the CPU does), all keeping ties;
 *   4. the draw: the inverse CDF in id order. Each thread owns a contiguous span
 *      of ids; a block-wide exclusive scan of the spans' masses (double) gives
 *      every span its starting mass, and the span where u x mass is crossed
 *      walks to the token.
 * Nothing is sorted and nothing but the ~180-byte result leaves the block.
 *
 * Keys are order-preserving 32-bit images of floats (sampler.c's float_key), so
 * the thresholds are exact and equal to the CPU's. What can differ from the CPU
 * is the rounding of double sums (another summation order), so a sampled id can
 * differ only when the draw falls within ~1e-15 of a CDF boundary, and a top_p
 * cut only when the cumulative mass is that close to top_p x mass. exp follows
 * the CPU's polynomial with explicit round-to-nearest operations (no fused
 * multiply-add), so the weights are the CPU's bit for bit. The weighted top_p
 * histogram adds doubles atomically, so its last bits (never in practice the
 * cut) can vary between runs; everything else is deterministic.
 */
#include "cuda/glm_cuda.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/sample.h"

extern "C" {
#include "core/util.h"
}

#define KEY_NEG_INF 0x007fffffu /* float_key(-inf) */
#define KEY_POS_INF 0xff800000u /* float_key(+inf) */
#define BITS_NEG_INF 0xff800000u
#define BITS_POS_INF 0x7f800000u
#define BUCKETS 2048

/* ---- float bits (sampler.c's) -------------------------------------------------------- */

__host__ __device__ static inline uint32_t f2u(float f)
{
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
#endif
}

__host__ __device__ static inline float u2f(uint32_t u)
{
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

/* NaN reads as -inf */
__device__ static inline float sanitize(float v)
{
    uint32_t u = f2u(v);
    return (u & 0x7fffffffu) > BITS_POS_INF ? u2f(BITS_NEG_INF) : v;
}

__device__ static inline uint32_t float_key(float f)
{
    uint32_t u = f2u(f);
    u = u == 0x80000000u ? 0u : u;
    return u ^ ((uint32_t)((int32_t)u >> 31) | 0x80000000u);
}

__device__ static inline float key_float(uint32_t k)
{
    return u2f((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

/* Round-to-nearest products and sums: nvcc would fuse a * b + c, the CPU does not. */
#if defined(__CUDA_ARCH__)
#define MUL_RN(a, b) __fmul_rn((a), (b))
#define ADD_RN(a, b) __fadd_rn((a), (b))
#define SUB_RN(a, b) __fsub_rn((a), (b))
#else
#define MUL_RN(a, b) ((a) * (b))
#define ADD_RN(a, b) ((a) + (b))
#define SUB_RN(a, b) ((a) - (b))
#endif

/* sampler.c's exp_nonpos: exp(x) for x <= 0, 0 below -87.3; the same operations. */
__device__ static inline float exp_nonpos(float x)
{
    uint32_t under = (f2u(x) & 0x7fffffffu) > 0x42ae999au ? 0xffffffffu : 0u;
    x = u2f(f2u(x) & ~under);
    float t = ADD_RN(MUL_RN(x, 1.44269504088896341f), 12582912.0f);
    float n = SUB_RN(t, 12582912.0f);
    int32_t ni = (int32_t)(f2u(t) - 0x4b400000u);
    float r = SUB_RN(x, MUL_RN(n, 0.693359375f));
    r = SUB_RN(r, MUL_RN(n, -2.12194440e-4f));
    float r2 = MUL_RN(r, r);
    float y = 1.9875691500e-4f;
    y = ADD_RN(MUL_RN(y, r), 1.3981999507e-3f);
    y = ADD_RN(MUL_RN(y, r), 8.3334519073e-3f);
    y = ADD_RN(MUL_RN(y, r), 4.1665795894e-2f);
    y = ADD_RN(MUL_RN(y, r), 1.6666665459e-1f);
    y = ADD_RN(MUL_RN(y, r), 5.0000001201e-1f);
    y = ADD_RN(ADD_RN(MUL_RN(y, r2), r), 1.0f);
    y = MUL_RN(y, u2f((uint32_t)(ni + 127) << 23));
    return u2f(f2u(y) & ~under);
}

/* ---- block primitives (blockDim.x a power of two, 256 .. 1024) ------------------------ */

/* The block's shared memory, declared once in the kernel. */
typedef struct {
    uint32_t *cnt;            /* [BUCKETS] radix histogram: counts */
    double *w;                /* [BUCKETS] radix histogram: weights */
    double *redd;             /* [32] per-warp doubles */
    unsigned long long *redu; /* [32] per-warp words */
    int *si;                  /* [8] small integers */
    double *sd;               /* [4] small doubles */
    uint32_t *tkey;           /* [GLM_SAMPLING_MAX_TOP_LOGPROBS] top logprobs: keys */
    int32_t *tid;             /* [GLM_SAMPLING_MAX_TOP_LOGPROBS] top logprobs: ids */
} blk;

struct op_add {
    template <class T> __device__ T operator()(T a, T b) const { return a + b; }
};
struct op_max {
    template <class T> __device__ T operator()(T a, T b) const { return a > b ? a : b; }
};

/* op over the block's v; every thread gets it (the butterfly gives every lane the same value). */
template <class T, class Op> __device__ T block_reduce(T v, Op op, T *red)
{
    for (int o = 16; o > 0; o >>= 1)
        v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    int warp = threadIdx.x / 32, nw = blockDim.x / 32;
    if (threadIdx.x % 32 == 0)
        red[warp] = v;
    __syncthreads();
    T r = red[0];
    for (int i = 1; i < nw; i++)
        r = op(r, red[i]);
    __syncthreads(); /* red is reused by the next call */
    return r;
}

/* The sum of v over the threads before this one; *total: over all. */
__device__ static double block_scan(double v, double *red, double *total)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    double inc = v;
    for (int o = 1; o < 32; o <<= 1) {
        double up = __shfl_up_sync(0xffffffffu, inc, o);
        if (lane >= o)
            inc += up;
    }
    double exc = __shfl_up_sync(0xffffffffu, inc, 1);
    if (lane == 0)
        exc = 0.0;
    if (lane == 31)
        red[warp] = inc;
    __syncthreads();
    double base = 0.0, all = 0.0;
    for (int i = 0; i < nw; i++) {
        if (i == warp)
            base = all;
        all += red[i];
    }
    __syncthreads();
    *total = all;
    return base + exc;
}

/* This thread's contiguous span of ids [*lo, *hi) (for walks in id order). */
__device__ static inline void span(int V, int *lo, int *hi)
{
    int per = (V + (int)blockDim.x - 1) / (int)blockDim.x;
    long long a = (long long)threadIdx.x * per, b = a + per;
    *lo = (int)(a < V ? a : V);
    *hi = (int)(b < V ? b : V);
}

/*
 * sampler.c's select_key: among the tokens f admits (f(i, &key, &w) true), walks the
 * distinct keys from the largest down and returns the first key K at which the
 * cumulative weight (counts unless WEIGHTED) of keys >= K reaches target; the smallest
 * admitted key when the total falls short. Three radix levels; at each, the threads own
 * the buckets from the top in order, a block scan gives each its mass from the top, and
 * the highest bucket where the target is reached wins (with weights, rounding could let
 * two threads claim; the CPU would take the higher one too).
 */
template <bool WEIGHTED, class F> __device__ uint32_t select_key(const F &f, int V, double target, const blk &s)
{
    const int shift[3] = {21, 10, 0};
    const uint32_t himask[3] = {0u, 0xffe00000u, 0xfffffc00u};
    int t = threadIdx.x, nt = blockDim.x;
    uint32_t result = 0;
    for (int level = 0; level < 3; level++) {
        int nb = level == 2 ? 1024 : 2048, sh = shift[level];
        uint32_t mask = (uint32_t)nb - 1;
        for (int b = t; b < nb; b += nt) {
            s.cnt[b] = 0;
            if (WEIGHTED)
                s.w[b] = 0.0;
        }
        if (t == 0) {
            s.si[0] = -1; /* chosen bucket */
            s.si[1] = nb; /* lowest non-empty bucket */
        }
        __syncthreads();
        for (int i = t; i < V; i += nt) {
            uint32_t k;
            float w;
            if (!f(i, &k, &w) || ((k ^ result) & himask[level]))
                continue;
            uint32_t b = (k >> sh) & mask;
            atomicAdd(&s.cnt[b], 1u);
            if (WEIGHTED)
                atomicAdd(&s.w[b], (double)w);
        }
        __syncthreads();
        int per = nb / nt, top = nb - 1 - t * per;
        double local = 0.0;
        for (int j = 0; j < per; j++)
            local += WEIGHTED ? s.w[top - j] : (double)s.cnt[top - j];
        double total, acc = block_scan(local, s.redd, &total), before = 0.0;
        int claim = -1, low = nb;
        for (int j = 0; j < per; j++) {
            int b = top - j;
            if (!s.cnt[b])
                continue;
            low = b;
            double h = WEIGHTED ? s.w[b] : (double)s.cnt[b];
            if (claim < 0 && acc + h >= target) {
                claim = b;
                before = acc;
            }
            acc += h;
        }
        if (claim >= 0)
            atomicMax(&s.si[0], claim);
        if (low < nb)
            atomicMin(&s.si[1], low);
        __syncthreads();
        int chosen = s.si[0];
        if (chosen >= 0 && claim == chosen)
            s.sd[0] = before;
        __syncthreads();
        if (chosen < 0) {
            chosen = s.si[1]; /* short of target: everything down to the smallest key */
            target = INFINITY;
        } else {
            target -= s.sd[0];
        }
        result |= (uint32_t)chosen << sh;
        __syncthreads(); /* si, sd and the histograms are rewritten by the next level */
    }
    return result;
}

/* ---- the row's views ------------------------------------------------------------------ */

/* raw keys of the sanitised logits */
struct raw_keys {
    const float *x;
    __device__ bool operator()(int i, uint32_t *k, float *w) const
    {
        *k = float_key(sanitize(x[i]));
        *w = 1.0f;
        return true;
    }
};

/* keys of the processed logits over the temperature; keys below kf (min_p) as -inf */
struct proc_keys {
    const float *x;
    float t;
    uint32_t kf;
    __device__ uint32_t key(int i, float *z) const
    {
        *z = sanitize(x[i]) / t;
        uint32_t k = float_key(*z);
        return k < kf ? KEY_NEG_INF : k;
    }
    __device__ bool operator()(int i, uint32_t *k, float *w) const
    {
        float z;
        *k = key(i, &z);
        *w = 1.0f;
        return true;
    }
};

/* The candidates after min_p and top_k (keys >= kk, not -inf) with their weights
 * exp(z - ymax); after top_p also keys >= kp. In +inf mode the +inf tokens, weight 1. */
struct weights {
    proc_keys pk;
    uint32_t kk, kp;
    float ymax, tau;
    int pinf;
    __device__ float operator()(int i, uint32_t *kout) const
    {
        float z;
        uint32_t k = pk.key(i, &z);
        *kout = k;
        if (pinf)
            return k == KEY_POS_INF ? 1.0f : 0.0f;
        if (k == KEY_NEG_INF || k < kk || k < kp)
            return 0.0f;
        return exp_nonpos(z - ymax);
    }
    __device__ float operator()(int i) const
    {
        uint32_t k;
        return (*this)(i, &k);
    }
    /* top_p's selection runs on the candidates of weight >= tau (sampler.c's prepare) */
    __device__ bool operator()(int i, uint32_t *k, float *w) const
    {
        *w = (*this)(i, k);
        return *k != KEY_NEG_INF && *k >= kk && *w >= tau;
    }
};

/* ---- the kernel ------------------------------------------------------------------------- */

__device__ static float raw_logprob(double rmax, double lse, int npinf, float v)
{
    v = sanitize(v);
    if (npinf)
        return v == INFINITY ? (float)-log((double)npinf) : -INFINITY;
    if (rmax == -INFINITY || v == -INFINITY)
        return -INFINITY;
    return (float)(((double)v - rmax) - lse);
}

/* The n largest raw keys into s.tkey/s.tid [n], largest first, lower id first on ties. */
__device__ static void top_raw(const float *x, int V, int n, const blk &s)
{
    int t = threadIdx.x, nt = blockDim.x;
    raw_keys rk = {x};
    uint32_t K = select_key<false>(rk, V, (double)n, s);
    if (t == 0)
        s.si[2] = 0;
    __syncthreads();
    for (int i = t; i < V; i += nt) {
        uint32_t k = float_key(sanitize(x[i]));
        if (k > K) {
            int slot = atomicAdd(&s.si[2], 1);
            if (slot < GLM_SAMPLING_MAX_TOP_LOGPROBS) {
                s.tkey[slot] = k;
                s.tid[slot] = i;
            }
        }
    }
    __syncthreads();
    int gt = s.si[2], lo, hi;
    span(V, &lo, &hi);
    double ties = 0.0, total;
    for (int i = lo; i < hi; i++)
        ties += float_key(sanitize(x[i])) == K;
    int rank = (int)block_scan(ties, s.redd, &total);
    for (int i = lo; i < hi && gt + rank < n; i++)
        if (float_key(sanitize(x[i])) == K) {
            s.tkey[gt + rank] = K;
            s.tid[gt + rank] = i;
            rank++;
        }
    __syncthreads();
    if (t == 0)
        for (int a = 1; a < n; a++) { /* insertion: key descending, id ascending */
            uint32_t k = s.tkey[a];
            int32_t id = s.tid[a];
            int b = a;
            while (b > 0 && (s.tkey[b - 1] < k || (s.tkey[b - 1] == k && s.tid[b - 1] > id))) {
                s.tkey[b] = s.tkey[b - 1];
                s.tid[b] = s.tid[b - 1];
                b--;
            }
            s.tkey[b] = k;
            s.tid[b] = id;
        }
    __syncthreads();
}

/* The inverse CDF in id order: the first token whose cumulative weight exceeds u x mass;
 * when rounding leaves the walk short, the last token of positive weight; -1 if none. */
__device__ static int draw(const weights &wf, int V, double u, const blk &s)
{
    int t = threadIdx.x, lo, hi;
    span(V, &lo, &hi);
    double local = 0.0, total;
    for (int i = lo; i < hi; i++)
        local += (double)wf(i);
    double acc = block_scan(local, s.redd, &total), target = u * total;
    if (t == 0) {
        s.si[3] = INT_MAX;
        s.si[4] = -1;
    }
    __syncthreads();
    int claim = -1, last = -1;
    for (int i = lo; i < hi; i++) {
        float w = wf(i);
        if (f2u(w) == 0)
            continue;
        last = i;
        acc += (double)w;
        if (acc > target) {
            claim = i;
            break;
        }
    }
    if (claim >= 0)
        atomicMin(&s.si[3], claim);
    if (last >= 0)
        atomicMax(&s.si[4], last);
    __syncthreads();
    int tok = s.si[3] != INT_MAX ? s.si[3] : s.si[4];
    __syncthreads();
    return tok;
}

/* Steps 3-4 on the edited row: the token, or -1 when every logit is -inf. */
__device__ static int choose(const glm_cu_sample_desc &d, const float *x, int V, const blk &s)
{
    int t = threadIdx.x, nt = blockDim.x;
    if (d.mode & GLM_CU_SAMPLE_GREEDY) {
        unsigned long long best = 0; /* (key, ~id): the largest key, then the lowest id */
        for (int i = t; i < V; i += nt) {
            unsigned long long v = (unsigned long long)float_key(sanitize(x[i])) << 32 | (uint32_t)~(uint32_t)i;
            best = v > best ? v : best;
        }
        best = block_reduce(best, op_max(), s.redu);
        return (uint32_t)(best >> 32) == KEY_NEG_INF ? -1 : (int)~(uint32_t)best;
    }

    weights wf = {{x, d.temperature, 0u}, 0u, 0u, 0.0f, 0.0f, 0};
    unsigned long long km = 0;
    for (int i = t; i < V; i += nt) {
        float z;
        unsigned long long k = wf.pk.key(i, &z);
        km = k > km ? k : km;
    }
    uint32_t kmax = (uint32_t)block_reduce(km, op_max(), s.redu);
    if (kmax == KEY_NEG_INF)
        return -1;
    if (kmax == KEY_POS_INF) { /* the limit: uniform over the +inf tokens, every filter keeps them */
        wf.pinf = 1;
        return draw(wf, V, d.u, s);
    }
    wf.ymax = key_float(kmax);

    if (d.min_p > 0.0f) { /* p_i >= min_p p_max <=> y_i >= ymax + log(min_p), the bound rounded up */
        double floor_y = (double)wf.ymax + log((double)d.min_p);
        float ff = (float)floor_y;
        if ((double)ff < floor_y)
            ff = nextafterf(ff, INFINITY);
        wf.pk.kf = float_key(ff);
    }
    double n_list = (double)V;
    if (d.top_k > 0) {
        wf.kk = select_key<false>(wf.pk, V, (double)d.top_k, s);
        unsigned long long c = 0;
        for (int i = t; i < V; i += nt) {
            float z;
            uint32_t k = wf.pk.key(i, &z);
            c += k != KEY_NEG_INF && k >= wf.kk;
        }
        n_list = (double)block_reduce(c, op_add(), s.redu);
    }
    if (d.top_p < 1.0f) {
        double m = 0.0;
        for (int i = t; i < V; i += nt)
            m += (double)wf(i);
        m = block_reduce(m, op_add(), s.redd);
        wf.tau = (float)(0.5 * (1.0 - (double)d.top_p) * m / n_list);
        wf.kp = select_key<true>(wf, V, (double)d.top_p * m, s);
    }
    return draw(wf, V, d.u, s);
}

__device__ static float apply_edit(float v, int op, float a)
{
    switch (op) {
    case GLM_CU_EDIT_MASK:
        return -INFINITY;
    case GLM_CU_EDIT_ADD:
        return v + a;
    case GLM_CU_EDIT_REPEAT:
        return v > 0.0f ? v / a : v * a;
    default:
        return v - a;
    }
}

__global__ void __launch_bounds__(1024) sample_kernel(glm_cu_sample_params p)
{
    __shared__ uint32_t s_cnt[BUCKETS];
    __shared__ double s_w[BUCKETS];
    __shared__ double s_redd[32], s_sd[4];
    __shared__ unsigned long long s_redu[32];
    __shared__ int s_si[8];
    __shared__ uint32_t s_tkey[GLM_SAMPLING_MAX_TOP_LOGPROBS];
    __shared__ int32_t s_tid[GLM_SAMPLING_MAX_TOP_LOGPROBS];
    const blk s = {s_cnt, s_w, s_redd, s_redu, s_si, s_sd, s_tkey, s_tid};
    const glm_cu_sample_desc d = p.descs[blockIdx.x];
    const int V = p.vocab, t = threadIdx.x, nt = blockDim.x;
    float *x = p.logits + (size_t)d.row * V;

    /* 1. the raw row: flags, and what the logprobs need */
    unsigned long long kraw = 0, pinf = 0;
    int bad = 0;
    for (int i = t; i < V; i += nt) {
        uint32_t u = f2u(x[i]);
        bad |= (u & 0x7fffffffu) >= BITS_POS_INF && u != BITS_NEG_INF; /* NaN or +inf */
        pinf += u == BITS_POS_INF;
        unsigned long long k = float_key(sanitize(x[i]));
        kraw = k > kraw ? k : kraw;
    }
    unsigned flags = __syncthreads_or(bad) ? (unsigned)GLM_SAMPLE_NONFINITE : 0u;
    double rmax = -INFINITY, lse = 0.0;
    int npinf = 0, logprobs = (d.mode & GLM_CU_SAMPLE_LOGPROBS) != 0;
    if (logprobs) {
        kraw = block_reduce(kraw, op_max(), s.redu);
        npinf = (int)block_reduce(pinf, op_add(), s.redu);
        rmax = (double)key_float((uint32_t)kraw);
        if (!npinf && (uint32_t)kraw != KEY_NEG_INF) {
            float vmax = key_float((uint32_t)kraw);
            double sum = 0.0;
            for (int i = t; i < V; i += nt)
                sum += (double)exp_nonpos(sanitize(x[i]) - vmax);
            lse = log(block_reduce(sum, op_add(), s.redd));
        }
        if (d.n_top > 0)
            top_raw(x, V, d.n_top, s);
    }
    __syncthreads(); /* every raw read is done before the edits write */

    /* 2. edits in place, each id's chain by one thread */
    for (int e = t; e < d.n_edits; e += nt) {
        glm_cu_sample_edit *ed = p.edits + d.edit_begin + e;
        if (!ed->head)
            continue;
        float v = x[ed->id];
        ed->saved = f2u(v);
        v = sanitize(v);
        for (int j = d.edit_begin + e; j >= 0; j = p.edits[j].next)
            v = apply_edit(v, p.edits[j].op, p.edits[j].arg);
        x[ed->id] = v;
    }
    __syncthreads();

    /* 3-4. the token */
    int tok = choose(d, x, V, s);
    __syncthreads(); /* every read of the edited row is done */
    for (int e = t; e < d.n_edits; e += nt) {
        const glm_cu_sample_edit *ed = p.edits + d.edit_begin + e;
        if (ed->head)
            x[ed->id] = u2f(ed->saved);
    }
    __syncthreads();

    if (t == 0) {
        glm_sampler_result *o = p.out + blockIdx.x;
        if (tok < 0) {
            tok = d.fallback;
            flags |= GLM_SAMPLE_NO_CANDIDATE;
        }
        o->token = tok;
        o->flags = flags;
        o->logprob = logprobs ? raw_logprob(rmax, lse, npinf, x[tok]) : 0.0f;
        o->n_top = logprobs ? d.n_top : 0;
        for (int j = 0; j < GLM_SAMPLING_MAX_TOP_LOGPROBS; j++) {
            int have = j < o->n_top;
            o->top[j].id = have ? s.tid[j] : 0;
            o->top[j].logprob = have ? raw_logprob(rmax, lse, npinf, key_float(s.tkey[j])) : 0.0f;
        }
    }
}

cudaError_t glm_cu_sample(const glm_cu_sample_params *p, cudaStream_t stream)
{
    if (p->n_rows <= 0)
        return cudaSuccess;
    unsigned threads = p->vocab >= 32768 ? 1024 : 256;
    return GLM_LAUNCH(sample_kernel, dim3((unsigned)p->n_rows), dim3(threads), 0, stream, *p);
}

/* ---- host: descriptors and edits ------------------------------------------------------- */

void glm_cu_sample_host_init(glm_cu_sample_host *h, int vocab, glm_cu_sample_edit *edits, int cap)
{
    GLM_ASSERT(vocab >= 1 && cap >= 0 && (cap == 0 || edits));
    h->vocab = vocab;
    h->tail = (int32_t *)glm_malloc(sizeof(int32_t) * (size_t)vocab);
    for (int i = 0; i < vocab; i++)
        h->tail[i] = -1;
    h->count = (int32_t *)glm_calloc((size_t)vocab, sizeof(int32_t));
    h->mark = (uint8_t *)glm_calloc((size_t)vocab, 1);
    h->edits = edits;
    h->cap = cap;
    h->n = 0;
}

void glm_cu_sample_host_free(glm_cu_sample_host *h)
{
    if (!h)
        return;
    free(h->tail);
    free(h->count);
    free(h->mark);
    memset(h, 0, sizeof *h);
}

void glm_cu_sample_host_reset(glm_cu_sample_host *h)
{
    h->n = 0;
}

/* Appends one edit of id, chained after the id's previous one; 0 when full. */
static int put(glm_cu_sample_host *h, int32_t id, int op, float arg)
{
    GLM_ASSERT(id >= 0 && id < h->vocab);
    if (h->n >= h->cap)
        return 0;
    int j = h->n++;
    glm_cu_sample_edit *e = &h->edits[j];
    e->id = id;
    e->next = -1;
    e->arg = arg;
    e->op = (uint16_t)op;
    e->saved = 0;
    if (h->tail[id] < 0) {
        e->head = 1;
    } else {
        e->head = 0;
        h->edits[h->tail[id]].next = j;
    }
    h->tail[id] = j;
    return 1;
}

int glm_cu_sample_host_add(glm_cu_sample_host *h, const glm_sampling_params *p, glm_rng *rng,
                           const glm_sampler_history *hist, int row, glm_cu_sample_desc *desc)
{
    int begin = h->n, ok = 1, counted = 0;
    GLM_ASSERT(hist->n_prompt >= 0 && (hist->n_prompt == 0 || hist->prompt));
    GLM_ASSERT(hist->n_output >= 0 && (hist->n_output == 0 || hist->output));

    /* the sampler's process(), as edits: min_tokens, logit_bias, penalties */
    if (hist->n_output < p->min_tokens) {
        for (int i = 0; ok && i < p->n_stop_token_ids; i++)
            ok = put(h, p->stop_token_ids[i], GLM_CU_EDIT_MASK, 0.0f);
        for (int i = 0; ok && i < p->n_eos_token_ids; i++)
            ok = put(h, p->eos_token_ids[i], GLM_CU_EDIT_MASK, 0.0f);
    }
    for (int i = 0; ok && i < p->n_logit_bias; i++) {
        float b = p->logit_bias[i].bias;
        b = b > GLM_SAMPLING_MAX_BIAS ? GLM_SAMPLING_MAX_BIAS : (b < -GLM_SAMPLING_MAX_BIAS ? -GLM_SAMPLING_MAX_BIAS : b);
        ok = put(h, p->logit_bias[i].id, GLM_CU_EDIT_ADD, b);
    }
    if (ok && p->repetition_penalty != 1.0f) {
        const int32_t *lists[2] = {hist->prompt, hist->output};
        int lens[2] = {hist->n_prompt, hist->n_output};
        for (int l = 0; l < 2; l++)
            for (int i = 0; ok && i < lens[l]; i++) {
                int32_t id = lists[l][i];
                if (h->mark[id] & 1)
                    continue;
                ok = put(h, id, GLM_CU_EDIT_REPEAT, p->repetition_penalty);
                h->mark[id] |= 1;
            }
    }
    if (ok && (p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f)) {
        /* x - frequency x count, then - presence (two float subtractions, as the sampler);
         * a subtraction of 0 changes nothing and is left out */
        counted = 1;
        for (int i = 0; i < hist->n_output; i++)
            h->count[hist->output[i]]++;
        for (int i = 0; ok && i < hist->n_output; i++) {
            int32_t id = hist->output[i];
            if (h->mark[id] & 2)
                continue;
            h->mark[id] |= 2;
            float f = p->frequency_penalty * (float)h->count[id];
            if (f != 0.0f)
                ok = put(h, id, GLM_CU_EDIT_SUB, f);
            if (ok && p->presence_penalty != 0.0f)
                ok = put(h, id, GLM_CU_EDIT_SUB, p->presence_penalty);
        }
    }

    /* the per-id scratch back to its resting state */
    for (int j = begin; j < h->n; j++) {
        h->tail[h->edits[j].id] = -1;
        h->mark[h->edits[j].id] = 0;
    }
    for (int l = 0; l < 2; l++) { /* marked ids whose edit did not fit */
        const int32_t *ids = l ? hist->output : hist->prompt;
        int n = l ? hist->n_output : hist->n_prompt;
        for (int i = 0; !ok && i < n; i++)
            h->mark[ids[i]] = 0;
    }
    if (counted)
        for (int i = 0; i < hist->n_output; i++) {
            h->count[hist->output[i]] = 0;
            h->mark[hist->output[i]] = 0;
        }
    if (!ok) {
        h->n = begin;
        return GLM_ERR;
    }

    int vocab = h->vocab;
    desc->u = glm_rng_uniform(rng); /* the draw glm_sampler_sample takes first */
    desc->row = row;
    desc->mode = (glm_sampling_is_greedy(p) ? GLM_CU_SAMPLE_GREEDY : 0u) | (p->logprobs ? GLM_CU_SAMPLE_LOGPROBS : 0u);
    desc->temperature = p->temperature < GLM_SAMPLING_MIN_TEMPERATURE ? GLM_SAMPLING_MIN_TEMPERATURE : p->temperature;
    desc->top_p = p->top_p;
    desc->min_p = p->min_p;
    desc->top_k = p->top_k > 0 && p->top_k < vocab ? p->top_k : 0;
    desc->n_top = p->logprobs ? GLM_MIN(p->top_logprobs, vocab) : 0;
    desc->fallback = p->n_eos_token_ids > 0 ? p->eos_token_ids[0] : 0;
    desc->edit_begin = begin;
    desc->n_edits = h->n - begin;
    return GLM_OK;
}
