/* constraint.c - see constraint.h. */
#include "constraint.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define END_MAX 64

typedef struct {
    glm_constraint_params p;
    int32_t *eos;                /* [p.n_eos] */
    char end[END_MAX + 1];       /* the reasoning's closing text */
    int end_len;
    int fail[END_MAX];           /* KMP failure function of end */
    char after[END_MAX + 1];     /* end_after */
    int after_len;
    int after_fail[END_MAX];
} ctx;

typedef struct {
    const ctx *c;
    int reasoning;               /* still inside the reasoning */
    int matched;                 /* bytes of end matched so far */
    int matched_after;           /* bytes of after matched so far */
    int ended;                   /* end_after was seen: only eos */
    int n_reasoning;             /* tokens generated inside the reasoning */
    glm_grammar_matcher *m;      /* NULL without a grammar */
    uint32_t *allowed;           /* mask scratch */
    int dead;                    /* the grammar rejected a token: only eos from here on */
} state;

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

static void only(float *logits, int vocab, const ctx *c, int32_t keep)
{
    for (int i = 0; i < vocab; i++)
        if (i != keep && !(keep < 0 && is_eos(c, i)))
            logits[i] = -INFINITY;
}

static int apply(void *vs, float *logits, int vocab)
{
    state *s = vs;
    const ctx *c = s->c;
    if (c->p.forbid >= 0 && c->p.forbid < vocab)
        logits[c->p.forbid] = -INFINITY;
    if (s->ended) {
        only(logits, vocab, c, -1);
        return 0;
    }
    if (s->reasoning) {
        /* the closing tag counts as a reasoning token (as reasoning_tokens does): at most
         * max(budget, 1) in all */
        if (c->p.budget >= 0 && s->n_reasoning >= (c->p.budget > 0 ? c->p.budget - 1 : 0) && c->p.think_end_id >= 0 &&
            c->p.think_end_id < vocab) {
            only(logits, vocab, c, c->p.think_end_id);
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
    if (s->dead || glm_grammar_matcher_is_dead_end(s->m)) {
        if (!s->dead && !glm_grammar_matcher_can_end(s->m))
            return -1;
        only(logits, vocab, c, -1);
        return 0;
    }
    int n = glm_grammar_matcher_mask(s->m, c->p.trie, s->allowed);
    int can_end = glm_grammar_matcher_can_end(s->m);
    if (n == 0 && !can_end)
        return -1;
    int tv = glm_token_trie_vocab(c->p.trie);
    for (int i = 0; i < vocab; i++) {
        int ok = i < tv && (s->allowed[i >> 5] >> (i & 31) & 1u);
        if (!ok && !(can_end && is_eos(c, i)))
            logits[i] = -INFINITY;
    }
    return 0;
}

/* Follows the text pat (KMP failure function fail) through b from *matched
 * bytes matched; returns the offset just past it when it completes inside b,
 * else -1. */
static long find(const char *pat, int len, const int *fail, int *matched, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        while (*matched > 0 && pat[*matched] != b[i])
            *matched = fail[*matched - 1];
        if (pat[*matched] == b[i])
            (*matched)++;
        if (*matched == len)
            return (long)(i + 1);
    }
    return -1;
}

static void kmp(const char *pat, int len, int *fail)
{
    for (int i = 1, k = 0; i < len; i++) {
        while (k > 0 && pat[i] != pat[k])
            k = fail[k - 1];
        if (pat[i] == pat[k])
            k++;
        fail[i] = k;
    }
}

static void accept(void *vs, int32_t tok)
{
    state *s = vs;
    const ctx *c = s->c;
    size_t n = 0;
    const char *b = glm_tok_token_bytes(c->p.tok, tok, &n);
    if (!b)
        n = 0;
    if (s->reasoning) {
        s->n_reasoning++;
        long at = c->end_len ? find(c->end, c->end_len, c->fail, &s->matched, b, n) : -1;
        if (at < 0)
            return;
        s->reasoning = 0;
        b += at;
        n -= (size_t)at;
    }
    if (c->after_len && !s->ended && find(c->after, c->after_len, c->after_fail, &s->matched_after, b, n) >= 0)
        s->ended = 1;
    if (!s->m || s->dead || is_eos(c, tok) || n == 0)
        return;
    if (!glm_grammar_matcher_accept(s->m, b, n))
        s->dead = 1; /* a token the mask did not allow (e.g. forced by a bias of +inf) */
}

static void release(void *vc)
{
    ctx *c = vc;
    glm_grammar_free(c->p.grammar);
    free(c->eos);
    free(c);
}

void glm_constraint_processor(const glm_constraint_params *p, glm_logits_processor *out)
{
    ctx *c = glm_calloc(1, sizeof *c);
    c->p = *p;
    c->eos = glm_malloc(sizeof(int32_t) * (size_t)(p->n_eos > 0 ? p->n_eos : 1));
    if (p->n_eos > 0)
        memcpy(c->eos, p->eos_ids, sizeof(int32_t) * (size_t)p->n_eos);
    c->p.eos_ids = NULL;
    size_t el = p->think_end ? strlen(p->think_end) : 0;
    if (el > END_MAX)
        el = 0; /* tags are at most 64 bytes (output_parser.h) */
    memcpy(c->end, p->think_end ? p->think_end : "", el);
    c->end_len = (int)el;
    c->p.think_end = c->end;
    kmp(c->end, c->end_len, c->fail);
    size_t al = p->end_after ? strlen(p->end_after) : 0;
    if (al > END_MAX)
        al = 0;
    memcpy(c->after, p->end_after ? p->end_after : "", al);
    c->after_len = (int)al;
    c->p.end_after = c->after;
    kmp(c->after, c->after_len, c->after_fail);
    if (!c->end_len)
        c->p.think_open = 0;
    memset(out, 0, sizeof *out);
    out->create = create;
    out->apply = apply;
    out->accept = accept;
    out->destroy = destroy;
    out->release = release;
    out->ctx = c;
}
