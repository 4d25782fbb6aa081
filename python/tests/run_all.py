#!/usr/bin/env python3
"""Runs the Python binding and torch backend tests (ctest: python_binding).
Exits 77 with a SKIPPED line when numpy or torch is missing. The library
comes from PPUCCL_LIB, else the source tree's build/lib."""
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77


def main():
    missing = []
    for mod in ("numpy", "torch", "torch.distributed"):
        try:
            __import__(mod)
        except ImportError as e:
            missing.append(f"{mod} ({e})")
    if missing:
        print(f"SKIPPED: {sys.executable} lacks {', '.join(missing)}; install python3-numpy "
              f"and python3-torch (scripts/setup.sh)")
        return SKIP
    import torch
    if not torch.distributed.is_available():
        print("SKIPPED: this torch has no torch.distributed")
        return SKIP
    torch.set_num_threads(1)  # ranks share 2 cores; forked ranks inherit this
    sys.path[:0] = [os.path.dirname(HERE), HERE]
    import ppuccl
    print(f"python_binding: {sys.executable}, torch {torch.__version__}, "
          f"library {ppuccl.library_path}", flush=True)
    names = sys.argv[1:] or ["test_binding", "test_backend", "test_errors", "test_mpirun",
                              "test_ddp"]
    suite = unittest.defaultTestLoader.loadTestsFromNames(names)
    t0 = time.time()
    res = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    bad = len(res.failures) + len(res.errors)
    print(f"python_binding: {time.time() - t0:.1f} s")
    print(f"{res.testsRun - bad - len(res.skipped)} passed, {bad} failed, "
          f"{len(res.skipped)} skipped")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
