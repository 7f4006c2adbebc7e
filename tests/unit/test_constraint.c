/*
 * test_constraint.c - the GLM answer's logits processor (engine/constrain/constraint.c)
 * on the tiny tokenizer, without an engine: the reasoning budget forces
 * </think> (the closing tag counted), a grammar waiting after the reasoning
 * forbids end-of-sequence inside it, the reasoning ends at the bytes of
 * </think> however they are split, the grammar's mask is exactly the tokens
 * it accepts, end-of-sequence comes only when the sentence is complete,
 * `forbid` and `end_after` hold, greedy decoding under the mask always
 * produces a sentence of the grammar, and a grammar whose steps are too
 * costly ends the sample after the same number of steps on every machine.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/constraint.h"
#include "core/util.h"
#include "testutil.h"

#define TOK "tests/models/tiny/tokenizer.json"
#define EOS 4036
#define THINK_END 4058
#define TOOL_CALL 4059

static glm_tok *tok;
static glm_token_trie *trie;
static int vocab;
static const int32_t eos[] = {4036, 4043, 4045};

static void setup(void)
{
    char err[GLM_ERRLEN];
    ck_assert_msg(glm_tok_load(TOK, &tok, err, sizeof err) == GLM_OK, "%s", err);
    vocab = glm_tok_vocab_size(tok);
    trie = glm_constraint_vocab(tok, vocab, NULL, 0);
}

static void teardown(void)
{
    glm_token_trie_free(trie);
    glm_tok_free(tok);
}

static glm_constraint_params params(int think_open, int budget, const char *gbnf)
{
    glm_constraint_params p = {
        .tok = tok, .think_open = think_open, .think_end = "</think>", .think_end_id = THINK_END,
        .budget = budget, .trie = trie, .eos_ids = eos, .n_eos = 3, .forbid = -1,
    };
    if (gbnf) {
        char err[GLM_ERRLEN];
        p.grammar = glm_grammar_parse(gbnf, strlen(gbnf), "root", err, sizeof err);
        ck_assert_msg(p.grammar != NULL, "%s", err);
    }
    return p;
}

/* Runs apply on a flat row; returns how many tokens stay finite, *only the
 * last of them. */
static int allowed(glm_logits_processor *lp, void *st, float *row, int32_t *last)
{
    for (int i = 0; i < vocab; i++)
        row[i] = 0.0f;
    ck_assert_int_eq(lp->apply(st, row, vocab, NULL, 0), 0);
    int n = 0;
    for (int i = 0; i < vocab; i++)
        if (row[i] != -INFINITY) {
            n++;
            *last = i;
        }
    return n;
}

static int32_t id_of(const char *text)
{
    int32_t *ids = NULL;
    size_t n = 0;
    char err[GLM_ERRLEN];
    ck_assert(glm_tok_encode(tok, text, strlen(text), 1, &ids, &n, err, sizeof err) == GLM_OK);
    ck_assert_msg(n == 1, "'%s' is %zu tokens", text, n);
    int32_t id = ids[0];
    free(ids);
    return id;
}

START_TEST(budget_forces_think_end)
{
    glm_constraint_params p = params(1, 3, NULL);
    glm_logits_processor lp;
    glm_constraint_processor(&p, &lp);
    void *st = lp.create(lp.ctx, 0);
    float *row = malloc(sizeof(float) * (size_t)vocab);
    int32_t last;
    /* two free reasoning tokens, then only </think> (the third reasoning token) */
    ck_assert_int_eq(allowed(&lp, st, row, &last), vocab);
    lp.accept(st, 3310); /* "hell" */
    ck_assert_int_eq(allowed(&lp, st, row, &last), vocab);
    lp.accept(st, 81);   /* "r" */
    ck_assert_int_eq(allowed(&lp, st, row, &last), 1);
    ck_assert_int_eq(last, THINK_END);
    lp.accept(st, THINK_END);
    /* the answer is free again */
    ck_assert_int_eq(allowed(&lp, st, row, &last), vocab);
    lp.destroy(st);
    /* budget 0 and 1: </think> at once */
    for (int b = 0; b <= 1; b++) {
        glm_constraint_params q = params(1, b, NULL);
        glm_logits_processor l2;
        glm_constraint_processor(&q, &l2);
        void *s2 = l2.create(l2.ctx, 0);
        ck_assert_int_eq(allowed(&l2, s2, row, &last), 1);
        ck_assert_int_eq(last, THINK_END);
        l2.destroy(s2);
        l2.release(l2.ctx);
    }
    free(row);
    lp.release(lp.ctx);
}
END_TEST

START_TEST(grammar_after_reasoning)
{
    glm_constraint_params p = params(1, -1, "root ::= \"{\" [a-z]* \"}\"");
    glm_logits_processor lp;
    glm_constraint_processor(&p, &lp);
    void *st = lp.create(lp.ctx, 0);
    float *row = malloc(sizeof(float) * (size_t)vocab);
    int32_t last;
    /* inside the reasoning: everything but end-of-sequence */
    ck_assert_int_eq(allowed(&lp, st, row, &last), vocab - 3);
    ck_assert(row[EOS] == -INFINITY);
    /* "</think>" spelled in ordinary tokens ends the reasoning at its last byte */
    int32_t *pieces = NULL;
    size_t np = 0;
    char err[GLM_ERRLEN];
    ck_assert(glm_tok_encode(tok, "</think>", 8, 0, &pieces, &np, err, sizeof err) == GLM_OK);
    ck_assert_int_gt(np, 1);
    for (size_t k = 0; k + 1 < np; k++) {
        lp.accept(st, pieces[k]);
        ck_assert(allowed(&lp, st, row, &last) == vocab - 3); /* still reasoning */
    }
    lp.accept(st, pieces[np - 1]);
    free(pieces);
    /* the answer: only tokens that start "{", and no eos */
    int n = allowed(&lp, st, row, &last);
    ck_assert_int_gt(n, 0);
    for (int i = 0; i < vocab; i++) {
        size_t l = 0;
        const char *b = glm_tok_token_bytes(tok, i, &l);
        int ok = b && l > 0 && !glm_tok_is_added(tok, i) && b[0] == '{' && l >= 1;
        if (ok) /* "{" followed by letters and at most one "}" at the end */
            for (size_t k = 1; k < l; k++)
                if (!((b[k] >= 'a' && b[k] <= 'z') || (b[k] == '}' && k == l - 1)))
                    ok = 0;
        ck_assert_msg((row[i] != -INFINITY) == ok, "token %d", i);
    }
    lp.accept(st, id_of("{"));
    ck_assert(row[EOS] == -INFINITY);
    lp.accept(st, id_of("a"));
    allowed(&lp, st, row, &last);
    ck_assert(row[EOS] == -INFINITY);
    ck_assert(row[id_of("}")] == 0.0f);
    lp.accept(st, id_of("}"));
    /* complete and nothing can follow: only the eos ids */
    ck_assert_int_eq(allowed(&lp, st, row, &last), 3);
    ck_assert(row[4036] == 0.0f && row[4043] == 0.0f && row[4045] == 0.0f);
    lp.destroy(st);
    free(row);
    lp.release(lp.ctx);
}
END_TEST

START_TEST(forbid_and_end_after)
{
    glm_constraint_params p = params(0, -1, NULL);
    p.forbid = TOOL_CALL;
    p.end_after = "</tool_call>";
    glm_logits_processor lp;
    glm_constraint_processor(&p, &lp);
    void *st = lp.create(lp.ctx, 0);
    float *row = malloc(sizeof(float) * (size_t)vocab);
    int32_t last;
    ck_assert_int_eq(allowed(&lp, st, row, &last), vocab - 1);
    ck_assert(row[TOOL_CALL] == -INFINITY);
    lp.accept(st, 4060); /* </tool_call> */
    ck_assert_int_eq(allowed(&lp, st, row, &last), 3);
    lp.destroy(st);
    free(row);
    lp.release(lp.ctx);
}
END_TEST

/* Greedy decoding on random logits under a JSON-ish grammar always ends in a
 * sentence of the grammar (or runs out of steps while still a prefix). */
START_TEST(greedy_under_mask_is_valid)
{
    const char *g = "root ::= \"[\" ( num ( \",\" num ){0,5} )? \"]\"\nnum ::= \"-\"? [1-9] [0-9]{0,3}";
    glm_constraint_params p = params(0, -1, g);
    glm_grammar *check = glm_grammar_parse(g, strlen(g), "root", NULL, 0);
    glm_logits_processor lp;
    glm_constraint_processor(&p, &lp);
    float *row = malloc(sizeof(float) * (size_t)vocab);
    uint64_t x = 12345;
    for (int trial = 0; trial < 30; trial++) {
        void *st = lp.create(lp.ctx, trial);
        char text[4096];
        size_t tl = 0;
        int ended = 0;
        for (int step = 0; step < 200 && !ended; step++) {
            for (int i = 0; i < vocab; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                row[i] = (float)(x % 1000) / 10.0f;
            }
            ck_assert_int_eq(lp.apply(st, row, vocab, NULL, 0), 0);
            int best = -1;
            for (int i = 0; i < vocab; i++)
                if (row[i] != -INFINITY && (best < 0 || row[i] > row[best]))
                    best = i;
            ck_assert_int_ge(best, 0);
            lp.accept(st, best);
            if (best == 4036 || best == 4043 || best == 4045) {
                ended = 1;
            } else {
                size_t l;
                const char *b = glm_tok_token_bytes(tok, best, &l);
                ck_assert(tl + l < sizeof text);
                memcpy(text + tl, b, l);
                tl += l;
            }
        }
        ck_assert_msg(ended, "no end after 200 steps: %.*s", (int)tl, text);
        ck_assert_msg(glm_grammar_matches(check, text, tl), "not a sentence: %.*s", (int)tl, text);
        lp.destroy(st);
    }
    free(row);
    glm_grammar_free(check);
    lp.release(lp.ctx);
}
END_TEST

/* With tool calls constrained, <tool_call> inside the reasoning ends it (as the
 * output parser reads it) and is the grammar's first text. */
START_TEST(tool_call_ends_reasoning)
{
    glm_constraint_params p = params(1, -1, "root ::= \"<tool_call>f</tool_call>\"");
    p.think_end_alt = "<tool_call>";
    glm_logits_processor lp;
    glm_constraint_processor(&p, &lp);
    void *st = lp.create(lp.ctx, 0);
    float *row = malloc(sizeof(float) * (size_t)vocab);
    int32_t last;
    ck_assert_int_eq(allowed(&lp, st, row, &last), vocab - 3); /* reasoning, eos forbidden */
    lp.accept(st, 81);
    lp.accept(st, TOOL_CALL); /* <tool_call>: the answer starts with it */
    ck_assert_int_eq(allowed(&lp, st, row, &last), 1);
    ck_assert_int_eq(last, id_of("f"));
    lp.accept(st, last);
    /* </tool_call> in ordinary tokens (this trie has no added tokens), then only eos */
    int steps = 0, n;
    while ((n = allowed(&lp, st, row, &last)) != 3) {
        ck_assert_int_ge(n, 1);
        ck_assert(row[4036] == -INFINITY);
        lp.accept(st, last);
        ck_assert_int_lt(++steps, 13);
    }
    ck_assert_int_gt(steps, 0);
    lp.destroy(st);
    free(row);
    lp.release(lp.ctx);
}
END_TEST

/* A grammar whose steps grow past GLM_CONSTRAINT_COSTLY_STEP work units
 * (ambiguous nested repetitions: the parse stacks multiply with every
 * letter) is stopped at the mask after its (GLM_CONSTRAINT_MAX_COSTLY + 1)th
 * costly step. Work is counted, not time, so it stops at the same step
 * however slow or loaded the machine is. */
START_TEST(costly_grammar_stops)
{
    glm_constraint_params p = params(0, -1, "root ::= ([a-z ]{0,300}){0,300} \"!\"");
    glm_logits_processor lp;
    glm_constraint_processor(&p, &lp);
    float *row = malloc(sizeof(float) * (size_t)vocab);
    int32_t t = id_of("the");
    int first = -1;
    for (int run = 0; run < 2; run++) {
        void *st = lp.create(lp.ctx, 0);
        char err[GLM_ERRLEN] = "";
        int masks = 0, rc = 0;
        while (masks < 20) {
            for (int i = 0; i < vocab; i++)
                row[i] = 0.0f;
            rc = lp.apply(st, row, vocab, err, sizeof err);
            if (rc != 0)
                break;
            masks++;
            ck_assert(row[t] == 0.0f);
            lp.accept(st, t);
        }
        ck_assert_int_eq(rc, -1);
        ck_assert_msg(strstr(err, "too costly") != NULL && strstr(err, "3 steps took more than"), "%s", err);
        ck_assert_int_lt(masks, 20);
        if (run == 0)
            first = masks;
        else
            ck_assert_int_eq(masks, first); /* the same step again */
        lp.destroy(st);
    }
    /* an ordinary grammar on the same tokens never comes near the limit */
    glm_constraint_params q = params(0, -1, "root ::= (\"the\" | \" \")* \"!\"");
    glm_logits_processor l2;
    glm_constraint_processor(&q, &l2);
    void *s2 = l2.create(l2.ctx, 0);
    int32_t last;
    for (int i = 0; i < 50; i++) {
        ck_assert_int_ge(allowed(&l2, s2, row, &last), 2);
        l2.accept(s2, t);
    }
    l2.destroy(s2);
    l2.release(l2.ctx);
    free(row);
    lp.release(lp.ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("constraint");
    TCase *tc = tcase_create("constraint");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, budget_forces_think_end);
    tcase_add_test(tc, grammar_after_reasoning);
    tcase_add_test(tc, forbid_and_end_after);
    tcase_add_test(tc, greedy_under_mask_is_valid);
    tcase_add_test(tc, tool_call_ends_reasoning);
    tcase_add_test(tc, costly_grammar_stops);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
