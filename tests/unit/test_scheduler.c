/*
 * test_scheduler.c - block manager and scheduler without a model: block
 * accounting, prefix hits and LRU eviction, chunked prefill, preemption under
 * a cache too small for everyone, aborts in every state, FCFS order, paused
 * sequences (backpressure) that take no step and give up seats and blocks first.
 *
 * A fake "model" appends next = f(last token) for every sequence whose step
 * reaches its last token, so the expected output of each sequence is known
 * no matter how it was scheduled, chunked or preempted.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "sched/scheduler.h"
#include "core/util.h"
#include "testutil.h"

static int32_t fake_next(int32_t last) { return (last * 7 + 3) % 1000; }

START_TEST(block_manager_basics)
{
    glm_block_manager *bm = glm_bm_create(8, 4, 1);
    glm_block_table a = {0}, b = {0};
    ck_assert_int_eq(glm_bm_num_free(bm), 8);
    ck_assert_int_eq(glm_bm_grow(bm, &a, 9), GLM_OK); /* 3 blocks */
    ck_assert_int_eq(a.n, 3);
    ck_assert_int_eq(glm_bm_num_used(bm), 3);
    ck_assert_int_eq(glm_bm_grow(bm, &b, 24), GLM_ERR); /* 6 > 5 free */
    ck_assert_int_eq(b.n, 0);
    ck_assert_int_eq(glm_bm_grow(bm, &b, 20), GLM_OK);
    ck_assert_int_eq(glm_bm_num_free(bm), 0);
    for (int i = 0; i < a.n; i++)
        for (int j = 0; j < b.n; j++)
            ck_assert_int_ne(a.ids[i], b.ids[j]);
    glm_bm_release(bm, &a);
    glm_bm_release(bm, &b);
    ck_assert_int_eq(glm_bm_num_free(bm), 8);
    free(a.ids);
    free(b.ids);
    glm_bm_free(bm);
}
END_TEST

START_TEST(prefix_hits_and_eviction)
{
    glm_block_manager *bm = glm_bm_create(6, 4, 1);
    int32_t p[13];
    for (int i = 0; i < 13; i++)
        p[i] = 100 + i;
    glm_block_table a = {0}, b = {0}, c = {0};
    int hits, hf;
    glm_bm_lookup(bm, p, 13, &hits, &hf);
    ck_assert_int_eq(hits, 0);
    ck_assert_int_eq(glm_bm_grow(bm, &a, 13), GLM_OK); /* 4 blocks */
    glm_bm_commit(bm, &a, p, 6);                       /* only block 0 is complete */
    glm_bm_lookup(bm, p, 13, &hits, &hf);
    ck_assert_int_eq(hits, 1);
    glm_bm_commit(bm, &a, p, 13);                      /* blocks 0..2 */
    glm_bm_lookup(bm, p, 13, &hits, &hf);
    ck_assert_int_eq(hits, 3);
    ck_assert_int_eq(hf, 0);
    /* never the block holding the last token: a 12-token prompt reuses 2 */
    glm_bm_lookup(bm, p, 12, &hits, &hf);
    ck_assert_int_eq(hits, 2);
    /* b shares a's prefix */
    glm_bm_lookup(bm, p, 13, &hits, &hf);
    ck_assert_int_eq(glm_bm_take_prefix(bm, &b, p, hits), 12);
    ck_assert_int_eq(glm_bm_grow(bm, &b, 13), GLM_OK);
    ck_assert_int_eq(b.ids[0], a.ids[0]);
    ck_assert_int_eq(b.ids[2], a.ids[2]);
    ck_assert_int_ne(b.ids[3], a.ids[3]);
    ck_assert_int_eq(glm_bm_num_used(bm), 5);
    /* a different token in block 1 stops the match there */
    int32_t q[13];
    memcpy(q, p, sizeof q);
    q[5] = 7;
    glm_bm_lookup(bm, q, 13, &hits, &hf);
    ck_assert_int_eq(hits, 1);
    /* freed blocks stay cached until needed */
    glm_bm_release(bm, &a);
    glm_bm_release(bm, &b);
    ck_assert_int_eq(glm_bm_num_used(bm), 0);
    glm_bm_lookup(bm, p, 13, &hits, &hf);
    ck_assert_int_eq(hits, 3);
    ck_assert_int_eq(hf, 3);
    /* taking all 6 blocks for something else evicts them */
    ck_assert_int_eq(glm_bm_grow(bm, &c, 24), GLM_OK);
    glm_bm_lookup(bm, p, 13, &hits, &hf);
    ck_assert_int_eq(hits, 0);
    glm_bm_release(bm, &c);
    /* LRU: after a partial reuse the least recently freed block goes first */
    glm_block_table d = {0}, e = {0};
    ck_assert_int_eq(glm_bm_grow(bm, &d, 8), GLM_OK);
    glm_bm_commit(bm, &d, p, 8);
    glm_bm_release(bm, &d); /* its 2 blocks go to the free list's tail */
    ck_assert_int_eq(glm_bm_grow(bm, &e, 16), GLM_OK); /* the 4 older blocks */
    glm_bm_lookup(bm, p, 13, &hits, &hf);
    ck_assert_int_eq(hits, 2);
    glm_bm_release(bm, &e);
    /* prefix caching off: never a hit */
    glm_block_manager *off = glm_bm_create(6, 4, 0);
    glm_block_table f = {0};
    glm_bm_grow(off, &f, 13);
    glm_bm_commit(off, &f, p, 13);
    glm_bm_lookup(off, p, 13, &hits, &hf);
    ck_assert_int_eq(hits, 0);
    glm_bm_release(off, &f);
    glm_bm_free(off);
    free(a.ids), free(b.ids), free(c.ids), free(d.ids), free(e.ids), free(f.ids);
    glm_bm_free(bm);
}
END_TEST

/* Hash-map deletion under churn: many blocks registered and evicted. */
START_TEST(prefix_map_churn)
{
    glm_block_manager *bm = glm_bm_create(64, 2, 1);
    uint64_t x = 1;
    for (int round = 0; round < 2000; round++) {
        int32_t p[33];
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        for (int i = 0; i < 33; i++)
            p[i] = (int32_t)((x >> (i % 40)) % 5); /* few distinct tokens: many equal blocks */
        glm_block_table t = {0};
        int hits, hf;
        glm_bm_lookup(bm, p, 33, &hits, &hf);
        glm_bm_take_prefix(bm, &t, p, hits);
        ck_assert_int_eq(glm_bm_grow(bm, &t, 33), GLM_OK);
        glm_bm_commit(bm, &t, p, 33);
        int h2, hf2;
        glm_bm_lookup(bm, p, 33, &h2, &hf2);
        ck_assert_int_eq(h2, 16); /* everything but the last token's block */
        glm_bm_release(bm, &t);
        free(t.ids);
    }
    ck_assert_int_eq(glm_bm_num_free(bm), 64);
    glm_bm_free(bm);
}
END_TEST

typedef struct {
    glm_sequence *s;
    int max_new;
    int done;
    int aborted;
} fake_req;

/* Drives the scheduler until every request finishes; checks invariants each
 * step. abort_at[i] >= 0 aborts request i at that step. Returns steps. */
static int drive(glm_scheduler *sch, fake_req *r, int n, const int *abort_at, int budget_tokens)
{
    glm_block_manager *bm = glm_sched_block_manager(sch);
    int steps = 0, left = n;
    glm_sched_batch b;
    while (left > 0) {
        ck_assert_msg(steps < 100000, "no progress");
        for (int i = 0; i < n; i++) {
            if (abort_at && abort_at[i] == steps && !r[i].done) {
                glm_sched_remove(sch, r[i].s);
                r[i].done = r[i].aborted = 1;
                left--;
            }
        }
        glm_sched_step(sch, &b);
        ck_assert_int_le(b.n_tokens, budget_tokens);
        for (int i = 0; i < b.n_full; i++) {
            fake_req *q = b.full[i]->owner;
            glm_sched_remove(sch, b.full[i]);
            q->done = 1;
            left--;
        }
        if (b.n == 0) {
            ck_assert_msg(left == 0 || glm_sched_num_running(sch) + glm_sched_num_waiting(sch) > 0, "lost");
            steps++;
            continue;
        }
        /* every scheduled sequence has blocks for its new tokens, none shared
         * beyond full prefix blocks */
        for (int i = 0; i < b.n; i++) {
            glm_sequence *s = b.seqs[i];
            ck_assert_int_ge(s->table.n * glm_bm_block_size(bm), s->n_computed + b.n_new[i]);
            ck_assert_int_eq(s->status, GLM_SEQ_RUNNING);
        }
        glm_sched_commit(sch, &b);
        for (int i = 0; i < b.n; i++) {
            glm_sequence *s = b.seqs[i];
            if (s->n_computed < s->n_tokens)
                continue;
            fake_req *q = s->owner;
            glm_seq_append(s, fake_next(s->tokens[s->n_tokens - 1]));
            if (s->n_tokens - s->n_prompt == q->max_new) {
                glm_sched_remove(sch, s);
                q->done = 1;
                left--;
            }
        }
        steps++;
    }
    ck_assert_int_eq(glm_bm_num_used(bm), 0);
    ck_assert_int_eq(glm_sched_num_running(sch), 0);
    ck_assert_int_eq(glm_sched_num_waiting(sch), 0);
    return steps;
}

static void make_reqs(fake_req *r, int n, int seed)
{
    for (int i = 0; i < n; i++) {
        int32_t p[200];
        int len = 5 + (i * 37 + seed) % 60;
        for (int k = 0; k < len; k++)
            p[k] = (i * 131 + k * 17 + seed) % 1000;
        r[i].max_new = 3 + (i * 11) % 20;
        r[i].s = glm_seq_create((uint64_t)i, p, len, r[i].max_new);
        r[i].s->owner = &r[i];
        r[i].done = r[i].aborted = 0;
    }
}

/* A prefix-caching block manager of n_blocks x block_size, a scheduler over it
 * with p, and the n requests of r queued in order. */
typedef struct {
    glm_block_manager *bm;
    glm_scheduler *sch;
} rig;

static rig rig_start(int n_blocks, int block_size, glm_sched_params p, fake_req *r, int n)
{
    rig g;
    g.bm = glm_bm_create(n_blocks, block_size, 1);
    g.sch = glm_sched_create(&p, g.bm);
    for (int i = 0; i < n; i++)
        glm_sched_add(g.sch, r[i].s, 0);
    return g;
}

/* Frees the requests' sequences, the scheduler and the block manager. */
static void rig_end(rig *g, fake_req *r, int n)
{
    for (int i = 0; i < n; i++)
        glm_seq_free(r[i].s);
    glm_sched_free(g->sch);
    glm_bm_free(g->bm);
}

static void check_outputs(fake_req *r, int n)
{
    for (int i = 0; i < n; i++) {
        if (r[i].aborted)
            continue;
        glm_sequence *s = r[i].s;
        ck_assert_int_eq(s->n_tokens - s->n_prompt, r[i].max_new);
        for (int k = s->n_prompt; k < s->n_tokens; k++)
            ck_assert_int_eq(s->tokens[k], fake_next(s->tokens[k - 1]));
    }
}

START_TEST(everyone_finishes_with_preemption)
{
    enum { N = 16 };
    fake_req r[N];
    make_reqs(r, N, 3);
    /* 12 blocks of 8 = 96 tokens: a few sequences at a time */
    rig g = rig_start(12, 8, (glm_sched_params){8, 32, 0}, r, N);
    drive(g.sch, r, N, NULL, 32);
    ck_assert_uint_gt(glm_sched_num_preemptions(g.sch), 0);
    check_outputs(r, N);
    rig_end(&g, r, N);
}
END_TEST

START_TEST(roomy_cache_no_preemption_and_limits)
{
    enum { N = 16 };
    fake_req r[N];
    make_reqs(r, N, 5);
    rig g = rig_start(1024, 16, (glm_sched_params){4, 64, 0}, r, N);
    glm_scheduler *sch = g.sch;
    glm_sched_batch b;
    glm_sched_step(sch, &b);
    ck_assert_int_le(b.n, 4);
    ck_assert_int_le(glm_sched_num_running(sch), 4);
    /* FCFS: the first admitted are the first submitted */
    for (int i = 0; i < b.n; i++)
        ck_assert_ptr_eq(b.seqs[i], r[i].s);
    glm_sched_commit(sch, &b);
    /* finish the rest through the common driver (commit already done for step 0) */
    for (int i = 0; i < b.n; i++) {
        glm_sequence *s = b.seqs[i];
        if (s->n_computed == s->n_tokens)
            glm_seq_append(s, fake_next(s->tokens[s->n_tokens - 1]));
    }
    drive(sch, r, N, NULL, 64);
    ck_assert_uint_eq(glm_sched_num_preemptions(sch), 0);
    check_outputs(r, N);
    rig_end(&g, r, N);
}
END_TEST

START_TEST(aborts_in_every_state)
{
    enum { N = 12 };
    fake_req r[N];
    make_reqs(r, N, 9);
    rig g = rig_start(10, 8, (glm_sched_params){6, 16, 0}, r, N);
    glm_scheduler *sch = g.sch;
    /* step 0: abort a waiting one; then prefilling and decoding ones */
    int abort_at[N];
    for (int i = 0; i < N; i++)
        abort_at[i] = -1;
    abort_at[11] = 0; /* still waiting */
    abort_at[0] = 1;  /* prefilling (chunks of <= 16 tokens) */
    abort_at[2] = 9;  /* decoding or preempted */
    abort_at[5] = 4;
    drive(sch, r, N, abort_at, 16);
    check_outputs(r, N);
    rig_end(&g, r, N);
}
END_TEST

START_TEST(repeated_prompt_reuses_blocks)
{
    fake_req r[2];
    int32_t prompt[30];
    for (int i = 0; i < 30; i++)
        prompt[i] = i + 1;
    for (int i = 0; i < 2; i++) {
        r[i].max_new = 5;
        r[i].s = glm_seq_create((uint64_t)i, prompt, 30, 5);
        r[i].s->owner = &r[i];
        r[i].done = r[i].aborted = 0;
    }
    rig g = rig_start(64, 4, (glm_sched_params){4, 256, 0}, r, 0);
    glm_scheduler *sch = g.sch;
    glm_block_manager *bm = g.bm;
    glm_sched_add(sch, r[0].s, 0);
    drive(sch, r, 1, NULL, 256);
    ck_assert_int_eq(r[0].s->n_cached, 0);
    glm_sched_add(sch, r[1].s, 0);
    drive(sch, r + 1, 1, NULL, 256);
    ck_assert_int_eq(r[1].s->n_cached, 28); /* 7 full blocks, never the last token */
    check_outputs(r, 2);
    uint64_t q, h;
    glm_bm_counters(bm, &q, &h);
    ck_assert_uint_eq(q, 60);
    ck_assert_uint_eq(h, 28);
    rig_end(&g, r, 2);
}
END_TEST

START_TEST(prompt_logits_skip_the_cache)
{
    /* a sequence that wants its prompt's logits computes all of it, in chunks
     * of max_prompt_rows; a plain one beside it still reuses the cache */
    glm_block_manager *bm = glm_bm_create(64, 4, 1);
    glm_scheduler *sch = glm_sched_create(&(glm_sched_params){4, 256, 8}, bm);
    int32_t prompt[30];
    for (int i = 0; i < 30; i++)
        prompt[i] = i + 1;
    glm_sequence *a = glm_seq_create(0, prompt, 30, 4), *b = glm_seq_create(1, prompt, 30, 4),
                 *c = glm_seq_create(2, prompt, 30, 4);
    glm_sched_batch sb;
    glm_sched_add(sch, a, 0);
    ck_assert_int_eq(glm_sched_step(sch, &sb), 1);
    glm_sched_commit(sch, &sb);
    b->prompt_logits = 1;
    glm_sched_add(sch, b, 0);
    glm_sched_add(sch, c, 0);
    ck_assert_int_eq(glm_sched_step(sch, &sb), 2);
    ck_assert(sb.seqs[0] == b && sb.seqs[1] == c);
    ck_assert_int_eq(b->n_cached, 0);
    ck_assert_int_eq(sb.n_new[0], 8);
    ck_assert_int_eq(c->n_cached, 28);
    glm_sched_commit(sch, &sb);
    int steps = 1;
    while (b->n_computed < 30) {
        glm_sched_step(sch, &sb);
        for (int i = 0; i < sb.n; i++)
            if (sb.seqs[i] == b)
                ck_assert_int_le(sb.n_new[i], 8);
        glm_sched_commit(sch, &sb);
        steps++;
    }
    ck_assert_int_eq(steps, 4); /* 8 + 8 + 8 + 6 */
    glm_sched_remove(sch, a);
    glm_sched_remove(sch, b);
    glm_sched_remove(sch, c);
    glm_seq_free(a);
    glm_seq_free(b);
    glm_seq_free(c);
    glm_sched_free(sch);
    glm_bm_free(bm);
}
END_TEST

START_TEST(alone_and_too_big)
{
    glm_block_manager *bm = glm_bm_create(4, 4, 1);
    glm_sched_params p = {4, 64, 0};
    glm_scheduler *sch = glm_sched_create(&p, bm);
    fake_req r[1];
    int32_t prompt[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    r[0].max_new = 100; /* 110 tokens never fit 16 */
    r[0].s = glm_seq_create(0, prompt, 10, 100);
    r[0].s->owner = &r[0];
    r[0].done = r[0].aborted = 0;
    glm_sched_add(sch, r[0].s, 0);
    drive(sch, r, 1, NULL, 64);
    ck_assert(r[0].s->out_of_cache);
    ck_assert_int_eq(r[0].s->n_tokens, 17); /* 16 cached + the token sampled from the last */
    glm_seq_free(r[0].s);
    glm_sched_free(sch);
    glm_bm_free(bm);
}
END_TEST

/* One step of the fake model: plan, commit, append a token to every sequence
 * whose step reached its last token, finish those at max_new. Returns the plan. */
static glm_sched_batch step_once(glm_scheduler *sch)
{
    glm_sched_batch b;
    glm_sched_step(sch, &b);
    ck_assert_int_eq(b.n_full, 0);
    glm_sched_commit(sch, &b);
    for (int i = 0; i < b.n; i++) {
        glm_sequence *s = b.seqs[i];
        ck_assert(!s->paused);
        if (s->n_computed < s->n_tokens)
            continue;
        fake_req *q = s->owner;
        glm_seq_append(s, fake_next(s->tokens[s->n_tokens - 1]));
        if (s->n_tokens - s->n_prompt == q->max_new) {
            glm_sched_remove(sch, s);
            q->done = 1;
        }
    }
    return b;
}

static int in_plan(const glm_sched_batch *b, const glm_sequence *s)
{
    for (int i = 0; i < b->n; i++)
        if (b->seqs[i] == s)
            return 1;
    return 0;
}

/* A paused running sequence takes no step and keeps its blocks while nobody
 * needs them; a waiting sequence short of a seat takes the paused one's, and the
 * paused one, preempted, is not admitted again until it is resumed. */
START_TEST(paused_takes_no_step_and_yields_its_seat)
{
    enum { N = 3 };
    fake_req r[N];
    make_reqs(r, N, 21);
    r[0].max_new = 20;
    r[1].max_new = r[2].max_new = 3;
    rig g = rig_start(256, 4, (glm_sched_params){2, 256, 0}, r, N);
    glm_scheduler *sch = g.sch;
    glm_sched_batch b = step_once(sch); /* A and B admitted, C waits for a seat */
    ck_assert(in_plan(&b, r[0].s) && in_plan(&b, r[1].s) && !in_plan(&b, r[2].s));
    int blocks = r[0].s->table.n, n_tok = r[0].s->n_tokens;

    /* no seat needed yet: A keeps running and its blocks, without a step */
    r[0].s->paused = 1;
    r[2].s->paused = 1; /* a paused waiting sequence is not admitted either */
    b = step_once(sch);
    ck_assert(!in_plan(&b, r[0].s) && in_plan(&b, r[1].s) && !in_plan(&b, r[2].s));
    ck_assert_int_eq(r[0].s->status, GLM_SEQ_RUNNING);
    ck_assert_int_eq(r[0].s->table.n, blocks);
    ck_assert_uint_eq(glm_sched_num_preemptions(sch), 0);

    /* C wants a seat: A gives its own up */
    r[2].s->paused = 0;
    b = step_once(sch);
    ck_assert(!in_plan(&b, r[0].s) && in_plan(&b, r[2].s));
    ck_assert_int_eq(r[0].s->status, GLM_SEQ_WAITING);
    ck_assert_int_eq(r[0].s->table.n, 0);
    ck_assert_uint_eq(glm_sched_num_preemptions(sch), 1);
    while (!r[1].done || !r[2].done) {
        b = step_once(sch);
        ck_assert(!in_plan(&b, r[0].s)); /* seats are free now, but A is paused */
    }
    ck_assert_int_eq(r[0].s->n_tokens, n_tok);
    ck_assert_int_eq(glm_sched_num_waiting(sch), 1);

    /* resumed: recomputed, and its tokens are those it would have had */
    r[0].s->paused = 0;
    drive(sch, r, 1, NULL, 256); /* A alone is left */
    check_outputs(r, N);
    rig_end(&g, r, N);
}
END_TEST

/* A running sequence that needs a block takes it from a paused one, even an
 * older one, before preempting anybody who reads (itself included). */
START_TEST(paused_gives_up_blocks_first)
{
    enum { N = 2 };
    fake_req r[N];
    int32_t p[8];
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 8; k++)
            p[k] = 500 + i * 50 + k;
        r[i].max_new = i == 0 ? 10 : 20;
        r[i].s = glm_seq_create((uint64_t)i, p, 8, r[i].max_new);
        r[i].s->owner = &r[i];
        r[i].done = r[i].aborted = 0;
    }
    /* 8 blocks of 4: B alone needs 7 of them for its 28 tokens */
    rig g = rig_start(8, 4, (glm_sched_params){4, 64, 0}, r, N);
    glm_scheduler *sch = g.sch;
    step_once(sch); /* both prefill: 2 blocks each */
    r[0].s->paused = 1;
    while (!r[1].done) {
        glm_sched_batch b = step_once(sch);
        ck_assert(!in_plan(&b, r[0].s));
    }
    ck_assert_int_eq(r[1].s->n_preempted, 0);
    ck_assert_int_eq(r[0].s->n_preempted, 1);
    ck_assert_int_eq(r[0].s->status, GLM_SEQ_WAITING);
    r[0].s->paused = 0;
    drive(sch, r, 1, NULL, 64);
    check_outputs(r, N);
    rig_end(&g, r, N);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("scheduler");
    TCase *tc = tcase_create("scheduler");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, block_manager_basics);
    tcase_add_test(tc, prefix_hits_and_eviction);
    tcase_add_test(tc, prefix_map_churn);
    tcase_add_test(tc, everyone_finishes_with_preemption);
    tcase_add_test(tc, roomy_cache_no_preemption_and_limits);
    tcase_add_test(tc, aborts_in_every_state);
    tcase_add_test(tc, repeated_prompt_reuses_blocks);
    tcase_add_test(tc, prompt_logits_skip_the_cache);
    tcase_add_test(tc, alone_and_too_big);
    tcase_add_test(tc, paused_takes_no_step_and_yields_its_seat);
    tcase_add_test(tc, paused_gives_up_blocks_first);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
