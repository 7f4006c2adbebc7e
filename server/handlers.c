/*
 * handlers.c - the small endpoints of `glm-server serve`: GET /health,
 * /version, /v1/models, /v1/models/{id}, /metrics (Prometheus text), and
 * vLLM's POST /tokenize and /detokenize.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glm/chat_prompt.h"
#include "http.h"
#include "core/util.h"

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

static json_t *model_card(const glm_served_model *m)
{
    return json_pack("{s:s,s:s,s:I,s:s,s:s,s:n,s:i,s:[]}", "id", m->served_model_name, "object", "model",
                     "created", (json_int_t)m->created, "owned_by", "glm-server", "root", m->model_dir, "parent",
                     "max_model_len", m->max_model_len, "permission");
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

enum MHD_Result glm_handle_tokenize(glm_http_req *r, const glm_served_model *m, const glm_chat_ctx *chat)
{
    enum MHD_Result res;
    json_t *req = glm_http_body_json(r, &res);
    if (!req)
        return res;
    char err[GLM_ERRLEN];
    glm_chat_prompt cp = {0};
    json_t *model = json_object_get(req, "model");
    if (json_is_string(model) && strcmp(json_string_value(model), m->served_model_name) != 0) {
        res = glm_http_error(r, 404, NULL, "model", "The model `%s` does not exist.", json_string_value(model));
        goto out;
    }
    json_t *messages = json_object_get(req, "messages");
    json_t *prompt = json_object_get(req, "prompt");
    int32_t *ids = NULL;
    size_t n = 0;
    if (messages) { /* the chat API's prompt, to the token (engine/glm/chat_prompt.h) */
        if (glm_chat_prompt_build(chat, req, &cp, err, sizeof err) != GLM_OK) {
            res = glm_http_error(r, 400, NULL, cp.param[0] ? cp.param : NULL, "%s", err);
            goto out;
        }
        ids = cp.ids;
        n = cp.n_ids;
        cp.ids = NULL;
    } else if (json_is_string(prompt)) {
        if (glm_tok_encode(chat->tok, json_string_value(prompt), json_string_length(prompt), 1, &ids, &n, err,
                           sizeof err) != GLM_OK) {
            res = glm_http_error(r, 400, NULL, "prompt", "%s", err);
            goto out;
        }
    } else {
        res = glm_http_error(r, 400, NULL, "prompt", "'prompt' (a string) or 'messages' is required");
        goto out;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_integer(ids[i]));
    free(ids);
    json_t *strs = json_null();
    json_t *rts = json_object_get(req, "return_token_strs");
    if (json_is_true(rts)) {
        json_decref(strs);
        strs = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(arr, i, x) {
            size_t tl;
            const char *t = glm_tok_id_to_token(chat->tok, (int32_t)json_integer_value(x), &tl);
            json_t *s = t ? json_stringn(t, tl) : NULL;
            json_array_append_new(strs, s ? s : json_string(""));
        }
    }
    r->prompt_tokens = (int)n;
    res = glm_http_json(r, 200, json_pack("{s:i,s:i,s:o,s:o}", "count", (int)n, "max_model_len", m->max_model_len,
                                          "tokens", arr, "token_strs", strs));
out:
    glm_chat_prompt_free(&cp);
    json_decref(req);
    return res;
}

enum MHD_Result glm_handle_detokenize(glm_http_req *r, const glm_served_model *m, const glm_tok *tok)
{
    enum MHD_Result res;
    json_t *req = glm_http_body_json(r, &res);
    if (!req)
        return res;
    json_t *toks = json_object_get(req, "tokens");
    if (!json_is_array(toks)) {
        res = glm_http_error(r, 400, NULL, "tokens", "'tokens' must be an array of token ids");
        json_decref(req);
        return res;
    }
    size_t n = json_array_size(toks), i;
    int32_t *ids = glm_malloc(sizeof(int32_t) * (n ? n : 1));
    json_t *x;
    json_array_foreach(toks, i, x) {
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= m->vocab) {
            free(ids);
            json_decref(req);
            return glm_http_error(r, 400, NULL, "tokens", "'tokens' must hold token ids in [0, %d)", m->vocab);
        }
        ids[i] = (int32_t)json_integer_value(x);
    }
    size_t len;
    char *text = glm_tok_decode(tok, ids, n, 0, &len);
    free(ids);
    json_t *s = json_stringn(text, len);
    free(text);
    json_decref(req);
    if (!s)
        return glm_http_error(r, 400, NULL, "tokens", "the tokens do not decode to valid text");
    return glm_http_json(r, 200, json_pack("{s:o}", "prompt", s));
}
