#!/usr/bin/env bash
# The main job: build if needed, print the simulated server's topology,
# then run the all-reduce benchmark on 8 simulated PPUs (one process each).
# PPU_SIM_TOPO picks the server (default fullmesh8); arguments replace the
# benchmark's default flags.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
NP=${NP:-8}
bash "$ROOT/scripts/build.sh"
export PPU_SIM_TOPO=${PPU_SIM_TOPO:-fullmesh8}
"$BUILD_DIR/bin/ppu-topo" --sim "$PPU_SIM_TOPO" --ranks "$NP"
echo
# INFO from INIT: each rank says which topology, rings and transport it set up.
export PPU_DEBUG=${PPU_DEBUG:-INFO} PPU_DEBUG_SUBSYS=${PPU_DEBUG_SUBSYS:-INIT}
if [ $# -eq 0 ]; then
  set -- -b 8 -e 64M -f 2 -n 20 -w 5
fi
exec "$BUILD_DIR/bin/ppu_allreduce_perf" -p "$NP" "$@"
