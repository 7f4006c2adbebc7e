/*
 * reasoning.h - GLM-5's thinking switch in every spelling clients use, read
 * from an OpenAI chat request into one decision: which variables the chat
 * template sees (enable_thinking, clear_thinking, reasoning_effort), the
 * reasoning budget and whether reasoning is returned.
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
#ifndef GLM_REASONING_H
#define GLM_REASONING_H

#include <jansson.h>
#include <stddef.h>

typedef struct {
    json_t *kwargs;       /* the template's extra variables (enable_thinking, clear_thinking,
                             reasoning_effort, and chat_template_kwargs as given) */
    int budget;           /* reasoning tokens at most, or -1 */
    int exclude;          /* 1: reasoning is generated and counted but not returned */
    char param[64];       /* on error: the top-level field to report */
} glm_reasoning;

/*
 * Reads the switches above from a request object. defaults: the server's
 * default template variables (may be NULL); a request's own setting wins.
 * GLM_OK, or GLM_ERR with one line in err and o->param set; on GLM_OK the
 * caller owns o->kwargs (json_decref).
 */
int glm_reasoning_parse(const json_t *request, const json_t *defaults, glm_reasoning *o, char *err, size_t errlen);

#endif
