/*
 * threadpool.c - see threadpool.h.
 *
 * Workers sleep on a condition variable between loops and spin briefly before
 * sleeping, so that the many short loops of a decode step (one per matmul) do
 * not pay a futex wake-up each; the caller likewise spins a while for the
 * workers to finish a loop before it sleeps. Spinning is a pause instruction,
 * with a sched_yield every SPIN_YIELD spins so that a machine with more
 * threads than cores still runs the others.
 */
#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/util.h"

#define SPIN_LIMIT 20000  /* spins before sleeping (0.1 - 1 ms: a pause is 10 - 140 cycles) */
#define SPIN_YIELD 1024   /* a sched_yield every this many */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Spin iteration k: a pause, and now and then a yield. */
static inline void spin_once(int k)
{
    cpu_relax();
    if ((k & (SPIN_YIELD - 1)) == SPIN_YIELD - 1)
        sched_yield();
}

struct glm_pool {
    int n;                      /* threads including the caller */
    pthread_t *threads;         /* [n - 1] */
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    atomic_int generation;      /* bumped for each loop */
    int stop;
    /* the current loop */
    glm_pool_fn fn;
    void *ctx;
    int total;
    atomic_int next;
    atomic_int finished_workers;
    void **scratch;             /* [n] per-worker scratch (glm_pool_scratch) */
    size_t *scratch_cap;        /* [n] its bytes */
};

typedef struct {
    glm_pool *p;
    int id;
} worker_arg;

static void run_items(glm_pool *p, int worker)
{
    for (;;) {
        int i = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (i >= p->total)
            break;
        p->fn(p->ctx, i, worker);
    }
}

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    glm_pool *p = wa->p;
    int id = wa->id;
    free(wa);
    int seen = 0;
    for (;;) {
        /* spin a little, then sleep */
        for (int k = 0; k < SPIN_LIMIT && atomic_load_explicit(&p->generation, memory_order_acquire) == seen; k++)
            spin_once(k);
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->generation) == seen && !p->stop)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = atomic_load(&p->generation);
        pthread_mutex_unlock(&p->mu);

        run_items(p, id);

        pthread_mutex_lock(&p->mu);
        if (atomic_fetch_add(&p->finished_workers, 1) + 1 == p->n - 1)
            pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

glm_pool *glm_pool_create(int n_threads)
{
    glm_pool *p = glm_calloc(1, sizeof *p);
    p->n = n_threads > 0 ? n_threads : glm_cpu_count();
    if (p->n > GLM_POOL_MAX_THREADS)
        p->n = GLM_POOL_MAX_THREADS;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = glm_calloc((size_t)p->n, sizeof(pthread_t));
    p->scratch = glm_calloc((size_t)p->n, sizeof(void *));
    p->scratch_cap = glm_calloc((size_t)p->n, sizeof(size_t));
    for (int i = 1; i < p->n; i++) {
        worker_arg *wa = glm_malloc(sizeof *wa);
        wa->p = p;
        wa->id = i;
        if (pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
            /* out of threads: run with the ones that started */
            free(wa);
            p->n = i;
            break;
        }
    }
    return p;
}

void glm_pool_free(glm_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->threads[i - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    for (int i = 0; i < p->n; i++)
        glm_free_aligned(p->scratch[i]);
    free(p->scratch);
    free(p->scratch_cap);
    free(p->threads);
    free(p);
}

void *glm_pool_scratch(glm_pool *p, int worker, size_t bytes)
{
    GLM_ASSERT(worker >= 0 && worker < p->n);
    if (p->scratch_cap[worker] < bytes) {
        glm_free_aligned(p->scratch[worker]);
        p->scratch[worker] = glm_malloc_aligned(bytes);
        p->scratch_cap[worker] = bytes;
    }
    return p->scratch[worker];
}

void glm_pool_reserve(glm_pool *p, size_t bytes)
{
    for (int w = 0; w < p->n; w++)
        glm_pool_scratch(p, w, bytes);
}

int glm_pool_size(const glm_pool *p)
{
    return p ? p->n : 1;
}

void glm_pool_for(glm_pool *p, int n, glm_pool_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (!p || p->n == 1 || n == 1) {
        for (int i = 0; i < n; i++)
            fn(ctx, i, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->total = n;
    atomic_store(&p->next, 0);
    atomic_store(&p->finished_workers, 0);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    run_items(p, 0);

    for (int k = 0; k < SPIN_LIMIT && atomic_load_explicit(&p->finished_workers, memory_order_acquire) < p->n - 1;
         k++)
        spin_once(k);
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->finished_workers) < p->n - 1)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
