/*
 * test_grammar.c - the GBNF grammar engine (engine/constrain/grammar_*.c): parse errors
 * with line numbers, the notation (literals, escapes, classes, negation, '.',
 * groups, repetition bounds), a JSON grammar and one written the way
 * llama.cpp's json-schema-to-grammar writes them, accepting and rejecting
 * documents, UTF-8 characters split across tokens, the token mask on a
 * hand-made vocabulary (exact sets) and against brute force (clone the
 * matcher, accept the token's bytes) on random tokens at many states, also
 * with a tiny workspace budget (the scratch state rebuilt mid-call),
 * can_end / is_dead_end, hostile grammars and inputs (errors, never a crash
 * or a blow-up), masks from several threads on one grammar and trie, and the
 * 154880-token vocabulary of models/tokenizer-large when present
 * (GLM_MODELS overrides "models"; build/glm-bench-grammar measures the cost).
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "constrain/grammar.h"
#include "text/tokenizer.h"
#include "core/util.h"
#include "testutil.h"

static const char *JSON_GBNF =
    "# JSON (RFC 8259), whitespace between tokens\n"
    "root   ::= ws value ws\n"
    "value  ::= object | array | string | number | \"true\" | \"false\" | \"null\"\n"
    "object ::= \"{\" ws ( member ( ws \",\" ws member )* )? ws \"}\"\n"
    "member ::= string ws \":\" ws value\n"
    "array  ::= \"[\" ws ( value ( ws \",\" ws value )* )? ws \"]\"\n"
    "string ::= \"\\\"\" char* \"\\\"\"\n"
    "char   ::= [^\"\\\\\\x00-\\x1F] |\n"
    "           \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} )   # escapes\n"
    "number ::= \"-\"? ( \"0\" | [1-9] [0-9]* ) ( \".\" [0-9]+ )? ( [eE] [-+]? [0-9]+ )?\n"
    "ws     ::= [ \\t\\n\\r]*\n";

/* An object whose only key must be "name" (few tokens fit after "{"). */
static const char *NAME_GBNF =
    "root   ::= \"{\" ws \"\\\"name\\\"\" ws \":\" ws string ws \"}\"\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1F] | \"\\\\\" [\"\\\\/bfnrt] )* \"\\\"\"\n"
    "ws     ::= [ \\t\\n]*\n";

static glm_grammar *parse_ok(const char *text)
{
    char err[GLM_ERRLEN] = "";
    glm_grammar *g = glm_grammar_parse(text, strlen(text), NULL, err, sizeof err);
    ck_assert_msg(g != NULL, "parse failed: %s\n%s", err, text);
    return g;
}

static int matches(const glm_grammar *g, const char *s)
{
    return glm_grammar_matches(g, s, strlen(s));
}

/* --- parse errors ----------------------------------------------------------- */

START_TEST(parse_errors)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"", "no rule named 'root'"},
        {"   # only a comment\n\n", "no rule named 'root'"},
        {"foo ::= \"a\"", "line 1: no rule named 'root'"},
        {"root ::= \"abc", "line 1: unterminated literal"},
        {"root ::= \"a\"\n\nx ::= [abc", "line 3: unterminated character class"},
        {"root ::= foo", "line 1: undefined rule 'foo'"},
        {"root ::= a\na ::= \"x\" b\n", "line 2: undefined rule 'b'"},
        {"root ::= \"x\"\n\nexpr ::= expr \"+\" term | term\nterm ::= [0-9]", "line 3: left recursion"},
        {"root ::= a\na ::= root \"x\" | \"y\"", "left recursion"},
        {"root ::= n root \"x\" | \"y\"\nn ::= \"\" | \"z\"", "line 1: left recursion"},
        {"root ::= (\"a\" | root) \"b\"", "rule 'root' can reach itself"},
        {"root ::= x\nx ::= x? \"a\"", "left recursion"},
        {"root \"a\"", "line 1: expected '::=' after rule name 'root'"},
        {"root ::= \"a\"\n::= \"b\"", "line 2: expected a rule name"},
        {"root ::= ( \"a\" ", "line 1: expected ')'"},
        {"root ::= ( \"a\"\n\n", "line 3: expected ')' to close the group of line 1"},
        {"root ::= \"a\" )", "line 1: unexpected ')'"},
        {"root ::= \"a\"{3,1}", "maximum below its minimum"},
        {"root ::= \"a\"{10001}", "repetition count above 10000"},
        {"root ::= \"a\"{2,99999999999999999999}", "repetition count above 10000"},
        {"root ::= \"a\"{", "expected a number"},
        {"root ::= \"a\"{2", "expected ',' or '}'"},
        {"root ::= \"a\"{2,3", "expected '}'"},
        {"root ::= *", "nothing before it to repeat"},
        {"root ::= \"\"+", "nothing before it to repeat"},
        {"root ::= \"a\" | +", "nothing before it to repeat"},
        {"root ::= \"\\q\"", "unknown escape"},
        {"root ::= \"\\x4\"", "\\x needs 2 hex digits"},
        {"root ::= \"\\u12G4\"", "\\u needs 4 hex digits"},
        {"root ::= \"\\U00110000\"", "past U+10FFFF"},
        {"root ::= \"\\", "escape at end of text"},
        {"root ::= [z-a]", "reversed"},
        {"root ::= \"a\"\nroot ::= \"b\"", "line 2: rule 'root' is defined twice (first on line 1)"},
        {"root ::= \"\xff\"", "invalid UTF-8"},
        {"root ::= \"\xc3\"", "invalid UTF-8"},
        {"root ::= \"\xed\xa0\x80\"", "invalid UTF-8"},    /* an encoded surrogate */
        {"root ::= \"\xc0\xaf\"", "invalid UTF-8"},        /* overlong */
        {"root ::= \"a\"\n\n  \"b\"", "line 3: expected a rule name"},
        {"root ::= \"a\"\n| \"b\"", "line 2: expected a rule name"},
        {"root ::= \"a\" @", "line 1: unexpected '@'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[GLM_ERRLEN] = "";
        glm_grammar *g = glm_grammar_parse(cases[i].text, strlen(cases[i].text), NULL, err, sizeof err);
        ck_assert_msg(g == NULL, "case %zu parsed: %s", i, cases[i].text);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "case %zu: got '%s', want '%s'", i, err,
                      cases[i].want);
        ck_assert_msg(strncmp(err, "grammar line ", 13) == 0, "case %zu: no line number: %s", i, err);
        ck_assert_ptr_null(strchr(err, '\n'));
    }
    /* NUL bytes, with their line */
    char err[GLM_ERRLEN] = "";
    ck_assert_ptr_null(glm_grammar_parse("root ::= \"a\"\n\"\0\"", 16, NULL, err, sizeof err));
    ck_assert_msg(strstr(err, "line 2: NUL byte") != NULL, "%s", err);
    /* a start rule other than root */
    glm_grammar *g = glm_grammar_parse("a ::= \"x\"\nb ::= \"y\"", 19, "b", err, sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    ck_assert(glm_grammar_matches(g, "y", 1));
    ck_assert(!glm_grammar_matches(g, "x", 1));
    glm_grammar_free(g);
    ck_assert_ptr_null(glm_grammar_parse("a ::= \"x\"", 9, "b", err, sizeof err));
    ck_assert_msg(strstr(err, "no rule named 'b'") != NULL, "%s", err);
    /* err may be NULL */
    ck_assert_ptr_null(glm_grammar_parse("root ::= x", 10, NULL, NULL, 0));
}
END_TEST

/* --- the notation --------------------------------------------------------------- */

START_TEST(notation)
{
    static const struct {
        const char *gbnf;
        const char *yes[6], *no[6];
    } cases[] = {
        {"root ::= \"abc\"", {"abc"}, {"", "ab", "abcd", "abd"}},
        {"root ::= \"a\" \"b\" | \"c\"", {"ab", "c"}, {"a", "b", "ac", "abc"}},
        {"root ::= \"\\n\\t\\r\\\\\\\"\\'\\[\\]\"", {"\n\t\r\\\"'[]"}, {"n"}},
        {"root ::= \"\\x41\\u00e9\\U0001F600\"", {"A\xc3\xa9\xf0\x9f\x98\x80"}, {"A", "Ae"}},
        {"root ::= \"\xc3\xa9t\xc3\xa9\"", {"\xc3\xa9t\xc3\xa9"}, {"ete"}},
        {"root ::= [a-cx]+", {"a", "abcx", "xxx"}, {"", "d", "abd"}},
        {"root ::= [^a-c]", {"d", "\xc3\xa9", "\n", "\xf0\x9f\x98\x80"}, {"a", "b", "c", "dd"}},
        {"root ::= [^\\]\\\\]*", {"", "ab[", "x-y"}, {"]", "\\"}},
        {"root ::= [\\x00-\\x1F]", {"\x01", "\x1f"}, {" ", "a"}},
        {"root ::= [-a]+ [a-]", {"--a", "a-"}, {"b"}},
        {"root ::= [\\u4e00-\\u9fff]{2}", {"\xe4\xb8\xad\xe6\x96\x87"}, {"\xe4\xb8\xad", "ab"}},
        {"root ::= .", {"a", "\xc3\xa9", "\xf0\x9f\x98\x80", "\n"}, {"", "ab"}},
        {"root ::= . . .", {"abc", "\xc3\xa9\xc3\xa9\xc3\xa9"}, {"ab"}},
        {"root ::= \"a\"*", {"", "a", "aaaa"}, {"b"}},
        {"root ::= \"ab\"+", {"ab", "abab"}, {"", "a", "aba"}},
        {"root ::= \"a\"? \"b\"", {"b", "ab"}, {"aab", "a"}},
        {"root ::= \"a\"{3}", {"aaa"}, {"aa", "aaaa"}},
        {"root ::= \"a\"{2,4}", {"aa", "aaa", "aaaa"}, {"a", "aaaaa"}},
        {"root ::= \"a\"{2,}", {"aa", "aaaaaaa"}, {"a", ""}},
        {"root ::= \"a\"{0,2}", {"", "a", "aa"}, {"aaa"}},
        {"root ::= \"a\"{0}", {""}, {"a"}},
        {"root ::= \"a\"{ 1 , 2 }", {"a", "aa"}, {""}},
        {"root ::= (\"a\" | \"bc\")+ \"d\"", {"ad", "bcad", "abcbcd"}, {"d", "bd"}},
        {"root ::= (\"x\" (\"y\" | \"z\")*)?", {"", "x", "xyzy"}, {"y"}},
        {"root ::= \"a\"*?", {"", "aa"}, {"b"}},
        {"root ::= ( \"a\"\n  | \"b\"   # a comment\n  )\n", {"a", "b"}, {"ab"}},
        {"root ::=\n  \"a\" |\n  \"b\"\n", {"a", "b"}, {""}},
        {"root ::= a-b_c\na-b_c ::= \"1\" x9\nx9 ::= \"2\"\r\n", {"12"}, {"1"}},
        {"# c\n\nroot ::= \"a\" # c\n# c\n\n", {"a"}, {""}},
        {"root ::= ", {""}, {"a"}},
        {"root ::= \"\" | \"a\"", {"", "a"}, {"aa"}},
        {"root ::= x \"x\" | y\nx ::= \"\" \ny ::= x x \"y\"", {"x", "y"}, {""}},
        {"root ::= [] | \"a\"", {"a"}, {"", "b"}},
        {"root ::= [^]", {"a", "\xc3\xa9"}, {""}},
        {"root ::= \"(\" root \")\" | \"\"", {"", "()", "((()))"}, {"(", "())"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        glm_grammar *g = parse_ok(cases[i].gbnf);
        for (int k = 0; k < 6 && cases[i].yes[k]; k++)
            ck_assert_msg(matches(g, cases[i].yes[k]), "case %zu: should match '%s'", i, cases[i].yes[k]);
        for (int k = 0; k < 6 && cases[i].no[k]; k++)
            ck_assert_msg(!matches(g, cases[i].no[k]), "case %zu: should not match '%s'", i, cases[i].no[k]);
        glm_grammar_free(g);
    }
    /* a NUL code point in the grammar (escaped) against a NUL byte */
    glm_grammar *g = parse_ok("root ::= \"a\\x00b\"");
    ck_assert(glm_grammar_matches(g, "a\0b", 3));
    ck_assert(!glm_grammar_matches(g, "a", 1));
    glm_grammar_free(g);
}
END_TEST

/* --- JSON ------------------------------------------------------------------------- */

START_TEST(json)
{
    glm_grammar *g = parse_ok(JSON_GBNF);
    static const char *yes[] = {
        "{}", "[]", "0", "-0", "12.5e-3", "1E+9", "true", "false", "null", "\"\"",
        "\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00e9\"", "  {\"a\": [1, 2, {\"b\": null}], \"c\": \"x\"}  ",
        "[[[[[]]]]]", "{\"k\":\"\xe4\xb8\xad\xf0\x9f\x98\x80\"}", "\n[\n\t1 ,\r\n 2\n]\n", "-12.0e10",
        "[\"\\uABCD\", \"\\uabcd\"]",
    };
    static const char *no[] = {
        "", "{", "}", "[1,]", "[,1]", "01", "1.", ".5", "-", "+1", "1e", "tru", "True", "nul",
        "\"abc", "\"a\\x\"", "\"\\u12\"", "\"\\u12G4\"", "{\"a\"}", "{\"a\":}", "{a:1}",
        "\"tab\there\"", "[1 2]", "{\"a\":1,}", "\"\x01\"", "[] []", "\"\xff\"",
        "\"\xc3\"", "\"\xed\xa0\x80\"", "\"\xc0\xaf\"", "\"\xf4\x90\x80\x80\"",
    };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        ck_assert_msg(matches(g, yes[i]), "should match: %s", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        ck_assert_msg(!matches(g, no[i]), "should not match: %s", no[i]);

    /* byte by byte: state only changes on accepted bytes */
    glm_grammar_matcher *m = glm_grammar_matcher_new(g);
    const char *doc = "{\"a\": [true, -1.5e3]}";
    for (const char *p = doc; *p; p++) {
        char two[2] = {*p, 1};
        ck_assert(!glm_grammar_matcher_accept(m, "\x01", 1));
        ck_assert(!glm_grammar_matcher_accept(m, two, 2)); /* all or nothing */
        ck_assert_msg(glm_grammar_matcher_accept(m, p, 1), "at '%s'", p);
        ck_assert(glm_grammar_matcher_can_end(m) == (p[1] == 0));
    }
    ck_assert(glm_grammar_matcher_accept(m, " \n", 2));
    ck_assert(glm_grammar_matcher_can_end(m));
    ck_assert(!glm_grammar_matcher_accept(m, "1", 1));
    ck_assert(glm_grammar_matcher_accept(m, "", 0));
    glm_grammar_matcher_free(m);

    /* a long document: 3000 nested arrays and a long string */
    size_t n = 0;
    char *big = malloc(200000);
    for (int i = 0; i < 3000; i++)
        big[n++] = '[';
    big[n++] = '"';
    for (int i = 0; i < 50000; i++)
        big[n++] = "ab\xc3\xa9 "[i % 5];
    big[n++] = '"';
    for (int i = 0; i < 3000; i++)
        big[n++] = ']';
    ck_assert(glm_grammar_matches(g, big, n));
    ck_assert(!glm_grammar_matches(g, big, n - 1));
    free(big);
    glm_grammar_free(g);
}
END_TEST

/* What llama.cpp's json-schema-to-grammar writes for
 * {"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name"]} */
START_TEST(schema_style)
{
    glm_grammar *g = parse_ok(
        "age-kv ::= \"\\\"age\\\"\" space \":\" space integer\n"
        "char ::= [^\"\\\\\\x7F\\x00-\\x1F] | [\\\\] ([\"\\\\bfnrt] | \"u\" [0-9a-fA-F]{4})\n"
        "integer ::= (\"-\"? integral-part) space\n"
        "integral-part ::= [0] | [1-9] [0-9]{0,15}\n"
        "name-kv ::= \"\\\"name\\\"\" space \":\" space string\n"
        "root ::= \"{\" space name-kv ( \",\" space ( age-kv ) )? \"}\" space\n"
        "space ::= | \" \" | \"\\n\"{1,2} [ \\t]{0,20}\n"
        "string ::= \"\\\"\" char* \"\\\"\" space\n");
    static const char *yes[] = {
        "{\"name\":\"x\"}", "{ \"name\": \"a\\\"b\\u00e9\" , \"age\": -12 }",
        "{\n\t\"name\":\"\",\"age\":0}\n  ", "{\"name\":\"\xe4\xb8\xad\",\"age\":1234567890123456}",
    };
    static const char *no[] = {
        "{}", "{\"age\":1,\"name\":\"x\"}", "{\"name\":\"x\",\"age\":01}", "{\"name\":\"x\x7f\"}",
        "{\"name\":\"x\",\"age\":12345678901234567}", "{  \"name\":\"x\"}", "{\"name\":\"x\"} \n",
    };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        ck_assert_msg(matches(g, yes[i]), "should match: %s", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        ck_assert_msg(!matches(g, no[i]), "should not match: %s", no[i]);
    glm_grammar_free(g);
}
END_TEST

/* --- UTF-8 across tokens ------------------------------------------------------------- */

START_TEST(utf8_split)
{
    glm_grammar *g = parse_ok("root ::= \"\xc3\xa9\" [\\u03b1-\\u03c9]+ \"\\U0001F600\"");
    const char *s = "\xc3\xa9\xce\xb1\xcf\x89\xf0\x9f\x98\x80"; /* é α ω 😀 */
    size_t n = strlen(s);
    /* every split into two tokens, and byte by byte */
    for (size_t cut = 0; cut <= n; cut++) {
        glm_grammar_matcher *m = glm_grammar_matcher_new(g);
        ck_assert(glm_grammar_matcher_accept(m, s, cut));
        ck_assert(glm_grammar_matcher_is_dead_end(m) == (cut == n));
        ck_assert(glm_grammar_matcher_accept(m, s + cut, n - cut));
        ck_assert(glm_grammar_matcher_can_end(m));
        glm_grammar_matcher_free(m);
    }
    glm_grammar_matcher *m = glm_grammar_matcher_new(g);
    ck_assert(glm_grammar_matcher_accept(m, "\xc3", 1));
    ck_assert(!glm_grammar_matcher_can_end(m));           /* half a character is not a sentence */
    ck_assert(!glm_grammar_matcher_accept(m, "\xa8", 1)); /* è: not the literal */
    ck_assert(!glm_grammar_matcher_accept(m, "a", 1));    /* not a continuation byte */
    ck_assert(glm_grammar_matcher_accept(m, "\xa9", 1));
    ck_assert(!glm_grammar_matcher_accept(m, "\xce\xb0", 2));  /* U+03B0, below alpha */
    ck_assert(!glm_grammar_matcher_accept(m, "\xcf\x8a", 2));  /* U+03CA, above omega */
    ck_assert(!glm_grammar_matcher_accept(m, "\xcd", 1));      /* U+0340..037F: none in range */
    ck_assert(glm_grammar_matcher_accept(m, "\xce", 1));
    ck_assert(!glm_grammar_matcher_accept(m, "\x80", 1));      /* U+0380 */
    ck_assert(glm_grammar_matcher_accept(m, "\xb1", 1));
    ck_assert(glm_grammar_matcher_accept(m, "\xf0\x9f", 2));   /* the emoji, half */
    ck_assert(!glm_grammar_matcher_accept(m, "\x99", 1));      /* U+1F640.. not it */
    ck_assert(glm_grammar_matcher_accept(m, "\x98", 1));
    ck_assert(!glm_grammar_matcher_can_end(m));
    ck_assert(glm_grammar_matcher_accept(m, "\x80", 1));
    ck_assert(glm_grammar_matcher_can_end(m));
    glm_grammar_matcher_free(m);
    glm_grammar_free(g);

    /* invalid UTF-8 is refused whatever the grammar allows */
    g = parse_ok("root ::= .*");
    static const char *bad[] = {
        "\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xed\xa0\x80",
        "\xed\xbf\xbf", "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
        "\xf8", "\xff", "\xc3\xc3", "\xe4\xb8\x61" /* then an a */,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m = glm_grammar_matcher_new(g);
        ck_assert_msg(!glm_grammar_matcher_accept(m, bad[i], strlen(bad[i])), "accepted bad %zu", i);
        glm_grammar_matcher_free(m);
    }
    static const char *good[] = {"\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf", "\xee\x80\x80",
                                 "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "\x7f"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg(matches(g, good[i]), "refused good %zu", i);
    glm_grammar_free(g);

    /* a negated class never takes a surrogate, a high code point does */
    g = parse_ok("root ::= [^a]");
    ck_assert(!matches(g, "\xed\xa0\x80"));
    ck_assert(matches(g, "\xf4\x8f\xbf\xbf"));
    glm_grammar_free(g);
}
END_TEST

/* --- mask ------------------------------------------------------------------------------- */

typedef struct {
    char **tok;
    size_t *len;
    int n, cap;
} vocab;

static void vocab_add(vocab *v, const char *s, size_t n)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 64;
        v->tok = realloc(v->tok, (size_t)v->cap * sizeof *v->tok);
        v->len = realloc(v->len, (size_t)v->cap * sizeof *v->len);
    }
    v->tok[v->n] = malloc(n + 1);
    memcpy(v->tok[v->n], s, n);
    v->tok[v->n][n] = 0;
    v->len[v->n++] = n;
}

static void vocab_free(vocab *v)
{
    for (int i = 0; i < v->n; i++)
        free(v->tok[i]);
    free(v->tok);
    free(v->len);
}

static glm_token_trie *vocab_trie(const vocab *v)
{
    return glm_token_trie_new((const char *const *)v->tok, v->len, v->n);
}

static int bit(const uint32_t *a, int i)
{
    return (int)((a[i >> 5] >> (i & 31)) & 1);
}

/* Checks the mask of m against accepting every token on a clone. */
static void check_brute(const glm_grammar_matcher *m, const glm_token_trie *t, const vocab *v, const char *what)
{
    uint32_t *allowed = malloc(((size_t)v->n + 31) / 32 * 4 + 4);
    int count = glm_grammar_matcher_mask(m, t, allowed);
    int want_count = 0;
    for (int i = 0; i < v->n; i++) {
        int want = 0;
        if (v->len[i]) {
            glm_grammar_matcher *c = glm_grammar_matcher_clone(m);
            want = glm_grammar_matcher_accept(c, v->tok[i], v->len[i]);
            glm_grammar_matcher_free(c);
        }
        want_count += want;
        ck_assert_msg(bit(allowed, i) == want, "%s: token %d (%zu bytes '%s'): mask %d, accept %d", what, i,
                      v->len[i], v->tok[i], bit(allowed, i), want);
    }
    ck_assert_int_eq(count, want_count);
    for (int i = v->n; i < (v->n + 31) / 32 * 32; i++)
        ck_assert(!bit(allowed, i));
    free(allowed);
}

START_TEST(mask_small)
{
    glm_grammar *g = parse_ok("root ::= \"ab\" [cd]* \"\xc3\xa9\" | \"x\"");
    vocab v = {0};
    const char *toks[] = {"a", "b", "ab", "abc", "abcd", "abe", "x", "xy", "c", "\xc3", "\xa9", "\xc3\xa9",
                          "", "ab", "d\xc3", "cd\xc3\xa9", "\xc3\xa9x", "abdc\xc3"};
    for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++)
        vocab_add(&v, toks[i], strlen(toks[i]));
    glm_token_trie *t = vocab_trie(&v);
    ck_assert_int_eq(glm_token_trie_vocab(t), v.n);
    uint32_t allowed[1];
    glm_grammar_matcher *m = glm_grammar_matcher_new(g);

    /* start: a, ab, abc, abcd, x, ab (duplicate id 13), abdc\xc3 */
    ck_assert_int_eq(glm_grammar_matcher_mask(m, t, allowed), 7);
    ck_assert_uint_eq(allowed[0], 1u << 0 | 1u << 2 | 1u << 3 | 1u << 4 | 1u << 6 | 1u << 13 | 1u << 17);
    check_brute(m, t, &v, "start");

    ck_assert(glm_grammar_matcher_accept(m, "ab", 2));
    /* after "ab": c, \xc3, \xc3\xa9, d\xc3, cd\xc3\xa9 */
    ck_assert_int_eq(glm_grammar_matcher_mask(m, t, allowed), 5);
    ck_assert_uint_eq(allowed[0], 1u << 8 | 1u << 9 | 1u << 11 | 1u << 14 | 1u << 15);
    check_brute(m, t, &v, "after ab");

    ck_assert(glm_grammar_matcher_accept(m, "d\xc3", 2));
    /* mid-character: only the continuation byte */
    ck_assert_int_eq(glm_grammar_matcher_mask(m, t, allowed), 1);
    ck_assert_uint_eq(allowed[0], 1u << 10);
    ck_assert(glm_grammar_matcher_accept(m, "\xa9", 1));
    ck_assert_int_eq(glm_grammar_matcher_mask(m, t, allowed), 0);
    ck_assert_uint_eq(allowed[0], 0);
    ck_assert(glm_grammar_matcher_can_end(m));
    ck_assert(glm_grammar_matcher_is_dead_end(m));
    glm_grammar_matcher_free(m);
    glm_token_trie_free(t);

    /* an empty vocabulary, and one of only empty tokens */
    glm_token_trie *e = glm_token_trie_new(NULL, NULL, 0);
    m = glm_grammar_matcher_new(g);
    ck_assert_int_eq(glm_grammar_matcher_mask(m, e, allowed), 0);
    glm_token_trie_free(e);
    const char *z[3] = {"", NULL, ""};
    size_t zl[3] = {0, 0, 0};
    e = glm_token_trie_new(z, zl, 3);
    allowed[0] = ~0u;
    ck_assert_int_eq(glm_grammar_matcher_mask(m, e, allowed), 0);
    ck_assert_uint_eq(allowed[0], 0);
    glm_token_trie_free(e);
    glm_grammar_matcher_free(m);
    vocab_free(&v);
    glm_grammar_free(g);
}
END_TEST

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random tokens over JSON-ish pieces, plus every single byte. */
static void random_vocab(vocab *v, int n, uint64_t seed)
{
    static const char *pieces[] = {
        "{", "}", "[", "]", "\"", ",", ":", " ", "\n", "\\", "\\\"", "\\n", "\\u", "a", "b", "e", "E",
        "0", "1", "9", "-", "+", ".", "true", "fa", "lse", "null", "nu", "name", "\xc3\xa9", "\xc3",
        "\xa9", "\xe4\xb8\xad", "\xe4", "\xb8", "\xad", "\xf0\x9f\x98\x80", "\xf0\x9f", "\x98\x80",
        "\xff", "\xc0", "\x01", "\t", "x", "A", "\":", "\",", "},", "\": \"", "  ",
    };
    size_t np = sizeof pieces / sizeof pieces[0];
    for (int c = 0; c < 256; c++) {
        char b = (char)c;
        vocab_add(v, &b, 1);
    }
    vocab_add(v, "", 0);
    for (int i = 0; i < n; i++) {
        char buf[64];
        size_t len = 0;
        int k = 1 + (int)(rng(&seed) % 5);
        for (int j = 0; j < k; j++) {
            const char *p = pieces[rng(&seed) % np];
            size_t pl = strlen(p);
            memcpy(buf + len, p, pl);
            len += pl;
        }
        vocab_add(v, buf, len);
    }
}

/* Mask against brute force at every prefix of documents of several grammars. */
static void brute_force_cases(int n_tokens)
{
    vocab v = {0};
    random_vocab(&v, n_tokens, 0x9E3779B97F4A7C15ull);
    glm_token_trie *t = vocab_trie(&v);
    static const struct {
        const char *gbnf, *doc;
    } cases[] = {
        {NULL, "{\"name\": [1, -2.5e+3, true, null, \"a\\\"\xc3\xa9\xe4\xb8\xad\\u00e9\"], \"b\": {}}"},
        {NULL, " [ \"x\" , {\"\": false}, 0 ] "},
        {"root ::= (\"ab\" | \"a\" \"b\"? | [a-z] \"\xc3\xa9\")* \"!\"?", "abaaab\xc3\xa9" "ab!"},
        {"root ::= [^\"]{0,5} \"\\\"\" .* ", "a\xc3\xa9\xe4\xb8\xad\"\xf0\x9f\x98\x80x"},
        {"root ::= \"{\" ( \"\\\"name\\\"\" | \"\\\"nu\" [a-z]* \"\\\"\" ) \":\" \"1\"{1,3} \"}\"", "{\"nul\":11}"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        glm_grammar *g = parse_ok(cases[c].gbnf ? cases[c].gbnf : JSON_GBNF);
        const char *doc = cases[c].doc;
        size_t n = strlen(doc);
        ck_assert_msg(glm_grammar_matches(g, doc, n), "case %zu: doc does not match", c);
        glm_grammar_matcher *m = glm_grammar_matcher_new(g);
        for (size_t i = 0; i <= n; i++) {
            char what[64];
            snprintf(what, sizeof what, "case %zu after %zu bytes", c, i);
            check_brute(m, t, &v, what);
            if (i < n)
                ck_assert(glm_grammar_matcher_accept(m, doc + i, 1));
        }
        glm_grammar_matcher_free(m);
        glm_grammar_free(g);
    }
    glm_token_trie_free(t);
    vocab_free(&v);
}

START_TEST(mask_brute_force)
{
    brute_force_cases(600);
}
END_TEST

/* The same with a tiny workspace budget, so that the scratch state is rebuilt
 * many times inside one mask or accept call. */
START_TEST(small_budget)
{
    glm_grammar_set_work_budget(2048);
    brute_force_cases(300);
    glm_grammar *g = parse_ok(JSON_GBNF);
    size_t n = 0;
    char *doc = malloc(100000);
    for (int i = 0; i < 500; i++)
        n += (size_t)sprintf(doc + n, "{\"k%d\": [%d, \"\xc3\xa9\\n\", {\"x\": null}, ", i, i);
    doc[n++] = '1';
    for (int i = 0; i < 500; i++)
        n += (size_t)sprintf(doc + n, "]}");
    ck_assert(glm_grammar_matches(g, doc, n));
    ck_assert(!glm_grammar_matches(g, doc, n - 1));
    glm_grammar_free(g);
    free(doc);
    glm_grammar_set_work_budget(0);
}
END_TEST

/* --- can_end / is_dead_end ------------------------------------------------------------------ */

START_TEST(end_states)
{
    glm_grammar *g = parse_ok("root ::= \"a\" \"b\"? | \"c\" [^\\x00-\\U0010FFFF]");
    glm_grammar_matcher *m = glm_grammar_matcher_new(g);
    ck_assert(!glm_grammar_matcher_can_end(m));
    ck_assert(!glm_grammar_matcher_is_dead_end(m));
    glm_grammar_matcher *c = glm_grammar_matcher_clone(m);
    ck_assert(glm_grammar_matcher_accept(m, "a", 1));
    ck_assert(glm_grammar_matcher_can_end(m));
    ck_assert(!glm_grammar_matcher_is_dead_end(m));
    ck_assert(glm_grammar_matcher_accept(m, "b", 1));
    ck_assert(glm_grammar_matcher_can_end(m));
    ck_assert(glm_grammar_matcher_is_dead_end(m));
    /* "c" then an empty class: nothing can follow and the sentence is not complete */
    ck_assert(glm_grammar_matcher_accept(c, "c", 1));
    ck_assert(!glm_grammar_matcher_can_end(c));
    ck_assert(glm_grammar_matcher_is_dead_end(c));
    glm_grammar_matcher_free(m);
    glm_grammar_matcher_free(c);
    glm_grammar_free(g);

    g = parse_ok("root ::= \"\"");
    m = glm_grammar_matcher_new(g);
    ck_assert(glm_grammar_matcher_can_end(m));
    ck_assert(glm_grammar_matcher_is_dead_end(m));
    ck_assert(!glm_grammar_matcher_accept(m, "a", 1));
    glm_grammar_matcher_free(m);
    glm_grammar_free(g);

    /* a partial character is neither an end nor a dead end */
    g = parse_ok("root ::= \"\xc3\xa9\"");
    m = glm_grammar_matcher_new(g);
    ck_assert(glm_grammar_matcher_accept(m, "\xc3", 1));
    ck_assert(!glm_grammar_matcher_can_end(m));
    ck_assert(!glm_grammar_matcher_is_dead_end(m));
    glm_grammar_matcher_free(m);
    glm_grammar_free(g);
}
END_TEST

/* --- hostile input --------------------------------------------------------------------------- */

static char *repeat_str(const char *a, int n, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la * (size_t)n + lb + 1);
    for (int i = 0; i < n; i++)
        memcpy(s + la * (size_t)i, a, la);
    memcpy(s + la * (size_t)n, b, lb + 1);
    return s;
}

START_TEST(hostile)
{
    char err[GLM_ERRLEN];
    static const char *bad[] = {
        "root ::= \"a\"{10000}{10000}",
        "root ::= [a-z]{10000}{0,10000}",
        "root ::= \"ab\"{5000}{1000}",
        "root ::= [",
        "root ::= [^",
        "root ::= [a-",
        "root ::= \"",
        "root ::= (",
        "root ::= {1}",
        "root ::= \"a\"{1,",
        "root",
        "::=",
        "root ::= \"a\" | ( \"b\" | ( \"c\" ",
        "\xef\xbb\xbfroot ::= \"a\"", /* a byte order mark is not a rule name */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        ck_assert_msg(!glm_grammar_parse(bad[i], strlen(bad[i]), NULL, err, sizeof err), "case %zu parsed", i);
        ck_assert_msg(strncmp(err, "grammar line ", 13) == 0, "case %zu: %s", i, err);
    }
    /* big but within the limits: parse and match */
    static const struct {
        const char *gbnf;
        char c;
        int n;
    } big_ok[] = {
        {"root ::= (\"abcdefghij\"{10000}){0,1000}", 0, 0},
        {"root ::= x{0,10000}\nx ::= \"0123456789\"{1000}", 0, 0},
        {"root ::= [a-z]{0,10000} \"!\"", 'q', 10000},
    };
    for (size_t i = 0; i < sizeof big_ok / sizeof big_ok[0]; i++) {
        glm_grammar *bg = parse_ok(big_ok[i].gbnf);
        ck_assert(big_ok[i].n || matches(bg, ""));
        if (big_ok[i].n) {
            char *q = malloc((size_t)big_ok[i].n + 2);
            memset(q, big_ok[i].c, (size_t)big_ok[i].n);
            q[big_ok[i].n] = '!';
            ck_assert(glm_grammar_matches(bg, q, (size_t)big_ok[i].n + 1));
            q[big_ok[i].n] = big_ok[i].c;
            ck_assert(!glm_grammar_matches(bg, q, (size_t)big_ok[i].n + 1));
            free(q);
        }
        glm_grammar_free(bg);
    }
    /* deep nesting */
    char *deep = repeat_str("(", 5000, "\"a\"");
    char *text = malloc(strlen(deep) + 32);
    sprintf(text, "root ::= %s", deep);
    ck_assert(!glm_grammar_parse(text, strlen(text), NULL, err, sizeof err));
    ck_assert_msg(strstr(err, "nested more than") != NULL, "%s", err);
    free(deep);
    free(text);
    deep = repeat_str("(", GLM_GRAMMAR_MAX_NEST, "\"a\"");
    char *close = repeat_str(")", GLM_GRAMMAR_MAX_NEST, "");
    text = malloc(strlen(deep) + strlen(close) + 32);
    sprintf(text, "root ::= %s%s", deep, close);
    glm_grammar *g = glm_grammar_parse(text, strlen(text), NULL, err, sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    ck_assert(matches(g, "a"));
    glm_grammar_free(g);
    free(deep);
    free(close);
    free(text);
    /* too many alternatives for the stack limit */
    char *alts = repeat_str("\"a\" | ", GLM_GRAMMAR_MAX_STACKS + 10, "\"b\"");
    text = malloc(strlen(alts) + 32);
    sprintf(text, "root ::= %s", alts);
    ck_assert(!glm_grammar_parse(text, strlen(text), NULL, err, sizeof err));
    ck_assert_msg(strstr(err, "parse stacks") != NULL, "%s", err);
    free(alts);
    free(text);
    /* text over the size limit */
    size_t big = GLM_GRAMMAR_MAX_TEXT + 1;
    text = malloc(big);
    memset(text, ' ', big);
    ck_assert(!glm_grammar_parse(text, big, NULL, err, sizeof err));
    ck_assert_msg(strstr(err, "more than") != NULL, "%s", err);
    free(text);
    /* the largest repetition parses and works */
    g = parse_ok("root ::= \"a\"{0,10000} \"b\"{10000}");
    char *s = repeat_str("a", 10000, "");
    char *s2 = repeat_str("b", 10000, "");
    glm_grammar_matcher *m = glm_grammar_matcher_new(g);
    ck_assert(glm_grammar_matcher_accept(m, s, 10000));
    ck_assert(!glm_grammar_matcher_accept(m, "a", 1));
    ck_assert(glm_grammar_matcher_accept(m, s2, 9999));
    ck_assert(!glm_grammar_matcher_can_end(m));
    ck_assert(glm_grammar_matcher_accept(m, "b", 1));
    ck_assert(glm_grammar_matcher_can_end(m));
    glm_grammar_matcher_free(m);
    glm_grammar_free(g);
    free(s);
    free(s2);

    /* an ambiguous grammar whose stack set doubles per byte: refused, not exhausted */
    g = parse_ok("root ::= a\na ::= \"x\" a \"y\" | \"x\" a \"z\" | \"\"");
    m = glm_grammar_matcher_new(g);
    int accepted = 0;
    for (int i = 0; i < 40; i++)
        accepted += glm_grammar_matcher_accept(m, "x", 1);
    ck_assert_int_lt(accepted, 40);
    ck_assert_int_ge(accepted, 10);
    /* still usable: close what was opened */
    for (int i = 0; i < accepted; i++)
        ck_assert(glm_grammar_matcher_accept(m, "y", 1));
    ck_assert(glm_grammar_matcher_can_end(m));
    glm_grammar_matcher_free(m);
    glm_grammar_free(g);

    /* deep input nesting */
    g = parse_ok("root ::= \"[\" root \"]\" | \"\"");
    s = repeat_str("[", 100000, "");
    m = glm_grammar_matcher_new(g);
    ck_assert(glm_grammar_matcher_accept(m, s, 100000));
    vocab v = {0};
    vocab_add(&v, "[", 1);
    vocab_add(&v, "]]", 2);
    vocab_add(&v, "x", 1);
    glm_token_trie *t = vocab_trie(&v);
    uint32_t allowed[1];
    ck_assert_int_eq(glm_grammar_matcher_mask(m, t, allowed), 2);
    memset(s, ']', 100000);
    ck_assert(glm_grammar_matcher_accept(m, s, 100000));
    ck_assert(glm_grammar_matcher_can_end(m));
    glm_token_trie_free(t);
    vocab_free(&v);
    free(s);
    glm_grammar_matcher_free(m);
    glm_grammar_free(g);

    /* fuzz: rules root, a, b with random bodies (items, repetitions, alternatives,
     * now and then a stray piece), sometimes with a byte overwritten; those that
     * parse are matched and masked */
    static const char *items[] = {
        "a", "b", "root", "\"x\"", "\"\\n\"", "[a-z]", "[^\"]", ".", "( \"y\" | a )", "(b)", "\"{\"",
        "\"\\\"\"", "\"\xc3\xa9\"", "\"\xe4\xb8\xad\"", "\"\"", "[\\x00-\\x7f]", "[^a-z\xc3\xa9]", "( a | \"\" )",
        "(\n \"z\" # c\n )", "[\\u00e0-\\U0001F600]",
    };
    static const char *suffixes[] = {"", "", "", "*", "+", "?", "{2}", "{1,3}", "{0,}", "{0,2}"};
    static const char *junk[] = {"(", ")", "[", "]", "{", "}", ",", "-", "^", "\\", "\"", "\xc3\xa9", "\n", "|", "*"};
    static const char *heads[] = {"root ::= ", "a ::= ", "b ::= "};
    vocab fv = {0};
    random_vocab(&fv, 100, 7);
    glm_token_trie *ft = vocab_trie(&fv);
    uint32_t *fa = malloc(((size_t)fv.n + 31) / 32 * 4);
    uint64_t seed = 12345;
    int parsed = 0;
    for (int it = 0; it < 3000; it++) {
        char buf[1024];
        size_t n = 0;
        for (int r = 0; r < 3; r++) {
            memcpy(buf + n, heads[r], strlen(heads[r]));
            n += strlen(heads[r]);
            int k = (int)(rng(&seed) % 7);
            for (int j = 0; j < k; j++) {
                const char *parts[3] = {items[rng(&seed) % (sizeof items / sizeof items[0])],
                                        suffixes[rng(&seed) % (sizeof suffixes / sizeof suffixes[0])],
                                        rng(&seed) % 6 == 0 ? "| " : ""};
                if (rng(&seed) % 30 == 0)
                    parts[0] = junk[rng(&seed) % (sizeof junk / sizeof junk[0])];
                for (int q = 0; q < 3; q++) {
                    memcpy(buf + n, parts[q], strlen(parts[q]));
                    n += strlen(parts[q]);
                }
                buf[n++] = ' ';
            }
            buf[n++] = '\n';
        }
        if (rng(&seed) % 4 == 0)
            buf[rng(&seed) % n] = (char)(rng(&seed) & 0xFF);
        err[0] = 0;
        g = glm_grammar_parse(buf, n, NULL, err, sizeof err);
        if (!g) {
            ck_assert_msg(strncmp(err, "grammar line ", 13) == 0, "%s", err);
            continue;
        }
        parsed++;
        m = glm_grammar_matcher_new(g);
        for (int step = 0; step < 4; step++) {
            check_brute(m, ft, &fv, buf);
            int na = glm_grammar_matcher_mask(m, ft, fa);
            glm_grammar_matcher_can_end(m);
            glm_grammar_matcher_is_dead_end(m);
            if (na == 0)
                break;
            int pick = (int)(rng(&seed) % (uint64_t)na), id = 0; /* a random allowed token */
            for (; id < fv.n; id++)
                if (bit(fa, id) && pick-- == 0)
                    break;
            ck_assert(glm_grammar_matcher_accept(m, fv.tok[id], fv.len[id]));
        }
        glm_grammar_matcher_free(m);
        glm_grammar_free(g);
    }
    ck_assert_int_gt(parsed, 150);
    free(fa);
    glm_token_trie_free(ft);
    vocab_free(&fv);
}
END_TEST

/* --- threads ------------------------------------------------------------------------------------ */

typedef struct {
    const glm_grammar *g;
    const glm_token_trie *t;
    const vocab *v;
    const uint32_t *want; /* masks after each prefix of DOC */
    int ok;
} thread_arg;

static const char *THREAD_DOC = "{\"a\": [1, \"\xc3\xa9x\"]}";

static void *thread_main(void *p)
{
    thread_arg *a = p;
    size_t words = ((size_t)a->v->n + 31) / 32, n = strlen(THREAD_DOC);
    uint32_t *got = malloc(words * 4);
    a->ok = 1;
    for (int rep = 0; rep < 20; rep++) {
        glm_grammar_matcher *m = glm_grammar_matcher_new(a->g);
        for (size_t i = 0; i <= n; i++) {
            glm_grammar_matcher_mask(m, a->t, got);
            if (memcmp(got, a->want + i * words, words * 4) != 0)
                a->ok = 0;
            if (i < n && !glm_grammar_matcher_accept(m, THREAD_DOC + i, 1))
                a->ok = 0;
        }
        glm_grammar_matcher_free(m);
    }
    free(got);
    return NULL;
}

START_TEST(threads)
{
    glm_grammar *g = parse_ok(JSON_GBNF);
    vocab v = {0};
    random_vocab(&v, 2000, 99);
    glm_token_trie *t = vocab_trie(&v);
    size_t words = ((size_t)v.n + 31) / 32, n = strlen(THREAD_DOC);
    uint32_t *want = malloc((n + 1) * words * 4);
    glm_grammar_matcher *m = glm_grammar_matcher_new(g);
    for (size_t i = 0; i <= n; i++) {
        glm_grammar_matcher_mask(m, t, want + i * words);
        if (i < n)
            ck_assert(glm_grammar_matcher_accept(m, THREAD_DOC + i, 1));
    }
    glm_grammar_matcher_free(m);
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){g, t, &v, want, 0};
        pthread_create(&th[i], NULL, thread_main, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert(args[i].ok);
    }
    free(want);
    glm_token_trie_free(t);
    vocab_free(&v);
    glm_grammar_free(g);
}
END_TEST

/* --- the large vocabulary --------------------------------------------------------------------- */


START_TEST(large_vocab)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer-large/tokenizer.json", test_models_dir());
    struct stat sb;
    if (stat(path, &sb) != 0)
        TEST_SKIP("%s missing (make models)", path);
    glm_tok *tok;
    char err[GLM_ERRLEN];
    ck_assert_msg(glm_tok_load(path, &tok, err, sizeof err) == GLM_OK, "%s", err);
    int nv = glm_tok_vocab_size(tok);
    vocab v = {0};
    for (int i = 0; i < nv; i++) {
        size_t len = 0;
        const char *b = glm_tok_token_bytes(tok, i, &len);
        if (!b || glm_tok_is_special(tok, i))
            len = 0;
        vocab_add(&v, b ? b : "", len);
    }
    glm_tok_free(tok);
    glm_token_trie *t = vocab_trie(&v);
    uint32_t *allowed = malloc(((size_t)nv + 31) / 32 * 4);

    glm_grammar *json = parse_ok(JSON_GBNF), *name = parse_ok(NAME_GBNF);
    glm_grammar_matcher *a = glm_grammar_matcher_new(json), *b = glm_grammar_matcher_new(name);
    const char *pa = "{\"text\": \"Once upon a time, ";
    ck_assert(glm_grammar_matcher_accept(a, pa, strlen(pa)));
    ck_assert(glm_grammar_matcher_accept(b, "{", 1));
    int ca = glm_grammar_matcher_mask(a, t, allowed);
    int cb = glm_grammar_matcher_mask(b, t, allowed);
    /* the start of a JSON document: whitespace, literals, numbers, strings, brackets */
    glm_grammar_matcher *s = glm_grammar_matcher_new(json);
    int cs = glm_grammar_matcher_mask(s, t, allowed);
    ck_assert_int_gt(ca, nv / 2);
    ck_assert_int_gt(cb, 0);
    ck_assert_int_lt(cb, 2000);

    /* brute force on a sample of the vocabulary at each state; the mask does not
     * depend on the workspace budget */
    const glm_grammar_matcher *ms[3] = {a, b, s};
    int counts[3] = {ca, cb, cs};
    size_t words = ((size_t)nv + 31) / 32;
    uint32_t *small = malloc(words * 4);
    for (int k = 0; k < 3; k++) {
        glm_grammar_set_work_budget(4096);
        ck_assert_int_eq(glm_grammar_matcher_mask(ms[k], t, small), counts[k]);
        glm_grammar_set_work_budget(0);
        ck_assert_int_eq(glm_grammar_matcher_mask(ms[k], t, allowed), counts[k]);
        ck_assert(memcmp(small, allowed, words * 4) == 0);
        int stride = k == 1 ? 1 : 7, seen = 0;
        for (int i = 0; i < nv; i += stride) {
            int want = 0;
            if (v.len[i]) {
                glm_grammar_matcher *c = glm_grammar_matcher_clone(ms[k]);
                want = glm_grammar_matcher_accept(c, v.tok[i], v.len[i]);
                glm_grammar_matcher_free(c);
            }
            seen += want;
            ck_assert_msg(bit(allowed, i) == want, "state %d token %d '%s': mask %d accept %d", k, i, v.tok[i],
                          bit(allowed, i), want);
        }
        if (stride == 1)
            ck_assert_int_eq(seen, counts[k]);
    }
    free(small);
    glm_grammar_matcher_free(a);
    glm_grammar_matcher_free(b);
    glm_grammar_matcher_free(s);
    glm_grammar_free(json);
    glm_grammar_free(name);
    free(allowed);
    glm_token_trie_free(t);
    vocab_free(&v);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("grammar");
    TCase *tc = tcase_create("grammar");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, parse_errors);
    tcase_add_test(tc, notation);
    tcase_add_test(tc, json);
    tcase_add_test(tc, schema_style);
    tcase_add_test(tc, utf8_split);
    tcase_add_test(tc, mask_small);
    tcase_add_test(tc, mask_brute_force);
    tcase_add_test(tc, small_budget);
    tcase_add_test(tc, end_states);
    tcase_add_test(tc, hostile);
    tcase_add_test(tc, threads);
    tcase_add_test(tc, large_vocab);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
