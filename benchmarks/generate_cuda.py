"""Generation speed on a CUDA GPU: ``benchmarks/generate.py --device cuda`` (a file of its own, as generate.py is long).

Contenders, at batch 1 ... 8192 (``--batches``), all on the GPU with inputs and outputs in device memory:

* ``torch eager fp32``: the Generator, ``inference_mode``;
* ``torch eager bf16``: the lowered generator (BatchNorm folded, sub-pixel convs) in bf16, channels-last;
* ``torch.compile fp32``: the fp32 Generator under ``torch.compile`` (inductor's default mode; the second
  batch size recompiles it with a dynamic batch axis, which then serves every later size);
* ``ort cuda fp32`` / ``ort cuda fp16``: ONNX Runtime's CUDAExecutionProvider on the ONNX file (fp16: converted
  with onnxconverter-common, float inputs and outputs kept fp32), inputs and output bound in device memory
  (IO binding).  Both are skipped, with the reason, when onnxruntime has no CUDA provider (the CPU build).

Every timing is bracketed by ``torch.cuda.synchronize()``; a timing repeats calls until 20 ms have passed
(so batch 1 is not timer noise); three warm-up calls per contender and batch (compiles included) are excluded
and reported; the median of ``--repeats`` interleaved repeats is printed.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

CUDA_BATCHES = [1, 8, 64, 512, 4096, 8192]
DEVICE = "cuda"  # a module constant, so a CPU smoke run of this file can swap it


def time_cuda(fn: Callable, min_s: float = 0.02) -> float:
    """Seconds per call, device work included: calls queued back to back, synchronized at both ends."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    one = time.perf_counter() - t0
    k = max(1, min(1000, int(min_s / max(one, 1e-6))))
    t0 = time.perf_counter()
    for _ in range(k):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / k


def torch_contenders(g, spec, torch_runner: Callable) -> dict[str, Callable]:
    """name -> make(batch) -> a zero-argument call on device-resident inputs (``torch_runner`` from generate.py)."""
    from ctrlgen.lowering import to_bf16

    dev = torch.device(DEVICE)
    bf16 = to_bf16(g).to(dev).eval()  # lowered from the fp32 weights before they move
    fp32 = g.to(dev).eval()
    compiled = torch.compile(fp32)
    return {"torch eager fp32": torch_runner(fp32, spec, torch.float32, dev),
            "torch eager bf16": torch_runner(bf16, spec, torch.bfloat16, dev),
            "torch.compile fp32": torch_runner(compiled, spec, torch.float32, dev)}


def ort_contenders(onnx_path: Path, spec, tmp: Path, notes: list[str]) -> dict[str, Callable]:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        notes.append(f"ort cuda fp32/fp16 skipped: onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                     "(the CPU build); scripts/install.sh --gpu installs onnxruntime-gpu")
        return {}
    files = {"ort cuda fp32": onnx_path}
    try:
        import onnx
        from onnxconverter_common import float16

        fp16 = tmp / "fp16.onnx"
        onnx.save(float16.convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True), str(fp16))
        files["ort cuda fp16"] = fp16
    except Exception as e:  # noqa: BLE001 - report why there is no fp16 row
        notes.append(f"ort cuda fp16 skipped: no fp16 file ({type(e).__name__}: {str(e).splitlines()[0][:120]}; pip install onnxconverter-common)")
    out = {}
    for name, path in files.items():
        so = ort.SessionOptions()
        so.log_severity_level = 3
        try:
            sess = ort.InferenceSession(str(path), so, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - report why, keep the others
            notes.append(f"{name} skipped: the session did not load ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
            continue
        if sess.get_providers()[0] != "CUDAExecutionProvider":
            notes.append(f"{name} skipped: the CUDA provider did not load (providers {sess.get_providers()})")
            continue

        def make(b: int, sess=sess) -> Callable:
            binding = sess.io_binding()
            for k, v in spec.sample(b, seed=1).items():
                binding.bind_ortvalue_input(k, ort.OrtValue.ortvalue_from_numpy(v, "cuda", 0))
            binding.bind_output("sample", "cuda", 0)
            return lambda: sess.run_with_iobinding(binding)
        out[name] = make
    return out


def cuda_main(args, build_torch: Callable, torch_runner: Callable) -> None:
    """``build_torch(onnx_path, run) -> (g, spec, how)`` and ``torch_runner`` come from generate.py."""
    if not torch.cuda.is_available():
        print(f"# --device cuda: skipped, torch {torch.__version__} sees no CUDA device")
        if args.json:
            args.json.write_text(json.dumps({"skipped": f"no CUDA device (torch {torch.__version__})"}, indent=1))
        return
    import onnxruntime as ort

    gpu = torch.cuda.get_device_name()
    batches = args.batches or CUDA_BATCHES
    g, spec, how = build_torch(args.onnx, args.run)
    print(f"# device: {gpu}; torch {torch.__version__}, CUDA {torch.version.cuda}, onnxruntime {ort.__version__}")
    print(f"# model: {args.onnx.name}; torch generator: {how}")
    notes: list[str] = []
    out = {"device": gpu, "torch": torch.__version__, "cuda": torch.version.cuda, "onnxruntime": ort.__version__,
           "model": args.onnx.name, "results": {}, "warmup_s": {}, "notes": notes}
    with tempfile.TemporaryDirectory(prefix="bench-generate-cuda-") as tmp:
        runs = {**torch_contenders(g, spec, torch_runner), **ort_contenders(args.onnx, spec, Path(tmp), notes)}
        res: dict[str, dict[str, float]] = {name: {} for name in runs}
        for b in batches:
            calls: dict[str, Callable] = {}
            for name, make in runs.items():
                t0 = time.perf_counter()
                try:
                    fn = make(b)
                    for _ in range(3):
                        fn()
                    torch.cuda.synchronize()
                    calls[name] = fn
                    out["warmup_s"][f"{name} @ {b}"] = round(time.perf_counter() - t0, 2)
                except Exception as e:  # noqa: BLE001 - report why, keep the others
                    notes.append(f"{name} at batch {b} failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
            times: dict[str, list[float]] = {name: [] for name in calls}
            for _ in range(args.repeats):
                for name, fn in calls.items():
                    times[name].append(time_cuda(fn))
            for name, ts in times.items():
                res[name][str(b)] = b / statistics.median(ts)
            out["results"] = res
            if args.json:  # after every batch size: a run cut short still leaves what it measured
                args.json.write_text(json.dumps(out, indent=1))
            torch.cuda.empty_cache()
    print(f"\nsamples/s on {gpu} (median of {args.repeats} repeats after warm-up; device-resident inputs and outputs):\n")
    print("| path | " + " | ".join(f"batch {b}" for b in batches) + " | batch-1 latency (ms) |")
    print("|---|" + "---:|" * (len(batches) + 1))
    for name, row in res.items():
        if not row:
            continue
        lat = f"{1e3 / row['1']:.3f}" if "1" in row else "–"
        print(f"| {name} | " + " | ".join(f"{row[str(b)]:,.0f}" if str(b) in row else "–" for b in batches) + f" | {lat} |")
    for n in notes:
        print(f"# {n}")
