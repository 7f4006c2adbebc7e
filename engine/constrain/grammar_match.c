/*
 * grammar_match.c - the GBNF matcher and the token mask (grammar.h): the hot
 * half of the grammar engine, run for every generated token.
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
 * walks the vocabulary trie (grammar_trie.c) in preorder and pays one cached
 * lookup per trie node once a state has been seen (inside a JSON string
 * almost every byte leads back to the same state). A non-ASCII code point
 * whose membership in every stack top's set equals that of an earlier one
 * gives the same result, so each state also caches the last such step with
 * the interval of code points it holds for. When a workspace outgrows its
 * budget it is rebuilt from the states still in use (the DFS path), which
 * bounds memory without changing any result.
 *
 * Limits: a step whose result would exceed GLM_GRAMMAR_MAX_STACKS stacks,
 * visit more than MAX_VISIT stack nodes while expanding, or hold more than
 * MAX_DEPTH_SUM positions in all is refused (the byte is rejected); mask and
 * accept apply the same rule, so they always agree.
 *
 * Cost: a mask over a 154,880-token vocabulary takes about 2.5 ms where
 * nearly every token is allowed (inside a string) and microseconds where few
 * are; build/glm-bench-grammar measures it (docs/performance.md).
 */
#include <stdlib.h>
#include <string.h>

#include "constrain/grammar_internal.h"
#include "core/hash.h"
#include "core/util.h"

/* --- workspace: hash-consed stacks and states, cached transitions --------------- */

#define DEAD (-1)
#define UNKNOWN (-2)
#define NO_OFF UINT32_MAX
#define MAX_VISIT GRAMMAR_MAX_VISIT
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

int grammar_start_fits(const glm_grammar *g, uint32_t start)
{
    ws *w = ws_new(g);
    int ok = ws_start(w, start) >= 0;
    ws_free(w);
    return ok;
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

/* --- token mask -------------------------------------------------------------------- */

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
