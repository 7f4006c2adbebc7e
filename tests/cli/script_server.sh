#!/usr/bin/env bash
# tests/cli/script_server.sh BUILD_DIR - reasoning, tool calls and structured
# output through `glm-server serve` on the scripted model (models/script, whose
# greedy decoding follows tests/models/script/chains.json): starts the server on
# a free port and runs tests/integration/test_reasoning_tools.py (the openai
# SDK, curl and raw SSE); then again with --default-chat-template-kwargs
# '{"enable_thinking": false}' for the server-default tests. ONLY=substring runs
# the matching tests only.
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."

for f in ./glm-server models/script/config.json models/script/script.json; do
    [ -e "$f" ] || { echo "script_server.sh: missing $f (run make and make models)" >&2; exit 1; }
done
[ -f .venv/.packages ] && .venv/bin/python -c "import openai, jsonschema" 2>/dev/null || make -s venv

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LOG=$(mktemp)
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -f "$LOG"
}
trap cleanup EXIT

start() { # extra flags...
    ./glm-server serve --model models/script --served-model-name script --port "$PORT" --threads 2 \
        --kv-cache-memory 64MiB "$@" >"$LOG" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && return 0
        kill -0 "$PID" 2>/dev/null || { cat "$LOG"; echo "script_server.sh: the server exited" >&2; exit 1; }
        sleep 0.1
    done
    echo "script_server.sh: no /health after 10 s" >&2
    exit 1
}
stop() {
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=
}
run() { # mode
    local rc=0
    timeout -k 5 300 .venv/bin/python tests/integration/test_reasoning_tools.py "http://127.0.0.1:$PORT" \
        models/script "$1" || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "--- server log (last 30 lines)"
        tail -30 "$LOG"
        exit "$rc"
    fi
}

start
run main
stop
start --default-chat-template-kwargs '{"enable_thinking": false}'
run default_off
stop
