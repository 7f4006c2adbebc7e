"""The OpenAI/vLLM request fields beyond chat basics, against a running server on
models/tiny, through the official openai SDK (raw HTTP where the SDK cannot say it):
scoring with echo and logprobs (checked against the transformers goldens of
tests/golden/tiny), max_tokens 0, vLLM's prompt_logprobs, lists of prompts,
text_offset, top_logprobs with the chosen token, the developer role, unique ids,
context_length in /v1/models, vLLM's fields implemented or refused by name, a tool
call cut by max_tokens, and the finish reasons the SDK's models accept.

    python tests/integration/test_api_fields.py BASE_URL

Prints one line per test and "N passed, N failed, N skipped" (harness.py)."""
import json
import math
import os
import struct
import sys
import urllib.error
import urllib.request

import harness
import openai
from openai import OpenAI

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
client = OpenAI(base_url=BASE + "/v1", api_key="none", max_retries=0)
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def post(path, body, headers=None):
    """(status, JSON) of a raw POST."""
    req = urllib.request.Request(BASE + path, json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


def refused(body, param, path="/v1/completions"):
    status, o, _ = post(path, dict({"model": "tiny"}, **body))
    assert status == 400, (body, status, o)
    assert o["error"]["param"] == param, (body, o)
    assert param.split(".")[0] in o["error"]["message"] or param in o["error"]["message"], o
    return o["error"]["message"]


def golden():
    """The transformers goldens of models/tiny: the prompt's ids, the logits of every
    prompt position [40, vocab], the greedy continuation."""
    d = os.path.join(ROOT, "tests", "golden", "tiny")
    meta = json.load(open(os.path.join(d, "f32.json")))
    V = meta["vocab_size"]
    raw = open(os.path.join(d, "f32.prompt.f32"), "rb").read()
    rows = [struct.unpack_from("<%df" % V, raw, 4 * V * k) for k in range(len(raw) // (4 * V))]
    return meta["prompt_ids"], rows, meta["greedy_ids"]


def log_softmax_at(row, t):
    m = max(row)
    return row[t] - m - math.log(sum(math.exp(x - m) for x in row))


# ---- 1. scoring: echo + logprobs, max_tokens 0 and 1, prompt_logprobs ------------------------

def test_echo_logprobs_equal_the_transformers_goldens():
    ids, rows, greedy = golden()
    ref = [None] + [log_softmax_at(rows[k - 1], ids[k]) for k in range(1, len(ids))]
    for max_tokens in (0, 1):
        r = client.completions.create(model="tiny", prompt=ids, echo=True, logprobs=1, max_tokens=max_tokens,
                                      temperature=0)
        lp = r.choices[0].logprobs
        assert len(lp.token_logprobs) == len(ids) + max_tokens, (max_tokens, len(lp.token_logprobs))
        assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
        worst = max(abs(lp.token_logprobs[k] - ref[k]) for k in range(1, len(ids)))
        assert worst < 2e-3, worst
        assert r.usage.prompt_tokens == len(ids) and r.usage.completion_tokens == max_tokens
        if max_tokens == 0:
            assert r.choices[0].finish_reason == "length"
        else:  # the generated token follows, scored by the same distribution
            want = log_softmax_at(rows[len(ids) - 1], greedy[0])
            assert abs(lp.token_logprobs[-1] - want) < 2e-3, (lp.token_logprobs[-1], want)


def test_scoring_a_continuation_the_lm_eval_way():
    # loglikelihood(context, continuation): sum of the continuation's token logprobs
    ids, rows, _ = golden()
    ctx, cont = ids[:30], ids[30:]
    r = client.completions.create(model="tiny", prompt=ctx + cont, echo=True, logprobs=1, max_tokens=1,
                                  temperature=0)
    lp = r.choices[0].logprobs.token_logprobs
    got = sum(lp[len(ctx):len(ids)])
    want = sum(log_softmax_at(rows[k - 1], ids[k]) for k in range(30, len(ids)))
    assert abs(got - want) < 1e-2, (got, want)
    # is_greedy: each continuation token is the top one when it is the argmax
    tops = r.choices[0].logprobs.top_logprobs
    for k in range(30, len(ids)):
        assert r.choices[0].logprobs.tokens[k] in tops[k]


def test_echo_text_and_offsets_in_characters():
    prompt = "Hello world, été"
    r = client.completions.create(model="tiny", prompt=prompt, echo=True, logprobs=0, max_tokens=0)
    c = r.choices[0]
    assert c.text == prompt
    toks, off = c.logprobs.tokens, c.logprobs.text_offset
    assert "".join(toks) == prompt
    assert off == [sum(len(t) for t in toks[:k]) for k in range(len(toks))], off  # characters, not bytes
    r = client.completions.create(model="tiny", prompt=prompt, echo=True, logprobs=0, max_tokens=3,
                                  temperature=0)
    lp = r.choices[0].logprobs
    assert lp.text_offset[len(toks)] == len(prompt)
    for k in range(1, len(lp.tokens)):
        assert lp.text_offset[k] == lp.text_offset[k - 1] + len(lp.tokens[k - 1])


def test_echo_max_tokens_zero_without_logprobs():
    r = client.completions.create(model="tiny", prompt="a b c", echo=True, max_tokens=0)
    assert r.choices[0].text == "a b c" and r.choices[0].logprobs is None
    assert r.usage.completion_tokens == 0
    refused({"prompt": "a b c", "max_tokens": 0}, "max_tokens")


def test_echo_logprobs_stream():
    ids, rows, _ = golden()
    s = client.completions.create(model="tiny", prompt=ids[:12], echo=True, logprobs=2, max_tokens=2,
                                  temperature=0, stream=True)
    chunks = [c for c in s if c.choices]
    first = chunks[0].choices[0]
    assert first.logprobs.token_logprobs[0] is None and len(first.logprobs.tokens) == 12
    for k in range(1, 12):
        assert abs(first.logprobs.token_logprobs[k] - log_softmax_at(rows[k - 1], ids[k])) < 2e-3
    gen = [lp for c in chunks[1:] if c.choices[0].logprobs for lp in c.choices[0].logprobs.token_logprobs]
    assert len(gen) == 2


def test_vllm_prompt_logprobs():
    ids, rows, _ = golden()
    st, o, _ = post("/v1/completions", {"model": "tiny", "prompt": ids[:10], "prompt_logprobs": 2,
                                        "max_tokens": 1})
    assert st == 200, o
    plp = o["choices"][0]["prompt_logprobs"]
    assert plp[0] is None and len(plp) == 10
    for k in range(1, 10):
        e = plp[k][str(ids[k])]
        assert abs(e["logprob"] - log_softmax_at(rows[k - 1], ids[k])) < 2e-3
        rank = 1 + sum(1 for x in rows[k - 1] if x > rows[k - 1][ids[k]])
        assert e["rank"] == rank, (e, rank)
        assert sorted(v["rank"] for t, v in plp[k].items() if t != str(ids[k]))[:2] == [1, 2] or e["rank"] <= 2
    # the chat API returns them too (top level)
    st, o, _ = post("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}],
                                             "prompt_logprobs": 0, "max_tokens": 1})
    assert st == 200, o
    assert o["prompt_logprobs"][0] is None and len(o["prompt_logprobs"]) == o["usage"]["prompt_tokens"]
    refused({"prompt": "a", "prompt_logprobs": -1}, "prompt_logprobs")
    refused({"prompt": "a", "prompt_logprobs": 1, "stream": True}, "prompt_logprobs")


def test_scoring_skips_the_prefix_cache_and_agrees_with_it():
    ids, _, _ = golden()
    a = client.completions.create(model="tiny", prompt=ids, max_tokens=1, temperature=0)
    b = client.completions.create(model="tiny", prompt=ids, echo=True, logprobs=1, max_tokens=1,
                                  temperature=0)
    assert b.choices[0].text.endswith(a.choices[0].text)
    assert len(b.choices[0].logprobs.token_logprobs) == len(ids) + 1


# ---- 2. a list of prompts ----------------------------------------------------------------------

def test_list_of_prompts():
    alone = [client.completions.create(model="tiny", prompt=p, max_tokens=3, temperature=0).choices[0].text
             for p in ("one two", "three four five")]
    r = client.completions.create(model="tiny", prompt=["one two", "three four five"], max_tokens=3,
                                  temperature=0, n=2)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert [c.text for c in r.choices] == [alone[0], alone[0], alone[1], alone[1]]
    ids = [[5, 6, 7], [8, 9]]
    r = client.completions.create(model="tiny", prompt=ids, max_tokens=2, temperature=0, echo=True, logprobs=0)
    assert r.usage.prompt_tokens == 5 and r.usage.completion_tokens == 4
    assert len(r.choices[1].logprobs.tokens) == 4 and r.choices[1].logprobs.token_logprobs[0] is None
    s = client.completions.create(model="tiny", prompt=["one two", "three four five"], max_tokens=3,
                                  temperature=0, stream=True)
    text = {0: "", 1: ""}
    for c in s:
        for ch in c.choices:
            text[ch.index] += ch.text
    assert text == {0: alone[0], 1: alone[1]}, text
    refused({"prompt": ["a", 5]}, "prompt")
    refused({"prompt": ["a", "b"], "response_format": {"type": "json_object"}}, "prompt")


# ---- 4. top_logprobs hold the chosen token --------------------------------------------------------

def test_top_logprobs_hold_the_chosen_token():
    r = client.completions.create(model="tiny", prompt="a b", max_tokens=6, logprobs=1, temperature=1.5, seed=3)
    lp = r.choices[0].logprobs
    for tok, top in zip(lp.tokens, lp.top_logprobs):
        assert tok in top and len(top) <= 2, (tok, top)
    r = client.completions.create(model="tiny", prompt="a b", max_tokens=3, logprobs=0, temperature=0)
    for tok, top in zip(r.choices[0].logprobs.tokens, r.choices[0].logprobs.top_logprobs):
        assert list(top) == [tok]


# ---- 5. the developer role --------------------------------------------------------------------

def test_developer_role_is_system():
    def ids(role):
        st, o, _ = post("/tokenize", {"model": "tiny", "messages": [{"role": role, "content": "Be brief."},
                                                                    {"role": "user", "content": "Hi"}]})
        assert st == 200, o
        return o["tokens"]
    assert ids("developer") == ids("system")
    r = client.chat.completions.create(model="tiny", max_tokens=2, messages=[
        {"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert r.choices[0].finish_reason in ("stop", "length")


# ---- 6. ids unique per response ------------------------------------------------------------------

def test_ids_are_unique_per_response():
    seen = set()
    for _ in range(3):
        st, o, h = post("/v1/chat/completions", {"model": "tiny", "max_tokens": 1, "messages": [
            {"role": "user", "content": "Hi"}]}, {"X-Request-Id": "session-42"})
        assert st == 200 and h.get("X-Request-Id") == "session-42", h
        assert o["id"].startswith("chatcmpl-") and "session-42" not in o["id"]
        seen.add(o["id"])
    assert len(seen) == 3


# ---- 8. context_length --------------------------------------------------------------------------

def test_models_list_context_length():
    m = client.models.list().data[0]
    assert m.model_extra["context_length"] == m.model_extra["max_model_len"] > 0


# ---- 10. vLLM's fields: implemented, or a 400 naming them ---------------------------------------------

def test_vllm_fields_are_refused_by_name():
    for body, param in [
        ({"prompt": "a", "suffix": "b"}, "suffix"),
        ({"prompt": "a", "best_of": 2}, "best_of"),
        ({"prompt": "a", "bad_words": ["x"]}, "bad_words"),
        ({"prompt": "a", "allowed_token_ids": [1, 2]}, "allowed_token_ids"),
        ({"prompt": "a", "truncate_prompt_tokens": 0}, "truncate_prompt_tokens"),
        ({"prompt": "a", "spaces_between_special_tokens": 1}, "spaces_between_special_tokens"),
        ({"prompt": "a", "include_stop_str_in_output": "yes"}, "include_stop_str_in_output"),
        ({"prompt": "a", "n": 2, "best_of": 3}, "best_of"),
    ]:
        refused(body, param)
    for field, value in (("chat_template", "{{ 1 }}"), ("functions", [{"name": "f"}]), ("function_call", "auto"),
                         ("audio", {"voice": "x"}), ("prediction", {"type": "content", "content": "x"}),
                         ("web_search_options", {})):
        refused({"messages": [{"role": "user", "content": "Hi"}], field: value}, field, "/v1/chat/completions")


def test_truncate_prompt_tokens_keeps_the_last():
    a = client.completions.create(model="tiny", prompt=[7, 8, 9, 10, 11], max_tokens=3, temperature=0,
                                  extra_body={"truncate_prompt_tokens": 2})
    b = client.completions.create(model="tiny", prompt=[10, 11], max_tokens=3, temperature=0)
    assert a.usage.prompt_tokens == 2 and a.choices[0].text == b.choices[0].text
    r = client.chat.completions.create(model="tiny", max_tokens=1, messages=[{"role": "user", "content": "Hi"}],
                                       extra_body={"truncate_prompt_tokens": 3})
    assert r.usage.prompt_tokens == 3


def test_spaces_between_special_tokens_is_accepted():
    # vLLM applies it to slow tokenizers only; GLM's is a fast one, so it changes nothing there either
    for v in (True, False):
        st, o, _ = post("/v1/completions", {"model": "tiny", "prompt": "a", "max_tokens": 1,
                                            "spaces_between_special_tokens": v})
        assert st == 200, o


def test_best_of_equal_to_n_is_accepted():
    r = client.completions.create(model="tiny", prompt="a", max_tokens=1, best_of=1)
    assert len(r.choices) == 1


def test_include_stop_str_in_output():
    base = client.completions.create(model="tiny", prompt="a b", max_tokens=8, temperature=0).choices[0].text
    assert len(base) > 2
    stop = base[1:3]
    cut = client.completions.create(model="tiny", prompt="a b", max_tokens=8, temperature=0, stop=[stop])
    kept = client.completions.create(model="tiny", prompt="a b", max_tokens=8, temperature=0, stop=[stop],
                                     extra_body={"include_stop_str_in_output": True})
    assert cut.choices[0].text == base[:1]
    assert kept.choices[0].text == base[:3], (kept.choices[0].text, base)


def test_return_tokens_as_token_ids():
    r = client.completions.create(model="tiny", prompt="a b", max_tokens=3, logprobs=1, temperature=0,
                                  extra_body={"return_tokens_as_token_ids": True, "return_token_ids": True})
    lp = r.choices[0].logprobs
    assert lp.tokens == ["token_id:%d" % t for t in r.choices[0].model_extra["token_ids"]]
    for tok, top in zip(lp.tokens, lp.top_logprobs):
        assert tok in top and all(k.startswith("token_id:") for k in top)


def test_continuous_usage_stats():
    s = client.completions.create(model="tiny", prompt="a b", max_tokens=3, temperature=0, stream=True,
                                  stream_options={"include_usage": True, "continuous_usage_stats": True})
    chunks = list(s)
    with_text = [c for c in chunks if c.choices and c.choices[0].text]
    assert with_text and all(c.usage is not None for c in with_text)
    assert [c.usage.completion_tokens for c in with_text] == sorted(c.usage.completion_tokens for c in with_text)
    assert chunks[-1].usage.completion_tokens == 3


def test_skip_special_tokens():
    # <think> is a special token of the tiny model: kept with skip_special_tokens false
    st, o, _ = post("/v1/completions", {"model": "tiny", "prompt": "a", "max_tokens": 2, "temperature": 0,
                                        "logit_bias": {"4057": 100}, "skip_special_tokens": False})
    assert st == 200 and o["choices"][0]["text"].startswith("<think>"), o
    st, o, _ = post("/v1/completions", {"model": "tiny", "prompt": "a", "max_tokens": 2, "temperature": 0,
                                        "logit_bias": {"4057": 100}})
    assert st == 200 and "<think>" not in o["choices"][0]["text"], o


# ---- 7. a tool call cut by max_tokens --------------------------------------------------------------

def test_tool_call_cut_by_max_tokens_is_not_a_call():
    # the grammar of tool_choice "required" makes the tiny model finish a call of integers
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"days": {"type": "integer"}, "hours": {"type": "integer"}},
        "required": ["days", "hours"]}}}]
    msgs = [{"role": "user", "content": "Weather?"}]

    def call(max_tokens, stream=False):
        kw = dict(model="tiny", max_tokens=max_tokens, tools=tools, tool_choice="required", messages=msgs,
                  parallel_tool_calls=False, reasoning_effort="none", temperature=0)
        if not stream:
            r = client.chat.completions.create(**kw)
            return r.choices[0].finish_reason, r.choices[0].message.tool_calls or [], r.usage.completion_tokens
        args, why = "", None
        for c in client.chat.completions.create(stream=True, **kw):
            for ch in c.choices:
                for tc in ch.delta.tool_calls or []:
                    args += tc.function.arguments or ""
                why = ch.finish_reason or why
        return why, args, None

    why, calls, n = call(64)
    assert why == "tool_calls", (why, calls)
    assert set(json.loads(calls[0].function.arguments)) == {"days", "hours"}
    # the last tokens: </tool_call>, then the end forced after it; cut before them
    for cut in (n - 2, n - 4):
        why, calls, _ = call(cut)
        assert why == "length" and len(calls) == 1, (cut, why, calls)
        try:
            json.loads(calls[0].function.arguments)
            assert False, "a cut call's arguments parse: %r" % calls[0].function.arguments
        except json.JSONDecodeError:
            pass
        why, args, _ = call(cut, stream=True)
        assert why == "length" and args == calls[0].function.arguments, (args, calls[0].function.arguments)


# ---- 12. finish reasons the SDK's models accept -------------------------------------------------------

def test_finish_reasons_parse_in_the_sdk():
    from openai._models import construct_type
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from openai.types import Completion
    # what a response carries is one of OpenAI's values, valid under the SDK's strict models
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    for body in ({"max_tokens": 1}, {"max_tokens": 64, "tools": tools, "tool_choice": "required"}):
        st, o, _ = post("/v1/chat/completions", dict({"model": "tiny", "messages": [
            {"role": "user", "content": "Hi"}], "reasoning_effort": "none"}, **body))
        assert st == 200, o
        ChatCompletion.model_validate(o)
    st, o, _ = post("/v1/completions", {"model": "tiny", "prompt": "a", "max_tokens": 1})
    Completion.model_validate(o)
    # "abort" (vLLM's, in a stream the server ends) is not an OpenAI value: the SDK's own
    # parsing of a chunk (construct_type, as the stream does) keeps it without an error
    chunk = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "tiny",
             "choices": [{"index": 0, "delta": {}, "finish_reason": "abort"}]}
    c = construct_type(type_=ChatCompletionChunk, value=chunk)
    assert c.choices[0].finish_reason == "abort"


if __name__ == "__main__":
    harness.run(globals(), "test_")
