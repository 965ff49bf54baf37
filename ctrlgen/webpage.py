"""A static web page that generates from a ctrlgen model in the visitor's browser.

``ctrlgen export MODEL --web DIR`` writes three files any static server can host:

* ``index.html``: the page, loading onnxruntime-web from ``ort_url`` (default:
  the official jsDelivr CDN path of the pinned version) and then ``ctrlgen.js``;
* ``ctrlgen.js``: reads the spec from the ONNX file's own metadata
  (``ctrlgen.spec``; no separate spec.json, so the .onnx file stays the single
  source of truth), builds the controls from it (labels by name, codes by name
  and range, seed, count), runs the model with onnxruntime-web, draws the grid
  on a canvas and offers it as a PNG;
* ``model.onnx``: the model, unchanged.

There is no server-side code: ``python -m http.server -b 127.0.0.1 -d DIR``
is enough (browsers do not ``fetch`` from ``file://``).

The page's latents come from one small seeded generator written twice, in
``ctrlgen.js`` and here (:func:`web_inputs`), so the same seed gives the same
inputs on both sides: mulberry32 for uint32s, ``(u + 0.5) / 2**32`` for
uniforms, Box-Muller (the cosine half) for normals.  It is not the CLI's
generator (``LatentSpec.sample``, numpy's PCG64): a page and ``ctrlgen generate``
with the same seed show different samples.
"""

from __future__ import annotations

import contextlib
import html
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ctrlgen.errors import CtrlgenError
from ctrlgen.spec import CODE_CAT, CODE_CONT, LABEL, SPEC_KEY, LatentSpec, Z

ORT_WEB_VERSION = "1.31.1"
"""The onnxruntime-web release the page was tested with (scripts/install.sh --test installs it)."""
DEFAULT_ORT_URL = f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{ORT_WEB_VERSION}/dist/ort.min.js"
PAGE_FILES = ("index.html", "ctrlgen.js", "model.onnx")
_URL = re.compile(r"(https?://[^\s\"'<>]+|[^\s\"'<>:]+)")  # http(s) or a path on the page's own server
_M32 = 0xFFFFFFFF


@dataclass(frozen=True)
class WebReport:
    folder: Path
    spec: LatentSpec
    title: str
    ort_url: str
    model_bytes: int


# --------------------------------------------------------------------------- latents (mirrored in web/ctrlgen.js)
def mulberry32(seed: int, count: int) -> list[int]:
    """The first ``count`` uint32 outputs of mulberry32 seeded with ``seed`` mod 2**32."""
    a, out = int(seed) & _M32, []
    for _ in range(count):
        a = (a + 0x6D2B79F5) & _M32
        t = a
        t = ((t ^ (t >> 15)) * (t | 1)) & _M32
        t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & _M32)) & _M32
        out.append((t ^ (t >> 14)) & _M32)
    return out


def web_inputs(
    spec: LatentSpec,
    n: int,
    seed: int,
    *,
    label: int | Sequence[int] | None = None,
    cat: Mapping[str, int] | None = None,
    cont: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """The model inputs the web page feeds for ``n`` samples of ``seed`` (fixed values replace drawn ones).

    Per sample, in order: z, the label, each categorical code, each continuous code;
    everything is drawn even when fixed, so fixing one input leaves the others as they were."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise CtrlgenError(f"sample count must be an integer >= 0, got {n!r}")
    d, k = spec.noise_dim, spec.n_classes
    per = d * (2 if spec.noise == "normal" else 1) + (1 if k else 0) + len(spec.categorical) + len(spec.continuous)
    u = iter([(x + 0.5) / 4294967296.0 for x in mulberry32(seed, n * per)])
    z = np.zeros((n, d), np.float32)
    labels = np.zeros(n, np.int64)
    codes_cat = np.zeros((n, len(spec.categorical)), np.int64)
    codes_cont = np.zeros((n, len(spec.continuous)), np.float32)
    for i in range(n):
        for j in range(d):
            if spec.noise == "uniform":
                z[i, j] = -1.0 + 2.0 * next(u)
            else:
                u1, u2 = next(u), next(u)
                z[i, j] = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        if k:
            labels[i] = math.floor(next(u) * k)
        for j, c in enumerate(spec.categorical):
            codes_cat[i, j] = math.floor(next(u) * c.n)
        for j, c in enumerate(spec.continuous):
            codes_cont[i, j] = c.low + (c.high - c.low) * next(u)
    if label is not None:
        labels[:] = spec.label_index(label) if np.ndim(label) == 0 else [spec.label_index(v) for v in np.asarray(label).tolist()]
    for name, value in (cat or {}).items():
        codes_cat[:, spec.categorical_index(name)] = value
    for name, value in (cont or {}).items():
        codes_cont[:, spec.continuous_index(name)] = value
    out = {Z: z, LABEL: labels, CODE_CAT: codes_cat, CODE_CONT: codes_cont}
    return {name: out[name] for name in spec.input_names}


# --------------------------------------------------------------------------- the page
def check_ort_url(url: str) -> str:
    """An http(s) URL or a path on the page's own server; nothing that could break out of the script tag."""
    if not isinstance(url, str) or not _URL.fullmatch(url):
        raise CtrlgenError(f"--ort-url {url!r} is not an http(s) URL or a server path; give e.g. {DEFAULT_ORT_URL}")
    return url


def page_asset(name: str) -> str:
    return resources.files("ctrlgen").joinpath("web", name).read_text(encoding="utf-8")


def read_spec(data: bytes, source: Path) -> tuple[LatentSpec, dict]:
    """The spec and card in an ONNX file's metadata, without loading its weights into a runtime."""
    import json

    import onnx

    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise CtrlgenError(f"{source} is not a readable ONNX file ({type(e).__name__}); re-export it with ctrlgen export") from None
    meta = {p.key: p.value for p in model.metadata_props}
    if SPEC_KEY not in meta:
        raise CtrlgenError(f"{source} has no {SPEC_KEY} metadata, so the page cannot build its controls; export it with ctrlgen export")
    if any(init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer):
        raise CtrlgenError(f"{source} keeps its weights in a separate file; the page loads one file: re-export it in one piece")
    try:
        card = json.loads(meta.get("ctrlgen.card", "{}"))
    except json.JSONDecodeError:
        card = {}
    return LatentSpec.from_json(meta[SPEC_KEY]), card if isinstance(card, dict) else {}


GENERATOR_TAG = '<meta name="generator" content="ctrlgen export --web">'
JS_LEAD = "// The page `ctrlgen export MODEL --web DIR` writes"


def _ours(path: Path) -> bool:
    """Whether the page file at ``path`` is one ``write_page`` wrote (``--force`` replaces only those)."""
    if path.name == "model.onnx":
        from ctrlgen.card import read_metadata

        try:
            return SPEC_KEY in read_metadata(path)
        except CtrlgenError:
            return False
    try:
        with open(path, encoding="utf-8") as f:
            head = f.read(4096)
    except (OSError, UnicodeDecodeError):
        return False
    return GENERATOR_TAG in head if path.name == "index.html" else head.startswith(JS_LEAD)


def write_page(
    source: str | os.PathLike,
    folder: str | os.PathLike,
    *,
    ort_url: str = DEFAULT_ORT_URL,
    force: bool = False,
    export_options: dict | None = None,
) -> WebReport:
    """Write index.html, ctrlgen.js and model.onnx into ``folder`` (a run directory or checkpoint is exported first).

    An existing folder that holds anything is refused unless ``force``; then only the page's three
    files in it are replaced (each atomically), and only where they are the files this wrote (a site's
    own index.html is refused); nothing else there is touched."""
    from ctrlgen.files import atomic_writer, check_output
    from ctrlgen.triton import _model_bytes

    source, folder = Path(source), Path(folder)
    check_ort_url(ort_url)
    if folder.exists() and not folder.is_dir():
        raise CtrlgenError(f"{folder} is a file; give a folder for the web page")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise CtrlgenError(f"{folder} already exists and is not empty; pass --force to replace the page's files or choose another folder")
    theirs = [name for name in PAGE_FILES if os.path.lexists(folder / name) and not _ours(folder / name)]
    if theirs:  # --force replaces the page this command wrote, not a site's own index.html
        raise CtrlgenError(f"{folder} holds {', '.join(theirs)} that ctrlgen did not write, and --force replaces only the page's own "
                           "files; move them away or choose another folder")
    data = _model_bytes(source, export_options or {})
    spec, card = read_spec(data, source)
    title = str(card.get("name") or source.stem)
    page = page_asset("index.html").replace("{{TITLE}}", html.escape(title)).replace("{{ORT_URL}}", html.escape(ort_url, quote=True))
    files = {"model.onnx": data, "ctrlgen.js": page_asset("ctrlgen.js").encode("utf-8"), "index.html": page.encode("utf-8")}
    for name in files:  # without --force, never replace a file that appears meanwhile
        check_output(folder / name, force)
    with contextlib.ExitStack() as stack:  # all three written before any is published: a failure (a full disk) leaves none
        for name, body in files.items():
            stack.enter_context(atomic_writer(folder / name)).write_bytes(body)
    return WebReport(folder, spec, title, ort_url, len(data))


def export_web(source: str | os.PathLike, folder: str | os.PathLike, ort_url: str | None, force: bool, export_options: dict,
               evaluate: bool = False, triton: os.PathLike | None = None) -> str:
    """``ctrlgen export SOURCE --web DIR``: write the page and say how to serve it."""
    if triton is not None:
        raise CtrlgenError("--web and --triton write different things; run ctrlgen export once for each")
    if evaluate:
        raise CtrlgenError(f"--eval measures an .onnx file; export with -o m.onnx --eval, then ctrlgen export m.onnx --web {folder}")
    rep = write_page(source, folder, ort_url=ort_url or DEFAULT_ORT_URL, force=force, export_options=export_options)
    controls = ", ".join(name for name, _ in rep.spec.describe() if name not in ("noise", "output", "inputs"))
    return (
        f"Wrote {rep.folder}/index.html, ctrlgen.js and model.onnx ({rep.model_bytes / 1e6:.2f} MB; controls: "
        f"{controls + ', ' if controls else ''}seed, count; onnxruntime-web from {rep.ort_url})\n"
        f"Try it: python -m http.server -b 127.0.0.1 -d {rep.folder} 8000, then open http://127.0.0.1:8000/"
    )
