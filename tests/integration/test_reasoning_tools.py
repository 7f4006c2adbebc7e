"""Reasoning, tool calls and structured output end to end, on the scripted test
model (models/script: greedy decoding follows the token chains of
tests/models/script/chains.json; logit_bias on a chain's entry token picks it).

Usage: test_reasoning_tools.py BASE_URL MODEL_DIR [default_off]
  default_off: the server runs with --default-chat-template-kwargs
  '{"enable_thinking": false}' (runs only the default_off_test_* tests).
tests/cli/script_server.sh starts the server (both ways) and runs this. Every check
compares the server's answer with text the chains define, through the official
`openai` SDK (streaming and not), plain curl, and raw SSE read from a socket.
Prints one line per test and "N passed, N failed, N skipped" (harness.py);
exits 1 on any failure. No test asserts how long something took.
"""
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import jsonschema
import openai

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from script_chains import Chains  # noqa: E402

BASE, MODEL_DIR = sys.argv[1], sys.argv[2]
MODE = sys.argv[3] if len(sys.argv) > 3 else "main"
MODEL = "script"
client = openai.OpenAI(base_url=BASE + "/v1", api_key="none", max_retries=0, timeout=60)
CH = Chains(MODEL_DIR)
chain_text, pick = CH.text, CH.pick


THINK = chain_text("think_default").replace("</think>", "").strip()
ANSWER = chain_text("answer_default").strip()
THINK_TOKENS = len(CH["think_default"]["ids"])  # the closing </think> counts as reasoning
MSGS = [{"role": "user", "content": "What is the capital of France?"}]
NOTHINK = {"extra_body": {"thinking": {"type": "disabled"}}}

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather forecast for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"},
        "days": {"type": "integer", "description": "Days ahead"}},
        "required": ["city", "days"], "additionalProperties": False}}}
OPTIONS = {"type": "function", "function": {
    "name": "set_options", "description": "Set options",
    "parameters": {"type": "object", "properties": {
        "ratio": {"type": "number"}, "enabled": {"type": "boolean"},
        "items": {"type": "array", "items": {"type": ["string", "integer"]}},
        "meta": {"type": "object", "properties": {"k": {"type": "string"}}},
        "extra": {"type": "null"}, "label": {"type": "string"}},
        "required": ["ratio", "enabled", "items", "meta", "extra", "label"], "additionalProperties": False}}}
TOOLS = [WEATHER, OPTIONS]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}

ON = [  # (label, extra_body or SDK kwargs) - each turns thinking on
    ("reasoning=true", {"extra_body": {"reasoning": True}}),
    ("thinking.type=enabled", {"extra_body": {"thinking": {"type": "enabled"}}}),
    ("enable_thinking=true", {"extra_body": {"chat_template_kwargs": {"enable_thinking": True}}}),
    ("reasoning_effort=high", {"reasoning_effort": "high"}),
    ("reasoning.effort=high", {"extra_body": {"reasoning": {"effort": "high"}}}),
]
OFF = [
    ("reasoning=false", {"extra_body": {"reasoning": False}}),
    ("thinking.type=disabled", {"extra_body": {"thinking": {"type": "disabled"}}}),
    ("enable_thinking=false", {"extra_body": {"chat_template_kwargs": {"enable_thinking": False}}}),
    ("reasoning_effort=none", {"reasoning_effort": "none"}),
    ("reasoning.enabled=false", {"extra_body": {"reasoning": {"enabled": False}}}),
]


def body_of(kw):
    """The JSON body the SDK would send for these kwargs (for curl / raw SSE)."""
    b = {k: v for k, v in kw.items() if k != "extra_body"}
    b.update(kw.get("extra_body", {}))
    return b


def merge(*kws):
    out = {}
    for kw in kws:
        for k, v in kw.items():
            if k == "extra_body":
                out.setdefault("extra_body", {}).update(v)
            else:
                out[k] = v
    return out


def create(stream=False, messages=MSGS, max_tokens=200, temperature=0, **kw):
    return client.chat.completions.create(model=MODEL, messages=messages, max_tokens=max_tokens,
                                          temperature=temperature, stream=stream, **kw)


def extra(obj, k):
    return (obj.model_extra or {}).get(k)


def collect(stream):
    """Folds SDK stream chunks into (reasoning_content, reasoning, content, tool_calls, finish, usage, chunks)."""
    rc, rs, content, calls, finish, usage, chunks = "", "", "", {}, None, None, []
    order = []
    for c in stream:
        chunks.append(c)
        if c.usage:
            usage = c.usage
        if not c.choices:
            continue
        d = c.choices[0].delta
        if extra(d, "reasoning_content"):
            rc += extra(d, "reasoning_content")
            order.append("r")
        if extra(d, "reasoning"):
            rs += extra(d, "reasoning")
        if d.content:
            content += d.content
            order.append("c")
        for t in d.tool_calls or []:
            e = calls.setdefault(t.index, {"id": None, "name": None, "arguments": "", "deltas": 0})
            e["deltas"] += 1
            if t.id:
                assert e["id"] is None, "id sent twice"
                e["id"] = t.id
            if t.function and t.function.name:
                assert e["name"] is None and e["arguments"] == "", "name must come first, once"
                e["name"] = t.function.name
            if t.function and t.function.arguments:
                e["arguments"] += t.function.arguments
            order.append("t")
        if c.choices[0].finish_reason:
            finish = c.choices[0].finish_reason
    if "c" in order and "r" in order:
        assert max(i for i, x in enumerate(order) if x == "r") < order.index("c"), "reasoning after content"
    return rc, rs, content, [calls[i] for i in sorted(calls)], finish, usage, chunks


def post(path, body):
    req = urllib.request.Request(BASE + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def curl(body):
    out = subprocess.run(["curl", "-s", "-H", "Content-Type: application/json", "-d", json.dumps(body),
                          BASE + "/v1/chat/completions"], capture_output=True, check=True, timeout=60).stdout
    return json.loads(out)


def raw_sse(body):
    """Streams with urllib, parses the SSE framing by hand; returns the list of JSON events."""
    b = dict(body, stream=True)
    req = urllib.request.Request(BASE + "/v1/chat/completions", data=json.dumps(b).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        data = r.read().decode()
    events, done = [], False
    for block in data.split("\n\n"):
        if not block or block.startswith(":"):
            continue
        assert block.startswith("data: "), block
        payload = block[6:]
        if payload == "[DONE]":
            done = True
            continue
        assert not done, "event after [DONE]"
        events.append(json.loads(payload))
    assert done, "no [DONE]"
    return events


def sse_fold(events):
    rc = rs = content = ""
    finish = None
    for e in events:
        for ch in e.get("choices", []):
            d = ch.get("delta", {})
            rc += d.get("reasoning_content") or ""
            rs += d.get("reasoning") or ""
            content += d.get("content") or ""
            finish = ch.get("finish_reason") or finish
    return rc, rs, content, finish


def base_body(kw, **more):
    b = {"model": MODEL, "messages": MSGS, "max_tokens": 200, "temperature": 0}
    b.update(body_of(kw))
    b.update(more)
    return b


def check_error(status, body, param=None):
    assert status == 400, (status, body)
    e = json.loads(body)["error"]
    assert e["message"] and e["code"] == 400, e
    if param:
        assert e["param"] == param, e
    return e["message"]


# ---- reasoning switches ---------------------------------------------------------------

def test_conventions_on_sdk():
    for label, kw in ON:
        r = create(**kw)
        m = r.choices[0].message
        assert extra(m, "reasoning_content") == THINK, (label, m)
        assert extra(m, "reasoning") == THINK, label
        assert m.content == ANSWER, (label, m.content)
        assert r.choices[0].finish_reason == "stop"
        assert r.usage.completion_tokens_details.reasoning_tokens == THINK_TOKENS, (label, r.usage)
        rc, rs, content, calls, finish, _, _ = collect(create(stream=True, **kw))
        assert (rc, rs, content, calls, finish) == (THINK, THINK, ANSWER, [], "stop"), (label, rc, content)


def test_conventions_off_sdk():
    for label, kw in OFF:
        r = create(**kw)
        m = r.choices[0].message
        assert not extra(m, "reasoning_content") and not extra(m, "reasoning"), (label, m)
        assert m.content == ANSWER, (label, m.content)
        assert r.usage.completion_tokens_details.reasoning_tokens == 0
        rc, rs, content, _, finish, _, _ = collect(create(stream=True, **kw))
        assert (rc, rs, content, finish) == ("", "", ANSWER, "stop"), label


def test_conventions_curl_and_raw_sse():
    for label, kw in ON + OFF:
        on = (label, kw) in ON
        r = curl(base_body(kw))
        m = r["choices"][0]["message"]
        assert m["content"] == ANSWER, (label, m)
        assert m.get("reasoning_content") == (THINK if on else None), (label, m)
        assert m.get("reasoning") == (THINK if on else None), (label, m)
        events = raw_sse(base_body(kw))
        assert all(e["object"] == "chat.completion.chunk" for e in events)
        assert sse_fold(events) == ((THINK, THINK, ANSWER, "stop") if on else ("", "", ANSWER, "stop")), label


def test_default_thinks_and_split():
    r = create()
    m = r.choices[0].message
    assert (extra(m, "reasoning_content"), m.content) == (THINK, ANSWER)
    # the stream splits the two at the tag: no chunk mixes reasoning and content
    _, _, _, _, _, _, chunks = collect(create(stream=True))
    for c in chunks:
        if c.choices:
            d = c.choices[0].delta
            assert not (extra(d, "reasoning_content") and d.content)


def test_contradictions_are_400():
    for extra_body, names in [({"reasoning": True, "thinking": {"type": "disabled"}}, ("reasoning", "thinking.type")),
                              ({"reasoning_effort": "none", "chat_template_kwargs": {"enable_thinking": True}},
                               ("enable_thinking", "reasoning_effort")),
                              ({"reasoning": {"enabled": True}, "reasoning_effort": "none"},
                               ("reasoning.enabled", "reasoning_effort")),
                              ({"reasoning": {"effort": "low"}, "reasoning_effort": "high"},
                               ("reasoning.effort", "reasoning_effort"))]:
        s, b = post("/v1/chat/completions", base_body({"extra_body": extra_body}))
        msg = check_error(s, b)
        assert all(n in msg for n in names), msg
    # an explicit off wins over an implied on
    r = create(extra_body={"reasoning": {"effort": "high"}, "chat_template_kwargs": {"enable_thinking": False}})
    assert r.choices[0].message.content == ANSWER and not extra(r.choices[0].message, "reasoning_content")


def test_exclude():
    kw = {"extra_body": {"reasoning": {"exclude": True}}}
    r = create(**kw)
    m = r.choices[0].message
    assert m.content == ANSWER and not extra(m, "reasoning") and not extra(m, "reasoning_content"), m
    assert r.usage.completion_tokens_details.reasoning_tokens == THINK_TOKENS  # still counted
    rc, rs, content, _, _, usage, _ = collect(create(stream=True, stream_options={"include_usage": True}, **kw))
    assert (rc, rs, content) == ("", "", ANSWER)
    assert usage.completion_tokens_details.reasoning_tokens == THINK_TOKENS
    events = raw_sse(base_body(kw))
    assert sse_fold(events)[:3] == ("", "", ANSWER)
    # vLLM's include_reasoning: false is the same
    r = create(extra_body={"include_reasoning": False})
    assert r.choices[0].message.content == ANSWER and not extra(r.choices[0].message, "reasoning")


def test_reasoning_tokens_streamed_usage():
    _, _, _, _, _, usage, _ = collect(create(stream=True, stream_options={"include_usage": True}))
    assert usage.completion_tokens_details.reasoning_tokens == THINK_TOKENS
    assert usage.completion_tokens == THINK_TOKENS + len(CH["answer_default"]["ids"])


def test_budget():
    toks = CH["think_long"]["tokens"]
    for kw, budget in [({"extra_body": {"reasoning": {"max_tokens": 6}}}, 6),
                       ({"extra_body": {"thinking_token_budget": 10}}, 10),
                       ({"extra_body": {"reasoning": {"max_tokens": 1}}}, 1)]:
        kw = merge(kw, pick("think_long"))
        r = create(**kw)
        m = r.choices[0].message
        want = "".join(toks[: budget - 1]).strip()
        assert (extra(m, "reasoning_content") or "") == want, (budget, m)
        assert m.content == ANSWER, m.content  # the forced </think> goes on with the answer
        assert r.usage.completion_tokens_details.reasoning_tokens == budget, (budget, r.usage)
        rc, _, content, _, _, _, _ = collect(create(stream=True, **kw))
        assert (rc, content) == (want, ANSWER)
    # without a budget the long chain runs to its end
    r = create(**pick("think_long"))
    assert r.usage.completion_tokens_details.reasoning_tokens == len(CH["think_long"]["ids"])
    # a budget larger than the reasoning changes nothing
    r = create(extra_body={"reasoning": {"max_tokens": 500}})
    assert extra(r.choices[0].message, "reasoning_content") == THINK


def test_reasoning_history_reaches_template():
    msgs = [{"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1", "reasoning": "R-from-reasoning"},
            {"role": "user", "content": "Q2"},
            {"role": "assistant", "content": "A2", "reasoning_content": "R-from-reasoning-content"}]
    for clear, keep_first in [(False, True), (True, False)]:
        s, b = post("/tokenize", {"model": MODEL, "messages": msgs, "add_generation_prompt": False,
                                  "thinking": {"clear_thinking": clear}})
        assert s == 200, b
        _, d = post("/detokenize", {"model": MODEL, "tokens": json.loads(b)["tokens"]})
        text = json.loads(d)["prompt"]
        assert "<think>R-from-reasoning-content</think>A2" in text, text
        assert ("<think>R-from-reasoning</think>A1" in text) == keep_first, text


# ---- tool calls ---------------------------------------------------------------------

def check_call(call, name, args=None):
    assert call.type == "function" and call.id.startswith("call_") and len(call.id) > 8, call
    assert call.function.name == name, call
    parsed = json.loads(call.function.arguments)
    jsonschema.validate(parsed, SCHEMAS[name])
    if args is not None:
        assert parsed == args, parsed
    return parsed


WEATHER_ARGS = {"city": "Paris", "days": 3}
OPTION_ARGS = {"ratio": 1.5, "enabled": True, "items": ["a", 1], "meta": {"k": "v"}, "extra": None,
               "label": "hello world"}


def test_tool_auto():
    r = create(tools=TOOLS, **pick("tool_weather"))
    c = r.choices[0]
    assert c.finish_reason == "tool_calls", c
    assert c.message.content is None and extra(c.message, "reasoning_content") == "Checking the weather tool first."
    assert len(c.message.tool_calls) == 1
    check_call(c.message.tool_calls[0], "get_weather", WEATHER_ARGS)
    # streaming: index, id and name first, then argument fragments that add up
    rc, _, content, calls, finish, _, _ = collect(create(stream=True, tools=TOOLS, **pick("tool_weather")))
    assert finish == "tool_calls" and content == "" and len(calls) == 1, (calls, content)
    assert calls[0]["name"] == "get_weather" and calls[0]["id"].startswith("call_")
    assert json.loads(calls[0]["arguments"]) == WEATHER_ARGS
    assert calls[0]["deltas"] >= 2
    # curl and raw SSE
    body = base_body({}, tools=TOOLS, **pick("tool_weather"))
    m = curl(body)["choices"][0]["message"]
    assert json.loads(m["tool_calls"][0]["function"]["arguments"]) == WEATHER_ARGS
    events = raw_sse(body)
    args = "".join(tc["function"].get("arguments") or "" for e in events for ch in e["choices"]
                   for tc in ch.get("delta", {}).get("tool_calls") or [])
    assert json.loads(args) == WEATHER_ARGS
    assert sse_fold(events)[3] == "tool_calls"


def test_tool_without_thinking():
    r = create(tools=TOOLS, **merge(pick("tool_nothink"), {"extra_body": {"thinking": {"type": "disabled"}}}))
    c = r.choices[0]
    assert c.finish_reason == "tool_calls" and not extra(c.message, "reasoning_content")
    check_call(c.message.tool_calls[0], "get_weather", {"city": "Berlin", "days": 1})


def test_tool_parallel_and_types():
    r = create(tools=TOOLS, **pick("tool_parallel"))
    calls = r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "tool_calls" and len(calls) == 2
    check_call(calls[0], "get_weather", {"city": "Tokyo", "days": 2})
    args = check_call(calls[1], "set_options", OPTION_ARGS)
    assert type(args["ratio"]) is float and type(args["enabled"]) is bool and args["extra"] is None
    assert calls[0].id != calls[1].id
    _, _, _, scalls, finish, _, _ = collect(create(stream=True, tools=TOOLS, **pick("tool_parallel")))
    assert [c["name"] for c in scalls] == ["get_weather", "set_options"] and finish == "tool_calls"
    assert json.loads(scalls[1]["arguments"]) == OPTION_ARGS
    assert [c["id"] for c in scalls] == [c.id for c in calls] or all(c["id"].startswith("call_") for c in scalls)
    # parallel_tool_calls false: generation ends after the first call
    r = create(tools=TOOLS, parallel_tool_calls=False, **pick("tool_parallel"))
    calls = r.choices[0].message.tool_calls
    assert len(calls) == 1 and r.choices[0].finish_reason == "tool_calls"
    check_call(calls[0], "get_weather", {"city": "Tokyo", "days": 2})


def test_tool_required_enforced():
    # the default chain answers in prose: "required" makes it call a tool anyway
    for stream in (False, True):
        if stream:
            _, _, content, calls, finish, _, _ = collect(create(stream=True, tools=TOOLS, tool_choice="required"))
            assert finish == "tool_calls" and len(calls) >= 1, (calls, content)
            for c in calls:
                jsonschema.validate(json.loads(c["arguments"]), SCHEMAS[c["name"]])
        else:
            r = create(tools=TOOLS, tool_choice="required")
            c = r.choices[0]
            assert c.finish_reason == "tool_calls" and c.message.tool_calls, c
            for call in c.message.tool_calls:
                check_call(call, call.function.name)
            assert extra(c.message, "reasoning_content") == THINK  # reasoning stays free


def test_tool_named_enforced():
    choice = {"type": "function", "function": {"name": "set_options"}}
    # the chain would call get_weather; the named choice makes it set_options
    for pick_kw in ({}, pick("tool_weather")):
        r = create(tools=TOOLS, tool_choice=choice, **pick_kw)
        calls = r.choices[0].message.tool_calls
        assert r.choices[0].finish_reason == "tool_calls" and len(calls) == 1, r
        check_call(calls[0], "set_options")
    _, _, _, calls, finish, _, _ = collect(create(stream=True, tools=TOOLS, tool_choice=choice))
    assert finish == "tool_calls" and [c["name"] for c in calls] == ["set_options"]
    jsonschema.validate(json.loads(calls[0]["arguments"]), SCHEMAS["set_options"])
    # a named choice that agrees with the chain keeps its arguments
    r = create(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}},
               **pick("tool_weather"))
    check_call(r.choices[0].message.tool_calls[0], "get_weather", WEATHER_ARGS)


def test_tool_none():
    # the <tool_call> token is forbidden: the chain cannot go on (the entry's
    # bias then keeps winning, so it runs to max_tokens), and no call is made
    r = create(tools=TOOLS, tool_choice="none", max_tokens=40, **pick("tool_weather"))
    c = r.choices[0]
    assert not c.message.tool_calls and c.finish_reason == "length", c
    assert "<tool_call>" not in (c.message.content or "")
    # tags the model spells in ordinary tokens are plain text: nothing is parsed
    r = create(tools=TOOLS, tool_choice="none", **merge(pick("tool_nothink"), NOTHINK))
    c = r.choices[0]
    assert not c.message.tool_calls and c.finish_reason == "stop", c
    assert c.message.content == chain_text("tool_nothink"), c.message.content
    _, _, content, calls, finish, _, _ = collect(create(stream=True, tools=TOOLS, tool_choice="none",
                                                        **merge(pick("tool_nothink"), NOTHINK)))
    assert (content, calls, finish) == (chain_text("tool_nothink"), [], "stop")
    # without tool_choice the same chain does call
    assert create(tools=TOOLS, **pick("tool_weather")).choices[0].message.tool_calls


def test_tool_round_trip():
    first = create(tools=TOOLS, **pick("tool_weather")).choices[0].message
    call = first.tool_calls[0]
    msgs = MSGS + [
        {"role": "assistant", "content": None, "reasoning_content": extra(first, "reasoning_content"),
         "tool_calls": [{"id": call.id, "type": "function",
                         "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 22, "sky": "clear"})}]
    r = create(messages=msgs, tools=TOOLS)
    assert r.choices[0].message.content == ANSWER and r.choices[0].finish_reason == "stop"
    # the call and its result are in the prompt the model saw
    s, b = post("/tokenize", {"model": MODEL, "messages": msgs, "tools": TOOLS})
    _, d = post("/detokenize", {"model": MODEL, "tokens": json.loads(b)["tokens"]})
    text = json.loads(d)["prompt"]
    assert "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value>" in text, text
    assert '<|observation|><tool_response>{"temperature": 22, "sky": "clear"}</tool_response>' in text, text
    assert text.endswith("<|assistant|><think>")
    # streamed, the same answer
    _, _, content, _, _, _, _ = collect(create(stream=True, messages=msgs, tools=TOOLS))
    assert content == ANSWER


def test_tool_errors_400():
    M = {"model": MODEL, "messages": MSGS}
    cases = [({"tools": []}, "tools"),
             ({"tool_choice": "auto"}, "tool_choice"),
             ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
             ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
             ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools"),
             ({"tools": [WEATHER, WEATHER]}, "tools"),
             ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
                 "type": "object", "properties": {"x": {"type": "int"}}}}}]}, "tools"),
             ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
              "tools"),
             ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
                 "type": "object", "properties": {"x": {"$ref": "#/$defs/missing"}}}}}]}, "tools"),
             ({"tools": TOOLS, "parallel_tool_calls": "yes"}, "parallel_tool_calls")]
    for extra_body, param in cases:
        s, b = post("/v1/chat/completions", dict(M, **extra_body))
        check_error(s, b, param)
    # and the SDK raises BadRequestError
    try:
        client.chat.completions.create(model=MODEL, messages=MSGS, tools=[], max_tokens=5)
        raise AssertionError("tools: [] accepted")
    except openai.BadRequestError:
        pass


# ---- response_format ----------------------------------------------------------------

CITY_SCHEMA = {"type": "object", "properties": {
    "city": {"type": "string"}, "temperature": {"type": "number"}, "sunny": {"type": "boolean"},
    "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["city", "temperature", "sunny", "tags"], "additionalProperties": False}
JSON_SCHEMA_RF = {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY_SCHEMA, "strict": True}}
def test_json_object():
    # the chain writes JSON: it passes through the grammar unchanged
    r = create(response_format={"type": "json_object"}, **merge(NOTHINK, pick("json_answer")))
    assert json.loads(r.choices[0].message.content) == json.loads(chain_text("json_answer"))
    # the default chain writes prose: the grammar turns it into a JSON object
    for kw in (NOTHINK, {}):
        r = create(response_format={"type": "json_object"}, **kw)
        content = r.choices[0].message.content
        assert isinstance(json.loads(content), dict), content
        assert r.choices[0].finish_reason == "stop"
    _, _, content, _, finish, _, _ = collect(create(stream=True, response_format={"type": "json_object"}, **NOTHINK))
    assert isinstance(json.loads(content), dict) and finish == "stop"
    m = curl(base_body(NOTHINK, response_format={"type": "json_object"}))["choices"][0]["message"]
    assert isinstance(json.loads(m["content"]), dict)


def test_json_schema():
    r = create(response_format=JSON_SCHEMA_RF, **merge(NOTHINK, pick("json_answer")))
    doc = json.loads(r.choices[0].message.content)
    jsonschema.validate(doc, CITY_SCHEMA)
    assert doc == json.loads(chain_text("json_answer"))
    # with thinking: reasoning stays free, the answer follows the schema
    r = create(response_format=JSON_SCHEMA_RF, **pick("json_think"))
    m = r.choices[0].message
    assert extra(m, "reasoning_content") == "Reply with JSON only."
    jsonschema.validate(json.loads(m.content), CITY_SCHEMA)
    # forced off the script: still valid against the schema, streamed too
    for kw in (NOTHINK, {}):
        r = create(response_format=JSON_SCHEMA_RF, **kw)
        jsonschema.validate(json.loads(r.choices[0].message.content), CITY_SCHEMA)
        _, _, content, _, _, _, _ = collect(create(stream=True, response_format=JSON_SCHEMA_RF, **kw))
        jsonschema.validate(json.loads(content), CITY_SCHEMA)
    events = raw_sse(base_body(NOTHINK, response_format=JSON_SCHEMA_RF))
    jsonschema.validate(json.loads(sse_fold(events)[2]), CITY_SCHEMA)


def test_response_format_errors_400():
    M = {"model": MODEL, "messages": MSGS}
    for rf in [{"type": "xml"}, {"type": "json_schema"}, {"type": "json_schema", "json_schema": {"name": "x"}},
               {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strnig"}}},
               {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "a+"}}},
               "json"]:
        s, b = post("/v1/chat/completions", dict(M, response_format=rf))
        check_error(s, b, "response_format")


def test_structured_completions_and_n():
    # /v1/completions: the prompt is raw, so the grammar starts at once
    r = client.completions.create(model=MODEL, prompt="Weather as JSON:", max_tokens=100, temperature=0,
                                  extra_body={"response_format": JSON_SCHEMA_RF})
    jsonschema.validate(json.loads(r.choices[0].text), CITY_SCHEMA)
    # each of n samples has its own grammar state
    r = create(n=3, temperature=1.0, seed=7, response_format=JSON_SCHEMA_RF, **NOTHINK)
    assert len(r.choices) == 3
    for c in r.choices:
        jsonschema.validate(json.loads(c.message.content), CITY_SCHEMA)
    # vLLM's structured_outputs and llama.cpp's json_schema / grammar
    for extra_body in ({"structured_outputs": {"json": CITY_SCHEMA}}, {"json_schema": CITY_SCHEMA}):
        r = create(extra_body=dict(extra_body, thinking={"type": "disabled"}))
        jsonschema.validate(json.loads(r.choices[0].message.content), CITY_SCHEMA)
    r = create(extra_body={"grammar": 'root ::= "yes" | "no"', "thinking": {"type": "disabled"}})
    assert r.choices[0].message.content in ("yes", "no"), r.choices[0].message.content
    r = create(extra_body={"structured_outputs": {"grammar": 'root ::= [0-9]{3} "-" [a-z]+'},
                           "thinking": {"type": "disabled"}}, max_tokens=20)
    import re
    content = r.choices[0].message.content
    assert re.fullmatch(r"[0-9]{3}-[a-z]+", content) or r.choices[0].finish_reason == "length", content


def test_hostile_structured():
    """Hostile grammars and schemas get a 400 (the client's 60 s timeout guards against a
    hang) and leave the server serving."""
    M = {"model": MODEL, "messages": MSGS, "max_tokens": 5}
    deep = {"type": "object"}
    for _ in range(200):
        deep = {"type": "object", "properties": {"a": deep}, "required": ["a"]}
    loop = {"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}}
    bad = [
        {"grammar": "root ::= root"},
        {"grammar": "root ::= (((((((((("},
        {"grammar": "root ::= \"a\"{1000000000}"},
        {"grammar": "x ::= \"a\""},
        {"grammar": 12},
        {"structured_outputs": {"grammar": "root ::= [\\x"}},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "d", "schema": deep}}},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "d", "schema": {
            "type": "array", "items": {"type": "string"}, "minItems": 10 ** 9}}}},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "d", "schema": {
            "enum": list(range(200000))}}}},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "d", "schema": "object"}}},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "d", "schema": {"type": 7}}}},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": deep}}], "tool_choice": "required"},
        {"tools": [{"type": "function", "function": {"name": "f%d" % i}} for i in range(3)] * 2},
        {"reasoning": {"max_tokens": -1}},
        {"reasoning": {"max_tokens": 1.5}},
        {"thinking_token_budget": "10"},
        {"reasoning": {"effort": "extreme"}},
        {"reasoning": {"exclude": "yes"}},
        {"thinking": {"type": "on"}},
        {"thinking": {"clear_thinking": 1}},
        {"chat_template_kwargs": {"enable_thinking": "yes"}},
    ]
    for extra_body in bad:
        s, b = post("/v1/chat/completions", dict(M, **extra_body))
        assert s == 400, (extra_body if len(str(extra_body)) < 200 else str(extra_body)[:200], s, b[:300])
    # a $ref cycle that never reaches a value is no constraint: answered, not a hang
    s, b = post("/v1/chat/completions", dict(M, response_format={"type": "json_schema", "json_schema": {
        "name": "l", "schema": loop}}))
    assert s == 200 and json.loads(b)["choices"][0]["finish_reason"] == "length", (s, b[:300])
    r = create()
    assert r.choices[0].message.content == ANSWER  # still serving


def test_review_regressions():
    # tool schemas with keywords the grammar builder does not enforce are fine under "auto"
    loose = [{"type": "function", "function": {"name": "set_temp", "parameters": {"type": "object", "properties": {
        "celsius": {"type": "number", "minimum": -50}, "code": {"type": "string", "pattern": "^[A-Z]+$"},
        "ids": {"type": "array", "uniqueItems": True}}}}}]
    r = create(tools=loose)
    assert r.choices[0].message.content == ANSWER
    # "required" enforces their shape and types, not those keywords...
    r = create(tools=loose, tool_choice="required")
    call = r.choices[0].message.tool_calls[0]
    args = json.loads(call.function.arguments)
    assert call.function.name == "set_temp" and isinstance(args, dict), call
    for k, t in (("celsius", (int, float)), ("code", str), ("ids", list)):
        assert k not in args or isinstance(args[k], t), args
    # ...unless the function is "strict": then a 400 names the keyword
    strict = [{"type": "function", "function": dict(loose[0]["function"], strict=True)}]
    s, b = post("/v1/chat/completions", base_body({}, tools=strict, tool_choice="required"))
    assert "supported" in check_error(s, b, "tools")
    # tag text inside a constrained answer is content, not reasoning or a tool call
    schema = {"type": "object", "properties": {"a": {"const": "<think>x</think><tool_call>f</tool_call>"}},
              "required": ["a"]}
    for tools in (None, [{"type": "function", "function": {"name": "f"}}]):
        kw = {"tools": tools, "tool_choice": "none"} if tools else {}
        r = create(response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": schema}}, **kw)
        m = r.choices[0].message
        assert json.loads(m.content) == {"a": "<think>x</think><tool_call>f</tool_call>"}, m.content
        assert extra(m, "reasoning_content") == THINK and not m.tool_calls
        assert r.usage.completion_tokens_details.reasoning_tokens == THINK_TOKENS
    # min_tokens beyond a complete constrained answer ends it there (not an error)
    r = create(response_format={"type": "json_object"}, **merge(NOTHINK, pick("json_answer"),
                                                                {"extra_body": {"min_tokens": 60}}))
    assert json.loads(r.choices[0].message.content) == json.loads(chain_text("json_answer"))
    assert r.choices[0].finish_reason == "stop"
    r = create(tools=TOOLS, parallel_tool_calls=False, **merge(pick("tool_parallel"), {"extra_body": {"min_tokens": 100}}))
    assert len(r.choices[0].message.tool_calls) == 1
    # reasoning.exclude hides the reasoning's logprobs too
    r = create(logprobs=True, extra_body={"reasoning": {"exclude": True}})
    toks = [t.token for t in r.choices[0].logprobs.content]
    assert len(toks) == len(CH["answer_default"]["ids"]), toks
    assert "".join(toks).startswith("Paris")
    _, _, _, _, _, _, chunks = collect(create(stream=True, logprobs=True, extra_body={"reasoning": {"exclude": True}}))
    n = sum(len(c.choices[0].logprobs.content) for c in chunks if c.choices and c.choices[0].logprobs)
    assert n == len(CH["answer_default"]["ids"]), n
    # response_format "text" combines with a grammar; structured_outputs.json may be JSON text
    r = create(response_format={"type": "text"}, extra_body={"grammar": 'root ::= "ok"', "thinking": {"type": "disabled"}})
    assert r.choices[0].message.content == "ok"
    r = create(extra_body={"structured_outputs": {"json": json.dumps(CITY_SCHEMA)}, "thinking": {"type": "disabled"}})
    jsonschema.validate(json.loads(r.choices[0].message.content), CITY_SCHEMA)


def test_tools_or_format():
    # tools under "auto" with a response_format: the model may call a tool...
    r = create(tools=TOOLS, response_format=JSON_SCHEMA_RF, **pick("tool_weather"))
    c = r.choices[0]
    assert c.finish_reason == "tool_calls", c
    check_call(c.message.tool_calls[0], "get_weather", WEATHER_ARGS)
    # ...or answer in the format
    r = create(tools=TOOLS, response_format=JSON_SCHEMA_RF, **pick("json_think"))
    jsonschema.validate(json.loads(r.choices[0].message.content), CITY_SCHEMA)
    assert not r.choices[0].message.tool_calls
    r = create(tools=TOOLS, response_format={"type": "json_object"})  # forced off the script
    c = r.choices[0]
    assert c.message.tool_calls or isinstance(json.loads(c.message.content), dict), c


def test_costly_grammar_is_stopped():
    # a grammar whose steps grow costly ends with a 400 after a few steps instead of
    # holding the engine thread (which every request shares) for the whole answer;
    # the limit counts work, not time, so this is the answer on every machine
    g = 'root ::= ([a-z ]{0,300}){0,300} "!"'
    s, b = post("/v1/chat/completions", base_body(NOTHINK, grammar=g, max_tokens=200))
    msg = check_error(s, b)
    assert "too costly" in msg and "3 steps" in msg, msg
    # streamed: an error event after the tokens that were allowed, then [DONE]
    events = raw_sse(base_body(NOTHINK, grammar=g, max_tokens=200))
    assert "too costly" in events[-1]["error"]["message"], events[-1]
    assert create().choices[0].message.content == ANSWER  # still serving


# ---- stop strings and split tags ---------------------------------------------------

def test_stop_strings_on_script():
    kw = merge(NOTHINK, pick("content_with_tags"))
    r = create(**kw)
    assert r.choices[0].message.content == chain_text("content_with_tags")
    r = create(stop=[" END"], **kw)
    assert r.choices[0].message.content == "Final answer: <b>42</b>" and r.choices[0].finish_reason == "stop"
    _, _, content, _, _, _, _ = collect(create(stream=True, stop=["42</"], **kw))
    assert content == "Final answer: <b>"
    # a stop string inside the reasoning ends the reasoning there
    r = create(stop=["famous"])
    assert extra(r.choices[0].message, "reasoning_content") == THINK.split("famous")[0].strip()
    assert r.choices[0].message.content is None


def test_split_tags():
    # tool_parallel spells </think>, <tool_call> and argument tags in pieces: the
    # parser sees text, so they parse the same; streaming never leaks a tag piece
    rc, _, content, calls, _, _, chunks = collect(create(stream=True, tools=TOOLS, **pick("tool_parallel")))
    assert rc == "Two calls are needed." and content == "" and len(calls) == 2
    for c in chunks:
        if c.choices:
            d = c.choices[0].delta
            for s in (d.content or "", extra(d, "reasoning_content") or ""):
                assert "<" not in s and ">" not in s, s


def default_off_test_server_default():
    # the server's default turns thinking off; any request switch, explicit or implied, wins
    r = create()
    assert r.choices[0].message.content == ANSWER and not extra(r.choices[0].message, "reasoning_content")
    for kw in ON + [("budget", {"extra_body": {"thinking_token_budget": 100}})]:
        r = create(**kw[1])
        assert extra(r.choices[0].message, "reasoning_content") == THINK, kw[0]
        assert r.choices[0].message.content == ANSWER, kw[0]
    r = curl(base_body({}))
    assert r["choices"][0]["message"]["content"] == ANSWER and r["choices"][0]["message"]["reasoning"] is None
    events = raw_sse(base_body({"extra_body": {"reasoning": True}}))
    assert sse_fold(events) == (THINK, THINK, ANSWER, "stop")


if __name__ == "__main__":
    harness.run(globals(), "default_off_test_" if MODE == "default_off" else "test_")
