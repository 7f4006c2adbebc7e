/*
 * completions.c - POST /v1/chat/completions and /v1/completions: parse and
 * validate (openai_request.c), submit to the engine, then either wait for the
 * whole answer or stream it as Server-Sent Events (openai_response.c).
 *
 * Waiting never polls: the engine's notify callback writes to an eventfd and
 * the connection thread poll()s that eventfd together with its socket
 * (POLLRDHUP), so a token leaves as soon as the engine makes it and a client
 * that hangs up is noticed at once and its request aborted (KV freed), also
 * while it is still queued. While nothing happens a stream gets an SSE
 * comment (": ping") every ping_interval_ms, which also finds dead peers
 * that did not close cleanly.
 *
 * Metrics (metrics.h): the arrival time of each token event gives the
 * inter-token latency of its sample; each sample's finish event feeds the
 * request histograms with the finish reason the client saw. A client that
 * hangs up has its request aborted and the abort's finish events drained
 * (bounded), so aborted samples are counted too.
 *
 * Each job owns its eventfd. The engine calls the notify callback without its
 * lock, but glm_request_set_notify (and glm_request_release) wait for a call
 * in progress, so once job_free has detached the callback no call can reach
 * the eventfd and it is closed.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "http.h"
#include "openai_request.h"
#include "openai_response.h"
#include "request_body.h"
#include "structured.h"
#include "core/util.h"

/* The engine's notify callback (engine thread): wakes the connection thread. */
static void notify(void *ctx)
{
    const int *efd = ctx;
    uint64_t one = 1;
    ssize_t w = write(*efd, &one, sizeof one);
    (void)w; /* EAGAIN: the counter is already non-zero, which is all we need */
}

/* ---- one generation -------------------------------------------------------------------- */

typedef struct {
    glm_http_req *http;         /* NULL once the connection is done with us */
    const glm_gen_ctx *g;
    glm_oai_request req;
    glm_request *er;
    int efd;                    /* eventfd written by notify(); -1 when none */
    glm_gen *gen;
    int sock;
    int all_done, aborted, ended, error;
    int error_status;           /* 400 or 500 */
    char error_msg[256];
    glm_buf out;                /* SSE bytes not yet handed to MHD */
    size_t out_pos;
    double *last_token;         /* [n] arrival time of each sample's last token (metrics) */
} job;

enum { W_EVENT = 1, W_TIMEOUT = 0, W_OVER = -1, W_GONE = -2 };

static void job_abort(job *j)
{
    if (!j->aborted) {
        glm_request_abort(j->er);
        j->aborted = 1;
    }
}

/* Next engine event, waiting up to timeout_ms on the eventfd and the socket. */
static int wait_event(job *j, glm_event *ev, int timeout_ms)
{
    double deadline = glm_now() + timeout_ms / 1000.0;
    for (;;) {
        if (atomic_load(j->g->stopping))
            job_abort(j);
        int rc = glm_request_next(j->er, ev, 0);
        if (rc != 0)
            return rc;
        double left = deadline - glm_now();
        if (left <= 0)
            return W_TIMEOUT;
        struct pollfd p[2] = {{.fd = j->efd, .events = POLLIN}, {.fd = j->sock, .events = POLLRDHUP}};
        int np = j->sock >= 0 ? 2 : 1;
        int ms = (int)(left * 1000) + 1;
        if (ms > 1000)
            ms = 1000; /* re-check the stopping flag at least once a second */
        int pr = poll(p, (nfds_t)np, ms);
        if (pr < 0 && errno != EINTR)
            return W_TIMEOUT;
        if (np == 2 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
            return W_GONE;
        if (p[0].revents & POLLIN) {
            uint64_t v;
            ssize_t rd = read(j->efd, &v, sizeof v);
            (void)rd;
        }
    }
}

/* Observes a sample's finish event, with the reason the client was told
 * (abort when it was never told one: the client left). */
static void observe_finish(job *j, const glm_event *ev)
{
    const char *why = glm_gen_finish_reason(j->gen, ev->index);
    glm_finish_reason r = !why || strcmp(why, "abort") == 0 ? GLM_FINISH_ABORT
                          : strcmp(why, "length") == 0       ? GLM_FINISH_LENGTH
                                                             : GLM_FINISH_STOP;
    glm_metrics_observe_finish(j->g->metrics, ev, r);
}

/* Handles one event; sets all_done/error, aborts the engine request when
 * every sample was ended by a stop string. */
static void job_event(job *j, const glm_event *ev, glm_buf *out)
{
    if (ev->type == GLM_EV_ERROR) {
        j->error = 1;
        j->error_status = ev->invalid_request ? 400 : 500;
        snprintf(j->error_msg, sizeof j->error_msg, "%s", ev->message);
        return;
    }
    int i = ev->index;
    if (i < 0 || i >= j->req.sp.n)
        return;
    if (ev->type == GLM_EV_TOKEN && !glm_gen_finish_reason(j->gen, i)) {
        double now = glm_now();
        if (j->last_token[i] > 0)
            glm_metrics_observe_itl(j->g->metrics, now - j->last_token[i]);
        j->last_token[i] = now;
    }
    int all = glm_gen_event(j->gen, ev, out);
    if (ev->type == GLM_EV_FINISH)
        observe_finish(j, ev);
    if (all && !j->all_done) {
        j->all_done = 1;
        job_abort(j); /* the engine may still be generating for a stop string */
    }
}

/* The client went away: abort, then read the abort's finish events (for up
 * to two seconds) so that the metrics count the aborted samples. */
static void job_drain(job *j)
{
    job_abort(j);
    j->sock = -1;
    double deadline = glm_now() + 2.0;
    glm_event ev;
    for (double left; (left = deadline - glm_now()) > 0;) {
        if (wait_event(j, &ev, (int)(left * 1000) + 1) != W_EVENT)
            break;
        if (ev.type == GLM_EV_FINISH && ev.index >= 0 && ev.index < j->req.sp.n)
            observe_finish(j, &ev);
    }
}

static void job_free(job *j)
{
    if (!j)
        return;
    if (j->er) /* detaches notify() first: no call can reach efd afterwards */
        glm_request_release(j->er);
    if (j->efd >= 0)
        close(j->efd);
    glm_gen_free(j->gen);
    glm_oai_request_free(&j->req);
    glm_buf_free(&j->out);
    free(j->last_token);
    free(j);
}

static void log_usage(job *j)
{
    if (j->http && j->gen)
        glm_gen_usage(j->gen, &j->http->prompt_tokens, &j->http->completion_tokens);
}

/* ---- streaming ------------------------------------------------------------------------- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    job *j = cls;
    for (;;) {
        if (j->out_pos < j->out.len) {
            size_t n = GLM_MIN(max, j->out.len - j->out_pos);
            memcpy(buf, j->out.p + j->out_pos, n);
            j->out_pos += n;
            if (j->out_pos == j->out.len) {
                j->out_pos = 0;
                glm_buf_clear(&j->out);
            }
            return (ssize_t)n;
        }
        if (j->ended) {
            log_usage(j);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        glm_event ev;
        int rc = wait_event(j, &ev, j->g->ping_interval_ms);
        if (rc == W_EVENT) {
            job_event(j, &ev, &j->out);
            if (j->error) {
                json_t *e = json_pack("{s:{s:s,s:s,s:n,s:i}}", "error", "message", j->error_msg, "type",
                                      j->error_status == 400 ? "BadRequestError" : "InternalServerError", "param",
                                      "code", j->error_status);
                char *s = e ? json_dumps(e, JSON_COMPACT) : NULL;
                json_decref(e);
                if (s) {
                    glm_buf_put(&j->out, "data: ", 6);
                    glm_buf_put(&j->out, s, strlen(s));
                    glm_buf_put(&j->out, "\n\n", 2);
                    free(s);
                }
                glm_buf_put(&j->out, "data: [DONE]\n\n", 14);
                job_abort(j);
                j->ended = 1;
            }
        } else if (rc == W_OVER) {
            glm_gen_stream_end(j->gen, &j->out);
            j->ended = 1;
        } else if (rc == W_TIMEOUT) {
            glm_buf_put(&j->out, ": ping\n\n", 8);
        } else {
            job_drain(j); /* the client went away */
            log_usage(j);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

static void stream_free(void *cls)
{
    job_free(cls);
}

/* ---- the handler ----------------------------------------------------------------------- */

static void make_id(char *buf, size_t n, const char *prefix, const char *request_id)
{
    snprintf(buf, n, "%s%s", prefix, request_id);
}

enum MHD_Result glm_handle_completions(glm_http_req *r, const glm_gen_ctx *g, int chat)
{
    enum MHD_Result res;
    job *j = glm_calloc(1, sizeof *j);
    j->efd = -1;
    j->g = g;
    j->http = r;
    glm_body in;
    if (glm_body_open(r, g->model, &in, &res) != GLM_OK) {
        free(j);
        return res;
    }
    int status;
    const char *param;
    char err[GLM_ERRLEN];
    int rc = glm_oai_request_parse(&j->req, in.root, chat, g, &status, &param, err, sizeof err);
    glm_body_close(g->model, &in); /* the request keeps its ids and parameters, not its body */
    if (rc != GLM_OK) {
        res = glm_http_error(r, status, NULL, param, "%s", err);
        free(j);
        return res;
    }
    r->prompt_tokens = j->req.n_prompt;
    j->last_token = glm_calloc((size_t)j->req.sp.n, sizeof *j->last_token);
    j->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (j->efd < 0) {
        job_free(j);
        return glm_http_error(r, 503, NULL, NULL, "out of file descriptors");
    }
    glm_submit_status st;
    glm_logits_processor proc;
    int has_proc = glm_oai_processor(&j->req, g->out, &proc);
    j->req.sp.processor = has_proc ? &proc : NULL;
    j->er = glm_engine_submit(g->engine, j->req.prompt, j->req.n_prompt, &j->req.sp, &st, err, sizeof err);
    j->req.sp.processor = NULL;
    if (!j->er) {
        if (has_proc)
            proc.release(proc.ctx);
        job_free(j);
        if (st == GLM_SUBMIT_OVERLOADED)
            return glm_http_error(r, 503, NULL, NULL, "the server is overloaded: %s", err);
        return glm_http_error(r, 400, NULL, chat ? "messages" : "prompt", "%s", err);
    }
    glm_request_set_notify(j->er, notify, &j->efd);
    j->sock = glm_http_socket(r);
    char id[96];
    make_id(id, sizeof id, chat ? "chatcmpl-" : "cmpl-", r->request_id);
    j->gen = glm_gen_create(g, &j->req, id);

    if (j->req.stream) {
        glm_gen_stream_start(j->gen, &j->out);
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, j,
                                                                      stream_free);
        if (!resp) {
            job_free(j);
            return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        return glm_http_queue(r, 200, resp, "text/event-stream");
    }

    /* non-streaming: wait here (this connection's own thread) */
    for (;;) {
        glm_event ev;
        int rc = wait_event(j, &ev, 60000);
        if (rc == W_EVENT) {
            job_event(j, &ev, NULL);
            if (j->error) {
                job_abort(j);
                log_usage(j);
                res = glm_http_error(r, j->error_status, NULL, NULL, "generation failed: %s", j->error_msg);
                job_free(j);
                return res;
            }
        } else if (rc == W_OVER) {
            break;
        } else if (rc == W_GONE) {
            job_drain(j);
            log_usage(j);
            r->status = 499; /* nginx's "client closed request", for the log */
            job_free(j);
            return MHD_NO;
        }
    }
    log_usage(j);
    char *body = glm_gen_response(j->gen);
    job_free(j);
    if (!body)
        return glm_http_error(r, 500, NULL, NULL, "could not serialise the response");
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    return glm_http_queue(r, 200, resp, "application/json");
}
