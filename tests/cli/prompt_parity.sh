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

serve_init prompt_parity.sh
start() { # extra flags...
    serve_start --model models/tiny --served-model-name parity --threads 2 --kv-cache-memory 64MiB "$@"
}
run() { # [default kwargs]
    run_suite prompt_parity.sh "$LOG" timeout -k 5 $((HANG * 10)) python3 tests/integration/prompt_parity.py \
        "http://127.0.0.1:$PORT" models/tiny "$@"
}

start
run
serve_stop
DEFKW='{"enable_thinking": false}'
start --default-chat-template-kwargs "$DEFKW"
run "$DEFKW"
serve_stop
