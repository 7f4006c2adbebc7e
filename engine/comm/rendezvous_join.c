/*
 * rendezvous_join.c - the other nodes' side of glm_rdv_run (rendezvous.h):
 * connect to node 0 (every address the master address resolves to, retried
 * until the join timeout), send the hello, wait for the answer.
 */
#include "comm/rendezvous_internal.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void put64(unsigned char *b, uint64_t v)
{
    glm_rdv_put32(b, (uint32_t)(v >> 32));
    glm_rdv_put32(b + 4, (uint32_t)v);
}

/* One try at node 0: each address the master address resolves to, until one
 * accepts. Returns the socket, -1 (why: the last error), or -2 (woken). */
static int try_connect(glm_rdv *r, double deadline, char *why, size_t whylen)
{
    char serv[16];
    snprintf(serv, sizeof serv, "%d", r->p.master_port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int gai = getaddrinfo(r->master_addr, serv, &hints, &res);
    if (gai != 0) {
        snprintf(why, whylen, "cannot resolve %s: %s", r->master_addr, gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(why, whylen, "socket: %s", strerror(errno));
            continue;
        }
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
            struct pollfd pf[2] = {{fd, POLLOUT, 0}, {r->wake[0], POLLIN, 0}};
            int got;
            do
                got = poll(pf, 2, glm_rdv_ms_until(deadline));
            while (got < 0 && errno == EINTR);
            int soerr = 0;
            socklen_t len = sizeof soerr;
            if (got > 0 && pf[1].revents) {
                close(fd);
                fd = -2;
                break;
            }
            if (got <= 0)
                soerr = ETIMEDOUT;
            else
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
            rc = soerr ? -1 : 0;
            errno = soerr;
        }
        if (rc != 0) {
            snprintf(why, whylen, "%s", strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* The stop that came while this joiner waited: node 0 hears of it. */
static int joiner_stopped(glm_rdv *r, int fd, char *err, size_t errlen)
{
    pthread_mutex_lock(&r->mu);
    if (fd >= 0)
        glm_rdv_send_text(fd, RDV_STOP, r->why, glm_now() + r->p.read_timeout_s);
    glm_err(err, errlen, "%s", r->why);
    pthread_mutex_unlock(&r->mu);
    glm_rdv_close_fd(fd);
    return GLM_ERR;
}

/*
 * One connection's worth of joining: hello, then node 0's answer. Returns
 * GLM_OK (joined), GLM_ERR (refused, stopped: final), or 1 when node 0 closed
 * the connection without an answer (it restarted, or dropped us: try again).
 */
static int hello(glm_rdv *r, int fd, const char *where, void *blob, char *err, size_t errlen)
{
    unsigned char h[RDV_HELLO_BYTES];
    memcpy(h, RDV_MAGIC, RDV_MAGIC_BYTES);
    glm_rdv_put32(h + 8, RDV_VERSION);
    glm_rdv_put32(h + 12, (uint32_t)r->p.nnodes);
    glm_rdv_put32(h + 16, (uint32_t)r->p.node_rank);
    glm_rdv_put32(h + 20, (uint32_t)r->p.n_local);
    put64(h + 24, r->p.fingerprint);
    glm_rdv_put32(h + 32, (uint32_t)r->p.blob_bytes);
    char why[128];
    if (glm_rdv_send_bytes(fd, h, sizeof h, glm_now() + r->p.read_timeout_s) != 0) {
        glm_err(err, errlen, "cannot send the hello to node 0 at %s: %s", where, strerror(errno));
        close(fd);
        return 1;
    }
    unsigned char hdr[RDV_FRAME_HDR];
    double answer_by = glm_now() + r->p.join_timeout_s + r->p.read_timeout_s;
    if (glm_rdv_read_exact(fd, r->wake[0], hdr, RDV_FRAME_HDR, answer_by, why, sizeof why) != 0) {
        if (glm_rdv_is_stopped(r))
            return joiner_stopped(r, fd, err, errlen);
        close(fd);
        if (strcmp(why, "timed out") == 0)
            return glm_err(err, errlen, "node 0 at %s did not answer within %g s", where,
                           r->p.join_timeout_s + r->p.read_timeout_s);
        glm_err(err, errlen, "node 0 at %s closed the connection without an answer: %s", where, why);
        return 1;
    }
    uint32_t type = glm_rdv_get32(hdr), len = glm_rdv_get32(hdr + 4);
    int ok = (type == RDV_WELCOME && len == 8 + r->p.blob_bytes) ||
             ((type == RDV_REFUSE || type == RDV_STOP) && len <= GLM_RDV_MAX_TEXT);
    unsigned char payload[8 + GLM_RDV_MAX_BLOB + GLM_RDV_MAX_TEXT];
    if (!ok) {
        close(fd);
        return glm_err(err, errlen,
                       "the answer from %s is not a glm-server rendezvous answer (is another program listening on "
                       "that port?)",
                       where);
    }
    if (glm_rdv_read_exact(fd, r->wake[0], payload, len, glm_now() + r->p.read_timeout_s, why, sizeof why) != 0) {
        if (glm_rdv_is_stopped(r))
            return joiner_stopped(r, fd, err, errlen);
        close(fd);
        return glm_err(err, errlen, "node 0's answer stopped half-way: %s", why);
    }
    if (type != RDV_WELCOME) {
        char text[GLM_RDV_MAX_TEXT + 1];
        glm_rdv_clean_text(text, sizeof text, payload, len);
        close(fd);
        return glm_err(err, errlen, "%s", text);
    }
    int first = (int)glm_rdv_get32(payload), world = (int)glm_rdv_get32(payload + 4);
    if (first < 1 || world < 0 || first > world - r->p.n_local) {
        close(fd);
        return glm_err(err, errlen, "node 0 answered with ranks %d..%d of %d, which is impossible", first,
                       first + r->p.n_local - 1, world);
    }
    memcpy(blob, payload + 8, r->p.blob_bytes);
    r->first_rank = first;
    r->world = world;
    r->peers[0].fd = fd;
    return GLM_OK;
}

int glm_rdv_join(glm_rdv *r, void *blob, char *err, size_t errlen)
{
    double deadline = glm_now() + r->p.join_timeout_s, backoff = 0.1;
    char last[GLM_ERRLEN] = "", where[300];
    snprintf(where, sizeof where, strchr(r->master_addr, ':') ? "[%s]:%d" : "%s:%d", r->master_addr, r->port);
    int logged = 0;
    for (;;) {
        if (glm_rdv_is_stopped(r))
            return joiner_stopped(r, -1, err, errlen);
        int fd = try_connect(r, GLM_MIN(deadline, glm_now() + r->p.read_timeout_s), last, sizeof last);
        if (fd >= 0) {
            int rc = hello(r, fd, where, blob, last, sizeof last);
            if (rc == GLM_OK)
                return glm_rdv_start_watch(r, err, errlen);
            if (rc == GLM_ERR)
                return glm_err(err, errlen, "%s", last);
        }
        if (fd == -2)
            continue;
        if (glm_now() >= deadline)
            return glm_err(err, errlen, "could not join node 0 at %s within %g s: %s", where, r->p.join_timeout_s,
                           last);
        if (!logged++)
            glm_rdv_log(r, "waiting for node 0 at %s (%s)", where, last);
        struct pollfd pf = {r->wake[0], POLLIN, 0};
        poll(&pf, 1, glm_rdv_ms_until(GLM_MIN(deadline, glm_now() + backoff)));
        backoff = GLM_MIN(backoff * 2, 1.0);
    }
}
