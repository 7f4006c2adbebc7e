#!/usr/bin/env bash
# tests/cli/skips.sh BUILD_DIR - skipped tests are reported as skipped, never as
# passed: tests/integration/harness.py prints "SKIP  name (reason)", counts
# skips apart and exits 77 when every test skipped; tests/run_tests.sh shows a
# suite's skipped cases under its PASS line, a suite that exits 77 as
# "SKIP  name (reason)", and counts both in "N passed, N failed, N skipped".
# Runs on fake suites in a temporary directory (python3 only).
set -euo pipefail
cd "$(dirname "$0")/../.."
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "skips.sh: $*" >&2; exit 1; }

# --- the Python harness -------------------------------------------------------------
cat >"$TMP/mixed.py" <<PY
import sys
sys.path.insert(0, "$PWD/tests/integration")
import harness
def test_a(): pass
def test_b(): harness.skip("no frobnicator here")
harness.run(globals(), "test_")
PY
rc=0
out=$(python3 "$TMP/mixed.py") || rc=$?
[ "$rc" -eq 0 ] || fail "a passing module with a skip exits $rc"
echo "$out" | grep -qx 'SKIP  test_b (no frobnicator here)' || fail "no SKIP line: $out"
echo "$out" | grep -qx '1 passed, 0 failed, 1 skipped' || fail "summary: $out"
cat >"$TMP/allskip.py" <<PY
import sys
sys.path.insert(0, "$PWD/tests/integration")
import harness
def test_a(): harness.skip("nothing to test")
harness.run(globals(), "test_")
PY
rc=0
out=$(python3 "$TMP/allskip.py") || rc=$?
[ "$rc" -eq 77 ] || fail "a module whose every test skipped exits $rc, not 77"

# --- run_tests.sh ---------------------------------------------------------------------
mkdir -p "$TMP/build/tests"
printf '#!/bin/sh\necho ok\n' >"$TMP/build/tests/test_pass"
printf '#!/bin/sh\necho "SKIP  big_case (models/big missing)"\necho "100%%: Checks: 2"\n' \
    >"$TMP/build/tests/test_somecases"
printf '#!/bin/sh\necho "starting"\necho "python3 not found"\nexit 77\n' >"$TMP/build/tests/test_suite"
chmod +x "$TMP"/build/tests/test_*
rc=0
out=$(bash tests/run_tests.sh "$TMP/build" unit) || rc=$?
[ "$rc" -eq 0 ] || fail "run_tests.sh with skips exits $rc: $out"
want='PASS  unit: test_pass
PASS  unit: test_somecases (1 skipped)
SKIP  unit: test_somecases: big_case (models/big missing)
SKIP  unit: test_suite (python3 not found)

2 passed, 0 failed, 2 skipped'
[ "$out" = "$want" ] || fail "run_tests.sh printed:
$out
want:
$want"
echo "skips.sh: ok"
