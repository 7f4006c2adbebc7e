/*
 * test_engine_stress.c - hostile use of the engine on the tiny model: many
 * threads submitting, aborting and releasing at random moments (release
 * without reading, abort right after submit, abort after the finish), engine
 * free with live requests and unread events, a cache so small that n > 1
 * requests are preempted all the time (tokens must still equal a run with a
 * roomy cache), and the queue limit under concurrent submitters. Every run
 * must end with no sequence left and every KV block back.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched/engine.h"
#include "cpu/kvcache.h"
#include "testutil.h"
#include "core/util.h"

static glm_model *model;

static void setup(void)
{
    char err[GLM_ERRLEN];
    char path[512];
    snprintf(path, sizeof path, "%s/tiny", test_models_dir());
    model = glm_model_load(path, err, sizeof err);
    ck_assert_msg(model != NULL, "%s", err);
}

static void teardown(void)
{
    glm_model_free(model);
}

static glm_engine *make_engine(size_t kv_tokens, int block_size, int max_seqs, int max_batched, int max_queue,
                               int prefix)
{
    char err[GLM_ERRLEN];
    glm_engine_params p;
    glm_engine_params_default(&p);
    p.kv_cache_bytes = glm_kv_bytes_per_token(&model->cfg) * kv_tokens;
    p.block_size = block_size;
    p.max_num_seqs = max_seqs;
    p.max_num_batched_tokens = max_batched;
    p.max_queue = max_queue;
    p.enable_prefix_caching = prefix;
    p.n_threads = 1;
    glm_engine *e = glm_engine_create(model, &p, err, sizeof err);
    ck_assert_msg(e != NULL, "%s", err);
    return e;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static uint64_t finished_total(const glm_engine_metrics *m)
{
    return m->finished[0] + m->finished[1] + m->finished[2];
}

/* Waits until `samples` samples have finished and the engine holds no
 * sequence and no block; fails only after 60 s (a hang guard). */
static void wait_drained(glm_engine *e, uint64_t samples)
{
    glm_engine_metrics m;
    for (int i = 0; i < 12000; i++) {
        glm_engine_metrics_get(e, &m);
        if (finished_total(&m) == samples && m.num_running == 0 && m.num_waiting == 0 && m.kv_blocks_used == 0)
            return;
        sleep_us(5000);
    }
    ck_abort_msg("engine did not drain: %llu/%llu samples finished, %d running, %d waiting, %d blocks used",
                 (unsigned long long)finished_total(&m), (unsigned long long)samples, m.num_running,
                 m.num_waiting, m.kv_blocks_used);
}

/* What a reader saw of one request. */
typedef struct {
    int n_tok[GLM_SAMPLING_MAX_N];
    int fin[GLM_SAMPLING_MAX_N];
    glm_finish_reason why[GLM_SAMPLING_MAX_N];
    int32_t toks[4][64];
    int errors;
} seen;

/* Reads events until the end, checking the channel's invariants. */
static void drain_check(glm_request *r, int n, int n_prompt, int max_tokens, seen *s)
{
    glm_event ev;
    int rc;
    while ((rc = glm_request_next(r, &ev, 60000)) == 1) {
        ck_assert_int_ne(ev.type, GLM_EV_ERROR);
        ck_assert_msg(ev.index >= 0 && ev.index < n, "event for sample %d of %d", ev.index, n);
        int i = ev.index;
        ck_assert_msg(!s->fin[i], "event after the finish of sample %d", i);
        if (ev.type == GLM_EV_TOKEN) {
            ck_assert(ev.token >= 0 && ev.token < model->cfg.vocab_size);
            if (i < 4 && s->n_tok[i] < 64)
                s->toks[i][s->n_tok[i]] = ev.token;
            s->n_tok[i]++;
        } else {
            s->fin[i] = 1;
            s->why[i] = ev.finish;
            ck_assert_int_eq(ev.completion_tokens, s->n_tok[i]);
            ck_assert_int_eq(ev.prompt_tokens, n_prompt);
            ck_assert(ev.cached_tokens >= 0 && ev.cached_tokens < n_prompt);
            ck_assert(ev.e2e_time >= 0 && ev.queue_time >= 0);
            if (ev.finish == GLM_FINISH_LENGTH)
                ck_assert_int_eq(s->n_tok[i], max_tokens);
            else if (ev.finish == GLM_FINISH_STOP)
                ck_assert(s->n_tok[i] >= 1 && s->n_tok[i] <= max_tokens && ev.stop_token >= 0);
            else
                ck_assert(s->n_tok[i] <= max_tokens);
        }
    }
    ck_assert_int_eq(rc, -1);
    for (int i = 0; i < n; i++)
        ck_assert_msg(s->fin[i], "sample %d of %d never finished", i, n);
    /* over: polling and waiting both say so */
    ck_assert_int_eq(glm_request_next(r, &ev, 0), -1);
    ck_assert_int_eq(glm_request_next(r, &ev, 10), -1);
}

/* ---- many threads, random moments --------------------------------------------------- */

typedef struct {
    glm_engine *e;
    unsigned seed;
    int iters;
    int accepted, refused;
    uint64_t samples;
    atomic_int notified;
} worker;

/* A per-request notify context, freed as soon as glm_request_release returns
 * (engine.h: no call of the callback is still running then). */
typedef struct {
    atomic_int *total;
    int calls;
} notify_ctx;

static void on_notify(void *ctx)
{
    notify_ctx *c = ctx;
    c->calls++;
    atomic_fetch_add(c->total, 1);
}

static void *hostile_worker(void *arg)
{
    worker *w = arg;
    unsigned rs = w->seed;
    for (int it = 0; it < w->iters; it++) {
        int32_t p[40];
        int n_prompt = 1 + rand_r(&rs) % 40;
        /* shared prefixes now and then, to exercise the prefix cache */
        int family = rand_r(&rs) % 3;
        for (int k = 0; k < n_prompt; k++)
            p[k] = family ? (family * 311 + k * 97) % 4000 : rand_r(&rs) % 4000;
        glm_sampling_params sp;
        glm_sampling_params_init(&sp);
        sp.n = 1 + rand_r(&rs) % 3;
        sp.temperature = rand_r(&rs) % 2 ? 0.0f : 0.9f;
        sp.has_seed = rand_r(&rs) % 2;
        sp.seed = rand_r(&rs);
        sp.has_max_tokens = 1;
        sp.max_tokens = 1 + rand_r(&rs) % 10;
        sp.min_tokens = rand_r(&rs) % 3 == 0 ? rand_r(&rs) % (sp.max_tokens + 1) : 0;
        sp.ignore_eos = rand_r(&rs) % 2;
        sp.logprobs = rand_r(&rs) % 2;
        sp.top_logprobs = sp.logprobs ? rand_r(&rs) % 6 : 0;
        int32_t stops[2] = {(int32_t)(rand_r(&rs) % 4096), (int32_t)(rand_r(&rs) % 4096)};
        if (rand_r(&rs) % 2) {
            sp.stop_token_ids = stops;
            sp.n_stop_token_ids = 2;
        }
        glm_submit_status st;
        char err[GLM_ERRLEN];
        glm_request *r = glm_engine_submit(w->e, p, n_prompt, &sp, &st, err, sizeof err);
        if (!r) {
            ck_assert_msg(st == GLM_SUBMIT_OVERLOADED, "status %d: %s", (int)st, err);
            w->refused++;
            continue;
        }
        w->accepted++;
        w->samples += (uint64_t)sp.n;
        notify_ctx *nc = NULL;
        if (rand_r(&rs) % 2) {
            nc = calloc(1, sizeof *nc);
            nc->total = &w->notified;
            glm_request_set_notify(r, on_notify, nc);
        }
        seen s;
        memset(&s, 0, sizeof s);
        glm_event ev;
        switch (rand_r(&rs) % 7) {
        case 0: /* release at once, nothing read */
            glm_request_release(r);
            break;
        case 1: /* abort right after submit, then read everything */
            glm_request_abort(r);
            drain_check(r, sp.n, n_prompt, sp.max_tokens, &s);
            glm_request_release(r);
            break;
        case 2: /* read a few events, then walk away */
            for (int k = rand_r(&rs) % 4; k > 0; k--)
                if (glm_request_next(r, &ev, rand_r(&rs) % 20) < 0)
                    break;
            glm_request_release(r);
            break;
        case 3: /* read everything, abort after the finish (twice), release */
            drain_check(r, sp.n, n_prompt, sp.max_tokens, &s);
            for (int i = 0; i < sp.n; i++)
                ck_assert_int_ne(s.why[i], GLM_FINISH_ABORT);
            glm_request_abort(r);
            glm_request_abort(r);
            ck_assert_int_eq(glm_request_next(r, &ev, 0), -1);
            glm_request_release(r);
            break;
        case 4: /* wait a random moment, abort, read the rest */
            sleep_us(rand_r(&rs) % 3000);
            glm_request_abort(r);
            drain_check(r, sp.n, n_prompt, sp.max_tokens, &s);
            glm_request_release(r);
            break;
        case 5: /* release after a random moment, nothing read */
            sleep_us(rand_r(&rs) % 3000);
            glm_request_release(r);
            break;
        default: /* plain reader */
            drain_check(r, sp.n, n_prompt, sp.max_tokens, &s);
            for (int i = 0; i < sp.n; i++)
                ck_assert_int_ne(s.why[i], GLM_FINISH_ABORT);
            glm_request_release(r);
            break;
        }
        if (nc) {
            /* poison it: a late call would be caught by ASan/valgrind */
            memset(nc, 0xab, sizeof *nc);
            free(nc);
        }
    }
    return NULL;
}

static void run_hostile(size_t kv_tokens, int bs, int max_seqs, int max_batched, int max_queue, int prefix,
                        int n_workers, int iters, unsigned seed)
{
    glm_engine *e = make_engine(kv_tokens, bs, max_seqs, max_batched, max_queue, prefix);
    worker w[8];
    pthread_t th[8];
    ck_assert(n_workers <= 8);
    for (int i = 0; i < n_workers; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].e = e;
        w[i].seed = seed * 7919u + (unsigned)i;
        w[i].iters = iters;
        atomic_init(&w[i].notified, 0);
        ck_assert_int_eq(pthread_create(&th[i], NULL, hostile_worker, &w[i]), 0);
    }
    uint64_t samples = 0;
    int accepted = 0;
    for (int i = 0; i < n_workers; i++) {
        pthread_join(th[i], NULL);
        samples += w[i].samples;
        accepted += w[i].accepted;
    }
    ck_assert_int_gt(accepted, 0);
    wait_drained(e, samples);
    glm_engine_metrics m;
    glm_engine_metrics_get(e, &m);
    ck_assert_int_eq(m.kv_blocks_used, 0);
    if (getenv("GLM_STRESS_VERBOSE")) {
        int refused = 0;
        for (int i = 0; i < n_workers; i++)
            refused += w[i].refused;
        fprintf(stderr, "hostile: %d accepted, %d refused, %llu samples, %llu preemptions, finished %llu/%llu/%llu, %llu/%llu prefix tokens hit\n",
                accepted, refused, (unsigned long long)samples, (unsigned long long)m.num_preemptions,
                (unsigned long long)m.finished[0], (unsigned long long)m.finished[1],
                (unsigned long long)m.finished[2], (unsigned long long)m.prefix_hit_tokens,
                (unsigned long long)m.prefix_query_tokens);
    }
    glm_engine_free(e);
}

START_TEST(hostile_threads_roomy_cache)
{
    run_hostile(2048, 4, 16, 64, 1024, 1, 4, 80, 1);
}
END_TEST

START_TEST(hostile_threads_tiny_cache)
{
    /* 64 tokens: a lone sequence (<= 40 + 10 tokens) always fits, few fit together */
    run_hostile(64, 4, 8, 16, 1024, 1, 4, 60, 2);
    run_hostile(64, 4, 8, 16, 1024, 0, 3, 20, 3);
    /* block size 1 and a one-token step budget */
    run_hostile(64, 1, 4, 1, 1024, 1, 3, 10, 4);
}
END_TEST

START_TEST(hostile_threads_small_queue)
{
    run_hostile(256, 4, 2, 32, 2, 1, 6, 40, 5);
}
END_TEST

/* ---- engine free with live requests ------------------------------------------------- */

START_TEST(free_with_live_requests)
{
    for (int round = 0; round < 6; round++) {
        glm_engine *e = make_engine(round % 2 ? 48 : 1024, 4, 4, 8, 1024, 1);
        glm_request *r[10];
        int n_r = 0;
        for (int i = 0; i < 10; i++) {
            int32_t p[20];
            for (int k = 0; k < 20; k++)
                p[k] = (i * 131 + k * 7 + round) % 4000;
            glm_sampling_params sp;
            glm_sampling_params_init(&sp);
            sp.n = 1 + i % 3;
            sp.temperature = 0.7f;
            sp.has_seed = 1;
            sp.seed = (uint64_t)i;
            sp.ignore_eos = 1;
            sp.has_max_tokens = 1;
            sp.max_tokens = 25;
            glm_submit_status st;
            char err[GLM_ERRLEN];
            r[n_r] = glm_engine_submit(e, p, 20, &sp, &st, err, sizeof err);
            ck_assert_msg(r[n_r] != NULL, "%s", err);
            n_r++;
        }
        /* some running with unread events, some read a little, some waiting,
         * the last ones most likely not even taken by the engine thread yet */
        if (round >= 2) {
            glm_event ev;
            ck_assert_int_eq(glm_request_next(r[0], &ev, 60000), 1);
            sleep_us(1000 * round);
        }
        if (round >= 4)
            glm_request_abort(r[3]);
        /* the handles go (nothing read), then the engine while it still owns them */
        for (int i = 0; i < n_r; i++)
            glm_request_release(r[i]);
        glm_engine_free(e);
    }
}
END_TEST

/* ---- constant preemption with n > 1 gives the tokens of a roomy cache ------------------ */

#define NP_REQ 6
#define NP_N 3
#define NP_MAX 14

static void np_params(int i, glm_sampling_params *sp)
{
    glm_sampling_params_init(sp);
    sp->n = NP_N;
    sp->temperature = i % 2 ? 0.0f : 0.9f;
    sp->has_seed = 1;
    sp->seed = 1000u + (uint64_t)i;
    sp->ignore_eos = 1;
    sp->has_max_tokens = 1;
    sp->max_tokens = NP_MAX;
}

static void np_prompt(int i, int32_t *p, int *n)
{
    *n = 6 + (i * 5) % 13; /* 6 .. 18 */
    for (int k = 0; k < *n; k++)
        p[k] = (k < 8 ? k * 17 + 3 : i * 977 + k * 131) % 4000; /* a common 8-token head */
}

static void np_run(size_t kv_tokens, int prefix, int max_batched, int32_t out[NP_REQ][4][64], uint64_t *preempt)
{
    glm_engine *e = make_engine(kv_tokens, 4, 16, max_batched, 1024, prefix);
    glm_request *r[NP_REQ];
    int np[NP_REQ];
    for (int i = 0; i < NP_REQ; i++) {
        int32_t p[32];
        np_prompt(i, p, &np[i]);
        glm_sampling_params sp;
        np_params(i, &sp);
        glm_submit_status st;
        char err[GLM_ERRLEN];
        r[i] = glm_engine_submit(e, p, np[i], &sp, &st, err, sizeof err);
        ck_assert_msg(r[i] != NULL, "%s", err);
    }
    for (int i = 0; i < NP_REQ; i++) {
        seen s;
        memset(&s, 0, sizeof s);
        drain_check(r[i], NP_N, np[i], NP_MAX, &s);
        for (int k = 0; k < NP_N; k++) {
            ck_assert_int_eq(s.why[k], GLM_FINISH_LENGTH);
            ck_assert_int_eq(s.n_tok[k], NP_MAX);
            memcpy(out[i][k], s.toks[k], sizeof(int32_t) * NP_MAX);
        }
        glm_request_release(r[i]);
    }
    wait_drained(e, NP_REQ * NP_N);
    glm_engine_metrics m;
    glm_engine_metrics_get(e, &m);
    *preempt = m.num_preemptions;
    glm_engine_free(e);
}

START_TEST(n_samples_under_constant_preemption)
{
    static int32_t ref[NP_REQ][4][64], got[NP_REQ][4][64];
    uint64_t pre = 0;
    np_run(4096, 1, 64, ref, &pre);
    ck_assert_uint_eq(pre, 0);
    /* 36 tokens: one sample (<= 18 + 14 = 32 tokens) at a time fits, barely */
    const struct { size_t kv; int prefix, batched; } cfg[] = {{36, 1, 16}, {36, 0, 16}, {40, 1, 3}, {48, 1, 64}};
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        memset(got, 0, sizeof got);
        np_run(cfg[c].kv, cfg[c].prefix, cfg[c].batched, got, &pre);
        ck_assert_msg(pre > 0, "config %zu: expected preemptions", c);
        for (int i = 0; i < NP_REQ; i++)
            for (int k = 0; k < NP_N; k++)
                ck_assert_msg(memcmp(ref[i][k], got[i][k], sizeof(int32_t) * NP_MAX) == 0,
                              "config %zu, request %d sample %d: tokens differ from the roomy run", c, i, k);
    }
}
END_TEST

/* ---- samples that outgrow the whole cache end with "length", n > 1 included --------- */

START_TEST(outgrow_the_cache_with_n)
{
    for (int prefix = 0; prefix <= 1; prefix++) {
        glm_engine *e = make_engine(32, 4, 8, 16, 1024, prefix); /* 8 blocks of 4 */
        glm_request *r[3];
        for (int i = 0; i < 3; i++) {
            int32_t p[10];
            for (int k = 0; k < 10; k++)
                p[k] = (i * 31 + k * 3) % 4000;
            glm_sampling_params sp;
            glm_sampling_params_init(&sp);
            sp.n = 1 + i;
            sp.temperature = 0.5f;
            sp.has_seed = 1;
            sp.ignore_eos = 1; /* no max_tokens: up to max_model_len, far beyond the cache */
            glm_submit_status st;
            char err[GLM_ERRLEN];
            r[i] = glm_engine_submit(e, p, 10, &sp, &st, err, sizeof err);
            ck_assert_msg(r[i] != NULL, "%s", err);
        }
        int samples = 0;
        for (int i = 0; i < 3; i++) {
            int fin[3] = {0}, ntok[3] = {0}, rc;
            glm_event ev;
            while ((rc = glm_request_next(r[i], &ev, 60000)) == 1) {
                ck_assert_int_ne(ev.type, GLM_EV_ERROR);
                if (ev.type == GLM_EV_TOKEN) {
                    ck_assert(!fin[ev.index]);
                    ntok[ev.index]++;
                } else {
                    fin[ev.index] = 1;
                    ck_assert_int_eq(ev.finish, GLM_FINISH_LENGTH);
                    ck_assert_int_eq(ev.completion_tokens, ntok[ev.index]);
                    /* it had the whole cache to itself: 32 tokens, the last one without KV */
                    ck_assert_int_eq(10 + ev.completion_tokens, 33);
                }
            }
            ck_assert_int_eq(rc, -1);
            for (int k = 0; k <= i; k++)
                ck_assert(fin[k]);
            samples += i + 1;
            glm_request_release(r[i]);
        }
        wait_drained(e, (uint64_t)samples);
        glm_engine_free(e);
    }
}
END_TEST

/* ---- queue limit under concurrent submitters ----------------------------------------- */

typedef struct {
    glm_engine *e;
    int id;
    int accepted, refused;
} qworker;

static void *queue_worker(void *arg)
{
    qworker *w = arg;
    glm_request *r[8];
    for (int round = 0; round < 3; round++) {
        int n = 0;
        for (int i = 0; i < 8; i++) {
            int32_t p[6] = {w->id, round, i, 7, 8, 9};
            glm_sampling_params sp;
            glm_sampling_params_init(&sp);
            sp.temperature = 0;
            sp.ignore_eos = 1;
            sp.has_max_tokens = 1;
            sp.max_tokens = 6;
            glm_submit_status st;
            char err[GLM_ERRLEN];
            glm_request *q = glm_engine_submit(w->e, p, 6, &sp, &st, err, sizeof err);
            if (q) {
                r[n++] = q;
                w->accepted++;
            } else {
                ck_assert_int_eq(st, GLM_SUBMIT_OVERLOADED);
                ck_assert(strstr(err, "overloaded") != NULL);
                w->refused++;
            }
        }
        for (int i = 0; i < n; i++) {
            seen s;
            memset(&s, 0, sizeof s);
            drain_check(r[i], 1, 6, 6, &s);
            ck_assert_int_eq(s.why[0], GLM_FINISH_LENGTH);
            glm_request_release(r[i]);
        }
    }
    return NULL;
}

START_TEST(queue_limit_concurrent_submitters)
{
    glm_engine *e = make_engine(512, 4, 1, 64, 3, 1);
    qworker w[6];
    pthread_t th[6];
    for (int i = 0; i < 6; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].e = e;
        w[i].id = i + 1;
        ck_assert_int_eq(pthread_create(&th[i], NULL, queue_worker, &w[i]), 0);
    }
    int accepted = 0, refused = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        accepted += w[i].accepted;
        refused += w[i].refused;
    }
    ck_assert_int_eq(accepted + refused, 6 * 3 * 8);
    ck_assert_int_gt(refused, 0);
    ck_assert_int_gt(accepted, 0);
    wait_drained(e, (uint64_t)accepted);
    glm_engine_metrics m;
    glm_engine_metrics_get(e, &m);
    ck_assert_uint_eq(m.finished[GLM_FINISH_LENGTH], (uint64_t)accepted);
    /* the queue is free again: a new request is taken */
    glm_sampling_params sp;
    glm_sampling_params_init(&sp);
    sp.has_max_tokens = 1;
    sp.max_tokens = 2;
    int32_t p[3] = {1, 2, 3};
    glm_submit_status st;
    char err[GLM_ERRLEN];
    for (int i = 0; i < 3; i++) {
        glm_request *r = glm_engine_submit(e, p, 3, &sp, &st, err, sizeof err);
        ck_assert_msg(r != NULL, "%s", err);
        glm_request_release(r);
    }
    glm_engine_free(e);
}
END_TEST

/* ---- scheduler + block manager fuzz: every block a sequence reads holds exactly the
 *      KV of that sequence's own prefix; nothing writes into a shared block ---------- */

#include "sched/scheduler.h"

/* Check in fork mode reports every passing ck_assert to its parent (a write per
 * check): the fuzz loops test with plain ifs and only call Check on failure. */
#define FZ(c) do { if (!(c)) ck_abort_msg("line %d: %s", __LINE__, #c); } while (0)
#define FZ_MSG(c, ...) do { if (!(c)) ck_abort_msg(__VA_ARGS__); } while (0)

typedef struct {
    int fplen;    /* the block holds the KV of a prefix of this many tokens (absolute) */
    uint64_t fp;  /* fingerprint of that prefix */
} fz_block;

static uint64_t fz_fp(const int32_t *t, int n)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)n;
    for (int i = 0; i < n; i++)
        h = (h ^ (uint32_t)t[i]) * 1099511628211ull;
    return h;
}

typedef struct {
    glm_sequence *seq;
    int max_total;
} fz_seq;

static void fz_drop(glm_scheduler *sch, fz_seq *live, int *n_live, int i)
{
    glm_sched_remove(sch, live[i].seq);
    glm_seq_free(live[i].seq);
    live[i] = live[--*n_live];
}

static void fz_run(int nb, int bs, int max_seqs, int budget, int prefix, unsigned seed, int steps)
{
    glm_block_manager *bm = glm_bm_create(nb, bs, prefix);
    glm_sched_params p = {max_seqs, budget, 0};
    glm_scheduler *sch = glm_sched_create(&p, bm);
    fz_block *blk = calloc((size_t)nb, sizeof *blk);
    int *refs = calloc((size_t)nb, sizeof *refs);
    fz_seq live[48];
    int n_live = 0;
    uint64_t next_id = 1;
    unsigned rs = seed;
    for (int stepno = 0; stepno < steps; stepno++) {
        if (n_live < 40 && rand_r(&rs) % 3 == 0) {
            int32_t pr[16];
            int fam = rand_r(&rs) % 4, len = 1 + rand_r(&rs) % 12;
            for (int k = 0; k < len; k++)
                pr[k] = fam == 0 ? rand_r(&rs) % 3 : (fam * 5 + k) % 7;
            /* some outgrow the whole cache */
            int max_total = len + 1 + rand_r(&rs) % (nb * bs);
            glm_sequence *q = glm_seq_create(next_id++, pr, len, max_total - len);
            glm_sched_add(sch, q, rand_r(&rs) % 4 == 0);
            live[n_live].seq = q;
            live[n_live].max_total = max_total;
            n_live++;
        }
        if (n_live > 0 && rand_r(&rs) % 12 == 0)
            fz_drop(sch, live, &n_live, rand_r(&rs) % n_live);

        glm_sched_batch b;
        glm_sched_step(sch, &b);
        for (int f = 0; f < b.n_full; f++) {
            FZ(b.full[f]->out_of_cache);
            FZ_MSG(b.full[f]->n_tokens > nb * bs - bs, "flagged full at %d tokens, cache %d",
                          b.full[f]->n_tokens, nb * bs);
            for (int i = 0; i < n_live; i++)
                if (live[i].seq == b.full[f]) {
                    fz_drop(sch, live, &n_live, i);
                    break;
                }
        }
        FZ_MSG(b.n > 0 || b.n_full > 0 || glm_sched_num_waiting(sch) == 0 || glm_sched_num_running(sch) > 0,
                      "step %d: %d waiting, nothing running, nothing scheduled: the engine would spin", stepno,
                      glm_sched_num_waiting(sch));

        /* reference counts from the tables */
        memset(refs, 0, sizeof(int) * (size_t)nb);
        int used = 0, running = 0;
        for (int i = 0; i < n_live; i++) {
            glm_sequence *q = live[i].seq;
            if (q->status == GLM_SEQ_WAITING)
                FZ((q->table.n) == (0));
            running += q->status == GLM_SEQ_RUNNING;
            FZ(q->n_computed <= q->n_tokens);
            FZ(q->table.n * bs >= q->n_computed);
            for (int j = 0; j < q->table.n; j++) {
                int id = q->table.ids[j];
                FZ(id >= 0 && id < nb);
                for (int k = 0; k < j; k++)
                    FZ((q->table.ids[k]) != (id));
                used += refs[id]++ == 0;
            }
        }
        FZ((used) == (glm_bm_num_used(bm)));
        FZ((running) == (glm_sched_num_running(sch)));
        FZ((b.n_tokens) <= (budget));
        FZ((glm_sched_num_running(sch)) <= (max_seqs));

        for (int i = 0; i < b.n; i++) {
            glm_sequence *q = b.seqs[i];
            FZ(q->status == GLM_SEQ_RUNNING);
            FZ(b.n_new[i] >= 1 && q->n_computed + b.n_new[i] <= q->n_tokens);
            FZ(q->table.n * bs >= q->n_computed + b.n_new[i]);
            /* reads: every block below n_computed holds this sequence's prefix */
            for (int j = 0; j * bs < q->n_computed; j++) {
                int id = q->table.ids[j], end = GLM_MIN((j + 1) * bs, q->n_computed);
                FZ_MSG(blk[id].fplen >= end && blk[id].fp == fz_fp(q->tokens, blk[id].fplen) &&
                                  (blk[id].fplen == end || end == (j + 1) * bs),
                              "step %d: seq %llu reads block %d (position %d..%d) holding other KV", stepno,
                              (unsigned long long)q->id, id, j * bs, end);
            }
            /* writes: positions n_computed .. +n_new, only into unshared blocks */
            int a = q->n_computed, e2 = a + b.n_new[i];
            for (int j = a / bs; j * bs < e2; j++) {
                int id = q->table.ids[j], js = j * bs, je = js + bs;
                FZ_MSG(refs[id] == 1, "step %d: seq %llu writes block %d shared by %d tables", stepno,
                              (unsigned long long)q->id, id, refs[id]);
                int from = GLM_MAX(a, js);
                if (from > js)
                    FZ(blk[id].fplen == from && blk[id].fp == fz_fp(q->tokens, from));
                blk[id].fplen = GLM_MIN(e2, je);
                blk[id].fp = fz_fp(q->tokens, blk[id].fplen);
            }
        }
        glm_sched_commit(sch, &b);
        /* the fake model */
        for (int i = 0; i < n_live; i++) {
            glm_sequence *q = live[i].seq;
            if (q->status != GLM_SEQ_RUNNING || q->n_computed != q->n_tokens)
                continue;
            if (q->n_tokens >= live[i].max_total) {
                fz_drop(sch, live, &n_live, i);
                i--;
            } else {
                glm_seq_append(q, (q->tokens[q->n_tokens - 1] * 3 + 1) % 5);
            }
        }
    }
    while (n_live > 0)
        fz_drop(sch, live, &n_live, n_live - 1);
    FZ((glm_bm_num_used(bm)) == (0));
    FZ((glm_sched_num_running(sch) + glm_sched_num_waiting(sch)) == (0));
    free(blk);
    free(refs);
    glm_sched_free(sch);
    glm_bm_free(bm);
}

START_TEST(scheduler_fuzz_kv_identity)
{
    for (unsigned seed = 1; seed <= 6; seed++) {
        fz_run(12, 2, 4, 5, 1, seed, 3000);
        fz_run(7, 3, 8, 2, 1, seed + 100, 3000);
        fz_run(20, 1, 6, 7, 1, seed + 200, 3000);
        fz_run(10, 4, 16, 64, 1, seed + 300, 3000);
        fz_run(12, 2, 4, 5, 0, seed + 400, 2000);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine_stress");
    TCase *tc = tcase_create("tiny");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, hostile_threads_roomy_cache);
    tcase_add_test(tc, hostile_threads_tiny_cache);
    tcase_add_test(tc, hostile_threads_small_queue);
    tcase_add_test(tc, free_with_live_requests);
    tcase_add_test(tc, n_samples_under_constant_preemption);
    tcase_add_test(tc, outgrow_the_cache_with_n);
    tcase_add_test(tc, queue_limit_concurrent_submitters);
    tcase_add_test(tc, scheduler_fuzz_kv_identity);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
