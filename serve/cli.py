"""The ``ctrlgen`` command line.

Heavy imports (torch, onnxruntime, gradio) happen inside the commands, so
``ctrlgen --help`` stays instant.  Every user error is one line on stderr and a
non-zero exit (``user_errors``); a traceback means a bug.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ctrlgen.errors import CtrlgenError


def _click_exceptions() -> tuple[type, tuple]:
    """click's exception types (typer >= 0.20 vendors click as typer._click)."""
    try:
        from typer._click import exceptions as ex
    except ImportError:  # pragma: no cover - older typer on the real click
        from click import exceptions as ex
    return ex.ClickException, (getattr(ex, "NoArgsIsHelpError", ()),)


class OneLineGroup(TyperGroup):
    """Usage errors (an unknown option, a value of the wrong type) as one line too, not click's usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        click_error, help_only = _click_exceptions()
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except help_only as e:  # `ctrlgen` alone prints the help
            e.show()
            sys.exit(e.exit_code)
        except click_error as e:
            where = e.ctx.command_path if getattr(e, "ctx", None) is not None else "ctrlgen"
            message = " ".join(e.format_message().split()).rstrip(".")
            typer.echo(f"Error: {message}{' See' if message.endswith('?') else '; see'} '{where} --help'", err=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineGroup,
    name="ctrlgen",
    help="Controllable generation without mode collapse: train, export, generate, explore.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

EXIT_USER = 2


def fail(message: str) -> None:
    from ctrlgen.text import plain

    typer.echo(f"Error: {plain(message, 2000)}", err=True)  # names from files cannot reach the terminal raw
    raise typer.Exit(EXIT_USER)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, ``timeout``, a service manager): unwinds like Ctrl-C, so temporary parts are removed."""


def _terminate(*_: Any) -> None:
    raise Terminated


def user_errors(fn):
    """Turn CtrlgenError (and the OS errors users cause) into one line and exit code 2; SIGTERM
    unwinds like Ctrl-C (writers remove their temporary parts; ``train`` saves a checkpoint)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        import signal
        import threading

        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
        try:
            return fn(*args, **kwargs)
        except Terminated:
            typer.echo("Terminated; nothing half-written was kept.", err=True)
            raise typer.Exit(143) from None
        except CtrlgenError as e:
            fail(str(e))
        except PermissionError as e:
            fail(f"permission denied: {e.filename}; choose a path you can write")
        except OSError as e:
            if e.errno == 28:
                fail("no space left on the device; free some space or write elsewhere")
            from ctrlgen.files import broken_link_message

            fail((e.filename and broken_link_message(e.filename)) or f"{e.strerror or e} ({e.filename}); check the path")
        except KeyboardInterrupt:
            typer.echo("Interrupted; nothing half-written was kept.", err=True)
            raise typer.Exit(130) from None
        except RecursionError:
            fail("the input is nested too deeply to read; give a flat file")
        except MemoryError:
            fail("out of memory on this input; ask for fewer samples or a smaller model")
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper


def main() -> None:  # the console script
    app()


def _version(value: bool) -> None:
    if value:
        from ctrlgen import __version__

        typer.echo(f"ctrlgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Controllable generation without mode collapse: train, export, generate, explore."""


# --------------------------------------------------------------------------- train
@app.command()
@user_errors
def train(
    recipe: Annotated[str | None, typer.Argument(help="Recipe: a model family (cgan, infogan, gan2d), a preset (fashion-cgan, fashion-infogan, ring8, grid25, ...) or a TOML path.")] = None,
    set_: Annotated[list[str], typer.Option("--set", "-s", metavar="KEY=VALUE", help="Override any field: key=value (lr_g=1e-4, net.g_width=128, techniques.ema.decay=0.99).")] = [],  # noqa: B006
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default runs/RECIPE-TIMESTAMP).")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the run in this directory from its newest checkpoint.")] = None,
    steps: Annotated[int | None, typer.Option(help="G updates in total (overrides the recipe's steps/epochs).")] = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the data (image recipes); sets the length unless --steps is given.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    data: Annotated[str | None, typer.Option(help="Folder of IDX files or of class subfolders (channels and size from its images; default: the recipe's data).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    monitor_every: Annotated[int | None, typer.Option(help="Steps between monitor checks (cheap metrics, collapse detector); 0 = off.")] = None,
    on_collapse: Annotated[str | None, typer.Option(help="When the detector fires: warn, rollback (last healthy state, new seed, halved lrs) or stop.")] = None,
    distributed: Annotated[bool, typer.Option("--distributed", help="One rank of a torchrun job: DistributedDataParallel over its ranks, batch_size global (README: Scaling).")] = False,
) -> None:
    """Train a generator from a recipe; Ctrl-C saves a checkpoint, --resume continues exactly."""
    from ctrlgen.text import plain
    from ctrlgen.train import run_state
    from ctrlgen.train.config import TrainConfig, apply_overrides, parse_override, read_recipe
    from ctrlgen.train.distributed import close, launched_by_torchrun
    from ctrlgen.train.recipe import with_data_folder
    from ctrlgen.train.trainer import Trainer

    if launched_by_torchrun() and not distributed:
        raise CtrlgenError("torchrun started this process as one of several ranks; add --distributed "
                           "(or launch python -m ctrlgen.train) so they train one run together")
    if distributed and resume is None and out is None:
        raise CtrlgenError("--distributed needs --out RUN_DIR (every rank must name the same folder)")

    if steps is not None and steps < 1:  # 0 is the recipe's "derive from epochs": --steps 0 silently trained 16 epochs
        raise CtrlgenError(f"--steps must be at least 1, got {steps}; give the number of G updates, or --epochs for passes over the data")
    if epochs is not None and steps is not None:
        raise CtrlgenError(f"--steps {steps} and --epochs {epochs:g} both set the run's length; give one of them")
    extra = list(set_)
    given = {".".join(parse_override(item)[0]) for item in set_}
    for key, value in (("steps", steps), ("epochs", epochs), ("seed", seed), ("device", device), ("monitor_every", monitor_every),
                       ("data_dir", data), ("on_collapse", on_collapse)):
        if value is not None and key in given:  # the option won and the --set value went unchecked (steps=2.5 trained)
            option = "--data" if key == "data_dir" else f"--{key.replace('_', '-')}"
            raise CtrlgenError(f"{key} is given twice, by {option} and by --set {key}=...; give it once")
    if epochs is not None and steps is None:
        # --epochs decides the length: a recipe's (or a resumed run's) steps would otherwise win over it and the option
        # would do nothing (a run started with --steps 1000 and resumed with --epochs 14 stopped at once, at 1000)
        extra.append("steps=0")
    for key, value in (("steps", steps), ("epochs", epochs), ("seed", seed), ("device", device), ("monitor_every", monitor_every)):
        if value is not None:
            extra.append(f"{key}={value}")
    # Strings from options go in as values, not through TOML (a folder name may hold any character).
    direct = {k: v for k, v in (("data_dir", data), ("on_collapse", on_collapse)) if v is not None}
    extra.append(f"progress={'true' if progress else 'false'}")
    if resume is not None:
        if recipe is not None:
            raise CtrlgenError("give either a RECIPE or --resume RUN_DIR, not both")
        if out is not None and Path(os.path.abspath(out)) != Path(os.path.abspath(resume)):
            raise CtrlgenError(f"--resume continues {resume} in place, and -o names another folder ({out}); drop -o, or copy the run "
                               "folder there and resume the copy")
        changes = {}
        for item in extra:
            keys, value = parse_override(item)
            changes[".".join(keys)] = value
        changes.update(direct)
        trainer = Trainer.resume(resume, changes, distributed)
        say = typer.echo if trainer.dist.main else _quiet
        say(f"Resuming {resume} at step {trainer.step} of {trainer.total_steps}")
    else:
        if recipe is None:
            raise CtrlgenError("give a RECIPE (e.g. fashion-cgan) or --resume RUN_DIR")
        d = {**apply_overrides(read_recipe(recipe), extra), **direct}
        if data is not None:  # a folder of class subfolders: data = "image-folder", channels and size from its images
            d = with_data_folder(d, data, set_)
        cfg = TrainConfig.from_dict(d, where=f"recipe {d.get('recipe', recipe)}")
        run_dir = out or Path("runs") / f"{cfg.recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
        if run_dir.exists() and not run_dir.is_dir():
            raise CtrlgenError(f"{run_dir} is a file, and a run needs a folder; choose another --out")
        run_state.refuse_taken_folder(run_dir)
        trainer = Trainer(cfg, run_dir, distributed)
        trainer.claim(new_run=True)  # the run directory is this process's until it ends
        say = typer.echo if trainer.dist.main else _quiet
        ranks = f" x {trainer.dist.world} ranks ({trainer.batch} samples each)" if trainer.dist.world > 1 else ""
        say(f"Training {plain(cfg.recipe, 100)} for {trainer.total_steps} steps on {trainer.device_name()}{ranks} -> {run_dir}")
    try:
        status = trainer.run()
    except BaseException as e:
        close(synchronize=False)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC and (trainer.run_dir / "config.json").exists():
            raise CtrlgenError(f"no space left on the device at step {trainer.step}; the run keeps its checkpoints: "
                               f"free some space, then continue with ctrlgen train --resume {trainer.run_dir}") from None
        raise
    close()
    if trainer.monitor.stop_reason:
        status = f"stopped by the collapse detector ({trainer.monitor.stop_reason})"
    per_epoch = trainer.batches.per_epoch
    line = f"{status} at step {trainer.step}/{trainer.total_steps}; {trainer.wall_time:.1f} s of training"
    if per_epoch and trainer.step:
        line += f", {trainer.wall_time / trainer.step * per_epoch / trainer.cfg.n_critic:.1f} s/epoch"
    say(line)
    say(f"Checkpoint: {trainer.run_dir / 'checkpoints'}; export with: ctrlgen export {trainer.run_dir} -o model.onnx")
    if status != "done":
        say(f"Continue with: ctrlgen train --resume {trainer.run_dir}")


def _quiet(*_: Any, **__: Any) -> None:
    """Ranks other than 0 print nothing (torchrun would show every line N times)."""


# --------------------------------------------------------------------------- export
@app.command()
@user_errors
def export(
    source: Annotated[Path, typer.Argument(help="Run directory or checkpoint (.safetensors).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx file to write.")] = Path("model.onnx"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing output.")] = False,
    ema: Annotated[bool, typer.Option(help="Export the EMA weights when the run has them.")] = True,
    tol: Annotated[float, typer.Option(help="Largest allowed |ONNX Runtime - torch| difference.")] = 1e-4,
    q_head: Annotated[bool, typer.Option("--q-head", help="InfoGAN: add Q's prediction of the continuous codes as output q_code_cont.")] = False,
    evaluate: Annotated[bool, typer.Option("--eval", help="Measure the model (ctrlgen eval) and record the metrics in its card and NAME.md.")] = False,
    precision: Annotated[str, typer.Option(help="fp32, or int8 (quantized for ONNX Runtime; checked by the evaluator against fp32).")] = "fp32",
    triton: Annotated[Path | None, typer.Option(help="Write a Triton model repository entry REPO/NAME/{config.pbtxt,1/model.onnx} instead of -o (SOURCE may also be an .onnx file).")] = None,
    triton_name: Annotated[str | None, typer.Option(help="--triton: the model's name in the repository (default: the recipe, or the .onnx file's stem).")] = None,
    triton_kind: Annotated[str, typer.Option(help="--triton: instance_group kind, gpu or cpu.")] = "gpu",
    triton_instances: Annotated[int, typer.Option(help="--triton: model instances per GPU (or on the CPU).")] = 1,
    max_batch_size: Annotated[int, typer.Option(help="--triton: the largest batch Triton's dynamic batcher forms.")] = 1024,
    web: Annotated[Path | None, typer.Option(help="Write a static page DIR/{index.html,ctrlgen.js,model.onnx} that generates in the browser with onnxruntime-web.")] = None,
    ort_url: Annotated[str | None, typer.Option(help="--web: where the page loads onnxruntime-web from (default: the jsDelivr CDN).")] = None,
) -> None:
    """Export a generator to ONNX with its spec and model card; verify it against torch."""
    from ctrlgen.export import export as do_export
    from ctrlgen.files import check_output, check_suffix
    from ctrlgen.limits import check_number

    check_number("--tol", tol, 0.0, 1.0)  # NaN would switch the parity check off

    if web is not None:
        from ctrlgen.webpage import export_web

        return typer.echo(export_web(source, web, ort_url, force, {"prefer_ema": ema, "tol": tol, "q_head": q_head, "precision": precision}, evaluate, triton))
    if triton is not None:
        _export_triton(source, triton, triton_name, triton_kind, triton_instances, max_batch_size, force,
                       {"prefer_ema": ema, "tol": tol, "q_head": q_head, "precision": precision}, evaluate)
        return
    check_suffix(output, ".onnx", "ctrlgen and ONNX tools know a model by it")
    if source.suffix.lower() == ".onnx" and source.is_file():  # it read as a damaged checkpoint ("header too large")
        raise CtrlgenError(f"{source} is an exported ONNX model, and -o exports a run directory or checkpoint (.safetensors) to ONNX; "
                           "use the .onnx as it is, or give it to --web or --triton")
    check_output(output, force)

    def write(path: Path) -> Any:
        return do_export(source, path, prefer_ema=ema, tol=tol, q_head=q_head, precision=precision)

    if evaluate:
        from ctrlgen.serve.eval_cli import export_evaluated, print_report

        rep, report, md = export_evaluated(output, force, write)
    else:
        rep = write(output)
    diff = (f"|int8 - fp32| max {rep.max_abs_diff:.2e}, mean {rep.card['int8_vs_fp32_mean_abs_diff']:.2e}" if rep.precision == "int8"
            else f"max |onnxruntime - torch| = {rep.max_abs_diff:.2e}")
    typer.echo(f"Wrote {output} ({rep.bytes / 1e6:.2f} MB, opset {rep.opset}, {rep.weights} weights); onnx.checker passed; {diff} at batch 1 and 37")
    if rep.precision == "int8":
        q = rep.card["quality_check"]
        typer.echo(
            f"Quality kept ({q['n']} samples): conditional accuracy {q['fp32']['conditional_accuracy']:.4f} fp32 -> "
            f"{q['reduced']['conditional_accuracy']:.4f} int8, FD {q['fp32']['fd']:.3f} -> {q['reduced']['fd']:.3f}"
        )
    if evaluate:
        print_report(report)
        typer.echo(f"Recorded {len(report.rows)} metrics in the card of {output}; wrote {md}")


def _export_triton(source: Path, repo: Path, name: str | None, kind: str, instances: int, max_batch: int, force: bool,
                   options: dict[str, Any], evaluate: bool) -> None:
    from ctrlgen.triton import write_repository

    if evaluate:
        raise CtrlgenError("--eval measures an .onnx file; export with -o m.onnx --eval, then ctrlgen export m.onnx --triton REPO")
    rep = write_repository(source, repo, name=name, kind=kind, instances=instances, max_batch_size=max_batch, force=force,
                           export_options=options)
    io = "; ".join(f"{t.name} {t.data_type} {list(t.dims)}" for t in rep.inputs + rep.outputs)
    typer.echo(f"Wrote {rep.model_dir}/config.pbtxt and 1/model.onnx ({rep.onnx_bytes / 1e6:.2f} MB): {io}; "
               f"max_batch_size {max_batch}, {instances} x KIND_{kind.upper()}")
    typer.echo(f"Serve with: tritonserver --model-repository {repo.resolve()}")


# --------------------------------------------------------------------------- commands kept in their own modules
# (those modules import only typer at the top; each command imports its heavy parts itself)
from ctrlgen.serve import eval_cli, explore_cli, generate_cli  # noqa: E402

for _name, _command in (
    ("generate", generate_cli.generate),
    ("info", generate_cli.info),
    ("sweep", explore_cli.sweep),
    ("interpolate", explore_cli.interpolate),
    ("ui", explore_cli.ui),
    ("eval", eval_cli.eval_model),
    ("plot", eval_cli.plot),
    ("train-evaluator", eval_cli.train_evaluator),
):
    app.command(_name)(user_errors(_command))
