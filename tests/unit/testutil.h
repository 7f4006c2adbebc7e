/*
 * testutil.h - what the unit tests share (each test is one .c file, so the
 * helpers are static): a reproducible random stream, where the test models
 * are (GLM_MODELS overrides "models"), and the Check main.
 */
#ifndef GLM_TESTUTIL_H
#define GLM_TESTUTIL_H

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/util.h"

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
