/* dtype.c - see dtype.h. */
#include "core/dtype.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

static const struct { const char *name; size_t size; } dtype_info[GLM_DTYPE_COUNT] = {
    [GLM_DTYPE_F32] = {"F32", 4},     [GLM_DTYPE_F16] = {"F16", 2},
    [GLM_DTYPE_BF16] = {"BF16", 2},   [GLM_DTYPE_F8_E4M3] = {"F8_E4M3", 1},
    [GLM_DTYPE_F8_E5M2] = {"F8_E5M2", 1}, [GLM_DTYPE_F64] = {"F64", 8},
    [GLM_DTYPE_I64] = {"I64", 8},     [GLM_DTYPE_I32] = {"I32", 4},
    [GLM_DTYPE_I16] = {"I16", 2},     [GLM_DTYPE_I8] = {"I8", 1},
    [GLM_DTYPE_U8] = {"U8", 1},       [GLM_DTYPE_BOOL] = {"BOOL", 1},
};

size_t glm_dtype_size(glm_dtype t)
{
    return (unsigned)t < GLM_DTYPE_COUNT ? dtype_info[t].size : 0;
}

const char *glm_dtype_name(glm_dtype t)
{
    return (unsigned)t < GLM_DTYPE_COUNT ? dtype_info[t].name : "?";
}

int glm_dtype_parse(const char *s, glm_dtype *out)
{
    for (int i = 0; i < GLM_DTYPE_COUNT; i++) {
        if (strcmp(s, dtype_info[i].name) == 0) {
            *out = (glm_dtype)i;
            return 0;
        }
    }
    return -1;
}

float glm_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    union { uint32_t u; float f; } v;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in float */
        float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    }
    if (exp == 31)
        v.u = sign | 0x7f800000u | (man << 13);
    else
        v.u = sign | ((exp + 112) << 23) | (man << 13);
    return v.f;
}

uint16_t glm_f32_to_f16(float f)
{
    union { uint32_t u; float f; } v;
    v.f = f;
    uint32_t sign = (v.u >> 16) & 0x8000u;
    float a = fabsf(f);
    if (isnan(f))
        return (uint16_t)(sign | 0x7e00u);
    if (a >= 65520.0f)
        return (uint16_t)(sign | 0x7c00u);
    if (a < 6.103515625e-05f) {
        /* subnormal half: multiples of 2^-24, rounded to nearest even */
        float q = nearbyintf(ldexpf(a, 24));
        return (uint16_t)(sign | (uint32_t)q);
    }
    uint32_t u = v.u & 0x7fffffffu;
    u += 0xfffu + ((u >> 13) & 1u);
    return (uint16_t)(sign | ((u - (112u << 23)) >> 13));
}

static float e4m3_tab[256];
static pthread_once_t e4m3_once = PTHREAD_ONCE_INIT;

static void e4m3_build(void)
{
    for (int b = 0; b < 256; b++) {
        int sign = b >> 7, exp = (b >> 3) & 0xf, man = b & 7;
        float v;
        if (exp == 0xf && man == 7)
            v = NAN;
        else if (exp == 0)
            v = ldexpf((float)man, -9); /* man/8 * 2^-6 */
        else
            v = ldexpf(1.0f + (float)man / 8.0f, exp - 7);
        e4m3_tab[b] = sign ? -v : v;
    }
}

const float *glm_e4m3_table(void)
{
    pthread_once(&e4m3_once, e4m3_build);
    return e4m3_tab;
}

uint8_t glm_f32_to_e4m3(float f)
{
    if (isnan(f))
        return 0x7f;
    uint8_t sign = signbit(f) ? 0x80 : 0;
    float a = fabsf(f);
    if (a >= 448.0f)
        return sign | 0x7e;
    /* Round to nearest, ties to the even code. Below 2^-6 the codes 0..8 are evenly spaced
     * by 2^-9: round a * 2^9 (exact) to an integer. From 2^-6 up, a code is e4m3's exponent
     * field (float's minus 120) and three mantissa bits: round float's 23 mantissa bits to
     * 3 on the bit pattern (a carry moves into the exponent, as the next code does). */
    if (a < 0.015625f) {
        float x = a * 512.0f;
        int n = (int)x;
        float frac = x - (float)n;
        if (frac > 0.5f || (frac == 0.5f && (n & 1)))
            n++;
        return sign | (uint8_t)n;
    }
    uint32_t u;
    memcpy(&u, &a, sizeof u);
    uint32_t base = u >> 20, rem = u & 0xfffffu;
    if (rem > 0x80000u || (rem == 0x80000u && (base & 1)))
        base++;
    return sign | (uint8_t)(base - (120u << 3));
}

float glm_e5m2_to_f32(uint8_t b)
{
    return glm_f16_to_f32((uint16_t)b << 8);
}

int glm_to_f32(glm_dtype t, const void *src, float *dst, size_t n)
{
    switch (t) {
    case GLM_DTYPE_F32:
        memcpy(dst, src, n * 4);
        return 0;
    /* 16-bit data in a mapped file may be unaligned: read it bytewise */
    case GLM_DTYPE_BF16: {
        typedef uint16_t u16x8 __attribute__((vector_size(16)));
        typedef uint32_t u32x8 __attribute__((vector_size(32)));
        const uint8_t *s = src;
        size_t i = 0;
        for (; i + 8 <= n; i += 8) { /* 8 at a time: widen and shift, exact */
            u16x8 h;
            memcpy(&h, s + 2 * i, sizeof h);
            u32x8 u = __builtin_convertvector(h, u32x8) << 16;
            memcpy(dst + i, &u, sizeof u);
        }
        for (; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = glm_bf16_to_f32(h);
        }
        return 0;
    }
    case GLM_DTYPE_F16: {
        const uint8_t *s = src;
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = glm_f16_to_f32(h);
        }
        return 0;
    }
    case GLM_DTYPE_F8_E4M3: {
        const uint8_t *s = src;
        const float *tab = glm_e4m3_table();
        for (size_t i = 0; i < n; i++)
            dst[i] = tab[s[i]];
        return 0;
    }
    case GLM_DTYPE_F8_E5M2: {
        const uint8_t *s = src;
        for (size_t i = 0; i < n; i++)
            dst[i] = glm_e5m2_to_f32(s[i]);
        return 0;
    }
    case GLM_DTYPE_F64: {
        const uint8_t *s = src;
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, s + 8 * i, 8);
            dst[i] = (float)d;
        }
        return 0;
    }
    default:
        return -1;
    }
}
