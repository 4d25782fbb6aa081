#!/usr/bin/env bash
# ppu-diag status on a running job: a 4-rank all-reduce loop, rank 2
# stopped with SIGSTOP; within 5 s the health query names rank 2 as the
# one the others wait on. Then: with a short PPU_TIMEOUT_MS every rank's
# timeout logs the same picture; a junk record in /dev/shm is ignored.
# Usage: status_test.sh BUILD_BIN_DIR
set -u
bin=$1
diag=$bin/ppu-diag
py=/usr/bin/python3
tmp=$(mktemp -d)
job=
cleanup() {
  [ -n "$job" ] && kill -CONT -- -"$job" 2>/dev/null && kill -KILL -- -"$job" 2>/dev/null
  sleep 0.2
  "$diag" status --interval 0.05 >/dev/null 2>&1 # removes the records of ended jobs
  rm -f /dev/shm/ppuccl-0-1-st-00000000deadbeef-0
  rm -rf "$tmp"
}
trap cleanup EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }
if [ ! -x "$bin/ppu_allreduce_perf" ]; then
  echo "SKIPPED: $bin/ppu_allreduce_perf is not built (a build without benchmarks)"
  exit 77
fi

# pid of rank R of the one communicator with N ranks in status JSON F
pid_of() { "$py" -c 'import json,sys
cs=[c for c in json.load(open(sys.argv[1]))["communicators"] if c["nranks"]==int(sys.argv[3]) and c["ranks_here"]==int(sys.argv[3]) and all(r["alive"] for r in c["ranks"])]
print(next(r["pid"] for r in cs[0]["ranks"] if r["rank"]==int(sys.argv[2])) if len(cs)==1 else "")' "$@"; }

# the ranks the status JSON F says hold the others up, for pid P's communicator
held_by() { "$py" -c 'import json,sys
for c in json.load(open(sys.argv[1]))["communicators"]:
    if any(r["pid"]==int(sys.argv[2]) for r in c["ranks"]):
        print(" ".join(str(r["rank"]) for r in c["ranks"] if "stuck" in r))' "$@"; }

start_job() { # $1: PPU_TIMEOUT_MS; the job's output goes to $tmp/job.out
  set -m
  PPU_TIMEOUT_MS=$1 timeout 120 "$bin/ppu_allreduce_perf" -p 4 -b 1M -e 1M -n 1000000 -w 1 \
    >"$tmp/job.out" 2>&1 &
  job=$!
  set +m
  for _ in $(seq 1 100); do
    "$diag" status --interval 0.1 --json "$tmp/s.json" >/dev/null 2>&1
    p2=$(pid_of "$tmp/s.json" 2 4)
    [ -n "$p2" ] && return 0
    sleep 0.1
  done
  return 1
}

# 1. healthy: all 4 ranks seen, nobody holding the others up
start_job 60000 || { bad "the job's 4 ranks never showed in ppu-diag status"; exit 1; }
"$diag" status --json "$tmp/ok.json" >"$tmp/ok.out"
rc=$?
echo "healthy: exit $rc, held by: '$(held_by "$tmp/ok.json" "$p2")'"
[ $rc -eq 0 ] || { bad "a healthy job made status exit $rc"; cat "$tmp/ok.out"; }

# 2. rank 2 stopped: named within 5 s, as the one holding the others up
kill -STOP "$p2"
t0=$(date +%s.%N)
found=
while :; do
  "$diag" status --json "$tmp/st.json" >"$tmp/st.out"
  rc=$?
  held=$(held_by "$tmp/st.json" "$p2")
  el=$("$py" -c "print(round($(date +%s.%N) - $t0, 2))")
  if [ $rc -eq 1 ] && [ "$held" = 2 ]; then found=$el; break; fi
  "$py" -c "import sys; sys.exit(0 if $el < 5 else 1)" || break
done
sed -n '1,4p' "$tmp/st.out"
if [ -n "$found" ]; then
  echo "rank 2 stopped: named after $found s"
else
  bad "rank 2 stopped: status exit $rc, holding up: '$held' after 5 s"; cat "$tmp/st.out"
fi
grep -A1 "holding the others up" "$tmp/st.out" | grep -q "rank 2 " || bad "the text does not name rank 2 first"
# the same through a relay (ppu-diag status --serve) with a token, as from
# another host; a client without the token and one sending garbage are
# dropped, and the relay goes on serving
export HOME=$tmp/home
mkdir -p "$HOME"
"$diag" status --serve 127.0.0.1:0 --requests 2 >"$tmp/relay.out" 2>&1 &
relay_pid=$!
for _ in $(seq 1 50); do
  relay=$(sed -n 's/.* at \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$tmp/relay.out")
  [ -n "$relay" ] && break
  sleep 0.1
done
PPU_DIAG_TOKEN=not-the-token "$diag" status --addr "$relay" >/dev/null 2>&1
rc=$?
[ $rc -eq 2 ] || bad "a client with another token got an answer (exit $rc)"
head -c 200 /dev/urandom >"/dev/tcp/${relay%:*}/${relay##*:}" 2>/dev/null
"$diag" status --addr "$relay" --json "$tmp/remote.json" >"$tmp/remote.out" 2>&1
rc=$?
held=$(held_by "$tmp/remote.json" "$p2")
echo "through the relay at $relay: exit $rc, holding up: '$held'"
[ $rc -eq 1 ] && [ "$held" = 2 ] || { bad "the relay's answer does not name rank 2"; cat "$tmp/remote.out"; }
"$diag" status --addr "$relay" >/dev/null 2>&1 # its second valid request: it exits
wait "$relay_pid" 2>/dev/null
grep -c "dropped a request" "$tmp/relay.out" | grep -q 2 || bad "the relay did not drop the 2 bad requests"
kill -CONT "$p2"
kill -KILL -- -"$job" 2>/dev/null
wait "$job" 2>/dev/null
job=

# 3. a 2 s timeout with rank 2 stopped for 4 s: every other rank's timeout
# log shows rank 2 holding them up
start_job 2000 || { bad "second job never showed"; exit 1; }
kill -STOP "$p2"
sleep 4
kill -CONT "$p2"
wait "$job" 2>/dev/null
job=
n=$(grep -c "timed out; the ranks of its communicator on this host" "$tmp/job.out")
named=$(grep -A3 "timed out; the ranks of its communicator" "$tmp/job.out" | grep -A1 "holding the others up" | grep -c "rank 2 ")
echo "timeout: $n rank(s) logged the picture, $named named rank 2 first"
[ "$n" -ge 3 ] || bad "only $n of the 3 waiting ranks logged the picture at their timeout"
[ "$named" -ge 3 ] || bad "only $named pictures named rank 2"

# 4. junk in /dev/shm under a status name: skipped, no crash
head -c 4096 /dev/urandom >/dev/shm/ppuccl-0-1-st-00000000deadbeef-0
"$diag" status >"$tmp/junk.out" 2>&1
rc=$?
[ $rc -le 1 ] || bad "status exited $rc with a junk record present"
grep -q deadbeef "$tmp/junk.out" && bad "a junk record was shown"

[ $fail -eq 0 ] && echo "PASS: ppu-diag status names the stopped rank; timeouts log the same picture"
exit $fail
