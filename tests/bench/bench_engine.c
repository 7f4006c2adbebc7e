/*
 * bench_engine.c - engine throughput (CPU backend unless --device says otherwise) on a checkpoint (models/small by
 * default): prefill tokens/s for a 512-token prompt and greedy decode tokens/s
 * over 128 steps, at batch 1 and batch 8 (8 sequences prefilled in one step,
 * then decoded together, one token each per step). Prints what it measured and
 * on what machine; it asserts nothing.
 *
 *   build/glm-bench --model models/small [--threads N] [--prompt-len 512]
 *                   [--steps 128] [--batches 1,8] [--repeat 3] [--warmup 0]
 *                   [--device auto|cuda|cpu] [--dtype auto|bfloat16|float32] [--enforce-eager]
 *
 * The backend flags are glm-server's (server/backend_flags.c); glm-bench is
 * linked with the CUDA backend when glm-server is (nvcc found).
 *
 * Each configuration runs --repeat times on a fresh cache; the best and the
 * median rate are printed (the best is the least disturbed by other load).
 * --warmup N first runs N untimed batch-1 prefills of the prompt length with 8
 * decode steps (every weight read once, as llama.cpp's benchmarks warm up), so
 * that a single timed repeat does not pay for first touches of the weights.
 *
 * On the CPU backend at one rank, after the table: the weight bytes a batch-1 decode token reads
 * (the routed experts at their mean size), the read bandwidth the same threads get over a buffer
 * the checkpoint's size (each thread a contiguous part, best of 5), and the best batch-1 decode
 * rate as a fraction of it.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_flags.h"
#include "sched/block_manager.h"
#include "sched/model_runner.h"
#include "sched/scheduler.h"
#include "core/util.h"
#include "cpu/ops.h"

static void cpu_name(char *buf, size_t n)
{
    snprintf(buf, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p += 2;
                p[strcspn(p, "\n")] = 0;
                snprintf(buf, n, "%s", p);
            }
            break;
        }
    }
    fclose(f);
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double wbytes(const glm_weight *w)
{
    return w->data ? (double)w->rows * w->cols * glm_dtype_size(w->dtype) : 0;
}

/* Weight bytes a batch-1 decode token reads: every layer's attention and indexer, the dense MLPs,
 * the router, the shared expert and num_experts_per_tok routed experts (at their mean size), the
 * LM head. Not the norms, the embedding row or the FP8 block scales. */
static double decode_bytes(const glm_model *m)
{
    const glm_config *c = &m->cfg;
    double b = wbytes(&m->lm_head);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const glm_layer *L = &m->layers[l];
        b += wbytes(&L->q_a) + wbytes(&L->q_b) + wbytes(&L->kv_a) + wbytes(&L->kv_b) + wbytes(&L->o);
        if (L->has_indexer)
            b += wbytes(&L->idx_wq_b) + wbytes(&L->idx_wk) + wbytes(&L->idx_weights_proj);
        if (!L->sparse) {
            b += wbytes(&L->gate) + wbytes(&L->up) + wbytes(&L->down);
            continue;
        }
        double experts = 0;
        for (int e = 0; e < m->shard.n_experts; e++)
            experts += wbytes(&L->exp_gate[e]) + wbytes(&L->exp_up[e]) + wbytes(&L->exp_down[e]);
        b += wbytes(&L->router) + wbytes(&L->sh_gate) + wbytes(&L->sh_up) + wbytes(&L->sh_down) +
             experts / m->shard.n_experts * c->num_experts_per_tok;
    }
    return b;
}

typedef struct {
    const uint64_t *buf;
    size_t n;        /* uint64 words */
    int parts;
    uint64_t sum[64];   /* each part's xor, stored where the caller could read it: the reads stay */
} read_ctx;

static void read_part(void *ctx, int i, int worker)
{
    read_ctx *r = ctx;
    size_t per = (r->n / (size_t)r->parts) & ~(size_t)7;
    size_t a = per * (size_t)i, e = i == r->parts - 1 ? r->n : a + per;
    typedef uint64_t v8u __attribute__((vector_size(64)));
    v8u acc = {0};
    for (size_t k = a; k + 8 <= e; k += 8) {
        v8u v;
        memcpy(&v, r->buf + k, sizeof v);
        acc ^= v;
    }
    r->sum[i] = acc[0] ^ acc[1] ^ acc[2] ^ acc[3] ^ acc[4] ^ acc[5] ^ acc[6] ^ acc[7];
}

/* What `threads` threads read of a buffer the size of the checkpoint, each a contiguous part,
 * best of 5 passes after one untimed (GB/s). */
static double read_bandwidth(size_t bytes, int threads)
{
    size_t n = bytes / 8;
    uint64_t *buf = malloc(n * 8);
    if (!buf)
        return 0;
    for (size_t i = 0; i < n; i++)
        buf[i] = i * 0x9e3779b97f4a7c15ull;
    glm_pool *pool = glm_pool_create(threads);
    read_ctx r = {buf, n, GLM_MIN(threads, 64), {0}};
    double best = 0;
    for (int pass = 0; pass < 6; pass++) {
        double t0 = glm_now();
        glm_pool_for(pool, r.parts, read_part, &r);
        double gbs = (double)n * 8 / (glm_now() - t0) / 1e9;
        if (pass > 0 && gbs > best)
            best = gbs;
    }
    glm_pool_free(pool);
    free(buf);
    return best;
}

/* One prefill of B random prompts, then `steps` greedy decode steps. */
static int run_once(const glm_model *m, const glm_backend_choice *bc, int B, int plen, int steps, int threads,
                    double *prefill_rate, double *decode_rate)
{
    const glm_config *c = &m->cfg;
    char err[GLM_ERRLEN];
    glm_runner_params rp;
    glm_runner_params_default(&rp);
    rp.max_num_batched_tokens = B * plen;
    rp.max_num_seqs = B;
    rp.max_model_len = plen + steps;
    rp.kv_cache_tokens = B * (plen + steps + 16);
    rp.n_threads = threads;
    rp.backend = bc->kind;
    rp.dtype = bc->dtype;
    rp.device = bc->device;
    rp.cuda_graphs = bc->cuda_graphs;
    rp.tensor_parallel_size = bc->tensor_parallel_size;
    glm_runner *r = glm_runner_create(m, &rp, err, sizeof err);
    if (!r) {
        fprintf(stderr, "glm-bench: %s\n", err);
        return -1;
    }
    glm_block_manager *bm = glm_bm_create(glm_runner_info(r)->limits.num_blocks, rp.block_size, 0);
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)plen);
    glm_sequence **seqs = malloc(sizeof(glm_sequence *) * (size_t)B);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < B; i++) {
        for (int j = 0; j < plen; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            toks[j] = (int32_t)(x % (uint64_t)c->vocab_size);
        }
        seqs[i] = glm_seq_create((uint64_t)i, toks, plen, steps);
    }
    int *nn = malloc(sizeof(int) * (size_t)B);
    int32_t *rows = malloc(sizeof(int32_t) * (size_t)B), *next = malloc(sizeof(int32_t) * (size_t)B);
    for (int i = 0; i < B; i++) {
        nn[i] = plen;
        rows[i] = i;
    }
    double a = glm_now();
    if (glm_runner_step_seqs(r, bm, seqs, nn, B, 0, err, sizeof err)) {
        fprintf(stderr, "glm-bench: %s\n", err);
        return -1;
    }
    double prefill = glm_now() - a;
    a = glm_now();
    for (int s = 0; s < steps; s++) {
        if (glm_runner_greedy(r, rows, B, next, err, sizeof err)) {
            fprintf(stderr, "glm-bench: %s\n", err);
            return -1;
        }
        for (int i = 0; i < B; i++) {
            glm_seq_append(seqs[i], next[i]);
            nn[i] = 1;
        }
        if (glm_runner_step_seqs(r, bm, seqs, nn, B, 0, err, sizeof err)) {
            fprintf(stderr, "glm-bench: %s\n", err);
            return -1;
        }
    }
    double decode = glm_now() - a;
    *prefill_rate = (double)B * plen / prefill;
    *decode_rate = (double)B * steps / decode;
    for (int i = 0; i < B; i++) {
        glm_bm_release(bm, &seqs[i]->table);
        glm_seq_free(seqs[i]);
    }
    glm_bm_free(bm);
    glm_runner_free(r);
    free(toks);
    free(seqs);
    free(nn);
    free(rows);
    free(next);
    return 0;
}

int main(int argc, char **argv)
{
    const char *model_dir = "models/small", *batches = "1,8";
    int threads = 0, plen = 512, steps = 128, repeat = 3, warmup = 0, o;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"threads", required_argument, 0, 't'},
                                         {"prompt-len", required_argument, 0, 'p'},
                                         {"steps", required_argument, 0, 's'},
                                         {"batches", required_argument, 0, 'b'},
                                         {"repeat", required_argument, 0, 'r'},
                                         {"warmup", required_argument, 0, 'w'},
                                         {"device", required_argument, 0, 'd'},
                                         {"dtype", required_argument, 0, 'D'},
                                         {"enforce-eager", no_argument, 0, 'E'},
                                         {"tensor-parallel-size", required_argument, 0, 'T'},
                                         {0, 0, 0, 0}};
    char err[GLM_ERRLEN], cpu[256];
    glm_backend_flags bf;
    glm_backend_flags_default(&bf);
    glm_backend_flags_aliases(argc, argv);
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'm': model_dir = optarg; break;
        case 't': threads = atoi(optarg); break;
        case 'p': plen = atoi(optarg); break;
        case 's': steps = atoi(optarg); break;
        case 'b': batches = optarg; break;
        case 'r': repeat = atoi(optarg); break;
        case 'w': warmup = atoi(optarg); break;
        case 'd':
        case 'D':
            if ((o == 'd' ? glm_backend_flags_set_device : glm_backend_flags_set_dtype)(&bf, optarg, err,
                                                                                     sizeof err) != GLM_OK) {
                fprintf(stderr, "glm-bench: %s\n", err);
                return 2;
            }
            break;
        case 'E': bf.enforce_eager = 1; break;
        case 'T':
            if (glm_backend_flags_set_tp(&bf, optarg, err, sizeof err) != GLM_OK) {
                fprintf(stderr, "glm-bench: %s\n", err);
                return 2;
            }
            break;
        default:
            fprintf(stderr, "usage: glm-bench --model DIR [--threads N] [--prompt-len N] [--steps N] [--batches 1,8]\n"
                            "                 [--repeat N] [--warmup N] [--device auto|cuda|cpu] [--dtype auto|bfloat16|float32]\n"
                            "                 [--enforce-eager] [--tensor-parallel-size N]\n");
            return 2;
        }
    }
    if (plen < 1 || steps < 1 || repeat < 1 || warmup < 0)
        return 2;
    glm_backend_choice bc;
    char blog[GLM_ERRLEN], bnote[GLM_ERRLEN];
    if (glm_backend_flags_resolve(&bf, &bc, blog, sizeof blog, bnote, sizeof bnote, err, sizeof err) != GLM_OK) {
        fprintf(stderr, "glm-bench: %s\n", err);
        return 1;
    }
    if (bnote[0])
        fprintf(stderr, "glm-bench: %s\n", bnote);
    double t0 = glm_now();
    glm_model *m = glm_model_load(model_dir, err, sizeof err);
    if (!m) {
        fprintf(stderr, "glm-bench: %s\n", err);
        return 1;
    }
    const glm_config *c = &m->cfg;
    cpu_name(cpu, sizeof cpu);
    int nthreads = threads > 0 ? threads : glm_cpu_count();
    printf("model:    %s (%d layers, hidden %d, %d experts top-%d, index_topk %d, %.1f MB of weights, %s)\n",
           model_dir, c->num_hidden_layers, c->hidden_size, c->n_routed_experts, c->num_experts_per_tok,
           c->index_topk, m->weight_bytes / 1e6, glm_dtype_name(m->layers[0].q_a.dtype));
    printf("machine:  %s, %d threads (of %d CPUs), %s matmul kernels\n", cpu, nthreads, glm_cpu_count(),
           glm_ops_kernels());
    printf("backend:  %s\n", blog + strlen("backend "));
    printf("load:     %.2f s\n\n", glm_now() - t0);
    for (int w = 0; w < warmup; w++) {
        double pf, dc;
        if (run_once(m, &bc, 1, plen, 8, threads, &pf, &dc))
            return 1;
    }
    printf("%-6s %-8s %-26s %-26s\n", "batch", "prompt", "prefill tok/s best/median",
           "decode tok/s best/median");

    int *bl = NULL;
    int nb = 0;
    {
        const char *p = batches;
        while (*p) {
            bl = realloc(bl, sizeof(int) * (size_t)(nb + 1));
            bl[nb++] = atoi(p);
            p = strchr(p, ',');
            if (!p)
                break;
            p++;
        }
    }
    double best_decode1 = 0;
    for (int bi = 0; bi < nb; bi++) {
        int B = bl[bi];
        if (B < 1)
            continue;
        double *pf = calloc((size_t)repeat, sizeof(double)), *dc = calloc((size_t)repeat, sizeof(double));
        for (int rep = 0; rep < repeat; rep++)
            if (run_once(m, &bc, B, plen, steps, threads, &pf[rep], &dc[rep]))
                return 1;
        qsort(pf, (size_t)repeat, sizeof(double), dbl_cmp);
        qsort(dc, (size_t)repeat, sizeof(double), dbl_cmp);
        char a1[64], a2[64];
        snprintf(a1, sizeof a1, "%.1f / %.1f", pf[repeat - 1], pf[repeat / 2]);
        snprintf(a2, sizeof a2, "%.1f / %.1f", dc[repeat - 1], dc[repeat / 2]);
        printf("%-6d %-8d %-26s %-26s\n", B, plen, a1, a2);
        if (B == 1)
            best_decode1 = dc[repeat - 1];
        fflush(stdout);
        free(pf);
        free(dc);
    }
    free(bl);
    if (best_decode1 > 0 && bc.kind == GLM_BACKEND_CPU && bc.tensor_parallel_size == 1) {
        double per_tok = decode_bytes(m), bw = read_bandwidth(m->weight_bytes, nthreads);
        printf("\nbatch-1 decode reads %.1f MB of weights a token (attention, indexer, dense MLPs, router, "
               "shared and %d routed experts, LM head)\n",
               per_tok / 1e6, m->cfg.num_experts_per_tok);
        printf("read bandwidth: %.1f GB/s (%d threads, a %.1f MB buffer, the checkpoint's size, in "
               "contiguous parts, best of 5)\n",
               bw, nthreads, m->weight_bytes / 1e6);
        printf("batch-1 decode at its best: %.1f GB/s of weights, %.0f%% of the read bandwidth\n",
               per_tok * best_decode1 / 1e9, bw > 0 ? 100 * per_tok * best_decode1 / 1e9 / bw : 0);
    }
    glm_model_free(m);
    return 0;
}
