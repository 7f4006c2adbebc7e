/*
 * structured.c - the parts of a request that constrain the answer's shape:
 * `tools`, `tool_choice`, `parallel_tool_calls` and `response_format` (also
 * vLLM's `structured_outputs` and llama.cpp's `json_schema` / `grammar`),
 * checked and turned into the grammar the logits processor enforces
 * (engine/constrain/constraint.h, engine/constrain/schema_grammar.h).
 *
 * Checks follow OpenAI and vLLM: `tools` must be a non-empty array of
 * {"type": "function", "function": {"name", "description", "parameters"}}
 * with unique names of 1-64 letters, digits, '_', '-' or '.', and parameters a
 * JSON Schema for an object; `tool_choice` needs tools, and a named choice
 * must name one of them.
 */
#include "structured.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/constraint.h"
#include "constrain/schema_grammar.h"
#include "glm/tool_grammar.h"
#include "core/util.h"
#include "json_field.h"

#define BAD(p, ...) (*param = (p), glm_err(err, errlen, __VA_ARGS__))

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

static int check_tools(const json_t *tools, const char **param, char *err, size_t errlen)
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

int glm_oai_tools_parse(glm_oai_request *r, const json_t *root, const char **param, char *err, size_t errlen)
{
    const json_t *tools = glm_json_field(root, "tools");
    if (tools && check_tools(tools, param, err, errlen) != GLM_OK)
        return GLM_ERR;
    r->tools = tools;
    const json_t *tc = glm_json_field(root, "tool_choice");
    r->tool_choice = tools ? GLM_TOOL_CHOICE_AUTO : GLM_TOOL_CHOICE_NONE;
    if (tc) {
        if (!tools)
            return BAD("tool_choice", "'tool_choice' needs 'tools'");
        if (json_is_string(tc)) {
            const char *s = json_string_value(tc);
            if (strcmp(s, "auto") == 0)
                r->tool_choice = GLM_TOOL_CHOICE_AUTO;
            else if (strcmp(s, "none") == 0)
                r->tool_choice = GLM_TOOL_CHOICE_NONE;
            else if (strcmp(s, "required") == 0)
                r->tool_choice = GLM_TOOL_CHOICE_REQUIRED;
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
            r->tool_choice = GLM_TOOL_CHOICE_NAMED;
            r->tool_name = json_string_value(name);
        } else {
            return BAD("tool_choice", "'tool_choice' must be a string or an object");
        }
    }
    const json_t *ptc = glm_json_field(root, "parallel_tool_calls");
    if (ptc && !json_is_boolean(ptc))
        return BAD("parallel_tool_calls", "'parallel_tool_calls' must be a boolean");
    r->parallel_tool_calls = ptc ? json_is_true(ptc) : 1;
    r->parse_tools = tools && r->tool_choice != GLM_TOOL_CHOICE_NONE;
    return GLM_OK;
}

/* The GBNF for the request's output format, or NULL with *none set when it
 * asks for none. */
static char *format_gbnf(const json_t *root, int *none, const char **param, char *err, size_t errlen)
{
    char serr[GLM_ERRLEN];
    const char *which = NULL;
    const json_t *spec = NULL;
    int kind = 0; /* 1 json object, 2 schema, 3 grammar text */
    const json_t *rf = glm_json_field(root, "response_format");
    *none = 0;
    if (rf) {
        /* {"type": "text"} asks for nothing: it combines with everything */
        const json_t *ty = json_is_object(rf) ? glm_json_field(rf, "type") : NULL;
        if (!(json_is_string(ty) && strcmp(json_string_value(ty), "text") == 0))
            which = "response_format";
        const json_t *type = json_is_object(rf) ? glm_json_field(rf, "type") : NULL;
        const char *t = json_is_string(type) ? json_string_value(type) : "";
        if (strcmp(t, "text") == 0) {
            kind = 0;
        } else if (strcmp(t, "json_object") == 0) {
            kind = 1;
        } else if (strcmp(t, "json_schema") == 0) {
            const json_t *js = glm_json_field(rf, "json_schema");
            spec = json_is_object(js) ? glm_json_field(js, "schema") : NULL;
            if (!json_is_object(js) || !spec || !(json_is_object(spec) || json_is_boolean(spec))) {
                *param = "response_format";
                glm_err(err, errlen, "'response_format.json_schema.schema' must be a JSON Schema object");
                return NULL;
            }
            const json_t *strict = glm_json_field(js, "strict");
            if (strict && !json_is_boolean(strict)) {
                *param = "response_format";
                glm_err(err, errlen, "'response_format.json_schema.strict' must be a boolean");
                return NULL;
            }
            kind = 2;
        } else {
            *param = "response_format";
            glm_err(err, errlen, "'response_format.type' must be \"text\", \"json_object\" or \"json_schema\"");
            return NULL;
        }
    }
    /* vLLM's structured_outputs {"json": schema | "json_object": true | "grammar": gbnf} */
    const json_t *so = glm_json_field(root, "structured_outputs");
    if (so) {
        if (which) {
            *param = "structured_outputs";
            glm_err(err, errlen, "'structured_outputs' and '%s' cannot be combined", which);
            return NULL;
        }
        which = "structured_outputs";
        if (!json_is_object(so)) {
            *param = which;
            glm_err(err, errlen, "'structured_outputs' must be an object");
            return NULL;
        }
        const json_t *j = glm_json_field(so, "json"), *g = glm_json_field(so, "grammar"), *jo = glm_json_field(so, "json_object");
        if (!!j + !!g + !!(jo && json_is_true(jo)) > 1) {
            *param = which;
            glm_err(err, errlen, "'structured_outputs' takes one of 'json', 'json_object' and 'grammar'");
            return NULL;
        }
        if (j) {
            kind = 2;
            spec = j;
        } else if (g) {
            kind = 3;
            spec = g;
        } else if (jo && json_is_true(jo)) {
            kind = 1;
        } else {
            *param = which;
            glm_err(err, errlen, "'structured_outputs' supports 'json', 'json_object' and 'grammar'");
            return NULL;
        }
    }
    /* llama.cpp's json_schema and grammar */
    static const char *const llama[] = {"json_schema", "grammar"};
    for (int i = 0; i < 2; i++) {
        const json_t *v = glm_json_field(root, llama[i]);
        if (!v)
            continue;
        if (which) {
            *param = llama[i];
            glm_err(err, errlen, "'%s' and '%s' cannot be combined", llama[i], which);
            return NULL;
        }
        which = llama[i];
        kind = i == 0 ? 2 : 3;
        spec = v;
    }
    if (kind == 0) {
        *none = 1;
        return NULL;
    }
    *param = which;
    if (kind == 1)
        return glm_json_object_gbnf();
    if (kind == 3) {
        if (!json_is_string(spec)) {
            glm_err(err, errlen, "'%s' grammar must be a string in GBNF", which);
            return NULL;
        }
        return glm_strdup(json_string_value(spec));
    }
    json_t *parsed = NULL;
    if (json_is_string(spec)) { /* vLLM also takes the schema as JSON text */
        json_error_t je;
        parsed = json_loadb(json_string_value(spec), json_string_length(spec), JSON_DECODE_ANY, &je);
        if (!parsed) {
            glm_err(err, errlen, "'%s': the schema is not valid JSON: %s", which, je.text);
            return NULL;
        }
        spec = parsed;
    }
    if (!json_is_object(spec) && !json_is_boolean(spec)) {
        json_decref(parsed);
        glm_err(err, errlen, "'%s' must hold a JSON Schema object", which);
        return NULL;
    }
    char *g = NULL;
    if (glm_schema_wellformed(spec, serr, sizeof serr) != GLM_OK)
        glm_err(err, errlen, "%s: invalid JSON Schema: %s", which, serr);
    else if (!(g = glm_schema_gbnf(spec, serr, sizeof serr)))
        glm_err(err, errlen, "%s: %s", which, serr);
    json_decref(parsed);
    return g;
}

int glm_oai_grammar_build(glm_oai_request *r, const json_t *root, const glm_server *srv, const char **param,
                          char *err, size_t errlen)
{
    int none = 1;
    char *fmt = format_gbnf(root, &none, param, err, errlen);
    if (!fmt && !none)
        return GLM_ERR;
    char *gbnf = fmt;
    const char *what = *param;
    if (r->tool_choice == GLM_TOOL_CHOICE_REQUIRED || r->tool_choice == GLM_TOOL_CHOICE_NAMED) {
        if (fmt) {
            free(fmt);
            return BAD("response_format", "an output format cannot be combined with tool_choice \"%s\"",
                       r->tool_choice == GLM_TOOL_CHOICE_REQUIRED ? "required" : "naming a function");
        }
        char serr[GLM_ERRLEN];
        gbnf = glm_tool_calls_gbnf(r->tools, r->tool_choice == GLM_TOOL_CHOICE_NAMED ? r->tool_name : NULL,
                                   r->tool_choice == GLM_TOOL_CHOICE_REQUIRED && r->parallel_tool_calls, &srv->tags,
                                   serr, sizeof serr);
        if (!gbnf)
            return BAD("tools", "%s", serr);
        what = "tools";
    } else if (fmt && r->parse_tools) {
        /* tools under "auto" and an output format: a tool call or the formatted answer */
        char serr[GLM_ERRLEN];
        gbnf = glm_tool_calls_or_content_gbnf(r->tools, r->parallel_tool_calls, &srv->tags, fmt, serr, sizeof serr);
        free(fmt);
        if (!gbnf)
            return BAD(what, "%s", serr);
    } else if (fmt) {
        /* the answer is the formatted text as generated: no tag is parsed in it (with
         * tools in play the branch above took it, so parse_tools is already off) */
        r->content_plain = 1;
    }
    if (!gbnf)
        return GLM_OK;
    char gerr[GLM_ERRLEN];
    r->grammar = glm_grammar_parse(gbnf, strlen(gbnf), "root", gerr, sizeof gerr);
    free(gbnf);
    if (!r->grammar)
        return BAD(what, "%s: %s", what, gerr);
    return GLM_OK;
}

void glm_oai_vocab_setup(glm_server *srv)
{
    const char *tags[GLM_OUT_TAG_COUNT];
    glm_out_tag_list(&srv->tags, tags);
    for (int k = 0; k < GLM_OUT_TAG_COUNT; k++)
        srv->tag_ids[k] = glm_tok_token_to_id(srv->tok, tags[k], strlen(tags[k]));
    srv->trie_text = glm_constraint_vocab(srv->tok, srv->vocab, NULL, 0);
    srv->trie_tools = glm_constraint_vocab(srv->tok, srv->vocab, tags + GLM_OUT_TAG_TOOL_CALL_START, 6);
}

void glm_oai_vocab_free(glm_server *srv)
{
    glm_token_trie_free(srv->trie_text);
    glm_token_trie_free(srv->trie_tools);
    srv->trie_text = srv->trie_tools = NULL;
}

int glm_oai_processor(glm_oai_request *r, const glm_server *srv, glm_logits_processor *proc)
{
    int think_open = r->chat && r->think == GLM_OUT_THINK_OPEN;
    int budget = think_open ? r->budget : -1;
    int forbid = r->chat && r->tools && r->tool_choice == GLM_TOOL_CHOICE_NONE ? srv->tag_ids[GLM_OUT_TAG_TOOL_CALL_START] : -1;
    const char *end_after =
        r->parse_tools && r->tool_choice == GLM_TOOL_CHOICE_AUTO && !r->parallel_tool_calls ? srv->tags.tool_call_end
                                                                                             : NULL;
    if (budget < 0 && !r->grammar && forbid < 0 && !end_after)
        return 0;
    int tool_grammar = r->parse_tools && r->grammar; /* a grammar that spells tool calls */
    glm_constraint_params cp = {
        .tok = srv->tok,
        .think_open = think_open,
        .think_end = srv->tags.think_end,
        .think_end_id = srv->tag_ids[GLM_OUT_TAG_THINK_END],
        .budget = budget,
        .grammar = r->grammar,
        .trie = tool_grammar ? srv->trie_tools : srv->trie_text,
        .eos_ids = srv->eos_ids,
        .n_eos = srv->n_eos,
        .forbid = forbid,
        .end_after = end_after,
        /* the output parser ends the reasoning at <tool_call> too: so must a constraint on calls */
        .think_end_alt = tool_grammar || end_after ? srv->tags.tool_call_start : NULL,
    };
    glm_constraint_processor(&cp, proc);
    r->grammar = NULL; /* the processor owns it now */
    return 1;
}
