/*
 * test_tp.c - tensor parallelism on the CPU backend (model/shard.c, backend/tp.c, the engine):
 *  - a rank's shard is views of the whole model: every rank's rows of every split weight,
 *    widened to float32, are the matching block of the whole weight's rows, in float32 and in
 *    FP8 (scales taken with their blocks); the experts and the vocabulary are dealt out whole;
 *    sizes that do not divide and cuts through FP8 scale blocks are refused with their names;
 *  - the engine at 2 ranks gives every request of a concurrent, continuously batched load the
 *    greedy tokens it gets at 1 rank;
 *  - a world stopped from outside in the middle of a request (what a node that drops out does)
 *    fails that request with the reason, the engine reports itself dead, refuses new requests,
 *    and is freed without a hang.
 * On models/tiny-tp (16 heads, 16 experts, widths that split 8 ways) and models/tiny-fp8.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "cpu/kvcache.h"
#include "model/model.h"
#include "sched/engine.h"
#include "testutil.h"

/* The shard's weight s equals rows [r0, r0 + s->rows) x columns [c0, c0 + s->cols) of w. */
static void same_block(const char *what, const glm_weight *w, const glm_weight *s, int r0, int c0)
{
    float *whole = malloc(sizeof(float) * (size_t)w->cols), *part = malloc(sizeof(float) * (size_t)s->cols);
    for (int r = 0; r < s->rows; r++) {
        glm_weight_rows_f32(w, r0 + r, 1, whole);
        glm_weight_rows_f32(s, r, 1, part);
        ck_assert_msg(memcmp(whole + c0, part, sizeof(float) * (size_t)s->cols) == 0, "%s: row %d differs", what,
                      r);
    }
    free(whole);
    free(part);
}

static void check_shards(const char *name, int world)
{
    glm_model *m = test_load_model(name);
    const glm_config *c = &m->cfg;
    char err[GLM_ERRLEN];
    int heads = c->num_attention_heads / world, qd = c->qk_head_dim, kvd = c->qk_nope_head_dim + c->v_head_dim;
    int vd = c->v_head_dim, I = c->intermediate_size / world, E = c->n_routed_experts;
    int vocab_seen = 0;
    for (int r = 0; r < world; r++) {
        glm_model *s = glm_model_shard(m, r, world, err, sizeof err);
        ck_assert_msg(s != NULL, "%s rank %d of %d: %s", name, r, world, err);
        ck_assert_int_eq(s->cfg.num_attention_heads, heads);
        ck_assert_int_eq(s->shard.heads0, r * heads);
        same_block("embed", &m->embed, &s->embed, s->shard.vocab0, 0);
        same_block("lm_head", &m->lm_head, &s->lm_head, s->shard.vocab0, 0);
        ck_assert_int_eq(s->shard.vocab0, vocab_seen);
        vocab_seen += s->shard.n_vocab;
        for (int li = 0; li < c->num_hidden_layers; li++) {
            const glm_layer *W = &m->layers[li], *L = &s->layers[li];
            same_block("q_b", &W->q_b, &L->q_b, r * heads * qd, 0);
            same_block("kv_b", &W->kv_b, &L->kv_b, r * heads * kvd, 0);
            same_block("o", &W->o, &L->o, 0, r * heads * vd);
            ck_assert_int_eq(L->o.cols, heads * vd);
            ck_assert_ptr_eq(L->q_a.data, W->q_a.data); /* replicated */
            ck_assert_ptr_eq(L->kv_a.data, W->kv_a.data);
            if (!W->sparse) {
                same_block("gate", &W->gate, &L->gate, r * I, 0);
                same_block("down", &W->down, &L->down, 0, r * I);
                continue;
            }
            int sI = W->sh_gate.rows / world;
            same_block("shared up", &W->sh_up, &L->sh_up, r * sI, 0);
            same_block("shared down", &W->sh_down, &L->sh_down, 0, r * sI);
            ck_assert_ptr_eq(L->router.data, W->router.data);
            for (int e = 0; e < E; e++) {
                int mine = e >= s->shard.expert0 && e < s->shard.expert0 + s->shard.n_experts;
                ck_assert_msg((L->exp_gate[e].data != NULL) == mine, "rank %d expert %d", r, e);
                if (mine)
                    ck_assert_ptr_eq(L->exp_down[e].data, W->exp_down[e].data);
            }
        }
        ck_assert_int_eq(s->shard.n_experts, E / world);
        glm_model_free(s);
    }
    ck_assert_int_eq(vocab_seen, c->vocab_size);
    glm_model_free(m);
}

START_TEST(shard_views)
{
    for (int world = 1; world <= 8; world *= 2) {
        check_shards("tiny-tp", world);
        check_shards("tiny-tp-fp8", world);
    }
}
END_TEST

START_TEST(shard_refusals)
{
    char err[GLM_ERRLEN];
    glm_model *m = test_load_model("tiny-tp");
    ck_assert_ptr_null(glm_model_shard(m, 0, 3, err, sizeof err));
    ck_assert_msg(strstr(err, "tensor parallel size 3 does not divide the model's 16 attention heads"), "%s", err);
    ck_assert_ptr_null(glm_model_shard(m, 0, 32, err, sizeof err));
    ck_assert_msg(strstr(err, "does not divide the model's 16 attention heads"), "%s", err);
    ck_assert_ptr_null(glm_model_shard(m, 2, 2, err, sizeof err));
    glm_model_free(m);
    m = test_load_model("tiny-fp8"); /* a head is 48 rows: two of four heads cut a 128-row block */
    ck_assert_ptr_null(glm_model_shard(m, 1, 2, err, sizeof err));
    ck_assert_msg(strstr(err, "q_b_proj.weight: rows [96, 192) cut the FP8 weight's 128-row scale blocks"), "%s",
                  err);
    glm_model_free(m);
}
END_TEST

static glm_engine *engine(const glm_model *m, int tp)
{
    char err[GLM_ERRLEN];
    glm_engine_params p;
    glm_engine_params_default(&p);
    p.kv_cache_bytes = glm_kv_bytes_per_token(&m->cfg) * 2048 * (size_t)tp; /* 2048 tokens a rank */
    p.block_size = 4;
    p.max_num_seqs = 8;
    p.max_num_batched_tokens = 64;
    p.n_threads = 2;
    p.tensor_parallel_size = tp;
    glm_engine *e = glm_engine_create(m, &p, err, sizeof err);
    ck_assert_msg(e != NULL, "%s", err);
    return e;
}

static glm_request *submit(glm_engine *e, int i, int max_tokens)
{
    int32_t prompt[64];
    int n = 5 + (i * 11) % 40;
    for (int k = 0; k < n; k++)
        prompt[k] = (i * 389 + k * 97 + 3) % 4000;
    glm_sampling_params sp;
    glm_sampling_params_init(&sp);
    sp.temperature = 0;
    sp.has_max_tokens = 1;
    sp.max_tokens = max_tokens;
    sp.ignore_eos = 1;
    char err[GLM_ERRLEN];
    glm_submit_status st;
    glm_request *r = glm_engine_submit(e, prompt, n, &sp, &st, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    return r;
}

#define N_REQ 8
#define N_TOK 12

/* Every request's tokens, all submitted at once (batched together, prefills chunked at 64). */
static void run_all(const glm_model *m, int tp, int32_t out[N_REQ][N_TOK])
{
    glm_engine *e = engine(m, tp);
    glm_request *r[N_REQ];
    for (int i = 0; i < N_REQ; i++)
        r[i] = submit(e, i, N_TOK);
    for (int i = 0; i < N_REQ; i++) {
        glm_event ev;
        int n = 0, rc;
        while ((rc = glm_request_next(r[i], &ev, 60000)) == 1) {
            ck_assert_msg(ev.type != GLM_EV_ERROR, "tp %d: %s", tp, ev.message);
            if (ev.type == GLM_EV_TOKEN && n < N_TOK)
                out[i][n++] = ev.token;
        }
        ck_assert_int_eq(rc, -1);
        ck_assert_int_eq(n, N_TOK);
        glm_request_release(r[i]);
    }
    glm_engine_free(e);
}

START_TEST(engine_two_ranks)
{
    glm_model *m = test_load_model("tiny-tp");
    int32_t one[N_REQ][N_TOK], two[N_REQ][N_TOK];
    run_all(m, 1, one);
    run_all(m, 2, two);
    for (int i = 0; i < N_REQ; i++)
        for (int k = 0; k < N_TOK; k++)
            ck_assert_msg(one[i][k] == two[i][k], "request %d token %d: %d at 1 rank, %d at 2", i, k, one[i][k],
                          two[i][k]);
    glm_model_free(m);
}
END_TEST

START_TEST(engine_world_stopped)
{
    glm_model *m = test_load_model("tiny-tp");
    glm_engine *e = engine(m, 2);
    glm_request *r = submit(e, 1, 3000);
    glm_event ev;
    int tokens = 0, errors = 0, rc;
    char msg[256] = "";
    while ((rc = glm_request_next(r, &ev, 60000)) == 1) {
        if (ev.type == GLM_EV_TOKEN && ++tokens == 3)
            glm_engine_stop_backend(e, "node 1 dropped out (test)");
        if (ev.type == GLM_EV_ERROR) {
            errors++;
            snprintf(msg, sizeof msg, "%s", ev.message);
        }
    }
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(errors == 1 && strstr(msg, "node 1 dropped out (test)"), "%d errors, last: %s", errors, msg);
    ck_assert_msg(tokens < 3000, "the request ran to its end (%d tokens)", tokens);
    char why[GLM_ERRLEN];
    ck_assert(glm_engine_dead(e, why, sizeof why));
    ck_assert_msg(strstr(why, "node 1 dropped out (test)"), "%s", why);
    glm_request_release(r);
    int32_t p[2] = {1, 2};
    glm_sampling_params sp;
    glm_sampling_params_init(&sp);
    glm_submit_status st;
    char err[GLM_ERRLEN];
    ck_assert_ptr_null(glm_engine_submit(e, p, 2, &sp, &st, err, sizeof err));
    ck_assert_int_eq(st, GLM_SUBMIT_OVERLOADED);
    ck_assert_msg(strstr(err, "the engine stopped: "), "%s", err);
    glm_engine_free(e);
    glm_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tp");
    TCase *tc = tcase_create("tp");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, shard_views);
    tcase_add_test(tc, shard_refusals);
    tcase_add_test(tc, engine_two_ranks);
    tcase_add_test(tc, engine_world_stopped);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
