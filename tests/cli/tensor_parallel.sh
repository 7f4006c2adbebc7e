#!/usr/bin/env bash
# tests/cli/tensor_parallel.sh BUILD_DIR - tensor parallelism (--tensor-parallel-size) against one rank.
# Proves, on models/tiny-tp (16 heads, 16 experts, widths that split 8 ways) in float32 and FP8:
#   - the CPU backend at 2, 4 and 8 ranks decodes the same greedy ids as at 1, and every step's
#     logits are within 1e-5 x max|logit| of one rank's (the partial sums of o_proj and the FFN
#     are added in rank order, so the last bits may move; the vocabulary split is exact);
#   - the same with chunked prefill, and with -tp (vLLM's short spelling);
#   - the CUDA backend on the CPU execution layer (BUILD_DIR/glm-server-cuda-cpu, float32) at 1 and
#     2 ranks against the CPU backend at 1 rank, the same way (skipped, saying so, when it is not
#     built);
#   - start-up errors, before serving: a size that does not divide the heads (3), one that is not
#     a number (exit 2), an FP8 weight whose scale blocks a size would cut (models/tiny-fp8 at 2),
#     more CUDA ranks than devices, --nnodes without NCCL, a --node-rank out of range (a rank that
#     fails while loading, which stops every rank, is tests/cuda/test_cuda_backend.c's
#     tp_rank_fails_at_load; the rendezvous of nodes is tests/unit/test_rendezvous.c);
#   - tests/cli/server.sh (the openai SDK, curl, raw sockets, queueing, graceful stop) against a
#     server at --tensor-parallel-size 2.
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
BIN=./glm-server
# the CUDA checks: the CPU execution layer's server and 1 and 2 ranks, or (tests/gpu/run.sh) the
# nvcc build on real GPUs and as many ranks as there are GPUs
CUDA_BIN=${TP_CUDA_BIN:-$BUILD/glm-server-cuda-cpu}
CUDA_SIZES=${TP_CUDA_SIZES:-1 2}
LIMIT=300
for f in "$BIN" models/tiny-tp/config.json models/tiny-tp-fp8/config.json models/tiny-fp8/config.json; do
    [ -e "$f" ] || { echo "tensor_parallel.sh: missing $f (run make and make models)" >&2; exit 1; }
done
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
PROMPT=$(seq -s, 1 20)
STEPS=24

# gen NAME BIN ARGS...: generate on the prompt into $TMP/NAME.ids and $TMP/NAME.logits
gen() {
    local name=$1 bin=$2
    shift 2
    local rc=0
    timeout -k 5 "$LIMIT" "$bin" generate --prompt-ids "$PROMPT" --max-tokens "$STEPS" --ignore-eos \
        --logits "$TMP/$name.logits" "$@" >"$TMP/$name.ids" 2>"$TMP/$name.err" || rc=$?
    [ "$rc" -eq 0 ] || fail "$name: exit $rc: $bin $*
  $(tail -3 "$TMP/$name.err")"
    return 0
}

# same REF NAME: the ids equal, the logits within 1e-5 x max|logit| of REF's
same() {
    local ref=$1 name=$2
    [ -s "$TMP/$name.ids" ] || return 0 # its run failed, already reported
    cmp -s "$TMP/$ref.ids" "$TMP/$name.ids" || fail "$name: greedy ids differ from $ref
  $ref:  $(cat "$TMP/$ref.ids")
  $name: $(cat "$TMP/$name.ids")"
    local verdict
    verdict=$(python3 - "$TMP/$ref.logits" "$TMP/$name.logits" <<'PY'
import array, sys
a = array.array("f", open(sys.argv[1], "rb").read())
b = array.array("f", open(sys.argv[2], "rb").read())
if len(a) != len(b) or not a:
    print("bad sizes %d %d" % (len(a), len(b)))
    sys.exit(0)
top = max(abs(x) for x in a)
diff = max(abs(x - y) for x, y in zip(a, b))
same = sum(1 for x, y in zip(a, b) if x == y)
print("%s rel %.3g (max|diff| %.3g, max|logit| %.3g; %d of %d bitwise)"
      % ("ok" if diff <= 1e-5 * top else "off", diff / top, diff, top, same, len(a)))
PY
)
    case "$verdict" in
    ok*) echo "tensor_parallel.sh: $name vs $ref: $verdict" ;;
    *) fail "$name vs $ref: logits $verdict" ;;
    esac
}

for model in tiny-tp tiny-tp-fp8; do
    gen "$model.cpu1" "$BIN" --model "models/$model" --device cpu
    for tp in 2 4 8; do
        gen "$model.cpu$tp" "$BIN" --model "models/$model" --device cpu --tensor-parallel-size "$tp"
        same "$model.cpu1" "$model.cpu$tp"
    done
    gen "$model.cpu2.chunked" "$BIN" --model "models/$model" --device cpu -tp 2 --prefill-chunk 7
    same "$model.cpu1" "$model.cpu2.chunked"
    grep -q -- "--tensor-parallel-size 2" "$TMP/$model.cpu2.err" ||
        fail "$model: no start-up line with the size: $(cat "$TMP/$model.cpu2.err")"
done

if [ -x "$CUDA_BIN" ]; then
    for tp in $CUDA_SIZES; do # on the layer, one device a rank (GLM_CUDA_CPU_DEVICES)
        GLM_CUDA_CPU_DEVICES=$tp gen "cuda$tp" "$CUDA_BIN" --model models/tiny-tp --device cuda --dtype float32 \
            --tensor-parallel-size "$tp"
        same tiny-tp.cpu1 "cuda$tp"
    done
    # more ranks than devices: refused before loading
    rc=0
    CUDA_VISIBLE_DEVICES=0 GLM_CUDA_CPU_DEVICES=1 timeout -k 5 "$LIMIT" "$CUDA_BIN" generate --model models/tiny-tp --prompt-ids 1,2 \
        --device cuda --tensor-parallel-size 2 >"$TMP/out" 2>"$TMP/err" || rc=$?
    [ "$rc" -eq 1 ] && grep -q "needs 2 CUDA devices; 1 visible" "$TMP/err" ||
        fail "2 ranks on 1 device: exit $rc: $(cat "$TMP/err")"
else
    echo "tensor_parallel.sh: skipped the CUDA backend: $CUDA_BIN not built (make cuda-cpu)"
fi

# expect_error NAME RC PATTERN ARGS...: exits RC before serving, stderr matches PATTERN
expect_error() {
    local name=$1 want=$2 pattern=$3
    shift 3
    local rc=0
    timeout -k 5 "$LIMIT" "$BIN" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
    [ "$rc" -eq "$want" ] && grep -q -- "$pattern" "$TMP/err" ||
        fail "$name: exit $rc (want $want), stderr: $(head -c 600 "$TMP/err")"
}
expect_error "size 3" 1 "tensor parallel size 3 does not divide the model's 16 attention heads" \
    generate --model models/tiny-tp --prompt-ids 1,2 --device cpu -tp 3
expect_error "size abc" 2 "tensor-parallel-size must be an integer" \
    generate --model models/tiny-tp --prompt-ids 1,2 --device cpu --tensor-parallel-size abc
expect_error "size 0 (serve)" 2 "tensor-parallel-size must be an integer" \
    serve --model models/tiny-tp --device cpu --tensor-parallel-size 0
expect_error "fp8 cut" 1 "q_b_proj.weight: rows \[0, 96) cut the FP8 weight's 128-row scale blocks" \
    generate --model models/tiny-fp8 --prompt-ids 1,2 --device cpu -tp 2
expect_error "size 3 (serve)" 1 "does not divide the model's 16 attention heads" \
    serve --model models/tiny-tp --device cpu -tp 3 --port 1
# across nodes: NCCL only (the CPU has no transport between processes), and sane ranks
expect_error "nnodes on the cpu" 1 "the nodes compute together over NCCL" \
    serve --model models/tiny-tp --device cpu -tp 2 --nnodes 2 --port 1
expect_error "node rank" 1 "node-rank must be in \[0, 2) with --nnodes 2, got 2" \
    serve --model models/tiny-tp --device cpu -tp 2 --nnodes 2 --node-rank 2 --port 1

[ "$fails" -eq 0 ] || exit 1
echo "tensor_parallel.sh: generate ok"

GLM_SERVE_FLAGS="--device cpu --tensor-parallel-size 2" bash tests/cli/server.sh "$BUILD"
