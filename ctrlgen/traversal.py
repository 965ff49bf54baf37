"""Latent traversals: code and label sweeps, and spherical walks through z.

The CLI (``ctrlgen sweep``, ``ctrlgen interpolate``) and the web UI share
these functions.  They build model inputs from a LatentSpec and fixed
``Controls``, and lay the outputs out as pictures (``ctrlgen.grids``); the
only model call is ``run`` (chunked).

* A **sweep** keeps z fixed along each row and varies one factor along the
  columns: the label (every class), a categorical code (every value) or a
  continuous code (``steps`` values across its range).
* A **walk** visits ``keys`` keyframes (z drawn from the seed, optionally a
  label or code value per keyframe) and moves between them: z by spherical
  interpolation (slerp), continuous codes linearly; labels and categorical
  codes are discrete, so they switch halfway between two keyframes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ctrlgen.controls import Controls
from ctrlgen.errors import CtrlgenError
from ctrlgen.grids import LABEL_FACTOR, mixture_means, picture
from ctrlgen.spec import CODE_CAT, CODE_CONT, LABEL, LatentSpec, Z

RUN_CHUNK = 1024


# --------------------------------------------------------------------------- running
def run(rt: Any, inputs: Mapping[str, np.ndarray], chunk: int = RUN_CHUNK, extrapolate: bool = False) -> np.ndarray:
    """The model's outputs for ``inputs``, called ``chunk`` samples at a time."""
    n = len(inputs[Z])
    parts = [rt(extrapolate=extrapolate, **{k: v[i : i + chunk] for k, v in inputs.items()}) for i in range(0, n, chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, *rt.spec.output_shape), np.float32)


# --------------------------------------------------------------------------- sweeps
@dataclass(frozen=True)
class Axis:
    """What varies along a sweep: the label, a categorical code or a continuous code."""

    kind: str  # "label", "cat" or "cont"
    name: str
    values: tuple
    titles: tuple[str, ...]


def sweep_factors(spec: LatentSpec) -> list[str]:
    """Everything a sweep can vary: "label" (conditional models) and every code name."""
    return ([LABEL_FACTOR] if spec.conditional else []) + [c.name for c in spec.categorical] + [c.name for c in spec.continuous]


def check_sweepable(spec: LatentSpec) -> None:
    if spec.output_kind != "image":
        raise CtrlgenError("sweeps need an image model; this one gives points: use generate or interpolate")


def sweep_axis(spec: LatentSpec, factor: str, steps: int = 10) -> Axis:
    """The values of ``factor`` across a sweep: all classes, all categories, or ``steps`` values over a range."""
    have = ", ".join(sweep_factors(spec)) or "nothing (no label, no codes)"
    if factor in (LABEL_FACTOR, "labels"):
        if not spec.conditional:
            raise CtrlgenError(f"this model is not class-conditional, so there are no labels to sweep; it can sweep: {have}")
        return Axis("label", LABEL_FACTOR, tuple(range(spec.n_classes)), spec.labels)
    for c in spec.categorical:
        if c.name == factor:
            # Named values (a semi-supervised code) are captioned by name: "Dress", not "c=3".
            titles = tuple(c.values) if c.values else tuple(f"{c.name}={v}" for v in range(c.n))
            return Axis("cat", c.name, tuple(range(c.n)), titles)
    for c in spec.continuous:
        if c.name == factor:
            if not isinstance(steps, (int, np.integer)) or steps < 2:
                raise CtrlgenError(f"steps must be an integer of at least 2, got {steps!r}")
            vals = tuple(float(v) for v in np.linspace(c.low, c.high, int(steps), dtype=np.float64))
            return Axis("cont", c.name, vals, tuple(f"{v:+.2f}" for v in vals))
    raise CtrlgenError(f"{factor!r} is not something this model can sweep; it can sweep: {have}")


def sweep_inputs(spec: LatentSpec, base: Mapping[str, np.ndarray], axis: Axis) -> dict[str, np.ndarray]:
    """Row r (base sample r) times column c (axis value c), row-major."""
    rows, cols = len(base[Z]), len(axis.values)
    out = {k: np.repeat(np.asarray(v), cols, axis=0) for k, v in base.items()}
    values = np.tile(np.asarray(axis.values), rows)
    if axis.kind == "label":
        out[LABEL] = values.astype(np.int64)
    elif axis.kind == "cat":
        out[CODE_CAT][:, spec.categorical_index(axis.name)] = values
    else:
        out[CODE_CONT][:, spec.continuous_index(axis.name)] = values
    return out


def sweep_order(rows: int, cols: int, transpose: bool) -> np.ndarray:
    """Indices that lay out a row-major (rows x cols) sweep, or its transpose."""
    idx = np.arange(rows * cols).reshape(rows, cols)
    return (idx.T if transpose else idx).reshape(-1)


@dataclass
class SweepResult:
    image: np.ndarray  # (H, W, C) uint8, captioned when asked
    samples: np.ndarray  # (rows * cols, ...) the raw outputs, row-major
    inputs: dict[str, np.ndarray]
    axis: Axis
    rows: int


def sweep(
    rt: Any,
    factor: str,
    *,
    steps: int = 10,
    rows: int = 8,
    seed: int = 0,
    controls: Controls | None = None,
    truncation: float | None = None,
    captions: bool = True,
    transpose: bool = False,
    scale: int = 2,
    max_cells: int | None = None,
    base: Mapping[str, np.ndarray] | None = None,
    font_size: int | None = None,
) -> SweepResult:
    """A traversal grid: rows = samples 0..rows-1 of ``seed``, columns = the factor's values (``transpose`` swaps).

    ``base``: the inputs of the rows (``rows`` samples) instead of drawing them, e.g. a label per row or a
    chosen sample; the swept factor still varies along the columns."""
    spec = rt.spec
    check_sweepable(spec)
    if not isinstance(rows, (int, np.integer)) or rows < 1:
        raise CtrlgenError(f"rows must be a positive integer, got {rows!r}")
    axis = sweep_axis(spec, factor, steps)
    cells = rows * len(axis.values)
    if max_cells is not None and cells > max_cells:
        raise CtrlgenError(f"a sweep of {rows} x {len(axis.values)} = {cells} images is over the limit of {max_cells}; use fewer rows or steps")
    controls = controls or Controls()
    if controls.every_class and axis.kind != "label":
        raise CtrlgenError("label 'all' asks for a grid of classes; fix one class (or random) for a code sweep, or sweep the labels")
    fixed = controls.fixed()
    if axis.kind == "label":
        fixed["label"] = None  # the columns set it
    if base is None:
        base = rt.inputs(rows, seed, truncation=truncation, **fixed)
    elif len(base[Z]) != rows:
        raise CtrlgenError(f"{len(base[Z])} base samples for {rows} rows; give one per row")
    inputs = sweep_inputs(spec, base, axis)
    samples = run(rt, inputs)
    cols = len(axis.values)
    order = sweep_order(rows, cols, transpose)
    image = picture(spec, samples[order], nrow=rows if transpose else cols, scale=scale)
    if captions:
        from ctrlgen.captions import caption

        down, across = (axis.name, f"{rows} z") if transpose else (f"{rows} z", axis.name)
        title = f"across: {across}; down: {down} (seed {seed})"
        titles = list(axis.titles)
        image = caption(image, col_titles=None if transpose else titles, row_titles=titles if transpose else None, title=title,
                        font_size=font_size)
    return SweepResult(image, samples, inputs, axis, rows)


# --------------------------------------------------------------------------- walks
def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical interpolation from ``a`` (t=0) to ``b`` (t=1) along the last axis.

    ``t`` broadcasts against ``a.shape[:-1]``.  Nearly parallel vectors fall
    back to linear interpolation (the formula divides by sin of their angle).
    """
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    t = np.asarray(t, np.float64)[..., None]
    na = np.linalg.norm(a64, axis=-1, keepdims=True)
    nb = np.linalg.norm(b64, axis=-1, keepdims=True)
    cos = np.sum(a64 * b64, axis=-1, keepdims=True) / np.maximum(na * nb, 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    so = np.sin(omega)
    small = so < 1e-6
    safe = np.where(small, 1.0, so)
    wa = np.where(small, 1.0 - t, np.sin((1.0 - t) * omega) / safe)
    wb = np.where(small, t, np.sin(t * omega) / safe)
    return (wa * a64 + wb * b64).astype(np.asarray(a).dtype if np.issubdtype(np.asarray(a).dtype, np.floating) else np.float32)


def walk_positions(frames: int, keys: int, loop: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(segment, t) per frame: frame f lies a fraction t of the way from keyframe segment to segment+1.

    A loop ends one step before the first keyframe, so a looping GIF has no repeated frame.
    """
    if not isinstance(frames, (int, np.integer)) or frames < 2:
        raise CtrlgenError(f"frames must be an integer of at least 2, got {frames!r}")
    if not isinstance(keys, (int, np.integer)) or keys < 1:
        raise CtrlgenError(f"keyframes must be a positive integer, got {keys!r}")
    if keys < 2:  # one keyframe: every frame is the same picture (a still, not a walk)
        raise CtrlgenError("a walk through 1 keyframe stands still; ask for 2 or more keyframes, or give 2 or more labels or code values to walk between")
    segments = keys if loop else keys - 1
    u = np.arange(frames) * segments / frames if loop else np.linspace(0.0, segments, frames)
    seg = np.minimum(np.floor(u).astype(np.int64), segments - 1)
    return seg, u - seg


def walk_keyframes(
    spec: LatentSpec,
    base: Mapping[str, np.ndarray],
    keys: int,
    labels: Sequence[int] | None = None,
    cats: Mapping[str, Sequence[int]] | None = None,
    conts: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, np.ndarray]:
    """Inputs of ``keys`` keyframes for each walk: base sample k*walks + w is keyframe k of walk w.

    Only z differs between keyframes unless asked: each walk keeps the label
    and codes of its first keyframe.  Per-keyframe values (``labels``,
    ``cats``, ``conts``) cycle when shorter than ``keys``.
    """
    n = len(base[Z])
    if n % keys:
        raise CtrlgenError(f"{n} base samples do not split into {keys} keyframes")
    walks = n // keys
    out = {k: np.asarray(v).reshape(keys, walks, *np.asarray(v).shape[1:]).copy() for k, v in base.items()}
    for name, x in out.items():
        if name != Z:
            x[1:] = x[0]
    for k in range(keys):
        if labels:
            out[LABEL][k] = labels[k % len(labels)]
        for name, vals in (cats or {}).items():
            out[CODE_CAT][k, :, spec.categorical_index(name)] = vals[k % len(vals)]
        for name, vals in (conts or {}).items():
            out[CODE_CONT][k, :, spec.continuous_index(name)] = vals[k % len(vals)]
    return out


def walk_inputs(keyframes: Mapping[str, np.ndarray], frames: int, loop: bool = True) -> dict[str, np.ndarray]:
    """Inputs of every frame (frame-major: frame f, walk w at f*walks + w) between the keyframes."""
    keys = len(keyframes[Z])
    seg, t = walk_positions(frames, keys, loop)
    nxt = (seg + 1) % keys
    out: dict[str, np.ndarray] = {}
    for name, x in keyframes.items():
        a, b = x[seg], x[nxt]  # (frames, walks, ...)
        tt = t.reshape(-1, *([1] * (a.ndim - 1)))
        if name == Z:
            v = slerp(a, b, t[:, None])
        elif name == CODE_CONT:
            v = ((1 - tt) * a + tt * b).astype(np.float32)
        else:
            v = np.where(tt < 0.5, a, b)
        out[name] = np.ascontiguousarray(v.reshape(frames * a.shape[1], *a.shape[2:]))
    return out


def keyframe_count(keys: int, controls: Controls | None) -> int:
    """The keyframes a walk visits: ``keys``, or more where labels or code values are given for more."""
    labels, cats, conts = (controls or Controls()).keyframes()
    lists = [list(labels or [])] + [list(v) for v in (cats or {}).values()] + [list(v) for v in (conts or {}).values()]
    return max([keys, *(len(v) for v in lists)])


def check_gif_size(spec: LatentSpec, frames: int, walks: int, scale: int) -> None:
    """Refuse, before any work, a GIF whose frames (``walks`` images each, ``scale`` times their size) would not fit."""
    from ctrlgen.limits import MAX_FRAME_PIXELS, MAX_GIF_PIXELS

    if spec.output_kind == "points":
        return  # a fixed-size scatter plot per frame
    frame = walks * spec.output_shape[-2] * spec.output_shape[-1] * scale**2
    if frame > MAX_FRAME_PIXELS or frame * frames > MAX_GIF_PIXELS:
        raise CtrlgenError(f"{walks:,} walks at --scale {scale} make frames of {frame:,} px, {frame * frames:,} px over {frames:,} frames: "
                           f"over the limit of {MAX_FRAME_PIXELS:,} px a frame and {MAX_GIF_PIXELS:,} in all; "
                           "use fewer walks or frames or a smaller --scale")


def walk(
    rt: Any,
    *,
    frames: int = 48,
    keys: int = 4,
    walks: int = 1,
    seed: int = 0,
    controls: Controls | None = None,
    truncation: float | None = None,
    loop: bool = True,
    scale: int = 2,
    max_samples: int | None = None,
    first: Mapping[str, np.ndarray] | None = None,
) -> list[np.ndarray]:
    """GIF frames of ``walks`` parallel walks through ``keys`` keyframes (a grid per frame, or a point cloud).

    ``controls`` (parsed with ``keyframes=True``) give labels and code values per keyframe.  ``first``:
    the inputs of the first keyframe of each walk (``walks`` samples) instead of drawing them; the
    walks keep their label and codes unless ``controls`` set them per keyframe."""
    spec = rt.spec
    labels, cats, conts = (controls or Controls()).keyframes()
    if not isinstance(walks, (int, np.integer)) or walks < 1:
        raise CtrlgenError(f"walks must be a positive integer, got {walks!r}")
    keys = keyframe_count(keys, controls)
    from ctrlgen.limits import MAX_KEYS

    if keys > MAX_KEYS:  # --keys is bounded, but a list of labels or code values sets the count too
        raise CtrlgenError(f"a walk through {keys:,} keyframes (one per label or code value given) is over the limit of {MAX_KEYS:,}; give fewer")
    walk_positions(frames, keys, loop)  # checks frames and keys before any work
    if max_samples is not None and frames * walks > max_samples:
        raise CtrlgenError(f"{frames} frames x {walks} walks = {frames * walks} samples is over the limit of {max_samples}; use fewer")
    check_gif_size(spec, frames, walks, scale)
    base = rt.inputs(keys * walks, seed, truncation=truncation)
    if first is not None:
        if len(first[Z]) != walks:
            raise CtrlgenError(f"{len(first[Z])} first keyframes for {walks} walks; give one per walk")
        base = {k: np.concatenate([np.asarray(first[k], v.dtype), v[walks:]]) for k, v in base.items()}
    inputs = walk_inputs(walk_keyframes(spec, base, keys, labels, cats, conts), frames, loop)
    samples = run(rt, inputs).reshape(frames, walks, *spec.output_shape)
    extent = None
    if spec.output_kind == "points":
        ref = mixture_means(spec)
        ref = samples.reshape(-1, samples.shape[-1]) if ref is None else ref
        finite = np.abs(ref[np.isfinite(ref).all(1)])
        extent = float(finite.max()) * 1.25 + 1e-3 if len(finite) else 1.0
    return [picture(spec, s, scale=scale, extent=extent) for s in samples]
