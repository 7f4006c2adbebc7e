/*
 * ops.h - CPU kernels of the forward pass: matmuls against weights kept in
 * their stored dtype (F32, BF16, F16, FP8-E4M3 with block scales), norms,
 * RoPE, activation.
 *
 * Batch invariance: every output element of a matmul is one dot product whose
 * summation order depends only on the reduction length (8 interleaved lanes,
 * a fixed pairwise lane sum, then the tail in order), never on how many rows
 * or tokens are computed together, how they are tiled or which thread runs
 * them. A token's results are therefore bitwise identical whatever else is in
 * the batch.
 */
#ifndef GLM_OPS_H
#define GLM_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/threadpool.h"

/* A 2-D weight [rows = out features, cols = in features] in its stored dtype. */
typedef struct {
    const void *data;     /* [rows, cols], row-major, may be unaligned */
    glm_dtype dtype;      /* F32, F16, BF16 or F8_E4M3 */
    int rows, cols;
    const float *scale;   /* F8_E4M3 only: [ceil(rows/block_r), ceil(cols/block_c)] */
    int block_r, block_c; /* 128, 128 for FP8 checkpoints */
} glm_weight;

/* Converts rows [r0, r0+n) of w to float32 into dst [n, w->cols]. */
void glm_weight_rows_f32(const glm_weight *w, int r0, int n, float *dst);

/* The fixed-order dot product every kernel uses (see the file comment). */
float glm_dot(const float *a, const float *b, int n);

/*
 * y[t, r] = sum_k x[t, k] * w[r, k] for t < n_tok, r < w->rows.
 * x: [n_tok, ldx] (uses the first w->cols columns); y: [n_tok, ldy].
 * Parallel over row chunks on pool (may be NULL).
 */
void glm_matmul(glm_pool *pool, const glm_weight *w, const float *x, int ldx, int n_tok,
                float *y, int ldy);

/*
 * Several independent matmuls in one parallel loop (the experts of a MoE
 * layer, gate and up of a SwiGLU): job j computes rows [row0, row0+nrows)
 * of w for the n_tok rows of x whose indices are in tok (or 0..n_tok-1 when tok is
 * NULL), writing y[i * ldy + (r - row0)] for the i-th token of the job.
 */
typedef struct {
    const glm_weight *w;
    int row0, nrows;
    const float *x;
    int ldx;
    const int32_t *tok; /* [n_tok] row indices into x, or NULL */
    int n_tok;
    float *y;           /* [n_tok, ldy] */
    int ldy;
} glm_matmul_job;

void glm_matmul_jobs(glm_pool *pool, const glm_matmul_job *jobs, int n_jobs);

/* The same with the caller's task table, starts: [n_jobs + 1] ints, so that
 * any number of jobs runs without allocating (glm_matmul_jobs allocates it
 * from 64 jobs on). */
void glm_matmul_jobs_ws(glm_pool *pool, const glm_matmul_job *jobs, int n_jobs, int *starts);


/* y = x / sqrt(mean(x^2) + eps) * w (w may be NULL: no scale). In place ok. */
void glm_rmsnorm(float *y, const float *x, const float *w, int n, float eps);

/* y = (x - mean) / sqrt(var + eps) * w + b (population variance). In place ok. */
void glm_layernorm(float *y, const float *x, const float *w, const float *b, int n, float eps);

/* silu(g) * u elementwise into g. */
void glm_swiglu(float *g, const float *u, int n);

/*
 * Interleaved-pair RoPE as GLM-5 applies it (main attention and indexer):
 * pairs (x[2i], x[2i+1]) rotate by angle pos * inv_freq[i], and the result is
 * laid out de-interleaved: out = [x0', x2', ..., | x1', x3', ...]. Queries and
 * keys get the same permutation, so their dot products are those of the
 * interleaved form. x: [dim], in place. cos/sin: [dim/2] for this position.
 */
void glm_rope_interleaved(float *x, const float *cos_, const float *sin_, int dim);

/* NeoX (split-half) RoPE: (x[i], x[i + dim/2]) rotate by angle i. In place. */
void glm_rope_neox(float *x, const float *cos_, const float *sin_, int dim);

/*
 * The k best of scores[0..n) (larger first; equal scores: lower index first;
 * NaN counts as -inf), written to idx[0..k) in ascending index order.
 * O(n) expected. scratch: room for 2 * n floats. 1 <= k <= n.
 */
void glm_topk(const float *scores, int n, int k, int32_t *idx, float *scratch);

/* cos/sin tables of one position: inv_freq[i] = theta^(-2i/dim) (rounded to
 * float), angle = (float)pos * inv_freq[i] in float, as the reference does. */
void glm_rope_angles(int pos, double theta, int dim, float *cos_, float *sin_);

#endif
