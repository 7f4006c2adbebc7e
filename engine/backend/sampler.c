/*
 * sampler.c - sampling parameters, the per-sequence generator and the sampler
 * (see sampler.h for the semantics and their references).
 *
 * Design. One call works on a private copy x of the logits row in the workspace.
 * After the processors (min_tokens, logit_bias, penalties) and the temperature,
 * every filter is a threshold on the logit, applied in vLLM's order: min_p (a fixed
 * offset below the maximum), top_k (the k-th largest logit), top_p (the logit at
 * which the descending cumulative mass of what is left reaches top_p). Logits are
 * compared through keys, order-preserving 32-bit images of the floats. The k-th
 * largest key and the top_p cut come from one three-level radix selection (11 + 11
 * + 10 key bits, a histogram of counts or of weights per level), so nothing is ever
 * sorted: top_k costs a pass over the vocabulary and top_p a pass over the tokens
 * heavy enough to matter (see prepare). Survivors form a candidate list (ids
 * ascending, weights exp(y - ymax) in float); the draw is the inverse CDF over it
 * with one uniform double, masses summed in double in a fixed order (8 lanes, then
 * blocks). The loops over the vocabulary are written on bit patterns with integer
 * selects so that GCC vectorises them under the project's strict float flags.
 *
 * Workspace for a vocabulary of V (one block, 8-byte aligned):
 *   hist   double [2048]   radix histogram (weights); then the draw's block sums
 *   hcnt   uint32 [2048]   radix histogram (counts)
 *   x      float  [V]      the processed logits
 *   idx    int32  [V]      candidate ids, ascending
 *   key    uint32 [V]      keys; the output counts while the penalties run
 *   w      float  [V]      candidate weights; the raw exp() while logprobs are taken
 *   pos    uint32 [V]      radix selection: positions of the candidates still in play
 *   seen   uint8  [2][ceil(V/8)]  bitmaps: prompt|output tokens, output tokens
 */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* getentropy */
#endif
#include "backend/sampler.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"

#define HIST_BUCKETS 2048

/* ---- parameters ---------------------------------------------------------------------- */

void glm_sampling_params_init(glm_sampling_params *p)
{
    memset(p, 0, sizeof *p);
    p->temperature = 1.0f;
    p->top_p = 1.0f;
    p->top_k = 0;
    p->min_p = 0.0f;
    p->presence_penalty = 0.0f;
    p->frequency_penalty = 0.0f;
    p->repetition_penalty = 1.0f;
    p->n = 1;
}

/* Writes "<param> <message>" and names the parameter for the caller. */
static int bad(const char **param, const char *name, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int bad(const char **param, const char *name, char *err, size_t errlen, const char *fmt, ...)
{
    if (param)
        *param = name;
    if (err && errlen) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(err, errlen, "%s %s", name, msg);
    }
    return GLM_ERR;
}

static int check_ids(const int32_t *ids, int n, int vocab, const char *name, const char **param,
                     char *err, size_t errlen)
{
    GLM_ASSERT(n >= 0 && (n == 0 || ids));
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return bad(param, name, err, errlen,
                       "contains token id %d, outside the vocabulary [0, %d)", (int)ids[i], vocab);
    return GLM_OK;
}

int glm_sampling_params_validate(const glm_sampling_params *p, int vocab, const char **param,
                                 char *err, size_t errlen)
{
    GLM_ASSERT(vocab >= 1);
    if (param)
        *param = NULL;
    if (p->n < 1 || p->n > GLM_SAMPLING_MAX_N)
        return bad(param, "n", err, errlen, "must be in [1, %d], got %d", GLM_SAMPLING_MAX_N, p->n);
    if (!isfinite(p->temperature) || p->temperature < 0.0f || p->temperature > 2.0f)
        return bad(param, "temperature", err, errlen, "must be in [0, 2], got %g",
                   (double)p->temperature);
    if (!isfinite(p->top_p) || !(p->top_p > 0.0f) || p->top_p > 1.0f)
        return bad(param, "top_p", err, errlen, "must be in (0, 1], got %g", (double)p->top_p);
    if (p->top_k < -1)
        return bad(param, "top_k", err, errlen, "must be -1 or 0 (disabled), or at least 1, got %d",
                   p->top_k);
    if (!isfinite(p->min_p) || p->min_p < 0.0f || p->min_p > 1.0f)
        return bad(param, "min_p", err, errlen, "must be in [0, 1], got %g", (double)p->min_p);
    if (!isfinite(p->presence_penalty) || p->presence_penalty < -2.0f || p->presence_penalty > 2.0f)
        return bad(param, "presence_penalty", err, errlen, "must be in [-2, 2], got %g",
                   (double)p->presence_penalty);
    if (!isfinite(p->frequency_penalty) || p->frequency_penalty < -2.0f ||
        p->frequency_penalty > 2.0f)
        return bad(param, "frequency_penalty", err, errlen, "must be in [-2, 2], got %g",
                   (double)p->frequency_penalty);
    if (!isfinite(p->repetition_penalty) || !(p->repetition_penalty > 0.0f))
        return bad(param, "repetition_penalty", err, errlen,
                   "must be a finite number greater than 0, got %g", (double)p->repetition_penalty);
    GLM_ASSERT(p->n_logit_bias >= 0 && (p->n_logit_bias == 0 || p->logit_bias));
    for (int i = 0; i < p->n_logit_bias; i++) {
        const glm_sampling_logit_bias *b = &p->logit_bias[i];
        if (b->id < 0 || b->id >= vocab)
            return bad(param, "logit_bias", err, errlen,
                       "contains token id %d, outside the vocabulary [0, %d)", (int)b->id, vocab);
        if (isnan(b->bias))
            return bad(param, "logit_bias", err, errlen, "value for token id %d is not a number",
                       (int)b->id);
    }
    if (p->top_logprobs < 0 || p->top_logprobs > GLM_SAMPLING_MAX_TOP_LOGPROBS)
        return bad(param, "top_logprobs", err, errlen, "must be in [0, %d], got %d",
                   GLM_SAMPLING_MAX_TOP_LOGPROBS, p->top_logprobs);
    if (p->top_logprobs > 0 && !p->logprobs)
        return bad(param, "top_logprobs", err, errlen, "requires logprobs to be true");
    if (check_ids(p->stop_token_ids, p->n_stop_token_ids, vocab, "stop_token_ids", param, err,
                  errlen) != GLM_OK)
        return GLM_ERR;
    if (check_ids(p->eos_token_ids, p->n_eos_token_ids, vocab, "eos_token_ids", param, err,
                  errlen) != GLM_OK)
        return GLM_ERR;
    if (p->prompt_top_logprobs < 0 || p->prompt_top_logprobs > GLM_SAMPLING_MAX_TOP_LOGPROBS)
        return bad(param, "prompt_logprobs", err, errlen, "must be in [0, %d], got %d",
                   GLM_SAMPLING_MAX_TOP_LOGPROBS, p->prompt_top_logprobs);
    if (p->has_max_tokens && p->max_tokens < (p->prompt_logprobs ? 0 : 1))
        return bad(param, "max_tokens", err, errlen, "must be at least %d, got %d",
                   p->prompt_logprobs ? 0 : 1, p->max_tokens);
    if (p->min_tokens < 0)
        return bad(param, "min_tokens", err, errlen, "must be at least 0, got %d", p->min_tokens);
    if (p->has_max_tokens && p->min_tokens > p->max_tokens)
        return bad(param, "min_tokens", err, errlen,
                   "must be less than or equal to max_tokens=%d, got %d", p->max_tokens,
                   p->min_tokens);
    return GLM_OK;
}

void glm_sampling_params_copy(glm_sampling_params *dst, const glm_sampling_params *src)
{
    GLM_ASSERT(dst != src);
    size_t nb = (size_t)src->n_logit_bias, ns = (size_t)src->n_stop_token_ids,
           ne = (size_t)src->n_eos_token_ids;
    *dst = *src;
    dst->owned_ = NULL;
    if (nb + ns + ne == 0)
        return;
    char *block = glm_malloc(nb * sizeof(glm_sampling_logit_bias) + (ns + ne) * sizeof(int32_t));
    char *q = block;
    if (nb) {
        memcpy(q, src->logit_bias, nb * sizeof(glm_sampling_logit_bias));
        dst->logit_bias = (const glm_sampling_logit_bias *)q;
        q += nb * sizeof(glm_sampling_logit_bias);
    }
    if (ns) {
        memcpy(q, src->stop_token_ids, ns * sizeof(int32_t));
        dst->stop_token_ids = (const int32_t *)q;
        q += ns * sizeof(int32_t);
    }
    if (ne) {
        memcpy(q, src->eos_token_ids, ne * sizeof(int32_t));
        dst->eos_token_ids = (const int32_t *)q;
    }
    dst->owned_ = block;
}

void glm_sampling_params_release(glm_sampling_params *p)
{
    if (!p || !p->owned_)
        return;
    free(p->owned_);
    p->owned_ = NULL;
    p->logit_bias = NULL;
    p->n_logit_bias = 0;
    p->stop_token_ids = NULL;
    p->n_stop_token_ids = 0;
    p->eos_token_ids = NULL;
    p->n_eos_token_ids = 0;
}

int glm_sampling_is_greedy(const glm_sampling_params *p)
{
    return p->temperature == 0.0f || p->top_k == 1;
}

/* ---- random generator ---------------------------------------------------------------- */

void glm_rng_seed(glm_rng *r, uint64_t seed)
{
    /* splitmix64 is a bijection of its counter, so the four words are distinct and
     * never all zero (the one state xoshiro cannot leave). */
    uint64_t sm = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = glm_splitmix64(&sm);
}

uint64_t glm_rng_seed_entropy(glm_rng *r)
{
    uint64_t seed = 0;
    if (getentropy(&seed, sizeof seed) != 0) {
        /* No kernel entropy: mix the clocks, an address and a counter. */
        static _Atomic uint64_t counter;
        struct timespec ts;
        timespec_get(&ts, TIME_UTC);
        uint64_t m = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        m ^= (uint64_t)(uintptr_t)r << 17;
        m ^= (uint64_t)(glm_now() * 1e9);
        m += ++counter * 0xd1b54a32d192ed03ull;
        seed = glm_splitmix64(&m);
    }
    glm_rng_seed(r, seed);
    return seed;
}

static inline uint64_t rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t glm_rng_next(glm_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

double glm_rng_uniform(glm_rng *r)
{
    return (double)(glm_rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---- workspace ----------------------------------------------------------------------- */

typedef struct {
    double *hist;
    uint32_t *hcnt;
    float *x;
    int32_t *idx;
    uint32_t *key;
    float *w;
    uint32_t *pos;
    uint8_t *seen_any, *seen_out;
    size_t bitmap_bytes;
    uint32_t blk; /* block length of the block sums prepare leaves in hist */
} ws_t;

size_t glm_sampler_workspace_size(int vocab)
{
    GLM_ASSERT(vocab >= 1);
    size_t v = (size_t)vocab;
    return HIST_BUCKETS * (sizeof(double) + sizeof(uint32_t)) + v * 5 * 4 + 2 * ((v + 7) / 8);
}

static void ws_carve(ws_t *w, void *ws, size_t ws_size, int vocab)
{
    GLM_ASSERT(vocab >= 1);
    GLM_ASSERT(ws && ((uintptr_t)ws & 7) == 0);
    GLM_ASSERT(ws_size >= glm_sampler_workspace_size(vocab));
    size_t v = (size_t)vocab;
    char *p = ws;
    w->hist = (double *)p;
    p += HIST_BUCKETS * sizeof(double);
    w->hcnt = (uint32_t *)p;
    p += HIST_BUCKETS * sizeof(uint32_t);
    w->x = (float *)p;
    p += v * 4;
    w->idx = (int32_t *)p;
    p += v * 4;
    w->key = (uint32_t *)p;
    p += v * 4;
    w->w = (float *)p;
    p += v * 4;
    w->pos = (uint32_t *)p;
    p += v * 4;
    w->bitmap_bytes = (v + 7) / 8;
    w->seen_any = (uint8_t *)p;
    p += w->bitmap_bytes;
    w->seen_out = (uint8_t *)p;
}

/* ---- float bits -------------------------------------------------------------------------
 *
 * The hot loops work on bit patterns: GCC (with the default -ftrapping-math) will not
 * vectorise loops that compare or select floats, but integer compares and selects it
 * will. A key is an order-preserving unsigned image of a float (not NaN): larger float,
 * larger key; -0 and +0 share one.
 */

#define KEY_NEG_INF 0x007fffffu /* float_key(-inf) */
#define KEY_POS_INF 0xff800000u /* float_key(+inf) */
#define BITS_NEG_INF 0xff800000u

static inline uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t float_key(float f)
{
    uint32_t u = f2u(f);
    u = u == 0x80000000u ? 0u : u;
    return u ^ ((uint32_t)((int32_t)u >> 31) | 0x80000000u);
}

static inline float key_float(uint32_t k)
{
    return u2f((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

/* Largest key of x [n] (KEY_NEG_INF when every entry is -inf). No NaN in x. */
static uint32_t max_key(const float *x, int n)
{
    uint32_t m = KEY_NEG_INF;
    for (int i = 0; i < n; i++) {
        uint32_t k = float_key(x[i]);
        m = k > m ? k : m;
    }
    return m;
}

/*
 * exp(x) for x <= 0 in float, branch-free so that loops over it vectorise (libm's
 * expf does not). Cephes' expf polynomial: x = n ln2 + r (n rounded to nearest by the
 * 1.5 * 2^23 trick, ln2 split in two), a degree-7 polynomial for e^r, 2^n through the
 * exponent bits. Within 2 ulp of exp on [-87.3, 0], exp(0) = 1 exactly; below -87.3
 * (and -inf) it returns 0, dropping weights under 1e-38 of the largest. Only explicit
 * IEEE operations (no contraction), so bitwise the same at any vector width.
 */
static inline float exp_nonpos(float x)
{
    uint32_t under = (f2u(x) & 0x7fffffffu) > 0x42ae999au ? 0xffffffffu : 0u; /* |x| > 87.3 */
    x = u2f(f2u(x) & ~under);
    float t = x * 1.44269504088896341f + 12582912.0f;
    float n = t - 12582912.0f;
    int32_t ni = (int32_t)(f2u(t) - 0x4b400000u);
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float r2 = r * r;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r2 + r + 1.0f;
    y = y * u2f((uint32_t)(ni + 127) << 23);
    return u2f(f2u(y) & ~under);
}

/* Sum of x [n] in double: 8 interleaved lanes then a fixed pairwise sum, so it
 * vectorises and its rounding never depends on the machine. */
static double sum_of(const float *x, uint32_t n)
{
    double l0 = 0, l1 = 0, l2 = 0, l3 = 0, l4 = 0, l5 = 0, l6 = 0, l7 = 0;
    uint32_t nb = n / 8;
    for (uint32_t b = 0; b < nb; b++) {
        const float *q = x + 8 * (size_t)b;
        l0 += q[0];
        l1 += q[1];
        l2 += q[2];
        l3 += q[3];
        l4 += q[4];
        l5 += q[5];
        l6 += q[6];
        l7 += q[7];
    }
    double s = ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7));
    for (uint32_t i = nb * 8; i < n; i++)
        s += x[i];
    return s;
}

/*
 * Weights in blocks: bs[b] = sum of w over block b (blocks of *blk entries, at most
 * HIST_BUCKETS of them); returns the mass, the blocks summed in order. The draw walks
 * the blocks, then one block, so it costs O(n / blk + blk) instead of O(n).
 */
static double block_sums(const float *w, uint32_t n, double *bs, uint32_t *blk)
{
    uint32_t b = 1024;
    while ((uint64_t)b * HIST_BUCKETS < n)
        b *= 2;
    *blk = b;
    double m = 0.0;
    for (uint32_t i = 0, k = 0; i < n; i += b, k++) {
        bs[k] = sum_of(w + i, n - i < b ? n - i : b);
        m += bs[k];
    }
    return m;
}

/* ---- processors (min_tokens, logit_bias, penalties) ---------------------------------- */

static inline int bit_get(const uint8_t *b, int32_t i)
{
    return (b[i >> 3] >> (i & 7)) & 1;
}

static inline void bit_set(uint8_t *b, int32_t i)
{
    b[i >> 3] |= (uint8_t)(1u << (i & 7));
}

static inline void bit_clear(uint8_t *b, int32_t i)
{
    b[i >> 3] &= (uint8_t)~(1u << (i & 7));
}

static void mask_ids(float *x, int vocab, const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++) {
        GLM_ASSERT(ids[i] >= 0 && ids[i] < vocab);
        x[ids[i]] = -INFINITY;
    }
}

/* x /= p for positive x, x *= p otherwise (HF RepetitionPenaltyLogitsProcessor; vLLM
 * multiplies by 1/p, which can differ in the last bit). Each distinct token once. */
static void repetition_pass(float *x, int vocab, const int32_t *ids, int n, float penalty,
                            uint8_t *seen)
{
    for (int i = 0; i < n; i++) {
        int32_t id = ids[i];
        GLM_ASSERT(id >= 0 && id < vocab);
        if (bit_get(seen, id))
            continue;
        bit_set(seen, id);
        x[id] = x[id] > 0.0f ? x[id] / penalty : x[id] * penalty;
    }
}

/* NaN -> -inf from src into dst (may alias); GLM_SAMPLE_NONFINITE when NaN or +inf
 * was seen. */
static unsigned sanitize(float *dst, const float *src, int n)
{
    uint32_t bad = 0;
    for (int i = 0; i < n; i++) {
        uint32_t u = f2u(src[i]);
        uint32_t a = u & 0x7fffffffu;
        bad |= (a >= 0x7f800000u) & (u != BITS_NEG_INF); /* NaN or +inf */
        uint32_t nan = a > 0x7f800000u ? 0xffffffffu : 0u;
        dst[i] = u2f((u & ~nan) | (BITS_NEG_INF & nan));
    }
    return bad ? GLM_SAMPLE_NONFINITE : 0;
}

/* The processors on x, already sanitised. */
static void process(const glm_sampling_params *p, float *x, int vocab, const glm_sampler_history *h,
                    ws_t *w)
{
    GLM_ASSERT(h->n_prompt >= 0 && (h->n_prompt == 0 || h->prompt));
    GLM_ASSERT(h->n_output >= 0 && (h->n_output == 0 || h->output));

    /* min_tokens: the stop set (stop ids and eos, even under ignore_eos) is
     * impossible until enough tokens exist. */
    if (h->n_output < p->min_tokens) {
        mask_ids(x, vocab, p->stop_token_ids, p->n_stop_token_ids);
        mask_ids(x, vocab, p->eos_token_ids, p->n_eos_token_ids);
    }
    for (int i = 0; i < p->n_logit_bias; i++) {
        int32_t id = p->logit_bias[i].id;
        GLM_ASSERT(id >= 0 && id < vocab);
        float b = p->logit_bias[i].bias;
        b = b > GLM_SAMPLING_MAX_BIAS ? GLM_SAMPLING_MAX_BIAS
                                      : (b < -GLM_SAMPLING_MAX_BIAS ? -GLM_SAMPLING_MAX_BIAS : b);
        x[id] += b;
    }

    if (p->repetition_penalty != 1.0f) {
        memset(w->seen_any, 0, w->bitmap_bytes);
        repetition_pass(x, vocab, h->prompt, h->n_prompt, p->repetition_penalty, w->seen_any);
        repetition_pass(x, vocab, h->output, h->n_output, p->repetition_penalty, w->seen_any);
    }

    if (p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f) {
        /* OpenAI: logit -= count * frequency_penalty + (count > 0) * presence_penalty,
         * as two float subtractions in that order (vLLM). Counts live in key[],
         * initialised through the seen bitmap, so no O(vocab) clearing. */
        uint32_t *cnt = w->key;
        uint8_t *seen = w->seen_out;
        memset(seen, 0, w->bitmap_bytes);
        for (int i = 0; i < h->n_output; i++) {
            int32_t id = h->output[i];
            GLM_ASSERT(id >= 0 && id < vocab);
            if (bit_get(seen, id)) {
                cnt[id]++;
            } else {
                bit_set(seen, id);
                cnt[id] = 1;
            }
        }
        for (int i = 0; i < h->n_output; i++) {
            int32_t id = h->output[i];
            if (!bit_get(seen, id))
                continue;
            bit_clear(seen, id);
            x[id] = x[id] - p->frequency_penalty * (float)cnt[id];
            x[id] = x[id] - p->presence_penalty;
        }
    }
}

unsigned glm_sampler_process_logits(const glm_sampling_params *params, float *logits, int vocab,
                                    const glm_sampler_history *hist, void *ws, size_t ws_size)
{
    ws_t w;
    ws_carve(&w, ws, ws_size, vocab);
    unsigned flags = sanitize(logits, logits, vocab);
    process(params, logits, vocab, hist, &w);
    return flags;
}

/* ---- selection ----------------------------------------------------------------------- */

/*
 * Among candidates with keys key[] and weights w[] (unit weights when w is NULL),
 * walks the distinct keys from the largest down and returns the first key K at which
 * the cumulative weight of keys >= K reaches target; the smallest key when the total
 * falls short (rounding). Keeping keys >= K then keeps exactly the top_k (target = k)
 * or top_p (target = p x mass) set, ties at the cut included. The candidates are
 * 0 .. n-1, or, when listed, the n positions already in ws->pos. n >= 1.
 *
 * Three radix levels of 11, 11 and 10 key bits; each builds a histogram of the
 * survivors of the previous one, picks the bucket where the cumulative weight from
 * the top reaches what is left of target, and narrows to it.
 */
static uint32_t select_key(const uint32_t *key, const float *w, uint32_t n, int listed,
                           double target, ws_t *ws)
{
    static const int shift[3] = {21, 10, 0};
    static const uint32_t nbuckets[3] = {2048, 2048, 1024};
    uint32_t *pos = ws->pos;
    double *hist = ws->hist;
    uint32_t *hcnt = ws->hcnt;
    uint32_t m = n, result = 0;
    GLM_ASSERT(n >= 1);

    for (int level = 0; level < 3; level++) {
        uint32_t nb = nbuckets[level], mask = nb - 1;
        int sh = shift[level], direct = level == 0 && !listed;
        memset(hist, 0, nb * sizeof *hist);
        memset(hcnt, 0, nb * sizeof *hcnt);
        if (w) {
            for (uint32_t t = 0; t < m; t++) {
                uint32_t j = direct ? t : pos[t], b = (key[j] >> sh) & mask;
                hist[b] += (double)w[j];
                hcnt[b]++;
            }
        } else {
            for (uint32_t t = 0; t < m; t++)
                hcnt[(key[direct ? t : pos[t]] >> sh) & mask]++;
            for (uint32_t b = 0; b < nb; b++)
                hist[b] = (double)hcnt[b];
        }
        double acc = 0.0;
        int chosen = -1, lowest = -1;
        for (int b = (int)nb - 1; b >= 0; b--) {
            if (!hcnt[b])
                continue;
            lowest = b;
            if (acc + hist[b] >= target) {
                chosen = b;
                break;
            }
            acc += hist[b];
        }
        GLM_ASSERT(lowest >= 0);
        if (chosen < 0) {
            chosen = lowest; /* short of target: everything down to the smallest key */
            target = INFINITY;
        } else {
            target -= acc;
        }
        result |= (uint32_t)chosen << sh;
        if (level == 2)
            break;
        uint32_t mm = 0; /* in place: mm <= t */
        for (uint32_t t = 0; t < m; t++) {
            uint32_t j = direct ? t : pos[t];
            if (((key[j] >> sh) & mask) == (uint32_t)chosen)
                pos[mm++] = j;
        }
        m = mm;
        GLM_ASSERT(m > 0);
    }
    return result;
}

/* Lowest id of the maximum of x [n], -1 when every entry is -inf. */
static int argmax_first(const float *x, int n)
{
    uint32_t m = max_key(x, n);
    if (m == KEY_NEG_INF)
        return -1;
    for (int i = 0; i < n; i++)
        if (float_key(x[i]) == m)
            return i;
    GLM_ASSERT(0);
    return -1;
}

/*
 * Runs the whole pipeline on w->x (already the sanitised logits). Greedy: returns the
 * argmax id (-1 when nothing is left). Otherwise returns -2 with the candidates in
 * w->idx/w->w [*n_cand] (ids ascending, weights summing to *mass; entries of weight
 * 0 may be listed and are never drawn), or -1 when nothing is left.
 */
static int prepare(const glm_sampling_params *p, int vocab, const glm_sampler_history *h, ws_t *w,
                   uint32_t *n_cand, double *mass)
{
    float *x = w->x;
    int32_t *idx = w->idx;
    uint32_t *key = w->key;
    float *wt = w->w;
    process(p, x, vocab, h, w);
    *n_cand = 0;
    *mass = 0.0;
    if (glm_sampling_is_greedy(p))
        return argmax_first(x, vocab);

    /* temperature (vLLM divides), keys, maximum */
    float t = p->temperature < GLM_SAMPLING_MIN_TEMPERATURE ? GLM_SAMPLING_MIN_TEMPERATURE
                                                             : p->temperature;
    uint32_t kmax = KEY_NEG_INF;
    for (int i = 0; i < vocab; i++) {
        float y = x[i] / t;
        uint32_t k = float_key(y);
        x[i] = y;
        key[i] = k;
        kmax = k > kmax ? k : kmax;
    }
    if (kmax == KEY_NEG_INF)
        return -1;

    uint32_t n = 0;
    if (kmax == KEY_POS_INF) {
        /* the limit distribution: uniform over the +inf tokens; every filter keeps
         * exactly them (they are the maximum, tied) */
        for (int i = 0; i < vocab; i++)
            if (key[i] == KEY_POS_INF) {
                idx[n] = i;
                wt[n] = 1.0f;
                n++;
            }
        *n_cand = n;
        *mass = block_sums(wt, n, w->hist, &w->blk);
        return -2;
    }
    float ymax = key_float(kmax);

    /* min_p: p_i >= min_p * p_max  <=>  y_i >= ymax + log(min_p) (in double); the rest
     * become -inf. The bound is rounded up to a float so that keys can compare. */
    if (p->min_p > 0.0f) {
        double floor_y = (double)ymax + log((double)p->min_p);
        float ff = (float)floor_y;
        if ((double)ff < floor_y)
            ff = nextafterf(ff, INFINITY);
        uint32_t kf = float_key(ff);
        for (int i = 0; i < vocab; i++) {
            uint32_t drop = key[i] < kf ? 0xffffffffu : 0u;
            x[i] = u2f((f2u(x[i]) & ~drop) | (BITS_NEG_INF & drop));
            key[i] = (key[i] & ~drop) | (KEY_NEG_INF & drop);
        }
    }

    int use_k = p->top_k > 0 && p->top_k < vocab, use_p = p->top_p < 1.0f;
    if (use_k) {
        /* the k-th largest logit (-inf entries count but weigh nothing); only the
         * survivors get weights */
        uint32_t kk = select_key(key, NULL, (uint32_t)vocab, 0, (double)p->top_k, w);
        for (int i = 0; i < vocab; i++)
            if (key[i] >= kk && key[i] != KEY_NEG_INF) {
                idx[n] = i;
                key[n] = key[i];
                n++;
            }
        for (uint32_t j = 0; j < n; j++)
            wt[j] = exp_nonpos(x[idx[j]] - ymax);
    } else {
        n = (uint32_t)vocab;
        for (int i = 0; i < vocab; i++) {
            idx[i] = i;
            wt[i] = exp_nonpos(x[i] - ymax);
        }
    }
    if (use_p) {
        /* Only tokens of weight >= tau can be at or above the cut: the others weigh
         * less than n tau = (1 - top_p) mass / 2 together, while the cut is reached
         * before the last (1 - top_p) of the mass. So the selection runs on them alone
         * (few, for the peaked distributions of language models). */
        double m = sum_of(wt, n), target = (double)p->top_p * m;
        float tau = (float)(0.5 * (1.0 - (double)p->top_p) * m / (double)n);
        uint32_t ns = 0;
        for (uint32_t j = 0; j < n; j++) {
            w->pos[ns] = j;
            ns += wt[j] >= tau;
        }
        uint32_t kp = select_key(key, wt, ns, 1, target, w);
        uint32_t k = 0;
        for (uint32_t j = 0; j < n; j++)
            if (key[j] >= kp && f2u(wt[j]) != 0) {
                idx[k] = idx[j];
                wt[k] = wt[j];
                k++;
            }
        n = k;
    }
    *n_cand = n;
    *mass = block_sums(wt, n, w->hist, &w->blk);
    return -2;
}

static int32_t fallback_token(const glm_sampling_params *p)
{
    return p->n_eos_token_ids > 0 ? p->eos_token_ids[0] : 0;
}

/* ---- raw logprobs -------------------------------------------------------------------- */

typedef struct {
    double max;   /* largest raw logit (NaN as -inf) */
    double lse;   /* log sum exp(x - max), when max is finite */
    int n_pinf;   /* +inf entries: they share the whole mass */
} raw_stats;

static inline float raw_value(float v)
{
    return isnan(v) ? -INFINITY : v;
}

static float raw_logprob(const raw_stats *s, float v)
{
    v = raw_value(v);
    if (s->n_pinf)
        return v == INFINITY ? (float)-log((double)s->n_pinf) : -INFINITY;
    if (s->max == -INFINITY || v == -INFINITY)
        return -INFINITY;
    return (float)(((double)v - s->max) - s->lse);
}

/* Stats of log_softmax(x) for the sanitised logits x [vocab], and the n largest
 * (descending, lower id first on ties) into top[].id / top[].logprob. scratch [vocab]. */
static void raw_pass(const float *x, int vocab, int n, raw_stats *s, glm_sampler_logprob *top,
                     float *scratch)
{
    uint32_t kmax = max_key(x, vocab);
    int pinf = 0;
    if (kmax == KEY_POS_INF)
        for (int i = 0; i < vocab; i++)
            pinf += f2u(x[i]) == 0x7f800000u;
    /* top n by insertion: the first n seed the list, later entries enter only when
     * strictly larger than the last (so the earlier id stays first on ties) */
    int cnt = 0;
    for (int i = 0; n > 0 && i < vocab; i++) {
        float v = x[i];
        if (cnt == n && !(v > top[n - 1].logprob))
            continue;
        int k = cnt < n ? cnt++ : n - 1;
        while (k > 0 && top[k - 1].logprob < v) {
            top[k] = top[k - 1];
            k--;
        }
        top[k].id = i;
        top[k].logprob = v;
    }
    s->max = key_float(kmax);
    s->n_pinf = pinf;
    s->lse = 0.0;
    if (!pinf && kmax != KEY_NEG_INF) {
        float vmax = key_float(kmax);
        for (int i = 0; i < vocab; i++)
            scratch[i] = exp_nonpos(x[i] - vmax);
        s->lse = log(sum_of(scratch, (uint32_t)vocab));
    }
    for (int k = 0; k < n; k++)
        top[k].logprob = raw_logprob(s, top[k].logprob);
}

/*
 * Inverse CDF over the candidates in id order: the first whose cumulative weight
 * exceeds target (u x mass, u in [0, 1)), walking prepare's block sums first. A weight
 * of 0 can never be the first to pass. Rounding (the block's own sum against the
 * walk inside it) can leave the walk short: then the block's last positive entry.
 */
static int32_t draw(const ws_t *w, uint32_t n, double target)
{
    const double *bs = w->hist;
    uint32_t blk = w->blk, nblk = (n + blk - 1) / blk, b = 0;
    double acc = 0.0;
    while (b + 1 < nblk && acc + bs[b] <= target)
        acc += bs[b++];
    int32_t last = -1;
    for (uint32_t j = b * blk; j < n && j < (b + 1) * blk; j++) {
        if (f2u(w->w[j]) == 0)
            continue;
        last = w->idx[j];
        acc += w->w[j];
        if (acc > target)
            return w->idx[j];
    }
    if (last < 0) /* only possible when every weight is 0, which prepare excludes */
        for (uint32_t j = 0; j < n; j++)
            if (f2u(w->w[j]) != 0)
                last = w->idx[j];
    return last;
}

/* ---- entry points -------------------------------------------------------------------- */

/* The start of a draw: sanitised logits in w->x, out cleared, the raw logprobs' stats (and the
 * top list) when params asks for logprobs. Returns the GLM_SAMPLE_* flags so far. */
static unsigned begin_result(const glm_sampling_params *params, const float *logits, int vocab, ws_t *w,
                             raw_stats *rs, glm_sampler_result *out)
{
    memset(out, 0, sizeof *out);
    unsigned flags = sanitize(w->x, logits, vocab);
    *rs = (raw_stats){-INFINITY, 0.0, 0};
    if (params->logprobs) {
        /* before any processing: the raw model distribution */
        int nt = params->top_logprobs;
        GLM_ASSERT(nt >= 0 && nt <= GLM_SAMPLING_MAX_TOP_LOGPROBS);
        out->n_top = nt < vocab ? nt : vocab;
        raw_pass(w->x, vocab, out->n_top, rs, out->top, w->w);
    }
    return flags;
}

/* The end of a draw: tok (< 0: none, the fallback with GLM_SAMPLE_NO_CANDIDATE) and its raw
 * logprob into out. Returns 1 when tok was a candidate. */
static int end_result(const glm_sampling_params *params, const float *logits, int vocab, const raw_stats *rs,
                      int tok, unsigned flags, glm_sampler_result *out)
{
    int found = tok >= 0;
    if (!found) {
        tok = fallback_token(params);
        flags |= GLM_SAMPLE_NO_CANDIDATE;
    }
    GLM_ASSERT(tok >= 0 && tok < vocab);
    out->token = tok;
    out->flags = flags;
    if (params->logprobs)
        out->logprob = raw_logprob(rs, logits[tok]);
    return found;
}

void glm_sampler_sample(const glm_sampling_params *params, glm_rng *rng, const float *logits,
                        int vocab, const glm_sampler_history *hist, void *ws, size_t ws_size,
                        glm_sampler_result *out)
{
    ws_t w;
    ws_carve(&w, ws, ws_size, vocab);
    double u = glm_rng_uniform(rng); /* exactly one draw per call, whatever the path */
    raw_stats rs;
    unsigned flags = begin_result(params, logits, vocab, &w, &rs, out);
    uint32_t n = 0;
    double mass = 0.0;
    int tok = prepare(params, vocab, hist, &w, &n, &mass);
    if (tok == -2)
        tok = draw(&w, n, u * mass);
    end_result(params, logits, vocab, &rs, tok, flags, out);
}

/* The candidate draft is among (prepare's idx[0, n), ascending ids), or -1. */
static int32_t candidate_of(const ws_t *w, uint32_t n, int32_t id)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (w->idx[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && w->idx[lo] == id ? (int32_t)lo : -1;
}

int glm_sampler_verify(const glm_sampling_params *params, glm_rng *rng, const float *logits, int vocab,
                       const glm_sampler_history *hist, int32_t draft, void *ws, size_t ws_size,
                       glm_sampler_result *out)
{
    ws_t w;
    ws_carve(&w, ws, ws_size, vocab);
    double u_accept = glm_rng_uniform(rng), u_draw = glm_rng_uniform(rng); /* two draws, always */
    raw_stats rs;
    unsigned flags = begin_result(params, logits, vocab, &w, &rs, out);
    uint32_t n = 0;
    double mass = 0.0;
    int tok = prepare(params, vocab, hist, &w, &n, &mass);
    int accepted = 0;
    if (tok >= 0) { /* greedy */
        accepted = tok == draft;
    } else if (tok == -2) {
        int32_t j = draft >= 0 && draft < vocab ? candidate_of(&w, n, draft) : -1;
        double wd = j >= 0 ? (double)w.w[j] : 0.0;
        if (u_accept * mass < wd) {
            accepted = 1;
            tok = draft;
        } else {
            if (j >= 0) { /* p without the draft: its weight out, the block sums again */
                w.w[j] = 0.0f;
                mass = block_sums(w.w, n, w.hist, &w.blk);
            }
            tok = mass > 0.0 ? draw(&w, n, u_draw * mass) : -1;
        }
    }
    return end_result(params, logits, vocab, &rs, tok, flags, out) && accepted;
}

void glm_sampler_score(const float *logits, int vocab, int32_t token, int n_top, void *ws, size_t ws_size,
                       glm_sampler_result *out)
{
    GLM_ASSERT(token >= 0 && token < vocab && n_top >= 0 && n_top <= GLM_SAMPLING_MAX_TOP_LOGPROBS);
    ws_t w;
    ws_carve(&w, ws, ws_size, vocab);
    memset(out, 0, sizeof *out);
    out->flags = sanitize(w.x, logits, vocab);
    raw_stats rs = {-INFINITY, 0.0, 0};
    out->n_top = n_top < vocab ? n_top : vocab;
    raw_pass(w.x, vocab, out->n_top, &rs, out->top, w.w);
    out->token = token;
    out->logprob = raw_logprob(&rs, logits[token]);
    float v = w.x[token];
    int above = 0;
    for (int i = 0; i < vocab; i++)
        above += w.x[i] > v;
    out->rank = 1 + above;
}

unsigned glm_sampler_distribution(const glm_sampling_params *params, const float *logits,
                                  int vocab, const glm_sampler_history *hist, void *ws,
                                  size_t ws_size, float *probs)
{
    ws_t w;
    ws_carve(&w, ws, ws_size, vocab);
    unsigned flags = sanitize(w.x, logits, vocab);
    uint32_t n = 0;
    double mass = 0.0;
    int tok = prepare(params, vocab, hist, &w, &n, &mass);
    memset(probs, 0, (size_t)vocab * sizeof(float));
    if (tok == -2) {
        for (uint32_t j = 0; j < n; j++)
            probs[w.idx[j]] = (float)((double)w.w[j] / mass);
        return flags;
    }
    if (tok < 0) {
        tok = fallback_token(params);
        flags |= GLM_SAMPLE_NO_CANDIDATE;
    }
    probs[tok] = 1.0f;
    return flags;
}
