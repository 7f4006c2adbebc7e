#!/usr/bin/env bash
# tests/cli/generate.sh BUILD_DIR - the `glm-server generate` command line.
# Proves: greedy ids on the tiny f32 / bf16 (2 shards) / fp8 (3 shards) checkpoints
# equal the Hugging Face transformers goldens exactly; --logits writes one
# float32 vocab row per generated token whose argmax is that token; chunked
# prefill gives the same ids; usage errors exit 2 with a message on stderr;
# an out-of-vocabulary id exits 1 with one stderr line after the backend's;
# --help / --version / unknown commands behave. Needs ./glm-server and models/tiny{,-bf16,-fp8}.
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."

BIN=./glm-server
GOLDEN=tests/golden/tiny
VOCAB=4096
NTOK=32
LIMIT=60 # seconds for any single run; a tiny model takes well under one

for f in "$BIN" models/tiny/config.json models/tiny-bf16/config.json models/tiny-fp8/config.json \
    "$GOLDEN/prompt.txt"; do
    [ -e "$f" ] || { echo "generate.sh: missing $f (run make and make models; BUILD=$BUILD)" >&2; exit 1; }
done

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PROMPT=$(cat "$GOLDEN/prompt.txt")
fails=0

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# run NAME ARGS...: runs the binary with a time limit; sets RC, OUT, ERR.
run() {
    local name=$1
    shift
    RC=0
    timeout -k 5 "$LIMIT" "$BIN" "$@" >"$TMP/out" 2>"$TMP/err" || RC=$?
    OUT=$(cat "$TMP/out")
    ERR=$(cat "$TMP/err")
    if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
        fail "$name: timed out after ${LIMIT}s: $BIN $*"
    fi
}

# expect_rc NAME WANT: checks RC against WANT, shows the run's output otherwise.
expect_rc() {
    if [ "$RC" -ne "$2" ]; then
        fail "$1: expected exit status $2, got $RC
  stdout: ${OUT:0:300}
  stderr: ${ERR:0:600}"
        return 1
    fi
}

gen() { # MODEL [extra args]: the golden command line
    local model=$1
    shift
    run "$model" generate --model "models/$model" --prompt-ids "$PROMPT" --max-tokens $NTOK --ignore-eos "$@"
}

# --- goldens: transformers' greedy ids, exactly --------------------------------
for pair in tiny:f32 tiny-bf16:bf16 tiny-fp8:fp8; do
    model=${pair%%:*}
    want=$(cat "$GOLDEN/${pair#*:}.greedy.txt")
    gen "$model"
    expect_rc "golden $model" 0 || continue
    [ "$OUT" = "$want" ] || fail "golden $model: generated ids differ from $GOLDEN/${pair#*:}.greedy.txt
  expected: $want
  got:      $OUT"
    # stderr: only the start-up line naming the backend (tests/cli/backend_flags.sh)
    if ! grep -Eqx 'glm-server: backend (cpu|cuda) \(.*' <<<"$ERR" || [ "$(wc -l <"$TMP/err")" -ne 1 ]; then
        fail "golden $model: expected only the backend line on stderr, got: $ERR"
    fi
done
F32_IDS=$(cat "$GOLDEN/f32.greedy.txt")

# --- --logits: NTOK rows of VOCAB little-endian floats, row i's argmax = id i ----
gen tiny --logits "$TMP/logits.bin"
if expect_rc "--logits" 0; then
    size=$(stat -c %s "$TMP/logits.bin")
    [ "$size" -eq $((NTOK * VOCAB * 4)) ] ||
        fail "--logits: expected $((NTOK * VOCAB * 4)) bytes ($NTOK rows x $VOCAB floats), got $size"
    [ "$OUT" = "$F32_IDS" ] || fail "--logits: expected the golden ids with --logits too
  expected: $F32_IDS
  got:      $OUT"
    argmax=$(V=$VOCAB perl -0777 -ne 'my ($v, @f) = ($ENV{V}, unpack("f<*", $_)); my @ids;
        while (my @row = splice(@f, 0, $v)) {
            my $best = 0; $row[$_] > $row[$best] and $best = $_ for 1 .. $#row; push @ids, $best }
        print join(",", @ids)' "$TMP/logits.bin")
    [ "$argmax" = "$OUT" ] || fail "--logits: row argmaxes do not match the ids printed on stdout
  expected: $OUT
  got:      $argmax"
fi

# --- chunked prefill gives the same ids -----------------------------------------
for model in tiny tiny-fp8; do
    gen "$model" --prefill-chunk 7
    want=$F32_IDS
    [ "$model" = tiny-fp8 ] && want=$(cat "$GOLDEN/fp8.greedy.txt")
    expect_rc "--prefill-chunk 7 ($model)" 0 &&
        { [ "$OUT" = "$want" ] || fail "--prefill-chunk 7 ($model): expected $want
  got:      $OUT"; }
done

# --- usage errors: exit 2, a message on stderr, nothing on stdout ---------------
usage_err() { # NAME ARGS... (after "generate")
    local name=$1
    shift
    run "$name" generate "$@"
    expect_rc "usage: $name" 2 || return 0
    [ -n "$ERR" ] || fail "usage: $name: exit 2 but nothing on stderr"
    [ -z "$OUT" ] || fail "usage: $name: expected empty stdout, got: $OUT"
}
usage_err "no --model" --prompt-ids 1,2 --max-tokens 1
usage_err "no --prompt-ids" --model models/tiny --max-tokens 1
usage_err "--max-tokens 0" --model models/tiny --prompt-ids 1,2 --max-tokens 0
usage_err "unknown option" --model models/tiny --prompt-ids 1,2 --no-such-option
usage_err "--threads 5000" --model models/tiny --prompt-ids 1,2 --threads 5000
usage_err "--threads -5" --model models/tiny --prompt-ids 1,2 --threads -5
usage_err "--max-tokens 5x" --model models/tiny --prompt-ids 1,2 --max-tokens 5x
usage_err "--prefill-chunk abc" --model models/tiny --prompt-ids 1,2 --prefill-chunk abc
usage_err "stray argument" --model models/tiny --prompt-ids 1,2 --max-tokens 2 stray
usage_err "past the context" --model models/tiny --prompt-ids 1,2 --max-tokens 5000
for ids in "1,x" "" " " "1," "-3" "1,,2" "abc"; do
    usage_err "--prompt-ids '$ids'" --model models/tiny --prompt-ids "$ids" --max-tokens 1
    grep -qi "token id" <<<"$ERR" ||
        fail "usage: --prompt-ids '$ids': expected stderr to mention the token id list, got: $ERR"
done
# a bad id list is rejected before the model is read
usage_err "bad ids, no model" --model "$TMP/no-such-dir" --prompt-ids 1,x --max-tokens 1

# --- runtime error: a token id outside the vocabulary ---------------------------
for ids in "1,$VOCAB" "$((VOCAB + 100)),1,2"; do
    run "vocab $ids" generate --model models/tiny --prompt-ids "$ids" --max-tokens 2
    expect_rc "id outside vocabulary ($ids)" 1 || continue
    lines=$(wc -l <"$TMP/err")
    if [ "$lines" -ne 2 ] || ! grep -Eq '^glm-server: backend (cpu|cuda) \(' <<<"$ERR"; then
        fail "id outside vocabulary ($ids): expected the backend line and one error line, got $lines: $ERR"
    fi
    grep -q "vocabulary" <<<"$ERR" || fail "id outside vocabulary ($ids): expected 'vocabulary' in: $ERR"
    [ -z "$OUT" ] || fail "id outside vocabulary ($ids): expected empty stdout, got: $OUT"
done

# --- help, version, unknown command ---------------------------------------------
run "generate --help" generate --help
expect_rc "generate --help" 0 && { grep -q -- "--model" <<<"$OUT" ||
    fail "generate --help: expected usage mentioning --model on stdout, got: $OUT"; }
run "--version" --version
expect_rc "--version" 0 && { grep -Eq '^glm-server [0-9]+\.[0-9]+' <<<"$OUT" ||
    fail "--version: expected 'glm-server X.Y...' on stdout, got: $OUT"; }
run "--help" --help
expect_rc "--help" 0 || true
run "unknown command" frobnicate
expect_rc "unknown command" 2 && { grep -q "frobnicate" <<<"$ERR" ||
    fail "unknown command: expected stderr to name 'frobnicate', got: $ERR"; }
run "no command"
expect_rc "no command" 2 || true

if [ "$fails" -gt 0 ]; then
    echo "generate.sh: $fails check(s) failed" >&2
    exit 1
fi
echo "generate.sh: all checks passed"
