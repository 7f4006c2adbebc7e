#!/usr/bin/env bash
# tests/cli/bad_checkpoints.sh BUILD_DIR - broken checkpoints fail cleanly.
# Proves: for each way of breaking a copy of models/tiny (and tiny-bf16 / tiny-fp8:
# truncated or corrupt safetensors, missing / misshapen / mistyped tensors, a
# missing FP8 scale, broken shards or index, bad config.json, no directory),
# `glm-server generate` exits with status 1 (no crash, no hang), prints nothing on
# stdout and exactly one stderr line naming the file and the tensor or field.
# shellcheck disable=SC2016  # perl code is deliberately single-quoted
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/../.."

BIN=./glm-server
LIMIT=60 # seconds per run; a load error should take milliseconds
for f in "$BIN" models/tiny/config.json models/tiny-bf16/config.json models/tiny-fp8/config.json; do
    [ -e "$f" ] || { echo "bad_checkpoints.sh: missing $f (run make and make models; BUILD=$BUILD)" >&2; exit 1; }
done

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
ncase=0

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
setup_error() { echo "bad_checkpoints.sh: test setup failed: $*" >&2; exit 1; }

# fresh VARIANT: copies models/VARIANT to a new directory and sets D to it.
fresh() {
    ncase=$((ncase + 1))
    D=$TMP/case$ncase
    cp -r "models/$1" "$D"
}

# hdr_edit FILE PERL: runs PERL with $_ set to FILE's safetensors JSON header; the
# header must change and keep its length (so the data offsets stay right).
hdr_edit() {
    perl -0777 -pi -e 'my $n = unpack("Q<", substr($_, 0, 8)); my $h = substr($_, 8, $n);
        my $old = $h; for ($h) { '"$2"' }
        die "header edit did not apply\n" if $h eq $old;
        die "header edit changed the header length\n" if length($h) != length($old);
        substr($_, 8, $n) = $h;' "$1" || setup_error "editing the header of $1 with: $2"
}

# text_edit FILE PERL: a whole-file substitution that must apply.
text_edit() {
    perl -0777 -pi -e 'my $old = $_; '"$2"'; die "edit did not apply\n" if $_ eq $old;' "$1" ||
        setup_error "editing $1 with: $2"
}

# expect_error NAME MODEL_DIR SUBSTRING...: generate must exit 1, print nothing on
# stdout and one stderr line containing every SUBSTRING (spaces are ignored, so
# "[256,128]" matches "[256, 128]").
expect_error() {
    local name=$1 dir=$2 rc=0
    shift 2
    timeout -k 5 "$LIMIT" "$BIN" generate --model "$dir" --prompt-ids 1,2 --max-tokens 1 \
        >"$TMP/out" 2>"$TMP/err" || rc=$?
    local err lines
    err=$(cat "$TMP/err")
    lines=$(wc -l <"$TMP/err")
    local show="  command: $BIN generate --model $dir --prompt-ids 1,2 --max-tokens 1
  stderr: ${err:0:800}"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        fail "$name: hung (killed after ${LIMIT}s)
$show"
        return
    fi
    if [ "$rc" -ne 1 ]; then
        local what="exit status $rc"
        [ "$rc" -gt 128 ] && what="signal $((rc - 128)) (exit status $rc)"
        fail "$name: expected exit status 1, got $what
$show"
        return
    fi
    [ -s "$TMP/out" ] && fail "$name: expected empty stdout, got: $(head -c 200 "$TMP/out")"
    if [ "$lines" -ne 1 ] || [ "$(tail -c 1 "$TMP/err" | od -An -c | tr -d ' ')" != '\n' ]; then
        fail "$name: expected exactly one stderr line, got $lines newline(s)
$show"
    fi
    local s missing=()
    for s in "$@"; do
        [[ "${err// /}" == *"${s// /}"* ]] || missing+=("'$s'")
    done
    [ ${#missing[@]} -eq 0 ] || fail "$name: expected stderr to contain ${missing[*]}
$show"
}

# --- truncated or corrupt model.safetensors (tiny, f32, one file) ---------------
fresh tiny
S=$D/model.safetensors
truncate -s $(($(stat -c %s "$S") / 2)) "$S"
expect_error "truncated to half" "$D" "$S" "truncated"

fresh tiny
S=$D/model.safetensors
truncate -s 1000 "$S" # the header is ~32 KB
expect_error "truncated inside the header" "$D" "$S" "header"

fresh tiny
S=$D/model.safetensors
truncate -s 4 "$S"
expect_error "truncated to 4 bytes" "$D" "$S" "short"

fresh tiny
S=$D/model.safetensors
: >"$S"
expect_error "empty file" "$D" "$S" "empty"

fresh tiny
S=$D/model.safetensors
perl -0777 -pi -e 'substr($_, 0, 8) = pack("Q<", 1 << 40)' "$S"
expect_error "header length 2^40" "$D" "$S" "header length"

fresh tiny
S=$D/model.safetensors
perl -0777 -pi -e 'substr($_, 0, 8) = pack("Q<", ~0)' "$S"
expect_error "header length 2^64-1" "$D" "$S" "header length"

fresh tiny
S=$D/model.safetensors
perl -0777 -pi -e 'my $n = unpack("Q<", substr($_, 0, 8)); substr($_, 8, $n) = "#" x $n' "$S"
expect_error "non-JSON header" "$D" "$S" "JSON"

# --- tensors: missing, wrong shape, wrong dtype ---------------------------------
fresh tiny
hdr_edit "$D/model.safetensors" 's/"model\.norm\.weight":/"model.norX.weight":/'
expect_error "missing tensor" "$D" "$D" "model.norm.weight" "missing"

fresh tiny
S=$D/model.safetensors
hdr_edit "$S" 's/(?<="model\.layers\.0\.mlp\.)(gate|down)(?=_proj\.weight":)/$1 eq "gate" ? "down" : "gate"/ge'
expect_error "gate/down shapes swapped" "$D" "$S" "model.layers.0.mlp." "[256,128]" "[128,256]"

fresh tiny
S=$D/model.safetensors
hdr_edit "$S" 's/("model\.norm\.weight":\{[^}]*"dtype":")F32"/${1}I32"/'
expect_error "dtype F32 -> I32" "$D" "$S" "model.norm.weight" "I32"

# --- FP8: a weight whose _scale_inv is gone -------------------------------------
SCALE=model.layers.0.mlp.gate_proj.weight_scale_inv
fresh tiny-fp8
shard=$(perl -ne 'print $1 if /"\Q'$SCALE'\E": "([^"]+)"/' "$D/model.safetensors.index.json")
[ -n "$shard" ] || setup_error "$SCALE not in models/tiny-fp8/model.safetensors.index.json"
hdr_edit "$D/$shard" 's/"\Q'$SCALE'\E":/"model.layers.0.mlp.gate_proj.weight_scale_XXX":/'
text_edit "$D/model.safetensors.index.json" 's/"\Q'$SCALE'\E"/"model.layers.0.mlp.gate_proj.weight_scale_XXX"/'
expect_error "fp8 scale renamed (index updated)" "$D" "$D/$shard" "$SCALE"

fresh tiny-fp8
hdr_edit "$D/$shard" 's/"\Q'$SCALE'\E":/"model.layers.0.mlp.gate_proj.weight_scale_XXX":/'
expect_error "fp8 scale renamed (index stale)" "$D" "$D/$shard" "$SCALE" "model.safetensors.index.json"

# --- sharded checkpoints (tiny-bf16, 2 shards + index) ---------------------------
fresh tiny-bf16
rm "$D/model-00002-of-00002.safetensors"
expect_error "shard deleted" "$D" "$D/model-00002-of-00002.safetensors"

fresh tiny-bf16
INDEX=$D/model.safetensors.index.json
text_edit "$INDEX" 's/("model\.norm\.weight": "model-0000)([12])/$1 . ($2 == 1 ? 2 : 1)/e'
wrong=$(perl -ne 'print $1 if /"model\.norm\.weight": "([^"]+)"/' "$INDEX")
expect_error "index names the wrong shard" "$D" "$INDEX" "model.norm.weight" "$wrong"

# --- config.json ----------------------------------------------------------------
fresh tiny
text_edit "$D/config.json" 's/"model_type": "glm_moe_dsa"/"model_type": "llama"/'
expect_error "model_type llama" "$D" "$D/config.json" "model_type" "llama"

fresh tiny
text_edit "$D/config.json" 's/\n\s*"hidden_size": \d+,//'
expect_error "hidden_size removed" "$D" "$D/config.json" "hidden_size"

fresh tiny
text_edit "$D/config.json" 's/"num_key_value_heads": \d+/"num_key_value_heads": 3/'
expect_error "num_key_value_heads 3" "$D" "$D/config.json" "num_key_value_heads"

fresh tiny
text_edit "$D/config.json" 's/"vocab_size": (\d+),/"vocab_size": $1,,/'
expect_error "config.json not JSON" "$D" "$D/config.json" "JSON"

fresh tiny
rm "$D/config.json"
expect_error "config.json missing" "$D" "$D/config.json"

expect_error "no such directory" "$TMP/does-not-exist" "$TMP/does-not-exist"

if [ "$fails" -gt 0 ]; then
    echo "bad_checkpoints.sh: $fails check(s) failed in $((ncase + 1)) cases" >&2
    exit 1
fi
echo "bad_checkpoints.sh: all $((ncase + 1)) cases passed"
