/*
 * test_config.c - config.json parsing: GLM-5's own config, derived per-layer
 * patterns, and one clear error for each kind of bad field.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/config.h"
#include "core/dtype.h"
#include "core/util.h"
#include "testutil.h"

/* A config.json laid out like the published GLM-5 one (its fields and values). */
static const char *GLM5 =
    "{\"architectures\": [\"GlmMoeDsaForCausalLM\"], \"attention_bias\": false, \"attention_dropout\": 0.0,"
    " \"dtype\": \"bfloat16\", \"eos_token_id\": [154820, 154827, 154829], \"ep_size\": 1,"
    " \"first_k_dense_replace\": 3, \"hidden_act\": \"silu\", \"head_dim\": 64, \"hidden_size\": 6144,"
    " \"index_head_dim\": 128, \"index_n_heads\": 32, \"index_topk\": 2048, \"indexer_rope_interleave\": true,"
    " \"initializer_range\": 0.02, \"intermediate_size\": 12288, \"kv_lora_rank\": 512,"
    " \"max_position_embeddings\": 202752, \"model_type\": \"glm_moe_dsa\", \"moe_intermediate_size\": 2048,"
    " \"moe_layer_freq\": 1, \"n_group\": 1, \"n_routed_experts\": 256, \"n_shared_experts\": 1,"
    " \"norm_topk_prob\": true, \"num_attention_heads\": 64, \"num_experts_per_tok\": 8,"
    " \"num_hidden_layers\": 78, \"num_key_value_heads\": 64, \"num_nextn_predict_layers\": 1,"
    " \"pad_token_id\": 154820, \"q_lora_rank\": 2048, \"qk_head_dim\": 256, \"qk_nope_head_dim\": 192,"
    " \"qk_rope_head_dim\": 64, \"rms_norm_eps\": 1e-05, \"rope_interleave\": true,"
    " \"rope_parameters\": {\"rope_theta\": 1000000, \"rope_type\": \"default\"},"
    " \"routed_scaling_factor\": 2.5, \"scoring_func\": \"sigmoid\", \"tie_word_embeddings\": false,"
    " \"topk_group\": 1, \"topk_method\": \"noaux_tc\", \"use_cache\": true, \"v_head_dim\": 256,"
    " \"vocab_size\": 154880}";

START_TEST(glm5_config)
{
    glm_config c;
    char err[GLM_ERRLEN];
    ck_assert_msg(glm_config_parse(GLM5, strlen(GLM5), "config.json", &c, err, sizeof err) == GLM_OK, "%s", err);
    ck_assert_int_eq(c.num_hidden_layers, 78);
    ck_assert_int_eq(c.qk_head_dim, 256);
    ck_assert_int_eq(c.mlp_sparse[2], 0);
    ck_assert_int_eq(c.mlp_sparse[3], 1);
    for (int i = 0; i < 78; i++)
        ck_assert_int_eq(c.indexer_types[i], GLM_INDEXER_FULL);
    ck_assert_int_eq(c.n_eos, 3);
    ck_assert_int_eq(c.eos_token_ids[2], 154829);
    ck_assert_int_eq(c.pad_token_id, 154820);
    ck_assert(c.rope_theta == 1e6);
    ck_assert(c.attn_scale == 1.0f / 16.0f);
    ck_assert_int_eq(c.fp8, 0);
    glm_config_free(&c);
}
END_TEST

/* Replaces the first occurrence of `from` in GLM5 with `to` and parses it. */
static int parse_edit(const char *from, const char *to, glm_config *c, char *err)
{
    const char *p = strstr(GLM5, from);
    ck_assert_msg(p != NULL, "test bug: %s", from);
    char buf[8192];
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - GLM5), GLM5, to, p + strlen(from));
    return glm_config_parse(buf, strlen(buf), "/m/config.json", c, err, GLM_ERRLEN);
}

START_TEST(derived_patterns)
{
    glm_config c;
    char err[GLM_ERRLEN];
    /* index_topk_freq 4, offset 2 (reference formula) */
    ck_assert(parse_edit("\"moe_layer_freq\": 1", "\"index_topk_freq\": 4", &c, err) == GLM_OK);
    ck_assert_int_eq(c.indexer_types[0], GLM_INDEXER_FULL);
    ck_assert_int_eq(c.indexer_types[1], GLM_INDEXER_FULL);
    ck_assert_int_eq(c.indexer_types[2], GLM_INDEXER_SHARED);
    ck_assert_int_eq(c.indexer_types[5], GLM_INDEXER_FULL);
    ck_assert_int_eq(c.indexer_types[6], GLM_INDEXER_SHARED);
    glm_config_free(&c);
    /* FP8 quantisation config and rope_theta at top level */
    ck_assert(parse_edit("\"moe_layer_freq\": 1",
                         "\"quantization_config\": {\"quant_method\": \"fp8\", \"fmt\": \"e4m3\","
                         " \"weight_block_size\": [128, 128]}",
                         &c, err) == GLM_OK);
    ck_assert_int_eq(c.fp8, 1);
    ck_assert_int_eq(c.fp8_block[1], 128);
    glm_config_free(&c);
    ck_assert(parse_edit("\"rope_parameters\": {\"rope_theta\": 1000000, \"rope_type\": \"default\"}",
                         "\"rope_theta\": 10000.0", &c, err) == GLM_OK);
    ck_assert(c.rope_theta == 10000.0);
    glm_config_free(&c);
}
END_TEST

static const struct {
    const char *from, *to, *expect;
} bad[] = {
    {"\"model_type\": \"glm_moe_dsa\"", "\"model_type\": \"llama\"", "model_type"},
    {"\"hidden_size\": 6144,", "", "'hidden_size': missing"},
    {"\"hidden_size\": 6144", "\"hidden_size\": \"big\"", "'hidden_size': must be an integer"},
    {"\"hidden_size\": 6144", "\"hidden_size\": -1", "'hidden_size'"},
    {"\"num_key_value_heads\": 64", "\"num_key_value_heads\": 8", "num_key_value_heads"},
    {"\"qk_head_dim\": 256", "\"qk_head_dim\": 192", "qk_head_dim"},
    {"\"n_group\": 1", "\"n_group\": 3", "n_group"},
    {"\"topk_group\": 1", "\"topk_group\": 2", "topk_group"},
    {"\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "hidden_act"},
    {"\"rope_type\": \"default\"", "\"rope_type\": \"yarn\"", "rope_type"},
    {"\"rope_parameters\": {\"rope_theta\": 1000000, \"rope_type\": \"default\"},", "", "rope_theta"},
    {"\"eos_token_id\": [154820, 154827, 154829]", "\"eos_token_id\": [999999]", "eos_token_id"},
    {"\"moe_layer_freq\": 1", "\"indexer_types\": [\"shared\"]", "indexer_types"},
    {"\"moe_layer_freq\": 1", "\"mlp_layer_types\": [\"dense\", \"moe\"]", "mlp_layer_types"},
    {"\"moe_layer_freq\": 1", "\"quantization_config\": {\"quant_method\": \"awq\"}", "quant_method"},
    {"\"attention_bias\": false", "\"attention_bias\": true", "attention_bias"},
};

START_TEST(bad_fields)
{
    glm_config c;
    char err[GLM_ERRLEN];
    err[0] = 0;
    ck_assert_int_eq(parse_edit(bad[_i].from, bad[_i].to, &c, err), GLM_ERR);
    ck_assert_msg(strstr(err, "/m/config.json") && strstr(err, bad[_i].expect), "case %d: \"%s\"", _i, err);
    ck_assert_msg(strchr(err, '\n') == NULL, "one line: %s", err);
}
END_TEST

/* generation_config.json: eos ids and the sampling defaults (vLLM's
 * --generation-config auto), each < 0 when absent; out-of-range values are
 * errors naming the file and the field. */
START_TEST(generation_config)
{
    glm_config c;
    char err[GLM_ERRLEN];
    ck_assert(glm_config_parse(GLM5, strlen(GLM5), "config.json", &c, err, sizeof err) == GLM_OK);
    ck_assert(c.default_temperature < 0 && c.default_top_p < 0 && c.default_top_k < 0 && c.default_min_p < 0 &&
              c.default_repetition_penalty < 0 && c.default_max_new_tokens < 0);
    const char *g = "{\"eos_token_id\": [154820, 154827], \"temperature\": 1.0, \"top_p\": 0.95, \"top_k\": 40,"
                    " \"min_p\": 0.05, \"repetition_penalty\": 1.1, \"max_new_tokens\": 512, \"do_sample\": true}";
    ck_assert_msg(glm_config_parse_generation(g, strlen(g), "g.json", &c, err, sizeof err) == GLM_OK, "%s", err);
    ck_assert_int_eq(c.n_eos, 2);
    ck_assert(c.default_temperature == 1.0f && c.default_top_p == 0.95f && c.default_top_k == 40);
    ck_assert(c.default_min_p == 0.05f && c.default_repetition_penalty == 1.1f && c.default_max_new_tokens == 512);
    static const char *bad[][2] = {{"{\"min_p\": 1.5}", "min_p"},
                                   {"{\"repetition_penalty\": 0}", "repetition_penalty"},
                                   {"{\"max_new_tokens\": 0}", "max_new_tokens"},
                                   {"{\"top_p\": \"x\"}", "top_p"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert(glm_config_parse_generation(bad[i][0], strlen(bad[i][0]), "g.json", &c, err, sizeof err) == GLM_ERR);
        ck_assert_msg(strstr(err, "g.json") && strstr(err, bad[i][1]), "%s: %s", bad[i][0], err);
    }
    glm_config_free(&c);
}
END_TEST

START_TEST(not_json)
{
    glm_config c;
    char err[GLM_ERRLEN];
    ck_assert_int_eq(glm_config_parse("{\"a\": ", 6, "x/config.json", &c, err, sizeof err), GLM_ERR);
    ck_assert(strstr(err, "x/config.json: invalid JSON") != NULL);
    ck_assert_int_eq(glm_config_parse("[1]", 3, "x/config.json", &c, err, sizeof err), GLM_ERR);
    ck_assert_int_eq(glm_config_load("/nonexistent-dir", &c, err, sizeof err), GLM_ERR);
    ck_assert(strstr(err, "/nonexistent-dir/config.json") != NULL);
}
END_TEST

START_TEST(dtype_conversions)
{
    /* every e4m3 code round-trips; the largest finite is 448 */
    for (int b = 0; b < 256; b++) {
        float v = glm_e4m3_to_f32((uint8_t)b);
        if ((b & 0x7f) == 0x7f)
            ck_assert(v != v);
        else if (b != 0x80)
            ck_assert_int_eq(glm_f32_to_e4m3(v), b);
    }
    ck_assert(glm_e4m3_to_f32(0x7e) == 448.0f);
    ck_assert_int_eq(glm_f32_to_e4m3(1e9f), 0x7e);
    /* rounding to nearest even against a plain scan of the codes: every code's value, the
     * midpoints between neighbours and one float either side of each, and pseudo-random floats */
    for (int i = 0; i < 3 * 0x7e + 200000; i++) {
        float a;
        if (i < 3 * 0x7e) {
            int c = i / 3, k = i % 3;
            float mid = (glm_e4m3_to_f32((uint8_t)c) + glm_e4m3_to_f32((uint8_t)(c + 1))) / 2.0f;
            a = k == 0 ? mid : nextafterf(mid, k == 1 ? 0.0f : 1000.0f);
        } else {
            uint32_t x = (uint32_t)i * 2654435761u;
            a = ldexpf((float)(x >> 8) / 16777216.0f, (int)(x % 26) - 17); /* [2^-17, 2^9) */
        }
        int lo = 0;
        for (int c = 1; c <= 0x7e; c++)
            if (glm_e4m3_to_f32((uint8_t)c) <= a)
                lo = c;
        int hi = lo < 0x7e ? lo + 1 : lo;
        float dlo = a - glm_e4m3_to_f32((uint8_t)lo), dhi = glm_e4m3_to_f32((uint8_t)hi) - a;
        int want = a >= 448.0f ? 0x7e : (dhi < dlo || (dhi == dlo && (hi & 1) == 0 && hi != lo)) ? hi : lo;
        ck_assert_int_eq(glm_f32_to_e4m3(a), want);
        ck_assert_int_eq(glm_f32_to_e4m3(-a), 0x80 | want);
    }
    ck_assert(glm_bf16_to_f32(glm_f32_to_bf16(1.00390625f)) == 1.0f); /* ties to even */
    ck_assert(glm_f16_to_f32(glm_f32_to_f16(0.333251953125f)) == 0.333251953125f);
    ck_assert(glm_f16_to_f32(0x0001) == 5.960464477539063e-08f);
    ck_assert(glm_f16_to_f32(0x7c00) == 1.0f / 0.0f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, glm5_config);
    tcase_add_test(tc, derived_patterns);
    tcase_add_loop_test(tc, bad_fields, 0, (int)(sizeof bad / sizeof bad[0]));
    tcase_add_test(tc, generation_config);
    tcase_add_test(tc, not_json);
    tcase_add_test(tc, dtype_conversions);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
