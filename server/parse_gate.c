/* parse_gate.c - the counting semaphore of request parsing; see parse_gate.h. */
#include "parse_gate.h"

#include <errno.h>
#include <time.h>

#include "core/util.h"

void glm_parse_gate_init(glm_parse_gate *g, int slots, int wait_ms)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &a);
    pthread_condattr_destroy(&a);
    if (slots <= 0)
        slots = GLM_MIN(GLM_MAX(glm_cpu_count(), GLM_PARSE_GATE_MIN), GLM_PARSE_GATE_MAX);
    g->slots = slots;
    g->used = 0;
    g->wait_ms = wait_ms > 0 ? wait_ms : GLM_PARSE_GATE_WAIT_MS;
}

int glm_parse_gate_enter(glm_parse_gate *g)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += g->wait_ms / 1000;
    until.tv_nsec += (long)(g->wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    int rc = GLM_OK;
    pthread_mutex_lock(&g->mu);
    while (g->used >= g->slots) {
        if (pthread_cond_timedwait(&g->cv, &g->mu, &until) == ETIMEDOUT && g->used >= g->slots) {
            rc = GLM_ERR;
            break;
        }
    }
    if (rc == GLM_OK)
        g->used++;
    pthread_mutex_unlock(&g->mu);
    return rc;
}

void glm_parse_gate_leave(glm_parse_gate *g)
{
    pthread_mutex_lock(&g->mu);
    GLM_ASSERT(g->used > 0);
    g->used--;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
}
