#!/usr/bin/env bash
# The text tools against goldens no one here computed: `glm-server render`
# prints exactly the prompt transformers' apply_chat_template renders from the
# same template (tests/golden/chat_template.json) for every request the chat API
# accepts, and refuses the others as the API does; `tokenize` /
# `detokenize` give Hugging Face tokenizers' ids and text
# (tests/golden/tokenizer/tiny.encode.tsv). Needs python3 (standard library).
set -euo pipefail
cd "$(dirname "$0")/../.."
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
BIN=./glm-server
MODEL=models/tiny

python3 - "$BIN" "$MODEL" <<'PY'
import json, subprocess, sys

bin_, model = sys.argv[1], sys.argv[2]
fails = 0

def run(args, stdin):
    p = subprocess.run([bin_] + args, input=stdin, capture_output=True, timeout=30)
    return p.returncode, p.stdout, p.stderr

# render: every golden conversation the chat API accepts renders as transformers
# does; the others (inputs apply_chat_template takes but the API refuses, as
# OpenAI does) are refused with the API's message. test_jinja checks the
# template itself on all of them.
REFUSED = {"content_parts": "only parts of type 'text'", "content_parts_strings": "only parts of type 'text'",
           "tools_empty_list": "'tools' must not be empty", "tools_flat_spec": "tools[0].function must be an object",
           "tool_call_unwrapped": "tools[0].function must be an object",
           "tool_content_list_outputs": "only parts of type 'text'",
           "tool_content_list_strings": "only parts of type 'text'"}
# the API renders OpenAI's `developer` role as `system` (the template alone drops it)
AS_SYSTEM = {"unknown_role"}
g = json.load(open("tests/golden/chat_template.json"))
for case in g["chat"]:
    req = {"messages": case["messages"], "add_generation_prompt": case["add_generation_prompt"],
           "chat_template_kwargs": case.get("kwargs") or {}}
    if case.get("tools") is not None:
        req["tools"] = case["tools"]
    rc, out, err = run(["render", "--model", model], json.dumps(req).encode())
    if case["name"] in AS_SYSTEM:
        sys_req = dict(req, messages=[dict(m, role="system") if m["role"] == "developer" else m
                                      for m in req["messages"]])
        rc2, out2, _ = run(["render", "--model", model], json.dumps(sys_req).encode())
        if rc != 0 or out != out2 or b"<|system|>" not in out:
            fails += 1
            print(f"FAIL render {case['name']}: developer is not system: rc {rc}, {out!r} vs {out2!r}")
        continue
    if case["name"] in REFUSED:
        if rc != 1 or out or REFUSED[case["name"]] not in err.decode():
            fails += 1
            print(f"FAIL render {case['name']}: not refused: rc {rc}, stderr {err.decode()!r}")
        continue
    want = case["prompt"].encode()
    if rc != 0 or out != want:
        fails += 1
        print(f"FAIL render {case['name']}: rc {rc}, stderr {err.decode()!r}\n  want {want!r}\n  got  {out!r}")

# the API's thinking switches reach the template as enable_thinking; an
# explicit off wins over an implied on (an effort, a budget)
msgs = [{"role": "user", "content": "Hi"}]
for extra, opened in [({}, True), ({"reasoning": False}, False), ({"reasoning": True}, True),
                      ({"thinking": {"type": "disabled"}}, False), ({"reasoning_effort": "none"}, False),
                      ({"chat_template_kwargs": {"enable_thinking": False}}, False),
                      ({"reasoning": {"effort": "high"}, "chat_template_kwargs": {"enable_thinking": False}}, False),
                      ({"reasoning": {"max_tokens": 10}, "thinking": {"type": "disabled"}}, False),
                      ({"reasoning": {"exclude": True}}, True), ({"reasoning": {}}, True),
                      ({"reasoning_effort": "low", "thinking": {"type": "enabled"}}, True)]:
    rc, out, err = run(["render", "--model", model], json.dumps(dict(messages=msgs, **extra)).encode())
    want = b"<|assistant|><think>" if opened else b"<|assistant|></think>"
    if rc != 0 or not out.endswith(want):
        fails += 1
        print(f"FAIL render {extra}: {out!r} {err!r}")

# bad requests: one clear line, exit 1
M = '{"messages": [{"role": "user", "content": "x"}], '
for bad in [b"not json", b"[]", b'{"messages": []}', (M + '"thinking": 3}').encode(),
            # contradictory switches name both fields
            (M + '"reasoning": true, "chat_template_kwargs": {"enable_thinking": false}}').encode(),
            (M + '"thinking": {"type": "enabled"}, "reasoning_effort": "none"}').encode(),
            (M + '"reasoning": {"effort": "low"}, "reasoning_effort": "high"}').encode(),
            (M + '"reasoning": {"max_tokens": 5}, "thinking_token_budget": 6}').encode()]:
    rc, out, err = run(["render", "--model", model], bad)
    if rc != 1 or err.count(b"\n") != 1:
        fails += 1
        print(f"FAIL render bad {bad!r}: rc {rc}, stderr {err!r}")

# tokenize / detokenize: the first 300 golden strings
def unescape(s):
    return s.encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1").decode("utf-8")

n = 0
for line in open("tests/golden/tokenizer/tiny.encode.tsv", encoding="utf-8"):
    if line.startswith("#"):
        continue
    parts = line.rstrip("\n").split("\t")
    text, ids = parts[0], parts[1]
    try:
        raw = unescape(text)
    except Exception:
        continue
    if ids == "-" or "\x00" in raw:
        continue
    want = ids.replace(" ", ",")
    rc, out, err = run(["tokenize", "--model", model], raw.encode())
    if rc != 0 or out.decode().strip() != want:
        fails += 1
        print(f"FAIL tokenize {text!r}: want {want} got {out!r} {err!r}")
        continue
    rc, out, err = run(["detokenize", "--model", model], want.encode())
    if rc != 0 or out != raw.encode():
        fails += 1
        print(f"FAIL detokenize {want}: want {raw!r} got {out!r} {err!r}")
    n += 1
    if n == 300:
        break
if n < 100:
    fails += 1
    print(f"FAIL: only {n} tokenizer goldens checked")

# detokenize: ids separated by commas and/or whitespace, as its usage says
rc, ref, err = run(["detokenize", "--model", model], b"39,2066,78")
for sep in [b"39 2066 78", b"39\n2066\n78\n", b" 39,\t2066 ,78 ", b"39, 2066\r\n78"]:
    rc, out, err = run(["detokenize", "--model", model], sep)
    if rc != 0 or out != ref:
        fails += 1
        print(f"FAIL detokenize {sep!r}: want {ref!r} got rc {rc} {out!r} {err!r}")
for bad in [b"39,,78", b"39 2066,", b"39 -5", b"39 x"]:
    rc, out, err = run(["detokenize", "--model", model], bad)
    if rc != 2 or b"invalid token id list" not in err:
        fails += 1
        print(f"FAIL detokenize {bad!r}: want a refusal, got rc {rc} {out!r} {err!r}")
print(f"text.sh: {len(g['chat'])} prompts, {n} token round trips, {fails} failures")
sys.exit(1 if fails else 0)
PY
