#!/usr/bin/env bash
# Compare a ppuccl collective with Open MPI's on one machine (all-reduce by
# default: ppu_allreduce vs MPI_Allreduce).
#
# Runs build/bin/ppu_COLL_perf -p NP and
# mpirun -np NP build/bin/mpi_COLL_perf with the same flags, keeps both
# raw outputs in OUT_DIR, and prints out-of-place bus bandwidth per size with
# the ratio ppuccl/ompi, plus the latency at the smallest size.
#
# Environment (defaults): COLL (allreduce; or broadcast reduce allgather
#   reduce_scatter alltoall sendrecv) NP (2) MIN (8) MAX (64M) ITERS (20)
#   FACTOR (2) WARMUP (5) DTYPE (float) OP (sum, ignored by collectives
#   without one) BUILD_DIR (<repo>/build) OUT_DIR (BUILD_DIR/compare)
#   EXTRA_FLAGS (more flags for both programs, e.g. "-r 1" for the root)
#   PPU_ENV (NAME=VALUE words for ppuccl, e.g. "PPU_NET=socket
#   PPU_SIM_SERVERS=4": every rank its own server, links over TCP)
#   MPIRUN_ARGS (more mpirun arguments, e.g. "--mca btl tcp,self": Open MPI
#   over TCP only, the match of the PPU_ENV above) PNG (the plot,
#   OUT_DIR/compare_COLL.png)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
COLL=${COLL:-allreduce} NP=${NP:-2} MIN=${MIN:-8} MAX=${MAX:-64M} ITERS=${ITERS:-20}
FACTOR=${FACTOR:-2} WARMUP=${WARMUP:-5} DTYPE=${DTYPE:-float} OP=${OP:-sum}
OUT_DIR=${OUT_DIR:-$BUILD_DIR/compare}

die() { echo "compare_mpi: $*" >&2; exit 1; }
# TITLE names the collective in the table; REDUCES: whether OP applies.
case $COLL in
  allreduce) TITLE=all-reduce REDUCES=1 ;;
  broadcast) TITLE=broadcast REDUCES=0 ;;
  reduce) TITLE=reduce REDUCES=1 ;;
  allgather) TITLE=all-gather REDUCES=0 ;;
  reduce_scatter) TITLE=reduce-scatter REDUCES=1 ;;
  alltoall) TITLE=all-to-all REDUCES=0 ;;
  sendrecv) TITLE=sendrecv REDUCES=0 ;;
  *) die "unknown COLL '$COLL': allreduce broadcast reduce allgather reduce_scatter alltoall sendrecv" ;;
esac
PPU_BIN=$BUILD_DIR/bin/ppu_${COLL}_perf
MPI_BIN=$BUILD_DIR/bin/mpi_${COLL}_perf
for b in "$PPU_BIN" "$MPI_BIN"; do
  [ -x "$b" ] || die "$b is missing: build first (cmake -S . -B build && cmake --build build)"
done
command -v mpirun >/dev/null || die "mpirun not found: install Open MPI (scripts/setup.sh)"

# shellcheck disable=SC2206  # EXTRA_FLAGS is split on purpose
FLAGS=(-b "$MIN" -e "$MAX" -f "$FACTOR" -n "$ITERS" -w "$WARMUP" -d "$DTYPE" -o "$OP" ${EXTRA_FLAGS:-})
MPIRUN=(mpirun --oversubscribe -np "$NP")
[ "$(id -u)" -eq 0 ] && MPIRUN=(mpirun --allow-run-as-root --oversubscribe -np "$NP")
# shellcheck disable=SC2206  # MPIRUN_ARGS is split on purpose
MPIRUN+=(${MPIRUN_ARGS:-})
read -r -a ENV_WORDS <<<"${PPU_ENV:-}"
for w in ${ENV_WORDS[@]+"${ENV_WORDS[@]}"}; do
  [[ $w =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "PPU_ENV: '$w' is not NAME=VALUE"
done

mkdir -p "$OUT_DIR"
PPU_OUT=$OUT_DIR/ppuccl_${COLL}.txt
MPI_OUT=$OUT_DIR/ompi_${COLL}.txt

echo "compare_mpi: ${ENV_WORDS[*]+${ENV_WORDS[*]} }$PPU_BIN -p $NP ${FLAGS[*]}"
rc=0; env ${ENV_WORDS[@]+"${ENV_WORDS[@]}"} "$PPU_BIN" -p "$NP" "${FLAGS[@]}" -J "$PPU_OUT.json" >"$PPU_OUT" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { tail -n 20 "$PPU_OUT" >&2; die "ppu_${COLL}_perf failed (exit $rc); full output: $PPU_OUT"; }
echo "compare_mpi: ${MPIRUN[*]} $MPI_BIN ${FLAGS[*]}"
rc=0; "${MPIRUN[@]}" "$MPI_BIN" "${FLAGS[@]}" -J "$MPI_OUT.json" >"$MPI_OUT" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { tail -n 20 "$MPI_OUT" >&2; die "mpi_${COLL}_perf failed (exit $rc); full output: $MPI_OUT"; }

# Rows: size count type redop root | time algbw busbw #wrong (out-of-place) | in-place
# (the in-place columns of alltoall and sendrecv are N/A: only out-of-place is used)
what="$TITLE $DTYPE"
if [ "$REDUCES" -eq 1 ]; then what="$what $OP"; fi
awk -v np="$NP" -v what="$what" '
  function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "n/a" }
  /^#/ || NF < 13 { next }
  FNR == NR { if (!($1 in pbw)) order[n++] = $1; pbw[$1] = $8; pt[$1] = $6; next }
  { mbw[$1] = $8; mt[$1] = $6 }
  END {
    printf "# %s, %d ranks: out-of-place bus bandwidth (GB/s)\n", what, np
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
# busbw against size, both beside each other (PNG, default OUT_DIR/compare_COLL.png)
PNG=${PNG:-$OUT_DIR/compare_${COLL}.png}
/usr/bin/python3 "$ROOT/scripts/plot_compare.py" "$PNG" "$TITLE $DTYPE, $NP ranks" \
  "ppuccl=$PPU_OUT.json" "Open MPI=$MPI_OUT.json" || echo "compare_mpi: no plot (matplotlib?)" >&2
echo "compare_mpi: raw outputs in $OUT_DIR"
