/*
 * openai_request.c - OpenAI request bodies -> prompt ids + sampling params;
 * see openai_request.h. Field names and ranges follow OpenAI's API reference
 * and vLLM's protocol.py (top_k, min_p, repetition_penalty, min_tokens,
 * ignore_eos, stop_token_ids, skip_special_tokens are vLLM extensions).
 */
#include "openai_request.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "openai_response.h"
#include "structured.h"
#include "core/util.h"
#include "core/json_field.h"

/* ---- typed field readers: 0 absent/null, 1 set, -1 wrong type ---------------------- */

static int get_num(const json_t *o, const char *k, double *out)
{
    const json_t *v = glm_json_field(o, k);
    if (!v)
        return 0;
    if (!json_is_number(v))
        return -1;
    *out = json_number_value(v);
    return 1;
}

static int get_int(const json_t *o, const char *k, long long *out)
{
    const json_t *v = glm_json_field(o, k);
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 1;
    }
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 9e15) {
        *out = (long long)json_real_value(v);
        return 1;
    }
    return -1;
}

static int get_bool(const json_t *o, const char *k, int *out)
{
    const json_t *v = glm_json_field(o, k);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return -1;
    *out = json_is_true(v);
    return 1;
}

#define BAD(p, ...) (*param = (p), glm_err(err, errlen, __VA_ARGS__))

/* A malloc'd NUL-terminated copy of s[0, n). */
static char *copy_str(const char *s, size_t n)
{
    char *c = glm_malloc(n + 1);
    memcpy(c, s, n);
    c[n] = 0;
    return c;
}

static int read_float(const json_t *o, const char *k, float *dst, const char **param, char *err,
                      size_t errlen)
{
    double d;
    int rc = get_num(o, k, &d);
    if (rc < 0)
        return BAD(k, "'%s' must be a number", k);
    if (rc > 0) {
        if (!isfinite(d))
            return BAD(k, "'%s' must be finite", k);
        *dst = (float)d;
    }
    return GLM_OK;
}

static int parse_stop(glm_oai_request *r, const json_t *root, const char **param, char *err, size_t errlen)
{
    const json_t *v = glm_json_field(root, "stop");
    if (!v)
        return GLM_OK;
    if (json_is_string(v)) {
        if (json_string_length(v) > 0) {
            r->stops[0] = copy_str(json_string_value(v), json_string_length(v));
            r->stop_lens[0] = json_string_length(v);
            r->n_stops = 1;
        }
        return GLM_OK;
    }
    if (!json_is_array(v))
        return BAD("stop", "'stop' must be a string or an array of strings");
    if (json_array_size(v) > GLM_OAI_MAX_STOP)
        return BAD("stop", "'stop' may hold at most %d strings", GLM_OAI_MAX_STOP);
    size_t i;
    const json_t *s;
    json_array_foreach(v, i, s) {
        if (!json_is_string(s))
            return BAD("stop", "'stop' must be a string or an array of strings");
        if (json_string_length(s) == 0)
            continue;
        r->stops[r->n_stops] = copy_str(json_string_value(s), json_string_length(s));
        r->stop_lens[r->n_stops++] = json_string_length(s);
    }
    return GLM_OK;
}

void glm_oai_sampling_init(glm_sampling_params *sp, const glm_sampling_defaults *d)
{
    glm_sampling_params_init(sp);
    if (d->temperature >= 0)
        sp->temperature = d->temperature;
    if (d->top_p >= 0)
        sp->top_p = d->top_p;
    if (d->top_k >= 0)
        sp->top_k = d->top_k;
    if (d->min_p >= 0)
        sp->min_p = d->min_p;
    if (d->repetition_penalty >= 0)
        sp->repetition_penalty = d->repetition_penalty;
    if (d->max_tokens > 0) {
        sp->has_max_tokens = 1;
        sp->max_tokens = d->max_tokens;
    }
}

/* Prompt logprobs, which scoring needs (lm-eval-harness: echo, logprobs, max_tokens 0 or 1):
 * echo with logprobs returns the prompt's with the generated ones, as OpenAI's legacy API and
 * vLLM do; vLLM's prompt_logprobs returns them apart; echo with max_tokens 0 returns the prompt
 * alone. max_tokens 0 asks for no generation, so it needs one of these. */
static int parse_prompt_logprobs(glm_oai_request *r, const json_t *root, const char *mt, const char **param,
                                 char *err, size_t errlen)
{
    glm_sampling_params *sp = &r->sp;
    long long v;
    int rc;
    r->prompt_logprobs = -1;
    if ((rc = get_int(root, "prompt_logprobs", &v)) < 0 ||
        (rc > 0 && (v < 0 || v > GLM_SAMPLING_MAX_TOP_LOGPROBS)))
        return BAD("prompt_logprobs",
                   "'prompt_logprobs' must be an integer in [0, %d] (-1, the whole vocabulary, is not supported)",
                   GLM_SAMPLING_MAX_TOP_LOGPROBS);
    if (rc > 0) {
        if (r->stream)
            return BAD("prompt_logprobs", "'prompt_logprobs' is not available when 'stream' is true");
        r->prompt_logprobs = (int)v;
    }
    int echo_lp = r->echo && r->logprobs;
    int scoring = sp->has_max_tokens && sp->max_tokens == 0 && glm_json_field(root, mt);
    if (scoring && !r->echo && r->prompt_logprobs < 0)
        return BAD(mt, "'%s' must be an integer >= 1 (0 only with 'echo' or 'prompt_logprobs')", mt);
    if (echo_lp || r->prompt_logprobs >= 0 || scoring) {
        sp->prompt_logprobs = 1;
        sp->prompt_top_logprobs = GLM_MAX(echo_lp ? r->top_logprobs : 0, r->prompt_logprobs);
    }
    return GLM_OK;
}

/* Fields of OpenAI's or vLLM's API that this server does not implement: a 400 naming the
 * field, never silently ignored (a null is the same as absent). */
static int refuse_unsupported(const glm_oai_request *r, const json_t *root, const char **param, char *err,
                              size_t errlen)
{
    static const struct {
        const char *field;
        int chat, completions;
        const char *why;
    } no[] = {
        {"suffix", 0, 1, "is not supported (this model has no fill-in-the-middle mode)"},
        {"bad_words", 1, 1, "is not supported"},
        {"allowed_token_ids", 1, 1, "is not supported"},
        {"chat_template", 1, 0, "is not accepted: the server renders the checkpoint's own chat template "
                                "(chat_template_kwargs reach it)"},
        {"prompt_embeds", 0, 1, "is not supported"},
        {"functions", 1, 0, "(deprecated by OpenAI) is not supported: send 'tools'"},
        {"function_call", 1, 0, "(deprecated by OpenAI) is not supported: send 'tool_choice'"},
        {"audio", 1, 0, "is not supported: this model writes text only"},
        {"prediction", 1, 0, "(predicted outputs) is not supported"},
        {"web_search_options", 1, 0, "is not supported"},
        {"guided_decoding_backend", 1, 1, "is not supported"},
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if ((r->chat ? no[i].chat : no[i].completions) && glm_json_field(root, no[i].field))
            return BAD(no[i].field, "'%s' %s", no[i].field, no[i].why);
    long long v;
    int rc = get_int(root, "best_of", &v);
    if (rc < 0 || (rc > 0 && v != r->sp.n))
        return BAD("best_of", "'best_of' is supported only equal to 'n' (%d): candidates are not ranked", r->sp.n);
    return GLM_OK;
}

/* vLLM's truncate_prompt_tokens: keep the last r->truncate tokens of a prompt (0: all). */
static void truncate_prompt(const glm_oai_request *r, int32_t *ids, int *n)
{
    if (r->truncate > 0 && *n > r->truncate) {
        memmove(ids, ids + (*n - r->truncate), sizeof(int32_t) * (size_t)r->truncate);
        *n = r->truncate;
    }
}

static int parse_sampling(glm_oai_request *r, const json_t *root, const glm_gen_ctx *g, const char **param,
                          char *err, size_t errlen)
{
    glm_sampling_params *sp = &r->sp;
    glm_oai_sampling_init(sp, &g->defaults); /* the model's defaults; the request's fields override them */
    if (read_float(root, "temperature", &sp->temperature, param, err, errlen) ||
        read_float(root, "top_p", &sp->top_p, param, err, errlen) ||
        read_float(root, "min_p", &sp->min_p, param, err, errlen) ||
        read_float(root, "presence_penalty", &sp->presence_penalty, param, err, errlen) ||
        read_float(root, "frequency_penalty", &sp->frequency_penalty, param, err, errlen) ||
        read_float(root, "repetition_penalty", &sp->repetition_penalty, param, err, errlen))
        return GLM_ERR;
    long long v;
    int rc;
    if ((rc = get_int(root, "top_k", &v)) < 0 || (rc > 0 && (v < -1 || v > INT32_MAX)))
        return BAD("top_k", "'top_k' must be an integer >= -1");
    if (rc > 0)
        sp->top_k = (int)v;
    if ((rc = get_int(root, "n", &v)) < 0 || (rc > 0 && (v < 1 || v > GLM_SAMPLING_MAX_N)))
        return BAD("n", "'n' must be an integer in [1, %d]", GLM_SAMPLING_MAX_N);
    if (rc > 0)
        sp->n = (int)v;
    if ((rc = get_int(root, "seed", &v)) < 0)
        return BAD("seed", "'seed' must be an integer");
    if (rc > 0 && v != -1) {
        sp->has_seed = 1;
        sp->seed = (uint64_t)v;
    }
    /* max_completion_tokens (chat) wins over the deprecated max_tokens */
    const char *mt = r->chat && glm_json_field(root, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if ((rc = get_int(root, mt, &v)) < 0 || (rc > 0 && (v < 0 || v > INT32_MAX)))
        return BAD(mt, "'%s' must be an integer >= 1", mt);
    if (rc > 0) {
        sp->has_max_tokens = 1;
        sp->max_tokens = (int)v;
    } else if (!r->chat && g->defaults.max_tokens <= 0) {
        sp->has_max_tokens = 1; /* OpenAI's completions default */
        sp->max_tokens = 16;
    }
    if ((rc = get_int(root, "min_tokens", &v)) < 0 || (rc > 0 && (v < 0 || v > INT32_MAX)))
        return BAD("min_tokens", "'min_tokens' must be an integer >= 0");
    if (rc > 0)
        sp->min_tokens = (int)v;
    if (get_bool(root, "ignore_eos", &sp->ignore_eos) < 0)
        return BAD("ignore_eos", "'ignore_eos' must be a boolean");
    r->skip_special = 1;
    if (get_bool(root, "skip_special_tokens", &r->skip_special) < 0)
        return BAD("skip_special_tokens", "'skip_special_tokens' must be a boolean");

    const json_t *ids = glm_json_field(root, "stop_token_ids");
    if (ids) {
        if (!json_is_array(ids) || json_array_size(ids) > 64)
            return BAD("stop_token_ids", "'stop_token_ids' must be an array of at most 64 token ids");
        size_t i;
        const json_t *x;
        json_array_foreach(ids, i, x) {
            if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= g->model->vocab)
                return BAD("stop_token_ids", "'stop_token_ids' must hold token ids in [0, %d)", g->model->vocab);
            r->stop_ids[i] = (int32_t)json_integer_value(x);
        }
        sp->stop_token_ids = r->stop_ids;
        sp->n_stop_token_ids = (int)json_array_size(ids);
    }

    const json_t *lb = glm_json_field(root, "logit_bias");
    if (lb) {
        if (!json_is_object(lb) || json_object_size(lb) > (size_t)g->model->vocab)
            return BAD("logit_bias", "'logit_bias' must be an object of token ids to numbers");
        r->bias = glm_malloc(sizeof *r->bias * (json_object_size(lb) + 1));
        const char *k;
        const json_t *x;
        json_object_foreach((json_t *)lb, k, x) {
            char *end;
            long id = strtol(k, &end, 10);
            if (!*k || *end || id < 0 || id >= g->model->vocab)
                return BAD("logit_bias", "'logit_bias' keys must be token ids in [0, %d), got \"%.40s\"", g->model->vocab, k);
            if (!json_is_number(x) || !isfinite(json_number_value(x)))
                return BAD("logit_bias", "'logit_bias' values must be numbers");
            r->bias[sp->n_logit_bias].id = (int32_t)id;
            r->bias[sp->n_logit_bias++].bias = (float)json_number_value(x);
        }
        sp->logit_bias = r->bias;
    }

    /* logprobs: chat has a boolean and top_logprobs; completions an integer 0..5(+) */
    if (r->chat) {
        if (get_bool(root, "logprobs", &r->logprobs) < 0)
            return BAD("logprobs", "'logprobs' must be a boolean");
        if ((rc = get_int(root, "top_logprobs", &v)) < 0 || (rc > 0 && (v < 0 || v > GLM_SAMPLING_MAX_TOP_LOGPROBS)))
            return BAD("top_logprobs", "'top_logprobs' must be an integer in [0, %d]", GLM_SAMPLING_MAX_TOP_LOGPROBS);
        if (rc > 0) {
            if (v > 0 && !r->logprobs)
                return BAD("top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
            r->top_logprobs = (int)v;
        }
    } else {
        if ((rc = get_int(root, "logprobs", &v)) < 0 || (rc > 0 && (v < 0 || v > GLM_SAMPLING_MAX_TOP_LOGPROBS)))
            return BAD("logprobs", "'logprobs' must be an integer in [0, %d]", GLM_SAMPLING_MAX_TOP_LOGPROBS);
        if (rc > 0) {
            r->logprobs = 1;
            r->top_logprobs = (int)v;
        }
        if (get_bool(root, "echo", &r->echo) < 0)
            return BAD("echo", "'echo' must be a boolean");
    }
    sp->logprobs = r->logprobs;
    sp->top_logprobs = r->top_logprobs;
    if (get_bool(root, "stream", &r->stream) < 0)
        return BAD("stream", "'stream' must be a boolean");
    if (parse_prompt_logprobs(r, root, mt, param, err, errlen) != GLM_OK)
        return GLM_ERR;
    const json_t *user = glm_json_field(root, "user");
    if (user && !json_is_string(user))
        return BAD("user", "'user' must be a string");

    const json_t *so = glm_json_field(root, "stream_options");
    if (so) {
        if (!json_is_object(so))
            return BAD("stream_options", "'stream_options' must be an object");
        if (get_bool(so, "include_usage", &r->include_usage) < 0)
            return BAD("stream_options", "'stream_options.include_usage' must be a boolean");
        if (get_bool(so, "continuous_usage_stats", &r->continuous_usage) < 0)
            return BAD("stream_options", "'stream_options.continuous_usage_stats' must be a boolean");
        r->continuous_usage = r->continuous_usage && r->include_usage; /* as vLLM */
    }
    if (get_bool(root, "include_stop_str_in_output", &r->include_stop_str) < 0)
        return BAD("include_stop_str_in_output", "'include_stop_str_in_output' must be a boolean");
    if (get_bool(root, "return_tokens_as_token_ids", &r->tokens_as_ids) < 0)
        return BAD("return_tokens_as_token_ids", "'return_tokens_as_token_ids' must be a boolean");
    if ((rc = get_int(root, "truncate_prompt_tokens", &v)) < 0 || (rc > 0 && (v == 0 || v < -1 || v > INT32_MAX)))
        return BAD("truncate_prompt_tokens", "'truncate_prompt_tokens' must be -1 or an integer >= 1");
    if (rc > 0)
        r->truncate = v == -1 ? g->model->max_model_len : (int)v;
    int spaces;
    if (get_bool(root, "spaces_between_special_tokens", &spaces) < 0)
        return BAD("spaces_between_special_tokens", "'spaces_between_special_tokens' must be a boolean");
    if (get_bool(root, "return_token_ids", &r->return_token_ids) < 0)
        return BAD("return_token_ids", "'return_token_ids' must be a boolean");
    if (r->return_token_ids && r->stream)
        return BAD("return_token_ids", "'return_token_ids' is supported without streaming only");
    if (parse_stop(r, root, param, err, errlen) != GLM_OK)
        return GLM_ERR;

    const char *bad = NULL;
    char verr[GLM_ERRLEN];
    if (glm_sampling_params_validate(sp, g->model->vocab, &bad, verr, sizeof verr) != GLM_OK)
        return BAD(bad, "%s", verr);
    return GLM_OK;
}

static int encode(const glm_gen_ctx *g, const char *text, size_t len, glm_oai_prompt *out, const char **param,
                  char *err, size_t errlen)
{
    int32_t *ids = NULL;
    size_t n = 0;
    char terr[GLM_ERRLEN];
    /* a prompt of max_model_len tokens or more is refused below, with its length */
    if (glm_tok_encode_max(g->out->tok, text, len, 1, (size_t)g->model->max_model_len, &ids, &n, terr,
                           sizeof terr) != GLM_OK)
        return BAD("prompt", "%s", terr);
    if (n > INT32_MAX / 2) {
        free(ids);
        return BAD("prompt", "the prompt is too long");
    }
    out->ids = ids;
    out->n = (int)n;
    return GLM_OK;
}

/* The chat prompt: engine/glm's one request-to-prompt function. */
static int chat_prompt(glm_oai_request *r, const json_t *root, const glm_gen_ctx *g, const char **param, char *err,
                       size_t errlen)
{
    glm_chat_prompt *cp = &r->prompt_info;
    if (glm_chat_prompt_build(g->chat, root, (size_t)g->model->max_model_len, cp, err, errlen) != GLM_OK) {
        *param = cp->param[0] ? cp->param : NULL;
        return GLM_ERR;
    }
    r->prompt = cp->ids;
    r->n_prompt = (int)cp->n_ids;
    cp->ids = NULL;
    if (r->n_prompt < g->model->max_model_len) /* a longer one is refused with its length */
        truncate_prompt(r, r->prompt, &r->n_prompt);
    free(cp->text); /* the answer needs the ids only */
    cp->text = NULL;
    return GLM_OK;
}

#define GLM_OAI_MAX_PROMPTS 256 /* prompts in one completions request */

/* One prompt: a string, or an array of token ids. */
static int one_prompt(const glm_oai_request *r, const json_t *p, const glm_gen_ctx *g, glm_oai_prompt *out,
                      const char **param, char *err, size_t errlen)
{
    if (json_is_string(p)) {
        if (json_string_length(p) == 0)
            return BAD("prompt", "'prompt' must not be empty");
        if (encode(g, json_string_value(p), json_string_length(p), out, param, err, errlen) != GLM_OK)
            return GLM_ERR;
        if (r->echo) /* the answer repeats it */
            out->text = glm_strdup(json_string_value(p));
        return GLM_OK;
    }
    if (!json_is_array(p) || json_array_size(p) == 0)
        return BAD("prompt", "'prompt' must be a non-empty string, array of token ids, or array of those");
    size_t n = json_array_size(p), i;
    const json_t *x;
    if (n > (size_t)INT32_MAX / 2)
        return BAD("prompt", "the prompt is too long");
    int32_t *ids = glm_malloc(sizeof(int32_t) * n);
    json_array_foreach(p, i, x) {
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= g->model->vocab) {
            free(ids);
            return BAD("prompt", "'prompt' token ids must be integers in [0, %d)", g->model->vocab);
        }
        ids[i] = (int32_t)json_integer_value(x);
    }
    out->ids = ids;
    out->n = (int)n;
    if (r->echo) {
        size_t len;
        out->text = glm_tok_decode(g->out->tok, ids, n, 0, &len);
    }
    return GLM_OK;
}

/* `prompt`: one prompt, or a list of them (strings or arrays of ids), each answered with n
 * choices (OpenAI and vLLM: choice i * n + j is sample j of prompt i). */
static int completion_prompt(glm_oai_request *r, const json_t *root, const glm_gen_ctx *g, const char **param,
                             char *err, size_t errlen)
{
    const json_t *p = glm_json_field(root, "prompt");
    const json_t *first = json_is_array(p) ? json_array_get(p, 0) : NULL;
    int list = first && (json_is_string(first) || json_is_array(first));
    size_t n = list ? json_array_size(p) : 1;
    if (n > GLM_OAI_MAX_PROMPTS)
        return BAD("prompt", "'prompt' may hold at most %d prompts", GLM_OAI_MAX_PROMPTS);
    r->more = n > 1 ? glm_calloc(n - 1, sizeof *r->more) : NULL;
    for (size_t i = 0; i < n; i++) {
        const json_t *pi = list ? json_array_get(p, i) : p;
        if (list && !(json_is_string(pi) || json_is_array(pi)))
            return BAD("prompt", "'prompt' must be a list of strings or a list of token id arrays");
        glm_oai_prompt one = {0};
        if (one_prompt(r, pi, g, &one, param, err, errlen) != GLM_OK)
            return GLM_ERR;
        if (i == 0) {
            r->prompt = one.ids;
            r->n_prompt = one.n;
            r->prompt_text = one.text;
        } else {
            r->more[i - 1] = one;
        }
        r->n_prompts = (int)i + 1;
        if (one.n >= g->model->max_model_len) /* r->prompt holds max_model_len ids at most */
            return BAD("prompt",
                       "This model's maximum context length is %d tokens. However, your request has %d input "
                       "tokens. Please reduce the length of the input messages.",
                       g->model->max_model_len, one.n);
        truncate_prompt(r, i == 0 ? r->prompt : r->more[i - 1].ids, i == 0 ? &r->n_prompt : &r->more[i - 1].n);
        one.n = i == 0 ? r->n_prompt : r->more[i - 1].n;
        if (r->sp.has_max_tokens && (long long)one.n + r->sp.max_tokens > g->model->max_model_len &&
            glm_json_field(root, "max_tokens"))
            return BAD("max_tokens",
                       "This model's maximum context length is %d tokens. However, you requested %lld tokens (%d "
                       "in the messages, %d in the completion). Please reduce the length of the messages or "
                       "completion.",
                       g->model->max_model_len, (long long)one.n + r->sp.max_tokens, one.n, r->sp.max_tokens);
    }
    return GLM_OK;
}

glm_oai_prompt glm_oai_prompt_at(const glm_oai_request *r, int i)
{
    GLM_ASSERT(i >= 0 && i < r->n_prompts);
    if (i == 0)
        return (glm_oai_prompt){r->prompt, r->n_prompt, r->prompt_text};
    return r->more[i - 1];
}

int glm_oai_request_parse(glm_oai_request *r, const json_t *root, int chat, const glm_gen_ctx *g, int *status,
                          const char **param, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    r->chat = chat;
    r->n_prompts = 1;
    r->prompt_info.budget = -1;
    r->prompt_info.parallel_tool_calls = 1;
    r->prompt_info.think = GLM_OUT_THINK_OFF;
    r->prompt_info.tool_choice = GLM_TOOL_CHOICE_NONE;
    *status = 400;
    *param = NULL;
    const json_t *model = glm_json_field(root, "model");
    if (model && !json_is_string(model))
        return BAD("model", "'model' must be a string");
    if (model && strcmp(json_string_value(model), g->model->served_model_name) != 0) {
        *status = 404;
        return BAD("model", "The model `%s` does not exist.", json_string_value(model));
    }
    int rc = parse_sampling(r, root, g, param, err, errlen);
    if (rc == GLM_OK)
        rc = refuse_unsupported(r, root, param, err, errlen);
    if (rc == GLM_OK)
        rc = chat ? chat_prompt(r, root, g, param, err, errlen) : completion_prompt(r, root, g, param, err, errlen);

    if (rc == GLM_OK)
        rc = glm_oai_grammar_build(r, root, g->out, &g->chat->limits.json, param, err, errlen);
    if (rc == GLM_OK && r->grammar && r->n_prompts > 1) /* one constraint is one request's */
        rc = BAD("prompt", "a list of prompts cannot be combined with a structured output constraint");
    if (rc == GLM_OK && r->n_prompt >= g->model->max_model_len) { /* r->prompt holds max_model_len ids at most */
        rc = BAD(chat ? "messages" : "prompt",
                 "This model's maximum context length is %d tokens. However, your request has %d input tokens. "
                 "Please reduce the length of the input messages.",
                 g->model->max_model_len, r->n_prompt);
    } else if (rc == GLM_OK && r->sp.has_max_tokens &&
               (long long)r->n_prompt + r->sp.max_tokens > g->model->max_model_len &&
               glm_json_field(root, chat && glm_json_field(root, "max_completion_tokens") ? "max_completion_tokens"
                                                                                         : "max_tokens")) {
        /* the request's own limit does not fit (vLLM's wording); a default one (generation_config's
         * max_new_tokens, the completions API's 16) is cut to the context as vLLM does */
        const char *mt = chat && glm_json_field(root, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
        rc = BAD(mt,
                 "This model's maximum context length is %d tokens. However, you requested %lld tokens (%d in "
                 "the messages, %d in the completion). Please reduce the length of the messages or completion.",
                 g->model->max_model_len, (long long)r->n_prompt + r->sp.max_tokens, r->n_prompt, r->sp.max_tokens);
    }
    if (rc != GLM_OK) {
        glm_oai_request_free(r);
        return GLM_ERR;
    }
    return GLM_OK;
}

void glm_oai_request_free(glm_oai_request *r)
{
    free(r->prompt);
    free(r->prompt_text);
    free(r->bias);
    for (int i = 1; i < r->n_prompts; i++) {
        free(r->more[i - 1].ids);
        free(r->more[i - 1].text);
    }
    free(r->more);
    r->more = NULL;
    r->n_prompts = 0;
    for (int i = 0; i < r->n_stops; i++)
        free((char *)r->stops[i]);
    r->n_stops = 0;
    glm_chat_prompt_free(&r->prompt_info);
    glm_grammar_free(r->grammar);
    r->grammar = NULL;
    if (r->format)
        r->format->free(r->format_ctx);
    r->format = NULL;
    r->format_ctx = NULL;
    r->prompt = NULL;
    r->prompt_text = NULL;
    r->bias = NULL;
}
