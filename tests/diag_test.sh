#!/usr/bin/env bash
# ppu-diag against faults injected into the simulated cluster: it must name
# exactly the bad link, the link that is down, the slow pair of ranks
# between servers, and nothing on a healthy cluster; exit 0 / 1 / 2.
# Usage: diag_test.sh BUILD_BIN_DIR
set -u
bin=$1
diag=$bin/ppu-diag
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# findings of a JSON result as "kind where" lines
findings() { "$py" -c 'import json,sys
for f in json.load(open(sys.argv[1]))["findings"]: print(f["kind"], f["where"])' "$1"; }

# 1. healthy fullmesh8 against its expected wiring: exit 0, no findings,
# every one of the 56 directed links measured; its median sets the slow
# link's limit below.
timeout 120 "$diag" -p 8 --expect-sim fullmesh8 --json "$tmp/ok.json" --png "$tmp/ok.png" \
  >"$tmp/ok.out" 2>&1
rc=$?
tail -3 "$tmp/ok.out"
[ $rc -eq 0 ] || bad "healthy fullmesh8 exited $rc: $(findings "$tmp/ok.json" 2>/dev/null | head -3)"
[ -s "$tmp/ok.png" ] || bad "no heatmap written"
n=$("$py" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["checks"]["icn"]["links"]))' \
  "$tmp/ok.json" 2>/dev/null)
[ "$n" = 56 ] || bad "healthy run measured ${n:-no} ICN links, not 56"
med=$("$py" -c 'import json,sys,statistics
print(statistics.median(l["best_gbps"] for l in json.load(open(sys.argv[1]))["checks"]["icn"]["links"]))' \
  "$tmp/ok.json")
echo "healthy median link: $med GB/s"

# A fault case: expect_case NAME FINDINGS ENV... -- ARGS...: ppu-diag with
# ENV set and ARGS must exit 1 with exactly FINDINGS ("kind where;"
# sorted); its output is $tmp/NAME.out.
expect_case() {
  local name=$1 want=$2 envs=()
  shift 2
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" timeout 120 "$diag" "$@" --json "$tmp/$name.json" >"$tmp/$name.out" 2>&1
  local rc=$? got
  got=$(findings "$tmp/$name.json" 2>/dev/null | sort | tr '\n' ';')
  echo "$name: exit $rc, findings: $got"
  [ $rc -eq 1 ] || bad "$name: exit $rc, not 1"
  [ "$got" = "$want" ] || bad "$name: findings '$got', want exactly '$want'"
}

# 2. link 2->6 limited to an eighth of the healthy run's median: exactly
# that link. ppu-diag flags a link below half the median of its own run;
# with a quarter, a run on a host at half the healthy run's speed (2
# cores, 8 ranks) flagged nothing (once, 2026-12-06: healthy median 23.6
# GB/s, limit 5.9); an eighth needs the host four times slower.
q=$("$py" -c "print(round($med / 8, 3))")
expect_case slow_link "slow_link 2->6;" PPU_SIM_FAULT=link=2-6:gbps=$q -- \
  -p 8 --expect-sim fullmesh8 --checks topo,icn

# 2b. every message on link 3->5 delayed 300 us: its latency (one way, so
# not 5->3) and, since every chunk waits, its bandwidth
expect_case late_link "high_latency 3->5;slow_link 3->5;" PPU_SIM_FAULT=link=3-5:delay_us=300 \
  -- -p 8 --checks icn

# 3. link 2-6 down against the expected fullmesh8: named as down, both ways.
expect_case link_down "link_down 2->6;link_down 6->2;" PPU_SIM_LINKS_DOWN=2-6 -- \
  -p 8 --expect-sim fullmesh8 --checks topo,icn
grep -q "  D" "$tmp/link_down.out" || bad "link down: no D in the matrix"

# 3b. link 2->6 up in the wiring but carrying nothing: the run ends fast
# with the link named from the failed ranks' own errors
PPU_SIM_FAULT=link=2-6:down@op=0 timeout 60 "$diag" -p 8 --checks icn --json "$tmp/dead.json" \
  >"$tmp/dead.out" 2>&1
rc=$?
got=$(findings "$tmp/dead.json" 2>/dev/null | sort | tr '\n' ';')
echo "dead link: exit $rc, findings: $got"
[ $rc -eq 1 ] || bad "dead link: exit $rc, not 1"
case "$got" in *"link_dead 2->6;"*) ;; *) bad "dead link: 2->6 not named: '$got'" ;; esac

# 4. 2 servers x 4, the network path 1->5 slowed: the pair and its servers.
expect_case slow_network "slow_network rank 1 -> rank 5;" PPU_SIM_SERVERS=2 \
  PPU_SIM_FAULT=link=1-5:gbps=0.2 -- -p 8 --checks net
grep "slow_network" "$tmp/slow_network.out" | grep -q "(server 0) -> rank 5 (server 1)" ||
  bad "slow network: the servers are not named"

# 5. a topology file with ports: discovery (PPU_TOPO_FILE) lacks link 1-2
# that --expect has; both directions named missing, with their ports
mesh4() { # $1: links to leave out
  echo '<ppu_topology version="1" name="mesh4" ports_per_chip="3"><server id="0">'
  for c in 0 1 2 3; do echo "<chip id=\"$c\"/>"; done
  echo "<nic name=\"mlx5_0\" chip=\"${nic_chip:-0}\" rdma=\"1\"/>"
  echo '</server>'
  for l in "0 1 0 0" "0 2 1 0" "0 3 2 0" "1 2 1 1" "1 3 2 1" "2 3 2 2"; do
    set -- $l
    [ "$1-$2" = "${skip:-}" ] && continue
    echo "<link a=\"$1\" b=\"$2\" port_a=\"$3\" port_b=\"$4\"/>"
  done
  echo '</ppu_topology>'
}
skip= mesh4 >"$tmp/want.xml"
skip=1-2 mesh4 >"$tmp/got.xml"
skip= nic_chip=2 mesh4 >"$tmp/nic.xml"
expect_case topo_file "link_missing 1->2;link_missing 2->1;" PPU_TOPO_FILE="$tmp/got.xml" -- \
  -p 4 --expect "$tmp/want.xml" --checks topo
grep -q "link 1->2 (server 0, port 1): found none, expected up" "$tmp/topo_file.out" ||
  bad "topology file: the missing link's port is not named"
# the NIC serving chip 2 where chip 0 was expected: its rail is elsewhere
expect_case nic_locality "nic_locality server 0;" PPU_TOPO_FILE="$tmp/nic.xml" -- \
  -p 4 --expect "$tmp/want.xml" --checks topo

# 6. could not run: exit 2 with the reason
timeout 30 "$diag" -p 2 --expect /nonexistent.xml >"$tmp/e.out" 2>&1
rc=$?
[ $rc -eq 2 ] || bad "--expect of a missing file exited $rc, not 2"
grep -q "could not run" "$tmp/e.out" || bad "--expect of a missing file: no reason given"
for a in "--threshold 2" "--bytes 0" "--passes 99" "--checks bogus" "-p 0"; do
  timeout 10 "$diag" $a >/dev/null 2>&1
  rc=$?
  [ $rc -eq 2 ] || bad "ppu-diag $a exited $rc, not 2"
done

[ $fail -eq 0 ] && echo "PASS: ppu-diag names every injected fault and nothing else"
exit $fail
