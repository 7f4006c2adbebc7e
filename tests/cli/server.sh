#!/usr/bin/env bash
# tests/cli/server.sh BUILD_DIR - `glm-server serve` end to end: makes the
# project venv (.venv, the official openai SDK, via `make venv`) if missing,
# starts ./glm-server serve on models/tiny on a free port from a --config file
# (API key, 1 MiB body limit, CORS origins) overridden by flags, waits for /health, runs tests/integration/test_server.py
# (openai SDK + curl + raw sockets); restarts it with --max-num-seqs 1
# --max-queue 1 --timeout-keep-alive 2 for the queueing tests (429, hang-up while
# queued) and the slow-loris test; checks that
# SIGTERM stops it with a stream running, exiting 0; always stops the server.
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."

for f in ./glm-server models/tiny/config.json; do
    [ -e "$f" ] || { echo "server.sh: missing $f (run make and make models)" >&2; exit 1; }
done
[ -f .venv/.packages ] && .venv/bin/python -c "import openai, jsonschema" 2>/dev/null || make -s venv

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LOG=$(mktemp)
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -f "$LOG" "$CFG"
}
trap cleanup EXIT

# --config: the file's settings, overridden by the command line (port, and the
# API keys: sk-config is replaced by sk-test, which test_server.py checks)
CFG=$(mktemp --suffix=.json)
cat >"$CFG" <<'JSON'
{"_comment": "server.sh", "model": "models/tiny", "served_model_name": "tiny", "port": 1,
 "api_key": ["sk-config"], "max_request_bytes": "1MiB", "threads": 2,
 "allowed_origins": "http://good.example, http://also.example", "enable_prefix_caching": true}
JSON
start() { # extra flags...
    ./glm-server serve --config "$CFG" --port "$PORT" --api-key sk-test "$@" >"$LOG" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && return 0
        kill -0 "$PID" 2>/dev/null || { cat "$LOG"; echo "server.sh: the server exited" >&2; exit 1; }
        sleep 0.1
    done
    cat "$LOG"
    echo "server.sh: no /health after 10 s" >&2
    exit 1
}

# a broken config file stops the server before it loads anything, naming the key
echo '{"model": "models/tiny", "max_modle_len": 5}' >"$LOG"
out=$(./glm-server serve --config "$LOG" 2>&1) && { echo "server.sh: bad --config accepted" >&2; exit 1; }
echo "$out" | grep -q 'unknown key "max_modle_len"' || { echo "server.sh: bad --config: $out" >&2; exit 1; }

# the example configs parse (every key is a flag); tiny.json serves what make run serves
for c in config/*.json; do
    ./glm-server serve --config "$c" --help >/dev/null || { echo "server.sh: $c does not parse" >&2; exit 1; }
done
./glm-server serve --config config/tiny.json --port "$PORT" --kv-cache-memory 16MiB --allowed-origins '*' >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$PORT/v1/models" | grep -q '"id":"tiny"' || { cat "$LOG"; echo "server.sh: config/tiny.json" >&2; exit 1; }
curl -si -H "Origin: http://any.example" "http://127.0.0.1:$PORT/v1/models" | grep -qi '^Access-Control-Allow-Origin: \*' ||
    { echo "server.sh: --allowed-origins '*'" >&2; exit 1; }
kill "$PID"; wait "$PID" 2>/dev/null || true

start
grep -q "tokens of KV cache" "$LOG" || { echo "server.sh: no KV cache line" >&2; exit 1; }
rc=0
timeout -k 5 100 .venv/bin/python tests/integration/test_server.py "http://127.0.0.1:$PORT" sk-test || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "--- server log (last 30 lines)"
    tail -30 "$LOG"
    exit "$rc"
fi

# queueing: one running sequence, one waiting request, the next gets a 503
kill "$PID"
wait "$PID" 2>/dev/null || true
start --max-num-seqs 1 --max-queue 1 --sse-ping-interval 0.2 --timeout-keep-alive 2
timeout -k 5 60 .venv/bin/python tests/integration/test_server.py "http://127.0.0.1:$PORT" sk-test queue || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "--- server log (last 30 lines)"
    tail -30 "$LOG"
    exit "$rc"
fi

# graceful stop: a stream in flight runs to its end, new connections are refused, exit status 0
STREAM=$(mktemp)
curl -sN -H "Authorization: Bearer sk-test" "http://127.0.0.1:$PORT/v1/completions" \
    -d '{"prompt": "x", "max_tokens": 1000, "ignore_eos": true, "stream": true}' >"$STREAM" &
CURL=$!
for _ in $(seq 100); do [ -s "$STREAM" ] && break; sleep 0.05; done
kill -TERM "$PID"
sleep 0.2
if curl -s -o /dev/null "http://127.0.0.1:$PORT/health"; then
    echo "server.sh: still accepting connections after SIGTERM" >&2
    exit 1
fi
src=0
timeout 20 tail --pid="$PID" -f /dev/null || { echo "server.sh: still running 20 s after SIGTERM" >&2; exit 1; }
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
