"""The shipped models (package data): ONNX files with their cards."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT = "fashion-cgan.onnx"


def models_dir() -> Path:
    return Path(str(resources.files(__name__)))


def shipped() -> list[Path]:
    """Generator models shipped in models/ (the evaluator is not a generator)."""
    return sorted(p for p in models_dir().glob("*.onnx") if "evaluator" not in p.name)
