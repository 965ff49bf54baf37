"""Bounds on the web UI's requests and the files it writes: ``Limits``, value checks, the output store.

Every request the UI or its API serves is bounded here (``Limits``); form
values are checked with one-line errors that name the field (``as_int``,
``as_truncation``); the only files offered for download are those
``OutputStore`` wrote into its private folder.
"""

from __future__ import annotations

import itertools
import math
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ctrlgen.errors import CtrlgenError
from ctrlgen.files import write_bytes
from ctrlgen.text import plain


@dataclass(frozen=True)
class Limits:
    """Bounds on every request, so one client cannot starve the others."""

    max_samples: int = 256  # images per request (generate n, sweep cells, compare n per model)
    max_frames: int = 120  # GIF frames per interpolation
    max_points: int = 20_000  # points per request for 2D models
    max_side: int = 2048  # pixels on the longest side of any picture
    concurrency: int = 2  # requests computed at the same time
    queue_size: int = 64  # requests allowed to wait; more are refused
    max_files: int = 512  # files kept for download (oldest deleted first)

    def __post_init__(self) -> None:
        for name in ("max_samples", "max_frames", "max_points", "max_side", "concurrency", "queue_size", "max_files"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise CtrlgenError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")


def as_int(value: Any, what: str, low: int, high: int) -> int:
    """An integer in [low, high] from a form value (gradio numbers arrive as floats)."""
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer past float's range
        f = math.nan
    if not math.isfinite(f) or f != int(f):
        raise CtrlgenError(f"{what} must be an integer in {low}..{high}, got {plain(value, 60)}")
    if int(f) > high:
        raise CtrlgenError(f"{what} = {int(f)} is over the limit of {high}; ask for at most {high}")
    if int(f) < low:
        raise CtrlgenError(f"{what} = {int(f)} is below {low}; use {low}..{high}")
    return int(f)


def as_truncation(value: Any) -> float | None:
    """0, empty or None means off; else a positive number up to 10."""
    if value is None or value == "":
        return None
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise CtrlgenError(f"truncation must be a number (0 = off), got {plain(value, 60)}") from None
    except OverflowError:
        t = math.inf
    if t == 0:
        return None
    if not (math.isfinite(t) and 0 < t <= 10):
        raise CtrlgenError(f"truncation must be in (0, 10] or 0 for off, got {plain(value, 60)}")
    return t


class OutputStore:
    """A private temporary folder; the only files the UI offers for download are the ones it wrote here."""

    def __init__(self, max_files: int = 512) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ctrlgen-ui-"))
        self.max_files = max_files
        self._lock = threading.Lock()
        self._count = itertools.count()
        self._written: list[Path] = []

    def write(self, name: str, data: bytes) -> Path:
        with self._lock:
            path = self.root / f"{next(self._count):06d}" / name
            self._written.append(path)
            stale = self._written[: -self.max_files]
            del self._written[: -self.max_files]
        write_bytes(path, data)
        for old in stale:
            shutil.rmtree(old.parent, ignore_errors=True)
        return path

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def display(img: np.ndarray) -> np.ndarray:
    """(H, W) for grayscale, (H, W, 3) for colour: what image widgets take."""
    return img[:, :, 0] if img.ndim == 3 and img.shape[2] == 1 else img


def fit_scale(shape: tuple[int, ...], max_side: int, want: int = 512) -> int:
    """The upscale factor that brings a picture's longest side near ``want`` pixels, never past ``max_side``."""
    side = max(shape[0], shape[1])
    scale = max(1, round(want / side))
    while scale > 1 and side * scale > max_side:
        scale -= 1
    if side * scale > max_side:
        raise CtrlgenError(f"the picture would be {side} pixels wide, over the limit of {max_side}; ask for fewer samples")
    return scale
