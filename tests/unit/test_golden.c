/*
 * test_golden.c - the goldens of tests/golden/tiny belong to the test
 * checkpoints in models/: the checkpoint hash recorded by make_goldens.py
 * matches models/tiny, tiny-bf16 and tiny-fp8, and the hidden-state files
 * have the shape their JSON states.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "golden.h"
#include "testutil.h"

/* FNV-1a 64 test vectors (Fowler, Noll, Vo reference) */
START_TEST(fnv1a64_vectors)
{
    ck_assert_uint_eq(golden_fnv1a64(GOLDEN_FNV_OFFSET, "", 0), 0xcbf29ce484222325ull);
    ck_assert_uint_eq(golden_fnv1a64(GOLDEN_FNV_OFFSET, "a", 1), 0xaf63dc4c8601ec8cull);
    ck_assert_uint_eq(golden_fnv1a64(GOLDEN_FNV_OFFSET, "foobar", 6), 0x85944171f73967e8ull);
    /* continuing over pieces equals hashing the whole */
    ck_assert_uint_eq(golden_fnv1a64(golden_fnv1a64(GOLDEN_FNV_OFFSET, "foo", 3), "bar", 3), 0x85944171f73967e8ull);
}
END_TEST

static void check_checkpoint(const char *model, const char *variant)
{
    char dir[512], json[512], err[GLM_ERRLEN];
    snprintf(dir, sizeof dir, "%s/%s", test_models_dir(), model);
    snprintf(json, sizeof json, GOLDEN_DIR "/%s.json", variant);
    ck_assert_msg(golden_checkpoint_matches(dir, json, err, sizeof err) == GLM_OK, "%s", err);
}

START_TEST(checkpoint_f32) { check_checkpoint("tiny", "f32"); }
END_TEST

START_TEST(checkpoint_bf16) { check_checkpoint("tiny-bf16", "bf16"); }
END_TEST

START_TEST(checkpoint_fp8) { check_checkpoint("tiny-fp8", "fp8"); }
END_TEST

/* The hash covers config.json then the shards in name order, and a changed
 * byte is refused with a message that says how to regenerate. */
START_TEST(checkpoint_mismatch)
{
    char dir[] = "/tmp/glm-golden-XXXXXX", p[600], err[GLM_ERRLEN];
    ck_assert(mkdtemp(dir) != NULL);
    snprintf(p, sizeof p, "%s/config.json", dir);
    test_write_file(p, "{}");
    snprintf(p, sizeof p, "%s/b.safetensors", dir);
    test_write_file(p, "bar");
    snprintf(p, sizeof p, "%s/a.safetensors", dir);
    test_write_file(p, "foo");
    snprintf(p, sizeof p, "%s/a.safetensors.index.json", dir);
    test_write_file(p, "not hashed");
    uint64_t h;
    ck_assert_msg(golden_checkpoint_hash(dir, &h, err, sizeof err) == GLM_OK, "%s", err);
    ck_assert_uint_eq(h, golden_fnv1a64(GOLDEN_FNV_OFFSET, "{}foobar", 8));

    char json[600], hex[17];
    snprintf(json, sizeof json, "%s/x.json", dir);
    snprintf(hex, sizeof hex, "%016" PRIx64, h);
    char text[200];
    snprintf(text, sizeof text, "{\"checkpoint\": {\"fnv1a64\": \"%s\"}}", hex);
    test_write_file(json, text);
    ck_assert_msg(golden_checkpoint_matches(dir, json, err, sizeof err) == GLM_OK, "%s", err);

    snprintf(p, sizeof p, "%s/b.safetensors", dir);
    test_write_file(p, "baz");
    ck_assert(golden_checkpoint_matches(dir, json, err, sizeof err) == GLM_ERR);
    ck_assert_msg(strstr(err, "differs from the one the goldens") && strstr(err, "make golden-venv goldens"), "%s",
                  err);

    test_write_file(json, "{}");
    ck_assert(golden_checkpoint_matches(dir, json, err, sizeof err) == GLM_ERR);
    ck_assert_msg(strstr(err, "no checkpoint hash") != NULL, "%s", err);

    const char *names[] = {"config.json", "a.safetensors", "b.safetensors", "a.safetensors.index.json", "x.json"};
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}
END_TEST

/* Every variant's hidden states: [num_hidden_layers + 1, 40 prompt tokens,
 * hidden_size] of its checkpoint, finite. */
START_TEST(hidden_shapes)
{
    const char *variants[] = {"f32", "bf16", "fp8"}, *models[] = {"tiny", "tiny-bf16", "tiny-fp8"};
    char err[GLM_ERRLEN], path[512];
    for (int v = 0; v < 3; v++) {
        snprintf(path, sizeof path, "%s/%s/config.json", test_models_dir(), models[v]);
        json_error_t je;
        json_t *cfg = json_load_file(path, 0, &je);
        ck_assert_msg(cfg != NULL, "%s: %s", path, je.text);
        int layers = (int)json_integer_value(json_object_get(cfg, "num_hidden_layers"));
        int hidden = (int)json_integer_value(json_object_get(cfg, "hidden_size"));
        json_decref(cfg);
        int e, t, hd;
        float *x = golden_read_hidden(variants[v], &e, &t, &hd, err, sizeof err);
        ck_assert_msg(x != NULL, "%s", err);
        ck_assert_int_eq(t, 40);
        ck_assert_int_eq(hd, hidden);
        ck_assert_int_eq(e, layers + 1);
        for (size_t i = 0; i < (size_t)e * t * hd; i++)
            ck_assert_msg(isfinite(x[i]), "%s hidden state %zu is not finite", variants[v], i);
        free(x);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("golden");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, fnv1a64_vectors);
    tcase_add_test(tc, checkpoint_f32);
    tcase_add_test(tc, checkpoint_bf16);
    tcase_add_test(tc, checkpoint_fp8);
    tcase_add_test(tc, checkpoint_mismatch);
    tcase_add_test(tc, hidden_shapes);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
