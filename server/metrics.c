/*
 * metrics.c - the Prometheus registry and exposition of GET /metrics (see
 * metrics.h): vLLM v1's gauges, counters and histograms (names, HELP texts,
 * bucket boundaries from vllm/v1/metrics/loggers.py) under the prefix "glm:",
 * labels sorted as prometheus_client writes them (engine, finished_reason or
 * le, model_name), numbers formatted as prometheus_client formats them.
 *
 * One mutex guards every histogram and counter observed here; observations
 * are a few additions, so it is never held for long, and a scrape copies
 * nothing: it renders under the lock, which makes each histogram consistent.
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* vLLM's bucket boundaries */
static const double TTFT_BUCKETS[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                                      1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
static const double ITL_BUCKETS[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
                                     0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
static const double REQUEST_LATENCY_BUCKETS[] = {0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
                                                 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
#define NB(a) ((int)(sizeof(a) / sizeof((a)[0])))

enum { H_TTFT, H_ITL, H_E2E, H_QUEUE, H_INFERENCE, H_PREFILL, H_DECODE, H_PROMPT, H_GEN, H_COUNT };

static const struct {
    const char *name, *help;
} hist_info[H_COUNT] = {
    [H_TTFT] = {"time_to_first_token_seconds", "Histogram of time to first token in seconds."},
    [H_ITL] = {"inter_token_latency_seconds", "Histogram of inter-token latency in seconds."},
    [H_E2E] = {"e2e_request_latency_seconds", "Histogram of e2e request latency in seconds."},
    [H_QUEUE] = {"request_queue_time_seconds", "Histogram of time spent in WAITING phase for request."},
    [H_INFERENCE] = {"request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request."},
    [H_PREFILL] = {"request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request."},
    [H_DECODE] = {"request_decode_time_seconds", "Histogram of time spent in DECODE phase for request."},
    [H_PROMPT] = {"request_prompt_tokens", "Number of prefill tokens processed."},
    [H_GEN] = {"request_generation_tokens", "Number of generation tokens processed."},
};

typedef struct {
    const double *bounds;
    int n;                  /* finite bounds; counts has n + 1 entries, the last one +Inf */
    uint64_t *counts;       /* per bucket, not cumulative */
    uint64_t count;
    double sum;
} hist;

struct glm_metrics {
    pthread_mutex_t mu;
    hist h[H_COUNT];
    double *token_buckets;  /* 1, 2, 5, 10, ... <= max_model_len */
    uint64_t success[3];    /* by glm_finish_reason */
};

static void hist_init(hist *h, const double *bounds, int n)
{
    h->bounds = bounds;
    h->n = n;
    h->counts = glm_calloc((size_t)n + 1, sizeof *h->counts);
}

static void hist_observe(hist *h, double v)
{
    if (!isfinite(v))
        return;
    int i = 0;
    while (i < h->n && v > h->bounds[i]) /* le: a value on a bound counts in that bucket */
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

glm_metrics *glm_metrics_create(int max_model_len)
{
    glm_metrics *m = glm_calloc(1, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    /* build_1_2_5_buckets(max_model_len) */
    int nt = 0;
    m->token_buckets = glm_calloc(64, sizeof(double));
    for (double p = 1; nt < 60; p *= 10) {
        static const int mant[] = {1, 2, 5};
        int stop = 0;
        for (int k = 0; k < 3 && !stop; k++) {
            if (mant[k] * p <= max_model_len)
                m->token_buckets[nt++] = mant[k] * p;
            else
                stop = 1;
        }
        if (stop)
            break;
    }
    hist_init(&m->h[H_TTFT], TTFT_BUCKETS, NB(TTFT_BUCKETS));
    hist_init(&m->h[H_ITL], ITL_BUCKETS, NB(ITL_BUCKETS));
    for (int i = H_E2E; i <= H_DECODE; i++)
        hist_init(&m->h[i], REQUEST_LATENCY_BUCKETS, NB(REQUEST_LATENCY_BUCKETS));
    hist_init(&m->h[H_PROMPT], m->token_buckets, nt);
    hist_init(&m->h[H_GEN], m->token_buckets, nt);
    return m;
}

void glm_metrics_free(glm_metrics *m)
{
    if (!m)
        return;
    for (int i = 0; i < H_COUNT; i++)
        free(m->h[i].counts);
    free(m->token_buckets);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void glm_metrics_observe_finish(glm_metrics *m, const glm_event *ev, glm_finish_reason reason)
{
    if (!m)
        return;
    if ((unsigned)reason > GLM_FINISH_ABORT)
        reason = GLM_FINISH_ABORT;
    pthread_mutex_lock(&m->mu);
    m->success[reason]++;
    if (ev->completion_tokens > 0) /* vLLM observes TTFT when a first token exists */
        hist_observe(&m->h[H_TTFT], ev->ttft);
    hist_observe(&m->h[H_E2E], ev->e2e_time);
    hist_observe(&m->h[H_QUEUE], ev->queue_time);
    hist_observe(&m->h[H_INFERENCE], ev->prefill_time + ev->decode_time);
    hist_observe(&m->h[H_PREFILL], ev->prefill_time);
    hist_observe(&m->h[H_DECODE], ev->decode_time);
    hist_observe(&m->h[H_PROMPT], ev->prompt_tokens);
    hist_observe(&m->h[H_GEN], ev->completion_tokens);
    pthread_mutex_unlock(&m->mu);
}

void glm_metrics_observe_itl(glm_metrics *m, double seconds)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    hist_observe(&m->h[H_ITL], seconds);
    pthread_mutex_unlock(&m->mu);
}

/* ---- text format ------------------------------------------------------------------------ */

char *glm_metrics_escape_label(const char *v)
{
    size_t n = strlen(v);
    char *o = glm_malloc(2 * n + 1), *p = o;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '\\' || v[i] == '"') {
            *p++ = '\\';
            *p++ = v[i];
        } else if (v[i] == '\n') {
            *p++ = '\\';
            *p++ = 'n';
        } else {
            *p++ = v[i];
        }
    }
    *p = 0;
    return o;
}

/* prometheus_client's floatToGoString: Python's repr, with Go's earlier switch
 * to exponents for positive numbers of more than 6 integer digits. */
void glm_metrics_format_number(double v, char *out, size_t outlen)
{
    if (isnan(v)) {
        snprintf(out, outlen, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, outlen, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char s[40];
    if (v == floor(v) && fabs(v) < 1e16) {
        snprintf(s, sizeof s, "%.1f", v); /* repr(2.0) == "2.0" */
    } else {
        for (int p = 1; p <= 17; p++) { /* the shortest string that reads back as v */
            snprintf(s, sizeof s, "%.*g", p, v);
            if (strtod(s, NULL) == v)
                break;
        }
        if (!strchr(s, '.') && !strchr(s, 'e') && !strchr(s, 'n'))
            strcat(s, ".0");
    }
    const char *dot = strchr(s, '.');
    if (v > 0 && dot && !strchr(s, 'e') && dot - s > 6) {
        char mant[40];
        size_t k = 0;
        mant[k++] = s[0];
        mant[k++] = '.';
        for (const char *q = s + 1; *q && k < sizeof mant - 1; q++)
            if (*q != '.')
                mant[k++] = *q;
        mant[k] = 0;
        while (k > 0 && (mant[k - 1] == '0' || mant[k - 1] == '.'))
            mant[--k] = 0;
        snprintf(out, outlen, "%se+0%d", mant, (int)(dot - s) - 1);
        return;
    }
    snprintf(out, outlen, "%s", s);
}

static void header(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP glm:%s %s\n# TYPE glm:%s %s\n", name, help, name, type);
}

static void sample(FILE *f, const char *name, const char *labels, const char *extra, double v)
{
    char num[48];
    glm_metrics_format_number(v, num, sizeof num);
    fprintf(f, "glm:%s{engine=\"0\",%s%smodel_name=\"%s\"} %s\n", name, extra ? extra : "", extra ? "," : "", labels,
            num);
}

static void render_hist(FILE *f, const hist *h, const char *name, const char *help, const char *model)
{
    char n2[96], le[64], num[48];
    header(f, name, "histogram", help);
    uint64_t cum = 0;
    snprintf(n2, sizeof n2, "%s_bucket", name);
    for (int i = 0; i <= h->n; i++) {
        cum += h->counts[i];
        glm_metrics_format_number(i < h->n ? h->bounds[i] : INFINITY, num, sizeof num);
        snprintf(le, sizeof le, "le=\"%s\"", num);
        sample(f, n2, model, le, (double)cum);
    }
    snprintf(n2, sizeof n2, "%s_count", name);
    sample(f, n2, model, NULL, (double)h->count);
    snprintf(n2, sizeof n2, "%s_sum", name);
    sample(f, n2, model, NULL, h->sum);
}

void glm_metrics_render(glm_metrics *m, const glm_engine_metrics *es, const char *model_name, FILE *f)
{
    char *model = glm_metrics_escape_label(model_name);
    header(f, "num_requests_running", "gauge", "Number of requests in model execution batches.");
    sample(f, "num_requests_running", model, NULL, es->num_running);
    header(f, "num_requests_waiting", "gauge", "Number of requests waiting to be processed.");
    sample(f, "num_requests_waiting", model, NULL, es->num_waiting);
    header(f, "num_requests_paused", "gauge",
           "Number of running sequences held back because their client reads too slowly.");
    sample(f, "num_requests_paused", model, NULL, es->num_paused);
    header(f, "kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.");
    sample(f, "kv_cache_usage_perc", model, NULL,
           es->kv_blocks_total ? (double)es->kv_blocks_used / es->kv_blocks_total : 0.0);

    static const struct {
        const char *name, *help;
    } counters[] = {
        {"prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens."},
        {"prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens."},
        {"num_preemptions_total", "Cumulative number of preemption from the engine."},
        {"prompt_tokens_total", "Number of prefill tokens processed."},
        {"generation_tokens_total", "Number of generation tokens processed."},
    };
    const uint64_t values[] = {es->prefix_query_tokens, es->prefix_hit_tokens, es->num_preemptions,
                               es->prompt_tokens, es->generation_tokens};
    for (int i = 0; i < NB(counters); i++) {
        header(f, counters[i].name, "counter", counters[i].help);
        sample(f, counters[i].name, model, NULL, (double)values[i]);
    }

    if (es->num_speculative_tokens > 0) { /* vLLM's spec_decode_* counters, with speculative decoding */
        static const struct {
            const char *name, *help;
        } spec[] = {
            {"spec_decode_num_drafts_total", "Number of spec decoding drafts."},
            {"spec_decode_num_draft_tokens_total", "Number of draft tokens."},
            {"spec_decode_num_accepted_tokens_total", "Number of accepted tokens."},
        };
        const uint64_t sv[] = {es->spec_drafts, es->spec_draft_tokens, es->spec_accepted_tokens};
        for (int i = 0; i < NB(spec); i++) {
            header(f, spec[i].name, "counter", spec[i].help);
            sample(f, spec[i].name, model, NULL, (double)sv[i]);
        }
        header(f, "spec_decode_num_accepted_tokens_per_pos_total", "counter", "Accepted tokens per draft position.");
        for (int i = 0; i < es->num_speculative_tokens && i < GLM_ENGINE_MAX_SPEC_TOKENS; i++) {
            char extra[32];
            snprintf(extra, sizeof extra, "position=\"%d\"", i);
            sample(f, "spec_decode_num_accepted_tokens_per_pos_total", model, extra,
                   (double)es->spec_accepted_per_pos[i]);
        }
    }

    pthread_mutex_lock(&m->mu);
    header(f, "request_success_total", "counter", "Count of successfully processed requests.");
    static const char *reasons[3] = {"stop", "length", "abort"};
    for (int i = 0; i < 3; i++) {
        char extra[48];
        snprintf(extra, sizeof extra, "finished_reason=\"%s\"", reasons[i]);
        sample(f, "request_success_total", model, extra, (double)m->success[i]);
    }
    for (int i = 0; i < H_COUNT; i++)
        render_hist(f, &m->h[i], hist_info[i].name, hist_info[i].help, model);
    pthread_mutex_unlock(&m->mu);
    free(model);
}
