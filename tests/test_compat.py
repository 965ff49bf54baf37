"""The cheap columns of scripts/compat_table.py: onnx.reference parity and Triton's own config schema.

(The node, browser and OpenVINO columns need npm packages or OpenVINO and live in the
script; tests/test_webpage_browser.py and tests/test_runtime_openvino.py cover the page
and the OpenVINO runtime.)"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from ctrlgen.models import shipped
from ctrlgen.runtime import Runtime
from ctrlgen.webpage import web_inputs

_spec = importlib.util.spec_from_file_location("compat_table", Path(__file__).parents[1] / "scripts" / "compat_table.py")
compat = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("compat_table", compat)
_spec.loader.exec_module(compat)


@pytest.mark.parametrize("path", shipped(), ids=lambda p: p.stem)
def test_onnx_reference_evaluator_matches_onnxruntime(path):
    rt = Runtime.from_file(path)
    x = web_inputs(rt.spec, 3, 5)
    ref = compat.reference_output(path, x)
    assert ref.shape == (3, *rt.spec.output_shape)
    assert np.abs(ref - rt(**x)).max() < 1e-5


@pytest.mark.skipif(compat.model_config_class() is None, reason="tritonclient is not installed (pip install tritonclient)")
@pytest.mark.parametrize("path", shipped(), ids=lambda p: p.stem)
def test_triton_config_parses_against_tritons_model_config(path, tmp_path):
    assert compat.triton_check(path, tmp_path) == "ok"
    from google.protobuf import text_format

    config = text_format.Parse((tmp_path / path.stem / "config.pbtxt").read_text(), compat.model_config_class()())
    assert config.name == path.stem and config.instance_group[0].kind == config.instance_group[0].KIND_CPU
    bad = (tmp_path / path.stem / "config.pbtxt").read_text().replace("max_batch_size", "max_batch")
    with pytest.raises(text_format.ParseError):  # the schema really is checked
        text_format.Parse(bad, compat.model_config_class()())


def test_the_cell_says_how_far_and_how_often():
    ref = np.zeros((2, 4), np.float32)
    assert compat.cell(np.full((2, 4), 2e-6, np.float32), ref) == "2.0e-06"
    assert compat.cell(np.array([[0.5, 0, 0, 0], [0, 0, 0, 0]], np.float32), ref).startswith("5.0e-01 (mean 6e-02, 12.50% > 1e-3)")
    assert compat.cell("not installed", ref) == "not installed"
