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
  - nothing left behind: /metrics shows no running or waiting request and an
    empty KV cache at the end.

Every wait is bounded (a hang guard, not a speed requirement); nothing
measures time.

    python3 tests/integration/test_hostile_net.py http://127.0.0.1:PORT
"""
import json
import resource
import socket
import sys
import time
import urllib.request

from harness import run

BASE = sys.argv[1].rstrip("/")
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


def test_nothing_left():
    wait_for("idle", idle_engine)


if __name__ == "__main__":
    run(globals(), "test_")
