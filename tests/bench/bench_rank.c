/*
 * bench_rank.c - glm-bench-rank: one GLM-5 tensor-parallel rank's share of the
 * model on one GPU, through the CUDA backend (cuda/cuda_backend.cu) created
 * directly, without the model runner or the scheduler. The checkpoint is
 * meant to be glm-mkmodel's glm5-rank preset (GLM-5's widths as one rank of
 * 8-way tensor parallelism holds them: 8 of 64 heads, 32 of 256 experts, the
 * whole indexer, a vocabulary shard); any checkpoint works.
 *
 *   build/glm-bench-rank --model DIR [--contexts 8192] [--batches 1,8,64,256]
 *                        [--prompt-len 4096] [--repeat 10] [--max-num-batched-tokens 2048]
 *                        [--enforce-eager]
 *
 * It prints one table, and asserts nothing. What each row measures:
 *
 *   copy      cudaMemcpy device to device of a 1 GiB buffer (64 MiB on the CPU
 *             layer): the median of `repeat` copies timed with cudaEvents, as
 *             2 x bytes / time (each byte is read and written): the bandwidth
 *             the decode rows are compared with.
 *   fp8 gemm  glm_cu_linear (cuda/linear.h) with an FP8 e4m3 weight [8192, 8192]
 *             (128 x 128 block scales) on 8192 float32 rows (256^3 on the CPU
 *             layer), the backend's own FP8 projection (it quantises the rows
 *             per 1 x 128 group first): 2 m n k / median time. The prefill row
 *             is compared with it.
 *   decode    one forward of `batch` sequences, each with one new token at
 *             position `context` (context_len context + 1), built as a glm_batch
 *             directly: the new token's slot, block tables over the sequence's
 *             own KV blocks, no logits rows (the LM head is not run: the rows
 *             time the layers). The context is not prefilled: the KV
 *             cache holds the zeros the backend writes at create. The contents
 *             do not change what is read or computed (the indexer scores every
 *             earlier position, attention reads the index_topk selected latent
 *             rows, whatever their values); they can change only the DSA top-k's
 *             radix passes (how keys spread over its histogram bins; equal keys
 *             all fall in one), a small part of a step. Two untimed forwards, then the median of `repeat`
 *             forwards, each timed by the wall clock from after a
 *             cudaDeviceSynchronize to the forward's return (the backend
 *             synchronises its stream before returning). "per layer" is that
 *             time / num_hidden_layers (the embedding is in it; it is small).
 *   prefill   one sequence's `prompt-len` tokens in chunks of
 *             max-num-batched-tokens, each chunk a forward attending to the
 *             chunks before it, the last chunk asking for its last row's logits
 *             (as a real prefill does). One untimed prefill, then the median of
 *             `repeat` prefills (all chunks) over the same KV blocks.
 *
 * The fraction column:
 *   decode: bytes the step must read / time / the copy bandwidth, with
 *     bytes = every layer's weights as the device keeps them (FP8 weights 1
 *       byte a parameter plus their float32 block scales, BF16 2, the router
 *       and the norms float32): attention (q_a, q_b, kv_a, kv_b, o), the
 *       indexer's (wq_b, wk, weights_proj, k_norm), the norms, the dense MLP on
 *       dense layers; on MoE layers the router, the shared expert and
 *       min(n_routed_experts, batch x num_experts_per_tok) routed experts (an
 *       upper bound on the distinct experts a step touches: with uniform
 *       routing, batch 1 touches exactly 8 and batch 8 about 29 of 32)
 *     + the KV cache read: per sequence and layer, min(context + 1, index_topk)
 *       latent rows ((kv_lora + rope) x the cache's element size) that
 *       attention reads, plus the indexer keys of all context + 1 positions
 *       (index_head_dim x element size) on layers with their own indexer.
 *     Not counted: the embedding rows, activations, the new token's cache
 *     writes, the workspace's scratch traffic.
 *   prefill: 2 x active parameters per token x prompt tokens / time / the FP8
 *     matrix rate, with active parameters = per layer the attention and indexer
 *     projections, and the dense MLP or the router, num_experts_per_tok routed
 *     experts and the shared expert (the embedding lookup, the LM head's one
 *     row, and attention's own score and value products are not counted).
 *
 * The KV cache is sized for the largest case: max over (batch, context) of
 * batch x ceil((context + 1) / 16) blocks of 16 tokens, or the prompt's blocks.
 * Built against the CPU execution layer (glm-bench-rank-cuda-cpu) it runs the
 * same code on the CPU, says so, and its times mean nothing.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/batch.h"
#include "core/util.h"
#include "model/model.h"
#include "tests/bench/bench_rank_cuda.h"

#define BLOCK_SIZE 16
#define MAX_LIST 32

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, dbl_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* "1,8,64" -> values (each in [1, max]); the count, or -1. */
static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > max || n == MAX_LIST || (*end && *end != ','))
            return -1;
        out[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return n > 0 ? n : -1;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* ---- what a step reads and computes -------------------------------------------------- */

/* Bytes of w as the CUDA backend keeps it by default (--dtype auto): FP8 stays FP8 with
 * its float32 block scales, BF16 stays, float32 becomes BF16 except where keep_f32. */
static double weight_bytes(const glm_weight *w, int keep_f32)
{
    if (!w->data)
        return 0;
    double n = (double)w->rows * w->cols;
    if (w->dtype == GLM_DTYPE_F8_E4M3)
        return n + 4.0 * ((w->rows + w->block_r - 1) / w->block_r) * ((w->cols + w->block_c - 1) / w->block_c);
    return n * (w->dtype == GLM_DTYPE_F32 && keep_f32 ? 4 : 2);
}

static double params(const glm_weight *w) { return w->data ? (double)w->rows * w->cols : 0; }

typedef struct {
    double fixed;      /* bytes every decode step reads whatever its batch: all layers' attention,
                          indexer, norms, dense MLPs, routers and shared experts */
    double expert;     /* bytes of one routed expert (gate, up, down) */
    int moe_layers;
    double latent_row; /* KV bytes of one position's latent row, one layer */
    double index_row;  /* KV bytes of one position's indexer key, one layer */
    int index_layers;  /* layers with their own indexer */
    double active;     /* parameters one prefill token multiplies by */
} step_cost;

static step_cost step_costs(const glm_model *m, const glm_backend_info *info)
{
    const glm_config *c = &m->cfg;
    step_cost sc = {0};
    int H = c->hidden_size, K = c->num_experts_per_tok;
    size_t per_token_elems = 0;
    for (int li = 0; li < c->num_hidden_layers; li++) {
        const glm_layer *L = &m->layers[li];
        const glm_weight *attn[] = {&L->q_a, &L->q_b, &L->kv_a, &L->kv_b, &L->o};
        for (size_t i = 0; i < sizeof attn / sizeof attn[0]; i++) {
            sc.fixed += weight_bytes(attn[i], 0);
            sc.active += params(attn[i]);
        }
        sc.fixed += 4.0 * (2 * H + c->q_lora_rank + c->kv_lora_rank); /* the four norms */
        per_token_elems += (size_t)(c->kv_lora_rank + c->qk_rope_head_dim);
        if (L->has_indexer) {
            const glm_weight *ix[] = {&L->idx_wq_b, &L->idx_wk, &L->idx_weights_proj};
            for (size_t i = 0; i < sizeof ix / sizeof ix[0]; i++) {
                sc.fixed += weight_bytes(ix[i], 0);
                sc.active += params(ix[i]);
            }
            sc.fixed += 4.0 * 2 * c->index_head_dim; /* k_norm weight and bias */
            per_token_elems += (size_t)c->index_head_dim;
            sc.index_layers++;
        }
        if (!L->sparse) {
            const glm_weight *d[] = {&L->gate, &L->up, &L->down};
            for (size_t i = 0; i < 3; i++) {
                sc.fixed += weight_bytes(d[i], 0);
                sc.active += params(d[i]);
            }
            continue;
        }
        sc.moe_layers++;
        sc.fixed += weight_bytes(&L->router, 1) + 4.0 * c->n_routed_experts;
        sc.active += params(&L->router);
        const glm_weight *sh[] = {&L->sh_gate, &L->sh_up, &L->sh_down};
        for (size_t i = 0; i < 3; i++) {
            sc.fixed += weight_bytes(sh[i], 0);
            sc.active += params(sh[i]);
        }
        double e = weight_bytes(&L->exp_gate[0], 0) + weight_bytes(&L->exp_up[0], 0) +
                   weight_bytes(&L->exp_down[0], 0);
        sc.expert = e; /* every MoE layer's experts have the same shapes and dtypes */
        sc.active += (double)K * (params(&L->exp_gate[0]) + params(&L->exp_up[0]) + params(&L->exp_down[0]));
    }
    /* the cache's element size, from what the backend holds per token slot */
    double slot_bytes = (double)info->kv_bytes / ((double)info->limits.num_blocks * info->limits.block_size);
    double es = per_token_elems ? slot_bytes / (double)per_token_elems : 0;
    sc.latent_row = es * (c->kv_lora_rank + c->qk_rope_head_dim);
    sc.index_row = es * c->index_head_dim;
    return sc;
}

/* Bytes a decode step of `batch` sequences at `context` must read (see the top). */
static double decode_bytes(const glm_config *c, const step_cost *sc, int batch, int context)
{
    int E = c->n_routed_experts, K = c->num_experts_per_tok;
    double experts = (double)GLM_MIN(E, batch * K);
    double ctx = context + 1.0;
    double sel = GLM_MIN(ctx, (double)c->index_topk);
    double kv = batch * (c->num_hidden_layers * sel * sc->latent_row + sc->index_layers * ctx * sc->index_row);
    return sc->fixed + sc->moe_layers * experts * sc->expert + kv;
}

/* ---- steps ---------------------------------------------------------------------------- */

typedef struct {
    int32_t *tok, *pos, *cu, *ctx, *bt, *li;
    int64_t *slot;
    int mbps; /* block-table width */
} batch_arrays;

static void arrays_alloc(batch_arrays *a, int max_tokens, int max_seqs, int mbps)
{
    a->tok = glm_calloc((size_t)max_tokens, sizeof(int32_t));
    a->pos = glm_calloc((size_t)max_tokens, sizeof(int32_t));
    a->slot = glm_calloc((size_t)max_tokens, sizeof(int64_t));
    a->cu = glm_calloc((size_t)max_seqs + 1, sizeof(int32_t));
    a->ctx = glm_calloc((size_t)max_seqs, sizeof(int32_t));
    a->bt = glm_calloc((size_t)max_seqs * mbps, sizeof(int32_t));
    a->li = glm_calloc(1, sizeof(int32_t));
    a->mbps = mbps;
}

static void arrays_free(batch_arrays *a)
{
    free(a->tok);
    free(a->pos);
    free(a->slot);
    free(a->cu);
    free(a->ctx);
    free(a->bt);
    free(a->li);
}

static uint64_t rng_state = 88172645463325252ull;
static int32_t random_token(int vocab)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (int32_t)(rng_state % (uint64_t)vocab);
}

/* A decode step: `batch` sequences, one new token each at position `context`; sequence s
 * owns blocks [s * nb, (s + 1) * nb). */
static glm_batch decode_batch(batch_arrays *a, int vocab, int batch, int context)
{
    int nb = (context + 1 + BLOCK_SIZE - 1) / BLOCK_SIZE;
    for (int s = 0; s < batch; s++) {
        a->tok[s] = random_token(vocab);
        a->pos[s] = context;
        a->cu[s] = s;
        a->ctx[s] = context + 1;
        for (int i = 0; i < a->mbps; i++)
            a->bt[(size_t)s * a->mbps + i] = i < nb ? s * nb + i : 0;
        a->slot[s] = (int64_t)a->bt[(size_t)s * a->mbps + context / BLOCK_SIZE] * BLOCK_SIZE + context % BLOCK_SIZE;
    }
    a->cu[batch] = batch;
    return (glm_batch){batch, batch, a->tok, a->pos, a->cu, a->ctx, a->bt, a->mbps, a->slot, a->li, 0};
}

/* Prefill chunk [start, start + n) of one sequence over blocks 0..; logits of its last row
 * when last. */
static glm_batch prefill_batch(batch_arrays *a, int vocab, int start, int n, int last)
{
    for (int i = 0; i < n; i++) {
        int p = start + i;
        a->tok[i] = random_token(vocab);
        a->pos[i] = p;
        a->slot[i] = (int64_t)(p / BLOCK_SIZE) * BLOCK_SIZE + p % BLOCK_SIZE;
    }
    for (int i = 0; i < a->mbps; i++)
        a->bt[i] = i;
    a->cu[0] = 0;
    a->cu[1] = n;
    a->ctx[0] = start + n;
    a->li[0] = n - 1;
    return (glm_batch){n, 1, a->tok, a->pos, a->cu, a->ctx, a->bt, a->mbps, a->slot, a->li, last ? 1 : 0};
}

/* One forward after a device sync; its wall time in seconds, or < 0 with err. */
static double timed_forward(glm_backend *be, const glm_batch *b, char *err, size_t errlen)
{
    if (glm_bench_sync(err, errlen) != 0)
        return -1;
    double t = glm_now();
    if (be->ops->forward(be, b, err, errlen) != GLM_OK)
        return -1;
    return glm_now() - t;
}

static void row(const char *what, const char *batch, const char *ctx, double ms, const char *per_layer,
                const char *rate, const char *work, const char *frac)
{
    char t[32];
    snprintf(t, sizeof t, ms < 1e4 ? "%.4g" : "%.0f", ms);
    printf("%-22s %6s %8s %11s %10s %-20s %-16s %s\n", what, batch, ctx, t, per_layer, rate, work, frac);
    fflush(stdout);
}

/* x in the largest of the units unit[0] (1), unit[1] (1e3) ... that keeps it >= 1. */
static void fmt_units(char *buf, size_t n, double x, const char *const *units, int n_units, const char *suffix)
{
    int u = 0;
    double scale = 1;
    while (u + 1 < n_units && x >= scale * 1e3) {
        scale *= 1e3;
        u++;
    }
    snprintf(buf, n, "%.3g %s%s", x / scale, units[u], suffix);
}

static const char *const BYTE_UNITS[] = {"B", "kB", "MB", "GB", "TB"};
static const char *const FLOP_UNITS[] = {"FLOP", "kFLOP", "MFLOP", "GFLOP", "TFLOP", "PFLOP"};

static const char usage[] =
    "usage: glm-bench-rank --model DIR [--contexts 8192] [--batches 1,8,64,256] [--prompt-len 4096]\n"
    "                      [--repeat 10] [--max-num-batched-tokens 2048] [--enforce-eager]\n";

int main(int argc, char **argv)
{
    const char *model_dir = NULL;
    int contexts[MAX_LIST] = {8192}, batches[MAX_LIST] = {1, 8, 64, 256};
    int n_ctx = 1, n_batch = 4, plen = 4096, repeat = 10, mnbt = 2048, eager = 0, o;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"contexts", required_argument, 0, 'c'},
                                         {"batches", required_argument, 0, 'b'},
                                         {"prompt-len", required_argument, 0, 'p'},
                                         {"repeat", required_argument, 0, 'r'},
                                         {"max-num-batched-tokens", required_argument, 0, 't'},
                                         {"enforce-eager", no_argument, 0, 'E'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (o) {
        case 'm': model_dir = optarg; break;
        case 'c': bad = (n_ctx = parse_list(optarg, contexts, 1 << 22)) < 0; break;
        case 'b': bad = (n_batch = parse_list(optarg, batches, 1 << 16)) < 0; break;
        case 'p': bad = parse_int(optarg, 1, 1 << 22, &plen); break;
        case 'r': bad = parse_int(optarg, 1, 100000, &repeat); break;
        case 't': bad = parse_int(optarg, 1, 1 << 20, &mnbt); break;
        case 'E': eager = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "glm-bench-rank: bad value '%s'\n%s", optarg, usage);
            return 2;
        }
    }
    if (!model_dir || optind < argc) {
        fputs(usage, stderr);
        return 2;
    }

    char err[GLM_ERRLEN], dev[256];
    double dev_gib = 0;
    int on_cpu = glm_bench_cuda_on_cpu();
    if (glm_bench_device(0, dev, sizeof dev, &dev_gib, err, sizeof err) != 0) {
        fprintf(stderr, "glm-bench-rank: %s\n", err);
        return 1;
    }
    printf("glm-bench-rank: one GLM-5 rank's slice on the CUDA backend\n");
    printf("device:   %s, %.1f GiB\n", dev, dev_gib);
    if (on_cpu)
        printf("CPU execution layer: timings are not GPU timings\n");

    /* the reference rates first, before the backend holds the memory */
    size_t copy_bytes = on_cpu ? (size_t)64 << 20 : (size_t)1 << 30;
    int gm = on_cpu ? 256 : 8192, ref_reps = on_cpu ? 3 : 20;
    double copy_ms, copy_gbps, gemm_ms, gemm_tflops;
    if (glm_bench_copy(copy_bytes, ref_reps, &copy_ms, &copy_gbps, err, sizeof err) != 0 ||
        glm_bench_fp8_linear(gm, gm, gm, ref_reps, &gemm_ms, &gemm_tflops, err, sizeof err) != 0) {
        fprintf(stderr, "glm-bench-rank: %s\n", err);
        return 1;
    }

    double t0 = glm_now();
    glm_model *m = glm_model_load(model_dir, err, sizeof err);
    if (!m) {
        fprintf(stderr, "glm-bench-rank: %s\n", err);
        return 1;
    }
    const glm_config *c = &m->cfg;
    int L = c->num_hidden_layers, dense = 0;
    for (int li = 0; li < L; li++)
        dense += !m->layers[li].sparse;
    printf("model:    %s: %d layers (%d dense, %d MoE), hidden %d, %d heads, %d experts top-%d, index %d x %d "
           "top-%d, vocab %d, %.3g GB of %s weights\n",
           model_dir, L, dense, L - dense, c->hidden_size, c->num_attention_heads, c->n_routed_experts,
           c->num_experts_per_tok, c->index_n_heads, c->index_head_dim, c->index_topk, c->vocab_size,
           m->weight_bytes / 1e9, glm_dtype_name(m->layers[0].q_a.dtype));

    /* the backend, sized for the largest case */
    int max_b = 1, max_ctx = 0;
    size_t blocks = (size_t)(plen + BLOCK_SIZE - 1) / BLOCK_SIZE;
    for (int i = 0; i < n_batch; i++)
        max_b = GLM_MAX(max_b, batches[i]);
    for (int i = 0; i < n_ctx; i++)
        max_ctx = GLM_MAX(max_ctx, contexts[i]);
    size_t per_seq = (size_t)(max_ctx + 1 + BLOCK_SIZE - 1) / BLOCK_SIZE;
    blocks = GLM_MAX(blocks, (size_t)max_b * per_seq);
    int mbps = (int)GLM_MAX(per_seq, (size_t)(plen + BLOCK_SIZE - 1) / BLOCK_SIZE);
    if (blocks > (size_t)INT32_MAX / BLOCK_SIZE) {
        fprintf(stderr, "glm-bench-rank: %zu KV blocks are too many\n", blocks);
        return 1;
    }
    glm_backend_params bp = {
        .kind = GLM_BACKEND_CUDA,
        .rank = 0,
        .world = 1,
        .block_size = BLOCK_SIZE,
        .kv_blocks = (int)blocks,
        .max_num_batched_tokens = GLM_MAX(GLM_MAX(mnbt, max_b), BLOCK_SIZE),
        .max_num_seqs = max_b,
        .max_blocks_per_seq = mbps,
        .max_logits_rows = 1,
        .dtype = GLM_COMPUTE_AUTO,
        .device = 0,
        .cuda_graphs = !eager,
    };
    glm_backend *be = glm_backend_create(m, &bp, err, sizeof err);
    if (!be) {
        fprintf(stderr, "glm-bench-rank: %s\n", err);
        return 1;
    }
    const glm_backend_info *info = &be->info;
    printf("backend:  %s, %s; KV cache %d blocks of %d tokens (%.3g GiB), workspace %.3g GiB; "
           "load + upload %.1f s\n",
           info->name, eager ? "eager (--enforce-eager)" : "CUDA graphs requested (cuda_graphs 1)",
           info->limits.num_blocks, BLOCK_SIZE, info->kv_bytes / 1073741824.0, info->workspace_bytes / 1073741824.0,
           glm_now() - t0);
    step_cost sc = step_costs(m, info);

    batch_arrays a;
    arrays_alloc(&a, bp.max_num_batched_tokens, max_b, mbps);
    double *times = glm_calloc((size_t)repeat, sizeof(double));
    int rc = 0;
    char b1[32], b2[32], b3[48], b4[48], b5[48], title[48];

    printf("\n%-22s %6s %8s %11s %10s %-20s %-16s %s\n", "measure", "batch", "context", "median ms", "layer ms",
           "rate", "work", "fraction");
    snprintf(title, sizeof title, "copy D2D %zu MiB", copy_bytes >> 20);
    fmt_units(b3, sizeof b3, copy_gbps * 1e9, BYTE_UNITS, 5, "/s");
    fmt_units(b4, sizeof b4, 2.0 * copy_bytes, BYTE_UNITS, 5, " moved");
    row(title, "-", "-", copy_ms, "-", b3, b4, "1 (reference)");
    snprintf(title, sizeof title, "fp8 gemm %d^3", gm);
    fmt_units(b3, sizeof b3, gemm_tflops * 1e12, FLOP_UNITS, 6, "/s");
    fmt_units(b4, sizeof b4, 2.0 * gm * (double)gm * gm, FLOP_UNITS, 6, "");
    row(title, "-", "-", gemm_ms, "-", b3, b4, "1 (reference)");

    for (int ci = 0; ci < n_ctx && rc == 0; ci++) {
        for (int bi = 0; bi < n_batch && rc == 0; bi++) {
            int B = batches[bi], C = contexts[ci];
            glm_batch b = decode_batch(&a, c->vocab_size, B, C);
            if (glm_batch_validate(&b, &info->limits, err, sizeof err) != GLM_OK) {
                rc = 1;
                break;
            }
            for (int r = -2; r < repeat && rc == 0; r++) {
                double t = timed_forward(be, &b, err, sizeof err);
                if (t < 0)
                    rc = 1;
                else if (r >= 0)
                    times[r] = t;
            }
            if (rc)
                break;
            double t = median(times, repeat), bytes = decode_bytes(c, &sc, B, C);
            snprintf(b1, sizeof b1, "%d", B);
            snprintf(b2, sizeof b2, "%d", C);
            snprintf(b3, sizeof b3, "%.4g", t * 1e3 / L);
            snprintf(b4, sizeof b4, "%.4g tok/s", B / t);
            fmt_units(b5, sizeof b5, bytes, BYTE_UNITS, 5, " read");
            char fr[48];
            snprintf(fr, sizeof fr, "%.3f of copy", bytes / t / (copy_gbps * 1e9));
            row("decode", b1, b2, t * 1e3, b3, b4, b5, fr);
        }
    }
    if (rc == 0) {
        int chunk = GLM_MIN(mnbt, plen);
        for (int r = -1; r < repeat && rc == 0; r++) {
            double total = 0;
            for (int s = 0; s < plen && rc == 0; s += chunk) {
                int n = GLM_MIN(chunk, plen - s);
                glm_batch b = prefill_batch(&a, c->vocab_size, s, n, s + n == plen);
                if (r < 0 && glm_batch_validate(&b, &info->limits, err, sizeof err) != GLM_OK) {
                    rc = 1;
                    break;
                }
                double t = timed_forward(be, &b, err, sizeof err);
                if (t < 0)
                    rc = 1;
                total += t;
            }
            if (r >= 0)
                times[r] = total;
        }
        if (rc == 0) {
            double t = median(times, repeat), flops = 2.0 * sc.active * plen;
            snprintf(title, sizeof title, "prefill (chunks %d)", chunk);
            snprintf(b2, sizeof b2, "%d", plen);
            snprintf(b3, sizeof b3, "%.4g", t * 1e3 / L);
            snprintf(b4, sizeof b4, "%.4g tok/s", plen / t);
            fmt_units(b5, sizeof b5, flops, FLOP_UNITS, 6, "");
            char fr[48];
            snprintf(fr, sizeof fr, "%.3f of fp8 gemm", flops / t / (gemm_tflops * 1e12));
            row(title, "1", b2, t * 1e3, b3, b4, b5, fr);
        }
    }
    if (rc)
        fprintf(stderr, "glm-bench-rank: %s\n", err);
    else
        printf("\nper layer = median forward time / %d layers; decode reads min(%d, batch x %d) routed experts a "
               "MoE layer (an upper bound), min(context + 1, %d) latent rows and context + 1 indexer keys a "
               "sequence and layer; prefill counts %.4g M active parameters a token\n",
               L, c->n_routed_experts, c->num_experts_per_tok, c->index_topk, sc.active / 1e6);
    free(times);
    arrays_free(&a);
    glm_backend_destroy(be);
    glm_model_free(m);
    return rc;
}
