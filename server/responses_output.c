/*
 * responses_output.c - the Responses API's answer (responses.h): the
 * `response` object of a request, or the typed Server-Sent Events of a
 * stream, written from the GLM output parser's pieces through
 * openai_response.h's format hooks.
 *
 * Output items come in the order GLM writes them: a `reasoning` item (the
 * reasoning whole, as one reasoning_text part; its summary stays empty), a
 * `message` (one output_text part, annotations []), `function_call` items
 * (call_id, name, arguments as JSON text). A stream opens an item when its
 * first piece arrives and closes it when another item starts or the answer
 * ends, with OpenAI's events in OpenAI's order:
 *
 *   response.created, response.in_progress
 *   per item  response.output_item.added
 *     reasoning  response.content_part.added, response.reasoning_text.delta ...,
 *                response.reasoning_text.done, response.content_part.done
 *     message    response.content_part.added, response.output_text.delta ...,
 *                response.output_text.done, response.content_part.done
 *     call       response.function_call_arguments.delta ...,
 *                response.function_call_arguments.done
 *             response.output_item.done
 *   response.completed, or response.incomplete (max_output_tokens reached)
 *
 * A request that fails while it streams (a grammar over its work limit, a
 * backend failure) ends with an `error` event and response.failed.
 *
 * Each event is `event: TYPE` and `data: JSON` with its sequence_number,
 * counted from 0. The final response object carries the items as streamed.
 */
#include "responses.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"

typedef enum { ITEM_NONE, ITEM_REASONING, ITEM_MESSAGE, ITEM_CALL } item_kind;

typedef struct {
    json_t *echo;       /* the response's members that repeat the request */
    json_t *output;     /* streaming: the items closed so far */
    int seq;            /* the next event's sequence_number */
    item_kind open;     /* the item being streamed */
    char item_id[128];
    int call_index;     /* ITEM_CALL: the parser's index of the call */
    char *call_id;      /* ITEM_CALL, malloc'd */
    char *name;         /* ITEM_CALL, malloc'd */
    glm_buf text;       /* the open item's text or arguments so far */
} resp_state;

void *glm_resp_format_new(json_t *echo)
{
    resp_state *s = glm_calloc(1, sizeof *s);
    s->echo = echo;
    s->output = json_array();
    return s;
}

static void state_free(void *ctx)
{
    resp_state *s = ctx;
    json_decref(s->echo);
    json_decref(s->output);
    free(s->call_id);
    free(s->name);
    glm_buf_free(&s->text);
    free(s);
}

/* ---- items and the response object ----------------------------------------------------------- */

static json_t *jtext(const char *s, size_t n)
{
    json_t *v = json_stringn(s, n);
    return v ? v : json_string(""); /* the parser's strings are valid UTF-8 */
}

/* "rs_ID_3": the item's kind, the response id's tail and the item's index. */
static void make_item_id(char *buf, size_t n, const char *kind, const glm_gen *g, size_t index)
{
    const char *id = glm_gen_id(g), *tail = strchr(id, '_');
    snprintf(buf, n, "%s_%s_%zu", kind, tail ? tail + 1 : id, index);
}

static json_t *reasoning_part(const char *text, size_t len)
{
    return json_pack("{s:s,s:o}", "type", "reasoning_text", "text", jtext(text, len));
}

static json_t *text_part(const char *text, size_t len)
{
    return json_pack("{s:s,s:o,s:[],s:[]}", "type", "output_text", "text", jtext(text, len), "annotations",
                     "logprobs");
}

/* text NULL: no content part yet (an item just added). */
static json_t *reasoning_item(const char *id, const char *text, size_t len, const char *status)
{
    json_t *content = json_array();
    if (text)
        json_array_append_new(content, reasoning_part(text, len));
    return json_pack("{s:s,s:s,s:[],s:o,s:s}", "id", id, "type", "reasoning", "summary", "content", content,
                     "status", status);
}

static json_t *message_item(const char *id, const char *text, size_t len, const char *status)
{
    json_t *content = json_array();
    if (text)
        json_array_append_new(content, text_part(text, len));
    return json_pack("{s:s,s:s,s:s,s:s,s:o}", "id", id, "type", "message", "role", "assistant", "status", status,
                     "content", content);
}

static json_t *call_item(const char *id, const char *call_id, const char *name, const char *args, size_t len,
                         const char *status)
{
    return json_pack("{s:s,s:s,s:o,s:o,s:o,s:s}", "id", id, "type", "function_call", "call_id", jtext(call_id,
                     strlen(call_id)), "name", jtext(name, strlen(name)), "arguments", jtext(args, len), "status",
                     status);
}

/* "completed" when the model ended its answer, else "incomplete". */
static const char *status_of(const glm_gen *g)
{
    const char *f = glm_gen_finish_reason(g, 0);
    return f && (strcmp(f, "stop") == 0 || strcmp(f, "tool_calls") == 0) ? "completed" : "incomplete";
}

static json_t *usage_of(const glm_gen *g)
{
    int p, n, cached, reasoning;
    glm_gen_usage(g, &p, &n);
    glm_gen_usage_details(g, &cached, &reasoning);
    return json_pack("{s:i,s:{s:i},s:i,s:{s:i},s:i}", "input_tokens", p, "input_tokens_details", "cached_tokens",
                     cached, "output_tokens", n, "output_tokens_details", "reasoning_tokens", reasoning,
                     "total_tokens", p + n);
}

/* The response object (takes output and usage, which may be JSON null). */
static json_t *response_object(const resp_state *s, const glm_gen *g, const char *status, json_t *output,
                               json_t *usage)
{
    const char *f = glm_gen_finish_reason(g, 0);
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:n}", "id", glm_gen_id(g), "object", "response", "created_at",
                          (json_int_t)glm_gen_created(g), "status", status, "error");
    json_object_set_new(o, "incomplete_details", f && strcmp(f, "length") == 0
                                                     ? json_pack("{s:s}", "reason", "max_output_tokens")
                                                     : json_null());
    json_object_update(o, s->echo);
    json_object_set_new(o, "output", output);
    json_object_set_new(o, "previous_response_id", json_null());
    json_object_set_new(o, "store", json_false()); /* nothing is kept */
    json_object_set_new(o, "truncation", json_string("disabled"));
    json_object_set_new(o, "background", json_false());
    json_object_set_new(o, "usage", usage);
    return o;
}

/* ---- not streaming --------------------------------------------------------------------------- */

static char *fmt_response(void *ctx, const glm_gen *g)
{
    resp_state *s = ctx;
    glm_out_message m;
    glm_gen_message(g, &m);
    json_t *out = json_array();
    char id[128];
    if (m.reasoning_len) {
        make_item_id(id, sizeof id, "rs", g, json_array_size(out));
        json_array_append_new(out, reasoning_item(id, m.reasoning, m.reasoning_len, "completed"));
    }
    if (m.content_len || (!m.reasoning_len && !m.n_tool_calls)) { /* a message, if only an empty one */
        make_item_id(id, sizeof id, "msg", g, json_array_size(out));
        json_array_append_new(out, message_item(id, m.content, m.content_len, "completed"));
    }
    for (int k = 0; k < m.n_tool_calls; k++) {
        const glm_out_tool_call *t = &m.tool_calls[k];
        make_item_id(id, sizeof id, "fc", g, json_array_size(out));
        json_array_append_new(out, call_item(id, t->id, t->name, t->arguments, t->arguments_len, "completed"));
    }
    const char *status = status_of(g);
    json_object_set_new(json_array_get(out, json_array_size(out) - 1), "status", json_string(status));
    json_t *o = response_object(s, g, status, out, usage_of(g));
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return body;
}

/* ---- streaming ------------------------------------------------------------------------------- */

static json_t *event(const char *type)
{
    return json_pack("{s:s}", "type", type);
}

/* Writes ev (which has its "type") with the next sequence number. */
static void emit(resp_state *s, glm_buf *out, json_t *ev)
{
    json_object_set_new(ev, "sequence_number", json_integer(s->seq++));
    char *j = json_dumps(ev, JSON_COMPACT);
    if (j) {
        glm_buf_printf(out, "event: %s\ndata: ", json_string_value(json_object_get(ev, "type")));
        glm_buf_puts(out, j);
        glm_buf_puts(out, "\n\n");
        free(j);
    }
    json_decref(ev);
}

/* An event about the open item: type, item_id, output_index (and content_index 0 for parts). */
static json_t *item_event(const resp_state *s, const char *type, int part)
{
    json_t *ev = event(type);
    json_object_set_new(ev, "item_id", json_string(s->item_id));
    json_object_set_new(ev, "output_index", json_integer((json_int_t)json_array_size(s->output)));
    if (part)
        json_object_set_new(ev, "content_index", json_integer(0));
    return ev;
}

static void emit_with(resp_state *s, glm_buf *out, json_t *ev, const char *key, json_t *value)
{
    json_object_set_new(ev, key, value);
    emit(s, out, ev);
}

static void open_item(resp_state *s, const glm_gen *g, item_kind kind, const glm_out_tool_delta *t, glm_buf *out)
{
    size_t index = json_array_size(s->output);
    json_t *item;
    s->open = kind;
    glm_buf_clear(&s->text);
    if (kind == ITEM_REASONING) {
        make_item_id(s->item_id, sizeof s->item_id, "rs", g, index);
        item = reasoning_item(s->item_id, NULL, 0, "in_progress");
    } else if (kind == ITEM_MESSAGE) {
        make_item_id(s->item_id, sizeof s->item_id, "msg", g, index);
        item = message_item(s->item_id, NULL, 0, "in_progress");
    } else {
        make_item_id(s->item_id, sizeof s->item_id, "fc", g, index);
        s->call_index = t->index;
        s->call_id = glm_strdup(t->id ? t->id : "");
        s->name = glm_strdup(t->name ? t->name : "");
        item = call_item(s->item_id, s->call_id, s->name, "", 0, "in_progress");
    }
    json_t *ev = event("response.output_item.added");
    json_object_set_new(ev, "output_index", json_integer((json_int_t)index));
    emit_with(s, out, ev, "item", item);
    if (kind == ITEM_REASONING)
        emit_with(s, out, item_event(s, "response.content_part.added", 1), "part", reasoning_part("", 0));
    else if (kind == ITEM_MESSAGE)
        emit_with(s, out, item_event(s, "response.content_part.added", 1), "part", text_part("", 0));
}

static void close_item(resp_state *s, const char *status, glm_buf *out)
{
    const char *t = glm_buf_str(&s->text);
    size_t n = s->text.len;
    json_t *item;
    switch (s->open) {
    case ITEM_NONE:
        return;
    case ITEM_REASONING:
        emit_with(s, out, item_event(s, "response.reasoning_text.done", 1), "text", jtext(t, n));
        emit_with(s, out, item_event(s, "response.content_part.done", 1), "part", reasoning_part(t, n));
        item = reasoning_item(s->item_id, t, n, status);
        break;
    case ITEM_MESSAGE: {
        json_t *ev = item_event(s, "response.output_text.done", 1);
        json_object_set_new(ev, "text", jtext(t, n));
        emit_with(s, out, ev, "logprobs", json_array());
        emit_with(s, out, item_event(s, "response.content_part.done", 1), "part", text_part(t, n));
        item = message_item(s->item_id, t, n, status);
        break;
    }
    default:
        emit_with(s, out, item_event(s, "response.function_call_arguments.done", 0), "arguments", jtext(t, n));
        item = call_item(s->item_id, s->call_id, s->name, t, n, status);
        free(s->call_id);
        free(s->name);
        s->call_id = s->name = NULL;
        break;
    }
    json_t *ev = event("response.output_item.done");
    json_object_set_new(ev, "output_index", json_integer((json_int_t)json_array_size(s->output)));
    emit_with(s, out, ev, "item", json_incref(item));
    json_array_append_new(s->output, item);
    s->open = ITEM_NONE;
}

/* Appends a piece to the open item of kind `kind` (opening it first) and writes its delta event. */
static void item_delta(resp_state *s, const glm_gen *g, item_kind kind, const char *type, const char *piece,
                       size_t len, glm_buf *out)
{
    if (s->open != kind) {
        close_item(s, "completed", out);
        open_item(s, g, kind, NULL, out);
    }
    glm_buf_put(&s->text, piece, len);
    json_t *ev = item_event(s, type, 1);
    json_object_set_new(ev, "delta", jtext(piece, len));
    if (kind == ITEM_MESSAGE)
        json_object_set_new(ev, "logprobs", json_array());
    emit(s, out, ev);
}

static void fmt_delta(void *ctx, const glm_gen *g, const glm_out_delta *d, glm_buf *out)
{
    resp_state *s = ctx;
    if (d->reasoning_len)
        item_delta(s, g, ITEM_REASONING, "response.reasoning_text.delta", d->reasoning, d->reasoning_len, out);
    if (d->content_len)
        item_delta(s, g, ITEM_MESSAGE, "response.output_text.delta", d->content, d->content_len, out);
    for (int k = 0; k < d->n_tool_calls; k++) {
        const glm_out_tool_delta *t = &d->tool_calls[k];
        if (s->open != ITEM_CALL || s->call_index != t->index) { /* a call's first delta names it */
            close_item(s, "completed", out);
            open_item(s, g, ITEM_CALL, t, out);
        }
        if (!t->arguments_len)
            continue;
        glm_buf_put(&s->text, t->arguments, t->arguments_len);
        emit_with(s, out, item_event(s, "response.function_call_arguments.delta", 0), "delta",
                  jtext(t->arguments, t->arguments_len));
    }
}

static void fmt_start(void *ctx, const glm_gen *g, glm_buf *out)
{
    resp_state *s = ctx;
    emit_with(s, out, event("response.created"), "response",
              response_object(s, g, "in_progress", json_array(), json_null()));
    emit_with(s, out, event("response.in_progress"), "response",
              response_object(s, g, "in_progress", json_array(), json_null()));
}

static void fmt_end(void *ctx, const glm_gen *g, glm_buf *out)
{
    resp_state *s = ctx;
    const char *status = status_of(g);
    if (s->open == ITEM_NONE && json_array_size(s->output) == 0) /* nothing came: an empty message */
        open_item(s, g, ITEM_MESSAGE, NULL, out);
    close_item(s, status, out);
    json_t *o = response_object(s, g, status, json_incref(s->output), usage_of(g));
    emit_with(s, out, event(strcmp(status, "completed") == 0 ? "response.completed" : "response.incomplete"),
              "response", o);
}

/* OpenAI's ending of a failed stream: an `error` event, then response.failed with the items so far. */
static void fmt_error(void *ctx, const glm_gen *g, int status, const char *message, glm_buf *out)
{
    resp_state *s = ctx;
    const char *code = status == 400 ? "invalid_prompt" : "server_error";
    json_t *ev = json_pack("{s:s,s:s,s:o,s:n}", "type", "error", "code", code, "message", jtext(message,
                           strlen(message)), "param");
    emit(s, out, ev);
    close_item(s, "incomplete", out);
    json_t *o = response_object(s, g, "failed", json_incref(s->output), usage_of(g));
    json_object_set_new(o, "error", json_pack("{s:s,s:o}", "code", code, "message", jtext(message, strlen(message))));
    emit_with(s, out, event("response.failed"), "response", o);
}

const glm_gen_format glm_resp_format = {fmt_start, fmt_delta, fmt_end, fmt_error, fmt_response, state_free};
