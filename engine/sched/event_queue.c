/*
 * event_queue.c - see event_queue.h.
 *
 * Three rings of fixed-size elements: records (every event), top logprobs
 * (token events with n_top > 0 push n_top entries, their pop takes as many)
 * and finish details (one per finish event). Each ring is consumed in the
 * order it was filled, so the records alone say which entries of the other
 * two belong to which event.
 */
#include "sched/event_queue.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

typedef struct {
    int32_t token;             /* GLM_EV_TOKEN, GLM_EV_PROMPT_TOKEN */
    float logprob;             /* GLM_EV_TOKEN */
    int32_t index;             /* GLM_EV_PROMPT_TOKEN (always sample 0): its rank instead */
    uint8_t type;              /* glm_event_type */
    uint8_t n_top;             /* GLM_EV_TOKEN: its entries in the top ring */
    uint8_t invalid_request;   /* GLM_EV_ERROR */
    uint8_t pad;
} rec;

typedef struct {
    int32_t id;
    float logprob;
} top;

typedef struct {
    int32_t finish;            /* glm_finish_reason */
    int32_t stop_token;
    int32_t prompt_tokens, completion_tokens, cached_tokens;
    double queue_time, ttft, prefill_time, decode_time, e2e_time;
} fin;

_Static_assert(sizeof(rec) == 16, "a queued token event is 16 bytes");
_Static_assert(sizeof(top) == 8, "a queued top logprob is 8 bytes");

static void ring_init(glm_evq_ring *r, int size)
{
    memset(r, 0, sizeof *r);
    r->size = size;
}

static void ring_free(glm_evq_ring *r)
{
    free(r->p);
    ring_init(r, r->size);
}

static void *ring_at(const glm_evq_ring *r, int i)
{
    return r->p + (size_t)((r->head + i) % r->cap) * (size_t)r->size;
}

static void ring_push(glm_evq_ring *r, const void *x)
{
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : GLM_MAX(2, 256 / r->size); /* 256 bytes to start */
        unsigned char *p = glm_malloc((size_t)cap * (size_t)r->size);
        /* unrolled into order: at most two runs */
        int first = GLM_MIN(r->n, r->cap - r->head);
        if (r->n > 0) {
            memcpy(p, r->p + (size_t)r->head * (size_t)r->size, (size_t)first * (size_t)r->size);
            memcpy(p + (size_t)first * (size_t)r->size, r->p, (size_t)(r->n - first) * (size_t)r->size);
        }
        free(r->p);
        r->p = p;
        r->head = 0;
        r->cap = cap;
    }
    memcpy(ring_at(r, r->n), x, (size_t)r->size);
    r->n++;
}

static void ring_pop(glm_evq_ring *r, void *x)
{
    GLM_ASSERT(r->n > 0);
    memcpy(x, ring_at(r, 0), (size_t)r->size);
    r->head = (r->head + 1) % r->cap;
    r->n--;
}

void glm_evq_init(glm_evq *q)
{
    ring_init(&q->ev, sizeof(rec));
    ring_init(&q->top, sizeof(top));
    ring_init(&q->fin, sizeof(fin));
}

void glm_evq_free(glm_evq *q)
{
    ring_free(&q->ev);
    ring_free(&q->top);
    ring_free(&q->fin);
}

void glm_evq_push(glm_evq *q, const glm_event *ev)
{
    rec r = {0};
    r.type = (uint8_t)ev->type;
    r.index = ev->index;
    if (ev->type == GLM_EV_TOKEN || ev->type == GLM_EV_PROMPT_TOKEN) {
        GLM_ASSERT(ev->n_top >= 0 && ev->n_top <= GLM_SAMPLING_MAX_TOP_LOGPROBS);
        r.token = ev->token;
        r.logprob = ev->logprob;
        r.n_top = (uint8_t)ev->n_top;
        if (ev->type == GLM_EV_PROMPT_TOKEN) {
            GLM_ASSERT(ev->index == 0);
            r.index = ev->rank;
        }
        for (int i = 0; i < ev->n_top; i++)
            ring_push(&q->top, &(top){ev->top_ids[i], ev->top_logprobs[i]});
    } else if (ev->type == GLM_EV_FINISH) {
        fin f = {(int32_t)ev->finish, ev->stop_token, ev->prompt_tokens, ev->completion_tokens, ev->cached_tokens,
                 ev->queue_time, ev->ttft, ev->prefill_time, ev->decode_time, ev->e2e_time};
        ring_push(&q->fin, &f);
    } else {
        r.invalid_request = ev->invalid_request != 0;
    }
    ring_push(&q->ev, &r);
}

int glm_evq_pop(glm_evq *q, glm_event *ev)
{
    if (q->ev.n == 0)
        return 0;
    rec r;
    ring_pop(&q->ev, &r);
    memset(ev, 0, sizeof *ev);
    ev->type = (glm_event_type)r.type;
    ev->index = r.index;
    if (r.type == GLM_EV_PROMPT_TOKEN) {
        ev->index = 0;
        ev->rank = r.index;
    }
    if (r.type == GLM_EV_TOKEN || r.type == GLM_EV_PROMPT_TOKEN) {
        ev->token = r.token;
        ev->logprob = r.logprob;
        ev->n_top = r.n_top;
        for (int i = 0; i < r.n_top; i++) {
            top t;
            ring_pop(&q->top, &t);
            ev->top_ids[i] = t.id;
            ev->top_logprobs[i] = t.logprob;
        }
    } else if (r.type == GLM_EV_FINISH) {
        fin f;
        ring_pop(&q->fin, &f);
        ev->finish = (glm_finish_reason)f.finish;
        ev->stop_token = f.stop_token;
        ev->prompt_tokens = f.prompt_tokens;
        ev->completion_tokens = f.completion_tokens;
        ev->cached_tokens = f.cached_tokens;
        ev->queue_time = f.queue_time;
        ev->ttft = f.ttft;
        ev->prefill_time = f.prefill_time;
        ev->decode_time = f.decode_time;
        ev->e2e_time = f.e2e_time;
    } else {
        ev->invalid_request = r.invalid_request;
    }
    return 1;
}

int glm_evq_len(const glm_evq *q)
{
    return q->ev.n;
}

size_t glm_evq_bytes(const glm_evq *q)
{
    return (size_t)q->ev.cap * (size_t)q->ev.size + (size_t)q->top.cap * (size_t)q->top.size +
           (size_t)q->fin.cap * (size_t)q->fin.size;
}
