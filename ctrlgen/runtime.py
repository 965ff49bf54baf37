"""Generators behind one API, whatever the file: ONNX Runtime or a torch checkpoint.

``Runtime.from_file(path)`` takes an exported ``.onnx`` model, a checkpoint
(``.safetensors``) or a run directory.  Either way you get:

* ``rt.spec`` (the LatentSpec) and ``rt.card`` (the model card);
* ``rt(z=..., label=..., code_cat=..., code_cont=...)`` -> samples (numpy), inputs validated against the spec;
* ``rt.inputs(n, seed, label=..., cat={...}, cont={...})`` -> the inputs for a seed, with overrides;
* ``rt.generate(n, seed, ...)`` -> samples and inputs; ``rt.stream(...)`` yields them in chunks.

The ONNX path needs only numpy and onnxruntime.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctrlgen.errors import CtrlgenError
from ctrlgen.limits import (
    MAX_MODEL_BYTES,
    check_batch_memory,
    check_seed,
    check_truncation,
    loads_json,
    read_limited,
)
from ctrlgen.limits import check_threads as _check_threads
from ctrlgen.spec import CARD_KEY, CODE_CAT, CODE_CONT, LABEL, SPEC_KEY, LatentSpec, Z
from ctrlgen.text import plain

DEFAULT_CHUNK = 1024


def _code_column(value: Any, n: int, what: str, integer: bool) -> np.ndarray:
    """One code's values for ``n`` samples from one value or one per sample: finite numbers, whole ones for a
    categorical code (its range is checked where the inputs are run)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise CtrlgenError(f"{what} must be a number or one number per sample, got {plain(value, 60)}") from None
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise CtrlgenError(f"{what} has {arr.size} values for {n} samples; give one value or one per sample")
    if not np.isfinite(arr).all() or (integer and (arr != np.round(arr)).any()):
        kind = "whole numbers" if integer else "finite numbers"
        raise CtrlgenError(f"{what} must be {kind}, got {plain(value, 60)}")
    if integer and (np.abs(arr) >= 2**31).any():
        raise CtrlgenError(f"{what} is out of range, got {plain(value, 60)}; give one of the code's values")
    return arr.astype(np.int64) if integer else arr.astype(np.float32)


def _per_sample(value: Any) -> bool:
    """Whether a label or code value is given per sample (a sequence), not one for all (a scalar or a name)."""
    return not isinstance(value, str) and np.ndim(value) > 0


def _code_maps(cat: Any, cont: Any) -> dict[str, Mapping]:
    """The code values given, by kind; anything but a mapping of code name to value is one line."""
    for kind, given in (("cat", cat), ("cont", cont)):
        if given is not None and not isinstance(given, Mapping):
            raise CtrlgenError(f"{kind} must be a mapping of code name to value (e.g. {{'c': 3}}), got a {type(given).__name__}")
    return {kind: given for kind, given in (("cat", cat), ("cont", cont)) if given is not None}


class Runtime:
    """Common behaviour; subclasses implement ``_run(inputs) -> np.ndarray``."""

    spec: LatentSpec
    card: dict[str, Any]
    source: Path
    backend: str = ""

    @staticmethod
    def from_file(path: str | os.PathLike, threads: int | None = None, device: str = "auto", precision: str | None = None) -> Runtime:
        """``precision``: None runs the model as stored; ``"bf16"`` runs a checkpoint in torch bf16;
        ``"int8"`` / ``"fp32"`` only confirm what an .onnx file holds (int8 files come from ``ctrlgen export --precision int8``)."""
        from ctrlgen.precision import check_precision

        path = Path(path)
        if precision is not None:
            check_precision(precision)
        if not path.exists():
            raise CtrlgenError(f"model {path} does not exist; give an .onnx file, a checkpoint or a run directory")
        if path.is_dir() or path.suffix == ".safetensors":
            if precision == "int8":
                raise CtrlgenError(f"int8 runs from an exported file: ctrlgen export {path} --precision int8 -o model-int8.onnx, then generate from it")
            return TorchRuntime(path, threads=threads, device=device, precision=precision or "fp32")
        rt = OnnxRuntime(path, threads=threads, device=device)
        if precision is not None and precision != rt.precision:
            how = "bf16 runs a checkpoint or run directory in torch" if precision == "bf16" else "export it with ctrlgen export RUN --precision int8"
            raise CtrlgenError(f"{path} holds a {rt.precision} model, not {precision}; {how}")
        return rt

    @property
    def name(self) -> str:
        """The card's name, printable (control characters escaped: it comes from the file)."""
        from ctrlgen.text import plain

        return plain(self.card.get("name") or self.source.stem, 100)

    @property
    def precision(self) -> str:
        from ctrlgen.text import plain

        return plain(self.card.get("precision", "fp32"), 40)

    # ------------------------------------------------------------------ calling
    def __call__(self, extrapolate: bool = False, **inputs: Any) -> np.ndarray:
        checked = self.spec.validate_inputs(inputs, extrapolate=extrapolate)
        if next(iter(checked.values())).shape[0] == 0:
            return np.zeros((0, *self.spec.output_shape), np.float32)
        return self._run(checked)

    def _run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ inputs with overrides
    def inputs(
        self,
        n: int,
        seed: int = 0,
        *,
        start: int = 0,
        label: int | str | Sequence[int] | np.ndarray | None = None,
        cat: Mapping[str, int | Sequence[int]] | None = None,
        cont: Mapping[str, float | Sequence[float]] | None = None,
        truncation: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Inputs for samples start..start+n of ``seed``; fixed values replace the drawn ones."""
        spec = self.spec
        check_seed(seed)
        check_truncation(truncation)
        for what, value in (("sample count", n), ("start", start)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise CtrlgenError(f"{what} must be an integer >= 0, got {plain(value, 60)}")
        check_batch_memory("sample count", int(n), spec.noise_dim + int(np.prod(spec.output_shape)), copies=4)
        x = spec.sample(n, seed, start=start, truncation=truncation)
        if label is not None:
            if not spec.conditional:
                raise CtrlgenError("this model is not class-conditional; drop --label")
            if isinstance(label, str) or np.ndim(label) == 0:
                x[LABEL] = np.full(n, spec.label_index(label), np.int64)
            else:
                x[LABEL] = np.asarray([spec.label_index(v) for v in np.asarray(label).tolist()], np.int64)
        _code_maps(cat, cont)
        for name, value in (cat or {}).items():
            i = spec.categorical_index(name)
            x[CODE_CAT] = x[CODE_CAT].copy()
            x[CODE_CAT][:, i] = _code_column(value, n, f"cat {name}", integer=True)
        for name, value in (cont or {}).items():
            i = spec.continuous_index(name)
            x[CODE_CONT] = x[CODE_CONT].copy()
            x[CODE_CONT][:, i] = _code_column(value, n, f"cont {name}", integer=False)
        return x

    def generate(self, n: int, seed: int = 0, chunk: int = DEFAULT_CHUNK, extrapolate: bool = False, **kw: Any):
        """(samples, inputs) for n samples of ``seed`` (see ``inputs`` for the overrides)."""
        outs, ins = [], []
        for s, i in self.stream(n, seed, chunk=chunk, extrapolate=extrapolate, **kw):
            outs.append(s)
            ins.append(i)
        if not outs:
            return np.zeros((0, *self.spec.output_shape), np.float32), self.inputs(0, seed)
        return np.concatenate(outs), {k: np.concatenate([i[k] for i in ins]) for k in ins[0]}

    def stream(self, n: int, seed: int = 0, chunk: int = DEFAULT_CHUNK, extrapolate: bool = False, **kw: Any) -> Iterator:
        """Yield (samples, inputs) chunks; memory stays bounded by the chunk whatever n is.

        A ``label`` or a code value given as a sequence of length n is sliced per chunk."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise CtrlgenError(f"sample count must be an integer >= 0, got {n!r}")
        if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
            raise CtrlgenError(f"chunk must be a positive integer, got {chunk!r}")
        check_seed(seed)
        check_truncation(kw.get("truncation"))
        label = kw.pop("label", None)
        per_sample = label is not None and _per_sample(label)
        if per_sample and len(label) != n:
            raise CtrlgenError(f"{len(label)} labels given for {n} samples; give one label or one per sample")
        codes = _code_maps(kw.pop("cat", None), kw.pop("cont", None))
        for kind, given in codes.items():
            for name, value in given.items():
                if _per_sample(value) and len(value) != n:
                    raise CtrlgenError(f"{kind} {name} has {len(value)} values for {n} samples; give one value or one per sample")
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            lab = label[start : start + m] if per_sample else label
            part = {kind: {name: value[start : start + m] if _per_sample(value) else value for name, value in given.items()}
                    for kind, given in codes.items()}
            x = self.inputs(m, seed, start=start, label=lab, **part, **kw)
            yield self(extrapolate=extrapolate, **x), x


class OnnxRuntime(Runtime):
    backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike, threads: int | None = None, device: str = "auto") -> None:
        import onnxruntime as ort

        check_threads(threads)
        self.source = Path(path)
        data = read_limited(self.source, "an ONNX model", MAX_MODEL_BYTES)
        ort.set_default_logger_severity(3)  # the CUDA fallback warning is ours to report, not ORT's
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        self.session = open_session(ort, data, so, device, self.source)
        self.run_options = ort.RunOptions()
        self.run_options.log_severity_level = 4  # a failing kernel is our one line, not ORT's log on stderr
        meta = self.session.get_modelmeta().custom_metadata_map
        if SPEC_KEY not in meta:
            have = ", ".join(sorted(meta)) or "none"
            raise CtrlgenError(
                f"{self.source} has no '{SPEC_KEY}' metadata (found: {have}); it is not a ctrlgen model: export it with ctrlgen export"
            )
        self.spec = LatentSpec.from_json(meta[SPEC_KEY])
        try:
            self.card = loads_json(meta.get(CARD_KEY, "{}"), "card", "re-export the model")
        except CtrlgenError:
            self.card = None
        if not isinstance(self.card, dict):
            raise CtrlgenError(f"{self.source} has a damaged '{CARD_KEY}' entry; re-export the model")
        got = [i.name for i in self.session.get_inputs()]
        if got != list(self.spec.input_names):
            raise CtrlgenError(f"{self.source}: graph inputs {got} do not match its spec {list(self.spec.input_names)}; re-export it")
        check_graph(self.source, self.spec, self.session)
        self.providers = self.session.get_providers()
        self.probe()

    def probe(self) -> None:
        """Run the graph once on inputs that reach every label and code value of the spec, and check the output:
        a spec that promises more classes, another noise size or another output shape than the graph is one line."""
        spec = self.spec
        n = min(1024, max(2, spec.n_classes, *(c.n for c in spec.categorical)))
        x = spec.sample(n, 0)
        if spec.conditional:
            x[LABEL] = np.arange(n, dtype=np.int64) % spec.n_classes
        if spec.categorical:
            x[CODE_CAT] = np.stack([np.arange(n, dtype=np.int64) % c.n for c in spec.categorical], 1)
        if spec.continuous:
            x[CODE_CONT] = np.stack([np.where(np.arange(n) % 2, c.high, c.low).astype(np.float32) for c in spec.continuous], 1)
        out = self._run(x)
        want = (n, *spec.output_shape)
        if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != want:
            got = f"{getattr(out, 'dtype', type(out).__name__)} {list(getattr(out, 'shape', ()))}"
            raise CtrlgenError(f"{self.source}: the graph's output 'sample' is {got} but its spec says float32 {list(want)}; "
                               "the spec and the graph disagree: re-export it")

    def _run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        try:
            (out,) = self.session.run(["sample"], inputs, self.run_options)
        except Exception as e:  # noqa: BLE001 - ORT raises its own types: a graph that disagrees with its spec
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise CtrlgenError(f"{self.source}: the graph fails on inputs its spec allows ({first}); "
                               "the spec and the graph disagree: re-export it") from None
        return out


_ORT_TYPES = {"float32": "tensor(float)", "int64": "tensor(int64)"}


def check_graph(source: Path, spec: LatentSpec, session: Any) -> None:
    """The graph's inputs (names, dtypes, ranks, fixed sizes) and its output 'sample' (rank, per-sample
    sizes) against the spec; one line naming both where they differ."""
    for arg in session.get_inputs():
        want_shape = spec.input_shapes()[arg.name]
        want_type = _ORT_TYPES["float32" if arg.name in (Z, CODE_CONT) else "int64"]
        if arg.type != want_type:
            raise CtrlgenError(f"{source}: graph input {arg.name!r} is {arg.type} but its spec says {want_type}; re-export it")
        _check_dims(source, f"input {arg.name!r}", list(arg.shape or []), list(want_shape))
    outputs = {o.name: o for o in session.get_outputs()}
    if "sample" not in outputs:
        raise CtrlgenError(f"{source}: the graph has no output 'sample' (outputs: {', '.join(sorted(outputs)) or 'none'}); "
                           "its spec names 'sample': re-export it")
    out = outputs["sample"]
    if out.type != "tensor(float)":
        raise CtrlgenError(f"{source}: graph output 'sample' is {out.type} but its spec says tensor(float); re-export it")
    _check_dims(source, "output 'sample'", list(out.shape or []), ["batch", *spec.output_shape])


def _check_dims(source: Path, what: str, got: list, want: list) -> None:
    """Ranks must agree; a size fixed in the graph must equal the spec's (symbolic ones are checked by ``probe``)."""
    if not got:
        return  # no shape recorded: the probe run checks it
    fixed = [g if isinstance(g, int) else None for g in got]
    if len(got) != len(want) or any(g is not None and isinstance(w, int) and g != w for g, w in zip(fixed, want, strict=False)):
        shown = [g if isinstance(g, int) else "batch" for g in got]
        raise CtrlgenError(f"{source}: graph {what} has shape {shown} but its spec says {list(want)}; re-export it")


CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")


def check_threads(threads: int | None) -> None:
    _check_threads(threads)  # bounded by this machine's cores (ctrlgen/limits.py)


def choose_providers(device: str, available: Sequence[str] | None = None) -> list[list[str]]:
    """Provider lists to try in order: CUDA (asked for, or auto and listed) then CPU.

    ``available`` defaults to what this onnxruntime build lists.
    """
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    if device not in DEVICES:
        raise CtrlgenError(f"device {device!r} is unknown; use auto, cpu or cuda")
    if device == "cuda" and CUDA not in available:
        import onnxruntime as ort

        raise CtrlgenError("device cuda asked for but this onnxruntime has no CUDA provider; install onnxruntime-gpu or use --device cpu "
                           f"(onnxruntime {ort.__version__} here is a build without CUDA: scripts/install.sh --gpu swaps it for onnxruntime-gpu)")
    tries = [[CUDA, CPU]] if device in ("auto", "cuda") and CUDA in available else []
    return [*tries, [CPU]]


def open_session(ort: Any, data: bytes, options: Any, device: str, source: Path) -> Any:
    """An InferenceSession on the first provider list that really works.

    ``onnxruntime-gpu`` lists CUDA even where CUDA or cuDNN cannot load; then
    ORT either raises or silently runs on CPU.  With ``device="auto"`` both
    end on CPU; with ``device="cuda"`` both are a one-line error.
    """
    problem = ""
    for providers in choose_providers(device):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "CUDA is not in available provider names": handled below
                session = ort.InferenceSession(data, options, providers=providers)
        except Exception as e:  # noqa: BLE001 - ORT raises its own exception types
            first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
            if providers == [CPU]:
                raise CtrlgenError(f"{source} is not a loadable ONNX model ({first}); re-export it with ctrlgen export") from None
            problem = first  # try CPU next: it tells a broken file from a broken CUDA
            continue
        if CUDA in providers and CUDA not in session.get_providers():
            problem = "onnxruntime fell back to CPU"
        if device == "cuda" and CUDA not in session.get_providers():
            break
        return session
    raise CtrlgenError(f"device cuda asked for but CUDA could not be used ({problem}); check the CUDA/cuDNN libraries or use --device cpu")


class TorchRuntime(Runtime):
    """A checkpoint or run directory, sampled with torch (EMA weights where the run has them)."""

    backend = "torch"

    def __init__(self, path: str | os.PathLike, threads: int | None = None, device: str = "auto", precision: str = "fp32") -> None:
        import torch

        from ctrlgen.card import build_card
        from ctrlgen.checkpoint import load_generator
        from ctrlgen.lowering import to_bf16
        from ctrlgen.precision import check_precision

        check_threads(threads)
        if device not in DEVICES:
            raise CtrlgenError(f"device {device!r} is unknown; use auto, cpu or cuda")
        if device == "cuda" and not torch.cuda.is_available():
            raise CtrlgenError("device cuda asked for but torch sees no CUDA device; use --device cpu")
        if threads:
            torch.set_num_threads(threads)
        self.source = Path(path)
        self.g, self.spec, ck = load_generator(path)
        self.device = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
        self.dtype = torch.float32
        if check_precision(precision, ("fp32", "bf16")) == "bf16":
            self.g, self.dtype = to_bf16(self.g), torch.bfloat16
        self.g.to(self.device)
        self.card = build_card(ck.meta, ck.meta.get("weights", "G"), {"precision": precision})
        self.providers = [str(self.device)]

    def _run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        x = {k: torch.from_numpy(v).to(self.device) for k, v in inputs.items()}
        with torch.inference_mode():
            out = self.g(**{k: v.to(self.dtype) if v.is_floating_point() else v for k, v in x.items()})
        return out.float().cpu().numpy()
