/*
 * openai_request.h - parsing and validating the body of POST
 * /v1/chat/completions and /v1/completions into engine inputs: the prompt's
 * token ids (chat: engine/glm/chat_prompt.h, as /tokenize and `render`),
 * sampling parameters, stop strings, streaming and logprob options, and what
 * the output parser needs (think mode, tools).
 *
 * Unknown fields are ignored; a known field with the wrong type or range is
 * an error naming the field (a 400 with "param" set), and so is a known
 * OpenAI or vLLM field this server does not implement (docs/api.md lists
 * them), rather than being ignored. Nothing here talks to
 * the network. The struct keeps nothing of the JSON root but a reference to
 * the tools, so the caller frees the root as soon as parsing returns: a
 * request holds its prompt ids and small parameters while it generates, not
 * its body.
 */
#ifndef GLM_OPENAI_REQUEST_H
#define GLM_OPENAI_REQUEST_H

#include <jansson.h>
#include <stdint.h>

#include "constrain/grammar.h"
#include "glm/chat_prompt.h"
#include "glm/output_parser.h"
#include "backend/sampler.h"
#include "server.h"

#define GLM_OAI_MAX_STOP 16

/* One prompt of a completions request. */
typedef struct {
    int32_t *ids;                 /* [n], malloc'd */
    int n;
    char *text;                   /* its text with echo, else NULL; malloc'd */
} glm_oai_prompt;

typedef struct {
    int chat;                     /* 1: chat completions; 0: completions */
    int stream;
    int include_usage;            /* stream_options.include_usage */
    int continuous_usage;         /* stream_options.continuous_usage_stats (vLLM, with
                                     include_usage): every chunk carries the usage so far */
    int include_stop_str;         /* vLLM's include_stop_str_in_output */
    int truncate;                 /* vLLM's truncate_prompt_tokens: keep each prompt's last
                                     `truncate` tokens (0: all) */
    int tokens_as_ids;            /* vLLM's return_tokens_as_token_ids: logprobs name tokens
                                     "token_id:N" */
    int return_token_ids;         /* vLLM's return_token_ids: the prompt's and each choice's
                                     token ids in the response (not with stream) */
    int logprobs;                 /* report per-token logprobs */
    int top_logprobs;             /* 0..20 alternatives per token */
    int skip_special;             /* skip_special_tokens, default 1 */
    int echo;                     /* completions: prepend the prompt text (and with logprobs,
                                     the prompt's logprobs: sp.prompt_logprobs) */
    int prompt_logprobs;          /* vLLM's prompt_logprobs field: -1 absent, else 0..20 top
                                     tokens; the response carries `prompt_logprobs` */
    glm_sampling_params sp;       /* validated; arrays point into this struct */
    int32_t stop_ids[64];
    glm_sampling_logit_bias *bias; /* [sp.n_logit_bias], malloc'd */
    const char *stops[GLM_OAI_MAX_STOP]; /* malloc'd copies (owned) */
    size_t stop_lens[GLM_OAI_MAX_STOP];
    int n_stops;
    int32_t *prompt;              /* [n_prompt], malloc'd: the first (chat: the only) prompt */
    int n_prompt;
    char *prompt_text;            /* completions: the prompt's text with echo, else NULL */
    int n_prompts;                /* completions: a list of prompts; 1 otherwise */
    glm_oai_prompt *more;         /* [n_prompts - 1]: prompts 1.. of the list, malloc'd */
    glm_chat_prompt prompt_info;  /* chat: what engine/glm read from the request (think mode,
                                     reasoning budget and exclusion, tools, tool_choice); its
                                     ids moved to prompt, its text freed. Completions: no
                                     tools, think off, budget -1 */
    glm_grammar *grammar;         /* the answer's grammar (tool_choice required/named,
                                     response_format), or NULL; owned */
    int content_plain;            /* an output format governs the answer: no tags parsed in it */
    const struct glm_gen_format *format; /* another API's answer (the Responses API, responses.c), or
                                            NULL: chat / completions (openai_response.h) */
    void *format_ctx;             /* the format's state; freed with the request */
} glm_oai_request;

/*
 * Fills r from the request object `root`. Returns GLM_OK, or GLM_ERR with
 * *status (400 or 404), *param (the offending field, or NULL) and one line in
 * err (OpenAI / vLLM wording where one exists, e.g. "The model `x` does not
 * exist."). On GLM_ERR nothing needs freeing; on GLM_OK call
 * glm_oai_request_free.
 */
int glm_oai_request_parse(glm_oai_request *r, const json_t *root, int chat, const glm_gen_ctx *g, int *status,
                          const char **param, char *err, size_t errlen);
void glm_oai_request_free(glm_oai_request *r);

/* Prompt i of r (0 <= i < n_prompts). */
glm_oai_prompt glm_oai_prompt_at(const glm_oai_request *r, int i);

/* glm_sampling_params_init, then the server's defaults d (for the fields a
 * request omits). */
void glm_oai_sampling_init(glm_sampling_params *sp, const glm_sampling_defaults *d);

#endif
