/*
 * sampler.h - per-request sampling parameters (OpenAI / vLLM semantics), a
 * per-sequence random generator, and the sampler that turns one row of logits
 * into the next token with its logprobs.
 *
 * Processing order (vLLM v1, vllm/v1/sample/sampler.py, logits_processor/builtin.py):
 *   0. logprobs are taken from the RAW model distribution, log_softmax(logits), before
 *      anything below (vLLM's default logprobs_mode "raw_logprobs");
 *   1. min_tokens: eos and stop_token_ids set to -inf while fewer than min_tokens
 *      tokens were generated; logit_bias added (each bias clamped to [-100, 100]);
 *   2. penalties: repetition (tokens of prompt + output: positive logits divided,
 *      others multiplied by it), then frequency (output count x penalty) and
 *      presence (penalty once if in output) subtracted;
 *   3. greedy (temperature 0, or top_k 1): argmax, lowest id on ties;
 *   4. otherwise temperature (0 < T < 0.01 acts as 0.01: vLLM raises it in
 *      SamplingParams.__post_init__ before its greedy test), min_p, top_k, top_p, and
 *      one draw from the softmax of what is left.
 *
 * Non-finite logits: NaN counts as -inf. +inf is the limit of a very large logit: the
 * +inf tokens share all the probability equally. Neither crashes nor yields an id
 * outside [0, vocab); the result carries flags the engine can turn into an error.
 *
 * Ties: top_k, top_p and min_p are thresholds on the logit, so tokens whose logit
 * equals the one at the cut are all kept (vLLM's top_k masks `logits < kth value`;
 * for top_p vLLM keeps whichever of such ties its sort puts first; here all of them),
 * so the distribution never depends on how ids are numbered (greedy takes the lowest).
 *
 * Where this differs from vLLM, on purpose: ties at the top_p cut (above); top_k 1 is
 * greedy (vLLM draws among tokens tied at the top); n > 1 with temperature 0 is
 * accepted (OpenAI does, vLLM refuses it); repetition divides by the penalty (HF)
 * where vLLM multiplies by its reciprocal (at most the last bit); min_p compares
 * y - ymax with log(min_p) in double where vLLM compares float probabilities (only a
 * token within rounding of the bound can differ); the draw is the inverse CDF in id
 * order with one uniform per step, statistically the same as vLLM's exponential race.
 *
 * Cost: a few vectorised passes over the vocabulary, radix selection instead of any
 * sort, no allocation: the caller passes a workspace of glm_sampler_workspace_size
 * bytes (3.1 MB for 154880 entries). On one core for 154880 entries: about 0.1 ms
 * greedy or plain temperature, 0.3-0.4 ms with top_k or top_p, 0.2 ms more for
 * logprobs. One call per sequence per step; calls with their own workspace and
 * generator may run on different threads at once.
 */
#ifndef GLM_SAMPLER_H
#define GLM_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

/* ---- parameters ---------------------------------------------------------------------- */

#define GLM_SAMPLING_MAX_N 128           /* samples per prompt at most (vLLM: 16384 by env) */
#define GLM_SAMPLING_MAX_TOP_LOGPROBS 20 /* OpenAI chat: top_logprobs 0..20 */
#define GLM_SAMPLING_MAX_BIAS 100.0f     /* logit_bias values are clamped to [-100, 100] */
#define GLM_SAMPLING_MIN_TEMPERATURE 0.01f /* smaller positive temperatures are raised to it */

/*
 * A logits processor: per-sample state that restricts which tokens may come
 * next (constrained decoding, a reasoning budget). The engine calls create
 * once per sample when the request starts, apply before every draw (on the
 * sample's own logits row, which it may change: forbidden tokens get -inf),
 * accept with every token drawn, destroy when the sample ends, and release
 * (ctx) when the request is freed. Calls for one request come from the engine
 * thread. apply returns 0, or -1 with a message in err when no token may
 * follow (the request ends
 * with an error).
 */
typedef struct {
    void *(*create)(void *ctx, int sample_index);
    int (*apply)(void *state, float *logits, int vocab, char *err, size_t errlen);
    void (*accept)(void *state, int32_t token);
    void (*destroy)(void *state);
    void (*release)(void *ctx);
    void *ctx;
} glm_logits_processor;

typedef struct {
    int32_t id;  /* token id, 0 <= id < vocab */
    float bias;  /* added to the logit; clamped to [-100, 100] when applied; not NaN */
} glm_sampling_logit_bias;

/*
 * Per-request sampling parameters. Fill with glm_sampling_params_init, set what the
 * request gives, then glm_sampling_params_validate. Array fields are borrowed: they
 * must stay valid while the struct is used, unless it was made by
 * glm_sampling_params_copy (which owns its arrays until glm_sampling_params_release).
 * Fields marked "scheduler" are carried for the scheduler; the sampler ignores them.
 */
typedef struct {
    float temperature;        /* [0, 2], default 1. 0: greedy; (0, 0.01) acts as 0.01 */
    float top_p;              /* (0, 1], default 1 (off): keep the most likely tokens until
                                 their mass reaches top_p of what is left after top_k/min_p */
    int top_k;                /* 0 or -1: off (default); >= 1: keep the k most likely (all
                                 ties at the k-th); 1 is greedy; >= vocab is off */
    float min_p;              /* [0, 1], default 0 (off): drop tokens whose probability is
                                 below min_p x the largest (after temperature) */
    float presence_penalty;   /* [-2, 2], default 0: subtracted once from every logit
                                 whose token occurs in the output so far */
    float frequency_penalty;  /* [-2, 2], default 0: subtracted count times, count = the
                                 token's occurrences in the output so far */
    float repetition_penalty; /* > 0, finite, default 1 (off): for tokens of prompt or
                                 output, logit / penalty if logit > 0 else logit x penalty */

    const glm_sampling_logit_bias *logit_bias; /* [n_logit_bias], may be NULL when 0; ids
                                                  normally unique (a JSON object's keys);
                                                  a repeated id gets every entry added */
    int n_logit_bias;

    int n;                    /* scheduler: samples per prompt, 1..128, default 1 */
    int has_seed;             /* 0 (default): the engine seeds from entropy */
    uint64_t seed;            /* when has_seed: any 64-bit value (OpenAI's signed int64
                                 cast to uint64); sample i of n uses seed + i,
                                 mod 2^64 (vLLM's parallel sampling) */

    int logprobs;             /* bool, default 0: report the token's logprob */
    int top_logprobs;         /* 0..20, default 0: also the most likely tokens; > 0 needs
                                 logprobs (OpenAI) */
    int prompt_logprobs;      /* engine: bool, default 0: the raw logprob of every prompt
                                 token after the first (vLLM's prompt_logprobs); the prompt
                                 is then computed without the prefix cache (engine.h:
                                 GLM_EV_PROMPT_TOKEN) */
    int prompt_top_logprobs;  /* 0..20, default 0: with prompt_logprobs, that many most
                                 likely tokens at each prompt position */

    const int32_t *stop_token_ids; /* [n_stop_token_ids], may be NULL when 0: scheduler
                                      stops on them; masked while below min_tokens */
    int n_stop_token_ids;
    const int32_t *eos_token_ids;  /* [n_eos_token_ids]: the model's eos ids, set by the
                                      engine (generation_config); masked below min_tokens
                                      even with ignore_eos (vLLM's all_stop_token_ids) */
    int n_eos_token_ids;
    int ignore_eos;           /* scheduler: bool, default 0: eos does not end the sample */
    int has_max_tokens;       /* 0 (default): up to the context limit */
    int max_tokens;           /* scheduler, when has_max_tokens: output tokens at most, >= 1;
                                 0 only with prompt_logprobs (scoring: the prompt alone) */
    int min_tokens;           /* >= 0 (<= max_tokens), default 0: eos/stop ids are -inf
                                 until this many tokens were generated */

    const glm_logits_processor *processor; /* engine: may be NULL. glm_engine_submit copies
                                 the struct and owns ctx from then on (release is
                                 called when the request is freed); on a failed
                                 submit ctx stays the caller's */

    void *owned_;             /* internal: the arrays of a glm_sampling_params_copy */
} glm_sampling_params;

/* Sets every field to the default documented above (lists empty). */
void glm_sampling_params_init(glm_sampling_params *p);

/*
 * Checks every field against the OpenAI-compatible ranges above; ids (logit_bias,
 * stop and eos) must be in [0, vocab). GLM_OK, or GLM_ERR with one line in err that
 * starts with the parameter's name ("top_p must be in (0, 1], got 0") and, when
 * param is not NULL, *param set to that name (a static string), for the HTTP
 * layer's 400 error. Where vLLM and OpenAI differ, OpenAI is followed: n > 1 with
 * temperature 0 is accepted (vLLM refuses it). vLLM maps seed -1 to "no seed": that
 * is for the HTTP layer to decide before setting has_seed.
 */
int glm_sampling_params_validate(const glm_sampling_params *p, int vocab, const char **param,
                                 char *err, size_t errlen);

/* Deep copy: dst owns copies of src's arrays (one allocation) until
 * glm_sampling_params_release(dst). */
void glm_sampling_params_copy(glm_sampling_params *dst, const glm_sampling_params *src);
/* Frees the arrays of a struct made by glm_sampling_params_copy and empties its lists. */
void glm_sampling_params_release(glm_sampling_params *p);

/* 1 when the sampler picks the argmax: temperature 0 or top_k 1 (vLLM would draw among
 * tokens tied at the top for top_k 1; here the lowest id wins, as for temperature 0). */
int glm_sampling_is_greedy(const glm_sampling_params *p);

/* ---- random generator ---------------------------------------------------------------- */

/*
 * xoshiro256** (Blackman & Vigna), its 256-bit state filled by splitmix64 from a
 * 64-bit seed. Each sequence owns one, so the tokens of a seeded sequence depend
 * only on its seed and its own logits, never on batch composition or threads.
 */
typedef struct {
    uint64_t s[4];
} glm_rng;

/* Deterministic seeding; every seed (0 included) gives a valid, distinct stream. */
void glm_rng_seed(glm_rng *r, uint64_t seed);
/* Nondeterministic seeding (getentropy, else clock and address mixing); returns the
 * seed used so that a request can be replayed. */
uint64_t glm_rng_seed_entropy(glm_rng *r);
uint64_t glm_rng_next(glm_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double glm_rng_uniform(glm_rng *r);

/* ---- sampler ------------------------------------------------------------------------- */

/* What the penalties see: the prompt and the tokens generated so far (ids in
 * [0, vocab)). n_output is also the count for min_tokens. */
typedef struct {
    const int32_t *prompt; /* [n_prompt], may be NULL when 0 */
    int n_prompt;
    const int32_t *output; /* [n_output], may be NULL when 0 */
    int n_output;
} glm_sampler_history;

typedef struct {
    int32_t id;
    float logprob;
} glm_sampler_logprob;

enum {
    /* The raw logits held NaN or +inf (broken numerics upstream); the token is
     * still in range and drawn as the header describes. */
    GLM_SAMPLE_NONFINITE = 1 << 0,
    /* After processing every logit was -inf/NaN: token is the fallback (the first
     * eos id, else 0), logprob its raw logprob (usually -inf). The engine should end
     * the sample with an error. */
    GLM_SAMPLE_NO_CANDIDATE = 1 << 1,
};

typedef struct {
    int32_t token;        /* in [0, vocab), always */
    float logprob;        /* when params->logprobs: log P(token) under the raw model
                             distribution; -inf when that probability is 0 (JSON has
                             no -inf: vLLM's server writes -9999.0) */
    int n_top;            /* min(params->top_logprobs, vocab) when params->logprobs, else 0 */
    glm_sampler_logprob top[GLM_SAMPLING_MAX_TOP_LOGPROBS]; /* [n_top]: raw logprobs,
                             largest first, lower id first on ties; may include token */
    unsigned flags;       /* GLM_SAMPLE_* */
    int rank;             /* glm_sampler_score only: 1 + the tokens with a larger logit */
} glm_sampler_result;

/* Bytes of workspace glm_sampler_sample and friends need for this vocabulary
 * (about 20 bytes per entry). */
size_t glm_sampler_workspace_size(int vocab);

/*
 * Samples the next token of one sequence from logits [vocab] (not modified) under
 * params (validated for this vocab). Advances rng by exactly one step whatever the
 * path (greedy too), so the k-th token of a sequence always uses the k-th draw of
 * its stream. ws: at least glm_sampler_workspace_size(vocab) bytes, 8-byte aligned,
 * contents irrelevant, not shared with a concurrent call.
 */
void glm_sampler_sample(const glm_sampling_params *params, glm_rng *rng, const float *logits,
                        int vocab, const glm_sampler_history *hist, void *ws, size_t ws_size,
                        glm_sampler_result *out);

/*
 * Speculative decoding: verifies one draft token against logits [vocab] (the target model's
 * at the draft's position) with the rejection rule that keeps glm_sampler_sample's
 * distribution (Leviathan et al. 2023, Chen et al. 2023; vLLM's rejection sampler). The
 * draft comes from a point mass (MTP drafts are greedy), so with p the distribution
 * glm_sampler_sample draws from: the draft is accepted with probability p(draft); otherwise
 * the token is drawn from p without the draft, renormalised. So P(token = x) = p(x) for
 * every x. Greedy: accepted when the draft is the argmax, else the argmax. Returns 1 when
 * accepted (out->token == draft), 0 when not (out->token is the replacement); out as
 * glm_sampler_sample fills it (logprobs of the token returned). Advances rng by exactly two
 * draws on every path, so a seeded stream stays reproducible.
 */
int glm_sampler_verify(const glm_sampling_params *params, glm_rng *rng, const float *logits, int vocab,
                       const glm_sampler_history *hist, int32_t draft, void *ws, size_t ws_size,
                       glm_sampler_result *out);

/*
 * Scores a given token against logits [vocab] (not modified): out->token = token,
 * out->logprob its raw logprob, and the n_top (0..20) most likely tokens as
 * glm_sampler_sample reports them with logprobs on. No draw, no processing: what prompt
 * logprobs are. ws as for glm_sampler_sample.
 */
void glm_sampler_score(const float *logits, int vocab, int32_t token, int n_top, void *ws, size_t ws_size,
                       glm_sampler_result *out);

/*
 * Steps 1-2 in place on logits [vocab]: NaN -> -inf, min_tokens masking, logit_bias,
 * penalties. What greedy takes the argmax of; exposed for tests and for
 * speculative decoding. Returns GLM_SAMPLE_NONFINITE when NaN or +inf was seen.
 */
unsigned glm_sampler_process_logits(const glm_sampling_params *params, float *logits, int vocab,
                                    const glm_sampler_history *hist, void *ws, size_t ws_size);

/*
 * The distribution glm_sampler_sample draws from, as probabilities [vocab] (0 for
 * every token it cannot pick; one-hot when greedy). For tests and speculative
 * decoding (the target distribution of rejection sampling). Returns GLM_SAMPLE_*
 * flags; with GLM_SAMPLE_NO_CANDIDATE, probs is one-hot on the fallback token.
 */
unsigned glm_sampler_distribution(const glm_sampling_params *params, const float *logits,
                                  int vocab, const glm_sampler_history *hist, void *ws,
                                  size_t ws_size, float *probs);

#endif
