/*
 * hash.h - the hash functions of the project, all inline (the tokenizer's
 * word cache and the grammar matcher's state tables hash in their inner
 * loops). None of them is cryptographic or keyed: they spread keys over
 * tables, they do not resist chosen collisions.
 *
 *   glm_hash_bytes   byte strings of any length for hash tables (8 bytes a step)
 *   glm_mix64        (util.h) splitmix64's finaliser: integers for 64-bit tables
 *   glm_mix32        a 32-bit finaliser: integers for 32-bit tables
 *   glm_fnv1a32/64   FNV-1a, where the exact published values matter (fingerprints
 *                    printed by tools and compared across programs, seeds derived
 *                    from names)
 */
#ifndef GLM_CORE_HASH_H
#define GLM_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/util.h"

/* A 32-bit finaliser with full avalanche (Wellons' "lowbias32"). */
static inline uint32_t glm_mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

/* A 64-bit hash of p[0..n): eight bytes per multiply, then glm_mix64. */
static inline uint64_t glm_hash_bytes(const void *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0x100000001b3ull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, s, n);
    h = (h ^ v) * 0x94d049bb133111ebull;
    return glm_mix64(h);
}

#define GLM_FNV32_INIT 2166136261u
#define GLM_FNV64_INIT 14695981039346656037ull

/* FNV-1a (32 bit) of p[0..n), continuing from h (GLM_FNV32_INIT to start). */
static inline uint32_t glm_fnv1a32(uint32_t h, const void *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    return h;
}

/* FNV-1a (64 bit) of p[0..n), continuing from h (GLM_FNV64_INIT to start). */
static inline uint64_t glm_fnv1a64(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

#endif
