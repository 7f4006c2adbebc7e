/*
 * test_cuda_sample.c - the device sampler (cuda/sample.h) against the CPU sampler
 * (glm_sampler_sample), row by row with generators seeded the same. Built against the
 * CPU execution layer (tests/cuda_cpu/) in `make test`, against a device by
 * tests/gpu/run.sh.
 *
 * Hostile rows: NaN, +inf and -inf entries, exact ties (quantised and constant rows),
 * very flat and very peaked rows, logits that overflow under temperature 0.01, rows
 * with nothing left; vocabularies of 1 to 154880 (GLM-5's). Parameters: greedy
 * (temperature 0, top_k 1), temperatures with top_k / top_p / min_p combined,
 * logit_bias (repeated ids, out-of-range values), repetition / frequency / presence
 * penalties over random histories, min_tokens with eos and stop ids, logprobs with 0 to
 * 20 top logprobs. Held to:
 *   - flags identical; greedy and no-candidate tokens identical;
 *   - sampled tokens identical unless the draw lies within 1e-6 of the CDF boundary
 *     between the two (counted and printed);
 *   - logprobs within 1e-5 absolute (-inf exactly); top logprobs the same ids in the
 *     same order unless their logprobs tie within 1e-6;
 *   - the generator advanced by exactly one draw; the logits rows unchanged.
 * The backend's sample op on the tiny checkpoint: a prompt's rows sampled through the
 * device sampler, a host-replaced row (a logits processor's) and a row whose edits
 * overflow the step's pool (both on the host), against glm_sampler_sample.
 * And one statistical check: the empirical distribution of 20000 device draws against
 * glm_sampler_distribution (chi-square, and total variation below 0.03).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "cuda/sample.h"
#include "sched/block_manager.h"
#include "sched/model_runner.h"
#include "tests/unit/testutil.h"

#define LOGPROB_TOL 1e-5
#define TIE_TOL 1e-6
#define BOUNDARY 1e-6
#define EDITS_PER_ROW 4096

/* ---- random rows and parameters -------------------------------------------------------- */

static double normal(test_rng *r)
{
    double u1 = test_rng_unit(r), u2 = test_rng_unit(r);
    return sqrt(-2.0 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2);
}

static void make_row(test_rng *r, float *x, int V, int kind)
{
    static const double scales[] = {0.01, 0.3, 1, 3, 10, 30};
    double sc = scales[test_rng_int(r, 0, 5)];
    for (int i = 0; i < V; i++)
        x[i] = (float)(sc * normal(r));
    switch (kind) {
    case 1: /* exact ties */
        for (int i = 0; i < V; i++)
            x[i] = roundf(x[i] * 2.0f / (float)sc) * 0.5f;
        break;
    case 2: /* NaN and -inf entries, sometimes +inf */
    case 3: {
        int n = test_rng_int(r, 1, 1 + V / 50);
        for (int j = 0; j < n; j++)
            x[test_rng_int(r, 0, V - 1)] = test_rng_int(r, 0, 1) ? NAN : -INFINITY;
        if (kind == 3)
            for (int j = test_rng_int(r, 1, 3); j > 0; j--)
                x[test_rng_int(r, 0, V - 1)] = INFINITY;
        break;
    }
    case 4: /* nothing left: all -inf or NaN */
        for (int i = 0; i < V; i++)
            x[i] = test_rng_int(r, 0, 3) ? -INFINITY : NAN;
        break;
    case 5: /* very peaked */
        x[test_rng_int(r, 0, V - 1)] += 40.0f;
        break;
    case 6: /* very flat: one value */
        for (int i = 0; i < V; i++)
            x[i] = 1.5f;
        break;
    case 7: /* huge: overflows under a small temperature */
        for (int i = 0; i < V; i++)
            x[i] *= 3e36f;
        break;
    default:
        break;
    }
}

typedef struct {
    glm_sampling_params p;
    glm_sampling_logit_bias bias[8];
    int32_t stop[3], eos[2], prompt[64], output[64];
    glm_sampler_history h;
    uint64_t seed;
} row_case;

static int32_t some_id(test_rng *r, int V, const int32_t *pool)
{
    return test_rng_int(r, 0, 2) ? pool[test_rng_int(r, 0, 7)] : test_rng_int(r, 0, V - 1);
}

static void make_case(test_rng *r, row_case *c, int V, int greedy_share)
{
    static const float temps[] = {0.005f, 0.3f, 0.7f, 1.0f, 1.0f, 1.3f, 2.0f};
    static const float top_ps[] = {1.0f, 1.0f, 0.95f, 0.8f, 0.5f, 0.1f, 0.999999f};
    static const float min_ps[] = {0.0f, 0.0f, 0.0f, 0.01f, 0.1f, 0.5f, 1.0f};
    static const float reps[] = {1.0f, 1.0f, 0.8f, 1.3f, 2.0f};
    int32_t pool[8]; /* a few ids that recur in histories, biases and stop sets */
    for (int i = 0; i < 8; i++)
        pool[i] = test_rng_int(r, 0, V - 1);
    memset(c, 0, sizeof *c);
    glm_sampling_params *p = &c->p;
    glm_sampling_params_init(p);
    int g = test_rng_int(r, 0, 99);
    p->temperature = g < greedy_share ? 0.0f : temps[test_rng_int(r, 0, 6)];
    int ks[] = {0, 0, -1, 1, 2, 5, 40, V - 1, V, V + 3};
    p->top_k = ks[test_rng_int(r, 0, 9)];
    if (p->top_k < -1)
        p->top_k = 0;
    p->top_p = top_ps[test_rng_int(r, 0, 6)];
    p->min_p = min_ps[test_rng_int(r, 0, 6)];
    if (test_rng_int(r, 0, 2) == 0) {
        p->n_logit_bias = test_rng_int(r, 1, 8);
        for (int i = 0; i < p->n_logit_bias; i++) {
            c->bias[i].id = i > 0 && test_rng_int(r, 0, 4) == 0 ? c->bias[i - 1].id : some_id(r, V, pool);
            int kind = test_rng_int(r, 0, 9);
            c->bias[i].bias = kind == 0 ? 1e30f : kind == 1 ? -INFINITY : (float)(300.0 * test_rng_unit(r) - 150.0);
        }
        p->logit_bias = c->bias;
    }
    if (test_rng_int(r, 0, 1)) {
        p->repetition_penalty = reps[test_rng_int(r, 0, 4)];
        p->frequency_penalty = test_rng_int(r, 0, 1) ? (float)(4.0 * test_rng_unit(r) - 2.0) : 0.0f;
        p->presence_penalty = test_rng_int(r, 0, 1) ? (float)(4.0 * test_rng_unit(r) - 2.0) : 0.0f;
    }
    c->h.n_prompt = test_rng_int(r, 0, 64);
    c->h.n_output = test_rng_int(r, 0, 64);
    for (int i = 0; i < c->h.n_prompt; i++)
        c->prompt[i] = some_id(r, V, pool);
    for (int i = 0; i < c->h.n_output; i++)
        c->output[i] = some_id(r, V, pool);
    c->h.prompt = c->prompt;
    c->h.output = c->output;
    if (test_rng_int(r, 0, 2) == 0) {
        p->n_eos_token_ids = test_rng_int(r, 1, 2);
        for (int i = 0; i < p->n_eos_token_ids; i++)
            c->eos[i] = some_id(r, V, pool);
        p->eos_token_ids = c->eos;
        p->n_stop_token_ids = test_rng_int(r, 0, 3);
        for (int i = 0; i < p->n_stop_token_ids; i++)
            c->stop[i] = some_id(r, V, pool);
        p->stop_token_ids = c->stop;
        p->min_tokens = test_rng_int(r, 0, 1) ? c->h.n_output + 1 : 0;
    }
    p->logprobs = test_rng_int(r, 0, 1);
    p->top_logprobs = p->logprobs ? test_rng_int(r, 0, GLM_SAMPLING_MAX_TOP_LOGPROBS) : 0;
    c->seed = test_rng_next(r);
    char err[256];
    ck_assert_msg(glm_sampling_params_validate(p, V, NULL, err, sizeof err) == GLM_OK, "%s", err);
}

/* ---- one batch against the CPU sampler --------------------------------------------------- */

typedef struct {
    long rows, greedy, greedy_same, sampled, sampled_same, boundary, nocand, logprobs, tops;
    double max_lp, max_top;
} tally;

static void *dev_alloc(size_t bytes)
{
    void *p = NULL;
    ck_assert_int_eq(cudaMalloc(&p, bytes ? bytes : 1), cudaSuccess);
    return p;
}

static void up(void *dst, const void *src, size_t bytes)
{
    if (bytes)
        ck_assert_int_eq(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), cudaSuccess);
}

static void down(void *dst, const void *src, size_t bytes)
{
    if (bytes)
        ck_assert_int_eq(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
}

/* Samples cases [n] on rows [n] of V on the device (row j of case j placed at perm[j]) and
 * returns the results in res [n]. */
static void device_sample(const float *rows, int n, int V, row_case *cases, glm_rng *rngs, glm_cu_sample_desc *descs,
                          glm_sampler_result *res)
{
    int cap = n * EDITS_PER_ROW;
    glm_cu_sample_edit *edits = malloc(sizeof *edits * (size_t)cap);
    glm_cu_sample_host hs;
    glm_cu_sample_host_init(&hs, V, edits, cap);
    glm_cu_sample_host_reset(&hs);
    size_t rb = sizeof(float) * (size_t)n * V;
    float *d_logits = dev_alloc(rb);
    up(d_logits, rows, rb);
    for (int j = 0; j < n; j++)
        ck_assert_int_eq(glm_cu_sample_host_add(&hs, &cases[j].p, &rngs[j], &cases[j].h, n - 1 - j, &descs[j]), GLM_OK);
    glm_cu_sample_desc *d_desc = dev_alloc(sizeof *descs * (size_t)n);
    glm_cu_sample_edit *d_edits = dev_alloc(sizeof *edits * (size_t)hs.n);
    glm_sampler_result *d_out = dev_alloc(sizeof *res * (size_t)n);
    up(d_desc, descs, sizeof *descs * (size_t)n);
    up(d_edits, edits, sizeof *edits * (size_t)hs.n);
    glm_cu_sample_params sp = {n, V, d_logits, d_desc, d_edits, d_out};
    ck_assert_int_eq(glm_cu_sample(&sp, 0), cudaSuccess);
    ck_assert_int_eq(cudaDeviceSynchronize(), cudaSuccess);
    down(res, d_out, sizeof *res * (size_t)n);
    /* the rows as they were, bit for bit (the edits were undone) */
    float *back = malloc(rb);
    down(back, d_logits, rb);
    ck_assert_msg(memcmp(back, rows, rb) == 0, "the logits rows changed");
    free(back);
    cudaFree(d_logits);
    cudaFree(d_desc);
    cudaFree(d_edits);
    cudaFree(d_out);
    glm_cu_sample_host_free(&hs);
    free(edits);
}

/* log_softmax(x)[id] with NaN as -inf and +inf entries sharing the mass, in double */
static float ref_logprob(const float *x, int V, int id)
{
    double mx = -INFINITY, sum = 0;
    int pinf = 0;
    for (int i = 0; i < V; i++) {
        double v = isnan(x[i]) ? -INFINITY : x[i];
        pinf += v == INFINITY;
        mx = fmax(mx, v);
    }
    double v = isnan(x[id]) ? -INFINITY : x[id];
    if (pinf)
        return v == INFINITY ? (float)-log((double)pinf) : -INFINITY;
    if (mx == -INFINITY || v == -INFINITY)
        return -INFINITY;
    for (int i = 0; i < V; i++)
        if (!isnan(x[i]))
            sum += exp((double)x[i] - mx);
    return (float)(v - mx - log(sum));
}

static int same_lp(double a, double b, double tol)
{
    if (isinf(a) || isinf(b))
        return a == b;
    return fabs(a - b) <= tol;
}

static void run_batch(test_rng *r, int V, int n, int greedy_share, tally *t)
{
    float *rows = malloc(sizeof(float) * (size_t)n * V);
    row_case *cases = malloc(sizeof *cases * (size_t)n);
    glm_rng *rngs = malloc(sizeof *rngs * (size_t)n);
    glm_cu_sample_desc *descs = malloc(sizeof *descs * (size_t)n);
    glm_sampler_result *res = malloc(sizeof *res * (size_t)n);
    float *probs = malloc(sizeof(float) * (size_t)V);
    size_t wss = glm_sampler_workspace_size(V);
    void *ws = glm_malloc_aligned(wss);
    for (int j = 0; j < n; j++) {
        make_case(r, &cases[j], V, greedy_share);
        make_row(r, rows + (size_t)(n - 1 - j) * V, V, test_rng_int(r, 0, 9));
        glm_rng_seed(&rngs[j], cases[j].seed);
    }
    device_sample(rows, n, V, cases, rngs, descs, res);

    for (int j = 0; j < n; j++) {
        const row_case *c = &cases[j];
        const float *x = rows + (size_t)(n - 1 - j) * V;
        glm_rng cr;
        glm_rng_seed(&cr, c->seed);
        glm_sampler_result want;
        glm_sampler_sample(&c->p, &cr, x, V, &c->h, ws, wss, &want);
        const glm_sampler_result *got = &res[j];
        ck_assert_msg(memcmp(&cr, &rngs[j], sizeof cr) == 0, "V %d row %d: the generators differ", V, j);
        ck_assert_msg(got->flags == want.flags, "V %d row %d: flags %u, CPU %u", V, j, got->flags, want.flags);
        ck_assert_msg(got->token >= 0 && got->token < V, "V %d row %d: token %d", V, j, got->token);
        t->rows++;
        int greedy = glm_sampling_is_greedy(&c->p) || (want.flags & GLM_SAMPLE_NO_CANDIDATE);
        t->nocand += (want.flags & GLM_SAMPLE_NO_CANDIDATE) != 0;
        if (greedy) {
            t->greedy++;
            ck_assert_msg(got->token == want.token, "V %d row %d (greedy / nothing left): token %d, CPU %d", V, j,
                          got->token, want.token);
            t->greedy_same++;
        } else {
            t->sampled++;
            if (got->token == want.token) {
                t->sampled_same++;
            } else {
                /* allowed only when u lies on the CDF boundary between the two tokens */
                glm_sampler_distribution(&c->p, x, V, &c->h, ws, wss, probs);
                int lo = GLM_MIN(got->token, want.token);
                double cdf = 0;
                for (int i = 0; i <= lo; i++)
                    cdf += probs[i];
                ck_assert_msg(fabs(descs[j].u - cdf) <= BOUNDARY,
                              "V %d row %d: token %d, CPU %d, u %.17g not within %g of the boundary %.17g", V, j,
                              got->token, want.token, descs[j].u, BOUNDARY, cdf);
                t->boundary++;
                printf("boundary: V %d row %d: token %d, CPU %d, u %.17g, CDF %.17g\n", V, j, got->token, want.token,
                       descs[j].u, cdf);
            }
        }
        if (c->p.logprobs) {
            t->logprobs++;
            /* on a boundary draw the device's token differs: its raw logprob in double */
            float wl = got->token == want.token ? want.logprob : ref_logprob(x, V, got->token);
            ck_assert_msg(same_lp(got->logprob, wl, LOGPROB_TOL), "V %d row %d: logprob %.9g, CPU %.9g", V, j,
                          (double)got->logprob, (double)wl);
            if (isfinite(wl))
                t->max_lp = fmax(t->max_lp, fabs((double)got->logprob - wl));
            ck_assert_int_eq(got->n_top, want.n_top);
            for (int k = 0; k < want.n_top; k++) {
                t->tops++;
                double a = got->top[k].logprob, b = want.top[k].logprob;
                ck_assert_msg(same_lp(a, b, LOGPROB_TOL), "V %d row %d top %d: logprob %.9g, CPU %.9g", V, j, k, a, b);
                if (isfinite(b))
                    t->max_top = fmax(t->max_top, fabs(a - b));
                if (got->top[k].id != want.top[k].id)
                    ck_assert_msg(same_lp(a, b, TIE_TOL), "V %d row %d top %d: id %d, CPU %d", V, j, k,
                                  got->top[k].id, want.top[k].id);
            }
        } else {
            ck_assert_int_eq(got->n_top, 0);
        }
    }
    free(rows);
    free(cases);
    free(rngs);
    free(descs);
    free(res);
    free(probs);
    free(ws);
}

static void print_tally(const char *what, const tally *t)
{
    printf("%s: %ld rows; greedy or nothing left: %ld of %ld tokens identical (%ld with nothing left); sampled: %ld "
           "of %ld identical, %ld on a CDF boundary (within %g); logprobs on %ld rows, max |dlogprob| %.3g; %ld top "
           "logprobs, max |dlogprob| %.3g\n",
           what, t->rows, t->greedy_same, t->greedy, t->nocand, t->sampled_same, t->sampled, t->boundary, BOUNDARY,
           t->logprobs, t->max_lp, t->tops, t->max_top);
    fflush(stdout);
}

START_TEST(against_cpu_small_vocabs)
{
    test_rng r = {1};
    tally t = {0};
    static const int vs[] = {1, 2, 7, 33, 1000, 4096};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++)
        for (int b = 0; b < (vs[i] == 4096 ? 8 : 2); b++)
            run_batch(&r, vs[i], 48, 20, &t);
    print_tally("vocab 1..4096", &t);
    ck_assert_int_eq(t.greedy_same, t.greedy);
    ck_assert_msg(t.boundary <= t.sampled / 1000, "%ld boundary draws of %ld", t.boundary, t.sampled);
}
END_TEST

START_TEST(against_cpu_glm5_vocab)
{
    test_rng r = {2};
    tally t = {0};
    run_batch(&r, 154880, 8, 25, &t);
    print_tally("vocab 154880", &t);
    ck_assert_int_eq(t.greedy_same, t.greedy);
    ck_assert_int_eq(t.boundary, 0);
}
END_TEST

/* A row whose edits do not fit is refused whole: nothing appended, the generator untouched. */
START_TEST(edits_that_do_not_fit)
{
    enum { V = 100 };
    glm_cu_sample_edit edits[8];
    glm_cu_sample_host hs;
    glm_cu_sample_host_init(&hs, V, edits, 8);
    glm_cu_sample_host_reset(&hs);
    int32_t prompt[20];
    for (int i = 0; i < 20; i++)
        prompt[i] = i % 12; /* 12 distinct ids */
    glm_sampling_params p;
    glm_sampling_params_init(&p);
    p.repetition_penalty = 1.5f;
    glm_sampler_history h = {prompt, 5, NULL, 0};
    glm_rng rng, before;
    glm_rng_seed(&rng, 7);
    before = rng;
    glm_cu_sample_desc d;
    ck_assert_int_eq(glm_cu_sample_host_add(&hs, &p, &rng, &h, 0, &d), GLM_OK); /* 5 edits */
    ck_assert_int_eq(d.n_edits, 5);
    ck_assert_int_eq(hs.n, 5);
    ck_assert(memcmp(&rng, &before, sizeof rng) != 0);
    before = rng;
    h.n_prompt = 20;
    ck_assert_int_eq(glm_cu_sample_host_add(&hs, &p, &rng, &h, 1, &d), GLM_ERR); /* 12 > 3 left */
    ck_assert_int_eq(hs.n, 5);
    ck_assert(memcmp(&rng, &before, sizeof rng) == 0);
    h.n_prompt = 3;
    ck_assert_int_eq(glm_cu_sample_host_add(&hs, &p, &rng, &h, 1, &d), GLM_OK); /* the scratch was reset */
    ck_assert_int_eq(d.edit_begin, 5);
    ck_assert_int_eq(d.n_edits, 3);
    for (int j = 5; j < 8; j++)
        ck_assert_int_eq(edits[j].head, 1);
    glm_cu_sample_host_free(&hs);
}
END_TEST

/* The device's draws follow glm_sampler_distribution: 20000 draws from one row under
 * temperature, top_k, top_p, min_p, a bias and penalties. Pass: chi-square over the
 * tokens of expected count >= 5 (the rest pooled) below df + 6 sqrt(2 df) (a ~6 sigma
 * bound), total variation below 0.03 (its expectation here is ~0.01), and no draw of a
 * token of probability 0. */
START_TEST(distribution)
{
    enum { V = 64, ROWS = 1000, ROUNDS = 20 };
    test_rng r = {3};
    float row[V];
    for (int i = 0; i < V; i++)
        row[i] = (float)(1.5 * normal(&r));
    row[5] = row[9]; /* a tie */
    row[11] = NAN;
    glm_sampling_logit_bias bias[1] = {{3, 2.5f}};
    int32_t out_ids[4] = {1, 2, 2, 7};
    row_case c;
    memset(&c, 0, sizeof c);
    glm_sampling_params_init(&c.p);
    c.p.temperature = 1.1f;
    c.p.top_k = 40;
    c.p.top_p = 0.95f;
    c.p.min_p = 0.01f;
    c.p.logit_bias = bias;
    c.p.n_logit_bias = 1;
    c.p.presence_penalty = 0.5f;
    c.p.frequency_penalty = 0.25f;
    c.p.repetition_penalty = 1.2f;
    memcpy(c.output, out_ids, sizeof out_ids);
    c.h.output = c.output;
    c.h.n_output = 4;

    float probs[V];
    size_t wss = glm_sampler_workspace_size(V);
    void *ws = glm_malloc_aligned(wss);
    glm_sampler_distribution(&c.p, row, V, &c.h, ws, wss, probs);
    free(ws);

    float *rows = malloc(sizeof(float) * ROWS * V);
    for (int j = 0; j < ROWS; j++)
        memcpy(rows + (size_t)j * V, row, sizeof row);
    row_case *cases = malloc(sizeof *cases * ROWS);
    glm_rng *rngs = malloc(sizeof *rngs * ROWS);
    glm_cu_sample_desc *descs = malloc(sizeof *descs * ROWS);
    glm_sampler_result *res = malloc(sizeof *res * ROWS);
    for (int j = 0; j < ROWS; j++) {
        cases[j] = c;
        cases[j].h.output = cases[j].output;
    }
    long counts[V] = {0}, N = 0;
    glm_rng g;
    glm_rng_seed(&g, 12345);
    for (int round = 0; round < ROUNDS; round++) {
        for (int j = 0; j < ROWS; j++) {
            rngs[j] = g;
            glm_rng_next(&g);
            glm_rng_next(&g); /* distinct streams */
        }
        device_sample(rows, ROWS, V, cases, rngs, descs, res);
        for (int j = 0; j < ROWS; j++, N++)
            counts[res[j].token]++;
    }
    double chi2 = 0, tv = 0, pooled_e = 0, pooled_o = 0;
    int bins = 0, support = 0;
    for (int i = 0; i < V; i++) {
        double e = probs[i] * (double)N;
        tv += fabs((double)counts[i] / (double)N - probs[i]);
        if (probs[i] == 0.0f) {
            ck_assert_msg(counts[i] == 0, "token %d of probability 0 drawn %ld times", i, counts[i]);
            continue;
        }
        support++;
        if (e >= 5) {
            chi2 += (counts[i] - e) * (counts[i] - e) / e;
            bins++;
        } else {
            pooled_e += e;
            pooled_o += (double)counts[i];
        }
    }
    if (pooled_e > 0) {
        chi2 += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e;
        bins++;
    }
    tv *= 0.5;
    int df = bins - 1;
    double bound = df + 6.0 * sqrt(2.0 * df);
    printf("distribution: %ld device draws over %d tokens of positive probability: chi-square %.2f with %d degrees "
           "of freedom (bound %.1f), total variation %.4f (bound 0.03)\n",
           N, support, chi2, df, bound, tv);
    fflush(stdout);
    ck_assert_msg(df >= 5, "only %d bins", bins);
    ck_assert_msg(chi2 <= bound, "chi-square %g > %g", chi2, bound);
    ck_assert_msg(tv <= 0.03, "total variation %g", tv);
    free(rows);
    free(cases);
    free(rngs);
    free(descs);
    free(res);
}
END_TEST

/* The backend's sample op (cuda_backend.cu's sample_rows) on the tiny checkpoint: every
 * row of a prompt sampled in one call under varied parameters, one row replaced on the
 * host (r->logits), one whose logit_bias entries overflow the step's edit pool;
 * results identical to glm_sampler_sample on the same rows, the rows unchanged. */
START_TEST(backend_sample_op)
{
    char path[512], err[GLM_ERRLEN];
    snprintf(path, sizeof path, "%s/tiny", test_models_dir());
    glm_model *m = glm_model_load(path, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    enum { NP = 12 };
    int V = m->cfg.vocab_size;
    int32_t prompt[NP];
    test_rng r = {4};
    for (int i = 0; i < NP; i++)
        prompt[i] = test_rng_int(&r, 1, V - 1);
    glm_runner_params rp;
    glm_runner_params_default(&rp);
    rp.backend = GLM_BACKEND_CUDA;
    rp.dtype = GLM_COMPUTE_F32;
    rp.cuda_graphs = 0;
    rp.block_size = 16;
    rp.max_num_batched_tokens = NP;
    rp.max_num_seqs = 1;
    rp.max_logits_rows = NP;
    rp.max_model_len = 64;
    rp.kv_cache_tokens = 64;
    rp.n_threads = 1;
    glm_runner *run = glm_runner_create(m, &rp, err, sizeof err);
    ck_assert_msg(run != NULL, "%s", err);
    const glm_batch_limits *l = &glm_runner_info(run)->limits;
    glm_block_manager *bm = glm_bm_create(l->num_blocks, l->block_size, 0);
    glm_sequence *seq = glm_seq_create(0, prompt, NP, 4);
    int nn = NP;
    ck_assert_msg(glm_runner_step_seqs(run, bm, &seq, &nn, 1, 1, err, sizeof err) == GLM_OK, "%s", err);
    int32_t rows[NP];
    for (int i = 0; i < NP; i++)
        rows[i] = i;
    float *x = malloc(sizeof(float) * NP * (size_t)V), *after = malloc(sizeof(float) * NP * (size_t)V);
    ck_assert_msg(glm_runner_logits(run, rows, NP, x, err, sizeof err) == GLM_OK, "%s", err);

    row_case cases[NP];
    glm_sample_req reqs[NP];
    glm_rng rngs[NP];
    float *host_row = malloc(sizeof(float) * (size_t)V);
    int n_big = NP * 4096 + 1000; /* the backend pools 4096 edits per logits row */
    glm_sampling_logit_bias *big = malloc(sizeof *big * (size_t)n_big);
    for (int i = 0; i < n_big; i++)
        big[i] = (glm_sampling_logit_bias){(int32_t)(i % V), 0.001f};
    for (int i = 0; i < NP; i++) {
        make_case(&r, &cases[i], V, 25);
        glm_rng_seed(&rngs[i], cases[i].seed);
        reqs[i] = (glm_sample_req){NP - 1 - i, NULL, &cases[i].p, &rngs[i], cases[i].h};
    }
    /* row 3: a logits processor's replacement; row 5: more edits than the pool holds */
    memcpy(host_row, x + (size_t)reqs[3].row * V, sizeof(float) * (size_t)V);
    for (int i = 0; i < V; i += 3)
        host_row[i] = -INFINITY;
    reqs[3].logits = host_row;
    cases[5].p.logit_bias = big;
    cases[5].p.n_logit_bias = n_big;
    glm_sampler_result got[NP];
    ck_assert_msg(glm_runner_sample(run, reqs, NP, got, err, sizeof err) == GLM_OK, "%s", err);
    ck_assert_msg(glm_runner_logits(run, rows, NP, after, err, sizeof err) == GLM_OK, "%s", err);
    ck_assert_msg(memcmp(x, after, sizeof(float) * NP * (size_t)V) == 0, "the logits rows changed");

    size_t wss = glm_sampler_workspace_size(V);
    void *ws = glm_malloc_aligned(wss);
    int same = 0;
    for (int i = 0; i < NP; i++) {
        glm_rng cr;
        glm_rng_seed(&cr, cases[i].seed);
        glm_sampler_result want;
        const float *row = reqs[i].logits ? reqs[i].logits : x + (size_t)reqs[i].row * V;
        glm_sampler_sample(&cases[i].p, &cr, row, V, &cases[i].h, ws, wss, &want);
        ck_assert_msg(memcmp(&cr, &rngs[i], sizeof cr) == 0, "request %d: the generators differ", i);
        ck_assert_msg(got[i].token == want.token && got[i].flags == want.flags && got[i].n_top == want.n_top,
                      "request %d: token %d flags %u, CPU %d flags %u", i, got[i].token, got[i].flags, want.token,
                      want.flags);
        if (cases[i].p.logprobs) {
            ck_assert(same_lp(got[i].logprob, want.logprob, LOGPROB_TOL));
            for (int k = 0; k < want.n_top; k++)
                ck_assert(got[i].top[k].id == want.top[k].id &&
                          same_lp(got[i].top[k].logprob, want.top[k].logprob, LOGPROB_TOL));
        }
        same++;
    }
    printf("backend sample op: %d of %d requests as the CPU sampler (one host-replaced row, one over the edit pool)\n",
           same, NP);
    fflush(stdout);
    free(ws);
    free(big);
    free(host_row);
    free(x);
    free(after);
    glm_bm_release(bm, &seq->table);
    glm_seq_free(seq);
    glm_bm_free(bm);
    glm_runner_free(run);
    glm_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cuda_sample");
    TCase *tc = tcase_create("sample");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, edits_that_do_not_fit);
    tcase_add_test(tc, against_cpu_small_vocabs);
    tcase_add_test(tc, against_cpu_glm5_vocab);
    tcase_add_test(tc, distribution);
    tcase_add_test(tc, backend_sample_op);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
