#!/usr/bin/env bash
# Runs the test suites: unit tests (Check), the backend op checks, golden parity, CLI and bad-checkpoint
# tests, and the integration tests the CLI scripts start.
# Usage: tests/run_tests.sh BUILD_DIR [unit | cli]   (default: both)
#
# One line per suite: "PASS  name", "FAIL  name" (with the end of its output)
# or "SKIP  name (reason)", and a closing line "N passed, N failed, N skipped".
# Skips are never counted as passes:
#   - a suite that cannot run at all exits 77 (automake's convention); its
#     last line of output is the reason;
#   - a suite that passes may have skipped some cases: each prints a line
#     "SKIP  case (reason)" (testutil.h's TEST_SKIP, tests/integration/harness.py's
#     skip(), or a shell test's own echo); they are shown under the suite's PASS
#     line and counted as skipped.
# Test cases without a timeout of their own get CK_DEFAULT_TIMEOUT (120 s here,
# Check's default is 4 s): a hang guard, never a speed requirement.
set -uo pipefail
BUILD=${1:-build}
ONLY=${2:-all}
cd "$(dirname "$0")/.."
export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-120}

passed=0
failed=0
skipped=0
failures=()

run() { # name, command...
    local name=$1
    shift
    local log rc=0
    log=$(mktemp)
    "$@" >"$log" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        local cases n
        cases=$(grep -a '^SKIP  ' "$log" || true)
        n=$(printf '%s' "$cases" | grep -c '^SKIP' || true)
        if [ "$n" -gt 0 ]; then
            echo "PASS  $name ($n skipped)"
            printf '%s\n' "$cases" | sed "s/^SKIP  /SKIP  $name: /"
            skipped=$((skipped + n))
        else
            echo "PASS  $name"
        fi
    elif [ "$rc" -eq 77 ]; then
        skipped=$((skipped + 1))
        local why
        why=$(grep -a -v '^[[:space:]]*$' "$log" | tail -1 | sed 's/^SKIP  //')
        echo "SKIP  $name (${why:-no reason given})"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "FAIL  $name"
        sed 's/^/      /' "$log" | tail -40
    fi
    rm -f "$log"
}

if [ "$ONLY" != cli ]; then
    for t in "$BUILD"/tests/test_*; do
        [ -x "$t" ] || continue
        run "unit: $(basename "$t")" "$t"
    done
    # every op of every backend against the reference ops (tests/backend/)
    if [ -x "$BUILD/tests/backend/test-backend-ops" ]; then
        run "backend: test-backend-ops" "$BUILD/tests/backend/test-backend-ops"
        # the CUDA row's kernels again with the CPU layer's threads resumed in reverse order
        if "$BUILD/tests/backend/test-backend-ops" --has-cuda >/dev/null 2>&1; then
            run "backend: test-backend-ops (cuda, reverse order)" \
                env GLM_CUDA_CPU_ORDER=reverse "$BUILD/tests/backend/test-backend-ops"
        fi
    fi
    # the CUDA backend's forward once more with the CPU layer's threads resumed in reverse order
    if [ -f "$BUILD/cuda_cpu/cuda/cuda_backend.o" ]; then
        run "unit: test_cuda_backend (reverse order)" env GLM_CUDA_CPU_ORDER=reverse "$BUILD/tests/test_cuda_backend"
        run "unit: test_cuda_sample (reverse order)" env GLM_CUDA_CPU_ORDER=reverse "$BUILD/tests/test_cuda_sample"
    fi
    # the cuBLAS/cuBLASLt stand-in against a double reference (tests/cuda_cpu/blas/)
    if [ -x "$BUILD/tests/cuda_cpu/blas/test-cublas" ]; then
        run "cuda_cpu: test-cublas" "$BUILD/tests/cuda_cpu/blas/test-cublas"
    fi
fi

if [ "$ONLY" != unit ]; then
    for t in tests/cli/*.sh; do
        [ -f "$t" ] || continue
        run "cli: $(basename "$t" .sh)" bash "$t" "$BUILD"
    done
fi

echo
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
