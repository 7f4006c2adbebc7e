/*
 * ref_moe.c - the reference MoE ops (ref_ops.h): GLM-5's router (sigmoid
 * scores, correction bias for the choice only, group-limited top-k,
 * renormalised and scaled weights) and the routed experts' SwiGLU.
 *
 * The experts run grouped by expert: every (token, k) assignment gets a row
 * in expert order, gate and up of all active experts share one parallel loop
 * (each expert's weights are read once per step whatever the token count),
 * then down, then each token sums its rows in k order (ascending expert id).
 * A token's result never depends on which other tokens share the step.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/ref_ops.h"
#include "cpu/ref_ws.h"

/* ---- router -------------------------------------------------------------------- */

typedef struct {
    float v;
    int e;
} ev;

/* value descending, then index ascending: a strict total order */
static int ev_cmp(const void *a, const void *b)
{
    const ev *x = a, *y = b;
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return (x->e > y->e) - (x->e < y->e);
}

static int int32_cmp(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* One token's route (cpu_backend.c's route()). */
static void route_one(const glm_ref_moe_route_params *p, const float *logits, int32_t *ids, float *wts)
{
    int E = p->n_experts, G = p->n_group, per = E / G, K = p->top_k;
    float score[E], choice[E];
    ev gs[G], cand[E];
    for (int e = 0; e < E; e++) {
        score[e] = 1.0f / (1.0f + expf(-logits[e]));
        choice[e] = score[e] + p->bias[e];
    }
    for (int g = 0; g < G; g++) {
        float a = -INFINITY, b = -INFINITY; /* top two of the group */
        for (int e = g * per; e < (g + 1) * per; e++) {
            float v = choice[e];
            if (v > a) {
                b = a;
                a = v;
            } else if (v > b) {
                b = v;
            }
        }
        gs[g].v = per >= 2 ? a + b : a;
        gs[g].e = g;
    }
    qsort(gs, (size_t)G, sizeof *gs, ev_cmp);
    int nc = 0;
    for (int k = 0; k < p->topk_group; k++)
        for (int e = gs[k].e * per; e < (gs[k].e + 1) * per; e++)
            cand[nc++] = (ev){choice[e], e};
    qsort(cand, (size_t)nc, sizeof *cand, ev_cmp);
    for (int k = 0; k < K; k++)
        ids[k] = cand[k].e;
    qsort(ids, (size_t)K, sizeof *ids, int32_cmp);
    float sum = 0;
    for (int k = 0; k < K; k++) {
        wts[k] = score[ids[k]];
        sum += wts[k];
    }
    float den = p->norm_topk_prob ? sum + 1e-20f : 1.0f;
    for (int k = 0; k < K; k++)
        wts[k] = wts[k] / den * p->scaling;
}

static void route_task(void *ctx, int t, int worker)
{
    const glm_ref_moe_route_params *p = ctx;
    route_one(p, p->logits + (size_t)t * p->n_experts, p->ids + (size_t)t * p->top_k,
              p->weights + (size_t)t * p->top_k);
}

void glm_ref_moe_route(glm_pool *pool, const glm_ref_moe_route_params *p)
{
    GLM_ASSERT(p->n_group >= 1 && p->n_experts % p->n_group == 0);
    GLM_ASSERT(p->topk_group >= 1 && p->topk_group <= p->n_group);
    GLM_ASSERT(p->top_k >= 1 && p->top_k <= p->topk_group * (p->n_experts / p->n_group));
    glm_ref_for(pool, p->n_tokens, (size_t)p->n_experts, route_task, (void *)p);
}

/* ---- experts ------------------------------------------------------------------- */

typedef struct {
    int32_t *first;      /* [E + 1] first row of each expert */
    int32_t *fill;       /* [E] */
    int32_t *tok;        /* [n * K] token of each row */
    int32_t *row_of;     /* [n * K] assignment (t, k) -> row */
    float *g, *u;        /* [n * K, inter] */
    float *y;            /* [n * K, hidden] */
    glm_matmul_job *jobs;/* [2E] */
} experts_ws;

static size_t experts_carve(const glm_ref_moe_experts_params *p, void *ws, size_t size, experts_ws *x)
{
    size_t E = (size_t)p->n_experts, rows = (size_t)p->n_tokens * p->top_k;
    glm_ref_ws w = glm_ref_ws_begin(ws);
    experts_ws c;
    c.first = glm_ref_ws_take(&w, sizeof(int32_t) * (E + 1));
    c.fill = glm_ref_ws_take(&w, sizeof(int32_t) * E);
    c.tok = glm_ref_ws_take(&w, sizeof(int32_t) * rows);
    c.row_of = glm_ref_ws_take(&w, sizeof(int32_t) * rows);
    c.g = glm_ref_ws_take(&w, sizeof(float) * rows * p->inter);
    c.u = glm_ref_ws_take(&w, sizeof(float) * rows * p->inter);
    c.y = glm_ref_ws_take(&w, sizeof(float) * rows * p->hidden);
    c.jobs = glm_ref_ws_take(&w, sizeof(glm_matmul_job) * 2 * E);
    if (x)
        *x = c;
    return glm_ref_ws_end(&w, size);
}

size_t glm_ref_moe_experts_workspace(const glm_ref_moe_experts_params *p, int n_workers)
{
    return experts_carve(p, NULL, 0, NULL);
}

typedef struct {
    const glm_ref_moe_experts_params *p;
    const experts_ws *w;
} sum_ctx;

/* out[t] = sum_k weights[t, k] * y[row_of[t, k]] in k order */
static void sum_task(void *ctx, int t, int worker)
{
    const sum_ctx *s = ctx;
    const glm_ref_moe_experts_params *p = s->p;
    int H = p->hidden, K = p->top_k;
    float *o = p->out + (size_t)t * H;
    memset(o, 0, sizeof(float) * (size_t)H);
    for (int k = 0; k < K; k++) {
        if (s->w->row_of[t * K + k] < 0) /* another rank's expert */
            continue;
        const float *y = s->w->y + (size_t)s->w->row_of[t * K + k] * H;
        float wk = p->weights[t * K + k];
        for (int i = 0; i < H; i++)
            o[i] += y[i] * wk;
    }
}

void glm_ref_moe_experts(glm_pool *pool, const glm_ref_moe_experts_params *p, void *ws, size_t ws_size)
{
    int n = p->n_tokens, H = p->hidden, E = p->n_experts, K = p->top_k, I = p->inter;
    experts_ws w;
    experts_carve(p, ws, ws_size, &w);

    /* group assignments by expert: token lists and output rows */
    memset(w.first, 0, sizeof(int32_t) * (size_t)(E + 1));
    memset(w.fill, 0, sizeof(int32_t) * (size_t)E);
    for (int i = 0; i < n * K; i++) {
        GLM_ASSERT(p->ids[i] >= 0 && p->ids[i] < E && (i % K == 0 || p->ids[i] > p->ids[i - 1]));
        if (p->gate[p->ids[i]].data)
            w.first[p->ids[i] + 1]++;
    }
    for (int e = 0; e < E; e++)
        w.first[e + 1] += w.first[e];
    for (int t = 0; t < n; t++)
        for (int k = 0; k < K; k++) {
            int e = p->ids[t * K + k];
            if (!p->gate[e].data) {
                w.row_of[t * K + k] = -1;
                continue;
            }
            int r = w.first[e] + w.fill[e]++;
            w.tok[r] = t;
            w.row_of[t * K + k] = r;
        }

    size_t rows = (size_t)n * K;
    int nj = 0;
    for (int e = 0; e < E; e++) {
        int ne = w.first[e + 1] - w.first[e];
        if (!ne)
            continue;
        w.jobs[nj++] = (glm_matmul_job){&p->gate[e], 0, I, p->x, H, w.tok + w.first[e], ne,
                                        w.g + (size_t)w.first[e] * I, I, 0};
        w.jobs[nj++] = (glm_matmul_job){&p->up[e], 0, I, p->x, H, w.tok + w.first[e], ne,
                                        w.u + (size_t)w.first[e] * I, I, 0};
    }
    glm_matmul_jobs(pool, w.jobs, nj);
    glm_swiglu(w.g, w.u, rows * (size_t)I);
    nj = 0;
    for (int e = 0; e < E; e++) {
        int ne = w.first[e + 1] - w.first[e];
        if (ne)
            w.jobs[nj++] = (glm_matmul_job){&p->down[e], 0, H, w.g + (size_t)w.first[e] * I, I, NULL, ne,
                                            w.y + (size_t)w.first[e] * H, H, 0};
    }
    glm_matmul_jobs(pool, w.jobs, nj);

    sum_ctx s = {p, &w};
    glm_ref_for(pool, n, (size_t)p->top_k * H, sum_task, &s);
}
