"""The integration tests' runner: calls every function of a module whose name
starts with a prefix, prints "PASS  name (seconds)" or "FAIL  name" with the
traceback, then "N passed, N failed", and exits 1 on any failure. ONLY=substring
in the environment runs the matching tests only."""
import os
import sys
import time
import traceback


def run(namespace, prefix):
    only = os.environ.get("ONLY")
    tests = [(k, v) for k, v in namespace.items() if k.startswith(prefix) and callable(v)]
    passed = failed = 0
    for name, fn in tests:
        if only and only not in name:
            continue
        t0 = time.time()
        try:
            fn()
            passed += 1
            print("PASS  %s (%.2fs)" % (name, time.time() - t0))
        except Exception:
            failed += 1
            print("FAIL  %s" % name)
            traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
