#!/usr/bin/env bash
# tests/gpu/run.sh - the CUDA backend on a real GPU, as is, by anyone with one (an H200 or any
# sm_90 device; the CUDA toolkit and the Debian packages of `make deps`).
#
#   1. builds glm-server and the GPU test programs with nvcc for sm_90a (make CUDA=1 gpu-tests);
#   2. runs every CUDA op against the CPU reference ops (build/gpu/test-backend-ops);
#   3. runs the CUDA backend's forward on the tiny checkpoints: --dtype float32 against the
#      transformers goldens, the default dtype against the CPU engine, BF16 and FP8
#      (build/gpu/test_cuda_backend);
#      the device sampler against the CPU sampler and its distribution (build/gpu/test_cuda_sample);
#   4. runs the server tests (tests/cli/server.sh: the openai SDK, curl, raw sockets) with every
#      server started with --device cuda.
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

part "build (nvcc, sm_90a)" make -s -j"$JOBS" CUDA=1 glm-server gpu-tests models/tiny/config.json \
    models/tiny-bf16/config.json models/tiny-fp8/config.json || exit 1
part "test-backend-ops (cuda row on the GPU)" build/gpu/test-backend-ops
part "CUDA forward on the tiny checkpoints" build/gpu/test_cuda_backend
part "CUDA sampler against the CPU sampler" build/gpu/test_cuda_sample

# the server tests of `make test`, every server they start given --device cuda (tests/cli/lib/serve.bash)
part "serve --device cuda: tests/cli/server.sh (openai SDK, curl)" env GLM_SERVE_FLAGS="--device cuda" \
    bash tests/cli/server.sh build

echo "GLM-5 rank-slice benchmark: not built yet (tests/bench has no rank-slice program)"
[ "$failed" -eq 0 ] && echo "all parts passed" || echo "$failed part(s) failed"
exit $((failed > 0))
