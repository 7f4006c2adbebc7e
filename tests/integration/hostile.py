"""A battery of malformed and hostile requests against a running glm-server
(imported by test_server.py; every case names what it sends and what must
come back).

Application-level cases must get a 4xx with OpenAI's error shape
{"error": {"message", "type", "param", "code"}}. Transport-level cases
(broken HTTP framing, oversized headers, a stalled body) are answered by
libmicrohttpd itself: a 4xx status line without OpenAI's body, or a closed
connection; each case says which it accepts. After the battery the server
must still answer /health and a normal request.
"""
import json
import socket
import time

CHAT, COMPL = "/v1/chat/completions", "/v1/completions"


def send_raw(base, data, timeout=10, read=True):
    """Sends raw bytes; returns (status or None when closed without one, body bytes)."""
    host, port = base.split("//")[1].split(":")
    s = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        got = b""
        while read:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            got += chunk
            head, sep, body = got.partition(b"\r\n\r\n")
            if sep:
                cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if cl and len(body) >= int(cl[0].split(b":")[1]):
                    break
        if not got.startswith(b"HTTP/1."):
            return None, got
        head, _, body = got.partition(b"\r\n\r\n")
        return int(head.split(b" ")[1]), body
    finally:
        s.close()


def request(base, key, method, path, body, ctype="application/json", extra=b""):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    body = body or b""
    head = "%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n" % (method, path, key)
    if ctype:
        head += "Content-Type: %s\r\n" % ctype
    head += "Content-Length: %d\r\n" % len(body)
    return send_raw(base, head.encode() + extra + b"\r\n" + body)


def is_openai_error(status, body, lo=400, hi=499):
    if status is None or not lo <= status <= hi:
        return False
    try:
        e = json.loads(body)["error"]
    except Exception:
        return False
    return set(e) >= {"message", "type", "param", "code"} and e["code"] == status and bool(e["message"])


def json_cases(model):
    """(name, path, body bytes or object, expected status, expected param or None)"""
    M = [{"role": "user", "content": "hi"}]

    def chat(**kw):
        return dict({"model": model, "messages": M, "max_tokens": 2}, **kw)

    def compl(**kw):
        return dict({"model": model, "prompt": "hi", "max_tokens": 2}, **kw)

    cases = [
        ("truncated JSON", CHAT, b'{"model": "' + model.encode() + b'", "messages": [', 400, None),
        ("not JSON at all", CHAT, b"hello there", 400, None),
        ("empty body", CHAT, b"", 400, None),
        ("JSON array body", CHAT, b"[]", 400, None),
        ("JSON string body", CHAT, b'"chat"', 400, None),
        ("JSON null body", CHAT, b"null", 400, None),
        ("trailing garbage", CHAT, json.dumps(chat()).encode() + b" xyz", 400, None),
        ("NaN literal", CHAT, json.dumps(chat()).encode()[:-1] + b', "temperature": NaN}', 400, None),
        ("Infinity literal", CHAT, json.dumps(chat()).encode()[:-1] + b', "temperature": Infinity}', 400, None),
        ("-Infinity literal", CHAT, json.dumps(chat()).encode()[:-1] + b', "top_p": -Infinity}', 400, None),
        ("real overflow 1e400", CHAT, json.dumps(chat()).encode()[:-1] + b', "temperature": 1e400}', 400, None),
        ("integer overflow", CHAT, json.dumps(chat()).encode()[:-1] + b', "max_tokens": 99999999999999999999999}',
         400, None),
        ("huge temperature", CHAT, chat(temperature=1e300), 400, "temperature"),
        ("max_tokens 1e30", CHAT, chat(max_tokens=1e30), 400, "max_tokens"),
        ("negative max_tokens", CHAT, chat(max_tokens=-1), 400, "max_tokens"),
        ("zero max_tokens", COMPL, compl(max_tokens=0), 400, "max_tokens"),
        ("max_tokens as string", CHAT, chat(max_tokens="10"), 400, "max_tokens"),
        ("huge max_tokens", CHAT, chat(max_tokens=2 ** 62), 400, "max_tokens"),
        ("empty messages", CHAT, chat(messages=[]), 400, "messages"),
        ("messages object", CHAT, chat(messages={"role": "user"}), 400, "messages"),
        ("messages of numbers", CHAT, chat(messages=[1, 2]), 400, "messages"),
        ("unknown role", CHAT, chat(messages=[{"role": "wizard", "content": "x"}]), 400, "messages"),
        ("role not a string", CHAT, chat(messages=[{"role": 7, "content": "x"}]), 400, "messages"),
        ("content a number", CHAT, chat(messages=[{"role": "user", "content": 5}]), 400, "messages"),
        ("content part without text", CHAT, chat(messages=[{"role": "user", "content": [{"type": "text"}]}]),
         400, "messages"),
        ("image content part", CHAT, chat(messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]), 400, "messages"),
        ("model a number", CHAT, chat(model=5), 400, "model"),
        ("unknown model", CHAT, chat(model="nope"), 404, "model"),
        ("stream a string", CHAT, chat(stream="yes"), 400, "stream"),
        ("n a string", CHAT, chat(n="2"), 400, "n"),
        ("n huge", CHAT, chat(n=10 ** 9), 400, "n"),
        ("negative temperature", CHAT, chat(temperature=-1), 400, "temperature"),
        ("top_p negative", CHAT, chat(top_p=-0.5), 400, "top_p"),
        ("top_k a string", CHAT, chat(top_k="x"), 400, "top_k"),
        ("min_p above one", CHAT, chat(min_p=2), 400, "min_p"),
        ("stop a number", CHAT, chat(stop=5), 400, "stop"),
        ("stop list of 100", CHAT, chat(stop=["s%d" % i for i in range(100)]), 400, "stop"),
        ("logit_bias a list", CHAT, chat(logit_bias=[1]), 400, "logit_bias"),
        ("logit_bias value a string", CHAT, chat(logit_bias={"5": "x"}), 400, "logit_bias"),
        ("seed a string", CHAT, chat(seed="x"), 400, "seed"),
        ("presence_penalty huge", CHAT, chat(presence_penalty=10), 400, "presence_penalty"),
        ("frequency_penalty a string", CHAT, chat(frequency_penalty="x"), 400, "frequency_penalty"),
        ("repetition_penalty zero", CHAT, chat(repetition_penalty=0), 400, "repetition_penalty"),
        ("logprobs a string", CHAT, chat(logprobs="yes"), 400, "logprobs"),
        ("top_logprobs 100", CHAT, chat(logprobs=True, top_logprobs=100), 400, "top_logprobs"),
        ("include_usage a string", CHAT, chat(stream=True, stream_options={"include_usage": "yes"}), 400,
         "stream_options"),
        ("user an object", CHAT, chat(user={"id": 1}), 400, "user"),
        ("min_tokens negative", CHAT, chat(min_tokens=-3), 400, "min_tokens"),
        ("ignore_eos a number", CHAT, chat(ignore_eos=3), 400, "ignore_eos"),
        ("stop_token_ids a string", CHAT, chat(stop_token_ids="1"), 400, "stop_token_ids"),
        ("tools an object", CHAT, chat(tools={"a": 1}), 400, "tools"),
        ("prompt a number", COMPL, compl(prompt=5), 400, "prompt"),
        ("prompt of floats", COMPL, compl(prompt=[1.5, 2.5]), 400, "prompt"),
        ("prompt id out of vocab", COMPL, compl(prompt=[99999999]), 400, "prompt"),
        ("prompt null", COMPL, compl(prompt=None), 400, "prompt"),
        ("echo a string", COMPL, compl(echo="yes"), 400, "echo"),
        ("deep [ nesting (100k)", CHAT, b"[" * 100000, 400, None),
        ("deep object nesting (100k)", CHAT, b'{"a":' * 100000 + b"1" + b"}" * 100000, 400, None),
        ("deep nesting inside a field", CHAT,
         json.dumps(chat()).encode()[:-1] + b', "extra": ' + b"[" * 50000 + b"]" * 50000 + b"}", 400, None),
        ("invalid UTF-8 in content", CHAT,
         json.dumps(chat()).encode().replace(b'"hi"', b'"h\xff\xfei"'), 400, None),
        ("overlong UTF-8 in content", CHAT, json.dumps(chat()).encode().replace(b'"hi"', b'"\xc0\xaf"'), 400, None),
        ("lone surrogate escape", CHAT, json.dumps(chat()).encode().replace(b'"hi"', b'"\\ud800"'), 400, None),
        ("NUL escape in content", CHAT, json.dumps(chat()).encode().replace(b'"hi"', b'"a\\u0000b"'), 400, None),
        ("prompt too long for the model", COMPL, compl(prompt="word " * 20000), 400, None),
        ("tokenize with bad messages", "/tokenize", {"model": model, "messages": 3}, 400, "messages"),
        ("detokenize huge id", "/detokenize", {"model": model, "tokens": [2 ** 40]}, 400, "tokens"),
    ]
    return cases


def run_battery(base, key, model, big_limit):
    """Runs every case; returns the list of failures (strings). big_limit: the
    server's --max-request-bytes."""
    fails = []
    n = 0

    def expect(name, ok, got):
        nonlocal n
        n += 1
        if not ok:
            fails.append("%s: got %r" % (name, got))

    for name, path, body, code, param in json_cases(model):
        s, b = request(base, key, "POST", path, body)
        ok = s == code and is_openai_error(s, b)
        if ok and param is not None:
            ok = json.loads(b)["error"]["param"] == param
        expect(name, ok, (s, b[:200]))

    # methods and media types
    for name, method, path, code in [("GET on chat", "GET", CHAT, 405), ("GET on completions", "GET", COMPL, 405),
                                     ("PUT on chat", "PUT", CHAT, 405), ("DELETE on models", "DELETE", "/v1/models", 405),
                                     ("unknown method", "BREW", CHAT, 405), ("GET on tokenize", "GET", "/tokenize", 405)]:
        s, b = request(base, key, method, path, b"")
        expect(name, s == code and is_openai_error(s, b), (s, b[:200]))
    ok_body = json.dumps({"model": model, "prompt": "hi", "max_tokens": 1}).encode()
    for ctype in ("text/plain", "multipart/form-data; boundary=x", "application/xml"):
        s, b = request(base, key, "POST", COMPL, ok_body, ctype=ctype)
        expect("content type " + ctype, s == 415 and is_openai_error(s, b), (s, b[:200]))

    # 10 MB bodies: announced (refused before reading) and chunked (read, dropped)
    big = b'{"prompt": "' + b"a" * (10 << 20) + b'"}'
    s, b = request(base, key, "POST", COMPL, big)
    expect("10 MB body", s == 413 and is_openai_error(s, b), (s, b[:200]))
    head = ("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % (COMPL, key)).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (1 << 20, b"a" * (1 << 20)) for _ in range(10)) + b"0\r\n\r\n"
    s, b = send_raw(base, head + chunks, timeout=30)
    expect("10 MB chunked body", s == 413 and is_openai_error(s, b), (s, b[:200]))
    # a Content-Length far beyond the limit with no body: answered at once
    s, b = send_raw(base, ("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json"
                           "\r\nContent-Length: 1000000000000\r\n\r\n" % (COMPL, key)).encode())
    expect("Content-Length 1e12", s == 413 and is_openai_error(s, b), (s, b[:200]))

    # transport level: libmicrohttpd answers (4xx, its own body) or closes
    def transport(name, data, statuses, timeout=10):
        s, b = send_raw(base, data, timeout=timeout)
        expect(name + " (4xx from libmicrohttpd or closed)", s is None or s in statuses, (s, b[:120]))
    transport("huge header (100 KB)", ("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n" % ("a" * 100000)).encode(),
              (400, 413, 414, 431))
    transport("10k headers", b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(10000))
              + b"\r\n", (400, 413, 431))
    transport("huge URL (100 KB)", ("GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % ("a" * 100000)).encode(), (400, 404, 414))
    # libmicrohttpd leaves an unparseable request line to the connection timeout: no answer within 2 s
    transport("garbage request line", b"\x00\x01\x02 GARBAGE\r\n\r\n", (400, 405, 505), timeout=2)
    transport("bad Content-Length", ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}" % COMPL).encode(),
              (400, 413))
    transport("bad chunk size", ("POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nab\r\n"
                                 % COMPL).encode(), (400, 413))
    return n, fails
