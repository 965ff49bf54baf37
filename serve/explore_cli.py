"""The exploring commands: ``ctrlgen sweep``, ``ctrlgen interpolate`` and ``ctrlgen ui``.

Registered on the app in ``cli.py``.  Heavy imports (onnxruntime, torch,
gradio) happen inside the commands so ``ctrlgen --help`` stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from ctrlgen.errors import CtrlgenError
from ctrlgen.limits import MAX_BATCH, MAX_KEYS, check_int, check_seed, check_threads, check_truncation
from ctrlgen.serve.options import (
    Force,
    Model,
    Runner,
    Scale,
    Seed,
    Threads,
    Truncation,
    check_scale,
    grouped,
    once,
)

MAX_CELLS = 10_000
MAX_FRAMES = 2_000


@dataclass(frozen=True)
class SweepFactor:
    """What varies across the columns: exactly one of these."""

    code: Annotated[str | None, typer.Option(help="The code to traverse: a continuous code (--steps values across its range) or a categorical one (all values).")] = None
    labels: Annotated[bool, typer.Option("--labels", help="Sweep the class label: a label x z grid.")] = False
    cat: Annotated[str | None, typer.Option(help="Sweep a categorical code: a categorical x z grid.")] = None

    def chosen(self) -> str:
        chosen = [x for x in (self.code, "label" if self.labels else None, self.cat) if x is not None]
        if len(chosen) != 1:
            raise CtrlgenError("choose what to sweep: exactly one of --code NAME, --labels or --cat NAME")
        return chosen[0]

    def check(self, spec) -> None:
        if self.cat is not None and self.cat not in [c.name for c in spec.categorical]:
            have = ", ".join(c.name for c in spec.categorical) or "none"
            raise CtrlgenError(f"--cat {self.cat!r} is not a categorical code of this model; it has: {have}")


@dataclass(frozen=True)
class Held:
    """What stays fixed while the factor varies (parsed by ctrlgen.controls)."""

    label: Annotated[list[str], typer.Option(metavar="LABEL", help="Fix the label (index or name) while sweeping a code.")] = field(
        default_factory=list)
    fix: Annotated[list[str], typer.Option(metavar="NAME=VALUE", help="Fix another code: NAME=VALUE (repeatable).")] = field(default_factory=list)


@dataclass(frozen=True)
class SweepPicture:
    captions: Annotated[bool, typer.Option(help="Write the values above the columns and a title.")] = True
    transpose: Annotated[bool, typer.Option(help="Values down the rows, z across the columns.")] = False
    scale: Scale = 2
    output: Annotated[Path, typer.Option("--output", "-o", help="The PNG to write.")] = Path("sweep.png")
    force: Force = False


@grouped(factor=SweepFactor, held=Held, picture=SweepPicture, run=Runner)
def sweep(
    *,
    model: Model = None,
    factor: SweepFactor,
    steps: Annotated[int, typer.Option(help="Values across a continuous code's range (columns).")] = 10,
    rows: Annotated[int, typer.Option(help="Different z, one per row.")] = 8,
    seed: Seed = 0,
    held: Held,
    truncation: Truncation = None,
    picture: SweepPicture,
    run: Runner,
) -> None:
    """Traversal grid: rows are different z, columns the values of one code (or label) across its range."""
    from ctrlgen.controls import parse_controls
    from ctrlgen.files import check_output, check_suffix
    from ctrlgen.images import save_png
    from ctrlgen.traversal import sweep as make_sweep

    chosen = factor.chosen()
    for flag, value in (("--steps", steps), ("--rows", rows)):
        if isinstance(value, int) and value > MAX_CELLS:
            raise CtrlgenError(f"{flag} {value:,} is over the limit of {MAX_CELLS:,} images per sweep; use fewer")
    check_seed(seed, "--seed")
    check_truncation(truncation)
    check_scale(picture.scale)
    check_suffix(picture.output, ".png", "a sweep is one PNG image")
    check_output(picture.output, picture.force)
    rt = run.open(model)
    factor.check(rt.spec)
    if any(not f.strip() for f in held.fix):
        raise CtrlgenError("--fix is given an empty value; give NAME=VALUE (e.g. --fix u1=0.5), or leave --fix out")
    controls = parse_controls(rt.spec, label=once(held.label, "--label"), codes=held.fix)
    fixed = {*controls.cat, *controls.cont} | ({"label"} if controls.labels else set())
    if chosen in fixed:  # the sweep varies it: a fixed value was silently ignored
        what = "--label" if chosen == "label" else f"--fix {chosen}=..."
        raise CtrlgenError(f"{what} fixes what the sweep varies ({'the labels' if chosen == 'label' else chosen}); drop it, or sweep something else")
    res = make_sweep(
        rt, chosen, steps=steps, rows=rows, seed=seed, controls=controls, truncation=truncation,
        captions=picture.captions, transpose=picture.transpose, scale=picture.scale, max_cells=MAX_CELLS,
    )
    save_png(res.image, picture.output)
    cols = len(res.axis.values)
    typer.echo(f"Wrote {picture.output}: {rows} z x {cols} values of {res.axis.name} from {rt.name} ({res.image.shape[1]}x{res.image.shape[0]} px)")


@dataclass(frozen=True)
class Keyframes:
    """Labels and code values per keyframe (parsed by ctrlgen.controls)."""

    label: Annotated[list[str], typer.Option(metavar="L1,L2,...", help="Label(s) per keyframe, comma-separated (indices or names); labels switch halfway.")] = field(
        default_factory=list)
    code: Annotated[list[str], typer.Option(metavar="NAME=V[,V...]", help="Code value(s) per keyframe: NAME=V or NAME=V1,V2,... (repeatable).")] = field(default_factory=list)


@dataclass(frozen=True)
class GifOutput:
    scale: Scale = 3
    output: Annotated[Path, typer.Option("--output", "-o", help="The GIF to write.")] = Path("walk.gif")
    force: Force = False


@grouped(keyframes=Keyframes, gif=GifOutput, run=Runner)
def interpolate(
    *,
    model: Model = None,
    frames: Annotated[int, typer.Option(help="Frames in the GIF.")] = 48,
    keys: Annotated[int, typer.Option(help="Keyframes: z drawn from the seed, visited in turn.")] = 4,
    walks: Annotated[int | None, typer.Option(help="Walks side by side (default 1 for images, 256 points for 2D models).")] = None,
    seed: Seed = 0,
    keyframes: Keyframes,
    truncation: Truncation = None,
    loop: Annotated[bool, typer.Option(help="Return to the first keyframe so the GIF loops smoothly.")] = True,
    ms: Annotated[int, typer.Option(help="Milliseconds per frame.")] = 80,
    gif: GifOutput,
    run: Runner,
) -> None:
    """An animated GIF of a spherical walk through z (optionally between labels or code values)."""
    from ctrlgen.controls import parse_controls
    from ctrlgen.files import check_output, check_suffix
    from ctrlgen.images import save_gif
    from ctrlgen.traversal import keyframe_count, walk

    if not 2 <= frames <= MAX_FRAMES:
        raise CtrlgenError(f"--frames must be in 2..{MAX_FRAMES}, got {frames}")
    check_int("--keys", keys, 1, MAX_KEYS)
    check_seed(seed, "--seed")
    check_truncation(truncation)
    if not 10 <= ms <= 10_000:
        raise CtrlgenError(f"--ms must be in 10..10000, got {ms}")
    check_scale(gif.scale)
    check_suffix(gif.output, ".gif", "interpolate writes an animated GIF")
    check_output(gif.output, gif.force)
    rt = run.open(model)
    spec = rt.spec
    if walks is None:
        walks = 256 if spec.output_kind == "points" else 1
    if walks < 1 or walks * frames > 1_000_000:
        raise CtrlgenError(f"--walks must be at least 1 and walks x frames at most 1,000,000, got {walks} x {frames}")
    controls = parse_controls(spec, label=once(keyframes.label, "--label", "comma-separate the keyframes' labels"), codes=keyframes.code, keyframes=True)
    pics = walk(
        rt, frames=frames, keys=keys, walks=walks, seed=seed, controls=controls,
        truncation=truncation, loop=loop, scale=gif.scale,
    )
    save_gif(pics, gif.output, ms_per_frame=ms)
    typer.echo(f"Wrote {gif.output}: {frames} frames, {walks} walk(s) through {keyframe_count(keys, controls)} keyframes from {rt.name}")


def ui(
    models: Annotated[list[str] | None, typer.Argument(help="Extra models to serve (.onnx, checkpoint or run directory), besides those in models/.")] = None,
    host: Annotated[str, typer.Option(help="Interface to bind; 127.0.0.1 keeps the UI on this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7860,
    concurrency: Annotated[int, typer.Option(help="Requests computed at the same time.")] = 2,
    queue_size: Annotated[int, typer.Option(help="Requests allowed to wait; more are refused.")] = 64,
    max_samples: Annotated[int, typer.Option(help="Largest batch one request may ask for.")] = 256,
    threads: Threads = None,
) -> None:
    """The web UI: generate, sweep, interpolate and compare models in a browser (and over gradio_client)."""
    from ctrlgen.serve.app import launch
    from ctrlgen.serve.ui_backend import Limits

    if not 1 <= port <= 65535:
        raise CtrlgenError(f"--port must be in 1..65535, got {port}")
    check_threads(threads)
    check_int("--concurrency", concurrency, 1, 256)
    check_int("--queue-size", queue_size, 1, 100_000)
    if max_samples > MAX_BATCH:
        raise CtrlgenError(f"--max-samples must be in 1..{MAX_BATCH:,} (one request's batch), got {max_samples:,}")
    limits = Limits(max_samples=max_samples, concurrency=concurrency, queue_size=queue_size)
    bind, warning = bind_address(host, port)
    if warning:
        typer.echo(warning, err=True)
    launch(models or [], host=bind, port=port, limits=limits, threads=threads)


def bind_address(host: str, port: int) -> tuple[str, str]:
    """(the host as the web server takes it: IPv6 literals in brackets, a warning line or "").

    Any address but a loopback one makes the UI reachable from the network: say so, with the real address."""
    import ipaddress

    from ctrlgen.text import plain

    name = host.strip()
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        if not name or any(c.isspace() or c in "/[]@" for c in name):
            raise CtrlgenError(f"--host {plain(host)!r} is not an address or host name; use 127.0.0.1 (this machine) or ::1") from None
        local = name.lower() == "localhost"
        shown, bind = f"{name}:{port}", name
    else:
        local = ip.is_loopback
        shown = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
        bind = f"[{ip}]" if ip.version == 6 else str(ip)
    if local:
        return bind, ""
    _check_bindable(bare, host)
    where = "every network interface of this machine" if ip_unspecified(bare) else "a network interface"
    return bind, (f"Warning: the UI listens on {shown} ({where}): anyone who can reach this machine can use it, with no password; "
                  "use --host 127.0.0.1 to keep it on this machine")


def _check_bindable(bare: str, host: str) -> None:
    """One line, before anything is printed or served, when ``host`` does not resolve or is not an address of this machine
    (uvicorn would log its own traceback-like line first)."""
    import socket

    from ctrlgen.text import plain

    try:
        family, _, _, _, addr = socket.getaddrinfo(bare, 0, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError, ValueError):
        raise CtrlgenError(f"--host {plain(host)!r} does not resolve to an address; use 127.0.0.1 (this machine) or an address of this machine") from None
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind(addr[:2] if family == socket.AF_INET else addr)
    except OSError:
        raise CtrlgenError(f"--host {plain(host)!r} is not an address of this machine; use 127.0.0.1, 0.0.0.0 (every interface) or one of its addresses") from None


def ip_unspecified(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False
