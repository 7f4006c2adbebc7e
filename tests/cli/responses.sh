#!/usr/bin/env bash
# tests/cli/responses.sh BUILD_DIR - the Responses API (POST /v1/responses)
# through `glm-server serve` on the scripted model (models/script, whose greedy
# decoding follows tests/models/script/chains.json): starts the server on a free
# port and runs tests/integration/test_responses.py (the openai SDK's
# responses.create / .stream / .parse and raw SSE). ONLY=substring runs the
# matching tests only.
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
. tests/cli/lib/serve.bash

for f in ./glm-server models/script/config.json models/script/script.json; do
    [ -e "$f" ] || { echo "responses.sh: missing $f (run make and make models)" >&2; exit 1; }
done
[ -f .venv/.packages ] && .venv/bin/python -c "import openai, jsonschema, pydantic" 2>/dev/null || make -s venv

serve_init responses.sh
serve_start --model models/script --served-model-name script --threads 2 --kv-cache-memory 64MiB
run_suite responses.sh "$LOG" timeout -k 5 $((HANG * 10)) .venv/bin/python \
    tests/integration/test_responses.py "http://127.0.0.1:$PORT" models/script
serve_stop
