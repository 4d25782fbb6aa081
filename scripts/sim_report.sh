#!/usr/bin/env bash
# The timing model's report (sim/README.md): 16,384 chips (1,024 servers
# x 16, server16 wiring, rail-optimized fabric, a 50 GB/s NIC per chip),
# all-reduce and all-to-all per algorithm at 1 MB, 64 MB and 1 GB; busbw
# from 16 to 16,384 chips (a PNG); the full 8 B - 4 GB sweeps, timed; one
# check against a published figure.
#   bash scripts/sim_report.sh [OUTDIR]     (default build/sim-report)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
OUT=${1:-$BUILD_DIR/sim-report}
SIM=$BUILD_DIR/bin/ppu-sim
[ -x "$SIM" ] || bash "$ROOT/scripts/build.sh"
mkdir -p "$OUT"

# Single sizes replay up to 60 million steps (the flat tree with LL at
# 1 MB on 16,384 chips, the planner's choice there, takes 29 million); the
# timed sweeps keep ppu-sim's default budget of 20 million.
BIG=60000000
echo "## 16,384 chips: every algorithm at 1 MB, 64 MB, 1 GB"
for coll in allreduce alltoall; do
  for size in 1M 64M 1G; do
    "$SIM" --servers 1024 --coll "$coll" --algo all --proto both -b "$size" -e "$size" \
      --max-steps "$BIG" | grep -v '^# icn'
  done
done

echo
echo "## the full sweeps on 16,384 chips, 8 B to 4 GB by 4, every algorithm (timed)"
for coll in allreduce alltoall; do
  start=$(date +%s.%N)
  "$SIM" --servers 1024 --coll "$coll" --algo all -b 8 -e 4G -f 4 --json "$OUT/sweep_$coll.json" \
    > "$OUT/sweep_$coll.txt"
  end=$(date +%s.%N)
  skipped=$(grep -c 'skipped' "$OUT/sweep_$coll.txt" || true)
  rows=$(grep -vc '^#' "$OUT/sweep_$coll.txt" || true)
  printf '%s: %d rows (%d skipped over the step budget) in %.1f s; %s\n' "$coll" "$rows" \
    "$skipped" "$(echo "$end - $start" | bc)" "$(grep 'planner chose' "$OUT/sweep_$coll.txt")"
done
"$SIM" --servers 1024 --algo all --proto both -b 1K -e 4G -f 4 --png "$OUT/allreduce_16384.png" >/dev/null || true

echo
echo "## busbw from 16 to 16,384 chips (the planner's choice at each size)"
jsons=()
for s in 1 4 16 64 256 1024; do
  "$SIM" --servers "$s" --algo auto -b 1K -e 1G -f 4 --max-steps "$BIG" --json "$OUT/scale_$s.json" \
    > "$OUT/scale_$s.txt"
  jsons+=("$OUT/scale_$s.json")
  awk -v s="$s" '!/^#/ && ($1 == 1048576 || $1 == 67108864 || $1 == 1073741824) {
      if ($6 == "-")
        printf "  %5d chips  %10d B  %-9s %-6s not replayed: over the step budget\n", s * 16, $1, $9, $10
      else
        printf "  %5d chips  %10d B  %-9s %-6s busbw %7.2f GB/s  time %10.1f us\n", s * 16, $1, $9, $10, $8, $6 }' \
    "$OUT/scale_$s.txt"
done
if /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  /usr/bin/python3 "$ROOT/sim/plot_sim.py" "${jsons[0]}" "$OUT/scale_allreduce.png" "${jsons[@]:1}"
  echo "wrote $OUT/scale_allreduce.png and $OUT/allreduce_16384.png"
fi

echo
echo "## against a published figure: 8 GPUs on NVLink switches (H100: 18 links of 25 GB/s"
echo "## a direction, 450 GB/s), where NCCL's ring reaches ~82% of line rate (ANCHORS.md)"
"$SIM" --wiring switch16 --chips 8 --switch-planes 18 --icn-gbps 25 --icn-us 0.7 --simple-us 0.3 \
  --algo ring --channels 16 -b 64M -e 4G -f 8 | grep -v '^# icn'
