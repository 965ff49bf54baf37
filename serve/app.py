"""The web UI (``ctrlgen ui``): a latent explorer around ``Explorer``, in gradio.

Pure functions first (``ui_backend.py``), then ``build()`` lays out the Blocks,
and ``launch()`` serves them; importing this module loads no model and starts
nothing.  The controls are built per model from its LatentSpec (``gr.render``):
a dropdown per categorical code and a slider per continuous code, however many
it has, plus the label (class names, ``all``, ``random``), seed, sample count
and truncation.  The code controls write one text in ``ctrlgen.controls``'
grammar (``"c=3 u0=0.5"``), the same text the API and the CLI take.

The settings live in the page's URL (``?model=...&seed=...``), so a view can
be shared as a link.  A request that fails keeps the last good result on
screen and says what was wrong in one line naming the field.  Named API
endpoints for ``gradio_client`` are in ``ui_api.py``.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls to outside hosts; before gradio loads

import functools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402

from ctrlgen.errors import CtrlgenError  # noqa: E402
from ctrlgen.serve.ui_api import add_api  # noqa: E402
from ctrlgen.serve.ui_backend import SEED_MAX, Explorer, Limits, OutputStore, Registry  # noqa: E402
from ctrlgen.serve.ui_card import md_text  # noqa: E402
from ctrlgen.traversal import sweep_factors  # noqa: E402

__all__ = ["Limits", "build", "launch", "make_explorer"]

COMPUTE = "compute"  # the concurrency group of every request that runs a model
FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]  # local fonts: the page fetches nothing from outside
THEME = gr.themes.Default(font=FONTS, font_mono=["ui-monospace", "monospace"])
NO_BUTTONS: list = []  # no share (it uploads to an outside host), no toolbar over the picture; downloads are buttons
POINTS_DEFAULT = 5000  # points drawn for a 2D model
# The settings kept in the URL, in the order of the components passed to the js below.
# On a phone a sweep keeps its pixel size (captions at 14 px) and scrolls sideways instead of shrinking.
CSS = """@media (max-width: 720px) {
  #sweep-image .image-frame, #sweep-image button { overflow-x: auto; max-width: 100%; display: block; }
  #sweep-image img { max-width: none !important; width: auto !important; height: auto !important; max-height: none !important; }
}"""
URL_KEYS = ["model", "seed", "n", "label", "truncation", "codes", "factor", "steps", "rows", "frames", "keyframes", "walks", "fps", "model_b"]
URL_JS = """(...v) => { const keys = KEYS; const q = new URLSearchParams();
  keys.forEach((k, i) => { if (v[i] !== null && v[i] !== undefined && v[i] !== '' && !Array.isArray(v[i])) q.set(k, String(v[i])); });
  history.replaceState(null, '', location.pathname + '?' + q.toString()); return []; }""".replace("KEYS", json.dumps(URL_KEYS))


def shown_error(e: Exception) -> dict:
    """The one-line message of a failed request, as escaped text."""
    return gr.update(value=f"⚠ {md_text(e)}", visible=True)


def keep_on_error(n_outputs: int):
    """A UI handler that returns its outputs and a cleared message, or on a CtrlgenError leaves the
    outputs as they are (the last good result, its note and downloads stay together) and shows the message."""

    def wrap(fn):
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any):
            try:
                out = fn(*args, **kwargs)
            except CtrlgenError as e:
                return (*[gr.skip()] * n_outputs, shown_error(e))
            return (*(out if isinstance(out, tuple) else (out,)), gr.update(value="", visible=False))

        return wrapper

    return wrap


# --------------------------------------------------------------------------- per-model pieces (pure)
def url_settings(query: dict) -> dict:
    """The settings a link carries (``URL_KEYS``); numbers as numbers, anything unknown dropped."""
    out: dict[str, Any] = {}
    for k, v in query.items():
        if k not in URL_KEYS or not isinstance(v, str) or len(v) > 500:
            continue
        if k in ("seed", "n", "truncation", "steps", "rows", "frames", "keyframes", "walks", "fps"):
            try:
                f = float(v)
            except ValueError:
                continue
            if not math.isfinite(f):
                continue
            v = int(f) if f == int(f) else f
        out[k] = v
    return out


def default_codes(spec: Any) -> str:
    """The codes text of fresh controls: categorical codes drawn, continuous codes at their midpoint."""
    return " ".join(f"{c.name}={(c.low + c.high) / 2:g}" for c in spec.continuous)


def random_codes(spec: Any, rng: random.Random) -> str:
    """Every code at a random value of its range (two decimals for continuous codes)."""
    return " ".join([f"{c.name}={rng.randrange(c.n)}" for c in spec.categorical] +
                    [f"{c.name}={rng.uniform(c.low, c.high):.2f}" for c in spec.continuous])


def codes_text(spec: Any, values: list) -> str:
    """The codes text from the code controls' values (categoricals first, in spec order)."""
    k = len(spec.categorical)
    parts = [f"{c.name}={v}" for c, v in zip(spec.categorical, values[:k], strict=False) if v not in (None, "", "random")]
    parts += [f"{c.name}={float(v):g}" for c, v in zip(spec.continuous, values[k:], strict=False) if v is not None]
    return " ".join(parts)


def second_model(ex: Explorer, model: str) -> str:
    """The model to compare with: another one with the same output and noise if any, else the same output."""
    spec = ex.registry.about(model)[0]
    others = [m for m in ex.registry.names if m != model] or [model]

    def score(m: str) -> tuple:
        s = ex.registry.about(m)[0]
        return (s.output_kind == spec.output_kind and s.output_shape == spec.output_shape, (s.noise_dim, s.noise) == (spec.noise_dim, spec.noise))

    return max(others, key=score)


def model_updates(ex: Explorer, model: str, query: dict | None = None) -> list:
    """Every control that depends on the model, fresh for ``model`` (``query``: values from the URL win)."""
    q = query or {}
    spec = ex.registry.about(model)[0]
    lim = ex.limits
    points = spec.output_kind == "points"
    high = lim.max_points if points else lim.max_samples
    n_default = min(POINTS_DEFAULT if points else 40, high)
    classes = ["random", "all", *spec.labels] if spec.conditional else ["random"]
    factors = sweep_factors(spec) if not points else []
    codes = q.get("codes", default_codes(spec))
    has_codes = bool(spec.categorical or spec.continuous)
    # A link's values for the choice controls must be among their choices: gradio refuses any other value with
    # an error toast that renders the value as HTML (a shared link could put a live <a href> on the page).
    label = q["label"] if q.get("label") in classes else None
    factor = q["factor"] if q.get("factor") in factors else None
    model_b = q["model_b"] if q.get("model_b") in ex.registry.names else None
    return [
        gr.update(maximum=high, value=q.get("n", n_default), label="points" if points else "samples"),
        gr.update(choices=classes, value=label or ("all" if spec.conditional else "random"), visible=spec.conditional),
        gr.update(value=codes, visible=has_codes),
        gr.update(visible=has_codes),
        gr.update(choices=factors, value=factor or (factors[0] if factors else None), visible=bool(factors)),
        gr.update(interactive=bool(factors)),
        gr.update(value="" if factors else f"Sweeps need an image model; {md_text(model)} makes 2D points: use Generate or Interpolate.",
                  visible=not factors),
        gr.update(choices=list(spec.labels), value=[], visible=spec.conditional),
        gr.update(choices=["none", *(c.name for c in spec.continuous)], value="none", visible=bool(spec.continuous)),
        gr.update(visible=not points, value=q.get("walks", 1)),
        gr.update(value=model_b or second_model(ex, model)),
        ex.card(model),
    ]


# --------------------------------------------------------------------------- the page
def build(ex: Explorer) -> gr.Blocks:
    reg, lim = ex.registry, ex.limits
    names = reg.names
    picker = [(f"{m} — {reg.describe(m)}" if reg.describe(m) else m, m) for m in names]
    with gr.Blocks(title="ctrlgen explorer", analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        gr.Markdown("## ctrlgen latent explorer\nPick a model and set its label and codes; Generate updates as you change them. "
                    "Click a sample to see its z, label and codes and pin it for sweeps and walks. The address bar keeps the view: share it as a link.")
        redraw, last, picked, pin = gr.State(0), gr.State(None), gr.State(None), gr.State(None)
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                model = gr.Dropdown(picker, value=reg.default, label="model", elem_id="model")
                with gr.Row():
                    seed = gr.Number(0, precision=0, label="seed", elem_id="seed", min_width=120)
                    new_seed = gr.Button("New seed", size="sm", elem_id="new-seed", min_width=80)
                n = gr.Slider(1, lim.max_samples, value=min(40, lim.max_samples), step=1, label="samples", elem_id="n")
                truncation = gr.Slider(0, 3, value=0, step=0.05, label="truncation (0 = off)", elem_id="truncation")
                label = gr.Dropdown(["random"], value="random", label="label", elem_id="label")
                codes = gr.Textbox("", label="codes (NAME=VALUE; Enter applies)", elem_id="codes", max_lines=1)
                random_btn = gr.Button("Random codes", size="sm", elem_id="random-codes")

                @gr.render(inputs=[model, codes], triggers=[redraw.change])
                def code_controls(m: str, text: str):
                    spec = reg.about(m)[0]
                    try:
                        fixed = ex._controls(spec, codes=text).fixed()
                    except CtrlgenError:
                        fixed = {"cat": {}, "cont": {}}
                    ctls = [gr.Dropdown(["random", *map(str, range(c.n))], value=str(fixed["cat"].get(c.name, "random")),
                                        label=f"{c.name} (categorical, 0..{c.n - 1})", elem_id=f"code-{c.name}", key=f"{m}/{c.name}")
                            for c in spec.categorical]
                    ctls += [gr.Slider(c.low, c.high, value=fixed["cont"].get(c.name, (c.low + c.high) / 2), step=(c.high - c.low) / 100,
                                       label=f"{c.name} (continuous)", elem_id=f"code-{c.name}", key=f"{m}/{c.name}")
                             for c in spec.continuous]
                    for ctl in ctls:
                        ctl.input(lambda *v: codes_text(spec, list(v)), ctls, codes, api_visibility="private", queue=False).then(
                            ui_generate, shared, gen_out, **run).then(None, url_inputs, None, js=URL_JS)

                pinned = gr.Markdown("", visible=False, elem_id="pinned")
                unpin_btn = gr.Button("unpin", size="sm", visible=False, elem_id="unpin")
                msg = gr.Markdown("", visible=False, elem_id="msg")
            with gr.Column(scale=3):
                with gr.Tab("Generate"):
                    gen_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                    gen_img = gr.Image(label="samples", format="png", type="numpy", interactive=False, elem_id="gen-image", buttons=NO_BUTTONS)
                    gen_note = gr.Markdown(elem_id="gen-note")
                    with gr.Row():
                        pick_note = gr.Markdown("Click a sample to see where it comes from.", elem_id="picked")
                        pin_btn = gr.Button("Pin this sample", size="sm", visible=False, elem_id="pin")
                    with gr.Row():
                        gen_png = gr.DownloadButton("PNG", size="sm", elem_id="gen-png")
                        gen_npz = gr.DownloadButton("NPZ (samples + inputs)", size="sm", elem_id="gen-npz")
                with gr.Tab("Sweep", elem_id="tab-sweep"):
                    with gr.Row():
                        factor = gr.Dropdown([], label="sweep (columns)", elem_id="factor")
                        steps = gr.Slider(2, 16, value=8, step=1, label="steps (continuous codes)", elem_id="steps")
                        rows = gr.Slider(1, 16, value=4, step=1, label="rows (different z)", elem_id="rows")
                        captions = gr.Checkbox(True, label="captions")
                    sweep_off = gr.Markdown("", visible=False, elem_id="sweep-off")
                    sweep_btn = gr.Button("Sweep", variant="primary", elem_id="sweep")
                    sweep_img = gr.Image(show_label=False, format="png", type="numpy", interactive=False, elem_id="sweep-image", buttons=NO_BUTTONS)
                    sweep_note = gr.Markdown(elem_id="sweep-note")
                    sweep_png = gr.DownloadButton("PNG", size="sm")
                with gr.Tab("Interpolate"):
                    with gr.Row():
                        frames = gr.Slider(2, lim.max_frames, value=min(32, lim.max_frames), step=1, label="frames", elem_id="frames")
                        keys = gr.Slider(1, 8, value=4, step=1, label="keyframes (z)", elem_id="keyframes")
                        walks = gr.Slider(1, 16, value=1, step=1, label="walks", elem_id="walks")
                        fps = gr.Slider(1, 30, value=12, step=1, label="frames per second", elem_id="fps")
                    with gr.Row():
                        walk_labels = gr.Dropdown([], multiselect=True, label="labels along the walk (empty: the label control)",
                                                  visible=False, elem_id="walk-labels")
                        animate = gr.Dropdown(["none"], value="none", label="animate a continuous code", elem_id="animate")
                    walk_btn = gr.Button("Interpolate", variant="primary", elem_id="interpolate")
                    walk_gif = gr.Image(label="walk (GIF)", type="filepath", interactive=False, elem_id="walk-gif", buttons=NO_BUTTONS)
                    walk_note = gr.Markdown(elem_id="walk-note")
                    walk_file = gr.DownloadButton("GIF", size="sm")
                with gr.Tab("Compare"):
                    with gr.Row():
                        model_b = gr.Dropdown(picker, value=second_model(ex, reg.default), label="second model", elem_id="model-b")
                        cmp_btn = gr.Button("Compare", variant="primary", elem_id="compare")
                    cmp_note = gr.Markdown(elem_id="cmp-note")
                    with gr.Row():
                        cmp_a = gr.Image(label="model", format="png", type="numpy", interactive=False, elem_id="cmp-a", buttons=NO_BUTTONS)
                        cmp_b = gr.Image(label="second model", format="png", type="numpy", interactive=False, elem_id="cmp-b", buttons=NO_BUTTONS)
                with gr.Tab("Model card"):
                    card = gr.Markdown(elem_id="card", sanitize_html=True, latex_delimiters=[])

        shared = [model, seed, n, label, truncation, codes]
        url_inputs = [model, seed, n, label, truncation, codes, factor, steps, rows, frames, keys, walks, fps, model_b]
        run = {"concurrency_limit": lim.concurrency, "concurrency_id": COMPUTE, "api_visibility": "private"}
        gen_out = [gen_img, gen_png, gen_npz, gen_note, last, msg]

        @keep_on_error(5)
        def ui_generate(m, s, count, lab, trunc, text, repeat_hint=None):
            img, png, npz, note = ex.generate(m, count, s, lab, trunc, codes=text)
            settings = {"model": m, "n": count, "seed": s, "label": lab, "truncation": trunc, "codes": text, "shape": list(img.shape)}
            if repeat_hint is not None and {k: v for k, v in settings.items() if k != "shape"} == {k: v for k, v in (repeat_hint or {}).items() if k != "shape"}:
                note += " · Same settings, same samples: the seed decides them; New seed draws others."
            return str(png), png, npz, md_text(note), settings  # the PNG it wrote: gradio need not encode the picture again

        def ui_generate_button(m, s, count, lab, trunc, text, previous):  # ui_generate keeps the last result on error
            return ui_generate(m, s, count, lab, trunc, text, repeat_hint=previous or {})

        @keep_on_error(3)
        def ui_sweep(m, s, _, lab, trunc, text, fac, st, r, cap, p):
            _, png, note = ex.sweep(m, fac, st, r, s, lab, trunc, captions=cap, codes=text, pin=p)
            return str(png), png, md_text(note)

        @keep_on_error(3)
        def ui_walk(m, s, _, lab, trunc, text, fr, ke, wa, fp, labs, anim, p):
            path, note = ex.interpolate(m, fr, ke, s, labs, anim, trunc, fps=fp, codes=text, walks=wa, label=lab, pin=p)
            return path, path, md_text(note)

        @keep_on_error(3)
        def ui_compare(m, s, count, lab, trunc, text, mb):
            a, b, note = ex.compare(m, mb, count, s, lab, trunc, codes=text)
            return a, b, md_text(note)

        @keep_on_error(3)
        def ui_pick(settings, evt: gr.SelectData):
            if not settings or not isinstance(evt.index, (list, tuple)):
                return gr.skip(), gr.skip(), gr.skip()
            x, y = evt.index[:2]
            info = ex.pick(settings["model"], settings["n"], settings["seed"], settings["label"], settings["truncation"],
                           settings["codes"], x, y, settings["shape"])
            if info is None:
                return None, "No sample there (2D models have no single samples to pick).", gr.update(visible=False)
            return info, md_text(ex.describe_pick(info)), gr.update(visible=True)

        def ui_pin(info):
            if not info:
                return None, gr.update(visible=False), gr.update(visible=False)
            return info, gr.update(value="Pinned for sweeps and walks: " + md_text(ex.describe_pick(info)), visible=True), gr.update(visible=True)

        def ui_random_codes(m, r):
            return random_codes(reg.about(m)[0], random.Random()), r + 1

        def on_model(m, r):
            return [*model_updates(ex, m), r + 1, None, None, gr.update(visible=False), gr.update(visible=False),
                    "Click a sample to see where it comes from.", gr.update(visible=False), None, None, "", None, None, "", None, None, ""]

        def on_load(r, request: gr.Request):
            q = url_settings(dict(request.query_params) if request else {})
            m = q.get("model") if q.get("model") in names else reg.default
            out = [m, q.get("seed", 0), *model_updates(ex, m, q), r + 1]
            out += [q.get(k, gr.skip()) for k in ("truncation", "steps", "rows", "frames", "keyframes", "fps")]
            return out

        per_model = [n, label, codes, random_btn, factor, sweep_btn, sweep_off, walk_labels, animate, walks, model_b, card]
        clear = [redraw, pin, picked, pinned, unpin_btn, pick_note, pin_btn, sweep_img, sweep_png, sweep_note, walk_gif, walk_file, walk_note,
                 cmp_a, cmp_b, cmp_note]
        private = {"api_visibility": "private"}
        demo.load(on_load, [redraw], [model, seed, *per_model, redraw, truncation, steps, rows, frames, keys, fps], **private).then(
            ui_generate, shared, gen_out, **run).then(None, url_inputs, None, js=URL_JS)
        model.input(on_model, [model, redraw], [*per_model, *clear], **private).then(
            ui_generate, shared, gen_out, **run).then(None, url_inputs, None, js=URL_JS)
        live = [seed.input, n.input, truncation.input, label.input, codes.submit]
        gr.on(live, ui_generate, shared, gen_out, trigger_mode="always_last", **run).then(None, url_inputs, None, js=URL_JS)
        codes.submit(lambda r: r + 1, redraw, redraw, **private)
        gen_btn.click(ui_generate_button, [*shared, last], gen_out, **run)
        new_seed.click(lambda: random.randrange(SEED_MAX), None, seed, **private).then(
            ui_generate, shared, gen_out, **run).then(None, url_inputs, None, js=URL_JS)
        random_btn.click(ui_random_codes, [model, redraw], [codes, redraw], **private).then(
            ui_generate, shared, gen_out, **run).then(None, url_inputs, None, js=URL_JS)
        gen_img.select(ui_pick, last, [picked, pick_note, pin_btn, msg], **private)
        pin_btn.click(ui_pin, picked, [pin, pinned, unpin_btn], **private)
        unpin_btn.click(lambda: (None, gr.update(value="", visible=False), gr.update(visible=False)), None, [pin, pinned, unpin_btn], **private)
        sweep_btn.click(ui_sweep, [*shared, factor, steps, rows, captions, pin], [sweep_img, sweep_png, sweep_note, msg], **run).then(
            None, url_inputs, None, js=URL_JS)
        walk_btn.click(ui_walk, [*shared, frames, keys, walks, fps, walk_labels, animate, pin], [walk_gif, walk_file, walk_note, msg], **run).then(
            None, url_inputs, None, js=URL_JS)
        cmp_btn.click(ui_compare, [*shared, model_b], [cmp_a, cmp_b, cmp_note, msg], **run).then(None, url_inputs, None, js=URL_JS)
        add_api(ex, COMPUTE)
    demo.queue(max_size=lim.queue_size, default_concurrency_limit=lim.concurrency)
    return demo


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
            show_error=False, theme=THEME, css=CSS, ssr_mode=False, allowed_paths=[], blocked_paths=blocked,
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
