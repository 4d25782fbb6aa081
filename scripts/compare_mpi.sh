#!/usr/bin/env bash
# Compare ppuccl's all-reduce with Open MPI's MPI_Allreduce on one machine.
#
# Runs build/bin/ppu_allreduce_perf -p NP and
# mpirun -np NP build/bin/mpi_allreduce_perf with the same flags, keeps both
# raw outputs in OUT_DIR, and prints out-of-place bus bandwidth per size with
# the ratio ppuccl/ompi, plus the latency at the smallest size.
#
# Environment (defaults): NP (2) MIN (8) MAX (64M) ITERS (20) FACTOR (2)
#   WARMUP (5) DTYPE (float) OP (sum) BUILD_DIR (<repo>/build)
#   OUT_DIR (BUILD_DIR/compare) EXTRA_FLAGS (more flags for both programs)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
NP=${NP:-2} MIN=${MIN:-8} MAX=${MAX:-64M} ITERS=${ITERS:-20}
FACTOR=${FACTOR:-2} WARMUP=${WARMUP:-5} DTYPE=${DTYPE:-float} OP=${OP:-sum}
OUT_DIR=${OUT_DIR:-$BUILD_DIR/compare}
PPU_BIN=$BUILD_DIR/bin/ppu_allreduce_perf
MPI_BIN=$BUILD_DIR/bin/mpi_allreduce_perf

die() { echo "compare_mpi: $*" >&2; exit 1; }
for b in "$PPU_BIN" "$MPI_BIN"; do
  [ -x "$b" ] || die "$b is missing: build first (cmake -S . -B build && cmake --build build)"
done
command -v mpirun >/dev/null || die "mpirun not found: install Open MPI (scripts/setup.sh)"

# shellcheck disable=SC2206  # EXTRA_FLAGS is split on purpose
FLAGS=(-b "$MIN" -e "$MAX" -f "$FACTOR" -n "$ITERS" -w "$WARMUP" -d "$DTYPE" -o "$OP" ${EXTRA_FLAGS:-})
MPIRUN=(mpirun --oversubscribe -np "$NP")
[ "$(id -u)" -eq 0 ] && MPIRUN=(mpirun --allow-run-as-root --oversubscribe -np "$NP")

mkdir -p "$OUT_DIR"
PPU_OUT=$OUT_DIR/ppuccl_allreduce.txt
MPI_OUT=$OUT_DIR/ompi_allreduce.txt

echo "compare_mpi: $PPU_BIN -p $NP ${FLAGS[*]}"
rc=0; "$PPU_BIN" -p "$NP" "${FLAGS[@]}" >"$PPU_OUT" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { tail -n 20 "$PPU_OUT" >&2; die "ppu_allreduce_perf failed (exit $rc); full output: $PPU_OUT"; }
echo "compare_mpi: ${MPIRUN[*]} $MPI_BIN ${FLAGS[*]}"
rc=0; "${MPIRUN[@]}" "$MPI_BIN" "${FLAGS[@]}" >"$MPI_OUT" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { tail -n 20 "$MPI_OUT" >&2; die "mpi_allreduce_perf failed (exit $rc); full output: $MPI_OUT"; }

# Rows: size count type redop root | time algbw busbw #wrong (out-of-place) | in-place
awk -v np="$NP" -v dtype="$DTYPE" -v op="$OP" '
  function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "n/a" }
  /^#/ || NF < 13 { next }
  FNR == NR { if (!($1 in pbw)) order[n++] = $1; pbw[$1] = $8; pt[$1] = $6; next }
  { mbw[$1] = $8; mt[$1] = $6 }
  END {
    printf "# all-reduce %s %s, %d ranks: out-of-place bus bandwidth (GB/s)\n", dtype, op, np
    printf "%12s  %12s  %12s  %8s\n", "size(B)", "ppuccl", "ompi", "ppu/ompi"
    small = ""
    for (i = 0; i < n; i++) {
      s = order[i]
      if (!(s in mbw)) continue
      # same size and rank count: busbw ratio == inverse time ratio (more digits)
      printf "%12s  %12.2f  %12.2f  %8s\n", s, pbw[s], mbw[s], ratio(mt[s], pt[s])
      if (small == "" || s + 0 < small + 0) small = s
    }
    if (small == "") { print "compare_mpi: no common sizes in the two outputs" > "/dev/stderr"; exit 1 }
    printf "# latency at %s B (us): ppuccl %.2f  ompi %.2f  ratio %s (ppuccl/ompi, lower is better)\n",
           small, pt[small], mt[small], ratio(pt[small], mt[small])
  }' "$PPU_OUT" "$MPI_OUT"
echo "compare_mpi: raw outputs in $OUT_DIR"
