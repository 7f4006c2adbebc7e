/*
 * cli_generate.c - `glm-server generate`: greedy decoding of a prompt given as
 * token ids, printing the generated ids as one comma-separated line. With
 * --logits FILE it also writes the float32 logits of every step (row 0: the
 * prompt's last position, then one row per generated token but the last),
 * little-endian, vocab_size floats a row: the format the parity tests read.
 * --device, --dtype and --enforce-eager choose the backend (backend_flags.h);
 * one stderr line names the one chosen and why.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_flags.h"
#include "cli.h"
#include "sched/block_manager.h"
#include "sched/model_runner.h"
#include "sched/scheduler.h"
#include "core/util.h"

int glm_parse_id_list(const char *s, int **out, char *err, size_t errlen)
{
    int n = 0, cap = 16;
    int *ids = glm_malloc(sizeof(int) * (size_t)cap);
    const char *p = s;
    while (*p == ' ')
        p++;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT_MAX) {
            free(ids);
            glm_err(err, errlen, "invalid token id list near \"%.20s\"", p);
            return -1;
        }
        if (n == cap)
            ids = glm_realloc(ids, sizeof(int) * (size_t)(cap *= 2));
        ids[n++] = (int)v;
        p = end;
        while (*p == ' ')
            p++;
        if (*p == ',') {
            p++;
            while (*p == ' ')
                p++;
            if (!*p) {
                free(ids);
                glm_err(err, errlen, "invalid token id list: trailing comma");
                return -1;
            }
            continue;
        }
        if (*p) {
            free(ids);
            glm_err(err, errlen, "invalid token id list near \"%.20s\"", p);
            return -1;
        }
    }
    if (n == 0) {
        free(ids);
        glm_err(err, errlen, "empty token id list");
        return -1;
    }
    *out = ids;
    return n;
}

/* Strict integer option: the whole string, within [lo, hi]. */
static int parse_int_opt(const char *name, const char *v, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "glm-server: --%s must be an integer in [%ld, %ld], got \"%s\"\n", name, lo, hi, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: glm-server generate --model DIR --prompt-ids 1,2,3 [--max-tokens N]\n"
               "                           [--logits FILE] [--threads N] [--ignore-eos]\n"
               "                           [--prefill-chunk N] [--device auto|cuda|cpu]\n"
               "                           [--dtype auto|bfloat16|float32] [--enforce-eager]\n"
               "                           [--tensor-parallel-size N]\n\n"
               "  --device auto|cuda|cpu        the backend (default auto: cuda when this binary has the\n"
               "                                CUDA backend and a device is usable, else cpu); CUDA runs\n"
               "                                on device 0 of what CUDA_VISIBLE_DEVICES leaves visible\n"
               "  --dtype auto|bfloat16|float32 what the backend computes in (also: float = float32);\n"
               "                                auto: bfloat16 on cuda; the cpu backend is always float32\n"
               "  --enforce-eager               cuda: no CUDA graphs, every step runs eagerly\n"
               "  --tensor-parallel-size N, -tp N  shard the model over N ranks (default 1)\n");
}

int glm_cli_generate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},      {"prompt-ids", required_argument, 0, 'p'},
        {"max-tokens", required_argument, 0, 'n'}, {"logits", required_argument, 0, 'l'},
        {"threads", required_argument, 0, 't'},    {"ignore-eos", no_argument, 0, 'e'},
        {"prefill-chunk", required_argument, 0, 'c'}, {"help", no_argument, 0, 'h'},
        {"device", required_argument, 0, 'd'},     {"dtype", required_argument, 0, 'D'},
        {"enforce-eager", no_argument, 0, 'E'},    {"no-enforce-eager", no_argument, 0, 'G'},
        {"tensor-parallel-size", required_argument, 0, 'T'},
        {0, 0, 0, 0}};
    const char *model_dir = NULL, *prompt = NULL, *logits_path = NULL;
    int max_tokens = 16, threads = 0, ignore_eos = 0, chunk = 0, o;
    char err[GLM_ERRLEN];
    glm_backend_flags bf;
    glm_backend_flags_default(&bf);
    glm_backend_flags_aliases(argc, argv);
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'm': model_dir = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n':
            if (parse_int_opt("max-tokens", optarg, 1, 1 << 30, &max_tokens))
                return 2;
            break;
        case 'l': logits_path = optarg; break;
        case 't':
            if (parse_int_opt("threads", optarg, 0, 1024, &threads))
                return 2;
            break;
        case 'e': ignore_eos = 1; break;
        case 'c':
            if (parse_int_opt("prefill-chunk", optarg, 0, 1 << 30, &chunk))
                return 2;
            break;
        case 'd':
        case 'D':
            if ((o == 'd' ? glm_backend_flags_set_device : glm_backend_flags_set_dtype)(&bf, optarg, err,
                                                                                     sizeof err) != GLM_OK) {
                fprintf(stderr, "glm-server: %s\n", err);
                return 2;
            }
            break;
        case 'E': bf.enforce_eager = 1; break;
        case 'G': bf.enforce_eager = 0; break;
        case 'T':
            if (glm_backend_flags_set_tp(&bf, optarg, err, sizeof err) != GLM_OK) {
                fprintf(stderr, "glm-server: %s\n", err);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "glm-server: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!model_dir || !prompt) {
        fprintf(stderr, "glm-server: %s is required\n", !model_dir ? "--model" : "--prompt-ids");
        usage(stderr);
        return 2;
    }
    int *ids = NULL;
    int n_prompt = glm_parse_id_list(prompt, &ids, err, sizeof err);
    if (n_prompt < 0) {
        fprintf(stderr, "glm-server: %s\n", err);
        return 2;
    }
    /* before the checkpoint is read: --device cuda without CUDA fails at once */
    glm_backend_choice bc;
    char blog[GLM_ERRLEN], bnote[GLM_ERRLEN];
    if (glm_backend_flags_resolve(&bf, &bc, blog, sizeof blog, bnote, sizeof bnote, err, sizeof err) != GLM_OK) {
        fprintf(stderr, "glm-server: %s\n", err);
        free(ids);
        return 1;
    }
    glm_model *m = glm_model_load(model_dir, err, sizeof err);
    if (!m) {
        fprintf(stderr, "glm-server: %s\n", err);
        free(ids);
        return 1;
    }
    const glm_config *c = &m->cfg;
    if ((long)n_prompt + max_tokens > c->max_position_embeddings) {
        fprintf(stderr, "glm-server: prompt (%d tokens) + max tokens (%d) exceed the model's context of %d\n",
                n_prompt, max_tokens, c->max_position_embeddings);
        free(ids);
        glm_model_free(m);
        return 2;
    }
    int rc = 1;
    FILE *lf = NULL;
    float *logits = glm_malloc(sizeof(float) * (size_t)c->vocab_size);
    glm_sequence *seq = glm_seq_create(0, ids, n_prompt, max_tokens);
    glm_block_manager *bm = NULL;
    glm_runner_params rp;
    glm_runner_params_default(&rp);
    rp.max_num_batched_tokens = chunk > 0 ? GLM_MIN(chunk, n_prompt) : n_prompt;
    rp.max_num_seqs = 1;
    rp.max_model_len = n_prompt + max_tokens;
    rp.kv_cache_tokens = n_prompt + max_tokens;
    rp.n_threads = threads;
    rp.backend = bc.kind;
    rp.dtype = bc.dtype;
    rp.device = bc.device;
    rp.cuda_graphs = bc.cuda_graphs;
    rp.tensor_parallel_size = bc.tensor_parallel_size;
    fprintf(stderr, "glm-server: %s\n", blog);
    if (bnote[0])
        fprintf(stderr, "glm-server: %s\n", bnote);
    glm_runner *r = glm_runner_create(m, &rp, err, sizeof err);
    if (!r)
        goto out;
    bm = glm_bm_create(glm_runner_info(r)->limits.num_blocks, rp.block_size, 0);
    if (logits_path && !(lf = fopen(logits_path, "wb"))) {
        snprintf(err, sizeof err, "%s: %s", logits_path, strerror(errno));
        goto out;
    }
    /* prefill, in chunks if asked; then one token a step */
    int n_out = 0;
    for (;;) {
        int nn = GLM_MIN(rp.max_num_batched_tokens, seq->n_tokens - seq->n_computed);
        if (glm_runner_step_seqs(r, bm, &seq, &nn, 1, 0, err, sizeof err) != GLM_OK)
            goto out;
        if (seq->n_computed < seq->n_tokens)
            continue;
        int32_t row = 0, next;
        if (lf && (glm_runner_logits(r, &row, 1, logits, err, sizeof err) != GLM_OK ||
                   fwrite(logits, sizeof(float), (size_t)c->vocab_size, lf) != (size_t)c->vocab_size)) {
            snprintf(err, sizeof err, "%s: write failed", logits_path);
            goto out;
        }
        if (glm_runner_greedy(r, &row, 1, &next, err, sizeof err) != GLM_OK)
            goto out;
        glm_seq_append(seq, next);
        n_out++;
        int eos = 0;
        for (int i = 0; i < c->n_eos && !ignore_eos; i++)
            eos |= next == c->eos_token_ids[i];
        if (eos || n_out == max_tokens)
            break;
    }
    for (int i = 0; i < n_out; i++)
        printf("%s%d", i ? "," : "", seq->tokens[n_prompt + i]);
    printf("\n");
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "glm-server: %s\n", err);
    if (lf && fclose(lf) != 0 && rc == 0) {
        fprintf(stderr, "glm-server: %s: write failed\n", logits_path);
        rc = 1;
    }
    if (bm)
        glm_bm_release(bm, &seq->table);
    glm_seq_free(seq);
    glm_bm_free(bm);
    glm_runner_free(r);
    free(logits);
    free(ids);
    glm_model_free(m);
    return rc;
}
