"""What the web UI does, without the web: the models it may load and the requests (limits and files: ``ui_limits``).

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
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ctrlgen.errors import CtrlgenError
from ctrlgen.serve.ui_limits import Limits, OutputStore, as_int, as_truncation, display, fit_scale
from ctrlgen.text import plain

__all__ = ["Explorer", "Limits", "OutputStore", "Registry", "as_int", "as_truncation", "display", "fit_scale"]

DEFAULT_MODEL = "fashion-cgan"
SEED_MAX = 2**32 - 1


def _pixel(value: Any, what: str) -> int:
    """A click's pixel coordinate (the browser may report a fractional one, e.g. on a zoomed page)."""
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        f = math.nan
    if not (math.isfinite(f) and 0 <= f <= 1 << 20):
        raise CtrlgenError(f"the click's {what} coordinate {plain(value, 60)} is not a pixel of the picture; click on a sample")
    return int(f)


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
        self._about: dict[str, tuple[Any, dict]] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self.paths)

    @property
    def default(self) -> str:
        """The model the page opens with: ``fashion-cgan`` when served, else the first."""
        return DEFAULT_MODEL if DEFAULT_MODEL in self.paths else self.names[0]

    def about(self, name: str) -> tuple[Any, dict]:
        """(spec, card) of a served model: from an .onnx file's metadata (no session), else by loading it."""
        name = self.check(name)
        if name not in self._about:
            from ctrlgen.serve.ui_card import file_spec

            found = file_spec(self.paths[name]) if name not in self._loaded else None
            if found is None:
                rt = self.get(name)
                found = rt.spec, dict(rt.card)
            self._about[name] = found
        return self._about[name]

    def describe(self, name: str) -> str:
        """One line about a served model for the picker (what it makes, its classes and codes)."""
        from ctrlgen.serve.ui_card import describe_spec

        return describe_spec(*self.about(name))

    def check(self, name: Any) -> str:
        """``name`` if it is a served model's name, else one line (an API client may send anything)."""
        if not isinstance(name, str) or name not in self.paths:
            raise CtrlgenError(f"model {plain(repr(name), 80)} is not served here; choose one of: {', '.join(self.paths) or 'none'}")
        return name

    def get(self, name: Any) -> Any:
        """The runtime of a served model, loaded on first use."""
        name = self.check(name)
        with self._lock:
            if name not in self._loaded:
                from ctrlgen.runtime import Runtime

                self._loaded[name] = Runtime.from_file(self.paths[name], threads=self.threads)
            return self._loaded[name]


class Explorer:
    def __init__(self, registry: Registry, limits: Limits | None = None, store: OutputStore | None = None) -> None:
        self.registry, self.limits = registry, limits or Limits()
        self.store = store or OutputStore(self.limits.max_files)

    # ------------------------------------------------------------------ helpers
    def _count(self, spec: Any, n: Any, what: str = "samples") -> int:
        high = self.limits.max_points if spec.output_kind == "points" else self.limits.max_samples
        return as_int(n, what, 1, high)

    def _picture(self, spec: Any, samples: np.ndarray, nrow: int | None = None) -> np.ndarray:
        from ctrlgen.grids import mixture_means, picture, upscale

        if spec.output_kind == "points":
            from ctrlgen.serve.ui_density import density_view

            return density_view(samples, mixture_means(spec))
        img = picture(spec, samples, nrow=nrow)
        return display(upscale(img, fit_scale(img.shape, self.limits.max_side)))

    def _png(self, img: np.ndarray, name: str) -> Path:
        from ctrlgen.images import png_bytes

        return self.store.write(name, png_bytes(img))

    def _controls(self, spec: Any, label: Any = None, codes: str = "", cat: dict | None = None, cont: dict | None = None,
                  keyframes: bool = False) -> Any:
        """The request's label and codes as Controls; the label counts for class-conditional models only."""
        from ctrlgen.controls import parse_controls

        return parse_controls(spec, label=label if spec.conditional else None, codes=codes or "", cat=cat or {}, cont=cont or {},
                              keyframes=keyframes)

    def _grid(self, spec: Any, n: int, controls: Any) -> tuple[int, int | None, dict]:
        """(n, samples per row, fixed inputs) of a generate request: label "all" is a column per class."""
        from ctrlgen.grids import LABEL_FACTOR, value_grid

        fixed = controls.fixed()
        if not controls.every_class:
            return n, None, fixed
        layout = value_grid(spec, n, LABEL_FACTOR, columns=True)
        fixed["label"] = layout.assignment()
        return layout.n, layout.per_row, fixed

    # ------------------------------------------------------------------ requests
    def generate(self, model: str, n: Any = 16, seed: Any = 0, label: Any = None, truncation: Any = None,
                 cat: dict | None = None, cont: dict | None = None, codes: str = "") -> tuple[np.ndarray, Path, Path, str]:
        """A grid of n samples (a column per class when the label is "all"), its PNG and an NPZ of samples and inputs.

        ``cat``/``cont`` map code names to values ("random" leaves one drawn), ``codes`` is the same as text
        (``"c=3, u0=0.5"``): ``ctrlgen.controls`` parses both.  2D models give a points + density view."""
        rt = self.registry.get(model)
        spec = rt.spec
        n, seed = self._count(spec, n), as_int(seed, "seed", 0, SEED_MAX)
        t = as_truncation(truncation)
        n, nrow, fixed = self._grid(spec, n, self._controls(spec, label, codes, cat, cont))
        samples, inputs = rt.generate(n, seed, truncation=t, **fixed)
        img = self._picture(spec, samples, nrow)
        stem = f"{model}-seed{seed}-n{n}"
        buf = io.BytesIO()
        np.savez(buf, sample=samples, **inputs)
        what = "points" if spec.output_kind == "points" else "samples"
        note = f"{n} {what} from {model} ({rt.backend}), seed {seed}" + (f", truncation {t:g}" if t else "")
        return img, self._png(img, f"{stem}.png"), self.store.write(f"{stem}.npz", buf.getvalue()), note

    def pick(self, model: str, n: Any, seed: Any, label: Any, truncation: Any, codes: str, x: Any, y: Any,
             shape: tuple[int, ...]) -> dict | None:
        """The sample under pixel (x, y) of the generate picture of these settings (``shape``: its shape), or None.

        Its seed, index (its place in the seed's stream), truncation, label and codes: enough to draw it again (``pinned``)."""
        rt = self.registry.get(model)
        spec = rt.spec
        if spec.output_kind != "image":
            return None
        n, seed = self._count(spec, n), as_int(seed, "seed", 0, SEED_MAX)
        n, nrow, fixed = self._grid(spec, n, self._controls(spec, label, codes))
        nrow = max(1, min(nrow or math.ceil(math.sqrt(n)), n))
        h, w = spec.output_shape[1:]
        if not (isinstance(shape, (list, tuple)) and len(shape) >= 2):
            raise CtrlgenError("the picture's shape is unknown; generate a picture first, then click a sample")
        scale = max(1, as_int(shape[1], "picture width", 1, 1 << 20) // (nrow * (w + 2) + 2))
        col, row = (_pixel(x, "x") // scale - 1) // (w + 2), (_pixel(y, "y") // scale - 1) // (h + 2)
        index = row * nrow + col
        if not (0 <= col < nrow and 0 <= index < n):
            return None
        lab = fixed["label"]
        lab = None if lab is None else int(np.asarray(lab).reshape(-1)[index] if np.ndim(lab) else lab)
        x_in = rt.inputs(1, seed, start=index, truncation=as_truncation(truncation), label=lab, cat=fixed["cat"], cont=fixed["cont"])
        return {"model": model, "seed": seed, "index": index, "truncation": as_truncation(truncation),
                "label": int(x_in["label"][0]) if "label" in x_in else None,
                "cat": {c.name: int(x_in["code_cat"][0, i]) for i, c in enumerate(spec.categorical)},
                "cont": {c.name: round(float(x_in["code_cont"][0, i]), 4) for i, c in enumerate(spec.continuous)},
                "z": [round(float(v), 3) for v in x_in["z"][0]]}

    def describe_pick(self, pin: dict) -> str:
        """One line about a picked sample: where its z comes from, its label and codes."""
        if not isinstance(pin, dict) or not {"model", "index", "seed", "cat", "cont", "z"} <= pin.keys():
            raise CtrlgenError("no sample is picked; click a sample in the generate picture first")
        spec = self.registry.get(pin["model"]).spec
        parts = [f"sample {pin['index']} of seed {pin['seed']}" + (f" (truncation {pin['truncation']:g})" if pin.get("truncation") else "")]
        if pin.get("label") is not None:
            parts.append(f"label {spec.labels[pin['label']]}")
        codes = [f"{k}={v}" for k, v in pin["cat"].items()] + [f"{k}={v:+.2f}" for k, v in pin["cont"].items()]
        if codes:
            parts.append("codes " + " ".join(codes))
        z = pin["z"]
        parts.append(f"z = [{', '.join(f'{v:+.2f}' for v in z[:4])}{', …' if len(z) > 4 else ''}] (|z| {math.sqrt(sum(v * v for v in z)):.2f})")
        return " · ".join(parts)

    def _pinned(self, model: str, rt: Any, pin: dict | None) -> dict[str, np.ndarray] | None:
        """The inputs of a pinned sample of ``model`` (drawn again from its seed and index), else None."""
        if not isinstance(pin, dict) or pin.get("model") != model:
            return None
        return rt.inputs(1, as_int(pin.get("seed"), "pinned seed", 0, SEED_MAX), start=as_int(pin.get("index"), "pinned index", 0, 2**40),
                         truncation=as_truncation(pin.get("truncation")), label=pin.get("label"), cat=pin.get("cat") or {},
                         cont=pin.get("cont") or {})

    def sweep(self, model: str, factor: str, steps: Any = 8, rows: Any = 4, seed: Any = 0, label: Any = None,
              truncation: Any = None, cat: dict | None = None, cont: dict | None = None, captions: bool = True,
              codes: str = "", pin: dict | None = None) -> tuple[np.ndarray, Path, str]:
        """A traversal grid: rows are different z, columns the values of ``factor`` (a code or "label").

        Sweeping the label ignores the label control; label "all" with a code sweep is a row per class;
        a pinned sample is the first row."""
        from dataclasses import replace

        from ctrlgen.traversal import check_sweepable, sweep, sweep_axis

        rt = self.registry.get(model)
        spec = rt.spec
        check_sweepable(spec)
        steps = as_int(steps, "steps", 2, self.limits.max_samples)
        rows = as_int(rows, "rows", 1, self.limits.max_samples)
        seed, t = as_int(seed, "seed", 0, SEED_MAX), as_truncation(truncation)
        axis = sweep_axis(spec, str(factor), steps)
        controls = self._controls(spec, label, codes, cat, cont)
        fixed = controls.fixed()
        what = f"{rows} z (samples 0..{rows - 1} of seed {seed})"
        if axis.kind == "label":
            controls, fixed["label"] = replace(controls, labels=(), every_class=False), None
        elif controls.every_class:
            rows, fixed["label"] = spec.n_classes, np.arange(spec.n_classes)
            what = f"a row per class (samples 0..{rows - 1} of seed {seed})"
        pinned = self._pinned(model, rt, pin)
        base = None
        if pinned is not None or fixed["label"] is not None and np.ndim(fixed["label"]):
            base = rt.inputs(rows, seed, truncation=t, **fixed)
            if pinned is not None:
                base = {k: np.concatenate([pinned[k], v[1:]]) for k, v in base.items()}
                rest = f"a row per class 1..{rows - 1}" if what.startswith("a row per class") else f"samples 1..{rows - 1} of seed {seed}"
                what = f"the pinned sample, then {rest}" if rows > 1 else "the pinned sample"
        cols = len(axis.values)
        h, w = spec.output_shape[1:]
        scale, font, transpose = self._caption_layout(axis.titles, rows, cols, h, w, bool(captions) and axis.kind == "label")
        res = sweep(rt, str(factor), steps=steps, rows=rows, seed=seed, controls=controls, truncation=t, captions=bool(captions),
                    scale=scale, max_cells=self.limits.max_samples, base=base, font_size=font, transpose=transpose)
        note = f"{'down' if transpose else 'across'}: {axis.name} ({cols} values); {'across' if transpose else 'down'}: {what}"
        return display(res.image), self._png(res.image, f"{model}-sweep-{res.axis.name}-seed{seed}.png"), note

    def _caption_layout(self, titles: tuple[str, ...], rows: int, cols: int, h: int, w: int, may_transpose: bool) -> tuple[int, int, bool]:
        """(pixel scale, caption font size, transpose): cells wide enough for whole titles at a readable size."""
        from PIL import ImageFont

        font = 14
        need = max(ImageFont.load_default(size=font).getlength(t) for t in titles) + 8
        scale = fit_scale((rows * (h + 2) + 2, cols * (w + 2) + 2), self.limits.max_side)
        while (w + 2) * scale < need and (cols * (w + 2) + 2) * (scale + 1) <= min(self.limits.max_side, 1400):
            scale += 1
        transpose = may_transpose and (w + 2) * scale < need
        return scale, font, transpose

    def interpolate(self, model: str, frames: Any = 32, keys: Any = 4, seed: Any = 0, labels: list | str | None = None,
                    animate: str | None = None, truncation: Any = None, cat: dict | None = None, cont: dict | None = None,
                    fps: Any = 12, codes: str = "", walks: Any = 1, label: Any = None, pin: dict | None = None) -> tuple[Path, str]:
        """A looping GIF of ``walks`` walks through ``keys`` keyframes of z, at ``fps`` frames a second.

        ``labels``: one per keyframe; else ``label`` (the label control): one class for every walk, "all" a
        class per walk.  ``animate`` a continuous code low->high; a pinned sample starts the first walk."""
        from ctrlgen.grids import upscale
        from ctrlgen.images import gif_bytes
        from ctrlgen.traversal import walk

        rt = self.registry.get(model)
        spec = rt.spec
        frames = as_int(frames, "frames", 2, self.limits.max_frames)
        keys = as_int(keys, "keyframes", 1, 16)
        seed, t = as_int(seed, "seed", 0, SEED_MAX), as_truncation(truncation)
        fps = as_int(fps, "frames per second", 1, 50)
        points = spec.output_kind == "points"
        walks = min(256, self.limits.max_points // frames) if points else as_int(walks, "walks", 1, 64)
        if frames * walks > (self.limits.max_points if points else self.limits.max_samples * 4):
            raise CtrlgenError(f"walks = {walks} x frames = {frames} is over the limit; use fewer walks or frames")
        if labels is not None and not isinstance(labels, (str, list, tuple)):
            raise CtrlgenError(f"labels must be text (indices or names, one per keyframe, comma-separated), got a {type(labels).__name__}")
        has_labels = bool(labels) and (labels if isinstance(labels, str) else ",".join(map(str, labels))).strip()
        controls = self._controls(spec, labels if has_labels else None, codes, cat, cont, keyframes=True)
        every = False
        if not has_labels and spec.conditional:
            one = self._controls(spec, label)
            every = one.every_class
            if one.labels:
                from dataclasses import replace

                controls = replace(controls, labels=one.labels)
        if animate and str(animate).lower() != "none":
            c = spec.continuous[spec.continuous_index(str(animate))]
            controls = controls.with_cont(c.name, (c.low, c.high))
        first, pinned = None, self._pinned(model, rt, pin)
        if every or pinned is not None:
            first = rt.inputs(walks, seed, truncation=t, label=np.arange(walks) % spec.n_classes if every else None)
            if pinned is not None:
                first = {k: np.concatenate([pinned[k], v[1:]]) for k, v in first.items()}
        pics = walk(rt, frames=frames, keys=keys, walks=walks, seed=seed, controls=controls, truncation=t, scale=1, first=first)
        scale = 1 if points else fit_scale(pics[0].shape, self.limits.max_side, want=256)
        data = gif_bytes([upscale(p, scale) for p in pics], ms_per_frame=max(20, round(1000 / fps)))
        labs = controls.labels
        how = (f"labels {', '.join(spec.labels[i] for i in labs)} along the walk" if len(labs) > 1 else
               f"label {spec.labels[labs[0]]}" if labs else f"a class per walk ({', '.join(spec.labels[i % spec.n_classes] for i in range(min(walks, 4)))}{', …' if walks > 4 else ''})" if every else
               "labels drawn from the seed" if spec.conditional else "")
        note = "; ".join(x for x in (f"{walks} walk{'s' * (walks > 1)} through {keys} keyframes of z (seed {seed})",
                                     f"{frames} frames at {fps} fps", how, "starts at the pinned sample" if pinned is not None else "") if x)
        return self.store.write(f"{model}-walk-seed{seed}.gif", data), note

    def compare(self, model_a: str, model_b: str, n: Any = 16, seed: Any = 0, label: Any = None, truncation: Any = None,
                cat: dict | None = None, cont: dict | None = None, codes: str = "") -> tuple[np.ndarray, np.ndarray, str]:
        """The same seed through two models: the same z whenever their noise matches; label and codes by name.

        Codes are checked against the first model; each model takes those it has, and the label when it has
        that class ("all": a column per class); the note says what each model was given."""
        first = self._controls(self.registry.get(model_a).spec, label, codes, cat, cont).fixed()
        pics, specs, said = [], [], []
        for model in (model_a, model_b):
            rt = self.registry.get(model)
            spec = rt.spec
            count, s = self._count(spec, n), as_int(seed, "seed", 0, SEED_MAX)
            mine = {k: {n_: v for n_, v in first[k].items() if any(c.name == n_ for c in getattr(spec, kind))}
                    for k, kind in (("cat", "categorical"), ("cont", "continuous"))}
            try:
                controls = self._controls(spec, label)
            except CtrlgenError:
                controls = self._controls(spec, None)
                said.append(f"{model} has no class {label!r}: random labels.")
            if not spec.conditional and str(label or "random").lower() != "random":
                said.append(f"{model} is not class-conditional: no labels.")
            count, nrow, fixed = self._grid(spec, count, controls)
            samples, _ = rt.generate(count, s, label=fixed["label"], cat=mine["cat"], cont=mine["cont"], truncation=as_truncation(truncation))
            pics.append(self._picture(spec, samples, nrow))
            specs.append(spec)
        a, b = specs
        same = (a.noise_dim, a.noise) == (b.noise_dim, b.noise)
        note = (f"Same z: both models take {a.noise_dim}-dim {a.noise} noise, seed {seed}." if same else
                f"Different noise ({a.noise_dim}-dim {a.noise} vs {b.noise_dim}-dim {b.noise}): same seed, not the same z.")
        return pics[0], pics[1], " ".join([note, *said])

    def card(self, model: str) -> str:
        """The model's card and latent spec as Markdown tables; every value from the file is escaped text."""
        from ctrlgen.serve.ui_card import card_markdown, card_rows

        rt = self.registry.get(model)
        return card_markdown(card_rows(model, self.registry.paths[model].name, rt.backend, rt.spec, dict(rt.card)))
