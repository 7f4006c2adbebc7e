/*
 * test_parity.c - the engine against Hugging Face transformers, through the
 * model runner (the path serving uses).
 *
 * Goldens (tests/golden/tiny, written by tests/golden/make_goldens.py) hold the
 * logits transformers computed on models/tiny and its BF16 and FP8 copies: every
 * position of a 40-token prompt (longer than the model's index_topk of 16, so
 * DSA really drops tokens) and 32 greedy steps, and the hidden states after
 * every layer of the prompt. The engine must agree within max|dlogit| <= 2e-5 *
 * max|logit| per row (the hidden states likewise per layer) and pick the same
 * greedy ids, both
 * when the runner is driven directly and when requests go through the engine
 * thread (scheduler, block manager, prefix cache, sampler).
 * It also checks batch invariance (chunked prefill and mixed batches give
 * bitwise the logits of a lone, one-shot run) and that a forward pass
 * allocates nothing once the runner exists.
 */
#include <check.h>
#include <dlfcn.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "cpu/ops.h"
#include "sched/engine.h"
#include "sched/model_runner.h"
#include "golden.h"
#include "testutil.h"

#define GOLDEN "tests/golden/tiny"
/* Tolerances: float32 rounding puts a correct engine at ~2e-6 (logits) and
 * ~1e-6 (hidden states) from transformers; on the epsilon-sensitive tiny
 * checkpoint (tests/models/mkmodel.c) a wrong norm epsilon moves them by
 * >= 3e-4 (final norm, logits only) and >= 9e-4 (the others, from layer 0). */
#define REL_TOL 2e-5f    /* logits: max|dlogit| / max|logit| per row */
#define HIDDEN_TOL 2e-5f /* hidden states: max|dh| / max|h| per entry (all prompt positions) */

/* A runner for one driver's sequences: every position's logits when asked. */
static glm_runner *runner_for(const glm_model *m, int max_tokens, int max_seqs, int kv_tokens, int block_size,
                              int threads)
{
    char err[GLM_ERRLEN];
    glm_runner_params rp;
    glm_runner_params_default(&rp);
    rp.block_size = block_size;
    rp.max_num_batched_tokens = max_tokens;
    rp.max_num_seqs = max_seqs;
    rp.max_logits_rows = max_tokens;
    rp.max_model_len = 128;
    rp.kv_cache_tokens = kv_tokens;
    rp.n_threads = threads;
    glm_runner *r = glm_runner_create(m, &rp, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    return r;
}

static glm_block_manager *bm_for(const glm_runner *r)
{
    const glm_batch_limits *l = &glm_runner_info(r)->limits;
    return glm_bm_create(l->num_blocks, l->block_size, 0);
}

/* Logits rows [0, n) of the last forward. */
static void get_logits(glm_runner *r, int n, float *out)
{
    char err[GLM_ERRLEN];
    int32_t rows[128];
    ck_assert(n <= 128);
    for (int i = 0; i < n; i++)
        rows[i] = i;
    ck_assert_msg(glm_runner_logits(r, rows, n, out, err, sizeof err) == GLM_OK, "%s", err);
}

/*
 * The residual stream after the embedding and after every layer of the
 * one-shot prefill against transformers' hidden_states, entry by entry (llm.c's
 * test_gpt2 way): a wrong epsilon or scale shows in the layer where it is,
 * not only as a small change of the logits. transformers' last entry is the
 * final norm of the last layer's output, so the trace's last entry is normed
 * here the same way.
 */
static void check_hidden(const glm_model *m, const char *variant, float *trace, int np)
{
    char err[GLM_ERRLEN];
    int L = m->cfg.num_hidden_layers, H = m->cfg.hidden_size, ge, gt, gh;
    float *gold = golden_read_hidden(variant, &ge, &gt, &gh, err, sizeof err);
    ck_assert_msg(gold != NULL, "%s", err);
    ck_assert_int_eq(ge, L + 1);
    ck_assert_int_eq(gt, np);
    ck_assert_int_eq(gh, H);
    for (int t = 0; t < np; t++) {
        float *x = trace + ((size_t)L * np + t) * H;
        glm_rmsnorm(x, x, m->final_norm, H, m->cfg.rms_norm_eps);
    }
    char line[256];
    int off = 0;
    for (int e = 0; e <= L; e++) {
        const float *a = trace + (size_t)e * np * H, *b = gold + (size_t)e * np * H;
        float er = golden_row_err(a, b, np * H);
        off += snprintf(line + off, sizeof line - (size_t)off, " %.2g", er);
        char what[64];
        if (e == 0)
            snprintf(what, sizeof what, "the embedding");
        else
            snprintf(what, sizeof what, "%safter layer %d", e == L ? "final norm " : "", e - 1);
        ck_assert_msg(er <= HIDDEN_TOL, "%s hidden state %d (%s): relative error %g > %g", variant, e, what, er,
                      HIDDEN_TOL);
    }
    printf("parity %s: hidden-state relative error by entry:%s\n", variant, line);
    free(gold);
}

/* Prefill the prompt (in chunks of `chunk`, 0 = at once), then decode the golden
 * greedy ids; compare every step's logits with the golden rows. */
static void check_variant(const char *model, const char *variant, int chunk, float *worst)
{
    char path[512], err[GLM_ERRLEN];
    glm_model *m = test_load_model(model);
    int V = m->cfg.vocab_size;
    int *prompt, *greedy;
    int np = golden_read_ids(GOLDEN "/prompt.txt", &prompt);
    snprintf(path, sizeof path, GOLDEN "/%s.greedy.txt", variant);
    int ng = golden_read_ids(path, &greedy);
    ck_assert_int_eq(np, 40);
    ck_assert_int_eq(ng, 32);
    snprintf(path, sizeof path, GOLDEN "/%s.steps.f32", variant);
    float *gold = golden_read_rows(path, ng, V);
    float *gprompt = strcmp(variant, "f32") == 0 ? golden_read_rows(GOLDEN "/f32.prompt.f32", np, V) : NULL;

    char mdir[512];
    snprintf(mdir, sizeof mdir, "%s/%s", test_models_dir(), model);
    snprintf(path, sizeof path, GOLDEN "/%s.json", variant);
    ck_assert_msg(golden_checkpoint_matches(mdir, path, err, sizeof err) == GLM_OK, "%s", err);

    int step_max = chunk ? chunk : np;
    glm_runner *r = runner_for(m, step_max, 1, np + ng, 16, 0);
    glm_block_manager *bm = bm_for(r);
    glm_sequence *seq = glm_seq_create(0, prompt, np, ng);
    float *logits = malloc(sizeof(float) * (size_t)np * V);
    int L = m->cfg.num_hidden_layers, H = m->cfg.hidden_size;
    float *trace = chunk ? NULL : malloc(sizeof(float) * (size_t)(L + 1) * np * H);
    if (trace)
        ck_assert(glm_runner_trace_hidden(r, trace) == GLM_OK);

    int nn = 0;
    while (seq->n_computed < np) {
        int done = seq->n_computed;
        nn = GLM_MIN(step_max, np - done);
        ck_assert_msg(glm_runner_step_seqs(r, bm, &seq, &nn, 1, 1, err, sizeof err) == GLM_OK, "%s", err);
        get_logits(r, nn, logits + (size_t)done * V);
    }
    /* layer by layer first: a mistake shows in the layer where it is */
    if (trace) {
        ck_assert(glm_runner_trace_hidden(r, NULL) == GLM_OK);
        check_hidden(m, variant, trace, np);
        free(trace);
    }
    for (int i = 0; gprompt && i < np; i++) {
        float e = golden_row_err(logits + (size_t)i * V, gprompt + (size_t)i * V, V);
        ck_assert_msg(e <= REL_TOL, "%s prompt position %d: relative error %g", variant, i, e);
        *worst = fmaxf(*worst, e);
    }
    /* the last prefill row is row 0 of the steps */
    int32_t row = nn - 1;
    float *cur = malloc(sizeof(float) * V);
    memcpy(cur, logits + (size_t)(np - 1) * V, sizeof(float) * V);
    for (int s = 0; s < ng; s++) {
        float e = golden_row_err(cur, gold + (size_t)s * V, V);
        ck_assert_msg(e <= REL_TOL, "%s step %d: relative error %g", variant, s, e);
        *worst = fmaxf(*worst, e);
        int32_t id;
        ck_assert(glm_runner_greedy(r, &row, 1, &id, err, sizeof err) == GLM_OK);
        ck_assert_msg(id == greedy[s], "%s step %d: greedy id %d, transformers %d", variant, s, id, greedy[s]);
        if (s + 1 < ng) {
            glm_seq_append(seq, greedy[s]);
            int one = 1;
            ck_assert_msg(glm_runner_step_seqs(r, bm, &seq, &one, 1, 0, err, sizeof err) == GLM_OK, "%s", err);
            row = 0;
            get_logits(r, 1, cur);
        }
    }
    glm_bm_release(bm, &seq->table);
    ck_assert_int_eq(glm_bm_num_free(bm), glm_bm_num_blocks(bm));
    glm_seq_free(seq);
    glm_bm_free(bm);
    glm_runner_free(r);
    glm_model_free(m);
    free(prompt);
    free(greedy);
    free(gold);
    free(gprompt);
    free(logits);
    free(cur);
}

START_TEST(parity_f32)
{
    float worst = 0;
    check_variant("tiny", "f32", 0, &worst);
    printf("parity f32: worst relative logit error %.3g\n", worst);
}
END_TEST

START_TEST(parity_f32_chunked)
{
    float worst = 0;
    check_variant("tiny", "f32", 7, &worst);
}
END_TEST

START_TEST(parity_bf16)
{
    float worst = 0;
    check_variant("tiny-bf16", "bf16", 0, &worst);
    printf("parity bf16: worst relative logit error %.3g\n", worst);
}
END_TEST

START_TEST(parity_fp8)
{
    float worst = 0;
    check_variant("tiny-fp8", "fp8", 0, &worst);
    printf("parity fp8: worst relative logit error %.3g\n", worst);
}
END_TEST

/* ---- the serving path: requests through the engine thread ------------------ */

/* A logits processor that records the rows the engine samples from and
 * changes nothing. */
typedef struct {
    float *rows; /* [32, V] */
    int n, V;
} recorder;

static void *rec_create(void *ctx, int i) { return ctx; }
static int rec_apply(void *st, float *logits, int vocab, char *err, size_t errlen)
{
    recorder *r = st;
    if (r->n < 32)
        memcpy(r->rows + (size_t)r->n * r->V, logits, sizeof(float) * (size_t)vocab);
    r->n++;
    return 0;
}
static void rec_accept(void *st, int32_t tok) {}
static void rec_destroy(void *st) {}
static void rec_release(void *ctx) {}

/* The golden prompt through glm_engine_submit: greedy, 32 tokens, prefill in
 * chunks of 7; then again, served from the prefix cache. Every row sampled
 * from matches transformers, and the tokens are its greedy ids. */
START_TEST(parity_serving)
{
    char err[GLM_ERRLEN];
    glm_model *m = test_load_model("tiny");
    int V = m->cfg.vocab_size;
    int *prompt, *greedy;
    int np = golden_read_ids(GOLDEN "/prompt.txt", &prompt);
    int ng = golden_read_ids(GOLDEN "/f32.greedy.txt", &greedy);
    float *gold = golden_read_rows(GOLDEN "/f32.steps.f32", ng, V);
    glm_engine_params ep;
    glm_engine_params_default(&ep);
    ep.max_num_batched_tokens = 7;
    ep.kv_cache_bytes = 16 << 20;
    glm_engine *e = glm_engine_create(m, &ep, err, sizeof err);
    ck_assert_msg(e != NULL, "%s", err);
    int32_t p[64];
    for (int i = 0; i < np; i++)
        p[i] = prompt[i];
    for (int round = 0; round < 2; round++) {
        recorder rec = {malloc(sizeof(float) * 32 * (size_t)V), 0, V};
        glm_logits_processor proc = {rec_create, rec_apply, rec_accept, rec_destroy, rec_release, &rec};
        glm_sampling_params sp;
        glm_sampling_params_init(&sp);
        sp.temperature = 0;
        sp.has_max_tokens = 1;
        sp.max_tokens = ng;
        sp.ignore_eos = 1;
        sp.processor = &proc;
        glm_submit_status st;
        glm_request *rq = glm_engine_submit(e, p, np, &sp, &st, err, sizeof err);
        ck_assert_msg(rq != NULL, "%s", err);
        glm_event ev;
        int got = 0, cached = -1;
        while (glm_request_next(rq, &ev, -1) == 1) {
            ck_assert_msg(ev.type != GLM_EV_ERROR, "%s", ev.message);
            if (ev.type == GLM_EV_TOKEN) {
                ck_assert_msg(ev.token == greedy[got], "round %d token %d: %d, transformers %d", round, got, ev.token,
                              greedy[got]);
                got++;
            } else if (ev.type == GLM_EV_FINISH) {
                cached = ev.cached_tokens;
            }
        }
        glm_request_release(rq);
        ck_assert_int_eq(got, ng);
        ck_assert_int_eq(rec.n, ng);
        if (round == 1)
            ck_assert_msg(cached > 0, "the second run should reuse the cached prompt (cached %d)", cached);
        for (int s = 0; s < ng; s++) {
            float er = golden_row_err(rec.rows + (size_t)s * V, gold + (size_t)s * V, V);
            ck_assert_msg(er <= REL_TOL, "serving round %d step %d: relative error %g", round, s, er);
        }
        free(rec.rows);
    }
    glm_engine_free(e);
    glm_model_free(m);
    free(prompt);
    free(greedy);
    free(gold);
}
END_TEST

/* A sequence's logits are bitwise the same alone, chunked, or batched with
 * other sequences at other positions. */
START_TEST(batch_invariance)
{
    char err[GLM_ERRLEN];
    glm_model *m = test_load_model("tiny");
    int V = m->cfg.vocab_size;
    int *prompt;
    int np = golden_read_ids(GOLDEN "/prompt.txt", &prompt);
    glm_runner *r = runner_for(m, np, 3, 4 * 64, 4, 2);
    glm_block_manager *bm = bm_for(r);

    /* A alone: all 40 at once, logits of every position */
    float *alone = malloc(sizeof(float) * (size_t)np * V);
    glm_sequence *a = glm_seq_create(0, prompt, np, 0);
    ck_assert(glm_runner_step_seqs(r, bm, &a, &np, 1, 1, err, sizeof err) == GLM_OK);
    get_logits(r, np, alone);
    glm_bm_release(bm, &a->table);
    glm_seq_free(a);

    /* A in pieces of 1..9 tokens, batched with B (a prefix at other positions)
     * and C (decoding one token at a time) */
    glm_sequence *s[3];
    for (int i = 0; i < 3; i++)
        s[i] = glm_seq_create((uint64_t)i + 1, prompt, np, 0);
    float *out = malloc(sizeof(float) * (size_t)(np + 64) * V);
    int piece = 1;
    while (s[0]->n_computed < np) {
        for (int i = 1; i < 3; i++)
            if (s[i]->n_computed >= np) { /* start over */
                glm_bm_release(bm, &s[i]->table);
                glm_seq_free(s[i]);
                s[i] = glm_seq_create((uint64_t)i + 1, prompt, np, 0);
            }
        int pa = s[0]->n_computed, pb = s[1]->n_computed, pc = s[2]->n_computed;
        int nn[3] = {GLM_MIN(piece, np - pa), GLM_MIN(3, np - pb), 1};
        ck_assert_msg(glm_runner_step_seqs(r, bm, s, nn, 3, 1, err, sizeof err) == GLM_OK, "%s", err);
        get_logits(r, nn[0] + nn[1] + nn[2], out);
        ck_assert_msg(memcmp(out, alone + (size_t)pa * V, sizeof(float) * (size_t)nn[0] * V) == 0,
                      "logits of positions %d..%d differ from the lone run", pa, pa + nn[0] - 1);
        ck_assert(memcmp(out + (size_t)nn[0] * V, alone + (size_t)pb * V, sizeof(float) * (size_t)nn[1] * V) == 0);
        ck_assert(memcmp(out + (size_t)(nn[0] + nn[1]) * V, alone + (size_t)pc * V, sizeof(float) * V) == 0);
        piece = piece % 9 + 1;
    }
    for (int i = 0; i < 3; i++) {
        glm_bm_release(bm, &s[i]->table);
        glm_seq_free(s[i]);
    }
    ck_assert_int_eq(glm_bm_num_free(bm), glm_bm_num_blocks(bm));
    glm_bm_free(bm);
    glm_runner_free(r);
    glm_model_free(m);
    free(prompt);
    free(alone);
    free(out);
}
END_TEST

/* A bad token id is a bad batch with a message, not a crash, and leaves the
 * sequence uncomputed. */
START_TEST(bad_token)
{
    char err[GLM_ERRLEN];
    glm_model *m = test_load_model("tiny");
    glm_runner *r = runner_for(m, 16, 1, 64, 16, 1);
    glm_block_manager *bm = bm_for(r);
    int32_t toks[2] = {1, m->cfg.vocab_size};
    glm_sequence *s = glm_seq_create(0, toks, 2, 4);
    int n = 2;
    ck_assert(glm_runner_step_seqs(r, bm, &s, &n, 1, 0, err, sizeof err) == GLM_BAD_BATCH);
    ck_assert_msg(strstr(err, "outside the vocabulary") != NULL, "%s", err);
    ck_assert_int_eq(s->n_computed, 0);
    s->tokens[1] = 2;
    ck_assert(glm_runner_step_seqs(r, bm, &s, &n, 1, 0, err, sizeof err) == GLM_OK);
    ck_assert_int_eq(s->n_computed, 2);
    glm_bm_release(bm, &s->table);
    ck_assert_int_eq(glm_bm_num_free(bm), glm_bm_num_blocks(bm));
    glm_seq_free(s);
    glm_bm_free(bm);
    glm_runner_free(r);
    glm_model_free(m);
}
END_TEST

/* ---- no allocation inside a step --------------------------------------------- */

/* every malloc-family call is counted while `counting` is set (alloc_count.h) */
#include "alloc_count.h"

/* After the first step, prefill chunks, decode steps of several sequences,
 * logits copies and sampling allocate nothing (on any thread). */
START_TEST(no_alloc_in_steps)
{
#if !COUNT_ALLOCS
    printf("no_alloc_in_steps: skipped (a sanitizer owns malloc)\n");
    return;
#else
    char err[GLM_ERRLEN];
    glm_model *m = test_load_model("tiny");
    int V = m->cfg.vocab_size;
    int *prompt;
    int np = golden_read_ids(GOLDEN "/prompt.txt", &prompt);
    glm_runner *r = runner_for(m, 16, 3, 3 * 128, 16, 2);
    glm_block_manager *bm = bm_for(r);
    glm_sequence *s[3];
    for (int i = 0; i < 3; i++)
        s[i] = glm_seq_create((uint64_t)i, prompt, np - 7 * i, 64);
    float *row = malloc(sizeof(float) * (size_t)V);
    glm_sampling_params sp;
    glm_sampling_params_init(&sp);
    sp.temperature = 0.8f;
    sp.top_p = 0.9f;
    sp.logprobs = 1;
    sp.top_logprobs = 5;
    glm_rng rng;
    glm_rng_seed(&rng, 1);
    int32_t rows[3] = {0, 1, 2};
    /* first step: chunks of the three prompts */
    int first[3] = {6, 5, 5};
    ck_assert(glm_runner_step_seqs(r, bm, s, first, 3, 1, err, sizeof err) == GLM_OK);
    int steps = 0, total = 0, rc = GLM_OK;
    /* no ck_assert while counting: Check allocates to record each one */
    atomic_store(&counting, 1);
    while (steps < 40) {
        int n_new[3];
        for (int i = 0; i < 3; i++) {
            int left = s[i]->n_tokens - s[i]->n_computed;
            n_new[i] = left > 0 ? GLM_MIN(left, 5) : 1;
            if (left == 0) /* decode: a sampled token first */
                glm_seq_append(s[i], (int32_t)(steps * 7 + i) % V);
        }
        rc |= glm_runner_step_seqs(r, bm, s, n_new, 3, 0, err, sizeof err);
        int n_rows;
        glm_runner_rows(r, &n_rows);
        if (n_rows > 0) {
            glm_sample_req req[3];
            glm_sampler_result res[3];
            for (int i = 0; i < n_rows; i++)
                req[i] = (glm_sample_req){rows[i], i == 1 ? row : NULL, &sp, &rng, {NULL, 0, NULL, 0}};
            rc |= glm_runner_logits(r, rows, 1, row, err, sizeof err);
            rc |= glm_runner_sample(r, req, n_rows, res, err, sizeof err);
        }
        total += n_new[0] + n_new[1] + n_new[2];
        steps++;
    }
    atomic_store(&counting, 0);
    ck_assert_msg(rc == GLM_OK, "%s", err);
    ck_assert_msg(atomic_load(&n_allocs) == 0, "%d allocations in %d steps (%d tokens)", atomic_load(&n_allocs),
                  steps, total);
    printf("no_alloc_in_steps: 0 allocations in %d steps (%d tokens, workspace %zu bytes)\n", steps, total,
           glm_runner_info(r)->workspace_bytes);
    for (int i = 0; i < 3; i++) {
        glm_bm_release(bm, &s[i]->table);
        glm_seq_free(s[i]);
    }
    glm_bm_free(bm);
    glm_runner_free(r);
    glm_model_free(m);
    free(prompt);
    free(row);
#endif
}
END_TEST

int main(void)
{
    Suite *s = suite_create("parity");
    TCase *tc = tcase_create("tiny");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, parity_f32);
    tcase_add_test(tc, parity_f32_chunked);
    tcase_add_test(tc, parity_bf16);
    tcase_add_test(tc, parity_fp8);
    tcase_add_test(tc, parity_serving);
    tcase_add_test(tc, batch_invariance);
    tcase_add_test(tc, bad_token);
    tcase_add_test(tc, no_alloc_in_steps);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
