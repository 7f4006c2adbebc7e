/*
 * rendezvous_internal.h - what the parts of the rendezvous (rendezvous.h)
 * share: the wire format, the object, and the socket helpers. Seen by
 * engine/comm/rendezvous*.c only.
 *   rendezvous.c        parameters, create, run, stop, free; the helpers below
 *   rendezvous_serve.c  node 0: accepting, telling nodes from other connections
 *   rendezvous_join.c   the other nodes: connecting, the hello, the answer
 *   rendezvous_watch.c  after the rendezvous: heartbeats, liveness, the fate
 *
 * Every socket is non-blocking and every wait is a poll with a deadline that
 * also watches a self-pipe (`wake`), so that glm_rdv_stop and glm_rdv_free
 * reach a thread blocked in glm_rdv_run or in the watcher at once. Until the
 * watcher starts (phase RDV_WATCH), only the thread in glm_rdv_run touches the
 * sockets; after, the watcher alone reads, and every send holds `mu`
 * (heartbeats, stops and the relay of a fate must not interleave within a
 * frame). Sends after the rendezvous never wait: a frame that does not fit in
 * the socket's buffer at once means the peer has not read for a long time,
 * and it counts as gone.
 */
#ifndef GLM_RENDEZVOUS_INTERNAL_H
#define GLM_RENDEZVOUS_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "comm/rendezvous.h"
#include "core/util.h"

/* The wire: the hello (joiner -> node 0), then frames both ways; big-endian. */
#define RDV_MAGIC "\x89glm-rdv" /* 8 bytes; the high first byte sets it apart from text protocols */
#define RDV_MAGIC_BYTES 8
#define RDV_VERSION 1
#define RDV_HELLO_BYTES 36     /* magic, version, nnodes, node_rank, n_local, fingerprint (8), blob_bytes */
#define RDV_FRAME_HDR 8        /* type, payload length */
#define RDV_MAX_PENDING 64     /* accepted connections without a complete hello yet */
#define RDV_MAX_LISTEN 4       /* addresses node 0 listens on */

/* frame types */
enum { RDV_WELCOME = 1, RDV_REFUSE, RDV_HEARTBEAT, RDV_STOP };
/* glm_rdv.phase and glm_rdv.fate */
enum { RDV_CREATED, RDV_RUN, RDV_WATCH };      /* RDV_WATCH: the watcher runs */
enum { RDV_FATE_NONE, RDV_FATE_STOPPED, RDV_FATE_FAILED };

/* A connection to another node. */
typedef struct {
    int fd;                /* -1: none */
    char addr[80];         /* the peer's "host:port" (node 0's messages) */
    int n_local;
    unsigned char rx[RDV_FRAME_HDR + GLM_RDV_MAX_TEXT]; /* the watcher's partial frame */
    size_t rx_got;
    double last_seen;      /* glm_now() of the last bytes from it */
} glm_rdv_peer;

struct glm_rdv {
    glm_rdv_params p;      /* master_addr and bind_addr point at the copies below */
    char *master_addr, *bind_addr;
    int port;
    int listen_fd[RDV_MAX_LISTEN], n_listen;
    int wake[2];           /* self-pipe: [0] polled, [1] written by stop and free */
    glm_rdv_peer *peers;   /* [nnodes]; node 0 holds 1..nnodes-1, a joiner holds [0] */
    int first_rank, world;
    int ran;               /* glm_rdv_run was called */
    pthread_t watcher;
    int has_watcher;
    pthread_mutex_t mu;    /* guards phase, fate, why, quit, and every send once phase is RDV_WATCH */
    int phase;
    int fate;
    char why[GLM_ERRLEN];
    int quit;              /* glm_rdv_free: the watcher ends */
};

static inline void glm_rdv_put32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24), b[1] = (unsigned char)(v >> 16), b[2] = (unsigned char)(v >> 8),
    b[3] = (unsigned char)v;
}

static inline uint32_t glm_rdv_get32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Text from the wire into a C string: control bytes become '?', so that a
 * peer's message cannot forge log lines or terminal escapes. */
void glm_rdv_clean_text(char *dst, size_t dstlen, const unsigned char *src, size_t n);
/* "1.2.3.4:5" or "[::1]:5" */
void glm_rdv_format_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t n);
/* One line to params.log, if there is one. */
void glm_rdv_log(glm_rdv *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Milliseconds from now until deadline (glm_now() clock), rounded up, >= 0. */
int glm_rdv_ms_until(double deadline);
/* Sends all n bytes, waiting for room until deadline (a past deadline: no
 * waiting). Returns 0, or -1 with errno (ETIMEDOUT when it would wait past
 * the deadline; some bytes may have gone: the stream is then unusable). */
int glm_rdv_send_bytes(int fd, const void *buf, size_t n, double deadline);
/* One frame (payload up to 8 + GLM_RDV_MAX_BLOB bytes); as send_bytes. */
int glm_rdv_send_frame(int fd, uint32_t type, const void *payload, size_t len, double deadline);
/* A REFUSE or STOP frame with one line of text (cut at GLM_RDV_MAX_TEXT). */
int glm_rdv_send_text(int fd, uint32_t type, const char *text, double deadline);
/* Reads exactly n bytes before deadline, unless the wake pipe fires. Returns
 * 0, or GLM_ERR with why: "timed out", "connection closed", the socket's
 * error, or "stopped" (the wake pipe; the caller checks the fate). */
int glm_rdv_read_exact(int fd, int wake, void *buf, size_t n, double deadline, char *why, size_t whylen);
/* Closes fd after sending what is queued and reading what is unread, so that
 * the kernel ends the stream with FIN (a reset may drop our last frame). */
void glm_rdv_close_fd(int fd);
void glm_rdv_wake(glm_rdv *r);
void glm_rdv_drain_wake(glm_rdv *r);
/* Whether the fate is set (a stop, or a peer's end). */
int glm_rdv_is_stopped(glm_rdv *r);

/* glm_rdv_run's halves, and its end once every node has its answer: the
 * watcher starts, unless a stop came meanwhile (the peers then hear of it). */
int glm_rdv_serve(glm_rdv *r, const void *blob, char *err, size_t errlen);
int glm_rdv_join(glm_rdv *r, void *blob, char *err, size_t errlen);
int glm_rdv_start_watch(glm_rdv *r, char *err, size_t errlen);

#endif
