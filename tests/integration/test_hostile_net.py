"""The server under a hostile network, against a real server on loopback
(tests/cli/hostile_net.sh starts it with --request-read-timeout 3
--stream-write-timeout 2):

  - 2,000 idle sockets and 500 slow-loris connections (each dripping a header
    byte a second) attached: /health and a chat completion are still answered;
  - the slow-loris connections are shut down by the read deadline, though they
    never stop sending;
  - a streaming request with n=16 whose client never reads is dropped by the
    write timeout and its request aborted: running and waiting back to 0, the
    KV cache back to empty;
  - 1,000 open SSE streams (most of them queued) cost the server one
    descriptor each, and all of them are freed when their clients leave;
  - request headers past --max-header-bytes (8 KiB by default) get a 431 that
    names the limit, larger ones still a 431 or a closed socket, headers under
    it are served;
  - nothing left behind: /metrics shows no running or waiting request and an
    empty KV cache at the end.

Every wait is bounded (a hang guard, not a speed requirement); nothing
measures time.

    python3 tests/integration/test_hostile_net.py http://127.0.0.1:PORT SERVER_PID
"""
import json
import os
import resource
import socket
import sys
import time
import urllib.request

from harness import run

BASE = sys.argv[1].rstrip("/")
SERVER_PID = int(sys.argv[2])
HOST, PORT = BASE.split("//")[1].split(":")
PORT = int(PORT)
HANG = 60


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))


def get(path, timeout=10):
    with urllib.request.urlopen(BASE + path, timeout=timeout) as r:
        return r.status, r.read()


def chat(timeout=30):
    body = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}).encode()
    req = urllib.request.Request(BASE + "/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read())


def metric(name):
    for line in get("/metrics")[1].decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    raise AssertionError("no metric " + name)


def wait_for(what, cond):
    deadline = time.time() + HANG
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("still not %s after %d s" % (what, HANG))


def idle_engine():
    return metric("glm:num_requests_running") == 0 and metric("glm:num_requests_waiting") == 0 and \
        metric("glm:kv_cache_usage_perc") == 0


def closed(s):
    """Whether the server closed s (EOF or reset), without waiting long."""
    s.settimeout(0.2)
    try:
        return s.recv(4096) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def test_idle_sockets_and_slow_loris():
    raise_fd_limit(4096)
    idle, loris = [], []
    try:
        for _ in range(2000):
            idle.append(socket.create_connection((HOST, PORT)))
        for _ in range(500):
            s = socket.create_connection((HOST, PORT))
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            loris.append(s)
        # answered while they are all attached
        for _ in range(5):
            assert get("/health")[0] == 200
        status, out = chat()
        assert status == 200 and out["choices"][0]["message"] is not None, out
        # the slow loris keeps dripping a byte a second; the read deadline (3 s) ends it anyway
        alive = list(loris)
        deadline = time.time() + HANG
        while alive and time.time() < deadline:
            for s in alive:
                try:
                    s.sendall(b"X")
                except OSError:
                    pass
            time.sleep(1)
            alive = [s for s in alive if not closed(s)]
        assert not alive, "%d of 500 slow-loris connections still open after %d s" % (len(alive), HANG)
        assert get("/health")[0] == 200
    finally:
        for s in idle + loris:
            s.close()


def test_stalled_reader_dropped():
    body = json.dumps({"model": "tiny", "prompt": "x", "max_tokens": 3500, "ignore_eos": True,
                       "stream": True, "n": 16}).encode()
    s = socket.create_connection((HOST, PORT))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    try:
        wait_for("running", lambda: metric("glm:num_requests_running") > 0)
        # never read: the write timeout drops the connection and the request is aborted
        wait_for("aborted and freed", idle_engine)
    finally:
        s.close()
    status, _ = chat()
    assert status == 200


def server_fds():
    return len(os.listdir("/proc/%d/fd" % SERVER_PID))


def open_stream(body):
    s = socket.create_connection((HOST, PORT))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return s


def read_head(s):
    s.settimeout(HANG)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, "closed before the response's headers"
        head += chunk
    return head


def test_open_streams_one_descriptor_each():
    raise_fd_limit(4096)
    wait_for("idle", idle_engine)
    before = server_fds()
    body = json.dumps({"model": "tiny", "prompt": "x", "max_tokens": 2000, "ignore_eos": True,
                       "stream": True}).encode()
    streams = []
    try:
        for _ in range(1000):
            streams.append(open_stream(body))
        for s in streams:  # every stream answered 200 (its first bytes leave even while queued)
            assert read_head(s).startswith(b"HTTP/1.1 200"), "a stream was not answered"
        # (a running stream that does not read may already be dropped by the write timeout)
        during = server_fds()
        assert during - before <= 1000 + 16, "%d descriptors for 1000 open streams" % (during - before)
    finally:
        for s in streams:
            s.close()
    wait_for("idle", idle_engine)
    wait_for("the descriptors freed", lambda: server_fds() <= before + 16)


def header_request(path, header_bytes, body=None):
    """A request with one header padded to header_bytes: (status or None if closed, body)."""
    s = socket.create_connection((HOST, PORT))
    try:
        head = b"%s %s HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n" % (b"POST" if body else b"GET", path,
                                                               b"a" * header_bytes)
        if body:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        s.sendall(head + b"\r\n" + (body or b""))
        s.settimeout(HANG)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                h, _, rest = data.partition(b"\r\n\r\n")
                n = [int(l.split(b":")[1]) for l in h.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if n and len(rest) >= n[0]:
                    return int(h.split(b" ")[1]), rest[:n[0]]
        if not data:
            return None, b""
        h, _, rest = data.partition(b"\r\n\r\n")
        return int(h.split(b" ")[1]), rest
    finally:
        s.close()


def test_header_limit():
    body = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}).encode()
    assert header_request(b"/health", 7000)[0] == 200
    assert header_request(b"/v1/chat/completions", 7000, body)[0] == 200
    for path, b in ((b"/health", None), (b"/v1/chat/completions", body)):
        status, out = header_request(path, 9000, b)
        assert status == 431, (status, out[:200])
        assert "--max-header-bytes 8192" in json.loads(out)["error"]["message"], out
        status, out = header_request(path, 100000, b)
        assert status in (431, None), (status, out[:200])
    assert get("/health")[0] == 200


def test_nothing_left():
    wait_for("idle", idle_engine)


if __name__ == "__main__":
    run(globals(), "test_")
