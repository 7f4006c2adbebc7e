#!/usr/bin/env bash
# tests/cli/backend_flags.sh BUILD_DIR - choosing the backend: --device,
# --dtype and --enforce-eager on `glm-server generate` and `serve` (and in a
# --config file).
# Proves: --device cpu decodes the golden ids and says so in one start-up line;
# --device auto names the backend it chose and why; --device cuda where the
# CUDA backend is not usable (a binary without it, or no device: this is what
# --device auto found) exits 1 before anything is loaded, with one stderr line
# naming the reason, no crash; bad --device and --dtype values (vLLM has no
# "bf16" or "fp32"; float16 is refused) exit 2 naming the flag, before the
# checkpoint is read; --dtype float32 / float / bfloat16 on the CPU give the
# golden float32 ids (bfloat16 with a one-line notice); --enforce-eager is
# accepted; serve takes the same flags and config keys. Needs ./glm-server and
# models/tiny. Waits poll with a hang guard (lib/serve.bash).
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
. tests/cli/lib/serve.bash

BIN=./glm-server
GOLDEN=tests/golden/tiny
LIMIT=60 # seconds for any single run; a tiny model takes well under one
for f in "$BIN" models/tiny/config.json "$GOLDEN/prompt.txt" "$GOLDEN/f32.greedy.txt"; do
    [ -e "$f" ] || { echo "backend_flags.sh: missing $f (run make and make models; BUILD=$BUILD)" >&2; exit 1; }
done

TMP=$(mktemp -d)
SPID=
cleanup() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
PROMPT=$(cat "$GOLDEN/prompt.txt")
WANT=$(cat "$GOLDEN/f32.greedy.txt")
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# run NAME ARGS...: the binary with a time limit; sets RC, OUT, ERR.
run() {
    local name=$1
    shift
    RC=0
    timeout -k 5 "$LIMIT" "$BIN" "$@" >"$TMP/out" 2>"$TMP/err" || RC=$?
    OUT=$(cat "$TMP/out")
    ERR=$(cat "$TMP/err")
    if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
        fail "$name: timed out after ${LIMIT}s: $BIN $*"
    elif [ "$RC" -gt 128 ]; then
        fail "$name: killed by signal $((RC - 128)) (a crash): $BIN $*
  stderr: ${ERR:0:600}"
    fi
}
expect_rc() { # NAME WANT
    [ "$RC" -eq "$2" ] && return 0
    fail "$1: expected exit status $2, got $RC
  stdout: ${OUT:0:300}
  stderr: ${ERR:0:600}"
    return 1
}
has() { # NAME TEXT: ERR contains TEXT
    grep -qF -- "$2" <<<"$ERR" || fail "$1: expected stderr to contain '$2', got: $ERR"
}
gen() { # NAME [flags]: the golden command line; expects the golden ids
    local name=$1
    shift
    run "$name" generate --model models/tiny --prompt-ids "$PROMPT" --max-tokens 32 --ignore-eos "$@"
    expect_rc "$name" 0 || return 1
    [ "$OUT" = "$WANT" ] || fail "$name: generated ids differ from $GOLDEN/f32.greedy.txt
  expected: $WANT
  got:      $OUT"
}

# --- --device cpu: the golden ids, one start-up line ------------------------------
gen "--device cpu" --device cpu &&
    { [ "$ERR" = "glm-server: backend cpu (float32): --device cpu" ] ||
        fail "--device cpu: expected exactly the line 'glm-server: backend cpu (float32): --device cpu', got: $ERR"; }

# --- --device auto (the default): names the backend and why ------------------------
run "--device auto" generate --model models/tiny --prompt-ids 1,2 --max-tokens 1
expect_rc "--device auto" 0 || true
CUDA_USABLE=0
if grep -q '^glm-server: backend cuda (device 0' <<<"$ERR"; then
    CUDA_USABLE=1
elif ! grep -Eq '^glm-server: backend cpu \(float32\): --device auto and (this glm-server was built without the CUDA backend|no CUDA device: .+)$' <<<"$ERR"; then
    fail "--device auto: expected one line naming the backend and why, got: $ERR"
fi
[ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "--device auto: expected one stderr line, got: $ERR"

# --- --device cuda without a usable CUDA backend: exit 1, the reason -----------------
if [ "$CUDA_USABLE" = 1 ]; then
    run "--device cuda" generate --model models/tiny --prompt-ids 1,2 --max-tokens 1 --device cuda
    expect_rc "--device cuda (CUDA usable)" 0 || true
else
    for cmd in generate serve; do
        extra=()
        [ "$cmd" = generate ] && extra=(--prompt-ids "1,2")
        # a missing checkpoint: the device check comes first
        run "$cmd --device cuda" "$cmd" --model "$TMP/no-such-dir" "${extra[@]}" --device cuda
        expect_rc "$cmd --device cuda" 1 || continue
        grep -Eq '^glm-server: --device cuda: (this glm-server was built without the CUDA backend|no CUDA device: .+)$' \
            <<<"$ERR" || fail "$cmd --device cuda: expected the reason the CUDA backend is not usable, got: $ERR"
        [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "$cmd --device cuda: expected one stderr line, got: $ERR"
        [ -z "$OUT" ] || fail "$cmd --device cuda: expected empty stdout, got: $OUT"
    done
fi

# --- bad values: exit 2 naming the flag, before the checkpoint is read ---------------
for cmd in generate serve; do
    extra=()
    [ "$cmd" = generate ] && extra=(--prompt-ids "1,2")
    for v in bf16 fp32 BFLOAT16 float64 fp8 ""; do
        run "$cmd --dtype '$v'" "$cmd" --model "$TMP/no-such-dir" "${extra[@]}" --dtype "$v"
        expect_rc "$cmd --dtype '$v'" 2 || continue
        has "$cmd --dtype '$v'" "--dtype must be auto, bfloat16 or float32 (or float), got \"$v\""
        [ -z "$OUT" ] || fail "$cmd --dtype '$v': expected empty stdout, got: $OUT"
    done
    for v in float16 half; do
        run "$cmd --dtype $v" "$cmd" --model "$TMP/no-such-dir" "${extra[@]}" --dtype $v
        expect_rc "$cmd --dtype $v" 2 && has "$cmd --dtype $v" "--dtype $v is not supported"
    done
    for v in gpu CUDA tpu ""; do
        run "$cmd --device '$v'" "$cmd" --model "$TMP/no-such-dir" "${extra[@]}" --device "$v"
        expect_rc "$cmd --device '$v'" 2 && has "$cmd --device '$v'" "--device must be auto, cuda or cpu, got \"$v\""
    done
done

# --- dtypes on the CPU: float32 whatever is asked ---------------------------------
gen "--dtype float32" --device cpu --dtype float32 && has "--dtype float32" "backend cpu (float32)"
gen "--dtype float" --device cpu --dtype float
gen "--dtype bfloat16 on cpu" --device cpu --dtype bfloat16 &&
    has "--dtype bfloat16 on cpu" "glm-server: --dtype bfloat16: the CPU backend computes in float32"
gen "--dtype auto --enforce-eager" --device cpu --dtype auto --enforce-eager
gen "--enforce-eager --no-enforce-eager" --device cpu --enforce-eager --no-enforce-eager

# --- help texts ---------------------------------------------------------------------
for cmd in generate serve; do
    run "$cmd --help" "$cmd" --help
    expect_rc "$cmd --help" 0 || continue
    for flag in "--device auto|cuda|cpu" "--dtype auto|bfloat16|float32" "enforce-eager" CUDA_VISIBLE_DEVICES; do
        grep -qF -- "$flag" <<<"$OUT" || fail "$cmd --help: expected '$flag' on stdout"
    done
done

# --- serve: the flags, and the same keys in a --config file --------------------------
PORT=$(free_port)
CFG=$TMP/cfg.json
cat >"$CFG" <<JSON
{"model": "models/tiny", "served_model_name": "tiny", "port": $PORT, "threads": 2,
 "kv_cache_memory": "16MiB", "device": "cuda", "dtype": "bfloat16", "enforce_eager": true}
JSON
# the command line wins over the file's "device": "cuda"
"$BIN" serve --config "$CFG" --device cpu >"$TMP/serve.log" 2>&1 &
SPID=$!
wait_ready backend_flags.sh "$SPID" "http://127.0.0.1:$PORT/health" "$TMP/serve.log"
grep -qxF "glm-server: backend cpu (float32): --device cpu" "$TMP/serve.log" ||
    fail "serve --device cpu: no backend line in: $(cat "$TMP/serve.log")"
grep -qxF "glm-server: --dtype bfloat16: the CPU backend computes in float32" "$TMP/serve.log" ||
    fail "serve dtype bfloat16 (config): no notice in: $(cat "$TMP/serve.log")"
body=$(curl -sf "http://127.0.0.1:$PORT/v1/completions" -H 'Content-Type: application/json' \
    -d "{\"model\": \"tiny\", \"prompt\": [$PROMPT], \"max_tokens\": 32, \"temperature\": 0, \"ignore_eos\": true, \"return_token_ids\": true}") ||
    fail "serve --device cpu: the completion request failed"
got=$(python3 -c 'import json, sys; print(",".join(map(str, json.load(sys.stdin)["choices"][0]["token_ids"])))' <<<"$body" 2>/dev/null) ||
    got="(no token_ids in: ${body:0:300})"
[ "$got" = "$WANT" ] || fail "serve --device cpu: greedy completion differs from the golden ids
  expected: $WANT
  got:      $got"
kill "$SPID"
wait "$SPID" 2>/dev/null || true
SPID=

# a config value is checked like the flag's
echo '{"model": "models/tiny", "dtype": "bf16"}' >"$CFG"
run "config dtype bf16" serve --config "$CFG"
expect_rc "config dtype bf16" 2 && has "config dtype bf16" '--dtype must be auto, bfloat16 or float32 (or float), got "bf16"'
echo '{"model": "models/tiny", "enforce_eager": "yes"}' >"$CFG"
run "config enforce_eager string" serve --config "$CFG"
expect_rc "config enforce_eager string" 2 && has "config enforce_eager string" '"enforce_eager" must be true or false'

if [ "$fails" -gt 0 ]; then
    echo "backend_flags.sh: $fails check(s) failed" >&2
    exit 1
fi
echo "backend_flags.sh: all checks passed"
