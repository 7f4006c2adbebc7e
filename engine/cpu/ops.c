/*
 * ops.c - CPU kernels (see ops.h for the batch-invariance contract).
 *
 * Matmul layout: a task converts a chunk of weight rows to float32 into
 * per-thread scratch (so BF16/FP8 weights are widened once per chunk, not once
 * per token), then walks the tokens in tiles: 4 tokens x 2 rows with 8-lane
 * vectors, or, where the CPU has AVX-512, 4 tokens x 8 rows with two rows'
 * accumulators a 16-lane register. With up to 16 tokens BF16/F32/FP8 rows are
 * read in place (FP8 widened through its table and block scale as it is read), 4 rows at a time against 4 (or 3) tokens at a time, the next
 * 4 rows prefetched. Each output element
 * accumulates in 8 lanes over k in steps of 8, the lanes are summed in a fixed
 * pairwise order and the tail is added in order: exactly what glm_dot does, so
 * neither the tile shape nor the kernel set ever changes a result.
 */
#include "cpu/ops.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

typedef float v8f __attribute__((vector_size(32)));

/* Multiply-add used by every dot product. With FMA hardware it is one fused
 * operation, spelled out with intrinsics so that every kernel fuses exactly
 * the same operations (the compiler's own contraction is off, -ffp-contract=off:
 * left to itself it fuses differently in different loops, which would break
 * batch invariance). */
#if defined(__FMA__) && defined(__AVX__)
#include <immintrin.h>
static inline v8f madd8(v8f a, v8f b, v8f acc)
{
    return (v8f)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)acc);
}
static inline float madd1(float a, float b, float acc)
{
    return fmaf(a, b, acc);
}
#else
static inline v8f madd8(v8f a, v8f b, v8f acc)
{
    return acc + a * b;
}
static inline float madd1(float a, float b, float acc)
{
    return acc + a * b;
}
#endif

static inline v8f load8(const float *p)
{
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline float hsum8(v8f a)
{
    float s0 = (a[0] + a[4]) + (a[2] + a[6]);
    float s1 = (a[1] + a[5]) + (a[3] + a[7]);
    return s0 + s1;
}

float glm_dot(const float *a, const float *b, int n)
{
    v8f acc = {0};
    int k = 0;
    for (; k + 8 <= n; k += 8)
        acc = madd8(load8(a + k), load8(b + k), acc);
    float s = hsum8(acc);
    for (; k < n; k++)
        s = madd1(a[k], b[k], s);
    return s;
}

typedef uint16_t v8u16 __attribute__((vector_size(16)));
typedef uint32_t v8u32 __attribute__((vector_size(32)));

/* 8 elements of a weight row from k, widened to float32 exactly when it is BF16. */
static inline v8f row_load8(const void *w, int bf16, int k)
{
    if (!bf16)
        return load8((const float *)w + k);
#if defined(__AVX2__) /* one widening load, where the vector extension's form takes four ops */
    __m128i h8 = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + k));
    return (v8f)_mm256_slli_epi32(_mm256_cvtepu16_epi32(h8), 16);
#endif
    v8u16 h;
    memcpy(&h, (const uint16_t *)w + k, sizeof h);
    v8u32 u = __builtin_convertvector(h, v8u32) << 16;
    v8f f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Element k of a weight row, widened likewise. */
static inline float row_value(const void *w, int bf16, int k)
{
    if (!bf16)
        return ((const float *)w)[k];
    uint16_t h;
    memcpy(&h, (const uint16_t *)w + k, sizeof h);
    return glm_bf16_to_f32(h);
}

/* glm_dot of a BF16 row (widened on the fly, exactly) with up to 3 token
 * vectors at once: the row is widened once per 8 elements and feeds every
 * token's own accumulator, so each result is bitwise glm_dot of the widened
 * row and that token alone. */
static void dot_bf16_multi(const uint16_t *w, const float *const *x, int nt, int n, float *out)
{
    v8f acc[3] = {{0}, {0}, {0}};
    int k = 0;
    for (; k + 8 <= n; k += 8) {
        v8f wf = row_load8(w, 1, k);
        for (int t = 0; t < nt; t++)
            acc[t] = madd8(wf, load8(x[t] + k), acc[t]);
    }
    for (int t = 0; t < nt; t++) {
        float s = hsum8(acc[t]);
        for (int kk = k; kk < n; kk++)
            s = madd1(row_value(w, 1, kk), x[t][kk], s);
        out[t] = s;
    }
}

/* NT <= DIRECT_GROUP tokens against ROWS4 rows (BF16 widened on the fly, or F32): y[t * ldy + r]
 * is bitwise glm_dot of row r and x[t]; the rows' and tokens' sums are independent chains (4 to
 * 16), so a decode step's few tokens do not wait on one accumulator's latency, and each row is
 * widened once for all of them. next (or NULL): the rows of the following group, prefetched a cache line at a
 * time as these are read. Four interleaved streams of short rows are more than the hardware
 * prefetchers follow: without it a batch-1 decode step waits on most weight loads (on
 * models/small, 180 tokens/s without, 310 with). NT is a constant at each call, so each token
 * count gets its own unrolled loop. */
#define ROWS4 4
/* tokens a call takes at most: its accumulators and the rows' vectors fit in the registers (32
 * with AVX-512, 16 without) */
#if defined(__AVX512F__)
#define DIRECT_GROUP 4
#else
#define DIRECT_GROUP 3
#endif
static inline __attribute__((always_inline)) void
dot_rows4(const void *const *w, int bf16, const float *const *x, int NT, int n, float *y, size_t ldy,
          const void *const *next)
{
    v8f acc[DIRECT_GROUP][ROWS4] = {{{0}}};
    int k = 0;
    size_t es = bf16 ? 2 : 4;
    for (; k + 8 <= n; k += 8) {
        if (next && ((k * es) & 63) == 0)
            for (int r = 0; r < ROWS4; r++)
                __builtin_prefetch((const char *)next[r] + k * es);
        v8f wv[ROWS4];
        for (int r = 0; r < ROWS4; r++)
            wv[r] = row_load8(w[r], bf16, k);
        for (int t = 0; t < NT; t++) {
            v8f xv = load8(x[t] + k);
            for (int r = 0; r < ROWS4; r++)
                acc[t][r] = madd8(wv[r], xv, acc[t][r]);
        }
    }
    for (int t = 0; t < NT; t++)
        for (int r = 0; r < ROWS4; r++) {
            float s = hsum8(acc[t][r]);
            for (int kk = k; kk < n; kk++)
                s = madd1(row_value(w[r], bf16, kk), x[t][kk], s);
            y[(size_t)t * ldy + r] = s;
        }
}

/* 8 FP8 (E4M3) elements of a weight row from k, as the table widens them. */
static inline v8f fp8_load8(const float *tab, const uint8_t *q)
{
#if defined(__AVX2__)
    __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)q));
    return (v8f)_mm256_i32gather_ps(tab, idx, 4);
#else
    return (v8f){tab[q[0]], tab[q[1]], tab[q[2]], tab[q[3]], tab[q[4]], tab[q[5]], tab[q[6]], tab[q[7]]};
#endif
}

/* dot_rows4 for FP8 rows with block scales: each element widened as glm_weight_rows_f32 widens
 * it (the E4M3 value times its block's scale, one float multiply), so y[t * ldy + r] is bitwise
 * glm_dot of the widened row r and x[t]. sc[r]: row r's scales, one per block_c columns
 * (block_c a multiple of 8); next as in dot_rows4. */
static inline __attribute__((always_inline)) void
dot_rows4_fp8(const uint8_t *const *w, const float *const *sc, int block_c, const float *tab,
              const float *const *x, int NT, int n, float *y, size_t ldy, const uint8_t *const *next)
{
    v8f acc[DIRECT_GROUP][ROWS4] = {{{0}}};
    int n8 = n / 8 * 8;
    for (int b0 = 0, bi = 0; b0 < n8; b0 += block_c, bi++) {
        v8f scale[ROWS4];
        for (int r = 0; r < ROWS4; r++) {
            float v = sc[r][bi];
            scale[r] = (v8f){v, v, v, v, v, v, v, v};
        }
        int e = GLM_MIN(n8, b0 + block_c);
        for (int k = b0; k < e; k += 8) {
            if (next && (k & 63) == 0)
                for (int r = 0; r < ROWS4; r++)
                    __builtin_prefetch(next[r] + k);
            v8f wv[ROWS4];
            for (int r = 0; r < ROWS4; r++)
                wv[r] = fp8_load8(tab, w[r] + k) * scale[r];
            for (int t = 0; t < NT; t++) {
                v8f xv = load8(x[t] + k);
                for (int r = 0; r < ROWS4; r++)
                    acc[t][r] = madd8(wv[r], xv, acc[t][r]);
            }
        }
    }
    for (int t = 0; t < NT; t++)
        for (int r = 0; r < ROWS4; r++) {
            float s = hsum8(acc[t][r]);
            for (int kk = n8; kk < n; kk++)
                s = madd1(tab[w[r][kk]] * sc[r][kk / block_c], x[t][kk], s);
            y[(size_t)t * ldy + r] = s;
        }
}

void glm_dot4(const float *const a[4], const float *b, int n, float out[4])
{
    dot_rows4((const void *const *)a, 0, &b, 1, n, out, 0, NULL);
}

/* 4 tokens x 2 rows. out[t][r] = dot(x[t], w[r]) with glm_dot's order. */
static void tile4x2(const float *x0, const float *x1, const float *x2, const float *x3,
                    const float *w0, const float *w1, int n, float out[4][2])
{
    v8f a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
    int k = 0;
    for (; k + 8 <= n; k += 8) {
        v8f v0 = load8(w0 + k), v1 = load8(w1 + k);
        v8f t;
        t = load8(x0 + k); a00 = madd8(v0, t, a00); a01 = madd8(v1, t, a01);
        t = load8(x1 + k); a10 = madd8(v0, t, a10); a11 = madd8(v1, t, a11);
        t = load8(x2 + k); a20 = madd8(v0, t, a20); a21 = madd8(v1, t, a21);
        t = load8(x3 + k); a30 = madd8(v0, t, a30); a31 = madd8(v1, t, a31);
    }
    float s[4][2] = {{hsum8(a00), hsum8(a01)}, {hsum8(a10), hsum8(a11)},
                     {hsum8(a20), hsum8(a21)}, {hsum8(a30), hsum8(a31)}};
    const float *xs[4] = {x0, x1, x2, x3};
    for (int t = 0; t < 4; t++) {
        for (int kk = k; kk < n; kk++) {
            s[t][0] = madd1(w0[kk], xs[t][kk], s[t][0]);
            s[t][1] = madd1(w1[kk], xs[t][kk], s[t][1]);
        }
        out[t][0] = s[t][0];
        out[t][1] = s[t][1];
    }
}

/* ---- per-thread scratch ---------------------------------------------------- */

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

typedef struct {
    float *p;
    size_t cap;
} scratch_buf;

static void scratch_destroy(void *v)
{
    scratch_buf *s = v;
    glm_free_aligned(s->p);
    free(s);
}

static void scratch_init(void)
{
    GLM_ASSERT(pthread_key_create(&scratch_key, scratch_destroy) == 0);
}

static float *scratch_get(size_t n)
{
    pthread_once(&scratch_once, scratch_init);
    scratch_buf *s = pthread_getspecific(scratch_key);
    if (!s) {
        s = glm_calloc(1, sizeof *s);
        pthread_setspecific(scratch_key, s);
    }
    if (s->cap < n) {
        glm_free_aligned(s->p);
        s->p = glm_malloc_aligned(n * sizeof(float));
        s->cap = n;
    }
    return s->p;
}


/* ---- matmul --------------------------------------------------------------- */

#define ROW_CHUNK 16
/* a matmul loop's tasks a thread (see glm_matmul_jobs) */
#define TASKS_PER_THREAD 2
#define TOK_BLOCK 32
/* up to this many tokens a matmul reads BF16/F32/FP8 rows in place */
#define DIRECT_MAX_TOK 16

typedef struct {
    const glm_matmul_job *jobs;
    int n_jobs;
    int task_rows;      /* rows a task (the last of a job may have fewer) */
    glm_pool *pool;
} jobs_ctx;

/* run_chunk_direct for FP8 rows: ROWS4 at a time (the last group padded with copies of the last
 * row, whose results are dropped), the tokens in groups of DIRECT_GROUP. */
static void run_rows_fp8(const glm_matmul_job *j, int r0, int nr, const float *const *xs)
{
    const glm_weight *w = j->w;
    const float *tab = glm_e4m3_table();
    int sld = glm_weight_scale_ld(w);
    size_t ldy = (size_t)j->ldy;
    for (int r = 0; r < nr; r += ROWS4) {
        const uint8_t *rows[ROWS4], *next[ROWS4];
        const float *sc[ROWS4];
        for (int i = 0; i < ROWS4; i++) {
            int ri = r0 + GLM_MIN(r + i, nr - 1);
            rows[i] = glm_weight_row(w, ri);
            sc[i] = w->scale + (size_t)(ri / w->block_r) * sld;
            next[i] = glm_weight_row(w, r0 + GLM_MIN(r + ROWS4 + i, nr - 1));
        }
        int keep = GLM_MIN(ROWS4, nr - r);
        for (int t0 = 0; t0 < j->n_tok; t0 += DIRECT_GROUP) {
            float tmp[DIRECT_GROUP][ROWS4];
            const uint8_t *const *pf = t0 == 0 ? next : NULL;
            int nt = GLM_MIN(DIRECT_GROUP, j->n_tok - t0);
            switch (nt) {
            case 1: dot_rows4_fp8(rows, sc, w->block_c, tab, xs + t0, 1, w->cols, tmp[0], ROWS4, pf); break;
            case 2: dot_rows4_fp8(rows, sc, w->block_c, tab, xs + t0, 2, w->cols, tmp[0], ROWS4, pf); break;
            case 3: dot_rows4_fp8(rows, sc, w->block_c, tab, xs + t0, 3, w->cols, tmp[0], ROWS4, pf); break;
            default: dot_rows4_fp8(rows, sc, w->block_c, tab, xs + t0, DIRECT_GROUP, w->cols, tmp[0], ROWS4, pf); break;
            }
            for (int t = 0; t < nt; t++)
                memcpy(j->y + (size_t)(t0 + t) * ldy + (r0 - j->row0) + r, tmp[t], sizeof(float) * (size_t)keep);
        }
    }
}

/* Few tokens: read F32/BF16 rows in place instead of widening them first, ROWS4 rows at a time
 * against the tokens in groups of DIRECT_GROUP; the later groups find the rows in L1. */
static void run_chunk_direct(const glm_matmul_job *j, int r0, int nr)
{
    const glm_weight *w = j->w;
    int cols = w->cols;
    const float *xs[DIRECT_MAX_TOK];
    for (int t = 0; t < j->n_tok; t++)
        xs[t] = j->x + (size_t)(j->tok ? j->tok[t] : t) * j->ldx;
    int r = 0, bf16 = w->dtype == GLM_DTYPE_BF16;
    size_t ldy = (size_t)j->ldy;
    if (w->dtype == GLM_DTYPE_F8_E4M3) {
        run_rows_fp8(j, r0, nr, xs);
        return;
    }
    for (; r + ROWS4 <= nr; r += ROWS4) {
        const void *rows[ROWS4], *next[ROWS4];
        for (int i = 0; i < ROWS4; i++) {
            rows[i] = glm_weight_row(w, r0 + r + i);
            next[i] = glm_weight_row(w, GLM_MIN(r0 + r + ROWS4 + i, r0 + nr - 1));
        }
        for (int t0 = 0; t0 < j->n_tok; t0 += DIRECT_GROUP) {
            float *y = j->y + (size_t)t0 * ldy + (r0 - j->row0) + r;
            const void *const *pf = t0 == 0 ? next : NULL; /* the first group prefetches */
            switch (GLM_MIN(DIRECT_GROUP, j->n_tok - t0)) {
            case 1: dot_rows4(rows, bf16, xs + t0, 1, cols, y, ldy, pf); break;
            case 2: dot_rows4(rows, bf16, xs + t0, 2, cols, y, ldy, pf); break;
            case 3: dot_rows4(rows, bf16, xs + t0, 3, cols, y, ldy, pf); break;
            default: dot_rows4(rows, bf16, xs + t0, DIRECT_GROUP, cols, y, ldy, pf); break;
            }
        }
    }
    for (; r < nr; r++) {
        float *y = j->y + (r0 - j->row0) + r;
        if (w->dtype == GLM_DTYPE_BF16) {
            for (int t0 = 0; t0 < j->n_tok; t0 += 3) {
                float v[3];
                int nt = GLM_MIN(3, j->n_tok - t0);
                dot_bf16_multi((const uint16_t *)glm_weight_row(w, r0 + r), xs + t0, nt, cols, v);
                for (int t = 0; t < nt; t++)
                    y[(size_t)(t0 + t) * ldy] = v[t];
            }
        } else {
            const float *wr = (const float *)glm_weight_row(w, r0 + r);
            for (int t = 0; t < j->n_tok; t++)
                y[(size_t)t * ldy] = glm_dot(wr, xs[t], cols);
        }
    }
}

size_t glm_matmul_scratch_bytes(int cols)
{
    /* the widened chunk, and the same again for its AVX-512 pair layout */
    return 2 * sizeof(float) * (size_t)ROW_CHUNK * (size_t)cols;
}

/* ---- AVX-512: two rows a register ----------------------------------------------
 *
 * Each 16-lane register holds two outputs' 8-lane accumulators (row 2p in lanes 0-7, row 2p+1
 * in 8-15), each multiplied by the same 8 inputs broadcast to both halves. Every output still
 * accumulates in glm_dot's 8 lanes in glm_dot's order and is summed by hsum8, so the results are
 * bit for bit those of the 8-lane kernels, with half the instructions per product. Used only
 * where the 8-lane kernels fuse their multiply-adds too (__FMA__), and chosen at run time. */
#if defined(__FMA__) && defined(__AVX__) && defined(__GNUC__) && !defined(GLM_NO_AVX512)
#define GLM_HAVE_AVX512_KERNELS 1
#define AVX512_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,fma")))

/* Rows [0, nr) of the widened chunk wf ([nr, cols]) into pairs: pair p's blocks of 8 columns
 * interleaved, [row 2p: 8 | row 2p+1: 8] per block, then row 2p's tail (cols % 8) and row
 * 2p+1's; an odd last row pairs with itself. Pair p starts at wp + 2 * p * cols. */
static void pack_pairs(const float *wf, int nr, int cols, float *wp)
{
    int nb = cols / 8, tl = cols % 8;
    for (int p = 0; p < (nr + 1) / 2; p++) {
        const float *a = wf + (size_t)(2 * p) * cols;
        const float *b = 2 * p + 1 < nr ? a + cols : a;
        float *d = wp + (size_t)(2 * p) * cols;
        for (int kb = 0; kb < nb; kb++) {
            memcpy(d + kb * 16, a + kb * 8, 8 * sizeof(float));
            memcpy(d + kb * 16 + 8, b + kb * 8, 8 * sizeof(float));
        }
        memcpy(d + nb * 16, a + nb * 8, (size_t)tl * sizeof(float));
        memcpy(d + nb * 16 + tl, b + nb * 8, (size_t)tl * sizeof(float));
    }
}

/* NP pairs of packed rows (up to 4) x 4 tokens: out[t][2p + h] = glm_dot(row 2p + h, x[t]). */
static inline __attribute__((always_inline)) AVX512_TARGET void
tile_pairs(const float *wp, int cols, int NP, const float *const *x, float out[4][8])
{
    __m512 acc[4][4];
    for (int t = 0; t < 4; t++)
        for (int p = 0; p < NP; p++)
            acc[t][p] = _mm512_setzero_ps();
    int nb = cols / 8, tl = cols % 8;
    for (int kb = 0; kb < nb; kb++) {
        __m512 wv[4];
        for (int p = 0; p < NP; p++)
            wv[p] = _mm512_loadu_ps(wp + (size_t)(2 * p) * cols + kb * 16);
        for (int t = 0; t < 4; t++) {
            __m512 xv = _mm512_broadcast_f32x8(_mm256_loadu_ps(x[t] + kb * 8));
            for (int p = 0; p < NP; p++)
                acc[t][p] = _mm512_fmadd_ps(wv[p], xv, acc[t][p]);
        }
    }
    for (int t = 0; t < 4; t++)
        for (int p = 0; p < NP; p++) {
            const float *tail = wp + (size_t)(2 * p) * cols + nb * 16;
            float s[2] = {hsum8((v8f)_mm512_castps512_ps256(acc[t][p])),
                          hsum8((v8f)_mm512_extractf32x8_ps(acc[t][p], 1))};
            for (int h = 0; h < 2; h++) {
                for (int kk = 0; kk < tl; kk++)
                    s[h] = fmaf(tail[h * tl + kk], x[t][nb * 8 + kk], s[h]);
                out[t][2 * p + h] = s[h];
            }
        }
}

/* run_chunk's token loop over the packed chunk: tiles of 8 rows (4 pairs) x 4 tokens. */
static AVX512_TARGET void chunk_tokens_avx512(const float *wp, const glm_matmul_job *j, int r0, int nr,
                                              int tb, int te)
{
    int cols = j->w->cols;
    for (int r = 0; r < nr; r += 8) {
        int np = GLM_MIN(4, (nr - r + 1) / 2);
        const float *w = wp + (size_t)r * cols;
        for (int t0 = tb; t0 < te; t0 += 4) {
            const float *xs[4];
            int nt = GLM_MIN(4, te - t0);
            for (int t = 0; t < 4; t++) {
                int ti = t0 + GLM_MIN(t, nt - 1);
                xs[t] = j->x + (size_t)(j->tok ? j->tok[ti] : ti) * j->ldx;
            }
            float out[4][8];
            switch (np) {
            case 4: tile_pairs(w, cols, 4, xs, out); break;
            case 3: tile_pairs(w, cols, 3, xs, out); break;
            case 2: tile_pairs(w, cols, 2, xs, out); break;
            default: tile_pairs(w, cols, 1, xs, out); break;
            }
            int nrows = GLM_MIN(8, nr - r);
            for (int t = 0; t < nt; t++)
                memcpy(j->y + (size_t)(t0 + t) * j->ldy + (r0 - j->row0) + r, out[t],
                       (size_t)nrows * sizeof(float));
        }
    }
}
#endif

/* Whether the AVX-512 kernels run: the CPU has them, and glm_ops_set_avx512 has not turned
 * them off. */
static atomic_int avx512_state = -1; /* -1: not yet asked, 0: off, 1: on */

static int avx512_on(void)
{
    int s = atomic_load_explicit(&avx512_state, memory_order_relaxed);
    if (s < 0) {
#ifdef GLM_HAVE_AVX512_KERNELS
        __builtin_cpu_init();
        s = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("avx512vl");
#else
        s = 0;
#endif
        atomic_store_explicit(&avx512_state, s, memory_order_relaxed);
    }
    return s;
}

int glm_ops_set_avx512(int on)
{
    int was = avx512_on();
    atomic_store(&avx512_state, on ? -1 : 0); /* -1: asks the CPU again at the next use */
    return was;
}

const char *glm_ops_kernels(void)
{
    if (avx512_on())
        return "avx512";
#if defined(__FMA__) && defined(__AVX__)
    return "avx2";
#else
    return "generic";
#endif
}

/* ROW_CHUNK rows from r0, widened to float32 first, times every token of the job. */
static void run_chunk(float *wf, const glm_matmul_job *j, int r0, int nr)
{
    const glm_weight *w = j->w;
    int cols = w->cols;
    glm_weight_rows_f32(w, r0, nr, wf);
#ifdef GLM_HAVE_AVX512_KERNELS
    if (avx512_on()) {
        float *wp = wf + (size_t)ROW_CHUNK * cols;
        pack_pairs(wf, nr, cols, wp);
        for (int tb = 0; tb < j->n_tok; tb += TOK_BLOCK)
            chunk_tokens_avx512(wp, j, r0, nr, tb, GLM_MIN(j->n_tok, tb + TOK_BLOCK));
        return;
    }
#endif

    /* token blocks small enough that their inputs stay in L2 across the chunk's rows */
    for (int tb = 0; tb < j->n_tok; tb += TOK_BLOCK) {
        int te = GLM_MIN(j->n_tok, tb + TOK_BLOCK);
        for (int r = 0; r < nr; r += 2) {
            const float *w0 = wf + (size_t)r * cols;
            const float *w1 = r + 1 < nr ? w0 + cols : w0;
            for (int t0 = tb; t0 < te; t0 += 4) {
                const float *xs[4];
                int nt = GLM_MIN(4, te - t0);
                for (int t = 0; t < 4; t++) {
                    int ti = t0 + GLM_MIN(t, nt - 1);
                    int row = j->tok ? j->tok[ti] : ti;
                    xs[t] = j->x + (size_t)row * j->ldx;
                }
                float out[4][2];
                tile4x2(xs[0], xs[1], xs[2], xs[3], w0, w1, cols, out);
                for (int t = 0; t < nt; t++) {
                    float *y = j->y + (size_t)(t0 + t) * j->ldy + (r0 - j->row0) + r;
                    y[0] = out[t][0];
                    if (r + 1 < nr)
                        y[1] = out[t][1];
                }
            }
        }
    }
}

/* Task `task` of job j: its contiguous rows, in place when few tokens read BF16/F32 rows,
 * else ROW_CHUNK rows at a time through the worker's scratch. */
static void run_task(glm_pool *pool, int worker, const glm_matmul_job *j, int task_rows, int task)
{
    const glm_weight *w = j->w;
    int r0 = j->row0 + task * task_rows;
    int r1 = GLM_MIN(r0 + task_rows, j->row0 + j->nrows);
    if (j->n_tok <= DIRECT_MAX_TOK &&
        (w->dtype == GLM_DTYPE_BF16 || (w->dtype == GLM_DTYPE_F32 && ((uintptr_t)w->data & 3) == 0) ||
         (w->dtype == GLM_DTYPE_F8_E4M3 && w->block_c % 8 == 0))) {
        run_chunk_direct(j, r0, r1 - r0);
        return;
    }
    /* the pool's per-worker scratch; a direct call without a pool uses its thread's */
    float *wf = pool ? glm_pool_scratch(pool, worker, glm_matmul_scratch_bytes(w->cols))
                     : scratch_get(glm_matmul_scratch_bytes(w->cols) / sizeof(float));
    for (int r = r0; r < r1; r += ROW_CHUNK)
        run_chunk(wf, j, r, GLM_MIN(ROW_CHUNK, r1 - r));
}

static void jobs_task(void *ctx, int i, int worker)
{
    const jobs_ctx *c = ctx;
    /* find the job holding task i: the last one whose first task is <= i (a job
     * without tokens shares its first task with the next job, which comes later) */
    int lo = 0, hi = c->n_jobs - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (c->jobs[mid].first_task <= i)
            lo = mid;
        else
            hi = mid - 1;
    }
    run_task(c->pool, worker, &c->jobs[lo], c->task_rows, i - c->jobs[lo].first_task);
}

void glm_matmul_jobs(glm_pool *pool, glm_matmul_job *jobs, int n_jobs)
{
    /* Tasks are contiguous row ranges, about TASKS_PER_THREAD a thread over the whole loop
     * (a multiple of ROW_CHUNK rows, within one job): each thread streams long runs of a
     * weight instead of alternating small chunks with the others. Every output element is
     * still one dot product in glm_dot's order, so the split never changes a result. */
    long rows = 0;
    for (int j = 0; j < n_jobs; j++)
        if (jobs[j].n_tok > 0)
            rows += jobs[j].nrows;
    int threads = pool ? glm_pool_size(pool) : 1;
    long target = (rows + (long)threads * TASKS_PER_THREAD - 1) / ((long)threads * TASKS_PER_THREAD);
    int task_rows = (int)GLM_MAX(ROW_CHUNK, (target + ROW_CHUNK - 1) / ROW_CHUNK * ROW_CHUNK);
    int total = 0;
    for (int j = 0; j < n_jobs; j++) {
        jobs[j].first_task = total;
        if (jobs[j].n_tok > 0)
            total += (jobs[j].nrows + task_rows - 1) / task_rows;
    }
    jobs_ctx c = {jobs, n_jobs, task_rows, pool};
    glm_pool_for(pool, total, jobs_task, &c);
}

void glm_matmul(glm_pool *pool, const glm_weight *w, const float *x, int ldx, int n_tok, float *y,
                int ldy)
{
    glm_matmul_job j = {w, 0, w->rows, x, ldx, NULL, n_tok, y, ldy, 0};
    glm_matmul_jobs(pool, &j, 1);
}

/* ---- elementwise ------------------------------------------------------------ */

void glm_rmsnorm(float *y, const float *x, const float *w, int n, float eps)
{
    /* sum of squares in double-free fixed order: same lanes as glm_dot */
    float ss = glm_dot(x, x, n);
    float inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++)
        y[i] = w ? w[i] * (x[i] * inv) : x[i] * inv;
}

void glm_layernorm(float *y, const float *x, const float *w, const float *b, int n, float eps)
{
    /* double accumulation: the mean of a shifted vector must not drift */
    double mean = 0;
    for (int i = 0; i < n; i++)
        mean += x[i];
    mean /= n;
    double var = 0;
    for (int i = 0; i < n; i++) {
        double d = x[i] - mean;
        var += d * d;
    }
    var /= n;
    float inv = (float)(1.0 / sqrt(var + eps));
    float m = (float)mean;
    for (int i = 0; i < n; i++) {
        float v = (x[i] - m) * inv;
        if (w)
            v *= w[i];
        if (b)
            v += b[i];
        y[i] = v;
    }
}

void glm_swiglu(float *g, const float *u, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = g[i];
        g[i] = x / (1.0f + expf(-x)) * u[i];
    }
}

void glm_rope_angles(int pos, double theta, int dim, float *cos_, float *sin_)
{
    for (int i = 0; i < dim / 2; i++) {
        float inv_freq = (float)(1.0 / pow(theta, (double)(2 * i) / (double)dim));
        float ang = (float)pos * inv_freq;
        cos_[i] = (float)cos((double)ang);
        sin_[i] = (float)sin((double)ang);
    }
}

void glm_rope_interleaved(float *x, const float *cos_, const float *sin_, int dim)
{
    int h = dim / 2;
    float tmp[1024];
    GLM_ASSERT(dim <= 1024);
    for (int i = 0; i < h; i++) {
        float a = x[2 * i], b = x[2 * i + 1];
        tmp[i] = a * cos_[i] - b * sin_[i];
        tmp[h + i] = b * cos_[i] + a * sin_[i];
    }
    memcpy(x, tmp, sizeof(float) * (size_t)dim);
}

void glm_rope_neox(float *x, const float *cos_, const float *sin_, int dim)
{
    int h = dim / 2;
    for (int i = 0; i < h; i++) {
        float a = x[i], b = x[h + i];
        x[i] = a * cos_[i] - b * sin_[i];
        x[h + i] = b * cos_[i] + a * sin_[i];
    }
}

/* ---- top-k selection ----------------------------------------------------- */

typedef struct {
    float score;
    int32_t pos;
} scored;

static inline int scored_before(const scored *x, const scored *y)
{
    return x->score > y->score || (x->score == y->score && x->pos < y->pos);
}

static int int32_cmp(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Quickselect under a strict total order (score descending, then position
 * ascending), so the chosen set is unique whatever the pivots. */
void glm_topk(const float *scores, int n, int k, int32_t *idx, float *scratch)
{
    GLM_ASSERT(k >= 1 && k <= n);
    scored *a = (scored *)scratch;
    for (int i = 0; i < n; i++) {
        a[i].score = isnan(scores[i]) ? -INFINITY : scores[i];
        a[i].pos = i;
    }
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        scored t;
        if (scored_before(&a[mid], &a[lo])) { t = a[mid]; a[mid] = a[lo]; a[lo] = t; }
        if (scored_before(&a[hi], &a[lo])) { t = a[hi]; a[hi] = a[lo]; a[lo] = t; }
        if (scored_before(&a[hi], &a[mid])) { t = a[hi]; a[hi] = a[mid]; a[mid] = t; }
        scored pivot = a[mid];
        int i = lo, j = hi;
        while (i <= j) {
            while (scored_before(&a[i], &pivot))
                i++;
            while (scored_before(&pivot, &a[j]))
                j--;
            if (i <= j) {
                t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            break;
    }
    for (int i = 0; i < k; i++)
        idx[i] = a[i].pos;
    qsort(idx, (size_t)k, sizeof *idx, int32_cmp);
}
