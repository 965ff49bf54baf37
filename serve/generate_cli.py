"""The sampling commands: ``ctrlgen generate`` and ``ctrlgen info``.

Registered on the app in ``cli.py``.  Heavy imports (onnxruntime, torch)
happen inside the commands so ``ctrlgen --help`` stays instant.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from ctrlgen.errors import CtrlgenError
from ctrlgen.serve.options import Device, Model, Threads, grouped, once, open_model


class Format(str, Enum):
    grid = "grid"
    png_dir = "png-dir"
    npz = "npz"


@dataclass(frozen=True)
class LatentOptions:
    """What the samples are asked to be (parsed into ``ctrlgen.controls.Controls``)."""

    label: Annotated[list[str], typer.Option(metavar="LABEL", help="Class index or name for every sample, 'all' for a row per class, 'random' (default: all).")] = field(
        default_factory=list)
    cat: Annotated[list[str], typer.Option(metavar="NAME=INT", help="Fix a categorical code: NAME=INT (repeatable).")] = field(default_factory=list)
    cont: Annotated[list[str], typer.Option(metavar="NAME=FLOAT", help="Fix a continuous code: NAME=FLOAT (repeatable).")] = field(default_factory=list)

    def parse(self, spec: Any):
        from ctrlgen.controls import ALL, parse_controls

        label = once(self.label, "--label", "--label all draws a row per class")
        label = (ALL if spec.conditional else None) if label is None else label
        return parse_controls(spec, label=label, cat=self.cat, cont=self.cont)


@dataclass(frozen=True)
class OutputOptions:
    """Where and how the samples are written."""

    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output path (default samples.png, or the next free samples-N.png).")] = None
    format: Annotated[Format | None, typer.Option("--format", "-f", help="grid (one PNG), png-dir (a PNG per sample) or npz; default from the output's suffix.")] = None
    nrow: Annotated[int | None, typer.Option(help="Samples per grid row.")] = None
    scale: Annotated[int, typer.Option(help="Upscale factor of grid images.")] = 2
    force: Annotated[bool, typer.Option(help="Overwrite an existing output.")] = False

    def path(self) -> Path:
        """The output path: the one given, else a free default name for the format."""
        from ctrlgen.files import free_name

        if self.output is not None:
            return self.output
        if self.format in (None, Format.grid):
            return free_name(free_name(Path("samples.png")))
        return free_name(Path(f"samples{'.npz' if self.format == Format.npz else ''}"))


@dataclass(frozen=True)
class RunOptions:
    """How the model runs."""

    batch: Annotated[int, typer.Option(help="Samples per model call.")] = 1024
    threads: Threads = None
    device: Device = "auto"
    precision: Annotated[str | None, typer.Option(help="bf16: run a checkpoint or run directory in torch bf16; fp32/int8: require an .onnx file of that precision (default: as stored).")] = None
    runtime: Annotated[str, typer.Option(help="onnxruntime, or openvino for an .onnx file (pip install 'ctrlgen[openvino]').")] = "onnxruntime"


@grouped(latent=LatentOptions, out=OutputOptions, run=RunOptions)
def generate(
    *,
    model: Model = None,
    n: Annotated[int | None, typer.Option("--n", "-n", help="Number of samples (default 100; with --label all, split evenly over classes).")] = None,
    latent: LatentOptions,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives byte-identical output.")] = 0,
    truncation: Annotated[float | None, typer.Option(help="Resample |z| above this (truncation trick).")] = None,
    out: OutputOptions,
    run: RunOptions,
) -> None:
    """Generate samples from a model as a grid PNG, a folder of PNGs, or an npz archive."""
    from ctrlgen.files import check_output
    from ctrlgen.grids import LABEL_FACTOR, mixture_means, value_grid
    from ctrlgen.limits import MAX_BATCH, check_int, check_seed, check_threads, check_truncation
    from ctrlgen.writers import MAX_GRID, make_writer, output_format

    if n is not None and n < 1:
        raise CtrlgenError(f"--n must be at least 1, got {n}")
    if n is not None and n > 100_000_000:
        raise CtrlgenError(f"--n {n} is too large (max 100,000,000); split the job")
    if run.batch < 1:
        raise CtrlgenError(f"--batch must be at least 1, got {run.batch}")
    check_int("--batch", run.batch, 1, MAX_BATCH)
    check_seed(seed, "--seed")
    check_truncation(truncation)
    check_threads(run.threads)
    if out.nrow is not None:
        check_int("--nrow", out.nrow, 1, MAX_GRID)
    if out.scale < 1 or out.scale > 16:
        raise CtrlgenError(f"--scale must be in 1..16, got {out.scale}")
    rt = open_model(model, run.threads, run.device, run.precision, run.runtime)
    spec = rt.spec
    controls = latent.parse(spec)
    output = out.path()
    if os.path.isfile(output) and rt.source.is_file() and os.path.samefile(output, rt.source):  # --force would replace the model
        raise CtrlgenError(f"{output} is the model this command reads; choose another output")
    fmt = output_format(output, out.format.value if out.format is not None else None)
    check_output(output, out.force, folder=fmt == "png-dir")
    if out.nrow is not None and fmt != "grid":
        raise CtrlgenError(f"--nrow lays out a grid picture and {fmt} output has none; drop --nrow or write a grid (.png)")
    count, nrow, fixed = 100 if n is None else n, out.nrow, controls.fixed()
    if controls.every_class:
        layout = value_grid(spec, count, LABEL_FACTOR)
        note = f"Note: {layout.n} samples ({layout.per_value} per class), a row per class" if layout.n != count else ""
        count, nrow, fixed["label"] = layout.n, nrow or layout.per_row, layout.assignment()
    writer = make_writer(fmt, output, spec, count, nrow=nrow, scale=out.scale, means=mixture_means(spec), force=out.force)
    if controls.every_class and note:  # after the writer: an output it refuses is the only line
        typer.echo(note, err=True)
    t0 = time.perf_counter()
    try:
        from rich.progress import Progress

        with Progress(transient=True, disable=count <= 10 * run.batch or not sys.stderr.isatty()) as bar:
            task = bar.add_task("generate", total=count)
            for samples, inputs in rt.stream(count, seed, chunk=run.batch, truncation=truncation, **fixed):
                writer.add(samples, inputs)
                bar.update(task, advance=len(samples))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    dt = time.perf_counter() - t0
    typer.echo(f"Wrote {count} sample{'' if count == 1 else 's'} from {rt.name} ({rt.backend}) to {output} [{fmt}, {rt.precision}] in {dt:.2f} s ({count / dt:,.0f} samples/s)")


CARD_ROWS = ("recipe", "loss", "techniques", "steps", "seed", "batch_size", "data", "labelled", "device", "wall_time_s", "weights", "params",
             "export_parity_max_abs_diff", "exported")


def info(
    model: Annotated[str | None, typer.Argument(help="An .onnx file, checkpoint, run directory or shipped model name.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print spec and card as JSON.")] = False,
) -> None:
    """Print a model's latent spec and model card."""
    from ctrlgen.models import resolve_model
    from ctrlgen.runtime import Runtime

    path = resolve_model(model)
    rt = Runtime.from_file(path)
    if as_json:
        typer.echo(json.dumps({"path": str(path), "spec": rt.spec.to_dict(), "card": rt.card}, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    from ctrlgen.text import markup

    console = Console()
    t = Table(title=markup(f"{rt.name} — {path}"), show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    for k, v in rt.spec.describe():  # label and code names come from the file: never markup
        t.add_row(markup(k), markup(v, 5000))
    console.print(t)
    card = rt.card
    c = Table(title="model card", show_header=False, title_justify="left")
    c.add_column(style="bold")
    c.add_column()
    for key in CARD_ROWS:
        if key in card and card[key] is not None:
            v = card[key]
            c.add_row(key, markup(v if isinstance(v, str) else json.dumps(v)))
    metrics = card.get("metrics")
    for k, v in (metrics if isinstance(metrics, dict) else {}).items():
        c.add_row(markup(f"metric {k}"), markup(json.dumps(v)))
    console.print(c)
