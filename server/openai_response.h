/*
 * openai_response.h - turning engine events into OpenAI responses: the
 * chat.completion / text_completion objects of a non-streaming request and
 * the chunk events of a streaming one (Server-Sent Events).
 *
 * One glm_gen per request. For each generated token it runs, per sample, the
 * streaming detokenizer (complete UTF-8 only), the stop-string matcher
 * (held-back text is never sent past a stop string) and, for chat, the GLM
 * output parser (reasoning / content / tool calls). Every JSON value built is
 * checked (jansson returns NULL for invalid UTF-8 and non-finite reals);
 * -inf logprobs are written as -9999.0 as vLLM does.
 */
#ifndef GLM_OPENAI_RESPONSE_H
#define GLM_OPENAI_RESPONSE_H

#include <stddef.h>

#include "core/buf.h"
#include "sched/engine.h"
#include "openai_request.h"
#include "server.h"

typedef struct glm_gen glm_gen;

/* Per-request state; req (and its JSON) must outlive it. id: the response id
 * ("chatcmpl-..." / "cmpl-..."). Never NULL. */
glm_gen *glm_gen_create(const glm_gen_ctx *cx, const glm_oai_request *req, const char *id);
void glm_gen_free(glm_gen *g);

/*
 * Consumes one engine event. When streaming, appends the resulting SSE
 * events to out (the first call also writes each sample's role chunk).
 * Returns 1 once every sample is finished (by the engine or by a stop
 * string): the caller should then abort the engine request, which may still
 * run, and keep reading events for the usage figures until the end.
 */
int glm_gen_event(glm_gen *g, const glm_event *ev, glm_buf *out);

/* Streaming: appends the role chunks if not yet written (so that a stream
 * always starts with them). */
void glm_gen_stream_start(glm_gen *g, glm_buf *out);

/* Streaming: appends the usage chunk (when asked for) and "data: [DONE]". */
void glm_gen_stream_end(glm_gen *g, glm_buf *out);

/* Streaming: the request failed (status 400 or 500, one line): appends what
 * ends the stream, an error object and "data: [DONE]". */
void glm_gen_stream_error(glm_gen *g, int status, const char *message, glm_buf *out);

/* Non-streaming: the whole response object as a malloc'd JSON string, or
 * NULL if it could not be serialised. */
char *glm_gen_response(glm_gen *g);

/* The finish reason sent for sample i ("stop", "length", "abort",
 * "tool_calls"), or NULL while it runs. */
const char *glm_gen_finish_reason(const glm_gen *g, int i);

/* Usage so far, for the request log line. */
void glm_gen_usage(const glm_gen *g, int *prompt_tokens, int *completion_tokens);

/*
 * Another API's answer over the same generation (the Responses API,
 * responses.c): a request with a format (glm_oai_request.format, one sample,
 * chat prompt) has its stream and response object written by it. Each
 * streamed piece of the output parser goes to delta() instead of a chat
 * chunk; glm_gen_stream_start, glm_gen_stream_end, glm_gen_stream_error and
 * glm_gen_response call start(), end(), error() and response(). The
 * accessors below give it the rest.
 */
typedef struct glm_gen_format {
    void (*start)(void *ctx, const glm_gen *g, glm_buf *out);
    void (*delta)(void *ctx, const glm_gen *g, const glm_out_delta *d, glm_buf *out);
    void (*end)(void *ctx, const glm_gen *g, glm_buf *out);
    void (*error)(void *ctx, const glm_gen *g, int status, const char *message, glm_buf *out);
    char *(*response)(void *ctx, const glm_gen *g);  /* malloc'd JSON, or NULL */
    void (*free)(void *ctx);
} glm_gen_format;

/* The response id and creation time (Unix seconds). */
const char *glm_gen_id(const glm_gen *g);
long glm_gen_created(const glm_gen *g);

/* Sample 0's output as parsed so far (valid until the next event). */
void glm_gen_message(const glm_gen *g, glm_out_message *m);

/* Prompt tokens read from the prefix cache; generated tokens inside the
 * reasoning, over all samples. */
void glm_gen_usage_details(const glm_gen *g, int *cached_tokens, int *reasoning_tokens);

#endif
