"""Reduced-precision generators: int8 ONNX files for ONNX Runtime, bf16 for torch.

Why these two, measured on this CPU (AVX-512 VNNI and BF16; ``benchmarks/generate.py``):

* **int8** (``ctrlgen export --precision int8``): ONNX Runtime's static
  quantization (QDQ, u8 activations, per-channel s8 weights) turns Conv and
  Gemm into VNNI kernels, but it has no int8 ConvTranspose and leaves that op
  in fp32, and in the DCGAN generator the ConvTransposes are 93% of the FLOPs.
  So the graph is first *lowered*: BatchNorm folded into the preceding layer,
  and every ConvTranspose(k=4, s=2, p=1) rewritten exactly as a 2×2 Conv with
  4× the output channels on the input padded by 1, a DepthToSpace(2) and a
  one-pixel crop (the "sub-pixel" form; 64/49 of the FLOPs, all of them int8).
  Two such layers in a row are chained (``SubPixelChain``): the second conv
  runs on the first one's phase maps, so no large DepthToSpace, crop and
  layout Transposes sit in fp32 between the int8 convs (they took 68% of the
  int8 model's kernel time at batch 256 before the chain, 18% after it:
  ``benchmarks/profile_paths.py ort``, docs/results/generate.md).
* **bf16**: ONNX Runtime's CPU provider has no bf16 MatMul/Gemm kernel and
  ONNX Conv has no bf16 type, so a bf16 ONNX file cannot run; torch (oneDNN)
  runs the same lowered generator in bf16, channels-last
  (``ctrlgen generate RUN --precision bf16`` on a checkpoint or run directory).

Quality is checked, not assumed: an int8 export is refused unless the
evaluator's conditional accuracy stays within 1 point and FD within 10% of the
fp32 model's on the same inputs (``ctrlgen.metrics.report.check_quality``).  The torch side (the
lowering, bf16) is ``ctrlgen.lowering``; this module imports neither torch nor
onnxruntime at import time, so the ONNX runtime path stays torch-free.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ctrlgen.errors import CtrlgenError

PRECISIONS = ("fp32", "int8", "bf16")
# An int8 model is not bit-close to fp32: parity is judged on the mean pixel difference
# (images in [-1, 1]); the card records it (8.7e-3 for the shipped model's run).
INT8_MEAN_TOL = 0.03
CALIBRATION_BATCHES, CALIBRATION_BATCH = 16, 128


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (AVX-512 BF16 or AMX): where bf16 autocast pays.

    Read from /proc/cpuinfo's flags; False where there is no such file (bf16 would be emulated, slower)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def check_precision(name: str, allowed: tuple[str, ...] = PRECISIONS) -> str:
    if name not in allowed:
        raise CtrlgenError(f"precision {name!r} is unknown; use one of {', '.join(allowed)}")
    return name


# --------------------------------------------------------------------------- int8
def quantize_int8(fp32_path: str, out_path: str, spec: Any, seed: int = 0) -> None:
    """Static int8 quantization (QDQ) of a lowered fp32 ONNX file, calibrated on samples of ``spec``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(spec.sample(CALIBRATION_BATCH, seed=seed + i) for i in range(CALIBRATION_BATCHES))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        pre = str(Path(tmp) / "pre.onnx")
        quant_pre_process(fp32_path, pre, skip_symbolic_shape=True)
        quantize_static(
            pre, out_path, Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,  # u8 × s8 is VNNI's native dot product
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["Conv", "Gemm", "MatMul"],  # the layers; normalization and masks stay fp32
            nodes_to_exclude=before_tanh(pre),
        )


def before_tanh(path: str) -> list[str]:
    """The layers whose outputs feed a Tanh (G's last conv, which makes the image's logits): they stay fp32.

    tanh saturates, so the logits spread far (background pixels sit well below −4) and one uint8 scale
    over their calibrated range rounds the mid-grey ones by up to ~0.1, which tanh passes on at full
    slope: on the VBN fashion-cgan that one rounding made the int8 samples differ from fp32 by 0.038
    on average (gate 0.03).  Quantizing the logits over ±4 only (where tanh is not flat) got 0.012,
    but the evaluator still saw it (FD 0.310 -> 0.337 on the shipped model; 0.369 with only the
    layers quantized); the conv in fp32 gave 0.011 and FD 0.322.  That conv is small in a VBN
    generator; in a BatchNorm one it is the second half of the chained upsampling, and fp32 there
    costs speed (README, "Faster generation")."""
    import onnx

    graph = onnx.load(path).graph
    tanh_inputs = {i for n in graph.node if n.op_type == "Tanh" for i in n.input}
    return [n.name for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and set(n.output) & tanh_inputs]


def int8_parity(int8: bytes, fp32: bytes, spec: Any, batches=(1, 37), seed: int = 1234) -> tuple[float, float]:
    """(max, mean) |int8 − fp32| of two ONNX models on the same random inputs."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    a, b = (ort.InferenceSession(m, so, providers=["CPUExecutionProvider"]) for m in (int8, fp32))
    diffs = []
    for i, n in enumerate(batches):
        x = spec.sample(n, seed=seed + i)
        diffs.append(np.abs(a.run(["sample"], x)[0] - b.run(["sample"], x)[0]).ravel())
    d = np.concatenate(diffs)
    return float(d.max()), float(d.mean())
