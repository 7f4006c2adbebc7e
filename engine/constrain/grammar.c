/*
 * grammar.c - GBNF grammars for constrained decoding: parser, matcher, token
 * mask (see grammar.h for the notation and the contract).
 *
 * Compiled form. A flat array of elements; every rule is a list of
 * alternatives, every alternative a run of elements closed by END. An element
 * is one code point (CHAR), a set of code points (SET: sorted disjoint ranges
 * with negation and '.' resolved and surrogates removed), or a reference to a
 * rule (REF). Groups and repetitions become generated rules, as in llama.cpp:
 *   S{m,n}  ->  S .. S (m times) S_k      S_k ::= S S_{k-1} | ""  (k = n-m .. 1)
 *   S{m,}   ->  S .. S (m times) S'       S'  ::= S S' | ""
 * (S* = S{0,}, S+ = S{1,}, S? = S{0,1}).
 *
 * Parse stacks. A stack is a list of element positions: its top is the next
 * element to match, the rest are where to continue when the current
 * alternative ends. Stacks are kept expanded: the top is a CHAR or SET (a
 * REF on top is replaced by each alternative of its rule), or the stack is
 * empty, which means the sentence may end. A matcher holds the set of stacks
 * consistent with the bytes so far plus a pending partial UTF-8 character.
 *
 * Workspace. Matching runs in a workspace (ws) where stacks are hash-consed
 * persistent lists (node = (top position, parent node); node 0 is the empty
 * stack), so push and pop are O(1) and equal stacks have one id, and where
 * states (a sorted set of stack ids + the partial character) are hash-consed
 * too. Transitions state x byte -> state are cached per state (a short list,
 * then a 256-entry row), which makes the matcher a lazily built DFA: the mask
 * walks the vocabulary trie in preorder and pays one cached lookup per trie
 * node once a state has been seen (inside a JSON string almost every byte
 * leads back to the same state). A non-ASCII code point whose membership in
 * every stack top's set equals that of an earlier one gives the same result,
 * so each state also caches the last such step with the interval of code
 * points it holds for. When a workspace outgrows its budget it is rebuilt
 * from the states still in use (the DFS path), which bounds memory without
 * changing any result.
 *
 * Limits (hostile grammars from requests): see the GLM_GRAMMAR_MAX_* macros in
 * grammar.h. A step whose result would exceed GLM_GRAMMAR_MAX_STACKS stacks,
 * visit more than MAX_VISIT stack nodes while expanding, or hold more than
 * MAX_DEPTH_SUM positions in all is refused (the byte is rejected); mask and
 * accept apply the same rule, so they always agree.
 *
 * Cost: a mask over a 154,880-token vocabulary takes about 2.5 ms where
 * nearly every token is allowed (inside a string) and microseconds where few
 * are; build/glm-bench-grammar measures it (docs/performance.md).
 */
#include "constrain/grammar.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/strmap.h"
#include "core/utf8.h"
#include "core/util.h"

/* --- elements and the compiled grammar ------------------------------------- */

enum { E_END = 0, E_CHAR = 1, E_SET = 2, E_REF = 3 };
#define E_TYPE(e) ((e) & 3u)
#define E_VAL(e) ((e) >> 2)
#define E_MAKE(t, v) ((uint32_t)(v) << 2 | (uint32_t)(t))

#define CP_MAX GLM_UTF8_MAX_CP
#define IS_SURROGATE(c) ((c) >= 0xD800u && (c) <= 0xDFFFu)

typedef struct {
    uint32_t lo, hi; /* inclusive */
} cp_range;

typedef struct {
    uint32_t off, n;   /* ranges[off .. off + n): sorted, disjoint, no surrogates */
    uint64_t ascii[2]; /* membership of code points 0..127 */
} charset;

struct glm_grammar {
    uint32_t *elems; /* [n_elems] */
    uint32_t n_elems;
    uint32_t *rule_alt;  /* [n_rules]: first alternative of rule r in alts */
    uint32_t *rule_nalt; /* [n_rules]: number of alternatives */
    uint32_t n_rules;
    uint32_t *alts; /* [n_alts]: element index where each alternative starts */
    uint32_t n_alts;
    charset *sets; /* [n_sets] */
    uint32_t n_sets;
    cp_range *ranges; /* [n_ranges] */
    uint32_t n_ranges;
    uint32_t start; /* start rule */
};

static int set_has(const glm_grammar *g, uint32_t id, uint32_t c)
{
    const charset *s = &g->sets[id];
    if (c < 128)
        return (int)((s->ascii[c >> 6] >> (c & 63)) & 1);
    const cp_range *r = g->ranges + s->off;
    uint32_t lo = 0, hi = s->n;
    while (lo < hi) { /* first range with r.hi >= c */
        uint32_t mid = (lo + hi) / 2;
        if (r[mid].hi < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n && r[lo].lo <= c;
}

/* 1 when set id holds some code point of [lo, hi]. */
static int set_meets(const glm_grammar *g, uint32_t id, uint32_t lo, uint32_t hi)
{
    const charset *s = &g->sets[id];
    const cp_range *r = g->ranges + s->off;
    uint32_t a = 0, b = s->n;
    while (a < b) {
        uint32_t mid = (a + b) / 2;
        if (r[mid].hi < lo)
            a = mid + 1;
        else
            b = mid;
    }
    return a < s->n && r[a].lo <= hi;
}

/* Narrows [*lo, *hi] (which holds c) to an interval around c on which set id
 * gives the same answer as for c. */
static void set_narrow(const glm_grammar *g, uint32_t id, uint32_t c, uint32_t *lo, uint32_t *hi)
{
    const charset *s = &g->sets[id];
    const cp_range *r = g->ranges + s->off;
    uint32_t a = 0, b = s->n;
    while (a < b) {
        uint32_t mid = (a + b) / 2;
        if (r[mid].hi < c)
            a = mid + 1;
        else
            b = mid;
    }
    uint32_t l, h; /* the range or gap holding c */
    if (a < s->n && r[a].lo <= c) {
        l = r[a].lo;
        h = r[a].hi;
    } else {
        l = a > 0 ? r[a - 1].hi + 1 : 0;
        h = a < s->n ? r[a].lo - 1 : UINT32_MAX;
    }
    if (l > *lo)
        *lo = l;
    if (h < *hi)
        *hi = h;
}

/* 1 when element e (CHAR or SET) accepts code point c. */
static inline int elem_has(const glm_grammar *g, uint32_t e, uint32_t c)
{
    return E_TYPE(e) == E_CHAR ? E_VAL(e) == c : set_has(g, E_VAL(e), c);
}

/* 1 when element e (CHAR or SET) accepts some code point of [lo, hi]. */
static int elem_meets(const glm_grammar *g, uint32_t e, uint32_t lo, uint32_t hi)
{
    if (E_TYPE(e) == E_CHAR)
        return E_VAL(e) >= lo && E_VAL(e) <= hi;
    return set_meets(g, E_VAL(e), lo, hi);
}

/* 1 when element e (CHAR or SET) accepts some valid code point. */
static int elem_any(const glm_grammar *g, uint32_t e)
{
    if (E_TYPE(e) == E_CHAR)
        return E_VAL(e) <= CP_MAX && !IS_SURROGATE(E_VAL(e));
    return g->sets[E_VAL(e)].n > 0;
}

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

/* --- growable arrays --------------------------------------------------------- */

#define GROW(arr, cap, need)                                                      \
    do {                                                                           \
        if ((size_t)(need) > (size_t)(cap)) {                                      \
            size_t nc_ = (cap) ? (size_t)(cap) : 16;                               \
            while (nc_ < (size_t)(need))                                           \
                nc_ *= 2;                                                          \
            (arr) = glm_realloc((arr), nc_ * sizeof *(arr));                       \
            (cap) = nc_;                                                           \
        }                                                                          \
    } while (0)

#define PUSH(arr, n, cap, val)                                                     \
    do {                                                                           \
        GROW(arr, cap, (size_t)(n) + 1);                                           \
        (arr)[(n)++] = (val);                                                      \
    } while (0)

/* --- parser ------------------------------------------------------------------ */

typedef struct {
    const char *name; /* into the text; a generated rule has its user rule's name */
    uint32_t name_len;
    int generated, defined;
    size_t def_pos, ref_pos; /* byte offsets: definition (or group), first reference */
    uint32_t alt_off, n_alts;
} prule;

typedef struct {
    uint32_t *v;
    size_t n, cap;
} u32vec;

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

/* Rules that can match the empty string (linear: counts per alternative). */
static uint8_t *nullable_rules(const glm_grammar *g)
{
    uint8_t *nul = glm_calloc(g->n_rules, 1);
    uint32_t *cnt = glm_malloc((size_t)g->n_alts * sizeof *cnt);
    uint32_t *alt_rule = glm_malloc((size_t)g->n_alts * sizeof *alt_rule);
    uint32_t *occ_off = glm_calloc((size_t)g->n_rules + 1, sizeof *occ_off);
    for (uint32_t r = 0; r < g->n_rules; r++)
        for (uint32_t a = g->rule_alt[r]; a < g->rule_alt[r] + g->rule_nalt[r]; a++)
            alt_rule[a] = r;
    /* count references per alternative; an alternative with a character never counts down */
    for (uint32_t a = 0; a < g->n_alts; a++) {
        uint32_t c = 0;
        for (uint32_t i = g->alts[a]; E_TYPE(g->elems[i]) != E_END; i++) {
            if (E_TYPE(g->elems[i]) != E_REF) {
                c = UINT32_MAX;
                break;
            }
            c++;
        }
        cnt[a] = c;
        if (c != UINT32_MAX)
            for (uint32_t i = g->alts[a]; E_TYPE(g->elems[i]) != E_END; i++)
                occ_off[E_VAL(g->elems[i]) + 1]++;
    }
    for (uint32_t r = 0; r < g->n_rules; r++)
        occ_off[r + 1] += occ_off[r];
    uint32_t *occ = glm_malloc((size_t)occ_off[g->n_rules] * sizeof *occ);
    uint32_t *fill = glm_malloc((size_t)g->n_rules * sizeof *fill);
    memcpy(fill, occ_off, (size_t)g->n_rules * sizeof *fill);
    for (uint32_t a = 0; a < g->n_alts; a++)
        if (cnt[a] != UINT32_MAX)
            for (uint32_t i = g->alts[a]; E_TYPE(g->elems[i]) != E_END; i++)
                occ[fill[E_VAL(g->elems[i])]++] = a;
    uint32_t *queue = glm_malloc((size_t)g->n_rules * sizeof *queue);
    size_t qn = 0;
    for (uint32_t a = 0; a < g->n_alts; a++)
        if (cnt[a] == 0 && !nul[alt_rule[a]]) {
            nul[alt_rule[a]] = 1;
            queue[qn++] = alt_rule[a];
        }
    while (qn) {
        uint32_t r = queue[--qn];
        for (uint32_t k = occ_off[r]; k < occ_off[r + 1]; k++) {
            uint32_t a = occ[k];
            if (--cnt[a] == 0 && !nul[alt_rule[a]]) {
                nul[alt_rule[a]] = 1;
                queue[qn++] = alt_rule[a];
            }
        }
    }
    free(cnt);
    free(alt_rule);
    free(occ_off);
    free(occ);
    free(fill);
    free(queue);
    return nul;
}

/* A rule that reaches itself through left-most references (skipping nullable
 * ones); UINT32_MAX when there is none. */
static uint32_t left_recursive_rule(const glm_grammar *g, const uint8_t *nul)
{
    uint32_t *eoff = glm_calloc((size_t)g->n_rules + 1, sizeof *eoff);
    u32vec edges = {0};
    for (uint32_t r = 0; r < g->n_rules; r++) {
        for (uint32_t a = g->rule_alt[r]; a < g->rule_alt[r] + g->rule_nalt[r]; a++) {
            for (uint32_t i = g->alts[a]; E_TYPE(g->elems[i]) == E_REF; i++) {
                PUSH(edges.v, edges.n, edges.cap, E_VAL(g->elems[i]));
                if (!nul[E_VAL(g->elems[i])])
                    break;
            }
        }
        eoff[r + 1] = (uint32_t)edges.n;
    }
    uint8_t *color = glm_calloc(g->n_rules, 1); /* 0 new, 1 on the path, 2 done */
    uint32_t *st = glm_malloc((size_t)g->n_rules * sizeof *st);
    uint32_t *ei = glm_malloc((size_t)g->n_rules * sizeof *ei);
    uint32_t found = UINT32_MAX;
    for (uint32_t root = 0; root < g->n_rules && found == UINT32_MAX; root++) {
        if (color[root])
            continue;
        size_t sp = 0;
        st[sp] = root;
        ei[sp++] = eoff[root];
        color[root] = 1;
        while (sp && found == UINT32_MAX) {
            uint32_t u = st[sp - 1];
            if (ei[sp - 1] == eoff[u + 1]) {
                color[u] = 2;
                sp--;
                continue;
            }
            uint32_t v = edges.v[ei[sp - 1]++];
            if (color[v] == 1) {
                found = v;
            } else if (color[v] == 0) {
                color[v] = 1;
                st[sp] = v;
                ei[sp++] = eoff[v];
            }
        }
    }
    free(eoff);
    free(edges.v);
    free(color);
    free(st);
    free(ei);
    return found;
}

/* --- workspace: hash-consed stacks and states, cached transitions --------------- */

#define DEAD (-1)
#define UNKNOWN (-2)
#define NO_OFF UINT32_MAX
#define MAX_VISIT (1u << 16)       /* stack nodes one step may expand */
#define MAX_DEPTH_SUM (1u << 20)   /* positions in all stacks of a state */
#define WS_BUDGET ((size_t)32 << 20) /* bytes before a workspace is rebuilt */
#define N_SMALL 4

/* Partial UTF-8 character: value so far v, n continuation bytes to come, L bytes in all. */
#define U_MAKE(v, n, L) ((v) | (uint32_t)(n) << 21 | (uint32_t)(L) << 24)
#define U_V(u) ((u) & 0x1FFFFFu)
#define U_N(u) (((u) >> 21) & 7u)
#define U_L(u) ((u) >> 24)

typedef struct {
    uint32_t off, len; /* stack ids: pool[off .. off + len), sorted */
    uint32_t utf8;     /* partial character, 0 when none */
    uint32_t hash;     /* of the id list */
    uint32_t base;     /* the state of the same stacks with no partial character */
    int32_t row;       /* dense transition row, or -1 */
    uint8_t nsmall, sb[N_SMALL];
    int32_t st[N_SMALL];
    /* the last non-ASCII code point step: cps [uni_lo, uni_hi] lead to uni_to */
    uint32_t uni_lo, uni_hi;
    int32_t uni_to;
} wstate;

typedef struct {
    const glm_grammar *g;
    /* stack nodes; node 0 is the empty stack */
    uint32_t *npos, *npar, *ndep, *nmark;
    uint32_t n_nodes, cap_nodes;
    uint32_t *nhash; /* node id, 0 = free */
    uint32_t nhash_cap;
    /* states */
    wstate *st;
    uint32_t n_st, cap_st;
    uint32_t *shash; /* state id + 1, 0 = free */
    uint32_t shash_cap;
    uint32_t *pool;
    size_t n_pool, cap_pool;
    int32_t *rows; /* [n_rows][256] */
    size_t n_rows, cap_rows; /* cap_rows in entries */
    /* one step */
    uint32_t *work, *out;
    size_t n_work, cap_work, n_out, cap_out;
    uint32_t gen, n_visit;
    int over;
    size_t budget;
    uint64_t n_scanned;  /* stacks looked at by uncached steps (ws_compute) */
    uint64_t n_expanded; /* stack nodes expanded and stacks kept (ws_close) */
} ws;

/* Explicit stack set (what a matcher holds): stack i is pos[off[i] .. off[i+1]),
 * bottom first. */
typedef struct {
    uint32_t *off, *pos;
    uint32_t n;
    size_t cap_off, cap_pos;
    uint32_t utf8;
} stackset;

static size_t ws_budget = WS_BUDGET;

void glm_grammar_set_work_budget(size_t bytes)
{
    ws_budget = bytes ? bytes : WS_BUDGET;
}

static ws *ws_new(const glm_grammar *g)
{
    ws *w = glm_calloc(1, sizeof *w);
    w->g = g;
    w->cap_nodes = 256;
    w->npos = glm_malloc(w->cap_nodes * sizeof *w->npos);
    w->npar = glm_malloc(w->cap_nodes * sizeof *w->npar);
    w->ndep = glm_malloc(w->cap_nodes * sizeof *w->ndep);
    w->nmark = glm_malloc(w->cap_nodes * sizeof *w->nmark);
    w->n_nodes = 1;
    w->npos[0] = w->npar[0] = w->ndep[0] = w->nmark[0] = 0;
    w->nhash_cap = 1024;
    w->nhash = glm_calloc(w->nhash_cap, sizeof *w->nhash);
    w->shash_cap = 256;
    w->shash = glm_calloc(w->shash_cap, sizeof *w->shash);
    w->budget = ws_budget;
    return w;
}

static void ws_free(ws *w)
{
    if (!w)
        return;
    free(w->npos);
    free(w->npar);
    free(w->ndep);
    free(w->nmark);
    free(w->nhash);
    free(w->st);
    free(w->shash);
    free(w->pool);
    free(w->rows);
    free(w->work);
    free(w->out);
    free(w);
}

/* The work so far in the units of glm_grammar_matcher_mask_cost, weighted to
 * track time (measured on the grammars of tests/bench/bench_grammar.c and
 * tests/unit/test_constraint.c: 4-7 ns a unit): a vocabulary-trie node visited
 * is 1 (the caller adds those), a stack looked at 1/4, a stack node expanded
 * or a stack kept 2 (hash-consing). */
static uint64_t ws_cost(const ws *w)
{
    return w->n_scanned / 4 + 2 * w->n_expanded;
}

static size_t ws_bytes(const ws *w)
{
    return (size_t)w->n_nodes * 24 + (size_t)w->n_st * (sizeof(wstate) + 8) + w->n_pool * 4 +
           w->n_rows * 256 * sizeof(int32_t);
}

static inline uint32_t node_hash(uint32_t pos, uint32_t par)
{
    return glm_mix32(pos * 0x9E3779B1u ^ glm_mix32(par + 0x632BE5ABu));
}

/* The stack with pos on top of stack par. */
static uint32_t ws_node(ws *w, uint32_t pos, uint32_t par)
{
    uint32_t mask = w->nhash_cap - 1, h = node_hash(pos, par) & mask;
    for (uint32_t k; (k = w->nhash[h]) != 0; h = (h + 1) & mask)
        if (w->npos[k] == pos && w->npar[k] == par)
            return k;
    if (w->n_nodes == w->cap_nodes) {
        w->cap_nodes *= 2;
        w->npos = glm_realloc(w->npos, w->cap_nodes * sizeof *w->npos);
        w->npar = glm_realloc(w->npar, w->cap_nodes * sizeof *w->npar);
        w->ndep = glm_realloc(w->ndep, w->cap_nodes * sizeof *w->ndep);
        w->nmark = glm_realloc(w->nmark, w->cap_nodes * sizeof *w->nmark);
    }
    uint32_t k = w->n_nodes++;
    w->npos[k] = pos;
    w->npar[k] = par;
    w->ndep[k] = w->ndep[par] + 1;
    w->nmark[k] = 0;
    w->nhash[h] = k;
    if (2 * w->n_nodes > w->nhash_cap) {
        uint32_t nc = w->nhash_cap * 2;
        uint32_t *t = glm_calloc(nc, sizeof *t);
        for (uint32_t i = 1; i < w->n_nodes; i++) {
            uint32_t s = node_hash(w->npos[i], w->npar[i]) & (nc - 1);
            while (t[s])
                s = (s + 1) & (nc - 1);
            t[s] = i;
        }
        free(w->nhash);
        w->nhash = t;
        w->nhash_cap = nc;
    }
    return k;
}

static uint32_t list_hash(const uint32_t *ids, uint32_t n)
{
    uint32_t h = 0x2545F491u ^ n;
    for (uint32_t i = 0; i < n; i++)
        h = glm_mix32(h ^ ids[i]) + 0x9E3779B9u;
    return h;
}

static inline uint32_t state_hash(uint32_t lhash, uint32_t utf8)
{
    return glm_mix32(lhash ^ (utf8 * 0x85EBCA6Bu));
}

/* The state (ids[0..len) sorted, utf8). off: where ids already are in the pool,
 * or NO_OFF to copy them (ids must then not point into the pool). */
static uint32_t ws_state(ws *w, const uint32_t *ids, uint32_t len, uint32_t lhash, uint32_t utf8, uint32_t off)
{
    uint32_t base = 0;
    if (utf8) { /* make the base state first; share its list */
        base = ws_state(w, ids, len, lhash, 0, off);
        off = w->st[base].off;
        ids = w->pool + off;
    }
    uint32_t mask = w->shash_cap - 1, h = state_hash(lhash, utf8) & mask;
    for (uint32_t k; (k = w->shash[h]) != 0; h = (h + 1) & mask) {
        const wstate *s = &w->st[k - 1];
        if (s->utf8 == utf8 && s->len == len && s->hash == lhash &&
            (s->off == off || memcmp(w->pool + s->off, ids, len * sizeof *ids) == 0))
            return k - 1;
    }
    if (off == NO_OFF) {
        GROW(w->pool, w->cap_pool, w->n_pool + len);
        memcpy(w->pool + w->n_pool, ids, len * sizeof *ids);
        off = (uint32_t)w->n_pool;
        w->n_pool += len;
    }
    wstate s = {.off = off, .len = len, .utf8 = utf8, .hash = lhash, .base = utf8 ? base : w->n_st,
                .row = -1, .uni_lo = 1, .uni_hi = 0};
    PUSH(w->st, w->n_st, w->cap_st, s);
    w->shash[h] = w->n_st;
    if (2 * w->n_st > w->shash_cap) {
        uint32_t nc = w->shash_cap * 2;
        uint32_t *t = glm_calloc(nc, sizeof *t);
        for (uint32_t i = 0; i < w->n_st; i++) {
            uint32_t q = state_hash(w->st[i].hash, w->st[i].utf8) & (nc - 1);
            while (t[q])
                q = (q + 1) & (nc - 1);
            t[q] = i + 1;
        }
        free(w->shash);
        w->shash = t;
        w->shash_cap = nc;
    }
    return w->n_st - 1;
}

static void ws_begin(ws *w)
{
    w->n_work = w->n_out = 0;
    w->n_visit = 0;
    w->over = 0;
    if (++w->gen == 0) {
        memset(w->nmark, 0, w->n_nodes * sizeof *w->nmark);
        w->gen = 1;
    }
}

static void ws_push(ws *w, uint32_t k)
{
    if (w->nmark[k] == w->gen)
        return;
    w->nmark[k] = w->gen;
    if (++w->n_visit > MAX_VISIT) {
        w->over = 1;
        return;
    }
    PUSH(w->work, w->n_work, w->cap_work, k);
}

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void sort_ids(uint32_t *v, size_t n)
{
    if (n > 32) {
        qsort(v, n, sizeof *v, u32_cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        uint32_t x = v[i];
        size_t j = i;
        for (; j > 0 && v[j - 1] > x; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
}

/* Expands the stacks on the worklist (rule references on top are replaced by
 * the alternatives of their rule) and returns the state of the expanded set,
 * or DEAD when it is empty or over a limit. */
static int32_t ws_close(ws *w)
{
    const glm_grammar *g = w->g;
    while (w->n_work && !w->over) {
        uint32_t k = w->work[--w->n_work];
        if (k == 0) {
            PUSH(w->out, w->n_out, w->cap_out, 0);
            continue;
        }
        uint32_t pos = w->npos[k], e = g->elems[pos];
        if (E_TYPE(e) != E_REF) {
            PUSH(w->out, w->n_out, w->cap_out, k);
            continue;
        }
        uint32_t par = w->npar[k];
        uint32_t rest = E_TYPE(g->elems[pos + 1]) == E_END ? par : ws_node(w, pos + 1, par);
        uint32_t r = E_VAL(e);
        for (uint32_t a = g->rule_alt[r]; a < g->rule_alt[r] + g->rule_nalt[r] && !w->over; a++) {
            uint32_t s = g->alts[a];
            ws_push(w, E_TYPE(g->elems[s]) == E_END ? rest : ws_node(w, s, rest));
        }
    }
    w->n_expanded += w->n_visit + w->n_out;
    if (w->over || w->n_out == 0 || w->n_out > GLM_GRAMMAR_MAX_STACKS)
        return DEAD;
    size_t total = 0;
    for (size_t i = 0; i < w->n_out; i++)
        total += w->ndep[w->out[i]];
    if (total > MAX_DEPTH_SUM)
        return DEAD;
    sort_ids(w->out, w->n_out);
    uint32_t n = (uint32_t)w->n_out;
    return (int32_t)ws_state(w, w->out, n, list_hash(w->out, n), 0, NO_OFF);
}

/* The state after code point cp from the stacks of state s. */
static int32_t ws_step(ws *w, uint32_t s, uint32_t cp)
{
    const glm_grammar *g = w->g;
    uint32_t off = w->st[s].off, len = w->st[s].len;
    ws_begin(w);
    for (uint32_t i = 0; i < len && !w->over; i++) {
        uint32_t k = w->pool[off + i];
        if (k == 0)
            continue;
        uint32_t pos = w->npos[k];
        if (!elem_has(g, g->elems[pos], cp))
            continue;
        uint32_t par = w->npar[k];
        ws_push(w, E_TYPE(g->elems[pos + 1]) == E_END ? par : ws_node(w, pos + 1, par));
    }
    return ws_close(w);
}

/* ws_step for a non-ASCII code point, through the state's interval cache. */
static int32_t ws_step_wide(ws *w, uint32_t s, uint32_t cp)
{
    wstate *st = &w->st[s];
    if (cp >= st->uni_lo && cp <= st->uni_hi)
        return st->uni_to;
    const glm_grammar *g = w->g;
    uint32_t lo = 0x80, hi = CP_MAX;
    for (uint32_t i = 0; i < st->len; i++) {
        uint32_t k = w->pool[st->off + i];
        if (k == 0)
            continue;
        uint32_t e = g->elems[w->npos[k]];
        if (E_TYPE(e) == E_CHAR) {
            uint32_t c = E_VAL(e);
            if (c == cp)
                lo = hi = cp;
            else if (c < cp && c + 1 > lo)
                lo = c + 1;
            else if (c > cp && c - 1 < hi)
                hi = c - 1;
        } else {
            set_narrow(g, E_VAL(e), cp, &lo, &hi);
        }
    }
    int32_t to = ws_step(w, s, cp);
    st = &w->st[s];
    st->uni_lo = lo;
    st->uni_hi = hi;
    st->uni_to = to;
    return to;
}

/* The code points a partial character (v, n more bytes, L in all) can still
 * become: [*lo, *hi], contiguous; 0 when none is valid. */
static int utf8_range(uint32_t v, uint32_t n, uint32_t L, uint32_t *lo, uint32_t *hi)
{
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000}, max[5] = {0, 0, 0x7FF, 0xFFFF, CP_MAX};
    uint32_t a = v << (6 * n), b = a + ((1u << (6 * n)) - 1);
    if (a < min[L])
        a = min[L];
    if (b > max[L])
        b = max[L];
    if (L == 3) {
        if (a >= 0xD800 && a <= 0xDFFF)
            a = 0xE000;
        if (b >= 0xD800 && b <= 0xDFFF)
            b = 0xD7FF;
    }
    *lo = a;
    *hi = b;
    return a <= b;
}

/* 1 when some stack of state s accepts a code point in [lo, hi]. */
static int ws_viable(const ws *w, uint32_t s, uint32_t lo, uint32_t hi)
{
    const wstate *st = &w->st[s];
    for (uint32_t i = 0; i < st->len; i++) {
        uint32_t k = w->pool[st->off + i];
        if (k && elem_meets(w->g, w->g->elems[w->npos[k]], lo, hi))
            return 1;
    }
    return 0;
}

/* The state after byte b from state s (not cached). */
static int32_t ws_compute(ws *w, uint32_t s, uint8_t b)
{
    uint32_t u = w->st[s].utf8, v, n, L;
    w->n_scanned += 1 + w->st[s].len;
    if (u == 0) {
        if (b < 0x80)
            return ws_step(w, s, b);
        if (b < 0xC0)
            return DEAD;
        else if (b < 0xE0)
            L = 2, v = b & 0x1Fu;
        else if (b < 0xF0)
            L = 3, v = b & 0x0Fu;
        else if (b < 0xF8)
            L = 4, v = b & 0x07u;
        else
            return DEAD;
        n = L - 1;
    } else {
        if ((b & 0xC0) != 0x80)
            return DEAD;
        v = U_V(u) << 6 | (b & 0x3Fu);
        n = U_N(u) - 1;
        L = U_L(u);
    }
    uint32_t lo, hi;
    if (!utf8_range(v, n, L, &lo, &hi))
        return DEAD;
    if (n == 0)
        return ws_step_wide(w, w->st[s].base, v);
    if (!ws_viable(w, s, lo, hi))
        return DEAD;
    const wstate *st = &w->st[s];
    return (int32_t)ws_state(w, w->pool + st->off, st->len, st->hash, U_MAKE(v, n, L), st->off);
}

static inline int32_t cache_get(const ws *w, uint32_t s, uint8_t b)
{
    const wstate *st = &w->st[s];
    if (st->row >= 0)
        return w->rows[(size_t)st->row << 8 | b];
    for (int i = 0; i < st->nsmall; i++)
        if (st->sb[i] == b)
            return st->st[i];
    return UNKNOWN;
}

static void cache_put(ws *w, uint32_t s, uint8_t b, int32_t to)
{
    wstate *st = &w->st[s];
    if (st->row < 0 && st->nsmall < N_SMALL) {
        st->sb[st->nsmall] = b;
        st->st[st->nsmall++] = to;
        return;
    }
    if (st->row < 0) {
        GROW(w->rows, w->cap_rows, (w->n_rows + 1) * 256);
        int32_t *row = w->rows + w->n_rows * 256;
        for (int i = 0; i < 256; i++)
            row[i] = UNKNOWN;
        for (int i = 0; i < st->nsmall; i++)
            row[st->sb[i]] = st->st[i];
        st->row = (int32_t)w->n_rows++;
    }
    w->rows[(size_t)st->row << 8 | b] = to;
}

static void ss_free(stackset *ss)
{
    free(ss->off);
    free(ss->pos);
    memset(ss, 0, sizeof *ss);
}

/* Writes state s out as explicit stacks. */
static void ws_export(const ws *w, uint32_t s, stackset *ss)
{
    const wstate *st = &w->st[s];
    size_t total = 0;
    for (uint32_t i = 0; i < st->len; i++)
        total += w->ndep[w->pool[st->off + i]];
    GROW(ss->off, ss->cap_off, (size_t)st->len + 1);
    GROW(ss->pos, ss->cap_pos, total + 1);
    ss->n = st->len;
    ss->utf8 = st->utf8;
    uint32_t at = 0;
    for (uint32_t i = 0; i < st->len; i++) {
        uint32_t k = w->pool[st->off + i], d = w->ndep[k];
        ss->off[i] = at;
        for (uint32_t j = d; j-- > 0; k = w->npar[k])
            ss->pos[at + j] = w->npos[k];
        at += d;
    }
    ss->off[st->len] = at;
}

/* The state of explicit stacks ss. */
static uint32_t ws_import(ws *w, const stackset *ss)
{
    w->n_out = 0;
    for (uint32_t i = 0; i < ss->n; i++) {
        uint32_t k = 0;
        for (uint32_t j = ss->off[i]; j < ss->off[i + 1]; j++)
            k = ws_node(w, ss->pos[j], k);
        PUSH(w->out, w->n_out, w->cap_out, k);
    }
    sort_ids(w->out, w->n_out);
    size_t m = 0;
    for (size_t i = 0; i < w->n_out; i++)
        if (m == 0 || w->out[m - 1] != w->out[i])
            w->out[m++] = w->out[i];
    uint32_t n = (uint32_t)m;
    return ws_state(w, w->out, n, list_hash(w->out, n), ss->utf8, NO_OFF);
}

/* Rebuilds the workspace holding only the states roots[0..n) (rewritten to
 * their new ids); every cached transition is dropped. */
static void ws_gc(ws *w, uint32_t *roots, uint32_t n)
{
    stackset *tmp = glm_calloc(n ? n : 1, sizeof *tmp);
    for (uint32_t i = 0; i < n; i++)
        ws_export(w, roots[i], &tmp[i]);
    w->n_nodes = 1;
    memset(w->nhash, 0, w->nhash_cap * sizeof *w->nhash);
    w->n_st = 0;
    memset(w->shash, 0, w->shash_cap * sizeof *w->shash);
    w->n_pool = 0;
    w->n_rows = 0;
    for (uint32_t i = 0; i < n; i++) {
        roots[i] = ws_import(w, &tmp[i]);
        ss_free(&tmp[i]);
    }
    free(tmp);
    if (ws_bytes(w) > w->budget / 2)
        w->budget *= 2;
}

/* The state after byte b from state roots[ri]; roots[0..n) are the states
 * still in use, kept (and maybe renumbered) when the workspace is rebuilt. */
static inline int32_t ws_next(ws *w, uint32_t *roots, uint32_t n, uint32_t ri, uint8_t b)
{
    int32_t t = cache_get(w, roots[ri], b);
    if (t != UNKNOWN)
        return t;
    if (ws_bytes(w) > w->budget)
        ws_gc(w, roots, n);
    uint32_t s = roots[ri];
    t = ws_compute(w, s, b);
    cache_put(w, s, b, t);
    return t;
}

/* --- parse entry point --------------------------------------------------------- */

/* The initial state of rule `start`, or DEAD when it is over the limits. */
static int32_t ws_start(ws *w, uint32_t start)
{
    const glm_grammar *g = w->g;
    ws_begin(w);
    for (uint32_t a = g->rule_alt[start]; a < g->rule_alt[start] + g->rule_nalt[start]; a++) {
        uint32_t s = g->alts[a];
        ws_push(w, E_TYPE(g->elems[s]) == E_END ? 0 : ws_node(w, s, 0));
    }
    return ws_close(w);
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

    uint8_t *nul_rules = nullable_rules(g);
    uint32_t lr = left_recursive_rule(g, nul_rules);
    free(nul_rules);
    if (lr != UINT32_MAX) {
        const prule *r = &p.rules[lr];
        perr(&p, r->def_pos, "left recursion: %s'%.*s' can reach itself without consuming input",
             r->generated ? "a group or repetition of rule " : "rule ", (int)GLM_MIN(r->name_len, 64),
             r->name);
    } else {
        ws *w = ws_new(g);
        if (ws_start(w, start_id) < 0)
            perr(&p, p.rules[start_id].def_pos,
                 "the start rule '%.64s' is too ambiguous: more than %d parse stacks or %u expansions",
                 start, GLM_GRAMMAR_MAX_STACKS, MAX_VISIT);
        ws_free(w);
    }
    parser_free(&p);
    if (p.failed) {
        glm_grammar_free(g);
        return NULL;
    }
    return g;
}

/* --- matcher --------------------------------------------------------------------- */

struct glm_grammar_matcher {
    const glm_grammar *g;
    stackset ss;
};

glm_grammar_matcher *glm_grammar_matcher_new(const glm_grammar *g)
{
    glm_grammar_matcher *m = glm_calloc(1, sizeof *m);
    m->g = g;
    ws *w = ws_new(g);
    int32_t s = ws_start(w, g->start);
    GLM_ASSERT(s >= 0); /* checked by glm_grammar_parse */
    ws_export(w, (uint32_t)s, &m->ss);
    ws_free(w);
    return m;
}

glm_grammar_matcher *glm_grammar_matcher_clone(const glm_grammar_matcher *m)
{
    glm_grammar_matcher *c = glm_calloc(1, sizeof *c);
    c->g = m->g;
    c->ss.n = m->ss.n;
    c->ss.utf8 = m->ss.utf8;
    c->ss.cap_off = (size_t)m->ss.n + 1;
    c->ss.cap_pos = (size_t)m->ss.off[m->ss.n] + 1;
    c->ss.off = glm_malloc(c->ss.cap_off * sizeof *c->ss.off);
    c->ss.pos = glm_malloc(c->ss.cap_pos * sizeof *c->ss.pos);
    memcpy(c->ss.off, m->ss.off, c->ss.cap_off * sizeof *c->ss.off);
    memcpy(c->ss.pos, m->ss.pos, (size_t)m->ss.off[m->ss.n] * sizeof *c->ss.pos);
    return c;
}

void glm_grammar_matcher_free(glm_grammar_matcher *m)
{
    if (!m)
        return;
    ss_free(&m->ss);
    free(m);
}

int glm_grammar_matcher_accept(glm_grammar_matcher *m, const char *bytes, size_t n)
{
    return glm_grammar_matcher_accept_cost(m, bytes, n, NULL);
}

int glm_grammar_matcher_accept_cost(glm_grammar_matcher *m, const char *bytes, size_t n, uint64_t *cost)
{
    if (n == 0)
        return 1;
    ws *w = ws_new(m->g);
    uint32_t cur = ws_import(w, &m->ss);
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        int32_t t = ws_next(w, &cur, 1, 0, (uint8_t)bytes[i]);
        if (t < 0) {
            ok = 0;
            break;
        }
        cur = (uint32_t)t;
    }
    if (ok)
        ws_export(w, cur, &m->ss);
    if (cost)
        *cost += ws_cost(w);
    ws_free(w);
    return ok;
}

int glm_grammar_matcher_can_end(const glm_grammar_matcher *m)
{
    if (m->ss.utf8)
        return 0;
    for (uint32_t i = 0; i < m->ss.n; i++)
        if (m->ss.off[i] == m->ss.off[i + 1])
            return 1;
    return 0;
}

int glm_grammar_matcher_is_dead_end(const glm_grammar_matcher *m)
{
    if (m->ss.utf8)
        return 0;
    for (uint32_t i = 0; i < m->ss.n; i++)
        if (m->ss.off[i] < m->ss.off[i + 1] && elem_any(m->g, m->g->elems[m->ss.pos[m->ss.off[i + 1] - 1]]))
            return 0;
    return 1;
}

int glm_grammar_matches(const glm_grammar *g, const char *s, size_t n)
{
    glm_grammar_matcher *m = glm_grammar_matcher_new(g);
    int ok = glm_grammar_matcher_accept(m, s, n) && glm_grammar_matcher_can_end(m);
    glm_grammar_matcher_free(m);
    return ok;
}

/* --- token trie and mask ----------------------------------------------------------- */

/* Trie nodes in preorder; node 0 is the root. The tokens spelled by the path
 * to node i are ids[nodes[i].tok .. nodes[i + 1].tok); node i's subtree is
 * nodes [i, nodes[i].end). */
typedef struct {
    uint32_t end, tok, depth;
    uint8_t byte;
} trie_node;

struct glm_token_trie {
    trie_node *nodes; /* [n_nodes + 1], the last a sentinel */
    uint32_t n_nodes;
    uint32_t *ids;
    int n_vocab;
    uint32_t max_depth;
};

typedef struct {
    const unsigned char *p;
    size_t len;
    uint32_t id;
} tok_ref;

static int tok_cmp(const void *a, const void *b)
{
    const tok_ref *x = a, *y = b;
    size_t n = GLM_MIN(x->len, y->len);
    int c = memcmp(x->p, y->p, n);
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

glm_token_trie *glm_token_trie_new(const char *const *tok, const size_t *lens, int n_vocab)
{
    glm_token_trie *t = glm_calloc(1, sizeof *t);
    t->n_vocab = n_vocab > 0 ? n_vocab : 0;
    size_t n = 0, total = 0;
    tok_ref *refs = glm_malloc(((size_t)t->n_vocab + 1) * sizeof *refs);
    for (int i = 0; i < t->n_vocab; i++) {
        if (lens[i] == 0 || !tok[i])
            continue;
        GLM_ASSERT(lens[i] < UINT32_MAX);
        refs[n++] = (tok_ref){(const unsigned char *)tok[i], lens[i], (uint32_t)i};
        total += lens[i];
    }
    qsort(refs, n, sizeof *refs, tok_cmp);
    GLM_ASSERT(total < UINT32_MAX);
    size_t cap = 1024;
    trie_node *nodes = glm_malloc(cap * sizeof *nodes);
    t->ids = glm_malloc((n + 1) * sizeof *t->ids);
    size_t maxlen = 0;
    for (size_t i = 0; i < n; i++)
        maxlen = GLM_MAX(maxlen, refs[i].len);
    uint32_t *path = glm_malloc((maxlen + 1) * sizeof *path); /* node at each depth */
    size_t path_len = 1, nn = 1, n_ids = 0;
    nodes[0] = (trie_node){.tok = 0};
    path[0] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t lcp = 0;
        if (i > 0) {
            size_t m = GLM_MIN(refs[i].len, refs[i - 1].len);
            while (lcp < m && refs[i].p[lcp] == refs[i - 1].p[lcp])
                lcp++;
        }
        while (path_len > lcp + 1)
            nodes[path[--path_len]].end = (uint32_t)nn;
        for (size_t j = lcp; j < refs[i].len; j++) {
            if (nn + 1 >= cap) {
                cap *= 2;
                nodes = glm_realloc(nodes, cap * sizeof *nodes);
            }
            nodes[nn] = (trie_node){.tok = (uint32_t)n_ids, .depth = (uint32_t)(j + 1), .byte = refs[i].p[j]};
            path[path_len++] = (uint32_t)nn++;
        }
        t->ids[n_ids++] = refs[i].id; /* at the last node made: equal tokens are adjacent */
    }
    while (path_len > 0)
        nodes[path[--path_len]].end = (uint32_t)nn;
    nodes[nn] = (trie_node){.end = (uint32_t)nn, .tok = (uint32_t)n_ids};
    t->nodes = glm_realloc(nodes, (nn + 1) * sizeof *nodes);
    t->n_nodes = (uint32_t)nn;
    t->max_depth = (uint32_t)maxlen;
    free(path);
    free(refs);
    return t;
}

void glm_token_trie_free(glm_token_trie *t)
{
    if (!t)
        return;
    free(t->nodes);
    free(t->ids);
    free(t);
}

int glm_token_trie_vocab(const glm_token_trie *t)
{
    return t->n_vocab;
}

int glm_grammar_matcher_mask(const glm_grammar_matcher *m, const glm_token_trie *t, uint32_t *allowed)
{
    return glm_grammar_matcher_mask_cost(m, t, allowed, NULL);
}

int glm_grammar_matcher_mask_cost(const glm_grammar_matcher *m, const glm_token_trie *t, uint32_t *allowed,
                                  uint64_t *cost)
{
    if (t->n_vocab > 0)
        memset(allowed, 0, ((size_t)t->n_vocab + 31) / 32 * sizeof *allowed);
    ws *w = ws_new(m->g);
    uint32_t *dstate = glm_malloc(((size_t)t->max_depth + 1) * sizeof *dstate);
    dstate[0] = ws_import(w, &m->ss);
    const trie_node *nd = t->nodes;
    const uint32_t *ids = t->ids;
    int count = 0;
    uint64_t visited = 0;
    for (uint32_t i = 1; i < t->n_nodes; visited++) {
        uint32_t d = nd[i].depth;
        int32_t s = ws_next(w, dstate, d, d - 1, nd[i].byte);
        if (s < 0) {
            i = nd[i].end;
            continue;
        }
        dstate[d] = (uint32_t)s;
        for (uint32_t k = nd[i].tok; k < nd[i + 1].tok; k++) {
            allowed[ids[k] >> 5] |= 1u << (ids[k] & 31);
            count++;
        }
        i++;
    }
    if (cost)
        *cost += ws_cost(w) + visited;
    free(dstate);
    ws_free(w);
    return count;
}
