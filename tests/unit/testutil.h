/*
 * testutil.h - what the unit tests share (each test is one .c file, so the
 * helpers are static): a reproducible random stream, where the test models
 * are (GLM_MODELS overrides "models") and loading one, skipping a case, and
 * the Check main.
 */
#ifndef GLM_TESTUTIL_H
#define GLM_TESTUTIL_H

#include <check.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* model/model.h's, declared here so that tests need not see the model's headers (names such as
 * st_open would clash with some tests' own) */
typedef struct glm_model glm_model;
glm_model *glm_model_load(const char *dir, char *err, size_t errlen);

/* splitmix64 from a fixed seed: the same inputs on every run */
typedef struct {
    uint64_t s;
} test_rng;

static inline uint64_t test_rng_next(test_rng *r) { return glm_splitmix64(&r->s); }

/* uniform in [0, 1) */
static inline double test_rng_unit(test_rng *r)
{
    return (double)(test_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* uniform integer in [lo, hi] */
static inline int test_rng_int(test_rng *r, int lo, int hi)
{
    return lo + (int)(test_rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* The directory of the generated test checkpoints. */
static inline const char *test_models_dir(void)
{
    const char *d = getenv("GLM_MODELS");
    return d ? d : "models";
}

/* Writes text s to path (the case fails if it cannot). */
static inline void test_write_file(const char *path, const char *s)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(s, f);
    fclose(f);
}

/* The test checkpoint models/NAME, loaded; the case fails with the loader's message if not. */
static inline glm_model *test_load_model(const char *name)
{
    char path[512], err[GLM_ERRLEN];
    snprintf(path, sizeof path, "%s/%s", test_models_dir(), name);
    glm_model *m = glm_model_load(path, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    return m;
}

/* The scripted checkpoint's (models/script) long reasoning chain and the prompt that leads into
 * it: c[0 .. nc) the chain's first nc tokens, prompt[0 .. P] its anchor then c[0 .. P). Returns
 * script.json, for the caller to read more of and json_decref. */
static inline json_t *test_script_chain(int32_t *c, int nc, int32_t *prompt, int P)
{
    char path[512];
    snprintf(path, sizeof path, "%s/script/script.json", test_models_dir());
    json_error_t je;
    json_t *sj = json_load_file(path, 0, &je);
    ck_assert_msg(sj != NULL, "%s: %s", path, je.text);
    json_t *chain = json_object_get(json_object_get(sj, "chains"), "think_long");
    json_t *ids = json_object_get(chain, "ids");
    ck_assert_int_ge((int)json_array_size(ids), nc);
    for (int i = 0; i < nc; i++)
        c[i] = (int32_t)json_integer_value(json_array_get(ids, (size_t)i));
    prompt[0] = (int32_t)json_integer_value(json_object_get(chain, "anchor_id"));
    memcpy(prompt + 1, c, sizeof(int32_t) * (size_t)P);
    return sj;
}

/* Prints "SKIP  case (reason)", the line tests/run_tests.sh counts as a
 * skipped case (Check itself has no skip: the case then passes). fn is the
 * case's function, "NAME_fn" for START_TEST(NAME). */
static inline void test_skip_(const char *fn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void test_skip_(const char *fn, const char *fmt, ...)
{
    size_t n = strlen(fn);
    if (n > 3 && strcmp(fn + n - 3, "_fn") == 0)
        n -= 3;
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    printf("SKIP  %.*s (%s)\n", (int)n, fn, why);
    fflush(stdout);
}

/* Ends the current test case as skipped, with a reason (printf format). */
#define TEST_SKIP(...)                       \
    do {                                     \
        test_skip_(__func__, __VA_ARGS__);   \
        return;                              \
    } while (0)

/* Runs every case of s; the process exit status. */
static inline int test_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

#endif
