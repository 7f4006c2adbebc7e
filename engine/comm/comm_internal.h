/*
 * comm_internal.h - what the implementations of comm.h share: the handle's
 * common head, the table of an implementation's collectives, and a world's
 * fate (poisoned or not, and why). Seen by the .c files of engine/comm and
 * cuda/comm_nccl.cu only.
 */
#ifndef GLM_COMM_INTERNAL_H
#define GLM_COMM_INTERNAL_H

#include <stddef.h>

#include "comm/comm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An implementation's collectives (the contracts of comm.h). comm.c has
 * checked the arguments and that the world was not poisoned at entry. */
typedef struct {
    int (*all_reduce_sum)(glm_comm *c, const float *send, float *recv, size_t count, void *stream, char *err,
                          size_t errlen);
    int (*all_gather)(glm_comm *c, const void *send, void *recv, size_t bytes, void *stream, char *err,
                      size_t errlen);
    int (*broadcast)(glm_comm *c, void *buf, size_t bytes, int root, void *stream, char *err, size_t errlen);
    int (*barrier)(glm_comm *c, void *stream, char *err, size_t errlen);
    /* Called once, by the thread that poisoned the world, after the fate is
     * set: gets the world's pending calls out of their waits. */
    void (*wake)(glm_comm *c);
} glm_comm_ops;

/* Whether a world failed and why; shared by the handles of a world in this
 * process. Thread-safe. */
typedef struct glm_comm_fate glm_comm_fate;

/* The head of every implementation's handle. */
struct glm_comm {
    const glm_comm_ops *ops;
    int rank, world;
    glm_comm_fate *fate;
};

glm_comm_fate *glm_comm_fate_create(void);
void glm_comm_fate_free(glm_comm_fate *f);
/* Sets the fate to "rank R: why" unless it is set already; returns 1 if this
 * call set it (the caller then wakes the world), 0 if it was set before. */
int glm_comm_fate_set(glm_comm_fate *f, int rank, const char *why);
/* 0 if the world is fine; 1 if poisoned (the reason into err when not NULL). */
int glm_comm_fate_get(const glm_comm_fate *f, char *err, size_t errlen);

/* Poisons c's world with a printf-style reason and writes the world's reason
 * (the first one given) into err; returns GLM_ERR. */
int glm_comm_fail(glm_comm *c, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#ifdef __cplusplus
}
#endif

#endif
