#!/usr/bin/env bash
# tests/cli/script_model.sh BUILD_DIR - the scripted test model (models/script,
# glm-mkmodel --preset script, see tests/models/mkscript.c) end to end.
# Proves: the generator is deterministic (a second run is byte-identical) and
# refuses broken chain files; `glm-server generate` follows the default chain
# of each anchor exactly (<think>: reasoning, </think>, then the answer), and
# an unscripted last token gives <|endoftext|>; the logits are 200 + prior
# on the chain, 150 + prior for the entries, and the prior ranks eos tokens,
# closing tags and closing JSON punctuation first, then longer tokens; through
# `glm-server serve` (curl), logit_bias on an entry id selects every chain,
# and chat requests turn the chains into reasoning, content, stop-string cuts
# and typed tool calls, streamed and not.
# The chat API's own behaviour on these chains (tags with skip_special_tokens,
# tool_choice, response_format, budgets) is tested by script_server.sh.
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
. tests/cli/lib/serve.bash

MODEL=models/script
for f in ./glm-server "$BUILD/glm-mkmodel" "$MODEL/config.json" "$MODEL/script.json"; do
    [ -e "$f" ] || { echo "script_model.sh: missing $f (run make and make models; BUILD=$BUILD)" >&2; exit 1; }
done

TMP=$(mktemp -d)
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

# --- the generator: deterministic, and clear about bad chain files ------------
"$BUILD/glm-mkmodel" --preset script --script tests/models/script/chains.json \
    --tokenizer tests/models/tiny --out "$TMP/again" >/dev/null
for f in config.json generation_config.json model.safetensors tokenizer.json script.json; do
    cmp -s "$TMP/again/$f" "$MODEL/$f" || { echo "script_model.sh: a second run wrote another $f" >&2; exit 1; }
done

bad() { # chains JSON, expected message fragment
    echo "$1" >"$TMP/bad.json"
    local out
    if out=$("$BUILD/glm-mkmodel" --preset script --script "$TMP/bad.json" --tokenizer tests/models/tiny \
        --out "$TMP/bad" 2>&1); then
        echo "script_model.sh: accepted $1" >&2
        exit 1
    fi
    echo "$out" | grep -qF "$2" || { echo "script_model.sh: for $1: $out" >&2; exit 1; }
}
bad '{"chains": [{"name": "a", "anchor": "<think>", "default": true, "tokens": ["x", "y"]}]}' \
    'neither an eos token'
bad '{"chains": [{"name": "a", "anchor": "<think>", "tokens": ["x", "<|user|>"]}]}' \
    'has 0 default chains'
bad '{"chains": [{"name": "a", "anchor": "<think>", "default": true, "tokens": ["x", "<think>"]}]}' \
    'its continuations loop'
bad '{"chains": [{"name": "a", "anchor": "no such token", "default": true, "tokens": ["x", "<|user|>"]}]}' \
    'is not one token'

# --- greedy decoding with glm-server generate ---------------------------------
prompt_ids() { # prompt text -> comma-separated ids
    printf '%s' "$1" | ./glm-server tokenize --model "$MODEL"
}
expect_ids() { # name, prompt ids, expected ids
    local got
    got=$(timeout "$HANG" ./glm-server generate --model "$MODEL" --prompt-ids "$2" --max-tokens 400 \
        --logits "$TMP/$1.logits")
    [ "$got" = "$3" ] || { echo "script_model.sh: generate $1: got $got, want $3" >&2; exit 1; }
}
chain_ids() { # chain names... -> their ids joined with commas
    python3 - "$MODEL/script.json" "$@" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["chains"]
print(",".join(str(i) for n in sys.argv[2:] for i in d[n]["ids"]))
PY
}
HEAD='[gMASK]<sop><|user|>What is the capital of France?<|assistant|>'
expect_ids think "$(prompt_ids "$HEAD<think>")" "$(chain_ids think_default answer_default)"
expect_ids nothink "$(prompt_ids "$HEAD</think>")" "$(chain_ids answer_default)"
expect_ids other "$(prompt_ids "$HEAD hello")" 4036

# logits: chain 200 + prior, entries 150 + prior, and the prior's order
python3 - "$MODEL" "$TMP" <<'PY'
import array, json, sys
model, tmp = sys.argv[1], sys.argv[2]
s = json.load(open(model + "/script.json"))
V = s["vocab_size"]
tok = json.load(open(model + "/tokenizer.json"))
vocab = tok["model"]["vocab"]
specials = {a["content"]: a["id"] for a in tok["added_tokens"]}
# byte-level spelling -> bytes (GPT-2's bytes_to_unicode, inverted)
bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
byte_of = {chr(c): b for b, c in zip(bs, cs)}
nbytes = {i: len(sp) if sp in specials else len(bytes(byte_of[ch] for ch in sp)) for sp, i in vocab.items()}
tier = {specials.get(t["text"], vocab.get(t["text"])): t["prior"] for t in s["prior_tiers"]}

def prior(i):
    if i in tier:
        return tier[i]
    return s["prior_per_byte"] * min(nbytes[i], s["prior_max_bytes"]) if i in nbytes else 0.0

def row(name, r=0):
    a = array.array("f")
    a.frombytes(open(f"{tmp}/{name}.logits", "rb").read())
    assert len(a) % V == 0
    return a[r * V:(r + 1) * V]

def close(x, want, what):
    assert abs(x - want) < 1e-3, f"{what}: logit {x}, want {want}"

# after </think>: the default answer at 200, the entries at 150
r = row("nothink")
for name in s["anchors"]["</think>"]["entries"] + [s["anchors"]["</think>"]["default"]]:
    c = s["chains"][name]
    close(r[c["entry_id"]], (200 if c["default"] else 150) + prior(c["entry_id"]), name)
# every step of the default chains: the scripted token at 200 + prior, the rest below
# 20 (below 170 after an anchor, where the entries are)
ch = s["chains"]["think_default"]["ids"] + s["chains"]["answer_default"]["ids"]
anchor_ids = {a["id"] for a in s["anchors"].values()}
for k, want in enumerate(ch):
    r = row("think", k)
    close(r[want], 200 + prior(want), f"think step {k}")
    after_anchor = k == 0 or ch[k - 1] in anchor_ids
    assert sorted(r)[-2] < (170 if after_anchor else 20), f"think step {k}: runner-up {sorted(r)[-2]}"
# after an unscripted token: <|endoftext|>, then the prior's order
r = row("other")
close(r[specials["<|endoftext|>"]], 200 + 19, "<|endoftext|>")
for i in range(V):
    if i != specials["<|endoftext|>"]:
        close(r[i], prior(i), f"prior of id {i}")
assert len(tier) == len(s["prior_tiers"]) and None not in tier
assert max(r[i] for i in range(V) if i not in tier) <= 12.0 + 1e-3, "an ordinary token beats the tiers"
PY

# --- the server ---------------------------------------------------------------
PORT=$(free_port)
./glm-server serve --model "$MODEL" --served-model-name script --port "$PORT" --threads 2 \
    --kv-cache-memory 64MiB >"$TMP/log" 2>&1 &
PID=$!
wait_ready script_model.sh "$PID" "http://127.0.0.1:$PORT/health" "$TMP/log"
rc=0
timeout -k 5 $((HANG * 10)) python3 - "$MODEL/script.json" "http://127.0.0.1:$PORT" <<'PY' || rc=$?
import json, subprocess, sys
s = json.load(open(sys.argv[1]))
url = sys.argv[2]
chains = s["chains"]
eos_texts = ["<|endoftext|>", "<|user|>", "<|observation|>"]

def post(path, body):
    out = subprocess.run(["curl", "-sS", "--max-time", "60", "-H", "Content-Type: application/json",
                          url + path, "-d", json.dumps(body)], capture_output=True, text=True, check=True)
    if body.get("stream"):
        return [json.loads(l[6:]) for l in out.stdout.splitlines()
                if l.startswith("data: ") and l != "data: [DONE]"]
    r = json.loads(out.stdout)
    assert "error" not in r, f"{path} {body}: {r}"
    return r

def bias(name):
    c = chains[name]
    return {} if c["default"] else {"logit_bias": {str(c["entry_id"]): 100}}

def full(name):
    """The chain's text and ids with what follows an anchor at its end."""
    c = chains[name]
    text, ids = c["text"], list(c["ids"])
    if c["continues"]:
        t2, i2 = full(c["continues"])
        text, ids = text + t2, ids + i2
    return text, ids

def strip_eos(t):
    for e in eos_texts:
        if t.endswith(e):
            return t[: -len(e)]
    return t

def same(got, want, what):
    assert got == want, f"{what}:\n  got  {got!r}\n  want {want!r}"

HEAD = "[gMASK]<sop><|user|>What is the capital of France?<|assistant|>"
# every chain, raw, through the completions API
for name, c in chains.items():
    text, ids = full(name)
    r = post("/v1/completions", {"model": "script", "prompt": HEAD + c["anchor"], "max_tokens": 400,
                                 "temperature": 0, "skip_special_tokens": False, **bias(name)})
    ch = r["choices"][0]
    same(strip_eos(ch["text"]), strip_eos(text), f"completion {name}")
    same(ch["finish_reason"], "stop", f"finish_reason {name}")
    same(r["usage"]["completion_tokens"], len(ids), f"completion_tokens {name}")

USER = [{"role": "user", "content": "What is the weather like?"}]
OFF = {"chat_template_kwargs": {"enable_thinking": False}}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "days": {"type": "integer"}}}}},
    {"type": "function", "function": {"name": "set_options", "parameters": {"type": "object", "properties": {
        "ratio": {"type": "number"}, "enabled": {"type": "boolean"}, "items": {"type": "array"},
        "meta": {"type": "object"}, "extra": {"type": "null"}, "label": {"type": "string"}}}}},
]

def chat(name, **kw):
    body = {"model": "script", "messages": USER, "temperature": 0, "max_tokens": 400, **bias(name), **kw}
    r = post("/v1/chat/completions", body)
    return r["choices"][0]

def calls(msg):
    return [(t["function"]["name"], json.loads(t["function"]["arguments"])) for t in msg.get("tool_calls") or []]

# thinking on, the default chains: reasoning, then the answer
ch = chat("think_default", skip_special_tokens=False)
same(ch["message"]["reasoning_content"], chains["think_default"]["text"][: -len("</think>")], "reasoning")
same(strip_eos(ch["message"]["content"]), strip_eos(chains["answer_default"]["text"]), "answer")
# a stop string inside the answer
ch = chat("answer_default", stop=["capital"], **OFF)
same(ch["message"]["content"], "Paris is the", "stop 'capital'")
# JSON content, thinking off and on
ch = chat("json_answer", **OFF)
same(ch["message"]["content"], strip_eos(chains["json_answer"]["text"]), "json_answer")
same(json.loads(ch["message"]["content"]), {"city": "Paris", "temperature": 21.5, "sunny": True,
                                            "tags": ["warm", "dry"]}, "json_answer parsed")
ch = chat("json_think")
same(ch["message"]["reasoning_content"], "Reply with JSON only.", "json_think reasoning")
same(json.loads(ch["message"]["content"]), {"city": "Tokyo", "temperature": 18, "sunny": False,
                                            "tags": ["cool"]}, "json_think content")
# '<' in content, and a stop string across two tokens (" END" + " here")
ch = chat("content_with_tags", **OFF)
same(ch["message"]["content"], "Final answer: <b>42</b> END here", "content_with_tags")
ch = chat("content_with_tags", stop=["D he"], **OFF)
same(ch["message"]["content"], "Final answer: <b>42</b> EN", "stop across tokens")
same(ch["finish_reason"], "stop", "stop finish_reason")
# tool calls: thinking off (tags in pieces), one call with special tags, two calls
ch = chat("tool_nothink", tools=TOOLS, **OFF)
same(calls(ch["message"]), [("get_weather", {"city": "Berlin", "days": 1})], "tool_nothink")
same(ch["finish_reason"], "tool_calls", "tool_nothink finish_reason")
ch = chat("tool_weather", tools=TOOLS, skip_special_tokens=False)
same(ch["message"]["reasoning_content"], "Checking the weather tool first.", "tool_weather reasoning")
same(calls(ch["message"]), [("get_weather", {"city": "Paris", "days": 3})], "tool_weather")
PARALLEL = [("get_weather", {"city": "Tokyo", "days": 2}),
            ("set_options", {"ratio": 1.5, "enabled": True, "items": ["a", 1], "meta": {"k": "v"},
                             "extra": None, "label": "hello world"})]
ch = chat("tool_parallel", tools=TOOLS)
same(ch["message"]["reasoning_content"], "Two calls are needed.", "tool_parallel reasoning")
same(calls(ch["message"]), PARALLEL, "tool_parallel")
same(ch["finish_reason"], "tool_calls", "tool_parallel finish_reason")

# streamed: the deltas add up to the same message
ev = post("/v1/chat/completions", {"model": "script", "messages": USER, "temperature": 0, "stream": True,
                                   "tools": TOOLS, **bias("tool_parallel")})
reasoning, args, names = "", {}, {}
for e in ev:
    for c in e.get("choices", []):
        d = c["delta"]
        reasoning += d.get("reasoning_content") or ""
        for t in d.get("tool_calls") or []:
            if t.get("function", {}).get("name"):
                names[t["index"]] = t["function"]["name"]
            args[t["index"]] = args.get(t["index"], "") + (t.get("function", {}).get("arguments") or "")
same(reasoning, "Two calls are needed.", "streamed reasoning")
same([(names[i], json.loads(args[i])) for i in sorted(args)], PARALLEL, "streamed tool calls")
ev = post("/v1/chat/completions", {"model": "script", "messages": USER, "temperature": 0, "stream": True,
                                   "stop": ["D he"], **OFF, **bias("content_with_tags")})
same("".join(c["delta"].get("content") or "" for e in ev for c in e.get("choices", [])),
     "Final answer: <b>42</b> EN", "streamed content with a stop string")
print("script_model.sh: server checks ok")
PY
if [ "$rc" -ne 0 ]; then
    echo "--- server log (last 20 lines)"
    tail -20 "$TMP/log"
    exit "$rc"
fi
echo "script_model.sh: ok"
