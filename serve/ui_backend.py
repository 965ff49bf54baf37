"""What the web UI does, without the web: models it may load, limits, files it writes, and the requests.

``Explorer`` answers the UI's requests (generate, sweep, interpolate,
compare, card) with numpy pictures and paths of files it wrote itself; every
problem is a ``CtrlgenError`` with one line.  ``app.py`` puts gradio around
it.  Nothing here imports gradio, and no model is loaded before a request
asks for it.

Security: models come only from ``models/`` and the paths given on the
command line (requests name a model, never a path); files are only those
``OutputStore`` wrote; every request is bounded (``Limits``).
"""

from __future__ import annotations

import io
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
    except (TypeError, ValueError):
        raise CtrlgenError(f"{what} must be an integer in {low}..{high}, got {value!r}") from None
    if not math.isfinite(f) or f != int(f):
        raise CtrlgenError(f"{what} must be an integer in {low}..{high}, got {value!r}")
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
        raise CtrlgenError(f"truncation must be a number (0 = off), got {value!r}") from None
    if t == 0:
        return None
    if not (math.isfinite(t) and 0 < t <= 10):
        raise CtrlgenError(f"truncation must be in (0, 10] or 0 for off, got {value!r}")
    return t


class Registry:
    """The models this server may load: ``models/`` plus the paths given on the command line."""

    def __init__(self, paths: list[Path], threads: int | None = None) -> None:
        self.paths: dict[str, Path] = {}
        for p in paths:
            p = Path(p).resolve()
            if not p.exists():
                raise CtrlgenError(f"model {p} does not exist; give .onnx files, checkpoints or run directories")
            if p in self.paths.values():
                continue
            name = p.stem if p.is_file() else p.name
            for i in itertools.count(2):
                if name not in self.paths:
                    break
                name = f"{p.stem}-{i}"
            self.paths[name] = p
        self.threads = threads
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self.paths)

    def get(self, name: Any) -> Any:
        """The runtime of a served model, loaded on first use."""
        if name not in self.paths:
            raise CtrlgenError(f"model {name!r} is not served here; choose one of: {', '.join(self.paths) or 'none'}")
        with self._lock:
            if name not in self._loaded:
                from ctrlgen.runtime import Runtime

                self._loaded[name] = Runtime.from_file(self.paths[name], threads=self.threads)
            return self._loaded[name]


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


class Explorer:
    def __init__(self, registry: Registry, limits: Limits | None = None, store: OutputStore | None = None) -> None:
        self.registry, self.limits = registry, limits or Limits()
        self.store = store or OutputStore(self.limits.max_files)

    # ------------------------------------------------------------------ helpers
    def _count(self, spec: Any, n: Any, what: str = "samples") -> int:
        high = self.limits.max_points if spec.output_kind == "points" else self.limits.max_samples
        return as_int(n, what, 1, high)

    def _picture(self, spec: Any, samples: np.ndarray, nrow: int | None = None) -> np.ndarray:
        from ctrlgen.grids import picture, upscale

        img = picture(spec, samples, nrow=nrow)
        if spec.output_kind == "image":
            img = upscale(img, fit_scale(img.shape, self.limits.max_side))
        return display(img)

    def _png(self, img: np.ndarray, name: str) -> Path:
        from ctrlgen.images import png_bytes

        return self.store.write(name, png_bytes(img))

    def _npz(self, samples: np.ndarray, inputs: dict[str, np.ndarray], name: str) -> Path:
        buf = io.BytesIO()
        np.savez(buf, sample=samples, **inputs)
        return self.store.write(name, buf.getvalue())

    # ------------------------------------------------------------------ requests
    def _controls(self, spec: Any, label: Any = None, codes: str = "", cat: dict | None = None, cont: dict | None = None,
                  keyframes: bool = False) -> Any:
        """The request's label and codes as Controls; the label counts for class-conditional models only."""
        from ctrlgen.controls import parse_controls

        return parse_controls(spec, label=label if spec.conditional else None, codes=codes or "", cat=cat or {}, cont=cont or {},
                              keyframes=keyframes)

    def generate(self, model: str, n: Any = 16, seed: Any = 0, label: Any = None, truncation: Any = None,
                 cat: dict | None = None, cont: dict | None = None, codes: str = "") -> tuple[np.ndarray, Path, Path, str]:
        """A grid of n samples (a column per class when the label is "all"), its PNG and an NPZ of samples and inputs.

        ``cat``/``cont`` map code names to values ("random" leaves one drawn), ``codes`` is the same as text
        (``"c=3, u0=0.5"``): ``ctrlgen.controls`` parses both."""
        from ctrlgen.grids import LABEL_FACTOR, value_grid

        rt = self.registry.get(model)
        spec = rt.spec
        n, seed = self._count(spec, n), as_int(seed, "seed", 0, 2**32 - 1)
        controls = self._controls(spec, label, codes, cat, cont)
        nrow, fixed = None, controls.fixed()
        if controls.every_class:
            layout = value_grid(spec, n, LABEL_FACTOR, columns=True)
            n, nrow, fixed["label"] = layout.n, layout.per_row, layout.assignment()
        samples, inputs = rt.generate(n, seed, truncation=as_truncation(truncation), **fixed)
        img = self._picture(spec, samples, nrow)
        stem = f"{model}-seed{seed}-n{n}"
        note = f"{n} samples from {model} ({rt.backend}), seed {seed}"
        return img, self._png(img, f"{stem}.png"), self._npz(samples, inputs, f"{stem}.npz"), note

    def sweep(self, model: str, factor: str, steps: Any = 8, rows: Any = 4, seed: Any = 0, label: Any = None,
              truncation: Any = None, cat: dict | None = None, cont: dict | None = None, captions: bool = True,
              codes: str = "") -> tuple[np.ndarray, Path]:
        """A traversal grid: rows are different z, columns the values of ``factor`` (a code or "label")."""
        from ctrlgen.traversal import check_sweepable, sweep, sweep_axis

        rt = self.registry.get(model)
        spec = rt.spec
        check_sweepable(spec)
        steps = as_int(steps, "steps", 2, self.limits.max_samples)
        rows = as_int(rows, "rows", 1, self.limits.max_samples)
        seed = as_int(seed, "seed", 0, 2**32 - 1)
        cols = len(sweep_axis(spec, str(factor), steps).values)
        h, w = spec.output_shape[1:]
        scale = fit_scale((rows * (h + 2) + 2, cols * (w + 2) + 2), self.limits.max_side)
        res = sweep(rt, str(factor), steps=steps, rows=rows, seed=seed, controls=self._controls(spec, label, codes, cat, cont),
                    truncation=as_truncation(truncation), captions=bool(captions), scale=scale, max_cells=self.limits.max_samples)
        return display(res.image), self._png(res.image, f"{model}-sweep-{res.axis.name}-seed{seed}.png")

    def interpolate(self, model: str, frames: Any = 32, keys: Any = 4, seed: Any = 0, labels: list | str | None = None,
                    animate: str | None = None, truncation: Any = None, cat: dict | None = None, cont: dict | None = None,
                    ms: int = 80, codes: str = "") -> Path:
        """A looping GIF: z walks through ``keys`` keyframes; optional labels per keyframe; ``animate`` a continuous code low->high."""
        from ctrlgen.grids import upscale
        from ctrlgen.images import gif_bytes
        from ctrlgen.traversal import walk

        rt = self.registry.get(model)
        spec = rt.spec
        frames = as_int(frames, "frames", 2, self.limits.max_frames)
        keys = as_int(keys, "keyframes", 1, 16)
        seed = as_int(seed, "seed", 0, 2**32 - 1)
        controls = self._controls(spec, labels, codes, cat, cont, keyframes=True)
        if animate and str(animate).lower() != "none":
            c = spec.continuous[spec.continuous_index(str(animate))]
            controls = controls.with_cont(c.name, (c.low, c.high))
        walks = min(256, self.limits.max_points // frames) if spec.output_kind == "points" else 1
        pics = walk(rt, frames=frames, keys=keys, walks=walks, seed=seed, controls=controls, truncation=as_truncation(truncation), scale=1)
        scale = fit_scale(pics[0].shape, self.limits.max_side, want=256) if spec.output_kind == "image" else 1
        data = gif_bytes([upscale(p, scale) for p in pics], ms_per_frame=ms)
        return self.store.write(f"{model}-walk-seed{seed}.gif", data)

    def compare(self, model_a: str, model_b: str, n: Any = 16, seed: Any = 0, label: Any = None, truncation: Any = None,
                cat: dict | None = None, cont: dict | None = None, codes: str = "") -> tuple[np.ndarray, np.ndarray, str]:
        """The same seed through two models: the same z whenever their noise matches; label and codes by name.

        Codes are checked against the first model; each model takes those it has, and the label when it has that class."""
        first = self._controls(self.registry.get(model_a).spec, None, codes, cat, cont).fixed()
        pics, specs = [], []
        for model in (model_a, model_b):
            rt = self.registry.get(model)
            spec = rt.spec
            count, s = self._count(spec, n), as_int(seed, "seed", 0, 2**32 - 1)
            mine_cat = {k: v for k, v in first["cat"].items() if any(c.name == k for c in spec.categorical)}
            mine_cont = {k: v for k, v in first["cont"].items() if any(c.name == k for c in spec.continuous)}
            samples, _ = rt.generate(count, s, label=_label_if_known(self, spec, label), cat=mine_cat, cont=mine_cont,
                                     truncation=as_truncation(truncation))
            pics.append(self._picture(spec, samples))
            specs.append(spec)
        a, b = specs
        same = (a.noise_dim, a.noise) == (b.noise_dim, b.noise)
        note = (f"Same z: both models take {a.noise_dim}-dim {a.noise} noise, seed {seed}." if same else
                f"Different noise ({a.noise_dim}-dim {a.noise} vs {b.noise_dim}-dim {b.noise}): same seed, not the same z.")
        return pics[0], pics[1], note

    def card(self, model: str) -> str:
        """The model's latent spec and card as Markdown."""
        import json

        rt = self.registry.get(model)
        lines = [f"### {model}", f"`{self.registry.paths[model].name}` · {rt.backend}", "", "| | |", "|---|---|"]
        rows = list(rt.spec.describe())
        for key in ("recipe", "loss", "techniques", "steps", "seed", "data", "device", "wall_time_s", "weights", "export_parity_max_abs_diff"):
            if rt.card.get(key) is not None:
                v = rt.card[key]
                rows.append((key, v if isinstance(v, str) else json.dumps(v)))
        rows += [(f"metric {k}", json.dumps(v)) for k, v in (rt.card.get("metrics") or {}).items()]
        lines += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows]
        return "\n".join(lines)


def _label_if_known(ex: Explorer, spec: Any, label: Any) -> int | None:
    """The label for a model that has this class, else None (random labels)."""
    try:
        return ex._controls(spec, label).label
    except CtrlgenError:
        return None
