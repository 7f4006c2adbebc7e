#!/usr/bin/env bash
# tests/cli/prompt_parity.sh BUILD_DIR - one prompt per request: the chat API,
# POST /tokenize and `glm-server render` build it with the same function
# (engine/glm/chat_prompt.h). Starts `glm-server serve` on models/tiny on a
# free port and runs tests/integration/prompt_parity.py (good requests give the
# same token ids three ways, bad ones the same refusal); then again with
# --default-chat-template-kwargs, which render gets too. ONLY=substring runs
# the matching tests only.
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."

for f in ./glm-server models/tiny/config.json; do
    [ -e "$f" ] || { echo "prompt_parity.sh: missing $f (run make and make models)" >&2; exit 1; }
done

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LOG=$(mktemp)
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -f "$LOG"
}
trap cleanup EXIT

start() { # extra flags...
    ./glm-server serve --model models/tiny --served-model-name parity --port "$PORT" --threads 2 \
        --kv-cache-memory 64MiB "$@" >"$LOG" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && return 0
        kill -0 "$PID" 2>/dev/null || { cat "$LOG"; echo "prompt_parity.sh: the server exited" >&2; exit 1; }
        sleep 0.1
    done
    echo "prompt_parity.sh: no /health after 10 s" >&2
    exit 1
}
stop() {
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=
}
run() { # [default kwargs]
    local rc=0
    timeout -k 5 300 python3 tests/integration/prompt_parity.py "http://127.0.0.1:$PORT" models/tiny "$@" || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "--- server log (last 30 lines)"
        tail -30 "$LOG"
        exit "$rc"
    fi
}

start
run
stop
DEFKW='{"enable_thinking": false}'
start --default-chat-template-kwargs "$DEFKW"
run "$DEFKW"
stop
