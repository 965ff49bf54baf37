"""Bodies of the measuring commands: ``train-evaluator``, ``eval`` and ``plot``.

``serve/cli.py`` registers them with a few lines each; heavy imports happen
inside the functions so ``ctrlgen --help`` stays instant.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from ctrlgen.errors import CtrlgenError


def train_evaluator(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="The .onnx file to write (default: models/fashion-mnist-evaluator.onnx).")] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the 60,000 training images.")] = 15,
    seed: Annotated[int, typer.Option(help="Random seed (initialization, data order, augmentation).")] = 0,
    data: Annotated[str | None, typer.Option(help="Folder of Fashion-MNIST IDX files (default: the Debian package's).")] = None,
    limit: Annotated[int, typer.Option(help="Train on the first N images only (0 = all); for quick checks.")] = 0,
    force: Annotated[bool, typer.Option(help="Overwrite an existing output.")] = False,
) -> None:
    """Train the Fashion-MNIST evaluation classifier and export it with its card (NAME.md beside it)."""
    from ctrlgen.card import check_markdown_path
    from ctrlgen.classifier import default_path
    from ctrlgen.files import check_output, check_suffix
    from ctrlgen.limits import check_seed
    from ctrlgen.train.classifier_training import EvaluatorConfig, export, is_evaluator_markdown, train

    check_seed(seed, "--seed")
    out = output or default_path()
    check_suffix(out, ".onnx", "ctrlgen and ONNX tools know a model by it")
    check_output(out, force)
    md = check_markdown_path(out, force, ours=is_evaluator_markdown)  # before the training, not after it
    cfg = EvaluatorConfig(epochs=epochs, seed=seed, train_limit=limit)
    net, report = train(cfg, data, log=typer.echo)
    card = export(net, report, out, md)
    typer.echo(f"Wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and {out.with_suffix('.md')}; "
               f"test accuracy {100 * card['test_accuracy']:.2f}%")


def _fmt(value: float | None, name: str) -> str:
    import math

    if value is None:
        return "–"
    if not math.isfinite(value):
        return "inf" if value > 0 else str(value)
    if name in ("classes_covered", "modes"):
        return f"{value:.0f}"
    if name == "high_quality":
        return f"{value:.1f}%"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.4f}"


def print_report(report) -> None:
    from rich.console import Console
    from rich.table import Table

    from ctrlgen.text import markup

    t = Table(title=markup(f"{report.model} — {report.n} samples, seed {report.seed}"), title_justify="left")
    for col, kw in (("metric", {"style": "bold"}), ("value", {"justify": "right"}), ("real data", {"justify": "right"}),
                    ("better", {}), ("meaning", {})):
        t.add_column(col, **kw)
    for r in report.rows:
        t.add_row(markup(r.name), _fmt(r.value, r.name), _fmt(r.reference, r.name), "higher" if r.higher_is_better else "lower", markup(r.doc))
    console = Console(width=160)
    console.print(t)
    if report.evaluator:
        e = report.evaluator
        console.print(markup(f"evaluator: {e['path']} (test accuracy {100 * e['test_accuracy']:.2f}%); real data: {e['reference']}"))
    for note in report.notes:
        console.print(markup(f"note: {note}"))
    console.print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items()))


def eval_model(
    model: Annotated[str | None, typer.Argument(help="An .onnx file, checkpoint, run directory or shipped model name (default: fashion-cgan).")] = None,
    n: Annotated[int | None, typer.Option("--n", "-n", help="Samples to draw (default 10,000 for images, 2,500 for 2D mixtures).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the samples.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    write_card: Annotated[bool, typer.Option("--write-card", help="Record the metrics in the .onnx file's card and write NAME.md beside it.")] = False,
    evaluator: Annotated[Path | None, typer.Option(help="Evaluator ONNX (default: models/fashion-mnist-evaluator.onnx).")] = None,
    data: Annotated[str | None, typer.Option(help="Folder of Fashion-MNIST IDX files for the real reference (default: the Debian package's).")] = None,
) -> None:
    """Measure collapse and control: every metric that applies, beside its real-data reference value."""
    from ctrlgen.metrics.report import evaluate
    from ctrlgen.models import resolve_model

    path = resolve_model(model)
    if write_card and path.suffix != ".onnx":
        raise CtrlgenError(f"--write-card needs an .onnx file, {path} is not one; export it first (ctrlgen export RUN -o m.onnx --eval)")
    if write_card:
        from ctrlgen.card import check_markdown_path
        from ctrlgen.models import models_dir

        if path.resolve().parent == models_dir().resolve():
            raise CtrlgenError(f"{path.name} is a model shipped with ctrlgen and its card holds the release's measurement; "
                               f"copy it (cp {path} my-{path.name}) and record the metrics in the copy")
        check_markdown_path(path, fix="move it away, then run this again")
    from ctrlgen.limits import check_seed

    check_seed(seed, "--seed")
    if n is not None:
        from ctrlgen.limits import check_int

        check_int("--n", n, 1, 1_000_000)
    report = evaluate(path, n=n, seed=seed, evaluator_path=evaluator, data_dir=data)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        print_report(report)
    if write_card:
        _write_card(path, report, quiet=as_json)


def _write_card(path: Path, report, quiet: bool = False) -> None:
    from ctrlgen.card import record, write_markdown

    card = record(path, report)
    md = write_markdown(path, card)
    if not quiet:
        typer.echo(f"Recorded {len(report.rows)} metrics in the card of {path}; wrote {md}")


def export_evaluated(output: Path, force: bool, export: Callable[[Path], Any]) -> tuple[Any, Any, Path]:
    """``ctrlgen export -o OUTPUT --eval``: ``export`` writes the model into a staging folder beside OUTPUT,
    it is measured there and its card records the metrics; only then does it become OUTPUT, with NAME.md
    beside it.  A measurement that fails (no evaluator for this data, no
    dataset) leaves nothing behind, and a NAME.md that is not a card ctrlgen wrote is refused before any
    work (``--force`` replaces it).  Returns (what ``export`` returned, the report, the NAME.md path)."""
    import tempfile

    from ctrlgen.card import check_markdown_path, record, write_markdown
    from ctrlgen.files import publish
    from ctrlgen.metrics.report import evaluate

    check_markdown_path(output, force)
    folder = output.parent if str(output.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{output.name}.", suffix=".tmp", dir=folder) as staging:
        staged = Path(staging) / output.name
        rep = export(staged)
        try:
            report = evaluate(staged)
        except CtrlgenError as e:
            raise CtrlgenError(f"{str(e).replace(str(staged), str(output))}; nothing was written (without --eval it exports unmeasured)") from None
        card = record(staged, report)
        publish(staged, output)
    md = write_markdown(output, card, force=force)
    return rep, report, md


def plot(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by ctrlgen train.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="The PNG of curves (default RUN_DIR/plot.png).")] = None,
    gif: Annotated[Path | None, typer.Option(help="The GIF of fixed-z samples (default RUN_DIR/samples.gif).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite outputs given with -o/--gif (the defaults in RUN_DIR are regenerated when ctrlgen plot wrote them).")] = False,
) -> None:
    """Plot losses and monitored metrics over steps (PNG) and the fixed-z sample grids over training (GIF)."""
    from ctrlgen.files import check_output, check_suffix
    from ctrlgen.serve.plot import check_default_output, plot_run, samples_gif, skipped_note

    for path, suffix, why in ((output, ".png", "--output is the PNG of curves"), (gif, ".gif", "--gif is an animated GIF")):
        if path is not None:
            check_suffix(path, suffix, why)
    png_out, gif_out = output or run_dir / "plot.png", gif or run_dir / "samples.gif"
    for given, path in ((output, png_out), (gif, gif_out)):
        if given is not None:
            check_output(path, force)
        else:  # a default in RUN_DIR: replaced without --force, but only when ctrlgen plot wrote it
            check_default_output(run_dir, path)
    png, skipped = plot_run(run_dir, png_out)
    frames = samples_gif(run_dir, gif_out)
    typer.echo(f"Wrote {png}" + (f" and {gif_out} ({frames} frames)" if frames else " (no sample grids for a GIF)"))
    if note := skipped_note(run_dir / "metrics.jsonl", skipped):
        typer.echo(note)
