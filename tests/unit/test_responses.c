/*
 * test_responses.c - the Responses API's answer (server/responses_output.c)
 * without an engine: synthetic token events on the tiny tokenizer through
 * openai_response.c's format hooks. Checks the event order and sequence
 * numbers, that streamed deltas add up to the items of the one-shot
 * response, the incomplete status, and the failed stream (an `error` event
 * and response.failed), which the integration tests cannot provoke.
 */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "openai_response.h"
#include "responses.h"
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
static json_t *tools;

static void setup(void)
{
    char err[GLM_ERRLEN];
    ck_assert_msg(glm_tok_load(TOK, &tok, err, sizeof err) == GLM_OK, "%s", err);
    memset(&srv, 0, sizeof srv);
    srv.tok = tok;
    srv.served_model_name = "tiny";
    srv.vocab = glm_tok_vocab_size(tok);
    glm_out_tags_default(&srv.tags);
    const int32_t eos[] = {4036, 4043, 4045};
    memcpy(srv.eos_ids, eos, sizeof eos);
    srv.n_eos = 3;
    glm_oai_vocab_setup(&srv);
    glm_server_ready(&srv);
    tools = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":"
                       "\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]",
                       0, NULL);
}

static void teardown(void)
{
    json_decref(tools);
    glm_oai_vocab_free(&srv);
    glm_tok_free(tok);
}

/* A chat request carrying the Responses format, as responses.c leaves it. */
static void init_req(glm_oai_request *r, int stream)
{
    memset(r, 0, sizeof *r);
    glm_sampling_params_init(&r->sp);
    r->chat = 1;
    r->stream = stream;
    r->n_prompt = 5;
    r->n_prompts = 1;
    r->prompt_logprobs = -1;
    r->prompt_info.think = GLM_OUT_THINK_AUTO;
    r->prompt_info.parse_tools = 1;
    r->prompt_info.tools = json_incref(tools);
    r->format = &glm_resp_format;
    r->format_ctx = glm_resp_format_new(json_pack("{s:s,s:{}}", "model", "tiny", "metadata"));
}

static void token(glm_gen *g, int32_t id, glm_buf *out)
{
    glm_event ev = {0};
    ev.type = GLM_EV_TOKEN;
    ev.token = id;
    glm_gen_event(g, &ev, out);
}

static void finish(glm_gen *g, glm_finish_reason fin, glm_buf *out)
{
    glm_event ev = {0};
    ev.type = GLM_EV_FINISH;
    ev.finish = fin;
    glm_gen_event(g, &ev, out);
}

/* The events of an SSE text: each "event: T\ndata: {...}" checked (T is the data's type, the
 * sequence numbers count from 0, no [DONE]); returns them as an array. */
static json_t *events_of(char *sse)
{
    json_t *evs = json_array();
    char *save = NULL;
    for (char *block = strtok_r(sse, "\n", &save); block; block = strtok_r(NULL, "\n", &save)) {
        ck_assert_msg(strncmp(block, "event: ", 7) == 0, "%s", block);
        char *data = strtok_r(NULL, "\n", &save);
        ck_assert_ptr_nonnull(data);
        ck_assert(strncmp(data, "data: ", 6) == 0);
        json_t *ev = json_loads(data + 6, 0, NULL);
        ck_assert_ptr_nonnull(ev);
        ck_assert_str_eq(json_string_value(json_object_get(ev, "type")), block + 7);
        ck_assert_int_eq(json_integer_value(json_object_get(ev, "sequence_number")), (int)json_array_size(evs));
        json_array_append_new(evs, ev);
    }
    return evs;
}

static const char *type_of(json_t *evs, size_t i)
{
    return json_string_value(json_object_get(json_array_get(evs, i), "type"));
}

/* The text of the deltas of events of this type, joined. */
static void deltas(json_t *evs, const char *type, char *buf, size_t n)
{
    buf[0] = 0;
    size_t i;
    json_t *ev;
    json_array_foreach(evs, i, ev)
        if (strcmp(type_of(evs, i), type) == 0)
            strncat(buf, json_string_value(json_object_get(ev, "delta")), n - strlen(buf) - 1);
}

/* The output items without their ids (a stream and a one-shot answer are different responses). */
static char *items_without_ids(json_t *output)
{
    json_t *o = json_deep_copy(output);
    size_t i;
    json_t *it;
    json_array_foreach(o, i, it)
        json_object_del(it, "id");
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

START_TEST(stream_adds_up_to_the_response)
{
    glm_oai_request rs, r1;
    init_req(&rs, 1);
    init_req(&r1, 0);
    glm_gen *gs = glm_gen_create(&srv.gen, &rs, "resp_a"), *g1 = glm_gen_create(&srv.gen, &r1, "resp_b");
    glm_buf out = {0};
    glm_gen_stream_start(gs, &out);
    for (int i = 0; i < NCALL; i++) {
        token(gs, CALL[i], &out);
        token(g1, CALL[i], NULL);
    }
    finish(gs, GLM_FINISH_STOP, &out);
    finish(g1, GLM_FINISH_STOP, NULL);
    glm_gen_stream_end(gs, &out);
    json_t *evs = events_of(out.p);

    static const char *const order[] = {
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added", "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done", "response.completed"};
    size_t k = 0;
    for (size_t i = 0; i < json_array_size(evs); i++)
        if (i == 0 || strcmp(type_of(evs, i), type_of(evs, i - 1)) != 0) {
            ck_assert_uint_lt(k, sizeof order / sizeof order[0]);
            ck_assert_str_eq(type_of(evs, i), order[k++]);
        }
    ck_assert_uint_eq(k, sizeof order / sizeof order[0]);

    char buf[256];
    deltas(evs, "response.reasoning_text.delta", buf, sizeof buf);
    ck_assert_str_eq(buf, "r");
    deltas(evs, "response.output_text.delta", buf, sizeof buf);
    ck_assert_str_eq(buf, "hello");
    deltas(evs, "response.function_call_arguments.delta", buf, sizeof buf);
    ck_assert_str_eq(buf, "{\"city\": \"Paris\"}");

    json_t *done = json_object_get(json_array_get(evs, json_array_size(evs) - 1), "response");
    ck_assert_str_eq(json_string_value(json_object_get(done, "status")), "completed");
    ck_assert_str_eq(json_string_value(json_object_get(done, "id")), "resp_a");
    json_t *call = json_array_get(json_object_get(done, "output"), 2);
    ck_assert_str_eq(json_string_value(json_object_get(call, "type")), "function_call");
    ck_assert_str_eq(json_string_value(json_object_get(call, "name")), "get_weather");
    ck_assert_str_eq(json_string_value(json_object_get(call, "id")), "fc_a_2");

    char *body = glm_gen_response(g1);
    json_t *one = json_loads(body, 0, NULL);
    char *a = items_without_ids(json_object_get(done, "output"));
    char *b = items_without_ids(json_object_get(one, "output"));
    ck_assert_str_eq(a, b);
    json_t *u = json_object_get(one, "usage");
    ck_assert_int_eq(json_integer_value(json_object_get(u, "output_tokens")), NCALL);
    ck_assert_int_eq(json_integer_value(json_object_get(u, "total_tokens")), NCALL + 5);
    ck_assert_int_gt(json_integer_value(json_object_get(json_object_get(u, "output_tokens_details"),
                                                        "reasoning_tokens")), 0);
    free(a);
    free(b);
    free(body);
    json_decref(one);
    json_decref(evs);
    glm_buf_free(&out);
    glm_gen_free(gs);
    glm_gen_free(g1);
    glm_oai_request_free(&rs);
    glm_oai_request_free(&r1);
}
END_TEST

START_TEST(length_is_incomplete)
{
    glm_oai_request r;
    init_req(&r, 0);
    glm_gen *g = glm_gen_create(&srv.gen, &r, "resp_c");
    for (int i = 0; i < 4; i++) /* "<think>r</think>hello" */
        token(g, CALL[i], NULL);
    finish(g, GLM_FINISH_LENGTH, NULL);
    char *body = glm_gen_response(g);
    json_t *o = json_loads(body, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(o, "status")), "incomplete");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "incomplete_details"), "reason")),
                     "max_output_tokens");
    json_t *out = json_object_get(o, "output");
    ck_assert_uint_eq(json_array_size(out), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(out, 0), "status")), "completed");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(out, 1), "status")), "incomplete");
    ck_assert(json_is_false(json_object_get(o, "store")));
    free(body);
    json_decref(o);
    glm_gen_free(g);
    glm_oai_request_free(&r);
}
END_TEST

START_TEST(failed_stream)
{
    glm_oai_request r;
    init_req(&r, 1);
    glm_gen *g = glm_gen_create(&srv.gen, &r, "resp_d");
    glm_buf out = {0};
    glm_gen_stream_start(g, &out);
    for (int i = 0; i < 5; i++) /* into the answer: "hel..." is streaming */
        token(g, CALL[i], &out);
    glm_gen_stream_error(g, 400, "the grammar is too costly", &out);
    json_t *evs = events_of(out.p);
    size_t n = json_array_size(evs), i;
    for (i = 0; i < n && strcmp(type_of(evs, i), "error") != 0; i++)
        ;
    ck_assert_uint_lt(i, n);
    json_t *err = json_array_get(evs, i);
    ck_assert_str_eq(json_string_value(json_object_get(err, "code")), "invalid_prompt");
    ck_assert_str_eq(json_string_value(json_object_get(err, "message")), "the grammar is too costly");
    ck_assert_str_eq(type_of(evs, n - 1), "response.failed");
    json_t *resp = json_object_get(json_array_get(evs, n - 1), "response");
    ck_assert_str_eq(json_string_value(json_object_get(resp, "status")), "failed");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(resp, "error"), "code")), "invalid_prompt");
    /* the open message was closed before the end, as incomplete; nothing says completed */
    json_t *output = json_object_get(resp, "output");
    json_t *last = json_array_get(output, json_array_size(output) - 1);
    ck_assert_str_eq(json_string_value(json_object_get(last, "status")), "incomplete");
    for (i = 0; i < n; i++)
        ck_assert(strcmp(type_of(evs, i), "response.completed") != 0);
    json_decref(evs);
    glm_buf_free(&out);
    glm_gen_free(g);
    glm_oai_request_free(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("responses");
    TCase *tc = tcase_create("responses");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, stream_adds_up_to_the_response);
    tcase_add_test(tc, length_is_incomplete);
    tcase_add_test(tc, failed_stream);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
