/*
 * cuda_row.cu - the "cuda" row of test-backend-ops (cuda_row.h): host params
 * in, device buffers, the CUDA launcher, host results out.
 *
 * Weights go up through glm_dweight_upload in float32 mode (F32 and BF16
 * exact, FP8 kept as FP8 with its block scales), caches as float32, or as
 * BF16 when every value of the cache is a bf16 value (the cases that round
 * their cache to bf16: the kernels' BF16 path, read exactly): the row checks
 * the kernels' math at float32 tolerances.
 */
#include "cuda/glm_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/dsa.h"
#include "cuda/dweight.h"
#include "cuda/linear.h"
#include "cuda/mla.h"
#include "cuda/moe.h"
#include "cuda/norm.h"
#include "tests/backend/cuda_row.h"


#define CK(call)                                                                                    \
    do {                                                                                            \
        cudaError_t e_ = (call);                                                                    \
        if (e_ != cudaSuccess) {                                                                    \
            fprintf(stderr, "cuda row: %s:%d: %s: %s\n", __FILE__, __LINE__, #call,                 \
                    cudaGetErrorString(e_));                                                        \
            exit(1);                                                                                \
        }                                                                                           \
    } while (0)

/* ---- device buffers ---------------------------------------------------------------- */

/* A device copy of n bytes of host (or n bytes of NaN when host is NULL). */
static void *up(const void *host, size_t n)
{
    void *d = NULL;
    CK(cudaMalloc(&d, n ? n : 1));
    if (host)
        CK(cudaMemcpy(d, host, n, cudaMemcpyHostToDevice));
    else
        CK(cudaMemset(d, 0xff, n));
    return d;
}

static void down(void *host, const void *dev, size_t n)
{
    CK(cudaMemcpy(host, dev, n, cudaMemcpyDeviceToHost));
}

/* floats of a strided [rows, ld] matrix whose rows use the first dim */
static size_t strided(int rows, int ld, int dim)
{
    return rows > 0 ? (size_t)(rows - 1) * ld + dim : 0;
}

/* A device copy of a float cache of n values: BF16 when every value is exactly a
 * bf16 value (NaN included), else float32; *dt says which. */
static void *cache_up(const float *c, size_t n, glm_dtype *dt)
{
    size_t i = 0;
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, &c[i], sizeof u);
        if (c[i] == c[i] && (u & 0xffffu) != 0)
            break;
    }
    if (i < n || n == 0) {
        *dt = GLM_DTYPE_F32;
        return up(c, sizeof(float) * n);
    }
    uint16_t *h = (uint16_t *)malloc(sizeof(uint16_t) * n);
    for (i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &c[i], sizeof u);
        h[i] = c[i] == c[i] ? (uint16_t)(u >> 16) : (uint16_t)0x7fc0u;
    }
    void *d = up(h, sizeof(uint16_t) * n);
    free(h);
    *dt = GLM_DTYPE_BF16;
    return d;
}

typedef struct {
    glm_dweight w;
    void *mem;
} dev_weight;

static dev_weight weight_up(const glm_weight *w)
{
    dev_weight d;
    size_t bytes = glm_dweight_bytes(w, GLM_DW_F32), st_bytes = (size_t)1 << 20;
    void *st = NULL;
    CK(cudaMalloc(&d.mem, bytes));
    CK(cudaMallocHost(&st, st_bytes));
    CK(glm_dweight_upload(&d.w, w, GLM_DW_F32, d.mem, st, st_bytes, 0));
    CK(cudaFreeHost(st));
    return d;
}

static int paging_rows(const glm_ref_paging *pg, int n_tokens)
{
    int rows = 0;
    for (int t = 0; t < n_tokens; t++)
        rows = pg->seq_of[t] + 1 > rows ? pg->seq_of[t] + 1 : rows;
    return rows;
}

/* The device paging of pg; the arrays are freed by paging_free. */
static glm_cu_paging paging_up(const glm_ref_paging *pg, int n_tokens)
{
    int rows = paging_rows(pg, n_tokens);
    glm_cu_paging d = {(const int32_t *)up(pg->block_tables, sizeof(int32_t) * (size_t)rows * pg->max_blocks),
                       pg->max_blocks, pg->block_size, pg->n_slots,
                       (const int32_t *)up(pg->seq_of, sizeof(int32_t) * (size_t)n_tokens),
                       (const int32_t *)up(pg->positions, sizeof(int32_t) * (size_t)n_tokens)};
    return d;
}

static void paging_free(glm_cu_paging *d)
{
    cudaFree((void *)d->block_tables);
    cudaFree((void *)d->seq_of);
    cudaFree((void *)d->positions);
}

/* ---- MLA ---------------------------------------------------------------------------- */

static void cu_mla_absorb(void *ctx, const glm_ref_mla_absorb_params *p)
{
    dev_weight kv_b = weight_up(p->kv_b);
    size_t nq = (size_t)p->n_tokens * p->n_heads * (p->nope + p->rope);
    size_t nl = (size_t)p->n_tokens * p->n_heads * (p->kv_lora + p->rope);
    float *q = (float *)up(p->q, sizeof(float) * nq), *ql = (float *)up(NULL, sizeof(float) * nl);
    glm_cu_mla_absorb_params c = {p->n_tokens, p->n_heads, p->nope, p->rope, p->kv_lora, p->v_dim, &kv_b.w, q, ql};
    CK(glm_cu_mla_absorb(&c, 0));
    down(p->q_lat, ql, sizeof(float) * nl);
    cudaFree(q);
    cudaFree(ql);
    cudaFree(kv_b.mem);
}

static void cu_mla_attn(void *ctx, const glm_ref_mla_attn_params *p)
{
    int ld = p->kv_lora + p->rope;
    size_t nq = (size_t)p->n_tokens * p->n_heads * ld, no = (size_t)p->n_tokens * p->n_heads * p->kv_lora;
    float *ql = (float *)up(p->q_lat, sizeof(float) * nq), *o = (float *)up(NULL, sizeof(float) * no);
    glm_dtype cdt;
    void *cache = cache_up(p->cache, (size_t)p->pg.n_slots * ld, &cdt);
    int32_t *sel = p->sel ? (int32_t *)up(p->sel, sizeof(int32_t) * (size_t)p->n_tokens * p->sel_width) : NULL;
    glm_cu_mla_attn_params c = {p->n_tokens, p->n_heads, p->kv_lora, p->rope, p->scale, ql, cache,
                                cdt, paging_up(&p->pg, p->n_tokens), sel, p->sel_width, p->max_ctx, o};
    size_t wsb = glm_cu_mla_attn_workspace(&c);
    void *ws = up(NULL, wsb);
    CK(glm_cu_mla_attn(&c, ws, wsb, 0));
    down(p->o_lat, o, sizeof(float) * no);
    paging_free(&c.pg);
    cudaFree(ql);
    cudaFree(o);
    cudaFree(cache);
    cudaFree(sel);
    cudaFree(ws);
}

static void cu_mla_expand(void *ctx, const glm_ref_mla_expand_params *p)
{
    dev_weight kv_b = weight_up(p->kv_b);
    size_t ni = (size_t)p->n_tokens * p->n_heads * p->kv_lora, no = (size_t)p->n_tokens * p->n_heads * p->v_dim;
    float *ol = (float *)up(p->o_lat, sizeof(float) * ni), *out = (float *)up(NULL, sizeof(float) * no);
    glm_cu_mla_expand_params c = {p->n_tokens, p->n_heads, p->nope, p->kv_lora, p->v_dim, &kv_b.w, ol, out};
    CK(glm_cu_mla_expand(&c, 0));
    down(p->out, out, sizeof(float) * no);
    cudaFree(ol);
    cudaFree(out);
    cudaFree(kv_b.mem);
}

/* ---- DSA ---------------------------------------------------------------------------- */

static void cu_dsa_select(void *ctx, const glm_ref_dsa_params *p)
{
    size_t nq = (size_t)p->n_tokens * p->n_heads * p->head_dim, nw = (size_t)p->n_tokens * p->n_heads;
    size_t ns = (size_t)p->n_tokens * p->topk;
    float *q = (float *)up(p->q, sizeof(float) * nq), *w = (float *)up(p->w, sizeof(float) * nw);
    glm_dtype cdt;
    void *cache = cache_up(p->cache, (size_t)p->pg.n_slots * p->head_dim, &cdt);
    int32_t *sel = (int32_t *)up(NULL, sizeof(int32_t) * ns);
    glm_cu_dsa_params c = {p->n_tokens, p->n_heads, p->head_dim, p->topk, p->scale, q, w, cache, cdt,
                           paging_up(&p->pg, p->n_tokens), p->max_ctx, sel};
    size_t wsb = glm_cu_dsa_workspace(&c);
    void *ws = up(NULL, wsb);
    CK(glm_cu_dsa_select(&c, ws, wsb, 0));
    down(p->sel, sel, sizeof(int32_t) * ns);
    /* a workspace of one token's scores: the step in one-token chunks must choose the same */
    size_t one = sizeof(float) * (size_t)p->max_ctx;
    if (wsb > one) {
        int32_t *again = (int32_t *)malloc(sizeof(int32_t) * ns);
        CK(cudaMemset(sel, 0xff, sizeof(int32_t) * ns));
        CK(glm_cu_dsa_select(&c, ws, one, 0));
        down(again, sel, sizeof(int32_t) * ns);
        if (memcmp(again, p->sel, sizeof(int32_t) * ns) != 0) {
            fprintf(stderr, "cuda row: DSA_SELECT: one-token chunks choose otherwise than one chunk\n");
            exit(1);
        }
        free(again);
    }
    paging_free(&c.pg);
    cudaFree(q);
    cudaFree(w);
    cudaFree(cache);
    cudaFree(sel);
    cudaFree(ws);
}

/* ---- MoE ---------------------------------------------------------------------------- */

static void cu_moe_route(void *ctx, const glm_ref_moe_route_params *p)
{
    size_t nl = (size_t)p->n_tokens * p->n_experts, nk = (size_t)p->n_tokens * p->top_k;
    float *lg = (float *)up(p->logits, sizeof(float) * nl);
    float *bias = (float *)up(p->bias, sizeof(float) * (size_t)p->n_experts);
    int32_t *ids = (int32_t *)up(NULL, sizeof(int32_t) * nk);
    float *wts = (float *)up(NULL, sizeof(float) * nk);
    glm_cu_moe_route_params c = {p->n_tokens, p->n_experts, p->n_group, p->topk_group, p->top_k,
                                 p->norm_topk_prob, p->scaling, lg, bias, ids, wts};
    CK(glm_cu_moe_route(&c, 0));
    down(p->ids, ids, sizeof(int32_t) * nk);
    down(p->weights, wts, sizeof(float) * nk);
    cudaFree(lg);
    cudaFree(bias);
    cudaFree(ids);
    cudaFree(wts);
}

static void cu_moe_experts(void *ctx, const glm_ref_moe_experts_params *p)
{
    int E = p->n_experts, e0 = -1, n_local = 0;
    dev_weight *dw = (dev_weight *)calloc((size_t)3 * E, sizeof *dw);
    glm_dweight *tab = (glm_dweight *)calloc((size_t)3 * E, sizeof *tab);
    for (int e = 0; e < E; e++) {
        if (!p->gate[e].data) /* another tensor-parallel rank's (one range of them is held) */
            continue;
        if (e0 < 0)
            e0 = e;
        n_local++;
        dw[e] = weight_up(&p->gate[e]);
        dw[E + e] = weight_up(&p->up[e]);
        dw[2 * E + e] = weight_up(&p->down[e]);
    }
    for (int i = 0; i < 3 * E; i++)
        tab[i] = dw[i].w;
    glm_dweight *dtab = (glm_dweight *)up(tab, sizeof(glm_dweight) * 3 * (size_t)E);
    size_t nx = (size_t)p->n_tokens * p->hidden, nk = (size_t)p->n_tokens * p->top_k;
    float *x = (float *)up(p->x, sizeof(float) * nx), *out = (float *)up(NULL, sizeof(float) * nx);
    int32_t *ids = (int32_t *)up(p->ids, sizeof(int32_t) * nk);
    float *wts = (float *)up(p->weights, sizeof(float) * nk);
    glm_cu_moe_experts_params c = {p->n_tokens, p->hidden, p->inter, E, p->top_k, dtab, dtab + E, dtab + 2 * E,
                                   x, ids, wts, out, e0, n_local == E ? 0 : n_local};
    size_t wsb = glm_cu_moe_experts_workspace(&c);
    void *ws = up(NULL, wsb);
    CK(glm_cu_moe_experts(&c, ws, wsb, 0));
    down(p->out, out, sizeof(float) * nx);
    for (int i = 0; i < 3 * E; i++)
        cudaFree(dw[i].mem);
    free(dw);
    free(tab);
    cudaFree(dtab);
    cudaFree(x);
    cudaFree(out);
    cudaFree(ids);
    cudaFree(wts);
    cudaFree(ws);
}

/* ---- norms and RoPE ------------------------------------------------------------------ */

static void cu_norm(const glm_ref_norm_params *p, int layer)
{
    size_t nx = strided(p->n_rows, p->ldx, p->dim), ny = strided(p->n_rows, p->ldy, p->dim);
    float *x = (float *)up(p->x, sizeof(float) * nx);
    float *y = p->y == p->x ? x : (float *)up(p->y, sizeof(float) * ny); /* gaps keep the host's values */
    float *w = p->w ? (float *)up(p->w, sizeof(float) * (size_t)p->dim) : NULL;
    float *b = p->b ? (float *)up(p->b, sizeof(float) * (size_t)p->dim) : NULL;
    glm_cu_norm_params c = {p->n_rows, p->dim, x, p->ldx, NULL, 0, w, b, p->eps, y, p->ldy};
    CK(layer ? glm_cu_layernorm(&c, 0) : glm_cu_rmsnorm(&c, 0));
    down(p->y, y, sizeof(float) * ny);
    if (y != x)
        cudaFree(y);
    cudaFree(x);
    cudaFree(w);
    cudaFree(b);
}

static void cu_rmsnorm(void *ctx, const glm_ref_norm_params *p) { cu_norm(p, 0); }
static void cu_layernorm(void *ctx, const glm_ref_norm_params *p) { cu_norm(p, 1); }

static void cu_rope_angles(void *ctx, const glm_ref_rope_angles_params *p)
{
    size_t nh = (size_t)p->n_tokens * (p->dim / 2);
    int32_t *pos = (int32_t *)up(p->positions, sizeof(int32_t) * (size_t)p->n_tokens);
    float *cs = (float *)up(NULL, sizeof(float) * nh), *sn = (float *)up(NULL, sizeof(float) * nh);
    glm_cu_rope_angles_params c = {p->n_tokens, p->dim, p->theta, pos, cs, sn};
    CK(glm_cu_rope_angles(&c, 0));
    down(p->cos_, cs, sizeof(float) * nh);
    down(p->sin_, sn, sizeof(float) * nh);
    cudaFree(pos);
    cudaFree(cs);
    cudaFree(sn);
}

static void cu_rope(void *ctx, const glm_ref_rope_params *p)
{
    size_t nh = (size_t)p->n_tokens * (p->dim / 2), nx = (size_t)p->n_tokens * p->n_heads * p->head_stride;
    float *cs = (float *)up(p->cos_, sizeof(float) * nh), *sn = (float *)up(p->sin_, sizeof(float) * nh);
    float *x = (float *)up(p->x, sizeof(float) * nx);
    glm_cu_rope_params c = {p->n_tokens, p->n_heads, p->head_stride, p->offset, p->dim, p->interleaved, cs, sn, x};
    CK(glm_cu_rope(&c, 0));
    down(p->x, x, sizeof(float) * nx);
    cudaFree(cs);
    cudaFree(sn);
    cudaFree(x);
}

/* ---- linear --------------------------------------------------------------------------- */

/* One ctx for every call (as the backend keeps one per stream), with 2 cache slots: the cases'
 * shapes keep replacing each other, so refilled slots are under test, and the first call of a
 * case mostly misses while its repeat must hit. */
static void cu_linear(void *ctx, const glm_weight *w, int row0, int n_rows, const float *x, int ldx, int n, float *y,
                      int ldy, int force_plain, int *path, int *repeat_ok)
{
    static cublasHandle_t blas;
    static cublasLtHandle_t lt;
    static glm_cu_linear_ctx lc;
    const size_t lt_bytes = (size_t)32 << 20;
    if (!blas) {
        if (cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS || cublasLtCreate(&lt) != CUBLAS_STATUS_SUCCESS) {
            fprintf(stderr, "cuda row: cannot create the cuBLAS handles\n");
            exit(1);
        }
        lc.blas = blas;
        lc.lt = lt;
        lc.lt_ws = up(NULL, lt_bytes);
        lc.lt_ws_bytes = lt_bytes;
        lc.lt_cache_slots = 2;
    }
    lc.force_plain_fp8 = force_plain;
    /* the weight in its own dtype (weight_up widens BF16 to F32): the BF16 path is under test */
    dev_weight dw;
    {
        glm_dw_mode mode = w->dtype == GLM_DTYPE_BF16 ? GLM_DW_NATIVE : GLM_DW_F32;
        size_t bytes = glm_dweight_bytes(w, mode), st_bytes = (size_t)1 << 20;
        void *st = NULL;
        CK(cudaMalloc(&dw.mem, bytes));
        CK(cudaMallocHost(&st, st_bytes));
        CK(glm_dweight_upload(&dw.w, w, mode, dw.mem, st, st_bytes, 0));
        CK(cudaFreeHost(st));
    }
    size_t ny = strided(n, ldy, n_rows);
    float *dx = (float *)up(x, sizeof(float) * strided(n, ldx, w->cols));
    float *dy = (float *)up(y, sizeof(float) * ny), *dy2 = (float *)up(y, sizeof(float) * ny);
    glm_cu_linear_params c = {n, &dw.w, row0, n_rows, dx, ldx, dy, ldy};
    size_t wsb = glm_cu_linear_workspace(&dw.w, n);
    void *ws = up(NULL, wsb);
    char err[256];
    glm_cu_linear_stats s0 = lc.stats;
    if (glm_cu_linear(&lc, &c, ws, wsb, 0, err, sizeof err) != 0) {
        fprintf(stderr, "cuda row: linear: %s\n", err);
        exit(1);
    }
    glm_cu_linear_stats s1 = lc.stats;
    c.y = dy2;
    if (glm_cu_linear(&lc, &c, ws, wsb, 0, err, sizeof err) != 0) {
        fprintf(stderr, "cuda row: linear (repeat): %s\n", err);
        exit(1);
    }
    glm_cu_linear_stats s2 = lc.stats;
    *path = s1.fp8_plain > s0.fp8_plain ? CUDA_ROW_LIN_PLAIN
            : s1.fp8_lt_staged > s0.fp8_lt_staged ? CUDA_ROW_LIN_LT_STAGED
            : s1.fp8_lt > s0.fp8_lt ? CUDA_ROW_LIN_LT
                                    : CUDA_ROW_LIN_OTHER;
    down(y, dy, sizeof(float) * ny);
    float *y2 = (float *)malloc(sizeof(float) * (ny ? ny : 1));
    down(y2, dy2, sizeof(float) * ny);
    *repeat_ok = s2.lt_heuristic == s1.lt_heuristic && s2.lt_layouts_created == s1.lt_layouts_created &&
                 s2.lt_layouts_created <= 3 * (unsigned long)lc.lt_cache_slots &&
                 s2.fp8_lt - s1.fp8_lt == s1.fp8_lt - s0.fp8_lt &&
                 s2.fp8_plain - s1.fp8_plain == s1.fp8_plain - s0.fp8_plain &&
                 memcmp(y, y2, sizeof(float) * ny) == 0;
    free(y2);
    cudaFree(dx);
    cudaFree(dy);
    cudaFree(dy2);
    cudaFree(ws);
    cudaFree(dw.mem);
}

/* ---- the row ---------------------------------------------------------------------------- */

void cuda_row_init(cuda_row_ops *o)
{
    *o = (cuda_row_ops){cu_mla_absorb, cu_mla_attn, cu_mla_expand, cu_dsa_select, cu_moe_route, cu_moe_experts,
                        cu_rmsnorm, cu_layernorm, cu_rope_angles, cu_rope, cu_linear};
}

const char *cuda_row_order(void)
{
#if GLM_CUDA_ON_CPU
    switch (glm_cpu::get_order()) {
    case glm_cpu::ORDER_REVERSE:
        return "reverse";
    case glm_cpu::ORDER_RANDOM:
        return "random";
    default:
        return "forward";
    }
#else
    return "gpu";
#endif
}
