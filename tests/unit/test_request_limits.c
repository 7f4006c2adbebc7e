/*
 * test_request_limits.c - the bounds on a request (engine/glm/chat_prompt.h's
 * glm_chat_limits) and the parse gate (server/parse_gate.h):
 *   - the limits glm_chat_limits_init derives from the context length;
 *   - glm_chat_prompt_build on the tiny model's template accepts a request at
 *     each limit and refuses one past it, naming the field (messages, content
 *     parts, tools, chat_template_kwargs, tool-call arguments);
 *   - the template sees the request's values, not copies: the request's
 *     reference counts are as before once the prompt is built, and a message
 *     that needs no change reaches the template as the same object;
 *   - the prompt's ids kept up to max_ids, counted in full;
 *   - the gate: slots taken and given back, a full gate refuses after its
 *     wait, a waiter gets a slot that frees up.
 */
#include <check.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "glm/chat_prompt.h"
#include "parse_gate.h"
#include "testutil.h"

#define TINY "tests/models/tiny"

static glm_chat_template *tmpl;
static glm_tok *tok;
static glm_out_tags tags;

static void setup(void)
{
    char err[GLM_ERRLEN];
    ck_assert_msg(glm_chat_template_load(TINY, &tmpl, err, sizeof err) == GLM_OK, "%s", err);
    ck_assert_msg(glm_tok_load(TINY "/tokenizer.json", &tok, err, sizeof err) == GLM_OK, "%s", err);
    glm_out_tags_default(&tags);
}

static void teardown(void)
{
    glm_chat_template_free(tmpl);
    glm_tok_free(tok);
}

static glm_chat_ctx ctx(int max_model_len)
{
    glm_chat_ctx c = {.tmpl = tmpl, .tok = tok, .tags = &tags};
    glm_chat_limits_init(&c.limits, max_model_len);
    return c;
}

/* Builds the prompt of the request text `js`; returns GLM_OK or GLM_ERR with the message in err and the
 * blamed field in param. */
static int build(const glm_chat_ctx *c, json_t *req, char *err, char *param)
{
    glm_chat_prompt p;
    int rc = glm_chat_prompt_build(c, req, 0, &p, err, GLM_ERRLEN);
    strcpy(param, p.param);
    glm_chat_prompt_free(&p);
    return rc;
}

static json_t *user(const char *text)
{
    return json_pack("{s:s,s:s}", "role", "user", "content", text);
}

START_TEST(limits_from_the_context)
{
    glm_chat_limits l;
    glm_chat_limits_init(&l, 4096);
    ck_assert_int_eq(l.json.max_depth, 128);
    ck_assert_uint_eq(l.json.max_values, 65536 + 4096);
    ck_assert_uint_eq(l.json.max_members, 65536);
    ck_assert_int_eq(l.max_messages, 4096);
    ck_assert_int_eq(l.max_parts, 4096);
    ck_assert_int_eq(l.max_tools, 128);
    ck_assert_uint_eq(l.kwargs.max_values, 4096);
    ck_assert_int_eq(l.kwargs.max_depth, 16);
    ck_assert_uint_eq(l.kwargs.max_string_bytes, (size_t)1 << 20);
    glm_chat_limits_init(&l, 202752); /* GLM-5 */
    ck_assert_uint_eq(l.json.max_values, 65536 + 202752);
    ck_assert_uint_eq(l.json.max_members, 202752);
    ck_assert_int_eq(l.max_messages, 202752);
}
END_TEST

START_TEST(messages_and_parts)
{
    glm_chat_ctx c = ctx(64);
    char err[GLM_ERRLEN], param[64];
    json_t *msgs = json_array();
    for (int i = 0; i < 64; i++)
        json_array_append_new(msgs, user("x"));
    json_t *req = json_pack("{s:o}", "messages", msgs);
    ck_assert_msg(build(&c, req, err, param) == GLM_OK, "%s", err);
    json_array_append_new(msgs, user("x"));
    ck_assert_int_eq(build(&c, req, err, param), GLM_ERR);
    ck_assert_str_eq(param, "messages");
    ck_assert_str_eq(err, "Invalid 'messages': array too long. Expected an array with maximum length 64, but got "
                          "an array with length 65 instead.");
    json_decref(req);

    json_t *parts = json_array();
    for (int i = 0; i < 64; i++)
        json_array_append_new(parts, json_pack("{s:s,s:s}", "type", "text", "text", "y"));
    req = json_pack("{s:[o,{s:s,s:O}]}", "messages", user("a"), "role", "user", "content", parts);
    ck_assert_msg(build(&c, req, err, param) == GLM_OK, "%s", err);
    json_array_append_new(parts, json_pack("{s:s,s:s}", "type", "text", "text", "y"));
    ck_assert_int_eq(build(&c, req, err, param), GLM_ERR);
    ck_assert_str_eq(param, "messages");
    ck_assert_msg(strstr(err, "Invalid 'messages[1].content': array too long") != NULL, "%s", err);
    json_decref(parts);
    json_decref(req);

    /* no limits: what the context would refuse is built */
    glm_chat_ctx none = {.tmpl = tmpl, .tok = tok, .tags = &tags};
    msgs = json_array();
    for (int i = 0; i < 100; i++)
        json_array_append_new(msgs, user("x"));
    req = json_pack("{s:o}", "messages", msgs);
    ck_assert_msg(build(&none, req, err, param) == GLM_OK, "%s", err);
    json_decref(req);
}
END_TEST

START_TEST(tools_at_the_limit)
{
    glm_chat_ctx c = ctx(4096);
    char err[GLM_ERRLEN], param[64];
    json_t *tools = json_array();
    for (int i = 0; i < 128; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", i);
        json_array_append_new(tools, json_pack("{s:s,s:{s:s}}", "type", "function", "function", "name", name));
    }
    json_t *req = json_pack("{s:[o],s:O,s:{s:s,s:{s:s}}}", "messages", user("hi"), "tools", tools, "tool_choice",
                            "type", "function", "function", "name", "f127");
    glm_chat_prompt p;
    ck_assert_msg(glm_chat_prompt_build(&c, req, 0, &p, err, sizeof err) == GLM_OK, "%s", err);
    /* the prompt keeps the tools, not the request */
    ck_assert_int_eq(tools->refcount, 3);
    ck_assert_str_eq(p.tool_name, "f127");
    json_decref(req);
    ck_assert_int_eq(tools->refcount, 2);
    ck_assert_str_eq(p.tool_name, "f127");
    glm_chat_prompt_free(&p);
    ck_assert_int_eq(tools->refcount, 1);
    json_array_append_new(tools, json_pack("{s:s,s:{s:s}}", "type", "function", "function", "name", "g"));
    req = json_pack("{s:[o],s:O}", "messages", user("hi"), "tools", tools);
    ck_assert_int_eq(build(&c, req, err, param), GLM_ERR);
    ck_assert_str_eq(param, "tools");
    ck_assert_str_eq(err, "Invalid 'tools': array too long. Expected an array with maximum length 128, but got an "
                          "array with length 129 instead.");
    json_decref(req);
    json_decref(tools);
}
END_TEST

START_TEST(template_kwargs)
{
    glm_chat_ctx c = ctx(4096);
    char err[GLM_ERRLEN], param[64];
    json_t *arr = json_array();
    for (int i = 0; i < 4094; i++)
        json_array_append_new(arr, json_integer(i));
    /* the object, its array and 4094 numbers: 4096 values */
    json_t *req = json_pack("{s:[o],s:{s:O}}", "messages", user("hi"), "chat_template_kwargs", "x", arr);
    ck_assert_msg(build(&c, req, err, param) == GLM_OK, "%s", err);
    json_array_append_new(arr, json_integer(0));
    ck_assert_int_eq(build(&c, req, err, param), GLM_ERR);
    ck_assert_str_eq(param, "chat_template_kwargs");
    ck_assert_str_eq(err, "'chat_template_kwargs' holds more than 4096 JSON values");
    json_decref(req);
    json_decref(arr);
    /* strings: 1 MiB in all, names included */
    size_t n = ((size_t)1 << 20) - 1;
    char *big = malloc(n + 2);
    memset(big, 'a', n + 1);
    big[n] = 0;
    req = json_pack("{s:[o],s:{s:s}}", "messages", user("hi"), "chat_template_kwargs", "k", big);
    ck_assert_msg(build(&c, req, err, param) == GLM_OK, "%s", err);
    json_decref(req);
    big[n] = 'a';
    big[n + 1] = 0;
    req = json_pack("{s:[o],s:{s:s}}", "messages", user("hi"), "chat_template_kwargs", "k", big);
    ck_assert_int_eq(build(&c, req, err, param), GLM_ERR);
    ck_assert_str_eq(err, "'chat_template_kwargs' holds more than 1048576 bytes of strings");
    json_decref(req);
    free(big);
    /* nesting */
    json_t *deep = json_integer(1);
    for (int i = 0; i < 16; i++)
        deep = json_pack("[o]", deep);
    req = json_pack("{s:[o],s:{s:o}}", "messages", user("hi"), "chat_template_kwargs", "d", deep);
    ck_assert_int_eq(build(&c, req, err, param), GLM_ERR);
    ck_assert_str_eq(err, "'chat_template_kwargs' nests JSON deeper than 16 levels");
    json_decref(req);
    /* the server's defaults are checked the same way (at start-up) */
    json_t *kw = json_pack("{s:[[[[[[[[[[[[[[[[i]]]]]]]]]]]]]]]]}", "d", 1);
    ck_assert_int_eq(glm_chat_kwargs_check(&c.limits, kw, "--default-chat-template-kwargs", err, sizeof err), GLM_ERR);
    ck_assert_str_eq(err, "--default-chat-template-kwargs nests JSON deeper than 16 levels");
    json_decref(kw);
}
END_TEST

/* A chat request whose assistant turn calls a tool with arguments text of n values (n >= 3): an object
 * of two arrays (one array or object holds 65536 members at most). */
static json_t *with_arguments(size_t n)
{
    glm_buf b = {0};
    size_t zeros = n - 3;
    glm_buf_puts(&b, "{\"a\": [");
    for (size_t i = 0; i < zeros / 2; i++)
        glm_buf_puts(&b, i ? ",0" : "0");
    glm_buf_puts(&b, "], \"b\": [");
    for (size_t i = 0; i < zeros - zeros / 2; i++)
        glm_buf_puts(&b, i ? ",0" : "0");
    glm_buf_puts(&b, "]}");
    json_t *req = json_pack("{s:[o,{s:s,s:n,s:[{s:s,s:s,s:{s:s,s:s}}]}]}", "messages", user("hi"), "role",
                            "assistant", "content", "tool_calls", "id", "c1", "type", "function", "function",
                            "name", "f", "arguments", glm_buf_str(&b));
    glm_buf_free(&b);
    return req;
}

START_TEST(tool_call_arguments)
{
    glm_chat_ctx c = ctx(4096);
    char err[GLM_ERRLEN], param[64];
    /* the request's own values (15) and the arguments' together fill the limit */
    json_t *req = with_arguments(c.limits.json.max_values - 15);
    ck_assert_msg(build(&c, req, err, param) == GLM_OK, "%s", err);
    json_decref(req);
    req = with_arguments(c.limits.json.max_values - 14);
    ck_assert_int_eq(build(&c, req, err, param), GLM_ERR);
    ck_assert_str_eq(param, "messages");
    ck_assert_str_eq(err, "messages[1].tool_calls[0].function.arguments: the request and its tool-call arguments "
                          "hold more than 69632 JSON values");
    json_decref(req);
}
END_TEST

START_TEST(request_is_only_referenced)
{
    glm_chat_ctx c = ctx(4096);
    char err[GLM_ERRLEN];
    json_t *plain = user("hi");
    json_t *back = json_pack("{s:s,s:s,s:s}", "role", "assistant", "content", "ok", "reasoning", "r");
    json_t *req = json_pack("{s:[O,O,O]}", "messages", plain, back, plain);
    json_t *reqb = json_deep_copy(req);
    glm_chat_prompt p;
    ck_assert_msg(glm_chat_prompt_build(&c, req, 0, &p, err, sizeof err) == GLM_OK, "%s", err);
    ck_assert_int_eq(plain->refcount, 3); /* ours and the array's two */
    ck_assert_int_eq(back->refcount, 2);
    ck_assert(json_equal(req, reqb)); /* not modified */
    /* the same prompt as from a copy */
    glm_chat_prompt q;
    ck_assert_msg(glm_chat_prompt_build(&c, reqb, 0, &q, err, sizeof err) == GLM_OK, "%s", err);
    ck_assert_uint_eq(p.n_ids, q.n_ids);
    ck_assert(memcmp(p.ids, q.ids, p.n_ids * sizeof *p.ids) == 0);
    /* ids kept up to max_ids, counted in full */
    glm_chat_prompt r;
    ck_assert_msg(glm_chat_prompt_build(&c, reqb, 3, &r, err, sizeof err) == GLM_OK, "%s", err);
    ck_assert_uint_eq(r.n_ids, q.n_ids);
    ck_assert(memcmp(r.ids, q.ids, 3 * sizeof *r.ids) == 0);
    glm_chat_prompt_free(&p);
    glm_chat_prompt_free(&q);
    glm_chat_prompt_free(&r);
    json_decref(req);
    json_decref(reqb);
    json_decref(plain);
    json_decref(back);
}
END_TEST

/* ---- the gate ---------------------------------------------------------------------- */

typedef struct {
    glm_parse_gate *g;
    int rc;
} waiter;

static void *wait_slot(void *p)
{
    waiter *w = p;
    w->rc = glm_parse_gate_enter(w->g);
    if (w->rc == GLM_OK)
        glm_parse_gate_leave(w->g);
    return NULL;
}

START_TEST(gate)
{
    glm_parse_gate g;
    glm_parse_gate_init(&g, 0, 0);
    ck_assert_int_ge(g.slots, GLM_PARSE_GATE_MIN);
    ck_assert_int_le(g.slots, GLM_PARSE_GATE_MAX);
    ck_assert_int_eq(g.wait_ms, GLM_PARSE_GATE_WAIT_MS);
    glm_parse_gate_init(&g, 2, 50);
    ck_assert_int_eq(glm_parse_gate_enter(&g), GLM_OK);
    ck_assert_int_eq(glm_parse_gate_enter(&g), GLM_OK);
    ck_assert_int_eq(glm_parse_gate_enter(&g), GLM_ERR); /* full: refused after 50 ms */
    ck_assert_int_eq(g.used, 2);
    /* a waiter gets the slot given back while it waits */
    glm_parse_gate_init(&g, 1, 60000);
    ck_assert_int_eq(glm_parse_gate_enter(&g), GLM_OK);
    waiter w = {&g, -5};
    pthread_t th;
    pthread_create(&th, NULL, wait_slot, &w);
    usleep(20000);
    glm_parse_gate_leave(&g);
    pthread_join(th, NULL);
    ck_assert_int_eq(w.rc, GLM_OK);
    ck_assert_int_eq(g.used, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("request_limits");
    TCase *tc = tcase_create("request_limits");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, limits_from_the_context);
    tcase_add_test(tc, messages_and_parts);
    tcase_add_test(tc, tools_at_the_limit);
    tcase_add_test(tc, template_kwargs);
    tcase_add_test(tc, tool_call_arguments);
    tcase_add_test(tc, request_is_only_referenced);
    tcase_add_test(tc, gate);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
