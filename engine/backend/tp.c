/*
 * tp.c - tensor parallelism in one process: a backend made of `world` rank
 * backends, one thread each (backend.h: glm_tp_backend_create).
 *
 * Each rank thread owns everything of its rank: the shard of the model
 * (glm_model_shard: views of the mapped checkpoint, so a rank reads only its
 * own bytes), the communicator handle, on the CPU a pool of its own threads,
 * on CUDA its device (made current on that thread once, at create), and the
 * rank backend itself, which it creates, drives and destroys. The model runner
 * calls this backend from its thread; every call is handed to the ranks:
 *   - forward goes to every rank; the ranks meet in their collectives (two
 *     all-reduces per layer, the embedding's all-reduce, the LM head's
 *     all-gather), and each ends the step with every row's full logits;
 *   - logits, sample and trace_hidden go to rank 0 alone: rank 0 samples.
 * The calling thread waits for the ranks it handed the call to.
 *
 * Failure: a rank whose call fails poisons the world (comm.h) with its
 * message, so the ranks waiting for it in a collective return at once instead
 * of hanging; the call fails with the first failing rank's message, and so
 * does every later call: a world that lost a rank is dead, and the server
 * stops (engine.c). Creation fails the same way: a rank that cannot load its
 * shard or its device stops every rank, and the message names it.
 *
 * The KV blocks: every rank holds the latent of every token (it is per token,
 * not per head), so every rank has a cache of the same blocks; the world
 * offers the fewest blocks any rank holds. On the CPU the ranks share one
 * machine's memory, so each gets 1/world of the budget and of the threads.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "comm/comm.h"
#include "core/util.h"

#pragma weak glm_cuda_tp_world

typedef enum { OP_CREATE, OP_FORWARD, OP_LOGITS, OP_SAMPLE, OP_TRACE, OP_DESTROY, OP_EXIT } tp_op;

typedef struct tp_backend tp_backend;
static const glm_backend_ops tp_ops;

typedef struct {
    tp_backend *tp;
    int rank;
    pthread_t thread;
    int started;
    glm_model *shard;
    glm_pool *pool;          /* CPU: the rank's own threads */
    glm_comm *comm;
    glm_backend *be;
    int rc;
    char err[GLM_ERRLEN];
} tp_rank;

struct tp_backend {
    glm_backend base;
    const glm_model *m;
    glm_backend_params p;    /* the world's parameters (rank 0, comm NULL) */
    int world;
    tp_rank *ranks;
    const glm_tp_world_ops *wops;
    void *comm_world;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned gen;            /* a new call for the ranks */
    tp_op op;
    int all;                 /* the call is for every rank (else rank 0) */
    int pending;             /* ranks still in the call */
    int dead;                /* a rank failed: every call fails with why */
    char why[GLM_ERRLEN];
    /* the call's arguments */
    const glm_batch *batch;
    const int32_t *rows;
    int n;
    float *out;
    const glm_sample_req *reqs;
    glm_sampler_result *res;
};

/* ---- in-process ranks over shared memory (the CPU backend's world) -------------------- */

static void *local_create(int world, char *err, size_t errlen)
{
    return glm_comm_local_create(world, NULL, NULL, err, errlen);
}

static int local_join(void *w, int rank, int device, glm_comm **out, char *err, size_t errlen)
{
    *out = glm_comm_local_rank(w, rank);
    return GLM_OK;
}

static void local_free(void *w) { glm_comm_local_free(w); }

static const glm_tp_world_ops local_world = {"in-process ranks", local_create, local_join, local_free};

/* ---- a rank's side -------------------------------------------------------------------- */

static int rank_create(tp_rank *r)
{
    tp_backend *tp = r->tp;
    const glm_backend_params *wp = &tp->p;
    int device = wp->device + r->rank;
    if (tp->wops->join(tp->comm_world, r->rank, device, &r->comm, r->err, sizeof r->err) != GLM_OK)
        return GLM_ERR;
    r->shard = glm_model_shard(tp->m, r->rank, tp->world, r->err, sizeof r->err);
    if (!r->shard)
        return GLM_ERR;
    glm_backend_params bp = *wp;
    bp.rank = r->rank;
    bp.comm = r->comm;
    bp.device = device;
    if (wp->kind == GLM_BACKEND_CPU) {
        /* the ranks share the machine: its threads and its memory */
        r->pool = glm_pool_create(GLM_MAX(1, glm_pool_size(wp->pool) / tp->world));
        bp.pool = r->pool;
        bp.kv_bytes = wp->kv_bytes / (size_t)tp->world;
        bp.mem_fraction = (wp->mem_fraction > 0 ? wp->mem_fraction : 0.9) / tp->world;
    }
    r->be = glm_backend_create(r->shard, &bp, r->err, sizeof r->err);
    return r->be ? GLM_OK : GLM_ERR;
}

static void rank_destroy(tp_rank *r)
{
    glm_backend_destroy(r->be);
    r->be = NULL;
    glm_pool_free(r->pool);
    r->pool = NULL;
    glm_model_free(r->shard);
    r->shard = NULL;
}

static int rank_run(tp_rank *r, tp_op op)
{
    tp_backend *tp = r->tp;
    switch (op) {
    case OP_CREATE:
        return rank_create(r);
    case OP_FORWARD:
        return r->be->ops->forward(r->be, tp->batch, r->err, sizeof r->err);
    case OP_LOGITS:
        return r->be->ops->logits(r->be, tp->rows, tp->n, tp->out, r->err, sizeof r->err);
    case OP_SAMPLE:
        return r->be->ops->sample(r->be, tp->reqs, tp->n, tp->res, r->err, sizeof r->err);
    case OP_TRACE:
        if (r->be->ops->trace_hidden)
            r->be->ops->trace_hidden(r->be, tp->out);
        return GLM_OK;
    case OP_DESTROY:
        rank_destroy(r);
        return GLM_OK;
    case OP_EXIT:
        break;
    }
    return GLM_OK;
}

static void *rank_main(void *arg)
{
    tp_rank *r = arg;
    tp_backend *tp = r->tp;
    unsigned seen = 0;
    for (;;) {
        pthread_mutex_lock(&tp->mu);
        while (tp->gen == seen)
            pthread_cond_wait(&tp->go, &tp->mu);
        seen = tp->gen;
        tp_op op = tp->op;
        int mine = tp->all || r->rank == 0;
        pthread_mutex_unlock(&tp->mu);
        if (!mine)
            continue;
        r->err[0] = 0;
        int rc = rank_run(r, op);
        if (rc != GLM_OK && r->comm) /* the others may be waiting for this rank: stop them */
            glm_comm_poison(r->comm, r->err);
        pthread_mutex_lock(&tp->mu);
        r->rc = rc;
        if (--tp->pending == 0)
            pthread_cond_signal(&tp->done);
        pthread_mutex_unlock(&tp->mu);
        if (op == OP_EXIT)
            return NULL;
    }
}

/* ---- the caller's side ----------------------------------------------------------------- */

/* Hands op to every rank (all) or to rank 0 and waits for them. Returns GLM_OK or the
 * failing call's code, with the root cause in err: the world's poison reason when there is
 * one ("rank R: ..."), else the first failing rank's message. */
static int call(tp_backend *tp, tp_op op, int all, char *err, size_t errlen)
{
    if (tp->dead && op != OP_DESTROY && op != OP_EXIT)
        return glm_err(err, errlen, "%s", tp->why), GLM_BACKEND_DEAD;
    pthread_mutex_lock(&tp->mu);
    tp->op = op;
    tp->all = all;
    tp->pending = all ? tp->world : 1;
    tp->gen++;
    pthread_cond_broadcast(&tp->go);
    while (tp->pending > 0)
        pthread_cond_wait(&tp->done, &tp->mu);
    pthread_mutex_unlock(&tp->mu);
    int rc = GLM_OK;
    for (int i = 0; i < (all ? tp->world : 1); i++)
        if (tp->ranks[i].rc != GLM_OK) {
            rc = tp->ranks[i].rc;
            break;
        }
    if (rc == GLM_OK)
        return GLM_OK;
    char why[GLM_ERRLEN] = "";
    for (int i = 0; i < tp->world && !why[0]; i++)
        if (tp->ranks[i].comm)
            glm_comm_poisoned(tp->ranks[i].comm, why, sizeof why);
    for (int i = 0; i < tp->world && !why[0]; i++)
        if (tp->ranks[i].rc != GLM_OK)
            glm_err(why, sizeof why, "rank %d: %s", i, tp->ranks[i].err);
    tp->dead = 1;
    glm_err(tp->why, sizeof tp->why, "%s", why);
    glm_err(err, errlen, "%s", why);
    return GLM_BACKEND_DEAD; /* a rank broke (validated batches), and the world with it */
}

void glm_tp_backend_stop(glm_backend *b, const char *why)
{
    if (b->ops != &tp_ops)
        return;
    tp_backend *tp = (tp_backend *)b;
    /* the world's fate is shared: rank 0's handle stops every rank */
    if (tp->ranks[0].comm)
        glm_comm_poison(tp->ranks[0].comm, why);
}

static int tp_forward(glm_backend *base, const glm_batch *b, char *err, size_t errlen)
{
    tp_backend *tp = (tp_backend *)base;
    tp->batch = b;
    return call(tp, OP_FORWARD, 1, err, errlen);
}

static int tp_logits(glm_backend *base, const int32_t *rows, int n, float *out, char *err, size_t errlen)
{
    tp_backend *tp = (tp_backend *)base;
    tp->rows = rows;
    tp->n = n;
    tp->out = out;
    return call(tp, OP_LOGITS, 0, err, errlen);
}

static int tp_sample(glm_backend *base, const glm_sample_req *reqs, int n, glm_sampler_result *out, char *err,
                     size_t errlen)
{
    tp_backend *tp = (tp_backend *)base;
    tp->reqs = reqs;
    tp->n = n;
    tp->res = out;
    return call(tp, OP_SAMPLE, 0, err, errlen);
}

static void tp_trace_hidden(glm_backend *base, float *out)
{
    /* every rank holds the same residual stream: rank 0's is traced */
    tp_backend *tp = (tp_backend *)base;
    char err[GLM_ERRLEN];
    tp->out = out;
    call(tp, OP_TRACE, 0, err, sizeof err);
}

static void tp_destroy(glm_backend *base)
{
    tp_backend *tp = (tp_backend *)base;
    char err[GLM_ERRLEN];
    int started = 0;
    for (int i = 0; i < tp->world; i++)
        started += tp->ranks[i].started;
    if (started == tp->world) {
        /* a rank still waiting in a collective of a failed call cannot be: calls return
         * only when every rank is back */
        call(tp, OP_DESTROY, 1, err, sizeof err);
        call(tp, OP_EXIT, 1, err, sizeof err);
    }
    for (int i = 0; i < tp->world; i++)
        if (tp->ranks[i].started)
            pthread_join(tp->ranks[i].thread, NULL);
    if (tp->comm_world)
        tp->wops->free(tp->comm_world);
    pthread_mutex_destroy(&tp->mu);
    pthread_cond_destroy(&tp->go);
    pthread_cond_destroy(&tp->done);
    free(tp->ranks);
    free(tp);
}

static const glm_backend_ops tp_ops = {tp_forward, tp_logits, tp_sample, tp_trace_hidden, tp_destroy};

glm_backend *glm_tp_backend_create(const glm_model *m, const glm_backend_params *p, char *err, size_t errlen)
{
    int world = p->world;
    if (world < 2 || world > GLM_COMM_MAX_WORLD || p->rank != 0 || p->comm) {
        glm_err(err, errlen, "tensor parallelism: a world of 2..%d ranks made here, not %d", GLM_COMM_MAX_WORLD,
                world);
        return NULL;
    }
    /* what does not divide is said once, before any rank starts */
    glm_model *probe = glm_model_shard(m, 0, world, err, errlen);
    if (!probe)
        return NULL;
    glm_model_free(probe);
    const glm_tp_world_ops *wops = &local_world;
    if (p->kind == GLM_BACKEND_CUDA) {
        if (!&glm_cuda_tp_world) {
            glm_err(err, errlen, "this glm-server was built without the CUDA backend (build with nvcc on PATH)");
            return NULL;
        }
        wops = &glm_cuda_tp_world;
    }
    tp_backend *tp = glm_calloc(1, sizeof *tp);
    tp->m = m;
    tp->p = *p;
    tp->world = world;
    tp->wops = wops;
    tp->ranks = glm_calloc((size_t)world, sizeof *tp->ranks);
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->go, NULL);
    pthread_cond_init(&tp->done, NULL);
    tp->base.ops = &tp_ops;
    tp->comm_world = wops->create(world, err, errlen);
    if (!tp->comm_world) {
        tp_destroy(&tp->base);
        return NULL;
    }
    for (int i = 0; i < world; i++) {
        tp_rank *r = &tp->ranks[i];
        r->tp = tp;
        r->rank = i;
        if (pthread_create(&r->thread, NULL, rank_main, r) != 0) {
            glm_err(err, errlen, "tensor parallelism: cannot start the thread of rank %d", i);
            /* the started ranks are parked: poison nothing, just stop them */
            pthread_mutex_lock(&tp->mu);
            tp->op = OP_EXIT;
            tp->all = 1;
            tp->pending = i;
            tp->gen++;
            pthread_cond_broadcast(&tp->go);
            pthread_mutex_unlock(&tp->mu);
            tp_destroy(&tp->base);
            return NULL;
        }
        r->started = 1;
    }
    char why[GLM_ERRLEN];
    if (call(tp, OP_CREATE, 1, why, sizeof why) != GLM_OK) {
        glm_err(err, errlen, "tensor parallel size %d: %s", world, why);
        tp_destroy(&tp->base);
        return NULL;
    }
    /* one block manager for every rank's cache: the fewest blocks any rank holds */
    glm_backend_info info = tp->ranks[0].be->info;
    info.kv_bytes = info.workspace_bytes = 0;
    for (int i = 0; i < world; i++) {
        const glm_backend_info *ri = &tp->ranks[i].be->info;
        info.limits.num_blocks = GLM_MIN(info.limits.num_blocks, ri->limits.num_blocks);
        info.kv_bytes += ri->kv_bytes;
        info.workspace_bytes += ri->workspace_bytes;
    }
    tp->base.info = info;
    return &tp->base;
}
