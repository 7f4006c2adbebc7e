"""The Responses API (POST /v1/responses) end to end on the scripted test model
(models/script: greedy decoding follows tests/models/script/chains.json;
logit_bias on a chain's entry token picks it), through the official `openai`
SDK's client.responses.create / .stream / .parse and raw HTTP.

Usage: test_responses.py BASE_URL MODEL_DIR
tests/cli/responses.sh starts the server and runs this. Prints one line per test
and "N passed, N failed, N skipped" (harness.py); exits 1 on any failure. No
test asserts how long something took.
"""
import json
import os
import sys
import urllib.error
import urllib.request

import jsonschema
import openai
import pydantic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from script_chains import Chains  # noqa: E402

BASE, MODEL_DIR = sys.argv[1], sys.argv[2]
MODEL = "script"
client = openai.OpenAI(base_url=BASE + "/v1", api_key="none", max_retries=0, timeout=60)
CH = Chains(MODEL_DIR)
chain_text, pick = CH.text, CH.pick


THINK = chain_text("think_default").replace("</think>", "").strip()
ANSWER = chain_text("answer_default").strip()
THINK_TOKENS = len(CH["think_default"]["ids"])  # the closing </think> counts as reasoning
ANSWER_TOKENS = len(CH["answer_default"]["ids"])
Q = "What is the capital of France?"
NOTHINK = {"reasoning": {"effort": "none"}}
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather forecast for a city",
           "parameters": {"type": "object", "properties": {
               "city": {"type": "string", "description": "City name"},
               "days": {"type": "integer", "description": "Days ahead"}},
               "required": ["city", "days"], "additionalProperties": False},
           "strict": True}
CHAT_WEATHER = {"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}
CITY_SCHEMA = {"type": "object", "properties": {
    "city": {"type": "string"}, "temperature": {"type": "number"}, "sunny": {"type": "boolean"},
    "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["city", "temperature", "sunny", "tags"], "additionalProperties": False}


def create(extra_body=None, **kw):
    kw.setdefault("temperature", 0)
    return client.responses.create(model=MODEL, extra_body=extra_body, **kw)


def post(path, body):
    req = urllib.request.Request(BASE + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def tokenize_count(messages, **more):
    """The chat API's prompt length for these messages (POST /tokenize)."""
    s, b = post("/tokenize", dict({"model": MODEL, "messages": messages}, **more))
    assert s == 200, b
    return json.loads(b)["count"]


def items(r, type_):
    return [o for o in r.output if o.type == type_]


def reasoning_text(r):
    rs = items(r, "reasoning")
    return "".join(c.text for it in rs for c in (it.content or []))


def shape(r):
    """A response's items without their ids."""
    return [(o.type, o.status, [c.text for c in getattr(o, "content", None) or []], getattr(o, "arguments", None))
            for o in r.output]


def check_usage(r, reasoning_tokens, output_tokens=None):
    u = r.usage
    assert u.input_tokens > 0 and u.total_tokens == u.input_tokens + u.output_tokens, u
    assert u.output_tokens_details.reasoning_tokens == reasoning_tokens, u
    if output_tokens is not None:
        assert u.output_tokens == output_tokens, u


# ---- create ---------------------------------------------------------------------------

def test_string_input():
    r = create(input=Q, metadata={"run": "42"})
    assert r.id.startswith("resp_") and r.object == "response" and r.status == "completed", r
    assert r.model == MODEL and r.store is False and r.metadata == {"run": "42"}
    assert [o.type for o in r.output] == ["reasoning", "message"], r.output
    assert reasoning_text(r) == THINK and r.output[0].summary == []
    msg = r.output[1]
    assert msg.role == "assistant" and msg.status == "completed"
    assert msg.content[0].type == "output_text" and msg.content[0].annotations == []
    assert r.output_text == ANSWER
    check_usage(r, THINK_TOKENS, THINK_TOKENS + ANSWER_TOKENS)
    assert r.usage.input_tokens == tokenize_count([{"role": "user", "content": Q}])


def test_items_and_instructions():
    ins = "You are a geography tutor."
    r = create(input=[{"role": "developer", "content": "Answer briefly."},
                      {"type": "message", "role": "user",
                       "content": [{"type": "input_text", "text": "Hello. "}, {"type": "input_text", "text": Q}]}],
               instructions=ins)
    assert r.status == "completed" and r.output_text == ANSWER and r.instructions == ins
    # the prompt is the chat prompt of the same conversation: instructions first, developer as system
    want = tokenize_count([{"role": "system", "content": ins}, {"role": "system", "content": "Answer briefly."},
                           {"role": "user", "content": [{"type": "text", "text": "Hello. "},
                                                         {"type": "text", "text": Q}]}])
    assert r.usage.input_tokens == want, (r.usage.input_tokens, want)
    # an earlier assistant turn given back as a message with output_text
    r2 = create(input=[{"role": "user", "content": "Q1"},
                       {"type": "message", "role": "assistant",
                        "content": [{"type": "output_text", "text": "A1", "annotations": []}]},
                       {"role": "user", "content": Q}])
    assert r2.usage.input_tokens == tokenize_count([{"role": "user", "content": "Q1"},
                                                    {"role": "assistant", "content": "A1"},
                                                    {"role": "user", "content": Q}])


def test_max_output_tokens_incomplete():
    r = create(input=Q, max_output_tokens=5)
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens", r
    assert r.max_output_tokens == 5 and r.usage.output_tokens == 5
    assert reasoning_text(r) == "".join(CH["think_default"]["tokens"][:5]).strip()
    assert r.output[-1].status == "incomplete"
    # streamed: the last event says so
    types = []
    with client.responses.stream(model=MODEL, input=Q, max_output_tokens=5, temperature=0) as stream:
        for ev in stream:
            types.append(ev.type)
    assert types[-1] == "response.incomplete" and "response.completed" not in types, types
    # enough room: complete
    assert create(input=Q, max_output_tokens=THINK_TOKENS + ANSWER_TOKENS).status == "completed"


def test_json_schema_format():
    fmt = {"format": {"type": "json_schema", "name": "city", "schema": CITY_SCHEMA, "strict": True}}
    r = create(input=Q, text=fmt, extra_body=dict(NOTHINK, **pick("json_answer")))
    doc = json.loads(r.output_text)
    assert doc == json.loads(chain_text("json_answer")), doc
    assert r.text.format.type == "json_schema" and r.text.format.name == "city"

    class City(pydantic.BaseModel):
        city: str
        temperature: float
        sunny: bool
        tags: list[str]

    # the SDK's parse helper sends the schema and parses the answer; off the script the
    # grammar still makes it valid
    p = client.responses.parse(model=MODEL, input=Q, text_format=City, temperature=0, extra_body=pick("json_think"))
    assert isinstance(p.output_parsed, City), p.output_text
    assert reasoning_text(p) == "Reply with JSON only."
    jsonschema.validate(json.loads(p.output_text), City.model_json_schema())
    r = create(input=Q, text={"format": {"type": "json_object"}}, extra_body=NOTHINK)
    assert isinstance(json.loads(r.output_text), dict), r.output_text


# ---- stream -----------------------------------------------------------------------------

def test_stream_events():
    text, reasoning, seqs, types = "", "", [], []
    with client.responses.stream(model=MODEL, input=Q, temperature=0) as stream:
        for ev in stream:  # the SDK's accumulator checks every event against what came before
            seqs.append(ev.sequence_number)
            types.append(ev.type)
            if ev.type == "response.output_text.delta":
                text += ev.delta
            elif ev.type == "response.reasoning_text.delta":
                reasoning += ev.delta
        final = stream.get_final_response()
    assert seqs == list(range(len(seqs))), seqs
    assert text == final.output_text == ANSWER and reasoning == THINK == reasoning_text(final)
    assert final.status == "completed" and final.usage.output_tokens == THINK_TOKENS + ANSWER_TOKENS
    assert final.usage.output_tokens_details.reasoning_tokens == THINK_TOKENS
    squeeze = [t for i, t in enumerate(types) if i == 0 or t != types[i - 1]]
    assert squeeze == ["response.created", "response.in_progress",
                       "response.output_item.added", "response.content_part.added", "response.reasoning_text.delta",
                       "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
                       "response.output_item.added", "response.content_part.added", "response.output_text.delta",
                       "response.output_text.done", "response.content_part.done", "response.output_item.done",
                       "response.completed"], squeeze
    # the same items as without streaming (ids aside)
    assert shape(create(input=Q)) == shape(final)


def test_stream_raw_sse():
    """The wire format: `event: TYPE` then `data: JSON` whose type matches, no [DONE]."""
    req = urllib.request.Request(BASE + "/v1/responses", method="POST",
                                 data=json.dumps({"model": MODEL, "input": Q, "stream": True,
                                                  "temperature": 0, **NOTHINK}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        data = resp.read().decode()
    events = []
    for block in data.split("\n\n"):
        if not block or block.startswith(":"):
            continue
        head, body = block.split("\n", 1)
        assert head.startswith("event: ") and body.startswith("data: "), block
        ev = json.loads(body[6:])
        assert ev["type"] == head[7:], block
        events.append(ev)
    assert events[-1]["type"] == "response.completed"
    assert not any(e["type"].startswith("response.reasoning") for e in events)  # thinking off
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == ANSWER


# ---- function calls ---------------------------------------------------------------------

def test_function_call_round_trip():
    first = create(input=Q, tools=[WEATHER], extra_body=pick("tool_weather"))
    assert first.status == "completed"
    calls = items(first, "function_call")
    assert len(calls) == 1 and not items(first, "message"), first.output
    call = calls[0]
    assert call.name == "get_weather" and call.call_id.startswith("call_") and call.status == "completed"
    assert json.loads(call.arguments) == {"city": "Paris", "days": 3}
    assert reasoning_text(first) == "Checking the weather tool first."
    # the client runs the tool and sends the whole turn back with its output: the SDK's own
    # objects, or them as plain dicts (null members included)
    result = {"type": "function_call_output", "call_id": call.call_id, "output": json.dumps({"temperature": 22})}
    conv = [{"role": "user", "content": Q}] + [o.model_dump() for o in first.output] + [result]
    second = create(input=conv, tools=[WEATHER])
    assert second.status == "completed" and second.output_text == ANSWER, second.output
    same = create(input=[{"role": "user", "content": Q}, *first.output, result], tools=[WEATHER])
    assert same.usage.input_tokens == second.usage.input_tokens and same.output_text == ANSWER
    # the prompt is the chat prompt of that conversation, the reasoning of the turn included
    chat = [{"role": "user", "content": Q},
            {"role": "assistant", "content": None, "reasoning_content": "Checking the weather tool first.",
             "tool_calls": [{"id": call.call_id, "type": "function",
                             "function": {"name": call.name, "arguments": call.arguments}}]},
            {"role": "tool", "tool_call_id": call.call_id, "content": json.dumps({"temperature": 22})}]
    assert second.usage.input_tokens == tokenize_count(chat, tools=[CHAT_WEATHER])
    # a reasoning item given back as a summary (another server's answer) counts the same
    summarised = [conv[0], {"type": "reasoning", "id": "rs_x", "summary": [
        {"type": "summary_text", "text": "Checking the weather tool first."}]}] + conv[2:]
    assert create(input=summarised, tools=[WEATHER]).usage.input_tokens == second.usage.input_tokens
    # an output for a call that was never made
    bad = conv[:-1] + [{"type": "function_call_output", "call_id": "call_nope", "output": "x"}]
    s, b = post("/v1/responses", {"model": MODEL, "input": bad, "tools": [WEATHER]})
    assert s == 400 and json.loads(b)["error"]["param"] == "input", b


def test_function_call_stream():
    args, names = "", []
    with client.responses.stream(model=MODEL, input=Q, tools=[WEATHER], temperature=0,
                                 extra_body=pick("tool_weather")) as stream:
        for ev in stream:
            if ev.type == "response.function_call_arguments.delta":
                args += ev.delta
            elif ev.type == "response.output_item.added" and ev.item.type == "function_call":
                names.append(ev.item.name)
        final = stream.get_final_response()
    call = items(final, "function_call")[0]
    assert names == ["get_weather"] and args == call.arguments
    assert json.loads(args) == {"city": "Paris", "days": 3}
    # tool_choice "none": no call
    r = create(input=Q, tools=[WEATHER], tool_choice="none", max_output_tokens=40, extra_body=pick("tool_weather"))
    assert not items(r, "function_call")


# ---- reasoning --------------------------------------------------------------------------

def test_reasoning_on_off():
    for effort in ("low", "high", None):
        kw = {"reasoning": {"effort": effort}} if effort else {}
        r = create(input=Q, **kw)
        assert reasoning_text(r) == THINK and r.output_text == ANSWER, effort
        check_usage(r, THINK_TOKENS)
        assert r.reasoning.effort == effort
    r = create(input=Q, reasoning={"effort": "none"})
    assert not items(r, "reasoning") and r.output_text == ANSWER
    check_usage(r, 0, ANSWER_TOKENS)
    # a summary is accepted; the reasoning comes whole, as text
    r = create(input=Q, reasoning={"effort": "medium", "summary": "auto"})
    assert reasoning_text(r) == THINK and items(r, "reasoning")[0].summary == []


# ---- refusals ---------------------------------------------------------------------------

def test_unsupported_is_400():
    M = {"model": MODEL, "input": Q}
    cases = [({"previous_response_id": "resp_1"}, "previous_response_id"),
             ({"tools": [{"type": "web_search"}]}, "tools"),
             ({"tools": [dict(WEATHER, defer_loading=True)]}, "tools"),
             ({"frobnicate": 1}, "frobnicate"),
             ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, "input"),
             ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input"),
             ({"input": [{"type": "reasoning", "summary": [], "encrypted_content": "zzz"}]}, "input"),
             ({"input": [{"role": "tool", "content": "x"}]}, "input"),
             ({"input": 3}, "input"),
             ({"include": ["reasoning.encrypted_content"]}, "include"),
             ({"background": True}, "background"),
             ({"truncation": "auto"}, "truncation"),
             ({"max_output_tokens": 0}, "max_output_tokens"),
             ({"text": {"format": {"type": "xml"}}}, "text.format"),
             ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "nope"}}}}, "text.format"),
             ({"tool_choice": {"type": "file_search"}}, "tool_choice"),
             ({"tool_choice": "auto"}, "tool_choice"),
             ({"reasoning": {"effort": "enormous"}}, "reasoning"),
             ({"temperature": "hot"}, "temperature"),
             ({"metadata": {"k": 1}}, "metadata"),
             ({"model": "nope"}, "model")]
    for extra, param in cases:
        s, b = post("/v1/responses", dict(M, **extra))
        e = json.loads(b)["error"]
        assert s == (404 if param == "model" else 400) and e["param"] == param and e["message"], (extra, s, e)
    try:
        client.responses.create(model=MODEL, input=Q, previous_response_id="resp_x")
        raise AssertionError("previous_response_id accepted")
    except openai.BadRequestError as e:
        assert "previous_response_id" in str(e)
    # the server is still answering
    assert create(input=Q).output_text == ANSWER


def test_hostile_bodies():
    """The Responses body goes through the chat API's limits and checks."""
    deep = {}
    for _ in range(300):
        deep = {"x": deep}
    M = {"model": MODEL, "input": Q}
    cases = [(dict(M, metadata=deep), "metadata"),  # refused on its bytes, before parsing
             (dict(M, max_output_tokens=2 ** 62), "max_output_tokens"),
             (dict(M, max_output_tokens=10 ** 7), "max_output_tokens"),  # beyond the context
             (dict(M, input="word " * 100000), "input"),  # a prompt longer than the context
             (dict(M, input=[{"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{not json"}]),
              "input"),
             (dict(M, input=[]), "input"),
             (dict(M, tools=[WEATHER, WEATHER]), "tools")]
    for body, param in cases:
        s, b = post("/v1/responses", body)
        e = json.loads(b)["error"]
        assert s == 400 and e["param"] == param, (param, s, e)
    for raw in (b"", b"[]", b'{"model": "script", "input": "x", "temperature": NaN}', b'{"input": '):
        req = urllib.request.Request(BASE + "/v1/responses", data=raw, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=60)
            raise AssertionError(raw)
        except urllib.error.HTTPError as e:
            assert e.code == 400 and json.loads(e.read())["error"]["message"], raw
    assert create(input=Q).output_text == ANSWER


if __name__ == "__main__":
    harness.run(globals(), "test_")
