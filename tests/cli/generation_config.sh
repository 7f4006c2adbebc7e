#!/usr/bin/env bash
# tests/cli/generation_config.sh BUILD_DIR - generation_config.json's sampling
# values as request defaults (vLLM's --generation-config auto), end to end.
# A copy of models/tiny whose generation_config.json says temperature 0,
# top_k 1 and max_new_tokens 7 (min_p 0 and repetition_penalty 1, their
# neutral values, are read and shown too) is served twice at once: as is (--generation-config auto, the
# default) and with --generation-config vllm; then
# tests/integration/test_generation_config.py (standard library only) checks
# that requests omitting the fields decode greedily on the first server and
# sample on the second, and that a request's own values win, field by field.
# Also: the start-up line names the defaults, a bad flag value exits 2, and
# defaults no request could give (temperature 5) stop the server with a
# message naming the file. Waits poll with a hang guard (lib/serve.bash).
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
. tests/cli/lib/serve.bash

for f in ./glm-server models/tiny/config.json; do
    [ -e "$f" ] || { echo "generation_config.sh: missing $f (run make and make models)" >&2; exit 1; }
done

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

# the checkpoint: models/tiny with another generation_config.json
MODEL=$TMP/model
mkdir "$MODEL"
for f in models/tiny/*; do
    [ "$(basename "$f")" = generation_config.json ] || ln -s "$PWD/$f" "$MODEL/"
done
gen_config() { # JSON fields after eos_token_id
    printf '{"eos_token_id": [4036, 4043, 4045], "pad_token_id": 4036%s}\n' "$1" >"$MODEL/generation_config.json"
}

# a bad flag value, and defaults no request could give
out=$(./glm-server serve --model "$MODEL" --generation-config "$TMP" 2>&1) && {
    echo "generation_config.sh: a folder path was accepted" >&2; exit 1; }
echo "$out" | grep -q -- '--generation-config must be "auto" or "vllm"' || {
    echo "generation_config.sh: bad --generation-config: $out" >&2; exit 1; }
gen_config ', "temperature": 5.0'
PORT=$(free_port)
rc=0
timeout "$HANG" ./glm-server serve --model "$MODEL" --port "$PORT" >"$TMP/bad.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -q "generation_config.json: .*temperature" "$TMP/bad.log" || {
    cat "$TMP/bad.log"; echo "generation_config.sh: temperature 5 in generation_config.json: exit $rc" >&2; exit 1; }

# the two servers
gen_config ', "do_sample": false, "temperature": 0.0, "top_k": 1, "min_p": 0.0, "repetition_penalty": 1.0, "max_new_tokens": 7'
PORT_A=$(free_port)
./glm-server serve --model "$MODEL" --served-model-name tiny --port "$PORT_A" --threads 1 \
    --kv-cache-memory 64MiB >"$TMP/a.log" 2>&1 &
PIDS+=($!)
wait_ready generation_config.sh "${PIDS[0]}" "http://127.0.0.1:$PORT_A/health" "$TMP/a.log"
PORT_B=$(free_port)
./glm-server serve --model "$MODEL" --served-model-name tiny --port "$PORT_B" --threads 1 \
    --kv-cache-memory 64MiB --generation-config vllm >"$TMP/b.log" 2>&1 &
PIDS+=($!)
wait_ready generation_config.sh "${PIDS[1]}" "http://127.0.0.1:$PORT_B/health" "$TMP/b.log"

grep -q "request defaults from generation_config.json: temperature 0, top_k 1, min_p 0, repetition_penalty 1, max_new_tokens 7" "$TMP/a.log" || {
    cat "$TMP/a.log"; echo "generation_config.sh: no defaults line" >&2; exit 1; }
if grep -q "request defaults" "$TMP/b.log"; then
    echo "generation_config.sh: --generation-config vllm still applied the file" >&2
    exit 1
fi

run_suite generation_config.sh "$TMP/a.log" timeout -k 5 $((HANG * 10)) python3 \
    tests/integration/test_generation_config.py "http://127.0.0.1:$PORT_A" "http://127.0.0.1:$PORT_B"
echo "generation_config.sh: ok"
