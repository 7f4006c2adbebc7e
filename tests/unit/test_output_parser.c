/*
 * test_output_parser.c - engine/glm/output_parser.c: GLM-5 output text into
 * reasoning_content / content / tool_calls.
 *
 * A table of cases gives the expected message for a whole text; every case is
 * also streamed cut in two at every byte, one byte at a time and in random
 * chunks, and the concatenated deltas must equal the one-shot result (with
 * the delta invariants checked on the way: valid UTF-8, one first delta per
 * call carrying id and name, indices in order). Targeted tests check what is
 * held back while streaming; a bounded fuzz looks for crashes, invalid JSON
 * and streaming mismatches on hostile input.
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glm/output_parser.h"
#include "core/util.h"
#include "testutil.h"

/* get_weather: typed parameters; write_file: strings; now: no parameters. */
static const char *TOOLS =
    "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\","
    " \"properties\": {\"city\": {\"type\": \"string\"}, \"zip\": {\"type\": \"string\"},"
    " \"days\": {\"type\": \"integer\"}, \"temp\": {\"type\": \"number\"}, \"metric\": {\"type\": \"boolean\"},"
    " \"opts\": {\"type\": \"object\"}, \"tags\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}},"
    " \"note\": {\"type\": [\"string\", \"null\"]},"
    " \"unit\": {\"anyOf\": [{\"type\": \"integer\"}, {\"type\": \"string\"}]},"
    " \"mode\": {\"enum\": [\"1\", \"2\"]}, \"level\": {\"enum\": [1, 2]},"
    " \"free\": {\"description\": \"no type\"}, \"named\": {\"type\": \"string\", \"anyOf\": [{\"minLength\": 1}]}}}}},"
    " {\"type\": \"function\", \"function\": {\"name\": \"write_file\", \"parameters\": {\"type\": \"object\","
    " \"properties\": {\"path\": {\"type\": \"string\"}, \"content\": {\"type\": \"string\"}}}}},"
    " {\"type\": \"function\", \"function\": {\"name\": \"now\", \"parameters\": {\"type\": \"object\","
    " \"properties\": {}}}}]";

typedef struct {
    const char *name, *args;
} exp_call;

typedef struct {
    const char *what;
    glm_out_think_mode think; /* 0 = OPEN */
    int no_tools;             /* 1: parse_tools off */
    int no_schema;            /* 1: tools = NULL */
    const char *text;
    const char *reasoning, *content;
    exp_call calls[4]; /* ends at name == NULL */
} tcase;

#define OFF GLM_OUT_THINK_OFF
#define AUTO GLM_OUT_THINK_AUTO
#define TC "<tool_call>"
#define ETC "</tool_call>"
#define K(k) "<arg_key>" k "</arg_key>"
#define V(v) "<arg_value>" v "</arg_value>"
#define N50 "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
#define N250 N50 N50 N50 N50 N50
#define N300 N250 N50
#define N500 N250 N250
#define L10 "[[[[[[[[[["
#define R10 "]]]]]]]]]]"
#define L60 L10 L10 L10 L10 L10 L10
#define R60 R10 R10 R10 R10 R10 R10
#define L70 L60 L10
#define R70 R60 R10

static const tcase cases[] = {
    /* reasoning */
    {"reasoning only, no </think>", .text = "Let me think.", .reasoning = "Let me think.", .content = ""},
    {"reasoning + content", .text = "2+2 is 4.</think>The answer is 4.", .reasoning = "2+2 is 4.",
     .content = "The answer is 4."},
    {"whitespace trimmed at both ends", .text = "\nStep 1.\n\nStep 2.\n</think>\n\nAnswer\n",
     .reasoning = "Step 1.\n\nStep 2.", .content = "Answer"},
    {"model repeats <think>", .text = "<think>abc</think>xyz", .reasoning = "abc", .content = "xyz"},
    {"thinking off: think tags are text", .think = OFF, .text = "<think>hi</think> plain",
     .reasoning = "", .content = "<think>hi</think> plain"},
    {"thinking off: plain", .think = OFF, .text = "Hello world", .reasoning = "", .content = "Hello world"},
    {"auto: model opens think", .think = AUTO, .text = "<think>r</think>c", .reasoning = "r", .content = "c"},
    {"auto: no think", .think = AUTO, .text = "Just content.", .reasoning = "", .content = "Just content."},
    {"auto: unclosed think", .think = AUTO, .text = "<think>partial", .reasoning = "partial", .content = ""},
    {"empty output", .text = "", .reasoning = "", .content = ""},
    {"only </think>", .text = "</think>", .reasoning = "", .content = ""},
    {"stray </think> in content dropped", .text = "a</think>b</think>c", .reasoning = "a", .content = "bc"},
    {"think reopened", .text = "r1</think>c1<think>r2</think>c2", .reasoning = "r1r2", .content = "c1c2"},
    {"tag look-alikes stay text", .think = OFF, .text = "if a<b and </thinking> <tool <tool_call",
     .reasoning = "", .content = "if a<b and </thinking> <tool <tool_call"},
    {"look-alikes in reasoning", .text = "x </thin y <think", .reasoning = "x </thin y <think", .content = ""},
    /* tool calls, typing by schema */
    {"string arg", .text = "Need weather.</think>" TC "get_weather" K("city") V("Tokyo") ETC,
     .reasoning = "Need weather.", .content = "", .calls = {{"get_weather", "{\"city\": \"Tokyo\"}"}}},
    {"string schema keeps numbers raw", .text = "</think>" TC "get_weather" K("zip") V("01234") K("city") V("42") ETC,
     .reasoning = "", .content = "", .calls = {{"get_weather", "{\"zip\": \"01234\", \"city\": \"42\"}"}}},
    {"integer / number / boolean", .text = "</think>" TC "get_weather" K("days") V("5") K("temp") V("21.5")
                                          K("metric") V("true") ETC,
     .reasoning = "", .content = "",
     .calls = {{"get_weather", "{\"days\": 5, \"temp\": 21.5, \"metric\": true}"}}},
    {"integer that does not parse", .text = "</think>" TC "get_weather" K("days") V("five") K("temp") V("NaN") ETC,
     .reasoning = "", .content = "", .calls = {{"get_weather", "{\"days\": \"five\", \"temp\": \"NaN\"}"}}},
    {"Python booleans", .text = "</think>" TC "get_weather" K("metric") V("True") ETC, .reasoning = "",
     .content = "", .calls = {{"get_weather", "{\"metric\": true}"}}},
    {"object and array re-serialised",
     .text = "</think>" TC "get_weather" K("opts") V("{\"a\":1,\n \"b\":[1,2.50,{}],\"c\":\"x\\\"y\"}")
                 K("tags") V(" [\"x\", \"y\"] ") ETC,
     .reasoning = "", .content = "",
     .calls = {{"get_weather",
                "{\"opts\": {\"a\": 1, \"b\": [1, 2.50, {}], \"c\": \"x\\\"y\"}, \"tags\": [\"x\", \"y\"]}"}}},
    {"bad object stays a string", .text = "</think>" TC "get_weather" K("opts") V("{bad") K("tags") V("[1,]") ETC,
     .reasoning = "", .content = "", .calls = {{"get_weather", "{\"opts\": \"{bad\", \"tags\": \"[1,]\"}"}}},
    {"string-or-null union", .text = "</think>" TC "get_weather" K("note") V("null") ETC TC "get_weather" K("note") V("5") ETC,
     .reasoning = "", .content = "",
     .calls = {{"get_weather", "{\"note\": null}"}, {"get_weather", "{\"note\": \"5\"}"}}},
    {"anyOf, enum and untyped schemas",
     .text = "</think>" TC "get_weather" K("unit") V("7") K("unit") V("x") K("mode") V("1") K("level") V("2")
                 K("free") V("[3]") K("named") V("8") ETC,
     .reasoning = "", .content = "",
     .calls = {{"get_weather",
                "{\"unit\": 7, \"unit\": \"x\", \"mode\": \"1\", \"level\": 2, \"free\": [3], \"named\": \"8\"}"}}},
    {"unknown tool: JSON then string",
     .text = "</think>" TC "lookup" K("q") V("hello") K("n") V("3") K("flag") V("false") K("nil") V("null")
                 K("obj") V("{\"k\":[1,{\"z\":null}]}") K("s") V("\"quoted\"") ETC,
     .reasoning = "", .content = "",
     .calls = {{"lookup", "{\"q\": \"hello\", \"n\": 3, \"flag\": false, \"nil\": null, \"obj\": {\"k\": [1, "
                          "{\"z\": null}]}, \"s\": \"quoted\"}"}}},
    {"no tools given: same typing", .no_schema = 1, .text = "</think>" TC "get_weather" K("city") V("42") K("x") V("a b") ETC,
     .reasoning = "", .content = "", .calls = {{"get_weather", "{\"city\": 42, \"x\": \"a b\"}"}}},
    {"escapes in string values",
     .text = "</think>" TC "write_file" K("path") V("C:\\dir\\f.txt") K("content") V("He said \"hi\"\n\tbye\x01") ETC,
     .reasoning = "", .content = "",
     .calls = {{"write_file", "{\"path\": \"C:\\\\dir\\\\f.txt\", \"content\": \"He said \\\"hi\\\"\\n\\tbye\\u0001\"}"}}},
    {"string values keep whitespace", .text = "</think>" TC "write_file" K("content") V("  indented\n") ETC,
     .reasoning = "", .content = "", .calls = {{"write_file", "{\"content\": \"  indented\\n\"}"}}},
    {"untyped values: JSON trimmed, strings raw", .text = "</think>" TC "lookup" K("a") V(" hello ") K("b") V(" 42\n") K("c") V("") ETC,
     .reasoning = "", .content = "", .calls = {{"lookup", "{\"a\": \" hello \", \"b\": 42, \"c\": \"\"}"}}},
    {"deep nesting stays a string", .text = "</think>" TC "lookup" K("d") V(L70 R70) K("e") V(L60 R60) ETC,
     .reasoning = "", .content = "", .calls = {{"lookup", "{\"d\": \"" L70 R70 "\", \"e\": " L60 R60 "}"}}},
    {"tag-like text inside a value", .text = "</think>" TC "write_file" K("content") V("<b>x</b> <think>y</think> <tool_call>") ETC,
     .reasoning = "", .content = "",
     .calls = {{"write_file", "{\"content\": \"<b>x</b> <think>y</think> <tool_call>\"}"}}},
    /* call shapes */
    {"several calls", .text = "</think>" TC "get_weather" K("city") V("Paris") ETC "\n" TC "get_weather" K("city") V("Rome") ETC,
     .reasoning = "", .content = "",
     .calls = {{"get_weather", "{\"city\": \"Paris\"}"}, {"get_weather", "{\"city\": \"Rome\"}"}}},
    {"no-argument call", .text = "</think>" TC "now" ETC, .reasoning = "", .content = "", .calls = {{"now", "{}"}}},
    {"no-argument call with newline", .text = "</think>" TC "now\n" ETC TC " now " ETC, .reasoning = "",
     .content = "", .calls = {{"now", "{}"}, {"now", "{}"}}},
    {"GLM-4.5 layout with newlines",
     .text = "</think>" TC "get_weather\n" K(" city ") "\n" V("Paris") "\n" K("days") " \n " V("2") "\n" ETC,
     .reasoning = "", .content = "", .calls = {{"get_weather", "{\"city\": \"Paris\", \"days\": 2}"}}},
    {"content before, between and after", .text = "ok</think>Let me check.\n" TC "now" ETC "\nThen " TC "now" ETC "\nDone.\n",
     .reasoning = "ok", .content = "Let me check.\n\nThen \nDone.", .calls = {{"now", "{}"}, {"now", "{}"}}},
    {"thinking off with a call", .think = OFF, .text = "Sure." TC "now" ETC, .reasoning = "", .content = "Sure.",
     .calls = {{"now", "{}"}}},
    {"call inside reasoning ends it", .text = "I will call.\n" TC "now" ETC "after", .reasoning = "I will call.",
     .content = "after", .calls = {{"now", "{}"}}},
    {"parse_tools off: calls are text", .no_tools = 1, .text = "</think>" TC "now" ETC, .reasoning = "",
     .content = TC "now" ETC},
    {"reasoning, calls, content", .text = "plan</think>" TC "now" ETC TC "write_file" K("path") V("a") K("content") V("b") ETC "ok",
     .reasoning = "plan", .content = "ok",
     .calls = {{"now", "{}"}, {"write_file", "{\"path\": \"a\", \"content\": \"b\"}"}}},
    {"unknown tool name kept as a call", .text = "</think>" TC "not_declared" K("a") V("1") ETC, .reasoning = "",
     .content = "", .calls = {{"not_declared", "{\"a\": 1}"}}},
    {"repeated key kept", .text = "</think>" TC "get_weather" K("city") V("A") K("city") V("B") ETC, .reasoning = "",
     .content = "", .calls = {{"get_weather", "{\"city\": \"A\", \"city\": \"B\"}"}}},
    /* malformed */
    {"unclosed call, name incomplete", .text = "</think>Hi" TC "get_wea", .reasoning = "", .content = "Hi" TC "get_wea"},
    {"unclosed call in a string value", .text = "</think>" TC "write_file" K("path") V("/a") K("content") "<arg_value>par",
     .reasoning = "", .content = "", .calls = {{"write_file", "{\"path\": \"/a\", \"content\": \"par\"}"}}},
    {"unclosed call in a typed value", .text = "</think>" TC "get_weather" K("days") "<arg_value>3", .reasoning = "",
     .content = "", .calls = {{"get_weather", "{\"days\": 3}"}}},
    {"unclosed call after a value", .text = "</think>" TC "get_weather" K("days") V("3") "\n", .reasoning = "",
     .content = "", .calls = {{"get_weather", "{\"days\": 3}"}}},
    {"unclosed call in a key", .text = "</think>" TC "get_weather" "<arg_key>ci", .reasoning = "",
     .content = "<arg_key>ci", .calls = {{"get_weather", "{}"}}},
    {"unclosed call after a key", .text = "</think>" TC "get_weather" K("city") " ", .reasoning = "",
     .content = "<arg_key>city</arg_key>", .calls = {{"get_weather", "{}"}}},
    {"missing arg_value", .text = "</think>" TC "get_weather" K("city") ETC, .reasoning = "",
     .content = "<arg_key>city</arg_key>", .calls = {{"get_weather", "{}"}}},
    {"missing arg_value, next key", .text = "</think>" TC "get_weather" K("city") K("days") V("2") ETC, .reasoning = "",
     .content = "<arg_key>city</arg_key>", .calls = {{"get_weather", "{\"days\": 2}"}}},
    {"garbage between arguments", .text = "</think>" TC "get_weather" K("city") V("Rome") " oops! " K("days") V("1") ETC,
     .reasoning = "", .content = "oops!", .calls = {{"get_weather", "{\"city\": \"Rome\", \"days\": 1}"}}},
    {"garbage between key and value", .text = "</think>" TC "get_weather" K("city") "xx" V("Rome") ETC, .reasoning = "",
     .content = "<arg_key>city</arg_key>xx<arg_value>Rome</arg_value>", .calls = {{"get_weather", "{}"}}},
    {"stray arg_value between arguments", .text = "</think>" TC "get_weather" K("days") V("1") V("Rome") K("city") V("Oslo") ETC,
     .reasoning = "", .content = "<arg_value>Rome</arg_value>",
     .calls = {{"get_weather", "{\"days\": 1, \"city\": \"Oslo\"}"}}},
    {"tag inside the name: call is text", .text = "</think>" TC "get_weather" V("Rome") K("city") V("Oslo") ETC,
     .reasoning = "", .content = TC "get_weather" V("Rome") K("city") V("Oslo") ETC},
    {"bad name (space) stays text", .text = "</think>" TC "get weather" K("city") V("X") ETC, .reasoning = "",
     .content = TC "get weather" K("city") V("X") ETC},
    {"empty name stays text", .text = "</think>" TC K("a") V("1") ETC " " TC ETC, .reasoning = "",
     .content = TC K("a") V("1") ETC " " TC ETC},
    {"double <tool_call>", .text = "</think>" TC TC "now" ETC, .reasoning = "", .content = TC, .calls = {{"now", "{}"}}},
    {"missing </arg_key>", .text = "</think>" TC "get_weather<arg_key>city" V("Oslo") ETC, .reasoning = "",
     .content = "", .calls = {{"get_weather", "{\"city\": \"Oslo\"}"}}},
    {"</tool_call> inside a value", .text = "</think>" TC "get_weather" K("city") "<arg_value>Oslo" ETC "x", .reasoning = "",
     .content = "x", .calls = {{"get_weather", "{\"city\": \"Oslo\"}"}}},
    {"new call without closing", .text = "</think>" TC "get_weather" K("city") V("A") TC "now" ETC, .reasoning = "",
     .content = "", .calls = {{"get_weather", "{\"city\": \"A\"}"}, {"now", "{}"}}},
    {"stray </tool_call> and arg tags in content", .text = "</think>a" ETC "b" K("k"), .reasoning = "",
     .content = "a" ETC "b" K("k")},
    {"name over 256 bytes stays text", .text = "</think>" TC N300 "<think>x" ETC, .reasoning = "x" ETC,
     .content = TC N300},
    {"name of 256 bytes is a call", .text = "</think>" TC N250 "nnnnnn" ETC, .reasoning = "", .content = "",
     .calls = {{N250 "nnnnnn", "{}"}}},
    {"name of 257 bytes just before <arg_key>", .text = "</think>" TC N250 "nnnnnnn" K("a") V("1") ETC "<think>r",
     .reasoning = "r", .content = TC N250 "nnnnnnn" K("a") V("1") ETC},
    {"key of 512 bytes", .text = "</think>" TC "lookup" K(N500 "nnnnnnnnnnnn") V("1") ETC, .reasoning = "",
     .content = "", .calls = {{"lookup", "{\"" N500 "nnnnnnnnnnnn\": 1}"}}},
    {"key of 513 bytes just before </arg_key>", .text = "</think>" TC "lookup" K(N500 "nnnnnnnnnnnnn") V("1") ETC,
     .reasoning = "", .content = "<arg_key>" N500 "nnnnnnnnnnnnn</arg_key><arg_value>1</arg_value>",
     .calls = {{"lookup", "{}"}}},
    /* unicode and bytes */
    {"unicode everywhere", .text = "思考中…</think>答案是 42 🎉" TC "get_weather" K("city") V("北京") K("note") V("ünï") ETC,
     .reasoning = "思考中…", .content = "答案是 42 🎉",
     .calls = {{"get_weather", "{\"city\": \"北京\", \"note\": \"ünï\"}"}}},
    {"invalid UTF-8 becomes U+FFFD", .think = OFF, .text = "a\xff" "b\xc0\xaf" "c\xed\xa0\x80" "d\xe2\x82",
     .reasoning = "", .content = "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD" "c\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "d\xEF\xBF\xBD"},
    {"invalid UTF-8 in a value", .text = "</think>" TC "write_file" K("content") V("x\xf5y") ETC, .reasoning = "",
     .content = "", .calls = {{"write_file", "{\"content\": \"x\xEF\xBF\xBDy\"}"}}},
};

#define NCASES ((int)(sizeof cases / sizeof cases[0]))

static void test_id(void *ctx, int index, char buf[GLM_OUT_ID_MAX])
{
    (void)ctx;
    snprintf(buf, GLM_OUT_ID_MAX, "call_t%d", index);
}

static json_t *g_tools;

static void params_for(const tcase *c, glm_out_params *prm)
{
    glm_out_params_default(prm);
    prm->think = c->think;
    prm->parse_tools = !c->no_tools;
    prm->tools = c->no_schema ? NULL : g_tools;
    prm->id_fn = test_id;
}

/* The message streamed deltas add up to. */
typedef struct {
    char *reasoning, *content;
    size_t rn, cn;
    int n;
    char id[8][GLM_OUT_ID_MAX], name[8][300];
    char *args[8];
    size_t an[8];
} acc_t;

static void cat(char **s, size_t *n, const char *add, size_t len)
{
    *s = glm_realloc(*s, *n + len + 1);
    memcpy(*s + *n, add, len);
    *n += len;
    (*s)[*n] = 0;
}

/* A delta's string is valid UTF-8 (jansson checks) and has no NUL inside. */
static void check_text(const char *s, size_t n, const char *what)
{
    ck_assert_msg(s != NULL, "%s: NULL", what);
    ck_assert_msg(strlen(s) == n, "%s: length %zu, strlen %zu", what, n, strlen(s));
    json_t *j = json_stringn(s, n);
    ck_assert_msg(j != NULL, "%s: not UTF-8: %s", what, s);
    json_decref(j);
}

static void acc_add(acc_t *a, const glm_out_delta *d, const char *what)
{
    check_text(d->reasoning, d->reasoning_len, what);
    check_text(d->content, d->content_len, what);
    cat(&a->reasoning, &a->rn, d->reasoning, d->reasoning_len);
    cat(&a->content, &a->cn, d->content, d->content_len);
    ck_assert(d->n_tool_calls >= 0 && (d->n_tool_calls == 0) == (d->tool_calls == NULL));
    for (int i = 0; i < d->n_tool_calls; i++) {
        const glm_out_tool_delta *t = &d->tool_calls[i];
        ck_assert_msg(i == 0 || t->index > d->tool_calls[i - 1].index, "%s: indices out of order", what);
        ck_assert_msg(t->index >= 0 && t->index <= a->n && t->index < 8, "%s: bad index %d", what, t->index);
        if (t->index == a->n) { /* first delta of the call */
            ck_assert_msg(t->id && t->name, "%s: first delta without id/name", what);
            ck_assert(strlen(t->id) > 0 && strlen(t->id) < GLM_OUT_ID_MAX && strlen(t->name) < 300);
            strcpy(a->id[a->n], t->id);
            strcpy(a->name[a->n], t->name);
            a->args[a->n] = NULL;
            a->an[a->n] = 0;
            a->n++;
        } else
            ck_assert_msg(!t->id && !t->name, "%s: id/name repeated", what);
        check_text(t->arguments, t->arguments_len, what);
        cat(&a->args[t->index], &a->an[t->index], t->arguments, t->arguments_len);
    }
}

static void acc_free(acc_t *a)
{
    free(a->reasoning);
    free(a->content);
    for (int i = 0; i < a->n; i++)
        free(a->args[i]);
    memset(a, 0, sizeof *a);
}

/* Streams text cut at the given offsets (cuts[0..n), increasing) and checks
 * the deltas add up to m. */
static void stream_check(const glm_out_params *prm, const char *text, size_t len, const size_t *cuts, int ncuts,
                         const glm_out_message *m, const char *what)
{
    char err[GLM_ERRLEN];
    acc_t a = {0};
    glm_out_delta d;
    glm_out_parser *p = glm_out_create(prm, err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    size_t at = 0;
    for (int i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        glm_out_feed(p, text + at, to - at, &d);
        acc_add(&a, &d, what);
        at = to;
    }
    glm_out_finish(p, &d);
    acc_add(&a, &d, what);
    ck_assert_msg(a.rn == m->reasoning_len && memcmp(a.reasoning ? a.reasoning : "", m->reasoning, a.rn) == 0,
                  "%s: streamed reasoning [%s] != [%s]", what, a.reasoning ? a.reasoning : "", m->reasoning);
    ck_assert_msg(a.cn == m->content_len && memcmp(a.content ? a.content : "", m->content, a.cn) == 0,
                  "%s: streamed content [%s] != [%s]", what, a.content ? a.content : "", m->content);
    ck_assert_msg(a.n == m->n_tool_calls, "%s: %d streamed calls, %d expected", what, a.n, m->n_tool_calls);
    for (int i = 0; i < a.n; i++) {
        const glm_out_tool_call *c = &m->tool_calls[i];
        ck_assert_str_eq(a.id[i], c->id);
        ck_assert_str_eq(a.name[i], c->name);
        ck_assert_msg(a.an[i] == c->arguments_len && strcmp(a.args[i] ? a.args[i] : "", c->arguments) == 0,
                      "%s: streamed arguments [%s] != [%s]", what, a.args[i] ? a.args[i] : "", c->arguments);
    }
    /* the streaming parser's own final message is the same */
    glm_out_message m2;
    glm_out_get(p, &m2);
    ck_assert_str_eq(m2.reasoning, m->reasoning);
    ck_assert_str_eq(m2.content, m->content);
    ck_assert_int_eq(m2.n_tool_calls, m->n_tool_calls);
    for (int i = 0; i < m2.n_tool_calls; i++)
        ck_assert_str_eq(m2.tool_calls[i].arguments, m->tool_calls[i].arguments);
    glm_out_free(p);
    acc_free(&a);
}

/* Every 2-piece cut, single bytes, and a few random chunkings. */
static void stream_all(const glm_out_params *prm, const char *text, size_t len, const glm_out_message *m,
                       const char *what)
{
    size_t *cuts = glm_malloc((len + 1) * sizeof *cuts);
    for (size_t k = 0; k <= len; k++) {
        cuts[0] = k;
        stream_check(prm, text, len, cuts, 1, m, what);
    }
    for (size_t k = 0; k < len; k++)
        cuts[k] = k + 1;
    stream_check(prm, text, len, cuts, len ? (int)len - 1 : 0, m, what);
    unsigned seed = 12345;
    for (int r = 0; r < 4; r++) {
        int nc = 0;
        for (size_t at = 0;;) {
            seed = seed * 1103515245u + 12345u;
            at += 1 + (seed >> 16) % 9;
            if (at >= len)
                break;
            cuts[nc++] = at;
        }
        stream_check(prm, text, len, cuts, nc, m, what);
    }
    free(cuts);
}

START_TEST(table)
{
    const tcase *c = &cases[_i];
    char err[GLM_ERRLEN];
    glm_out_params prm;
    glm_out_message m;
    params_for(c, &prm);
    size_t len = strlen(c->text);
    glm_out_parser *p = glm_out_parse(&prm, c->text, len, &m, err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    ck_assert_msg(strcmp(m.reasoning, c->reasoning) == 0, "%s: reasoning [%s], expected [%s]", c->what, m.reasoning,
                  c->reasoning);
    ck_assert_msg(strcmp(m.content, c->content) == 0, "%s: content [%s], expected [%s]", c->what, m.content,
                  c->content);
    ck_assert_uint_eq(m.reasoning_len, strlen(c->reasoning));
    ck_assert_uint_eq(m.content_len, strlen(c->content));
    int n = 0;
    while (n < 4 && c->calls[n].name)
        n++;
    ck_assert_msg(m.n_tool_calls == n, "%s: %d calls, expected %d", c->what, m.n_tool_calls, n);
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "call_t%d", i);
        ck_assert_str_eq(m.tool_calls[i].id, id);
        ck_assert_msg(strcmp(m.tool_calls[i].name, c->calls[i].name) == 0, "%s: name %s", c->what,
                      m.tool_calls[i].name);
        ck_assert_msg(strcmp(m.tool_calls[i].arguments, c->calls[i].args) == 0, "%s: arguments\n  got %s\n  exp %s",
                      c->what, m.tool_calls[i].arguments, c->calls[i].args);
        ck_assert_uint_eq(m.tool_calls[i].arguments_len, strlen(c->calls[i].args));
        json_error_t je;
        json_t *j = json_loads(m.tool_calls[i].arguments, 0, &je);
        ck_assert_msg(json_is_object(j), "%s: arguments not a JSON object: %s", c->what, je.text);
        json_decref(j);
    }
    stream_all(&prm, c->text, len, &m, c->what);
    glm_out_free(p);
}
END_TEST

/* ---- targeted streaming checks -------------------------------------------- */

typedef struct {
    glm_out_parser *p;
    glm_out_delta d;
} streamer;

static void st_open(streamer *s, glm_out_think_mode think)
{
    char err[GLM_ERRLEN];
    glm_out_params prm;
    glm_out_params_default(&prm);
    prm.think = think;
    prm.tools = g_tools;
    prm.id_fn = test_id;
    s->p = glm_out_create(&prm, err, sizeof err);
    ck_assert_msg(s->p != NULL, "%s", err);
}

static void st_feed(streamer *s, const char *t) { glm_out_feed(s->p, t, strlen(t), &s->d); }

START_TEST(holds_back_tag_prefixes)
{
    streamer s;
    st_open(&s, GLM_OUT_THINK_OPEN);
    ck_assert(glm_out_in_reasoning(s.p));
    st_feed(&s, "reason</th");
    ck_assert_str_eq(s.d.reasoning, "reason");
    ck_assert(glm_out_in_reasoning(s.p));
    st_feed(&s, "ink>abc<tool_");
    ck_assert(!glm_out_in_reasoning(s.p));
    ck_assert_str_eq(s.d.reasoning, "");
    ck_assert_str_eq(s.d.content, "abc");
    st_feed(&s, "call>no");
    ck_assert_str_eq(s.d.content, "");
    ck_assert_int_eq(s.d.n_tool_calls, 0); /* the name is not complete yet */
    st_feed(&s, "w</tool_call>");
    ck_assert_int_eq(s.d.n_tool_calls, 1);
    ck_assert_int_eq(s.d.tool_calls[0].index, 0);
    ck_assert_str_eq(s.d.tool_calls[0].id, "call_t0");
    ck_assert_str_eq(s.d.tool_calls[0].name, "now");
    ck_assert_str_eq(s.d.tool_calls[0].arguments, "{}");
    st_feed(&s, " x<too");
    ck_assert_str_eq(s.d.content, " x"); /* "<too" may be <tool_call> */
    st_feed(&s, "l box ");
    ck_assert_str_eq(s.d.content, "<tool box"); /* resolved: text; trailing space held */
    glm_out_finish(s.p, &s.d);
    ck_assert_str_eq(s.d.content, "");
    glm_out_message m;
    glm_out_get(s.p, &m);
    ck_assert_str_eq(m.content, "abc x<tool box");
    glm_out_free(s.p);
}
END_TEST

START_TEST(streams_string_arguments)
{
    streamer s;
    st_open(&s, GLM_OUT_THINK_OFF);
    st_feed(&s, "<tool_call>write_file<arg_key>path</arg_key><arg_value>/tmp/a</arg_value><arg_key>content</arg_key>");
    ck_assert_int_eq(s.d.n_tool_calls, 1);
    ck_assert_str_eq(s.d.tool_calls[0].name, "write_file");
    ck_assert_str_eq(s.d.tool_calls[0].arguments, "{\"path\": \"/tmp/a\"");
    st_feed(&s, "<arg_value>line 1\nli");
    ck_assert_int_eq(s.d.n_tool_calls, 1);
    ck_assert_ptr_null(s.d.tool_calls[0].id);
    ck_assert_ptr_null(s.d.tool_calls[0].name);
    ck_assert_str_eq(s.d.tool_calls[0].arguments, ", \"content\": \"line 1\\nli");
    st_feed(&s, "ne 2</arg_val");
    ck_assert_str_eq(s.d.tool_calls[0].arguments, "ne 2");
    st_feed(&s, "ue></tool_call>");
    ck_assert_str_eq(s.d.tool_calls[0].arguments, "\"}");
    glm_out_finish(s.p, &s.d);
    ck_assert_int_eq(s.d.n_tool_calls, 0);
    glm_out_free(s.p);
}
END_TEST

START_TEST(cut_call_stays_open)
{
    /* text cut by max_tokens inside a call: the arguments stay unterminated, whatever state
     * the cut left (a streamed string, a typed value not yet sent, a key, between arguments) */
    static const struct {
        const char *text, *args;
    } cuts[] = {
        {"<tool_call>get_weather<arg_key>city</arg_key><arg_value>Pa", "{\"city\": \"Pa"},
        {"<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value><arg_key>days</arg_key>"
         "<arg_value>1", "{\"city\": \"Paris\", \"days\": 1"},
        {"<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value><arg_key>da",
         "{\"city\": \"Paris\""},
        {"<tool_call>get_weather<arg_key>ci", "{"},
    };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        streamer s;
        st_open(&s, GLM_OUT_THINK_OFF);
        st_feed(&s, cuts[i].text);
        glm_out_finish_cut(s.p, &s.d);
        glm_out_message m;
        glm_out_get(s.p, &m);
        ck_assert_int_eq(m.n_tool_calls, 1);
        ck_assert_str_eq(m.tool_calls[0].arguments, cuts[i].args);
        ck_assert_ptr_null(json_loads(m.tool_calls[0].arguments, 0, NULL));
        glm_out_free(s.p);
    }
    /* a call that completed before the cut is whole */
    streamer s;
    st_open(&s, GLM_OUT_THINK_OFF);
    st_feed(&s, "<tool_call>now</tool_call>");
    glm_out_finish_cut(s.p, &s.d);
    glm_out_message m;
    glm_out_get(s.p, &m);
    ck_assert_int_eq(m.n_tool_calls, 1);
    ck_assert_str_eq(m.tool_calls[0].arguments, "{}");
    glm_out_free(s.p);
}
END_TEST

START_TEST(typed_arguments_arrive_whole)
{
    streamer s;
    st_open(&s, GLM_OUT_THINK_OFF);
    st_feed(&s, "<tool_call>get_weather<arg_key>days</arg_key><arg_value>1");
    ck_assert_int_eq(s.d.n_tool_calls, 1);
    ck_assert_str_eq(s.d.tool_calls[0].name, "get_weather");
    ck_assert_str_eq(s.d.tool_calls[0].arguments, "");
    st_feed(&s, "2</arg_value>");
    ck_assert_str_eq(s.d.tool_calls[0].arguments, "{\"days\": 12");
    st_feed(&s, "<tool_call>now");
    ck_assert_str_eq(s.d.tool_calls[0].arguments, "}");
    ck_assert_int_eq(s.d.n_tool_calls, 1);
    glm_out_finish(s.p, &s.d); /* the unclosed second call has no complete name: text */
    ck_assert_str_eq(s.d.content, "<tool_call>now");
    glm_out_free(s.p);
}
END_TEST

START_TEST(whitespace_and_utf8_held)
{
    streamer s;
    st_open(&s, GLM_OUT_THINK_OFF);
    st_feed(&s, "\n\nHello \n");
    ck_assert_str_eq(s.d.content, "Hello");
    st_feed(&s, "w\xe4\xbd");
    ck_assert_str_eq(s.d.content, " \nw");
    st_feed(&s, "\xa0");
    ck_assert_str_eq(s.d.content, "\xe4\xbd\xa0");
    st_feed(&s, "\xf0\x9f");
    ck_assert_str_eq(s.d.content, "");
    glm_out_finish(s.p, &s.d);
    ck_assert_str_eq(s.d.content, "\xEF\xBF\xBD"); /* the sequence never completed */
    glm_out_free(s.p);
}
END_TEST

START_TEST(nul_bytes)
{
    char err[GLM_ERRLEN];
    glm_out_params prm;
    glm_out_message m;
    glm_out_params_default(&prm);
    static const char text[] = "a\0b</think>c\0";
    glm_out_parser *p = glm_out_parse(&prm, text, sizeof text - 1, &m, err, sizeof err);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(m.reasoning, "a\xEF\xBF\xBD" "b");
    ck_assert_str_eq(m.content, "c\xEF\xBF\xBD");
    stream_all(&prm, text, sizeof text - 1, &m, "NUL bytes");
    glm_out_free(p);
}
END_TEST

START_TEST(default_ids)
{
    char err[GLM_ERRLEN];
    glm_out_params prm;
    glm_out_message m, m2;
    static const char text[] = "</think><tool_call>a</tool_call><tool_call>b</tool_call><tool_call>c</tool_call>";
    glm_out_params_default(&prm);
    prm.id_seed = 42;
    glm_out_parser *p = glm_out_parse(&prm, text, strlen(text), &m, err, sizeof err);
    glm_out_parser *q = glm_out_parse(&prm, text, strlen(text), &m2, err, sizeof err);
    ck_assert_int_eq(m.n_tool_calls, 3);
    for (int i = 0; i < 3; i++) {
        const char *id = m.tool_calls[i].id;
        ck_assert_uint_eq(strlen(id), 29);
        ck_assert(strncmp(id, "call_", 5) == 0);
        for (int k = 5; k < 29; k++)
            ck_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", id[k]) && id[k]);
        ck_assert_str_eq(id, m2.tool_calls[i].id);
        for (int k = 0; k < i; k++)
            ck_assert_str_ne(id, m.tool_calls[k].id);
    }
    glm_out_free(q);
    prm.id_seed = 43;
    q = glm_out_parse(&prm, text, strlen(text), &m2, err, sizeof err);
    ck_assert_str_ne(m.tool_calls[0].id, m2.tool_calls[0].id);
    glm_out_free(q);
    glm_out_free(p);
}
END_TEST

START_TEST(custom_tags)
{
    char err[GLM_ERRLEN];
    glm_out_params prm;
    glm_out_message m;
    glm_out_params_default(&prm);
    prm.tags = (glm_out_tags){"◁think▷", "◁/think▷", "[TC]", "[/TC]", "[K]", "[/K]", "[V]", "[/V]"};
    prm.tools = g_tools;
    prm.id_fn = test_id;
    static const char text[] = "r ◁think▷◁/thin◁/think▷c[TC]get_weather[K]days[/K][V]3[/V][/TC]<tool_call>";
    glm_out_parser *p = glm_out_parse(&prm, text, strlen(text), &m, err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    ck_assert_str_eq(m.reasoning, "r ◁/thin");
    ck_assert_str_eq(m.content, "c<tool_call>");
    ck_assert_int_eq(m.n_tool_calls, 1);
    ck_assert_str_eq(m.tool_calls[0].arguments, "{\"days\": 3}");
    stream_all(&prm, text, strlen(text), &m, "custom tags");
    glm_out_free(p);
}
END_TEST

START_TEST(bad_params)
{
    char err[GLM_ERRLEN];
    glm_out_params prm;
    glm_out_params_default(&prm);
    prm.tags.arg_key_end = "";
    ck_assert_ptr_null(glm_out_create(&prm, err, sizeof err));
    ck_assert(strstr(err, "arg_key_end") != NULL);
    glm_out_params_default(&prm);
    prm.tags.think_end = NULL;
    ck_assert_ptr_null(glm_out_create(&prm, err, sizeof err));
    glm_out_params_default(&prm);
    prm.tags.think_start = "<t";
    prm.tags.tool_call_start = "<tool_call>";
    ck_assert_ptr_null(glm_out_create(&prm, err, sizeof err));
    ck_assert(strstr(err, "prefix") != NULL);
    glm_out_params_default(&prm);
    prm.tags.arg_value_end = prm.tags.arg_value_start;
    ck_assert_ptr_null(glm_out_create(&prm, err, sizeof err));
    glm_out_params_default(&prm);
    prm.tags.tool_call_end = "\xff>";
    ck_assert_ptr_null(glm_out_create(&prm, err, sizeof err));
    ck_assert(strstr(err, "UTF-8") != NULL);
    glm_out_params_default(&prm);
    prm.think = (glm_out_think_mode)7;
    ck_assert_ptr_null(glm_out_create(&prm, err, sizeof err));
    /* malformed tools entries are skipped, not fatal */
    json_error_t je;
    json_t *bad = json_loads("[1, {\"function\": 2}, {\"function\": {\"name\": 3}}, {\"name\": \"flat\","
                             " \"parameters\": {\"properties\": {\"s\": {\"type\": \"string\"}}}}]", 0, &je);
    glm_out_params_default(&prm);
    prm.tools = bad;
    glm_out_message m;
    const char *flat = "</think><tool_call>flat<arg_key>s</arg_key><arg_value>1</arg_value></tool_call>";
    glm_out_parser *p = glm_out_parse(&prm, flat, strlen(flat), &m, err, sizeof err);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(m.tool_calls[0].arguments, "{\"s\": \"1\"}");
    glm_out_free(p);
    json_decref(bad);
}
END_TEST

START_TEST(think_mode_for_prompt)
{
    const char *a = "[gMASK]<sop><|user|>hi<|assistant|><think>";
    const char *b = "[gMASK]<sop><|user|>hi<|assistant|></think>\n";
    const char *c = "[gMASK]<sop><|user|>hi<|assistant|>";
    ck_assert_int_eq(glm_out_think_mode_for_prompt(a, strlen(a), NULL), GLM_OUT_THINK_OPEN);
    ck_assert_int_eq(glm_out_think_mode_for_prompt(b, strlen(b), NULL), GLM_OUT_THINK_OFF);
    ck_assert_int_eq(glm_out_think_mode_for_prompt(c, strlen(c), NULL), GLM_OUT_THINK_AUTO);
    ck_assert_int_eq(glm_out_think_mode_for_prompt("", 0, NULL), GLM_OUT_THINK_AUTO);
}
END_TEST

/* ---- fuzz --------------------------------------------------------------------- */

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

START_TEST(fuzz)
{
    static const char *const frag[] = {
        "<think>", "</think>", "<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>",
        "</arg_value>", "<", "</", "<tool_", "</arg_v", "<think", "get_weather", "write_file", "now", "x y",
        "city", "days", "opts", "note", "content", "free", "3", "-0.5e+3", "true", "null", "{\"a\": [1, 2]}",
        "[", "]", "{", "}", "\"", "\\", "\\n", "\\u00e9", ",", ":", " ", "\n", "\t", "北京", "🎉", "\xff",
        "\xe4\xbd", "\xa0", "\x01", "text", "True"};
    char err[GLM_ERRLEN];
    char text[1024];
    size_t cuts[1024];
    uint64_t s = 0x9E3779B97F4A7C15ull;
    int iters = getenv("GLM_FUZZ_ITERS") ? atoi(getenv("GLM_FUZZ_ITERS")) : 3000;
    for (int it = 0; it < iters; it++) {
        size_t len = 0;
        int nf = (int)(rng(&s) % 40);
        for (int f = 0; f < nf; f++) {
            if (len + 1 >= sizeof text)
                break;
            if (rng(&s) % 8 == 0) {
                text[len++] = (char)(rng(&s) % 256);
                continue;
            }
            const char *x = frag[rng(&s) % (sizeof frag / sizeof frag[0])];
            size_t xl = strlen(x);
            if (len + xl >= sizeof text)
                break;
            memcpy(text + len, x, xl);
            len += xl;
        }
        glm_out_params prm;
        glm_out_params_default(&prm);
        prm.think = (glm_out_think_mode)(rng(&s) % 3);
        prm.parse_tools = rng(&s) % 5 != 0;
        prm.tools = rng(&s) % 4 ? g_tools : NULL;
        prm.id_seed = rng(&s);
        glm_out_message m;
        glm_out_parser *p = glm_out_parse(&prm, text, len, &m, err, sizeof err);
        ck_assert_ptr_nonnull(p);
        check_text(m.reasoning, m.reasoning_len, "fuzz reasoning");
        check_text(m.content, m.content_len, "fuzz content");
        for (int i = 0; i < m.n_tool_calls; i++) {
            json_error_t je;
            json_t *j = json_loads(m.tool_calls[i].arguments, 0, &je);
            ck_assert_msg(json_is_object(j), "fuzz: arguments not a JSON object (%s): %s", je.text,
                          m.tool_calls[i].arguments);
            json_decref(j);
            check_text(m.tool_calls[i].name, strlen(m.tool_calls[i].name), "fuzz name");
        }
        if (m.n_tool_calls > 8)
            goto next; /* acc_t keeps 8 */
        int nc = 0;
        for (size_t at = 0;;) {
            at += 1 + rng(&s) % 12;
            if (at >= len)
                break;
            cuts[nc++] = at;
        }
        stream_check(&prm, text, len, cuts, nc, &m, "fuzz");
        for (size_t k = 0; k < len; k++)
            cuts[k] = k + 1;
        if (it % 10 == 0)
            stream_check(&prm, text, len, cuts, len ? (int)len - 1 : 0, &m, "fuzz bytes");
    next:
        glm_out_free(p);
    }
}
END_TEST

START_TEST(long_output)
{
    /* 2 MB of reasoning, content and 2000 calls in one piece: no quadratic
     * behaviour, and the same in 1 kB pieces. */
    size_t cap = 4 << 20, len = 0;
    char *text = glm_malloc(cap);
    for (int i = 0; i < 20000; i++)
        len += (size_t)snprintf(text + len, cap - len, "step %d: thinking about <things> and </thin", i);
    len += (size_t)snprintf(text + len, cap - len, "</think>");
    for (int i = 0; i < 2000; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "<tool_call>get_weather<arg_key>city</arg_key><arg_value>c%d</arg_value>"
                                "<arg_key>days</arg_key><arg_value>%d</arg_value></tool_call>text %d ",
                                i, i, i);
    char err[GLM_ERRLEN];
    glm_out_params prm;
    glm_out_params_default(&prm);
    prm.tools = g_tools;
    prm.id_fn = test_id;
    glm_out_message m;
    glm_out_parser *p = glm_out_parse(&prm, text, len, &m, err, sizeof err);
    ck_assert_int_eq(m.n_tool_calls, 2000);
    ck_assert_str_eq(m.tool_calls[1999].arguments, "{\"city\": \"c1999\", \"days\": 1999}");
    glm_out_parser *q = glm_out_create(&prm, err, sizeof err);
    glm_out_delta d;
    size_t content_len = 0;
    for (size_t at = 0; at < len; at += 1000) {
        glm_out_feed(q, text + at, GLM_MIN(1000, len - at), &d);
        content_len += d.content_len;
    }
    glm_out_finish(q, &d);
    content_len += d.content_len;
    ck_assert_uint_eq(content_len, m.content_len);
    glm_out_message m2;
    glm_out_get(q, &m2);
    ck_assert_str_eq(m2.reasoning, m.reasoning);
    ck_assert_int_eq(m2.n_tool_calls, 2000);
    glm_out_free(q);
    glm_out_free(p);
    free(text);
}
END_TEST

int main(void)
{
    json_error_t je;
    g_tools = json_loads(TOOLS, 0, &je);
    if (!g_tools) {
        fprintf(stderr, "test bug: TOOLS: %s\n", je.text);
        return 1;
    }
    Suite *s = suite_create("output_parser");
    TCase *tc = tcase_create("output_parser");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, table, 0, NCASES);
    tcase_add_test(tc, holds_back_tag_prefixes);
    tcase_add_test(tc, streams_string_arguments);
    tcase_add_test(tc, cut_call_stays_open);
    tcase_add_test(tc, typed_arguments_arrive_whole);
    tcase_add_test(tc, whitespace_and_utf8_held);
    tcase_add_test(tc, nul_bytes);
    tcase_add_test(tc, default_ids);
    tcase_add_test(tc, custom_tags);
    tcase_add_test(tc, bad_params);
    tcase_add_test(tc, think_mode_for_prompt);
    tcase_add_test(tc, fuzz);
    tcase_add_test(tc, long_output);
    suite_add_tcase(s, tc);
    int rc = test_run_suite(s);
    json_decref(g_tools);
    return rc;
}
