/*
 * http.h - the HTTP layer of `glm-server serve` on libmicrohttpd: the daemon
 * (one thread per connection, so a handler may block while its request
 * generates), request bodies up to srv->max_request_bytes (413 beyond),
 * routing with 404/405, API-key checks (401), X-Request-Id, OpenAI-shaped
 * errors, CORS (--allowed-origins: headers on every response, OPTIONS
 * preflights answered before authentication) and one log line per request.
 *
 * Handlers (handlers.c, completions.c) receive a glm_http_req and the
 * contexts of their concern (server.h), never the whole server, and must
 * queue exactly one response through the helpers below (or glm_http_queue).
 */
#ifndef GLM_HTTP_H
#define GLM_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <stddef.h>

#include "server.h"

typedef struct glm_http_req_ {
    struct MHD_Connection *conn;
    const char *method, *url;
    char *body;                 /* NUL-terminated, body_len bytes */
    size_t body_len;
    int too_large;
    char request_id[72];
    int status;                 /* of the queued response, for the log */
    int prompt_tokens, completion_tokens;
    double t0;
    const char *cors_origin;    /* internal: the request's Origin when allowed (or "*") */
    /* a handler that waits (its connection suspended, completions.c): its state, what the router
     * calls when the connection is resumed, and what it calls if the connection ends first */
    void *pending;
    enum MHD_Result (*resume)(struct glm_http_req_ *r);
    void (*cancel)(struct glm_http_req_ *r);
} glm_http_req;

/* Queues resp with status, X-Request-Id and the given content type; takes
 * ownership of resp. Returns the MHD result to hand back. */
enum MHD_Result glm_http_queue(glm_http_req *r, int status, struct MHD_Response *resp, const char *content_type);

/* Queues a JSON body (takes the reference to obj). */
enum MHD_Result glm_http_json(glm_http_req *r, int status, json_t *obj);

/* Queues an OpenAI error: {"error": {"message", "type", "param", "code"}}.
 * type NULL: derived from status. param may be NULL. */
enum MHD_Result glm_http_error(glm_http_req *r, int status, const char *type, const char *param, const char *fmt,
                               ...) __attribute__((format(printf, 5, 6)));

/* Parses the body as a JSON object; on failure queues a 400 and returns NULL
 * (*result set to what the handler must return). */
json_t *glm_http_body_json(glm_http_req *r, enum MHD_Result *result);

/* The connection's socket, for noticing a client that went away. */
int glm_http_socket(const glm_http_req *r);

typedef struct glm_http glm_http;

/* Starts serving on host:port. NULL with a message in err (address in use,
 * bad host). */
glm_http *glm_http_start(glm_server *srv, const char *host, int port, char *err, size_t errlen);

/* Stops accepting connections (running ones continue). */
void glm_http_quiesce(glm_http *h);

/* The shutdown's grace period ran out: every waiting request aborts at once. */
void glm_http_stop_waiting(glm_http *h);

/* --max-connections by default: what one machine's descriptors allow comfortably. */
#define GLM_HTTP_DEFAULT_MAX_CONNECTIONS 16384

/* Descriptors kept beside the connections' (the model's files, the engine, logs, the listener). */
#define GLM_HTTP_RESERVED_FDS 256

/* --max-header-bytes by default: the request line and headers (nginx's and Apache's 8 KB a
 * line; an OpenAI SDK request sends about 600 bytes). */
#define GLM_HTTP_DEFAULT_MAX_HEADER_BYTES 8192

/* libmicrohttpd's memory pool per connection (its default is 32 KiB) is --max-header-bytes plus
 * this: room for its per-header records, the body's read buffer, the response's headers and a
 * stream's chunks. Every open connection holds its pool. */
#define GLM_HTTP_POOL_MARGIN 4096

/* Closes everything and frees h. Handlers must have returned (see
 * srv->active and glm_http_stop_waiting). */
void glm_http_stop(glm_http *h);

/* Handlers, by route; each gets the contexts it needs (server.h). */
enum MHD_Result glm_handle_health(glm_http_req *r, int loading);
enum MHD_Result glm_handle_version(glm_http_req *r);
enum MHD_Result glm_handle_models(glm_http_req *r, const glm_served_model *m, const char *id);
enum MHD_Result glm_handle_metrics(glm_http_req *r, const glm_gen_ctx *g);
enum MHD_Result glm_handle_tokenize(glm_http_req *r, const glm_served_model *m, const glm_chat_ctx *chat);
enum MHD_Result glm_handle_detokenize(glm_http_req *r, const glm_served_model *m, const glm_tok *tok);
enum MHD_Result glm_handle_completions(glm_http_req *r, const glm_gen_ctx *g, int chat);

#endif
