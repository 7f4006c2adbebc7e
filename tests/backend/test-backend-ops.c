/*
 * test-backend-ops.c - every op of every backend against an independent
 * double-precision reference written here from the math (llama.cpp's
 * test-backend-ops is the model; FlashMLA's tests for the paging hostility).
 *
 * Backends are rows of a table (`backends` below): the CPU reference ops on
 * the calling thread ("cpu"), the same on a pool of 3 threads ("cpu-pool3",
 * which must also equal "cpu" bit for bit). A new backend (CUDA) is one more
 * row: adapters that take the same params structs over host memory, copy to
 * the device, run, copy back; a NULL entry skips an op it lacks.
 *
 * Ops and their references:
 *   MLA_ABSORB   q_lat = W_uk^T q_nope per head, q_pe copied           NMSE
 *   MLA_ATTN     latent attention over the paged cache, softmax in double NMSE
 *   MLA_EXPAND   W_uv o_lat per head                                   NMSE
 *   MLA          absorb -> attn -> expand of the backend against the
 *                EXPANDED attention: per-head keys [W_uk latent | k_pe],
 *                values W_uv latent (checks the absorption itself)     NMSE
 *   DSA_SELECT   brute-force scores + stable sort                      exact
 *   MOE_ROUTE    sigmoid, bias for the choice, group-limited top-k     ids exact, weights max rel
 *   MOE_EXPERTS  sum_k w_k down(silu(gate x) * up x)                   NMSE
 *   RMS_NORM, LAYER_NORM, ROPE (interleaved, NeoX), ROPE_ANGLES        NMSE / max abs
 *   LINEAR       x W^T (F32, BF16, FP8 4x8 and 128x128 blocks); the cuda
 *                row against x as linear.h quantises it (BF16 rounding,
 *                FP8 1x128 groups), its plain FP8 kernel against cuBLASLt NMSE
 *
 * Hostile inputs: odd head counts, widths that are not multiples of 8,
 * contexts across block boundaries, block tables shuffled over a pool with
 * spare blocks, every cache slot that must not be read (future positions,
 * unselected positions, spare blocks, unused block-table entries) NaN,
 * selections with -1 padding, exact ties in indexer scores and router
 * values, outputs followed by NaN canaries that must survive, workspaces
 * misaligned and filled with NaN bytes.
 *
 * Prints one line per (op, case, backend) with the measured error and the
 * tolerance; exits 1 if any check fails.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/threadpool.h"
#include "core/util.h"
#include "cpu/ref_ops.h"
#ifndef GLM_TEST_CUDA
#define GLM_TEST_CUDA 0
#endif
#if GLM_TEST_CUDA
#include "tests/backend/cuda_row.h"
#endif

/* ---- tolerances (for float32 backends; a backend row may scale them) ---------------
 * Measured on the CPU rows: see the printed errors; the tolerances leave room
 * for another summation order (GPU reductions), never for a wrong formula: a
 * wrong scale, epsilon, missing bias or a slot off by one moves NMSE to 1e-3
 * or more. */
#define TOL_NMSE 1e-10        /* float32 compute against double: NMSE */
#define TOL_WEIGHT_REL 2e-6   /* MoE routing weights: max relative error */
#define TOL_ANGLE_ABS 2e-6    /* RoPE cos/sin tables: max absolute error */
#define DSA_BAND_REL 1e-5     /* real-valued DSA scores this close to the k-th are ambiguous */
#define ROUTE_GAP_REL 1e-5    /* router cases redraw values this close unless exactly tied */

/* ---- randomness ------------------------------------------------------------------- */

typedef struct {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r) { return glm_splitmix64(&r->s); }
static double rng_unit(rng *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }
static int rng_int(rng *r, int lo, int hi) { return lo + (int)(rng_next(r) % (uint64_t)(hi - lo + 1)); }

static double rng_normal(rng *r)
{
    double u = rng_unit(r), v = rng_unit(r);
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

static void fill_normal(rng *r, float *x, size_t n, double sd)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(rng_normal(r) * sd);
}

static void shuffle_i32(rng *r, int32_t *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = rng_int(r, 0, i);
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* Rounds x to bf16 values in place (the cache a BF16 backend holds, read exactly by the references). */
static void round_bf16(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = glm_bf16_to_f32(glm_f32_to_bf16(x[i]));
}

/* ---- NaN canaries ----------------------------------------------------------------- */

#define GUARD 16
#define CANARY_BITS 0x7fc0deadu

static float canary(void)
{
    uint32_t u = CANARY_BITS;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* n floats followed by GUARD canaries, all canaries at first. */
static float *out_f32(size_t n)
{
    float *p = glm_malloc(sizeof(float) * (n + GUARD));
    for (size_t i = 0; i < n + GUARD; i++)
        p[i] = canary();
    return p;
}

static int32_t *out_i32(size_t n)
{
    int32_t *p = glm_malloc(sizeof(int32_t) * (n + GUARD));
    for (size_t i = 0; i < n + GUARD; i++)
        p[i] = (int32_t)0x5eadbeef;
    return p;
}

static int guard_f32_ok(const float *p, size_t n)
{
    for (size_t i = n; i < n + GUARD; i++) {
        uint32_t u;
        memcpy(&u, p + i, sizeof u);
        if (u != CANARY_BITS)
            return 0;
    }
    return 1;
}

static int guard_i32_ok(const int32_t *p, size_t n)
{
    for (size_t i = n; i < n + GUARD; i++)
        if (p[i] != (int32_t)0x5eadbeef)
            return 0;
    return 1;
}

/* ---- error measures --------------------------------------------------------------- */

/* Normalised mean squared error sum (a - r)^2 / sum r^2; +inf if a has a non-finite value. */
static double nmse(const float *a, const double *r, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]))
            return INFINITY;
        double d = a[i] - r[i];
        num += d * d;
        den += r[i] * r[i];
    }
    return den > 0 ? num / den : num;
}

/* ---- reporting -------------------------------------------------------------------- */

static int n_checks, n_failed;

static void report(const char *op, const char *desc, const char *be, const char *measure, double err,
                   double tol, int ok)
{
    n_checks++;
    if (!ok)
        n_failed++;
    printf("  %-12s %-58s %-10s %s = %-9.3g (tol %-7.2g) %s\n", op, desc, be, measure, err, tol,
           ok ? "OK" : "FAIL");
}

/* an extra condition that has no number: canaries, bitwise equality */
static void report_flag(const char *op, const char *desc, const char *be, const char *what, int ok)
{
    n_checks++;
    if (!ok)
        n_failed++;
    printf("  %-12s %-58s %-10s %-38s %s\n", op, desc, be, what, ok ? "OK" : "FAIL");
}

/* ---- backends --------------------------------------------------------------------- */

typedef struct {
    const char *name;
    int bitwise_with_first;   /* must equal backends[0] bit for bit */
    double tol_scale;         /* multiplies TOL_NMSE, TOL_WEIGHT_REL, TOL_ANGLE_ABS */
    void *ctx;                /* set by init */
    void *(*init)(void);
    void (*fini)(void *ctx);
    void (*mla_absorb)(void *ctx, const glm_ref_mla_absorb_params *p);
    void (*mla_attn)(void *ctx, const glm_ref_mla_attn_params *p);
    void (*mla_expand)(void *ctx, const glm_ref_mla_expand_params *p);
    void (*dsa_select)(void *ctx, const glm_ref_dsa_params *p);
    void (*moe_route)(void *ctx, const glm_ref_moe_route_params *p);
    void (*moe_experts)(void *ctx, const glm_ref_moe_experts_params *p);
    void (*rmsnorm)(void *ctx, const glm_ref_norm_params *p);
    void (*layernorm)(void *ctx, const glm_ref_norm_params *p);
    void (*rope_angles)(void *ctx, const glm_ref_rope_angles_params *p);
    void (*rope)(void *ctx, const glm_ref_rope_params *p);
    /* y[n, n_rows] = x[n, ldx] w[row0:row0+n_rows]^T; force_plain: a backend's plain kernel instead
     * of its library GEMM; *path, *repeat_ok: what ran and whether a repeat ran from the library
     * cache (cuda_row.h; a CPU row leaves them) */
    void (*linear)(void *ctx, const glm_weight *w, int row0, int n_rows, const float *x, int ldx, int n, float *y,
                   int ldy, int force_plain, int *path, int *repeat_ok);
} backend;

/* CPU rows: ctx is the pool (NULL = calling thread). The workspace is handed
 * over misaligned by 3 bytes and filled with NaN bytes. */
static void *ws_get(size_t size, void **base)
{
    *base = glm_malloc(size + 3);
    memset(*base, 0xff, size + 3);
    return (char *)*base + 3;
}

#define CPU_WS_ADAPTER(name, ptype, wsfn, opfn)                                     \
    static void name(void *ctx, const ptype *p)                                      \
    {                                                                                \
        glm_pool *pool = ctx;                                                        \
        size_t size = wsfn(p, glm_pool_size(pool));                                  \
        void *base, *ws = ws_get(size, &base);                                       \
        opfn(pool, p, ws, size);                                                     \
        free(base);                                                                  \
    }

CPU_WS_ADAPTER(cpu_mla_absorb, glm_ref_mla_absorb_params, glm_ref_mla_absorb_workspace, glm_ref_mla_absorb)
CPU_WS_ADAPTER(cpu_mla_attn, glm_ref_mla_attn_params, glm_ref_mla_attn_workspace, glm_ref_mla_attn)
CPU_WS_ADAPTER(cpu_mla_expand, glm_ref_mla_expand_params, glm_ref_mla_expand_workspace, glm_ref_mla_expand)
CPU_WS_ADAPTER(cpu_dsa_select, glm_ref_dsa_params, glm_ref_dsa_workspace, glm_ref_dsa_select)
CPU_WS_ADAPTER(cpu_moe_experts, glm_ref_moe_experts_params, glm_ref_moe_experts_workspace,
               glm_ref_moe_experts)

static void cpu_moe_route(void *ctx, const glm_ref_moe_route_params *p) { glm_ref_moe_route(ctx, p); }
static void cpu_rmsnorm(void *ctx, const glm_ref_norm_params *p) { glm_ref_rmsnorm(ctx, p); }
static void cpu_layernorm(void *ctx, const glm_ref_norm_params *p) { glm_ref_layernorm(ctx, p); }
static void cpu_rope_angles(void *ctx, const glm_ref_rope_angles_params *p) { glm_ref_rope_angles(p); }
static void cpu_rope(void *ctx, const glm_ref_rope_params *p) { glm_ref_rope(ctx, p); }

static void cpu_linear(void *ctx, const glm_weight *w, int row0, int n_rows, const float *x, int ldx, int n, float *y,
                       int ldy, int force_plain, int *path, int *repeat_ok)
{
    glm_pool *pool = ctx;
    if (pool)
        glm_pool_reserve(pool, glm_matmul_scratch_bytes(w->cols));
    glm_matmul_job job = {w, row0, n_rows, x, ldx, NULL, n, y, ldy, 0};
    glm_matmul_jobs(pool, &job, 1);
}

static void *cpu_init_serial(void) { return NULL; }
static void *cpu_init_pool3(void) { return glm_pool_create(3); }
static void cpu_fini(void *ctx) { glm_pool_free(ctx); }

#define CPU_OPS                                                                          \
    cpu_mla_absorb, cpu_mla_attn, cpu_mla_expand, cpu_dsa_select, cpu_moe_route, cpu_moe_experts, \
        cpu_rmsnorm, cpu_layernorm, cpu_rope_angles, cpu_rope, cpu_linear

#if GLM_TEST_CUDA
/* The CUDA row (cuda_row.h): its ops are filled in main; a NULL one is skipped. */
static void *cuda_init(void) { return NULL; }
static void cuda_fini(void *ctx) {}
#endif

static backend backends[] = {
    {"cpu", 0, 1.0, NULL, cpu_init_serial, cpu_fini, CPU_OPS},
    {"cpu-pool3", 1, 1.0, NULL, cpu_init_pool3, cpu_fini, CPU_OPS},
#if GLM_TEST_CUDA
    /* float32 kernels in another summation order: the CPU's tolerances */
    {"cuda", 0, 1.0, NULL, cuda_init, cuda_fini, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
#endif
};
#define N_BACKENDS ((int)(sizeof backends / sizeof backends[0]))

/* Compares backend b's float output with backends[0]'s when b must be bitwise equal. */
static void check_bitwise(const char *op, const char *desc, int b, const void *out, const void *first,
                          size_t bytes)
{
    if (b == 0 || !backends[b].bitwise_with_first)
        return;
    report_flag(op, desc, backends[b].name, "bitwise == cpu", memcmp(out, first, bytes) == 0);
}

/* Keeps backends[0]'s output in *first; a later row's output is compared with it
 * (when the row must be bitwise equal) and freed. */
static void keep_first(const char *op, const char *desc, int b, void *out, void **first, size_t bytes)
{
    if (b == 0) {
        *first = out;
        return;
    }
    check_bitwise(op, desc, b, out, *first, bytes);
    free(out);
}

/* ---- weights ---------------------------------------------------------------------- */

/* A weight [rows, cols] in dtype with normal(0, sd) values, and its exact float64 copy
 * decoded here (not through dtype.c). FP8 uses 4 x 8 blocks of random scales unless the
 * block shape is given (weight_make_blocks). */
typedef struct {
    glm_weight w;
    void *data;
    float *scale;
    double *ref; /* [rows, cols] */
} test_weight;

static double e4m3_decode(uint8_t b)
{
    int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    double v = e == 0 ? ldexp(m / 8.0, -6) : ldexp(1.0 + m / 8.0, e - 7);
    return s ? -v : v;
}

/* FP8 with br x bc blocks (the LINEAR tests' 128 x 128 as in the checkpoints). */
static void weight_make_blocks(test_weight *tw, rng *r, glm_dtype dt, int rows, int cols, double sd, int br,
                               int bc)
{
    size_t n = (size_t)rows * cols;
    memset(tw, 0, sizeof *tw);
    tw->ref = glm_malloc(sizeof(double) * n);
    tw->w.dtype = dt;
    tw->w.rows = rows;
    tw->w.cols = cols;
    if (dt == GLM_DTYPE_F32) {
        float *d = glm_malloc(sizeof(float) * n);
        fill_normal(r, d, n, sd);
        for (size_t i = 0; i < n; i++)
            tw->ref[i] = d[i];
        tw->data = d;
    } else if (dt == GLM_DTYPE_BF16) {
        uint16_t *d = glm_malloc(sizeof(uint16_t) * n);
        for (size_t i = 0; i < n; i++) {
            d[i] = glm_f32_to_bf16((float)(rng_normal(r) * sd));
            uint32_t u = (uint32_t)d[i] << 16;
            float f;
            memcpy(&f, &u, sizeof f);
            tw->ref[i] = f;
        }
        tw->data = d;
    } else {
        GLM_ASSERT(dt == GLM_DTYPE_F8_E4M3);
        int nbr = (rows + br - 1) / br, nbc = (cols + bc - 1) / bc;
        uint8_t *d = glm_malloc(n);
        tw->scale = glm_malloc(sizeof(float) * (size_t)nbr * nbc);
        for (int i = 0; i < nbr * nbc; i++)
            tw->scale[i] = (float)(sd * (0.05 + 0.1 * rng_unit(r)));
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) {
                uint8_t b;
                do
                    b = (uint8_t)rng_int(r, 0, 255);
                while ((b & 0x7f) == 0x7f || ((b >> 3) & 15) > 11); /* no NaN, |v| < 2^5 */
                d[(size_t)i * cols + j] = b;
                tw->ref[(size_t)i * cols + j] = e4m3_decode(b) * tw->scale[(i / br) * nbc + j / bc];
            }
        tw->data = d;
        tw->w.scale = tw->scale;
        tw->w.block_r = br;
        tw->w.block_c = bc;
    }
    tw->w.data = tw->data;
}

static void weight_make(test_weight *tw, rng *r, glm_dtype dt, int rows, int cols, double sd)
{
    weight_make_blocks(tw, r, dt, rows, cols, sd, 4, 8);
}

static void weight_free(test_weight *tw)
{
    free(tw->data);
    free(tw->scale);
    free(tw->ref);
}

/* ---- paged caches ----------------------------------------------------------------- */

#define MAX_SEQS 8

/* Sequences with contexts ctx[s], whose last qlen[s] tokens are the batch's
 * tokens (back to back), paged over shuffled blocks with spares. */
typedef struct {
    int n_seqs, block_size, max_blocks, num_blocks;
    int ctx[MAX_SEQS], qlen[MAX_SEQS];
    int n_tokens, max_ctx;
    int32_t *bt;        /* [n_seqs, max_blocks] */
    int32_t *seq_of;    /* [n_tokens] */
    int32_t *pos;       /* [n_tokens] */
} paged;

static void paged_make(paged *pg, rng *r, int n_seqs, const int *ctx, const int *qlen, int block_size)
{
    memset(pg, 0, sizeof *pg);
    GLM_ASSERT(n_seqs <= MAX_SEQS);
    pg->n_seqs = n_seqs;
    pg->block_size = block_size;
    int need = 0, maxb = 0;
    for (int s = 0; s < n_seqs; s++) {
        pg->ctx[s] = ctx[s];
        pg->qlen[s] = qlen[s];
        GLM_ASSERT(qlen[s] >= 1 && qlen[s] <= ctx[s]);
        int nb = (ctx[s] + block_size - 1) / block_size;
        need += nb;
        maxb = GLM_MAX(maxb, nb);
        pg->n_tokens += qlen[s];
        pg->max_ctx = GLM_MAX(pg->max_ctx, ctx[s]);
    }
    pg->max_blocks = maxb + 2;        /* unused entries at the end of every row */
    pg->num_blocks = need + 3;        /* spare blocks: NaN, pointed to by unused entries */
    int32_t *ids = glm_malloc(sizeof(int32_t) * (size_t)pg->num_blocks);
    for (int i = 0; i < pg->num_blocks; i++)
        ids[i] = i;
    shuffle_i32(r, ids, pg->num_blocks);
    pg->bt = glm_malloc(sizeof(int32_t) * (size_t)n_seqs * pg->max_blocks);
    int next = 0;
    for (int s = 0; s < n_seqs; s++) {
        int nb = (ctx[s] + block_size - 1) / block_size;
        for (int j = 0; j < pg->max_blocks; j++)
            pg->bt[s * pg->max_blocks + j] = j < nb ? ids[next++] : ids[need + rng_int(r, 0, 2)];
    }
    free(ids);
    pg->seq_of = glm_malloc(sizeof(int32_t) * (size_t)pg->n_tokens);
    pg->pos = glm_malloc(sizeof(int32_t) * (size_t)pg->n_tokens);
    int t = 0;
    for (int s = 0; s < n_seqs; s++)
        for (int i = 0; i < qlen[s]; i++, t++) {
            pg->seq_of[t] = s;
            pg->pos[t] = ctx[s] - qlen[s] + i;
        }
}

static void paged_free(paged *pg)
{
    free(pg->bt);
    free(pg->seq_of);
    free(pg->pos);
}

static int64_t paged_slot(const paged *pg, int s, int p)
{
    return (int64_t)pg->bt[s * pg->max_blocks + p / pg->block_size] * pg->block_size + p % pg->block_size;
}

static glm_ref_paging paged_params(const paged *pg)
{
    return (glm_ref_paging){pg->bt, pg->max_blocks, pg->block_size,
                            (int64_t)pg->num_blocks * pg->block_size, pg->seq_of, pg->pos};
}

/* The cache [slots, dim]: every slot NaN, then data[s][p] (rows of dim, [n_seqs,
 * max_ctx, dim]) written where needed[s * max_ctx + p]. */
static float *paged_cache(const paged *pg, const float *data, int dim, const uint8_t *needed)
{
    size_t n = (size_t)pg->num_blocks * pg->block_size * dim;
    float *c = glm_malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        c[i] = NAN;
    for (int s = 0; s < pg->n_seqs; s++)
        for (int p = 0; p < pg->ctx[s]; p++)
            if (needed[s * pg->max_ctx + p])
                memcpy(c + (size_t)paged_slot(pg, s, p) * dim, data + ((size_t)s * pg->max_ctx + p) * dim,
                       sizeof(float) * (size_t)dim);
    return c;
}

/* ---- MLA -------------------------------------------------------------------------- */

typedef struct {
    int heads, nope, rope, kv_lora, v;
    int block_size, n_seqs;
    int ctx[MAX_SEQS], qlen[MAX_SEQS];
    int topk;               /* 0: no selection (dense causal) */
    int sparse_rows;        /* selections of fewer than topk positions (-1 padded) */
    glm_dtype dt;
    int cache_bf16;         /* cache values rounded to bf16 (a backend may keep the cache in BF16) */
} mla_case;

/* A selection per token: 0..pos (+ -1s) while pos + 1 <= topk, else topk (or
 * fewer, when sparse_rows) distinct random positions <= pos, ascending. */
static void make_selection(rng *r, const paged *pg, int topk, int sparse_rows, int32_t *sel)
{
    uint8_t *mark = glm_malloc((size_t)pg->max_ctx);
    for (int t = 0; t < pg->n_tokens; t++) {
        int pos = pg->pos[t];
        int32_t *row = sel + (size_t)t * topk;
        if (pos + 1 <= topk) {
            for (int j = 0; j < topk; j++)
                row[j] = j <= pos ? j : -1;
            continue;
        }
        int want = sparse_rows ? rng_int(r, 1, topk) : topk;
        memset(mark, 0, (size_t)pg->max_ctx);
        for (int got = 0; got < want;) {
            int p = rng_int(r, 0, pos);
            if (!mark[p]) {
                mark[p] = 1;
                got++;
            }
        }
        int j = 0;
        for (int p = 0; p <= pos; p++)
            if (mark[p])
                row[j++] = p;
        while (j < topk)
            row[j++] = -1;
    }
    free(mark);
}

/* Double reference of latent attention for (t, h): o[R] from q_lat and the unpaged data. */
static void ref_latent_attn(const mla_case *mc, const paged *pg, const float *lat, const float *ql,
                            const int32_t *sel_row, int t, float scale, double *o)
{
    int R = mc->kv_lora, ld = R + mc->rope, s = pg->seq_of[t], pos = pg->pos[t];
    int nk = sel_row ? mc->topk : pos + 1;
    double *sc = glm_malloc(sizeof(double) * (size_t)(nk + 1));
    double mx = -INFINITY;
    for (int j = 0; j < nk; j++) {
        int p = sel_row ? sel_row[j] : j;
        sc[j] = -INFINITY;
        if (p < 0)
            continue;
        const float *k = lat + ((size_t)s * pg->max_ctx + p) * ld;
        double d = 0;
        for (int i = 0; i < ld; i++)
            d += (double)ql[i] * k[i];
        sc[j] = d * scale;
        mx = fmax(mx, sc[j]);
    }
    double sum = 0;
    for (int j = 0; j < nk; j++) {
        sc[j] = isinf(sc[j]) ? 0 : exp(sc[j] - mx);
        sum += sc[j];
    }
    for (int r = 0; r < R; r++)
        o[r] = 0;
    for (int j = 0; j < nk; j++) {
        int p = sel_row ? sel_row[j] : j;
        if (p < 0)
            continue;
        const float *k = lat + ((size_t)s * pg->max_ctx + p) * ld;
        for (int r = 0; r < R; r++)
            o[r] += sc[j] / sum * k[r];
    }
    free(sc);
}

static void test_mla(const mla_case *mc, uint64_t seed)
{
    rng r = {seed};
    paged pg;
    paged_make(&pg, &r, mc->n_seqs, mc->ctx, mc->qlen, mc->block_size);
    int n = pg.n_tokens, H = mc->heads, nope = mc->nope, rope = mc->rope, R = mc->kv_lora, V = mc->v;
    int qd = nope + rope, ld = R + rope;
    float scale = 1.0f / sqrtf((float)qd);
    char desc[160];
    snprintf(desc, sizeof desc, "n=%d,heads=%d,nope=%d,rope=%d,R=%d,v=%d,bs=%d,%s,%s%s", n, H, nope, rope, R,
             V, mc->block_size, glm_dtype_name(mc->dt), mc->topk ? "topk=" : "dense",
             mc->topk ? (mc->sparse_rows ? "part" : "full") : "");
    if (mc->topk) {
        size_t l = strlen(desc);
        snprintf(desc + l, sizeof desc - l, "%d", mc->topk);
    }
    if (mc->cache_bf16) {
        size_t l = strlen(desc);
        snprintf(desc + l, sizeof desc - l, ",cache=bf16");
    }

    test_weight kvb;
    weight_make(&kvb, &r, mc->dt, H * (nope + V), R, 1.0 / sqrt((double)R));
    float *q = glm_malloc(sizeof(float) * (size_t)n * H * qd);
    fill_normal(&r, q, (size_t)n * H * qd, 1.0);
    float *lat = glm_malloc(sizeof(float) * (size_t)mc->n_seqs * pg.max_ctx * ld);
    fill_normal(&r, lat, (size_t)mc->n_seqs * pg.max_ctx * ld, 1.0);
    if (mc->cache_bf16)
        round_bf16(lat, (size_t)mc->n_seqs * pg.max_ctx * ld);
    int32_t *sel = NULL;
    uint8_t *needed = glm_calloc((size_t)mc->n_seqs * pg.max_ctx, 1);
    if (mc->topk) {
        sel = glm_malloc(sizeof(int32_t) * (size_t)n * mc->topk);
        make_selection(&r, &pg, mc->topk, mc->sparse_rows, sel);
        for (int t = 0; t < n; t++)
            for (int j = 0; j < mc->topk; j++)
                if (sel[(size_t)t * mc->topk + j] >= 0)
                    needed[pg.seq_of[t] * pg.max_ctx + sel[(size_t)t * mc->topk + j]] = 1;
    } else {
        for (int t = 0; t < n; t++)
            for (int p = 0; p <= pg.pos[t]; p++)
                needed[pg.seq_of[t] * pg.max_ctx + p] = 1;
    }
    float *cache = paged_cache(&pg, lat, ld, needed);

    /* MLA_ABSORB */
    size_t n_ql = (size_t)n * H * ld;
    double *ref_ql = glm_malloc(sizeof(double) * n_ql);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < H; h++) {
            const float *qn = q + ((size_t)t * H + h) * qd;
            double *o = ref_ql + ((size_t)t * H + h) * ld;
            for (int c = 0; c < R; c++) {
                double acc = 0;
                for (int d = 0; d < nope; d++)
                    acc += kvb.ref[((size_t)h * (nope + V) + d) * R + c] * qn[d];
                o[c] = acc;
            }
            for (int i = 0; i < rope; i++)
                o[R + i] = qn[nope + i];
        }
    float *first = NULL;
    for (int b = 0; b < N_BACKENDS; b++) {
        if (!backends[b].mla_absorb)
            continue;
        float *out = out_f32(n_ql);
        glm_ref_mla_absorb_params p = {n, H, nope, rope, R, V, &kvb.w, q, out};
        backends[b].mla_absorb(backends[b].ctx, &p);
        double e = nmse(out, ref_ql, n_ql), tol = TOL_NMSE * backends[b].tol_scale;
        report("MLA_ABSORB", desc, backends[b].name, "NMSE", e, tol, e <= tol && guard_f32_ok(out, n_ql));
        keep_first("MLA_ABSORB", desc, b, out, (void **)&first, sizeof(float) * n_ql);
    }
    free(first);

    /* MLA_ATTN on random absorbed queries */
    float *ql = glm_malloc(sizeof(float) * n_ql);
    fill_normal(&r, ql, n_ql, 1.0);
    size_t n_ol = (size_t)n * H * R;
    double *ref_ol = glm_malloc(sizeof(double) * n_ol);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < H; h++)
            ref_latent_attn(mc, &pg, lat, ql + ((size_t)t * H + h) * ld, sel ? sel + (size_t)t * mc->topk : NULL,
                            t, scale, ref_ol + ((size_t)t * H + h) * R);
    first = NULL;
    for (int b = 0; b < N_BACKENDS; b++) {
        if (!backends[b].mla_attn)
            continue;
        float *out = out_f32(n_ol);
        glm_ref_mla_attn_params p = {n, H, R, rope, scale, ql, cache, paged_params(&pg), sel, mc->topk,
                                     pg.max_ctx, out};
        backends[b].mla_attn(backends[b].ctx, &p);
        double e = nmse(out, ref_ol, n_ol), tol = TOL_NMSE * backends[b].tol_scale;
        report("MLA_ATTN", desc, backends[b].name, "NMSE", e, tol, e <= tol && guard_f32_ok(out, n_ol));
        keep_first("MLA_ATTN", desc, b, out, (void **)&first, sizeof(float) * n_ol);
    }
    free(first);

    /* MLA_EXPAND on random latent outputs */
    float *ol = glm_malloc(sizeof(float) * n_ol);
    fill_normal(&r, ol, n_ol, 1.0);
    size_t n_out = (size_t)n * H * V;
    double *ref_out = glm_malloc(sizeof(double) * n_out);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < H; h++)
            for (int e = 0; e < V; e++) {
                double acc = 0;
                for (int c = 0; c < R; c++)
                    acc += kvb.ref[((size_t)h * (nope + V) + nope + e) * R + c] *
                           ol[((size_t)t * H + h) * R + c];
                ref_out[((size_t)t * H + h) * V + e] = acc;
            }
    first = NULL;
    for (int b = 0; b < N_BACKENDS; b++) {
        if (!backends[b].mla_expand)
            continue;
        float *out = out_f32(n_out);
        glm_ref_mla_expand_params p = {n, H, nope, R, V, &kvb.w, ol, out};
        backends[b].mla_expand(backends[b].ctx, &p);
        double e = nmse(out, ref_out, n_out), tol = TOL_NMSE * backends[b].tol_scale;
        report("MLA_EXPAND", desc, backends[b].name, "NMSE", e, tol, e <= tol && guard_f32_ok(out, n_out));
        keep_first("MLA_EXPAND", desc, b, out, (void **)&first, sizeof(float) * n_out);
    }
    free(first);

    /* MLA: the backend's absorb -> attn -> expand against expanded attention:
     * per head k_j = [W_uk latent_j | k_pe_j], v_j = W_uv latent_j. */
    for (int t = 0; t < n; t++) {
        int s = pg.seq_of[t], pos = pg.pos[t];
        const int32_t *row = sel ? sel + (size_t)t * mc->topk : NULL;
        int nk = row ? mc->topk : pos + 1;
        double *sc = glm_malloc(sizeof(double) * (size_t)nk);
        for (int h = 0; h < H; h++) {
            const float *qh = q + ((size_t)t * H + h) * qd;
            const double *wk = kvb.ref + (size_t)h * (nope + V) * R; /* [nope, R] */
            const double *wv = wk + (size_t)nope * R;                /* [V, R] */
            double mx = -INFINITY;
            for (int j = 0; j < nk; j++) {
                int p = row ? row[j] : j;
                sc[j] = -INFINITY;
                if (p < 0)
                    continue;
                const float *lj = lat + ((size_t)s * pg.max_ctx + p) * ld;
                double d = 0;
                for (int i = 0; i < nope; i++) {
                    double k = 0;
                    for (int c = 0; c < R; c++)
                        k += wk[(size_t)i * R + c] * lj[c];
                    d += qh[i] * k;
                }
                for (int i = 0; i < rope; i++)
                    d += (double)qh[nope + i] * lj[R + i];
                sc[j] = d * scale;
                mx = fmax(mx, sc[j]);
            }
            double sum = 0;
            for (int j = 0; j < nk; j++) {
                sc[j] = isinf(sc[j]) ? 0 : exp(sc[j] - mx);
                sum += sc[j];
            }
            double *o = ref_out + ((size_t)t * H + h) * V;
            for (int e = 0; e < V; e++)
                o[e] = 0;
            for (int j = 0; j < nk; j++) {
                int p = row ? row[j] : j;
                if (p < 0)
                    continue;
                const float *lj = lat + ((size_t)s * pg.max_ctx + p) * ld;
                for (int e = 0; e < V; e++) {
                    double v = 0;
                    for (int c = 0; c < R; c++)
                        v += wv[(size_t)e * R + c] * lj[c];
                    o[e] += sc[j] / sum * v;
                }
            }
        }
        free(sc);
    }
    first = NULL;
    for (int b = 0; b < N_BACKENDS; b++) {
        const backend *be = &backends[b];
        if (!be->mla_absorb || !be->mla_attn || !be->mla_expand)
            continue;
        float *qlb = out_f32(n_ql), *olb = out_f32(n_ol), *out = out_f32(n_out);
        glm_ref_mla_absorb_params pa = {n, H, nope, rope, R, V, &kvb.w, q, qlb};
        be->mla_absorb(be->ctx, &pa);
        glm_ref_mla_attn_params pt = {n, H, R, rope, scale, qlb, cache, paged_params(&pg), sel, mc->topk,
                                      pg.max_ctx, olb};
        be->mla_attn(be->ctx, &pt);
        glm_ref_mla_expand_params pe = {n, H, nope, R, V, &kvb.w, olb, out};
        be->mla_expand(be->ctx, &pe);
        double e = nmse(out, ref_out, n_out), tol = TOL_NMSE * be->tol_scale;
        report("MLA", desc, be->name, "NMSE vs expanded", e, tol, e <= tol && guard_f32_ok(out, n_out));
        free(qlb);
        free(olb);
        keep_first("MLA", desc, b, out, (void **)&first, sizeof(float) * n_out);
    }
    free(first);

    weight_free(&kvb);
    free(q);
    free(lat);
    free(sel);
    free(needed);
    free(cache);
    free(ref_ql);
    free(ql);
    free(ref_ol);
    free(ol);
    free(ref_out);
    paged_free(&pg);
}

/* ---- DSA -------------------------------------------------------------------------- */

typedef struct {
    int heads, dim, topk, block_size, n_seqs;
    int ctx[MAX_SEQS], qlen[MAX_SEQS];
    int exact; /* small integer data: every score exact in any order, many exact ties */
    int cache_bf16; /* keys rounded to bf16 (a backend may keep the cache in BF16) */
} dsa_case;

typedef struct {
    double v;
    int p;
} scored;

static int scored_cmp(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return (x->p > y->p) - (x->p < y->p);
}

/* Mismatches of one selection row against the reference: format errors, and
 * positions chosen or left out against the reference outside the band of
 * scores ambiguous for float32. *ambiguous counts the band. */
static int dsa_row_mismatch(const int32_t *row, int K, int pos, const double *score, double band,
                            int *ambiguous, int *ties)
{
    int bad = 0;
    if (pos + 1 <= K) {
        for (int j = 0; j < K; j++)
            bad += row[j] != (j <= pos ? j : -1);
        return bad;
    }
    /* format: K distinct ascending positions in [0, pos] */
    for (int j = 0; j < K; j++)
        if (row[j] < 0 || row[j] > pos || (j > 0 && row[j] <= row[j - 1]))
            return K;
    scored *a = glm_malloc(sizeof(scored) * (size_t)(pos + 1));
    for (int p = 0; p <= pos; p++)
        a[p] = (scored){score[p], p};
    qsort(a, (size_t)pos + 1, sizeof *a, scored_cmp); /* stable by construction: ties by position */
    double thr = a[K - 1].v;
    *ties += a[K].v == thr; /* the k-th place is decided by position */
    uint8_t *want = glm_calloc((size_t)pos + 1, 1), *got = glm_calloc((size_t)pos + 1, 1);
    for (int j = 0; j < K; j++) {
        want[a[j].p] = 1;
        got[row[j]] = 1;
    }
    for (int p = 0; p <= pos; p++) {
        if (want[p] == got[p])
            continue;
        if (band > 0 && fabs(score[p] - thr) <= band)
            (*ambiguous)++;
        else
            bad++;
    }
    free(a);
    free(want);
    free(got);
    return bad;
}

static void test_dsa(const dsa_case *dc, uint64_t seed)
{
    rng r = {seed};
    paged pg;
    paged_make(&pg, &r, dc->n_seqs, dc->ctx, dc->qlen, dc->block_size);
    int n = pg.n_tokens, IH = dc->heads, D = dc->dim, K = dc->topk;
    float scale = 1.0f / sqrtf((float)D);
    char desc[160];
    snprintf(desc, sizeof desc, "n=%d,heads=%d,dim=%d,topk=%d,bs=%d,max_ctx=%d,%s%s", n, IH, D, K,
             dc->block_size, pg.max_ctx, dc->exact ? "ties" : "real", dc->cache_bf16 ? ",cache=bf16" : "");

    float *q = glm_malloc(sizeof(float) * (size_t)n * IH * D);
    float *w = glm_malloc(sizeof(float) * (size_t)n * IH);
    size_t nk = (size_t)dc->n_seqs * pg.max_ctx * D;
    float *keys = glm_malloc(sizeof(float) * nk);
    if (dc->exact) {
        /* D a power of 4 keeps scale a power of two: every product and sum exact */
        GLM_ASSERT(scale * sqrtf((float)D) == 1.0f && (D & (D - 1)) == 0);
        static const float wv[] = {-1.0f, 0.5f, 1.0f, 2.0f};
        for (size_t i = 0; i < (size_t)n * IH * D; i++)
            q[i] = (float)rng_int(&r, -1, 1);
        for (size_t i = 0; i < nk; i++)
            keys[i] = (float)rng_int(&r, -1, 1);
        for (size_t i = 0; i < (size_t)n * IH; i++)
            w[i] = wv[rng_int(&r, 0, 3)];
    } else {
        fill_normal(&r, q, (size_t)n * IH * D, 1.0);
        fill_normal(&r, keys, nk, 1.0);
        fill_normal(&r, w, (size_t)n * IH, 1.0 / sqrt((double)IH));
    }
    if (dc->cache_bf16)
        round_bf16(keys, nk);
    /* the indexer reads every earlier position: only future slots and spares stay NaN */
    uint8_t *needed = glm_calloc((size_t)dc->n_seqs * pg.max_ctx, 1);
    for (int s = 0; s < dc->n_seqs; s++)
        for (int p = 0; p < pg.ctx[s]; p++)
            needed[s * pg.max_ctx + p] = 1;
    float *cache = paged_cache(&pg, keys, D, needed);

    /* reference scores [n, max_ctx] */
    double *score = glm_malloc(sizeof(double) * (size_t)n * pg.max_ctx);
    for (int t = 0; t < n; t++) {
        int s = pg.seq_of[t];
        for (int p = 0; p <= pg.pos[t]; p++) {
            const float *k = keys + ((size_t)s * pg.max_ctx + p) * D;
            double acc = 0;
            for (int h = 0; h < IH; h++) {
                double d = 0;
                for (int i = 0; i < D; i++)
                    d += (double)q[((size_t)t * IH + h) * D + i] * k[i];
                d *= scale;
                acc += w[(size_t)t * IH + h] * (d > 0 ? d : 0);
            }
            score[(size_t)t * pg.max_ctx + p] = acc;
        }
    }

    int32_t *first = NULL;
    size_t n_sel = (size_t)n * K;
    for (int b = 0; b < N_BACKENDS; b++) {
        if (!backends[b].dsa_select)
            continue;
        int32_t *sel = out_i32(n_sel);
        glm_ref_dsa_params p = {n, IH, D, K, scale, q, w, cache, paged_params(&pg), pg.max_ctx, sel};
        backends[b].dsa_select(backends[b].ctx, &p);
        int bad = 0, amb = 0, ties = 0;
        for (int t = 0; t < n; t++) {
            const double *sc = score + (size_t)t * pg.max_ctx;
            double mx = 0;
            for (int pp = 0; pp <= pg.pos[t]; pp++)
                mx = fmax(mx, fabs(sc[pp]));
            bad += dsa_row_mismatch(sel + (size_t)t * K, K, pg.pos[t], sc, dc->exact ? 0 : DSA_BAND_REL * mx,
                                    &amb, &ties);
        }
        char what[64];
        snprintf(what, sizeof what, "mismatches (%d tied, %d ambiguous)", ties, amb);
        report("DSA_SELECT", desc, backends[b].name, what, bad, 0, bad == 0 && guard_i32_ok(sel, n_sel));
        keep_first("DSA_SELECT", desc, b, sel, (void **)&first, sizeof(int32_t) * n_sel);
    }
    free(first);
    free(q);
    free(w);
    free(keys);
    free(needed);
    free(cache);
    free(score);
    paged_free(&pg);
}

/* ---- MoE routing ------------------------------------------------------------------ */

typedef struct {
    int n, E, G, topk_group, K, norm;
    float scaling;
    int ties; /* logits and biases from small sets: many exact ties */
} route_case;

/* The direct router in double for one token: ids ascending, weights. */
static void ref_route(const route_case *rc, const float *logit, const float *bias, int32_t *ids, double *wts)
{
    int E = rc->E, G = rc->G, per = E / G;
    double *score = glm_malloc(sizeof(double) * (size_t)E);
    scored *ch = glm_malloc(sizeof(scored) * (size_t)E), *gs = glm_malloc(sizeof(scored) * (size_t)G);
    for (int e = 0; e < E; e++) {
        score[e] = 1.0 / (1.0 + exp(-(double)logit[e]));
        ch[e] = (scored){score[e] + bias[e], e};
    }
    for (int g = 0; g < G; g++) {
        scored *grp = glm_malloc(sizeof(scored) * (size_t)per);
        memcpy(grp, ch + g * per, sizeof(scored) * (size_t)per);
        qsort(grp, (size_t)per, sizeof *grp, scored_cmp);
        gs[g] = (scored){per >= 2 ? grp[0].v + grp[1].v : grp[0].v, g};
        free(grp);
    }
    qsort(gs, (size_t)G, sizeof *gs, scored_cmp);
    scored *cand = glm_malloc(sizeof(scored) * (size_t)E);
    int nc = 0;
    for (int k = 0; k < rc->topk_group; k++)
        for (int e = gs[k].p * per; e < (gs[k].p + 1) * per; e++)
            cand[nc++] = ch[e];
    qsort(cand, (size_t)nc, sizeof *cand, scored_cmp);
    uint8_t *on = glm_calloc((size_t)E, 1);
    for (int k = 0; k < rc->K; k++)
        on[cand[k].p] = 1;
    int k = 0;
    double sum = 0;
    for (int e = 0; e < E; e++)
        if (on[e]) {
            ids[k] = e;
            wts[k] = score[e];
            sum += score[e];
            k++;
        }
    for (k = 0; k < rc->K; k++)
        wts[k] = wts[k] / (rc->norm ? sum + 1e-20 : 1.0) * rc->scaling;
    free(score);
    free(ch);
    free(gs);
    free(cand);
    free(on);
}

/* True when two values are close but not equal: float32 may order them
 * differently from double, so such draws are redrawn. */
static int near_tie(const double *v, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (v[i] != v[j] && fabs(v[i] - v[j]) <= ROUTE_GAP_REL * fmax(fabs(v[i]), fabs(v[j])))
                return 1;
    return 0;
}

static int route_ambiguous(const route_case *rc, const float *logit, const float *bias)
{
    int E = rc->E, G = rc->G, per = E / G;
    double *ch = glm_malloc(sizeof(double) * (size_t)E), *gsum = glm_malloc(sizeof(double) * (size_t)G);
    for (int e = 0; e < E; e++)
        ch[e] = 1.0 / (1.0 + exp(-(double)logit[e])) + bias[e];
    for (int g = 0; g < G; g++) {
        double a = -INFINITY, b = -INFINITY;
        for (int e = g * per; e < (g + 1) * per; e++) {
            if (ch[e] > a) {
                b = a;
                a = ch[e];
            } else if (ch[e] > b) {
                b = ch[e];
            }
        }
        gsum[g] = per >= 2 ? a + b : a;
    }
    int amb = near_tie(ch, E) || near_tie(gsum, G);
    free(ch);
    free(gsum);
    return amb;
}

static void test_route(const route_case *rc, uint64_t seed)
{
    rng r = {seed};
    int n = rc->n, E = rc->E, K = rc->K;
    char desc[160];
    snprintf(desc, sizeof desc, "n=%d,E=%d,groups=%d,topk_group=%d,K=%d,norm=%d,scale=%g,%s", n, E, rc->G,
             rc->topk_group, K, rc->norm, rc->scaling, rc->ties ? "ties" : "real");
    float *logits = glm_malloc(sizeof(float) * (size_t)n * E), *bias = glm_malloc(sizeof(float) * (size_t)E);
    for (int e = 0; e < E; e++)
        bias[e] = rc->ties ? (float)(rng_int(&r, 0, 2) * 0.03125) : (float)(rng_normal(&r) * 0.05);
    for (int t = 0; t < n; t++) {
        float *l = logits + (size_t)t * E;
        int tries = 0;
        do {
            for (int e = 0; e < E; e++)
                l[e] = rc->ties ? (float)(rng_int(&r, -3, 3) * 0.5) : (float)(rng_normal(&r) * 2.0);
            GLM_ASSERT(++tries < 1000);
        } while (route_ambiguous(rc, l, bias));
    }
    int32_t *ref_ids = glm_malloc(sizeof(int32_t) * (size_t)n * K);
    double *ref_w = glm_malloc(sizeof(double) * (size_t)n * K);
    for (int t = 0; t < n; t++)
        ref_route(rc, logits + (size_t)t * E, bias, ref_ids + (size_t)t * K, ref_w + (size_t)t * K);

    int32_t *first_ids = NULL;
    float *first_w = NULL;
    size_t nk = (size_t)n * K;
    for (int b = 0; b < N_BACKENDS; b++) {
        if (!backends[b].moe_route)
            continue;
        int32_t *ids = out_i32(nk);
        float *wts = out_f32(nk);
        glm_ref_moe_route_params p = {n, E, rc->G, rc->topk_group, K, rc->norm, rc->scaling, logits, bias,
                                      ids, wts};
        backends[b].moe_route(backends[b].ctx, &p);
        int bad = 0;
        double rel = 0;
        for (size_t i = 0; i < nk; i++) {
            bad += ids[i] != ref_ids[i];
            double e = fabs(wts[i] - ref_w[i]) / fabs(ref_w[i]);
            rel = isfinite(wts[i]) ? fmax(rel, e) : INFINITY;
        }
        const char *be = backends[b].name;
        double tol = TOL_WEIGHT_REL * backends[b].tol_scale;
        report("MOE_ROUTE", desc, be, "id mismatches", bad, 0, bad == 0 && guard_i32_ok(ids, nk));
        report("MOE_ROUTE", desc, be, "weight max rel", rel, tol, rel <= tol && guard_f32_ok(wts, nk));
        keep_first("MOE_ROUTE", desc, b, ids, (void **)&first_ids, sizeof(int32_t) * nk);
        keep_first("MOE_ROUTE", desc, b, wts, (void **)&first_w, sizeof(float) * nk);
    }
    free(first_ids);
    free(first_w);
    free(logits);
    free(bias);
    free(ref_ids);
    free(ref_w);
}

/* A row of NaN router logits (broken numerics upstream) between two good ones: every backend
 * still writes K distinct ascending ids in [0, E) for it, and the good rows are unharmed. Which
 * ids the NaN row gets is not specified. */
static void test_route_nan(uint64_t seed)
{
    rng r = {seed};
    int n = 3, E = 16, G = 4, K = 4;
    const char *desc = "n=3,E=16,groups=4,topk_group=2,K=4,row 1 NaN";
    route_case rc = {n, E, G, 2, K, 1, 2.5f, 0};
    float logits[3 * 16], bias[16];
    for (int e = 0; e < E; e++)
        bias[e] = (float)(rng_normal(&r) * 0.05);
    for (int i = 0; i < n * E; i++)
        logits[i] = i / E == 1 ? NAN : (float)(rng_normal(&r) * 2.0);
    int32_t ref_ids[3 * 4];
    double ref_w[3 * 4];
    ref_route(&rc, logits, bias, ref_ids, ref_w);
    ref_route(&rc, logits + 2 * E, bias, ref_ids + 2 * K, ref_w + 2 * K);
    for (int b = 0; b < N_BACKENDS; b++) {
        if (!backends[b].moe_route)
            continue;
        int32_t *ids = out_i32((size_t)n * K);
        float *wts = out_f32((size_t)n * K);
        glm_ref_moe_route_params p = {n, E, G, 2, K, 1, 2.5f, logits, bias, ids, wts};
        backends[b].moe_route(backends[b].ctx, &p);
        int ok = guard_i32_ok(ids, (size_t)n * K);
        for (int k = 0; k < K; k++) {
            ok &= ids[K + k] >= 0 && ids[K + k] < E && (k == 0 || ids[K + k] > ids[K + k - 1]);
            ok &= ids[k] == ref_ids[k] && ids[2 * K + k] == ref_ids[2 * K + k];
        }
        report_flag("MOE_ROUTE", desc, backends[b].name, "ids valid, good rows exact", ok);
        free(ids);
        free(wts);
    }
}

/* ---- MoE experts ------------------------------------------------------------------ */

typedef struct {
    int n, E, K, H, I;
    glm_dtype dt;
    int skew; /* every token picks among the first K + 1 experts: big groups, idle experts */
    int e0, n_local; /* a tensor-parallel rank's experts [e0, e0 + n_local) (0, 0: all): the others'
                        entries have no data, and out is the rank's share of the sum */
} experts_case;

static void test_experts(const experts_case *xc, uint64_t seed)
{
    rng r = {seed};
    int n = xc->n, E = xc->E, K = xc->K, H = xc->H, I = xc->I;
    char desc[160];
    int e0 = xc->n_local ? xc->e0 : 0, e1 = xc->n_local ? xc->e0 + xc->n_local : E;
    char part[48] = "";
    if (xc->n_local)
        snprintf(part, sizeof part, ",experts [%d,%d)", e0, e1);
    snprintf(desc, sizeof desc, "n=%d,E=%d,K=%d,H=%d,I=%d,%s%s%s", n, E, K, H, I, glm_dtype_name(xc->dt),
             xc->skew ? ",skewed" : "", part);
    test_weight *tw = glm_malloc(sizeof(test_weight) * (size_t)E * 3);
    glm_weight *gate = glm_malloc(sizeof(glm_weight) * (size_t)E);
    glm_weight *up = glm_malloc(sizeof(glm_weight) * (size_t)E);
    glm_weight *down = glm_malloc(sizeof(glm_weight) * (size_t)E);
    for (int e = 0; e < E; e++) {
        weight_make(&tw[3 * e], &r, xc->dt, I, H, 1.0 / sqrt((double)H));
        weight_make(&tw[3 * e + 1], &r, xc->dt, I, H, 1.0 / sqrt((double)H));
        weight_make(&tw[3 * e + 2], &r, xc->dt, H, I, 1.0 / sqrt((double)I));
        gate[e] = tw[3 * e].w;
        up[e] = tw[3 * e + 1].w;
        down[e] = tw[3 * e + 2].w;
        if (e < e0 || e >= e1) /* another rank's */
            memset(&gate[e], 0, sizeof gate[e]), memset(&up[e], 0, sizeof up[e]), memset(&down[e], 0, sizeof down[e]);
    }
    float *x = glm_malloc(sizeof(float) * (size_t)n * H);
    fill_normal(&r, x, (size_t)n * H, 1.0);
    int32_t *ids = glm_malloc(sizeof(int32_t) * (size_t)n * K);
    float *wts = glm_malloc(sizeof(float) * (size_t)n * K);
    uint8_t *on = glm_malloc((size_t)E);
    for (int t = 0; t < n; t++) {
        memset(on, 0, (size_t)E);
        int range = xc->skew ? GLM_MIN(E, K + 1) : E;
        for (int got = 0; got < K;) {
            int e = rng_int(&r, 0, range - 1);
            if (!on[e]) {
                on[e] = 1;
                got++;
            }
        }
        for (int e = 0, k = 0; e < E; e++)
            if (on[e]) {
                ids[t * K + k] = e;
                wts[t * K + k] = (float)(0.1 + rng_unit(&r));
                k++;
            }
    }
    /* reference: out[t] = sum_k w * down(silu(gate x) * up x) */
    size_t n_out = (size_t)n * H;
    double *ref = glm_calloc(n_out, sizeof(double));
    double *act = glm_malloc(sizeof(double) * (size_t)I);
    for (int t = 0; t < n; t++)
        for (int k = 0; k < K; k++) {
            int e = ids[t * K + k];
            if (e < e0 || e >= e1)
                continue;
            const float *xt = x + (size_t)t * H;
            for (int i = 0; i < I; i++) {
                double g = 0, u = 0;
                for (int c = 0; c < H; c++) {
                    g += tw[3 * e].ref[(size_t)i * H + c] * xt[c];
                    u += tw[3 * e + 1].ref[(size_t)i * H + c] * xt[c];
                }
                act[i] = g / (1.0 + exp(-g)) * u;
            }
            for (int c = 0; c < H; c++) {
                double y = 0;
                for (int i = 0; i < I; i++)
                    y += tw[3 * e + 2].ref[(size_t)c * I + i] * act[i];
                ref[(size_t)t * H + c] += wts[t * K + k] * y;
            }
        }
    float *first = NULL;
    for (int b = 0; b < N_BACKENDS; b++) {
        if (!backends[b].moe_experts)
            continue;
        float *out = out_f32(n_out);
        glm_ref_moe_experts_params p = {n, H, I, E, K, gate, up, down, x, ids, wts, out};
        backends[b].moe_experts(backends[b].ctx, &p);
        double e = nmse(out, ref, n_out), tol = TOL_NMSE * backends[b].tol_scale;
        report("MOE_EXPERTS", desc, backends[b].name, "NMSE", e, tol, e <= tol && guard_f32_ok(out, n_out));
        keep_first("MOE_EXPERTS", desc, b, out, (void **)&first, sizeof(float) * n_out);
    }
    free(first);
    for (int i = 0; i < 3 * E; i++)
        weight_free(&tw[i]);
    free(tw);
    free(gate);
    free(up);
    free(down);
    free(x);
    free(ids);
    free(wts);
    free(on);
    free(ref);
    free(act);
}

/* ---- norms ------------------------------------------------------------------------ */

typedef struct {
    int layer;      /* 0: RMSNorm, 1: LayerNorm with bias */
    int rows, dim, ldx, ldy;
    int in_place, no_weight;
    double mean;    /* offset of the data (LayerNorm's cancellation) */
    float eps;
} norm_case;

static void test_norm(const norm_case *nc, uint64_t seed)
{
    rng r = {seed};
    int R = nc->rows, D = nc->dim, ldx = nc->ldx, ldy = nc->in_place ? nc->ldx : nc->ldy;
    const char *op = nc->layer ? "LAYER_NORM" : "RMS_NORM";
    char desc[160];
    snprintf(desc, sizeof desc, "rows=%d,dim=%d,ldx=%d,ldy=%d,eps=%g,mean=%g%s%s", R, D, ldx, ldy, nc->eps,
             nc->mean, nc->in_place ? ",in-place" : "", nc->no_weight ? ",w=NULL" : "");
    float *x = glm_malloc(sizeof(float) * (size_t)R * ldx);
    for (size_t i = 0; i < (size_t)R * ldx; i++)
        x[i] = (float)(nc->mean + rng_normal(&r));
    float *w = glm_malloc(sizeof(float) * (size_t)D), *bias = glm_malloc(sizeof(float) * (size_t)D);
    fill_normal(&r, w, (size_t)D, 1.0);
    fill_normal(&r, bias, (size_t)D, 1.0);
    const float *wp = nc->no_weight ? NULL : w;
    const float *bp = nc->layer && !nc->no_weight ? bias : NULL;
    /* reference over the dim columns, written densely [R, D] */
    double *ref = glm_malloc(sizeof(double) * (size_t)R * D);
    for (int i = 0; i < R; i++) {
        const float *xr = x + (size_t)i * ldx;
        double mean = 0, ss = 0;
        for (int j = 0; j < D; j++)
            mean += xr[j];
        mean /= D;
        for (int j = 0; j < D; j++) {
            double d = nc->layer ? xr[j] - mean : xr[j];
            ss += d * d;
        }
        double inv = 1.0 / sqrt(ss / D + nc->eps);
        for (int j = 0; j < D; j++) {
            double v = ((nc->layer ? xr[j] - mean : xr[j])) * inv;
            if (wp)
                v *= wp[j];
            if (bp)
                v += bp[j];
            ref[(size_t)i * D + j] = v;
        }
    }
    size_t ny = (size_t)R * ldy;
    float *first = NULL;
    float *dense = glm_malloc(sizeof(float) * (size_t)R * D);
    for (int b = 0; b < N_BACKENDS; b++) {
        void (*fn)(void *, const glm_ref_norm_params *) =
            nc->layer ? backends[b].layernorm : backends[b].rmsnorm;
        if (!fn)
            continue;
        float *y = out_f32(ny);
        if (nc->in_place)
            memcpy(y, x, sizeof(float) * ny);
        glm_ref_norm_params p = {R, D, nc->in_place ? y : x, ldx, wp, bp, nc->eps, y, ldy};
        fn(backends[b].ctx, &p);
        int pad_ok = 1; /* the columns past dim keep what they held */
        for (int i = 0; i < R; i++)
            for (int j = 0; j < D; j++)
                dense[(size_t)i * D + j] = y[(size_t)i * ldy + j];
        for (int i = 0; i < R; i++)
            for (int j = D; j < ldy; j++) {
                float want = nc->in_place ? x[(size_t)i * ldx + j] : canary();
                pad_ok &= memcmp(&y[(size_t)i * ldy + j], &want, sizeof want) == 0;
            }
        double e = nmse(dense, ref, (size_t)R * D), tol = TOL_NMSE * backends[b].tol_scale;
        report(op, desc, backends[b].name, "NMSE", e, tol, e <= tol && pad_ok && guard_f32_ok(y, ny));
        keep_first(op, desc, b, y, (void **)&first, sizeof(float) * ny);
    }
    free(first);
    free(dense);
    free(x);
    free(w);
    free(bias);
    free(ref);
}

/* ---- RoPE ------------------------------------------------------------------------- */

typedef struct {
    int n, heads, stride, offset, dim, interleaved;
} rope_case;

static void test_rope(const rope_case *rc, uint64_t seed)
{
    rng r = {seed};
    int n = rc->n, Hh = rc->heads, S = rc->stride, off = rc->offset, D = rc->dim, half = D / 2;
    char desc[160];
    snprintf(desc, sizeof desc, "n=%d,heads=%d,stride=%d,offset=%d,dim=%d,%s", n, Hh, S, off, D,
             rc->interleaved ? "interleaved" : "neox");
    size_t nx = (size_t)n * Hh * S;
    float *x = glm_malloc(sizeof(float) * nx);
    fill_normal(&r, x, nx, 1.0);
    float *cs = glm_malloc(sizeof(float) * (size_t)n * half);
    float *sn = glm_malloc(sizeof(float) * (size_t)n * half);
    for (size_t i = 0; i < (size_t)n * half; i++) {
        double a = (rng_unit(&r) * 2 - 1) * 100.0;
        cs[i] = (float)cos(a);
        sn[i] = (float)sin(a);
    }
    double *ref = glm_malloc(sizeof(double) * nx);
    for (size_t i = 0; i < nx; i++)
        ref[i] = x[i];
    for (int t = 0; t < n; t++)
        for (int h = 0; h < Hh; h++) {
            const float *xi = x + ((size_t)t * Hh + h) * S + off;
            double *o = ref + ((size_t)t * Hh + h) * S + off;
            for (int i = 0; i < half; i++) {
                double c = cs[(size_t)t * half + i], s = sn[(size_t)t * half + i];
                double a = rc->interleaved ? xi[2 * i] : xi[i];
                double b = rc->interleaved ? xi[2 * i + 1] : xi[half + i];
                o[i] = a * c - b * s;         /* interleaved pairs come out de-interleaved */
                o[half + i] = b * c + a * s;
            }
        }
    float *first = NULL;
    for (int b = 0; b < N_BACKENDS; b++) {
        if (!backends[b].rope)
            continue;
        float *y = out_f32(nx);
        memcpy(y, x, sizeof(float) * nx);
        glm_ref_rope_params p = {n, Hh, S, off, D, rc->interleaved, cs, sn, y};
        backends[b].rope(backends[b].ctx, &p);
        int rest_ok = 1; /* elements outside the rotated range are untouched */
        for (size_t i = 0; i < nx; i++) {
            int j = (int)(i % (size_t)S);
            if (j < off || j >= off + D)
                rest_ok &= memcmp(&y[i], &x[i], sizeof(float)) == 0;
        }
        double e = nmse(y, ref, nx), tol = TOL_NMSE * backends[b].tol_scale;
        report("ROPE", desc, backends[b].name, "NMSE", e, tol, e <= tol && rest_ok && guard_f32_ok(y, nx));
        keep_first("ROPE", desc, b, y, (void **)&first, sizeof(float) * nx);
    }
    free(first);
    free(x);
    free(cs);
    free(sn);
    free(ref);
}

static void test_rope_angles(int n, int dim, double theta, int max_pos, uint64_t seed)
{
    rng r = {seed};
    int half = dim / 2;
    char desc[160];
    snprintf(desc, sizeof desc, "n=%d,dim=%d,theta=%g,max_pos=%d", n, dim, theta, max_pos);
    int32_t *pos = glm_malloc(sizeof(int32_t) * (size_t)n);
    for (int t = 0; t < n; t++)
        pos[t] = t < 2 ? t * max_pos : rng_int(&r, 0, max_pos);
    /* transformers: inv_freq = 1 / theta^(arange(0, dim, 2) / dim) in float32, the
     * angle pos * inv_freq in float32; cos and sin of that angle */
    double *ref_c = glm_malloc(sizeof(double) * (size_t)n * half);
    double *ref_s = glm_malloc(sizeof(double) * (size_t)n * half);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < half; i++) {
            float inv = (float)(1.0 / pow(theta, (2.0 * i) / dim));
            float ang = (float)pos[t] * inv;
            ref_c[(size_t)t * half + i] = cos((double)ang);
            ref_s[(size_t)t * half + i] = sin((double)ang);
        }
    size_t nn = (size_t)n * half;
    float *first_c = NULL, *first_s = NULL;
    for (int b = 0; b < N_BACKENDS; b++) {
        if (!backends[b].rope_angles)
            continue;
        float *c = out_f32(nn), *s = out_f32(nn);
        glm_ref_rope_angles_params p = {n, dim, theta, pos, c, s};
        backends[b].rope_angles(backends[b].ctx, &p);
        double e = 0;
        for (size_t i = 0; i < nn; i++) {
            double d = fmax(fabs(c[i] - ref_c[i]), fabs(s[i] - ref_s[i]));
            e = isfinite(c[i]) && isfinite(s[i]) ? fmax(e, d) : INFINITY;
        }
        double tol = TOL_ANGLE_ABS * backends[b].tol_scale;
        report("ROPE_ANGLES", desc, backends[b].name, "max abs", e, tol,
               e <= tol && guard_f32_ok(c, nn) && guard_f32_ok(s, nn));
        keep_first("ROPE_ANGLES", desc, b, c, (void **)&first_c, sizeof(float) * nn);
        keep_first("ROPE_ANGLES", desc, b, s, (void **)&first_s, sizeof(float) * nn);
    }
    free(first_c);
    free(first_s);
    free(pos);
    free(ref_c);
    free(ref_s);
}

/* ---- linear ----------------------------------------------------------------------- */

/* The path the cuda row's FP8 linear must take (cuda_row.h's CUDA_ROW_LIN_*); LIN_ANY: not checked. */
enum { LIN_ANY = 0, LIN_PLAIN = 1, LIN_LT = 2, LIN_LT_STAGED = 3 };
#if GLM_TEST_CUDA
_Static_assert((int)LIN_PLAIN == (int)CUDA_ROW_LIN_PLAIN && (int)LIN_LT == (int)CUDA_ROW_LIN_LT &&
                   (int)LIN_LT_STAGED == (int)CUDA_ROW_LIN_LT_STAGED,
               "the LINEAR cases' paths are cuda_row.h's");
#endif

typedef struct {
    int n, rows, cols, ldx, ldy;
    glm_dtype dt;
    int block;      /* FP8 block edge: 128 (128 x 128) or 0 (the 4 x 8 blocks) */
    int path;       /* FP8: LIN_PLAIN, LIN_LT or LIN_LT_STAGED, the cuda row's path */
    int row0, n_rows; /* the slice of the weight's rows multiplied; n_rows 0: rows - row0 */
} linear_case;

/* v rounded to the nearest e4m3 value, ties to the even code, saturated to +-448 (CUDA's
 * __NV_SATFINITE conversion). */
static double e4m3_round(float v)
{
    double a = fabs((double)v);
    if (a >= 448.0)
        return v < 0 ? -448.0 : 448.0;
    int lo = 0; /* the largest code whose value is <= a (codes 0..126 ascend) */
    while (lo < 126 && e4m3_decode((uint8_t)(lo + 1)) <= a)
        lo++;
    double vlo = e4m3_decode((uint8_t)lo), vhi = e4m3_decode((uint8_t)(lo + 1));
    double q = a - vlo < vhi - a ? vlo : a - vlo > vhi - a ? vhi : (lo & 1) ? vhi : vlo;
    return v < 0 ? -q : q;
}

/* The activations a CUDA linear multiplies (linear.h): x itself for an F32 weight, x rounded
 * to BF16 for BF16, for FP8 q * s of its 1 x 128 group along K with s = amax / 448 in float32
 * (1 for an all-zero group) and q = e4m3(x / s), the division in float32. xd is [n, cols]. */
static void linear_cuda_x(glm_dtype dt, const float *x, int ldx, int n, int cols, double *xd)
{
    for (int t = 0; t < n; t++) {
        const float *xr = x + (size_t)t * ldx;
        double *o = xd + (size_t)t * cols;
        for (int g = 0; g < cols; g += 128) {
            int end = g + 128 < cols ? g + 128 : cols;
            float amax = 0.0f;
            for (int k = g; k < end; k++)
                amax = fabsf(xr[k]) > amax ? fabsf(xr[k]) : amax;
            float s = amax / 448.0f;
            s = s > 0.0f ? s : 1.0f;
            for (int k = g; k < end; k++) {
                if (dt == GLM_DTYPE_F32) {
                    o[k] = xr[k];
                } else if (dt == GLM_DTYPE_BF16) {
                    uint32_t u = (uint32_t)glm_f32_to_bf16(xr[k]) << 16;
                    float f;
                    memcpy(&f, &u, sizeof f);
                    o[k] = f;
                } else {
                    o[k] = e4m3_round(xr[k] / s) * (double)s;
                }
            }
        }
    }
}

/* ref[n, rows] = xd[n, cols] W^T in double */
static void linear_ref(const double *xd, const double *w, int n, int rows, int cols, double *ref)
{
    for (int t = 0; t < n; t++)
        for (int r = 0; r < rows; r++) {
            double acc = 0;
            for (int k = 0; k < cols; k++)
                acc += xd[(size_t)t * cols + k] * w[(size_t)r * cols + k];
            ref[(size_t)t * rows + r] = acc;
        }
}

/* y's n_rows columns of each row, densely [n, rows]; pad_ok: the columns past rows kept their canaries */
static float *linear_dense(const float *y, int n, int rows, int ldy, int *pad_ok)
{
    float *d = glm_malloc(sizeof(float) * ((size_t)n * rows + 1));
    *pad_ok = 1;
    for (int t = 0; t < n; t++) {
        memcpy(d + (size_t)t * rows, y + (size_t)t * ldy, sizeof(float) * (size_t)rows);
        for (int j = rows; j < ldy; j++) {
            float c = canary();
            *pad_ok &= memcmp(&y[(size_t)t * ldy + j], &c, sizeof c) == 0;
        }
    }
    return d;
}

static const char *dtype_tag(glm_dtype dt)
{
    return dt == GLM_DTYPE_F32 ? "f32" : dt == GLM_DTYPE_BF16 ? "bf16" : "fp8";
}

static const char *lin_path_name(int path)
{
    return path == LIN_PLAIN ? "plain" : path == LIN_LT ? "cuBLASLt" : path == LIN_LT_STAGED ? "cuBLASLt staged" : "-";
}

static void test_linear(const linear_case *lc, uint64_t seed)
{
    rng r = {seed};
    int n = lc->n, W = lc->rows, K = lc->cols, ldx = lc->ldx, ldy = lc->ldy;
    int row0 = lc->row0, R = lc->n_rows ? lc->n_rows : W - row0;
    int fp8 = lc->dt == GLM_DTYPE_F8_E4M3, blk = lc->block ? lc->block : 4;
    char desc[160], rows[48];
    if (row0 || R != W)
        snprintf(rows, sizeof rows, "rows=[%d,%d) of %d", row0, row0 + R, W);
    else
        snprintf(rows, sizeof rows, "rows=%d", W);
    if (fp8)
        snprintf(desc, sizeof desc, "n=%d,%s,cols=%d,ldx=%d,ldy=%d,fp8 %dx%d", n, rows, K, ldx, ldy, blk,
                 lc->block ? lc->block : 8);
    else
        snprintf(desc, sizeof desc, "n=%d,%s,cols=%d,ldx=%d,ldy=%d,%s", n, rows, K, ldx, ldy, dtype_tag(lc->dt));
    test_weight tw;
    weight_make_blocks(&tw, &r, lc->dt, W, K, 1.0 / sqrt((double)K), blk, lc->block ? lc->block : 8);
    /* x with NaN in the columns past cols, which must not be read */
    float *x = glm_malloc(sizeof(float) * (size_t)n * ldx);
    for (int t = 0; t < n; t++)
        for (int k = 0; k < ldx; k++)
            x[(size_t)t * ldx + k] = k < K ? (float)rng_normal(&r) : NAN;
    if (n > 2) /* an all-zero 1 x 128 group (FP8: scale 1) */
        memset(x + (size_t)2 * ldx, 0, sizeof(float) * (size_t)(K < 128 ? K : 128));
    double *xd = glm_malloc(sizeof(double) * (size_t)n * K);
    double *ref = glm_malloc(sizeof(double) * (size_t)n * R), *ref_cuda = glm_malloc(sizeof(double) * (size_t)n * R);
    const double *wref = tw.ref + (size_t)row0 * K;
    linear_cuda_x(GLM_DTYPE_F32, x, ldx, n, K, xd);
    linear_ref(xd, wref, n, R, K, ref);
    linear_cuda_x(lc->dt, x, ldx, n, K, xd);
    linear_ref(xd, wref, n, R, K, ref_cuda);
    size_t ny = (size_t)n * ldy;
    float *first = NULL;
    for (int b = 0; b < N_BACKENDS; b++) {
        if (!backends[b].linear)
            continue;
        int cuda = strcmp(backends[b].name, "cuda") == 0;
        float *y = out_f32(ny);
        int path = LIN_ANY, repeat_ok = 1;
        backends[b].linear(backends[b].ctx, &tw.w, row0, R, x, ldx, n, y, ldy, 0, &path, &repeat_ok);
        int pad_ok;
        float *dense = linear_dense(y, n, R, ldy, &pad_ok);
        double e = nmse(dense, cuda ? ref_cuda : ref, (size_t)n * R), tol = TOL_NMSE * backends[b].tol_scale;
        report("LINEAR", desc, backends[b].name, cuda && lc->dt != GLM_DTYPE_F32 ? "NMSE vs x as quantised" : "NMSE",
               e, tol, e <= tol && pad_ok && guard_f32_ok(y, ny));
        if (cuda && fp8) { /* the path taken, the cache on a repeat, then the plain kernel against it */
            char what[64];
            snprintf(what, sizeof what, "path %s, repeat same%s", lin_path_name(path),
                     path == LIN_LT || path == LIN_LT_STAGED ? " from cache" : "");
            report_flag("LINEAR", desc, "cuda", what, (lc->path == LIN_ANY || path == lc->path) && repeat_ok);
            float *yp = out_f32(ny);
            int path_p = LIN_ANY, repeat_p = 1;
            backends[b].linear(backends[b].ctx, &tw.w, row0, R, x, ldx, n, yp, ldy, 1, &path_p, &repeat_p);
            int pad_p;
            float *dp = linear_dense(yp, n, R, ldy, &pad_p);
            double *dd = glm_malloc(sizeof(double) * ((size_t)n * R + 1));
            for (size_t i = 0; i < (size_t)n * R; i++)
                dd[i] = dense[i];
            double ep = nmse(dp, ref_cuda, (size_t)n * R), ea = nmse(dp, dd, (size_t)n * R);
            report("LINEAR", desc, "cuda-plain", "NMSE vs x as quantised", ep, tol,
                   ep <= tol && pad_p && guard_f32_ok(yp, ny) && path_p == LIN_PLAIN && repeat_p);
            report("LINEAR", desc, "cuda-plain", "NMSE vs cuda", ea, tol, ea <= tol);
            free(dd);
            free(dp);
            free(yp);
        }
        free(dense);
        keep_first("LINEAR", desc, b, y, (void **)&first, sizeof(float) * ny);
    }
    free(first);
    weight_free(&tw);
    free(x);
    free(xd);
    free(ref);
    free(ref_cuda);
}

/* ---- the cases -------------------------------------------------------------------- */

static const mla_case mla_cases[] = {
    /* heads, nope, rope, R, v, bs, seqs, ctx, qlen, topk, sparse, dtype */
    {3, 5, 6, 13, 7, 4, 3, {1, 9, 17}, {1, 4, 17}, 0, 0, GLM_DTYPE_F32, 0},       /* prefill + decode, dense */
    {5, 11, 4, 36, 9, 16, 2, {33, 50}, {1, 1}, 8, 0, GLM_DTYPE_BF16, 0},             /* decode, full top-k */
    {1, 8, 8, 8, 8, 5, 3, {4, 23, 12}, {2, 3, 12}, 5, 1, GLM_DTYPE_F32, 0},            /* short + sparse rows */
    {7, 11, 10, 27, 9, 5, 4, {70, 6, 41, 19}, {1, 6, 9, 19}, 16, 1, GLM_DTYPE_BF16, 0}, /* mixed */
    {4, 16, 2, 19, 3, 7, 2, {64, 30}, {64, 1}, 0, 0, GLM_DTYPE_F8_E4M3, 0},        /* long prefill, FP8 */
    /* contexts past a backend's KV-split threshold (CUDA: 128 keys): decode and short prefill
     * beside a context shorter than one split, GLM-5's rank shape (8 heads, 512 + 64) */
    {8, 16, 64, 512, 16, 16, 3, {300, 7, 170}, {1, 2, 3}, 0, 0, GLM_DTYPE_BF16, 1},
    {3, 9, 6, 300, 5, 16, 3, {600, 10, 420}, {2, 1, 3}, 0, 0, GLM_DTYPE_F32, 0},
    {5, 8, 8, 40, 6, 8, 3, {700, 90, 333}, {1, 2, 2}, 200, 1, GLM_DTYPE_F32, 1}, /* split selections */
    {2, 8, 4, 520, 6, 32, 2, {400, 129}, {2, 1}, 0, 0, GLM_DTYPE_F8_E4M3, 0},  /* kv_lora > 512 */
};

static const dsa_case dsa_cases[] = {
    /* heads, dim, topk, bs, seqs, ctx, qlen, exact */
    {3, 16, 5, 4, 3, {3, 20, 37}, {3, 6, 1}, 1, 0},
    {1, 4, 1, 5, 2, {1, 17}, {1, 17}, 1, 0},
    {5, 64, 8, 7, 2, {50, 9}, {50, 2}, 1, 0},
    {3, 12, 8, 4, 3, {5, 40, 66}, {5, 4, 1}, 0, 0},
    {7, 20, 16, 16, 2, {90, 16}, {3, 16}, 0, 0},
    {2, 9, 3, 3, 1, {31}, {31}, 0, 0},
    /* contexts well beyond topk: a radix select over thousands of scores */
    {4, 16, 256, 8, 2, {5000, 300}, {3, 2}, 1, 0},            /* exact ties at the k-th place */
    {32, 128, 2048, 64, 2, {9000, 2100}, {2, 1}, 0, 1},       /* GLM-5's indexer shape, bf16 keys */
    {3, 20, 100, 16, 3, {1500, 101, 650}, {4, 2, 5}, 0, 0},
};

static const route_case route_cases[] = {
    /* n, E, G, topk_group, K, norm, scaling, ties */
    {17, 12, 4, 2, 3, 1, 2.5f, 1},
    {9, 16, 1, 1, 4, 1, 1.0f, 1},
    {5, 10, 5, 3, 2, 0, 2.5f, 1},
    {11, 9, 9, 4, 3, 1, 2.5f, 1},   /* one expert per group */
    {33, 24, 8, 4, 8, 1, 2.5f, 0},
    {7, 20, 4, 4, 6, 0, 1.5f, 0},
    {2800, 24, 8, 4, 8, 1, 2.5f, 0}, /* enough work to run on the pool (GLM_REF_PARALLEL_MIN) */
    {9, 256, 8, 4, 8, 1, 2.5f, 0},   /* GLM-5's routing: 256 experts, 8 groups, 4 kept, top-8 */
    {6, 256, 8, 4, 8, 1, 2.5f, 1},
};

static const experts_case experts_cases[] = {
    /* n, E, K, H, I, dtype, skew, e0, n_local */
    {1, 7, 3, 19, 13, GLM_DTYPE_F32, 0, 0, 0},
    {3, 7, 2, 16, 9, GLM_DTYPE_BF16, 0, 0, 0},
    {37, 12, 3, 21, 11, GLM_DTYPE_BF16, 0, 0, 0},
    {9, 6, 2, 33, 17, GLM_DTYPE_F32, 1, 0, 0},
    {13, 5, 4, 24, 16, GLM_DTYPE_F8_E4M3, 0, 0, 0},
    {400, 7, 4, 48, 8, GLM_DTYPE_BF16, 0, 0, 0}, /* the weighted sum runs on the pool */
    {150, 9, 2, 72, 80, GLM_DTYPE_F8_E4M3, 1, 0, 0}, /* ~100 rows on each of 3 experts, 6 idle; widths over 64 */
    {5, 256, 8, 40, 24, GLM_DTYPE_BF16, 0, 0, 0},    /* GLM-5's 256 experts, top-8: most experts idle */
    /* tensor parallelism: one rank's experts */
    {37, 12, 3, 21, 11, GLM_DTYPE_BF16, 0, 4, 4},
    {150, 9, 2, 72, 80, GLM_DTYPE_F8_E4M3, 1, 0, 3},
    {64, 256, 8, 40, 24, GLM_DTYPE_BF16, 0, 32, 32}, /* GLM-5 at 8 ranks: rank 1's 32 */
};

static const norm_case norm_cases[] = {
    /* layer, rows, dim, ldx, ldy, in_place, no_weight, mean, eps */
    {0, 5, 13, 13, 13, 0, 0, 0.0, 1e-6f},
    {0, 3, 129, 140, 131, 0, 0, 0.0, 1e-5f},
    {0, 4, 27, 36, 36, 1, 0, 0.0, 1e-6f},
    {0, 2, 7, 7, 9, 0, 1, 0.5, 1e-6f},
    {1, 5, 12, 12, 12, 0, 0, 0.0, 1e-6f},
    {1, 3, 20, 24, 24, 1, 0, 10.0, 1e-6f},
    {1, 4, 128, 128, 130, 0, 1, 2.0, 1e-5f},
    {0, 520, 130, 133, 130, 0, 0, 0.0, 1e-6f}, /* enough rows to run on the pool */
    {1, 520, 128, 128, 128, 1, 0, 1.0, 1e-6f},
};

static const rope_case rope_cases[] = {
    /* n, heads, stride, offset, dim, interleaved */
    {5, 3, 17, 11, 6, 1},
    {5, 3, 17, 11, 6, 0},
    {4, 1, 40, 30, 10, 1},
    {7, 5, 12, 0, 4, 1},
    {7, 5, 12, 0, 12, 0},
    {2, 2, 64, 0, 64, 1},
    {520, 4, 40, 8, 32, 1}, /* enough tokens to run on the pool */
};

static const linear_case linear_cases[] = {
    /* n, rows, cols, ldx, ldy, dtype, FP8 block (0: 4 x 8), cuda FP8 path, row0, n_rows (0: the rest) */
    {1, 19, 45, 45, 19, GLM_DTYPE_F32, 0, LIN_ANY, 0, 0},
    {5, 37, 53, 60, 41, GLM_DTYPE_F32, 0, LIN_ANY, 0, 0},
    {33, 128, 256, 256, 132, GLM_DTYPE_F32, 0, LIN_ANY, 0, 0},
    {5, 37, 53, 60, 41, GLM_DTYPE_F32, 0, LIN_ANY, 7, 20},     /* a slice of the rows */
    {1, 24, 40, 44, 27, GLM_DTYPE_BF16, 0, LIN_ANY, 0, 0},
    {7, 45, 130, 133, 50, GLM_DTYPE_BF16, 0, LIN_ANY, 0, 0},
    {40, 128, 128, 128, 128, GLM_DTYPE_BF16, 0, LIN_ANY, 0, 0},
    {7, 45, 130, 133, 50, GLM_DTYPE_BF16, 0, LIN_ANY, 13, 30},
    {1, 19, 45, 47, 21, GLM_DTYPE_F8_E4M3, 0, LIN_PLAIN, 0, 0},   /* partial 4 x 8 blocks */
    {17, 64, 300, 301, 67, GLM_DTYPE_F8_E4M3, 0, LIN_PLAIN, 0, 0}, /* a partial last 1 x 128 group */
    {17, 64, 300, 301, 67, GLM_DTYPE_F8_E4M3, 0, LIN_PLAIN, 13, 40}, /* a slice inside a 4 x 8 block row */
    /* cuBLASLt's shapes */
    {8, 256, 256, 260, 260, GLM_DTYPE_F8_E4M3, 128, LIN_LT, 0, 0},
    {12, 128, 384, 390, 132, GLM_DTYPE_F8_E4M3, 128, LIN_LT, 0, 0}, /* 3 K blocks: scale rows padded to 4 */
    {40, 128, 256, 256, 128, GLM_DTYPE_F8_E4M3, 128, LIN_LT, 0, 0},
    /* n % 4 != 0 (decode): floor(n/4)*4 rows into y, the rest padded to 4 rows through the buffer */
    {1, 256, 256, 256, 256, GLM_DTYPE_F8_E4M3, 128, LIN_LT_STAGED, 0, 0},
    {2, 128, 384, 390, 132, GLM_DTYPE_F8_E4M3, 128, LIN_LT_STAGED, 0, 0},
    {3, 256, 256, 256, 260, GLM_DTYPE_F8_E4M3, 128, LIN_LT_STAGED, 0, 0},
    {5, 256, 256, 260, 260, GLM_DTYPE_F8_E4M3, 128, LIN_LT_STAGED, 0, 0},
    {6, 128, 256, 256, 128, GLM_DTYPE_F8_E4M3, 128, LIN_LT_STAGED, 0, 0},
    {7, 256, 128, 144, 264, GLM_DTYPE_F8_E4M3, 128, LIN_LT_STAGED, 0, 0},
    {13, 128, 256, 256, 132, GLM_DTYPE_F8_E4M3, 128, LIN_LT_STAGED, 0, 0},
    /* slices of the rows from a block row (the scale pointer moves with them) */
    {3, 384, 256, 256, 256, GLM_DTYPE_F8_E4M3, 128, LIN_LT_STAGED, 128, 256},
    {1, 384, 256, 256, 128, GLM_DTYPE_F8_E4M3, 128, LIN_LT_STAGED, 256, 128},
    {8, 384, 256, 256, 260, GLM_DTYPE_F8_E4M3, 128, LIN_LT, 128, 128},
    {6, 384, 384, 384, 384, GLM_DTYPE_F8_E4M3, 128, LIN_LT_STAGED, 128, 128},
    {4, 384, 256, 256, 256, GLM_DTYPE_F8_E4M3, 128, LIN_PLAIN, 64, 256}, /* not from a block row */
    /* ldy % 4 != 0: up to 7 rows through the buffer, more on the plain kernel */
    {4, 128, 128, 128, 130, GLM_DTYPE_F8_E4M3, 128, LIN_LT_STAGED, 0, 0},
    {6, 128, 256, 256, 131, GLM_DTYPE_F8_E4M3, 128, LIN_LT_STAGED, 0, 0},
    {9, 128, 128, 128, 130, GLM_DTYPE_F8_E4M3, 128, LIN_PLAIN, 0, 0},
    {9, 200, 300, 303, 203, GLM_DTYPE_F8_E4M3, 128, LIN_PLAIN, 0, 0},  /* partial 128 x 128 blocks */
};

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--has-cuda") == 0) /* exit 0 when the binary has a cuda row */
        return GLM_TEST_CUDA ? 0 : 1;
    const char *only = argc > 1 ? argv[1] : NULL; /* an op name prefix, e.g. MLA, DSA, MOE */
#if GLM_TEST_CUDA
    {
        cuda_row_ops co;
        cuda_row_init(&co);
        backend *cb = &backends[N_BACKENDS - 1];
        cb->mla_absorb = co.mla_absorb;
        cb->mla_attn = co.mla_attn;
        cb->mla_expand = co.mla_expand;
        cb->dsa_select = co.dsa_select;
        cb->moe_route = co.moe_route;
        cb->moe_experts = co.moe_experts;
        cb->rmsnorm = co.rmsnorm;
        cb->layernorm = co.layernorm;
        cb->rope_angles = co.rope_angles;
        cb->rope = co.rope;
        cb->linear = co.linear;
    }
#endif
    for (int b = 0; b < N_BACKENDS; b++)
        backends[b].ctx = backends[b].init();
    printf("backends:");
    for (int b = 0; b < N_BACKENDS; b++)
        printf(" %s", backends[b].name);
#if GLM_TEST_CUDA
    printf(" (cuda: %s)", cuda_row_order());
#endif
    printf("\n");
#define WANT(name) (!only || strncmp(name, only, strlen(only)) == 0)
    uint64_t seed = 1;
    if (WANT("MLA"))
        for (size_t i = 0; i < sizeof mla_cases / sizeof mla_cases[0]; i++)
            test_mla(&mla_cases[i], seed++);
    if (WANT("DSA"))
        for (size_t i = 0; i < sizeof dsa_cases / sizeof dsa_cases[0]; i++)
            test_dsa(&dsa_cases[i], 100 + seed++);
    if (WANT("MOE_ROUTE")) {
        for (size_t i = 0; i < sizeof route_cases / sizeof route_cases[0]; i++)
            test_route(&route_cases[i], 200 + seed++);
        test_route_nan(290);
    }
    if (WANT("MOE_EXPERTS"))
        for (size_t i = 0; i < sizeof experts_cases / sizeof experts_cases[0]; i++)
            test_experts(&experts_cases[i], 300 + seed++);
    if (WANT("RMS_NORM") || WANT("LAYER_NORM"))
        for (size_t i = 0; i < sizeof norm_cases / sizeof norm_cases[0]; i++)
            test_norm(&norm_cases[i], 400 + seed++);
    if (WANT("ROPE")) {
        for (size_t i = 0; i < sizeof rope_cases / sizeof rope_cases[0]; i++)
            test_rope(&rope_cases[i], 500 + seed++);
        test_rope_angles(9, 64, 1e6, 202751, 600 + seed++);
        test_rope_angles(5, 6, 1e4, 4095, 600 + seed++);
        test_rope_angles(3, 10, 5e5, 100, 600 + seed++);
    }
    if (WANT("LINEAR"))
        for (size_t i = 0; i < sizeof linear_cases / sizeof linear_cases[0]; i++)
            test_linear(&linear_cases[i], 700 + seed++);
    for (int b = 0; b < N_BACKENDS; b++)
        backends[b].fini(backends[b].ctx);
    printf("%d/%d checks passed\n", n_checks - n_failed, n_checks);
    return n_failed ? 1 : 0;
}
