/*
 * config.c - glm_moe_dsa config.json / generation_config.json reader.
 *
 * Required fields are the dimensions that no default can guess (vocabulary,
 * widths, layer and head counts, expert counts); the rest take the defaults of
 * the reference GlmMoeDsaConfig. Derived per-layer patterns follow the
 * reference exactly:
 *   indexer_types: explicit list > index_topk_pattern ("FSSF.." or list) >
 *                  index_topk_freq / index_skip_topk_offset (default: all full)
 *   mlp_layer_types: explicit list > first_k_dense_replace (default 3)
 */
#include "model/config.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

typedef struct {
    json_t *root;
    const char *path;
    char *err;
    size_t errlen;
} cfg_ctx;

static int field_err(cfg_ctx *x, const char *key, const char *what)
{
    return glm_err(x->err, x->errlen, "%s: field '%s': %s", x->path, key, what);
}

/* Integer field: required unless def != NULL. JSON floats with integral values
 * are accepted (Python writes 1.0 sometimes); bools are not. */
static int get_int(cfg_ctx *x, const char *key, const int *def, int lo, int hi, int *out)
{
    json_t *v = json_object_get(x->root, key);
    if (!v || json_is_null(v)) {
        if (!def)
            return field_err(x, key, "missing");
        *out = *def;
        return GLM_OK;
    }
    double d;
    if (json_is_integer(v))
        d = (double)json_integer_value(v);
    else if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v))
        d = json_real_value(v);
    else
        return field_err(x, key, "must be an integer");
    if (d < lo || d > hi) {
        char m[96];
        snprintf(m, sizeof m, "value %.0f out of range [%d, %d]", d, lo, hi);
        return field_err(x, key, m);
    }
    *out = (int)d;
    return GLM_OK;
}

static int get_num(cfg_ctx *x, json_t *obj, const char *key, const double *def, double lo, double hi,
                   double *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (!def)
            return field_err(x, key, "missing");
        *out = *def;
        return GLM_OK;
    }
    if (!json_is_number(v))
        return field_err(x, key, "must be a number");
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi))
        return field_err(x, key, "out of range");
    *out = d;
    return GLM_OK;
}

static int get_bool(cfg_ctx *x, const char *key, int def, int *out)
{
    json_t *v = json_object_get(x->root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return GLM_OK;
    }
    if (!json_is_boolean(v))
        return field_err(x, key, "must be true or false");
    *out = json_is_true(v);
    return GLM_OK;
}

/* A per-layer list of strings mapped through names[] (index = value). */
static int get_layer_list(cfg_ctx *x, const char *key, json_t *v, int L, const char *const *names,
                          int n_names, uint8_t *out)
{
    if (json_is_string(v)) { /* pattern string such as "FSSF" (index_topk_pattern) */
        const char *s = json_string_value(v);
        if ((int)strlen(s) != L)
            return field_err(x, key, "pattern length differs from num_hidden_layers");
        for (int i = 0; i < L; i++) {
            if (s[i] == 'F')
                out[i] = 0;
            else if (s[i] == 'S')
                out[i] = 1;
            else
                return field_err(x, key, "pattern characters must be 'F' or 'S'");
        }
        return GLM_OK;
    }
    if (!json_is_array(v))
        return field_err(x, key, "must be a list");
    if ((int)json_array_size(v) < L)
        return field_err(x, key, "has fewer entries than num_hidden_layers");
    for (int i = 0; i < L; i++) {
        json_t *e = json_array_get(v, i);
        int found = -1;
        for (int k = 0; k < n_names && json_is_string(e); k++)
            if (strcmp(json_string_value(e), names[k]) == 0)
                found = k;
        if (found < 0) {
            char m[160];
            snprintf(m, sizeof m, "entry %d must be one of \"%s\", \"%s\"", i, names[0], names[1]);
            return field_err(x, key, m);
        }
        out[i] = (uint8_t)found;
    }
    return GLM_OK;
}

static int parse_eos(cfg_ctx *x, json_t *obj, glm_config *c)
{
    json_t *v = json_object_get(obj, "eos_token_id");
    if (!v || json_is_null(v))
        return GLM_OK;
    c->n_eos = 0;
    if (json_is_integer(v)) {
        json_int_t id = json_integer_value(v);
        if (id < 0 || id >= c->vocab_size)
            return field_err(x, "eos_token_id", "id outside the vocabulary");
        c->eos_token_ids[c->n_eos++] = (int)id;
        return GLM_OK;
    }
    if (!json_is_array(v) || json_array_size(v) > GLM_MAX_EOS)
        return field_err(x, "eos_token_id", "must be an integer or a list of at most 16 integers");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) >= c->vocab_size)
            return field_err(x, "eos_token_id", "entries must be ids inside the vocabulary");
        c->eos_token_ids[c->n_eos++] = (int)json_integer_value(e);
    }
    return GLM_OK;
}

static int parse_optional_id(cfg_ctx *x, json_t *obj, const char *key, int vocab, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return GLM_OK;
    if (json_is_array(v)) /* some configs list several; keep the first */
        v = json_array_get(v, 0);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= vocab)
        return field_err(x, key, "must be an id inside the vocabulary");
    *out = (int)json_integer_value(v);
    return GLM_OK;
}

static int parse_rope(cfg_ctx *x, glm_config *c)
{
    json_t *rp = json_object_get(x->root, "rope_parameters");
    json_t *rs = json_object_get(x->root, "rope_scaling");
    json_t *src = x->root;
    const char *type = "default";
    if (rp && !json_is_null(rp)) {
        if (!json_is_object(rp))
            return field_err(x, "rope_parameters", "must be an object");
        src = rp;
    }
    json_t *rsrc = (rp && json_is_object(rp)) ? rp : (rs && json_is_object(rs) ? rs : NULL);
    if (rsrc) {
        json_t *t = json_object_get(rsrc, "rope_type");
        if (!t)
            t = json_object_get(rsrc, "type");
        if (t && !json_is_string(t))
            return field_err(x, "rope_parameters.rope_type", "must be a string");
        if (t)
            type = json_string_value(t);
    }
    if (strcmp(type, "default") != 0)
        return field_err(x, "rope_parameters.rope_type", "only \"default\" RoPE is supported");
    if (!json_object_get(src, "rope_theta") && src != x->root)
        src = x->root;
    if (get_num(x, src, "rope_theta", NULL, 1.0, 1e12, &c->rope_theta))
        return GLM_ERR;
    return GLM_OK;
}

static int parse_quant(cfg_ctx *x, glm_config *c)
{
    json_t *q = json_object_get(x->root, "quantization_config");
    if (!q || json_is_null(q))
        return GLM_OK;
    if (!json_is_object(q))
        return field_err(x, "quantization_config", "must be an object");
    json_t *m = json_object_get(q, "quant_method");
    if (!json_is_string(m) || strcmp(json_string_value(m), "fp8") != 0)
        return field_err(x, "quantization_config.quant_method", "only \"fp8\" is supported");
    json_t *f = json_object_get(q, "fmt");
    if (f && (!json_is_string(f) || strcmp(json_string_value(f), "e4m3") != 0))
        return field_err(x, "quantization_config.fmt", "only \"e4m3\" is supported");
    json_t *b = json_object_get(q, "weight_block_size");
    c->fp8 = 1;
    c->fp8_block[0] = c->fp8_block[1] = 128;
    if (b && !json_is_null(b)) {
        if (!json_is_array(b) || json_array_size(b) != 2 || !json_is_integer(json_array_get(b, 0)) ||
            !json_is_integer(json_array_get(b, 1)) || json_integer_value(json_array_get(b, 0)) < 1 ||
            json_integer_value(json_array_get(b, 1)) < 1 || json_integer_value(json_array_get(b, 0)) > 65536 ||
            json_integer_value(json_array_get(b, 1)) > 65536)
            return field_err(x, "quantization_config.weight_block_size", "must be two positive integers");
        c->fp8_block[0] = (int)json_integer_value(json_array_get(b, 0));
        c->fp8_block[1] = (int)json_integer_value(json_array_get(b, 1));
    }
    return GLM_OK;
}

static int parse_root(cfg_ctx *x, glm_config *c)
{
    json_t *r = x->root;
    json_t *mt = json_object_get(r, "model_type");
    if (!mt)
        return field_err(x, "model_type", "missing");
    if (!json_is_string(mt) || strcmp(json_string_value(mt), "glm_moe_dsa") != 0) {
        char m[200];
        snprintf(m, sizeof m, "unsupported model type \"%.100s\" (expected \"glm_moe_dsa\")",
                 json_is_string(mt) ? json_string_value(mt) : "?");
        return field_err(x, "model_type", m);
    }
    const int BIG = 1 << 24;
    int one = 1, zero = 0, three = 3, i2048 = 2048, i128 = 128, i32 = 32, maxpos = 202752;
    if (get_int(x, "vocab_size", NULL, 1, BIG, &c->vocab_size) ||
        get_int(x, "hidden_size", NULL, 1, 1 << 20, &c->hidden_size) ||
        get_int(x, "intermediate_size", NULL, 1, 1 << 22, &c->intermediate_size) ||
        get_int(x, "moe_intermediate_size", NULL, 1, 1 << 22, &c->moe_intermediate_size) ||
        get_int(x, "num_hidden_layers", NULL, 1, GLM_MAX_LAYERS, &c->num_hidden_layers) ||
        get_int(x, "num_attention_heads", NULL, 1, 4096, &c->num_attention_heads) ||
        get_int(x, "num_key_value_heads", &c->num_attention_heads, 1, 4096, &c->num_key_value_heads) ||
        get_int(x, "q_lora_rank", NULL, 1, 1 << 20, &c->q_lora_rank) ||
        get_int(x, "kv_lora_rank", NULL, 1, 1 << 20, &c->kv_lora_rank) ||
        get_int(x, "qk_nope_head_dim", NULL, 1, 1 << 16, &c->qk_nope_head_dim) ||
        get_int(x, "qk_rope_head_dim", NULL, 2, 1024, &c->qk_rope_head_dim) ||
        get_int(x, "v_head_dim", NULL, 1, 1 << 16, &c->v_head_dim) ||
        get_int(x, "n_routed_experts", NULL, 1, 1 << 16, &c->n_routed_experts) ||
        get_int(x, "n_shared_experts", &one, 0, 1 << 10, &c->n_shared_experts) ||
        get_int(x, "num_experts_per_tok", NULL, 1, 1 << 16, &c->num_experts_per_tok) ||
        get_int(x, "n_group", &one, 1, 1 << 16, &c->n_group) ||
        get_int(x, "topk_group", &one, 1, 1 << 16, &c->topk_group) ||
        get_int(x, "first_k_dense_replace", &three, 0, GLM_MAX_LAYERS, &c->first_k_dense_replace) ||
        get_int(x, "index_topk", &i2048, 1, BIG, &c->index_topk) ||
        get_int(x, "index_n_heads", &i32, 1, 4096, &c->index_n_heads) ||
        get_int(x, "index_head_dim", &i128, 1, 1 << 16, &c->index_head_dim) ||
        get_int(x, "max_position_embeddings", &maxpos, 1, 1 << 30, &c->max_position_embeddings) ||
        get_int(x, "num_nextn_predict_layers", &zero, 0, 16, &c->num_nextn_predict_layers) ||
        get_bool(x, "norm_topk_prob", 1, &c->norm_topk_prob) ||
        get_bool(x, "tie_word_embeddings", 0, &c->tie_word_embeddings) ||
        get_bool(x, "rope_interleave", 1, &c->rope_interleave) ||
        get_bool(x, "indexer_rope_interleave", 1, &c->indexer_rope_interleave))
        return GLM_ERR;

    double eps, rsf, def_eps = 1e-5, def_rsf = 2.5;
    if (get_num(x, r, "rms_norm_eps", &def_eps, 0.0, 1.0, &eps) ||
        get_num(x, r, "routed_scaling_factor", &def_rsf, 0.0, 1e6, &rsf))
        return GLM_ERR;
    c->rms_norm_eps = (float)eps;
    c->routed_scaling_factor = (float)rsf;

    json_t *act = json_object_get(r, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0))
        return field_err(x, "hidden_act", "only \"silu\" is supported");
    int ab = 0;
    if (get_bool(x, "attention_bias", 0, &ab))
        return GLM_ERR;
    if (ab)
        return field_err(x, "attention_bias", "attention biases are not supported by glm_moe_dsa");
    json_t *sf = json_object_get(r, "scoring_func");
    if (sf && (!json_is_string(sf) || strcmp(json_string_value(sf), "sigmoid") != 0))
        return field_err(x, "scoring_func", "only \"sigmoid\" is supported");

    /* contradictions */
    if (c->num_key_value_heads != c->num_attention_heads)
        return field_err(x, "num_key_value_heads", "must equal num_attention_heads for MLA");
    if (c->qk_rope_head_dim % 2)
        return field_err(x, "qk_rope_head_dim", "must be even");
    if (c->qk_rope_head_dim > c->index_head_dim)
        return field_err(x, "index_head_dim", "must be at least qk_rope_head_dim");
    json_t *qhd = json_object_get(r, "qk_head_dim");
    c->qk_head_dim = c->qk_nope_head_dim + c->qk_rope_head_dim;
    if (qhd && json_is_integer(qhd) && json_integer_value(qhd) != c->qk_head_dim)
        return field_err(x, "qk_head_dim", "differs from qk_nope_head_dim + qk_rope_head_dim");
    if (c->n_routed_experts % c->n_group)
        return field_err(x, "n_group", "must divide n_routed_experts");
    if (c->topk_group > c->n_group)
        return field_err(x, "topk_group", "must not exceed n_group");
    if (c->n_group > 1 && c->n_routed_experts / c->n_group < 2)
        return field_err(x, "n_group", "each group needs at least two experts");
    if (c->num_experts_per_tok > c->topk_group * (c->n_routed_experts / c->n_group))
        return field_err(x, "num_experts_per_tok", "exceeds the experts in topk_group groups");

    int L = c->num_hidden_layers;
    c->mlp_sparse = glm_calloc((size_t)L, 1);
    c->indexer_types = glm_calloc((size_t)L, 1);

    static const char *const mlp_names[2] = {"dense", "sparse"};
    json_t *mlt = json_object_get(r, "mlp_layer_types");
    if (mlt && !json_is_null(mlt)) {
        if (json_is_string(mlt))
            return field_err(x, "mlp_layer_types", "must be a list");
        if (get_layer_list(x, "mlp_layer_types", mlt, L, mlp_names, 2, c->mlp_sparse))
            return GLM_ERR;
    } else {
        for (int i = 0; i < L; i++)
            c->mlp_sparse[i] = i >= c->first_k_dense_replace;
    }

    static const char *const idx_names[2] = {"full", "shared"};
    json_t *it = json_object_get(r, "indexer_types");
    json_t *pat = json_object_get(r, "index_topk_pattern");
    if (it && !json_is_null(it)) {
        if (json_is_string(it))
            return field_err(x, "indexer_types", "must be a list");
        if (get_layer_list(x, "indexer_types", it, L, idx_names, 2, c->indexer_types))
            return GLM_ERR;
    } else if (pat && !json_is_null(pat)) {
        if (get_layer_list(x, "index_topk_pattern", pat, L, idx_names, 2, c->indexer_types))
            return GLM_ERR;
    } else {
        int freq, offset, two = 2;
        if (get_int(x, "index_topk_freq", &one, -BIG, BIG, &freq) ||
            get_int(x, "index_skip_topk_offset", &two, -BIG, BIG, &offset))
            return GLM_ERR;
        if (freq < 1)
            freq = 1;
        for (int i = 0; i < L; i++) {
            int k = i - offset + 1;
            c->indexer_types[i] = ((k > 0 ? k : 0) % freq) == 0 ? GLM_INDEXER_FULL : GLM_INDEXER_SHARED;
        }
    }
    if (c->indexer_types[0] == GLM_INDEXER_SHARED)
        return field_err(x, "indexer_types", "the first layer cannot be \"shared\" (no earlier top-k)");

    if (parse_rope(x, c) || parse_quant(x, c))
        return GLM_ERR;
    c->attn_scale = (float)(1.0 / sqrt((double)c->qk_head_dim));

    c->pad_token_id = c->bos_token_id = -1;
    if (parse_eos(x, r, c) || parse_optional_id(x, r, "pad_token_id", c->vocab_size, &c->pad_token_id) ||
        parse_optional_id(x, r, "bos_token_id", c->vocab_size, &c->bos_token_id))
        return GLM_ERR;
    return GLM_OK;
}

int glm_config_parse(const char *json, size_t len, const char *path, glm_config *c, char *err,
                     size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->default_temperature = c->default_top_p = c->default_min_p = c->default_repetition_penalty = -1.0f;
    c->default_top_k = c->default_max_new_tokens = -1;
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return glm_err(err, errlen, "%s: invalid JSON at line %d: %s", path, je.line, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return glm_err(err, errlen, "%s: expected a JSON object", path);
    }
    cfg_ctx x = {root, path, err, errlen};
    int rc = parse_root(&x, c);
    json_decref(root);
    if (rc != GLM_OK)
        glm_config_free(c);
    return rc;
}

int glm_config_parse_generation(const char *json, size_t len, const char *path, glm_config *c,
                                char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, 0, &je);
    if (!root)
        return glm_err(err, errlen, "%s: invalid JSON at line %d: %s", path, je.line, je.text);
    cfg_ctx x = {root, path, err, errlen};
    int rc = GLM_OK;
    double t, p, mp, rp;
    int k, mnt;
    double neg = -1.0;
    int negi = -1;
    if (!json_is_object(root))
        rc = glm_err(err, errlen, "%s: expected a JSON object", path);
    else if (parse_eos(&x, root, c) ||
             parse_optional_id(&x, root, "pad_token_id", c->vocab_size, &c->pad_token_id) ||
             parse_optional_id(&x, root, "bos_token_id", c->vocab_size, &c->bos_token_id) ||
             get_num(&x, root, "temperature", &neg, -1.0, 1e6, &t) ||
             get_num(&x, root, "top_p", &neg, -1.0, 1.0, &p) ||
             get_int(&x, "top_k", &negi, -1, 1 << 30, &k) ||
             get_num(&x, root, "min_p", &neg, 0.0, 1.0, &mp) ||
             get_num(&x, root, "repetition_penalty", &neg, 1e-6, 1e6, &rp) ||
             get_int(&x, "max_new_tokens", &negi, 1, 1 << 30, &mnt))
        rc = GLM_ERR;
    else {
        c->default_temperature = (float)t;
        c->default_top_p = (float)p;
        c->default_top_k = k;
        c->default_min_p = (float)mp;
        c->default_repetition_penalty = (float)rp;
        c->default_max_new_tokens = mnt;
    }
    json_decref(root);
    return rc;
}

/* Reads a whole small file; NULL with a message on failure. */
static char *read_small_file(const char *path, size_t *len, int *missing, char *err, size_t errlen)
{
    *missing = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        *missing = errno == ENOENT;
        glm_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= (64u << 20)) {
                fclose(f);
                free(buf);
                glm_err(err, errlen, "%s: file larger than 64 MiB", path);
                return NULL;
            }
            cap = cap ? cap * 2 : 65536;
            buf = glm_realloc(buf, cap);
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        glm_err(err, errlen, "%s: read error", path);
        return NULL;
    }
    *len = n;
    return buf;
}

int glm_config_load(const char *dir, glm_config *c, char *err, size_t errlen)
{
    char path[4096];
    size_t len;
    int missing;
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text = read_small_file(path, &len, &missing, err, errlen);
    if (!text)
        return GLM_ERR;
    int rc = glm_config_parse(text, len, path, c, err, errlen);
    free(text);
    if (rc != GLM_OK)
        return rc;
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    text = read_small_file(path, &len, &missing, err, errlen);
    if (!text) {
        if (missing)
            return GLM_OK;
        glm_config_free(c);
        return GLM_ERR;
    }
    rc = glm_config_parse_generation(text, len, path, c, err, errlen);
    free(text);
    if (rc != GLM_OK)
        glm_config_free(c);
    return rc;
}

void glm_config_free(glm_config *c)
{
    free(c->mlp_sparse);
    free(c->indexer_types);
    c->mlp_sparse = NULL;
    c->indexer_types = NULL;
}
