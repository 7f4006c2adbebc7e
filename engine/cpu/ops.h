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

#include "core/threadpool.h"
#include "model/weight.h"

/* The fixed-order dot product every kernel uses (see the file comment). */
float glm_dot(const float *a, const float *b, int n);

/* out[i] = glm_dot(a[i], b, n) for i < 4, bit for bit, as four independent chains (a single
 * chain waits on each multiply-add's latency). */
void glm_dot4(const float *const a[4], const float *b, int n, float out[4]);

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
    int first_task;     /* set by glm_matmul_jobs: its first task's index in the loop */
} glm_matmul_job;

/* Runs the jobs in one parallel loop (writing each job's first_task). With a
 * pool, each worker widens weight rows into the pool's scratch: reserve
 * glm_matmul_scratch_bytes(widest cols) with glm_pool_reserve once and the
 * loop allocates nothing. */
void glm_matmul_jobs(glm_pool *pool, glm_matmul_job *jobs, int n_jobs);

/* Per-worker scratch a matmul over weights of `cols` columns uses. */
size_t glm_matmul_scratch_bytes(int cols);

/* The matmul kernels in use: "avx512" (chosen at run time where the CPU has AVX-512 and the
 * build fuses multiply-adds), "avx2" or "generic". Every set computes the same bits. */
const char *glm_ops_kernels(void);

/* Turns the AVX-512 kernels off (0) or back on where the CPU has them (1); returns whether they
 * were on. For tests and benchmarks that compare the kernel sets. */
int glm_ops_set_avx512(int on);


/* y = x / sqrt(mean(x^2) + eps) * w (w may be NULL: no scale). In place ok. */
void glm_rmsnorm(float *y, const float *x, const float *w, int n, float eps);

/* y = (x - mean) / sqrt(var + eps) * w + b (population variance). In place ok. */
void glm_layernorm(float *y, const float *x, const float *w, const float *b, int n, float eps);

/* silu(g) * u elementwise into g. */
void glm_swiglu(float *g, const float *u, size_t n);

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
