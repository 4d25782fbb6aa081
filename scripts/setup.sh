#!/usr/bin/env bash
# Install the Debian packages ppuccl needs to build, test and benchmark.
# Idempotent: packages already present are left alone. Uses sudo when not root.
set -euo pipefail

# python3-numpy and python3-torch belong to /usr/bin/python3: the Python
# binding, the torch.distributed backend "ppu" and their tests.
# libgloo-dev: Gloo, for the gloo_allreduce_perf comparison (compare_gloo.sh).
# libxxhash-dev: XXH3, the hash of the plan context the ranks compare at init.
# libexpat1-dev: the XML tokenizer of the topology file reader.
# libcjson-dev: ppu-sim's JSON output; python3-matplotlib: its --png plots.
PKGS=(build-essential cmake pkg-config
      libhwloc-dev libopenmpi-dev openmpi-bin libcriterion-dev
      libibverbs-dev librdmacm-dev
      python3-numpy python3-torch
      libgloo-dev libxxhash-dev libexpat1-dev libcjson-dev python3-matplotlib)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
