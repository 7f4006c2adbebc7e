/*
 * chat_prompt.c - see chat_prompt.h. The checks follow OpenAI and vLLM; the
 * order of the fields read is the order of their errors.
 */
#include "glm/chat_prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/schema_grammar.h"
#include "core/json_field.h"
#include "core/util.h"
#include "glm/reasoning.h"

/* Records the request field to blame (NULL: none). */
static void blame(glm_chat_prompt *p, const char *param)
{
    snprintf(p->param, sizeof p->param, "%s", param ? param : "");
}

/* Blames `param` with a message; evaluates to GLM_ERR. */
#define BAD(param, ...) (blame(p, param), glm_err(err, errlen, __VA_ARGS__))

/* ---- limits --------------------------------------------------------------------------- */

/*
 * Why these values (README, "Request limits"):
 *  - messages and content parts: every message renders at least its role tag, a token, so a
 *    request cannot have more messages than tokens of context; a client that splits one
 *    message into more parts than the context has tokens does not exist either;
 *  - JSON values: what reaches the prompt takes at least about a token per value (a message
 *    object, its role and content; a tool call and its fields; a schema keyword), and a prompt
 *    of token ids is one value a token: so one per token of context, plus 65536 for what does
 *    not reach it. A body at the limit costs jansson at most about 230 bytes a value (an empty
 *    object), and the template about as much again: 69632 values (4096 tokens) about 35 MB,
 *    268288 (GLM-5's 202752) about 130 MB;
 *  - one array or object: the context (a prompt of token ids, logit_bias over the vocabulary),
 *    at least 65536; nesting: 128 levels, twice what a JSON Schema may nest (64);
 *  - tools: OpenAI's own limit;
 *  - template variables: a template reads a few switches and short strings from them.
 */
void glm_chat_limits_init(glm_chat_limits *l, int max_model_len)
{
    size_t ctx = max_model_len > 0 ? (size_t)max_model_len : 0;
    *l = (glm_chat_limits){
        .json = {.max_depth = GLM_CHAT_MAX_DEPTH,
                 .max_values = GLM_CHAT_EXTRA_VALUES + ctx,
                 .max_members = GLM_MAX(GLM_CHAT_MIN_MEMBERS, ctx)},
        .max_messages = max_model_len,
        .max_parts = max_model_len,
        .max_tools = GLM_CHAT_MAX_TOOLS,
        .kwargs = {.max_depth = GLM_CHAT_KWARGS_DEPTH,
                   .max_values = GLM_CHAT_KWARGS_VALUES,
                   .max_members = GLM_CHAT_KWARGS_VALUES,
                   .max_string_bytes = GLM_CHAT_KWARGS_STRING_BYTES},
    };
}

int glm_chat_kwargs_check(const glm_chat_limits *limits, const json_t *kwargs, const char *what, char *err,
                          size_t errlen)
{
    glm_json_shape s;
    if (glm_json_measure(kwargs, &limits->kwargs, &s) != GLM_OK) {
        s.field[0] = 0; /* the variable's name says nothing the limit does not */
        return glm_json_shape_error(&s, &limits->kwargs, what, err, errlen);
    }
    return GLM_OK;
}

/* OpenAI's words for an array over its limit. */
static int too_long(glm_chat_prompt *p, const char *field, int max, size_t n, char *err, size_t errlen)
{
    return BAD(field,
               "Invalid '%s': array too long. Expected an array with maximum length %d, but got an array with "
               "length %zu instead.",
               field, max, n);
}

/* ---- messages ------------------------------------------------------------------------- */

/* One chat message: an object with a known role and text content (a string,
 * or an array of {"type": "text", "text": ...} parts); assistant messages may
 * have null content (tool calls). As OpenAI, unknown roles are a 400;
 * `developer` (OpenAI's newer name for system instructions) is `system`. */
static int check_message(glm_chat_prompt *p, const glm_chat_limits *lim, const json_t *m, size_t i, char *err,
                         size_t errlen)
{
    static const char *roles[] = {"system", "developer", "user", "assistant", "tool"};
    const json_t *role = json_is_object(m) ? json_object_get(m, "role") : NULL;
    if (!json_is_string(role))
        return BAD("messages", "messages[%zu] must be an object with a string 'role'", i);
    const char *rs = json_string_value(role);
    int known = 0;
    for (size_t k = 0; k < sizeof roles / sizeof roles[0]; k++)
        known |= strcmp(rs, roles[k]) == 0;
    if (!known)
        return BAD("messages", "messages[%zu].role must be one of 'system', 'developer', 'user', 'assistant', 'tool'",
                   i);
    const json_t *c = json_object_get(m, "content");
    if (!c || json_is_null(c)) {
        if (strcmp(rs, "assistant") != 0)
            return BAD("messages", "messages[%zu].content is required", i);
        return GLM_OK;
    }
    if (json_is_string(c))
        return GLM_OK;
    if (!json_is_array(c))
        return BAD("messages", "messages[%zu].content must be a string or an array of content parts", i);
    if (lim->max_parts && json_array_size(c) > (size_t)lim->max_parts)
        return BAD("messages",
                   "Invalid 'messages[%zu].content': array too long. Expected an array with maximum length %d, but "
                   "got an array with length %zu instead.",
                   i, lim->max_parts, json_array_size(c));
    size_t k;
    const json_t *part;
    json_array_foreach(c, k, part) {
        const json_t *type = json_is_object(part) ? json_object_get(part, "type") : NULL;
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0)
            return BAD("messages", "messages[%zu].content[%zu]: this model accepts only parts of type 'text'", i, k);
        if (!json_is_string(json_object_get(part, "text")))
            return BAD("messages", "messages[%zu].content[%zu].text must be a string", i, k);
    }
    return GLM_OK;
}

/* Whether a message needs a copy for the template: `reasoning` to send back
 * as `reasoning_content`, or tool-call arguments that are JSON text. */
static int alias_reasoning(const json_t *m)
{
    const json_t *rc = json_object_get(m, "reasoning_content");
    return json_is_string(json_object_get(m, "reasoning")) && (!rc || json_is_null(rc));
}

static int has_text_arguments(const json_t *m)
{
    size_t k;
    const json_t *tc;
    json_array_foreach(json_object_get(m, "tool_calls"), k, tc) {
        const json_t *fn = json_is_object(tc) ? json_object_get(tc, "function") : NULL;
        if (json_is_string(json_is_object(fn) ? json_object_get(fn, "arguments") : NULL))
            return 1;
    }
    return 0;
}

/* o with member k set to v (a new object sharing o's other values). */
static json_t *with_member(const json_t *o, const char *k, json_t *v)
{
    json_t *c = json_object();
    json_object_update(c, (json_t *)o);
    json_object_set_new(c, k, v);
    return c;
}

/* Parses one tool call's arguments text within lim, counting its values into
 * *values (lim->max_values bounds the sum over a request). NULL with a message
 * when it is too large or not JSON. */
static json_t *parse_arguments(const json_t *args, const glm_json_limits *lim, size_t *values, size_t i, size_t k,
                               char *err, size_t errlen)
{
    glm_json_limits left = *lim;
    if (lim->max_values)
        left.max_values = lim->max_values > *values ? lim->max_values - *values : 1;
    glm_json_shape sh;
    if (glm_json_scan(json_string_value(args), json_string_length(args), &left, &sh) != GLM_OK) {
        char what[96];
        snprintf(what, sizeof what, "messages[%zu].tool_calls[%zu].function.arguments", i, k);
        sh.field[0] = 0;
        if (sh.excess == GLM_JSON_TOO_MANY_VALUES)
            glm_err(err, errlen, "%s: the request and its tool-call arguments hold more than %zu JSON values", what,
                    lim->max_values);
        else
            glm_json_shape_error(&sh, &left, what, err, errlen);
        return NULL;
    }
    *values += sh.values;
    json_error_t je;
    json_t *obj = json_loadb(json_string_value(args), json_string_length(args), JSON_DECODE_ANY, &je);
    if (!obj)
        glm_err(err, errlen, "messages[%zu].tool_calls[%zu].function.arguments is not valid JSON: %s", i, k,
                je.text);
    return obj;
}

/* Message i as the template reads it (see chat_prompt.h): m itself (a new
 * reference) when nothing changes, else a shallow copy with the changed
 * members (`developer` renamed `system`, reasoning aliased, arguments parsed). NULL with a message when tool-call arguments are text that is not
 * JSON or too large. */
static json_t *message_for_template(json_t *m, size_t i, const glm_json_limits *lim, size_t *values, char *err,
                                    size_t errlen)
{
    int alias = json_is_object(m) && alias_reasoning(m);
    int args = json_is_object(m) && has_text_arguments(m);
    int developer = json_is_object(m) && json_is_string(json_object_get(m, "role")) &&
                    strcmp(json_string_value(json_object_get(m, "role")), "developer") == 0;
    if (!alias && !args && !developer)
        return json_incref(m);
    json_t *out = json_object();
    json_object_update(out, m);
    if (developer) /* templates know system turns only */
        json_object_set_new(out, "role", json_string("system"));
    if (alias)
        json_object_set(out, "reasoning_content", json_object_get(m, "reasoning"));
    if (!args)
        return out;
    json_t *calls = json_array();
    size_t k;
    json_t *tc;
    json_array_foreach(json_object_get(m, "tool_calls"), k, tc) {
        json_t *fn = json_is_object(tc) ? json_object_get(tc, "function") : NULL;
        json_t *text = json_is_object(fn) ? json_object_get(fn, "arguments") : NULL;
        json_t *obj = json_is_string(text) ? parse_arguments(text, lim, values, i, k, err, errlen) : NULL;
        if (json_is_string(text) && !obj) {
            json_decref(calls);
            json_decref(out);
            return NULL;
        }
        if (json_is_object(obj)) /* GLM templates iterate arguments.items() */
            json_array_append_new(calls, with_member(tc, "function", with_member(fn, "arguments", obj)));
        else
            json_array_append(calls, tc);
        if (obj && !json_is_object(obj))
            json_decref(obj);
    }
    json_object_set_new(out, "tool_calls", calls);
    return out;
}

/* The messages of `request` as the template reads them; NULL with a message
 * when tool-call arguments are text that is not JSON or too large (lim bounds
 * the request's values and theirs together). */
static json_t *messages_for_template(const json_t *request, const glm_json_limits *lim, char *err, size_t errlen)
{
    const json_t *messages = glm_json_field(request, "messages");
    json_t *out = json_array();
    size_t i, values = 0;
    json_t *m;
    json_array_foreach(messages, i, m) {
        if (json_is_object(m) && has_text_arguments(m)) { /* count the request once */
            glm_json_shape sh;
            glm_json_measure(request, NULL, &sh);
            values = sh.values;
            break;
        }
    }
    json_array_foreach(messages, i, m) {
        json_t *c = message_for_template(m, i, lim, &values, err, errlen);
        if (!c) {
            json_decref(out);
            return NULL;
        }
        json_array_append_new(out, c);
    }
    return out;
}

/* ---- tools ----------------------------------------------------------------------------- */

static int valid_name(const char *s, size_t n)
{
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.'))
            return 0;
    }
    return 1;
}

static int check_tools(glm_chat_prompt *p, const glm_chat_limits *lim, const json_t *tools, char *err,
                       size_t errlen)
{
    if (!json_is_array(tools))
        return BAD("tools", "'tools' must be an array");
    if (json_array_size(tools) == 0)
        return BAD("tools", "'tools' must not be empty: leave it out to offer no tools");
    if (lim->max_tools && json_array_size(tools) > (size_t)lim->max_tools)
        return too_long(p, "tools", lim->max_tools, json_array_size(tools), err, errlen);
    size_t i, k;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        if (!json_is_object(t))
            return BAD("tools", "tools[%zu] must be an object", i);
        const json_t *type = glm_json_field(t, "type");
        if (type && (!json_is_string(type) || strcmp(json_string_value(type), "function") != 0))
            return BAD("tools", "tools[%zu].type must be \"function\"", i);
        const json_t *fn = glm_json_field(t, "function");
        if (!json_is_object(fn))
            return BAD("tools", "tools[%zu].function must be an object", i);
        const json_t *name = glm_json_field(fn, "name");
        if (!json_is_string(name) || !valid_name(json_string_value(name), json_string_length(name)))
            return BAD("tools",
                       "tools[%zu].function.name must be 1 to 64 letters, digits, underscores, dashes or dots", i);
        const json_t *desc = glm_json_field(fn, "description");
        if (desc && !json_is_string(desc))
            return BAD("tools", "tools[%zu].function.description must be a string", i);
        const json_t *strict = glm_json_field(fn, "strict");
        if (strict && !json_is_boolean(strict))
            return BAD("tools", "tools[%zu].function.strict must be a boolean", i);
        const json_t *params = glm_json_field(fn, "parameters");
        if (params) {
            if (!json_is_object(params))
                return BAD("tools", "tools[%zu].function.parameters must be a JSON Schema object", i);
            const json_t *pt = glm_json_field(params, "type");
            if (pt && (!json_is_string(pt) || strcmp(json_string_value(pt), "object") != 0))
                return BAD("tools", "tools[%zu].function.parameters must describe an object (\"type\": \"object\")",
                           i);
            char serr[GLM_ERRLEN];
            if (glm_schema_wellformed(params, serr, sizeof serr) != GLM_OK)
                return BAD("tools", "tools[%zu].function.parameters%s%s", i,
                           strncmp(serr, "schema", 6) == 0 ? "" : ": ",
                           strncmp(serr, "schema", 6) == 0 ? serr + 6 : serr);
        }
        for (k = 0; k < i; k++) {
            const json_t *other = json_object_get(json_object_get(json_array_get(tools, k), "function"), "name");
            if (json_equal((json_t *)other, (json_t *)name))
                return BAD("tools", "tools[%zu] and tools[%zu] are both named '%s'", k, i, json_string_value(name));
        }
    }
    return GLM_OK;
}

/* The name of the tool called `name`, as tools holds it, or NULL. */
static const char *find_tool(const json_t *tools, const char *name)
{
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        const json_t *n = json_object_get(json_object_get(t, "function"), "name");
        if (json_is_string(n) && strcmp(json_string_value(n), name) == 0)
            return json_string_value(n);
    }
    return NULL;
}

/* tools, tool_choice and parallel_tool_calls into p (p->tools borrowed until the build succeeds). */
static int read_tools(glm_chat_prompt *p, const glm_chat_limits *lim, const json_t *root, char *err, size_t errlen)
{
    json_t *tools = (json_t *)glm_json_field(root, "tools");
    if (tools && check_tools(p, lim, tools, err, errlen) != GLM_OK)
        return GLM_ERR;
    p->tools = tools;
    const json_t *tc = glm_json_field(root, "tool_choice");
    p->tool_choice = tools ? GLM_TOOL_CHOICE_AUTO : GLM_TOOL_CHOICE_NONE;
    if (tc) {
        if (!tools)
            return BAD("tool_choice", "'tool_choice' needs 'tools'");
        if (json_is_string(tc)) {
            const char *s = json_string_value(tc);
            if (strcmp(s, "auto") == 0)
                p->tool_choice = GLM_TOOL_CHOICE_AUTO;
            else if (strcmp(s, "none") == 0)
                p->tool_choice = GLM_TOOL_CHOICE_NONE;
            else if (strcmp(s, "required") == 0)
                p->tool_choice = GLM_TOOL_CHOICE_REQUIRED;
            else
                return BAD("tool_choice",
                           "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
                           "\"function\": {\"name\": ...}}");
        } else if (json_is_object(tc)) {
            const json_t *type = glm_json_field(tc, "type");
            const json_t *fn = glm_json_field(tc, "function");
            const json_t *name = json_is_object(fn) ? glm_json_field(fn, "name") : NULL;
            if (type && (!json_is_string(type) || strcmp(json_string_value(type), "function") != 0))
                return BAD("tool_choice", "'tool_choice.type' must be \"function\"");
            if (!json_is_string(name))
                return BAD("tool_choice", "'tool_choice.function.name' must be a string");
            p->tool_name = find_tool(tools, json_string_value(name));
            if (!p->tool_name)
                return BAD("tool_choice", "'tool_choice' names the function '%s', which is not in 'tools'",
                           json_string_value(name));
            p->tool_choice = GLM_TOOL_CHOICE_NAMED;
        } else {
            return BAD("tool_choice", "'tool_choice' must be a string or an object");
        }
    }
    const json_t *ptc = glm_json_field(root, "parallel_tool_calls");
    if (ptc && !json_is_boolean(ptc))
        return BAD("parallel_tool_calls", "'parallel_tool_calls' must be a boolean");
    p->parallel_tool_calls = ptc ? json_is_true(ptc) : 1;
    p->parse_tools = tools && p->tool_choice != GLM_TOOL_CHOICE_NONE;
    return GLM_OK;
}

/* ---- the prompt ------------------------------------------------------------------------- */

/* Everything but the text and ids, which need the template. */
static int read_request(const glm_chat_ctx *c, const json_t *request, glm_chat_prompt *p, glm_reasoning *rs,
                        char *err, size_t errlen)
{
    const glm_chat_limits *lim = &c->limits;
    const json_t *messages = glm_json_field(request, "messages");
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return BAD("messages", "'messages' must be a non-empty array");
    if (lim->max_messages && json_array_size(messages) > (size_t)lim->max_messages)
        return too_long(p, "messages", lim->max_messages, json_array_size(messages), err, errlen);
    size_t i;
    const json_t *m;
    json_array_foreach(messages, i, m) {
        if (check_message(p, lim, m, i, err, errlen))
            return GLM_ERR;
    }
    if (read_tools(p, lim, request, err, errlen) != GLM_OK)
        return GLM_ERR;
    const json_t *agp = glm_json_field(request, "add_generation_prompt");
    if (agp && !json_is_boolean(agp))
        return BAD("add_generation_prompt", "'add_generation_prompt' must be a boolean");
    char cerr[GLM_ERRLEN];
    const json_t *ctk = glm_json_field(request, "chat_template_kwargs");
    if (json_is_object(ctk) && glm_chat_kwargs_check(lim, ctk, "'chat_template_kwargs'", cerr, sizeof cerr) != GLM_OK)
        return BAD("chat_template_kwargs", "%s", cerr);
    if (glm_reasoning_parse(request, c->default_kwargs, rs, cerr, sizeof cerr) != GLM_OK)
        return BAD(rs->param[0] ? rs->param : NULL, "%s", cerr);
    p->exclude_reasoning = rs->exclude;
    p->budget = rs->budget;
    return GLM_OK;
}

int glm_chat_prompt_build(const glm_chat_ctx *c, const json_t *request, size_t max_ids, glm_chat_prompt *p,
                          char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->budget = -1;
    p->parallel_tool_calls = 1;
    p->think = GLM_OUT_THINK_OFF;
    if (!c->tmpl) /* a base model: vLLM's answer, with the way out */
        return BAD("messages",
                   "this model has no chat template (neither chat_template.jinja nor tokenizer_config.json's "
                   "chat_template): chat requests are not available; use /v1/completions with a prompt");
    glm_reasoning rs;
    if (read_request(c, request, p, &rs, err, errlen) != GLM_OK) {
        p->tools = NULL;
        p->tool_name = NULL;
        return GLM_ERR;
    }
    char cerr[GLM_ERRLEN];
    const json_t *agp = glm_json_field(request, "add_generation_prompt");
    json_t *msgs = messages_for_template(request, &c->limits.json, cerr, sizeof cerr);
    char *text = NULL;
    size_t len = 0;
    int rc = msgs ? glm_chat_render(c->tmpl, msgs, p->tools, !agp || json_is_true(agp), rs.kwargs, &text, &len,
                                    cerr, sizeof cerr)
                  : GLM_ERR;
    json_decref(rs.kwargs);
    json_decref(msgs);
    int32_t *ids = NULL;
    size_t n = 0;
    if (rc == GLM_OK && glm_tok_encode_max(c->tok, text, len, 1, max_ids, &ids, &n, cerr, sizeof cerr) != GLM_OK)
        rc = GLM_ERR;
    if (rc == GLM_OK && n > INT32_MAX / 2) {
        snprintf(cerr, sizeof cerr, "the prompt is too long");
        rc = GLM_ERR;
    }
    if (rc != GLM_OK) {
        free(text);
        free(ids);
        p->tools = NULL;
        p->tool_name = NULL;
        return BAD("messages", "%s", cerr);
    }
    p->think = glm_out_think_mode_for_prompt(text, len, c->tags);
    p->text = text;
    p->len = len;
    p->ids = ids;
    p->n_ids = n;
    json_incref(p->tools);
    return GLM_OK;
}

void glm_chat_prompt_free(glm_chat_prompt *p)
{
    free(p->text);
    free(p->ids);
    json_decref(p->tools);
    p->text = NULL;
    p->ids = NULL;
    p->tools = NULL;
    p->tool_name = NULL;
    p->len = p->n_ids = 0;
}
