/* multinode.c - the nodes of a multi-node world meeting (multinode.h). */
#include "multinode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"
#include "comm/rendezvous.h"
#include "core/hash.h"
#include "core/util.h"

/* the CUDA backend's transport, linked only into builds that have it (backend.c) */
#pragma weak glm_cuda_tp_world

struct glm_multinode {
    glm_rdv *rdv;
    int first_rank, n_local;
    unsigned char id[GLM_RDV_MAX_BLOB];
    void (*on_fail)(void *user, const char *why);
    void *user;
};

void glm_multinode_flags_default(glm_multinode_flags *f)
{
    f->nnodes = 1;
    f->node_rank = 0;
    f->master_addr = "127.0.0.1";
    f->master_port = 29500;
}

int glm_multinode_check(const glm_multinode_flags *f, const glm_backend_choice *bc, char *err, size_t errlen)
{
    if (f->nnodes < 1 || f->nnodes > GLM_RDV_MAX_NODES)
        return glm_err(err, errlen, "--nnodes must be in [1, %d], got %d", GLM_RDV_MAX_NODES, f->nnodes);
    if (f->node_rank < 0 || f->node_rank >= f->nnodes)
        return glm_err(err, errlen, "--node-rank must be in [0, %d) with --nnodes %d, got %d", f->nnodes, f->nnodes,
                       f->node_rank);
    if (f->master_port < 1 || f->master_port > 65535)
        return glm_err(err, errlen, "--master-port must be in [1, 65535], got %d", f->master_port);
    if (f->nnodes == 1)
        return GLM_OK;
    if (bc->kind != GLM_BACKEND_CUDA || !&glm_cuda_tp_world || glm_cuda_tp_world.id_bytes == 0)
        return glm_err(err, errlen, "--nnodes %d: the nodes compute together over NCCL, which needs the CUDA "
                       "backend on GPUs (--device cuda in a build with nvcc)", f->nnodes);
    if (bc->tensor_parallel_size % f->nnodes != 0 || bc->tensor_parallel_size < f->nnodes)
        return glm_err(err, errlen, "--tensor-parallel-size %d is the whole world's: --nnodes %d must divide it "
                       "(each node runs the same number of ranks)", bc->tensor_parallel_size, f->nnodes);
    return GLM_OK;
}

static void fail_cb(void *user, const char *why)
{
    glm_multinode *m = user;
    if (m->on_fail)
        m->on_fail(m->user, why);
}

static void log_cb(void *user, const char *line) { fprintf(stderr, "glm-server: rendezvous: %s\n", line); }

glm_multinode *glm_multinode_meet(const glm_multinode_flags *f, int tensor_parallel_size, uint64_t fingerprint,
                                  void (*on_fail)(void *user, const char *why), void *user, char *err,
                                  size_t errlen)
{
    glm_multinode *m = glm_calloc(1, sizeof *m);
    m->on_fail = on_fail;
    m->user = user;
    m->n_local = tensor_parallel_size / f->nnodes;
    glm_rdv_params p = glm_rdv_default_params();
    p.nnodes = f->nnodes;
    p.node_rank = f->node_rank;
    p.master_addr = f->master_addr;
    p.master_port = f->master_port;
    p.n_local = m->n_local;
    p.fingerprint = fingerprint;
    p.blob_bytes = glm_cuda_tp_world.id_bytes;
    p.on_fail = fail_cb;
    p.on_fail_user = m;
    p.log = log_cb;
    if (f->node_rank == 0 && glm_cuda_tp_world.get_id(m->id, err, errlen) != GLM_OK) {
        free(m);
        return NULL;
    }
    m->rdv = glm_rdv_create(&p, err, errlen);
    if (!m->rdv) {
        free(m);
        return NULL;
    }
    fprintf(stderr, "glm-server: node %d of %d: %s %s:%d (join timeout %.0f s)\n", f->node_rank, f->nnodes,
            f->node_rank == 0 ? "waiting for the other nodes on" : "joining node 0 at", f->master_addr,
            glm_rdv_port(m->rdv), p.join_timeout_s);
    if (glm_rdv_run(m->rdv, m->id, err, errlen) != GLM_OK) {
        glm_rdv_free(m->rdv);
        free(m);
        return NULL;
    }
    if (glm_rdv_world(m->rdv) != tensor_parallel_size) {
        glm_err(err, errlen, "the nodes hold %d ranks, --tensor-parallel-size says %d", glm_rdv_world(m->rdv),
                tensor_parallel_size);
        glm_rdv_free(m->rdv);
        free(m);
        return NULL;
    }
    m->first_rank = glm_rdv_first_rank(m->rdv);
    fprintf(stderr, "glm-server: node %d of %d: ranks [%d, %d) of %d\n", f->node_rank, f->nnodes, m->first_rank,
            m->first_rank + m->n_local, tensor_parallel_size);
    return m;
}

int glm_multinode_first_rank(const glm_multinode *m) { return m->first_rank; }
int glm_multinode_n_local(const glm_multinode *m) { return m->n_local; }
const void *glm_multinode_world_id(const glm_multinode *m) { return m->id; }

void glm_multinode_stop(glm_multinode *m, const char *why)
{
    if (m)
        glm_rdv_stop(m->rdv, why);
}

void glm_multinode_free(glm_multinode *m)
{
    if (!m)
        return;
    glm_rdv_free(m->rdv);
    free(m);
}

uint64_t glm_multinode_fingerprint(const char *model_dir, const int *flags, int n_flags)
{
    uint64_t h = 0xcbf29ce484222325ull;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    FILE *fp = fopen(path, "rb");
    if (fp) {
        char buf[8192];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
            h = glm_fnv1a64(h, buf, n);
        fclose(fp);
    }
    return glm_fnv1a64(h, flags, sizeof(int) * (size_t)n_flags);
}
