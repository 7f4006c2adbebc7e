"""One prompt for one request, whichever way it comes in.

Usage: prompt_parity.py BASE_URL MODEL_DIR [DEFAULT_KWARGS_JSON]

Sends the same chat requests (good ones: tools, every spelling of the thinking
switches, multi-turn conversations with tool calls and tool results, reasoning
sent back; bad ones: broken messages, tools, tool_choice, switches) three ways:
  render  `glm-server render --model MODEL_DIR --ids` (request on stdin)
  tokenize  POST /tokenize
  chat    POST /v1/chat/completions with max_tokens 1 and vLLM's
          return_token_ids, whose prompt_token_ids are the ids the engine got
          (usage.prompt_tokens must count them)
and checks that a good request gives the same token ids all three ways (and
that `render` without --ids prints their text), and a bad one is refused all
three ways with the same message (and, over HTTP, the same param).
DEFAULT_KWARGS_JSON: the server runs with --default-chat-template-kwargs, and
render gets the same flag. tests/cli/prompt_parity.sh runs this.
"""
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

BASE, MODEL_DIR = sys.argv[1], sys.argv[2]
DEFAULTS = sys.argv[3] if len(sys.argv) > 3 else None
BIN = "./glm-server"
MODEL = "parity"


def post(path, body):
    req = urllib.request.Request(BASE + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def render(body, ids=True):
    args = [BIN, "render", "--model", MODEL_DIR] + (["--ids"] if ids else [])
    if DEFAULTS:
        args += ["--default-chat-template-kwargs", DEFAULTS]
    p = subprocess.run(args, input=json.dumps(body).encode(), capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode()


def three_ways(body):
    """(render, tokenize, chat): each ("ok", ids) or ("error", message, param)."""
    rc, out, err = render(body)
    if rc == 0:
        r = ("ok", [int(x) for x in out.decode().strip().split(",") if x])
    else:
        assert rc == 1 and err.startswith("glm-server: ") and err.count("\n") == 1, (rc, err)
        r = ("error", err[len("glm-server: "):].rstrip("\n"), None)
    s, b = post("/tokenize", dict(body, model=MODEL))
    t = ("ok", b["tokens"]) if s == 200 else ("error", b["error"]["message"], b["error"]["param"])
    assert s in (200, 400), (s, b)
    s, b = post("/v1/chat/completions", dict(body, model=MODEL, max_tokens=1, return_token_ids=True))
    if s == 200:
        assert b["usage"]["prompt_tokens"] == len(b["prompt_token_ids"]), b["usage"]
        c = ("ok", b["prompt_token_ids"])
    else:
        assert s == 400, (s, b)
        c = ("error", b["error"]["message"], b["error"]["param"])
    return r, t, c


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather forecast for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"},
        "days": {"type": "integer", "minimum": 1}}, "required": ["city"]}}}
SEARCH = {"type": "function", "function": {
    "name": "search", "parameters": {"type": "object", "properties": {
        "query": {"type": "string"}, "filters": {"type": "object"}}}}}
USER = [{"role": "user", "content": "What is the weather in Paris?"}]
CALL = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_1", "type": "function",
     "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"days\": 2}"}}]}
TURNS = USER + [CALL, {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
                {"role": "assistant", "content": "It is sunny.", "reasoning": "The tool said sunny."},
                {"role": "user", "content": [{"type": "text", "text": "And"}, {"type": "text", "text": " tomorrow?"}]}]

GOOD = {
    "plain": {"messages": USER},
    "system and parts": {"messages": [{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]},
    "tools": {"messages": USER, "tools": [WEATHER, SEARCH]},
    "tools required": {"messages": USER, "tools": [WEATHER], "tool_choice": "required"},
    "tools named": {"messages": USER, "tools": [WEATHER, SEARCH],
                    "tool_choice": {"type": "function", "function": {"name": "search"}},
                    "parallel_tool_calls": False},
    "tool results, multi-turn": {"messages": TURNS, "tools": [WEATHER]},
    "arguments as an object": {"messages": USER + [dict(CALL, tool_calls=[dict(
        CALL["tool_calls"][0], function={"name": "get_weather", "arguments": {"city": "Paris"}})])],
        "tools": [WEATHER]},
    "no generation prompt": {"messages": TURNS, "add_generation_prompt": False},
    "reasoning false": {"messages": USER, "reasoning": False},
    "reasoning object": {"messages": USER, "reasoning": {"effort": "high", "max_tokens": 50}},
    "thinking disabled": {"messages": TURNS, "tools": [WEATHER], "thinking": {"type": "disabled"}},
    "thinking clear_thinking": {"messages": TURNS, "thinking": {"type": "enabled", "clear_thinking": False}},
    "enable_thinking false": {"messages": USER, "chat_template_kwargs": {"enable_thinking": False}},
    "enable_thinking true": {"messages": USER, "chat_template_kwargs": {"enable_thinking": True}},
    "reasoning_effort none": {"messages": USER, "reasoning_effort": "none"},
    "budget and exclude": {"messages": USER, "thinking_token_budget": 8, "include_reasoning": False},
    "explicit off wins": {"messages": USER, "reasoning": {"effort": "low"},
                          "chat_template_kwargs": {"enable_thinking": False}},
    "nulls are absent": {"messages": USER, "tools": None, "tool_choice": None, "reasoning": None},
}

M = [{"role": "user", "content": "x"}]
BAD = {
    "empty messages": {"messages": []},
    "messages not a list": {"messages": 3},
    "unknown role": {"messages": [{"role": "robot", "content": "x"}]},
    "missing content": {"messages": [{"role": "user"}]},
    "image part": {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
    "arguments not JSON": {"messages": USER + [dict(CALL, tool_calls=[dict(
        CALL["tool_calls"][0], function={"name": "get_weather", "arguments": "{city"})])]},
    "tools not a list": {"messages": M, "tools": {"a": 1}},
    "tools empty": {"messages": M, "tools": []},
    "tool without function": {"messages": M, "tools": [{"type": "function", "name": "f"}]},
    "tool bad name": {"messages": M, "tools": [{"type": "function", "function": {"name": "a b"}}]},
    "tool bad schema": {"messages": M, "tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "int"}}}}}]},
    "duplicate tools": {"messages": M, "tools": [WEATHER, WEATHER]},
    "tool_choice without tools": {"messages": M, "tool_choice": "auto"},
    "tool_choice unknown": {"messages": M, "tools": [WEATHER], "tool_choice": "sometimes"},
    "tool_choice names another": {"messages": M, "tools": [WEATHER],
                                  "tool_choice": {"type": "function", "function": {"name": "search"}}},
    "parallel_tool_calls not bool": {"messages": M, "tools": [WEATHER], "parallel_tool_calls": "yes"},
    "add_generation_prompt not bool": {"messages": M, "add_generation_prompt": 1},
    "thinking not an object": {"messages": M, "thinking": 3},
    "thinking type unknown": {"messages": M, "thinking": {"type": "maybe"}},
    "reasoning effort unknown": {"messages": M, "reasoning_effort": "extreme"},
    "contradictory switches": {"messages": M, "reasoning": True,
                               "chat_template_kwargs": {"enable_thinking": False}},
    "contradictory efforts": {"messages": M, "reasoning": {"effort": "low"}, "reasoning_effort": "high"},
    "contradictory budgets": {"messages": M, "reasoning": {"max_tokens": 5}, "thinking_token_budget": 6},
    "budget negative": {"messages": M, "thinking_token_budget": -1},
    "chat_template_kwargs not an object": {"messages": M, "chat_template_kwargs": [1]},
}


def max_model_len():
    with urllib.request.urlopen(BASE + "/v1/models", timeout=60) as r:
        return json.loads(r.read())["data"][0]["max_model_len"]


# the request limits (README, "Request limits"): one past each, refused the same three ways
CTX = max_model_len()
ARGS = json.dumps({"a": [0] * 40000, "b": [0] * (CTX + 65536 - 40000)})
BAD.update({
    "too many messages": {"messages": M * (CTX + 1)},
    "too many content parts": {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}] * (CTX + 1)}]},
    "too many tools": {"messages": M, "tools": [{"type": "function", "function": {"name": "f%d" % i}}
                                                for i in range(129)]},
    "chat_template_kwargs too large": {"messages": M, "chat_template_kwargs": {"x": list(range(5000))}},
    "chat_template_kwargs too deep": {"messages": M, "chat_template_kwargs": {"x": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}},
    "an array over the members limit": {"messages": M, "extra": [0] * (max(CTX, 65536) + 1)},
    "nesting over the limit": {"messages": M, "extra": json.loads("[" * 128 + "]" * 128)},
    "arguments over the values limit": {"messages": M + [dict(CALL, tool_calls=[dict(
        CALL["tool_calls"][0], function={"name": "get_weather", "arguments": ARGS})])]},
})


def make_test(name, body, good):
    def test():
        r, t, c = three_ways(body)
        if good:
            assert r[0] == "ok" and r[1], (name, r)
            assert t == r, (name, "tokenize", t, "render", r)
            assert c == r, (name, "chat", c, "render", r)
            # render's text is the text of those ids
            rc, text, _ = render(body, ids=False)
            s, d = post("/detokenize", {"model": MODEL, "tokens": r[1]})
            assert rc == 0 and s == 200 and d["prompt"] == text.decode(), (name, text, d)
        else:
            assert r[0] == "error" and t[0] == "error" and c[0] == "error", (name, r, t, c)
            assert r[1] == t[1] == c[1], (name, r[1], t[1], c[1])
            assert t[2] == c[2], (name, "param", t[2], c[2])
    return test


tests = {}
for n, b in GOOD.items():
    tests["test_good_" + n.replace(" ", "_").replace(",", "")] = make_test(n, b, True)
for n, b in BAD.items():
    tests["test_bad_" + n.replace(" ", "_")] = make_test(n, b, False)


def test_sets_differ():
    """The switches do reach the prompt: thinking on and off give different ids."""
    on = three_ways({"messages": USER, "reasoning": True})[0]
    off = three_ways({"messages": USER, "reasoning": False})[0]
    assert on[0] == off[0] == "ok" and on[1] != off[1]


tests["test_sets_differ"] = test_sets_differ

if __name__ == "__main__":
    harness.run(tests, "test_")
