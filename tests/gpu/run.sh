#!/usr/bin/env bash
# tests/gpu/run.sh - the CUDA backend on a real GPU, as is, by anyone with one (an H200 or any
# sm_90 device; the CUDA toolkit and the Debian packages of `make deps`).
#
#   1. builds glm-server and the GPU test programs with nvcc for sm_90a (make CUDA=1 gpu-tests);
#   2. runs every CUDA op against the CPU reference ops (build/gpu/test-backend-ops);
#   3. runs the CUDA backend's forward on the tiny checkpoints: --dtype float32 against the
#      transformers goldens, the default dtype against the CPU engine, BF16 and FP8
#      (build/gpu/test_cuda_backend); its draft (the MTP layer) against the MTP goldens and the
#      CPU backend's draft, and with decode graphs captured (build/gpu/test_cuda_mtp);
#      the device sampler against the CPU sampler and its distribution (build/gpu/test_cuda_sample);
#   4. runs the server tests (tests/cli/server.sh: the openai SDK, curl, raw sockets) with every
#      server started with --device cuda;
#   5. the NCCL communicator (build/gpu/test_comm_nccl) on every GPU, one rank per GPU (a world
#      of one on a one-GPU machine): the collectives against references, a stopped rank that must
#      stop the others, and the time of one all-reduce of a layer (GLM-5 has two per layer);
#      then tensor parallelism (tests/cli/tensor_parallel.sh with the nvcc server: --dtype float32
#      at 1, 2, 4, 8 ranks as the GPUs allow, against the CPU backend at one rank) and the server
#      tests at --tensor-parallel-size 2, on machines with two GPUs or more; and a world of two
#      nodes as two processes over loopback (--nnodes 2): the same completion as one process, and
#      node 1 killed stopping node 0;
#   6. the GLM-5 rank-slice benchmark: writes glm-mkmodel's glm5-rank checkpoint (GLM-5's widths as
#      one rank of 8-way tensor parallelism, 4 layers, fp8, ~4.4 GB) into a temporary directory and
#      prints build/glm-bench-rank's table on it (docs/performance.md, "GLM-5 rank slice on one GPU").
#
# Prints PASS/FAIL per part and exits non-zero if any failed. Run from anywhere:
#   bash tests/gpu/run.sh            (JOBS=N to set the build's parallelism)
set -uo pipefail
cd "$(dirname "$0")/../.."
JOBS=${JOBS:-$(nproc)}
failed=0
part() { # name, command...
    local name=$1
    shift
    echo "=== $name"
    if "$@"; then
        echo "PASS  $name"
    else
        echo "FAIL  $name"
        failed=$((failed + 1))
    fi
}

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
command -v nvcc >/dev/null || { echo "run.sh: nvcc is not on PATH" >&2; exit 1; }

part "build (nvcc, sm_90a)" make -s -j"$JOBS" CUDA=1 glm-server gpu-tests build/glm-bench-rank build/glm-mkmodel \
    models/tiny/config.json models/tiny-bf16/config.json models/tiny-fp8/config.json \
    models/tiny-tp/config.json models/tiny-tp-fp8/config.json models/tiny-wide-bf16/config.json \
    models/tiny-wide-fp8/config.json || exit 1
part "test-backend-ops (cuda row on the GPU)" build/gpu/test-backend-ops
part "CUDA forward on the tiny checkpoints" build/gpu/test_cuda_backend
part "CUDA draft (MTP layer) on the tiny checkpoints" build/gpu/test_cuda_mtp
part "CUDA sampler against the CPU sampler" build/gpu/test_cuda_sample

# the server tests of `make test`, every server they start given --device cuda (tests/cli/lib/serve.bash)
part "serve --device cuda: tests/cli/server.sh (openai SDK, curl)" env GLM_SERVE_FLAGS="--device cuda" \
    bash tests/cli/server.sh build

# the NCCL communicator: a rank per GPU (on one GPU a world of one: NCCL's calls end to end and
# their time, none of its transport)
GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
comm_nccl() {
    [ "${GPUS:-0}" -ge 2 ] || echo "one GPU: a world of one rank"
    timeout -k 10 180 build/gpu/test_comm_nccl "$([ "${GPUS:-0}" -ge 2 ] && echo "$GPUS" || echo 1)"
}
part "NCCL communicator (build/gpu/test_comm_nccl, one rank per GPU)" comm_nccl

# tensor parallelism over NCCL: two GPUs at least
tp_gpus() {
    if [ "${GPUS:-0}" -lt 2 ]; then
        echo "skipped: one GPU"
        return 0
    fi
    local sizes="1" n=2
    while [ "$n" -le "$GPUS" ] && [ "$n" -le 8 ]; do sizes="$sizes $n"; n=$((n * 2)); done
    TP_CUDA_BIN=./glm-server TP_CUDA_SIZES="$sizes" bash tests/cli/tensor_parallel.sh build &&
        GLM_SERVE_FLAGS="--device cuda --tensor-parallel-size 2" bash tests/cli/server.sh build
}
part "tensor parallelism on the GPUs (tests/cli/tensor_parallel.sh, server.sh at -tp 2)" tp_gpus

# a world across nodes, as two processes of this machine over loopback (one GPU each): the same
# greedy completion as one process at -tp 2, then node 1 killed must stop node 0 (exit 1, the reason)
multinode() {
    if [ "${GPUS:-0}" -lt 2 ]; then
        echo "skipped: one GPU"
        return 0
    fi
    local dir port mport body want got rc=0 p0 p1
    dir=$(mktemp -d)
    port=$((20000 + RANDOM % 10000))
    mport=$((port + 10000))
    body='{"model": "m", "prompt": [1, 2, 3, 4, 5, 6, 7, 8], "max_tokens": 16, "temperature": 0, "ignore_eos": true}'
    up() { for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && return 0; sleep 0.5; done; return 1; }
    ./glm-server serve --model models/tiny-tp --served-model-name m --device cuda --dtype float32 -tp 2 \
        --port "$port" >"$dir/one.log" 2>&1 &
    p0=$!
    up && want=$(curl -sf "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' -d "$body")
    kill -TERM "$p0"; wait "$p0"
    CUDA_VISIBLE_DEVICES=1 ./glm-server serve --model models/tiny-tp --served-model-name m --device cuda \
        --dtype float32 -tp 2 --nnodes 2 --node-rank 1 --master-port "$mport" >"$dir/node1.log" 2>&1 &
    p1=$!
    CUDA_VISIBLE_DEVICES=0 ./glm-server serve --model models/tiny-tp --served-model-name m --device cuda \
        --dtype float32 -tp 2 --nnodes 2 --node-rank 0 --master-port "$mport" --port "$port" >"$dir/node0.log" 2>&1 &
    p0=$!
    if up; then
        got=$(curl -sf "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' -d "$body")
        python3 -c 'import json,sys; a,b=(json.loads(x)["choices"][0]["text"] for x in sys.argv[1:]); print("one node:", repr(a)); print("two nodes:", repr(b)); sys.exit(a != b)' "$want" "$got" || rc=1
        kill -9 "$p1"
        timeout 60 tail --pid="$p0" -f /dev/null || rc=1
        wait "$p0" && rc=1 # node 0 must fail
        grep -q "node 1 dropped out" "$dir/node0.log" || rc=1
    else
        rc=1
    fi
    kill -9 "$p0" "$p1" 2>/dev/null
    tail -5 "$dir/node0.log" "$dir/node1.log"
    rm -rf "$dir"
    return "$rc"
}
part "two nodes over loopback (--nnodes 2, one GPU each)" multinode

# the benchmark: timed parts of its own, so that a slow step cannot eat the script's budget
bench_rank() {
    local dir rc=0
    dir=$(mktemp -d "${TMPDIR:-/tmp}/glm5-rank.XXXXXX") || return 1
    SECONDS=0
    timeout -k 10 120 build/glm-mkmodel --preset glm5-rank --dtype fp8 --shards 4 --out "$dir/model" || rc=$?
    echo "glm5-rank checkpoint written in ${SECONDS} s"
    [ "$rc" -eq 0 ] && { timeout -k 10 240 build/glm-bench-rank --model "$dir/model" || rc=$?; }
    rm -rf "$dir"
    return "$rc"
}
part "GLM-5 rank slice: build/glm-bench-rank on glm5-rank (fp8, 4 layers)" bench_rank
[ "$failed" -eq 0 ] && echo "all parts passed" || echo "$failed part(s) failed"
exit $((failed > 0))
