"""The UI's request handling without the web: limits, value checks, the file store, models by name only."""

import numpy as np
import pytest

from ctrlgen.errors import CtrlgenError
from ctrlgen.serve.ui_backend import Explorer, Limits, OutputStore, Registry, as_int, as_truncation, fit_scale


def test_value_checks_and_limits():
    assert as_int(3.0, "n", 1, 5) == 3 and as_int("4", "n", 1, 5) == 4
    for bad, msg in [(6, "over the limit of 5"), (0, "below 1"), (2.5, "must be an integer"), ("x", "must be an integer"), (float("nan"), "integer")]:
        with pytest.raises(CtrlgenError, match=msg):
            as_int(bad, "n", 1, 5)
    assert as_truncation(0) is None and as_truncation("") is None and as_truncation(0.5) == 0.5
    with pytest.raises(CtrlgenError, match="truncation must be in"):
        as_truncation(float("inf"))
    with pytest.raises(CtrlgenError, match="max-samples must be a positive integer"):
        Limits(max_samples=0)
    assert fit_scale((100, 50), max_side=2048) == 5 and fit_scale((100, 50), max_side=300) == 3
    with pytest.raises(CtrlgenError, match="over the limit of 64"):
        fit_scale((100, 50), max_side=64)


def test_store_keeps_only_the_newest_files():
    store = OutputStore(max_files=3)
    try:
        paths = [store.write("a.png", bytes([i])) for i in range(5)]
        assert [p.exists() for p in paths] == [False, False, True, True, True]
        assert paths[-1].read_bytes() == b"\x04" and paths[-1].is_relative_to(store.root)
    finally:
        store.cleanup()
    assert not store.root.exists()


def test_models_are_named_not_pathed_and_loaded_on_first_use(tiny_models, tmp_path):
    reg = Registry([tiny_models["ring8"], tiny_models["ring8"]])
    assert reg.names == ["ring8"] and not reg._loaded
    with pytest.raises(CtrlgenError, match="is not served here; choose one of: ring8"):
        reg.get(str(tiny_models["ring8"]))
    with pytest.raises(CtrlgenError, match="does not exist"):
        Registry([tmp_path / "missing.onnx"])
    ex = Explorer(reg, Limits(max_points=100))
    try:
        img, png, npz, note = ex.generate("ring8", 100, seed=1)
        assert img.shape == (512, 512, 3) and png.exists() and np.load(npz)["sample"].shape == (100, 2)
        with pytest.raises(CtrlgenError, match="over the limit of 100"):
            ex.generate("ring8", 101)
    finally:
        ex.store.cleanup()
