/*
 * bench_grammar.c - the cost of constrained decoding per generated token
 * (build/glm-bench-grammar): the vocabulary trie's build time, then for a JSON
 * object, a JSON-Schema document and GLM-5 tool calls, the document is
 * tokenized and replayed token by token as the server's logits processor
 * does it: a mask over the whole vocabulary (which must allow the next token),
 * then accepting that token. Prints per-token mask and accept times, and the
 * mask's work units (glm_grammar_matcher_mask_cost: what the server's limit on
 * a grammar step counts, constraint.h) with the time per unit. A last case is
 * a grammar built to be costly (ambiguous nested repetitions), the kind that
 * limit stops.
 *
 *   glm-bench-grammar [--tokenizer FILE] [--repeat N]
 * Default tokenizer: models/tokenizer-large/tokenizer.json (154,880 ids).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/constraint.h"
#include "constrain/grammar.h"
#include "glm/output_parser.h"
#include "constrain/schema_grammar.h"
#include "glm/tool_grammar.h"
#include "text/tokenizer.h"
#include "core/util.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const char *OBJECT_DOC =
    "{\"id\": 48213, \"name\": \"Grand H\\u00f4tel du Lac\", \"rating\": 4.5, \"open\": true, "
    "\"address\": {\"street\": \"12 Quai du Mont-Blanc\", \"city\": \"Gen\xc3\xa8ve\", \"zip\": \"1201\"}, "
    "\"tags\": [\"lake view\", \"spa\", \"restaurant\", \"parking\"], \"rooms\": [{\"type\": \"single\", "
    "\"price\": 210.0, \"available\": 3}, {\"type\": \"double\", \"price\": 320.5, \"available\": 0}], "
    "\"description\": \"A historic hotel on the shore of Lake Geneva, opened in 1898 and renovated in 2019. "
    "Rooms face the water or the old town; the restaurant serves seasonal dishes from local producers.\", "
    "\"manager\": null}";

static const char *SCHEMA =
    "{\"type\": \"object\", \"properties\": {"
    "\"city\": {\"type\": \"string\", \"maxLength\": 64}, \"temperature\": {\"type\": \"number\"}, "
    "\"unit\": {\"enum\": [\"celsius\", \"fahrenheit\"]}, \"days\": {\"type\": \"integer\", \"minimum\": 1, "
    "\"maximum\": 14}, \"forecast\": {\"type\": \"array\", \"items\": {\"type\": \"object\", \"properties\": {"
    "\"day\": {\"type\": \"integer\"}, \"summary\": {\"type\": \"string\"}}, \"required\": [\"day\", "
    "\"summary\"], \"additionalProperties\": false}, \"maxItems\": 14}}, \"required\": [\"city\", "
    "\"temperature\", \"unit\", \"days\", \"forecast\"], \"additionalProperties\": false}";
static const char *SCHEMA_DOC =
    "{\"city\": \"Paris\", \"temperature\": 21.5, \"unit\": \"celsius\", \"days\": 3, \"forecast\": ["
    "{\"day\": 1, \"summary\": \"Sunny with a light breeze from the west\"}, {\"day\": 2, \"summary\": "
    "\"Clouds in the morning, clearing by the afternoon\"}, {\"day\": 3, \"summary\": \"Showers\"}]}";

static const char *TOOLS =
    "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\", "
    "\"properties\": {\"city\": {\"type\": \"string\"}, \"days\": {\"type\": \"integer\"}}, \"required\": "
    "[\"city\"]}}}, {\"type\": \"function\", \"function\": {\"name\": \"search\", \"parameters\": {\"type\": "
    "\"object\", \"properties\": {\"query\": {\"type\": \"string\"}, \"limit\": {\"type\": \"integer\"}, "
    "\"filters\": {\"type\": \"object\", \"properties\": {\"lang\": {\"type\": \"string\"}, \"after\": "
    "{\"type\": \"string\"}}}}, \"required\": [\"query\"]}}}]";
static const char *TOOLS_DOC =
    "<tool_call>get_weather<arg_key>city</arg_key><arg_value>San Francisco, California</arg_value>"
    "<arg_key>days</arg_key><arg_value>5</arg_value></tool_call>\n<tool_call>search<arg_key>query</arg_key>"
    "<arg_value>best hiking trails near the Golden Gate bridge with ocean views</arg_value><arg_key>limit"
    "</arg_key><arg_value>10</arg_value><arg_key>filters</arg_key><arg_value>{\"lang\": \"en\", \"after\": "
    "\"2024-01-01\"}</arg_value></tool_call>";

/* Replays doc through the grammar; prints the per-token figures. */
static int run(const char *label, const char *gbnf, const char *doc, const glm_tok *tok, const glm_token_trie *trie,
               int repeat)
{
    char err[GLM_ERRLEN];
    glm_grammar *g = glm_grammar_parse(gbnf, strlen(gbnf), "root", err, sizeof err);
    if (!g) {
        fprintf(stderr, "bench_grammar: %s: %s\n", label, err);
        return 1;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if (glm_tok_encode(tok, doc, strlen(doc), 1, &ids, &n, err, sizeof err) != GLM_OK) {
        fprintf(stderr, "bench_grammar: %s\n", err);
        return 1;
    }
    int vocab = glm_token_trie_vocab(trie);
    uint32_t *allowed = glm_malloc(sizeof(uint32_t) * (size_t)((vocab + 31) / 32));
    double *mask_ms = glm_malloc(sizeof(double) * n * (size_t)repeat);
    double accept_total = 0, allowed_total = 0, cost_total = 0;
    uint64_t cost_max = 0;
    size_t k = 0;
    for (int r = 0; r < repeat; r++) {
        glm_grammar_matcher *m = glm_grammar_matcher_new(g);
        for (size_t i = 0; i < n; i++) {
            uint64_t cost = 0;
            double t0 = glm_now();
            int na = glm_grammar_matcher_mask_cost(m, trie, allowed, &cost);
            double t1 = glm_now();
            cost_total += (double)cost;
            cost_max = GLM_MAX(cost_max, cost);
            if (!(allowed[ids[i] >> 5] >> (ids[i] & 31) & 1u)) {
                fprintf(stderr, "bench_grammar: %s: token %zu (id %d) not allowed\n", label, i, ids[i]);
                return 1;
            }
            size_t bl;
            const char *b = glm_tok_token_bytes(tok, ids[i], &bl);
            double t2 = glm_now();
            int ok = glm_grammar_matcher_accept(m, b, bl);
            double t3 = glm_now();
            if (!ok) {
                fprintf(stderr, "bench_grammar: %s: token %zu rejected\n", label, i);
                return 1;
            }
            mask_ms[k++] = (t1 - t0) * 1e3;
            accept_total += (t3 - t2) * 1e3;
            allowed_total += na;
        }
        if (!glm_grammar_matcher_can_end(m)) {
            fprintf(stderr, "bench_grammar: %s: the document is incomplete for the grammar\n", label);
            return 1;
        }
        glm_grammar_matcher_free(m);
    }
    double sum = 0;
    for (size_t i = 0; i < k; i++)
        sum += mask_ms[i];
    qsort(mask_ms, k, sizeof *mask_ms, cmp_double);
    printf("%-12s %5zu tokens  mask: mean %.3f  p50 %.3f  p99 %.3f  max %.3f ms  allowed mean %.0f  "
           "accept mean %.4f ms\n%-12s %5s         work units per mask: mean %.0f  max %llu  (%.1f ns a unit)\n",
           label, n, sum / (double)k, mask_ms[k / 2], mask_ms[(size_t)(k * 0.99)], mask_ms[k - 1],
           allowed_total / (double)k, accept_total / (double)k, "", "", cost_total / (double)k,
           (unsigned long long)cost_max, cost_total > 0 ? sum * 1e6 / cost_total : 0.0);
    free(mask_ms);
    free(allowed);
    free(ids);
    glm_grammar_free(g);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = "models/tokenizer-large/tokenizer.json";
    int repeat = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: glm-bench-grammar [--tokenizer FILE] [--repeat N]\n");
            return 2;
        }
    }
    if (repeat < 1)
        repeat = 1;
    char err[GLM_ERRLEN];
    glm_tok *tok;
    if (glm_tok_load(path, &tok, err, sizeof err) != GLM_OK) {
        fprintf(stderr, "bench_grammar: %s\n", err);
        return 1;
    }
    /* the two vocabularies the server builds: ordinary tokens, and those plus the tool-call tags */
    int vocab = glm_tok_vocab_size(tok);
    double t0 = glm_now();
    glm_token_trie *text = glm_constraint_vocab(tok, vocab, NULL, 0);
    double t1 = glm_now();
    glm_out_tags tags;
    glm_out_tags_default(&tags);
    const char *tag[GLM_OUT_TAG_COUNT];
    glm_out_tag_list(&tags, tag);
    glm_token_trie *tools = glm_constraint_vocab(tok, vocab, tag + GLM_OUT_TAG_TOOL_CALL_START, 6);
    printf("tokenizer %s: %d ids; trie built in %.1f ms\n", path, vocab, (t1 - t0) * 1e3);

    int rc = 0;
    char *g = glm_json_object_gbnf();
    rc |= run("json_object", g, OBJECT_DOC, tok, text, repeat);
    free(g);
    json_t *schema = json_loads(SCHEMA, 0, NULL);
    g = glm_schema_gbnf(schema, err, sizeof err);
    if (!g) {
        fprintf(stderr, "bench_grammar: %s\n", err);
        return 1;
    }
    rc |= run("json_schema", g, SCHEMA_DOC, tok, text, repeat);
    free(g);
    json_decref(schema);
    json_t *t = json_loads(TOOLS, 0, NULL);
    g = glm_tool_calls_gbnf(t, NULL, 1, &tags, err, sizeof err);
    if (!g) {
        fprintf(stderr, "bench_grammar: %s\n", err);
        return 1;
    }
    rc |= run("tool_calls", g, TOOLS_DOC, tok, tools, repeat);
    free(g);
    json_decref(t);
    /* tests/integration/test_reasoning_tools.py: test_costly_grammar_is_stopped */
    rc |= run("costly", "root ::= ([a-z ]{0,300}){0,300} \"!\"", "the cat sat on the mat!", tok, text, 1);
    glm_token_trie_free(text);
    glm_token_trie_free(tools);
    glm_tok_free(tok);
    return rc;
}
