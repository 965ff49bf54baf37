"""The web UI (``ctrlgen ui``): a latent explorer around ``Explorer``, in gradio.

Pure functions first (``ui_backend.py``), then ``build()`` lays out the Blocks,
and ``launch()`` serves them; importing this module loads no model and starts
nothing.  The controls follow the chosen model's LatentSpec: a slider per
continuous code (with its range), a dropdown per categorical code and for
the label (class names), plus seed, sample count and truncation.

Named API endpoints for ``gradio_client`` (``client.view_api()`` lists them):
``/models``, ``/card``, ``/generate``, ``/sweep``, ``/interpolate`` and
``/compare``; codes travel as text, ``"c=3 u0=0.5"``.  Every request is
queued (``Limits.concurrency`` at a time, ``Limits.queue_size`` waiting) and
bounded (``Limits.max_samples`` ...): an over-limit request is refused with
a one-line message while the others are served.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls to outside hosts; before gradio loads

import functools  # noqa: E402
import inspect  # noqa: E402
import signal  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402

from ctrlgen.errors import CtrlgenError  # noqa: E402
from ctrlgen.serve.ui_backend import Explorer, Limits, OutputStore, Registry  # noqa: E402
from ctrlgen.traversal import sweep_factors  # noqa: E402

__all__ = ["Limits", "build", "launch", "make_explorer"]

MAX_CAT, MAX_CONT = 4, 8  # controls kept ready for a model's codes; more are drawn at random
COMPUTE = "compute"  # the concurrency group of every request that runs a model
FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]  # local fonts: the page fetches nothing from outside
THEME = gr.themes.Default(font=FONTS, font_mono=["ui-monospace", "monospace"])


def one_line_errors(fn):
    """CtrlgenError -> gr.Error: the client sees the one line, the server keeps running."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        try:
            return fn(*args, **kwargs)
        except CtrlgenError as e:
            raise gr.Error(str(e), print_exception=False) from None

    return wrapper


# --------------------------------------------------------------------------- controls from the spec
def control_updates(ex: Explorer, model: str) -> list:
    """New label, categorical and continuous controls (and tab options) for ``model``."""
    spec = ex.registry.get(model).spec
    classes = ["random", "all", *spec.labels] if spec.conditional else ["random"]
    ups: list = [gr.update(choices=classes, value="all" if spec.conditional else "random", visible=spec.conditional)]
    for i in range(MAX_CAT):
        c = spec.categorical[i] if i < len(spec.categorical) else None
        ups.append(gr.update(visible=False, value="random") if c is None else
                   gr.update(visible=True, label=f"{c.name} (categorical)", choices=["random", *map(str, range(c.n))], value="random"))
    for i in range(MAX_CONT):
        c = spec.continuous[i] if i < len(spec.continuous) else None
        ups.append(gr.update(visible=False) if c is None else
                   gr.update(visible=True, label=f"{c.name} (continuous)", minimum=c.low, maximum=c.high, value=(c.low + c.high) / 2))
    factors = sweep_factors(spec)
    ups.append(gr.update(choices=factors, value=factors[0] if factors else None))
    ups.append(gr.update(choices=list(spec.labels), value=[], visible=spec.conditional))
    ups.append(gr.update(choices=["none", *(c.name for c in spec.continuous)], value="none"))
    ups.append(ex.card(model))
    return ups


def codes_from_controls(ex: Explorer, model: str, values: list) -> tuple[dict, dict]:
    """The categorical dropdowns and continuous sliders by code name (ctrlgen.controls parses them; "random" leaves a code drawn)."""
    spec = ex.registry.get(model).spec
    cats, conts = values[:MAX_CAT], values[MAX_CAT:]
    cat = {c.name: v for c, v in zip(spec.categorical, cats, strict=False) if v not in (None, "")}
    cont = {c.name: v for c, v in zip(spec.continuous, conts, strict=False) if v is not None}
    return cat, cont


# --------------------------------------------------------------------------- the page
def build(ex: Explorer) -> gr.Blocks:
    names = ex.registry.names
    lim = ex.limits
    with gr.Blocks(title="ctrlgen explorer", analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        gr.Markdown("## ctrlgen latent explorer\nPick a model, set its codes; the Generate tab updates as you change them.")
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                model = gr.Dropdown(names, value=names[0], label="model", elem_id="model")
                seed = gr.Number(0, precision=0, minimum=0, label="seed", elem_id="seed")
                n = gr.Slider(1, lim.max_samples, value=min(40, lim.max_samples), step=1, label="samples", elem_id="n")
                truncation = gr.Slider(0, 3, value=0, step=0.05, label="truncation (0 = off)", elem_id="truncation")
                label = gr.Dropdown(["random"], value="random", label="label", elem_id="label")
                cat_ctl = [gr.Dropdown(["random"], value="random", visible=False, elem_id=f"cat{i}") for i in range(MAX_CAT)]
                cont_ctl = [gr.Slider(-1, 1, value=0, step=0.01, visible=False, elem_id=f"cont{i}") for i in range(MAX_CONT)]
            with gr.Column(scale=3):
                with gr.Tab("Generate"):
                    gen_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                    gen_img = gr.Image(label="samples", format="png", type="numpy", interactive=False, elem_id="gen-image")
                    gen_note = gr.Markdown()
                    with gr.Row():
                        gen_png = gr.DownloadButton("PNG", size="sm")
                        gen_npz = gr.DownloadButton("NPZ (samples + inputs)", size="sm")
                with gr.Tab("Sweep"):
                    with gr.Row():
                        factor = gr.Dropdown([], label="sweep (columns)", elem_id="factor")
                        steps = gr.Slider(2, 16, value=8, step=1, label="steps (continuous codes)")
                        rows = gr.Slider(1, 16, value=4, step=1, label="rows (different z)")
                        captions = gr.Checkbox(True, label="captions")
                    sweep_btn = gr.Button("Sweep", variant="primary", elem_id="sweep")
                    sweep_img = gr.Image(label="sweep", show_label=False, format="png", type="numpy", interactive=False, elem_id="sweep-image")
                    sweep_png = gr.DownloadButton("PNG", size="sm")
                with gr.Tab("Interpolate"):
                    with gr.Row():
                        frames = gr.Slider(2, lim.max_frames, value=min(32, lim.max_frames), step=1, label="frames")
                        keys = gr.Slider(1, 8, value=4, step=1, label="keyframes (z)")
                        walk_labels = gr.Dropdown([], multiselect=True, label="labels along the walk", visible=False)
                        animate = gr.Dropdown(["none"], value="none", label="animate a continuous code")
                    walk_btn = gr.Button("Interpolate", variant="primary", elem_id="interpolate")
                    walk_gif = gr.Image(label="walk (GIF)", type="filepath", interactive=False, elem_id="walk-gif")
                    walk_file = gr.DownloadButton("GIF", size="sm")
                with gr.Tab("Compare"):
                    with gr.Row():
                        model_b = gr.Dropdown(names, value=names[-1], label="second model")
                        cmp_btn = gr.Button("Compare", variant="primary", elem_id="compare")
                    cmp_note = gr.Markdown()
                    with gr.Row():
                        cmp_a = gr.Image(label="model", format="png", type="numpy", interactive=False)
                        cmp_b = gr.Image(label="second model", format="png", type="numpy", interactive=False)
                with gr.Tab("Model card"):
                    card = gr.Markdown()

        shared = [model, seed, n, label, truncation, *cat_ctl, *cont_ctl]
        k = len(shared)
        run = {"concurrency_limit": lim.concurrency, "concurrency_id": COMPUTE, "api_visibility": "private"}

        def split(args):
            m, s, count, lab, trunc, *codes = args[:k]
            cat, cont = codes_from_controls(ex, m, codes)
            return m, s, count, lab, trunc, cat, cont, args[k:]

        @one_line_errors
        def ui_generate(*args):
            m, s, count, lab, trunc, cat, cont, _ = split(args)
            return ex.generate(m, count, s, lab, trunc, cat, cont)

        @one_line_errors
        def ui_sweep(*args):
            m, s, _, lab, trunc, cat, cont, (fac, st, r, cap) = split(args)
            return ex.sweep(m, fac, st, r, s, lab, trunc, cat, cont, cap)

        @one_line_errors
        def ui_walk(*args):
            m, s, _, _, trunc, cat, cont, (fr, ke, labs, anim) = split(args)
            path = ex.interpolate(m, fr, ke, s, labs, anim, trunc, cat, cont)
            return path, path

        @one_line_errors
        def ui_compare(*args):
            m, s, count, lab, trunc, cat, cont, (mb,) = split(args)
            return ex.compare(m, mb, count, s, lab, trunc, cat, cont)

        gen_out = [gen_img, gen_png, gen_npz, gen_note]
        control_out = [label, *cat_ctl, *cont_ctl, factor, walk_labels, animate, card]
        on_model = one_line_errors(functools.partial(control_updates, ex))
        demo.load(on_model, model, control_out, api_visibility="private").then(ui_generate, shared, gen_out, **run)
        model.change(on_model, model, control_out, api_visibility="private").then(ui_generate, shared, gen_out, **run)
        live = [seed.input, n.input, truncation.input, label.input, *(c.input for c in [*cat_ctl, *cont_ctl])]
        gr.on([gen_btn.click, *live], ui_generate, shared, gen_out, trigger_mode="always_last", **run)
        sweep_btn.click(ui_sweep, [*shared, factor, steps, rows, captions], [sweep_img, sweep_png], **run)
        walk_btn.click(ui_walk, [*shared, frames, keys, walk_labels, animate], [walk_gif, walk_file], **run)
        cmp_btn.click(ui_compare, [*shared, model_b], [cmp_a, cmp_b, cmp_note], **run)
        add_api(ex, gen_out, [sweep_img, sweep_png], [walk_gif, walk_file], [cmp_a, cmp_b, cmp_note], card)
    demo.queue(max_size=lim.queue_size, default_concurrency_limit=lim.concurrency)
    return demo


def add_api(ex: Explorer, gen_out: list, sweep_out: list, walk_out: list, cmp_out: list, card: Any) -> None:
    """The named endpoints for gradio_client: plain typed parameters, codes as text."""
    lim = ex.limits
    run = {"concurrency_limit": lim.concurrency, "concurrency_id": COMPUTE}

    def endpoint(fn, outputs: Any, **kw: Any) -> None:
        """A hidden input per parameter of ``fn`` (its type and default), so clients see a typed signature."""
        inputs = [hidden_input(p) for p in inspect.signature(fn).parameters.values()]
        gr.Button(visible=False).click(one_line_errors(fn), inputs, outputs, api_name=fn.__name__.rstrip("_"), **kw)

    def models() -> list[str]:
        """The names of the models this server serves."""
        return ex.registry.names

    def card_(model: str) -> str:
        """The model's latent spec and card (Markdown)."""
        return ex.card(model)

    def generate(model: str, n: int = 16, seed: int = 0, label: str = "random", truncation: float = 0, codes: str = ""):
        """n samples: the grid image, its PNG, an NPZ (samples + inputs), a note."""
        return ex.generate(model, n, seed, label, truncation, codes=codes)

    def sweep(model: str, factor: str, steps: int = 8, rows: int = 4, seed: int = 0, label: str = "random",
              truncation: float = 0, codes: str = "", captions: bool = True):
        """Rows of different z, columns of one factor's values ("label" or a code name): the image and its PNG."""
        return ex.sweep(model, factor, steps, rows, seed, label, truncation, captions=captions, codes=codes)

    def interpolate(model: str, frames: int = 32, keyframes: int = 4, seed: int = 0, labels: str = "",
                    animate: str = "none", truncation: float = 0, codes: str = ""):
        """A looping GIF of a spherical walk through z; labels (comma-separated) per keyframe; animate a continuous code."""
        path = ex.interpolate(model, frames, keyframes, seed, labels, animate, truncation, codes=codes)
        return path, path

    def compare(model_a: str, model_b: str, n: int = 16, seed: int = 0, label: str = "random", truncation: float = 0, codes: str = ""):
        """The same seed (the same z when the noise matches) through two models, side by side, and a note."""
        return ex.compare(model_a, model_b, n, seed, label, truncation, codes=codes)

    endpoint(models, gr.JSON(visible=False))
    endpoint(card_, card)
    endpoint(generate, gen_out, **run)
    endpoint(sweep, sweep_out, **run)
    endpoint(interpolate, walk_out, **run)
    endpoint(compare, cmp_out, **run)


def hidden_input(param: inspect.Parameter) -> Any:
    default = None if param.default is inspect.Parameter.empty else param.default
    kind = {"int": gr.Number, "float": gr.Number, "bool": gr.Checkbox}.get(param.annotation, gr.Textbox)
    extra = {"precision": 0} if param.annotation == "int" else {}
    return kind(value=default, visible=False, label=param.name, **extra)


# --------------------------------------------------------------------------- serving
def make_explorer(models: list[str | Path], limits: Limits | None = None, threads: int | None = None,
                  with_shipped: bool = True) -> Explorer:
    """The shipped models (unless ``with_shipped`` is False) plus ``models`` (paths or shipped names), nothing loaded yet."""
    from ctrlgen.models import resolve_model, shipped

    paths = [*(shipped() if with_shipped else []), *(resolve_model(str(m)) for m in models)]
    if not paths:
        raise CtrlgenError("no models to serve: give MODEL paths (.onnx, checkpoint or run directory) or ship one in models/")
    limits = limits or Limits()
    return Explorer(Registry(paths, threads=threads), limits, OutputStore(limits.max_files))


def start(ex: Explorer, host: str = "127.0.0.1", port: int | None = None) -> tuple[gr.Blocks, str]:
    """Serve ``ex`` on host:port in the background (never a share link); returns (demo, url)."""
    from ctrlgen.models import models_dir

    demo = build(ex)
    blocked = sorted({str(models_dir().resolve()), *(str(p) for p in ex.registry.paths.values())})
    try:
        _, url, _ = demo.launch(
            server_name=host, server_port=port, share=False, prevent_thread_lock=True, quiet=True,
            show_error=False, theme=THEME, ssr_mode=False, allowed_paths=[], blocked_paths=blocked,
            enable_monitoring=False, mcp_server=False, run_history=False, max_file_size="1mb",
        )
    except OSError as e:
        raise CtrlgenError(f"cannot serve on {host}:{port} ({str(e).split('.')[0]}); choose another --port, or a --host of this machine") from None
    return demo, url


def launch(models: list[str], host: str = "127.0.0.1", port: int = 7860, limits: Limits | None = None, threads: int | None = None) -> None:
    """``ctrlgen ui``: serves until Ctrl-C."""
    ex = make_explorer(models, limits, threads)
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop cleans up like Ctrl-C
    try:
        demo, url = start(ex, host, port)
        print(f"Serving {', '.join(ex.registry.names)} on {url} (Ctrl-C stops)", flush=True)
        demo.block_thread()
    finally:
        ex.store.cleanup()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
