/*
 * chat_request.h - the parts of an OpenAI chat request that shape the prompt
 * and the reasoning: which variables the chat template sees, whether the
 * model thinks, the reasoning budget and whether reasoning is returned.
 * Shared by `glm-server render`, /tokenize and the chat endpoint, so all of
 * them produce the same prompt for the same request.
 *
 * The reasoning switch, in every spelling clients use (../docs/api.md):
 *   reasoning: true|false                         seed's extra_body, OpenRouter
 *   reasoning: {"enabled", "effort", "exclude", "max_tokens"}      OpenRouter
 *   thinking: {"type": "enabled"|"disabled", "clear_thinking"}         Z.ai
 *   chat_template_kwargs: {"enable_thinking": bool, ...}   vLLM, SGLang, llama.cpp
 *   reasoning_effort: "none"|"minimal"|"low"|"medium"|"high"|"xhigh"   OpenAI
 *   thinking_token_budget: N                                           vLLM
 *   include_reasoning: bool                                            vLLM
 * Explicit switches are reasoning true/false, reasoning.enabled, thinking.type,
 * enable_thinking, and an effort of "none" (off). An effort other than "none",
 * a reasoning object and a budget ask for thinking implicitly. Two explicit
 * switches that disagree are an error naming both; otherwise an explicit off
 * wins over everything, then an explicit or implicit on, then the server's
 * default (--default-chat-template-kwargs), then the template's own default
 * (GLM-5 thinks). The same holds for clear_thinking, the effort and the
 * budget: two different values are an error.
 */
#ifndef GLM_CHAT_REQUEST_H
#define GLM_CHAT_REQUEST_H

#include <jansson.h>
#include <stddef.h>

typedef struct {
    json_t *kwargs;       /* the template's extra variables (enable_thinking, clear_thinking,
                             reasoning_effort, and chat_template_kwargs as given) */
    int budget;           /* reasoning tokens at most, or -1 */
    int exclude;          /* 1: reasoning is generated and counted but not returned */
    char param[64];       /* on error: the top-level field to report */
} glm_chat_options;

/*
 * Reads the switches above from a request object. defaults: the server's
 * default template variables (may be NULL); a request's own setting wins.
 * GLM_OK, or GLM_ERR with one line in err and o->param set; on GLM_OK the
 * caller owns o->kwargs (json_decref).
 */
int glm_chat_options_parse(const json_t *request, const json_t *defaults, glm_chat_options *o, char *err,
                           size_t errlen);

/*
 * A copy of the request's messages ready for the template:
 *  - the OpenAI form of an assistant tool call carries `function.arguments` as
 *    a JSON string; GLM templates iterate it as an object
 *    (`arguments.items()`), so a string that parses to a JSON object is
 *    replaced by the object, as vLLM does;
 *  - reasoning sent back on an assistant message as `reasoning` (OpenRouter,
 *    vLLM) becomes `reasoning_content`, the name the template reads.
 * Returns a new array or NULL with a message (e.g. arguments that are not
 * valid JSON).
 */
json_t *glm_chat_messages_for_template(const json_t *messages, char *err, size_t errlen);

#endif
