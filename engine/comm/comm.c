/*
 * comm.c - the collectives of comm.h, dispatched to their implementation
 * (comm_local.c, cuda/comm_nccl.cu) after the checks every implementation
 * shares, and a world's fate: the first reason it was poisoned for.
 */
#include "comm/comm_internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

struct glm_comm_fate {
    atomic_int poisoned;     /* set once, after why is written */
    pthread_mutex_t mu;      /* guards why */
    char why[GLM_ERRLEN];
};

glm_comm_fate *glm_comm_fate_create(void)
{
    glm_comm_fate *f = glm_calloc(1, sizeof *f);
    atomic_init(&f->poisoned, 0);
    pthread_mutex_init(&f->mu, NULL);
    return f;
}

void glm_comm_fate_free(glm_comm_fate *f)
{
    if (!f)
        return;
    pthread_mutex_destroy(&f->mu);
    free(f);
}

int glm_comm_fate_set(glm_comm_fate *f, int rank, const char *why)
{
    int first = 0;
    pthread_mutex_lock(&f->mu);
    if (!atomic_load(&f->poisoned)) {
        glm_err(f->why, sizeof f->why, "tensor-parallel world stopped: rank %d: %s", rank,
                why && *why ? why : "stopped");
        atomic_store(&f->poisoned, 1);
        first = 1;
    }
    pthread_mutex_unlock(&f->mu);
    return first;
}

int glm_comm_fate_get(const glm_comm_fate *f, char *err, size_t errlen)
{
    if (!atomic_load(&f->poisoned))
        return 0;
    if (err && errlen) {
        pthread_mutex_lock((pthread_mutex_t *)&f->mu);
        glm_err(err, errlen, "%s", f->why);
        pthread_mutex_unlock((pthread_mutex_t *)&f->mu);
    }
    return 1;
}

void glm_comm_poison(glm_comm *c, const char *why)
{
    GLM_ASSERT(c);
    if (glm_comm_fate_set(c->fate, c->rank, why) && c->ops->wake)
        c->ops->wake(c);
}

int glm_comm_fail(glm_comm *c, char *err, size_t errlen, const char *fmt, ...)
{
    char why[GLM_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    glm_comm_poison(c, why);
    glm_comm_fate_get(c->fate, err, errlen);
    return GLM_ERR;
}

int glm_comm_poisoned(const glm_comm *c, char *err, size_t errlen)
{
    GLM_ASSERT(c);
    return glm_comm_fate_get(c->fate, err, errlen);
}

int glm_comm_rank(const glm_comm *c) { return c->rank; }
int glm_comm_world(const glm_comm *c) { return c->world; }

int glm_comm_all_reduce_sum(glm_comm *c, const float *send, float *recv, size_t count, void *stream, char *err,
                            size_t errlen)
{
    GLM_ASSERT(c && (count == 0 || (send && recv)));
    if (glm_comm_fate_get(c->fate, err, errlen))
        return GLM_ERR;
    return c->ops->all_reduce_sum(c, send, recv, count, stream, err, errlen);
}

int glm_comm_all_gather(glm_comm *c, const void *send, void *recv, size_t bytes, void *stream, char *err,
                        size_t errlen)
{
    GLM_ASSERT(c && (bytes == 0 || (send && recv)));
    if (glm_comm_fate_get(c->fate, err, errlen))
        return GLM_ERR;
    return c->ops->all_gather(c, send, recv, bytes, stream, err, errlen);
}

int glm_comm_broadcast(glm_comm *c, void *buf, size_t bytes, int root, void *stream, char *err, size_t errlen)
{
    GLM_ASSERT(c && (bytes == 0 || buf) && root >= 0 && root < c->world);
    if (glm_comm_fate_get(c->fate, err, errlen))
        return GLM_ERR;
    return c->ops->broadcast(c, buf, bytes, root, stream, err, errlen);
}

int glm_comm_barrier(glm_comm *c, void *stream, char *err, size_t errlen)
{
    GLM_ASSERT(c);
    if (glm_comm_fate_get(c->fate, err, errlen))
        return GLM_ERR;
    return c->ops->barrier(c, stream, err, errlen);
}
