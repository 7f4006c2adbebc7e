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

/* ---- messages ------------------------------------------------------------------------- */

/* One chat message: an object with a known role and text content (a string,
 * or an array of {"type": "text", "text": ...} parts); assistant messages may
 * have null content (tool calls). As OpenAI, unknown roles are a 400. */
static int check_message(glm_chat_prompt *p, const json_t *m, size_t i, char *err, size_t errlen)
{
    static const char *roles[] = {"system", "user", "assistant", "tool"};
    const json_t *role = json_is_object(m) ? json_object_get(m, "role") : NULL;
    if (!json_is_string(role))
        return BAD("messages", "messages[%zu] must be an object with a string 'role'", i);
    const char *rs = json_string_value(role);
    int known = 0;
    for (size_t k = 0; k < sizeof roles / sizeof roles[0]; k++)
        known |= strcmp(rs, roles[k]) == 0;
    if (!known)
        return BAD("messages", "messages[%zu].role must be one of 'system', 'user', 'assistant', 'tool'", i);
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

/* A copy of the messages as the template reads them (see chat_prompt.h); NULL
 * with a message when tool-call arguments are a string that is not JSON. */
static json_t *messages_for_template(const json_t *messages, char *err, size_t errlen)
{
    if (!json_is_array(messages)) {
        glm_err(err, errlen, "'messages' must be an array");
        return NULL;
    }
    json_t *out = json_deep_copy(messages);
    size_t i, k;
    json_t *m, *tc;
    json_array_foreach(out, i, m) {
        if (!json_is_object(m))
            continue;
        json_t *rs = json_object_get(m, "reasoning");
        json_t *rc = json_object_get(m, "reasoning_content");
        if (json_is_string(rs) && (!rc || json_is_null(rc)))
            json_object_set(m, "reasoning_content", rs);
        json_t *calls = json_object_get(m, "tool_calls");
        if (!json_is_array(calls))
            continue;
        json_array_foreach(calls, k, tc) {
            json_t *fn = json_is_object(tc) ? json_object_get(tc, "function") : NULL;
            json_t *args = json_is_object(fn) ? json_object_get(fn, "arguments") : NULL;
            if (!json_is_string(args))
                continue;
            json_error_t je;
            json_t *obj = json_loadb(json_string_value(args), json_string_length(args), JSON_DECODE_ANY, &je);
            if (!obj) {
                json_decref(out);
                glm_err(err, errlen, "messages[%zu].tool_calls[%zu].function.arguments is not valid JSON: %s", i,
                        k, je.text);
                return NULL;
            }
            if (json_is_object(obj))
                json_object_set_new(fn, "arguments", obj);
            else
                json_decref(obj);
        }
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

static int check_tools(glm_chat_prompt *p, const json_t *tools, char *err, size_t errlen)
{
    if (!json_is_array(tools))
        return BAD("tools", "'tools' must be an array");
    if (json_array_size(tools) == 0)
        return BAD("tools", "'tools' must not be empty: leave it out to offer no tools");
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

static int has_tool(const json_t *tools, const char *name)
{
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        const json_t *n = json_object_get(json_object_get(t, "function"), "name");
        if (json_is_string(n) && strcmp(json_string_value(n), name) == 0)
            return 1;
    }
    return 0;
}

/* tools, tool_choice and parallel_tool_calls into p. */
static int read_tools(glm_chat_prompt *p, const json_t *root, char *err, size_t errlen)
{
    const json_t *tools = glm_json_field(root, "tools");
    if (tools && check_tools(p, tools, err, errlen) != GLM_OK)
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
            if (!has_tool(tools, json_string_value(name)))
                return BAD("tool_choice", "'tool_choice' names the function '%s', which is not in 'tools'",
                           json_string_value(name));
            p->tool_choice = GLM_TOOL_CHOICE_NAMED;
            p->tool_name = json_string_value(name);
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

int glm_chat_prompt_build(const glm_chat_ctx *c, const json_t *request, glm_chat_prompt *p, char *err,
                          size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->budget = -1;
    p->parallel_tool_calls = 1;
    p->think = GLM_OUT_THINK_OFF;
    const json_t *messages = glm_json_field(request, "messages");
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return BAD("messages", "'messages' must be a non-empty array");
    size_t i;
    const json_t *m;
    json_array_foreach(messages, i, m) {
        if (check_message(p, m, i, err, errlen))
            return GLM_ERR;
    }
    if (read_tools(p, request, err, errlen) != GLM_OK)
        return GLM_ERR;
    const json_t *agp = glm_json_field(request, "add_generation_prompt");
    if (agp && !json_is_boolean(agp))
        return BAD("add_generation_prompt", "'add_generation_prompt' must be a boolean");

    char cerr[GLM_ERRLEN];
    glm_reasoning rs;
    if (glm_reasoning_parse(request, c->default_kwargs, &rs, cerr, sizeof cerr) != GLM_OK)
        return BAD(rs.param[0] ? rs.param : NULL, "%s", cerr);
    p->exclude_reasoning = rs.exclude;
    p->budget = rs.budget;
    json_t *msgs = messages_for_template(messages, cerr, sizeof cerr);
    if (!msgs) {
        json_decref(rs.kwargs);
        return BAD("messages", "%s", cerr);
    }
    char *text = NULL;
    size_t len = 0;
    int rc = glm_chat_render(c->tmpl, msgs, p->tools, !agp || json_is_true(agp), rs.kwargs, &text, &len, cerr,
                             sizeof cerr);
    json_decref(rs.kwargs);
    json_decref(msgs);
    if (rc != GLM_OK)
        return BAD("messages", "%s", cerr);
    int32_t *ids = NULL;
    size_t n = 0;
    if (glm_tok_encode(c->tok, text, len, 1, &ids, &n, cerr, sizeof cerr) != GLM_OK) {
        free(text);
        return BAD("messages", "%s", cerr);
    }
    if (n > INT32_MAX / 2) {
        free(text);
        free(ids);
        return BAD("messages", "the prompt is too long");
    }
    p->think = glm_out_think_mode_for_prompt(text, len, c->tags);
    p->text = text;
    p->len = len;
    p->ids = ids;
    p->n_ids = n;
    return GLM_OK;
}

void glm_chat_prompt_free(glm_chat_prompt *p)
{
    free(p->text);
    free(p->ids);
    p->text = NULL;
    p->ids = NULL;
    p->len = p->n_ids = 0;
}
