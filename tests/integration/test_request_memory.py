"""Bounded memory per request: hostile bodies within --max-request-bytes
(32 MiB) against a running server, with its peak RSS read from /proc.

Usage: test_request_memory.py BASE_URL SERVER_PID   (tests/cli/request_memory.sh)

Each case resets the server's peak (VmHWM, through /proc/PID/clear_refs),
sends its request, checks the answer, and checks that the peak grew by at
most the stated bound over the resident memory before it (README, "Request
limits"):

    growth <= 5 x body + 64 MiB + 1 KiB x the body's value limit

(the value limit is 65536 + max_model_len). The bodies of 32 MiB are also held
to 5 x body alone. Afterwards the server still answers /health and a chat
request, and its resident memory is back near where it started (after one
ordinary request). Nothing is
timed. Every case prints its figures: body, growth, growth / body.
"""
import http.client
import json
import os
import re
import sys
import threading
from urllib.parse import urlparse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

BASE, PID = sys.argv[1], int(sys.argv[2])
URL = urlparse(BASE)
MIB = 1 << 20
BODY = 32 * MIB - 4096  # just under the default --max-request-bytes


def request(method, path, body=None, timeout=600):
    c = http.client.HTTPConnection(URL.hostname, URL.port, timeout=timeout)
    c.request(method, path, body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def status_kb(field):
    with open("/proc/%d/status" % PID) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no %s in /proc/%d/status" % (field, PID))


def reset_peak():
    try:
        with open("/proc/%d/clear_refs" % PID, "w") as f:
            f.write("5")
    except OSError as e:
        harness.skip("cannot reset the server's peak RSS (/proc/%d/clear_refs: %s)" % (PID, e))


CTX = json.loads(request("GET", "/v1/models")[1])["data"][0]["max_model_len"]
VALUES = 65536 + CTX                      # the body's value limit
MEMBERS = max(65536, CTX)                 # one array or object
MULT = 5
FIXED = 64 * MIB + 1024 * VALUES
# one ordinary request first: what the first generation touches (KV cache, workspace) is not growth
assert request("POST", "/v1/chat/completions", json.dumps(
    {"max_tokens": 4, "messages": [{"role": "user", "content": "Hello!"}]}).encode())[0] == 200
START_RSS = status_kb("VmRSS")


def measured(name, body, send, big=False):
    """Runs send() (which checks the answer) with the peak reset; checks and prints the growth."""
    reset_peak()
    before = status_kb("VmRSS")
    send()
    growth = status_kb("VmHWM") - before
    print("      %s: body %.1f MB, peak RSS growth %.1f MB = %.2f x body (bound %.1f MB); resident %.1f MB before, "
          "%.1f MB after" % (name, len(body) / 1e6, growth / 1e6, growth / len(body),
                             (MULT * len(body) + FIXED) / 1e6, before / 1e6, status_kb("VmRSS") / 1e6))
    assert growth <= MULT * len(body) + FIXED, (name, growth, len(body))
    if big:
        assert growth <= MULT * len(body), (name, growth, len(body))
    return growth


def expect_error(path, body, status, param, text):
    def send():
        s, b = request("POST", path, body)
        assert s == status, (s, b[:300])
        e = json.loads(b)["error"]
        assert e["param"] == param and text in e["message"], e
    return send


def repeat(unit, size, head, tail):
    n = (size - len(head) - len(tail)) // len(unit)
    return head + unit * n + tail


# ---- the attacks of issue 13: 32 MiB of tiny values ----------------------------------

def test_tiny_messages():
    body = repeat(b'{"role":"user","content":"x"},', BODY, b'{"messages":[', b'{"role":"user","content":"x"}]}')
    measured("32 MiB of tiny messages", body, expect_error(
        "/v1/chat/completions", body, 400, "messages", "holds more than %d JSON values" % VALUES), big=True)


def test_tiny_messages_tokenize():
    body = repeat(b'{"role":"user","content":"x"},', BODY, b'{"messages":[', b'{"role":"user","content":"x"}]}')
    measured("32 MiB of tiny messages to /tokenize", body, expect_error(
        "/tokenize", body, 400, "messages", "holds more than %d JSON values" % VALUES), big=True)


def test_template_kwargs_array():
    body = repeat(b"0,", BODY, b'{"messages":[{"role":"user","content":"hi"}],"chat_template_kwargs":{"x":[', b"0]}}")
    measured("32 MiB array in chat_template_kwargs", body, expect_error(
        "/v1/chat/completions", body, 400, "chat_template_kwargs",
        "holds an array or object of more than %d members" % MEMBERS), big=True)


def test_template_kwargs_own_limits():
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}],
                       "chat_template_kwargs": {"x": list(range(5000))}}).encode()
    measured("5000 values in chat_template_kwargs", body, expect_error(
        "/v1/chat/completions", body, 400, "chat_template_kwargs",
        "'chat_template_kwargs' holds more than 4096 JSON values"))


def test_deep_nesting():
    body = b'{"messages":[{"role":"user","content":"hi"}],"tools":' + b"[" * 200000 + b"]" * 200000 + b"}"
    measured("nesting 200000 deep", body, expect_error(
        "/v1/chat/completions", body, 400, "tools", "nests JSON deeper than 128 levels"))


def test_tokenize_long_prompt():
    body = repeat(b"a ", BODY, b'{"prompt":"', b'a"}')

    def send():
        s, b = request("POST", "/tokenize", body)
        assert s == 200, (s, b[:300])
        m = re.match(rb'\{"count":(\d+),"max_model_len":(\d+),"tokens":\[', b)
        assert m and int(m.group(2)) == CTX, b[:100]
        n = int(m.group(1))
        assert n > CTX and b.endswith(b'],"token_strs":null}') and b.count(b",") == n + 2, (n, b[-100:])
    measured("/tokenize of a 32 MiB prompt", body, send, big=True)


def test_completions_long_prompt():
    body = repeat(b"a ", BODY, b'{"max_tokens":1,"prompt":"', b'a"}')
    measured("/v1/completions with a 32 MiB prompt", body, expect_error(
        "/v1/completions", body, 400, "prompt", "This model's maximum context length is %d tokens. However, your "
        "request has" % CTX), big=True)


def test_one_long_word():
    body = repeat(b"a", BODY, b'{"max_tokens":1,"prompt":"', b'"}')
    measured("a 32 MiB word", body, expect_error(
        "/v1/completions", body, 400, "prompt", "is too long (at most 1048576)"), big=True)


# ---- bodies at the limits: accepted by the shape checks, so parsed and rendered ----------

def test_parts_at_the_value_limit():
    part = {"type": "text", "text": "x"}
    per = 3 + 3 * 4  # a message with 4 parts: the message, its role, its list, 3 values a part
    n = min(CTX, (VALUES - 10) // per)
    body = json.dumps({"max_tokens": 1, "messages": [{"role": "user", "content": [part] * 4}] * n}).encode()

    def send():
        s, b = request("POST", "/v1/chat/completions", body)
        assert s == 400 and b"maximum context length" in b, (s, b[:300])
    measured("%d messages of 4 parts" % n, body, send)


def test_arguments_at_the_value_limit():
    k = (VALUES - 200) // 4 - 3  # four calls, each {"k0": {}, ...}: the object and k members
    args = json.dumps({"k%d" % i: {} for i in range(k)})
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": args}}]}
    body = json.dumps({"max_tokens": 1, "messages": [{"role": "user", "content": "hi"}] + [call] * 4}).encode()

    def send():
        s, b = request("POST", "/v1/chat/completions", body)
        assert s == 400 and b"maximum context length" in b, (s, b[:300])
    measured("tool-call arguments of %d empty objects" % (4 * k), body, send)


def test_unknown_field_at_the_member_limit():
    body = json.dumps({"max_tokens": 1, "messages": [{"role": "user", "content": "hi"}],
                       "extra": [{}] * (min(MEMBERS, VALUES - 20))}).encode()

    def send():
        s, b = request("POST", "/v1/chat/completions", body)
        assert s == 200, (s, b[:300])
    measured("an unknown field of %d empty objects" % min(MEMBERS, VALUES - 20), body, send)


def test_three_at_once():
    body = repeat(b"a ", BODY, b'{"prompt":"', b'a"}')
    results = []

    def one():
        # a body that finds every parse slot busy for too long gets a 503: the client retries (as the SDKs
        # do), as long as the hang guard lets it
        while True:
            s, _ = request("POST", "/tokenize", body)
            if s != 503:
                break
        results.append(s)

    def send():
        ts = [threading.Thread(target=one) for _ in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert results == [200] * 3, results
    reset_peak()
    before = status_kb("VmRSS")
    send()
    growth = status_kb("VmHWM") - before
    print("      three /tokenize of 32 MiB at once: peak RSS growth %.1f MB = %.2f x one body"
          % (growth / 1e6, growth / len(body)))
    assert growth <= 3 * MULT * len(body), growth


# ---- and the server is fine ----------------------------------------------------------

def test_zz_still_serving():
    s, _ = request("GET", "/health")
    assert s == 200
    s, b = request("POST", "/v1/chat/completions", json.dumps(
        {"max_tokens": 4, "messages": [{"role": "user", "content": "Hello!"}]}).encode())
    assert s == 200 and json.loads(b)["choices"][0]["finish_reason"] in ("length", "stop"), (s, b[:300])
    end = status_kb("VmRSS")
    print("      resident memory: %.1f MB at the start, %.1f MB at the end" % (START_RSS / 1e6, end / 1e6))
    # what stays resident after the attacks: not their bodies. The event loop's threads each keep
    # a malloc arena, and what three bodies parsed at once leave in them varies from run to run
    # (10 to 85 MB seen), so the bound is four 32 MiB bodies rather than two.
    assert end <= START_RSS + 128 * MIB, (START_RSS, end)


if __name__ == "__main__":
    harness.run(dict(globals()), "test_")
