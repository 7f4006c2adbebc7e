/*
 * structured.h - tools, tool_choice, parallel_tool_calls and the output
 * format of a chat or text request (structured.c): validation and the
 * grammar that constrains the answer.
 */
#ifndef GLM_STRUCTURED_H
#define GLM_STRUCTURED_H

#include <jansson.h>

#include "openai_request.h"

/* Builds r->grammar from tool_choice "required" / a named function, or from
 * response_format (json_object, json_schema), structured_outputs (json,
 * json_object, grammar) or llama.cpp's json_schema / grammar. Call after the
 * prompt is built (r->prompt_info holds the tools). A schema given as JSON
 * text is parsed within lim. GLM_ERR with *param and one line in err. */
int glm_oai_grammar_build(glm_oai_request *r, const json_t *root, const glm_output_ctx *out,
                          const glm_json_limits *lim, const char **param, char *err, size_t errlen);

/* Builds the server's vocabulary tries and the tags' token ids into srv->out
 * (after the tokenizer and model are loaded). */
void glm_oai_vocab_setup(glm_server *srv);
void glm_oai_vocab_free(glm_server *srv);

/* When the request needs a logits processor (a reasoning budget, a grammar,
 * tool_choice "none", parallel_tool_calls false), fills *proc and returns 1;
 * the request's grammar moves into it. Else 0. */
int glm_oai_processor(glm_oai_request *r, const glm_output_ctx *out, glm_logits_processor *proc);

#endif
