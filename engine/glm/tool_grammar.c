/*
 * tool_grammar.c - GBNF grammars for GLM-5 tool calls (tool_grammar.h), built
 * on the JSON Schema compiler's generator (constrain/schema_internal.h): each
 * function's parameters are compiled like any schema; the generator's mode
 * G_ARGS hands an object to gen_args here, which writes it as GLM's
 * <arg_key>/<arg_value> pairs instead of JSON, choosing for each value what
 * the output parser (output_parser.h) will read back: raw text for a string,
 * anything for a schema that accepts every parse, else JSON that never holds
 * "</" (mode G_TJSON). The calls are then alternatives of the start rule.
 *
 * glm_tool_calls_or_content_gbnf joins a tool-call grammar with a content
 * grammar whose rule names it prefixes, reading the GBNF text token by token.
 */
#include "glm/tool_grammar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/grammar.h"
#include "constrain/schema_internal.h"
#include "core/buf.h"
#include "core/util.h"

#define KEY_MAX 512          /* output parser: raw bytes of an argument key */
#define NAME_MAX_BYTES 256   /* output parser: raw bytes of a tool name */

/* The output parser's type bits (glm_out_schema_types). */
enum { PM_STR = GLM_OUT_T_STR, PM_NUM = GLM_OUT_T_NUM, PM_BOOL = GLM_OUT_T_BOOL, PM_NULL = GLM_OUT_T_NULL,
       PM_OBJ = GLM_OUT_T_OBJ, PM_ARR = GLM_OUT_T_ARR };

/* What gen_args needs besides the generator: the tags, and the current tool's
 * "parameters" (the parser derives each value's type mask from them). */
typedef struct {
    const glm_out_tags *tags;
    const json_t *params;
} tool_ctx;

static tool_ctx *tc(gctx *g)
{
    return g->args_ctx;
}

/* ---- argument lists ------------------------------------------------------------------- */

/* 1 when any raw text yields a valid value: every value of every type the
 * parser may produce for `mask` (a raw string included) satisfies `set`. */
static int accepts_mask(gctx *g, const conj *set, unsigned mask)
{
    g->full_steps = 0;
    unsigned full = sg_full_types(g, set, NULL, 0);
    if (mask == 0)
        return full == T_ALL;
    if (!(mask & PM_STR))
        return 0;
    static const struct {
        unsigned pm, t;
    } map[] = {{PM_STR, T_STR},   {PM_NUM, T_INT | T_FRAC}, {PM_BOOL, T_BOOL},
               {PM_NULL, T_NULL}, {PM_OBJ, T_OBJ},          {PM_ARR, T_ARR}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if ((mask & map[i].pm) && (full & map[i].t) != map[i].t)
            return 0;
    return 1;
}

/* The rule of an argument's value, by what the output parser will make of it. */
static const char *arg_value_rule(gctx *g, prop *pr)
{
    const json_t *props = json_object_get(tc(g)->params, "properties");
    const json_t *ps = json_is_object(props) ? json_object_get(props, pr->key) : NULL;
    unsigned mask = ps ? glm_out_schema_types(ps) : 0;
    if (mask == PM_STR)
        return sg_gen_set(g, pr->set.v, pr->set.n, G_RAW, pr->key);
    if (accepts_mask(g, &pr->set, mask))
        return sg_use(g, F_RAWA);
    return sg_gen_set(g, pr->set.v, pr->set.n, G_TJSON, pr->key);
}

/* 1 when s holds the first byte of one of the tags (the parser would stop there). */
static int has_tag_byte(const char *s, const glm_out_tags *tags)
{
    const char *tl[GLM_OUT_TAG_COUNT];
    glm_out_tag_list(tags, tl);
    for (int i = 0; i < GLM_OUT_TAG_COUNT; i++)
        if (strchr(s, tl[i][0]))
            return 1;
    return 0;
}

/* 1 when argument name k can be written in a call: the parser reads it back. */
static int key_ok(gctx *g, const char *k)
{
    size_t n = strlen(k);
    if (n > KEY_MAX)
        return 0;
    if (n && (strchr(" \t\n\r", k[0]) || strchr(" \t\n\r", k[n - 1])))
        return 0;
    return !has_tag_byte(k, tc(g)->tags);
}

/* The argument list of a tool call (mode ARGS) as one alternative. */
static int gen_args(gctx *g, const conj *c, glm_buf *alt, ivec *needs)
{
    prop *p;
    int n, closed;
    conj map;
    if (!sg_object_props(c, &p, &n, &map, &closed))
        return 0;
    sg_conj_free(&map);
    int ok = 1, items = 0;
    const char *nl = sg_use(g, F_NL);
    for (int i = 0; i < n && ok && !g->failed; i++) {
        if (!key_ok(g, p[i].key)) {
            sg_fail(g, "%s: argument name '%.64s' cannot be written in a tool call (over %d bytes, "
                    "whitespace at an end, or a tag character)",
                 c->n ? c->v[0]->path : "parameters", p[i].key, KEY_MAX);
            break;
        }
        p[i].rule = arg_value_rule(g, &p[i]);
        if (!p[i].rule && p[i].required)
            ok = 0;
    }
    if (ok && !g->failed) {
        for (int i = 0; i < n; i++) {
            if (!p[i].rule)
                continue;
            if (items++)
                glm_buf_puts(alt, " ");
            if (p[i].required)
                sg_need(g, needs, p[i].rule);
            else
                glm_buf_puts(alt, "( ");
            sg_lits(alt, tc(g)->tags->arg_key_start);
            glm_buf_puts(alt, " ");
            sg_lits(alt, p[i].key);
            glm_buf_puts(alt, " ");
            sg_lits(alt, tc(g)->tags->arg_key_end);
            glm_buf_printf(alt, " %s ", nl);
            sg_lits(alt, tc(g)->tags->arg_value_start);
            glm_buf_printf(alt, " %s ", p[i].rule);
            sg_lits(alt, tc(g)->tags->arg_value_end);
            glm_buf_printf(alt, " %s", nl);
            if (!p[i].required)
                glm_buf_puts(alt, " )?");
        }
        if (!items)
            glm_buf_puts(alt, "\"\"");
    }
    sg_props_free(p, n);
    return ok && !g->failed;
}

/* ---- tool calls ------------------------------------------------------------------------ */

static int name_ok(const char *s, const glm_out_tags *t)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_BYTES)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7F || c == '<' || c == '>')
            return 0;
    }
    return !has_tag_byte(s, t);
}

/* One function that may be called. */
typedef struct {
    int index;             /* in tools */
    const char *name;
    char path[PATH_CAP];   /* "tools[i].function" */
    const json_t *params;  /* "parameters", or NULL */
    snode *root;           /* compiled params, or NULL */
} callable;

/* Appends the rule callN (N = f->index) of one function's call to calls; NULL
 * args_rule when it takes no arguments. */
static int gen_call(gctx *g, const callable *f, glm_buf *calls, const char **args_rule)
{
    const char *args = NULL;
    if (f->root) {
        tc(g)->params = f->params;
        g->args_key = f->index;
        conj c = {0};
        args = sg_gen(g, &c, f->root, -1, G_ARGS, f->name);
        if (!args && !g->failed)
            sg_fail(g, "%s.parameters: no arguments satisfy the schema", f->path);
        if (!args)
            return GLM_ERR;
    }
    *args_rule = args;
    glm_buf_printf(calls, "call%d ::= ", f->index);
    sg_lits(calls, tc(g)->tags->tool_call_start);
    glm_buf_puts(calls, " ");
    sg_lits(calls, f->name);
    glm_buf_printf(calls, " %s ", sg_use(g, F_NL));
    if (args)
        glm_buf_printf(calls, "%s ", args);
    sg_lits(calls, tc(g)->tags->tool_call_end);
    glm_buf_puts(calls, "\n");
    return GLM_OK;
}

/* The functions of `tools` that may be called, compiled; NULL (err set) on a
 * malformed entry. */
static callable *callables(gctx *g, const json_t *tools, const char *only_name, int *n_out)
{
    const glm_out_tags *tags = tc(g)->tags;
    size_t nt = json_array_size(tools);
    callable *fs = glm_calloc(nt + 1, sizeof *fs);
    int n = 0;
    json_t *names = json_object();
    for (size_t i = 0; i < nt && !g->failed; i++) {
        const json_t *tool = json_array_get(tools, i), *fn;
        callable *f = &fs[n];
        if (!json_is_object(tool)) {
            sg_fail(g, "tools[%zu]: must be an object", i);
            break;
        }
        const json_t *type = json_object_get(tool, "type");
        if (type && !(json_is_string(type) && strcmp(json_string_value(type), "function") == 0))
            continue;
        fn = json_object_get(tool, "function");
        if (json_is_object(fn))
            snprintf(f->path, sizeof f->path, "tools[%zu].function", i);
        else {
            fn = tool; /* Responses API shape: the tool is the function */
            snprintf(f->path, sizeof f->path, "tools[%zu]", i);
        }
        const json_t *nm = json_object_get(fn, "name");
        if (!json_is_string(nm)) {
            sg_fail(g, "%s.name: missing", f->path);
            break;
        }
        f->name = json_string_value(nm);
        if (json_object_get(names, f->name))
            continue; /* the parser reads a name's first function */
        json_object_set_new(names, f->name, json_true());
        if (only_name && strcmp(only_name, f->name) != 0)
            continue;
        if (!name_ok(f->name, tags)) {
            sg_fail(g, "%s.name: '%.64s' cannot be written in a tool call", f->path, f->name);
            break;
        }
        f->index = (int)i;
        f->params = json_object_get(fn, "parameters");
        if (f->params && !json_is_null(f->params)) {
            char ppath[PATH_CAP];
            sg_sub_path(ppath, sizeof ppath, f->path, ".parameters");
            /* a function marked "strict" must get exactly its schema; others get its shape
             * and types, validation keywords the grammar cannot express left out */
            int lenient = !json_is_true(json_object_get(fn, "strict"));
            if (!(f->root = sg_compile_doc(&g->nodes, f->params, ppath, lenient, g->err, g->errlen))) {
                g->failed = 1;
                break;
            }
        }
        n++;
    }
    json_decref(names);
    if (!g->failed && n == 0) {
        if (only_name)
            sg_fail(g, "tools: no function named '%.64s'", only_name);
        else
            sg_fail(g, "tools: no function to call");
    }
    if (g->failed) {
        free(fs);
        return NULL;
    }
    *n_out = n;
    return fs;
}

/* glm_tool_calls_gbnf with the start rule named root_name. */
static char *tool_calls_text(const json_t *tools, const char *only_name, int parallel,
                             const glm_out_tags *tags, const char *root_name, char *err, size_t errlen)
{
    glm_out_tags defaults;
    if (!tags) {
        glm_out_tags_default(&defaults);
        tags = &defaults;
    }
    gctx g;
    sg_gctx_init(&g, err, errlen);
    tool_ctx t = {.tags = tags};
    g.args = gen_args;
    g.args_ctx = &t;
    g.root_name = root_name;
    char *text = NULL;
    callable *fs = NULL;
    int n = 0;
    const char *tl[GLM_OUT_TAG_COUNT];
    glm_out_tag_list(tags, tl);
    for (int i = 0; i < GLM_OUT_TAG_COUNT; i++)
        if (!tl[i] || !tl[i][0]) {
            sg_fail(&g, "tags: a tag is missing");
            goto out;
        }
    if (strncmp(tags->arg_value_end, "</", 2) != 0 || strncmp(tags->tool_call_end, "</", 2) != 0) {
        sg_fail(&g, "tags: the arg_value_end and tool_call_end tags must start with \"</\"");
        goto out;
    }
    if (!json_is_array(tools) || json_array_size(tools) == 0) {
        sg_fail(&g, "tools: must be a non-empty array");
        goto out;
    }
    if (!(fs = callables(&g, tools, only_name, &n)))
        goto out;
    for (int pass = 0; pass < 2 && !g.failed && !text; pass++) {
        glm_buf calls = TEXT, alts = TEXT, r = TEXT;
        const char **args = glm_calloc((size_t)n, sizeof *args);
        for (int i = 0; i < n && !g.failed; i++) {
            if (gen_call(&g, &fs[i], &calls, &args[i]) != GLM_OK)
                break;
            glm_buf_printf(&alts, "%scall%d", i ? " | " : "", fs[i].index);
        }
        unsigned char *prod = g.failed ? NULL : sg_productive(&g);
        for (int i = 0; i < n && !g.failed; i++)
            if (args[i] && !sg_rule_productive(&g, prod, args[i]))
                sg_fail(&g, "%s.parameters: no arguments satisfy the schema", fs[i].path);
        if (!g.failed && (pass == 1 || !sg_mark_unproductive(&g, prod))) {
            if (parallel)
                glm_buf_printf(&r, "( %s ) ( %s ( %s ) )*", glm_buf_str(&alts), sg_use(&g, F_NL), glm_buf_str(&alts));
            else
                glm_buf_puts(&r, glm_buf_str(&alts));
            glm_buf_put(&g.out, glm_buf_str(&calls), calls.len);
            if (calls.over || r.over)
                g.out.over = 1;
            text = sg_assemble(&g, glm_buf_str(&r), prod);
        }
        free(prod);
        free(args);
        glm_buf_free(&calls);
        glm_buf_free(&alts);
        glm_buf_free(&r);
        if (!text)
            sg_gctx_reset(&g);
    }
out:
    free(fs);
    sg_gctx_free(&g);
    return text;
}

char *glm_tool_calls_gbnf(const json_t *tools, const char *only_name, int parallel,
                          const glm_out_tags *tags, char *err, size_t errlen)
{
    return tool_calls_text(tools, only_name, parallel, tags, "root", err, errlen);
}

/* ---- tool calls or content ------------------------------------------------------------ */

/* The start rule of the tool calls and the prefix of every content rule name
 * in glm_tool_calls_or_content_gbnf. No rule of a tool-call grammar starts with
 * the prefix: its rules are root, callN, cN-..., qN-... and the FIXED ones. */
#define TOOLS_ROOT "tool-calls"
#define CONTENT_PREFIX "content-"

static int gbnf_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* GBNF text t[0..n) (a grammar that parses) with `prefix` put before every rule
 * name: at its definition and at each reference, not inside "literals",
 * [classes], # comments or {m,n} counts. Writes into out unless it is NULL;
 * returns the length of the result. */
static size_t prefix_rule_names(const char *t, size_t n, const char *prefix, char *out)
{
    size_t pl = strlen(prefix), o = 0, i = 0;
    while (i < n) {
        char c = t[i];
        size_t j = i + 1;
        if (c == '"' || c == '[') { /* to the closing quote or bracket; "\" escapes one */
            char close = c == '"' ? '"' : ']';
            while (j < n && t[j] != close)
                j += t[j] == '\\' && j + 1 < n ? 2 : 1;
            j += j < n;
        } else if (c == '#') {
            while (j < n && t[j] != '\n' && t[j] != '\r')
                j++;
        } else if (c == '{') { /* digits, ",", spaces, comments */
            while (j < n && t[j] != '}') {
                if (t[j] == '#')
                    while (j < n && t[j] != '\n' && t[j] != '\r')
                        j++;
                else
                    j++;
            }
            j += j < n;
        } else if (gbnf_word(c)) {
            while (j < n && gbnf_word(t[j]))
                j++;
            if (out)
                memcpy(out + o, prefix, pl);
            o += pl;
        }
        if (out)
            memcpy(out + o, t + i, j - i);
        o += j - i;
        i = j;
    }
    return o;
}

char *glm_tool_calls_or_content_gbnf(const json_t *tools, int parallel, const glm_out_tags *tags,
                                     const char *content_gbnf, char *err, size_t errlen)
{
    if (!content_gbnf) {
        glm_err(err, errlen, "content: no grammar");
        return NULL;
    }
    size_t cn = strlen(content_gbnf);
    char cerr[GLM_ERRLEN];
    glm_grammar *cg = glm_grammar_parse(content_gbnf, cn, "root", cerr, sizeof cerr);
    if (!cg) {
        glm_err(err, errlen, "content: %s", cerr);
        return NULL;
    }
    glm_grammar_free(cg);
    char *calls = tool_calls_text(tools, NULL, parallel, tags, TOOLS_ROOT, err, errlen);
    if (!calls)
        return NULL;
    static const char head[] = "root ::= " TOOLS_ROOT " | " CONTENT_PREFIX "root\n";
    size_t hn = sizeof head - 1, tn = strlen(calls);
    size_t rn = prefix_rule_names(content_gbnf, cn, CONTENT_PREFIX, NULL);
    if (hn + tn + rn > GLM_GRAMMAR_MAX_TEXT) {
        free(calls);
        glm_err(err, errlen, "content: the grammar with the tool calls would be over %zu bytes",
                (size_t)GLM_GRAMMAR_MAX_TEXT);
        return NULL;
    }
    char *text = glm_malloc(hn + tn + rn + 1);
    memcpy(text, head, hn);
    memcpy(text + hn, calls, tn); /* ends with "\n" */
    prefix_rule_names(content_gbnf, cn, CONTENT_PREFIX, text + hn + tn);
    text[hn + tn + rn] = 0;
    free(calls);
    return text;
}
