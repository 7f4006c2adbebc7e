/*
 * backend.h - the interface between the model runner and whatever computes
 * the model: the CPU backend (engine/cpu) today, CUDA (cuda/) next. The model
 * runner (engine/sched/model_runner.h) is its only caller; the scheduler never
 * knows which backend it drives.
 *
 * A backend is created by kind with glm_backend_params and owns, for its rank:
 *   - its copy of the weights (the CPU backend reads the mapped checkpoint);
 *   - the KV memory: num_blocks blocks of block_size token slots, with the
 *     layout and dtype of its choosing (block ids come from the block manager;
 *     the backend only provides the memory they name);
 *   - a workspace sized once at create from the limits below: forward, logits
 *     and sample allocate nothing (CUDA graphs need fixed addresses, and a
 *     GLM-5 MoE buffer is hundreds of MB: it must not be page-faulted per step);
 *   - the logits of the last forward, kept until the next forward.
 *
 * A step is: forward(batch) -> [logits(rows) for the rows a logits processor
 * needs] -> sample(rows). Batches reach a backend validated by the runner
 * (glm_batch_validate against glm_backend_info): a backend asserts on what
 * validation guarantees rather than checking it again.
 *
 * Returns: GLM_OK, GLM_BAD_BATCH (what the caller asked for cannot be done:
 * the server answers 400), GLM_BACKEND_FAILURE (the device or the backend
 * broke: logged, answered 500) or GLM_BACKEND_DEAD (the backend can run no
 * more steps, every later call fails the same way: a tensor-parallel rank
 * failed; the engine fails every request and the server stops). Any of them
 * but GLM_OK leaves a message in err.
 */
#ifndef GLM_BACKEND_H
#define GLM_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "backend/batch.h"
#include "backend/sampler.h"
#include "core/threadpool.h"
#include "model/model.h"

#define GLM_BAD_BATCH (-2)
#define GLM_BACKEND_FAILURE (-3)
#define GLM_BACKEND_DEAD (-4)

typedef enum {
    GLM_BACKEND_CPU = 0, /* engine/cpu: float32 reference, always built */
    GLM_BACKEND_CUDA     /* cuda/: built when nvcc is found */
} glm_backend_kind;

struct glm_comm; /* the ranks' communicator (tensor parallelism): engine/comm/comm.h */

/* What a backend computes in (vLLM's --dtype). The CPU backend computes in float32; asked for
 * GLM_COMPUTE_BF16 it also rounds where the CUDA backend's bfloat16 mode rounds (GEMM inputs,
 * KV cache: cpu_backend.c), the reference the CUDA path is compared with. The server's flags
 * always give the CPU backend GLM_COMPUTE_F32. */
typedef enum {
    GLM_COMPUTE_AUTO = 0,  /* the backend's default: bfloat16 on CUDA */
    GLM_COMPUTE_BF16,      /* BF16 weights (F32 ones narrowed), BF16 KV cache, float32 accumulation */
    GLM_COMPUTE_F32        /* BF16/F32 weights widened to float32, float32 KV cache and math;
                              FP8 weights stay FP8 */
} glm_compute_dtype;

typedef struct {
    glm_backend_kind kind;
    int rank, world;             /* this backend's tensor-parallel rank in [0, world); world 1 */
    struct glm_comm *comm;       /* NULL when world == 1 */
    int block_size;              /* tokens per KV block, >= 1 */
    size_t kv_bytes;             /* KV memory of this rank; 0: what remains of mem_fraction of
                                    the device's memory (the CPU's: MemTotal, or a cgroup
                                    limit) once the weights and the workspace are counted,
                                    and no more than is available now */
    double mem_fraction;         /* for kv_bytes 0: the share of the memory this server may
                                    use, (0, 1] (vLLM's gpu_memory_utilization); 0 means 0.9 */
    int kv_blocks;               /* > 0: exactly this many KV blocks, whatever kv_bytes says
                                    (drivers that know their sequences: CLI, tests) */
    int max_num_batched_tokens;  /* new tokens per forward at most */
    int max_num_seqs;            /* sequences per forward at most */
    int max_blocks_per_seq;      /* block-table width at most (max_model_len / block_size, up) */
    int max_logits_rows;         /* logits rows per forward at most */
    glm_pool *pool;              /* host threads the CPU backend computes on; owned by the
                                    caller, free between calls; not NULL for GLM_BACKEND_CPU */
    glm_compute_dtype dtype;     /* GLM_COMPUTE_AUTO unless --dtype says otherwise */
    int device;                  /* CUDA: the device ordinal of this rank (rank when 0 and world > 1) */
    int cuda_graphs;             /* CUDA: 1 = capture decode steps as CUDA graphs, 0 = eager */
    /* a world across processes (multi-node, backend/tp.c): this process runs ranks
     * [first_rank, first_rank + n_local) of world; n_local 0: all of them (one process) */
    int first_rank, n_local;
    const void *world_id;        /* the world's id from node 0 (glm_tp_world_ops.id_bytes), or NULL */
    int draft_layers;            /* 1: also hold the model's MTP layer, its KV cache and the draft
                                    entry (speculative decoding); 0: none */
} glm_backend_params;

/* What a created backend holds: the limits it was sized for (the runner
 * validates every batch against them) and its memory. */
typedef struct {
    const char *name;            /* "cpu", "cuda" */
    glm_batch_limits limits;     /* limits.num_blocks: KV blocks held (the block manager is
                                    sized from it) */
    size_t kv_bytes;             /* bytes of KV memory */
    size_t workspace_bytes;      /* bytes of the workspace allocated at create */
} glm_backend_info;

/* One row to sample, as the model runner asks for it. */
typedef struct {
    int row;                                /* logits row of the last forward, [0, n_logits) */
    const float *logits;                    /* [vocab] host row that replaces the backend's (a
                                               logits processor changed it), or NULL */
    const glm_sampling_params *params;      /* validated for this vocabulary */
    glm_rng *rng;                           /* the sample's generator: advanced by one draw */
    glm_sampler_history hist;               /* prompt and output so far (penalties, min_tokens) */
} glm_sample_req;

/* Where a draft token's hidden state comes from (glm_backend_ops.draft). */
typedef enum {
    GLM_DRAFT_FROM_FORWARD = 0,  /* a row of the last forward: the final hidden state (after
                                    model.norm, what the LM head reads) */
    GLM_DRAFT_FROM_DRAFT         /* a row of the last draft: the MTP layer's output after
                                    shared_head.norm (a chained draft) */
} glm_draft_source;

typedef struct glm_backend glm_backend;

typedef struct {
    /* Runs one step: writes the new tokens' KV and keeps the logits of the
     * rows in batch->logits_index, in that order, for logits/sample. */
    int (*forward)(glm_backend *b, const glm_batch *batch, char *err, size_t errlen);
    /* Copies logits rows [n] of the last forward into out [n, vocab] (host). */
    int (*logits)(glm_backend *b, const int32_t *rows, int n, float *out, char *err, size_t errlen);
    /* Samples reqs [n] (each row at most once) into out [n]: the token and
     * the requested logprobs, as glm_sampler_sample defines them. */
    int (*sample)(glm_backend *b, const glm_sample_req *reqs, int n, glm_sampler_result *out, char *err,
                  size_t errlen);
    /* Speculative decoding's draft, in a backend created with draft_layers 1 (else NULL): runs
     * the MTP layer (model.h: glm_mtp) over batch, whose token ids are the tokens that follow
     * (the token at position p is the one at p + 1), its KV going to the MTP layer's cache at
     * the batch's slots; token t reads hidden state rows[t] of `from`. The logits of the rows
     * in batch->logits_index replace the last forward's (logits and sample read them). */
    int (*draft)(glm_backend *b, const glm_batch *batch, glm_draft_source from, const int32_t *rows, char *err,
                 size_t errlen);
    /* Hidden states for tests (llm.c-style activation checks): when set,
     * the next forwards write the residual stream of every batch row after
     * the embedding and after each layer into out [n_layers + 1, n_tokens, H]
     * (host, float32). NULL to stop. May be NULL in a backend without it. */
    void (*trace_hidden)(glm_backend *b, float *out);
    void (*destroy)(glm_backend *b);
} glm_backend_ops;

struct glm_backend {
    const glm_backend_ops *ops;
    glm_backend_info info;
};

/* Creates a backend of p->kind for model m (which outlives it). NULL with a
 * message when the kind is not built, a parameter is out of range, or the
 * memory cannot be had. */
glm_backend *glm_backend_create(const glm_model *m, const glm_backend_params *p, char *err, size_t errlen);

static inline void glm_backend_destroy(glm_backend *b)
{
    if (b)
        b->ops->destroy(b);
}

/* The constructors behind glm_backend_create. glm_cuda_backend_create is
 * defined by cuda/cuda_backend.cu, linked only into builds with the CUDA
 * backend (nvcc, or the CPU execution layer in tests). */
glm_backend *glm_cpu_backend_create(const glm_model *m, const glm_backend_params *p, char *err, size_t errlen);
glm_backend *glm_cuda_backend_create(const glm_model *m, const glm_backend_params *p, char *err, size_t errlen);

/*
 * Tensor parallelism in one process (engine/backend/tp.c): with p->world > 1,
 * p->rank 0 and no p->comm, glm_backend_create makes the whole world: one
 * thread per rank, each with its shard of m (glm_model_shard) and its rank
 * backend of p->kind (CUDA: device p->device + rank), over in-process ranks
 * on the CPU and over NCCL on GPUs. The result is one backend to the model
 * runner: rank 0 returns the logits and samples. NULL with a message naming
 * the failing rank if any rank cannot be made (none is left running).
 */
glm_backend *glm_tp_backend_create(const glm_model *m, const glm_backend_params *p, char *err, size_t errlen);

/* A process of a multi-node world that runs no rank 0 (p->first_rank > 0) has nothing to call:
 * its ranks follow rank 0 until it stops the world. This waits up to timeout_ms (< 0: for ever)
 * for that: 1 when rank 0 stopped the world, -1 when the world failed (the reason in err), 0 when
 * the time ran out. Then destroy it. */
int glm_tp_backend_wait(glm_backend *b, int timeout_ms, char *err, size_t errlen);

/* Stops a tensor-parallel world from outside (any thread: a node that dropped out, a
 * watchdog): its ranks leave the collectives they wait in, and the call in flight and every
 * later one returns GLM_BACKEND_DEAD with "why". Nothing for a backend of one rank. */
void glm_tp_backend_stop(glm_backend *b, const char *why);

/*
 * A world's transport, as backend/tp.c drives it. A world may span processes
 * (multi-node): this process runs ranks [first_rank, first_rank + n_local) of
 * `world`, and every process was given the same id (made once by get_id on
 * node 0, handed to the others by the rendezvous). create makes this
 * process's side (host state only); join runs on rank `rank`'s own thread
 * (NCCL: collective over the world, on `device`), and readies the rank for
 * host collectives of up to host_bytes (a join that fails leaves the world
 * poisoned, so that no rank waits for this one); host_broadcast (from rank 0) and
 * host_all_gather (bytes from each rank, in rank order) move host memory,
 * on the rank's thread; free once every local rank has stopped.
 */
typedef struct {
    const char *name;
    size_t id_bytes;          /* 0: a world of this process only (no id, first_rank 0) */
    int (*get_id)(void *id, char *err, size_t errlen);
    void *(*create)(int world, int first_rank, int n_local, const void *id, char *err, size_t errlen);
    int (*join)(void *world, int rank, int device, size_t host_bytes, struct glm_comm **out, char *err,
                size_t errlen);
    int (*host_broadcast)(void *world, struct glm_comm *c, void *buf, size_t bytes, char *err, size_t errlen);
    int (*host_all_gather)(void *world, struct glm_comm *c, const void *send, void *recv, size_t bytes, char *err,
                           size_t errlen);
    void (*free)(void *world);
} glm_tp_world_ops;

/* The CUDA backend's worlds, defined with it: NCCL in the nvcc build, in-process ranks
 * synchronising their streams on the CPU execution layer. */
extern const glm_tp_world_ops glm_cuda_tp_world;

/* 1 when this binary has the CUDA backend and a CUDA device is usable (the
 * default of --device), else 0 with the reason in why (may be NULL). */
int glm_cuda_available(char *why, size_t whylen);
/* Defined with glm_cuda_backend_create: the number of usable CUDA devices, or
 * -1 with the runtime's message. */
int glm_cuda_device_count(char *err, size_t errlen);

#endif
