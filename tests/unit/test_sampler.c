/*
 * test_sampler.c - the sampler of sampler.c against its definitions. What it proves:
 *
 *  1. Greedy (temperature 0, or top_k 1) takes the argmax of the processed logits,
 *     lowest id on ties, NaN never wins; top_p/min_p do not change it; a tiny positive
 *     temperature acts as 0.01 (vLLM) and is not greedy.
 *  2. Temperature sampling draws from softmax(logits / T): 200k draws on 8 tokens pass
 *     a chi-square test (p-value > 1e-6) and every frequency is within 5 sigma;
 *     glm_sampler_distribution equals the double-precision softmax to 1e-6; a mixed
 *     configuration (penalties, top_k, top_p, min_p) draws from its distribution; on
 *     154880 entries, spikes across the row and a flat row (per 1024-entry block) pass
 *     the same tests.
 *  3. top_k, top_p, min_p keep exactly the right set: ties at the cut are all kept,
 *     top_p = 1 keeps everything, a tiny top_p keeps the maximum (and its ties),
 *     top_p works on what top_k/min_p left and after temperature; on a 154880-entry
 *     vocabulary, 60 random configurations (with and without heavy ties, -inf
 *     entries) match a full-sort reference set and its renormalised probabilities.
 *  4. Penalties change the logits bit for bit as the formulas say (repetition on
 *     prompt + output, frequency and presence on output only); logit_bias adds the
 *     bias clamped to [-100, 100]; min_tokens masks eos and stop ids (ignore_eos too)
 *     only while fewer than min_tokens tokens exist.
 *  5. The generator: splitmix64 and xoshiro256** reference outputs; same seed, same
 *     tokens whatever else is sampled in between; different seeds differ; exactly one
 *     draw per call on every path.
 *  6. Logprobs are the raw model distribution's: they sum to 1 in probability space,
 *     top_logprobs are sorted (lower id first on ties) and equal log_softmax in double.
 *  7. NaN / +-inf / huge logits never crash nor give an out-of-range or masked id;
 *     all-masked rows give the documented fallback and flag; +inf tokens share the mass.
 *  8. Validation names the parameter for every out-of-range field and accepts the
 *     boundaries; copies own their lists.
 *  9. Speculative decoding's verification (glm_sampler_verify) keeps the distribution:
 *     200k verifications of a draft (likely, unlikely, or outside top_k) give tokens
 *     that pass the same chi-square and 5-sigma tests against glm_sampler_distribution,
 *     the draft is accepted with frequency p(draft) (never when p is 0); greedy accepts
 *     exactly the argmax; two draws per call on every path.
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/sampler.h"
#include "core/util.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------- */

/* ck_assert in a hot loop costs a message to the parent process per call; this
 * asserts only on failure. */
#define CHECK(cond, ...)                                                                        \
    do {                                                                                        \
        if (!(cond))                                                                            \
            ck_abort_msg(__VA_ARGS__);                                                          \
    } while (0)

static double trng_normal(test_rng *r)
{
    double u1 = test_rng_unit(r), u2 = test_rng_unit(r);
    return sqrt(-2.0 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2);
}

typedef struct {
    void *ws;
    size_t size;
} wsbuf;

static wsbuf ws_new(int vocab)
{
    wsbuf w;
    w.size = glm_sampler_workspace_size(vocab);
    w.ws = glm_malloc_aligned(w.size);
    memset(w.ws, 0xA5, w.size); /* contents must not matter */
    return w;
}

static void ws_del(wsbuf *w)
{
    glm_free_aligned(w->ws);
}

static const glm_sampler_history NO_HIST = {NULL, 0, NULL, 0};

/* Regularised upper incomplete gamma Q(k/2, x/2): the chi-square p-value. */
static double chi2_pvalue(double x, int df)
{
    double a = df / 2.0, xx = x / 2.0;
    if (xx <= 0)
        return 1.0;
    double term = 1.0 / a, sum = term;
    for (int n = 1; n < 100000 && term > 1e-17 * sum; n++) {
        term *= xx / (a + n);
        sum += term;
    }
    double p = exp(-xx + a * log(xx) - lgamma(a)) * sum;
    return 1.0 - p;
}

/* softmax(x / t) in double, -inf entries 0 */
static void softmax_ref(const float *x, int n, double t, double *p)
{
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < n; i++)
        if (x[i] / t > mx)
            mx = x[i] / t;
    for (int i = 0; i < n; i++)
        s += (p[i] = x[i] == -INFINITY ? 0.0 : exp(x[i] / t - mx));
    for (int i = 0; i < n; i++)
        p[i] /= s;
}

/* the support of glm_sampler_distribution as a bitmask over <= 64 tokens */
static uint64_t support(const glm_sampling_params *sp, const float *x, int n,
                        const glm_sampler_history *h)
{
    wsbuf w = ws_new(n);
    float probs[64];
    ck_assert(n <= 64);
    glm_sampler_distribution(sp, x, n, h, w.ws, w.size, probs);
    uint64_t m = 0;
    double s = 0;
    for (int i = 0; i < n; i++) {
        ck_assert(probs[i] >= 0.0f && probs[i] <= 1.0f);
        if (probs[i] > 0.0f)
            m |= 1ull << i;
        s += probs[i];
    }
    ck_assert_msg(fabs(s - 1.0) < 1e-6, "distribution sums to %.9f", s);
    ws_del(&w);
    return m;
}

static int sample_once(const glm_sampling_params *sp, glm_rng *r, const float *x, int n,
                       const glm_sampler_history *h, wsbuf *w, glm_sampler_result *res)
{
    glm_sampler_sample(sp, r, x, n, h, w->ws, w->size, res);
    CHECK(res->token >= 0 && res->token < n, "token %d outside [0, %d)", (int)res->token, n);
    return res->token;
}

/* ---- 1. greedy ----------------------------------------------------------------------- */

START_TEST(greedy_argmax)
{
    enum { V = 1000 };
    static float x[V];
    test_rng t = {1};
    for (int i = 0; i < V; i++)
        x[i] = (float)(trng_normal(&t) * 3.0);
    x[517] = 20.0f;
    x[903] = 20.0f; /* tie: lower id wins */
    x[0] = NAN;     /* NaN never wins */
    wsbuf w = ws_new(V);
    glm_sampling_params sp;
    glm_sampling_params_init(&sp);
    sp.temperature = 0.0f;
    glm_sampler_result res;
    for (uint64_t seed = 0; seed < 20; seed++) {
        glm_rng r;
        glm_rng_seed(&r, seed);
        ck_assert_int_eq(sample_once(&sp, &r, x, V, &NO_HIST, &w, &res), 517);
    }
    ck_assert(res.flags & GLM_SAMPLE_NONFINITE);
    /* top_p, min_p, top_k > 1 do not change greedy */
    sp.top_p = 0.01f;
    sp.min_p = 0.9f;
    sp.top_k = 3;
    glm_rng r;
    glm_rng_seed(&r, 5);
    ck_assert_int_eq(sample_once(&sp, &r, x, V, &NO_HIST, &w, &res), 517);
    /* top_k == 1 is greedy at any temperature */
    glm_sampling_params_init(&sp);
    sp.temperature = 1.5f;
    sp.top_k = 1;
    ck_assert(glm_sampling_is_greedy(&sp));
    for (int k = 0; k < 50; k++)
        ck_assert_int_eq(sample_once(&sp, &r, x, V, &NO_HIST, &w, &res), 517);
    /* a tiny positive temperature is not greedy: it acts as 0.01 (vLLM), so the tie at
     * the top splits evenly and nothing else has a chance */
    sp.top_k = 0;
    sp.temperature = 1e-6f;
    ck_assert(!glm_sampling_is_greedy(&sp));
    int hits517 = 0;
    for (int k = 0; k < 400; k++) {
        int tok = sample_once(&sp, &r, x, V, &NO_HIST, &w, &res);
        CHECK(tok == 517 || tok == 903, "token %d", tok);
        hits517 += tok == 517;
    }
    ck_assert(hits517 > 100 && hits517 < 300);
    sp.temperature = 0.0f;
    /* greedy sees processed logits: a bias moves the argmax */
    glm_sampling_logit_bias b[1] = {{42, 100.0f}};
    sp.logit_bias = b;
    sp.n_logit_bias = 1;
    ck_assert_int_eq(sample_once(&sp, &r, x, V, &NO_HIST, &w, &res), 42);
    /* the distribution of a greedy request is one-hot */
    float probs[V];
    glm_sampler_distribution(&sp, x, V, &NO_HIST, w.ws, w.size, probs);
    for (int i = 0; i < V; i++)
        ck_assert(probs[i] == (i == 42 ? 1.0f : 0.0f));
    ws_del(&w);
}
END_TEST

/* ---- 2. frequencies ------------------------------------------------------------------ */

/* Draws n times and checks the counts against p[] by chi-square (p-value > 1e-6,
 * pooled over cells with p > 0) and 5 sigma per cell; cells with p == 0 never occur. */
static void check_frequencies(const glm_sampling_params *sp, const float *x, int V,
                              const glm_sampler_history *h, const double *p, int n, uint64_t seed)
{
    wsbuf w = ws_new(V);
    glm_rng r;
    glm_rng_seed(&r, seed);
    long *cnt = calloc((size_t)V, sizeof *cnt);
    glm_sampler_result res;
    for (int k = 0; k < n; k++)
        cnt[sample_once(sp, &r, x, V, h, &w, &res)]++;
    double chi2 = 0;
    int df = -1;
    for (int i = 0; i < V; i++) {
        if (p[i] == 0.0) {
            ck_assert_msg(cnt[i] == 0, "token %d of probability 0 drawn %ld times", i, cnt[i]);
            continue;
        }
        double e = p[i] * n;
        chi2 += (cnt[i] - e) * (cnt[i] - e) / e;
        df++;
        double sigma = sqrt(p[i] * (1 - p[i]) / n);
        ck_assert_msg(fabs(cnt[i] / (double)n - p[i]) <= 5 * sigma + 1e-12,
                      "token %d: frequency %.5f, probability %.5f (5 sigma = %.5f)", i,
                      cnt[i] / (double)n, p[i], 5 * sigma);
    }
    if (df > 0) {
        double pv = chi2_pvalue(chi2, df);
        ck_assert_msg(pv > 1e-6, "chi-square %.2f with %d df: p-value %.3g", chi2, df, pv);
    }
    free(cnt);
    ws_del(&w);
}

START_TEST(temperature_frequencies)
{
    static const float x[8] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, 1.0f, -3.0f, 0.25f};
    static const float temps[3] = {0.7f, 1.0f, 1.6f};
    wsbuf w = ws_new(8);
    for (int ti = 0; ti < 3; ti++) {
        glm_sampling_params sp;
        glm_sampling_params_init(&sp);
        sp.temperature = temps[ti];
        double p[8];
        softmax_ref(x, 8, temps[ti], p);
        float probs[8];
        ck_assert_int_eq(glm_sampler_distribution(&sp, x, 8, &NO_HIST, w.ws, w.size, probs), 0);
        for (int i = 0; i < 8; i++)
            ck_assert_msg(fabs(probs[i] - p[i]) <= 1e-6, "T %g token %d: %.8f vs %.8f",
                          (double)temps[ti], i, (double)probs[i], p[i]);
        check_frequencies(&sp, x, 8, &NO_HIST, p, 200000, 1000 + (uint64_t)ti);
    }
    ws_del(&w);
}
END_TEST

START_TEST(mixed_frequencies)
{
    /* penalties + bias + min_p + top_k + top_p together: the draws follow the
     * distribution the sampler reports (whose sets are checked below) */
    enum { V = 40 };
    float x[V];
    test_rng t = {7};
    for (int i = 0; i < V; i++)
        x[i] = (float)trng_normal(&t);
    int32_t prompt[] = {1, 2, 3, 3, 9}, output[] = {4, 4, 5, 1};
    glm_sampler_history h = {prompt, 5, output, 4};
    glm_sampling_logit_bias b[2] = {{7, 1.5f}, {8, -0.5f}};
    glm_sampling_params sp;
    glm_sampling_params_init(&sp);
    sp.temperature = 0.9f;
    sp.top_k = 12;
    sp.top_p = 0.85f;
    sp.min_p = 0.05f;
    sp.repetition_penalty = 1.2f;
    sp.frequency_penalty = 0.3f;
    sp.presence_penalty = 0.2f;
    sp.logit_bias = b;
    sp.n_logit_bias = 2;
    wsbuf w = ws_new(V);
    float probs[V];
    glm_sampler_distribution(&sp, x, V, &h, w.ws, w.size, probs);
    double p[V];
    int kept = 0;
    for (int i = 0; i < V; i++) {
        p[i] = probs[i];
        kept += probs[i] > 0;
    }
    ck_assert(kept >= 3 && kept <= 12);
    check_frequencies(&sp, x, V, &h, p, 200000, 99);
    ws_del(&w);
}
END_TEST

START_TEST(large_vocab_frequencies)
{
    /* the draw walks block sums over a 154880-entry row: spikes spread over the whole
     * vocabulary, then a flat row counted per 1024-entry block */
    enum { V = 154880, N = 10000 };
    float *x = malloc(V * sizeof *x);
    double *p = malloc(V * sizeof *p);
    for (int i = 0; i < V; i++)
        x[i] = -INFINITY;
    for (int j = 0; j < 16; j++)
        x[j * 9677 + 5] = 0.15f * (float)(j % 5);
    glm_sampling_params sp;
    glm_sampling_params_init(&sp);
    softmax_ref(x, V, 1.0, p);
    check_frequencies(&sp, x, V, &NO_HIST, p, N, 17);

    for (int i = 0; i < V; i++)
        x[i] = 1.0f;
    wsbuf w = ws_new(V);
    glm_rng r;
    glm_rng_seed(&r, 23);
    enum { B = 1024, NB = (V + B - 1) / B };
    static long cnt[NB];
    glm_sampler_result res;
    for (int k = 0; k < N; k++)
        cnt[sample_once(&sp, &r, x, V, &NO_HIST, &w, &res) / B]++;
    double chi2 = 0;
    for (int b = 0; b < NB; b++) {
        double e = (double)N * (b == NB - 1 ? V - b * B : B) / V;
        chi2 += (cnt[b] - e) * (cnt[b] - e) / e;
    }
    double pv = chi2_pvalue(chi2, NB - 1);
    ck_assert_msg(pv > 1e-6, "flat row: chi-square %.1f with %d df, p-value %.3g", chi2, NB - 1, pv);
    ws_del(&w);
    free(x);
    free(p);
}
END_TEST

/* ---- 3. filters: exact sets ---------------------------------------------------------- */

#define BITS(...) bits_of((const int[]){__VA_ARGS__, -1})
static uint64_t bits_of(const int *ids)
{
    uint64_t m = 0;
    for (; *ids >= 0; ids++)
        m |= 1ull << *ids;
    return m;
}

START_TEST(top_k_set)
{
    static const float x[10] = {2.0f, 5.0f, 3.0f, 4.0f, 3.0f, 3.0f, 1.0f, -INFINITY, 0.0f, -1.0f};
    glm_sampling_params sp;
    glm_sampling_params_init(&sp);
    sp.top_k = 2;
    ck_assert_uint_eq(support(&sp, x, 10, &NO_HIST), BITS(1, 3));
    sp.top_k = 3; /* the third value, 3.0, is tied three ways: all kept */
    ck_assert_uint_eq(support(&sp, x, 10, &NO_HIST), BITS(1, 3, 2, 4, 5));
    sp.top_k = 5;
    ck_assert_uint_eq(support(&sp, x, 10, &NO_HIST), BITS(1, 3, 2, 4, 5));
    sp.top_k = 6;
    ck_assert_uint_eq(support(&sp, x, 10, &NO_HIST), BITS(0, 1, 2, 3, 4, 5));
    const uint64_t all = BITS(0, 1, 2, 3, 4, 5, 6, 8, 9); /* -inf is never a candidate */
    sp.top_k = 9;
    ck_assert_uint_eq(support(&sp, x, 10, &NO_HIST), all);
    sp.top_k = 1000000;
    ck_assert_uint_eq(support(&sp, x, 10, &NO_HIST), all);
    sp.top_k = 0;
    ck_assert_uint_eq(support(&sp, x, 10, &NO_HIST), all);
    sp.top_k = -1;
    ck_assert_uint_eq(support(&sp, x, 10, &NO_HIST), all);

    /* kept probabilities are the renormalised softmax */
    sp.top_k = 3;
    sp.temperature = 0.8f;
    wsbuf w = ws_new(10);
    float probs[10];
    glm_sampler_distribution(&sp, x, 10, &NO_HIST, w.ws, w.size, probs);
    float y[10];
    for (int i = 0; i < 10; i++)
        y[i] = (BITS(1, 3, 2, 4, 5) >> i & 1) ? x[i] : -INFINITY;
    double p[10];
    softmax_ref(y, 10, 0.8, p);
    for (int i = 0; i < 10; i++)
        ck_assert(fabs(probs[i] - p[i]) <= 1e-6);
    ws_del(&w);
}
END_TEST

START_TEST(top_p_set)
{
    glm_sampling_params sp;
    glm_sampling_params_init(&sp);
    /* probabilities 0.5, 0.25, 0.125, 0.125 (ids 2, 0, 1, 3) */
    float x[4] = {logf(0.25f), logf(0.125f), logf(0.5f), logf(0.125f)};
    sp.top_p = 0.45f; /* the first token alone reaches it */
    ck_assert_uint_eq(support(&sp, x, 4, &NO_HIST), BITS(2));
    sp.top_p = 0.55f; /* mass above id 0 is 0.5 < 0.55: kept */
    ck_assert_uint_eq(support(&sp, x, 4, &NO_HIST), BITS(2, 0));
    sp.top_p = 0.74f;
    ck_assert_uint_eq(support(&sp, x, 4, &NO_HIST), BITS(2, 0));
    sp.top_p = 0.8f; /* id 1 crosses 0.8; id 3 ties it at the cut: both kept */
    ck_assert_uint_eq(support(&sp, x, 4, &NO_HIST), BITS(2, 0, 1, 3));
    sp.top_p = 1.0f;
    ck_assert_uint_eq(support(&sp, x, 4, &NO_HIST), BITS(0, 1, 2, 3));
    sp.top_p = 1e-9f; /* tiny: the maximum stays */
    ck_assert_uint_eq(support(&sp, x, 4, &NO_HIST), BITS(2));

    /* without the tie, the crossing token alone is kept */
    float xn[4] = {logf(0.25f), logf(0.13f), logf(0.5f), logf(0.12f)};
    sp.top_p = 0.8f;
    ck_assert_uint_eq(support(&sp, xn, 4, &NO_HIST), BITS(2, 0, 1));
    /* a tie at the maximum survives a tiny top_p */
    float xt[5] = {0.0f, 3.0f, 1.0f, 3.0f, 2.0f};
    sp.top_p = 1e-9f;
    ck_assert_uint_eq(support(&sp, xt, 5, &NO_HIST), BITS(1, 3));
    /* all equal: everything is a tie */
    float xe[6] = {1, 1, 1, 1, 1, 1};
    sp.top_p = 0.5f;
    ck_assert_uint_eq(support(&sp, xe, 6, &NO_HIST), BITS(0, 1, 2, 3, 4, 5));

    /* top_p acts on what top_k left (renormalised): 0.4 0.3 0.2 0.1 */
    float x4[4] = {logf(0.4f), logf(0.3f), logf(0.2f), logf(0.1f)};
    sp.top_p = 0.5f;
    ck_assert_uint_eq(support(&sp, x4, 4, &NO_HIST), BITS(0, 1));
    sp.top_k = 2; /* 0.571, 0.429: the first reaches 0.5 */
    ck_assert_uint_eq(support(&sp, x4, 4, &NO_HIST), BITS(0));
    sp.top_k = 0;
    /* ... and on what min_p left: min_p 0.45 drops 0.1 (< 0.18); renormalised mass
     * above id 2 is 0.778 >= 0.75 */
    sp.top_p = 0.75f;
    ck_assert_uint_eq(support(&sp, x4, 4, &NO_HIST), BITS(0, 1, 2));
    sp.min_p = 0.45f;
    ck_assert_uint_eq(support(&sp, x4, 4, &NO_HIST), BITS(0, 1));
    sp.min_p = 0.0f;
    /* ... after temperature: at T = 0.5 the probabilities are 0.533 0.3 0.133 0.033 */
    sp.top_p = 0.8f;
    ck_assert_uint_eq(support(&sp, x4, 4, &NO_HIST), BITS(0, 1, 2));
    sp.temperature = 0.5f;
    ck_assert_uint_eq(support(&sp, x4, 4, &NO_HIST), BITS(0, 1));
}
END_TEST

START_TEST(min_p_set)
{
    glm_sampling_params sp;
    glm_sampling_params_init(&sp);
    float x4[5] = {logf(0.4f), logf(0.3f), logf(0.2f), logf(0.1f), -INFINITY};
    sp.min_p = 0.55f; /* threshold 0.22 */
    ck_assert_uint_eq(support(&sp, x4, 5, &NO_HIST), BITS(0, 1));
    sp.min_p = 0.45f; /* 0.18 */
    ck_assert_uint_eq(support(&sp, x4, 5, &NO_HIST), BITS(0, 1, 2));
    sp.min_p = 0.2f; /* 0.08 */
    ck_assert_uint_eq(support(&sp, x4, 5, &NO_HIST), BITS(0, 1, 2, 3));
    sp.min_p = 1.0f; /* only the maximum (and its ties) */
    ck_assert_uint_eq(support(&sp, x4, 5, &NO_HIST), BITS(0));
    float xt[4] = {2.0f, 1.0f, 2.0f, 0.0f};
    ck_assert_uint_eq(support(&sp, xt, 4, &NO_HIST), BITS(0, 2));
    /* min_p is relative to the tempered distribution: T = 2 flattens 0.4/0.1 = 4 to 2 */
    sp.min_p = 0.45f;
    sp.temperature = 2.0f;
    ck_assert_uint_eq(support(&sp, x4, 5, &NO_HIST), BITS(0, 1, 2, 3));
}
END_TEST

typedef struct {
    float v;
    int id;
} vid;

static int vid_desc(const void *a, const void *b)
{
    const vid *x = a, *y = b;
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return x->id - y->id;
}

/* Full-sort reference of the filters (the sampler's definition, written plainly). */
static void reference_probs(const glm_sampling_params *sp, const float *logits, int V, double *p)
{
    float t = sp->temperature < GLM_SAMPLING_MIN_TEMPERATURE ? GLM_SAMPLING_MIN_TEMPERATURE
                                                              : sp->temperature;
    vid *s = malloc((size_t)V * sizeof *s);
    float ymax = -INFINITY;
    for (int i = 0; i < V; i++) {
        s[i].v = logits[i] / t;
        s[i].id = i;
        if (s[i].v > ymax)
            ymax = s[i].v;
    }
    qsort(s, (size_t)V, sizeof *s, vid_desc);
    int n = 0; /* candidates: a prefix of s */
    double floor_y = sp->min_p > 0 ? (double)ymax + log((double)sp->min_p) : -INFINITY;
    while (n < V && s[n].v != -INFINITY && (double)s[n].v >= floor_y)
        n++;
    if (sp->top_k > 0 && sp->top_k < n) {
        float kth = s[sp->top_k - 1].v;
        int m = sp->top_k;
        while (m < n && s[m].v == kth)
            m++;
        n = m;
    }
    double *w = malloc((size_t)V * sizeof *w), mass = 0;
    for (int j = 0; j < n; j++)
        mass += (w[j] = expf(s[j].v - ymax));
    if (sp->top_p < 1.0f) {
        double target = (double)sp->top_p * mass, acc = 0;
        int m = 0;
        while (m < n) {
            int g = m; /* the group of equal values starting at m */
            while (g < n && s[g].v == s[m].v)
                acc += w[g++];
            m = g;
            if (acc >= target)
                break;
        }
        n = m;
        mass = 0;
        for (int j = 0; j < n; j++)
            mass += w[j];
    }
    for (int i = 0; i < V; i++)
        p[i] = 0;
    for (int j = 0; j < n; j++)
        p[s[j].id] = w[j] / mass;
    free(w);
    free(s);
}

START_TEST(large_vocab_reference)
{
    enum { V = 154880 };
    float *x = malloc(V * sizeof *x), *probs = malloc(V * sizeof *probs);
    double *ref = malloc(V * sizeof *ref);
    wsbuf w = ws_new(V);
    test_rng t = {2024};
    static const int ks[] = {0, 1, 2, 5, 20, 50, 100, 1000, 50000, V - 1, V + 5};
    static const float ps[] = {1.0f, 0.9f, 0.95f, 0.5f, 0.999f, 0.3f, 1e-6f};
    static const float mps[] = {0.0f, 0.0f, 0.01f, 0.1f};
    static const float ts[] = {0.5f, 0.7f, 1.0f, 1.3f};
    for (int trial = 0; trial < 60; trial++) {
        int kind = trial % 3; /* 0 continuous, 1 heavy ties, 2 peaked with -inf */
        for (int i = 0; i < V; i++) {
            double g = trng_normal(&t) * 2.0;
            g = g > 8 ? 8 : (g < -8 ? -8 : g);
            if (kind == 1)
                g = floor(g * 2) / 2;
            if (kind == 2 && (test_rng_next(&t) & 7) == 0)
                g = -INFINITY;
            x[i] = (float)g;
        }
        if (kind == 2)
            for (int j = 0; j < 5; j++)
                x[test_rng_int(&t, 0, V - 1)] = 12.0f + j;
        glm_sampling_params sp;
        glm_sampling_params_init(&sp);
        sp.top_k = ks[test_rng_int(&t, 0, (int)(sizeof ks / sizeof ks[0]) - 1)];
        sp.top_p = ps[test_rng_int(&t, 0, (int)(sizeof ps / sizeof ps[0]) - 1)];
        sp.min_p = mps[test_rng_int(&t, 0, 3)];
        sp.temperature = ts[test_rng_int(&t, 0, 3)];
        if (sp.top_k == 1)
            sp.top_k = 2; /* 1 is greedy, checked elsewhere */
        glm_sampler_distribution(&sp, x, V, &NO_HIST, w.ws, w.size, probs);
        reference_probs(&sp, x, V, ref);
        int n_ref = 0, n_got = 0;
        double sum = 0;
        for (int i = 0; i < V; i++) {
            n_ref += ref[i] > 0;
            n_got += probs[i] > 0;
            sum += probs[i];
            CHECK((ref[i] > 0) == (probs[i] > 0),
                          "trial %d (k %d p %g min_p %g T %g): token %d kept %d, reference %d",
                          trial, sp.top_k, (double)sp.top_p, (double)sp.min_p,
                          (double)sp.temperature, i, probs[i] > 0, ref[i] > 0);
            CHECK(fabs(probs[i] - ref[i]) <= 1e-6 * ref[i] + 1e-9,
                          "trial %d token %d: %.9g vs %.9g", trial, i, (double)probs[i], ref[i]);
        }
        ck_assert_int_eq(n_ref, n_got);
        ck_assert_msg(fabs(sum - 1.0) < 1e-4, "trial %d: sum %.7f", trial, sum);
    }
    ws_del(&w);
    free(x);
    free(probs);
    free(ref);
}
END_TEST

/* ---- 4. processors ------------------------------------------------------------------- */

START_TEST(penalties_exact)
{
    enum { V = 64 };
    float x[V], got[V];
    test_rng t = {3};
    for (int i = 0; i < V; i++)
        x[i] = (float)(trng_normal(&t) * 4.0);
    x[5] = 0.0f;
    x[6] = -0.0f;
    x[7] = -INFINITY;
    int32_t prompt[] = {1, 2, 2, 3, 5, 7, 11, 40, 1};
    int32_t output[] = {3, 3, 3, 12, 13, 12, 2, 6, 7, 50};
    glm_sampler_history h = {prompt, 9, output, 10};
    static const float rps[] = {1.0f, 1.3f, 0.7f}, fps[] = {0.0f, 0.7f, -0.5f},
                       pps[] = {0.0f, 0.4f, -1.5f};
    wsbuf w = ws_new(V);
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 3; c++) {
                glm_sampling_params sp;
                glm_sampling_params_init(&sp);
                sp.repetition_penalty = rps[a];
                sp.frequency_penalty = fps[b];
                sp.presence_penalty = pps[c];
                memcpy(got, x, sizeof x);
                ck_assert_uint_eq(glm_sampler_process_logits(&sp, got, V, &h, w.ws, w.size), 0);
                for (int i = 0; i < V; i++) {
                    int in_prompt = 0, count = 0;
                    for (int k = 0; k < 9; k++)
                        in_prompt |= prompt[k] == i;
                    for (int k = 0; k < 10; k++)
                        count += output[k] == i;
                    float e = x[i];
                    if ((in_prompt || count) && sp.repetition_penalty != 1.0f)
                        e = e > 0 ? e / sp.repetition_penalty : e * sp.repetition_penalty;
                    if (count) {
                        e = e - sp.frequency_penalty * (float)count;
                        e = e - sp.presence_penalty;
                    }
                    ck_assert_msg(memcmp(&e, &got[i], sizeof e) == 0 || (e == got[i] && e == 0),
                                  "rp %g fp %g pp %g token %d: %.9g, expected %.9g",
                                  (double)sp.repetition_penalty, (double)sp.frequency_penalty,
                                  (double)sp.presence_penalty, i, (double)got[i], (double)e);
                }
            }
    ws_del(&w);
}
END_TEST

START_TEST(logit_bias_and_clamp)
{
    enum { V = 16 };
    float x[V], got[V];
    for (int i = 0; i < V; i++)
        x[i] = (float)i * 0.25f;
    glm_sampling_logit_bias b[] = {{0, 2.5f},       {1, 1000.0f}, {2, -1e30f},
                                   {3, INFINITY},   {4, -INFINITY}, {5, -100.0f},
                                   {6, 100.0f}};
    glm_sampling_params sp;
    glm_sampling_params_init(&sp);
    sp.logit_bias = b;
    sp.n_logit_bias = 7;
    ck_assert_int_eq(glm_sampling_params_validate(&sp, V, NULL, NULL, 0), GLM_OK);
    wsbuf w = ws_new(V);
    memcpy(got, x, sizeof x);
    glm_sampler_process_logits(&sp, got, V, &NO_HIST, w.ws, w.size);
    static const float add[V] = {2.5f, 100, -100, 100, -100, -100, 100};
    for (int i = 0; i < V; i++)
        ck_assert_msg(got[i] == x[i] + add[i], "token %d: %g", i, (double)got[i]);
    /* -100 makes the argmax practically impossible; +100 makes a token certain */
    glm_sampling_logit_bias nb[] = {{15, -100.0f}};
    sp.logit_bias = nb;
    sp.n_logit_bias = 1;
    glm_rng r;
    glm_rng_seed(&r, 1);
    glm_sampler_result res;
    for (int k = 0; k < 20000; k++)
        CHECK(sample_once(&sp, &r, x, V, &NO_HIST, &w, &res) != 15, "draw %d: the -100 token", k);
    glm_sampling_logit_bias pb[] = {{3, 100.0f}};
    sp.logit_bias = pb;
    for (int k = 0; k < 1000; k++)
        CHECK(sample_once(&sp, &r, x, V, &NO_HIST, &w, &res) == 3, "draw %d: not the +100", k);
    ws_del(&w);
}
END_TEST

START_TEST(min_tokens_masks_stops)
{
    enum { V = 12 };
    float x[V];
    for (int i = 0; i < V; i++)
        x[i] = 0.1f * (float)i;
    x[9] = 5.0f; /* eos would win */
    int32_t eos[] = {9, 7}, stop[] = {3};
    int32_t out[] = {1, 2, 4};
    glm_sampling_params sp;
    glm_sampling_params_init(&sp);
    sp.eos_token_ids = eos;
    sp.n_eos_token_ids = 2;
    sp.stop_token_ids = stop;
    sp.n_stop_token_ids = 1;
    sp.min_tokens = 2;
    wsbuf w = ws_new(V);
    for (int ignore = 0; ignore < 2; ignore++) {
        sp.ignore_eos = ignore; /* masked all the same (vLLM's all_stop_token_ids) */
        for (int n_out = 0; n_out <= 3; n_out++) {
            glm_sampler_history h = {NULL, 0, out, n_out};
            float got[V];
            memcpy(got, x, sizeof x);
            glm_sampler_process_logits(&sp, got, V, &h, w.ws, w.size);
            for (int i = 0; i < V; i++) {
                int masked = n_out < 2 && (i == 9 || i == 7 || i == 3);
                ck_assert_msg(masked ? got[i] == -INFINITY : got[i] == x[i],
                              "n_out %d token %d: %g", n_out, i, (double)got[i]);
            }
            uint64_t s = support(&sp, x, V, &h);
            ck_assert_int_eq((int)(s >> 9 & 1), n_out >= 2);
            ck_assert_int_eq((int)(s >> 3 & 1), n_out >= 2);
            /* greedy: eos wins only once allowed */
            glm_sampling_params g = sp;
            g.temperature = 0;
            glm_rng r;
            glm_rng_seed(&r, 3);
            glm_sampler_result res;
            ck_assert_int_eq(sample_once(&g, &r, x, V, &h, &w, &res), n_out >= 2 ? 9 : 11);
        }
    }
    ws_del(&w);
}
END_TEST

/* ---- 5. generator and seeds ---------------------------------------------------------- */

START_TEST(rng_reference)
{
    /* splitmix64 from 1234567 and xoshiro256** from {1, 2, 3, 4}: the published
     * reference outputs */
    glm_rng r;
    glm_rng_seed(&r, 1234567);
    ck_assert(r.s[0] == 6457827717110365317ull && r.s[1] == 3203168211198807973ull &&
              r.s[2] == 9817491932198370423ull && r.s[3] == 4593380528125082431ull);
    r.s[0] = 1;
    r.s[1] = 2;
    r.s[2] = 3;
    r.s[3] = 4;
    static const uint64_t want[6] = {11520ull, 0ull, 1509978240ull, 1215971899390074240ull,
                                     1216172134540287360ull, 607988272756665600ull};
    for (int i = 0; i < 6; i++)
        ck_assert(glm_rng_next(&r) == want[i]);
    /* uniform in [0, 1), mean 1/2 */
    glm_rng_seed(&r, 0);
    double s = 0;
    for (int i = 0; i < 100000; i++) {
        double u = glm_rng_uniform(&r);
        CHECK(u >= 0.0 && u < 1.0, "uniform %g", u);
        s += u;
    }
    ck_assert(fabs(s / 100000 - 0.5) < 5 * sqrt(1.0 / 12 / 100000));
    /* entropy seeding returns a seed that replays the stream */
    glm_rng a, b;
    uint64_t seed = glm_rng_seed_entropy(&a);
    glm_rng_seed(&b, seed);
    for (int i = 0; i < 10; i++)
        ck_assert(glm_rng_next(&a) == glm_rng_next(&b));
}
END_TEST

/* logits for step k of a synthetic sequence */
static void step_logits(float *x, int V, int k)
{
    for (int i = 0; i < V; i++)
        x[i] = (float)sin(0.37 * i + 0.11 * k) * 2.0f + (float)((i * 7 + k) % 5) * 0.1f;
}

static void run_sequence(uint64_t seed, int steps, int V, int32_t *toks, int interleave)
{
    glm_sampling_params sp, other;
    glm_sampling_params_init(&sp);
    sp.temperature = 0.9f;
    sp.top_p = 0.95f;
    sp.top_k = 40;
    sp.frequency_penalty = 0.2f;
    glm_sampling_params_init(&other);
    other.temperature = 1.7f;
    other.min_p = 0.02f;
    glm_rng r, ro;
    glm_rng_seed(&r, seed);
    glm_rng_seed(&ro, seed ^ 0x5555);
    wsbuf w = ws_new(V), wo = ws_new(V);
    float *x = malloc((size_t)V * sizeof *x), *xo = malloc((size_t)V * sizeof *xo);
    int32_t other_out[64];
    glm_sampler_result res;
    for (int k = 0; k < steps; k++) {
        /* another sequence of the batch, sampled before and after on the same and on
         * its own workspace, must not disturb this one */
        for (int j = 0; j < interleave; j++) {
            step_logits(xo, V, 1000 + k * 3 + j);
            glm_sampler_history ho = {NULL, 0, other_out, k < 64 ? k : 64};
            for (int q = 0; q < 64; q++)
                other_out[q] = (q * 13 + k) % V;
            glm_sampler_sample(&other, &ro, xo, V, &ho, (j & 1) ? w.ws : wo.ws, w.size, &res);
        }
        step_logits(x, V, k);
        glm_sampler_history h = {NULL, 0, toks, k};
        glm_sampler_sample(&sp, &r, x, V, &h, w.ws, w.size, &res);
        toks[k] = res.token;
    }
    free(x);
    free(xo);
    ws_del(&w);
    ws_del(&wo);
}

START_TEST(seeded_reproducible)
{
    enum { V = 3000, STEPS = 300 };
    static int32_t a[STEPS], b[STEPS], c[STEPS], d[STEPS];
    run_sequence(42, STEPS, V, a, 0);
    run_sequence(42, STEPS, V, b, 3);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    run_sequence(42, STEPS, V, d, 1);
    ck_assert(memcmp(a, d, sizeof a) == 0);
    run_sequence(43, STEPS, V, c, 0);
    int diff = 0;
    for (int i = 0; i < STEPS; i++)
        diff += a[i] != c[i];
    ck_assert_msg(diff > STEPS / 4, "seeds 42 and 43 differ in %d of %d tokens", diff, STEPS);

    /* exactly one draw per call, greedy or not, filtered or not, even all-masked */
    float x[V];
    step_logits(x, V, 0);
    glm_sampling_params sp;
    glm_rng r, ref;
    glm_rng_seed(&r, 9);
    glm_rng_seed(&ref, 9);
    wsbuf w = ws_new(V);
    glm_sampler_result res;
    for (int k = 0; k < 40; k++) {
        glm_sampling_params_init(&sp);
        sp.temperature = (k % 4 == 0) ? 0.0f : 1.0f;
        sp.top_k = (k % 3 == 0) ? 1 : 50;
        sp.top_p = (k % 5 == 0) ? 0.5f : 1.0f;
        float xs[V];
        memcpy(xs, x, sizeof x);
        if (k % 7 == 0)
            for (int i = 0; i < V; i++)
                xs[i] = NAN;
        glm_sampler_sample(&sp, &r, xs, V, &NO_HIST, w.ws, w.size, &res);
        glm_rng_next(&ref);
        ck_assert(memcmp(&r, &ref, sizeof r) == 0);
    }
    ws_del(&w);
}
END_TEST

/* ---- 6. logprobs --------------------------------------------------------------------- */

START_TEST(logprobs_raw)
{
    enum { V = 20 };
    float x[V];
    test_rng t = {11};
    for (int i = 0; i < V; i++)
        x[i] = (float)trng_normal(&t) * 2.0f;
    x[4] = x[13]; /* a tie: id 4 listed first */
    int32_t prompt[] = {0, 1, 2}, out[] = {3, 3};
    glm_sampler_history h = {prompt, 3, out, 2};
    glm_sampling_params sp;
    glm_sampling_params_init(&sp);
    sp.logprobs = 1;
    sp.top_logprobs = 20;
    /* processing must not change the reported (raw) logprobs */
    sp.temperature = 0.5f;
    sp.repetition_penalty = 1.5f;
    sp.presence_penalty = 1.0f;
    sp.top_k = 3;
    double mx = -INFINITY, s = 0, lp[V];
    for (int i = 0; i < V; i++)
        mx = fmax(mx, x[i]);
    for (int i = 0; i < V; i++)
        s += exp(x[i] - mx);
    for (int i = 0; i < V; i++)
        lp[i] = x[i] - mx - log(s);
    wsbuf w = ws_new(V);
    glm_rng r;
    glm_rng_seed(&r, 5);
    for (int rep = 0; rep < 50; rep++) {
        glm_sampler_result res;
        int tok = sample_once(&sp, &r, x, V, &h, &w, &res);
        ck_assert_int_eq(res.n_top, V);
        double sum = 0;
        int seen_tok = 0;
        for (int k = 0; k < V; k++) {
            const glm_sampler_logprob *e = &res.top[k];
            sum += exp(e->logprob);
            ck_assert(fabs(e->logprob - lp[e->id]) < 1e-5);
            if (k > 0) {
                ck_assert(res.top[k - 1].logprob >= e->logprob);
                if (res.top[k - 1].logprob == e->logprob)
                    ck_assert_int_lt(res.top[k - 1].id, e->id);
            }
            if (e->id == tok) {
                seen_tok = 1;
                ck_assert(e->logprob == res.logprob);
            }
        }
        ck_assert(seen_tok);
        ck_assert_msg(fabs(sum - 1.0) < 1e-5, "logprobs sum to %.8f", sum);
        ck_assert(fabs(res.logprob - lp[tok]) < 1e-5);
    }
    /* the tie is ordered by id */
    glm_sampler_result res;
    sample_once(&sp, &r, x, V, &h, &w, &res);
    for (int k = 0; k + 1 < V; k++)
        if (res.top[k].id == 13)
            ck_assert_msg(0, "id 13 listed before its tie 4");
        else if (res.top[k].id == 4)
            break;
    /* fewer alternatives, none, off */
    sp.top_logprobs = 3;
    sample_once(&sp, &r, x, V, &h, &w, &res);
    ck_assert_int_eq(res.n_top, 3);
    sp.top_logprobs = 0;
    int tok = sample_once(&sp, &r, x, V, &h, &w, &res);
    ck_assert_int_eq(res.n_top, 0);
    ck_assert(fabs(res.logprob - lp[tok]) < 1e-5);
    sp.logprobs = 0;
    sample_once(&sp, &r, x, V, &h, &w, &res);
    ck_assert_int_eq(res.n_top, 0);
    ws_del(&w);

    /* a large vocabulary: top 20 equal the sorted reference */
    enum { VL = 154880 };
    float *xl = malloc(VL * sizeof *xl);
    for (int i = 0; i < VL; i++)
        xl[i] = (float)floor(trng_normal(&t) * 8) / 4; /* many ties */
    wsbuf wl = ws_new(VL);
    glm_sampling_params_init(&sp);
    sp.logprobs = 1;
    sp.top_logprobs = 20;
    sp.temperature = 0;
    sample_once(&sp, &r, xl, VL, &NO_HIST, &wl, &res);
    vid *srt = malloc(VL * sizeof *srt);
    for (int i = 0; i < VL; i++) {
        srt[i].v = xl[i];
        srt[i].id = i;
    }
    qsort(srt, VL, sizeof *srt, vid_desc);
    ck_assert_int_eq(res.token, srt[0].id);
    for (int k = 0; k < 20; k++)
        ck_assert_int_eq(res.top[k].id, srt[k].id);
    free(srt);
    free(xl);
    ws_del(&wl);
}
END_TEST

/* ---- 7. non-finite logits ------------------------------------------------------------ */

START_TEST(nonfinite_logits)
{
    enum { V = 50 };
    float x[V];
    glm_sampling_params sp;
    glm_sampling_params_init(&sp);
    sp.logprobs = 1;
    sp.top_logprobs = 5;
    wsbuf w = ws_new(V);
    glm_rng r;
    glm_rng_seed(&r, 1);
    glm_sampler_result res;

    /* all NaN: fallback to the first eos id, flagged */
    for (int i = 0; i < V; i++)
        x[i] = NAN;
    int32_t eos[] = {17, 3};
    sp.eos_token_ids = eos;
    sp.n_eos_token_ids = 2;
    ck_assert_int_eq(sample_once(&sp, &r, x, V, &NO_HIST, &w, &res), 17);
    ck_assert_uint_eq(res.flags, GLM_SAMPLE_NONFINITE | GLM_SAMPLE_NO_CANDIDATE);
    ck_assert(res.logprob == -INFINITY);
    sp.n_eos_token_ids = 0;
    ck_assert_int_eq(sample_once(&sp, &r, x, V, &NO_HIST, &w, &res), 0);
    sp.temperature = 0;
    ck_assert_int_eq(sample_once(&sp, &r, x, V, &NO_HIST, &w, &res), 0);
    ck_assert(res.flags & GLM_SAMPLE_NO_CANDIDATE);
    sp.temperature = 1;
    /* all -inf: no candidate, but nothing non-finite in the NaN/+inf sense */
    for (int i = 0; i < V; i++)
        x[i] = -INFINITY;
    sample_once(&sp, &r, x, V, &NO_HIST, &w, &res);
    ck_assert_uint_eq(res.flags, GLM_SAMPLE_NO_CANDIDATE);
    /* min_tokens masking the only finite token: no candidate */
    x[3] = 1.0f;
    sp.eos_token_ids = eos;
    sp.n_eos_token_ids = 2;
    sp.min_tokens = 1;
    ck_assert_int_eq(sample_once(&sp, &r, x, V, &NO_HIST, &w, &res), 17);
    ck_assert_uint_eq(res.flags, GLM_SAMPLE_NO_CANDIDATE);
    sp.min_tokens = 0;

    /* two +inf tokens share the mass; raw logprob -log 2 */
    for (int i = 0; i < V; i++)
        x[i] = (float)i * 0.1f;
    x[10] = INFINITY;
    x[40] = INFINITY;
    x[41] = NAN;
    int c10 = 0;
    for (int k = 0; k < 20000; k++) {
        int tok = sample_once(&sp, &r, x, V, &NO_HIST, &w, &res);
        CHECK(tok == 10 || tok == 40, "token %d", tok);
        CHECK(res.flags == GLM_SAMPLE_NONFINITE, "flags %u", res.flags);
        CHECK(fabs(res.logprob + log(2.0)) < 1e-6, "logprob %g", (double)res.logprob);
        c10 += tok == 10;
    }
    ck_assert(fabs(c10 / 20000.0 - 0.5) < 5 * sqrt(0.25 / 20000));
    ck_assert(res.top[0].id == 10 && res.top[1].id == 40 && res.top[2].logprob == -INFINITY);

    /* huge finite logits overflow under temperature / penalties to +inf: still valid */
    for (int i = 0; i < V; i++)
        x[i] = (i % 2) ? FLT_MAX : -FLT_MAX;
    sp.temperature = 0.01f;
    sp.repetition_penalty = 0.5f;
    int32_t prompt[] = {1, 2, 3};
    glm_sampler_history h = {prompt, 3, NULL, 0};
    for (int k = 0; k < 200; k++) {
        int tok = sample_once(&sp, &r, x, V, &h, &w, &res);
        CHECK(tok % 2 == 1, "token %d", tok);
    }
    ws_del(&w);

    /* random hostile rows and parameters */
    test_rng t = {77};
    for (int trial = 0; trial < 3000; trial++) {
        int n = test_rng_int(&t, 1, 300);
        float *y = malloc((size_t)n * sizeof *y);
        int n_ok = 0; /* tokens no processing can turn into -inf: +inf or moderate */
        for (int i = 0; i < n; i++) {
            int kind = test_rng_int(&t, 0, 9);
            y[i] = kind == 0 ? NAN
                 : kind == 1 ? INFINITY
                 : kind == 2 ? -INFINITY
                 : kind == 3 ? (test_rng_next(&t) & 1 ? FLT_MAX : -FLT_MAX)
                 : (float)(trng_normal(&t) * 10);
            if (kind == 0 && test_rng_int(&t, 0, 3) == 0)
                y[i] = -NAN;
            if ((test_rng_next(&t) & 3) == 0)
                y[i] = NAN;
            n_ok += y[i] == INFINITY || fabsf(y[i]) < 1e6f;
        }
        glm_sampling_params p;
        glm_sampling_params_init(&p);
        p.temperature = (float)(test_rng_unit(&t) * 2.0);
        if (test_rng_int(&t, 0, 4) == 0)
            p.temperature = 0;
        p.top_k = test_rng_int(&t, -1, n + 2);
        p.top_p = (float)fmax(1e-7, test_rng_unit(&t));
        p.min_p = (float)(test_rng_int(&t, 0, 1) ? test_rng_unit(&t) : 0);
        p.repetition_penalty = (float)(0.1 + test_rng_unit(&t) * 3);
        p.frequency_penalty = (float)(test_rng_unit(&t) * 4 - 2);
        p.presence_penalty = (float)(test_rng_unit(&t) * 4 - 2);
        p.logprobs = test_rng_int(&t, 0, 1);
        p.top_logprobs = p.logprobs ? test_rng_int(&t, 0, 20) : 0;
        int32_t hist[20];
        for (int i = 0; i < 20; i++)
            hist[i] = test_rng_int(&t, 0, n - 1);
        glm_sampler_history hh = {hist, 10, hist + 10, test_rng_int(&t, 0, 10)};
        CHECK(glm_sampling_params_validate(&p, n, NULL, NULL, 0) == GLM_OK, "trial %d", trial);
        wsbuf ww = ws_new(n);
        glm_rng rr;
        glm_rng_seed(&rr, (uint64_t)trial);
        float *pr = malloc((size_t)n * sizeof *pr);
        unsigned fl = glm_sampler_distribution(&p, y, n, &hh, ww.ws, ww.size, pr);
        double s = 0;
        for (int i = 0; i < n; i++) {
            CHECK(pr[i] >= 0.0f && pr[i] <= 1.0f, "trial %d: probability %g", trial, (double)pr[i]);
            s += pr[i];
        }
        CHECK(fabs(s - 1) < 1e-5, "trial %d: probabilities sum to %.7f", trial, s);
        for (int k = 0; k < 5; k++) {
            int tok = sample_once(&p, &rr, y, n, &hh, &ww, &res);
            CHECK(res.flags == fl, "trial %d: flags %u, distribution's %u", trial, res.flags, fl);
            if (n_ok > 0) {
                CHECK(!(res.flags & GLM_SAMPLE_NO_CANDIDATE), "trial %d: no candidate", trial);
                CHECK(!isnan(y[tok]) && y[tok] != -INFINITY, "trial %d: token %d of logit %g",
                      trial, tok, (double)y[tok]);
                CHECK(pr[tok] > 0.0f, "trial %d: token %d of probability 0", trial, tok);
            }
            if (p.logprobs)
                CHECK(!isnan(res.logprob) && res.logprob <= 0.0f, "trial %d: logprob %g", trial,
                      (double)res.logprob);
            for (int q = 0; q < res.n_top; q++)
                CHECK(res.top[q].id >= 0 && res.top[q].id < n && !isnan(res.top[q].logprob),
                      "trial %d: top %d", trial, q);
        }
        free(pr);
        ws_del(&ww);
        free(y);
    }
}
END_TEST

/* ---- 8. validation ------------------------------------------------------------------- */

static void expect_bad(const glm_sampling_params *p, int vocab, const char *name)
{
    char err[GLM_ERRLEN] = "";
    const char *param = NULL;
    ck_assert_int_eq(glm_sampling_params_validate(p, vocab, &param, err, sizeof err), GLM_ERR);
    ck_assert_msg(param && strcmp(param, name) == 0, "expected param %s, got %s (%s)", name,
                  param ? param : "(null)", err);
    ck_assert_msg(strncmp(err, name, strlen(name)) == 0 && err[strlen(name)] == ' ',
                  "message does not start with %s: '%s'", name, err);
}

START_TEST(validation)
{
    enum { V = 1000 };
    glm_sampling_params p;
    glm_sampling_params_init(&p);
    char err[GLM_ERRLEN];
    const char *param = "x";
    ck_assert_int_eq(glm_sampling_params_validate(&p, V, &param, err, sizeof err), GLM_OK);
    ck_assert(param == NULL);

#define BAD(field, value, name)                                                                 \
    do {                                                                                        \
        glm_sampling_params q = p;                                                              \
        q.field = value;                                                                        \
        expect_bad(&q, V, name);                                                                \
    } while (0)
#define GOOD(field, value)                                                                      \
    do {                                                                                        \
        glm_sampling_params q = p;                                                              \
        q.field = value;                                                                        \
        ck_assert_msg(glm_sampling_params_validate(&q, V, NULL, err, sizeof err) == GLM_OK,     \
                      #field " = " #value ": %s", err);                                         \
    } while (0)

    BAD(n, 0, "n");
    BAD(n, GLM_SAMPLING_MAX_N + 1, "n");
    GOOD(n, GLM_SAMPLING_MAX_N);
    BAD(temperature, -0.01f, "temperature");
    BAD(temperature, 2.01f, "temperature");
    BAD(temperature, NAN, "temperature");
    BAD(temperature, INFINITY, "temperature");
    GOOD(temperature, 0.0f);
    GOOD(temperature, 2.0f);
    BAD(top_p, 0.0f, "top_p");
    BAD(top_p, -0.5f, "top_p");
    BAD(top_p, 1.0001f, "top_p");
    BAD(top_p, NAN, "top_p");
    GOOD(top_p, 1.0f);
    GOOD(top_p, 1e-9f);
    BAD(top_k, -2, "top_k");
    GOOD(top_k, -1);
    GOOD(top_k, 0);
    GOOD(top_k, 1);
    GOOD(top_k, 1000000);
    BAD(min_p, -0.1f, "min_p");
    BAD(min_p, 1.1f, "min_p");
    BAD(min_p, NAN, "min_p");
    GOOD(min_p, 1.0f);
    BAD(presence_penalty, 2.5f, "presence_penalty");
    BAD(presence_penalty, -2.1f, "presence_penalty");
    BAD(presence_penalty, NAN, "presence_penalty");
    GOOD(presence_penalty, -2.0f);
    GOOD(presence_penalty, 2.0f);
    BAD(frequency_penalty, 3.0f, "frequency_penalty");
    BAD(frequency_penalty, -INFINITY, "frequency_penalty");
    GOOD(frequency_penalty, -2.0f);
    BAD(repetition_penalty, 0.0f, "repetition_penalty");
    BAD(repetition_penalty, -1.0f, "repetition_penalty");
    BAD(repetition_penalty, INFINITY, "repetition_penalty");
    BAD(repetition_penalty, NAN, "repetition_penalty");
    GOOD(repetition_penalty, 0.001f);
    GOOD(repetition_penalty, 5.0f);
    BAD(top_logprobs, 21, "top_logprobs");
    BAD(top_logprobs, -1, "top_logprobs");
    BAD(top_logprobs, 5, "top_logprobs"); /* without logprobs */
    {
        glm_sampling_params q = p;
        q.logprobs = 1;
        q.top_logprobs = 20;
        ck_assert_int_eq(glm_sampling_params_validate(&q, V, NULL, NULL, 0), GLM_OK);
    }
    {
        glm_sampling_params q = p;
        q.has_max_tokens = 1;
        q.max_tokens = 0;
        expect_bad(&q, V, "max_tokens");
        q.max_tokens = -5;
        expect_bad(&q, V, "max_tokens");
        q.max_tokens = 1;
        ck_assert_int_eq(glm_sampling_params_validate(&q, V, NULL, NULL, 0), GLM_OK);
        q.min_tokens = 2;
        expect_bad(&q, V, "min_tokens");
        q.max_tokens = 2;
        ck_assert_int_eq(glm_sampling_params_validate(&q, V, NULL, NULL, 0), GLM_OK);
        q.has_max_tokens = 0; /* unlimited: any min_tokens */
        q.min_tokens = 100000;
        ck_assert_int_eq(glm_sampling_params_validate(&q, V, NULL, NULL, 0), GLM_OK);
    }
    BAD(min_tokens, -1, "min_tokens");
    {
        glm_sampling_logit_bias b1[] = {{5, 1.0f}, {V, 1.0f}}, b2[] = {{-1, 0.0f}},
                                b3[] = {{7, NAN}}, b4[] = {{V - 1, -INFINITY}, {0, 1e9f}};
        glm_sampling_params q = p;
        q.logit_bias = b1;
        q.n_logit_bias = 2;
        expect_bad(&q, V, "logit_bias");
        q.logit_bias = b2;
        q.n_logit_bias = 1;
        expect_bad(&q, V, "logit_bias");
        q.logit_bias = b3;
        expect_bad(&q, V, "logit_bias");
        q.logit_bias = b4; /* out of range values are clamped, not refused */
        q.n_logit_bias = 2;
        ck_assert_int_eq(glm_sampling_params_validate(&q, V, NULL, NULL, 0), GLM_OK);
    }
    {
        int32_t bad_ids[] = {1, V}, neg[] = {-3}, ok[] = {0, V - 1};
        glm_sampling_params q = p;
        q.stop_token_ids = bad_ids;
        q.n_stop_token_ids = 2;
        expect_bad(&q, V, "stop_token_ids");
        q.stop_token_ids = ok;
        ck_assert_int_eq(glm_sampling_params_validate(&q, V, NULL, NULL, 0), GLM_OK);
        q.eos_token_ids = neg;
        q.n_eos_token_ids = 1;
        expect_bad(&q, V, "eos_token_ids");
    }
    /* n > 1 with greedy is accepted (OpenAI), unlike vLLM */
    {
        glm_sampling_params q = p;
        q.n = 4;
        q.temperature = 0;
        ck_assert_int_eq(glm_sampling_params_validate(&q, V, NULL, NULL, 0), GLM_OK);
    }
    /* a message reads well */
    {
        glm_sampling_params q = p;
        q.top_p = 0;
        glm_sampling_params_validate(&q, V, NULL, err, sizeof err);
        ck_assert_str_eq(err, "top_p must be in (0, 1], got 0");
    }
#undef BAD
#undef GOOD
}
END_TEST

START_TEST(params_copy)
{
    glm_sampling_logit_bias b[] = {{1, 2.0f}, {3, -4.0f}};
    int32_t stop[] = {5, 6, 7}, eos[] = {9};
    glm_sampling_params p, c;
    glm_sampling_params_init(&p);
    p.logit_bias = b;
    p.n_logit_bias = 2;
    p.stop_token_ids = stop;
    p.n_stop_token_ids = 3;
    p.eos_token_ids = eos;
    p.n_eos_token_ids = 1;
    p.temperature = 0.3f;
    glm_sampling_params_copy(&c, &p);
    b[0].bias = 100;
    stop[0] = 0;
    eos[0] = 0;
    ck_assert(c.logit_bias != b && c.logit_bias[0].bias == 2.0f && c.logit_bias[1].id == 3);
    ck_assert(c.stop_token_ids[0] == 5 && c.stop_token_ids[2] == 7 && c.eos_token_ids[0] == 9);
    ck_assert(c.temperature == 0.3f && c.n_stop_token_ids == 3);
    glm_sampling_params_release(&c);
    ck_assert(c.logit_bias == NULL && c.n_logit_bias == 0 && c.n_stop_token_ids == 0);
    glm_sampling_params_release(&c); /* idempotent */
    glm_sampling_params_release(&p); /* borrowed lists: nothing to free */
    ck_assert(p.logit_bias == b);
    glm_sampling_params_init(&p);
    glm_sampling_params_copy(&c, &p); /* empty lists: no allocation */
    glm_sampling_params_release(&c);
}
END_TEST

/* ---- 9. speculative decoding's verification --------------------------------------- */

/* n verifications of draft against x: the tokens against p[] (as check_frequencies), the
 * acceptances against p[draft] (5 sigma; never when it is 0). */
static void check_verify(const glm_sampling_params *sp, const float *x, int V, const glm_sampler_history *h,
                         const double *p, int32_t draft, int n, uint64_t seed)
{
    wsbuf w = ws_new(V);
    glm_rng r;
    glm_rng_seed(&r, seed);
    long *cnt = calloc((size_t)V, sizeof *cnt), acc = 0;
    glm_sampler_result res;
    for (int k = 0; k < n; k++) {
        int a = glm_sampler_verify(sp, &r, x, V, h, draft, w.ws, w.size, &res);
        ck_assert(res.token >= 0 && res.token < V);
        ck_assert(!a || res.token == draft);
        acc += a;
        cnt[res.token]++;
    }
    double pd = p[draft], sd = sqrt(pd * (1 - pd) / n);
    ck_assert_msg(fabs(acc / (double)n - pd) <= 5 * sd + 1e-12, "draft %d accepted %.5f of the time, p %.5f",
                  draft, acc / (double)n, pd);
    double chi2 = 0;
    int df = -1;
    for (int i = 0; i < V; i++) {
        if (p[i] == 0.0) {
            ck_assert_msg(cnt[i] == 0, "token %d of probability 0 returned %ld times", i, cnt[i]);
            continue;
        }
        double e = p[i] * n, sigma = sqrt(p[i] * (1 - p[i]) / n);
        chi2 += (cnt[i] - e) * (cnt[i] - e) / e;
        df++;
        ck_assert_msg(fabs(cnt[i] / (double)n - p[i]) <= 5 * sigma + 1e-12,
                      "draft %d: token %d returned %.5f of the time, probability %.5f", draft, i,
                      cnt[i] / (double)n, p[i]);
    }
    if (df > 0) {
        double pv = chi2_pvalue(chi2, df);
        ck_assert_msg(pv > 1e-6, "draft %d: chi-square %.2f with %d df: p-value %.3g", draft, chi2, df, pv);
    }
    free(cnt);
    ws_del(&w);
}

START_TEST(verify_keeps_distribution)
{
    enum { V = 40 };
    float x[V];
    test_rng t = {11};
    for (int i = 0; i < V; i++)
        x[i] = (float)trng_normal(&t);
    int32_t prompt[] = {1, 2, 3}, output[] = {4, 5};
    glm_sampler_history h = {prompt, 3, output, 2};
    glm_sampling_params sp;
    glm_sampling_params_init(&sp);
    sp.temperature = 0.8f;
    sp.top_k = 10;
    sp.top_p = 0.9f;
    sp.repetition_penalty = 1.1f;
    wsbuf w = ws_new(V);
    float probs[V];
    glm_sampler_distribution(&sp, x, V, &h, w.ws, w.size, probs);
    double p[V];
    int32_t best = 0, low = -1, out = -1;
    for (int i = 0; i < V; i++) {
        p[i] = probs[i];
        if (p[i] > p[best])
            best = i;
    }
    for (int i = 0; i < V; i++) { /* the least likely candidate, and one outside the candidates */
        if (p[i] > 0 && i != best && (low < 0 || p[i] < p[low]))
            low = i;
        if (p[i] == 0 && out < 0)
            out = i;
    }
    ck_assert(low >= 0 && out >= 0);
    check_verify(&sp, x, V, &h, p, best, 200000, 21);
    check_verify(&sp, x, V, &h, p, low, 200000, 22);
    check_verify(&sp, x, V, &h, p, out, 200000, 23);

    /* greedy: the argmax accepted, anything else replaced by it */
    glm_sampling_params g;
    glm_sampling_params_init(&g);
    g.temperature = 0.0f;
    glm_rng r, r2;
    glm_rng_seed(&r, 5);
    r2 = r;
    glm_sampler_result res;
    int32_t am = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[am])
            am = i;
    ck_assert_int_eq(glm_sampler_verify(&g, &r, x, V, &NO_HIST, am, w.ws, w.size, &res), 1);
    ck_assert_int_eq(res.token, am);
    ck_assert_int_eq(glm_sampler_verify(&g, &r, x, V, &NO_HIST, (am + 1) % V, w.ws, w.size, &res), 0);
    ck_assert_int_eq(res.token, am);
    /* two draws a call, whatever the path */
    for (int i = 0; i < 4; i++)
        glm_rng_next(&r2);
    ck_assert_uint_eq(glm_rng_next(&r), glm_rng_next(&r2));
    glm_rng_seed(&r, 6);
    r2 = r;
    glm_sampler_verify(&sp, &r, x, V, &h, best, w.ws, w.size, &res);
    glm_rng_next(&r2);
    glm_rng_next(&r2);
    ck_assert_uint_eq(glm_rng_next(&r), glm_rng_next(&r2));
    ws_del(&w);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("sampler");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, greedy_argmax);
    tcase_add_test(tc, temperature_frequencies);
    tcase_add_test(tc, mixed_frequencies);
    tcase_add_test(tc, large_vocab_frequencies);
    tcase_add_test(tc, top_k_set);
    tcase_add_test(tc, top_p_set);
    tcase_add_test(tc, min_p_set);
    tcase_add_test(tc, large_vocab_reference);
    tcase_add_test(tc, penalties_exact);
    tcase_add_test(tc, logit_bias_and_clamp);
    tcase_add_test(tc, min_tokens_masks_stops);
    tcase_add_test(tc, rng_reference);
    tcase_add_test(tc, seeded_reproducible);
    tcase_add_test(tc, logprobs_raw);
    tcase_add_test(tc, nonfinite_logits);
    tcase_add_test(tc, validation);
    tcase_add_test(tc, params_copy);
    tcase_add_test(tc, verify_keeps_distribution);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
