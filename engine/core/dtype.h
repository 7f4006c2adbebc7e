/*
 * dtype.h - the element types a checkpoint may store, and exact conversions
 * between them and float32.
 *
 * BF16 and F16 widen to F32 exactly. F8_E4M3 is the OCP "e4m3fn" format used
 * by FP8 checkpoints (no infinities, 0x7f/0xff are NaN, max finite 448); it is
 * always paired with a per-128x128-block F32 scale (`weight_scale_inv`), which
 * the matmul kernels apply.
 */
#ifndef GLM_DTYPE_H
#define GLM_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    GLM_DTYPE_F32 = 0,
    GLM_DTYPE_F16,
    GLM_DTYPE_BF16,
    GLM_DTYPE_F8_E4M3,
    GLM_DTYPE_F8_E5M2,
    GLM_DTYPE_F64,
    GLM_DTYPE_I64,
    GLM_DTYPE_I32,
    GLM_DTYPE_I16,
    GLM_DTYPE_I8,
    GLM_DTYPE_U8,
    GLM_DTYPE_BOOL,
    GLM_DTYPE_COUNT
} glm_dtype;

/* Bytes per element. */
size_t glm_dtype_size(glm_dtype t);

/* The safetensors spelling ("F32", "BF16", "F8_E4M3", ...). */
const char *glm_dtype_name(glm_dtype t);

/* Parses a safetensors dtype string; returns 0 and sets *out, or -1 if unknown. */
int glm_dtype_parse(const char *s, glm_dtype *out);

static inline float glm_bf16_to_f32(uint16_t h)
{
    union { uint32_t u; float f; } v;
    v.u = (uint32_t)h << 16;
    return v.f;
}

/* Round to nearest even; NaN stays NaN. */
static inline uint16_t glm_f32_to_bf16(float f)
{
    union { uint32_t u; float f; } v;
    v.f = f;
    if ((v.u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((v.u >> 16) | 0x40);
    v.u += 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)(v.u >> 16);
}

float glm_f16_to_f32(uint16_t h);
uint16_t glm_f32_to_f16(float f);

/* Table of the 256 e4m3fn values, filled on first use (thread-safe). */
const float *glm_e4m3_table(void);
static inline float glm_e4m3_to_f32(uint8_t b) { return glm_e4m3_table()[b]; }

/* Round-to-nearest-even, saturating at +-448 (what torch's float8_e4m3fn cast
 * gives for finite inputs within range). */
uint8_t glm_f32_to_e4m3(float f);

float glm_e5m2_to_f32(uint8_t b);

/* Converts n elements of type t at src to float32 at dst. Only the float types
 * are supported; returns -1 for the others. */
int glm_to_f32(glm_dtype t, const void *src, float *dst, size_t n);

#endif
