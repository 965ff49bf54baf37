#!/usr/bin/env bash
# scripts/gpu_sweep.py on a bare GPU machine with no network (the device tool's): a venv over the machine's
# CUDA torch with ctrlgen installed without dependencies (as scripts/gpu_check.sh makes it), Fashion-MNIST
# from .gpudata/ when the machine has no Debian package, and CUDA MPS where the driver has it, so that the
# many small training processes share the GPU's multiprocessors instead of taking turns.
#   bash scripts/gpu_sweep.sh [gpu_sweep.py options]      (results into $OUT, else gpu-sweep/)
set -uo pipefail
cd "$(dirname "$0")/.."
RES="${OUT:-gpu-sweep}"
mkdir -p "$RES"
exec > >(tee -a "$RES/sweep.log") 2>&1
nvidia-smi -L; nproc; date -u
PY=python3
# An existing .venv (this project's own, say) is used as it is, never rebuilt: scripts/ship_model.sh runs .venv/bin/ctrlgen.
if [ ! -e .venv ]; then
  "$PY" -m venv --without-pip --system-site-packages .venv || exit 1
  "$PY" -c "import site; print('\n'.join(site.getsitepackages()))" \
    > "$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/parent-site.pth"
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation --no-index -e . || exit 1
fi
.venv/bin/python -c "import ctrlgen, torch, onnxruntime; print('ctrlgen', ctrlgen.__file__, 'torch', torch.__version__, torch.cuda.is_available())"
[ -d .gpudata ] && export CTRLGEN_FASHION_MNIST="$PWD/.gpudata"
if [ "${SWEEP_MPS:-1}" = 1 ] && command -v nvidia-cuda-mps-control >/dev/null; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  if nvidia-cuda-mps-control -d && timeout 60 .venv/bin/python -c "import torch; x = torch.ones(4, device='cuda'); print('MPS client ok', float(x.sum()))"; then
    echo "CUDA MPS on"
  else
    echo "CUDA MPS did not work; without it"
    echo quit | timeout 10 nvidia-cuda-mps-control; sleep 1
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
  fi
else
  echo "CUDA MPS: not used"
fi
.venv/bin/python scripts/gpu_sweep.py --out "$RES" "$@"
