/*
 * comm_nccl.h - the communicator of engine/comm/comm.h over NCCL: one GPU per
 * rank, the ranks of a world spread over threads of one process, processes
 * and machines (only in the nvcc build; the CPU execution layer has no NCCL,
 * and in-process ranks stand in for it there).
 *
 * Setting up a world: one process makes a unique id (glm_comm_nccl_get_id)
 * and hands it to every process of the world (in process: a copy; across
 * machines: over TCP). Each process creates one glm_comm_nccl for the ranks it
 * runs, and each of those ranks joins from its own thread
 * (glm_comm_nccl_init_rank, collective over the whole world).
 *
 * On the comm.h contract:
 *   - all_reduce_sum, all_gather and broadcast enqueue the collective on
 *     `stream` (a cudaStream_t of the rank's device) and return once NCCL has
 *     queued it: the result is there when the stream gets to it, and the call
 *     may be captured in a CUDA graph. With stream NULL they run on the
 *     rank's own stream and return when the result is there. Buffers are
 *     device memory of the rank's device.
 *   - all_reduce_sum is ncclAllReduce(ncclFloat32, ncclSum): every rank gets
 *     the same bits, which depend on NCCL's algorithm (ring or tree, chosen by
 *     size and topology), not on timing; they can differ in the last bits from
 *     the rank-order sum of the in-process ranks.
 *   - barrier waits, on the host, until every rank's stream has reached it
 *     (a one-element all-reduce on the stream, then the stream drained); it
 *     cannot be captured.
 *   - the communicators are non-blocking (ncclConfig_t.blocking = 0): every
 *     wait (joining, enqueueing, draining a stream) polls the world's fate and
 *     NCCL's asynchronous error. Poisoning aborts the process's NCCL
 *     communicators (ncclCommAbort), so that kernels waiting for a peer that
 *     will never come return, and every pending call fails; an NCCL error
 *     poisons the world. Peers in other processes see an aborted peer as a
 *     remote error on network transports; within a machine over NVLink they
 *     may not, so a multi-process launcher also stops its peers through its
 *     own channel.
 */
#ifndef GLM_COMM_NCCL_H
#define GLM_COMM_NCCL_H

#include <stddef.h>

#include "comm/comm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GLM_COMM_NCCL_ID_BYTES 128 /* NCCL_UNIQUE_ID_BYTES */

typedef struct {
    unsigned char bytes[GLM_COMM_NCCL_ID_BYTES];
} glm_comm_nccl_id;

/* A new world's unique id (ncclGetUniqueId). Returns GLM_OK or GLM_ERR. */
int glm_comm_nccl_get_id(glm_comm_nccl_id *id, char *err, size_t errlen);

/* The ranks of one world that run in this process; they share a fate. */
typedef struct glm_comm_nccl glm_comm_nccl;

/*
 * The ranks [first_rank, first_rank + n_local) of a world of `world` ranks
 * (1 <= n_local, first_rank + n_local <= world <= GLM_COMM_MAX_WORLD) that
 * this process runs, in the world named by id. Allocates only host memory.
 * Returns NULL (and err) on bad sizes.
 */
glm_comm_nccl *glm_comm_nccl_create(int world, int first_rank, int n_local, const glm_comm_nccl_id *id, char *err,
                                    size_t errlen);

/*
 * Joins rank `rank` of g to the world on CUDA device `device`: makes the
 * device current for the calling thread, creates the NCCL communicator, the
 * rank's own stream and its barrier scratch. Collective: returns once every
 * rank of the world has joined (GLM_OK, *out = the rank's handle, valid until
 * glm_comm_nccl_free), or GLM_ERR with err (NCCL or CUDA failure; the world
 * is poisoned then, so the ranks that wait for this one fail too). Call from
 * the rank's own thread, once per rank.
 */
int glm_comm_nccl_init_rank(glm_comm_nccl *g, int rank, int device, glm_comm **out, char *err, size_t errlen);

/*
 * Releases every joined rank (ncclCommFinalize + ncclCommDestroy; abort when
 * the world is poisoned), their streams and scratch, and g. No rank may be in
 * a call.
 */
void glm_comm_nccl_free(glm_comm_nccl *g);

#ifdef __cplusplus
}
#endif

#endif
