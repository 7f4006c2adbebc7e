/*
 * backend_flags.c - --device, --dtype and --enforce-eager (backend_flags.h):
 * parsing with vLLM's accepted values, and resolving them into the backend
 * kind, dtype and graph switch a model runner takes, with the start-up line
 * that says which backend was chosen and why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_flags.h"
#include "comm/comm.h"
#include "core/util.h"

/* called only once glm_cuda_available() said the CUDA backend is linked in (backend.c) */
#pragma weak glm_cuda_device_count

void glm_backend_flags_default(glm_backend_flags *f)
{
    f->device = GLM_DEVICE_AUTO;
    f->dtype = GLM_COMPUTE_AUTO;
    f->enforce_eager = 0;
    f->tensor_parallel_size = 1;
    f->nnodes = 1;
}

int glm_backend_flags_set_tp(glm_backend_flags *f, const char *value, char *err, size_t errlen)
{
    char *end;
    long v = strtol(value, &end, 10);
    if (end == value || *end || v < 1 || v > GLM_COMM_MAX_WORLD)
        return glm_err(err, errlen, "--tensor-parallel-size must be an integer in [1, %d], got \"%s\"",
                       GLM_COMM_MAX_WORLD, value);
    f->tensor_parallel_size = (int)v;
    return GLM_OK;
}

void glm_backend_flags_aliases(int argc, char **argv)
{
    static char long_name[] = "--tensor-parallel-size";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "-tp") == 0)
            argv[i] = long_name;
    }
}

int glm_backend_flags_set_device(glm_backend_flags *f, const char *value, char *err, size_t errlen)
{
    if (strcmp(value, "auto") == 0)
        f->device = GLM_DEVICE_AUTO;
    else if (strcmp(value, "cuda") == 0)
        f->device = GLM_DEVICE_CUDA;
    else if (strcmp(value, "cpu") == 0)
        f->device = GLM_DEVICE_CPU;
    else /* vLLM's others (neuron, tpu, xpu, ...) have no backend here */
        return glm_err(err, errlen, "--device must be auto, cuda or cpu, got \"%s\"", value);
    return GLM_OK;
}

/* vLLM's values are auto, half, float16, bfloat16, float, float32 ("float"
 * is its shorthand for float32); it has no "bf16" or "fp32", so neither do
 * we. float16 is one of vLLM's but no backend here computes in it. */
int glm_backend_flags_set_dtype(glm_backend_flags *f, const char *value, char *err, size_t errlen)
{
    if (strcmp(value, "auto") == 0)
        f->dtype = GLM_COMPUTE_AUTO;
    else if (strcmp(value, "bfloat16") == 0)
        f->dtype = GLM_COMPUTE_BF16;
    else if (strcmp(value, "float32") == 0 || strcmp(value, "float") == 0)
        f->dtype = GLM_COMPUTE_F32;
    else if (strcmp(value, "float16") == 0 || strcmp(value, "half") == 0)
        return glm_err(err, errlen, "--dtype %s is not supported: glm-server computes in bfloat16 or float32",
                       value);
    else
        return glm_err(err, errlen, "--dtype must be auto, bfloat16 or float32 (or float), got \"%s\"", value);
    return GLM_OK;
}

const char *glm_compute_dtype_flag_name(glm_compute_dtype d)
{
    switch (d) {
    case GLM_COMPUTE_AUTO: return "auto";
    case GLM_COMPUTE_BF16: return "bfloat16";
    case GLM_COMPUTE_F32: return "float32";
    }
    return "?";
}

/* ", tensor parallel size N" at the end of the start-up line when N > 1. */
static void append_tp(const glm_backend_flags *f, char *log, size_t loglen)
{
    size_t n = strlen(log);
    if (f->tensor_parallel_size > 1 && n < loglen)
        snprintf(log + n, loglen - n, "; --tensor-parallel-size %d", f->tensor_parallel_size);
}

int glm_backend_flags_resolve(const glm_backend_flags *f, glm_backend_choice *out, char *log, size_t loglen,
                              char *note, size_t notelen, char *err, size_t errlen)
{
    char why[GLM_ERRLEN] = "";
    int cuda = f->device != GLM_DEVICE_CPU && glm_cuda_available(why, sizeof why);
    if (f->device == GLM_DEVICE_CUDA && !cuda)
        return glm_err(err, errlen, "--device cuda: %s", why);
    note[0] = 0;
    if (!cuda) {
        /* The CPU backend computes in float32 whatever is asked. A request for
         * bfloat16 is accepted with a notice rather than refused, as vLLM
         * does when a device cannot compute in the asked dtype (it casts and
         * warns): a configuration written for a GPU still runs where
         * --device auto falls back to the CPU. */
        *out = (glm_backend_choice){GLM_BACKEND_CPU, GLM_COMPUTE_F32, 0, 0, f->tensor_parallel_size};
        if (f->device == GLM_DEVICE_CPU)
            snprintf(log, loglen, "backend cpu (float32): --device cpu");
        else
            snprintf(log, loglen, "backend cpu (float32): --device auto and %s", why);
        if (f->dtype == GLM_COMPUTE_BF16)
            snprintf(note, notelen, "--dtype bfloat16: the CPU backend computes in float32");
        append_tp(f, log, loglen);
        return GLM_OK;
    }
    *out = (glm_backend_choice){GLM_BACKEND_CUDA, f->dtype, 0, !f->enforce_eager, f->tensor_parallel_size};
    int here = f->tensor_parallel_size / (f->nnodes > 0 ? f->nnodes : 1); /* this node's ranks */
    if (here > 1) {
        int n = glm_cuda_device_count(why, sizeof why);
        if (n < here)
            return glm_err(err, errlen, "--tensor-parallel-size %d needs %d CUDA devices%s; %d visible%s%s",
                           f->tensor_parallel_size, here, f->nnodes > 1 ? " on each node" : "", n < 0 ? 0 : n,
                           n < 0 ? ": " : "", n < 0 ? why : "");
    }
    const char *visible = getenv("CUDA_VISIBLE_DEVICES");
    char dev[160] = "device 0";
    if (here > 1)
        snprintf(dev, sizeof dev, "devices 0-%d", here - 1);
    if (visible)
        snprintf(dev + strlen(dev), sizeof dev - strlen(dev), " of CUDA_VISIBLE_DEVICES=%.100s", visible);
    snprintf(log, loglen, "backend cuda (%s, %s%s, %s): --device %s", dev,
             f->dtype == GLM_COMPUTE_AUTO ? "bfloat16" : glm_compute_dtype_flag_name(f->dtype),
             f->dtype == GLM_COMPUTE_AUTO ? " by default" : "",
             f->enforce_eager ? "eager: --enforce-eager" : "CUDA graphs for decode",
             f->device == GLM_DEVICE_CUDA ? "cuda" : "auto and a CUDA device is usable");
    append_tp(f, log, loglen);
    return GLM_OK;
}
