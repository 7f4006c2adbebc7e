/*
 * tp.c - tensor parallelism: a backend made of the world's rank backends, one
 * thread each (backend.h: glm_tp_backend_create).
 *
 * Each rank thread owns everything of its rank: the shard of the model
 * (glm_model_shard: views of the mapped checkpoint, so a rank reads only its
 * own bytes), the communicator handle, on the CPU a pool of its own threads,
 * on CUDA its device (made current on that thread once, at create), and the
 * rank backend itself, which it creates, drives and destroys.
 *
 * Rank 0 leads; the others follow. The model runner calls this backend from
 * its thread and its calls go to rank 0's thread; for a forward, rank 0 first
 * broadcasts the step to the world (a header, then the batch's arrays:
 * step_pack below) and every other rank, waiting in that broadcast, receives
 * it, checks it against its own limits and runs the same forward. The ranks
 * meet in their collectives (two all-reduces per layer, the embedding's
 * all-reduce, the LM head's all-gather) and each ends the step with every
 * row's full logits; logits, sample and trace_hidden are rank 0's alone: rank
 * 0 samples. The step goes through the world's own transport, so the ranks
 * of another process, another machine, follow exactly as those of this one
 * do: a world across nodes (p->first_rank, p->n_local) runs the same code,
 * and a process without rank 0 only waits (glm_tp_backend_wait). Stopping is
 * a step too: destroy broadcasts it, and every follower leaves its loop.
 *
 * Failure: a rank whose work fails poisons the world (comm.h) with its
 * message, so the ranks waiting for it in a collective return at once
 * instead of hanging; the call fails with the first failing rank's message,
 * GLM_BACKEND_DEAD, and so does every later one: a world that lost a rank is
 * dead, and the server stops (engine.c). Creation fails the same way: a rank
 * that cannot load its shard or its device stops every rank, and the message
 * names it. A follower that finds a step it cannot take (sizes past its
 * limits) stops the world rather than guess.
 *
 * The KV blocks: every rank holds the latent of every token (it is per token,
 * not per head), so every rank has a cache of the same blocks; at creation
 * the ranks gather their block counts and the world offers the fewest. On the
 * CPU the ranks share one machine, so each gets 1/n of the memory budget and
 * of the threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "comm/comm.h"
#include "core/util.h"

#pragma weak glm_cuda_tp_world

typedef enum { OP_NONE, OP_CREATE, OP_FORWARD, OP_DRAFT, OP_LOGITS, OP_SAMPLE, OP_TRACE, OP_DESTROY, OP_QUIT } tp_op;

/* The step message: a header, then (for a forward or a draft) the batch's arrays, and for a
 * draft the hidden-state rows its tokens read. */
enum { STEP_FORWARD = 0x67730001, STEP_STOP = 0x67730002, STEP_DRAFT = 0x67730003 };
typedef struct {
    int32_t kind;                 /* STEP_FORWARD, STEP_DRAFT or STEP_STOP */
    int32_t n_tokens, n_seqs, max_blocks_per_seq, n_logits;
    int32_t from;                 /* STEP_DRAFT: glm_draft_source */
    int64_t payload_bytes;        /* bytes of arrays that follow */
} step_header;

typedef struct tp_backend tp_backend;
static const glm_backend_ops tp_ops;

typedef struct {
    tp_backend *tp;
    int rank;                     /* in the world */
    pthread_t thread;
    int started;
    glm_model *shard;
    glm_pool *pool;               /* CPU: the rank's own threads */
    glm_comm *comm;
    glm_backend *be;
    glm_backend_info info;        /* be's, kept: a follower's be goes with its loop */
    int num_blocks;               /* the world's: the fewest of any rank */
    void *msg;                    /* the step message's arrays (max_payload bytes) */
    int rc;
    char err[GLM_ERRLEN];
} tp_rank;

struct tp_backend {
    glm_backend base;
    const glm_model *m;
    glm_backend_params p;         /* the world's parameters (rank 0, comm NULL) */
    int world, first, n_local;    /* this process runs ranks [first, first + n_local) */
    tp_rank *ranks;               /* [n_local] */
    const glm_tp_world_ops *wops;
    void *comm_world;
    size_t max_payload;           /* bytes of the largest step's arrays */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned gen;                 /* a new call */
    tp_op op;
    int all;                      /* the call is for every local rank (creation), else rank 0's */
    int pending;                  /* ranks still in the call */
    int exited;                   /* followers that left their loop */
    int dead;                     /* a rank failed: every call fails with why */
    char why[GLM_ERRLEN];
    /* the call's arguments */
    const glm_batch *batch;
    glm_draft_source from;
    const int32_t *rows;
    int n;
    float *out;
    const glm_sample_req *reqs;
    glm_sampler_result *res;
};

/* ---- in-process ranks over shared memory (the CPU backend's world) -------------------- */

static void *local_create(int world, int first, int n_local, const void *id, char *err, size_t errlen)
{
    return glm_comm_local_create(world, NULL, NULL, err, errlen);
}

static int local_join(void *w, int rank, int device, size_t host_bytes, glm_comm **out, char *err, size_t errlen)
{
    *out = glm_comm_local_rank(w, rank);
    return GLM_OK;
}

static int local_broadcast(void *w, glm_comm *c, void *buf, size_t bytes, char *err, size_t errlen)
{
    return glm_comm_broadcast(c, buf, bytes, 0, NULL, err, errlen);
}

static int local_all_gather(void *w, glm_comm *c, const void *send, void *recv, size_t bytes, char *err,
                            size_t errlen)
{
    return glm_comm_all_gather(c, send, recv, bytes, NULL, err, errlen);
}

static void local_free(void *w) { glm_comm_local_free(w); }

static const glm_tp_world_ops local_world = {"in-process ranks", 0, NULL, local_create, local_join,
                                             local_broadcast, local_all_gather, local_free};

/* ---- the step message ----------------------------------------------------------------- */

static size_t payload_bytes(int n_tokens, int n_seqs, int mbps, int n_logits, int draft)
{
    return sizeof(int64_t) * (size_t)n_tokens +
           sizeof(int32_t) * ((2 + (draft != 0)) * (size_t)n_tokens + 2 * (size_t)n_seqs + 1 +
                              (size_t)n_seqs * (size_t)mbps + (size_t)n_logits);
}

/* The arrays of b, packed into msg: slots, tokens, positions, cu_seqlens, context lengths,
 * block tables, logits rows; a draft's hidden-state rows (draft_rows, NULL for a forward). */
static void step_pack(const glm_batch *b, const int32_t *draft_rows, glm_draft_source from, step_header *h,
                      void *msg)
{
    int draft = draft_rows != NULL;
    *h = (step_header){draft ? STEP_DRAFT : STEP_FORWARD, b->n_tokens, b->n_seqs, b->max_blocks_per_seq,
                       b->n_logits, (int32_t)from,
                       (int64_t)payload_bytes(b->n_tokens, b->n_seqs, b->max_blocks_per_seq, b->n_logits, draft)};
    char *p = msg;
#define PUT(src, n, T) (memcpy(p, (src), sizeof(T) * (size_t)(n)), p += sizeof(T) * (size_t)(n))
    PUT(b->slot_mapping, b->n_tokens, int64_t);
    PUT(b->token_ids, b->n_tokens, int32_t);
    PUT(b->positions, b->n_tokens, int32_t);
    PUT(b->cu_seqlens_q, b->n_seqs + 1, int32_t);
    PUT(b->context_lens, b->n_seqs, int32_t);
    PUT(b->block_tables, (size_t)b->n_seqs * b->max_blocks_per_seq, int32_t);
    PUT(b->logits_index, b->n_logits, int32_t);
    if (draft)
        PUT(draft_rows, b->n_tokens, int32_t);
#undef PUT
}

/* A follower's check of a forward's header against its own limits, before the arrays come. */
static int step_check(const step_header *h, const glm_batch_limits *lim, size_t max_payload, char *err,
                      size_t errlen)
{
    if (h->n_tokens < 1 || h->n_tokens > lim->max_tokens || h->n_seqs < 1 || h->n_seqs > lim->max_seqs ||
        h->max_blocks_per_seq < 0 || h->max_blocks_per_seq > lim->max_blocks_per_seq || h->n_logits < 0 ||
        h->n_logits > lim->max_logits ||
        (h->kind == STEP_DRAFT && h->from != GLM_DRAFT_FROM_FORWARD && h->from != GLM_DRAFT_FROM_DRAFT) ||
        h->payload_bytes != (int64_t)payload_bytes(h->n_tokens, h->n_seqs, h->max_blocks_per_seq, h->n_logits,
                                                   h->kind == STEP_DRAFT) ||
        (size_t)h->payload_bytes > max_payload)
        return glm_err(err, errlen, "a step from rank 0 past this rank's limits: %d tokens, %d sequences, "
                       "%d blocks each, %d logits rows, %lld bytes", h->n_tokens, h->n_seqs,
                       h->max_blocks_per_seq, h->n_logits, (long long)h->payload_bytes);
    return GLM_OK;
}

/* The batch in msg (arrays of a checked header), validated as the runner validates rank 0's;
 * a draft's rows in *draft_rows. */
static int step_unpack(const step_header *h, const glm_batch_limits *lim, void *msg, glm_batch *b,
                       const int32_t **draft_rows, char *err, size_t errlen)
{
    char *p = msg;
#define TAKE(field, n, T) (b->field = (const T *)p, p += sizeof(T) * (size_t)(n))
    memset(b, 0, sizeof *b);
    b->n_tokens = h->n_tokens;
    b->n_seqs = h->n_seqs;
    b->max_blocks_per_seq = h->max_blocks_per_seq;
    b->n_logits = h->n_logits;
    TAKE(slot_mapping, h->n_tokens, int64_t);
    TAKE(token_ids, h->n_tokens, int32_t);
    TAKE(positions, h->n_tokens, int32_t);
    TAKE(cu_seqlens_q, h->n_seqs + 1, int32_t);
    TAKE(context_lens, h->n_seqs, int32_t);
    TAKE(block_tables, (size_t)h->n_seqs * h->max_blocks_per_seq, int32_t);
    TAKE(logits_index, h->n_logits, int32_t);
    *draft_rows = h->kind == STEP_DRAFT ? (const int32_t *)p : NULL;
#undef TAKE
    return glm_batch_validate(b, lim, err, errlen) == GLM_OK ? GLM_OK : GLM_ERR;
}

/* ---- a rank's side -------------------------------------------------------------------- */

static int rank_create(tp_rank *r)
{
    tp_backend *tp = r->tp;
    const glm_backend_params *wp = &tp->p;
    int device = wp->device + (r->rank - tp->first); /* a process's ranks on its devices 0.. */
    if (tp->wops->join(tp->comm_world, r->rank, device, GLM_MAX(tp->max_payload, sizeof(int32_t) * tp->world),
                       &r->comm, r->err, sizeof r->err) != GLM_OK)
        return GLM_ERR;
    r->msg = glm_malloc(GLM_MAX(tp->max_payload, sizeof(int32_t) * tp->world));
    r->shard = glm_model_shard(tp->m, r->rank, tp->world, r->err, sizeof r->err);
    if (!r->shard)
        return GLM_ERR;
    glm_backend_params bp = *wp;
    bp.rank = r->rank;
    bp.comm = r->comm;
    bp.device = device;
    bp.first_rank = 0;
    bp.n_local = 0;
    bp.world_id = NULL;
    if (wp->kind == GLM_BACKEND_CPU) {
        /* the ranks share the machine: its threads and its memory */
        r->pool = glm_pool_create(GLM_MAX(1, glm_pool_size(wp->pool) / tp->n_local));
        bp.pool = r->pool;
        bp.kv_bytes = wp->kv_bytes / (size_t)tp->n_local;
        bp.mem_fraction = (wp->mem_fraction > 0 ? wp->mem_fraction : 0.9) / tp->n_local;
    }
    r->be = glm_backend_create(r->shard, &bp, r->err, sizeof r->err);
    if (!r->be)
        return GLM_ERR;
    r->info = r->be->info;
    /* one block manager for every rank's cache: the fewest blocks any rank holds */
    int32_t mine = r->be->info.limits.num_blocks, *all = (int32_t *)r->msg;
    if (tp->wops->host_all_gather(tp->comm_world, r->comm, &mine, all, sizeof mine, r->err, sizeof r->err) !=
        GLM_OK)
        return GLM_ERR;
    r->num_blocks = mine;
    for (int i = 0; i < tp->world; i++)
        r->num_blocks = GLM_MIN(r->num_blocks, all[i]);
    r->info.limits.num_blocks = r->num_blocks; /* a follower checks steps against the world's */
    return GLM_OK;
}

static void rank_destroy(tp_rank *r)
{
    glm_backend_destroy(r->be);
    r->be = NULL;
    glm_pool_free(r->pool);
    r->pool = NULL;
    glm_model_free(r->shard);
    r->shard = NULL;
    free(r->msg);
    r->msg = NULL;
}

/* Rank 0: the step (a forward, or with draft_rows a draft) to every rank, then its own. */
static int lead_step(tp_rank *r, const int32_t *draft_rows)
{
    tp_backend *tp = r->tp;
    step_header h;
    step_pack(tp->batch, draft_rows, tp->from, &h, r->msg);
    if (tp->wops->host_broadcast(tp->comm_world, r->comm, &h, sizeof h, r->err, sizeof r->err) != GLM_OK ||
        tp->wops->host_broadcast(tp->comm_world, r->comm, r->msg, (size_t)h.payload_bytes, r->err,
                                 sizeof r->err) != GLM_OK)
        return GLM_BACKEND_DEAD;
    if (draft_rows)
        return r->be->ops->draft(r->be, tp->batch, tp->from, draft_rows, r->err, sizeof r->err);
    return r->be->ops->forward(r->be, tp->batch, r->err, sizeof r->err);
}

/* Every other rank: steps from rank 0 until it stops the world (GLM_OK) or the world fails. */
static int follow(tp_rank *r)
{
    tp_backend *tp = r->tp;
    for (;;) {
        step_header h;
        if (tp->wops->host_broadcast(tp->comm_world, r->comm, &h, sizeof h, r->err, sizeof r->err) != GLM_OK)
            return GLM_ERR;
        if (h.kind == STEP_STOP)
            return GLM_OK;
        if (h.kind != STEP_FORWARD && !(h.kind == STEP_DRAFT && r->be->ops->draft))
            return glm_err(r->err, sizeof r->err, "a step of unknown kind 0x%x from rank 0", (unsigned)h.kind);
        glm_batch b;
        const int32_t *draft_rows;
        if (step_check(&h, &r->info.limits, tp->max_payload, r->err, sizeof r->err) != GLM_OK ||
            tp->wops->host_broadcast(tp->comm_world, r->comm, r->msg, (size_t)h.payload_bytes, r->err,
                                     sizeof r->err) != GLM_OK ||
            step_unpack(&h, &r->info.limits, r->msg, &b, &draft_rows, r->err, sizeof r->err) != GLM_OK)
            return GLM_ERR;
        int rc = draft_rows ? r->be->ops->draft(r->be, &b, (glm_draft_source)h.from, draft_rows, r->err,
                                                sizeof r->err)
                            : r->be->ops->forward(r->be, &b, r->err, sizeof r->err);
        if (rc != GLM_OK)
            return GLM_ERR;
    }
}

static int rank_run(tp_rank *r, tp_op op)
{
    tp_backend *tp = r->tp;
    switch (op) { /* rank 0's calls after its creation (rank_main) */
    case OP_FORWARD:
        return lead_step(r, NULL);
    case OP_DRAFT:
        return lead_step(r, tp->rows);
    case OP_LOGITS:
        return r->be->ops->logits(r->be, tp->rows, tp->n, tp->out, r->err, sizeof r->err);
    case OP_SAMPLE:
        return r->be->ops->sample(r->be, tp->reqs, tp->n, tp->res, r->err, sizeof r->err);
    case OP_TRACE:
        if (r->be->ops->trace_hidden)
            r->be->ops->trace_hidden(r->be, tp->out);
        return GLM_OK;
    case OP_DESTROY:
        if (r->be && r->comm && !glm_comm_poisoned(r->comm, NULL, 0)) {
            step_header h = {STEP_STOP, 0, 0, 0, 0, 0, 0};
            char err[GLM_ERRLEN];
            tp->wops->host_broadcast(tp->comm_world, r->comm, &h, sizeof h, err, sizeof err);
        }
        rank_destroy(r);
        return GLM_OK;
    case OP_NONE:
    case OP_CREATE:
    case OP_QUIT:
        break;
    }
    return GLM_OK;
}

/* Reports the end of a call (or of a follower's loop) to the caller. */
static void report(tp_rank *r, int rc, int exited)
{
    tp_backend *tp = r->tp;
    if (rc != GLM_OK && r->comm) /* the others may be waiting for this rank: stop them */
        glm_comm_poison(r->comm, r->err);
    pthread_mutex_lock(&tp->mu);
    r->rc = rc;
    if (exited)
        tp->exited++;
    else
        tp->pending--;
    pthread_cond_broadcast(&tp->done);
    pthread_mutex_unlock(&tp->mu);
}

static tp_op next_op(tp_rank *r, unsigned *seen)
{
    tp_backend *tp = r->tp;
    pthread_mutex_lock(&tp->mu);
    while (tp->gen == *seen)
        pthread_cond_wait(&tp->go, &tp->mu);
    *seen = tp->gen;
    tp_op op = tp->all || r->rank == 0 ? tp->op : OP_NONE;
    pthread_mutex_unlock(&tp->mu);
    return op;
}

static void *rank_main(void *arg)
{
    tp_rank *r = arg;
    unsigned seen = 0;
    tp_op op;
    while ((op = next_op(r, &seen)) != OP_CREATE)
        if (op == OP_QUIT) /* the world could not be started */
            return NULL;
    r->err[0] = 0;
    int rc = rank_create(r);
    report(r, rc, 0);
    if (r->rank != 0) { /* a follower, from creation to the stop */
        if (rc == GLM_OK) {
            r->err[0] = 0;
            rc = follow(r);
        }
        rank_destroy(r);
        report(r, rc, 1);
        return NULL;
    }
    for (;;) { /* rank 0: the runner's calls */
        op = next_op(r, &seen);
        if (op == OP_NONE)
            continue;
        r->err[0] = 0;
        rc = rank_run(r, op);
        report(r, rc, 0);
        if (op == OP_DESTROY)
            return NULL;
    }
}

/* ---- the caller's side ----------------------------------------------------------------- */

/* The root cause of a failure: the world's poison reason when there is one ("rank R: ..."),
 * else the first failing local rank's message. */
static void root_cause(tp_backend *tp, char *why, size_t len)
{
    why[0] = 0;
    for (int i = 0; i < tp->n_local && !why[0]; i++)
        if (tp->ranks[i].comm)
            glm_comm_poisoned(tp->ranks[i].comm, why, len);
    for (int i = 0; i < tp->n_local && !why[0]; i++)
        if (tp->ranks[i].rc != GLM_OK)
            glm_err(why, len, "rank %d: %s", tp->ranks[i].rank, tp->ranks[i].err);
    if (!why[0])
        glm_err(why, len, "a rank failed");
}

/* Hands op to every local rank (all) or to rank 0 and waits for them. Returns GLM_OK or
 * GLM_BACKEND_DEAD with the root cause in err. */
static int call(tp_backend *tp, tp_op op, int all, char *err, size_t errlen)
{
    if (tp->dead && op != OP_DESTROY)
        return glm_err(err, errlen, "%s", tp->why), GLM_BACKEND_DEAD;
    pthread_mutex_lock(&tp->mu);
    tp->op = op;
    tp->all = all;
    tp->pending = all ? tp->n_local : 1;
    tp->gen++;
    pthread_cond_broadcast(&tp->go);
    while (tp->pending > 0)
        pthread_cond_wait(&tp->done, &tp->mu);
    pthread_mutex_unlock(&tp->mu);
    int failed = 0;
    for (int i = 0; i < (all ? tp->n_local : 1); i++)
        failed |= tp->ranks[i].rc != GLM_OK;
    if (!failed)
        return GLM_OK;
    char why[GLM_ERRLEN];
    root_cause(tp, why, sizeof why);
    tp->dead = 1;
    glm_err(tp->why, sizeof tp->why, "%s", why);
    glm_err(err, errlen, "%s", why);
    return GLM_BACKEND_DEAD; /* a rank broke (validated batches), and the world with it */
}

static int tp_forward(glm_backend *base, const glm_batch *b, char *err, size_t errlen)
{
    tp_backend *tp = (tp_backend *)base;
    tp->batch = b;
    return call(tp, OP_FORWARD, 0, err, errlen);
}

static int tp_draft(glm_backend *base, const glm_batch *b, glm_draft_source from, const int32_t *rows, char *err,
                    size_t errlen)
{
    tp_backend *tp = (tp_backend *)base;
    if (!tp->p.draft_layers)
        return glm_err(err, errlen, "draft: the backend holds no MTP layer"), GLM_BAD_BATCH;
    tp->batch = b;
    tp->from = from;
    tp->rows = rows;
    return call(tp, OP_DRAFT, 0, err, errlen);
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
    for (int i = 0; i < tp->n_local; i++)
        started += tp->ranks[i].started;
    if (started == tp->n_local && tp->first == 0) /* rank 0 stops the world, then itself */
        call(tp, OP_DESTROY, 0, err, sizeof err);
    for (int i = 0; i < tp->n_local; i++)
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

static const glm_backend_ops tp_ops = {tp_forward, tp_logits, tp_sample, tp_draft, tp_trace_hidden, tp_destroy};

void glm_tp_backend_stop(glm_backend *b, const char *why)
{
    if (b->ops != &tp_ops)
        return;
    tp_backend *tp = (tp_backend *)b;
    /* the world's fate is shared: one handle stops every rank */
    for (int i = 0; i < tp->n_local; i++)
        if (tp->ranks[i].comm) {
            glm_comm_poison(tp->ranks[i].comm, why);
            break;
        }
}

int glm_tp_backend_wait(glm_backend *b, int timeout_ms, char *err, size_t errlen)
{
    GLM_ASSERT(b->ops == &tp_ops);
    tp_backend *tp = (tp_backend *)b;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    if (timeout_ms > 0) {
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L)
            until.tv_sec++, until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&tp->mu);
    while (tp->exited < tp->n_local) {
        if (timeout_ms < 0)
            pthread_cond_wait(&tp->done, &tp->mu);
        else if (timeout_ms == 0 || pthread_cond_timedwait(&tp->done, &tp->mu, &until) == ETIMEDOUT)
            break;
    }
    int finished = tp->exited == tp->n_local;
    pthread_mutex_unlock(&tp->mu);
    if (!finished)
        return 0;
    for (int i = 0; i < tp->n_local; i++)
        if (tp->ranks[i].rc != GLM_OK) {
            root_cause(tp, err, errlen);
            return -1;
        }
    return 1;
}

glm_backend *glm_tp_backend_create(const glm_model *m, const glm_backend_params *p, char *err, size_t errlen)
{
    int world = p->world, first = p->n_local > 0 ? p->first_rank : 0, n_local = p->n_local > 0 ? p->n_local : world;
    if (world < 2 || world > GLM_COMM_MAX_WORLD || p->rank != 0 || p->comm || first < 0 || n_local < 1 ||
        first + n_local > world) {
        glm_err(err, errlen, "tensor parallelism: ranks [%d, %d) of a world of %d (2..%d ranks)", first,
                first + n_local, world, GLM_COMM_MAX_WORLD);
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
    if (n_local != world && (!wops->id_bytes || !p->world_id)) {
        glm_err(err, errlen, "tensor parallelism across processes needs a world id from node 0 and a transport "
                "that spans processes (%s does not)", wops->name);
        return NULL;
    }
    tp_backend *tp = glm_calloc(1, sizeof *tp);
    tp->m = m;
    tp->p = *p;
    tp->world = world;
    tp->first = first;
    tp->n_local = n_local;
    tp->wops = wops;
    int S = GLM_MIN(p->max_num_seqs, p->max_num_batched_tokens);
    tp->max_payload = payload_bytes(p->max_num_batched_tokens, S, p->max_blocks_per_seq,
                                    GLM_MAX(p->max_logits_rows, 1), 1);
    tp->ranks = glm_calloc((size_t)n_local, sizeof *tp->ranks);
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->go, NULL);
    pthread_cond_init(&tp->done, NULL);
    tp->base.ops = &tp_ops;
    char id[4096];
    const void *wid = p->world_id;
    if (!wid && wops->id_bytes) { /* a world of this process: its own id */
        if (wops->id_bytes > sizeof id || wops->get_id(id, err, errlen) != GLM_OK) {
            tp_destroy(&tp->base);
            return NULL;
        }
        wid = id;
    }
    tp->comm_world = wops->create(world, first, n_local, wid, err, errlen);
    if (!tp->comm_world) {
        tp_destroy(&tp->base);
        return NULL;
    }
    for (int i = 0; i < n_local; i++) {
        tp_rank *r = &tp->ranks[i];
        r->tp = tp;
        r->rank = first + i;
        if (pthread_create(&r->thread, NULL, rank_main, r) != 0) {
            glm_err(err, errlen, "tensor parallelism: cannot start the thread of rank %d", r->rank);
            /* the started ranks wait for their creation: they leave instead */
            pthread_mutex_lock(&tp->mu);
            tp->op = OP_QUIT;
            tp->all = 1;
            tp->gen++;
            pthread_cond_broadcast(&tp->go);
            pthread_mutex_unlock(&tp->mu);
            for (int k = 0; k < i; k++) {
                pthread_join(tp->ranks[k].thread, NULL);
                tp->ranks[k].started = 0;
            }
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
    glm_backend_info info = tp->ranks[0].info;
    info.kv_bytes = info.workspace_bytes = 0;
    for (int i = 0; i < n_local; i++) {
        info.kv_bytes += tp->ranks[i].info.kv_bytes;
        info.workspace_bytes += tp->ranks[i].info.workspace_bytes;
    }
    tp->base.info = info;
    return &tp->base;
}
