"""LatentSpec: the one contract between training, export, runtime, CLI and UI.

A spec says what a generator takes (noise size and distribution, class labels
with names, InfoGAN categorical and continuous codes with ranges) and what it
gives (an image of shape C×H×W or a point of D coordinates).  It travels as
versioned JSON: in checkpoints, in the ONNX metadata (``ctrlgen.spec``), and
back out of them.  Nothing downstream hard-codes a model's shape.

This module needs only numpy: an ONNX-only deployment samples inputs with it.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ctrlgen.errors import CtrlgenError
from ctrlgen.text import plain

SPEC_FORMAT = 1
"""Bumped when the JSON layout changes; readers refuse formats from the future."""

NOISE_KINDS = ("normal", "uniform")
OUTPUT_KINDS = ("image", "points")
BLOCK = 1024
"""Inputs are drawn in blocks of this many samples, each block from its own
seeded stream, so sample i depends only on (seed, i): the same seed gives the
same samples whatever the batch size, chunking or total count."""

_INDEX = re.compile(r"-?[0-9]+")  # a label given as an index (ASCII digits only: int() also takes '²' and '٣')

# Keys of the ONNX metadata_props that make a model self-describing.
SPEC_KEY, CARD_KEY = "ctrlgen.spec", "ctrlgen.card"
# Input names of the public ONNX interface (DESIGN.md).
Z, LABEL, CODE_CAT, CODE_CONT = "z", "label", "code_cat", "code_cont"
Q_OUTPUT = "q_code_cont"  # the optional second output: InfoGAN's Q prediction (ctrlgen export --q-head)


class Draws:
    """The random draws a spec needs, for one array library (``LatentSpec.draw`` says in which order):
    ``normal(shape)`` float32, ``uniform(low, high, shape)`` float32, ``integers(n, count)`` int64 in [0, n),
    ``stack(columns)`` as the columns of a matrix."""

    def normal(self, shape: tuple[int, ...]) -> Any: ...

    def uniform(self, low: float, high: float, shape: tuple[int, ...]) -> Any: ...

    def integers(self, n: int, count: int) -> Any: ...

    def stack(self, columns: list[Any]) -> Any: ...


class NumpyDraws(Draws):
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def normal(self, shape):
        return self.rng.standard_normal(shape, dtype=np.float32)

    def uniform(self, low, high, shape):
        return self.rng.uniform(low, high, shape).astype(np.float32)

    def integers(self, n, count):
        return self.rng.integers(0, n, count, dtype=np.int64)

    def stack(self, columns):
        return np.stack(columns, 1)


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
        raise CtrlgenError(f"{kind} name {name!r} is invalid; use letters, digits, '_' or '-'")



def name_index(names: Sequence[str], value: str) -> int | None:
    """The index of ``value`` among ``names`` (class names, named code values), case-insensitive; None if absent."""
    lowered = [str(n).lower() for n in names]
    return lowered.index(value.lower()) if value.lower() in lowered else None

@dataclass(frozen=True)
class CategoricalCode:
    """An InfoGAN categorical code: an integer in [0, n), sampled uniformly.

    ``values``: a name per value (empty: unnamed).  A semi-supervised run ties value k to class k of
    its data (``[techniques.semi_supervised]``) and names the values by class, so people can see that
    ``c=3`` is "Dress"; specs written before names existed have none and load as before."""

    name: str
    n: int
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from ctrlgen.limits import MAX_LABEL_CHARS

        _check_name("categorical code", self.name)
        if not isinstance(self.n, int) or self.n < 2:
            raise CtrlgenError(f"categorical code {self.name!r} needs n >= 2 values, got {self.n!r}")
        object.__setattr__(self, "values", (self.values,) if isinstance(self.values, str) else tuple(self.values))  # "abc": one name
        if self.values and len(self.values) != self.n:
            raise CtrlgenError(f"categorical code {self.name!r} has {self.n} values but {len(self.values)} value names; give one name per value or none")
        for v in self.values:
            if not isinstance(v, str) or not v or len(v) > MAX_LABEL_CHARS:
                raise CtrlgenError(f"categorical code {self.name!r}: value names must be non-empty strings of at most "
                                   f"{MAX_LABEL_CHARS} characters, got {str(v)[:40]!r}")
        if len(set(self.values)) != len(self.values):
            raise CtrlgenError(f"categorical code {self.name!r}: value names must be unique")


@dataclass(frozen=True)
class ContinuousCode:
    """An InfoGAN continuous code, sampled uniformly in [low, high]."""

    name: str
    low: float = -1.0
    high: float = 1.0

    def __post_init__(self) -> None:
        _check_name("continuous code", self.name)
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise CtrlgenError(
                f"continuous code {self.name!r} needs finite low < high, got [{self.low}, {self.high}]"
            )


@dataclass(frozen=True)
class LatentSpec:
    """What a generator takes and gives.  Validated on construction."""

    noise_dim: int
    output_kind: str  # "image" (C, H, W) in [-1, 1] or "points" (D,)
    output_shape: tuple[int, ...]
    noise: str = "normal"  # distribution of z: standard normal or uniform in [-1, 1]
    labels: tuple[str, ...] = ()  # class names; empty means not class-conditional
    categorical: tuple[CategoricalCode, ...] = ()
    continuous: tuple[ContinuousCode, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)  # free-form, e.g. data normalization

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "output_shape", tuple(operator.index(s) for s in self.output_shape))
        except TypeError:
            raise CtrlgenError(f"output shape must be a list of integers, got {self.output_shape!r}") from None
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "categorical", tuple(self.categorical))
        object.__setattr__(self, "continuous", tuple(self.continuous))
        if not isinstance(self.noise_dim, int) or self.noise_dim < 1:
            raise CtrlgenError(f"noise_dim must be a positive integer, got {self.noise_dim!r}")
        if self.noise not in NOISE_KINDS:
            raise CtrlgenError(f"noise {self.noise!r} is unknown; use one of {', '.join(NOISE_KINDS)}")
        if self.output_kind not in OUTPUT_KINDS:
            raise CtrlgenError(f"output kind {self.output_kind!r} is unknown; use one of {', '.join(OUTPUT_KINDS)}")
        want = 3 if self.output_kind == "image" else 1
        if len(self.output_shape) != want or min(self.output_shape) < 1:
            raise CtrlgenError(
                f"{self.output_kind} output shape must have {want} positive dims, got {list(self.output_shape)}"
            )
        if self.output_kind == "image" and self.output_shape[0] not in (1, 3):
            raise CtrlgenError(f"image output must have 1 or 3 channels, got {self.output_shape[0]}")
        if len(self.labels) == 1:
            raise CtrlgenError("a class-conditional spec needs at least 2 labels")
        if len(set(self.labels)) != len(self.labels):
            raise CtrlgenError("label names must be unique")
        names = [c.name for c in self.categorical] + [c.name for c in self.continuous]
        if len(set(names)) != len(names):
            raise CtrlgenError(f"code names must be unique, got {names}")

    # ------------------------------------------------------------------ shape
    @property
    def conditional(self) -> bool:
        return bool(self.labels)

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def input_names(self) -> tuple[str, ...]:
        names = [Z]
        if self.conditional:
            names.append(LABEL)
        if self.categorical:
            names.append(CODE_CAT)
        if self.continuous:
            names.append(CODE_CONT)
        return tuple(names)

    def input_shapes(self, batch: int | str = "batch") -> dict[str, tuple]:
        """Shape of each input; ``batch`` may be a symbolic name."""
        shapes: dict[str, tuple] = {Z: (batch, self.noise_dim)}
        if self.conditional:
            shapes[LABEL] = (batch,)
        if self.categorical:
            shapes[CODE_CAT] = (batch, len(self.categorical))
        if self.continuous:
            shapes[CODE_CONT] = (batch, len(self.continuous))
        return shapes

    # ------------------------------------------------------------------ names
    def label_index(self, value: int | str) -> int:
        """A label given as an index or a class name (case-insensitive)."""
        if not self.conditional:
            raise CtrlgenError("this model is not class-conditional; drop the label")
        if isinstance(value, str) and len(value.strip()) > 12 and _INDEX.fullmatch(value.strip()):  # int() refuses 4,300+ digits
            raise CtrlgenError(f"label {plain(value, 40)} is out of range; use 0..{self.n_classes - 1} or a class name")
        if isinstance(value, str) and not _INDEX.fullmatch(value.strip()):
            if (found := name_index(self.labels, value)) is not None:
                return found
            raise CtrlgenError(f"label {value!r} is unknown; use 0..{self.n_classes - 1} or one of: {', '.join(self.labels)}")
        try:
            idx = int(value.strip()) if isinstance(value, str) else operator.index(value)
        except TypeError:
            raise CtrlgenError(f"label {value!r} is not an index or a class name; use 0..{self.n_classes - 1} or a class name") from None
        if not 0 <= idx < self.n_classes:
            raise CtrlgenError(f"label {plain(idx, 40)} is out of range; use 0..{self.n_classes - 1} or a class name")
        return idx

    def categorical_index(self, name: str) -> int:
        for i, c in enumerate(self.categorical):
            if c.name == name:
                return i
        have = ", ".join(c.name for c in self.categorical) or "none"
        raise CtrlgenError(f"categorical code {name!r} is unknown; this model has: {have}")

    def continuous_index(self, name: str) -> int:
        for i, c in enumerate(self.continuous):
            if c.name == name:
                return i
        have = ", ".join(c.name for c in self.continuous) or "none"
        raise CtrlgenError(f"continuous code {name!r} is unknown; this model has: {have}")

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, seed: int, start: int = 0, truncation: float | None = None) -> dict[str, np.ndarray]:
        """Inputs for samples ``start .. start+n`` of the stream of ``seed``.

        All inputs are always drawn (z, then label, then codes) so that fixing
        one of them (a label, a code) leaves the others, z included, unchanged.
        ``truncation`` t resamples |z| > t for normal noise (the truncation
        trick) and shrinks uniform noise to [-t, t].
        """
        if n < 0:
            raise CtrlgenError(f"sample count must be >= 0, got {n}")
        if truncation is not None and not (truncation > 0 and math.isfinite(truncation)):
            raise CtrlgenError(f"truncation must be a positive number, got {truncation}")
        parts: list[dict[str, np.ndarray]] = []
        first, last = start // BLOCK, (start + n - 1) // BLOCK if n else start // BLOCK - 1
        for block in range(first, last + 1):
            parts.append(self._sample_block(seed, block, truncation))
        out: dict[str, np.ndarray] = {}
        for name in self.input_names:
            full = np.concatenate([p[name] for p in parts]) if parts else np.zeros(
                (0,) + self.input_shapes(0)[name][1:], dtype=np.float32 if name in (Z, CODE_CONT) else np.int64
            )
            offset = start - first * BLOCK
            out[name] = np.ascontiguousarray(full[offset : offset + n])
        return out

    def _sample_block(self, seed: int, block: int, truncation: float | None) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, block, SPEC_FORMAT]))
        return self.draw(BLOCK, NumpyDraws(rng), truncation)

    def draw(self, n: int, src: Draws, truncation: float | None = None) -> dict[str, Any]:
        """The one definition of how inputs are drawn, for any array library (``src``: numpy here, torch in
        the trainer, ``ctrlgen.train.latent``).  Order: z, then a label, then each categorical code, then each
        continuous code; the label is drawn even for an unconditional model, so fixing one input never
        shifts the others' draws."""
        if self.noise == "normal":
            z = src.normal((n, self.noise_dim))
            if truncation is not None:
                bad = abs(z) > truncation
                while bad.any():
                    z[bad] = src.normal((int(bad.sum()),))
                    bad = abs(z) > truncation
        else:
            lim = 1.0 if truncation is None else min(1.0, truncation)
            z = src.uniform(-lim, lim, (n, self.noise_dim))
        out = {Z: z}
        label = src.integers(max(self.n_classes, 1), n)
        cat = [src.integers(c.n, n) for c in self.categorical]
        cont = [src.uniform(c.low, c.high, (n,)) for c in self.continuous]
        if self.conditional:
            out[LABEL] = label
        if cat:
            out[CODE_CAT] = src.stack(cat)
        if cont:
            out[CODE_CONT] = src.stack(cont)
        return out

    # ------------------------------------------------------------------ checking
    def validate_inputs(self, inputs: Mapping[str, Any], extrapolate: bool = False) -> dict[str, np.ndarray]:
        """Check inputs against the spec; return them as contiguous arrays of the right dtype.

        Raises CtrlgenError with one line naming the input, what is wrong, and what is expected.
        ``extrapolate`` allows continuous codes outside their training range.
        """
        want = self.input_shapes()
        extra = sorted(set(inputs) - set(want))
        if extra:
            raise CtrlgenError(f"unexpected input(s) {extra}; this model takes {list(want)}")
        missing = [k for k in want if k not in inputs]
        if missing:
            raise CtrlgenError(f"missing input(s) {missing}; this model takes {list(want)}")
        out: dict[str, np.ndarray] = {}
        batch = None
        for name, shape in want.items():
            arr = np.asarray(inputs[name])
            is_float = name in (Z, CODE_CONT)
            if is_float:
                if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
                    raise CtrlgenError(f"input {name!r} must be float32, got {arr.dtype}")
                arr = arr.astype(np.float32, copy=False)
            else:
                if not np.issubdtype(arr.dtype, np.integer):
                    if np.issubdtype(arr.dtype, np.floating) and arr.size and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
                        pass
                    elif arr.size:
                        raise CtrlgenError(f"input {name!r} must hold integers (int64), got {arr.dtype}")
                arr = arr.astype(np.int64, copy=False)
            if arr.ndim != len(shape) or any(s != d for s, d in zip(shape[1:], arr.shape[1:], strict=False)):
                pretty = "[" + ", ".join(str(s) for s in shape) + "]"
                raise CtrlgenError(f"input {name!r} must have shape {pretty}, got {list(arr.shape)}")
            if batch is None:
                batch = arr.shape[0]
            elif arr.shape[0] != batch:
                raise CtrlgenError(f"input {name!r} has batch {arr.shape[0]} but z has {batch}; give every input the same batch")
            if is_float and not np.all(np.isfinite(arr)):
                raise CtrlgenError(f"input {name!r} contains NaN or inf; give finite values")
            out[name] = np.ascontiguousarray(arr)
        if LABEL in out and out[LABEL].size:
            lo, hi = int(out[LABEL].min()), int(out[LABEL].max())
            if lo < 0 or hi >= self.n_classes:
                bad = lo if lo < 0 else hi
                raise CtrlgenError(f"label {bad} is out of range; use 0..{self.n_classes - 1}")
        if CODE_CAT in out and out[CODE_CAT].size:
            for i, c in enumerate(self.categorical):
                col = out[CODE_CAT][:, i]
                if col.min() < 0 or col.max() >= c.n:
                    bad = int(col.min() if col.min() < 0 else col.max())
                    raise CtrlgenError(f"categorical code {c.name!r} = {bad} is out of range; use 0..{c.n - 1}")
        if CODE_CONT in out and out[CODE_CONT].size and not extrapolate:
            for i, c in enumerate(self.continuous):
                col = out[CODE_CONT][:, i]
                if col.min() < c.low or col.max() > c.high:
                    bad = float(col.min() if col.min() < c.low else col.max())
                    raise CtrlgenError(
                        f"continuous code {c.name!r} = {bad:g} is outside its range [{c.low:g}, {c.high:g}]; use a value inside it"
                    )
        return out

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SPEC_FORMAT,
            "noise_dim": self.noise_dim,
            "noise": self.noise,
            "output": {"kind": self.output_kind, "shape": list(self.output_shape)},
            "labels": list(self.labels),
            "categorical": [{"name": c.name, "n": c.n, **({"values": list(c.values)} if c.values else {})} for c in self.categorical],
            "continuous": [{"name": c.name, "low": c.low, "high": c.high} for c in self.continuous],
            "extra": dict(self.extra),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Any) -> LatentSpec:
        from ctrlgen.limits import check_spec_sizes

        if not isinstance(d, dict):
            raise CtrlgenError("spec must be a JSON object")
        fmt = d.get("format")
        if not isinstance(fmt, int):
            raise CtrlgenError("spec has no integer 'format' field; re-export the model with ctrlgen export")
        if fmt > SPEC_FORMAT:
            raise CtrlgenError(
                f"spec format {fmt} is newer than this ctrlgen understands ({SPEC_FORMAT}); upgrade ctrlgen"
            )
        known = {"format", "noise_dim", "noise", "output", "labels", "categorical", "continuous", "extra"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise CtrlgenError(f"spec has unknown field(s) {unknown}; expected only {sorted(known)}")
        try:
            check_spec_sizes(d)
            out = d["output"]
            return cls(
                noise_dim=d["noise_dim"],
                noise=d.get("noise", "normal"),
                output_kind=out["kind"],
                output_shape=tuple(out["shape"]),
                labels=tuple(str(x) for x in d.get("labels", [])),
                categorical=tuple(CategoricalCode(c["name"], c["n"], c.get("values", ())) for c in d.get("categorical", [])),
                continuous=tuple(
                    ContinuousCode(c["name"], float(c.get("low", -1.0)), float(c.get("high", 1.0)))
                    for c in d.get("continuous", [])
                ),
                extra=dict(d.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise CtrlgenError(f"spec is malformed ({type(e).__name__}: {e}); re-export the model") from None
        except CtrlgenError as e:
            raise CtrlgenError(f"spec is invalid ({e}); re-export the model") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> LatentSpec:
        from ctrlgen.limits import loads_json

        if not isinstance(text, (str, bytes, bytearray)):
            raise CtrlgenError(f"spec must be JSON text, got {type(text).__name__}; re-export the model")
        return cls.from_dict(loads_json(text, "spec", "re-export the model"))

    def describe(self) -> list[tuple[str, str]]:
        """(field, value) rows for people."""
        rows = [("noise", f"{self.noise_dim} dims, {self.noise}")]
        if self.conditional:
            rows.append(("labels", ", ".join(f"{i}={n}" for i, n in enumerate(self.labels))))
        for c in self.categorical:
            named = ": " + ", ".join(f"{k}={v}" for k, v in enumerate(c.values)) if c.values else ""
            rows.append((f"categorical {c.name}", f"{c.n} values (0..{c.n - 1}){named}"))
        for c in self.continuous:
            rows.append((f"continuous {c.name}", f"[{c.low:g}, {c.high:g}]"))
        rows.append(("output", f"{self.output_kind} {'x'.join(map(str, self.output_shape))}"))
        rows.append(("inputs", ", ".join(self.input_names)))
        return rows

