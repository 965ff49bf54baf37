#!/usr/bin/env bash
# Install ctrlgen into ./.venv on a fresh Debian machine.
#   scripts/install.sh          the tool: Fashion-MNIST (Debian package), torch (CPU build), ctrlgen
#   scripts/install.sh --test   also the test extras, Debian chromium for the browser tests, and
#                               onnxruntime-web (npm, pinned) in .web-deps/ for the exported web page's test
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
# onnxruntime-web for tests/test_webpage_browser.py, the version ctrlgen.webpage.ORT_WEB_VERSION pins;
# npm's registry only, no install scripts.  Skipped (the test then skips) where npm is absent.
if [ "$test_extras" = 1 ] && [ ! -f .web-deps/node_modules/onnxruntime-web/dist/ort.min.js ]; then
  if command -v npm >/dev/null; then
    ort_web=onnxruntime-web@$(.venv/bin/python -c "from ctrlgen.webpage import ORT_WEB_VERSION as v; print(v)")
    npm install --prefix .web-deps --save-exact --no-audit --no-fund --ignore-scripts --silent "$ort_web"
  else
    echo "npm not found: apt-get install npm, then run this again for the web page test" >&2
  fi
fi
echo "ctrlgen installed in .venv ($(.venv/bin/ctrlgen --version 2>/dev/null || echo ready))"
