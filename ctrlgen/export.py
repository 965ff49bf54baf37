"""Checkpoint -> self-describing ONNX model (DESIGN.md's public interface).

Inputs ``z`` [batch, noise_dim] float32, ``label`` [batch] int64,
``code_cat`` [batch, n_cat] int64, ``code_cont`` [batch, n_cont] float32 (each
only when the model has it); output ``sample`` [batch, C, H, W] or [batch, D].
The batch axis is dynamic.  ``metadata_props`` carry ``ctrlgen.spec`` (the
LatentSpec JSON) and ``ctrlgen.card`` (the model card JSON).

Every export is checked twice: ``onnx.checker`` on the graph, and ONNX
Runtime against torch on random inputs at batch 1 and 37 (max abs difference
printed; over ``tol`` the export fails and nothing is written).
``precision="int8"`` writes a quantized file instead (``ctrlgen.precision``),
checked against the fp32 export and by the evaluator.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ctrlgen.card import build_card
from ctrlgen.errors import CtrlgenError
from ctrlgen.files import write_bytes
from ctrlgen.spec import CARD_KEY, Q_OUTPUT, SPEC_KEY, LatentSpec

PARITY_BATCHES = (1, 37)
DEFAULT_TOL = 1e-4


class OnnxInterface(nn.Module):
    """G with positional inputs in the order of ``spec.input_names`` (what the exporter traces)."""

    def __init__(self, g: nn.Module, spec: LatentSpec) -> None:
        super().__init__()
        self.g, self.names = g, spec.input_names

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.g(**dict(zip(self.names, args, strict=True)))


@dataclass
class ExportReport:
    path: Path
    max_abs_diff: float
    bytes: int
    opset: int
    weights: str
    card: dict[str, Any]
    precision: str = "fp32"


def _stamp(model, spec: LatentSpec, card: dict[str, Any], variant: str = "") -> None:
    """Replace the model's metadata with the spec and card (the self-describing part of the file)."""
    del model.metadata_props[:]
    for key, value in ((SPEC_KEY, spec.to_json()), (CARD_KEY, json.dumps(card, sort_keys=True))):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "ctrlgen"
    model.doc_string = f"ctrlgen generator '{card['name']}'{variant}: inputs {', '.join(spec.input_names)} -> sample"


def _torch_export(module: nn.Module, spec: LatentSpec, path: Path, outputs: tuple[str, ...] = ("sample",)) -> None:
    # The exporter warns about torchvision ops it cannot register; ctrlgen uses none.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    example = tuple(torch.from_numpy(v) for v in spec.sample(4, seed=0).values())
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    dynamic = (tuple({0: batch} for _ in example),)  # forward(*args): one entry holding the varargs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=list(spec.input_names),
            output_names=list(outputs),
            dynamic_shapes=dynamic,
            external_data=False,
            dynamo=True,
            optimize=True,
            verbose=False,
        )


def parity(model_bytes: bytes, g: nn.Module, spec: LatentSpec, batches=PARITY_BATCHES, seed: int = 1234) -> float:
    """Max |ORT − torch| over random inputs at the given batch sizes."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    worst = 0.0
    for i, b in enumerate(batches):
        inputs = spec.sample(b, seed=seed + i)
        (got,) = sess.run(["sample"], inputs)
        with torch.no_grad():
            want = g(**{k: torch.from_numpy(v) for k, v in inputs.items()}).numpy()
        if got.shape != want.shape:
            raise CtrlgenError(f"ONNX output shape {got.shape} differs from torch's {want.shape} at batch {b}")
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def export(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    prefer_ema: bool = True,
    tol: float = DEFAULT_TOL,
    card_extra: dict[str, Any] | None = None,
    q_head: bool = False,
    precision: str = "fp32",
    quality_n: int | None = None,
) -> ExportReport:
    """Export a run directory or checkpoint to ``out``; verify; write atomically.

    ``q_head`` adds InfoGAN's Q prediction of the continuous codes as a second
    output (``ctrlgen.qhead``), so consistency can be measured from the file.
    ``precision="int8"`` quantizes (see ``ctrlgen.precision``); ``quality_n``
    is the sample count of its quality check (default 10,000)."""
    import onnx

    from ctrlgen.checkpoint import load_generator
    from ctrlgen.precision import check_precision

    if check_precision(precision) == "bf16":
        raise CtrlgenError("ONNX Runtime's CPU provider has no bf16 MatMul/Gemm kernels (and ONNX Conv no bf16 type), so a bf16 "
                           "file would not run; use --precision int8, or run the checkpoint in torch: ctrlgen generate RUN --precision bf16")
    if precision != "fp32" and q_head:
        raise CtrlgenError("--q-head exports are fp32 only (the Q head is for measuring consistency); drop --q-head or --precision")
    g, spec, ck = load_generator(source, prefer_ema=prefer_ema)
    g = g.float().eval()
    module = OnnxInterface(g, spec).eval()
    q = _q_head(ck) if q_head else None
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / "model.onnx"
        try:
            if q is None:
                _torch_export(module, spec, tmp_path)
            else:
                from ctrlgen.qhead import WithQ

                _torch_export(WithQ(module, q).eval(), spec, tmp_path, ("sample", Q_OUTPUT))
        except Exception as e:  # noqa: BLE001 - the exporter raises many types
            raise CtrlgenError(f"torch.onnx.export failed ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
        model = onnx.load(str(tmp_path))
    card = build_card(ck.meta, ck.meta.get("weights", "G"), card_extra)
    _stamp(model, spec, card)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise CtrlgenError(f"the exported graph fails onnx.checker ({str(e).splitlines()[0][:120]})") from None
    data = model.SerializeToString()
    diff = parity(data, g, spec)
    card["export_parity_max_abs_diff"] = diff
    if q is not None:
        from ctrlgen.qhead import q_parity

        card["q_head_parity_max_abs_diff"] = q_parity(data, q, module, spec)
        diff = max(diff, card["q_head_parity_max_abs_diff"])
    if diff > tol:
        raise CtrlgenError(f"ONNX Runtime differs from torch by {diff:.3g} (> tolerance {tol:g}); the model was not written")
    # Record the parity in the card, then write once, atomically.
    for entry in model.metadata_props:
        if entry.key == CARD_KEY:
            entry.value = json.dumps(card, sort_keys=True)
    data = model.SerializeToString()
    if precision == "int8":
        model, diff = _int8(g, spec, data, card, tol, quality_n)
        data = model.SerializeToString()
    write_bytes(out, data)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return ExportReport(Path(out), diff, len(data), opset, card["weights"], card, precision)


def _int8(g: nn.Module, spec: LatentSpec, fp32: bytes, card: dict[str, Any], tol: float, quality_n: int | None):
    """(the int8 model with its metadata, max |int8 − fp32|); raises if parity or quality is off.

    The lowered fp32 graph is checked against torch with ``tol`` (the rewrite
    is exact); the int8 graph against the fp32 export by its mean difference;
    then the evaluator compares the two files' samples."""
    import onnx

    from ctrlgen import precision as P
    from ctrlgen.lowering import lower
    from ctrlgen.metrics.report import QUALITY_N, check_quality
    from ctrlgen.runtime import OnnxRuntime

    if spec.output_kind != "image":
        raise CtrlgenError("--precision int8 is for image generators (conv family); 2D point models stay fp32")
    with tempfile.TemporaryDirectory() as tmp:
        lowered, qpath = Path(tmp) / "lowered.onnx", Path(tmp) / "int8.onnx"
        _torch_export(OnnxInterface(lower(g), spec).eval(), spec, lowered)
        lowered_diff = parity(lowered.read_bytes(), g, spec)
        if lowered_diff > tol:
            raise CtrlgenError(f"the lowered graph differs from torch by {lowered_diff:.3g} (> tolerance {tol:g}); the model was not written")
        P.quantize_int8(str(lowered), str(qpath), spec)
        model = onnx.load(str(qpath))
        worst, mean = P.int8_parity(model.SerializeToString(), fp32, spec)
        if mean > P.INT8_MEAN_TOL:
            raise CtrlgenError(f"int8 samples differ from fp32 by {mean:.3g} on average (> {P.INT8_MEAN_TOL:g}); keep fp32")
        card.update({
            "precision": "int8",
            "export_parity_max_abs_diff": lowered_diff,
            "int8_vs_fp32_max_abs_diff": worst,
            "int8_vs_fp32_mean_abs_diff": mean,
            "quantization": {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ", "activations": "uint8",
                             "weights": "int8 per channel", "calibration": f"{P.CALIBRATION_BATCHES} x {P.CALIBRATION_BATCH} spec samples",
                             "lowering": "BatchNorm folded; ConvTranspose(4,2,1) -> Pad, Conv 2x2, DepthToSpace, crop; "
                                         "two in a row -> Conv 2x2, border mask, Conv 2x2 on the phase maps, one DepthToSpace(4), crop"},
        })
        _stamp(model, spec, card, " (int8)")
        onnx.checker.check_model(model, full_check=True)
        ref = Path(tmp) / "fp32.onnx"
        ref.write_bytes(fp32)
        qpath.write_bytes(model.SerializeToString())
        quality = check_quality(OnnxRuntime(ref), OnnxRuntime(qpath), n=quality_n or QUALITY_N)
    card["quality_check"] = quality
    for entry in model.metadata_props:
        if entry.key == CARD_KEY:
            entry.value = json.dumps(card, sort_keys=True)
    return model, worst


def _q_head(ck):
    from ctrlgen.qhead import q_from_checkpoint

    q = q_from_checkpoint(ck)
    if q is None:
        raise CtrlgenError("--q-head needs an InfoGAN model with continuous codes; this model has none, drop --q-head")
    return q
