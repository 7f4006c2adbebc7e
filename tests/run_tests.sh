#!/usr/bin/env bash
# Runs the test suites: unit tests (Check), the backend op checks, golden parity,
# CLI and bad-checkpoint tests. Usage: tests/run_tests.sh BUILD_DIR [unit]
# Prints one closing line "N passed, N failed".
set -uo pipefail
BUILD=${1:-build}
ONLY=${2:-all}
cd "$(dirname "$0")/.."

passed=0
failed=0
failures=()

run() { # name, command...
    local name=$1
    shift
    local log
    log=$(mktemp)
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1))
        echo "PASS  $name"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "FAIL  $name"
        sed 's/^/      /' "$log" | tail -40
    fi
    rm -f "$log"
}

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    run "unit: $(basename "$t")" "$t"
done

# every op of every backend against the reference ops (tests/backend/)
if [ -x "$BUILD/tests/backend/test-backend-ops" ]; then
    run "backend: test-backend-ops" "$BUILD/tests/backend/test-backend-ops"
fi

if [ "$ONLY" != unit ]; then
    for t in tests/cli/*.sh; do
        [ -f "$t" ] || continue
        run "cli: $(basename "$t" .sh)" bash "$t" "$BUILD"
    done
fi

echo
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
