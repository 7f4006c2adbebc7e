/*
 * test_stop_strings.c - the server's stop-string matcher (server/stop_strings.c):
 * for every way of cutting a text into pieces, the released text is the text
 * before the first stop string (or all of it), nothing past a stop is ever
 * released, and held-back text is only ever a possible stop-string prefix.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "stop_strings.h"
#include "testutil.h"

/* Feeds text cut at every `step` bytes; returns the concatenation of what was released. */
static char *run(const char *text, const char *const *stops, int n, size_t step, int *stopped)
{
    size_t lens[8];
    for (int i = 0; i < n; i++)
        lens[i] = strlen(stops[i]);
    glm_stop s;
    glm_stop_init(&s, stops, lens, n);
    size_t len = strlen(text), outn = 0;
    char *out = calloc(len + 1, 1);
    *stopped = 0;
    for (size_t i = 0; i < len; i += step) {
        size_t k = len - i < step ? len - i : step;
        const char *o;
        size_t ol;
        int st = glm_stop_push(&s, text + i, k, &o, &ol);
        ck_assert(!*stopped || ol == 0); /* nothing after a stop */
        memcpy(out + outn, o, ol);
        outn += ol;
        *stopped |= st;
    }
    const char *o;
    size_t ol;
    glm_stop_flush(&s, &o, &ol);
    ck_assert(!*stopped || ol == 0);
    memcpy(out + outn, o, ol);
    glm_stop_free(&s);
    return out;
}

START_TEST(cut_everywhere)
{
    const char *stops[] = {"STOP", "ab\xc3\xa9", "xyz"};
    static const struct {
        const char *text, *want;
        int stopped;
    } cases[] = {
        {"hello STOP world", "hello ", 1},
        {"hello STO", "hello STO", 0},           /* a prefix at the end is released by flush */
        {"aSTSTOPb", "aST", 1},
        {"xxab\xc3\xa9yy", "xx", 1},
        {"ab\xc3\xa8 xyz STOP", "ab\xc3\xa8 ", 1}, /* earliest stop wins */
        {"no stops here", "no stops here", 0},
        {"STOP", "", 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t step = 1; step <= strlen(cases[c].text); step++) {
            int stopped;
            char *out = run(cases[c].text, stops, 3, step, &stopped);
            ck_assert_msg(strcmp(out, cases[c].want) == 0, "case %zu step %zu: got \"%s\"", c, step, out);
            ck_assert_int_eq(stopped, cases[c].stopped);
            free(out);
        }
    }
}
END_TEST

START_TEST(holds_back_only_prefixes)
{
    const char *stops[] = {"END"};
    size_t lens[] = {3};
    glm_stop s;
    glm_stop_init(&s, stops, lens, 1);
    const char *o;
    size_t ol;
    ck_assert_int_eq(glm_stop_push(&s, "abcE", 4, &o, &ol), 0);
    ck_assert_str_eq(o, "abc");
    ck_assert_int_eq(glm_stop_push(&s, "N", 1, &o, &ol), 0);
    ck_assert_uint_eq(ol, 0);
    ck_assert_int_eq(glm_stop_push(&s, "x", 1, &o, &ol), 0);
    ck_assert_str_eq(o, "ENx");
    glm_stop_free(&s);

    glm_stop none;
    glm_stop_init(&none, NULL, NULL, 0);
    ck_assert_int_eq(glm_stop_push(&none, "E", 1, &o, &ol), 0);
    ck_assert_str_eq(o, "E");
    glm_stop_flush(&none, &o, &ol);
    ck_assert_uint_eq(ol, 0);
    glm_stop_free(&none);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stop_strings");
    TCase *tc = tcase_create("stop_strings");
    tcase_add_test(tc, cut_everywhere);
    tcase_add_test(tc, holds_back_only_prefixes);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
