/*
 * openai_response.c - engine events -> OpenAI chat / completions JSON and SSE
 * chunks; see openai_response.h. Shapes follow OpenAI's API reference and
 * vLLM's protocol.py (reasoning in both `reasoning_content` and `reasoning`,
 * usage.prompt_tokens_details.cached_tokens,
 * usage.completion_tokens_details.reasoning_tokens).
 */
#include "openai_response.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stop_strings.h"
#include "core/utf8.h"
#include "core/util.h"

typedef struct {
    glm_detok *detok;
    glm_stop stop;
    glm_out_parser *parser;     /* chat only */
    glm_buf text;               /* completions: the released text */
    json_t *logprobs;           /* chat: content[]; completions: the four arrays */
    size_t text_offset;         /* completions: characters of the token strings so far,
                                   the echoed prompt's included (OpenAI's and vLLM's offsets) */
    int n_tokens, reasoning_tokens;
    int done;
    const char *finish;         /* "stop", "length", "abort" */
    int started;                /* streaming: role chunk written */
    int32_t *ids;               /* return_token_ids: the generated ids [n_tokens] */
} gen_sample;

/* What the choices of one prompt share: its logprobs as the engine scores them. */
typedef struct {
    int need;                   /* positions to score: n_prompt - 1 with prompt logprobs, else 0 */
    int scored;                 /* GLM_EV_PROMPT_TOKEN events so far */
    json_t *echo_lp;            /* echo with logprobs: the prompt's entries of the four arrays
                                   (token_logprobs[0] and top_logprobs[0] null) */
    json_t *vllm_lp;            /* prompt_logprobs: vLLM's list, [0] null, then
                                   {"id": {logprob, rank, decoded_token}} per position */
    size_t chars;               /* characters of its token strings (the echo's offsets) */
    int cached_tokens;          /* the most any of its samples found cached */
    int streamed;               /* streaming: its echo chunks written */
} gen_prompt;

struct glm_gen {
    const glm_gen_ctx *cx;
    const glm_oai_request *req;
    char id[80];
    long created;
    int n;                      /* choices: prompts x samples */
    int n_done;
    int prompt_tokens;
    gen_sample *s;              /* [n]: choice i is sample i % sp.n of prompt i / sp.n */
    gen_prompt *p;              /* [req->n_prompts] */
};

/* 1 when token t adds no text: an end-of-sequence or stop token (the text ends
 * before it, as in vLLM). */
static int silent_token(const glm_gen *g, int32_t t)
{
    const glm_oai_request *r = g->req;
    if (!r->sp.ignore_eos)
        for (int i = 0; i < g->cx->out->n_eos; i++)
            if (g->cx->out->eos_ids[i] == t)
                return 1;
    for (int i = 0; i < r->sp.n_stop_token_ids; i++)
        if (r->sp.stop_token_ids[i] == t)
            return 1;
    return 0;
}

/* ---- JSON helpers that never pass NULL on ---------------------------------------- */

static json_t *jstr(const char *s, size_t n)
{
    json_t *v = json_stringn(s, n);
    return v ? v : json_string("\xef\xbf\xbd"); /* unreachable for repaired text */
}

static json_t *jlogprob(float lp)
{
    return json_real(isfinite(lp) ? (double)lp : -9999.0);
}

static json_t *token_str(const glm_gen_ctx *cx, int32_t id)
{
    size_t len;
    char *t = glm_tok_decode(cx->out->tok, &id, 1, 0, &len);
    json_t *v = jstr(t, len);
    free(t);
    return v;
}

/* A token as logprobs name it: its text, or "token_id:N" with vLLM's
 * return_tokens_as_token_ids (text that does not decode alone stays tellable). */
static json_t *lp_token(const glm_gen *g, int32_t id)
{
    if (!g->req->tokens_as_ids)
        return token_str(g->cx, id);
    char b[32];
    snprintf(b, sizeof b, "token_id:%d", (int)id);
    return json_string(b);
}

static json_t *token_bytes(const glm_gen_ctx *cx, int32_t id)
{
    size_t len = 0;
    const char *b = glm_tok_token_bytes(cx->out->tok, id, &len);
    json_t *a = json_array();
    for (size_t i = 0; b && i < len; i++)
        json_array_append_new(a, json_integer((unsigned char)b[i]));
    return a;
}

/* A completions top_logprobs entry: the token itself first, then the most likely tokens (as
 * OpenAI and vLLM: the chosen token is always there, so `logprobs: 0` gives it alone). */
static json_t *top_dict(const glm_gen *g, const glm_event *ev)
{
    json_t *top = json_object();
    json_t *ts = lp_token(g, ev->token);
    json_object_set_new(top, json_string_value(ts), jlogprob(ev->logprob));
    json_decref(ts);
    for (int k = 0; k < ev->n_top && k < g->req->top_logprobs; k++) {
        ts = lp_token(g, ev->top_ids[k]);
        json_object_set_new(top, json_string_value(ts), jlogprob(ev->top_logprobs[k]));
        json_decref(ts);
    }
    return top;
}

/* Appends one token's logprobs to sample state `lp` (chat shape or completions shape). */
static void add_logprobs(const glm_gen *g, json_t *lp, const glm_event *ev, size_t text_offset)
{
    const glm_gen_ctx *cx = g->cx;
    if (g->req->chat) {
        json_t *e = json_object();
        json_object_set_new(e, "token", lp_token(g, ev->token));
        json_object_set_new(e, "logprob", jlogprob(ev->logprob));
        json_object_set_new(e, "bytes", token_bytes(cx, ev->token));
        json_t *top = json_array();
        for (int k = 0; k < ev->n_top && k < g->req->top_logprobs; k++) {
            json_t *t = json_object();
            json_object_set_new(t, "token", lp_token(g, ev->top_ids[k]));
            json_object_set_new(t, "logprob", jlogprob(ev->top_logprobs[k]));
            json_object_set_new(t, "bytes", token_bytes(cx, ev->top_ids[k]));
            json_array_append_new(top, t);
        }
        json_object_set_new(e, "top_logprobs", top);
        json_array_append_new(json_object_get(lp, "content"), e);
        return;
    }
    json_t *tok = lp_token(g, ev->token);
    json_array_append(json_object_get(lp, "tokens"), tok);
    json_array_append_new(json_object_get(lp, "token_logprobs"), jlogprob(ev->logprob));
    json_array_append_new(json_object_get(lp, "text_offset"), json_integer((json_int_t)text_offset));
    json_array_append_new(json_object_get(lp, "top_logprobs"), top_dict(g, ev));
    json_decref(tok);
}

/* Characters of token t's string: what it adds to text_offset. */
static size_t token_chars(const glm_gen_ctx *cx, int32_t t)
{
    json_t *s = token_str(cx, t);
    size_t n = glm_utf8_count(json_string_value(s), json_string_length(s));
    json_decref(s);
    return n;
}

static json_t *new_logprobs(int chat)
{
    if (chat)
        return json_pack("{s:[]}", "content");
    return json_pack("{s:[],s:[],s:[],s:[]}", "tokens", "token_logprobs", "top_logprobs", "text_offset");
}

/* ---- lifecycle ----------------------------------------------------------------------- */

static void id_fn(void *ctx, int index, char buf[GLM_OUT_ID_MAX])
{
    const glm_gen *g = ctx;
    snprintf(buf, GLM_OUT_ID_MAX, "call_%.40s_%d", g->id + (g->req->chat ? 9 : 5), index);
}

/* A prompt's shared state: with echo and logprobs, its tokens and offsets now, their
 * logprobs as they are scored (null until then). */
static void prompt_init(glm_gen *g, int pi)
{
    const glm_oai_request *req = g->req;
    gen_prompt *p = &g->p[pi];
    glm_oai_prompt op = glm_oai_prompt_at(req, pi);
    p->need = req->sp.prompt_logprobs ? op.n - 1 : 0;
    if (req->prompt_logprobs >= 0) {
        p->vllm_lp = json_array();
        json_array_append_new(p->vllm_lp, json_null());
    }
    if (req->chat || !req->echo)
        return;
    json_t *lp = req->logprobs ? new_logprobs(0) : NULL;
    for (int k = 0; k < op.n; k++) {
        if (lp) {
            json_array_append_new(json_object_get(lp, "tokens"), lp_token(g, op.ids[k]));
            json_array_append_new(json_object_get(lp, "token_logprobs"), json_null());
            json_array_append_new(json_object_get(lp, "top_logprobs"), json_null());
            json_array_append_new(json_object_get(lp, "text_offset"), json_integer((json_int_t)p->chars));
        }
        p->chars += token_chars(g->cx, op.ids[k]);
    }
    p->echo_lp = lp;
}

/* A scored prompt position (a GLM_EV_PROMPT_TOKEN of prompt pi). */
static void prompt_scored(glm_gen *g, int pi, const glm_event *ev)
{
    gen_prompt *p = &g->p[pi];
    if (p->scored >= p->need)
        return;
    int pos = ++p->scored;
    if (p->echo_lp) {
        json_array_set_new(json_object_get(p->echo_lp, "token_logprobs"), (size_t)pos, jlogprob(ev->logprob));
        json_array_set_new(json_object_get(p->echo_lp, "top_logprobs"), (size_t)pos, top_dict(g, ev));
    }
    if (p->vllm_lp) {
        /* vLLM's Logprob entries, keyed by token id: the prompt's token, then the top ones */
        json_t *d = json_object();
        char key[16];
        snprintf(key, sizeof key, "%d", (int)ev->token);
        json_object_set_new(d, key, json_pack("{s:o,s:i,s:o}", "logprob", jlogprob(ev->logprob), "rank", ev->rank,
                                              "decoded_token", lp_token(g, ev->token)));
        for (int k = 0; k < ev->n_top && k < g->req->prompt_logprobs; k++) {
            snprintf(key, sizeof key, "%d", (int)ev->top_ids[k]);
            json_object_set_new(d, key, json_pack("{s:o,s:i,s:o}", "logprob", jlogprob(ev->top_logprobs[k]), "rank",
                                                  k + 1, "decoded_token", lp_token(g, ev->top_ids[k])));
        }
        json_array_append_new(p->vllm_lp, d);
    }
}

/* The four arrays of a completions choice with echo: its prompt's entries, then its own. */
static json_t *echo_logprobs(const glm_gen *g, int i)
{
    const gen_prompt *p = &g->p[i / g->req->sp.n];
    json_t *lp = json_deep_copy(p->echo_lp);
    const char *keys[4] = {"tokens", "token_logprobs", "top_logprobs", "text_offset"};
    for (int k = 0; k < 4 && g->s[i].logprobs; k++)
        json_array_extend(json_object_get(lp, keys[k]), json_object_get(g->s[i].logprobs, keys[k]));
    return lp;
}

glm_gen *glm_gen_create(const glm_gen_ctx *cx, const glm_oai_request *req, const char *id)
{
    glm_gen *g = glm_calloc(1, sizeof *g);
    g->cx = cx;
    g->req = req;
    snprintf(g->id, sizeof g->id, "%s", id);
    g->created = (long)time(NULL);
    g->n = req->n_prompts * req->sp.n;
    g->p = glm_calloc((size_t)req->n_prompts, sizeof *g->p);
    for (int pi = 0; pi < req->n_prompts; pi++) {
        g->prompt_tokens += glm_oai_prompt_at(req, pi).n;
        prompt_init(g, pi);
    }
    g->s = glm_calloc((size_t)g->n, sizeof *g->s);
    for (int i = 0; i < g->n; i++) {
        gen_sample *s = &g->s[i];
        glm_oai_prompt op = glm_oai_prompt_at(req, i / req->sp.n);
        s->detok = glm_detok_new(cx->out->tok, req->skip_special);
        /* the output parser needs the reasoning and tool-call tags even when special
         * tokens are skipped (vLLM's GLM parsers turn skip_special_tokens off) */
        if (req->chat)
            glm_detok_keep(s->detok, cx->out->tag_ids, GLM_OUT_TAG_COUNT);
        glm_stop_init(&s->stop, req->stops, req->stop_lens, req->n_stops);
        s->stop.include_stop = req->include_stop_str;
        if (req->logprobs)
            s->logprobs = new_logprobs(req->chat);
        if (req->chat) {
            glm_out_params prm;
            glm_out_params_default(&prm);
            prm.tags = cx->out->tags;
            prm.think = req->prompt_info.think;
            prm.parse_tools = req->prompt_info.parse_tools;
            prm.content_plain = req->content_plain;
            prm.tools = req->prompt_info.tools;
            prm.id_fn = id_fn;
            prm.id_ctx = g;
            char err[GLM_ERRLEN];
            s->parser = glm_out_create(&prm, err, sizeof err);
            GLM_ASSERT(s->parser); /* the tags were checked at startup */
        }
        if (!req->chat && req->echo && op.text)
            glm_buf_put(&s->text, op.text, strlen(op.text));
        s->text_offset = g->p[i / req->sp.n].chars;
    }
    return g;
}

void glm_gen_free(glm_gen *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n; i++) {
        glm_detok_free(g->s[i].detok);
        glm_stop_free(&g->s[i].stop);
        glm_out_free(g->s[i].parser);
        glm_buf_free(&g->s[i].text);
        json_decref(g->s[i].logprobs);
        free(g->s[i].ids);
    }
    for (int pi = 0; pi < g->req->n_prompts; pi++) {
        json_decref(g->p[pi].echo_lp);
        json_decref(g->p[pi].vllm_lp);
    }
    free(g->p);
    free(g->s);
    free(g);
}

/* Prompt tokens the prefix cache served, over every prompt. */
static int cached_tokens(const glm_gen *g)
{
    int c = 0;
    for (int pi = 0; pi < g->req->n_prompts; pi++)
        c += g->p[pi].cached_tokens;
    return c;
}

void glm_gen_usage(const glm_gen *g, int *prompt_tokens, int *completion_tokens)
{
    int c = 0;
    for (int i = 0; i < g->n; i++)
        c += g->s[i].n_tokens;
    *prompt_tokens = g->prompt_tokens;
    *completion_tokens = c;
}

const char *glm_gen_id(const glm_gen *g)
{
    return g->id;
}

long glm_gen_created(const glm_gen *g)
{
    return g->created;
}

void glm_gen_message(const glm_gen *g, glm_out_message *m)
{
    glm_out_get(g->s[0].parser, m);
}

void glm_gen_usage_details(const glm_gen *g, int *cached, int *reasoning_tokens)
{
    int r = 0;
    for (int i = 0; i < g->n; i++)
        r += g->s[i].reasoning_tokens;
    *cached = cached_tokens(g);
    *reasoning_tokens = r;
}

/* ---- streaming ----------------------------------------------------------------------- */

static void emit(glm_buf *out, json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!s)
        return; /* every value is checked above; kept as a guard */
    glm_buf_put(out, "data: ", 6);
    glm_buf_put(out, s, strlen(s));
    glm_buf_put(out, "\n\n", 2);
    free(s);
}

static json_t *chunk(const glm_gen *g, json_t *choice)
{
    json_t *c = json_object();
    json_object_set_new(c, "id", json_string(g->id));
    json_object_set_new(c, "object", json_string(g->req->chat ? "chat.completion.chunk" : "text_completion"));
    json_object_set_new(c, "created", json_integer(g->created));
    json_object_set_new(c, "model", json_string(g->cx->model->served_model_name));
    json_t *arr = json_array();
    if (choice)
        json_array_append_new(arr, choice);
    json_object_set_new(c, "choices", arr);
    return c;
}

/* Completions with echo, streaming: the first chunk of each choice of prompt pi is the
 * prompt's text, with its logprobs once all are scored (the engine scores the prompt before
 * it generates, so no token of these choices has been sent yet). */
static void stream_echo(glm_gen *g, int pi, glm_buf *out)
{
    gen_prompt *p = &g->p[pi];
    if (p->streamed || p->scored < p->need)
        return;
    p->streamed = 1;
    const char *text = glm_oai_prompt_at(g->req, pi).text;
    int n = g->req->sp.n;
    for (int i = pi * n; i < (pi + 1) * n; i++) {
        g->s[i].started = 1;
        json_t *ch = json_pack("{s:i,s:o,s:o,s:n}", "index", i, "text", jstr(text, strlen(text)), "logprobs",
                               p->echo_lp ? json_deep_copy(p->echo_lp) : json_null(), "finish_reason");
        emit(out, chunk(g, ch));
    }
}

void glm_gen_stream_start(glm_gen *g, glm_buf *out)
{
    if (g->req->format) {
        if (!g->s[0].started)
            g->req->format->start(g->req->format_ctx, g, out);
        g->s[0].started = 1;
        return;
    }
    if (!g->req->chat) {
        for (int pi = 0; pi < g->req->n_prompts && g->req->echo; pi++)
            stream_echo(g, pi, out);
        return;
    }
    for (int i = 0; i < g->n; i++) {
        if (g->s[i].started)
            continue;
        g->s[i].started = 1;
        json_t *ch = json_pack("{s:i,s:{s:s,s:s},s:n,s:n}", "index", i, "delta", "role", "assistant", "content", "",
                               "logprobs", "finish_reason");
        emit(out, chunk(g, ch));
    }
}

static json_t *tool_delta_json(const glm_out_delta *d)
{
    json_t *a = json_array();
    for (int k = 0; k < d->n_tool_calls; k++) {
        const glm_out_tool_delta *t = &d->tool_calls[k];
        json_t *fn = json_object();
        if (t->name)
            json_object_set_new(fn, "name", jstr(t->name, strlen(t->name)));
        json_object_set_new(fn, "arguments", jstr(t->arguments, t->arguments_len));
        json_t *e = json_object();
        json_object_set_new(e, "index", json_integer(t->index));
        if (t->id) {
            json_object_set_new(e, "id", json_string(t->id));
            json_object_set_new(e, "type", json_string("function"));
        }
        json_object_set_new(e, "function", fn);
        json_array_append_new(a, e);
    }
    return a;
}

/* One chunk for sample i: text (completions) or a parser delta (chat), logprobs
 * of this step (may be NULL), and finish_reason when finishing. Skipped when
 * it would carry nothing. */
static void stream_piece(glm_gen *g, int i, const char *text, size_t len, const glm_out_delta *d, json_t *lp,
                         const char *finish, glm_buf *out)
{
    if (g->req->format) {
        json_decref(lp);
        if (d)
            g->req->format->delta(g->req->format_ctx, g, d, out);
        return;
    }
    int empty = finish == NULL && lp == NULL;
    json_t *ch = json_object();
    json_object_set_new(ch, "index", json_integer(i));
    if (g->req->chat) {
        json_t *delta = json_object();
        if (d && d->reasoning_len && !g->req->prompt_info.exclude_reasoning) {
            json_object_set_new(delta, "reasoning_content", jstr(d->reasoning, d->reasoning_len));
            json_object_set_new(delta, "reasoning", jstr(d->reasoning, d->reasoning_len));
            empty = 0;
        }
        if (d && d->content_len) {
            json_object_set_new(delta, "content", jstr(d->content, d->content_len));
            empty = 0;
        }
        if (d && d->n_tool_calls) {
            json_object_set_new(delta, "tool_calls", tool_delta_json(d));
            empty = 0;
        }
        json_object_set_new(ch, "delta", delta);
    } else {
        json_object_set_new(ch, "text", jstr(text, len));
        if (len)
            empty = 0;
    }
    json_object_set_new(ch, "logprobs", lp ? lp : json_null());
    json_object_set_new(ch, "finish_reason", finish ? json_string(finish) : json_null());
    if (empty) {
        json_decref(ch);
        return;
    }
    json_t *c = chunk(g, ch);
    if (g->req->continuous_usage) { /* vLLM's continuous_usage_stats: the usage so far */
        int p, n;
        glm_gen_usage(g, &p, &n);
        json_object_set_new(c, "usage", json_pack("{s:i,s:i,s:i}", "prompt_tokens", p, "completion_tokens", n,
                                                  "total_tokens", p + n));
    }
    emit(out, c);
}

void glm_gen_stream_end(glm_gen *g, glm_buf *out)
{
    if (g->req->format) {
        g->req->format->end(g->req->format_ctx, g, out);
        return;
    }
    if (g->req->include_usage) {
        json_t *c = chunk(g, NULL);
        int p, n;
        glm_gen_usage(g, &p, &n);
        int r = 0;
        for (int i = 0; i < g->n; i++)
            r += g->s[i].reasoning_tokens;
        json_object_set_new(c, "usage",
                            json_pack("{s:i,s:i,s:i,s:{s:i},s:{s:i}}", "prompt_tokens", p, "completion_tokens", n,
                                      "total_tokens", p + n, "prompt_tokens_details", "cached_tokens",
                                      cached_tokens(g), "completion_tokens_details", "reasoning_tokens", r));
        emit(out, c);
    }
    glm_buf_put(out, "data: [DONE]\n\n", 14);
}

void glm_gen_stream_error(glm_gen *g, int status, const char *message, glm_buf *out)
{
    if (g->req->format) {
        g->req->format->error(g->req->format_ctx, g, status, message, out);
        return;
    }
    json_t *e = json_pack("{s:{s:s,s:s,s:n,s:i}}", "error", "message", message, "type",
                          status == 400 ? "BadRequestError" : "InternalServerError", "param", "code", status);
    if (e)
        emit(out, e);
    glm_buf_put(out, "data: [DONE]\n\n", 14);
}

/* ---- events -------------------------------------------------------------------------- */

static const char *finish_name(glm_finish_reason f)
{
    return f == GLM_FINISH_STOP ? "stop" : f == GLM_FINISH_LENGTH ? "length" : "abort";
}

/* Feeds released text through the parser (chat) or into the text buffer, and
 * streams it. finish: non-NULL on the sample's last piece. Returns the finish
 * reason as sent ("tool_calls" when the parser found calls and the sample
 * stopped). */
static const char *release(glm_gen *g, int i, const char *text, size_t len, json_t *lp, const char *finish, glm_buf *out)
{
    gen_sample *s = &g->s[i];
    glm_out_delta d = {0}, d2 = {0};
    const glm_out_delta *dp = NULL;
    if (s->parser) {
        glm_out_feed(s->parser, text, len, &d);
        dp = &d;
        if (finish) {
            /* stream what the feed gave, then what finish flushes */
            if (out && (d.reasoning_len || d.content_len || d.n_tool_calls || lp))
                stream_piece(g, i, NULL, 0, &d, lp, NULL, out);
            else
                json_decref(lp);
            lp = NULL;
            if (strcmp(finish, "length") == 0)
                glm_out_finish_cut(s->parser, &d2);
            else
                glm_out_finish(s->parser, &d2);
            dp = &d2;
            glm_out_message m;
            glm_out_get(s->parser, &m);
            if (m.n_tool_calls && strcmp(finish, "stop") == 0)
                finish = "tool_calls";
        }
    } else {
        glm_buf_put(&s->text, text, len);
    }
    if (out)
        stream_piece(g, i, text, len, dp, lp, finish, out);
    else
        json_decref(lp);
    return finish;
}

static void finish_sample(glm_gen *g, int i, const char *finish, glm_buf *out)
{
    gen_sample *s = &g->s[i];
    size_t n1 = 0, n2 = 0;
    const char *t1 = "", *t2 = "";
    glm_buf tail = {0};
    if (!s->stop.stopped) {
        const char *p = glm_detok_flush(s->detok, &n1);
        if (glm_stop_push(&s->stop, p, n1, &t1, &n1))
            finish = "stop";
        glm_buf_put(&tail, t1, n1);
        glm_stop_flush(&s->stop, &t2, &n2);
        glm_buf_put(&tail, t2, n2);
    }
    finish = release(g, i, glm_buf_str(&tail), tail.len, NULL, finish, out);
    glm_buf_free(&tail);
    s->done = 1;
    s->finish = finish;
    g->n_done++;
}

const char *glm_gen_finish_reason(const glm_gen *g, int i)
{
    return i >= 0 && i < g->n && g->s[i].done ? g->s[i].finish : NULL;
}

int glm_gen_event(glm_gen *g, const glm_event *ev, glm_buf *out)
{
    if (ev->type == GLM_EV_ERROR || ev->index < 0 || ev->index >= g->n)
        return g->n_done == g->n;
    gen_sample *s = &g->s[ev->index];
    gen_prompt *pr = &g->p[ev->index / g->req->sp.n];
    if (ev->type == GLM_EV_PROMPT_TOKEN) {
        prompt_scored(g, ev->index / g->req->sp.n, ev);
        if (out && g->req->echo)
            stream_echo(g, ev->index / g->req->sp.n, out);
        return g->n_done == g->n;
    }
    if (ev->type == GLM_EV_FINISH) {
        if (ev->cached_tokens > pr->cached_tokens)
            pr->cached_tokens = ev->cached_tokens;
        if (!s->done)
            finish_sample(g, ev->index, finish_name(ev->finish), out);
        return g->n_done == g->n;
    }
    if (s->done)
        return g->n_done == g->n;
    if (g->req->return_token_ids) {
        s->ids = glm_realloc(s->ids, sizeof *s->ids * (size_t)(s->n_tokens + 1));
        s->ids[s->n_tokens] = ev->token;
    }
    s->n_tokens++;
    int in_reasoning = s->parser && glm_out_in_reasoning(s->parser);
    if (in_reasoning)
        s->reasoning_tokens++;
    json_t *lp = NULL;
    /* reasoning.exclude hides the reasoning's logprobs too (they spell its tokens) */
    if (g->req->logprobs && !(in_reasoning && g->req->prompt_info.exclude_reasoning)) {
        json_t *target = s->logprobs;
        if (out) /* streaming: this step's logprobs go in this chunk */
            target = new_logprobs(g->req->chat);
        add_logprobs(g, target, ev, s->text_offset);
        s->text_offset += token_chars(g->cx, ev->token);
        if (out)
            lp = target;
    }
    size_t n = 0;
    const char *piece = silent_token(g, ev->token) ? "" : glm_detok_push(s->detok, ev->token, &n);
    const char *rel;
    size_t rlen;
    int stopped = glm_stop_push(&s->stop, piece, n, &rel, &rlen);
    release(g, ev->index, rel, rlen, lp, NULL, out);
    if (stopped)
        finish_sample(g, ev->index, "stop", out);
    return g->n_done == g->n;
}

/* ---- non-streaming response --------------------------------------------------------------- */

static json_t *id_array(const int32_t *ids, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_integer(ids[i]));
    return a;
}

char *glm_gen_response(glm_gen *g)
{
    if (g->req->format)
        return g->req->format->response(g->req->format_ctx, g);
    json_t *choices = json_array();
    int reasoning = 0;
    for (int i = 0; i < g->n; i++) {
        gen_sample *s = &g->s[i];
        reasoning += s->reasoning_tokens;
        json_t *c = json_object();
        json_object_set_new(c, "index", json_integer(i));
        if (g->req->chat) {
            glm_out_message m;
            glm_out_get(s->parser, &m);
            json_t *msg = json_object();
            json_object_set_new(msg, "role", json_string("assistant"));
            /* vLLM: content is null when the parser left none (all reasoning / tool calls) */
            int no_content = m.content_len == 0 && (m.n_tool_calls || m.reasoning_len);
            json_object_set_new(msg, "content", no_content ? json_null() : jstr(m.content, m.content_len));
            /* reasoning.exclude: generated and counted, not returned */
            json_t *r = m.reasoning_len && !g->req->prompt_info.exclude_reasoning ? jstr(m.reasoning, m.reasoning_len)
                                                                       : json_null();
            json_object_set(msg, "reasoning_content", r);
            json_object_set_new(msg, "reasoning", r);
            if (m.n_tool_calls) {
                json_t *tc = json_array();
                for (int k = 0; k < m.n_tool_calls; k++) {
                    const glm_out_tool_call *t = &m.tool_calls[k];
                    json_t *fn = json_object();
                    json_object_set_new(fn, "name", jstr(t->name, strlen(t->name)));
                    json_object_set_new(fn, "arguments", jstr(t->arguments, t->arguments_len));
                    json_t *e = json_object();
                    json_object_set_new(e, "id", json_string(t->id));
                    json_object_set_new(e, "type", json_string("function"));
                    json_object_set_new(e, "function", fn);
                    json_array_append_new(tc, e);
                }
                json_object_set_new(msg, "tool_calls", tc);
            }
            json_object_set_new(c, "message", msg);
        } else {
            json_object_set_new(c, "text", jstr(glm_buf_str(&s->text), s->text.len));
        }
        if (!g->req->chat && g->req->echo && g->req->logprobs)
            json_object_set_new(c, "logprobs", echo_logprobs(g, i));
        else
            json_object_set(c, "logprobs", s->logprobs ? s->logprobs : json_null());
        if (!g->req->chat && g->req->prompt_logprobs >= 0)
            json_object_set(c, "prompt_logprobs", g->p[i / g->req->sp.n].vllm_lp);
        json_object_set_new(c, "finish_reason", json_string(s->finish ? s->finish : "abort"));
        if (g->req->return_token_ids) {
            json_object_set_new(c, "token_ids", id_array(s->ids, s->n_tokens));
            if (!g->req->chat) {
                glm_oai_prompt op = glm_oai_prompt_at(g->req, i / g->req->sp.n);
                json_object_set_new(c, "prompt_token_ids", id_array(op.ids, op.n));
            }
        }
        json_array_append_new(choices, c);
    }
    json_t *o = chunk(g, NULL);
    json_object_set_new(o, "object", json_string(g->req->chat ? "chat.completion" : "text_completion"));
    json_object_set_new(o, "choices", choices);
    if (g->req->return_token_ids)
        json_object_set_new(o, "prompt_token_ids", id_array(g->req->prompt, g->req->n_prompt));
    if (g->req->chat && g->req->prompt_logprobs >= 0)
        json_object_set(o, "prompt_logprobs", g->p[0].vllm_lp);
    int p, n;
    glm_gen_usage(g, &p, &n);
    json_object_set_new(o, "usage",
                        json_pack("{s:i,s:i,s:i,s:{s:i},s:{s:i}}", "prompt_tokens", p, "completion_tokens", n,
                                  "total_tokens", p + n, "prompt_tokens_details", "cached_tokens", cached_tokens(g),
                                  "completion_tokens_details", "reasoning_tokens", reasoning));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}
