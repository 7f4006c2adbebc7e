/*
 * engine.c - the engine thread and the request channels (see engine.h).
 *
 * Ownership: a request is shared by the submitting thread and the engine
 * (a reference count of two); everything about its sequences belongs to the
 * engine thread alone. The only state behind the engine mutex is the queue of
 * new submissions, the waiting-request count, the wake flag and the metrics
 * snapshot; each request's event queue (event_queue.h) has its own mutex. Lock
 * order: a request's mutex, then the engine's (a reader waking the engine);
 * never the other way round.
 *
 * Backpressure (engine.h): before each step the engine looks at how many
 * events each live request holds. At max_unread_events per sample it pauses
 * the request's sequences (the scheduler skips them, and preempts them first)
 * and leaves the reader a mark, half the bound; the reader that drains to the
 * mark wakes the engine, which resumes them. While every remaining sequence is
 * paused the engine sleeps until a wake, a submission, an abort or the first
 * pause deadline (reader_timeout), where it fails the request and frees its
 * blocks.
 *
 * One step: take new requests and aborts, ask the scheduler for a plan, run
 * it through the model runner, commit the computed tokens, run the logits
 * processors of the rows that have one (on host copies of their logits, in
 * parallel), sample every row in one backend call, emit the tokens, and
 * finish samples at a stop condition. The n samples of a request
 * (n > 1) share the prompt's cached blocks: the first sample prefills, the
 * others are admitted when its prompt is in the cache.
 */
#include "sched/engine.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/threadpool.h"
#include "core/util.h"
#include "sched/block_manager.h"
#include "sched/event_queue.h"
#include "sched/model_runner.h"
#include "sched/scheduler.h"

/* Prompt positions scored per step at most (prompt_logprobs): a scored prompt
 * is prefilled in chunks of this many tokens, each a logits row. */
#define GLM_ENGINE_PROMPT_ROWS 128

/* Speculative decoding: the drafts of at most this many samples are verified at a time (their
 * logits rows copied to the host, k + 1 each). */
#define GLM_ENGINE_VERIFY_GROUP 32

typedef struct sample {
    glm_sequence *seq;
    glm_request *req;
    int index;
    glm_rng rng;
    int added;                   /* given to the scheduler */
    int finished;
    double t_first_token;
    void *proc;                  /* the logits processor's state, or NULL */
    int proc_rc;                 /* this step's apply result (processors run before advance) */
    int prompt_next;             /* prompt_logprobs: the next prompt position to score */
    char proc_err[200];
} sample;

struct glm_request {
    atomic_int refs;
    glm_engine *e;
    /* immutable after submit */
    int32_t *prompt;
    int n_prompt;
    glm_sampling_params sp;
    glm_logits_processor proc;   /* proc.apply NULL: none */
    int max_new;                 /* output tokens at most (max_tokens within max_model_len) */
    double t_submit;
    /* the channel */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    glm_evq q;                   /* undelivered events */
    char error[256];             /* the request's error message ("" until it has one) */
    int wake_at;                 /* paused: wake the engine once q holds this many or fewer; -1: not paused */
    int done;                    /* no more events will come */
    void (*notify)(void *);
    void *notify_ctx;
    int notifying;               /* notify calls in progress (under mu) */
    atomic_int abort_requested;
    /* engine thread only */
    sample *samples;             /* [sp.n] */
    int n_live;
    int siblings_pending;        /* samples 1..n-1 wait for sample 0's prefill */
    int counted_waiting;         /* still counted in the engine's waiting requests */
    int paused;                  /* its reader is behind: its sequences are paused */
    double t_paused;             /* since when */
    double t_first_sched;
    struct glm_request *next;    /* incoming list / live list */
};

struct glm_engine {
    const glm_model *m;
    const glm_config *c;
    glm_engine_params p;
    int max_model_len;
    glm_runner *runner;               /* the backend behind it */
    glm_block_manager *bm;
    glm_scheduler *sch;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    int wake;                         /* an abort, or a paused request's reader caught up */
    int dead;                         /* the backend can run no more steps (GLM_BACKEND_DEAD) */
    char dead_why[GLM_ERRLEN];
    glm_request *in_head, *in_tail;   /* submitted, not yet taken */
    int waiting_requests;             /* submitted, first sample not yet scheduled */
    glm_engine_metrics metrics;       /* snapshot, under mu */
    /* engine thread only */
    glm_request *live;                /* requests with live samples */
    int n_paused_reqs, n_paused_seqs; /* held back by their readers, at the last look */
    double pause_deadline;            /* the first of their reader_timeout deadlines (0: none) */
    uint64_t next_seq_id;
    uint64_t finished[3], steps;
    /* counted as they happen, before the event that shows them leaves, so that a client that
     * saw a token reads /metrics already counting it (the rest is published after each step) */
    _Atomic uint64_t prompt_tokens, gen_tokens;
    /* the step's rows, reused: [max_num_seqs + prompt_rows] each */
    sample **row_sample;              /* sample of each row to sample */
    int32_t *samp_row;                /* its logits row */
    glm_sample_req *reqs;             /* rows to sample */
    int32_t *req_row;                 /* [n_req] index into row_sample of each request */
    glm_sampler_result *results;
    int32_t *proc_rows;               /* rows with a logits processor */
    float *proc_logits;               /* [n_proc, vocab] their host logits */
    sample **proc_samples;
    sample **plan_samples;            /* the plan's samples (sequences may be freed meanwhile) */
    /* prompt logprobs: rows of prompt positions to score, [prompt_rows] each */
    int prompt_rows;                  /* of a step at most (the scheduler's max_prompt_rows) */
    sample **score_sample;
    int32_t *score_row, *score_pos;   /* logits row, and the prompt position it scores */
    int n_ver;                        /* samples whose drafts the step verifies (ver_*) */
    float *score_logits;              /* [prompt_rows, vocab] their host logits */
    void *score_ws;                   /* sampler workspace */
    size_t score_ws_size;
    /* speculative decoding (engine.h), k = k_spec drafts a sequence at most */
    int k_spec;
    int32_t *plan_start, *plan_off;   /* [max_num_seqs] a plan entry's n_computed before the step,
                                         and its first token's row in the step's batch */
    sample **ver_sample;              /* [max_num_seqs] samples whose drafts the step verifies */
    int32_t *ver_row;                 /* and the logits row of their last token (drafts follow) */
    int ver_first;                    /* the group being verified: ver_sample[ver_first ..] */
    int32_t *ver_rows;                /* [GROUP * (k + 1)] rows copied */
    int32_t *ver_base;                /* [GROUP] each sample's first row among them */
    float *ver_logits;                /* [GROUP * (k + 1), vocab] */
    glm_sampler_result *ver_res;      /* [GROUP * (k + 1)] accepted drafts, then the next token */
    int *ver_n, *ver_acc;             /* [GROUP] results of each, of them accepted drafts */
    void *ver_ws;                     /* a sampler workspace per pool worker */
    glm_draft_seq *draft_ents;        /* [max_num_seqs] the MTP layer's entries */
    int32_t *draft_who;               /* [max_num_seqs] plan entry of each */
    int32_t *draft_want;              /* [max_num_seqs] drafts each proposes */
    int32_t *draft_chain;             /* [max_num_seqs] entry of a chained batch -> its sequence's */
    int32_t *draft_last;              /* [max_num_seqs] its last row in the last draft batch */
    int32_t *draft_rowbuf;            /* [max_num_batched_tokens] hidden-state rows */
    int32_t *draft_lrows, *draft_ids; /* [max_num_seqs] logits rows 0, 1, ... (set once), greedy tokens */
    int32_t *draft_tok;               /* [max_num_seqs * k] the drafts */
    uint64_t spec_drafts, spec_draft_tokens, spec_accepted;
    uint64_t spec_accepted_pos[GLM_ENGINE_MAX_SPEC_TOKENS];
};

/* ---- request channel ------------------------------------------------------ */

static void req_unref(glm_request *r)
{
    if (atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    glm_evq_free(&r->q);
    free(r->prompt);
    if (r->samples && r->proc.destroy)
        for (int i = 0; i < r->sp.n; i++)
            if (r->samples[i].proc)
                r->proc.destroy(r->samples[i].proc);
    free(r->samples);
    if (r->proc.release)
        r->proc.release(r->proc.ctx);
    glm_sampling_params_release(&r->sp);
    free(r);
}

/* Engine thread: appends an event (and marks the request done if last). An
 * error's message is kept in the request (the first one, if ever two). */
static void emit(glm_request *r, const glm_event *ev, int last)
{
    pthread_mutex_lock(&r->mu);
    if (ev->type == GLM_EV_ERROR && !r->error[0])
        snprintf(r->error, sizeof r->error, "%s", ev->message && ev->message[0] ? ev->message : "error");
    glm_evq_push(&r->q, ev);
    if (last) {
        r->done = 1;
        r->wake_at = -1; /* nothing left to resume */
    }
    void (*fn)(void *) = r->notify;
    void *ctx = r->notify_ctx;
    if (fn)
        r->notifying++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (fn) {
        /* called without the lock; glm_request_set_notify waits for it */
        fn(ctx);
        pthread_mutex_lock(&r->mu);
        if (--r->notifying == 0)
            pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
}

int glm_request_next(glm_request *r, glm_event *ev, int timeout_ms)
{
    pthread_mutex_lock(&r->mu);
    if (timeout_ms != 0) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        if (timeout_ms > 0) {
            dl.tv_sec += timeout_ms / 1000;
            dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
            if (dl.tv_nsec >= 1000000000L) {
                dl.tv_sec++;
                dl.tv_nsec -= 1000000000L;
            }
        }
        while (glm_evq_len(&r->q) == 0 && !r->done) {
            if (timeout_ms < 0)
                pthread_cond_wait(&r->cv, &r->mu);
            else if (pthread_cond_timedwait(&r->cv, &r->mu, &dl) != 0)
                break;
        }
    }
    int rc;
    if (glm_evq_pop(&r->q, ev)) {
        if (ev->type == GLM_EV_ERROR)
            ev->message = r->error;
        rc = 1;
        if (r->wake_at >= 0 && glm_evq_len(&r->q) <= r->wake_at) {
            /* caught up: the engine resumes the request. The engine is alive:
             * it has not ended the request (wake_at would be -1), and cannot
             * without this mutex. */
            glm_engine *e = r->e;
            r->wake_at = -1;
            pthread_mutex_lock(&e->mu);
            e->wake = 1;
            pthread_cond_signal(&e->cv);
            pthread_mutex_unlock(&e->mu);
        }
    } else {
        rc = r->done ? -1 : 0;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int glm_request_pending(glm_request *r, size_t *bytes)
{
    pthread_mutex_lock(&r->mu);
    int n = glm_evq_len(&r->q);
    if (bytes)
        *bytes = glm_evq_bytes(&r->q);
    pthread_mutex_unlock(&r->mu);
    return n;
}

void glm_request_set_notify(glm_request *r, void (*fn)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&r->mu);
    r->notify = fn;
    r->notify_ctx = ctx;
    /* no call of the previous callback may still be running when we return */
    while (r->notifying > 0)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

void glm_request_abort(glm_request *r)
{
    glm_engine *e = r->e;
    pthread_mutex_lock(&r->mu);
    int done = r->done;
    pthread_mutex_unlock(&r->mu);
    if (done) /* over (always so once the engine is freed): nothing to stop */
        return;
    atomic_store(&r->abort_requested, 1);
    pthread_mutex_lock(&e->mu);
    e->wake = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void glm_request_release(glm_request *r)
{
    if (!r)
        return;
    glm_request_set_notify(r, NULL, NULL);
    glm_request_abort(r);
    req_unref(r);
}

/* ---- submission -------------------------------------------------------------- */

void glm_engine_params_default(glm_engine_params *p)
{
    memset(p, 0, sizeof *p);
    p->max_num_seqs = 256;
    p->max_num_batched_tokens = 2048;
    p->max_queue = 1024;
    p->block_size = 16;
    p->kv_cache_bytes = (size_t)1 << 30;
    p->mem_fraction = 0.9;
    p->enable_prefix_caching = 1;
    p->cuda_graphs = 1;
    p->tensor_parallel_size = 1;
    p->max_unread_events = 256;
    p->reader_timeout = 60;
}

glm_request *glm_engine_submit(glm_engine *e, const int32_t *prompt, int n_prompt,
                               const glm_sampling_params *sp, glm_submit_status *status, char *err,
                               size_t errlen)
{
    const glm_config *c = e->c;
    *status = GLM_SUBMIT_INVALID;
    if (n_prompt < 1) {
        glm_err(err, errlen, "the prompt is empty");
        return NULL;
    }
    for (int i = 0; i < n_prompt; i++) {
        if (prompt[i] < 0 || prompt[i] >= c->vocab_size) {
            glm_err(err, errlen, "prompt token %d (id %d) is outside the vocabulary (0..%d)", i, prompt[i],
                    c->vocab_size - 1);
            return NULL;
        }
    }
    const char *param = NULL;
    if (glm_sampling_params_validate(sp, c->vocab_size, &param, err, errlen) != GLM_OK)
        return NULL;
    if (n_prompt >= e->max_model_len) {
        *status = GLM_SUBMIT_TOO_LONG;
        glm_err(err, errlen,
                "this model's maximum context length is %d tokens, but the prompt has %d tokens",
                e->max_model_len, n_prompt);
        return NULL;
    }
    int bs = e->p.block_size;
    if ((n_prompt + 1 + bs - 1) / bs > glm_runner_info(e->runner)->limits.num_blocks) {
        *status = GLM_SUBMIT_TOO_LONG;
        glm_err(err, errlen, "the prompt (%d tokens) does not fit the KV cache (%zu tokens)", n_prompt,
                glm_engine_kv_tokens(e));
        return NULL;
    }
    glm_request *r = glm_calloc(1, sizeof *r);
    atomic_init(&r->refs, 2);
    atomic_init(&r->abort_requested, 0);
    r->e = e;
    r->prompt = glm_malloc(sizeof(int32_t) * (size_t)n_prompt);
    memcpy(r->prompt, prompt, sizeof(int32_t) * (size_t)n_prompt);
    r->n_prompt = n_prompt;
    glm_sampling_params_copy(&r->sp, sp);
    r->sp.processor = NULL;
    /* the model's eos ids (generation_config), for min_tokens masking */
    r->sp.eos_token_ids = c->eos_token_ids;
    r->sp.n_eos_token_ids = c->n_eos;
    r->max_new = e->max_model_len - n_prompt;
    if (sp->has_max_tokens && sp->max_tokens < r->max_new)
        r->max_new = sp->max_tokens;
    r->t_submit = glm_now();
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    glm_evq_init(&r->q);
    r->wake_at = -1;

    pthread_mutex_lock(&e->mu);
    if (e->stop || e->dead || e->waiting_requests >= e->p.max_queue) {
        int stopping = e->stop, dead = e->dead;
        if (dead)
            glm_err(err, errlen, "the engine stopped: %s", e->dead_why);
        pthread_mutex_unlock(&e->mu);
        *status = GLM_SUBMIT_OVERLOADED;
        if (dead)
            ; /* said above */
        else if (stopping)
            glm_err(err, errlen, "the engine is shutting down");
        else
            glm_err(err, errlen, "the server is overloaded: %d requests are already waiting", e->p.max_queue);
        atomic_store(&r->refs, 1);
        req_unref(r);
        return NULL;
    }
    if (sp->processor)
        r->proc = *sp->processor; /* ours from here on */
    e->waiting_requests++;
    r->counted_waiting = 1;
    if (e->in_tail)
        e->in_tail->next = r;
    else
        e->in_head = r;
    e->in_tail = r;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    *status = GLM_SUBMIT_OK;
    return r;
}

/* ---- engine thread ------------------------------------------------------------ */

static void uncount_waiting(glm_engine *e, glm_request *r)
{
    if (!r->counted_waiting)
        return;
    r->counted_waiting = 0;
    pthread_mutex_lock(&e->mu);
    e->waiting_requests--;
    pthread_mutex_unlock(&e->mu);
}

/* Starts a taken request: creates its samples, queues sample 0. */
static void start_request(glm_engine *e, glm_request *r)
{
    int n = r->sp.n;
    r->samples = glm_calloc((size_t)n, sizeof(sample));
    glm_rng entropy;
    uint64_t base = r->sp.has_seed ? r->sp.seed : glm_rng_seed_entropy(&entropy);
    for (int i = 0; i < n; i++) {
        sample *s = &r->samples[i];
        s->req = r;
        s->index = i;
        /* room for a few tokens; the sequence doubles past that on demand (a queued request
         * holds no more than its prompt) */
        s->seq = glm_seq_create(e->next_seq_id++, r->prompt, r->n_prompt, GLM_MIN(r->max_new, 16));
        s->seq->owner = s;
        s->seq->index = i;
        /* each sample its own stream (seed + i, as vLLM): seeded requests
         * reproduce sample by sample whatever else runs */
        glm_rng_seed(&s->rng, base + (uint64_t)i);
        if (r->proc.create)
            s->proc = r->proc.create(r->proc.ctx, i);
    }
    /* sample 0 computes the prompt; scoring it needs the logits of every position */
    r->samples[0].prompt_next = 1;
    r->samples[0].seq->prompt_logits = r->sp.prompt_logprobs && r->n_prompt > 1;
    r->n_live = n;
    r->siblings_pending = n > 1;
    glm_sched_add(e->sch, r->samples[0].seq, 0);
    r->samples[0].added = 1;
    e->prompt_tokens += (uint64_t)r->n_prompt;
    r->next = e->live;
    e->live = r;
}

static void finish_sample(glm_engine *e, sample *s, glm_finish_reason why, int32_t stop_token)
{
    glm_request *r = s->req;
    if (s->finished)
        return;
    if (s->added)
        glm_sched_remove(e->sch, s->seq);
    double now = glm_now();
    glm_event ev = {0};
    ev.type = GLM_EV_FINISH;
    ev.index = s->index;
    ev.finish = why;
    ev.stop_token = stop_token;
    ev.prompt_tokens = r->n_prompt;
    ev.completion_tokens = s->seq->n_tokens - s->seq->n_prompt;
    ev.cached_tokens = s->seq->n_cached;
    ev.queue_time = r->t_first_sched > 0 ? r->t_first_sched - r->t_submit : now - r->t_submit;
    ev.ttft = s->t_first_token > 0 ? s->t_first_token - r->t_submit : 0;
    ev.prefill_time = s->t_first_token > 0 && r->t_first_sched > 0 ? s->t_first_token - r->t_first_sched : 0;
    ev.decode_time = s->t_first_token > 0 ? now - s->t_first_token : 0;
    ev.e2e_time = now - r->t_submit;
    s->finished = 1;
    if (s->proc) {
        r->proc.destroy(s->proc);
        s->proc = NULL;
    }
    glm_seq_free(s->seq);
    s->seq = NULL;
    e->finished[why]++;
    r->n_live--;
    emit(r, &ev, r->n_live == 0);
}

/* Ends every sample of r (abort, or an error) and drops it from the live list. */
static void end_request(glm_engine *e, glm_request *r, glm_finish_reason why)
{
    uncount_waiting(e, r);
    for (int i = 0; i < r->sp.n; i++)
        finish_sample(e, &r->samples[i], why, -1);
}

static void unlink_dead(glm_engine *e)
{
    glm_request **pp = &e->live;
    while (*pp) {
        glm_request *r = *pp;
        if (r->n_live == 0) {
            *pp = r->next;
            req_unref(r);
        } else {
            pp = &r->next;
        }
    }
}

static int is_eos(const glm_config *c, int32_t t)
{
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_token_ids[i] == t)
            return 1;
    return 0;
}

static void proc_one(void *ctx, int i, int worker)
{
    glm_engine *e = ctx;
    sample *s = e->proc_samples[i];
    s->proc_err[0] = 0;
    s->proc_rc = s->req->proc.apply(s->proc, e->proc_logits + (size_t)i * e->c->vocab_size, e->c->vocab_size,
                                    s->proc_err, sizeof s->proc_err);
}

/* Emits the error of a sample that cannot go on and ends its request. */
static void fail_request(glm_engine *e, sample *s, const char *msg, int invalid_request)
{
    glm_event ev = {0};
    ev.type = GLM_EV_ERROR;
    ev.index = s->index;
    ev.message = msg; /* emit keeps it */
    ev.invalid_request = invalid_request;
    emit(s->req, &ev, 0);
    end_request(e, s->req, GLM_FINISH_ABORT);
}

/* Appends the sampled token of s, emits it, and applies the stop rules. proc_accepted: the
 * logits processor has seen the token already (an accepted draft). */
static void advance(glm_engine *e, sample *s, const glm_sampler_result *res, int proc_accepted)
{
    glm_request *r = s->req;
    glm_sequence *seq = s->seq;
    const glm_config *c = e->c;
    if ((res->flags & GLM_SAMPLE_NO_CANDIDATE) && s->proc && !(res->flags & GLM_SAMPLE_NONFINITE)) {
        /* the processor allowed only end-of-sequence tokens and min_tokens forbids them:
         * the constrained text is complete, so the sample ends here */
        finish_sample(e, s, GLM_FINISH_STOP, -1);
        return;
    }
    if (res->flags & GLM_SAMPLE_NO_CANDIDATE) {
        /* every logit was -inf/NaN after processing: nothing sensible to emit */
        fail_request(e, s, "the model produced no valid token (non-finite logits)", 0);
        return;
    }
    int32_t tok = res->token;
    glm_seq_append(seq, tok);
    if (s->proc && !proc_accepted)
        r->proc.accept(s->proc, tok);
    e->gen_tokens++;
    double now = glm_now();
    if (s->t_first_token == 0)
        s->t_first_token = now;

    glm_event ev = {0};
    ev.type = GLM_EV_TOKEN;
    ev.index = s->index;
    ev.token = tok;
    ev.logprob = res->logprob;
    ev.n_top = GLM_MIN(res->n_top, GLM_SAMPLING_MAX_TOP_LOGPROBS);
    for (int i = 0; i < ev.n_top; i++) {
        ev.top_ids[i] = res->top[i].id;
        ev.top_logprobs[i] = res->top[i].logprob;
    }
    emit(r, &ev, 0);

    int n_out = seq->n_tokens - seq->n_prompt;
    int stop = 0;
    if (!r->sp.ignore_eos && is_eos(c, tok) && n_out >= r->sp.min_tokens)
        stop = 1;
    for (int i = 0; i < r->sp.n_stop_token_ids && n_out >= r->sp.min_tokens; i++)
        if (r->sp.stop_token_ids[i] == tok)
            stop = 1;
    if (stop)
        finish_sample(e, s, GLM_FINISH_STOP, tok);
    else if (n_out >= r->max_new || seq->n_tokens >= e->max_model_len)
        finish_sample(e, s, GLM_FINISH_LENGTH, -1);
}

/* After a forward: the prompt positions of requests with prompt_logprobs are
 * scored (their rows copied to the host) and emitted before any token, in
 * position order. Rows of positions already emitted (a sequence recomputed
 * after a preemption) were skipped when the rows were listed. */
static void score_prompt_rows(glm_engine *e, int n)
{
    if (n == 0)
        return;
    char err[GLM_ERRLEN];
    if (glm_runner_logits(e->runner, e->score_row, n, e->score_logits, err, sizeof err) != GLM_OK) {
        fprintf(stderr, "glm-server: logits copy failed: %s\n", err);
        for (int i = 0; i < n; i++)
            if (!e->score_sample[i]->finished)
                fail_request(e, e->score_sample[i], "internal error: logits copy failed", 0);
        return;
    }
    for (int i = 0; i < n; i++) {
        sample *s = e->score_sample[i];
        if (s->finished)
            continue;
        glm_request *r = s->req;
        int target = e->score_pos[i] + 1;
        GLM_ASSERT(target == s->prompt_next && target < r->n_prompt);
        glm_sampler_result res;
        glm_sampler_score(e->score_logits + (size_t)i * e->c->vocab_size, e->c->vocab_size, r->prompt[target],
                          r->sp.prompt_top_logprobs, e->score_ws, e->score_ws_size, &res);
        glm_event ev = {0};
        ev.type = GLM_EV_PROMPT_TOKEN;
        ev.token = res.token;
        ev.logprob = res.logprob;
        ev.rank = res.rank;
        ev.n_top = res.n_top;
        for (int k = 0; k < ev.n_top; k++) {
            ev.top_ids[k] = res.top[k].id;
            ev.top_logprobs[k] = res.top[k].logprob;
        }
        emit(r, &ev, 0);
        if (++s->prompt_next == r->n_prompt)
            s->seq->prompt_logits = 0; /* done: a recomputation may use the prefix cache */
    }
}

/* After a forward: the logits processors of the rows that have one run on
 * host copies of their logits (a grammar mask each: milliseconds over a large
 * vocabulary, so in parallel on the pool; states are per sample, grammars and
 * tries read-only), then every live row is sampled in one backend call. A
 * request for no output at all (max_tokens 0, scoring) finishes instead. */
static void sample_rows(glm_engine *e, int n_rows)
{
    char err[GLM_ERRLEN];
    for (int k = 0; k < n_rows; k++)
        if (!e->row_sample[k]->finished && e->row_sample[k]->req->max_new == 0)
            finish_sample(e, e->row_sample[k], GLM_FINISH_LENGTH, -1);
    int np = 0;
    for (int k = 0; k < n_rows; k++) {
        sample *s = e->row_sample[k];
        if (!s->finished && s->proc) {
            e->proc_rows[np] = e->samp_row[k];
            e->proc_samples[np++] = s;
        }
    }
    if (np > 0) {
        if (glm_runner_logits(e->runner, e->proc_rows, np, e->proc_logits, err, sizeof err) != GLM_OK) {
            fprintf(stderr, "glm-server: logits copy failed: %s\n", err);
            for (int i = 0; i < np; i++)
                if (!e->proc_samples[i]->finished)
                    fail_request(e, e->proc_samples[i], "internal error: logits copy failed", 0);
            np = 0;
        } else if (np > 1) {
            glm_pool_for(glm_runner_pool(e->runner), np, proc_one, e);
        } else {
            proc_one(e, 0, 0);
        }
    }
    /* a processor that found no token may follow ends its request (every
     * sample of it) before anything is sampled: no request below is half-ended */
    for (int i = 0; i < np; i++)
        if (!e->proc_samples[i]->finished && e->proc_samples[i]->proc_rc != 0)
            fail_request(e, e->proc_samples[i], e->proc_samples[i]->proc_err, 1);
    int nr = 0, pi = 0;
    for (int k = 0; k < n_rows; k++) {
        sample *s = e->row_sample[k];
        const float *host = NULL;
        if (pi < np && e->proc_samples[pi] == s)
            host = e->proc_logits + (size_t)pi++ * e->c->vocab_size;
        if (s->finished) /* its request ended (an error here or of a sibling) */
            continue;
        glm_sequence *seq = s->seq;
        glm_request *r = s->req;
        e->reqs[nr] = (glm_sample_req){e->samp_row[k], host, &r->sp, &s->rng,
                                       {seq->tokens, seq->n_prompt, seq->tokens + seq->n_prompt,
                                        seq->n_tokens - seq->n_prompt}};
        e->req_row[nr++] = k;
    }
    if (nr == 0)
        return;
    if (glm_runner_sample(e->runner, e->reqs, nr, e->results, err, sizeof err) != GLM_OK) {
        fprintf(stderr, "glm-server: sampling failed: %s\n", err);
        for (int i = 0; i < nr; i++)
            if (!e->row_sample[e->req_row[i]]->finished)
                fail_request(e, e->row_sample[e->req_row[i]], "internal error: sampling failed", 0);
        return;
    }
    for (int i = 0; i < nr; i++) {
        sample *s = e->row_sample[e->req_row[i]];
        if (!s->finished) /* an earlier row's error may have ended its request */
            advance(e, s, &e->results[i], 0);
    }
}

/* ---- speculative decoding --------------------------------------------------- */

/* Pool task: verifies the drafts of sample ver_first + i on host copies of its rows, in order:
 * its logits processor (if any) runs on each row having seen the drafts accepted before it,
 * the penalties' history holds them (drafts sit after the sequence's tokens), and the first
 * draft rejected ends the list with its replacement; when all are accepted a bonus token is
 * sampled from the last row. A processor that fails stops the list (proc_rc, proc_err). */
static void verify_one(void *ctx, int i, int worker)
{
    glm_engine *e = ctx;
    sample *s = e->ver_sample[e->ver_first + i];
    e->ver_n[i] = e->ver_acc[i] = 0;
    s->proc_rc = 0;
    if (s->finished)
        return;
    glm_sequence *seq = s->seq;
    glm_request *r = s->req;
    int V = e->c->vocab_size, k = seq->n_draft, base = e->ver_base[i];
    void *ws = (char *)e->ver_ws + (size_t)worker * e->score_ws_size;
    for (int j = 0; j <= k; j++) {
        float *x = e->ver_logits + (size_t)(base + j) * (size_t)V;
        if (s->proc) {
            s->proc_err[0] = 0;
            s->proc_rc = r->proc.apply(s->proc, x, V, s->proc_err, sizeof s->proc_err);
            if (s->proc_rc != 0)
                return;
        }
        glm_sampler_history h = {seq->tokens, seq->n_prompt, seq->tokens + seq->n_prompt,
                                 seq->n_tokens - seq->n_prompt + j};
        glm_sampler_result *res = e->ver_res + base + j;
        e->ver_n[i]++;
        if (j == k) {
            glm_sampler_sample(&r->sp, &s->rng, x, V, &h, ws, e->score_ws_size, res);
            return;
        }
        if (!glm_sampler_verify(&r->sp, &s->rng, x, V, &h, seq->tokens[seq->n_tokens + j], ws, e->score_ws_size,
                                res))
            return;
        e->ver_acc[i]++;
        if (s->proc)
            r->proc.accept(s->proc, res->token);
    }
}

/* After a forward: the samples with drafts (sort_rows) keep the drafts their rows accept and
 * one more token, emitted as plain decoding emits them (stop rules after each); the accepted
 * drafts' KV stands (n_computed moves over them) and their full blocks are registered. */
static void verify_rows(glm_engine *e)
{
    char err[GLM_ERRLEN];
    for (int g = 0; g < e->n_ver; g += GLM_ENGINE_VERIFY_GROUP) {
        int ng = GLM_MIN(GLM_ENGINE_VERIFY_GROUP, e->n_ver - g), nr = 0;
        for (int i = 0; i < ng; i++) {
            sample *s = e->ver_sample[g + i];
            e->ver_base[i] = nr;
            int rows = s->finished ? 0 : s->seq->n_draft + 1; /* a sibling's error may have ended it */
            for (int j = 0; j < rows; j++)
                e->ver_rows[nr++] = e->ver_row[g + i] + j;
        }
        if (nr == 0)
            continue;
        if (glm_runner_logits(e->runner, e->ver_rows, nr, e->ver_logits, err, sizeof err) != GLM_OK) {
            fprintf(stderr, "glm-server: logits copy failed: %s\n", err);
            for (int i = 0; i < ng; i++)
                if (!e->ver_sample[g + i]->finished)
                    fail_request(e, e->ver_sample[g + i], "internal error: logits copy failed", 0);
            continue;
        }
        e->ver_first = g;
        if (ng > 1)
            glm_pool_for(glm_runner_pool(e->runner), ng, verify_one, e);
        else
            verify_one(e, 0, 0);
        for (int i = 0; i < ng; i++) {
            sample *s = e->ver_sample[g + i];
            if (s->finished)
                continue;
            glm_sequence *seq = s->seq;
            int k = seq->n_draft, acc = e->ver_acc[i];
            e->spec_drafts++;
            e->spec_draft_tokens += (uint64_t)k;
            e->spec_accepted += (uint64_t)acc;
            for (int j = 0; j < acc; j++)
                e->spec_accepted_pos[j]++;
            for (int j = 0; j < e->ver_n[i] && !s->finished; j++) {
                if (j < acc)
                    seq->n_computed++; /* the draft's KV is the accepted token's */
                advance(e, s, e->ver_res + e->ver_base[i] + j, j < acc);
            }
            if (!s->finished && s->proc_rc != 0)
                fail_request(e, s, s->proc_err, 1);
            if (s->finished)
                continue;
            seq->n_draft = 0;
            glm_bm_commit(e->bm, &seq->table, seq->tokens, seq->n_computed);
        }
    }
}

/* Drafts sample s may propose now (it decodes next): k, fewer near max_tokens or
 * max_model_len (the step that verifies them adds up to k + 1 tokens). */
static int draft_count(const glm_engine *e, const sample *s)
{
    const glm_sequence *seq = s->seq;
    int k = e->k_spec;
    k = GLM_MIN(k, s->req->max_new - (seq->n_tokens - seq->n_prompt) - 1);
    k = GLM_MIN(k, e->max_model_len - seq->n_tokens - 1);
    return GLM_MAX(k, 0);
}

/* After the step's tokens are emitted: the MTP layer runs over every position the step
 * computed and kept (its KV cache follows the main one; position p reads the main model's
 * hidden state at p and the token at p + 1, which every kept position has), and proposes the
 * drafts of each sequence about to decode: the first from its last kept position, each
 * further one from the draft before (the layer chained through itself, a block grown for it
 * when one is free, else fewer drafts). A failed draft is no error: the sequences decode
 * without drafts. */
static void propose_drafts(glm_engine *e, const glm_sched_batch *sb, sample **ss)
{
    char err[GLM_ERRLEN];
    int K = e->k_spec, n = 0, n_rows = 0, nl = 0;
    for (int i = 0; i < sb->n; i++) {
        sample *s = ss[i];
        if (s->finished)
            continue;
        glm_sequence *seq = s->seq;
        int start = e->plan_start[i], m = seq->n_computed - start;
        if (m <= 0)
            continue;
        int want = seq->n_computed == seq->n_tokens - 1 ? draft_count(e, s) : 0;
        for (int j = 0; j < m; j++)
            e->draft_rowbuf[n_rows + j] = e->plan_off[i] + j;
        e->draft_ents[n] = (glm_draft_seq){seq, start, m, seq->tokens + start + 1, e->draft_rowbuf + n_rows,
                                           want > 0};
        e->draft_who[n] = i;
        e->draft_want[n] = want;
        e->draft_last[n] = n_rows + m - 1;
        nl += want > 0;
        n_rows += m;
        n++;
    }
    if (n == 0)
        return;
    int rc = glm_runner_draft(e->runner, e->draft_ents, n, GLM_DRAFT_FROM_FORWARD, 0, err, sizeof err);
    if (rc == GLM_OK && nl > 0)
        rc = glm_runner_greedy(e->runner, e->draft_lrows, nl, e->draft_ids, err, sizeof err);
    if (rc != GLM_OK) {
        fprintf(stderr, "glm-server: draft failed: %s\n", err);
        return;
    }
    for (int w = 0, l = 0; w < n; w++)
        if (e->draft_want[w] > 0)
            e->draft_tok[(size_t)w * K] = e->draft_ids[l++];
    for (int j = 1; j < K; j++) { /* chained: draft j from draft j - 1 */
        int n2 = 0;
        for (int w = 0; w < n; w++) {
            if (e->draft_want[w] <= j)
                continue;
            glm_sequence *seq = ss[e->draft_who[w]]->seq;
            int pos = seq->n_tokens - 2 + j; /* the token at pos + 1 is draft j - 1 */
            if (glm_bm_grow(e->bm, &seq->table, pos + 1) != GLM_OK) {
                e->draft_want[w] = j;
                continue;
            }
            e->draft_rowbuf[n2] = e->draft_last[w];
            e->draft_ents[n2] = (glm_draft_seq){seq, pos, 1, e->draft_tok + (size_t)w * K + j - 1,
                                                e->draft_rowbuf + n2, 1};
            e->draft_last[w] = n2;
            e->draft_chain[n2] = w;
            n2++;
        }
        if (n2 == 0)
            break;
        rc = glm_runner_draft(e->runner, e->draft_ents, n2, GLM_DRAFT_FROM_DRAFT, 0, err, sizeof err);
        if (rc == GLM_OK)
            rc = glm_runner_greedy(e->runner, e->draft_lrows, n2, e->draft_ids, err, sizeof err);
        if (rc != GLM_OK) {
            fprintf(stderr, "glm-server: draft failed: %s\n", err);
            for (int w = 0; w < n; w++)
                e->draft_want[w] = GLM_MIN(e->draft_want[w], j);
            break;
        }
        for (int t = 0; t < n2; t++)
            e->draft_tok[(size_t)e->draft_chain[t] * K + j] = e->draft_ids[t];
    }
    for (int w = 0; w < n; w++)
        if (e->draft_want[w] > 0)
            glm_seq_set_drafts(ss[e->draft_who[w]]->seq, e->draft_tok + (size_t)w * K, e->draft_want[w]);
}

/* Sorts the logits rows of the last forward (plan order, a plan entry's rows
 * for its last new tokens) into rows to sample (a sequence's last token),
 * samples whose drafts to verify (e->ver_*, n_ver) and prompt positions to
 * score; before the commit, while n_computed is the step's start. Returns the
 * rows to sample; *n_score the positions to score. */
static int sort_rows(glm_engine *e, const glm_sched_batch *sb, sample **ss, int *n_score)
{
    int n_rows, n_samp = 0, ns = 0;
    e->n_ver = 0;
    const int32_t *plan = glm_runner_rows(e->runner, &n_rows);
    for (int k = 0, pos = 0; k < n_rows; k++, pos++) {
        int i = plan[k];
        if (k == 0 || plan[k - 1] != i) { /* the entry's rows are its last new tokens */
            int rows_i = 1;
            while (k + rows_i < n_rows && plan[k + rows_i] == i)
                rows_i++;
            pos = sb->seqs[i]->n_computed + sb->n_new[i] - rows_i;
        }
        const glm_sequence *seq = sb->seqs[i];
        if (pos == seq->n_tokens - 1 && seq->n_draft > 0) { /* the drafts' rows follow */
            e->ver_sample[e->n_ver] = ss[i];
            e->ver_row[e->n_ver++] = k;
        } else if (pos == seq->n_tokens - 1) {
            e->row_sample[n_samp] = ss[i];
            e->samp_row[n_samp++] = k;
        } else if (seq->prompt_logits && pos + 1 >= ss[i]->prompt_next && pos + 1 < seq->n_prompt) {
            GLM_ASSERT(ns < e->prompt_rows);
            e->score_sample[ns] = ss[i];
            e->score_row[ns] = k;
            e->score_pos[ns++] = pos;
        }
    }
    *n_score = ns;
    return n_samp;
}

static void set_paused(glm_request *r, int paused)
{
    r->paused = paused;
    for (int i = 0; i < r->sp.n; i++)
        if (r->samples[i].seq)
            r->samples[i].seq->paused = paused;
}

/* Before a step: pauses the requests whose readers hold max_unread_events per
 * sample, resumes those drained to half that, fails those held back for
 * reader_timeout; counts what stays paused and its first deadline. */
static void backpressure(glm_engine *e)
{
    e->n_paused_reqs = e->n_paused_seqs = 0;
    e->pause_deadline = 0;
    int m = e->p.max_unread_events;
    if (m == 0)
        return;
    double now = glm_now(), timeout = e->p.reader_timeout;
    for (glm_request *r = e->live; r; r = r->next) {
        if (r->n_live == 0)
            continue;
        int hi = m * r->sp.n, lo = m / 2 * r->sp.n;
        pthread_mutex_lock(&r->mu);
        int q = glm_evq_len(&r->q);
        int pause = !r->paused && q >= hi, resume = r->paused && q <= lo;
        if (pause)
            r->wake_at = lo;
        else if (resume)
            r->wake_at = -1;
        pthread_mutex_unlock(&r->mu);
        if (pause) {
            set_paused(r, 1);
            r->t_paused = now;
        } else if (resume) {
            set_paused(r, 0);
        }
        if (!r->paused)
            continue;
        if (timeout > 0 && now - r->t_paused >= timeout) {
            char msg[160];
            snprintf(msg, sizeof msg, "the stream's reader fell behind (%d events unread for %g s)", q, timeout);
            set_paused(r, 0);
            for (int i = 0; i < r->sp.n; i++)
                if (!r->samples[i].finished) {
                    fail_request(e, &r->samples[i], msg, 0); /* ends the request, frees its blocks */
                    break;
                }
            continue;
        }
        e->n_paused_reqs++;
        for (int i = 0; i < r->sp.n; i++)
            e->n_paused_seqs += !r->samples[i].finished;
        if (timeout > 0 && (e->pause_deadline == 0 || r->t_paused + timeout < e->pause_deadline))
            e->pause_deadline = r->t_paused + timeout;
    }
}

static void publish_metrics(glm_engine *e)
{
    glm_engine_metrics m;
    memset(&m, 0, sizeof m);
    m.num_running = glm_sched_num_running(e->sch);
    m.num_waiting = glm_sched_num_waiting(e->sch);
    m.num_paused = e->n_paused_seqs;
    m.kv_blocks_used = glm_bm_num_used(e->bm);
    m.kv_blocks_total = glm_bm_num_blocks(e->bm);
    m.num_preemptions = glm_sched_num_preemptions(e->sch);
    glm_bm_counters(e->bm, &m.prefix_query_tokens, &m.prefix_hit_tokens);
    m.prompt_tokens = atomic_load(&e->prompt_tokens);
    m.generation_tokens = atomic_load(&e->gen_tokens);
    memcpy(m.finished, e->finished, sizeof m.finished);
    m.steps = e->steps;
    m.num_speculative_tokens = e->k_spec;
    m.spec_drafts = e->spec_drafts;
    m.spec_draft_tokens = e->spec_draft_tokens;
    m.spec_accepted_tokens = e->spec_accepted;
    memcpy(m.spec_accepted_per_pos, e->spec_accepted_pos, sizeof m.spec_accepted_per_pos);
    pthread_mutex_lock(&e->mu);
    e->metrics = m;
    pthread_mutex_unlock(&e->mu);
}

/* Plans and runs one step; returns 0 if there was nothing to do. */
static int step(glm_engine *e)
{
    glm_sched_batch sb;
    glm_sched_step(e->sch, &sb);
    for (int i = 0; i < sb.n_full; i++)
        finish_sample(e, sb.full[i]->owner, GLM_FINISH_LENGTH, -1);
    if (sb.n == 0)
        return sb.n_full > 0;

    double now = glm_now();
    for (int i = 0; i < sb.n; i++) {
        glm_request *r = ((sample *)sb.seqs[i]->owner)->req;
        if (r->t_first_sched == 0) {
            r->t_first_sched = now;
            uncount_waiting(e, r);
        }
    }
    /* the plan's samples, kept apart: a sequence is freed when its sample
     * finishes, and an error ends every sample of its request */
    sample **ss = e->plan_samples;
    for (int i = 0, off = 0; i < sb.n; i++) {
        ss[i] = sb.seqs[i]->owner;
        e->plan_start[i] = sb.seqs[i]->n_computed;
        e->plan_off[i] = off;
        off += sb.n_new[i];
    }
    char err[GLM_ERRLEN];
    int rc = glm_runner_forward(e->runner, &sb, 0, err, sizeof err);
    if (rc != GLM_OK) {
        /* the plan's requests fail, the server keeps serving: a plan the backend
         * cannot take is the requests' (400), a broken backend is ours (500) */
        fprintf(stderr, "glm-server: engine step failed: %s\n", err);
        for (int i = 0; i < sb.n; i++) {
            sample *s = ss[i];
            if (s->req->n_live == 0)
                continue;
            char msg[sizeof err + 32];
            snprintf(msg, sizeof msg, "%s%s", rc == GLM_BAD_BATCH ? "" : "internal error: ", err);
            fail_request(e, s, msg, rc == GLM_BAD_BATCH);
        }
        if (rc == GLM_BACKEND_DEAD) {
            pthread_mutex_lock(&e->mu);
            e->dead = 1;
            glm_err(e->dead_why, sizeof e->dead_why, "%s", err);
            pthread_mutex_unlock(&e->mu);
        }
        e->steps++;
        return 1;
    }
    int n_score;
    int n_samp = sort_rows(e, &sb, ss, &n_score);
    glm_sched_commit(e->sch, &sb);
    score_prompt_rows(e, n_score);
    sample_rows(e, n_samp);
    verify_rows(e);
    if (e->k_spec > 0)
        propose_drafts(e, &sb, ss);
    /* n > 1: once sample 0's prompt is computed (and cached), admit the others */
    for (int i = 0; i < sb.n; i++) {
        sample *s = ss[i];
        glm_request *r = s->req;
        if (!r->siblings_pending || s->index != 0 || r->n_live == 0)
            continue;
        if (!s->finished && s->seq->n_computed < r->n_prompt)
            continue;
        r->siblings_pending = 0;
        for (int k = r->sp.n - 1; k >= 1; k--) {
            glm_sched_add(e->sch, r->samples[k].seq, 1);
            r->samples[k].added = 1;
        }
    }
    e->steps++;
    return 1;
}

static void *engine_main(void *arg)
{
    glm_engine *e = arg;
    int idle = 0; /* the last step planned nothing */
    for (;;) {
        pthread_mutex_lock(&e->mu);
        for (;;) {
            if (e->stop || e->dead || e->in_head || e->wake)
                break;
            int work = glm_sched_num_running(e->sch) || glm_sched_num_waiting(e->sch);
            if (work && !(idle && e->n_paused_reqs > 0))
                break;
            /* nothing to do, or nothing but paused sequences: wait for a submission, an
             * abort (wake), a reader that caught up (wake), or the first pause deadline */
            if (work && e->pause_deadline > 0) {
                double left = e->pause_deadline - glm_now();
                if (left <= 0)
                    break;
                struct timespec dl;
                clock_gettime(CLOCK_REALTIME, &dl);
                double t = (double)dl.tv_sec + dl.tv_nsec * 1e-9 + left + 1e-3;
                dl.tv_sec = (time_t)t;
                dl.tv_nsec = (long)((t - (double)dl.tv_sec) * 1e9);
                pthread_cond_timedwait(&e->cv, &e->mu, &dl);
            } else {
                pthread_cond_wait(&e->cv, &e->mu);
            }
        }
        e->wake = 0;
        int stopping = e->stop || e->dead;
        glm_request *in = e->in_head;
        e->in_head = e->in_tail = NULL;
        pthread_mutex_unlock(&e->mu);

        while (in) {
            glm_request *r = in;
            in = in->next;
            r->next = NULL;
            start_request(e, r);
        }
        for (glm_request *r = e->live; r; r = r->next) {
            if (e->dead && r->n_live > 0) { /* every request still running fails with the reason */
                char msg[GLM_ERRLEN + 64];
                snprintf(msg, sizeof msg, "internal error: the engine stopped: %s", e->dead_why);
                for (int i = 0; i < r->sp.n; i++)
                    if (!r->samples[i].finished) {
                        fail_request(e, &r->samples[i], msg, 0);
                        break; /* ends the whole request */
                    }
            }
            if (stopping || atomic_load(&r->abort_requested))
                end_request(e, r, GLM_FINISH_ABORT);
        }
        unlink_dead(e);
        if (e->dead) { /* park until freed: submissions are refused */
            pthread_mutex_lock(&e->mu);
            while (!e->stop && !e->in_head)
                pthread_cond_wait(&e->cv, &e->mu);
            pthread_mutex_unlock(&e->mu);
            if (e->stop)
                break;
            continue;
        }
        if (stopping)
            break;
        backpressure(e);
        unlink_dead(e);
        idle = !step(e);
        unlink_dead(e);
        publish_metrics(e);
    }
    publish_metrics(e);
    return NULL;
}

/* ---- lifetime -------------------------------------------------------------- */

glm_engine *glm_engine_create(const glm_model *m, const glm_engine_params *p, char *err, size_t errlen)
{
    const glm_config *c = &m->cfg;
    if (p->max_num_seqs < 1 || p->max_num_batched_tokens < 1 || p->block_size < 1 || p->block_size > 1024 ||
        p->max_queue < 1 || p->max_model_len < 0 ||
        p->max_unread_events < 0 || p->max_unread_events > (1 << 20) || isnan(p->reader_timeout) ||
        p->num_speculative_tokens < 0 || p->num_speculative_tokens > GLM_ENGINE_MAX_SPEC_TOKENS) {
        glm_err(err, errlen, "engine: invalid parameters");
        return NULL;
    }
    glm_runner_params rp;
    glm_runner_params_default(&rp);
    rp.block_size = p->block_size;
    rp.kv_cache_bytes = p->kv_cache_bytes;
    rp.mem_fraction = p->mem_fraction;
    rp.max_num_batched_tokens = p->max_num_batched_tokens;
    rp.max_num_seqs = p->max_num_seqs;
    /* one row per sequence (its last token and its drafts with speculative decoding), and the
     * rows of the prompt chunks scored for prompt_logprobs; no more than a step's tokens */
    int prompt_rows = GLM_MIN(GLM_ENGINE_PROMPT_ROWS, p->max_num_batched_tokens);
    int K = p->num_speculative_tokens;
    rp.max_logits_rows = p->max_num_seqs + prompt_rows;
    if (K > 0)
        rp.max_logits_rows = GLM_MIN(p->max_num_seqs * (K + 1) + prompt_rows,
                                     GLM_MAX(p->max_num_batched_tokens, rp.max_logits_rows));
    rp.draft_layers = K > 0;
    rp.max_model_len = p->max_model_len;
    rp.n_threads = p->n_threads;
    rp.backend = p->backend;
    rp.dtype = p->dtype;
    rp.device = p->device;
    rp.cuda_graphs = p->cuda_graphs;
    rp.tensor_parallel_size = p->tensor_parallel_size;
    rp.first_rank = p->first_rank;
    rp.n_local = p->n_local;
    rp.world_id = p->world_id;
    glm_runner *runner = glm_runner_create(m, &rp, err, errlen);
    if (!runner)
        return NULL;
    glm_engine *e = glm_calloc(1, sizeof *e);
    e->m = m;
    e->c = c;
    e->p = *p;
    e->runner = runner;
    e->max_model_len = glm_runner_max_model_len(runner);
    int nb = glm_runner_info(runner)->limits.num_blocks;
    e->bm = glm_bm_create(nb, p->block_size, p->enable_prefix_caching);
    e->prompt_rows = prompt_rows;
    glm_sched_params sp = {p->max_num_seqs, p->max_num_batched_tokens, prompt_rows};
    e->sch = glm_sched_create(&sp, e->bm);
    size_t rows = (size_t)(p->max_num_seqs + prompt_rows);
    e->row_sample = glm_malloc(sizeof(sample *) * rows);
    e->samp_row = glm_malloc(sizeof(int32_t) * rows);
    e->score_sample = glm_malloc(sizeof(sample *) * (size_t)prompt_rows);
    e->score_row = glm_malloc(sizeof(int32_t) * (size_t)prompt_rows);
    e->score_pos = glm_malloc(sizeof(int32_t) * (size_t)prompt_rows);
    e->score_logits = glm_malloc_aligned(sizeof(float) * (size_t)prompt_rows * (size_t)c->vocab_size);
    e->score_ws_size = glm_sampler_workspace_size(c->vocab_size);
    e->score_ws = glm_malloc_aligned(e->score_ws_size);
    e->reqs = glm_malloc(sizeof *e->reqs * rows);
    e->req_row = glm_malloc(sizeof(int32_t) * rows);
    e->results = glm_malloc(sizeof *e->results * rows);
    e->proc_rows = glm_malloc(sizeof(int32_t) * rows);
    e->proc_samples = glm_malloc(sizeof(sample *) * rows);
    e->plan_samples = glm_malloc(sizeof(sample *) * rows);
    e->proc_logits = glm_malloc_aligned(sizeof(float) * rows * (size_t)c->vocab_size);
    e->k_spec = K;
    size_t ns = (size_t)p->max_num_seqs;
    e->plan_start = glm_malloc(sizeof(int32_t) * ns);
    e->plan_off = glm_malloc(sizeof(int32_t) * ns);
    e->ver_sample = glm_malloc(sizeof(sample *) * ns);
    e->ver_row = glm_malloc(sizeof(int32_t) * ns);
    if (K > 0) {
        size_t vr = (size_t)GLM_ENGINE_VERIFY_GROUP * (size_t)(K + 1);
        e->ver_rows = glm_malloc(sizeof(int32_t) * vr);
        e->ver_base = glm_malloc(sizeof(int32_t) * GLM_ENGINE_VERIFY_GROUP);
        e->ver_logits = glm_malloc_aligned(sizeof(float) * vr * (size_t)c->vocab_size);
        e->ver_res = glm_malloc(sizeof *e->ver_res * vr);
        e->ver_n = glm_malloc(sizeof(int) * GLM_ENGINE_VERIFY_GROUP);
        e->ver_acc = glm_malloc(sizeof(int) * GLM_ENGINE_VERIFY_GROUP);
        e->ver_ws = glm_malloc_aligned(e->score_ws_size * (size_t)glm_pool_size(glm_runner_pool(runner)));
        e->draft_ents = glm_malloc(sizeof *e->draft_ents * ns);
        e->draft_who = glm_malloc(sizeof(int32_t) * ns);
        e->draft_want = glm_malloc(sizeof(int32_t) * ns);
        e->draft_chain = glm_malloc(sizeof(int32_t) * ns);
        e->draft_last = glm_malloc(sizeof(int32_t) * ns);
        e->draft_rowbuf = glm_malloc(sizeof(int32_t) * (size_t)p->max_num_batched_tokens);
        e->draft_lrows = glm_malloc(sizeof(int32_t) * ns);
        for (size_t i = 0; i < ns; i++)
            e->draft_lrows[i] = (int32_t)i; /* a draft's logits rows are always its first ones */
        e->draft_ids = glm_malloc(sizeof(int32_t) * ns);
        e->draft_tok = glm_malloc(sizeof(int32_t) * ns * (size_t)K);
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    publish_metrics(e);
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        glm_err(err, errlen, "engine: cannot start its thread");
        e->stop = 1; /* no thread to join */
        glm_engine_free(e);
        return NULL;
    }
    return e;
}

void glm_engine_free(glm_engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    int started = !e->stop;
    e->stop = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (started && e->thread)
        pthread_join(e->thread, NULL);
    /* requests submitted but never taken: tell their readers */
    for (glm_request *r = e->in_head; r;) {
        glm_request *nx = r->next;
        glm_event ev = {0};
        ev.type = GLM_EV_ERROR;
        ev.message = "the engine is shutting down";
        emit(r, &ev, 1);
        req_unref(r);
        r = nx;
    }
    glm_sched_free(e->sch);
    glm_bm_free(e->bm);
    glm_runner_free(e->runner);
    free(e->row_sample);
    free(e->samp_row);
    free(e->score_sample);
    free(e->score_row);
    free(e->score_pos);
    glm_free_aligned(e->score_logits);
    glm_free_aligned(e->score_ws);
    free(e->reqs);
    free(e->req_row);
    free(e->results);
    free(e->proc_rows);
    free(e->proc_samples);
    free(e->plan_samples);
    glm_free_aligned(e->proc_logits);
    free(e->plan_start);
    free(e->plan_off);
    free(e->ver_sample);
    free(e->ver_row);
    free(e->ver_rows);
    free(e->ver_base);
    glm_free_aligned(e->ver_logits);
    free(e->ver_res);
    free(e->ver_n);
    free(e->ver_acc);
    glm_free_aligned(e->ver_ws);
    free(e->draft_ents);
    free(e->draft_who);
    free(e->draft_want);
    free(e->draft_chain);
    free(e->draft_last);
    free(e->draft_rowbuf);
    free(e->draft_lrows);
    free(e->draft_ids);
    free(e->draft_tok);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

void glm_engine_stop_backend(glm_engine *e, const char *why)
{
    glm_runner_stop(e->runner, why);
    pthread_mutex_lock(&e->mu);
    if (!e->dead) {
        e->dead = 1;
        glm_err(e->dead_why, sizeof e->dead_why, "%s", why);
    }
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

int glm_engine_wait_world(glm_engine *e, int timeout_ms, char *why, size_t whylen)
{
    return glm_runner_wait_world(e->runner, timeout_ms, why, whylen);
}

int glm_engine_dead(glm_engine *e, char *why, size_t whylen)
{
    pthread_mutex_lock(&e->mu);
    int dead = e->dead;
    if (dead && why)
        glm_err(why, whylen, "%s", e->dead_why);
    pthread_mutex_unlock(&e->mu);
    return dead;
}

size_t glm_engine_kv_tokens(const glm_engine *e)
{
    const glm_batch_limits *l = &glm_runner_info(e->runner)->limits;
    return (size_t)l->num_blocks * (size_t)l->block_size;
}

int glm_engine_max_model_len(const glm_engine *e)
{
    return e->max_model_len;
}

void glm_engine_metrics_get(glm_engine *e, glm_engine_metrics *m)
{
    pthread_mutex_lock(&e->mu);
    *m = e->metrics;
    pthread_mutex_unlock(&e->mu);
    m->prompt_tokens = atomic_load(&e->prompt_tokens);
    m->generation_tokens = atomic_load(&e->gen_tokens);
}
