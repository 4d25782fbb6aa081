#!/usr/bin/env bash
# libppuccl.so exports exactly the API: every function ppuccl.h declares
# with PPU_API, and no other defined symbol (internal ones stay hidden, so
# an application cannot link against them by accident and the library may
# change them freely).
#   tests/exports_test.sh build/lib/libppuccl.so include/ppuccl.h
set -euo pipefail
lib=$1 header=$2
command -v nm >/dev/null || { echo "exports_test: nm not found (binutils)"; exit 77; }
want=$(grep -oE '^PPU_API [^(]*\bppu_[a-z0-9_]+\(' "$header" | grep -oE 'ppu_[a-z0-9_]+\($' |
       tr -d '(' | sort -u)
# defined dynamic symbols: functions (T) and data (D, B, R); versions and
# the linker's own _init/_fini-style symbols are not ours
have=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' |
       grep -vE '^(_init|_fini|_edata|_end|__bss_start)$' | sort -u)
[ -n "$want" ] || { echo "exports_test: no PPU_API declarations found in $header"; exit 1; }
extra=$(comm -13 <(echo "$want") <(echo "$have"))
missing=$(comm -23 <(echo "$want") <(echo "$have"))
rc=0
if [ -n "$extra" ]; then
  echo "exports_test: $lib exports symbols that are not the API:"; echo "$extra" | sed 's/^/  /'
  rc=1
fi
if [ -n "$missing" ]; then
  echo "exports_test: API functions of $header that $lib does not export:"
  echo "$missing" | sed 's/^/  /'
  rc=1
fi
[ $rc = 0 ] && echo "exports_test: $lib exports the $(echo "$want" | wc -l) API functions and nothing else"
exit $rc
