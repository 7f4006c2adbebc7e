/*
 * rendezvous.c - the rendezvous object (rendezvous.h): parameters, create
 * (node 0 listens), run (rendezvous_serve.c on node 0, rendezvous_join.c on
 * the others), stop, free; and the socket helpers every part uses
 * (rendezvous_internal.h: how the parts share the sockets and threads).
 */
#include "comm/rendezvous_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- helpers ----------------------------------------------------------------------- */

void glm_rdv_clean_text(char *dst, size_t dstlen, const unsigned char *src, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < dstlen; i++)
        dst[k++] = (src[i] < 0x20 || src[i] == 0x7f) ? '?' : (char)src[i];
    dst[k] = 0;
}

void glm_rdv_format_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t n)
{
    char host[64], serv[16];
    if (getnameinfo(sa, len, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, n, "(unknown address)");
        return;
    }
    snprintf(out, n, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

void glm_rdv_log(glm_rdv *r, const char *fmt, ...)
{
    if (!r->p.log)
        return;
    char line[GLM_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    r->p.log(r->p.log_user, line);
}

int glm_rdv_ms_until(double deadline)
{
    double ms = (deadline - glm_now()) * 1e3;
    if (ms <= 0)
        return 0;
    return ms > 1e9 ? 1000000000 : (int)ms + 1;
}

int glm_rdv_send_bytes(int fd, const void *buf, size_t n, double deadline)
{
    const char *p = buf;
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
            p += k, n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        struct pollfd pf = {fd, POLLOUT, 0};
        int t = glm_rdv_ms_until(deadline);
        if (t == 0 || poll(&pf, 1, t) == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
    return 0;
}

int glm_rdv_send_frame(int fd, uint32_t type, const void *payload, size_t len, double deadline)
{
    unsigned char buf[RDV_FRAME_HDR + 8 + GLM_RDV_MAX_BLOB];
    GLM_ASSERT(len <= sizeof buf - RDV_FRAME_HDR);
    glm_rdv_put32(buf, type);
    glm_rdv_put32(buf + 4, (uint32_t)len);
    if (len)
        memcpy(buf + RDV_FRAME_HDR, payload, len);
    return glm_rdv_send_bytes(fd, buf, RDV_FRAME_HDR + len, deadline);
}

int glm_rdv_send_text(int fd, uint32_t type, const char *text, double deadline)
{
    return glm_rdv_send_frame(fd, type, text, GLM_MIN(strlen(text), (size_t)GLM_RDV_MAX_TEXT), deadline);
}

int glm_rdv_read_exact(int fd, int wake, void *buf, size_t n, double deadline, char *why, size_t whylen)
{
    char *p = buf;
    while (n) {
        ssize_t k = recv(fd, p, n, MSG_DONTWAIT);
        if (k > 0) {
            p += k, n -= (size_t)k;
            continue;
        }
        if (k == 0)
            return glm_err(why, whylen, "connection closed");
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return glm_err(why, whylen, "%s", strerror(errno));
        struct pollfd pf[2] = {{fd, POLLIN, 0}, {wake, POLLIN, 0}};
        int t = glm_rdv_ms_until(deadline);
        int rc = t ? poll(pf, 2, t) : 0;
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc == 0)
            return glm_err(why, whylen, "timed out");
        if (pf[1].revents)
            return glm_err(why, whylen, "stopped");
    }
    return 0;
}

void glm_rdv_close_fd(int fd)
{
    if (fd < 0)
        return;
    shutdown(fd, SHUT_WR);
    char buf[512];
    for (int i = 0; i < 64 && recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0; i++)
        ;
    close(fd);
}

void glm_rdv_wake(glm_rdv *r)
{
    char c = 1;
    ssize_t k = write(r->wake[1], &c, 1); /* a full pipe is already awake */
    (void)k;
}

void glm_rdv_drain_wake(glm_rdv *r)
{
    char buf[64];
    while (read(r->wake[0], buf, sizeof buf) > 0)
        ;
}

/* ---- create ------------------------------------------------------------------------ */

glm_rdv_params glm_rdv_default_params(void)
{
    glm_rdv_params p;
    memset(&p, 0, sizeof p);
    p.nnodes = 1;
    p.n_local = 1;
    p.blob_bytes = 128; /* GLM_COMM_NCCL_ID_BYTES */
    p.join_timeout_s = 600;
    p.read_timeout_s = 10;
    p.heartbeat_s = 1;
    p.liveness_timeout_s = 10;
    return p;
}

static int check_params(const glm_rdv_params *p, char *err, size_t errlen)
{
    if (p->nnodes < 1 || p->nnodes > GLM_RDV_MAX_NODES)
        return glm_err(err, errlen, "nnodes %d is out of range (1..%d)", p->nnodes, GLM_RDV_MAX_NODES);
    if (p->node_rank < 0 || p->node_rank >= p->nnodes)
        return glm_err(err, errlen, "node rank %d is out of range (0..%d for nnodes %d)", p->node_rank,
                       p->nnodes - 1, p->nnodes);
    if (p->n_local < 1 || p->n_local > GLM_RDV_MAX_LOCAL)
        return glm_err(err, errlen, "%d ranks on this node: out of range (1..%d)", p->n_local, GLM_RDV_MAX_LOCAL);
    if (p->blob_bytes < 1 || p->blob_bytes > GLM_RDV_MAX_BLOB)
        return glm_err(err, errlen, "a blob of %zu bytes: out of range (1..%d)", p->blob_bytes, GLM_RDV_MAX_BLOB);
    if (p->nnodes == 1)
        return GLM_OK;
    if (!p->master_addr || !*p->master_addr)
        return glm_err(err, errlen, "no master address");
    if (p->master_port < (p->node_rank == 0 ? 0 : 1) || p->master_port > 65535)
        return glm_err(err, errlen, "master port %d is out of range (1..65535)", p->master_port);
    if (!(p->join_timeout_s > 0 && p->read_timeout_s > 0 && p->heartbeat_s > 0))
        return glm_err(err, errlen, "the join, read and heartbeat timeouts must be positive");
    if (!(p->liveness_timeout_s > p->heartbeat_s))
        return glm_err(err, errlen, "the liveness timeout (%g s) must exceed the heartbeat interval (%g s)",
                       p->liveness_timeout_s, p->heartbeat_s);
    return GLM_OK;
}

/* Node 0: listens on every address `host` resolves to (up to RDV_MAX_LISTEN),
 * all on one port (the first one's, when the port asked is 0). */
static int listen_all(glm_rdv *r, const char *host, char *err, size_t errlen)
{
    char serv[16];
    snprintf(serv, sizeof serv, "%d", r->p.master_port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, serv, &hints, &res);
    if (gai != 0)
        return glm_err(err, errlen, "cannot resolve %s: %s", host, gai_strerror(gai));
    char last[GLM_ERRLEN] = "no address";
    int port = r->p.master_port;
    for (struct addrinfo *ai = res; ai && r->n_listen < RDV_MAX_LISTEN; ai = ai->ai_next) {
        struct sockaddr_storage sa;
        memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
        if (sa.ss_family == AF_INET)
            ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port);
        else if (sa.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)port);
        else
            continue;
        char addr[80];
        glm_rdv_format_addr((struct sockaddr *)&sa, ai->ai_addrlen, addr, sizeof addr);
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
            bind(fd, (struct sockaddr *)&sa, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
            snprintf(last, sizeof last, "cannot listen on %s: %s", addr, strerror(errno));
            if (fd >= 0)
                close(fd);
            continue;
        }
        if (port == 0) {
            struct sockaddr_storage got;
            socklen_t len = sizeof got;
            getsockname(fd, (struct sockaddr *)&got, &len);
            port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                                  : ((struct sockaddr_in6 *)&got)->sin6_port);
        }
        r->listen_fd[r->n_listen++] = fd;
        glm_rdv_log(r, "node 0 listening on %s for %d other node%s", addr, r->p.nnodes - 1,
                    r->p.nnodes == 2 ? "" : "s");
    }
    freeaddrinfo(res);
    if (r->n_listen == 0)
        return glm_err(err, errlen, "%s", last);
    r->port = port;
    return GLM_OK;
}

glm_rdv *glm_rdv_create(const glm_rdv_params *p, char *err, size_t errlen)
{
    if (check_params(p, err, errlen) != GLM_OK)
        return NULL;
    glm_rdv *r = glm_calloc(1, sizeof *r);
    r->p = *p;
    r->master_addr = p->master_addr ? glm_strdup(p->master_addr) : NULL;
    r->bind_addr = p->bind_addr ? glm_strdup(p->bind_addr) : NULL;
    r->p.master_addr = r->master_addr;
    r->p.bind_addr = r->bind_addr;
    r->port = p->master_port;
    r->wake[0] = r->wake[1] = -1;
    pthread_mutex_init(&r->mu, NULL);
    r->peers = glm_calloc((size_t)p->nnodes, sizeof *r->peers);
    for (int k = 0; k < p->nnodes; k++)
        r->peers[k].fd = -1;
    if (p->nnodes == 1)
        return r;
    if (pipe2(r->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        glm_err(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    if (p->node_rank == 0 && listen_all(r, r->bind_addr ? r->bind_addr : r->master_addr, err, errlen) != GLM_OK)
        goto fail;
    return r;
fail:
    glm_rdv_free(r);
    return NULL;
}

int glm_rdv_port(const glm_rdv *r) { return r->port; }
int glm_rdv_first_rank(const glm_rdv *r) { return r->first_rank; }
int glm_rdv_world(const glm_rdv *r) { return r->world; }

int glm_rdv_run(glm_rdv *r, void *blob, char *err, size_t errlen)
{
    GLM_ASSERT(!r->ran);
    r->ran = 1;
    if (r->p.nnodes == 1) {
        r->first_rank = 0;
        r->world = r->p.n_local;
        return GLM_OK;
    }
    pthread_mutex_lock(&r->mu);
    r->phase = RDV_RUN;
    pthread_mutex_unlock(&r->mu);
    return r->p.node_rank == 0 ? glm_rdv_serve(r, blob, err, errlen) : glm_rdv_join(r, blob, err, errlen);
}

/* ---- stop and free ----------------------------------------------------------------- */

void glm_rdv_stop(glm_rdv *r, const char *why)
{
    pthread_mutex_lock(&r->mu);
    if (r->fate == RDV_FATE_NONE) {
        r->fate = RDV_FATE_STOPPED;
        snprintf(r->why, sizeof r->why, "node %d stopped: %s", r->p.node_rank, why);
        for (int k = 0; r->phase == RDV_WATCH && k < r->p.nnodes; k++)
            if (r->peers[k].fd >= 0)
                glm_rdv_send_text(r->peers[k].fd, RDV_STOP, r->why, 0);
        if (r->wake[1] >= 0)
            glm_rdv_wake(r);
    }
    pthread_mutex_unlock(&r->mu);
}

int glm_rdv_is_stopped(glm_rdv *r)
{
    pthread_mutex_lock(&r->mu);
    int stopped = r->fate != RDV_FATE_NONE;
    pthread_mutex_unlock(&r->mu);
    return stopped;
}

int glm_rdv_failed(glm_rdv *r, char *err, size_t errlen)
{
    pthread_mutex_lock(&r->mu);
    int failed = r->fate != RDV_FATE_NONE;
    if (failed && err && errlen)
        snprintf(err, errlen, "%s", r->why);
    pthread_mutex_unlock(&r->mu);
    return failed;
}

void glm_rdv_free(glm_rdv *r)
{
    if (!r)
        return;
    glm_rdv_stop(r, "shut down");
    pthread_mutex_lock(&r->mu);
    r->quit = 1;
    if (r->wake[1] >= 0)
        glm_rdv_wake(r);
    pthread_mutex_unlock(&r->mu);
    if (r->has_watcher)
        pthread_join(r->watcher, NULL);
    for (int k = 0; k < r->p.nnodes; k++)
        glm_rdv_close_fd(r->peers[k].fd);
    for (int i = 0; i < r->n_listen; i++)
        close(r->listen_fd[i]);
    for (int i = 0; i < 2; i++)
        if (r->wake[i] >= 0)
            close(r->wake[i]);
    pthread_mutex_destroy(&r->mu);
    free(r->peers);
    free(r->master_addr);
    free(r->bind_addr);
    free(r);
}
