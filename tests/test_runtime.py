"""Runtime providers and threads, and streaming big jobs in bounded memory."""

import subprocess
import sys
import textwrap

import numpy as np
import onnxruntime as ort
import pytest

from ctrlgen.errors import CtrlgenError
from ctrlgen.runtime import CPU, CUDA, Runtime, choose_providers


def test_choose_providers():
    assert choose_providers("auto", [CUDA, CPU]) == [[CUDA, CPU], [CPU]]
    assert choose_providers("auto", [CPU]) == [[CPU]]
    assert choose_providers("cpu", [CUDA, CPU]) == [[CPU]]
    assert choose_providers("cuda", [CUDA, CPU]) == [[CUDA, CPU], [CPU]]
    with pytest.raises(CtrlgenError, match="no CUDA provider; install onnxruntime-gpu or use --device cpu"):
        choose_providers("cuda", [CPU])
    with pytest.raises(CtrlgenError, match="device 'gpu' is unknown"):
        choose_providers("gpu", [CPU])


def test_listed_but_unloadable_cuda_falls_back_on_auto_and_fails_clearly_on_cuda(tiny_models, monkeypatch):
    """onnxruntime-gpu without working CUDA lists the provider, then runs on CPU: auto must work, cuda must say so."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    rt = Runtime.from_file(tiny_models["ring8"], device="auto")
    assert rt.providers == [CPU] and rt(**rt.inputs(3, seed=0)).shape == (3, 2)
    with pytest.raises(CtrlgenError, match="device cuda asked for but CUDA could not be used .*use --device cpu"):
        Runtime.from_file(tiny_models["ring8"], device="cuda")


def test_threads_are_validated_and_used(tiny_models):
    rt = Runtime.from_file(tiny_models["ring8"], threads=1)
    assert rt.session.get_session_options().intra_op_num_threads == 1
    for bad in (0, -2):
        with pytest.raises(CtrlgenError, match="threads must be a positive integer"):
            Runtime.from_file(tiny_models["ring8"], threads=bad)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmHWM from /proc/self/status")
def test_npz_writer_streams_in_bounded_memory(tmp_path):
    """196 MB of samples written in chunks: the writer's peak RSS stays far below the data size."""
    code = textwrap.dedent(f"""
        import re, numpy as np
        from pathlib import Path
        from ctrlgen.spec import LatentSpec
        from ctrlgen.writers import NpzWriter
        spec = LatentSpec(noise_dim=16, output_kind="image", output_shape=(3, 64, 64), labels=("a", "b"))
        n, chunk = 4000, 250
        w = NpzWriter(Path({str(tmp_path / "big.npz")!r}), spec, n)
        for start in range(0, n, chunk):
            x = spec.sample(chunk, seed=0, start=start)
            w.add(np.full((chunk, 3, 64, 64), start, np.float32), x)
        w.close()
        # VmHWM: this process's own peak (ru_maxrss would include the parent's RSS at fork time)
        print(int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) // 1024)
    """)
    peak_mb = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    data_mb = 4000 * 3 * 64 * 64 * 4 / 2**20
    assert peak_mb < data_mb / 2, f"peak RSS {peak_mb} MB for {data_mb:.0f} MB of samples"
    d = np.load(tmp_path / "big.npz")
    assert d["sample"].shape == (4000, 3, 64, 64) and d["sample"][3999, 0, 0, 0] == 3750 and d["label"].shape == (4000,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.npz"]  # no parts or temp files left


def test_the_python_api_checks_code_values_and_counts(tiny_models):
    """Values given to Runtime.inputs/generate are checked like the CLI's (they raised ValueError, TypeError or
    OverflowError from numpy, silently truncated 1.7 to 1, or ran for minutes on n = 10^12)."""
    rt = Runtime.from_file(tiny_models["infogan"]) if "infogan" in tiny_models else None
    if rt is None:
        pytest.skip("needs the tiny InfoGAN (Fashion-MNIST)")
    code = rt.spec.categorical[0].name
    for kw, msg in [({"cat": {code: "x"}}, "must be a number"), ({"cat": {code: 10**30}}, "out of range"),
                    ({"cat": {code: 1.7}}, "whole numbers"), ({"cat": {code: [1, 2, 3]}}, "3 values for 2 samples"),
                    ({"cat": f"{code}=1"}, "must be a mapping"), ({"cont": {rt.spec.continuous[0].name: float("nan")}}, "finite numbers")]:
        with pytest.raises(CtrlgenError, match=msg):
            rt.generate(2, 0, **kw)
    for args, msg in [((2, 0), {"start": -5}), ((1.5, 0), {}), ((10**12, 0), {})]:
        with pytest.raises(CtrlgenError):
            rt.inputs(*args, **msg)
    _, inputs = rt.generate(2, 0, cat={code: [0, 1]})
    assert inputs["code_cat"][:, 0].tolist() == [0, 1]
