/*
 * responses.c - POST /v1/responses: a Responses request read into the chat
 * request it means, then generated as a chat completion; see responses.h.
 *
 * The chat request shares the Responses request's values (strings, schemas,
 * tool parameters) by reference, so reading it adds a few small objects per
 * input item to the tree the body's limits already bound (request_body.h).
 * Input items become chat messages: messages keep their role (developer is
 * system), a reasoning item, an assistant message and function calls that
 * follow one another form one assistant turn (reasoning sent back, content,
 * tool_calls), a function_call_output is a tool message and must answer a
 * call given earlier in the input.
 */
#include "responses.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "completions.h"
#include "core/buf.h"
#include "core/json_field.h"
#include "core/util.h"

#define BAD(p, ...) (*param = (p), glm_err(err, errlen, __VA_ARGS__))

/* Every member a request may have; anything else is refused by name. */
static const char *const request_keys[] = {
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens",
    "temperature", "top_p", "text", "reasoning", "stream", "stream_options", "metadata", "store",
    "previous_response_id", "include", "truncation", "user", "safety_identifier", "prompt_cache_key",
    "service_tier", "background", "top_logprobs", "max_tool_calls",
    /* extensions, read as the chat API reads them (vLLM's sampling fields among them) */
    "seed", "top_k", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty", "logit_bias", "stop",
    NULL};

/* Passed to the chat request as they are. */
static const char *const chat_keys[] = {"model", "temperature", "top_p", "parallel_tool_calls", "stream", "seed",
                                        "top_k", "min_p", "repetition_penalty", "presence_penalty",
                                        "frequency_penalty", "logit_bias", "stop", NULL};

/* The first member of o whose name is not in keys (NULL-terminated), or NULL. A member that is
 * null is not given (as the SDK's models write absent fields). */
static const char *unknown_key(const json_t *o, const char *const *keys)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        if (json_is_null(v))
            continue;
        size_t i = 0;
        while (keys[i] && strcmp(keys[i], k) != 0)
            i++;
        if (!keys[i])
            return k;
    }
    return NULL;
}

static int is_str(const json_t *v, const char *s)
{
    return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

/* ---- input items ----------------------------------------------------------------------- */

typedef struct {
    json_t *msgs;     /* the chat messages */
    json_t *asst;     /* the assistant turn being gathered, or NULL */
    json_t *call_ids; /* the call ids of the function calls so far (an object used as a set) */
} turns;

static void flush(turns *t)
{
    if (t->asst)
        json_array_append_new(t->msgs, t->asst);
    t->asst = NULL;
}

/* The assistant turn an item adds to. GLM writes reasoning, then content, then tool calls: a
 * function call joins the current turn, a message opens a new one after content or calls, a
 * reasoning item after anything. */
enum { JOIN, AFTER_CONTENT, AFTER_ANY };

static json_t *assistant(turns *t, int when)
{
    json_t *a = t->asst;
    if (a && when != JOIN &&
        (!json_is_null(json_object_get(a, "content")) || json_object_get(a, "tool_calls") ||
         (when == AFTER_ANY && json_object_get(a, "reasoning"))))
        flush(t);
    if (!t->asst)
        t->asst = json_pack("{s:s,s:n}", "role", "assistant", "content");
    return t->asst;
}

/* Content parts as chat text parts (their strings shared): input_text and output_text (with its
 * annotations and logprobs) are text; anything else is refused. what: "input[3].content". */
static int text_parts(const json_t *c, const char *what, json_t **out, const char **param, char *err, size_t errlen)
{
    static const char *const keys[] = {"type", "text", "annotations", "logprobs", NULL};
    if (json_is_string(c)) {
        *out = json_incref((json_t *)c);
        return GLM_OK;
    }
    if (!json_is_array(c))
        return BAD("input", "%s must be a string or an array of content parts", what);
    json_t *parts = json_array();
    size_t k;
    const json_t *p;
    json_array_foreach(c, k, p) {
        const json_t *type = json_object_get(p, "type");
        const char *bad = json_is_object(p) ? unknown_key(p, keys) : NULL;
        if (!json_is_object(p) || !(is_str(type, "input_text") || is_str(type, "output_text"))) {
            json_decref(parts);
            return BAD("input", "%s[%zu]: only parts of type 'input_text' and 'output_text' are supported (this "
                       "model reads text), got '%s'", what, k, json_is_string(type) ? json_string_value(type) : "?");
        }
        if (bad || !json_is_string(json_object_get(p, "text"))) {
            json_decref(parts);
            if (bad)
                return BAD("input", "%s[%zu].%s is not supported", what, k, bad);
            return BAD("input", "%s[%zu].text must be a string", what, k);
        }
        json_array_append_new(parts, json_pack("{s:s,s:O}", "type", "text", "text", json_object_get(p, "text")));
    }
    *out = parts;
    return GLM_OK;
}

static int message_item(turns *t, const json_t *it, const char *what, const char **param, char *err, size_t errlen)
{
    static const char *const keys[] = {"type", "role", "content", "id", "status", "phase", NULL};
    const char *bad = unknown_key(it, keys);
    if (bad)
        return BAD("input", "%s.%s is not supported", what, bad);
    const json_t *role = json_object_get(it, "role");
    const char *r = json_is_string(role) ? json_string_value(role) : "";
    if (strcmp(r, "user") && strcmp(r, "system") && strcmp(r, "developer") && strcmp(r, "assistant"))
        return BAD("input", "%s.role must be one of 'user', 'system', 'developer', 'assistant'", what);
    char cwhat[64];
    snprintf(cwhat, sizeof cwhat, "%s.content", what);
    json_t *content;
    if (text_parts(glm_json_field(it, "content"), cwhat, &content, param, err, errlen) != GLM_OK)
        return GLM_ERR;
    if (strcmp(r, "assistant") == 0) {
        json_object_set_new(assistant(t, AFTER_CONTENT), "content", content);
        return GLM_OK;
    }
    flush(t);
    json_array_append_new(t->msgs, json_pack("{s:s,s:o}", "role", strcmp(r, "developer") ? r : "system", "content",
                                             content));
    return GLM_OK;
}

/* A reasoning item given back: its reasoning_text content (else its summary) is the reasoning of
 * the assistant turn it opens. */
static int reasoning_item(turns *t, const json_t *it, const char *what, const char **param, char *err, size_t errlen)
{
    static const char *const keys[] = {"type", "id", "summary", "content", "encrypted_content", "status", NULL};
    const char *bad = unknown_key(it, keys);
    if (bad)
        return BAD("input", "%s.%s is not supported", what, bad);
    if (glm_json_field(it, "encrypted_content"))
        return BAD("input", "%s.encrypted_content is not supported: this server returns reasoning as text", what);
    const json_t *content = glm_json_field(it, "content"), *summary = glm_json_field(it, "summary");
    if ((content && !json_is_array(content)) || (summary && !json_is_array(summary)))
        return BAD("input", "%s: 'content' and 'summary' must be arrays", what);
    const json_t *parts = json_array_size(content) ? content : summary;
    const char *type = parts == content ? "reasoning_text" : "summary_text";
    glm_buf text = {0};
    size_t k;
    const json_t *p;
    json_array_foreach(parts, k, p) {
        const json_t *s = json_object_get(p, "text");
        if (!is_str(json_object_get(p, "type"), type) || !json_is_string(s)) {
            glm_buf_free(&text);
            return BAD("input", "%s: its parts must be {\"type\": \"%s\", \"text\": string}", what, type);
        }
        glm_buf_put(&text, json_string_value(s), json_string_length(s));
    }
    json_object_set_new(assistant(t, AFTER_ANY), "reasoning", json_stringn(text.len ? text.p : "", text.len));
    glm_buf_free(&text);
    return GLM_OK;
}

static int function_call_item(turns *t, const json_t *it, const char *what, const char **param, char *err,
                              size_t errlen)
{
    static const char *const keys[] = {"type", "id", "call_id", "name", "arguments", "status", NULL};
    const char *bad = unknown_key(it, keys);
    if (bad)
        return BAD("input", "%s.%s is not supported", what, bad);
    const json_t *call_id = json_object_get(it, "call_id"), *name = json_object_get(it, "name"),
                 *args = json_object_get(it, "arguments");
    if (!json_is_string(call_id) || !json_is_string(name) || !json_is_string(args))
        return BAD("input", "%s needs the strings 'call_id', 'name' and 'arguments'", what);
    json_t *a = assistant(t, JOIN);
    json_t *calls = json_object_get(a, "tool_calls");
    if (!calls) {
        calls = json_array();
        json_object_set_new(a, "tool_calls", calls);
    }
    json_array_append_new(calls, json_pack("{s:O,s:s,s:{s:O,s:O}}", "id", call_id, "type", "function", "function",
                                           "name", name, "arguments", args));
    json_object_set_new(t->call_ids, json_string_value(call_id), json_null());
    return GLM_OK;
}

static int function_output_item(turns *t, const json_t *it, const char *what, const char **param, char *err,
                                size_t errlen)
{
    static const char *const keys[] = {"type", "id", "call_id", "output", "status", NULL};
    const char *bad = unknown_key(it, keys);
    if (bad)
        return BAD("input", "%s.%s is not supported", what, bad);
    const json_t *call_id = json_object_get(it, "call_id");
    if (!json_is_string(call_id))
        return BAD("input", "%s.call_id must be a string", what);
    if (!json_object_get(t->call_ids, json_string_value(call_id)))
        return BAD("input", "No tool call found for function call output with call_id %s (%s).",
                   json_string_value(call_id), what);
    char owhat[64];
    snprintf(owhat, sizeof owhat, "%s.output", what);
    json_t *content;
    if (text_parts(json_object_get(it, "output"), owhat, &content, param, err, errlen) != GLM_OK)
        return GLM_ERR;
    flush(t);
    json_array_append_new(t->msgs,
                          json_pack("{s:s,s:O,s:o}", "role", "tool", "tool_call_id", call_id, "content", content));
    return GLM_OK;
}

static int input_item(turns *t, const json_t *it, size_t i, const char **param, char *err, size_t errlen)
{
    char what[32];
    snprintf(what, sizeof what, "input[%zu]", i);
    if (!json_is_object(it))
        return BAD("input", "%s must be an object", what);
    const json_t *type = glm_json_field(it, "type");
    if (!type || is_str(type, "message"))
        return message_item(t, it, what, param, err, errlen);
    if (is_str(type, "reasoning"))
        return reasoning_item(t, it, what, param, err, errlen);
    if (is_str(type, "function_call"))
        return function_call_item(t, it, what, param, err, errlen);
    if (is_str(type, "function_call_output"))
        return function_output_item(t, it, what, param, err, errlen);
    if (is_str(type, "item_reference"))
        return BAD("input", "%s: item references are not supported: this server stores no responses", what);
    return BAD("input", "%s.type '%s' is not supported (supported: message, reasoning, function_call, "
               "function_call_output)", what, json_is_string(type) ? json_string_value(type) : "?");
}

/* The chat messages: the instructions as a system message, then the input. */
static int read_input(const json_t *root, json_t *chat, const char **param, char *err, size_t errlen)
{
    const json_t *input = glm_json_field(root, "input"), *ins = glm_json_field(root, "instructions");
    if (ins && !json_is_string(ins))
        return BAD("instructions", "'instructions' must be a string");
    if (!json_is_string(input) && !json_is_array(input))
        return BAD("input", "'input' must be a string or an array of input items");
    turns t = {json_array(), NULL, json_object()};
    json_object_set_new(chat, "messages", t.msgs);
    if (ins)
        json_array_append_new(t.msgs, json_pack("{s:s,s:O}", "role", "system", "content", ins));
    int rc = GLM_OK;
    if (json_is_string(input)) {
        json_array_append_new(t.msgs, json_pack("{s:s,s:O}", "role", "user", "content", input));
    } else {
        size_t i;
        const json_t *it;
        json_array_foreach(input, i, it) {
            if ((rc = input_item(&t, it, i, param, err, errlen)) != GLM_OK)
                break;
        }
    }
    if (rc == GLM_OK)
        flush(&t);
    json_decref(t.asst);
    json_decref(t.call_ids);
    return rc;
}

/* ---- tools, tool_choice, text.format, reasoning ----------------------------------------------- */

static int read_tools(const json_t *root, json_t *chat, const char **param, char *err, size_t errlen)
{
    static const char *const keys[] = {"type", "name", "description", "parameters", "strict", NULL};
    const json_t *tools = glm_json_field(root, "tools");
    if (!tools)
        return GLM_OK;
    if (!json_is_array(tools))
        return BAD("tools", "'tools' must be an array");
    json_t *out = json_array();
    json_object_set_new(chat, "tools", out);
    size_t i;
    const json_t *tl;
    json_array_foreach(tools, i, tl) {
        const json_t *type = json_object_get(tl, "type");
        if (!is_str(type, "function"))
            return BAD("tools", "tools[%zu]: tools of type '%s' are not supported: only function tools are",
                       i, json_is_string(type) ? json_string_value(type) : "?");
        const char *bad = unknown_key(tl, keys);
        if (bad)
            return BAD("tools", "tools[%zu].%s is not supported", i, bad);
        json_t *fn = json_object();
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)tl, k, v)
            if (strcmp(k, "type") != 0 && !json_is_null(v))
                json_object_set(fn, k, v);
        json_array_append_new(out, json_pack("{s:s,s:o}", "type", "function", "function", fn));
    }
    return GLM_OK;
}

static int read_tool_choice(const json_t *root, json_t *chat, const char **param, char *err, size_t errlen)
{
    const json_t *tc = glm_json_field(root, "tool_choice");
    if (!tc || json_is_string(tc)) {
        if (tc)
            json_object_set(chat, "tool_choice", (json_t *)tc);
        return GLM_OK;
    }
    static const char *const choice_keys[] = {"type", "name", NULL};
    if (!json_is_object(tc) || !is_str(json_object_get(tc, "type"), "function") || unknown_key(tc, choice_keys) ||
        !json_is_string(json_object_get(tc, "name")))
        return BAD("tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": "
                   "\"function\", \"name\": string}");
    json_object_set_new(chat, "tool_choice", json_pack("{s:s,s:{s:O}}", "type", "function", "function", "name",
                                                       json_object_get(tc, "name")));
    return GLM_OK;
}

/* text.format as the chat API's response_format. */
static int read_text(const json_t *root, json_t *chat, json_t *echo, const char **param, char *err, size_t errlen)
{
    static const char *const keys[] = {"format", "verbosity", NULL};
    static const char *const schema_keys[] = {"type", "name", "schema", "description", "strict", NULL};
    const json_t *text = glm_json_field(root, "text");
    json_object_set_new(echo, "text", json_pack("{s:{s:s}}", "format", "type", "text"));
    if (!text)
        return GLM_OK;
    if (!json_is_object(text))
        return BAD("text", "'text' must be an object");
    const char *bad = unknown_key(text, keys);
    if (bad)
        return BAD("text", "'text.%s' is not supported", bad);
    const json_t *verb = glm_json_field(text, "verbosity");
    if (verb && !is_str(verb, "medium"))
        return BAD("text.verbosity", "'text.verbosity' other than \"medium\" is not supported");
    const json_t *f = glm_json_field(text, "format");
    if (!f)
        return GLM_OK;
    const json_t *type = json_object_get(f, "type");
    if (is_str(type, "json_object") && json_object_size(f) == 1) {
        json_object_set_new(chat, "response_format", json_pack("{s:s}", "type", "json_object"));
    } else if (is_str(type, "json_schema")) {
        if ((bad = unknown_key(f, schema_keys)))
            return BAD("text.format", "'text.format.%s' is not supported", bad);
        json_t *js = json_object();
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)f, k, v)
            if (strcmp(k, "type") != 0)
                json_object_set(js, k, v);
        json_object_set_new(chat, "response_format", json_pack("{s:s,s:o}", "type", "json_schema", "json_schema", js));
    } else if (!is_str(type, "text") || json_object_size(f) != 1) {
        return BAD("text.format", "'text.format' must be {\"type\": \"text\"}, {\"type\": \"json_object\"} or "
                   "{\"type\": \"json_schema\", \"name\", \"schema\", \"strict\"}");
    }
    json_object_set(echo, "text", (json_t *)text);
    return GLM_OK;
}

/* reasoning.effort as the chat API reads it (engine/glm/reasoning.c: "none" turns thinking off, any
 * other effort on); a summary is accepted and stays empty (the reasoning comes whole, as text). */
static int read_reasoning(const json_t *root, json_t *chat, json_t *echo, const char **param, char *err,
                          size_t errlen)
{
    static const char *const keys[] = {"effort", "summary", "generate_summary", NULL};
    const json_t *rs = glm_json_field(root, "reasoning");
    json_object_set_new(echo, "reasoning", json_pack("{s:n,s:n}", "effort", "summary"));
    if (!rs)
        return GLM_OK;
    if (!json_is_object(rs))
        return BAD("reasoning", "'reasoning' must be an object");
    const char *bad = unknown_key(rs, keys);
    if (bad)
        return BAD("reasoning", "'reasoning.%s' is not supported", bad);
    const json_t *eff = glm_json_field(rs, "effort");
    const json_t *sum = glm_json_field(rs, "summary") ? glm_json_field(rs, "summary")
                                                      : glm_json_field(rs, "generate_summary");
    if (sum && !is_str(sum, "auto") && !is_str(sum, "concise") && !is_str(sum, "detailed"))
        return BAD("reasoning", "'reasoning.summary' must be \"auto\", \"concise\" or \"detailed\"");
    if (eff)
        json_object_set_new(chat, "reasoning", json_pack("{s:O}", "effort", eff));
    json_object_set_new(echo, "reasoning", json_pack("{s:O?,s:O?}", "effort", eff, "summary", sum));
    return GLM_OK;
}

/* ---- the rest of the request ------------------------------------------------------------------ */

/* Members that are accepted only with the value that means what this server does. */
static int read_fixed(const json_t *root, const char **param, char *err, size_t errlen)
{
    const json_t *v;
    if (glm_json_field(root, "previous_response_id"))
        return BAD("previous_response_id", "'previous_response_id' is not supported: this server stores no "
                   "responses; send the conversation as input items");
    if ((v = glm_json_field(root, "store")) && !json_is_boolean(v))
        return BAD("store", "'store' must be a boolean");
    if ((v = glm_json_field(root, "include")) && (!json_is_array(v) || json_array_size(v)))
        return BAD("include", "'include' is not supported (nothing can be included)");
    if ((v = glm_json_field(root, "truncation")) && !is_str(v, "disabled"))
        return BAD("truncation", "'truncation' must be \"disabled\": input is never truncated");
    if ((v = glm_json_field(root, "background")) && !json_is_false(v))
        return BAD("background", "'background' is not supported");
    if ((v = glm_json_field(root, "top_logprobs")) && !(json_is_integer(v) && json_integer_value(v) == 0))
        return BAD("top_logprobs", "'top_logprobs' is not supported here (use /v1/chat/completions)");
    if (glm_json_field(root, "max_tool_calls"))
        return BAD("max_tool_calls", "'max_tool_calls' is not supported");
    if ((v = glm_json_field(root, "service_tier")) && !is_str(v, "auto") && !is_str(v, "default"))
        return BAD("service_tier", "'service_tier' must be \"auto\" or \"default\"");
    if ((v = glm_json_field(root, "stream_options"))) {
        static const char *const keys[] = {"include_obfuscation", NULL};
        const json_t *ob = json_object_get(v, "include_obfuscation");
        if (!json_is_object(v) || unknown_key(v, keys) || (ob && !json_is_false(ob) && !json_is_null(ob)))
            return BAD("stream_options", "'stream_options' may only be {\"include_obfuscation\": false}");
    }
    static const char *const strings[] = {"user", "safety_identifier", "prompt_cache_key"};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        if ((v = glm_json_field(root, strings[i])) && !json_is_string(v))
            return BAD(strings[i], "'%s' must be a string", strings[i]);
    return GLM_OK;
}

/* metadata: at most 16 pairs of strings (keys up to 64 characters, values up to 512), as OpenAI. */
static int read_metadata(const json_t *root, json_t *echo, const char **param, char *err, size_t errlen)
{
    const json_t *md = glm_json_field(root, "metadata");
    if (!md) {
        json_object_set_new(echo, "metadata", json_object());
        return GLM_OK;
    }
    if (!json_is_object(md) || json_object_size(md) > 16)
        return BAD("metadata", "'metadata' must be an object of at most 16 strings");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)md, k, v)
        if (strlen(k) > 64 || !json_is_string(v) || json_string_length(v) > 512)
            return BAD("metadata", "'metadata' keys must be at most 64 characters, its values strings of at most "
                       "512");
    json_object_set(echo, "metadata", (json_t *)md);
    return GLM_OK;
}

/* The chat request (into chat) and the response's echo of the request (into echo). */
static int read_request(const json_t *root, json_t *chat, json_t *echo, const char **param, char *err,
                        size_t errlen)
{
    const char *bad = unknown_key(root, request_keys);
    if (bad) { /* the name outlives the tree: the answer is written on this thread after it is freed */
        static _Thread_local char name[64];
        snprintf(name, sizeof name, "%s", bad);
        return BAD(name, "Unknown parameter: '%s'.", name);
    }
    if (read_fixed(root, param, err, errlen) || read_metadata(root, echo, param, err, errlen) ||
        read_input(root, chat, param, err, errlen) || read_tools(root, chat, param, err, errlen) ||
        read_tool_choice(root, chat, param, err, errlen) ||
        read_text(root, chat, echo, param, err, errlen) || read_reasoning(root, chat, echo, param, err, errlen))
        return GLM_ERR;
    const json_t *mt = glm_json_field(root, "max_output_tokens");
    if (mt && (!json_is_integer(mt) || json_integer_value(mt) < 1))
        return BAD("max_output_tokens", "'max_output_tokens' must be an integer >= 1");
    if (mt)
        json_object_set(chat, "max_tokens", (json_t *)mt);
    for (size_t i = 0; chat_keys[i]; i++) {
        const json_t *v = glm_json_field(root, chat_keys[i]);
        if (v)
            json_object_set(chat, chat_keys[i], (json_t *)v);
    }
    /* what the response object repeats */
    const json_t *v = glm_json_field(root, "instructions");
    json_object_set_new(echo, "instructions", v ? json_incref((json_t *)v) : json_null());
    json_object_set_new(echo, "max_output_tokens", mt ? json_incref((json_t *)mt) : json_null());
    v = glm_json_field(root, "tools");
    json_object_set_new(echo, "tools", v ? json_incref((json_t *)v) : json_array());
    v = glm_json_field(root, "tool_choice");
    json_object_set_new(echo, "tool_choice", v ? json_incref((json_t *)v) : json_string("auto"));
    v = glm_json_field(root, "parallel_tool_calls");
    json_object_set_new(echo, "parallel_tool_calls", json_boolean(!v || json_is_true(v)));
    static const char *const same[] = {"user", "safety_identifier", "prompt_cache_key"};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
        if ((v = glm_json_field(root, same[i])))
            json_object_set(echo, same[i], (json_t *)v);
    return GLM_OK;
}

/* The chat parser's field names, as the Responses request spells them. */
static const char *responses_param(const char *p)
{
    if (!p)
        return NULL;
    if (strncmp(p, "messages", 8) == 0)
        return "input";
    if (strcmp(p, "max_tokens") == 0)
        return "max_output_tokens";
    if (strcmp(p, "response_format") == 0)
        return "text.format";
    return p;
}

/* A sampling value as it was written (0.95, not the float's 0.949999988). */
static double decimal(float x)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)x);
    return strtod(buf, NULL);
}

static int parse(glm_oai_request *r, const json_t *root, const glm_gen_ctx *g, int *status, const char **param,
                 char *err, size_t errlen)
{
    *status = 400;
    *param = NULL;
    json_t *chat = json_object(), *echo = json_object();
    int rc = read_request(root, chat, echo, param, err, errlen);
    if (rc == GLM_OK) {
        rc = glm_oai_request_parse(r, chat, 1, g, status, param, err, errlen);
        *param = responses_param(*param);
    }
    json_decref(chat);
    if (rc != GLM_OK) {
        json_decref(echo);
        return GLM_ERR;
    }
    json_object_set_new(echo, "model", json_string(g->model->served_model_name));
    json_object_set_new(echo, "temperature", json_real(decimal(r->sp.temperature)));
    json_object_set_new(echo, "top_p", json_real(decimal(r->sp.top_p)));
    r->format = &glm_resp_format;
    r->format_ctx = glm_resp_format_new(echo);
    return GLM_OK;
}

static const glm_gen_api responses_api = {"resp_", "input", parse};

enum MHD_Result glm_handle_responses(glm_http_req *r, const glm_gen_ctx *g)
{
    return glm_generate(r, g, &responses_api);
}
