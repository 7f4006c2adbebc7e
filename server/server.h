/*
 * server.h - what every HTTP handler of `glm-server serve` shares: the loaded
 * model, tokenizer, chat template and engine, and the configuration given on
 * the command line. Built once by serve.c before the HTTP daemon starts and
 * read-only afterwards (except the atomic counters), so handlers on any
 * connection thread may use it without locks.
 */
#ifndef GLM_SERVER_H
#define GLM_SERVER_H

#include <stdatomic.h>
#include <stddef.h>

#include <jansson.h>

#include "text/chat_template.h"
#include "sched/engine.h"
#include "constrain/grammar.h"
#include "metrics.h"
#include "model/model.h"
#include "glm/chat_prompt.h"
#include "glm/output_parser.h"
#include "text/tokenizer.h"

#define GLM_SERVER_VERSION "0.1.0"

/* Sampling values a request gets for the fields it omits (vLLM's
 * --generation-config auto: the checkpoint's generation_config.json); a
 * field the request sets always wins. < 0: not given, the API's own default. */
typedef struct {
    float temperature;
    float top_p;
    int top_k;
} glm_sampling_defaults;

typedef struct {
    /* configuration */
    const char *model_dir;
    const char *served_model_name;  /* the only accepted "model" value */
    const char *const *api_keys;    /* [n_api_keys]; none: no authentication */
    int n_api_keys;
    size_t max_request_bytes;       /* larger bodies get a 413 */
    int ping_interval_ms;           /* SSE ": ping" comment while waiting */
    int idle_timeout_s;             /* an idle connection is closed after this long */
    const json_t *default_template_kwargs; /* --default-chat-template-kwargs, or NULL */
    const char *allowed_origins;    /* CORS: comma-separated origins or "*"; NULL: none */
    glm_sampling_defaults defaults; /* from generation_config.json unless --generation-config vllm */
    /* loaded state */
    const glm_model *model;
    const glm_tok *tok;
    const glm_chat_template *tmpl;
    glm_engine *engine;
    int max_model_len;
    int vocab;
    glm_out_tags tags;
    glm_chat_ctx chat;              /* the chat prompt's inputs (glm_oai_vocab_setup) */
    /* constrained decoding (engine/constrain/constraint.h) */
    glm_token_trie *trie_text;      /* the vocabulary without added tokens */
    glm_token_trie *trie_tools;     /* the same plus the six tool-call tags */
    int32_t tag_ids[GLM_OUT_TAG_COUNT]; /* the tags' token ids (-1: not a token), GLM_OUT_TAG_* order */
    int32_t eos_ids[8];             /* the model's end-of-sequence ids (generation_config) */
    int n_eos;
    long created;                   /* start time, for "created" of /v1/models */
    glm_metrics *metrics;           /* thread-safe; observed by completions.c */
    /* runtime */
    atomic_int loading;             /* 1 until the model is loaded: /health 503, the rest 503 */
    atomic_int draining;            /* 1 after SIGINT/SIGTERM: new requests get a 503 */
    atomic_int stopping;            /* 1 once the grace period ran out: waiters abort */
    atomic_int active;              /* connections with a request in progress */
    atomic_uint_least64_t next_id;  /* request id counter (mixed with a random base) */
    uint64_t id_base;
} glm_server;

#endif
