/*
 * chat_prompt.h - the one way from an OpenAI chat request to GLM-5's prompt:
 * request JSON -> validated template inputs -> rendered prompt text -> token
 * ids. The chat API (/v1/chat/completions), /tokenize and `glm-server render`
 * all call glm_chat_prompt_build, so they produce the same prompt for the same
 * request and reject the same bad requests with the same message.
 *
 * What it reads, in this order (the first error wins):
 *   messages              a non-empty array of at most limits.max_messages
 *                         objects with role "system", "user", "assistant" or
 *                         "tool"; content a string or an array of at most
 *                         limits.max_parts {"type": "text", "text"} parts
 *                         (null only for assistant messages); tool-call
 *                         arguments that are JSON strings must parse (within
 *                         limits.json)
 *   tools                 a non-empty array of at most limits.max_tools
 *                         {"type": "function", "function":
 *                         {"name", "description", "parameters", "strict"}},
 *                         names unique, 1-64 of [A-Za-z0-9_.-], parameters a
 *                         well-formed JSON Schema for an object
 *   tool_choice           "none" | "auto" | "required" | {"type": "function",
 *                         "function": {"name"}} naming one of the tools; needs tools
 *   parallel_tool_calls   a boolean
 *   add_generation_prompt a boolean (default true)
 *   the reasoning switches (reasoning.h) and chat_template_kwargs (within
 *                         limits.kwargs)
 * Messages reach the template as vLLM passes them to GLM templates: JSON-string
 * tool-call arguments become objects (the template iterates
 * `arguments.items()`), and `reasoning` sent back on an assistant message
 * becomes `reasoning_content`. Other fields (sampling, stop, response_format)
 * are not read here.
 *
 * Memory: the template sees the request's own values (messages that need no
 * change are passed by reference, the others as shallow copies), so building
 * a prompt adds to the request's tree only the template's working memory, the
 * text and its ids; the request can be freed as soon as this returns (p keeps
 * a reference to what it borrows).
 */
#ifndef GLM_CHAT_PROMPT_H
#define GLM_CHAT_PROMPT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/json_limits.h"
#include "glm/output_parser.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

/*
 * Bounds on a request, so that the memory a request takes follows from them
 * and not from what a client sends (README, "Request limits"). A zero field
 * is no limit. glm_chat_limits_init sets the server's, from the context
 * length: a limit a real client never reaches.
 */
typedef struct {
    glm_json_limits json;         /* every request body (the server scans it before parsing it); the
                                     body and its tool-call arguments texts together (values); a
                                     response_format schema given as text */
    int max_messages;             /* in 'messages' */
    int max_parts;                /* content parts of one message */
    int max_tools;                /* in 'tools' */
    glm_json_limits kwargs;       /* chat_template_kwargs; --default-chat-template-kwargs */
} glm_chat_limits;

/* The values glm_chat_limits_init gives (see it for why). */
#define GLM_CHAT_MAX_DEPTH 128            /* JSON nesting of a body */
#define GLM_CHAT_EXTRA_VALUES (1u << 16)  /* JSON values of a body: one per token of context and 65536 */
#define GLM_CHAT_MIN_MEMBERS (1u << 16)   /* one array or object: the context, at least 65536 */
#define GLM_CHAT_MAX_TOOLS 128            /* OpenAI's limit */
#define GLM_CHAT_KWARGS_DEPTH 16
#define GLM_CHAT_KWARGS_VALUES 4096
#define GLM_CHAT_KWARGS_STRING_BYTES ((size_t)1 << 20)

/* The limits for a model of max_model_len tokens of context. */
void glm_chat_limits_init(glm_chat_limits *l, int max_model_len);

/* What a prompt is built with: the checkpoint's text side and the server's
 * defaults. Read-only; shared by every request. */
typedef struct {
    const glm_chat_template *tmpl; /* NULL: the checkpoint has none (a base model): every
                                     request is refused with a 400 naming `messages` */
    const glm_tok *tok;
    const json_t *default_kwargs; /* template variables every request starts from
                                     (--default-chat-template-kwargs, within limits.kwargs), or NULL */
    const glm_out_tags *tags;     /* the reasoning and tool-call tags */
    glm_chat_limits limits;       /* all zero: none */
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
    int32_t *ids;                 /* its tokens (special tokens recognised), malloc'd: the first
                                     min(n_ids, max_ids) of them */
    size_t n_ids;                 /* the prompt's length in tokens */
    glm_out_think_mode think;     /* where the answer starts, from the prompt's ending */
    int budget;                   /* reasoning tokens at most, or -1 */
    int exclude_reasoning;        /* reasoning is generated and counted but not returned */
    json_t *tools;                /* the validated tools (a reference: glm_chat_prompt_free drops it),
                                     or NULL */
    glm_tool_choice tool_choice;  /* NONE when there are no tools */
    const char *tool_name;        /* GLM_TOOL_CHOICE_NAMED: the function, its name in tools */
    int parallel_tool_calls;      /* default 1 */
    int parse_tools;              /* tools given and tool_choice is not "none" */
    char param[64];               /* on error: the request field to blame ("" for none) */
} glm_chat_prompt;

/*
 * Builds p from the chat request object `request` (p holds a reference to its
 * tools, so the request may be freed first). max_ids > 0: p->ids keeps the
 * first max_ids ids only, p->n_ids still counts them all (the chat API, which
 * refuses a prompt of max_model_len tokens, passes that); 0: all. GLM_OK; or
 * GLM_ERR with one line in err (the wording of OpenAI and vLLM where one
 * exists) and p->param set, and nothing to free.
 */
int glm_chat_prompt_build(const glm_chat_ctx *c, const json_t *request, size_t max_ids, glm_chat_prompt *p,
                          char *err, size_t errlen);

/* Frees text and ids and drops tools; p is empty afterwards. */
void glm_chat_prompt_free(glm_chat_prompt *p);

/* Checks template variables (a request's chat_template_kwargs, the server's
 * defaults) against limits.kwargs: GLM_OK, or GLM_ERR with one line in err
 * naming them as `what`. */
int glm_chat_kwargs_check(const glm_chat_limits *limits, const json_t *kwargs, const char *what, char *err,
                          size_t errlen);

#endif
