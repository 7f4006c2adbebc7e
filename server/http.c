/*
 * http.c - libmicrohttpd plumbing for `glm-server serve`: daemon start/stop,
 * body accumulation with the size limit, routing, authentication, request
 * ids, OpenAI-shaped errors, the JSON content-type check (415), CORS
 * (--allowed-origins, OPTIONS preflights) and the per-request log line; see
 * http.h.
 *
 * Threading: libmicrohttpd's event loop (epoll) on a pool of threads, one per
 * core from 2 to 8: a connection costs memory, not a thread, so thousands of open streams
 * and idle sockets leave /health answering. No handler blocks: one that must
 * wait for the engine suspends its connection, and the waiter thread
 * (waiter.h) resumes it (completions.c).
 *
 * Limits and deadlines: --max-connections in all and --max-connections-per-ip
 * from one address (libmicrohttpd refuses more by closing the socket, before
 * HTTP can answer); a connection must deliver a complete request (headers and
 * body) within --request-read-timeout of opening or of its previous answer,
 * however slowly it drips, or it is shut down (a watch per connection in the
 * waiter); --timeout-keep-alive closes a connection idle that long; a stream
 * whose client reads nothing for --stream-write-timeout is closed and its
 * request aborted.
 */
#include "http.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "parse_gate.h"
#include "responses.h"
#include "waiter.h"
#include "core/util.h"

struct glm_http {
    struct MHD_Daemon *d;
    glm_server *srv;
};

/* A connection as the deadline watch sees it (libmicrohttpd's socket context). */
typedef struct {
    glm_server *srv;
    int fd;
    atomic_int busy;    /* a complete request is being answered: no read deadline */
    glm_watch *watch;   /* the read deadline */
} sock_ctx;

/* One request as the router holds it: what handlers see, plus the server and
 * the route, which only the router uses. */
typedef struct {
    glm_http_req req; /* first: handlers get &req */
    glm_server *srv;
    int route;
    int counted;      /* counted in srv->active */
} conn;

enum { R_HEALTH, R_VERSION, R_MODELS, R_MODEL, R_METRICS, R_TOKENIZE, R_DETOKENIZE, R_CHAT, R_COMPLETIONS, R_RESPONSES,
       R_NONE };

static const struct {
    const char *path;
    const char *method;
    int open; /* no API key needed */
} routes[] = {
    [R_HEALTH] = {"/health", "GET", 1},
    [R_VERSION] = {"/version", "GET", 1},
    [R_MODELS] = {"/v1/models", "GET", 0},
    [R_MODEL] = {"/v1/models/", "GET", 0}, /* prefix */
    [R_METRICS] = {"/metrics", "GET", 1},
    [R_TOKENIZE] = {"/tokenize", "POST", 0},
    [R_DETOKENIZE] = {"/detokenize", "POST", 0},
    [R_CHAT] = {"/v1/chat/completions", "POST", 0},
    [R_COMPLETIONS] = {"/v1/completions", "POST", 0},
    [R_RESPONSES] = {"/v1/responses", "POST", 0},
};

static int find_route(const char *url)
{
    for (int i = 0; i < R_NONE; i++) {
        if (i == R_MODEL) {
            size_t n = strlen(routes[i].path);
            if (strncmp(url, routes[i].path, n) == 0 && url[n])
                return i;
        } else if (strcmp(url, routes[i].path) == 0) {
            return i;
        }
    }
    return R_NONE;
}

/* ---- responses --------------------------------------------------------------------------- */

enum MHD_Result glm_http_queue(glm_http_req *r, int status, struct MHD_Response *resp, const char *content_type)
{
    if (!resp)
        return MHD_NO;
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    if (r->cors_origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->cors_origin);
        MHD_add_response_header(resp, "Access-Control-Expose-Headers", "X-Request-Id, Retry-After");
        if (strcmp(r->cors_origin, "*") != 0)
            MHD_add_response_header(resp, "Vary", "Origin");
    }
    r->status = status;
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result queue_text(glm_http_req *r, int status, char *text, const char *ct, const char *retry_after)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (resp && retry_after)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
    return glm_http_queue(r, status, resp, ct);
}

enum MHD_Result glm_http_json(glm_http_req *r, int status, json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!s)
        return glm_http_error(r, 500, NULL, NULL, "could not serialise the response");
    return queue_text(r, status, s, "application/json", NULL);
}

static const char *type_for(int status)
{
    switch (status) {
    case 400: case 413: case 431: return "BadRequestError";
    case 401: return "AuthenticationError";
    case 404: return "NotFoundError";
    case 405: return "MethodNotAllowedError";
    case 415: return "UnsupportedMediaTypeError";
    case 503: return "ServiceUnavailableError";
    default: return "InternalServerError";
    }
}

enum MHD_Result glm_http_error(glm_http_req *r, int status, const char *type, const char *param, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *m = json_string(msg);
    if (!m) /* messages quote request text; never let invalid UTF-8 drop the error */
        m = json_string("invalid request");
    json_t *e = json_object();
    json_object_set_new(e, "message", m);
    json_object_set_new(e, "type", json_string(type ? type : type_for(status)));
    json_object_set_new(e, "param", param ? json_string(param) : json_null());
    json_object_set_new(e, "code", json_integer(status));
    json_t *o = json_object();
    json_object_set_new(o, "error", e);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return MHD_NO;
    return queue_text(r, status, s, "application/json", status == 503 ? "1" : NULL);
}

json_t *glm_http_body_json(glm_http_req *r, enum MHD_Result *result)
{
    json_error_t je;
    json_t *o = json_loadb(r->body ? r->body : "", r->body_len, 0, &je);
    if (!o) {
        *result = glm_http_error(r, 400, NULL, NULL, "the request body is not valid JSON: %s (line %d, column %d)",
                                 je.text, je.line, je.column);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        *result = glm_http_error(r, 400, NULL, NULL, "the request body must be a JSON object");
        return NULL;
    }
    return o;
}

int glm_http_socket(const glm_http_req *r)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* ---- the access handler ------------------------------------------------------------------- */

static int authorized(const conn *c)
{
    const glm_http_req *r = &c->req;
    const glm_server *srv = c->srv;
    if (srv->n_api_keys == 0 || routes[c->route].open)
        return 1;
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    h += 7;
    while (*h == ' ')
        h++;
    for (int i = 0; i < srv->n_api_keys; i++) {
        /* compare every byte so the time does not tell how much matched */
        const char *k = srv->api_keys[i];
        size_t kl = strlen(k), hl = strlen(h);
        unsigned diff = kl != hl;
        for (size_t j = 0; j < kl; j++)
            diff |= (unsigned char)k[j] ^ (unsigned char)(j < hl ? h[j] : 0);
        if (!diff)
            return 1;
    }
    return 0;
}

static void set_request_id(glm_http_req *r, glm_server *srv)
{
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = h ? strlen(h) : 0;
    int ok = n > 0 && n < sizeof r->request_id;
    for (size_t i = 0; ok && i < n; i++)
        ok = h[i] > 32 && h[i] < 127 && h[i] != '"' && h[i] != '\\';
    if (ok) {
        memcpy(r->request_id, h, n + 1);
        return;
    }
    uint64_t x = glm_mix64(srv->id_base + atomic_fetch_add(&srv->next_id, 1) * 0x9E3779B97F4A7C15ull);
    snprintf(r->request_id, sizeof r->request_id, "%016llx", (unsigned long long)x);
}

/* POST bodies are JSON: application/json or any "+json" type. A missing type
 * and curl's default for -d (application/x-www-form-urlencoded) are taken as
 * JSON too, so that `curl -d '{...}'` works; anything else is a 415. */
static int json_content_type(const glm_http_req *r)
{
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct)
        return 1;
    while (*ct == ' ')
        ct++;
    size_t n = strcspn(ct, "; \t");
    if ((n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
        (n == 33 && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0))
        return 1;
    return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0 && strncasecmp(ct, "application/", 12) == 0;
}

/* The request's Origin if --allowed-origins lets it in ("*" allows all;
 * otherwise exact, case-sensitive matches of a comma-separated list). */
static const char *cors_origin(const glm_http_req *r, const char *list)
{
    const char *o = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    if (!list || !o)
        return NULL;
    size_t ol = strlen(o);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ", ");
        if (n == 1 && *p == '*')
            return "*";
        if (n && n == ol && strncmp(p, o, n) == 0)
            return o;
        p += n;
    }
    return NULL;
}

/* OPTIONS: a CORS preflight (Origin and Access-Control-Request-Method) from
 * an allowed origin gets 204 and the allowed methods and headers; one from
 * another origin a 400 (as Starlette's CORSMiddleware, which vLLM uses); a
 * plain OPTIONS a 204 with Allow. Never needs an API key. */
static enum MHD_Result handle_options(conn *c)
{
    glm_http_req *r = &c->req;
    const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    const char *method = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Access-Control-Request-Method");
    const char *allow = strcmp(routes[c->route].method, "POST") == 0 ? "POST, OPTIONS" : "GET, HEAD, OPTIONS";
    if (origin && method && !r->cors_origin)
        return glm_http_error(r, 400, NULL, NULL, "Disallowed CORS origin");
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (origin && method) {
        const char *hdrs = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Access-Control-Request-Headers");
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", allow);
        MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                hdrs ? hdrs : "Authorization, Content-Type, X-Request-Id");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    }
    return glm_http_queue(r, 204, resp, NULL);
}

static enum MHD_Result dispatch(conn *c)
{
    glm_http_req *r = &c->req;
    glm_server *srv = c->srv;
    if (c->route == R_NONE)
        return glm_http_error(r, 404, NULL, NULL, "Not Found: %s", r->url);
    if (strcmp(r->method, "OPTIONS") == 0)
        return handle_options(c);
    if (strcmp(r->method, routes[c->route].method) != 0 &&
        !(strcmp(r->method, "HEAD") == 0 && strcmp(routes[c->route].method, "GET") == 0))
        return glm_http_error(r, 405, NULL, NULL, "Method Not Allowed: %s %s", r->method, r->url);
    if (r->too_large)
        return glm_http_error(r, 413, NULL, NULL, "the request body is larger than %zu bytes",
                              srv->max_request_bytes);
    if (!authorized(c))
        return glm_http_error(r, 401, NULL, NULL, "Unauthorized: a valid API key is required");
    if (strcmp(routes[c->route].method, "POST") == 0 && !json_content_type(r))
        return glm_http_error(r, 415, NULL, NULL, "Unsupported Media Type: send the body as application/json");
    if (atomic_load(&srv->loading) && c->route != R_HEALTH && c->route != R_VERSION)
        return glm_http_error(r, 503, NULL, NULL, "the model is still loading");
    /* a kept-alive connection may still send requests while the server drains */
    if (atomic_load(&srv->draining) && c->route != R_HEALTH && c->route != R_METRICS)
        return glm_http_error(r, 503, NULL, NULL, "the server is shutting down");
    switch (c->route) {
    case R_HEALTH: return glm_handle_health(r, atomic_load(&srv->loading));
    case R_VERSION: return glm_handle_version(r);
    case R_MODELS: return glm_handle_models(r, &srv->served, NULL);
    case R_MODEL: return glm_handle_models(r, &srv->served, r->url + strlen(routes[R_MODEL].path));
    case R_METRICS: return glm_handle_metrics(r, &srv->gen);
    case R_TOKENIZE: return glm_handle_tokenize(r, &srv->served, &srv->chat);
    case R_DETOKENIZE: return glm_handle_detokenize(r, &srv->served, srv->out.tok);
    case R_CHAT: return glm_handle_completions(r, &srv->gen, 1);
    case R_COMPLETIONS: return glm_handle_completions(r, &srv->gen, 0);
    case R_RESPONSES: return glm_handle_responses(r, &srv->gen);
    default: return glm_http_error(r, 404, NULL, NULL, "Not Found");
    }
}

static enum MHD_Result add_header_bytes(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
    return MHD_YES;
}

/* The request line and headers as sent (give or take folded whitespace). */
static size_t header_bytes(struct MHD_Connection *connection, const char *method, const char *url,
                           const char *version)
{
    size_t n = strlen(method) + strlen(url) + strlen(version) + 4;
    MHD_get_connection_values(connection, MHD_HEADER_KIND, add_header_bytes, &n);
    return n;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    glm_server *srv = cls;
    conn *c = *con_cls;
    glm_http_req *r = c ? &c->req : NULL;
    if (c && r->pending) /* a waiting handler, its connection resumed */
        return r->resume(r);
    if (!c) {
        c = glm_calloc(1, sizeof *c);
        r = &c->req;
        c->srv = srv;
        r->conn = connection;
        r->method = method;
        r->url = url;
        r->t0 = glm_now();
        c->route = find_route(url);
        set_request_id(r, srv);
        r->cors_origin = cors_origin(r, srv->allowed_origins);
        atomic_fetch_add(&srv->active, 1);
        c->counted = 1;
        *con_cls = c;
        /* Headers past --max-header-bytes that still fit libmicrohttpd's pool (larger ones got
         * its own 431) */
        size_t hb = header_bytes(connection, method, url, version);
        if (hb > srv->max_header_bytes)
            return glm_http_error(r, 431, NULL, NULL,
                                  "the request line and headers are %zu bytes, more than --max-header-bytes %zu", hb,
                                  srv->max_header_bytes);
        /* An announced oversized body: answer 413 before reading it when the
         * client waits for "100 Continue" or the body is huge; otherwise read
         * and drop it first, since clients that are still sending when the
         * connection closes see a broken pipe instead of the 413. */
        const char *cl = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > srv->max_request_bytes) {
            r->too_large = 1;
            const char *expect = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
            if (expect || strtoull(cl, NULL, 10) > srv->max_request_bytes + ((size_t)64 << 20))
                return glm_http_error(r, 413, NULL, NULL, "the request body is larger than %zu bytes",
                                      srv->max_request_bytes);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->too_large || r->body_len + n > srv->max_request_bytes) {
            r->too_large = 1;
            free(r->body);
            r->body = NULL;
            r->body_len = 0;
            return MHD_YES;
        }
        r->body = glm_realloc(r->body, r->body_len + n + 1);
        memcpy(r->body + r->body_len, upload_data, n);
        r->body_len += n;
        r->body[r->body_len] = 0;
        return MHD_YES;
    }
    if (r->status) /* already answered (413 on the first call) */
        return MHD_YES;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    sock_ctx *sc = ci ? ci->socket_context : NULL;
    if (sc) /* the whole request is here: no read deadline while it is answered */
        atomic_store(&sc->busy, 1);
    return dispatch(c);
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    glm_server *srv = cls;
    conn *c = *con_cls;
    if (!c)
        return;
    glm_http_req *r = &c->req;
    fprintf(stderr, "glm-server: %s %s %s %d prompt_tokens=%d completion_tokens=%d %.3fs%s\n", r->request_id,
            r->method, r->url, r->status, r->prompt_tokens, r->completion_tokens, glm_now() - r->t0,
            toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
    if (r->pending && r->cancel) /* the connection ended under a waiting handler */
        r->cancel(r);
    if (c->counted)
        atomic_fetch_sub(&srv->active, 1);
    free(r->body);
    free(c);
    *con_cls = NULL;
    /* the next request on this connection: a new read deadline, the keep-alive timeout */
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    sock_ctx *sc = ci ? ci->socket_context : NULL;
    if (sc) {
        atomic_store(&sc->busy, 0);
        glm_waiter_deadline(sc->watch, glm_now() + srv->request_read_timeout_s);
        MHD_set_connection_option(connection, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)srv->idle_timeout_s);
    }
}

/* The read deadline passed (waiter thread): a connection still without a complete request is
 * shut down; libmicrohttpd sees the error and closes it. */
static void read_deadline(void *ctx, unsigned why)
{
    sock_ctx *sc = ctx;
    if ((why & GLM_WAKE_DEADLINE) && !atomic_load(&sc->busy))
        shutdown(sc->fd, SHUT_RDWR);
}

static void on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    glm_server *srv = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        sock_ctx *sc = glm_calloc(1, sizeof *sc);
        sc->srv = srv;
        sc->fd = ci ? ci->connect_fd : -1;
        sc->watch = glm_waiter_add(srv->waiter, -1, read_deadline, sc);
        if (sc->watch)
            glm_waiter_deadline(sc->watch, glm_now() + srv->request_read_timeout_s);
        *socket_context = sc;
        return;
    }
    sock_ctx *sc = *socket_context;
    if (sc) {
        glm_waiter_remove(sc->watch); /* fire is not running and will not: the descriptor stays ours */
        free(sc);
        *socket_context = NULL;
    }
}

/* libmicrohttpd's own messages (socket errors, refused connections), on one
 * prefixed line each like the rest of the log. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
        msg[--n] = 0;
    /* a client that closes or resets, one shut down by the read deadline, a stream ended on
     * purpose (its client left, or the shutdown: the request's own log line says so): routine,
     * and under attack a line each would flood the log */
    if (strstr(msg, "closed when reading request") || strstr(msg, "Connection reset by peer") ||
        strstr(msg, "detected connection closure") || strstr(msg, "application error generating response"))
        return;
    fprintf(stderr, "glm-server: http: %s\n", msg);
}

glm_http *glm_http_start(glm_server *srv, const char *host, int port, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    int gai = getaddrinfo(host, ports, &hints, &ai);
    if (gai != 0) {
        glm_err(err, errlen, "cannot resolve --host %s: %s", host, gai_strerror(gai));
        return NULL;
    }
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* descriptors: a connection takes one (the waiter watches the socket itself), and 256 are
     * kept for the model's files, the engine and the logs; the hard limit is raised too where
     * the process may (root, CAP_SYS_RESOURCE), as nginx's worker_rlimit_nofile does */
    unsigned max_conn = srv->max_connections > 0 ? (unsigned)srv->max_connections : GLM_HTTP_DEFAULT_MAX_CONNECTIONS;
    rlim_t need = (rlim_t)max_conn + GLM_HTTP_RESERVED_FDS;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        struct rlimit want = {need, rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? rl.rlim_max : need};
        if (setrlimit(RLIMIT_NOFILE, &want) != 0) {
            want.rlim_cur = want.rlim_max = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &want);
        }
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur) {
        unsigned fit = rl.rlim_cur > 2 * GLM_HTTP_RESERVED_FDS ? (unsigned)(rl.rlim_cur - GLM_HTTP_RESERVED_FDS) : 128;
        fprintf(stderr, "glm-server: %u connections need %llu descriptors, the limit is %llu: at most %u connections\n",
                max_conn, (unsigned long long)need, (unsigned long long)rl.rlim_cur, fit);
        max_conn = fit;
    }
    /* event-loop threads: one per core, 2 to 8, as many as the parse gate has slots
     * (parse_gate.h), so that a handler never waits at the gate and stalls its thread's other
     * connections; handlers are otherwise short, and 8 threads drive any number of sockets */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned pool = (unsigned)GLM_MAX(GLM_PARSE_GATE_MIN, GLM_MIN(cores > 0 ? cores : 2, GLM_PARSE_GATE_MAX));
    srv->waiter = glm_waiter_start(err, errlen);
    if (!srv->waiter) {
        freeaddrinfo(ai);
        return NULL;
    }
    glm_http *h = glm_calloc(1, sizeof *h);
    h->srv = srv;
    h->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE, pool,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION,
                            on_connection, srv, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv->idle_timeout_s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, srv->max_header_bytes + GLM_HTTP_POOL_MARGIN, MHD_OPTION_CONNECTION_LIMIT, max_conn, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                            (unsigned)GLM_MAX(srv->max_connections_per_ip, 0), MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        free(h);
        glm_waiter_free(srv->waiter);
        srv->waiter = NULL;
        glm_err(err, errlen, "cannot listen on %s:%d (address in use or not available)", host, port);
        return NULL;
    }
    return h;
}

void glm_http_stop_waiting(glm_http *h)
{
    glm_waiter_stop_all(h->srv->waiter);
}

void glm_http_quiesce(glm_http *h)
{
    MHD_socket s = MHD_quiesce_daemon(h->d);
    if (s != MHD_INVALID_SOCKET)
        close(s);
}

void glm_http_stop(glm_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    glm_waiter_free(h->srv->waiter); /* the hung-up clients' drains end at once */
    h->srv->waiter = NULL;
    free(h);
}
