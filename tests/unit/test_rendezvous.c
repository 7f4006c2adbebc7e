/*
 * test_rendezvous.c - the multi-node rendezvous (engine/comm/rendezvous.h) on
 * one machine over loopback: node 0 and the other nodes are separate
 * processes (fork), node 0 on a port the kernel picks (master_port 0).
 *   - 2 and 3 nodes meet (127.0.0.1, "localhost", ::1 where there is one):
 *     every node gets node 0's blob, its first rank and the world size;
 *     1 node meets nobody;
 *   - a node that never joins (node 0 fails after its 1 s join timeout), a
 *     node 0 that is never there (the joiner fails after its own), a joiner
 *     that starts before node 0 (it retries until node 0 listens);
 *   - connections that are not nodes (random bytes, an HTTP request, the
 *     magic followed by garbage, silence, a hello that stops half-way, closed
 *     or left open) are refused and closed, and node 0 meets the real node;
 *   - a real node started wrong (fingerprint, nnodes, node rank twice,
 *     protocol version) fails the rendezvous on every side with the reason;
 *   - a node that leaves before the end may join again; a stop during the
 *     rendezvous (node 0's or a joiner's) fails it with its reason;
 *   - after the rendezvous: a node killed, a node silent (SIGSTOP: no
 *     heartbeat), node 0 killed, a stop from node 0 or another node, node 0's
 *     shutdown: on_fail fires on every other node with the cause.
 * Nothing measures time: the timeouts under test are set to 1 s, and the
 * waits for on_fail have a 30 s bound that only guards against a hang.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "comm/rendezvous.h"
#include "testutil.h"

#define BLOB 128
#define FP 0x676c6d2d35ull     /* the fingerprint every test node agrees on */
#define BOUND_S 30             /* hang guard of every wait */

/* ---- on_fail, recorded ------------------------------------------------------------ */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int count;                 /* calls of on_fail (must stay <= 1) */
    char why[GLM_ERRLEN];
} fate_rec;

static void fate_init(fate_rec *f)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
}

static void fate_destroy(fate_rec *f)
{
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
}

static void on_fail_rec(void *user, const char *why)
{
    fate_rec *f = user;
    pthread_mutex_lock(&f->mu);
    if (f->count++ == 0)
        snprintf(f->why, sizeof f->why, "%s", why);
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* Waits up to BOUND_S for on_fail; out: its reason, or "" if none came. */
static void wait_fate(fate_rec *f, char *out, size_t n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += BOUND_S;
    pthread_mutex_lock(&f->mu);
    while (f->count == 0 && pthread_cond_timedwait(&f->cv, &f->mu, &until) == 0)
        ;
    snprintf(out, n, "%s", f->count ? f->why : "");
    pthread_mutex_unlock(&f->mu);
}

/* ---- node 0's log: counts and gates ------------------------------------------------ */

/* What the parent's node 0 logs, and the gates it opens for the children:
 * a line starting with gate_on[i] writes one byte per gate_bytes[i] into
 * gate_fd[i] (once). */
static struct {
    int refused;               /* "refused a connection" lines */
    int joined;                /* "node N joined" lines */
    const char *gate_on[2];
    int gate_fd[2], gate_bytes[2], gate_done[2];
    pid_t kill_on_join;        /* SIGKILL this pid at the first "node 1 joined" */
} lg;

static void log_reset(void)
{
    memset(&lg, 0, sizeof lg);
    lg.gate_fd[0] = lg.gate_fd[1] = -1;
}

static void log_rec(void *user, const char *line)
{
    (void)user;
    if (strncmp(line, "refused a connection", 20) == 0)
        lg.refused++;
    if (strncmp(line, "node ", 5) == 0 && strstr(line, " joined from "))
        lg.joined++;
    if (lg.kill_on_join > 0 && strncmp(line, "node 1 joined", 13) == 0) {
        kill(lg.kill_on_join, SIGKILL);
        lg.kill_on_join = 0;
    }
    for (int i = 0; i < 2; i++)
        if (lg.gate_on[i] && !lg.gate_done[i] && strncmp(line, lg.gate_on[i], strlen(lg.gate_on[i])) == 0) {
            lg.gate_done[i] = 1;
            for (int k = 0; k < lg.gate_bytes[i]; k++)
                ck_assert_int_eq(write(lg.gate_fd[i], "g", 1), 1);
        }
}

/* ---- nodes in child processes --------------------------------------------------------- */

static glm_rdv_params params(int nnodes, int node_rank, int port, int n_local)
{
    glm_rdv_params p = glm_rdv_default_params();
    p.nnodes = nnodes;
    p.node_rank = node_rank;
    p.master_addr = "127.0.0.1";
    p.master_port = port;
    p.n_local = n_local;
    p.fingerprint = FP;
    p.blob_bytes = BLOB;
    p.join_timeout_s = BOUND_S; /* a guard: no case but the timeout cases waits for it */
    p.read_timeout_s = 1;
    p.heartbeat_s = 0.1;
    p.liveness_timeout_s = 5;
    return p;
}

static void make_blob(unsigned char *b, uint64_t seed)
{
    test_rng g = {seed};
    for (int i = 0; i < BLOB; i++)
        b[i] = (unsigned char)test_rng_next(&g);
}

/* What a child node reports through its pipe, in this order. */
typedef struct {
    int port;                  /* glm_rdv_port after create, -1 if create failed */
} port_report;

typedef struct {
    int rc, first_rank, world;
    unsigned char blob[BLOB];
    char err[GLM_ERRLEN];
} run_report;

typedef struct {
    char why[GLM_ERRLEN];      /* on_fail's reason, "" if none */
    int count;                 /* calls of on_fail */
} fate_report;

enum {
    AFTER_NOTHING,             /* free at once */
    AFTER_WAIT,                /* wait for on_fail, then free */
    AFTER_STOP,                /* glm_rdv_stop("test stop"), then free */
    AFTER_HOLD,                /* stay until killed */
};

typedef struct {
    glm_rdv_params p;
    int after;
    int gate;                  /* read one byte from it before starting; -1: none */
    int stop_gate;             /* a thread reads one byte from it, then glm_rdv_stop("interrupted"); -1: none */
    int log_fd;                /* the joiner's "waiting for node 0" line writes a byte here; -1: none */
} node_plan;

static void write_full(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return;
        p += k, n -= (size_t)k;
    }
}

/* 1 when all n bytes came, 0 when the writer is gone first */
static int read_full(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n) {
        ssize_t k = read(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return 0;
        p += k, n -= (size_t)k;
    }
    return 1;
}

static void child_log(void *user, const char *line)
{
    int fd = *(int *)user;
    if (fd >= 0 && strncmp(line, "waiting for node 0", 18) == 0) {
        write_full(fd, "w", 1);
        *(int *)user = -1;
    }
}

typedef struct {
    glm_rdv *r;
    int gate;
} stopper;

static void *stopper_main(void *arg)
{
    stopper *s = arg;
    char c;
    if (read(s->gate, &c, 1) == 1)
        glm_rdv_stop(s->r, "interrupted");
    return NULL;
}

static int node_main(const node_plan *plan, int out)
{
    char c;
    if (plan->gate >= 0 && read(plan->gate, &c, 1) != 1)
        return 3;
    fate_rec f;
    fate_init(&f);
    int log_fd = plan->log_fd;
    glm_rdv_params p = plan->p;
    p.on_fail = on_fail_rec;
    p.on_fail_user = &f;
    p.log = child_log;
    p.log_user = &log_fd;
    run_report rep;
    memset(&rep, 0, sizeof rep);
    glm_rdv *r = glm_rdv_create(&p, rep.err, sizeof rep.err);
    port_report pr = {r ? glm_rdv_port(r) : -1};
    write_full(out, &pr, sizeof pr);
    pthread_t th;
    stopper st = {r, plan->stop_gate};
    int has_stopper = r && plan->stop_gate >= 0 && pthread_create(&th, NULL, stopper_main, &st) == 0;
    unsigned char blob[BLOB];
    if (p.node_rank == 0)
        make_blob(blob, 42);
    rep.rc = r ? glm_rdv_run(r, blob, rep.err, sizeof rep.err) : GLM_ERR;
    if (rep.rc == GLM_OK) {
        rep.first_rank = glm_rdv_first_rank(r);
        rep.world = glm_rdv_world(r);
        memcpy(rep.blob, blob, BLOB);
    }
    write_full(out, &rep, sizeof rep);
    fate_report fr;
    memset(&fr, 0, sizeof fr);
    if (rep.rc == GLM_OK && plan->after == AFTER_STOP)
        glm_rdv_stop(r, "test stop");
    if (rep.rc == GLM_OK && plan->after == AFTER_WAIT)
        wait_fate(&f, fr.why, sizeof fr.why);
    if (rep.rc == GLM_OK && plan->after == AFTER_HOLD)
        for (;;)
            pause();
    pthread_mutex_lock(&f.mu);
    fr.count = f.count;
    pthread_mutex_unlock(&f.mu);
    write_full(out, &fr, sizeof fr);
    if (has_stopper) {
        pthread_cancel(th);
        pthread_join(th, NULL);
    }
    glm_rdv_free(r);
    fate_destroy(&f);
    return 0;
}

/* A child process for fn; its end of the report pipe in *out. It dies with
 * the test process, and keeps no descriptor of the parent's but its own.
 * Children never call ck_assert: they report, the parent checks. */
typedef int (*child_fn)(const void *arg, int out);

static pid_t spawn(child_fn fn, const void *arg, const int *keep, int n_keep, int *out)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(4);
        for (int fd = 3; fd < 1024; fd++) {
            int keep_it = fd == fds[1];
            for (int i = 0; i < n_keep; i++)
                keep_it |= fd == keep[i];
            if (!keep_it)
                close(fd);
        }
        exit(fn(arg, fds[1]));
    }
    close(fds[1]);
    *out = fds[0];
    return pid;
}

static int node_child(const void *arg, int out) { return node_main(arg, out); }

static pid_t spawn_node(const node_plan *plan, int *out)
{
    int keep[3] = {plan->gate, plan->stop_gate, plan->log_fd};
    return spawn(node_child, plan, keep, 3, out);
}

static node_plan plan_of(glm_rdv_params p, int after)
{
    return (node_plan){.p = p, .after = after, .gate = -1, .stop_gate = -1, .log_fd = -1};
}

/* The child's exit status, or 128 + the signal that ended it. */
static int reap(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        ck_assert_int_eq(errno, EINTR);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static run_report read_run(int fd)
{
    port_report pr;
    run_report rep;
    ck_assert_msg(read_full(fd, &pr, sizeof pr), "a child node ended before it reported");
    ck_assert_msg(read_full(fd, &rep, sizeof rep), "a child node ended before it reported its rendezvous");
    return rep;
}

static fate_report read_fate(int fd)
{
    fate_report fr;
    ck_assert_msg(read_full(fd, &fr, sizeof fr), "a child node ended before it reported its fate");
    return fr;
}

/* ---- node 0 in this process ------------------------------------------------------------- */

static fate_rec fate0;

static glm_rdv *node0(glm_rdv_params p)
{
    fate_init(&fate0);
    log_reset();
    p.on_fail = on_fail_rec;
    p.on_fail_user = &fate0;
    p.log = log_rec;
    char err[GLM_ERRLEN];
    glm_rdv *r = glm_rdv_create(&p, err, sizeof err);
    ck_assert_msg(r, "%s", err);
    return r;
}

static void expect_contains(const char *s, const char *part)
{
    ck_assert_msg(strstr(s, part), "\"%s\" does not contain \"%s\"", s, part);
}

static void expect_prefix(const char *s, const char *prefix)
{
    ck_assert_msg(strncmp(s, prefix, strlen(prefix)) == 0, "\"%s\" does not start with \"%s\"", s, prefix);
}

/* ---- raw connections (not nodes) ---------------------------------------------------------- */

/* In a child: no ck_assert there (Check in fork mode reports passing checks
 * through a descriptor the child has closed, and may reuse). -1 on failure. */
static int connect_raw(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return -1;
    struct timeval tv = {BOUND_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* 1 when the other side closes fd (EOF or reset) within BOUND_S; what it
 * sent before is dropped. */
static int closed_by_peer(int fd)
{
    char buf[256];
    for (;;) {
        ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k == 0 || (k < 0 && errno == ECONNRESET))
            return 1;
        if (k < 0 && errno != EINTR)
            return 0;
    }
}

static void put32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24), b[1] = (unsigned char)(v >> 16), b[2] = (unsigned char)(v >> 8),
    b[3] = (unsigned char)v;
}

/* The 36-byte hello of rendezvous.h, written out here as the wire format. */
static void make_hello(unsigned char *h, uint32_t version, uint32_t nnodes, uint32_t node, uint32_t n_local)
{
    memcpy(h, "\x89glm-rdv", 8);
    put32(h + 8, version);
    put32(h + 12, nnodes);
    put32(h + 16, node);
    put32(h + 20, n_local);
    put32(h + 24, (uint32_t)(FP >> 32));
    put32(h + 28, (uint32_t)FP);
    put32(h + 32, BLOB);
}

/* A port nothing listens on (bound, then closed). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* ---- meeting ---------------------------------------------------------------------------- */

/* nnodes nodes on addr: node 0 here with n_local[0] ranks, the others in
 * children; every one gets the blob and its ranks. Then `after0` on node 0:
 * 0 = glm_rdv_stop("test done"), 1 = glm_rdv_free (shut down); every child
 * reports node 0's reason. */
static void meet(const char *addr, int nnodes, const int *n_local, int after0)
{
    glm_rdv_params p0 = params(nnodes, 0, 0, n_local[0]);
    p0.master_addr = addr;
    char err[GLM_ERRLEN];
    glm_rdv_params probe = p0;
    probe.log = NULL;
    glm_rdv *r = glm_rdv_create(&probe, err, sizeof err);
    if (!r && strcmp(addr, "::1") == 0) {
        printf("SKIP  meet_ipv6 (no IPv6 loopback here: %s)\n", err);
        return;
    }
    glm_rdv_free(r);
    r = node0(p0);
    int port = glm_rdv_port(r);
    ck_assert_int_gt(port, 0);
    pid_t pid[8];
    int out[8];
    for (int k = 1; k < nnodes; k++) {
        glm_rdv_params p = params(nnodes, k, port, n_local[k]);
        p.master_addr = addr;
        node_plan plan = plan_of(p, AFTER_WAIT);
        pid[k] = spawn_node(&plan, &out[k]);
    }
    unsigned char blob[BLOB], want[BLOB];
    make_blob(blob, 42);
    memcpy(want, blob, BLOB);
    ck_assert_msg(glm_rdv_run(r, blob, err, sizeof err) == GLM_OK, "%s", err);
    int world = 0;
    for (int k = 0; k < nnodes; k++)
        world += n_local[k];
    ck_assert_int_eq(glm_rdv_first_rank(r), 0);
    ck_assert_int_eq(glm_rdv_world(r), world);
    ck_assert_int_eq(lg.joined, nnodes - 1);
    for (int k = 1, first = n_local[0]; k < nnodes; first += n_local[k++]) {
        run_report rep = read_run(out[k]);
        ck_assert_msg(rep.rc == GLM_OK, "node %d: %s", k, rep.err);
        ck_assert_int_eq(rep.first_rank, first);
        ck_assert_int_eq(rep.world, world);
        ck_assert(memcmp(rep.blob, want, BLOB) == 0);
    }
    if (after0 == 0)
        glm_rdv_stop(r, "test done");
    else
        glm_rdv_free(r);
    const char *why = after0 == 0 ? "node 0 stopped: test done" : "node 0 stopped: shut down";
    for (int k = 1; k < nnodes; k++) {
        fate_report fr = read_fate(out[k]);
        ck_assert_str_eq(fr.why, why);
        ck_assert_int_eq(fr.count, 1);
        ck_assert_int_eq(reap(pid[k]), 0);
        close(out[k]);
    }
    if (after0 == 0) {
        ck_assert(glm_rdv_failed(r, err, sizeof err));
        ck_assert_str_eq(err, why);
        glm_rdv_free(r);
    }
    ck_assert_int_eq(fate0.count, 0); /* never after its own stop */
    fate_destroy(&fate0);
}

START_TEST(meet_two)
{
    meet("127.0.0.1", 2, (int[]){2, 3}, 0);
}
END_TEST

START_TEST(meet_three_localhost)
{
    meet("localhost", 3, (int[]){1, 2, 4}, 1);
}
END_TEST

START_TEST(meet_ipv6)
{
    meet("::1", 2, (int[]){8, 8}, 1);
}
END_TEST

START_TEST(one_node)
{
    glm_rdv_params p = params(1, 0, 0, 4);
    p.master_addr = NULL;
    char err[GLM_ERRLEN];
    glm_rdv *r = glm_rdv_create(&p, err, sizeof err);
    ck_assert_msg(r, "%s", err);
    unsigned char blob[BLOB] = {0};
    ck_assert_int_eq(glm_rdv_run(r, blob, err, sizeof err), GLM_OK);
    ck_assert_int_eq(glm_rdv_first_rank(r), 0);
    ck_assert_int_eq(glm_rdv_world(r), 4);
    ck_assert(!glm_rdv_failed(r, NULL, 0));
    glm_rdv_free(r);
    glm_rdv_free(NULL);
}
END_TEST

typedef struct {
    glm_rdv_params p;
    const char *says;          /* part of the error */
} bad_case;

START_TEST(bad_params)
{
    char err[GLM_ERRLEN];
    bad_case bad[8];
    int n = 0;
    bad[n++] = (bad_case){params(0, 0, 0, 1), "nnodes 0"};
    bad[n++] = (bad_case){params(2, 2, 1234, 1), "node rank 2"};
    bad[n++] = (bad_case){params(2, 1, 0, 1), "master port 0"};
    bad[n++] = (bad_case){params(2, 1, 1234, 0), "0 ranks"};
    bad[n] = (bad_case){params(2, 1, 1234, 1), "no master address"};
    bad[n++].p.master_addr = NULL;
    bad[n] = (bad_case){params(2, 1, 1234, 1), "liveness timeout"};
    bad[n].p.liveness_timeout_s = bad[n].p.heartbeat_s, n++;
    bad[n] = (bad_case){params(2, 1, 1234, 1), "blob of 0 bytes"};
    bad[n++].p.blob_bytes = 0;
    bad[n] = (bad_case){params(2, 0, 0, 1), "cannot listen on 192.0.2.1"};
    bad[n++].p.master_addr = "192.0.2.1"; /* TEST-NET-1: not this machine's */
    for (int i = 0; i < n; i++) {
        err[0] = 0;
        ck_assert_msg(!glm_rdv_create(&bad[i].p, err, sizeof err), "case %d was accepted", i);
        expect_contains(err, bad[i].says);
    }
    /* a port already taken */
    glm_rdv *a = node0(params(2, 0, 0, 1));
    glm_rdv_params p = params(2, 0, glm_rdv_port(a), 1);
    ck_assert(!glm_rdv_create(&p, err, sizeof err));
    expect_contains(err, "Address already in use");
    glm_rdv_free(a);
    fate_destroy(&fate0);
}
END_TEST

/* ---- timeouts ------------------------------------------------------------------------------ */

START_TEST(node_never_joins)
{
    glm_rdv_params p = params(2, 0, 0, 1);
    p.join_timeout_s = 1;
    glm_rdv *r = node0(p);
    unsigned char blob[BLOB] = {0};
    char err[GLM_ERRLEN];
    ck_assert_int_eq(glm_rdv_run(r, blob, err, sizeof err), GLM_ERR);
    ck_assert_str_eq(err, "node 1 of 2 did not join within 1 s");
    glm_rdv_free(r);
    fate_destroy(&fate0);
}
END_TEST

START_TEST(nodes_never_join_named)
{
    glm_rdv_params p = params(4, 0, 0, 1);
    p.join_timeout_s = 1;
    glm_rdv *r = node0(p);
    unsigned char blob[BLOB] = {0};
    char err[GLM_ERRLEN];
    ck_assert_int_eq(glm_rdv_run(r, blob, err, sizeof err), GLM_ERR);
    ck_assert_str_eq(err, "nodes 1, 2, 3 of 4 did not join within 1 s");
    glm_rdv_free(r);
    fate_destroy(&fate0);
}
END_TEST

START_TEST(node0_never_there)
{
    glm_rdv_params p = params(2, 1, free_port(), 1);
    p.join_timeout_s = 1;
    char err[GLM_ERRLEN];
    glm_rdv *r = glm_rdv_create(&p, err, sizeof err);
    ck_assert_msg(r, "%s", err);
    unsigned char blob[BLOB];
    ck_assert_int_eq(glm_rdv_run(r, blob, err, sizeof err), GLM_ERR);
    expect_prefix(err, "could not join node 0 at 127.0.0.1:");
    expect_contains(err, "within 1 s: Connection refused");
    glm_rdv_free(r);
}
END_TEST

/* The joiner starts first, fails to connect (its log says it waits), and
 * only then node 0 listens. */
START_TEST(joiner_starts_first)
{
    int port = free_port();
    int waiting[2];
    ck_assert_int_eq(pipe(waiting), 0);
    node_plan plan = plan_of(params(2, 1, port, 1), AFTER_NOTHING);
    plan.log_fd = waiting[1];
    int out;
    pid_t pid = spawn_node(&plan, &out);
    close(waiting[1]);
    char c;
    ck_assert_int_eq(read(waiting[0], &c, 1), 1);
    glm_rdv *r = node0(params(2, 0, port, 1));
    unsigned char blob[BLOB];
    make_blob(blob, 42);
    char err[GLM_ERRLEN];
    ck_assert_msg(glm_rdv_run(r, blob, err, sizeof err) == GLM_OK, "%s", err);
    run_report rep = read_run(out);
    ck_assert_msg(rep.rc == GLM_OK, "%s", rep.err);
    ck_assert(memcmp(rep.blob, blob, BLOB) == 0);
    read_fate(out);
    ck_assert_int_eq(reap(pid), 0);
    glm_rdv_free(r);
    fate_destroy(&fate0);
    close(out);
    close(waiting[0]);
}
END_TEST

/* ---- what is not a node ------------------------------------------------------------------------- */

typedef struct {
    int port;
} garbage_args;

#define N_GARBAGE 6

/* Six connections that are not nodes; once node 0 has closed every one, a
 * real node joins. Reports closed[N_GARBAGE], then the node's reports. */
static int garbage_child(const void *arg, int out)
{
    const garbage_args *a = arg;
    int c[N_GARBAGE];
    for (int i = 0; i < N_GARBAGE; i++)
        if ((c[i] = connect_raw(a->port)) < 0)
            return 5;
    unsigned char rnd[64], hello[36];
    test_rng g = {7};
    for (int i = 0; i < 64; i++)
        rnd[i] = (unsigned char)test_rng_next(&g);
    rnd[0] = 0x17; /* not the magic's first byte */
    const char *http = "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
    make_hello(hello, 1, 2, 1, 1);
    write_full(c[0], rnd, sizeof rnd);                /* random bytes */
    write_full(c[1], http, strlen(http));             /* curl */
    /* c[2]: silent */
    write_full(c[3], hello, 20);                      /* a hello that stops half-way, left open */
    write_full(c[4], hello, 20);                      /* ... and closed */
    shutdown(c[4], SHUT_WR);
    write_full(c[5], "\x89glm-xyz and more", 17);     /* the magic's start, then garbage */
    int closed[N_GARBAGE];
    for (int i = 0; i < N_GARBAGE; i++) {
        closed[i] = closed_by_peer(c[i]);
        close(c[i]);
    }
    write_full(out, closed, sizeof closed);
    node_plan plan = plan_of(params(2, 1, a->port, 1), AFTER_NOTHING);
    return node_main(&plan, out);
}

START_TEST(garbage_refused)
{
    glm_rdv *r = node0(params(2, 0, 0, 1));
    garbage_args a = {glm_rdv_port(r)};
    int out;
    pid_t pid = spawn(garbage_child, &a, NULL, 0, &out);
    unsigned char blob[BLOB];
    make_blob(blob, 42);
    char err[GLM_ERRLEN];
    ck_assert_msg(glm_rdv_run(r, blob, err, sizeof err) == GLM_OK, "%s", err);
    int closed[N_GARBAGE];
    ck_assert(read_full(out, closed, sizeof closed));
    for (int i = 0; i < N_GARBAGE; i++)
        ck_assert_msg(closed[i], "garbage connection %d was not closed by node 0", i);
    ck_assert_int_eq(lg.refused, N_GARBAGE);
    run_report rep = read_run(out);
    ck_assert_msg(rep.rc == GLM_OK, "%s", rep.err);
    ck_assert(memcmp(rep.blob, blob, BLOB) == 0);
    read_fate(out);
    ck_assert_int_eq(reap(pid), 0);
    glm_rdv_free(r);
    fate_destroy(&fate0);
    close(out);
}
END_TEST

/* ---- real nodes started wrong ------------------------------------------------------------------ */

/* Node 1 is right; node 2 (another fingerprint) comes once node 1 has joined. */
START_TEST(fingerprint_mismatch)
{
    glm_rdv *r = node0(params(3, 0, 0, 1));
    int port = glm_rdv_port(r);
    int gate[2];
    ck_assert_int_eq(pipe(gate), 0);
    lg.gate_on[0] = "node 1 joined";
    lg.gate_fd[0] = gate[1];
    lg.gate_bytes[0] = 1;
    node_plan good = plan_of(params(3, 1, port, 1), AFTER_NOTHING);
    node_plan bad = plan_of(params(3, 2, port, 1), AFTER_NOTHING);
    bad.p.fingerprint = FP + 1;
    bad.gate = gate[0];
    int out1, out2;
    pid_t p1 = spawn_node(&good, &out1), p2 = spawn_node(&bad, &out2);
    unsigned char blob[BLOB] = {0};
    char err[GLM_ERRLEN];
    ck_assert_int_eq(glm_rdv_run(r, blob, err, sizeof err), GLM_ERR);
    expect_prefix(err, "node 2 (127.0.0.1:");
    expect_contains(err, "was started with another model or flags (fingerprint");
    run_report r1 = read_run(out1), r2 = read_run(out2);
    ck_assert_int_eq(r1.rc, GLM_ERR);
    ck_assert_int_eq(r2.rc, GLM_ERR);
    char want[2 * GLM_ERRLEN];
    snprintf(want, sizeof want, "the rendezvous failed at node 0: %s", err);
    ck_assert_str_eq(r1.err, want);
    snprintf(want, sizeof want, "refused by node 0: %s", err);
    ck_assert_str_eq(r2.err, want);
    read_fate(out1);
    read_fate(out2);
    ck_assert_int_eq(reap(p1), 0);
    ck_assert_int_eq(reap(p2), 0);
    glm_rdv_free(r);
    fate_destroy(&fate0);
    close(out1), close(out2), close(gate[0]), close(gate[1]);
}
END_TEST

/* One child, started with `p`, against node 0 with nnodes 2: both fail. */
static void one_wrong_node(glm_rdv_params p, const char *node0_says)
{
    glm_rdv *r = node0(params(2, 0, 0, 1));
    p.master_port = glm_rdv_port(r);
    node_plan plan = plan_of(p, AFTER_NOTHING);
    int out;
    pid_t pid = spawn_node(&plan, &out);
    unsigned char blob[BLOB] = {0};
    char err[GLM_ERRLEN];
    ck_assert_int_eq(glm_rdv_run(r, blob, err, sizeof err), GLM_ERR);
    expect_contains(err, node0_says);
    run_report rep = read_run(out);
    ck_assert_int_eq(rep.rc, GLM_ERR);
    expect_prefix(rep.err, "refused by node 0: ");
    expect_contains(rep.err, node0_says);
    read_fate(out);
    ck_assert_int_eq(reap(pid), 0);
    glm_rdv_free(r);
    fate_destroy(&fate0);
    close(out);
}

START_TEST(wrong_nnodes)
{
    one_wrong_node(params(3, 1, 0, 1), "was started with nnodes 3, node 0 with nnodes 2");
}
END_TEST

START_TEST(wrong_blob_size)
{
    glm_rdv_params p = params(2, 1, 0, 1);
    p.blob_bytes = 64;
    one_wrong_node(p, "expects a 64-byte blob, node 0 publishes 128 bytes");
}
END_TEST

/* Two nodes started with node rank 1: whichever comes second is refused, the
 * first hears that the rendezvous failed. */
START_TEST(duplicate_rank)
{
    glm_rdv *r = node0(params(3, 0, 0, 1));
    int port = glm_rdv_port(r);
    node_plan plan = plan_of(params(3, 1, port, 1), AFTER_NOTHING);
    int out1, out2;
    pid_t p1 = spawn_node(&plan, &out1), p2 = spawn_node(&plan, &out2);
    unsigned char blob[BLOB] = {0};
    char err[GLM_ERRLEN];
    ck_assert_int_eq(glm_rdv_run(r, blob, err, sizeof err), GLM_ERR);
    expect_prefix(err, "node 1 joined twice (from 127.0.0.1:");
    expect_contains(err, "two nodes were started with node rank 1");
    run_report r1 = read_run(out1), r2 = read_run(out2);
    ck_assert_int_eq(r1.rc, GLM_ERR);
    ck_assert_int_eq(r2.rc, GLM_ERR);
    int first_refused = strncmp(r1.err, "refused by node 0: ", 19) == 0;
    expect_prefix(first_refused ? r1.err : r2.err, "refused by node 0: node 1 joined twice");
    expect_prefix(first_refused ? r2.err : r1.err, "the rendezvous failed at node 0: node 1 joined twice");
    read_fate(out1);
    read_fate(out2);
    ck_assert_int_eq(reap(p1), 0);
    ck_assert_int_eq(reap(p2), 0);
    glm_rdv_free(r);
    fate_destroy(&fate0);
    close(out1), close(out2);
}
END_TEST

/* A hello of protocol 2: node 0 fails, and its refusal is a REFUSE frame. */
static int version_child(const void *arg, int out)
{
    const garbage_args *a = arg;
    int fd = connect_raw(a->port);
    if (fd < 0)
        return 5;
    unsigned char hello[36], hdr[8];
    make_hello(hello, 2, 2, 1, 1);
    write_full(fd, hello, sizeof hello);
    int ok = read_full(fd, hdr, sizeof hdr);
    uint32_t type = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    uint32_t len = (uint32_t)hdr[4] << 24 | (uint32_t)hdr[5] << 16 | (uint32_t)hdr[6] << 8 | hdr[7];
    char text[GLM_RDV_MAX_TEXT + 1] = "";
    if (ok && len <= GLM_RDV_MAX_TEXT && read_full(fd, text, len))
        text[len] = 0;
    int report[2] = {ok ? (int)type : -1, closed_by_peer(fd)};
    write_full(out, report, sizeof report);
    write_full(out, text, sizeof text);
    close(fd);
    return 0;
}

START_TEST(wrong_version)
{
    glm_rdv *r = node0(params(2, 0, 0, 1));
    garbage_args a = {glm_rdv_port(r)};
    int out;
    pid_t pid = spawn(version_child, &a, NULL, 0, &out);
    unsigned char blob[BLOB] = {0};
    char err[GLM_ERRLEN];
    ck_assert_int_eq(glm_rdv_run(r, blob, err, sizeof err), GLM_ERR);
    expect_contains(err, "speaks rendezvous protocol 2, node 0 speaks 1");
    int report[2];
    char text[GLM_RDV_MAX_TEXT + 1];
    ck_assert(read_full(out, report, sizeof report) && read_full(out, text, sizeof text));
    ck_assert_int_eq(report[0], 2); /* REFUSE */
    ck_assert_int_eq(report[1], 1);
    expect_prefix(text, "refused by node 0: a node at 127.0.0.1:");
    expect_contains(text, "protocol 2");
    ck_assert_int_eq(reap(pid), 0);
    glm_rdv_free(r);
    fate_destroy(&fate0);
    close(out);
}
END_TEST

/* ---- before the end of the rendezvous ------------------------------------------------------------- */

/* Node 1 joins and is killed at once (node 0's log does it); the restarted
 * node 1 and node 2 come once node 0 has seen it leave, and they meet. */
START_TEST(rejoin_after_leaving)
{
    glm_rdv *r = node0(params(3, 0, 0, 1));
    int port = glm_rdv_port(r);
    int gate[2];
    ck_assert_int_eq(pipe(gate), 0);
    lg.gate_on[0] = "node 1 (127.0.0.1:";
    lg.gate_fd[0] = gate[1];
    lg.gate_bytes[0] = 2;
    node_plan first = plan_of(params(3, 1, port, 1), AFTER_HOLD);
    node_plan again = plan_of(params(3, 1, port, 2), AFTER_NOTHING);
    node_plan two = plan_of(params(3, 2, port, 3), AFTER_NOTHING);
    again.gate = two.gate = gate[0];
    int out0, out1, out2;
    pid_t p0 = spawn_node(&first, &out0);
    lg.kill_on_join = p0;
    pid_t p1 = spawn_node(&again, &out1), p2 = spawn_node(&two, &out2);
    unsigned char blob[BLOB];
    make_blob(blob, 42);
    char err[GLM_ERRLEN];
    ck_assert_msg(glm_rdv_run(r, blob, err, sizeof err) == GLM_OK, "%s", err);
    ck_assert_int_eq(glm_rdv_world(r), 6);
    ck_assert_int_eq(reap(p0), 128 + SIGKILL);
    run_report r1 = read_run(out1), r2 = read_run(out2);
    ck_assert_msg(r1.rc == GLM_OK && r2.rc == GLM_OK, "%s / %s", r1.err, r2.err);
    ck_assert_int_eq(r1.first_rank, 1);
    ck_assert_int_eq(r2.first_rank, 3);
    read_fate(out1);
    read_fate(out2);
    ck_assert_int_eq(reap(p1), 0);
    ck_assert_int_eq(reap(p2), 0);
    glm_rdv_free(r);
    fate_destroy(&fate0);
    close(out0), close(out1), close(out2), close(gate[0]), close(gate[1]);
}
END_TEST

static void *stop_soon(void *arg)
{
    glm_rdv_stop(arg, "interrupted");
    return NULL;
}

/* A stop from another thread while node 0 waits (or before it starts). */
START_TEST(stop_node0_during_run)
{
    glm_rdv *r = node0(params(2, 0, 0, 1));
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, stop_soon, r), 0);
    unsigned char blob[BLOB] = {0};
    char err[GLM_ERRLEN];
    ck_assert_int_eq(glm_rdv_run(r, blob, err, sizeof err), GLM_ERR);
    ck_assert_str_eq(err, "node 0 stopped: interrupted");
    pthread_join(th, NULL);
    glm_rdv_free(r);
    ck_assert_int_eq(fate0.count, 0);
    fate_destroy(&fate0);
}
END_TEST

/* Node 1 is stopped while it waits for node 2: every node fails with its reason. */
START_TEST(stop_joiner_during_run)
{
    glm_rdv *r = node0(params(3, 0, 0, 1));
    int gate[2];
    ck_assert_int_eq(pipe(gate), 0);
    lg.gate_on[0] = "node 1 joined";
    lg.gate_fd[0] = gate[1];
    lg.gate_bytes[0] = 1;
    node_plan plan = plan_of(params(3, 1, glm_rdv_port(r), 1), AFTER_NOTHING);
    plan.stop_gate = gate[0];
    int out;
    pid_t pid = spawn_node(&plan, &out);
    unsigned char blob[BLOB] = {0};
    char err[GLM_ERRLEN];
    ck_assert_int_eq(glm_rdv_run(r, blob, err, sizeof err), GLM_ERR);
    ck_assert_str_eq(err, "node 1 stopped: interrupted");
    run_report rep = read_run(out);
    ck_assert_int_eq(rep.rc, GLM_ERR);
    ck_assert_str_eq(rep.err, "node 1 stopped: interrupted");
    read_fate(out);
    ck_assert_int_eq(reap(pid), 0);
    glm_rdv_free(r);
    fate_destroy(&fate0);
    close(out), close(gate[0]), close(gate[1]);
}
END_TEST

/* ---- after the rendezvous -------------------------------------------------------------------------- */

/* Three nodes meet: node 1 waits for its fate, node 2 does `after2`. */
static void three_then(int after2, glm_rdv_params base, pid_t *pid, int *out, glm_rdv **r0)
{
    glm_rdv *r = node0(base);
    int port = glm_rdv_port(r);
    for (int k = 1; k < 3; k++) {
        glm_rdv_params p = base;
        p.node_rank = k;
        p.master_port = port;
        node_plan plan = plan_of(p, k == 1 ? AFTER_WAIT : after2);
        pid[k] = spawn_node(&plan, &out[k]);
    }
    unsigned char blob[BLOB];
    make_blob(blob, 42);
    char err[GLM_ERRLEN];
    ck_assert_msg(glm_rdv_run(r, blob, err, sizeof err) == GLM_OK, "%s", err);
    for (int k = 1; k < 3; k++) {
        run_report rep = read_run(out[k]);
        ck_assert_msg(rep.rc == GLM_OK, "node %d: %s", k, rep.err);
    }
    *r0 = r;
}

START_TEST(node_killed)
{
    pid_t pid[3];
    int out[3];
    glm_rdv *r;
    three_then(AFTER_HOLD, params(3, 0, 0, 1), pid, out, &r);
    kill(pid[2], SIGKILL);
    char why[GLM_ERRLEN];
    wait_fate(&fate0, why, sizeof why);
    expect_prefix(why, "node 2 dropped out: ");
    fate_report f1 = read_fate(out[1]);
    ck_assert_str_eq(f1.why, why); /* node 0 passed it on */
    ck_assert_int_eq(reap(pid[1]), 0);
    ck_assert_int_eq(reap(pid[2]), 128 + SIGKILL);
    char err[GLM_ERRLEN];
    ck_assert(glm_rdv_failed(r, err, sizeof err));
    ck_assert_str_eq(err, why);
    glm_rdv_free(r);
    ck_assert_int_eq(fate0.count, 1);
    fate_destroy(&fate0);
    close(out[1]), close(out[2]);
}
END_TEST

/* A node that stops sending heartbeats (SIGSTOP) with its connection open. */
START_TEST(node_silent)
{
    glm_rdv_params p = params(2, 0, 0, 1);
    p.liveness_timeout_s = 1;
    glm_rdv *r = node0(p);
    p.node_rank = 1;
    p.master_port = glm_rdv_port(r);
    node_plan plan = plan_of(p, AFTER_HOLD);
    int out;
    pid_t pid = spawn_node(&plan, &out);
    unsigned char blob[BLOB] = {0};
    char err[GLM_ERRLEN];
    ck_assert_msg(glm_rdv_run(r, blob, err, sizeof err) == GLM_OK, "%s", err);
    run_report rep = read_run(out);
    ck_assert_msg(rep.rc == GLM_OK, "%s", rep.err);
    kill(pid, SIGSTOP);
    char why[GLM_ERRLEN];
    wait_fate(&fate0, why, sizeof why);
    ck_assert_str_eq(why, "node 1 dropped out: no heartbeat for 1 s");
    kill(pid, SIGKILL);
    ck_assert_int_eq(reap(pid), 128 + SIGKILL);
    glm_rdv_free(r);
    fate_destroy(&fate0);
    close(out);
}
END_TEST

/* Node 0 in a child, killed after the rendezvous; the joiner here sees it. */
START_TEST(node0_killed)
{
    node_plan plan = plan_of(params(2, 0, 0, 1), AFTER_HOLD);
    int out;
    pid_t pid = spawn_node(&plan, &out);
    port_report pr;
    ck_assert(read_full(out, &pr, sizeof pr));
    ck_assert_int_gt(pr.port, 0);
    fate_rec f;
    fate_init(&f);
    glm_rdv_params p = params(2, 1, pr.port, 1);
    p.on_fail = on_fail_rec;
    p.on_fail_user = &f;
    char err[GLM_ERRLEN];
    glm_rdv *r = glm_rdv_create(&p, err, sizeof err);
    ck_assert_msg(r, "%s", err);
    unsigned char blob[BLOB], want[BLOB];
    make_blob(want, 42);
    ck_assert_msg(glm_rdv_run(r, blob, err, sizeof err) == GLM_OK, "%s", err);
    ck_assert(memcmp(blob, want, BLOB) == 0);
    ck_assert_int_eq(glm_rdv_first_rank(r), 1);
    run_report rep;
    ck_assert(read_full(out, &rep, sizeof rep));
    ck_assert_int_eq(rep.rc, GLM_OK);
    kill(pid, SIGKILL);
    char why[GLM_ERRLEN];
    wait_fate(&f, why, sizeof why);
    expect_prefix(why, "node 0 dropped out: ");
    ck_assert_int_eq(reap(pid), 128 + SIGKILL);
    glm_rdv_free(r);
    ck_assert_int_eq(f.count, 1);
    fate_destroy(&f);
    close(out);
}
END_TEST

/* Node 2 stops: node 0 hears it and passes it on to node 1. */
START_TEST(joiner_stops)
{
    pid_t pid[3];
    int out[3];
    glm_rdv *r;
    three_then(AFTER_STOP, params(3, 0, 0, 1), pid, out, &r);
    char why[GLM_ERRLEN];
    wait_fate(&fate0, why, sizeof why);
    ck_assert_str_eq(why, "node 2 stopped: test stop");
    fate_report f1 = read_fate(out[1]), f2 = read_fate(out[2]);
    ck_assert_str_eq(f1.why, "node 2 stopped: test stop");
    ck_assert_int_eq(f2.count, 0); /* not its own stop */
    ck_assert_int_eq(reap(pid[1]), 0);
    ck_assert_int_eq(reap(pid[2]), 0);
    glm_rdv_free(r);
    fate_destroy(&fate0);
    close(out[1]), close(out[2]);
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* the raw test connections write to sockets node 0 may have closed */
    Suite *s = suite_create("rendezvous");
    TCase *tc = tcase_create("loopback");
    tcase_set_timeout(tc, 120); /* the hang guard; the cases use their own 30 s bounds first */
    tcase_add_test(tc, meet_two);
    tcase_add_test(tc, meet_three_localhost);
    tcase_add_test(tc, meet_ipv6);
    tcase_add_test(tc, one_node);
    tcase_add_test(tc, bad_params);
    tcase_add_test(tc, node_never_joins);
    tcase_add_test(tc, nodes_never_join_named);
    tcase_add_test(tc, node0_never_there);
    tcase_add_test(tc, joiner_starts_first);
    tcase_add_test(tc, garbage_refused);
    tcase_add_test(tc, fingerprint_mismatch);
    tcase_add_test(tc, wrong_nnodes);
    tcase_add_test(tc, wrong_blob_size);
    tcase_add_test(tc, duplicate_rank);
    tcase_add_test(tc, wrong_version);
    tcase_add_test(tc, rejoin_after_leaving);
    tcase_add_test(tc, stop_node0_during_run);
    tcase_add_test(tc, stop_joiner_during_run);
    tcase_add_test(tc, node_killed);
    tcase_add_test(tc, node_silent);
    tcase_add_test(tc, node0_killed);
    tcase_add_test(tc, joiner_stops);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
