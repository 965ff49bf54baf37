#!/usr/bin/env bash
# Install ctrlgen into ./.venv on a fresh Debian machine.
#   scripts/install.sh          the tool: Fashion-MNIST (Debian package), torch (CPU build), ctrlgen
#   scripts/install.sh --test   also the test extras, Debian chromium for the browser tests, and
#                               onnxruntime-web (npm, pinned) in .web-deps/ for the exported web page's test
#   scripts/install.sh --gpu    onnxruntime-gpu instead of onnxruntime (ctrlgen generate --device cuda);
#                               combine with --test as you like
# Safe to run again: it only installs what is missing.  CTRLGEN_INSTALL_DRY_RUN=1 prints the commands instead.
set -euo pipefail
cd "$(dirname "$0")/.."

test_extras=0
gpu=0
for arg in "$@"; do
  case "$arg" in
    --test) test_extras=1 ;;
    --gpu) gpu=1 ;;
    *) echo "unknown option $arg; use --test and/or --gpu" >&2; exit 2 ;;
  esac
done
run() { if [ "${CTRLGEN_INSTALL_DRY_RUN:-0}" = 1 ]; then echo "+ $*"; else "$@"; fi; }

pkgs=(dataset-fashion-mnist)
[ "$test_extras" = 1 ] && pkgs+=(chromium)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ] && [ "${CTRLGEN_INSTALL_DRY_RUN:-0}" = 1 ]; then
  echo "+ apt-get install -y ${missing[*]}"
elif [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" != 0 ] && sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  }
fi

[ -x .venv/bin/python ] || run python3 -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# The CPU build of torch first: ctrlgen's range "torch>=2.4" is then satisfied and
# pip pulls no multi-gigabyte CUDA wheels.
if [ "$gpu" = 1 ]; then
  # PyPI's Linux torch wheel is the CUDA build; a CPU build already here stays (it says how to swap it).
  .venv/bin/python -c "import torch" 2>/dev/null || run "${pip[@]}" torch
else
  .venv/bin/python -c "import torch" 2>/dev/null || run "${pip[@]}" torch==2.13.0
  # onnxruntime and onnxruntime-gpu share one folder: a CPU install after a --gpu one swaps back.
  if .venv/bin/python -m pip show -q onnxruntime-gpu >/dev/null 2>&1; then run .venv/bin/python -m pip uninstall -y -q onnxruntime-gpu onnxruntime; fi
fi
if [ "$test_extras" = 1 ]; then
  run "${pip[@]}" -e ".[test]"
else
  run "${pip[@]}" -e .
fi
if [ "$gpu" = 1 ]; then
  # ctrlgen's dependency brought onnxruntime (CPU); the two packages share one folder, so never both:
  # remove every copy, then install the GPU build alone.
  run .venv/bin/python -m pip uninstall -y -q onnxruntime onnxruntime-gpu
  run "${pip[@]}" onnxruntime-gpu
  [ "${CTRLGEN_INSTALL_DRY_RUN:-0}" = 1 ] || .venv/bin/python - <<'PY'
import onnxruntime as ort, torch
print("onnxruntime", ort.__version__, "providers:", ", ".join(ort.get_available_providers()))
if torch.version.cuda is None:
    print(f"torch {torch.__version__} is a CPU build; for CUDA training: .venv/bin/python -m pip install --force-reinstall torch --index-url https://download.pytorch.org/whl/cu128")
PY
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
