"""--runtime openvino: parity with ONNX Runtime on the shipped models, the precision hint, and errors."""

import importlib.util
import sys

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from ctrlgen.models import models_dir, shipped
from ctrlgen.precision import INT8_MEAN_TOL
from ctrlgen.runtime import Runtime

needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None,
    reason="OpenVINO is not installed: pip install 'ctrlgen[openvino]'",
)


@needs_openvino
@pytest.mark.parametrize("path", shipped(), ids=lambda p: p.stem)
def test_openvino_matches_onnxruntime(path):
    from ctrlgen.runtime_openvino import OpenVinoRuntime

    ort, ov = Runtime.from_file(path), OpenVinoRuntime(path, threads=2)
    x = ort.inputs(64, 3)
    a, b = ort(**x), ov(**x)
    assert ov.spec == ort.spec and ov.card == ort.card and ov.backend == "openvino"
    hint = str(ov.compiled.get_property("INFERENCE_PRECISION_HINT"))
    assert hint == "<Type: 'float32'>"  # int8 files too: their fp32 parts (VBN, the conv before tanh) stay fp32
    if ort.precision == "fp32":
        assert np.abs(a - b).max() < 1e-4
    else:  # int8 kernels round differently here and there, and the fp32 layers after carry that on: a few
        # elements move; on average the two runtimes agree ~40x closer than either does with the fp32 file
        diff = np.abs(a - b)
        assert diff.mean() < INT8_MEAN_TOL / 30 and (diff > 1e-3).mean() < 0.05 and diff.max() < 0.5
    samples, _ = ov.generate(5, seed=1, chunk=2)
    assert samples.shape == (5, *ov.spec.output_shape)


@needs_openvino
def test_cli_generate_with_openvino_matches_onnxruntime(tmp_path):
    run_cli("generate", "fashion-infogan", "--runtime", "openvino", "-n", "12", "-o", tmp_path / "ov.npz", "--cat", "c=2")
    run_cli("generate", "fashion-infogan", "-n", "12", "-o", tmp_path / "ort.npz", "--cat", "c=2")
    ov, ort = np.load(tmp_path / "ov.npz"), np.load(tmp_path / "ort.npz")
    assert np.array_equal(ov["code_cat"], ort["code_cat"]) and (ov["code_cat"][:, 0] == 2).all()
    assert np.abs(ov["sample"] - ort["sample"]).max() < 1e-4


def test_openvino_errors_are_one_line(tmp_path, monkeypatch):
    model = models_dir() / "ring8.onnx"
    out = tmp_path / "x.png"
    assert_one_line_error(run_cli("generate", model, "--runtime", "tvm", "-o", out, ok=False), "runtime 'tvm' is unknown")
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed
    res = run_cli("generate", model, "--runtime", "openvino", "-o", out, ok=False)
    assert_one_line_error(res, "pip install 'ctrlgen[openvino]'")
    assert not out.exists()


@needs_openvino
def test_openvino_refuses_what_it_cannot_run(tmp_path):
    model = models_dir() / "ring8.onnx"
    out = tmp_path / "x.png"
    assert_one_line_error(run_cli("generate", model, "--runtime", "openvino", "--device", "cuda", "-o", out, ok=False), "CPU only")
    assert_one_line_error(run_cli("generate", model, "--runtime", "openvino", "--precision", "int8", "-o", out, ok=False), "holds a fp32 model")
    assert_one_line_error(run_cli("generate", tmp_path, "--runtime", "openvino", "-o", out, ok=False), "export it first")
