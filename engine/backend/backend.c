/* backend.c - creation by kind (see backend.h). */
#include "backend/backend.h"

#include "core/util.h"

glm_backend *glm_backend_create(const glm_model *m, const glm_backend_params *p, char *err, size_t errlen)
{
    switch (p->kind) {
    case GLM_BACKEND_CPU:
        return glm_cpu_backend_create(m, p, err, errlen);
    case GLM_BACKEND_CUDA:
        glm_err(err, errlen, "the CUDA backend is not built yet");
        return NULL;
    }
    glm_err(err, errlen, "unknown backend kind %d", (int)p->kind);
    return NULL;
}
