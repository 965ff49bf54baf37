"""Shared fixtures: tiny versions of the shipped recipes, trained once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ctrlgen.data import FASHION_MNIST_DIR

torch.set_num_threads(min(2, os.cpu_count() or 1))

# Small networks so a few steps take well under a second each.
TINY_CONV = [
    "net.g_width=8", "net.d_width=8", "net.d_fc=32", "net.q_hidden=16", "batch_size=16",
    "log_every=2", "sample_every=4", "checkpoint_every=4", "progress=false",
]
TINY_MLP = ["net.g_width=16", "net.d_width=16", "batch_size=64", "log_every=2", "sample_every=4", "checkpoint_every=4", "progress=false"]

needs_fashion = pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(), reason="Fashion-MNIST missing: apt-get install -y dataset-fashion-mnist"
)


def run_cli(*args, ok=True):
    """``ctrlgen ARGS`` in-process (typer's CliRunner); ``ok`` asserts a zero exit."""
    from typer.testing import CliRunner

    from ctrlgen.serve.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def assert_one_line_error(result, fragment):
    """Exit 2, no traceback, exactly one ``Error: ...`` line that holds ``fragment``."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert fragment in lines[0]
    assert "Traceback" not in result.output


def tiny_config(recipe: str, *overrides: str):
    from ctrlgen.train.config import load_config

    base = TINY_MLP if recipe in ("ring8", "grid25") else TINY_CONV
    if recipe in ("fashion-infogan", "fashion-cgan", "fashion-cgan-reference"):
        base = [*base, "net.g_fc=32"]  # their G has an FC 512/1024 layer
    return load_config(recipe, [*base, *overrides])


def train_tiny(recipe: str, run_dir: Path, steps: int = 8, *overrides: str):
    from ctrlgen.train.trainer import Trainer

    trainer = Trainer(tiny_config(recipe, f"steps={steps}", *overrides), run_dir)
    trainer.run()
    return trainer


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """Run directories of tiny cgan, infogan and ring8 models (EMA on for the cgan)."""
    root = tmp_path_factory.mktemp("runs")
    runs = {"ring8": root / "ring8"}
    train_tiny("ring8", runs["ring8"], 8)
    if FASHION_MNIST_DIR.is_dir():
        runs["cgan"] = root / "cgan"
        train_tiny("fashion-cgan", runs["cgan"], 8)
        runs["infogan"] = root / "infogan"
        train_tiny("fashion-infogan", runs["infogan"], 8)
    return runs


@pytest.fixture(scope="session")
def tiny_models(tiny_runs, tmp_path_factory) -> dict[str, Path]:
    """The tiny runs exported to ONNX."""
    from ctrlgen.export import export

    root = tmp_path_factory.mktemp("onnx")
    out = {}
    for name, run in tiny_runs.items():
        out[name] = root / f"{name}.onnx"
        export(run, out[name])
    return out


@pytest.fixture(autouse=True, scope="session")
def _private_feature_cache(tmp_path_factory):
    """Cached real-data features (ctrlgen.reference) go to a session folder, not the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CTRLGEN_CACHE", str(tmp_path_factory.mktemp("ctrlgen-cache")))
    yield
    mp.undo()
