/*
 * grammar_check.c - properties of a compiled grammar that the parser checks
 * before it hands the grammar out: which rules match the empty string, and
 * whether a rule reaches itself without consuming input (left recursion,
 * which the matcher's stack expansion could never finish). Both linear in
 * the grammar's size.
 */
#include <stdlib.h>
#include <string.h>

#include "constrain/grammar_internal.h"
#include "core/util.h"

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

uint32_t grammar_left_recursive_rule(const glm_grammar *g)
{
    uint8_t *nul = nullable_rules(g);
    uint32_t r = left_recursive_rule(g, nul);
    free(nul);
    return r;
}
