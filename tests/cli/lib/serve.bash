# tests/cli/lib/serve.bash - sourced by the CLI tests that start `glm-server serve`
# (server.sh, script_server.sh, script_model.sh, generation_config.sh,
# prompt_parity.sh).
#
# No test asserts how long something took: every wait here polls for a state
# and gives up only after HANG seconds, which only a hang takes, however busy
# the machine is.

HANG=${HANG:-60}
# The binary serve_start runs, and flags it gives every server before the test's own
# (tests/cli/cuda_cpu.sh and tests/gpu/run.sh run the server tests through the CUDA backend:
# GLM_SERVER=build/glm-server-cuda-cpu, GLM_SERVE_FLAGS="--device cuda").
GLM_SERVER=${GLM_SERVER:-./glm-server}
read -r -a SERVE_FLAGS <<<"${GLM_SERVE_FLAGS:-}"

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready NAME PID URL LOG: waits until URL answers 200 (e.g. .../health).
# Fails, showing LOG, when the server exits first or after HANG seconds.
wait_ready() {
    local name=$1 pid=$2 url=$3 log=$4 i
    for ((i = 0; i < HANG * 10; i++)); do
        curl -sf "$url" >/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "$name: the server exited" >&2; exit 1; }
        sleep 0.1
    done
    cat "$log"
    echo "$name: no answer from $url after $HANG s" >&2
    exit 1
}

# wait_until NAME WHAT COMMAND...: polls COMMAND (every 0.05 s) until it
# succeeds; fails naming WHAT after HANG seconds.
wait_until() {
    local name=$1 what=$2 i
    shift 2
    for ((i = 0; i < HANG * 20; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    echo "$name: $what: still not after $HANG s" >&2
    exit 1
}

# One server per script: serve_init NAME sets PORT (free), LOG (a temp file)
# and an EXIT trap that stops a server still running and removes LOG and the
# files listed in CLEANUP_FILES; serve_start FLAGS... starts
# `$GLM_SERVER serve --port $PORT $GLM_SERVE_FLAGS FLAGS...` (PID) and waits for /health;
# serve_stop stops it.
serve_init() {
    SERVE_NAME=$1
    PORT=$(free_port)
    LOG=$(mktemp)
    PID=
    CLEANUP_FILES=()
    trap serve_cleanup EXIT
}
serve_cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -f "$LOG" "${CLEANUP_FILES[@]}"
}
serve_start() {
    "$GLM_SERVER" serve --port "$PORT" ${SERVE_FLAGS[@]+"${SERVE_FLAGS[@]}"} "$@" >"$LOG" 2>&1 &
    PID=$!
    wait_ready "$SERVE_NAME" "$PID" "http://127.0.0.1:$PORT/health" "$LOG"
}
serve_stop() {
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=
}

# run_suite NAME LOG COMMAND...: runs an integration test program. On a
# failure shows the end of the server LOG and exits with its status; a
# program whose every test was skipped (status 77) makes the whole script
# exit 77 with its last line as the reason (tests/run_tests.sh reports SKIP).
run_suite() {
    local name=$1 log=$2 rc=0 out
    shift 2
    out=$(mktemp)
    "$@" 2>&1 | tee "$out" || rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 77 ]; then
        echo "every test skipped: $(grep -m1 -a '^SKIP  ' "$out" | sed 's/^SKIP  //')"
        rm -f "$out"
        exit 77
    fi
    rm -f "$out"
    if [ "$rc" -ne 0 ]; then
        echo "--- $name: server log (last 30 lines)"
        tail -30 "$log"
        exit "$rc"
    fi
}
