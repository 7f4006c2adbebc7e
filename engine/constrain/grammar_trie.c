/*
 * grammar_trie.c - the vocabulary as a byte trie (glm_token_trie_*): nodes in
 * preorder with subtree ends, so that a token mask (grammar_match.c) can skip
 * a whole subtree at the first byte the grammar rejects.
 */
#include <stdlib.h>
#include <string.h>

#include "constrain/grammar_internal.h"
#include "core/util.h"

/* --- token trie and mask ----------------------------------------------------------- */

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

