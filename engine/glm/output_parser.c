/*
 * output_parser.c - the state machine behind output_parser.h.
 *
 * Each feed runs: bytes -> UTF-8 sanitiser (holds an incomplete sequence back,
 * turns invalid bytes and NUL into U+FFFD) -> `in` -> tag scanner (the
 * earliest tag the current state recognises; a suffix that may still become a
 * tag stays in `in`) -> per-state text and tag handlers. The handlers only
 * append: to the reasoning and content accumulators (through a filter that
 * trims leading whitespace and holds trailing whitespace back) and to the
 * arguments of the open tool call. A delta is what each accumulator gained
 * during the call, so streamed pieces concatenate to the final message by
 * construction; the scanner makes the same decisions however the text is cut.
 *
 * States and the tags each recognises (everything else is text of the state):
 *   REASONING  <think> (dropped)  </think> -> CONTENT  <tool_call> -> NAME
 *   CONTENT    <think> -> REASONING  </think> (dropped)  <tool_call> -> NAME
 *   NAME       <arg_key> -> KEY  </tool_call> -> CONTENT  <tool_call> (restart)
 *   ARGS       <arg_key> -> KEY  </tool_call> -> CONTENT  <tool_call> -> NAME
 *   KEY        </arg_key> -> AFTER_KEY  <arg_value> -> VALUE  + the ARGS tags
 *   AFTER_KEY  <arg_value> -> VALUE  + the ARGS tags
 *   VALUE      </arg_value> -> ARGS  </tool_call> -> CONTENT
 * (think tags only when thinking is not off, tool tags only with parse_tools,
 * none in CONTENT with content_plain.)
 */
#include "glm/output_parser.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/utf8.h"
#include "core/util.h"

#define TAG_MAX 64        /* bytes per tag */
#define NAME_MAX_RAW 256  /* raw bytes of a tool name before the call is malformed */
#define KEY_MAX_RAW 512   /* raw bytes of an argument key */
#define JSON_MAX_DEPTH 64 /* nesting of a JSON argument value */

#define REPLACEMENT GLM_UTF8_REPLACEMENT

/* ---- types and the parser ------------------------------------------------- */

enum { T_THINK_START = GLM_OUT_TAG_THINK_START, T_THINK_END, T_TOOL_START, T_TOOL_END, T_KEY_START, T_KEY_END,
       T_VAL_START, T_VAL_END, T_COUNT };
#define TAG(t) (1u << (t))

typedef enum { S_REASONING, S_CONTENT, S_NAME, S_ARGS, S_KEY, S_AFTER_KEY, S_VALUE,
               S_COUNT } state;

/* JSON types a schema allows (0: no type information). */
enum { M_NULL = GLM_OUT_T_NULL, M_BOOL = GLM_OUT_T_BOOL, M_NUM = GLM_OUT_T_NUM, M_STR = GLM_OUT_T_STR,
       M_OBJ = GLM_OUT_T_OBJ, M_ARR = GLM_OUT_T_ARR };

typedef struct {
    char *key;
    unsigned mask;
} prop_type;

typedef struct {
    char *name;
    prop_type *props; /* [n_props] */
    int n_props;
} tool_schema;

typedef struct {
    char id[GLM_OUT_ID_MAX];
    char *name;
    glm_buf args;   /* the arguments JSON so far */
    size_t sent; /* bytes of args already handed out in deltas */
    int announced;
} call;

struct glm_out_parser {
    char tag[T_COUNT][TAG_MAX + 1];
    size_t tag_len[T_COUNT];
    size_t max_tag;
    unsigned set[S_COUNT];            /* tags each state recognises */
    unsigned char first[S_COUNT][256]; /* 1: a recognised tag starts with this byte */
    tool_schema *tools; /* [n_tools] */
    int n_tools;
    glm_out_id_fn id_fn;
    void *id_ctx;
    uint64_t id_seed;

    unsigned char u8[4]; /* incomplete UTF-8 sequence from the previous feed */
    int u8n;
    glm_buf raw; /* scratch: u8 + the fed bytes */
    glm_buf in;  /* sanitised text not yet consumed (a possible tag prefix) */
    state st;
    int finished;

    glm_buf reasoning, content; /* accumulated, trimmed */
    glm_buf r_ws, c_ws;         /* trailing whitespace held back */
    size_t r_sent, c_sent;   /* bytes already handed out in deltas */

    /* the tool call being parsed */
    glm_buf name, key, gap, value;
    int garbage;      /* ARGS: the current text run holds more than whitespace */
    int value_stream; /* VALUE: the value streams as a JSON string */
    int n_args;
    int call_open;
    const tool_schema *tool; /* schema of the open call's tool, may be NULL */

    call *calls; /* [n_calls] */
    int n_calls, cap_calls;
    int delta_lo; /* first call that can still have undelivered bytes */
    glm_out_tool_delta *deltas;
    int cap_deltas;
    glm_out_tool_call *view;
    int cap_view;
    glm_buf scratch;
};

static int is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* ---- UTF-8 --------------------------------------------------------------- */

/* glm_utf8_seq, except that NUL counts as ill-formed: output strings are C
 * strings. */
static int utf8_seq(const unsigned char *s, size_t n)
{
    return s[0] ? glm_utf8_seq((const char *)s, n, NULL) : -1;
}

/* Appends u8 + text to `in` as valid UTF-8; an incomplete sequence at the end
 * waits in u8 for the next feed unless `final`. */
static void sanitize(glm_out_parser *p, const char *text, size_t len, int final)
{
    glm_buf_clear(&p->raw);
    glm_buf_put(&p->raw, (const char *)p->u8, (size_t)p->u8n);
    glm_buf_put(&p->raw, text, len);
    p->u8n = 0;
    const unsigned char *s = (const unsigned char *)glm_buf_str(&p->raw);
    size_t n = p->raw.len, i = 0, run = 0;
    while (i < n) {
        if (s[i] - 1u < 0x7Fu) { /* 0x01..0x7F */
            i++;
            continue;
        }
        int r = utf8_seq(s + i, n - i);
        if (r > 0) {
            i += (size_t)r;
            continue;
        }
        glm_buf_put(&p->in, (const char *)s + run, i - run);
        if (r == 0 && !final) {
            memcpy(p->u8, s + i, n - i);
            p->u8n = (int)(n - i);
            run = i = n;
            break;
        }
        glm_buf_put(&p->in, REPLACEMENT, 3);
        i += r == 0 ? n - i : (size_t)-r;
        run = i;
    }
    glm_buf_put(&p->in, (const char *)s + run, n - run);
}

/* ---- output primitives ----------------------------------------------------- */

/* Appends s to acc without leading whitespace (when acc is empty) and with its
 * trailing whitespace held in ws until more non-whitespace text follows: acc
 * is always the trimmed text so far, however the text arrives. */
static void emit_trim(glm_buf *acc, glm_buf *ws, const char *s, size_t n)
{
    size_t end = n, start = 0;
    while (end > 0 && is_ws((unsigned char)s[end - 1]))
        end--;
    if (end == 0) {
        if (acc->len)
            glm_buf_put(ws, s, n);
        return;
    }
    if (acc->len == 0)
        while (is_ws((unsigned char)s[start]))
            start++;
    glm_buf_put(acc, glm_buf_str(ws), ws->len);
    glm_buf_clear(ws);
    glm_buf_put(acc, s + start, end - start);
    glm_buf_put(ws, s + end, n - end);
}

static void content(glm_out_parser *p, const char *s, size_t n)
{
    emit_trim(&p->content, &p->c_ws, s, n);
}

static void content_tag(glm_out_parser *p, int t) { content(p, p->tag[t], p->tag_len[t]); }

static glm_buf *cur_args(glm_out_parser *p)
{
    GLM_ASSERT(p->call_open && p->n_calls > 0);
    return &p->calls[p->n_calls - 1].args;
}

/* ---- JSON argument values ---------------------------------------------------- */

/* A strict RFC 8259 reader that writes the value back with Python's separators
 * (", " and ": ") and strings and numbers exactly as written. */
typedef struct {
    const char *s;
    size_t n, i;
    glm_buf *out;
    int depth;
} jreader;

static void j_ws(jreader *j)
{
    while (j->i < j->n && is_ws((unsigned char)j->s[j->i]))
        j->i++;
}

static int j_peek(const jreader *j, char c) { return j->i < j->n && j->s[j->i] == c; }

static int j_string(jreader *j)
{
    size_t st = j->i;
    if (!j_peek(j, '"'))
        return 0;
    j->i++;
    while (j->i < j->n) {
        unsigned char c = (unsigned char)j->s[j->i];
        if (c == '"') {
            j->i++;
            glm_buf_put(j->out, j->s + st, j->i - st);
            return 1;
        }
        if (c < 0x20)
            return 0;
        if (c != '\\') {
            j->i++;
            continue;
        }
        if (j->i + 1 >= j->n)
            return 0;
        char e = j->s[j->i + 1];
        if (e == 'u') {
            if (j->n - j->i < 6)
                return 0;
            for (int k = 2; k < 6; k++) {
                char h = j->s[j->i + (size_t)k];
                if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F')))
                    return 0;
            }
            j->i += 6;
        } else if (e && strchr("\"\\/bfnrt", e))
            j->i += 2;
        else
            return 0;
    }
    return 0;
}

static int j_digits(jreader *j)
{
    size_t st = j->i;
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9')
        j->i++;
    return j->i > st;
}

static int j_number(jreader *j)
{
    size_t st = j->i;
    if (j_peek(j, '-'))
        j->i++;
    if (j_peek(j, '0'))
        j->i++;
    else if (j->i >= j->n || j->s[j->i] < '1' || j->s[j->i] > '9' || !j_digits(j))
        return 0;
    if (j_peek(j, '.')) {
        j->i++;
        if (!j_digits(j))
            return 0;
    }
    if (j_peek(j, 'e') || j_peek(j, 'E')) {
        j->i++;
        if (j_peek(j, '+') || j_peek(j, '-'))
            j->i++;
        if (!j_digits(j))
            return 0;
    }
    glm_buf_put(j->out, j->s + st, j->i - st);
    return 1;
}

static int j_word(jreader *j, const char *w)
{
    size_t k = strlen(w);
    if (j->n - j->i < k || memcmp(j->s + j->i, w, k) != 0)
        return 0;
    glm_buf_put(j->out, w, k);
    j->i += k;
    return 1;
}

/* Reads one value; *type gets its M_* bit. */
static int j_value(jreader *j, unsigned *type)
{
    j_ws(j);
    if (j->i >= j->n)
        return 0;
    char c = j->s[j->i];
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        unsigned t;
        if (++j->depth > JSON_MAX_DEPTH)
            return 0;
        j->i++;
        glm_buf_put(j->out, &c, 1);
        j_ws(j);
        if (!j_peek(j, close)) {
            for (;;) {
                if (c == '{') {
                    j_ws(j);
                    if (!j_string(j))
                        return 0;
                    j_ws(j);
                    if (!j_peek(j, ':'))
                        return 0;
                    j->i++;
                    glm_buf_puts(j->out, ": ");
                }
                if (!j_value(j, &t))
                    return 0;
                j_ws(j);
                if (!j_peek(j, ','))
                    break;
                j->i++;
                glm_buf_puts(j->out, ", ");
            }
            if (!j_peek(j, close))
                return 0;
        }
        j->i++;
        glm_buf_put(j->out, &close, 1);
        j->depth--;
        *type = c == '{' ? M_OBJ : M_ARR;
        return 1;
    }
    if (c == '"') {
        *type = M_STR;
        return j_string(j);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        *type = M_NUM;
        return j_number(j);
    }
    if (j_word(j, "true") || j_word(j, "false")) {
        *type = M_BOOL;
        return 1;
    }
    *type = M_NULL;
    return j_word(j, "null");
}

static int eq_nocase(const char *s, size_t n, const char *w)
{
    if (strlen(w) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != w[i])
            return 0;
    }
    return 1;
}

/* Appends the JSON for raw value text s given the types its schema allows
 * (see the header): a JSON value when one parses and fits, else a string. */
static void put_value(glm_out_parser *p, glm_buf *out, const char *s, size_t n, unsigned mask)
{
    size_t a = 0, b = n;
    while (a < b && is_ws((unsigned char)s[a]))
        a++;
    while (b > a && is_ws((unsigned char)s[b - 1]))
        b--;
    if (mask != M_STR) {
        jreader j = {s + a, b - a, 0, &p->scratch, 0};
        unsigned type = 0;
        glm_buf_clear(&p->scratch);
        if (j_value(&j, &type) && (j_ws(&j), j.i == j.n) &&
            (mask == 0 || !(mask & M_STR) || (type & mask))) {
            glm_buf_put(out, glm_buf_str(&p->scratch), p->scratch.len);
            return;
        }
        if ((mask & M_BOOL) && (eq_nocase(s + a, b - a, "true") || eq_nocase(s + a, b - a, "false"))) {
            glm_buf_puts(out, (s[a] | 0x20) == 't' ? "true" : "false");
            return;
        }
    }
    glm_buf_puts(out, "\"");
    glm_buf_json_escape(out, s, n, 0);
    glm_buf_puts(out, "\"");
}

/* ---- tool schemas ------------------------------------------------------------ */

static unsigned type_bit(const char *t)
{
    static const struct {
        const char *name;
        unsigned bit;
    } map[] = {{"string", M_STR}, {"integer", M_NUM}, {"number", M_NUM}, {"boolean", M_BOOL},
               {"null", M_NULL},  {"object", M_OBJ},  {"array", M_ARR}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(t, map[i].name) == 0)
            return map[i].bit;
    return 0;
}

static unsigned value_bit(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return M_OBJ;
    case JSON_ARRAY: return M_ARR;
    case JSON_STRING: return M_STR;
    case JSON_INTEGER:
    case JSON_REAL: return M_NUM;
    case JSON_TRUE:
    case JSON_FALSE: return M_BOOL;
    default: return M_NULL;
    }
}

/* The JSON types a property schema allows, from "type" (string or list),
 * "enum", "const" and the branches of "anyOf"/"oneOf"; 0 when it says nothing
 * (an untyped branch makes the union untyped unless the schema itself is
 * typed). */
static unsigned schema_mask(const json_t *s, int depth)
{
    unsigned m = 0, branches = 0;
    int untyped_branch = 0;
    if (!json_is_object(s) || depth > 16)
        return 0;
    const json_t *t = json_object_get(s, "type");
    if (json_is_string(t))
        m |= type_bit(json_string_value(t));
    for (size_t i = 0; json_is_array(t) && i < json_array_size(t); i++)
        if (json_is_string(json_array_get(t, i)))
            m |= type_bit(json_string_value(json_array_get(t, i)));
    const json_t *e = json_object_get(s, "enum");
    for (size_t i = 0; json_is_array(e) && i < json_array_size(e); i++)
        m |= value_bit(json_array_get(e, i));
    if (json_object_get(s, "const"))
        m |= value_bit(json_object_get(s, "const"));
    static const char *const unions[] = {"anyOf", "oneOf"};
    for (int u = 0; u < 2; u++) {
        const json_t *a = json_object_get(s, unions[u]);
        for (size_t i = 0; json_is_array(a) && i < json_array_size(a); i++) {
            unsigned b = schema_mask(json_array_get(a, i), depth + 1);
            branches |= b;
            untyped_branch |= b == 0;
        }
    }
    if (!m && untyped_branch)
        return 0;
    return m | branches;
}

unsigned glm_out_schema_types(const json_t *schema)
{
    return schema_mask(schema, 0);
}

static void load_tools(glm_out_parser *p, const json_t *tools)
{
    size_t n = json_is_array(tools) ? json_array_size(tools) : 0;
    if (n == 0)
        return;
    p->tools = glm_calloc(n, sizeof *p->tools);
    for (size_t i = 0; i < n; i++) {
        const json_t *tool = json_array_get(tools, i), *fn = json_object_get(tool, "function");
        if (!json_is_object(fn))
            fn = tool; /* Responses API shape: {"type": "function", "name": ...} */
        const json_t *name = json_object_get(fn, "name");
        if (!json_is_string(name))
            continue;
        tool_schema *ts = &p->tools[p->n_tools++];
        ts->name = glm_strdup(json_string_value(name));
        json_t *props = json_object_get(json_object_get(fn, "parameters"), "properties");
        if (!json_is_object(props) || json_object_size(props) == 0)
            continue;
        ts->props = glm_calloc(json_object_size(props), sizeof *ts->props);
        const char *k;
        json_t *v;
        json_object_foreach(props, k, v)
        {
            ts->props[ts->n_props].key = glm_strdup(k);
            ts->props[ts->n_props++].mask = schema_mask(v, 0);
        }
    }
}

static const tool_schema *find_tool(const glm_out_parser *p, const char *name)
{
    for (int i = 0; i < p->n_tools; i++)
        if (strcmp(p->tools[i].name, name) == 0)
            return &p->tools[i];
    return NULL;
}

static unsigned find_mask(const tool_schema *ts, const char *key, size_t n)
{
    for (int i = 0; ts && i < ts->n_props; i++)
        if (strlen(ts->props[i].key) == n && memcmp(ts->props[i].key, key, n) == 0)
            return ts->props[i].mask;
    return 0;
}

/* ---- tool calls ---------------------------------------------------------------- */

static void trim(const glm_buf *b, const char **s, size_t *n)
{
    const char *a = glm_buf_str(b);
    size_t len = b->len;
    while (len && is_ws((unsigned char)a[len - 1]))
        len--;
    while (len && is_ws((unsigned char)*a)) {
        a++;
        len--;
    }
    *s = a;
    *n = len;
}

/* "call_" + 24 letters/digits (about 142 bits) from the seed and the index. */
static void default_id(uint64_t seed, int index, char *buf)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint64_t x = seed ^ ((uint64_t)(unsigned)index * 0xD1B54A32D192ED03ull), r = 0;
    memcpy(buf, "call_", 5);
    for (int i = 0; i < 24; i++) {
        if (i % 8 == 0)
            r = glm_splitmix64(&x);
        buf[5 + i] = al[r % 62];
        r /= 62;
    }
    buf[29] = 0;
}

/* A name is 1..NAME_MAX_RAW bytes, trimmed, with no whitespace, control
 * character, '<' or '>'. */
static int name_ok(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7F || c == '<' || c == '>')
            return 0;
    }
    return 1;
}

static void begin_call(glm_out_parser *p)
{
    glm_buf_clear(&p->name);
    p->st = S_NAME;
}

/* The name is complete and valid: the call exists from now on. */
static void announce(glm_out_parser *p, const char *name, size_t n)
{
    if (p->n_calls == p->cap_calls) {
        p->cap_calls = p->cap_calls ? 2 * p->cap_calls : 4;
        p->calls = glm_realloc(p->calls, (size_t)p->cap_calls * sizeof *p->calls);
    }
    call *c = &p->calls[p->n_calls];
    memset(c, 0, sizeof *c);
    c->name = glm_malloc(n + 1);
    memcpy(c->name, name, n);
    c->name[n] = 0;
    if (p->id_fn) {
        p->id_fn(p->id_ctx, p->n_calls, c->id);
        c->id[GLM_OUT_ID_MAX - 1] = 0;
    }
    if (!c->id[0])
        default_id(p->id_seed, p->n_calls, c->id);
    glm_buf_put(&c->args, "", 0);
    p->n_calls++;
    p->call_open = 1;
    p->n_args = 0;
    p->tool = find_tool(p, c->name);
}

static void close_call(glm_out_parser *p)
{
    glm_buf_puts(cur_args(p), p->n_args ? "}" : "{}");
    p->call_open = 0;
    p->tool = NULL;
    glm_buf_clear(&p->key);
    glm_buf_clear(&p->gap);
    glm_buf_clear(&p->value);
}

/* The raw text of a call whose name turned out bad goes to content. */
static void name_bad(glm_out_parser *p)
{
    content_tag(p, T_TOOL_START);
    content(p, glm_buf_str(&p->name), p->name.len);
    glm_buf_clear(&p->name);
    p->st = S_CONTENT;
}

static void key_begin(glm_out_parser *p)
{
    glm_buf_clear(&p->key);
    p->st = S_KEY;
}

/* A key that gets no value goes to content verbatim: <arg_key>K[</arg_key>gap]. */
static void key_dump(glm_out_parser *p, int closed)
{
    content_tag(p, T_KEY_START);
    content(p, glm_buf_str(&p->key), p->key.len);
    if (closed) {
        content_tag(p, T_KEY_END);
        content(p, glm_buf_str(&p->gap), p->gap.len);
    }
    glm_buf_clear(&p->key);
    glm_buf_clear(&p->gap);
}

/* `{"key": ` or `, "key": ` */
static void arg_prefix(glm_out_parser *p)
{
    const char *k;
    size_t kn;
    glm_buf *a = cur_args(p);
    trim(&p->key, &k, &kn);
    glm_buf_puts(a, p->n_args++ ? ", \"" : "{\"");
    glm_buf_json_escape(a, k, kn, 0);
    glm_buf_puts(a, "\": ");
}

static void value_begin(glm_out_parser *p)
{
    const char *k;
    size_t kn;
    trim(&p->key, &k, &kn);
    p->value_stream = find_mask(p->tool, k, kn) == M_STR;
    glm_buf_clear(&p->value);
    if (p->value_stream) {
        arg_prefix(p);
        glm_buf_puts(cur_args(p), "\"");
    }
    p->st = S_VALUE;
}

static void value_end(glm_out_parser *p)
{
    if (p->value_stream)
        glm_buf_puts(cur_args(p), "\"");
    else {
        const char *k;
        size_t kn;
        trim(&p->key, &k, &kn);
        unsigned mask = find_mask(p->tool, k, kn);
        arg_prefix(p);
        put_value(p, cur_args(p), glm_buf_str(&p->value), p->value.len, mask);
    }
    glm_buf_clear(&p->key);
    glm_buf_clear(&p->value);
    p->value_stream = 0;
}

/* A tag that ends the argument list part of a call (ARGS and the key states). */
static void args_tag(glm_out_parser *p, int t)
{
    p->garbage = 0;
    glm_buf_clear(&p->gap);
    if (t == T_KEY_START)
        key_begin(p);
    else {
        close_call(p);
        if (t == T_TOOL_START)
            begin_call(p);
        else
            p->st = S_CONTENT;
    }
}

/* ---- the scanner ----------------------------------------------------------------- */

/* Handles text of the current state; returns how much it consumed. A handler
 * that changes the state mid-text returns early: the rest is scanned again
 * with the new state's tags. */
static size_t on_text(glm_out_parser *p, const char *s, size_t n)
{
    size_t i = 0;
    switch (p->st) {
    case S_REASONING:
        emit_trim(&p->reasoning, &p->r_ws, s, n);
        return n;
    case S_CONTENT:
        content(p, s, n);
        return n;
    case S_NAME:
    case S_KEY: {
        glm_buf *b = p->st == S_NAME ? &p->name : &p->key;
        size_t room = (p->st == S_NAME ? NAME_MAX_RAW : KEY_MAX_RAW) - b->len;
        if (n <= room) {
            glm_buf_put(b, s, n);
            return n;
        }
        glm_buf_put(b, s, room + 1); /* too long: the call (or the pair) is malformed */
        if (p->st == S_NAME)
            name_bad(p);
        else {
            key_dump(p, 0);
            p->st = S_ARGS;
            p->garbage = 1;
        }
        return room + 1;
    }
    case S_ARGS:
        if (!p->garbage) {
            while (i < n && is_ws((unsigned char)s[i]))
                i++;
            glm_buf_put(&p->gap, s, i);
            if (i == n)
                return n;
            p->garbage = 1; /* text between parts: to content, as written */
            content(p, glm_buf_str(&p->gap), p->gap.len);
            glm_buf_clear(&p->gap);
        }
        content(p, s + i, n - i);
        return n;
    case S_AFTER_KEY:
        while (i < n && is_ws((unsigned char)s[i]))
            i++;
        glm_buf_put(&p->gap, s, i);
        if (i == n)
            return n;
        key_dump(p, 1); /* text where <arg_value> should be */
        p->st = S_ARGS;
        p->garbage = 1;
        return i;
    case S_VALUE:
        if (p->value_stream)
            glm_buf_json_escape(cur_args(p), s, n, 0);
        else
            glm_buf_put(&p->value, s, n);
        return n;
    default:
        GLM_ASSERT(0);
        return n;
    }
}

static void on_tag(glm_out_parser *p, int t)
{
    const char *nm;
    size_t nn;
    switch (p->st) {
    case S_REASONING:
        if (t == T_THINK_END)
            p->st = S_CONTENT;
        else if (t == T_TOOL_START)
            begin_call(p); /* a call ends the reasoning (SGLang, vLLM main) */
        break;             /* a nested <think> is dropped */
    case S_CONTENT:
        if (t == T_THINK_START)
            p->st = S_REASONING;
        else if (t == T_TOOL_START)
            begin_call(p);
        break; /* a stray </think> is dropped */
    case S_NAME:
        trim(&p->name, &nm, &nn);
        if (t == T_TOOL_START) { /* <tool_call> again: the first one was text */
            name_bad(p);
            begin_call(p);
        } else if (!name_ok(nm, nn)) {
            name_bad(p);
            content_tag(p, t);
        } else {
            announce(p, nm, nn);
            glm_buf_clear(&p->name);
            if (t == T_KEY_START)
                key_begin(p);
            else {
                close_call(p);
                p->st = S_CONTENT;
            }
        }
        break;
    case S_ARGS:
        args_tag(p, t);
        break;
    case S_KEY:
        if (t == T_KEY_END) {
            glm_buf_clear(&p->gap);
            p->st = S_AFTER_KEY;
        } else if (t == T_VAL_START)
            value_begin(p); /* </arg_key> missing: accepted */
        else {
            key_dump(p, 0);
            args_tag(p, t);
        }
        break;
    case S_AFTER_KEY:
        if (t == T_VAL_START)
            value_begin(p);
        else {
            key_dump(p, 1);
            args_tag(p, t);
        }
        break;
    case S_VALUE:
        value_end(p);
        if (t == T_VAL_END) {
            p->garbage = 0;
            glm_buf_clear(&p->gap);
            p->st = S_ARGS;
        } else {
            close_call(p);
            p->st = S_CONTENT;
        }
        break;
    default:
        GLM_ASSERT(0);
    }
}

/* Earliest position in s[0..n) where a tag of `set` starts in full; its index
 * in *tag, or n and -1. */
static size_t find_tag(const glm_out_parser *p, state st, const char *s, size_t n, int *tag)
{
    unsigned set = p->set[st];
    for (size_t q = 0; q < n; q++) {
        if (!p->first[st][(unsigned char)s[q]])
            continue;
        for (int t = 0; t < T_COUNT; t++)
            if ((set & TAG(t)) && p->tag_len[t] <= n - q && memcmp(s + q, p->tag[t], p->tag_len[t]) == 0) {
                *tag = t;
                return q;
            }
    }
    *tag = -1;
    return n;
}

/* Smallest h such that s[h..n) is a proper prefix of a tag of `set` (it may
 * still become that tag); n if there is none. */
static size_t hold_start(const glm_out_parser *p, state st, const char *s, size_t n)
{
    unsigned set = p->set[st];
    for (size_t h = n > p->max_tag ? n - p->max_tag : 0; h < n; h++) {
        if (!p->first[st][(unsigned char)s[h]])
            continue;
        for (int t = 0; t < T_COUNT; t++)
            if ((set & TAG(t)) && n - h < p->tag_len[t] && memcmp(s + h, p->tag[t], n - h) == 0)
                return h;
    }
    return n;
}

/* Consumes `in` as far as it is certain (all of it when `final`). A tag found
 * at q is acted on only if no tag could still start before q: that is what
 * the one-shot parse of the whole text would see, however it was cut. */
static void run(glm_out_parser *p, int final)
{
    size_t pos = 0;
    for (;;) {
        const char *s = glm_buf_str(&p->in) + pos;
        size_t n = p->in.len - pos, end;
        state st = p->st;
        int t;
        size_t at = find_tag(p, st, s, n, &t);
        size_t h = final || (t >= 0 && at + p->max_tag < n) ? n : hold_start(p, st, s, n);
        if (t >= 0 && at < h)
            end = at;
        else {
            t = -1;
            end = h;
        }
        size_t k = end ? on_text(p, s, end) : 0;
        pos += k;
        if (k < end || p->st != st)
            continue;
        if (t < 0)
            break;
        pos += p->tag_len[t];
        on_tag(p, t);
    }
    memmove(p->in.p, p->in.p + pos, p->in.len - pos);
    p->in.len -= pos;
    p->in.p[p->in.len] = 0;
}

/* Fills d with what the accumulators gained since the last delta. */
static void make_delta(glm_out_parser *p, glm_out_delta *d)
{
    d->reasoning = glm_buf_str(&p->reasoning) + p->r_sent;
    d->reasoning_len = p->reasoning.len - p->r_sent;
    p->r_sent = p->reasoning.len;
    d->content = glm_buf_str(&p->content) + p->c_sent;
    d->content_len = p->content.len - p->c_sent;
    p->c_sent = p->content.len;
    int nd = 0;
    for (int i = p->delta_lo; i < p->n_calls; i++) {
        call *c = &p->calls[i];
        if (c->announced && c->args.len == c->sent)
            continue;
        if (nd == p->cap_deltas) {
            p->cap_deltas = p->cap_deltas ? 2 * p->cap_deltas : 4;
            p->deltas = glm_realloc(p->deltas, (size_t)p->cap_deltas * sizeof *p->deltas);
        }
        glm_out_tool_delta *td = &p->deltas[nd++];
        td->index = i;
        td->id = c->announced ? NULL : c->id;
        td->name = c->announced ? NULL : c->name;
        td->arguments = glm_buf_str(&c->args) + c->sent;
        td->arguments_len = c->args.len - c->sent;
        c->announced = 1;
        c->sent = c->args.len;
    }
    p->delta_lo = p->n_calls > 0 ? p->n_calls - 1 : 0;
    d->tool_calls = nd ? p->deltas : NULL;
    d->n_tool_calls = nd;
}

/* ---- public API ------------------------------------------------------------------- */

void glm_out_tags_default(glm_out_tags *t)
{
    t->think_start = "<think>";
    t->think_end = "</think>";
    t->tool_call_start = "<tool_call>";
    t->tool_call_end = "</tool_call>";
    t->arg_key_start = "<arg_key>";
    t->arg_key_end = "</arg_key>";
    t->arg_value_start = "<arg_value>";
    t->arg_value_end = "</arg_value>";
}

void glm_out_params_default(glm_out_params *prm)
{
    memset(prm, 0, sizeof *prm);
    glm_out_tags_default(&prm->tags);
    prm->think = GLM_OUT_THINK_OPEN;
    prm->parse_tools = 1;
}

void glm_out_tag_list(const glm_out_tags *t, const char *out[GLM_OUT_TAG_COUNT])
{
    const char *const f[T_COUNT] = {t->think_start,   t->think_end,     t->tool_call_start,
                                    t->tool_call_end, t->arg_key_start, t->arg_key_end,
                                    t->arg_value_start, t->arg_value_end};
    memcpy(out, f, sizeof f);
}

static const char *tag_field(const glm_out_tags *t, int i)
{
    const char *f[T_COUNT];
    glm_out_tag_list(t, f);
    return f[i];
}

static const char *const tag_names[T_COUNT] = {"think_start",   "think_end",     "tool_call_start",
                                               "tool_call_end", "arg_key_start", "arg_key_end",
                                               "arg_value_start", "arg_value_end"};

static int ends_with(const char *s, size_t n, const char *t)
{
    size_t k = t ? strlen(t) : 0;
    return k && k <= n && memcmp(s + n - k, t, k) == 0;
}

glm_out_think_mode glm_out_think_mode_for_prompt(const char *prompt, size_t len, const glm_out_tags *tags)
{
    glm_out_tags def;
    if (!tags) {
        glm_out_tags_default(&def);
        tags = &def;
    }
    while (len && is_ws((unsigned char)prompt[len - 1]))
        len--;
    if (ends_with(prompt, len, tags->think_start))
        return GLM_OUT_THINK_OPEN;
    if (ends_with(prompt, len, tags->think_end))
        return GLM_OUT_THINK_OFF;
    return GLM_OUT_THINK_AUTO;
}

glm_out_parser *glm_out_create(const glm_out_params *prm, char *err, size_t errlen)
{
    if ((unsigned)prm->think > GLM_OUT_THINK_OFF) {
        glm_err(err, errlen, "output parser: invalid think mode %d", (int)prm->think);
        return NULL;
    }
    for (int i = 0; i < T_COUNT; i++) {
        const char *s = tag_field(&prm->tags, i);
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > TAG_MAX) {
            glm_err(err, errlen, "output parser: tag %s must be 1..%d bytes", tag_names[i], TAG_MAX);
            return NULL;
        }
        for (size_t k = 0; k < n;) {
            int r = utf8_seq((const unsigned char *)s + k, n - k);
            if (r <= 0) {
                glm_err(err, errlen, "output parser: tag %s is not valid UTF-8", tag_names[i]);
                return NULL;
            }
            k += (size_t)r;
        }
        for (int j = 0; j < i; j++) {
            const char *o = tag_field(&prm->tags, j);
            size_t m = strlen(o);
            if (memcmp(s, o, GLM_MIN(n, m)) == 0) {
                glm_err(err, errlen, "output parser: tag %s \"%s\" and tag %s \"%s\": one is a prefix of the other",
                        tag_names[j], o, tag_names[i], s);
                return NULL;
            }
        }
    }

    glm_out_parser *p = glm_calloc(1, sizeof *p);
    for (int i = 0; i < T_COUNT; i++) {
        const char *s = tag_field(&prm->tags, i);
        p->tag_len[i] = strlen(s);
        memcpy(p->tag[i], s, p->tag_len[i] + 1);
        p->max_tag = GLM_MAX(p->max_tag, p->tag_len[i]);
    }
    unsigned think = prm->think == GLM_OUT_THINK_OFF ? 0 : TAG(T_THINK_START) | TAG(T_THINK_END);
    unsigned tool = prm->parse_tools ? TAG(T_TOOL_START) : 0;
    unsigned args = TAG(T_KEY_START) | TAG(T_TOOL_END) | TAG(T_TOOL_START);
    p->set[S_REASONING] = TAG(T_THINK_START) | TAG(T_THINK_END) | tool;
    p->set[S_CONTENT] = prm->content_plain ? 0 : think | tool;
    p->set[S_NAME] = args;
    p->set[S_ARGS] = args;
    p->set[S_KEY] = args | TAG(T_KEY_END) | TAG(T_VAL_START);
    p->set[S_AFTER_KEY] = args | TAG(T_VAL_START);
    p->set[S_VALUE] = TAG(T_VAL_END) | TAG(T_TOOL_END);
    for (int s = 0; s < S_COUNT; s++)
        for (int t = 0; t < T_COUNT; t++)
            if (p->set[s] & TAG(t))
                p->first[s][(unsigned char)p->tag[t][0]] = 1;
    p->st = prm->think == GLM_OUT_THINK_OPEN ? S_REASONING : S_CONTENT;
    p->id_fn = prm->id_fn;
    p->id_ctx = prm->id_ctx;
    p->id_seed = prm->id_seed;
    if (prm->parse_tools)
        load_tools(p, prm->tools);
    return p;
}

static void sb_free(glm_buf *b) { free(b->p); }

void glm_out_free(glm_out_parser *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_tools; i++) {
        for (int k = 0; k < p->tools[i].n_props; k++)
            free(p->tools[i].props[k].key);
        free(p->tools[i].props);
        free(p->tools[i].name);
    }
    free(p->tools);
    for (int i = 0; i < p->n_calls; i++) {
        free(p->calls[i].name);
        sb_free(&p->calls[i].args);
    }
    free(p->calls);
    free(p->deltas);
    free(p->view);
    glm_buf *bufs[] = {&p->raw,  &p->in,  &p->reasoning, &p->content, &p->r_ws,  &p->c_ws,
                    &p->name, &p->key, &p->gap,       &p->value,   &p->scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        sb_free(bufs[i]);
    free(p);
}

void glm_out_feed(glm_out_parser *p, const char *text, size_t len, glm_out_delta *d)
{
    GLM_ASSERT(!p->finished && (text || len == 0));
    sanitize(p, text, len, 0);
    run(p, 0);
    make_delta(p, d);
}

/* A call the text ends inside of, cut by a length limit: its arguments stay the unterminated
 * JSON they were streamed as (a value not yet streamed added raw), as OpenAI leaves a call cut
 * by max_tokens, so that no client takes it for a complete one. */
static void leave_open(glm_out_parser *p)
{
    glm_buf *a = cur_args(p);
    if (p->st == S_VALUE && !p->value_stream && p->value.len) {
        arg_prefix(p);
        glm_buf_put(a, glm_buf_str(&p->value), p->value.len);
    }
    if (a->len == 0)
        glm_buf_puts(a, "{");
    p->call_open = 0;
    p->tool = NULL;
    glm_buf_clear(&p->key);
    glm_buf_clear(&p->gap);
    glm_buf_clear(&p->value);
    p->value_stream = 0;
}

static void finish(glm_out_parser *p, glm_out_delta *d, int cut)
{
    GLM_ASSERT(!p->finished);
    sanitize(p, NULL, 0, 1);
    run(p, 1);
    if (cut && (p->st == S_ARGS || p->st == S_KEY || p->st == S_AFTER_KEY || p->st == S_VALUE)) {
        leave_open(p);
        p->st = S_CONTENT;
    }
    switch (p->st) {
    case S_NAME: /* the name never completed: nothing of the call was sent */
        name_bad(p);
        break;
    case S_ARGS:
        close_call(p);
        break;
    case S_KEY:
    case S_AFTER_KEY:
        key_dump(p, p->st == S_AFTER_KEY);
        close_call(p);
        break;
    case S_VALUE:
        value_end(p);
        close_call(p);
        break;
    default:
        break;
    }
    if (p->st != S_REASONING)
        p->st = S_CONTENT;
    glm_buf_clear(&p->r_ws);
    glm_buf_clear(&p->c_ws);
    p->finished = 1;
    make_delta(p, d);
}

void glm_out_finish(glm_out_parser *p, glm_out_delta *d) { finish(p, d, 0); }

void glm_out_finish_cut(glm_out_parser *p, glm_out_delta *d) { finish(p, d, 1); }

int glm_out_in_reasoning(const glm_out_parser *p) { return p->st == S_REASONING; }

void glm_out_get(glm_out_parser *p, glm_out_message *m)
{
    if (p->n_calls > p->cap_view) {
        p->cap_view = p->n_calls;
        p->view = glm_realloc(p->view, (size_t)p->cap_view * sizeof *p->view);
    }
    for (int i = 0; i < p->n_calls; i++) {
        p->view[i].id = p->calls[i].id;
        p->view[i].name = p->calls[i].name;
        p->view[i].arguments = glm_buf_str(&p->calls[i].args);
        p->view[i].arguments_len = p->calls[i].args.len;
    }
    m->reasoning = glm_buf_str(&p->reasoning);
    m->reasoning_len = p->reasoning.len;
    m->content = glm_buf_str(&p->content);
    m->content_len = p->content.len;
    m->tool_calls = p->n_calls ? p->view : NULL;
    m->n_tool_calls = p->n_calls;
}

glm_out_parser *glm_out_parse(const glm_out_params *prm, const char *text, size_t len, glm_out_message *m,
                              char *err, size_t errlen)
{
    glm_out_delta d;
    glm_out_parser *p = glm_out_create(prm, err, errlen);
    if (!p)
        return NULL;
    glm_out_feed(p, text, len, &d);
    glm_out_finish(p, &d);
    glm_out_get(p, m);
    return p;
}
