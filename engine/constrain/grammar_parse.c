/*
 * grammar_parse.c - GBNF text -> compiled grammar (glm_grammar_parse; the
 * layout is in grammar_internal.h). llama.cpp's notation: rules, literals,
 * character classes, groups, repetitions. Groups and repetitions become
 * generated rules, as in llama.cpp:
 *   S{m,n}  ->  S .. S (m times) S_k      S_k ::= S S_{k-1} | ""  (k = n-m .. 1)
 *   S{m,}   ->  S .. S (m times) S'       S'  ::= S S' | ""
 * (S* = S{0,}, S+ = S{1,}, S? = S{0,1}). Equal character sets share one id.
 * Then the whole grammar is checked: every rule defined, no left recursion
 * (grammar_check.c), a start rule whose first parse stacks fit the matcher's
 * limits (grammar_match.c).
 *
 * Limits (hostile grammars from requests): the GLM_GRAMMAR_MAX_* macros in
 * grammar.h. Errors name the line: "grammar line N: ...".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/grammar_internal.h"
#include "core/strmap.h"
#include "core/utf8.h"
#include "core/util.h"

void glm_grammar_free(glm_grammar *g)
{
    if (!g)
        return;
    free(g->elems);
    free(g->rule_alt);
    free(g->rule_nalt);
    free(g->alts);
    free(g->sets);
    free(g->ranges);
    free(g);
}

/* --- parser ------------------------------------------------------------------ */

typedef struct {
    const char *name; /* into the text; a generated rule has its user rule's name */
    uint32_t name_len;
    int generated, defined;
    size_t def_pos, ref_pos; /* byte offsets: definition (or group), first reference */
    uint32_t alt_off, n_alts;
} prule;

typedef struct {
    const char *text;
    size_t len;
    char *err;
    size_t errlen;
    int failed;
    uint32_t *elems;
    size_t n_elems, cap_elems;
    size_t pending; /* elements held in the buffers of rules still being parsed */
    uint32_t *alts;
    size_t n_alts, cap_alts;
    prule *rules;
    size_t n_rules, cap_rules;
    charset *sets;
    size_t n_sets, cap_sets;
    cp_range *ranges;
    size_t n_ranges, cap_ranges;
    glm_strmap sym; /* name -> rule id (user rules only) */
    uint32_t *set_hash; /* charset dedup: set id + 1 */
    size_t set_hash_cap;
    uint32_t any_set; /* '.' */
    uint32_t cur_rule;
    int depth;
} parser;

static size_t line_of(const parser *p, size_t pos)
{
    size_t line = 1;
    for (size_t i = 0; i < pos && i < p->len; i++)
        line += p->text[i] == '\n';
    return line;
}

static void perr(parser *p, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void perr(parser *p, size_t pos, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = 1;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    glm_err(p->err, p->errlen, "grammar line %zu: %s", line_of(p, pos), msg);
}

/* What is at pos, for messages. */
static const char *describe(const parser *p, size_t pos, char *buf, size_t n)
{
    if (pos >= p->len)
        snprintf(buf, n, "end of text");
    else if (p->text[pos] == '\n' || p->text[pos] == '\r')
        snprintf(buf, n, "end of line");
    else if (p->text[pos] > 32 && p->text[pos] < 127)
        snprintf(buf, n, "'%c'", p->text[pos]);
    else
        snprintf(buf, n, "byte 0x%02X", (unsigned char)p->text[pos]);
    return buf;
}

static size_t skip_space(const parser *p, size_t pos, int newline_ok)
{
    while (pos < p->len) {
        char c = p->text[pos];
        if (c == ' ' || c == '\t' || (newline_ok && (c == '\n' || c == '\r'))) {
            pos++;
        } else if (c == '#') {
            while (pos < p->len && p->text[pos] != '\n' && p->text[pos] != '\r')
                pos++;
        } else {
            break;
        }
    }
    return pos;
}

static int is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static uint32_t new_rule(parser *p, const char *name, size_t name_len, int generated, size_t pos)
{
    prule r = {.name = name, .name_len = (uint32_t)name_len, .generated = generated, .def_pos = pos,
               .ref_pos = pos};
    PUSH(p->rules, p->n_rules, p->cap_rules, r);
    return (uint32_t)(p->n_rules - 1);
}

static const char *rule_name(const void *ctx, uint32_t id, size_t *n)
{
    const prule *r = &((const parser *)ctx)->rules[id];
    *n = r->name_len;
    return r->name;
}

/* The rule named name (created, undefined, when new); pos is where it is named. */
static uint32_t symbol(parser *p, const char *name, size_t n, size_t pos)
{
    uint32_t id = (uint32_t)p->n_rules, got = glm_strmap_put(&p->sym, name, n, id, rule_name, p);
    return got != id ? got : new_rule(p, name, n, 0, pos);
}

static void buf_push(parser *p, u32vec *b, uint32_t e, size_t pos)
{
    if (p->failed)
        return;
    if (p->n_elems + p->pending + 1 > GLM_GRAMMAR_MAX_ELEMS) {
        perr(p, pos, "grammar too large: more than %u elements after expanding repetitions",
             (unsigned)GLM_GRAMMAR_MAX_ELEMS);
        return;
    }
    PUSH(b->v, b->n, b->cap, e);
    p->pending++;
}

static void buf_truncate(parser *p, u32vec *b, size_t n)
{
    p->pending -= b->n - n;
    b->n = n;
}

static void buf_release(parser *p, u32vec *b)
{
    p->pending -= b->n;
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}

/* Moves the alternatives in b (each closed by END) into the grammar as rule r. */
static void add_rule(parser *p, uint32_t r, const u32vec *b)
{
    GROW(p->elems, p->cap_elems, p->n_elems + b->n);
    p->rules[r].alt_off = (uint32_t)p->n_alts;
    p->rules[r].n_alts = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (i == 0 || E_TYPE(b->v[i - 1]) == E_END) {
            PUSH(p->alts, p->n_alts, p->cap_alts, (uint32_t)(p->n_elems + i));
            p->rules[r].n_alts++;
        }
    }
    memcpy(p->elems + p->n_elems, b->v, b->n * sizeof *b->v);
    p->n_elems += b->n;
    p->rules[r].defined = 1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One character of a literal or class (an escape or one UTF-8 character). */
static size_t parse_char(parser *p, size_t pos, uint32_t *cp)
{
    const char *t = p->text;
    if (t[pos] == '\\') {
        if (pos + 1 >= p->len) {
            perr(p, pos, "escape at end of text");
            return p->len;
        }
        char c = t[pos + 1];
        int nhex = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
        if (nhex) {
            uint32_t v = 0;
            for (int i = 0; i < nhex; i++) {
                int h = pos + 2 + (size_t)i < p->len ? hexval(t[pos + 2 + i]) : -1;
                if (h < 0) {
                    perr(p, pos, "\\%c needs %d hex digits", c, nhex);
                    return p->len;
                }
                v = v << 4 | (uint32_t)h;
            }
            if (v > CP_MAX) {
                perr(p, pos, "\\U%08X is past U+10FFFF", v);
                return p->len;
            }
            *cp = v;
            return pos + 2 + (size_t)nhex;
        }
        switch (c) {
        case 'n': *cp = '\n'; break;
        case 'r': *cp = '\r'; break;
        case 't': *cp = '\t'; break;
        case '\\': case '"': case '\'': case '[': case ']': *cp = (unsigned char)c; break;
        default: {
            char d[32];
            perr(p, pos, "unknown escape: backslash then %s", describe(p, pos + 1, d, sizeof d));
            return p->len;
        }
        }
        return pos + 2;
    }
    int n = glm_utf8_seq(t + pos, p->len - pos, cp);
    if (n <= 0) {
        perr(p, pos, "invalid UTF-8");
        return p->len;
    }
    return pos + (size_t)n;
}

static int range_cmp(const void *a, const void *b)
{
    const cp_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Adds the set of r[0..n) (negated when neg) and returns its id; equal sets
 * share one id. r is sorted and rewritten in place; it has room for n + 2. */
static uint32_t add_set(parser *p, cp_range *r, size_t n, int neg)
{
    qsort(r, n, sizeof *r, range_cmp);
    size_t m = 0; /* merge overlapping and adjacent ranges */
    for (size_t i = 0; i < n; i++) {
        if (m && r[i].lo <= r[m - 1].hi + 1) {
            if (r[i].hi > r[m - 1].hi)
                r[m - 1].hi = r[i].hi;
        } else {
            r[m++] = r[i];
        }
    }
    if (neg) { /* complement over [0, CP_MAX]: at most m + 1 gaps */
        cp_range *c = glm_malloc((m + 1) * sizeof *c);
        size_t k = 0;
        uint32_t next = 0;
        for (size_t i = 0; i < m; i++) {
            if (r[i].lo > next)
                c[k++] = (cp_range){next, r[i].lo - 1};
            next = r[i].hi + 1;
        }
        if (next <= CP_MAX)
            c[k++] = (cp_range){next, CP_MAX};
        memcpy(r, c, k * sizeof *c);
        free(c);
        m = k;
    }
    /* drop surrogates: a range around them splits in two (room for one more) */
    size_t k = 0;
    cp_range *o = glm_malloc((m + 1) * sizeof *o);
    for (size_t i = 0; i < m; i++) {
        cp_range x = r[i];
        if (x.hi < 0xD800 || x.lo > 0xDFFF) {
            o[k++] = x;
            continue;
        }
        if (x.lo < 0xD800)
            o[k++] = (cp_range){x.lo, 0xD7FF};
        if (x.hi > 0xDFFF)
            o[k++] = (cp_range){0xE000, x.hi};
    }
    uint32_t h = 0x9747b28cu ^ (uint32_t)k;
    for (size_t i = 0; i < k; i++)
        h = glm_mix32(h ^ o[i].lo) ^ glm_mix32(o[i].hi + 0x51u);
    if (2 * (p->n_sets + 1) > p->set_hash_cap) {
        size_t nc = p->set_hash_cap ? 2 * p->set_hash_cap : 64;
        free(p->set_hash);
        p->set_hash = glm_calloc(nc, sizeof *p->set_hash);
        p->set_hash_cap = nc;
        for (size_t s = 0; s < p->n_sets; s++) {
            const charset *cs = &p->sets[s];
            uint32_t hh = 0x9747b28cu ^ cs->n;
            for (uint32_t i = 0; i < cs->n; i++)
                hh = glm_mix32(hh ^ p->ranges[cs->off + i].lo) ^ glm_mix32(p->ranges[cs->off + i].hi + 0x51u);
            size_t slot = hh & (nc - 1);
            while (p->set_hash[slot])
                slot = (slot + 1) & (nc - 1);
            p->set_hash[slot] = (uint32_t)s + 1;
        }
    }
    size_t slot = h & (p->set_hash_cap - 1);
    while (p->set_hash[slot]) {
        const charset *cs = &p->sets[p->set_hash[slot] - 1];
        if (cs->n == k && memcmp(p->ranges + cs->off, o, k * sizeof *o) == 0) {
            free(o);
            return p->set_hash[slot] - 1;
        }
        slot = (slot + 1) & (p->set_hash_cap - 1);
    }
    charset cs = {.off = (uint32_t)p->n_ranges, .n = (uint32_t)k};
    for (size_t i = 0; i < k; i++) {
        for (uint32_t c = o[i].lo; c <= o[i].hi && c < 128; c++)
            cs.ascii[c >> 6] |= 1ull << (c & 63);
        PUSH(p->ranges, p->n_ranges, p->cap_ranges, o[i]);
    }
    free(o);
    PUSH(p->sets, p->n_sets, p->cap_sets, cs);
    p->set_hash[slot] = (uint32_t)p->n_sets;
    return (uint32_t)p->n_sets - 1;
}

/* Parses [...] at pos into one element. */
static size_t parse_class(parser *p, u32vec *b, size_t pos)
{
    size_t at = pos;
    pos++;
    int neg = 0;
    if (pos < p->len && p->text[pos] == '^') {
        neg = 1;
        pos++;
    }
    cp_range *r = NULL;
    size_t n = 0, cap = 0;
    while (!p->failed && pos < p->len && p->text[pos] != ']') {
        uint32_t lo, hi;
        pos = parse_char(p, pos, &lo);
        hi = lo;
        if (!p->failed && pos + 1 < p->len && p->text[pos] == '-' && p->text[pos + 1] != ']') {
            size_t rp = pos;
            pos = parse_char(p, pos + 1, &hi);
            if (!p->failed && hi < lo)
                perr(p, rp, "character class range U+%04X-U+%04X is reversed", lo, hi);
        }
        PUSH(r, n, cap, ((cp_range){lo, hi}));
    }
    if (!p->failed && pos >= p->len)
        perr(p, at, "unterminated character class");
    if (p->failed) {
        free(r);
        return p->len;
    }
    if (!neg && n == 1 && r[0].lo == r[0].hi) {
        buf_push(p, b, E_MAKE(E_CHAR, r[0].lo), at);
    } else {
        GROW(r, cap, n + 2);
        buf_push(p, b, E_MAKE(E_SET, add_set(p, r, n, neg)), at);
    }
    free(r);
    return pos + 1;
}

/* Applies x{min,max} (max < 0: unbounded) to b[last..], llama.cpp's rewrite. */
static void repeat(parser *p, u32vec *b, size_t last, size_t pos, long min, long max)
{
    if (last == b->n) {
        char d[32];
        perr(p, pos, "%s has nothing before it to repeat", describe(p, pos, d, sizeof d));
        return;
    }
    size_t n = b->n - last;
    uint32_t *prev = glm_malloc(n * sizeof *prev);
    memcpy(prev, b->v + last, n * sizeof *prev);
    if (min == 0)
        buf_truncate(p, b, last);
    for (long i = 1; i < min && !p->failed; i++)
        for (size_t j = 0; j < n; j++)
            buf_push(p, b, prev[j], pos);
    long n_opt = max < 0 ? 1 : max - min;
    uint32_t last_rec = 0;
    for (long i = 0; i < n_opt && !p->failed; i++) {
        const prule *cur = &p->rules[p->cur_rule];
        uint32_t rec = new_rule(p, cur->name, cur->name_len, 1, pos);
        u32vec rb = {0};
        for (size_t j = 0; j < n; j++)
            buf_push(p, &rb, prev[j], pos);
        if (i > 0 || max < 0)
            buf_push(p, &rb, E_MAKE(E_REF, max < 0 ? rec : last_rec), pos);
        buf_push(p, &rb, E_END, pos);
        buf_push(p, &rb, E_END, pos);
        if (!p->failed)
            add_rule(p, rec, &rb);
        buf_release(p, &rb);
        last_rec = rec;
    }
    if (n_opt > 0)
        buf_push(p, b, E_MAKE(E_REF, last_rec), pos);
    free(prev);
}

static size_t parse_count(parser *p, size_t pos, long *v)
{
    long x = 0;
    size_t at = pos;
    while (pos < p->len && is_digit(p->text[pos])) {
        x = x * 10 + (p->text[pos] - '0');
        if (x > GLM_GRAMMAR_MAX_REPEAT) {
            perr(p, at, "repetition count above %d", GLM_GRAMMAR_MAX_REPEAT);
            return p->len;
        }
        pos++;
    }
    *v = x;
    return pos;
}

static size_t parse_alternates(parser *p, uint32_t rule, size_t pos, int nested);

static size_t parse_sequence(parser *p, u32vec *b, size_t pos, int nested)
{
    size_t last = b->n; /* where the latest item starts (what a repetition repeats) */
    while (!p->failed && pos < p->len) {
        char c = p->text[pos];
        if (c == '"') {
            size_t at = pos;
            last = b->n;
            pos++;
            while (!p->failed && pos < p->len && p->text[pos] != '"') {
                uint32_t cp;
                pos = parse_char(p, pos, &cp);
                buf_push(p, b, E_MAKE(E_CHAR, cp), at);
            }
            if (!p->failed && pos >= p->len)
                perr(p, at, "unterminated literal");
            if (p->failed)
                break;
            pos = skip_space(p, pos + 1, nested);
        } else if (c == '[') {
            last = b->n;
            pos = parse_class(p, b, pos);
            pos = skip_space(p, pos, nested);
        } else if (is_word(c)) {
            last = b->n;
            size_t e = pos;
            while (e < p->len && is_word(p->text[e]))
                e++;
            uint32_t r = symbol(p, p->text + pos, e - pos, pos);
            buf_push(p, b, E_MAKE(E_REF, r), pos);
            pos = skip_space(p, e, nested);
        } else if (c == '(') {
            size_t at = pos;
            last = b->n;
            if (p->depth >= GLM_GRAMMAR_MAX_NEST) {
                perr(p, at, "groups nested more than %d deep", GLM_GRAMMAR_MAX_NEST);
                break;
            }
            const prule *cur = &p->rules[p->cur_rule];
            uint32_t sub = new_rule(p, cur->name, cur->name_len, 1, at);
            p->depth++;
            pos = parse_alternates(p, sub, skip_space(p, pos + 1, 1), 1);
            p->depth--;
            if (p->failed)
                break;
            if (pos >= p->len || p->text[pos] != ')') {
                char d[32];
                perr(p, pos, "expected ')' to close the group of line %zu, found %s", line_of(p, at),
                     describe(p, pos, d, sizeof d));
                break;
            }
            buf_push(p, b, E_MAKE(E_REF, sub), at);
            pos = skip_space(p, pos + 1, nested);
        } else if (c == '.') {
            last = b->n;
            buf_push(p, b, E_MAKE(E_SET, p->any_set), pos);
            pos = skip_space(p, pos + 1, nested);
        } else if (c == '*' || c == '+' || c == '?') {
            repeat(p, b, last, pos, c == '+', c == '?' ? 1 : -1);
            pos = skip_space(p, pos + 1, nested);
        } else if (c == '{') {
            size_t at = pos;
            long min, max = -1;
            char d[32];
            pos = skip_space(p, pos + 1, nested);
            if (pos >= p->len || !is_digit(p->text[pos])) {
                perr(p, pos, "expected a number after '{', found %s", describe(p, pos, d, sizeof d));
                break;
            }
            pos = skip_space(p, parse_count(p, pos, &min), nested);
            if (p->failed)
                break;
            if (pos < p->len && p->text[pos] == '}') {
                max = min;
            } else if (pos < p->len && p->text[pos] == ',') {
                pos = skip_space(p, pos + 1, nested);
                if (pos < p->len && is_digit(p->text[pos])) {
                    pos = skip_space(p, parse_count(p, pos, &max), nested);
                    if (p->failed)
                        break;
                }
                if (pos >= p->len || p->text[pos] != '}') {
                    perr(p, pos, "expected '}' in repetition, found %s", describe(p, pos, d, sizeof d));
                    break;
                }
            } else {
                perr(p, pos, "expected ',' or '}' in repetition, found %s", describe(p, pos, d, sizeof d));
                break;
            }
            if (max >= 0 && max < min) {
                perr(p, at, "repetition {%ld,%ld} has its maximum below its minimum", min, max);
                break;
            }
            repeat(p, b, last, at, min, max);
            pos = skip_space(p, pos + 1, nested);
        } else {
            break;
        }
    }
    return pos;
}

static size_t parse_alternates(parser *p, uint32_t rule, size_t pos, int nested)
{
    u32vec b = {0};
    pos = parse_sequence(p, &b, pos, nested);
    while (!p->failed && pos < p->len && p->text[pos] == '|') {
        buf_push(p, &b, E_END, pos);
        pos = skip_space(p, pos + 1, 1);
        pos = parse_sequence(p, &b, pos, nested);
    }
    buf_push(p, &b, E_END, pos);
    if (!p->failed)
        add_rule(p, rule, &b);
    buf_release(p, &b);
    return pos;
}

static size_t parse_rule(parser *p, size_t pos)
{
    char d[32];
    size_t e = pos;
    while (e < p->len && is_word(p->text[e]))
        e++;
    if (e == pos) {
        perr(p, pos, "expected a rule name, found %s", describe(p, pos, d, sizeof d));
        return p->len;
    }
    uint32_t r = symbol(p, p->text + pos, e - pos, pos);
    prule *rr = &p->rules[r];
    if (rr->defined) {
        perr(p, pos, "rule '%.*s' is defined twice (first on line %zu)", (int)GLM_MIN(rr->name_len, 64),
             rr->name, line_of(p, rr->def_pos));
        return p->len;
    }
    rr->def_pos = pos;
    p->cur_rule = r;
    size_t q = skip_space(p, e, 0);
    if (q + 3 > p->len || memcmp(p->text + q, "::=", 3) != 0) {
        perr(p, q, "expected '::=' after rule name '%.*s', found %s", (int)GLM_MIN(e - pos, 64),
             p->text + pos, describe(p, q, d, sizeof d));
        return p->len;
    }
    q = parse_alternates(p, r, skip_space(p, q + 3, 1), 0);
    if (p->failed)
        return p->len;
    if (q < p->len) {
        if (p->text[q] == '\r')
            q += q + 1 < p->len && p->text[q + 1] == '\n' ? 2 : 1;
        else if (p->text[q] == '\n')
            q++;
        else {
            perr(p, q, "unexpected %s in rule '%.*s'", describe(p, q, d, sizeof d),
                 (int)GLM_MIN(e - pos, 64), p->text + pos);
            return p->len;
        }
    }
    return skip_space(p, q, 1);
}

static void parser_free(parser *p)
{
    free(p->elems);
    free(p->alts);
    free(p->rules);
    free(p->sets);
    free(p->ranges);
    glm_strmap_free(&p->sym);
    free(p->set_hash);
}

glm_grammar *glm_grammar_parse(const char *text, size_t len, const char *start, char *err, size_t errlen)
{
    if (!text)
        len = 0;
    if (!start)
        start = "root";
    if (len > GLM_GRAMMAR_MAX_TEXT) {
        glm_err(err, errlen, "grammar line 1: grammar text is %zu bytes, more than the %zu allowed", len,
                (size_t)GLM_GRAMMAR_MAX_TEXT);
        return NULL;
    }
    parser p = {.text = text, .len = len, .err = err, .errlen = errlen};
    const char *nul = len ? memchr(text, 0, len) : NULL;
    if (nul) {
        perr(&p, (size_t)(nul - text), "NUL byte in grammar text");
        return NULL;
    }
    {
        cp_range any[3] = {{0, CP_MAX}};
        p.any_set = add_set(&p, any, 1, 0);
    }
    size_t pos = skip_space(&p, 0, 1);
    while (!p.failed && pos < len)
        pos = parse_rule(&p, pos);
    for (size_t r = 0; r < p.n_rules && !p.failed; r++)
        if (!p.rules[r].defined)
            perr(&p, p.rules[r].ref_pos, "undefined rule '%.*s'", (int)GLM_MIN(p.rules[r].name_len, 64),
                 p.rules[r].name);
    uint32_t start_id = UINT32_MAX;
    if (!p.failed) {
        size_t sl = strlen(start);
        int64_t id = glm_strmap_get(&p.sym, start, sl, rule_name, &p);
        if (id >= 0)
            start_id = (uint32_t)id;
        else {
            glm_err(err, errlen, "grammar line %zu: no rule named '%.64s' (the start rule)",
                    line_of(&p, len), start);
            p.failed = 1;
        }
    }
    if (p.failed) {
        parser_free(&p);
        return NULL;
    }
    glm_grammar *g = glm_calloc(1, sizeof *g);
    g->elems = p.elems;
    g->n_elems = (uint32_t)p.n_elems;
    g->alts = p.alts;
    g->n_alts = (uint32_t)p.n_alts;
    g->sets = p.sets;
    g->n_sets = (uint32_t)p.n_sets;
    g->ranges = p.ranges;
    g->n_ranges = (uint32_t)p.n_ranges;
    g->n_rules = (uint32_t)p.n_rules;
    g->rule_alt = glm_malloc((size_t)g->n_rules * sizeof *g->rule_alt);
    g->rule_nalt = glm_malloc((size_t)g->n_rules * sizeof *g->rule_nalt);
    for (uint32_t r = 0; r < g->n_rules; r++) {
        g->rule_alt[r] = p.rules[r].alt_off;
        g->rule_nalt[r] = p.rules[r].n_alts;
    }
    g->start = start_id;
    p.elems = NULL;
    p.alts = NULL;
    p.sets = NULL;
    p.ranges = NULL;

    uint32_t lr = grammar_left_recursive_rule(g);
    if (lr != UINT32_MAX) {
        const prule *r = &p.rules[lr];
        perr(&p, r->def_pos, "left recursion: %s'%.*s' can reach itself without consuming input",
             r->generated ? "a group or repetition of rule " : "rule ", (int)GLM_MIN(r->name_len, 64),
             r->name);
    } else if (!grammar_start_fits(g, start_id)) {
        perr(&p, p.rules[start_id].def_pos,
             "the start rule '%.64s' is too ambiguous: more than %d parse stacks or %u expansions", start,
             GLM_GRAMMAR_MAX_STACKS, GRAMMAR_MAX_VISIT);
    }
    parser_free(&p);
    if (p.failed) {
        glm_grammar_free(g);
        return NULL;
    }
    return g;
}

