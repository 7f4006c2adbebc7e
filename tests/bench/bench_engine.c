/*
 * bench_engine.c - CPU engine throughput on a checkpoint (models/small by
 * default): prefill tokens/s for a 512-token prompt and greedy decode tokens/s
 * over 128 steps, at batch 1 and batch 8 (8 sequences prefilled in one step,
 * then decoded together, one token each per step). Prints what it measured and
 * on what machine; it asserts nothing.
 *
 *   build/glm-bench --model models/small [--threads N] [--prompt-len 512]
 *                   [--steps 128] [--batches 1,8]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"
#include "util.h"

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

int main(int argc, char **argv)
{
    const char *model_dir = "models/small", *batches = "1,8";
    int threads = 0, plen = 512, steps = 128, o;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"threads", required_argument, 0, 't'},
                                         {"prompt-len", required_argument, 0, 'p'},
                                         {"steps", required_argument, 0, 's'},
                                         {"batches", required_argument, 0, 'b'},
                                         {0, 0, 0, 0}};
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'm': model_dir = optarg; break;
        case 't': threads = atoi(optarg); break;
        case 'p': plen = atoi(optarg); break;
        case 's': steps = atoi(optarg); break;
        case 'b': batches = optarg; break;
        default:
            fprintf(stderr, "usage: glm-bench --model DIR [--threads N] [--prompt-len N] [--steps N] [--batches 1,8]\n");
            return 2;
        }
    }
    if (plen < 1 || steps < 1)
        return 2;
    char err[GLM_ERRLEN], cpu[256];
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
    printf("machine:  %s, %d threads (of %d CPUs)\n", cpu, nthreads, glm_cpu_count());
    printf("load:     %.2f s\n\n", glm_now() - t0);
    printf("%-6s %-12s %-16s %-16s\n", "batch", "prompt", "prefill tok/s", "decode tok/s");

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
    for (int bi = 0; bi < nb; bi++) {
        int B = bl[bi];
        if (B < 1)
            continue;
        glm_runner *r = glm_runner_create(m, B * (plen + steps + 16), 16, threads, err, sizeof err);
        if (!r) {
            fprintf(stderr, "glm-bench: %s\n", err);
            return 1;
        }
        int32_t *toks = malloc(sizeof(int32_t) * (size_t)B * plen);
        uint64_t x = 88172645463325252ull;
        for (int i = 0; i < B * plen; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            toks[i] = (int32_t)(x % (uint64_t)c->vocab_size);
        }
        glm_seq *seqs = calloc((size_t)B, sizeof(glm_seq));
        glm_seq **sp = malloc(sizeof(glm_seq *) * (size_t)B);
        const int32_t **tp = malloc(sizeof(int32_t *) * (size_t)B);
        int *nn = malloc(sizeof(int) * (size_t)B);
        int32_t *next = malloc(sizeof(int32_t) * (size_t)B);
        float *logits = malloc(sizeof(float) * (size_t)B * c->vocab_size);
        for (int i = 0; i < B; i++) {
            sp[i] = &seqs[i];
            tp[i] = toks + (size_t)i * plen;
            nn[i] = plen;
        }
        double a = glm_now();
        if (glm_runner_step(r, B, sp, tp, nn, 0, logits, err, sizeof err)) {
            fprintf(stderr, "glm-bench: %s\n", err);
            return 1;
        }
        double prefill = glm_now() - a;
        a = glm_now();
        for (int s = 0; s < steps; s++) {
            for (int i = 0; i < B; i++) {
                next[i] = glm_argmax(logits + (size_t)i * c->vocab_size, c->vocab_size);
                tp[i] = &next[i];
                nn[i] = 1;
            }
            if (glm_runner_step(r, B, sp, tp, nn, 0, logits, err, sizeof err)) {
                fprintf(stderr, "glm-bench: %s\n", err);
                return 1;
            }
        }
        double decode = glm_now() - a;
        printf("%-6d %-12d %-16.1f %-16.1f\n", B, plen, (double)B * plen / prefill, (double)B * steps / decode);
        fflush(stdout);
        for (int i = 0; i < B; i++)
            glm_seq_release(r, &seqs[i]);
        glm_runner_free(r);
        free(toks);
        free(seqs);
        free(sp);
        free(tp);
        free(nn);
        free(next);
        free(logits);
    }
    free(bl);
    glm_model_free(m);
    return 0;
}
