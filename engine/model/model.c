/*
 * model.c - binds checkpoint tensors to glm_model (see model.h).
 */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

typedef struct {
    glm_model *m;
    const char *dir;
    char *err;
    size_t errlen;
} binder;

static int shape_err(binder *b, const st_tensor *t, const char *name, int64_t r, int64_t c, int nd)
{
    char want[64], got[128];
    if (nd == 1)
        snprintf(want, sizeof want, "[%lld]", (long long)r);
    else
        snprintf(want, sizeof want, "[%lld, %lld]", (long long)r, (long long)c);
    int o = snprintf(got, sizeof got, "[");
    for (int i = 0; i < t->ndim && o < (int)sizeof got - 24; i++)
        o += snprintf(got + o, sizeof got - (size_t)o, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    snprintf(got + o, sizeof got - (size_t)o, "]");
    return glm_err(b->err, b->errlen, "%s: tensor '%s': expected shape %s, found %s", t->file, name,
                   want, got);
}

static const st_tensor *find(binder *b, const char *name)
{
    const st_tensor *t = st_find(b->m->ck, name);
    if (!t)
        glm_err(b->err, b->errlen, "%s: tensor '%s' is missing from the checkpoint", b->dir, name);
    return t;
}

static int is_float_dtype(glm_dtype d)
{
    return d == GLM_DTYPE_F32 || d == GLM_DTYPE_BF16 || d == GLM_DTYPE_F16;
}

static int bind_weight(binder *b, const char *name, int rows, int cols, glm_weight *w)
{
    const st_tensor *t = find(b, name);
    if (!t)
        return GLM_ERR;
    if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return shape_err(b, t, name, rows, cols, 2);
    memset(w, 0, sizeof *w);
    w->data = t->data;
    w->dtype = t->dtype;
    w->rows = rows;
    w->cols = cols;
    if (t->dtype == GLM_DTYPE_F8_E4M3) {
        const glm_config *c = &b->m->cfg;
        int br = c->fp8 ? c->fp8_block[0] : 128, bc = c->fp8 ? c->fp8_block[1] : 128;
        char sname[512];
        snprintf(sname, sizeof sname, "%s_scale_inv", name);
        const st_tensor *s = st_find(b->m->ck, sname);
        if (!s)
            return glm_err(b->err, b->errlen, "%s: tensor '%s' is F8_E4M3 but '%s' is missing", t->file,
                           name, sname);
        int64_t nr = (rows + br - 1) / br, nc = (cols + bc - 1) / bc;
        if (s->ndim != 2 || s->shape[0] != nr || s->shape[1] != nc)
            return shape_err(b, s, sname, nr, nc, 2);
        if (s->dtype != GLM_DTYPE_F32 && s->dtype != GLM_DTYPE_BF16)
            return glm_err(b->err, b->errlen, "%s: tensor '%s': scale dtype %s unsupported (F32 or BF16)",
                           s->file, sname, glm_dtype_name(s->dtype));
        /* copied: the mapped data may be unaligned, and it is small */
        float *sc = glm_malloc(sizeof(float) * (size_t)(nr * nc));
        glm_to_f32(s->dtype, s->data, sc, (size_t)(nr * nc));
        w->scale = sc;
        w->block_r = br;
        w->block_c = bc;
    } else if (!is_float_dtype(t->dtype)) {
        return glm_err(b->err, b->errlen, "%s: tensor '%s': dtype %s is not supported for weights", t->file,
                       name, glm_dtype_name(t->dtype));
    }
    b->m->weight_bytes += t->nbytes;
    return GLM_OK;
}

static void free_weight(glm_weight *w)
{
    free((void *)w->scale);
    w->scale = NULL;
}

static int bind_vec(binder *b, const char *name, int n, float **out)
{
    const st_tensor *t = find(b, name);
    if (!t)
        return GLM_ERR;
    if (t->ndim != 1 || t->shape[0] != n)
        return shape_err(b, t, name, n, 0, 1);
    if (!is_float_dtype(t->dtype))
        return glm_err(b->err, b->errlen, "%s: tensor '%s': dtype %s is not supported here", t->file, name,
                       glm_dtype_name(t->dtype));
    *out = glm_malloc(sizeof(float) * (size_t)n);
    glm_to_f32(t->dtype, t->data, *out, (size_t)n);
    b->m->weight_bytes += t->nbytes;
    return GLM_OK;
}

#define NAME(buf, ...) (snprintf(buf, sizeof buf, __VA_ARGS__), buf)

static int bind_layer(binder *b, int i, int sparse, int has_indexer, glm_layer *l)
{
    const glm_config *c = &b->m->cfg;
    char n[512];
    const char *p = "model.layers";
    int H = c->hidden_size, heads = c->num_attention_heads;
    l->sparse = sparse;
    l->has_indexer = has_indexer;
    if (bind_vec(b, NAME(n, "%s.%d.input_layernorm.weight", p, i), H, &l->input_norm) ||
        bind_vec(b, NAME(n, "%s.%d.post_attention_layernorm.weight", p, i), H, &l->post_norm) ||
        bind_weight(b, NAME(n, "%s.%d.self_attn.q_a_proj.weight", p, i), c->q_lora_rank, H, &l->q_a) ||
        bind_vec(b, NAME(n, "%s.%d.self_attn.q_a_layernorm.weight", p, i), c->q_lora_rank, &l->q_a_norm) ||
        bind_weight(b, NAME(n, "%s.%d.self_attn.q_b_proj.weight", p, i), heads * c->qk_head_dim,
                    c->q_lora_rank, &l->q_b) ||
        bind_weight(b, NAME(n, "%s.%d.self_attn.kv_a_proj_with_mqa.weight", p, i),
                    c->kv_lora_rank + c->qk_rope_head_dim, H, &l->kv_a) ||
        bind_vec(b, NAME(n, "%s.%d.self_attn.kv_a_layernorm.weight", p, i), c->kv_lora_rank, &l->kv_a_norm) ||
        bind_weight(b, NAME(n, "%s.%d.self_attn.kv_b_proj.weight", p, i),
                    heads * (c->qk_nope_head_dim + c->v_head_dim), c->kv_lora_rank, &l->kv_b) ||
        bind_weight(b, NAME(n, "%s.%d.self_attn.o_proj.weight", p, i), H, heads * c->v_head_dim, &l->o))
        return GLM_ERR;
    if (has_indexer) {
        int ih = c->index_n_heads, id = c->index_head_dim;
        if (bind_weight(b, NAME(n, "%s.%d.self_attn.indexer.wq_b.weight", p, i), ih * id, c->q_lora_rank,
                        &l->idx_wq_b) ||
            bind_weight(b, NAME(n, "%s.%d.self_attn.indexer.wk.weight", p, i), id, H, &l->idx_wk) ||
            bind_vec(b, NAME(n, "%s.%d.self_attn.indexer.k_norm.weight", p, i), id, &l->idx_k_norm_w) ||
            bind_vec(b, NAME(n, "%s.%d.self_attn.indexer.k_norm.bias", p, i), id, &l->idx_k_norm_b) ||
            bind_weight(b, NAME(n, "%s.%d.self_attn.indexer.weights_proj.weight", p, i), ih, H,
                        &l->idx_weights_proj))
            return GLM_ERR;
    }
    if (!sparse) {
        int I = c->intermediate_size;
        return bind_weight(b, NAME(n, "%s.%d.mlp.gate_proj.weight", p, i), I, H, &l->gate) ||
               bind_weight(b, NAME(n, "%s.%d.mlp.up_proj.weight", p, i), I, H, &l->up) ||
               bind_weight(b, NAME(n, "%s.%d.mlp.down_proj.weight", p, i), H, I, &l->down);
    }
    int E = c->n_routed_experts, mI = c->moe_intermediate_size;
    if (bind_weight(b, NAME(n, "%s.%d.mlp.gate.weight", p, i), E, H, &l->router) ||
        bind_vec(b, NAME(n, "%s.%d.mlp.gate.e_score_correction_bias", p, i), E, &l->router_bias))
        return GLM_ERR;
    if (l->router.dtype == GLM_DTYPE_F8_E4M3)
        return glm_err(b->err, b->errlen, "%s: tensor '%s.%d.mlp.gate.weight': the router must not be FP8",
                       b->dir, p, i);
    l->exp_gate = glm_calloc((size_t)E, sizeof(glm_weight));
    l->exp_up = glm_calloc((size_t)E, sizeof(glm_weight));
    l->exp_down = glm_calloc((size_t)E, sizeof(glm_weight));
    for (int e = 0; e < E; e++) {
        if (bind_weight(b, NAME(n, "%s.%d.mlp.experts.%d.gate_proj.weight", p, i, e), mI, H, &l->exp_gate[e]) ||
            bind_weight(b, NAME(n, "%s.%d.mlp.experts.%d.up_proj.weight", p, i, e), mI, H, &l->exp_up[e]) ||
            bind_weight(b, NAME(n, "%s.%d.mlp.experts.%d.down_proj.weight", p, i, e), H, mI, &l->exp_down[e]))
            return GLM_ERR;
    }
    if (c->n_shared_experts > 0) {
        int sI = mI * c->n_shared_experts;
        if (bind_weight(b, NAME(n, "%s.%d.mlp.shared_experts.gate_proj.weight", p, i), sI, H, &l->sh_gate) ||
            bind_weight(b, NAME(n, "%s.%d.mlp.shared_experts.up_proj.weight", p, i), sI, H, &l->sh_up) ||
            bind_weight(b, NAME(n, "%s.%d.mlp.shared_experts.down_proj.weight", p, i), H, sI, &l->sh_down))
            return GLM_ERR;
    }
    return GLM_OK;
}

static void free_layer(glm_layer *l, int n_experts)
{
    free(l->input_norm);
    free(l->q_a_norm);
    free(l->kv_a_norm);
    free(l->idx_k_norm_w);
    free(l->idx_k_norm_b);
    free(l->post_norm);
    free(l->router_bias);
    glm_weight *ws[] = {&l->q_a, &l->q_b, &l->kv_a, &l->kv_b, &l->o, &l->idx_wq_b, &l->idx_wk,
                        &l->idx_weights_proj, &l->gate, &l->up, &l->down, &l->router,
                        &l->sh_gate, &l->sh_up, &l->sh_down};
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
        free_weight(ws[i]);
    for (int e = 0; l->exp_gate && e < n_experts; e++) {
        free_weight(&l->exp_gate[e]);
        free_weight(&l->exp_up[e]);
        free_weight(&l->exp_down[e]);
    }
    free(l->exp_gate);
    free(l->exp_up);
    free(l->exp_down);
    memset(l, 0, sizeof *l);
}

/* The next-n (MTP) layer, when its tensors are there (glm_mtp); its bytes are counted apart. */
static int bind_mtp(binder *b)
{
    glm_model *m = b->m;
    const glm_config *c = &m->cfg;
    int L = c->num_hidden_layers, H = c->hidden_size;
    char n[512];
    if (c->num_nextn_predict_layers < 1 || !st_find(m->ck, NAME(n, "model.layers.%d.eh_proj.weight", L)))
        return GLM_OK;
    size_t bytes = m->weight_bytes;
    glm_mtp *t = m->mtp = glm_calloc(1, sizeof *t);
    int rc = bind_layer(b, L, 1, 1, &t->layer);
    if (rc == GLM_OK)
        rc = bind_weight(b, NAME(n, "model.layers.%d.eh_proj.weight", L), H, 2 * H, &t->eh_proj);
    if (rc == GLM_OK)
        rc = bind_vec(b, NAME(n, "model.layers.%d.enorm.weight", L), H, &t->enorm) ||
             bind_vec(b, NAME(n, "model.layers.%d.hnorm.weight", L), H, &t->hnorm) ||
             bind_vec(b, NAME(n, "model.layers.%d.shared_head.norm.weight", L), H, &t->head_norm);
    m->mtp_bytes = m->weight_bytes - bytes;
    m->weight_bytes = bytes;
    return rc;
}

static void free_mtp(glm_mtp *t, int n_experts)
{
    if (!t)
        return;
    free_layer(&t->layer, n_experts);
    free_weight(&t->eh_proj);
    free(t->enorm);
    free(t->hnorm);
    free(t->head_norm);
    free(t);
}

glm_model *glm_model_load(const char *dir, char *err, size_t errlen)
{
    glm_model *m = glm_calloc(1, sizeof *m);
    if (glm_config_load(dir, &m->cfg, err, errlen) != GLM_OK) {
        free(m);
        return NULL;
    }
    if (st_open(dir, &m->ck, err, errlen) != GLM_OK) {
        glm_config_free(&m->cfg);
        free(m);
        return NULL;
    }
    binder b = {m, dir, err, errlen};
    const glm_config *c = &m->cfg;
    int V = c->vocab_size, H = c->hidden_size;
    m->layers = glm_calloc((size_t)c->num_hidden_layers, sizeof(glm_layer));
    if (bind_weight(&b, "model.embed_tokens.weight", V, H, &m->embed) ||
        bind_vec(&b, "model.norm.weight", H, &m->final_norm))
        goto fail;
    if (c->tie_word_embeddings && !st_find(m->ck, "lm_head.weight"))
        m->lm_head = m->embed, m->lm_head.scale = NULL;
    else if (bind_weight(&b, "lm_head.weight", V, H, &m->lm_head))
        goto fail;
    if (m->embed.dtype == GLM_DTYPE_F8_E4M3 && c->tie_word_embeddings) {
        glm_err(err, errlen, "%s: FP8 tied embeddings are not supported", dir);
        goto fail;
    }
    for (int i = 0; i < c->num_hidden_layers; i++)
        if (bind_layer(&b, i, c->mlp_sparse[i], c->indexer_types[i] == GLM_INDEXER_FULL, &m->layers[i]))
            goto fail;
    if (bind_mtp(&b))
        goto fail;
    m->shard = (glm_shard){.rank = 0, .world = 1, .vocab0 = 0, .n_vocab = V, .vocab_stride = V, .expert0 = 0,
                           .n_experts = c->n_routed_experts, .heads0 = 0};
    return m;
fail:
    glm_model_free(m);
    return NULL;
}

void glm_model_free(glm_model *m)
{
    if (!m)
        return;
    if (m->whole) { /* a shard: its tables of views only */
        for (int i = 0; m->layers && i < m->cfg.num_hidden_layers; i++) {
            free(m->layers[i].exp_gate);
            free(m->layers[i].exp_up);
            free(m->layers[i].exp_down);
        }
        free(m->layers);
        if (m->mtp) {
            free(m->mtp->layer.exp_gate);
            free(m->mtp->layer.exp_up);
            free(m->mtp->layer.exp_down);
            free(m->mtp);
        }
        free(m);
        return;
    }
    for (int i = 0; m->layers && i < m->cfg.num_hidden_layers; i++)
        free_layer(&m->layers[i], m->cfg.n_routed_experts);
    free(m->layers);
    free_mtp(m->mtp, m->cfg.n_routed_experts);
    free_weight(&m->embed);
    if (m->lm_head.data != m->embed.data)
        free_weight(&m->lm_head);
    free(m->final_norm);
    st_close(m->ck);
    glm_config_free(&m->cfg);
    free(m);
}
