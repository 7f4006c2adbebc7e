#!/usr/bin/env python3
"""Hugging Face `tokenizers`, single-threaded, on the text build/glm-bench-tok
writes (--text-out): the reference figures for tests/bench/bench_tokenizer.c.

Encodes the whole text as one string, then line by line (a Python loop of
encode calls, and encode_batch), and prints MB/s, tokens/s and the same
FNV-1a hash of the ids as the C benchmark, so that equal hashes mean equal ids.

    build/glm-bench-tok --text-out /tmp/bench.txt
    RAYON_NUM_THREADS=1 /work/refenv/venv/bin/python tests/bench/bench_tokenizer.py /tmp/bench.txt \\
        [models/tokenizer-large/tokenizer.json]
"""
import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # must be set before tokenizers starts its pool
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from tokenizers import Tokenizer  # noqa: E402


def fnv_ids(ids, h=0xcbf29ce484222325):
    for i in ids:
        for k in range(4):
            h = ((h ^ ((i >> (8 * k)) & 0xFF)) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def best_of(reps, fn):
    best, out = 1e30, None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main():
    text_path = sys.argv[1]
    tok_path = sys.argv[2] if len(sys.argv) > 2 else "models/tokenizer-large/tokenizer.json"
    raw = open(text_path, "rb").read()
    text = raw.decode("utf-8")
    mb = len(raw) / 1e6
    tok = Tokenizer.from_file(tok_path)
    print(f"tokenizers on {tok_path}, {mb:.2f} MB, RAYON_NUM_THREADS={os.environ['RAYON_NUM_THREADS']}")

    dt, ids = best_of(3, lambda: tok.encode(text, add_special_tokens=False).ids)
    print(f"encode whole text:   {mb / dt:8.2f} MB/s  {len(ids) / dt:10.0f} tokens/s  ({len(ids)} tokens, "
          f"ids fnv {fnv_ids(ids):016x})")

    parts = text.split("\n")  # each line with its newline, as the C benchmark cuts them
    lines = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])

    def loop():
        return [tok.encode(l, add_special_tokens=False).ids for l in lines]
    dt, per = best_of(3, loop)
    n = sum(map(len, per))
    h = 0xcbf29ce484222325
    for x in per:
        h = fnv_ids(x, h)
    print(f"encode line by line: {mb / dt:8.2f} MB/s  {n / dt:10.0f} tokens/s  ({len(lines)} lines, {n} tokens, "
          f"ids fnv {h:016x})")

    dt, enc = best_of(3, lambda: tok.encode_batch(lines, add_special_tokens=False))
    n = sum(len(e.ids) for e in enc)
    print(f"encode_batch lines:  {mb / dt:8.2f} MB/s  {n / dt:10.0f} tokens/s")

    dt, s = best_of(3, lambda: tok.decode(ids, skip_special_tokens=False))
    print(f"decode:              {len(s.encode()) / 1e6 / dt:8.2f} MB/s  {len(ids) / dt:10.0f} tokens/s  "
          f"(round trip {'exact' if s == text else 'DIFFERS'})")


if __name__ == "__main__":
    main()
