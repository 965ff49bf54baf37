"""OpenVINO as an optional runtime for exported .onnx files (``pip install 'ctrlgen[openvino]'``).

``OpenVinoRuntime`` has the API of ``ctrlgen.runtime.Runtime`` (spec, card,
``__call__``, ``inputs``, ``generate``, ``stream``) and runs the file on
OpenVINO's CPU plugin.  Precision follows the file, as with ONNX Runtime: every
file runs with ``INFERENCE_PRECISION_HINT=f32``, because OpenVINO's CPU default on
processors with AMX or AVX-512 BF16 is bf16, which moves outputs
(``scripts/compat_table.py`` prints by how much: docs/results/compat.md).  An int8
file's quantized layers still run in int8; the hint keeps its fp32 parts (virtual
batch norm's normalization, the conv before tanh) in fp32: left to bf16 they moved
40% of the shipped int8 file's pixels by more than 1e-3.  ``precision_hint`` overrides
that (``"bf16"``, ``"f32"``, or ``"default"`` for OpenVINO's own choice).

``open_runtime(name, path, ...)`` picks a runtime by name; ``ctrlgen generate
--runtime openvino`` goes through it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ctrlgen.errors import CtrlgenError
from ctrlgen.runtime import Runtime, check_threads
from ctrlgen.spec import CARD_KEY, SPEC_KEY, LatentSpec

RUNTIMES = ("onnxruntime", "openvino")
INSTALL = "pip install 'ctrlgen[openvino]' (or pip install openvino)"


def open_runtime(name: str, path: str | os.PathLike, threads: int | None = None, device: str = "auto",
                 precision: str | None = None) -> Runtime:
    """``Runtime.from_file`` for ``onnxruntime``, ``OpenVinoRuntime`` for ``openvino``."""
    if name == "onnxruntime":
        return Runtime.from_file(path, threads=threads, device=device, precision=precision)
    if name != "openvino":
        raise CtrlgenError(f"runtime {name!r} is unknown; use one of {', '.join(RUNTIMES)}")
    rt = OpenVinoRuntime(path, threads=threads, device=device)
    if precision is not None and precision != rt.precision:
        raise CtrlgenError(f"{path} holds a {rt.precision} model, not {precision}; OpenVINO runs an .onnx file as stored")
    return rt


def onnx_metadata(path: Path) -> dict[str, str]:
    """The ONNX file's metadata_props, read without its weights."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise CtrlgenError(f"{path} is not a readable ONNX file ({type(e).__name__}); re-export it with ctrlgen export") from None
    return {p.key: p.value for p in model.metadata_props}


class OpenVinoRuntime(Runtime):
    backend = "openvino"

    def __init__(self, path: str | os.PathLike, threads: int | None = None, device: str = "auto",
                 precision_hint: str | None = None) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise CtrlgenError(f"--runtime openvino needs OpenVINO, which is not installed: {INSTALL}") from None
        check_threads(threads)
        self.source = Path(path)
        if not self.source.is_file() or self.source.suffix != ".onnx":
            raise CtrlgenError(f"OpenVINO runs exported .onnx files, not {self.source}; export it first: ctrlgen export {path} -o model.onnx")
        if device not in ("auto", "cpu"):
            raise CtrlgenError(f"device {device!r} is not available with --runtime openvino (CPU only here); use --device cpu or --runtime onnxruntime")
        meta = onnx_metadata(self.source)
        if SPEC_KEY not in meta:
            raise CtrlgenError(f"{self.source} has no '{SPEC_KEY}' metadata; it is not a ctrlgen model: export it with ctrlgen export")
        self.spec = LatentSpec.from_json(meta[SPEC_KEY])
        try:
            self.card = json.loads(meta.get(CARD_KEY, "{}"))
        except json.JSONDecodeError:
            raise CtrlgenError(f"{self.source} has a damaged '{CARD_KEY}' entry; re-export the model") from None
        config: dict[str, Any] = {}
        hint = precision_hint or "f32"
        hint = None if hint == "default" else hint
        if hint:
            config["INFERENCE_PRECISION_HINT"] = hint
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        try:
            model = core.read_model(str(self.source))
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as e:  # noqa: BLE001 - OpenVINO raises RuntimeError with a long message
            first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
            raise CtrlgenError(f"OpenVINO cannot load {self.source} ({first}); run it with --runtime onnxruntime") from None
        got = [i.get_any_name() for i in self.compiled.inputs]
        if got != list(self.spec.input_names):
            raise CtrlgenError(f"{self.source}: graph inputs {got} do not match its spec {list(self.spec.input_names)}; re-export it")
        self.request = self.compiled.create_infer_request()
        self.providers = [f"CPU ({hint or 'default precision'})"]

    def _run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        result = self.request.infer(inputs)
        return np.array(result[self.compiled.output("sample")], np.float32, copy=True)
