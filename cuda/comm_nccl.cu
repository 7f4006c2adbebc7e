/*
 * comm_nccl.cu - engine/comm/comm.h over NCCL (contract: comm_nccl.h). Built
 * only by nvcc and linked with -lnccl; the CPU execution layer has no NCCL.
 *
 * Each rank owns a non-blocking NCCL communicator, its own stream and one
 * float of device scratch (the barrier's all-reduce). Every NCCL call returns
 * at once, possibly with ncclInProgress; the rank then polls
 * ncclCommGetAsyncError (and, where the call waits for the result,
 * cudaStreamQuery) between short sleeps, and looks at the world's fate each
 * time, so nothing waits on a peer without also watching for a stop.
 *
 * NCCL forbids concurrent calls on one communicator, and a poisoning thread
 * aborts the communicators of every rank of the process (wake): each rank's
 * mutex serialises its own calls with that abort, and a rank whose
 * communicator was aborted (comm NULL) returns the world's error.
 */
#include "cuda/glm_cuda.h"

#include <nccl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda/comm_nccl.h"

extern "C" {
#include "backend/backend.h"
#include "comm/comm_internal.h"
#include "core/util.h"
}

static_assert(sizeof(ncclUniqueId) == GLM_COMM_NCCL_ID_BYTES, "NCCL_UNIQUE_ID_BYTES changed");

typedef struct {
    glm_comm base;          /* first: the handle comm.c sees */
    glm_comm_nccl *g;
    pthread_mutex_t mu;     /* guards comm: this rank's calls against a poisoning thread's abort */
    ncclComm_t comm;        /* NULL before joining and once aborted */
    int device;
    cudaStream_t own;       /* the stream of calls given none */
    float *scratch;         /* device [1]: the barrier's all-reduce */
} nccl_rank;

struct glm_comm_nccl {
    int world, first, n_local;
    ncclUniqueId id;
    glm_comm_fate *fate;
    nccl_rank ranks[GLM_COMM_MAX_WORLD];
};

static void nap(void)
{
    struct timespec ts = {0, 20 * 1000}; /* 20 us between polls */
    nanosleep(&ts, NULL);
}

/* Aborts the rank's communicator unless done already: kernels waiting for a peer return.
 * Any thread may call it: the calling thread's current device is left as it was. */
static void abort_rank(nccl_rank *r)
{
    pthread_mutex_lock(&r->mu);
    if (r->comm) {
        int prev = -1;
        cudaGetDevice(&prev);
        cudaSetDevice(r->device);
        ncclCommAbort(r->comm);
        r->comm = NULL;
        if (prev >= 0)
            cudaSetDevice(prev);
    }
    pthread_mutex_unlock(&r->mu);
}

static void nccl_wake(glm_comm *c)
{
    glm_comm_nccl *g = ((nccl_rank *)c)->g;
    for (int i = 0; i < g->n_local; i++)
        abort_rank(&g->ranks[i]);
}

/* The world's error, after making sure this rank's communicator is aborted. */
static int dead(nccl_rank *r, char *err, size_t errlen)
{
    abort_rank(r);
    glm_comm_fate_get(r->g->fate, err, errlen);
    return GLM_ERR;
}

/* NCCL's state of the rank's communicator: ncclSuccess, ncclInProgress, an
 * error (with NCCL's last message in last), or -1 when aborted. */
static int nccl_state(nccl_rank *r, char *last, size_t lastlen)
{
    pthread_mutex_lock(&r->mu);
    if (!r->comm) {
        pthread_mutex_unlock(&r->mu);
        return -1;
    }
    ncclResult_t st = ncclSuccess;
    ncclResult_t rc = ncclCommGetAsyncError(r->comm, &st);
    if (rc != ncclSuccess)
        st = rc;
    if (st != ncclSuccess && st != ncclInProgress)
        glm_err(last, lastlen, "%s", ncclGetLastError(r->comm));
    pthread_mutex_unlock(&r->mu);
    return (int)st;
}

/* Waits until the communicator's last call has been taken in (not
 * ncclInProgress any more), watching the fate. */
static int wait_ready(nccl_rank *r, const char *what, char *err, size_t errlen)
{
    char last[GLM_ERRLEN] = "";
    for (;;) {
        if (glm_comm_fate_get(r->g->fate, NULL, 0))
            return dead(r, err, errlen);
        int st = nccl_state(r, last, sizeof last);
        if (st == ncclSuccess)
            return GLM_OK;
        if (st < 0)
            return dead(r, err, errlen);
        if (st != ncclInProgress)
            return glm_comm_fail(&r->base, err, errlen, "%s: NCCL: %s: %s", what,
                                 ncclGetErrorString((ncclResult_t)st), last);
        nap();
    }
}

/* Waits until the work queued on s is done, watching the fate and NCCL's
 * asynchronous errors (a peer that fails shows there, not on the stream). */
static int wait_stream(nccl_rank *r, cudaStream_t s, const char *what, char *err, size_t errlen)
{
    char last[GLM_ERRLEN] = "";
    for (;;) {
        cudaError_t e = cudaStreamQuery(s);
        if (e == cudaSuccess)
            return GLM_OK;
        if (e != cudaErrorNotReady)
            return glm_comm_fail(&r->base, err, errlen, "%s: CUDA: %s", what, cudaGetErrorString(e));
        if (glm_comm_fate_get(r->g->fate, NULL, 0))
            return dead(r, err, errlen);
        int st = nccl_state(r, last, sizeof last);
        if (st < 0)
            return dead(r, err, errlen);
        if (st != ncclSuccess && st != ncclInProgress)
            return glm_comm_fail(&r->base, err, errlen, "%s: NCCL: %s: %s", what,
                                 ncclGetErrorString((ncclResult_t)st), last);
        nap();
    }
}

/* Enqueues one collective (enqueue(comm, stream) under the rank's mutex),
 * waits until NCCL has taken it in and, with no stream given, until it is
 * done. */
template <typename F>
static int collective(glm_comm *c, const char *what, void *stream, char *err, size_t errlen, F enqueue)
{
    nccl_rank *r = (nccl_rank *)c;
    cudaStream_t s = stream ? (cudaStream_t)stream : r->own;
    char last[GLM_ERRLEN] = "";
    pthread_mutex_lock(&r->mu);
    if (!r->comm) {
        pthread_mutex_unlock(&r->mu);
        return dead(r, err, errlen);
    }
    cudaSetDevice(r->device);
    ncclResult_t rc = enqueue(r->comm, s);
    if (rc != ncclSuccess && rc != ncclInProgress)
        glm_err(last, sizeof last, "%s", ncclGetLastError(r->comm));
    pthread_mutex_unlock(&r->mu);
    if (rc != ncclSuccess && rc != ncclInProgress)
        return glm_comm_fail(c, err, errlen, "%s: NCCL: %s: %s", what, ncclGetErrorString(rc), last);
    if (wait_ready(r, what, err, errlen) != GLM_OK)
        return GLM_ERR;
    return stream ? GLM_OK : wait_stream(r, s, what, err, errlen);
}

static int nccl_all_reduce_sum(glm_comm *c, const float *send, float *recv, size_t count, void *stream, char *err,
                               size_t errlen)
{
    return collective(c, "all_reduce_sum", stream, err, errlen, [&](ncclComm_t comm, cudaStream_t s) {
        return ncclAllReduce(send, recv, count, ncclFloat32, ncclSum, comm, s);
    });
}

static int nccl_all_gather(glm_comm *c, const void *send, void *recv, size_t bytes, void *stream, char *err,
                           size_t errlen)
{
    return collective(c, "all_gather", stream, err, errlen, [&](ncclComm_t comm, cudaStream_t s) {
        return ncclAllGather(send, recv, bytes, ncclUint8, comm, s);
    });
}

static int nccl_broadcast(glm_comm *c, void *buf, size_t bytes, int root, void *stream, char *err, size_t errlen)
{
    return collective(c, "broadcast", stream, err, errlen, [&](ncclComm_t comm, cudaStream_t s) {
        return ncclBroadcast(buf, buf, bytes, ncclUint8, root, comm, s);
    });
}

static int nccl_barrier(glm_comm *c, void *stream, char *err, size_t errlen)
{
    nccl_rank *r = (nccl_rank *)c;
    cudaStream_t s = stream ? (cudaStream_t)stream : r->own;
    float *scratch = r->scratch;
    if (collective(c, "barrier", s, err, errlen, [&](ncclComm_t comm, cudaStream_t st) {
            return ncclAllReduce(scratch, scratch, 1, ncclFloat32, ncclSum, comm, st);
        }) != GLM_OK)
        return GLM_ERR;
    return wait_stream(r, s, "barrier", err, errlen);
}

static const glm_comm_ops nccl_ops = {
    nccl_all_reduce_sum, nccl_all_gather, nccl_broadcast, nccl_barrier, nccl_wake,
};

extern "C" int glm_comm_nccl_get_id(glm_comm_nccl_id *id, char *err, size_t errlen)
{
    ncclUniqueId u;
    ncclResult_t rc = ncclGetUniqueId(&u);
    if (rc != ncclSuccess)
        return glm_err(err, errlen, "NCCL unique id: %s: %s", ncclGetErrorString(rc), ncclGetLastError(NULL));
    memcpy(id->bytes, &u, sizeof u);
    return GLM_OK;
}

extern "C" glm_comm_nccl *glm_comm_nccl_create(int world, int first_rank, int n_local, const glm_comm_nccl_id *id,
                                               char *err, size_t errlen)
{
    if (world < 1 || world > GLM_COMM_MAX_WORLD || first_rank < 0 || n_local < 1 || first_rank + n_local > world) {
        glm_err(err, errlen, "NCCL communicator: ranks [%d, %d) of a world of %d (at most %d)", first_rank,
                first_rank + n_local, world, GLM_COMM_MAX_WORLD);
        return NULL;
    }
    glm_comm_nccl *g = (glm_comm_nccl *)glm_calloc(1, sizeof *g);
    g->world = world;
    g->first = first_rank;
    g->n_local = n_local;
    memcpy(&g->id, id->bytes, sizeof g->id);
    g->fate = glm_comm_fate_create();
    for (int i = 0; i < n_local; i++) {
        nccl_rank *r = &g->ranks[i];
        r->base.ops = &nccl_ops;
        r->base.rank = first_rank + i;
        r->base.world = world;
        r->base.fate = g->fate;
        r->g = g;
        r->device = -1;
        pthread_mutex_init(&r->mu, NULL);
    }
    return g;
}

extern "C" int glm_comm_nccl_init_rank(glm_comm_nccl *g, int rank, int device, glm_comm **out, char *err,
                                       size_t errlen)
{
    GLM_ASSERT(g && out && rank >= g->first && rank < g->first + g->n_local);
    nccl_rank *r = &g->ranks[rank - g->first];
    GLM_ASSERT(r->device < 0); /* once per rank */
    r->device = device;
    *out = NULL;
    if (glm_comm_fate_get(g->fate, err, errlen))
        return GLM_ERR;
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess)
        e = cudaStreamCreateWithFlags(&r->own, cudaStreamNonBlocking);
    if (e == cudaSuccess)
        e = cudaMalloc((void **)&r->scratch, sizeof(float));
    if (e == cudaSuccess)
        e = cudaMemset(r->scratch, 0, sizeof(float));
    if (e != cudaSuccess)
        return glm_comm_fail(&r->base, err, errlen, "joining on CUDA device %d: %s", device, cudaGetErrorString(e));

    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    ncclComm_t comm = NULL;
    ncclResult_t rc = ncclCommInitRankConfig(&comm, g->world, g->id, rank, &cfg);
    pthread_mutex_lock(&r->mu);
    r->comm = comm;
    pthread_mutex_unlock(&r->mu);
    if (rc != ncclSuccess && rc != ncclInProgress)
        return glm_comm_fail(&r->base, err, errlen, "joining on CUDA device %d: NCCL: %s: %s", device,
                             ncclGetErrorString(rc), ncclGetLastError(comm));
    if (wait_ready(r, "joining the world", err, errlen) != GLM_OK)
        return GLM_ERR;
    *out = &r->base;
    return GLM_OK;
}

extern "C" void glm_comm_nccl_free(glm_comm_nccl *g)
{
    if (!g)
        return;
    int poisoned = glm_comm_fate_get(g->fate, NULL, 0);
    for (int i = 0; i < g->n_local; i++) {
        nccl_rank *r = &g->ranks[i];
        if (r->device >= 0)
            cudaSetDevice(r->device);
        if (r->comm && poisoned) {
            abort_rank(r);
        } else if (r->comm) {
            /* flush what was issued, then release; a failure to finalize aborts */
            ncclResult_t rc = ncclCommFinalize(r->comm), st = rc;
            while (st == ncclInProgress) {
                nap();
                if (ncclCommGetAsyncError(r->comm, &st) != ncclSuccess)
                    break;
            }
            if (st == ncclSuccess)
                ncclCommDestroy(r->comm);
            else
                ncclCommAbort(r->comm);
            r->comm = NULL;
        }
        if (r->scratch)
            cudaFree(r->scratch);
        if (r->own)
            cudaStreamDestroy(r->own);
        pthread_mutex_destroy(&r->mu);
    }
    glm_comm_fate_free(g->fate);
    free(g);
}

/* ---- the CUDA backend's tensor-parallel world (backend.h: glm_tp_world_ops) ------------------
 *
 * One process's ranks of a world that may span processes; the id comes from node 0. Host
 * collectives go through a device buffer of each rank (host_bytes, allocated when it joins):
 * copied up, the collective on the rank's own stream, copied down. */

typedef struct {
    glm_comm_nccl *g;
    int first, n_local;
    void *dev[GLM_COMM_MAX_WORLD];  /* [n_local]: each rank's device buffer */
    size_t cap;
} tp_world;

static int tp_get_id(void *id, char *err, size_t errlen)
{
    return glm_comm_nccl_get_id((glm_comm_nccl_id *)id, err, errlen);
}

static void *tp_world_create(int world, int first_rank, int n_local, const void *id, char *err, size_t errlen)
{
    glm_comm_nccl *g = glm_comm_nccl_create(world, first_rank, n_local, (const glm_comm_nccl_id *)id, err, errlen);
    if (!g)
        return NULL;
    tp_world *w = (tp_world *)glm_calloc(1, sizeof *w);
    w->g = g;
    w->first = first_rank;
    w->n_local = n_local;
    return w;
}

static int tp_world_join(void *pw, int rank, int device, size_t host_bytes, glm_comm **out, char *err,
                         size_t errlen)
{
    tp_world *w = (tp_world *)pw;
    if (glm_comm_nccl_init_rank(w->g, rank, device, out, err, errlen) != GLM_OK)
        return GLM_ERR;
    cudaError_t e = cudaMalloc(&w->dev[rank - w->first], host_bytes);
    if (e != cudaSuccess) {
        w->dev[rank - w->first] = NULL;
        return glm_comm_fail(*out, err, errlen, "rank %d: a %zu-byte buffer for the steps on device %d: %s", rank,
                             host_bytes, device, cudaGetErrorString(e));
    }
    w->cap = host_bytes; /* the same on every rank */
    return GLM_OK;
}

static int tp_host_broadcast(void *pw, glm_comm *c, void *buf, size_t bytes, char *err, size_t errlen)
{
    tp_world *w = (tp_world *)pw;
    int rank = glm_comm_rank(c);
    void *d = w->dev[rank - w->first];
    if (bytes > w->cap)
        return glm_comm_fail(c, err, errlen, "a %zu-byte broadcast past the %zu-byte step buffer", bytes, w->cap);
    cudaError_t e = rank == 0 ? cudaMemcpy(d, buf, bytes, cudaMemcpyHostToDevice) : cudaSuccess;
    if (e != cudaSuccess)
        return glm_comm_fail(c, err, errlen, "broadcast: copy up: %s", cudaGetErrorString(e));
    if (glm_comm_broadcast(c, d, bytes, 0, NULL, err, errlen) != GLM_OK)
        return GLM_ERR;
    e = rank == 0 ? cudaSuccess : cudaMemcpy(buf, d, bytes, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess)
        return glm_comm_fail(c, err, errlen, "broadcast: copy down: %s", cudaGetErrorString(e));
    return GLM_OK;
}

static int tp_host_all_gather(void *pw, glm_comm *c, const void *send, void *recv, size_t bytes, char *err,
                              size_t errlen)
{
    tp_world *w = (tp_world *)pw;
    int rank = glm_comm_rank(c), world = glm_comm_world(c);
    char *d = (char *)w->dev[rank - w->first];
    if (bytes * (size_t)world > w->cap)
        return glm_comm_fail(c, err, errlen, "a %zu-byte all-gather past the %zu-byte step buffer",
                             bytes * (size_t)world, w->cap);
    cudaError_t e = cudaMemcpy(d + (size_t)rank * bytes, send, bytes, cudaMemcpyHostToDevice);
    if (e != cudaSuccess)
        return glm_comm_fail(c, err, errlen, "all-gather: copy up: %s", cudaGetErrorString(e));
    if (glm_comm_all_gather(c, d + (size_t)rank * bytes, d, bytes, NULL, err, errlen) != GLM_OK)
        return GLM_ERR;
    e = cudaMemcpy(recv, d, bytes * (size_t)world, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess)
        return glm_comm_fail(c, err, errlen, "all-gather: copy down: %s", cudaGetErrorString(e));
    return GLM_OK;
}

static void tp_world_free(void *pw)
{
    tp_world *w = (tp_world *)pw;
    for (int i = 0; i < w->n_local; i++)
        if (w->dev[i])
            cudaFree(w->dev[i]); /* unified addressing: freed on its own device */
    glm_comm_nccl_free(w->g);
    free(w);
}

extern "C" {
extern const glm_tp_world_ops glm_cuda_tp_world;
const glm_tp_world_ops glm_cuda_tp_world = {"NCCL",
                                            GLM_COMM_NCCL_ID_BYTES,
                                            tp_get_id,
                                            tp_world_create,
                                            tp_world_join,
                                            tp_host_broadcast,
                                            tp_host_all_gather,
                                            tp_world_free};
}
