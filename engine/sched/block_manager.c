/*
 * block_manager.c - see block_manager.h.
 *
 * The hash map is open addressing with linear probing and backward-shift
 * deletion, keyed by block hash, valued by block id; a block's own hash and
 * token ids live in per-block arrays so a lookup can confirm the tokens.
 */
#include "sched/block_manager.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

struct glm_block_manager {
    int num_blocks, block_size, prefix;
    int32_t *ref;        /* [num_blocks] */
    uint64_t *hash;      /* [num_blocks] 0 = not registered */
    uint64_t *parent;    /* [num_blocks] hash of the preceding block (0 for the first) */
    int32_t *tokens;     /* [num_blocks * block_size] tokens of registered blocks */
    int32_t *prev, *next;/* LRU free list links, -1 terminated */
    int head, tail, n_free;
    int32_t *map;        /* [map_cap] block ids, -1 empty */
    size_t map_cap;
    uint64_t q_tokens, hit_tokens;
};

static uint64_t block_hash(uint64_t parent, const int32_t *tok, int n)
{
    uint64_t h = glm_mix64(parent ^ 0x9e3779b97f4a7c15ull);
    for (int i = 0; i < n; i++)
        h = glm_mix64(h ^ (uint32_t)tok[i]);
    return h ? h : 1; /* 0 means "no hash" */
}

/* ---- LRU free list ---- */

static void lru_push_tail(glm_block_manager *bm, int b)
{
    bm->prev[b] = bm->tail;
    bm->next[b] = -1;
    if (bm->tail >= 0)
        bm->next[bm->tail] = b;
    else
        bm->head = b;
    bm->tail = b;
    bm->n_free++;
}

static void lru_remove(glm_block_manager *bm, int b)
{
    if (bm->prev[b] >= 0)
        bm->next[bm->prev[b]] = bm->next[b];
    else
        bm->head = bm->next[b];
    if (bm->next[b] >= 0)
        bm->prev[bm->next[b]] = bm->prev[b];
    else
        bm->tail = bm->prev[b];
    bm->prev[b] = bm->next[b] = -1;
    bm->n_free--;
}

/* ---- hash map ---- */

static size_t slot_of(const glm_block_manager *bm, uint64_t h)
{
    return (size_t)(h * 0x9e3779b97f4a7c15ull >> 7) & (bm->map_cap - 1);
}

/* Block registered under h, after the block hashed `parent`, with exactly
 * these tokens, or -1. Comparing the parent's hash too means a collision of
 * the chained hash alone cannot match a block from another prefix. */
static int map_find(const glm_block_manager *bm, uint64_t h, uint64_t parent, const int32_t *tok)
{
    for (size_t i = slot_of(bm, h);; i = (i + 1) & (bm->map_cap - 1)) {
        int b = bm->map[i];
        if (b < 0)
            return -1;
        if (bm->hash[b] == h && bm->parent[b] == parent &&
            memcmp(bm->tokens + (size_t)b * bm->block_size, tok, sizeof(int32_t) * (size_t)bm->block_size) == 0)
            return b;
    }
}

static void map_insert(glm_block_manager *bm, int b)
{
    size_t i = slot_of(bm, bm->hash[b]);
    while (bm->map[i] >= 0)
        i = (i + 1) & (bm->map_cap - 1);
    bm->map[i] = b;
}

static void map_remove(glm_block_manager *bm, int b)
{
    size_t m = bm->map_cap - 1, i = slot_of(bm, bm->hash[b]);
    while (bm->map[i] != b) {
        GLM_ASSERT(bm->map[i] >= 0);
        i = (i + 1) & m;
    }
    /* backward-shift deletion keeps every probe chain unbroken */
    size_t j = i;
    for (;;) {
        bm->map[i] = -1;
        for (;;) {
            j = (j + 1) & m;
            if (bm->map[j] < 0)
                return;
            size_t k = slot_of(bm, bm->hash[bm->map[j]]);
            /* move map[j] into the hole at i unless its home k lies cyclically in (i, j] */
            if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
                continue;
            break;
        }
        bm->map[i] = bm->map[j];
        i = j;
    }
}

/* ---- public ---- */

glm_block_manager *glm_bm_create(int num_blocks, int block_size, int enable_prefix_caching)
{
    GLM_ASSERT(num_blocks > 0 && block_size > 0);
    glm_block_manager *bm = glm_calloc(1, sizeof *bm);
    bm->num_blocks = num_blocks;
    bm->block_size = block_size;
    bm->prefix = enable_prefix_caching;
    bm->ref = glm_calloc((size_t)num_blocks, sizeof(int32_t));
    bm->hash = glm_calloc((size_t)num_blocks, sizeof(uint64_t));
    bm->parent = glm_calloc((size_t)num_blocks, sizeof(uint64_t));
    bm->tokens = glm_malloc(sizeof(int32_t) * (size_t)num_blocks * block_size);
    bm->prev = glm_malloc(sizeof(int32_t) * (size_t)num_blocks);
    bm->next = glm_malloc(sizeof(int32_t) * (size_t)num_blocks);
    bm->head = bm->tail = -1;
    for (int b = 0; b < num_blocks; b++)
        lru_push_tail(bm, b);
    bm->map_cap = 16;
    while (bm->map_cap < (size_t)num_blocks * 2)
        bm->map_cap *= 2;
    bm->map = glm_malloc(sizeof(int32_t) * bm->map_cap);
    memset(bm->map, 0xff, sizeof(int32_t) * bm->map_cap);
    return bm;
}

void glm_bm_free(glm_block_manager *bm)
{
    if (!bm)
        return;
    free(bm->ref);
    free(bm->hash);
    free(bm->parent);
    free(bm->tokens);
    free(bm->prev);
    free(bm->next);
    free(bm->map);
    free(bm);
}

int glm_bm_block_size(const glm_block_manager *bm) { return bm->block_size; }
int glm_bm_num_blocks(const glm_block_manager *bm) { return bm->num_blocks; }
int glm_bm_num_free(const glm_block_manager *bm) { return bm->n_free; }
int glm_bm_num_used(const glm_block_manager *bm) { return bm->num_blocks - bm->n_free; }
int glm_bm_can_take(const glm_block_manager *bm, int extra) { return extra <= bm->n_free; }

void glm_bm_lookup(glm_block_manager *bm, const int32_t *tokens, int n, int *n_hit_blocks, int *n_hit_free)
{
    int bs = bm->block_size, hits = 0, free_hits = 0;
    uint64_t h = 0;
    for (int i = 0; bm->prefix && (i + 1) * bs <= n - 1; i++) {
        uint64_t parent = h;
        h = block_hash(parent, tokens + (size_t)i * bs, bs);
        int b = map_find(bm, h, parent, tokens + (size_t)i * bs);
        if (b < 0)
            break;
        hits++;
        free_hits += bm->ref[b] == 0;
    }
    *n_hit_blocks = hits;
    *n_hit_free = free_hits;
}

static void table_push(glm_block_table *t, int32_t b)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 8;
        t->ids = glm_realloc(t->ids, sizeof(int32_t) * (size_t)t->cap);
    }
    t->ids[t->n++] = b;
}

int glm_bm_take_prefix(glm_block_manager *bm, glm_block_table *t, const int32_t *tokens, int n_hit_blocks)
{
    GLM_ASSERT(t->n == 0);
    int bs = bm->block_size;
    uint64_t h = 0;
    for (int i = 0; i < n_hit_blocks; i++) {
        uint64_t parent = h;
        h = block_hash(parent, tokens + (size_t)i * bs, bs);
        int b = map_find(bm, h, parent, tokens + (size_t)i * bs);
        GLM_ASSERT(b >= 0);
        if (bm->ref[b]++ == 0)
            lru_remove(bm, b);
        table_push(t, b);
    }
    t->n_hashed = n_hit_blocks;
    t->last_hash = h;
    return n_hit_blocks * bs;
}

int glm_bm_grow(glm_block_manager *bm, glm_block_table *t, int n_tokens)
{
    int need = (n_tokens + bm->block_size - 1) / bm->block_size - t->n;
    if (need <= 0)
        return GLM_OK;
    if (need > bm->n_free)
        return GLM_ERR;
    for (int k = 0; k < need; k++) {
        int b = bm->head; /* least recently freed */
        lru_remove(bm, b);
        if (bm->hash[b]) { /* evict its cached content */
            map_remove(bm, b);
            bm->hash[b] = 0;
        }
        bm->ref[b] = 1;
        table_push(t, b);
    }
    return GLM_OK;
}

void glm_bm_commit(glm_block_manager *bm, glm_block_table *t, const int32_t *tokens, int n_computed)
{
    int bs = bm->block_size;
    if (!bm->prefix)
        return;
    while (t->n_hashed < t->n && (t->n_hashed + 1) * bs <= n_computed) {
        int i = t->n_hashed;
        const int32_t *tok = tokens + (size_t)i * bs;
        uint64_t h = block_hash(t->last_hash, tok, bs);
        int b = t->ids[i];
        if (!bm->hash[b] && map_find(bm, h, t->last_hash, tok) < 0) {
            bm->hash[b] = h;
            bm->parent[b] = t->last_hash;
            memcpy(bm->tokens + (size_t)b * bs, tok, sizeof(int32_t) * (size_t)bs);
            map_insert(bm, b);
        }
        t->last_hash = h;
        t->n_hashed++;
    }
}

void glm_bm_release(glm_block_manager *bm, glm_block_table *t)
{
    for (int i = t->n - 1; i >= 0; i--) {
        int b = t->ids[i];
        GLM_ASSERT(bm->ref[b] > 0);
        if (--bm->ref[b] == 0)
            lru_push_tail(bm, b);
    }
    t->n = 0;
    t->n_hashed = 0;
    t->last_hash = 0;
}

void glm_bm_counters(const glm_block_manager *bm, uint64_t *query_tokens, uint64_t *hit_tokens)
{
    *query_tokens = bm->q_tokens;
    *hit_tokens = bm->hit_tokens;
}

void glm_bm_count_query(glm_block_manager *bm, int query_tokens, int hit_tokens)
{
    bm->q_tokens += (uint64_t)query_tokens;
    bm->hit_tokens += (uint64_t)hit_tokens;
}
