#!/usr/bin/env bash
# tests/cli/api_fields.sh BUILD_DIR - the OpenAI/vLLM request fields beyond the chat basics,
# end to end: serves models/tiny and runs tests/integration/test_api_fields.py (the openai
# SDK, raw HTTP where the SDK cannot say it: scoring with echo and logprobs against the
# transformers goldens, lists of prompts, text_offset, the developer role, unique ids,
# context_length, vLLM's fields, a cut tool call, finish reasons); then serves a copy of
# models/tiny without a chat template (a base model): /v1/completions answers, chat requests
# and /tokenize with messages get a 400 naming `messages`. Waits poll with a hang guard
# (lib/serve.bash); nothing is timed.
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
. tests/cli/lib/serve.bash

for f in ./glm-server models/tiny/config.json tests/golden/tiny/f32.prompt.f32; do
    [ -e "$f" ] || { echo "api_fields.sh: missing $f (run make and make models)" >&2; exit 1; }
done
[ -f .venv/.packages ] && .venv/bin/python -c "import openai" 2>/dev/null || make -s venv

serve_init api_fields.sh
serve_start --model models/tiny --served-model-name tiny --threads 2
run_suite api_fields.sh "$LOG" timeout -k 5 $((HANG * 10)) .venv/bin/python tests/integration/test_api_fields.py \
    "http://127.0.0.1:$PORT"
serve_stop

# a base model: the tiny checkpoint without chat_template.jinja
BASE=$(mktemp -d)
trap 'rm -rf "$BASE"; serve_cleanup' EXIT
for f in models/tiny/*; do
    [ "$(basename "$f")" = chat_template.jinja ] || ln -s "$PWD/$f" "$BASE/"
done
serve_start --model "$BASE" --served-model-name tiny --threads 2
grep -q "has no chat template" "$LOG" || { cat "$LOG"; echo "api_fields.sh: no notice of the missing template" >&2; exit 1; }
out=$(curl -s "http://127.0.0.1:$PORT/v1/completions" -d '{"model": "tiny", "prompt": "a b", "max_tokens": 2}')
echo "$out" | grep -q '"finish_reason"' || { echo "api_fields.sh: base model completions: $out" >&2; exit 1; }
for path in /v1/chat/completions /tokenize; do
    code=$(curl -s -o "$BASE/out.json" -w '%{http_code}' "http://127.0.0.1:$PORT$path" \
        -d '{"model": "tiny", "messages": [{"role": "user", "content": "Hi"}]}')
    [ "$code" = 400 ] && grep -q '"param":"messages"' "$BASE/out.json" && grep -q 'no chat template' "$BASE/out.json" ||
        { cat "$BASE/out.json"; echo "api_fields.sh: base model $path: $code" >&2; exit 1; }
done
serve_stop
echo "api_fields.sh: ok"
