/*
 * completions.h - one generation over HTTP (completions.c): a POST body is
 * read within the request limits (request_body.h), parsed into engine inputs
 * by the API's own parser, submitted, and answered whole or streamed as
 * Server-Sent Events while the connection is suspended between engine
 * events. The chat and completions APIs use it, and so does the Responses
 * API (responses.c), whose parser also attaches the format that writes its
 * answer (glm_oai_request.format).
 */
#ifndef GLM_COMPLETIONS_H
#define GLM_COMPLETIONS_H

#include <jansson.h>

#include "http.h"
#include "openai_request.h"

typedef struct {
    const char *id_prefix;     /* of the response id: "chatcmpl-", "cmpl-", "resp_" */
    const char *prompt_param;  /* the field named when the engine refuses the prompt */
    /* Fills r from the body's tree (glm_oai_request_parse's contract). */
    int (*parse)(glm_oai_request *r, const json_t *root, const glm_gen_ctx *g, int *status, const char **param,
                 char *err, size_t errlen);
} glm_gen_api;

/* Answers r with one generation; queues exactly one response (http.h). */
enum MHD_Result glm_generate(glm_http_req *r, const glm_gen_ctx *g, const glm_gen_api *api);

#endif
