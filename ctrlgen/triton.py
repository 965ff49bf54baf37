"""Triton Inference Server model repositories for ctrlgen models.

``ctrlgen export MODEL --triton REPO`` writes ``REPO/NAME/1/model.onnx`` and
``REPO/NAME/config.pbtxt`` for Triton's ONNX Runtime backend
(``platform: "onnxruntime_onnx"``).  The config is written out in full rather
than left to Triton's auto-complete, so a server started with
``--disable-auto-complete-config`` (or an older one) serves it as is, and so a
reader sees the interface:

* ``input`` / ``output``: the spec's names and per-sample dims (Triton adds
  the batch axis itself because ``max_batch_size`` > 0) with the data types
  of the ONNX graph; ``label`` has no axis besides the batch, which Triton
  expresses as ``dims: [ 1 ]`` with ``reshape: { shape: [ ] }``;
* ``dynamic_batching``: requests queue for up to ``max_queue_delay_us`` and
  run together, up to ``max_batch_size`` samples per model call (every
  sample of a ctrlgen generator is independent of the others in its batch:
  BatchNorm runs on its stored statistics);
* ``instance_group``: ``count`` copies of the model on each GPU
  (``KIND_GPU``) or on the CPU (``KIND_CPU``).

The spec and the graph are checked against each other before anything is
written; the model folder appears in one rename (staged beside the repository,
since Triton would try to load a half-written folder inside it as a model)
and replaces an existing one only with ``force``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ctrlgen.errors import CtrlgenError
from ctrlgen.files import _umask, make_folders, publish, remove_empty
from ctrlgen.limits import MAX_BATCH, check_int
from ctrlgen.spec import Q_OUTPUT, SPEC_KEY, LatentSpec
from ctrlgen.text import plain

KINDS = ("gpu", "cpu")
VERSION = "1"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # a folder name on every file system: at most 128 characters

# ONNX TensorProto element types -> Triton data types (model_config.proto).
TRITON_TYPES = {1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8", 5: "TYPE_INT16", 6: "TYPE_INT32", 7: "TYPE_INT64",
                9: "TYPE_BOOL", 10: "TYPE_FP16", 11: "TYPE_FP64", 16: "TYPE_BF16"}


@dataclass(frozen=True)
class TensorConfig:
    name: str
    data_type: str  # TYPE_FP32, ...
    dims: tuple[int, ...]  # without the batch axis
    reshape: tuple[int, ...] | None = None  # the shape the model sees when it differs from dims


@dataclass
class RepoReport:
    model_dir: Path
    name: str
    inputs: list[TensorConfig]
    outputs: list[TensorConfig]
    onnx_bytes: int


def _graph_tensors(values) -> dict[str, tuple[int, list[int | str]]]:
    """name -> (ONNX element type, dims with dim_param names for symbolic axes)."""
    out = {}
    for v in values:
        t = v.type.tensor_type
        dims: list[int | str] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
        out[v.name] = (t.elem_type, dims)
    return out


def _tensor(name: str, graph: dict, want: tuple[int, ...], where: str) -> TensorConfig:
    if name not in graph:
        raise CtrlgenError(f"the ONNX graph has no {where} {name!r} although its spec needs one; re-export the model with ctrlgen export")
    elem, dims = graph[name]
    if elem not in TRITON_TYPES:
        raise CtrlgenError(f"{where} {name!r} has ONNX element type {elem}, which Triton has no type for")
    if not dims or isinstance(dims[0], int):
        raise CtrlgenError(f"{where} {name!r} has no dynamic batch axis (shape {dims}); re-export the model with ctrlgen export")
    if tuple(dims[1:]) != want:
        raise CtrlgenError(f"{where} {name!r} has per-sample shape {dims[1:]} in the graph but {list(want)} in the spec; the file is inconsistent, re-export it")
    if not want:  # only the batch axis: Triton needs at least one dim
        return TensorConfig(name, TRITON_TYPES[elem], (1,), ())
    return TensorConfig(name, TRITON_TYPES[elem], want)


def model_io(model, spec: LatentSpec) -> tuple[list[TensorConfig], list[TensorConfig]]:
    """Inputs and outputs for the config: names and dims from the spec, checked against the graph; types from the graph."""
    inits = {i.name for i in model.graph.initializer}
    g_in = _graph_tensors(v for v in model.graph.input if v.name not in inits)
    g_out = _graph_tensors(model.graph.output)
    extra = sorted(set(g_in) - set(spec.input_names))
    if extra:
        raise CtrlgenError(f"the ONNX graph has inputs {extra} that its spec does not describe; re-export the model with ctrlgen export")
    inputs = [_tensor(n, g_in, tuple(s[1:]), "input") for n, s in spec.input_shapes().items()]
    outputs = [_tensor("sample", g_out, spec.output_shape, "output")]
    for name in g_out:
        if name == "sample":
            continue
        if name != Q_OUTPUT or not spec.continuous:
            raise CtrlgenError(f"the ONNX graph has an output {name!r} that ctrlgen does not know; give a file written by ctrlgen export")
        outputs.append(_tensor(name, g_out, (len(spec.continuous),), "output"))
    return inputs, outputs


def _dims(d: tuple[int, ...]) -> str:
    return "[ " + ", ".join(str(x) for x in d) + " ]" if d else "[ ]"


def config_text(name: str, inputs: list[TensorConfig], outputs: list[TensorConfig], *, max_batch_size: int,
                kind: str, instances: int, max_queue_delay_us: int, source: str = "") -> str:
    """config.pbtxt (protobuf text format of Triton's ModelConfig)."""

    def block(t: TensorConfig) -> str:
        lines = [f'    name: "{t.name}"', f"    data_type: {t.data_type}", f"    dims: {_dims(t.dims)}"]
        if t.reshape is not None:
            lines.append(f"    reshape: {{ shape: {_dims(t.reshape)} }}")
        return "  {\n" + "\n".join(lines) + "\n  }"

    head = f"# Written by ctrlgen export --triton{f' from {source}' if source else ''}; inputs and outputs follow the model's latent spec.\n"
    return (
        head
        + f'name: "{name}"\n'
        + 'platform: "onnxruntime_onnx"\n'
        + f"max_batch_size: {max_batch_size}\n"
        + "input [\n" + ",\n".join(block(t) for t in inputs) + "\n]\n"
        + "output [\n" + ",\n".join(block(t) for t in outputs) + "\n]\n"
        + f"dynamic_batching {{\n  max_queue_delay_microseconds: {max_queue_delay_us}\n}}\n"
        + f"instance_group [\n  {{\n    count: {instances}\n    kind: KIND_{kind.upper()}\n  }}\n]\n"
    )


def _model_bytes(source: Path, export_options: dict) -> bytes:
    """The ONNX bytes: an .onnx file as it is, a run directory or checkpoint exported (and verified) first."""
    if source.suffix == ".onnx":
        if not source.is_file():
            raise CtrlgenError(f"{source} does not exist; give an .onnx file, a checkpoint or a run directory")
        return source.read_bytes()
    from ctrlgen.export import export

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.onnx"
        export(source, out, **export_options)
        return out.read_bytes()


def _check_name(name: str, derived: bool) -> None:
    if not _NAME.fullmatch(name):
        raise CtrlgenError(f"model name '{plain(name, 80)}'{' (from the source: no --triton-name given)' if derived else ''} is not a usable "
                           f"folder name; {'give --triton-name with' if derived else 'use'} letters, digits, '_', '-' or '.' "
                           "(at most 128, the first a letter or digit)")


def write_repository(
    source: str | os.PathLike,
    repo: str | os.PathLike,
    *,
    name: str | None = None,
    kind: str = "gpu",
    instances: int = 1,
    max_batch_size: int = 1024,
    max_queue_delay_us: int = 100,
    force: bool = False,
    export_options: dict | None = None,
) -> RepoReport:
    """Write ``repo/NAME/config.pbtxt`` and ``repo/NAME/1/model.onnx`` for ``source``."""
    import onnx

    if kind not in KINDS:
        raise CtrlgenError(f"instance kind {kind!r} is unknown; use one of {', '.join(KINDS)}")
    for label, value, low in (("instances", instances, 1), ("max batch size", max_batch_size, 1), ("queue delay", max_queue_delay_us, 0)):
        if value < low:
            raise CtrlgenError(f"{label} must be >= {low}, got {value}")
    check_int("--triton-instances", instances, 1, 64)
    check_int("--max-batch-size", max_batch_size, 1, MAX_BATCH)
    check_int("queue delay (us)", max_queue_delay_us, 0, 10_000_000)
    source, repo = Path(source), Path(repo)
    if repo.exists() and not repo.is_dir():
        raise CtrlgenError(f"{repo} is a file; give a folder for the Triton model repository")
    if name:
        _check_name(name, derived=False)  # before the export, which takes seconds
    data = _model_bytes(source, export_options or {})
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise CtrlgenError(f"{source} is not a readable ONNX file ({type(e).__name__}); re-export it with ctrlgen export") from None
    check_self_contained(model, source)
    meta = {p.key: p.value for p in model.metadata_props}
    if SPEC_KEY not in meta:
        raise CtrlgenError(f"{source} has no {SPEC_KEY} metadata, so its interface is unknown; export it with ctrlgen export")
    spec = LatentSpec.from_json(meta[SPEC_KEY])
    inputs, outputs = model_io(model, spec)
    if not name:
        name = _default_name(source, meta)
        _check_name(name, derived=True)
    target = repo / name
    if target.exists() and not force:
        raise CtrlgenError(f"{target} already exists; pass --force to replace it or choose another --triton-name")
    text = config_text(name, inputs, outputs, max_batch_size=max_batch_size, kind=kind, instances=instances,
                       max_queue_delay_us=max_queue_delay_us, source=plain(source.name, 200))  # a newline in a file name must not end the comment
    _write_dir(target, {"config.pbtxt": text.encode(), f"{VERSION}/model.onnx": data})
    return RepoReport(target, name, inputs, outputs, len(data))


def check_self_contained(model, source: Path) -> None:
    """Refuse a model whose tensors point at external data files: the repository gets model.onnx alone, and a
    reference (an absolute path above all) would make Triton read a file of the serving machine."""
    from onnx import TensorProto

    def tensors():
        yield from model.graph.initializer
        for node in model.graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
        yield from (t for s in model.graph.sparse_initializer for t in (s.values, s.indices))

    for t in tensors():
        if t.data_location == TensorProto.EXTERNAL or t.external_data:
            where = next((e.value for e in t.external_data if e.key == "location"), "?")
            raise CtrlgenError(f"{source} keeps tensor {t.name[:40]!r} in an external file ({where[:80]!r}); a Triton entry must hold "
                               "its weights in model.onnx: re-export it with ctrlgen export")


def _default_name(source: Path, meta: dict[str, str]) -> str:
    """The recipe name from the card for runs and checkpoints, the file's stem for .onnx files."""
    import json

    if source.suffix == ".onnx":
        return source.stem
    try:
        return str(json.loads(meta.get("ctrlgen.card", "{}")).get("name") or source.name)
    except json.JSONDecodeError:
        return source.name


def _check_replaceable(folder: Path, shown_as: Path) -> None:
    """``--force`` replaces an entry ctrlgen wrote (config.pbtxt and VERSION/model.onnx) and nothing else: a folder
    that also holds other files (another version of the model, someone's notes) is refused whole.  ``folder`` is
    the old entry already renamed out of the way (nothing can be added to it unseen); ``shown_as`` its name."""
    if not folder.is_dir():
        raise CtrlgenError(f"{shown_as} is a file, not a Triton model folder; --force replaces only an entry ctrlgen wrote: "
                           "choose another --triton-name")
    ours = {Path("config.pbtxt"), Path(VERSION) / "model.onnx"}
    foreign = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir() and p.relative_to(folder) not in ours)
    if foreign:
        shown = ", ".join(repr(plain(f, 60)) for f in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise CtrlgenError(f"{shown_as} holds {len(foreign)} file(s) ctrlgen did not write ({shown}); --force replaces only an entry "
                           "ctrlgen wrote (config.pbtxt and 1/model.onnx), nothing was deleted: choose another --triton-name")


def _write_dir(target: Path, files: dict[str, bytes]) -> None:
    """Build the folder beside the repository, then rename it into place (replacing an old one last)."""
    stage_root = target.parent.parent if str(target.parent.parent) else Path(".")
    made: list[Path] = []
    try:
        made = make_folders(target.parent)  # the repository folder, if this export makes it: removed again on failure
        stage = Path(tempfile.mkdtemp(prefix=f".{target.parent.name}-{target.name}.", suffix=".tmp", dir=stage_root))
    except OSError as e:
        remove_empty(made)
        raise CtrlgenError(f"cannot write to {stage_root} ({e.strerror}); choose a writable repository folder") from None
    old = None
    try:
        for rel, data in files.items():
            path = stage / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(path, 0o666 & ~_umask())
        for sub in (p for p in stage.rglob("*") if p.is_dir()):
            os.chmod(sub, 0o777 & ~_umask())
        if target.exists():
            old = stage_root / f"{stage.name}.old"
            os.replace(target, old)
            _check_replaceable(old, shown_as=target)  # refused: the except below puts it back
        publish(stage, target)
    except BaseException:
        if old is not None and old.exists() and not target.exists():
            os.replace(old, target)  # put the previous model back
        shutil.rmtree(stage, ignore_errors=True)
        remove_empty(made)
        raise
    if old is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(old)
