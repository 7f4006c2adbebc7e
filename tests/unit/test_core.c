/*
 * test_core.c - the shared utilities of engine/core: UTF-8 (every sequence
 * class of Unicode's table 3-7, the maximal-subpart rule, round trips over
 * every code point), the byte buffer (growth, limit, take), JSON escaping
 * (against the bytes Python's json.dumps writes), the hashes (published
 * FNV-1a values), the string map (against a brute-force list) and the JSON
 * limits (the byte scanner against jansson's trees of random documents, each
 * limit passed by one, the member blamed, garbage bytes).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/hash.h"
#include "core/json_limits.h"
#include "core/strmap.h"
#include "core/utf8.h"
#include "testutil.h"

/* ---- UTF-8 ---------------------------------------------------------------------- */

START_TEST(utf8_every_code_point)
{
    for (uint32_t cp = 0; cp <= GLM_UTF8_MAX_CP; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        char s[4];
        size_t n = glm_utf8_encode(cp, s);
        ck_assert_uint_eq(n, cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4);
        ck_assert_uint_eq(glm_utf8_len((unsigned char)s[0]), n);
        uint32_t a = 0, b = 0;
        ck_assert_int_eq(glm_utf8_seq(s, n, &a), (int)n);
        ck_assert_uint_eq(a, cp);
        ck_assert_uint_eq(glm_utf8_decode_valid(s, s + n, &b), n);
        ck_assert_uint_eq(b, cp);
        ck_assert(glm_utf8_valid(s, n));
        ck_assert_uint_eq(glm_utf8_count(s, n), 1);
        ck_assert_ptr_eq(glm_utf8_prev(s, s + n), s);
        for (size_t k = 1; k < n; k++) /* every proper prefix wants more */
            ck_assert_int_eq(glm_utf8_seq(s, k, NULL), 0);
    }
}
END_TEST

START_TEST(utf8_ill_formed)
{
    static const struct {
        const char *s;
        int seq; /* glm_utf8_seq of the whole string */
    } cases[] = {
        {"\x80", -1},             /* a lone continuation byte */
        {"\xC0\xAF", -1},         /* C0, C1: never a lead byte (overlong) */
        {"\xC1\xBF", -1},
        {"\xE0\x80\x80", -1},     /* overlong 3-byte form: E0 wants A0..BF */
        {"\xED\xA0\x80", -1},     /* a surrogate: ED wants 80..9F */
        {"\xF0\x8F\xBF\xBF", -1}, /* overlong 4-byte form */
        {"\xF4\x90\x80\x80", -1}, /* past U+10FFFF */
        {"\xF5\x80\x80\x80", -1},
        {"\xFF", -1},
        {"\xE2\x82" "a", -2},     /* a valid prefix cut short: one maximal subpart */
        {"\xF0\x9F\x98" "a", -3},
        {"\xE2\x82", 0},          /* a valid prefix at the end: more bytes needed */
        {"\x00", 1},              /* NUL is a character */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = cases[i].s[0] ? strlen(cases[i].s) : 1;
        ck_assert_msg(glm_utf8_seq(cases[i].s, n, NULL) == cases[i].seq, "case %zu", i);
        ck_assert_int_eq(glm_utf8_valid(cases[i].s, n), cases[i].seq == (int)n);
    }
    const char *t = "abcdefghij\xC3\xA9" "xyz\xE2\x82" "q";
    ck_assert_uint_eq(glm_utf8_valid_prefix(t, strlen(t)), 15);
    ck_assert_uint_eq(glm_utf8_valid_prefix(t, 15), 15);
    ck_assert_uint_eq(glm_utf8_count(t, 15), 14);
    const char *u = "a\xC3\xA9\xE2\x82\xAC";
    ck_assert_ptr_eq(glm_utf8_prev(u, u + 6), u + 3);
    ck_assert_ptr_eq(glm_utf8_prev(u, u + 3), u + 1);
    ck_assert_int_eq(glm_utf8_need(0x41), 0);
    ck_assert_int_eq(glm_utf8_need(0xC1), -1);
    ck_assert_int_eq(glm_utf8_need(0xF4), 3);
    ck_assert_int_eq(glm_utf8_need(0xF5), -1);
}
END_TEST

/* ---- buffers and JSON escaping ------------------------------------------------------- */

START_TEST(buf_basics)
{
    glm_buf b = {0};
    ck_assert_str_eq(glm_buf_str(&b), "");
    for (int i = 0; i < 1000; i++)
        glm_buf_printf(&b, "%d,", i);
    ck_assert_uint_eq(b.len, strlen(b.p));
    ck_assert(strncmp(b.p, "0,1,2,", 6) == 0);
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    glm_buf_clear(&b);
    glm_buf_printf(&b, "<%s>", big); /* longer than printf's stack buffer */
    ck_assert_uint_eq(b.len, 601);
    ck_assert_int_eq(b.p[600], '>');
    glm_buf_putc(&b, 0);
    ck_assert_uint_eq(b.len, 602);
    size_t n;
    char *s = glm_buf_take(&b, &n);
    ck_assert_uint_eq(n, 602);
    ck_assert_ptr_null(b.p);
    free(s);
    s = glm_buf_take(&b, &n);
    ck_assert_str_eq(s, "");
    free(s);

    glm_buf lim = {.max_len = 10};
    glm_buf_puts(&lim, "12345");
    glm_buf_puts(&lim, "67890");
    ck_assert(!lim.over);
    glm_buf_puts(&lim, "x");
    ck_assert(lim.over);
    glm_buf_puts(&lim, ""); /* dropped, and stays over */
    ck_assert_str_eq(lim.p, "1234567890");
    glm_buf_free(&lim);
}
END_TEST

static char *escaped(const char *s, size_t n, unsigned flags)
{
    glm_buf b = {0};
    glm_buf_json_escape(&b, s, n, flags);
    return glm_buf_take(&b, NULL);
}

START_TEST(json_escape)
{
    static const struct {
        const char *in;
        unsigned flags;
        const char *out; /* json.dumps(in, ensure_ascii=...)[1:-1] */
    } cases[] = {
        {"plain", 0, "plain"},
        {"q\"b\\s/", 0, "q\\\"b\\\\s/"},
        {"\n\r\t\b\f\x01\x1f", 0, "\\n\\r\\t\\b\\f\\u0001\\u001f"},
        {"\x7f" "é€😀", 0, "\x7f" "é€😀"},
        {"\x7f" "é€😀", GLM_JSON_ASCII, "\\u007f\\u00e9\\u20ac\\ud83d\\ude00"},
        {"a</b> </", GLM_JSON_NO_ETAG, "a<\\/b> <\\/"},
        {"a</b>", 0, "a</b>"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *e = escaped(cases[i].in, strlen(cases[i].in), cases[i].flags);
        ck_assert_msg(strcmp(e, cases[i].out) == 0, "case %zu: %s", i, e);
        free(e);
    }
    char *e = escaped("a\0b", 3, 0);
    ck_assert_str_eq(e, "a\\u0000b");
    free(e);
}
END_TEST

/* ---- hashes and the string map ---------------------------------------------------------- */

START_TEST(hashes)
{
    /* published FNV-1a test vectors */
    ck_assert_uint_eq(glm_fnv1a32(GLM_FNV32_INIT, "", 0), 0x811c9dc5u);
    ck_assert_uint_eq(glm_fnv1a32(GLM_FNV32_INIT, "a", 1), 0xe40c292cu);
    ck_assert_uint_eq(glm_fnv1a64(GLM_FNV64_INIT, "a", 1), 0xaf63dc4c8601ec8cull);
    ck_assert_uint_eq(glm_fnv1a64(GLM_FNV64_INIT, "foobar", 6), 0x85944171f73967e8ull);
    ck_assert_uint_eq(glm_fnv1a64(glm_fnv1a64(GLM_FNV64_INIT, "foo", 3), "bar", 3),
                      glm_fnv1a64(GLM_FNV64_INIT, "foobar", 6));
    /* every length around the 8-byte step hashes apart */
    char s[40] = {0};
    uint64_t seen[40];
    for (int n = 0; n < 40; n++) {
        seen[n] = glm_hash_bytes(s, (size_t)n);
        for (int k = 0; k < n; k++)
            ck_assert(seen[k] != seen[n]);
    }
}
END_TEST

typedef struct {
    char keys[600][12];
    size_t lens[600];
} keyset;

static const char *key_of(const void *ctx, uint32_t v, size_t *n)
{
    const keyset *k = ctx;
    *n = k->lens[v];
    return k->keys[v];
}

START_TEST(strmap)
{
    static keyset ks;
    test_rng r = {7};
    glm_strmap m = {0};
    ck_assert_int_eq(glm_strmap_get(&m, "x", 1, key_of, &ks), -1);
    int stored = 0;
    for (int i = 0; i < 600; i++) {
        /* short keys from a small alphabet: many repeats, the empty key among them */
        size_t n = (size_t)test_rng_int(&r, 0, 3);
        for (size_t j = 0; j < n; j++)
            ks.keys[i][j] = (char)('a' + test_rng_int(&r, 0, 3));
        ks.lens[i] = n;
        int first = -1;
        for (int j = 0; j < i && first < 0; j++)
            if (ks.lens[j] == n && memcmp(ks.keys[j], ks.keys[i], n) == 0)
                first = j;
        uint32_t got = glm_strmap_put(&m, ks.keys[i], n, (uint32_t)i, key_of, &ks);
        ck_assert_uint_eq(got, first < 0 ? (uint32_t)i : (uint32_t)first);
        stored += first < 0;
        ck_assert_int_eq(glm_strmap_get(&m, ks.keys[i], n, key_of, &ks), first < 0 ? i : first);
    }
    ck_assert_uint_eq(m.n, (uint32_t)stored);
    ck_assert_int_eq(glm_strmap_get(&m, "abcde", 5, key_of, &ks), -1);
    glm_strmap_free(&m);
}
END_TEST

/* ---- JSON limits ------------------------------------------------------------------- */

START_TEST(json_limits_counts)
{
    const char *t = "{\"a\": [1, 2, {\"b\": \"x\"}], \"c\": null, \"d\": \"q\\\"\\\\\"}";
    glm_json_shape s;
    ck_assert_int_eq(glm_json_scan(t, strlen(t), NULL, &s), GLM_OK);
    ck_assert_uint_eq(s.values, 8); /* root, array, 1, 2, object, "x", null, "q\"\\" */
    ck_assert_int_eq(s.depth, 3);
    ck_assert_uint_eq(s.string_bytes, 4 + 1 + 5); /* the names a b c d, x, and q\"\\ as written */
    ck_assert_int_eq(s.excess, GLM_JSON_WITHIN);
    json_t *j = json_loads(t, 0, NULL);
    ck_assert_ptr_nonnull(j);
    glm_json_shape m;
    ck_assert_int_eq(glm_json_measure(j, NULL, &m), GLM_OK);
    ck_assert_uint_eq(m.values, 8);
    ck_assert_int_eq(m.depth, 3);
    ck_assert_uint_eq(m.string_bytes, 4 + 1 + 3); /* the last string as stored: q"\ */
    json_decref(j);
    /* scalars at the top, empty text, and a NUL byte (a value jansson refuses; the scan ends) */
    ck_assert_int_eq(glm_json_scan("-1.5e3", 6, NULL, &s), GLM_OK);
    ck_assert_uint_eq(s.values, 1);
    ck_assert_int_eq(s.depth, 0);
    ck_assert_int_eq(glm_json_scan("", 0, NULL, &s), GLM_OK);
    ck_assert_uint_eq(s.values, 0);
    ck_assert_int_eq(glm_json_scan("[1,\0,2]", 7, NULL, &s), GLM_OK);
    ck_assert_uint_eq(s.values, 4);
    ck_assert_int_eq(glm_json_measure(NULL, NULL, &m), GLM_OK);
    ck_assert_uint_eq(m.values, 0);
}
END_TEST

/* A random tree: containers up to depth 6, strings without escapes. */
static json_t *random_json(test_rng *r, int depth)
{
    int kind = test_rng_int(r, 0, depth >= 6 ? 3 : 5);
    switch (kind) {
    case 0: return json_integer(test_rng_int(r, -1000, 1000));
    case 1: return test_rng_int(r, 0, 2) == 0 ? json_null() : json_boolean(test_rng_int(r, 0, 1));
    case 2: return json_real(test_rng_unit(r) * 1e6);
    case 3: {
        char b[16];
        int n = test_rng_int(r, 0, 12);
        for (int i = 0; i < n; i++)
            b[i] = (char)('a' + test_rng_int(r, 0, 25));
        return json_stringn(b, (size_t)n);
    }
    case 4: {
        json_t *a = json_array();
        for (int i = test_rng_int(r, 0, 5); i > 0; i--)
            json_array_append_new(a, random_json(r, depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (int i = test_rng_int(r, 0, 5); i > 0; i--) {
            char k[8];
            snprintf(k, sizeof k, "k%d", test_rng_int(r, 0, 99));
            json_object_set_new(o, k, random_json(r, depth + 1));
        }
        return o;
    }
    }
}

START_TEST(json_limits_text_matches_tree)
{
    test_rng r = {11};
    for (int it = 0; it < 2000; it++) {
        json_t *j = random_json(&r, 0);
        char *t = json_dumps(j, JSON_ENCODE_ANY | (it % 2 ? JSON_COMPACT : JSON_INDENT(2)));
        glm_json_shape all, a, b;
        ck_assert_int_eq(glm_json_scan(t, strlen(t), NULL, &all), GLM_OK);
        ck_assert_int_eq(glm_json_measure(j, NULL, &b), GLM_OK);
        ck_assert_uint_eq(all.values, b.values);
        ck_assert_int_eq(all.depth, b.depth);
        ck_assert_uint_eq(all.string_bytes, b.string_bytes);
        /* each limit at the count holds; one below it fails the same way on text and tree */
        glm_json_limits lim[3] = {{.max_depth = all.depth}, {.max_values = all.values},
                                  {.max_string_bytes = all.string_bytes}};
        for (int k = 0; k < 3; k++) {
            ck_assert_int_eq(glm_json_scan(t, strlen(t), &lim[k], &a), GLM_OK);
            ck_assert_int_eq(glm_json_measure(j, &lim[k], &b), GLM_OK);
        }
        lim[0].max_depth--;
        lim[1].max_values--;
        lim[2].max_string_bytes--;
        for (int k = 0; k < 3; k++) {
            /* a limit of 0 is none */
            if ((k == 0 && lim[0].max_depth <= 0) || (k == 1 && lim[1].max_values == 0) ||
                (k == 2 && (all.string_bytes == 0 || lim[2].max_string_bytes == 0)))
                continue;
            ck_assert_int_eq(glm_json_scan(t, strlen(t), &lim[k], &a), GLM_ERR);
            ck_assert_int_eq(glm_json_measure(j, &lim[k], &b), GLM_ERR);
            ck_assert_int_eq(a.excess, b.excess);
            ck_assert_str_eq(a.field, b.field);
        }
        free(t);
        json_decref(j);
    }
}
END_TEST

START_TEST(json_limits_each_limit)
{
    char err[256];
    glm_json_shape s;
    /* depth: 3 levels pass a limit of 3, 4 do not; the root member is named */
    const char *d3 = "{\"x\": 1, \"deep\": [[0]]}", *d4 = "{\"x\": 1, \"deep\": [[[0]]]}";
    glm_json_limits lim = {.max_depth = 3};
    ck_assert_int_eq(glm_json_scan(d3, strlen(d3), &lim, &s), GLM_OK);
    ck_assert_int_eq(glm_json_scan(d4, strlen(d4), &lim, &s), GLM_ERR);
    ck_assert_int_eq(s.excess, GLM_JSON_TOO_DEEP);
    ck_assert_str_eq(s.field, "deep");
    glm_json_shape_error(&s, &lim, "the request body", err, sizeof err);
    ck_assert_str_eq(err, "the request body nests JSON deeper than 3 levels (in 'deep')");
    /* values: the member holding the most is blamed, even when a later one passes the limit */
    const char *v = "{\"big\": [1,2,3,4,5,6], \"small\": [1,2]}";
    lim = (glm_json_limits){.max_values = 9};
    ck_assert_int_eq(glm_json_scan(v, strlen(v), &lim, &s), GLM_ERR);
    ck_assert_int_eq(s.excess, GLM_JSON_TOO_MANY_VALUES);
    ck_assert_str_eq(s.field, "big");
    glm_json_shape_error(&s, &lim, "the request body", err, sizeof err);
    ck_assert_str_eq(err, "the request body holds more than 9 JSON values (most of them in 'big')");
    json_t *j = json_loads(v, 0, NULL);
    ck_assert_int_eq(glm_json_measure(j, &lim, &s), GLM_ERR);
    ck_assert_str_eq(s.field, "big");
    json_decref(j);
    /* members: of one array or object, not of all */
    const char *m = "{\"a\": [1,2,3], \"b\": {\"x\":1,\"y\":2,\"z\":3,\"w\":4}}";
    lim = (glm_json_limits){.max_members = 3};
    ck_assert_int_eq(glm_json_scan(m, strlen(m), &lim, &s), GLM_ERR);
    ck_assert_int_eq(s.excess, GLM_JSON_TOO_MANY_MEMBERS);
    ck_assert_str_eq(s.field, "b");
    /* string bytes, keys included; a name that is not plain ASCII is not repeated */
    const char *b = "{\"k\\u00e9\": \"abcdef\"}";
    lim = (glm_json_limits){.max_string_bytes = 8};
    ck_assert_int_eq(glm_json_scan(b, strlen(b), &lim, &s), GLM_ERR);
    ck_assert_int_eq(s.excess, GLM_JSON_TOO_MANY_STRING_BYTES);
    ck_assert_str_eq(s.field, "");
    glm_json_shape_error(&s, &lim, "'chat_template_kwargs'", err, sizeof err);
    ck_assert_str_eq(err, "'chat_template_kwargs' holds more than 8 bytes of strings");
    /* a body of a million nested brackets stops at the limit, not at the end */
    size_t n = 1000000;
    char *deep = malloc(n);
    memset(deep, '[', n);
    lim = (glm_json_limits){.max_depth = 64};
    ck_assert_int_eq(glm_json_scan(deep, n, &lim, &s), GLM_ERR);
    ck_assert_int_eq(s.depth, 65);
    /* without a limit the scanner still stops following past 1024 levels */
    ck_assert_int_eq(glm_json_scan(deep, n, NULL, &s), GLM_ERR);
    ck_assert_int_eq(s.excess, GLM_JSON_TOO_DEEP);
    free(deep);
}
END_TEST

START_TEST(json_limits_garbage)
{
    /* random bytes from a JSON-ish alphabet, and every prefix of a document: no crash, counts bounded by the
     * bytes (a value takes at least one byte) */
    test_rng r = {5};
    static const char alpha[] = "{}[]\",:\\ 0a\n\x00\xff";
    char buf[512];
    for (int it = 0; it < 20000; it++) {
        size_t n = (size_t)test_rng_int(&r, 0, (int)sizeof buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = alpha[test_rng_int(&r, 0, (int)sizeof alpha - 2)];
        glm_json_shape s;
        glm_json_scan(buf, n, NULL, &s);
        ck_assert_uint_le(s.values, n);
        ck_assert_uint_le(s.string_bytes, n);
    }
    const char *doc = "{\"messages\": [{\"role\": \"user\", \"content\": \"a\\\"b\"}], \"n\": [1, 2.5e3, true]}";
    for (size_t k = 0; k <= strlen(doc); k++) {
        glm_json_shape s;
        ck_assert_int_eq(glm_json_scan(doc, k, NULL, &s), GLM_OK);
        ck_assert_uint_le(s.values, 9);
        if (k == strlen(doc))
            ck_assert_uint_eq(s.values, 9);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, utf8_every_code_point);
    tcase_add_test(tc, utf8_ill_formed);
    tcase_add_test(tc, buf_basics);
    tcase_add_test(tc, json_escape);
    tcase_add_test(tc, hashes);
    tcase_add_test(tc, strmap);
    tcase_add_test(tc, json_limits_counts);
    tcase_add_test(tc, json_limits_text_matches_tree);
    tcase_add_test(tc, json_limits_each_limit);
    tcase_add_test(tc, json_limits_garbage);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
