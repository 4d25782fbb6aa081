#!/usr/bin/env bash
# The project's test command: install what is missing, build, run every
# test (Criterion binaries under ctest), then check that no shared-memory
# segment was left behind.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
bash "$ROOT/scripts/build.sh"
before=$(ls /dev/shm | grep -c '^ppuccl-' || true)
rc=0
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 900 || rc=$?
after=$(ls /dev/shm | grep -c '^ppuccl-' || true)
if [ "$after" -gt "$before" ]; then
  echo "test.sh: $((after - before)) ppuccl shared-memory segment(s) left in /dev/shm" >&2
  ls -l /dev/shm | grep ppuccl- >&2 || true
  rc=1
fi
exit $rc
