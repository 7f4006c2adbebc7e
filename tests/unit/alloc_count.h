/*
 * alloc_count.h - counts every malloc-family call of a test binary while
 * `counting` is set, by interposing malloc, calloc, realloc, aligned_alloc,
 * memalign and posix_memalign over glibc's (on every thread). Include it in
 * one file of a binary. Under a sanitizer, which owns malloc, COUNT_ALLOCS is
 * 0 and nothing is interposed: the tests that use it report themselves
 * skipped.
 */
#ifndef GLM_TEST_ALLOC_COUNT_H
#define GLM_TEST_ALLOC_COUNT_H

#include <stdatomic.h>
#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COUNT_ALLOCS 0
#else
#define COUNT_ALLOCS 1
static atomic_int counting, n_allocs;
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
static void count(void)
{
    if (atomic_load_explicit(&counting, memory_order_relaxed))
        atomic_fetch_add(&n_allocs, 1);
}
void *malloc(size_t n) { count(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { count(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { count(); return __libc_realloc(p, n); }
void *aligned_alloc(size_t al, size_t n) { count(); return __libc_memalign(al, n); }
void *memalign(size_t al, size_t n) { count(); return __libc_memalign(al, n); }
int posix_memalign(void **p, size_t al, size_t n)
{
    count();
    *p = __libc_memalign(al, n);
    return *p ? 0 : 12; /* ENOMEM */
}
#endif

#endif
