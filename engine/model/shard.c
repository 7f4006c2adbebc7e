/* shard.c - a rank's share of the model for tensor parallelism (model.h: glm_model_shard). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "model/model.h"

typedef struct {
    glm_model *s;
    char *err;
    size_t errlen;
} sharder;

/* *w = rows [r0, r0 + nr) x columns [c0, c0 + nc) of itself, named in errors. */
static int cut(sharder *sh, const char *name, int layer, glm_weight *w, int r0, int nr, int c0, int nc)
{
    char why[256];
    glm_weight v;
    if (glm_weight_slice(w, r0, nr, c0, nc, &v, why, sizeof why) != GLM_OK) {
        if (layer >= 0)
            return glm_err(sh->err, sh->errlen, "tensor parallel size %d: model.layers.%d.%s.weight: %s",
                           sh->s->shard.world, layer, name, why);
        return glm_err(sh->err, sh->errlen, "tensor parallel size %d: %s.weight: %s", sh->s->shard.world, name,
                       why);
    }
    *w = v;
    return GLM_OK;
}

static size_t view_bytes(const glm_weight *w)
{
    return w->data ? (size_t)w->rows * (size_t)w->cols * glm_dtype_size(w->dtype) : 0;
}

/* What must divide by world, with the model's numbers: GLM_OK or a message. */
static int check_divides(const glm_model *m, int world, char *err, size_t errlen)
{
    const glm_config *c = &m->cfg;
    int has_dense = 0, has_sparse = 0;
    for (int i = 0; i < c->num_hidden_layers; i++)
        if (m->layers[i].sparse)
            has_sparse = 1;
        else
            has_dense = 1;
    struct {
        const char *what;
        int n, used;
    } need[] = {
        {"attention heads (num_attention_heads)", c->num_attention_heads, 1},
        {"routed experts (n_routed_experts)", c->n_routed_experts, has_sparse},
        {"dense MLP width (intermediate_size)", c->intermediate_size, has_dense},
        {"shared experts' width (moe_intermediate_size x n_shared_experts)",
         c->moe_intermediate_size * c->n_shared_experts, has_sparse && c->n_shared_experts > 0},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (need[i].used && need[i].n % world != 0)
            return glm_err(err, errlen, "tensor parallel size %d does not divide the model's %d %s", world,
                           need[i].n, need[i].what);
    if ((c->vocab_size + world - 1) / world * (world - 1) >= c->vocab_size)
        return glm_err(err, errlen, "tensor parallel size %d leaves a rank no rows of the %d-token vocabulary",
                       world, c->vocab_size);
    return GLM_OK;
}

/* Layer i's share of rank sh->s->shard.rank: views of src (m's layer i, or its MTP layer). */
static int shard_layer(sharder *sh, const glm_layer *src, int i, glm_layer *l)
{
    const glm_model *s = sh->s;
    const glm_config *c = &s->cfg; /* the shard's: heads and intermediate size are the rank's */
    int rank = s->shard.rank, world = s->shard.world, heads = c->num_attention_heads, E = c->n_routed_experts;
    int H = c->hidden_size, qd = c->qk_head_dim, kvd = c->qk_nope_head_dim + c->v_head_dim, vd = c->v_head_dim;
    *l = *src;
    l->exp_gate = l->exp_up = l->exp_down = NULL;
    if (cut(sh, "self_attn.q_b_proj", i, &l->q_b, rank * heads * qd, heads * qd, 0, c->q_lora_rank) ||
        cut(sh, "self_attn.kv_b_proj", i, &l->kv_b, rank * heads * kvd, heads * kvd, 0, c->kv_lora_rank) ||
        cut(sh, "self_attn.o_proj", i, &l->o, 0, H, rank * heads * vd, heads * vd))
        return GLM_ERR;
    if (!l->sparse) {
        int I = c->intermediate_size;
        return cut(sh, "mlp.gate_proj", i, &l->gate, rank * I, I, 0, H) ||
               cut(sh, "mlp.up_proj", i, &l->up, rank * I, I, 0, H) ||
               cut(sh, "mlp.down_proj", i, &l->down, 0, H, rank * I, I);
    }
    if (c->n_shared_experts > 0) {
        int sI = l->sh_gate.rows / world;
        if (cut(sh, "mlp.shared_experts.gate_proj", i, &l->sh_gate, rank * sI, sI, 0, H) ||
            cut(sh, "mlp.shared_experts.up_proj", i, &l->sh_up, rank * sI, sI, 0, H) ||
            cut(sh, "mlp.shared_experts.down_proj", i, &l->sh_down, 0, H, rank * sI, sI))
            return GLM_ERR;
    }
    /* the rank's experts whole, the others' entries empty */
    l->exp_gate = glm_calloc((size_t)E, sizeof(glm_weight));
    l->exp_up = glm_calloc((size_t)E, sizeof(glm_weight));
    l->exp_down = glm_calloc((size_t)E, sizeof(glm_weight));
    for (int e = s->shard.expert0; e < s->shard.expert0 + s->shard.n_experts; e++) {
        l->exp_gate[e] = src->exp_gate[e];
        l->exp_up[e] = src->exp_up[e];
        l->exp_down[e] = src->exp_down[e];
    }
    return GLM_OK;
}

/* Bytes of a layer's views. */
static size_t layer_bytes(const glm_layer *l, int E)
{
    const glm_weight *ws[] = {&l->q_a, &l->q_b, &l->kv_a, &l->kv_b, &l->o, &l->idx_wq_b, &l->idx_wk,
                              &l->idx_weights_proj, &l->gate, &l->up, &l->down, &l->router,
                              &l->sh_gate, &l->sh_up, &l->sh_down};
    size_t bytes = 0;
    for (size_t k = 0; k < sizeof ws / sizeof ws[0]; k++)
        bytes += view_bytes(ws[k]);
    for (int e = 0; l->exp_gate && e < E; e++)
        bytes += view_bytes(&l->exp_gate[e]) + view_bytes(&l->exp_up[e]) + view_bytes(&l->exp_down[e]);
    return bytes;
}

glm_model *glm_model_shard(const glm_model *m, int rank, int world, char *err, size_t errlen)
{
    const glm_config *c = &m->cfg;
    if (m->whole || world < 1 || rank < 0 || rank >= world) {
        glm_err(err, errlen, "tensor parallelism: rank %d of %d is not a rank of a world", rank, world);
        return NULL;
    }
    if (check_divides(m, world, err, errlen) != GLM_OK)
        return NULL;
    glm_model *s = glm_calloc(1, sizeof *s);
    *s = *m;
    s->whole = m;
    s->layers = glm_calloc((size_t)c->num_hidden_layers, sizeof(glm_layer));
    s->mtp = NULL;
    int heads = c->num_attention_heads / world, E = c->n_routed_experts, Es = E / world;
    int V = c->vocab_size, vs = (V + world - 1) / world, v0 = rank * vs;
    s->cfg.num_attention_heads = heads;
    s->cfg.intermediate_size = c->intermediate_size / world;
    s->shard = (glm_shard){.rank = rank, .world = world, .vocab0 = v0, .n_vocab = GLM_MIN(V, v0 + vs) - v0,
                           .vocab_stride = vs, .expert0 = rank * Es, .n_experts = Es, .heads0 = rank * heads};
    sharder sh = {s, err, errlen};
    int H = c->hidden_size, n_vocab = s->shard.n_vocab;
    if (cut(&sh, "model.embed_tokens", -1, &s->embed, v0, n_vocab, 0, H) ||
        cut(&sh, "lm_head", -1, &s->lm_head, v0, n_vocab, 0, H))
        goto fail;
    for (int i = 0; i < c->num_hidden_layers; i++)
        if (shard_layer(&sh, &m->layers[i], i, &s->layers[i]))
            goto fail;
    if (m->mtp) { /* the MTP layer like the others; eh_proj and its norms are small: every rank's */
        s->mtp = glm_calloc(1, sizeof *s->mtp);
        *s->mtp = *m->mtp;
        s->mtp->layer.exp_gate = s->mtp->layer.exp_up = s->mtp->layer.exp_down = NULL;
        if (shard_layer(&sh, &m->mtp->layer, c->num_hidden_layers, &s->mtp->layer))
            goto fail;
    }
    /* what this rank reads of the weights */
    size_t bytes = view_bytes(&s->embed) + (s->lm_head.data != s->embed.data ? view_bytes(&s->lm_head) : 0);
    for (int i = 0; i < c->num_hidden_layers; i++)
        bytes += layer_bytes(&s->layers[i], E);
    s->mtp_bytes = s->mtp ? layer_bytes(&s->mtp->layer, E) + view_bytes(&s->mtp->eh_proj) : 0;
    s->weight_bytes = bytes;
    return s;
fail:
    glm_model_free(s);
    return NULL;
}
