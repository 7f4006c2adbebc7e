/*
 * backend_flags.h - the command-line surface that chooses and configures the
 * backend, shared by every program that creates a model runner (serve,
 * generate, glm-bench). vLLM's flag names and values:
 *
 *   --device auto|cuda|cpu        auto (default): cuda when glm_cuda_available()
 *                                 says so, else cpu
 *   --dtype auto|bfloat16|float32 (also vLLM's "float" for float32); the CPU
 *                                 backend always computes in float32
 *   --enforce-eager               CUDA: run every step eagerly, no CUDA graphs
 *   --tensor-parallel-size N      (-tp N) N ranks, one thread each, sharing the
 *                                 model (backend.h: glm_tp_backend_create); on
 *                                 CUDA one device each, devices 0..N-1
 *
 * There is no device-ordinal flag (vLLM has none either): the CUDA backend
 * runs on device 0 of the devices CUDA_VISIBLE_DEVICES leaves visible.
 */
#ifndef GLM_BACKEND_FLAGS_H
#define GLM_BACKEND_FLAGS_H

#include <stddef.h>

#include "backend/backend.h"

typedef enum {
    GLM_DEVICE_AUTO = 0, /* cuda when usable, else cpu */
    GLM_DEVICE_CPU,
    GLM_DEVICE_CUDA
} glm_device_choice;

typedef struct {
    glm_device_choice device;  /* --device (default GLM_DEVICE_AUTO) */
    glm_compute_dtype dtype;   /* --dtype (default GLM_COMPUTE_AUTO) */
    int enforce_eager;         /* --enforce-eager: 1 = no CUDA graphs (default 0) */
    int tensor_parallel_size;  /* --tensor-parallel-size (default 1): the whole world's */
    int nnodes;                /* serve's --nnodes (default 1): this node runs tensor_parallel_size /
                                  nnodes ranks, and needs that many devices */
} glm_backend_flags;

/* What the flags resolve to: the fields glm_runner_params takes. */
typedef struct {
    glm_backend_kind kind;     /* GLM_BACKEND_CPU or GLM_BACKEND_CUDA */
    glm_compute_dtype dtype;   /* GLM_COMPUTE_F32 on the CPU; as asked on CUDA */
    int device;                /* CUDA device ordinal: always 0 (see above) */
    int cuda_graphs;           /* 0 with --enforce-eager, else 1 */
    int tensor_parallel_size;  /* ranks, >= 1 */
} glm_backend_choice;

/* The defaults above. */
void glm_backend_flags_default(glm_backend_flags *f);

/* --device VALUE / --dtype VALUE into f. GLM_ERR with a one-line message
 * naming the flag, the value and what is accepted (a usage error). */
int glm_backend_flags_set_device(glm_backend_flags *f, const char *value, char *err, size_t errlen);
int glm_backend_flags_set_dtype(glm_backend_flags *f, const char *value, char *err, size_t errlen);
int glm_backend_flags_set_tp(glm_backend_flags *f, const char *value, char *err, size_t errlen);

/* vLLM's short spelling: every "-tp" in argv becomes "--tensor-parallel-size" (call before
 * getopt_long). */
void glm_backend_flags_aliases(int argc, char **argv);

/* Resolves --device auto and the dtype; asks glm_cuda_available() unless
 * --device cpu; on CUDA, --tensor-parallel-size N needs N visible devices. Writes into log the one line to print at start-up (which
 * backend, in what, and why) and into note a second line to print, or "" (a
 * dtype the backend does not compute in). GLM_ERR: --device cuda where the
 * CUDA backend is not usable; err names the reason glm_cuda_available gave. */
int glm_backend_flags_resolve(const glm_backend_flags *f, glm_backend_choice *out, char *log, size_t loglen,
                              char *note, size_t notelen, char *err, size_t errlen);

/* "bfloat16", "float32", "auto". */
const char *glm_compute_dtype_flag_name(glm_compute_dtype d);

#endif
