/*
 * block_manager.h - who owns which KV-cache block: reference counts, a free
 * list in LRU order, and prefix caching by chained block hashes.
 *
 * A full block (block_size tokens) whose KV has been computed is registered
 * under hash(parent block's hash, its token ids). A new sequence whose prompt
 * starts with the same tokens reuses those blocks instead of recomputing them:
 * the hash finds a candidate, and the stored token ids and parent hash confirm
 * it (wrong KV would take two simultaneous 64-bit hash collisions). Freed blocks keep their hash and stay
 * reusable until the allocator needs them: the least recently freed block is
 * taken first (LRU eviction).
 *
 * Blocks are registered only once their KV is written (glm_bm_commit after
 * a step), so a hit never reads KV that is still being computed.
 * Plain host C, no model knowledge; owned by the engine thread.
 */
#ifndef GLM_BLOCK_MANAGER_H
#define GLM_BLOCK_MANAGER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int32_t *ids;      /* [cap] block ids in position order */
    int n, cap;
    int n_hashed;      /* leading blocks already registered (or reused) */
    uint64_t last_hash;/* hash of block n_hashed - 1 (0 if none) */
} glm_block_table;

typedef struct glm_block_manager glm_block_manager;

glm_block_manager *glm_bm_create(int num_blocks, int block_size, int enable_prefix_caching);
void glm_bm_free(glm_block_manager *bm);

int glm_bm_block_size(const glm_block_manager *bm);
int glm_bm_num_blocks(const glm_block_manager *bm);
/* Blocks not referenced by any sequence (cached ones included). */
int glm_bm_num_free(const glm_block_manager *bm);
/* Blocks referenced by at least one sequence. */
int glm_bm_num_used(const glm_block_manager *bm);

/*
 * Prefix lookup for a sequence about to be admitted with an empty table:
 * how many leading full blocks of tokens[0, n) are cached, never covering
 * the last token (it must be computed to get logits). Sets *n_hit_blocks and
 * *n_hit_free (how many of those are unreferenced, i.e. sit in the free list).
 * Always 0 hits when prefix caching is off.
 */
void glm_bm_lookup(glm_block_manager *bm, const int32_t *tokens, int n, int *n_hit_blocks, int *n_hit_free);

/* Whether `extra` fresh blocks can be taken now. */
int glm_bm_can_take(const glm_block_manager *bm, int extra);

/*
 * Admits a sequence: takes the n_hit_blocks cached prefix blocks (as found by
 * glm_bm_lookup just before) into an empty table. Returns the number of
 * tokens covered (n_hit_blocks * block_size). The caller checked
 * glm_bm_can_take for the rest.
 */
int glm_bm_take_prefix(glm_block_manager *bm, glm_block_table *t, const int32_t *tokens, int n_hit_blocks);

/* Grows the table to cover n_tokens tokens with fresh blocks. Returns GLM_OK,
 * or GLM_ERR (table unchanged) if not enough blocks are free. */
int glm_bm_grow(glm_block_manager *bm, glm_block_table *t, int n_tokens);

/* Registers the table's full blocks among tokens[0, n_computed) for reuse. */
void glm_bm_commit(glm_block_manager *bm, glm_block_table *t, const int32_t *tokens, int n_computed);

/* Drops the table's references (last block first) and empties it. */
void glm_bm_release(glm_block_manager *bm, glm_block_table *t);

/* Prefix-cache counters: queries (admissions looked up, in tokens) and hits (tokens). */
void glm_bm_counters(const glm_block_manager *bm, uint64_t *query_tokens, uint64_t *hit_tokens);
void glm_bm_count_query(glm_block_manager *bm, int query_tokens, int hit_tokens);

#endif
