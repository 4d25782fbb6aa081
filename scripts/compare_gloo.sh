#!/usr/bin/env bash
# Compare ppuccl's all-reduce with Gloo's ring all-reduce over TCP on one
# machine.
#
# Runs build/bin/ppu_allreduce_perf -p NP (under PPU_ENV) and
# build/bin/gloo_allreduce_perf -p NP with the same flags, keeps both raw
# outputs in OUT_DIR, and prints the out-of-place bus bandwidth per size with
# the ratio ppuccl/gloo. Both programs use the perf_common driver: same sizes,
# validation, mean time per iteration (max over ranks) and busbw =
# algbw * 2(n-1)/n.
#
# By default every ppuccl rank is its own simulated server and the ranks talk
# over the network transport (PPU_NET=socket PPU_SIM_SERVERS=NP), the like of
# Gloo's TCP pairs. PPU_ENV replaces that environment: a list of NAME=VALUE
# words, e.g. PPU_ENV="PPU_SIM_SERVERS=1" (one server, simulated ICN links)
# or PPU_ENV="" (nothing added).
#
# Environment (defaults): NP (4) MIN (1M) MAX (64M) FACTOR (4) ITERS (20)
#   WARMUP (5) DTYPE (float) OP (sum) TIMEOUT (300: -T, seconds, for each
#   program) PPU_ENV (see above) BUILD_DIR (<repo>/build)
#   OUT_DIR (BUILD_DIR/compare_gloo)
# gloo_allreduce_perf is built when Gloo is installed (libgloo-dev, which
# scripts/setup.sh installs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
NP=${NP:-4} MIN=${MIN:-1M} MAX=${MAX:-64M} FACTOR=${FACTOR:-4} ITERS=${ITERS:-20}
WARMUP=${WARMUP:-5} DTYPE=${DTYPE:-float} OP=${OP:-sum} TIMEOUT=${TIMEOUT:-300}
OUT_DIR=${OUT_DIR:-$BUILD_DIR/compare_gloo}
# Unset: the network default; set, even to "": exactly that.
PPU_ENV=${PPU_ENV-"PPU_NET=socket PPU_SIM_SERVERS=$NP"}

die() { echo "compare_gloo: $*" >&2; exit 1; }
[[ $NP =~ ^[1-9][0-9]*$ ]] || die "NP must be a positive integer, not '$NP'"
PPU_BIN=$BUILD_DIR/bin/ppu_allreduce_perf
GLOO_BIN=$BUILD_DIR/bin/gloo_allreduce_perf
[ -x "$PPU_BIN" ] || die "$PPU_BIN is missing: build first (cmake -S . -B build && cmake --build build)"
[ -x "$GLOO_BIN" ] || die "$GLOO_BIN is missing: install Gloo (bash scripts/setup.sh, or apt-get install libgloo-dev), then re-run cmake and build (cmake -S . -B build && cmake --build build --target gloo_allreduce_perf)"

read -r -a ENV_WORDS <<<"$PPU_ENV"
for w in ${ENV_WORDS[@]+"${ENV_WORDS[@]}"}; do
  [[ $w =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "PPU_ENV: '$w' is not NAME=VALUE"
done

FLAGS=(-b "$MIN" -e "$MAX" -f "$FACTOR" -n "$ITERS" -w "$WARMUP" -d "$DTYPE" -o "$OP" -T "$TIMEOUT")

mkdir -p "$OUT_DIR"
PPU_OUT=$OUT_DIR/ppuccl_allreduce.txt
GLOO_OUT=$OUT_DIR/gloo_allreduce.txt

echo "compare_gloo: ${ENV_WORDS[*]+${ENV_WORDS[*]} }$PPU_BIN -p $NP ${FLAGS[*]}"
rc=0; env ${ENV_WORDS[@]+"${ENV_WORDS[@]}"} "$PPU_BIN" -p "$NP" "${FLAGS[@]}" -J "$PPU_OUT.json" >"$PPU_OUT" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { tail -n 20 "$PPU_OUT" >&2; die "ppu_allreduce_perf failed (exit $rc) with PPU_ENV='$PPU_ENV'; full output: $PPU_OUT"; }
echo "compare_gloo: $GLOO_BIN -p $NP ${FLAGS[*]}"
rc=0; "$GLOO_BIN" -p "$NP" "${FLAGS[@]}" -J "$GLOO_OUT.json" >"$GLOO_OUT" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { tail -n 20 "$GLOO_OUT" >&2; die "gloo_allreduce_perf failed (exit $rc); full output: $GLOO_OUT"; }

# Rows: size count type redop root | time algbw busbw #wrong (out-of-place) | in-place
awk -v np="$NP" -v what="all-reduce $DTYPE $OP" -v penv="${PPU_ENV:-(none)}" '
  function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "n/a" }
  /^#/ || NF < 13 { next }
  FNR == NR { if (!($1 in pbw)) order[n++] = $1; pbw[$1] = $8; pt[$1] = $6; next }
  { gbw[$1] = $8; gt[$1] = $6 }
  END {
    printf "# %s, %d ranks: out-of-place bus bandwidth (GB/s); ppuccl env: %s\n", what, np, penv
    printf "%12s  %12s  %12s  %11s\n", "size(B)", "ppuccl", "gloo", "ppuccl/gloo"
    rows = 0
    for (i = 0; i < n; i++) {
      s = order[i]
      if (!(s in gbw)) continue
      # same size and rank count: busbw ratio == inverse time ratio (more digits)
      printf "%12s  %12.2f  %12.2f  %11s\n", s, pbw[s], gbw[s], ratio(gt[s], pt[s])
      rows++
    }
    if (!rows) { print "compare_gloo: no common sizes in the two outputs" > "/dev/stderr"; exit 1 }
  }' "$PPU_OUT" "$GLOO_OUT"
PNG=${PNG:-$OUT_DIR/compare_gloo.png}
/usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/plot_compare.py" "$PNG" "all-reduce $DTYPE, $NP ranks" \
  "ppuccl=$PPU_OUT.json" "Gloo=$GLOO_OUT.json" || echo "compare_gloo: no plot (matplotlib?)" >&2
echo "compare_gloo: raw outputs in $OUT_DIR"
