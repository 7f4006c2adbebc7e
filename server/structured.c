/*
 * structured.c - the parts of a request that constrain the answer's shape:
 * `tools`, `tool_choice`, `parallel_tool_calls` (checked with the prompt,
 * engine/glm/chat_prompt.h) and `response_format` (also vLLM's
 * `structured_outputs` and llama.cpp's `json_schema` / `grammar`), turned into
 * the grammar the logits processor enforces (engine/constrain/constraint.h,
 * engine/constrain/schema_grammar.h, engine/glm/tool_grammar.h).
 */
#include "structured.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/constraint.h"
#include "constrain/schema_grammar.h"
#include "glm/tool_grammar.h"
#include "core/json_field.h"
#include "core/json_limits.h"
#include "core/util.h"

#define BAD(p, ...) (*param = (p), glm_err(err, errlen, __VA_ARGS__))

/* The GBNF for the request's output format, or NULL with *none set when it
 * asks for none. */
static char *format_gbnf(const json_t *root, const glm_json_limits *lim, int *none, const char **param, char *err,
                         size_t errlen)
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
    if (json_is_string(spec)) { /* vLLM also takes the schema as JSON text (its shape checked first) */
        json_error_t je;
        glm_json_shape sh;
        char what[64];
        snprintf(what, sizeof what, "'%s'", which);
        if (glm_json_scan(json_string_value(spec), json_string_length(spec), lim, &sh) != GLM_OK) {
            sh.field[0] = 0;
            glm_json_shape_error(&sh, lim, what, err, errlen);
            return NULL;
        }
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

int glm_oai_grammar_build(glm_oai_request *r, const json_t *root, const glm_output_ctx *out,
                          const glm_json_limits *lim, const char **param, char *err, size_t errlen)
{
    int none = 1;
    char *fmt = format_gbnf(root, lim, &none, param, err, errlen);
    if (!fmt && !none)
        return GLM_ERR;
    char *gbnf = fmt;
    const char *what = *param;
    if (r->prompt_info.tool_choice == GLM_TOOL_CHOICE_REQUIRED || r->prompt_info.tool_choice == GLM_TOOL_CHOICE_NAMED) {
        if (fmt) {
            free(fmt);
            return BAD("response_format", "an output format cannot be combined with tool_choice \"%s\"",
                       r->prompt_info.tool_choice == GLM_TOOL_CHOICE_REQUIRED ? "required" : "naming a function");
        }
        char serr[GLM_ERRLEN];
        gbnf = glm_tool_calls_gbnf(r->prompt_info.tools, r->prompt_info.tool_choice == GLM_TOOL_CHOICE_NAMED ? r->prompt_info.tool_name : NULL,
                                   r->prompt_info.tool_choice == GLM_TOOL_CHOICE_REQUIRED && r->prompt_info.parallel_tool_calls, &out->tags,
                                   serr, sizeof serr);
        if (!gbnf)
            return BAD("tools", "%s", serr);
        what = "tools";
    } else if (fmt && r->prompt_info.parse_tools) {
        /* tools under "auto" and an output format: a tool call or the formatted answer */
        char serr[GLM_ERRLEN];
        gbnf = glm_tool_calls_or_content_gbnf(r->prompt_info.tools, r->prompt_info.parallel_tool_calls, &out->tags, fmt, serr, sizeof serr);
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
    glm_output_ctx *out = &srv->out;
    const char *tags[GLM_OUT_TAG_COUNT];
    glm_out_tag_list(&srv->tags, tags);
    for (int k = 0; k < GLM_OUT_TAG_COUNT; k++)
        out->tag_ids[k] = glm_tok_token_to_id(srv->tok, tags[k], strlen(tags[k]));
    out->trie_text = glm_constraint_vocab(srv->tok, srv->vocab, NULL, 0);
    out->trie_tools = glm_constraint_vocab(srv->tok, srv->vocab, tags + GLM_OUT_TAG_TOOL_CALL_START, 6);
}

void glm_oai_vocab_free(glm_server *srv)
{
    glm_token_trie_free(srv->out.trie_text);
    glm_token_trie_free(srv->out.trie_tools);
    srv->out.trie_text = srv->out.trie_tools = NULL;
}

int glm_oai_processor(glm_oai_request *r, const glm_output_ctx *out, glm_logits_processor *proc)
{
    int think_open = r->chat && r->prompt_info.think == GLM_OUT_THINK_OPEN;
    int budget = think_open ? r->prompt_info.budget : -1;
    int forbid = r->chat && r->prompt_info.tools && r->prompt_info.tool_choice == GLM_TOOL_CHOICE_NONE ? out->tag_ids[GLM_OUT_TAG_TOOL_CALL_START] : -1;
    const char *end_after =
        r->prompt_info.parse_tools && r->prompt_info.tool_choice == GLM_TOOL_CHOICE_AUTO && !r->prompt_info.parallel_tool_calls ? out->tags.tool_call_end
                                                                                             : NULL;
    if (budget < 0 && !r->grammar && forbid < 0 && !end_after)
        return 0;
    int tool_grammar = r->prompt_info.parse_tools && r->grammar; /* a grammar that spells tool calls */
    glm_constraint_params cp = {
        .tok = out->tok,
        .think_open = think_open,
        .think_end = out->tags.think_end,
        .think_end_id = out->tag_ids[GLM_OUT_TAG_THINK_END],
        .budget = budget,
        .grammar = r->grammar,
        .trie = tool_grammar ? out->trie_tools : out->trie_text,
        .eos_ids = out->eos_ids,
        .n_eos = out->n_eos,
        .forbid = forbid,
        .end_after = end_after,
        /* the output parser ends the reasoning at <tool_call> too: so must a constraint on calls */
        .think_end_alt = tool_grammar || end_after ? out->tags.tool_call_start : NULL,
    };
    glm_constraint_processor(&cp, proc);
    r->grammar = NULL; /* the processor owns it now */
    return 1;
}
