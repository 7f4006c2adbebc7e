/*
 * chat_request.h - the parts of an OpenAI chat request that shape the prompt:
 * which variables the chat template sees. Shared by `glm-server render` and
 * the HTTP server, so both produce the same prompt for the same request.
 */
#ifndef GLM_CHAT_REQUEST_H
#define GLM_CHAT_REQUEST_H

#include <jansson.h>
#include <stddef.h>

/*
 * Builds the template's extra variables from a request object:
 *   chat_template_kwargs (vLLM, SGLang, llama.cpp), an object, copied as is;
 *   thinking {"type": "enabled"|"disabled", "clear_thinking": bool} (Z.ai);
 *   reasoning true|false or {"enabled": bool, "effort": "none"|...} (OpenRouter,
 *     and `extra_body={"reasoning": true}`);
 *   reasoning_effort "none"|"low"|"medium"|"high"|... (OpenAI; "none" turns
 *     thinking off; the value is also passed on for templates that use it).
 * They set enable_thinking (and clear_thinking / reasoning_effort); an
 * explicit chat_template_kwargs entry wins over the other spellings.
 * Returns a new object, or NULL with a message naming the bad field.
 */
json_t *glm_chat_template_kwargs(const json_t *request, char *err, size_t errlen);

/*
 * A copy of the request's messages ready for the template: the OpenAI form
 * of an assistant tool call carries `function.arguments` as a JSON string,
 * GLM templates iterate it as an object (`arguments.items()`), so a string that
 * parses to a JSON object is replaced by the object, as vLLM does. Returns a
 * new array or NULL with a message (e.g. arguments that are not valid JSON).
 */
json_t *glm_chat_messages_for_template(const json_t *messages, char *err, size_t errlen);

#endif
