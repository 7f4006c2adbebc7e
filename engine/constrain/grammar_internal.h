/*
 * grammar_internal.h - what the parts of the GBNF engine share (not a public
 * contract; grammar.h is that): the compiled grammar's layout, its
 * character-set queries (inline: the matcher runs them per byte), the
 * vocabulary trie, and the calls from the parser into the other parts.
 *
 *   grammar_parse.c  GBNF text -> compiled grammar (cold: once per request)
 *   grammar_check.c  nullable rules, left recursion
 *   grammar_match.c  the matcher: hash-consed parse stacks, cached transitions,
 *                    token masks (hot: every generated token)
 *   grammar_trie.c   the vocabulary's byte trie the masks walk
 *
 * Compiled form. A flat array of elements; every rule is a list of
 * alternatives, every alternative a run of elements closed by END. An element
 * is one code point (CHAR), a set of code points (SET: sorted disjoint ranges
 * with negation and '.' resolved and surrogates removed), or a reference to a
 * rule (REF).
 */
#ifndef GLM_GRAMMAR_INTERNAL_H
#define GLM_GRAMMAR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "constrain/grammar.h"
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

static inline int set_has(const glm_grammar *g, uint32_t id, uint32_t c)
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
static inline int set_meets(const glm_grammar *g, uint32_t id, uint32_t lo, uint32_t hi)
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
static inline void set_narrow(const glm_grammar *g, uint32_t id, uint32_t c, uint32_t *lo, uint32_t *hi)
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
static inline int elem_meets(const glm_grammar *g, uint32_t e, uint32_t lo, uint32_t hi)
{
    if (E_TYPE(e) == E_CHAR)
        return E_VAL(e) >= lo && E_VAL(e) <= hi;
    return set_meets(g, E_VAL(e), lo, hi);
}

/* 1 when element e (CHAR or SET) accepts some valid code point. */
static inline int elem_any(const glm_grammar *g, uint32_t e)
{
    if (E_TYPE(e) == E_CHAR)
        return E_VAL(e) <= CP_MAX && !IS_SURROGATE(E_VAL(e));
    return g->sets[E_VAL(e)].n > 0;
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

typedef struct {
    uint32_t *v;
    size_t n, cap;
} u32vec;

/* --- the vocabulary trie ------------------------------------------------------------ */

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

/* --- between the parts ------------------------------------------------------------- */

/* Stack nodes one matcher step may expand (grammar_match.c). */
#define GRAMMAR_MAX_VISIT (1u << 16)

/* A rule of g that reaches itself through left-most references (skipping
 * nullable ones), or UINT32_MAX when there is none (grammar_check.c). */
uint32_t grammar_left_recursive_rule(const glm_grammar *g);

/* 1 when the initial parse stacks of rule `start` fit the matcher's limits
 * (grammar_match.c). */
int grammar_start_fits(const glm_grammar *g, uint32_t start);

#endif
