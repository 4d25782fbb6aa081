#!/usr/bin/env bash
# ppu-sim as a user runs it: rows, --json, --stats, --png (when matplotlib
# is there), and clear errors for bad flags.
set -euo pipefail
SIM=${1:?usage: sim_cli_test.sh path/to/ppu-sim}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "sim_cli_test: $*" >&2; exit 1; }

"$SIM" --servers 4 --algo all -b 1K -e 4M -f 16 --json "$T/r.json" --stats "$T/s.txt" >"$T/out"
grep -q "^# ppu-sim allreduce: 64 rank(s), 4 server(s) x 16 chip(s)" "$T/out" || fail "no header"
rows=$(grep -vc '^#' "$T/out")
[ "$rows" -ge 8 ] || fail "expected rows for 3 sizes x several algorithms, got $rows"
grep -q "planner chose the model's fastest" "$T/out" || fail "no planner summary"
/usr/bin/python3 - "$T/r.json" <<'PY' || fail "bad JSON"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["params"]["ranks"] == 64 and len(d["rows"]) >= 8
for r in d["rows"]:
    if "time_us" in r:
        assert r["time_us"] > 0 and r["time_us"] >= r["bound_bw_us"] * 0.999999
PY
# every line: src dst bytes messages kind, the 64 ranks' links
awk 'NF != 5 || $1 < 0 || $1 >= 64 || $2 < 0 || $2 >= 64 || $1 == $2 { bad = 1 } END { exit bad }' \
    "$T/s.txt" || fail "malformed --stats lines"
grep -q " net$" "$T/s.txt" || fail "no network link in a 4-server all-reduce"
# processes side by side change nothing but the wall times: rows, stats
"$SIM" --servers 4 --algo all -b 1K -e 4M -f 16 --stats "$T/s3.txt" --jobs 3 >"$T/out3"
strip() { sed -e 's/\[[0-9.]*s\]//' -e '/row(s) in/d' "$1"; }
[ "$(strip "$T/out")" = "$(strip "$T/out3")" ] || fail "--jobs 3 gave other rows than the default"
cmp -s "$T/s.txt" "$T/s3.txt" || fail "--jobs 3 gave other --stats lines"
"$SIM" --servers 4 --algo all -b 1K -e 4M -f 16 --jobs 1 >"$T/out1"
[ "$(strip "$T/out")" = "$(strip "$T/out1")" ] || fail "--jobs 1 gave other rows than the default"
# --explain: the planner's estimates, a line a size, naming the algorithm it chose
"$SIM" --servers 4 -b 1K -e 4M -f 16 --explain >"$T/ex"
[ "$(grep -c '^# planner at [0-9]* B: ring/simple [0-9.]*us' "$T/ex")" = 4 ] ||
    fail "--explain: expected 4 planner lines (1K-4M by 16): $(cat "$T/ex")"
while read -r size algo; do
    grep -q "^# planner at $size B: .*$algo/" "$T/ex" || fail "--explain at $size B does not price $algo"
done < <(grep -v '^#' "$T/ex" | awk '{print $1, $9}')
# a ring all-to-all on 512 ranks is replayed; past 512 it does not apply
"$SIM" --servers 32 --coll alltoall --algo ring -b 64K -e 64K >"$T/a2a"
grep -q "^ *65536 .* ring " "$T/a2a" || fail "no ring all-to-all row at 512 ranks: $(cat "$T/a2a")"
"$SIM" --servers 33 --coll alltoall --algo ring -b 64K -e 64K >"$T/a2a"
grep -q "^# [0-9]* B: ring does not apply to alltoall on 528 ranks" "$T/a2a" ||
    fail "ring all-to-all on 528 ranks: $(cat "$T/a2a")"
if /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
    "$SIM" --wiring fullmesh8 --algo all -b 1K -e 1M --png "$T/p.png" >/dev/null
    [ -s "$T/p.png" ] || fail "no PNG"
else
    echo "sim_cli_test: matplotlib missing, --png not checked (scripts/setup.sh installs it)"
fi
# bad input: exit 2 and a sentence naming the flag
for bad in "--servers 0" "--coll scan" "--algo fast" "--fabric torus" "-b 1X" "--oversub 0.5" "--jobs 0"; do
    # shellcheck disable=SC2086
    if "$SIM" $bad >/dev/null 2>"$T/err"; then fail "'$bad' was accepted"; fi
    flag=${bad%% *}
    grep -q -- "$flag" "$T/err" || fail "'$bad': the error does not name $flag: $(cat "$T/err")"
done
echo "sim_cli_test: ok"
