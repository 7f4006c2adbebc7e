/*
 * comm_local.c - in-process ranks: one thread per rank, one process, shared
 * memory (comm.h). The CPU backend's tensor parallelism, and the CUDA
 * backend's on the CPU execution layer, where device pointers are host
 * pointers.
 *
 * Nothing is copied through a staging buffer and nothing is allocated per
 * call: each rank publishes its buffers in its slot, and under a barrier the
 * ranks read one another's buffers in place.
 *   - all_reduce_sum, reduce-scatter then all-gather: rank r sums its slice
 *     [count * r / world, count * (r + 1) / world) of every rank's send, in
 *     rank order, into its own recv; a barrier; then it copies the other
 *     slices from their owners' recv. Each element is added once, by one rank,
 *     in the order 0, 1, ..., world - 1, so every rank holds the same bits
 *     whatever the timing. In place works: slice r of rank r's buffer is read
 *     by rank r only before the barrier, and read by the others only after it,
 *     when rank r writes the other slices.
 *   - all_gather and broadcast: a barrier, then every rank copies what it
 *     needs from the others' buffers.
 *   - every collective ends with a barrier, so no rank returns (and reuses its
 *     buffers) while another still reads them.
 * The barrier is a mutex, a condition variable and a generation counter; a
 * poisoned world wakes every waiter (wake below), and a waiter that wakes
 * without its generation having passed returns the world's error.
 *
 * A call that fails returns only once no rank is between two barriers
 * reading or writing peers' buffers (`active`, the data phases): whichever
 * way a call returns, nobody touches the caller's buffers afterwards, so a
 * failing rank may free them at once.
 *
 * Each call's first barrier also checks that every rank called the same
 * collective with the same size and root: a rank out of step poisons the
 * world instead of reading past a buffer. The slots alternate between two
 * sets by call number, so a rank that leaves a call early (the plain barrier
 * has no closing barrier) cannot overwrite a slot another rank still checks.
 */
#include "comm/comm_internal.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

enum { OP_ALL_REDUCE_SUM = 1, OP_ALL_GATHER, OP_BROADCAST, OP_BARRIER };

/* What a rank published for its current call; written by that rank before the
 * call's first barrier, read by every rank between it and the next. */
typedef struct {
    alignas(64) int op;
    int root;
    size_t size;          /* elements (all_reduce_sum) or bytes */
    const void *send;
    void *recv;
} slot;

typedef struct {
    glm_comm base;
    glm_comm_local *w;
    uint64_t calls;       /* collectives this rank has entered (selects the slot set) */
    int in_phase;         /* between a barrier and the next, reading or writing peers' buffers */
} local_rank;

struct glm_comm_local {
    int world;
    glm_comm_sync_fn sync;
    void *sync_user;
    glm_comm_fate *fate;
    pthread_mutex_t mu;   /* guards arrived, gen, active and the ranks' in_phase */
    pthread_cond_t cv;    /* a barrier passed, the world poisoned, or active reached 0 */
    int arrived;          /* ranks waiting at the current barrier */
    uint64_t gen;         /* barriers completed */
    int active;           /* ranks in a data phase */
    slot slots[2][GLM_COMM_MAX_WORLD];
    local_rank ranks[GLM_COMM_MAX_WORLD];
};

static const char *op_name(int op)
{
    switch (op) {
    case OP_ALL_REDUCE_SUM: return "all_reduce_sum";
    case OP_ALL_GATHER: return "all_gather";
    case OP_BROADCAST: return "broadcast";
    default: return "barrier";
    }
}

/* Ends the rank's data phase, if it is in one (under w->mu). */
static void phase_end_locked(local_rank *lr)
{
    glm_comm_local *w = lr->w;
    if (lr->in_phase) {
        lr->in_phase = 0;
        if (--w->active == 0)
            pthread_cond_broadcast(&w->cv);
    }
}

/* The failing way out (under w->mu): waits until no rank is in a data phase,
 * so that no peer touches this rank's buffers once its call returns. Data
 * phases never wait, so this ends. */
static int fail_locked(local_rank *lr, char *err, size_t errlen)
{
    glm_comm_local *w = lr->w;
    phase_end_locked(lr);
    while (w->active > 0)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    glm_comm_fate_get(w->fate, err, errlen);
    return GLM_ERR;
}

/* Ends the rank's data phase and returns once every rank has arrived
 * (GLM_OK; with `begin` the rank is in a data phase then) or the world is
 * poisoned (GLM_ERR, no rank in a data phase any more). A rank begins a data
 * phase only if the world is not poisoned when it passes, under the mutex: a
 * peer that fails and waits for the data phases to end cannot miss one that
 * starts later. A closing barrier (no `begin`) that every rank reached
 * succeeds even if the world was poisoned meanwhile: its call is complete. */
static int wait_all(local_rank *lr, int begin, char *err, size_t errlen)
{
    glm_comm_local *w = lr->w;
    pthread_mutex_lock(&w->mu);
    phase_end_locked(lr);
    if (glm_comm_fate_get(w->fate, NULL, 0))
        return fail_locked(lr, err, errlen);
    uint64_t gen = w->gen;
    if (++w->arrived == w->world) {
        w->arrived = 0;
        w->gen++;
        pthread_cond_broadcast(&w->cv);
    } else {
        while (w->gen == gen && !glm_comm_fate_get(w->fate, NULL, 0))
            pthread_cond_wait(&w->cv, &w->mu);
    }
    if (w->gen == gen)
        return fail_locked(lr, err, errlen); /* woken by the poison */
    if (begin) {
        if (glm_comm_fate_get(w->fate, NULL, 0))
            return fail_locked(lr, err, errlen);
        lr->in_phase = 1;
        w->active++;
    }
    pthread_mutex_unlock(&w->mu);
    return GLM_OK;
}

/* Leaves a data phase on failure: poisons the world (the reason into err) and
 * waits until no rank is in a data phase. */
static int fail_in_phase(local_rank *lr, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_in_phase(local_rank *lr, char *err, size_t errlen, const char *fmt, ...)
{
    char why[GLM_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    glm_comm_poison(&lr->base, why);
    pthread_mutex_lock(&lr->w->mu);
    return fail_locked(lr, err, errlen);
}

static void local_wake(glm_comm *c)
{
    glm_comm_local *w = ((local_rank *)c)->w;
    pthread_mutex_lock(&w->mu);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Synchronises the stream, publishes the call and waits for every rank; then
 * checks that they all called the same collective. Returns the rank's slot
 * set, or NULL (and err) on failure. */
static slot *enter(local_rank *lr, int op, size_t size, int root, const void *send, void *recv, void *stream,
                   char *err, size_t errlen)
{
    glm_comm_local *w = lr->w;
    glm_comm *c = &lr->base;
    if (stream && w->sync) {
        char why[GLM_ERRLEN];
        if (w->sync(stream, w->sync_user, why, sizeof why) != GLM_OK) {
            glm_comm_fail(c, err, errlen, "%s: stream: %s", op_name(op), why);
            return NULL;
        }
    }
    slot *set = w->slots[lr->calls++ & 1];
    slot *me = &set[c->rank];
    me->op = op;
    me->size = size;
    me->root = root;
    me->send = send;
    me->recv = recv;
    /* the plain barrier reads no buffers: its one barrier closes it */
    if (wait_all(lr, op != OP_BARRIER, err, errlen) != GLM_OK)
        return NULL;
    for (int s = 0; s < w->world; s++) {
        const slot *o = &set[s];
        if (o->op != op || o->size != size || o->root != root) {
            fail_in_phase(lr, err, errlen,
                          "ranks out of step: rank %d called %s (size %zu, root %d), rank %d %s (size %zu, root %d)",
                          c->rank, op_name(op), size, root, s, op_name(o->op), o->size, o->root);
            return NULL;
        }
    }
    return set;
}

#define CHUNK 256

static int local_all_reduce_sum(glm_comm *c, const float *send, float *recv, size_t count, void *stream, char *err,
                                size_t errlen)
{
    local_rank *lr = (local_rank *)c;
    glm_comm_local *w = lr->w;
    int W = w->world, r = c->rank;
    slot *set = enter(lr, OP_ALL_REDUCE_SUM, count, 0, send, recv, stream, err, errlen);
    if (!set)
        return GLM_ERR;
    /* reduce-scatter: this rank's slice, summed in rank order through a stack
     * chunk (in place, rank r's own send slice is still unread when written) */
    size_t lo = count * (size_t)r / (size_t)W, hi = count * (size_t)(r + 1) / (size_t)W;
    float acc[CHUNK];
    for (size_t i0 = lo; i0 < hi; i0 += CHUNK) {
        size_t n = GLM_MIN((size_t)CHUNK, hi - i0);
        memcpy(acc, (const float *)set[0].send + i0, n * sizeof(float));
        for (int s = 1; s < W; s++) {
            const float *x = (const float *)set[s].send + i0;
            for (size_t i = 0; i < n; i++)
                acc[i] += x[i];
        }
        memcpy(recv + i0, acc, n * sizeof(float));
    }
    if (wait_all(lr, 1, err, errlen) != GLM_OK)
        return GLM_ERR;
    /* all-gather: every other slice from the rank that summed it */
    for (int s = 0; s < W; s++) {
        if (s == r)
            continue;
        size_t slo = count * (size_t)s / (size_t)W, shi = count * (size_t)(s + 1) / (size_t)W;
        if (shi > slo)
            memcpy(recv + slo, (const float *)set[s].recv + slo, (shi - slo) * sizeof(float));
    }
    return wait_all(lr, 0, err, errlen);
}

static int local_all_gather(glm_comm *c, const void *send, void *recv, size_t bytes, void *stream, char *err,
                            size_t errlen)
{
    local_rank *lr = (local_rank *)c;
    slot *set = enter(lr, OP_ALL_GATHER, bytes, 0, send, recv, stream, err, errlen);
    if (!set)
        return GLM_ERR;
    for (int s = 0; s < c->world; s++) {
        char *dst = (char *)recv + (size_t)s * bytes;
        if (bytes && dst != set[s].send)
            memcpy(dst, set[s].send, bytes);
    }
    return wait_all(lr, 0, err, errlen);
}

static int local_broadcast(glm_comm *c, void *buf, size_t bytes, int root, void *stream, char *err, size_t errlen)
{
    local_rank *lr = (local_rank *)c;
    slot *set = enter(lr, OP_BROADCAST, bytes, root, buf, buf, stream, err, errlen);
    if (!set)
        return GLM_ERR;
    if (c->rank != root && bytes)
        memcpy(buf, set[root].send, bytes);
    return wait_all(lr, 0, err, errlen);
}

static int local_barrier(glm_comm *c, void *stream, char *err, size_t errlen)
{
    return enter((local_rank *)c, OP_BARRIER, 0, 0, NULL, NULL, stream, err, errlen) ? GLM_OK : GLM_ERR;
}

static const glm_comm_ops local_ops = {
    .all_reduce_sum = local_all_reduce_sum,
    .all_gather = local_all_gather,
    .broadcast = local_broadcast,
    .barrier = local_barrier,
    .wake = local_wake,
};

glm_comm_local *glm_comm_local_create(int world, glm_comm_sync_fn sync, void *sync_user, char *err, size_t errlen)
{
    if (world < 1 || world > GLM_COMM_MAX_WORLD) {
        glm_err(err, errlen, "in-process communicator: world %d is not in [1, %d]", world, GLM_COMM_MAX_WORLD);
        return NULL;
    }
    glm_comm_local *w = glm_malloc_aligned(sizeof *w);
    memset(w, 0, sizeof *w);
    w->world = world;
    w->sync = sync;
    w->sync_user = sync_user;
    w->fate = glm_comm_fate_create();
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    for (int r = 0; r < world; r++) {
        w->ranks[r].base = (glm_comm){&local_ops, r, world, w->fate};
        w->ranks[r].w = w;
    }
    return w;
}

glm_comm *glm_comm_local_rank(glm_comm_local *w, int r)
{
    GLM_ASSERT(w && r >= 0 && r < w->world);
    return &w->ranks[r].base;
}

void glm_comm_local_free(glm_comm_local *w)
{
    if (!w)
        return;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    glm_comm_fate_free(w->fate);
    glm_free_aligned(w);
}
