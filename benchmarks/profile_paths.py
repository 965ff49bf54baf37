"""Where the time goes: the profiles the Performance notes quote.

    .venv/bin/python benchmarks/profile_paths.py step [--adam plain|fused] [--amp auto|off] [--batch 64]
        torch profiler over 5 training steps of the fashion-cgan recipe: the top ops by self time,
        and Adam's share.  --adam plain swaps in torch's default (unfused) Adam, as before fused Adam.
    .venv/bin/python benchmarks/profile_paths.py adam
        one optimizer step over the fashion-cgan G and D parameter shapes: default, foreach and fused Adam.
    .venv/bin/python benchmarks/profile_paths.py ort FILE.onnx [--batch 256] [--threads 2]
        ONNX Runtime's own profiler: time per node kind over 20 runs, the top ones.

torch runs on one thread; nothing else should run beside it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def _trainer(amp: str, batch: int):
    from ctrlgen.train.config import load_config
    from ctrlgen.train.trainer import Trainer

    cfg = load_config("fashion-cgan", [f"batch_size={batch}", "progress=false", "monitor_every=0", "device=cpu", f"amp={amp}"])
    return Trainer(cfg, tempfile.mkdtemp(prefix="profile-"))


def step(args) -> None:
    t = _trainer(args.amp, args.batch)
    if args.adam == "plain":  # torch's default Adam, as the trainer used before fused Adam
        for name in ("opt_g", "opt_d"):
            old = getattr(t, name)
            g = old.param_groups[0]
            setattr(t, name, torch.optim.Adam(old.param_groups[0]["params"], lr=g["lr"], betas=g["betas"]))
    for _ in range(3):
        t.train_step()
    with torch.profiler.profile() as p:
        for _ in range(5):
            t.train_step()
    events = p.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    adam = next((e.cpu_time_total for e in events if e.key.startswith("Optimizer.step#")), 0.0)
    print(f"# fashion-cgan training step, batch {args.batch}, amp={args.amp} ({'bf16' if t.amp_dtype else 'fp32'}), "
          f"{args.adam} Adam, {torch.get_num_threads()} thread(s); 5 steps profiled")
    print(f"# total self CPU time {total / 5e3:.1f} ms per step; Optimizer.step (both optimizers, with their ops) "
          f"{100 * adam / total:.0f}% of it")
    print("\n| op | self CPU ms / step | share |")
    print("|---|---:|---:|")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:10]:
        print(f"| {e.key} | {e.self_cpu_time_total / 5e3:.1f} | {100 * e.self_cpu_time_total / total:.0f}% |")


def adam(args) -> None:
    t = _trainer("off", 64)
    params = [p for net in (t.G, t.D) for p in net.parameters()]
    grads = [torch.randn_like(p) for p in params]
    print(f"# one Adam step over the fashion-cgan G and D parameters ({sum(p.numel() for p in params) / 1e6:.1f}M), "
          f"{torch.get_num_threads()} thread(s), median of 7 after 2 warm-up steps\n")
    print("| Adam | ms / step |")
    print("|---|---:|")
    for name, kw in (("default (per tensor)", {"foreach": False}), ("foreach", {"foreach": True}), ("fused", {"fused": True})):
        ps = [torch.nn.Parameter(p.detach().clone()) for p in params]
        for p, g in zip(ps, grads, strict=True):
            p.grad = g
        opt = torch.optim.Adam(ps, lr=2e-4, betas=(0.5, 0.999), **kw)
        times = []
        for i in range(9):
            t0 = time.perf_counter()
            opt.step()
            if i >= 2:
                times.append(time.perf_counter() - t0)
        print(f"| {name} | {1e3 * statistics.median(times):.1f} |")


def ort(args) -> None:
    import onnxruntime as ort_

    from ctrlgen.runtime import OnnxRuntime

    path = Path(args.file)
    spec = OnnxRuntime(args.spec or path).spec
    so = ort_.SessionOptions()
    so.enable_profiling = True
    so.intra_op_num_threads = args.threads
    so.log_severity_level = 3
    so.profile_file_prefix = str(Path(tempfile.mkdtemp(prefix="ortprof-")) / "p")
    sess = ort_.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    x = spec.sample(args.batch, seed=1)
    for _ in range(20):
        sess.run(None, x)
    prof = sess.end_profiling()
    runs = 20
    per = collections.Counter()
    for e in json.loads(Path(prof).read_text()):
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per[(e["args"].get("op_name"), e["name"].removesuffix("_kernel_time"))] += e["dur"]
    os.remove(prof)
    total = sum(per.values())
    print(f"# {path.name}, batch {args.batch}, {args.threads} thread(s): {total / runs / 1e3:.2f} ms of kernel time per run "
          f"(ONNX Runtime's profiler, {runs} runs, warm-up included)\n")
    print("| op | node | ms / run | share |")
    print("|---|---|---:|---:|")
    for (op, node), us in per.most_common(args.top):
        print(f"| {op} | {node[-40:]} | {us / runs / 1e3:.3f} | {100 * us / total:.0f}% |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("step")
    s.add_argument("--adam", choices=["fused", "plain"], default="fused")
    s.add_argument("--amp", choices=["auto", "off", "bf16"], default="auto")
    s.add_argument("--batch", type=int, default=64)
    sub.add_parser("adam")
    o = sub.add_parser("ort")
    o.add_argument("file")
    o.add_argument("--spec", help="a ctrlgen .onnx file with the same inputs (for files without ctrlgen metadata)")
    o.add_argument("--batch", type=int, default=256)
    o.add_argument("--threads", type=int, default=2)
    o.add_argument("--top", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(1)
    {"step": step, "adam": adam, "ort": ort}[args.what](args)


if __name__ == "__main__":
    sys.exit(main())
