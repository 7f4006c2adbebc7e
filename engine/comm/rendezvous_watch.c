/*
 * rendezvous_watch.c - after the rendezvous (rendezvous.h): the watcher
 * thread sends a heartbeat to every peer each heartbeat_s, reads what the
 * peers send, and sets the world's fate at the first peer that closes, resets,
 * sends garbage, stops or stays silent for liveness_timeout_s; node 0 passes
 * the fate on to the others.
 */
#include "comm/rendezvous_internal.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/*
 * The world's fate from a peer (`from`, its node rank): the first one is
 * kept; node 0 passes it on to every other node; on_fail hears of it.
 */
static void world_fails(glm_rdv *r, int from, const char *msg)
{
    pthread_mutex_lock(&r->mu);
    if (r->fate != RDV_FATE_NONE) {
        pthread_mutex_unlock(&r->mu);
        return;
    }
    r->fate = RDV_FATE_FAILED;
    snprintf(r->why, sizeof r->why, "%s", msg);
    for (int k = 1; r->p.node_rank == 0 && k < r->p.nnodes; k++)
        if (k != from && r->peers[k].fd >= 0)
            glm_rdv_send_text(r->peers[k].fd, RDV_STOP, msg, 0);
    pthread_mutex_unlock(&r->mu);
    if (r->p.on_fail)
        r->p.on_fail(r->p.on_fail_user, msg);
}

/* Reads what peer k sent: heartbeats (liveness), a stop (the fate), or the
 * end of the connection. Returns 0, or -1 once the world's fate is set. */
static int read_peer(glm_rdv *r, int k)
{
    glm_rdv_peer *q = &r->peers[k];
    char msg[GLM_ERRLEN];
    ssize_t n = recv(q->fd, q->rx + q->rx_got, sizeof q->rx - q->rx_got, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n <= 0) {
        snprintf(msg, sizeof msg, "node %d dropped out: %s", k, n == 0 ? "connection closed" : strerror(errno));
        world_fails(r, k, msg);
        return -1;
    }
    q->rx_got += (size_t)n;
    q->last_seen = glm_now();
    while (q->rx_got >= RDV_FRAME_HDR) {
        uint32_t type = glm_rdv_get32(q->rx), len = glm_rdv_get32(q->rx + 4);
        if (!((type == RDV_HEARTBEAT && len == 0) || (type == RDV_STOP && len <= GLM_RDV_MAX_TEXT))) {
            snprintf(msg, sizeof msg, "node %d dropped out: it sent bytes that are not a rendezvous frame", k);
            world_fails(r, k, msg);
            return -1;
        }
        if (q->rx_got < RDV_FRAME_HDR + len)
            break;
        if (type == RDV_STOP) {
            if (len)
                glm_rdv_clean_text(msg, sizeof msg, q->rx + RDV_FRAME_HDR, len);
            else
                snprintf(msg, sizeof msg, "node %d stopped", k);
            world_fails(r, k, msg);
            return -1;
        }
        memmove(q->rx, q->rx + RDV_FRAME_HDR + len, q->rx_got - RDV_FRAME_HDR - len);
        q->rx_got -= RDV_FRAME_HDR + len;
    }
    return 0;
}

/* Heartbeats to every peer and the liveness check. Returns -1 once the
 * world's fate is set. */
static int beat(glm_rdv *r)
{
    int bad = -1, bad_errno = 0;
    pthread_mutex_lock(&r->mu);
    for (int k = 0; r->fate == RDV_FATE_NONE && k < r->p.nnodes && bad < 0; k++)
        if (r->peers[k].fd >= 0 && glm_rdv_send_frame(r->peers[k].fd, RDV_HEARTBEAT, NULL, 0, 0) != 0)
            bad = k, bad_errno = errno;
    pthread_mutex_unlock(&r->mu);
    char msg[GLM_ERRLEN];
    if (bad >= 0) {
        snprintf(msg, sizeof msg, "node %d dropped out: cannot send to it: %s", bad,
                 bad_errno == ETIMEDOUT ? "it has not read for a long time" : strerror(bad_errno));
        world_fails(r, bad, msg);
        return -1;
    }
    double now = glm_now();
    for (int k = 0; k < r->p.nnodes; k++)
        if (r->peers[k].fd >= 0 && now - r->peers[k].last_seen > r->p.liveness_timeout_s) {
            snprintf(msg, sizeof msg, "node %d dropped out: no heartbeat for %g s", k, r->p.liveness_timeout_s);
            world_fails(r, k, msg);
            return -1;
        }
    return 0;
}

static void *watch_main(void *arg)
{
    glm_rdv *r = arg;
    struct pollfd pf[1 + GLM_RDV_MAX_NODES];
    int who[1 + GLM_RDV_MAX_NODES];
    double next_beat = glm_now();
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int done = r->fate != RDV_FATE_NONE || r->quit;
        pthread_mutex_unlock(&r->mu);
        if (done)
            break;
        if (glm_now() >= next_beat) {
            if (beat(r) != 0)
                break;
            next_beat += r->p.heartbeat_s;
            if (next_beat < glm_now())
                next_beat = glm_now() + r->p.heartbeat_s;
        }
        int n = 0;
        pf[n] = (struct pollfd){r->wake[0], POLLIN, 0}, who[n++] = -1;
        for (int k = 0; k < r->p.nnodes; k++)
            if (r->peers[k].fd >= 0)
                pf[n] = (struct pollfd){r->peers[k].fd, POLLIN, 0}, who[n++] = k;
        if (poll(pf, (nfds_t)n, glm_rdv_ms_until(next_beat)) <= 0)
            continue;
        if (pf[0].revents)
            glm_rdv_drain_wake(r);
        for (int i = 1; i < n; i++)
            if (pf[i].revents && read_peer(r, who[i]) != 0)
                break;
    }
    return NULL;
}

/*
 * The end of glm_rdv_run once every peer holds its answer: the watcher starts,
 * unless a stop came meanwhile (then the peers hear of it and run fails).
 */
int glm_rdv_start_watch(glm_rdv *r, char *err, size_t errlen)
{
    pthread_mutex_lock(&r->mu);
    if (r->fate != RDV_FATE_NONE) {
        for (int k = 0; k < r->p.nnodes; k++)
            if (r->peers[k].fd >= 0)
                glm_rdv_send_text(r->peers[k].fd, RDV_STOP, r->why, glm_now() + r->p.read_timeout_s);
        glm_err(err, errlen, "%s", r->why);
        pthread_mutex_unlock(&r->mu);
        return GLM_ERR;
    }
    double now = glm_now();
    for (int k = 0; k < r->p.nnodes; k++)
        r->peers[k].last_seen = now;
    r->phase = RDV_WATCH;
    int rc = pthread_create(&r->watcher, NULL, watch_main, r);
    r->has_watcher = rc == 0;
    pthread_mutex_unlock(&r->mu);
    if (rc != 0) {
        glm_rdv_stop(r, "cannot start the liveness watcher");
        return glm_err(err, errlen, "cannot start the liveness watcher: %s", strerror(rc));
    }
    return GLM_OK;
}
