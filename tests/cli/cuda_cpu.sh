#!/usr/bin/env bash
# tests/cli/cuda_cpu.sh BUILD_DIR - the black-box checks through the CUDA backend, without a GPU:
# BUILD_DIR/glm-server-cuda-cpu (make cuda-cpu) is the whole server with its CUDA backend on the
# CPU execution layer (tests/cuda_cpu/).
#   - generate --device cuda --dtype float32 gives transformers' greedy ids exactly on the tiny
#     f32 and bf16 checkpoints, one-shot and with chunked prefill;
#   - the default dtype runs on the BF16 and FP8 checkpoints (32 ids, exit 0);
#   - tests/cli/server.sh (the openai SDK, curl, raw sockets, queueing, graceful stop) and
#     tests/cli/api_fields.sh (scoring: prompt logprobs against transformers' logits, several
#     logits rows a sequence; the other API fields) against servers started with --device cuda
#     --dtype float32.
# Exits 77 (SKIP) when the binary could not be built (no CUDA toolkit headers).
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
BIN=$BUILD/glm-server-cuda-cpu
[ -x "$BIN" ] || { echo "SKIP  $BIN not built (make cuda-cpu needs the CUDA toolkit's headers)"; exit 77; }
GOLDEN=tests/golden/tiny
PROMPT=$(cat "$GOLDEN/prompt.txt")
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ids() { tr -d ' \n' <"$1"; }

for pair in tiny:f32 tiny-bf16:bf16; do
    model=${pair%%:*} variant=${pair##*:}
    want=$(ids "$GOLDEN/$variant.greedy.txt")
    for chunk in 0 7; do
        extra=()
        [ "$chunk" -gt 0 ] && extra=(--prefill-chunk "$chunk")
        got=$(timeout -k 5 120 "$BIN" generate --model "models/$model" --prompt-ids "$PROMPT" --max-tokens 32 \
            --ignore-eos --device cuda --dtype float32 ${extra[@]+"${extra[@]}"} 2>/tmp/cuda_cpu.$$.err | tr -d ' \n') ||
            fail "$model chunk $chunk: exit $? $(cat /tmp/cuda_cpu.$$.err)"
        grep -q "backend cuda" /tmp/cuda_cpu.$$.err || fail "$model: no 'backend cuda' line: $(cat /tmp/cuda_cpu.$$.err)"
        [ "$got" = "$want" ] || fail "$model (chunk $chunk): ids differ from transformers'
  got:  $got
  want: $want"
    done
done
for model in tiny-bf16 tiny-fp8; do
    got=$(timeout -k 5 120 "$BIN" generate --model "models/$model" --prompt-ids "$PROMPT" --max-tokens 32 \
        --ignore-eos --device cuda 2>/tmp/cuda_cpu.$$.err) || fail "$model default dtype: $(cat /tmp/cuda_cpu.$$.err)"
    n=$(echo "$got" | tr ',' '\n' | grep -c '^ *[0-9]' || true)
    [ "$n" -eq 32 ] || fail "$model default dtype: $n ids, expected 32: $got"
done
rm -f /tmp/cuda_cpu.$$.err
[ "$fails" -eq 0 ] || exit 1
echo "cuda_cpu.sh: generate ok"

GLM_SERVER=$BIN GLM_SERVE_FLAGS="--device cuda --dtype float32" STOP_STREAM_TOKENS=300 bash tests/cli/server.sh "$BUILD"
GLM_SERVER=$BIN GLM_SERVE_FLAGS="--device cuda --dtype float32" bash tests/cli/api_fields.sh "$BUILD"
