/*
 * multinode.h - `glm-server serve` across machines: --nnodes, --node-rank,
 * --master-addr, --master-port (vLLM's and torchrun's names).
 *
 * The same binary and flags run on every node. --tensor-parallel-size is the
 * whole world's; each node runs tensor_parallel_size / nnodes ranks, one GPU
 * each (its devices 0..). Before the weights load, the nodes meet
 * (engine/comm/rendezvous.h): node 0 listens on master-addr:master-port, makes
 * the NCCL unique id and hands it to every other node, which must have been
 * started with the same model and the same flags that size a step (a
 * fingerprint of config.json and those flags; another one is refused by
 * name). Node 0 then serves HTTP; the other nodes serve nothing: their ranks
 * follow rank 0's steps (backend/tp.c) until node 0 stops the world. The model
 * crosses machines only through NCCL; the TCP connections carry the hello,
 * the id, heartbeats and stops.
 *
 * A node that never joins fails node 0 after the join timeout (600 s); a
 * connection that is not a node is refused and forgotten; a node that drops
 * out, is killed or is stopped (SIGTERM) ends the world on every node within
 * the liveness timeout (10 s; a killed process at once): node 0 fails its
 * running requests with the reason and exits 1 (engine.h: glm_engine_dead),
 * the others exit 1. A node that stops while the weights load exits at once.
 */
#ifndef GLM_MULTINODE_H
#define GLM_MULTINODE_H

#include <stddef.h>
#include <stdint.h>

#include "backend_flags.h"

typedef struct {
    int nnodes;               /* --nnodes (default 1) */
    int node_rank;            /* --node-rank (default 0) */
    const char *master_addr;  /* --master-addr (default 127.0.0.1) */
    int master_port;          /* --master-port (default 29500, torchrun's) */
} glm_multinode_flags;

void glm_multinode_flags_default(glm_multinode_flags *f);

/* The flags against the backend: nnodes > 1 needs the CUDA backend with NCCL and a
 * --tensor-parallel-size that nnodes divides. GLM_ERR with a one-line message. */
int glm_multinode_check(const glm_multinode_flags *f, const glm_backend_choice *bc, char *err, size_t errlen);

typedef struct glm_multinode glm_multinode;

/*
 * Meets the other nodes (nnodes > 1): node 0 makes the world's id and waits
 * for every node; the others join and receive it. fingerprint: what every
 * node must agree on. on_fail(user, why): the world ended after the meeting
 * (from another thread, once). NULL with a message when the meeting fails.
 */
glm_multinode *glm_multinode_meet(const glm_multinode_flags *f, int tensor_parallel_size, uint64_t fingerprint,
                                  void (*on_fail)(void *user, const char *why), void *user, char *err,
                                  size_t errlen);

int glm_multinode_first_rank(const glm_multinode *m);
int glm_multinode_n_local(const glm_multinode *m);
const void *glm_multinode_world_id(const glm_multinode *m);

/* Tells every other node that this one stops, with why (any thread). */
void glm_multinode_stop(glm_multinode *m, const char *why);
void glm_multinode_free(glm_multinode *m);

/* The fingerprint of a deployment: config.json's bytes in dir and the flags that size a step. */
uint64_t glm_multinode_fingerprint(const char *model_dir, const int *flags, int n_flags);

#endif
