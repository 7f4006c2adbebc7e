/*
 * bench_serving.c - aggregate decode throughput of the engine (continuous
 * batching) at several concurrencies: C requests submitted at once, each with
 * a random prompt and a fixed number of greedy output tokens; prints output
 * tokens per second over the whole run, time to first token and the mean
 * inter-token latency. Prints what it measured and on what machine. With
 * --speculative-tokens K,... each concurrency runs once per K (0: plain decoding;
 * K > 0: the MTP layer drafts K tokens a step) and prints the acceptance rate.
 *
 *   build/glm-bench-serving --model models/small [--concurrency 1,4,16]
 *                           [--prompt-len 128] [--max-tokens 128] [--threads N]
 *                           [--speculative-tokens 0,1]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched/engine.h"
#include "cpu/kvcache.h"
#include "core/util.h"

int main(int argc, char **argv)
{
    const char *model_dir = "models/small", *conc = "1,4,16", *spec = "0";
    int plen = 128, max_tokens = 128, threads = 0, o;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"concurrency", required_argument, 0, 'c'},
                                         {"prompt-len", required_argument, 0, 'p'},
                                         {"max-tokens", required_argument, 0, 'n'},
                                         {"threads", required_argument, 0, 't'},
                                         {"speculative-tokens", required_argument, 0, 's'},
                                         {0, 0, 0, 0}};
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'm': model_dir = optarg; break;
        case 'c': conc = optarg; break;
        case 'p': plen = atoi(optarg); break;
        case 'n': max_tokens = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 's': spec = optarg; break;
        default:
            fprintf(stderr, "usage: glm-bench-serving --model DIR [--concurrency 1,4,16] [--prompt-len N] "
                            "[--max-tokens N] [--threads N] [--speculative-tokens 0,1]\n");
            return 2;
        }
    }
    if (plen < 1 || max_tokens < 1)
        return 2;
    char err[GLM_ERRLEN];
    glm_model *m = glm_model_load(model_dir, err, sizeof err);
    if (!m) {
        fprintf(stderr, "glm-bench-serving: %s\n", err);
        return 1;
    }
    printf("model:   %s; prompt %d tokens, %d greedy output tokens per request; %d threads of %d CPUs\n\n",
           model_dir, plen, max_tokens, threads > 0 ? threads : glm_cpu_count(), glm_cpu_count());
    printf("%-12s %-6s %-20s %-14s %-16s %-10s %-10s\n", "concurrency", "drafts", "output tok/s (agg)",
           "mean TTFT s", "mean ITL ms", "wall s", "accepted");
    const char *p = conc;
    while (*p) {
        int C = atoi(p);
        for (const char *q = spec; C >= 1 && *q;) {
            int K = atoi(q);
            const char *comma = strchr(q, ',');
            q = comma ? comma + 1 : q + strlen(q);
            glm_engine_params ep;
            glm_engine_params_default(&ep);
            ep.n_threads = threads;
            ep.max_num_seqs = GLM_MAX(C, 1);
            ep.max_unread_events = 0; /* the requests are read one after another: no backpressure */
            ep.num_speculative_tokens = K;
            ep.kv_cache_bytes = (glm_kv_bytes_per_token(&m->cfg) + (K ? glm_kv_draft_bytes_per_token(&m->cfg) : 0)) *
                                (size_t)(C * (plen + max_tokens + 32 + K));
            glm_engine *e = glm_engine_create(m, &ep, err, sizeof err);
            if (!e) {
                fprintf(stderr, "glm-bench-serving: %s\n", err);
                return 1;
            }
            {
                /* warm-up: fault in the mapped weights and the cache before timing */
                int32_t w[16];
                for (int k = 0; k < 16; k++)
                    w[k] = k + 1;
                glm_sampling_params sp;
                glm_sampling_params_init(&sp);
                sp.temperature = 0;
                sp.has_max_tokens = 1;
                sp.max_tokens = 4;
                glm_submit_status st;
                glm_request *wr = glm_engine_submit(e, w, 16, &sp, &st, err, sizeof err);
                glm_event ev;
                while (wr && glm_request_next(wr, &ev, -1) == 1)
                    ;
                glm_request_release(wr);
            }
            glm_request **r = calloc((size_t)C, sizeof *r);
            int32_t *prompt = malloc(sizeof(int32_t) * (size_t)plen);
            uint64_t x = 0x853c49e6748fea9bull;
            double t0 = glm_now();
            for (int i = 0; i < C; i++) {
                for (int k = 0; k < plen; k++) {
                    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                    prompt[k] = (int32_t)(x % (uint64_t)m->cfg.vocab_size);
                }
                glm_sampling_params sp;
                glm_sampling_params_init(&sp);
                sp.temperature = 0;
                sp.has_max_tokens = 1;
                sp.max_tokens = max_tokens;
                sp.ignore_eos = 1;
                glm_submit_status st;
                r[i] = glm_engine_submit(e, prompt, plen, &sp, &st, err, sizeof err);
                if (!r[i]) {
                    fprintf(stderr, "glm-bench-serving: %s\n", err);
                    return 1;
                }
            }
            long tokens = 0;
            double ttft = 0, itl = 0;
            for (int i = 0; i < C; i++) {
                glm_event ev;
                while (glm_request_next(r[i], &ev, -1) == 1) {
                    if (ev.type == GLM_EV_TOKEN)
                        tokens++;
                    if (ev.type == GLM_EV_FINISH) {
                        ttft += ev.ttft;
                        if (ev.completion_tokens > 1)
                            itl += ev.decode_time / (ev.completion_tokens - 1);
                    }
                    if (ev.type == GLM_EV_ERROR) {
                        fprintf(stderr, "glm-bench-serving: %s\n", ev.message);
                        return 1;
                    }
                }
                glm_request_release(r[i]);
            }
            double wall = glm_now() - t0;
            glm_engine_metrics met;
            for (int i = 0; i < 1000; i++) { /* published after the step that finished the last request */
                glm_engine_metrics_get(e, &met);
                if (met.num_running == 0 && met.kv_blocks_used == 0)
                    break;
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
            }
            char acc[32] = "-";
            if (K > 0 && met.spec_draft_tokens > 0)
                snprintf(acc, sizeof acc, "%.1f%%", 100.0 * (double)met.spec_accepted_tokens / (double)met.spec_draft_tokens);
            printf("%-12d %-6d %-20.1f %-14.3f %-16.2f %-10.2f %-10s\n", C, K, tokens / wall, ttft / C, itl / C * 1e3,
                   wall, acc);
            fflush(stdout);
            free(r);
            free(prompt);
            glm_engine_free(e);
        }
        p = strchr(p, ',');
        if (!p)
            break;
        p++;
    }
    glm_model_free(m);
    return 0;
}
