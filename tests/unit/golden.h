/*
 * golden.h - what the tests that compare against tests/golden/tiny share
 * (header-only, like testutil.h: each test is one .c file).
 *
 * Checkpoint identity. tests/golden/make_goldens.py records in VARIANT.json
 *     "checkpoint": {"dir": "models/tiny", "fnv1a64": "<16 hex digits>", "files": [...]}
 * the 64-bit FNV-1a hash (offset basis 0xcbf29ce484222325, prime 0x100000001b3)
 * of one byte stream: config.json, then every *.safetensors file of the
 * checkpoint in ascending byte order of their names, each file's bytes as
 * stored, nothing between them. golden_checkpoint_matches() recomputes it, so
 * a test refuses to compare the engine against goldens made from another
 * checkpoint (glm-mkmodel changed, a preset changed, a stale models/).
 *
 * Hidden states. VARIANT.hidden.f32 holds little-endian float32
 * [entries, tokens, hidden] (shape in VARIANT.json "hidden_states"); see
 * make_goldens.py for what each entry is. golden_read_hidden() loads it.
 */
#ifndef GLM_GOLDEN_H
#define GLM_GOLDEN_H

#include <check.h>
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define GOLDEN_DIR "tests/golden/tiny"
#define GOLDEN_FNV_OFFSET 0xcbf29ce484222325ull
#define GOLDEN_FNV_PRIME 0x100000001b3ull

/* FNV-1a 64 continued over n bytes. */
static inline uint64_t golden_fnv1a64(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * GOLDEN_FNV_PRIME;
    return h;
}

/* The comma-separated ids of a golden text file (prompt.txt, *.greedy.txt) into *ids
 * (malloc'd); returns the count. A file that cannot be opened fails the test. */
static inline int golden_read_ids(const char *path, int **ids)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    int cap = 64, n = 0, v;
    *ids = malloc(sizeof(int) * (size_t)cap);
    while (fscanf(f, "%d", &v) == 1) {
        if (n == cap)
            *ids = realloc(*ids, sizeof(int) * (size_t)(cap *= 2));
        (*ids)[n++] = v;
        if (fgetc(f) != ',')
            break;
    }
    fclose(f);
    return n;
}

/* rows x vocab float32 logits of a golden .f32 file (malloc'd); a file that cannot be read
 * or holds fewer fails the test. */
static inline float *golden_read_rows(const char *path, int rows, int vocab)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    float *x = malloc(sizeof(float) * (size_t)rows * vocab);
    size_t got = fread(x, sizeof(float), (size_t)rows * vocab, f);
    fclose(f);
    ck_assert_msg(got == (size_t)rows * vocab, "%s: %zu floats, expected %d", path, got, rows * vocab);
    return x;
}

/* max |a - b| relative to max |b| over n values; a NaN in a is infinitely wrong. */
static inline float golden_row_err(const float *a, const float *b, size_t n)
{
    float d = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]))
            return INFINITY;
        d = fmaxf(d, fabsf(a[i] - b[i]));
        mx = fmaxf(mx, fabsf(b[i]));
    }
    return d / mx;
}

static inline int golden_hash_file(uint64_t *h, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return glm_err(err, errlen, "cannot open %s", path);
    static unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        *h = golden_fnv1a64(*h, buf, n);
    int bad = ferror(f);
    fclose(f);
    return bad ? glm_err(err, errlen, "cannot read %s", path) : GLM_OK;
}

static inline int golden_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The checkpoint hash of directory dir (see the top of this file). */
static inline int golden_checkpoint_hash(const char *dir, uint64_t *hash, char *err, size_t errlen)
{
    char path[4096];
    uint64_t h = GOLDEN_FNV_OFFSET;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (golden_hash_file(&h, path, err, errlen) != GLM_OK)
        return GLM_ERR;
    DIR *d = opendir(dir);
    if (!d)
        return glm_err(err, errlen, "cannot open directory %s", dir);
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name), sl = strlen(".safetensors");
        if (len <= sl || strcmp(e->d_name + len - sl, ".safetensors") != 0)
            continue;
        if (n == cap)
            names = glm_realloc(names, sizeof(char *) * (size_t)(cap = cap ? 2 * cap : 8));
        names[n++] = glm_strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof(char *), golden_cmp_names);
    int rc = n ? GLM_OK : glm_err(err, errlen, "%s: no *.safetensors files", dir);
    for (int i = 0; i < n; i++) {
        if (rc == GLM_OK) {
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            rc = golden_hash_file(&h, path, err, errlen);
        }
        free(names[i]);
    }
    free(names);
    *hash = h;
    return rc;
}

/* GLM_OK when the checkpoint in model_dir is the one the goldens in json_path
 * (a VARIANT.json) were made from; otherwise GLM_ERR with a message that says
 * so and how to regenerate. */
static inline int golden_checkpoint_matches(const char *model_dir, const char *json_path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(json_path, 0, &je);
    if (!root)
        return glm_err(err, errlen, "%s: %s (line %d)", json_path, je.text, je.line);
    const char *want = json_string_value(json_object_get(json_object_get(root, "checkpoint"), "fnv1a64"));
    int rc = GLM_OK;
    uint64_t h = 0;
    if (!want)
        rc = glm_err(err, errlen, "%s records no checkpoint hash (\"checkpoint\": {\"fnv1a64\"}): the goldens "
                     "predate it; regenerate them: make golden-venv goldens", json_path);
    else if (golden_checkpoint_hash(model_dir, &h, err, errlen) != GLM_OK)
        rc = GLM_ERR;
    else {
        char got[17];
        snprintf(got, sizeof got, "%016" PRIx64, h);
        if (strcmp(got, want) != 0)
            rc = glm_err(err, errlen,
                         "checkpoint %s (fnv1a64 %s) differs from the one the goldens %s were made from "
                         "(fnv1a64 %s): if the test checkpoints changed on purpose, rebuild them "
                         "(make models) and regenerate the goldens (make golden-venv goldens), then "
                         "commit tests/golden/tiny/; otherwise models/ is stale: rm -r models && make models",
                         model_dir, got, json_path, want);
    }
    json_decref(root);
    return rc;
}

/* Loads GOLDEN_DIR/VARIANT.hidden.f32 with its shape from VARIANT.json:
 * [*entries][*tokens][*hidden] floats (malloc'd), or NULL and err. */
static inline float *golden_read_hidden(const char *variant, int *entries, int *tokens, int *hidden, char *err,
                                        size_t errlen)
{
    char path[512];
    snprintf(path, sizeof path, GOLDEN_DIR "/%s.json", variant);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        glm_err(err, errlen, "%s: %s (line %d)", path, je.text, je.line);
        return NULL;
    }
    json_t *hs = json_object_get(root, "hidden_states");
    json_t *shape = json_object_get(hs, "shape");
    const char *file = json_string_value(json_object_get(hs, "file"));
    if (!file || json_array_size(shape) != 3) {
        glm_err(err, errlen, "%s: no \"hidden_states\" {\"file\", \"shape\": [entries, tokens, hidden]}", path);
        json_decref(root);
        return NULL;
    }
    *entries = (int)json_integer_value(json_array_get(shape, 0));
    *tokens = (int)json_integer_value(json_array_get(shape, 1));
    *hidden = (int)json_integer_value(json_array_get(shape, 2));
    snprintf(path, sizeof path, GOLDEN_DIR "/%s", file);
    json_decref(root);
    size_t n = (size_t)*entries * (size_t)*tokens * (size_t)*hidden;
    FILE *f = fopen(path, "rb");
    if (!f || n == 0) {
        if (f)
            fclose(f);
        glm_err(err, errlen, "cannot open %s (or empty shape)", path);
        return NULL;
    }
    float *x = glm_malloc(sizeof(float) * n);
    size_t got = fread(x, sizeof(float), n, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != n || extra) {
        glm_err(err, errlen, "%s: %s %zu floats, expected %zu", path, extra ? "more than" : "only", got, n);
        free(x);
        return NULL;
    }
    return x;
}

#endif
