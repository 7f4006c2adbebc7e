/*
 * test_mtp.c - the MTP (next-n) layer, speculative decoding's draft layer
 * (model.h: glm_mtp), against the PyTorch reference of
 * tests/golden/make_mtp_goldens.py, through the model runner.
 *
 * For each of models/tiny, tiny-bf16 and tiny-fp8: prefill the 40-token golden
 * prompt, then a draft over the prompt (row p: the token at p + 1, greedy[0]
 * at 39, and the main model's final hidden state at p), then one chained
 * draft at position 40 (the argmax of row 39, fed back the MTP output of row
 * 39). Every row's logits must agree with the reference within the parity
 * tests' tolerance (max|dlogit| <= 2e-5 x max|logit|), and the chained token
 * must be the reference's. On models/script, whose MTP layer follows the
 * scripted chains (tests/models/mkscript.c), every draft row predicts the
 * token after next and chained drafts go on along the chain. Also: the
 * draft's refusals (no MTP layer held, a hidden row the last step does not
 * have, a checkpoint without an MTP layer).
 */
#include <sys/stat.h>
#include <unistd.h>
#include <check.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "sched/model_runner.h"
#include "golden.h"
#include "testutil.h"

#define GOLDEN "tests/golden/tiny"
#define REL_TOL 2e-5f
#define NP 40

static glm_runner *runner_for(const glm_model *m, int draft_layers)
{
    char err[GLM_ERRLEN];
    glm_runner_params rp;
    glm_runner_params_default(&rp);
    rp.block_size = 16;
    rp.max_num_batched_tokens = 64;
    rp.max_num_seqs = 2;
    rp.max_logits_rows = 64;
    rp.max_model_len = 128;
    rp.kv_cache_tokens = 128;
    rp.draft_layers = draft_layers;
    glm_runner *r = glm_runner_create(m, &rp, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    return r;
}

static void get_logits(glm_runner *r, int n, float *out)
{
    char err[GLM_ERRLEN];
    int32_t rows[64];
    for (int i = 0; i < n; i++)
        rows[i] = i;
    ck_assert_msg(glm_runner_logits(r, rows, n, out, err, sizeof err) == GLM_OK, "%s", err);
}

static void check_variant(const char *model, const char *variant)
{
    char path[512], mdir[512], err[GLM_ERRLEN];
    glm_model *m = test_load_model(model);
    ck_assert_msg(m->mtp != NULL, "%s: no MTP layer bound", model);
    int V = m->cfg.vocab_size;
    int *prompt, *greedy;
    ck_assert_int_eq(golden_read_ids(GOLDEN "/prompt.txt", &prompt), NP);
    snprintf(path, sizeof path, GOLDEN "/%s.greedy.txt", variant);
    ck_assert(golden_read_ids(path, &greedy) >= 1);
    snprintf(path, sizeof path, GOLDEN "/%s.mtp.json", variant);
    snprintf(mdir, sizeof mdir, "%s/%s", test_models_dir(), model);
    ck_assert_msg(golden_checkpoint_matches(mdir, path, err, sizeof err) == GLM_OK, "%s", err);
    json_error_t je;
    json_t *meta = json_load_file(path, 0, &je);
    ck_assert_msg(meta != NULL, "%s: %s", path, je.text);
    int chained = (int)json_integer_value(json_object_get(meta, "chained_token"));
    ck_assert_int_eq((int)json_integer_value(json_object_get(meta, "rows")), NP + 1);
    snprintf(path, sizeof path, GOLDEN "/%s.mtp.f32", variant);
    float *gold = golden_read_rows(path, NP + 1, V);

    glm_runner *r = runner_for(m, 1);
    const glm_batch_limits *lim = &glm_runner_info(r)->limits;
    glm_block_manager *bm = glm_bm_create(lim->num_blocks, lim->block_size, 0);
    glm_sequence *seq = glm_seq_create(0, prompt, NP, 8);
    int n = NP;
    ck_assert_msg(glm_runner_step_seqs(r, bm, &seq, &n, 1, 0, err, sizeof err) == GLM_OK, "%s", err);

    /* the draft over the prompt: row p reads the forward's row p and the token at p + 1 */
    int32_t next[NP], rows[NP];
    for (int p = 0; p < NP; p++) {
        next[p] = p + 1 < NP ? prompt[p + 1] : greedy[0];
        rows[p] = p;
    }
    glm_draft_seq d = {seq, 0, NP, next, rows, 1};
    ck_assert_msg(glm_runner_draft(r, &d, 1, GLM_DRAFT_FROM_FORWARD, 1, err, sizeof err) == GLM_OK, "%s", err);
    float *logits = malloc(sizeof(float) * (size_t)NP * V);
    get_logits(r, NP, logits);
    float worst = 0;
    for (int p = 0; p < NP; p++) {
        float e = golden_row_err(logits + (size_t)p * V, gold + (size_t)p * V, V);
        ck_assert_msg(e <= REL_TOL, "%s MTP row %d: relative error %g", variant, p, e);
        worst = fmaxf(worst, e);
    }
    int32_t last = NP - 1, d1;
    ck_assert(glm_runner_greedy(r, &last, 1, &d1, err, sizeof err) == GLM_OK);
    ck_assert_msg(d1 == chained, "%s: chained draft token %d, the reference's %d", variant, d1, chained);

    /* chained: position 40 reads the draft's own output at row 39 (its blocks cover 48 slots) */
    int32_t row39 = NP - 1;
    glm_draft_seq d2 = {seq, NP, 1, &d1, &row39, 1};
    ck_assert_msg(glm_runner_draft(r, &d2, 1, GLM_DRAFT_FROM_DRAFT, 0, err, sizeof err) == GLM_OK, "%s", err);
    get_logits(r, 1, logits);
    float e = golden_row_err(logits, gold + (size_t)NP * V, V);
    ck_assert_msg(e <= REL_TOL, "%s chained MTP row: relative error %g", variant, e);
    worst = fmaxf(worst, e);
    fprintf(stderr, "mtp %s: worst relative error %.3g over %d rows\n", variant, worst, NP + 1);

    /* a hidden row the last draft does not have: 400, nothing run */
    int32_t bad = 1;
    glm_draft_seq d3 = {seq, NP, 1, &d1, &bad, 1};
    ck_assert_int_eq(glm_runner_draft(r, &d3, 1, GLM_DRAFT_FROM_DRAFT, 0, err, sizeof err), GLM_BAD_BATCH);
    ck_assert_msg(strstr(err, "hidden row 1") != NULL, "%s", err);

    glm_bm_release(bm, &seq->table);
    glm_seq_free(seq);
    glm_bm_free(bm);
    glm_runner_free(r);
    glm_model_free(m);
    json_decref(meta);
    free(prompt);
    free(greedy);
    free(gold);
    free(logits);
}

START_TEST(mtp_f32) { check_variant("tiny", "f32"); }
END_TEST

START_TEST(mtp_bf16) { check_variant("tiny-bf16", "bf16"); }
END_TEST

START_TEST(mtp_fp8) { check_variant("tiny-fp8", "fp8"); }
END_TEST

/* models/script: the draft over a prompt that follows the long reasoning chain predicts, at
 * every position p, the chain's token at p + 2; three chained drafts continue the chain. */
START_TEST(mtp_script_follows_chains)
{
    char err[GLM_ERRLEN];
    glm_model *m = test_load_model("script");
    ck_assert(m->mtp != NULL);
    enum { M = 40 };
    int32_t c[M + 5], prompt[M + 1];
    json_t *sj = test_script_chain(c, M + 5, prompt, M);

    glm_runner *r = runner_for(m, 1);
    const glm_batch_limits *lim = &glm_runner_info(r)->limits;
    glm_block_manager *bm = glm_bm_create(lim->num_blocks, lim->block_size, 0);
    glm_sequence *seq = glm_seq_create(0, prompt, M + 1, 8);
    int n = M + 1;
    ck_assert_msg(glm_runner_step_seqs(r, bm, &seq, &n, 1, 0, err, sizeof err) == GLM_OK, "%s", err);
    int32_t row = 0, g;
    ck_assert(glm_runner_greedy(r, &row, 1, &g, err, sizeof err) == GLM_OK);
    ck_assert_int_eq(g, c[M]);

    int32_t next[M + 1], rows[M + 1], out[M + 1];
    for (int p = 0; p <= M; p++) {
        next[p] = p < M ? prompt[p + 1] : g;
        rows[p] = p;
    }
    glm_draft_seq d = {seq, 0, M + 1, next, rows, 1};
    ck_assert_msg(glm_runner_draft(r, &d, 1, GLM_DRAFT_FROM_FORWARD, 1, err, sizeof err) == GLM_OK, "%s", err);
    for (int p = 0; p <= M; p++)
        rows[p] = p;
    ck_assert(glm_runner_greedy(r, rows, M + 1, out, err, sizeof err) == GLM_OK);
    for (int p = 0; p <= M; p++)
        ck_assert_msg(out[p] == c[p + 1], "draft row %d: %d, the chain's next-but-one %d", p, out[p], c[p + 1]);
    /* chained: position M + 1 + k, the draft's own token, its own output fed back */
    int32_t tok = out[M], src = M;
    for (int k = 0; k < 3; k++) {
        glm_draft_seq dk = {seq, M + 1 + k, 1, &tok, &src, 1};
        ck_assert_msg(glm_runner_draft(r, &dk, 1, GLM_DRAFT_FROM_DRAFT, 0, err, sizeof err) == GLM_OK, "%s", err);
        row = 0;
        ck_assert(glm_runner_greedy(r, &row, 1, &tok, err, sizeof err) == GLM_OK);
        ck_assert_msg(tok == c[M + 2 + k], "chained draft %d: %d, the chain's %d", k, tok, c[M + 2 + k]);
        src = 0;
    }
    glm_bm_release(bm, &seq->table);
    glm_seq_free(seq);
    glm_bm_free(bm);
    glm_runner_free(r);
    glm_model_free(m);
    json_decref(sj);
}
END_TEST

/* A runner without the MTP layer has no draft; a checkpoint without one cannot be asked for it. */
START_TEST(draft_refused)
{
    char err[GLM_ERRLEN];
    glm_model *m = test_load_model("tiny");
    glm_runner *r = runner_for(m, 0);
    int32_t tok = 1, row = 0;
    glm_sequence *seq = glm_seq_create(0, &tok, 1, 1);
    glm_draft_seq d = {seq, 0, 1, &tok, &row, 1};
    ck_assert_int_eq(glm_runner_draft(r, &d, 1, GLM_DRAFT_FROM_FORWARD, 0, err, sizeof err), GLM_BAD_BATCH);
    ck_assert_msg(strstr(err, "no MTP layer") != NULL, "%s", err);
    glm_runner_free(r);
    glm_seq_free(seq);
    glm_model_free(m);

    /* tiny's weights with num_nextn_predict_layers 0: the MTP tensors are not bound */
    char dir[] = "/tmp/glm-mtp-XXXXXX", src[600], dst[600];
    ck_assert(mkdtemp(dir) != NULL);
    snprintf(src, sizeof src, "%s/tiny/config.json", test_models_dir());
    json_error_t je;
    json_t *cfg = json_load_file(src, 0, &je);
    ck_assert_msg(cfg != NULL, "%s: %s", src, je.text);
    json_object_set_new(cfg, "num_nextn_predict_layers", json_integer(0));
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    ck_assert(json_dump_file(cfg, dst, 0) == 0);
    json_decref(cfg);
    snprintf(src, sizeof src, "%s/tiny/model.safetensors", test_models_dir());
    char abs[PATH_MAX];
    ck_assert(realpath(src, abs) != NULL);
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    ck_assert(symlink(abs, dst) == 0);
    snprintf(dst, sizeof dst, "%s/generation_config.json", dir);
    test_write_file(dst, "{}");
    m = glm_model_load(dir, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    ck_assert(m->mtp == NULL);
    glm_runner_params rp;
    glm_runner_params_default(&rp);
    rp.kv_cache_tokens = 64;
    rp.max_num_batched_tokens = 16;
    rp.draft_layers = 1;
    ck_assert(glm_runner_create(m, &rp, err, sizeof err) == NULL);
    ck_assert_msg(strstr(err, "no MTP layer") != NULL, "%s", err);
    glm_model_free(m);
    const char *names[] = {"config.json", "model.safetensors", "generation_config.json"};
    for (int i = 0; i < 3; i++) {
        snprintf(dst, sizeof dst, "%s/%s", dir, names[i]);
        unlink(dst);
    }
    rmdir(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mtp");
    TCase *tc = tcase_create("tiny");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, mtp_f32);
    tcase_add_test(tc, mtp_bf16);
    tcase_add_test(tc, mtp_fp8);
    tcase_add_test(tc, mtp_script_follows_chains);
    tcase_add_test(tc, draft_refused);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
