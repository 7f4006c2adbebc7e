#!/usr/bin/env python3
"""bench_server.py - HTTP-level benchmark of a running `glm-server serve` (a
program, not a test; standard library only: http.client + threads).

  1. requests/s: C client threads, each on its own keep-alive connection, send
     non-streaming chat requests with max_tokens 1 for D seconds; prints the
     rate and the latency percentiles.
  2. the server's added latency per streamed token: S streamed completions
     (ignore_eos, T tokens each) one at a time; the client's time between SSE
     token events is compared with the engine's own inter-token time for the
     same requests, read from /metrics as
     d(request_decode_time_seconds_sum) / (d(generation_tokens_total) - d(requests)),
     i.e. the engine's first-token-to-finish time per later token. The
     difference is what the HTTP layer (event wakeup, JSON chunk, socket write)
     and the client add per token. Also compares client and engine TTFT.

Usage: tests/bench/bench_server.py [--url http://127.0.0.1:8000] [--model tiny]
           [--concurrency 8] [--seconds 10] [--streams 20] [--tokens 200] [--api-key KEY]
Start the server first, e.g. `make run` (serves models/tiny as "tiny").
"""
import argparse
import http.client
import json
import re
import threading
import time
import urllib.parse


def conn_for(url):
    u = urllib.parse.urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=120)


def headers(key):
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = "Bearer " + key
    return h


def scrape(url):
    c = conn_for(url)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = re.match(r"([^{ ]+)(\{[^}]*\})? (\S+)$", line)
        if m and "_bucket" not in m.group(1) and "finished_reason" not in (m.group(2) or ""):
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
    return out


def rps(args):
    body = json.dumps({"model": args.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1})
    stop = time.time() + args.seconds
    lat, errors, lock = [], [0], threading.Lock()

    def worker():
        c = conn_for(args.url)
        mine = []
        while time.time() < stop:
            t0 = time.perf_counter()
            try:
                c.request("POST", "/v1/chat/completions", body, headers(args.api_key))
                r = c.getresponse()
                r.read()
                ok = r.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                c.close()
                c = conn_for(args.url)
            if ok:
                mine.append(time.perf_counter() - t0)
            else:
                with lock:
                    errors[0] += 1
        c.close()
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")
    print("max_tokens=1 chat, concurrency %d, %.1f s: %d requests, %.1f requests/s, %d errors; "
          "latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms"
          % (args.concurrency, wall, len(lat), len(lat) / wall, errors[0], pct(0.5), pct(0.9), pct(0.99)))


def stream_one(args):
    """One streamed completion: (ttft, per-token mean gap, gaps between
    one-token events). logprobs=0 makes every event list its tokens, so an
    event that carries two tokens (a character split across them) counts as two."""
    body = json.dumps({"model": args.model, "prompt": "Once upon a time", "max_tokens": args.tokens,
                       "ignore_eos": True, "stream": True, "logprobs": 0})
    c = conn_for(args.url)
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body, headers(args.api_key))
    r = c.getresponse()
    assert r.status == 200, r.status
    events, buf = [], b""  # (time, tokens)
    while True:
        chunk = r.read1(65536)
        if not chunk:
            break
        now = time.perf_counter()
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            if not ev.startswith(b"data: {"):
                continue
            ch = json.loads(ev[6:])["choices"]
            lp = ch[0].get("logprobs") if ch else None
            n = len(lp["tokens"]) if lp and lp.get("tokens") else 0
            if n:
                events.append((now, n))
    c.close()
    total = sum(n for _, n in events)
    per_token = (events[-1][0] - events[0][0]) / max(1, total - events[0][1])
    gaps = [b[0] - a[0] for a, b in zip(events, events[1:]) if b[1] == 1]
    return events[0][0] - t0, per_token, gaps


def itl(args):
    stream_one(args)  # warm up
    m0 = scrape(args.url)
    ttfts, per_token, gaps = [], [], []
    for _ in range(args.streams):
        t, p, g = stream_one(args)
        ttfts.append(t)
        per_token.append(p)
        gaps.extend(g)
    m1 = scrape(args.url)
    d = lambda k: m1.get("glm:" + k, 0.0) - m0.get("glm:" + k, 0.0)
    reqs = d("request_decode_time_seconds_count")
    engine_itl = d("request_decode_time_seconds_sum") / max(1.0, d("generation_tokens_total") - reqs)
    engine_ttft = d("time_to_first_token_seconds_sum") / max(1.0, d("time_to_first_token_seconds_count"))
    server_itl = d("inter_token_latency_seconds_sum") / max(1.0, d("inter_token_latency_seconds_count"))
    client_itl = sum(per_token) / len(per_token)
    client_ttft = sum(ttfts) / max(1, len(ttfts))
    gaps.sort()
    print("streamed completions: %d x %d tokens, one at a time" % (args.streams, args.tokens))
    print("  mean inter-token time: client %.1f us, engine %.1f us, HTTP thread (glm:inter_token_latency) %.1f us"
          % (client_itl * 1e6, engine_itl * 1e6, server_itl * 1e6))
    print("  added to the mean gap by server + client: %.1f us (client one-token gaps p50 %.1f us, p99 %.1f us)"
          % ((client_itl - engine_itl) * 1e6, gaps[len(gaps) // 2] * 1e6, gaps[int(0.99 * len(gaps))] * 1e6))
    print("  mean TTFT: client %.2f ms, engine %.2f ms, added %.2f ms"
          % (client_ttft * 1e3, engine_ttft * 1e3, (client_ttft - engine_ttft) * 1e3))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--streams", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=200)
    args = ap.parse_args()
    rps(args)
    itl(args)


if __name__ == "__main__":
    main()
