/*
 * event_queue.h - the undelivered events of one request, stored compactly.
 *
 * A request's reader can fall behind the engine (a stream whose client reads
 * slowly), so what waits here is kept small: a token event is a 16-byte
 * record, its top logprobs (only when they were asked for) 8 bytes each in a
 * second FIFO, and a finish event's usage and timings a 64-byte entry in a
 * third (at most one per sample). An error's message is not stored here: the
 * request keeps its one message and the reader's event points at it.
 * glm_evq_pop gives back the full glm_event, field for field as pushed.
 *
 * The engine bounds how many events a request may hold (engine.h:
 * max_unread_events); this queue only stores them. Not thread-safe: the
 * request's mutex guards it.
 */
#ifndef GLM_EVENT_QUEUE_H
#define GLM_EVENT_QUEUE_H

#include <stddef.h>

#include "sched/engine.h"

/* A FIFO of fixed-size elements in a ring that doubles when full. */
typedef struct {
    unsigned char *p;  /* [cap * size] */
    int head, n, cap;
    int size;          /* bytes an element */
} glm_evq_ring;

/* Fields belong to event_queue.c; the struct is public to be embedded. */
typedef struct {
    glm_evq_ring ev;   /* one record an event */
    glm_evq_ring top;  /* the top logprobs of token events, in event order */
    glm_evq_ring fin;  /* the usage and timings of finish events, in event order */
} glm_evq;

/* An empty queue (holds no memory until the first push). */
void glm_evq_init(glm_evq *q);
/* Frees what the queue holds; it is empty (and reusable) afterwards. */
void glm_evq_free(glm_evq *q);

/* Appends ev. An error's message is not kept (see above); a token event's
 * n_top must be in [0, GLM_SAMPLING_MAX_TOP_LOGPROBS]. */
void glm_evq_push(glm_evq *q, const glm_event *ev);
/* Takes the oldest event into *ev (message NULL): 1, or 0 when empty. */
int glm_evq_pop(glm_evq *q, glm_event *ev);

/* Events held. */
int glm_evq_len(const glm_evq *q);
/* Bytes of memory the queue holds (its rings' capacities). */
size_t glm_evq_bytes(const glm_evq *q);

#endif
