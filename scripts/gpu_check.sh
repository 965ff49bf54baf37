#!/usr/bin/env bash
# The GPU check in one go: prepare an environment, run the CUDA tests and the GPU benchmarks,
# and put every result into one folder ($OUT when set, else gpu-results/):
#   check.log (everything printed), pytest.log, train_bench.json, generate_bench.json, gpu.md, summary.md
#
#   bash scripts/gpu_check.sh          (exit 0 when every step passed; CUDA parts that skip count as passed)
#
# Environment: when the python (PYTHON, else python3) already imports a CUDA build of torch, or when
# there is no network, a fresh venv under $TMPDIR inherits that python's packages and gets ctrlgen
# installed without dependencies (pip --no-deps --no-build-isolation --no-index -e .): nothing is
# downloaded.  Only on a machine with an NVIDIA GPU, a network and no CUDA torch does it install the
# CUDA build of torch and onnxruntime-gpu (never next to onnxruntime) into the venv.
# On a machine without CUDA every part runs and the CUDA parts skip with a message.
# Each step has its own time limit and leaves a reserve for the steps after it; all of them together end
# by GPU_CHECK_SECONDS (default 450) after the start, so the whole check stays under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
RES="${OUT:-gpu-results}"
mkdir -p "$RES"
RES="$(cd "$RES" && pwd)"
export PYTHONUNBUFFERED=1
exec > >(tee -a "$RES/check.log") 2>&1
T0=$(date +%s)
DEADLINE=$((T0 + ${GPU_CHECK_SECONDS:-450}))
SUMMARY=()
FAILED=0

# run_step NAME SECONDS RESERVE CMD...: CMD under `timeout`, for at most SECONDS and never into the RESERVE
# seconds kept for the steps after it (nor past the deadline); its status goes into the summary.
run_step() {
  local name=$1 limit=$2 reserve=$3 left rc t status
  shift 3
  left=$((DEADLINE - $(date +%s) - reserve))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -le 5 ]; then
    echo "=== $name: skipped, the time budget is spent"
    SUMMARY+=("| $name | skipped (no time left) | 0 |")
    return 0
  fi
  echo "=== $name (limit ${limit}s) $(date -u +%H:%M:%S)"
  t=$(date +%s)
  timeout -k 10 "$limit" "$@"
  rc=$?
  status="ok"
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then status="TIMED OUT after ${limit}s"; elif [ "$rc" != 0 ]; then status="exit $rc"; fi
  [ "$status" = ok ] || FAILED=1
  echo "=== $name: $status in $(( $(date +%s) - t ))s"
  SUMMARY+=("| $name | $status | $(( $(date +%s) - t )) |")
  return 0
}

echo "=== machine"
(command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi) || echo "nvidia-smi: not available (no NVIDIA driver here)"
PY="${PYTHON:-python3}"
if ! "$PY" -c "import torch" 2>/dev/null && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
echo "python: $PY ($("$PY" -c 'import sys; print(sys.version.split()[0], sys.executable)'))"
timeout 60 "$PY" -c "import torch; print('torch', torch.__version__, '| CUDA build', torch.version.cuda, '| cuda available', torch.cuda.is_available(), '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" \
  || echo "torch: not importable with $PY"

# ---------------------------------------------------------------- environment
cuda_torch=0
timeout 60 "$PY" -c "import sys, torch; sys.exit(0 if torch.version.cuda and torch.cuda.is_available() else 1)" 2>/dev/null && cuda_torch=1
online=0
timeout 8 "$PY" -c "import urllib.request; urllib.request.urlopen('https://pypi.org/simple/pip/', timeout=6)" >/dev/null 2>&1 && online=1
gpu_here=0
command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi -L 2>/dev/null | grep -q GPU && gpu_here=1
VENV="${GPU_CHECK_VENV:-${TMPDIR:-/tmp}/ctrlgen-gpu-check-venv}"
VPY="$VENV/bin/python"
echo "cuda torch: $cuda_torch; network: $online; NVIDIA GPU: $gpu_here; venv: $VENV"

# Last resort where pip cannot build the package (an old setuptools, say): the layout of pyproject's
# package-dir (ctrlgen.train = train/, ctrlgen.serve = serve/, ctrlgen.models = models/) as links, on sys.path.
link_tree() {
  local src="$VENV/ctrlgen-src" f
  echo "pip could not install ctrlgen; linking the source tree into the venv instead"
  mkdir -p "$src/ctrlgen" || return 1
  for f in "$PWD"/ctrlgen/*; do ln -sfn "$f" "$src/ctrlgen/"; done
  ln -sfn "$PWD/train" "$src/ctrlgen/train" && ln -sfn "$PWD/serve" "$src/ctrlgen/serve" && ln -sfn "$PWD/models" "$src/ctrlgen/models" || return 1
  echo "$src" > "$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/ctrlgen-src.pth"
}

make_env() {
  rm -rf "$VENV"
  if [ "$cuda_torch" = 1 ] || [ "$online" = 0 ] || [ "$gpu_here" = 0 ]; then
    "$PY" -m venv --without-pip --system-site-packages "$VENV" || return 1
    # A venv made from a venv sees the base interpreter's packages, not the parent venv's: add the parent's.
    "$PY" -c "import site; print('\n'.join(site.getsitepackages()))" \
      > "$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/parent-site.pth" || return 1
    "$VPY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation --no-index -e . \
      || "$VPY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation --no-index . \
      || link_tree || return 1
  else
    echo "a GPU and a network but no CUDA torch: installing the CUDA build of torch and onnxruntime-gpu"
    "$PY" -m venv "$VENV" || return 1
    local pip=("$VPY" -m pip install -q --disable-pip-version-check)
    "${pip[@]}" torch --index-url https://download.pytorch.org/whl/cu128 || return 1
    "${pip[@]}" onnxruntime-gpu onnxconverter-common || return 1
    "${pip[@]}" "numpy>=1.26" "pillow>=10" "onnx>=1.16" "onnxscript>=0.3" "safetensors>=0.4" "scipy>=1.11" "typer>=0.12" rich pytest hypothesis || return 1
    "${pip[@]}" --no-deps -e . || return 1  # --no-deps: ctrlgen's own onnxruntime requirement must not come back beside onnxruntime-gpu
  fi
  "$VPY" -c "import ctrlgen, torch, onnxruntime as ort; print('ctrlgen', ctrlgen.__version__, 'from', ctrlgen.__file__); print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'cudnn', torch.backends.cudnn.version() if torch.cuda.is_available() else None); print('onnxruntime', ort.__version__, ort.get_available_providers())"
}
export -f make_env link_tree
export PY VENV VPY cuda_torch online gpu_here
run_step "environment" 120 330 bash -c make_env
if [ ! -x "$VPY" ] || ! "$VPY" -c "import ctrlgen.train" 2>/dev/null; then
  echo "=== the environment could not be made; running with $PY as it is"
  VPY="$PY"
fi

# ---------------------------------------------------------------- tests, benchmarks, report
HAS_CUDA=0
"$VPY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null && HAS_CUDA=1
[ "$HAS_CUDA" = 1 ] || echo "=== no CUDA device: the CUDA tests and benchmarks skip (each says so)"
per_test=()
"$VPY" -c "import pytest_timeout" 2>/dev/null && per_test=(--timeout 150)
run_step "pytest tests/test_gpu.py tests/test_accel.py" 240 200 bash -c \
  "set -o pipefail; '$VPY' -m pytest tests/test_gpu.py tests/test_accel.py -q -rs --durations=12 -p no:cacheprovider ${per_test[*]} 2>&1 | tee '$RES/pytest.log'"
run_step "benchmarks/train.py --device cuda" 200 85 \
  "$VPY" benchmarks/train.py --device cuda --batches 64 256 --repeats 5 --steps 20 --json "$RES/train_bench.json"
run_step "benchmarks/generate.py --device cuda" 120 15 \
  "$VPY" benchmarks/generate.py --device cuda --repeats 5 --json "$RES/generate_bench.json"
docs=()
[ "$HAS_CUDA" = 1 ] && docs=(--docs)
run_step "benchmarks/gpu_report.py" 30 0 \
  "$VPY" benchmarks/gpu_report.py "$RES/train_bench.json" "$RES/generate_bench.json" -o "$RES/gpu.md" "${docs[@]}"

# ---------------------------------------------------------------- summary
{
  echo "# scripts/gpu_check.sh summary"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $( (nvidia-smi -L 2>/dev/null || echo 'no NVIDIA GPU') | head -1); CUDA in torch: $HAS_CUDA; total $(( $(date +%s) - T0 ))s"
  echo
  echo "| step | status | seconds |"
  echo "|---|---|---:|"
  printf '%s\n' "${SUMMARY[@]}"
  echo
  echo "pytest: $(grep -E '(passed|failed|skipped|error)' "$RES/pytest.log" 2>/dev/null | tail -1)"
  echo
  grep -E '^(Fastest|Host syncs|Note)' "$RES/gpu.md" 2>/dev/null
} > "$RES/summary.md"
cat "$RES/summary.md"
echo "results in $RES: $(ls "$RES" | tr '\n' ' ')"
exit "$FAILED"  # 1 when a step failed or timed out (its results are in the folder all the same)
