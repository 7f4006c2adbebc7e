/*
 * waiter.c - see waiter.h.
 *
 * Locking: one mutex guards every watch's state, the ready list, the
 * deadline heap and the list of all watches. fire runs without it. A removed
 * watch is unlinked at once but freed only at the end of the waiter's loop
 * iteration (an event epoll already returned may still name it).
 */
#include "waiter.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"

struct glm_watch {
    glm_waiter *w;
    int fd;                       /* the watched socket (the caller's), or -1 */
    void (*fire)(void *ctx, unsigned why);
    void *ctx;
    unsigned pending;             /* glm_wake bits to deliver */
    int in_ready;
    int removed;
    double deadline;              /* 0: none */
    int heap_at;                  /* index in the heap, or -1 */
    glm_watch *next_ready;
    glm_watch *prev, *next;       /* every live watch; then the graveyard */
};

struct glm_waiter {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t idle;          /* firing went back to NULL */
    int ep, efd;
    int quit;
    glm_watch *firing;
    glm_watch *ready, *ready_tail;
    glm_watch *all;               /* live watches */
    glm_watch *grave;             /* removed, to free at the end of an iteration */
    glm_watch **heap;
    int heap_n, heap_cap;
};

static void wake(glm_waiter *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->efd, &one, sizeof one);
    (void)n; /* EAGAIN: already awake */
}

/* ---- the deadline heap (under mu) ------------------------------------------------------- */

static void heap_set(glm_waiter *w, int i, glm_watch *wt)
{
    w->heap[i] = wt;
    wt->heap_at = i;
}

static void heap_up(glm_waiter *w, int i)
{
    glm_watch *wt = w->heap[i];
    while (i > 0) {
        int p = (i - 1) / 2;
        if (w->heap[p]->deadline <= wt->deadline)
            break;
        heap_set(w, i, w->heap[p]);
        i = p;
    }
    heap_set(w, i, wt);
}

static void heap_down(glm_waiter *w, int i)
{
    glm_watch *wt = w->heap[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= w->heap_n)
            break;
        if (c + 1 < w->heap_n && w->heap[c + 1]->deadline < w->heap[c]->deadline)
            c++;
        if (wt->deadline <= w->heap[c]->deadline)
            break;
        heap_set(w, i, w->heap[c]);
        i = c;
    }
    heap_set(w, i, wt);
}

static void heap_remove(glm_waiter *w, glm_watch *wt)
{
    int i = wt->heap_at;
    if (i < 0)
        return;
    wt->heap_at = -1;
    glm_watch *last = w->heap[--w->heap_n];
    if (i == w->heap_n)
        return;
    heap_set(w, i, last);
    heap_down(w, i);
    heap_up(w, last->heap_at);
}

static void heap_add(glm_waiter *w, glm_watch *wt)
{
    if (w->heap_n == w->heap_cap) {
        w->heap_cap = w->heap_cap ? 2 * w->heap_cap : 64;
        w->heap = glm_realloc(w->heap, sizeof *w->heap * (size_t)w->heap_cap);
    }
    heap_set(w, w->heap_n++, wt);
    heap_up(w, wt->heap_at);
}

/* ---- delivery (under mu) --------------------------------------------------------------- */

static void post(glm_waiter *w, glm_watch *wt, unsigned why)
{
    wt->pending |= why;
    if (wt->in_ready)
        return;
    wt->in_ready = 1;
    wt->next_ready = NULL;
    if (w->ready_tail)
        w->ready_tail->next_ready = wt;
    else
        w->ready = wt;
    w->ready_tail = wt;
}

static void unlink_ready(glm_waiter *w, glm_watch *wt)
{
    if (!wt->in_ready)
        return;
    glm_watch **pp = &w->ready, *prev = NULL;
    while (*pp && *pp != wt)
        prev = *pp, pp = &(*pp)->next_ready;
    if (*pp) {
        *pp = wt->next_ready;
        if (w->ready_tail == wt)
            w->ready_tail = prev;
    }
    wt->in_ready = 0;
}

/* Under mu: the socket is watched no more (an event epoll already returned is then ignored). */
static void forget_socket(glm_waiter *w, glm_watch *wt)
{
    if (wt->fd >= 0) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, wt->fd, NULL);
        wt->fd = -1;
    }
}

static void *waiter_main(void *arg)
{
    glm_waiter *w = arg;
    struct epoll_event evs[64];
    pthread_mutex_lock(&w->mu);
    while (!w->quit) {
        int timeout = -1;
        if (w->heap_n > 0) {
            double left = w->heap[0]->deadline - glm_now();
            timeout = left <= 0 ? 0 : (int)ceil(left * 1000.0);
        }
        pthread_mutex_unlock(&w->mu);
        int n = epoll_wait(w->ep, evs, 64, timeout);
        pthread_mutex_lock(&w->mu);
        for (int i = 0; i < n; i++) {
            glm_watch *wt = evs[i].data.ptr;
            if (!wt) {
                uint64_t v;
                ssize_t r = read(w->efd, &v, sizeof v);
                (void)r;
                continue;
            }
            if (wt->removed || wt->fd < 0)
                continue;
            /* level-triggered: watched no more once it hung up */
            forget_socket(w, wt);
            post(w, wt, GLM_WAKE_HANGUP);
        }
        double now = glm_now();
        while (w->heap_n > 0 && w->heap[0]->deadline <= now) {
            glm_watch *wt = w->heap[0];
            heap_remove(w, wt);
            wt->deadline = 0;
            post(w, wt, GLM_WAKE_DEADLINE);
        }
        while (w->ready && !w->quit) {
            glm_watch *wt = w->ready;
            w->ready = wt->next_ready;
            if (!w->ready)
                w->ready_tail = NULL;
            wt->in_ready = 0;
            unsigned why = wt->pending;
            wt->pending = 0;
            if (wt->removed || !why)
                continue;
            w->firing = wt;
            pthread_mutex_unlock(&w->mu);
            wt->fire(wt->ctx, why);
            pthread_mutex_lock(&w->mu);
            w->firing = NULL;
            pthread_cond_broadcast(&w->idle);
        }
        while (w->grave) {
            glm_watch *g = w->grave;
            w->grave = g->next;
            free(g);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

glm_waiter *glm_waiter_start(char *err, size_t errlen)
{
    glm_waiter *w = glm_calloc(1, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->idle, NULL);
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (w->ep < 0 || w->efd < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, w->efd, &ev) != 0 ||
        pthread_create(&w->thread, NULL, waiter_main, w) != 0) {
        glm_err(err, errlen, "cannot start the connection waiter: %s", strerror(errno));
        if (w->ep >= 0)
            close(w->ep);
        if (w->efd >= 0)
            close(w->efd);
        free(w);
        return NULL;
    }
    return w;
}

void glm_waiter_free(glm_waiter *w)
{
    if (!w)
        return;
    /* watches left are drains of hung-up clients: they end on the stop */
    glm_waiter_stop_all(w);
    pthread_mutex_lock(&w->mu);
    for (int i = 0; w->all && i < 500; i++) {
        pthread_mutex_unlock(&w->mu);
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&w->mu);
    }
    GLM_ASSERT(w->all == NULL);
    w->quit = 1;
    pthread_mutex_unlock(&w->mu);
    wake(w);
    pthread_join(w->thread, NULL);
    while (w->grave) {
        glm_watch *g = w->grave;
        w->grave = g->next;
        free(g);
    }
    close(w->ep);
    close(w->efd);
    free(w->heap);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->idle);
    free(w);
}

glm_watch *glm_waiter_add(glm_waiter *w, int sock, void (*fire)(void *ctx, unsigned why), void *ctx)
{
    glm_watch *wt = glm_calloc(1, sizeof *wt);
    wt->w = w;
    wt->fire = fire;
    wt->ctx = ctx;
    wt->heap_at = -1;
    wt->fd = -1;
    if (sock >= 0) {
        struct epoll_event ev = {.events = EPOLLRDHUP, .data.ptr = wt};
        if (epoll_ctl(w->ep, EPOLL_CTL_ADD, sock, &ev) != 0) {
            free(wt);
            return NULL;
        }
        wt->fd = sock;
    }
    pthread_mutex_lock(&w->mu);
    wt->next = w->all;
    if (w->all)
        w->all->prev = wt;
    w->all = wt;
    pthread_mutex_unlock(&w->mu);
    return wt;
}

void glm_waiter_kick(glm_watch *wt)
{
    glm_waiter *w = wt->w;
    pthread_mutex_lock(&w->mu);
    if (!wt->removed)
        post(w, wt, GLM_WAKE_KICK);
    pthread_mutex_unlock(&w->mu);
    wake(w);
}

void glm_waiter_deadline(glm_watch *wt, double t)
{
    glm_waiter *w = wt->w;
    pthread_mutex_lock(&w->mu);
    heap_remove(w, wt);
    wt->deadline = t;
    if (t > 0 && !wt->removed)
        heap_add(w, wt);
    pthread_mutex_unlock(&w->mu);
    wake(w);
}

void glm_waiter_release_socket(glm_watch *wt)
{
    glm_waiter *w = wt->w;
    pthread_mutex_lock(&w->mu);
    forget_socket(w, wt);
    pthread_mutex_unlock(&w->mu);
}

static void remove_watch(glm_watch *wt, int self)
{
    glm_waiter *w = wt->w;
    pthread_mutex_lock(&w->mu);
    wt->removed = 1;
    while (!self && w->firing == wt)
        pthread_cond_wait(&w->idle, &w->mu);
    heap_remove(w, wt);
    unlink_ready(w, wt);
    forget_socket(w, wt);
    if (wt->prev)
        wt->prev->next = wt->next;
    else
        w->all = wt->next;
    if (wt->next)
        wt->next->prev = wt->prev;
    wt->next = w->grave;
    wt->prev = NULL;
    w->grave = wt;
    pthread_mutex_unlock(&w->mu);
    if (!self)
        wake(w); /* frees it at the end of the waiter's iteration */
}

void glm_waiter_remove(glm_watch *wt)
{
    if (wt)
        remove_watch(wt, 0);
}

void glm_waiter_remove_self(glm_watch *wt)
{
    remove_watch(wt, 1);
}

void glm_waiter_stop_all(glm_waiter *w)
{
    pthread_mutex_lock(&w->mu);
    for (glm_watch *wt = w->all; wt; wt = wt->next)
        post(w, wt, GLM_WAKE_STOP);
    pthread_mutex_unlock(&w->mu);
    wake(w);
}
