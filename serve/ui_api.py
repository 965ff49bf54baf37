"""The web UI's named API endpoints for ``gradio_client`` (``client.view_api()`` lists them).

``/models``, ``/card``, ``/generate``, ``/sweep``, ``/interpolate`` and
``/compare``: typed parameters (``model``, ``factor`` and ``label`` list their
choices), codes as text (``"c=3 u0=0.5"``), and outputs with names
(``image``, ``npz``, ``note``...), each file once.  Every request runs in the
page's concurrency group and is bounded by ``Limits``; a bad one is refused
with a one-line message.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import gradio as gr

from ctrlgen.errors import CtrlgenError
from ctrlgen.traversal import sweep_factors


def one_line_errors(fn):
    """CtrlgenError -> gr.Error: the client sees the one line, the server keeps running."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        try:
            return fn(*args, **kwargs)
        except CtrlgenError as e:
            raise gr.Error(str(e), print_exception=False) from None

    return wrapper


def add_api(ex: Any, concurrency_id: str) -> None:
    """The named endpoints, each with hidden inputs (its parameters) and hidden outputs (named results)."""
    reg, lim = ex.registry, ex.limits
    specs = [reg.about(m)[0] for m in reg.names]
    choices = {
        "model": reg.names, "model_a": reg.names, "model_b": reg.names,
        "factor": list(dict.fromkeys(f for s in specs if s.output_kind == "image" for f in sweep_factors(s))),
        "label": list(dict.fromkeys(["random", "all", *(name for s in specs for name in s.labels)])),
        "animate": list(dict.fromkeys(["none", *(c.name for s in specs for c in s.continuous)])),
    }
    run = {"concurrency_limit": lim.concurrency, "concurrency_id": concurrency_id}

    def hidden_input(param: inspect.Parameter) -> Any:
        default = None if param.default is inspect.Parameter.empty else param.default
        if param.name in choices:  # free text is still allowed (an index, a file's label), checked by ctrlgen.controls
            return gr.Dropdown(choices[param.name], value=default, allow_custom_value=True, visible=False, label=param.name)
        kind = {"int": gr.Number, "float": gr.Number, "bool": gr.Checkbox}.get(param.annotation, gr.Textbox)
        extra = {"precision": 0} if param.annotation == "int" else {}
        return kind(value=default, visible=False, label=param.name, **extra)

    def endpoint(fn, outputs: list, **kw: Any) -> None:
        inputs = [hidden_input(p) for p in inspect.signature(fn).parameters.values()]
        gr.Button(visible=False).click(one_line_errors(fn), inputs, outputs, api_name=fn.__name__.rstrip("_"), **kw)

    def image(name: str) -> Any:
        return gr.Image(label=name, format="png", type="numpy", visible=False, buttons=[])

    def file(name: str) -> Any:
        return gr.File(label=name, visible=False)

    def note(name: str = "note") -> Any:
        return gr.Textbox(label=name, visible=False)

    def models() -> list[str]:
        """The names of the models this server serves."""
        return reg.names

    def card_(model: str) -> str:
        """The model's card and latent spec (Markdown tables; values from the file are escaped)."""
        return ex.card(model)

    def generate(model: str, n: int = 16, seed: int = 0, label: str = "random", truncation: float = 0, codes: str = ""):
        """n samples (points for 2D models): the picture (PNG), an NPZ of samples and inputs, a note."""
        _, png, npz, text = ex.generate(model, n, seed, label, truncation, codes=codes)
        return str(png), str(npz), text  # the PNG written once: gradio serves it as the image

    def sweep(model: str, factor: str, steps: int = 8, rows: int = 4, seed: int = 0, label: str = "random",
              truncation: float = 0, codes: str = "", captions: bool = True):
        """Rows of different z (label "all": a row per class), columns of one factor's values ("label" or a code name)."""
        _, png, text = ex.sweep(model, factor, steps, rows, seed, label, truncation, captions=captions, codes=codes)
        return str(png), text

    def interpolate(model: str, frames: int = 32, keyframes: int = 4, seed: int = 0, labels: str = "",
                    animate: str = "none", truncation: float = 0, codes: str = "", walks: int = 1, fps: int = 12, label: str = "random"):
        """A looping GIF of walks through z; labels (comma-separated) per keyframe, else label for every walk ("all": a class each)."""
        path, text = ex.interpolate(model, frames, keyframes, seed, labels, animate, truncation, fps=fps, codes=codes, walks=walks, label=label)
        return str(path), text

    def compare(model_a: str, model_b: str, n: int = 16, seed: int = 0, label: str = "random", truncation: float = 0, codes: str = ""):
        """The same seed (the same z when the noise matches) through two models, side by side, and a note."""
        return ex.compare(model_a, model_b, n, seed, label, truncation, codes=codes)

    endpoint(models, [gr.JSON(visible=False, label="models")])
    endpoint(card_, [note("card")])
    endpoint(generate, [image("image"), file("npz"), note()], **run)
    endpoint(sweep, [image("image"), note()], **run)
    endpoint(interpolate, [gr.Image(label="gif", type="filepath", visible=False, buttons=[]), note()], **run)
    endpoint(compare, [image("image_a"), image("image_b"), note()], **run)
