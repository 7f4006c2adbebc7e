/* constraint.c - see constraint.h. */
#include "constrain/constraint.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define PAT_MAX 64 /* tags are at most 64 bytes (output_parser.h) */

/* A fixed text searched for across token boundaries (Knuth-Morris-Pratt). */
typedef struct {
    char text[PAT_MAX + 1];
    int len;                     /* 0: none */
    int fail[PAT_MAX];
} pattern;

typedef struct {
    glm_constraint_params p;
    int32_t *eos;                /* [p.n_eos] */
    pattern end;                 /* closes the reasoning */
    pattern alt;                 /* also closes it, and is the answer's first text */
    pattern after;               /* end_after */
} ctx;

typedef struct {
    const ctx *c;
    int reasoning;               /* still inside the reasoning */
    int m_end, m_alt, m_after;   /* bytes of each pattern matched so far */
    int ended;                   /* end_after was seen: only eos */
    int n_reasoning;             /* tokens generated inside the reasoning */
    glm_grammar_matcher *m;      /* NULL without a grammar */
    uint32_t *allowed;           /* mask scratch */
    int dead;                    /* the grammar rejected a token: only eos from here on */
    int n_costly;                /* grammar steps over GLM_CONSTRAINT_COSTLY_STEP work units */
    uint64_t costliest;          /* work units of the costliest step */
} state;

static void pattern_set(pattern *p, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > PAT_MAX)
        n = 0;
    memcpy(p->text, s ? s : "", n);
    p->text[n] = 0;
    p->len = (int)n;
    for (int i = 1, k = 0; i < p->len; i++) {
        while (k > 0 && p->text[i] != p->text[k])
            k = p->fail[k - 1];
        if (p->text[i] == p->text[k])
            k++;
        p->fail[i] = k;
    }
}

/* Follows p through b from *matched bytes matched; returns the offset just
 * past it when it completes inside b, else -1. */
static long find(const pattern *p, int *matched, const char *b, size_t n)
{
    if (!p->len)
        return -1;
    for (size_t i = 0; i < n; i++) {
        while (*matched > 0 && p->text[*matched] != b[i])
            *matched = p->fail[*matched - 1];
        if (p->text[*matched] == b[i])
            (*matched)++;
        if (*matched == p->len)
            return (long)(i + 1);
    }
    return -1;
}

static void *create(void *vc, int index)
{
    const ctx *c = vc;
    state *s = glm_calloc(1, sizeof *s);
    s->c = c;
    s->reasoning = c->p.think_open;
    if (c->p.grammar) {
        s->m = glm_grammar_matcher_new(c->p.grammar);
        s->allowed = glm_malloc(sizeof(uint32_t) * (size_t)((glm_token_trie_vocab(c->p.trie) + 31) / 32));
    }
    return s;
}

static void destroy(void *vs)
{
    state *s = vs;
    glm_grammar_matcher_free(s->m);
    free(s->allowed);
    free(s);
}

static int is_eos(const ctx *c, int32_t t)
{
    for (int i = 0; i < c->p.n_eos; i++)
        if (c->eos[i] == t)
            return 1;
    return 0;
}

/* Sets every logit to -inf except those of the end-of-sequence ids when
 * keep_eos, and of `keep` (>= 0). */
static void only(float *logits, int vocab, const ctx *c, int keep_eos, int32_t keep)
{
    float saved[GLM_CONSTRAINT_MAX_EOS + 1];
    int n = keep_eos ? c->p.n_eos : 0;
    for (int i = 0; i < n; i++)
        saved[i] = c->eos[i] < vocab ? logits[c->eos[i]] : 0;
    float kv = keep >= 0 && keep < vocab ? logits[keep] : 0;
    for (int i = 0; i < vocab; i++)
        logits[i] = -INFINITY;
    for (int i = 0; i < n; i++)
        if (c->eos[i] < vocab)
            logits[c->eos[i]] = saved[i];
    if (keep >= 0 && keep < vocab)
        logits[keep] = kv;
}

/* Counts a grammar step's work; 1 when the sample has had too many costly ones. */
static int too_costly(state *s, uint64_t cost)
{
    if (cost > s->costliest)
        s->costliest = cost;
    if (cost > GLM_CONSTRAINT_COSTLY_STEP)
        s->n_costly++;
    return s->n_costly > GLM_CONSTRAINT_MAX_COSTLY;
}

static int costly_err(const state *s, char *err, size_t errlen)
{
    return glm_err(err, errlen,
                   "the output grammar is too costly to follow: %d steps took more than %d work units each "
                   "(the costliest %llu)",
                   s->n_costly, GLM_CONSTRAINT_COSTLY_STEP, (unsigned long long)s->costliest);
}

static int apply(void *vs, float *logits, int vocab, char *err, size_t errlen)
{
    state *s = vs;
    const ctx *c = s->c;
    if (c->p.forbid >= 0 && c->p.forbid < vocab)
        logits[c->p.forbid] = -INFINITY;
    if (s->ended) {
        only(logits, vocab, c, 1, -1);
        return 0;
    }
    if (s->reasoning) {
        /* the closing tag counts as a reasoning token (as reasoning_tokens does): at most
         * max(budget, 1) in all */
        if (c->p.budget >= 0 && s->n_reasoning >= (c->p.budget > 0 ? c->p.budget - 1 : 0) &&
            c->p.think_end_id >= 0 && c->p.think_end_id < vocab) {
            only(logits, vocab, c, 0, c->p.think_end_id);
            return 0;
        }
        if (s->m)
            for (int i = 0; i < c->p.n_eos; i++)
                if (c->eos[i] < vocab)
                    logits[c->eos[i]] = -INFINITY;
        return 0;
    }
    if (!s->m)
        return 0;
    if (s->n_costly > GLM_CONSTRAINT_MAX_COSTLY) {
        costly_err(s, err, errlen);
        return -1;
    }
    if (s->dead || glm_grammar_matcher_is_dead_end(s->m)) {
        if (!s->dead && !glm_grammar_matcher_can_end(s->m)) {
            glm_err(err, errlen, "the output grammar reached a state no token can continue");
            return -1;
        }
        only(logits, vocab, c, 1, -1);
        return 0;
    }
    uint64_t cost = 0;
    int n = glm_grammar_matcher_mask_cost(s->m, c->p.trie, s->allowed, &cost);
    if (too_costly(s, cost)) {
        costly_err(s, err, errlen);
        return -1;
    }
    int can_end = glm_grammar_matcher_can_end(s->m);
    if (n == 0 && !can_end) {
        glm_err(err, errlen, "no token of the vocabulary continues the output grammar");
        return -1;
    }
    float saved[GLM_CONSTRAINT_MAX_EOS];
    for (int i = 0; i < c->p.n_eos; i++)
        saved[i] = c->eos[i] < vocab ? logits[c->eos[i]] : 0;
    int tv = glm_token_trie_vocab(c->p.trie);
    for (int i = 0; i < vocab; i++)
        if (i >= tv || !(s->allowed[i >> 5] >> (i & 31) & 1u))
            logits[i] = -INFINITY;
    if (can_end) /* the end-of-sequence ids come back when the sentence is complete */
        for (int i = 0; i < c->p.n_eos; i++)
            if (c->eos[i] < vocab)
                logits[c->eos[i]] = saved[i];
    return 0;
}

/* Feeds answer bytes to the grammar. */
static void answer(state *s, const char *b, size_t n)
{
    if (!s->m || s->dead || n == 0)
        return;
    uint64_t cost = 0;
    if (!glm_grammar_matcher_accept_cost(s->m, b, n, &cost))
        s->dead = 1; /* a token the mask did not allow (e.g. forced by a bias of +inf) */
    too_costly(s, cost);
}

static void accept(void *vs, int32_t tok)
{
    state *s = vs;
    const ctx *c = s->c;
    size_t n = 0;
    const char *b = glm_tok_token_bytes(c->p.tok, tok, &n);
    if (!b)
        n = 0;
    if (is_eos(c, tok))
        return;
    if (s->reasoning) {
        s->n_reasoning++;
        /* whichever closes first: </think>, or the alternative (e.g. <tool_call>), whose
         * text then starts the answer */
        int me = s->m_end, ma = s->m_alt;
        long at_end = find(&c->end, &me, b, n), at_alt = find(&c->alt, &ma, b, n);
        s->m_end = me;
        s->m_alt = ma;
        if (at_end < 0 && at_alt < 0)
            return;
        s->reasoning = 0;
        if (at_alt >= 0 && (at_end < 0 || at_alt < at_end)) {
            if (c->after.len && find(&c->after, &s->m_after, c->alt.text, (size_t)c->alt.len) >= 0)
                s->ended = 1;
            answer(s, c->alt.text, (size_t)c->alt.len);
            b += at_alt;
            n -= (size_t)at_alt;
        } else {
            b += at_end;
            n -= (size_t)at_end;
        }
    }
    if (!s->ended && find(&c->after, &s->m_after, b, n) >= 0)
        s->ended = 1;
    answer(s, b, n);
}

static void release(void *vc)
{
    ctx *c = vc;
    glm_grammar_free(c->p.grammar);
    free(c->eos);
    free(c);
}

glm_token_trie *glm_constraint_vocab(const glm_tok *tok, int vocab, const char *const *tags, int n_tags)
{
    const char **b = glm_calloc((size_t)(vocab > 0 ? vocab : 1), sizeof *b);
    size_t *len = glm_calloc((size_t)(vocab > 0 ? vocab : 1), sizeof *len);
    for (int i = 0; i < vocab; i++) {
        size_t l = 0;
        const char *p = glm_tok_token_bytes(tok, i, &l);
        if (p && !glm_tok_is_added(tok, i)) {
            b[i] = p;
            len[i] = l;
        }
    }
    for (int k = 0; k < n_tags; k++) {
        int32_t id = tags[k] ? glm_tok_token_to_id(tok, tags[k], strlen(tags[k])) : -1;
        if (id >= 0 && id < vocab) {
            b[id] = tags[k];
            len[id] = strlen(tags[k]);
        }
    }
    glm_token_trie *t = glm_token_trie_new(b, len, vocab);
    free(b);
    free(len);
    return t;
}

void glm_constraint_processor(const glm_constraint_params *p, glm_logits_processor *out)
{
    ctx *c = glm_calloc(1, sizeof *c);
    c->p = *p;
    c->p.n_eos = GLM_MIN(p->n_eos, GLM_CONSTRAINT_MAX_EOS);
    c->eos = glm_malloc(sizeof(int32_t) * (size_t)(c->p.n_eos > 0 ? c->p.n_eos : 1));
    if (c->p.n_eos > 0)
        memcpy(c->eos, p->eos_ids, sizeof(int32_t) * (size_t)c->p.n_eos);
    c->p.eos_ids = NULL;
    pattern_set(&c->end, p->think_end);
    pattern_set(&c->alt, p->think_end_alt);
    pattern_set(&c->after, p->end_after);
    c->p.think_end = c->end.text;
    c->p.think_end_alt = c->alt.text;
    c->p.end_after = c->after.text;
    if (!c->end.len)
        c->p.think_open = 0;
    memset(out, 0, sizeof *out);
    out->create = create;
    out->apply = apply;
    out->accept = accept;
    out->destroy = destroy;
    out->release = release;
    out->ctx = c;
}
