/* request_body.c - POST bodies scanned, gated, parsed and freed early; see request_body.h. */
#include "request_body.h"

#include <malloc.h>
#include <stdlib.h>

#include "core/json_limits.h"
#include "core/util.h"

int glm_body_open(glm_http_req *r, const glm_served_model *m, glm_body *b, enum MHD_Result *result)
{
    b->root = NULL;
    b->bytes = r->body_len;
    b->values = 0;
    glm_json_shape s;
    if (glm_json_scan(r->body ? r->body : "", r->body_len, m->body_limits, &s) != GLM_OK) {
        char err[GLM_ERRLEN];
        glm_json_shape_error(&s, m->body_limits, "the request body", err, sizeof err);
        *result = glm_http_error(r, 400, NULL, s.field[0] ? s.field : NULL, "%s", err);
        free(r->body); /* not read again */
        r->body = NULL;
        r->body_len = 0;
        return GLM_ERR;
    }
    b->values = s.values;
    if (glm_parse_gate_enter(m->gate) != GLM_OK) {
        *result = glm_http_error(r, 503, NULL, NULL,
                                 "the server is overloaded: %d request bodies are being parsed, try again",
                                 m->gate->slots);
        return GLM_ERR;
    }
    b->root = glm_http_body_json(r, result);
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
    if (!b->root) {
        glm_body_close(m, b);
        return GLM_ERR;
    }
    return GLM_OK;
}

void glm_body_close(const glm_served_model *m, glm_body *b)
{
    json_decref(b->root);
    b->root = NULL;
    glm_parse_gate_leave(m->gate);
    /* free() keeps the pages of a large tree (many small blocks, arenas per thread) */
    if (b->bytes >= GLM_BODY_TRIM_BYTES || b->values >= GLM_BODY_TRIM_VALUES)
        malloc_trim(0);
}
