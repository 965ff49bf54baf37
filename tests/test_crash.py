"""A short version of benchmarks/crash_test.py: SIGKILL training 3 times (once mid-checkpoint), check, resume to the end.

1500 steps: on a quiet machine 200 steps of this tiny run end before a kill comes (a failure of the script).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "crash_test.py"


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_a_resumable_run(tmp_path):
    cmd = [sys.executable, str(SCRIPT), "--kills", "3", "--steps", "1500", "--checkpoint-every", "10", "--width", "128",
           "--window", "1.5", "--dir", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-2000:]
    assert out.count(": ok") == 3 and "FAILED" not in out
    assert "(1 during a checkpoint write)" in out, out
    assert "weights and optimizer state identical to an uninterrupted run" in out
    assert not list(tmp_path.rglob("*.tmp"))
