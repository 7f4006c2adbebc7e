#!/usr/bin/env bash
# tests/cli/script_server.sh BUILD_DIR - reasoning, tool calls and structured
# output through `glm-server serve` on the scripted model (models/script, whose
# greedy decoding follows tests/models/script/chains.json): starts the server on
# a free port and runs tests/integration/test_reasoning_tools.py (the openai
# SDK, curl and raw SSE); then again with --default-chat-template-kwargs
# '{"enable_thinking": false}' for the server-default tests; then the main tests
# again with speculative decoding (--speculative-config, two MTP drafts a step:
# the same answers, reasoning, tool calls, JSON output and stop strings), and its
# counters in /metrics. ONLY=substring runs the matching tests only.
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
. tests/cli/lib/serve.bash

for f in ./glm-server models/script/config.json models/script/script.json; do
    [ -e "$f" ] || { echo "script_server.sh: missing $f (run make and make models)" >&2; exit 1; }
done
[ -f .venv/.packages ] && .venv/bin/python -c "import openai, jsonschema" 2>/dev/null || make -s venv

serve_init script_server.sh
start() { # extra flags...
    serve_start --model models/script --served-model-name script --threads 2 --kv-cache-memory 64MiB "$@"
}
run() { # mode
    run_suite script_server.sh "$LOG" timeout -k 5 $((HANG * 10)) .venv/bin/python \
        tests/integration/test_reasoning_tools.py "http://127.0.0.1:$PORT" models/script "$1"
}

start
run main
serve_stop
start --default-chat-template-kwargs '{"enable_thinking": false}'
run default_off
serve_stop
start --speculative-config '{"method": "mtp", "num_speculative_tokens": 2}'
run main
metric() { curl -sf "http://127.0.0.1:$PORT/metrics" | awk -v n="glm:$1" '$1 ~ "^"n"[{]" {print $2}'; }
drafts=$(metric spec_decode_num_draft_tokens_total)
accepted=$(metric spec_decode_num_accepted_tokens_total)
echo "script_server.sh: speculative decoding: $accepted of $drafts drafts accepted"
awk -v d="$drafts" -v a="$accepted" 'BEGIN { exit !(d > 0 && a > 0 && a <= d) }' ||
    { echo "script_server.sh: expected drafts, some accepted (drafts '$drafts', accepted '$accepted')" >&2; exit 1; }
serve_stop
