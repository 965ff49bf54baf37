"""Controls: the parts of a model's input a person fixes, parsed once and checked against its LatentSpec.

``generate``, ``sweep``, ``interpolate``, the web UI and its API all turn
what people type into a ``Controls`` here, with one grammar:

* **label**: a class name (any case) or index (``Trouser``, ``1``);
  ``all``: every class, one line of the picture per class (a row in the
  CLI, a column in the UI); ``random`` or nothing: drawn per sample.
* **codes**: ``NAME=VALUE`` by code name (``c=3``, ``width=0.5``).  A
  categorical value is an index ``0..n-1``, a continuous value a finite
  number inside the code's range; ``random`` leaves the code drawn.
  Several assignments are separated by spaces, commas or semicolons
  (``"c=3, width=0.5"``); ``--cat`` and ``--cont`` take one each and also
  check the kind.
* **keyframes** (walks only): a comma list gives one value per keyframe,
  ``--label 0,Trouser`` or ``--code width=-1,1``.

Every code and the label is set at most once: ``--cat c=1 --cat c=7`` is
an error, not "the last one wins".  Whatever is not fixed is drawn from the
seed (``LatentSpec.sample``), so fixing one input leaves the others as they were.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ctrlgen.errors import CtrlgenError
from ctrlgen.spec import LatentSpec, name_index
from ctrlgen.text import plain

ALL, RANDOM = "all", "random"
# The start of each NAME= (a name not preceded by a name character): one pass over the text.  A lazy
# "NAME = VALUE up to the next NAME=" pattern took time quadratic in the text, and 100,000 characters of
# codes from a UI request held the server for minutes.
_NAME_EQUALS = re.compile(r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]+)\s*=")


@dataclass(frozen=True)
class Controls:
    """Fixed inputs: label(s) and code values, each a tuple (one value, or one per keyframe of a walk)."""

    labels: tuple[int, ...] = ()  # () = drawn per sample
    every_class: bool = False  # label "all": a grid with a line per class
    cat: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    cont: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def label(self) -> int | None:
        """The one fixed label, or None when drawn (or "all")."""
        return self.labels[0] if self.labels else None

    def fixed(self) -> dict[str, Any]:
        """``label``, ``cat`` and ``cont`` overrides for ``Runtime.inputs`` / ``generate`` / ``stream`` (one value each)."""
        return {"label": self.label, "cat": {k: v[0] for k, v in self.cat.items()}, "cont": {k: v[0] for k, v in self.cont.items()}}

    def keyframes(self) -> tuple[list[int] | None, dict[str, list[int]], dict[str, list[float]]]:
        """(labels, cats, conts) per keyframe for a walk; lists cycle when shorter than the walk's keyframes."""
        return (list(self.labels) or None, {k: list(v) for k, v in self.cat.items()}, {k: list(v) for k, v in self.cont.items()})

    def with_cont(self, name: str, values: Sequence[float]) -> Controls:
        return replace(self, cont={**self.cont, name: tuple(float(v) for v in values)})


def parse_controls(
    spec: LatentSpec,
    *,
    label: Any = None,
    codes: str | Sequence[str] = (),
    cat: Sequence[str] | Mapping[str, Any] = (),
    cont: Sequence[str] | Mapping[str, Any] = (),
    keyframes: bool = False,
) -> Controls:
    """Controls from user input, or a one-line ``CtrlgenError`` naming the problem and the fix.

    ``codes``: free text (or a list of ``NAME=VALUE``) where the name says the kind; ``cat``/``cont``:
    ``NAME=VALUE`` items of that kind (``--cat``, ``--cont``), or a mapping name -> value (UI controls).
    ``keyframes`` allows comma lists (a value per keyframe of a walk)."""
    labels, every = _labels(spec, label, keyframes)
    cats: dict[str, tuple[int, ...]] = {}
    conts: dict[str, tuple[float, ...]] = {}
    seen: dict[str, str] = {}
    items = [(n, v, None, "code") for n, v in _code_text(spec, codes)]
    items += [(n, v, "cat", "--cat") for n, v in _items(cat, "cat")]
    items += [(n, v, "cont", "--cont") for n, v in _items(cont, "cont")]
    for name, raw, kind, where in items:
        if name in seen:
            raise CtrlgenError(f"code {name} is given twice ({seen[name]} and {plain(raw, 60)}); give each code once")
        seen[name] = plain(raw, 60)
        is_cat = any(c.name == name for c in spec.categorical)
        is_cont = any(c.name == name for c in spec.continuous)
        if kind == "cat" and not is_cat:
            spec.categorical_index(name)  # one line naming the model's categorical codes
        if kind == "cont" and not is_cont:
            spec.continuous_index(name)
        if not (is_cat or is_cont):
            have = ", ".join([c.name for c in spec.categorical] + [c.name for c in spec.continuous]) or "none"
            raise CtrlgenError(f"code {name!r} is unknown; this model's codes are: {have}")
        values = _split(raw, name, keyframes)
        if values is None:  # "random": left drawn
            continue
        if is_cat:
            c = spec.categorical[spec.categorical_index(name)]
            what = f"--cat {name}" if where == "--cat" else f"categorical code {name}"
            cats[name] = tuple(_int_value(v, what, c.n, c.values) for v in values)
        else:
            c = spec.continuous[spec.continuous_index(name)]
            what = f"--cont {name}" if where == "--cont" else f"continuous code {name}"
            conts[name] = tuple(_float_value(v, what, c.name, c.low, c.high) for v in values)
    return Controls(labels, every, cats, conts)


def example(spec: LatentSpec) -> str:
    parts = [f"{c.name}=0" for c in spec.categorical[:1]] + [f"{c.name}={(c.low + c.high) / 2:g}" for c in spec.continuous[:1]]
    return " ".join(parts) or "this model has no codes"


# --------------------------------------------------------------------------- pieces of the grammar
def _labels(spec: LatentSpec, label: Any, keyframes: bool) -> tuple[tuple[int, ...], bool]:
    if label is None or (isinstance(label, str) and label.strip().lower() in ("", RANDOM)):
        return (), False
    if isinstance(label, float) and not math.isfinite(label):
        raise CtrlgenError(f"label {label} is not a class; use a class index or name")
    if isinstance(label, float) and label == int(label):
        label = int(label)
    if isinstance(label, str) and label.strip().lower() == ALL:
        if not spec.conditional:
            raise CtrlgenError("this model is not class-conditional; drop --label")
        if keyframes:
            raise CtrlgenError("label 'all' makes a grid; a walk takes one label per keyframe (e.g. 0,Trouser)")
        return (), True
    if not spec.conditional:
        raise CtrlgenError("this model is not class-conditional; drop --label")
    if isinstance(label, (list, tuple)):
        parts = [str(v) for v in label]
    elif isinstance(label, str):
        parts = label.split(",")
        if any(not v.strip() for v in parts):
            fix = "give one index or class name per keyframe, e.g. 0,1" if keyframes else "give one index or class name"
            raise CtrlgenError(f"label {label!r} has an empty entry between commas; {fix}")
    else:
        parts = [label]
    if len(parts) > 1 and not keyframes:
        raise CtrlgenError(f"give one label, not {len(parts)}; only a walk (interpolate) takes a label per keyframe")
    return tuple(spec.label_index(v.strip() if isinstance(v, str) else v) for v in parts), False


def _texts(value: Any, what: str) -> list[str]:
    """Text items from a request: a string, or a list of strings (an API client may send any JSON)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise CtrlgenError(f"{what} must be text like NAME=VALUE (or a list of such), got a {type(value).__name__}")


def _code_text(spec: LatentSpec, text: str | Sequence[str]) -> list[tuple[str, str]]:
    """``NAME=VALUE`` pairs from text such as ``c=3, u0=0.5`` (a value runs to the next ``NAME=``; one trailing
    ``,`` or ``;`` between pairs is a separator)."""
    joined = " ".join(_texts(text, "codes")).strip()
    if not joined:
        return []
    names = list(_NAME_EQUALS.finditer(joined))
    if not names or names[0].start() != 0:
        raise CtrlgenError(f"codes {plain(joined, 80)!r} must look like NAME=VALUE (e.g. {example(spec)})")
    out = []
    for m, following in zip(names, [*names[1:], None], strict=True):
        value = joined[m.end() : following.start() if following else len(joined)].rstrip()
        if value.endswith((";", ",")):
            value = value[:-1].rstrip()
        out.append((m.group(1), value.strip().strip(",")))
    return out


def _items(items: Sequence[str] | Mapping[str, Any], option: str) -> list[tuple[str, Any]]:
    if isinstance(items, Mapping):
        return [(str(k), v) for k, v in items.items()]
    out = []
    for item in _texts(items, f"--{option}"):
        if "=" not in item:
            raise CtrlgenError(f"--{option} {item!r} must look like NAME=VALUE")
        name, value = item.split("=", 1)
        out.append((name.strip(), value.strip()))
    return out


def _split(raw: Any, name: str, keyframes: bool) -> list[Any] | None:
    """The value(s) of one assignment; None for "random"."""
    if raw is None or (isinstance(raw, str) and raw.strip().lower() == RANDOM):
        return None
    if not isinstance(raw, str):
        return [raw]
    values = [v.strip() for v in raw.split(",")] if keyframes else [raw.strip()]
    if not raw.strip() or any(not v for v in values):
        raise CtrlgenError(f"code {name} has no value; write {name}=VALUE")
    return values


def _int_value(raw: Any, what: str, n: int, names: Sequence[str] = ()) -> int:
    """A categorical value in 0..n-1, or one of its value names where the code has them (a semi-supervised
    model's c=Dress, case-insensitive); else one line naming what is accepted."""
    if isinstance(raw, float) and raw == int(raw):
        raw = int(raw)
    if names and isinstance(raw, str) and (found := name_index(names, raw.strip())) is not None:
        return found
    try:
        v = int(raw) if isinstance(raw, int) and not isinstance(raw, bool) else int(plain(raw, 40))
    except ValueError:  # also 4,300+ digits, which int() refuses (plain cut them to 40 and '...')
        named = f" or one of: {', '.join(names)}" if names else ""
        raise CtrlgenError(f"{what}={plain(raw, 60)!r} is not an integer; use 0..{n - 1}{named}") from None
    if not 0 <= v < n:
        raise CtrlgenError(f"{what}={plain(v, 60)} is out of range; use 0..{n - 1}")
    return v


def _float_value(raw: Any, what: str, name: str, low: float, high: float) -> float:
    """A finite number inside [low, high], else one line naming the range."""
    try:
        v = float(raw)
    except (TypeError, ValueError):
        raise CtrlgenError(f"{what}={plain(raw, 60)!r} is not a number; use a value in [{low:g}, {high:g}]") from None
    except OverflowError:  # an integer past float's range
        v = math.inf
    if not math.isfinite(v):
        raise CtrlgenError(f"{what}={plain(raw, 60)} is not finite; use a value in [{low:g}, {high:g}]")
    if not low <= v <= high:
        raise CtrlgenError(f"continuous code {name!r} = {v:g} is outside its range [{low:g}, {high:g}]; use a value inside it")
    return v
