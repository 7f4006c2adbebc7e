/*
 * rendezvous_serve.c - node 0's side of glm_rdv_run (rendezvous.h): one poll
 * loop over the listening sockets, the accepted connections whose hello is
 * not complete yet (each with a read deadline) and the nodes that said hello
 * (a stop or a disconnect before the end); then the answers in node order.
 * What is refused quietly and what fails the rendezvous: rendezvous.h.
 */
#include "comm/rendezvous_internal.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uint64_t get64(const unsigned char *b) { return (uint64_t)glm_rdv_get32(b) << 32 | glm_rdv_get32(b + 4); }

typedef struct {
    int fd;
    char addr[80];
    unsigned char buf[RDV_HELLO_BYTES];
    size_t got;
    double deadline;       /* the complete hello is due */
} pending;

typedef struct {
    glm_rdv *r;
    pending pend[RDV_MAX_PENDING];
    int n_pend;
    int joined;
    int n_closed;          /* connections closed without a node joining (refused, or a node left) */
    char note[GLM_ERRLEN / 2]; /* the last of them */
} server;

/* A connection that is not a node: closed, logged, remembered for the
 * timeout's message. Returns 0 (the rendezvous goes on). */
static int refuse_quietly(server *s, int i, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse_quietly(server *s, int i, const char *fmt, ...)
{
    char why[GLM_ERRLEN / 4];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(s->note, sizeof s->note, "%s %s", s->pend[i].addr, why);
    s->n_closed++;
    glm_rdv_log(s->r, "refused a connection from %s", s->note);
    close(s->pend[i].fd);
    s->pend[i] = s->pend[--s->n_pend];
    return 0;
}

/*
 * The rendezvous fails: `offender` (a pending index, or -1) is told
 * "refused by node 0: msg", every other connection "the rendezvous failed at
 * node 0: msg" (or msg itself when it is a node's stop), as a stop (a node
 * that already has its answer hears of it through its watcher; a pending
 * connection only if its socket has room at once); all are closed.
 */
static int fail_all(server *s, int offender, int relay_as_is, const char *msg, char *err, size_t errlen)
{
    glm_rdv *r = s->r;
    char text[GLM_ERRLEN + 64];
    double deadline = glm_now() + r->p.read_timeout_s;
    if (offender >= 0) {
        snprintf(text, sizeof text, "refused by node 0: %s", msg);
        glm_rdv_send_text(s->pend[offender].fd, RDV_REFUSE, text, deadline);
    }
    snprintf(text, sizeof text, relay_as_is ? "%s" : "the rendezvous failed at node 0: %s", msg);
    for (int k = 1; k < r->p.nnodes; k++)
        if (r->peers[k].fd >= 0) {
            glm_rdv_send_text(r->peers[k].fd, RDV_STOP, text, deadline);
            glm_rdv_close_fd(r->peers[k].fd);
            r->peers[k].fd = -1;
        }
    for (int i = 0; i < s->n_pend; i++) { /* a node whose hello is under way hears of it too */
        if (i != offender)
            glm_rdv_send_text(s->pend[i].fd, RDV_STOP, text, 0);
        glm_rdv_close_fd(s->pend[i].fd);
    }
    s->n_pend = 0;
    return glm_err(err, errlen, "%s", msg);
}

/*
 * More bytes of pending connection i. Returns 0 (waiting, refused quietly,
 * or joined), or GLM_ERR when a node's hello fails the rendezvous.
 */
static int read_hello(server *s, int i, char *err, size_t errlen)
{
    glm_rdv *r = s->r;
    pending *c = &s->pend[i];
    ssize_t k = recv(c->fd, c->buf + c->got, RDV_HELLO_BYTES - c->got, MSG_DONTWAIT);
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (k == 0 && c->got == 0)
        return refuse_quietly(s, i, "closed it without a word");
    if (k == 0)
        return refuse_quietly(s, i, "closed it after %zu bytes of a %d-byte hello", c->got, RDV_HELLO_BYTES);
    if (k < 0)
        return refuse_quietly(s, i, "failed: %s", strerror(errno));
    c->got += (size_t)k;
    if (memcmp(c->buf, RDV_MAGIC, GLM_MIN(c->got, (size_t)RDV_MAGIC_BYTES)) != 0) {
        char text[24];
        glm_rdv_clean_text(text, sizeof text, c->buf, GLM_MIN(c->got, (size_t)16));
        return refuse_quietly(s, i, "sent bytes that are not a rendezvous hello (\"%s\")", text);
    }
    char msg[GLM_ERRLEN];
    if (c->got >= RDV_MAGIC_BYTES + 4 && glm_rdv_get32(c->buf + 8) != RDV_VERSION) {
        snprintf(msg, sizeof msg,
                 "a node at %s speaks rendezvous protocol %u, node 0 speaks %d (another glm-server version)",
                 c->addr, glm_rdv_get32(c->buf + 8), RDV_VERSION);
        return fail_all(s, i, 0, msg, err, errlen);
    }
    if (c->got < RDV_HELLO_BYTES)
        return 0;
    uint32_t nn = glm_rdv_get32(c->buf + 12), node = glm_rdv_get32(c->buf + 16), n_local = glm_rdv_get32(c->buf + 20);
    uint64_t fp = get64(c->buf + 24);
    uint32_t blob = glm_rdv_get32(c->buf + 32);
    int bad = 1;
    if (nn != (uint32_t)r->p.nnodes)
        snprintf(msg, sizeof msg, "node %u (%s) was started with nnodes %u, node 0 with nnodes %d", node, c->addr, nn,
                 r->p.nnodes);
    else if (node < 1 || node >= nn)
        snprintf(msg, sizeof msg, "a node (%s) was started with node rank %u, outside 1..%d for nnodes %d", c->addr,
                 node, r->p.nnodes - 1, r->p.nnodes);
    else if (n_local < 1 || n_local > GLM_RDV_MAX_LOCAL)
        snprintf(msg, sizeof msg, "node %u (%s) runs %u ranks, outside 1..%d", node, c->addr, n_local,
                 GLM_RDV_MAX_LOCAL);
    else if (blob != r->p.blob_bytes)
        snprintf(msg, sizeof msg, "node %u (%s) expects a %u-byte blob, node 0 publishes %zu bytes", node, c->addr,
                 blob, r->p.blob_bytes);
    else if (fp != r->p.fingerprint)
        snprintf(msg, sizeof msg,
                 "node %u (%s) was started with another model or flags (fingerprint %016llx, node 0 has %016llx)",
                 node, c->addr, (unsigned long long)fp, (unsigned long long)r->p.fingerprint);
    else if (r->peers[node].fd >= 0)
        snprintf(msg, sizeof msg,
                 "node %u joined twice (from %s and from %s): two nodes were started with node rank %u", node,
                 r->peers[node].addr, c->addr, node);
    else
        bad = 0;
    if (bad)
        return fail_all(s, i, 0, msg, err, errlen);
    glm_rdv_peer *q = &r->peers[node];
    q->fd = c->fd;
    q->n_local = (int)n_local;
    snprintf(q->addr, sizeof q->addr, "%s", c->addr);
    s->pend[i] = s->pend[--s->n_pend];
    s->joined++;
    glm_rdv_log(r, "node %u joined from %s (%d of %d nodes)", node, q->addr, s->joined + 1, r->p.nnodes);
    return 0;
}

/*
 * Node k, which said hello, sent something before its answer or closed the
 * connection: a stop fails the rendezvous, a closed connection frees its
 * node rank (it may join again). Returns 0 or GLM_ERR.
 */
static int joined_speaks(server *s, int k, char *err, size_t errlen)
{
    glm_rdv *r = s->r;
    glm_rdv_peer *q = &r->peers[k];
    unsigned char hdr[RDV_FRAME_HDR];
    char why[128], msg[GLM_ERRLEN];
    ssize_t n = recv(q->fd, hdr, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n <= 0) {
        glm_rdv_log(r, "node %d (%s) left before the rendezvous completed: %s", k, q->addr,
                    n == 0 ? "connection closed" : strerror(errno));
        snprintf(s->note, sizeof s->note, "node %d (%s) left before the rendezvous completed", k, q->addr);
        s->n_closed++;
        close(q->fd);
        q->fd = -1;
        s->joined--;
        return 0;
    }
    double deadline = glm_now() + r->p.read_timeout_s;
    if (glm_rdv_read_exact(q->fd, r->wake[0], hdr, RDV_FRAME_HDR, deadline, why, sizeof why) == 0 &&
        glm_rdv_get32(hdr) == RDV_STOP && glm_rdv_get32(hdr + 4) <= GLM_RDV_MAX_TEXT) {
        unsigned char text[GLM_RDV_MAX_TEXT];
        uint32_t len = glm_rdv_get32(hdr + 4);
        if (glm_rdv_read_exact(q->fd, r->wake[0], text, len, deadline, why, sizeof why) == 0) {
            glm_rdv_clean_text(msg, sizeof msg, text, len);
            return fail_all(s, -1, 1, msg, err, errlen);
        }
    }
    snprintf(msg, sizeof msg, "node %d (%s) sent something other than a stop before the rendezvous completed", k,
             q->addr);
    return fail_all(s, -1, 0, msg, err, errlen);
}

static void accept_one(server *s, int lfd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    int fd = accept4(lfd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return; /* gone already, or out of descriptors: the next poll tries again */
    if (s->n_pend == RDV_MAX_PENDING) { /* the oldest silent one makes room */
        int oldest = 0;
        for (int i = 1; i < s->n_pend; i++)
            if (s->pend[i].deadline < s->pend[oldest].deadline)
                oldest = i;
        refuse_quietly(s, oldest, "was dropped: %d connections without a hello", RDV_MAX_PENDING);
    }
    pending *c = &s->pend[s->n_pend++];
    memset(c, 0, sizeof *c);
    c->fd = fd;
    glm_rdv_format_addr((struct sockaddr *)&sa, len, c->addr, sizeof c->addr);
    c->deadline = glm_now() + s->r->p.read_timeout_s;
}

/* "node 1 of 2 did not join" / "nodes 1, 3 of 4 did not join" */
static void missing_nodes(glm_rdv *r, char *out, size_t n)
{
    int missing = 0, listed = 0;
    size_t used = 0;
    char list[96] = "";
    for (int k = 1; k < r->p.nnodes; k++)
        if (r->peers[k].fd < 0) {
            missing++;
            if (listed < 8 && used < sizeof list - 16)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%d", listed++ ? ", " : "", k);
        }
    snprintf(out, n, "node%s %s%s of %d", missing > 1 ? "s" : "", list, missing > listed ? ", ..." : "", r->p.nnodes);
}

int glm_rdv_serve(glm_rdv *r, const void *blob, char *err, size_t errlen)
{
    server *s = glm_calloc(1, sizeof *s);
    s->r = r;
    int rc = GLM_ERR;
    double deadline = glm_now() + r->p.join_timeout_s;
    char msg[GLM_ERRLEN];
    struct pollfd pf[1 + RDV_MAX_LISTEN + RDV_MAX_PENDING + GLM_RDV_MAX_NODES];
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int stopped = r->fate != RDV_FATE_NONE;
        snprintf(msg, sizeof msg, "%s", r->why);
        pthread_mutex_unlock(&r->mu);
        if (stopped) {
            fail_all(s, -1, 1, msg, err, errlen);
            goto out;
        }
        if (s->joined == r->p.nnodes - 1)
            break;
        if (glm_now() >= deadline) {
            char who[128], refused[sizeof s->note + 64] = "";
            missing_nodes(r, who, sizeof who);
            if (s->n_closed)
                snprintf(refused, sizeof refused, "; %d connection%s closed without a node joining, the last: %s",
                         s->n_closed, s->n_closed > 1 ? "s were" : " was", s->note);
            char timeout[2 * GLM_ERRLEN];
            snprintf(timeout, sizeof timeout, "%s did not join within %g s%s", who, r->p.join_timeout_s, refused);
            fail_all(s, -1, 0, timeout, err, errlen);
            goto out;
        }
        double wake_at = deadline;
        int n = 0;
        pf[n++] = (struct pollfd){r->wake[0], POLLIN, 0};
        for (int i = 0; i < r->n_listen; i++)
            pf[n++] = (struct pollfd){r->listen_fd[i], POLLIN, 0};
        for (int i = 0; i < s->n_pend; i++) {
            pf[n++] = (struct pollfd){s->pend[i].fd, POLLIN, 0};
            wake_at = GLM_MIN(wake_at, s->pend[i].deadline);
        }
        for (int k = 1; k < r->p.nnodes; k++)
            if (r->peers[k].fd >= 0)
                pf[n++] = (struct pollfd){r->peers[k].fd, POLLIN, 0};
        int got = poll(pf, (nfds_t)n, glm_rdv_ms_until(wake_at));
        if (got < 0 && errno != EINTR) {
            snprintf(msg, sizeof msg, "poll: %s", strerror(errno));
            fail_all(s, -1, 0, msg, err, errlen);
            goto out;
        }
        /* The pending and joined sets change below: read the events first. */
        int n_pend = s->n_pend, pend_fd[RDV_MAX_PENDING], pend_ev[RDV_MAX_PENDING];
        int ev_joined[GLM_RDV_MAX_NODES] = {0};
        int j = 1 + r->n_listen;
        for (int i = 0; i < n_pend; i++, j++)
            pend_fd[i] = s->pend[i].fd, pend_ev[i] = got > 0 ? pf[j].revents : 0;
        for (int k = 1; k < r->p.nnodes; k++)
            if (r->peers[k].fd >= 0) {
                int ev = pf[j++].revents;
                ev_joined[k] = got > 0 ? ev : 0;
            }
        if (got > 0 && pf[0].revents)
            glm_rdv_drain_wake(r);
        for (int k = 1; k < r->p.nnodes; k++)
            if (ev_joined[k] && r->peers[k].fd >= 0 && joined_speaks(s, k, err, errlen) != 0)
                goto out;
        for (int i = 0; i < n_pend; i++) {
            if (!pend_ev[i])
                continue;
            int at = -1;
            for (int m = 0; m < s->n_pend; m++)
                if (s->pend[m].fd == pend_fd[i])
                    at = m;
            if (at >= 0 && read_hello(s, at, err, errlen) != 0)
                goto out;
        }
        double now = glm_now();
        for (int i = s->n_pend - 1; i >= 0; i--)
            if (now >= s->pend[i].deadline)
                refuse_quietly(s, i, "sent %s within %g s", s->pend[i].got ? "only part of a hello" : "no hello",
                               r->p.read_timeout_s);
        for (int i = 0; got > 0 && i < r->n_listen; i++)
            if (pf[1 + i].revents)
                accept_one(s, r->listen_fd[i]);
    }
    /* Every node said hello: the ranks in node order, then the answers. */
    int first[GLM_RDV_MAX_NODES];
    r->world = r->p.n_local;
    for (int k = 1; k < r->p.nnodes; k++)
        first[k] = r->world, r->world += r->peers[k].n_local;
    r->first_rank = 0;
    unsigned char payload[8 + GLM_RDV_MAX_BLOB];
    memcpy(payload + 8, blob, r->p.blob_bytes);
    glm_rdv_put32(payload + 4, (uint32_t)r->world);
    double send_by = glm_now() + r->p.read_timeout_s;
    for (int k = 1; k < r->p.nnodes; k++) {
        glm_rdv_put32(payload, (uint32_t)first[k]);
        if (glm_rdv_send_frame(r->peers[k].fd, RDV_WELCOME, payload, 8 + r->p.blob_bytes, send_by) != 0) {
            snprintf(msg, sizeof msg, "node %d dropped out during the rendezvous: %s", k, strerror(errno));
            fail_all(s, -1, 1, msg, err, errlen);
            goto out;
        }
    }
    for (int i = 0; i < r->n_listen; i++) /* late comers now get "connection refused" */
        close(r->listen_fd[i]);
    r->n_listen = 0;
    for (int i = 0; i < s->n_pend; i++)
        close(s->pend[i].fd);
    s->n_pend = 0;
    rc = glm_rdv_start_watch(r, err, errlen);
out:
    free(s);
    return rc;
}
