"""Integration tests for `glm-server serve` on the tiny model, with the official
`openai` SDK and raw HTTP (urllib / sockets).

Usage: test_server.py BASE_URL API_KEY [queue]
  default: the server was started with --api-key API_KEY --max-request-bytes 1MiB;
  queue:   ... and --max-num-seqs 1 --max-queue 1 --sse-ping-interval 0.2
           --timeout-keep-alive 2 (runs only the queue_test_* tests: queueing, slow loris).
tests/cli/server.sh starts both.
Prints one line per test and a closing line "N passed, N failed, N skipped";
exits 1 on any failure. The tiny model writes random-looking text: the tests
check structure and consistency (greedy stream == non-stream, seeds, stops),
never the words. No test asserts how long something took: waits for the
server poll for a state with a generous hang guard (HANG seconds) and then
check what happened (statuses, counters, which request finished how).
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import openai

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import hostile  # noqa: E402
from promtext import check_histograms, metric_sum, parse_exposition  # noqa: E402

BASE, KEY = sys.argv[1], sys.argv[2]
MODE = sys.argv[3] if len(sys.argv) > 3 else "main"
MODEL = "tiny"
client = openai.OpenAI(base_url=BASE + "/v1", api_key=KEY, max_retries=0, timeout=60)
NOTHINK = {"chat_template_kwargs": {"enable_thinking": False}}
MSGS = [{"role": "user", "content": "Tell me a story about a cat."}]
HANG = 60  # seconds: only a hang takes this long, whatever the machine's load


def raw(method, path, body=None, headers=None, key=KEY):
    """Returns (status, headers, body bytes) without raising on HTTP errors."""
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = "Bearer " + key
    h.update(headers or {})
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def check_error(status, body, code, param=None):
    assert status == code, (status, body)
    e = json.loads(body)["error"]
    assert set(e) >= {"message", "type", "param", "code"}, e
    assert e["code"] == code and e["message"], e
    if param is not None:
        assert e["param"] == param, e
    return e


def metrics():
    _, _, b = raw("GET", "/metrics", key=None)
    out = {}
    for line in b.decode().splitlines():
        if line and not line.startswith("#"):
            name, val = line.rsplit(" ", 1)
            out[name.split("{")[0]] = float(val)
    return out


def chat_text(m):
    return (m.reasoning_content if hasattr(m, "reasoning_content") and m.reasoning_content else "") + (m.content or "")


# ---- tests ------------------------------------------------------------------------------


def test_health_models_version():
    s, _, b = raw("GET", "/health", key=None)
    assert s == 200
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL]
    assert models[0].model_extra["max_model_len"] > 0
    assert client.models.retrieve(MODEL).id == MODEL
    s, _, b = raw("GET", "/v1/models/nope")
    check_error(s, b, 404)
    s, _, b = raw("GET", "/version", key=None)
    assert s == 200 and json.loads(b)["version"]


def test_chat_stream_equals_nonstream():
    r = client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=24, temperature=0, extra_body=NOTHINK)
    full = chat_text(r.choices[0].message)
    assert r.object == "chat.completion" and r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0
    chunks = list(client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=24, temperature=0,
                                                 stream=True, extra_body=NOTHINK))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join((c.choices[0].delta.content or "") + (getattr(c.choices[0].delta, "reasoning_content", None) or "")
                   for c in chunks if c.choices)
    assert text == full, (text, full)
    assert chunks[-1].choices[0].finish_reason == r.choices[0].finish_reason


def test_32_concurrent_streams():
    """32 streams at once, each a different prompt: every stream completes with
    [DONE] semantics (a finish_reason), and each greedy text equals the same
    request made alone afterwards (continuous batching changes nothing)."""
    import threading
    results, errors = {}, []

    def one(i):
        try:
            msgs = [{"role": "user", "content": f"Stream number {i}: tell me about the number {i * 7}."}]
            chunks = list(client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=12 + i % 5,
                                                         temperature=0, stream=True, extra_body=NOTHINK))
            assert chunks[-1].choices[0].finish_reason in ("stop", "length"), chunks[-1]
            results[i] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        except Exception as e:  # collected and reported below
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert len(results) == 32
    for i in (0, 13, 31):
        msgs = [{"role": "user", "content": f"Stream number {i}: tell me about the number {i * 7}."}]
        r = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=12 + i % 5, temperature=0,
                                           extra_body=NOTHINK)
        assert chat_text(r.choices[0].message) == results[i], (i, results[i])


def test_chat_reasoning_fields():
    r = client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=8, temperature=0)
    m = r.choices[0].message.model_extra
    # the tiny template opens <think>: everything is reasoning, in both spellings
    assert m.get("reasoning_content") == m.get("reasoning")
    det = r.usage.completion_tokens_details
    assert det is not None and det.reasoning_tokens is not None


def test_completions_string_and_ids():
    r = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=16, temperature=0)
    assert r.object == "text_completion" and r.usage.completion_tokens == 16
    s, _, b = raw("POST", "/tokenize", {"model": MODEL, "prompt": "Once upon a time"})
    tok = json.loads(b)
    assert s == 200 and tok["count"] == len(tok["tokens"]) and tok["max_model_len"] > 0
    r2 = client.completions.create(model=MODEL, prompt=tok["tokens"], max_tokens=16, temperature=0)
    assert r2.choices[0].text == r.choices[0].text
    s, _, b = raw("POST", "/detokenize", {"model": MODEL, "tokens": tok["tokens"]})
    assert s == 200 and json.loads(b)["prompt"] == "Once upon a time"
    chunks = list(client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=16, temperature=0,
                                            stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == r.choices[0].text


def test_n2():
    r = client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=8, n=2, temperature=1, seed=5)
    assert sorted(c.index for c in r.choices) == [0, 1]
    assert r.usage.completion_tokens == 16
    chunks = list(client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=8, n=2, stream=True))
    assert {c.choices[0].index for c in chunks if c.choices} == {0, 1}


def test_seed_reproducible():
    kw = dict(model=MODEL, prompt="The weather", max_tokens=24, temperature=1.0, seed=1234)
    a = client.completions.create(**kw).choices[0].text
    b = client.completions.create(**kw).choices[0].text
    c = client.completions.create(**dict(kw, seed=99)).choices[0].text
    assert a == b
    assert a != c  # 24 random tokens from 4096: equal only by a miracle


def test_stop_string_across_tokens():
    base = client.completions.create(model=MODEL, prompt="Stop here", max_tokens=30, temperature=0, logprobs=0)
    toks = base.choices[0].logprobs.tokens
    text = base.choices[0].text
    # a stop string made of the end of one token and the start of the next
    # (tokens that are parts of a character print as U+FFFD: skip those)
    stop = None
    for k in range(1, len(toks) - 1):
        a, b = toks[k], toks[k + 1]
        if a and b and "\ufffd" not in "".join(toks[:k + 2]) and text.startswith("".join(toks[:k + 2])):
            stop = a[-1:] + b[:1]
            break
    assert stop, toks
    cut = text.index(stop)
    r = client.completions.create(model=MODEL, prompt="Stop here", max_tokens=30, temperature=0, stop=[stop])
    assert r.choices[0].text == text[:cut] and r.choices[0].finish_reason == "stop"
    chunks = list(client.completions.create(model=MODEL, prompt="Stop here", max_tokens=30, temperature=0,
                                            stop=stop, stream=True))
    streamed = "".join(c.choices[0].text for c in chunks if c.choices)
    assert streamed == text[:cut], (streamed, text[:cut], stop)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_logprobs():
    r = client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=6, temperature=0, logprobs=True,
                                       top_logprobs=3)
    lp = r.choices[0].logprobs.content
    assert len(lp) == r.usage.completion_tokens
    for e in lp:
        assert e.logprob <= 0 and len(e.top_logprobs) == 3
        assert e.top_logprobs[0].logprob >= e.top_logprobs[-1].logprob
        # greedy: the chosen token is the most likely one
        assert abs(e.top_logprobs[0].logprob - e.logprob) < 1e-5
    chunks = list(client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=6, temperature=0,
                                                 logprobs=True, top_logprobs=2, stream=True))
    n = sum(len(c.choices[0].logprobs.content) for c in chunks if c.choices and c.choices[0].logprobs)
    assert n == 6


def test_include_usage():
    chunks = list(client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=5, stream=True,
                                                 stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == [] and last.usage.completion_tokens == 5
    assert last.usage.total_tokens == last.usage.prompt_tokens + 5


def test_cached_tokens():
    long = [{"role": "user", "content": " ".join("word%d" % i for i in range(150))}]
    client.chat.completions.create(model=MODEL, messages=long, max_tokens=2)
    r = client.chat.completions.create(model=MODEL, messages=long, max_tokens=2)
    assert r.usage.prompt_tokens > 64
    assert r.usage.prompt_tokens_details.cached_tokens >= 32, r.usage


def test_errors():
    s, _, b = raw("POST", "/v1/chat/completions", {"model": MODEL, "messages": MSGS, "temperature": "hot"})
    check_error(s, b, 400, "temperature")
    s, _, b = raw("POST", "/v1/chat/completions", {"model": MODEL, "messages": MSGS, "top_p": 5})
    check_error(s, b, 400, "top_p")
    s, _, b = raw("POST", "/v1/chat/completions", {"model": MODEL, "messages": "hi"})
    check_error(s, b, 400, "messages")
    s, _, b = raw("POST", "/v1/chat/completions", b'{"model": ')
    check_error(s, b, 400)
    s, _, b = raw("POST", "/v1/completions", {"model": MODEL, "prompt": "x", "max_tokens": 100000})
    check_error(s, b, 400)
    s, _, b = raw("POST", "/v1/chat/completions", {"model": "gpt-4", "messages": MSGS})
    e = check_error(s, b, 404)
    assert e["message"] == "The model `gpt-4` does not exist."
    s, _, b = raw("POST", "/v1/chat/completions", {"model": MODEL, "messages": MSGS}, key=None)
    check_error(s, b, 401)
    s, _, b = raw("POST", "/v1/chat/completions", {"model": MODEL, "messages": MSGS}, key="wrong")
    check_error(s, b, 401)
    s, _, b = raw("GET", "/v1/nothing")
    check_error(s, b, 404)
    s, _, b = raw("GET", "/v1/chat/completions")
    check_error(s, b, 405)
    s, _, b = raw("POST", "/v1/completions", b'{"prompt": "' + b"a" * (2 << 20) + b'"}')
    check_error(s, b, 413)
    # curl sends "Expect: 100-continue" for large bodies: refused before the upload
    big = "/tmp/glm_server_big_%d.json" % os.getpid()
    with open(big, "wb") as f:
        f.write(b'{"prompt": "' + b"a" * (3 << 20) + b'"}')
    try:
        out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-H", "Authorization: Bearer " + KEY,
                              "-H", "Content-Type: application/json", "--data-binary", "@" + big,
                              BASE + "/v1/completions"], capture_output=True, timeout=30).stdout
    finally:
        os.unlink(big)
    body, code = out.rsplit(b"\n", 1)
    check_error(int(code), body, 413)
    try:
        client.chat.completions.create(model=MODEL, messages=MSGS, n=0)
        raise AssertionError("n=0 accepted")
    except openai.BadRequestError as ex:
        assert ex.body["param"] == "n", ex.body
    # unknown fields are ignored
    s, h, b = raw("POST", "/v1/completions", {"model": MODEL, "prompt": "x", "max_tokens": 1, "frobnicate": 1},
                  headers={"X-Request-Id": "my-id-1"})
    assert s == 200 and h["X-Request-Id"] == "my-id-1"


def test_metrics_exposition():
    # the engine publishes its counters after each step: once nothing runs or waits, the earlier
    # tests' last steps are counted, and the differences below are this test's alone
    wait_metrics(lambda m: m["glm:num_requests_running"] == 0 and m["glm:num_requests_waiting"] == 0)
    _, h, b = raw("GET", "/metrics", key=None)
    assert h["Content-Type"].startswith("text/plain"), h["Content-Type"]
    before, types = parse_exposition(b.decode())
    for g in ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc"):
        assert types["glm:" + g] == "gauge", g
    for c in ("prompt_tokens_total", "generation_tokens_total", "request_success_total", "num_preemptions_total",
              "prefix_cache_queries_total", "prefix_cache_hits_total"):
        assert types["glm:" + c] == "counter", c
    check_histograms(before, types, MODEL)
    # buckets are vLLM's
    ttft = sorted(float(dict(l)["le"]) for (n, l), _ in before.items() if n == "glm:time_to_first_token_seconds_bucket")
    assert ttft[:3] == [0.001, 0.005, 0.01] and ttft[-2] == 2560.0, ttft
    e2e = sorted(float(dict(l)["le"]) for (n, l), _ in before.items() if n == "glm:e2e_request_latency_seconds_bucket")
    assert e2e[:5] == [0.3, 0.5, 0.8, 1.0, 1.5] and e2e[-2] == 7680.0, e2e
    toks = sorted(float(dict(l)["le"]) for (n, l), _ in before.items() if n == "glm:request_prompt_tokens_bucket")
    assert toks[:4] == [1, 2, 5, 10], toks
    # one request of 7 tokens and a streamed one with n=2 of 4 tokens each: three "length" samples
    r = client.completions.create(model=MODEL, prompt="Count the metrics", max_tokens=7,
                                  extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 7
    list(client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=4, n=2, stream=True,
                                        extra_body={"ignore_eos": True}))
    # the engine publishes its counters after each step, which may end after the
    # answer left: wait for them (the histograms are observed before the answer)
    deadline = time.time() + HANG
    while True:
        _, _, b = raw("GET", "/metrics", key=None)
        after, types = parse_exposition(b.decode())
        gen = metric_sum(after, "glm:generation_tokens_total") - metric_sum(before, "glm:generation_tokens_total")
        if gen >= 15 or time.time() > deadline:
            break
        time.sleep(0.02)
    check_histograms(after, types, MODEL)

    def d(name, **kw):
        return metric_sum(after, name, **kw) - metric_sum(before, name, **kw)
    assert d("glm:request_success_total", finished_reason="length") == 3
    assert d("glm:e2e_request_latency_seconds_count") == 3
    assert d("glm:time_to_first_token_seconds_count") == 3
    assert d("glm:request_generation_tokens_sum") == 7 + 4 + 4
    assert d("glm:generation_tokens_total") == 15
    assert d("glm:prompt_tokens_total") >= r.usage.prompt_tokens
    assert d("glm:inter_token_latency_seconds_count") == 6 + 3 + 3
    assert d("glm:request_prompt_tokens_sum") >= r.usage.prompt_tokens
    assert d("glm:e2e_request_latency_seconds_sum") > 0
    assert d("glm:prefix_cache_queries_total") > 0


def open_stream(prompt, max_tokens=3000):
    """A streaming completion on a raw socket (so that the test can hang up)."""
    host, port = BASE.split("//")[1].split(":")
    body = json.dumps({"model": MODEL, "prompt": prompt, "max_tokens": max_tokens, "ignore_eos": True,
                       "stream": True})
    sock = socket.create_connection((host, int(port)))
    sock.sendall(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (KEY, len(body), body)).encode())
    return sock


def read_events(sock, n):
    got = b""
    while got.count(b"data: ") < n:
        chunk = sock.recv(4096)
        assert chunk, got
        got += chunk
    return got


def wait_metrics(cond, seconds=HANG):
    """Polls /metrics until cond holds; fails only if it never does (a hang)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        m = metrics()
        if cond(m):
            return m
        time.sleep(0.02)
    m = metrics()
    assert cond(m), m
    return m


def idle(m):
    return m["glm:num_requests_running"] == 0 and m["glm:num_requests_waiting"] == 0 and \
        m["glm:kv_cache_usage_perc"] == 0


def test_bad_input_never_5xx():
    M = MSGS
    cases = [
        ("/v1/chat/completions", {"messages": None}, "messages"),
        ("/v1/chat/completions", {"messages": [{"content": "x"}]}, "messages"),
        ("/v1/chat/completions", {"messages": M, "tools": "x"}, "tools"),
        ("/v1/chat/completions", {"messages": M, "stop": [1]}, "stop"),
        ("/v1/chat/completions", {"messages": M, "seed": 1.5}, "seed"),
        ("/v1/chat/completions", {"messages": M, "top_logprobs": 3}, "top_logprobs"),
        ("/v1/chat/completions", {"messages": M, "logit_bias": {"abc": 1}}, "logit_bias"),
        ("/v1/chat/completions", {"messages": M, "min_tokens": 5, "max_tokens": 2}, "min_tokens"),
        ("/v1/chat/completions", {"messages": M, "stream_options": 1}, "stream_options"),
        ("/v1/chat/completions", {"messages": M, "stop_token_ids": [99999]}, "stop_token_ids"),
        ("/v1/chat/completions", {"messages": M, "reasoning_effort": 3}, "reasoning_effort"),
        ("/v1/chat/completions", {"messages": [{"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "f", "arguments": "{bad"}}]}]}, "messages"),
        ("/v1/completions", {"prompt": ""}, "prompt"),
        ("/v1/completions", {"prompt": [-1]}, "prompt"),
        ("/v1/completions", {"prompt": [1] * 5000}, "prompt"),
        ("/v1/completions", {"prompt": "x", "logprobs": 50}, "logprobs"),
        ("/tokenize", {"prompt": 5}, "prompt"),
        ("/detokenize", {"tokens": ["a"]}, "tokens"),
    ]
    for path, body, param in cases:
        s, _, b = raw("POST", path, dict(body, model=MODEL))
        check_error(s, b, 400, param)
    s, _, b = raw("POST", "/v1/completions", b'{"prompt": "\xff\xfe"}')
    check_error(s, b, 400)
    # accepted variations
    for body in ({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
                 {"messages": M, "seed": -1}, {"messages": M, "logit_bias": {"5": 100}},
                 {"messages": M, "max_completion_tokens": 2, "max_tokens": 7}):
        s, _, b = raw("POST", "/v1/chat/completions", dict(body, model=MODEL, max_tokens=body.get("max_tokens", 2)))
        assert s == 200, (body, b)


def finished(reason):
    return metric_sum(parse_exposition(raw("GET", "/metrics", key=None)[2].decode())[0],
                      "glm:request_success_total", finished_reason=reason)


def wait_finished(reason, n):
    deadline = time.time() + HANG
    while finished(reason) != n and time.time() < deadline:
        time.sleep(0.02)
    assert finished(reason) == n, (reason, n, finished(reason))


def test_disconnect_mid_stream():
    """A client that hangs up mid-stream has its request aborted (KV freed): the
    request ends as an abort, not after its 3000 tokens as a "length"."""
    a0, l0 = finished("abort"), finished("length")
    sock = open_stream("Long")
    read_events(sock, 5)
    assert metrics()["glm:num_requests_running"] == 1
    sock.close()
    wait_metrics(idle)
    wait_finished("abort", a0 + 1)
    assert finished("length") == l0
    r = client.completions.create(model=MODEL, prompt="after", max_tokens=4, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 4


def test_echo_tools_tokenize_chat():
    r = client.completions.create(model=MODEL, prompt="Echo me", max_tokens=3, echo=True)
    assert r.choices[0].text.startswith("Echo me")
    chunks = list(client.completions.create(model=MODEL, prompt="Echo me", max_tokens=3, echo=True, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) .startswith("Echo me")
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                               "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}}}}}]
    r = client.chat.completions.create(model=MODEL, messages=MSGS, tools=tools, max_tokens=8)
    assert r.choices[0].finish_reason in ("stop", "length", "tool_calls")
    s, _, b = raw("POST", "/tokenize", {"model": MODEL, "messages": MSGS})
    assert s == 200 and json.loads(b)["count"] > 0


def test_config_overrides_and_cors():
    # server.sh's --config file has api_key ["sk-config"]; --api-key sk-test replaced it
    s, _, b = raw("GET", "/v1/models", key="sk-config")
    check_error(s, b, 401)
    good, evil = "http://good.example", "http://evil.example"
    pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
    s, h, b = raw("OPTIONS", "/v1/chat/completions", headers=dict(pre, Origin=good), key=None)  # no key needed
    assert s == 204 and h["Access-Control-Allow-Origin"] == good, (s, dict(h))
    assert "POST" in h["Access-Control-Allow-Methods"] and "authorization" in h["Access-Control-Allow-Headers"]
    s, h, b = raw("OPTIONS", "/v1/chat/completions", headers=dict(pre, Origin=evil), key=None)
    check_error(s, b, 400)
    assert "Access-Control-Allow-Origin" not in h
    s, h, _ = raw("OPTIONS", "/v1/models", key=None)
    assert s == 204 and "GET" in h["Allow"]
    s, h, b = raw("POST", "/v1/completions", {"model": MODEL, "prompt": "x", "max_tokens": 1},
                  headers={"Origin": "http://also.example"})
    assert s == 200 and h["Access-Control-Allow-Origin"] == "http://also.example" and h["Vary"] == "Origin"
    assert "X-Request-Id" in h["Access-Control-Expose-Headers"]
    s, h, b = raw("POST", "/v1/completions", {"model": MODEL, "prompt": "x"}, headers={"Origin": evil}, key=None)
    check_error(s, b, 401)  # errors carry CORS headers only for allowed origins
    assert "Access-Control-Allow-Origin" not in h
    s, h, b = raw("GET", "/v1/models", headers={"Origin": good}, key=None)
    check_error(s, b, 401)
    assert h["Access-Control-Allow-Origin"] == good  # so a browser can read the 401


def test_hostile_battery():
    n, fails = hostile.run_battery(BASE, KEY, MODEL, 1 << 20)
    assert n >= 40, n
    assert not fails, "\n".join(fails)
    s, _, _ = raw("GET", "/health", key=None)
    assert s == 200
    # still serving (ignore_eos: a random model may draw an end-of-sequence token early)
    r = client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=3, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 3
    wait_metrics(idle)


# ---- queueing (server with --max-num-seqs 1 --max-queue 1) ------------------------------


def queue_test_overload_and_queued_disconnect():
    a = open_stream("first")
    read_events(a, 3)
    b = open_stream("second")  # waits behind a
    wait_metrics(lambda m: m["glm:num_requests_waiting"] == 1)
    got = b""
    while b": ping" not in got:  # a waiting stream is kept alive with SSE comments
        chunk = b.recv(4096)
        assert chunk, got
        got += chunk
    assert b"data: " not in got, got
    s, h, body = raw("POST", "/v1/completions", {"model": MODEL, "prompt": "third", "max_tokens": 2})
    e = check_error(s, body, 503)  # as vLLM's admission control; the openai SDK retries it
    assert h["Retry-After"] == "1" and e["type"] == "ServiceUnavailableError", (dict(h), e)
    a0, l0 = finished("abort"), finished("length")
    b.close()  # hang up while queued: its request leaves the queue, aborted, while a still runs
    m = wait_metrics(lambda m: m["glm:num_requests_waiting"] == 0)
    assert m["glm:num_requests_running"] == 1, m
    wait_finished("abort", a0 + 1)
    assert finished("length") == l0  # a (3000 tokens) is still running: b never ran
    a.close()
    wait_metrics(idle)
    r = client.completions.create(model=MODEL, prompt="after", max_tokens=4, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 4


def queue_test_slow_loris():
    """Stalled clients (a partial body, partial headers) are closed after
    --timeout-keep-alive (2 s here) without an HTTP answer, and never stop the
    server from serving others meanwhile. (Each socket waits HANG seconds at
    most: only a server that never closes them fails.)"""
    host, port = BASE.split("//")[1].split(":")
    body = json.dumps({"model": MODEL, "prompt": "x", "max_tokens": 1})
    socks = []
    for _ in range(8):
        s = socket.create_connection((host, int(port)), timeout=HANG)
        s.sendall(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                   % (KEY, len(body) + 10, body)).encode())  # 10 bytes never come
        socks.append(s)
        s = socket.create_connection((host, int(port)), timeout=HANG)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # headers never end
        socks.append(s)
    s, _, _ = raw("GET", "/health", key=None)
    assert s == 200
    r = client.completions.create(model=MODEL, prompt="meanwhile", max_tokens=2, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 2
    for s in socks:
        try:
            got = s.recv(4096)
        except ConnectionResetError:
            got = b""
        assert got == b"", got  # closed without an answer
        s.close()


if __name__ == "__main__":
    harness.run(globals(), "queue_test_" if MODE == "queue" else "test_")
