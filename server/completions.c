/*
 * completions.c - POST /v1/chat/completions and /v1/completions (and, through
 * glm_generate, /v1/responses): parse and validate (openai_request.c), submit
 * to the engine, then either wait for the whole answer or stream it as
 * Server-Sent Events (openai_response.c).
 *
 * No HTTP thread ever waits (http.c: libmicrohttpd's event loop): when the
 * engine has nothing new for a request, its connection is suspended, and the
 * server's waiter thread (waiter.h) resumes it when the engine's notify
 * callback kicks the request's watch, when the client hangs up (the watch
 * holds the socket), when the stream's ping deadline passes (an SSE comment,
 * ": ping", every ping_interval_ms, which also finds dead peers), or when the
 * shutdown's grace period runs out. A non-streaming request's handler is
 * called again on each resume until the answer is complete; a stream's
 * content reader is.
 *
 * The job's mutex orders suspending (an HTTP thread, which found nothing to
 * do) against resuming (the waiter, which found something): a connection is
 * resumed only if it was suspended, and only once.
 *
 * A client that hangs up has its request aborted (KV freed), also while it is
 * queued; the job then lives on in the waiter until the abort's finish events
 * have been read (at most two seconds), so that the metrics count the aborted
 * samples. A job is freed by whichever of the connection and the drain lets
 * go of it last (refs).
 *
 * Metrics (metrics.h): the arrival time of each token event gives the
 * inter-token latency of its sample; each sample's finish event feeds the
 * request histograms with the finish reason the client saw.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "completions.h"
#include "http.h"
#include "openai_request.h"
#include "openai_response.h"
#include "request_body.h"
#include "structured.h"
#include "waiter.h"
#include "core/util.h"

#define DRAIN_S 2.0 /* how long a hung-up client's aborted request is read for its metrics */

/* The response's own buffer: used only without chunked encoding (an HTTP/1.0 client); chunks
 * are written into the connection's memory pool (http.h: GLM_HTTP_POOL_MARGIN), and an open
 * stream holds this block whatever its size. */
#define GLM_STREAM_BLOCK 256

/* ---- one generation -------------------------------------------------------------------- */

typedef struct {
    glm_http_req *http;         /* NULL once the connection is done with us */
    struct MHD_Connection *conn;
    const glm_gen_ctx *g;
    glm_oai_request req;
    glm_request **er;           /* [n_er]: one engine request per prompt */
    int n_er;
    int next_er;                /* the one read first next time (round robin) */
    int n_choices;              /* prompts x samples */
    glm_watch *watch;
    glm_gen *gen;
    pthread_mutex_t mu;
    int refs;                   /* the connection's, and the drain's */
    int suspended;              /* the connection waits for the waiter */
    int gone, stop, ping_due;   /* what the waiter found */
    int draining;               /* the client left: the waiter reads the abort's events */
    int all_done, aborted, ended, error;
    int error_status;           /* 400 or 500 */
    char error_msg[256];
    glm_buf out;                /* SSE bytes not yet handed to MHD */
    size_t out_pos;
    double *last_token;         /* [n] arrival time of each sample's last token (metrics) */
} job;

/* The engine's notify callback (engine thread): the waiter resumes the connection. */
static void notify(void *ctx)
{
    glm_waiter_kick(ctx);
}

static void job_abort(job *j)
{
    if (!j->aborted) {
        for (int k = 0; k < j->n_er; k++)
            glm_request_abort(j->er[k]);
        j->aborted = 1;
    }
}

/* Drops the engine requests (notify() detached first: no kick reaches the watch afterwards). */
static void job_release(job *j)
{
    for (int k = 0; k < j->n_er; k++)
        glm_request_release(j->er[k]);
    free(j->er);
    j->er = NULL;
    j->n_er = 0;
}

/* The next event of any of the job's engine requests, its sample index made the choice's
 * (prompt k's sample i is choice k * n + i): 1 with *ev, 0 when none is ready, -1 when
 * every request is over and read. */
static int job_next(job *j, glm_event *ev)
{
    int over = 0;
    for (int t = 0; t < j->n_er; t++) {
        int k = (j->next_er + t) % j->n_er;
        int rc = glm_request_next(j->er[k], ev, 0);
        if (rc == 1) {
            j->next_er = (k + 1) % j->n_er;
            ev->index += k * j->req.sp.n;
            return 1;
        }
        over += rc < 0;
    }
    return over == j->n_er ? -1 : 0;
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
    if (i < 0 || i >= j->n_choices)
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

static void job_free(job *j)
{
    job_release(j);
    glm_waiter_remove(j->watch);
    glm_gen_free(j->gen);
    glm_oai_request_free(&j->req);
    glm_buf_free(&j->out);
    free(j->last_token);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* Drops one reference, under j->mu (released here); frees the job at the last. */
static void job_unref_locked(job *j)
{
    int last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (last)
        job_free(j);
}

/* The connection lets go of the job (under j->mu; before its socket can close): the watch
 * no longer holds the socket. */
static void job_detach(job *j)
{
    j->http = NULL;
    if (j->watch) /* NULL once a hung-up client's drain ended */
        glm_waiter_release_socket(j->watch);
}

/* Reads the finish events of a hung-up client's aborted request (under j->mu), observing them;
 * 1 once there is nothing more to read. */
static int drain_events(job *j)
{
    glm_event ev;
    int rc;
    while ((rc = job_next(j, &ev)) == 1)
        if (ev.type == GLM_EV_FINISH && ev.index >= 0 && ev.index < j->n_choices)
            observe_finish(j, &ev);
    return rc < 0;
}

/* The client went away (under j->mu): abort, and let the waiter read the abort's finish events
 * for the metrics, for up to DRAIN_S; the connection lets go of the job. */
static void job_gone(job *j)
{
    job_abort(j);
    job_detach(j);
    if (drain_events(j))
        return;
    j->draining = 1;
    j->refs++;
    glm_waiter_deadline(j->watch, glm_now() + DRAIN_S);
}

/* The waiter's callback: what happened, then the connection resumed if it waits. A draining
 * job reads its events here and is let go when they end or its deadline passes. */
static void fire(void *ctx, unsigned why)
{
    job *j = ctx;
    pthread_mutex_lock(&j->mu);
    if (j->draining) {
        if (drain_events(j) || (why & (GLM_WAKE_DEADLINE | GLM_WAKE_STOP))) {
            j->draining = 0;
            job_release(j); /* no notify can kick the watch after this */
            glm_waiter_remove_self(j->watch);
            j->watch = NULL;
            job_unref_locked(j);
            return;
        }
        pthread_mutex_unlock(&j->mu);
        return;
    }
    if (why & GLM_WAKE_HANGUP)
        j->gone = 1;
    if (why & GLM_WAKE_STOP)
        j->stop = 1;
    if (why & GLM_WAKE_DEADLINE)
        j->ping_due = 1;
    if (j->suspended) {
        j->suspended = 0;
        MHD_resume_connection(j->conn);
    }
    pthread_mutex_unlock(&j->mu);
}

/* Suspends the connection until the waiter has something (under j->mu). */
static void job_suspend(job *j)
{
    j->suspended = 1;
    MHD_suspend_connection(j->conn);
}

static void log_usage(job *j)
{
    if (j->http && j->gen)
        glm_gen_usage(j->gen, &j->http->prompt_tokens, &j->http->completion_tokens);
}

/* ---- streaming ------------------------------------------------------------------------- */

/* The next bytes of the stream (under j->mu): a count, an end, or 0 to wait. */
static ssize_t stream_step(job *j, char *buf, size_t max)
{
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
        if (j->gone) {
            log_usage(j);
            job_gone(j);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (j->stop)
            job_abort(j);
        glm_event ev;
        int rc = job_next(j, &ev);
        if (rc == 1) {
            job_event(j, &ev, &j->out);
            if (j->error) {
                glm_gen_stream_error(j->gen, j->error_status, j->error_msg, &j->out);
                job_abort(j);
                j->ended = 1;
            }
        } else if (rc < 0) {
            glm_gen_stream_end(j->gen, &j->out);
            j->ended = 1;
        } else if (j->ping_due) {
            j->ping_due = 0;
            glm_buf_put(&j->out, ": ping\n\n", 8);
            glm_waiter_deadline(j->watch, glm_now() + j->g->ping_interval_ms / 1000.0);
        } else {
            return 0;
        }
    }
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    job *j = cls;
    pthread_mutex_lock(&j->mu);
    ssize_t n = stream_step(j, buf, max);
    if (n == 0)
        job_suspend(j);
    pthread_mutex_unlock(&j->mu);
    return n;
}

static void stream_free(void *cls)
{
    job *j = cls;
    pthread_mutex_lock(&j->mu);
    job_detach(j);
    job_unref_locked(j);
}

/* ---- not streaming --------------------------------------------------------------------- */

/* The handler of a suspended non-streaming request, called again on each resume: the events
 * so far, then the answer, or another wait. */
static enum MHD_Result nonstream_resume(glm_http_req *r)
{
    job *j = r->pending;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        if (j->gone) {
            log_usage(j);
            r->status = 499; /* nginx's "client closed request", for the log */
            r->pending = NULL;
            job_gone(j);
            job_unref_locked(j);
            return MHD_NO;
        }
        if (j->stop)
            job_abort(j);
        glm_event ev;
        int rc = job_next(j, &ev);
        if (rc == 1) {
            job_event(j, &ev, NULL);
            if (j->error) {
                job_abort(j);
                log_usage(j);
                r->pending = NULL;
                enum MHD_Result res =
                    glm_http_error(r, j->error_status, NULL, NULL, "generation failed: %s", j->error_msg);
                job_detach(j);
                job_unref_locked(j);
                return res;
            }
            continue;
        }
        if (rc == 0) {
            job_suspend(j);
            pthread_mutex_unlock(&j->mu);
            return MHD_YES;
        }
        break; /* every event read */
    }
    log_usage(j);
    r->pending = NULL;
    char *body = glm_gen_response(j->gen);
    job_detach(j);
    job_unref_locked(j);
    if (!body)
        return glm_http_error(r, 500, NULL, NULL, "could not serialise the response");
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    return glm_http_queue(r, 200, resp, "application/json");
}

/* ---- the handler ----------------------------------------------------------------------- */

/* A response id unique to this response (and so are the tool-call ids made from it): 128
 * random bits, never the client's X-Request-Id, which a gateway may repeat for a whole
 * session; that one stays in the log line and the response header. */
static void make_id(char *buf, size_t n, const char *prefix)
{
    glm_rng rng;
    glm_rng_seed_entropy(&rng);
    snprintf(buf, n, "%s%016llx%016llx", prefix, (unsigned long long)glm_rng_next(&rng),
             (unsigned long long)glm_rng_next(&rng));
}

/* Submits one engine request per prompt: GLM_OK, or GLM_ERR with the refusal queued in *res
 * (the requests already submitted are the job's, for the caller to abort). */
static int submit_all(job *j, glm_http_req *r, const glm_gen_ctx *g, const char *prompt_param,
                      enum MHD_Result *res)
{
    char err[GLM_ERRLEN];
    j->er = glm_calloc((size_t)j->req.n_prompts, sizeof *j->er);
    for (int k = 0; k < j->req.n_prompts; k++) {
        glm_oai_prompt p = glm_oai_prompt_at(&j->req, k);
        glm_submit_status st;
        glm_logits_processor proc;
        int has_proc = glm_oai_processor(&j->req, g->out, &proc);
        j->req.sp.processor = has_proc ? &proc : NULL;
        j->er[k] = glm_engine_submit(g->engine, p.ids, p.n, &j->req.sp, &st, err, sizeof err);
        j->req.sp.processor = NULL;
        if (!j->er[k]) {
            if (has_proc)
                proc.release(proc.ctx);
            if (st == GLM_SUBMIT_OVERLOADED)
                *res = glm_http_error(r, 503, NULL, NULL, "the server is overloaded: %s", err);
            else
                *res = glm_http_error(r, 400, NULL, prompt_param, "%s", err);
            return GLM_ERR;
        }
        j->n_er = k + 1;
        glm_request_set_notify(j->er[k], notify, j->watch);
    }
    return GLM_OK;
}

/* The connection ended while its non-streaming request waited (http.c's completion callback). */
static void nonstream_cancel(glm_http_req *r)
{
    job *j = r->pending;
    pthread_mutex_lock(&j->mu);
    r->pending = NULL;
    job_gone(j);
    job_unref_locked(j);
}

static int parse_chat(glm_oai_request *r, const json_t *root, const glm_gen_ctx *g, int *status,
                      const char **param, char *err, size_t errlen)
{
    return glm_oai_request_parse(r, root, 1, g, status, param, err, errlen);
}

static int parse_text(glm_oai_request *r, const json_t *root, const glm_gen_ctx *g, int *status,
                      const char **param, char *err, size_t errlen)
{
    return glm_oai_request_parse(r, root, 0, g, status, param, err, errlen);
}

static const glm_gen_api chat_api = {"chatcmpl-", "messages", parse_chat};
static const glm_gen_api text_api = {"cmpl-", "prompt", parse_text};

enum MHD_Result glm_handle_completions(glm_http_req *r, const glm_gen_ctx *g, int chat)
{
    return glm_generate(r, g, chat ? &chat_api : &text_api);
}

enum MHD_Result glm_generate(glm_http_req *r, const glm_gen_ctx *g, const glm_gen_api *api)
{
    enum MHD_Result res;
    job *j = glm_calloc(1, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    j->refs = 1;
    j->g = g;
    j->http = r;
    j->conn = r->conn;
    glm_body in;
    if (glm_body_open(r, g->model, &in, &res) != GLM_OK) {
        job_free(j);
        return res;
    }
    int status;
    const char *param;
    char err[GLM_ERRLEN];
    int rc = api->parse(&j->req, in.root, g, &status, &param, err, sizeof err);
    glm_body_close(g->model, &in); /* the request keeps its ids and parameters, not its body */
    if (rc != GLM_OK) {
        res = glm_http_error(r, status, NULL, param, "%s", err);
        job_free(j);
        return res;
    }
    j->n_choices = j->req.n_prompts * j->req.sp.n;
    r->prompt_tokens = 0;
    for (int k = 0; k < j->req.n_prompts; k++)
        r->prompt_tokens += glm_oai_prompt_at(&j->req, k).n;
    j->last_token = glm_calloc((size_t)j->n_choices, sizeof *j->last_token);
    j->watch = glm_waiter_add(g->waiter, glm_http_socket(r), fire, j);
    if (!j->watch) {
        job_free(j);
        return glm_http_error(r, 503, NULL, NULL, "out of file descriptors");
    }
    if (submit_all(j, r, g, api->prompt_param, &res) != GLM_OK) {
        job_abort(j);
        job_free(j);
        return res;
    }
    char id[96];
    make_id(id, sizeof id, api->id_prefix);
    j->gen = glm_gen_create(g, &j->req, id);

    if (j->req.stream) {
        glm_gen_stream_start(j->gen, &j->out);
        if (j->out.len == 0) /* a comment, so that the status and headers leave now even while the
                                request waits in the queue (libmicrohttpd sends them with the body) */
            glm_buf_put(&j->out, ": ok\n\n", 6);
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, GLM_STREAM_BLOCK, stream_reader, j,
                                                                      stream_free);
        if (!resp) {
            job_free(j);
            return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        /* a client that stops reading is dropped after this long without progress */
        MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)g->stream_write_timeout_s);
        glm_waiter_deadline(j->watch, glm_now() + g->ping_interval_ms / 1000.0);
        return glm_http_queue(r, 200, resp, "text/event-stream");
    }
    /* not streaming: the handler returns now and is called again on each resume */
    r->pending = j;
    r->resume = nonstream_resume;
    r->cancel = nonstream_cancel;
    return nonstream_resume(r);
}
