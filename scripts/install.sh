#!/usr/bin/env bash
# Install ctrlgen into ./.venv on a fresh Debian machine.
#   scripts/install.sh          the tool: Fashion-MNIST (Debian package), torch (CPU build), ctrlgen
#   scripts/install.sh --test   also the test extras and Debian chromium for the browser test
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

test_extras=0
[ "${1:-}" = "--test" ] && test_extras=1

pkgs=(dataset-fashion-mnist)
[ "$test_extras" = 1 ] && pkgs+=(chromium)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" != 0 ] && sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  }
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# The CPU build of torch first: ctrlgen's range "torch>=2.4" is then satisfied and
# pip pulls no multi-gigabyte CUDA wheels.
.venv/bin/python -c "import torch" 2>/dev/null || "${pip[@]}" torch==2.13.0
if [ "$test_extras" = 1 ]; then
  "${pip[@]}" -e ".[test]"
else
  "${pip[@]}" -e .
fi
echo "ctrlgen installed in .venv ($(.venv/bin/ctrlgen --version 2>/dev/null || echo ready))"
