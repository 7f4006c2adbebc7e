/*
 * test_core.c - the shared utilities of engine/core: UTF-8 (every sequence
 * class of Unicode's table 3-7, the maximal-subpart rule, round trips over
 * every code point), the byte buffer (growth, limit, take), JSON escaping
 * (against the bytes Python's json.dumps writes), the hashes (published
 * FNV-1a values) and the string map (against a brute-force list).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/hash.h"
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
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
