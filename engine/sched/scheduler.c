/*
 * scheduler.c - see scheduler.h.
 *
 * The waiting queue is a ring buffer of sequence pointers (head = next to
 * admit); the running list is an array in admission order, so the victim of
 * a preemption is its last paused entry, else its last entry.
 */
#include "sched/scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

struct glm_scheduler {
    glm_sched_params p;
    glm_block_manager *bm;
    glm_sequence **wait;        /* ring */
    int w_head, w_n, w_cap;
    glm_sequence **run;
    int r_n, r_cap;
    uint64_t preemptions;
    /* step output storage */
    glm_sequence **out_seqs;
    int *out_new;
    int out_cap;
    glm_sequence *full_slot;
};

glm_sequence *glm_seq_create(uint64_t id, const int32_t *prompt, int n_prompt, int max_new)
{
    glm_sequence *s = glm_calloc(1, sizeof *s);
    s->id = id;
    s->cap_tokens = n_prompt + (max_new > 0 ? max_new : 16);
    s->tokens = glm_malloc(sizeof(int32_t) * (size_t)s->cap_tokens);
    memcpy(s->tokens, prompt, sizeof(int32_t) * (size_t)n_prompt);
    s->n_tokens = s->n_prompt = n_prompt;
    return s;
}

void glm_seq_append(glm_sequence *s, int32_t tok)
{
    if (s->n_tokens == s->cap_tokens) {
        s->cap_tokens *= 2;
        s->tokens = glm_realloc(s->tokens, sizeof(int32_t) * (size_t)s->cap_tokens);
    }
    s->tokens[s->n_tokens++] = tok;
}

void glm_seq_set_drafts(glm_sequence *s, const int32_t *d, int n)
{
    GLM_ASSERT(n >= 0 && (n == 0 || s->n_computed == s->n_tokens - 1));
    if (s->n_tokens + n > s->cap_tokens) {
        while (s->n_tokens + n > s->cap_tokens)
            s->cap_tokens *= 2;
        s->tokens = glm_realloc(s->tokens, sizeof(int32_t) * (size_t)s->cap_tokens);
    }
    memcpy(s->tokens + s->n_tokens, d, sizeof(int32_t) * (size_t)n);
    s->n_draft = n;
}

void glm_seq_free(glm_sequence *s)
{
    if (!s)
        return;
    GLM_ASSERT(s->table.n == 0);
    free(s->table.ids);
    free(s->tokens);
    free(s);
}

glm_scheduler *glm_sched_create(const glm_sched_params *p, glm_block_manager *bm)
{
    GLM_ASSERT(p->max_num_seqs > 0 && p->max_num_batched_tokens > 0);
    glm_scheduler *s = glm_calloc(1, sizeof *s);
    s->p = *p;
    s->bm = bm;
    return s;
}

void glm_sched_free(glm_scheduler *s)
{
    if (!s)
        return;
    free(s->wait);
    free(s->run);
    free(s->out_seqs);
    free(s->out_new);
    free(s);
}

static glm_sequence *wait_at(const glm_scheduler *s, int i)
{
    return s->wait[(s->w_head + i) % s->w_cap];
}

static void wait_grow(glm_scheduler *s)
{
    if (s->w_n < s->w_cap)
        return;
    int cap = s->w_cap ? 2 * s->w_cap : 16;
    glm_sequence **w = glm_malloc(sizeof *w * (size_t)cap);
    for (int i = 0; i < s->w_n; i++)
        w[i] = wait_at(s, i);
    free(s->wait);
    s->wait = w;
    s->w_head = 0;
    s->w_cap = cap;
}

void glm_sched_add(glm_scheduler *s, glm_sequence *seq, int at_front)
{
    wait_grow(s);
    seq->status = GLM_SEQ_WAITING;
    if (at_front) {
        s->w_head = (s->w_head + s->w_cap - 1) % s->w_cap;
        s->wait[s->w_head] = seq;
    } else {
        s->wait[(s->w_head + s->w_n) % s->w_cap] = seq;
    }
    s->w_n++;
}

static void run_push(glm_scheduler *s, glm_sequence *seq)
{
    if (s->r_n == s->r_cap) {
        s->r_cap = s->r_cap ? 2 * s->r_cap : 16;
        s->run = glm_realloc(s->run, sizeof *s->run * (size_t)s->r_cap);
    }
    s->run[s->r_n++] = seq;
    seq->status = GLM_SEQ_RUNNING;
}

void glm_sched_remove(glm_scheduler *s, glm_sequence *seq)
{
    for (int i = 0; i < s->r_n; i++) {
        if (s->run[i] == seq) {
            memmove(s->run + i, s->run + i + 1, sizeof *s->run * (size_t)(s->r_n - i - 1));
            s->r_n--;
            break;
        }
    }
    for (int i = 0; i < s->w_n; i++) {
        if (wait_at(s, i) == seq) {
            for (int k = i; k + 1 < s->w_n; k++)
                s->wait[(s->w_head + k) % s->w_cap] = wait_at(s, k + 1);
            s->w_n--;
            break;
        }
    }
    glm_bm_release(s->bm, &seq->table);
    seq->n_computed = 0;
    seq->status = GLM_SEQ_FINISHED;
}

/* Removes waiting entry i, keeping the others' order. */
static void wait_remove_at(glm_scheduler *s, int i)
{
    for (int k = i; k > 0; k--)
        s->wait[(s->w_head + k) % s->w_cap] = wait_at(s, k - 1);
    s->w_head = (s->w_head + 1) % s->w_cap;
    s->w_n--;
}

/* Frees the blocks of running sequence v and puts it back at the head of the
 * waiting queue. */
static void preempt_at(glm_scheduler *s, int v)
{
    glm_sequence *seq = s->run[v];
    memmove(s->run + v, s->run + v + 1, sizeof *s->run * (size_t)(s->r_n - v - 1));
    s->r_n--;
    glm_bm_release(s->bm, &seq->table);
    seq->n_computed = 0;
    seq->n_draft = 0;
    seq->n_preempted++;
    s->preemptions++;
    glm_sched_add(s, seq, 1);
}

/* The running sequence to preempt: the most recently admitted paused one (it
 * takes no step anyway), else (unless paused_only: -1) the most recently
 * admitted one. */
static int victim(const glm_scheduler *s, int paused_only)
{
    for (int i = s->r_n - 1; i >= 0; i--)
        if (s->run[i]->paused)
            return i;
    return paused_only ? -1 : s->r_n - 1;
}

static void out_push(glm_scheduler *s, glm_sched_batch *out, glm_sequence *seq, int n_new)
{
    if (out->n == s->out_cap) {
        s->out_cap = s->out_cap ? 2 * s->out_cap : 16;
        s->out_seqs = glm_realloc(s->out_seqs, sizeof *s->out_seqs * (size_t)s->out_cap);
        s->out_new = glm_realloc(s->out_new, sizeof(int) * (size_t)s->out_cap);
        out->seqs = s->out_seqs;
        out->n_new = s->out_new;
    }
    s->out_seqs[out->n] = seq;
    s->out_new[out->n] = n_new;
    out->n++;
    out->n_tokens += n_new;
}

/* What a sequence with prompt_logits may compute of its prompt this step: its new tokens
 * cut to the rows left (*rows), which it then takes. Other sequences: n_new. */
static int prompt_rows_cut(const glm_scheduler *s, const glm_sequence *seq, int start, int n_new, int *rows)
{
    if (!seq->prompt_logits || start >= seq->n_prompt || s->p.max_prompt_rows <= 0)
        return n_new;
    n_new = GLM_MIN(n_new, *rows);
    *rows -= n_new;
    return n_new;
}

int glm_sched_step(glm_scheduler *s, glm_sched_batch *out)
{
    memset(out, 0, sizeof *out);
    out->seqs = s->out_seqs;
    out->n_new = s->out_new;
    int budget = s->p.max_num_batched_tokens;
    int rows = s->p.max_prompt_rows;
    int bs = glm_bm_block_size(s->bm);

    /* 1. running sequences, oldest first; preempt paused ones, then from the newest end */
    for (int i = 0; i < s->r_n && budget > 0; i++) {
        glm_sequence *seq = s->run[i];
        if (seq->paused)
            continue;
        int n_new = GLM_MIN(seq->n_tokens + seq->n_draft - seq->n_computed, budget);
        if (n_new <= 0)
            continue;
        if (seq->n_draft > n_new - 1)
            seq->n_draft = n_new - 1; /* the budget cuts drafts first */
        int rows_before = rows;
        n_new = prompt_rows_cut(s, seq, seq->n_computed, n_new, &rows);
        if (n_new <= 0)
            continue;
        if (seq->out_of_cache) {
            s->full_slot = seq;
            out->full = &s->full_slot;
            out->n_full = 1;
            continue;
        }
        if (seq->n_draft > 0 && glm_bm_grow(s->bm, &seq->table, seq->n_computed + n_new) != GLM_OK) {
            n_new -= seq->n_draft; /* drafts never preempt anyone: without them */
            seq->n_draft = 0;
        }
        int preempted_self = 0;
        while (glm_bm_grow(s->bm, &seq->table, seq->n_computed + n_new) != GLM_OK) {
            int v = victim(s, 0);
            if (v == i) { /* no paused one left, and seq is the newest */
                if (s->r_n == 1 && glm_bm_num_used(s->bm) == seq->table.n) {
                    seq->out_of_cache = 1; /* alone and still too big */
                    s->full_slot = seq;
                    out->full = &s->full_slot;
                    out->n_full = 1;
                } else {
                    preempt_at(s, i);
                }
                preempted_self = 1;
                break;
            }
            preempt_at(s, v); /* not planned: paused, or after seq */
            if (v < i)
                i--;
        }
        if (preempted_self) {
            rows = rows_before;
            break;
        }
        out_push(s, out, seq, n_new);
        budget -= n_new;
    }

    /* 2. admit waiting sequences in order (paused ones keep their place) while budget,
     * seats and blocks last, or paused running sequences can give theirs up */
    int wi = 0;
    while (budget > 0 && wi < s->w_n) {
        glm_sequence *seq = wait_at(s, wi);
        if (seq->paused) {
            wi++;
            continue;
        }
        int fits = s->r_n < s->p.max_num_seqs;
        int hits = 0, hits_free = 0, n_new = 0, rows_left = rows;
        if (fits) {
            if (!seq->prompt_logits)
                glm_bm_lookup(s->bm, seq->tokens, seq->n_tokens, &hits, &hits_free);
            int start = hits * bs;
            n_new = prompt_rows_cut(s, seq, start, GLM_MIN(seq->n_tokens - start, budget), &rows_left);
            if (n_new <= 0)
                break; /* FCFS: the rows come back next step */
            int fresh = (start + n_new + bs - 1) / bs - hits;
            fits = glm_bm_can_take(s->bm, hits_free + fresh);
        }
        if (!fits) {
            int v = victim(s, 1);
            if (v < 0)
                break; /* FCFS: nobody overtakes seq */
            preempt_at(s, v); /* queued ahead of seq, paused */
            wi++;
            continue;
        }
        wait_remove_at(s, wi);
        seq->n_computed = glm_bm_take_prefix(s->bm, &seq->table, seq->tokens, hits);
        if (seq->n_preempted == 0) {
            seq->n_cached = seq->n_computed;
            glm_bm_count_query(s->bm, seq->n_prompt, GLM_MIN(seq->n_computed, seq->n_prompt));
        }
        GLM_ASSERT(glm_bm_grow(s->bm, &seq->table, seq->n_computed + n_new) == GLM_OK);
        run_push(s, seq);
        out_push(s, out, seq, n_new);
        budget -= n_new;
        rows = rows_left;
    }
    return out->n;
}

void glm_sched_commit(glm_scheduler *s, const glm_sched_batch *b)
{
    for (int i = 0; i < b->n; i++) {
        glm_sequence *seq = b->seqs[i];
        seq->n_computed += b->n_new[i] - seq->n_draft;
        GLM_ASSERT(seq->n_computed <= seq->n_tokens);
        glm_bm_commit(s->bm, &seq->table, seq->tokens, seq->n_computed);
    }
}

int glm_sched_num_waiting(const glm_scheduler *s) { return s->w_n; }
int glm_sched_num_running(const glm_scheduler *s) { return s->r_n; }
uint64_t glm_sched_num_preemptions(const glm_scheduler *s) { return s->preemptions; }
glm_block_manager *glm_sched_block_manager(glm_scheduler *s) { return s->bm; }
