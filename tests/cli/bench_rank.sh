#!/usr/bin/env bash
# tests/cli/bench_rank.sh BUILD_DIR - a smoke test of the GLM-5 rank-slice benchmark
# (tests/bench/bench_rank.c) on the CPU execution layer: BUILD_DIR/glm-bench-rank-cuda-cpu on the
# glm5-rank-mini checkpoint (glm-mkmodel; glm5-rank's structure at test widths, 3 layers through
# --layers), with a context past index_topk (64) so that the DSA selection runs, two batches and a
# prompt in two chunks. It checks that the program says its times are not GPU times, prints the
# table with every row (copy, fp8 gemm, one decode row per batch, prefill) and finite numbers, and
# exits 0; and that a bad flag exits 2. The numbers themselves mean nothing here.
# Exits 77 (SKIP) when the binary could not be built (no CUDA toolkit headers).
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
BIN=$BUILD/glm-bench-rank-cuda-cpu
[ -x "$BIN" ] || { echo "SKIP  $BIN not built (it needs the CUDA toolkit's headers)"; exit 77; }
[ -x "$BUILD/glm-mkmodel" ] || { echo "bench_rank.sh: missing $BUILD/glm-mkmodel" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

"$BUILD/glm-mkmodel" --preset glm5-rank-mini --dtype fp8 --layers 3 --out "$TMP/model" >/dev/null
rc=0
timeout -k 5 300 "$BIN" --model "$TMP/model" --contexts 80 --batches 1,3 --prompt-len 96 \
    --max-num-batched-tokens 64 --repeat 2 >"$TMP/out" 2>"$TMP/err" || rc=$?
cat "$TMP/out"
[ "$rc" -eq 0 ] || fail "exit $rc: $(cat "$TMP/err")"
[ -s "$TMP/err" ] && fail "stderr: $(cat "$TMP/err")"
grep -q '^CPU execution layer: timings are not GPU timings$' "$TMP/out" || fail "no CPU-layer notice"
grep -q '^model: .*3 layers (1 dense, 2 MoE), hidden 256, 8 heads, 32 experts top-8' "$TMP/out" ||
    fail "model line"
grep -q '^measure  *batch  *context  *median ms  *layer ms  *rate  *work  *fraction$' "$TMP/out" ||
    fail "no table header"
grep -Eq '^copy D2D 64 MiB .* [0-9.]+ [kMGT]?B/s ' "$TMP/out" || fail "copy row"
grep -Eq '^fp8 gemm 256\^3 .* [0-9.]+ [kMGTP]?FLOP/s ' "$TMP/out" || fail "fp8 gemm row"
for b in 1 3; do
    grep -Eq "^decode +$b +80 +[0-9.]+ +[0-9.]+ +[0-9.]+ tok/s +[0-9.]+ [kMG]?B read +[0-9.]+ of copy$" "$TMP/out" ||
        fail "decode row for batch $b"
done
grep -Eq '^prefill \(chunks 64\) +1 +96 +[0-9.]+ +[0-9.]+ +[0-9.]+ tok/s +[0-9.]+ [kMGT]?FLOP +[0-9.]+ of fp8 gemm$' \
    "$TMP/out" || fail "prefill row"
grep -Eqi 'nan|inf ' "$TMP/out" && fail "a number is not finite"

rc=0
"$BIN" --model "$TMP/model" --batches 0 >/dev/null 2>"$TMP/err" || rc=$?
[ "$rc" -eq 2 ] || fail "--batches 0: exit $rc, expected 2"

[ "$fails" -eq 0 ] || exit 1
echo "bench_rank.sh: table ok"
