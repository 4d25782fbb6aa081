#!/usr/bin/env bash
# Regenerate the parameter table in README.md from src/util/param.c (through
# ppu-topo --params). With --check, only report whether it is current.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
table=$("$BUILD_DIR/bin/ppu-topo" --params)
new=$(awk -v table="$table" '
  /^\| parameter \| default \| (allowed \| )?meaning \|$/ && !done { print table; skip = 1; done = 1; next }
  skip && /^\|/ { next }
  { skip = 0; print }' "$ROOT/README.md")
if [ "${1:-}" = "--check" ]; then
  if [ "$new" != "$(cat "$ROOT/README.md")" ]; then
    echo "update_params: README.md's parameter table differs from src/util/param.c: run scripts/update_params.sh" >&2
    exit 1
  fi
  exit 0
fi
printf '%s\n' "$new" > "$ROOT/README.md"
