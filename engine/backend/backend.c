/* backend.c - creation by kind (see backend.h). */
#include "backend/backend.h"

#include "core/util.h"

/* The CUDA backend is linked only into builds that have it: weak references,
 * NULL otherwise. */
#pragma weak glm_cuda_backend_create
#pragma weak glm_cuda_device_count

int glm_cuda_available(char *why, size_t whylen)
{
    if (!glm_cuda_device_count || !glm_cuda_backend_create) {
        if (why)
            glm_err(why, whylen, "this glm-server was built without the CUDA backend");
        return 0;
    }
    char err[256];
    int n = glm_cuda_device_count(err, sizeof err);
    if (n <= 0) {
        if (why)
            glm_err(why, whylen, "no CUDA device: %s", n < 0 ? err : "none found");
        return 0;
    }
    return 1;
}

glm_backend *glm_backend_create(const glm_model *m, const glm_backend_params *p, char *err, size_t errlen)
{
    if (p->draft_layers) {
        if (p->draft_layers != 1 || !m->mtp) {
            glm_err(err, errlen, "speculative decoding with MTP: %s", m->mtp ? "one MTP layer at most"
                    : "the checkpoint has no MTP layer (model.layers.<num_hidden_layers>.eh_proj)");
            return NULL;
        }
        if (p->world > 1 && p->kind != GLM_BACKEND_CPU) {
            glm_err(err, errlen, "speculative decoding with MTP under tensor parallelism (size %d) runs on the "
                    "CPU backend only so far: the CUDA backend's ranks do not hold the MTP layer", p->world);
            return NULL;
        }
    }
    if (p->world > 1 && !p->comm)
        return glm_tp_backend_create(m, p, err, errlen);
    switch (p->kind) {
    case GLM_BACKEND_CPU:
        return glm_cpu_backend_create(m, p, err, errlen);
    case GLM_BACKEND_CUDA:
        if (!glm_cuda_backend_create) {
            glm_err(err, errlen, "this glm-server was built without the CUDA backend (build with nvcc on PATH)");
            return NULL;
        }
        return glm_cuda_backend_create(m, p, err, errlen);
    }
    glm_err(err, errlen, "unknown backend kind %d", (int)p->kind);
    return NULL;
}
