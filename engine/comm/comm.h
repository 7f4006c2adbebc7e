/*
 * comm.h - the collectives of tensor parallelism over a world of ranks: the
 * sum of every rank's vector, the concatenation of every rank's block, one
 * rank's buffer to all, and a barrier.
 *
 * A glm_comm is one rank's handle. Two implementations stand behind it:
 *   - in-process ranks (this file's glm_comm_local_*, engine/comm/comm_local.c):
 *     one thread per rank in one process over shared memory; the CPU backend
 *     and the CUDA backend on the CPU execution layer (device pointers are host
 *     pointers there), which is how CI tests sharding;
 *   - NCCL (cuda/comm_nccl.h, only in the nvcc build): one GPU per rank, in one
 *     process or across processes and machines.
 *
 * Every collective is collective: every rank of the world calls it, in the
 * same order, with the same count (and root). The buffers are the rank's own:
 * host memory for in-process ranks, device memory for NCCL. `stream` is the
 * cudaStream_t the call is ordered on (NULL on the CPU; see each
 * implementation for what it does with it).
 *
 * Determinism: glm_comm_all_reduce_sum adds in rank order, in float32
 * ((rank 0 + rank 1) + rank 2 ...), element by element, and every rank gets the
 * same bits: the result depends neither on thread timing nor on how the work
 * was split, so a tensor-parallel forward is as reproducible and as
 * batch-invariant as the single-rank one. (NCCL's sums are deterministic for a
 * fixed world, topology and NCCL version, in an order of its own.)
 *
 * Failure ("poisoning"): glm_comm_poison, called by a rank that failed or by
 * anyone told to stop the world, marks the world failed. Every call pending on
 * any rank returns GLM_ERR promptly instead of waiting for the missing rank,
 * and so does every later call; the message names the rank and its reason.
 * A call that finds its peers out of step (another collective, another count)
 * poisons the world too. A poisoned world stays poisoned: free it and create
 * another. Whichever way an in-process call returns, no other rank reads or
 * writes the caller's buffers any more, so a failing rank may free them at
 * once; on NCCL, work already queued on a stream may use its buffers until
 * the stream drains, or until the communicator is aborted (which poisoning
 * does).
 *
 * Every function that can fail returns GLM_OK or GLM_ERR and writes one line
 * into err (errlen bytes). Collectives allocate nothing.
 */
#ifndef GLM_COMM_H
#define GLM_COMM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct glm_comm glm_comm;

int glm_comm_rank(const glm_comm *c);
int glm_comm_world(const glm_comm *c);

/*
 * recv[i] = send_0[i] + send_1[i] + ... + send_{world-1}[i] for i < count,
 * added in rank order in float32, on every rank. send == recv (in place) is
 * allowed; otherwise they do not overlap. Returns GLM_OK, or GLM_ERR if the
 * world is (or becomes) poisoned, the peers are out of step, or the
 * transport fails; recv is then unspecified.
 */
int glm_comm_all_reduce_sum(glm_comm *c, const float *send, float *recv, size_t count, void *stream, char *err,
                            size_t errlen);

/*
 * recv[r * bytes, (r + 1) * bytes) = rank r's send[0, bytes), for every rank r,
 * on every rank. send may be recv + rank * bytes (in place). Returns GLM_OK or
 * GLM_ERR (poisoned, out of step, transport).
 */
int glm_comm_all_gather(glm_comm *c, const void *send, void *recv, size_t bytes, void *stream, char *err,
                        size_t errlen);

/*
 * buf[0, bytes) = root's buf[0, bytes) on every rank; root in [0, world).
 * Returns GLM_OK or GLM_ERR (poisoned, out of step, transport).
 */
int glm_comm_broadcast(glm_comm *c, void *buf, size_t bytes, int root, void *stream, char *err, size_t errlen);

/*
 * Returns once every rank has called it: GLM_OK, or GLM_ERR (poisoned,
 * transport). On NCCL the work already queued on stream is finished too.
 */
int glm_comm_barrier(glm_comm *c, void *stream, char *err, size_t errlen);

/*
 * Marks the world failed: "rank R: why" (R is c's rank). Pending and later
 * calls of every rank return GLM_ERR with that message. Callable from any
 * thread, more than once (the first reason stays); never blocks on the peers.
 */
void glm_comm_poison(glm_comm *c, const char *why);

/* Whether the world is poisoned; if so and err is not NULL, writes the reason. */
int glm_comm_poisoned(const glm_comm *c, char *err, size_t errlen);

/* ---- in-process ranks ------------------------------------------------------------ */

/*
 * How in-process ranks treat a stream: a call that gets one first runs
 * sync(stream, user, err, errlen), which returns once the work queued on it is
 * done (the CUDA backend on the CPU execution layer passes a wrapper of
 * cudaStreamSynchronize), then reads and writes the buffers from the host. A
 * failing sync poisons the world. With sync NULL a stream is ignored: the
 * caller has finished the work on its buffers before the call.
 */
typedef int (*glm_comm_sync_fn)(void *stream, void *user, char *err, size_t errlen);

typedef struct glm_comm_local glm_comm_local;

/*
 * A world of `world` in-process ranks (1..GLM_COMM_MAX_WORLD), each to be
 * driven by its own thread. sync may be NULL (see glm_comm_sync_fn).
 * Returns NULL (and err) on a bad world size.
 */
#define GLM_COMM_MAX_WORLD 64
glm_comm_local *glm_comm_local_create(int world, glm_comm_sync_fn sync, void *sync_user, char *err, size_t errlen);

/* Rank r's handle, r in [0, world); valid until glm_comm_local_free. */
glm_comm *glm_comm_local_rank(glm_comm_local *w, int r);

/* Frees the world and its handles; no rank may be inside a call (join the
 * rank threads first; poison the world to get them out of pending calls). */
void glm_comm_local_free(glm_comm_local *w);

#ifdef __cplusplus
}
#endif

#endif
