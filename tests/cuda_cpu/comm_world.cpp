/*
 * comm_world.cpp - the CUDA backend's tensor-parallel world on the CPU execution layer
 * (backend.h: glm_cuda_tp_world), linked into every CUDA-on-CPU program in place of the NCCL
 * one (cuda/comm_nccl.cu): in-process ranks (engine/comm/comm.h), one thread and one device of
 * the layer each (GLM_CUDA_CPU_DEVICES), whose collectives first wait for the work queued on
 * the rank's stream, as NCCL's would be ordered after it.
 */
#include <cuda_runtime_api.h>

extern "C" {
#include "backend/backend.h"
#include "comm/comm.h"
#include "core/util.h"
}

static int stream_sync(void *stream, void *user, char *err, size_t errlen)
{
    cudaError_t e = cudaStreamSynchronize(static_cast<cudaStream_t>(stream));
    if (e != cudaSuccess)
        return glm_err(err, errlen, "cudaStreamSynchronize: %s", cudaGetErrorString(e));
    return GLM_OK;
}

static void *world_create(int world, int first_rank, int n_local, const void *id, char *err, size_t errlen)
{
    if (first_rank != 0 || n_local != world) {
        glm_err(err, errlen, "the CPU execution layer's ranks are threads of one process");
        return nullptr;
    }
    return glm_comm_local_create(world, stream_sync, nullptr, err, errlen);
}

static int world_join(void *w, int rank, int device, size_t host_bytes, glm_comm **out, char *err, size_t errlen)
{
    *out = glm_comm_local_rank(static_cast<glm_comm_local *>(w), rank);
    cudaError_t e = cudaSetDevice(device);
    if (e != cudaSuccess) { /* the others must not wait for this rank */
        glm_err(err, errlen, "cuda: device %d: %s", device, cudaGetErrorString(e));
        glm_comm_poison(*out, err);
        return GLM_ERR;
    }
    return GLM_OK;
}

/* Host buffers are the layer's device buffers: the collectives themselves, without a stream. */
static int world_broadcast(void *w, glm_comm *c, void *buf, size_t bytes, char *err, size_t errlen)
{
    return glm_comm_broadcast(c, buf, bytes, 0, nullptr, err, errlen);
}

static int world_all_gather(void *w, glm_comm *c, const void *send, void *recv, size_t bytes, char *err,
                            size_t errlen)
{
    return glm_comm_all_gather(c, send, recv, bytes, nullptr, err, errlen);
}

static void world_free(void *w) { glm_comm_local_free(static_cast<glm_comm_local *>(w)); }

extern "C" const glm_tp_world_ops glm_cuda_tp_world = {"in-process ranks on the CPU execution layer", 0, nullptr,
                                                      world_create, world_join, world_broadcast,
                                                      world_all_gather, world_free};
