/*
 * test_parity.c - the CPU engine against Hugging Face transformers.
 *
 * Goldens (tests/golden/tiny, written by tests/golden/make_goldens.py) hold the
 * logits transformers computed on models/tiny and its BF16 and FP8 copies: every
 * position of a 40-token prompt (longer than the model's index_topk of 16, so
 * DSA really drops tokens) and 32 greedy steps. The engine must agree within
 * max|dlogit| <= 1e-4 * max|logit| per row and pick the same greedy ids.
 * It also checks batch invariance: chunked prefill and mixed batches give
 * bitwise the logits of a lone, one-shot run.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/runner.h"
#include "core/util.h"
#include "testutil.h"

#define GOLDEN "tests/golden/tiny"
#define REL_TOL 1e-4f

static int read_ids(const char *path, int **ids)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    int cap = 64, n = 0, v;
    *ids = malloc(sizeof(int) * cap);
    while (fscanf(f, "%d", &v) == 1) {
        if (n == cap)
            *ids = realloc(*ids, sizeof(int) * (cap *= 2));
        (*ids)[n++] = v;
        if (fgetc(f) != ',')
            break;
    }
    fclose(f);
    return n;
}

static float *read_rows(const char *path, int rows, int vocab)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    float *x = malloc(sizeof(float) * (size_t)rows * vocab);
    size_t got = fread(x, sizeof(float), (size_t)rows * vocab, f);
    fclose(f);
    ck_assert_msg(got == (size_t)rows * vocab, "%s: %zu floats, expected %d", path, got, rows * vocab);
    return x;
}

/* max |a - b| relative to max |b| over one row */
static float row_err(const float *a, const float *b, int n)
{
    float d = 0, mx = 0;
    for (int i = 0; i < n; i++) {
        d = fmaxf(d, fabsf(a[i] - b[i]));
        mx = fmaxf(mx, fabsf(b[i]));
        if (isnan(a[i]))
            return INFINITY;
    }
    return d / mx;
}

static glm_model *load(const char *variant)
{
    char path[512], err[GLM_ERRLEN];
    snprintf(path, sizeof path, "%s/%s", test_models_dir(), variant);
    glm_model *m = glm_model_load(path, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    return m;
}

/* Prefill the prompt (in chunks of `chunk`, 0 = at once), then decode the golden
 * greedy ids; compare every step's logits with the golden rows. */
static void check_variant(const char *model, const char *variant, int chunk, float *worst)
{
    char path[512], err[GLM_ERRLEN];
    glm_model *m = load(model);
    int V = m->cfg.vocab_size;
    int *prompt, *greedy;
    int np = read_ids(GOLDEN "/prompt.txt", &prompt);
    snprintf(path, sizeof path, GOLDEN "/%s.greedy.txt", variant);
    int ng = read_ids(path, &greedy);
    ck_assert_int_eq(np, 40);
    ck_assert_int_eq(ng, 32);
    snprintf(path, sizeof path, GOLDEN "/%s.steps.f32", variant);
    float *gold = read_rows(path, ng, V);
    float *gprompt = strcmp(variant, "f32") == 0 ? read_rows(GOLDEN "/f32.prompt.f32", np, V) : NULL;

    glm_runner *r = glm_runner_create(m, np + ng, 16, 0, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    glm_seq seq = {0}, *sp = &seq;
    float *logits = malloc(sizeof(float) * (size_t)np * V);
    int32_t toks[128];
    for (int i = 0; i < np; i++)
        toks[i] = prompt[i];
    for (int i = 0; i < ng; i++)
        toks[np + i] = greedy[i];

    int done = 0;
    while (done < np) {
        int nn = chunk ? GLM_MIN(chunk, np - done) : np;
        const int32_t *tp = toks + done;
        ck_assert_msg(glm_runner_step(r, 1, &sp, &tp, &nn, 1, logits, err, sizeof err) == GLM_OK, "%s", err);
        if (gprompt) {
            for (int i = 0; i < nn; i++) {
                float e = row_err(logits + (size_t)i * V, gprompt + (size_t)(done + i) * V, V);
                ck_assert_msg(e <= REL_TOL, "%s prompt position %d: relative error %g", variant, done + i, e);
                *worst = fmaxf(*worst, e);
            }
        }
        done += nn;
    }
    /* the last prefill row is row 0 of the steps */
    int lastrow = chunk ? (np - 1) % chunk : np - 1;
    float *row = malloc(sizeof(float) * V);
    memcpy(row, logits + (size_t)lastrow * V, sizeof(float) * V);
    for (int s = 0; s < ng; s++) {
        float e = row_err(row, gold + (size_t)s * V, V);
        ck_assert_msg(e <= REL_TOL, "%s step %d: relative error %g", variant, s, e);
        *worst = fmaxf(*worst, e);
        ck_assert_msg(glm_argmax(row, V) == greedy[s], "%s step %d: greedy id %d, transformers %d", variant, s,
                      glm_argmax(row, V), greedy[s]);
        if (s + 1 < ng) {
            const int32_t *tp = toks + np + s;
            int one = 1;
            ck_assert_msg(glm_runner_step(r, 1, &sp, &tp, &one, 0, row, err, sizeof err) == GLM_OK, "%s", err);
        }
    }
    glm_seq_release(r, &seq);
    ck_assert_int_eq(r->kv->n_free, r->kv->num_blocks);
    glm_runner_free(r);
    glm_model_free(m);
    free(prompt);
    free(greedy);
    free(gold);
    free(gprompt);
    free(logits);
    free(row);
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

/* A sequence's logits are bitwise the same alone, chunked, or batched with
 * other sequences at other positions. */
START_TEST(batch_invariance)
{
    char err[GLM_ERRLEN];
    glm_model *m = load("tiny");
    int V = m->cfg.vocab_size;
    int *prompt;
    int np = read_ids(GOLDEN "/prompt.txt", &prompt);
    int32_t toks[64];
    for (int i = 0; i < np; i++)
        toks[i] = prompt[i];
    glm_runner *r = glm_runner_create(m, 4 * 64, 4, 2, err, sizeof err);
    ck_assert(r != NULL);

    /* A alone: all 40 at once, logits of every position */
    float *alone = malloc(sizeof(float) * (size_t)np * V);
    glm_seq a = {0}, *ap = &a;
    const int32_t *tp = toks;
    int n = np;
    ck_assert(glm_runner_step(r, 1, &ap, &tp, &n, 1, alone, err, sizeof err) == GLM_OK);
    glm_seq_release(r, &a);

    /* A in pieces of 1..9 tokens, batched with B (a prefix at other positions)
     * and C (decoding one token at a time) */
    glm_seq s[3] = {{0}}, *sp[3] = {&s[0], &s[1], &s[2]};
    float *out = malloc(sizeof(float) * (size_t)(np + 64) * V);
    int pa = 0, pb = 0, pc = 0, piece = 1;
    while (pa < np) {
        int na = GLM_MIN(piece, np - pa), nb = GLM_MIN(3, np - pb), nc = 1;
        if (pb >= np)
            pb = 0, glm_seq_release(r, &s[1]), nb = 3;
        if (pc >= np)
            pc = 0, glm_seq_release(r, &s[2]);
        const int32_t *tt[3] = {toks + pa, toks + pb, toks + pc};
        int nn[3] = {na, nb, nc};
        ck_assert_msg(glm_runner_step(r, 3, sp, tt, nn, 1, out, err, sizeof err) == GLM_OK, "%s", err);
        ck_assert_msg(memcmp(out, alone + (size_t)pa * V, sizeof(float) * (size_t)na * V) == 0,
                      "logits of positions %d..%d differ from the lone run", pa, pa + na - 1);
        ck_assert(memcmp(out + (size_t)na * V, alone + (size_t)pb * V, sizeof(float) * (size_t)nb * V) == 0);
        ck_assert(memcmp(out + (size_t)(na + nb) * V, alone + (size_t)pc * V, sizeof(float) * V) == 0);
        pa += na;
        pb += nb;
        pc += 1;
        piece = piece % 9 + 1;
    }
    for (int i = 0; i < 3; i++)
        glm_seq_release(r, &s[i]);
    ck_assert_int_eq(r->kv->n_free, r->kv->num_blocks);
    glm_runner_free(r);
    glm_model_free(m);
    free(prompt);
    free(alone);
    free(out);
}
END_TEST

/* A bad token id is an error, not a crash, and leaves the sequence untouched. */
START_TEST(bad_token)
{
    char err[GLM_ERRLEN];
    glm_model *m = load("tiny");
    glm_runner *r = glm_runner_create(m, 64, 16, 1, err, sizeof err);
    glm_seq s = {0}, *sp = &s;
    int32_t toks[2] = {1, m->cfg.vocab_size};
    const int32_t *tp = toks;
    int n = 2;
    float *lg = malloc(sizeof(float) * m->cfg.vocab_size);
    ck_assert(glm_runner_step(r, 1, &sp, &tp, &n, 0, lg, err, sizeof err) == GLM_ERR);
    ck_assert_msg(strstr(err, "outside the vocabulary") != NULL, "%s", err);
    ck_assert_int_eq(s.len, 0);
    ck_assert_int_eq(r->kv->n_free, r->kv->num_blocks);
    toks[1] = 2;
    ck_assert(glm_runner_step(r, 1, &sp, &tp, &n, 0, lg, err, sizeof err) == GLM_OK);
    glm_seq_release(r, &s);
    glm_runner_free(r);
    glm_model_free(m);
    free(lg);
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
    tcase_add_test(tc, batch_invariance);
    tcase_add_test(tc, bad_token);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
