/*
 * responses.h - the OpenAI Responses API, POST /v1/responses, stateless.
 *
 * responses.c reads a Responses request (input as text or items,
 * instructions, function tools, tool_choice, text.format, reasoning.effort,
 * max_output_tokens, sampling) into the chat request it means and parses
 * that with the chat API's parser (openai_request.c: the same prompt,
 * limits, sampling checks, grammars and refusals); everything else is a 400
 * naming the field. The generation runs as a chat completion does
 * (completions.h); responses_output.c writes the answer: the `response`
 * object, or the typed stream of events with their sequence numbers. Nothing
 * is stored: `store` is answered false and `previous_response_id` is a 400.
 * docs/api.md ("The Responses API") is the user's description.
 */
#ifndef GLM_RESPONSES_H
#define GLM_RESPONSES_H

#include "http.h"
#include "openai_response.h"

/* POST /v1/responses. */
enum MHD_Result glm_handle_responses(glm_http_req *r, const glm_gen_ctx *g);

/* The answer's writer (responses_output.c). echo: the response object's
 * members that repeat the request (instructions, tools, text, metadata, ...),
 * taken over by the format's state. */
extern const glm_gen_format glm_resp_format;
void *glm_resp_format_new(json_t *echo);

#endif
