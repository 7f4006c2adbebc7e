/*
 * util.h - error reporting, checked allocation and invariant asserts shared by
 * every module.
 *
 * Errors that input can cause (a file, a request) travel as a status: functions
 * return GLM_OK or GLM_ERR and write one human-readable line into a caller-owned
 * buffer (`char *err, size_t errlen`). Broken invariants (bugs) stop the
 * process through GLM_ASSERT, which names the expression, function, file and
 * line.
 */
#ifndef GLM_UTIL_H
#define GLM_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define GLM_OK 0
#define GLM_ERR (-1)

/* Size of the error buffers that callers pass around. */
#define GLM_ERRLEN 512

/* Writes a printf-style message into err (if err is not NULL); returns GLM_ERR
 * so that callers can write `return glm_err(err, n, "...")`. */
int glm_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Stops the process with a message naming the failed invariant. Never returns. */
void glm_assert_fail(const char *expr, const char *func, const char *file, int line)
    __attribute__((noreturn));

#define GLM_ASSERT(e) ((e) ? (void)0 : glm_assert_fail(#e, __func__, __FILE__, __LINE__))

/* splitmix64's finaliser: a fast 64-bit mix with full avalanche (hashes). */
static inline uint64_t glm_mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* splitmix64 (Steele, Lea, Flood): advances *state, returns the next value.
 * Seeds generators and makes reproducible test data. */
static inline uint64_t glm_splitmix64(uint64_t *state)
{
    return glm_mix64(*state += 0x9e3779b97f4a7c15ull);
}

/* Allocation that cannot fail softly: out of memory is fatal (message + abort).
 * Used for bounded internal allocations; sizes that come from input are checked
 * by the caller first. */
void *glm_malloc(size_t n);
void *glm_calloc(size_t count, size_t size);
void *glm_realloc(void *p, size_t n);
char *glm_strdup(const char *s);

/* 64-byte aligned allocation for vector data; free with glm_free_aligned. */
void *glm_malloc_aligned(size_t n);
void glm_free_aligned(void *p);

/* Monotonic time in seconds. */
double glm_now(void);

/* Number of online CPUs (at least 1). */
int glm_cpu_count(void);

#define GLM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define GLM_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
