/*
 * handlers.c - the small endpoints of `glm-server serve`: GET /health,
 * /version, /v1/models, /v1/models/{id}, /metrics (Prometheus text), and
 * vLLM's POST /tokenize (its answer written as it is sent, from the ids) and
 * /detokenize.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/utf8.h"
#include "core/util.h"
#include "glm/chat_prompt.h"
#include "http.h"
#include "request_body.h"

enum MHD_Result glm_handle_health(glm_http_req *r, int loading)
{
    if (loading)
        return glm_http_error(r, 503, NULL, NULL, "the model is still loading");
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    return glm_http_queue(r, 200, resp, NULL);
}

enum MHD_Result glm_handle_version(glm_http_req *r)
{
    return glm_http_json(r, 200, json_pack("{s:s}", "version", GLM_SERVER_VERSION));
}

/* OpenAI's model object, vLLM's fields (root, parent, max_model_len, permission), and
 * context_length, what OpenRouter-style provider listings read. */
static json_t *model_card(const glm_served_model *m)
{
    return json_pack("{s:s,s:s,s:I,s:s,s:s,s:n,s:i,s:i,s:[]}", "id", m->served_model_name, "object", "model",
                     "created", (json_int_t)m->created, "owned_by", "glm-server", "root", m->model_dir, "parent",
                     "max_model_len", m->max_model_len, "context_length", m->max_model_len, "permission");
}

enum MHD_Result glm_handle_models(glm_http_req *r, const glm_served_model *m, const char *id)
{
    if (id) {
        if (strcmp(id, m->served_model_name) != 0)
            return glm_http_error(r, 404, NULL, "model", "The model `%s` does not exist.", id);
        return glm_http_json(r, 200, model_card(m));
    }
    return glm_http_json(r, 200, json_pack("{s:s,s:[o]}", "object", "list", "data", model_card(m)));
}

enum MHD_Result glm_handle_metrics(glm_http_req *r, const glm_gen_ctx *g)
{
    glm_engine_metrics m;
    glm_engine_metrics_get(g->engine, &m);
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    if (!f)
        return glm_http_error(r, 503, NULL, NULL, "out of memory");
    glm_metrics_render(g->metrics, &m, g->model->served_model_name, f);
    fclose(f);
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
    return glm_http_queue(r, 200, resp, "text/plain; version=0.0.4; charset=utf-8");
}

/* /tokenize's answer, written as MHD reads it: {"count", "max_model_len", "tokens", "token_strs"}
 * from the ids alone, so that a long prompt's answer (up to 7 bytes a token, more with its
 * strings) is never whole in memory; the request's tree and body are freed before. */
typedef struct {
    const glm_tok *tok;
    int32_t *ids;       /* [n] */
    size_t n;
    size_t next;        /* the next id of the current list */
    int part;           /* 0 head, 1 tokens, 2 between, 3 token_strs, 4 tail, 5 done */
    int strs;           /* return_token_strs */
    int max_model_len;
    glm_buf out;        /* written, not yet read: [pos, len) */
    size_t pos;
} tokenize_answer;

/* Appends the next piece of the answer (about 16 KiB at most). */
static void tokenize_more(tokenize_answer *a)
{
    glm_buf *b = &a->out;
    switch (a->part) {
    case 0:
        glm_buf_printf(b, "{\"count\":%zu,\"max_model_len\":%d,\"tokens\":[", a->n, a->max_model_len);
        a->part = 1;
        return;
    case 1:
        for (; a->next < a->n && b->len < 16384; a->next++)
            glm_buf_printf(b, a->next ? ",%d" : "%d", a->ids[a->next]);
        if (a->next == a->n) {
            a->next = 0;
            a->part = 2;
        }
        return;
    case 2:
        glm_buf_puts(b, a->strs ? "],\"token_strs\":[" : "],\"token_strs\":null}");
        a->part = a->strs ? 3 : 5;
        return;
    case 3:
        for (; a->next < a->n && b->len < 16384; a->next++) {
            size_t tl = 0;
            const char *t = glm_tok_id_to_token(a->tok, a->ids[a->next], &tl);
            glm_buf_puts(b, a->next ? ",\"" : "\"");
            if (t && glm_utf8_valid(t, tl))
                glm_buf_json_escape(b, t, tl, 0);
            glm_buf_putc(b, '"');
        }
        if (a->next == a->n)
            a->part = 4;
        return;
    case 4:
        glm_buf_puts(b, "]}");
        a->part = 5;
        return;
    default:
        return;
    }
}

static ssize_t tokenize_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    tokenize_answer *a = cls;
    while (a->pos == a->out.len) {
        if (a->part == 5)
            return MHD_CONTENT_READER_END_OF_STREAM;
        glm_buf_clear(&a->out);
        a->pos = 0;
        tokenize_more(a);
    }
    size_t n = GLM_MIN(max, a->out.len - a->pos);
    memcpy(buf, a->out.p + a->pos, n);
    a->pos += n;
    return (ssize_t)n;
}

static void tokenize_free(void *cls)
{
    tokenize_answer *a = cls;
    free(a->ids);
    glm_buf_free(&a->out);
    free(a);
}

enum MHD_Result glm_handle_tokenize(glm_http_req *r, const glm_served_model *m, const glm_chat_ctx *chat)
{
    enum MHD_Result res;
    glm_body body;
    if (glm_body_open(r, m, &body, &res) != GLM_OK)
        return res;
    json_t *req = body.root;
    char err[GLM_ERRLEN];
    glm_chat_prompt cp = {0};
    int status = 400;
    const char *param = NULL;
    json_t *model = json_object_get(req, "model");
    json_t *messages = json_object_get(req, "messages");
    json_t *prompt = json_object_get(req, "prompt");
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = GLM_ERR;
    if (json_is_string(model) && strcmp(json_string_value(model), m->served_model_name) != 0) {
        status = 404;
        param = "model";
        snprintf(err, sizeof err, "The model `%s` does not exist.", json_string_value(model));
    } else if (messages) { /* the chat API's prompt, to the token (engine/glm/chat_prompt.h) */
        rc = glm_chat_prompt_build(chat, req, 0, &cp, err, sizeof err);
        param = cp.param[0] ? cp.param : NULL;
        ids = cp.ids;
        n = cp.n_ids;
        cp.ids = NULL;
    } else if (json_is_string(prompt)) {
        rc = glm_tok_encode(chat->tok, json_string_value(prompt), json_string_length(prompt), 1, &ids, &n, err,
                            sizeof err);
        param = "prompt";
    } else {
        param = "prompt";
        snprintf(err, sizeof err, "'prompt' (a string) or 'messages' is required");
    }
    int strs = json_is_true(json_object_get(req, "return_token_strs"));
    glm_chat_prompt_free(&cp);
    glm_body_close(m, &body); /* what is left is the ids */
    if (rc != GLM_OK) {
        free(ids);
        return glm_http_error(r, status, NULL, param, "%s", err);
    }
    r->prompt_tokens = (int)GLM_MIN(n, (size_t)INT32_MAX);
    tokenize_answer *a = glm_calloc(1, sizeof *a);
    *a = (tokenize_answer){.tok = chat->tok, .ids = ids, .n = n, .strs = strs, .max_model_len = m->max_model_len};
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32768, tokenize_read, a,
                                                                  tokenize_free);
    if (!resp) {
        tokenize_free(a);
        return MHD_NO;
    }
    return glm_http_queue(r, 200, resp, "application/json");
}

enum MHD_Result glm_handle_detokenize(glm_http_req *r, const glm_served_model *m, const glm_tok *tok)
{
    enum MHD_Result res;
    glm_body body;
    if (glm_body_open(r, m, &body, &res) != GLM_OK)
        return res;
    json_t *toks = json_object_get(body.root, "tokens");
    if (!json_is_array(toks)) {
        glm_body_close(m, &body);
        return glm_http_error(r, 400, NULL, "tokens", "'tokens' must be an array of token ids");
    }
    size_t n = json_array_size(toks), i;
    int32_t *ids = glm_malloc(sizeof(int32_t) * (n ? n : 1));
    json_t *x;
    json_array_foreach(toks, i, x) {
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= m->vocab) {
            free(ids);
            glm_body_close(m, &body);
            return glm_http_error(r, 400, NULL, "tokens", "'tokens' must hold token ids in [0, %d)", m->vocab);
        }
        ids[i] = (int32_t)json_integer_value(x);
    }
    glm_body_close(m, &body);
    size_t len;
    char *text = glm_tok_decode(tok, ids, n, 0, &len);
    free(ids);
    json_t *s = json_stringn(text, len);
    free(text);
    if (!s)
        return glm_http_error(r, 400, NULL, "tokens", "the tokens do not decode to valid text");
    return glm_http_json(r, 200, json_pack("{s:o}", "prompt", s));
}
