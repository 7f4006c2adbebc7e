/*
 * serve.c - `glm-server serve`: command-line flags (vLLM's names) and
 * --config FILE (serve_config.c; the command line wins), meeting the other
 * nodes of a world across machines (multinode.h), loading
 * the checkpoint (model, tokenizer, chat template), creating the engine,
 * the request defaults from generation_config.json (--generation-config),
 * starting the HTTP daemon, and a graceful stop on SIGINT/SIGTERM: stop
 * accepting, let running requests finish within --shutdown-timeout seconds,
 * abort what is left, exit 0.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>

#include "backend_flags.h"
#include "cli.h"
#include "multinode.h"
#include "http.h"
#include "openai_request.h"
#include "serve_config.h"
#include "structured.h"
#include "server.h"
#include "core/util.h"

#include <jansson.h>

/* Whether checkpoint `dir` has a chat template where glm_chat_template_load looks:
 * chat_template.jinja, or a "chat_template" in tokenizer_config.json. A base model has
 * none; it is served for completions (as vLLM serves it). A template that is there but
 * broken still stops the server, at the load. */
static int has_chat_template(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    if (access(path, F_OK) == 0)
        return 1;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    json_t *cfg = json_load_file(path, 0, NULL);
    int has = !cfg || json_object_get(cfg, "chat_template") != NULL; /* unreadable: let the load say why */
    json_decref(cfg);
    return has;
}

#define MAX_KEYS 16

static void usage(FILE *f)
{
    fprintf(f,
            "usage: glm-server [serve] --model DIR [options]\n\n"
            "  --config FILE                 JSON object with the flags below as keys (\"max_model_len\": 4096,\n"
            "                                \"api_key\": [\"k1\", \"k2\"], \"enable_prefix_caching\": false);\n"
            "                                flags on the command line win\n"
            "  --host ADDR                   listen address (default 127.0.0.1)\n"
            "  --port N                      listen port (default 8000)\n"
            "  --served-model-name NAME      the model name clients use (default: DIR)\n"
            "  --max-model-len N             prompt + output tokens at most (default: the model's)\n"
            "  --max-num-seqs N              running sequences at most (default 256)\n"
            "  --max-num-batched-tokens N    tokens per engine step at most (default 2048)\n"
            "  --max-queue N                 waiting requests at most; more get a 503 (default 1024)\n"
            "  --kv-cache-memory SIZE|auto   KV cache bytes, e.g. 4GiB (default 1GiB); auto: what\n"
            "                                remains of --gpu-memory-utilization of the memory (a\n"
            "                                cgroup limit counts) after the weights and workspace\n"
            "  --gpu-memory-utilization F    the share of memory the server may use, in (0, 1]\n"
            "                                (default 0.9)\n"
            "  --api-key KEY                 require 'Authorization: Bearer KEY' (repeatable;\n"
            "                                also GLM_API_KEY)\n"
            "  --[no-]enable-prefix-caching  reuse KV blocks of shared prompt prefixes (default on)\n"
            "  --device auto|cuda|cpu        the backend (default auto: cuda when this binary has the\n"
            "                                CUDA backend and a device is usable, else cpu); CUDA runs\n"
            "                                on device 0 of what CUDA_VISIBLE_DEVICES leaves visible\n"
            "  --dtype auto|bfloat16|float32 what the backend computes in (also: float = float32);\n"
            "                                auto: bfloat16 on cuda; the cpu backend is always float32\n"
            "  --[no-]enforce-eager          cuda: no CUDA graphs, every step runs eagerly (default off)\n"
            "  --tensor-parallel-size N, -tp N\n"
            "                                shard the model over N ranks (default 1): on cuda one\n"
            "                                device each (devices 0..N-1), on the cpu a thread each;\n"
            "                                N must divide the attention heads and the experts\n"
            "  --nnodes N, --node-rank R     a world of N machines (default 1), this one R (default 0):\n"
            "                                each runs tensor-parallel-size / N ranks over NCCL (cuda);\n"
            "                                node 0 serves HTTP, the others follow its steps\n"
            "  --master-addr HOST, --master-port PORT\n"
            "                                where node 0 meets the others (default 127.0.0.1:29500)\n"
            "  --speculative-config JSON     speculative decoding with the checkpoint's MTP layer:\n"
            "                                '{\"method\": \"mtp\", \"num_speculative_tokens\": 1}' (1..8\n"
            "                                drafts a step; default off); outputs are unchanged\n"
            "  --threads N                   compute threads (default: one per CPU)\n"
            "  --max-request-bytes N         largest request body (default 32MiB)\n"
            "  --max-header-bytes N          largest request line + headers (default 8KiB, at most\n"
            "                                1MiB; 431 beyond): every open connection holds this\n"
            "                                plus 4KiB of memory\n"
            "  --sse-ping-interval SECONDS   ': ping' comment on a silent stream (default 5)\n"
            "  --timeout-keep-alive SECONDS  close connections idle this long (default 60)\n"
            "  --request-read-timeout SECONDS\n"
            "                                a request's headers and body must arrive within this\n"
            "                                (default 60), however slowly they drip\n"
            "  --stream-write-timeout SECONDS\n"
            "                                a streaming client that reads nothing this long is dropped\n"
            "                                and its request aborted (default 60)\n"
            "  --max-connections N           open connections at most (default 16384, fewer when the\n"
            "                                descriptor limit is lower); more are refused\n"
            "  --max-connections-per-ip N    from one client address at most (default 0: no limit)\n"
            "  --shutdown-timeout SECONDS    grace period for running requests on SIGTERM (default 30)\n"
            "  --default-chat-template-kwargs JSON\n"
            "                                template variables every chat request starts from, e.g.\n"
            "                                '{\"enable_thinking\": false}' to answer without thinking\n"
            "                                unless a request asks for it (default: the template's)\n"
            "  --allowed-origins LIST        CORS: comma-separated origins allowed to call from a\n"
            "                                browser, or '*' (default: none)\n"
            "  --generation-config auto|vllm auto (default): the sampling values of the model's\n"
            "                                generation_config.json (temperature, top_p, top_k,\n"
            "                                min_p, repetition_penalty, max_new_tokens) are the\n"
            "                                defaults of requests that omit them; vllm: ignore them\n");
}

/* "4GiB", "512M", "1000000": bytes; -1 if malformed. */
static long long parse_size(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return -1;
    while (*end == ' ')
        end++;
    double mult = 1;
    int c = toupper((unsigned char)*end);
    if (c == 'K' || c == 'M' || c == 'G' || c == 'T') {
        int bin = end[1] == 'i' || end[1] == 'I';
        double base = bin ? 1024.0 : 1000.0;
        mult = c == 'K' ? base : c == 'M' ? base * base : c == 'G' ? base * base * base : base * base * base * base;
        end += 1 + bin;
        if (toupper((unsigned char)*end) == 'B')
            end++;
    } else if (c == 'B') {
        end++;
    }
    if (*end || v * mult > 9e18)
        return -1;
    return (long long)(v * mult);
}

/* --speculative-config, vLLM's format: {"method": "mtp", "num_speculative_tokens": K} (the
 * checkpoint's own MTP layer; "deepseek_mtp" and "glm4_moe_mtp" are taken as "mtp"). *k = K. */
static int parse_speculative_config(const char *s, int *k)
{
    json_error_t je;
    json_t *o = json_loads(s, JSON_REJECT_DUPLICATES, &je);
    const char *why = NULL;
    char buf[160];
    if (!json_is_object(o)) {
        snprintf(buf, sizeof buf, "must be a JSON object%s%.100s", o ? "" : ": ", o ? "" : je.text);
        why = buf;
    }
    const char *key;
    json_t *v;
    if (!why)
        json_object_foreach(o, key, v) {
            if (strcmp(key, "method") == 0) {
                const char *m = json_string_value(v);
                if (!m || (strcmp(m, "mtp") && strcmp(m, "deepseek_mtp") && strcmp(m, "glm4_moe_mtp"))) {
                    why = "\"method\" must be \"mtp\" (the checkpoint's own MTP layer; ngram, eagle and "
                          "draft models are not supported)";
                    break;
                }
            } else if (strcmp(key, "num_speculative_tokens") == 0) {
                json_int_t n = json_integer_value(v);
                if (!json_is_integer(v) || n < 1 || n > GLM_ENGINE_MAX_SPEC_TOKENS) {
                    snprintf(buf, sizeof buf, "\"num_speculative_tokens\" must be an integer in 1..%d",
                             GLM_ENGINE_MAX_SPEC_TOKENS);
                    why = buf;
                    break;
                }
                *k = (int)n;
            } else if (strcmp(key, "model") == 0) {
                if (!json_is_null(v)) {
                    why = "\"model\": a separate draft model is not supported (MTP drafts with the served "
                          "checkpoint's own layer); leave it out";
                    break;
                }
            } else {
                snprintf(buf, sizeof buf, "unknown key \"%.60s\" (known: method, num_speculative_tokens, model)",
                         key);
                why = buf;
                break;
            }
        }
    if (!why && !json_object_get(o, "method"))
        why = "\"method\" is required (\"mtp\")";
    if (!why && !json_object_get(o, "num_speculative_tokens"))
        why = "\"num_speculative_tokens\" is required";
    json_decref(o);
    if (why) {
        fprintf(stderr, "glm-server: --speculative-config %s\n", why);
        return GLM_ERR;
    }
    return GLM_OK;
}

static int parse_int(const char *flag, const char *s, int lo, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end || errno || v < lo || v > 1 << 30) {
        fprintf(stderr, "glm-server: --%s must be an integer >= %d, got \"%s\"\n", flag, lo, s);
        return GLM_ERR;
    }
    *out = (int)v;
    return GLM_OK;
}

enum { O_HOST = 256, O_PORT, O_NAME, O_MML, O_SEQS, O_BATCHED, O_KV, O_MEMUTIL, O_KEY, O_PREFIX, O_NOPREFIX, O_THREADS,
       O_MAXREQ, O_GRACE, O_MODEL, O_HELP, O_KEEPALIVE, O_QUEUE, O_PING, O_ORIGINS, O_DEFKW, O_GENCFG,
       O_READ_TIMEOUT, O_WRITE_TIMEOUT, O_MAXCONN, O_MAXCONN_IP, O_MAXHDR,
       O_DEVICE, O_DTYPE, O_EAGER, O_NOEAGER, O_TP, O_NNODES, O_NODE_RANK, O_MASTER_ADDR, O_MASTER_PORT,
       O_SPEC };
static const struct option opts[] = {
    {"model", required_argument, 0, O_MODEL},
    {"host", required_argument, 0, O_HOST},
    {"port", required_argument, 0, O_PORT},
    {"served-model-name", required_argument, 0, O_NAME},
    {"max-model-len", required_argument, 0, O_MML},
    {"max-num-seqs", required_argument, 0, O_SEQS},
    {"max-num-batched-tokens", required_argument, 0, O_BATCHED},
    {"kv-cache-memory", required_argument, 0, O_KV},
    {"gpu-memory-utilization", required_argument, 0, O_MEMUTIL},
    {"api-key", required_argument, 0, O_KEY},
    {"enable-prefix-caching", no_argument, 0, O_PREFIX},
    {"no-enable-prefix-caching", no_argument, 0, O_NOPREFIX},
    {"threads", required_argument, 0, O_THREADS},
    {"max-request-bytes", required_argument, 0, O_MAXREQ},
    {"max-header-bytes", required_argument, 0, O_MAXHDR},
    {"shutdown-timeout", required_argument, 0, O_GRACE},
    {"timeout-keep-alive", required_argument, 0, O_KEEPALIVE},
    {"request-read-timeout", required_argument, 0, O_READ_TIMEOUT},
    {"stream-write-timeout", required_argument, 0, O_WRITE_TIMEOUT},
    {"max-connections", required_argument, 0, O_MAXCONN},
    {"max-connections-per-ip", required_argument, 0, O_MAXCONN_IP},
    {"max-queue", required_argument, 0, O_QUEUE},
    {"sse-ping-interval", required_argument, 0, O_PING},
    {"allowed-origins", required_argument, 0, O_ORIGINS},
    {"default-chat-template-kwargs", required_argument, 0, O_DEFKW},
    {"generation-config", required_argument, 0, O_GENCFG},
    {"device", required_argument, 0, O_DEVICE},
    {"dtype", required_argument, 0, O_DTYPE},
    {"enforce-eager", no_argument, 0, O_EAGER},
    {"no-enforce-eager", no_argument, 0, O_NOEAGER},
    {"tensor-parallel-size", required_argument, 0, O_TP},
    {"nnodes", required_argument, 0, O_NNODES},
    {"node-rank", required_argument, 0, O_NODE_RANK},
    {"master-addr", required_argument, 0, O_MASTER_ADDR},
    {"master-port", required_argument, 0, O_MASTER_PORT},
    {"speculative-config", required_argument, 0, O_SPEC},
    {"help", no_argument, 0, O_HELP},
    {0, 0, 0, 0}};

static int serve_args(int argc, char **argv, const struct option *opts, int n_cfg, int *cli_keys);

/* --generation-config auto: the sampling values of generation_config.json
 * become the defaults of requests that omit them, as vLLM does; values no
 * request could give (temperature 5) stop the server with a message. */
static int apply_generation_config(glm_server *srv, const glm_config *c)
{
    srv->defaults = (glm_sampling_defaults){c->default_temperature, c->default_top_p,      c->default_top_k,
                                            c->default_min_p,       c->default_repetition_penalty,
                                            c->default_max_new_tokens};
    const glm_sampling_defaults *d = &srv->defaults;
    if (d->temperature < 0 && d->top_p < 0 && d->top_k < 0 && d->min_p < 0 && d->repetition_penalty < 0 &&
        d->max_tokens < 0)
        return GLM_OK;
    glm_sampling_params sp;
    glm_oai_sampling_init(&sp, &srv->defaults);
    const char *bad = NULL;
    char err[GLM_ERRLEN];
    if (glm_sampling_params_validate(&sp, srv->vocab, &bad, err, sizeof err) != GLM_OK) {
        fprintf(stderr, "glm-server: %s/generation_config.json: %s (--generation-config vllm ignores the file)\n",
                srv->model_dir, err);
        return GLM_ERR;
    }
    char line[256];
    int n = 0;
    if (d->temperature >= 0)
        n += snprintf(line + n, sizeof line - (size_t)n, ", temperature %g", (double)d->temperature);
    if (d->top_p >= 0)
        n += snprintf(line + n, sizeof line - (size_t)n, ", top_p %g", (double)d->top_p);
    if (d->top_k >= 0)
        n += snprintf(line + n, sizeof line - (size_t)n, ", top_k %d", d->top_k);
    if (d->min_p >= 0)
        n += snprintf(line + n, sizeof line - (size_t)n, ", min_p %g", (double)d->min_p);
    if (d->repetition_penalty >= 0)
        n += snprintf(line + n, sizeof line - (size_t)n, ", repetition_penalty %g", (double)d->repetition_penalty);
    if (d->max_tokens >= 0)
        n += snprintf(line + n, sizeof line - (size_t)n, ", max_new_tokens %d", d->max_tokens);
    fprintf(stderr, "glm-server: request defaults from generation_config.json: %s (a request's own values win; "
                    "--generation-config vllm ignores them)\n", line + 2);
    return GLM_OK;
}

/* ---- a world across nodes (multinode.h) ---------------------------------------------------- */

/* The world's end as the rendezvous's watcher reports it (a node dropped out or stopped): while
 * the weights load there is nothing to drain, and the process exits at once with the reason;
 * while serving, the engine stops (its running requests fail with the reason, and serve exits 1);
 * once this node is stopping, nothing. */
static struct {
    pthread_mutex_t mu;
    int phase; /* 0 loading, 1 serving, 2 stopping */
    glm_engine *engine;
} g_world = {PTHREAD_MUTEX_INITIALIZER, 0, NULL};

static void world_failed(void *user, const char *why)
{
    pthread_mutex_lock(&g_world.mu);
    if (g_world.phase == 0) {
        fprintf(stderr, "glm-server: %s; stopping\n", why);
        _exit(1);
    }
    if (g_world.phase == 1)
        glm_engine_stop_backend(g_world.engine, why);
    pthread_mutex_unlock(&g_world.mu);
}

static void world_phase(int phase, glm_engine *e)
{
    pthread_mutex_lock(&g_world.mu);
    g_world.phase = phase;
    g_world.engine = e;
    pthread_mutex_unlock(&g_world.mu);
}

/* What every node must agree on: the model and the flags that size a step. */
static uint64_t world_fingerprint(const char *model_dir, const glm_engine_params *ep, int nnodes)
{
    int f[] = {ep->tensor_parallel_size, nnodes, (int)ep->dtype, ep->block_size, ep->max_num_batched_tokens,
               ep->max_num_seqs, ep->max_model_len};
    return glm_multinode_fingerprint(model_dir, f, (int)(sizeof f / sizeof f[0]));
}

/* A node other than node 0: meets the others, loads its ranks' shards, and follows rank 0's
 * steps until node 0 stops the world (exit 0), the world fails or a signal stops it (exit 1).
 * It serves no HTTP. */
static int serve_follower(const char *model_dir, glm_engine_params *ep, const glm_multinode_flags *mf,
                          sigset_t *sigs)
{
    char err[GLM_ERRLEN], why[GLM_ERRLEN];
    glm_multinode *mn = glm_multinode_meet(mf, ep->tensor_parallel_size, world_fingerprint(model_dir, ep, mf->nnodes),
                                           world_failed, NULL, err, sizeof err);
    if (!mn) {
        fprintf(stderr, "glm-server: %s\n", err);
        return 1;
    }
    ep->first_rank = glm_multinode_first_rank(mn);
    ep->n_local = glm_multinode_n_local(mn);
    ep->world_id = glm_multinode_world_id(mn);
    int rc = 1;
    glm_engine *e = NULL;
    glm_model *m = glm_model_load(model_dir, err, sizeof err);
    if (!m) {
        fprintf(stderr, "glm-server: %s\n", err);
        goto out;
    }
    e = glm_engine_create(m, ep, err, sizeof err);
    if (!e) {
        fprintf(stderr, "glm-server: %s\n", err);
        glm_multinode_stop(mn, err);
        goto out;
    }
    world_phase(1, e);
    fprintf(stderr, "glm-server: node %d of %d: ready; its ranks follow node 0's steps\n", mf->node_rank,
            mf->nnodes);
    for (;;) {
        struct timespec tick = {0, 200 * 1000000L};
        int sig = sigtimedwait(sigs, NULL, &tick);
        if (sig > 0) {
            snprintf(why, sizeof why, "%s on node %d", sig == SIGINT ? "SIGINT" : "SIGTERM", mf->node_rank);
            fprintf(stderr, "glm-server: %s: stopping the world\n", why);
            glm_multinode_stop(mn, why);
            glm_engine_stop_backend(e, why);
        }
        int w = glm_engine_wait_world(e, 0, why, sizeof why);
        if (w > 0) {
            fprintf(stderr, "glm-server: node 0 stopped the world\n");
            rc = 0;
            break;
        }
        if (w < 0) {
            fprintf(stderr, "glm-server: the world stopped: %s\n", why);
            break;
        }
    }
out:
    world_phase(2, NULL);
    glm_engine_free(e);
    glm_multinode_free(mn);
    glm_model_free(m);
    fprintf(stderr, "glm-server: stopped\n");
    return rc;
}

int glm_cli_serve(int argc, char **argv)
{
    /* --config FILE: its settings go first, so the command line overrides them */
    const char *config = NULL;
    char **cfg = NULL, **args = glm_calloc((size_t)argc + 1, sizeof(char *));
    int n_cfg = 0, n_args = 0, cli_keys = 0;
    glm_backend_flags_aliases(argc, argv);
    args[n_args++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            config = argv[i] + 9;
        else
            args[n_args++] = argv[i];
    }
    if (config) {
        char cerr[GLM_ERRLEN];
        if (glm_serve_config_args(config, opts, &cfg, &n_cfg, cerr, sizeof cerr) != GLM_OK) {
            fprintf(stderr, "glm-server: %s\n", cerr);
            free(args);
            return 2;
        }
        args = glm_realloc(args, sizeof(char *) * ((size_t)n_args + (size_t)n_cfg + 1));
        memmove(args + 1 + n_cfg, args + 1, sizeof(char *) * ((size_t)n_args - 1));
        memcpy(args + 1, cfg, sizeof(char *) * (size_t)n_cfg);
        n_args += n_cfg;
        args[n_args] = NULL;
    }
    int rc = serve_args(n_args, args, opts, n_cfg, &cli_keys);
    glm_serve_config_free(cfg, n_cfg);
    free(args);
    return rc;
}

static int serve_args(int argc, char **argv, const struct option *opts, int n_cfg, int *cli_keys)
{
    const char *model_dir = NULL, *host = "127.0.0.1", *name = NULL, *origins = NULL;
    const char *keys[MAX_KEYS];
    int n_keys = 0, port = 8000, grace = 30, keepalive = 60, ping_ms = 5000;
    int read_timeout = 60, write_timeout = 60, max_conn = 0, max_conn_ip = 0;
    long long max_req = 32ll << 20, max_hdr = GLM_HTTP_DEFAULT_MAX_HEADER_BYTES;
    glm_engine_params ep;
    glm_engine_params_default(&ep);
    json_t *defkw = NULL;
    int gen_config = 1; /* --generation-config auto */
    glm_backend_flags bf;
    glm_multinode_flags mf;
    glm_multinode_flags_default(&mf);
    glm_backend_flags_default(&bf);
    char err[GLM_ERRLEN], path[4096];
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_MODEL: model_dir = optarg; break;
        case O_HOST: host = optarg; break;
        case O_PORT:
            if (parse_int("port", optarg, 0, &port))
                return 2;
            if (port > 65535) {
                fprintf(stderr, "glm-server: --port must be in [0, 65535]\n");
                return 2;
            }
            break;
        case O_NAME: name = optarg; break;
        case O_ORIGINS: origins = *optarg ? optarg : NULL; break;
        case O_GENCFG:
            if (strcmp(optarg, "auto") == 0 || strcmp(optarg, "vllm") == 0) {
                gen_config = optarg[0] == 'a';
                break;
            }
            fprintf(stderr, "glm-server: --generation-config must be \"auto\" or \"vllm\" (a folder path is not "
                            "supported), got \"%s\"\n", optarg);
            json_decref(defkw);
            return 2;
        case O_DEFKW: {
            json_error_t je;
            json_t *kw = json_loads(optarg, 0, &je);
            glm_chat_limits lim; /* the same bounds as a request's chat_template_kwargs */
            glm_chat_limits_init(&lim, 0);
            char kerr[GLM_ERRLEN] = "";
            if (!json_is_object(kw) ||
                glm_chat_kwargs_check(&lim, kw, "--default-chat-template-kwargs", kerr, sizeof kerr) != GLM_OK) {
                if (kerr[0])
                    fprintf(stderr, "glm-server: %s\n", kerr);
                else
                    fprintf(stderr, "glm-server: --default-chat-template-kwargs must be a JSON object%s%s\n",
                            kw ? "" : ": ", kw ? "" : je.text);
                json_decref(kw);
                json_decref(defkw);
                return 2;
            }
            json_decref(defkw);
            defkw = kw;
            break;
        }
        case O_MML: if (parse_int("max-model-len", optarg, 1, &ep.max_model_len)) return 2; break;
        case O_SPEC:
            if (parse_speculative_config(optarg, &ep.num_speculative_tokens) != GLM_OK) {
                json_decref(defkw);
                return 2;
            }
            break;
        case O_SEQS: if (parse_int("max-num-seqs", optarg, 1, &ep.max_num_seqs)) return 2; break;
        case O_BATCHED: if (parse_int("max-num-batched-tokens", optarg, 1, &ep.max_num_batched_tokens)) return 2; break;
        case O_THREADS: if (parse_int("threads", optarg, 0, &ep.n_threads)) return 2; break;
        case O_PING: {
            char *end;
            double v = strtod(optarg, &end);
            if (end == optarg || *end || !(v >= 0.01 && v <= 3600)) {
                fprintf(stderr, "glm-server: --sse-ping-interval must be seconds in [0.01, 3600], got \"%s\"\n", optarg);
                return 2;
            }
            ping_ms = (int)(v * 1000);
            break;
        }
        case O_QUEUE: if (parse_int("max-queue", optarg, 1, &ep.max_queue)) return 2; break;
        case O_KEEPALIVE: if (parse_int("timeout-keep-alive", optarg, 1, &keepalive)) return 2; break;
        case O_READ_TIMEOUT: if (parse_int("request-read-timeout", optarg, 1, &read_timeout)) return 2; break;
        case O_WRITE_TIMEOUT: if (parse_int("stream-write-timeout", optarg, 1, &write_timeout)) return 2; break;
        case O_MAXCONN: if (parse_int("max-connections", optarg, 1, &max_conn)) return 2; break;
        case O_MAXCONN_IP: if (parse_int("max-connections-per-ip", optarg, 0, &max_conn_ip)) return 2; break;
        case O_GRACE: if (parse_int("shutdown-timeout", optarg, 0, &grace)) return 2; break;
        case O_NNODES: if (parse_int("nnodes", optarg, 1, &mf.nnodes)) return 2; break;
        case O_NODE_RANK: if (parse_int("node-rank", optarg, 0, &mf.node_rank)) return 2; break;
        case O_MASTER_ADDR: mf.master_addr = optarg; break;
        case O_MASTER_PORT: if (parse_int("master-port", optarg, 1, &mf.master_port)) return 2; break;
        case O_MEMUTIL: {
            char *end;
            double v = strtod(optarg, &end);
            if (end == optarg || *end || !(v > 0 && v <= 1)) {
                fprintf(stderr, "glm-server: --gpu-memory-utilization must be in (0, 1], got \"%s\"\n", optarg);
                return 2;
            }
            ep.mem_fraction = v;
            break;
        }
        case O_KV: {
            if (strcmp(optarg, "auto") == 0) {
                ep.kv_cache_bytes = 0;
                break;
            }
            long long v = parse_size(optarg);
            if (v <= 0) {
                fprintf(stderr, "glm-server: --kv-cache-memory must be a size such as 4GiB, got \"%s\"\n", optarg);
                return 2;
            }
            ep.kv_cache_bytes = (size_t)v;
            break;
        }
        case O_MAXHDR:
            max_hdr = parse_size(optarg);
            if (max_hdr < 1024 || max_hdr > (1 << 20)) {
                fprintf(stderr, "glm-server: --max-header-bytes must be a size from 1KiB to 1MiB, got \"%s\"\n", optarg);
                return 2;
            }
            break;
        case O_MAXREQ:
            max_req = parse_size(optarg);
            if (max_req <= 0) {
                fprintf(stderr, "glm-server: --max-request-bytes must be a size, got \"%s\"\n", optarg);
                return 2;
            }
            break;
        case O_KEY:
            if (optind - 1 > n_cfg && !*cli_keys) { /* keys on the command line replace the file's */
                *cli_keys = 1;
                n_keys = 0;
            }
            if (n_keys == MAX_KEYS || !*optarg) {
                fprintf(stderr, "glm-server: --api-key: at most %d non-empty keys\n", MAX_KEYS);
                return 2;
            }
            keys[n_keys++] = optarg;
            break;
        case O_DEVICE:
        case O_DTYPE:
            if ((o == O_DEVICE ? glm_backend_flags_set_device : glm_backend_flags_set_dtype)(&bf, optarg, err,
                                                                                          sizeof err) != GLM_OK) {
                fprintf(stderr, "glm-server: %s\n", err);
                json_decref(defkw);
                return 2;
            }
            break;
        case O_EAGER: bf.enforce_eager = 1; break;
        case O_TP:
            if (glm_backend_flags_set_tp(&bf, optarg, err, sizeof err) != GLM_OK) {
                fprintf(stderr, "glm-server: %s\n", err);
                json_decref(defkw);
                return 2;
            }
            break;
        case O_NOEAGER: bf.enforce_eager = 0; break;
        case O_PREFIX: ep.enable_prefix_caching = 1; break;
        case O_NOPREFIX: ep.enable_prefix_caching = 0; break;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "glm-server: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (!model_dir) {
        fprintf(stderr, "glm-server: serve: --model is required\n");
        return 2;
    }
    /* the backend, before anything is loaded: --device cuda without CUDA fails at once */
    bf.nnodes = mf.nnodes;
    glm_backend_choice bc;
    char blog[GLM_ERRLEN], bnote[GLM_ERRLEN];
    if (glm_backend_flags_resolve(&bf, &bc, blog, sizeof blog, bnote, sizeof bnote, err, sizeof err) != GLM_OK) {
        fprintf(stderr, "glm-server: %s\n", err);
        json_decref(defkw);
        return 1;
    }
    ep.backend = bc.kind;
    ep.dtype = bc.dtype;
    ep.device = bc.device;
    ep.cuda_graphs = bc.cuda_graphs;
    ep.tensor_parallel_size = bc.tensor_parallel_size;
    if (glm_multinode_check(&mf, &bc, err, sizeof err) != GLM_OK) {
        fprintf(stderr, "glm-server: %s\n", err);
        json_decref(defkw);
        return 1;
    }
    fprintf(stderr, "glm-server: %s\n", blog);
    if (bnote[0])
        fprintf(stderr, "glm-server: %s\n", bnote);

    const char *env_key = getenv("GLM_API_KEY");
    if (env_key && *env_key && n_keys < MAX_KEYS)
        keys[n_keys++] = env_key;

    /* SIGINT/SIGTERM are taken by sigwait below; every thread started from
     * here on inherits the blocked mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    glm_server srv;
    memset(&srv, 0, sizeof srv);
    glm_model *m = NULL;
    glm_tok *tok = NULL;
    glm_chat_template *tmpl = NULL;
    glm_engine *e = NULL;
    glm_http *h = NULL;
    glm_multinode *mn = NULL;

    /* listen first: /health answers 503 while the model loads, 200 when ready */
    srv.model_dir = model_dir;
    srv.served_model_name = name ? name : model_dir;
    srv.api_keys = keys;
    srv.n_api_keys = n_keys;
    srv.max_request_bytes = (size_t)max_req;
    srv.max_header_bytes = (size_t)max_hdr;
    srv.ping_interval_ms = ping_ms;
    srv.idle_timeout_s = keepalive;
    srv.request_read_timeout_s = read_timeout;
    srv.stream_write_timeout_s = write_timeout;
    /* a stream whose client stops reading: the engine holds it back, then aborts it after the same
     * time (engine.h: reader_timeout); the socket's own write deadline is libmicrohttpd's */
    ep.reader_timeout = write_timeout;
    srv.max_connections = max_conn;
    srv.max_connections_per_ip = max_conn_ip;
    srv.allowed_origins = origins;
    srv.default_template_kwargs = defkw;
    srv.defaults = (glm_sampling_defaults){-1.0f, -1.0f, -1, -1.0f, -1.0f, -1};
    srv.created = (long)time(NULL);
    srv.id_base = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() << 32;
    atomic_store(&srv.loading, 1);
    if (mf.nnodes > 1 && mf.node_rank > 0) { /* a follower: no HTTP, its ranks follow node 0 */
        json_decref(defkw);
        return serve_follower(model_dir, &ep, &mf, &sigs);
    }
    h = glm_http_start(&srv, host, port, err, sizeof err);
    if (!h) {
        fprintf(stderr, "glm-server: %s\n", err);
        goto out;
    }
    fprintf(stderr, "glm-server: listening on http://%s%s%s:%d (loading the model)\n", strchr(host, ':') ? "[" : "",
            host, strchr(host, ':') ? "]" : "", port);

    if (mf.nnodes > 1) { /* node 0 of a world across nodes: the others first, then the weights */
        mn = glm_multinode_meet(&mf, ep.tensor_parallel_size, world_fingerprint(model_dir, &ep, mf.nnodes),
                                world_failed, NULL, err, sizeof err);
        if (!mn) {
            fprintf(stderr, "glm-server: %s\n", err);
            goto out;
        }
        ep.first_rank = glm_multinode_first_rank(mn);
        ep.n_local = glm_multinode_n_local(mn);
        ep.world_id = glm_multinode_world_id(mn);
    }
    m = glm_model_load(model_dir, err, sizeof err);
    if (!m) {
        fprintf(stderr, "glm-server: %s\n", err);
        goto out;
    }
    snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
    if (glm_tok_load(path, &tok, err, sizeof err) != GLM_OK) {
        fprintf(stderr, "glm-server: %s\n", err);
        goto out;
    }
    if (!has_chat_template(model_dir))
        fprintf(stderr, "glm-server: %s has no chat template: /v1/completions only, chat requests get a 400\n",
                model_dir);
    else if (glm_chat_template_load(model_dir, &tmpl, err, sizeof err) != GLM_OK) {
        fprintf(stderr, "glm-server: %s\n", err);
        goto out;
    }
    e = glm_engine_create(m, &ep, err, sizeof err);
    if (!e) {
        fprintf(stderr, "glm-server: %s\n", err);
        goto out;
    }
    srv.model = m;
    srv.tok = tok;
    srv.tmpl = tmpl;
    srv.engine = e;
    srv.max_model_len = glm_engine_max_model_len(e);
    srv.vocab = m->cfg.vocab_size;
    glm_out_tags_default(&srv.tags);
    glm_oai_vocab_setup(&srv);
    for (int i = 0; i < m->cfg.n_eos && srv.n_eos < (int)(sizeof srv.eos_ids / sizeof srv.eos_ids[0]); i++)
        srv.eos_ids[srv.n_eos++] = m->cfg.eos_token_ids[i];
    if (gen_config && apply_generation_config(&srv, &m->cfg) != GLM_OK)
        goto out;
    srv.metrics = glm_metrics_create(srv.max_model_len);
    glm_out_params prm;
    glm_out_params_default(&prm);
    glm_out_parser *probe = glm_out_create(&prm, err, sizeof err);
    if (!probe) {
        fprintf(stderr, "glm-server: output parser: %s\n", err);
        goto out;
    }
    glm_out_free(probe);

    fprintf(stderr, "glm-server: model %s served as \"%s\": vocab %d, max_model_len %d%s\n", model_dir,
            srv.served_model_name, srv.vocab, srv.max_model_len, n_keys ? ", API key required" : "");
    fprintf(stderr, "glm-server: %zu tokens of KV cache\n", glm_engine_kv_tokens(e));
    if (ep.num_speculative_tokens > 0)
        fprintf(stderr, "glm-server: speculative decoding: the MTP layer drafts %d token%s a step\n",
                ep.num_speculative_tokens, ep.num_speculative_tokens > 1 ? "s" : "");
    glm_server_ready(&srv);
    world_phase(1, e);
    atomic_store(&srv.loading, 0); /* publishes everything above to the handler threads */
    fprintf(stderr, "glm-server: ready\n");

    /* until a signal, or until the engine stops for good (a tensor-parallel rank failed):
     * then the server stops too, with exit status 1, as vLLM's does when its engine dies */
    int sig = 0, dead = 0;
    char why[GLM_ERRLEN];
    for (;;) {
        struct timespec tick = {0, 200 * 1000000L};
        sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig > 0)
            break;
        if ((dead = glm_engine_dead(e, why, sizeof why)))
            break;
    }
    if (dead)
        fprintf(stderr, "glm-server: the engine stopped: %s; no new connections; waiting up to %d s for %d "
                        "request(s) to be told\n", why, grace, atomic_load(&srv.active));
    else
        fprintf(stderr, "glm-server: %s: no new connections; waiting up to %d s for %d running request(s)\n",
                sig == SIGINT ? "SIGINT" : "SIGTERM", grace, atomic_load(&srv.active));
    atomic_store(&srv.draining, 1);
    glm_http_quiesce(h);
    double deadline = glm_now() + grace;
    while (atomic_load(&srv.active) > 0 && glm_now() < deadline) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&srv.active) > 0) {
        fprintf(stderr, "glm-server: aborting %d request(s)\n", atomic_load(&srv.active));
        glm_http_stop_waiting(h); /* every waiting request aborts now */
        deadline = glm_now() + 5;
        while (atomic_load(&srv.active) > 0 && glm_now() < deadline) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    glm_http_stop(h);
    h = NULL;
    fprintf(stderr, "glm-server: stopped\n");
    rc = dead ? 1 : 0;
out:
    world_phase(2, NULL);
    glm_http_stop(h);
    glm_engine_free(e); /* a world across nodes: the stop step to every rank */
    glm_multinode_free(mn);
    glm_metrics_free(srv.metrics);
    glm_oai_vocab_free(&srv);
    glm_chat_template_free(tmpl);
    glm_tok_free(tok);
    glm_model_free(m);
    json_decref(defkw);
    return rc;
}
