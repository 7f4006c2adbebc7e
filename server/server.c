/* server.c - the handlers' contexts of a loaded server; see server.h. */
#include "server.h"

#include <string.h>

void glm_server_ready(glm_server *srv)
{
    glm_parse_gate_init(&srv->gate, 0, 0);
    srv->served = (glm_served_model){
        .model_dir = srv->model_dir,
        .served_model_name = srv->served_model_name,
        .created = srv->created,
        .max_model_len = srv->max_model_len,
        .vocab = srv->vocab,
        .body_limits = &srv->chat.limits.json,
        .gate = &srv->gate,
    };
    srv->out.tok = srv->tok;
    srv->out.tags = srv->tags;
    memcpy(srv->out.eos_ids, srv->eos_ids, sizeof srv->out.eos_ids);
    srv->out.n_eos = srv->n_eos;
    srv->chat = (glm_chat_ctx){
        .tmpl = srv->tmpl,
        .tok = srv->tok,
        .default_kwargs = srv->default_template_kwargs,
        .tags = &srv->out.tags,
    };
    glm_chat_limits_init(&srv->chat.limits, srv->max_model_len);
    srv->gen = (glm_gen_ctx){
        .model = &srv->served,
        .chat = &srv->chat,
        .out = &srv->out,
        .engine = srv->engine,
        .metrics = srv->metrics,
        .defaults = srv->defaults,
        .ping_interval_ms = srv->ping_interval_ms,
        .waiter = srv->waiter,
        .stream_write_timeout_s = srv->stream_write_timeout_s,
    };
}
