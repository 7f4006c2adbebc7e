#!/usr/bin/env bash
# tests/cli/server.sh BUILD_DIR - `glm-server serve` end to end: makes the
# project venv (.venv, the official openai SDK, via `make venv`) if missing,
# starts ./glm-server serve on models/tiny on a free port from a --config file
# (API key, 1 MiB body limit, CORS origins) overridden by flags, waits for /health, runs tests/integration/test_server.py
# (openai SDK + curl + raw sockets); restarts it with --max-num-seqs 1
# --max-queue 1 --timeout-keep-alive 2 for the queueing tests (503 when the
# queue is full, hang-up while queued) and the slow-loris test; checks that
# SIGTERM stops it with a stream running, exiting 0; always stops the server.
# Waits poll for a state with a hang guard (lib/serve.bash); nothing is timed.
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
. tests/cli/lib/serve.bash

for f in ./glm-server models/tiny/config.json; do
    [ -e "$f" ] || { echo "server.sh: missing $f (run make and make models)" >&2; exit 1; }
done
[ -f .venv/.packages ] && .venv/bin/python -c "import openai, jsonschema" 2>/dev/null || make -s venv

serve_init server.sh

# --config: the file's settings, overridden by the command line (port, and the
# API keys: sk-config is replaced by sk-test, which test_server.py checks)
CFG=$(mktemp --suffix=.json)
CLEANUP_FILES+=("$CFG")
cat >"$CFG" <<'JSON'
{"_comment": "server.sh", "model": "models/tiny", "served_model_name": "tiny", "port": 1,
 "api_key": ["sk-config"], "max_request_bytes": "1MiB", "threads": 2,
 "allowed_origins": "http://good.example, http://also.example", "enable_prefix_caching": true}
JSON
start() { # extra flags...
    serve_start --config "$CFG" --api-key sk-test "$@"
}

# a broken config file stops the server before it loads anything, naming the key
echo '{"model": "models/tiny", "max_modle_len": 5}' >"$LOG"
out=$(./glm-server serve --config "$LOG" 2>&1) && { echo "server.sh: bad --config accepted" >&2; exit 1; }
echo "$out" | grep -q 'unknown key "max_modle_len"' || { echo "server.sh: bad --config: $out" >&2; exit 1; }

# the example configs parse (every key is a flag); tiny.json serves what make run serves
for c in config/*.json; do
    ./glm-server serve --config "$c" --help >/dev/null || { echo "server.sh: $c does not parse" >&2; exit 1; }
done
serve_start --config config/tiny.json --kv-cache-memory 16MiB --allowed-origins '*'
curl -sf "http://127.0.0.1:$PORT/v1/models" | grep -q '"id":"tiny"' || { cat "$LOG"; echo "server.sh: config/tiny.json" >&2; exit 1; }
curl -si -H "Origin: http://any.example" "http://127.0.0.1:$PORT/v1/models" | grep -qi '^Access-Control-Allow-Origin: \*' ||
    { echo "server.sh: --allowed-origins '*'" >&2; exit 1; }
serve_stop

start
grep -q "tokens of KV cache" "$LOG" || { echo "server.sh: no KV cache line" >&2; exit 1; }
run_suite server.sh "$LOG" timeout -k 5 $((HANG * 10)) .venv/bin/python tests/integration/test_server.py \
    "http://127.0.0.1:$PORT" sk-test

# queueing: one running sequence, one waiting request, the next gets a 503
serve_stop
start --max-num-seqs 1 --max-queue 1 --sse-ping-interval 0.2 --timeout-keep-alive 2 \
    --shutdown-timeout $((HANG * 10))
run_suite server.sh "$LOG" timeout -k 5 $((HANG * 10)) .venv/bin/python tests/integration/test_server.py \
    "http://127.0.0.1:$PORT" sk-test queue

# graceful stop: a stream in flight runs to its end, new connections are refused
# while it runs, exit status 0
# (STOP_STREAM_TOKENS: long enough to be running at SIGTERM; the shutdown timeout, 10 x HANG,
# is only a hang guard, so a slow or busy machine still finishes the stream; tests/cli/cuda_cpu.sh
# lowers it for the slower CUDA-on-CPU server)
STREAM=$(mktemp)
curl -sN -H "Authorization: Bearer sk-test" "http://127.0.0.1:$PORT/v1/completions" \
    -d '{"prompt": "x", "max_tokens": '"${STOP_STREAM_TOKENS:-4000}"', "ignore_eos": true, "stream": true}' >"$STREAM" &
CURL=$!
wait_until server.sh "the stream started" test -s "$STREAM"
kill -TERM "$PID"
refused() { ! curl -s -o /dev/null "http://127.0.0.1:$PORT/health"; }
wait_until server.sh "connections refused after SIGTERM" refused
kill -0 "$PID" 2>/dev/null && kill -0 "$CURL" 2>/dev/null || {
    echo "server.sh: the server or the stream ended before new connections were refused" >&2
    exit 1
}
src=0
timeout $((HANG * 10)) tail --pid="$PID" -f /dev/null ||
    { echo "server.sh: still running $((HANG * 10)) s after SIGTERM" >&2; exit 1; }
wait "$PID" || src=$?
PID=
wait "$CURL" 2>/dev/null || true
grep -q '"finish_reason":"length"' "$STREAM" && grep -q '^data: \[DONE\]' "$STREAM" || {
    echo "server.sh: the stream running at SIGTERM did not finish" >&2
    tail -c 300 "$STREAM" >&2
    exit 1
}
rm -f "$STREAM"
[ "$src" -eq 0 ] || { tail -5 "$LOG"; echo "server.sh: exit status $src after SIGTERM" >&2; exit 1; }
grep -q "glm-server: stopped" "$LOG" || { echo "server.sh: no 'stopped' line" >&2; exit 1; }
echo "server.sh: ok"
