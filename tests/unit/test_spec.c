/*
 * test_spec.c - speculative decoding with the MTP layer in the engine (engine.h,
 * num_speculative_tokens):
 *
 *  1. greedy requests give exactly the tokens plain decoding gives, on every test
 *     checkpoint (tiny, tiny-bf16, tiny-fp8, script, tiny-wide-bf16/fp8; tiny-tp at 2 and 4
 *     ranks), 1 to 3 drafts, many requests at once, with chunked prefill (a small
 *     step budget that also cuts drafts), shared prefixes (the prefix cache), a cache so
 *     small that sequences are preempted, n = 2, stop token ids, a repetition penalty
 *     (the history holds each accepted draft) and max_tokens;
 *  2. sampled requests keep the distribution: the joint law of the first three tokens
 *     (the second and third come from verified drafts) against the exact one computed
 *     from the model's logits, by a chi-square test;
 *  3. on the scripted checkpoint, whose MTP layer names the token after next along its
 *     chains, every draft is accepted and a step emits k + 1 tokens;
 *  4. a logits processor sees every emitted token once, in order, and constrains the
 *     drafts' rows as it constrains plain decoding;
 *  5. parameters out of range are refused.
 *
 * Built twice: for the CPU backend (build/tests/test_spec) and, with GLM_TEST_SPEC_CUDA, for
 * the CUDA backend at --dtype float32 on the CPU execution layer (build/tests/test_spec_cuda),
 * where plain and speculative decoding are both the CUDA backend's.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "cpu/kvcache.h"
#include "sched/engine.h"
#include "sched/model_runner.h"
#include "testutil.h"

#ifdef GLM_TEST_SPEC_CUDA
#define BACKEND GLM_BACKEND_CUDA
#define DTYPE GLM_COMPUTE_F32
#define SUITE "spec_cuda"
#define K_FIRST 2          /* the CPU execution layer is slow: one draft count, two shapes, */
#define K_LAST 2           /* fewer requests, no stop-id run */
#define N_SHAPES 2
#define N_REQ 6
#define FULL 0
#else
#define K_FIRST 1
#define K_LAST 3
#define N_SHAPES 4
#define N_REQ 12
#define FULL 1
#define BACKEND GLM_BACKEND_CPU
#define DTYPE GLM_COMPUTE_AUTO
#define SUITE "spec"
#endif

#define MAX_OUT 40

typedef struct {
    int32_t tok[2][MAX_OUT]; /* samples 0 and 1 */
    int n[2];
    glm_finish_reason why[2];
} outcome;

typedef struct {
    int max_seqs, max_batched;
    size_t kv_tokens;        /* cache room in tokens of the main layers */
    int block_size;
    int prefix_caching;
    int tp;                  /* tensor-parallel ranks (0: 1) */
} engine_shape;

/* The metrics once the engine holds nothing: published after the step that finished the
 * last request (a reader sees its finish before that). Fails after 60 s (a hang guard). */
static void idle_metrics(glm_engine *e, glm_engine_metrics *m)
{
    for (int i = 0; i < 12000; i++) {
        glm_engine_metrics_get(e, m);
        if (m->num_running == 0 && m->num_waiting == 0 && m->kv_blocks_used == 0)
            return;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    ck_abort_msg("engine did not go idle");
}

static glm_engine *engine_for(const glm_model *m, const engine_shape *sh, int k)
{
    char err[GLM_ERRLEN];
    glm_engine_params p;
    glm_engine_params_default(&p);
    p.kv_cache_bytes = (glm_kv_bytes_per_token(&m->cfg) + (k ? glm_kv_draft_bytes_per_token(&m->cfg) : 0)) *
                       sh->kv_tokens;
    p.block_size = sh->block_size;
    p.max_num_seqs = sh->max_seqs;
    p.max_num_batched_tokens = sh->max_batched;
    p.enable_prefix_caching = sh->prefix_caching;
    p.n_threads = 2;
    p.backend = BACKEND;
    p.dtype = DTYPE;
    p.num_speculative_tokens = k;
    if (sh->tp > 1) {
        p.tensor_parallel_size = sh->tp;
        p.kv_cache_bytes *= (size_t)sh->tp; /* each rank holds every token's latent */
    }
    glm_engine *e = glm_engine_create(m, &p, err, sizeof err);
    ck_assert_msg(e != NULL, "%s", err);
    return e;
}

/* Request i's prompt: families of three share their first 24 tokens (prefix cache hits
 * at block size 4 and 8); lengths 5 .. 53, some past index_topk. */
static int make_prompt(int i, int vocab, int32_t *p)
{
    int n = 5 + (i * 17) % 49;
    for (int k = 0; k < n; k++) {
        int fam = k < 24 ? i / 3 : i;
        p[k] = (int32_t)((fam * 977 + k * 131 + 7) % (vocab - 64));
    }
    return n;
}

static void request_params(int i, glm_sampling_params *sp)
{
    glm_sampling_params_init(sp);
    sp->temperature = 0;
    sp->has_max_tokens = 1;
    sp->max_tokens = 6 + (i * 7) % 30;
    sp->ignore_eos = i % 4 != 0; /* some may stop at an eos */
    sp->n = i % 5 == 2 ? 2 : 1;
    if (i % 3 == 1)
        sp->repetition_penalty = 1.3f;
}

static void collect(glm_request *r, outcome *o)
{
    glm_event ev;
    int rc;
    memset(o, 0, sizeof *o);
    while ((rc = glm_request_next(r, &ev, 60000)) == 1) {
        ck_assert_msg(ev.type != GLM_EV_ERROR, "%s", ev.message);
        ck_assert(ev.index >= 0 && ev.index < 2);
        if (ev.type == GLM_EV_TOKEN) {
            ck_assert_int_lt(o->n[ev.index], MAX_OUT);
            o->tok[ev.index][o->n[ev.index]++] = ev.token;
        }
        if (ev.type == GLM_EV_FINISH)
            o->why[ev.index] = ev.finish;
    }
    ck_assert_int_eq(rc, -1);
}

/* Runs N_REQ requests at once (stop ids from `stops` when given: request i stops at
 * stops[i], or never when -1); returns the engine's metrics. */
static void run_all(const glm_model *m, const engine_shape *sh, int k, const int32_t *stops, outcome *out,
                    glm_engine_metrics *met)
{
    glm_engine *e = engine_for(m, sh, k);
    glm_request *r[N_REQ];
    int32_t stop_ids[N_REQ];
    for (int i = 0; i < N_REQ; i++) {
        int32_t p[64];
        int n = make_prompt(i, m->cfg.vocab_size, p);
        glm_sampling_params sp;
        request_params(i, &sp);
        if (stops && stops[i] >= 0) {
            stop_ids[i] = stops[i];
            sp.stop_token_ids = &stop_ids[i];
            sp.n_stop_token_ids = 1;
        }
        glm_submit_status st;
        char err[GLM_ERRLEN];
        r[i] = glm_engine_submit(e, p, n, &sp, &st, err, sizeof err);
        ck_assert_msg(r[i] != NULL, "%s", err);
    }
    for (int i = 0; i < N_REQ; i++) {
        collect(r[i], &out[i]);
        glm_request_release(r[i]);
    }
    idle_metrics(e, met);
    glm_engine_free(e);
}

static void same(const outcome *want, const outcome *got, const char *model, int k, const char *what)
{
    for (int i = 0; i < N_REQ; i++)
        for (int s = 0; s < 2; s++) {
            ck_assert_msg(got[i].n[s] == want[i].n[s] &&
                              memcmp(got[i].tok[s], want[i].tok[s], sizeof(int32_t) * (size_t)want[i].n[s]) == 0,
                          "%s, %d drafts, %s: request %d sample %d: %d tokens, plain decoding %d (or they differ)",
                          model, k, what, i, s, got[i].n[s], want[i].n[s]);
            ck_assert_int_eq(got[i].why[s], want[i].why[s]);
        }
}

static void greedy_on(const char *name)
{
    glm_model *m = test_load_model(name);
    ck_assert_msg(m->mtp != NULL, "%s has no MTP layer", name);
    engine_shape ample = {16, 256, 8192, 4, 1, 1};
    outcome plain[N_REQ], got[N_REQ];
    glm_engine_metrics met;
    run_all(m, &ample, 0, NULL, plain, &met);
    ck_assert_uint_eq(met.spec_drafts, 0);
    /* stop ids: request i stops at its plain output's 4th token (some samples emit it
     * earlier, or never) */
    int32_t stops[N_REQ];
    for (int i = 0; i < N_REQ; i++)
        stops[i] = i % 2 && plain[i].n[0] > 4 ? plain[i].tok[0][3] : -1;
    outcome plain_stop[N_REQ];
    if (FULL)
        run_all(m, &ample, 0, stops, plain_stop, &met);

    const struct {
        engine_shape sh;
        const char *what;
    } shapes[] = {
        {{16, 12, 8192, 8, 1, 1}, "12-token steps (chunked prefill, drafts cut)"},
        {{16, 64, 140, 4, 1, 1}, "a 140-token cache (preemption)"},
        {{16, 256, 8192, 4, 1, 1}, "ample cache"},
        {{16, 64, 8192, 4, 0, 1}, "no prefix caching"},
    };
    for (int k = K_FIRST; k <= K_LAST; k++) {
        for (int c = 0; c < N_SHAPES; c++) {
            run_all(m, &shapes[c].sh, k, NULL, got, &met);
            same(plain, got, name, k, shapes[c].what);
            ck_assert_uint_gt(met.spec_drafts, 0);
            ck_assert_uint_le(met.spec_accepted_tokens, met.spec_draft_tokens);
            ck_assert_int_eq(met.num_speculative_tokens, k);
            if (shapes[c].sh.kv_tokens < 1000)
                ck_assert_msg(met.num_preemptions > 0, "%s: expected preemptions", shapes[c].what);
        }
        if (FULL) {
            run_all(m, &ample, k, stops, got, &met);
            same(plain_stop, got, name, k, "stop token ids");
        }
    }
    glm_model_free(m);
}

START_TEST(greedy_equals_plain_tiny) { greedy_on("tiny"); }
END_TEST
START_TEST(greedy_equals_plain_bf16) { greedy_on("tiny-bf16"); }
END_TEST
START_TEST(greedy_equals_plain_fp8) { greedy_on("tiny-fp8"); }
END_TEST
START_TEST(greedy_equals_plain_script) { greedy_on("script"); }
END_TEST
START_TEST(greedy_equals_plain_wide_bf16) { greedy_on("tiny-wide-bf16"); }
END_TEST
START_TEST(greedy_equals_plain_wide_fp8) { greedy_on("tiny-wide-fp8"); }
END_TEST

/* Tensor parallelism: every rank runs its shard of the MTP layer (vocabulary-parallel embedding
 * and head, sharded heads and experts), driven like a forward; the same tokens as plain
 * decoding at the same size. */
START_TEST(tensor_parallel_greedy)
{
    glm_model *m = test_load_model("tiny-tp");
    ck_assert(m->mtp != NULL);
    for (int tp = 2; tp <= 4; tp += 2) {
        engine_shape sh = {16, 64, 4096, 4, 1, tp};
        outcome plain[N_REQ], got[N_REQ];
        glm_engine_metrics met;
        run_all(m, &sh, 0, NULL, plain, &met);
        run_all(m, &sh, 2, NULL, got, &met);
        char what[48];
        snprintf(what, sizeof what, "tensor parallel size %d", tp);
        same(plain, got, "tiny-tp", 2, what);
        ck_assert_uint_gt(met.spec_drafts, 0);
    }
    glm_model_free(m);
}
END_TEST

#ifndef GLM_TEST_SPEC_CUDA /* the verification is the engine's code, the same either way: tested once */

/* ---- 2. the distribution of sampled tokens --------------------------------------------- */

#define TOPK 3
#define CELLS (TOPK * TOPK * TOPK)

/* The law glm_sampler_sample draws the token after prefix [n] from, by the runner. */
static void next_law(glm_runner *r, const int32_t *prefix, int n, const glm_sampling_params *sp, float *probs)
{
    char err[GLM_ERRLEN];
    int vocab = glm_runner_info(r)->limits.vocab_size;
    const glm_batch_limits *lim = &glm_runner_info(r)->limits;
    glm_block_manager *bm = glm_bm_create(lim->num_blocks, lim->block_size, 0);
    glm_sequence *seq = glm_seq_create(0, prefix, n, 4);
    ck_assert_msg(glm_runner_step_seqs(r, bm, &seq, &n, 1, 0, err, sizeof err) == GLM_OK, "%s", err);
    float *x = glm_malloc_aligned(sizeof(float) * (size_t)vocab);
    int32_t row = 0;
    ck_assert(glm_runner_logits(r, &row, 1, x, err, sizeof err) == GLM_OK);
    size_t wsz = glm_sampler_workspace_size(vocab);
    void *ws = glm_malloc_aligned(wsz);
    glm_sampler_history h = {prefix, n, NULL, 0};
    glm_sampler_distribution(sp, x, vocab, &h, ws, wsz, probs);
    glm_free_aligned(ws);
    glm_free_aligned(x);
    glm_bm_release(bm, &seq->table);
    glm_seq_free(seq);
    glm_bm_free(bm);
}

/* The TOPK tokens with probability, ascending ids. */
static void support(const float *probs, int vocab, int32_t *ids)
{
    int n = 0;
    for (int v = 0; v < vocab; v++)
        if (probs[v] > 0) {
            ck_assert_int_lt(n, TOPK);
            ids[n++] = v;
        }
    ck_assert_int_eq(n, TOPK);
}

static int index_of(const int32_t *ids, int32_t t)
{
    for (int i = 0; i < TOPK; i++)
        if (ids[i] == t)
            return i;
    return -1;
}

/* On the scripted checkpoint (drafts name the model's most likely token) made uncertain:
 * the chain's next three tokens biased down by 100 and two ids past the tokenizer (logit 0)
 * up by 100, so that at temperature 2 with top_k 3 each draft is accepted about half the
 * time. */
START_TEST(sampled_distribution_kept)
{
    glm_model *m = test_load_model("script");
    int vocab = m->cfg.vocab_size;
    char err[GLM_ERRLEN];
    enum { P = 12 };
    int32_t c[P + 3], prompt[P + 1];
    json_decref(test_script_chain(c, P + 3, prompt, P));
    glm_sampling_logit_bias bias[5] = {
        {c[P], -100}, {c[P + 1], -100}, {c[P + 2], -100}, {vocab - 1, 100}, {vocab - 2, 100}};
    glm_sampling_params sp;
    glm_sampling_params_init(&sp);
    sp.temperature = 2.0f;
    sp.top_k = TOPK;
    sp.ignore_eos = 1;
    sp.logit_bias = bias;
    sp.n_logit_bias = 5;

    /* the exact joint law of the first three tokens */
    glm_runner_params rp;
    glm_runner_params_default(&rp);
    rp.kv_cache_tokens = 256;
    rp.max_num_batched_tokens = 64;
    rp.max_num_seqs = 1;
    rp.n_threads = 2;
    rp.backend = BACKEND;
    rp.dtype = DTYPE;
    glm_runner *run = glm_runner_create(m, &rp, err, sizeof err);
    ck_assert_msg(run != NULL, "%s", err);
    float *probs = glm_malloc(sizeof(float) * (size_t)vocab);
    int32_t ids1[TOPK], ids2[TOPK][TOPK], ids3[TOPK][TOPK][TOPK];
    double exact[CELLS];
    float p1[TOPK], p2[TOPK][TOPK];
    int32_t pre[P + 3];
    memcpy(pre, prompt, sizeof prompt);
    next_law(run, pre, P + 1, &sp, probs);
    support(probs, vocab, ids1);
    for (int a = 0; a < TOPK; a++) {
        p1[a] = probs[ids1[a]];
    }
    for (int a = 0; a < TOPK; a++) {
        pre[P + 1] = ids1[a];
        next_law(run, pre, P + 2, &sp, probs);
        support(probs, vocab, ids2[a]);
        for (int b = 0; b < TOPK; b++)
            p2[a][b] = probs[ids2[a][b]];
        for (int b = 0; b < TOPK; b++) {
            pre[P + 2] = ids2[a][b];
            next_law(run, pre, P + 3, &sp, probs);
            support(probs, vocab, ids3[a][b]);
            for (int c = 0; c < TOPK; c++)
                exact[(a * TOPK + b) * TOPK + c] = (double)p1[a] * p2[a][b] * probs[ids3[a][b][c]];
        }
    }
    glm_runner_free(run);
    free(probs);

    /* samples with two drafts: token 1 from the prompt's row, tokens 2 and 3 from rows
     * that verify drafts (or a bonus row) */
    engine_shape sh = {64, 512, 16384, 4, 1, 1};
    glm_engine *e = engine_for(m, &sh, 2);
    enum { REQS = 100, N = 60 };
    long count[CELLS] = {0};
    sp.n = N;
    sp.has_max_tokens = 1;
    sp.max_tokens = 4;
    sp.has_seed = 1;
    for (int q = 0; q < REQS; q++) {
        sp.seed = 1000003u * (uint64_t)q + 17;
        glm_submit_status st;
        glm_request *r = glm_engine_submit(e, prompt, P + 1, &sp, &st, err, sizeof err);
        ck_assert_msg(r != NULL, "%s", err);
        int32_t t[N][4];
        int nt[N] = {0};
        glm_event ev;
        while (glm_request_next(r, &ev, 60000) == 1) {
            ck_assert_msg(ev.type != GLM_EV_ERROR, "%s", ev.message);
            if (ev.type == GLM_EV_TOKEN && nt[ev.index] < 4)
                t[ev.index][nt[ev.index]++] = ev.token;
        }
        glm_request_release(r);
        for (int s = 0; s < N; s++) {
            ck_assert_int_eq(nt[s], 4);
            int a = index_of(ids1, t[s][0]);
            ck_assert_int_ge(a, 0);
            int b = index_of(ids2[a], t[s][1]);
            ck_assert_int_ge(b, 0);
            int c = index_of(ids3[a][b], t[s][2]);
            ck_assert_int_ge(c, 0);
            count[(a * TOPK + b) * TOPK + c]++;
        }
    }
    glm_engine_metrics met;
    idle_metrics(e, &met);
    glm_engine_free(e);
    /* both rules ran: drafts accepted and drafts rejected */
    ck_assert_uint_gt(met.spec_accepted_tokens, met.spec_draft_tokens / 20);
    ck_assert_uint_lt(met.spec_accepted_tokens, met.spec_draft_tokens - met.spec_draft_tokens / 20);
    double chi2 = 0, total = (double)REQS * N;
    int dof = -1;
    for (int i = 0; i < CELLS; i++) {
        double want = exact[i] * total;
        if (want < 5)
            continue; /* too rare to test; counted below */
        chi2 += ((double)count[i] - want) * ((double)count[i] - want) / want;
        dof++;
    }
    /* the 1e-6 upper quantile of chi-square, Wilson-Hilferty: z = 4.75 */
    double z = 4.75, v = 2.0 / (9.0 * dof), crit = dof * pow(1 - v + z * sqrt(v), 3);
    fprintf(stderr, "sampled_distribution_kept: chi2 %.1f, %d degrees of freedom, bound %.1f; drafts %llu, "
                    "accepted %llu\n",
            chi2, dof, crit, (unsigned long long)met.spec_draft_tokens,
            (unsigned long long)met.spec_accepted_tokens);
    ck_assert_int_ge(dof, 5);
    ck_assert_msg(chi2 < crit, "chi-square %.1f over %d degrees of freedom (bound %.1f)", chi2, dof, crit);
    glm_model_free(m);
}
END_TEST

#endif

/* ---- 3. the scripted checkpoint: every draft accepted ---------------------------------- */

START_TEST(script_drafts_all_accepted)
{
    glm_model *m = test_load_model("script");
    char err[GLM_ERRLEN];
    enum { P = 10, OUT = 30 };
    int32_t c[P + OUT], prompt[P + 1];
    json_t *sj = test_script_chain(c, P + OUT, prompt, P);
    for (int k = K_FIRST; k <= K_LAST; k++) {
        engine_shape sh = {4, 256, 4096, 16, 1, 1};
        glm_engine *e = engine_for(m, &sh, k);
        glm_sampling_params sp;
        glm_sampling_params_init(&sp);
        sp.temperature = 0;
        sp.has_max_tokens = 1;
        sp.max_tokens = OUT;
        sp.ignore_eos = 1;
        glm_submit_status st;
        glm_request *r = glm_engine_submit(e, prompt, P + 1, &sp, &st, err, sizeof err);
        ck_assert_msg(r != NULL, "%s", err);
        outcome o;
        collect(r, &o);
        glm_request_release(r);
        ck_assert_int_eq(o.n[0], OUT);
        for (int i = 0; i < OUT; i++)
            ck_assert_msg(o.tok[0][i] == c[P + i], "%d drafts: token %d is %d, the chain's %d", k, i, o.tok[0][i],
                          c[P + i]);
        glm_engine_metrics met;
        idle_metrics(e, &met);
        glm_engine_free(e);
        ck_assert_uint_gt(met.spec_draft_tokens, 0);
        ck_assert_uint_eq(met.spec_accepted_tokens, met.spec_draft_tokens);
        uint64_t by_pos = 0;
        for (int j = 0; j < k; j++)
            by_pos += met.spec_accepted_per_pos[j];
        ck_assert_uint_eq(by_pos, met.spec_accepted_tokens);
        ck_assert_uint_eq(met.spec_accepted_per_pos[0], met.spec_drafts);
        /* the prompt's step gives one token, each later step k + 1 (fewer at the end) */
        ck_assert_uint_le(met.steps, 1 + (OUT - 1 + k) / (k + 1) + 1);
    }
    json_decref(sj);
    glm_model_free(m);
}
END_TEST

/* ---- 4. logits processors ---------------------------------------------------------------- */

/* Bans the tokens whose id is 0 mod 3 (so some drafts are refused by the processor alone)
 * and records what it was told, so that each emitted token is seen exactly once. */
typedef struct {
    int32_t seen[MAX_OUT * 2];
    int n_seen, applied;
} ban_state;
static ban_state *ban_states[N_REQ * 2];
static int n_ban_states;
static void *ban_create(void *ctx, int i)
{
    ban_state *b = calloc(1, sizeof *b);
    ban_states[n_ban_states++] = b;
    return b;
}
static int ban_apply(void *state, float *logits, int vocab, char *err, size_t errlen)
{
    ((ban_state *)state)->applied++;
    for (int v = 0; v < vocab; v += 3)
        logits[v] = -INFINITY;
    return 0;
}
static void ban_accept(void *state, int32_t tok)
{
    ban_state *b = state;
    if (b->n_seen < MAX_OUT * 2)
        b->seen[b->n_seen++] = tok;
}
static void ban_destroy(void *state) {}
static void ban_release(void *ctx) {}

START_TEST(processor_sees_each_token_once)
{
    glm_model *m = test_load_model("tiny");
    outcome got[2][4];
    ban_state kept[2][4];
    for (int k = 0; k <= 2; k += 2) {
        engine_shape sh = {8, 128, 4096, 4, 1, 1};
        glm_engine *e = engine_for(m, &sh, k);
        n_ban_states = 0;
        glm_request *r[4];
        for (int i = 0; i < 4; i++) {
            int32_t p[64];
            int n = make_prompt(i, m->cfg.vocab_size, p);
            glm_sampling_params sp;
            request_params(i, &sp);
            sp.n = 1;
            sp.ignore_eos = 1;
            glm_logits_processor lp = {ban_create, ban_apply, ban_accept, ban_destroy, ban_release, NULL};
            sp.processor = &lp;
            glm_submit_status st;
            char err[GLM_ERRLEN];
            r[i] = glm_engine_submit(e, p, n, &sp, &st, err, sizeof err);
            ck_assert_msg(r[i] != NULL, "%s", err);
        }
        for (int i = 0; i < 4; i++) {
            collect(r[i], &got[k / 2][i]);
            glm_request_release(r[i]);
        }
        glm_engine_free(e);
        ck_assert_int_eq(n_ban_states, 4);
        for (int i = 0; i < 4; i++) {
            kept[k / 2][i] = *ban_states[i];
            free(ban_states[i]);
        }
    }
    for (int i = 0; i < 4; i++) {
        /* the states were created in submission order */
        outcome *a = &got[0][i], *b = &got[1][i];
        ck_assert_int_eq(a->n[0], b->n[0]);
        ck_assert(memcmp(a->tok[0], b->tok[0], sizeof(int32_t) * (size_t)a->n[0]) == 0);
        for (int s = 0; s < 2; s++) {
            ban_state *st = &kept[s][i];
            ck_assert_int_eq(st->n_seen, a->n[0]);
            ck_assert(memcmp(st->seen, a->tok[0], sizeof(int32_t) * (size_t)a->n[0]) == 0);
            for (int t = 0; t < a->n[0]; t++)
                ck_assert_int_ne(a->tok[0][t] % 3, 0);
        }
    }
    glm_model_free(m);
}
END_TEST

START_TEST(parameters_refused)
{
    glm_model *m = test_load_model("tiny");
    char err[GLM_ERRLEN];
    glm_engine_params p;
    glm_engine_params_default(&p);
    p.n_threads = 1;
    p.num_speculative_tokens = GLM_ENGINE_MAX_SPEC_TOKENS + 1;
    ck_assert(glm_engine_create(m, &p, err, sizeof err) == NULL);
    p.num_speculative_tokens = -1;
    ck_assert(glm_engine_create(m, &p, err, sizeof err) == NULL);
    glm_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create(SUITE);
    TCase *tc = tcase_create(SUITE);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, greedy_equals_plain_tiny);
    tcase_add_test(tc, greedy_equals_plain_bf16);
    tcase_add_test(tc, greedy_equals_plain_fp8);
    tcase_add_test(tc, greedy_equals_plain_script);
    tcase_add_test(tc, greedy_equals_plain_wide_bf16);
    tcase_add_test(tc, greedy_equals_plain_wide_fp8);
#ifndef GLM_TEST_SPEC_CUDA
    tcase_add_test(tc, sampled_distribution_kept);
#endif
    if (FULL) /* the CUDA backend's ranks do not hold the MTP layer */
        tcase_add_test(tc, tensor_parallel_greedy);
    tcase_add_test(tc, script_drafts_all_accepted);
    tcase_add_test(tc, processor_sees_each_token_once);
    tcase_add_test(tc, parameters_refused);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
