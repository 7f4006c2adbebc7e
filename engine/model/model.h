/*
 * model.h - a GLM-5 checkpoint bound to the forward pass: the config, the
 * mapped safetensors files, and one glm_weight view per tensor the
 * architecture uses, checked by name, shape and dtype.
 *
 * Large weights stay in the mapped files in their stored dtype. Only vectors
 * (norm weights, biases, the router's correction bias) are copied to float32.
 * The MTP ("next-n") layer stored at model.layers.<L> is checked when present
 * but not bound: plain decoding does not run it.
 */
#ifndef GLM_MODEL_H
#define GLM_MODEL_H

#include "model/config.h"
#include "model/weight.h"
#include "model/safetensors.h"

typedef struct {
    /* attention (MLA) */
    float *input_norm;            /* [H] */
    glm_weight q_a;               /* [q_lora, H] */
    float *q_a_norm;              /* [q_lora] */
    glm_weight q_b;               /* [heads * (nope + rope), q_lora] */
    glm_weight kv_a;              /* [kv_lora + rope, H] */
    float *kv_a_norm;             /* [kv_lora] */
    glm_weight kv_b;              /* [heads * (nope + v), kv_lora] */
    glm_weight o;                 /* [H, heads * v] */
    /* DSA indexer; absent (has_indexer 0) on "shared" layers */
    int has_indexer;
    glm_weight idx_wq_b;          /* [index_heads * index_dim, q_lora] */
    glm_weight idx_wk;            /* [index_dim, H] */
    float *idx_k_norm_w, *idx_k_norm_b; /* [index_dim] LayerNorm */
    glm_weight idx_weights_proj;  /* [index_heads, H] */
    /* FFN */
    float *post_norm;             /* [H] */
    int sparse;                   /* MoE layer */
    glm_weight gate, up, down;    /* dense: [I, H], [I, H], [H, I] */
    glm_weight router;            /* [E, H] */
    float *router_bias;           /* [E] e_score_correction_bias */
    glm_weight *exp_gate, *exp_up, *exp_down; /* [E] each: [moeI, H], [moeI, H], [H, moeI] */
    glm_weight sh_gate, sh_up, sh_down;       /* shared expert(s): [moeI*n_shared, H] ... */
} glm_layer;

typedef struct {
    glm_config cfg;
    st_checkpoint *ck;
    glm_weight embed;             /* [V, H] */
    float *final_norm;            /* [H] */
    glm_weight lm_head;           /* [V, H] */
    glm_layer *layers;            /* [L] */
    size_t weight_bytes;          /* bytes of tensor data bound */
} glm_model;

/*
 * Loads config.json (+ generation_config.json) and the safetensors of `dir`
 * and binds every tensor. Returns a model or NULL with one line in err naming
 * the file and the tensor (missing, wrong shape, unsupported dtype, missing
 * FP8 scale). Free with glm_model_free.
 */
glm_model *glm_model_load(const char *dir, char *err, size_t errlen);
void glm_model_free(glm_model *m);

#endif
