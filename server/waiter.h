/*
 * waiter.h - the one thread that waits for the server's connections: for the
 * engine's events of suspended requests, for clients that hang up, and for
 * deadlines. The HTTP daemon's threads never block (http.c); a request whose
 * answer is not ready suspends its connection, and the waiter fires its watch
 * when something happens, which resumes it.
 *
 * A watch is a callback fire(ctx, why) with, optionally, a client socket to
 * watch for a hang-up and a deadline. The socket stays the caller's: the
 * watch lets go of it (glm_waiter_release_socket, or removing the watch)
 * before the caller closes it, so that a connection costs one descriptor. fire runs on the waiter
 * thread, one call at a time, never after glm_waiter_remove returned:
 *   - GLM_WAKE_KICK      glm_waiter_kick was called (any thread, e.g. the
 *                        engine's notify callback): cheap, coalesced;
 *   - GLM_WAKE_HANGUP    the client closed or reset the connection;
 *   - GLM_WAKE_DEADLINE  the watch's deadline passed (it is then cleared);
 *   - GLM_WAKE_STOP      glm_waiter_stop_all (the server's shutdown ran out).
 * epoll for the sockets and one eventfd, a binary heap of deadlines; memory
 * per watch is a few dozen bytes.
 */
#ifndef GLM_WAITER_H
#define GLM_WAITER_H

#include <stddef.h>

typedef enum { GLM_WAKE_KICK = 1, GLM_WAKE_HANGUP = 2, GLM_WAKE_DEADLINE = 4, GLM_WAKE_STOP = 8 } glm_wake;

typedef struct glm_waiter glm_waiter;
typedef struct glm_watch glm_watch;

glm_waiter *glm_waiter_start(char *err, size_t errlen);
/* Joins the thread; every watch must have been removed. NULL is allowed. */
void glm_waiter_free(glm_waiter *w);

/* A watch of sock (-1: none) calling fire(ctx, why) (why: a set of glm_wake bits). NULL when
 * the socket cannot be watched (the caller answers 503). */
glm_watch *glm_waiter_add(glm_waiter *w, int sock, void (*fire)(void *ctx, unsigned why), void *ctx);

/* Any thread: the socket is watched no more; call it before the socket is closed when the
 * watch outlives it. */
void glm_waiter_release_socket(glm_watch *wt);

/* Any thread: fire with GLM_WAKE_KICK soon (several kicks before it runs fire once). */
void glm_waiter_kick(glm_watch *wt);

/* Any thread: fire with GLM_WAKE_DEADLINE at glm_now() time t (0: no deadline). */
void glm_waiter_deadline(glm_watch *wt, double t);

/* Any thread but the waiter's (not from fire): after it returns, fire is not running and is
 * never called again, and the socket is watched no more. NULL is allowed. */
void glm_waiter_remove(glm_watch *wt);

/* From fire, on its own watch: glm_waiter_remove without waiting for itself. */
void glm_waiter_remove_self(glm_watch *wt);

/* Fires every watch with GLM_WAKE_STOP (the shutdown's grace period ran out). */
void glm_waiter_stop_all(glm_waiter *w);

#endif
