#!/usr/bin/env bash
# tests/cli/hostile_net.sh BUILD_DIR - the server under a hostile network
# (tests/integration/test_hostile_net.py): 2,000 idle sockets and 500 slow-loris
# connections attached while /health and a chat request are answered, the slow
# loris shut down by --request-read-timeout, a stalled streaming reader (n=16)
# dropped by --stream-write-timeout with its request aborted, 1,000 open streams
# at one descriptor each, the --max-header-bytes 431, and nothing left running. Starts ./glm-server on models/tiny on a free port; waits poll with a
# hang guard (lib/serve.bash); nothing is timed.
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
. tests/cli/lib/serve.bash

for f in ./glm-server models/tiny/config.json; do
    [ -e "$f" ] || { echo "hostile_net.sh: missing $f (run make and make models)" >&2; exit 1; }
done
serve_init hostile_net.sh
serve_start --model models/tiny --served-model-name tiny --request-read-timeout 3 --stream-write-timeout 2 \
    --kv-cache-memory 64MiB
run_suite hostile_net.sh "$LOG" timeout -k 5 $((HANG * 6)) python3 tests/integration/test_hostile_net.py \
    "http://127.0.0.1:$PORT" "$PID"
serve_stop
echo "hostile_net.sh: ok"
