/*
 * test_jinja.c - the Jinja interpreter and the chat template against
 * transformers/jinja2 goldens (tests/golden/chat_template.json, written by
 * tests/golden/make_template_goldens.py): every prompt and every template
 * output byte for byte, every jinja2 error an error here too. Then syntax
 * errors (one line, with the line number), raise_exception, the render limits
 * (endless loops and recursion stop quickly), concurrent renders of one
 * template, the chat API's argument checks and loading rules, and a fuzz pass
 * of mutated templates and random bytes (no crash, no hang). repr() of strings
 * against Python's (tests/golden/unicode/, make_unicode_tables.py): chosen
 * values, and every code point at once.
 *
 * JINJA_FUZZ_ITERS overrides the number of fuzz mutations (default 3000).
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "text/chat_template.h"
#include "text/jinja/jinja.h"
#include "core/buf.h"
#include "core/utf8.h"
#include "core/util.h"
#include "testutil.h"
#include "unicode_golden.h"

#define GOLDEN "tests/golden/chat_template.json"
#define TINY "tests/models/tiny"

static json_t *goldens(void)
{
    json_error_t je;
    json_t *g = json_load_file(GOLDEN, 0, &je);
    ck_assert_msg(g != NULL, "%s: %s (run from the repository root)", GOLDEN, je.text);
    return g;
}

/* Compiles and renders; returns the output (caller frees) or NULL with err set. */
static char *render(const char *tmpl, const json_t *ctx, const glm_jinja_limits *lim, char *err)
{
    glm_jinja *t;
    if (glm_jinja_compile(tmpl, strlen(tmpl), "t", &t, err, GLM_ERRLEN) != GLM_OK)
        return NULL;
    char *out = NULL;
    size_t len;
    if (glm_jinja_render(t, ctx, lim, &out, &len, err, GLM_ERRLEN) == GLM_OK)
        ck_assert_uint_eq(len, strlen(out));
    glm_jinja_free(t);
    return out;
}

static char *render_str(const char *tmpl, const char *ctx_json, char *err)
{
    json_t *ctx = ctx_json ? json_loads(ctx_json, 0, NULL) : NULL;
    char *out = render(tmpl, ctx, NULL, err);
    json_decref(ctx);
    return out;
}

/* ---- goldens ------------------------------------------------------------- */

START_TEST(chat_goldens)
{
    json_t *g = goldens();
    char err[GLM_ERRLEN];
    glm_chat_template *ct;
    ck_assert_msg(glm_chat_template_load(TINY, &ct, err, sizeof err) == GLM_OK, "%s", err);
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(g, "special_tokens"), k, v)
    {
        const char *mine = glm_chat_template_special_token(ct, k);
        ck_assert_msg(mine && !strcmp(mine, json_string_value(v)), "special token %s", k);
    }
    size_t i, n = 0;
    json_t *c;
    json_array_foreach(json_object_get(g, "chat"), i, c)
    {
        const char *name = json_string_value(json_object_get(c, "name"));
        json_t *tools = json_object_get(c, "tools");
        char *prompt;
        size_t len;
        int rc = glm_chat_render(ct, json_object_get(c, "messages"), json_is_null(tools) ? NULL : tools,
                                 json_is_true(json_object_get(c, "add_generation_prompt")),
                                 json_object_get(c, "kwargs"), &prompt, &len, err, sizeof err);
        ck_assert_msg(rc == GLM_OK, "%s: %s", name, err);
        const char *want = json_string_value(json_object_get(c, "prompt"));
        ck_assert_msg(len == strlen(want) && memcmp(prompt, want, len) == 0,
                      "%s:\n got  %s\n want %s", name, prompt, want);
        free(prompt);
        n++;
    }
    ck_assert_uint_ge(n, 50);
    glm_chat_template_free(ct);
    json_decref(g);
}
END_TEST

START_TEST(template_goldens)
{
    json_t *g = goldens();
    size_t i, nout = 0, nerr = 0;
    json_t *c;
    json_array_foreach(json_object_get(g, "templates"), i, c)
    {
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *tmpl = json_string_value(json_object_get(c, "template"));
        json_t *want = json_object_get(c, "output");
        char err[GLM_ERRLEN] = "";
        char *out = render(tmpl, json_object_get(c, "context"), NULL, err);
        if (want) {
            ck_assert_msg(out != NULL, "%s: unexpected error: %s", name, err);
            ck_assert_msg(strlen(out) == json_string_length(want) && !strcmp(out, json_string_value(want)),
                          "%s:\n got  [%s]\n want [%s]", name, out, json_string_value(want));
            nout++;
        } else {
            ck_assert_msg(out == NULL, "%s: rendered [%s], jinja2 raised %s", name, out,
                          json_string_value(json_object_get(c, "error")));
            ck_assert_msg(err[0] && !strchr(err, '\n'), "%s: error message [%s]", name, err);
            nerr++;
        }
        free(out);
    }
    ck_assert_uint_ge(nout, 60);
    ck_assert_uint_ge(nerr, 10);
    json_decref(g);
}
END_TEST

/* ---- errors ------------------------------------------------------------- */

static const struct {
    const char *tmpl, *want1, *want2; /* the error must contain both */
} syntax_errors[] = {
    {"{% for x in y %}\n\nnever closed", "t:3:", "endfor"},
    {"a\n{% if x %}\n{% for y in z %}{% endif %}", "t:3:", "endif"},
    {"{{ x }}\n{{ y | nosuchfilter }}", "t:2:", "nosuchfilter"},
    {"{{ x is nosuchtest }}", "t:1:", "nosuchtest"},
    {"\n\n{{ 1 + }}", "t:3:", "end of print statement"},
    {"{{ x ", "t:1:", "end of print statement"},
    {"{% if x %}", "t:1:", "endif"},
    {"{% frobnicate %}", "t:1:", "frobnicate"},
    {"{% endif %}", "t:1:", "endif"},
    {"{# never closed", "t:1:", "comment"},
    {"{{ 'abc }}", "t:1:", "string"},
    {"{{ (1] }}", "t:1:", "]"},
    {"{{ ) }}", "t:1:", ")"},
    {"{% break %}", "t:1:", "loop"},
    {"{% macro m(a=1, b) %}{% endmacro %}", "t:1:", "default"},
    {"{% set 1 = 2 %}", "t:1:", "assign"},
    {"{% raw %}unterminated", "t:1:", "raw"},
    {"{% extends 'base' %}", "t:1:", "extends"},
    {"{% for x in y recursive %}{% endfor %}", "t:1:", "recursive"},
    {"{{ 'bad \\u12 escape' }}", "t:1:", "escape"},
    {"{{ 99999999999999999999 }}", "t:1:", "too large"},
    {"{{ a.b.c.d | f }}", "t:1:", "'f'"},
};

START_TEST(syntax_error_lines)
{
    char err[GLM_ERRLEN];
    glm_jinja *t = NULL;
    const char *s = syntax_errors[_i].tmpl;
    ck_assert_int_eq(glm_jinja_compile(s, strlen(s), "t", &t, err, sizeof err), GLM_ERR);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(err, syntax_errors[_i].want1) && strstr(err, syntax_errors[_i].want2),
                  "[%s] -> [%s]", s, err);
    ck_assert_msg(!strchr(err, '\n'), "multi-line error [%s]", err);
}
END_TEST

START_TEST(deep_nesting_is_an_error)
{
    /* nesting beyond the parser's limit fails cleanly instead of overflowing the stack */
    size_t n = 100000;
    char *s = glm_malloc(2 * n + 16), *p = s;
    p += sprintf(p, "{{ ");
    for (size_t i = 0; i < n; i++)
        *p++ = '(';
    *p++ = '1';
    for (size_t i = 0; i < n; i++)
        *p++ = ')';
    strcpy(p, " }}");
    char err[GLM_ERRLEN];
    glm_jinja *t;
    ck_assert_int_eq(glm_jinja_compile(s, strlen(s), "t", &t, err, sizeof err), GLM_ERR);
    ck_assert_msg(strstr(err, "nested"), "%s", err);
    /* long operator chains too */
    p = s + sprintf(s, "{{ 1");
    for (size_t i = 0; i < n / 4; i++)
        p += sprintf(p, "+1");
    strcpy(p, " }}");
    ck_assert_int_eq(glm_jinja_compile(s, strlen(s), "t", &t, err, sizeof err), GLM_ERR);
    p = s;
    for (size_t i = 0; i < 300; i++)
        p += sprintf(p, "{%% if 1 %%}");
    *p = 0;
    ck_assert_int_eq(glm_jinja_compile(s, strlen(s), "t", &t, err, sizeof err), GLM_ERR);
    free(s);
}
END_TEST

START_TEST(raise_exception_message)
{
    char err[GLM_ERRLEN];
    char *out = render_str("{% if messages[0].role != 'user' %}\n"
                           "{{ raise_exception('Conversation roles must alternate user/assistant') }}\n"
                           "{% endif %}",
                           "{\"messages\": [{\"role\": \"assistant\"}]}", err);
    ck_assert_ptr_null(out);
    ck_assert_msg(strstr(err, "Conversation roles must alternate user/assistant") && strstr(err, "t:2:"),
                  "%s", err);
}
END_TEST

START_TEST(runtime_errors)
{
    static const char *const cases[][2] = {
        {"{{ foo.bar }}", "'foo' is undefined"},
        {"{{ x + 1 }}", "'x' is undefined"},
        {"{{ 1 / 0 }}", "division by zero"},
        {"{{ [1].append(2) }}", "unsafe"},
        {"{{ 9223372036854775807 + 1 }}", "overflow"},
        {"{% set ns = namespace() %}{% set ns._x = 1 %}", "underscore"},
        {"{% set x = 1 %}{% set x.y = 2 %}", "namespace"},
        {"{{ 'a' | int(base=99) }}", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[GLM_ERRLEN] = "";
        char *out = render_str(cases[i][0], NULL, err);
        if (!cases[i][1]) { /* either way, no crash */
            free(out);
            continue;
        }
        ck_assert_msg(out == NULL && strstr(err, cases[i][1]), "[%s] -> [%s] [%s]", cases[i][0],
                      out ? out : "", err);
    }
}
END_TEST

/* ---- limits --------------------------------------------------------------- */

START_TEST(endless_loops_stop)
{
    static const char *const cases[][2] = {
        /* the sandbox's range limit */
        {"{% for i in range(1000000000) %}x{% endfor %}", "Range too big"},
        /* 10^10 iterations: the step budget */
        {"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "steps"},
        /* endless recursion: the call depth */
        {"{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "deeper than"},
        /* output bomb */
        {"{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}", "output"},
        /* memory bomb: a string doubling in a namespace */
        {"{% set ns = namespace(s='xy') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
         "memory"},
        /* quadratic list growth */
        {"{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
         "memory"},
    };
    /* each stops at the limit its message names (the test case's timeout is
     * the hang guard; no wall-clock bound: machines are shared) */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[GLM_ERRLEN] = "";
        char *out = render_str(cases[i][0], NULL, err);
        ck_assert_msg(out == NULL && strstr(err, cases[i][1]), "[%s] -> [%s]", cases[i][0], err);
    }
}
END_TEST

START_TEST(custom_limits)
{
    char err[GLM_ERRLEN];
    glm_jinja_limits lim = {.max_steps = 1000};
    char *out = render("{% for i in range(10000) %}{% endfor %}", NULL, &lim, err);
    ck_assert_msg(!out && strstr(err, "1000 steps"), "%s", err);
    lim = (glm_jinja_limits){.max_output = 100};
    out = render("{{ 'x' * 101 }}", NULL, &lim, err);
    ck_assert_msg(!out && strstr(err, "output"), "%s", err);
    out = render("{{ 'x' * 90 }}", NULL, &lim, err);
    ck_assert_msg(out && strlen(out) == 90, "%s", err);
    free(out);
    lim = (glm_jinja_limits){.max_depth = 5};
    out = render("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(4) }}", NULL, &lim, err);
    ck_assert_msg(out != NULL, "%s", err);
    free(out);
    out = render("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(6) }}", NULL, &lim, err);
    ck_assert_msg(!out && strstr(err, "deeper than 5"), "%s", err);
    lim = (glm_jinja_limits){.max_memory = 1 << 20};
    out = render("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                 NULL, &lim, err);
    ck_assert_msg(!out && (strstr(err, "memory") || strstr(err, "bytes")), "%s", err);
}
END_TEST

/* ---- concurrency ---------------------------------------------------------------- */

typedef struct {
    const glm_chat_template *ct;
    json_t *g;
    int failures;
} thread_arg;

static void *render_all(void *p)
{
    thread_arg *a = p;
    for (int rep = 0; rep < 3; rep++) {
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(a->g, "chat"), i, c)
        {
            json_t *tools = json_object_get(c, "tools");
            char *prompt, err[GLM_ERRLEN];
            if (glm_chat_render(a->ct, json_object_get(c, "messages"), json_is_null(tools) ? NULL : tools,
                                json_is_true(json_object_get(c, "add_generation_prompt")),
                                json_object_get(c, "kwargs"), &prompt, NULL, err, sizeof err) != GLM_OK) {
                a->failures++;
                continue;
            }
            a->failures += strcmp(prompt, json_string_value(json_object_get(c, "prompt"))) != 0;
            free(prompt);
        }
    }
    return NULL;
}

START_TEST(concurrent_renders)
{
    json_t *g = goldens();
    char err[GLM_ERRLEN];
    glm_chat_template *ct;
    ck_assert_msg(glm_chat_template_load(TINY, &ct, err, sizeof err) == GLM_OK, "%s", err);
    enum { N = 4 };
    pthread_t th[N];
    thread_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i] = (thread_arg){ct, g, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, render_all, &args[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(args[i].failures, 0);
    }
    glm_chat_template_free(ct);
    json_decref(g);
}
END_TEST

/* ---- chat API --------------------------------------------------------------------- */

START_TEST(chat_arguments)
{
    char err[GLM_ERRLEN], *p;
    glm_chat_template *ct;
    ck_assert_msg(glm_chat_template_load(TINY, &ct, err, sizeof err) == GLM_OK, "%s", err);
    json_t *msgs = json_loads("[{\"role\": \"user\", \"content\": \"hi\"}]", 0, NULL);
    json_t *empty = json_array(), *obj = json_object();
    json_t *bad_kw = json_loads("{\"messages\": []}", 0, NULL);
    json_t *bad_tools = json_loads("[1]", 0, NULL);
    json_t *not_objects = json_loads("[\"hi\"]", 0, NULL);
    ck_assert_int_eq(glm_chat_render(ct, empty, NULL, true, NULL, &p, NULL, err, sizeof err), GLM_ERR);
    ck_assert(strstr(err, "empty"));
    ck_assert_int_eq(glm_chat_render(ct, obj, NULL, true, NULL, &p, NULL, err, sizeof err), GLM_ERR);
    ck_assert_int_eq(glm_chat_render(ct, not_objects, NULL, true, NULL, &p, NULL, err, sizeof err), GLM_ERR);
    ck_assert_int_eq(glm_chat_render(ct, msgs, obj, true, NULL, &p, NULL, err, sizeof err), GLM_ERR);
    ck_assert_int_eq(glm_chat_render(ct, msgs, bad_tools, true, NULL, &p, NULL, err, sizeof err), GLM_ERR);
    ck_assert_int_eq(glm_chat_render(ct, msgs, NULL, true, bad_kw, &p, NULL, err, sizeof err), GLM_ERR);
    ck_assert(strstr(err, "messages"));
    ck_assert_int_eq(glm_chat_render(ct, msgs, NULL, true, msgs, &p, NULL, err, sizeof err), GLM_ERR);
    ck_assert_int_eq(glm_chat_render(ct, msgs, NULL, true, NULL, &p, NULL, err, sizeof err), GLM_OK);
    ck_assert_str_eq(p, "[gMASK]<sop><|user|>hi<|assistant|><think>");
    free(p);
    json_decref(msgs);
    json_decref(empty);
    json_decref(obj);
    json_decref(bad_kw);
    json_decref(bad_tools);
    json_decref(not_objects);
    glm_chat_template_free(ct);
}
END_TEST

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static char *render_dir(const char *dir, bool with_tools, char *err)
{
    glm_chat_template *ct;
    if (glm_chat_template_load(dir, &ct, err, GLM_ERRLEN) != GLM_OK)
        return NULL;
    json_t *msgs = json_loads("[{\"role\": \"user\", \"content\": \"hi\"}]", 0, NULL);
    json_t *tools = json_loads("[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]", 0, NULL);
    char *p = NULL;
    glm_chat_render(ct, msgs, with_tools ? tools : NULL, false, NULL, &p, NULL, err, GLM_ERRLEN);
    json_decref(msgs);
    json_decref(tools);
    glm_chat_template_free(ct);
    return p;
}

START_TEST(loading_rules)
{
    char dir[] = "/tmp/glm-chat-XXXXXX", err[GLM_ERRLEN], sub[64], path[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    /* no template at all */
    ck_assert_ptr_null(render_dir(dir, false, err));
    ck_assert(strstr(err, "no chat template"));
    /* tokenizer_config string template + AddedToken-style special tokens */
    write_file(dir, "tokenizer_config.json",
               "{\"chat_template\": \"{{ bos_token }}{{ eos_token }}{% for m in messages %}{{ m.content }}{% endfor %}\","
               " \"bos_token\": {\"__type\": \"AddedToken\", \"content\": \"<s>\"}, \"eos_token\": \"</s>\","
               " \"unk_token\": null}");
    char *p = render_dir(dir, false, err);
    ck_assert_msg(p && !strcmp(p, "<s></s>hi"), "%s", p ? p : err);
    free(p);
    /* named templates: tool_use is picked when tools are given */
    write_file(dir, "tokenizer_config.json",
               "{\"chat_template\": [{\"name\": \"default\", \"template\": \"D\"},"
               " {\"name\": \"tool_use\", \"template\": \"T{{ tools | length }}\"},"
               " {\"name\": \"rag\", \"template\": \"R\"}]}");
    p = render_dir(dir, false, err);
    ck_assert_msg(p && !strcmp(p, "D"), "%s", p ? p : err);
    free(p);
    p = render_dir(dir, true, err);
    ck_assert_msg(p && !strcmp(p, "T1"), "%s", p ? p : err);
    free(p);
    /* chat_template.jinja wins over the config */
    write_file(dir, "chat_template.jinja", "J{{ messages | length }}\n");
    p = render_dir(dir, true, err);
    ck_assert_msg(p && !strcmp(p, "J1"), "%s", p ? p : err);
    free(p);
    /* a syntax error names the file and line */
    write_file(dir, "chat_template.jinja", "ok\n{% if %}");
    ck_assert_ptr_null(render_dir(dir, false, err));
    ck_assert_msg(strstr(err, "chat_template.jinja:2:"), "%s", err);
    /* broken tokenizer_config.json */
    write_file(dir, "chat_template.jinja", "x");
    write_file(dir, "tokenizer_config.json", "{not json");
    ck_assert_ptr_null(render_dir(dir, false, err));
    ck_assert_msg(strstr(err, "tokenizer_config.json"), "%s", err);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    unlink(path);
    snprintf(sub, sizeof sub, "%s/additional_chat_templates", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    write_file(sub, "tool_use.jinja", "tools only");
    ck_assert_ptr_null(render_dir(dir, false, err));
    ck_assert_msg(strstr(err, "tool_use"), "%s", err);
    p = render_dir(dir, true, err);
    ck_assert_msg(p && !strcmp(p, "tools only"), "%s", p ? p : err);
    free(p);
    snprintf(path, sizeof path, "%s/tool_use.jinja", sub);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
}
END_TEST

START_TEST(from_string_and_message_normalization)
{
    char err[GLM_ERRLEN], *p;
    glm_chat_template *ct;
    const char *t = "{% for m in messages %}{{ m | tojson }}{% endfor %}|{{ tools }}|{{ documents }}|{{ eos_token }}";
    json_t *cfg = json_loads("{\"eos_token\": \"<e>\"}", 0, NULL);
    ck_assert(glm_chat_template_from_string(t, strlen(t), cfg, &ct, err, sizeof err) == GLM_OK);
    json_t *msgs = json_loads("[{\"role\": \"assistant\", \"content\": null, \"reasoning\": \"r\", \"x\": 1}]", 0, NULL);
    ck_assert(glm_chat_render(ct, msgs, NULL, false, NULL, &p, NULL, err, sizeof err) == GLM_OK);
    ck_assert_str_eq(p, "{\"thinking\": \"r\", \"role\": \"assistant\", \"reasoning\": \"r\", \"x\": 1, "
                        "\"reasoning_content\": \"r\"}|None|None|<e>");
    free(p);
    json_decref(msgs);
    json_decref(cfg);
    glm_chat_template_free(ct);
}
END_TEST

/* ---- fuzz ----------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

START_TEST(fuzz_mutations)
{
    static const char *const snippets[] = {"{%", "%}", "{{", "}}", "{#", "#}", "-", "(", ")", "[", "]",
                                           "{", "}", "'", "\"", "|", "for ", "if ", "endfor", "endif",
                                           " in ", "loop.", "\n", "\\", "é", "\xff", "\x80", "~", "**",
                                           " is ", "not ", ".", ",", "raw", "macro ", "set ", "=", "0"};
    json_t *g = goldens();
    const char *env = getenv("JINJA_FUZZ_ITERS");
    long iters = env ? atol(env) : 3000;
    json_t *seeds = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(g, "templates"), i, c)
        json_array_append(seeds, json_object_get(c, "template"));
    {
        char *text;
        FILE *f = fopen(TINY "/chat_template.jinja", "rb");
        ck_assert_ptr_nonnull(f);
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        text = glm_malloc((size_t)n + 1);
        ck_assert_int_eq(fread(text, 1, (size_t)n, f), n);
        text[n] = 0;
        fclose(f);
        json_array_append_new(seeds, json_string(text));
        free(text);
    }
    json_t *ctx = json_loads("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"},"
                             " {\"role\": \"assistant\", \"content\": \"a\", \"reasoning_content\": \"r\","
                             "  \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": {\"k\": 1}}}]},"
                             " {\"role\": \"tool\", \"content\": \"x\"}],"
                             " \"tools\": [{\"name\": \"f\"}], \"add_generation_prompt\": true,"
                             " \"x\": [1, 2, 3], \"s\": \"str\", \"d\": {\"a\": 1}}",
                             0, NULL);
    glm_jinja_limits lim = {.max_steps = 200000, .max_output = 1 << 20, .max_memory = 16 << 20, .max_depth = 50};
    size_t nseeds = json_array_size(seeds);
    size_t cap = 1 << 16;
    char *buf = glm_malloc(cap + 64);
    double t0 = glm_now();
    long compiled = 0;
    for (long it = 0; it < iters; it++) {
        const char *seed = json_string_value(json_array_get(seeds, rnd() % nseeds));
        size_t n = strlen(seed);
        if (n > cap / 2)
            n = cap / 2;
        memcpy(buf, seed, n);
        int edits = 1 + (int)(rnd() % 4);
        for (int e = 0; e < edits; e++) {
            size_t pos = n ? rnd() % (n + 1) : 0;
            switch (rnd() % 4) {
            case 0: /* insert a snippet */ {
                const char *s = snippets[rnd() % (sizeof snippets / sizeof snippets[0])];
                size_t l = strlen(s);
                if (n + l < cap) {
                    memmove(buf + pos + l, buf + pos, n - pos);
                    memcpy(buf + pos, s, l);
                    n += l;
                }
                break;
            }
            case 1: /* delete a span */ {
                size_t l = rnd() % 8;
                if (pos + l > n)
                    l = n - pos;
                memmove(buf + pos, buf + pos + l, n - pos - l);
                n -= l;
                break;
            }
            case 2: /* flip a byte */
                if (pos < n)
                    buf[pos] = (char)rnd();
                break;
            default: /* duplicate a span */ {
                size_t l = rnd() % 32;
                if (pos + l > n)
                    l = n - pos;
                if (n + l < cap) {
                    memmove(buf + pos + l, buf + pos, n - pos);
                    n += l;
                }
                break;
            }
            }
        }
        char err[GLM_ERRLEN];
        glm_jinja *t;
        if (glm_jinja_compile(buf, n, "fuzz", &t, err, sizeof err) != GLM_OK) {
            ck_assert_msg(err[0] != 0, "empty compile error");
            continue;
        }
        compiled++;
        char *out;
        size_t len;
        if (glm_jinja_render(t, ctx, &lim, &out, &len, err, sizeof err) == GLM_OK)
            free(out);
        else
            ck_assert_msg(err[0] != 0, "empty render error");
        glm_jinja_free(t);
    }
    /* random bytes */
    for (int it = 0; it < 200; it++) {
        size_t n = rnd() % 256;
        for (size_t k = 0; k < n; k++)
            buf[k] = (char)rnd();
        char err[GLM_ERRLEN];
        glm_jinja *t;
        if (glm_jinja_compile(buf, n, "rnd", &t, err, sizeof err) == GLM_OK) {
            char *out;
            if (glm_jinja_render(t, ctx, &lim, &out, NULL, err, sizeof err) == GLM_OK)
                free(out);
            glm_jinja_free(t);
        }
    }
    fprintf(stderr, "fuzz: %ld mutations (%ld compiled) in %.2f s\n", iters, compiled, glm_now() - t0);
    free(buf);
    json_decref(ctx);
    json_decref(seeds);
    json_decref(g);
}
END_TEST


/* ---- repr() against Python's ---------------------------------------------- */

/* Printing a value shows its strings as Python's repr() does: the goldens'
 * values (unassigned code points, format and tag characters, letters of
 * Unicode 15 and 16, which Python 3.11 does not know, quotes) print as
 * Python printed them. */
START_TEST(repr_goldens)
{
    char **lines = ug_read_lines(UNICODE_GOLDEN "/repr.tsv");
    int n = 0;
    for (char **l = lines; *l; l++, n++) {
        char *tab = strchr(*l, '\t');
        ck_assert_msg(tab != NULL, "repr.tsv: no tab in \"%s\"", *l);
        *tab = 0;
        json_error_t je;
        json_t *v = json_loads(*l, JSON_ALLOW_NUL, &je);
        ck_assert_msg(v != NULL, "repr.tsv: %s", je.text);
        json_t *ctx = json_pack("{s:o}", "x", v);
        char err[GLM_ERRLEN];
        char *out = render("{{ x }}", ctx, NULL, err);
        ck_assert_msg(out != NULL, "%s", err);
        ck_assert_msg(strcmp(out, tab + 1) == 0, "repr of %s: want %s, got %s", *l, tab + 1, out);
        free(out);
        json_decref(ctx);
    }
    ck_assert_int_ge(n, 10);
    ug_free_lines(lines);
}
END_TEST

/* One string of every code point (but surrogates, quotes, backslash, \t \n
 * \r, which repr() writes in their own way) printed in a list: each code
 * point Python's repr() escapes (tests/golden/unicode/repr_escaped.txt) comes
 * out as \xHH, \uHHHH or \UHHHHHHHH, every other as it is. */
START_TEST(repr_every_code_point)
{
    char **lines = ug_read_lines(UNICODE_GOLDEN "/repr_escaped.txt");
    glm_buf all = {0};
    for (char **l = lines; *l; l++) {
        glm_buf_puts(&all, *l);
        glm_buf_putc(&all, ' ');
    }
    glm_cp_range *esc;
    size_t n_esc = ug_parse_ranges(all.p, all.len, &esc);
    ck_assert_uint_gt(n_esc, 100);
    glm_buf text = {0}, want = {0};
    glm_buf_puts(&want, "['");
    for (uint32_t c = 0; c <= 0x10FFFF; c++) {
        if ((c >= 0xD800 && c <= 0xDFFF) || c == '\'' || c == '"' || c == '\\' || c == '\t' || c == '\n' ||
            c == '\r')
            continue;
        char u[4];
        size_t k = glm_utf8_encode(c, u);
        glm_buf_put(&text, u, k);
        if (!glm_cp_in_ranges(c, esc, n_esc))
            glm_buf_put(&want, u, k);
        else if (c < 0x100)
            glm_buf_printf(&want, "\\x%02x", c);
        else if (c < 0x10000)
            glm_buf_printf(&want, "\\u%04x", c);
        else
            glm_buf_printf(&want, "\\U%08x", c);
    }
    glm_buf_puts(&want, "']");
    json_t *ctx = json_pack("{s:s%}", "x", text.p, text.len);
    ck_assert_ptr_nonnull(ctx);
    glm_jinja_limits lim = {.max_steps = 1ull << 32, .max_output = 256 << 20, .max_memory = 1024 << 20};
    char err[GLM_ERRLEN];
    char *out = render("{{ [x] }}", ctx, &lim, err);
    ck_assert_msg(out != NULL, "%s", err);
    size_t i = 0;
    while (out[i] && out[i] == want.p[i])
        i++;
    ck_assert_msg(strlen(out) == want.len && i == want.len, "repr differs from Python's at byte %zu: \"%.40s\", want \"%.40s\"",
                  i, out + (i > 8 ? i - 8 : 0), want.p + (i > 8 ? i - 8 : 0));
    free(out);
    json_decref(ctx);
    glm_buf_free(&text);
    glm_buf_free(&want);
    glm_buf_free(&all);
    free(esc);
    ug_free_lines(lines);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("jinja");
    TCase *tc = tcase_create("jinja");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, chat_goldens);
    tcase_add_test(tc, template_goldens);
    tcase_add_loop_test(tc, syntax_error_lines, 0, (int)(sizeof syntax_errors / sizeof syntax_errors[0]));
    tcase_add_test(tc, deep_nesting_is_an_error);
    tcase_add_test(tc, raise_exception_message);
    tcase_add_test(tc, runtime_errors);
    tcase_add_test(tc, endless_loops_stop);
    tcase_add_test(tc, custom_limits);
    tcase_add_test(tc, concurrent_renders);
    tcase_add_test(tc, chat_arguments);
    tcase_add_test(tc, loading_rules);
    tcase_add_test(tc, from_string_and_message_normalization);
    tcase_add_test(tc, fuzz_mutations);
    tcase_add_test(tc, repr_goldens);
    tcase_add_test(tc, repr_every_code_point);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
