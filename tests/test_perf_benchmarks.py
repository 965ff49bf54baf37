"""benchmarks/generate.py and benchmarks/train.py run end to end in --quick mode and print their tables."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import needs_fashion

ROOT = Path(__file__).resolve().parents[1]


def run_quick(script: str) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--threads", "1"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.slow
def test_generate_benchmark_quick():
    out = run_quick("generate.py")
    assert "# machine:" in out and "fp32" in out and "GFLOP/s" in out and "MFLOP per sample" in out
    for path in ("torch fp32", "torch bf16", "ort fp32", "ort fp32 sub-pixel", "ort int8", "cli fp32", "cli int8"):
        assert f"| {path} |" in out, out
    rows = [line for line in out.splitlines() if line.startswith("| ort int8 |")]
    assert len(rows) == 3 and rows[1].endswith("x |") and rows[2].endswith("x |")  # samples/s, ratio, and the alone table
    assert "ONNX Runtime alone" in out and "the fp32 rate below is the best of them" in out


@needs_fashion
@pytest.mark.slow
def test_train_benchmark_quick():
    out = run_quick("train.py")
    for path in ("cgan fp32 (amp=off)", "cgan default (amp=auto: ", "reference plain DCGAN fp32"):
        assert f"| {path}" in out, out
    assert "| reference plain DCGAN fp32 | " in out and "| 1.00x |" in out and "index gather" in out
