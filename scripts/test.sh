#!/usr/bin/env bash
# The project's test command: install what is missing, build, run every
# test (Criterion binaries under ctest), run them again under sanitizers,
# then check that no shared-memory segment was left behind.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
bash "$ROOT/scripts/build.sh"
before=$(ls /dev/shm | grep -c '^ppuccl-' || true)
rc=0
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 900 || rc=$?
# Once more under sanitizers (PPU_TEST_SANITIZERS=0 skips this for quick
# local runs; CI runs it): every test with AddressSanitizer +
# UndefinedBehaviorSanitizer, then the multi-threaded programs (ranks as
# threads, streams, three communicators at once) with ThreadSanitizer, which
# Criterion cannot run under, then each fuzz target for FUZZ_SECONDS (10).
if [ "${PPU_TEST_SANITIZERS:-1}" != 0 ]; then
  SAN_FLAGS=(-DPPU_BUILD_BENCHMARKS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo)
  echo "test.sh: whole suite again under ASan+UBSan ($BUILD_DIR-asan)"
  cmake -S "$ROOT" -B "$BUILD_DIR-asan" -DPPU_SANITIZE=address "${SAN_FLAGS[@]}" >/dev/null
  cmake --build "$BUILD_DIR-asan" -j"$(nproc)" >/dev/null
  ctest --test-dir "$BUILD_DIR-asan" --output-on-failure --timeout 2400 || rc=$?
  echo "test.sh: threaded programs under TSan ($BUILD_DIR-tsan)"
  cmake -S "$ROOT" -B "$BUILD_DIR-tsan" -DPPU_SANITIZE=thread "${SAN_FLAGS[@]}" >/dev/null
  cmake --build "$BUILD_DIR-tsan" -j"$(nproc)" --target threads_plain soak_plain >/dev/null
  ctest --test-dir "$BUILD_DIR-tsan" --output-on-failure -R '^(threads_plain|soak_plain|soak_plain_net)$' || rc=$?
  # The libFuzzer targets (fuzz/) for a bounded time each; longer runs:
  # FUZZ_SECONDS=600 bash scripts/fuzz.sh
  FUZZ_SECONDS=${FUZZ_SECONDS:-10} BUILD_DIR=$BUILD_DIR bash "$ROOT/scripts/fuzz.sh" || rc=$?
fi
after=$(ls /dev/shm | grep -c '^ppuccl-' || true)
if [ "$after" -gt "$before" ]; then
  echo "test.sh: $((after - before)) ppuccl shared-memory segment(s) left in /dev/shm" >&2
  ls -l /dev/shm | grep ppuccl- >&2 || true
  rc=1
fi
exit $rc
