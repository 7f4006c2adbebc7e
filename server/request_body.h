/*
 * request_body.h - a POST body into a JSON tree, in bounded memory.
 *
 * A body of tiny JSON values grows 20 to 80 times as jansson builds its tree
 * (core/json_limits.h), so its shape is scanned first, on the bytes: a body
 * over the served model's limits (nesting, JSON values, members of one array
 * or object: glm_chat_limits.json) is answered 400 naming the top-level
 * field, before any tree exists and without taking a parse slot. Within the
 * limits the body waits for a slot of the parse gate (parse_gate.h; 503 when
 * none frees up in time), is parsed, and its bytes are freed; the handler
 * turns the tree into what it keeps (prompt ids, parameters). glm_body_close
 * then frees the tree and the slot at once, and after a large body returns
 * the freed memory to the system (malloc_trim), so that what a request holds
 * while it generates is its ids, not its body.
 */
#ifndef GLM_REQUEST_BODY_H
#define GLM_REQUEST_BODY_H

#include <jansson.h>
#include <stddef.h>

#include "http.h"

/* Bodies of at least this many bytes or JSON values give their memory back to
 * the system when closed (smaller ones leave too little to matter). */
#define GLM_BODY_TRIM_BYTES ((size_t)1 << 20)
#define GLM_BODY_TRIM_VALUES ((size_t)1 << 14)

/* A body being read: its tree, and its size once its bytes are freed. */
typedef struct {
    json_t *root;
    size_t bytes;
    size_t values;
} glm_body;

/* Parses r's body into b->root (a JSON object), holding a parse slot, and
 * frees the body's bytes (the tree is all that is read afterwards). GLM_OK;
 * or GLM_ERR when an answer was queued and *result is what the handler
 * returns (400: the body is over the limits, not JSON or not an object; 503:
 * no parse slot in time). After GLM_OK call glm_body_close once the tree has
 * been read. */
int glm_body_open(glm_http_req *r, const glm_served_model *m, glm_body *b, enum MHD_Result *result);

/* Frees the tree, gives the slot back, and trims the heap after a body of
 * GLM_BODY_TRIM_BYTES or GLM_BODY_TRIM_VALUES or more. */
void glm_body_close(const glm_served_model *m, glm_body *b);

#endif
