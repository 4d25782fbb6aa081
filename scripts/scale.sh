#!/usr/bin/env bash
# Scale runs on this host: N forked ranks as N/16 simulated servers of 16
# chips (server16 wiring), TCP between servers, default parameters, every
# result checked. For each N and collective, one row: init time, time per
# call, peak /dev/shm use, links and TCP connections a rank holds, RSS.
#
#   bash scripts/scale.sh                 # N = 64 256 1024, five collectives
#   bash scripts/scale.sh 128             # other sizes
#   COLLS="allreduce alltoall" SIZE=1M ITERS=3 bash scripts/scale.sh 1024
#
# Links a rank holds come from PPU_SIM_STATS_FILE (the links it sent on);
# TCP connections are its network links in both directions times
# PPU_SOCKET_NSOCKS. The 1,024-rank runs take a few minutes each on 2 cores.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/build/bin}
[ -x "$BIN/ppu_allreduce_perf" ] || bash "$ROOT/scripts/build.sh" >/dev/null
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(64 256 1024)
COLLS=${COLLS:-allreduce allgather reduce_scatter broadcast alltoall}
SIZE=${SIZE:-1M}
ITERS=${ITERS:-3}
NSOCKS=${PPU_SOCKET_NSOCKS:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

printf '%6s %-15s %9s %12s %10s %10s %9s %9s %8s %6s\n' ranks collective init_s \
  "call_us" "shm_MB" "links/rk" "net/rk" "tcp/rk" "rss_MB" wrong
status=0
for n in "${SIZES[@]}"; do
  servers=$(( n >= 16 ? n / 16 : 1 ))
  for coll in $COLLS; do
    rm -f "$tmp"/links.* "$tmp/shm"
    base=$(df -k /dev/shm | awk 'NR==2{print $3}')
    # sample /dev/shm while the run lasts
    ( peak=0; while :; do u=$(df -k /dev/shm | awk 'NR==2{print $3}');
        [ "$u" -gt "$peak" ] && peak=$u && echo "$peak" > "$tmp/shm"; sleep 0.5; done ) &
    sampler=$!
    rc=0
    PPU_SIM_SERVERS=$servers PPU_SIM_TOPO=server16 PPU_SIM_STATS_FILE="$tmp/links.%r" \
      /usr/bin/time -f "maxrss %M" "$BIN/ppu_${coll}_perf" -p "$n" -b "$SIZE" -e "$SIZE" \
      -n "$ITERS" -w 1 -T 900 > "$tmp/out" 2>&1 || rc=$?
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
    peak=$(cat "$tmp/shm" 2>/dev/null || echo "$base")
    init=$(awk '/^# ppu_comm_init:/{print $5}' "$tmp/out")
    row=$(awk '$1 ~ /^[0-9]+$/ && NF >= 9 {print; exit}' "$tmp/out")
    us=$(echo "$row" | awk '{print $6}')
    wrong=$(echo "$row" | awk '{print $9}')
    rss=$(awk '/^maxrss/{printf "%.1f", $2 / 1024}' "$tmp/out")
    # links a rank sent on: lines of its stats file; network ones: kind net
    links=$(cat "$tmp"/links.* 2>/dev/null </dev/null | awk '{l[$1]++; if ($5 == "net") t[$1]++}
      END {m = 0; mt = 0; for (r in l) { if (l[r] > m) m = l[r]; if (t[r] > mt) mt = t[r] }
           print m, mt}' || true)
    maxl=${links% *}
    maxt=${links#* }
    printf '%6d %-15s %9s %12s %10.1f %10s %9s %9s %8s %6s\n' "$n" "$coll" "${init:-?}" \
      "${us:-?}" "$(( (peak - base) ))e-3" "${maxl:-?}" "${maxt:-?}" \
      "$(( ${maxt:-0} * 2 * NSOCKS ))" "${rss:-?}" "${wrong:-?}"
    if [ "$rc" -ne 0 ] || [ "${wrong:-x}" != 0 ]; then
      status=1
      echo "scale: $n ranks, $coll: exit $rc" >&2
      grep -v '^#  Rank' "$tmp/out" | tail -6 >&2
    fi
  done
done
exit $status
