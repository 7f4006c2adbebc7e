/*
 * parse_gate.h - how many request bodies are parsed and turned into engine
 * inputs at once.
 *
 * Parsing a body, rendering its prompt and tokenizing it take memory in
 * proportion to the body (server/request_body.h bounds each one) and CPU
 * only; more of them at once than there are cores is no faster, just more
 * memory. The gate is a counting semaphore with a deadline: a request that
 * finds every slot taken waits up to wait_ms for one, then is answered 503
 * with Retry-After (the openai SDKs retry it). Bodies refused by their shape
 * (request_body.h) never take a slot.
 */
#ifndef GLM_PARSE_GATE_H
#define GLM_PARSE_GATE_H

#include <pthread.h>

/* The slots glm_parse_gate_init gives: one per core, 2 to 8, and how long a
 * request waits for one. */
#define GLM_PARSE_GATE_MIN 2
#define GLM_PARSE_GATE_MAX 8
#define GLM_PARSE_GATE_WAIT_MS 5000

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;  /* signalled when a slot frees up; waits on CLOCK_MONOTONIC */
    int used, slots;
    int wait_ms;
} glm_parse_gate;

/* slots <= 0: one per core within [GLM_PARSE_GATE_MIN, GLM_PARSE_GATE_MAX];
 * wait_ms <= 0: GLM_PARSE_GATE_WAIT_MS. Lives as long as the server (no memory
 * to free). */
void glm_parse_gate_init(glm_parse_gate *g, int slots, int wait_ms);

/* Takes a slot: GLM_OK, or GLM_ERR when none freed up within wait_ms. */
int glm_parse_gate_enter(glm_parse_gate *g);

/* Gives back a slot taken by glm_parse_gate_enter. */
void glm_parse_gate_leave(glm_parse_gate *g);

#endif
