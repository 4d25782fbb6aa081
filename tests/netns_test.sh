#!/usr/bin/env bash
# Real separate hosts on one machine: two network namespaces joined by a
# veth pair (10.211.7.1 and 10.211.7.2, addresses of our own), two ranks in
# each, rank 0's bootstrap root in the first. Every link between the two
# "hosts" goes over TCP through the veth pair (PPU_NET=socket); each
# collective's benchmark (all-reduce, all-gather, reduce-scatter, all-to-all,
# broadcast, reduce, send/recv) checks every result. Everything made here is removed
# on exit, also on failure. Exit 77 (skipped, with the reason) when
# namespaces cannot be made (not root, no ip command, no permission).
set -uo pipefail
BIN=${1:?usage: netns_test.sh BUILD_BIN_DIR}
PERF=$BIN/ppu_allreduce_perf
COLLS=(allreduce allgather reduce_scatter alltoall broadcast reduce sendrecv)
NS_A=ppuccl_test_a_$$ NS_B=ppuccl_test_b_$$
VETH_A=ppuva$$ VETH_B=ppuvb$$
ADDR_A=10.211.7.1 ADDR_B=10.211.7.2 PORT=$((20000 + $$ % 20000))

skip() { echo "SKIPPED: netns test: $*"; exit 77; }
[ -x "$PERF" ] || skip "$PERF is not built"
[ "$(id -u)" -eq 0 ] || skip "needs root to create network namespaces"
command -v ip >/dev/null || skip "no ip command (iproute2)"

cleanup() {
  [ -n "${PIDS:-}" ] && kill $PIDS 2>/dev/null
  ip netns del "$NS_A" 2>/dev/null
  ip netns del "$NS_B" 2>/dev/null
  ip link del "$VETH_A" 2>/dev/null
  rm -rf "$TMP"
}
TMP=$(mktemp -d)
trap cleanup EXIT
trap 'exit 1' INT TERM

ip netns add "$NS_A" 2>"$TMP/err" || skip "ip netns add failed: $(cat "$TMP/err")"
ip netns add "$NS_B" || exit 1
ip link add "$VETH_A" type veth peer name "$VETH_B" || skip "cannot create a veth pair"
ip link set "$VETH_A" netns "$NS_A" && ip link set "$VETH_B" netns "$NS_B" || exit 1
ip -n "$NS_A" addr add "$ADDR_A/24" dev "$VETH_A" && ip -n "$NS_B" addr add "$ADDR_B/24" dev "$VETH_B" || exit 1
for ns in "$NS_A" "$NS_B"; do
  ip -n "$ns" link set lo up
done
ip -n "$NS_A" link set "$VETH_A" up && ip -n "$NS_B" link set "$VETH_B" up || exit 1

# 4 ranks: 0,1 on host A, 2,3 on host B; two simulated servers, one per host.
run_coll() { # collective, bootstrap port
  local coll=$1 port=$2 rc=0
  local common=(PPU_ROOT_ADDR=$ADDR_A:$port PPU_WORLD_SIZE=4 PPU_NET=socket PPU_SIM_SERVERS=2
                PPU_BOOTSTRAP_SECRET=netns-test-$$ PPU_TIMEOUT_MS=60000
                PPU_BOOTSTRAP_TIMEOUT_MS=30000)
  PIDS=""
  for r in 0 1 2 3; do
    if [ "$r" -lt 2 ]; then ns=$NS_A ifname=$VETH_A; else ns=$NS_B ifname=$VETH_B; fi
    ip netns exec "$ns" env "${common[@]}" PPU_RANK=$r PPU_SOCKET_IFNAME="$ifname" \
      PPU_SIM_STATS_FILE="$TMP/links.$coll.%r" \
      "$BIN/ppu_${coll}_perf" -b 8 -e 4M -f 8 -n 3 -w 1 >"$TMP/$coll.rank$r.log" 2>&1 &
    PIDS="$PIDS $!"
  done
  for p in $PIDS; do
    wait "$p" || rc=1
  done
  PIDS=""
  if [ $rc -ne 0 ] || ! grep -q "Out of bounds values : 0 OK" "$TMP/$coll.rank0.log"; then
    cat "$TMP/$coll.rank0.log"
    for r in 1 2 3; do echo "--- $coll rank $r"; tail -n 20 "$TMP/$coll.rank$r.log"; done
    echo "netns test: $coll FAILED"
    return 1
  fi
  # bytes between the hosts went over the network links
  local net
  net=$(cat "$TMP"/links.$coll.* 2>/dev/null | awk '$5 == "net" { b += $3 } END { print b + 0 }')
  echo "netns test: $coll: results checked, $net bytes over the network between the hosts"
  [ "$net" -gt 0 ] || { echo "netns test: $coll FAILED: no bytes crossed the network"; return 1; }
}
cat_first=1
fail=0
i=0
for coll in "${COLLS[@]}"; do
  [ -x "$BIN/ppu_${coll}_perf" ] || { echo "netns test: $coll: not built, skipped"; continue; }
  run_coll "$coll" $((PORT + i)) || fail=1
  if [ $cat_first -eq 1 ]; then cat "$TMP/$coll.rank0.log"; cat_first=0; fi
  i=$((i + 1))
done
[ $fail -eq 0 ] || { echo "netns test: FAILED"; exit 1; }
echo "netns test: passed"
