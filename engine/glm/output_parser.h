/*
 * output_parser.h - turns the text a GLM-5 model generates into the OpenAI
 * message parts: reasoning_content, content and tool_calls, either at the end
 * (glm_out_parse) or incrementally while streaming (glm_out_feed/finish).
 *
 * Output grammar (tags are the tokenizer's special tokens, see glm_out_tags):
 *
 *   <think>REASONING</think>CONTENT
 *   <tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value>...</tool_call>
 *
 * One state machine serves both modes: glm_out_parse is create + one feed +
 * finish, so the concatenation of everything streamed equals the one-shot
 * result for every way of cutting the text into pieces. Rules, and the
 * reference parser each follows (vLLM glm45/glm47, SGLang Glm45Detector /
 * Glm47MoeDetector, llama.cpp common_chat_parse_glm_4_5):
 *
 * Reasoning
 *  - The caller says where the prompt left the model (glm_out_think_mode):
 *    inside <think> (GLM-5's default generation prompt `<|assistant|><think>`),
 *    with thinking off (`<|assistant|></think>`), or undecided.
 *  - In reasoning, </think> switches to content; a stray <think> is dropped;
 *    a missing </think> leaves everything as reasoning (vLLM glm45 = R1 parser).
 *  - <tool_call> inside reasoning ends the reasoning and starts a tool call
 *    (SGLang Glm45Detector tool_start_token, vLLM main's glm47 engine; vLLM's
 *    released R1 parser and llama.cpp keep it as reasoning text).
 *  - After </think>, a new <think> reopens reasoning and a stray </think> is
 *    dropped (vLLM main's glm47 engine). With thinking off both tags are plain
 *    text (vLLM's identity parser).
 *  - Leading and trailing whitespace of the reasoning is trimmed (vLLM main
 *    strips trailing whitespace; llama.cpp strips both; the chat template
 *    strips both when it renders the turn back).
 * Content
 *  - Text outside reasoning and tool calls, joined in order (SGLang, vLLM
 *    main; vLLM's released glm4 parser keeps only the text before the first
 *    call). Leading and trailing whitespace is trimmed (vLLM strips content
 *    when tools were called, llama.cpp always; GLM's template strips it too).
 * Tool calls (only when glm_out_params.parse_tools is set)
 *  - NAME is the text up to the first <arg_key> or </tool_call> (at most 256
 *    bytes as written), trimmed; it must be non-empty with no whitespace,
 *    control character, '<' or '>'.
 *    A call with a bad name is kept verbatim as content (nothing was streamed
 *    for it yet). Names are not checked against `tools`: an unknown name is
 *    still a tool call, as vLLM's released glm47 parser does (SGLang and vLLM
 *    main drop such calls).
 *  - Whitespace between the parts is ignored. Keys are trimmed. Values:
 *      schema type exactly "string"       -> the raw text, untouched;
 *      no schema / key or tool unknown    -> JSON if the trimmed text is one
 *                                            JSON value, else the raw string;
 *      other types (integer, number, boolean, object, array, null, unions)
 *                                         -> JSON if it parses and its type is
 *        allowed (or the schema allows no string), True/False for a boolean,
 *        else the raw string. (vLLM glm47: string type raw, else json.loads;
 *        raw whitespace is kept as SGLang does since its PR #20543; Python
 *        literals other than True/False are not evaluated.)
 *    JSON values are re-serialised like Python's json.dumps(ensure_ascii=
 *    False): separators ", " and ": ", strings and numbers copied as written.
 *    `arguments` is always one JSON object: {"k": v, ...} or {}. Repeated keys
 *    are kept in order (streaming cannot take them back).
 *  - Malformed parts never lose text: a key with no value, text between parts
 *    that is not whitespace, a key over 512 bytes as written go to content
 *    verbatim, tags included; the call itself continues. </tool_call> inside a
 *    value closes the value (vLLM); <arg_value> right after a key whose
 *    </arg_key> is missing is accepted. A call left open at the end is closed:
 *    its last value ends where the text ends.
 *  - With parse_tools off, tool-call tags are plain content (vLLM's behaviour
 *    for a request without tools or with tool_choice "none").
 * Streaming (what vLLM's glm4/glm47 parsers and SGLang's glm47 detector do)
 *  - Text that may be the start of a tag is held back until resolved; so is
 *    trailing whitespace (it may turn out to be the end of the message) and an
 *    incomplete UTF-8 sequence. Every delta is valid UTF-8.
 *  - A call's first delta carries index, id and name (once the name is
 *    complete: at the first <arg_key> or </tool_call>) and the arguments so
 *    far; later deltas carry argument fragments. Values of schema type
 *    "string" stream as they arrive (the JSON string is opened at <arg_value>
 *    and closed at </arg_value>); other values arrive whole at </arg_value>;
 *    the closing brace at </tool_call>.
 * Bytes: invalid UTF-8 and NUL bytes become U+FFFD, so every output string is
 * valid UTF-8 and NUL-terminated, and its length is the strlen.
 */
#ifndef GLM_OUTPUT_PARSER_H
#define GLM_OUTPUT_PARSER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Where the generation prompt left the model. */
typedef enum {
    GLM_OUT_THINK_OPEN = 0, /* prompt ends in <think>: output starts as reasoning */
    GLM_OUT_THINK_AUTO,     /* prompt ends in neither: reasoning only inside <think>..</think> */
    GLM_OUT_THINK_OFF,      /* prompt ends in </think> (thinking disabled): no reasoning,
                               think tags are plain text */
} glm_out_think_mode;

/* The eight tags, taken from the tokenizer's special tokens. Each must be a
 * non-empty valid UTF-8 string of at most 64 bytes, and no tag may be a prefix
 * of another. */
typedef struct {
    const char *think_start;     /* "<think>" */
    const char *think_end;       /* "</think>" */
    const char *tool_call_start; /* "<tool_call>" */
    const char *tool_call_end;   /* "</tool_call>" */
    const char *arg_key_start;   /* "<arg_key>" */
    const char *arg_key_end;     /* "</arg_key>" */
    const char *arg_value_start; /* "<arg_value>" */
    const char *arg_value_end;   /* "</arg_value>" */
} glm_out_tags;

/* Capacity of a tool-call id buffer, NUL included. */
#define GLM_OUT_ID_MAX 64

/* Writes the id of tool call `index` (0-based within the response) into buf as
 * a NUL-terminated string of 1..GLM_OUT_ID_MAX-1 bytes. */
typedef void (*glm_out_id_fn)(void *ctx, int index, char buf[GLM_OUT_ID_MAX]);

typedef struct {
    glm_out_tags tags;
    glm_out_think_mode think;
    int parse_tools;     /* 1: recognise tool calls; 0: tool-call tags are content */
    int content_plain;   /* 1: once in the content no tag is recognised (think tags
                            included): the answer follows a grammar of its own
                            (response_format) and is returned as generated */
    const json_t *tools; /* the request's "tools" array, may be NULL; read during
                            glm_out_create only (the parser keeps the parameter
                            types it needs). Entries without a function name are
                            skipped. */
    glm_out_id_fn id_fn; /* may be NULL: "call_" + 24 letters/digits derived from
                            id_seed and the index */
    void *id_ctx;        /* passed to id_fn */
    uint64_t id_seed;    /* the server passes a random value per request */
} glm_out_params;

/* The tags by index, in this order (glm_out_tag_list). */
enum {
    GLM_OUT_TAG_THINK_START,
    GLM_OUT_TAG_THINK_END,
    GLM_OUT_TAG_TOOL_CALL_START,
    GLM_OUT_TAG_TOOL_CALL_END,
    GLM_OUT_TAG_ARG_KEY_START,
    GLM_OUT_TAG_ARG_KEY_END,
    GLM_OUT_TAG_ARG_VALUE_START,
    GLM_OUT_TAG_ARG_VALUE_END,
    GLM_OUT_TAG_COUNT,
};

/* Fills out with tags' strings in GLM_OUT_TAG_* order (the six tool-call tags
 * are out + GLM_OUT_TAG_TOOL_CALL_START). */
void glm_out_tag_list(const glm_out_tags *tags, const char *out[GLM_OUT_TAG_COUNT]);

/* GLM-5's tags ("<think>", "</think>", "<tool_call>", ...). The strings are
 * static. */
void glm_out_tags_default(glm_out_tags *tags);

/* Defaults: GLM-5 tags, GLM_OUT_THINK_OPEN, parse_tools 1, content_plain 0, no
 * tools, no id_fn, id_seed 0. */
void glm_out_params_default(glm_out_params *prm);

/* The think mode a rendered prompt implies: OPEN if it ends (after trailing
 * whitespace) with tags->think_start, OFF if with tags->think_end, else AUTO. */
glm_out_think_mode glm_out_think_mode_for_prompt(const char *prompt, size_t len,
                                                 const glm_out_tags *tags);

/* A complete tool call. Strings are NUL-terminated. */
typedef struct {
    const char *id;        /* "call_..." or what id_fn wrote */
    const char *name;
    const char *arguments; /* one JSON object, e.g. {"city": "Paris"} */
    size_t arguments_len;
} glm_out_tool_call;

/* Everything parsed so far; after glm_out_finish, the final message.
 * Strings are never NULL (possibly ""); an empty content/reasoning is for the
 * server to send as null or omit. */
typedef struct {
    const char *reasoning;
    size_t reasoning_len;
    const char *content;
    size_t content_len;
    const glm_out_tool_call *tool_calls; /* [n_tool_calls] */
    int n_tool_calls;
} glm_out_message;

/* One streaming tool-call delta (OpenAI `delta.tool_calls[i]`). */
typedef struct {
    int index;             /* tool_calls index: 0, 1, ... in order of first appearance */
    const char *id;        /* non-NULL only in the call's first delta */
    const char *name;      /* non-NULL only in the call's first delta */
    const char *arguments; /* next fragment of the arguments, possibly "" */
    size_t arguments_len;
} glm_out_tool_delta;

/* What one feed/finish call adds. Text fragments are NUL-terminated and never
 * NULL ("" when nothing new); at most one tool delta per index, in index
 * order. */
typedef struct {
    const char *reasoning; /* -> delta.reasoning_content */
    size_t reasoning_len;
    const char *content;   /* -> delta.content */
    size_t content_len;
    const glm_out_tool_delta *tool_calls; /* [n_tool_calls] -> delta.tool_calls */
    int n_tool_calls;
} glm_out_delta;

typedef struct glm_out_parser glm_out_parser;

/* Creates a parser for one response. Returns NULL and writes one line into err
 * when a tag is missing, empty, longer than 64 bytes, not valid UTF-8, or a
 * prefix of another tag, or when prm->think is not a glm_out_think_mode. */
glm_out_parser *glm_out_create(const glm_out_params *prm, char *err, size_t errlen);
void glm_out_free(glm_out_parser *p);

/* Feeds the next piece of generated text (any bytes, cut anywhere) and fills d
 * with what became certain. d's pointers stay valid until the next call on p.
 * Must not be called after glm_out_finish. */
void glm_out_feed(glm_out_parser *p, const char *text, size_t len, glm_out_delta *d);

/* Ends the text: flushes what was held back, closes an open tool call, drops
 * trailing whitespace. d as for glm_out_feed. Call once. */
void glm_out_finish(glm_out_parser *p, glm_out_delta *d);

/* As glm_out_finish, for text cut by a length limit (finish_reason "length"): a tool call
 * still open keeps its arguments as far as they came, unterminated JSON that no client can
 * take for complete arguments (OpenAI's behaviour), instead of being closed. */
void glm_out_finish_cut(glm_out_parser *p, glm_out_delta *d);

/* 1 while the parser is inside reasoning (text fed now would be reasoning):
 * lets the server count completion_tokens_details.reasoning_tokens. */
int glm_out_in_reasoning(const glm_out_parser *p);

/* Fills m with everything parsed so far; valid until the next call on p. */
void glm_out_get(glm_out_parser *p, glm_out_message *m);

/* JSON types, as bits, for glm_out_schema_types. */
enum {
    GLM_OUT_T_NULL = 1,
    GLM_OUT_T_BOOL = 2,
    GLM_OUT_T_NUM = 4, /* integer or number */
    GLM_OUT_T_STR = 8,
    GLM_OUT_T_OBJ = 16,
    GLM_OUT_T_ARR = 32,
};

/* The JSON types the parser lets an argument of this property schema have
 * (from "type", "enum", "const" and "anyOf"/"oneOf" branches), as GLM_OUT_T_*
 * bits; 0 when the schema says nothing (any type). What decides how a value is
 * read (see "Tool calls" above), and what a tool-call grammar must produce. */
unsigned glm_out_schema_types(const json_t *schema);

/* One-shot parse: create, feed the whole text, finish. Returns the finished
 * parser, which owns m's strings (free it with glm_out_free), or NULL on bad
 * params (see glm_out_create). */
glm_out_parser *glm_out_parse(const glm_out_params *prm, const char *text, size_t len,
                              glm_out_message *m, char *err, size_t errlen);

#endif
