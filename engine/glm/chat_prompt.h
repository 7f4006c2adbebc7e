/*
 * chat_prompt.h - the one way from an OpenAI chat request to GLM-5's prompt:
 * request JSON -> validated template inputs -> rendered prompt text -> token
 * ids. The chat API (/v1/chat/completions), /tokenize and `glm-server render`
 * all call glm_chat_prompt_build, so they produce the same prompt for the same
 * request and reject the same bad requests with the same message.
 *
 * What it reads, in this order (the first error wins):
 *   messages              a non-empty array of objects with role "system",
 *                         "user", "assistant" or "tool"; content a string or
 *                         an array of {"type": "text", "text"} parts (null
 *                         only for assistant messages); tool-call arguments
 *                         that are JSON strings must parse
 *   tools                 a non-empty array of {"type": "function", "function":
 *                         {"name", "description", "parameters", "strict"}},
 *                         names unique, 1-64 of [A-Za-z0-9_.-], parameters a
 *                         well-formed JSON Schema for an object
 *   tool_choice           "none" | "auto" | "required" | {"type": "function",
 *                         "function": {"name"}} naming one of the tools; needs tools
 *   parallel_tool_calls   a boolean
 *   add_generation_prompt a boolean (default true)
 *   the reasoning switches (reasoning.h) and chat_template_kwargs
 * Messages reach the template as vLLM passes them to GLM templates: JSON-string
 * tool-call arguments become objects (the template iterates
 * `arguments.items()`), and `reasoning` sent back on an assistant message
 * becomes `reasoning_content`. Other fields (sampling, stop, response_format)
 * are not read here.
 */
#ifndef GLM_CHAT_PROMPT_H
#define GLM_CHAT_PROMPT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "glm/output_parser.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

/* What a prompt is built with: the checkpoint's text side and the server's
 * defaults. Read-only; shared by every request. */
typedef struct {
    const glm_chat_template *tmpl;
    const glm_tok *tok;
    const json_t *default_kwargs; /* template variables every request starts from
                                     (--default-chat-template-kwargs), or NULL */
    const glm_out_tags *tags;     /* the reasoning and tool-call tags */
} glm_chat_ctx;

typedef enum {
    GLM_TOOL_CHOICE_AUTO = 0,
    GLM_TOOL_CHOICE_NONE,
    GLM_TOOL_CHOICE_REQUIRED,
    GLM_TOOL_CHOICE_NAMED,
} glm_tool_choice;

typedef struct {
    char *text;                   /* the rendered prompt, malloc'd, NUL-terminated */
    size_t len;
    int32_t *ids;                 /* its tokens (special tokens recognised), malloc'd */
    size_t n_ids;
    glm_out_think_mode think;     /* where the answer starts, from the prompt's ending */
    int budget;                   /* reasoning tokens at most, or -1 */
    int exclude_reasoning;        /* reasoning is generated and counted but not returned */
    const json_t *tools;          /* the validated tools (borrowed from the request), or NULL */
    glm_tool_choice tool_choice;  /* NONE when there are no tools */
    const char *tool_name;        /* GLM_TOOL_CHOICE_NAMED: the function (borrowed) */
    int parallel_tool_calls;      /* default 1 */
    int parse_tools;              /* tools given and tool_choice is not "none" */
    char param[64];               /* on error: the request field to blame ("" for none) */
} glm_chat_prompt;

/*
 * Builds p from the chat request object `request` (which must outlive p: tools
 * and tool_name point into it). GLM_OK; or GLM_ERR with one line in err (the
 * wording of OpenAI and vLLM where one exists) and p->param set, and nothing
 * to free.
 */
int glm_chat_prompt_build(const glm_chat_ctx *c, const json_t *request, glm_chat_prompt *p, char *err,
                          size_t errlen);

/* Frees text and ids; p is empty afterwards. */
void glm_chat_prompt_free(glm_chat_prompt *p);

#endif
