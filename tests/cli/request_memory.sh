#!/usr/bin/env bash
# tests/cli/request_memory.sh BUILD_DIR - bounded memory per request: starts
# `glm-server serve` on models/tiny with the default 32 MiB body limit and runs
# tests/integration/test_request_memory.py against it, which sends the hostile
# bodies of issue 13 (32 MiB of tiny messages, a 32 MiB array in
# chat_template_kwargs, a 32 MiB prompt to /tokenize and to /v1/completions, a
# 32 MiB word) and bodies at each request limit, and reads the server's peak
# RSS from /proc/PID (VmHWM, reset through clear_refs) around each one.
# Waits poll for a state with a hang guard (lib/serve.bash); nothing is timed.
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
. tests/cli/lib/serve.bash

for f in ./glm-server models/tiny/config.json; do
    [ -e "$f" ] || { echo "request_memory.sh: missing $f (run make and make models)" >&2; exit 1; }
done
[ -r /proc/self/status ] || { echo "request_memory.sh: no /proc to read memory from"; exit 77; }

serve_init request_memory.sh
serve_start --model models/tiny --threads 2 --kv-cache-memory 16MiB
run_suite request_memory.sh "$LOG" timeout -k 5 $((HANG * 10)) python3 tests/integration/test_request_memory.py \
    "http://127.0.0.1:$PORT" "$PID"
serve_stop
echo "request_memory.sh: ok"
