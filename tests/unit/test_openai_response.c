/*
 * test_openai_response.c - engine events -> OpenAI JSON (server/openai_response.c)
 * without an engine: synthetic token events on the tiny tokenizer, checking
 * reasoning / content / tool-call splitting, finish reasons, stop strings,
 * usage, -inf logprobs and that streamed chunks add up to the one-shot answer.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "openai_response.h"
#include "structured.h"
#include "core/util.h"
#include "testutil.h"

#define TOK "tests/models/tiny/tokenizer.json"
/* "<think>r</think>hello<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value></tool_call>" */
static const int32_t CALL[] = {4057, 81, 4058, 3310, 78, 4059, 2148, 62, 86, 68, 3782,
                               4063, 66, 637, 4064, 4065, 47, 335, 705, 4066, 4060};
#define NCALL ((int)(sizeof CALL / sizeof CALL[0]))

static glm_tok *tok;
static glm_server srv;

static void setup(void)
{
    char err[GLM_ERRLEN];
    ck_assert_msg(glm_tok_load(TOK, &tok, err, sizeof err) == GLM_OK, "%s", err);
    memset(&srv, 0, sizeof srv);
    srv.tok = tok;
    srv.served_model_name = "tiny";
    srv.vocab = glm_tok_vocab_size(tok);
    glm_out_tags_default(&srv.tags);
    const int32_t eos[] = {4036, 4043, 4045}; /* the tiny model's generation_config */
    memcpy(srv.eos_ids, eos, sizeof eos);
    srv.n_eos = 3;
    glm_oai_vocab_setup(&srv); /* the tags' ids, as serve.c does */
    glm_server_ready(&srv);
}

static void teardown(void)
{
    glm_oai_vocab_free(&srv);
    glm_tok_free(tok);
}

static json_t *tools(void)
{
    return json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":"
                      "\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]",
                      0, NULL);
}

static void init_req(glm_oai_request *r, int chat, int stream)
{
    memset(r, 0, sizeof *r);
    glm_sampling_params_init(&r->sp);
    r->chat = chat;
    r->stream = stream;
    r->skip_special = 0;
    r->n_prompt = 5;
    r->n_prompts = 1;
    r->prompt_logprobs = -1;
    r->prompt_info.think = GLM_OUT_THINK_AUTO;
}

/* Feeds ids then a finish event; returns the SSE text (streaming) or NULL. */
static char *feed(glm_gen *g, const int32_t *ids, int n, glm_finish_reason fin, int stream, float lp)
{
    glm_buf out = {0};
    if (stream)
        glm_gen_stream_start(g, &out);
    for (int i = 0; i < n; i++) {
        glm_event ev = {0};
        ev.type = GLM_EV_TOKEN;
        ev.token = ids[i];
        ev.logprob = lp;
        ev.n_top = 1;
        ev.top_ids[0] = ids[i];
        ev.top_logprobs[0] = lp;
        if (glm_gen_event(g, &ev, stream ? &out : NULL))
            break;
    }
    glm_event ev = {0};
    ev.type = GLM_EV_FINISH;
    ev.finish = fin;
    ev.prompt_tokens = 5;
    ev.cached_tokens = 3;
    glm_gen_event(g, &ev, stream ? &out : NULL);
    if (stream)
        glm_gen_stream_end(g, &out);
    return out.p;
}

START_TEST(tool_call_one_shot)
{
    json_t *t = tools();
    glm_oai_request r;
    init_req(&r, 1, 0);
    r.prompt_info.parse_tools = 1;
    r.prompt_info.tools = t;
    glm_gen *g = glm_gen_create(&srv.gen, &r, "chatcmpl-x");
    feed(g, CALL, NCALL, GLM_FINISH_STOP, 0, -1.0f);
    char *s = glm_gen_response(g);
    ck_assert_ptr_nonnull(s);
    json_t *o = json_loads(s, 0, NULL);
    json_t *m = json_object_get(json_array_get(json_object_get(o, "choices"), 0), "message");
    ck_assert_str_eq(json_string_value(json_object_get(m, "reasoning_content")), "r");
    ck_assert_str_eq(json_string_value(json_object_get(m, "reasoning")), "r");
    ck_assert_str_eq(json_string_value(json_object_get(m, "content")), "hello");
    json_t *fn = json_object_get(json_array_get(json_object_get(m, "tool_calls"), 0), "function");
    ck_assert_str_eq(json_string_value(json_object_get(fn, "name")), "get_weather");
    ck_assert_str_eq(json_string_value(json_object_get(fn, "arguments")), "{\"city\": \"Paris\"}");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(o, "choices"), 0),
                                                       "finish_reason")), "tool_calls");
    json_t *u = json_object_get(o, "usage");
    ck_assert_int_eq(json_integer_value(json_object_get(u, "completion_tokens")), NCALL);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(u, "prompt_tokens_details"),
                                                        "cached_tokens")), 3);
    ck_assert_int_gt(json_integer_value(json_object_get(json_object_get(u, "completion_tokens_details"),
                                                        "reasoning_tokens")), 0);
    json_decref(o);
    free(s);
    glm_gen_free(g);
    json_decref(t);
}
END_TEST

START_TEST(tool_call_stream_adds_up)
{
    json_t *t = tools();
    glm_oai_request r;
    init_req(&r, 1, 1);
    r.prompt_info.parse_tools = 1;
    r.prompt_info.tools = t;
    r.include_usage = 1;
    r.logprobs = 1;
    r.top_logprobs = 1;
    r.sp.logprobs = 1;
    glm_gen *g = glm_gen_create(&srv.gen, &r, "chatcmpl-x");
    char *sse = feed(g, CALL, NCALL, GLM_FINISH_STOP, 1, -INFINITY);
    ck_assert_ptr_nonnull(sse);
    /* every event parses; deltas concatenate to the one-shot parts */
    char reasoning[256] = "", content[256] = "", args[256] = "", name[64] = "";
    const char *finish = NULL;
    int n_lp = 0, usage = 0, done = 0;
    json_t *keep = json_array();
    for (char *line = strtok(sse, "\n"); line; line = strtok(NULL, "\n")) {
        ck_assert(strncmp(line, "data: ", 6) == 0);
        if (strcmp(line + 6, "[DONE]") == 0) {
            done = 1;
            continue;
        }
        json_error_t je;
        json_t *c = json_loads(line + 6, 0, &je);
        ck_assert_msg(c != NULL, "%s: %s", je.text, line);
        json_array_append_new(keep, c);
        if (json_object_get(c, "usage")) {
            usage = 1;
            continue;
        }
        json_t *ch = json_array_get(json_object_get(c, "choices"), 0);
        json_t *d = json_object_get(ch, "delta");
        json_t *x;
        if ((x = json_object_get(d, "reasoning_content")))
            strcat(reasoning, json_string_value(x));
        if ((x = json_object_get(d, "content")))
            strcat(content, json_string_value(x));
        json_t *tc = json_array_get(json_object_get(d, "tool_calls"), 0);
        if (tc) {
            json_t *fn = json_object_get(tc, "function");
            if ((x = json_object_get(fn, "name")))
                strcat(name, json_string_value(x));
            strcat(args, json_string_value(json_object_get(fn, "arguments")));
        }
        json_t *lp = json_object_get(json_object_get(ch, "logprobs"), "content");
        for (size_t i = 0; i < json_array_size(lp); i++, n_lp++)
            ck_assert(json_real_value(json_object_get(json_array_get(lp, i), "logprob")) == -9999.0);
        if (json_is_string(json_object_get(ch, "finish_reason")))
            finish = json_string_value(json_object_get(ch, "finish_reason"));
    }
    ck_assert_str_eq(reasoning, "r");
    ck_assert_str_eq(content, "hello");
    ck_assert_str_eq(name, "get_weather");
    ck_assert_str_eq(args, "{\"city\": \"Paris\"}");
    ck_assert_str_eq(finish, "tool_calls");
    ck_assert_int_eq(n_lp, NCALL);
    ck_assert(usage && done);
    json_decref(keep);
    free(sse);
    glm_gen_free(g);
    json_decref(t);
}
END_TEST

START_TEST(completion_stop_string)
{
    /* "hello" is tokens [3310] in CALL; stop on "ell": text before it is "h" */
    static const char *stops[] = {"ell"};
    glm_oai_request r;
    init_req(&r, 0, 0);
    r.stops[0] = stops[0];
    r.stop_lens[0] = 3;
    r.n_stops = 1;
    glm_gen *g = glm_gen_create(&srv.gen, &r, "cmpl-x");
    feed(g, CALL + 3, 3, GLM_FINISH_LENGTH, 0, -0.5f);
    char *s = glm_gen_response(g);
    json_t *o = json_loads(s, 0, NULL);
    json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(ch, "text")), "h");
    ck_assert_str_eq(json_string_value(json_object_get(ch, "finish_reason")), "stop");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(o, "usage"), "completion_tokens")), 1);
    json_decref(o);
    free(s);
    glm_gen_free(g);
}
END_TEST

/* Chat with skip_special_tokens (the default) still hands the reasoning and
 * tool-call tags to the parser, drops other special tokens, and never shows the
 * end-of-sequence token that ended the answer; completions without
 * skip_special_tokens keep special tokens but not that eos either. */
START_TEST(special_tokens_and_eos)
{
    json_t *t = tools();
    int32_t ids[NCALL + 1];
    memcpy(ids, CALL, sizeof CALL);
    ids[3] = ids[4] = 4038; /* [gMASK] in place of "hello": not a tag, dropped */
    ids[NCALL] = 4045;      /* <|observation|>: eos */
    glm_oai_request r;
    init_req(&r, 1, 0);
    r.skip_special = 1;
    r.prompt_info.parse_tools = 1;
    r.prompt_info.tools = t;
    glm_gen *g = glm_gen_create(&srv.gen, &r, "chatcmpl-x");
    feed(g, ids, NCALL + 1, GLM_FINISH_STOP, 0, -1.0f);
    char *s = glm_gen_response(g);
    json_t *o = json_loads(s, 0, NULL);
    json_t *m = json_object_get(json_array_get(json_object_get(o, "choices"), 0), "message");
    ck_assert_str_eq(json_string_value(json_object_get(m, "reasoning_content")), "r");
    ck_assert(json_is_null(json_object_get(m, "content")));
    json_t *fn = json_object_get(json_array_get(json_object_get(m, "tool_calls"), 0), "function");
    ck_assert_str_eq(json_string_value(json_object_get(fn, "arguments")), "{\"city\": \"Paris\"}");
    json_decref(o);
    free(s);
    glm_gen_free(g);

    /* completions, skip_special_tokens false: [gMASK] stays, the final eos does not */
    int32_t text[] = {3310, 78, 4038, 4043};
    init_req(&r, 0, 0);
    g = glm_gen_create(&srv.gen, &r, "cmpl-x");
    feed(g, text, 4, GLM_FINISH_STOP, 0, -1.0f);
    s = glm_gen_response(g);
    o = json_loads(s, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(o, "choices"), 0), "text")),
                     "hello[gMASK]");
    json_decref(o);
    free(s);
    glm_gen_free(g);
    json_decref(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("openai_response");
    TCase *tc = tcase_create("openai_response");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, tool_call_one_shot);
    tcase_add_test(tc, tool_call_stream_adds_up);
    tcase_add_test(tc, completion_stop_string);
    tcase_add_test(tc, special_tokens_and_eos);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
