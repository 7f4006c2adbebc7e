/*
 * test_cuda_mtp.c - the CUDA backend's draft (the MTP layer, speculative decoding's draft
 * layer: model.h glm_mtp, backend.h glm_backend_ops.draft), through the model runner, on the
 * tiny checkpoints. Built against the CPU execution layer (tests/cuda_cpu/) in `make test`, and
 * against a real device by tests/gpu/run.sh.
 *
 *  - --dtype float32 on tiny and tiny-bf16: held to the MTP goldens of
 *    tests/golden/make_mtp_goldens.py as the CPU backend is (tests/unit/test_mtp.c): the draft
 *    over the 40-token prompt and one chained draft, 41 rows within F32_TOL x max|logit|, the
 *    chained token the reference's.
 *  - the default dtype (BF16 or FP8 weights, BF16 KV cache) against the CPU backend's draft,
 *    both fed the CPU's greedy ids: the draft over the prompt, three chained drafts, then five
 *    decode steps each followed by a draft from the forward and a chained one (53 rows). BF16
 *    on tiny-wide-bf16 (choices far from ties) as the forward is held: every row within BF16_TOL
 *    x max|logit| and every greedy id the same, against the CPU backend's emulation of the CUDA
 *    rounding points and against float32. FP8 (tiny-fp8, tiny-wide-fp8): the draft carries the
 *    forward's e4m3 rounding-boundary crossings on, amplified (see check_fp8), so the rows whose
 *    inputs agree are held to EXACT_TOL (as BF16's against the emulation) and the greedy ids to
 *    90%. tiny-bf16, whose forward already moves a router choice, is printed.
 *  - decode graphs with a draft layer: three sequences decoding together, each step followed by
 *    a draft from it, graphs on (padded shapes; eager on the CPU layer, captured on a GPU) and
 *    off: the same rows.
 *  - refusals: tensor parallelism with the MTP layer, hidden rows the last step does not have,
 *    a draft in a backend created without the layer.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "sched/block_manager.h"
#include "sched/model_runner.h"
#include "tests/unit/golden.h"
#include "tests/unit/testutil.h"

#define GOLDEN "tests/golden/tiny"
#define NP 40
#define F32_TOL 2e-5f  /* --dtype float32 against the goldens (test_mtp.c's tolerance for the CPU) */
#define BF16_TOL 2e-2f /* default dtype against the CPU backend: every row (tiny-wide) */
#define N_CHAIN 3      /* chained drafts after the draft over the prompt */
#define N_DECODE 5     /* decode steps, each followed by a draft and a chained draft */
#define MAX_ROWS (NP + N_CHAIN + 2 * N_DECODE)

static glm_runner *runner_for(const glm_model *m, glm_backend_kind kind, glm_compute_dtype dt, int draft_layers)
{
    char err[GLM_ERRLEN];
    glm_runner_params rp;
    glm_runner_params_default(&rp);
    rp.backend = kind;
    rp.dtype = dt;
    rp.cuda_graphs = 0;
    rp.block_size = 16;
    rp.max_num_batched_tokens = 64;
    rp.max_num_seqs = 2;
    rp.max_logits_rows = 64;
    rp.max_model_len = 128;
    rp.kv_cache_tokens = 128;
    rp.n_threads = 1;
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

static int32_t argmax(const float *v, int n)
{
    int32_t b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b])
            b = i;
    return b;
}

/* One sequence on one runner with the MTP layer. */
typedef struct {
    glm_runner *r;
    glm_block_manager *bm;
    glm_sequence *seq;
} run;

static run run_start(const glm_model *m, glm_backend_kind kind, glm_compute_dtype dt, const int *prompt)
{
    run x;
    x.r = runner_for(m, kind, dt, 1);
    const glm_batch_limits *l = &glm_runner_info(x.r)->limits;
    x.bm = glm_bm_create(l->num_blocks, l->block_size, 0);
    x.seq = glm_seq_create(0, prompt, NP, 16);
    return x;
}

static void run_free(run *x)
{
    glm_bm_release(x->bm, &x->seq->table);
    glm_seq_free(x->seq);
    glm_bm_free(x->bm);
    glm_runner_free(x->r);
}

/* Runs the forward of the sequence's n uncomputed tokens; out [V] gets the last one's logits. */
static void run_forward(run *x, int n, float *out)
{
    char err[GLM_ERRLEN];
    ck_assert_msg(glm_runner_step_seqs(x->r, x->bm, &x->seq, &n, 1, 0, err, sizeof err) == GLM_OK, "%s", err);
    get_logits(x->r, 1, out);
}

/* A draft of n rows from position pos (tokens, hidden rows of `from`); out [n or 1, V] gets
 * every row's logits (all) or the last row's. */
static void run_draft(run *x, int pos, int n, const int32_t *tokens, const int32_t *rows, glm_draft_source from,
                      int all, float *out)
{
    char err[GLM_ERRLEN];
    glm_draft_seq d = {x->seq, pos, n, tokens, rows, 1};
    ck_assert_msg(glm_runner_draft(x->r, &d, 1, from, all, err, sizeof err) == GLM_OK, "%s", err);
    get_logits(x->r, all ? n : 1, out);
}

/* ---- --dtype float32 against the MTP goldens ------------------------------------------ */

static void check_goldens(const char *model, const char *variant)
{
    char path[512], mdir[512], err[GLM_ERRLEN];
    glm_model *m = test_load_model(model);
    ck_assert_msg(m->mtp != NULL, "%s: no MTP layer bound", model);
    int V = m->cfg.vocab_size, *prompt, *greedy;
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

    run x = run_start(m, GLM_BACKEND_CUDA, GLM_COMPUTE_F32, prompt);
    float *logits = malloc(sizeof(float) * (size_t)NP * V);
    run_forward(&x, NP, logits);
    ck_assert_int_eq(argmax(logits, V), greedy[0]);

    /* the draft over the prompt: row p reads the forward's row p and the token at p + 1 */
    int32_t next[NP], rows[NP];
    for (int p = 0; p < NP; p++) {
        next[p] = p + 1 < NP ? prompt[p + 1] : greedy[0];
        rows[p] = p;
    }
    run_draft(&x, 0, NP, next, rows, GLM_DRAFT_FROM_FORWARD, 1, logits);
    float worst = 0;
    for (int p = 0; p < NP; p++) {
        float e = golden_row_err(logits + (size_t)p * V, gold + (size_t)p * V, (size_t)V);
        ck_assert_msg(e <= F32_TOL, "%s MTP row %d: relative error %g", variant, p, e);
        worst = fmaxf(worst, e);
    }
    int32_t d1 = argmax(logits + (size_t)(NP - 1) * V, V);
    ck_assert_msg(d1 == chained, "%s: chained draft token %d, the reference's %d", variant, d1, chained);

    /* chained: position 40 reads the draft's own output at row 39 */
    int32_t row39 = NP - 1;
    run_draft(&x, NP, 1, &d1, &row39, GLM_DRAFT_FROM_DRAFT, 0, logits);
    float e = golden_row_err(logits, gold + (size_t)NP * V, (size_t)V);
    ck_assert_msg(e <= F32_TOL, "%s chained MTP row: relative error %g", variant, e);
    worst = fmaxf(worst, e);
    printf("cuda f32 mtp %s: worst relative logit error %.3g over %d rows (tolerance %g)\n", variant, worst,
           NP + 1, F32_TOL);

    /* hidden rows the last step does not have: 400, nothing run, the logits kept */
    int32_t bad = 1;
    glm_draft_seq d3 = {x.seq, NP, 1, &d1, &bad, 1};
    ck_assert_int_eq(glm_runner_draft(x.r, &d3, 1, GLM_DRAFT_FROM_DRAFT, 0, err, sizeof err), GLM_BAD_BATCH);
    ck_assert_msg(strstr(err, "hidden row 1 of the last draft, which has 1"), "%s", err);
    bad = NP;
    ck_assert_int_eq(glm_runner_draft(x.r, &d3, 1, GLM_DRAFT_FROM_FORWARD, 0, err, sizeof err), GLM_BAD_BATCH);
    ck_assert_msg(strstr(err, "hidden row 40 of the last forward, which has 40"), "%s", err);

    run_free(&x);
    glm_model_free(m);
    json_decref(meta);
    free(prompt);
    free(greedy);
    free(gold);
    free(logits);
}

START_TEST(f32_mtp_goldens)
{
    check_goldens("tiny", "f32");
}
END_TEST

START_TEST(f32_mtp_goldens_bf16_checkpoint)
{
    check_goldens("tiny-bf16", "bf16");
}
END_TEST

/* ---- the default dtype against the CPU backend's draft ------------------------------------ */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The draft rows of one comparison. */
typedef struct {
    float errs[MAX_ROWS]; /* every draft row's max|dlogit| / max|logit|, sorted */
    int n, agree;         /* rows, rows whose greedy ids agree */
    int n_exact;          /* rows whose inputs agree: every forward row at a position up to theirs
                             within EXACT_INPUT of the CPU's */
    float exact_max;      /* the largest error among those */
} cmp_result;

#define EXACT_INPUT 1e-5f /* forward rows this close count as the same input (CPU layer: ~7e-8) */
#define EXACT_TOL 1e-3f   /* a draft row whose inputs agree, in the CPU backend's emulation */

/*
 * The CUDA backend in its default dtype and the CPU backend in cpu_dtype, fed the same ids (the
 * CPU's greedy ones): the prompt, the draft over it, N_CHAIN chained drafts, then N_DECODE decode
 * steps, each followed by a draft from the forward and a chained draft (the speculative decoding
 * loop with one draft token verified per step). A draft row at position p reads the forward's
 * rows at positions up to p (its own, and through the MTP layer's cache the earlier ones), so
 * the forward's row errors are tracked by position to tell the rows whose inputs agree.
 */
static void against_cpu(const char *model, glm_compute_dtype cpu_dtype, cmp_result *r)
{
    char err[GLM_ERRLEN];
    glm_model *m = test_load_model(model);
    ck_assert_msg(m->mtp != NULL, "%s: no MTP layer bound", model);
    int V = m->cfg.vocab_size, *prompt;
    ck_assert_int_eq(golden_read_ids(GOLDEN "/prompt.txt", &prompt), NP);
    run cu = run_start(m, GLM_BACKEND_CUDA, GLM_COMPUTE_AUTO, prompt);
    run cpu = run_start(m, GLM_BACKEND_CPU, cpu_dtype, prompt);
    float *a = malloc(sizeof(float) * (size_t)NP * V), *b = malloc(sizeof(float) * (size_t)NP * V);
    float fwd[NP + N_DECODE]; /* the forward's row error at each position, so far */
    int n_fwd = 0;
    memset(r, 0, sizeof *r);
#define COMPARE(rows, pos0)                                                                                         \
    do {                                                                                                            \
        for (int i_ = 0; i_ < (rows); i_++) {                                                                       \
            float e_ = golden_row_err(a + (size_t)i_ * V, b + (size_t)i_ * V, (size_t)V), in_ = 0;                  \
            for (int p_ = 0; p_ <= (pos0) + i_ && p_ < n_fwd; p_++)                                                 \
                in_ = fmaxf(in_, fwd[p_]);                                                                          \
            if (in_ <= EXACT_INPUT) {                                                                               \
                r->n_exact++;                                                                                       \
                r->exact_max = fmaxf(r->exact_max, e_);                                                             \
            }                                                                                                       \
            r->errs[r->n++] = e_;                                                                                   \
            r->agree += argmax(a + (size_t)i_ * V, V) == argmax(b + (size_t)i_ * V, V);                             \
        }                                                                                                           \
    } while (0)

    /* the prompt with every row's logits: the forward's errors by position */
    int nn = NP;
    ck_assert_msg(glm_runner_step_seqs(cu.r, cu.bm, &cu.seq, &nn, 1, 1, err, sizeof err) == GLM_OK, "%s", err);
    get_logits(cu.r, NP, a);
    nn = NP;
    ck_assert_msg(glm_runner_step_seqs(cpu.r, cpu.bm, &cpu.seq, &nn, 1, 1, err, sizeof err) == GLM_OK, "%s", err);
    get_logits(cpu.r, NP, b);
    for (int p = 0; p < NP; p++)
        fwd[n_fwd++] = golden_row_err(a + (size_t)p * V, b + (size_t)p * V, (size_t)V);
    int32_t tok = argmax(b + (size_t)(NP - 1) * V, V); /* the main model's next token */

    int32_t next[NP], rows[NP];
    for (int p = 0; p < NP; p++) {
        next[p] = p + 1 < NP ? prompt[p + 1] : tok;
        rows[p] = p;
    }
    run_draft(&cu, 0, NP, next, rows, GLM_DRAFT_FROM_FORWARD, 1, a);
    run_draft(&cpu, 0, NP, next, rows, GLM_DRAFT_FROM_FORWARD, 1, b);
    COMPARE(NP, 0);
    int32_t d = argmax(b + (size_t)(NP - 1) * V, V), src = NP - 1;
    for (int k = 0; k < N_CHAIN; k++) {
        run_draft(&cu, NP + k, 1, &d, &src, GLM_DRAFT_FROM_DRAFT, 0, a);
        run_draft(&cpu, NP + k, 1, &d, &src, GLM_DRAFT_FROM_DRAFT, 0, b);
        COMPARE(1, NP + k);
        d = argmax(b, V);
        src = 0;
    }
    for (int s = 0; s < N_DECODE; s++) {
        int pos = NP + s, row0 = 0;
        glm_seq_append(cu.seq, tok);
        glm_seq_append(cpu.seq, tok);
        run_forward(&cu, 1, a);
        run_forward(&cpu, 1, b);
        fwd[n_fwd++] = golden_row_err(a, b, (size_t)V);
        tok = argmax(b, V);
        run_draft(&cu, pos, 1, &tok, &row0, GLM_DRAFT_FROM_FORWARD, 0, a);
        run_draft(&cpu, pos, 1, &tok, &row0, GLM_DRAFT_FROM_FORWARD, 0, b);
        COMPARE(1, pos);
        d = argmax(b, V);
        run_draft(&cu, pos + 1, 1, &d, &row0, GLM_DRAFT_FROM_DRAFT, 0, a);
        run_draft(&cpu, pos + 1, 1, &d, &row0, GLM_DRAFT_FROM_DRAFT, 0, b);
        COMPARE(1, pos + 1);
    }
#undef COMPARE
    ck_assert_int_eq(r->n, MAX_ROWS);
    qsort(r->errs, (size_t)r->n, sizeof r->errs[0], cmp_float);
    float *fs = fwd;
    qsort(fs, (size_t)n_fwd, sizeof *fs, cmp_float);
    printf("cuda default dtype mtp %s against the CPU backend's draft %s: forward rows max %.3g; draft rows "
           "median %.3g, 90th percentile %.3g, max %.3g; greedy ids agree on %d of %d; the %d rows whose inputs "
           "agree (forward rows within %g) differ by at most %.3g\n",
           model, cpu_dtype == GLM_COMPUTE_F32 ? "in float32" : "in the same dtype (its emulation)", fs[n_fwd - 1],
           r->errs[r->n / 2], r->errs[r->n * 9 / 10], r->errs[r->n - 1], r->agree, r->n, r->n_exact, EXACT_INPUT,
           r->exact_max);
    fflush(stdout);
    run_free(&cu);
    run_free(&cpu);
    glm_model_free(m);
    free(prompt);
    free(a);
    free(b);
}

/*
 * The draft rows whose inputs agree (the first positions of the prompt, before the forward's
 * first rounding-boundary crossing) against the CPU backend's emulation, which rounds where the
 * CUDA backend does: within EXACT_TOL, as the forward's first layer (test_cuda_backend.c:
 * check_against_cpu). A rounding point of the MTP layer left out shows there (its decoder layer's
 * GEMM inputs left in float32: 4.0e-3 on tiny-wide-bf16, against 4.7e-4 measured).
 */
static void check_exact(const char *model, const cmp_result *r)
{
    ck_assert_msg(r->n_exact >= 1, "%s: no draft row whose inputs agree", model);
    ck_assert_msg(r->exact_max <= EXACT_TOL, "%s: a draft row whose inputs agree differs by %g", model, r->exact_max);
}

/* BF16 on tiny-wide (choices far from ties): every row within BF16_TOL and every greedy id the
 * same, as the forward (test_cuda_backend.c: wide_against_cpu). */
static void check_wide_bf16(glm_compute_dtype cpu_dtype)
{
    cmp_result r;
    against_cpu("tiny-wide-bf16", cpu_dtype, &r);
    if (cpu_dtype == GLM_COMPUTE_BF16)
        check_exact("tiny-wide-bf16", &r);
    ck_assert_msg(r.errs[r.n - 1] <= BF16_TOL, "a draft row differs by %g (of its max|logit|), more than %g",
                  r.errs[r.n - 1], BF16_TOL);
    ck_assert_msg(r.agree == r.n, "greedy ids agree on %d of %d draft rows", r.agree, r.n);
}

START_TEST(bf16_against_cpu)
{
    check_wide_bf16(GLM_COMPUTE_BF16);
    check_wide_bf16(GLM_COMPUTE_F32);
}
END_TEST

/*
 * FP8: the GEMM inputs are e4m3 (3 mantissa bits) per 1 x 128, so a float32-level difference
 * that lands across a rounding boundary moves a value by up to 1/16, and its group's scale with
 * it. In the forward such a crossing stays within ~2e-2 of a row on tiny-wide-fp8; the draft
 * reads the forward's hidden rows through hnorm and eh_proj (whose inputs are quantised again)
 * and through its cache every earlier position's, and carries one crossing of the forward
 * (tiny-wide-fp8: at position 18) into every later draft row at 1e-2 .. 7e-2. So the draft is held
 * where its inputs agree (check_exact: measured ~1e-7, 4e-5 where a crossing is the MTP layer's
 * own), and everywhere by the greedy ids (at least 90%).
 */
static void check_fp8(const char *model)
{
    cmp_result r;
    against_cpu(model, GLM_COMPUTE_BF16, &r);
    check_exact(model, &r);
    ck_assert_msg(r.agree * 10 >= r.n * 9, "%s: greedy ids agree on %d of %d draft rows", model, r.agree, r.n);
}

START_TEST(fp8_against_cpu)
{
    check_fp8("tiny-fp8");
    check_fp8("tiny-wide-fp8");
}
END_TEST

/*
 * tiny-bf16 amplifies rounding: a float32-level difference across a BF16 boundary already moves
 * a router choice in its forward (test_cuda_backend.c: check_against_cpu), and the draft reads
 * the forward's hidden states: printed, not bounded.
 */
START_TEST(tiny_bf16_printed)
{
    cmp_result r;
    against_cpu("tiny-bf16", GLM_COMPUTE_BF16, &r);
}
END_TEST

/* ---- decode graphs with a draft layer --------------------------------------------------- */

/*
 * Three sequences of different lengths decode together, each step followed by a draft of the
 * three from the forward's rows; with graphs on, a step of 3 runs padded to 4 (on the CPU
 * layer, which refuses capture, eagerly): the final hidden rows the draft reads must be the
 * real sequences' (float32, so any difference is a padding bug). out [steps, 2, 3, V]: the
 * forward's rows, then the draft's.
 */
static void decode_three(const glm_model *m, int graphs, float *out, int steps)
{
    char err[GLM_ERRLEN];
    int V = m->cfg.vocab_size, *prompt;
    ck_assert_int_eq(golden_read_ids(GOLDEN "/prompt.txt", &prompt), NP);
    glm_runner_params rp;
    glm_runner_params_default(&rp);
    rp.backend = GLM_BACKEND_CUDA;
    rp.dtype = GLM_COMPUTE_F32;
    rp.cuda_graphs = graphs;
    rp.block_size = 16;
    rp.max_num_batched_tokens = 64;
    rp.max_num_seqs = 4;
    rp.max_logits_rows = 4;
    rp.max_model_len = 128;
    rp.kv_cache_tokens = 3 * 64;
    rp.draft_layers = 1;
    glm_runner *r = glm_runner_create(m, &rp, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    const glm_batch_limits *l = &glm_runner_info(r)->limits;
    glm_block_manager *bm = glm_bm_create(l->num_blocks, l->block_size, 0);
    int lens[3] = {NP, 17, 5};
    glm_sequence *seqs[3];
    for (int i = 0; i < 3; i++) {
        seqs[i] = glm_seq_create(i, prompt + (NP - lens[i]), lens[i], steps);
        int nn = lens[i];
        ck_assert_msg(glm_runner_step_seqs(r, bm, &seqs[i], &nn, 1, 0, err, sizeof err) == GLM_OK, "%s", err);
    }
    for (int s = 0; s < steps; s++) {
        int ones[3] = {1, 1, 1};
        for (int i = 0; i < 3; i++)
            glm_seq_append(seqs[i], (int32_t)(100 + 7 * s + i));
        ck_assert_msg(glm_runner_step_seqs(r, bm, seqs, ones, 3, 0, err, sizeof err) == GLM_OK, "%s", err);
        float *o = out + (size_t)s * 6 * V;
        get_logits(r, 3, o);
        int32_t toks[3], rows[3];
        glm_draft_seq d[3];
        for (int i = 0; i < 3; i++) {
            toks[i] = (int32_t)(200 + 5 * s + i);
            rows[i] = i;
            d[i] = (glm_draft_seq){seqs[i], lens[i] + s, 1, &toks[i], &rows[i], 1};
        }
        ck_assert_msg(glm_runner_draft(r, d, 3, GLM_DRAFT_FROM_FORWARD, 0, err, sizeof err) == GLM_OK, "%s", err);
        get_logits(r, 3, o + (size_t)3 * V);
    }
    for (int i = 0; i < 3; i++) {
        glm_bm_release(bm, &seqs[i]->table);
        glm_seq_free(seqs[i]);
    }
    glm_bm_free(bm);
    glm_runner_free(r);
    free(prompt);
}

START_TEST(graph_padded_decode_with_draft)
{
    glm_model *m = test_load_model("tiny");
    int V = m->cfg.vocab_size, steps = 4;
    float *a = malloc(sizeof(float) * (size_t)steps * 6 * V), *b = malloc(sizeof(float) * (size_t)steps * 6 * V);
    decode_three(m, 1, a, steps);
    decode_three(m, 0, b, steps);
    float worst = 0;
    for (int i = 0; i < steps * 6; i++)
        worst = fmaxf(worst, golden_row_err(a + (size_t)i * V, b + (size_t)i * V, (size_t)V));
    printf("cuda decode graph shapes with drafts: worst relative logit difference against eager %.3g\n", worst);
    ck_assert_msg(worst <= 1e-6f, "padded decode or draft rows differ from eager ones by %g", worst);
    free(a);
    free(b);
    glm_model_free(m);
}
END_TEST

/* ---- refusals -------------------------------------------------------------------------- */

START_TEST(draft_refused)
{
    char err[GLM_ERRLEN];
    /* the CUDA backend's ranks do not hold the MTP layer: refused before any rank is made */
    glm_model *m = test_load_model("tiny-tp");
    ck_assert(m->mtp != NULL);
    glm_runner_params rp;
    glm_runner_params_default(&rp);
    rp.backend = GLM_BACKEND_CUDA;
    rp.max_num_batched_tokens = 16;
    rp.max_num_seqs = 1;
    rp.max_model_len = 64;
    rp.kv_cache_tokens = 64;
    rp.n_threads = 1;
    rp.tensor_parallel_size = 2;
    rp.draft_layers = 1;
    ck_assert(glm_runner_create(m, &rp, err, sizeof err) == NULL);
    printf("MTP at tensor parallel size 2: %s\n", err);
    ck_assert_msg(strstr(err, "CPU backend only") && strstr(err, "tensor parallelism (size 2)"), "%s", err);
    glm_model_free(m);

    /* a CUDA backend created without the layer has no draft; right after a forward, no draft rows */
    m = test_load_model("tiny");
    int32_t tok[2] = {5, 6}, row = 0;
    for (int layers = 0; layers <= 1; layers++) {
        glm_runner *r = runner_for(m, GLM_BACKEND_CUDA, GLM_COMPUTE_F32, layers);
        const glm_batch_limits *l = &glm_runner_info(r)->limits;
        glm_block_manager *bm = glm_bm_create(l->num_blocks, l->block_size, 0);
        glm_sequence *seq = glm_seq_create(0, tok, 2, 1);
        int n = 2;
        ck_assert_msg(glm_runner_step_seqs(r, bm, &seq, &n, 1, 0, err, sizeof err) == GLM_OK, "%s", err);
        glm_draft_seq d = {seq, 0, 1, &tok[1], &row, 1};
        ck_assert_int_eq(glm_runner_draft(r, &d, 1, GLM_DRAFT_FROM_DRAFT, 0, err, sizeof err), GLM_BAD_BATCH);
        ck_assert_msg(strstr(err, layers ? "hidden row 0 of the last draft, which has 0" : "no MTP layer"), "%s",
                      err);
        glm_bm_release(bm, &seq->table);
        glm_seq_free(seq);
        glm_bm_free(bm);
        glm_runner_free(r);
    }
    glm_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cuda_mtp");
    TCase *tc = tcase_create("draft");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, f32_mtp_goldens);
    tcase_add_test(tc, f32_mtp_goldens_bf16_checkpoint);
    tcase_add_test(tc, bf16_against_cpu);
    tcase_add_test(tc, fp8_against_cpu);
    tcase_add_test(tc, tiny_bf16_printed);
    tcase_add_test(tc, graph_padded_decode_with_draft);
    tcase_add_test(tc, draft_refused);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
