#!/usr/bin/env bash
# A collective (COLL, default allreduce; 2 ranks) side by side, ROUNDS
# times interleaved: ppuccl with
# malloc'd buffers (-R 0), ppuccl over symmetric memory windows (-R 2),
# Open MPI, and the memory bound (bound_allreduce: inputs and outputs in
# shared memory, each rank reducing its half straight into both outputs).
# (the bound: all-reduce only). Prints the median out-of-place busbw per
# size and the ratios of the median times (busbw is printed to 2 decimals).
# Environment: COLL (allreduce, or reduce broadcast allgather reduce_scatter
#   alltoall) ROUNDS (5) NP (2) MIN (64K) MAX (64M) FACTOR (4) ITERS (20)
#   BUILD_DIR (<repo>/build) PNG (a plot of the rounds' medians, if set)
# Below 64 KB give ITERS in the hundreds: with 20 (the default, sized for
# the large calls) a 4-rank all-to-all at 1 KB read 3.0-3.5x Open MPI,
# with 300 1.0-1.4x (2026-12-06).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=${BUILD_DIR:-$ROOT/build}/bin
ROUNDS=${ROUNDS:-5} NP=${NP:-2} MIN=${MIN:-64K} MAX=${MAX:-64M} FACTOR=${FACTOR:-4}
ITERS=${ITERS:-20} COLL=${COLL:-allreduce}
F=(-b "$MIN" -e "$MAX" -f "$FACTOR" -n "$ITERS" -w 5)
MPIRUN=(mpirun --oversubscribe -np "$NP")
[ "$(id -u)" -eq 0 ] && MPIRUN=(mpirun --allow-run-as-root --oversubscribe -np "$NP")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
have_mpi=0
command -v mpirun >/dev/null && [ -x "$B/mpi_${COLL}_perf" ] && have_mpi=1
for r in $(seq 1 "$ROUNDS"); do
  "$B/ppu_${COLL}_perf" -p "$NP" "${F[@]}" -R 0 -J "$out/ppu0.$r.json" >"$out/ppu0.$r" 2>&1
  "$B/ppu_${COLL}_perf" -p "$NP" "${F[@]}" -R 2 -J "$out/ppu2.$r.json" >"$out/ppu2.$r" 2>&1
  if [ $have_mpi = 1 ]; then
    "${MPIRUN[@]}" "$B/mpi_${COLL}_perf" "${F[@]}" -J "$out/mpi.$r.json" >"$out/mpi.$r" 2>&1
  fi
  if [ "$COLL" = allreduce ]; then "$B/bound_allreduce" -p "$NP" "${F[@]}" >"$out/bound.$r" 2>&1; fi
done
# busbw per size: perf rows have it in column 8 (out of place), bound rows in 5
/usr/bin/python3 - "$out" "$ROUNDS" "$NP" "$have_mpi" "$COLL" <<'EOF'
import statistics, sys
d, rounds, np, have_mpi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
coll = sys.argv[5]
def rows(kind, col):
    per = {}
    for r in range(1, rounds + 1):
        try:
            lines = open(f"{d}/{kind}.{r}").read().splitlines()
        except OSError:
            continue
        for ln in lines:
            w = ln.split()
            if not w or ln.startswith("#") or not w[0].isdigit() or len(w) <= col:
                continue
            try:
                per.setdefault(int(w[0]), []).append(float(w[col]))
            except ValueError:
                pass
    return {k: statistics.median(v) for k, v in per.items()}
p0, p2, bd = rows("ppu0", 7), rows("ppu2", 7), rows("bound", 4)
mp = rows("mpi", 7) if have_mpi else {}
# the ratios from the median times (us, 4 figures), not from busbw, which
# the tools print to 2 decimals: 0.06 GB/s at 1 KB is anything in 0.055-0.065
t0, t2, tb = rows("ppu0", 5), rows("ppu2", 5), rows("bound", 2)
tm = rows("mpi", 5) if have_mpi else {}
print(f"# {coll} float, {np} ranks, busbw GB/s, medians of {rounds} interleaved rounds; "
      f"ratios of the median times")
print(f"{'size':>10} {'ppu -R0':>8} {'ppu -R2':>8} {'ompi':>8} {'bound':>8} "
      f"{'R2/bound':>8} {'R0/bound':>8} {'R0/ompi':>8} {'R2/ompi':>8}")
def ratio(ta, tb):  # how much faster a is than b: b's time over a's
    return f"{tb / ta:8.2f}" if ta and tb else f"{'n/a':>8}"
for s in sorted(set(p0) | set(p2) | set(bd)):
    a, b, m, x = p0.get(s, 0), p2.get(s, 0), mp.get(s, 0), bd.get(s, 0)
    a_, b_, m_, x_ = t0.get(s, 0), t2.get(s, 0), tm.get(s, 0), tb.get(s, 0)
    print(f"{s:>10} {a:8.3f} {b:8.3f} {m:8.3f} {x:8.3f} {ratio(b_, x_)} {ratio(a_, x_)} "
          f"{ratio(a_, m_)} {ratio(b_, m_)}")
EOF
if [ -n "${PNG:-}" ]; then # the medians of the rounds, as in the table
  rounds() { local f=() r; for r in $(seq 1 "$ROUNDS"); do f+=("$out/$1.$r$2"); done
             local IFS=,; echo "${f[*]}"; }
  plots=("ppuccl (malloc)=$(rounds ppu0 .json)" "ppuccl (windows, -R 2)=$(rounds ppu2 .json)")
  [ $have_mpi = 1 ] && plots+=("Open MPI=$(rounds mpi .json)")
  [ "$COLL" = allreduce ] && plots+=("memory bound=$(rounds bound '')")
  /usr/bin/python3 "$ROOT/scripts/plot_compare.py" "$PNG" "$COLL float, $NP ranks" "${plots[@]}"
fi
