/*
 * test_engine.c - the engine thread on the tiny model: concurrency gives each
 * request exactly the tokens it gets alone (batch invariance + correct
 * scheduling), a cache too small for everyone still finishes everyone through
 * preemption, prefix reuse, aborts, queue overflow, n > 1 and seeds, and
 * backpressure: a reader that stops reading holds its request back (bounded
 * events, no steps, its cache given up when others need it) without changing
 * its tokens, and one that stays behind is aborted.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/engine.h"
#include "sched/event_queue.h"
#include "sched/model_runner.h"
#include "cpu/kvcache.h"
#include "core/util.h"
#include "testutil.h"

#define N_REQ 16

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

static void make_prompt(int i, int32_t *p, int *n)
{
    *n = 3 + (i * 13) % 50; /* 3 .. 52 tokens: some above index_topk (16) */
    for (int k = 0; k < *n; k++)
        p[k] = (i * 977 + k * 131 + 7) % 4000;
}

static void greedy(glm_sampling_params *sp, int max_tokens)
{
    glm_sampling_params_init(sp);
    sp->temperature = 0;
    sp->has_max_tokens = 1;
    sp->max_tokens = max_tokens;
    sp->ignore_eos = 1;
}

/* Collects every event of r: tokens of sample 0 into out; returns the count. */
static int collect(glm_request *r, int32_t *out, int cap, glm_finish_reason *why, int *cached)
{
    glm_event ev;
    int n = 0, rc;
    while ((rc = glm_request_next(r, &ev, 60000)) == 1) {
        ck_assert_msg(ev.type != GLM_EV_ERROR, "%s", ev.message);
        if (ev.type == GLM_EV_TOKEN && ev.index == 0 && n < cap)
            out[n++] = ev.token;
        if (ev.type == GLM_EV_FINISH && ev.index == 0) {
            if (why)
                *why = ev.finish;
            if (cached)
                *cached = ev.cached_tokens;
        }
    }
    ck_assert_int_eq(rc, -1);
    return n;
}

/* max_unread events per sample before backpressure; a request held back
 * reader_timeout seconds is aborted (<= 0: never). */
static glm_engine *make_engine_bp(size_t kv_tokens, int max_seqs, int max_batched, int max_unread,
                                  double reader_timeout)
{
    char err[GLM_ERRLEN];
    glm_engine_params p;
    glm_engine_params_default(&p);
    p.kv_cache_bytes = glm_kv_bytes_per_token(&model->cfg) * kv_tokens;
    p.block_size = 4;
    p.max_num_seqs = max_seqs;
    p.max_num_batched_tokens = max_batched;
    p.n_threads = 2;
    p.max_unread_events = max_unread;
    p.reader_timeout = reader_timeout;
    glm_engine *e = glm_engine_create(model, &p, err, sizeof err);
    ck_assert_msg(e != NULL, "%s", err);
    return e;
}

static glm_engine *make_engine(size_t kv_tokens, int max_seqs, int max_batched)
{
    glm_engine_params p;
    glm_engine_params_default(&p);
    return make_engine_bp(kv_tokens, max_seqs, max_batched, p.max_unread_events, p.reader_timeout);
}

/* Polls until the engine holds nothing; fails only after 60 s (a hang guard,
 * not a speed requirement). */
static void wait_idle(glm_engine *e)
{
    glm_engine_metrics m;
    for (int i = 0; i < 12000; i++) {
        glm_engine_metrics_get(e, &m);
        if (m.num_running == 0 && m.num_waiting == 0 && m.kv_blocks_used == 0)
            return;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    ck_abort_msg("engine did not go idle: %d running, %d waiting, %d blocks used", m.num_running,
                 m.num_waiting, m.kv_blocks_used);
}

static int32_t alone[N_REQ][32];
static int alone_n[N_REQ];

static void run_alone(void)
{
    glm_engine *e = make_engine(4096, 1, 512);
    for (int i = 0; i < N_REQ; i++) {
        int32_t p[64];
        int n;
        make_prompt(i, p, &n);
        glm_sampling_params sp;
        greedy(&sp, 8 + i % 9);
        glm_submit_status st;
        char err[GLM_ERRLEN];
        glm_request *r = glm_engine_submit(e, p, n, &sp, &st, err, sizeof err);
        ck_assert_msg(r != NULL, "%s", err);
        alone_n[i] = collect(r, alone[i], 32, NULL, NULL);
        ck_assert_int_eq(alone_n[i], 8 + i % 9);
        glm_request_release(r);
    }
    wait_idle(e);
    glm_engine_free(e);
}

static void run_concurrent(size_t kv_tokens, int expect_preemption)
{
    glm_engine *e = make_engine(kv_tokens, 16, 64);
    glm_request *r[N_REQ];
    for (int i = 0; i < N_REQ; i++) {
        int32_t p[64];
        int n;
        make_prompt(i, p, &n);
        glm_sampling_params sp;
        greedy(&sp, 8 + i % 9);
        glm_submit_status st;
        char err[GLM_ERRLEN];
        r[i] = glm_engine_submit(e, p, n, &sp, &st, err, sizeof err);
        ck_assert_msg(r[i] != NULL, "%s", err);
    }
    for (int i = 0; i < N_REQ; i++) {
        int32_t out[32];
        int n = collect(r[i], out, 32, NULL, NULL);
        ck_assert_int_eq(n, alone_n[i]);
        ck_assert_msg(memcmp(out, alone[i], sizeof(int32_t) * (size_t)n) == 0,
                      "request %d: tokens differ from its lone run", i);
        glm_request_release(r[i]);
    }
    wait_idle(e);
    glm_engine_metrics m;
    glm_engine_metrics_get(e, &m);
    if (expect_preemption)
        ck_assert_msg(m.num_preemptions > 0, "expected preemptions with a %zu-token cache", kv_tokens);
    ck_assert_uint_eq(m.finished[GLM_FINISH_LENGTH], N_REQ);
    glm_engine_free(e);
}

START_TEST(concurrent_equals_alone)
{
    run_alone();
    run_concurrent(8192, 0);
    /* ~3 requests' worth of cache: everyone still finishes, by preemption */
    run_concurrent(200, 1);
}
END_TEST

START_TEST(prefix_reuse)
{
    glm_engine *e = make_engine(4096, 4, 512);
    int32_t p[45];
    for (int k = 0; k < 45; k++)
        p[k] = (k * 37 + 11) % 4000;
    int32_t a[16], b[16];
    int ca = -1, cb = -1;
    glm_sampling_params sp;
    greedy(&sp, 10);
    glm_submit_status st;
    char err[GLM_ERRLEN];
    glm_request *r = glm_engine_submit(e, p, 45, &sp, &st, err, sizeof err);
    int na = collect(r, a, 16, NULL, &ca);
    glm_request_release(r);
    r = glm_engine_submit(e, p, 45, &sp, &st, err, sizeof err);
    int nb = collect(r, b, 16, NULL, &cb);
    glm_request_release(r);
    ck_assert_int_eq(ca, 0);
    ck_assert_int_eq(cb, 44); /* 11 full blocks of 4; never the last prompt token */
    ck_assert_int_eq(na, nb);
    ck_assert(memcmp(a, b, sizeof(int32_t) * (size_t)na) == 0);
    wait_idle(e);
    glm_engine_metrics m;
    glm_engine_metrics_get(e, &m);
    ck_assert_uint_eq(m.prefix_hit_tokens, 44);
    glm_engine_free(e);
}
END_TEST

/* Every position's raw log-probabilities of a prompt, computed by the model
 * runner alone in one step (the reference prompt logprobs must equal). */
static void reference_logprobs(const int32_t *p, int np, double *lp, int32_t *top1)
{
    char err[GLM_ERRLEN];
    glm_runner_params rp;
    glm_runner_params_default(&rp);
    rp.block_size = 4;
    rp.max_num_batched_tokens = np;
    rp.max_num_seqs = 1;
    rp.max_logits_rows = np;
    rp.kv_cache_tokens = np + 4;
    rp.n_threads = 2;
    glm_runner *r = glm_runner_create(model, &rp, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    const glm_batch_limits *l = &glm_runner_info(r)->limits;
    glm_block_manager *bm = glm_bm_create(l->num_blocks, l->block_size, 0);
    glm_sequence *seq = glm_seq_create(0, p, np, 0);
    ck_assert_msg(glm_runner_step_seqs(r, bm, &seq, &np, 1, 1, err, sizeof err) == GLM_OK, "%s", err);
    int V = model->cfg.vocab_size;
    float *x = malloc(sizeof(float) * (size_t)np * V);
    int32_t rows[64];
    for (int k = 0; k < np; k++)
        rows[k] = k;
    ck_assert(glm_runner_logits(r, rows, np, x, err, sizeof err) == GLM_OK);
    for (int k = 0; k + 1 < np; k++) {
        const float *row = x + (size_t)k * V;
        double mx = row[0], sum = 0;
        int best = 0;
        for (int t = 1; t < V; t++)
            if (row[t] > mx) {
                mx = row[t];
                best = t;
            }
        for (int t = 0; t < V; t++)
            sum += exp((double)row[t] - mx);
        lp[k + 1] = (double)row[p[k + 1]] - mx - log(sum);
        top1[k + 1] = best;
    }
    free(x);
    glm_bm_release(bm, &seq->table);
    glm_seq_free(seq);
    glm_bm_free(bm);
    glm_runner_free(r);
}

/* Prompt logprobs (scoring, as lm-eval-harness asks for them) equal the
 * runner's own log_softmax of every position, whether the prompt is prefilled
 * in chunks or its prefix is in the cache (it is then computed again, and the
 * cached blocks left alone); max_tokens 0 scores the prompt and generates
 * nothing; the prompt's events come before the first token. */
START_TEST(prompt_logprobs_match_logits)
{
    enum { NP = 45 };
    int32_t p[NP];
    for (int k = 0; k < NP; k++)
        p[k] = (k * 37 + 11) % 4000;
    double ref[NP];
    int32_t top1[NP];
    reference_logprobs(p, NP, ref, top1);

    glm_engine *e = make_engine(4096, 4, 16); /* chunks of 16: three steps score the prompt */
    char err[GLM_ERRLEN];
    glm_submit_status st;
    for (int round = 0; round < 3; round++) {
        glm_sampling_params sp;
        greedy(&sp, round == 0 ? 0 : 1);
        sp.prompt_logprobs = 1;
        sp.prompt_top_logprobs = 3;
        glm_request *r = glm_engine_submit(e, p, NP, &sp, &st, err, sizeof err);
        ck_assert_msg(r != NULL, "%s", err);
        glm_event ev;
        int pos = 1, n_tok = 0, rc;
        double worst = 0;
        while ((rc = glm_request_next(r, &ev, 60000)) == 1) {
            ck_assert_msg(ev.type != GLM_EV_ERROR, "%s", ev.message);
            if (ev.type == GLM_EV_PROMPT_TOKEN) {
                ck_assert_int_eq(n_tok, 0);
                ck_assert_int_lt(pos, NP);
                ck_assert_int_eq(ev.token, p[pos]);
                ck_assert_int_eq(ev.n_top, 3);
                ck_assert_int_eq(ev.top_ids[0], top1[pos]);
                ck_assert(ev.top_logprobs[0] >= ev.top_logprobs[1] && ev.top_logprobs[1] >= ev.top_logprobs[2]);
                ck_assert(ev.logprob <= ev.top_logprobs[0]);
                ck_assert_int_eq(ev.rank == 1, ev.token == top1[pos]);
                worst = fmax(worst, fabs(ev.logprob - ref[pos]));
                pos++;
            } else if (ev.type == GLM_EV_TOKEN) {
                n_tok++;
            } else if (ev.type == GLM_EV_FINISH) {
                ck_assert_int_eq(ev.finish, GLM_FINISH_LENGTH);
                ck_assert_int_eq(ev.cached_tokens, 0);
            }
        }
        ck_assert_int_eq(rc, -1);
        ck_assert_int_eq(pos, NP);
        ck_assert_int_eq(n_tok, round == 0 ? 0 : 1);
        ck_assert_msg(worst < 1e-4, "prompt logprob off by %g", worst);
        glm_request_release(r);
        if (round == 1) { /* a plain request now finds the prompt cached */
            greedy(&sp, 1);
            r = glm_engine_submit(e, p, NP, &sp, &st, err, sizeof err);
            int32_t out[2];
            int cached = -1;
            collect(r, out, 2, NULL, &cached);
            ck_assert_int_eq(cached, 44);
            glm_request_release(r);
        }
    }
    wait_idle(e);
    glm_engine_free(e);

    /* under preemption (a cache for fewer than the three at once), with n = 2: each request
     * scores its prompt once, in order, with the same values */
    e = make_engine(96, 4, 16);
    glm_request *rs[3];
    for (int i = 0; i < 3; i++) {
        glm_sampling_params sp;
        greedy(&sp, 10);
        sp.n = 2;
        sp.prompt_logprobs = 1;
        rs[i] = glm_engine_submit(e, p, NP, &sp, &st, err, sizeof err);
        ck_assert_msg(rs[i] != NULL, "%s", err);
    }
    for (int i = 0; i < 3; i++) {
        glm_event ev;
        int pos = 1, n_tok = 0, rc;
        while ((rc = glm_request_next(rs[i], &ev, 60000)) == 1) {
            ck_assert_msg(ev.type != GLM_EV_ERROR, "%s", ev.message);
            if (ev.type == GLM_EV_PROMPT_TOKEN) {
                ck_assert_int_eq(ev.token, p[pos]);
                ck_assert_msg(fabs(ev.logprob - ref[pos]) < 1e-4, "position %d off", pos);
                pos++;
            }
            n_tok += ev.type == GLM_EV_TOKEN;
        }
        ck_assert_int_eq(pos, NP);
        ck_assert_int_eq(n_tok, 20);
        glm_request_release(rs[i]);
    }
    wait_idle(e);
    glm_engine_metrics m;
    glm_engine_metrics_get(e, &m);
    ck_assert_uint_gt(m.num_preemptions, 0);
    glm_engine_free(e);
}
END_TEST

START_TEST(abort_everywhere)
{
    glm_engine *e = make_engine(400, 2, 8);
    glm_request *r[8];
    for (int i = 0; i < 8; i++) {
        int32_t p[64];
        int n;
        make_prompt(i + 3, p, &n);
        glm_sampling_params sp;
        greedy(&sp, 200);
        glm_submit_status st;
        char err[GLM_ERRLEN];
        r[i] = glm_engine_submit(e, p, n, &sp, &st, err, sizeof err);
        ck_assert(r[i] != NULL);
    }
    /* some waiting, some prefilling (8-token chunks), some decoding */
    glm_event ev;
    ck_assert_int_eq(glm_request_next(r[0], &ev, 60000), 1);
    for (int i = 7; i >= 0; i--)
        glm_request_abort(r[i]);
    for (int i = 0; i < 8; i++) {
        glm_finish_reason why = GLM_FINISH_STOP;
        int32_t out[256];
        collect(r[i], out, 256, &why, NULL);
        ck_assert_int_eq(why, GLM_FINISH_ABORT);
        glm_request_release(r[i]);
    }
    wait_idle(e);
    glm_engine_free(e);
}
END_TEST

START_TEST(queue_overflow_and_bad_input)
{
    char err[GLM_ERRLEN];
    glm_engine_params p;
    glm_engine_params_default(&p);
    p.kv_cache_bytes = glm_kv_bytes_per_token(&model->cfg) * 256;
    p.max_queue = 2;
    p.max_num_seqs = 1;
    p.n_threads = 1;
    glm_engine *e = glm_engine_create(model, &p, err, sizeof err);
    ck_assert(e != NULL);
    glm_sampling_params sp;
    greedy(&sp, 200); /* long enough that the engine cannot empty the queue while we submit */
    glm_submit_status st;
    int32_t prompt[4] = {1, 2, 3, 4};
    glm_request *r[8];
    int refused = 0, taken = 0;
    for (int i = 0; i < 8; i++) {
        r[i] = glm_engine_submit(e, prompt, 4, &sp, &st, err, sizeof err);
        if (!r[i]) {
            ck_assert_int_eq(st, GLM_SUBMIT_OVERLOADED);
            ck_assert(strstr(err, "overloaded") != NULL);
            refused++;
        } else {
            taken++;
        }
    }
    ck_assert_int_gt(refused, 0);
    ck_assert_int_ge(taken, 2);
    for (int i = 0; i < 8; i++)
        glm_request_release(r[i]);
    /* bad input */
    int32_t bad[2] = {1, 99999};
    ck_assert(glm_engine_submit(e, bad, 2, &sp, &st, err, sizeof err) == NULL);
    ck_assert_int_eq(st, GLM_SUBMIT_INVALID);
    ck_assert(glm_engine_submit(e, bad, 0, &sp, &st, err, sizeof err) == NULL);
    int32_t *longp = calloc(5000, sizeof(int32_t));
    ck_assert(glm_engine_submit(e, longp, 5000, &sp, &st, err, sizeof err) == NULL);
    ck_assert_int_eq(st, GLM_SUBMIT_TOO_LONG);
    ck_assert(glm_engine_submit(e, longp, 300, &sp, &st, err, sizeof err) == NULL); /* > cache */
    ck_assert_int_eq(st, GLM_SUBMIT_TOO_LONG);
    free(longp);
    wait_idle(e);
    glm_engine_free(e);
}
END_TEST

START_TEST(n_samples_and_seeds)
{
    glm_engine *e = make_engine(4096, 8, 64);
    int32_t p[30];
    for (int k = 0; k < 30; k++)
        p[k] = (k * 53 + 5) % 4000;
    glm_sampling_params sp;
    glm_sampling_params_init(&sp);
    sp.temperature = 1.0f;
    sp.has_max_tokens = 1;
    sp.max_tokens = 12;
    sp.ignore_eos = 1;
    sp.n = 4;
    sp.has_seed = 1;
    sp.seed = 1234;
    glm_submit_status st;
    char err[GLM_ERRLEN];
    int32_t toks[2][4][12];
    int cached[4] = {0};
    for (int run = 0; run < 2; run++) {
        /* second run with other traffic: seeded samples must not change */
        glm_request *noise = NULL;
        if (run == 1) {
            glm_sampling_params g;
            greedy(&g, 20);
            noise = glm_engine_submit(e, p + 3, 20, &g, &st, err, sizeof err);
        }
        glm_request *r = glm_engine_submit(e, p, 30, &sp, &st, err, sizeof err);
        ck_assert_msg(r != NULL, "%s", err);
        int cnt[4] = {0}, fin = 0;
        glm_event ev;
        while (glm_request_next(r, &ev, 60000) == 1) {
            ck_assert(ev.type != GLM_EV_ERROR);
            ck_assert(ev.index >= 0 && ev.index < 4);
            if (ev.type == GLM_EV_TOKEN)
                toks[run][ev.index][cnt[ev.index]++] = ev.token;
            else {
                fin++;
                cached[ev.index] = ev.cached_tokens;
                ck_assert_int_eq(ev.completion_tokens, 12);
            }
        }
        ck_assert_int_eq(fin, 4);
        glm_request_release(r);
        if (noise) {
            int32_t o[32];
            collect(noise, o, 32, NULL, NULL);
            glm_request_release(noise);
        }
    }
    ck_assert(memcmp(toks[0], toks[1], sizeof toks[0]) == 0);
    /* samples differ from each other, and the later ones reused the prompt's blocks */
    ck_assert(memcmp(toks[0][0], toks[0][1], sizeof toks[0][0]) != 0 ||
              memcmp(toks[0][1], toks[0][2], sizeof toks[0][0]) != 0);
    ck_assert_int_eq(cached[1], 28);
    wait_idle(e);
    glm_engine_free(e);
}
END_TEST

/* A processor of sample 1 of 2 that finds no token may follow after one
 * token: the request ends with one 400-kind error and an abort finish per
 * sample, and sample 0, sampled in the same steps with a repetition penalty
 * that reads its history, is never sampled from a freed sequence (ASan). */
static void *ef_create(void *ctx, int i)
{
    int *st = calloc(2, sizeof(int));
    st[0] = i;
    return st;
}
static int ef_apply(void *state, float *logits, int vocab, char *err, size_t errlen)
{
    int *st = state;
    if (st[0] == 1 && st[1] >= 1) {
        snprintf(err, errlen, "no token may follow");
        return -1;
    }
    return 0;
}
static void ef_accept(void *state, int32_t tok) { ((int *)state)[1]++; }
static void ef_destroy(void *state) { free(state); }
static void ef_release(void *ctx) {}

START_TEST(processor_error_ends_siblings)
{
    glm_engine *e = make_engine(4096, 8, 64);
    int32_t p[30];
    for (int k = 0; k < 30; k++)
        p[k] = (k * 53 + 5) % 4000;
    glm_sampling_params sp;
    glm_sampling_params_init(&sp);
    sp.repetition_penalty = 1.5f;
    sp.has_max_tokens = 1;
    sp.max_tokens = 12;
    sp.ignore_eos = 1;
    sp.n = 2;
    glm_logits_processor lp = {ef_create, ef_apply, ef_accept, ef_destroy, ef_release, NULL};
    sp.processor = &lp;
    glm_submit_status st;
    char err[GLM_ERRLEN];
    glm_request *r = glm_engine_submit(e, p, 30, &sp, &st, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    glm_event ev;
    int errors = 0, aborts = 0, rc;
    while ((rc = glm_request_next(r, &ev, 60000)) == 1) {
        if (ev.type == GLM_EV_ERROR) {
            errors++;
            ck_assert(ev.invalid_request);
            ck_assert_msg(strstr(ev.message, "no token may follow"), "%s", ev.message);
        }
        if (ev.type == GLM_EV_FINISH)
            aborts += ev.finish == GLM_FINISH_ABORT;
    }
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(errors, 1);
    ck_assert_int_eq(aborts, 2);
    glm_request_release(r);
    wait_idle(e);
    glm_engine_free(e);
}
END_TEST

/* ---- backpressure ------------------------------------------------------------------ */

/* The compact queue gives back every field of every event, in order, across
 * ring wrap-arounds and growth, with top logprobs and finish details. */
START_TEST(event_queue_round_trip)
{
    glm_evq q;
    glm_evq_init(&q);
    ck_assert_uint_eq(glm_evq_bytes(&q), 0);
    glm_event want[64];
    int head = 0, n = 0, pushed = 0;
    for (int round = 0; round < 400; round++) {
        for (int k = (round * 7) % 5; k > 0 && n < 64; k--, pushed++) {
            glm_event *ev = &want[(head + n++) % 64];
            memset(ev, 0, sizeof *ev);
            ev->index = pushed % 5;
            ev->type = pushed % 11 == 3 ? GLM_EV_FINISH : pushed % 17 == 5 ? GLM_EV_ERROR : GLM_EV_TOKEN;
            if (ev->type == GLM_EV_TOKEN) {
                ev->token = pushed * 3;
                ev->logprob = -0.25f * (float)(pushed % 9);
                ev->n_top = pushed % (GLM_SAMPLING_MAX_TOP_LOGPROBS + 1);
                for (int i = 0; i < ev->n_top; i++) {
                    ev->top_ids[i] = pushed + i;
                    ev->top_logprobs[i] = -(float)i;
                }
            } else if (ev->type == GLM_EV_FINISH) {
                ev->finish = (glm_finish_reason)(pushed % 3);
                ev->stop_token = pushed % 2 ? -1 : 7;
                ev->prompt_tokens = 11, ev->completion_tokens = pushed, ev->cached_tokens = 4;
                ev->queue_time = 0.5, ev->ttft = 1.25, ev->prefill_time = 0.75, ev->decode_time = 2;
                ev->e2e_time = pushed * 0.125;
            } else {
                ev->invalid_request = pushed % 2;
            }
            glm_evq_push(&q, ev);
        }
        ck_assert_int_eq(glm_evq_len(&q), n);
        for (int k = round % 4; k > 0 && n > 0; k--) {
            glm_event got;
            ck_assert_int_eq(glm_evq_pop(&q, &got), 1);
            ck_assert(memcmp(&got, &want[head], sizeof got) == 0);
            head = (head + 1) % 64;
            n--;
        }
    }
    /* 16 bytes a record, 8 a top logprob, 64 a finish, rings at most twice what they held */
    ck_assert_uint_le(glm_evq_bytes(&q), 2 * 64 * (16 + 8 * GLM_SAMPLING_MAX_TOP_LOGPROBS + 64));
    glm_event got;
    while (n > 0) {
        ck_assert_int_eq(glm_evq_pop(&q, &got), 1);
        ck_assert(memcmp(&got, &want[head], sizeof got) == 0);
        head = (head + 1) % 64;
        n--;
    }
    ck_assert_int_eq(glm_evq_pop(&q, &got), 0);
    glm_evq_free(&q);
    ck_assert_uint_eq(glm_evq_bytes(&q), 0);
}
END_TEST

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls the metrics (a snapshot after each step, so it may trail the events)
 * until they show these many running, waiting and paused sequences (-1: any);
 * fails only after 60 s (a hang guard). */
static void wait_state(glm_engine *e, int running, int waiting, int paused, glm_engine_metrics *m)
{
    for (int i = 0; i < 12000; i++) {
        glm_engine_metrics_get(e, m);
        if ((running < 0 || m->num_running == running) && (waiting < 0 || m->num_waiting == waiting) &&
            (paused < 0 || m->num_paused == paused))
            return;
        sleep_ms(5);
    }
    ck_abort_msg("expected %d running, %d waiting, %d paused; have %d, %d, %d", running, waiting, paused,
                 m->num_running, m->num_waiting, m->num_paused);
}

enum { MAX_N = 4, MAX_T = 64 };

typedef struct {
    int32_t toks[MAX_N][MAX_T];
    int n[MAX_N];                 /* tokens of each sample */
    glm_finish_reason why[MAX_N];
    int fin, errors;
    char error[256];
} drained;

/* Reads every event of r until it is over. */
static void drain(glm_request *r, drained *d)
{
    memset(d, 0, sizeof *d);
    glm_event ev;
    int rc;
    while ((rc = glm_request_next(r, &ev, 60000)) == 1) {
        ck_assert(ev.index >= 0 && ev.index < MAX_N);
        if (ev.type == GLM_EV_TOKEN) {
            ck_assert_ptr_null(ev.message);
            ck_assert_int_lt(d->n[ev.index], MAX_T);
            d->toks[ev.index][d->n[ev.index]++] = ev.token;
        } else if (ev.type == GLM_EV_FINISH) {
            d->fin++;
            d->why[ev.index] = ev.finish;
            ck_assert_int_eq(ev.completion_tokens, d->n[ev.index]);
        } else {
            d->errors++;
            ck_assert_ptr_nonnull(ev.message);
            snprintf(d->error, sizeof d->error, "%s", ev.message);
        }
    }
    ck_assert_int_eq(rc, -1);
}

/* A request of n seeded samples (temperature 0.8) with top logprobs, or one
 * greedy sample (n 0), on prompt number `which`. */
static glm_request *submit_bp(glm_engine *e, int which, int n_prompt, int n, int max_tokens, int top)
{
    int32_t p[64];
    for (int k = 0; k < n_prompt; k++)
        p[k] = (which * 389 + k * 71 + 13) % 4000;
    glm_sampling_params sp;
    greedy(&sp, max_tokens);
    if (n > 0) {
        sp.temperature = 0.8f;
        sp.n = n;
        sp.has_seed = 1;
        sp.seed = 99;
    }
    sp.logprobs = top > 0;
    sp.top_logprobs = top;
    glm_submit_status st;
    char err[GLM_ERRLEN];
    glm_request *r = glm_engine_submit(e, p, n_prompt, &sp, &st, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    return r;
}

static void same_tokens(const drained *a, const drained *b, int n)
{
    for (int k = 0; k < n; k++) {
        ck_assert_int_eq(a->n[k], b->n[k]);
        ck_assert_msg(memcmp(a->toks[k], b->toks[k], sizeof(int32_t) * (size_t)a->n[k]) == 0,
                      "sample %d: tokens differ from the run read at once", k);
    }
}

typedef struct {
    glm_request *r;
    drained d;
} reader;

static void *read_all(void *arg)
{
    reader *rd = arg;
    drain(rd->r, &rd->d);
    return NULL;
}

/* A reader that stops reading: its request holds at most (M + 2) n + 1 events
 * and stops being scheduled while another request, read by another thread,
 * runs to its end; read again, it goes on and ends with exactly the tokens of
 * a run read at once. */
START_TEST(stalled_reader_is_held_back)
{
    enum { M = 4, N = 2, TOP = 3, T = 40 };
    glm_engine *e = make_engine(4096, 8, 64);
    drained ref, got;
    glm_request *a = submit_bp(e, 1, 24, N, T, TOP);
    drain(a, &ref);
    glm_request_release(a);
    glm_engine_free(e);
    for (int k = 0; k < N; k++)
        ck_assert_int_eq(ref.n[k], T);

    e = make_engine_bp(4096, 8, 64, M, 0);
    a = submit_bp(e, 1, 24, N, T, TOP);
    reader other = {.r = submit_bp(e, 2, 30, 0, 30, 0)};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, read_all, &other), 0);
    glm_engine_metrics m;
    for (int i = 0;; i++) { /* a's two samples paused (the other adds at most one); hang guard 60 s */
        glm_engine_metrics_get(e, &m);
        if (m.num_paused >= N)
            break;
        ck_assert_msg(i < 12000, "the unread request was not held back");
        sleep_ms(5);
    }
    size_t bytes;
    int held = glm_request_pending(a, &bytes);
    const int bound = (M + 2) * N + 1;
    ck_assert_int_ge(held, M * N);
    ck_assert_int_le(held, bound);
    /* engine.h: 16 bytes an event, 8 a top logprob, 64 a finish; rings double */
    ck_assert_uint_le(bytes, 2 * (size_t)bound * (16 + 8 * TOP) + 2 * N * 64);
    /* the other request runs to its end meanwhile, and a takes no step: not one event more */
    pthread_join(th, NULL);
    ck_assert_int_eq(other.d.n[0], 30);
    ck_assert_int_eq(other.d.fin, 1);
    glm_request_release(other.r);
    ck_assert_int_eq(glm_request_pending(a, NULL), held);
    wait_state(e, N, 0, N, &m); /* a alone, running, its blocks kept: nobody needed them */
    for (int i = 0; i < 10; i++) {
        sleep_ms(2);
        ck_assert_int_eq(glm_request_pending(a, NULL), held);
    }
    ck_assert_int_gt(m.kv_blocks_used, 0);
    ck_assert_uint_eq(m.num_preemptions, 0);
    /* read again: it goes on to the tokens it had when read at once */
    drain(a, &got);
    ck_assert_int_eq(got.errors, 0);
    ck_assert_int_eq(got.fin, N);
    same_tokens(&ref, &got, N);
    glm_request_release(a);
    wait_idle(e);
    wait_state(e, 0, 0, 0, &m);
    glm_engine_free(e);
}
END_TEST

/* A held-back request gives its blocks up to a request that needs them (it is
 * preempted, not the reader's neighbour), and recomputed after its reader is
 * back it still produces the tokens of a run read at once. */
START_TEST(stalled_reader_gives_up_its_cache)
{
    enum { M = 4 };
    glm_engine *e = make_engine(4096, 4, 64);
    drained ref_a, ref_b, got_a, got_b;
    glm_request *a = submit_bp(e, 3, 20, 0, 40, 0);
    drain(a, &ref_a);
    glm_request_release(a);
    glm_request *b = submit_bp(e, 4, 52, 0, 20, 0);
    drain(b, &ref_b);
    glm_request_release(b);
    glm_engine_free(e);

    /* 20 blocks of 4: b alone needs 18 */
    e = make_engine_bp(80, 4, 64, M, 0);
    a = submit_bp(e, 3, 20, 0, 40, 0);
    glm_engine_metrics m;
    wait_state(e, 1, 0, 1, &m);
    b = submit_bp(e, 4, 52, 0, 20, 0);
    drain(b, &got_b);
    glm_request_release(b);
    same_tokens(&ref_b, &got_b, 1);
    wait_state(e, 0, 1, 1, &m); /* a, preempted: waiting, without blocks */
    ck_assert_uint_ge(m.num_preemptions, 1);
    ck_assert_int_eq(m.kv_blocks_used, 0);
    drain(a, &got_a);
    ck_assert_int_eq(got_a.fin, 1);
    same_tokens(&ref_a, &got_a, 1);
    glm_request_release(a);
    wait_idle(e);
    glm_engine_free(e);
}
END_TEST

/* A reader that stays behind past reader_timeout: its request is aborted with
 * an error, its blocks freed, and what it holds stays bounded. */
START_TEST(stalled_reader_times_out)
{
    enum { M = 4, N = 2 };
    glm_engine *e = make_engine_bp(4096, 8, 64, M, 0.05);
    glm_request *a = submit_bp(e, 5, 24, N, 200, 0);
    glm_engine_metrics m;
    for (int i = 0;; i++) { /* hang guard: 60 s */
        glm_engine_metrics_get(e, &m);
        if (m.finished[GLM_FINISH_ABORT] == N)
            break;
        ck_assert_msg(i < 12000, "the stalled request was not aborted");
        sleep_ms(5);
    }
    wait_idle(e); /* kv_blocks_used back to 0, nothing running or waiting */
    wait_state(e, 0, 0, 0, &m);
    ck_assert_int_le(glm_request_pending(a, NULL), (M + 2) * N + 1);
    drained got;
    drain(a, &got);
    ck_assert_int_eq(got.errors, 1);
    ck_assert_msg(strstr(got.error, "fell behind") != NULL, "%s", got.error);
    ck_assert_int_eq(got.fin, N);
    for (int k = 0; k < N; k++) {
        ck_assert_int_eq(got.why[k], GLM_FINISH_ABORT);
        ck_assert_int_lt(got.n[k], 200);
    }
    glm_request_release(a);
    glm_engine_free(e);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("tiny");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, concurrent_equals_alone);
    tcase_add_test(tc, prefix_reuse);
    tcase_add_test(tc, prompt_logprobs_match_logits);
    tcase_add_test(tc, abort_everywhere);
    tcase_add_test(tc, queue_overflow_and_bad_input);
    tcase_add_test(tc, n_samples_and_seeds);
    tcase_add_test(tc, processor_error_ends_siblings);
    tcase_add_test(tc, event_queue_round_trip);
    tcase_add_test(tc, stalled_reader_is_held_back);
    tcase_add_test(tc, stalled_reader_gives_up_its_cache);
    tcase_add_test(tc, stalled_reader_times_out);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
