/*
 * test_schema_grammar.c - engine/constrain/schema_*.c and engine/glm/tool_grammar.c:
 * JSON Schema and GLM-5 tool calls -> GBNF, checked through the grammar engine
 * (engine/constrain/grammar_*.c).
 *
 * Tables of schemas with texts that must match and texts that must not; the
 * checker's error messages; tool-call grammars whose accepted texts are read
 * back by the output parser into the expected arguments; exhaustive checks of
 * integer ranges and bounded raw strings; random walks through grammars whose
 * every finished text must be valid JSON (and valid arguments); hostile
 * schemas that must fail cleanly (bounded work: the test case's timeout is
 * the hang guard, no case is timed).
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/grammar.h"
#include "glm/output_parser.h"
#include "constrain/schema_grammar.h"
#include "glm/tool_grammar.h"
#include "core/utf8.h"
#include "core/util.h"
#include "testutil.h"

#define MAXS 16

static json_t *load(const char *js)
{
    json_error_t je;
    json_t *v = json_loads(js, JSON_DECODE_ANY, &je);
    ck_assert_msg(v != NULL, "bad test JSON %s: %s", js, je.text);
    return v;
}

/* The grammar of a schema, parsed; fails the test on any error. */
static glm_grammar *schema_grammar(const char *schema_js, char **text_out)
{
    char err[GLM_ERRLEN] = "";
    json_t *s = load(schema_js);
    char *text = glm_schema_gbnf(s, err, sizeof err);
    ck_assert_msg(text != NULL, "schema %s: %s", schema_js, err);
    ck_assert_int_eq(glm_schema_check(s, err, sizeof err), GLM_OK);
    glm_grammar *g = glm_grammar_parse(text, strlen(text), NULL, err, sizeof err);
    ck_assert_msg(g != NULL, "schema %s: grammar does not parse: %s\n%s", schema_js, err, text);
    json_decref(s);
    if (text_out)
        *text_out = text;
    else
        free(text);
    return g;
}

static int matches(const glm_grammar *g, const char *s) { return glm_grammar_matches(g, s, strlen(s)); }

/* ---- schemas: texts that match and texts that do not ------------------------------- */

typedef struct {
    const char *schema;
    const char *yes[MAXS];
    const char *no[MAXS];
} scase;

static const scase schemas[] = {
    {"{\"type\": \"string\"}",
     {"\"\"", "\"abc\"", "\"a\\\"b\\\\c\"", "\"\\u00e9\\n\\t\\/\"", "\"\xc3\xa9\xf0\x9f\x98\x80\"",
      "\"\\ud83d\\ude00\"", "\"a</b\""},
     {"abc", "\"a\nb\"", "\"\\ud800\"", "\"\\ude00\"", "\"\\x41\"", " \"a\"", "\"a\" ", "\"a", "'a'"}},
    {"{\"type\": \"integer\"}",
     {"0", "-5", "42", "1234567890123456", "-1234567890123456"},
     {"01", "1.0", "1e3", "-", "+1", "12345678901234567", "\"1\"", "", " 1"}},
    {"{\"type\": \"number\"}",
     {"0", "-0.5", "3", "1e10", "1.25E-3", "-7e+2", "0.1234567890123456"},
     {".5", "1.", "1e", "0x1", "NaN", "1e100", "--1", "0.12345678901234567"}},
    {"{\"type\": \"boolean\"}", {"true", "false"}, {"True", "1", "\"true\"", "tru"}},
    {"{\"type\": \"null\"}", {"null"}, {"nul", "None", "\"null\""}},
    {"{\"type\": [\"string\", \"null\"]}", {"null", "\"x\""}, {"1", "true"}},
    {"{\"anyOf\": [{\"type\": \"string\"}, {\"type\": \"null\"}], \"default\": null, \"title\": \"T\"}",
     {"null", "\"x\""}, {"1"}},
    /* required, optional, additionalProperties false, declared order */
    {"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}, \"b\": {\"type\": \"string\"},"
     " \"c\": {\"type\": \"boolean\"}}, \"required\": [\"b\"], \"additionalProperties\": false}",
     {"{\"b\":\"x\"}", "{\"a\":1,\"b\":\"x\"}", "{\"a\": 1, \"b\": \"x\", \"c\": true}", "{\"b\":\"x\",\"c\":false}",
      "{\n  \"b\": \"x\"\n}", "{ \"b\" : \"x\" }"},
     {"{}", "{\"a\":1}", "{\"b\":\"x\",\"d\":1}", "{\"b\":1}", "{\"b\":\"x\",\"a\":1}", "{\"b\":\"x\",}",
      "{\"a\":1,,\"b\":\"x\"}", "{\"b\":\"x\"", "{\"b\":\"x\",\"b\":\"y\"}"}},
    /* all optional: any subset in order */
    {"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}, \"b\": {\"type\": \"integer\"},"
     " \"c\": {\"type\": \"integer\"}}}",
     {"{}", "{ }", "{\"a\":1}", "{\"b\":2}", "{\"c\":3}", "{\"a\":1,\"c\":3}", "{\"a\":1,\"b\":2,\"c\":3}",
      "{\"b\":2,\"c\":3}"},
     {"{,}", "{\"a\":1,}", "{\"c\":3,\"a\":1}", "{\"d\":1}", "{,\"a\":1}"}},
    /* optional members before the first required one */
    {"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}, \"b\": {\"type\": \"integer\"},"
     " \"c\": {\"type\": \"integer\"}, \"d\": {\"type\": \"integer\"}}, \"required\": [\"c\"]}",
     {"{\"c\":3}", "{\"a\":1,\"c\":3}", "{\"b\":2,\"c\":3,\"d\":4}", "{\"a\":1,\"b\":2,\"c\":3,\"d\":4}"},
     {"{\"a\":1}", "{\"a\":1,\"b\":2}", "{\"a\":1,\"c\":3,}", "{\"d\":4}"}},
    /* objects that declare nothing */
    {"{\"type\": \"object\"}",
     {"{}", "{\"x\":[1,{\"y\":null}],\"z\":\"s\"}", "{ \"a\" : 1 }"},
     {"[]", "{", "{\"a\"}", "{1:2}"}},
    {"{\"type\": \"object\", \"additionalProperties\": {\"type\": \"integer\"}}",
     {"{}", "{\"x\":1,\"y\":2}"}, {"{\"x\":\"s\"}", "{\"x\":1,}"}},
    {"{\"type\": \"object\", \"additionalProperties\": false}", {"{}", "{ }"}, {"{\"a\":1}"}},
    /* enum, const, type + enum */
    {"{\"enum\": [\"red\", \"green\", 1, null, {\"a\": [1, 2]}, 2.5, true]}",
     {"\"red\"", "\"green\"", "1", "null", "{\"a\":[1,2]}", "{ \"a\" : [ 1 , 2 ] }", "2.5", "true"},
     {"\"blue\"", "2", "{\"a\":[2,1]}", "\"RED\"", "false", "1.0"}},
    {"{\"type\": \"string\", \"enum\": [\"a\", 1, \"b\"]}", {"\"a\"", "\"b\""}, {"1", "\"c\""}},
    {"{\"const\": \"x\"}", {"\"x\""}, {"\"y\"", "x"}},
    {"{\"type\": \"integer\", \"enum\": [1, 2.0, 2.5, \"3\"]}", {"1", "2"}, {"2.5", "\"3\"", "3"}},
    /* arrays */
    {"{\"type\": \"array\", \"items\": {\"type\": \"integer\"}, \"minItems\": 2, \"maxItems\": 3}",
     {"[1,2]", "[1,2,3]", "[ 1 , 2 ]", "[\n 1,\n 2\n]"},
     {"[]", "[1]", "[1,2,3,4]", "[1,\"a\"]", "[1,2,]", "[,1,2]"}},
    {"{\"type\": \"array\", \"prefixItems\": [{\"type\": \"string\"}, {\"type\": \"integer\"}], \"items\": false}",
     {"[]", "[\"a\"]", "[\"a\",1]"}, {"[1]", "[\"a\",1,2]", "[\"a\",\"b\"]"}},
    {"{\"type\": \"array\", \"prefixItems\": [{\"type\": \"string\"}], \"items\": {\"type\": \"integer\"},"
     " \"minItems\": 2}",
     {"[\"a\",1]", "[\"a\",1,2,3]"}, {"[\"a\"]", "[\"a\",\"b\"]", "[]"}},
    {"{\"type\": \"array\", \"items\": [{\"type\": \"integer\"}], \"additionalItems\": {\"type\": \"string\"}}",
     {"[]", "[1]", "[1,\"a\",\"b\"]"}, {"[1,2]", "[\"a\"]"}},
    {"{\"type\": \"array\", \"maxItems\": 1}", {"[]", "[{\"a\":[]}]"}, {"[1,2]"}},
    {"{\"type\": \"array\", \"items\": {\"type\": \"array\", \"items\": {\"type\": \"object\","
     " \"properties\": {\"k\": {\"type\": \"string\"}}, \"required\": [\"k\"]}}}",
     {"[[{\"k\":\"v\"}],[]]", "[]"}, {"[[{\"k\":1}]]", "[[{}]]", "[{\"k\":\"v\"}]"}},
    /* $ref and recursion */
    {"{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\"}, \"children\": {\"type\": \"array\","
     " \"items\": {\"$ref\": \"#\"}}}, \"required\": [\"name\"], \"additionalProperties\": false}",
     {"{\"name\":\"a\"}", "{\"name\":\"a\",\"children\":[{\"name\":\"b\",\"children\":[{\"name\":\"c\"}]},{\"name\":\"d\"}]}"},
     {"{\"name\":\"a\",\"children\":[{}]}", "{\"name\":\"a\",\"children\":[{\"name\":\"b\",\"x\":1}]}"}},
    {"{\"$defs\": {\"t\": {\"type\": \"object\", \"properties\": {\"v\": {\"type\": \"integer\"},"
     " \"kids\": {\"type\": \"array\", \"items\": {\"$ref\": \"#/$defs/t\"}}}, \"required\": [\"v\"]}},"
     " \"$ref\": \"#/$defs/t\"}",
     {"{\"v\":1,\"kids\":[{\"v\":2},{\"v\":3,\"kids\":[]}]}"}, {"{\"v\":1,\"kids\":[{\"v\":\"2\"}]}"}},
    {"{\"definitions\": {\"a~b/c\": {\"type\": \"integer\"}}, \"type\": \"array\","
     " \"items\": {\"$ref\": \"#/definitions/a~0b~1c\"}}",
     {"[1,2]"}, {"[\"1\"]"}},
    {"{\"$defs\": {\"p\": {\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"integer\"}}}},"
     " \"$ref\": \"#/$defs/p\", \"required\": [\"x\"]}",
     {"{\"x\":1}"}, {"{}", "{\"x\":\"1\"}"}},
    /* anyOf / oneOf / allOf */
    {"{\"anyOf\": [{\"type\": \"integer\"}, {\"type\": \"string\", \"maxLength\": 2}]}",
     {"5", "\"ab\"", "\"\""}, {"\"abc\"", "1.5", "null"}},
    {"{\"oneOf\": [{\"type\": \"object\", \"properties\": {\"kind\": {\"const\": \"a\"}, \"x\": {\"type\": \"integer\"}},"
     " \"required\": [\"kind\", \"x\"]}, {\"type\": \"object\", \"properties\": {\"kind\": {\"const\": \"b\"},"
     " \"y\": {\"type\": \"string\"}}, \"required\": [\"kind\", \"y\"]}]}",
     {"{\"kind\":\"a\",\"x\":1}", "{\"kind\":\"b\",\"y\":\"s\"}"}, {"{\"kind\":\"a\",\"y\":\"s\"}", "{\"kind\":\"c\",\"x\":1}"}},
    {"{\"allOf\": [{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}, \"required\": [\"a\"]},"
     " {\"properties\": {\"b\": {\"type\": \"string\"}}, \"required\": [\"b\"]}]}",
     {"{\"a\":1,\"b\":\"x\"}"}, {"{\"a\":1}", "{\"b\":\"x\"}", "{\"b\":\"x\",\"a\":1}"}},
    {"{\"type\": [\"integer\", \"string\"], \"anyOf\": [{\"minimum\": 10, \"type\": \"integer\"}, {\"enum\": [\"x\", 3]}]}",
     {"10", "99", "\"x\"", "3"}, {"9", "4", "\"y\""}},
    {"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}, \"additionalProperties\": false,"
     " \"allOf\": [{\"properties\": {\"a\": {\"minimum\": 5, \"type\": \"integer\"}, \"b\": {}}}]}",
     {"{}", "{\"a\":5}"}, {"{\"a\":4}", "{\"b\":1}"}},
    /* lengths in code points */
    {"{\"type\": \"string\", \"minLength\": 2, \"maxLength\": 3}",
     {"\"ab\"", "\"abc\"", "\"\xc3\xa9\xf0\x9f\x98\x80\"", "\"\\n\\t\"", "\"\\ud83d\\ude00a\"", "\"\\u00e9\\\"x\""},
     {"\"a\"", "\"abcd\"", "\"\xf0\x9f\x98\x80\"", "\"\\ud83d\\ude00\""}},
    {"{\"type\": \"string\", \"maxLength\": 0}", {"\"\""}, {"\"a\""}},
    /* unicode and odd characters in keys and values */
    {"{\"type\": \"object\", \"properties\": {\"citt\xc3\xa0\": {\"type\": \"string\", \"enum\": [\"n\xc3\xa9\","
     " \"\xf0\x9f\x98\x80\"]}, \"q\\\"uote\": {\"type\": \"integer\"}, \"back\\\\slash\": {\"type\": \"boolean\"},"
     " \"tab\\there\": {\"type\": \"null\"}}, \"required\": [\"citt\xc3\xa0\"]}",
     {"{\"citt\xc3\xa0\":\"n\xc3\xa9\",\"q\\\"uote\":1,\"back\\\\slash\":true,\"tab\\there\":null}",
      "{\"citt\xc3\xa0\":\"\xf0\x9f\x98\x80\"}"},
     {"{\"citta\":\"n\xc3\xa9\"}", "{\"citt\xc3\xa0\":\"ne\"}", "{\"citt\xc3\xa0\":\"n\xc3\xa9\",\"q\"uote\":1}"}},
    /* integers with bounds */
    {"{\"type\": \"integer\", \"minimum\": 0.5, \"exclusiveMaximum\": 3}", {"1", "2"}, {"0", "3", "-1"}},
    {"{\"type\": \"integer\", \"minimum\": 5, \"exclusiveMinimum\": true}", {"6", "1000"}, {"5", "-6"}},
    {"{\"type\": [\"integer\", \"null\"], \"maximum\": -3}", {"-3", "-100", "null"}, {"-2", "0", "3"}},
    /* nullable object, untyped schema with properties */
    {"{\"type\": [\"object\", \"null\"], \"properties\": {\"a\": {\"type\": \"integer\"}}}",
     {"null", "{\"a\":1}", "{}"}, {"1", "{\"a\":null}"}},
    {"{\"properties\": {\"a\": {\"type\": \"integer\"}}}", {"5", "\"s\"", "{\"a\":1}", "[1]"}, {"{\"a\":\"s\"}"}},
    /* annotations and unknown keywords are ignored */
    {"{\"type\": \"string\", \"format\": \"date-time\", \"title\": \"x\", \"description\": \"y\", \"x-custom\": 1,"
     " \"$schema\": \"https://json-schema.org/draft/2020-12/schema\", \"examples\": [\"a\"], \"strict\": true}",
     {"\"anything\""}, {"1"}},
    /* anything */
    {"true", {"1", "\"s\"", "[1,{\"a\":null}]", "{}", "null", "-2.5e3"}, {"[1,]", "", "{a:1}"}},
    {"{}", {"1", "[]"}, {"x"}},
    {"{\"$ref\": \"#\"}", {"1", "{\"a\":[]}"}, {""}},
    {"{\"$defs\": {\"a\": {\"$ref\": \"#/$defs/b\"}, \"b\": {\"allOf\": [{\"$ref\": \"#/$defs/a\"}]}},"
     " \"$ref\": \"#/$defs/a\"}",
     {"1", "\"x\""}, {"{"}},
};

START_TEST(schema_table)
{
    for (size_t c = 0; c < sizeof schemas / sizeof schemas[0]; c++) {
        const scase *t = &schemas[c];
        char *text;
        glm_grammar *g = schema_grammar(t->schema, &text);
        for (int i = 0; i < MAXS && t->yes[i]; i++)
            ck_assert_msg(matches(g, t->yes[i]), "schema %s\nshould match: %s\ngrammar:\n%s", t->schema,
                          t->yes[i], text);
        for (int i = 0; i < MAXS && t->no[i]; i++)
            ck_assert_msg(!matches(g, t->no[i]), "schema %s\nshould not match: %s\ngrammar:\n%s", t->schema,
                          t->no[i], text);
        glm_grammar_free(g);
        free(text);
    }
}
END_TEST

START_TEST(json_object_grammar)
{
    char *text = glm_json_object_gbnf(), err[GLM_ERRLEN];
    glm_grammar *g = glm_grammar_parse(text, strlen(text), NULL, err, sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    ck_assert(matches(g, "{}"));
    ck_assert(matches(g, "{\"a\": [1, 2.5, \"x\", null, true, {\"b\": {}}]}"));
    ck_assert(!matches(g, "[]"));
    ck_assert(!matches(g, "1"));
    ck_assert(!matches(g, "{\"a\":}"));
    ck_assert(!matches(g, " {}"));
    glm_grammar_free(g);
    free(text);
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------- */

static const struct {
    const char *schema, *err;
} bad_schemas[] = {
    {"{\"type\": \"int\"}", "schema.type: unknown type 'int'"},
    {"{\"type\": \"object\", \"properties\": {\"age\": {\"type\": \"int\"}}}",
     "schema.properties.age.type: unknown type 'int'"},
    {"{\"properties\": {\"x\": {\"type\": \"string\", \"pattern\": \"^a\"}}}",
     "schema.properties.x: 'pattern' is not supported"},
    {"{\"type\": [\"string\", 3]}", "schema.type[1]: must be a type name"},
    {"{\"type\": []}", "schema.type: must be a type name or a non-empty list of them"},
    {"{\"type\": \"number\", \"minimum\": 0}", "schema: 'minimum' is only supported with \"type\": \"integer\""},
    {"{\"maximum\": 3}", "schema: 'maximum' is only supported with \"type\": \"integer\""},
    {"{\"type\": \"integer\", \"minimum\": \"3\"}", "schema.minimum: must be a number"},
    {"{\"items\": {\"not\": {}}}", "schema.items: 'not' is not supported"},
    {"{\"anyOf\": [{\"type\": \"string\"}, {\"if\": {}}]}", "schema.anyOf[1]: 'if' is not supported"},
    {"{\"type\": \"object\", \"patternProperties\": {}}", "schema: 'patternProperties' is not supported"},
    {"{\"uniqueItems\": true}", "schema: 'uniqueItems' is not supported"},
    {"{\"multipleOf\": 2}", "schema: 'multipleOf' is not supported"},
    {"{\"minProperties\": 1}", "schema: 'minProperties' is not supported"},
    {"{\"anyOf\": []}", "schema.anyOf: must be a non-empty array of schemas"},
    {"{\"allOf\": {}}", "schema.allOf: must be a non-empty array of schemas"},
    {"{\"required\": \"a\"}", "schema.required: must be an array of strings"},
    {"{\"required\": [1]}", "schema.required[0]: must be a string"},
    {"{\"properties\": []}", "schema.properties: must be an object"},
    {"{\"enum\": []}", "schema.enum: must be a non-empty array"},
    {"{\"maxItems\": -1}", "schema.maxItems: must be a non-negative integer"},
    {"{\"minItems\": 1.5}", "schema.minItems: must be a non-negative integer"},
    {"{\"maxLength\": 100000}", "schema.maxLength: over 1000 is not supported"},
    {"{\"$ref\": \"#/properties/a\"}", "schema.$ref: '#/properties/a' is not supported"},
    {"{\"$ref\": \"http://example.com/s.json\"}", "schema.$ref: 'http://example.com/s.json' is not supported"},
    {"{\"$ref\": \"#/$defs/missing\"}", "schema.$ref: '#/$defs/missing' names no definition"},
    {"{\"$ref\": 5}", "schema.$ref: must be a string"},
    {"{\"properties\": {\"x\": {\"$defs\": {}}}}", "schema.properties.x: '$defs' is only supported at the top level"},
    {"42", "schema: a schema must be an object or a boolean"},
    {"\"string\"", "schema: a schema must be an object or a boolean"},
    {"[]", "schema: a schema must be an object or a boolean"},
    {"null", "schema: a schema must be an object or a boolean"},
    {"{\"properties\": {\"a\": 5}}", "schema.properties.a: a schema must be an object or a boolean"},
    {"{\"items\": [1]}", "schema.items[0]: a schema must be an object or a boolean"},
    {"false", "schema: no JSON value satisfies the schema"},
    {"{\"type\": \"string\", \"enum\": [1, 2]}", "schema: no JSON value satisfies the schema"},
    {"{\"type\": \"integer\", \"minimum\": 5, \"maximum\": 4}", "schema: no JSON value satisfies the schema"},
    {"{\"type\": \"string\", \"minLength\": 5, \"maxLength\": 4}", "schema: no JSON value satisfies the schema"},
    {"{\"type\": \"array\", \"minItems\": 2, \"items\": false}", "schema: no JSON value satisfies the schema"},
    {"{\"allOf\": [{\"type\": \"string\"}, {\"type\": \"integer\"}]}", "schema: no JSON value satisfies the schema"},
    {"{\"type\": \"object\", \"properties\": {\"a\": {\"$ref\": \"#\"}}, \"required\": [\"a\"]}",
     "schema: no JSON value satisfies the schema"},
    {"{\"type\": \"object\", \"required\": [\"a\"], \"additionalProperties\": false}",
     "schema: no JSON value satisfies the schema"},
};

START_TEST(check_errors)
{
    for (size_t i = 0; i < sizeof bad_schemas / sizeof bad_schemas[0]; i++) {
        char err[GLM_ERRLEN] = "", err2[GLM_ERRLEN] = "";
        json_t *s = load(bad_schemas[i].schema);
        ck_assert_msg(glm_schema_check(s, err, sizeof err) == GLM_ERR, "%s accepted", bad_schemas[i].schema);
        ck_assert_msg(strncmp(err, bad_schemas[i].err, strlen(bad_schemas[i].err)) == 0,
                      "%s:\n got  %s\n want %s", bad_schemas[i].schema, err, bad_schemas[i].err);
        ck_assert_ptr_null(glm_schema_gbnf(s, err2, sizeof err2));
        ck_assert_str_eq(err, err2);
        json_decref(s);
    }
}
END_TEST

/* ---- integer ranges, exhaustively ---------------------------------------------------- */

/* Every integer near [lo, hi] (and a stretch of each edge of a wide range)
 * matches exactly when it is inside. */
static void check_range(long long lo, long long hi)
{
    char schema[256], num[32];
    snprintf(schema, sizeof schema, "{\"type\": \"integer\", \"minimum\": %lld, \"maximum\": %lld}", lo, hi);
    glm_grammar *g = schema_grammar(schema, NULL);
    long long from = lo - 25, to = hi + 25;
    for (long long x = from; x <= to; x++) {
        if (x > lo + 3000 && x < hi - 3000)
            x = hi - 3000; /* wide ranges: the edges and a stretch of each */
        snprintf(num, sizeof num, "%lld", x);
        ck_assert_msg(matches(g, num) == (x >= lo && x <= hi), "%s: %s", schema, num);
    }
    ck_assert_msg(!matches(g, "-0"), "%s: -0", schema); /* one spelling of zero */
    ck_assert(!matches(g, "007"));
    glm_grammar_free(g);
}

START_TEST(integer_ranges)
{
    static const long long v[] = {-12345, -1000, -101, -100, -99, -10, -9, -1, 0, 1, 9, 10, 11, 19, 20, 99,
                                  100, 101, 199, 200, 999, 1000, 1001, 12345};
    int n = sizeof v / sizeof v[0];
    for (int i = 0; i < n; i++)
        for (int j = i; j < n; j++)
            check_range(v[i], v[j]);
    check_range(123456789, 987654321);
    check_range(-987654321, 5);
    /* one-sided bounds, exclusive ones, and the 16-digit cap */
    static const struct {
        const char *schema;
        const char *yes[6], *no[6];
    } t[] = {
        {"{\"type\": \"integer\", \"minimum\": 5}", {"5", "99", "9999999999999999"},
         {"4", "-5", "10000000000000000", "05"}},
        {"{\"type\": \"integer\", \"exclusiveMinimum\": 5, \"exclusiveMaximum\": 8}", {"6", "7"}, {"5", "8"}},
        {"{\"type\": \"integer\", \"maximum\": -7}", {"-7", "-9999999999999999"}, {"-6", "0", "-10000000000000000"}},
        {"{\"type\": \"integer\", \"minimum\": 9999999999999990}", {"9999999999999990", "9999999999999999"},
         {"9999999999999989", "10000000000000000"}},
        {"{\"type\": \"integer\", \"minimum\": -1e300, \"maximum\": 1e300}", {"0", "-9999999999999999"},
         {"10000000000000000"}},
        {"{\"type\": \"integer\", \"minimum\": 9999999999999999}", {"9999999999999999"}, {"9999999999999998"}},
        {"{\"type\": \"integer\", \"maximum\": -9999999999999999}", {"-9999999999999999"}, {"-9999999999999998"}},
        {"{\"type\": \"integer\", \"exclusiveMinimum\": -2.5, \"exclusiveMaximum\": 2.0}", {"-2", "1"},
         {"-3", "2"}},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        glm_grammar *g = schema_grammar(t[i].schema, NULL);
        for (int k = 0; k < 6 && t[i].yes[k]; k++)
            ck_assert_msg(matches(g, t[i].yes[k]), "%s: %s", t[i].schema, t[i].yes[k]);
        for (int k = 0; k < 6 && t[i].no[k]; k++)
            ck_assert_msg(!matches(g, t[i].no[k]), "%s: %s", t[i].schema, t[i].no[k]);
        glm_grammar_free(g);
    }
    char err[GLM_ERRLEN];
    json_t *s = load("{\"type\": \"integer\", \"minimum\": 1e17}");
    ck_assert_int_eq(glm_schema_check(s, err, sizeof err), GLM_ERR); /* beyond 16 digits: nothing */
    json_decref(s);
}
END_TEST

/* ---- tool calls --------------------------------------------------------------------------- */

static const char *TOOLS =
    "[{\"type\": \"function\", \"function\": {\"name\": \"search\", \"description\": \"Search.\","
    " \"parameters\": {\"type\": \"object\", \"properties\": {"
    " \"query\": {\"type\": \"string\"},"
    " \"limit\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 50},"
    " \"score\": {\"type\": \"number\"},"
    " \"exact\": {\"type\": \"boolean\"},"
    " \"tags\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}, \"maxItems\": 3},"
    " \"filter\": {\"type\": \"object\", \"properties\": {\"lang\": {\"type\": \"string\"}},"
    "   \"required\": [\"lang\"], \"additionalProperties\": false},"
    " \"mode\": {\"type\": \"string\", \"enum\": [\"fast\", \"slow\"]},"
    " \"note\": {\"type\": [\"string\", \"null\"]},"
    " \"code\": {\"type\": \"string\", \"maxLength\": 4},"
    " \"level\": {\"enum\": [1, \"high\"]},"
    " \"any\": {\"description\": \"anything\"}"
    " }, \"required\": [\"query\"]}}},"
    " {\"type\": \"function\", \"function\": {\"name\": \"ping\"}},"
    " {\"type\": \"function\", \"function\": {\"name\": \"empty\", \"parameters\": {\"type\": \"object\","
    " \"properties\": {}}}},"
    " {\"type\": \"web_search\"},"
    " {\"type\": \"function\", \"function\": {\"name\": \"ping\", \"parameters\": {\"type\": \"object\","
    " \"properties\": {\"x\": {\"type\": \"integer\"}}, \"required\": [\"x\"]}}}]";

#define TC "<tool_call>"
#define ETC "</tool_call>"
#define K(k) "<arg_key>" k "</arg_key>"
#define V(v) "<arg_value>" v "</arg_value>"
#define KV(k, v) K(k) V(v)

static glm_grammar *tool_grammar(const char *tools_js, const char *only, int parallel, char **text_out)
{
    char err[GLM_ERRLEN] = "";
    json_t *tools = load(tools_js);
    char *text = glm_tool_calls_gbnf(tools, only, parallel, NULL, err, sizeof err);
    ck_assert_msg(text != NULL, "tools: %s", err);
    glm_grammar *g = glm_grammar_parse(text, strlen(text), NULL, err, sizeof err);
    ck_assert_msg(g != NULL, "tool grammar does not parse: %s\n%s", err, text);
    json_decref(tools);
    if (text_out)
        *text_out = text;
    else
        free(text);
    return g;
}

/* Parses text as the server would; returns the calls' arguments as one JSON
 * array of objects (name -> arguments) and checks nothing became content. */
static json_t *parse_calls(const char *tools_js, const char *text)
{
    char err[GLM_ERRLEN];
    glm_out_params prm;
    glm_out_params_default(&prm);
    prm.think = GLM_OUT_THINK_OFF;
    json_t *tools = load(tools_js);
    prm.tools = tools;
    glm_out_message m;
    glm_out_parser *p = glm_out_parse(&prm, text, strlen(text), &m, err, sizeof err);
    ck_assert_ptr_nonnull(p);
    ck_assert_msg(m.content_len == 0, "content left over: %s (text %s)", m.content, text);
    json_t *out = json_array();
    for (int i = 0; i < m.n_tool_calls; i++) {
        json_error_t je;
        json_t *a = json_loadb(m.tool_calls[i].arguments, m.tool_calls[i].arguments_len, 0, &je);
        ck_assert_msg(a != NULL, "arguments not JSON: %s", m.tool_calls[i].arguments);
        json_t *call = json_object();
        json_object_set_new(call, m.tool_calls[i].name, a);
        json_array_append_new(out, call);
    }
    glm_out_free(p);
    json_decref(tools);
    return out;
}

static const struct {
    const char *text, *calls; /* calls: [{"name": arguments}, ...] as the parser reads them */
} tool_yes[] = {
    {TC "search" KV("query", "cats & dogs") ETC, "[{\"search\": {\"query\": \"cats & dogs\"}}]"},
    {TC "search" KV("query", "") ETC, "[{\"search\": {\"query\": \"\"}}]"},
    {TC "search" KV("query", " a<b <<c < ") ETC, "[{\"search\": {\"query\": \" a<b <<c < \"}}]"},
    {TC "search" KV("query", "x\ny\t\"z\"") ETC, "[{\"search\": {\"query\": \"x\\ny\\t\\\"z\\\"\"}}]"},
    {TC "search" KV("query", "q") KV("limit", "50") KV("score", "-1.5e3") KV("exact", "true")
         KV("tags", "[\"x\", \"y\"]") KV("filter", "{\"lang\": \"en\"}") KV("mode", "slow") KV("note", "null")
             KV("code", "ab<c") KV("level", "\"high\"") KV("any", "[1, 2]") ETC,
     "[{\"search\": {\"query\": \"q\", \"limit\": 50, \"score\": -1.5e3, \"exact\": true, \"tags\": [\"x\", \"y\"],"
     " \"filter\": {\"lang\": \"en\"}, \"mode\": \"slow\", \"note\": null, \"code\": \"ab<c\", \"level\": \"high\","
     " \"any\": [1, 2]}}]"},
    {TC "search\n" K("query") "\n" V("x") "\n" K("limit") "\n" V("1") "\n" ETC,
     "[{\"search\": {\"query\": \"x\", \"limit\": 1}}]"},
    {TC "search" KV("query", "q") KV("note", "free text, not JSON") KV("level", "1") KV("any", "plain words") ETC,
     "[{\"search\": {\"query\": \"q\", \"note\": \"free text, not JSON\", \"level\": 1, \"any\": \"plain words\"}}]"},
    {TC "search" KV("query", "q") KV("tags", "[]") KV("filter", "{ \"lang\" : \"<\\/x\" }") ETC,
     "[{\"search\": {\"query\": \"q\", \"tags\": [], \"filter\": {\"lang\": \"</x\"}}}]"},
    {TC "search" KV("query", "\xc3\xa9\xf0\x9f\x98\x80") KV("code", "\xf0\x9f\x98\x80\xf0\x9f\x98\x80<<") ETC,
     "[{\"search\": {\"query\": \"\xc3\xa9\xf0\x9f\x98\x80\", \"code\": \"\xf0\x9f\x98\x80\xf0\x9f\x98\x80<<\"}}]"},
    {TC "ping" ETC, "[{\"ping\": {}}]"},
    {TC "ping\n" ETC, "[{\"ping\": {}}]"},
    {TC "empty" ETC, "[{\"empty\": {}}]"},
};

static const char *tool_no[] = {
    TC "search" ETC,                                                  /* query is required */
    TC "search" KV("limit", "5") ETC,
    TC "search" KV("query", "a</b") ETC,                             /* would end the value */
    TC "search" KV("query", "q") KV("limit", "0") ETC,
    TC "search" KV("query", "q") KV("limit", "51") ETC,
    TC "search" KV("query", "q") KV("limit", "\"5\"") ETC,
    TC "search" KV("query", "q") KV("limit", " 5") ETC,
    TC "search" KV("query", "q") KV("score", "abc") ETC,
    TC "search" KV("query", "q") KV("exact", "yes") ETC,
    TC "search" KV("query", "q") KV("exact", "True") ETC,
    TC "search" KV("query", "q") KV("tags", "[\"a\",\"b\",\"c\",\"d\"]") ETC,
    TC "search" KV("query", "q") KV("tags", "[\"</x\"]") ETC,
    TC "search" KV("query", "q") KV("filter", "{}") ETC,
    TC "search" KV("query", "q") KV("filter", "{\"lang\":\"en\",\"x\":1}") ETC,
    TC "search" KV("query", "q") KV("mode", "medium") ETC,
    TC "search" KV("query", "q") KV("mode", "\"fast\"") ETC,          /* string values are raw */
    TC "search" KV("query", "q") KV("code", "abcde") ETC,
    TC "search" KV("query", "q") KV("code", "a</") ETC,
    TC "search" KV("query", "q") KV("level", "high") ETC,             /* enum of mixed types: JSON */
    TC "search" KV("query", "q") KV("level", "2") ETC,
    TC "search" KV("query", "q") KV("note", "a</b") ETC,
    TC "search" KV("query", "q") KV("extra", "1") ETC,
    TC "search" KV("limit", "5") KV("query", "q") ETC,                /* declared order */
    TC "search" KV("query", "q") KV("query", "q") ETC,
    TC "search" KV("query", "q") ETC TC "ping" ETC,                   /* one call only */
    TC "nope" ETC,
    TC " search" KV("query", "q") ETC,
    TC "search " KV("query", "q") ETC,
    TC "ping" KV("x", "1") ETC,                                       /* the first "ping" has no parameters */
    TC "search" KV("query", "q"),
    "",
    "text " TC "ping" ETC,
};

START_TEST(tool_calls)
{
    char *text;
    glm_grammar *g = tool_grammar(TOOLS, NULL, 0, &text);
    for (size_t i = 0; i < sizeof tool_yes / sizeof tool_yes[0]; i++) {
        ck_assert_msg(matches(g, tool_yes[i].text), "should match: %s\ngrammar:\n%s", tool_yes[i].text, text);
        json_t *got = parse_calls(TOOLS, tool_yes[i].text), *want = load(tool_yes[i].calls);
        char *gs = json_dumps(got, JSON_COMPACT);
        ck_assert_msg(json_equal(got, want), "%s\n got  %s\n want %s", tool_yes[i].text, gs, tool_yes[i].calls);
        free(gs);
        json_decref(got);
        json_decref(want);
    }
    for (size_t i = 0; i < sizeof tool_no / sizeof tool_no[0]; i++)
        ck_assert_msg(!matches(g, tool_no[i]), "should not match: %s\ngrammar:\n%s", tool_no[i], text);
    glm_grammar_free(g);
    free(text);

    /* only_name */
    g = tool_grammar(TOOLS, "ping", 0, NULL);
    ck_assert(matches(g, TC "ping" ETC));
    ck_assert(!matches(g, TC "search" KV("query", "q") ETC));
    ck_assert(!matches(g, TC "empty" ETC));
    glm_grammar_free(g);
    g = tool_grammar(TOOLS, "search", 0, NULL);
    ck_assert(matches(g, TC "search" KV("query", "q") ETC));
    ck_assert(!matches(g, TC "ping" ETC));
    glm_grammar_free(g);

    /* parallel: one or more calls, optionally one "\n" between */
    g = tool_grammar(TOOLS, NULL, 1, NULL);
    ck_assert(matches(g, TC "ping" ETC));
    ck_assert(matches(g, TC "ping" ETC TC "search" KV("query", "q") ETC));
    ck_assert(matches(g, TC "ping" ETC "\n" TC "empty" ETC "\n" TC "ping" ETC));
    ck_assert(!matches(g, TC "ping" ETC "\n\n" TC "ping" ETC));
    ck_assert(!matches(g, TC "ping" ETC "\n"));
    ck_assert(!matches(g, ""));
    glm_grammar_free(g);
    json_t *got = parse_calls(TOOLS, TC "ping" ETC "\n" TC "search" KV("query", "q") ETC);
    json_t *want = load("[{\"ping\": {}}, {\"search\": {\"query\": \"q\"}}]");
    ck_assert(json_equal(got, want));
    json_decref(got);
    json_decref(want);
}
END_TEST

/* Tools in the Responses API shape, $ref'd parameters, string-typed unions. */
START_TEST(tool_call_shapes)
{
    const char *tools =
        "[{\"type\": \"function\", \"name\": \"f\", \"parameters\": {\"type\": \"object\","
        " \"$defs\": {\"pt\": {\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"integer\"}},"
        " \"required\": [\"x\"]}},"
        " \"properties\": {\"p\": {\"$ref\": \"#/$defs/pt\"}, \"s\": {\"anyOf\": [{\"type\": \"string\","
        " \"maxLength\": 2}, {\"enum\": [\"long value\"]}]}, \"o\": {\"anyOf\": [{\"type\": \"string\"},"
        " {\"type\": \"null\"}]}, \"r\": {\"$ref\": \"#/$defs/pt\", \"description\": \"d\"}},"
        " \"required\": [\"p\"]}}]";
    glm_grammar *g = tool_grammar(tools, NULL, 0, NULL);
    static const struct {
        const char *text, *calls;
    } yes[] = {
        {TC "f" KV("p", "{\"x\": 1}") ETC, "[{\"f\": {\"p\": {\"x\": 1}}}]"},
        {TC "f" KV("p", "{\"x\":1}") KV("s", "ab") KV("o", "null") ETC,
         "[{\"f\": {\"p\": {\"x\": 1}, \"s\": \"ab\", \"o\": null}}]"},
        {TC "f" KV("p", "{\"x\":1}") KV("s", "long value") KV("o", "free") KV("r", "{\"x\": 2}") ETC,
         "[{\"f\": {\"p\": {\"x\": 1}, \"s\": \"long value\", \"o\": \"free\", \"r\": {\"x\": 2}}}]"},
    };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        ck_assert_msg(matches(g, yes[i].text), "%s", yes[i].text);
        json_t *got = parse_calls(tools, yes[i].text), *want = load(yes[i].calls);
        ck_assert_msg(json_equal(got, want), "%s", yes[i].text);
        json_decref(got);
        json_decref(want);
    }
    ck_assert(!matches(g, TC "f" KV("p", "{}") ETC));
    ck_assert(!matches(g, TC "f" KV("p", "{\"x\":1}") KV("s", "abc") ETC));
    ck_assert(!matches(g, TC "f" KV("p", "{\"x\":1}") KV("s", "\"ab\"") ETC));
    glm_grammar_free(g);
}
END_TEST

static const struct {
    const char *tools, *only, *err;
} bad_tools[] = {
    {"[]", NULL, "tools: must be a non-empty array"},
    {"{}", NULL, "tools: must be a non-empty array"},
    {"[1]", NULL, "tools[0]: must be an object"},
    {"[{\"type\": \"function\", \"function\": {}}]", NULL, "tools[0].function.name: missing"},
    {"[{\"type\": \"function\", \"function\": {\"name\": \"my tool\"}}]", NULL,
     "tools[0].function.name: 'my tool' cannot be written in a tool call"},
    {"[{\"type\": \"function\", \"function\": {\"name\": \"a<b\"}}]", NULL,
     "tools[0].function.name: 'a<b' cannot be written in a tool call"},
    {"[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]", "g", "tools: no function named 'g'"},
    {"[{\"type\": \"web_search\"}]", NULL, "tools: no function to call"},
    {"[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"strict\": true, \"parameters\": {\"type\": "
     "\"object\", \"properties\": {\"x\": {\"type\": \"string\", \"pattern\": \"a\"}}}}}]",
     NULL, "tools[0].function.parameters.properties.x: 'pattern' is not supported"},
    {"[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"string\"}}}]", NULL,
     "tools[0].function.parameters: no arguments satisfy the schema"},
    {"[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\","
     " \"properties\": {\"a<b\": {\"type\": \"string\"}}}}}]",
     NULL, "tools[0].function.parameters: argument name 'a<b' cannot be written in a tool call"},
    {"[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\","
     " \"properties\": {\" k\": {\"type\": \"string\"}}}}}]",
     NULL, "tools[0].function.parameters: argument name ' k' cannot be written in a tool call"},
    {"[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\","
     " \"properties\": {\"k\": {\"type\": \"string\", \"enum\": [\"</x\"]}}, \"required\": [\"k\"]}}}]",
     NULL, "tools[0].function.parameters: no arguments satisfy the schema"},
    {"[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\","
     " \"properties\": {\"a\": {\"$ref\": \"#\"}}, \"required\": [\"a\"]}}}]",
     NULL, "tools[0].function.parameters: no arguments satisfy the schema"},
    {"[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": 5}}]", NULL,
     "tools[0].function.parameters: a schema must be an object or a boolean"},
};

/* A function not marked "strict" gets its shape and types; validation keywords
 * the grammar cannot express (pattern, bounds on numbers) are left out. */
START_TEST(tool_call_lenient)
{
    const char *tools =
        "[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\","
        " \"properties\": {\"code\": {\"type\": \"string\", \"pattern\": \"^[A-Z]+$\"}, \"t\": {\"type\": "
        "\"number\", \"minimum\": -50}, \"n\": {\"type\": \"integer\", \"maximum\": 9}}, \"required\": "
        "[\"code\", \"t\", \"n\"]}}}]";
    glm_grammar *g = tool_grammar(tools, NULL, 0, NULL);
    ck_assert(matches(g, TC "f" KV("code", "lower") KV("t", "-99.5") KV("n", "7") ETC));
    ck_assert(!matches(g, TC "f" KV("code", "X") KV("t", "\"warm\"") KV("n", "7") ETC)); /* types hold */
    ck_assert(!matches(g, TC "f" KV("code", "X") KV("t", "1") KV("n", "12") ETC));        /* integer bounds hold */
    ck_assert(!matches(g, TC "f" KV("code", "X") KV("t", "1") ETC));                       /* required holds */
    glm_grammar_free(g);
}
END_TEST

START_TEST(tool_call_errors)
{
    for (size_t i = 0; i < sizeof bad_tools / sizeof bad_tools[0]; i++) {
        char err[GLM_ERRLEN] = "";
        json_t *tools = load(bad_tools[i].tools);
        char *text = glm_tool_calls_gbnf(tools, bad_tools[i].only, 0, NULL, err, sizeof err);
        ck_assert_msg(text == NULL, "%s accepted:\n%s", bad_tools[i].tools, text);
        ck_assert_msg(strncmp(err, bad_tools[i].err, strlen(bad_tools[i].err)) == 0, "%s:\n got  %s\n want %s",
                      bad_tools[i].tools, err, bad_tools[i].err);
        json_decref(tools);
    }
    /* tags the value grammar cannot protect */
    glm_out_tags t;
    glm_out_tags_default(&t);
    t.arg_value_end = "[/v]";
    char err[GLM_ERRLEN] = "";
    json_t *tools = load("[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]");
    ck_assert_ptr_null(glm_tool_calls_gbnf(tools, NULL, 0, &t, err, sizeof err));
    ck_assert_str_eq(err, "tags: the arg_value_end and tool_call_end tags must start with \"</\"");
    json_decref(tools);
}
END_TEST

/* Raw string values with length bounds: every string over {a, <, /} up to 6
 * long is accepted exactly when it has no "</" and its length fits. */
START_TEST(raw_string_lengths)
{
    static const struct {
        int min, max;
    } b[] = {{0, -1}, {1, 3}, {0, 1}, {2, -1}, {0, 0}, {3, 3}};
    for (size_t k = 0; k < sizeof b / sizeof b[0]; k++) {
        char tools[512], lens[64] = "";
        if (b[k].min)
            snprintf(lens + strlen(lens), sizeof lens - strlen(lens), ", \"minLength\": %d", b[k].min);
        if (b[k].max >= 0)
            snprintf(lens + strlen(lens), sizeof lens - strlen(lens), ", \"maxLength\": %d", b[k].max);
        snprintf(tools, sizeof tools,
                 "[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\","
                 " \"properties\": {\"s\": {\"type\": \"string\"%s}}, \"required\": [\"s\"]}}}]",
                 lens);
        glm_grammar *g = tool_grammar(tools, NULL, 0, NULL);
        const char al[] = "a</";
        for (int len = 0; len <= 6; len++) {
            int total = 1;
            for (int i = 0; i < len; i++)
                total *= 3;
            for (int code = 0; code < total; code++) {
                char v[8], text[128];
                int c = code;
                for (int i = 0; i < len; i++, c /= 3)
                    v[i] = al[c % 3];
                v[len] = 0;
                snprintf(text, sizeof text, TC "f" K("s") "<arg_value>%s</arg_value>" ETC, v);
                int want = !strstr(v, "</") && len >= b[k].min && (b[k].max < 0 || len <= b[k].max);
                ck_assert_msg(matches(g, text) == want, "%s: '%s' want %d", lens, v, want);
            }
        }
        glm_grammar_free(g);
    }
}
END_TEST

/* ---- random walks: every text a grammar finishes is valid ---------------------------- */

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7FFF;
}

/* A random sentence of g of at most cap-8 bytes, or -1 when the walk ran too
 * long. Candidates: printable ASCII, "\n", "\t" and a few multi-byte
 * characters; closing characters are preferred after steer_after bytes. */
static int walk(const glm_grammar *g, unsigned *seed, char *out, size_t cap, size_t steer_after,
                const char *const *tokens)
{
    static const char *multi[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    const char *cands[100];
    char one[96][2];
    int nc = 0;
    for (int c = 0x20; c < 0x7F; c++) {
        one[nc][0] = (char)c;
        one[nc][1] = 0;
        cands[nc] = one[nc];
        nc++;
    }
    cands[nc++] = "\n";
    cands[nc++] = "\t";
    for (int i = 0; i < 3; i++)
        cands[nc++] = multi[i];
    glm_grammar_matcher *m = glm_grammar_matcher_new(g);
    size_t n = 0;
    for (;;) {
        int end = glm_grammar_matcher_can_end(m);
        if (end && (rnd(seed) % 6 == 0 || glm_grammar_matcher_is_dead_end(m) || n > cap / 2))
            break;
        ck_assert_msg(!glm_grammar_matcher_is_dead_end(m), "dead end after: %.*s", (int)n, out);
        if (n + 8 >= cap) {
            glm_grammar_matcher_free(m);
            return -1;
        }
        const char *pick = NULL;
        int nt = 0;
        while (tokens && tokens[nt])
            nt++;
        if (nt && rnd(seed) % 3 == 0) { /* whole tokens: tags, small JSON values */
            int start = (int)(rnd(seed) % (unsigned)nt);
            for (int i = 0; i < nt && !pick; i++)
                if (glm_grammar_matcher_accept(m, tokens[(start + i) % nt], strlen(tokens[(start + i) % nt])))
                    pick = tokens[(start + i) % nt];
        }
        if (!pick && n > steer_after && rnd(seed) % 4 != 0) { /* steer towards an end */
            static const char *closers[] = {"\"", "}", "]", "<", "/", ">", "0", "n", "t", "f"};
            int start = (int)(rnd(seed) % 10);
            for (int i = 0; i < 10 && !pick; i++)
                if (glm_grammar_matcher_accept(m, closers[(start + i) % 10], strlen(closers[(start + i) % 10])))
                    pick = closers[(start + i) % 10];
        }
        if (!pick) {
            int start = (int)(rnd(seed) % (unsigned)nc), step = 1 + 2 * (int)(rnd(seed) % 40);
            while (step % 3 == 0 || step % 5 == 0)
                step += 2;
            for (int i = 0; i < nc && !pick; i++) {
                const char *c = cands[(start + i * step) % nc];
                if (glm_grammar_matcher_accept(m, c, strlen(c)))
                    pick = c;
            }
        }
        if (!pick) { /* only something outside the candidates may come: give up */
            glm_grammar_matcher_free(m);
            return -1;
        }
        memcpy(out + n, pick, strlen(pick));
        n += strlen(pick);
    }
    out[n] = 0;
    glm_grammar_matcher_free(m);
    return (int)n;
}

typedef int (*pred_fn)(const json_t *v);

static int is_int_in(const json_t *v, long long lo, long long hi)
{
    return json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi;
}

static size_t cps(const char *s)
{
    return glm_utf8_count(s, strlen(s));
}

/* {"id": 1..99, "name"?: string 1..3, "tags"?: [string]{0,2}, "kind"?: "a"|"b"|null}, closed */
static int pred_record(const json_t *v)
{
    if (!json_is_object(v) || !is_int_in(json_object_get(v, "id"), 1, 99))
        return 0;
    const char *k;
    json_t *m;
    json_object_foreach((json_t *)v, k, m)
    {
        if (strcmp(k, "id") == 0)
            continue;
        if (strcmp(k, "name") == 0) {
            if (!json_is_string(m) || cps(json_string_value(m)) < 1 || cps(json_string_value(m)) > 3)
                return 0;
        } else if (strcmp(k, "tags") == 0) {
            if (!json_is_array(m) || json_array_size(m) > 2)
                return 0;
            for (size_t i = 0; i < json_array_size(m); i++)
                if (!json_is_string(json_array_get(m, i)))
                    return 0;
        } else if (strcmp(k, "kind") == 0) {
            if (!json_is_null(m) && !(json_is_string(m) && (strcmp(json_string_value(m), "a") == 0 ||
                                                            strcmp(json_string_value(m), "b") == 0)))
                return 0;
        } else
            return 0;
    }
    return 1;
}

/* tree: {"v": integer, "kids"?: [tree]} */
static int pred_tree(const json_t *v)
{
    if (!json_is_object(v) || !json_is_integer(json_object_get(v, "v")))
        return 0;
    const json_t *kids = json_object_get(v, "kids");
    if (json_object_size(v) != 1u + (kids != NULL))
        return 0;
    for (size_t i = 0; kids && i < json_array_size(kids); i++)
        if (!json_is_array(kids) || !pred_tree(json_array_get(kids, i)))
            return 0;
    return !kids || json_is_array(kids);
}

static int pred_any(const json_t *v) { return v != NULL; }

START_TEST(random_walks)
{
    static const struct {
        const char *schema;
        pred_fn ok;
    } t[] = {
        {"{\"type\": \"object\", \"properties\": {\"id\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 99},"
         " \"name\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 3}, \"tags\": {\"type\": \"array\","
         " \"items\": {\"type\": \"string\"}, \"maxItems\": 2}, \"kind\": {\"enum\": [\"a\", \"b\", null]}},"
         " \"required\": [\"id\"], \"additionalProperties\": false}",
         pred_record},
        {"{\"$defs\": {\"t\": {\"type\": \"object\", \"properties\": {\"v\": {\"type\": \"integer\"},"
         " \"kids\": {\"type\": \"array\", \"items\": {\"$ref\": \"#/$defs/t\"}, \"maxItems\": 2}},"
         " \"required\": [\"v\"], \"additionalProperties\": false}}, \"$ref\": \"#/$defs/t\"}",
         pred_tree},
        {"true", pred_any},
    };
    unsigned seed = 12345;
    char buf[4096];
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        glm_grammar *g = schema_grammar(t[i].schema, NULL);
        int done = 0;
        for (int k = 0; k < 400 && done < 100; k++) {
            int n = walk(g, &seed, buf, sizeof buf, 24, NULL);
            if (n < 0)
                continue;
            done++;
            json_error_t je;
            json_t *v = json_loadb(buf, (size_t)n, JSON_DECODE_ANY, &je);
            ck_assert_msg(v != NULL, "not JSON: %s (%s)", buf, je.text);
            ck_assert_msg(t[i].ok(v), "%s\ninvalid value: %s", t[i].schema, buf);
            json_decref(v);
        }
        ck_assert_int_ge(done, 50);
        glm_grammar_free(g);
    }

    /* tool calls: every finished text parses into valid arguments */
    static const char *const tokens[] = {
        TC, ETC, "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>", "query", "limit", "score", "exact",
        "tags", "filter", "mode", "note", "code", "level", "any", "search", "ping", "empty", "1", "-2.5e3", "true",
        "false", "null", "\"x\"", "\"<\\/\"", "[", "]", "{", "}", ",", "\"lang\"", ":", "fast", "slow", "high", NULL};
    glm_grammar *g = tool_grammar(TOOLS, NULL, 1, NULL);
    int done = 0;
    for (int k = 0; k < 600 && done < 150; k++) {
        int n = walk(g, &seed, buf, sizeof buf, 400, tokens);
        if (n < 0)
            continue;
        done++;
        json_t *calls = parse_calls(TOOLS, buf);
        ck_assert_msg(json_array_size(calls) >= 1, "no call in %s", buf);
        for (size_t c = 0; c < json_array_size(calls); c++) {
            const json_t *call = json_array_get(calls, c);
            const json_t *a;
            if ((a = json_object_get(call, "ping")) || (a = json_object_get(call, "empty"))) {
                ck_assert_msg(json_object_size(a) == 0, "%s", buf);
                continue;
            }
            a = json_object_get(call, "search");
            ck_assert_msg(a && json_is_string(json_object_get(a, "query")), "%s", buf);
            const char *key;
            json_t *v;
            json_object_foreach((json_t *)a, key, v)
            {
                int ok = 1;
                if (strcmp(key, "query") == 0 || strcmp(key, "any") == 0)
                    ok = 1;
                else if (strcmp(key, "limit") == 0)
                    ok = is_int_in(v, 1, 50);
                else if (strcmp(key, "score") == 0)
                    ok = json_is_number(v);
                else if (strcmp(key, "exact") == 0)
                    ok = json_is_boolean(v);
                else if (strcmp(key, "tags") == 0) {
                    ok = json_is_array(v) && json_array_size(v) <= 3;
                    for (size_t j = 0; ok && j < json_array_size(v); j++)
                        ok = json_is_string(json_array_get(v, j));
                } else if (strcmp(key, "filter") == 0)
                    ok = json_is_object(v) && json_object_size(v) == 1 &&
                         json_is_string(json_object_get(v, "lang"));
                else if (strcmp(key, "mode") == 0)
                    ok = json_is_string(v) && (strcmp(json_string_value(v), "fast") == 0 ||
                                               strcmp(json_string_value(v), "slow") == 0);
                else if (strcmp(key, "note") == 0)
                    ok = json_is_string(v) || json_is_null(v);
                else if (strcmp(key, "code") == 0)
                    ok = json_is_string(v) && cps(json_string_value(v)) <= 4;
                else if (strcmp(key, "level") == 0)
                    ok = (json_is_integer(v) && json_integer_value(v) == 1) ||
                         (json_is_string(v) && strcmp(json_string_value(v), "high") == 0);
                else
                    ok = 0;
                ck_assert_msg(ok, "argument %s invalid in %s", key, buf);
            }
        }
        json_decref(calls);
    }
    ck_assert_int_ge(done, 75);
    glm_grammar_free(g);
}
END_TEST

/* ---- large schemas within the limits ------------------------------------------------ */

START_TEST(large_but_fine)
{
    /* 300 optional tuple positions: no deep nesting of groups */
    char *b = malloc(300 * 24 + 64), *p = b;
    p = stpcpy(p, "{\"type\": \"array\", \"prefixItems\": [");
    for (int i = 0; i < 300; i++)
        p += sprintf(p, "%s{\"const\": %d}", i ? ", " : "", i);
    strcpy(p, "], \"items\": false}");
    glm_grammar *g = schema_grammar(b, NULL);
    char text[4096] = "[";
    for (int i = 0; i < 300; i++)
        sprintf(text + strlen(text), "%s%d", i ? "," : "", i);
    ck_assert(matches(g, "[]"));
    ck_assert(matches(g, "[0,1,2]"));
    strcat(text, "]");
    ck_assert(matches(g, text));
    ck_assert(!matches(g, "[0,2]"));
    glm_grammar_free(g);
    free(b);

    /* 20 length-bounded strings, in JSON and as raw tool arguments */
    b = malloc(20 * 96 + 256);
    p = stpcpy(b, "{\"type\": \"object\", \"properties\": {");
    for (int i = 0; i < 20; i++)
        p += sprintf(p, "%s\"s%d\": {\"type\": \"string\", \"maxLength\": 1000}", i ? ", " : "", i);
    strcpy(p, "}, \"required\": [\"s0\"]}");
    char *text_out;
    g = schema_grammar(b, &text_out);
    ck_assert(matches(g, "{\"s0\":\"x\",\"s19\":\"y\"}"));
    glm_grammar_free(g);
    free(text_out);
    char *tools = malloc(strlen(b) + 128);
    sprintf(tools, "[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": %s}}]", b);
    g = tool_grammar(tools, NULL, 0, &text_out);
    ck_assert_msg(strlen(text_out) < 200000, "%zu bytes", strlen(text_out)); /* one shared chain */
    ck_assert(matches(g, TC "f" KV("s0", "a<b") KV("s7", "") ETC));
    ck_assert(!matches(g, TC "f" KV("s0", "a</b") ETC));
    glm_grammar_free(g);
    free(text_out);
    free(tools);
    free(b);
}
END_TEST

/* ---- hostile schemas ------------------------------------------------------------------ */

static char *nested(const char *open, const char *inner, const char *close, int depth)
{
    size_t n = (strlen(open) + strlen(close)) * (size_t)depth + strlen(inner) + 1;
    char *s = malloc(n), *p = s;
    for (int i = 0; i < depth; i++)
        p = stpcpy(p, open);
    p = stpcpy(p, inner);
    for (int i = 0; i < depth; i++)
        p = stpcpy(p, close);
    return s;
}

static void expect_error(const char *schema_js, const char *want)
{
    char err[GLM_ERRLEN] = "";
    json_t *s = load(schema_js);
    char *text = glm_schema_gbnf(s, err, sizeof err);
    ck_assert_msg(text == NULL, "accepted (%zu bytes): %.200s", strlen(text), schema_js);
    ck_assert_msg(strstr(err, want) != NULL, "%.200s:\n got  %s\n want ...%s...", schema_js, err, want);
    json_decref(s);
}

START_TEST(hostile)
{
    char *s = nested("{\"items\": ", "{}", "}", 100);
    expect_error(s, "nests deeper than 64 levels");
    free(s);
    s = nested("{\"anyOf\": [", "{}", "]}", 100);
    expect_error(s, "nests deeper than 64 levels");
    free(s);
    s = nested("{\"type\": \"object\", \"properties\": {\"a\": ", "{}", "}}", 70);
    expect_error(s, "nests deeper than 64 levels");
    free(s);
    expect_error("{\"type\": \"array\", \"maxItems\": 1000000000}", "schema.maxItems: over 1000 is not supported");
    expect_error("{\"type\": \"array\", \"minItems\": 99999999999999}", "over 1000 is not supported");
    expect_error("{\"type\": \"string\", \"minLength\": 1001}", "over 1000 is not supported");

    /* many subschemas */
    {
        size_t cap = 20000 * 40;
        char *b = malloc(cap), *p = b;
        p = stpcpy(p, "{\"type\": \"object\", \"properties\": {");
        for (int i = 0; i < 20000; i++)
            p += sprintf(p, "%s\"p%d\": {}", i ? ", " : "", i);
        strcpy(p, "}}");
        expect_error(b, "more than 10000 subschemas");
        free(b);
    }
    /* a large enum: the grammar would pass 1 MB */
    {
        size_t cap = 100000 * 40;
        char *b = malloc(cap), *p = b;
        p = stpcpy(p, "{\"enum\": [");
        for (int i = 0; i < 100000; i++)
            p += sprintf(p, "%s\"value-number-%08d\"", i ? ", " : "", i);
        strcpy(p, "]}");
        expect_error(b, "over");
        free(b);
    }
    /* unions that multiply: 10^6 combinations */
    {
        char b[8192], *p = b;
        p = stpcpy(p, "{\"allOf\": [");
        for (int i = 0; i < 6; i++) {
            p = stpcpy(p, i ? ", {\"anyOf\": [" : "{\"anyOf\": [");
            for (int j = 0; j < 10; j++)
                p += sprintf(p, "%s{\"type\": \"object\", \"properties\": {\"k%d_%d\": {}}}", j ? ", " : "", i, j);
            p = stpcpy(p, "]}");
        }
        strcpy(p, "]}");
        expect_error(b, "grammar"); /* too many rules, or over 1 MB */
    }
    /* one large enum copied into many rules */
    {
        char *b = malloc(2000 * 24 + 100 * 64 + 256), *p = b;
        p = stpcpy(p, "{\"$defs\": {\"e\": {\"enum\": [");
        for (int i = 0; i < 2000; i++)
            p += sprintf(p, "%s\"value-%08d\"", i ? ", " : "", i);
        p = stpcpy(p, "]}}, \"type\": \"array\", \"prefixItems\": [");
        for (int i = 0; i < 100; i++)
            p += sprintf(p, "%s{\"$ref\": \"#/$defs/e\", \"minLength\": %d}", i ? ", " : "", i % 10 + i / 10);
        strcpy(p, "]}");
        expect_error(b, "the grammar would be over 1 MB");
        free(b);
    }
    /* many subschemas at one value */
    {
        char *b = malloc(300 * 40), *p = b;
        p = stpcpy(p, "{\"allOf\": [");
        for (int i = 0; i < 300; i++)
            p += sprintf(p, "%s{\"type\": \"object\", \"title\": \"%d\"}", i ? ", " : "", i);
        strcpy(p, "]}");
        expect_error(b, "more than 256 subschemas apply to one value");
        free(b);
    }

    /* $ref cycles that never reach a value: no constraint, no hang */
    static const char *loops[] = {
        "{\"$ref\": \"#\"}",
        "{\"allOf\": [{\"$ref\": \"#\"}]}",
        "{\"anyOf\": [{\"$ref\": \"#\"}, {\"type\": \"string\"}]}",
        "{\"$defs\": {\"a\": {\"$ref\": \"#/$defs/b\"}, \"b\": {\"$ref\": \"#/$defs/a\"}}, \"$ref\": \"#/$defs/a\"}",
        "{\"$defs\": {\"a\": {\"anyOf\": [{\"$ref\": \"#/$defs/b\"}]}, \"b\": {\"oneOf\": [{\"$ref\": \"#/$defs/a\"}]}},"
        " \"$ref\": \"#/$defs/a\", \"enum\": [1, [2], {\"a\": 3}]}",
        "{\"type\": \"array\", \"items\": {\"$ref\": \"#\"}}",
        "{\"type\": \"object\", \"properties\": {\"a\": {\"$ref\": \"#\"}, \"b\": {\"$ref\": \"#\"}}}",
    };
    for (size_t i = 0; i < sizeof loops / sizeof loops[0]; i++)
        glm_grammar_free(schema_grammar(loops[i], NULL));
    glm_grammar *g = schema_grammar("{\"type\": \"array\", \"items\": {\"$ref\": \"#\"}}", NULL);
    ck_assert(matches(g, "[[],[[[]]]]"));
    ck_assert(!matches(g, "[1]"));
    glm_grammar_free(g);

    /* a deep const value */
    {
        char *v = nested("[", "1", "]", 500), *b = malloc(strlen(v) + 32);
        sprintf(b, "{\"const\": %s}", v);
        g = schema_grammar(b, NULL);
        ck_assert(matches(g, v));
        glm_grammar_free(g);
        free(b);
        free(v);
    }
    /* hostile tools */
    {
        char err[GLM_ERRLEN] = "";
        char *p = nested("{\"type\": \"object\", \"properties\": {\"a\": ", "{}", "}}", 70);
        char *b = malloc(strlen(p) + 128);
        sprintf(b, "[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": %s}}]", p);
        json_t *tools = load(b);
        ck_assert_ptr_null(glm_tool_calls_gbnf(tools, NULL, 1, NULL, err, sizeof err));
        ck_assert_msg(strstr(err, "nests deeper than 64 levels") != NULL, "%s", err);
        json_decref(tools);
        free(b);
        free(p);
    }
}
END_TEST

/* ---- well-formed schemas ------------------------------------------------------------------ */

/* Well-formed, though the grammar builder supports little of them. */
static const char *const wf_good[] = {
    "true",
    "false",
    "{}",
    "{\"type\": \"string\", \"pattern\": \"^[a-z]+$\", \"format\": \"email\"}",
    "{\"type\": \"string\", \"pattern\": \"([unclosed\"}", /* regex syntax is not checked */
    "{\"type\": \"number\", \"minimum\": 0, \"maximum\": 1.5, \"multipleOf\": 0.5}",
    "{\"type\": \"number\", \"exclusiveMinimum\": 0, \"exclusiveMaximum\": 10}",
    "{\"type\": \"number\", \"minimum\": 0, \"exclusiveMinimum\": true}", /* draft 4 */
    "{\"not\": {\"type\": \"null\"}}",
    "{\"if\": {\"properties\": {\"a\": {\"const\": 1}}}, \"then\": {\"required\": [\"b\"]}, \"else\": false}",
    "{\"type\": \"object\", \"patternProperties\": {\"^x-\": {\"type\": \"string\"}}, \"propertyNames\": {\"maxLength\": 8},"
    " \"minProperties\": 1, \"maxProperties\": 3.0}",
    "{\"type\": \"array\", \"uniqueItems\": true, \"contains\": {\"type\": \"integer\"}, \"minContains\": 2, \"maxContains\": 4}",
    "{\"dependentRequired\": {\"a\": [\"b\", \"c\"]}, \"dependentSchemas\": {\"a\": {\"required\": [\"d\"]}}}",
    "{\"dependencies\": {\"a\": [\"b\"], \"c\": {\"required\": [\"d\"]}}}",
    "{\"unevaluatedProperties\": false, \"unevaluatedItems\": {\"type\": \"string\"}}",
    "{\"type\": \"string\", \"nullable\": true, \"x-order\": [1, {}], \"example\": 5, \"discriminator\": {\"propertyName\": 3}}",
    "{\"title\": 5, \"description\": [], \"examples\": \"x\", \"default\": {}, \"deprecated\": \"no\", \"format\": 1,"
    " \"$comment\": 2, \"contentSchema\": 7, \"const\": [1]}", /* annotations: any value */
    "{\"enum\": []}",
    "{\"type\": \"string\", \"enum\": [1]}",
    "{\"type\": \"integer\", \"minimum\": 1e17}",
    "{\"maxLength\": 100000, \"maxItems\": 2.0, \"minItems\": 0}",
    "{\"type\": [\"string\", \"string\"]}",
    "{\"prefixItems\": [], \"items\": false}",
    "{\"items\": [], \"additionalItems\": {\"type\": \"string\"}}",
    "{\"items\": {}, \"additionalItems\": 5}", /* not a keyword unless "items" is an array */
    "{\"items\": [{}], \"prefixItems\": [{}]}",
    "{\"properties\": {\"x\": {\"$defs\": {\"y\": {}}}}}",
    /* $ref */
    "{\"$ref\": \"#\"}",
    "{\"$ref\": \"https://example.com/schemas/address.json\"}",
    "{\"$ref\": \"other.json#/definitions/x\"}",
    "{\"$defs\": {\"a\": {\"$defs\": {\"b\": {\"type\": \"string\"}}}}, \"$ref\": \"#/$defs/a/$defs/b\"}",
    "{\"properties\": {\"a\": {\"type\": \"string\"}, \"b\": {\"$ref\": \"#/properties/a\"}}}",
    "{\"items\": [{\"type\": \"string\"}, {\"$ref\": \"#/items/0\"}], \"additionalItems\": false}",
    "{\"$defs\": {\"a b\": {}, \"c/d\": {}, \"e~f\": {}, \"g%h\": {}, \"i~2\": {}}, \"allOf\": [{\"$ref\": \"#/$defs/a%20b\"},"
    " {\"$ref\": \"#/$defs/c~1d\"}, {\"$ref\": \"#/$defs/e~0f\"}, {\"$ref\": \"#/$defs/g%25h\"}, {\"$ref\": \"#/$defs/g%h\"},"
    " {\"$ref\": \"#/$defs/i~2\"}]}",
    "{\"$defs\": {\"n\": {\"$anchor\": \"node\", \"type\": \"object\"}}, \"$ref\": \"#node\"}",
    "{\"definitions\": {\"n\": {\"$id\": \"#node\"}}, \"$ref\": \"#node\"}",
    "{\"definitions\": {\"n\": {\"id\": \"#n%C3%A9\"}}, \"$ref\": \"#n%C3%A9\"}",
    "{\"items\": {\"$anchor\": \"n\\u00e9\"}, \"$ref\": \"#n%C3%A9\"}",
    "{\"$dynamicAnchor\": \"meta\", \"items\": {\"$dynamicRef\": \"#meta\"}}",
    "{\"$recursiveAnchor\": true, \"items\": {\"$recursiveRef\": \"#\"}}",
    /* inside a resource ("$id"), "#/..." is relative to it */
    "{\"$defs\": {\"r\": {\"$id\": \"https://example.com/r\", \"$defs\": {\"x\": {\"type\": \"integer\"}},"
    " \"$ref\": \"#/$defs/x\"}}, \"$ref\": \"#/$defs/r\"}",
    /* a schema reached only through a pointer */
    "{\"x-lib\": {\"pos\": {\"type\": \"integer\", \"minimum\": 0}}, \"properties\": {\"n\": {\"$ref\": \"#/x-lib/pos\"}}}",
    "{\"$schema\": \"http://json-schema.org/draft-04/schema#\", \"id\": \"http://x/s\", \"type\": \"object\","
    " \"properties\": {\"a\": {\"type\": \"integer\", \"minimum\": 0, \"exclusiveMinimum\": true}}, \"required\": [\"a\"],"
    " \"definitions\": {}}",
    /* cycles */
    "{\"$ref\": \"#/x-a\", \"x-a\": {\"$ref\": \"#/x-b\"}, \"x-b\": {\"$ref\": \"#/x-a\"}}",
    "{\"$defs\": {\"a\": {\"$ref\": \"#/$defs/b\"}, \"b\": {\"$ref\": \"#/$defs/a\"}}, \"$ref\": \"#/$defs/a\"}",
    "{\"$ref\": \"#/$defs/a\", \"$defs\": {\"a\": {\"not\": {\"$ref\": \"#\"}}}}",
};

static const struct {
    const char *schema, *err;
} wf_bad[] = {
    {"42", "schema: a schema must be an object or a boolean"},
    {"null", "schema: a schema must be an object or a boolean"},
    {"[]", "schema: a schema must be an object or a boolean"},
    {"\"string\"", "schema: a schema must be an object or a boolean"},
    {"{\"type\": \"int\"}", "schema.type: unknown type 'int'"},
    {"{\"type\": \"object\", \"properties\": {\"age\": {\"type\": \"int\"}}}",
     "schema.properties.age.type: unknown type 'int'"},
    {"{\"type\": [\"string\", 3]}", "schema.type[1]: must be a type name"},
    {"{\"type\": [\"string\", \"float\"]}", "schema.type[1]: unknown type 'float'"},
    {"{\"type\": []}", "schema.type: must be a type name or a non-empty list of them"},
    {"{\"type\": 5}", "schema.type: must be a type name or a non-empty list of them"},
    {"{\"properties\": []}", "schema.properties: must be an object"},
    {"{\"properties\": {\"a\": 5}}", "schema.properties.a: a schema must be an object or a boolean"},
    {"{\"properties\": {\"a\": {\"properties\": {\"b\": \"string\"}}}}",
     "schema.properties.a.properties.b: a schema must be an object or a boolean"},
    {"{\"required\": \"a\"}", "schema.required: must be an array of strings"},
    {"{\"required\": [\"a\", 1]}", "schema.required[1]: must be a string"},
    {"{\"items\": 5}", "schema.items: a schema must be an object or a boolean"},
    {"{\"items\": [{}, 1]}", "schema.items[1]: a schema must be an object or a boolean"},
    {"{\"items\": [{}], \"additionalItems\": 1}", "schema.additionalItems: a schema must be an object or a boolean"},
    {"{\"prefixItems\": {}}", "schema.prefixItems: must be an array of schemas"},
    {"{\"enum\": \"a\"}", "schema.enum: must be an array"},
    {"{\"enum\": {\"a\": 1}}", "schema.enum: must be an array"},
    {"{\"minLength\": -1}", "schema.minLength: must be a non-negative integer"},
    {"{\"maxItems\": 1.5}", "schema.maxItems: must be a non-negative integer"},
    {"{\"minProperties\": \"1\"}", "schema.minProperties: must be a non-negative integer"},
    {"{\"maxContains\": true}", "schema.maxContains: must be a non-negative integer"},
    {"{\"minimum\": \"0\"}", "schema.minimum: must be a number"},
    {"{\"maximum\": true}", "schema.maximum: must be a number"},
    {"{\"exclusiveMaximum\": \"5\"}", "schema.exclusiveMaximum: must be a number"},
    {"{\"multipleOf\": 0}", "schema.multipleOf: must be a number greater than 0"},
    {"{\"multipleOf\": -2.5}", "schema.multipleOf: must be a number greater than 0"},
    {"{\"pattern\": 5}", "schema.pattern: must be a string"},
    {"{\"properties\": {\"s\": {\"type\": \"string\", \"pattern\": null}}}", "schema.properties.s.pattern: must be a string"},
    {"{\"uniqueItems\": \"yes\"}", "schema.uniqueItems: must be a boolean"},
    {"{\"anyOf\": []}", "schema.anyOf: must be a non-empty array of schemas"},
    {"{\"oneOf\": {}}", "schema.oneOf: must be a non-empty array of schemas"},
    {"{\"allOf\": [{\"type\": \"string\"}, 3]}", "schema.allOf[1]: a schema must be an object or a boolean"},
    {"{\"not\": []}", "schema.not: a schema must be an object or a boolean"},
    {"{\"if\": 1}", "schema.if: a schema must be an object or a boolean"},
    {"{\"then\": {\"else\": \"x\"}}", "schema.then.else: a schema must be an object or a boolean"},
    {"{\"additionalProperties\": \"no\"}", "schema.additionalProperties: a schema must be an object or a boolean"},
    {"{\"patternProperties\": {\"^a\": 1}}", "schema.patternProperties.^a: a schema must be an object or a boolean"},
    {"{\"propertyNames\": 1}", "schema.propertyNames: a schema must be an object or a boolean"},
    {"{\"contains\": null}", "schema.contains: a schema must be an object or a boolean"},
    {"{\"dependentRequired\": {\"a\": \"b\"}}", "schema.dependentRequired.a: must be an array of strings"},
    {"{\"dependentRequired\": {\"a\": [1]}}", "schema.dependentRequired.a[0]: must be a string"},
    {"{\"dependentSchemas\": []}", "schema.dependentSchemas: must be an object"},
    {"{\"dependencies\": {\"a\": 1}}", "schema.dependencies.a: a schema must be an object or a boolean"},
    {"{\"dependencies\": {\"a\": [2]}}", "schema.dependencies.a[0]: must be a string"},
    {"{\"$defs\": []}", "schema.$defs: must be an object"},
    {"{\"$defs\": {\"a\": {\"type\": \"str\"}}}", "schema.$defs.a.type: unknown type 'str'"},
    {"{\"definitions\": {\"a\": 3}}", "schema.definitions.a: a schema must be an object or a boolean"},
    {"{\"$ref\": 5}", "schema.$ref: must be a string"},
    {"{\"$ref\": \"#/$defs/missing\"}", "schema.$ref: '#/$defs/missing' points to nothing in the schema"},
    {"{\"$defs\": {\"a\": {}}, \"properties\": {\"x\": {\"$ref\": \"#/$defs/b\"}}}",
     "schema.properties.x.$ref: '#/$defs/b' points to nothing in the schema"},
    {"{\"$ref\": \"#/properties/a\"}", "schema.$ref: '#/properties/a' points to nothing in the schema"},
    {"{\"required\": [\"a\"], \"$ref\": \"#/required\"}", "schema.$ref: '#/required' does not point to a schema"},
    {"{\"$ref\": \"#nowhere\"}", "schema.$ref: '#nowhere' points to nothing in the schema"},
    {"{\"items\": [{}], \"$ref\": \"#/items/1\"}", "schema.$ref: '#/items/1' points to nothing in the schema"},
    {"{\"items\": [{}], \"$ref\": \"#/items/00\"}", "schema.$ref: '#/items/00' points to nothing in the schema"},
    /* a URI fragment is percent-decoded before it is split: "%2F" separates */
    {"{\"$defs\": {\"c/d\": {}}, \"$ref\": \"#/$defs/c%2Fd\"}", "schema.$ref: '#/$defs/c%2Fd' points to nothing in the schema"},
    {"{\"$defs\": {\"a\": {}}, \"$ref\": \"#/$defs/a/\"}", "schema.$ref: '#/$defs/a/' points to nothing in the schema"},
    {"{\"$defs\": {\"r\": {\"$id\": \"https://example.com/r\", \"$ref\": \"#/$defs/x\"}}}",
     "schema.$defs.r.$ref: '#/$defs/x' points to nothing in the schema"},
    {"{\"x-lib\": {\"t\": {\"type\": \"int\"}}, \"$ref\": \"#/x-lib/t\"}", "schema.x-lib.t.type: unknown type 'int'"},
    {"{\"x-lib\": [{\"items\": 5}], \"$ref\": \"#/x-lib/0\"}", "schema.x-lib.0.items: a schema must be an object or a boolean"},
    {"{\"$dynamicRef\": 1}", "schema.$dynamicRef: must be a string"},
    {"{\"$recursiveAnchor\": \"yes\"}", "schema.$recursiveAnchor: must be a boolean"},
};

static void expect_wf(const char *schema_js, int ok, const char *want)
{
    char err[GLM_ERRLEN] = "";
    json_t *s = load(schema_js);
    int rc = glm_schema_wellformed(s, err, sizeof err);
    if (ok)
        ck_assert_msg(rc == GLM_OK, "%.300s rejected: %s", schema_js, err);
    else {
        ck_assert_msg(rc == GLM_ERR, "%.300s accepted", schema_js);
        ck_assert_msg(strstr(err, want) != NULL, "%.200s:\n got  %s\n want %s", schema_js, err, want);
    }
    json_decref(s);
}

START_TEST(wellformed)
{
    for (size_t i = 0; i < sizeof wf_good / sizeof wf_good[0]; i++)
        expect_wf(wf_good[i], 1, NULL);
    for (size_t i = 0; i < sizeof wf_bad / sizeof wf_bad[0]; i++) {
        char err[GLM_ERRLEN] = "";
        json_t *s = load(wf_bad[i].schema);
        ck_assert_msg(glm_schema_wellformed(s, err, sizeof err) == GLM_ERR, "%s accepted", wf_bad[i].schema);
        ck_assert_msg(strcmp(err, wf_bad[i].err) == 0, "%s:\n got  %s\n want %s", wf_bad[i].schema, err,
                      wf_bad[i].err);
        json_decref(s);
    }

    /* every schema glm_schema_check accepts is well-formed */
    for (size_t i = 0; i < sizeof schemas / sizeof schemas[0]; i++)
        expect_wf(schemas[i].schema, 1, NULL);
    json_t *tools = load(TOOLS);
    for (size_t i = 0; i < json_array_size(tools); i++) {
        const json_t *p = json_object_get(json_object_get(json_array_get(tools, i), "function"), "parameters");
        char err[GLM_ERRLEN] = "";
        if (p)
            ck_assert_msg(glm_schema_wellformed(p, err, sizeof err) == GLM_OK, "tools[%zu]: %s", i, err);
    }
    json_decref(tools);

    /* the schemas glm_schema_check rejects: well-formed when the reason is
       support or satisfiability; else the same message */
    for (size_t i = 0; i < sizeof bad_schemas / sizeof bad_schemas[0]; i++) {
        const char *want = bad_schemas[i].err;
        if (strstr(want, ".$ref:"))
            continue; /* resolution: the tables above */
        char err[GLM_ERRLEN] = "";
        json_t *s = load(bad_schemas[i].schema);
        int rc = glm_schema_wellformed(s, err, sizeof err);
        if (strstr(want, "not supported") || strstr(want, "only supported") || strstr(want, "no JSON value") ||
            strcmp(want, "schema.enum: must be a non-empty array") == 0)
            ck_assert_msg(rc == GLM_OK, "%s rejected: %s", bad_schemas[i].schema, err);
        else
            ck_assert_msg(rc == GLM_ERR && strcmp(err, want) == 0, "%s:\n got  %s\n want %s", bad_schemas[i].schema,
                          err, want);
        json_decref(s);
    }
}
END_TEST

START_TEST(wellformed_hostile)
{
    static const char *const deep[][2] = {
        {"{\"items\": ", "}"}, {"{\"anyOf\": [", "]}"}, {"{\"not\": ", "}"},
        {"{\"type\": \"object\", \"properties\": {\"a\": ", "}}"}, {"{\"if\": {}, \"then\": ", "}"},
    };
    for (size_t i = 0; i < sizeof deep / sizeof deep[0]; i++) {
        char *s = nested(deep[i][0], "{}", deep[i][1], 100);
        expect_wf(s, 0, "nests deeper than 64 levels");
        free(s);
        s = nested(deep[i][0], "{}", deep[i][1], 64);
        expect_wf(s, 1, NULL);
        free(s);
    }
    /* many subschemas, directly or through a pointer */
    {
        char *b = malloc(20000 * 40), *p = b;
        p = stpcpy(p, "{\"type\": \"object\", \"patternProperties\": {");
        for (int i = 0; i < 20000; i++)
            p += sprintf(p, "%s\"p%d\": {}", i ? ", " : "", i);
        strcpy(p, "}}");
        expect_wf(b, 0, "more than 10000 subschemas");
        p = b + sprintf(b, "{\"$ref\": \"#/x-lib\", \"x-lib\": {\"properties\": {");
        for (int i = 0; i < 20000; i++)
            p += sprintf(p, "%s\"p%d\": {}", i ? ", " : "", i);
        strcpy(p, "}}}");
        expect_wf(b, 0, "more than 10000 subschemas");
        free(b);
    }
    /* 5000 references to one schema of 1000 subschemas: it is checked once */
    {
        char *b = malloc(5000 * 40 + 1000 * 20 + 256), *p = b;
        p = stpcpy(p, "{\"x-lib\": {\"big\": {\"properties\": {");
        for (int i = 0; i < 1000; i++)
            p += sprintf(p, "%s\"p%d\": {}", i ? ", " : "", i);
        p = stpcpy(p, "}}}, \"allOf\": [");
        for (int i = 0; i < 5000; i++)
            p += sprintf(p, "%s{\"$ref\": \"#/x-lib/big\"}", i ? ", " : "");
        strcpy(p, "]}");
        expect_wf(b, 1, NULL);
        free(b);
    }
    /* long pointers */
    {
        size_t n = 400000;
        char *b = malloc(2 * n + 64), *p = b;
        p = stpcpy(p, "{\"$ref\": \"#");
        for (size_t i = 0; i < n / 2; i++)
            p = stpcpy(p, "/a");
        strcpy(p, "\"}");
        expect_wf(b, 0, "points to nothing in the schema");
        p = b + sprintf(b, "{\"$ref\": \"#");
        for (size_t i = 0; i < n / 3; i++)
            p = stpcpy(p, "%2F");
        strcpy(p, "\"}");
        expect_wf(b, 0, "points to nothing in the schema");
        free(b);
        /* a pointer 2000 levels into an unknown keyword's value */
        char *v = nested("{\"a\": ", "{\"type\": \"string\"}", "}", 2000);
        b = malloc(strlen(v) + 2000 * 2 + 64);
        p = b + sprintf(b, "{\"x\": %s, \"$ref\": \"#/x", v);
        for (int i = 0; i < 2000; i++)
            p = stpcpy(p, "/a");
        strcpy(p, "\"}");
        expect_wf(b, 1, NULL);
        free(b);
        free(v);
    }
}
END_TEST

/* ---- tool calls or content ---------------------------------------------------------------- */

static char *either_text(const char *tools_js, int parallel, const char *content, char *err, size_t errlen)
{
    json_t *tools = load(tools_js);
    char *text = glm_tool_calls_or_content_gbnf(tools, parallel, NULL, content, err, errlen);
    json_decref(tools);
    return text;
}

static glm_grammar *either_grammar(const char *tools_js, int parallel, const char *content, char **text_out)
{
    char err[GLM_ERRLEN] = "";
    char *text = either_text(tools_js, parallel, content, err, sizeof err);
    ck_assert_msg(text != NULL, "%s", err);
    glm_grammar *g = glm_grammar_parse(text, strlen(text), NULL, err, sizeof err);
    ck_assert_msg(g != NULL, "combined grammar does not parse: %s\n%s", err, text);
    if (text_out)
        *text_out = text;
    else
        free(text);
    return g;
}

static const char *ANSWER =
    "{\"type\": \"object\", \"properties\": {\"answer\": {\"type\": \"string\"}, \"score\": {\"type\": \"integer\"}},"
    " \"required\": [\"answer\"], \"additionalProperties\": false}";

/* {"answer": string, "score"?: integer}, closed */
static int pred_answer(const json_t *v)
{
    return json_is_object(v) && json_is_string(json_object_get(v, "answer")) &&
           json_object_size(v) == 1u + (json_object_get(v, "score") != NULL) &&
           (!json_object_get(v, "score") || json_is_integer(json_object_get(v, "score")));
}

START_TEST(tool_calls_or_content)
{
    char err[GLM_ERRLEN] = "";
    json_t *schema = load(ANSWER);
    char *content = glm_schema_gbnf(schema, err, sizeof err);
    ck_assert_msg(content != NULL, "%s", err);
    json_decref(schema);
    static const char *const json_yes[] = {"{\"answer\":\"x\"}", "{\"answer\": \"a<b</c\", \"score\": 3}",
                                           "{\n  \"answer\": \"\"\n}"};
    static const char *const mixed[] = {
        TC "ping" ETC "{\"answer\":\"x\"}",      "{\"answer\":\"x\"}" TC "ping" ETC,
        "{\"answer\":\"x\"}\n" TC "ping" ETC,    TC "ping" ETC "\n{\"answer\":\"x\"}",
        "{\"answer\":\"x\"}{\"answer\":\"y\"}", "{\"score\":3}",
        "{\"answer\":\"x\",\"extra\":1}",        "",
        "text " TC "ping" ETC,
    };
    for (int parallel = 0; parallel < 2; parallel++) {
        char *text;
        glm_grammar *g = either_grammar(TOOLS, parallel, content, &text);
        ck_assert_msg(strncmp(text, "root ::= tool-calls | content-root\ntool-calls ::= ", 49) == 0, "%.200s", text);
        for (size_t i = 0; i < sizeof tool_yes / sizeof tool_yes[0]; i++)
            ck_assert_msg(matches(g, tool_yes[i].text), "should match: %s\ngrammar:\n%s", tool_yes[i].text, text);
        for (size_t i = 0; i < sizeof tool_no / sizeof tool_no[0]; i++) {
            if (parallel && strstr(tool_no[i], ETC TC))
                continue; /* two calls: parallel ones are fine */
            ck_assert_msg(!matches(g, tool_no[i]), "should not match: %s\ngrammar:\n%s", tool_no[i], text);
        }
        for (size_t i = 0; i < sizeof json_yes / sizeof json_yes[0]; i++)
            ck_assert_msg(matches(g, json_yes[i]), "should match: %s\ngrammar:\n%s", json_yes[i], text);
        for (size_t i = 0; i < sizeof mixed / sizeof mixed[0]; i++)
            ck_assert_msg(!matches(g, mixed[i]), "should not match: %s\ngrammar:\n%s", mixed[i], text);
        ck_assert(matches(g, TC "ping" ETC "\n" TC "empty" ETC) == parallel);
        ck_assert(!matches(g, TC "ping" ETC "\n" TC "empty" ETC "{\"answer\":\"x\"}"));
        glm_grammar_free(g);
        free(text);
    }

    /* random texts of the combined grammar: tool calls or a valid answer */
    static const char *const tokens[] = {TC, ETC, "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>",
                                         "query", "limit", "search", "ping", "1", "{", "}", "\"answer\"", ":",
                                         "\"x\"", ",", "\"score\"", NULL};
    glm_grammar *g = either_grammar(TOOLS, 1, content, NULL);
    unsigned seed = 777;
    char buf[4096];
    int calls = 0, answers = 0;
    for (int k = 0; k < 600 && calls + answers < 150; k++) {
        int n = walk(g, &seed, buf, sizeof buf, 200, tokens);
        if (n < 0)
            continue;
        if (strncmp(buf, TC, strlen(TC)) == 0) {
            json_t *c = parse_calls(TOOLS, buf);
            ck_assert_msg(json_array_size(c) >= 1, "no call in %s", buf);
            json_decref(c);
            calls++;
        } else {
            json_error_t je;
            json_t *v = json_loadb(buf, (size_t)n, 0, &je);
            ck_assert_msg(v && pred_answer(v), "invalid answer: %s", buf);
            json_decref(v);
            answers++;
        }
    }
    ck_assert_int_ge(calls, 20);
    ck_assert_int_ge(answers, 20);
    glm_grammar_free(g);
    free(content);

    /* any JSON object */
    content = glm_json_object_gbnf();
    g = either_grammar(TOOLS, 0, content, NULL);
    ck_assert(matches(g, "{}"));
    ck_assert(matches(g, "{\"a\": [1, {\"b\": null}]}"));
    ck_assert(matches(g, TC "search" KV("query", "q") ETC));
    ck_assert(!matches(g, "[]"));
    ck_assert(!matches(g, "{}" TC "ping" ETC));
    glm_grammar_free(g);
    free(content);
}
END_TEST

/* A request's grammar whose rule names are the tool grammar's, and names in
 * every place a name may not be renamed. */
static const char *USER_GBNF =
    "# a user grammar: root call0 ws\n"
    "root ::= ( call0 ( ws \",\" ws call0 ){0,2 # count comment: root call0 }\n"
    "  } ) tool-calls?\n"
    "call0 ::= \"call0\" | [a-c]+ | \"root ::= x\" | \"\\\"\" jvalue \"\\\"\"   # literal: \"call0\" \n"
    "ws ::= [ \\]]*      # class with an escaped bracket: [root]\n"
    "jvalue ::= \"v\" \"#\" [#x] | 0\n"
    "0 ::= \"zero\"\n"
    "tool-calls ::= \"!\"\n"
    "content-root ::= \"never\"\n"
    "nl ::= \"\\r\\n\"\r\n"
    "c0-query::=nl";

START_TEST(tool_calls_or_user_grammar)
{
    char err[GLM_ERRLEN] = "", *text;
    glm_grammar *ug = glm_grammar_parse(USER_GBNF, strlen(USER_GBNF), NULL, err, sizeof err);
    ck_assert_msg(ug != NULL, "%s", err); /* the test grammar itself */
    glm_grammar *g = either_grammar(TOOLS, 1, USER_GBNF, &text);
    static const char *const yes[] = {"call0",  "abc",          "root ::= x", "\"v#x\"", "\"zero\"",
                                      "call0 ,ab", "a]]],]b,c!", "call0!",     "a,b,c"};
    static const char *const no[] = {"never", "!", "a,b,c,a", "content-root", "\"v#y\"", "call0 x", "\r\n", ""};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        ck_assert_msg(matches(ug, yes[i]), "user grammar: %s", yes[i]);
        ck_assert_msg(matches(g, yes[i]), "should match: %s\ngrammar:\n%s", yes[i], text);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        ck_assert_msg(!matches(ug, no[i]), "user grammar: %s", no[i]);
        ck_assert_msg(!matches(g, no[i]), "should not match: %s\ngrammar:\n%s", no[i], text);
    }
    /* the tool calls are the tools' own */
    for (size_t i = 0; i < sizeof tool_yes / sizeof tool_yes[0]; i++)
        ck_assert_msg(matches(g, tool_yes[i].text), "should match: %s\ngrammar:\n%s", tool_yes[i].text, text);
    ck_assert(matches(g, TC "ping" ETC "\n" TC "ping" ETC));
    ck_assert(!matches(g, TC "ping" ETC "!"));
    ck_assert(!matches(g, "abc" TC "ping" ETC));
    ck_assert(!matches(g, TC "ping" ETC "abc"));
    /* names renamed, literals, classes, counts and comments kept */
    static const char *const has[] = {
        "content-root ::= ( content-call0 ( content-ws \",\" content-ws content-call0 ){0,2 # count comment: root call0 }\n",
        "content-call0 ::= \"call0\" | [a-c]+ | \"root ::= x\" | \"\\\"\" content-jvalue \"\\\"\"   # literal: \"call0\" \n",
        "content-ws ::= [ \\]]*      # class with an escaped bracket: [root]\n",
        "content-jvalue ::= \"v\" \"#\" [#x] | content-0\n",
        "content-content-root ::= \"never\"\n",
        "content-c0-query::=content-nl",
        "\n# a user grammar: root call0 ws\n",
    };
    for (size_t i = 0; i < sizeof has / sizeof has[0]; i++)
        ck_assert_msg(strstr(text, has[i]) != NULL, "missing: %s\ngrammar:\n%s", has[i], text);
    glm_grammar_free(g);
    glm_grammar_free(ug);
    free(text);

    /* errors */
    const struct {
        const char *tools, *content, *err;
    } bad[] = {
        {TOOLS, NULL, "content: no grammar"},
        {TOOLS, "root ::= foo", "content: grammar line 1: undefined rule 'foo'"},
        {TOOLS, "start ::= \"x\"", "content: grammar line 1: no rule named 'root'"},
        {TOOLS, "root ::= \"x\"\nroot ::= \"y\"", "content: grammar line 2: rule 'root' is defined twice"},
        {"[]", "root ::= \"x\"", "tools: must be a non-empty array"},
        {"[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"strict\": true, \"parameters\": {\"type\": "
         "\"object\", \"properties\": {\"x\": {\"type\": \"string\", \"pattern\": \"a\"}}}}}]",
         "root ::= \"x\"", "tools[0].function.parameters.properties.x: 'pattern' is not supported"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        text = either_text(bad[i].tools, 0, bad[i].content, err, sizeof err);
        ck_assert_msg(text == NULL, "accepted: %s", bad[i].content);
        ck_assert_msg(strncmp(err, bad[i].err, strlen(bad[i].err)) == 0, "got  %s\nwant %s", err, bad[i].err);
    }
    /* a grammar that fits alone but not with its names prefixed */
    {
        size_t refs = 1800000;
        char *big = malloc(2 * refs + 64), *p = big;
        p = stpcpy(p, "root ::=");
        for (size_t i = 0; i < refs; i++)
            p = stpcpy(p, " a");
        strcpy(p, "\na ::= \"x\"\n");
        text = either_text(TOOLS, 0, big, err, sizeof err);
        ck_assert_ptr_null(text);
        ck_assert_msg(strstr(err, "content: the grammar with the tool calls would be over") == err, "%s", err);
        free(big);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("schema_grammar");
    TCase *tc = tcase_create("schema_grammar");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, schema_table);
    tcase_add_test(tc, json_object_grammar);
    tcase_add_test(tc, check_errors);
    tcase_add_test(tc, integer_ranges);
    tcase_add_test(tc, tool_calls);
    tcase_add_test(tc, tool_call_shapes);
    tcase_add_test(tc, tool_call_lenient);
    tcase_add_test(tc, tool_call_errors);
    tcase_add_test(tc, raw_string_lengths);
    tcase_add_test(tc, random_walks);
    tcase_add_test(tc, large_but_fine);
    tcase_add_test(tc, hostile);
    tcase_add_test(tc, wellformed);
    tcase_add_test(tc, wellformed_hostile);
    tcase_add_test(tc, tool_calls_or_content);
    tcase_add_test(tc, tool_calls_or_user_grammar);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
