#!/usr/bin/env python3
"""The HTTP front end at gateway scale (a benchmark, not a test): how many SSE
streams a server holds open and what each costs, and how /health answers with
idle sockets attached. Standard library only.

    python3 tests/bench/bench_frontend.py --server-pid PID --port PORT \\
        [--streams 10000] [--idle 5000] [--health 400]

Start the server first, e.g. (models/tiny; the queue long enough to hold every
stream, few running so that most streams wait as a gateway's would):

    ./glm-server serve --model models/tiny --served-model-name tiny --port 8000 \\
        --max-num-seqs 16 --max-queue 20000 --kv-cache-memory 256MiB

Prints, with the machine: the server's resident memory (VmRSS) and threads
before and with every stream open, the memory per open stream, /health's
latency (median, 99th percentile) with no extra connection, with --idle idle
sockets attached, and with the streams open; and /health requests per second
over one keep-alive connection in each case.
"""
import argparse
import asyncio
import json
import os
import platform
import resource
import socket
import statistics
import time


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def rss_kib(pid):
    return int(proc_status(pid)["VmRSS"].split()[0])


def health_latency(port, n):
    """n sequential GET /health over one keep-alive connection: latencies (s)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    lat = []
    buf = b""
    for _ in range(n):
        t0 = time.perf_counter()
        s.sendall(req)
        while True:
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                head = buf[:i].decode()
                length = 0
                for line in head.split("\r\n")[1:]:
                    k, _, v = line.partition(":")
                    if k.lower() == "content-length":
                        length = int(v)
                if len(buf) >= i + 4 + length:
                    buf = buf[i + 4 + length:]
                    break
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("the server closed the connection")
            buf += chunk
        lat.append(time.perf_counter() - t0)
    s.close()
    return lat


def report(name, lat):
    lat = sorted(lat)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print("  /health %-28s median %7.3f ms  p99 %7.3f ms  %7.0f req/s (one connection)"
          % (name, statistics.median(lat) * 1000, p99 * 1000, len(lat) / sum(lat)))


async def open_stream(port, body, opened):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body)
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.split(b"\r\n")[0].decode())
    opened.append((r, w))


async def streams(port, n, body):
    opened = []
    sem = asyncio.Semaphore(256)

    async def one():
        async with sem:
            await open_stream(port, body, opened)

    results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    errors = [e for e in results if isinstance(e, Exception)]
    return opened, errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server-pid", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--streams", type=int, default=10000)
    ap.add_argument("--idle", type=int, default=5000)
    ap.add_argument("--health", type=int, default=400)
    ap.add_argument("--max-tokens", type=int, default=4000, help="of each stream's request")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pid = a.server_pid
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    print("machine: %s, %d CPUs, %s; python %s" % (cpu, os.cpu_count(), platform.platform(),
                                                  platform.python_version()))
    st = proc_status(pid)
    print("server: VmRSS %s, threads %s" % (st["VmRSS"], st["Threads"]))
    report("alone", health_latency(a.port, a.health))

    idle = [socket.create_connection(("127.0.0.1", a.port)) for _ in range(a.idle)]
    time.sleep(0.5)
    st = proc_status(pid)
    print("with %d idle sockets: VmRSS %s, threads %s" % (a.idle, st["VmRSS"], st["Threads"]))
    report("with %d idle sockets" % a.idle, health_latency(a.port, a.health))
    for s in idle:
        s.close()
    time.sleep(0.5)

    body = json.dumps({"model": "tiny", "prompt": "x", "max_tokens": a.max_tokens, "ignore_eos": True,
                       "stream": True}).encode()
    before = rss_kib(pid)
    t0 = time.time()
    opened, errors = asyncio.run(streams(a.port, a.streams, body))
    took = time.time() - t0
    time.sleep(1.0)
    after = rss_kib(pid)
    st = proc_status(pid)
    print("%d SSE streams open (%d refused: %s) in %.1f s: VmRSS %d -> %d KiB, threads %s: %.1f KiB per open "
          "stream" % (len(opened), len(errors), errors[0] if errors else "-", took, before, after, st["Threads"],
                      (after - before) / max(1, len(opened))))
    report("with %d streams open" % len(opened), health_latency(a.port, a.health))
    # the streams close with this process


if __name__ == "__main__":
    main()
