"""The shipped models (package data): ONNX files with their cards, and how a command names a model."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ctrlgen.errors import CtrlgenError

DEFAULT = "fashion-cgan.onnx"


def models_dir() -> Path:
    return Path(str(resources.files(__name__)))


def shipped() -> list[Path]:
    """Generator models shipped in models/ (the evaluator is not a generator)."""
    return sorted(p for p in models_dir().glob("*.onnx") if "evaluator" not in p.name)


def resolve_model(model: str | None) -> Path:
    """A path, the name of a shipped model (``fashion-cgan``), or None for the default."""
    if model is None:
        path = models_dir() / DEFAULT
        if not path.exists():
            raise CtrlgenError(f"no default model at {path}; give a MODEL path (an .onnx file, checkpoint or run directory)")
        return path
    if not model.strip():  # Path("") is the current folder, which always exists
        raise CtrlgenError(f"the model name is empty; give a path or a shipped model name ({_names()})")
    path = Path(model)
    if path.exists():
        return path
    for cand in (models_dir() / model, models_dir() / f"{model}.onnx"):
        if cand.exists():
            return cand
    raise CtrlgenError(f"model {model!r} not found; give a path or a shipped model name ({_names()})")


def _names() -> str:
    """The shipped models' names for an error line (listed only when one is needed)."""
    return ", ".join(p.stem for p in shipped()) or "none"
