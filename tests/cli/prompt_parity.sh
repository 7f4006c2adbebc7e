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
. tests/cli/lib/serve.bash

for f in ./glm-server models/tiny/config.json; do
    [ -e "$f" ] || { echo "prompt_parity.sh: missing $f (run make and make models)" >&2; exit 1; }
done

PORT=$(free_port)
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
    wait_ready prompt_parity.sh "$PID" "http://127.0.0.1:$PORT/health" "$LOG"
}
stop() {
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=
}
run() { # [default kwargs]
    run_suite prompt_parity.sh "$LOG" timeout -k 5 $((HANG * 10)) python3 tests/integration/prompt_parity.py \
        "http://127.0.0.1:$PORT" models/tiny "$@"
}

start
run
stop
DEFKW='{"enable_thinking": false}'
start --default-chat-template-kwargs "$DEFKW"
run "$DEFKW"
stop
