/*
 * chat_template.h - a checkpoint's chat template: loading and rendering
 * conversations into prompts exactly as transformers'
 * tokenizer.apply_chat_template(messages, tools=..., tokenize=False,
 * add_generation_prompt=..., **kwargs) does.
 *
 * What transformers does around the Jinja render, and this module repeats:
 *   - keys whose value is null are dropped from every message;
 *   - a message's reasoning (the first non-null of reasoning_content, thinking,
 *     reasoning) is copied to both `thinking` and `reasoning_content`;
 *   - the template sees: the named special tokens of tokenizer_config.json
 *     (bos_token, eos_token, unk_token, sep_token, pad_token, cls_token,
 *     mask_token, where set), then the caller's kwargs (they win), and
 *     `messages`, `tools` (None when not given), `documents` (None) and
 *     `add_generation_prompt`;
 *   - with several named templates, the "tool_use" one is used when tools are
 *     given and it exists, else "default".
 * Tool-call arguments are passed as given: templates such as GLM-5's iterate
 * `arguments.items()`, so callers that receive OpenAI-style JSON-string
 * arguments should parse them into objects first (as vLLM does).
 */
#ifndef GLM_CHAT_TEMPLATE_H
#define GLM_CHAT_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "text/jinja/jinja.h"

typedef struct glm_chat_template glm_chat_template;

/* Loads the template of checkpoint directory `dir` with transformers' precedence:
 * `chat_template.jinja` (plus `additional_chat_templates/tool_use.jinja` when
 * present), else tokenizer_config.json's "chat_template": a string, or a list
 * of {"name", "template"} of which "default" and "tool_use" are used. Special
 * tokens come from tokenizer_config.json (absent file: none). Returns GLM_OK
 * with *out set, or GLM_ERR with one line in err (no template, unreadable or
 * invalid file, template syntax error with its line number). */
int glm_chat_template_load(const char *dir, glm_chat_template **out, char *err, size_t errlen);

/* Builds a template from text (e.g. a --chat-template override).
 * `tokenizer_config` (may be NULL) supplies the special tokens only. */
int glm_chat_template_from_string(const char *text, size_t len, const json_t *tokenizer_config,
                                  glm_chat_template **out, char *err, size_t errlen);

/* Limits applied to every render (see jinja.h); NULL restores the defaults.
 * Not thread-safe with concurrent renders: set it right after loading. */
void glm_chat_template_set_limits(glm_chat_template *ct, const glm_jinja_limits *limits);

/* The value of a named special token ("eos_token", ...) as the template sees
 * it, or NULL when the tokenizer config does not set it. Valid while ct lives. */
const char *glm_chat_template_special_token(const glm_chat_template *ct, const char *name);

/* Renders a conversation. `messages`: a non-empty array of objects (read only).
 * `tools`: an array of tool objects, or NULL for no tools (the template then
 * sees None; an empty array is passed as an empty list). `kwargs`: an object of
 * extra template variables (chat_template_kwargs, e.g. enable_thinking), or
 * NULL; it may not set messages, tools, documents, add_generation_prompt or
 * chat_template. On success stores a malloc'd NUL-terminated prompt in
 * *prompt (length in *len when len is not NULL; the caller frees it) and
 * returns GLM_OK; otherwise GLM_ERR with one line in err, e.g. a template's
 * raise_exception message or an exhausted render limit. Thread-safe: many
 * renders may share one template. */
int glm_chat_render(const glm_chat_template *ct, const json_t *messages, const json_t *tools,
                    bool add_generation_prompt, const json_t *kwargs, char **prompt, size_t *len,
                    char *err, size_t errlen);

void glm_chat_template_free(glm_chat_template *ct);

#endif
