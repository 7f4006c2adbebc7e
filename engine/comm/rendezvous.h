/*
 * rendezvous.h - the meeting of the nodes of a multi-node tensor-parallel
 * world, and their liveness afterwards: the control plane over TCP, beside
 * the data plane (NCCL).
 *
 * The same binary runs on every node with the same nnodes, master address and
 * port (vLLM's and torchrun's --nnodes, --node-rank, --master-addr,
 * --master-port). Node 0 listens on the master address; every other node
 * connects to it and sends a hello; once all nnodes - 1 have said hello, node
 * 0 answers each with the world's blob (the NCCL unique id: opaque bytes of a
 * size fixed by the caller) and where that node's ranks start. The ranks are
 * numbered in node order: node k runs [first_rank, first_rank + n_local),
 * where first_rank is the sum of the n_local of nodes 0..k-1. Nothing of the
 * model crosses this channel: hello, blob, heartbeats, stop.
 *
 * The hello (joiner -> node 0, 36 bytes, big-endian): an 8-byte magic, the
 * protocol version, nnodes, node_rank, n_local, the caller's 64-bit
 * fingerprint (a hash of what every node must agree on: the model's config,
 * the tensor-parallel size, ...) and the blob size the joiner expects. Then
 * both directions carry frames: a type, a length, a payload (WELCOME: first
 * rank, world size, blob; REFUSE and STOP: one line of text; HEARTBEAT).
 *
 * What node 0 refuses quietly, and what fails the rendezvous:
 *   - a connection that cannot be told to be a node is closed and forgotten,
 *     and node 0 keeps waiting for the real nodes: bytes that do not start
 *     with the magic (a port scanner, curl, an HTTP request, random bytes), a
 *     connection closed before a complete hello (a hello that stops half-way),
 *     no complete hello within read_timeout_s of being accepted (a silent
 *     peer); at most 64 such connections are held, the oldest is dropped
 *     first. Each is reported through `log`, and the join timeout's message
 *     counts them and names the last, so a node that keeps failing that way
 *     is not invisible.
 *   - a complete hello, or a magic followed by another protocol version, comes
 *     from a glm-server that was started wrong: another protocol version,
 *     another nnodes, a node_rank out of [1, nnodes), an n_local out of
 *     [1, GLM_RDV_MAX_LOCAL], another blob size, another fingerprint, or the
 *     node_rank of a node already connected. That fails the rendezvous on
 *     every node: node 0 returns GLM_ERR with the reason, the offending node
 *     gets "refused by node 0: <reason>", the nodes already waiting get "the
 *     rendezvous failed at node 0: <reason>".
 *   - a node that said hello and then closes its connection before the end
 *     (it crashed, or was restarted) is forgotten: its node_rank may join
 *     again. A node stopped with glm_rdv_stop while waiting fails the
 *     rendezvous with its reason.
 *
 * Timeouts (seconds; glm_rdv_default_params; every one configurable):
 *   - join_timeout_s, 600: how long node 0 waits for every node to join
 *     ("node 1 of 2 did not join within 600 s"), and how long a joiner keeps
 *     trying to reach node 0 (node 0 may start later: refused connections,
 *     unreachable hosts, names that do not resolve yet, and a connection
 *     node 0 closes without an answer are retried, every 0.1 s at first, then
 *     every second). A joiner connected to node 0 waits for its answer up to
 *     join_timeout_s + read_timeout_s after its hello (node 0 answers when the
 *     last node has joined, or fails within its own join timeout). 600 s is
 *     torchrun's c10d rendezvous join timeout: it covers nodes whose start is
 *     minutes apart (schedulers, image pulls); the rendezvous is meant to run
 *     before the weights load, so that loading time is not part of it.
 *   - read_timeout_s, 10: a peer accepted by node 0 has that long to send its
 *     complete hello (after which it is dropped as above); every other
 *     message read, and every connection attempt, has the same deadline.
 *   - heartbeat_s, 1, and liveness_timeout_s, 10: after the rendezvous every
 *     node sends a heartbeat to its peers every heartbeat_s, and a peer from
 *     which nothing arrived for liveness_timeout_s has dropped out. A process
 *     that dies is seen at once (its kernel closes the connection); the
 *     timeout is for a machine or a network that goes silent. Ten missed
 *     heartbeats ride out a stall of a few seconds.
 *
 * Liveness: after a successful glm_rdv_run the connections stay open (node 0
 * holds one to each node; each node one to node 0) and one watcher thread per
 * node sends the heartbeats and reads its peers. The first of these events
 * is the world's fate, reported once through on_fail(user, why):
 *   - a peer closes the connection, resets it, sends something that is not a
 *     frame, or is silent for liveness_timeout_s:
 *     "node 1 dropped out: connection closed" (or the error, or "no heartbeat
 *     for 10 s");
 *   - a peer calls glm_rdv_stop (or glm_rdv_free, "shut down"):
 *     "node 1 stopped: <its reason>".
 * Node 0 passes the fate on to every other node as a stop carrying the same
 * message, so every node of the world learns of any node's end with its
 * cause. After the fate the watcher exits; the connections stay open until
 * glm_rdv_free.
 *
 * Every function that can fail returns GLM_OK or GLM_ERR and writes one line
 * into err (errlen bytes). Nothing here calls exit or raises SIGPIPE. Plain
 * POSIX sockets and one pthread; no CUDA.
 */
#ifndef GLM_RENDEZVOUS_H
#define GLM_RENDEZVOUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GLM_RDV_MAX_NODES 256    /* nnodes */
#define GLM_RDV_MAX_LOCAL 65536  /* ranks of one node */
#define GLM_RDV_MAX_BLOB 4096    /* bytes of the blob */
#define GLM_RDV_MAX_TEXT 1024    /* bytes of a refusal or stop message on the wire */

/*
 * The world's fate, from the watcher thread: why is one line ("node 1
 * dropped out: connection closed"), valid during the call. Called at most
 * once per glm_rdv, never after glm_rdv_stop on this node. It may call
 * glm_rdv_stop and glm_rdv_failed, and poison a communicator; it must not
 * call glm_rdv_free (which joins the thread it runs on).
 */
typedef void (*glm_rdv_fail_fn)(void *user, const char *why);

/* One line about the rendezvous worth logging (a node joined, a connection
 * refused); from the thread inside glm_rdv_create / glm_rdv_run. */
typedef void (*glm_rdv_log_fn)(void *user, const char *line);

typedef struct {
    int nnodes;              /* nodes of the world, 1..GLM_RDV_MAX_NODES (1: nothing to meet) */
    int node_rank;           /* this node, 0..nnodes - 1; 0 listens, the others join */
    const char *master_addr; /* node 0's address: host name, IPv4 or IPv6 literal (copied) */
    int master_port;         /* 1..65535; 0 on node 0 only: any free port (glm_rdv_port) */
    const char *bind_addr;   /* node 0: where to listen; NULL = master_addr (every address it
                                resolves to); "0.0.0.0" or "::" = every interface (copied) */
    int n_local;             /* ranks this node runs, 1..GLM_RDV_MAX_LOCAL */
    uint64_t fingerprint;    /* what every node must agree on; unequal = refused */
    size_t blob_bytes;       /* size of the blob, 1..GLM_RDV_MAX_BLOB, the same on every node */
    double join_timeout_s;   /* > 0; see the top of this file for the four timeouts */
    double read_timeout_s;   /* > 0 */
    double heartbeat_s;      /* > 0 */
    double liveness_timeout_s; /* > heartbeat_s */
    glm_rdv_fail_fn on_fail; /* may be NULL (glm_rdv_failed still tells) */
    void *on_fail_user;
    glm_rdv_log_fn log;      /* may be NULL */
    void *log_user;
} glm_rdv_params;

/* nnodes 1, node 0, port 0, one rank, the NCCL id's 128 bytes, the default
 * timeouts (600, 10, 1, 10 s), no callbacks, master_addr NULL (to be set). */
glm_rdv_params glm_rdv_default_params(void);

typedef struct glm_rdv glm_rdv;

/*
 * Checks p and makes this node's side of the rendezvous. Node 0 (when nnodes
 * > 1) resolves bind_addr (or master_addr) and listens on each address,
 * SO_REUSEADDR, at once, so that nodes that start earlier queue up; the
 * others only keep the parameters. Returns NULL (and err) on bad parameters
 * or when node 0 cannot listen (the address is not this machine's, the port
 * is taken). Free with glm_rdv_free.
 */
glm_rdv *glm_rdv_create(const glm_rdv_params *p, char *err, size_t errlen);

/* The port node 0 listens on (the one it got for master_port 0), or
 * master_port on the other nodes. */
int glm_rdv_port(const glm_rdv *r);

/*
 * The rendezvous; blocks until it is complete or failed. Node 0 publishes
 * blob[0, blob_bytes); every other node receives it there. Returns GLM_OK
 * (first rank and world size below; the watcher runs from now on), or
 * GLM_ERR with the reason: a node that did not join or could not reach node
 * 0 within join_timeout_s, a node refused (see the top of this file), node 0
 * gone, a stop. Call once.
 */
int glm_rdv_run(glm_rdv *r, void *blob, char *err, size_t errlen);

/* After a successful glm_rdv_run: this node's first global rank, and the
 * ranks of the whole world (the sum of every node's n_local; the caller
 * checks it against its communicator's limit, GLM_COMM_MAX_WORLD). */
int glm_rdv_first_rank(const glm_rdv *r);
int glm_rdv_world(const glm_rdv *r);

/*
 * Stops the world: sends "node R stopped: why" to every peer (each of them
 * reports it through on_fail; node 0 passes it on), and marks this node's
 * side stopped (its own on_fail is not called, before or after). During
 * glm_rdv_run (from another thread) it makes the run return GLM_ERR with
 * that line, and the rendezvous fails on every node: node 0 tells the nodes
 * waiting, a joiner tells node 0 if connected. Callable from any thread,
 * also from on_fail, more than once (a reason or fate already set stays);
 * never blocks on a peer (a peer whose socket buffer is full misses it, and
 * sees the connection close instead).
 */
void glm_rdv_stop(glm_rdv *r, const char *why);

/* Whether the world's fate is known (a peer dropped out or stopped, or
 * glm_rdv_stop was called here); if so and err is not NULL, the reason. */
int glm_rdv_failed(glm_rdv *r, char *err, size_t errlen);

/*
 * Ends this node's side: a stop with reason "shut down" if the world is still
 * up, then joins the watcher and closes every socket. Not from on_fail, and
 * not while another thread is in glm_rdv_run (stop it first and let it
 * return). NULL is allowed.
 */
void glm_rdv_free(glm_rdv *r);

#ifdef __cplusplus
}
#endif

#endif
