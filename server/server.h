/*
 * server.h - `glm-server serve` as the parts that need it see it.
 *
 * serve.c assembles a glm_server: the configuration from the command line and
 * what it loads (model, tokenizer, chat template, engine, metrics). Only
 * serve.c and the router (http.c) see that whole struct. Once everything is
 * loaded, glm_server_ready derives from it one small context per concern, and
 * each handler receives the ones it needs:
 *
 *   glm_served_model   the model as clients name and size it     /v1/models, /tokenize,
 *                                                                 /detokenize, requests
 *   glm_chat_ctx       the chat prompt's inputs (engine/glm)      /tokenize, chat requests
 *   glm_output_ctx     turning generated ids into the answer and  completions: parser,
 *                      constraining them                          detokenizer, grammars
 *   glm_gen_ctx        the above plus engine, metrics, stream     /v1/(chat/)completions,
 *                      settings, the waiter                       /metrics
 *
 * All of it is written before loading is cleared and read-only afterwards
 * (except the atomic counters and the parse gate, which has its own lock), so
 * handlers on any connection thread use it without locks.
 */
#ifndef GLM_SERVER_H
#define GLM_SERVER_H

#include <stdatomic.h>
#include <stddef.h>

#include <jansson.h>

#include "constrain/grammar.h"
#include "glm/chat_prompt.h"
#include "glm/output_parser.h"
#include "metrics.h"
#include "parse_gate.h"
#include "model/model.h"
#include "sched/engine.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

#define GLM_SERVER_VERSION "0.1.0"

/* Sampling values a request gets for the fields it omits (vLLM's
 * --generation-config auto: the checkpoint's generation_config.json); a
 * field the request sets always wins. < 0: not given, the API's own default. */
typedef struct {
    float temperature;
    float top_p;
    int top_k;
    float min_p;
    float repetition_penalty;
    int max_tokens;              /* generation_config's max_new_tokens */
} glm_sampling_defaults;

/* The model as clients name and size it, and how request bodies are read
 * (request_body.h). */
typedef struct {
    const char *model_dir;          /* "root" in /v1/models */
    const char *served_model_name;  /* the only accepted "model" value */
    long created;                   /* start time, "created" in /v1/models */
    int max_model_len;              /* prompt + output tokens at most */
    int vocab;                      /* token ids are below this */
    const glm_json_limits *body_limits; /* every POST body's shape (the chat context's limits.json) */
    glm_parse_gate *gate;           /* bodies parsed at once */
} glm_served_model;

/* What turns the engine's tokens into an answer, and constrains them. */
typedef struct {
    const glm_tok *tok;             /* detokenizer, token bytes */
    glm_out_tags tags;              /* the reasoning and tool-call tags */
    int32_t tag_ids[GLM_OUT_TAG_COUNT]; /* the tags' token ids (-1: not a token), GLM_OUT_TAG_* order */
    glm_token_trie *trie_text;      /* the vocabulary without added tokens (owned: glm_oai_vocab_free) */
    glm_token_trie *trie_tools;     /* the same plus the six tool-call tags */
    int32_t eos_ids[8];             /* the model's end-of-sequence ids (generation_config) */
    int n_eos;
} glm_output_ctx;

/* What the completions endpoints need. */
typedef struct {
    const glm_served_model *model;
    const glm_chat_ctx *chat;
    const glm_output_ctx *out;
    glm_engine *engine;
    glm_metrics *metrics;           /* thread-safe */
    glm_sampling_defaults defaults; /* what a request that omits a sampling field gets */
    int ping_interval_ms;           /* SSE ": ping" comment while waiting */
    struct glm_waiter *waiter;      /* resumes suspended connections (waiter.h) */
    int stream_write_timeout_s;     /* a stream's client that reads nothing this long is dropped */
} glm_gen_ctx;

typedef struct {
    /* configuration (serve.c) */
    const char *model_dir;
    const char *served_model_name;  /* the only accepted "model" value */
    const char *const *api_keys;    /* [n_api_keys]; none: no authentication */
    int n_api_keys;
    size_t max_request_bytes;       /* larger bodies get a 413 */
    size_t max_header_bytes;        /* a larger request line + headers gets a 431 */
    int ping_interval_ms;           /* SSE ": ping" comment while waiting */
    int idle_timeout_s;             /* an idle connection is closed after this long */
    int request_read_timeout_s;     /* a request's headers and body must arrive within this */
    int stream_write_timeout_s;     /* a stream's client that reads nothing this long is dropped */
    int max_connections;            /* open connections at most (0: the default) */
    int max_connections_per_ip;     /* from one client address at most (0: no limit) */
    const json_t *default_template_kwargs; /* --default-chat-template-kwargs, or NULL */
    const char *allowed_origins;    /* CORS: comma-separated origins or "*"; NULL: none */
    glm_sampling_defaults defaults; /* from generation_config.json unless --generation-config vllm */
    long created;                   /* start time */
    /* loaded (serve.c) */
    const glm_model *model;
    const glm_tok *tok;
    const glm_chat_template *tmpl;
    glm_engine *engine;
    int max_model_len;
    int vocab;
    glm_out_tags tags;
    int32_t eos_ids[8];             /* the model's end-of-sequence ids (generation_config) */
    int n_eos;
    glm_metrics *metrics;
    /* each handler's view (glm_oai_vocab_setup: out's tag ids and tries; glm_server_ready: the rest) */
    glm_served_model served;
    glm_chat_ctx chat;
    glm_output_ctx out;
    glm_gen_ctx gen;
    glm_parse_gate gate;            /* bodies parsed at once (glm_server_ready) */
    /* runtime */
    atomic_int loading;             /* 1 until the model is loaded: /health 503, the rest 503 */
    atomic_int draining;            /* 1 after SIGINT/SIGTERM: new requests get a 503 */
    atomic_int active;              /* connections with a request in progress */
    struct glm_waiter *waiter;      /* started with the HTTP daemon (http.c) */
    atomic_uint_least64_t next_id;  /* request id counter (mixed with a random base) */
    uint64_t id_base;
} glm_server;

/* Derives the handlers' contexts (served, chat, out, gen) from the
 * configuration and the loaded state. Call once everything above is set
 * (glm_oai_vocab_setup included), before loading is cleared. */
void glm_server_ready(glm_server *srv);

#endif
