/* util.c - see util.h. */
#define _POSIX_C_SOURCE 200809L
#include "core/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int glm_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return GLM_ERR;
}

void glm_assert_fail(const char *expr, const char *func, const char *file, int line)
{
    fprintf(stderr, "glm-server: assertion failed: %s (%s, %s:%d)\n", expr, func, file, line);
    abort();
}

static void oom(size_t n)
{
    fprintf(stderr, "glm-server: out of memory allocating %zu bytes\n", n);
    abort();
}

void *glm_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *glm_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        oom(count * size);
    return p;
}

void *glm_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *glm_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = glm_malloc(n);
    memcpy(d, s, n);
    return d;
}

void *glm_malloc_aligned(size_t n)
{
    void *p = NULL;
    n = (n + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, n ? n : 64) != 0)
        oom(n);
    return p;
}

void glm_free_aligned(void *p)
{
    free(p);
}

double glm_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int glm_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}
