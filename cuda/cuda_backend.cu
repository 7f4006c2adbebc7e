/*
 * cuda_backend.cu - the GLM-5 forward pass on one CUDA device, behind the
 * backend interface (engine/backend/backend.h). The computation is that of
 * engine/cpu/cpu_backend.c step for step; each step is a kernel of this
 * directory (norm, linear, mla, dsa, moe), checked op by op against the CPU
 * reference ops by tests/backend/test-backend-ops.
 *
 * Device model (created once, nothing allocated afterwards):
 *   - weights: one device allocation holding every weight the forward reads,
 *     uploaded from the memory-mapped checkpoint through one pinned staging
 *     buffer (cuda/dweight.h): BF16 as stored and F32 narrowed to BF16 by
 *     default, both widened to F32 under --dtype float32; FP8 e4m3 weights
 *     stay FP8 with their 128 x 128 block scales in either mode. Norm weights,
 *     biases and the router (whose choice must not move with a rounding) are
 *     float32.
 *   - the KV cache: per layer the latent row [kv_lora | rope] of every token
 *     slot and, on layers with their own indexer, the index key [index_dim];
 *     BF16 by default, F32 under --dtype float32. Its size is what remains of
 *     --gpu-memory-utilization of the device once the weights, the workspace
 *     and what other processes hold are counted (printed at start-up with the
 *     arithmetic), or exactly kv_blocks / kv_bytes when asked.
 *   - the workspace: the step's activations for max_num_batched_tokens rows,
 *     the batch description, every op's scratch, the logits of max_logits_rows
 *     rows, carved from one allocation by a table of sizes.
 *
 * A step: the batch goes up in one copy; the layers run on one stream; the
 * logits rows stay on the device until logits() asks for them. sample()
 * runs the device sampler (cuda/sample.h) on them: only the tokens and the
 * requested logprobs come back (see sample_rows for the rows that the host
 * sampler takes instead).
 *
 * With a draft layer (draft_layers 1: speculative decoding, model.h: glm_mtp)
 * the MTP layer is one more dlayer (layers[num_hidden_layers]) with its own KV
 * cache layer, forward keeps every row's final hidden state (after model.norm)
 * on the device, and draft runs, eagerly (see "the draft"):
 *   x = eh_proj([enorm(embed(next tokens)) | hnorm(hidden rows)])
 *   the decoder layer on x, h = shared_head.norm(x) (kept for a chained draft)
 *   logits = lm_head(h) for the rows asked for, replacing the last forward's.
 */
#include "cuda/glm_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/dsa.h"
#include "cuda/dweight.h"
#include "cuda/linear.h"
#include "cuda/mla.h"
#include "cuda/moe.h"
#include "cuda/norm.h"
#include "cuda/sample.h"

extern "C" {
#include "backend/backend.h"
#include "comm/comm.h"
#include "core/carve.h"
#include "core/util.h"
}

#define ALIGN 256
#define STAGING_BYTES ((size_t)32 << 20)
#define LT_WS_BYTES ((size_t)32 << 20)
#define BLAS_WS_BYTES ((size_t)32 << 20)
/* The device sampler's edits (penalties, logit_bias, min_tokens) per step: this many per
 * logits row, pooled over the step's rows. 4096 covers the distinct ids of a long
 * history; a row that finds the pool full is sampled on the host (sample_rows). */
#define SAMPLE_EDITS_PER_ROW 4096
/* Rows the host samples (past the edit pool) are copied down this many at a time. */
#define HOST_ROWS 8

/* ---- the device model ------------------------------------------------------------- */

typedef struct {
    float *input_norm, *q_a_norm, *kv_a_norm, *post_norm;  /* [H], [q_lora], [kv_lora], [H] */
    glm_dweight q_a, q_b, kv_a, kv_b, o;
    int has_indexer;
    glm_dweight idx_wq_b, idx_wk, idx_weights_proj;
    float *idx_k_norm_w, *idx_k_norm_b;                    /* [index_dim] */
    int sparse;
    glm_dweight gate, up, down;                            /* dense layers */
    glm_dweight router;                                    /* [E, H] float32 */
    float *router_bias;                                    /* [E] */
    glm_dweight *experts;                                  /* device [3E]: gate[E], up[E], down[E] */
    glm_dweight sh_gate, sh_up, sh_down;
    void *latent;                                          /* [slots, kv_lora + rope] kv dtype */
    void *index_k;                                         /* [slots, index_dim], NULL on shared layers */
} dlayer;

/* The MTP layer's own weights beside its decoder layer (model.h: glm_mtp). */
typedef struct {
    glm_dweight eh_proj;                                   /* [H, 2H] */
    float *enorm, *hnorm, *head_norm;                      /* [H] */
} dmtp;

/* The step's buffers (device unless stated), sized for T = max_num_batched_tokens rows. */
typedef struct {
    int32_t *tok, *pos, *seq_of, *bt, *li;  /* batch: [T], [T], [T], [S, MB], [max_logits] */
    int64_t *slot;                          /* [T] */
    int32_t *hrow;                          /* [T] a draft's hidden-state rows (draft layer only) */
    void *batch_dev;                        /* the batch arrays above, one region */
    void *batch_host;                       /* pinned twin of batch_dev */
    size_t batch_bytes;
    float *cos_, *sin_;                     /* [T, rope/2] */
    float *x, *h, *tmp_h;                   /* [T, H] */
    float *q_resid;                         /* [T, q_lora] */
    float *q;                               /* [T, heads * qk_head] */
    float *kv_a;                            /* [T, kv_lora + rope] */
    float *q_lat;                           /* [T, heads, kv_lora + rope] */
    float *o_lat;                           /* [T, heads, kv_lora] */
    float *attn;                            /* [T, heads * v] */
    float *iq, *ik, *iw;                    /* indexer: [T, ih * id], [T, id], [T, ih] */
    int32_t *topk;                          /* [T, index_topk] */
    float *ffn_g, *ffn_u, *shared;          /* [T, ffnI], [T, ffnI], [T, H] */
    float *router;                          /* [T, E] */
    int32_t *exp_ids;                       /* [T, K] */
    float *exp_w;                           /* [T, K] */
    float *final_h;                         /* [max_logits, H] */
    float *logits;                          /* [max_logits, V] of the last forward */
    float *logits_part;                     /* tensor parallelism: [world, max_logits, vocab_stride],
                                               every rank's rows of the vocabulary (all-gathered) */
    void *lin_ws, *attn_ws, *dsa_ws, *moe_ws, *lt_ws, *blas_ws;
    size_t lin_ws_bytes, attn_ws_bytes, dsa_ws_bytes, moe_ws_bytes;
    void *smp_in;                           /* sampler input, one region: descs then edits */
    size_t smp_in_bytes;
    glm_cu_sample_desc *smp_desc;           /* [max_logits] */
    glm_cu_sample_edit *smp_edit;           /* [max_logits * SAMPLE_EDITS_PER_ROW] */
    glm_sampler_result *smp_out;            /* [max_logits] */
    /* draft (MTP) layer only, else NULL */
    float *fin_h;                           /* [T, H] final hidden state of every row of the last forward */
    float *draft_h;                         /* [T, H] the MTP output (after shared_head.norm) of the last draft */
    float *eh_in;                           /* [T, 2H] eh_proj's input */
} dstep;

typedef struct cuda_backend {
    glm_backend base;
    const glm_model *m;
    const glm_config *c;
    int device;
    glm_dw_mode mode;
    glm_dtype kv_dtype;
    glm_comm *comm;                         /* tensor parallelism: the world's; NULL at world 1 */
    cudaStream_t stream;
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    glm_cu_linear_ctx lin;
    glm_dweight embed, lm_head;
    float *final_norm;
    dlayer *layers;                         /* [num_hidden_layers + draft]: the MTP layer last */
    int draft;                              /* holds the MTP layer (draft_layers 1) */
    dmtp mtp;
    int fin_n, draft_n;                     /* rows of s.fin_h / s.draft_h that hold the last forward's /
                                               the last draft's */
    void *weights;                          /* the one weight allocation */
    size_t weight_bytes;
    void *kv;                               /* the one KV allocation */
    int num_blocks, block_size;
    void *ws;                               /* the one workspace allocation */
    dstep s;
    int n_logits;                           /* rows the last forward kept */
    int max_ctx;
    float *host_rows;                       /* pinned [HOST_ROWS, V]: rows the host samples */
    void *sampler_ws;                       /* the host sampler's workspace (rows it samples, in turn) */
    size_t sampler_ws_size;
    glm_cu_sample_host smp;                 /* descriptor preparation (host) */
    void *smp_pinned;                       /* pinned twin of s.smp_in, then results [max_logits] */
    glm_cu_sample_desc *smp_desc_h;
    glm_cu_sample_edit *smp_edit_h;
    glm_sampler_result *smp_out_h;
    int *smp_slot;                          /* [max_logits] per request: result index, -1 host */
    float *trace;                           /* host [L + 1, n, H], or NULL */
    /* decode graphs (see "decode as CUDA graphs") */
    int graphs_enabled;                     /* p->cuda_graphs */
    int capture_ok;                         /* 0 once the device refused a capture */
    int graph_max_seqs;                     /* largest padded decode batch */
    int scratch_block;                      /* KV block the padding sequences use */
    struct dgraph *graphs;                  /* [MAX_GRAPHS] */
    int n_graphs;
} cuda_backend;

typedef struct dgraph {
    int n, mbps;                            /* the padded shape */
    int runs;                               /* eager runs so far (the first is the warm-up) */
    cudaGraphExec_t exec;                   /* NULL until captured */
} dgraph;

/* ---- errors ------------------------------------------------------------------------- */

#define CUDA_TRY(call)                                                                              \
    do {                                                                                            \
        cudaError_t e_ = (call);                                                                    \
        if (e_ != cudaSuccess) {                                                                    \
            glm_err(err, errlen, "cuda: %s (%s:%d): %s", #call, __FILE__, __LINE__,                 \
                    cudaGetErrorString(e_));                                                        \
            return GLM_BACKEND_FAILURE;                                                             \
        }                                                                                           \
    } while (0)

#define LIN_TRY(call)                                                                               \
    do {                                                                                            \
        if ((call) != 0)                                                                            \
            return GLM_BACKEND_FAILURE;                                                             \
    } while (0)

/* ---- sizes ------------------------------------------------------------------------------ */

static size_t align_up(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

/* The batch arrays' parts (device region and its pinned twin share the layout). */
static int batch_parts(dstep *s, const glm_backend_params *p, glm_part *bp)
{
    size_t T = (size_t)p->max_num_batched_tokens, Lr = (size_t)GLM_MAX(p->max_logits_rows, 1);
    size_t bt = (size_t)p->max_num_seqs * (size_t)p->max_blocks_per_seq;
    bp[0] = (glm_part){(void **)&s->tok, sizeof(int32_t) * T};
    bp[1] = (glm_part){(void **)&s->pos, sizeof(int32_t) * T};
    bp[2] = (glm_part){(void **)&s->seq_of, sizeof(int32_t) * T};
    bp[3] = (glm_part){(void **)&s->bt, sizeof(int32_t) * bt};
    bp[4] = (glm_part){(void **)&s->li, sizeof(int32_t) * Lr};
    bp[5] = (glm_part){(void **)&s->slot, sizeof(int64_t) * T};
    bp[6] = (glm_part){(void **)&s->hrow, p->draft_layers ? sizeof(int32_t) * T : 0};
    return 7;
}

/* The pinned host twin of a pointer into the batch's device region. */
static void *host_twin(const dstep *s, const void *dev)
{
    return (char *)s->batch_host + ((const char *)dev - (const char *)s->batch_dev);
}

/* ---- weights ------------------------------------------------------------------------ */

/* A weight or a float vector to upload, and where its device description goes. */
typedef struct {
    const glm_weight *w;   /* a weight, or NULL for a vector */
    glm_dw_mode mode;
    glm_dweight *out;
    const float *vec;      /* a vector of n floats */
    size_t n;
    float **vout;
} upload;

typedef struct {
    upload *u;
    int n, cap;
} upload_list;

static void push(upload_list *l, upload u)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->u = (upload *)glm_realloc(l->u, sizeof *l->u * (size_t)l->cap);
    }
    l->u[l->n++] = u;
}

static void add_weight(upload_list *l, const glm_weight *w, glm_dw_mode mode, glm_dweight *out)
{
    push(l, (upload){w, mode, out, NULL, 0, NULL});
}

static void add_vector(upload_list *l, const float *v, size_t n, float **out)
{
    *out = NULL;
    if (v)
        push(l, (upload){NULL, GLM_DW_NATIVE, NULL, v, n, out});
}

static size_t upload_bytes(const upload *u)
{
    return u->w ? glm_dweight_bytes(u->w, u->mode) : sizeof(float) * u->n;
}

/* One decoder layer's tensors into d; its experts' descriptions into eh [3E]. */
static void list_layer(cuda_backend *be, upload_list *l, const glm_layer *L, dlayer *d, glm_dweight *eh)
{
    const glm_config *c = be->c;
    glm_dw_mode mode = be->mode;
    int H = c->hidden_size, E = c->n_routed_experts;
    add_vector(l, L->input_norm, (size_t)H, &d->input_norm);
    add_vector(l, L->q_a_norm, (size_t)c->q_lora_rank, &d->q_a_norm);
    add_vector(l, L->kv_a_norm, (size_t)c->kv_lora_rank, &d->kv_a_norm);
    add_vector(l, L->post_norm, (size_t)H, &d->post_norm);
    add_weight(l, &L->q_a, mode, &d->q_a);
    add_weight(l, &L->q_b, mode, &d->q_b);
    add_weight(l, &L->kv_a, mode, &d->kv_a);
    add_weight(l, &L->kv_b, mode, &d->kv_b);
    add_weight(l, &L->o, mode, &d->o);
    d->has_indexer = L->has_indexer;
    if (L->has_indexer) {
        add_weight(l, &L->idx_wq_b, mode, &d->idx_wq_b);
        add_weight(l, &L->idx_wk, mode, &d->idx_wk);
        add_weight(l, &L->idx_weights_proj, mode, &d->idx_weights_proj);
        add_vector(l, L->idx_k_norm_w, (size_t)c->index_head_dim, &d->idx_k_norm_w);
        add_vector(l, L->idx_k_norm_b, (size_t)c->index_head_dim, &d->idx_k_norm_b);
    }
    d->sparse = L->sparse;
    if (!L->sparse) {
        add_weight(l, &L->gate, mode, &d->gate);
        add_weight(l, &L->up, mode, &d->up);
        add_weight(l, &L->down, mode, &d->down);
        return;
    }
    add_weight(l, &L->router, GLM_DW_F32, &d->router);
    add_vector(l, L->router_bias, (size_t)E, &d->router_bias);
    for (int e = 0; e < E; e++) {
        if (!L->exp_gate[e].data) /* another rank's expert: its entry stays empty */
            continue;
        add_weight(l, &L->exp_gate[e], mode, &eh[e]);
        add_weight(l, &L->exp_up[e], mode, &eh[E + e]);
        add_weight(l, &L->exp_down[e], mode, &eh[2 * E + e]);
    }
    if (c->n_shared_experts > 0) {
        add_weight(l, &L->sh_gate, mode, &d->sh_gate);
        add_weight(l, &L->sh_up, mode, &d->sh_up);
        add_weight(l, &L->sh_down, mode, &d->sh_down);
    }
}

/* Every tensor the forward (and the draft) reads; the expert tables' device arrays come after. */
static void list_weights(cuda_backend *be, upload_list *l, glm_dweight *exp_host)
{
    const glm_model *m = be->m;
    const glm_config *c = be->c;
    glm_dw_mode mode = be->mode;
    int H = c->hidden_size, E = c->n_routed_experts, L = c->num_hidden_layers;
    add_weight(l, &m->embed, mode, &be->embed);
    add_weight(l, &m->lm_head, mode, &be->lm_head);
    add_vector(l, m->final_norm, (size_t)H, &be->final_norm);
    for (int li = 0; li < L; li++)
        list_layer(be, l, &m->layers[li], &be->layers[li], exp_host + (size_t)li * 3 * E);
    if (be->draft) {
        const glm_mtp *t = m->mtp;
        list_layer(be, l, &t->layer, &be->layers[L], exp_host + (size_t)L * 3 * E);
        add_weight(l, &t->eh_proj, mode, &be->mtp.eh_proj);
        add_vector(l, t->enorm, (size_t)H, &be->mtp.enorm);
        add_vector(l, t->hnorm, (size_t)H, &be->mtp.hnorm);
        add_vector(l, t->head_norm, (size_t)H, &be->mtp.head_norm);
    }
}

/* Uploads the model: one allocation, one staging buffer, each tensor once. */
static int upload_model(cuda_backend *be, char *err, size_t errlen)
{
    const glm_config *c = be->c;
    int L = c->num_hidden_layers + be->draft, E = c->n_routed_experts;
    size_t n_exp = (size_t)L * 3 * (size_t)GLM_MAX(E, 1);
    glm_dweight *exp_host = (glm_dweight *)glm_calloc(n_exp, sizeof(glm_dweight));
    upload_list l = {NULL, 0, 0};
    list_weights(be, &l, exp_host);
    size_t total = 0;
    for (int i = 0; i < l.n; i++)
        total += align_up(upload_bytes(&l.u[i]));
    size_t tables = sizeof(glm_dweight) * n_exp;
    total += align_up(tables);
    be->weight_bytes = total;
    void *staging = NULL;
    int rc = GLM_OK;
    cudaError_t e = cudaMalloc(&be->weights, total);
    if (e != cudaSuccess) {
        be->weights = NULL;
        rc = glm_err(err, errlen, "cuda: cannot allocate %.2f GiB for the weights: %s", total / 1073741824.0,
                     cudaGetErrorString(e));
        goto out;
    }
    e = cudaMallocHost(&staging, STAGING_BYTES);
    if (e != cudaSuccess) {
        staging = NULL;
        rc = glm_err(err, errlen, "cuda: cannot allocate the pinned staging buffer: %s", cudaGetErrorString(e));
        goto out;
    }
    {
        char *p = (char *)be->weights;
        for (int i = 0; i < l.n && rc == GLM_OK; i++) {
            upload *u = &l.u[i];
            if (u->w)
                e = glm_dweight_upload(u->out, u->w, u->mode, p, staging, STAGING_BYTES, be->stream);
            else {
                e = cudaMemcpy(p, u->vec, sizeof(float) * u->n, cudaMemcpyHostToDevice);
                *u->vout = (float *)p;
            }
            if (e != cudaSuccess)
                rc = glm_err(err, errlen, "cuda: uploading a weight: %s", cudaGetErrorString(e));
            p += align_up(upload_bytes(u));
        }
        if (rc == GLM_OK && E > 0) {
            /* the experts' descriptions, one device array per layer */
            e = cudaMemcpy(p, exp_host, tables, cudaMemcpyHostToDevice);
            if (e != cudaSuccess)
                rc = glm_err(err, errlen, "cuda: uploading the expert tables: %s", cudaGetErrorString(e));
            for (int li = 0; li < L; li++)
                be->layers[li].experts = (glm_dweight *)p + (size_t)li * 3 * E;
        }
    }
out:
    if (staging)
        cudaFreeHost(staging);
    free(l.u);
    free(exp_host);
    return rc;
}

/* ---- the step ------------------------------------------------------------------------- */

/* The shape of the step the layers run: what the batch says, or a decode step padded to a
 * graph bucket (the kernels' launch shapes depend on nothing else). */
typedef struct {
    int n;        /* tokens */
    int mbps;     /* row stride of the uploaded block tables */
    int n_logits; /* logits rows (s->li) */
} dims;

static int lin(cuda_backend *be, const glm_dweight *w, const float *x, int ldx, int n, float *y, int ldy, char *err,
               size_t errlen)
{
    glm_cu_linear_params p = {n, w, 0, w->rows, x, ldx, y, ldy};
    return glm_cu_linear(&be->lin, &p, be->s.lin_ws, be->s.lin_ws_bytes, be->stream, err, errlen);
}

static glm_cu_paging paging(const cuda_backend *be, const dims *b)
{
    return (glm_cu_paging){be->s.bt, b->mbps, be->block_size,
                           (int64_t)be->num_blocks * be->block_size, be->s.seq_of, be->s.pos};
}

static int run_indexer(cuda_backend *be, const dims *b, const dlayer *d, char *err, size_t errlen)
{
    const glm_config *c = be->c;
    dstep *s = &be->s;
    cudaStream_t st = be->stream;
    int n = b->n, ih = c->index_n_heads, id = c->index_head_dim, rope = c->qk_rope_head_dim;
    int il = c->indexer_rope_interleave;
    LIN_TRY(lin(be, &d->idx_wq_b, s->q_resid, c->q_lora_rank, n, s->iq, ih * id, err, errlen));
    LIN_TRY(lin(be, &d->idx_wk, s->h, c->hidden_size, n, s->ik, id, err, errlen));
    LIN_TRY(lin(be, &d->idx_weights_proj, s->h, c->hidden_size, n, s->iw, ih, err, errlen));
    glm_cu_rope_params rq = {n, ih, id, 0, rope, il, s->cos_, s->sin_, s->iq};
    CUDA_TRY(glm_cu_rope(&rq, st));
    glm_cu_norm_params kn = {n, id, s->ik, id, NULL, 0, d->idx_k_norm_w, d->idx_k_norm_b, 1e-6f, s->ik, id};
    CUDA_TRY(glm_cu_layernorm(&kn, st));
    glm_cu_rope_params rk = {n, 1, id, 0, rope, il, s->cos_, s->sin_, s->ik};
    CUDA_TRY(glm_cu_rope(&rk, st));
    glm_cu_cache_write_params cw = {n, id, s->ik, id, s->slot, d->index_k, be->kv_dtype};
    CUDA_TRY(glm_cu_cache_write(&cw, st));
    CUDA_TRY(glm_cu_scale(s->iw, 1.0f / sqrtf((float)ih), n, ih, ih, st));
    glm_cu_dsa_params dp = {n, ih, id, c->index_topk, 1.0f / sqrtf((float)id), s->iq, s->iw, d->index_k,
                            be->kv_dtype, paging(be, b), be->max_ctx, s->topk};
    CUDA_TRY(glm_cu_dsa_select(&dp, s->dsa_ws, s->dsa_ws_bytes, st));
    return GLM_OK;
}

static int attention(cuda_backend *be, const dims *b, const dlayer *d, char *err, size_t errlen)
{
    const glm_config *c = be->c;
    dstep *s = &be->s;
    cudaStream_t st = be->stream;
    int n = b->n, H = c->hidden_size, heads = c->num_attention_heads, ql = c->q_lora_rank;
    int R = c->kv_lora_rank, rope = c->qk_rope_head_dim, nope = c->qk_nope_head_dim, qd = c->qk_head_dim;
    int ld = R + rope, V = c->v_head_dim, il = c->rope_interleave;

    LIN_TRY(lin(be, &d->q_a, s->h, H, n, s->q_resid, ql, err, errlen));
    LIN_TRY(lin(be, &d->kv_a, s->h, H, n, s->kv_a, ld, err, errlen));
    glm_cu_norm_params qn = {n, ql, s->q_resid, ql, NULL, 0, d->q_a_norm, NULL, 1e-6f, s->q_resid, ql};
    CUDA_TRY(glm_cu_rmsnorm(&qn, st));
    LIN_TRY(lin(be, &d->q_b, s->q_resid, ql, n, s->q, heads * qd, err, errlen));

    glm_cu_norm_params kn = {n, R, s->kv_a, ld, NULL, 0, d->kv_a_norm, NULL, 1e-6f, s->kv_a, ld};
    CUDA_TRY(glm_cu_rmsnorm(&kn, st));
    glm_cu_rope_params rk = {n, 1, ld, R, rope, il, s->cos_, s->sin_, s->kv_a};
    CUDA_TRY(glm_cu_rope(&rk, st));
    glm_cu_rope_params rq = {n, heads, qd, nope, rope, il, s->cos_, s->sin_, s->q};
    CUDA_TRY(glm_cu_rope(&rq, st));
    glm_cu_cache_write_params cw = {n, ld, s->kv_a, ld, s->slot, d->latent, be->kv_dtype};
    CUDA_TRY(glm_cu_cache_write(&cw, st));

    glm_cu_mla_absorb_params ap = {n, heads, nope, rope, R, V, &d->kv_b, s->q, s->q_lat};
    CUDA_TRY(glm_cu_mla_absorb(&ap, st));
    if (d->has_indexer) {
        int rc = run_indexer(be, b, d, err, errlen);
        if (rc != GLM_OK)
            return rc;
    } /* else: a "shared" layer keeps the previous layer's selection in s->topk */
    glm_cu_mla_attn_params mp = {n, heads, R, rope, c->attn_scale, s->q_lat, d->latent, be->kv_dtype, paging(be, b),
                                 s->topk, c->index_topk, be->max_ctx, s->o_lat};
    CUDA_TRY(glm_cu_mla_attn(&mp, s->attn_ws, s->attn_ws_bytes, st));
    glm_cu_mla_expand_params ep = {n, heads, nope, R, V, &d->kv_b, s->o_lat, s->attn};
    CUDA_TRY(glm_cu_mla_expand(&ep, st));
    LIN_TRY(lin(be, &d->o, s->attn, heads * V, n, s->tmp_h, H, err, errlen));
    return GLM_OK;
}

/* out = down(silu(gate h) * up h) */
static int dense_ffn(cuda_backend *be, int n, const glm_dweight *g, const glm_dweight *u, const glm_dweight *dn,
                     float *out, char *err, size_t errlen)
{
    dstep *s = &be->s;
    int H = be->c->hidden_size, I = g->rows;
    LIN_TRY(lin(be, g, s->h, H, n, s->ffn_g, I, err, errlen));
    LIN_TRY(lin(be, u, s->h, H, n, s->ffn_u, I, err, errlen));
    CUDA_TRY(glm_cu_swiglu(s->ffn_g, s->ffn_u, n, I, I, be->stream));
    LIN_TRY(lin(be, dn, s->ffn_g, I, n, out, H, err, errlen));
    return GLM_OK;
}

static int moe_ffn(cuda_backend *be, int n, const dlayer *d, char *err, size_t errlen)
{
    const glm_config *c = be->c;
    dstep *s = &be->s;
    int H = c->hidden_size, E = c->n_routed_experts, K = c->num_experts_per_tok;
    LIN_TRY(lin(be, &d->router, s->h, H, n, s->router, E, err, errlen));
    glm_cu_moe_route_params rp = {n, E, c->n_group, c->topk_group, K, c->norm_topk_prob, c->routed_scaling_factor,
                                  s->router, d->router_bias, s->exp_ids, s->exp_w};
    CUDA_TRY(glm_cu_moe_route(&rp, be->stream));
    const glm_shard *sh = &be->m->shard;
    glm_cu_moe_experts_params xp = {n, H, c->moe_intermediate_size, E, K, d->experts, d->experts + E,
                                    d->experts + 2 * E, s->h, s->exp_ids, s->exp_w, s->tmp_h,
                                    sh->expert0, sh->n_experts};
    CUDA_TRY(glm_cu_moe_experts(&xp, s->moe_ws, s->moe_ws_bytes, be->stream));
    if (c->n_shared_experts > 0) {
        int rc = dense_ffn(be, n, &d->sh_gate, &d->sh_up, &d->sh_down, s->shared, err, errlen);
        if (rc != GLM_OK)
            return rc;
        CUDA_TRY(glm_cu_add(s->tmp_h, s->shared, (size_t)n * H, be->stream));
    }
    return GLM_OK;
}

static int trace(cuda_backend *be, int entry, int n, char *err, size_t errlen)
{
    size_t H = (size_t)be->c->hidden_size;
    if (be->trace)
        CUDA_TRY(cudaMemcpy(be->trace + (size_t)entry * n * H, be->s.x, sizeof(float) * n * H,
                            cudaMemcpyDeviceToHost));
    return GLM_OK;
}

/* Copies the first bytes of each batch array from the pinned twin to the device: n tokens,
 * n_bt block-table entries, n_li logits rows. */
static int copy_batch_up(cuda_backend *be, int n, size_t n_bt, int n_li, char *err, size_t errlen)
{
    dstep *s = &be->s;
    struct {
        void *d;
        size_t bytes;
    } parts[6] = {{s->tok, sizeof(int32_t) * n},        {s->pos, sizeof(int32_t) * n},
                  {s->seq_of, sizeof(int32_t) * n},     {s->bt, sizeof(int32_t) * n_bt},
                  {s->li, sizeof(int32_t) * (size_t)n_li}, {s->slot, sizeof(int64_t) * n}};
    for (int i = 0; i < 6; i++)
        if (parts[i].bytes)
            CUDA_TRY(cudaMemcpyAsync(parts[i].d, host_twin(s, parts[i].d), parts[i].bytes, cudaMemcpyHostToDevice,
                                     be->stream));
    return GLM_OK;
}

/* The batch arrays into the pinned twin of the device region, then up. */
static int upload_batch(cuda_backend *be, const glm_batch *b, char *err, size_t errlen)
{
    dstep *s = &be->s;
    int n = b->n_tokens;
    memcpy(host_twin(s, s->tok), b->token_ids, sizeof(int32_t) * n);
    memcpy(host_twin(s, s->pos), b->positions, sizeof(int32_t) * n);
    memcpy(host_twin(s, s->slot), b->slot_mapping, sizeof(int64_t) * n);
    memcpy(host_twin(s, s->bt), b->block_tables, sizeof(int32_t) * (size_t)b->n_seqs * b->max_blocks_per_seq);
    if (b->n_logits > 0)
        memcpy(host_twin(s, s->li), b->logits_index, sizeof(int32_t) * b->n_logits);
    int32_t *seq_of = (int32_t *)host_twin(s, s->seq_of);
    for (int q = 0; q < b->n_seqs; q++)
        for (int t = b->cu_seqlens_q[q]; t < b->cu_seqlens_q[q + 1]; t++)
            seq_of[t] = q;
    return copy_batch_up(be, n, (size_t)b->n_seqs * b->max_blocks_per_seq, b->n_logits, err, errlen);
}

/* Tensor parallelism: buf [n] becomes the sum of every rank's, on the stream (comm.h). */
static int reduce(cuda_backend *be, float *buf, size_t n, char *err, size_t errlen)
{
    if (!be->comm)
        return GLM_OK;
    return glm_comm_all_reduce_sum(be->comm, buf, buf, n, be->stream, err, errlen) == GLM_OK ? GLM_OK
                                                                                           : GLM_BACKEND_FAILURE;
}

/* The LM head over s->final_h: s->logits [n_rows, vocab]. A rank computes its rows of the
 * vocabulary; the ranks' blocks are gathered, then laid side by side. */
static int lm_head(cuda_backend *be, int n_rows, char *err, size_t errlen)
{
    dstep *s = &be->s;
    const glm_shard *sh = &be->m->shard;
    int H = be->c->hidden_size, V = be->c->vocab_size;
    if (!be->comm) {
        LIN_TRY(lin(be, &be->lm_head, s->final_h, H, n_rows, s->logits, V, err, errlen));
        return GLM_OK;
    }
    size_t block = (size_t)n_rows * sh->vocab_stride, ld = sizeof(float) * (size_t)sh->vocab_stride;
    float *mine = s->logits_part + (size_t)sh->rank * block;
    LIN_TRY(lin(be, &be->lm_head, s->final_h, H, n_rows, mine, sh->vocab_stride, err, errlen));
    if (glm_comm_all_gather(be->comm, mine, s->logits_part, block * sizeof(float), be->stream, err, errlen) !=
        GLM_OK)
        return GLM_BACKEND_FAILURE;
    for (int r = 0; r < sh->world; r++) {
        int v0 = r * sh->vocab_stride, nv = GLM_MIN(V, v0 + sh->vocab_stride) - v0;
        CUDA_TRY(cudaMemcpy2DAsync(s->logits + v0, sizeof(float) * (size_t)V, s->logits_part + r * block, ld,
                                   sizeof(float) * (size_t)nv, (size_t)n_rows, cudaMemcpyDeviceToDevice,
                                   be->stream));
    }
    return GLM_OK;
}

/* RoPE tables and the embedding rows of the step's n tokens into s->x. */
static int embed_rows(cuda_backend *be, int n, char *err, size_t errlen)
{
    const glm_config *c = be->c;
    dstep *s = &be->s;
    glm_cu_rope_angles_params ra = {n, c->qk_rope_head_dim, c->rope_theta, s->pos, s->cos_, s->sin_};
    CUDA_TRY(glm_cu_rope_angles(&ra, be->stream));
    /* a rank's rows of the vocabulary, zeros for the others' (summed over the ranks: exact) */
    glm_cu_embed_params ep = {n, &be->embed, s->tok, s->x, be->m->shard.vocab0};
    CUDA_TRY(glm_cu_embed(&ep, be->stream));
    return reduce(be, s->x, (size_t)n * c->hidden_size, err, errlen);
}

/* One decoder layer over the step's rows, its KV in d's cache layer. pending (or NULL): the
 * previous block's output not yet added to s->x, fused into the input norm here. The layer's
 * FFN output is left in s->tmp_h, not yet added to s->x (the caller fuses it into what follows). */
static int decoder_layer(cuda_backend *be, const dims *b, const dlayer *d, const float *pending, char *err,
                         size_t errlen)
{
    dstep *s = &be->s;
    cudaStream_t st = be->stream;
    int n = b->n, H = be->c->hidden_size, rc;
    float eps = be->c->rms_norm_eps;
    glm_cu_norm_params in = {n, H, s->x, H, pending, H, d->input_norm, NULL, eps, s->h, H};
    CUDA_TRY(glm_cu_rmsnorm(&in, st));
    if ((rc = attention(be, b, d, err, errlen)) != GLM_OK ||
        (rc = reduce(be, s->tmp_h, (size_t)n * H, err, errlen)) != GLM_OK)
        return rc;
    glm_cu_norm_params post = {n, H, s->x, H, s->tmp_h, H, d->post_norm, NULL, eps, s->h, H};
    CUDA_TRY(glm_cu_rmsnorm(&post, st));
    rc = d->sparse ? moe_ffn(be, n, d, err, errlen)
                   : dense_ffn(be, n, &d->gate, &d->up, &d->down, s->tmp_h, err, errlen);
    if (rc != GLM_OK)
        return rc;
    return reduce(be, s->tmp_h, (size_t)n * H, err, errlen);
}

/* The LM head over rows s->li [n] of src [*, H] (already normed): s->logits. */
static int logits_of(cuda_backend *be, const float *src, int n, char *err, size_t errlen)
{
    if (n == 0)
        return GLM_OK;
    CUDA_TRY(glm_cu_gather_rows(be->s.final_h, src, be->s.li, n, be->c->hidden_size, be->stream));
    return lm_head(be, n, err, errlen);
}

/* The layers and the logits of a step whose batch is on the device (s->tok .. s->li). With a
 * draft layer every row's final hidden state is kept in s->fin_h (the draft reads it). */
static int run_layers(cuda_backend *be, const dims *b, char *err, size_t errlen)
{
    const glm_config *c = be->c;
    dstep *s = &be->s;
    cudaStream_t st = be->stream;
    int n = b->n, H = c->hidden_size, rc;
    float eps = c->rms_norm_eps;

    if ((rc = embed_rows(be, n, err, errlen)) != GLM_OK || (rc = trace(be, 0, n, err, errlen)) != GLM_OK)
        return rc;
    /* the residual add of each block is fused into the norm that follows it */
    const float *pending = NULL;
    for (int li = 0; li < c->num_hidden_layers; li++) {
        if ((rc = decoder_layer(be, b, &be->layers[li], pending, err, errlen)) != GLM_OK)
            return rc;
        pending = s->tmp_h;
        if (be->trace) {
            CUDA_TRY(glm_cu_add(s->x, s->tmp_h, (size_t)n * H, st));
            pending = NULL;
            if ((rc = trace(be, li + 1, n, err, errlen)) != GLM_OK)
                return rc;
        }
    }
    if (be->draft) { /* every row's final hidden state, the logits rows from it */
        glm_cu_norm_params fn = {n, H, s->x, H, pending, H, be->final_norm, NULL, eps, s->fin_h, H};
        CUDA_TRY(glm_cu_rmsnorm(&fn, st));
        return logits_of(be, s->fin_h, b->n_logits, err, errlen);
    }
    if (pending)
        CUDA_TRY(glm_cu_add(s->x, pending, (size_t)n * H, st));
    if (b->n_logits > 0) {
        CUDA_TRY(glm_cu_gather_rows(s->final_h, s->x, s->li, b->n_logits, H, st));
        glm_cu_norm_params fn = {b->n_logits, H, s->final_h, H, NULL, 0, be->final_norm, NULL, eps, s->final_h, H};
        CUDA_TRY(glm_cu_rmsnorm(&fn, st));
        if ((rc = lm_head(be, b->n_logits, err, errlen)) != GLM_OK)
            return rc;
    }
    return GLM_OK;
}

/* ---- decode as CUDA graphs ------------------------------------------------------------------
 *
 * A decode step (one new token per sequence, logits for each, in order) runs as a CUDA graph
 * captured for its shape: the sequence count padded up to a bucket (1, 2, 4, 8, then multiples
 * of 8 up to GRAPH_MAX_SEQS) and the block-table stride padded up to a power of two. The
 * padding sequences are token 0 at position 0 whose one block is the scratch block (a KV block
 * beyond those the block manager hands out), so they write and read nothing of a real
 * sequence; their rows are computed and ignored. The batch is copied into the same device
 * region before every launch, so a graph replays with fixed addresses. A shape is captured the
 * second time it is seen (its first run, eager, is the warm-up); devices that refuse capture
 * (the CPU execution layer) run the padded shape eagerly, which is what the CPU tests check.
 */
#define GRAPH_MAX_SEQS 256
#define MAX_GRAPHS 128

static int pow2_at_least(int n)
{
    int b = 1;
    while (b < n)
        b *= 2;
    return b;
}

static int graph_bucket(int n) { return n <= 8 ? pow2_at_least(n) : (n + 7) / 8 * 8; }

/* 1 when b is a decode step a graph can run: one token per sequence, every token's logits in
 * order, no trace. */
static int graphable(const cuda_backend *be, const glm_batch *b)
{
    if (!be->graphs_enabled || be->trace || b->n_tokens != b->n_seqs || b->n_logits != b->n_seqs ||
        b->n_seqs > be->graph_max_seqs)
        return 0;
    for (int i = 0; i < b->n_logits; i++)
        if (b->logits_index[i] != i)
            return 0;
    return 1;
}

/* The padded decode batch into the pinned twin, then one copy up. */
static int upload_padded(cuda_backend *be, const glm_batch *b, const dims *d, char *err, size_t errlen)
{
    dstep *s = &be->s;
    int32_t *tok = (int32_t *)host_twin(s, s->tok), *pos = (int32_t *)host_twin(s, s->pos);
    int32_t *seq = (int32_t *)host_twin(s, s->seq_of), *bt = (int32_t *)host_twin(s, s->bt);
    int32_t *li = (int32_t *)host_twin(s, s->li);
    int64_t *slot = (int64_t *)host_twin(s, s->slot);
    int n = b->n_seqs, B = d->n, MB = d->mbps, mb = b->max_blocks_per_seq;
    for (int i = 0; i < B; i++) {
        seq[i] = i;
        li[i] = i;
        int32_t *row = bt + (size_t)i * MB;
        if (i < n) {
            tok[i] = b->token_ids[i];
            pos[i] = b->positions[i];
            slot[i] = b->slot_mapping[i];
            memcpy(row, b->block_tables + (size_t)i * mb, sizeof(int32_t) * (size_t)mb);
            memset(row + mb, 0, sizeof(int32_t) * (size_t)(MB - mb));
        } else {
            tok[i] = 0;
            pos[i] = 0;
            slot[i] = (int64_t)be->scratch_block * be->block_size;
            memset(row, 0, sizeof(int32_t) * (size_t)MB);
            row[0] = be->scratch_block;
        }
    }
    return copy_batch_up(be, B, (size_t)B * MB, B, err, errlen);
}

static int forward_graph(cuda_backend *be, const glm_batch *b, char *err, size_t errlen)
{
    dims d = {graph_bucket(b->n_seqs), 0, 0};
    d.mbps = GLM_MIN(pow2_at_least(b->max_blocks_per_seq), be->base.info.limits.max_blocks_per_seq);
    d.n_logits = d.n;
    int rc = upload_padded(be, b, &d, err, errlen);
    if (rc != GLM_OK)
        return rc;
    dgraph *g = NULL;
    for (int i = 0; i < be->n_graphs; i++)
        if (be->graphs[i].n == d.n && be->graphs[i].mbps == d.mbps)
            g = &be->graphs[i];
    if (!g && be->n_graphs < MAX_GRAPHS) {
        g = &be->graphs[be->n_graphs++];
        *g = (dgraph){d.n, d.mbps, 0, NULL};
    }
    if (g && g->exec) {
        CUDA_TRY(cudaGraphLaunch(g->exec, be->stream));
        return GLM_OK;
    }
    if (!g || g->runs++ == 0 || !be->capture_ok)
        return run_layers(be, &d, err, errlen); /* warm-up, or no capture here: eager */
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamBeginCapture(be->stream, cudaStreamCaptureModeThreadLocal);
    if (e == cudaErrorNotSupported) {
        cudaGetLastError();
        be->capture_ok = 0;
        fprintf(stderr, "glm-server: cuda: the device refuses graph capture; decode steps run eagerly\n");
        return run_layers(be, &d, err, errlen);
    }
    CUDA_TRY(e);
    rc = run_layers(be, &d, err, errlen);
    e = cudaStreamEndCapture(be->stream, &graph);
    if (rc != GLM_OK) {
        if (graph)
            cudaGraphDestroy(graph);
        return rc;
    }
    CUDA_TRY(e);
    e = cudaGraphInstantiate(&g->exec, graph, 0);
    cudaGraphDestroy(graph);
    CUDA_TRY(e);
    CUDA_TRY(cudaGraphLaunch(g->exec, be->stream));
    return GLM_OK;
}

static int forward(cuda_backend *be, const glm_batch *b, char *err, size_t errlen)
{
    int rc;
    if (graphable(be, b))
        rc = forward_graph(be, b, err, errlen);
    else if ((rc = upload_batch(be, b, err, errlen)) == GLM_OK) {
        dims d = {b->n_tokens, b->max_blocks_per_seq, b->n_logits};
        rc = run_layers(be, &d, err, errlen);
    }
    if (rc != GLM_OK)
        return rc;
    CUDA_TRY(cudaStreamSynchronize(be->stream));
    return GLM_OK;
}

static int cuda_forward(glm_backend *base, const glm_batch *b, char *err, size_t errlen)
{
    cuda_backend *be = (cuda_backend *)base;
    /* validated by the model runner (glm_batch_validate against base->info) */
    GLM_ASSERT(b->n_tokens >= 1 && b->n_tokens <= base->info.limits.max_tokens);
    GLM_ASSERT(b->n_logits <= base->info.limits.max_logits);
    GLM_ASSERT(b->n_seqs <= base->info.limits.max_seqs);
    GLM_ASSERT(b->max_blocks_per_seq <= base->info.limits.max_blocks_per_seq);
    be->n_logits = 0;
    be->fin_n = be->draft_n = 0;
    int rc = forward(be, b, err, errlen);
    if (rc == GLM_OK) {
        be->n_logits = b->n_logits;
        be->fin_n = be->draft ? b->n_tokens : 0;
    }
    return rc;
}

/* ---- the draft ---------------------------------------------------------------------------
 *
 * The MTP layer over a batch of the tokens that follow, eagerly (no graph): the batch goes up as
 * a forward's, then each token's hidden-state row index; x = eh_proj([enorm(embed) | hnorm(hidden)]),
 * the decoder layer (cache layer num_hidden_layers), s->draft_h = shared_head.norm(x) for
 * every row, the logits rows from it. eh_proj's input is built before anything is written, so a
 * chained draft may read the rows of s->draft_h that it replaces.
 */
static int draft(cuda_backend *be, const glm_batch *b, const float *src, const int32_t *rows, char *err,
                 size_t errlen)
{
    const glm_config *c = be->c;
    dstep *s = &be->s;
    cudaStream_t st = be->stream;
    int n = b->n_tokens, H = c->hidden_size, rc;
    float eps = c->rms_norm_eps;
    memcpy(host_twin(s, s->hrow), rows, sizeof(int32_t) * (size_t)n);
    if ((rc = upload_batch(be, b, err, errlen)) != GLM_OK)
        return rc;
    CUDA_TRY(cudaMemcpyAsync(s->hrow, host_twin(s, s->hrow), sizeof(int32_t) * (size_t)n, cudaMemcpyHostToDevice,
                             st));
    if ((rc = embed_rows(be, n, err, errlen)) != GLM_OK)
        return rc;
    glm_cu_norm_params en = {n, H, s->x, H, NULL, 0, be->mtp.enorm, NULL, eps, s->eh_in, 2 * H};
    CUDA_TRY(glm_cu_rmsnorm(&en, st));
    CUDA_TRY(glm_cu_gather_rows(s->h, src, s->hrow, n, H, st));
    glm_cu_norm_params hn = {n, H, s->h, H, NULL, 0, be->mtp.hnorm, NULL, eps, s->eh_in + H, 2 * H};
    CUDA_TRY(glm_cu_rmsnorm(&hn, st));
    LIN_TRY(lin(be, &be->mtp.eh_proj, s->eh_in, 2 * H, n, s->x, H, err, errlen));
    dims d = {n, b->max_blocks_per_seq, b->n_logits};
    if ((rc = decoder_layer(be, &d, &be->layers[c->num_hidden_layers], NULL, err, errlen)) != GLM_OK)
        return rc;
    glm_cu_norm_params fn = {n, H, s->x, H, s->tmp_h, H, be->mtp.head_norm, NULL, eps, s->draft_h, H};
    CUDA_TRY(glm_cu_rmsnorm(&fn, st));
    if ((rc = logits_of(be, s->draft_h, b->n_logits, err, errlen)) != GLM_OK)
        return rc;
    CUDA_TRY(cudaStreamSynchronize(st));
    return GLM_OK;
}

static int cuda_draft(glm_backend *base, const glm_batch *b, glm_draft_source from, const int32_t *rows, char *err,
                      size_t errlen)
{
    cuda_backend *be = (cuda_backend *)base;
    GLM_ASSERT(be->draft && b->n_tokens >= 1 && b->n_tokens <= base->info.limits.max_tokens);
    GLM_ASSERT(b->n_logits <= base->info.limits.max_logits);
    GLM_ASSERT(b->n_seqs <= base->info.limits.max_seqs);
    GLM_ASSERT(b->max_blocks_per_seq <= base->info.limits.max_blocks_per_seq);
    int have = from == GLM_DRAFT_FROM_DRAFT ? be->draft_n : be->fin_n;
    for (int t = 0; t < b->n_tokens; t++)
        if (rows[t] < 0 || rows[t] >= have) {
            glm_err(err, errlen, "draft: token %d reads hidden row %d of the last %s, which has %d", t, rows[t],
                    from == GLM_DRAFT_FROM_DRAFT ? "draft" : "forward", have);
            return GLM_BAD_BATCH;
        }
    be->n_logits = 0;
    int rc = draft(be, b, from == GLM_DRAFT_FROM_DRAFT ? be->s.draft_h : be->s.fin_h, rows, err, errlen);
    /* a failed draft leaves s.draft_h undefined; the forward's rows are untouched */
    be->draft_n = rc == GLM_OK ? b->n_tokens : 0;
    if (rc == GLM_OK)
        be->n_logits = b->n_logits;
    return rc;
}

static int cuda_logits(glm_backend *base, const int32_t *rows, int n, float *out, char *err, size_t errlen)
{
    cuda_backend *be = (cuda_backend *)base;
    size_t V = (size_t)be->c->vocab_size;
    for (int i = 0; i < n; i++) {
        if (rows[i] < 0 || rows[i] >= be->n_logits)
            return glm_err(err, errlen, "logits row %d: the last step kept %d", rows[i], be->n_logits);
        CUDA_TRY(cudaMemcpyAsync(out + (size_t)i * V, be->s.logits + (size_t)rows[i] * V, sizeof(float) * V,
                                 cudaMemcpyDeviceToHost, be->stream));
    }
    CUDA_TRY(cudaStreamSynchronize(be->stream));
    return GLM_OK;
}

/* ---- sampling ------------------------------------------------------------------------ */

/* The device sampler's buffers: the pinned twin of the workspace's sampler input (the
 * descriptors, then the edits: one copy up) followed by the results (one copy down),
 * and the host state that prepares the descriptors. */
static int sampler_init(cuda_backend *be, int Lr, char *err, size_t errlen)
{
    size_t in = be->s.smp_in_bytes, outb = sizeof(glm_sampler_result) * (size_t)Lr;
    cudaError_t e = cudaMallocHost(&be->smp_pinned, in + outb);
    if (e != cudaSuccess) {
        be->smp_pinned = NULL;
        return glm_err(err, errlen, "cuda backend: cannot allocate pinned memory: %s", cudaGetErrorString(e));
    }
    char *p = (char *)be->smp_pinned;
    be->smp_desc_h = (glm_cu_sample_desc *)p;
    be->smp_edit_h = (glm_cu_sample_edit *)(p + sizeof(glm_cu_sample_desc) * (size_t)Lr);
    be->smp_out_h = (glm_sampler_result *)(p + in);
    be->s.smp_desc = (glm_cu_sample_desc *)be->s.smp_in;
    be->s.smp_edit = (glm_cu_sample_edit *)((char *)be->s.smp_in + sizeof(glm_cu_sample_desc) * (size_t)Lr);
    be->smp_slot = (int *)glm_calloc((size_t)Lr, sizeof(int));
    glm_cu_sample_host_init(&be->smp, be->c->vocab_size, be->smp_edit_h, Lr * SAMPLE_EDITS_PER_ROW);
    return GLM_OK;
}

static void sampler_free(cuda_backend *be)
{
    if (be->smp_pinned)
        cudaFreeHost(be->smp_pinned);
    be->smp_pinned = NULL;
    if (be->smp.tail)
        glm_cu_sample_host_free(&be->smp);
    free(be->smp_slot);
    be->smp_slot = NULL;
}

/*
 * Samples reqs [n] (rows validated, each at most once). A row without a host
 * replacement goes to the device sampler: descriptors and edits up in one copy,
 * one launch, the results down in one copy; the logits stay on the device. The
 * host sampler (glm_sampler_sample) takes a row a logits processor replaced
 * (r->logits, already on the host), and a row whose edits no longer fit in the
 * step's pool (a long history under penalties): such rows are copied down. The
 * generators advance the same either way (one draw per row).
 */
static int sample_rows(cuda_backend *be, const glm_sample_req *reqs, int n, glm_sampler_result *out, char *err,
                       size_t errlen)
{
    size_t V = (size_t)be->c->vocab_size;
    int nd = 0;
    glm_cu_sample_host_reset(&be->smp);
    for (int i = 0; i < n; i++) {
        const glm_sample_req *r = &reqs[i];
        be->smp_slot[i] = -1;
        if (r->logits)
            continue;
        if (glm_cu_sample_host_add(&be->smp, r->params, r->rng, &r->hist, r->row, &be->smp_desc_h[nd]) == GLM_OK)
            be->smp_slot[i] = nd++;
    }
    if (nd > 0) {
        size_t up = (char *)(be->smp_edit_h + be->smp.n) - (char *)be->smp_desc_h;
        CUDA_TRY(cudaMemcpyAsync(be->s.smp_in, be->smp_desc_h, up, cudaMemcpyHostToDevice, be->stream));
        glm_cu_sample_params sp = {nd, (int)V, be->s.logits, be->s.smp_desc, be->s.smp_edit, be->s.smp_out};
        CUDA_TRY(glm_cu_sample(&sp, be->stream));
        CUDA_TRY(cudaMemcpyAsync(be->smp_out_h, be->s.smp_out, sizeof(glm_sampler_result) * (size_t)nd,
                                 cudaMemcpyDeviceToHost, be->stream));
    }
    CUDA_TRY(cudaStreamSynchronize(be->stream));
    for (int i = 0; i < n; i++) {
        const glm_sample_req *r = &reqs[i];
        if (be->smp_slot[i] >= 0)
            out[i] = be->smp_out_h[be->smp_slot[i]];
        else if (r->logits)
            glm_sampler_sample(r->params, r->rng, r->logits, (int)V, &r->hist, be->sampler_ws, be->sampler_ws_size,
                               &out[i]);
    }
    /* rows past the edit pool: copied down HOST_ROWS at a time */
    for (int i = 0; i < n;) {
        int rows[HOST_ROWS], k = 0;
        for (; i < n && k < HOST_ROWS; i++)
            if (be->smp_slot[i] < 0 && !reqs[i].logits)
                rows[k++] = i;
        if (k == 0)
            break;
        for (int j = 0; j < k; j++)
            CUDA_TRY(cudaMemcpyAsync(be->host_rows + (size_t)j * V, be->s.logits + (size_t)reqs[rows[j]].row * V,
                                     sizeof(float) * V, cudaMemcpyDeviceToHost, be->stream));
        CUDA_TRY(cudaStreamSynchronize(be->stream));
        for (int j = 0; j < k; j++) {
            const glm_sample_req *r = &reqs[rows[j]];
            glm_sampler_sample(r->params, r->rng, be->host_rows + (size_t)j * V, (int)V, &r->hist, be->sampler_ws,
                               be->sampler_ws_size, &out[rows[j]]);
        }
    }
    return GLM_OK;
}

static int cuda_sample(glm_backend *base, const glm_sample_req *reqs, int n, glm_sampler_result *out, char *err,
                       size_t errlen)
{
    cuda_backend *be = (cuda_backend *)base;
    for (int i = 0; i < n; i++)
        if (reqs[i].row < 0 || reqs[i].row >= be->n_logits)
            return glm_err(err, errlen, "sample: logits row %d, the last step kept %d", reqs[i].row, be->n_logits);
    return sample_rows(be, reqs, n, out, err, errlen);
}

static void cuda_trace_hidden(glm_backend *base, float *out)
{
    ((cuda_backend *)base)->trace = out;
}

static void cuda_destroy(glm_backend *base)
{
    cuda_backend *be = (cuda_backend *)base;
    if (!be)
        return;
    if (be->stream)
        cudaStreamSynchronize(be->stream);
    for (int i = 0; be->graphs && i < be->n_graphs; i++)
        if (be->graphs[i].exec)
            cudaGraphExecDestroy(be->graphs[i].exec);
    free(be->graphs);
    cudaFree(be->weights);
    cudaFree(be->kv);
    cudaFree(be->ws);
    if (be->s.batch_host)
        cudaFreeHost(be->s.batch_host);
    if (be->host_rows)
        cudaFreeHost(be->host_rows);
    free(be->sampler_ws);
    glm_cu_linear_ctx_release(&be->lin);
    sampler_free(be);
    if (be->lt)
        cublasLtDestroy(be->lt);
    if (be->blas)
        cublasDestroy(be->blas);
    if (be->stream)
        cudaStreamDestroy(be->stream);
    free(be->layers);
    free(be);
}

static const glm_backend_ops cuda_ops = {cuda_forward, cuda_logits, cuda_sample, NULL, cuda_trace_hidden, cuda_destroy};
static const glm_backend_ops cuda_draft_ops = {cuda_forward, cuda_logits, cuda_sample, cuda_draft, cuda_trace_hidden,
                                               cuda_destroy};

/* ---- create ------------------------------------------------------------------------------ */

/* The workspace's parts for the limits in p (every op at its largest). */
static int workspace_parts(cuda_backend *be, const glm_backend_params *p, glm_part *parts)
{
    const glm_config *c = be->c;
    dstep *s = &be->s;
    size_t T = (size_t)p->max_num_batched_tokens, Lr = (size_t)GLM_MAX(p->max_logits_rows, 1);
    size_t MB = (size_t)p->max_blocks_per_seq;
    size_t H = (size_t)c->hidden_size, heads = (size_t)c->num_attention_heads, R = (size_t)c->kv_lora_rank;
    size_t rope = (size_t)c->qk_rope_head_dim, ld = R + rope, V = (size_t)c->vocab_size;
    size_t E = (size_t)GLM_MAX(c->n_routed_experts, 1), K = (size_t)GLM_MAX(c->num_experts_per_tok, 1);
    size_t moeI = (size_t)c->moe_intermediate_size;
    size_t ffnI = GLM_MAX((size_t)c->intermediate_size, moeI * (size_t)GLM_MAX(c->n_shared_experts, 1));
    int Ti = p->max_num_batched_tokens;

    /* the batch region: carved again inside batch_dev once that exists */
    glm_part bp[7];
    s->batch_bytes = glm_carve(bp, batch_parts(s, p, bp), NULL, ALIGN);

    /* every op's scratch at its largest */
    size_t lin_ws = 0;
    for (int li = 0; li < c->num_hidden_layers + be->draft; li++) {
        const dlayer *d = &be->layers[li];
        const glm_dweight *ws[] = {&d->q_a, &d->q_b, &d->kv_a, &d->o, &d->idx_wq_b, &d->idx_wk, &d->idx_weights_proj,
                                   &d->gate, &d->up, &d->down, &d->router, &d->sh_gate, &d->sh_up, &d->sh_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            if (ws[i]->data)
                lin_ws = GLM_MAX(lin_ws, glm_cu_linear_workspace(ws[i], Ti));
    }
    lin_ws = GLM_MAX(lin_ws, glm_cu_linear_workspace(&be->lm_head, (int)Lr));
    if (be->draft)
        lin_ws = GLM_MAX(lin_ws, glm_cu_linear_workspace(&be->mtp.eh_proj, Ti));
    glm_cu_paging pg0 = {NULL, (int)MB, p->block_size, 0, NULL, NULL};
    glm_cu_mla_attn_params mp = {Ti, (int)heads, (int)R, (int)rope, 1, NULL, NULL, be->kv_dtype, pg0, NULL,
                                 c->index_topk, be->max_ctx, NULL};
    glm_cu_dsa_params dp = {Ti, c->index_n_heads, c->index_head_dim, c->index_topk, 1, NULL, NULL, NULL, be->kv_dtype,
                            pg0, be->max_ctx, NULL};
    glm_cu_moe_experts_params xp = {Ti, c->hidden_size, c->moe_intermediate_size, c->n_routed_experts,
                                    c->num_experts_per_tok, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0};
    s->lin_ws_bytes = lin_ws;
    s->attn_ws_bytes = glm_cu_mla_attn_workspace(&mp);
    s->dsa_ws_bytes = glm_cu_dsa_workspace(&dp);
    s->moe_ws_bytes = c->n_routed_experts > 0 ? glm_cu_moe_experts_workspace(&xp) : 0;

    int np = 0;
#define PART(field, bytes) (parts[np++] = (glm_part){(void **)&(field), (bytes)})
    PART(s->batch_dev, s->batch_bytes);
    PART(s->cos_, sizeof(float) * T * rope / 2);
    PART(s->sin_, sizeof(float) * T * rope / 2);
    PART(s->x, sizeof(float) * T * H);
    PART(s->h, sizeof(float) * T * H);
    PART(s->tmp_h, sizeof(float) * T * H);
    PART(s->q_resid, sizeof(float) * T * c->q_lora_rank);
    PART(s->q, sizeof(float) * T * heads * c->qk_head_dim);
    PART(s->kv_a, sizeof(float) * T * ld);
    PART(s->q_lat, sizeof(float) * T * heads * ld);
    PART(s->o_lat, sizeof(float) * T * heads * R);
    PART(s->attn, sizeof(float) * T * heads * c->v_head_dim);
    PART(s->iq, sizeof(float) * T * c->index_n_heads * c->index_head_dim);
    PART(s->ik, sizeof(float) * T * c->index_head_dim);
    PART(s->iw, sizeof(float) * T * c->index_n_heads);
    PART(s->topk, sizeof(int32_t) * T * c->index_topk);
    PART(s->ffn_g, sizeof(float) * T * ffnI);
    PART(s->ffn_u, sizeof(float) * T * ffnI);
    PART(s->shared, sizeof(float) * T * H);
    PART(s->router, sizeof(float) * T * E);
    PART(s->exp_ids, sizeof(int32_t) * T * K);
    PART(s->exp_w, sizeof(float) * T * K);
    PART(s->final_h, sizeof(float) * Lr * H);
    PART(s->logits, sizeof(float) * Lr * V);
    PART(s->logits_part, p->world > 1 ? sizeof(float) * (size_t)p->world * Lr * be->m->shard.vocab_stride : 0);
    PART(s->lin_ws, s->lin_ws_bytes);
    PART(s->attn_ws, s->attn_ws_bytes);
    PART(s->dsa_ws, s->dsa_ws_bytes);
    PART(s->moe_ws, s->moe_ws_bytes);
    PART(s->lt_ws, LT_WS_BYTES);
    PART(s->blas_ws, BLAS_WS_BYTES);
    s->smp_in_bytes = sizeof(glm_cu_sample_desc) * Lr + sizeof(glm_cu_sample_edit) * Lr * SAMPLE_EDITS_PER_ROW;
    PART(s->smp_in, s->smp_in_bytes);
    PART(s->smp_out, sizeof(glm_sampler_result) * Lr);
    PART(s->fin_h, be->draft ? sizeof(float) * T * H : 0);
    PART(s->draft_h, be->draft ? sizeof(float) * T * H : 0);
    PART(s->eh_in, be->draft ? sizeof(float) * T * 2 * H : 0);
#undef PART
    return np;
}

/* KV bytes per token slot: every layer's latent row and its index key where it has an indexer,
 * the MTP layer's among them when the backend holds it. */
static size_t kv_bytes_per_token(const cuda_backend *be)
{
    const glm_config *c = be->c;
    size_t per = 0, es = glm_dtype_size(be->kv_dtype);
    for (int li = 0; li < c->num_hidden_layers + be->draft; li++) {
        per += (size_t)(c->kv_lora_rank + c->qk_rope_head_dim) * es;
        if (be->layers[li].has_indexer)
            per += (size_t)c->index_head_dim * es;
    }
    return per;
}

static double gib(size_t b) { return (double)b / 1073741824.0; }

extern "C" int glm_cuda_device_count(char *err, size_t errlen)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        glm_err(err, errlen, "%s", cudaGetErrorString(e));
        return -1;
    }
    return n;
}

extern "C" glm_backend *glm_cuda_backend_create(const glm_model *m, const glm_backend_params *p, char *err,
                                                size_t errlen)
{
    const glm_config *c = &m->cfg;
    if (p->block_size < 1 || p->max_num_batched_tokens < 1 || p->max_num_seqs < 1 || p->max_blocks_per_seq < 1 ||
        p->max_logits_rows < 0 || p->device < 0) {
        glm_err(err, errlen, "cuda backend: invalid parameters");
        return NULL;
    }
    if (p->world != m->shard.world || p->rank != m->shard.rank || (p->world > 1) != (p->comm != NULL)) {
        glm_err(err, errlen, "cuda backend: rank %d of %d needs that rank's shard of the model and, past one "
                "rank, a communicator", p->rank, p->world);
        return NULL;
    }
    if ((int64_t)p->max_blocks_per_seq * p->block_size > (int64_t)INT32_MAX / 4) {
        glm_err(err, errlen, "cuda backend: a context of %d blocks of %d tokens is too long", p->max_blocks_per_seq,
                p->block_size);
        return NULL;
    }
    cudaError_t e = cudaSetDevice(p->device);
    if (e != cudaSuccess) {
        glm_err(err, errlen, "cuda backend: device %d: %s", p->device, cudaGetErrorString(e));
        return NULL;
    }
    if (p->draft_layers && (p->draft_layers != 1 || !m->mtp || p->world > 1)) {
        glm_err(err, errlen, "cuda backend: %s", !m->mtp ? "the checkpoint has no MTP layer"
                : p->draft_layers != 1 ? "one MTP layer at most" : "the MTP layer runs at one rank only");
        return NULL;
    }
    cuda_backend *be = (cuda_backend *)glm_calloc(1, sizeof *be);
    be->draft = p->draft_layers == 1;
    be->base.ops = be->draft ? &cuda_draft_ops : &cuda_ops;
    be->m = m;
    be->c = c;
    be->device = p->device;
    be->comm = p->world > 1 ? p->comm : NULL;
    be->mode = p->dtype == GLM_COMPUTE_F32 ? GLM_DW_F32 : GLM_DW_NATIVE;
    be->kv_dtype = p->dtype == GLM_COMPUTE_F32 ? GLM_DTYPE_F32 : GLM_DTYPE_BF16;
    be->block_size = p->block_size;
    be->max_ctx = p->max_blocks_per_seq * p->block_size;
    be->layers = (dlayer *)glm_calloc((size_t)(c->num_hidden_layers + be->draft), sizeof(dlayer));
    int Lr = GLM_MAX(p->max_logits_rows, 1);
    glm_part parts[64];
    int np = 0;
    size_t free0 = 0, total = 0, ws_bytes = 0, per_block = 0, nb = 0;

    if ((e = cudaStreamCreateWithFlags(&be->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        be->stream = NULL;
        glm_err(err, errlen, "cuda backend: cannot create a stream: %s", cudaGetErrorString(e));
        goto fail;
    }
    if (cublasCreate(&be->blas) != CUBLAS_STATUS_SUCCESS || cublasLtCreate(&be->lt) != CUBLAS_STATUS_SUCCESS ||
        cublasSetStream(be->blas, be->stream) != CUBLAS_STATUS_SUCCESS) {
        glm_err(err, errlen, "cuda backend: cannot create the cuBLAS handles");
        goto fail;
    }
    if ((e = cudaMemGetInfo(&free0, &total)) != cudaSuccess) {
        glm_err(err, errlen, "cuda backend: cudaMemGetInfo: %s", cudaGetErrorString(e));
        goto fail;
    }
    if (upload_model(be, err, errlen) != GLM_OK)
        goto fail;

    np = workspace_parts(be, p, parts);
    ws_bytes = glm_carve(parts, np, NULL, ALIGN);
    if ((e = cudaMalloc(&be->ws, ws_bytes)) != cudaSuccess) {
        be->ws = NULL;
        glm_err(err, errlen, "cuda backend: cannot allocate a workspace of %.2f GiB: %s", gib(ws_bytes),
                cudaGetErrorString(e));
        goto fail;
    }
    glm_carve(parts, np, (char *)be->ws, ALIGN);
    {
        /* the batch arrays inside their device region; the pinned twin has the same offsets */
        glm_part bp[7];
        glm_carve(bp, batch_parts(&be->s, p, bp), (char *)be->s.batch_dev, ALIGN);
        if ((e = cudaMallocHost(&be->s.batch_host, be->s.batch_bytes)) != cudaSuccess) {
            be->s.batch_host = NULL;
            glm_err(err, errlen, "cuda backend: cannot allocate pinned memory: %s", cudaGetErrorString(e));
            goto fail;
        }
    }
    be->lin = (glm_cu_linear_ctx){be->blas, be->lt, be->s.lt_ws, LT_WS_BYTES, 0};
    /* cuBLAS's own workspace, fixed (graph capture needs it) */
    if (cublasSetWorkspace(be->blas, be->s.blas_ws, BLAS_WS_BYTES) != CUBLAS_STATUS_SUCCESS) {
        glm_err(err, errlen, "cuda backend: cublasSetWorkspace failed");
        goto fail;
    }
    /* decode graphs: the largest sequence count whose padded bucket fits every limit */
    be->graphs_enabled = p->cuda_graphs != 0;
    be->capture_ok = 1;
    if (be->graphs_enabled) {
        int cap = GLM_MIN(GLM_MIN(p->max_num_seqs, p->max_num_batched_tokens), GLM_MIN(Lr, GRAPH_MAX_SEQS));
        while (be->graph_max_seqs < cap && graph_bucket(be->graph_max_seqs + 1) <= cap)
            be->graph_max_seqs++;
        be->graphs = (dgraph *)glm_calloc(MAX_GRAPHS, sizeof(dgraph));
    }

    /* the KV cache: what is asked, or what remains of the device's share */
    per_block = kv_bytes_per_token(be) * (size_t)p->block_size;
    if (p->kv_blocks > 0) {
        nb = (size_t)p->kv_blocks;
    } else if (p->kv_bytes > 0) {
        nb = p->kv_bytes / per_block;
    } else {
        double frac = p->mem_fraction > 0 && p->mem_fraction <= 1 ? p->mem_fraction : 0.9;
        size_t others = total - free0; /* held before this backend took anything */
        size_t share = (size_t)((double)total * frac), used = others + be->weight_bytes + ws_bytes;
        size_t budget = share > used ? share - used : 0;
        nb = budget / per_block;
        fprintf(stderr,
                "glm-server: cuda device %d memory plan: %.2f GiB x %.2f = %.2f GiB; in use before start %.2f GiB, "
                "weights %.2f GiB, workspace %.2f GiB -> KV cache %.2f GiB = %zu blocks of %d tokens "
                "(%zu bytes per token, %s%s)\n",
                p->device, gib(total), frac, gib(share), gib(others), gib(be->weight_bytes), gib(ws_bytes),
                gib(budget), nb, p->block_size, per_block / (size_t)p->block_size,
                be->kv_dtype == GLM_DTYPE_BF16 ? "bf16" : "f32", be->draft ? "; the MTP layer's included" : "");
    }
    if (nb < 1 || nb > (size_t)INT32_MAX / (size_t)p->block_size) {
        glm_err(err, errlen, "cuda backend: the KV budget holds %zu blocks of %d tokens (%zu bytes each)", nb,
                p->block_size, per_block);
        goto fail;
    }
    /* one block more for the padding sequences of decode graphs, never handed out */
    be->scratch_block = (int)nb;
    be->num_blocks = (int)nb + (be->graphs_enabled ? 1 : 0);
    if ((e = cudaMalloc(&be->kv, (size_t)be->num_blocks * per_block)) != cudaSuccess) {
        be->kv = NULL;
        glm_err(err, errlen, "cuda backend: cannot allocate a KV cache of %.2f GiB: %s", gib(nb * per_block),
                cudaGetErrorString(e));
        goto fail;
    }
    if ((e = cudaMemset(be->kv, 0, (size_t)be->num_blocks * per_block)) != cudaSuccess) {
        glm_err(err, errlen, "cuda backend: cudaMemset: %s", cudaGetErrorString(e));
        goto fail;
    }
    {
        size_t slots = (size_t)be->num_blocks * (size_t)p->block_size, es = glm_dtype_size(be->kv_dtype);
        char *q = (char *)be->kv;
        for (int li = 0; li < c->num_hidden_layers + be->draft; li++) {
            be->layers[li].latent = q;
            q += slots * (size_t)(c->kv_lora_rank + c->qk_rope_head_dim) * es;
            if (be->layers[li].has_indexer) {
                be->layers[li].index_k = q;
                q += slots * (size_t)c->index_head_dim * es;
            }
        }
    }

    /* sampling: the device sampler's buffers; for the rows the host samples (replaced by a logits
     * processor, or past the edit pool), pinned rows and one sampler workspace */
    if ((e = cudaMallocHost((void **)&be->host_rows, sizeof(float) * HOST_ROWS * (size_t)c->vocab_size)) !=
        cudaSuccess) {
        be->host_rows = NULL;
        glm_err(err, errlen, "cuda backend: cannot allocate pinned memory: %s", cudaGetErrorString(e));
        goto fail;
    }
    be->sampler_ws_size = glm_sampler_workspace_size(c->vocab_size);
    be->sampler_ws = glm_malloc(be->sampler_ws_size);
    if (sampler_init(be, Lr, err, errlen) != GLM_OK)
        goto fail;

    be->base.info = (glm_backend_info){
        "cuda",
        {c->vocab_size, c->max_position_embeddings, (int)nb, p->block_size, p->max_num_batched_tokens,
         p->max_num_seqs, p->max_blocks_per_seq, p->max_logits_rows},
        nb * per_block,
        ws_bytes,
    };
    return &be->base;
fail:
    cuda_destroy(&be->base);
    return NULL;
}
