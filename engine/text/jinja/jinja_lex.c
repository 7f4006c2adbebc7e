/*
 * jinja_lex.c - the lexer of the Jinja interpreter, reproducing jinja2 3.1's
 * with trim_blocks and lstrip_blocks on, as transformers configures it:
 *   - newlines (\r\n, \r, \n) become \n and one trailing newline of the source
 *     is dropped (keep_trailing_newline=False);
 *   - `{%-`, `{{-`, `{#-` strip all whitespace before the tag (Python
 *     str.rstrip), `-%}`, `-}}`, `-#}` all whitespace after it;
 *   - lstrip_blocks: whitespace from the start of a line up to a `{%` or `{#`
 *     is dropped, unless the tag is `{%+`;
 *   - trim_blocks: the first newline after `%}` or `#}` is dropped, unless `+%}`;
 *   - inside a tag, `}}` / `%}` end it only when brackets are balanced;
 *   - `{% raw %}...{% endraw %}` is literal text;
 *   - string literals are unescaped like Python's unicode-escape codec.
 * Tokens point into the template arena (normalized source, decoded strings).
 */
#include "text/jinja/jinja_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define MAX_BRACKETS 200

static const struct {
    const char *s;
    int op;
} OPS[] = {
    {"//", TK_FLOORDIV}, {"**", TK_POW}, {"==", TK_EQ}, {"!=", TK_NE}, {">=", TK_GTEQ},
    {"<=", TK_LTEQ},     {"+", TK_ADD},  {"-", TK_SUB}, {"/", TK_DIV}, {"*", TK_MUL},
    {"%", TK_MOD},       {"~", TK_TILDE}, {"[", TK_LBRACKET}, {"]", TK_RBRACKET},
    {"(", TK_LPAREN},    {")", TK_RPAREN}, {"{", TK_LBRACE}, {"}", TK_RBRACE}, {">", TK_GT},
    {"<", TK_LT},        {"=", TK_ASSIGN}, {".", TK_DOT}, {":", TK_COLON}, {"|", TK_PIPE},
    {",", TK_COMMA},     {";", TK_SEMICOLON},
};

const char *jinja_op_text(int op)
{
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
        if (OPS[i].op == op)
            return OPS[i].s;
    return "?";
}

typedef struct {
    jarena *arena;
    const char *name;
    const char *src; /* normalized source (in the arena) */
    size_t len;
    jtok *toks;
    size_t ntoks, tokcap;
    jmp_buf jmp;
    char *err;
    size_t errlen;
} jlex;

_Noreturn __attribute__((format(printf, 3, 4))) static void lfail(jlex *p, int line, const char *fmt, ...)
{
    char msg[GLM_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    glm_err(p->err, p->errlen, "%s:%d: %s", p->name, line, msg);
    longjmp(p->jmp, 1);
}

static void *lalloc(jlex *p, size_t n)
{
    void *m = jarena_alloc(p->arena, n);
    GLM_ASSERT(m); /* the template arena has no limit */
    return m;
}

static void push_tok(jlex *p, jtok k)
{
    if (p->ntoks == p->tokcap) {
        p->tokcap = p->tokcap ? p->tokcap * 2 : 256;
        p->toks = glm_realloc(p->toks, p->tokcap * sizeof *p->toks);
    }
    p->toks[p->ntoks++] = k;
}

static int count_nl(const char *s, size_t n)
{
    int c = 0;
    for (size_t i = 0; i < n; i++)
        c += s[i] == '\n';
    return c;
}

/* Length of the Python-whitespace run at s[0..n). */
static size_t ws_span(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = glm_utf8_decode_valid(s + i, s + n, &cp);
        if (!py_isspace(cp))
            break;
        i += k;
    }
    return i;
}

/* Length of s[0..n) without its trailing Python whitespace. */
static size_t rstrip_len(const char *s, size_t n)
{
    size_t end = n;
    while (end > 0) {
        size_t st = (size_t)(glm_utf8_prev(s, s + end) - s);
        uint32_t cp;
        glm_utf8_decode_valid(s + st, s + end, &cp);
        if (!py_isspace(cp))
            break;
        end = st;
    }
    return end;
}

static bool all_space(const char *s, size_t n)
{
    return n > 0 && ws_span(s, n) == n;
}

static void emit_data(jlex *p, const char *s, size_t n, int line)
{
    if (n)
        push_tok(p, (jtok){.t = T_DATA, .p = s, .n = n, .line = line});
}

/* Applies `-` / lstrip_blocks to the text before a tag; returns its new length. */
static size_t strip_before(const char *text, size_t n, char sign, bool lstrip, bool line_starting)
{
    if (sign == '-')
        return rstrip_len(text, n);
    if (sign != '+' && lstrip) {
        size_t l = n;
        while (l > 0 && text[l - 1] != '\n')
            l--;
        if ((l > 0 || line_starting) && all_space(text + l, n - l))
            return l;
    }
    return n;
}

static bool starts(const char *s, size_t n, size_t i, const char *lit)
{
    size_t l = strlen(lit);
    return i + l <= n && memcmp(s + i, lit, l) == 0;
}

static bool is_name_start(unsigned char c)
{
    return c == '_' || isalpha(c) || c >= 0x80;
}

static bool is_name_char(unsigned char c)
{
    return c == '_' || isalnum(c) || c >= 0x80;
}

/* Matches jinja2's float_re at s; returns its length or 0. */
static size_t match_float(const char *s, size_t n)
{
    size_t i = 0;
#define DIGITS()                                                                                  \
    do {                                                                                          \
        size_t st_ = i;                                                                           \
        while (i < n && (isdigit((unsigned char)s[i]) ||                                          \
                         (s[i] == '_' && i > st_ && i + 1 < n && isdigit((unsigned char)s[i + 1])))) \
            i++;                                                                                  \
        if (i == st_)                                                                             \
            return 0;                                                                             \
    } while (0)
    DIGITS();
    bool frac = false;
    if (i + 1 < n && s[i] == '.' && isdigit((unsigned char)s[i + 1])) {
        i++;
        DIGITS();
        frac = true;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t save = i;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i < n && isdigit((unsigned char)s[i])) {
            DIGITS();
            return i;
        }
        i = save;
    }
    return frac ? i : 0;
#undef DIGITS
}

/* Matches jinja2's integer_re; stores the value. Returns length or 0. */
static size_t match_int(jlex *p, int line, const char *s, size_t n, int64_t *val)
{
    int base = 10;
    size_t i = 0;
    if (n >= 2 && s[0] == '0' && strchr("bBoOxX", s[1]) && s[1]) {
        base = (s[1] | 0x20) == 'b' ? 2 : (s[1] | 0x20) == 'o' ? 8 : 16;
        i = 2;
    } else if (!isdigit((unsigned char)s[0])) {
        return 0;
    }
    uint64_t v = 0;
    size_t ndig = 0;
    bool zero_only = base == 10 && s[0] == '0';
    while (i < n) {
        char c = s[i];
        int d;
        if (c == '_' && i + 1 < n && (ndig > 0 || base != 10)) {
            char c2 = s[i + 1];
            int d2 = isdigit((unsigned char)c2) ? c2 - '0' : isxdigit((unsigned char)c2) ? (c2 | 0x20) - 'a' + 10 : 99;
            if (d2 >= base || (zero_only && d2 != 0))
                break;
            i++;
            continue;
        }
        d = isdigit((unsigned char)c) ? c - '0' : isxdigit((unsigned char)c) ? (c | 0x20) - 'a' + 10 : 99;
        if (d >= base || (zero_only && d != 0))
            break;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base || v * base + d > (uint64_t)INT64_MAX)
            lfail(p, line, "integer literal too large");
        v = v * base + d;
        ndig++;
        i++;
    }
    if (ndig == 0)
        return 0;
    *val = (int64_t)v;
    return i;
}

/* Decodes a Python string literal body (unicode-escape) into the arena. */
static void decode_string(jlex *p, int line, const char *s, size_t n, const char **out,
                          size_t *outn)
{
    char *o = lalloc(p, n * 2 + 1);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\' || i + 1 >= n) {
            o[k++] = s[i++];
            continue;
        }
        char c = s[i + 1];
        i += 2;
        uint32_t cp;
        int want = 0;
        switch (c) {
        case '\n': continue;
        case '\\': o[k++] = '\\'; continue;
        case '\'': o[k++] = '\''; continue;
        case '"': o[k++] = '"'; continue;
        case 'a': o[k++] = 7; continue;
        case 'b': o[k++] = 8; continue;
        case 'f': o[k++] = 12; continue;
        case 'n': o[k++] = '\n'; continue;
        case 'r': o[k++] = '\r'; continue;
        case 't': o[k++] = '\t'; continue;
        case 'v': o[k++] = 11; continue;
        case 'x': want = 2; break;
        case 'u': want = 4; break;
        case 'U': want = 8; break;
        case 'N': lfail(p, line, "\\N{...} escapes are not supported");
        default:
            if (c >= '0' && c <= '7') {
                cp = (uint32_t)(c - '0');
                for (int d = 0; d < 2 && i < n && s[i] >= '0' && s[i] <= '7'; d++)
                    cp = cp * 8 + (uint32_t)(s[i++] - '0');
                k += glm_utf8_encode(cp, o + k);
                continue;
            }
            if ((unsigned char)c >= 0x80) {
                /* Python sees "\\" + backslashreplace(char): a backslash, then text */
                uint32_t ch;
                size_t used = glm_utf8_decode_valid(s + i - 1, s + n, &ch);
                i += used - 1;
                o[k++] = '\\';
                k += (size_t)sprintf(o + k, ch < 0x100 ? "x%02x" : ch < 0x10000 ? "u%04x" : "U%08x", ch);
                continue;
            }
            o[k++] = '\\';
            o[k++] = c;
            continue;
        }
        cp = 0;
        for (int d = 0; d < want; d++) {
            if (i >= n || !isxdigit((unsigned char)s[i]))
                lfail(p, line, "truncated \\%c escape in string literal", c);
            char h = s[i++];
            cp = cp * 16 + (uint32_t)(isdigit((unsigned char)h) ? h - '0' : (h | 0x20) - 'a' + 10);
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            lfail(p, line, "invalid \\%c escape in string literal", c);
        k += glm_utf8_encode(cp, o + k);
    }
    o[k] = 0;
    *out = o;
    *outn = k;
}

/* Tokenizes the inside of a {{ }} or {% %} tag starting at *pos and stops after
 * its end; at the end of the source it stops (the parser reports it). */
static void lex_tag(jlex *p, size_t *pos, int *line, bool block, bool *line_starting)
{
    const char *s = p->src;
    size_t n = p->len, i = *pos;
    char balance[MAX_BRACKETS];
    int nb = 0;
    while (i < n) {
        if (nb == 0) {
            if (block) {
                if (starts(s, n, i, "+%}")) {
                    push_tok(p, (jtok){.t = T_BLOCK_END, .line = *line});
                    i += 3;
                    *line_starting = false;
                    *pos = i;
                    return;
                }
                if (starts(s, n, i, "-%}")) {
                    push_tok(p, (jtok){.t = T_BLOCK_END, .line = *line});
                    i += 3;
                    size_t w = ws_span(s + i, n - i);
                    *line += count_nl(s + i, w);
                    *line_starting = w ? s[i + w - 1] == '\n' : false;
                    *pos = i + w;
                    return;
                }
                if (starts(s, n, i, "%}")) {
                    push_tok(p, (jtok){.t = T_BLOCK_END, .line = *line});
                    i += 2;
                    *line_starting = false;
                    if (i < n && s[i] == '\n') {
                        i++;
                        (*line)++;
                        *line_starting = true;
                    }
                    *pos = i;
                    return;
                }
            } else {
                if (starts(s, n, i, "-}}")) {
                    push_tok(p, (jtok){.t = T_VAR_END, .line = *line});
                    i += 3;
                    size_t w = ws_span(s + i, n - i);
                    *line += count_nl(s + i, w);
                    *line_starting = w ? s[i + w - 1] == '\n' : false;
                    *pos = i + w;
                    return;
                }
                if (starts(s, n, i, "}}")) {
                    push_tok(p, (jtok){.t = T_VAR_END, .line = *line});
                    *line_starting = false;
                    *pos = i + 2;
                    return;
                }
            }
        }
        size_t w = ws_span(s + i, n - i);
        if (w) {
            *line += count_nl(s + i, w);
            i += w;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        size_t m;
        int64_t iv;
        if ((i == 0 || s[i - 1] != '.') && (m = match_float(s + i, n - i)) > 0) {
            char buf[128];
            size_t k = 0;
            for (size_t j = 0; j < m && k + 1 < sizeof buf; j++)
                if (s[i + j] != '_')
                    buf[k++] = s[i + j];
            buf[k] = 0;
            push_tok(p, (jtok){.t = T_FLOAT, .f = strtod(buf, NULL), .line = *line});
            i += m;
        } else if (isdigit(c) && (m = match_int(p, *line, s + i, n - i, &iv)) > 0) {
            push_tok(p, (jtok){.t = T_INT, .i = iv, .line = *line});
            i += m;
        } else if (is_name_start(c)) {
            size_t j = i + 1;
            while (j < n && is_name_char((unsigned char)s[j]))
                j++;
            push_tok(p, (jtok){.t = T_NAME, .p = s + i, .n = j - i, .line = *line});
            i = j;
        } else if (c == '\'' || c == '"') {
            size_t j = i + 1;
            while (j < n && s[j] != (char)c) {
                if (s[j] == '\\' && j + 1 < n)
                    j++;
                j++;
            }
            if (j >= n)
                lfail(p, *line, "unexpected char %s, unterminated string literal",
                      c == '\'' ? "\"'\"" : "'\"'");
            jtok k = {.t = T_STRING, .line = *line};
            decode_string(p, *line, s + i + 1, j - i - 1, &k.p, &k.n);
            push_tok(p, k);
            *line += count_nl(s + i, j + 1 - i);
            i = j + 1;
        } else {
            int op = -1;
            size_t oplen = 0;
            for (size_t k = 0; k < sizeof OPS / sizeof OPS[0]; k++) {
                size_t l = strlen(OPS[k].s);
                if (i + l <= n && memcmp(s + i, OPS[k].s, l) == 0) {
                    op = OPS[k].op;
                    oplen = l;
                    break;
                }
            }
            if (op < 0) {
                uint32_t cp;
                glm_utf8_decode_valid(s + i, s + n, &cp);
                lfail(p, *line, "unexpected char U+%04X", (unsigned)cp);
            }
            if (op == TK_LPAREN || op == TK_LBRACKET || op == TK_LBRACE) {
                if (nb == MAX_BRACKETS)
                    lfail(p, *line, "brackets nested too deeply");
                balance[nb++] = op == TK_LPAREN ? ')' : op == TK_LBRACKET ? ']' : '}';
            } else if (op == TK_RPAREN || op == TK_RBRACKET || op == TK_RBRACE) {
                if (nb == 0)
                    lfail(p, *line, "unexpected '%s'", jinja_op_text(op));
                char want = balance[--nb];
                if (want != jinja_op_text(op)[0])
                    lfail(p, *line, "unexpected '%s', expected '%c'", jinja_op_text(op), want);
            }
            push_tok(p, (jtok){.t = T_OP, .op = op, .line = *line});
            i += oplen;
        }
    }
    *pos = i;
}

/* Finds "{%(-|+|)\s*NAME\s*" at s[i]; returns the index after it or 0. */
static size_t match_block_name(const char *s, size_t n, size_t i, const char *name, char *sign)
{
    if (i + 2 > n || s[i] != '{' || s[i + 1] != '%')
        return 0;
    i += 2;
    *sign = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        *sign = s[i++];
    i += ws_span(s + i, n - i);
    size_t l = strlen(name);
    if (i + l > n || memcmp(s + i, name, l) != 0)
        return 0;
    i += l;
    return i + ws_span(s + i, n - i);
}

static void lex(jlex *p)
{
    const char *s = p->src;
    size_t n = p->len, pos = 0;
    int line = 1;
    bool line_starting = true;
    while (pos < n) {
        size_t d = pos;
        while (d + 1 < n && !(s[d] == '{' && (s[d + 1] == '%' || s[d + 1] == '{' || s[d + 1] == '#')))
            d++;
        if (d + 1 >= n) {
            emit_data(p, s + pos, n - pos, line);
            line += count_nl(s + pos, n - pos);
            break;
        }
        char kind = s[d + 1];
        char sign = d + 2 < n && (s[d + 2] == '-' || s[d + 2] == '+') ? s[d + 2] : 0;
        size_t text_n = d - pos;
        int text_line = line;
        line += count_nl(s + pos, text_n);

        /* {% raw %} ... {% endraw %} */
        char rsign;
        size_t r = kind == '%' ? match_block_name(s, n, d, "raw", &rsign) : 0;
        if (r && (starts(s, n, r, "-%}") || starts(s, n, r, "%}"))) {
            emit_data(p, s + pos, strip_before(s + pos, text_n, rsign, true, line_starting), text_line);
            size_t body = r;
            if (s[body] == '-') {
                body += 3;
                body += ws_span(s + body, n - body);
            } else {
                body += 2;
            }
            line += count_nl(s + d, body - d);
            line_starting = body > 0 && s[body - 1] == '\n';
            /* find {% endraw %} */
            size_t e = body, after = 0;
            char esign = 0;
            for (; e + 1 < n; e++) {
                size_t k = match_block_name(s, n, e, "endraw", &esign);
                if (!k)
                    continue;
                if (starts(s, n, k, "+%}")) {
                    after = k + 3;
                } else if (starts(s, n, k, "-%}")) {
                    after = k + 3;
                    after += ws_span(s + after, n - after);
                } else if (starts(s, n, k, "%}")) {
                    after = k + 2;
                    if (after < n && s[after] == '\n')
                        after++;
                }
                if (after)
                    break;
            }
            if (!after)
                lfail(p, line, "missing end of raw directive");
            emit_data(p, s + body, strip_before(s + body, e - body, esign, true, line_starting), line);
            line += count_nl(s + body, after - body);
            line_starting = s[after - 1] == '\n';
            pos = after;
            continue;
        }

        text_n = strip_before(s + pos, text_n, sign, kind != '{', line_starting);
        emit_data(p, s + pos, text_n, text_line);
        pos = d + 2 + (sign ? 1 : 0);
        line_starting = false;
        if (kind == '#') {
            size_t q = pos;
            while (q + 1 < n && !(s[q] == '#' && s[q + 1] == '}'))
                q++;
            if (q + 1 >= n)
                lfail(p, line, "missing end of comment tag");
            size_t end = q + 2;
            if (q > pos && s[q - 1] == '-') {
                end += ws_span(s + end, n - end);
            } else if (q > pos && s[q - 1] == '+') {
                /* keep */
            } else if (end < n && s[end] == '\n') {
                end++;
            }
            line += count_nl(s + pos, end - pos);
            line_starting = s[end - 1] == '\n';
            pos = end;
        } else {
            bool block = kind == '%';
            push_tok(p, (jtok){.t = block ? T_BLOCK_BEGIN : T_VAR_BEGIN, .line = line});
            lex_tag(p, &pos, &line, block, &line_starting);
        }
    }
    push_tok(p, (jtok){.t = T_EOF, .line = line});
}

/* Newline normalization and the dropped trailing newline, into the arena. */
static void normalize(jlex *p, const char *src, size_t len)
{
    char *o = lalloc(p, len + 1);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            o[k++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
        } else {
            o[k++] = src[i];
        }
    }
    if (k && o[k - 1] == '\n')
        k--;
    o[k] = 0;
    p->src = o;
    p->len = k;
}

int jinja_lex(jarena *arena, const char *name, const char *src, size_t len, jtok **toks,
              size_t *ntoks, char *err, size_t errlen)
{
    jlex *volatile p = glm_calloc(1, sizeof *p);
    p->arena = arena;
    p->name = name;
    p->err = err;
    p->errlen = errlen;
    int rc = GLM_ERR;
    *toks = NULL;
    *ntoks = 0;
    if (setjmp(p->jmp) == 0) {
        if (!glm_utf8_valid(src, len))
            lfail(p, 1, "template is not valid UTF-8");
        if (memchr(src, 0, len))
            lfail(p, 1, "template contains a NUL byte");
        normalize(p, src, len);
        lex(p);
        *toks = p->toks;
        *ntoks = p->ntoks;
        p->toks = NULL;
        rc = GLM_OK;
    }
    free(p->toks);
    free(p);
    return rc;
}
