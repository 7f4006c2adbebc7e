"""The integration tests' runner: calls every function of a module whose name
starts with a prefix and prints one line per test:

    PASS  name (seconds)
    FAIL  name            followed by the traceback
    SKIP  name (reason)   the test called skip(reason): it could not run here

then "N passed, N failed, N skipped". Exits 1 on any failure, 77 when every
test that ran was skipped (tests/run_tests.sh then reports the suite as
skipped), else 0. A skip is never counted as a pass. ONLY=substring in the
environment runs the matching tests only (the others are not run, not
skipped)."""
import os
import sys
import time
import traceback


class Skip(Exception):
    """Raised by skip(): the test cannot run here (a tool or file is missing)."""


def skip(reason):
    """Ends the calling test as skipped, with a reason."""
    raise Skip(reason)


def run(namespace, prefix):
    only = os.environ.get("ONLY")
    tests = [(k, v) for k, v in namespace.items() if k.startswith(prefix) and callable(v)]
    passed = failed = skipped = 0
    for name, fn in tests:
        if only and only not in name:
            continue
        t0 = time.time()
        try:
            fn()
            passed += 1
            print("PASS  %s (%.2fs)" % (name, time.time() - t0))
        except Skip as e:
            skipped += 1
            print("SKIP  %s (%s)" % (name, e))
        except Exception:
            failed += 1
            print("FAIL  %s" % name)
            traceback.print_exc()
        sys.stdout.flush()
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(1 if failed else 77 if skipped and not passed else 0)
