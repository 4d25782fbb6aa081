#!/usr/bin/env bash
# How often ppu-diag flags something on a healthy simulated cluster: N runs
# (default 20) each of fullmesh8 (8 ranks), server16 (16 ranks), 2
# servers x 4 and 4 servers x 4; prints every run's verdict and time, then the false-finding
# counts. Usage: scripts/diag_healthy.sh [N]
set -u
cd "$(dirname "$0")/.."
n=${1:-20}
diag=build/bin/ppu-diag
[ -x $diag ] || bash scripts/build.sh >/dev/null
declare -A flagged
for shape in fullmesh8 server16 2x4 4x4; do
  flagged[$shape]=0
  for i in $(seq 1 "$n"); do
    case $shape in
      fullmesh8) out=$(timeout 120 $diag -p 8 --expect-sim fullmesh8 2>&1); rc=$? ;;
      server16) out=$(timeout 120 $diag -p 16 --expect-sim server16 2>&1); rc=$? ;;
      2x4) out=$(PPU_SIM_SERVERS=2 timeout 120 $diag -p 8 2>&1); rc=$? ;;
      4x4) out=$(PPU_SIM_SERVERS=4 timeout 120 $diag -p 16 2>&1); rc=$? ;;
    esac
    t=$(echo "$out" | sed -n 's/^# [0-9]* ranks, \(.*\) s$/\1/p')
    echo "$shape run $i: exit $rc, ${t:-?} s"
    if [ $rc -ne 0 ]; then
      flagged[$shape]=$((flagged[$shape] + 1))
      echo "$out" | sed -n '/== verdict/,$p' | head -6
    fi
  done
done
for shape in fullmesh8 server16 2x4 4x4; do
  echo "$shape: ${flagged[$shape]} of $n healthy runs flagged something"
done
