"""Generation speed of the shipped conditional generator, every path side by side in one process.

    .venv/bin/python benchmarks/generate.py [--run RUN_DIR_OR_CHECKPOINT] [--int8 FILE] [--quick]
    .venv/bin/python benchmarks/generate.py --device cuda [--json FILE]   (benchmarks/generate_cuda.py)

Contenders, at batch 1, 64, 256 and 1024:

* ``torch fp32``: the torch Generator, eager, ``inference_mode``;
* ``torch bf16``: the same, lowered (BatchNorm folded, sub-pixel convs), bf16, channels-last
  (what ``ctrlgen generate RUN --precision bf16`` runs);
* ``torch.compile``: the fp32 Generator compiled by inductor (compile time printed);
* ``ort fp32``: ONNX Runtime on the ONNX file (``models/fashion-cgan.onnx``), threads set;
* ``ort fp32 sub-pixel``: the lowered fp32 graph (what the int8 file is quantized from);
* ``ort int8``: the ``ctrlgen export --precision int8`` file;
* ``ort int8, ConvTranspose kept``: the same quantizer on the unlowered file (ORT has no int8
  ConvTranspose, so those stay fp32 between DequantizeLinear and QuantizeLinear);
* ``cli fp32`` / ``cli int8``: ``ctrlgen generate MODEL --n N -f npz`` in a child process, wall clock
  (process start, model load and the npz writer included).

The torch generator: with ``--run`` the run's weights; otherwise a Generator rebuilt from the
ONNX file's card (its NetConfig) with random weights: every op is dense, so time does not
depend on the weight values.  Without ``--int8`` the int8 file is quantized from that generator
(calibrated on spec samples) without the export's quality check.

Each contender is timed in turn inside every repeat (so load changes hit all of them), after a
warm-up; medians are printed.  Peak memory is the process's peak RSS while that contender ran
(``/proc/self/clear_refs`` resets the high-water mark).  The fp32 and bf16 rates of a 1024³
matmul on the same threads are measured in the same loop; "% fp32 matmul rate" is samples/s × FLOPs per sample
over the fp32 matmul rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    name = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
        flags = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags")).split()
        isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8") if f in flags]
    except (OSError, StopIteration):
        isa = []
    import onnxruntime as ort

    return (f"{name}, {os.cpu_count()} logical CPUs ({' '.join(isa)}); load average {os.getloadavg()[0]:.2f}; "
            f"python {platform.python_version()}, torch {torch.__version__}, onnxruntime {ort.__version__}")


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def matmul_calls(threads: int, n: int = 1024) -> dict[str, tuple[Callable, float]]:
    """name -> (an n³ matmul, its FLOPs); timed inside every repeat like the contenders.

    fp32 through three libraries (torch's BLAS, numpy's BLAS, ONNX Runtime's MLAS): the machine's fp32
    rate is the best of them (torch's MKL, for one, runs far below the hardware's rate on AMD CPUs).
    bf16 through torch (oneDNN)."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    out = {}
    for name, dtype in (("fp32 torch", torch.float32), ("bf16 torch", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        out[f"matmul {name}"] = ((lambda a=a, b=b: a @ b), 2.0 * n**3)
    an, bn = np.random.default_rng(0).standard_normal((2, n, n), dtype=np.float32)
    out["matmul fp32 numpy"] = ((lambda: an @ bn), 2.0 * n**3)
    vi = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "ABC"]
    model = helper.make_model(helper.make_graph([helper.make_node("MatMul", ["A", "B"], ["C"])], "mm", vi[:2], vi[2:]),
                              opset_imports=[helper.make_opsetid("", 17)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    out["matmul fp32 ort"] = ((lambda: sess.run(None, {"A": an, "B": bn})), 2.0 * n**3)
    return out


def copy_bandwidth(mb: int = 256, repeats: int = 5) -> float:
    """Memory bandwidth in GB/s: a large array copy (read + write), median of a few."""
    import numpy as np

    src = np.ones(mb << 18, np.float32)
    dst = np.empty_like(src)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t)
    return 2 * src.nbytes / statistics.median(times) / 1e9


def build_torch(onnx_path: Path, run: str | None):
    from ctrlgen.nets import Generator, NetConfig
    from ctrlgen.runtime import OnnxRuntime

    if run:
        from ctrlgen.checkpoint import load_generator

        g, spec, _ = load_generator(run)
        return g.eval(), spec, f"weights of {run}"
    rt = OnnxRuntime(onnx_path)
    torch.manual_seed(0)
    g = Generator(rt.spec, NetConfig.from_dict(rt.card["config"]["net"]))
    return g.eval(), rt.spec, f"rebuilt from {onnx_path.name}'s card, random weights"


def make_int8(g, spec, run: str | None, out: Path, fp32: Path) -> str:
    import onnx

    from ctrlgen.card import read_metadata
    from ctrlgen.export import OnnxInterface, _torch_export
    from ctrlgen.lowering import lower
    from ctrlgen.precision import quantize_int8
    from ctrlgen.spec import CARD_KEY

    if run:
        from ctrlgen.export import export

        export(run, out, precision="int8")
        return f"ctrlgen export {run} --precision int8 (quality checked)"
    lowered = out.with_suffix(".lowered.onnx")
    _torch_export(OnnxInterface(lower(g), spec).eval(), spec, lowered)
    quantize_int8(str(lowered), str(out), spec)
    model, meta = onnx.load(str(out)), read_metadata(fp32)  # the fp32 file's spec and card, so ctrlgen generate takes it
    meta[CARD_KEY] = json.dumps({**json.loads(meta[CARD_KEY]), "precision": "int8", "weights": "random"})
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(out))
    return "quantized from the torch generator (no quality check: random weights)"


def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    # Several sessions live in this process and run in turn: a session's pool threads that spin after its
    # run would take the cores from the next contender (on 2 cores that cost the next one up to 3x).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def torch_runner(model, spec, dtype=torch.float32, device: str | torch.device = "cpu") -> Callable:
    """make(batch) -> a zero-argument call of ``model`` on a batch of ``spec``'s inputs (seed 1) already on
    ``device``, floats in ``dtype`` (benchmarks/generate_cuda.py uses it too)."""
    def make(b):
        x = {k: torch.from_numpy(v).to(device) for k, v in spec.sample(b, seed=1).items()}
        x = {k: v.to(dtype) if v.is_floating_point() else v for k, v in x.items()}

        def call():
            with torch.inference_mode():
                return model(**x)
        return call
    return make


def contenders(g, spec, paths: dict[str, Path], threads: int, compile_: bool, notes: list[str]) -> dict[str, Callable]:
    """name -> make(batch) -> a zero-argument function running one batch."""
    from ctrlgen.lowering import to_bf16

    def torch_fn(model, dtype=torch.float32):
        return torch_runner(model, spec, dtype)

    def ort_fn(path):
        sess = ort_session(path, threads)

        def make(b):
            x = spec.sample(b, seed=1)
            return lambda: sess.run(["sample"], x)
        return make

    out = {"torch fp32": torch_fn(g), "torch bf16": torch_fn(to_bf16(g), torch.bfloat16)}
    if compile_:
        t0 = time.perf_counter()
        try:
            gc = torch.compile(g, dynamic=False)
            x = {k: torch.from_numpy(v) for k, v in spec.sample(64, seed=1).items()}
            with torch.inference_mode():
                gc(**x)
            notes.append(f"torch.compile: first call (compile) {time.perf_counter() - t0:.1f} s at batch 64; each new batch size recompiles (dynamic=False)")
            out["torch.compile"] = torch_fn(gc)
        except Exception as e:  # noqa: BLE001 - report why it did not work
            notes.append(f"torch.compile failed after {time.perf_counter() - t0:.1f} s: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
    else:
        notes.append("torch.compile skipped (--quick or --no-compile)")
    out["ort fp32"] = ort_fn(paths["fp32"])
    out["ort fp32 sub-pixel"] = ort_fn(paths["lowered"])
    out["ort int8"] = ort_fn(paths["int8"])
    out["ort int8, ConvTranspose kept"] = ort_fn(paths["naive-int8"])
    return out


def time_call(fn: Callable, min_s: float = 0.02) -> float:
    """Seconds per call: loops small calls until min_s passed, so batch 1 is not timer noise."""
    k, t0 = 0, time.perf_counter()
    while True:
        fn()
        k += 1
        dt = time.perf_counter() - t0
        if dt >= min_s:
            return dt / k


def cli_rate(model: Path, n: int, threads: int, out_dir: Path) -> float:
    out = out_dir / f"{model.stem}.npz"
    cmd = [sys.executable, "-m", "ctrlgen", "generate", str(model), "--n", str(n), "-f", "npz", "-o", str(out), "--force",
           "--label", "random", "--threads", str(threads)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stdout}{proc.stderr}")
    out.unlink()
    return n / wall


ALONE = """
import sys, time, statistics, onnxruntime as ort
from ctrlgen.runtime import OnnxRuntime
path, spec_from, threads, batches = sys.argv[1], sys.argv[2], int(sys.argv[3]), [int(b) for b in sys.argv[4:]]
spec = OnnxRuntime(spec_from).spec  # the lowered file has no ctrlgen metadata; same inputs as the shipped file
so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.log_severity_level = 3
sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
for b in batches:
    x = spec.sample(b, seed=1)
    for _ in range(5):
        sess.run(["sample"], x)
    ts = []
    for _ in range(25):
        t = time.perf_counter(); sess.run(["sample"], x); ts.append(time.perf_counter() - t)
    print(b, b / statistics.median(ts))
"""


def ort_alone(path: Path, spec_from: Path, threads: int, batches: list[int]) -> dict[int, float]:
    """samples/s of one ONNX file in a child process of its own: no other runtime's threads beside it,
    ONNX Runtime's default thread spinning (the check on the in-process ratios, which share 2 cores)."""
    proc = subprocess.run([sys.executable, "-c", ALONE, str(path), str(spec_from), str(threads), *map(str, batches)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"timing {path} alone failed: {proc.stderr.strip()[-300:]}")
    return {int(b): float(r) for b, r in (line.split() for line in proc.stdout.splitlines())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", type=Path, default=ROOT / "models" / "fashion-cgan.onnx")
    ap.add_argument("--run", default=None, help="Run directory or checkpoint of the same model (default: random weights).")
    ap.add_argument("--int8", type=Path, default=None, help="An int8 file from ctrlgen export --precision int8.")
    ap.add_argument("--batches", type=int, nargs="+", default=None, help="Default 1 64 256 1024 (cpu), 1 8 64 512 4096 8192 (cuda).")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--cli-n", type=int, default=20_000, help="Samples per CLI run.")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--quick", action="store_true", help="Batches 1 and 64, 2 repeats, no torch.compile, a short CLI run (a smoke test).")
    ap.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cuda: the GPU paths (benchmarks/generate_cuda.py).")
    args = ap.parse_args()
    if args.device == "cuda":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from generate_cuda import cuda_main

        cuda_main(args, build_torch, torch_runner)
        return
    args.batches = args.batches or [1, 64, 256, 1024]
    if args.quick:
        args.batches, args.repeats, args.cli_n, args.no_compile = [1, 64], 2, 500, True
    from ctrlgen.export import OnnxInterface, _torch_export
    from ctrlgen.lowering import lower
    from ctrlgen.nets import flops_per_sample
    from ctrlgen.precision import quantize_int8

    torch.set_num_threads(args.threads)
    print(f"# machine: {machine()}")
    print(f"# threads: {args.threads} (torch.set_num_threads, ORT intra_op_num_threads)")
    g, spec, how = build_torch(args.onnx, args.run)
    flops = flops_per_sample(g)
    print(f"# model: {args.onnx.name}; torch generator: {how}; {flops / 1e6:.2f} MFLOP per sample (Linear + ConvTranspose)")
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        tmp_dir = Path(tmp)
        paths = {"fp32": args.onnx, "lowered": tmp_dir / "lowered.onnx", "int8": args.int8 or tmp_dir / "int8.onnx"}
        _torch_export(OnnxInterface(lower(g), spec).eval(), spec, paths["lowered"])
        paths["naive-int8"] = tmp_dir / "naive-int8.onnx"  # the same quantizer on the unlowered graph
        quantize_int8(str(args.onnx), str(paths["naive-int8"]), spec)
        if args.int8 is None:
            notes.append(f"int8 file: {make_int8(g, spec, args.run, paths['int8'], args.onnx)}")
        else:
            notes.append(f"int8 file: {args.int8}")
        runs = contenders(g, spec, paths, args.threads, not args.no_compile, notes)
        res: dict[str, dict[int, dict]] = {name: {} for name in runs}
        mm = matmul_calls(args.threads)
        reset_peak()
        print(f"# process RSS with every path loaded: {peak_rss_mb():,.0f} MB (a path's peak RSS below is the process high-water mark while it ran)")
        mm_times: dict[str, list[float]] = {name: [] for name in mm}
        for b in args.batches:
            calls = {name: make(b) for name, make in runs.items()}
            times: dict[str, list[float]] = {name: [] for name in calls}
            peaks: dict[str, float] = {}
            for name, fn in calls.items():  # warm-up (and compile for this shape)
                reset_peak()
                for _ in range(3):
                    fn()
                peaks[name] = peak_rss_mb()
            for _ in range(args.repeats):
                for name, fn in calls.items():
                    times[name].append(time_call(fn))
                for name, (fn, _) in mm.items():
                    mm_times[name].append(time_call(fn))
            for name in calls:
                t = statistics.median(times[name])
                res[name][b] = {"s_per_batch": t, "samples_per_s": b / t, "peak_rss_mb": peaks[name]}
        alone = {key: ort_alone(paths[key], args.onnx, args.threads, [1, 256]) for key in ("fp32", "lowered", "int8")}
        cli = {}
        for key in ("fp32", "int8"):
            vals = [cli_rate(paths[key], args.cli_n, args.threads, tmp_dir) for _ in range(1 if args.quick else 3)]
            cli[f"cli {key}"] = statistics.median(vals)
    each = {name.removeprefix("matmul "): f / statistics.median(mm_times[name]) / 1e9 for name, (_, f) in mm.items()}
    rates = {"fp32": max(v for k, v in each.items() if k.startswith("fp32")), "bf16": each["bf16 torch"], **each}
    bw = copy_bandwidth()
    print("# measured 1024^3 matmul (timed inside every repeat like the contenders; median): "
          + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in each.items())
          + f"; the fp32 rate below is the best of them ({rates['fp32']:.0f} GFLOP/s)")
    weights_mb = sum(p.numel() for p in g.parameters()) * 4 / 1e6  # fp32 bytes of G's weights: what batch 1 must read
    print(f"# memory copy bandwidth {bw:.1f} GB/s; batch 1 reads all {weights_mb:.1f} MB of fp32 weights per sample: "
          f"{weights_mb / 1e3 / bw * 1e3:.3f} ms at that bandwidth (less where they stay in cache); 0.1 ms would need "
          f"{weights_mb / 1e3 / 1e-4:.0f} GB/s")
    rates["copy_gbs"] = bw
    report(res, cli, rates, flops, args, notes)
    print("\nONNX Runtime alone: each file timed in a child process of its own (median of 25 runs after warm-up):\n")
    print("| file | batch 1 samples/s | batch 1 latency (ms) | batch 256 samples/s | vs ort fp32 at 256 |")
    print("|---|---:|---:|---:|---:|")
    for key, label in (("fp32", "ort fp32"), ("lowered", "ort fp32 sub-pixel"), ("int8", "ort int8")):
        a = alone[key]
        print(f"| {label} | {a[1]:,.0f} | {1e3 / a[1]:.3f} | {a[256]:,.0f} | {a[256] / alone['fp32'][256]:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rates_gflops": rates, "flops_per_sample": flops, "results": res,
                                         "cli_samples_per_s": cli, "ort_alone": alone, "notes": notes}, indent=1))


def report(res, cli, rates, flops, args, notes) -> None:
    bs = args.batches
    print(f"\nsamples/s (median of {args.repeats} repeats after warm-up):\n")
    print("| path | " + " | ".join(f"batch {b}" for b in bs) + " | batch-1 latency (ms) | peak RSS (MB) | % fp32 matmul rate (best) | % bf16 rate (best) |")
    print("|---|" + "---:|" * (len(bs) + 4))
    for name, row in res.items():
        best = max(r["samples_per_s"] for r in row.values())
        lat = f"{row[1]['s_per_batch'] * 1e3:.3f}" if 1 in row else "–"
        peak = max(r["peak_rss_mb"] for r in row.values())
        print(f"| {name} | " + " | ".join(f"{row[b]['samples_per_s']:,.0f}" for b in bs)
              + f" | {lat} | {peak:,.0f} | {100 * best * flops / 1e9 / rates['fp32']:.0f}% | {100 * best * flops / 1e9 / rates['bf16']:.0f}% |")
    print(f"\nend to end: ctrlgen generate MODEL --n {args.cli_n:,} -f npz --label random, a child process (start, load, write included):\n")
    print("| path | samples/s |")
    print("|---|---:|")
    for name, rate in cli.items():
        print(f"| {name} | {rate:,.0f} |")
    ref = res["ort fp32"]
    print("\nratios to ort fp32 at the same batch:\n")
    print("| path | " + " | ".join(f"batch {b}" for b in bs) + " |")
    print("|---|" + "---:|" * len(bs))
    for name, row in res.items():
        print(f"| {name} | " + " | ".join(f"{row[b]['samples_per_s'] / ref[b]['samples_per_s']:.2f}x" for b in bs) + " |")
    for n in notes:
        print(f"# {n}")


if __name__ == "__main__":
    main()
