#!/usr/bin/env bash
# A 1 MiB /dev/shm of its own (a private mount namespace, as Docker's
# small default would be): the first call that needs more shared memory
# fails on every rank with an error naming /dev/shm and the size needed,
# never a SIGBUS in the middle of a call. Skipped (77) without root.
set -u
bin=$1
if [ "$(id -u)" != 0 ] || ! unshare -m true 2>/dev/null; then
  echo "SKIPPED: needs root and unshare -m for a private /dev/shm"
  exit 77
fi
# (the ring: its 8 slots of 256 KB a link need 4 MiB; the two-shot the
# planner takes for two ranks fits its peer links in 1 MiB)
out=$(unshare -m bash -c "mount -t tmpfs -o size=1m tmpfs /dev/shm &&
  PPU_ALGO=ring timeout 60 '$bin/ppu_allreduce_perf' -p 2 -b 1M -e 1M -n 2 -w 1" 2>&1)
rc=$?
echo "$out" | tail -4
if [ $rc -eq 0 ]; then echo "FAIL: a 1 MB all-reduce ran on a 1 MiB /dev/shm"; exit 1; fi
if [ $rc -eq 124 ] || echo "$out" | grep -qi "signal"; then echo "FAIL: hang or signal"; exit 1; fi
if ! echo "$out" | grep -q "bytes of /dev/shm"; then
  echo "FAIL: no error naming /dev/shm and the size it needs"; exit 1
fi
echo "PASS: the call failed with an error naming /dev/shm"

# 8 ranks, a 16 MiB /dev/shm: the rank whose link does not fit names
# /dev/shm, and every other rank fails at once naming the rank that could
# not connect (a failure notice on the connect messages), instead of
# waiting PPU_TIMEOUT_MS (5 minutes by default) for it.
out=$(unshare -m bash -c "mount -t tmpfs -o size=16m tmpfs /dev/shm &&
  timeout 60 '$bin/ppu_allreduce_perf' -p 8 -b 4M -e 4M -n 2 -w 1" 2>&1)
rc=$?
echo "$out" | grep -v WARN | tail -3 | cut -c1-300
if [ $rc -eq 0 ]; then echo "FAIL: a 4 MB all-reduce on 8 ranks ran on a 16 MiB /dev/shm"; exit 1; fi
if echo "$out" | grep -q "still running"; then
  echo "FAIL: ranks were still waiting after the driver's 10 s: no failure notice reached them"
  exit 1
fi
nfail=$(echo "$out" | grep -c "ppu_allreduce (driver) failed:")
if [ "$nfail" -ne 8 ]; then echo "FAIL: $nfail of 8 ranks reported an error"; exit 1; fi
if ! echo "$out" | grep "failed:" | grep -q "bytes of /dev/shm"; then
  echo "FAIL: no rank named /dev/shm"; exit 1
fi
echo "PASS: all 8 ranks failed at once, the cause (/dev/shm) named"
