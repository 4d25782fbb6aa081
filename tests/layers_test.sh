#!/usr/bin/env bash
# The layers: transports/ and topology/ use src/util/ (logging, waiting,
# sockets, parameters, hashing), transports/transport.h and their own
# headers, never the core's (src/*.h). The command-line tool
# topology/ppu_topo_main.c is an application of the core and exempt.
#   tests/layers_test.sh SOURCE_ROOT
set -euo pipefail
cd "$1"
bad=0
while IFS= read -r f; do
  dir=$(dirname "$f")
  while IFS= read -r inc; do
    case "$inc" in
      ppuccl.h | util/*.h) continue ;;
    esac
    # a header of its own layer (transports/ or topology/), by relative path
    top=${f%%/*}
    real=$(realpath -m "$dir/$inc")
    if [[ -e "$real" && "$real" == "$PWD/$top/"* ]]; then continue; fi
    echo "layers_test: $f includes \"$inc\", a header outside src/util/ and transports/"
    bad=1
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
done < <(find transports topology -name '*.[ch]' ! -name ppu_topo_main.c | sort)
# util/ itself stands on nothing but the public header and itself
for f in src/util/*.[ch]; do
  while IFS= read -r inc; do
    [[ "$inc" == ppuccl.h || ( "$inc" != */* && -e src/util/$inc ) ]] && continue
    echo "layers_test: $f includes \"$inc\": src/util/ uses only itself and ppuccl.h"
    bad=1
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
done
[ $bad = 0 ] && echo "layers_test: transports/ and topology/ include only src/util/, transport.h and their own headers"
exit $bad
