/*
 * test_safetensors.c - unit tests of the safetensors reader (engine/model/safetensors.c):
 * valid single-file and sharded checkpoints read back exactly, and every kind
 * of malformed, truncated or missing input rejected with one error line that
 * names the file (and tensor).
 */
#include <check.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dtype.h"
#include "model/safetensors.h"
#include "core/util.h"
#include "testutil.h"

static char g_dir[64];

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void setup(void)
{
    strcpy(g_dir, "/tmp/test_safetensors_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void teardown(void)
{
    nftw(g_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A path under the temp dir; a small pool of buffers so several can be live. */
static const char *tpath(const char *name)
{
    static char pool[8][512];
    static int next;
    char *p = pool[next++ % 8];
    snprintf(p, sizeof(pool[0]), "%s/%s", g_dir, name);
    return p;
}

static void write_raw(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    if (n)
        ck_assert_uint_eq(fwrite(buf, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* Builds a safetensors image: LE u64 length, header (space-padded to a multiple
 * of 8 when pad is set, as the Python package writes), data. Caller frees. */
static uint8_t *build_st(const char *header, int pad, const void *data, size_t dlen,
                         size_t *outlen)
{
    size_t hl = strlen(header), n = hl;
    if (pad)
        n = (hl + 7) & ~(size_t)7;
    uint8_t *b = malloc(8 + n + dlen + 1);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(b + 8, header, hl);
    memset(b + 8 + hl, ' ', n - hl);
    if (dlen)
        memcpy(b + 8 + n, data, dlen);
    *outlen = 8 + n + dlen;
    return b;
}

static const char *write_st(const char *name, const char *header, const void *data,
                            size_t dlen)
{
    size_t len;
    uint8_t *b = build_st(header, 1, data, dlen, &len);
    const char *p = tpath(name);
    write_raw(p, b, len);
    free(b);
    return p;
}

/* Asserts a failed open: GLM_ERR, *out NULL, one line containing every given
 * (non-NULL) substring. */
static void check_err(int rc, const st_checkpoint *ck, const char *err, const char *s1,
                      const char *s2, const char *s3)
{
    ck_assert_int_eq(rc, GLM_ERR);
    ck_assert_ptr_null(ck);
    ck_assert_msg(err[0] != '\0', "empty error");
    ck_assert_msg(strchr(err, '\n') == NULL, "error is not one line: %s", err);
    const char *want[3] = {s1, s2, s3};
    for (int i = 0; i < 3; i++)
        if (want[i])
            ck_assert_msg(strstr(err, want[i]) != NULL, "error \"%s\" lacks \"%s\"", err,
                          want[i]);
}

static void expect_file_err(const char *path, const char *s2, const char *s3)
{
    char err[GLM_ERRLEN] = "";
    st_checkpoint *ck = (st_checkpoint *)1;
    int rc = st_open_file(path, &ck, err, sizeof(err));
    check_err(rc, ck, err, path, s2, s3);
}

static void expect_dir_err(const char *dir, const char *s1, const char *s2, const char *s3)
{
    char err[GLM_ERRLEN] = "";
    st_checkpoint *ck = (st_checkpoint *)1;
    int rc = st_open(dir, &ck, err, sizeof(err));
    check_err(rc, ck, err, s1, s2, s3);
}

/* ---- a valid file ---------------------------------------------------------- */

static const float F32_VALS[6] = {0.0f, 1.5f, -2.0f, 3.25f, 4.0f, -5.0f};
static const float BF16_VALS[4] = {1.0f, -0.5f, 2.5f, 65536.0f};
static const uint8_t FP8_BYTES[4] = {0x38, 0xb8, 0x7e, 0x00}; /* 1, -1, 448, 0 */
static const float FP8_VALS[4] = {1.0f, -1.0f, 448.0f, 0.0f};

#define VALID_DATA_LEN 42

/* Header (tensors deliberately out of name order) and data of a valid file. */
static const char *valid_header(void)
{
    return "{\"__metadata__\":{\"format\":\"pt\"},"
           "\"w.f32\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
           "\"w.bf16\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
           "\"w.fp8\":{\"dtype\":\"F8_E4M3\",\"shape\":[2,2],\"data_offsets\":[32,36]},"
           "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[36,40]},"
           "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[42,42]},"
           "\"deep\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,2],\"data_offsets\":[40,42]}}";
}

static void valid_data(uint8_t *d)
{
    memcpy(d, F32_VALS, 24);
    for (int i = 0; i < 4; i++) {
        uint16_t h = glm_f32_to_bf16(BF16_VALS[i]);
        memcpy(d + 24 + 2 * i, &h, 2);
    }
    memcpy(d + 32, FP8_BYTES, 4);
    float s = 7.0f;
    memcpy(d + 36, &s, 4);
    d[40] = 9;
    d[41] = 200;
}

static const char *write_valid(const char *name)
{
    uint8_t d[VALID_DATA_LEN];
    valid_data(d);
    return write_st(name, valid_header(), d, sizeof(d));
}

static void check_valid(const st_checkpoint *ck, const char *path)
{
    ck_assert_uint_eq(st_count(ck), 6);
    ck_assert_uint_eq(st_total_bytes(ck), VALID_DATA_LEN);
    static const char *sorted[6] = {"deep", "empty", "scalar", "w.bf16", "w.f32", "w.fp8"};
    for (size_t i = 0; i < 6; i++) {
        const st_tensor *t = st_get(ck, i);
        ck_assert_str_eq(t->name, sorted[i]);
        ck_assert_ptr_eq(st_find(ck, sorted[i]), t);
        ck_assert_str_eq(t->file, path);
    }
    ck_assert_ptr_null(st_find(ck, "nope"));
    ck_assert_ptr_null(st_find(ck, ""));
    ck_assert_ptr_null(st_find(ck, "w.f3"));

    const st_tensor *f = st_find(ck, "w.f32");
    ck_assert_int_eq(f->dtype, GLM_DTYPE_F32);
    ck_assert_int_eq(f->ndim, 2);
    ck_assert_int_eq(f->shape[0], 2);
    ck_assert_int_eq(f->shape[1], 3);
    ck_assert_int_eq(f->numel, 6);
    ck_assert_uint_eq(f->nbytes, 24);
    float v[6];
    memcpy(v, f->data, sizeof(v));
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(v[i], F32_VALS[i]);

    const st_tensor *b = st_find(ck, "w.bf16");
    ck_assert_int_eq(b->dtype, GLM_DTYPE_BF16);
    ck_assert_int_eq(b->ndim, 1);
    ck_assert_int_eq(b->shape[0], 4);
    ck_assert_int_eq(b->numel, 4);
    ck_assert_uint_eq(b->nbytes, 8);
    float bv[4];
    ck_assert_int_eq(glm_to_f32(GLM_DTYPE_BF16, b->data, bv, 4), 0);
    for (int i = 0; i < 4; i++) {
        uint16_t h;
        memcpy(&h, (const uint8_t *)b->data + 2 * i, 2);
        ck_assert_float_eq(glm_bf16_to_f32(h), BF16_VALS[i]);
        ck_assert_float_eq(bv[i], BF16_VALS[i]);
    }

    const st_tensor *q = st_find(ck, "w.fp8");
    ck_assert_int_eq(q->dtype, GLM_DTYPE_F8_E4M3);
    ck_assert_int_eq(q->ndim, 2);
    ck_assert_int_eq(q->shape[0], 2);
    ck_assert_int_eq(q->shape[1], 2);
    ck_assert_uint_eq(q->nbytes, 4);
    for (int i = 0; i < 4; i++) {
        uint8_t byte = ((const uint8_t *)q->data)[i];
        ck_assert_uint_eq(byte, FP8_BYTES[i]);
        ck_assert_float_eq(glm_e4m3_to_f32(byte), FP8_VALS[i]);
    }

    const st_tensor *s = st_find(ck, "scalar");
    ck_assert_int_eq(s->ndim, 0);
    ck_assert_int_eq(s->numel, 1);
    ck_assert_uint_eq(s->nbytes, 4);
    float sv;
    memcpy(&sv, s->data, 4);
    ck_assert_float_eq(sv, 7.0f);

    const st_tensor *e = st_find(ck, "empty");
    ck_assert_int_eq(e->ndim, 2);
    ck_assert_int_eq(e->shape[0], 0);
    ck_assert_int_eq(e->shape[1], 3);
    ck_assert_int_eq(e->numel, 0);
    ck_assert_uint_eq(e->nbytes, 0);

    const st_tensor *dp = st_find(ck, "deep");
    ck_assert_int_eq(dp->dtype, GLM_DTYPE_U8);
    ck_assert_int_eq(dp->ndim, ST_MAX_DIMS);
    ck_assert_int_eq(dp->shape[7], 2);
    ck_assert_int_eq(dp->numel, 2);
    ck_assert_uint_eq(((const uint8_t *)dp->data)[0], 9);
    ck_assert_uint_eq(((const uint8_t *)dp->data)[1], 200);

    /* All views into one mapping, at their offsets: nothing was copied. */
    const char *base = f->data;
    ck_assert_int_eq((const char *)b->data - base, 24);
    ck_assert_int_eq((const char *)q->data - base, 32);
    ck_assert_int_eq((const char *)s->data - base, 36);
    ck_assert_int_eq((const char *)dp->data - base, 40);
}

START_TEST(test_valid_file)
{
    const char *path = write_valid("model.safetensors");
    char err[GLM_ERRLEN] = "";
    st_checkpoint *ck = NULL;
    ck_assert_msg(st_open_file(path, &ck, err, sizeof(err)) == GLM_OK, "%s", err);
    check_valid(ck, path);
    st_close(ck);

    /* The same through the directory (model.safetensors). */
    ck = NULL;
    ck_assert_msg(st_open(g_dir, &ck, err, sizeof(err)) == GLM_OK, "%s", err);
    check_valid(ck, path);
    st_close(ck);
}
END_TEST

START_TEST(test_unpadded_and_empty_header)
{
    /* No padding, header "{}" with no tensors, extra data after the tensors. */
    size_t len;
    uint8_t d[4] = {1, 2, 3, 4};
    uint8_t *b = build_st("{}", 0, d, 4, &len);
    const char *p = tpath("x.safetensors");
    write_raw(p, b, len);
    free(b);
    char err[GLM_ERRLEN] = "";
    st_checkpoint *ck = NULL;
    ck_assert_msg(st_open_file(p, &ck, err, sizeof(err)) == GLM_OK, "%s", err);
    ck_assert_uint_eq(st_count(ck), 0);
    ck_assert_uint_eq(st_total_bytes(ck), 0);
    ck_assert_ptr_null(st_find(ck, "a"));
    st_close(ck);

    b = build_st("{\"a\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 0, d, 4,
                 &len);
    write_raw(p, b, len);
    free(b);
    ck_assert_msg(st_open_file(p, &ck, err, sizeof(err)) == GLM_OK, "%s", err);
    ck_assert_uint_eq(st_count(ck), 1);
    ck_assert_int_eq(st_find(ck, "a")->dtype, GLM_DTYPE_I16);
    st_close(ck);
    st_close(NULL);
}
END_TEST

/* ---- sharded ----------------------------------------------------------------- */

#define SHARD1 "model-00001-of-00002.safetensors"
#define SHARD2 "model-00002-of-00002.safetensors"

static void write_shards(void)
{
    float a[2] = {1.0f, 2.0f};
    uint8_t d1[12];
    memcpy(d1, a, 8);
    uint16_t h0 = glm_f32_to_bf16(3.0f), h1 = glm_f32_to_bf16(-4.0f);
    memcpy(d1 + 8, &h0, 2);
    memcpy(d1 + 10, &h1, 2);
    write_st(SHARD1,
             "{\"a.w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b.w\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]}}",
             d1, sizeof(d1));
    uint8_t d2[4] = {0x38, 0xb8, 0x7e, 42};
    write_st(SHARD2,
             "{\"c.w\":{\"dtype\":\"F8_E4M3\",\"shape\":[3],\"data_offsets\":[0,3]},"
             "\"extra\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[3,4]}}",
             d2, sizeof(d2));
}

static void write_index(const char *weight_map)
{
    char buf[2048];
    snprintf(buf, sizeof(buf), "{\"metadata\":{\"total_size\":16},\"weight_map\":%s}",
             weight_map);
    write_raw(tpath("model.safetensors.index.json"), buf, strlen(buf));
}

static const char *GOOD_MAP =
    "{\"a.w\":\"" SHARD1 "\",\"b.w\":\"" SHARD1 "\",\"c.w\":\"" SHARD2 "\"}";

START_TEST(test_sharded_index)
{
    write_shards();
    write_index(GOOD_MAP);
    /* Files the index does not name are not opened (this one would clash). */
    write_st("stray.safetensors",
             "{\"a.w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", "z", 1);
    /* Nor is model.safetensors when there is an index. */
    write_raw(tpath("model.safetensors"), "junk", 4);

    char err[GLM_ERRLEN] = "";
    st_checkpoint *ck = NULL;
    ck_assert_msg(st_open(g_dir, &ck, err, sizeof(err)) == GLM_OK, "%s", err);
    ck_assert_uint_eq(st_count(ck), 4);
    ck_assert_uint_eq(st_total_bytes(ck), 16);
    ck_assert_str_eq(st_get(ck, 0)->name, "a.w");
    ck_assert_str_eq(st_get(ck, 1)->name, "b.w");
    ck_assert_str_eq(st_get(ck, 2)->name, "c.w");
    ck_assert_str_eq(st_get(ck, 3)->name, "extra");

    const st_tensor *a = st_find(ck, "a.w");
    ck_assert_str_eq(a->file, tpath(SHARD1));
    float av[2];
    memcpy(av, a->data, 8);
    ck_assert_float_eq(av[0], 1.0f);
    ck_assert_float_eq(av[1], 2.0f);

    const st_tensor *b = st_find(ck, "b.w");
    ck_assert_str_eq(b->file, tpath(SHARD1));
    float bv[2];
    ck_assert_int_eq(glm_to_f32(GLM_DTYPE_BF16, b->data, bv, 2), 0);
    ck_assert_float_eq(bv[0], 3.0f);
    ck_assert_float_eq(bv[1], -4.0f);

    const st_tensor *c = st_find(ck, "c.w");
    ck_assert_str_eq(c->file, tpath(SHARD2));
    ck_assert_int_eq(c->dtype, GLM_DTYPE_F8_E4M3);
    ck_assert_int_eq(c->shape[0], 3);
    ck_assert_float_eq(glm_e4m3_to_f32(((const uint8_t *)c->data)[2]), 448.0f);

    /* In a shard but not in the index: still available. */
    const st_tensor *x = st_find(ck, "extra");
    ck_assert_ptr_nonnull(x);
    ck_assert_str_eq(x->file, tpath(SHARD2));
    ck_assert_uint_eq(((const uint8_t *)x->data)[0], 42);
    st_close(ck);
}
END_TEST

START_TEST(test_dir_scan)
{
    /* No index, no model.safetensors: every *.safetensors, in name order. */
    write_shards();
    write_raw(tpath("config.json"), "{}", 2);
    write_raw(tpath("notes.safetensors.txt"), "x", 1);
    char err[GLM_ERRLEN] = "";
    st_checkpoint *ck = NULL;
    ck_assert_msg(st_open(g_dir, &ck, err, sizeof(err)) == GLM_OK, "%s", err);
    ck_assert_uint_eq(st_count(ck), 4);
    ck_assert_str_eq(st_find(ck, "a.w")->file, tpath(SHARD1));
    ck_assert_str_eq(st_find(ck, "extra")->file, tpath(SHARD2));
    for (size_t i = 1; i < st_count(ck); i++)
        ck_assert_int_lt(strcmp(st_get(ck, i - 1)->name, st_get(ck, i)->name), 0);
    st_close(ck);

    /* A trailing slash on the directory gives the same paths. */
    char d[128];
    snprintf(d, sizeof(d), "%s/", g_dir);
    ck_assert_msg(st_open(d, &ck, err, sizeof(err)) == GLM_OK, "%s", err);
    ck_assert_str_eq(st_find(ck, "c.w")->file, tpath(SHARD2));
    st_close(ck);
}
END_TEST

/* ---- bad headers --------------------------------------------------------------- */

#define T(s) "{\"w\":{" s "}}"
#define OK_DT "\"dtype\":\"F32\""
#define OK_SH "\"shape\":[4]"
#define OK_OF "\"data_offsets\":[0,16]"

static const struct {
    const char *header;
    const char *tensor; /* must appear in the error (or NULL) */
    const char *what;   /* must appear in the error (or NULL) */
} BAD[] = {
    {"", NULL, "not valid JSON"},
    {"        ", NULL, "not valid JSON"},
    {"{\"w\": {", NULL, "not valid JSON"},
    {"not json", NULL, "not valid JSON"},
    {"[1,2,3]", NULL, "not a JSON object"},
    {"\"str\"", NULL, NULL},
    {"{\"w\": 5}", "w", "not a JSON object"},
    {"{\"w\": [1]}", "w", "not a JSON object"},
    {T("\"dtype\":\"F33\"," OK_SH "," OK_OF), "w", "unknown dtype \"F33\""},
    {T("\"dtype\":\"f32\"," OK_SH "," OK_OF), "w", "unknown dtype"},
    {T(OK_SH "," OK_OF), "w", "dtype"},
    {T("\"dtype\":4," OK_SH "," OK_OF), "w", "dtype"},
    {T(OK_DT "," OK_OF), "w", "shape"},
    {T(OK_DT ",\"shape\":4," OK_OF), "w", "shape"},
    {T(OK_DT ",\"shape\":[-1]," OK_OF), "w", "shape[0]"},
    {T(OK_DT ",\"shape\":[2,2.0]," OK_OF), "w", "shape[1]"},
    {T(OK_DT ",\"shape\":[\"4\"]," OK_OF), "w", "shape[0]"},
    {T(OK_DT ",\"shape\":[null]," OK_OF), "w", "shape[0]"},
    {T(OK_DT ",\"shape\":[1,1,1,1,1,1,1,1,4]," OK_OF), "w", "9 dims"},
    {T(OK_DT ",\"shape\":[4294967296,4294967296]," OK_OF), "w", "overflow"},
    {T(OK_DT ",\"shape\":[4611686018427387904]," OK_OF), "w", "overflow"},
    {T(OK_DT ",\"shape\":[99999999999999999999]," OK_OF), NULL, "not valid JSON"},
    {T(OK_DT "," OK_SH), "w", "data_offsets"},
    {T(OK_DT "," OK_SH ",\"data_offsets\":16"), "w", "data_offsets"},
    {T(OK_DT "," OK_SH ",\"data_offsets\":[16]"), "w", "data_offsets"},
    {T(OK_DT "," OK_SH ",\"data_offsets\":[0,16,16]"), "w", "data_offsets"},
    {T(OK_DT "," OK_SH ",\"data_offsets\":[-1,15]"), "w", "data_offsets"},
    {T(OK_DT "," OK_SH ",\"data_offsets\":[0,-16]"), "w", "data_offsets"},
    {T(OK_DT "," OK_SH ",\"data_offsets\":[\"0\",16]"), "w", "data_offsets"},
    {T(OK_DT "," OK_SH ",\"data_offsets\":[0,16.0]"), "w", "data_offsets"},
    {T(OK_DT "," OK_SH ",\"data_offsets\":[16,0]"), "w", "begin 16 > end 0"},
    {T(OK_DT ",\"shape\":[8],\"data_offsets\":[0,32]"), "w", "beyond the data section"},
    {T(OK_DT "," OK_SH ",\"data_offsets\":[8,24]"), "w", "beyond the data section"},
    {T(OK_DT ",\"shape\":[3]," OK_OF), "w", "need 12"},
    {T("\"dtype\":\"BF16\"," OK_SH "," OK_OF), "w", "need 8"},
    {T(OK_DT ",\"shape\":[0]," OK_OF), "w", "need 0"},
    /* duplicate key inside one header */
    {"{\"w\":{" OK_DT "," OK_SH "," OK_OF "},\"w\":{" OK_DT "," OK_SH "," OK_OF "}}", NULL,
     "duplicate"},
    /* a good tensor before the bad one (error path after tensors were added) */
    {"{\"__metadata__\":{\"a\":\"b\"},\"good\":{" OK_DT "," OK_SH "," OK_OF "},"
     "\"bad\":{\"dtype\":\"Q4\"," OK_SH "," OK_OF "}}",
     "bad", "unknown dtype"},
};

START_TEST(test_bad_header)
{
    uint8_t data[16] = {0};
    const char *p = write_st("model.safetensors", BAD[_i].header, data, sizeof(data));
    expect_file_err(p, BAD[_i].tensor ? BAD[_i].tensor : NULL, BAD[_i].what);
    /* The same through the directory. */
    expect_dir_err(g_dir, p, BAD[_i].tensor, BAD[_i].what);
}
END_TEST

START_TEST(test_bad_length)
{
    const char *p = tpath("t.safetensors");
    write_raw(p, "", 0);
    expect_file_err(p, "empty", NULL);
    write_raw(p, "\x02\0\0\0\0", 5);
    expect_file_err(p, "too short", NULL);
    write_raw(p, "\0\0\0\0\0\0\0", 7);
    expect_file_err(p, "too short", NULL);

    /* N larger than the file. */
    uint8_t b[20] = {0};
    b[0] = 0xe8;
    b[1] = 0x03; /* 1000 */
    memcpy(b + 8, "{}", 2);
    write_raw(p, b, sizeof(b));
    expect_file_err(p, "exceeds the file size", NULL);
    /* N = 13: one past the end. */
    memset(b, 0, 8);
    b[0] = 13;
    write_raw(p, b, sizeof(b));
    expect_file_err(p, "exceeds the file size", NULL);
    /* N = 2^64 - 1. */
    memset(b, 0xff, 8);
    write_raw(p, b, sizeof(b));
    expect_file_err(p, "header length", NULL);

    /* N over 100 MB in a (sparse) file that is big enough to hold it. */
    memset(b, 0, 8);
    uint64_t n = 200000000;
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(n >> (8 * i));
    write_raw(p, b, 8);
    ck_assert_int_eq(truncate(p, 300000000), 0);
    expect_file_err(p, "limit", NULL);
}
END_TEST

START_TEST(test_truncated)
{
    size_t len;
    uint8_t d[VALID_DATA_LEN];
    valid_data(d);
    uint8_t *full = build_st(valid_header(), 1, d, sizeof(d), &len);
    size_t hdr_end = len - VALID_DATA_LEN;
    const char *p = tpath("model.safetensors");
    int in_len = 0, in_hdr = 0, in_data = 0;
    for (size_t cut = 0; cut < len; cut++) {
        write_raw(p, full, cut);
        expect_file_err(p, NULL, NULL);
        expect_dir_err(g_dir, p, NULL, NULL);
        if (cut < 8)
            in_len++;
        else if (cut < hdr_end)
            in_hdr++;
        else
            in_data++;
    }
    ck_assert_int_eq(in_len, 8);
    ck_assert_int_gt(in_hdr, 100);
    ck_assert_int_eq(in_data, VALID_DATA_LEN);
    /* Cut inside the data: the error names the tensor that no longer fits. */
    write_raw(p, full, len - 1);
    expect_file_err(p, "tensor '", "beyond the data section");
    /* The untruncated file still opens. */
    write_raw(p, full, len);
    char err[GLM_ERRLEN] = "";
    st_checkpoint *ck = NULL;
    ck_assert_msg(st_open_file(p, &ck, err, sizeof(err)) == GLM_OK, "%s", err);
    st_close(ck);
    free(full);
}
END_TEST

/* ---- duplicates, index and directory errors --------------------------------------- */

START_TEST(test_duplicate_across_shards)
{
    const char *h = "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    const char *a = write_st("a.safetensors", h, "1", 1);
    const char *b = write_st("b.safetensors", h, "2", 1);
    expect_dir_err(g_dir, "'x'", a, b);

    /* Also when an index names both files. */
    write_index("{\"x\":\"a.safetensors\",\"y\":\"b.safetensors\"}");
    write_st("b.safetensors",
             "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
             "\"y\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
             "23", 2);
    expect_dir_err(g_dir, "'x'", a, b);
}
END_TEST

START_TEST(test_index_errors)
{
    write_shards();
    char index[512];
    snprintf(index, sizeof(index), "%s", tpath("model.safetensors.index.json"));

    /* Tensor listed but not in the file the index names. */
    write_index("{\"a.w\":\"" SHARD1 "\",\"zz\":\"" SHARD1 "\"}");
    expect_dir_err(g_dir, "'zz'", tpath(SHARD1), index);
    /* Tensor in another shard than the one named. */
    write_index("{\"a.w\":\"" SHARD2 "\",\"c.w\":\"" SHARD2 "\"}");
    expect_dir_err(g_dir, "'a.w'", tpath(SHARD2), NULL);
    /* Tensor in another shard that is opened too. */
    write_index("{\"a.w\":\"" SHARD2 "\",\"b.w\":\"" SHARD1 "\"}");
    expect_dir_err(g_dir, "'a.w'", tpath(SHARD2), NULL);
    /* The index names a missing file. */
    write_index("{\"a.w\":\"" SHARD1 "\",\"q\":\"model-00003-of-00003.safetensors\"}");
    expect_dir_err(g_dir, tpath("model-00003-of-00003.safetensors"), NULL, NULL);
    /* File names with '/' or "..". */
    write_index("{\"a.w\":\"sub/" SHARD1 "\"}");
    expect_dir_err(g_dir, index, "'a.w'", "sub/");
    write_index("{\"a.w\":\"../" SHARD1 "\"}");
    expect_dir_err(g_dir, index, "'a.w'", NULL);
    write_index("{\"a.w\":\"..\"}");
    expect_dir_err(g_dir, index, "'a.w'", NULL);
    write_index("{\"a.w\":\"\"}");
    expect_dir_err(g_dir, index, "'a.w'", NULL);
    /* Malformed index. */
    write_index("{\"a.w\":7}");
    expect_dir_err(g_dir, index, "'a.w'", NULL);
    write_index("[1]");
    expect_dir_err(g_dir, index, "weight_map", NULL);
    write_index("{}");
    expect_dir_err(g_dir, index, "empty", NULL);
    write_raw(index, "{\"weight_map\":{\"a\":\"b\"}}", 10);
    expect_dir_err(g_dir, index, NULL, NULL);
    write_raw(index, "{\"weight_map\":{}}", 17);
    expect_dir_err(g_dir, index, NULL, NULL);
    write_raw(index, "", 0);
    expect_dir_err(g_dir, index, NULL, NULL);
    /* A named shard is itself broken. */
    write_index(GOOD_MAP);
    write_raw(tpath(SHARD2), "\x10\0\0\0\0\0\0\0{", 9);
    expect_dir_err(g_dir, tpath(SHARD2), "exceeds", NULL);
    /* Good again once the shard is fixed. */
    write_shards();
    char err[GLM_ERRLEN] = "";
    st_checkpoint *ck = NULL;
    ck_assert_msg(st_open(g_dir, &ck, err, sizeof(err)) == GLM_OK, "%s", err);
    st_close(ck);
}
END_TEST

START_TEST(test_dir_errors)
{
    char err[GLM_ERRLEN];
    /* Empty dir, and one with no .safetensors files. */
    snprintf(err, sizeof(err), "no .safetensors files in %s", g_dir);
    expect_dir_err(g_dir, err, NULL, NULL);
    write_raw(tpath("config.json"), "{}", 2);
    mkdir(tpath("sub.d"), 0755);
    expect_dir_err(g_dir, err, NULL, NULL);

    /* Missing directory, a file given as directory, a directory as file. */
    char missing[512];
    snprintf(missing, sizeof(missing), "%s", tpath("does-not-exist"));
    expect_dir_err(missing, missing, "No such file", NULL);
    expect_file_err(tpath("does-not-exist.safetensors"), "No such file", NULL);
    expect_dir_err(tpath("config.json"), tpath("config.json"), "not a directory", NULL);
    expect_file_err(g_dir, "directory", NULL);
    /* A directory named like a shard. */
    mkdir(tpath("dir.safetensors"), 0755);
    expect_dir_err(g_dir, tpath("dir.safetensors"), "directory", NULL);
    rmdir(tpath("dir.safetensors"));
    /* model.safetensors that is a directory. */
    mkdir(tpath("model.safetensors"), 0755);
    expect_dir_err(g_dir, tpath("model.safetensors"), "directory", NULL);
    rmdir(tpath("model.safetensors"));

    /* Error buffer may be NULL. */
    st_checkpoint *ck = (st_checkpoint *)1;
    ck_assert_int_eq(st_open(missing, &ck, NULL, 0), GLM_ERR);
    ck_assert_ptr_null(ck);
}
END_TEST

START_TEST(test_permission)
{
    if (geteuid() == 0) {
        /* root reads anything: the EACCES paths cannot be produced. */
        return;
    }
    const char *p = write_valid("model.safetensors");
    ck_assert_int_eq(chmod(p, 0), 0);
    expect_file_err(p, "Permission denied", NULL);
    expect_dir_err(g_dir, p, "Permission denied", NULL);
    ck_assert_int_eq(chmod(p, 0644), 0);
    ck_assert_int_eq(chmod(g_dir, 0300), 0); /* no read: cannot list */
    ck_assert_int_eq(unlink(p), 0);
    expect_dir_err(g_dir, g_dir, "Permission denied", NULL);
    ck_assert_int_eq(chmod(g_dir, 0700), 0);
}
END_TEST

static Suite *safetensors_suite(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("reader");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_valid_file);
    tcase_add_test(tc, test_unpadded_and_empty_header);
    tcase_add_test(tc, test_sharded_index);
    tcase_add_test(tc, test_dir_scan);
    tcase_add_loop_test(tc, test_bad_header, 0, (int)(sizeof(BAD) / sizeof(BAD[0])));
    tcase_add_test(tc, test_bad_length);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_duplicate_across_shards);
    tcase_add_test(tc, test_index_errors);
    tcase_add_test(tc, test_dir_errors);
    tcase_add_test(tc, test_permission);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(safetensors_suite());
}
