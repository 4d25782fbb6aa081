#!/usr/bin/env bash
# libFuzzer targets for ppuccl's parsers of untrusted input (fuzz/README.md).
# Builds fuzz/ with clang (-fsanitize=fuzzer,address,undefined) into
# $BUILD_DIR-fuzz (build-fuzz/), then runs each target for FUZZ_SECONDS on
# a copy of its seed corpus (fuzz/corpus/<target>/), printing one line each:
#   fuzz: <target> <execs> execs in <s> s, <n> crashes
# Exits 1 if any target crashed, naming the crash file; exits 0 with
# "fuzz: skipped: <why>" when clang or libFuzzer is missing.
#
#   bash scripts/fuzz.sh                    # every target, 20 s each
#   FUZZ_SECONDS=300 bash scripts/fuzz.sh fuzz_topo_xml
#
# Environment: FUZZ_SECONDS (20), BUILD_DIR (build) or FUZZ_BUILD_DIR,
# CLANG (clang), JOBS (build jobs, default nproc), FUZZ_ARGS (more
# libFuzzer flags, e.g. "-seed=1").
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${FUZZ_BUILD_DIR:-${BUILD_DIR:-$ROOT/build}-fuzz}
SECS=${FUZZ_SECONDS:-20}
CLANG=${CLANG:-clang}
JOBS=${JOBS:-$(nproc)}

ALL=(fuzz_topo_xml fuzz_boot_msg fuzz_unique_id fuzz_params fuzz_net_frame)
declare -A MAXLEN=([fuzz_topo_xml]=4096 [fuzz_boot_msg]=1024 [fuzz_unique_id]=160
                   [fuzz_params]=256 [fuzz_net_frame]=256)
declare -A DICT=([fuzz_topo_xml]=fuzz/fuzz_topo_xml.dict)

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${ALL[@]}")
for t in "${targets[@]}"; do
  [ -n "${MAXLEN[$t]:-}" ] || { echo "fuzz: unknown target $t (targets: ${ALL[*]})" >&2; exit 2; }
done

skip() { echo "fuzz: skipped: $*"; exit 0; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# (1) clang and its libFuzzer runtime.
command -v "$CLANG" >/dev/null 2>&1 ||
  skip "no $CLANG in PATH (Debian: apt-get install clang libclang-rt-dev)"
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
  'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
  >"$tmp/probe.c"
if ! "$CLANG" -fsanitize=fuzzer,address,undefined "$tmp/probe.c" -o "$tmp/probe" 2>"$tmp/probe.err"; then
  hint="not clang?"
  "$CLANG" --version 2>/dev/null | grep -q clang &&
    hint="libFuzzer runtime missing? Debian: libclang-rt-$("$CLANG" -dumpversion | cut -d. -f1)-dev"
  skip "$CLANG cannot link -fsanitize=fuzzer,address,undefined ($hint): $(head -c 300 "$tmp/probe.err")"
fi
command -v cmake >/dev/null 2>&1 || { echo "fuzz: cmake missing: run scripts/setup.sh" >&2; exit 2; }

# (2) Build.
if ! cmake -S "$ROOT/fuzz" -B "$OUT" -DCMAKE_C_COMPILER="$(command -v "$CLANG")" \
     >"$tmp/configure.log" 2>&1; then
  cat "$tmp/configure.log" >&2
  echo "fuzz: configuring $OUT failed" >&2
  exit 2
fi
if ! cmake --build "$OUT" -j"$JOBS" --target "${targets[@]}" >"$tmp/build.log" 2>&1; then
  cat "$tmp/build.log" >&2
  echo "fuzz: building $OUT failed" >&2
  exit 2
fi
grep -E "warning:" "$tmp/build.log" >&2 || true

# (3) Run.
rc=0
for t in "${targets[@]}"; do
  work=$OUT/run/$t
  rm -rf "$work"
  mkdir -p "$work/corpus"
  cp "$ROOT/fuzz/corpus/$t/"* "$work/corpus/"
  args=(-max_total_time="$SECS" -max_len="${MAXLEN[$t]}" -print_final_stats=1 -timeout=10
        -rss_limit_mb=2048 -artifact_prefix="$work/")
  [ -n "${DICT[$t]:-}" ] && args+=(-dict="$ROOT/${DICT[$t]}")
  start=$(date +%s%N)
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
  "$OUT/bin/$t" "${args[@]}" ${FUZZ_ARGS:-} "$work/corpus" >"$work/log" 2>&1
  frc=$?
  secs=$(( ($(date +%s%N) - start + 500000000) / 1000000000 ))
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$work/log" | tail -n 1)
  found=()
  for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
    [ -e "$f" ] && found+=("$f")
  done
  echo "fuzz: $t ${execs:-?} execs in $secs s, ${#found[@]} crashes"
  if [ "$frc" -ne 0 ] || [ ${#found[@]} -gt 0 ]; then
    rc=1
    grep -v -E '^(#[0-9]+|INFO:|MS:|Dictionary:)' "$work/log" | tail -n 40 | sed 's/^/  /'
    for f in "${found[@]}"; do
      echo "fuzz: $t crash file: $f (reproduce: $OUT/bin/$t $f)"
    done
    [ ${#found[@]} -eq 0 ] && echo "fuzz: $t exited with $frc (log: $work/log)"
  fi
done
exit $rc
