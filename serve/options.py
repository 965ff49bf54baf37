"""Options several commands share, and option groups: a dataclass of options a command receives as one object.

``@grouped(out=OutputOptions)`` lets ``def generate(model, ..., out: OutputOptions)``
declare ``--output``, ``--format``, ... once, in the dataclass: typer sees the
fields as ordinary options (the command line is the same as if they were
parameters), and the command receives one ``OutputOptions``.  Only typer is
imported here, so ``ctrlgen --help`` stays instant.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from ctrlgen.errors import CtrlgenError

Model = Annotated[str | None, typer.Argument(help="An .onnx file, checkpoint, run directory or shipped model name (default: fashion-cgan).")]
Seed = Annotated[int, typer.Option(help="Random seed: row/walk i uses sample i of this seed.")]
Truncation = Annotated[float | None, typer.Option(help="Resample |z| above this (truncation trick).")]
Scale = Annotated[int, typer.Option(help="Upscale factor of the images (1..16).")]
Force = Annotated[bool, typer.Option(help="Overwrite an existing output.")]
Threads = Annotated[int | None, typer.Option(help="ONNX Runtime / torch threads (default: all cores).")]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda.")]


@dataclass(frozen=True)
class Runner:
    """Where a model runs (sweep, interpolate)."""

    threads: Threads = None
    device: Device = "auto"

    def open(self, model: str | None):
        return open_model(model, self.threads, self.device)


def check_scale(scale: int) -> None:
    if not 1 <= scale <= 16:
        raise CtrlgenError(f"--scale must be in 1..16, got {scale}")


def open_model(model: str | None, threads: int | None = None, device: str = "auto", precision: str | None = None,
               runtime: str = "onnxruntime"):
    """The runtime of a MODEL argument (a path, a shipped model's name, or None for the default), on ONNX
    Runtime or, with ``runtime="openvino"``, OpenVINO (ctrlgen/runtime_openvino.py)."""
    from ctrlgen.models import resolve_model
    from ctrlgen.runtime_openvino import open_runtime

    return open_runtime(runtime, resolve_model(model), threads=threads, device=device, precision=precision)


def grouped(**groups: type) -> Callable:
    """Replace each parameter named in ``groups`` by the fields of its dataclass (typer options), and
    call the command with one instance per group."""

    def wrap(fn: Callable) -> Callable:
        hints = typing.get_type_hints(fn, include_extras=True)
        params: list[inspect.Parameter] = []
        fields_of: dict[str, list[str]] = {}
        for p in inspect.signature(fn).parameters.values():
            if p.name not in groups:
                params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[p.name]))
                continue
            cls = groups[p.name]
            field_hints = typing.get_type_hints(cls, include_extras=True)
            fields_of[p.name] = [f.name for f in dataclasses.fields(cls)]
            params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=field_hints[f.name],
                                         default=f.default_factory() if f.default is dataclasses.MISSING else f.default)
                       for f in dataclasses.fields(cls)]

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            for name, cls in groups.items():
                kwargs[name] = cls(**{f: kwargs.pop(f) for f in fields_of[name]})
            return fn(**kwargs)

        del command.__wrapped__  # typer must read the flat signature below, not fn's
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return wrap


def once(values: list[str], option: str, hint: str = "") -> str | None:
    """The value of a single-valued option that typer collects as a list (so that one given twice is
    noticed: click would keep the last one silently); None if not given."""
    if len(values) > 1:
        from ctrlgen.errors import CtrlgenError
        from ctrlgen.text import plain

        raise CtrlgenError(f"{option} is given {len(values)} times ({plain(' and '.join(values), 80)}); give it once"
                           + (f" ({hint})" if hint else ""))
    if values and not values[0].strip():  # an empty --label '' read as "random", silently
        from ctrlgen.errors import CtrlgenError

        raise CtrlgenError(f"{option} is given an empty value; give one, or leave {option} out" + (f" ({hint})" if hint else ""))
    return values[0] if values else None
